/* train_calib.h — two fit-quality steps of the trainer (issue 20), each a train field so that
 * the spec hash says which ran (ir.h: rc_output_init, rc_bn_stats; the reference's behaviour is
 * value 0 of each):
 *
 *   output_init = "mean_rate": a fresh model's output is calibrated to the data. The output
 *   chain must end in softplus or exp after a layer with one additive parameter per cell: the
 *   final batchnorm's shift (BN-CNN: dense -> batchnorm -> softplus) or the bias of the dense /
 *   conv / gcconv that produces the cells. That parameter is set to the inverse of the output
 *   nonlinearity at each cell's mean training rate (softplus^-1(m) = log(expm1(m)), log m), so
 *   the first prediction is on the data's scale instead of softplus(0) = 0.69 for every cell.
 *   PyTorch's init (the reference) starts cells that fire at 4-17 Hz at 0.69 and Adam needs
 *   thousands of steps to climb; rates below 1e-3 are taken as 1e-3.
 *
 *   bn_stats = "precise": before every validation (so also before best.h5 / checkpoint.h5 are
 *   written), the running statistics of every built-in batchnorm layer are recomputed for the
 *   current weights: RC_PRECISE_BN_WINDOWS training windows (a seeded draw, deterministic, so
 *   resume stays bit-exact) go through the training-mode forward without a step, and each
 *   running value becomes the mean over those batches of the batch statistic (mean, and the
 *   unbiased variance as PyTorch's running_var), as torch.optim.swa_utils.update_bn computes
 *   it. The batch statistic is read back from the EMA the forward applies: s = (r1 - (1 - m)
 *   r0) / m for momentum m > 0 (m = 0 layers are frozen and left alone). State of defined layers
 *   (def.batchnorm written in a spec) is left as trained: its update rule is the spec's.
 *   The EMA with momentum 0.01 averages over the last ~100 steps of a moving network, so at
 *   large batches it lags the weights that are saved (reference flaw); this removes the lag.
 */
#ifndef RC_TRAIN_CALIB_H
#define RC_TRAIN_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "ir.h"
#include "train_dev.h"

#define RC_PRECISE_BN_WINDOWS 8192

/* Mean of each cell's response over the training windows (cells). d: no live iterator. */
int rc_calib_mean_rates(rc_data *d, int B, uint64_t seed, int cells, double *mean, char *err,
                        size_t errlen);

/* Set the output parameter of a fresh model (params) from mean (cells). Returns 1 when set, 0
 * when the model's output is not of a calibratable form (why says what it is), -1 on error. */
int rc_calib_output(const rc_ir *ir, float *params, const double *mean, char *why, size_t n);

/* output_lr: the flat-buffer range [*lo, *hi) of the final batchnorm's parameters (scale,
 * shift) when the model ends batchnorm -> softplus|exp; 1 when found, 0 when the model has no
 * such output (the multiplier then changes nothing). */
int rc_calib_output_params(const rc_ir *ir, int64_t *lo, int64_t *hi);

/* Recompute the built-in batchnorm running statistics on dev (see above). pred (B, cells) host
 * scratch. d: no live iterator. Returns 0 or -1. */
int rc_calib_precise_bn(rc_dev *dev, rc_data *d, const rc_ir *ir, uint64_t seed, int epoch,
                        float *pred, char *err, size_t errlen);

#endif
