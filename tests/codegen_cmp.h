/* codegen_cmp.h — shared by tests/test_codegen.c and tests/test_cpu_kernels.c: build a model
 * from compact canonical-IR text and compare the JIT-compiled generated C backend with the
 * reference backend (train forward y and BN running state, every gradient tensor, infer), per
 * tensor, L2-relative error <= TOL (kit.h's L2 helpers). Header-only (static functions) for the
 * suites that include it. */
#ifndef RC_TEST_CODEGEN_CMP_H
#define RC_TEST_CODEGEN_CMP_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_c.h"
#include "ir.h"
#include "model.h"
#include "bias_bn.h"
#include "kit.h"

#define TOL 1e-5

static inline void codegen_setup_env(void)
{
    if (!getenv("RETINAC_CACHE_DIR")) setenv("RETINAC_CACHE_DIR", "/tmp/retinac-test-cache", 1);
    setenv("CFLAGS", "-O1 -march=native -fopenmp", 1);
}

static inline void build_ir(rc_ir *ir, const char *input, const char *layers, int cells)
{
    char text[8192], err[512];
    snprintf(text, sizeof text, "retinac-ir 1\nmodel t\ninput %s\n%send\n", input, layers);
    cr_assert_eq(rc_ir_parse(ir, text, "test", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(ir, cells, "test", err, sizeof err), 0, "%s", err);
}

/* Deterministic pseudo-random floats in [-1, 1). */
static inline float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* Compare ref and c on ir: train forward (y, state), backward (every tensor), infer.
 * fft_mode: RC_C_FFT_OFF (the module's direct path) or RC_C_FFT_ON (layer 1 by FFT on the
 * declared stream: set_stream is called and the FFT path is asserted to be on; the later plain
 * convs by FFT through the conv hooks, asserted by their call counts). */
static inline void compare_mode(const rc_ir *ir, int B, const char *what, int fft_mode)
{
    char err[1024];
    rc_backend *ref = NULL, *cb = NULL;
    cr_assert_eq(rc_ref_backend_create(ir, &ref), 0);
    cr_assert_eq(rc_c_backend_create(ir, &cb, err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_c_backend_set_fft(cb, fft_mode, err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_c_backend_fft(cb), fft_mode == RC_C_FFT_ON, "%s: FFT path state", what);
    int T = B + ir->in.c + 3, HW = ir->in.h * ir->in.w, cells = ir->cells;
    int64_t P = ir->params_total, S = ir->state_total;
    uint64_t rs = 12345;
    float *frames = malloc(sizeof(float) * T * HW);
    int64_t *starts = malloc(sizeof(int64_t) * B);
    float *params = malloc(sizeof(float) * (P + 1)), *st_r = malloc(sizeof(float) * (S + 1)),
          *st_c = malloc(sizeof(float) * (S + 1));
    float *y_r = malloc(sizeof(float) * B * cells), *y_c = malloc(sizeof(float) * B * cells);
    float *dy = malloc(sizeof(float) * B * cells);
    float *g_r = calloc(P + 1, sizeof(float)), *g_c = calloc(P + 1, sizeof(float));
    size_t wr = ref->ws_floats(ref, B), wc = cb->ws_floats(cb, B);
    float *ws_r = malloc(sizeof(float) * wr), *ws_c = malloc(sizeof(float) * wc);
    int *cell_pos = NULL;
    cr_assert(frames && starts && params && st_r && st_c && y_r && y_c && dy && g_r && g_c && ws_r && ws_c);
    for (int64_t i = 0; i < (int64_t)T * HW; i++) frames[i] = urand(&rs);
    for (int b = 0; b < B; b++) starts[b] = (int64_t)((urand(&rs) + 1) * 0.5 * (T - ir->in.c + 1)) % (T - ir->in.c + 1);
    rc_params_init(ir, 7, params, st_r);
    /* BN: non-trivial affine and running statistics (abs BN: some negative scales) */
    for (int i = 0; i < ir->n_params; i++) {
        const rc_param *p = &ir->params[i];
        if (strstr(p->name, ".scale")) for (int64_t k = 0; k < p->count; k++) params[p->offset + k] = 1.0f + 0.5f * urand(&rs) * (k % 3 == 2 ? -3 : 1);
        if (strstr(p->name, ".shift")) for (int64_t k = 0; k < p->count; k++) params[p->offset + k] = 0.3f * urand(&rs);
    }
    for (int i = 0; i < ir->n_state; i++) {
        const rc_param *p = &ir->state[i];
        int var = strstr(p->name, "running_var") != NULL;
        for (int64_t k = 0; k < p->count; k++) st_r[p->offset + k] = var ? 0.5f + 0.4f * (urand(&rs) + 1) : 0.2f * urand(&rs);
    }
    memcpy(st_c, st_r, sizeof(float) * S);
    int gl = rc_gc_layer(ir);
    if (gl >= 0) {
        const rc_layer *L = &ir->layers[gl];
        int mh = L->in.h - L->kernel + 1, mw = L->in.w - L->kernel + 1;
        cell_pos = malloc(sizeof(int) * 2 * cells);
        for (int n = 0; n < cells; n++) {
            cell_pos[2 * n] = (n * 7 + 1) % mh;
            cell_pos[2 * n + 1] = (n * 5 + 2) % mw;
        }
    }
    for (int i = 0; i < B * cells; i++) dy[i] = urand(&rs);

    if (fft_mode == RC_C_FFT_ON) cr_assert_eq(cb->set_stream(cb, frames, T), 0, "%s: %s", what, cb->err);

    uint64_t seed = 99;
    cr_assert_eq(ref->train_forward(ref, B, params, st_r, cell_pos, seed, frames, starts, y_r, ws_r), 0, "%s", ref->err);
    cr_assert_eq(cb->train_forward(cb, B, params, st_c, cell_pos, seed, frames, starts, y_c, ws_c), 0, "%s", cb->err);
    double e = kit_rel_l2(y_c, y_r, (int64_t)B * cells);
    cr_log_info("%s: train forward y: rel L2 %.3g", what, e);
    cr_expect_leq(e, TOL, "%s: train forward y: rel L2 %g", what, e);
    for (int i = 0; i < ir->n_state; i++) {
        const rc_param *p = &ir->state[i];
        e = kit_rel_l2(st_c + p->offset, st_r + p->offset, p->count);
        cr_expect_leq(e, TOL, "%s: running state %s: rel L2 %g", what, p->name, e);
    }
    cr_assert_eq(ref->train_backward(ref, B, params, cell_pos, frames, starts, dy, g_r, ws_r), 0, "%s", ref->err);
    cr_assert_eq(cb->train_backward(cb, B, params, cell_pos, frames, starts, dy, g_c, ws_c), 0, "%s", cb->err);
    /* A bias right before a batchnorm (through noise/dropout only) has an exactly zero gradient
     * (BN removes the mean): both sides hold rounding noise, so for those only check that it is
     * negligible against the whole gradient; the others are compared. */
    double gall = kit_l2_norm(g_r, P);
    for (int i = 0; i < ir->n_params; i++) {
        const rc_param *p = &ir->params[i];
        if (bias_before_bn(ir, p)) {
            double na = kit_l2_norm(g_c + p->offset, p->count);
            cr_expect_leq(na, 1e-4 * gall, "%s: gradient %s should vanish: %g", what, p->name, na);
            continue;
        }
        e = kit_l2_diff(g_c + p->offset, g_r + p->offset, p->count) / fmax(kit_l2_norm(g_r + p->offset, p->count), 1e-3 * gall);
        cr_log_info("%s: gradient %s: rel L2 %.3g", what, p->name, e);
        cr_expect_leq(e, TOL, "%s: gradient %s: rel L2 %g", what, p->name, e);
    }
    cr_assert_eq(ref->infer(ref, B, params, st_r, cell_pos, frames, starts, y_r, ws_r), 0, "%s", ref->err);
    cr_assert_eq(cb->infer(cb, B, params, st_r, cell_pos, frames, starts, y_c, ws_c), 0, "%s", cb->err);
    e = kit_rel_l2(y_c, y_r, (int64_t)B * cells);
    /* a stacked layer 1 takes the FFT path in inference only (collapsed) */
    cr_expect_eq(rc_c_backend_fft_calls(cb), fft_mode != RC_C_FFT_ON ? 0 : ir->layers[0].stack ? 1 : 3,
                 "%s: calls through the FFT path", what);
    cr_log_info("%s: infer y: rel L2 %.3g", what, e);
    cr_expect_leq(e, TOL, "%s: infer y: rel L2 %g", what, e);
    /* with the FFT on, every plain conv after the first runs by FFT through the module's conv
     * hooks: backward and inference, and the training forward where it writes level 0 */
    for (int li = 1; li < ir->n_layers; li++) {
        const rc_layer *L = &ir->layers[li];
        if (L->kind == RC_LAYER_DEF) continue;   /* lowered or not: the module's view decides */
        int hooked = fft_mode == RC_C_FFT_ON && L->kind == RC_LAYER_CONV && !L->stack && L->period == 1;
        int64_t n = rc_c_backend_hook_calls(cb, li);
        if (hooked) cr_expect(n == 2 || n == 3, "%s: layer %d: %lld calls through the conv hooks", what, li + 1, (long long)n);
        else cr_expect_eq(n, -1, "%s: layer %d is not on the FFT path", what, li + 1);
    }

    free(frames); free(starts); free(params); free(st_r); free(st_c); free(y_r); free(y_c); free(dy);
    free(g_r); free(g_c); free(ws_r); free(ws_c); free(cell_pos);
    rc_backend_destroy(ref);
    rc_backend_destroy(cb);
}

static inline void compare(const rc_ir *ir, int B, const char *what) { compare_mode(ir, B, what, RC_C_FFT_OFF); }

#endif
