/* train.c — the training loop, validation, schedules, early stopping and run folders
 * (semantics in train.h; the evaluation of checkpoints is eval.c).
 *
 * Invariants:
 *   - everything that decides the next epoch (params, BN state, Adam moments and step, lr,
 *     schedule and early-stopping counters, the global step counter that seeds noise) is in
 *     checkpoint.h5 after every epoch, so resume == uninterrupted run, bit for bit;
 *   - checkpoint.h5 / best.h5 / log.csv / metrics.json are only ever replaced by rename;
 *   - the backend sees host pointers for "ref"/"c"; for "cuda" the device mirror (rc_dev,
 *     train_dev.c) owns device copies and the host keeps the authoritative copy only at
 *     epoch boundaries;
 *   - rc_train_run is a sequence of steps (below), each of which fills the trainer for the next
 *     and returns 0 or -1; the trainer is freed once, whichever step failed.
 */
#include "clock.h"
#include "errbuf.h"
#include "fsutil.h"
#include "train.h"
#include "train_calib.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend_c.h"
#include "data.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "train_dev.h"


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

/* One run's state, filled by the steps of rc_train_run in order and freed by free_trainer. */
typedef struct {
    const rc_train_opts *o;
    const rc_ir *spec;         /* as loaded (its hash identifies the model) */
    const rc_train *train;     /* the effective settings */
    rc_train_result *res;
    char ckpath[1100];         /* RUNDIR/checkpoint.h5 */
    char spec_hash[65];
    char *spec_text;           /* rc_ir_format(spec), owned */
    rc_checkpoint prev;        /* the checkpoint resumed from (have_prev) */
    int have_prev;
    rc_data_opts dopt;         /* how the recording was opened */
    rc_data_fp fp;             /* its fingerprint */
    double mean, std;          /* stimulus normalization */
    const int *centers;        /* (cells, 2) RF centers used, or NULL (not owned) */
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
    int warned_log_rate;       /* poisson_log: the negative eval-output warning was given */
} trainer;

/* Validation in eval mode: val_loss (data term mean + per-sample L1) and mean Pearson r. The
 * outputs are eval-mode ones, so loss = "poisson_log" is scored in its rate form
 * (rc_loss_eval_kind, loss.h); a negative eval output there means the model has no eval-only
 * exp at its end (its eval outputs are log-rates): warned once, the loss is then NaN and the
 * epoch-end rules watch the training loss. */
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
        rc_loss_value lv = rc_loss_compute(rc_loss_eval_kind(ir->train.loss), ir->train.l1_activity,
                                           RC_L1_MEAN, b.B, cells, t->val_pred + n * cells, b.y, NULL);
        sum += lv.total * b.B;
        if (ir->train.loss == RC_LOSS_POISSON_LOG && !t->warned_log_rate && t->o->warn) {
            const float *q = t->val_pred + n * cells;
            int64_t m = (int64_t)b.B * cells, i = 0;
            while (i < m && !(q[i] < 0)) i++;
            if (i < m) {
                t->warned_log_rate = 1;
                t->o->warn(t->o->warn_ctx,
                           "loss \"poisson_log\": the model's eval-mode outputs are negative, so they are "
                           "log-rates, not rates: end the model with exponential { train_off = true } "
                           "(exp in eval only, the reference's Exponential(train_off=True)); the "
                           "validation loss is undefined (NaN) and the training loss is watched instead");
            }
        }
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
    free((void *)t->ck.cell_ids);
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
    if (t->have_prev) rc_ckpt_free(&t->prev);
    free(t->spec_text);
}

void rc_train_spec_data_opts(rc_data_opts *dopt, const rc_ir *spec, const rc_train *train)
{
    dopt->history = spec->history;
    dopt->crop = spec->crop;
    if (spec->crop > 0) dopt->crop_cell = 0;   /* around the first selected cell's RF center */
    dopt->val_fraction = train->val_fraction > 0 ? train->val_fraction : -1;
    dopt->val_mode = train->val_split == RC_VAL_RANDOM ? RC_VAL_RANDOM : RC_VAL_BLOCKS;
    dopt->val_seed = train->seed;
}

