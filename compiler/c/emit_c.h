/* emit_c.h — the C code generator: rc_ir -> one self-contained C module (OpenMP) exporting the
 * fixed ABI of runtime/backend/backend_c.h (rcg_ws_floats, rcg_train_forward, rcg_train_backward,
 * rcg_infer, rcg_hash, ...).
 *
 * Lives in runtime/ (not compiler/) because the C backend regenerates code at run time from a
 * checkpoint's canonical IR, and the runtime must not link Lua.
 * Invariants: the output is a pure function of (IR, spec_path) -- byte-identical on every run and
 * machine (no host detection: vector width and blocking come from the schedule hints or fixed
 * defaults); shapes are compile-time constants, only the batch B is a run-time argument.
 * What is generated (see the comments in the generated file for each layer):
 *   - inference: one fused pass per "group" (a conv/dense/gcconv producer followed by its
 *     elementwise chain): per-channel BN folded into the (pre-transposed) conv weights,
 *     per-unit BN as a per-unit affine epilogue, activation in the same epilogue; stacked convs
 *     collapsed exactly into one kernel in the workspace on every call;
 *   - training forward: producer (+ elementwise ops before the first stored tensor) in one
 *     pass, then per BN a statistics pass and one fused normalize+noise+dropout+rectify pass;
 *   - training backward: per BN a fused gradient-statistics pass and one fused apply pass, then
 *     the producer's weight gradient and input gradient (one per-sample pass, per-part
 *     accumulators reduced in a fixed order: bit-reproducible for any thread count).
 */
#ifndef RC_EMIT_C_H
#define RC_EMIT_C_H

#include <stddef.h>
#include "ir.h"

/* Generate the module for an IR after rc_ir_infer. spec_path (may be NULL) goes into the header.
 * On success *src is a malloc'd NUL-terminated string (caller frees); returns 0, or -1 with
 * "emit: <model>: layer I (kind): what" in err. */
int rc_emit_c(const rc_ir *ir, const char *spec_path, char **src, char *err, size_t errlen);

#endif
