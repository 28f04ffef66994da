/* loss.c — Poisson NLL (rate or log-rate input) / MSE plus L1 activity penalty, with the
 * gradient w.r.t. the prediction. See loss.h for the exact formulas (they follow PyTorch's loss modules bit for bit in intent;
 * sums here are in double). The float and double prediction entries share one formula (loss_any).
 */
#include "loss.h"

#include <math.h>

/* The one formula: the prediction in float (pf) or, when pf is NULL, in double (pd). */
static rc_loss_value loss_any(rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells, const float *pf,
                              const double *pd, const float *target, float *dy)
{
    rc_loss_value v = { 0, 0, 0 };
    size_t n = (size_t)B * (size_t)cells;
    if (n == 0) return v;
    double inv_n = 1.0 / (double)n;
    double l1c = l1_mode == RC_L1_MEAN ? l1 / (double)B : l1;
    double sd = 0, sa = 0;
    for (size_t k = 0; k < n; k++) {
        double p = pf ? (double)pf[k] : pd[k], t = target[k], g;
        if (kind == RC_LOSS_MSE) {
            sd += (p - t) * (p - t);
            g = 2.0 * (p - t) * inv_n;
        } else if (kind == RC_LOSS_POISSON_LOG) {
            double e = exp(p);
            sd += e - t * p;
            g = (e - t) * inv_n;
        } else {
            sd += p - t * log(p + RC_POISSON_EPS);
            g = (1.0 - t / (p + RC_POISSON_EPS)) * inv_n;
        }
        sa += fabs(p);
        g += l1c * (p > 0 ? 1.0 : (p < 0 ? -1.0 : 0.0));
        if (dy) dy[k] = (float)g;
    }
    v.data = sd * inv_n;
    v.l1 = l1c * sa;
    v.total = v.data + v.l1;
    return v;
}

rc_loss_value rc_loss_compute(rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                              const float *pred, const float *target, float *dy)
{
    return loss_any(kind, l1, l1_mode, B, cells, pred, NULL, target, dy);
}

rc_loss_value rc_loss_compute64(rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                                const double *pred, const float *target)
{
    return loss_any(kind, l1, l1_mode, B, cells, NULL, pred, target, NULL);
}

rc_loss rc_loss_eval_kind(rc_loss kind)
{
    return kind == RC_LOSS_POISSON_LOG ? RC_LOSS_POISSON : kind;
}

rc_loss_value rc_loss_train(const rc_train *tr, int B, int cells, const float *pred,
                            const float *target, float *dy)
{
    return rc_loss_compute(tr->loss, tr->l1_activity, tr->l1_mode, B, cells, pred, target, dy);
}

rc_loss_value rc_loss_train64(const rc_train *tr, int B, int cells, const double *pred, const float *target)
{
    return rc_loss_compute64(tr->loss, tr->l1_activity, tr->l1_mode, B, cells, pred, target);
}
