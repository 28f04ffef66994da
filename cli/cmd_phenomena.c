/* cmd_phenomena.c — `retinac phenomena RUN|CHECKPOINT... [--retina SEED] [-o OUT.h5] [--json]
 * [--only NAME,...]`: the in-silico retinal phenomena battery (analysis/phenomena.h) on trained
 * models and on the ground-truth synthetic retina, one table row per summary number and one
 * column per model, side by side (like `retinac eval`). -o writes every trace and number to
 * HDF5 atomically (rc_pheno_write, analysis/phenomena_io.c). Exit 0 ok, 1 error, 2 usage.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cmd.h"
#include "progress_ui.h"
#include "fsutil.h"
#include "json.h"
#include "phenomena.h"
#include "rf.h"
#include "train.h"

const char cmd_phenomena_help[] =
    "usage: retinac phenomena RUNDIR|CHECKPOINT... [--retina SEED] [-o OUT.h5] [--json] [options]\n"
    "\n"
    "Run the in-silico retinal phenomena battery of torch-deep-retina (retinal_phenomena.py) on\n"
    "trained models and read off the numbers a scientist looks at: step response, omitted\n"
    "stimulus response (OSR latency and size), reversing grating, contrast adaptation, motion\n"
    "reversal, motion anticipation (lead of the moving-bar response over the flash profile),\n"
    "object motion sensitivity (global / differential response), frequency doubling (F2/F1 per\n"
    "bar width), latency encoding (latency per flash intensity), and from gradient STAs on\n"
    "white noise: the filter and nonlinearity at contrasts 0.1 and 0.7 (contrast_fig: gain\n"
    "ratio, latency shift) and the filter's speed vs contrast (fast_contrast_adaptation). Stimuli are in model-input\n"
    "z-units (0 = the training mean, 1 = one training std), 10 ms frames, 55 um pixels, built at\n"
    "each model's input size. One table: a row per number, a column per model.\n"
    "A RUNDIR stands for RUNDIR/best.h5 (or checkpoint.h5 when there is no best.h5).\n"
    "See docs/phenomena.md for each stimulus and number.\n"
    "\n"
    "  --retina SEED      add a column for the ground-truth synthetic retina of\n"
    "                     `retinac synth --seed SEED` (its noise-free rate; a few seconds)\n"
    "  --cells N          cells of that retina (default 8, as retinac synth)\n"
    "  --only NAME,...    run only these phenomena: step, osr, reversing_grating,\n"
    "                     contrast_adaptation, contrast_fig, motion_reversal,\n"
    "                     motion_anticipation, oms, freq_doubling, fast_contrast_adaptation,\n"
    "                     latency\n"
    "  -o OUT.h5          write every trace and number: /<column>/<phenomenon>/<name>, the\n"
    "                     stimulus parameters as attributes of /<column>/<phenomenon>\n"
    "  --json             print {runs:[{name, source, numbers:{key: value}}]} instead of the table\n"
    "  -q, --quiet        no progress on stderr\n"
    "  --seed N           seed of the noise stimuli (contrast adaptation, OMS, the STAs;\n"
    "                     default 1)\n"
    "  --sta-samples N    white-noise windows per STA of contrast_fig (2 contrasts) and\n"
    "                     fast_contrast_adaptation (4): eval-mode gradient STAs, ~30 ms per\n"
    "                     window for an 8-cell BN-CNN (default 256; the retina column uses\n"
    "                     reverse correlation on 32x as many windows)\n"
    "  --backend c|ref    --threads N\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

#define MAXCOL 64

typedef struct {
    rc_backend *be;
    const rc_checkpoint *ck;
} ck_ctx;

static int ck_predict(void *vctx, const float *frames, int64_t T, float *out, char *err, size_t errlen)
{
    ck_ctx *c = vctx;
    return rc_predict_frames(c->be, c->ck, frames, T, out, err, errlen);
}

/* The gradient STA (rf.h): eval-mode mean input gradient per cell on seeded white noise. */
static int ck_sta(void *vctx, double contrast, int64_t samples, uint64_t seed, float *out,
                  char *err, size_t errlen)
{
    ck_ctx *c = vctx;
    rc_rf_opts o;
    rc_rf_opts_default(&o);
    o.contrast = contrast;
    o.samples = samples;
    o.seed = seed;
    o.grad = 1;
    o.revcor = 0;
    rc_rf_result r;
    int rc = rc_rf_compute(c->ck, &o, &r, err, errlen);
    if (rc == 0)
        memcpy(out, r.grad, (size_t)r.cells * r.history * r.h * r.w * sizeof *out);
    rc_rf_free(&r);
    return rc;
}

