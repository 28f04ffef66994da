/* cmd_compare.c — `retinac compare SPEC... --data FILE -o DIR [--seeds K]`: every spec (or every
 * setting of a parameterized spec's search section) is a variant; every variant trains with K
 * seeds (train.seed + k) as the trials of a search (search/search_run.h: DIR/<variant>/seed<k>/,
 * resumable, failures recorded, dealt over MPI ranks), then rank 0 evaluates each seed's
 * best.h5 on the test split and writes the comparison (search/compare.h): compare.csv,
 * compare_cells.csv, compare.json, and the table on stdout.
 * A spec that does not load is a failed variant (its error in the table) and the others run.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "compare.h"
#include "fsutil.h"
#include "search.h"
#include "search_mpi.h"
#include "search_run.h"
#include "search_ui.h"
#include "sha256.h"
#include "spec.h"
#include "train_flags.h"
#include "trial_models.h"

const char cmd_compare_help[] =
    "usage: retinac compare SPEC... --data FILE -o DIR [options]\n"
    "       mpirun -n K retinac compare SPEC... --data FILE -o DIR [options]\n"
    "\n"
    "Benchmark architecture variants. Every SPEC is a variant; a SPEC with a search section\n"
    "gives one variant per trial of it (e.g. a grid over its params {...}). Each variant trains\n"
    "with --seeds K seeds (the spec's train.seed + k, k = 0..K-1) into DIR/<variant>/seed<k>/,\n"
    "as retinac train would; then each seed's best.h5 (lowest validation loss: the test set\n"
    "never selects) is evaluated on the test split. Per variant: mean test r and FEVe over\n"
    "cells and their spread over seeds; the paired difference to the FIRST variant over cells\n"
    "(per-cell r averaged over seeds): mean, bootstrap 95% interval, Wilcoxon signed-rank p;\n"
    "parameters, FLOPs per sample, training and inference samples/s measured on this machine,\n"
    "epochs to the best validation loss. Written to DIR/compare.csv, DIR/compare_cells.csv\n"
    "(per-cell r of every variant) and DIR/compare.json; the table goes to stdout.\n"
    "\n"
    "A rerun resumes: finished seeds are read back, interrupted ones continue their checkpoint.\n"
    "A spec that does not load, or a seed that fails, is reported in the table with its error;\n"
    "the other variants still run (exit status 1 then). Under mpirun the seeds are dealt over\n"
    "the ranks and rank 0 writes the same table as a serial run (same seeds, same numbers;\n"
    "the measured speeds and wall times aside).\n"
    "\n"
    "  --data FILE            the recording (required)\n"
    "  -o, --out DIR          output folder (required)\n"
    "  --seeds K              seeds per variant (default 3)\n"
    "  --param NAME=VALUE     a parameter every SPEC declares with params {...} (repeatable)\n"
    "  --bench-iters N        timed iterations of the speed measurement per variant (default 5;\n"
    "                         0: no speeds)\n"
    "  --cells LIST           cells to model, e.g. 0,2,5-7 (default all)\n"
    "  --rate-key KEY         response dataset (default firing_rate_10ms)\n"
    "  --backend c|ref|cuda, --device D, --threads N, --mem-budget MB, --allow-other-recording,\n"
    "  --retry-failed, -q/--quiet, --json (print compare.json instead of the table)\n"
    "  --FIELD VALUE          any train field, for every variant (e.g. --epochs 20, --lr 1e-3)\n"
    "\n"
    "Exit status: 0 every variant ran, 1 a variant or seed failed (or an error), 2 usage error.\n";

#define MAX_SPECS 64

/* The folder-safe stem of a spec path: "specs/bncnn.lua" -> "bncnn". */
static void spec_stem(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t l = strcspn(b, ".");
    if (l == 0) l = strlen(b);
    size_t k = 0;
    for (size_t i = 0; i < l && k + 1 < n; i++) {
        char c = b[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        out[k++] = ok ? c : '_';
    }
    out[k] = 0;
    if (!k) snprintf(out, n, "spec");
}

/* Set v[i].name: want, bounded (a long name ends in 12 hex digits of its sha256), made unique
 * among v[0..i) by a "-2", "-3", ... suffix. */
static void name_variant(rc_compare_variant *v, int i, const char *want)
{
    char base[160], name[176];
    if (strlen(want) <= 150) {
        snprintf(base, sizeof base, "%s", want);
    } else {
        char hex[65];
        rc_sha256_hex(want, strlen(want), hex);
        snprintf(base, sizeof base, "%.137s_%.12s", want, hex);
    }
    snprintf(name, sizeof name, "%s", base);
    for (int dup = 2;; dup++) {
        int clash = 0;
        for (int j = 0; j < i && !clash; j++) clash = !strcmp(v[j].name, name);
        if (!clash) break;
        snprintf(name, sizeof name, "%s-%d", base, dup);
    }
    snprintf(v[i].name, sizeof v[i].name, "%s", name);
}

typedef struct {
    rc_compare_variant *v;
    int nv, cap;
    const rc_ir **model;          /* (cap) the model of each variant (NULL: failed to load) */
    rc_train *train;              /* (cap) its settings */
    rc_ir **owned;                /* specs loaded here */
    int n_owned;
    cli_trial_models *tm;         /* per spec with a search over params */
    int n_tm;
    char **errs;                  /* load errors of specs that did not load */
    int n_errs;
} variants;

static int grow(variants *vs)
{
    if (vs->nv < vs->cap) return 0;
    int cap = vs->cap ? 2 * vs->cap : 16;
    rc_compare_variant *v = realloc(vs->v, (size_t)cap * sizeof *v);
    if (v) vs->v = v;
    const rc_ir **m = realloc(vs->model, (size_t)cap * sizeof *m);
    if (m) vs->model = m;
    rc_train *t = realloc(vs->train, (size_t)cap * sizeof *t);
    if (t) vs->train = t;
    if (!v || !m || !t) return -1;
    vs->cap = cap;
    return 0;
}

static void variants_free(variants *vs)
{
    for (int i = 0; i < vs->n_owned; i++) free(vs->owned[i]);
    for (int i = 0; i < vs->n_tm; i++) cli_trial_models_free(&vs->tm[i]);
    for (int i = 0; i < vs->n_errs; i++) free(vs->errs[i]);
    free(vs->errs);
    free(vs->owned);
    free(vs->tm);
    free(vs->v);
    free(vs->model);
    free(vs->train);
}

/* Train-field overrides of the command line applied to t. 0, or -1 with a message. */
static int apply_train_flags(rc_train *t, const char *const *key, const char *const *val, int n,
                             char *err, size_t errlen)
{
    int nf;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &nf);
    for (int k = 0; k < n; k++)
        for (int q = 0; q < nf; q++)
            if (!strcmp(tf[q].name, key[k]) && cli_set_train_field(&tf[q], t, val[k], err, errlen) < 0) return -1;
    return 0;
}

