/* loss.h — training losses and the activity penalty, value and gradient w.r.t. the prediction.
 *
 * Conventions (reference §3.4, PyTorch defaults):
 *   poisson      mean over B*cells of (pred - target * log(pred + 1e-8))  PoissonNLLLoss(log_input=False)
 *   mse          mean over B*cells of (pred - target)^2                   MSELoss()
 *   poisson_log  mean over B*cells of (exp(pred) - target * pred)         PoissonNLLLoss(log_input=True)
 *                (full=False: no Stirling term; eps unused with log_input). The training
 *                output is a log-rate: the reference pairs this loss with an output layer
 *                Exponential(train_off=True), identity in training and exp in eval, so what
 *                eval/predict report (eval mode) is the rate exp(pred).
 *   L1 activity penalty on the prediction:
 *     RC_L1_SUM   l1 * sum |pred|        (torch-deep-retina: l1 * torch.norm(pred, 1))
 *     RC_L1_MEAN  l1 * sum |pred| / B    (batch-size independent)
 *   d|p|/dp = sign(p), 0 at 0 (PyTorch).
 * Sums are accumulated in double; dy is float; the prediction is float, or double for the
 * *64 forms (value only).
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

/* The loss to apply to EVAL-mode outputs (validation): poisson_log -> poisson, others unchanged.
 * Validation runs the model in eval mode, as the reference does (model.eval(), §3.4), so under
 * poisson_log its outputs are rates r = exp(log-rate) and the data term is the rate form
 * r - t*log(r + 1e-8), which is the training data term exp(y) - t*y at y = log r (up to the
 * 1e-8): training and validation losses stay comparable. The reference literally applies its
 * log_input=True loss to the eval-mode rates (exp(r) - t*r), which measures nothing; retinac
 * does not reproduce that. The L1 term is taken on the eval-mode outputs, as the reference's
 * validation does. A model whose eval output is not a rate (no eval-only exp at the end: the
 * prelude's exponential { train_off = true }) gets a NaN validation loss for negative outputs. */
rc_loss rc_loss_eval_kind(rc_loss kind);

/* The same with the loss settings of a model's train section. */
rc_loss_value rc_loss_train(const rc_train *tr, int B, int cells, const float *pred,
                            const float *target, float *dy);

/* The value alone for a prediction in double (the reference's double instance, rc_ref64_*,
 * for finite differences): the same formula as rc_loss_compute, without the float rounding of
 * the prediction. */
rc_loss_value rc_loss_compute64(rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                                const double *pred, const float *target);
rc_loss_value rc_loss_train64(const rc_train *tr, int B, int cells, const double *pred, const float *target);

#endif
