/* search_run.c — running a search (see search_run.h): the local checks every rank makes alike
 * (output folder, scope file, recording, rows of ended trials), then, with the communicator
 * started, the agreement of the ranks, the schedule, this rank's trials, the gathering of the
 * rows and rank 0's summary files.
 * Invariants: every rank computes the same trials, rows read back and owners from the same
 * files, so they agree without talking until the fingerprint check; a trial's row file is
 * written last and atomically, so its presence marks the trial ended; a failure of one trial
 * is recorded in its row and folder and never stops the others. Nothing is printed here and no
 * MPI is called: events go to the caller, collectives to comm's callbacks.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clock.h"
#include "data.h"
#include "errbuf.h"
#include "fsutil.h"
#include "search_run.h"

/* One search in progress on this rank. */
typedef struct {
    const rc_search_opts *o;
    const rc_search_comm *comm;     /* NULL: one process alone */
    rc_train_opts to;               /* o->train with the per-rank settings (threads, data) */
    int rank, size;
} run_ctx;

static int comm_rank(const run_ctx *c)
{
    return c->comm && c->comm->rank ? c->comm->rank(c->comm->ctx) : 0;
}

static int comm_size(const run_ctx *c)
{
    return c->comm && c->comm->size ? c->comm->size(c->comm->ctx) : 1;
}

static void emit(const run_ctx *c, rc_search_event *ev)
{
    if (!c->o->event) return;
    ev->rank = c->rank;
    ev->size = c->size;
    ev->n = c->o->n;
    ev->threads = c->to.threads;
    c->o->event(c->o->event_ctx, ev);
}

/* The spec one trial trains: the model with the trial's settings as its train section and no
 * search section (its hash = the trial's configuration hash; editing the search section of
 * the spec does not invalidate finished or interrupted trials). */
static void trial_spec(const rc_ir *spec, const rc_search_trial *t, rc_ir *out)
{
    *out = t->model ? *t->model : *spec;
    out->train = t->train;
    memset(&out->search, 0, sizeof out->search);
    out->search.seed = 1;               /* rc_ir_defaults' value */
}

/* Mark a row failed with a one-line message (cut to the row's fixed size). */
__attribute__((format(printf, 2, 3)))
static void row_fail(rc_search_row *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->status = RC_TRIAL_FAILED;
}

/* A fresh row for trial t, with its configuration hash. */
static void row_init(const rc_ir *spec, const rc_search_trial *t, rc_ir *tspec, rc_search_row *row)
{
    memset(row, 0, sizeof *row);
    row->index = t->index;
    row->best_val_loss = row->test_mean_r = row->test_mean_feve = NAN;
    trial_spec(spec, t, tspec);
    rc_ir_hash(tspec, row->config_hash);
}

/* Read an ended trial's row from DIR/<name>/search_row.txt: 1 ended (row filled, marked
 * skipped; status OK, or FAILED with its recorded error), 0 to be trained (no row, or a failed
 * one with retry), -1 ended with other settings or unreadable (message in err). */
static int read_done(const char *dir, const rc_ir *spec, const rc_search_trial *t, rc_ir *tspec,
                     int retry_failed, rc_search_row *row, char *err, size_t errlen)
{
    char rundir[1200];
    snprintf(rundir, sizeof rundir, "%s/%s", dir, t->name);
    row_init(spec, t, tspec, row);
    rc_search_row done;
    int rr = rc_search_row_read(rundir, &done, err, errlen);
    if (rr != 0) return rr > 0 ? 0 : -1;
    /* a failure recorded for other settings (a spec fixed since) is tried again; a finished
     * trial with other settings would mix two configurations in one folder */
    if (strcmp(done.config_hash, row->config_hash) && done.status != RC_TRIAL_OK) return 0;
    if (strcmp(done.config_hash, row->config_hash))
        return rc_errf(err, errlen, "%s: finished with other settings (config %.12s, now %.12s): "
                       "rerun with the same settings or use another -o DIR", rundir,
                       done.config_hash, row->config_hash);
    if (done.status != RC_TRIAL_OK && retry_failed) return 0;
    done.index = t->index;      /* a grown grid may renumber a trial; its name and settings hold */
    *row = done;
    return 1;
}

