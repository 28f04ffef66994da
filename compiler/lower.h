/* lower.h — idiom lowering of defined layers onto built-in kinds (compiler/lower.c). */
#ifndef RC_LOWER_H
#define RC_LOWER_H

#include <stddef.h>
#include "ir.h"

/* *out = ir (an inferred IR) with every defined layer whose graph is a built-in kind's form
 * (a plain conv, a dense layer, a rectification) turned into that kind, for an emitter's
 * kernels; shapes and parameter views unchanged. Returns the number of lowered layers, or -1
 * with a message (a graph that does not parse). */
int rc_ir_lower(const rc_ir *ir, rc_ir *out, char *err, size_t errlen);

#endif