/* Column label: the run folder's (or file's) name, HDF5-safe, unique among the columns. */
static void label_of(const char *arg, char *out, size_t n, const rc_pheno_column *cols, int ncol)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", arg);
    size_t L = strlen(buf);
    while (L > 1 && buf[L - 1] == '/') buf[--L] = 0;
    if (L > 3 && !strcmp(buf + L - 3, ".h5")) {
        buf[L - 3] = 0;
        char *b = strrchr(buf, '/');
        if (b && (!strcmp(b + 1, "best") || !strcmp(b + 1, "checkpoint"))) *b = 0;
    }
    const char *b = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    char base[48];
    const char *src = *b ? b : "run";
    size_t m = strlen(src);
    if (m > sizeof base - 1) m = sizeof base - 1;   /* a column label, cut on purpose */
    memcpy(base, src, m);
    base[m] = 0;
    for (char *p = base; *p; p++)
        if (*p == '/' || *p == '.' || *p == ' ') *p = '_';
    snprintf(out, n, "%s", base);
    for (int k = 2;; k++) {
        int clash = 0;
        for (int i = 0; i < ncol; i++) clash |= !strcmp(cols[i].label, out);
        if (!clash) break;
        snprintf(out, n, "%s_%d", base, k);
    }
}

static void print_table(const rc_pheno_column *cols, int n)
{
    printf("%-40s", "number");
    for (int i = 0; i < n; i++) printf(" %14s", cols[i].label);
    printf("\n");
    const rc_pheno_out *o0 = &cols[0].out;
    char prev[64] = "";
    for (int r = 0; r < o0->n_nums; r++) {
        const char *key = o0->nums[r].key, *dot = strchr(key, '.');
        size_t pl = dot ? (size_t)(dot - key) : strlen(key);
        if (strlen(prev) != pl || strncmp(prev, key, pl)) {
            snprintf(prev, sizeof prev, "%.*s", (int)pl, key);
            if (r) printf("\n");
        }
        printf("%-40s", key);
        for (int i = 0; i < n; i++) {
            const rc_pheno_num *v = rc_pheno_find(&cols[i].out, key);
            if (!v || !isfinite(v->value)) printf(" %14s", v ? "nan" : "-");
            else printf(" %14.4g", v->value);
        }
        printf("\n");
    }
}

