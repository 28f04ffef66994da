/* lower.c — idiom lowering of defined layers onto the built-in kinds' tuned kernels (issue 14).
 *
 * A defined layer whose primitive graph is exactly one of the built-in kinds' forms is emitted
 * with that kind's kernels: the C emitter's register-blocked convs with the fused chain after
 * them and, for layer 1, the FFT first conv over the frame stream; the built-in dense and
 * rectifications. Recognized (the prelude's definitions are these graphs, so def.conv, def.dense
 * and the def.<rectification>s are lowered; a user's layer that computes the same graph is too):
 *   conv   y = conv2d(x, weight) [+ reshape(bias, (1, O, 1, 1))], stride 1, no padding,
 *          dilation 1, not tiled; x the layer input; parameters named weight [and bias]
 *   stacked conv  the prelude's stack form: [bias +] a chain of plain conv2d's with parameters
 *          sub0.weight .. sub<n-1>.weight, in training with the same dropout between every two
 *          (consecutive random sub-streams), for the sub-kernels the built-in plans
 *   tiled / locally connected conv  conv2d(x, weight, period P) [+ a (1, O, Ho, Wo) map made of
 *          movements of a bias (P, P, O): map[o][y][x] = bias[y % P][x % P][o], checked on a probe]
 *   gcconv [bias +] cellpick(conv2d(x, weight), position)
 *   dense  y = reshape(matmul(reshape(x, (B, F)), transpose(weight)) [+ bias (as (1, U))], (B, U, 1, 1))
 *   relu   select(gt(x, 0), x, 0)      requ  select(gt(x, 0), x * x, 0)     square  x * x
 *          softplus(x), exp(x), abs(x), sigmoid(x), tanh(x), and x itself (identity)
 * These must be the same node in training and evaluation, with no state, update or random draw.
 *   batchnorm  the prelude's def.batchnorm graph for some over / abs / eps / momentum: those are
 *          read off the graph, the prelude's graph for them is rebuilt here (batch_norm_graph)
 *          and the two are compared node for node (outputs of both modes and both updates)
 *   noise  training x + std * randn(x), evaluation x;  dropout  training
 *          select(randu(x) >= p, x * (1 / (1 - p)), 0), evaluation x: as the built-ins, drawing
 *          from the defined layer's stream (rng_sub = RC_PRIM_RNG_SUB0 + k: the same numbers
 *          as the graph)
 * So the built-in kernels compute the same function, gradients and state updates as the graph
 * (both are tested equal to the reference; the built-in kinds also against PyTorch).
 *
 * Invariants: the lowered copy differs from the IR only in the lowered layers' kind fields
 * (kind, channels, kernel, bias, units, act, over, abs_scale, eps, momentum, std, p, rng_sub, the
 * stack fields, position); shapes, parameter views (names, offsets) and
 * everything else are the IR's. It is an emitter's private view: the model's canonical text,
 * hash, checkpoints and the reference backend keep the defined layer.
 */
#include "lower.h"
#include "prim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const rc_prim_graph *g;
} mt;

static const rc_prim_node *N(const mt *m, int i) { return &m->g->node[i]; }

static int is_input(const mt *m, int i) { return N(m, i)->op == RC_P_INPUT && N(m, i)->ref == 0; }

static int is_zero(const mt *m, int i)
{
    const rc_prim_node *n = N(m, i);
    if (n->op != RC_P_CONST || n->value != 0.0) return 0;
    for (int k = 0; k < n->rank; k++)
        if (n->dims[k] != 1) return 0;
    return 1;
}

/* the parameter leaf named name, or -1 */
static int param_named(const mt *m, int i, const char *name)
{
    const rc_prim_node *n = N(m, i);
    if (n->op != RC_P_PARAM || n->ref < 0 || n->ref >= m->g->n_param) return -1;
    return strcmp(m->g->param[n->ref].name, name) ? -1 : n->ref;
}

