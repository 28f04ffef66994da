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
 */
#include "phenomena.h"

#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "errbuf.h"

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
