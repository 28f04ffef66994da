/* backend.h — the one execution interface every backend implements, and the one factory that
 * builds a backend by name (rc_backend_open, runtime/backend/backend.c).
 *
 * Backends: the naive CPU reference (runtime/backend/ref.c, ref.h: the oracle), the JIT-compiled
 * generated C (runtime/backend/backend_c.c over generated/<model>/model.c), and CUDA
 * (runtime/backend/backend_cuda.c). Tests compare backends through this interface only; the
 * trainer and evaluator use nothing else, and get their backend from rc_backend_open.
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
 * through rc_rng (common/rng.h, which also defines the streams, RC_RNG_STREAM), so every backend
 * draws identical noise for the same seed and a training step is reproducible bit for bit on a
 * given backend and thread count.
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
    /* Bytes a declared stream's per-frame data may take; 0: $RETINAC_MEM_BUDGET or the default.
     * The owner sets it to its own budget (the trainer: the recording's --mem-budget, with the
     * chunks sized for frames and spectra together: rc_c_stream_bytes_per_frame). */
    size_t stream_budget;
    void (*destroy)(rc_backend *be);
};

/* Build a backend for an inferred IR. device "cuda": the CUDA backend on GPU 0 (name is not
 * looked at); device "cpu", "" or NULL: by name, "c" or "" (the JIT-compiled generated C),
 * "ref" (the reference), or NULL: automatic, the generated C, else (no C compiler, a failed
 * compile) the reference. Returns 0, or -1 with the message of the last constructor tried
 * ("device 'X': expected cpu or cuda", "backend 'X': expected c or ref" for unknown names). */
int rc_backend_open(const rc_ir *ir, const char *name, const char *device, rc_backend **out,
                    char *err, size_t errlen);

static inline void rc_backend_destroy(rc_backend *be) { if (be) be->destroy(be); }

/* The reference backend's constructor and analysis calls live in ref.h; included here for the
 * callers (tests) that still reach them through backend.h. */
#include "ref.h"

#endif
