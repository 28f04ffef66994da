/* eval.c — evaluation of a checkpoint on a recording's test split, predictions over a frame
 * stream, and the metrics' JSON and table (semantics in eval.h).
 *
 * Invariants: the test split is opened exactly as the run that trained the checkpoint opened
 * its recording (the checkpoint's cells, rate key, crop window and normalization), and the
 * recording is checked against the checkpoint's fingerprint before any prediction; predictions
 * run in eval mode through rc_dev (train_dev.h) in batches of EVAL_BATCH consecutive windows,
 * so every backend and device takes the same path; library code: nothing is printed except
 * into the FILE the table is asked for.
 */
#include "errbuf.h"
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "train.h"
#include "train_dev.h"

#define EVAL_BATCH 256
#define EVAL_SEG (64 * EVAL_BATCH)   /* windows per stream declared to the backend */

/* ------------------------------------------------------------------ prediction */

int rc_predict_frames(rc_backend *be, const rc_checkpoint *ck, const float *frames, int64_t T,
                      float *out, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    int64_t n = T - ir->history;
    if (n < 1) return rc_errf(err, errlen, "stimulus has %lld frames, the model needs more than %d",
                           (long long)T, ir->history);
    rc_dev dev;
    if (rc_dev_init(&dev, be, ir, EVAL_BATCH, 0, err, errlen) < 0) return -1;
    int rc = -1;
    int64_t hw = (int64_t)ir->in.h * ir->in.w;
    if (rc_dev_set_model(&dev, ck->params, ck->state, ck->cell_pos, err, errlen) < 0) goto out;
    /* The stimulus goes to the backend EVAL_SEG windows at a time (each a stream of its own,
     * history - 1 frames shared with the next): what the backend derives per frame (the FFT
     * first conv's spectra, ~170 MB for 16,384 frames of 50x50) stays bounded and the FFT path
     * stays on for a stimulus of any length. Windows are independent in inference, and a
     * frame's spectrum does not depend on its stream: the same numbers as one stream. */
    int64_t starts[EVAL_BATCH];
    for (int64_t s0 = 0; s0 < n; s0 += EVAL_SEG) {
        int64_t ns = n - s0 < EVAL_SEG ? n - s0 : EVAL_SEG;
        if (rc_dev_set_frames(&dev, frames + s0 * hw, (ns + ir->history) * hw, 0, err, errlen) < 0) goto out;
        for (int64_t i = 0; i < ns; i += EVAL_BATCH) {
            int B = (int)(ns - i < EVAL_BATCH ? ns - i : EVAL_BATCH);
            for (int b = 0; b < B; b++) starts[b] = i + b;
            if (rc_dev_infer(&dev, B, starts, out + (s0 + i) * ir->cells, err, errlen) < 0) goto out;
        }
    }
    rc = 0;
out:
    rc_dev_free(&dev);
    return rc;
}

/* ------------------------------------------------------------------ data sanity */

int rc_eval_check_data(rc_data *d, unsigned what, void (*warn)(void *, const char *), void *ctx,
                       char *err, size_t errlen)
{
    rc_data_report *r = malloc(sizeof *r);
    if (!r) return rc_errf(err, errlen, "out of memory");
    int rc = rc_data_check(d, what, r, err, errlen);
    if (rc == 0) {
        for (int i = 0; i < r->n && warn; i++)
            if (r->issue[i].level == RC_ISSUE_WARNING) warn(ctx, r->issue[i].msg);
        rc = rc_data_report_error(r, err, errlen);
    }
    free(r);
    return rc;
}

/* ------------------------------------------------------------------ evaluation */

static void data_opts_from_ckpt(rc_data_opts *o, const rc_checkpoint *ck)
{
    rc_data_opts_default(o);
    o->rate_key = ck->rate_key[0] ? ck->rate_key : NULL;
    o->cells = ck->cell_ids;
    o->n_cells = ck->cells;
    o->history = ck->ir->history;
    o->crop = ck->ir->crop;
    if (o->crop > 0) {                      /* reproduce the training crop window exactly */
        o->crop_row = ck->crop_row0 + o->crop / 2;
        o->crop_col = ck->crop_col0 + o->crop / 2;
    }
    o->val_fraction = -1;                   /* no validation split needed */
}

