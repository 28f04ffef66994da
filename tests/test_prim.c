/* test_prim.c — the primitive IR (compiler/prim.h): every row of the primitive table, forward
 * and backward, on the reference interpreter in double against central finite differences; the
 * canonical text round trip; hash-consing; the shape rules' refusals; autodiff's refusal of a
 * non-differentiable op on the gradient path.
 *
 * The table is iterated: each primitive must have a case in build_case (a primitive without
 * one fails the test), so a new row cannot land untested.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prim.h"
#include "rng.h"

#define NB 2
static char err[400];

/* deterministic values in [lo, hi) */
static void fill(float *x, int64_t n, unsigned seed, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rc_rng_uniform(seed, 99, (uint64_t)i));
}

typedef struct {
    rc_prim_graph g;
    int x, p, out;
    int diff;          /* 1: differentiable case (gradient checked); 0: forward only */
    int ops_seen[RC_P_COUNT];
} pcase;

static int add(pcase *c, rc_prim_op op, int n_in, const int *in, const int *attr, double v)
{
    int id = rc_prim_add(&c->g, op, n_in, in, attr, v, 0, 0, NULL, 7, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int un(pcase *c, rc_prim_op op, int a) { return add(c, op, 1, &a, NULL, 0); }
static int bi(pcase *c, rc_prim_op op, int a, int b) { int in[2] = {a, b}; return add(c, op, 2, in, NULL, 0); }
static int cst(pcase *c, int like, double v) { int id = rc_prim_const_like(&c->g, like, v, err, sizeof err); cr_assert(id >= 0, "%s", err); return id; }

/* x (B,3,4,4) input in [0.2, 1); p a parameter of dims pd */
static void base(pcase *c, int prank, const int *pdims)
{
    rc_prim_init(&c->g);
    c->diff = 1;
    int xd[4] = {RC_PRIM_B, 3, 4, 4};
    rc_prim_decl *d = &c->g.param[c->g.n_param++];
    memset(d, 0, sizeof *d);
    strcpy(d->name, "p");
    d->rank = prank;
    memcpy(d->dims, pdims, sizeof(int) * (size_t)prank);
    c->x = rc_prim_add(&c->g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, xd, 1, err, sizeof err);
    c->p = rc_prim_add(&c->g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(c->x >= 0 && c->p >= 0, "%s", err);
}

static const int chan[4] = {1, 3, 1, 1};

/* Build the case for primitive op. Returns 0 if op is covered by another case (named in why). */
static int build_case(pcase *c, rc_prim_op op, const char **why)
{
    *why = NULL;
    const rc_prim_info *I = &rc_prim_table()[op];
    switch (I->kind) {
    case RC_PK_UNARY: {
        base(c, 4, chan);
        /* u = x*p + 0.5 in (0.3, 2): positive, inside every unary's domain */
        int u = bi(c, RC_P_ADD, bi(c, RC_P_MUL, c->x, c->p), cst(c, c->x, 0.5));
        if (op == RC_P_POWC) { int in1[1] = {u}; c->out = add(c, op, 1, in1, NULL, 1.7); }
        else if (op == RC_P_SIGN) { c->out = un(c, op, bi(c, RC_P_SUB, u, cst(c, u, 1.0))); c->diff = 0; }
        else if (op == RC_P_NEG || op == RC_P_ABS || op == RC_P_TANH || op == RC_P_SIGMOID || op == RC_P_SOFTPLUS)
            c->out = un(c, op, bi(c, RC_P_SUB, u, cst(c, u, 1.0)));   /* both signs */
        else c->out = un(c, op, u);
        if (op == RC_P_STOPGRAD) {      /* d/dx [stop(x p + .5) x] = stop(..): no path to p */
            c->out = bi(c, RC_P_MUL, c->out, c->x);
            c->diff = 2;
        }
        return 1;
    }
    case RC_PK_BINARY: {
        base(c, 4, chan);
        int a = bi(c, RC_P_MUL, c->x, cst(c, c->x, 1.3));
        c->out = bi(c, op, a, c->p);
        c->diff = I->differentiable;
        return 1;
    }
    case RC_PK_SELECT: {
        base(c, 4, chan);
        int cond = bi(c, RC_P_GT, c->x, cst(c, c->x, 0.6));
        int in3[3] = {cond, bi(c, RC_P_MUL, c->x, c->p), c->p};
        c->out = add(c, op, 3, in3, NULL, 0);
        return 1;
    }
    case RC_PK_REDUCE: {
        base(c, 4, chan);
        int at[RC_PRIM_NATTR] = {0x1 | 0x4};          /* batch and rows */
        int xp = bi(c, RC_P_MUL, c->x, c->p);
        c->out = add(c, op, 1, &xp, at, 0);
        return 1;
    }
    case RC_PK_MOVE: {
        base(c, 4, chan);
        int xp = bi(c, RC_P_MUL, c->x, c->p), at[RC_PRIM_NATTR] = {0};
        switch (op) {
        case RC_P_RESHAPE: {
            int nd[2] = {RC_PRIM_B, 48};
            c->out = rc_prim_add(&c->g, op, 1, &xp, nd, 0, 0, 2, nd, 7, err, sizeof err);
            cr_assert(c->out >= 0, "%s", err);
            return 1;
        }
        case RC_P_TRANSPOSE: { int pm[RC_PRIM_NATTR] = {0, 2, 3, 1}; c->out = add(c, op, 1, &xp, pm, 0); return 1; }
        case RC_P_SLICE: { int s[RC_PRIM_NATTR] = {0, RC_PRIM_B, 1, 3, 0, 4, 2, 3}; c->out = add(c, op, 1, &xp, s, 0); return 1; }
        case RC_P_PAD: { int s[RC_PRIM_NATTR] = {0, 0, 1, 0, 2, 1, 0, 3}; c->out = add(c, op, 1, &xp, s, 0); return 1; }
        case RC_P_CONCAT: { at[0] = 1; int in2[2] = {xp, c->x}; c->out = add(c, op, 2, in2, at, 0); return 1; }
        case RC_P_EXPAND: { int e[RC_PRIM_NATTR] = {RC_PRIM_B, 3, 4, 4}; int pe = add(c, op, 1, &c->p, e, 0); c->out = bi(c, RC_P_MUL, pe, c->x); return 1; }
        /* the 3 channels read at cell_pos (test_pos below) */
        case RC_P_CELLPICK: { at[0] = 1; c->out = add(c, op, 1, &xp, at, 0); return 1; }
        case RC_P_CELLPLACE: {
            int sa[RC_PRIM_NATTR] = {0xc}, pl[RC_PRIM_NATTR] = {1, 4, 4};
            int r = add(c, RC_P_SUM, 1, &xp, sa, 0);
            c->out = bi(c, RC_P_MUL, add(c, op, 1, &r, pl, 0), c->x);
            return 1;
        }
        default: return 1;
        }
    }
    case RC_PK_CONTRACT:
        if (op == RC_P_MATMUL) {
            int pd[2] = {48, 5};
            base(c, 2, pd);
            int nd[2] = {RC_PRIM_B, 48};
            int r = rc_prim_add(&c->g, RC_P_RESHAPE, 1, &c->x, nd, 0, 0, 2, nd, 7, err, sizeof err);
            cr_assert(r >= 0, "%s", err);
            c->out = bi(c, op, r, c->p);
            return 1;
        }
        if (op == RC_P_CONV2D) {       /* strided, padded, dilated */
            int pd[4] = {4, 3, 3, 3};
            base(c, 4, pd);
            int at[RC_PRIM_NATTR] = {2, 1, 2, 1, 1};
            int in2[2] = {c->x, c->p};
            c->out = add(c, op, 2, in2, at, 0);
            return 1;
        }
        *why = "conv2d's vector-Jacobian product (every conv2d case checks it against finite differences)";
        return 0;
    case RC_PK_LEAF:
        if (op == RC_P_RANDN || op == RC_P_RANDU) {
            base(c, 4, chan);
            int xd[4] = {RC_PRIM_B, 3, 4, 4}, at[RC_PRIM_NATTR] = {3};
            int r = rc_prim_add(&c->g, op, 0, NULL, at, 0, 0, 4, xd, 7, err, sizeof err);
            cr_assert(r >= 0, "%s", err);
            c->out = bi(c, RC_P_ADD, c->x, bi(c, RC_P_MUL, c->p, r));
            return 1;
        }
        if (op == RC_P_NUMEL) {
            base(c, 4, chan);
            int at[RC_PRIM_NATTR] = {16, 1, 0}, ones[4] = {1, 1, 1, 1};
            int n = rc_prim_add(&c->g, op, 0, NULL, at, 0, 0, 4, ones, 7, err, sizeof err);
            cr_assert(n >= 0, "%s", err);
            c->out = bi(c, RC_P_DIV, bi(c, RC_P_MUL, c->x, c->p), n);
            return 1;
        }
        if (op == RC_P_STATE) {
            base(c, 4, chan);
            rc_prim_decl *d = &c->g.state[c->g.n_state++];
            memset(d, 0, sizeof *d);
            strcpy(d->name, "s");
            d->rank = 4;
            memcpy(d->dims, chan, sizeof chan);
            int st = rc_prim_add(&c->g, op, 0, NULL, NULL, 0, 0, 0, NULL, 7, err, sizeof err);
            cr_assert(st >= 0, "%s", err);
            c->out = bi(c, RC_P_MUL, bi(c, RC_P_ADD, c->x, st), c->p);
            return 1;
        }
        *why = "every case (input, param, const are in all of them)";
        return 0;
    case RC_PK_SINK:
        *why = "test_update_sink";
        return 0;
    }
    return 1;
}

/* readout positions of the cellpick / cellplace cases: 3 cells in the 4x4 maps */
static const int test_pos[6] = {1, 2, 3, 0, 0, 3};

/* the scalar L = sum(out * r) and its gradients in double */
static double loss(pcase *c, const float *x, const float *p, const float *s, const double *r)
{
    rc_prim_eval_ctx cx = { .B = NB, .seed = 5, .layer = 2, .cell_pos = test_pos, .n_cells = 3 };
    cx.input[0] = x; cx.param[0] = p; cx.state[0] = s;
    double **val = calloc((size_t)c->g.n, sizeof *val);
    unsigned char *need = malloc((size_t)c->g.n);
    rc_prim_needed(&c->g, &c->out, 1, need);
    cr_assert_eq(rc_prim_eval(&c->g, &cx, need, val, err, sizeof err), 0, "%s", err);
    int64_t n = rc_prim_numel(&c->g.node[c->out], NB);
    double L = 0;
    for (int64_t i = 0; i < n; i++) L += val[c->out][i] * r[i];
    rc_prim_vals_free(&c->g, val);
    free(val); free(need);
    return L;
}

static double max_rel(const double *a, const double *b, int64_t n)
{
    double m = 0, s = 1e-6;
    for (int64_t i = 0; i < n; i++) if (fabs(b[i]) > s) s = fabs(b[i]);
    for (int64_t i = 0; i < n; i++) if (fabs(a[i] - b[i]) / s > m) m = fabs(a[i] - b[i]) / s;
    return m;
}

/* analytic gradient (rc_prim_grad) vs central differences for input and parameter */
static void check_grad(pcase *c, const char *name)
{
    c->g.out[RC_PRIM_TRAIN] = c->g.out[RC_PRIM_EVAL] = c->out;
    int64_t nx = rc_prim_numel(&c->g.node[c->x], NB), np = rc_prim_numel(&c->g.node[c->p], 1);
    int64_t no = rc_prim_numel(&c->g.node[c->out], NB);
    float *x = malloc(sizeof *x * (size_t)nx), *p = malloc(sizeof *p * (size_t)np), s[3] = {0.1f, -0.2f, 0.3f};
    double *r = malloc(sizeof *r * (size_t)no), *ga = calloc((size_t)(nx + np), sizeof *ga), *gf = calloc((size_t)(nx + np), sizeof *gf);
    fill(x, nx, 1, 0.2, 1.0);
    fill(p, np, 2, 0.5, 1.5);
    for (int64_t i = 0; i < no; i++) r[i] = rc_rng_normal(3, 1, (uint64_t)i);
    if (!c->diff) {
        cr_assert_neq(rc_prim_grad(&c->g, RC_PRIM_TRAIN, err, sizeof err), 0, "%s: a non-differentiable op on the path must be refused", name);
        cr_assert(strstr(err, name) && strstr(err, "no gradient"), "%s: message '%s'", name, err);
        goto out;
    }
    cr_assert_eq(rc_prim_grad(&c->g, RC_PRIM_TRAIN, err, sizeof err), 0, "%s: %s", name, err);
    if (c->diff == 2) {     /* stop_gradient: no path to p; x's gradient is the stopped value * r */
        cr_assert_eq(c->g.grad_param[0][0], -1, "%s: a path to the parameter", name);
        cr_assert_geq(c->g.grad_in[0], 0);
        float *rf = malloc(sizeof *rf * (size_t)no);
        for (int64_t i = 0; i < no; i++) rf[i] = (float)r[i];
        rc_prim_eval_ctx cx = { .B = NB };
        cx.input[0] = x; cx.input[1] = rf; cx.param[0] = p;
        double **val = calloc((size_t)c->g.n, sizeof *val);
        cr_assert_eq(rc_prim_eval(&c->g, &cx, NULL, val, err, sizeof err), 0, "%s", err);
        for (int64_t i = 0; i < nx; i++) {
            double want = ((double)x[i] * p[(i / 16) % 3] + 0.5) * rf[i];
            cr_assert(fabs(val[c->g.grad_in[0]][i] - want) < 1e-6, "%s: element %lld", name, (long long)i);
        }
        rc_prim_vals_free(&c->g, val);
        free(val); free(rf);
        goto out;
    }
    /* analytic */
    {
        rc_prim_eval_ctx cx = { .B = NB, .seed = 5, .layer = 2, .cell_pos = test_pos, .n_cells = 3 };
        float *rf = malloc(sizeof *rf * (size_t)no);
        for (int64_t i = 0; i < no; i++) rf[i] = (float)r[i];
        cx.input[0] = x; cx.input[1] = rf; cx.param[0] = p; cx.state[0] = s;
        double **val = calloc((size_t)c->g.n, sizeof *val);
        cr_assert_eq(rc_prim_eval(&c->g, &cx, NULL, val, err, sizeof err), 0, "%s: %s", name, err);
        if (c->g.grad_in[0] >= 0) memcpy(ga, val[c->g.grad_in[0]], sizeof *ga * (size_t)nx);
        if (c->g.grad_param[0][0] >= 0) memcpy(ga + nx, val[c->g.grad_param[0][0]], sizeof *ga * (size_t)np);
        rc_prim_vals_free(&c->g, val);
        free(val); free(rf);
        for (int64_t i = 0; i < no; i++) r[i] = (float)r[i];    /* the float cotangent the graph saw */
    }
    /* finite differences on the float inputs, divided by the step actually taken */
    for (int64_t i = 0; i < nx + np; i++) {
        float *v = i < nx ? &x[i] : &p[i - nx], v0 = *v;
        float h = 1e-3f * (fabsf(v0) > 1 ? fabsf(v0) : 1);
        *v = v0 + h; float up = *v; double lu = loss(c, x, p, s, r);
        *v = v0 - h; float dn = *v; double ld = loss(c, x, p, s, r);
        *v = v0;
        gf[i] = (lu - ld) / ((double)up - (double)dn);
    }
    double ex = max_rel(ga, gf, nx), ep = max_rel(ga + nx, gf + nx, np);
    cr_assert(ex < 2e-4 && ep < 2e-4, "%s: gradient vs finite differences: input %.3g, param %.3g", name, ex, ep);
    /* the parameter gradient is not trivially zero */
    double gmax = 0;
    for (int64_t i = 0; i < np; i++) if (fabs(gf[nx + i]) > gmax) gmax = fabs(gf[nx + i]);
    cr_assert(gmax > 1e-3, "%s: the parameter's gradient is zero: the case does not test it", name);
out:
    free(x); free(p); free(r); free(ga); free(gf);
}

/* format -> parse -> format is the identity, and parsing re-infers the same shapes */
static void check_text(pcase *c, const char *name)
{
    c->g.out[RC_PRIM_TRAIN] = c->g.out[RC_PRIM_EVAL] = c->out;
    char *t1 = rc_prim_format(&c->g);
    cr_assert(t1);
    rc_prim_graph h;
    cr_assert_eq(rc_prim_parse(&h, t1, 0, err, sizeof err), 0, "%s: %s\n%s", name, err, t1);
    char *t2 = rc_prim_format(&h);
    cr_assert_str_eq(t1, t2, "%s: text round trip", name);
    free(t1); free(t2);
    rc_prim_free(&h);
}

Test(prim, every_primitive_forward_and_backward_against_finite_differences)
{
    int covered = 0;
    for (int op = 0; op < RC_P_COUNT; op++) {
        pcase c;
        memset(&c, 0, sizeof c);
        const char *why;
        const char *name = rc_prim_name((rc_prim_op)op);
        cr_assert(name && name[0], "primitive %d has no name", op);
        if (!build_case(&c, (rc_prim_op)op, &why)) {
            cr_assert(why, "primitive '%s' has no test case: add one to build_case", name);
            rc_prim_free(&c.g);
            continue;
        }
        cr_assert(c.out > 0, "primitive '%s': the case built nothing", name);
        check_text(&c, name);
        check_grad(&c, name);
        rc_prim_free(&c.g);
        covered++;
    }
    cr_assert_geq(covered, RC_P_COUNT - 9);
}

Test(prim, conv2d_tiled_and_plain_forms_against_finite_differences)
{
    /* tiled (locally connected at period = output size 4) and a plain stride-1 valid conv */
    int forms[2][3] = {{1, 0, 1}, {4, 0, 1}};
    for (int f = 0; f < 2; f++) {
        pcase c;
        memset(&c, 0, sizeof c);
        int P = forms[f][0];
        int pd6[6] = {P, P, 2, 3, 1, 1}, pd4[4] = {2, 3, 1, 1};
        if (P > 1) base(&c, 6, pd6); else base(&c, 4, pd4);
        int at[RC_PRIM_NATTR] = {1, 0, 1, P, P};
        int in2[2] = {c.x, c.p};
        c.out = add(&c, RC_P_CONV2D, 2, in2, at, 0);
        check_grad(&c, P > 1 ? "conv2d (tiled)" : "conv2d (1x1)");
        rc_prim_free(&c.g);
    }
}

Test(prim, hash_consing_shares_identical_nodes)
{
    pcase c;
    memset(&c, 0, sizeof c);
    base(&c, 4, chan);
    int a = bi(&c, RC_P_MUL, c.x, c.p), n = c.g.n;
    int b = bi(&c, RC_P_MUL, c.x, c.p);
    cr_assert_eq(a, b);
    cr_assert_eq(c.g.n, n);
    cr_assert_neq(bi(&c, RC_P_MUL, c.p, c.x), a, "operand order is part of the node");
    rc_prim_free(&c.g);
}

Test(prim, shape_rules_refuse_with_the_op_and_the_shapes)
{
    pcase c;
    memset(&c, 0, sizeof c);
    int pd[4] = {1, 5, 1, 1};
    base(&c, 4, pd);
    cr_assert_lt(rc_prim_bin(&c.g, RC_P_ADD, c.x, c.p, err, sizeof err), 0);
    cr_assert(strstr(err, "add") && strstr(err, "(B,3,4,4)") && strstr(err, "(1,5,1,1)"), "%s", err);
    int w[4] = {2, 5, 3, 3};
    rc_prim_decl *d = &c.g.param[c.g.n_param++];
    memset(d, 0, sizeof *d); strcpy(d->name, "w"); d->rank = 4; memcpy(d->dims, w, sizeof w);
    int wid = rc_prim_add(&c.g, RC_P_PARAM, 0, NULL, NULL, 0, 1, 0, NULL, 1, err, sizeof err);
    int at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in2[2] = {c.x, wid};
    cr_assert_lt(rc_prim_add(&c.g, RC_P_CONV2D, 2, in2, at, 0, 0, 0, NULL, 9, err, sizeof err), 0);
    cr_assert(strstr(err, "conv2d: input has 3 channels, weight expects 5"), "%s", err);
    cr_assert_eq(c.g.err_line, 9);
    int sl[RC_PRIM_NATTR] = {0, 1};
    cr_assert_lt(rc_prim_add(&c.g, RC_P_SLICE, 1, &c.x, sl, 0, 0, 0, NULL, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "only known at run time"), "%s", err);
    int big[4] = {RC_PRIM_B, 4096, 4096, 4096};
    cr_assert_lt(rc_prim_add(&c.g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, big, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "over the limit"), "%s", err);
    cr_assert_lt(rc_prim_add(&c.g, (rc_prim_op)RC_P_COUNT, 0, NULL, NULL, 0, 0, 0, NULL, 1, err, sizeof err), 0);
    rc_prim_free(&c.g);
}

Test(prim, a_cells_dimension_is_symbolic_until_parsed_with_a_count)
{
    rc_prim_graph g;
    rc_prim_init(&g);
    int xd[4] = {RC_PRIM_B, RC_PRIM_CELLS, 1, 1}, pd[4] = {1, RC_PRIM_CELLS, 1, 1};
    rc_prim_decl *d = &g.param[g.n_param++];
    memset(d, 0, sizeof *d); strcpy(d->name, "scale"); d->rank = 4; memcpy(d->dims, pd, sizeof pd); d->init_value = 1;
    int x = rc_prim_add(&g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, xd, 1, err, sizeof err);
    int p = rc_prim_add(&g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    int y = rc_prim_bin(&g, RC_P_MUL, x, p, err, sizeof err);
    int at[RC_PRIM_NATTR] = {0x3};
    int m = rc_prim_add(&g, RC_P_MEAN, 1, &y, at, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(m >= 0, "%s", err);
    g.out[0] = g.out[1] = y;
    cr_assert_eq(rc_prim_grad(&g, RC_PRIM_TRAIN, err, sizeof err), 0, "%s", err);
    char *t = rc_prim_format(&g);
    cr_assert(strstr(t, "param scale 1,C,1,1"), "%s", t);
    rc_prim_graph h;
    cr_assert_eq(rc_prim_parse(&h, t, 7, err, sizeof err), 0, "%s", err);
    cr_assert_eq(h.param[0].dims[1], 7);
    cr_assert_eq(h.node[h.out[0]].dims[1], 7);
    free(t);
    rc_prim_free(&g);
    rc_prim_free(&h);
}

Test(prim, update_sink_writes_state_shape_and_refuses_another)
{
    pcase c;
    memset(&c, 0, sizeof c);
    base(&c, 4, chan);
    rc_prim_decl *d = &c.g.state[c.g.n_state++];
    memset(d, 0, sizeof *d); strcpy(d->name, "m"); d->rank = 4; memcpy(d->dims, chan, sizeof chan);
    int at[RC_PRIM_NATTR] = {0xd};
    int mean = add(&c, RC_P_MEAN, 1, &c.x, at, 0);
    int u = rc_prim_add(&c.g, RC_P_UPDATE, 1, &mean, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(u >= 0, "%s", err);
    cr_assert_lt(rc_prim_add(&c.g, RC_P_UPDATE, 1, &c.x, NULL, 0, 0, 0, NULL, 1, err, sizeof err), 0);
    cr_assert(strstr(err, "state 'm'"), "%s", err);
    cr_assert_lt(rc_prim_un(&c.g, RC_P_EXP, u, err, sizeof err), 0, "an update has no value");
    /* its value is the per-channel batch mean */
    float x[NB * 48];
    fill(x, NB * 48, 4, -1, 1);
    rc_prim_eval_ctx cx = { .B = NB };
    float pv[3] = {1, 1, 1};
    cx.input[0] = x;
    cx.param[0] = pv;
    double **val = calloc((size_t)c.g.n, sizeof *val);
    cr_assert_eq(rc_prim_eval(&c.g, &cx, NULL, val, err, sizeof err), 0, "%s", err);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0;
        for (int b = 0; b < NB; b++) for (int k = 0; k < 16; k++) s += x[b * 48 + ch * 16 + k];
        cr_assert_float_eq(val[c.g.node[u].in[0]][ch], s / (NB * 16), 1e-12);
    }
    rc_prim_vals_free(&c.g, val);
    free(val);
    rc_prim_free(&c.g);
}

Test(prim, cellpick_needs_positions_inside_the_map)
{
    pcase c;
    const char *why;
    memset(&c, 0, sizeof c);
    build_case(&c, RC_P_CELLPICK, &why);
    int64_t nx = rc_prim_numel(&c.g.node[c.x], NB);
    float *x = calloc((size_t)nx, sizeof *x), p[3] = {1, 1, 1};
    rc_prim_eval_ctx cx = { .B = NB };
    cx.input[0] = x; cx.param[0] = p;
    double **val = calloc((size_t)c.g.n, sizeof *val);
    cr_assert_neq(rc_prim_eval(&c.g, &cx, NULL, val, err, sizeof err), 0);
    cr_assert(strstr(err, "no cell positions given"), "%s", err);
    rc_prim_vals_free(&c.g, val);
    int bad[6] = {1, 2, 4, 0, 0, 3};   /* cell 1's row 4 is outside the 4x4 map */
    cx.cell_pos = bad;
    cx.n_cells = 2;                    /* fewer positions than map channels */
    cr_assert_neq(rc_prim_eval(&c.g, &cx, NULL, val, err, sizeof err), 0);
    cr_assert(strstr(err, "a map of 3 channels, positions of 2 cells"), "%s", err);
    rc_prim_vals_free(&c.g, val);
    cx.n_cells = 3;
    cr_assert_neq(rc_prim_eval(&c.g, &cx, NULL, val, err, sizeof err), 0);
    cr_assert(strstr(err, "cell 1 at (4,0), outside the 4x4 map"), "%s", err);
    rc_prim_vals_free(&c.g, val);
    free(val); free(x);
    rc_prim_free(&c.g);
}

Test(prim, parameter_names_may_be_dotted_identifiers)
{
    cr_assert(rc_prim_decl_name_ok("sub0.weight", 11));
    cr_assert(rc_prim_decl_name_ok("a_1.b.c", 7));
    cr_assert(!rc_prim_decl_name_ok(".a", 2) && !rc_prim_decl_name_ok("a.", 2) && !rc_prim_decl_name_ok("0a", 2));
    cr_assert(!rc_prim_decl_name_ok("a.0b", 4) && !rc_prim_decl_name_ok("a b", 3) && !rc_prim_decl_name_ok("", 0));
    cr_assert(rc_prim_decl_names_clash("weight", "sub0.weight") && rc_prim_decl_names_clash("x.w", "w"));
    cr_assert(!rc_prim_decl_names_clash("sub0.weight", "sub1.weight") && !rc_prim_decl_names_clash("aweight", "weight"));
    rc_prim_graph g;
    const char *t = "param sub0.weight 1,3 bound=0 value=1\nn0 input : B,3\nn1 param : 1,3\nn2 mul n0 n1 : B,3\n"
                    "out train n2\nout eval n2\n";
    cr_assert_eq(rc_prim_parse(&g, t, 0, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(g.param[0].name, "sub0.weight");
    rc_prim_free(&g);
}

Test(prim, parse_refuses_text_that_is_not_a_graph)
{
    const char *bad[] = {
        "n0 input : B,3\nn1 frob n0 : B,3\nout train n1\nout eval n1\n",      /* unknown primitive */
        "n0 input : B,3\nn1 exp n2 : B,3\nout train n1\nout eval n1\n",       /* forward reference */
        "n0 input : B,3\nn1 exp n0 : B,4\nout train n1\nout eval n1\n",       /* wrong shape */
        "n0 input : B,3\n",                                                    /* no outputs */
        "param a..b 3 bound=0 value=1\nn0 input : B,3\nout train n0\nout eval n0\n",      /* empty segment */
        "param gain 3 bound=0 value=1\nparam on.gain 3 bound=0 value=1\n"                    /* ambiguous views */
        "n0 input : B,3\nout train n0\nout eval n0\n",
    };
    const char *want[] = {"unknown primitive 'frob'", "bad operand", "not the inferred", "no 'out train'",
                          "name 'a..b' is not an identifier", "names 'gain' and 'on.gain' clash"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_prim_graph g;
        cr_assert_neq(rc_prim_parse(&g, bad[i], 0, err, sizeof err), 0, "case %zu", i);
        cr_assert(strstr(err, want[i]), "case %zu: %s", i, err);
        rc_prim_free(&g);
    }
}