/* out = x OP? a rectification of the input; sets *act */
static int match_act(const mt *m, int y, rc_act *act)
{
    const rc_prim_node *n = N(m, y);
    static const struct { rc_prim_op op; rc_act act; } un[] = {
        {RC_P_SOFTPLUS, RC_ACT_SOFTPLUS}, {RC_P_EXP, RC_ACT_EXP}, {RC_P_ABS, RC_ACT_ABS},
        {RC_P_SIGMOID, RC_ACT_SIGMOID}, {RC_P_TANH, RC_ACT_TANH},
    };
    if (is_input(m, y)) { *act = RC_ACT_IDENTITY; return 1; }
    for (size_t k = 0; k < sizeof un / sizeof un[0]; k++)
        if (n->op == un[k].op && is_input(m, n->in[0])) { *act = un[k].act; return 1; }
    if (n->op == RC_P_MUL && is_input(m, n->in[0]) && n->in[1] == n->in[0]) { *act = RC_ACT_SQUARE; return 1; }
    if (n->op == RC_P_SELECT && is_zero(m, n->in[2])) {
        const rc_prim_node *c = N(m, n->in[0]), *a = N(m, n->in[1]);
        if (c->op != RC_P_GT || !is_input(m, c->in[0]) || !is_zero(m, c->in[1])) return 0;
        if (is_input(m, n->in[1])) { *act = RC_ACT_RELU; return 1; }
        if (a->op == RC_P_MUL && is_input(m, a->in[0]) && a->in[1] == a->in[0]) { *act = RC_ACT_REQU; return 1; }
    }
    return 0;
}

/* A conv2d of plain form (stride 1, no padding, dilation 1, not tiled) whose weight is the
 * parameter named name, square (O, C, K, K): its K and O, else 0. */
static int plain_conv(const mt *m, int c, const char *name, int *O, int *K)
{
    const rc_prim_node *cv = N(m, c);
    if (cv->op != RC_P_CONV2D || param_named(m, cv->in[1], name) < 0) return 0;
    const int *at = cv->attr;
    if (at[0] != 1 || at[1] != 0 || at[2] != 1 || at[3] != 1 || at[4] != 1) return 0;
    const rc_prim_node *w = N(m, cv->in[1]);
    if (w->rank != 4 || w->dims[2] != w->dims[3]) return 0;
    *O = w->dims[0];
    *K = w->dims[2];
    return 1;
}

/* y = c or c + reshape(bias) with c = conv2d(input, weight) plain */
static int match_conv(const mt *m, int y, int *O, int *K, int *bias)
{
    const rc_prim_node *n = N(m, y);
    int c = y, b = -1;
    *bias = 0;
    if (n->op == RC_P_ADD) {
        for (int s = 0; s < 2; s++)
            if (N(m, n->in[s])->op == RC_P_CONV2D) { c = n->in[s]; b = n->in[1 - s]; }
        if (b < 0) return 0;
        const rc_prim_node *r = N(m, b);
        if (r->op != RC_P_RESHAPE || param_named(m, r->in[0], "bias") < 0) return 0;
        *bias = 1;
    }
    if (!plain_conv(m, c, "weight", O, K) || !is_input(m, N(m, c)->in[0])) return 0;
    if (*bias) {   /* (1, O, 1, 1) of a bias of O */
        const rc_prim_node *r = N(m, b), *bp = N(m, r->in[0]);
        if (r->rank != 4 || r->dims[1] != *O || bp->rank != 1 || bp->dims[0] != *O) return 0;
    }
    return 1;
}

/* y = t + reshape(bias, (1, O, 1, 1)) (bias a parameter of O): t, else y itself (*bias = 0) */
static int strip_bias(const mt *m, int y, int O, int *bias)
{
    const rc_prim_node *n = N(m, y);
    *bias = 0;
    if (n->op != RC_P_ADD) return y;
    const rc_prim_node *r = N(m, n->in[1]);
    if (r->op != RC_P_RESHAPE || param_named(m, r->in[0], "bias") < 0 || r->rank != 4 || r->dims[1] != O) return y;
    const rc_prim_node *bp = N(m, r->in[0]);
    if (bp->rank != 1 || bp->dims[0] != O) return y;
    *bias = 1;
    return n->in[0];
}

/* The stacked conv (the prelude's def.conv with stack = s): training and evaluation outputs
 *   [bias +] conv2d(d(... d(conv2d(conv2d(x, sub0.weight)) ...)), sub<n-1>.weight)
 * where d is the identity in evaluation and, in training with stack_dropout = p > 0, the dropout
 * select(randu(y) >= p, y * (1 / (1 - p)), 0) on consecutive random sub-streams k0, k0 + 1, ...
 * The sub-kernels must be the ones the built-in plans for (kernel, stack) and the inner channels
 * all equal: the built-in's parameter shapes. Sets the built-in's stack fields and rng_sub so
 * that the dropout after sub-conv j draws from RC_RNG_STREAM(layer, rng_sub + j + 1). */