/* The data options a run uses (prev: the checkpoint it resumes, or NULL). */
static void run_data_opts(rc_data_opts *dopt, const rc_ir *spec, const rc_train *train,
                          const rc_train_opts *o, const rc_checkpoint *prev)
{
    rc_data_opts_default(dopt);
    dopt->rate_key = prev ? (prev->rate_key[0] ? prev->rate_key : NULL) : o->rate_key;
    dopt->cells = prev ? prev->cell_ids : o->cells;
    dopt->n_cells = prev ? prev->cells : o->n_cells;
    rc_train_spec_data_opts(dopt, spec, train);
    if (spec->crop > 0 && prev) {   /* the crop the resumed run used */
        dopt->crop_cell = -1;
        dopt->crop_row = prev->crop_row0 + spec->crop / 2;
        dopt->crop_col = prev->crop_col0 + spec->crop / 2;
    }
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
    int rc = rc_eval_check_data(d, run_check_what(train, o), o->warn, o->warn_ctx, err, errlen);
    rc_data_close(d);
    return rc;
}

/* ------------------------------------------------------------------ rc_train_run, step by step
 *
 * rc_train_run is the sequence prepare_run -> load_previous -> open_data -> build_model ->
 * fill_checkpoint -> restore_previous -> open_backend -> run_epochs -> evaluate_best; each step
 * returns 0 or -1 with the message in err, and finish_run frees whatever the steps made. */

/* The run folder: usable (not one of the inputs), created, stale temporaries removed. */
static int prepare_run(const rc_train_opts *o, char *err, size_t errlen)
{
    if (!o->rundir || !o->data_path) return rc_errf(err, errlen, "train: a data file and a run folder are needed");
    static const char *const run_files[] = {"checkpoint.h5", "best.h5", "log.csv", "metrics.json", NULL};
    if (rc_dir_not_input(o->rundir, run_files, &o->data_path, 1, err, errlen) < 0) return -1;
    if (rc_make_dirs(o->rundir, err, errlen) < 0) return -1;
    rc_ckpt_clean_stale(o->rundir);
    if (o->threads > 0) omp_set_num_threads(o->threads);
    return 0;
}

/* The spec's identity, and on --resume the checkpoint to continue (same spec, with optimizer
 * state); a fresh run refuses a folder that already holds a run. */
static int load_previous(trainer *T, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    snprintf(T->ckpath, sizeof T->ckpath, "%s/checkpoint.h5", o->rundir);
    rc_ir_hash(T->spec, T->spec_hash);
    T->spec_text = rc_ir_format(T->spec);
    if (!T->spec_text) return rc_errf(err, errlen, "out of memory");
    if (o->resume) {
        if (rc_ckpt_load(T->ckpath, &T->prev, err, errlen) < 0) return -1;
        T->have_prev = 1;
        if (strcmp(T->prev.spec_hash, T->spec_hash))
            return rc_errf(err, errlen, "%s: the spec changed since this run started (hash %.12s, checkpoint %.12s)",
                           T->ckpath, T->spec_hash, T->prev.spec_hash);
        if (!T->prev.has_optim) return rc_errf(err, errlen, "%s: no optimizer state to resume from", T->ckpath);
    } else if (access(T->ckpath, F_OK) == 0) {
        return rc_errf(err, errlen, "%s: a run already lives here; use --resume or another folder", T->ckpath);
    }
    return 0;
}

/* The recording: frames of the spec's size (a crop of a frame of another size would train on a
 * meaningless window), on resume the recording the run was trained on, its fingerprint, data
 * sanity before any work (its frame pass is the one the statistics come from), one batch. */
