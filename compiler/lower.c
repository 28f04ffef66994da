/* lower.c — idiom lowering of defined layers onto the built-in kinds' tuned kernels (issue 14).
 *
 * A defined layer whose primitive graph is exactly one of the built-in kinds' forms is emitted
 * with that kind's kernels: the C emitter's register-blocked convs with the fused chain after
 * them and, for layer 1, the FFT first conv over the frame stream; the built-in dense and
 * rectifications. Recognized (the prelude's definitions are these graphs, so def.conv, def.dense
 * and the def.<rectification>s are lowered; a user's layer that computes the same graph is too):
 *   conv   y = conv2d(x, weight) [+ reshape(bias, (1, O, 1, 1))], stride 1, no padding,
 *          dilation 1, not tiled; x the layer input; parameters named weight [and bias]
 *   dense  y = reshape(matmul(reshape(x, (B, F)), transpose(weight)) [+ bias (as (1, U))], (B, U, 1, 1))
 *   relu   select(gt(x, 0), x, 0)      requ  select(gt(x, 0), x * x, 0)     square  x * x
 *          softplus(x), exp(x), abs(x), sigmoid(x), tanh(x), and x itself (identity)
 * Training and evaluation must be the same node, with no state, update or random draw, so the
 * built-in computes exactly the same function and gradients (both are tested equal to the
 * reference; the built-in kinds also against PyTorch).
 *
 * Invariants: the lowered copy differs from the IR only in the lowered layers' kind fields
 * (kind, channels, kernel, bias, units, act); shapes, parameter views (names, offsets) and
 * everything else are the IR's. It is an emitter's private view: the model's canonical text,
 * hash, checkpoints and the reference backend keep the defined layer.
 */
#include "lower.h"
#include "prim.h"

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
    const rc_prim_node *cv = N(m, c);
    if (cv->op != RC_P_CONV2D || !is_input(m, cv->in[0]) || param_named(m, cv->in[1], "weight") < 0) return 0;
    const int *at = cv->attr;
    if (at[0] != 1 || at[1] != 0 || at[2] != 1 || at[3] != 1 || at[4] != 1) return 0;
    const rc_prim_node *w = N(m, cv->in[1]);
    if (w->rank != 4 || w->dims[2] != w->dims[3]) return 0;
    *O = w->dims[0];
    *K = w->dims[2];
    if (*bias) {   /* (1, O, 1, 1) of a bias of O */
        const rc_prim_node *r = N(m, b), *bp = N(m, r->in[0]);
        if (r->rank != 4 || r->dims[1] != *O || bp->rank != 1 || bp->dims[0] != *O) return 0;
    }
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

/* The graph as a built-in layer (kind fields set in *l), or 0. */
static int lower_one(const rc_prim_graph *g, rc_layer *l)
{
    mt m = {g};
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
