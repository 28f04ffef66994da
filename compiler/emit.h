/* emit.h — shared helpers of the code emitters (C now, CUDA later): a growable string builder
 * with indentation, exact float/double literals, and the generated-file header.
 *
 * Invariants: output depends only on the arguments (no pointers, time, locale or hash-table
 * order), so regenerating is byte-identical. The builder never aborts: on OOM it sets `oom`
 * and ignores further writes; the caller checks rc_sb_finish().
 */
#ifndef RC_EMIT_H
#define RC_EMIT_H

#include <stddef.h>
#include "ir.h"

/* Version of the generators; part of every generated header and of every JIT cache key.
 * Bump it whenever generated code changes meaning or shape. */
#define RC_EMIT_VERSION "retinac-gen 7"

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
    int indent;        /* current indentation in units of 4 spaces */
} rc_sb;

/* Append formatted text verbatim. */
void rc_sb_put(rc_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append one line: indentation, formatted text, '\n'. "{" at the end of a line (before an
 * optional trailing comment) indents the next lines, a line starting with "}" dedents first. */
void rc_sb_line(rc_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append raw bytes. */
void rc_sb_raw(rc_sb *b, const char *s, size_t n);
/* Return the string (caller frees) or NULL on OOM (the buffer is released). */
char *rc_sb_finish(rc_sb *b);

/* A float literal that reads back exactly to (float)v: shortest "%.Ng" + "f";
 * inf/nan as (1.0f/0.0f) / (0.0f/0.0f) expressions. out must hold 48 chars. */
void rc_emit_float(char *out, double v);
/* The same for a double literal (no suffix). */
void rc_emit_double(char *out, double v);

/* The common header comment of a generated file: generator version, spec path (may be
 * NULL: "(in memory)"), canonical IR hash, cells, the schedule of the model and of every
 * layer that has one, a DO NOT EDIT line, and the canonical IR text itself, as one C block
 * comment (valid in C and CUDA). target names the output ("C (OpenMP)", "CUDA"). */
void rc_emit_header(rc_sb *b, const rc_ir *ir, const char *spec_path, const char *target);
/* One comment line per defined layer of ir that low (rc_ir_lower's view) emits as a built-in. */
void rc_emit_lowered(rc_sb *b, const rc_ir *ir, const rc_ir *low);

/* Kernel names: one scheme for every target (C functions, CUDA kernels), so a kernel can be
 * followed from one generated file to the other and into a profile:
 *     <phase>_l<layer>_<part>[_<variant>]
 * phase: forward (training forward pass), backward (training backward pass), infer
 * (inference); layer: 1-based, the layer the kernel computes; part: what it computes (conv,
 * conv_dx, conv_dw, sub<j> of a stacked conv, dense, bn_apply, pointwise, def for a defined
 * layer's function, n<node>_<primitive> for one node of a defined layer's graph, ...); variant:
 * a register-blocked piece of that kernel (p<cols>, b<ch>_<rows>_<cols>, x<col0>). A target
 * that runs one kernel in training and inference (C, for a defined layer's forward nodes)
 * names it by the forward phase. */
typedef enum { RC_PHASE_FORWARD, RC_PHASE_BACKWARD, RC_PHASE_INFER } rc_phase;
/* "forward", "backward", "infer". */
const char *rc_phase_name(rc_phase ph);
/* out = "<phase>_l<li + 1>_<part>" (li: 0-based layer index). */
void rc_kernel_name(char *out, size_t n, rc_phase ph, int li, const char *part);

/* The text of common/rng.h, verbatim, for pasting into generated sources after a
 * `#define RC_RNG_QUAL ...` (tests check it equals the file byte for byte). */
const char *rc_emit_rng_text(void);

/* The rectifications and their derivatives as generated code, one text for both targets (the C
 * prelude defines RCG_INLINE as static inline, the CUDA one as __device__ static inline). */
#define RC_EMIT_ACT_TEXT \
"/* Rectifications (PyTorch semantics: softplus beta 1 threshold 20) and derivatives from the\n" \
" * input (dx_) or from the output (dy_; only where the output determines it). */\n" \
"RCG_INLINE float rcg_relu(float x) { return x > 0.0f ? x : 0.0f; }\n" \
"RCG_INLINE float rcg_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }\n" \
"RCG_INLINE float rcg_exp(float x) { return expf(x); }\n" \
"RCG_INLINE float rcg_abs(float x) { return fabsf(x); }\n" \
"RCG_INLINE float rcg_square(float x) { return x * x; }\n" \
"RCG_INLINE float rcg_requ(float x) { return x > 0.0f ? x * x : 0.0f; }\n" \
"RCG_INLINE float rcg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }\n" \
"RCG_INLINE float rcg_tanh(float x) { return tanhf(x); }\n" \
"RCG_INLINE float rcg_identity(float x) { return x; }\n" \
"RCG_INLINE float rcg_dx_relu(float x) { return x > 0.0f ? 1.0f : 0.0f; }\n" \
"RCG_INLINE float rcg_dx_softplus(float x) { return x > 20.0f ? 1.0f : rcg_sigmoid(x); }\n" \
"RCG_INLINE float rcg_dx_exp(float x) { return expf(x); }\n" \
"RCG_INLINE float rcg_dx_abs(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f; }\n" \
"RCG_INLINE float rcg_dx_square(float x) { return 2.0f * x; }\n" \
"RCG_INLINE float rcg_dx_requ(float x) { return x > 0.0f ? 2.0f * x : 0.0f; }\n" \
"RCG_INLINE float rcg_dx_sigmoid(float x) { const float s = rcg_sigmoid(x); return s * (1.0f - s); }\n" \
"RCG_INLINE float rcg_dx_tanh(float x) { const float t = tanhf(x); return 1.0f - t * t; }\n" \
"RCG_INLINE float rcg_dx_identity(float x) { (void)x; return 1.0f; }\n" \
"RCG_INLINE float rcg_dy_relu(float y) { return y > 0.0f ? 1.0f : 0.0f; }\n" \
"RCG_INLINE float rcg_dy_softplus(float y) { return -expm1f(-y); }\n" \
"RCG_INLINE float rcg_dy_exp(float y) { return y; }\n" \
"RCG_INLINE float rcg_dy_sigmoid(float y) { return y * (1.0f - y); }\n" \
"RCG_INLINE float rcg_dy_tanh(float y) { return 1.0f - y * y; }\n"


#endif
