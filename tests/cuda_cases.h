/* cuda_cases.h — test-size models covering every layer kind and variant the CUDA emitter
 * handles (plain/tiled/stacked/large-kernel conv, dense, gcconv, BN per unit/channel with and
 * without |scale|, noise, dropout, every rectification, defined layers), plus a runner that compares a backend
 * against the reference on one training step (forward, running stats, backward grads) and on
 * inference. Shared by tests/test_nvrtc.c (Criterion, emulated device) and
 * tests/gpu/gpu_numerics.c (plain C, real GPU). Header-only, static functions.
 * RC_CC_VERBOSE=1 in the environment prints every gradient tensor's error to stderr.
 */
#ifndef RC_TEST_CUDA_CASES_H
#define RC_TEST_CUDA_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "ir.h"
#include "model.h"
#include "prim.h"

#define CC_MAX 16

static rc_layer *cc_add(rc_ir *ir, rc_layer_kind k)
{
    rc_layer *l = &ir->layers[ir->n_layers++];
    rc_layer_defaults(l, k);
    return l;
}

static rc_layer *cc_act(rc_ir *ir, rc_act a)
{
    rc_layer *l = cc_add(ir, RC_LAYER_ACT);
    l->act = a;
    return l;
}

/* ---- defined layers (RC_LAYER_DEF) for case 8: graphs built with compiler/prim.h's builder.
 * Every builder call goes through CC_P, which turns a -1 into a return of -1 (err is set). */
#define CC_P(x) do { if ((x) < 0) return -1; } while (0)

static void cc_decl(rc_prim_decl *d, const char *name, int rank, const int *dims, double bound, double value)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->rank = rank;
    memcpy(d->dims, dims, sizeof(int) * (size_t)rank);
    d->init_bound = bound;
    d->init_value = value;
}

static int cc_attach(rc_ir *ir, int li, const char *kind, rc_prim_graph *g, char *err, size_t errlen)
{
    char *t = rc_prim_format(g);
    rc_prim_free(g);
    if (!t) { snprintf(err, errlen, "out of memory"); return -1; }
    rc_layer_defaults(&ir->layers[li], RC_LAYER_DEF);
    int rc = rc_ir_def_set(ir, li, kind, t, err, errlen);
    free(t);
    return rc;
}

/* Graph of a defined layer on input (B, c, h, w): 0 conv k x k + bias to co channels; 1 channel
 * batchnorm with running statistics (unbiased variance via numel), noise in training, relu;
 * 2 softplus with a learned sharpness a per channel, log(1 + exp(a x)) / a; 3 the prelude's
 * def.conv graph (a bias of co reshaped to (1, co, 1, 1)) and 4 its def.relu, select(x > 0, x, 0):
 * the built-in kinds' forms, which the emitters lower to the built-in kernels (compiler/lower.c). */
