/* backend_c.h — the JIT-compiled C backend and the ABI of a generated C module.
 *
 * rc_c_backend_create(ir): generate C for the IR (compiler/c/emit_c.c), compile it through the
 * cache (compiler/jit.c), dlopen it, check it was generated for this very IR, and wrap it into
 * the backend.h interface. The runtime never links Lua: the IR may come from a checkpoint's
 * canonical text.
 *
 * ABI of a generated module (generated/<model>/model.c; version RCG_ABI = 3). Every pointer and
 * layout is as in backend.h; B is the batch size, the only run-time shape. Every entry point
 * takes last the runtime's services, hk (rc_c_hooks below; NULL: none, the module runs alone).
 *   const char rcg_hash[];       sha256 of the canonical IR the module was generated from
 *   const char rcg_generator[];  generator version (emit.h RC_EMIT_VERSION)
 *   const int  rcg_abi;          3
 *   const int  rcg_cells;        cells baked into the module
 *   size_t rcg_ws_floats(int B);
 *   int rcg_train_forward(int B, const float *params, float *state, const int *cell_pos,
 *                         uint64_t seed, const float *frames, const int64_t *starts,
 *                         float *y, float *ws, const rc_c_hooks *hk);
 *   int rcg_train_backward(int B, const float *params, const int *cell_pos, const float *frames,
 *                          const int64_t *starts, const float *dy, float *grads, float *ws,
 *                          const rc_c_hooks *hk);
 *   int rcg_infer(int B, const float *params, const float *state, const int *cell_pos,
 *                 const float *frames, const int64_t *starts, float *y, float *ws,
 *                 const rc_c_hooks *hk);
 * Only when layer 1 is a plain or stacked conv followed by more layers (the FFT first conv):
 *   const int rcg_ext;           1 (plain: all below), 2 (stacked: inference only, and
 *       size_t rcg_ext_weights(int B, const float *params, float *ws), which collapses the
 *       stack into one (C1, C, K, K) kernel in the workspace and returns its float offset)
 *   size_t rcg_ext_offset(int B, int which);   workspace float offset of layer 1's conv output
 *       (conv + bias, (B, C1, H1, W1)) that the caller writes, for training (0) or inference
 *       (1), or of d loss / d that output after rcg_train_backward_ext (2)
 *   int rcg_train_forward_ext(int B, const float *params, float *state, const int *cell_pos,
 *                             uint64_t seed, float *y, float *ws, const rc_c_hooks *hk);
 *   int rcg_train_backward_ext(int B, const float *params, const int *cell_pos, const float *dy,
 *                              float *grads, float *ws, const rc_c_hooks *hk);
 *                              (no gradient of layer 1's conv)
 *   int rcg_infer_ext(int B, const float *params, const float *state, const int *cell_pos,
 *                     float *y, float *ws, const rc_c_hooks *hk);
 * Return value: 0, or (code << 8) | layer_index with code
 *   1 = batch < 1, 2 = backward without a matching train_forward (batch differs or ws not
 *   written by it), 3 = gcconv cell position outside the map (or cell_pos NULL),
 *   4 = training batchnorm with fewer than 2 values per feature, 5 = a hook failed.
 * Conv hooks: a plain conv after the first whose input is the previous layer group's output
 * (compiler/c/emit_c.c em_hook_conv) first offers its work to hk->conv (training forward, when
 * it writes the conv output itself; inference, where the module then applies the layer's
 * chain with batchnorm unfolded) and hk->conv_bwd (its parameter and input gradients), and runs
 * its own kernels only when the hook declines. This backend runs such layers by per-sample FFT
 * (runtime/backend/fftconv.c) where that pays, like layer 1.
 * The workspace is shared: infer overwrites what train_backward needs, so call train_backward
 * right after its train_forward. Results do not depend on the number of OpenMP threads
 * (weight gradients are accumulated in a fixed number of batch parts, reduced in order).
 */
#ifndef RC_BACKEND_C_H
#define RC_BACKEND_C_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"

#define RCG_ABI_VERSION 3

/* rcg_hooks of a generated module (ABI 3): services the runtime offers its kernels, passed as
 * the last argument of every entry point (NULL: none). conv(self, op, layer, B, x, w, bias, y):
 * layer `layer` (0-based) conv over the batch, y (B, O, Ho, Wo) = conv + bias of x (B, C, H, W),
 * op 0 in training (the spectra may be kept for conv_bwd), 1 in inference; conv_bwd(self,
 * layer, B, x, w, dy, dx, dw, db): dw, db (NULL: none) += the parameter gradients, dx (NULL:
 * none) = the input gradient. Each returns 0 when done, 1 when it declines (the module runs its
 * own kernels), < 0 on error (the module returns code 5). */
typedef struct rc_c_hooks {
    void *self;
    int (*conv)(void *self, int op, int layer, int B, const float *x, const float *w, const float *bias, float *y);
    int (*conv_bwd)(void *self, int layer, int B, const float *x, const float *w, const float *dy, float *dx,
                    float *dw, float *db);
} rc_c_hooks;

/* Create the C backend for an inferred IR. Returns 0, or -1 with a message (emit, compile with
 * command and file:line, dlopen, or ABI/hash mismatch) in err. */
int rc_c_backend_create(const rc_ir *ir, rc_backend **out, char *err, size_t errlen);

/* The FFT first conv (runtime/backend/fftconv.c; see backend_c.c): AUTO (the default, or RETINAC_FFT=auto)
 * uses it when layer 1 is a plain conv (training and inference) or a stacked conv (inference:
 * collapsed) followed by more layers and the FFT does well under half
 * the direct work; ON (RETINAC_FFT=1) whenever layer 1 qualifies (an error otherwise); OFF
 * (RETINAC_FFT=0) never. It runs only on the stream declared by set_stream (backend.h).
 * set_fft returns 0 or -1 with a message; a mode change forgets the declared stream. */
enum { RC_C_FFT_AUTO = 0, RC_C_FFT_ON = 1, RC_C_FFT_OFF = 2 };
int rc_c_backend_set_fft(rc_backend *be, int mode, char *err, size_t errlen);
/* 1 if the FFT first conv is on for this (C) backend. */
int rc_c_backend_fft(const rc_backend *be);
/* Calls (train_forward, train_backward, infer) that took the FFT path so far. */
int64_t rc_c_backend_fft_calls(const rc_backend *be);
/* Hook calls (forward and backward) that ran layer `layer` (0-based) by FFT so far; -1 when that
 * layer is not on the FFT path (not a plain conv after the first, or the mode keeps it direct). */
int64_t rc_c_backend_hook_calls(const rc_backend *be, int layer);
/* Host bytes the C backend's FFT first conv keeps per frame of a declared stream (its frame
 * spectrum) for a model whose layer 1 can take that path, whether or not it is switched on; 0
 * for other models. A property of the model alone, so that the trainer sizes its data chunks
 * for frames and spectra together and the batches are the same on every backend and FFT mode
 * for a given budget (rc_data_set_frame_extra). */
size_t rc_c_stream_bytes_per_frame(const rc_ir *ir);

/* Path of the shared object a C backend runs (for `retinac compile` and tests). */
const char *rc_c_backend_object(const rc_backend *be);

#endif
