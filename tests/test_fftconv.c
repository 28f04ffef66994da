/* test_fftconv.c — the FFT first conv (runtime/backend/fftconv.c) against a plain direct convolution
 * written here (double accumulation): forward output and weight/bias gradients, at the real
 * BN-CNN size (40x50x50 windows, 8x15x15 kernels), the input gradient of every window (what the
 * later layers' hooks use: bncnn's layer 2 shape too), and at odd small sizes (remainder tiles, odd
 * frame widths, several backward chunks), with random overlapping windows. Also: determinism
 * across thread counts, the weight-spectrum cache invalidation, += semantics, and errors.
 * Every shape runs on both transform engines (lane-batched, FFTW) and on every ISA variant of
 * the hot loops that this CPU can run (generic, AVX2, AVX-512).
 * Tolerance: relative L2 error <= 1e-5 (fp32 FFT; measured errors are printed).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fftconv.h"

#define TOL 1e-5

static uint64_t rng_state;
static double urand(void)   /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float *rand_vec(size_t n, double scale)
{
    float *v = malloc(n * sizeof(float));
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) v[i] = (float)(urand() * scale);
    return v;
}

typedef struct {
    int C, H, W, Cout, K, Ho, Wo, B;
    int64_t T;
} shape;

/* out (B,Cout,Ho,Wo) = bias + valid cross-correlation of windows (PyTorch orientation). */
static void direct_forward(const shape *s, const float *frames, const int64_t *starts,
                           const float *w, const float *bias, double *out)
{
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->Cout; o++)
            for (int i = 0; i < s->Ho; i++)
                for (int j = 0; j < s->Wo; j++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int c = 0; c < s->C; c++) {
                        const float *x = frames + (size_t)(starts[b] + c) * s->H * s->W;
                        const float *wk = w + ((size_t)o * s->C + c) * s->K * s->K;
                        for (int u = 0; u < s->K; u++)
                            for (int v = 0; v < s->K; v++)
                                acc += (double)wk[u * s->K + v] * x[(i + u) * s->W + j + v];
                    }
                    out[(((size_t)b * s->Cout + o) * s->Ho + i) * s->Wo + j] = acc;
                }
}

/* dw (Cout,C,K,K) = sum_b,i,j dout[b,o,i,j] x[b,c,i+u,j+v]; db (Cout) = sum dout. */
static void direct_backward(const shape *s, const float *frames, const int64_t *starts,
                            const float *dout, double *dw, double *db)
{
    memset(dw, 0, (size_t)s->Cout * s->C * s->K * s->K * sizeof(double));
    memset(db, 0, (size_t)s->Cout * sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->Cout; o++) {
            const float *dy = dout + ((size_t)b * s->Cout + o) * s->Ho * s->Wo;
            for (int i = 0; i < s->Ho * s->Wo; i++) db[o] += dy[i];
            for (int c = 0; c < s->C; c++) {
                const float *x = frames + (size_t)(starts[b] + c) * s->H * s->W;
                double *dwk = dw + ((size_t)o * s->C + c) * s->K * s->K;
                for (int u = 0; u < s->K; u++)
                    for (int v = 0; v < s->K; v++) {
                        double acc = 0.0;
                        for (int i = 0; i < s->Ho; i++)
                            for (int j = 0; j < s->Wo; j++)
                                acc += (double)dy[i * s->Wo + j] * x[(i + u) * s->W + j + v];
                        dwk[u * s->K + v] += acc;
                    }
            }
        }
}

/* dx (B,C,H,W): dx[b,c,p,q] = sum_o,u,v w[o,c,u,v] dout[b,o,p-u,q-v] (zero outside). */
static void direct_input_grad(const shape *s, const float *w, const float *dout, double *dx)
{
    memset(dx, 0, (size_t)s->B * s->C * s->H * s->W * sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->Cout; o++)
            for (int c = 0; c < s->C; c++) {
                const float *dy = dout + ((size_t)b * s->Cout + o) * s->Ho * s->Wo;
                const float *wk = w + ((size_t)o * s->C + c) * s->K * s->K;
                double *d = dx + ((size_t)b * s->C + c) * s->H * s->W;
                for (int i = 0; i < s->Ho; i++)
                    for (int j = 0; j < s->Wo; j++)
                        for (int u = 0; u < s->K; u++)
                            for (int v = 0; v < s->K; v++)
                                d[(i + u) * s->W + j + v] += (double)wk[u * s->K + v] * dy[i * s->Wo + j];
            }
}

