/* ref.c — the naive CPU reference backend: the oracle for every test of generated code.
 *
 * It interprets the IR layer by layer with plain loops, accumulating every reduction in double,
 * in the PyTorch semantics spelled out in backend.h / ir.h and reference §1.8:
 *   conv      valid cross-correlation, stride 1; tiled (weight (P,P,Cout,Cin,K,K): output (y,x)
 *             uses phase (y%P, x%P); plain conv is the P = 1 case of the same loop); stacked
 *             (chain of sub-convs, no nonlinearity, bias on the last only, train-only dropout
 *             between them on stream RC_RNG_STREAM(i, j+1)).
 *   dense     y = W x + b over the (c,h,w)-flattened input.
 *   batchnorm per unit (features = C*H*W, statistics over B) or per channel (statistics over
 *             B*H*W); train: biased batch variance, running update with the unbiased one;
 *             eval: running statistics; optional |scale| (d|s|/ds = sign(s), 0 at 0).
 *   noise     x + std * rc_rng_normal(seed, RC_RNG_STREAM(i,0), b*F+f), train only.
 *   dropout   keep if rc_rng_uniform(seed, RC_RNG_STREAM(i,0), b*F+f) >= p, kept * 1/(1-p).
 *   act       elementwise (softplus: beta 1, threshold 20, as PyTorch).
 *   gcconv    per cell n: conv of channel n read out at cell_pos[n] only -> (cells,1,1).
 * RNG streams use the 0-based index i of the layer in rc_ir.layers (parameter names and messages
 * are 1-based: layer i is "<i+1>.kind.*").
 * Layer 0 reads the input straight from the frame stream (frames + starts); windows are never
 * copied. Workspace (ws_floats(B) floats) holds: a header (the seed of the last train_forward and
 * B), every layer's output, BN batch mean/invstd, stacked-conv intermediates (after dropout), and
 * three gradient buffers for the backward sweep. Dropout masks are recomputed from the seed.
 * infer uses the same layout (eval mode: running stats, no noise/dropout, stack not collapsed).
 * Training: input gradients are not computed (layer 0 gets only parameter gradients).
 * Analysis (rc_ref_eval_forward / rc_ref_eval_grad, ref.h): the eval-mode gradient of the
 * output with respect to the input window, summed over the batch (gradient STA, analysis/rf.c).
 * A linear layer 0 (conv of any form, dense) is applied adjointly ONCE to the batch sum of its
 * output gradients (the adjoint is linear, so sum_b A^T g_b = A^T sum_b g_b): per-sample input
 * gradients of a 40x50x50 window would cost a full transposed conv each.
 * The forward sweep lives in ref_forward.h, included twice: the float instance is the backend;
 * the double instance (rc_ref64_*, ref.h: workspace, activations and y in double, same params,
 * state and frames) serves finite differences (runtime/gradcheck.c). Backward is float only.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "prim.h"
#include "ref.h"
#include "ref_def.h"
#include "rng.h"

#define REF_HEADER 4   /* floats: seed (8 bytes), B (int32), spare */
/* Multiply-adds below which a loop runs on one thread (team start-up costs more). */
#define REF_OMP_MIN 2e5

/* Resolved parameter/state offsets of one layer (-1 = absent). */
typedef struct {
    int64_t w, b;                    /* conv/dense/gcconv weight, bias */
    int64_t sub_w[RC_MAX_STACK];     /* stacked conv sub-kernels */
    int py, px;                      /* tiled conv periods (1 = plain) */
    int64_t scale, shift;            /* batchnorm params */
    int64_t rmean, rvar;             /* batchnorm state */
    int feat, inner;                 /* batchnorm: features, elements per feature per sample */
} ref_lp;

typedef struct {
    const rc_ir *ir;
    int bad;                         /* IR inconsistent with the reference's expectations */
    char bad_msg[400];
    ref_lp lp[RC_MAX_LAYERS];
    rc_ref_conv_adjoint_fn adj;      /* analysis only: a faster conv input gradient, or NULL */
    rc_ref_conv_forward_fn cfwd;     /* analysis only: a faster eval conv forward, or NULL */
    void *adj_ctx;
    rc_prim_graph *def[RC_MAX_LAYERS];   /* defined layers: their graphs, with gradients */
} ref_self;

/* Workspace layout for batch B (offsets in floats). */
typedef struct {
    size_t out[RC_MAX_LAYERS];       /* layer outputs (B, out) */
    size_t extra[RC_MAX_LAYERS];     /* BN: mean (F), invstd (F) */
    size_t sub[RC_MAX_LAYERS][RC_MAX_STACK];  /* stacked: output of sub j (j < n_sub-1) */
    size_t g[3];                     /* gradient buffers, gsize each */
    size_t gsize;
    size_t total;
} ref_plan;

static int64_t shape_size(rc_shape s) { return (int64_t)s.c * s.h * s.w; }

