/* backend_cuda.h — the CUDA backend (backend.h over generated CUDA kernels) and the small
 * device helpers a trainer needs to keep params/grads/state/frames on the GPU.
 *
 * Every pointer given to the backend's functions (params, state, cell_pos, frames, starts, y,
 * dy, grads, ws) is DEVICE memory: allocate with rc_cuda_malloc and copy with
 * rc_cuda_upload/rc_cuda_download. Device pointers are passed around as ordinary pointers
 * (never dereference them on the host). Each backend call ends with a device synchronize, so
 * a failed kernel is reported by the call that launched it.
 * Randomness, BN rules and gradient accumulation are exactly those of backend.h; the weight
 * gradients are reduced in a fixed order (no atomics), so a step is bit-reproducible on one GPU.
 */
#ifndef RC_BACKEND_CUDA_H
#define RC_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "cuda_drv.h"
#include "loss.h"
#include "optim.h"

/* Open GPU 0 (driver API by dlopen; kernels compiled by NVRTC for its sm_XX, cached) and build
 * the backend; the backend owns the device. Fails with a clear message without a driver/GPU. */
int rc_cuda_backend_create(const rc_ir *ir, rc_backend **out, char *err, size_t errlen);
/* The same on an open device that the caller keeps owning (tests use the host emulation). */
int rc_cuda_backend_create_on(const rc_ir *ir, rc_cuda_dev *dev, rc_backend **out, char *err,
                              size_t errlen);
/* The device of a CUDA backend (to allocate buffers for it). */
rc_cuda_dev *rc_cuda_backend_device(rc_backend *be);
/* The generated source and the NVRTC/ptxas log of its module (owned by the backend). */
const char *rc_cuda_backend_source(rc_backend *be);

/* Device memory. rc_cuda_malloc returns NULL on failure (message in dev->err). */
void *rc_cuda_malloc(rc_cuda_dev *d, size_t bytes);
int rc_cuda_free(rc_cuda_dev *d, void *dptr);
int rc_cuda_upload(rc_cuda_dev *d, void *dst, const void *src, size_t bytes);
int rc_cuda_download(rc_cuda_dev *d, void *dst, const void *dsrc, size_t bytes);
int rc_cuda_copy(rc_cuda_dev *d, void *dst, const void *src, size_t bytes);
int rc_cuda_zero(rc_cuda_dev *d, void *dst, size_t bytes);
int rc_cuda_sync(rc_cuda_dev *d);

/* Device-side optimizer and loss (model-independent kernels, compiled once per device;
 * backend_cuda_train.c). */
typedef struct rc_cuda_util rc_cuda_util;
int rc_cuda_util_create(rc_cuda_dev *d, rc_cuda_util **out, char *err, size_t errlen);
void rc_cuda_util_destroy(rc_cuda_util *u);
/* One Adam/AdamW step exactly as rc_optim_step (optim.h): o supplies kind, lr, betas, eps,
 * weight decay and n, and o->step is incremented here (o->moments is not used and may be NULL).
 * w, g: device (n); mv: device (2n), m then v, zeroed before the first step. */
int rc_cuda_adam_step(rc_cuda_util *u, rc_optim *o, float *w, const float *g, float *mv);
/* Loss + L1 activity penalty as rc_loss_compute (loss.h): pred, target, dy device (B*cells);
 * dy gets d total / d pred; the value (summed in double) comes back in *val. */
int rc_cuda_loss(rc_cuda_util *u, rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                 const float *pred, const float *target, float *dy, rc_loss_value *val);
const char *rc_cuda_util_error(rc_cuda_util *u);

#endif