int rc_eval_checkpoint(const rc_checkpoint *ck, const char *data_path, const char *backend,
                       const char *device, rc_eval_metrics *m, float **pred_out, int64_t *n_out,
                       double *truth_r, char *err, size_t errlen)
{
    return rc_eval_checkpoint_chk(ck, data_path, backend, device, NULL, m, pred_out, n_out,
                                  truth_r, err, errlen);
}

/* The evaluation; rate_out (may be NULL) receives the recorded trial-averaged rate (n, cells). */
static int eval_impl(const rc_checkpoint *ck, const char *data_path, const char *backend,
                     const char *device, rc_rec_check *chk, rc_eval_metrics *m, float **pred_out,
                     float **rate_out, int64_t *n_out, double *truth_r, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (rate_out) *rate_out = NULL;
    if (chk) chk->warning[0] = 0;
    if (pred_out) *pred_out = NULL;
    if (truth_r) for (int c = 0; c < ck->cells; c++) truth_r[c] = NAN;
    if (!data_path || !*data_path) data_path = ck->data_path;
    rc_data_opts o;
    data_opts_from_ckpt(&o, ck);
    rc_data *d = NULL;
    rc_test_set t;
    memset(&t, 0, sizeof t);
    rc_backend *be = NULL;
    float *pred = NULL;
    int rc = -1;
    if (rc_data_open(data_path, &o, &d, err, errlen) < 0) return -1;
    const rc_data_info *info = rc_data_get_info(d);
    if (rc_ckpt_check_recording(ck, d, data_path, chk, err, errlen) < 0) goto out;
    if (info->h != ck->ir->in.h || info->w != ck->ir->in.w) {
        rc_errf(err, errlen, "%s: frames are %dx%d after the crop, the model expects %dx%d",
             data_path, info->h, info->w, ck->ir->in.h, ck->ir->in.w);
        goto out;
    }
    if (rc_data_set_stats(d, ck->norm_mean, ck->norm_std, err, errlen) < 0) goto out;
    if (rc_eval_check_data(d, RC_CHECK_TEST | (ck->ir->train.loss == RC_LOSS_MSE ? RC_CHECK_SIGNED_OK : 0), NULL, NULL,
                   err, errlen) < 0)
        goto out;
    int trc = rc_data_test(d, &t, err, errlen);
    if (trc < 0) { rc = trc; goto out; }
    pred = malloc((size_t)t.n * (size_t)ck->cells * sizeof *pred);
    if (!pred) { rc_errf(err, errlen, "out of memory for %lld predictions", (long long)t.n); goto out; }
    if (rc_backend_open(ck->ir, backend ? backend : "c", device, &be, err, errlen) < 0) goto out;
    if (rc_predict_frames(be, ck, t.frames, t.n_frames, pred, err, errlen) < 0) goto out;
    if (rc_eval_metrics_compute(m, pred, t.rate, t.repeats, t.n_repeats, t.n, ck->cells, err,
                                errlen) < 0)
        goto out;
    if (truth_r && t.truth) rc_pearson_cols(t.truth, t.rate, t.n, ck->cells, truth_r);
    if (n_out) *n_out = t.n;
    if (rate_out) {
        size_t bytes = (size_t)t.n * (size_t)ck->cells * sizeof **rate_out;
        if (!(*rate_out = malloc(bytes))) { rc_errf(err, errlen, "out of memory"); goto out; }
        memcpy(*rate_out, t.rate, bytes);
    }
    if (pred_out) { *pred_out = pred; pred = NULL; }
    rc = 0;
out:
    free(pred);
    rc_backend_destroy(be);
    rc_test_set_free(&t);
    rc_data_close(d);
    return rc;
}

int rc_eval_checkpoint_chk(const rc_checkpoint *ck, const char *data_path, const char *backend,
                           const char *device, rc_rec_check *chk, rc_eval_metrics *m,
                           float **pred_out, int64_t *n_out, double *truth_r, char *err,
                           size_t errlen)
{
    return eval_impl(ck, data_path, backend, device, chk, m, pred_out, NULL, n_out, truth_r, err,
                     errlen);
}

int rc_eval_test_traces(const rc_checkpoint *ck, const char *data_path, const char *backend,
                        rc_eval_metrics *m, float **pred, float **rate, int64_t *n, char *err,
                        size_t errlen)
{
    return eval_impl(ck, data_path, backend, "cpu", NULL, m, pred, rate, n, NULL, err, errlen);
}

