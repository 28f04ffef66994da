/* eval.h — evaluation of a trained model: a checkpoint on a recording's test split (metrics,
 * predictions, the true rate's r on synthetic data), model responses to a frame stream, and the
 * metrics as JSON or as the comparison table (runtime/eval.c).
 *
 * Invariants: a checkpoint is evaluated on the recording it was trained on (fingerprint, cells,
 * rate key, crop window; rc_ckpt_check_recording) with its own normalization, in eval mode
 * (running BN statistics, no noise or dropout), so `retinac eval RUNDIR` reproduces the test
 * metrics the trainer wrote to metrics.json. Library code: returns errors, never prints.
 */
#ifndef RC_EVAL_H
#define RC_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "checkpoint.h"
#include "json.h"
#include "metrics.h"

struct rc_data;

/* Evaluate a loaded checkpoint on the test split of data_path (NULL: the path stored in the
 * checkpoint), with the checkpoint's cells, rate key, crop and normalization. pred_out (may be
 * NULL) receives the malloc'd (n, cells) predictions, *n_out their count. truth_r (cells, may
 * be NULL) the r of the true rate per cell on synthetic data (all NaN otherwise). */
int rc_eval_checkpoint(const rc_checkpoint *ck, const char *data_path, const char *backend,
                       const char *device, rc_eval_metrics *m, float **pred_out, int64_t *n_out,
                       double *truth_r, char *err, size_t errlen);
/* The same with the recording check's options and results (chk may be NULL: strict, warnings
 * dropped). rc_eval_checkpoint refuses a recording other than the checkpoint's. Both return
 * RC_ERR_NO_TEST (errbuf.h) for a recording without a test split. */
int rc_eval_checkpoint_chk(const rc_checkpoint *ck, const char *data_path, const char *backend,
                           const char *device, rc_rec_check *chk, rc_eval_metrics *m,
                           float **pred_out, int64_t *n_out, double *truth_r, char *err,
                           size_t errlen);

/* The test split's predictions and the recorded trial-averaged rate, both malloc'd (n, cells),
 * with the metrics (strict recording check, CPU). For figures (retinac report). */
int rc_eval_test_traces(const rc_checkpoint *ck, const char *data_path, const char *backend,
                        rc_eval_metrics *m, float **pred, float **rate, int64_t *n, char *err,
                        size_t errlen);
/* Model responses to normalized frames (T, H, W): out (T - history, cells), in eval mode. */
int rc_predict_frames(rc_backend *be, const rc_checkpoint *ck, const float *frames, int64_t T,
                      float *out, char *err, size_t errlen);

/* JSON of one run's metrics (per cell r/ceiling/oracle/feve/reliability, means). cell_ids may
 * be NULL. Written as one object into j at the current position. */
void rc_eval_json_object(rc_json *j, const rc_eval_metrics *m, const int *cell_ids);

/* The comparison table: one row per cell, columns r and FEVe of each run, then the data's
 * ceiling and jackknife oracle (from the first run: they depend only on the recording), and the
 * true rate's r when truth_r is finite (synthetic data); a final row of means. Runs must have
 * the same cells. names[i] labels run i. Returns 0, or -1 if the runs' cell counts differ. */
int rc_eval_table(FILE *f, const char *const *names, const rc_eval_metrics *const *m, int n_runs,
                  const int *cell_ids, const double *truth_r_cells);

/* rc_data_check (data.h) on an opened recording, as the evaluator and the trainer run it: the
 * checks in `what` (RC_CHECK_*), warnings to warn (may be NULL) with ctx, the first error (with
 * the count of the others) into err. Returns 0 or -1. */
int rc_eval_check_data(struct rc_data *d, unsigned what, void (*warn)(void *, const char *),
                       void *ctx, char *err, size_t errlen);

#endif
