/* test_ref_def.c — defined layers (RC_LAYER_DEF) in the model IR and the reference backend:
 * a layer written as a primitive graph equals the hand-written built-in layer it restates, in
 * training (outputs, running statistics, every parameter gradient) and in evaluation. The graphs
 * are built here in C with the builder of compiler/prim.h, independent of the Lua front end;
 * the built-in layers are the PyTorch-checked oracle (tests/test_torch_fixtures.c), so this also
 * pins the primitives' conv orientation, batch-norm statistics and momentum rule to PyTorch's.
 * The canonical IR text of a model with defined layers round-trips (format, parse, infer).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ir.h"
#include "prim.h"
#include "rng.h"
#include "spec.h"

#define CELLS 5
#define NB 6
static char err[600];

static int leaf(rc_prim_graph *g, rc_prim_op op, int ref, int rank, const int *dims)
{
    int id = rc_prim_add(g, op, 0, NULL, NULL, 0, ref, rank, dims, 1, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static int bin(rc_prim_graph *g, rc_prim_op op, int a, int b)
{
    int id = rc_prim_bin(g, op, a, b, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static int op1(rc_prim_graph *g, rc_prim_op op, int a, const int *attr)
{
    int id = rc_prim_add(g, op, 1, &a, attr, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static int cst(rc_prim_graph *g, int like, double v)
{
    int id = rc_prim_const_like(g, like, v, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static void decl(rc_prim_decl *d, const char *name, int rank, const int *dims, double bound, double value)
{
    memset(d, 0, sizeof *d);
    strcpy(d->name, name);
    d->rank = rank;
    memcpy(d->dims, dims, sizeof(int) * (size_t)rank);
    d->init_bound = bound;
    d->init_value = value;
}

/* attach graph g as layer li of ir (kind name) */
static void attach(rc_ir *ir, int li, const char *kind, rc_prim_graph *g)
{
    char *t = rc_prim_format(g);
    cr_assert(t);
    rc_layer_defaults(&ir->layers[li], RC_LAYER_DEF);
    cr_assert_eq(rc_ir_def_set(ir, li, kind, t, err, sizeof err), 0, "%s", err);
    free(t);
    rc_prim_free(g);
}

/* relu: max(x, 0) */
static void def_relu(rc_ir *ir, int li, rc_shape in)
{
    rc_prim_graph g;
    rc_prim_init(&g);
    int xd[4] = {RC_PRIM_B, in.c, in.h, in.w};
    int x = leaf(&g, RC_P_INPUT, 0, 4, xd);
    int y = bin(&g, RC_P_MAX, x, cst(&g, x, 0.0));
    g.out[0] = g.out[1] = y;
    attach(ir, li, "myrelu", &g);
}