static int fail(rc_backend *be, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------------------------------------------------------------- parameter resolution */

static const rc_param *layer_param(const rc_ir *ir, int i, const char *suffix)
{
    const rc_layer *L = &ir->layers[i];
    size_t sl = strlen(suffix);
    for (int p = L->param_first; p < L->param_first + L->param_count; p++) {
        size_t nl = strlen(ir->params[p].name);
        if (nl >= sl && strcmp(ir->params[p].name + nl - sl, suffix) == 0) return &ir->params[p];
    }
    return NULL;
}

static const rc_param *layer_state(const rc_ir *ir, int i, const char *suffix)
{
    const rc_layer *L = &ir->layers[i];
    size_t sl = strlen(suffix);
    for (int p = L->state_first; p < L->state_first + L->state_count; p++) {
        size_t nl = strlen(ir->state[p].name);
        if (nl >= sl && strcmp(ir->state[p].name + nl - sl, suffix) == 0) return &ir->state[p];
    }
    return NULL;
}

/* Offset of the tensor named *suffix in layer i if it has `count` floats; -1 if absent and
 * optional; sets s->bad otherwise. */
static int64_t want_param(ref_self *s, int i, const char *suffix, int64_t count, int required,
                          int state)
{
    const rc_ir *ir = s->ir;
    const rc_param *p = state ? layer_state(ir, i, suffix) : layer_param(ir, i, suffix);
    if (!p) {
        if (required && !s->bad) {
            s->bad = 1;
            snprintf(s->bad_msg, sizeof s->bad_msg, "ref: %s: layer %d (%s): no %s tensor *%s",
                     ir->name, i + 1, rc_layer_kind_name(ir->layers[i].kind),
                     state ? "state" : "parameter", suffix);
        }
        return -1;
    }
    if (p->count != count && !s->bad) {
        s->bad = 1;
        snprintf(s->bad_msg, sizeof s->bad_msg,
                 "ref: %s: layer %d (%s): %s has %lld floats, expected %lld", ir->name, i + 1,
                 rc_layer_kind_name(ir->layers[i].kind), p->name, (long long)p->count,
                 (long long)count);
    }
    return p->offset;
}

static void bad(ref_self *s, int i, const char *what)
{
    if (s->bad) return;
    s->bad = 1;
    snprintf(s->bad_msg, sizeof s->bad_msg, "ref: %s: layer %d (%s): %s", s->ir->name, i + 1,
             rc_layer_kind_name(s->ir->layers[i].kind), what);
}

static void resolve(ref_self *s)
{
    const rc_ir *ir = s->ir;
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        ref_lp *lp = &s->lp[i];
        memset(lp, 0, sizeof *lp);
        lp->w = lp->b = lp->scale = lp->shift = lp->rmean = lp->rvar = -1;
        lp->py = lp->px = 1;
        int64_t ksq = (int64_t)L->kernel * L->kernel;
        switch (L->kind) {
        case RC_LAYER_CONV:
            if (L->stack > 0) {
                int last = L->n_sub - 1, h = L->in.h, w = L->in.w;
                if (L->n_sub < 1 || L->n_sub > RC_MAX_STACK) { bad(s, i, "stack: bad n_sub"); break; }
                if (L->sub_cin[0] != L->in.c || L->sub_cout[last] != L->out.c)
                    bad(s, i, "stack: sub-conv channels do not match the layer's");
                for (int j = 0; j < L->n_sub; j++) {
                    char suf[40];
                    snprintf(suf, sizeof suf, ".sub%d.weight", j);
                    lp->sub_w[j] = want_param(s, i, suf, (int64_t)L->sub_cout[j] * L->sub_cin[j] *
                                              L->sub_k[j] * L->sub_k[j], 1, 0);
                    if (j > 0 && L->sub_cin[j] != L->sub_cout[j - 1])
                        bad(s, i, "stack: sub-conv channels do not chain");
                    h -= L->sub_k[j] - 1;
                    w -= L->sub_k[j] - 1;
                }
                if (h != L->out.h || w != L->out.w) bad(s, i, "stack: sub-kernels do not give the output size");
                if (L->bias) lp->b = want_param(s, i, ".conv.bias", L->out.c, 1, 0);
            } else {
                const rc_param *wp = layer_param(ir, i, ".weight");
                if (wp && wp->rank == 6) { lp->py = wp->dims[0]; lp->px = wp->dims[1]; }
                if (lp->py < 1 || lp->px < 1) { bad(s, i, "tiled weight with period < 1"); break; }
                int64_t ph = (int64_t)lp->py * lp->px;
                lp->w = want_param(s, i, ".weight", ph * L->out.c * L->in.c * ksq, 1, 0);
                if (L->bias) lp->b = want_param(s, i, ".bias", ph * L->out.c, 1, 0);
                if (L->out.h != L->in.h - L->kernel + 1 || L->out.w != L->in.w - L->kernel + 1)
                    bad(s, i, "output size is not a valid convolution's");
            }
            break;
        case RC_LAYER_GCCONV:
            lp->w = want_param(s, i, ".weight", (int64_t)ir->cells * L->in.c * ksq, 1, 0);
            if (L->bias) lp->b = want_param(s, i, ".bias", ir->cells, 1, 0);
            if (shape_size(L->out) != ir->cells) bad(s, i, "output is not (cells,1,1)");
            break;
        case RC_LAYER_DENSE: {
            int64_t units = shape_size(L->out);
            lp->w = want_param(s, i, ".weight", units * shape_size(L->in), 1, 0);
            if (L->bias) lp->b = want_param(s, i, ".bias", units, 1, 0);
            break;
        }
        case RC_LAYER_BATCHNORM:
            if (L->over == RC_BN_UNIT) { lp->feat = (int)shape_size(L->in); lp->inner = 1; }
            else { lp->feat = L->in.c; lp->inner = L->in.h * L->in.w; }
            lp->scale = want_param(s, i, ".scale", lp->feat, 1, 0);
            lp->shift = want_param(s, i, ".shift", lp->feat, 1, 0);
            lp->rmean = want_param(s, i, ".running_mean", lp->feat, 1, 1);
            lp->rvar = want_param(s, i, ".running_var", lp->feat, 1, 1);
            if (shape_size(L->out) != shape_size(L->in)) bad(s, i, "output size differs from input");
            break;
        case RC_LAYER_NOISE: case RC_LAYER_DROPOUT: case RC_LAYER_ACT:
            if (shape_size(L->out) != shape_size(L->in)) bad(s, i, "output size differs from input");
            break;
        case RC_LAYER_DEF: {
            char m[300];
            rc_prim_graph *g = calloc(1, sizeof *g);
            if (!g) { bad(s, i, "out of memory"); break; }
            s->def[i] = g;
            if (rc_ir_def_graph(ir, i, g, m, sizeof m) || rc_prim_grad(g, RC_PRIM_TRAIN, m, sizeof m) ||
                rc_prim_grad(g, RC_PRIM_EVAL, m, sizeof m)) bad(s, i, m);
            break;
        }
        default:
            bad(s, i, "unknown layer kind");
        }
    }
    if (ir->n_layers < 1) { s->bad = 1; snprintf(s->bad_msg, sizeof s->bad_msg, "ref: %s: no layers", ir->name); }
    else if (shape_size(ir->layers[ir->n_layers - 1].out) != ir->cells && !s->bad) {
        s->bad = 1;
        snprintf(s->bad_msg, sizeof s->bad_msg, "ref: %s: the last layer gives %lld values, not "
                 "one per cell (%d)", ir->name, (long long)shape_size(ir->layers[ir->n_layers - 1].out),
                 ir->cells);
    }
}

