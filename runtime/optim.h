/* optim.h — Adam (coupled L2, as torch.optim.Adam(weight_decay=l2), the reference's optimizer)
 * and AdamW (decoupled, as torch.optim.AdamW), over one flat parameter buffer.
 *
 * Per element, step t = ++step (PyTorch defaults beta1 0.9, beta2 0.999, eps 1e-8):
 *   Adam : g = grad + wd * w
 *   AdamW: w = w * (1 - lr * wd);  g = grad
 *   m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g^2
 *   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * Every float of the buffer is trainable (BN running statistics live in a separate buffer).
 * State for checkpoints: `moments` (2n floats: m then v) and `step`; restore by writing both.
 * lr may be changed between steps (LR schedules). One range of elements may step with a multiple
 * of lr (fast_lo/fast_hi/fast_mult, zero after init: none).
 */
#ifndef RC_OPTIM_H
#define RC_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "ir.h"

typedef struct {
    rc_opt kind;
    double lr, beta1, beta2, eps, weight_decay;
    int64_t n;          /* parameters (floats) */
    int64_t step;       /* steps taken so far */
    float *moments;     /* (2, n): m = moments, v = moments + n; owned */
    int64_t fast_lo, fast_hi;   /* elements [fast_lo, fast_hi) step with lr * fast_mult (train
                                 * field output_lr); the decoupled decay keeps lr */
    double fast_mult;
} rc_optim;

/* Zeroed moments, step 0, PyTorch default betas/eps. Returns 0 or -1 (OOM) with a message. */
int rc_optim_init(rc_optim *o, rc_opt kind, int64_t n, double lr, double weight_decay,
                  char *err, size_t errlen);
/* One update of params (n) from grads (n). */
void rc_optim_step(rc_optim *o, float *params, const float *grads);
void rc_optim_free(rc_optim *o);

#endif