/* The variants of one SPEC: itself, or one per trial of its search. A spec that does not load
 * is one failed variant. 0, or -1 (out of memory, a usage error: message in err; *usage set). */
static int add_spec(variants *vs, const char *path, const rc_spec_override *pov, int n_pov,
                    const char *const *ov_key, const char *const *ov_val, int n_ov, int *usage,
                    char *err, size_t errlen)
{
    char stem[128], lerr[1024];
    spec_stem(path, stem, sizeof stem);
    rc_ir *spec = malloc(sizeof *spec);
    rc_ir **owned = realloc(vs->owned, (size_t)(vs->n_owned + 1) * sizeof *owned);
    if (owned) vs->owned = owned;
    if (!spec || !owned || grow(vs) < 0) { free(spec); return rc_errf(err, errlen, "out of memory"); }
    vs->owned[vs->n_owned++] = spec;
    rc_compare_variant *v = &vs->v[vs->nv];
    memset(v, 0, sizeof *v);
    v->spec_path = path;
    if (rc_spec_load_params(path, pov, n_pov, spec, lerr, sizeof lerr) < 0) {
        char *e = strdup(lerr), **errs = realloc(vs->errs, (size_t)(vs->n_errs + 1) * sizeof *errs);
        if (errs) vs->errs = errs;
        if (!e || !errs) { free(e); return rc_errf(err, errlen, "out of memory"); }
        vs->errs[vs->n_errs++] = e;
        v->load_error = e;
        name_variant(vs->v, vs->nv, stem);
        vs->model[vs->nv] = NULL;
        vs->nv++;
        return 0;
    }
    rc_train base = spec->train;
    if (apply_train_flags(&base, ov_key, ov_val, n_ov, err, errlen) < 0) { *usage = 1; return -1; }
    if (spec->search.n_dims == 0) {
        name_variant(vs->v, vs->nv, stem);
        vs->model[vs->nv] = spec;
        vs->train[vs->nv] = base;
        vs->nv++;
        return 0;
    }
    /* a parameterized spec: one variant per trial of its search */
    rc_search_trial *t = NULL;
    int n = 0;
    if (rc_search_expand(&spec->search, &base, &t, &n, lerr, sizeof lerr) < 0)
        return rc_errf(err, errlen, "%s: %s", path, lerr);
    cli_trial_models *tm = realloc(vs->tm, (size_t)(vs->n_tm + 1) * sizeof *tm);
    if (!tm) { free(t); return rc_errf(err, errlen, "out of memory"); }
    vs->tm = tm;
    if (cli_trial_models_load(path, &spec->train, &spec->search, pov, n_pov, t, n, &tm[vs->n_tm], err,
                              errlen) < 0) {
        free(t);
        *usage = 1;
        return -1;
    }
    vs->n_tm++;
    for (int i = 0; i < n; i++) {
        if (grow(vs) < 0) { free(t); return rc_errf(err, errlen, "out of memory"); }
        v = &vs->v[vs->nv];
        memset(v, 0, sizeof *v);
        v->spec_path = path;
        snprintf(v->setting, sizeof v->setting, "%s", t[i].name);
        v->load_error = t[i].model_error;
        char want[512];
        snprintf(want, sizeof want, "%s_%s", stem, t[i].name);
        name_variant(vs->v, vs->nv, want);
        vs->model[vs->nv] = t[i].model_error ? NULL : t[i].model ? t[i].model : spec;
        vs->train[vs->nv] = t[i].train;
        vs->nv++;
    }
    free(t);
    return 0;
}