static void plan(const rc_ir *ir, int B, ref_plan *p)
{
    size_t off = REF_HEADER, gmax = (size_t)shape_size(ir->in);
    memset(p, 0, sizeof *p);
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        size_t osz = (size_t)shape_size(L->out);
        if (osz > gmax) gmax = osz;
        p->out[i] = off;
        off += (size_t)B * osz;
        p->extra[i] = off;
        if (L->kind == RC_LAYER_BATCHNORM) {
            size_t feat = L->over == RC_BN_UNIT ? (size_t)shape_size(L->in) : (size_t)L->in.c;
            off += 2 * feat;
        }
        if (L->kind == RC_LAYER_DEF) off += (size_t)rc_ref_def_state_floats(ir, i);   /* state snapshot */
        if (L->kind == RC_LAYER_CONV && L->stack > 0) {
            int h = L->in.h, w = L->in.w;
            for (int j = 0; j + 1 < L->n_sub; j++) {
                h -= L->sub_k[j] - 1;
                w -= L->sub_k[j] - 1;
                size_t sz = (size_t)L->sub_cout[j] * (h > 0 ? h : 0) * (w > 0 ? w : 0);
                if (sz > gmax) gmax = sz;
                p->sub[i][j] = off;
                off += (size_t)B * sz;
            }
        }
    }
    p->gsize = (size_t)B * gmax;
    for (int k = 0; k < 3; k++) { p->g[k] = off; off += p->gsize; }
    p->total = off;
}

static size_t ref_ws_floats(rc_backend *be, int B)
{
    ref_plan p;
    plan(be->ir, B, &p);
    return p.total;
}


/* Dropout mask value (0 or 1/(1-p)) of element idx on stream. */
static inline float drop_scale(uint64_t seed, uint64_t stream, uint64_t idx, double p)
{
    if (rc_rng_uniform(seed, stream, idx) >= (float)p) return (float)(1.0 / (1.0 - p));
    return 0.0f;
}

static inline double act_f(rc_act a, double x)
{
    switch (a) {
    case RC_ACT_RELU: return x > 0 ? x : 0;
    case RC_ACT_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
    case RC_ACT_EXP: return exp(x);
    case RC_ACT_ABS: return fabs(x);
    case RC_ACT_SQUARE: return x * x;
    case RC_ACT_REQU: return x > 0 ? x * x : 0;
    case RC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case RC_ACT_TANH: return tanh(x);
    default: return x;
    }
}

/* d act / dx at x (PyTorch's subgradient choices: relu/abs/requ give 0 at 0). */
static inline double act_d(rc_act a, double x)
{
    switch (a) {
    case RC_ACT_RELU: return x > 0 ? 1 : 0;
    case RC_ACT_SOFTPLUS: return x > 20 ? 1 : 1.0 / (1.0 + exp(-x));
    case RC_ACT_EXP: return exp(x);
    case RC_ACT_ABS: return x > 0 ? 1 : (x < 0 ? -1 : 0);
    case RC_ACT_SQUARE: return 2 * x;
    case RC_ACT_REQU: return x > 0 ? 2 * x : 0;
    case RC_ACT_SIGMOID: { double s = 1.0 / (1.0 + exp(-x)); return s * (1 - s); }
    case RC_ACT_TANH: { double t = tanh(x); return 1 - t * t; }
    default: return 1;
    }
}

static inline double bn_gain(const rc_layer *L, float scale)
{
    return L->abs_scale ? fabs((double)scale) : (double)scale;
}

/* ---------------------------------------------------------------- forward sweep, twice */