static int match_stack(const rc_prim_graph *g, rc_layer *l)
{
    mt m = {g};
    int ye = g->out[RC_PRIM_EVAL], yt = g->out[RC_PRIM_TRAIN];
    if (ye < 0 || yt < 0 || g->n_state || g->n_param < 1 || g->n_param > RC_MAX_STACK + 1) return 0;
    int O, bias, bias_t;
    /* the evaluation chain, last sub-conv first: n from its parameter's name */
    int ns, c[RC_MAX_STACK], k[RC_MAX_STACK], o[RC_MAX_STACK];
    int last = N(&m, ye)->op == RC_P_ADD ? N(&m, ye)->in[0] : ye;
    const rc_prim_node *lc = N(&m, last);
    if (lc->op != RC_P_CONV2D || N(&m, lc->in[1])->op != RC_P_PARAM) return 0;
    const char *wn = g->param[N(&m, lc->in[1])->ref].name;
    char tail[16];
    if (sscanf(wn, "sub%d%15s", &ns, tail) != 2 || strcmp(tail, ".weight") || ns < 0 || ns >= RC_MAX_STACK) return 0;
    ns++;
    int y = last;
    for (int j = ns - 1; j >= 0; j--) {
        char nm[32];
        snprintf(nm, sizeof nm, "sub%d.weight", j);
        if (!plain_conv(&m, y, nm, &o[j], &k[j])) return 0;
        c[j] = y;
        y = N(&m, y)->in[0];
    }
    if (!is_input(&m, y)) return 0;
    O = o[ns - 1];
    if (strip_bias(&m, ye, O, &bias) != last || g->n_param != ns + bias) return 0;
    /* the training chain: the same convs, or dropouts between them */
    int yl = strip_bias(&m, yt, O, &bias_t);
    if (bias_t != bias) return 0;
    double p = 0;
    int k0 = -1;
    y = yl;
    for (int j = ns - 1; j >= 0; j--) {
        const rc_prim_node *cv = N(&m, y);
        if (cv->op != RC_P_CONV2D || cv->in[1] != N(&m, c[j])->in[1]) return 0;
        if (memcmp(cv->attr, N(&m, c[j])->attr, sizeof cv->attr)) return 0;
        y = cv->in[0];
        if (j == 0) break;
        if (y == c[j - 1]) { if (p > 0) return 0; continue; }   /* no dropout: the same node */
        const rc_prim_node *t = N(&m, y), *ge, *ru, *pc, *kept, *sc;
        if (t->op != RC_P_SELECT || !is_zero(&m, t->in[2])) return 0;
        if ((ge = N(&m, t->in[0]))->op != RC_P_GE || (ru = N(&m, ge->in[0]))->op != RC_P_RANDU ||
            (pc = N(&m, ge->in[1]))->op != RC_P_CONST)
            return 0;
        if ((kept = N(&m, t->in[1]))->op != RC_P_MUL || (sc = N(&m, kept->in[1]))->op != RC_P_CONST) return 0;
        int prev = kept->in[0];   /* the previous sub-conv's training value */
        const rc_prim_node *pv = N(&m, prev);
        if (pv->op != RC_P_CONV2D || memcmp(ru->dims, t->dims, sizeof t->dims)) return 0;
        if (!(pc->value > 0 && pc->value < 1) || (p > 0 && pc->value != p)) return 0;
        if ((float)sc->value != (float)(1 / (1 - pc->value))) return 0;   /* the built-in scales by (float)(1 / (1 - p)) */
        if (k0 >= 0 && ru->attr[0] != k0 + j - 1) return 0;
        if (k0 < 0 && j != ns - 1) return 0;                   /* dropout after every sub-conv but the last, or none */
        k0 = ru->attr[0] - (j - 1);
        p = pc->value;
        y = prev;
    }
    if (!is_input(&m, y)) return 0;
    if (p > 0 && k0 < 0) return 0;
    /* the built-in's plan for (kernel, stack) and uniform inner channels */
    int s = k[0], K = k[0];
    for (int j = 1; j < ns; j++) K += k[j] - 1;
    if (ns > 1) {
        int n0 = (K - s) / (s - 1) + 1;
        if (!(ns == n0 || ns == n0 + 1)) return 0;
        for (int j = 0; j < ns; j++) {
            int want = j < n0 ? s : K - (s + (n0 - 1) * (s - 1)) + 1;
            if (k[j] != want) return 0;
        }
        for (int j = 0; j + 1 < ns; j++)
            if (o[j] != o[0]) return 0;
    } else if (K != s) {
        return 0;
    }
    l->kind = RC_LAYER_CONV;
    l->channels = O;
    l->kernel = K;
    l->bias = bias;
    l->period = 1;
    l->stack = s;
    l->stack_channels = ns > 1 && o[0] != O ? o[0] : 0;
    l->stack_dropout = p;
    l->rng_sub = p > 0 ? RC_PRIM_RNG_SUB0 + k0 - 1 : 0;
    l->n_sub = ns;
    int cin = l->in.c;
    for (int j = 0; j < ns; j++) {
        l->sub_k[j] = k[j];
        l->sub_cin[j] = cin;
        l->sub_cout[j] = o[j];
        cin = o[j];
    }
    return 1;
}

