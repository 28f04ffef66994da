/* torch_import.h — from a torch-deep-retina checkpoint (torch_file.h) to a retinac spec and
 * its parameters.
 *
 * The checkpoint is the dict torchdeepretina.io.save_checkpoint writes (reference §3.6):
 * model_type, model_state_dict, hyps (or model_hyps, or the hyperparameters at the top level),
 * norm_stats {mean, std} (or [mean, std]); a bare state dict is accepted too (then the
 * architecture must come from a spec, and norm stats from the caller).
 *
 * The architecture is read from the state dict itself, in order, with the hyperparameters for
 * what tensors cannot say (frame size, activation, noise, softplus or exp output, eps):
 *   - the tensors are grouped by module ("sequential.6.weight" -> "sequential.6"; a
 *     LinearStackedConv2d's "sequential.0.convs.<j>.weight" -> "sequential.0", its sub-convs
 *     ordered by j, so the Dropout modules between them do not matter); num_batches_tracked and
 *     GaussianNoise's sigma are skipped;
 *   - a 4-D weight is a conv (stacked when it has sub-convs), the last 2-D weight a dense
 *     read-out, a last 4-D weight after the hidden convs a convolutional ganglion-cell layer
 *     (convgc: GrabUnits, reproduced with position "reference"); running_mean marks a batch
 *     norm, per unit or per channel by its size, with |scale| when its tensors are named
 *     scale/shift (AbsBatchNorm);
 *   - each hidden conv (after its batch norm, if any) gets noise (hyps noise, default 0.05) and
 *     the activation (hyps activ_fxn, default ReLU); the output is softplus, or the reference's
 *     Exponential(train_off) when softplus is False; inference_exp appends one more.
 * The same order-and-shape matching fills the parameters of any spec given with --spec, so
 * every tensor is used exactly once and every parameter is filled, or the import fails naming
 * the key and the layer. Model classes recognised by name: BNCNN, CNN, LinearStackedBNCNN,
 * VaryModel, AbsBNBNCNN, BNCNN2D (their final batch norm's eps is read from the class table in
 * torch_import.c). Recurrent, kinetic, retinotopic (OneHot) models and padded convs are refused.
 */
#ifndef RC_TORCH_IMPORT_H
#define RC_TORCH_IMPORT_H

#include <stddef.h>

#include "ir.h"
#include "torch_file.h"

#define RC_TM_MAX_ENTRIES 16

typedef struct {
    char prefix[256];                    /* module path: "sequential.6" */
    int n;
    char leaf[RC_TM_MAX_ENTRIES][40];    /* "weight", "running_mean", ... */
    int sub[RC_TM_MAX_ENTRIES];          /* stacked conv: sub-module index j, else -1 */
    const rc_pk *t[RC_TM_MAX_ENTRIES];
    char key[RC_TM_MAX_ENTRIES][256];    /* the full state-dict key */
} rc_tm_group;

typedef struct {
    const rc_pk *sd, *hyps;
    char model_type[64];                 /* "" when the file does not say */
    rc_tm_group *g;
    int n_groups;
    int has_norm;
    double norm_mean, norm_std;
    int cells;                           /* from the read-out weight; 0 if none found */
    int *cell_ids;                       /* (cells) hyps "cells" when a list of ints, else 0..cells-1 */
    int *centers;                        /* (cells,2) hyps "centers", or NULL */
    long long epoch;                     /* the file's "epoch", or -1 */
} rc_torch_model;

/* Find the state dict, hyperparameters and normalization in F and group the tensors. */
int rc_torch_model_read(const rc_torch_file *F, rc_torch_model *M, char *err, size_t errlen);
void rc_torch_model_free(rc_torch_model *M);

/* The retinac spec (Lua source, malloc'd) equivalent to M's architecture. */
int rc_torch_spec(const rc_torch_file *F, const rc_torch_model *M, char **text, char *err, size_t errlen);

/* Fill params (ir->params_total) and state (ir->state_total) of an inferred ir from M's
 * tensors, in order; map (may be NULL) gets one line "torch_key -> retinac_name" per tensor. */
int rc_torch_fill(const rc_torch_file *F, const rc_torch_model *M, const rc_ir *ir, float *params,
                  float *state, char **map, char *err, size_t errlen);

#endif