static int cc_def_graph(rc_prim_graph *g, int which, int c, int h, int w, int co, int k, char *err, size_t el)
{
    int xd[4] = {RC_PRIM_B, c, h, w}, pd[4] = {1, c, 1, 1}, x, a, y;
    rc_prim_init(g);
    if (which == 0) {
        int wd[4] = {co, c, k, k}, bd[4] = {1, co, 1, 1}, at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in[2];
        double bound = 1.0 / sqrt((double)c * k * k);
        cc_decl(&g->param[g->n_param++], "weight", 4, wd, bound, 0);
        cc_decl(&g->param[g->n_param++], "bias", 4, bd, bound, 0);
        CC_P(in[0] = rc_prim_add(g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, xd, 0, err, el));
        CC_P(in[1] = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 0, err, el));
        CC_P(a = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 1, 0, NULL, 0, err, el));
        CC_P(y = rc_prim_add(g, RC_P_CONV2D, 2, in, at, 0, 0, 0, NULL, 0, err, el));
        CC_P(g->out[0] = g->out[1] = rc_prim_bin(g, RC_P_ADD, y, a, err, el));
        return 0;
    }
    if (which == 3) {
        int wd[4] = {co, c, k, k}, bd[1] = {co}, rs[4] = {1, co, 1, 1}, at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in[2], b;
        double bound = 1.0 / sqrt((double)c * k * k);
        cc_decl(&g->param[g->n_param++], "bias", 1, bd, bound, 0);
        cc_decl(&g->param[g->n_param++], "weight", 4, wd, bound, 0);
        CC_P(in[0] = rc_prim_add(g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, xd, 0, err, el));
        CC_P(in[1] = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 1, 0, NULL, 0, err, el));
        CC_P(b = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 0, err, el));
        CC_P(b = rc_prim_add(g, RC_P_RESHAPE, 1, &b, NULL, 0, 0, 4, rs, 0, err, el));
        CC_P(y = rc_prim_add(g, RC_P_CONV2D, 2, in, at, 0, 0, 0, NULL, 0, err, el));
        CC_P(g->out[0] = g->out[1] = rc_prim_bin(g, RC_P_ADD, y, b, err, el));
        return 0;
    }
    CC_P(x = rc_prim_add(g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, xd, 0, err, el));
    if (which == 4) {
        int z, cnd, sel[3];
        CC_P(z = rc_prim_const_like(g, x, 0.0, err, el));
        CC_P(cnd = rc_prim_bin(g, RC_P_GT, x, z, err, el));
        sel[0] = cnd; sel[1] = x; sel[2] = z;
        CC_P(g->out[0] = g->out[1] = rc_prim_add(g, RC_P_SELECT, 3, sel, NULL, 0, 0, 0, NULL, 0, err, el));
        return 0;
    }
    if (which == 2) {
        int t;
        cc_decl(&g->param[g->n_param++], "sharpness", 4, pd, 0, 1.0);
        CC_P(a = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 0, err, el));
        CC_P(t = rc_prim_bin(g, RC_P_MUL, x, a, err, el));
        CC_P(t = rc_prim_un(g, RC_P_SOFTPLUS, t, err, el));
        CC_P(g->out[0] = g->out[1] = rc_prim_bin(g, RC_P_DIV, t, a, err, el));
        return 0;
    }
    cc_decl(&g->param[g->n_param++], "scale", 4, pd, 0, 1.0);
    cc_decl(&g->param[g->n_param++], "shift", 4, pd, 0, 0.0);
    cc_decl(&g->state[g->n_state++], "running_mean", 4, pd, 0, 0.0);
    cc_decl(&g->state[g->n_state++], "running_var", 4, pd, 0, 1.0);
    int sc, sh, rm, rv, m, d, v, t, n, z, ax[RC_PRIM_NATTR] = {0x1 | 0x4 | 0x8}, r0[RC_PRIM_NATTR] = {0};
    int ones[4] = {1, 1, 1, 1}, na[RC_PRIM_NATTR] = {h * w, 1, 0};
    CC_P(sc = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 0, 0, NULL, 0, err, el));
    CC_P(sh = rc_prim_add(g, RC_P_PARAM, 0, NULL, NULL, 0, 1, 0, NULL, 0, err, el));
    CC_P(rm = rc_prim_add(g, RC_P_STATE, 0, NULL, NULL, 0, 0, 0, NULL, 0, err, el));
    CC_P(rv = rc_prim_add(g, RC_P_STATE, 0, NULL, NULL, 0, 1, 0, NULL, 0, err, el));
    /* training: batch statistics */
    CC_P(m = rc_prim_add(g, RC_P_MEAN, 1, &x, ax, 0, 0, 0, NULL, 0, err, el));
    CC_P(d = rc_prim_bin(g, RC_P_SUB, x, m, err, el));
    CC_P(t = rc_prim_bin(g, RC_P_MUL, d, d, err, el));
    CC_P(v = rc_prim_add(g, RC_P_MEAN, 1, &t, ax, 0, 0, 0, NULL, 0, err, el));
    for (int mode = 0; mode < 2; mode++) {
        int mu = mode ? rm : m, var = mode ? rv : v, e;
        CC_P(e = rc_prim_const_like(g, var, 1e-3, err, el));
        CC_P(e = rc_prim_bin(g, RC_P_ADD, var, e, err, el));
        CC_P(e = rc_prim_un(g, RC_P_SQRT, e, err, el));
        CC_P(e = rc_prim_un(g, RC_P_RECIP, e, err, el));
        CC_P(y = rc_prim_bin(g, RC_P_SUB, x, mu, err, el));
        CC_P(y = rc_prim_bin(g, RC_P_MUL, y, e, err, el));
        CC_P(y = rc_prim_bin(g, RC_P_MUL, y, sc, err, el));
        CC_P(y = rc_prim_bin(g, RC_P_ADD, y, sh, err, el));
        if (mode == 0) {   /* noise, training only */
            CC_P(n = rc_prim_add(g, RC_P_RANDN, 0, NULL, r0, 0, 0, 4, xd, 0, err, el));
            CC_P(z = rc_prim_const_like(g, n, 0.05, err, el));
            CC_P(n = rc_prim_bin(g, RC_P_MUL, n, z, err, el));
            CC_P(y = rc_prim_bin(g, RC_P_ADD, y, n, err, el));
        }
        CC_P(z = rc_prim_const_like(g, y, 0.0, err, el));
        CC_P(g->out[mode] = rc_prim_bin(g, RC_P_MAX, y, z, err, el));
    }
    /* running statistics, PyTorch's rule with momentum 0.1 and the unbiased variance */
    CC_P(n = rc_prim_add(g, RC_P_NUMEL, 0, NULL, na, 0, 0, 4, ones, 0, err, el));
    CC_P(z = rc_prim_const_like(g, n, 1.0, err, el));
    CC_P(z = rc_prim_bin(g, RC_P_SUB, n, z, err, el));
    CC_P(t = rc_prim_bin(g, RC_P_MUL, v, n, err, el));
    CC_P(t = rc_prim_bin(g, RC_P_DIV, t, z, err, el));
    for (int s = 0; s < 2; s++) {
        int keep, mom, nw;
        CC_P(keep = rc_prim_const_like(g, m, 0.9, err, el));
        CC_P(mom = rc_prim_const_like(g, m, 0.1, err, el));
        CC_P(keep = rc_prim_bin(g, RC_P_MUL, keep, s ? rv : rm, err, el));
        CC_P(mom = rc_prim_bin(g, RC_P_MUL, mom, s ? t : m, err, el));
        CC_P(nw = rc_prim_bin(g, RC_P_ADD, keep, mom, err, el));
        CC_P(rc_prim_add(g, RC_P_UPDATE, 1, &nw, NULL, 0, s, 0, NULL, 0, err, el));
    }
    return 0;
}