/* 1 if every node of the subtree at t is a movement (reshape, transpose, expand, slice) or the
 * parameter leaf named bias; marks the subtree in need. */
static int movement_of_bias(const mt *m, int t, unsigned char *need)
{
    if (need[t]) return 1;
    const rc_prim_node *n = N(m, t);
    need[t] = 1;
    if (n->op == RC_P_PARAM) return param_named(m, t, "bias") >= 0;
    if (n->op != RC_P_RESHAPE && n->op != RC_P_TRANSPOSE && n->op != RC_P_EXPAND && n->op != RC_P_SLICE) return 0;
    for (int k = 0; k < n->n_in; k++)
        if (!movement_of_bias(m, n->in[k], need)) return 0;
    return 1;
}

/* The prelude's tiled and locally connected def.conv: y = conv2d(x, weight, period P) [+ T],
 * weight (P, P, O, C, K, K), T (1, O, Ho, Wo) made of movements of a bias (P, P, O) with
 * T[o][y][x] = bias[y % P][x % P][o]. T is checked by evaluating it on a probe bias of distinct
 * values (a movement only copies elements, so one probe identifies it). */
static int match_tiled(const mt *m, int y, rc_layer *l)
{
    const rc_prim_node *n = N(m, y);
    int cv = y, t = -1;
    if (n->op == RC_P_ADD) {
        for (int s = 0; s < 2; s++)
            if (N(m, n->in[s])->op == RC_P_CONV2D) { cv = n->in[s]; t = n->in[1 - s]; }
        if (t < 0) return 0;
    }
    const rc_prim_node *c = N(m, cv), *w;
    if (c->op != RC_P_CONV2D || !is_input(m, c->in[0]) || param_named(m, c->in[1], "weight") < 0) return 0;
    const int *at = c->attr;
    int P = at[3];
    if (at[0] != 1 || at[1] != 0 || at[2] != 1 || P < 2 || at[4] != P) return 0;
    w = N(m, c->in[1]);
    if (w->rank != 6 || w->dims[0] != P || w->dims[1] != P || w->dims[4] != w->dims[5]) return 0;
    int O = w->dims[2], K = w->dims[4], ho = c->dims[2], wo = c->dims[3];
    if (m->g->n_param != 1 + (t >= 0)) return 0;
    if (t >= 0) {
        const rc_prim_node *tn = N(m, t);
        if (tn->rank != 4 || tn->dims[0] != 1 || tn->dims[1] != O || tn->dims[2] != ho || tn->dims[3] != wo) return 0;
        int ok = 0;
        unsigned char *need = calloc((size_t)m->g->n, 1);
        int bref = -1;
        for (int k = 0; k < m->g->n_param; k++)
            if (!strcmp(m->g->param[k].name, "bias")) bref = k;
        const rc_prim_decl *bd = bref >= 0 ? &m->g->param[bref] : NULL;
        float *probe = NULL;
        double **val = NULL;
        if (need && bd && bd->rank == 3 && bd->dims[0] == P && bd->dims[1] == P && bd->dims[2] == O &&
            movement_of_bias(m, t, need) && (probe = malloc(sizeof(float) * (size_t)P * P * O)) &&
            (val = calloc((size_t)m->g->n, sizeof *val))) {
            for (int k = 0; k < P * P * O; k++) probe[k] = (float)(k + 1);
            rc_prim_eval_ctx cx;
            memset(&cx, 0, sizeof cx);
            cx.B = 1;
            cx.mode = RC_PRIM_EVAL;
            cx.param[bref] = probe;
            char e[160];
            if (rc_prim_eval(m->g, &cx, need, val, e, sizeof e) == 0 && val[t]) {
                ok = 1;
                for (int o = 0; o < O && ok; o++)
                    for (int yy = 0; yy < ho && ok; yy++)
                        for (int xx = 0; xx < wo && ok; xx++)
                            ok = val[t][((size_t)o * ho + yy) * wo + xx] == probe[((yy % P) * P + xx % P) * O + o];
            }
            rc_prim_vals_free(m->g, val);
        }
        free(val);
        free(probe);
        free(need);
        if (!ok) return 0;
    }
    l->kind = RC_LAYER_CONV;
    l->channels = O;
    l->kernel = K;
    l->bias = t >= 0;
    l->period = P;
    l->stack = 0;
    l->stack_channels = 0;
    l->stack_dropout = 0;
    return 1;
}