/* conv (valid, stride 1) + bias, as conv2d + broadcast add */
static void def_conv(rc_ir *ir, int li, rc_shape in, int cout, int k)
{
    rc_prim_graph g;
    rc_prim_init(&g);
    double bound = 1.0 / sqrt((double)in.c * k * k);
    int wd[4] = {cout, in.c, k, k}, bd[4] = {1, cout, 1, 1}, xd[4] = {RC_PRIM_B, in.c, in.h, in.w};
    decl(&g.param[g.n_param++], "weight", 4, wd, bound, 0);
    decl(&g.param[g.n_param++], "bias", 4, bd, bound, 0);
    int x = leaf(&g, RC_P_INPUT, 0, 4, xd), w = leaf(&g, RC_P_PARAM, 0, 0, NULL), b = leaf(&g, RC_P_PARAM, 1, 0, NULL);
    int at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in2[2] = {x, w};
    int c = rc_prim_add(&g, RC_P_CONV2D, 2, in2, at, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(c >= 0, "%s", err);
    g.out[0] = g.out[1] = bin(&g, RC_P_ADD, c, b);
    attach(ir, li, "myconv", &g);
}

/* batchnorm over units (features C*H*W, statistics over the batch), PyTorch's rules: biased
 * variance to normalize, running = (1-m) running + m batch with the unbiased variance. */
static void def_bn_unit(rc_ir *ir, int li, rc_shape in, double eps, double mom)
{
    rc_prim_graph g;
    rc_prim_init(&g);
    int pd[4] = {1, in.c, in.h, in.w}, xd[4] = {RC_PRIM_B, in.c, in.h, in.w};
    decl(&g.param[g.n_param++], "scale", 4, pd, 0, 1.0);
    decl(&g.param[g.n_param++], "shift", 4, pd, 0, 0.0);
    decl(&g.state[g.n_state++], "running_mean", 4, pd, 0, 0.0);
    decl(&g.state[g.n_state++], "running_var", 4, pd, 0, 1.0);
    int x = leaf(&g, RC_P_INPUT, 0, 4, xd);
    int sc = leaf(&g, RC_P_PARAM, 0, 0, NULL), sh = leaf(&g, RC_P_PARAM, 1, 0, NULL);
    int rm = leaf(&g, RC_P_STATE, 0, 0, NULL), rv = leaf(&g, RC_P_STATE, 1, 0, NULL);
    int ax[RC_PRIM_NATTR] = {0x1};
    /* train */
    int m = op1(&g, RC_P_MEAN, x, ax);
    int d = bin(&g, RC_P_SUB, x, m);
    int v = op1(&g, RC_P_MEAN, bin(&g, RC_P_MUL, d, d), ax);
    int is = bin(&g, RC_P_DIV, cst(&g, v, 1.0), op1(&g, RC_P_SQRT, bin(&g, RC_P_ADD, v, cst(&g, v, eps)), NULL));
    g.out[0] = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, bin(&g, RC_P_MUL, d, is), sc), sh);
    int ones[4] = {1, 1, 1, 1}, na[RC_PRIM_NATTR] = {1, 1, 0};
    int n = rc_prim_add(&g, RC_P_NUMEL, 0, NULL, na, 0, 0, 4, ones, 1, err, sizeof err);
    cr_assert(n >= 0, "%s", err);
    int vu = bin(&g, RC_P_DIV, bin(&g, RC_P_MUL, v, n), bin(&g, RC_P_SUB, n, cst(&g, n, 1.0)));
    int keep = cst(&g, m, 1 - mom), mm = cst(&g, m, mom);
    int nm = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, keep, rm), bin(&g, RC_P_MUL, mm, m));
    int nv = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, keep, rv), bin(&g, RC_P_MUL, mm, vu));
    int u0 = rc_prim_add(&g, RC_P_UPDATE, 1, &nm, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    int u1 = rc_prim_add(&g, RC_P_UPDATE, 1, &nv, NULL, 0, 1, 0, NULL, 1, err, sizeof err);
    cr_assert(u0 >= 0 && u1 >= 0, "%s", err);
    /* eval */
    int ise = bin(&g, RC_P_DIV, cst(&g, rv, 1.0), op1(&g, RC_P_SQRT, bin(&g, RC_P_ADD, rv, cst(&g, rv, eps)), NULL));
    g.out[1] = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, bin(&g, RC_P_MUL, bin(&g, RC_P_SUB, x, rm), ise), sc), sh);
    attach(ir, li, "mybn", &g);
}

static void load_tiny(rc_ir *ir)
{
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", CELLS, ir, err, sizeof err), 0, "%s", err);
}

static void fill(float *x, size_t n, unsigned seed, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rc_rng_uniform(seed, 7, i));
}