static int open_data(trainer *T, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    const rc_ir *spec = T->spec;
    run_data_opts(&T->dopt, spec, T->train, o, T->have_prev ? &T->prev : NULL);
    if (rc_data_open(o->data_path, &T->dopt, &T->data, err, errlen) < 0) return -1;
    T->info = rc_data_get_info(T->data);
    if (T->info->full_h != spec->height || T->info->full_w != spec->width)
        return rc_errf(err, errlen, "%s: frames are %dx%d, the spec '%s' takes %dx%d frames%s", o->data_path,
                       T->info->full_h, T->info->full_w, spec->name, spec->height, spec->width,
                       spec->crop > 0 ? " (and crops them)" : "");
    memset(&T->fp, 0, sizeof T->fp);
    if (T->have_prev) {
        rc_rec_check chk;
        memset(&chk, 0, sizeof chk);
        chk.allow_other = o->allow_other_recording;
        if (rc_ckpt_check_recording(&T->prev, T->data, o->data_path, &chk, err, errlen) < 0) return -1;
        if (chk.warning[0] && o->warn) o->warn(o->warn_ctx, chk.warning);
        T->fp = chk.got;
    }
    if (!T->fp.version && rc_data_fp_compute(T->data, &T->fp, err, errlen) < 0) return -1;
    if (rc_eval_check_data(T->data, run_check_what(T->train, o), o->data_checked ? NULL : o->warn,
                           o->warn_ctx, err, errlen) < 0)
        return -1;
    if (T->info->n_train < T->train->batch)
        return rc_errf(err, errlen, "%s: %lld training windows, fewer than one batch of %d", o->data_path,
                       (long long)T->info->n_train, T->train->batch);
    return 0;
}

/* The effective model (spec + settings, inferred for the recording's cells and frame size),
 * normalization (a resumed run keeps its own), RF centers, initial parameters, optimizer. */
static int build_model(trainer *T, char *err, size_t errlen)
{
    const rc_ir *spec = T->spec;
    T->ir = malloc(sizeof *T->ir);
    if (!T->ir) return rc_errf(err, errlen, "out of memory");
    *T->ir = *spec;
    T->ir->train = *T->train;
    if (rc_ir_infer(T->ir, T->info->n_cells, spec->name, err, errlen) < 0) return -1;
    if (T->info->h != T->ir->in.h || T->info->w != T->ir->in.w)
        return rc_errf(err, errlen, "%s: frames are %dx%d (after any crop), the spec '%s' expects %dx%d",
                       T->o->data_path, T->info->h, T->info->w, spec->name, T->ir->in.h, T->ir->in.w);
    const rc_ir *ir = T->ir;
    if (T->have_prev) {
        if (rc_data_set_stats(T->data, T->prev.norm_mean, T->prev.norm_std, err, errlen) < 0) return -1;
        T->mean = T->prev.norm_mean;
        T->std = T->prev.norm_std;
    } else if (rc_data_stats(T->data, &T->mean, &T->std, err, errlen) < 0) return -1;
    /* RF centers: the recording's; else (a gcconv read out at the data's centers) a resumed
     * run's, or estimated from spike-triggered averages */
    T->centers = T->info->centers;
    int gl = rc_gc_layer(ir);
    if (!T->centers && gl >= 0 && ir->layers[gl].position == RC_POS_DATA) {
        if (T->have_prev && T->prev.centers) T->centers = T->prev.centers;
        else {
            T->est_centers = malloc((size_t)ir->cells * 2 * sizeof(int));
            if (!T->est_centers) return rc_errf(err, errlen, "out of memory");
            if (rc_data_sta_centers(T->data, T->est_centers, err, errlen) < 0) return -1;
            T->centers = T->est_centers;
            T->res->centers_estimated = 1;
        }
    }
    if (rc_model_init(&T->model, ir, ir->train.seed, T->centers, err, errlen) < 0) return -1;
    /* a fresh model's output on the data's scale (train_calib.h); a resumed one keeps its own */
    if (!T->have_prev && ir->train.output_init == RC_OUTPUT_INIT_MEAN_RATE) {
        double *mean = malloc((size_t)ir->cells * sizeof *mean);
        char why[256];
        if (!mean) return rc_errf(err, errlen, "out of memory");
        int set = rc_calib_mean_rates(T->data, ir->train.batch, data_seed(ir->train.seed), ir->cells, mean,
                                      err, errlen) < 0 ? -1
                  : rc_calib_output(ir, T->model.params, mean, why, sizeof why);
        free(mean);
        if (set < 0) return -1;
        if (set == 0 && T->o->warn) {
            char line[400];
            snprintf(line, sizeof line, "output_init mean_rate: %s; the output keeps PyTorch's init "
                     "(output_init = \"torch\" says so and silences this)", why);
            T->o->warn(T->o->warn_ctx, line);
        }
    }
    if (rc_optim_init(&T->opt, ir->train.optimizer, ir->params_total, ir->train.lr, ir->train.l2,
                      err, errlen) < 0)
        return -1;
    double mult = ir->train.output_lr;
    if (mult > 0 && mult != 1) {
        int64_t lo, hi;
        if (rc_calib_output_params(ir, &lo, &hi) == 1) {
            T->opt.fast_lo = lo;
            T->opt.fast_hi = hi;
            T->opt.fast_mult = mult;
        }
    }
    return 0;
}

