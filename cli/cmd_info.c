/* cmd_info.c — `retinac info FILE`: describe a recording and check that the trainer can use it.
 * It probes the layout (metadata), opens the file as the trainer would (same options), and runs
 * the data-sanity check (rc_data_check, data.h) — unless --quick over every frame and label —
 * listing every problem found (dataset key, cell, first bad frame) as an error or a warning.
 * Exit 0 usable (warnings allowed), 1 not usable (the first error on stderr, all of them on
 * stdout and in the JSON), 2 usage. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cmd.h"
#include "data.h"
#include "json.h"
#include "backend_c.h"
#include "spec.h"
#include "train.h"

const char cmd_info_help[] =
    "usage: retinac info FILE [--json] [--quick] [--rate-key KEY] [--cells LIST]\n"
    "                    [--layout auto|baccus|openretina] [--test-name NAME] [--stimuli-dir DIR]\n"
    "                    [--loss poisson|poisson_log|mse] [--mem-budget MB] [--epoch-pass B]\n"
    "                    [--spec SPEC]\n"
    "\n"
    "Print what a recording holds: layout, splits and frame counts, frame size and dtype,\n"
    "cells and their centres, rate keys, test repeats, ground truth (synthetic files), the\n"
    "training/validation windows and the training stimulus statistics. Every key, rank,\n"
    "dtype and length is validated; unless --quick every frame and label is read, so NaN/Inf\n"
    "or a truncated file is found. Errors: NaN/Inf anywhere, negative responses, an all-zero\n"
    "training response (all cells, or one selected cell), a constant training stimulus.\n"
    "Warnings: a tiny stimulus std, a constant test stimulus, a cell silent in the test split.\n"
    "Exit status 1 (with every problem) if the trainer could not use the file with these\n"
    "options.\n"
    "\n"
    "  --json             one JSON object: file, usable, error, layout, synthetic, splits,\n"
    "                     frame {height,width,dtype}, cells, centers, rate_keys, rate_key,\n"
    "                     repeats {count,keys}, truth, windows {history,train,val,chunks},\n"
    "                     stats {mean,std} (absent with --quick), issues [{level,key,cell,\n"
    "                     index,message}], check {errors,warnings,seconds}\n"
    "  --quick            metadata and labels only; skip the frame scan\n"
    "  --loss L           the loss the data is for: poisson (default) or poisson_log (negative\n"
    "                     responses are errors), or mse (negative responses are warnings)\n"
    "  --rate-key KEY     label key to check (default firing_rate_10ms)\n"
    "  --cells LIST       comma-separated 0-based cell indices\n"
    "  --layout L         force a layout (default: detect)\n"
    "  --test-name NAME   openretina: the test stimulus (default 'test')\n"
    "  --stimuli-dir DIR  openretina: folder of <stimulus>.npy (default FILE's dir/stimuli)\n"
    "  --mem-budget MB    data memory budget (default $RETINAC_MEM_BUDGET or 4096)\n"
    "  --epoch-pass B     also run one training epoch's data pass (batches of B, shuffled,\n"
    "                     streamed within the budget) and the validation pass; report their\n"
    "                     speed and the process's peak RSS (JSON: epoch_pass)\n"
    "  --spec SPEC        open the recording as `retinac train SPEC` would: its history, crop,\n"
    "                     validation split, and the chunks sized for frames plus what the model\n"
    "                     keeps per frame (the FFT first conv's frame spectra); without it the\n"
    "                     defaults and the frames alone\n";

typedef struct {
    int done;
    int64_t batches, samples, val_windows;
    double train_s, val_s, peak_rss_mb;
} epoch_pass;

static volatile double info_sink;

/* One epoch of training batches and one validation pass; only the data layer works. */
static int run_epoch_pass(rc_data *d, int B, epoch_pass *ep, char *err, size_t errlen)
{
    rc_iter *it;
    rc_batch b;
    int k;
    double t0 = rc_clock_s();
    if (rc_data_train_iter(d, B, 1, 0, &it, err, errlen) < 0) return -1;
    double sink = 0;   /* touch every label so that nothing is optimized away */
    while ((k = rc_iter_next(it, &b, err, errlen)) == 1) {
        ep->batches++;
        ep->samples += b.B;
        sink += b.y[0] + b.frames[b.starts[b.B - 1]];
    }
    rc_iter_free(it);
    if (k < 0) return -1;
    ep->train_s = rc_clock_s() - t0;
    t0 = rc_clock_s();
    if (rc_data_val_iter(d, B, &it, err, errlen) < 0) return -1;
    while ((k = rc_iter_next(it, &b, err, errlen)) == 1) { ep->val_windows += b.B; sink += b.y[0]; }
    rc_iter_free(it);
    if (k < 0) return -1;
    ep->val_s = rc_clock_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    ep->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;   /* KB on Linux */
    info_sink = sink;
    ep->done = 1;
    return 0;
}