static int cc_def(rc_ir *ir, int li, const char *kind, int which, int c, int h, int w, int co, int k,
                  char *err, size_t errlen)
{
    rc_prim_graph g;
    if (cc_def_graph(&g, which, c, h, w, co, k, err, errlen)) { rc_prim_free(&g); return -1; }
    return cc_attach(ir, li, kind, &g, err, errlen);
}

/* Build test case k into ir (inferred). Returns 0, 1 when k is past the last case, -1 on error. */
static int cc_build(int k, rc_ir *ir, char *name, size_t nlen, char *err, size_t errlen)
{
    rc_ir_defaults(ir);
    ir->history = 4; ir->height = 12; ir->width = 12;
    int cells = 3;
    rc_layer *l;
    switch (k) {
    case 0:   /* bncnn-like: conv, BN unit, noise, relu, conv, BN unit, noise, relu, dense, BN, softplus */
        snprintf(name, nlen, "conv_bnunit_noise_dense");
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 4; l->kernel = 5;
        cc_add(ir, RC_LAYER_BATCHNORM);
        l = cc_add(ir, RC_LAYER_NOISE); l->std = 0.05;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 3; l->kernel = 3;
        cc_add(ir, RC_LAYER_BATCHNORM);
        l = cc_add(ir, RC_LAYER_NOISE); l->std = 0.05;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_DENSE); l->bias = 0;
        cc_add(ir, RC_LAYER_BATCHNORM);
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 1:   /* tiled conv (period 2) and locally connected (period 0 = full) */
        snprintf(name, nlen, "tiled_conv");
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 3; l->kernel = 3; l->period = 2;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 2; l->kernel = 3; l->period = 0;
        cc_act(ir, RC_ACT_TANH);
        l = cc_add(ir, RC_LAYER_DENSE);
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 2:   /* stacked conv with dropout, abs BN per channel, gcconv */
        snprintf(name, nlen, "stacked_bnchannel_gcconv");
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 4; l->kernel = 5; l->stack = 3; l->stack_dropout = 0.2;
        l->stack_channels = 3;
        l = cc_add(ir, RC_LAYER_BATCHNORM); l->over = RC_BN_CHANNEL; l->abs_scale = 1;
        l = cc_add(ir, RC_LAYER_NOISE); l->std = 0.05;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 3; l->kernel = 3; l->stack = 2; l->bias = 0;
        l->stack_channels = 8;   /* wide and short: eval collapses this one (chain for layer 1) */
        l = cc_add(ir, RC_LAYER_BATCHNORM); l->over = RC_BN_CHANNEL;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_GCCONV); l->kernel = 3; l->position = RC_POS_CENTER;
        l = cc_add(ir, RC_LAYER_BATCHNORM); l->abs_scale = 1;
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 3:   /* LN model: dense straight from the frames */
        snprintf(name, nlen, "ln_dense");
        cc_add(ir, RC_LAYER_DENSE);
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 4:   /* dropout layer and the other rectifications */
        snprintf(name, nlen, "dropout_acts");
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 3; l->kernel = 3;
        l = cc_add(ir, RC_LAYER_DROPOUT); l->p = 0.3;
        cc_act(ir, RC_ACT_SIGMOID);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 3; l->kernel = 3;
        cc_act(ir, RC_ACT_ABS);
        cc_act(ir, RC_ACT_REQU);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 2; l->kernel = 3;
        cc_act(ir, RC_ACT_SQUARE);
        cc_act(ir, RC_ACT_IDENTITY);
        l = cc_add(ir, RC_LAYER_DENSE); l->units = 5;
        cc_act(ir, RC_ACT_EXP);
        l = cc_add(ir, RC_LAYER_DENSE);
        break;
    case 5:   /* large kernel (simple-kernel fallback), BN at the very start, wide output */
        snprintf(name, nlen, "bigkernel_bnfirst");
        ir->height = 20; ir->width = 40;
        l = cc_add(ir, RC_LAYER_BATCHNORM); l->over = RC_BN_CHANNEL;
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 2; l->kernel = 17;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 9; l->kernel = 2;
        cc_act(ir, RC_ACT_SOFTPLUS);
        l = cc_add(ir, RC_LAYER_DENSE);
        break;
    case 6:   /* kwtile weight gradient with row phases AND column segments (K 11 on 3 x 30 outputs) */
        snprintf(name, nlen, "kwtile_segments");
        ir->history = 3; ir->height = 13; ir->width = 40;
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 5; l->kernel = 11;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_DENSE);
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 7:   /* chunked weight gradient: 90 input channels x K 3 > 256 combos, two channel chunks */
        snprintf(name, nlen, "dw_channel_chunks");
        ir->history = 90; ir->height = 9; ir->width = 9;
        l = cc_add(ir, RC_LAYER_CONV); l->channels = 2; l->kernel = 3;
        cc_act(ir, RC_ACT_RELU);
        l = cc_add(ir, RC_LAYER_DENSE);
        cc_act(ir, RC_ACT_SOFTPLUS);
        break;
    case 8:   /* defined layers: the first (reading frames), a middle one with state, the last one */
        snprintf(name, nlen, "defined_layers");
        for (int q = 0; q < 7; q++) cc_add(ir, RC_LAYER_ACT);   /* placeholders, replaced below */
        l = &ir->layers[2]; rc_layer_defaults(l, RC_LAYER_CONV); l->channels = 3; l->kernel = 3;
        l = &ir->layers[4]; rc_layer_defaults(l, RC_LAYER_DENSE);
        rc_layer_defaults(&ir->layers[5], RC_LAYER_BATCHNORM);
        /* (4,12,12) -conv 5-> (4,8,8) -bn,relu-> -conv 3-> (3,6,6) -relu, dense, bn-> (3,1,1) */
        if (cc_def(ir, 0, "myconv", 0, 4, 12, 12, 4, 5, err, errlen) ||
            cc_def(ir, 1, "mybnrelu", 1, 4, 8, 8, 0, 0, err, errlen) ||
            cc_def(ir, 6, "mysoftplus", 2, cells, 1, 1, 0, 0, err, errlen))
            return -1;
        break;
    case 9:   /* the prelude's forms of conv and relu as defined layers: lowered to the built-ins */
        snprintf(name, nlen, "lowered_defined_layers");
        for (int q = 0; q < 5; q++) cc_add(ir, RC_LAYER_ACT);
        l = &ir->layers[2]; rc_layer_defaults(l, RC_LAYER_CONV); l->channels = 3; l->kernel = 3;
        l = &ir->layers[4]; rc_layer_defaults(l, RC_LAYER_DENSE);
        /* (4,12,12) -conv 5-> (4,8,8) -relu-> -conv 3-> (3,6,6) -relu-> dense (3) */
        if (cc_def(ir, 0, "conv", 3, 4, 12, 12, 4, 5, err, errlen) ||
            cc_def(ir, 1, "relu", 4, 4, 8, 8, 0, 0, err, errlen))
            return -1;
        break;
    default:
        return 1;
    }
    snprintf(ir->name, sizeof ir->name, "%s", name);
    return rc_ir_infer(ir, cells, name, err, errlen) ? -1 : 0;
}

