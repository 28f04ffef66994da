/* ref_def.h — the reference backend's defined layers (runtime/backend/ref_def.c), used by ref.c.
 *
 * x (B, in) is the layer input in double; y (B, out), gy (B, out), gx (B, in) are floats;
 * the forward writes its output to y, or in double to yd when y is NULL (the reference's
 * double instance, rc_ref64_*: the interpreter's values without a float rounding).
 * snap is the layer's own state tensors, contiguous in declaration order (a copy taken at
 * forward time: rc_ref_def_state_floats floats); state_out is the model's whole state buffer
 * (training: the UPDATE sinks are written there), or NULL. grads is the model's whole gradient
 * buffer (accumulated) or NULL; gx is written (zeros when no path reaches the input) or NULL.
 */
#ifndef RC_REF_DEF_H
#define RC_REF_DEF_H

#include <stddef.h>
#include <stdint.h>
#include "ir.h"
#include "prim.h"

int64_t rc_ref_def_state_floats(const rc_ir *ir, int li);
int rc_ref_def_forward(const rc_ir *ir, int li, const rc_prim_graph *g, int B, int train,
                       uint64_t seed, const double *x, const float *params, const float *snap,
                       const int *cell_pos, float *state_out, float *y, double *yd, char *err,
                       size_t errlen);
int rc_ref_def_backward(const rc_ir *ir, int li, const rc_prim_graph *g, int B, int train,
                        uint64_t seed, const double *x, const float *params, const float *snap,
                        const int *cell_pos, const float *gy, float *grads, float *gx, char *err, size_t errlen);

#endif