static double rel_l2(const float *a, const double *ref, size_t n, const float *base)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (base ? base[i] : 0.0) - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Full check of one shape: forward (with bias) and weight/bias gradients (+= onto a nonzero
 * initial value), against the direct loops, for every engine x ISA variant. Returns the worst
 * relative error. */
static double check_shape(int C, int H, int W, int Cout, int K, int B, int64_t T, int threads,
                          uint64_t seed, const char *label)
{
    rng_state = seed;
    shape s = {C, H, W, Cout, K, H - K + 1, W - K + 1, B, T};
    float *frames = rand_vec((size_t)T * H * W, 1.0);
    float *w = rand_vec((size_t)Cout * C * K * K, 1.0 / sqrt((double)C * K * K));
    float *bias = rand_vec((size_t)Cout, 0.5);
    int64_t *starts = malloc((size_t)B * sizeof *starts);
    cr_assert_not_null(starts);
    for (int b = 0; b < B; b++) {
        starts[b] = (int64_t)((urand() * 0.5 + 0.5) * (double)(T - C + 1));
        if (starts[b] > T - C) starts[b] = T - C;
    }
    if (B > 1) { starts[0] = 0; starts[1] = T - C; }   /* both ends of the chunk */
    size_t nout = (size_t)B * Cout * s.Ho * s.Wo, nw = (size_t)Cout * C * K * K;
    float *dout = rand_vec(nout, 1.0);
    float *dw0 = rand_vec(nw, 1.0), *db0 = rand_vec((size_t)Cout, 1.0);   /* += targets */

    double *rout = malloc(nout * sizeof(double)), *rdw = malloc(nw * sizeof(double));
    double *rdb = malloc((size_t)Cout * sizeof(double));
    const size_t nx = (size_t)B * C * H * W;
    double *rdx = malloc(nx * sizeof(double));
    cr_assert(rout && rdw && rdb && rdx);
    direct_forward(&s, frames, starts, w, bias, rout);
    direct_backward(&s, frames, starts, dout, rdw, rdb);
    direct_input_grad(&s, w, dout, rdx);

    double worst = 0.0;
    int variants = 0;
    for (int engine = RC_FFTCONV_ENGINE_LANES; engine <= RC_FFTCONV_ENGINE_FFTW; engine++)
        for (int isa = RC_FFTCONV_ISA_GENERIC; isa <= RC_FFTCONV_ISA_AVX512; isa++) {
            char err[256];
            rc_fftconv *p = NULL;
            cr_assert_eq(rc_fftconv_create(C, H, W, Cout, K, threads, &p, err, sizeof err), 0,
                         "%s", err);
            if (rc_fftconv_set_isa(p, isa) != 0) {   /* this CPU lacks the ISA */
                cr_assert(isa > RC_FFTCONV_ISA_GENERIC, "%s", rc_fftconv_error(p));
                rc_fftconv_destroy(p);
                continue;
            }
            cr_assert_eq(rc_fftconv_set_engine(p, engine), 0);
            int ho, wo;
            rc_fftconv_out_shape(p, &ho, &wo);
            cr_assert_eq(ho, s.Ho);
            cr_assert_eq(wo, s.Wo);
            float *spec = malloc(rc_fftconv_spectra_floats(p, T) * sizeof(float));
            float *out = malloc(nout * sizeof(float));
            float *dw = malloc(nw * sizeof(float)), *db = malloc((size_t)Cout * sizeof(float));
            cr_assert(spec && out && dw && db);
            memcpy(dw, dw0, nw * sizeof(float));
            memcpy(db, db0, (size_t)Cout * sizeof(float));
            /* forward_frames first (frame and weight transforms in one work loop), then the
             * two calls on the cached weights: the same spectra and outputs, bit for bit */
            const size_t nspec = rc_fftconv_spectra_floats(p, T);
            float *spec2 = calloc(nspec, sizeof(float)), *out2 = malloc(nout * sizeof(float));
            cr_assert(spec2 && out2);
            memset(spec, 0, nspec * sizeof(float));   /* the padding floats are never written */
            cr_assert_eq(rc_fftconv_forward_frames(p, frames, T, spec2, starts, B, w, bias, out2),
                         0, "%s", rc_fftconv_error(p));
            cr_assert_eq(rc_fftconv_spectra(p, frames, T, spec), 0, "%s", rc_fftconv_error(p));
            cr_assert_eq(rc_fftconv_forward(p, spec, T, starts, B, w, bias, out), 0, "%s",
                         rc_fftconv_error(p));
            cr_expect_eq(memcmp(spec2, spec, nspec * sizeof(float)), 0,
                         "%s engine %d isa %d: forward_frames spectra differ", label, engine, isa);
            cr_expect_eq(memcmp(out2, out, nout * sizeof(float)), 0,
                         "%s engine %d isa %d: forward_frames outputs differ", label, engine, isa);
            free(spec2); free(out2);
            cr_assert_eq(rc_fftconv_backward_weight(p, spec, T, starts, B, dout, dw, db), 0,
                         "%s", rc_fftconv_error(p));
            /* with the input gradient: the same weight and bias gradients, bit for bit */
            float *dw2 = malloc(nw * sizeof(float)), *db2 = malloc((size_t)Cout * sizeof(float));
            float *dx = malloc(nx * sizeof(float));
            cr_assert(dw2 && db2 && dx);
            memcpy(dw2, dw0, nw * sizeof(float));
            memcpy(db2, db0, (size_t)Cout * sizeof(float));
            for (size_t i = 0; i < nx; i++) dx[i] = NAN;   /* written, not accumulated */
            cr_assert_eq(rc_fftconv_backward(p, spec, T, starts, B, w, dout, dw2, db2, dx), 0,
                         "%s", rc_fftconv_error(p));
            cr_expect_eq(memcmp(dw2, dw, nw * sizeof(float)), 0, "%s: dweight changed with dx", label);
            cr_expect_eq(memcmp(db2, db, (size_t)Cout * sizeof(float)), 0, "%s: dbias changed with dx",
                         label);
            double ex = rel_l2(dx, rdx, nx, NULL);
            cr_expect_leq(ex, TOL, "%s engine %d isa %d: dx rel L2 %g", label, engine, isa, ex);
            free(dw2); free(db2); free(dx);
            double ef = rel_l2(out, rout, nout, NULL);
            double ew = rel_l2(dw, rdw, nw, dw0);
            double eb = rel_l2(db, rdb, (size_t)Cout, db0);
            fprintf(stderr, "fftconv %s [%s, isa %d]: C=%d %dx%d Cout=%d K=%d B=%d T=%lld "
                    "threads=%d: rel L2 forward %.3g, dweight %.3g, dbias %.3g, dx %.3g\n", label,
                    engine == RC_FFTCONV_ENGINE_LANES ? "lanes" : "fftw", isa, C, H, W, Cout, K,
                    B, (long long)T, threads, ef, ew, eb, ex);
            cr_expect_leq(ef, TOL, "%s engine %d isa %d: forward rel L2 %g", label, engine, isa,
                          ef);
            cr_expect_leq(ew, TOL, "%s engine %d isa %d: dweight rel L2 %g", label, engine, isa,
                          ew);
            cr_expect_leq(eb, TOL, "%s engine %d isa %d: dbias rel L2 %g", label, engine, isa,
                          eb);
            worst = fmax(worst, fmax(fmax(ef, ex), fmax(ew, eb)));
            variants++;
            rc_fftconv_destroy(p);
            free(spec); free(out); free(dw); free(db);
        }
    cr_expect_geq(variants, 2, "%s: at least the generic variant of both engines ran", label);
    free(frames); free(w); free(bias); free(starts); free(dout); free(dw0); free(db0);
    free(rout); free(rdw); free(rdb); free(rdx);
    return worst;
}

