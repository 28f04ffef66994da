/* train_calib.c — output calibration at init and precise batch-norm statistics (see
 * train_calib.h). Invariants: both are pure functions of (model, recording, seed, epoch), so a
 * resumed run computes what the uninterrupted one did; neither touches the optimizer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "rng.h"
#include "train_calib.h"

int rc_calib_mean_rates(rc_data *d, int B, uint64_t seed, int cells, double *mean, char *err,
                        size_t errlen)
{
    rc_iter *it = NULL;
    if (rc_data_train_iter(d, B, seed, 0, &it, err, errlen) < 0) return -1;
    for (int c = 0; c < cells; c++) mean[c] = 0;
    int64_t n = 0;
    rc_batch b;
    int k;
    while ((k = rc_iter_next(it, &b, err, errlen)) == 1) {
        for (int i = 0; i < b.B; i++)
            for (int c = 0; c < cells; c++) mean[c] += b.y[(int64_t)i * cells + c];
        n += b.B;
    }
    rc_iter_free(it);
    if (k < 0) return -1;
    if (n == 0) return rc_errf(err, errlen, "output_init mean_rate: no training windows");
    for (int c = 0; c < cells; c++) mean[c] /= (double)n;
    return 0;
}

/* The parameter of layer li (0-based) named NAME, or NULL. */
static const rc_param *layer_param(const rc_ir *ir, int li, const char *name)
{
    char want[RC_NAME_MAX];
    snprintf(want, sizeof want, "%d.%s.%s", li + 1, rc_layer_kind_name(ir->layers[li].kind), name);
    for (int p = 0; p < ir->n_params; p++)
        if (!strcmp(ir->params[p].name, want)) return &ir->params[p];
    return NULL;
}

int rc_calib_output(const rc_ir *ir, float *params, const double *mean, char *why, size_t n)
{
    const int L = ir->n_layers, cells = ir->cells;
    const rc_layer *last = L > 0 ? &ir->layers[L - 1] : NULL;
    if (!last || last->kind != RC_LAYER_ACT || (last->act != RC_ACT_SOFTPLUS && last->act != RC_ACT_EXP)) {
        snprintf(why, n, "the model does not end in softplus or exp");
        return 0;
    }
    if (L < 2) {
        snprintf(why, n, "nothing before the output nonlinearity");
        return 0;
    }
    const rc_layer *pre = &ir->layers[L - 2];
    const rc_param *p = pre->kind == RC_LAYER_BATCHNORM ? layer_param(ir, L - 2, "shift")
                      : (pre->kind == RC_LAYER_DENSE || pre->kind == RC_LAYER_CONV ||
                         pre->kind == RC_LAYER_GCCONV) ? layer_param(ir, L - 2, "bias") : NULL;
    if (!p) {
        snprintf(why, n, "layer %d (%s) before the output has no bias or shift", L - 1,
                 rc_layer_kind_name(pre->kind));
        return 0;
    }
    if (p->count != cells) {
        snprintf(why, n, "layer %d's %s has %lld values, not one per cell (%d)", L - 1, p->name,
                 (long long)p->count, cells);
        return 0;
    }
    for (int c = 0; c < cells; c++) {
        double m = isfinite(mean[c]) && mean[c] > 1e-3 ? mean[c] : 1e-3;
        double v = last->act == RC_ACT_EXP ? log(m) : m > 30 ? m : log(expm1(m));
        params[p->offset + c] = (float)v;
    }
    return 1;
}