static double rel(const float *a, const float *b, size_t n)
{
    double m = 0, s = 1e-20;
    for (size_t i = 0; i < n; i++) if (fabs(b[i]) > s) s = fabs(b[i]);
    for (size_t i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m / s;
}

/* Run both IRs on the reference backend with identical buffers; compare everything. */
static void same_model(rc_ir *a, rc_ir *b)
{
    cr_assert_eq(a->params_total, b->params_total, "parameter layouts differ: %lld vs %lld",
                 (long long)a->params_total, (long long)b->params_total);
    cr_assert_eq(a->state_total, b->state_total);
    rc_backend *ba, *bb;
    cr_assert_eq(rc_backend_open(a, "ref", "cpu", &ba, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_backend_open(b, "ref", "cpu", &bb, err, sizeof err), 0, "%s", err);
    int T = a->history + NB + 3;
    size_t P = (size_t)a->params_total, S = (size_t)a->state_total, F = (size_t)a->height * a->width;
    float *frames = malloc(sizeof *frames * T * F), *params = malloc(sizeof *params * P);
    float *sa = malloc(sizeof *sa * S), *sb = malloc(sizeof *sb * S);
    float *ya = malloc(sizeof(float) * NB * CELLS), *yb = malloc(sizeof(float) * NB * CELLS);
    float *ga = calloc(P, sizeof *ga), *gb = calloc(P, sizeof *gb), dy[NB * CELLS];
    float *wa = malloc(sizeof(float) * ba->ws_floats(ba, NB)), *wb = malloc(sizeof(float) * bb->ws_floats(bb, NB));
    int64_t starts[NB];
    for (int i = 0; i < NB; i++) starts[i] = i * 2 % 4 + i / 2;
    fill(frames, (size_t)T * F, 1, -1, 1);
    fill(params, P, 2, -0.5, 0.5);
    fill(sa, S, 3, 0.5, 1.5);
    memcpy(sb, sa, sizeof *sa * S);
    fill(dy, NB * CELLS, 4, -1, 1);
    cr_assert_eq(ba->train_forward(ba, NB, params, sa, NULL, 11, frames, starts, ya, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->train_forward(bb, NB, params, sb, NULL, 11, frames, starts, yb, wb), 0, "%s", bb->err);
    cr_assert(rel(yb, ya, NB * CELLS) < 1e-5, "train output differs: %g", rel(yb, ya, NB * CELLS));
    cr_assert(rel(sb, sa, S) < 1e-5, "running statistics differ: %g", rel(sb, sa, S));
    cr_assert_eq(ba->train_backward(ba, NB, params, NULL, frames, starts, dy, ga, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->train_backward(bb, NB, params, NULL, frames, starts, dy, gb, wb), 0, "%s", bb->err);
    for (int k = 0; k < a->n_params; k++) {
        const rc_param *p = &a->params[k];
        double e = rel(gb + p->offset, ga + p->offset, (size_t)p->count);
        cr_assert(e < 1e-4, "gradient of %s differs from %s: %g", b->params[k].name, p->name, e);
    }
    cr_assert_eq(ba->infer(ba, NB, params, sa, NULL, frames, starts, ya, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->infer(bb, NB, params, sb, NULL, frames, starts, yb, wb), 0, "%s", bb->err);
    cr_assert(rel(yb, ya, NB * CELLS) < 1e-5, "eval output differs: %g", rel(yb, ya, NB * CELLS));
    rc_backend_destroy(ba);
    rc_backend_destroy(bb);
    free(frames); free(params); free(sa); free(sb); free(ya); free(yb); free(ga); free(gb); free(wa); free(wb);
}

static void reinfer(rc_ir *ir)
{
    cr_assert_eq(rc_ir_infer(ir, CELLS, "test", err, sizeof err), 0, "%s", err);
}

/* tiny.lua: conv, relu, conv, relu, dense, batchnorm(unit), softplus */
Test(ref_def, defined_relu_conv_and_batchnorm_equal_the_builtins)
{
    static rc_ir a, b;
    load_tiny(&a);
    b = a;
    def_conv(&b, 0, a.layers[0].in, a.layers[0].channels, a.layers[0].kernel);   /* reads the frame stream */
    def_relu(&b, 1, a.layers[1].in);
    def_bn_unit(&b, 5, a.layers[5].in, a.layers[5].eps, a.layers[5].momentum);
    reinfer(&b);
    cr_assert_eq(b.layers[5].out.c, CELLS);
    cr_assert_str_eq(b.params[0].name, "1.myconv.weight");
    same_model(&a, &b);
}

Test(ref_def, canonical_text_of_a_defined_layer_round_trips)
{
    static rc_ir a, b;
    load_tiny(&a);
    def_bn_unit(&a, 5, a.layers[5].in, 1e-3, 0.01);
    reinfer(&a);
    char *t1 = rc_ir_format(&a);
    cr_assert(strstr(t1, "layer def kind=mybn\nprim param scale 1,5,1,1"), "%s", t1);
    cr_assert_eq(rc_ir_parse(&b, t1, "t", err, sizeof err), 0, "%s", err);
    reinfer(&b);
    char *t2 = rc_ir_format(&b);
    cr_assert_str_eq(t1, t2);
    char h1[65], h2[65];
    rc_ir_hash(&a, h1);
    rc_ir_hash(&b, h2);
    cr_assert_str_eq(h1, h2);
    /* a prim line outside a defined layer, and a broken graph, are refused with the line */
    char *bad = strdup(t1);
    char *p = strstr(bad, "prim n1 ");
    cr_assert(p);
    memcpy(p + 5, "n1 frob", 7);
    cr_assert_eq(rc_ir_parse(&b, bad, "t", err, sizeof err), 0, "%s", err);   /* the text is stored as is */
    cr_assert_neq(rc_ir_infer(&b, CELLS, "t", err, sizeof err), 0);
    cr_assert(strstr(err, "layer 6 (mybn)") && strstr(err, "unknown primitive"), "%s", err);
    free(bad);
    free(t1);
    free(t2);
}

Test(ref_def, a_defined_layer_whose_graph_does_not_fit_its_input_is_refused)
{
    static rc_ir a;
    load_tiny(&a);
    rc_shape wrong = a.layers[1].in;
    wrong.c += 1;
    def_relu(&a, 1, wrong);
    cr_assert_neq(rc_ir_infer(&a, CELLS, "t.lua", err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua: layer 2 (myrelu): the graph's input is not the layer's input (B,3,12,12)"), "%s", err);
}