Test(fftconv, bncnn_size)
{
    /* 40x50x50 windows, 8x15x15 kernels; 5 samples in a 60-frame chunk (overlapping). */
    check_shape(40, 50, 50, 8, 15, 5, 60, 2, 0x1234567ull, "bncnn");
}

Test(fftconv, bncnn_layer2_size)
{
    /* bncnn's layer 2 as the hooks run it: each sample's 8 maps of 36x36 its own frames. */
    check_shape(8, 36, 36, 8, 11, 6, 48, 2, 0x2468ull, "layer2");
}

Test(fftconv, odd_small)
{
    /* C=3 (remainder c tile), Cout=5 (remainder o tile), odd width 13, K=4. */
    check_shape(3, 11, 13, 5, 4, 17, 20, 2, 0xabcdefull, "odd_small");
}

Test(fftconv, many_samples_several_chunks)
{
    /* B > 2 backward chunks and many forward groups; windows overlap heavily. */
    check_shape(3, 11, 13, 6, 4, 2 * RC_FFTCONV_BWD_CHUNK + 9, 30, 2, 0x5151ull, "chunks");
}

Test(fftconv, edge_shapes)
{
    check_shape(1, 7, 6, 1, 1, 3, 4, 1, 0x77ull, "k1");           /* 1x1 kernel */
    check_shape(2, 8, 10, 3, 8, 4, 5, 2, 0x99ull, "ho1");         /* Ho = 1, Wo = 3 */
    check_shape(5, 9, 9, 2, 9, 3, 7, 3, 0x42ull, "full");          /* Ho = Wo = 1 */
    check_shape(4, 16, 12, 9, 5, 1, 4, 2, 0x43ull, "b1");          /* B = 1, T = C */
}