/* The float instance: the backend. */
#define REF_REAL float
#define REF_(name) name
#define REF_CONV_FAST 1
#define REF_DEF_OUT(y) (y), NULL
#include "ref_forward.h"
#undef REF_REAL
#undef REF_
#undef REF_CONV_FAST
#undef REF_DEF_OUT

/* The double instance (rc_ref64_*): forward only, no fast convs. */
#define REF_REAL double
#define REF_(name) name##64
#define REF_CONV_FAST 0
#define REF_DEF_OUT(y) NULL, (y)
#include "ref_forward.h"
#undef REF_REAL
#undef REF_
#undef REF_CONV_FAST
#undef REF_DEF_OUT

static int ref_train_forward(rc_backend *be, int B, const float *params, float *state,
                             const int *cell_pos, uint64_t seed, const float *frames,
                             const int64_t *starts, float *y, float *ws)
{
    ref_run r = { B, params, state, state, cell_pos, seed, 1, frames, starts, ws, NULL };
    int32_t b32 = B;
    memcpy(ws, &seed, sizeof seed);            /* header: what backward needs to redraw masks */
    memcpy(ws + 2, &b32, sizeof b32);
    return forward(be, &r, y);
}

static int ref_infer(rc_backend *be, int B, const float *params, const float *state,
                     const int *cell_pos, const float *frames, const int64_t *starts, float *y,
                     float *ws)
{
    ref_run r = { B, params, state, NULL, cell_pos, 0, 0, frames, starts, ws, NULL };
    return forward(be, &r, y);
}

/* ---------------------------------------------------------------- backward sweep */

/* Backward of conv_fwd: dW, db accumulated (+=) unless dW is NULL (input gradient only);
 * dx (B,Cin,H,W) overwritten if not NULL. */
static void conv_bwd(const ref_in *x, int B, int Cout, int K, int PY, int PX, const float *W,
                     const float *dy, float *dW, float *db, float *dx)
{
    int Cin = x->c, Hi = x->h, Wi = x->w, Ho = x->h - K + 1, Wo = x->w - K + 1;
    /* parameter gradients: each (phase, o) slice is owned by one iteration */
    #pragma omp parallel for collapse(2) schedule(static) if((double)B * Cout * Ho * Wo * Cin * K * K > REF_OMP_MIN)
    for (int ph = 0; ph < (dW ? PY * PX : 0); ph++)
        for (int o = 0; o < Cout; o++) {
            int py = ph / PX, px = ph % PX;
            float *dw = dW + ((size_t)ph * Cout + o) * Cin * K * K;
            for (int c = 0; c < Cin; c++)
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        double acc = 0;
                        for (int b = 0; b < B; b++) {
                            const float *pl = ref_plane(x, b, c);
                            const float *g = dy + ((size_t)b * Cout + o) * Ho * Wo;
                            for (int oh = py; oh < Ho; oh += PY)
                                for (int ow = px; ow < Wo; ow += PX)
                                    acc += (double)g[(size_t)oh * Wo + ow] *
                                           pl[(size_t)(oh + kh) * Wi + ow + kw];
                        }
                        dw[(c * K + kh) * K + kw] += (float)acc;
                    }
            if (db) {
                double acc = 0;
                for (int b = 0; b < B; b++) {
                    const float *g = dy + ((size_t)b * Cout + o) * Ho * Wo;
                    for (int oh = py; oh < Ho; oh += PY)
                        for (int ow = px; ow < Wo; ow += PX) acc += g[(size_t)oh * Wo + ow];
                }
                db[(size_t)ph * Cout + o] += (float)acc;
            }
        }
    if (!dx) return;
    /* input gradient as a scatter into a per-sample double accumulator:
     * dx[b,c,oh+kh,ow+kw] += W[ph(oh,ow),o,c,kh,kw] * dy[b,o,oh,ow]; zero dy entries (ReLU
     * masks) are skipped. The gather form below is the fallback if the accumulator cannot be
     * allocated; both sum the same terms in double. */
    size_t plane = (size_t)Cin * Hi * Wi;
    int nt = omp_get_max_threads();             /* no team is larger */
    double *accs = malloc((size_t)nt * plane * sizeof *accs);
    if (accs) {
        #pragma omp parallel for schedule(static) if((double)B * Cout * Ho * Wo * Cin * K * K > REF_OMP_MIN)
        for (int b = 0; b < B; b++) {
            double *acc = accs + (size_t)omp_get_thread_num() * plane;
            memset(acc, 0, plane * sizeof *acc);
            for (int o = 0; o < Cout && PY * PX == 1; o++) {   /* untiled: rows vectorize */
                const float *g = dy + ((size_t)b * Cout + o) * Ho * Wo;
                const float *wt = W + (size_t)o * Cin * K * K;
                for (int oh = 0; oh < Ho; oh++) {
                    const float *grow = g + (size_t)oh * Wo;
                    int nz = 0;
                    for (int ow = 0; ow < Wo; ow++) nz |= grow[ow] != 0;
                    if (!nz) continue;                   /* a row masked out by a ReLU */
                    for (int c = 0; c < Cin; c++)
                        for (int kh = 0; kh < K; kh++) {
                            double *d = acc + ((size_t)c * Hi + oh + kh) * Wi;
                            const float *wr = wt + (c * K + kh) * K;
                            for (int kw = 0; kw < K; kw++) {
                                double wv = wr[kw];
                                #pragma omp simd       /* -O2 does not vectorize by itself */
                                for (int ow = 0; ow < Wo; ow++) d[ow + kw] += wv * (double)grow[ow];
                            }
                        }
                }
            }
            for (int o = 0; o < Cout && PY * PX > 1; o++) {    /* tiled: the phase moves with ow */
                const float *g = dy + ((size_t)b * Cout + o) * Ho * Wo;
                for (int oh = 0; oh < Ho; oh++)
                    for (int ow = 0; ow < Wo; ow++) {
                        double gv = g[(size_t)oh * Wo + ow];
                        if (gv == 0) continue;
                        int ph = (oh % PY) * PX + ow % PX;
                        const float *wt = W + ((size_t)ph * Cout + o) * Cin * K * K;
                        for (int c = 0; c < Cin; c++)
                            for (int kh = 0; kh < K; kh++) {
                                double *d = acc + ((size_t)c * Hi + oh + kh) * Wi + ow;
                                const float *wr = wt + (c * K + kh) * K;
                                for (int kw = 0; kw < K; kw++) d[kw] += (double)wr[kw] * gv;
                            }
                    }
            }
            float *dxb = dx + (size_t)b * plane;
            for (size_t e = 0; e < plane; e++) dxb[e] = (float)acc[e];
        }
        free(accs);
        return;
    }
    /* gather fallback: dx[b,c,h,w] = sum over (o, kh, kw) with a valid output */
    #pragma omp parallel for collapse(2) schedule(static) if((double)B * Cout * Hi * Wi * Cin * K * K > REF_OMP_MIN)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < Cin; c++)
            for (int h = 0; h < Hi; h++)
                for (int w = 0; w < Wi; w++) {
                    double acc = 0;
                    for (int o = 0; o < Cout; o++) {
                        const float *g = dy + ((size_t)b * Cout + o) * Ho * Wo;
                        for (int kh = 0; kh < K; kh++) {
                            int oh = h - kh;
                            if (oh < 0 || oh >= Ho) continue;
                            for (int kw = 0; kw < K; kw++) {
                                int ow = w - kw;
                                if (ow < 0 || ow >= Wo) continue;
                                int ph = (oh % PY) * PX + ow % PX;
                                const float *wt = W + ((size_t)ph * Cout + o) * Cin * K * K;
                                acc += (double)wt[(c * K + kh) * K + kw] * g[(size_t)oh * Wo + ow];
                            }
                        }
                    }
                    dx[(((size_t)b * Cin + c) * Hi + h) * Wi + w] = (float)acc;
                }
}

