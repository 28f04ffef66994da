/* fftconv_bench.c — samples/s of the FFT first conv (runtime/backend/fftconv.c) vs a straightforward
 * direct convolution (OpenMP over samples / kernel pairs, vectorizable inner loops), measured
 * in the same run on the BN-CNN first layer: windows of C=40 frames of 50x50, 8 kernels 15x15,
 * batch 512.
 *
 * Usage: [RC_BENCH_CPU=1] fftconv_bench [threads=0(all)] [batch=512] [reps=5] [direct_reps=1]
 * Both transform engines (lane-batched, FFTW) are timed; direct_reps = 0 skips the direct conv.
 * Timings are the best of `reps` (best of `direct_reps` for the slow direct conv), which is the
 * robust statistic on a shared machine. Two window schedules are measured:
 *   contiguous: the batch is B consecutive windows of a (B+C-1)-frame chunk; the frame spectra
 *               are computed per batch and their cost is included ("incl. spectra");
 *   shuffled:   B random windows of a 16384-frame chunk whose spectra were computed once
 *               (the per-chunk cost is reported per frame; amortized it is ~1 FFT per window).
 * The paths are also checked against each other (relative L2 of the outputs, gradients).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fftconv.h"

enum { C = 40, H = 50, W = 50, COUT = 8, K = 15, HO = H - K + 1, WO = W - K + 1 };

/* Wall clock, or (RC_BENCH_CPU=1) process CPU time divided by the thread count: on a shared
 * machine the latter approximates the uncontended wall time of a balanced parallel section. */
static int use_cpu;
static int nthreads = 1;
static double now(void)
{
    struct timespec ts;
    clock_gettime(use_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / (use_cpu ? nthreads : 1);
}

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *falloc(size_t n)
{
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0) {
        fprintf(stderr, "fftconv_bench: out of memory (%zu floats)\n", n);
        exit(1);
    }
    return p;
}

/* Direct forward: per sample, per output channel, accumulate a 36x36 plane in L1;
 * the j loop (36 outputs) vectorizes. */
static void direct_forward(const float *frames, const int64_t *starts, int B, const float *w,
                           const float *bias, float *out)
{
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int o = 0; o < COUT; o++) {
            float acc[HO * WO];
            for (int i = 0; i < HO * WO; i++) acc[i] = bias[o];
            for (int c = 0; c < C; c++) {
                const float *x = frames + (size_t)(starts[b] + c) * H * W;
                const float *wk = w + ((size_t)o * C + c) * K * K;
                for (int u = 0; u < K; u++)
                    for (int v = 0; v < K; v++) {
                        const float wv = wk[u * K + v];
                        for (int i = 0; i < HO; i++) {
                            const float *xr = x + (i + u) * W + v;
                            float *ar = acc + i * WO;
                            for (int j = 0; j < WO; j++) ar[j] += wv * xr[j];
                        }
                    }
            }
            memcpy(out + ((size_t)b * COUT + o) * HO * WO, acc, sizeof acc);
        }
}

/* Direct weight gradient: per (o, c) pair (parallel), over samples; the v loop (15 lags)
 * vectorizes. dw += . */
