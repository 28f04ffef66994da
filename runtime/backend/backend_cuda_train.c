/* backend_cuda_train.c — the device-side loss and Adam step a CUDA training loop needs besides
 * the model's kernels (rc_cuda_util, backend_cuda.h): one small model-independent module
 * (rc_cuda_util_source(), compiled once per device) with rc_util_loss and rc_util_adam.
 *
 * Invariants: the formulas are those of loss.c and optim.c (rc_loss_compute, rc_optim_step), so
 * a CUDA step matches a host step; util_args has the layout of struct rc_uargs in the module's
 * source; the loss is reduced per block on the device and the block partials are summed in
 * double on the host in block order (deterministic); each call has finished on the device when
 * it returns.
 */
#include "backend_cuda.h"
#include "emit_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t dp(const void *p) { return (uint64_t)(uintptr_t)p; }

/* ---------------------------------------------------------------- Adam and loss */

/* rc_util_loss switches on the rc_loss value as a number (kind 0, 1, 2). */
_Static_assert(RC_LOSS_POISSON == 0 && RC_LOSS_MSE == 1 && RC_LOSS_POISSON_LOG == 2,
               "rc_util_loss's kind numbers");

/* Must match struct rc_uargs in rc_cuda_util_source(). */
typedef struct {
    uint64_t w, g, m, v, pred, target, dy, part;
    int64_t n;
    double lr, b1, b2, eps, wd, bc1, bc2s, l1c;
    int32_t adamw, kind, B, pad_;
    int64_t fast_lo, fast_hi;
    double fast_mult;
} util_args;

struct rc_cuda_util {
    rc_cuda_dev *dev;
    void *mod, *adam, *loss;
    double *part_host;
    void *part_dev;
    int64_t part_cap;   /* blocks */
    char err[1024];
};

int rc_cuda_util_create(rc_cuda_dev *d, rc_cuda_util **out, char *err, size_t errlen)
{
    *out = NULL;
    rc_cuda_util *u = calloc(1, sizeof *u);
    if (!u) { snprintf(err, errlen, "cuda: out of memory"); return -1; }
    u->dev = d;
    if (d->ops->module_load(d, rc_cuda_util_source(), "retinac_util.cu", &u->mod) ||
        d->ops->get_function(d, u->mod, "rc_util_adam", &u->adam) ||
        d->ops->get_function(d, u->mod, "rc_util_loss", &u->loss)) {
        snprintf(err, errlen, "%s", d->err);
        rc_cuda_util_destroy(u);
        return -1;
    }
    *out = u;
    return 0;
}

void rc_cuda_util_destroy(rc_cuda_util *u)
{
    if (!u) return;
    if (u->part_dev) rc_cuda_free(u->dev, u->part_dev);
    if (u->mod) u->dev->ops->module_unload(u->dev, u->mod);
    free(u->part_host);
    free(u);
}

const char *rc_cuda_util_error(rc_cuda_util *u) { return u->err; }

int rc_cuda_adam_step(rc_cuda_util *u, rc_optim *o, float *w, const float *g, float *mv)
{
    o->step++;
    double t = (double)o->step;
    util_args a;
    memset(&a, 0, sizeof a);
    a.w = dp(w); a.g = dp(g); a.m = dp(mv); a.v = dp(mv + o->n);
    a.n = o->n;
    a.lr = o->lr; a.b1 = o->beta1; a.b2 = o->beta2; a.eps = o->eps; a.wd = o->weight_decay;
    a.bc1 = 1.0 - pow(o->beta1, t);
    a.bc2s = sqrt(1.0 - pow(o->beta2, t));
    a.adamw = o->kind == RC_OPT_ADAMW;
    a.fast_lo = o->fast_lo; a.fast_hi = o->fast_hi; a.fast_mult = o->fast_mult;
    if (o->n == 0) return 0;
    unsigned gx = (unsigned)((o->n + 255) / 256);
    if (u->dev->ops->launch(u->dev, u->adam, gx, 1, 256, &a, sizeof a) || u->dev->ops->sync(u->dev)) {
        snprintf(u->err, sizeof u->err, "cuda: adam: %.900s", u->dev->err);
        return -1;
    }
    return 0;
}

int rc_cuda_loss(rc_cuda_util *u, rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                 const float *pred, const float *target, float *dy, rc_loss_value *val)
{
    int64_t n = (int64_t)B * cells;
    memset(val, 0, sizeof *val);
    if (n <= 0) return 0;
    int64_t blocks = (n + 255) / 256;
    if (blocks > u->part_cap) {
        if (u->part_dev) rc_cuda_free(u->dev, u->part_dev);
        free(u->part_host);
        u->part_dev = rc_cuda_malloc(u->dev, (size_t)blocks * 2 * sizeof(double));
        u->part_host = malloc((size_t)blocks * 2 * sizeof(double));
        u->part_cap = u->part_dev && u->part_host ? blocks : 0;
        if (!u->part_cap) { snprintf(u->err, sizeof u->err, "cuda: loss: out of memory"); return -1; }
    }
    util_args a;
    memset(&a, 0, sizeof a);
    a.pred = dp(pred); a.target = dp(target); a.dy = dp(dy); a.part = dp(u->part_dev);
    a.n = n;
    a.kind = kind;
    a.B = B;
    a.l1c = l1_mode == RC_L1_MEAN ? l1 / (double)B : l1;
    if (u->dev->ops->launch(u->dev, u->loss, (unsigned)blocks, 1, 256, &a, sizeof a) ||
        u->dev->ops->dtoh(u->dev, u->part_host, dp(u->part_dev), (size_t)blocks * 2 * sizeof(double))) {
        snprintf(u->err, sizeof u->err, "cuda: loss: %.900s", u->dev->err);
        return -1;
    }
    double sd = 0, sa = 0;
    for (int64_t k = 0; k < blocks; k++) { sd += u->part_host[2 * k]; sa += u->part_host[2 * k + 1]; }
    val->data = sd / (double)n;
    val->l1 = a.l1c * sa;
    val->total = val->data + val->l1;
    return 0;
}