static int parse_int(const char *s, long lo, long hi, long *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

int cmd_phenomena(int argc, char **argv)
{
    const char *backend = "c", *out_path = NULL, *only = NULL;
    int json = 0, threads = 0, n = 0, retina = 0, cells = 8, quiet = 0;
    long retina_seed = 0, seed = 1, v, sta_samples = RC_PHENO_STA_SAMPLES;
    const char **runs = calloc((size_t)argc, sizeof *runs);
    if (!runs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac phenomena: %s needs a value\n", a); free(runs); return 2; } i++; } while (0)
#define BADNUM(lo, hi) do { fprintf(stderr, "retinac phenomena: %s '%s': expected an integer in %ld..%ld\n", a, next, (long)(lo), (long)(hi)); free(runs); return 2; } while (0)
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); out_path = next; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--only")) { NEED(); only = next; }
        else if (!strcmp(a, "--backend")) { NEED(); backend = next; }
        else if (!strcmp(a, "--retina")) { NEED(); if (parse_int(next, 0, 2147483647L, &retina_seed) < 0) BADNUM(0, 2147483647L); retina = 1; }
        else if (!strcmp(a, "--cells")) { NEED(); if (parse_int(next, 1, 256, &v) < 0) BADNUM(1, 256); cells = (int)v; }
        else if (!strcmp(a, "--seed")) { NEED(); if (parse_int(next, 1, 2147483647L, &seed) < 0) BADNUM(1, 2147483647L); }
        else if (!strcmp(a, "--sta-samples")) { NEED(); if (parse_int(next, 2, 1000000, &sta_samples) < 0) BADNUM(2, 1000000); }
        else if (!strcmp(a, "--threads")) { NEED(); if (parse_int(next, 1, 4096, &v) < 0) BADNUM(1, 4096); threads = (int)v; }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac phenomena: unknown option %s (see retinac help phenomena)\n", a);
            free(runs);
            return 2;
        } else runs[n++] = a;
#undef NEED
#undef BADNUM
    }
    char err[1024];
    if (n == 0 && !retina) {
        fputs("usage: retinac phenomena RUNDIR|CHECKPOINT... [--retina SEED] [-o OUT.h5] [--json] [--only NAME,...]\n", stderr);
        free(runs);
        return 2;
    }
    if (rc_pheno_check_only(only, err, sizeof err) < 0) {
        fprintf(stderr, "retinac phenomena: --only: %s\n", err);
        free(runs);
        return 2;
    }
    if (n + retina > MAXCOL) { fprintf(stderr, "retinac phenomena: at most %d columns\n", MAXCOL); free(runs); return 2; }
    if (threads > 0) omp_set_num_threads(threads);
    const int ncol = n + retina;
    rc_pheno_column *cols = calloc((size_t)ncol, sizeof *cols);
    rc_checkpoint *cks = calloc((size_t)(n ? n : 1), sizeof *cks);
    ck_ctx *ctxs = calloc((size_t)(n ? n : 1), sizeof *ctxs);
    rc_pheno_synth *syn = NULL;
    int status = 1;
    if (!cols || !cks || !ctxs) { fprintf(stderr, "retinac phenomena: out of memory\n"); goto out; }
    for (int i = 0; i < n; i++) {
        rc_pheno_column *c = &cols[i];
        rc_ckpt_resolve(runs[i], c->source, sizeof c->source);
        const char *input = c->source;
        if (out_path && rc_out_not_input(out_path, &input, 1, err, sizeof err) < 0) {
            fprintf(stderr, "retinac phenomena: -o %s\n", err);
            goto out;
        }
        label_of(runs[i], c->label, sizeof c->label, cols, i);
        if (rc_ckpt_load(c->source, &cks[i], err, sizeof err) < 0) { fprintf(stderr, "retinac phenomena: %s\n", err); goto out; }
        const rc_ir *ir = cks[i].ir;
        snprintf(c->model, sizeof c->model, "%s", ir->name);
        if (rc_backend_open(ir, backend, "cpu", &ctxs[i].be, err, sizeof err) < 0) {
            fprintf(stderr, "retinac phenomena: %s: %s\n", c->source, err);
            goto out;
        }
        ctxs[i].ck = &cks[i];
        c->pm = (rc_pheno_model){.predict = ck_predict, .ctx = &ctxs[i], .history = ir->history,
                                 .H = ir->in.h, .W = ir->in.w, .cells = cks[i].cells, .seed = (uint64_t)seed,
                                 .sta = ck_sta, .sta_kind = "gradient STA", .sta_samples = sta_samples};
    }
    if (retina) {
        rc_pheno_column *c = &cols[n];
        rc_synth_opts so;
        rc_synth_opts_default(&so);
        so.seed = (uint64_t)retina_seed;
        so.cells = cells;
        so.quiet = 1;
        snprintf(c->label, sizeof c->label, "retina_s%ld", retina_seed);
        snprintf(c->model, sizeof c->model, "synthetic retina");
        snprintf(c->source, sizeof c->source, "retinac synth --seed %ld --cells %d (noise-free rate)", retina_seed, cells);
        if (rc_pheno_synth_open(&so, &c->pm, &syn, err, sizeof err) < 0) {
            fprintf(stderr, "retinac phenomena: synthetic retina seed %ld: %s\n", retina_seed, err);
            goto out;
        }
        c->pm.seed = (uint64_t)seed;
        c->pm.sta_samples = 32 * sta_samples;   /* reverse correlation: ~32x the windows */
        double mu, sd;
        rc_pheno_synth_stats(syn, &mu, &sd);
        snprintf(c->source, sizeof c->source,
                 "retinac synth --seed %ld --cells %d (noise-free rate; z -> s = 2(z*%.4g + %.4g)/255 - 1)",
                 retina_seed, cells, sd, mu);
    }
    cli_progress pr;
    cli_progress_init(&pr, "phenomena", quiet);
    for (int i = 0; i < ncol; i++) {
        cols[i].pm.progress = cli_progress_hook(&pr);
        cols[i].pm.label = cols[i].label;
        int prc = rc_pheno_run(&cols[i].pm, only, &cols[i].out, err, sizeof err);
        cli_progress_end(&pr);
        if (prc < 0) {
            fprintf(stderr, "retinac phenomena: %s: %s\n", cols[i].source, err);
            goto out;
        }
    }
    if (json) {
        rc_json j;
        rc_json_init(&j, stdout, 1);
        rc_json_begin_object(&j);
        rc_json_key(&j, "runs");
        rc_json_begin_array(&j);
        for (int i = 0; i < ncol; i++) {
            rc_json_begin_object(&j);
            rc_json_key(&j, "name"); rc_json_string(&j, cols[i].label);
            rc_json_key(&j, "source"); rc_json_string(&j, cols[i].source);
            rc_json_key(&j, "model"); rc_json_string(&j, cols[i].model);
            rc_json_key(&j, "numbers");
            rc_json_begin_object(&j);
            for (int k = 0; k < cols[i].out.n_nums; k++) {
                rc_json_key(&j, cols[i].out.nums[k].key);
                rc_json_number(&j, cols[i].out.nums[k].value);
            }
            rc_json_end_object(&j);
            rc_json_end_object(&j);
        }
        rc_json_end_array(&j);
        rc_json_end_object(&j);
        if (rc_json_finish(&j) != 0) { fprintf(stderr, "retinac phenomena: writing JSON failed\n"); goto out; }
    } else {
        for (int i = 0; i < ncol; i++)
            printf("%-14s %s (%s, %dx%d, %d cells)\n", cols[i].label, cols[i].source, cols[i].model,
                   cols[i].pm.H, cols[i].pm.W, cols[i].pm.cells);
        printf("\n");
        print_table(cols, ncol);
    }
    if (out_path && rc_pheno_write(out_path, cols, ncol, only, err, sizeof err) < 0) {
        fprintf(stderr, "retinac phenomena: %s\n", err);
        goto out;
    }
    status = 0;
out:
    for (int i = 0; cols && i < ncol; i++) rc_pheno_out_free(&cols[i].out);
    for (int i = 0; ctxs && cks && i < n; i++) {
        rc_backend_destroy(ctxs[i].be);
        rc_ckpt_free(&cks[i]);
    }
    rc_pheno_synth_close(syn);
    free(cols); free(cks); free(ctxs); free(runs);
    return status;
}