static void print_table(const rc_compare_variant *v, int nv, const rc_compare_summary *s, int seeds,
                        const char *dir)
{
    printf("compare: %d variants x %d seeds in %s; paired differences to %s over cells\n", nv, seeds,
           dir, v[0].name);
    printf("%-28s %5s %7s %6s %7s %8s %18s %8s %8s %9s %8s %8s %6s\n", "variant", "seeds", "test_r", "sd",
           "feve", "diff_r", "95% interval", "p", "params", "MFLOP/fwd", "train/s", "infer/s", "epoch");
    for (int i = 0; i < nv; i++) {
        const rc_compare_summary *x = &s[i];
        if (!x->ok) {
            printf("%-28.28s failed: %s\n", v[i].name, x->error);
            continue;
        }
        char seeds_txt[16], ci[40] = "", d[16] = "", p[16] = "";
        snprintf(seeds_txt, sizeof seeds_txt, "%d/%d", x->seeds_ok, x->seeds);
        if (isfinite(x->d_mean)) {
            snprintf(d, sizeof d, "%+.4f", x->d_mean);
            snprintf(ci, sizeof ci, "[%+.4f, %+.4f]", x->d_lo, x->d_hi);
            snprintf(p, sizeof p, "%.3g", x->p);
        } else if (i == 0) {
            snprintf(d, sizeof d, "base");
        }
        printf("%-28.28s %5s %7.4f %6.4f %7.4f %8s %18s %8s %8d %9.2f %8.0f %8.0f %6.1f\n", v[i].name, seeds_txt,
               x->mean_r, x->sd_r, x->mean_feve, d, ci, p, x->n_params, x->flops_fwd * 1e-6, x->train_sps,
               x->infer_sps, x->epochs_to_best);
        if (x->error[0]) printf("%-28s   (a seed failed: %s)\n", "", x->error);
    }
}

