/* emit_cuda.h — render an rc_ir as one CUDA C source (kernels only) plus its launch plan.
 *
 * The generated source (generated/<model>/model.cu) holds `extern "C" __global__` kernels with
 * every shape a literal, fused as on the CPU (a conv/dense/gcconv kernel applies the pointwise
 * layers after it in its epilogue; eval-mode batchnorm is folded into that epilogue), tiled for
 * the GPU (shared-memory tiles for convs, block reductions for batchnorm statistics).
 * Every kernel takes one argument, the rc_cuda_args block below, by value, so the host side
 * (runtime/backend/backend_cuda.c) is a generic interpreter of the plan: for each launch it computes
 * the grid from the batch size and calls the kernel. Workspace offsets are linear in B and
 * baked into the kernels as literals, so the source depends on the IR only (not on B).
 *
 * The same source compiles with NVRTC (device) and, for tests without a GPU, as host C++ with
 * the emulation prelude rc_cuda_emu_prelude() (threads of a block as fibers switched at
 * __syncthreads and warp shuffles): the kernels are identical text in both cases.
 * Invariants: deterministic text for a given IR (no timestamps); every kernel reaches its
 * barriers from all threads (no early return before a barrier); no atomics (results are
 * reproducible bit for bit on one device).
 */
#ifndef RC_EMIT_CUDA_H
#define RC_EMIT_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "ir.h"

#define RC_CUDA_GEN_VERSION "retinac-cuda-1"

/* The argument block of every generated kernel. Pointers are device addresses (64-bit);
 * the generated source declares the same layout as `struct rc_kargs`. */
typedef struct {
    uint64_t params;    /* const float (P) */
    uint64_t state;     /* float (S): BN running statistics */
    uint64_t cell_pos;  /* const int (cells,2) or 0 */
    uint64_t frames;    /* const float (T,H,W) */
    uint64_t starts;    /* const int64 (B) */
    uint64_t ws;        /* float workspace */
    uint64_t y;         /* float (B,cells) output */
    uint64_t dy;        /* const float (B,cells) */
    uint64_t grads;     /* float (P), accumulated */
    uint64_t seed;
    int32_t B;
    int32_t pad_;
} rc_cuda_args;

typedef enum { RC_CU_TRAIN_FWD, RC_CU_TRAIN_BWD, RC_CU_INFER, RC_CU_NPHASE } rc_cuda_phase;

/* One kernel launch: grid = (ceil((gx_b*B + gx_c) / per_block), gy_b*B + gy_c), block = block. */
typedef struct {
    char name[64];
    int layer;           /* IR layer it belongs to (for messages) */
    int block;           /* threads per block (1-D) */
    int64_t gx_b, gx_c;  /* work items along x */
    int64_t per_block;   /* work items per block along x */
    int gy_b, gy_c;      /* blocks along y */
} rc_cuda_launch;

typedef struct {
    int n_launch;
    rc_cuda_launch *launch;          /* all launches, phases in order */
    int first[RC_CU_NPHASE], count[RC_CU_NPHASE];
    int64_t ws_b, ws_c;              /* workspace floats = ws_b * B + ws_c */
    int n_kernels;                   /* distinct kernel names (each defined once in the source) */
    char (*kernels)[64];
} rc_cuda_plan;

/* Render the CUDA source and the plan for an inferred IR. *src is malloc'd (NUL-terminated);
 * plan arrays are malloc'd (free with rc_cuda_plan_free). spec_path may be NULL (used in the
 * header comment only). Returns 0 or -1 with "layer I (kind): what" in err. */
int rc_emit_cuda(const rc_ir *ir, const char *spec_path, char **src, rc_cuda_plan *plan,
                 char *err, size_t errlen);
void rc_cuda_plan_free(rc_cuda_plan *plan);
/* The source alone (the signature of `retinac gen`'s emitter table). */
int rc_emit_cuda_source(const rc_ir *ir, const char *spec_path, char **src, char *err, size_t errlen);

/* Grid of a launch for batch B. */
static inline void rc_cuda_grid(const rc_cuda_launch *l, int B, unsigned *gx, unsigned *gy)
{
    int64_t items = l->gx_b * (int64_t)B + l->gx_c;
    int64_t g = (items + l->per_block - 1) / l->per_block;
    *gx = (unsigned)(g < 1 ? 1 : g);
    int64_t y = (int64_t)l->gy_b * B + l->gy_c;
    *gy = (unsigned)(y < 1 ? 1 : y);
}

/* Source of the model-independent utility kernels (Adam/AdamW step, loss + gradient, fill):
 *   rc_util_adam(float *w, const float *g, float *m, float *v, long long n, float lr, float b1,
 *                float b2, float eps, float wd, float bc1, float bc2, int adamw)
 *   rc_util_loss(const float *pred, const float *target, float *dy, double *partial,
 *                long long n, int B, int kind, float l1c)   (partial: one double per block, 2 each)
 * Static text; compiled once per device like a model. */
const char *rc_cuda_util_source(void);

/* The host-emulation prelude that makes a generated source valid host C++ (tests only). */
const char *rc_cuda_emu_prelude(void);
/* ... and the trailer appended after the source: extern "C" int rc_emu_launch(void *fn,
 * const void *args, unsigned gx, unsigned gy, unsigned block) runs one launch. */
const char *rc_cuda_emu_trailer(void);

/* The text of common/rng.h as pasted into generated sources (tests compare it to the file). */
const char *rc_cuda_rng_text(void);

#endif
