/* train.h — the training loop and run folders (test-set evaluation: eval.h).
 *
 * A run folder RUNDIR holds:
 *   checkpoint.h5  the latest epoch (checkpoint.h), rewritten atomically after every epoch
 *   best.h5        the epoch with the lowest validation loss so far (what eval/predict use)
 *   log.csv        epoch,train_loss,val_loss,val_r,lr,seconds,samples_per_s (rewritten from the
 *                  checkpoint's history after every epoch, so it always matches checkpoint.h5)
 *   metrics.json   test metrics of best.h5 at the end (rc_eval_write_json format)
 *
 * Semantics (reference §3.4 with its bugs fixed, each a documented choice):
 *   - one optimizer step per minibatch of exactly `batch` windows; the last partial batch of an
 *     epoch is dropped (as the reference); epoch e (0-based) shuffles with seed (run seed, e);
 *   - loss = Poisson NLL or MSE (loss.h) + L1 activity penalty (mean per sample, or the
 *     reference's batch sum); Adam with coupled L2 (reference) or AdamW (optim.h);
 *   - noise/dropout draw from seed_step = mix(run seed, global step counter), so a resumed run
 *     draws what the uninterrupted run would have drawn;
 *   - validation after every epoch in eval mode: val_loss = data term averaged over all
 *     validation samples + the L1 term per sample (batch-size independent); val_r = mean over
 *     cells of the Pearson r over all validation windows;
 *   - schedules: plateau watches val_loss (mode min; improvement = val_loss < best - threshold *
 *     |best|, a sign-safe relative threshold; the reference stepped on the correlation with mode
 *     'min', inverted); after `sched_patience` epochs without improvement lr *= sched_factor.
 *     step: lr *= sched_gamma after each epoch count listed in milestones (MultiStepLR);
 *   - early stopping: stop after early_patience epochs without val_loss < best - early_min_delta
 *     (0 = never); best.h5 is the best epoch (the reference kept the last epoch);
 *   - the same seed, backend and thread count give the same loss curve bit for bit, and
 *     resuming from checkpoint.h5 continues exactly as the uninterrupted run.
 * Library code: never prints; progress goes through a callback.
 */
#ifndef RC_TRAIN_H
#define RC_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "checkpoint.h"
#include "data.h"
#include "eval.h"
#include "ir.h"
#include "json.h"
#include "metrics.h"

typedef struct {
    int epoch, epochs;           /* 1-based epoch being run, total planned */
    int64_t batch, batches;      /* batches done in this epoch, batches per epoch */
    int64_t samples;             /* samples done in this epoch */
    double loss;                 /* mean training loss so far in this epoch */
    double elapsed;              /* seconds in this epoch so far */
    double samples_per_s;
    /* end of epoch (epoch_done = 1) */
    int epoch_done;
    double train_loss, val_loss, val_r, lr, seconds;
    int improved;                /* new best validation loss (best.h5 written) */
    int stopping;                /* early stopping fires after this epoch */
} rc_train_progress;

typedef void (*rc_train_progress_fn)(void *ctx, const rc_train_progress *p);

typedef struct {
    const char *data_path;
    const char *rundir;          /* created if absent */
    const char *backend;         /* "c" (default: JIT-compiled generated C) or "ref" */
    const char *device;          /* "cpu" (default) or "cuda" */
    int threads;                 /* OpenMP threads; 0 = leave the default */
    int resume;                  /* continue RUNDIR/checkpoint.h5 */
    const int *cells;            /* subset of the recording's cells (0-based); NULL = all */
    int n_cells;
    const char *rate_key;        /* NULL = data default (firing_rate_10ms) */
    size_t mem_budget;           /* data buffer bytes; 0 = data default */
    int eval_test;               /* evaluate best.h5 on the test split at the end */
    int allow_other_recording;   /* resume on a recording whose fingerprint differs (warns) */
    rc_train_progress_fn progress;
    void *progress_ctx;
    void (*warn)(void *ctx, const char *line);   /* warnings before training (and one after a
                                                    validation: poisson_log with negative eval
                                                    outputs); may be NULL */
    void *warn_ctx;
    int data_checked;            /* the caller ran rc_train_check_data on this recording: its
                                    warnings are not repeated (errors still stop the run) */
} rc_train_opts;

