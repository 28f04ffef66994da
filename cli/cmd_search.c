/* cmd_search.c — `retinac search SPEC --data FILE -o DIR`: train one run per trial of the spec's
 * search section (search/search.h expands it) into DIR/<trial-name>/, each exactly as
 * `retinac train` would (rc_train_run, best.h5 evaluated on the test split), then write
 * DIR/search.csv and DIR/search.json and print the trials sorted by validation loss.
 * Selection is on the validation loss only; the test metrics are reported, never used to pick.
 * Resumable: a trial whose folder holds search_row.txt (written last, atomically, when the
 * trial ends, ok or failed) is not trained again: a finished one is read back, a failed one is
 * reported with its recorded error (--retry-failed trains it again, as Ray Tune's
 * resume_errored: training is deterministic, so a diverged trial would only diverge again);
 * one with only checkpoint.h5 continues from it. Under mpirun the ranks split the trials by
 * rc_search_schedule (longest first to the least-loaded rank) and rank 0 writes the summary
 * (cli/search_mpi.c); all ranks first agree that
 * they expanded the same trials, so a mismatch fails fast instead of leaving rank 0 waiting.
 * DIR/search_scope.txt pins the cells and response key of every trial in DIR.
 * Each trial runs with its own settings baked into the spec it trains (search section cleared,
 * train = the trial's), so the checkpoint's spec hash is the trial's configuration hash.
 * Exit 0 all trials ok, 1 error or a failed trial, 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "checkpoint.h"
#include "cmd.h"
#include "fsutil.h"
#include "data.h"
#include "errbuf.h"
#include "ir.h"
#include "search.h"
#include "search_mpi.h"
#include "spec.h"
#include "train.h"
#include "train_flags.h"

const char cmd_search_help[] =
    "usage: retinac search SPEC --data FILE -o DIR [options]\n"
    "       mpirun -n K retinac search SPEC --data FILE -o DIR [options]\n"
    "\n"
    "Train one run per trial of SPEC's search section (grid values crossed with random draws,\n"
    "see specs/README.md) into DIR/<trial-name>/ (the files of `retinac train`), then write\n"
    "DIR/search.csv and DIR/search.json (one row per trial: values, best validation loss and its\n"
    "epoch, test mean r and FEVe of best.h5, wall seconds over the trial's runs) and print the\n"
    "trials sorted by validation loss. The best trial is the one with the lowest validation\n"
    "loss: the test set is never used to select.\n"
    "A rerun skips finished trials (DIR/<trial>/search_row.txt) and continues interrupted ones\n"
    "from their checkpoint, so a killed search picks up where it stopped. A failed trial is\n"
    "recorded in its folder with its error; a rerun reports it without training it again.\n"
    "A rerun must use the same --cells and --rate-key (DIR/search_scope.txt records them) and\n"
    "the same recording: a finished trial whose checkpoint was trained on a recording with\n"
    "another fingerprint (cells, frames, content) stops the rerun; so does resuming one.\n"
    "Under mpirun, the trials still to train are dealt longest first (by epochs) to the rank with\n"
    "the least work so far (equal trials: round-robin) and rank 0 writes the summary.\n"
    "\n"
    "Search:\n"
    "  --trials N             random draws (overrides random.trials of the spec)\n"
    "  --dry-run              list the trials and exit\n"
    "  --retry-failed         train the trials an earlier run recorded as failed again\n"
    "  --allow-other-recording  continue and report trials trained on a different recording\n"
    "                         on purpose (warns what differs)\n"
    "  --json                 print the summary as JSON (the content of search.json)\n"
    "Training settings for every trial (defaults from the spec's train section; any train field\n"
    "that is not searched works as a flag, as in retinac train):\n"
    "  --epochs N  --batch N  --seed N  --lr X  --l2 X  --patience N  --schedule ...\n"
    "Run:\n"
    "  --backend c|ref        c: JIT-compiled generated C (default); ref: the reference\n"
    "  --device cpu|cuda      --threads N (OpenMP threads per rank; default: all cores, or under\n"
    "                         mpirun cores / ranks with trials on the node; OMP_NUM_THREADS is obeyed)\n"
    "  --cells LIST           cells to model, e.g. 0,2,5-7 (default all)\n"
    "  --rate-key K           response dataset (default firing_rate_10ms)\n"
    "  --mem-budget MB        data buffer budget per run (default $RETINAC_MEM_BUDGET or 4096)\n"
    "  -q, --quiet            no per-epoch progress\n"
    "\n"
    "Exit status: 0 every trial trained, 1 error or a failed trial, 2 usage error.\n";

typedef struct {
    const char *spec_path, *data, *dir;
    int quiet, json, dry_run, retry_failed;
    int rank;
    rc_train_opts o;
} search_ctx;

typedef struct { const char *name; int rank, quiet; } trial_progress;

static void on_progress(void *vctx, const rc_train_progress *p)
{
    const trial_progress *c = vctx;
    if (c->quiet || !p->epoch_done) return;
    fprintf(stderr, "[%d %s] epoch %d/%d  train_loss %.6g  val_loss %.6g  val_r %.4f  %.1fs%s%s\n",
            c->rank, c->name, p->epoch, p->epochs, p->train_loss, p->val_loss, p->val_r, p->seconds,
            p->improved ? "  *best" : "", p->stopping ? "  (early stop)" : "");
}

static void on_warn(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "retinac search: warning: %s\n", line);
}

/* The spec one trial trains: the model with the trial's settings as its train section and no
 * search section (its hash = the trial's configuration hash; editing the search section of
 * the spec does not invalidate finished or interrupted trials). */
