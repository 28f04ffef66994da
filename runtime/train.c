/* train.c — the training loop, validation, schedules, early stopping, run folders, and test-set
 * evaluation of checkpoints (semantics in train.h).
 *
 * Invariants:
 *   - everything that decides the next epoch (params, BN state, Adam moments and step, lr,
 *     schedule and early-stopping counters, the global step counter that seeds noise) is in
 *     checkpoint.h5 after every epoch, so resume == uninterrupted run, bit for bit;
 *   - checkpoint.h5 / best.h5 / log.csv / metrics.json are only ever replaced by rename;
 *   - the backend sees host pointers for "ref"/"c"; for "cuda" the device mirror (train_dev.c
 *     style helpers below) owns device copies and the host keeps the authoritative copy only at
 *     epoch boundaries.
 */
#include "clock.h"
#include "errbuf.h"
#include "fsutil.h"
#include "train.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "train_dev.h"

#define EVAL_BATCH 256


/* Seeds derived from the run seed: distinct streams for data order and per-step noise. */
static uint64_t data_seed(uint64_t seed) { return rc_rng_mix(seed ^ 0x53485546464C45ull); }
static uint64_t step_seed(uint64_t seed, int64_t step)
{
    return rc_rng_mix(seed ^ rc_rng_mix(0x4E4F495345ull + (uint64_t)step));
}

void rc_train_opts_default(rc_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "c";
    o->device = "cpu";
    o->eval_test = 1;
}

void rc_train_result_free(rc_train_result *r)
{
    if (!r) return;
    rc_eval_metrics_free(&r->test);
    free(r->truth_r);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ backends */

int rc_backend_open(const rc_ir *ir, const char *backend, const char *device, rc_backend **be,
                    char *err, size_t errlen)
{
    *be = NULL;
    if (!backend || !*backend) backend = "c";
    if (device && !strcmp(device, "cuda")) return rc_dev_backend_cuda(ir, be, err, errlen);
    if (device && *device && strcmp(device, "cpu"))
        return rc_errf(err, errlen, "device '%s': expected cpu or cuda", device);
    if (!strcmp(backend, "ref")) {
        if (rc_ref_backend_create(ir, be) != 0) return rc_errf(err, errlen, "ref backend: out of memory");
        return 0;
    }
    if (!strcmp(backend, "c")) return rc_dev_backend_c(ir, be, err, errlen);
    return rc_errf(err, errlen, "backend '%s': expected c or ref", backend);
}

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
    if (rc_dev_set_model(&dev, ck->params, ck->state, ck->cell_pos, err, errlen) < 0 ||
        rc_dev_set_frames(&dev, frames, T * hw, 0, err, errlen) < 0)
        goto out;
    int64_t starts[EVAL_BATCH];
    for (int64_t i = 0; i < n; i += EVAL_BATCH) {
        int B = (int)(n - i < EVAL_BATCH ? n - i : EVAL_BATCH);
        for (int b = 0; b < B; b++) starts[b] = i + b;
        if (rc_dev_infer(&dev, B, starts, out + i * ir->cells, err, errlen) < 0) goto out;
    }
    rc = 0;
out:
    rc_dev_free(&dev);
    return rc;
}

/* ------------------------------------------------------------------ data sanity */

/* rc_data_check (data.h) on an opened recording: warnings to warn (may be NULL), the first
 * error (with the count of the others) into err. */