typedef struct {
    int epochs_done;             /* total epochs in the run (resumed ones included) */
    int64_t best_epoch;
    double best_val_loss;
    int stopped_early;
    double seconds;              /* wall time of this process's training */
    int has_test;                /* test metrics of best.h5 below are valid */
    rc_eval_metrics test;
    double *truth_r;             /* (cells) r of the true rate (synthetic data; NaN otherwise) */
    double truth_mean_r;         /* their mean, NaN if none */
    int centers_estimated;       /* the gcconv readout needed RF centers, the recording had none:
                                    estimated from spike-triggered averages (rc_data_sta_centers) */
} rc_train_result;

void rc_train_opts_default(rc_train_opts *o);

/* What the epoch-end rules carry between epochs (all of it goes into the checkpoint). */
typedef struct {
    double lr;
    double best;               /* lowest watched loss so far (INFINITY before the first epoch) */
    int64_t best_epoch;        /* 1-based epoch of `best`, 0 = none */
    int bad;                   /* epochs since `best` improved by more than early_min_delta */
    double plateau_best;       /* ReduceLROnPlateau's reference value */
    int plateau_bad;
} rc_sched_state;

void rc_sched_init(rc_sched_state *s, double lr);
/* Apply the rules after epoch `epoch` (1-based count of epochs done) whose watched loss is
 * `loss` (validation loss): best/early-stopping counters, then the LR schedule. Sets *improved
 * (a new best) and returns 1 if early stopping fires now, else 0. Pure: no I/O. */
int rc_sched_epoch_end(const rc_train *tr, rc_sched_state *s, int epoch, double loss,
                       int *improved);

/* Train. spec: the model as loaded from the spec (not inferred; its train section is the
 * spec's own; its hash identifies the model). train: the effective settings (spec + flags).
 * On resume, spec must hash like the checkpoint's spec. Before any work the recording's frames
 * must be the spec's height x width (also with a crop), and on resume the recording must be
 * the one the checkpoint was trained on (rc_ckpt_check_recording; allow_other_recording turns
 * a fingerprint difference into a warning). The checkpoints record the recording's
 * fingerprint (data_fp.h). Returns 0, or -1 with a message. */
int rc_train_run(const rc_ir *spec, const rc_train *train, const rc_train_opts *o,
                 rc_train_result *res, char *err, size_t errlen);
/* The data-sanity check (rc_data_check, data.h) rc_train_run runs before any work, on the
 * recording opened as a fresh run of spec would open it: the training split, the test split
 * when o->eval_test, negative responses only warned for loss = "mse". Warnings go to o->warn;
 * returns 0, or -1 with the first error (and how many more) in err. rc_train_run runs it
 * itself; `retinac search` runs it once before its trials. */
/* The data options a fresh `retinac train` of spec takes from it (history, crop around the first
 * selected cell, validation fraction, split and seed); the caller's other options untouched.
 * `retinac info --spec` opens a recording the same way. */
void rc_train_spec_data_opts(rc_data_opts *dopt, const rc_ir *spec, const rc_train *train);

int rc_train_check_data(const rc_ir *spec, const rc_train *train, const rc_train_opts *o,
                        char *err, size_t errlen);
void rc_train_result_free(rc_train_result *r);

/* Check a recording opened for checkpoint ck (its cells, rate key and crop window; data_fp.c)
 * before applying the model to it: the frames must be the model's height x width, the crop
 * window and the cell count the checkpoint's, and the fingerprint the checkpoint's (an error
 * naming both files and what differs, or with chk->allow_other a warning in chk->warning). A
 * checkpoint without a fingerprint passes with a warning. chk may be NULL (strict). */
int rc_ckpt_check_recording(const rc_checkpoint *ck, struct rc_data *d, const char *data_path,
                            rc_rec_check *chk, char *err, size_t errlen);

#endif