/* Layers whose output is linear (affine) in their input, with the bias dropping out of the
 * gradient: layer 0's adjoint can then be applied once to a sum of output gradients. */
static int layer_linear(const rc_layer *L)
{
    return L->kind == RC_LAYER_CONV || L->kind == RC_LAYER_DENSE;
}

/* dx (in) = A^T g for layer 0's linear map A (a conv of any form, or dense), one sample.
 * g (out of layer 0); t (scratch, >= the largest stacked intermediate) may be g's buffer's
 * partner; dx, g and t are distinct buffers of the workspace's gradient size. */
static void layer0_adjoint(const ref_self *s, const rc_ir *ir, const float *params, const float *g,
                           float *t, float *dx)
{
    const rc_layer *L = &ir->layers[0];
    const ref_lp *lp = &s->lp[0];
    ref_in x;
    memset(&x, 0, sizeof x);
    x.c = ir->in.c; x.h = ir->in.h; x.w = ir->in.w;
    if (L->kind == RC_LAYER_DENSE) {
        int64_t U = shape_size(L->out), F = shape_size(L->in);
        const float *W = params + lp->w;
        for (int64_t f = 0; f < F; f++) {
            double acc = 0;
            for (int64_t u = 0; u < U; u++) acc += (double)W[u * F + f] * g[u];
            dx[f] = (float)acc;
        }
    } else if (L->stack > 0) {
        /* chain backwards: sub j's input gradient becomes sub j-1's output gradient; the
         * intermediates ping-pong between t and dx so that sub 0 writes dx */
        const float *cur = g;
        for (int j = L->n_sub - 1; j >= 0; j--) {
            ref_in xin = x;
            xin.c = L->sub_cin[j];
            for (int q = 0; q < j; q++) { xin.h -= L->sub_k[q] - 1; xin.w -= L->sub_k[q] - 1; }
            float *dst = ((L->n_sub - 1 - j) % 2 == (L->n_sub - 1) % 2) ? dx : t;
            conv_bwd(&xin, 1, L->sub_cout[j], L->sub_k[j], 1, 1, params + lp->sub_w[j], cur, NULL,
                     NULL, dst);
            cur = dst;
        }
    } else {
        conv_bwd(&x, 1, L->out.c, L->kernel, lp->py, lp->px, params + lp->w, g, NULL, NULL, dx);
    }
}

/* One backward sweep over the activations kept in ws.
 * train = 1: the training backward (batch-statistics BN, the forward's noise/dropout masks),
 *            parameter gradients accumulated into grads; layer 0 gets no input gradient.
 * train = 0: eval mode (running-statistics BN, no noise/dropout), grads NULL; dx (in) +=
 *            sum over b of the input-window gradient of sample b (see the file comment). */