/* Forward and backward must be bit-identical for any thread count (both engines). */
Test(fftconv, deterministic_across_threads)
{
    const int C = 6, H = 12, W = 14, Cout = 5, K = 5, B = 70;
    const int64_t T = 40;
    rng_state = 0x31337ull;
    float *frames = rand_vec((size_t)T * H * W, 1.0);
    float *w = rand_vec((size_t)Cout * C * K * K, 0.2);
    int64_t starts[70];
    for (int b = 0; b < B; b++) starts[b] = (int64_t)((urand() * 0.5 + 0.5) * (T - C));
    size_t nout = (size_t)B * Cout * (H - K + 1) * (W - K + 1), nw = (size_t)Cout * C * K * K;
    float *dout = rand_vec(nout, 1.0);
    for (int engine = RC_FFTCONV_ENGINE_LANES; engine <= RC_FFTCONV_ENGINE_FFTW; engine++) {
        float *out[3], *dw[3], *spec[3];
        char err[256];
        for (int t = 0; t < 3; t++) {
            rc_fftconv *p = NULL;
            cr_assert_eq(rc_fftconv_create(C, H, W, Cout, K, t + 1, &p, err, sizeof err), 0,
                         "%s", err);
            cr_assert_eq(rc_fftconv_set_engine(p, engine), 0);
            spec[t] = malloc(rc_fftconv_spectra_floats(p, T) * sizeof(float));
            out[t] = malloc(nout * sizeof(float));
            dw[t] = calloc(nw, sizeof(float));
            cr_assert(spec[t] && out[t] && dw[t]);
            cr_assert_eq(rc_fftconv_spectra(p, frames, T, spec[t]), 0);
            cr_assert_eq(rc_fftconv_forward(p, spec[t], T, starts, B, w, NULL, out[t]), 0);
            cr_assert_eq(rc_fftconv_backward_weight(p, spec[t], T, starts, B, dout, dw[t], NULL),
                         0);
            rc_fftconv_destroy(p);
        }
        for (int t = 1; t < 3; t++) {
            cr_expect(memcmp(out[0], out[t], nout * sizeof(float)) == 0,
                      "engine %d: forward differs 1 vs %d threads", engine, t + 1);
            cr_expect(memcmp(dw[0], dw[t], nw * sizeof(float)) == 0,
                      "engine %d: dweight differs 1 vs %d threads", engine, t + 1);
        }
        for (int t = 0; t < 3; t++) { free(out[t]); free(dw[t]); free(spec[t]); }
    }
    free(frames); free(w); free(dout);
}