static const char *layout_name(rc_layout l)
{
    return l == RC_LAYOUT_BACCUS ? "baccus" : l == RC_LAYOUT_OPENRETINA ? "openretina" : "unknown";
}

static int parse_cells(const char *s, int **out, int *n)
{
    int cap = 8, k = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 1000000 || (*end && *end != ',')) { free(v); return -1; }
        if (k == cap) {
            int *w = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!w) { free(v); return -1; }
            v = w;
        }
        v[k++] = (int)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) { free(v); return -1; }
    *out = v;
    *n = k;
    return 0;
}

static const char *level_name(int level) { return level == RC_ISSUE_ERROR ? "error" : "warning"; }

static void print_text(const char *file, const rc_data_probe *p, const rc_data_info *in,
                       int have_stats, double mean, double std, const epoch_pass *ep,
                       const rc_data_report *rep, const char *error)
{
    printf("%s: %s layout", file, layout_name(p->layout));
    if (p->is_synthetic) printf(" (synthetic: retinac synth, seed %lld, %s)", (long long)p->synth_seed, p->synth_stimulus);
    printf("\n");
    printf("  train     %lld frames%s\n", (long long)p->frames[0], p->has_time ? " (with time)" : "");
    if (p->has_test) printf("  test      %lld frames\n", (long long)p->frames[1]);
    else printf("  test      none\n");
    printf("  frames    %dx%d %s\n", p->h, p->w, p->stim_dtype);
    printf("  cells     %d%s\n", p->cells, p->has_centers ? " (with RF centres)" : "");
    printf("  rate keys");
    for (int i = 0; i < p->n_rate_keys; i++) printf(" %s", p->rate_keys[i]);
    printf("\n");
    if (p->repeats) {
        printf("  repeats   %d (", p->repeats);
        for (int i = 0; i < p->n_repeat_keys; i++) printf("%s%s", i ? " " : "", p->repeat_keys[i]);
        printf(")\n");
    } else {
        printf("  repeats   none\n");
    }
    if (p->has_truth) printf("  truth     /test/response/true_rate (noise-free expected rate)\n");
    if (p->layout == RC_LAYOUT_OPENRETINA) {
        printf("  stimuli  ");
        for (int i = 0; i < p->n_stims; i++) printf(" %s%s", p->stims[i], (i == 0 && p->has_test) ? " (test)" : "");
        printf("\n");
    }
    if (in) {
        printf("  selected  %d cells, labels %s", in->n_cells, in->rate_key);
        if (in->h != in->full_h || in->w != in->full_w) printf(", crop %dx%d at (%d,%d)", in->h, in->w, in->crop_row0, in->crop_col0);
        printf("\n");
        if (in->centers) {
            printf("  centres  ");
            for (int c = 0; c < in->n_cells; c++) printf(" (%d,%d)", in->centers[2 * c], in->centers[2 * c + 1]);
            printf("\n");
        }
        printf("  windows   history %d: %lld train, %lld validation, %d chunk%s (budget %.0f MB)\n", in->history,
               (long long)in->n_train, (long long)in->n_val, in->n_chunks, in->n_chunks == 1 ? "" : "s",
               in->mem_budget / 1048576.0);
        if (in->n_repeats) printf("  test reps %d usable with %s\n", in->n_repeats, in->rate_key);
    }
    if (have_stats) printf("  stimulus  mean %.6g, std %.6g (training statistics)\n", mean, std);
    if (ep && ep->done)
        printf("  epoch     %lld batches (%lld windows) in %.2f s (%.0f windows/s); validation %lld windows in %.2f s;\n"
               "            peak RSS %.1f MB (budget %.0f MB)\n", (long long)ep->batches, (long long)ep->samples, ep->train_s,
               ep->samples / (ep->train_s > 0 ? ep->train_s : 1e-9), (long long)ep->val_windows, ep->val_s, ep->peak_rss_mb,
               in ? in->mem_budget / 1048576.0 : 0);
    if (rep) {
        printf("  check     %d error%s, %d warning%s (%.2f s)\n", rep->n_errors, rep->n_errors == 1 ? "" : "s",
               rep->n_warnings, rep->n_warnings == 1 ? "" : "s", rep->seconds);
        for (int i = 0; i < rep->n; i++) printf("  %-9s %s\n", level_name(rep->issue[i].level), rep->issue[i].msg);
        int more = rep->n_errors + rep->n_warnings - rep->n;
        if (more > 0) printf("            (%d more not listed)\n", more);
    }
    if (error) printf("  NOT USABLE: %s\n", error);
    else if (rep && rep->n_warnings) printf("  usable (with %d warning%s)\n", rep->n_warnings, rep->n_warnings == 1 ? "" : "s");
    else printf("  usable\n");
}

