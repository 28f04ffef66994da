/* ref.h — the naive CPU reference backend (runtime/backend/ref.c): its constructor and the
 * analysis calls only it offers (input gradients for receptive fields, analysis/rf.c).
 *
 * Invariants: every function here takes a backend made by rc_ref_backend_create (or by
 * rc_backend_open with name "ref"); the analysis calls return -1 (or NULL) on any other
 * backend. Training and infer are the common interface of backend.h and always run the naive
 * loops; the optional fast convs below serve the analysis calls only.
 */
#ifndef RC_REF_H
#define RC_REF_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"

/* The reference backend: interprets the IR op by op. Never fails to create except on OOM. */
int rc_ref_backend_create(const rc_ir *ir, rc_backend **out);

/* Reference-only analysis calls (input gradients for receptive fields, analysis/rf.c); -1 on a
 * backend that is not "ref". Workspace: ws_floats(B) as for infer.
 * rc_ref_eval_forward: infer (eval mode), keeping the activations in ws for rc_ref_eval_grad.
 *   x0 (B, out of layer 0) or NULL: layer 0's output computed elsewhere (e.g. by FFT); only for
 *   a linear layer 0 (conv or dense), whose input is then never read.
 * rc_ref_eval_grad: after rc_ref_eval_forward with the same B, ws and inputs,
 *   dx (history, H, W) += sum over b of d(sum_n dy[b,n] * y[b,n]) / d(window of sample b),
 *   in eval mode; dy (B, cells). Callable many times per forward (one dy per cell). */
int rc_ref_eval_forward(rc_backend *be, int B, const float *params, const float *state,
                        const int *cell_pos, const float *frames, const int64_t *starts,
                        const float *x0, float *y, float *ws);
int rc_ref_eval_grad(rc_backend *be, int B, const float *params, const int *cell_pos,
                     const float *frames, const int64_t *starts, const float *dy, float *dx,
                     float *ws);
/* After rc_ref_eval_forward with batch B and workspace ws: the output of 0-based layer `layer`,
 * (B, c, h, w) of that layer's out shape, inside ws (valid until ws is reused); NULL if be is
 * not the reference backend or layer is out of range. */
const float *rc_ref_eval_output(rc_backend *be, int B, const float *ws, int layer);
/* Optional, for the analysis calls only (training and infer always run the naive loops): for
 * a plain (untiled, unstacked) conv at 0-based layer index `layer` > 0,
 *   fwd replaces rc_ref_eval_forward's conv: x (B, Cin, H, W), weight (Cout, Cin, K, K),
 *       bias (Cout) or NULL -> y (B, Cout, Ho, Wo) overwritten;
 *   adj replaces rc_ref_eval_grad's input gradient: dy (B, Cout, Ho, Wo) -> dx (B, Cin, H, W)
 *       overwritten.
 * Returning -1 falls back to the naive loops for that call; NULL restores the default. */
typedef int (*rc_ref_conv_forward_fn)(void *ctx, int layer, int B, const float *weight,
                                      const float *bias, const float *x, float *y);
typedef int (*rc_ref_conv_adjoint_fn)(void *ctx, int layer, int B, const float *weight,
                                      const float *dy, float *dx);
void rc_ref_set_conv_fast(rc_backend *be, rc_ref_conv_forward_fn fwd, rc_ref_conv_adjoint_fn adj,
                          void *ctx);

/* The reference in double: the same forward sweep (runtime/backend/ref_forward.h) compiled a
 * second time with every activation, the workspace and y in double, for finite differences
 * (runtime/gradcheck.c) that float rounding would drown at small steps. Parameters, state and
 * frames are the float buffers of the backend interface (read exactly); reductions accumulate
 * in double as in the float instance, so the two differ only by the float roundings of stored
 * values. Forward only (no backward), no fast convs; be is a reference backend (-1 otherwise).
 * ws: rc_ref64_ws_doubles(be, B) doubles (0 when be is not the reference); the calls are
 * otherwise those of backend.h's train_forward and infer (train: BN running stats in state
 * updated, noise/dropout of seed). */
size_t rc_ref64_ws_doubles(rc_backend *be, int B);
int rc_ref64_train_forward(rc_backend *be, int B, const float *params, float *state, const int *cell_pos,
                           uint64_t seed, const float *frames, const int64_t *starts, double *y, double *ws);
int rc_ref64_infer(rc_backend *be, int B, const float *params, const float *state, const int *cell_pos,
                   const float *frames, const int64_t *starts, double *y, double *ws);

#endif