/* The prelude's def.gcconv: [bias +] cellpick(conv2d(x, weight), position), plain conv. */
static int match_gcconv(const mt *m, int y, rc_layer *l)
{
    int O, K, bias;
    int pk = strip_bias(m, y, l->out.c, &bias);
    const rc_prim_node *cp = N(m, pk);
    if (cp->op != RC_P_CELLPICK || !plain_conv(m, cp->in[0], "weight", &O, &K)) return 0;
    if (!is_input(m, N(m, cp->in[0])->in[0]) || cp->attr[0] < RC_POS_CENTER || cp->attr[0] > RC_POS_REFERENCE) return 0;
    if (m->g->n_param != 1 + bias) return 0;
    l->kind = RC_LAYER_GCCONV;
    l->kernel = K;
    l->bias = bias;
    l->position = (rc_gc_pos)cp->attr[0];
    return 1;
}

/* y = reshape(mm or mm + bias, (B, U, 1, 1)), mm = matmul(reshape(input, (B, F)), transpose(weight)) */
static int match_dense(const mt *m, int y, int *U, int *bias)
{
    const rc_prim_node *r = N(m, y);
    if (r->op != RC_P_RESHAPE || r->rank != 4 || r->dims[2] != 1 || r->dims[3] != 1) return 0;
    int mm = r->in[0];
    *bias = 0;
    if (N(m, mm)->op == RC_P_ADD) {   /* + bias, as (U) or reshaped to (1, U) for the broadcast */
        const rc_prim_node *a = N(m, mm), *b = N(m, a->in[1]);
        int bp = b->op == RC_P_RESHAPE ? b->in[0] : a->in[1];
        if (N(m, a->in[0])->op != RC_P_MATMUL || param_named(m, bp, "bias") < 0) return 0;
        mm = a->in[0];
        *bias = 1;
    }
    const rc_prim_node *mn = N(m, mm), *xf = N(m, mn->in[0]), *tw = N(m, mn->in[1]);
    if (mn->op != RC_P_MATMUL || xf->op != RC_P_RESHAPE || !is_input(m, xf->in[0]) || xf->rank != 2) return 0;
    if (tw->op != RC_P_TRANSPOSE || tw->attr[0] != 1 || tw->attr[1] != 0 || param_named(m, tw->in[0], "weight") < 0) return 0;
    *U = mn->dims[1];
    return *U == r->dims[1];
}

/* ---------------------------------------------------------------- structural equality */

typedef struct {
    const rc_prim_graph *a, *b;
    int *map;   /* node of a -> its equal in b, -1 unknown, -2 proven different */
} cmp;

static int decl_eq(const rc_prim_decl *x, const rc_prim_decl *y)
{
    return !strcmp(x->name, y->name) && x->rank == y->rank && !memcmp(x->dims, y->dims, sizeof(int) * (size_t)x->rank);
}

/* node i of a and node j of b compute the same thing (same ops, attributes, values, leaves and
 * inputs, recursively); independent of node numbering */
static int same(cmp *c, int i, int j)
{
    if (c->map[i] >= 0) return c->map[i] == j;
    const rc_prim_node *x = &c->a->node[i], *y = &c->b->node[j];
    if (x->op != y->op || x->n_in != y->n_in || x->rank != y->rank || x->ref != y->ref ||
        memcmp(x->dims, y->dims, sizeof x->dims) || memcmp(x->attr, y->attr, sizeof x->attr) ||
        memcmp(&x->value, &y->value, sizeof x->value))
        return 0;
    for (int k = 0; k < x->n_in; k++)
        if (!same(c, x->in[k], y->in[k])) return 0;
    c->map[i] = j;
    return 1;
}

/* a and b: the same declarations, both outputs and the same updates of the same state */
static int same_graph(const rc_prim_graph *a, const rc_prim_graph *b)
{
    if (a->n_param != b->n_param || a->n_state != b->n_state) return 0;
    for (int k = 0; k < a->n_param; k++) if (!decl_eq(&a->param[k], &b->param[k])) return 0;
    for (int k = 0; k < a->n_state; k++) if (!decl_eq(&a->state[k], &b->state[k])) return 0;
    int *map = malloc(sizeof(int) * (size_t)(a->n > 0 ? a->n : 1));
    if (!map) return 0;
    for (int i = 0; i < a->n; i++) map[i] = -1;
    cmp c = {a, b, map};
    int ok = same(&c, a->out[0], b->out[0]) && same(&c, a->out[1], b->out[1]);
    int ua = 0, ub = 0;
    for (int i = 0; i < b->n; i++) ub += b->node[i].op == RC_P_UPDATE;
    for (int i = 0; ok && i < a->n; i++) {
        if (a->node[i].op != RC_P_UPDATE) continue;
        ua++;
        int found = 0;
        for (int j = 0; j < b->n && !found; j++)
            if (b->node[j].op == RC_P_UPDATE && b->node[j].ref == a->node[i].ref) found = same(&c, i, j);
        ok = found;
    }
    free(map);
    return ok && ua == ub;
}

