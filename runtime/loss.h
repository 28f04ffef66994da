/* loss.h — training losses and the activity penalty, value and gradient w.r.t. the prediction.
 *
 * Conventions (reference §3.4, PyTorch defaults):
 *   poisson  mean over B*cells of (pred - target * log(pred + 1e-8))   PoissonNLLLoss(log_input=False)
 *   mse      mean over B*cells of (pred - target)^2                    MSELoss()
 *   L1 activity penalty on the prediction:
 *     RC_L1_SUM   l1 * sum |pred|        (torch-deep-retina: l1 * torch.norm(pred, 1))
 *     RC_L1_MEAN  l1 * sum |pred| / B    (batch-size independent)
 *   d|p|/dp = sign(p), 0 at 0 (PyTorch).
 * Sums are accumulated in double; dy is float.
 */
#ifndef RC_LOSS_H
#define RC_LOSS_H

#include "ir.h"

#define RC_POISSON_EPS 1e-8

typedef struct {
    double data;      /* the data term (poisson or mse) */
    double l1;        /* the activity penalty (already multiplied by its coefficient) */
    double total;     /* data + l1: what is minimized */
} rc_loss_value;

/* pred, target (B, cells); dy (B, cells) receives d total / d pred (overwritten) unless NULL. */
rc_loss_value rc_loss_compute(rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                              const float *pred, const float *target, float *dy);

/* The same with the loss settings of a model's train section. */
rc_loss_value rc_loss_train(const rc_train *tr, int B, int cells, const float *pred,
                            const float *target, float *dy);

#endif
