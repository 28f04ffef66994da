/* cmd_train.c — `retinac train SPEC --data FILE -o RUNDIR [flags]`: train a model, keep the
 * latest and the best-validation checkpoint, a per-epoch CSV log, and the test metrics.
 * Every field of the spec's train section can be overridden by a flag of the same name
 * (underscores or dashes), so the flag list never drifts from the IR's descriptors.
 * Progress: a bar with ETA, samples/s and loss when stderr is a terminal, plain per-epoch
 * lines otherwise. Exit 0 ok, 1 error, 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "checkpoint.h"
#include "cmd.h"
#include "progress_ui.h"
#include "fsutil.h"
#include "ir.h"
#include "spec.h"
#include "train.h"
#include "train_flags.h"

const char cmd_train_help[] =
    "usage: retinac train SPEC --data FILE -o RUNDIR [options]\n"
    "       retinac train [SPEC] -o RUNDIR --resume [--epochs N] [options]\n"
    "\n"
    "Train the model of SPEC (a Lua spec or canonical IR file) on the recording FILE (HDF5,\n"
    "Baccus or openretina layout). RUNDIR receives checkpoint.h5 (latest epoch), best.h5\n"
    "(lowest validation loss), log.csv and, at the end, metrics.json (test metrics of best.h5).\n"
    "\n"
    "Training settings (defaults from the spec's train section; any train field works as a\n"
    "flag, e.g. --sched-patience 4 or --val-split random):\n"
    "  --epochs N  --batch N  --seed N  --lr X  --l2 X\n"
    "  --l1 X                 L1 activity penalty (--l1-mode mean|sum; sum = reference)\n"
    "  --optimizer adam|adamw adam = coupled L2 as torch.optim.Adam (reference)\n"
    "  --loss poisson|mse|poisson_log  poisson_log: the output is a log-rate in training\n"
    "                         (exp(y) - t*y): end the model with exponential { train_off = true }\n"
    "  --schedule none|plateau|step   --sched-factor X --sched-patience N --milestones 10,20\n"
    "  --patience N           early stopping on the validation loss (0 = never)\n"
    "  --val-fraction X       --val-split block|random\n"
    "Run:\n"
    "  --backend c|ref        c: JIT-compiled generated C (default); ref: the reference\n"
    "  --device cpu|cuda      --threads N (OpenMP threads; same seed+threads = same run)\n"
    "  --resume               continue RUNDIR/checkpoint.h5 exactly where it stopped; the\n"
    "                         recording must be the one the run was trained on (its cells,\n"
    "                         frame size and content fingerprint are checked)\n"
    "  --allow-other-recording  with --resume: continue on a different recording on purpose\n"
    "                         (e.g. another recording of the same cells); warns what differs\n"
    "  --cells LIST           cells to model, e.g. 0,2,5-7 (default all)\n"
    "  --param NAME=VALUE     a parameter the spec declares with params {...} (repeatable)\n"
    "  --rate-key K           response dataset (default firing_rate_10ms)\n"
    "  --mem-budget MB        data buffer budget (default $RETINAC_MEM_BUDGET or 4096)\n"
    "  --no-eval              skip the final test evaluation\n"
    "  -q, --quiet            no progress output\n"
    "\n"
    "Exit status: 0 trained, 1 error, 2 usage error.\n";

/* ------------------------------------------------------------------ progress */

static void on_warn(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "retinac train: warning: %s\n", line);
}

typedef struct {
    int tty, quiet;
    double last;               /* time of the last bar redraw */
    int bar_shown;
} progress_ctx;

static void on_progress(void *vctx, const rc_train_progress *p)
{
    progress_ctx *c = vctx;
    if (c->quiet) return;
    if (!p->epoch_done) {
        if (!c->tty) return;
        double t = rc_clock_s();
        if (p->batch != p->batches && t - c->last < 0.1) return;
        c->last = t;
        const int W = 24;
        double frac = p->batches ? (double)p->batch / (double)p->batches : 0;
        int fill = (int)(frac * W);
        char bar[32], eta[32];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '-';
        bar[W] = 0;
        double rate = p->batch ? p->elapsed / (double)p->batch : 0;
        cli_fmt_eta(rate * (double)(p->batches - p->batch), eta, sizeof eta);
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %3.0f%% ETA %s  %.0f samples/s  loss %.5g",
                p->epoch, p->epochs, bar, 100 * frac, eta, p->samples_per_s, p->loss);
        fflush(stderr);
        c->bar_shown = 1;
        return;
    }
    if (c->tty && c->bar_shown) fprintf(stderr, "\r\033[K");
    c->bar_shown = 0;
    fprintf(stderr, "epoch %d/%d  train_loss %.6g  val_loss %.6g  val_r %.4f  lr %.3g  %.1fs  "
            "%.0f samples/s%s%s\n", p->epoch, p->epochs, p->train_loss, p->val_loss, p->val_r,
            p->lr, p->seconds, p->samples_per_s, p->improved ? "  *best" : "",
            p->stopping ? "  (early stop)" : "");
}

