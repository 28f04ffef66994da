/* optim.c — Adam / AdamW exactly as torch.optim (single-tensor algorithm), see optim.h.
 * Arithmetic per element in double, moments stored as float like PyTorch's float32 state.
 *
 * The element loop is written for the vectorizer (one step size per call, no branch inside,
 * omp simd; an AVX-512 copy chosen at run time): the square root and the division are correctly
 * rounded in every lane and nothing is contracted (-std=c11), so the vector loop gives the
 * scalar loop's bits. It matters at small batches: one step per 32 samples took ~1 ms of
 * scalar double sqrt/div for bncnn's 155k parameters (3% of a batch-32 epoch). The Makefile
 * builds this file with -fno-math-errno (the square root of a second moment, >= 0, never sets
 * errno; with errno semantics GCC keeps sqrt scalar).
 */
#include "optim.h"

#include <math.h>
#include <omp.h>
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

/* The constants of one step. */
typedef struct {
    double b1, b2, wd, decay, bc2s, eps;   /* decay = 1 - lr * wd (AdamW) */
    int decoupled;
} adam_k;

/* Elements [lo, hi) with step size ss: the constants in locals (no aliasing with the arrays)
 * and one branch-free loop for each of AdamW's decay and Adam's coupled L2. */
#define ADAM_BODY                                                                              \
    const double b1 = c->b1, b2 = c->b2, wd = c->wd, decay = c->decay, bc2s = c->bc2s, eps = c->eps; \
    if (c->decoupled) {                                                                        \
        _Pragma("omp simd")                                                                    \
        for (int64_t k = lo; k < hi; k++) {                                                    \
            double w = params[k], g = grads[k];                                                \
            w *= decay;                                                                        \
            ADAM_MOMENTS                                                                       \
        }                                                                                      \
    } else {                                                                                   \
        _Pragma("omp simd")                                                                    \
        for (int64_t k = lo; k < hi; k++) {                                                    \
            double w = params[k], g = grads[k];                                                \
            g += wd * w;                                                                       \
            ADAM_MOMENTS                                                                       \
        }                                                                                      \
    }
#define ADAM_MOMENTS                                                                           \
    double mk = m[k] + (1.0 - b1) * (g - m[k]);          /* lerp, as torch */                   \
    double vk = b2 * v[k] + (1.0 - b2) * g * g;                                                \
    m[k] = (float)mk;                                                                          \
    v[k] = (float)vk;                                                                          \
    w -= ss * mk / (sqrt(vk) / bc2s + eps);                                                    \
    params[k] = (float)w;

static void adam_range(float *restrict params, const float *restrict grads, float *restrict m, float *restrict v,
                       int64_t lo, int64_t hi, double ss, const adam_k *c)
{
    ADAM_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
#define OPTIM_AVX512 1
__attribute__((target("avx512f")))
static void adam_range_avx512(float *restrict params, const float *restrict grads, float *restrict m,
                              float *restrict v, int64_t lo, int64_t hi, double ss, const adam_k *c)
{
    ADAM_BODY
}
#endif

void rc_optim_step(rc_optim *o, float *params, const float *grads)
{
    o->step++;
    double t = (double)o->step;
    double bc1 = 1.0 - pow(o->beta1, t);
    double step_size = o->lr / bc1;
    adam_k c = {o->beta1, o->beta2, o->weight_decay, 1.0 - o->lr * o->weight_decay, sqrt(1.0 - pow(o->beta2, t)),
                o->eps, o->kind == RC_OPT_ADAMW};
    float *m = o->moments, *v = o->moments + o->n;
    /* three ranges of one step size each: before, inside and after [fast_lo, fast_hi) */
    int64_t lo = o->fast_lo < 0 ? 0 : o->fast_lo > o->n ? o->n : o->fast_lo;
    int64_t hi = o->fast_hi < lo ? lo : o->fast_hi > o->n ? o->n : o->fast_hi;
    const int64_t cut[4] = {0, lo, hi, o->n};
    const double ss[3] = {step_size, step_size * o->fast_mult, step_size};
    int avx512 = 0;
#ifdef OPTIM_AVX512
    avx512 = __builtin_cpu_supports("avx512f");
#endif
    #pragma omp parallel
    {
        /* each thread takes one contiguous slice of every range (static split, as before) */
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        for (int r = 0; r < 3; r++) {
            int64_t len = cut[r + 1] - cut[r], a = cut[r] + len * id / nt, b = cut[r] + len * (id + 1) / nt;
            if (a >= b) continue;
#ifdef OPTIM_AVX512
            if (avx512) { adam_range_avx512(params, grads, m, v, a, b, ss[r], &c); continue; }
#endif
            (void)avx512;
            adam_range(params, grads, m, v, a, b, ss[r], &c);
        }
    }
}

void rc_optim_free(rc_optim *o)
{
    if (!o) return;
    free(o->moments);
    o->moments = NULL;
}