static int check_data(rc_data *d, unsigned what, void (*warn)(void *, const char *), void *ctx,
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

int rc_eval_checkpoint_chk(const rc_checkpoint *ck, const char *data_path, const char *backend,
                           const char *device, rc_rec_check *chk, rc_eval_metrics *m,
                           float **pred_out, int64_t *n_out, double *truth_r, char *err,
                           size_t errlen)
{
    memset(m, 0, sizeof *m);
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
    if (check_data(d, RC_CHECK_TEST | (ck->ir->train.loss == RC_LOSS_MSE ? RC_CHECK_SIGNED_OK : 0), NULL, NULL,
                   err, errlen) < 0)
        goto out;
    int trc = rc_data_test(d, &t, err, errlen);
    if (trc < 0) { rc = trc; goto out; }
    pred = malloc((size_t)t.n * (size_t)ck->cells * sizeof *pred);
    if (!pred) { rc_errf(err, errlen, "out of memory for %lld predictions", (long long)t.n); goto out; }
    if (rc_backend_open(ck->ir, backend, device, &be, err, errlen) < 0) goto out;
    if (rc_predict_frames(be, ck, t.frames, t.n_frames, pred, err, errlen) < 0) goto out;
    if (rc_eval_metrics_compute(m, pred, t.rate, t.repeats, t.n_repeats, t.n, ck->cells, err,
                                errlen) < 0)
        goto out;
    if (truth_r && t.truth) rc_pearson_cols(t.truth, t.rate, t.n, ck->cells, truth_r);
    if (n_out) *n_out = t.n;
    if (pred_out) { *pred_out = pred; pred = NULL; }
    rc = 0;
out:
    free(pred);
    rc_backend_destroy(be);
    rc_test_set_free(&t);
    rc_data_close(d);
    return rc;
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

/* ------------------------------------------------------------------ run-folder files */

static int write_log_csv(const char *rundir, const rc_checkpoint *ck, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "%s/log.csv: out of memory", rundir);
    for (int c = 0; c < RC_HIST_COLS; c++) fprintf(f, "%s%s", c ? "," : "", rc_ckpt_hist_names[c]);
    fputc('\n', f);
    for (int r = 0; r < ck->n_hist; r++) {
        fprintf(f, "%d", (int)ck->hist[RC_HIST_EPOCH][r]);
        for (int c = 1; c < RC_HIST_COLS; c++) fprintf(f, ",%.9g", ck->hist[c][r]);
        fputc('\n', f);
    }
    if (fclose(f) != 0) { free(buf); return rc_errf(err, errlen, "%s/log.csv: write failed", rundir); }
    char path[1100];
    snprintf(path, sizeof path, "%s/log.csv", rundir);
    int rc = rc_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

static int write_metrics_json(const char *rundir, const rc_checkpoint *best,
                              const rc_train_result *res, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "%s/metrics.json: out of memory", rundir);
    rc_json j;
    rc_json_init(&j, f, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "model"); rc_json_string(&j, best->ir->name);
    rc_json_key(&j, "spec_hash"); rc_json_string(&j, best->spec_hash);
    rc_json_key(&j, "checkpoint"); rc_json_string(&j, "best.h5");
    rc_json_key(&j, "data"); rc_json_string(&j, best->data_path);
    rc_json_key(&j, "epochs"); rc_json_int(&j, res->epochs_done);
    rc_json_key(&j, "best_epoch"); rc_json_int(&j, res->best_epoch);
    rc_json_key(&j, "best_val_loss"); rc_json_number(&j, res->best_val_loss);
    rc_json_key(&j, "stopped_early"); rc_json_bool(&j, res->stopped_early);
    rc_json_key(&j, "truth_mean_r"); rc_json_number(&j, res->truth_mean_r);
    rc_json_key(&j, "test");
    rc_eval_json_object(&j, &res->test, best->cell_ids);
    rc_json_end_object(&j);
    int bad = rc_json_finish(&j) != 0;
    if (fclose(f) != 0 || bad) { free(buf); return rc_errf(err, errlen, "%s/metrics.json: write failed", rundir); }
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.json", rundir);
    int rc = rc_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ epoch-end rules */

void rc_sched_init(rc_sched_state *s, double lr)
{
    s->lr = lr;
    s->best = INFINITY;
    s->best_epoch = 0;
    s->bad = 0;
    s->plateau_best = INFINITY;
    s->plateau_bad = 0;
}

int rc_sched_epoch_end(const rc_train *tr, rc_sched_state *s, int epoch, double loss,
                       int *improved)
{
    /* A non-finite loss never counts as an improvement. */
    *improved = isfinite(loss) && (!isfinite(s->best) || loss < s->best - tr->early_min_delta);
    if (*improved) {
        s->best = loss;
        s->best_epoch = epoch;
        s->bad = 0;
    } else {
        s->bad++;
    }
    if (tr->schedule == RC_SCHED_PLATEAU) {
        /* mode min, relative threshold made sign-safe: better = loss < best - thr*|best|
         * (PyTorch's best*(1-thr) accepts a worse loss when the loss is negative, which the
         * Poisson NLL often is). cooldown 0, min_lr 0, as the reference. */
        if (isfinite(loss) && (!isfinite(s->plateau_best) ||
                               loss < s->plateau_best - tr->sched_threshold * fabs(s->plateau_best))) {
            s->plateau_best = loss;
            s->plateau_bad = 0;
        } else if (++s->plateau_bad > tr->sched_patience) {
            s->lr *= tr->sched_factor;
            s->plateau_bad = 0;
        }
    } else if (tr->schedule == RC_SCHED_STEP) {
        for (int m = 0; m < tr->n_milestones; m++)
            if (tr->milestones[m] == epoch) s->lr *= tr->sched_gamma;
    }
    return tr->early_patience > 0 && s->bad >= tr->early_patience;
}

/* ------------------------------------------------------------------ training */

typedef struct {
    const rc_train_opts *o;
    rc_ir *ir;                 /* effective, inferred */
    rc_data *data;
    const rc_data_info *info;
    rc_model model;
    rc_optim opt;
    rc_backend *be;
    rc_dev dev;
    rc_checkpoint ck;          /* borrowed pointers into the above + owned history */
    float *val_pred, *val_y;   /* (n_val, cells) */
    float *pred, *dy;          /* (B, cells) host copies */
    int *est_centers;          /* (cells, 2) STA-estimated RF centers, or NULL */
} trainer;

/* Validation in eval mode: val_loss (data term mean + per-sample L1) and mean Pearson r. */
static int validate(trainer *t, double *val_loss, double *val_r, char *err, size_t errlen)
{
    const rc_ir *ir = t->ir;
    const int cells = ir->cells, B = ir->train.batch;
    *val_loss = NAN;
    *val_r = NAN;
    if (t->info->n_val <= 0) return 0;
    rc_iter *it = NULL;
    if (rc_data_val_iter(t->data, B, &it, err, errlen) < 0) return -1;
    rc_batch b;
    int64_t n = 0;
    double sum = 0;
    int k;
    while ((k = rc_iter_next(it, &b, err, errlen)) == 1) {
        if (n + b.B > t->info->n_val) { rc_iter_free(it); return rc_errf(err, errlen, "validation yielded more windows than announced"); }
        if (rc_dev_set_frames(&t->dev, b.frames, b.n_frames * (int64_t)ir->in.h * ir->in.w, b.gen, err, errlen) < 0 ||
            rc_dev_infer(&t->dev, b.B, b.starts, t->val_pred + n * cells, err, errlen) < 0) {
            rc_iter_free(it);
            return -1;
        }
        rc_loss_value lv = rc_loss_compute(ir->train.loss, ir->train.l1_activity, RC_L1_MEAN, b.B,
                                           cells, t->val_pred + n * cells, b.y, NULL);
        sum += lv.total * b.B;
        memcpy(t->val_y + n * cells, b.y, (size_t)b.B * cells * sizeof(float));
        n += b.B;
    }
    rc_iter_free(it);
    if (k < 0) return -1;
    if (n == 0) return 0;
    *val_loss = sum / (double)n;
    double *r = malloc((size_t)cells * sizeof *r);
    if (!r) return rc_errf(err, errlen, "out of memory");
    rc_pearson_cols(t->val_pred, t->val_y, n, cells, r);
    *val_r = rc_mean_finite(r, cells);
    free(r);
    return 0;
}

static int save_ckpt(trainer *t, const char *name, char *err, size_t errlen)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", t->o->rundir, name);
    if (rc_dev_get_model(&t->dev, t->model.params, t->model.state, t->opt.moments, err, errlen) < 0)
        return -1;
    t->ck.opt_step = t->opt.step;
    t->ck.lr = t->opt.lr;
    return rc_ckpt_save(path, &t->ck, err, errlen);
}

static void free_trainer(trainer *t)
{
    rc_dev_free(&t->dev);
    rc_backend_destroy(t->be);
    rc_optim_free(&t->opt);
    rc_model_free(&t->model);
    rc_data_close(t->data);
    rc_ckpt_hist_free(&t->ck);
    free(t->ck.centers);
    free(t->est_centers);
    free(t->val_pred);
    free(t->val_y);
    free(t->pred);
    free(t->dy);
    free(t->ir);
}

/* The data options a run uses (prev: the checkpoint it resumes, or NULL). */
static void run_data_opts(rc_data_opts *dopt, const rc_ir *spec, const rc_train *train,
                          const rc_train_opts *o, const rc_checkpoint *prev)
{
    rc_data_opts_default(dopt);
    dopt->rate_key = prev ? (prev->rate_key[0] ? prev->rate_key : NULL) : o->rate_key;
    dopt->cells = prev ? prev->cell_ids : o->cells;
    dopt->n_cells = prev ? prev->cells : o->n_cells;
    dopt->history = spec->history;
    dopt->crop = spec->crop;
    if (spec->crop > 0) {
        if (prev) { dopt->crop_row = prev->crop_row0 + spec->crop / 2; dopt->crop_col = prev->crop_col0 + spec->crop / 2; }
        else dopt->crop_cell = 0;           /* around the first selected cell's RF center */
    }
    dopt->val_fraction = train->val_fraction > 0 ? train->val_fraction : -1;
    dopt->val_mode = train->val_split == RC_VAL_RANDOM ? RC_VAL_RANDOM : RC_VAL_BLOCKS;
    dopt->val_seed = train->seed;
    dopt->mem_budget = o->mem_budget;
}

/* What a run checks: the training split, the test split when it will be evaluated. */
static unsigned run_check_what(const rc_train *train, const rc_train_opts *o)
{
    return RC_CHECK_TRAIN | (o->eval_test ? RC_CHECK_TEST : 0) |
           (train->loss == RC_LOSS_MSE ? RC_CHECK_SIGNED_OK : 0);
}

int rc_train_check_data(const rc_ir *spec, const rc_train *train, const rc_train_opts *o,
                        char *err, size_t errlen)
{
    if (!o->data_path) return rc_errf(err, errlen, "train: a data file is needed");
    rc_data_opts dopt;
    run_data_opts(&dopt, spec, train, o, NULL);
    rc_data *d = NULL;
    if (rc_data_open(o->data_path, &dopt, &d, err, errlen) < 0) return -1;
    int rc = check_data(d, run_check_what(train, o), o->warn, o->warn_ctx, err, errlen);
    rc_data_close(d);
    return rc;
}

int rc_train_run(const rc_ir *spec, const rc_train *train, const rc_train_opts *o,
                 rc_train_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->truth_mean_r = NAN;
    if (!o->rundir || !o->data_path) return rc_errf(err, errlen, "train: a data file and a run folder are needed");
    static const char *const run_files[] = {"checkpoint.h5", "best.h5", "log.csv", "metrics.json", NULL};
    if (rc_dir_not_input(o->rundir, run_files, &o->data_path, 1, err, errlen) < 0) return -1;
    if (rc_make_dirs(o->rundir, err, errlen) < 0) return -1;
    rc_ckpt_clean_stale(o->rundir);
    if (o->threads > 0) omp_set_num_threads(o->threads);

    char ckpath[1100], spec_hash[65];
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.h5", o->rundir);
    rc_ir_hash(spec, spec_hash);
    char *spec_text = rc_ir_format(spec);
    if (!spec_text) return rc_errf(err, errlen, "out of memory");

    trainer T;
    memset(&T, 0, sizeof T);
    T.o = o;
    rc_checkpoint prev;
    memset(&prev, 0, sizeof prev);
    int have_prev = 0, rc = -1;

    if (o->resume) {
        if (rc_ckpt_load(ckpath, &prev, err, errlen) < 0) goto out;
        have_prev = 1;
        if (strcmp(prev.spec_hash, spec_hash)) {
            rc_errf(err, errlen, "%s: the spec changed since this run started (hash %.12s, checkpoint %.12s)",
                 ckpath, spec_hash, prev.spec_hash);
            goto out;
        }
        if (!prev.has_optim) { rc_errf(err, errlen, "%s: no optimizer state to resume from", ckpath); goto out; }
    } else if (access(ckpath, F_OK) == 0) {
        rc_errf(err, errlen, "%s: a run already lives here; use --resume or another folder", ckpath);
        goto out;
    }

    /* data */
    rc_data_opts dopt;
    run_data_opts(&dopt, spec, train, o, have_prev ? &prev : NULL);
    if (rc_data_open(o->data_path, &dopt, &T.data, err, errlen) < 0) goto out;
    T.info = rc_data_get_info(T.data);
    /* the recording: frames of the spec's size (a crop of a frame of another size would train
     * on a meaningless window), and on resume the recording the run was trained on */
    if (T.info->full_h != spec->height || T.info->full_w != spec->width) {
        rc_errf(err, errlen, "%s: frames are %dx%d, the spec '%s' takes %dx%d frames%s", o->data_path,
                T.info->full_h, T.info->full_w, spec->name, spec->height, spec->width,
                spec->crop > 0 ? " (and crops them)" : "");
        goto out;
    }
    rc_data_fp fp;
    memset(&fp, 0, sizeof fp);
    if (have_prev) {
        rc_rec_check chk;
        memset(&chk, 0, sizeof chk);
        chk.allow_other = o->allow_other_recording;
        if (rc_ckpt_check_recording(&prev, T.data, o->data_path, &chk, err, errlen) < 0) goto out;
        if (chk.warning[0] && o->warn) o->warn(o->warn_ctx, chk.warning);
        fp = chk.got;
    }
    if (!fp.version && rc_data_fp_compute(T.data, &fp, err, errlen) < 0) goto out;
    /* data sanity before any work: NaN/Inf, negative or silent responses, a constant stimulus
     * (its frame pass is the one the statistics below come from) */
    if (check_data(T.data, run_check_what(train, o), o->data_checked ? NULL : o->warn, o->warn_ctx,
                   err, errlen) < 0)
        goto out;
    if (T.info->n_train < train->batch) {
        rc_errf(err, errlen, "%s: %lld training windows, fewer than one batch of %d", o->data_path,
             (long long)T.info->n_train, train->batch);
        goto out;
    }

    /* model */
    T.ir = malloc(sizeof *T.ir);
    if (!T.ir) { rc_errf(err, errlen, "out of memory"); goto out; }
    *T.ir = *spec;
    T.ir->train = *train;
    if (rc_ir_infer(T.ir, T.info->n_cells, spec->name, err, errlen) < 0) goto out;
    if (T.info->h != T.ir->in.h || T.info->w != T.ir->in.w) {
        rc_errf(err, errlen, "%s: frames are %dx%d (after any crop), the spec '%s' expects %dx%d",
             o->data_path, T.info->h, T.info->w, spec->name, T.ir->in.h, T.ir->in.w);
        goto out;
    }
    const rc_ir *ir = T.ir;
    const int cells = ir->cells, B = ir->train.batch;
    double mean, std;
    if (have_prev) {
        if (rc_data_set_stats(T.data, prev.norm_mean, prev.norm_std, err, errlen) < 0) goto out;
        mean = prev.norm_mean;
        std = prev.norm_std;
    } else if (rc_data_stats(T.data, &mean, &std, err, errlen) < 0) goto out;
    /* RF centers: the recording's; else (a gcconv read out at the data's centers) a resumed
     * run's, or estimated from spike-triggered averages */
    const int *centers = T.info->centers;
    int gl = rc_gc_layer(ir);
    if (!centers && gl >= 0 && ir->layers[gl].position == RC_POS_DATA) {
        if (have_prev && prev.centers) centers = prev.centers;
        else {
            T.est_centers = malloc((size_t)cells * 2 * sizeof(int));
            if (!T.est_centers) { rc_errf(err, errlen, "out of memory"); goto out; }
            if (rc_data_sta_centers(T.data, T.est_centers, err, errlen) < 0) goto out;
            centers = T.est_centers;
            res->centers_estimated = 1;
        }
    }
    if (rc_model_init(&T.model, ir, ir->train.seed, centers, err, errlen) < 0) goto out;
    if (rc_optim_init(&T.opt, ir->train.optimizer, ir->params_total, ir->train.lr, ir->train.l2,
                      err, errlen) < 0)
        goto out;

    /* checkpoint skeleton (pointers into the trainer) */
    rc_checkpoint *ck = &T.ck;
    ck->ir = T.ir;
    ck->spec_text = spec_text;
    memcpy(ck->spec_hash, spec_hash, sizeof spec_hash);
    ck->params = T.model.params;
    ck->state = T.model.state;
    ck->has_optim = 1;
    ck->opt_kind = T.opt.kind;
    ck->beta1 = T.opt.beta1; ck->beta2 = T.opt.beta2; ck->eps = T.opt.eps;
    ck->moments = T.opt.moments;
    ck->norm_mean = mean;
    ck->norm_std = std;
    ck->cells = cells;
    int *ids = malloc((size_t)cells * sizeof *ids);
    if (!ids) { rc_errf(err, errlen, "out of memory"); goto out; }
    for (int c = 0; c < cells; c++) ids[c] = dopt.cells ? dopt.cells[c] : c;
    ck->cell_ids = ids;
    ck->cell_pos = T.model.cell_pos;
    if (centers) {
        ck->centers = malloc((size_t)cells * 2 * sizeof(int));
        if (!ck->centers) { rc_errf(err, errlen, "out of memory"); goto out; }
        memcpy(ck->centers, centers, (size_t)cells * 2 * sizeof(int));
    }
    snprintf(ck->data_path, sizeof ck->data_path, "%s", o->data_path);
    if (o->data_path[0] != '/') {
        char cwd[512];
        if (getcwd(cwd, sizeof cwd)) snprintf(ck->data_path, sizeof ck->data_path, "%s/%s", cwd, o->data_path);
    }
    snprintf(ck->rate_key, sizeof ck->rate_key, "%s", T.info->rate_key);
    ck->crop_row0 = T.info->crop_row0;
    ck->crop_col0 = T.info->crop_col0;
    ck->fp = fp;
    snprintf(ck->backend, sizeof ck->backend, "%s", o->backend ? o->backend : "c");
    snprintf(ck->device, sizeof ck->device, "%s", o->device ? o->device : "cpu");
    ck->threads = o->threads;
    ck->best_val_loss = INFINITY;
    ck->plateau_best = INFINITY;

    if (have_prev) {
        if (prev.ir->params_total != ir->params_total || prev.ir->state_total != ir->state_total ||
            prev.cells != cells) {
            rc_errf(err, errlen, "%s: layout differs from the spec for %d cells", ckpath, cells);
            goto out;
        }
        memcpy(T.model.params, prev.params, (size_t)ir->params_total * sizeof(float));
        if (ir->state_total) memcpy(T.model.state, prev.state, (size_t)ir->state_total * sizeof(float));
        memcpy(T.opt.moments, prev.moments, (size_t)(2 * ir->params_total) * sizeof(float));
        T.opt.step = prev.opt_step;
        T.opt.lr = prev.lr;
        if (prev.cell_pos && T.model.cell_pos)
            memcpy(T.model.cell_pos, prev.cell_pos, (size_t)cells * 2 * sizeof(int));
        ck->epoch = prev.epoch;
        ck->rng_step = prev.rng_step;
        ck->best_epoch = prev.best_epoch;
        ck->best_val_loss = prev.best_val_loss;
        ck->early_bad = prev.early_bad;
        ck->plateau_best = prev.plateau_best;
        ck->plateau_bad = prev.plateau_bad;
        for (int r = 0; r < prev.n_hist; r++) {
            double row[RC_HIST_COLS];
            for (int c = 0; c < RC_HIST_COLS; c++) row[c] = prev.hist[c][r];
            if (rc_ckpt_hist_append(ck, row) < 0) { rc_errf(err, errlen, "out of memory"); goto out; }
        }
    }

    /* backend and buffers */
    if (rc_backend_open(ir, o->backend, o->device, &T.be, err, errlen) < 0) goto out;
    if (rc_dev_init(&T.dev, T.be, ir, B, 1, err, errlen) < 0) goto out;
    if (rc_dev_set_model(&T.dev, T.model.params, T.model.state, T.model.cell_pos, err, errlen) < 0 ||
        rc_dev_set_optim(&T.dev, &T.opt, err, errlen) < 0)
        goto out;
    int64_t nv = T.info->n_val > 0 ? T.info->n_val : 1;
    T.val_pred = malloc((size_t)nv * cells * sizeof(float));
    T.val_y = malloc((size_t)nv * cells * sizeof(float));
    T.pred = malloc((size_t)B * cells * sizeof(float));
    T.dy = malloc((size_t)B * cells * sizeof(float));
    if (!T.val_pred || !T.val_y || !T.pred || !T.dy) { rc_errf(err, errlen, "out of memory for buffers"); goto out; }

    const rc_train *tr = &ir->train;
    double t_run = rc_clock_s();
    int stop = tr->early_patience > 0 && ck->early_bad >= tr->early_patience;
    for (int e = (int)ck->epoch; e < tr->epochs && !stop; e++) {
        double t0 = rc_clock_s();
        rc_iter *it = NULL;
        if (rc_data_train_iter(T.data, B, data_seed(tr->seed), e, &it, err, errlen) < 0) goto out;
        rc_train_progress p;
        memset(&p, 0, sizeof p);
        p.epoch = e + 1;
        p.epochs = tr->epochs;
        p.batches = rc_iter_batches(it);
        double sum = 0;
        rc_batch b;
        int k;
        while ((k = rc_iter_next(it, &b, err, errlen)) == 1) {
            if (b.B != B) { rc_iter_free(it); rc_errf(err, errlen, "training batch of %d, expected %d", b.B, B); goto out; }
            rc_loss_value lv;
            if (rc_dev_set_frames(&T.dev, b.frames, b.n_frames * (int64_t)ir->in.h * ir->in.w, b.gen, err, errlen) < 0 ||
                rc_dev_train_step(&T.dev, &T.opt, step_seed(tr->seed, ck->rng_step), b.starts, b.y,
                                  T.pred, T.dy, &lv, err, errlen) < 0) {
                rc_iter_free(it);
                goto out;
            }
            ck->rng_step++;
            if (!isfinite(lv.total)) {
                rc_iter_free(it);
                rc_errf(err, errlen, "epoch %d batch %lld: training loss is %g (try a lower --lr)",
                     e + 1, (long long)p.batch + 1, lv.total);
                goto out;
            }
            sum += lv.total;
            p.batch++;
            p.samples += B;
            p.loss = sum / (double)p.batch;
            p.elapsed = rc_clock_s() - t0;
            p.samples_per_s = p.elapsed > 0 ? (double)p.samples / p.elapsed : 0;
            if (o->progress) o->progress(o->progress_ctx, &p);
        }
        rc_iter_free(it);
        if (k < 0) goto out;
        double t_train = rc_clock_s() - t0;
        double val_loss, val_r;
        if (validate(&T, &val_loss, &val_r, err, errlen) < 0) goto out;

        /* bookkeeping: best / early stopping / schedules, all on the validation loss
         * (the training loss when there is no validation split) */
        double watch = isfinite(val_loss) ? val_loss : p.loss;
        ck->epoch = e + 1;
        rc_sched_state ss = {T.opt.lr, ck->best_val_loss, ck->best_epoch, ck->early_bad,
                             ck->plateau_best, ck->plateau_bad};
        int improved;
        stop = rc_sched_epoch_end(tr, &ss, e + 1, watch, &improved);
        T.opt.lr = ss.lr;
        ck->best_val_loss = ss.best;
        ck->best_epoch = ss.best_epoch;
        ck->early_bad = ss.bad;
        ck->plateau_best = ss.plateau_best;
        ck->plateau_bad = ss.plateau_bad;
        double secs = rc_clock_s() - t0;
        double row[RC_HIST_COLS] = {e + 1, p.loss, val_loss, val_r, T.opt.lr, secs,
                                    t_train > 0 ? (double)p.samples / t_train : 0};
        if (rc_ckpt_hist_append(ck, row) < 0) { rc_errf(err, errlen, "out of memory"); goto out; }
        /* best.h5 first: if we die between the two writes, checkpoint.h5 is the previous epoch
         * and a resume redoes this epoch, rewriting best.h5 identically. */
        if (improved && save_ckpt(&T, "best.h5", err, errlen) < 0) goto out;
        if (save_ckpt(&T, "checkpoint.h5", err, errlen) < 0) goto out;
        if (write_log_csv(o->rundir, ck, err, errlen) < 0) goto out;
        p.epoch_done = 1;
        p.train_loss = p.loss;
        p.val_loss = val_loss;
        p.val_r = val_r;
        p.lr = T.opt.lr;
        p.seconds = secs;
        p.samples_per_s = row[RC_HIST_SAMPLES_PER_S];
        p.improved = improved;
        p.stopping = stop;
        if (o->progress) o->progress(o->progress_ctx, &p);
    }
    res->seconds = rc_clock_s() - t_run;
    res->epochs_done = (int)ck->epoch;
    res->best_epoch = ck->best_epoch;
    res->best_val_loss = ck->best_val_loss;
    res->stopped_early = stop;

    if (o->eval_test) {
        /* evaluate exactly what `retinac eval RUNDIR` evaluates: best.h5 read back from disk */
        char bpath[1100];
        snprintf(bpath, sizeof bpath, "%s/best.h5", o->rundir);
        rc_checkpoint best;
        if (rc_ckpt_load(access(bpath, F_OK) == 0 ? bpath : ckpath, &best, err, errlen) < 0) goto out;
        rc_dev_free(&T.dev);       /* release device memory before evaluation allocates its own */
        double *tr_r = malloc((size_t)cells * sizeof *tr_r);
        if (!tr_r) { rc_ckpt_free(&best); rc_errf(err, errlen, "out of memory"); goto out; }
        /* best.h5 may be of an epoch before a resume on another recording (allowed above) */
        rc_rec_check chk;
        memset(&chk, 0, sizeof chk);
        chk.allow_other = o->allow_other_recording;
        chk.known = &ck->fp;
        int erc = rc_eval_checkpoint_chk(&best, o->data_path, o->backend, o->device, &chk,
                                         &res->test, NULL, NULL, tr_r, err, errlen);
        res->truth_mean_r = rc_mean_finite(tr_r, cells);
        res->truth_r = tr_r;
        if (erc == 0) {
            res->has_test = 1;
            erc = write_metrics_json(o->rundir, &best, res, err, errlen);
        } else if (erc == RC_ERR_NO_TEST) {
            erc = 0;               /* a recording without a test split trains fine */
        }
        rc_ckpt_free(&best);
        if (erc < 0) goto out;
    }
    rc = 0;
out:
    free((void *)T.ck.cell_ids);
    free_trainer(&T);
    if (have_prev) rc_ckpt_free(&prev);
    free(spec_text);
    return rc;
}