/* ------------------------------------------------------------------ command */

int cmd_train(int argc, char **argv)
{
    const char *spec_path = NULL, *data = NULL, *rundir = NULL;
    int resume = 0, quiet = 0, no_eval = 0, *cells = NULL, n_cells = 0, be_set = 0, dev_set = 0;
    rc_train_opts o;
    rc_train_opts_default(&o);
    /* explicit train-field overrides, applied after the base settings are known */
    const char *ov_key[64], *ov_val[64];
    int n_ov = 0;
    rc_spec_override pov[RC_SPEC_MAX_PARAMS];   /* --param NAME=VALUE: the spec's parameters */
    int n_pov = 0;
    char err[1024];
    int nf;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, 0, &nf);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac train: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--data")) { NEED(); data = next; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); rundir = next; }
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (!strcmp(a, "--param")) {
            NEED();
            if (cli_parse_param(argv[i], pov, &n_pov, RC_SPEC_MAX_PARAMS, err, sizeof err) < 0) {
                fprintf(stderr, "retinac train: %s\n", err);
                free(cells);
                return 2;
            }
        }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--no-eval")) no_eval = 1;
        else if (!strcmp(a, "--allow-other-recording")) o.allow_other_recording = 1;
        else if (!strcmp(a, "--backend")) { NEED(); o.backend = next; be_set = 1; }
        else if (!strcmp(a, "--device")) { NEED(); o.device = next; dev_set = 1; }
        else if (!strcmp(a, "--threads")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            if (*end || v < 1 || v > 4096) { fprintf(stderr, "retinac train: --threads '%s': expected 1..4096\n", next); return 2; }
            o.threads = (int)v;
        } else if (!strcmp(a, "--cells")) {
            NEED();
            free(cells);
            if (cli_parse_cells(next, &cells, &n_cells, err, sizeof err) < 0) { fprintf(stderr, "retinac train: %s\n", err); return 2; }
        } else if (!strcmp(a, "--rate-key")) { NEED(); o.rate_key = next; }
        else if (!strcmp(a, "--mem-budget")) {
            NEED();
            char *end;
            double mb = strtod(next, &end);
            if (*end || !(mb > 0) || mb > 1e9) { fprintf(stderr, "retinac train: --mem-budget '%s': expected MB > 0\n", next); return 2; }
            o.mem_budget = (size_t)(mb * 1048576.0);
        } else if (a[0] == '-' && a[1] == '-') {
            const rc_field *f = cli_train_flag(a);
            if (!f) { fprintf(stderr, "retinac train: unknown option %s (see retinac help train)\n", a); free(cells); return 2; }
            NEED();
            if (n_ov == 64) { fprintf(stderr, "retinac train: too many options\n"); free(cells); return 2; }
            ov_key[n_ov] = f->name;
            ov_val[n_ov++] = next;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac train: unknown option %s (see retinac help train)\n", a);
            free(cells);
            return 2;
        } else if (!spec_path) spec_path = a;
        else { fprintf(stderr, "retinac train: unexpected argument '%s'\n", a); free(cells); return 2; }