/* ---------------------------------------------------------------- batch norm */

/* The prelude's def.batchnorm graph (compiler/frontend/prelude.lua) on input in (B, c, h, w)
 * for over / abs / eps / momentum, with g's declarations (checked by the caller's compare). */
static int batch_norm_graph(rc_prim_graph *r, const rc_prim_graph *g, const rc_prim_node *in, int channel, int absd,
                            double eps, double mom)
{
    char e[160];
    size_t el = sizeof e;
    rc_prim_init(r);
    r->n_param = g->n_param;
    r->n_state = g->n_state;
    memcpy(r->param, g->param, sizeof r->param);
    memcpy(r->state, g->state, sizeof r->state);
    int c = in->dims[1], h = in->dims[2], w = in->dims[3];
    int stat[4] = {1, c, channel ? 1 : h, channel ? 1 : w}, ax[RC_PRIM_NATTR] = {channel ? 0xd : 0x1};
    int na[RC_PRIM_NATTR] = {channel ? h * w : 1, 1, 0}, ones[4] = {1, 1, 1, 1}, fd[1];
#define RB(expr) do { if ((expr) < 0) return -1; } while (0)
    int x, sc, sh, rm, rv, mean, d, var, n, t, u, k, mk, y, nm, nv, q;
    RB(x = rc_prim_add(r, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, in->dims, 0, e, el));
    RB(sc = rc_prim_add(r, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 0, e, el));
    RB(sh = rc_prim_add(r, RC_P_PARAM, 0, NULL, NULL, 0, 1, 0, NULL, 0, e, el));
    RB(rm = rc_prim_add(r, RC_P_STATE, 0, NULL, NULL, 0, 0, 0, NULL, 0, e, el));
    RB(rv = rc_prim_add(r, RC_P_STATE, 0, NULL, NULL, 0, 1, 0, NULL, 0, e, el));
    fd[0] = r->state[0].dims[0];
    int s_rm, s_rv, s_sc, s_sh;   /* s(t) = reshape(t, stat) */
    RB(s_rm = rc_prim_add(r, RC_P_RESHAPE, 1, &rm, NULL, 0, 0, 4, stat, 0, e, el));
    RB(s_rv = rc_prim_add(r, RC_P_RESHAPE, 1, &rv, NULL, 0, 0, 4, stat, 0, e, el));
    RB(s_sc = rc_prim_add(r, RC_P_RESHAPE, 1, &sc, NULL, 0, 0, 4, stat, 0, e, el));
    RB(s_sh = rc_prim_add(r, RC_P_RESHAPE, 1, &sh, NULL, 0, 0, 4, stat, 0, e, el));
    if (absd) RB(s_sc = rc_prim_un(r, RC_P_ABS, s_sc, e, el));
    /* training: mean_ = mean(x), var_ = mean((x - mean_)^2), n = count */
    RB(mean = rc_prim_add(r, RC_P_MEAN, 1, &x, ax, 0, 0, 0, NULL, 0, e, el));
    RB(d = rc_prim_bin(r, RC_P_SUB, x, mean, e, el));
    RB(t = rc_prim_add(r, RC_P_POWC, 1, &d, NULL, 2.0, 0, 0, NULL, 0, e, el));
    RB(var = rc_prim_add(r, RC_P_MEAN, 1, &t, ax, 0, 0, 0, NULL, 0, e, el));
    RB(n = rc_prim_add(r, RC_P_NUMEL, 0, NULL, na, 0, 0, 4, ones, 0, e, el));
    /* update(running_mean, (1 - m) s(rm) + m mean_); update(running_var, (1 - m) s(rv) + m var_ n / (n - 1)) */
    RB(k = rc_prim_const_like(r, s_rm, 1 - mom, e, el));
    RB(mk = rc_prim_const_like(r, mean, mom, e, el));
    RB(nm = rc_prim_bin(r, RC_P_ADD, rc_prim_bin(r, RC_P_MUL, k, s_rm, e, el), rc_prim_bin(r, RC_P_MUL, mk, mean, e, el), e, el));
    RB(q = rc_prim_add(r, RC_P_RESHAPE, 1, &nm, NULL, 0, 0, 1, fd, 0, e, el));
    RB(rc_prim_add(r, RC_P_UPDATE, 1, &q, NULL, 0, 0, 0, NULL, 0, e, el));
    RB(t = rc_prim_bin(r, RC_P_MUL, rc_prim_bin(r, RC_P_MUL, mk, var, e, el), n, e, el));
    RB(u = rc_prim_bin(r, RC_P_SUB, n, rc_prim_const_like(r, n, 1.0, e, el), e, el));
    RB(nv = rc_prim_bin(r, RC_P_ADD, rc_prim_bin(r, RC_P_MUL, k, s_rv, e, el), rc_prim_bin(r, RC_P_DIV, t, u, e, el), e, el));
    RB(q = rc_prim_add(r, RC_P_RESHAPE, 1, &nv, NULL, 0, 0, 1, fd, 0, e, el));
    RB(rc_prim_add(r, RC_P_UPDATE, 1, &q, NULL, 0, 1, 0, NULL, 0, e, el));
    for (int mode = 0; mode < 2; mode++) {   /* (x - mean) / sqrt(var + eps) * scale + shift */
        int mu = mode ? s_rm : mean, va = mode ? s_rv : var, dd;
        RB(dd = mode ? rc_prim_bin(r, RC_P_SUB, x, mu, e, el) : d);
        RB(t = rc_prim_un(r, RC_P_SQRT, rc_prim_bin(r, RC_P_ADD, va, rc_prim_const_like(r, va, eps, e, el), e, el), e, el));
        RB(y = rc_prim_bin(r, RC_P_ADD, rc_prim_bin(r, RC_P_MUL, rc_prim_bin(r, RC_P_DIV, dd, t, e, el), s_sc, e, el), s_sh, e, el));
        r->out[mode] = y;
    }
#undef RB
    return 0;
}