/* The checkpoint skeleton: pointers into the trainer's model and optimizer, the recording's
 * identity (absolute path, rate key, crop, fingerprint, cells) and the run's settings. */
static int fill_checkpoint(trainer *T, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    const int cells = T->ir->cells;
    rc_checkpoint *ck = &T->ck;
    ck->ir = T->ir;
    ck->spec_text = T->spec_text;
    memcpy(ck->spec_hash, T->spec_hash, sizeof T->spec_hash);
    ck->params = T->model.params;
    ck->state = T->model.state;
    ck->has_optim = 1;
    ck->opt_kind = T->opt.kind;
    ck->beta1 = T->opt.beta1; ck->beta2 = T->opt.beta2; ck->eps = T->opt.eps;
    ck->moments = T->opt.moments;
    ck->norm_mean = T->mean;
    ck->norm_std = T->std;
    ck->cells = cells;
    int *ids = malloc((size_t)cells * sizeof *ids);
    if (!ids) return rc_errf(err, errlen, "out of memory");
    for (int c = 0; c < cells; c++) ids[c] = T->dopt.cells ? T->dopt.cells[c] : c;
    ck->cell_ids = ids;
    ck->cell_pos = T->model.cell_pos;
    if (T->centers) {
        ck->centers = malloc((size_t)cells * 2 * sizeof(int));
        if (!ck->centers) return rc_errf(err, errlen, "out of memory");
        memcpy(ck->centers, T->centers, (size_t)cells * 2 * sizeof(int));
    }
    snprintf(ck->data_path, sizeof ck->data_path, "%s", o->data_path);
    if (o->data_path[0] != '/') {
        char cwd[512];
        if (getcwd(cwd, sizeof cwd)) snprintf(ck->data_path, sizeof ck->data_path, "%s/%s", cwd, o->data_path);
    }
    snprintf(ck->rate_key, sizeof ck->rate_key, "%s", T->info->rate_key);
    ck->crop_row0 = T->info->crop_row0;
    ck->crop_col0 = T->info->crop_col0;
    ck->fp = T->fp;
    snprintf(ck->backend, sizeof ck->backend, "%s", o->backend ? o->backend : "c");
    snprintf(ck->device, sizeof ck->device, "%s", o->device ? o->device : "cpu");
    ck->threads = o->threads;
    ck->best_val_loss = INFINITY;
    ck->plateau_best = INFINITY;
    return 0;
}