static void direct_backward_weight(const float *frames, const int64_t *starts, int B,
                                   const float *dout, float *dw)
{
    #pragma omp parallel for schedule(static)
    for (int oc = 0; oc < COUT * C; oc++) {
        const int o = oc / C, c = oc % C;
        float acc[K * K];
        memset(acc, 0, sizeof acc);
        for (int b = 0; b < B; b++) {
            const float *x = frames + (size_t)(starts[b] + c) * H * W;
            const float *dy = dout + ((size_t)b * COUT + o) * HO * WO;
            for (int u = 0; u < K; u++)
                for (int i = 0; i < HO; i++)
                    for (int j = 0; j < WO; j++) {
                        const float d = dy[i * WO + j];
                        const float *xr = x + (i + u) * W + j;
                        for (int v = 0; v < K; v++) acc[u * K + v] += d * xr[v];
                    }
        }
        for (int i = 0; i < K * K; i++) dw[(size_t)oc * K * K + i] += acc[i];
    }
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static void die_fc(rc_fftconv *p, const char *what)
{
    fprintf(stderr, "fftconv_bench: %s: %s\n", what, rc_fftconv_error(p));
    exit(1);
}

typedef struct {
    double spec_frame, wspec, fwd_c, bwd_c, specc, fwd_s, bwd_s;
} timings;

/* All fftconv timings for one engine; results of the contiguous batch left in out_f, dw_f. */
static timings run_engine(int engine, int threads, int B, int reps, const float *frames,
                          int64_t Ts, const int64_t *sc, const int64_t *ss, float *w,
                          const float *bias, const float *dout, float *out_f, float *dw_f)
{
    const int64_t Tc = B + C - 1;
    const size_t nw = (size_t)COUT * C * K * K;
    char err[256];
    rc_fftconv *p = NULL;
    if (rc_fftconv_create(C, H, W, COUT, K, threads, &p, err, sizeof err) != 0) {
        fprintf(stderr, "fftconv_bench: %s\n", err);
        exit(1);
    }
    if (rc_fftconv_set_engine(p, engine) != 0) die_fc(p, "engine");
    float *spec_c = falloc(rc_fftconv_spectra_floats(p, Tc));
    float *spec_s = falloc(rc_fftconv_spectra_floats(p, Ts));
    float dbias[COUT];
    timings t = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (rc_fftconv_spectra(p, frames, Ts, spec_s) != 0) die_fc(p, "spectra");
        t.spec_frame = fmin(t.spec_frame, (now() - t0) / (double)Ts);
    }
    /* The first forward after a weight change pays the Cout*C weight transforms: measured
     * separately (a 1-sample forward right after touching one weight). */
    if (rc_fftconv_spectra(p, frames, Tc, spec_c) != 0) die_fc(p, "spectra");
    for (int r = 0; r < reps; r++) {
        w[0] += 1e-3f;
        double t0 = now();
        if (rc_fftconv_forward(p, spec_c, Tc, sc, 1, w, bias, out_f) != 0) die_fc(p, "forward");
        t.wspec = fmin(t.wspec, now() - t0);
    }
    w[0] -= (float)reps * 1e-3f;
    if (rc_fftconv_forward(p, spec_c, Tc, sc, B, w, bias, out_f) != 0) die_fc(p, "forward");
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (rc_fftconv_spectra(p, frames, Tc, spec_c) != 0) die_fc(p, "spectra");
        double t1 = now();
        if (rc_fftconv_forward(p, spec_c, Tc, sc, B, w, bias, out_f) != 0) die_fc(p, "forward");
        double t2 = now();
        memset(dw_f, 0, nw * sizeof(float));
        if (rc_fftconv_backward_weight(p, spec_c, Tc, sc, B, dout, dw_f, dbias) != 0)
            die_fc(p, "backward");
        double t3 = now();
        t.specc = fmin(t.specc, t1 - t0);
        t.fwd_c = fmin(t.fwd_c, t2 - t1);
        t.bwd_c = fmin(t.bwd_c, t3 - t2);
    }
    float *out_s = falloc((size_t)B * COUT * HO * WO), *dw_s = falloc(nw);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (rc_fftconv_forward(p, spec_s, Ts, ss, B, w, bias, out_s) != 0) die_fc(p, "forward");
        double t1 = now();
        memset(dw_s, 0, nw * sizeof(float));
        if (rc_fftconv_backward_weight(p, spec_s, Ts, ss, B, dout, dw_s, dbias) != 0)
            die_fc(p, "backward");
        double t2 = now();
        t.fwd_s = fmin(t.fwd_s, t1 - t0);
        t.bwd_s = fmin(t.bwd_s, t2 - t1);
    }
    rc_fftconv_destroy(p);
    free(spec_c); free(spec_s); free(out_s); free(dw_s);
    return t;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    int B = argc > 2 ? atoi(argv[2]) : 512;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    int dreps = argc > 4 ? atoi(argv[4]) : 1;
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    nthreads = threads;
    use_cpu = getenv("RC_BENCH_CPU") && atoi(getenv("RC_BENCH_CPU")) > 0;
    if (B < 1 || reps < 1 || dreps < 0) {
        fprintf(stderr, "usage: fftconv_bench [threads] [batch>=1] [reps>=1] [direct_reps>=0]\n");
        return 2;
    }
    const int64_t Ts = 16384;
    const size_t nout = (size_t)B * COUT * HO * WO, nw = (size_t)COUT * C * K * K;
    float *frames = falloc((size_t)Ts * H * W);
    for (size_t i = 0; i < (size_t)Ts * H * W; i++) frames[i] = frand();
    float *w = falloc(nw), bias[COUT], *dout = falloc(nout);
    for (size_t i = 0; i < nw; i++) w[i] = frand() * 0.04f;
    for (int o = 0; o < COUT; o++) bias[o] = frand();
    for (size_t i = 0; i < nout; i++) dout[i] = frand();
    int64_t *sc = malloc((size_t)B * sizeof *sc), *ss = malloc((size_t)B * sizeof *ss);
    if (!sc || !ss) return 1;
    for (int b = 0; b < B; b++) {
        sc[b] = b;
        ss[b] = (int64_t)(((double)frand() * 0.5 + 0.5) * (double)(Ts - C));
    }
    float *out_f = falloc(nout), *out_d = falloc(nout), *out_w = falloc(nout);
    float *dw_f = falloc(nw), *dw_d = falloc(nw), *dw_w = falloc(nw);

    printf("fftconv_bench: C=%d %dx%d Cout=%d K=%d batch=%d threads=%d (best of %d; direct "
           "best of %d; %s)\n", C, H, W, COUT, K, B, threads, reps, dreps,
           use_cpu ? "process CPU time / threads" : "wall clock");
    timings tl = run_engine(RC_FFTCONV_ENGINE_LANES, threads, B, reps, frames, Ts, sc, ss, w,
                            bias, dout, out_f, dw_f);
    timings tf = run_engine(RC_FFTCONV_ENGINE_FFTW, threads, B, reps, frames, Ts, sc, ss, w,
                            bias, dout, out_w, dw_w);
    double td_f = 1e30, td_b = 1e30;
    for (int r = 0; r < dreps; r++) {
        double t0 = now();
        direct_forward(frames, sc, B, w, bias, out_d);
        double t1 = now();
        memset(dw_d, 0, nw * sizeof(float));
        direct_backward_weight(frames, sc, B, dout, dw_d);
        double t2 = now();
        td_f = fmin(td_f, t1 - t0);
        td_b = fmin(td_b, t2 - t1);
    }

    const timings *te[2] = {&tl, &tf};
    const char *en[2] = {"lanes", "fftw"};
    for (int e = 0; e < 2; e++)
        printf("  [%s] frame spectra %.2f us/frame; weight spectra (%d transforms) %.2f ms per "
               "weight change\n", en[e], 1e6 * te[e]->spec_frame, COUT * C, 1e3 * te[e]->wspec);
    printf("  %-52s %10s %10s\n", "samples/s", "fwd", "fwd+wgrad");
    if (dreps > 0)
        printf("  %-52s %10.0f %10.0f\n", "direct conv (OpenMP, vectorized loops)", B / td_f,
               B / (td_f + td_b));
    for (int e = 0; e < 2; e++) {
        const timings *t = te[e];
        char lab[96];
        snprintf(lab, sizeof lab, "[%s] contiguous, incl. per-batch spectra", en[e]);
        printf("  %-52s %10.0f %10.0f\n", lab, B / (t->specc + t->fwd_c),
               B / (t->specc + t->fwd_c + t->bwd_c));
        snprintf(lab, sizeof lab, "[%s] contiguous, spectra precomputed", en[e]);
        printf("  %-52s %10.0f %10.0f\n", lab, B / t->fwd_c, B / (t->fwd_c + t->bwd_c));
        snprintf(lab, sizeof lab, "[%s] shuffled, chunk spectra precomputed", en[e]);
        printf("  %-52s %10.0f %10.0f\n", lab, B / t->fwd_s, B / (t->fwd_s + t->bwd_s));
        snprintf(lab, sizeof lab, "[%s] shuffled, + 1 frame transform per window", en[e]);
        printf("  %-52s %10.0f %10.0f\n", lab, B / (t->fwd_s + B * t->spec_frame),
               B / (t->fwd_s + t->bwd_s + B * t->spec_frame));
    }
    int rc = 0;
    if (dreps > 0) {
        const double direct_flop = 2.0 * COUT * C * K * K * HO * WO;   /* per sample, one pass */
        printf("  speedup [lanes] vs direct, contiguous incl. spectra: fwd %.1fx, "
               "fwd+wgrad %.1fx\n",
               td_f / (tl.specc + tl.fwd_c), (td_f + td_b) / (tl.specc + tl.fwd_c + tl.bwd_c));
        printf("  direct conv: %.1f GFLOP/s fwd, %.1f GFLOP/s wgrad\n",
               direct_flop * B / td_f * 1e-9, direct_flop * B / td_b * 1e-9);
        double ef = rel_l2(out_f, out_d, nout), ew = rel_l2(dw_f, dw_d, nw);
        printf("  [lanes] vs direct (fp32 loops): rel L2 forward %.3g, dweight %.3g\n", ef, ew);
        rc = ef < 1e-4 && ew < 1e-4 ? 0 : 1;
    }
    double ef = rel_l2(out_f, out_w, nout), ew = rel_l2(dw_f, dw_w, nw);
    printf("  [lanes] vs [fftw]: rel L2 forward %.3g, dweight %.3g\n", ef, ew);
    if (!(ef < 1e-5 && ew < 1e-5)) rc = 1;

    free(frames); free(w); free(dout); free(sc); free(ss);
    free(out_f); free(out_d); free(out_w); free(dw_f); free(dw_d); free(dw_w);
    return rc;
}
