/* backend_c.h — the JIT-compiled C backend and the ABI of a generated C module.
 *
 * rc_c_backend_create(ir): generate C for the IR (runtime/emit_c.c), compile it through the
 * cache (runtime/jit.c), dlopen it, check it was generated for this very IR, and wrap it into
 * the backend.h interface. The runtime never links Lua: the IR may come from a checkpoint's
 * canonical text.
 *
 * ABI of a generated module (generated/<model>/model.c; version RCG_ABI = 1). Every pointer and
 * layout is as in backend.h; B is the batch size, the only run-time shape.
 *   const char rcg_hash[];       sha256 of the canonical IR the module was generated from
 *   const char rcg_generator[];  generator version (emit.h RC_EMIT_VERSION)
 *   const int  rcg_abi;          1
 *   const int  rcg_cells;        cells baked into the module
 *   size_t rcg_ws_floats(int B);
 *   int rcg_train_forward(int B, const float *params, float *state, const int *cell_pos,
 *                         uint64_t seed, const float *frames, const int64_t *starts,
 *                         float *y, float *ws);
 *   int rcg_train_backward(int B, const float *params, const int *cell_pos, const float *frames,
 *                          const int64_t *starts, const float *dy, float *grads, float *ws);
 *   int rcg_infer(int B, const float *params, const float *state, const int *cell_pos,
 *                 const float *frames, const int64_t *starts, float *y, float *ws);
 * Return value: 0, or (code << 8) | layer_index with code
 *   1 = batch < 1, 2 = backward without a matching train_forward (batch differs or ws not
 *   written by it), 3 = gcconv cell position outside the map (or cell_pos NULL),
 *   4 = training batchnorm with fewer than 2 values per feature.
 * The workspace is shared: infer overwrites what train_backward needs, so call train_backward
 * right after its train_forward. Results do not depend on the number of OpenMP threads
 * (weight gradients are accumulated in a fixed number of batch parts, reduced in order).
 */
#ifndef RC_BACKEND_C_H
#define RC_BACKEND_C_H

#include <stddef.h>
#include "backend.h"

#define RCG_ABI_VERSION 1

/* Create the C backend for an inferred IR. Returns 0, or -1 with a message (emit, compile with
 * command and file:line, dlopen, or ABI/hash mismatch) in err. */
int rc_c_backend_create(const rc_ir *ir, rc_backend **out, char *err, size_t errlen);

/* Path of the shared object a C backend runs (for `retinac compile` and tests). */
const char *rc_c_backend_object(const rc_backend *be);

#endif