/* Seconds of the epochs a trial's checkpoint recorded (its earlier, interrupted runs); 0 if it
 * cannot be read (training then says why). */
static double checkpoint_seconds(const char *path)
{
    rc_checkpoint ck;
    char err[512];
    memset(&ck, 0, sizeof ck);
    if (rc_ckpt_load(path, &ck, err, sizeof err) < 0) return 0;
    double s = 0;
    for (int r = 0; r < ck.n_hist; r++)
        if (isfinite(ck.hist[RC_HIST_SECONDS][r]) && ck.hist[RC_HIST_SECONDS][r] > 0) s += ck.hist[RC_HIST_SECONDS][r];
    rc_ckpt_free(&ck);
    return s;
}

/* A trial failed: the row carries the error and is recorded in its folder (atomically), so a
 * rerun reports it; a failure to record it is added to the message. */
static void record_failure(const char *rundir, rc_search_row *row, const char *why)
{
    char err[1024];
    row_fail(row, "%s", why);
    if (rc_search_row_write(rundir, row, err, sizeof err) < 0)
        row_fail(row, "%s (not recorded: %s)", why, err);
}

typedef struct { const run_ctx *c; const rc_search_trial *t; } trial_progress;

static void on_progress(void *vctx, const rc_train_progress *p)
{
    const trial_progress *tp = vctx;
    rc_search_event ev = {.kind = RC_SEARCH_EV_PROGRESS, .trial = tp->t, .progress = p};
    emit(tp->c, &ev);
}

/* Run one unfinished trial into row. A failure is recorded in the row and in the trial's
 * folder. */
static void run_trial(const run_ctx *c, const rc_search_trial *t, rc_ir *tspec, rc_search_row *row)
{
    char rundir[1200], err[1024];
    snprintf(rundir, sizeof rundir, "%s/%s", c->o->dir, t->name);
    row_init(c->o->spec, t, tspec, row);
    row->threads = c->to.threads;
    char ck[1300];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", rundir);
    rc_train_opts o = c->to;
    o.rundir = rundir;
    o.resume = access(ck, F_OK) == 0;
    o.eval_test = 1;
    trial_progress tp = {c, t};
    o.progress = on_progress;
    o.progress_ctx = &tp;
    if (t->model && t->model != c->o->spec) o.data_checked = 0;   /* its own model: check it */
    rc_search_event ev = {.kind = RC_SEARCH_EV_TRIAL_BEGIN, .trial = t, .resume = o.resume};
    emit(c, &ev);
    if (t->model_error) {       /* its spec did not load with its parameters: nothing to train */
        char mk[1024];
        if (rc_make_dirs(rundir, mk, sizeof mk) < 0) row_fail(row, "%s (not recorded: %s)", t->model_error, mk);
        else record_failure(rundir, row, t->model_error);
        return;
    }
    double t0 = rc_clock_s(), earlier = o.resume ? checkpoint_seconds(ck) : 0;
    /* a retried failure's row goes first: if this run is killed, the folder says "continue the
     * checkpoint", not the old error */
    char rowpath[1300];
    snprintf(rowpath, sizeof rowpath, "%s/search_row.txt", rundir);
    if (unlink(rowpath) != 0 && errno != ENOENT) {
        row_fail(row, "%s: %s", rowpath, strerror(errno));
        return;
    }
    /* the trial's concrete model, so that it can be rerun alone: retinac train DIR/T/spec.ir
     * (its rc_ir_hash is the row's config_hash) */
    char irpath[1300];
    snprintf(irpath, sizeof irpath, "%s/spec.ir", rundir);
    char *irtext = rc_ir_format(tspec);
    if (!irtext) { record_failure(rundir, row, "out of memory"); return; }
    int wr = rc_make_dirs(rundir, err, sizeof err) < 0 ? -1
             : rc_write_file_atomic(irpath, irtext, strlen(irtext), err, sizeof err);
    free(irtext);
    if (wr < 0) {
        row_fail(row, "%s", err);
        return;
    }
    rc_train_result res;
    if (rc_train_run(tspec, &t->train, &o, &res, err, sizeof err) < 0) {
        row->seconds = earlier + (rc_clock_s() - t0);
        record_failure(rundir, row, err);
        return;
    }
    row->seconds = earlier + (rc_clock_s() - t0);
    row->epochs_done = res.epochs_done;
    row->best_epoch = res.best_epoch;
    row->best_val_loss = res.best_val_loss;
    if (res.has_test) {
        row->test_mean_r = res.test.mean_r;
        row->test_mean_feve = res.test.mean_feve;
    }
    rc_train_result_free(&res);
    row->status = RC_TRIAL_OK;
    if (rc_search_row_write(rundir, row, err, sizeof err) < 0) record_failure(rundir, row, err);
}