static void print_json(const char *file, const rc_data_probe *p, const rc_data_info *in,
                       int have_stats, double mean, double std, const epoch_pass *ep,
                       const rc_data_report *rep, const char *error)
{
    rc_json j;
    rc_json_init(&j, stdout, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "file"); rc_json_string(&j, file);
    rc_json_key(&j, "usable"); rc_json_bool(&j, error == NULL);
    rc_json_key(&j, "error"); rc_json_string(&j, error);
    if (p) {
        rc_json_key(&j, "layout"); rc_json_string(&j, layout_name(p->layout));
        rc_json_key(&j, "synthetic");
        if (p->is_synthetic) {
            rc_json_begin_object(&j);
            rc_json_key(&j, "seed"); rc_json_int(&j, p->synth_seed);
            rc_json_key(&j, "stimulus"); rc_json_string(&j, p->synth_stimulus);
            rc_json_end_object(&j);
        } else {
            rc_json_null(&j);
        }
        rc_json_key(&j, "splits");
        rc_json_begin_object(&j);
        rc_json_key(&j, "train"); rc_json_begin_object(&j);
        rc_json_key(&j, "frames"); rc_json_int(&j, p->frames[0]);
        rc_json_key(&j, "time"); rc_json_bool(&j, p->has_time);
        rc_json_end_object(&j);
        rc_json_key(&j, "test");
        if (p->has_test) {
            rc_json_begin_object(&j);
            rc_json_key(&j, "frames"); rc_json_int(&j, p->frames[1]);
            rc_json_end_object(&j);
        } else {
            rc_json_null(&j);
        }
        rc_json_end_object(&j);
        rc_json_key(&j, "frame"); rc_json_begin_object(&j);
        rc_json_key(&j, "height"); rc_json_int(&j, p->h);
        rc_json_key(&j, "width"); rc_json_int(&j, p->w);
        rc_json_key(&j, "dtype"); rc_json_string(&j, p->stim_dtype);
        rc_json_end_object(&j);
        rc_json_key(&j, "cells"); rc_json_int(&j, p->cells);
        rc_json_key(&j, "rate_keys"); rc_json_begin_array(&j);
        for (int i = 0; i < p->n_rate_keys; i++) rc_json_string(&j, p->rate_keys[i]);
        rc_json_end_array(&j);
        rc_json_key(&j, "repeats"); rc_json_begin_object(&j);
        rc_json_key(&j, "count"); rc_json_int(&j, p->repeats);
        rc_json_key(&j, "keys"); rc_json_begin_array(&j);
        for (int i = 0; i < p->n_repeat_keys; i++) rc_json_string(&j, p->repeat_keys[i]);
        rc_json_end_array(&j);
        rc_json_end_object(&j);
        rc_json_key(&j, "truth"); rc_json_bool(&j, p->has_truth);
        if (p->layout == RC_LAYOUT_OPENRETINA) {
            rc_json_key(&j, "stimuli"); rc_json_begin_array(&j);
            for (int i = 0; i < p->n_stims; i++) rc_json_string(&j, p->stims[i]);
            rc_json_end_array(&j);
        }
    }
    if (in) {
        rc_json_key(&j, "rate_key"); rc_json_string(&j, in->rate_key);
        rc_json_key(&j, "selected_cells"); rc_json_int(&j, in->n_cells);
        rc_json_key(&j, "centers");
        if (in->centers) {
            rc_json_begin_array(&j);
            for (int c = 0; c < in->n_cells; c++) {
                rc_json_begin_array(&j);
                rc_json_int(&j, in->centers[2 * c]);
                rc_json_int(&j, in->centers[2 * c + 1]);
                rc_json_end_array(&j);
            }
            rc_json_end_array(&j);
        } else {
            rc_json_null(&j);
        }
        rc_json_key(&j, "windows"); rc_json_begin_object(&j);
        rc_json_key(&j, "history"); rc_json_int(&j, in->history);
        rc_json_key(&j, "train"); rc_json_int(&j, in->n_train);
        rc_json_key(&j, "val"); rc_json_int(&j, in->n_val);
        rc_json_key(&j, "chunks"); rc_json_int(&j, in->n_chunks);
        rc_json_key(&j, "mem_budget_mb"); rc_json_number(&j, in->mem_budget / 1048576.0);
        rc_json_end_object(&j);
    }
    if (have_stats) {
        rc_json_key(&j, "stats"); rc_json_begin_object(&j);
        rc_json_key(&j, "mean"); rc_json_number(&j, mean);
        rc_json_key(&j, "std"); rc_json_number(&j, std);
        rc_json_end_object(&j);
    }
    if (rep) {
        rc_json_key(&j, "check"); rc_json_begin_object(&j);
        rc_json_key(&j, "errors"); rc_json_int(&j, rep->n_errors);
        rc_json_key(&j, "warnings"); rc_json_int(&j, rep->n_warnings);
        rc_json_key(&j, "seconds"); rc_json_number(&j, rep->seconds);
        rc_json_end_object(&j);
        rc_json_key(&j, "issues"); rc_json_begin_array(&j);
        for (int i = 0; i < rep->n; i++) {
            const rc_data_issue *q = &rep->issue[i];
            rc_json_begin_object(&j);
            rc_json_key(&j, "level"); rc_json_string(&j, level_name(q->level));
            rc_json_key(&j, "key"); rc_json_string(&j, q->key);
            rc_json_key(&j, "cell");
            if (q->cell >= 0) rc_json_int(&j, q->cell); else rc_json_null(&j);
            rc_json_key(&j, "index");
            if (q->index >= 0) rc_json_int(&j, q->index); else rc_json_null(&j);
            rc_json_key(&j, "message"); rc_json_string(&j, q->msg);
            rc_json_end_object(&j);
        }
        rc_json_end_array(&j);
    }
    if (ep && ep->done) {
        rc_json_key(&j, "epoch_pass"); rc_json_begin_object(&j);
        rc_json_key(&j, "batches"); rc_json_int(&j, ep->batches);
        rc_json_key(&j, "windows"); rc_json_int(&j, ep->samples);
        rc_json_key(&j, "seconds"); rc_json_number(&j, ep->train_s);
        rc_json_key(&j, "val_windows"); rc_json_int(&j, ep->val_windows);
        rc_json_key(&j, "val_seconds"); rc_json_number(&j, ep->val_s);
        rc_json_key(&j, "peak_rss_mb"); rc_json_number(&j, ep->peak_rss_mb);
        rc_json_end_object(&j);
    }
    rc_json_end_object(&j);
    rc_json_finish(&j);
}

