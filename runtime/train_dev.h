/* train_dev.h — where a training/inference step runs: host memory (ref and c backends) or a
 * CUDA device (cuda backend, every pointer handed to it is device memory, backend.h).
 *
 * The trainer and the evaluator talk to rc_dev only, so the loop is the same for every backend
 * (built by rc_backend_open, backend.h; rc_dev never chooses one):
 *   rc_dev_init -> rc_dev_set_model (+ rc_dev_set_optim for training) -> per batch
 *   rc_dev_set_frames + rc_dev_train_step / rc_dev_infer -> rc_dev_get_model at epoch ends.
 * Host mode keeps the caller's pointers (no copies; the optimizer updates the caller's params
 * in place). CUDA mode keeps device copies of params, state, grads, Adam moments and the frames
 * buffer; starts/labels go up and predictions come down per batch; the loss and its gradient
 * are computed on the host from the (B, cells) predictions (tiny), and Adam runs on the device.
 * Frames are re-uploaded (CUDA) or re-declared to the backend's set_stream (host) only when the
 * data layer hands over a different buffer: base pointer, length or content generation
 * (rc_batch.gen: a streamed chunk reuses its buffer with a new generation) differ.
 */
#ifndef RC_TRAIN_DEV_H
#define RC_TRAIN_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ir.h"
#include "loss.h"
#include "optim.h"

typedef struct {
    rc_backend *be;            /* not owned */
    const rc_ir *ir;
    int cuda;
    int B, training;
    /* host mode: the caller's buffers */
    float *params, *state;
    const int *cell_pos;
    const float *frames;
    int64_t frames_n;          /* floats */
    uint64_t frames_gen;       /* content generation of frames; 0 = unknown */
    float *grads, *ws;         /* owned (host mode), device pointers (CUDA mode) */
    /* CUDA mode: device copies (opaque; see train_dev.c) */
    void *cu;
} rc_dev;

int rc_dev_init(rc_dev *d, rc_backend *be, const rc_ir *ir, int B, int training, char *err,
                size_t errlen);
/* params (P), state (S), cell_pos (cells,2) or NULL. Host mode keeps the pointers. */
int rc_dev_set_model(rc_dev *d, float *params, float *state, const int *cell_pos, char *err,
                     size_t errlen);
int rc_dev_set_optim(rc_dev *d, const rc_optim *opt, char *err, size_t errlen);
/* frames (n_floats) normalized stimulus the next starts index into; gen its content generation
 * (rc_batch.gen), or 0 when unknown (then it is always treated as new content). */
int rc_dev_set_frames(rc_dev *d, const float *frames, int64_t n_floats, uint64_t gen, char *err,
                      size_t errlen);
/* One optimizer step on a batch of exactly the init B: starts (B), y (B, cells) host.
 * pred, dy (B, cells) host scratch; *lv the loss of this batch (before the step). */
int rc_dev_train_step(rc_dev *d, rc_optim *opt, uint64_t seed, const int64_t *starts,
                      const float *y, float *pred, float *dy, rc_loss_value *lv, char *err,
                      size_t errlen);
/* Training-mode forward of a batch of exactly the init B (noise and dropout drawn from seed,
 * batch statistics, running statistics updated in the state), no gradient and no step: the
 * pass that recomputes batch-norm statistics. pred (B, cells) host scratch. */
int rc_dev_train_forward(rc_dev *d, uint64_t seed, const int64_t *starts, float *pred, char *err,
                         size_t errlen);
/* The state (S floats) to / from host memory (host mode: a copy of / into the caller's). */
int rc_dev_get_state(rc_dev *d, float *state, char *err, size_t errlen);
int rc_dev_put_state(rc_dev *d, const float *state, char *err, size_t errlen);
/* Eval-mode forward of B <= init B windows into out (B, cells) host. */
int rc_dev_infer(rc_dev *d, int B, const int64_t *starts, float *out, char *err, size_t errlen);
/* Copy params/state/moments back to the host buffers (host mode: nothing to do). */
int rc_dev_get_model(rc_dev *d, float *params, float *state, float *moments, char *err,
                     size_t errlen);
void rc_dev_free(rc_dev *d);

#endif