/* Changing one weight value must invalidate the cached weight spectra. */
Test(fftconv, weight_cache_invalidation)
{
    const int C = 3, H = 10, W = 9, Cout = 2, K = 3, B = 4;
    const int64_t T = 8;
    shape s = {C, H, W, Cout, K, H - K + 1, W - K + 1, B, T};
    rng_state = 0x600dull;
    float *frames = rand_vec((size_t)T * H * W, 1.0);
    size_t nw = (size_t)Cout * C * K * K, nout = (size_t)B * Cout * s.Ho * s.Wo;
    float *w = rand_vec(nw, 0.3);
    int64_t starts[4] = {0, 3, 5, 2};
    char err[256];
    rc_fftconv *p = NULL;
    cr_assert_eq(rc_fftconv_create(C, H, W, Cout, K, 2, &p, err, sizeof err), 0, "%s", err);
    float *spec = malloc(rc_fftconv_spectra_floats(p, T) * sizeof(float));
    float *out = malloc(nout * sizeof(float));
    double *ref = malloc(nout * sizeof(double));
    cr_assert(spec && out && ref);
    cr_assert_eq(rc_fftconv_spectra(p, frames, T, spec), 0);
    for (int round = 0; round < 3; round++) {
        if (round == 1) w[nw - 1] += 0.5f;          /* last element: memcmp must see it */
        if (round == 2) w[0] = -w[0];
        cr_assert_eq(rc_fftconv_forward(p, spec, T, starts, B, w, NULL, out), 0);
        direct_forward(&s, frames, starts, w, NULL, ref);
        double e = rel_l2(out, ref, nout, NULL);
        cr_expect_leq(e, TOL, "round %d rel L2 %g", round, e);
    }
    rc_fftconv_destroy(p);
    free(frames); free(w); free(spec); free(out); free(ref);
}

Test(fftconv, errors)
{
    char err[256] = "";
    rc_fftconv *p = NULL;
    cr_expect_eq(rc_fftconv_create(4, 10, 10, 2, 11, 1, &p, err, sizeof err), -1);
    cr_expect_null(p);
    cr_expect(strstr(err, "K=11") != NULL, "message: %s", err);
    cr_expect_eq(rc_fftconv_create(0, 10, 10, 2, 3, 1, &p, err, sizeof err), -1);

    cr_assert_eq(rc_fftconv_create(4, 10, 10, 2, 3, 1, &p, err, sizeof err), 0, "%s", err);
    const int64_t T = 6;
    float *spec = calloc(rc_fftconv_spectra_floats(p, T), sizeof(float));
    float w[2 * 4 * 9] = {0}, out[2 * 2 * 8 * 8];
    cr_assert_not_null(spec);
    int64_t bad[2] = {0, 3};   /* 3 + 4 > 6 */
    cr_expect_eq(rc_fftconv_forward(p, spec, T, bad, 2, w, NULL, out), -1);
    cr_expect(strstr(rc_fftconv_error(p), "starts[1] = 3") != NULL, "%s", rc_fftconv_error(p));
    int64_t neg[1] = {-1};
    cr_expect_eq(rc_fftconv_backward_weight(p, spec, T, neg, 1, out, w, NULL), -1);
    cr_expect(strstr(rc_fftconv_error(p), "starts[0] = -1") != NULL, "%s", rc_fftconv_error(p));
    cr_expect_eq(rc_fftconv_forward(p, spec, 3, bad, 1, w, NULL, out), -1);   /* T < C */
    int64_t ok[2] = {0, 2};
    cr_expect_eq(rc_fftconv_forward(p, spec, T, ok, 2, w, NULL, out), 0, "%s",
                 rc_fftconv_error(p));
    cr_expect_eq(rc_fftconv_forward(p, spec, T, ok, 0, w, NULL, out), 0);   /* empty batch */
    cr_expect_eq(rc_fftconv_set_engine(p, 7), -1);
    cr_expect_eq(rc_fftconv_set_isa(p, -1), -1);
    cr_expect_eq(rc_fftconv_set_isa(p, RC_FFTCONV_ISA_GENERIC), 0);
    free(spec);
    rc_fftconv_destroy(p);
}