void rc_eval_json_object(rc_json *j, const rc_eval_metrics *m, const int *cell_ids)
{
    rc_json_begin_object(j);
    rc_json_key(j, "n_cells"); rc_json_int(j, m->cells);
    rc_json_key(j, "has_repeats"); rc_json_bool(j, m->has_repeats);
    rc_json_key(j, "mean_r"); rc_json_number(j, m->mean_r);
    rc_json_key(j, "mean_ceiling"); rc_json_number(j, m->mean_ceiling);
    rc_json_key(j, "mean_oracle"); rc_json_number(j, m->mean_oracle);
    rc_json_key(j, "mean_feve"); rc_json_number(j, m->mean_feve);
    rc_json_key(j, "mean_reliability"); rc_json_number(j, m->mean_reliability);
    rc_json_key(j, "mean_fev"); rc_json_number(j, m->mean_fev);
    rc_json_key(j, "cells");
    rc_json_begin_array(j);
    for (int c = 0; c < m->cells; c++) {
        rc_json_begin_object(j);
        rc_json_key(j, "cell"); rc_json_int(j, cell_ids ? cell_ids[c] : c);
        rc_json_key(j, "r"); rc_json_number(j, m->r[c]);
        rc_json_key(j, "ceiling"); rc_json_number(j, m->ceiling[c]);
        rc_json_key(j, "oracle"); rc_json_number(j, m->oracle[c]);
        rc_json_key(j, "feve"); rc_json_number(j, m->feve[c]);
        rc_json_key(j, "reliability"); rc_json_number(j, m->reliability[c]);
        rc_json_key(j, "split_half"); rc_json_number(j, m->split_half[c]);
        rc_json_end_object(j);
    }
    rc_json_end_array(j);
    rc_json_end_object(j);
}

int rc_eval_table(FILE *f, const char *const *names, const rc_eval_metrics *const *m, int n_runs,
                  const int *cell_ids, const double *truth_r_cells)
{
    if (n_runs < 1) return -1;
    for (int i = 1; i < n_runs; i++)
        if (m[i]->cells != m[0]->cells) return -1;
    const int cells = m[0]->cells, rep = m[0]->has_repeats;
    /* header: metric over run name */
    fprintf(f, "%-6s", "");
    for (int i = 0; i < n_runs; i++) fprintf(f, " %10s", "r");
    if (rep) for (int i = 0; i < n_runs; i++) fprintf(f, " %10s", "FEVe");
    if (rep) fprintf(f, " %10s %10s", "ceiling", "oracle");
    if (truth_r_cells) fprintf(f, " %10s", "truth r");
    fprintf(f, "\n%-6s", "cell");
    for (int k = 0; k < (rep ? 2 : 1); k++)
        for (int i = 0; i < n_runs; i++) fprintf(f, " %10.10s", names[i]);
    if (rep) fprintf(f, " %10s %10s", "(split)", "(jackkn.)");
    if (truth_r_cells) fprintf(f, " %10s", "(synth)");
    fputc('\n', f);
    for (int c = 0; c < cells; c++) {
        fprintf(f, "%-6d", cell_ids ? cell_ids[c] : c);
        for (int i = 0; i < n_runs; i++) fprintf(f, " %10.4f", m[i]->r[c]);
        if (rep) {
            for (int i = 0; i < n_runs; i++) fprintf(f, " %10.4f", m[i]->feve[c]);
            fprintf(f, " %10.4f %10.4f", m[0]->ceiling[c], m[0]->oracle[c]);
        }
        if (truth_r_cells) fprintf(f, " %10.4f", truth_r_cells[c]);
        fputc('\n', f);
    }
    fprintf(f, "%-6s", "mean");
    for (int i = 0; i < n_runs; i++) fprintf(f, " %10.4f", m[i]->mean_r);
    if (rep) {
        for (int i = 0; i < n_runs; i++) fprintf(f, " %10.4f", m[i]->mean_feve);
        fprintf(f, " %10.4f %10.4f", m[0]->mean_ceiling, m[0]->mean_oracle);
    }
    if (truth_r_cells) fprintf(f, " %10.4f", rc_mean_finite(truth_r_cells, cells));
    fputc('\n', f);
    return 0;
}
