/* checkpoint.h — training checkpoints as HDF5 files (h5py-readable), written atomically.
 *
 * Layout (one dataset per tensor, float32 little-endian, PyTorch shapes):
 *   /                 attrs: format="retinac-checkpoint", format_version, generator,
 *                     spec_hash (sha256 of /spec), model, cells, epoch, step, rng_step, lr,
 *                     norm_mean, norm_std, best_epoch, best_val_loss, early_bad, plateau_best,
 *                     plateau_bad, backend, device, threads, data, rate_key, crop_row0,
 *                     crop_col0, history_len
 *   /spec             string: the spec's canonical IR text (rc_ir_format, train section as the
 *                     spec wrote it); spec_hash is its sha256 (checked on load)
 *   /model            string: the canonical text with the EFFECTIVE training settings (spec
 *                     defaults overridden by command-line flags); this is what load parses
 *   /train            attrs: every rc_train field by name (numbers; enums as names), for humans
 *                     and h5py; informational (load uses /model)
 *   /params/<name>    every rc_ir.params tensor ("0.conv.weight", ...)
 *   /state/<name>     BN running statistics (rc_ir.state)
 *   /optim/m/<name>, /optim/v/<name>  Adam moments per parameter; /optim attrs kind, step,
 *                     beta1, beta2, eps, weight_decay (absent when the checkpoint has none)
 *   /data/cell_ids    (cells) int32: indices on the recording's cell axis
 *   /data/cell_pos    (cells,2) int32 gcconv readout positions (absent without gcconv)
 *   /data/centers     (cells,2) int32 RF centers relative to the crop (absent if unknown)
 *   /data             attrs (the recording it was trained on, data_fp.h; absent in checkpoints
 *                     written before them): fingerprint (sha256 hex), fingerprint_version,
 *                     file_cells, frame_h, frame_w, train_frames, test_frames
 *   /history/<col>    (epochs) float64, col in rc_ckpt_hist_names (epoch, train_loss, ...)
 *
 * Atomicity: rc_ckpt_save builds the file in memory and writes it through rc_write_file_atomic
 * (fsutil.h: DIR/.tmp.<pid>.<name>, fsync, rename over the target, fsync DIR). A process killed
 * at any moment, or a full disk, leaves either the previous file or the new one, never a
 * partial one (plus possibly a stale temp file, which rc_ckpt_clean_stale removes).
 * Trust: nothing outside the hashed /spec and /model is taken on faith. rc_ckpt_load (and
 * rc_ckpt_save, so a checkpoint that saves also loads) checks every value that changes results
 * against the model (rc_ckpt_validate): history_len, the crop window, cell ids, readout
 * positions, centres, finite tensors, normalization, optimizer and schedule state.
 * Errors: 0 / -1 with one line "PATH: /key: what" in err; nothing prints.
 */
#ifndef RC_CHECKPOINT_H
#define RC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "data_fp.h"
#include "ir.h"

#define RC_CKPT_FORMAT "retinac-checkpoint"
#define RC_CKPT_VERSION 1
#define RC_GENERATOR "retinac 0.1.0"

enum { RC_HIST_EPOCH, RC_HIST_TRAIN_LOSS, RC_HIST_VAL_LOSS, RC_HIST_VAL_R, RC_HIST_LR,
       RC_HIST_SECONDS, RC_HIST_SAMPLES_PER_S, RC_HIST_COLS };
extern const char *const rc_ckpt_hist_names[RC_HIST_COLS];

typedef struct {
    /* model: the effective IR (inferred for `cells`) and the spec text it came from */
    rc_ir *ir;                 /* save: borrowed; load: owned */
    char *spec_text;           /* canonical text of the spec as written (borrowed / owned) */
    char spec_hash[65];
    float *params;             /* (ir->params_total) */
    float *state;              /* (ir->state_total) may be NULL when state_total == 0 */
    /* optimizer (has_optim = 0: inference-only checkpoint) */
    int has_optim;
    rc_opt opt_kind;
    int64_t opt_step;
    double beta1, beta2, eps;
    float *moments;            /* (2, params_total): m then v */
    double lr;                 /* current learning rate (after schedules) */
    /* data */
    double norm_mean, norm_std;
    int cells;
    int *cell_ids;             /* (cells) */
    int *cell_pos;             /* (cells,2) or NULL */
    int *centers;              /* (cells,2) or NULL */
    char data_path[1024];
    char rate_key[64];
    int crop_row0, crop_col0;
    rc_data_fp fp;             /* the recording it was trained on (fp.version 0: unknown) */
    /* run */
    char backend[16], device[16];
    int threads;
    int64_t epoch;             /* epochs completed */
    int64_t rng_step;          /* training steps taken: the noise/dropout seed counter */
    int64_t best_epoch;        /* epoch (1-based count) of the best validation loss, 0 = none */
    double best_val_loss;
    int early_bad;             /* epochs since the best validation loss */
    double plateau_best;       /* ReduceLROnPlateau state */
    int plateau_bad;
    /* per-epoch history: hist[col][0..n_hist) */
    int n_hist, cap_hist;
    double *hist[RC_HIST_COLS];
    int owned;                 /* 1 after rc_ckpt_load: rc_ckpt_free releases everything */
    char path[1100];           /* rc_ckpt_load: the file it was read from (messages) */
} rc_checkpoint;

/* Write ck to path atomically (see above). */
int rc_ckpt_save(const char *path, const rc_checkpoint *ck, char *err, size_t errlen);

/* Read a checkpoint: parse /model, infer for the stored cell count, verify spec_hash against
 * /spec, read every tensor by name with its shape checked. ck is overwritten (owned = 1). */
int rc_ckpt_load(const char *path, rc_checkpoint *ck, char *err, size_t errlen);
void rc_ckpt_free(rc_checkpoint *ck);

/* Every value outside the hashed model text that changes results, checked against the model
 * (checkpoint_check.c): history_len (load reads it), the crop window inside the spec's frame
 * (origin 0,0 without a crop), cell ids >= 0, distinct and below the fingerprint's cell count,
 * readout positions (present iff the model has a gcconv layer) inside its output map, centres
 * inside the frame, every parameter, BN statistic and Adam moment finite (running variances and
 * second moments >= 0), norm_mean finite, norm_std finite and > 0, lr, epochs, steps and
 * optimizer constants in range, the fingerprint consistent with the model. fname names the file
 * in the message "FILE: /key: what". Returns 0 or -1. */
int rc_ckpt_validate(const rc_checkpoint *ck, const char *fname, char *err, size_t errlen);

/* Append one row to the history (grows the arrays; rows are RC_HIST_COLS values). */
int rc_ckpt_hist_append(rc_checkpoint *ck, const double row[RC_HIST_COLS]);
/* Free only the history arrays (for a borrowed checkpoint the trainer owns them). */
void rc_ckpt_hist_free(rc_checkpoint *ck);

/* A run folder stands for its checkpoint: RUNDIR -> RUNDIR/best.h5, or RUNDIR/checkpoint.h5
 * when there is no best.h5; any other path is copied as it is. */
void rc_ckpt_resolve(const char *arg, char *out, size_t n);

/* Remove DIR/.tmp.<pid>.* (and older DIR/.ckpt.tmp.<pid>) files whose process is gone.
 * Returns how many were removed. */
int rc_ckpt_clean_stale(const char *dir);

/* Atomic files (rc_write_file_atomic, rc_atomic_tmp/commit), rc_make_dirs: fsutil.h. */
#include "fsutil.h"

#endif
