/* optim.c — Adam / AdamW exactly as torch.optim (single-tensor algorithm), see optim.h.
 * Arithmetic per element in double, moments stored as float like PyTorch's float32 state.
 */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rc_optim_init(rc_optim *o, rc_opt kind, int64_t n, double lr, double weight_decay,
                  char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = lr;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = weight_decay;
    o->n = n;
    o->moments = calloc((size_t)(n > 0 ? 2 * n : 1), sizeof(float));
    if (!o->moments) {
        if (err && errlen) snprintf(err, errlen, "optimizer: out of memory for %lld moments",
                                    (long long)(2 * n));
        return -1;
    }
    return 0;
}

void rc_optim_step(rc_optim *o, float *params, const float *grads)
{
    o->step++;
    double t = (double)o->step;
    double bc1 = 1.0 - pow(o->beta1, t), bc2s = sqrt(1.0 - pow(o->beta2, t));
    double step_size = o->lr / bc1, b1 = o->beta1, b2 = o->beta2, wd = o->weight_decay;
    int decoupled = o->kind == RC_OPT_ADAMW;
    float *m = o->moments, *v = o->moments + o->n;
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < o->n; k++) {
        double w = params[k], g = grads[k];
        if (decoupled) w *= 1.0 - o->lr * wd;
        else g += wd * w;
        double mk = m[k] + (1.0 - b1) * (g - m[k]);          /* lerp, as torch */
        double vk = b2 * v[k] + (1.0 - b2) * g * g;
        m[k] = (float)mk;
        v[k] = (float)vk;
        double ss = k >= o->fast_lo && k < o->fast_hi ? step_size * o->fast_mult : step_size;
        w -= ss * mk / (sqrt(vk) / bc2s + o->eps);
        params[k] = (float)w;
    }
}

void rc_optim_free(rc_optim *o)
{
    if (!o) return;
    free(o->moments);
    o->moments = NULL;
}