static void trial_spec(const rc_ir *spec, const rc_search_trial *t, rc_ir *out)
{
    *out = *spec;
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
    vsnprintf(r->error, sizeof r->error, fmt, ap);
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
    if (strcmp(done.config_hash, row->config_hash))
        return rc_errf(err, errlen, "%s: %s with other settings (config %.12s, now %.12s): "
                       "rerun with the same settings or use another -o DIR", rundir,
                       done.status == RC_TRIAL_OK ? "finished" : "failed", done.config_hash,
                       row->config_hash);
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

/* Run one unfinished trial into row (row_init'ed). A failure is recorded in the row and in the
 * trial's folder. */
static void run_trial(const search_ctx *c, const rc_ir *spec, const rc_search_trial *t, int n,
                      rc_ir *tspec, rc_search_row *row)
{
    char rundir[1200], err[1024];
    snprintf(rundir, sizeof rundir, "%s/%s", c->dir, t->name);
    row_init(spec, t, tspec, row);
    row->threads = c->o.threads;
    char ck[1300];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", rundir);
    rc_train_opts o = c->o;
    o.rundir = rundir;
    o.resume = access(ck, F_OK) == 0;
    o.eval_test = 1;
    trial_progress tp = {t->name, c->rank, c->quiet};
    o.progress = on_progress;
    o.progress_ctx = &tp;
    if (!c->quiet)
        fprintf(stderr, "[%d %s] trial %d/%d%s\n", c->rank, t->name, t->index + 1, n,
                o.resume ? ": continuing its checkpoint" : "");
    double t0 = rc_clock_s(), earlier = o.resume ? checkpoint_seconds(ck) : 0;
    /* a retried failure's row goes first: if this run is killed, the folder says "continue the
     * checkpoint", not the old error */
    char rowpath[1300];
    snprintf(rowpath, sizeof rowpath, "%s/search_row.txt", rundir);
    if (unlink(rowpath) != 0 && errno != ENOENT) {
        row_fail(row, "%s: %s", rowpath, strerror(errno));
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
    if (rc_search_row_write(rundir, row, err, sizeof err) < 0) {
        record_failure(rundir, row, err);
        return;
    }
    if (!c->quiet)
        fprintf(stderr, "[%d %s] done: val_loss %.6g (epoch %lld), test r %.4f, %.1fs\n", c->rank, t->name,
                row->best_val_loss, (long long)row->best_epoch, row->test_mean_r, row->seconds);
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
 * rerun with other --cells or --rate-key would silently reuse trials fitted to other cells.
 * Written (atomically, by rank 0) when absent; compared when present, on every rank.
 * Returns 0, or -1 with the setting that differs. */
static int check_scope(const search_ctx *c, char *err, size_t errlen)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/search_scope.txt", c->dir);
    size_t cap = 128 + 12 * (size_t)c->o.n_cells, len = 0;
    char *want = malloc(cap);
    if (!want) return rc_errf(err, errlen, "%s: out of memory", path);
    len += (size_t)snprintf(want, cap, "retinac-search-scope 1\nrate_key %.60s\ncells ",
                            c->o.rate_key ? c->o.rate_key : "firing_rate_10ms");
    if (!c->o.cells) len += (size_t)snprintf(want + len, cap - len, "all");
    for (int i = 0; c->o.cells && i < c->o.n_cells; i++)
        len += (size_t)snprintf(want + len, cap - len, "%s%d", i ? "," : "", c->o.cells[i]);
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
                     "same --cells and --rate-key or use another -o DIR", path, c->dir, what, hv, wv);
    }
    free(have);
    free(want);
    return rc;
}