int rc_calib_output_params(const rc_ir *ir, int64_t *lo, int64_t *hi)
{
    const int L = ir->n_layers;
    *lo = *hi = 0;
    if (L < 2) return 0;
    const rc_layer *last = &ir->layers[L - 1], *pre = &ir->layers[L - 2];
    if (last->kind != RC_LAYER_ACT || (last->act != RC_ACT_SOFTPLUS && last->act != RC_ACT_EXP) ||
        pre->kind != RC_LAYER_BATCHNORM)
        return 0;
    int64_t a = -1, b = -1;
    for (int p = 0; p < ir->n_params; p++) {
        if (ir->params[p].layer != L - 2) continue;
        if (a >= 0 && ir->params[p].offset != b) return 0;   /* not one contiguous block */
        if (a < 0) a = ir->params[p].offset;
        b = ir->params[p].offset + ir->params[p].count;
    }
    if (a < 0) return 0;
    *lo = a;
    *hi = b;
    return 1;
}

int rc_calib_precise_bn(rc_dev *dev, rc_data *d, const rc_ir *ir, uint64_t seed, int epoch,
                        float *pred, char *err, size_t errlen)
{
    int any = 0;
    for (int i = 0; i < ir->n_layers; i++)
        any |= ir->layers[i].kind == RC_LAYER_BATCHNORM && ir->layers[i].momentum > 0;
    if (!any) return 0;
    const int64_t S = ir->state_total;
    const int B = ir->train.batch;
    float *r0 = malloc((size_t)S * sizeof *r0), *prev = malloc((size_t)S * sizeof *prev);
    float *cur = malloc((size_t)S * sizeof *cur);
    double *acc = calloc((size_t)S, sizeof *acc);
    rc_iter *it = NULL;
    int rc = -1;
    if (!r0 || !prev || !cur || !acc) { rc_errf(err, errlen, "out of memory"); goto out; }
    if (rc_dev_get_state(dev, r0, err, errlen) < 0) goto out;
    memcpy(prev, r0, (size_t)S * sizeof *prev);
    /* its own draw of windows and noise: a pure function of (seed, epoch) */
    uint64_t s = rc_rng_mix(seed ^ 0x70726563697365ull);
    if (rc_data_train_iter(d, B, s, epoch, &it, err, errlen) < 0) goto out;
    const int64_t want = (RC_PRECISE_BN_WINDOWS + B - 1) / B;
    int64_t k = 0;
    rc_batch b;
    int got = 0;
    while (k < want && (got = rc_iter_next(it, &b, err, errlen)) == 1) {
        if (rc_dev_set_frames(dev, b.frames, b.n_frames * (int64_t)ir->in.h * ir->in.w, b.gen, err, errlen) < 0 ||
            rc_dev_train_forward(dev, rc_rng_mix(s + (uint64_t)k), b.starts, pred, err, errlen) < 0 ||
            rc_dev_get_state(dev, cur, err, errlen) < 0)
            goto out;
        for (int i = 0; i < ir->n_layers; i++) {
            const rc_layer *L = &ir->layers[i];
            if (L->kind != RC_LAYER_BATCHNORM || !(L->momentum > 0)) continue;
            const double m = L->momentum;
            for (int q = L->state_first; q < L->state_first + L->state_count; q++)
                for (int64_t j = ir->state[q].offset; j < ir->state[q].offset + ir->state[q].count; j++)
                    acc[j] += ((double)cur[j] - (1.0 - m) * (double)prev[j]) / m;
        }
        float *t = prev;
        prev = cur;
        cur = t;
        k++;
    }
    if (k < want && got < 0) goto out;
    if (k == 0) { rc_errf(err, errlen, "bn_stats precise: no training batch of %d windows", B); goto out; }
    /* the new state: built-in BN running values = the batch mean; everything else as trained */
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        if (L->kind != RC_LAYER_BATCHNORM || !(L->momentum > 0)) continue;
        for (int q = L->state_first; q < L->state_first + L->state_count; q++)
            for (int64_t j = ir->state[q].offset; j < ir->state[q].offset + ir->state[q].count; j++)
                r0[j] = (float)(acc[j] / (double)k);
    }
    rc = rc_dev_put_state(dev, r0, err, errlen);
out:
    rc_iter_free(it);
    free(r0);
    free(prev);
    free(cur);
    free(acc);
    return rc;
}
