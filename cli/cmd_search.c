/* cmd_search.c — `retinac search SPEC --data FILE -o DIR`: parse the arguments, load and expand
 * the spec's search section (search/search.h), list it (--dry-run) or run it with
 * rc_search_run (search/search_run.h: one training run per trial into DIR/<trial-name>/,
 * resumed where an earlier run stopped, failures recorded, DIR/search.csv and DIR/search.json
 * written), then print the trials sorted by validation loss. Selection is on the validation
 * loss only; the test metrics are reported, never used to pick.
 * Under mpirun the communicator is cli/search_mpi.c's (MPI); otherwise a singleton. Progress
 * goes to stderr from the search's events, the table (or --json) to stdout on rank 0.
 * Exit 0 all trials ok, 1 error or a failed trial, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "fsutil.h"
#include "ir.h"
#include "json.h"
#include "search.h"
#include "search_mpi.h"
#include "search_run.h"
#include "search_ui.h"
#include "trial_models.h"
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
    "  --param NAME=VALUE     a parameter the spec declares with params {...}, for every trial\n"
    "                         (repeatable; not one the search ranges over)\n"
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
            for (int d = 0; d < s->n_dims; d++) {
                char b[RC_PARAM_STR_MAX + 16];
                rc_json_key(&j, s->dims[d].key);
                rc_search_fmt_value(&s->dims[d], t[i].values[d], b, sizeof b);
                if (s->dims[d].is_string) rc_json_string(&j, b);
                else rc_json_number(&j, t[i].values[d]);
            }
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
            char b[RC_PARAM_STR_MAX + 16];
            rc_search_fmt_value(&s->dims[d], t[i].values[d], b, sizeof b);
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
            char b[RC_PARAM_STR_MAX + 16];
            rc_search_fmt_value(&s->dims[d], t[order[k]].values[d], b, sizeof b);
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

/* The command line, parsed. */
typedef struct {
    const char *spec_path, *data, *dir;
    int quiet, json, dry_run, retry_failed;
    rc_train_opts o;
} search_args;

int cmd_search(int argc, char **argv)
{
    search_args c;
    memset(&c, 0, sizeof c);
    rc_train_opts_default(&c.o);
    c.o.warn = cli_search_on_warn;
    int say = cli_mpi_env_rank() == 0;  /* usage errors once, not once per rank */
    int trials = 0, *cells = NULL, n_cells = 0;
    const char *ov_key[64], *ov_val[64];
    int n_ov = 0;
    rc_spec_override pov[RC_SPEC_MAX_PARAMS];   /* --param NAME=VALUE */
    int n_pov = 0;
    cli_trial_models tm;
    memset(&tm, 0, sizeof tm);
    char err[1024];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define USAGE(...) do { if (say) { fprintf(stderr, "retinac search: " __VA_ARGS__); fputc('\n', stderr); } free(cells); return 2; } while (0)
#define NEED() do { if (!next) USAGE("%s needs a value", a); i++; } while (0)
        int took = cli_run_flag(a, next, &c.o, &cells, &n_cells, err, sizeof err);
        if (took < 0) USAGE("%s", err);
        if (took > 0) { i += took - 1; continue; }
        if (!strcmp(a, "--data")) { NEED(); c.data = next; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); c.dir = next; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) c.quiet = 1;
        else if (!strcmp(a, "--json")) c.json = 1;
        else if (!strcmp(a, "--dry-run")) c.dry_run = 1;
        else if (!strcmp(a, "--param")) {
            NEED();
            if (cli_parse_param(argv[i], pov, &n_pov, RC_SPEC_MAX_PARAMS, err, sizeof err) < 0) USAGE("%s", err);
        }
        else if (!strcmp(a, "--retry-failed")) c.retry_failed = 1;
        else if (!strcmp(a, "--trials")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            if (*end || end == next || v < 1 || v > RC_SEARCH_MAX_TRIALS)
                USAGE("%s '%s': expected 1..%d", a, next, RC_SEARCH_MAX_TRIALS);
            trials = (int)v;
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
    rc_ir *spec = malloc(sizeof *spec);
    rc_search_trial *t = NULL;
    rc_search_result res;
    memset(&res, 0, sizeof res);
    cli_mpi mpi = {.size = 1, .local_size = 1};
    int n = 0;
    if (!spec) { fprintf(stderr, "retinac search: out of memory\n"); goto out; }
    if (rc_spec_load_params(c.spec_path, pov, n_pov, spec, err, sizeof err) < 0) {
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
    /* trials over spec parameters train the spec loaded with their values */
    if (cli_trial_models_load(c.spec_path, &spec->train, &s, pov, n_pov, t, n, &tm, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac search: %s\n", err);
        status = 2;
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
    /* the output folder, checked here to name the flag (rc_search_run checks it again) */
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

    /* the search itself: every rank checks alike, then the communicator starts (MPI_Init under
     * mpirun), the ranks agree, train their trials, and rank 0 writes the summary */
    cli_search_ui ui = {"search", c.quiet, spec->name, c.o.backend, c.dir, 0, 0, 0};
    rc_search_opts so;
    rc_search_opts_default(&so);
    so.spec = spec;
    so.base = &base;
    so.trials = t;
    so.n = n;
    so.data = c.data;
    so.dir = c.dir;
    so.spec_path = c.spec_path;
    so.retry_failed = c.retry_failed;
    so.train = c.o;
    so.event = cli_search_on_event;
    so.event_ctx = &ui;
    int rank;
    if (cli_search_run("search", &mpi, &argc, &argv, &so, &res, &rank) < 0) goto out;
    int failed = res.failed;
    if (rank == 0) {
        if (res.summary_err[0]) fprintf(stderr, "retinac search: %s\n", res.summary_err);
        if (c.json) {
            char *js = rc_search_summary_json(spec, c.data, t, res.rows, n);
            if (js) fputs(js, stdout);
            else { fprintf(stderr, "retinac search: out of memory\n"); failed = 1; }
            free(js);
        } else {
            print_table(spec, t, res.rows, n, c.dir);
        }
    }
    /* rank 0 holds every row and carries the search's status; another rank's failed trials
     * are in rank 0's summary, so it exits 0 once they are delivered: a non-zero exit there
     * makes mpirun abort the job, which could kill rank 0 before it writes the summary */
    status = failed && rank == 0 ? 1 : 0;
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
    rc_search_result_free(&res);
    cli_trial_models_free(&tm);
    free(t);
    free(spec);
    free(cells);
    return status;
#undef USAGE
}