#undef NEED
    }
    if (!rundir || (!resume && (!spec_path || !data))) {
        fputs("usage: retinac train SPEC --data FILE -o RUNDIR [options] (retinac help train)\n", stderr);
        free(cells);
        return 2;
    }

    {   /* the run folder's files never replace an input (a spec or recording kept there) */
        static const char *const run_files[] = {"checkpoint.h5", "best.h5", "log.csv", "metrics.json", NULL};
        const char *inputs[2] = {spec_path, data};
        if (rc_dir_not_input(rundir, run_files, inputs, 2, err, sizeof err) < 0) {
            fprintf(stderr, "retinac train: -o %s\n", err);
            free(cells);
            return 1;
        }
    }
    static rc_ir spec;
    rc_train train;
    rc_checkpoint prev;
    memset(&prev, 0, sizeof prev);
    int status = 1;
    if (resume) {
        char ck[1100];
        snprintf(ck, sizeof ck, "%s/checkpoint.h5", rundir);
        if (rc_ckpt_load(ck, &prev, err, sizeof err) < 0) { fprintf(stderr, "retinac train: %s\n", err); goto out; }
        if (!data) data = prev.data_path;
        if (n_cells) fprintf(stderr, "retinac train: --resume: --cells ignored, the run keeps its cells\n");
        /* the run continues on what it ran on unless told otherwise (bit-exact resume needs
         * the same backend, device and thread count) */
        if (!be_set && prev.backend[0]) o.backend = prev.backend;
        if (!dev_set && prev.device[0]) o.device = prev.device;
        if (!o.threads && prev.threads > 0) o.threads = prev.threads;
        train = prev.ir->train;
    }
    if (spec_path) {
        if (rc_spec_load_params(spec_path, pov, n_pov, &spec, err, sizeof err) < 0) { fprintf(stderr, "retinac train: %s\n", err); goto out; }
    } else if (n_pov) {
        fprintf(stderr, "retinac train: --param: --resume without SPEC continues the checkpoint's own model\n");
        status = 2;
        goto out;
    } else if (rc_ir_parse(&spec, prev.spec_text, "checkpoint spec", err, sizeof err) < 0) {
        fprintf(stderr, "retinac train: %s\n", err);
        goto out;
    }
    if (!resume) train = spec.train;
    for (int k = 0; k < n_ov; k++) {
        for (int q = 0; q < nf; q++) {
            if (strcmp(tf[q].name, ov_key[k])) continue;
            if (cli_set_train_field(&tf[q], &train, ov_val[k], err, sizeof err) < 0) {
                fprintf(stderr, "retinac train: %s\n", err);
                status = 2;
                goto out;
            }
        }
    }
    o.data_path = data;
    o.rundir = rundir;
    o.resume = resume;
    o.cells = cells;
    o.n_cells = n_cells;
    o.eval_test = !no_eval;
    progress_ctx pc = {isatty(2), quiet, 0, 0};
    o.progress = on_progress;
    o.progress_ctx = &pc;
    o.warn = on_warn;
    if (!quiet)
        fprintf(stderr, "train %s on %s -> %s (backend %s%s%s, batch %d, %d epochs, lr %g, seed %llu)\n",
                spec.name, data, rundir, o.backend, strcmp(o.device, "cpu") ? ", device " : "",
                strcmp(o.device, "cpu") ? o.device : "", train.batch, train.epochs, train.lr,
                (unsigned long long)train.seed);

    rc_train_result res;
    if (rc_train_run(&spec, &train, &o, &res, err, sizeof err) < 0) {
        if (pc.bar_shown) fputc('\n', stderr);
        fprintf(stderr, "retinac train: %s\n", err);
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "done: %d epochs in %.1fs, best epoch %lld (val_loss %.6g)%s\n",
                res.epochs_done, res.seconds, (long long)res.best_epoch, res.best_val_loss,
                res.stopped_early ? ", stopped early" : "");
    if (res.centers_estimated)
        fprintf(stderr, "note: %s has no /cells/centers: the gcconv readout used receptive-field centers "
                "estimated from spike-triggered averages (stored in the checkpoint)\n", o.data_path);
    if (res.has_test) {
        /* The same table `retinac eval RUNDIR` prints for this run (best.h5). */
        char bpath[1100];
        snprintf(bpath, sizeof bpath, "%s/best.h5", rundir);
        rc_checkpoint best;
        if (rc_ckpt_load(bpath, &best, err, sizeof err) == 0) {
            const char *names[1] = {spec.name};
            const rc_eval_metrics *ms[1] = {&res.test};
            printf("test metrics of %s (epoch %lld):\n", bpath, (long long)res.best_epoch);
            int has_truth = res.truth_r && isfinite(res.truth_mean_r);
            rc_eval_table(stdout, names, ms, 1, best.cell_ids, has_truth ? res.truth_r : NULL);
            rc_ckpt_free(&best);
        }
    }
    rc_train_result_free(&res);
    status = 0;
out:
    free(cells);
    rc_ckpt_free(&prev);
    return status;
}