int cmd_compare(int argc, char **argv)
{
    const char *specs[MAX_SPECS], *data = NULL, *dir = NULL;
    int n_specs = 0, seeds = 3, bench_iters = 5, quiet = 0, json = 0, retry_failed = 0;
    int say = cli_mpi_env_rank() == 0, *cells = NULL, n_cells = 0;
    const char *ov_key[64], *ov_val[64];
    int n_ov = 0;
    rc_spec_override pov[RC_SPEC_MAX_PARAMS];
    int n_pov = 0;
    rc_train_opts to;
    rc_train_opts_default(&to);
    char err[1024];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define USAGE(...) do { if (say) { fprintf(stderr, "retinac compare: " __VA_ARGS__); fputc('\n', stderr); } free(cells); return 2; } while (0)
#define NEED() do { if (!next) USAGE("%s needs a value", a); i++; } while (0)
        int took = cli_run_flag(a, next, &to, &cells, &n_cells, err, sizeof err);
        if (took < 0) USAGE("%s", err);
        if (took > 0) { i += took - 1; continue; }
        if (!strcmp(a, "--data")) { NEED(); data = next; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); dir = next; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--retry-failed")) retry_failed = 1;
        else if (!strcmp(a, "--param")) {
            NEED();
            if (cli_parse_param(argv[i], pov, &n_pov, RC_SPEC_MAX_PARAMS, err, sizeof err) < 0) USAGE("%s", err);
        } else if (!strcmp(a, "--seeds") || !strcmp(a, "--bench-iters")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            int seeds_flag = !strcmp(a, "--seeds"), lo = seeds_flag ? 1 : 0, hi = seeds_flag ? 1000 : 4096;
            if (*end || end == next || v < lo || v > hi) USAGE("%s '%s': expected %d..%d", a, next, lo, hi);
            if (seeds_flag) seeds = (int)v;
            else bench_iters = (int)v;
        } else if (a[0] == '-' && a[1] == '-' && cli_train_flag(a)) {
            if (!strcmp(cli_train_flag(a)->name, "seed")) USAGE("--seed: compare sets the seeds (--seeds K: train.seed + k)");
            NEED();
            if (n_ov == 64) USAGE("too many options");
            ov_key[n_ov] = cli_train_flag(a)->name;
            ov_val[n_ov++] = next;
        } else if (a[0] == '-' && a[1]) USAGE("unknown option %s (see retinac help compare)", a);
        else if (n_specs == MAX_SPECS) USAGE("at most %d specs", MAX_SPECS);
        else specs[n_specs++] = a;
#undef NEED
    }
    if (!n_specs || !data || !dir) {
        if (say) fputs("usage: retinac compare SPEC... --data FILE -o DIR [options] (retinac help compare)\n", stderr);
        free(cells);
        return 2;
    }

    int status = 1;
    variants vs;
    memset(&vs, 0, sizeof vs);
    rc_search_trial *t = NULL;
    rc_search_result res;
    memset(&res, 0, sizeof res);
    rc_compare_summary *sum = NULL;
    cli_mpi mpi = {.size = 1, .local_size = 1};
    int n = 0;
    for (int i = 0; i < n_specs; i++) {
        int usage = 0;
        if (add_spec(&vs, specs[i], pov, n_pov, ov_key, ov_val, n_ov, &usage, err, sizeof err) < 0) {
            if (say) fprintf(stderr, "retinac compare: %s\n", err);
            status = usage ? 2 : 1;
            goto out;
        }
    }
    if (access(data, R_OK) != 0) {
        if (say) fprintf(stderr, "retinac compare: --data %s: %s\n", data, strerror(errno));
        goto out;
    }
    {
        static const char *const outs[] = {"compare.csv", "compare.json", "compare_cells.csv", "search_scope.txt", NULL};
        if (rc_dir_not_input(dir, outs, specs, n_specs, err, sizeof err) < 0 ||
            rc_dir_not_input(dir, outs, &data, 1, err, sizeof err) < 0) {
            if (say) fprintf(stderr, "retinac compare: -o %s\n", err);
            goto out;
        }
    }
    /* the trials: seed k of every variant that loaded */
    int first_ok = -1;
    for (int i = 0; i < vs.nv; i++)
        if (vs.model[i] && first_ok < 0) first_ok = i;
    t = calloc((size_t)vs.nv * (size_t)seeds + 1, sizeof *t);
    if (!t) { fprintf(stderr, "retinac compare: out of memory\n"); goto out; }
    for (int i = 0; i < vs.nv; i++) {
        rc_compare_variant *v = &vs.v[i];
        v->first_trial = n;
        v->n_trials = vs.model[i] ? seeds : 0;
        for (int k = 0; k < v->n_trials; k++, n++) {
            t[n].index = n;
            t[n].grid_index = t[n].random_index = -1;
            snprintf(t[n].name, sizeof t[n].name, "%.180s/seed%d", v->name, k);   /* names are <= 176 bytes */
            t[n].train = vs.train[i];
            t[n].train.seed = vs.train[i].seed + (uint64_t)k;
            t[n].model = vs.model[i];
        }
    }
    if (first_ok < 0) {
        /* nothing to train: the table says why */
        if (say) {
            fprintf(stderr, "retinac compare: no variant loaded\n");
            for (int i = 0; i < vs.nv; i++) fprintf(stderr, "  %s: %s\n", vs.v[i].name, vs.v[i].load_error);
        }
        goto out;
    }
    if (rc_make_dirs(dir, err, sizeof err) < 0) {
        if (say) fprintf(stderr, "retinac compare: -o: %s\n", err);
        goto out;
    }
    to.cells = cells;
    to.n_cells = n_cells;
    cli_search_ui ui = {"compare", quiet, vs.model[first_ok]->name, to.backend, dir, 0, 0, 0};
    to.warn = cli_search_on_warn;
    to.warn_ctx = &ui;
    rc_search_opts so;
    rc_search_opts_default(&so);
    so.spec = vs.model[first_ok];
    so.base = &vs.train[first_ok];
    so.trials = t;
    so.n = n;
    so.data = data;
    so.dir = dir;
    so.spec_path = specs[0];
    so.retry_failed = retry_failed;
    so.no_summary = 1;
    so.train = to;
    so.event = cli_search_on_event;
    so.event_ctx = &ui;
    int rank;
    if (cli_search_run("compare", &mpi, &argc, &argv, &so, &res, &rank) < 0) goto out;
    if (rank != 0) { status = 0; goto out; }   /* rank 0 summarizes and carries the status */
    rc_compare_opts co = {.data = data, .backend = to.backend, .device = to.device, .bench_iters = bench_iters};
    sum = calloc((size_t)vs.nv, sizeof *sum);
    if (!sum) { fprintf(stderr, "retinac compare: out of memory\n"); goto out; }
    if (rc_compare_summarize(dir, vs.v, vs.nv, t, res.rows, &co, sum, err, sizeof err) < 0 ||
        rc_compare_write(dir, vs.v, vs.nv, sum, &co, seeds, err, sizeof err) < 0) {
        fprintf(stderr, "retinac compare: %s\n", err);
        goto out;
    }
    if (json) {
        char path[1100];
        snprintf(path, sizeof path, "%s/compare.json", dir);
        FILE *f = fopen(path, "rb");   /* just written: print what the file holds */
        if (!f) { fprintf(stderr, "retinac compare: %s: %s\n", path, strerror(errno)); goto out; }
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, got, stdout);
        int bad = ferror(f);
        fclose(f);
        if (bad) { fprintf(stderr, "retinac compare: %s: read error\n", path); goto out; }
    } else {
        print_table(vs.v, vs.nv, sum, seeds, dir);
    }
    int failed = res.failed;
    for (int i = 0; i < vs.nv; i++) failed |= !sum[i].ok;
    status = failed ? 1 : 0;
out:
    if (cli_mpi_finalize(&mpi, err, sizeof err) < 0) {
        fprintf(stderr, "retinac compare: rank %d: %s\n", mpi.rank, err);
        status = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "retinac compare: writing the output to stdout failed: %s\n", strerror(errno));
        status = 1;
    }
    if (sum) rc_compare_summary_free(sum, vs.nv);
    free(sum);
    rc_search_result_free(&res);
    free(t);
    variants_free(&vs);
    free(cells);
    return status;
#undef USAGE
}
