/* phenomena_synth.c — the ground-truth column of the phenomena battery: the synthetic retina
 * of `retinac synth` (synth.h) behind the phenomena predictor interface.
 *
 * Unit conversion (docs/phenomena.md): the battery speaks model-input z-units, z = (x - mean)
 * / std with x the stored frame value and mean/std the data layer's statistics of the training
 * stimulus (data.h); synth stores x = round(255 v) (uint8, default) or v (float32) and its
 * retina sees s = 2v - 1. So s = 2 (z std + mean) / scale - 1, scale = 255 or 1, with mean/std
 * computed from the same training stimulus that `retinac synth` with these options writes
 * (what a model trained on that file was normalized with). No clipping to the display range
 * [0, 1] and no 8-bit quantization: the retina receives the same nominal stimulus as a model.
 * The predictor follows the model convention: out[i] = lambda(i + 40), the rate after window
 * i = frames i..i+39 (lambda(t) depends on frames t-39..t-1 only).
 * The STA (phenomena.h's sta callback) is NOT a gradient: the retina has no backward pass. It
 * is reverse correlation on the noise-free rate, which estimates the same quantity: for
 * Gaussian windows w ~ N(0, c^2 I), Stein's lemma gives E[(y - E y) w] = c^2 E[dy/dw], so
 * sum_i (y_i - mean y)(w_i - mean w) / (N c^2) is an unbiased (noisier) estimate of the mean
 * gradient in z-units. Each window is paired with its negative (antithetic: y(w) - y(-w) has
 * the same Stein covariance without the response's even part). The rate is cheap, so it runs
 * on many more windows than a gradient.
 */
#include "phenomena.h"

#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "errbuf.h"
#include "rng.h"

struct rc_pheno_synth {
    rc_synth_retina *r;
    double mean, std, scale;
    int cells;
};

static int synth_predict(void *vctx, const float *frames, int64_t T, float *out, char *err,
                         size_t errlen)
{
    rc_pheno_synth *s = vctx;
    const int64_t P = 50 * 50, C = s->cells;
    float *x = malloc((size_t)(T * P) * sizeof *x), *lam = malloc((size_t)(T * C) * sizeof *lam);
    if (!x || !lam) { free(x); free(lam); return rc_errf(err, errlen, "synthetic retina: out of memory"); }
    const double a = 2.0 * s->std / s->scale, b = 2.0 * s->mean / s->scale - 1.0;
    for (int64_t i = 0; i < T * P; i++) x[i] = (float)(a * frames[i] + b);
    int rc = rc_synth_retina_rate(s->r, x, T, lam, err, errlen);
    if (rc == 0) memcpy(out, lam + 40 * C, (size_t)((T - 40) * C) * sizeof *out);
    free(x);
    free(lam);
    return rc;
}

#define STA_STREAM 0x53544100u   /* "STA": the reverse-correlation noise */