/* Finished trials are reported, not trained again: each must have been trained on this
 * recording (the fingerprint in its checkpoint; interrupted ones are checked when they resume,
 * by rc_train_run). A difference stops the search unless --allow-other-recording (a warning).
 * Trials whose checkpoints predate fingerprints are not checked. */
static int check_finished_recording(const search_ctx *c, const rc_ir *spec, const rc_search_trial *t,
                                    const rc_search_row *rows, int n, int say, char *err, size_t errlen)
{
    int any = 0;
    for (int i = 0; i < n && !any; i++) any = rows[i].status == RC_TRIAL_OK;
    if (!any) return 0;
    rc_data_opts dopt;
    rc_data_opts_default(&dopt);
    dopt.rate_key = c->o.rate_key;
    dopt.cells = c->o.cells;
    dopt.n_cells = c->o.n_cells;
    dopt.history = spec->history;
    dopt.val_fraction = -1;
    dopt.mem_budget = c->o.mem_budget;
    rc_data *d = NULL;
    rc_data_fp fp;
    if (rc_data_open(c->data, &dopt, &d, err, errlen) < 0) return -1;
    int rc = rc_data_fp_compute(d, &fp, err, errlen);
    rc_data_close(d);
    if (rc < 0) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (rows[i].status != RC_TRIAL_OK) continue;
        char rundir[1200], path[1300], what[600];
        snprintf(rundir, sizeof rundir, "%s/%s", c->dir, t[i].name);
        rc_ckpt_resolve(rundir, path, sizeof path);
        rc_checkpoint ck;
        if (rc_ckpt_load(path, &ck, err, errlen) < 0) return -1;
        if (ck.fp.version && rc_data_fp_diff(&ck.fp, &fp, what, sizeof what) > 0) {
            if (!c->o.allow_other_recording)
                rc = rc_errf(err, errlen, "%s is not the recording finished trial %s was trained on "
                             "(%s, %s): %s; pass --allow-other-recording to report it anyway, or "
                             "use another -o DIR", c->data, t[i].name, path, ck.data_path, what);
            else if (say)
                fprintf(stderr, "retinac search: warning: %s is not the recording finished trial %s "
                        "was trained on (%s): %s; reporting it anyway (--allow-other-recording)\n",
                        c->data, t[i].name, path, what);
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
static uint64_t search_fingerprint(const search_ctx *c, const rc_search_trial *t, const rc_search_row *rows, int n)
{
    uint64_t h = 1469598103934665603ull;
    size_t row_size = sizeof(rc_search_row);
    h = fnv(h, &row_size, sizeof row_size);
    h = fnv(h, &n, sizeof n);
    h = fnv(h, c->dir, strlen(c->dir) + 1);
    h = fnv(h, c->data, strlen(c->data) + 1);
    for (int i = 0; i < n; i++) {
        h = fnv(h, t[i].name, strlen(t[i].name) + 1);
        h = fnv(h, rows[i].config_hash, sizeof rows[i].config_hash);
    }
    return h;
}

static void print_dry_run(const rc_search *s, const rc_search_trial *t, int n, int json)
{
    if (json) {
        rc_json j;
        rc_json_init(&j, stdout, 1);
        rc_json_begin_array(&j);
        for (int i = 0; i < n; i++) {
            rc_json_begin_object(&j);
            rc_json_key(&j, "index"); rc_json_int(&j, i);
            rc_json_key(&j, "name"); rc_json_string(&j, t[i].name);
            rc_json_key(&j, "values");
            rc_json_begin_object(&j);
            for (int d = 0; d < s->n_dims; d++) { rc_json_key(&j, s->dims[d].key); rc_json_number(&j, t[i].values[d]); }
            rc_json_end_object(&j);
            rc_json_end_object(&j);
        }
        rc_json_end_array(&j);
        rc_json_finish(&j);
        return;
    }
    printf("%-6s %-40s", "trial", "name");
    for (int d = 0; d < s->n_dims; d++) printf(" %12s", s->dims[d].key);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%-6d %-40s", i, t[i].name);
        for (int d = 0; d < s->n_dims; d++) {
            char b[40];
            rc_search_fmt_num(t[i].values[d], b, sizeof b);
            printf(" %12s", b);
        }
        printf("\n");
    }
    printf("%d trials\n", n);
}

static void print_table(const rc_ir *spec, const rc_search_trial *t, const rc_search_row *rows, int n,
                        const char *dir)
{
    const rc_search *s = &spec->search;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return;
    int best = rc_search_rank(rows, n, order);
    int now = 0, earlier = 0, failed = 0, failed_earlier = 0;
    for (int i = 0; i < n; i++) {
        int ok = rows[i].status == RC_TRIAL_OK;
        now += ok && !rows[i].skipped;
        earlier += ok && rows[i].skipped;
        failed += !ok;
        failed_earlier += !ok && rows[i].skipped;
    }
    printf("search %s: %d trials (%d trained now, %d done earlier, %d failed", spec->name, n, now, earlier, failed);
    if (failed_earlier) printf(", %d of them in an earlier run: --retry-failed trains them again", failed_earlier);
    printf(") in %s\n", dir);
    printf("%-4s %-32s", "#", "trial");
    for (int d = 0; d < s->n_dims; d++) printf(" %10.10s", s->dims[d].key);
    printf(" %12s %5s %7s %7s %8s\n", "val_loss", "epoch", "test_r", "feve", "seconds");
    for (int k = 0; k < n; k++) {
        const rc_search_row *r = &rows[order[k]];
        char rk[16];
        snprintf(rk, sizeof rk, "%d", k + 1);
        printf("%-4s %-32s", r->status == RC_TRIAL_OK ? rk : "-", t[order[k]].name);
        for (int d = 0; d < s->n_dims; d++) {
            char b[40];
            rc_search_fmt_num(t[order[k]].values[d], b, sizeof b);
            printf(" %10s", b);
        }
        if (r->status == RC_TRIAL_OK)
            printf(" %12.6g %5lld %7.4f %7.4f %8.1f\n", r->best_val_loss, (long long)r->best_epoch,
                   r->test_mean_r, r->test_mean_feve, r->seconds);
        else
            printf("  failed: %s\n", r->error);
    }
    if (best >= 0)
        printf("best: %s (lowest validation loss %.6g; the test set is not used to select)\n",
               t[best].name, rows[best].best_val_loss);
    else
        printf("best: none (no trial finished)\n");
    free(order);
}

int cmd_search(int argc, char **argv)
{
    search_ctx c;
    memset(&c, 0, sizeof c);
    rc_train_opts_default(&c.o);
    c.o.warn = on_warn;
    c.rank = cli_mpi_env_rank();
    int say = c.rank == 0;              /* usage errors once, not once per rank */
    int trials = 0, threads_set = 0, *cells = NULL, n_cells = 0;
    const char *ov_key[64], *ov_val[64];
    int n_ov = 0;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define USAGE(...) do { if (say) { fprintf(stderr, "retinac search: " __VA_ARGS__); fputc('\n', stderr); } free(cells); return 2; } while (0)
#define NEED() do { if (!next) USAGE("%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "--data")) { NEED(); c.data = next; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); c.dir = next; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) c.quiet = 1;
        else if (!strcmp(a, "--json")) c.json = 1;
        else if (!strcmp(a, "--dry-run")) c.dry_run = 1;
        else if (!strcmp(a, "--retry-failed")) c.retry_failed = 1;
        else if (!strcmp(a, "--allow-other-recording")) c.o.allow_other_recording = 1;
        else if (!strcmp(a, "--backend")) { NEED(); c.o.backend = next; }
        else if (!strcmp(a, "--device")) { NEED(); c.o.device = next; }
        else if (!strcmp(a, "--rate-key")) { NEED(); c.o.rate_key = next; }
        else if (!strcmp(a, "--trials") || !strcmp(a, "--threads")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            int is_trials = !strcmp(a, "--trials"), hi = is_trials ? RC_SEARCH_MAX_TRIALS : 4096;
            if (*end || v < 1 || v > hi) USAGE("%s '%s': expected 1..%d", a, next, hi);
            if (is_trials) trials = (int)v;
            else { c.o.threads = (int)v; threads_set = 1; }
        } else if (!strcmp(a, "--cells")) {
            NEED();
            free(cells);
            cells = NULL;
            if (cli_parse_cells(next, &cells, &n_cells, err, sizeof err) < 0) USAGE("%s", err);
        } else if (!strcmp(a, "--mem-budget")) {
            NEED();
            char *end;
            double mb = strtod(next, &end);
            if (*end || !(mb > 0) || mb > 1e9) USAGE("--mem-budget '%s': expected MB > 0", next);
            c.o.mem_budget = (size_t)(mb * 1048576.0);
        } else if (a[0] == '-' && a[1] == '-' && cli_train_flag(a)) {
            NEED();
            if (n_ov == 64) USAGE("too many options");
            ov_key[n_ov] = cli_train_flag(a)->name;
            ov_val[n_ov++] = next;
        } else if (a[0] == '-' && a[1]) USAGE("unknown option %s (see retinac help search)", a);
        else if (!c.spec_path) c.spec_path = a;
        else USAGE("unexpected argument '%s'", a);
#undef NEED
    }
    if (!c.spec_path || (!c.dry_run && (!c.data || !c.dir))) {
        if (say) fputs("usage: retinac search SPEC --data FILE -o DIR [options] (retinac help search)\n", stderr);
        free(cells);
        return 2;
    }

    int status = 1;
    rc_ir *spec = malloc(sizeof *spec), *tspec = malloc(sizeof *tspec);
    rc_search_trial *t = NULL;
    rc_search_row *rows = NULL;
    int *owner = NULL;
    cli_mpi mpi = {0, 0, 1, 1, NULL};
    int n = 0;
    if (!spec || !tspec) { fprintf(stderr, "retinac search: out of memory\n"); goto out; }
    if (rc_spec_load_any(c.spec_path, spec, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: %s\n", err);
        goto out;
    }
    rc_search s = spec->search;
    if (s.n_dims == 0) {
        if (say) fprintf(stderr, "retinac search: %s: no search section (add search = { grid = {...} }; "
                         "see specs/README.md)\n", c.spec_path);
        goto out;
    }
    int n_random = 0;
    for (int d = 0; d < s.n_dims; d++) n_random += s.dims[d].is_random;
    if (trials) {
        if (!n_random) {
            if (say) fprintf(stderr, "retinac search: --trials: %s's search has no random ranges\n", c.spec_path);
            status = 2;
            goto out;
        }
        s.trials = trials;
    }
    rc_train base = spec->train;
    int nf;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &nf);
    for (int k = 0; k < n_ov; k++) {
        for (int d = 0; d < s.n_dims; d++)
            if (!strcmp(s.dims[d].key, ov_key[k])) {
                if (say) fprintf(stderr, "retinac search: --%s: '%s' is searched by %s (%s.%s)\n", ov_key[k],
                                 ov_key[k], c.spec_path, s.dims[d].is_random ? "random" : "grid", ov_key[k]);
                status = 2;
                goto out;
            }
        for (int q = 0; q < nf; q++)
            if (!strcmp(tf[q].name, ov_key[k]) && cli_set_train_field(&tf[q], &base, ov_val[k], err, sizeof err) < 0) {
                if (say) fprintf(stderr, "retinac search: %s\n", err);
                status = 2;
                goto out;
            }
    }
    if (rc_search_expand(&s, &base, &t, &n, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: %s: %s\n", c.spec_path, err);
        goto out;
    }
    spec->search = s;                   /* summaries report the search as run (--trials) */
    if (c.dry_run) {
        if (say) print_dry_run(&s, t, n, c.json);
        status = 0;
        goto out;
    }
    if (access(c.data, R_OK) != 0) {
        if (say) fprintf(stderr, "retinac search: --data %s: %s\n", c.data, strerror(errno));
        goto out;
    }
    {   /* the summaries never replace an input; each trial's run checks its own files */
        static const char *const summaries[] = {"search.csv", "search.json", "search_scope.txt", NULL};
        const char *inputs[2] = {c.spec_path, c.data};
        if (rc_dir_not_input(c.dir, summaries, inputs, 2, err, sizeof err) < 0) {
            if (say) fprintf(stderr, "retinac search: -o %s\n", err);
            goto out;
        }
    }
    if (rc_make_dirs(c.dir, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: -o: %s\n", err);
        goto out;
    }
    c.o.cells = cells;
    c.o.n_cells = n_cells;
    if (check_scope(&c, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: %s\n", err);
        goto out;
    }
    {   /* data sanity once, before any trial (each trial's run repeats it without the warnings) */
        rc_train_opts co = c.o;
        co.data_path = c.data;
        co.eval_test = 1;
        if (!say) co.warn = NULL;
        if (rc_train_check_data(spec, &base, &co, err, sizeof err) < 0) {
            if (say) fprintf(stderr, "retinac search: %s\n", err);
            goto out;
        }
        c.o.data_checked = 1;
    }
    rows = calloc((size_t)n, sizeof *rows);
    if (!rows) { fprintf(stderr, "retinac search: out of memory\n"); goto out; }
    /* finished trials first, on every rank alike: a folder finished with other settings stops
     * the search before anything is trained or any summary is overwritten */
    for (int i = 0; i < n; i++)
        if (read_done(c.dir, spec, &t[i], tspec, c.retry_failed, &rows[i], err, sizeof err) < 0) {
            if (say) fprintf(stderr, "retinac search: %s\n", err);
            goto out;
        }
    if (check_finished_recording(&c, spec, t, rows, n, say, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: %s\n", err);
        goto out;
    }

    if (cli_mpi_init(&mpi, &argc, &argv, err, sizeof err) < 0) {
        fprintf(stderr, "retinac search: rank %d: %s\n", c.rank, err);
        cli_mpi_abort(&mpi, 1);
        goto out;
    }
    c.rank = mpi.rank;
    int agree = cli_mpi_agree(&mpi, search_fingerprint(&c, t, rows, n), err, sizeof err);
    if (agree == -2) {
        fprintf(stderr, "retinac search: rank %d: %s\n", mpi.rank, err);
        cli_mpi_abort(&mpi, 1);
        goto out;
    }
    if (agree < 0) {
        if (mpi.rank == 0) fprintf(stderr, "retinac search: %s\n", err);
        goto out;               /* every rank got the same verdict: all leave, none waits */
    }
    owner = malloc((size_t)n * sizeof *owner);
    if (!owner) {
        fprintf(stderr, "retinac search: rank %d: out of memory\n", mpi.rank);
        cli_mpi_abort(&mpi, 1);
        goto out;
    }
    rc_search_schedule(t, rows, n, mpi.size, owner);
    int n_work = 0;
    for (int i = 0; i < n; i++) n_work += !rows[i].skipped;
    if (!threads_set && !getenv("OMP_NUM_THREADS")) c.o.threads = cli_mpi_default_threads(&mpi, n_work);
    c.o.data_path = c.data;
    if (!c.quiet && mpi.rank == 0) {
        char th[64] = "the OpenMP default";
        if (c.o.threads) snprintf(th, sizeof th, "%d", c.o.threads);
        else if (getenv("OMP_NUM_THREADS")) snprintf(th, sizeof th, "OMP_NUM_THREADS=%.40s", getenv("OMP_NUM_THREADS"));
        fprintf(stderr, "search %s: %d trials on %d rank%s (backend %s, threads per rank: %s) -> %s\n",
                spec->name, n, mpi.size, mpi.size == 1 ? "" : "s", c.o.backend, th, c.dir);
    }

    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (owner[i] != mpi.rank) continue;
        if (rows[i].skipped && rows[i].status != RC_TRIAL_OK) {
            failed = 1;         /* reported even with -q: the summary will show it failed */
            fprintf(stderr, "retinac search: trial %s failed in an earlier run (not retried; "
                    "--retry-failed trains it again): %s\n", t[i].name, rows[i].error);
            continue;
        }
        if (rows[i].skipped) {
            if (!c.quiet) fprintf(stderr, "[%d %s] done earlier: val_loss %.6g (epoch %lld)\n", c.rank,
                                  t[i].name, rows[i].best_val_loss, (long long)rows[i].best_epoch);
            continue;
        }
        run_trial(&c, spec, &t[i], n, tspec, &rows[i]);
        if (rows[i].status != RC_TRIAL_OK) {
            failed = 1;
            fprintf(stderr, "retinac search: trial %s: %s\n", t[i].name, rows[i].error);
        }
    }
    if (cli_mpi_gather_rows(&mpi, rows, owner, n, err, sizeof err) < 0) {
        fprintf(stderr, "retinac search: rank %d: %s\n", mpi.rank, err);
        cli_mpi_abort(&mpi, 1);
        goto out;
    }
    if (mpi.rank == 0) {
        for (int i = 0; i < n; i++) failed |= rows[i].status != RC_TRIAL_OK;
        if (rc_search_write_summary(c.dir, spec, c.data, t, rows, n, err, sizeof err) < 0) {
            fprintf(stderr, "retinac search: %s\n", err);
            failed = 1;
        }
        if (c.json) {
            char *js = rc_search_summary_json(spec, c.data, t, rows, n);
            if (js) fputs(js, stdout);
            else { fprintf(stderr, "retinac search: out of memory\n"); failed = 1; }
            free(js);
        } else {
            print_table(spec, t, rows, n, c.dir);
        }
    }
    /* rank 0 holds every row and carries the search's status; another rank's failed trials
     * are in rank 0's summary, so it exits 0 once they are delivered: a non-zero exit there
     * makes mpirun abort the job, which could kill rank 0 before it writes the summary */
    status = failed && mpi.rank == 0 ? 1 : 0;
out:
    if (cli_mpi_finalize(&mpi, err, sizeof err) < 0) {
        fprintf(stderr, "retinac search: rank %d: %s\n", mpi.rank, err);
        status = 1;
    }
    /* the table, --json or --dry-run listing went to stdout: a lost write (full disk, closed
     * pipe) is a failure, not a silent success */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "retinac search: writing the output to stdout failed: %s\n", strerror(errno));
        status = 1;
    }
    free(rows);
    free(owner);
    free(t);
    free(spec);
    free(tspec);
    free(cells);
    return status;
#undef USAGE
}