int cmd_info(int argc, char **argv)
{
    const char *file = NULL;
    int json = 0, quick = 0, *cells = NULL, n_cells = 0, pass_b = 0, signed_ok = 0;
    const char *spec = NULL;
    epoch_pass ep = {0};
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.defer_value_checks = 1;   /* rc_data_check reports every problem, not just the first */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quick")) { quick = 1; continue; }
        if (a[0] != '-') {
            if (file) { fprintf(stderr, "retinac info: one FILE expected ('%s' is extra)\n", a); free(cells); return 2; }
            file = a;
            continue;
        }
        if (i + 1 >= argc) { fprintf(stderr, "retinac info: %s needs a value (or is unknown)\n", a); free(cells); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--rate-key")) o.rate_key = v;
        else if (!strcmp(a, "--test-name")) o.test_name = v;
        else if (!strcmp(a, "--epoch-pass")) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 1 || x > 1 << 20) { fprintf(stderr, "retinac info: --epoch-pass: '%s' is not a batch size\n", v); free(cells); return 2; }
            pass_b = (int)x;
        }
        else if (!strcmp(a, "--stimuli-dir")) o.stimuli_dir = v;
        else if (!strcmp(a, "--spec")) spec = v;
        else if (!strcmp(a, "--loss")) {
            if (strcmp(v, "poisson") && strcmp(v, "poisson_log") && strcmp(v, "mse")) {
                fprintf(stderr, "retinac info: --loss: '%s' (poisson, poisson_log or mse)\n", v);
                free(cells);
                return 2;
            }
            signed_ok = !strcmp(v, "mse");
        }
        else if (!strcmp(a, "--cells")) {
            free(cells);
            cells = NULL;
            if (parse_cells(v, &cells, &n_cells) < 0) { fprintf(stderr, "retinac info: --cells: '%s' is not a list like 0,2,5\n", v); return 2; }
            o.cells = cells;
            o.n_cells = n_cells;
        } else if (!strcmp(a, "--layout")) {
            if (!strcmp(v, "auto")) o.layout = RC_LAYOUT_AUTO;
            else if (!strcmp(v, "baccus")) o.layout = RC_LAYOUT_BACCUS;
            else if (!strcmp(v, "openretina")) o.layout = RC_LAYOUT_OPENRETINA;
            else { fprintf(stderr, "retinac info: --layout: '%s' (auto, baccus or openretina)\n", v); free(cells); return 2; }
        } else if (!strcmp(a, "--mem-budget")) {
            char *end;
            double mb = strtod(v, &end);
            if (*end || !(mb > 0)) { fprintf(stderr, "retinac info: --mem-budget: '%s' is not a positive number of MB\n", v); free(cells); return 2; }
            o.mem_budget = (size_t)(mb * 1048576.0);
        } else {
            fprintf(stderr, "retinac info: unknown option '%s' (see retinac help info)\n", a);
            free(cells);
            return 2;
        }
    }
    if (!file) { fprintf(stderr, "retinac info: FILE is required\n"); free(cells); return 2; }

    char err[1024] = "";
    rc_data_probe p;
    rc_data *d = NULL;
    int have_probe = 0, have_stats = 0, bad = 0, have_rep = 0;
    double mean = 0, std = 0;
    static rc_data_report rep;
    static rc_ir ir;   /* large: not on the stack */
    if (spec) {
        if (rc_spec_load(spec, &ir, err, sizeof err) < 0) {
            fprintf(stderr, "retinac info: %s\n", err);
            free(cells);
            return 1;
        }
        rc_train_spec_data_opts(&o, &ir, &ir.train);
    }
    if (rc_data_probe_file(file, &o, &p, err, sizeof err) < 0) bad = 1;
    else have_probe = 1;
    if (!bad && rc_data_open(file, &o, &d, err, sizeof err) < 0) bad = 1;
    if (!bad && spec) {   /* what the trainer keeps per frame besides the frame, as it does */
        if (rc_ir_infer(&ir, rc_data_get_info(d)->n_cells, spec, err, sizeof err) < 0 ||
            rc_data_set_frame_extra(d, rc_c_stream_bytes_per_frame(&ir), err, sizeof err) < 0)
            bad = 1;
    }
    /* the check streams every frame (once: the statistics come from the same pass) and label */
    unsigned what = RC_CHECK_TRAIN | RC_CHECK_TEST | (quick ? RC_CHECK_LABELS : 0) | (signed_ok ? RC_CHECK_SIGNED_OK : 0);
    if (!bad && rc_data_check(d, what, &rep, err, sizeof err) < 0) bad = 1;
    else if (!bad) {
        have_rep = 1;
        if (rc_data_report_error(&rep, err, sizeof err) < 0) bad = 1;
    }
    if (!bad && !quick) {
        if (rc_data_stats(d, &mean, &std, err, sizeof err) < 0) bad = 1;
        else have_stats = 1;
    }
    if (!bad && pass_b && run_epoch_pass(d, pass_b, &ep, err, sizeof err) < 0) bad = 1;
    const rc_data_info *in = d ? rc_data_get_info(d) : NULL;
    const rc_data_report *rp = have_rep ? &rep : NULL;
    if (json) print_json(file, have_probe ? &p : NULL, in, have_stats, mean, std, &ep, rp, bad ? err : NULL);
    else if (have_probe) print_text(file, &p, in, have_stats, mean, std, &ep, rp, bad ? err : NULL);
    if (bad) fprintf(stderr, "retinac info: %s\n", err);
    rc_data_close(d);
    free(cells);
    return bad ? 1 : 0;
}
