/* backend.h — the one execution interface every backend implements.
 *
 * Backends: the naive CPU reference (runtime/backend/ref.c, the oracle), the JIT-compiled generated C
 * (runtime/backend/backend_c.c over generated/<model>/model.c), and CUDA (runtime/backend/backend_cuda.c).
 * Tests compare backends through this interface only; the trainer and evaluator use nothing else.
 *
 * Data layout (all float32, row-major, PyTorch order):
 *   frames  (T, H, W)   the stimulus stream (already z-scored and cropped); sample b reads the
 *                       history window frames[starts[b] .. starts[b] + history), the oldest first,
 *                       as input channels 0..history-1. Windows are never materialized.
 *   starts  (B)         int64 first-frame index of each sample's window.
 *   params  (P)         rc_ir.params_total floats, views described by rc_ir.params.
 *   state   (S)         rc_ir.state_total floats: BN running mean/var (PyTorch momentum rule,
 *                       unbiased variance for the running update).
 *   cell_pos (cells,2)  int (row, col) of each cell on the gcconv output map; NULL if the model
 *                       has no gcconv layer.
 *   y       (B, cells)  model output.
 *   grads   (P)         d loss / d params, ACCUMULATED (+=) by train_backward; zero it yourself.
 *
 * Training-mode randomness (noise, dropout) is a pure function of (seed, layer, element index)
 * through rc_rng (common/rng.h), so every backend draws identical noise for the same seed and
 * a training step is reproducible bit for bit on a given backend and thread count. Streams:
 *   noise/dropout layer i:            stream = RC_RNG_STREAM(i, 0), draw rc_rng_normal/uniform
 *   dropout after sub-conv s of a stacked conv at layer i: stream = RC_RNG_STREAM(i, s + 1)
 *   element index = b * (C*H*W) + (c*H + h)*W + w of the tensor the draw applies to.
 *   dropout keeps an element when rc_rng_uniform(...) >= p and scales kept ones by 1/(1-p).
 *
 * Memory: for the CPU backends all pointers are host memory. For CUDA, every pointer handed to
 * these functions is device memory (see backend_cuda.h for the helpers that copy).
 * Every function returns 0 on success or -1 with a message in the backend's error buffer.
 */
#ifndef RC_BACKEND_H
#define RC_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "ir.h"

#define RC_RNG_STREAM(layer, sub) ((uint64_t)(layer) * 64u + (uint64_t)(sub))

typedef struct rc_backend rc_backend;

struct rc_backend {
    const char *name;             /* "ref", "c", "cuda" */
    const rc_ir *ir;              /* not owned */
    void *self;                   /* backend private */
    char err[512];

    /* Floats of workspace needed for a batch of B (training: activations kept for backward). */
    size_t (*ws_floats)(rc_backend *be, int B);
    /* Training forward: batch statistics for BN (running stats in `state` updated), noise and
     * dropout drawn from seed. Keeps what backward needs in ws. */
    int (*train_forward)(rc_backend *be, int B, const float *params, float *state,
                         const int *cell_pos, uint64_t seed, const float *frames,
                         const int64_t *starts, float *y, float *ws);
    /* Backward of the last train_forward with the same B/ws: dy (B,cells) -> grads += ... */
    int (*train_backward)(rc_backend *be, int B, const float *params, const int *cell_pos,
                          const float *frames, const int64_t *starts, const float *dy,
                          float *grads, float *ws);
    /* Inference (eval mode): running stats, no noise/dropout, stacked convs collapsed,
     * BN folded where legal. */
    int (*infer)(rc_backend *be, int B, const float *params, const float *state,
                 const int *cell_pos, const float *frames, const int64_t *starts, float *y,
                 float *ws);
    /* Optional (NULL: the backend needs no notice). Declares the frame stream that the next
     * calls read: frames (T, H, W) stay unchanged until the next set_stream; (NULL, 0) forgets
     * it. A backend may keep per-frame data derived from it (the C backend's FFT first conv
     * keeps per-frame spectra, computed lazily). Calls whose frames pointer is not the declared
     * stream, or whose windows leave [0, T), still work and take the direct path. */
    int (*set_stream)(rc_backend *be, const float *frames, int64_t T);
    void (*destroy)(rc_backend *be);
};

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

static inline void rc_backend_destroy(rc_backend *be) { if (be) be->destroy(be); }

#endif