static int backward(rc_backend *be, int B, const float *params, const int *cell_pos,
                    const float *frames, const int64_t *starts, const float *dy, float *grads,
                    float *ws, int train, float *dx)
{
    ref_self *s = be->self;
    const rc_ir *ir = be->ir;
    if (s->bad) return fail(be, "%s", s->bad_msg);
    uint64_t seed;
    int32_t b32;
    memcpy(&seed, ws, sizeof seed);
    memcpy(&b32, ws + 2, sizeof b32);
    if (b32 != B) return fail(be, "ref: %s: backward with batch %d after a forward with batch %d",
                              ir->name, B, (int)b32);
    ref_plan p;
    plan(ir, B, &p);
    ref_run r = { B, params, NULL, NULL, cell_pos, seed, train, frames, starts, ws, NULL };
    float *gin = ws + p.g[0], *gout = ws + p.g[1], *gx = ws + p.g[2];
    memcpy(gin, dy, (size_t)B * ir->cells * sizeof *gin);
    int64_t n_in = shape_size(ir->in);
    for (int i = ir->n_layers - 1; i >= 0; i--) {
        const rc_layer *L = &ir->layers[i];
        const ref_lp *lp = &s->lp[i];
        ref_in x = layer_input(ir, &p, &r, i);
        const float *out = ws + p.out[i];
        int need_dx = i > 0 || (!train && !layer_linear(L));
        int64_t F = shape_size(L->in);
        if (i == 0 && !train && layer_linear(L)) {   /* sum_b A^T g_b = A^T sum_b g_b */
            int64_t n_out = shape_size(L->out);
            for (int64_t e = 0; e < n_out; e++) {
                double acc = 0;
                for (int b = 0; b < B; b++) acc += gin[b * n_out + e];
                gout[e] = (float)acc;
            }
            layer0_adjoint(s, ir, params, gout, gin, gx);
            for (int64_t e = 0; e < n_in; e++) dx[e] += gx[e];
            break;
        }
        switch (L->kind) {
        case RC_LAYER_CONV:
            if (L->stack > 0) {
                /* walk the chain backwards; gradients alternate between gx and gin (free once
                 * read), the last step (sub 0) writes gout */
                float *g = gin, *spare = gx;
                for (int j = L->n_sub - 1; j >= 0; j--) {
                    ref_in xin = x;
                    if (j > 0) {
                        xin.x = ws + p.sub[i][j - 1];
                        xin.c = L->sub_cin[j];
                        xin.h = x.h; xin.w = x.w;
                        for (int q = 0; q < j; q++) { xin.h -= L->sub_k[q] - 1; xin.w -= L->sub_k[q] - 1; }
                    }
                    float *dst = j > 0 ? spare : (need_dx ? gout : NULL);
                    conv_bwd(&xin, B, L->sub_cout[j], L->sub_k[j], 1, 1, params + lp->sub_w[j], g,
                             grads ? grads + lp->sub_w[j] : NULL,
                             grads && j == L->n_sub - 1 && lp->b >= 0 ? grads + lp->b : NULL, dst);
                    if (j > 0) {
                        if (train && L->stack_dropout > 0) {   /* dropout after sub j-1: stream (i, j) */
                            size_t n = (size_t)B * xin.c * xin.h * xin.w;
                            uint64_t st = RC_RNG_STREAM(i, j);
                            for (size_t k = 0; k < n; k++) dst[k] *= drop_scale(seed, st, k, L->stack_dropout);
                        }
                        spare = g;
                        g = dst;
                    }
                }
            } else {
                int done = 0;           /* eval input gradient: the caller's adjoint if set */
                if (!train && need_dx && s->adj && lp->py == 1 && lp->px == 1)
                    done = s->adj(s->adj_ctx, i, B, params + lp->w, gin, gout) == 0;
                if (!done)
                    conv_bwd(&x, B, L->out.c, L->kernel, lp->py, lp->px, params + lp->w, gin,
                             grads ? grads + lp->w : NULL, grads && lp->b >= 0 ? grads + lp->b : NULL,
                             need_dx ? gout : NULL);
            }
            break;
        case RC_LAYER_GCCONV: {
            int K = L->kernel, cells = ir->cells;
            const float *W = params + lp->w;
            float *dW = grads ? grads + lp->w : NULL;
            if (!cell_pos) return fail(be, "ref: %s: layer %d (gcconv): no cell positions given", ir->name, i + 1);
            #pragma omp parallel for schedule(static) if((double)B * cells * x.c * K * K > REF_OMP_MIN)
            for (int n = 0; n < (dW ? cells : 0); n++) {
                int rr = cell_pos[2 * n], cc = cell_pos[2 * n + 1];
                for (int c = 0; c < x.c; c++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            double acc = 0;
                            for (int b = 0; b < B; b++)
                                acc += (double)gin[(size_t)b * cells + n] *
                                       ref_plane(&x, b, c)[(size_t)(rr + kh) * x.w + cc + kw];
                            dW[(((size_t)n * x.c + c) * K + kh) * K + kw] += (float)acc;
                        }
                if (lp->b >= 0) {
                    double acc = 0;
                    for (int b = 0; b < B; b++) acc += gin[(size_t)b * cells + n];
                    grads[lp->b + n] += (float)acc;
                }
            }
            if (need_dx) {
                memset(gout, 0, (size_t)B * F * sizeof *gout);
                for (int b = 0; b < B; b++)
                    for (int n = 0; n < cells; n++) {
                        int rr = cell_pos[2 * n], cc = cell_pos[2 * n + 1];
                        float g = gin[(size_t)b * cells + n];
                        for (int c = 0; c < x.c; c++)
                            for (int kh = 0; kh < K; kh++)
                                for (int kw = 0; kw < K; kw++)
                                    gout[b * F + ((int64_t)c * x.h + rr + kh) * x.w + cc + kw] +=
                                        W[(((size_t)n * x.c + c) * K + kh) * K + kw] * g;
                    }
            }
            break;
        }
        case RC_LAYER_DENSE: {
            int64_t U = shape_size(L->out);
            const float *W = params + lp->w;
            #pragma omp parallel for schedule(static) if((double)B * U * F > REF_OMP_MIN)
            for (int64_t u = 0; u < (grads ? U : 0); u++) {
                int64_t hw = (int64_t)x.h * x.w;
                for (int64_t f = 0; f < F; f++) {
                    double acc = 0;
                    int c = (int)(f / hw);
                    for (int b = 0; b < B; b++) acc += (double)gin[b * U + u] * ref_plane(&x, b, c)[f % hw];
                    grads[lp->w + u * F + f] += (float)acc;
                }
                if (lp->b >= 0) {
                    double acc = 0;
                    for (int b = 0; b < B; b++) acc += gin[b * U + u];
                    grads[lp->b + u] += (float)acc;
                }
            }
            if (need_dx) {
                #pragma omp parallel for collapse(2) schedule(static) if((double)B * U * F > REF_OMP_MIN)
                for (int b = 0; b < B; b++)
                    for (int64_t f = 0; f < F; f++) {
                        double acc = 0;
                        for (int64_t u = 0; u < U; u++) acc += (double)W[u * F + f] * gin[b * U + u];
                        gout[b * F + f] = (float)acc;
                    }
            }
            break;
        }
        case RC_LAYER_BATCHNORM: {
            int feat = lp->feat, inner = lp->inner;
            double n = (double)B * inner;
            const float *sc = params + lp->scale;
            const float *mean = ws + p.extra[i], *invstd = mean + feat;
            for (int f = 0; f < feat; f++) {
                double sdy = 0, sdyx = 0, m = mean[f], is = invstd[f];
                if (!train) {            /* eval: a fixed affine map per feature */
                    double gi = bn_gain(L, sc[f]) * is;
                    for (int b = 0; b < B; b++)
                        for (int k = 0; k < inner; k++) {
                            int64_t e = (int64_t)f * inner + k;
                            gout[b * F + e] = (float)(gi * gin[b * F + e]);
                        }
                    continue;
                }
                for (int b = 0; b < B; b++)
                    for (int k = 0; k < inner; k++) {
                        int64_t e = (int64_t)f * inner + k;
                        double g = gin[b * F + e], xh = (ref_at(&x, b, e) - m) * is;
                        sdy += g;
                        sdyx += g * xh;
                    }
                double ds = sdyx;        /* d loss / d gain */
                if (L->abs_scale) ds *= sc[f] > 0 ? 1 : (sc[f] < 0 ? -1 : 0);
                grads[lp->scale + f] += (float)ds;
                grads[lp->shift + f] += (float)sdy;
                if (!need_dx) continue;
                double gain = bn_gain(L, sc[f]);
                for (int b = 0; b < B; b++)
                    for (int k = 0; k < inner; k++) {
                        int64_t e = (int64_t)f * inner + k;
                        double xh = (ref_at(&x, b, e) - m) * is;
                        gout[b * F + e] = (float)(gain * is * (gin[b * F + e] - sdy / n - xh * sdyx / n));
                    }
            }
            break;
        }
        case RC_LAYER_DEF: {
            double *xd = def_input(&x, B, F);
            char m[400];
            int rc = xd ? rc_ref_def_backward(ir, i, s->def[i], B, train, seed, xd, params, ws + p.extra[i], cell_pos, gin,
                                              train ? grads : NULL, need_dx ? gout : NULL, m, sizeof m)
                        : rc_errf(m, sizeof m, "ref: layer %d: out of memory", i + 1);
            free(xd);
            if (rc) return fail(be, "%s", m);
            (void)out;
            break;
        }
        case RC_LAYER_NOISE:      /* additive: gradient passes through */
            if (need_dx) memcpy(gout, gin, (size_t)B * F * sizeof *gout);
            break;
        case RC_LAYER_DROPOUT:
            if (need_dx) {
                uint64_t st = RC_RNG_STREAM(i, 0);
                for (int64_t k = 0; k < B * F; k++)
                    gout[k] = train && L->p > 0 ? gin[k] * drop_scale(seed, st, (uint64_t)k, L->p) : gin[k];
            }
            break;
        case RC_LAYER_ACT:
            if (need_dx)
                for (int b = 0; b < B; b++)
                    for (int64_t f = 0; f < F; f++)
                        gout[b * F + f] = (float)(gin[b * F + f] * act_d(L->act, ref_at(&x, b, f)));
            (void)out;
            break;
        default:
            return fail(be, "ref: %s: layer %d: unknown kind %d", ir->name, i + 1, (int)L->kind);
        }
        float *t = gin; gin = gout; gout = t;
        if (i == 0 && !train)            /* a non-linear layer 0: sum the per-sample gradients */
            for (int64_t e = 0; e < n_in; e++) {
                double acc = 0;
                for (int b = 0; b < B; b++) acc += gin[b * n_in + e];
                dx[e] += (float)acc;
            }
    }
    return 0;
}