/* def.batchnorm's options read off the graph (eps: the constant under the evaluation sqrt;
 * momentum: the constant times the batch mean in the first update; abs: |scale|; over: the
 * statistics' shape), then the prelude's graph for them compared node for node. */
static int match_batchnorm(const rc_prim_graph *g, rc_layer *l)
{
    if (g->n_param != 2 || g->n_state != 2 || strcmp(g->param[0].name, "scale") || strcmp(g->param[1].name, "shift") ||
        strcmp(g->state[0].name, "running_mean") || strcmp(g->state[1].name, "running_var"))
        return 0;
    const rc_prim_node *in = NULL;
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == RC_P_INPUT && g->node[i].ref == 0) in = &g->node[i];
    if (!in || in->rank != 4 || in->dims[1] < 1 || in->dims[2] < 1 || in->dims[3] < 1) return 0;
    /* evaluation output: add(mul(div(sub, sqrt(add(s(rv), eps))), scale'), s(shift)) */
    const rc_prim_node *y = &g->node[g->out[RC_PRIM_EVAL]], *mu, *dv, *sq, *ad, *ep, *scl;
    if (y->op != RC_P_ADD || (mu = &g->node[y->in[0]])->op != RC_P_MUL) return 0;
    if ((dv = &g->node[mu->in[0]])->op != RC_P_DIV || (sq = &g->node[dv->in[1]])->op != RC_P_SQRT) return 0;
    if ((ad = &g->node[sq->in[0]])->op != RC_P_ADD || (ep = &g->node[ad->in[1]])->op != RC_P_CONST) return 0;
    scl = &g->node[mu->in[1]];
    int absd = scl->op == RC_P_ABS;
    /* momentum: the first update's value, reshape(add(mul(1-m, s(rm)), mul(m, mean))) */
    double mom = -1;
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *u = &g->node[i], *rs, *a2, *m2, *cst;
        if (u->op != RC_P_UPDATE || u->ref != 0) continue;
        if ((rs = &g->node[u->in[0]])->op != RC_P_RESHAPE || (a2 = &g->node[rs->in[0]])->op != RC_P_ADD) return 0;
        if ((m2 = &g->node[a2->in[1]])->op != RC_P_MUL || (cst = &g->node[m2->in[0]])->op != RC_P_CONST) return 0;
        mom = cst->value;
    }
    if (!(mom >= 0 && mom <= 1) || !(ep->value > 0)) return 0;
    for (int channel = 0; channel < 2; channel++) {
        rc_prim_graph r;
        int ok = batch_norm_graph(&r, g, in, channel, absd, ep->value, mom) == 0 && same_graph(g, &r);
        rc_prim_free(&r);
        if (!ok) continue;
        l->kind = RC_LAYER_BATCHNORM;
        l->over = channel ? RC_BN_CHANNEL : RC_BN_UNIT;
        l->abs_scale = absd;
        l->eps = ep->value;
        l->momentum = mom;
        return 1;
    }
    return 0;
}