/* On resume: parameters, BN state, Adam moments and step, lr, the epoch-end rules' counters and
 * the history from the checkpoint (its layout must be the spec's for these cells). */
static int restore_previous(trainer *T, char *err, size_t errlen)
{
    if (!T->have_prev) return 0;
    const rc_checkpoint *prev = &T->prev;
    const rc_ir *ir = T->ir;
    const int cells = ir->cells;
    rc_checkpoint *ck = &T->ck;
    if (prev->ir->params_total != ir->params_total || prev->ir->state_total != ir->state_total ||
        prev->cells != cells)
        return rc_errf(err, errlen, "%s: layout differs from the spec for %d cells", T->ckpath, cells);
    memcpy(T->model.params, prev->params, (size_t)ir->params_total * sizeof(float));
    if (ir->state_total) memcpy(T->model.state, prev->state, (size_t)ir->state_total * sizeof(float));
    memcpy(T->opt.moments, prev->moments, (size_t)(2 * ir->params_total) * sizeof(float));
    T->opt.step = prev->opt_step;
    T->opt.lr = prev->lr;
    if (prev->cell_pos && T->model.cell_pos)
        memcpy(T->model.cell_pos, prev->cell_pos, (size_t)cells * 2 * sizeof(int));
    ck->epoch = prev->epoch;
    ck->rng_step = prev->rng_step;
    ck->best_epoch = prev->best_epoch;
    ck->best_val_loss = prev->best_val_loss;
    ck->early_bad = prev->early_bad;
    ck->plateau_best = prev->plateau_best;
    ck->plateau_bad = prev->plateau_bad;
    for (int r = 0; r < prev->n_hist; r++) {
        double row[RC_HIST_COLS];
        for (int c = 0; c < RC_HIST_COLS; c++) row[c] = prev->hist[c][r];
        if (rc_ckpt_hist_append(ck, row) < 0) return rc_errf(err, errlen, "out of memory");
    }
    return 0;
}

/* The backend the options name (rc_backend_open), the model on it, and the host buffers. */
static int open_backend(trainer *T, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    const rc_ir *ir = T->ir;
    const int cells = ir->cells, B = ir->train.batch;
    /* the C backend's frame spectra count against the data budget: chunks hold frames and
     * spectra together (sized by the model, so batches do not depend on the backend) */
    if (rc_data_set_frame_extra(T->data, rc_c_stream_bytes_per_frame(ir), err, errlen) < 0) return -1;
    if (rc_backend_open(ir, o->backend ? o->backend : "c", o->device, &T->be, err, errlen) < 0) return -1;
    T->be->stream_budget = T->info->mem_budget;
    if (rc_dev_init(&T->dev, T->be, ir, B, 1, err, errlen) < 0) return -1;
    if (rc_dev_set_model(&T->dev, T->model.params, T->model.state, T->model.cell_pos, err, errlen) < 0 ||
        rc_dev_set_optim(&T->dev, &T->opt, err, errlen) < 0)
        return -1;
    int64_t nv = T->info->n_val > 0 ? T->info->n_val : 1;
    T->val_pred = malloc((size_t)nv * cells * sizeof(float));
    T->val_y = malloc((size_t)nv * cells * sizeof(float));
    T->pred = malloc((size_t)B * cells * sizeof(float));
    T->dy = malloc((size_t)B * cells * sizeof(float));
    if (!T->val_pred || !T->val_y || !T->pred || !T->dy) return rc_errf(err, errlen, "out of memory for buffers");
    return 0;
}

/* The optimizer steps of 0-based epoch e, one per full batch; p counts them (and is reported
 * after every batch). */
