/* ref_def.c — defined layers (RC_LAYER_DEF) in the reference backend: the layer's primitive
 * graph run by the reference interpreter (compiler/prim_eval.c), in double.
 *
 * Forward: the graph's output for the mode (in float, or in double for the reference's double
 * instance), and in training its UPDATE sinks written to the state. Backward: the forward is recomputed from the layer input (kept by ref.c) and the
 * state snapshot taken at forward time (so a state update does not change what the backward
 * sees), then the nodes of rc_prim_grad's gradient graph are evaluated; parameter gradients
 * accumulate (+=), the input gradient is written. Noise recomputes exactly: it is a pure
 * function of (seed, layer, index).
 */
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "prim.h"
#include "ref_def.h"

/* The evaluation context of layer li (mode, seed, input x, parameters and state snapshot). */
static int ctx_init(const rc_ir *ir, int li, const rc_prim_graph *g, int B, int mode, uint64_t seed,
                    const double *x, const float *params, const float *snap, const int *cell_pos,
                    rc_prim_eval_ctx *cx, char *err, size_t errlen)
{
    const rc_layer *L = &ir->layers[li];
    if (g->n_param != L->param_count || g->n_state != L->state_count)
        return rc_errf(err, errlen, "ref: layer %d (%s): graph has %d parameters and %d state tensors, the "
                       "layout %d and %d", li + 1, L->def_kind, g->n_param, g->n_state, L->param_count, L->state_count);
    memset(cx, 0, sizeof *cx);
    cx->B = B;
    cx->mode = mode;
    cx->seed = seed;
    cx->layer = li;
    cx->input_d[0] = x;
    cx->cell_pos = cell_pos;
    cx->n_cells = ir->cells;
    for (int k = 0; k < g->n_param; k++) cx->param[k] = params + ir->params[L->param_first + k].offset;
    int64_t off = 0;
    for (int k = 0; k < g->n_state; k++) {
        cx->state[k] = snap + off;
        off += ir->state[L->state_first + k].count;
    }
    return 0;
}

/* Evaluate the nodes marked in need (which it frees); *val (g->n values) for the caller to
 * release with vals_release. */
static int eval_needed(const rc_ir *ir, int li, const rc_prim_graph *g, const rc_prim_eval_ctx *cx,
                       unsigned char *need, double ***val, char *err, size_t errlen)
{
    char m[256];
    *val = calloc((size_t)g->n, sizeof **val);
    int rc = 0;
    if (!*val) rc = rc_errf(err, errlen, "ref: layer %d: out of memory", li + 1);
    else if (rc_prim_eval(g, cx, need, *val, m, sizeof m))
        rc = rc_errf(err, errlen, "ref: layer %d (%s): %s", li + 1, ir->layers[li].def_kind, m);
    free(need);
    return rc;
}

static void vals_release(const rc_prim_graph *g, double **val)
{
    if (val) { rc_prim_vals_free(g, val); free(val); }
}

int64_t rc_ref_def_state_floats(const rc_ir *ir, int li)
{
    const rc_layer *L = &ir->layers[li];
    int64_t n = 0;
    for (int k = 0; k < L->state_count; k++) n += ir->state[L->state_first + k].count;
    return n;
}

int rc_ref_def_forward(const rc_ir *ir, int li, const rc_prim_graph *g, int B, int train,
                       uint64_t seed, const double *x, const float *params, const float *snap,
                       const int *cell_pos, float *state_out, float *y, double *yd, char *err,
                       size_t errlen)
{
    rc_prim_eval_ctx cx;
    if (ctx_init(ir, li, g, B, train ? RC_PRIM_TRAIN : RC_PRIM_EVAL, seed, x, params, snap, cell_pos, &cx, err, errlen))
        return -1;
    unsigned char *need = malloc((size_t)g->n);
    double **val = NULL;
    if (!need) return rc_errf(err, errlen, "ref: layer %d: out of memory", li + 1);
    rc_prim_needed_mode(g, cx.mode, need);
    if (eval_needed(ir, li, g, &cx, need, &val, err, errlen)) { vals_release(g, val); return -1; }
    const rc_prim_node *out = &g->node[g->out[cx.mode]];
    int64_t n = rc_prim_numel(out, B);
    const double *yv = val[g->out[cx.mode]];
    if (y) for (int64_t e = 0; e < n; e++) y[e] = (float)yv[e];
    else memcpy(yd, yv, sizeof *yd * (size_t)n);
    if (train && state_out) {
        const rc_layer *L = &ir->layers[li];
        for (int i = 0; i < g->n; i++) {
            const rc_prim_node *nd = &g->node[i];
            if (nd->op != RC_P_UPDATE) continue;
            const rc_param *st = &ir->state[L->state_first + nd->ref];
            const double *v = val[nd->in[0]];
            for (int64_t e = 0; e < st->count; e++) state_out[st->offset + e] = (float)v[e];
        }
    }
    vals_release(g, val);
    return 0;
}

int rc_ref_def_backward(const rc_ir *ir, int li, const rc_prim_graph *g, int B, int train,
                        uint64_t seed, const double *x, const float *params, const float *snap,
                        const int *cell_pos, const float *gy, float *grads, float *gx, char *err, size_t errlen)
{
    int mode = train ? RC_PRIM_TRAIN : RC_PRIM_EVAL;
    if (!g->has_grad[mode]) return rc_errf(err, errlen, "ref: layer %d: no gradient graph", li + 1);
    rc_prim_eval_ctx cx;
    if (ctx_init(ir, li, g, B, mode, seed, x, params, snap, cell_pos, &cx, err, errlen)) return -1;
    cx.input[1] = gy;
    int roots[1 + RC_PRIM_MAX_DECL], nr = 0;
    if (gx && g->grad_in[mode] >= 0) roots[nr++] = g->grad_in[mode];
    for (int k = 0; grads && k < g->n_param; k++)
        if (g->grad_param[mode][k] >= 0) roots[nr++] = g->grad_param[mode][k];
    const rc_layer *L = &ir->layers[li];
    int64_t nx = (int64_t)B * L->in.c * L->in.h * L->in.w;
    if (gx && g->grad_in[mode] < 0) memset(gx, 0, sizeof *gx * (size_t)nx);   /* no path: zero */
    if (nr == 0) return 0;
    unsigned char *need = malloc((size_t)g->n);
    double **val = NULL;
    if (!need) return rc_errf(err, errlen, "ref: layer %d: out of memory", li + 1);
    rc_prim_needed(g, roots, nr, need);
    if (eval_needed(ir, li, g, &cx, need, &val, err, errlen)) { vals_release(g, val); return -1; }
    if (gx && g->grad_in[mode] >= 0)
        for (int64_t e = 0; e < nx; e++) gx[e] = (float)val[g->grad_in[mode]][e];
    for (int k = 0; grads && k < g->n_param; k++) {
        if (g->grad_param[mode][k] < 0) continue;
        const rc_param *p = &ir->params[L->param_first + k];
        const double *v = val[g->grad_param[mode][k]];
        for (int64_t e = 0; e < p->count; e++) grads[p->offset + e] += (float)v[e];
    }
    vals_release(g, val);
    return 0;
}