static int ref_train_backward(rc_backend *be, int B, const float *params, const int *cell_pos,
                              const float *frames, const int64_t *starts, const float *dy,
                              float *grads, float *ws)
{
    return backward(be, B, params, cell_pos, frames, starts, dy, grads, ws, 1, NULL);
}

/* ---------------------------------------------------------------- analysis: input gradients */

static int is_ref(const rc_backend *be) { return be && be->name && strcmp(be->name, "ref") == 0; }

int rc_ref_eval_forward(rc_backend *be, int B, const float *params, const float *state,
                        const int *cell_pos, const float *frames, const int64_t *starts,
                        const float *x0, float *y, float *ws)
{
    if (!is_ref(be)) return -1;
    if (x0 && !layer_linear(&be->ir->layers[0]))
        return fail(be, "ref: %s: layer 1 (%s) is not linear: its output cannot be given", be->ir->name,
                    rc_layer_kind_name(be->ir->layers[0].kind));
    ref_run r = { B, params, state, NULL, cell_pos, 0, 0, frames, starts, ws, x0 };
    uint64_t seed = 0;
    int32_t b32 = B;
    memcpy(ws, &seed, sizeof seed);
    memcpy(ws + 2, &b32, sizeof b32);
    return forward(be, &r, y);
}

const float *rc_ref_eval_output(rc_backend *be, int B, const float *ws, int layer)
{
    if (!is_ref(be) || layer < 0 || layer >= be->ir->n_layers || B < 1) return NULL;
    ref_plan p;
    plan(be->ir, B, &p);
    return ws + p.out[layer];
}