static int train_epoch(trainer *T, int e, double t0, rc_train_progress *p, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    const rc_ir *ir = T->ir;
    const rc_train *tr = &ir->train;
    const int B = tr->batch;
    rc_iter *it = NULL;
    if (rc_data_train_iter(T->data, B, data_seed(tr->seed), e, &it, err, errlen) < 0) return -1;
    memset(p, 0, sizeof *p);
    p->epoch = e + 1;
    p->epochs = tr->epochs;
    p->batches = rc_iter_batches(it);
    double sum = 0;
    rc_batch b;
    int k, rc = -1;
    while ((k = rc_iter_next(it, &b, err, errlen)) == 1) {
        if (b.B != B) { rc_errf(err, errlen, "training batch of %d, expected %d", b.B, B); goto out; }
        rc_loss_value lv;
        if (rc_dev_set_frames(&T->dev, b.frames, b.n_frames * (int64_t)ir->in.h * ir->in.w, b.gen, err, errlen) < 0 ||
            rc_dev_train_step(&T->dev, &T->opt, step_seed(tr->seed, T->ck.rng_step), b.starts, b.y,
                              T->pred, T->dy, &lv, err, errlen) < 0)
            goto out;
        T->ck.rng_step++;
        if (!isfinite(lv.total)) {
            rc_errf(err, errlen, "epoch %d batch %lld: training loss is %g (try a lower --lr)",
                    e + 1, (long long)p->batch + 1, lv.total);
            goto out;
        }
        sum += lv.total;
        p->batch++;
        p->samples += B;
        p->loss = sum / (double)p->batch;
        p->elapsed = rc_clock_s() - t0;
        p->samples_per_s = p->elapsed > 0 ? (double)p->samples / p->elapsed : 0;
        if (o->progress) o->progress(o->progress_ctx, p);
    }
    rc = k < 0 ? -1 : 0;
out:
    rc_iter_free(it);
    return rc;
}

/* After epoch e: validation, the epoch-end rules on the validation loss (the training loss when
 * there is no validation split), history, best.h5 / checkpoint.h5 / log.csv, the epoch's
 * report. *stop: early stopping fires. */
static int end_epoch(trainer *T, int e, double t0, double t_train, rc_train_progress *p, int *stop,
                     char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    rc_checkpoint *ck = &T->ck;
    double val_loss, val_r;
    /* batch-norm statistics for the weights about to be validated and saved */
    if (T->ir->train.bn_stats == RC_BN_STATS_PRECISE &&
        rc_calib_precise_bn(&T->dev, T->data, T->ir, T->ir->train.seed, e, T->pred, err, errlen) < 0)
        return -1;
    if (validate(T, &val_loss, &val_r, err, errlen) < 0) return -1;
    double watch = isfinite(val_loss) ? val_loss : p->loss;
    ck->epoch = e + 1;
    rc_sched_state ss = {T->opt.lr, ck->best_val_loss, ck->best_epoch, ck->early_bad,
                         ck->plateau_best, ck->plateau_bad};
    int improved;
    *stop = rc_sched_epoch_end(&T->ir->train, &ss, e + 1, watch, &improved);
    T->opt.lr = ss.lr;
    ck->best_val_loss = ss.best;
    ck->best_epoch = ss.best_epoch;
    ck->early_bad = ss.bad;
    ck->plateau_best = ss.plateau_best;
    ck->plateau_bad = ss.plateau_bad;
    double secs = rc_clock_s() - t0;
    double row[RC_HIST_COLS] = {e + 1, p->loss, val_loss, val_r, T->opt.lr, secs,
                                t_train > 0 ? (double)p->samples / t_train : 0};
    if (rc_ckpt_hist_append(ck, row) < 0) return rc_errf(err, errlen, "out of memory");
    /* best.h5 first: if we die between the two writes, checkpoint.h5 is the previous epoch
     * and a resume redoes this epoch, rewriting best.h5 identically. */
    if (improved && save_ckpt(T, "best.h5", err, errlen) < 0) return -1;
    if (save_ckpt(T, "checkpoint.h5", err, errlen) < 0) return -1;
    if (write_log_csv(o->rundir, ck, err, errlen) < 0) return -1;
    p->epoch_done = 1;
    p->train_loss = p->loss;
    p->val_loss = val_loss;
    p->val_r = val_r;
    p->lr = T->opt.lr;
    p->seconds = secs;
    p->samples_per_s = row[RC_HIST_SAMPLES_PER_S];
    p->improved = improved;
    p->stopping = *stop;
    if (o->progress) o->progress(o->progress_ctx, p);
    return 0;
}