static int synth_sta(void *vctx, double contrast, int64_t samples, uint64_t seed, float *out,
                     char *err, size_t errlen)
{
    rc_pheno_synth *s = vctx;
    const int h = 40, C = s->cells, B = 1024;
    const int64_t P = 50 * 50, win = (int64_t)h * P;
    double *acc = calloc((size_t)(C + 1) * win, sizeof *acc);   /* C cross sums + the window sum */
    float *fr = malloc((size_t)(B + h) * P * sizeof *fr), *y = malloc((size_t)B * C * sizeof *y);
    float *ym = malloc((size_t)B * C * sizeof *ym);
    double *sy = calloc((size_t)C, sizeof *sy);
    int rc = -1;
    if (!acc || !fr || !y || !ym || !sy) { rc_errf(err, errlen, "synthetic retina STA: out of memory"); goto out; }
    if (samples < 2) { rc_errf(err, errlen, "synthetic retina STA: %lld windows: need at least 2", (long long)samples); goto out; }
    for (int64_t s0 = 0; s0 < samples; s0 += B) {
        const int nb = (int)(samples - s0 < B ? samples - s0 : B);
        const int64_t T = (int64_t)nb + h;
        /* frames s0 .. s0+T-1 of one noise stream (window i = frames i..i+39 predicts y[i]) */
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < T * P; i++)
            fr[i] = (float)contrast * rc_rng_normal(seed, STA_STREAM, (uint64_t)(s0 * P + i));
        /* antithetic pairs: d = (y(w) - y(-w)) / 2 keeps the odd part of the response, whose
         * Stein covariance is the same mean gradient, and drops the even part (rectified
         * subunits, ON-OFF cells), which only adds noise to reverse correlation */
        if (synth_predict(s, fr, T, y, err, errlen) < 0) goto out;
        for (int64_t i = 0; i < T * P; i++) fr[i] = -fr[i];
        if (synth_predict(s, fr, T, ym, err, errlen) < 0) goto out;
        for (int64_t i = 0; i < T * P; i++) fr[i] = -fr[i];
        for (int64_t i = 0; i < (int64_t)nb * C; i++) y[i] = 0.5f * (y[i] - ym[i]);
        /* acc[n][c][p] += sum_i y[i][n] fr[i+c][p]; n == C: the window sums */
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n <= C; n++)
            for (int c = 0; c < h; c++) {
                float part[2500];
                memset(part, 0, sizeof part);
                for (int i = 0; i < nb; i++) {
                    const float a = n < C ? y[(int64_t)i * C + n] : 1.0f, *f = fr + (int64_t)(i + c) * P;
                    for (int64_t p = 0; p < P; p++) part[p] += a * f[p];
                }
                double *d = acc + (int64_t)n * win + (int64_t)c * P;
                for (int64_t p = 0; p < P; p++) d[p] += part[p];
            }
        for (int i = 0; i < nb; i++)
            for (int n = 0; n < C; n++) sy[n] += y[(int64_t)i * C + n];
    }
    /* sum (y - ym)(w - wm) = sum y w - ym sum w; divided by N c^2 */
    const double N = (double)samples, c2 = contrast * contrast;
    for (int n = 0; n < C; n++) {
        const double ym = sy[n] / N;
        for (int64_t e = 0; e < win; e++)
            out[(int64_t)n * win + e] = (float)((acc[(int64_t)n * win + e] - ym * acc[(int64_t)C * win + e]) / (N * c2));
    }
    rc = 0;
out:
    free(acc); free(fr); free(y); free(ym); free(sy);
    return rc;
}

int rc_pheno_synth_open(const rc_synth_opts *o, rc_pheno_model *m, rc_pheno_synth **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    rc_pheno_synth *s = calloc(1, sizeof *s);
    if (!s) return rc_errf(err, errlen, "out of memory");
    if (rc_synth_stim_stats(o, &s->mean, &s->std, err, errlen) < 0 ||
        rc_synth_retina_open(o, &s->r, err, errlen) < 0) {
        free(s);
        return -1;
    }
    s->std += RC_DATA_STD_EPS;
    s->scale = o->float32 ? 1.0 : 255.0;
    s->cells = rc_synth_retina_cells(s->r);
    memset(m, 0, sizeof *m);
    m->predict = synth_predict;
    m->ctx = s;
    m->history = 40;
    m->H = m->W = 50;
    m->cells = s->cells;
    m->seed = 1;
    m->sta = synth_sta;
    m->sta_kind = "reverse-correlation STA (Stein: estimates the mean gradient)";
    m->sta_samples = 32 * RC_PHENO_STA_SAMPLES;
    *out = s;
    return 0;
}

void rc_pheno_synth_stats(const rc_pheno_synth *s, double *mean, double *std)
{
    if (mean) *mean = s->mean;
    if (std) *std = s->std;
}

void rc_pheno_synth_close(rc_pheno_synth *s)
{
    if (!s) return;
    rc_synth_retina_close(s->r);
    free(s);
}