void rc_ref_set_conv_fast(rc_backend *be, rc_ref_conv_forward_fn fwd, rc_ref_conv_adjoint_fn adj,
                          void *ctx)
{
    if (!is_ref(be)) return;
    ref_self *s = be->self;
    s->cfwd = fwd;
    s->adj = adj;
    s->adj_ctx = ctx;
}

int rc_ref_eval_grad(rc_backend *be, int B, const float *params, const int *cell_pos,
                     const float *frames, const int64_t *starts, const float *dy, float *dx,
                     float *ws)
{
    if (!is_ref(be)) return -1;
    return backward(be, B, params, cell_pos, frames, starts, dy, NULL, ws, 0, dx);
}

/* ---------------------------------------------------------------- the double instance */

size_t rc_ref64_ws_doubles(rc_backend *be, int B)
{
    if (!is_ref(be) || B < 1) return 0;
    ref_plan p;
    plan(be->ir, B, &p);
    return p.total + (size_t)B * (size_t)shape_size(be->ir->in);
}

/* forward64 on the windows of frames converted to double into ws's tail (B, history, H, W). */
static int ref64_run(rc_backend *be, int B, const float *params, const float *state_in, float *state_out,
                     const int *cell_pos, uint64_t seed, int train, const float *frames, const int64_t *starts,
                     double *y, double *ws)
{
    if (!is_ref(be)) return -1;
    if (B < 1) return fail(be, "ref: %s: batch size %d < 1", be->ir->name, B);
    const rc_ir *ir = be->ir;
    ref_plan p;
    plan(ir, B, &p);
    int64_t n_in = shape_size(ir->in), hw = (int64_t)ir->in.h * ir->in.w;
    double *win = ws + p.total;
    int64_t *st = malloc(sizeof *st * (size_t)B);
    if (!st) return fail(be, "ref: %s: out of memory", ir->name);
    for (int b = 0; b < B; b++) {
        const float *src = frames + starts[b] * hw;
        for (int64_t e = 0; e < n_in; e++) win[b * n_in + e] = src[e];
        st[b] = (int64_t)b * ir->in.c;
    }
    ref_run64 r = { B, params, state_in, state_out, cell_pos, seed, train, win, st, ws, NULL };
    int rc = forward64(be, &r, y);
    free(st);
    return rc;
}

int rc_ref64_train_forward(rc_backend *be, int B, const float *params, float *state, const int *cell_pos,
                           uint64_t seed, const float *frames, const int64_t *starts, double *y, double *ws)
{
    return ref64_run(be, B, params, state, state, cell_pos, seed, 1, frames, starts, y, ws);
}

int rc_ref64_infer(rc_backend *be, int B, const float *params, const float *state, const int *cell_pos,
                   const float *frames, const int64_t *starts, double *y, double *ws)
{
    return ref64_run(be, B, params, state, NULL, cell_pos, 0, 0, frames, starts, y, ws);
}

static void ref_destroy(rc_backend *be)
{
    if (!be) return;
    ref_self *s = be->self;
    for (int i = 0; s && i < RC_MAX_LAYERS; i++) { rc_prim_free(s->def[i]); free(s->def[i]); }
    free(be->self);
    free(be);
}

int rc_ref_backend_create(const rc_ir *ir, rc_backend **out)
{
    *out = NULL;
    rc_backend *be = calloc(1, sizeof *be);
    ref_self *s = calloc(1, sizeof *s);
    if (!be || !s) { free(be); free(s); return -1; }
    s->ir = ir;
    resolve(s);              /* an inconsistent IR is reported by every call, not here */
    be->name = "ref";
    be->ir = ir;
    be->self = s;
    be->ws_floats = ref_ws_floats;
    be->train_forward = ref_train_forward;
    be->train_backward = ref_train_backward;
    be->infer = ref_infer;
    be->destroy = ref_destroy;
    *out = be;
    return 0;
}