/* training x + std * randn(x) (noise) or select(randu(x) >= p, x * (1 / (1 - p)), 0) (dropout),
 * evaluation x */
static int match_noise(const rc_prim_graph *g, rc_layer *l)
{
    mt m = {g};
    int yt = g->out[RC_PRIM_TRAIN], ye = g->out[RC_PRIM_EVAL];
    if (g->n_param || g->n_state || !is_input(&m, ye) || yt == ye) return 0;
    const rc_prim_node *t = N(&m, yt);
    if (t->op == RC_P_ADD && is_input(&m, t->in[0])) {
        const rc_prim_node *mu = N(&m, t->in[1]), *c, *rn;
        if (mu->op != RC_P_MUL || (c = N(&m, mu->in[0]))->op != RC_P_CONST || (rn = N(&m, mu->in[1]))->op != RC_P_RANDN) return 0;
        if (memcmp(rn->dims, t->dims, sizeof t->dims) || !(c->value > 0)) return 0;
        l->kind = RC_LAYER_NOISE;
        l->std = c->value;
        l->rng_sub = RC_PRIM_RNG_SUB0 + rn->attr[0];
        return 1;
    }
    if (t->op == RC_P_SELECT && is_zero(&m, t->in[2])) {
        const rc_prim_node *ge = N(&m, t->in[0]), *ru, *pc, *kept = N(&m, t->in[1]), *sc;
        if (ge->op != RC_P_GE || (ru = N(&m, ge->in[0]))->op != RC_P_RANDU || (pc = N(&m, ge->in[1]))->op != RC_P_CONST) return 0;
        if (kept->op != RC_P_MUL || !is_input(&m, kept->in[0]) || (sc = N(&m, kept->in[1]))->op != RC_P_CONST) return 0;
        double p = pc->value;
        if (!(p > 0 && p < 1) || memcmp(ru->dims, t->dims, sizeof t->dims)) return 0;
        if ((float)sc->value != (float)(1 / (1 - p))) return 0;   /* the built-in scales by (float)(1 / (1 - p)) */
        l->kind = RC_LAYER_DROPOUT;
        l->p = p;
        l->rng_sub = RC_PRIM_RNG_SUB0 + ru->attr[0];
        return 1;
    }
    return 0;
}

/* The graph as a built-in layer (kind fields set in *l), or 0. */
static int lower_one(const rc_prim_graph *g, rc_layer *l)
{
    mt m = {g};
    if (match_batchnorm(g, l) || match_noise(g, l) || match_stack(g, l)) return 1;
    int y = g->out[RC_PRIM_TRAIN];
    if (y < 0 || y != g->out[RC_PRIM_EVAL] || g->n_state) return 0;
    for (int i = 0; i < g->n; i++) {
        rc_prim_op op = g->node[i].op;
        if (op == RC_P_UPDATE || op == RC_P_RANDN || op == RC_P_RANDU) return 0;
    }
    rc_act act;
    int O, K, U, bias;
    if (match_act(&m, y, &act) && g->n_param == 0) {
        l->kind = RC_LAYER_ACT;
        l->act = act;
        return 1;
    }
    if (match_conv(&m, y, &O, &K, &bias) && g->n_param == 1 + bias) {
        l->kind = RC_LAYER_CONV;
        l->channels = O;
        l->kernel = K;
        l->bias = bias;
        l->period = 1;
        l->stack = 0;
        l->stack_channels = 0;
        l->stack_dropout = 0;
        return 1;
    }
    if (match_gcconv(&m, y, l) || match_tiled(&m, y, l)) return 1;
    if (match_dense(&m, y, &U, &bias) && g->n_param == 1 + bias) {
        l->kind = RC_LAYER_DENSE;
        l->units = U;
        l->bias = bias;
        return 1;
    }
    return 0;
}

int rc_ir_lower(const rc_ir *ir, rc_ir *out, char *err, size_t errlen)
{
    memcpy(out, ir, sizeof *out);
    int n = 0;
    for (int li = 0; li < ir->n_layers; li++) {
        if (ir->layers[li].kind != RC_LAYER_DEF) continue;
        rc_prim_graph g;
        if (rc_ir_def_graph(ir, li, &g, err, errlen)) { rc_prim_free(&g); return -1; }
        rc_layer l = ir->layers[li];
        if (lower_one(&g, &l)) {
            /* the built-in's own fields, the IR's shapes and parameter views */
            l.def_kind[0] = 0;
            out->layers[li] = l;
            n++;
        }
        rc_prim_free(&g);
    }
    return n;
}