/* Epochs from the checkpoint's count to the planned total, unless early stopping fires (also
 * when it had fired before a resume); the run's summary into res. */
static int run_epochs(trainer *T, char *err, size_t errlen)
{
    const rc_train *tr = &T->ir->train;
    rc_checkpoint *ck = &T->ck;
    double t_run = rc_clock_s();
    int stop = tr->early_patience > 0 && ck->early_bad >= tr->early_patience;
    for (int e = (int)ck->epoch; e < tr->epochs && !stop; e++) {
        double t0 = rc_clock_s();
        rc_train_progress p;
        if (train_epoch(T, e, t0, &p, err, errlen) < 0) return -1;
        double t_train = rc_clock_s() - t0;
        if (end_epoch(T, e, t0, t_train, &p, &stop, err, errlen) < 0) return -1;
    }
    rc_train_result *res = T->res;
    res->seconds = rc_clock_s() - t_run;
    res->epochs_done = (int)ck->epoch;
    res->best_epoch = ck->best_epoch;
    res->best_val_loss = ck->best_val_loss;
    res->stopped_early = stop;
    return 0;
}

/* With o->eval_test: evaluate exactly what `retinac eval RUNDIR` evaluates, best.h5 read back
 * from disk (checkpoint.h5 when no epoch improved), and write metrics.json; a recording
 * without a test split trains fine (no test metrics). */
static int evaluate_best(trainer *T, char *err, size_t errlen)
{
    const rc_train_opts *o = T->o;
    rc_train_result *res = T->res;
    const int cells = T->ir->cells;
    if (!o->eval_test) return 0;
    char bpath[1100];
    snprintf(bpath, sizeof bpath, "%s/best.h5", o->rundir);
    rc_checkpoint best;
    if (rc_ckpt_load(access(bpath, F_OK) == 0 ? bpath : T->ckpath, &best, err, errlen) < 0) return -1;
    rc_dev_free(&T->dev);       /* release device memory before evaluation allocates its own */
    double *tr_r = malloc((size_t)cells * sizeof *tr_r);
    if (!tr_r) { rc_ckpt_free(&best); return rc_errf(err, errlen, "out of memory"); }
    /* best.h5 may be of an epoch before a resume on another recording (allowed above) */
    rc_rec_check chk;
    memset(&chk, 0, sizeof chk);
    chk.allow_other = o->allow_other_recording;
    chk.known = &T->ck.fp;
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
    return erc < 0 ? -1 : 0;
}

int rc_train_run(const rc_ir *spec, const rc_train *train, const rc_train_opts *o,
                 rc_train_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->truth_mean_r = NAN;
    if (prepare_run(o, err, errlen) < 0) return -1;
    trainer T;
    memset(&T, 0, sizeof T);
    T.o = o;
    T.spec = spec;
    T.train = train;
    T.res = res;
    int rc = -1;
    if (load_previous(&T, err, errlen) == 0 && open_data(&T, err, errlen) == 0 &&
        build_model(&T, err, errlen) == 0 && fill_checkpoint(&T, err, errlen) == 0 &&
        restore_previous(&T, err, errlen) == 0 && open_backend(&T, err, errlen) == 0 &&
        run_epochs(&T, err, errlen) == 0 && evaluate_best(&T, err, errlen) == 0)
        rc = 0;
    free_trainer(&T);
    return rc;
}