/* ---------------------------------------------------------------- comparison */

/* max |a-b| / max(max|b|, floor): a normwise relative error. The floor keeps tensors whose
 * exact value is zero (e.g. the gradient of a conv bias just before a per-unit batchnorm,
 * which cancels exactly) from comparing rounding noise with rounding noise. */
static double cc_relerr_floor(const float *a, const float *b, size_t n, double floor)
{
    double md = 0, mb = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d;               /* NaN propagates */
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1e-30 ? mb : 1e-30);
}

static double cc_relerr(const float *a, const float *b, size_t n) { return cc_relerr_floor(a, b, n, 0); }

typedef struct {
    double y_train, state, grads, y_infer;   /* relative errors */
    char worst_grad[RC_NAME_MAX];
    double worst_grad_err;
} cc_result;

/* Deterministic pseudo-random floats in [-1, 1]. */
static float cc_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* One training step and one inference on both backends (dev = the device of `dev_be`, whose
 * pointers are device memory; ref runs on host copies). Returns 0 or -1 with err. */
static int cc_compare(const rc_ir *ir, rc_backend *dev_be, int B, uint64_t seed, cc_result *res,
                      char *err, size_t errlen)
{
    rc_cuda_dev *dev = rc_cuda_backend_device(dev_be);
    rc_backend *ref = NULL;
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (rc_ref_backend_create(ir, &ref)) { snprintf(err, errlen, "ref create failed"); return -1; }
    int T = ir->history + B + 3, H = ir->in.h, W = ir->in.w, cells = ir->cells;
    size_t P = (size_t)ir->params_total, S = (size_t)ir->state_total, nf = (size_t)T * H * W;
    size_t wr = ref->ws_floats(ref, B), wd = dev_be->ws_floats(dev_be, B);
    float *params = malloc(P * 4), *state = malloc((S ? S : 1) * 4), *state2 = malloc((S ? S : 1) * 4);
    float *frames = malloc(nf * 4), *y = malloc((size_t)B * cells * 4), *y2 = malloc((size_t)B * cells * 4);
    float *dy = malloc((size_t)B * cells * 4), *g = calloc(P, 4), *g2 = calloc(P, 4), *wsr = calloc(wr, 4);
    int64_t *starts = malloc((size_t)B * 8);
    int *cpos = malloc((size_t)cells * 2 * sizeof(int));
    void *d_params = NULL, *d_state = NULL, *d_frames = NULL, *d_y = NULL, *d_dy = NULL, *d_g = NULL;
    void *d_ws = NULL, *d_starts = NULL, *d_cpos = NULL;
    if (!params || !state || !state2 || !frames || !y || !y2 || !dy || !g || !g2 || !wsr || !starts || !cpos) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc_params_init(ir, seed, params, state);
    uint64_t s = seed * 7 + 1;
    /* perturb BN affine/running stats so |scale|, shifts and eval-mode folding are exercised */
    for (size_t i = 0; i < P; i++) params[i] += 0.1f * cc_rand(&s);
    for (size_t i = 0; i < S; i++) state[i] += 0.1f * cc_rand(&s);
    for (int i = 0; i < ir->n_state; i++)
        if (strstr(ir->state[i].name, "running_var"))
            for (int64_t k = 0; k < ir->state[i].count; k++) state[ir->state[i].offset + k] = 0.5f + fabsf(state[ir->state[i].offset + k]);
    for (size_t i = 0; i < nf; i++) frames[i] = cc_rand(&s);
    for (int b = 0; b < B; b++) starts[b] = (b * 5) % (T - ir->history + 1);
    for (int i = 0; i < B * cells; i++) dy[i] = cc_rand(&s);
    int has_gc = rc_gc_layer(ir) >= 0;
    if (has_gc && rc_gc_positions(ir, NULL, cpos, err, errlen)) goto out;
    memcpy(state2, state, (S ? S : 1) * 4);

#define DALLOC(p, n) do { if (!((p) = rc_cuda_malloc(dev, (size_t)(n) + 4))) { snprintf(err, errlen, "%s", dev->err); goto out; } } while (0)
#define UP(d, h, n) do { if (rc_cuda_upload(dev, d, h, n)) { snprintf(err, errlen, "%s", dev->err); goto out; } } while (0)
#define DOWN(h, d, n) do { if (rc_cuda_download(dev, h, d, n)) { snprintf(err, errlen, "%s", dev->err); goto out; } } while (0)
    DALLOC(d_params, P * 4); DALLOC(d_state, S * 4); DALLOC(d_frames, nf * 4);
    DALLOC(d_y, (size_t)B * cells * 4); DALLOC(d_dy, (size_t)B * cells * 4); DALLOC(d_g, P * 4);
    DALLOC(d_ws, wd * 4); DALLOC(d_starts, (size_t)B * 8); DALLOC(d_cpos, (size_t)cells * 8);
    UP(d_params, params, P * 4); UP(d_state, state, S * 4); UP(d_frames, frames, nf * 4);
    UP(d_dy, dy, (size_t)B * cells * 4); UP(d_starts, starts, (size_t)B * 8); UP(d_cpos, cpos, (size_t)cells * 8);
    if (rc_cuda_zero(dev, d_g, P * 4)) { snprintf(err, errlen, "%s", dev->err); goto out; }

    /* training step */
    if (ref->train_forward(ref, B, params, state, has_gc ? cpos : NULL, seed, frames, starts, y, wsr) ||
        ref->train_backward(ref, B, params, has_gc ? cpos : NULL, frames, starts, dy, g, wsr)) {
        snprintf(err, errlen, "ref: %s", ref->err);
        goto out;
    }
    if (dev_be->train_forward(dev_be, B, d_params, d_state, has_gc ? d_cpos : NULL, seed, d_frames, d_starts, d_y, d_ws) ||
        dev_be->train_backward(dev_be, B, d_params, has_gc ? d_cpos : NULL, d_frames, d_starts, d_dy, d_g, d_ws)) {
        snprintf(err, errlen, "%s", dev_be->err);
        goto out;
    }
    DOWN(y2, d_y, (size_t)B * cells * 4);
    DOWN(g2, d_g, P * 4);
    res->y_train = cc_relerr(y2, y, (size_t)B * cells);
    res->grads = 0;
    double gmax = 0;
    for (size_t i = 0; i < P; i++) if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
    for (int p = 0; p < ir->n_params; p++) {
        const rc_param *v = &ir->params[p];
        /* floor: 1% of the largest gradient of the model (see cc_relerr_floor) */
        double e = cc_relerr_floor(g2 + v->offset, g + v->offset, (size_t)v->count, 1e-2 * gmax);
        if (getenv("RC_CC_VERBOSE"))
            fprintf(stderr, "  grad %-24s err %.3e  ref[0] %.6g dev[0] %.6g\n", v->name, e, g[v->offset], g2[v->offset]);
        if (!(e <= res->grads)) { res->grads = e; snprintf(res->worst_grad, sizeof res->worst_grad, "%s", v->name); }
    }
    res->worst_grad_err = res->grads;
    if (S) {
        DOWN(state2, d_state, S * 4);
        res->state = cc_relerr(state2, state, S);
    }
    /* inference with the updated running statistics */
    if (ref->infer(ref, B, params, state, has_gc ? cpos : NULL, frames, starts, y, wsr)) {
        snprintf(err, errlen, "ref: %s", ref->err);
        goto out;
    }
    if (dev_be->infer(dev_be, B, d_params, d_state, has_gc ? d_cpos : NULL, d_frames, d_starts, d_y, d_ws)) {
        snprintf(err, errlen, "%s", dev_be->err);
        goto out;
    }
    DOWN(y2, d_y, (size_t)B * cells * 4);
    res->y_infer = cc_relerr(y2, y, (size_t)B * cells);
    rc = 0;
#undef DALLOC
#undef UP
#undef DOWN
out:
    rc_cuda_free(dev, d_params); rc_cuda_free(dev, d_state); rc_cuda_free(dev, d_frames);
    rc_cuda_free(dev, d_y); rc_cuda_free(dev, d_dy); rc_cuda_free(dev, d_g); rc_cuda_free(dev, d_ws);
    rc_cuda_free(dev, d_starts); rc_cuda_free(dev, d_cpos);
    free(params); free(state); free(state2); free(frames); free(y); free(y2); free(dy); free(g); free(g2);
    free(wsr); free(starts); free(cpos);
    rc_backend_destroy(ref);
    return rc;
}

#endif
