/* model.h — parameter initialization, ganglion-cell readout positions, stacked-conv collapse,
 * and a small owner of a model's buffers.
 *
 * Everything here works on an rc_ir after a successful rc_ir_infer and addresses tensors only
 * through rc_ir.params / rc_ir.state views (never hard-coded offsets).
 * Invariants:
 *   - rc_params_init is a pure function of (ir, seed): same seed, same floats, on every machine
 *     (counter-based rc_rng under a seed derived from `seed`, stream = index of the tensor in
 *     rc_ir.params, counter = element index).
 *   - rc_stack_collapse(...) is exact composition of cross-correlations (torch-deep-retina
 *     utils.stack_filter); in eval mode the collapsed kernel equals the chain of sub-convs.
 */
#ifndef RC_MODEL_H
#define RC_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "ir.h"

/* PyTorch default init: every tensor with init_bound >= 0 gets U(-b, b) (b = 1/sqrt(fan_in) for
 * conv/dense weights and biases), the others the constant init_value (BN scale 1, shift 0).
 * state (may be NULL) gets its constants (running mean 0, running var 1).
 * params (ir->params_total), state (ir->state_total). Returns 0 (cannot fail on a valid IR). */
int rc_params_init(const rc_ir *ir, uint64_t seed, float *params, float *state);

/* Index of the gcconv layer, or -1 if the model has none. */
int rc_gc_layer(const rc_ir *ir);

/* Readout position (row, col) of every cell on the gcconv output map (out of the gcconv's conv,
 * (cells, Ho, Wo) with Ho = in.h - K + 1), according to that layer's `position`:
 *   RC_POS_DATA      centers (cells,2) = RF centers in (cropped) input-frame coordinates (row, col);
 *                    the map position is center - half, half = sum of (k-1)/2 over every spatial
 *                    kernel up to and including the gcconv's own, clamped to the map.
 *   RC_POS_CENTER    (Ho/2, Wo/2) for every cell; centers ignored (may be NULL).
 *   RC_POS_REFERENCE torch-deep-retina GrabUnits, bug included (reference §1.5):
 *                    half = sum over convs before the gcconv of (k-1) + (K_gc/2 - 1) + 1,
 *                    r = min(max(0, center_r - half), H - 2*(half-1)), negative r wraps (Python
 *                    negative indexing: r += Ho). For 50x50 and kernels 15/11/11 every cell lands
 *                    on index 10 of the 16x16 map whatever its real center. Kept only so that
 *                    reference checkpoints reproduce; centers NULL means the frame center.
 * cell_pos (cells,2). Returns 0, or -1 with a message (no gcconv layer, DATA without centers). */
int rc_gc_positions(const rc_ir *ir, const int *centers, int *cell_pos, char *err, size_t errlen);

/* Compose two cross-correlation kernels: applying base (Q,R,K1,K1) and then stack (S,Q,K2,K2)
 * equals applying out (S,R,K1+K2-1,K1+K2-1) (torch-deep-retina utils.stack_filter).
 * out is overwritten. */
void rc_stack_filter(const float *base, int Q, int R, int K1, const float *stack, int S, int K2,
                     float *out);

/* Collapse stacked conv layer `layer` into one kernel: weight (Cout, Cin, K, K) with K the layer's
 * kernel, written to `weight`. The bias is the last sub-conv's ("<i>.conv.bias"), unchanged, so
 * the caller reads it from params. Exact in eval mode (dropout between sub-convs is train-only).
 * Returns 0, or -1 with a message if the layer is not a stacked conv. */
int rc_stack_collapse(const rc_ir *ir, int layer, const float *params, float *weight,
                      char *err, size_t errlen);

/* Convenience owner of a model's buffers (all zeroed, params initialized by rc_model_init). */
typedef struct {
    const rc_ir *ir;   /* not owned */
    float *params;     /* (ir->params_total) */
    float *state;      /* (ir->state_total), BN running statistics */
    float *grads;      /* (ir->params_total) */
    int *cell_pos;     /* (cells,2) if the model has a gcconv layer, else NULL */
} rc_model;

/* Allocate the buffers, init params/state with seed, and fill cell_pos from centers (may be NULL
 * unless the gcconv position is "data"). Returns 0 or -1 with a message; on -1 nothing is held. */
int rc_model_init(rc_model *m, const rc_ir *ir, uint64_t seed, const int *centers,
                  char *err, size_t errlen);
void rc_model_free(rc_model *m);

#endif