/* The value of line "KEY value" in text, cut to n bytes ("..." then); "?" if absent. */
static void scope_value(const char *text, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            size_t l = strcspn(p + kl + 1, "\n");
            if (l < n) snprintf(out, n, "%.*s", (int)l, p + kl + 1);
            else snprintf(out, n, "%.*s...", (int)(n - 4), p + kl + 1);
            return;
        }
    snprintf(out, n, "?");
}

/* DIR/search_scope.txt: the cells and response key every trial in DIR models. The trials'
 * configuration hashes cannot carry them (they are not in the model's spec), so without this a
 * rerun with other cells or rate key would silently reuse trials fitted to other cells.
 * Written (atomically, by rank 0) when absent; compared when present, on every rank.
 * Returns 0, or -1 with the setting that differs. */
static int check_scope(const run_ctx *c, char *err, size_t errlen)
{
    const rc_train_opts *to = &c->to;
    char path[1100];
    snprintf(path, sizeof path, "%s/search_scope.txt", c->o->dir);
    size_t cap = 128 + 12 * (size_t)to->n_cells, len = 0;
    char *want = malloc(cap);
    if (!want) return rc_errf(err, errlen, "%s: out of memory", path);
    len += (size_t)snprintf(want, cap, "retinac-search-scope 1\nrate_key %.60s\ncells ",
                            to->rate_key ? to->rate_key : "firing_rate_10ms");
    if (!to->cells) len += (size_t)snprintf(want + len, cap - len, "all");
    for (int i = 0; to->cells && i < to->n_cells; i++)
        len += (size_t)snprintf(want + len, cap - len, "%s%d", i ? "," : "", to->cells[i]);
    len += (size_t)snprintf(want + len, cap - len, "\n");
    FILE *f = fopen(path, "rb");
    if (!f) {
        /* written by rank 0 alone: ranks on other nodes could share a pid, hence a temp name */
        int rc = errno != ENOENT ? rc_errf(err, errlen, "%s: %s", path, strerror(errno))
                 : c->rank == 0 ? rc_write_file_atomic(path, want, len, err, errlen) : 0;
        free(want);
        return rc;
    }
    /* the whole file (a longer cell list must be reported whole, not cut at our length) */
    struct stat sb;
    size_t size = fstat(fileno(f), &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size : 0;
    char *have = size < (64u << 20) ? malloc(size + 1) : NULL;
    size_t got = have ? fread(have, 1, size, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    int rc = 0;
    if (!have || rerr) rc = rc_errf(err, errlen, "%s: %s", path, have ? "read error" : "out of memory");
    else if (got != len || memcmp(have, want, len)) {
        have[got] = 0;
        char hv[96], wv[96];
        const char *what = "cells";
        scope_value(have, "rate_key", hv, sizeof hv);
        scope_value(want, "rate_key", wv, sizeof wv);
        if (strcmp(hv, wv)) what = "responses (--rate-key)";
        else {
            scope_value(have, "cells", hv, sizeof hv);
            scope_value(want, "cells", wv, sizeof wv);
        }
        rc = rc_errf(err, errlen, "%s: the trials in %s model other %s (%s, now %s): rerun with the "
                     "same --cells and --rate-key or use another -o DIR", path, c->o->dir, what, hv, wv);
    }
    free(have);
    free(want);
    return rc;
}

/* The warning of a finished trial trained on another recording (allow_other_recording). */
static void warn_other_recording(const rc_train_opts *to, const char *data, const char *trial,
                                 const char *path, const char *what)
{
    static const char fmt[] = "%s is not the recording finished trial %s was trained on (%s): %s; "
                              "reporting it anyway (--allow-other-recording)";
    int len = snprintf(NULL, 0, fmt, data, trial, path, what);
    char *line = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!line) return;
    snprintf(line, (size_t)len + 1, fmt, data, trial, path, what);
    to->warn(to->warn_ctx, line);
    free(line);
}

/* Finished trials are reported, not trained again: each must have been trained on this
 * recording (the fingerprint in its checkpoint; interrupted ones are checked when they resume,
 * by rc_train_run). A difference stops the search unless allow_other_recording (a warning, on
 * rank 0). Trials whose checkpoints predate fingerprints are not checked. */
static int check_finished_recording(const run_ctx *c, const rc_search_row *rows, char *err,
                                    size_t errlen)
{
    const rc_search_opts *so = c->o;
    const rc_train_opts *to = &c->to;
    int any = 0;
    for (int i = 0; i < so->n && !any; i++) any = rows[i].status == RC_TRIAL_OK;
    if (!any) return 0;
    rc_data_opts dopt;
    rc_data_opts_default(&dopt);
    dopt.rate_key = to->rate_key;
    dopt.cells = to->cells;
    dopt.n_cells = to->n_cells;
    dopt.history = so->spec->history;
    dopt.val_fraction = -1;
    dopt.mem_budget = to->mem_budget;
    rc_data *d = NULL;
    rc_data_fp fp;
    if (rc_data_open(so->data, &dopt, &d, err, errlen) < 0) return -1;
    int rc = rc_data_fp_compute(d, &fp, err, errlen);
    rc_data_close(d);
    if (rc < 0) return -1;
    for (int i = 0; i < so->n && rc == 0; i++) {
        if (rows[i].status != RC_TRIAL_OK) continue;
        char rundir[1200], path[1300], what[600];
        snprintf(rundir, sizeof rundir, "%s/%s", so->dir, so->trials[i].name);
        rc_ckpt_resolve(rundir, path, sizeof path);
        rc_checkpoint ck;
        if (rc_ckpt_load(path, &ck, err, errlen) < 0) return -1;
        if (ck.fp.version && rc_data_fp_diff(&ck.fp, &fp, what, sizeof what) > 0) {
            if (!to->allow_other_recording)
                rc = rc_errf(err, errlen, "%s is not the recording finished trial %s was trained on "
                             "(%s, %s): %s; pass --allow-other-recording to report it anyway, or "
                             "use another -o DIR", so->data, so->trials[i].name, path, ck.data_path, what);
            else if (c->rank == 0 && to->warn)
                warn_other_recording(to, so->data, so->trials[i].name, path, what);
        }
        rc_ckpt_free(&ck);
    }
    return rc;
}

/* FNV-1a 64 over bytes, chained from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* What every rank must agree on before any trial runs: the row layout (the same binary), the
 * output folder, the data, and each trial's name and configuration hash. */
static uint64_t search_fingerprint(const rc_search_opts *o, const rc_search_row *rows)
{
    uint64_t h = 1469598103934665603ull;
    size_t row_size = sizeof(rc_search_row);
    int n = o->n;
    h = fnv(h, &row_size, sizeof row_size);
    h = fnv(h, &n, sizeof n);
    h = fnv(h, o->dir, strlen(o->dir) + 1);
    h = fnv(h, o->data, strlen(o->data) + 1);
    for (int i = 0; i < n; i++) {
        h = fnv(h, o->trials[i].name, strlen(o->trials[i].name) + 1);
        h = fnv(h, rows[i].config_hash, sizeof rows[i].config_hash);
    }
    return h;
}

/* Every rank expanded the same search: the fingerprint compared with one max-reduction (max of
 * {f, ~f} gives {max f, ~min f}: the ranks agree iff max == min), so every rank gets the same
 * verdict and all stop together on a mismatch (else rank 0 could wait forever for rows a rank
 * with fewer trials never sends). 0; -1 on a mismatch (every rank); RC_SEARCH_ABORT when the
 * reduction itself failed (possibly on this rank only). */
static int agree(const run_ctx *c, uint64_t fingerprint, char *err, size_t errlen)
{
    if (c->size == 1 || !c->comm->allreduce_max_u64) return 0;
    uint64_t in[2] = {fingerprint, ~fingerprint}, out[2];
    if (c->comm->allreduce_max_u64(c->comm->ctx, in, out, 2, err, errlen) < 0) return RC_SEARCH_ABORT;
    if (out[0] != ~out[1])
        return rc_errf(err, errlen, "the %d ranks expanded different searches (another spec, flags, "
                       "-o DIR or retinac build on some rank): every rank must run the same command",
                       c->size);
    return 0;
}

/* Rank 0 holds every row after this. 0, or RC_SEARCH_ABORT with a message. */
static int gather(const run_ctx *c, rc_search_row *rows, const int *owner, char *err, size_t errlen)
{
    int n = c->o->n;
    if (c->size == 1 || !c->comm->gather_rows) return 0;
    if (c->comm->gather_rows(c->comm->ctx, rows, owner, n, err, errlen) < 0) return RC_SEARCH_ABORT;
    if (c->rank != 0) return 0;
    int bad = -1;
    for (int i = 0; i < n; i++)
        if (owner[i] != 0 && rows[i].index != i) bad = i;
    if (bad >= 0) {
        rc_errf(err, errlen, "rank %d sent the row of trial %d where trial %d was expected",
                owner[bad], rows[bad].index, bad);
        return RC_SEARCH_ABORT;
    }
    return 0;
}

int rc_search_default_threads(int node_size, const int *node_ranks, int n_trials)
{
    if (node_size <= 1) return 0;
    int busy = 0;                                    /* ranks on this node with a trial */
    for (int i = 0; i < node_size; i++) busy += !node_ranks || node_ranks[i] < n_trials;
    if (busy < 1) busy = 1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = omp_get_num_procs();                  /* cores in this rank's affinity mask */
    int share = online > 0 ? (int)(online / busy) : 1;
    int t = mine < share ? mine : share;
    return t < 1 ? 1 : t;
}

void rc_search_opts_default(rc_search_opts *o)
{
    memset(o, 0, sizeof *o);
    rc_train_opts_default(&o->train);
}

void rc_search_result_free(rc_search_result *res)
{
    if (!res) return;
    free(res->rows);
    res->rows = NULL;
    res->n = 0;
}

/* The checks every rank makes alike before the communicator starts; rows[] read back. */
static int prepare(run_ctx *c, rc_search_row *rows, rc_ir *tspec, char *err, size_t errlen)
{
    const rc_search_opts *o = c->o;
    /* the summaries never replace an input; each trial's run checks its own files */
    static const char *const summaries[] = {"search.csv", "search.json", "search_scope.txt", NULL};
    const char *inputs[2] = {o->spec_path, o->data};
    if (rc_dir_not_input(o->dir, summaries, inputs, 2, err, errlen) < 0) return -1;
    if (rc_make_dirs(o->dir, err, errlen) < 0) return -1;
    if (check_scope(c, err, errlen) < 0) return -1;
    /* data sanity once, before any trial (each trial's run repeats it without the warnings) */
    rc_train_opts co = c->to;
    co.data_path = o->data;
    co.eval_test = 1;
    if (c->rank != 0) co.warn = NULL;
    if (rc_train_check_data(o->spec, o->base, &co, err, errlen) < 0) return -1;
    c->to.data_checked = 1;
    /* finished trials first, on every rank alike: a folder finished with other settings stops
     * the search before anything is trained or any summary is overwritten */
    for (int i = 0; i < o->n; i++)
        if (read_done(o->dir, o->spec, &o->trials[i], tspec, o->retry_failed, &rows[i], err, errlen) < 0)
            return -1;
    return check_finished_recording(c, rows, err, errlen);
}

int rc_search_run(const rc_search_opts *o, const rc_search_comm *comm, rc_search_result *res,
                  char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!o->spec || !o->base || !o->trials || o->n < 1 || !o->data || !o->dir)
        return rc_errf(err, errlen, "search: spec, base settings, trials, data and output folder are needed");
    run_ctx c = {.o = o, .comm = comm, .to = o->train, .size = 1};
    c.rank = comm_rank(&c);
    rc_ir *tspec = malloc(sizeof *tspec);
    rc_search_row *rows = calloc((size_t)o->n, sizeof *rows);
    int *owner = NULL, rc = -1;
    if (!tspec || !rows) { rc = rc_errf(err, errlen, "out of memory"); goto out; }
    if (prepare(&c, rows, tspec, err, errlen) < 0) goto out;

    if (comm && comm->start && comm->start(comm->ctx, err, errlen) < 0) { rc = RC_SEARCH_ABORT; goto out; }
    c.rank = comm_rank(&c);
    c.size = comm_size(&c);
    rc = agree(&c, search_fingerprint(o, rows), err, errlen);
    if (rc < 0) goto out;
    owner = malloc((size_t)o->n * sizeof *owner);
    if (!owner) { rc = RC_SEARCH_ABORT; rc_errf(err, errlen, "out of memory"); goto out; }
    rc_search_schedule(o->trials, rows, o->n, c.size, owner);
    int n_work = 0;
    for (int i = 0; i < o->n; i++) n_work += !rows[i].skipped;
    if (!o->train.threads && !getenv("OMP_NUM_THREADS")) {
        const int *node = NULL;
        int node_size = comm && comm->node_ranks ? comm->node_ranks(comm->ctx, &node) : 1;
        c.to.threads = rc_search_default_threads(node_size, node, n_work);
    }
    c.to.data_path = o->data;
    rc_search_event ev = {.kind = RC_SEARCH_EV_START};
    emit(&c, &ev);

    for (int i = 0; i < o->n; i++) {
        if (owner[i] != c.rank) continue;
        rc_search_event te = {.trial = &o->trials[i], .row = &rows[i]};
        if (rows[i].skipped) {
            if (rows[i].status != RC_TRIAL_OK) res->failed = 1;
            te.kind = rows[i].status == RC_TRIAL_OK ? RC_SEARCH_EV_DONE_EARLIER : RC_SEARCH_EV_FAILED_EARLIER;
            emit(&c, &te);
            continue;
        }
        run_trial(&c, &o->trials[i], tspec, &rows[i]);
        te.kind = rows[i].status == RC_TRIAL_OK ? RC_SEARCH_EV_TRIAL_OK : RC_SEARCH_EV_TRIAL_FAILED;
        res->failed |= rows[i].status != RC_TRIAL_OK;
        emit(&c, &te);
    }
    rc = gather(&c, rows, owner, err, errlen);
    if (rc < 0) goto out;
    if (c.rank == 0) {
        for (int i = 0; i < o->n; i++) res->failed |= rows[i].status != RC_TRIAL_OK;
        if (!o->no_summary && rc_search_write_summary(o->dir, o->spec, o->data, o->trials, rows, o->n, res->summary_err,
                                    sizeof res->summary_err) < 0) {
            if (!res->summary_err[0]) snprintf(res->summary_err, sizeof res->summary_err, "summary files not written");
            res->failed = 1;
        }
    }
    res->rows = rows;
    res->n = o->n;
    res->threads = c.to.threads;
    rows = NULL;
    rc = 0;
out:
    free(rows);
    free(owner);
    free(tspec);
    return rc;
}
