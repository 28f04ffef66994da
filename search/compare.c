/* compare.c — the summary of `retinac compare` (see compare.h): every finished seed's best.h5
 * evaluated on the test split, per-variant means and spreads, the paired statistics against
 * the first variant, the cost of each variant, and the summary files.
 * Invariants: everything but the measured speeds and wall times is a pure function of the runs
 * (fixed bootstrap seed, seeds and cells in order), so a serial and an MPI compare write the
 * same numbers; files are written atomically; a variant that failed is a row with its error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "checkpoint.h"
#include "compare.h"
#include "errbuf.h"
#include "eval.h"
#include "fsutil.h"
#include "json.h"
#include "stats.h"

void rc_compare_summary_free(rc_compare_summary *sum, int nv)
{
    for (int i = 0; sum && i < nv; i++) {
        free(sum[i].cell_r);
        free(sum[i].cell_feve);
        free(sum[i].seed_r);
        free(sum[i].seed_feve);
        sum[i].cell_r = sum[i].cell_feve = sum[i].seed_r = sum[i].seed_feve = NULL;
    }
}

/* Mean and sample sd of the finite values of x[n] (sd NaN below two). */
static void finite_mean_sd(const double *x, int n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) { s += x[i]; k++; }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = k >= 2 ? sqrt(ss / (k - 1)) : NAN;
}

/* Evaluate the finished seeds of variant v into s (cells, per-seed and per-cell means, cost
 * from the first finished seed's checkpoint, speed by rc_bench_run). */
static int summarize_variant(const char *dir, const rc_compare_variant *v, const rc_search_trial *t,
                             const rc_search_row *rows, const rc_compare_opts *o,
                             rc_compare_summary *s, char *err, size_t errlen)
{
    s->seeds = v->n_trials;
    s->mean_r = s->sd_r = s->mean_feve = s->sd_feve = NAN;
    s->d_mean = s->d_lo = s->d_hi = s->p = NAN;
    s->flops_fwd = s->flops_train = s->train_sps = s->infer_sps = s->epochs_to_best = NAN;
    if (v->load_error) {
        snprintf(s->error, sizeof s->error, "%s", v->load_error);
        return 0;
    }
    s->seed_r = malloc((size_t)(v->n_trials + 1) * sizeof *s->seed_r);
    s->seed_feve = malloc((size_t)(v->n_trials + 1) * sizeof *s->seed_feve);
    if (!s->seed_r || !s->seed_feve) return rc_errf(err, errlen, "out of memory");
    double epochs = 0;
    rc_checkpoint first;
    memset(&first, 0, sizeof first);
    int rc = 0;
    for (int k = 0; k < v->n_trials && rc == 0; k++) {
        const rc_search_trial *tr = &t[v->first_trial + k];
        const rc_search_row *row = &rows[v->first_trial + k];
        s->seed_r[k] = s->seed_feve[k] = NAN;
        s->seconds += row->seconds;
        if (row->status != RC_TRIAL_OK) {
            if (!s->error[0]) snprintf(s->error, sizeof s->error, "%s: %s", tr->name, row->error);
            continue;
        }
        char rundir[1200], path[1300];
        snprintf(rundir, sizeof rundir, "%s/%s", dir, tr->name);
        rc_ckpt_resolve(rundir, path, sizeof path);
        rc_checkpoint ck;
        if (rc_ckpt_load(path, &ck, err, errlen) < 0) { rc = -1; break; }
        rc_eval_metrics m;
        memset(&m, 0, sizeof m);
        if (rc_eval_checkpoint(&ck, o->data, o->backend ? o->backend : "c", o->device ? o->device : "cpu",
                               &m, NULL, NULL, NULL, err, errlen) < 0) {
            rc_ckpt_free(&ck);
            rc = -1;
            break;
        }
        if (!s->cell_r) {
            s->cells = m.cells;
            s->cell_r = calloc((size_t)m.cells, sizeof *s->cell_r);
            s->cell_feve = calloc((size_t)m.cells, sizeof *s->cell_feve);
            if (!s->cell_r || !s->cell_feve) rc = rc_errf(err, errlen, "out of memory");
        } else if (m.cells != s->cells) {
            rc = rc_errf(err, errlen, "%s: %d cells where the variant's other seeds have %d", path, m.cells, s->cells);
        }
        for (int c = 0; rc == 0 && c < m.cells; c++) {
            s->cell_r[c] += m.r[c];
            s->cell_feve[c] += m.feve[c];
        }
        s->seed_r[k] = m.mean_r;
        s->seed_feve[k] = m.mean_feve;
        epochs += (double)row->best_epoch;
        s->seeds_ok++;
        rc_eval_metrics_free(&m);
        if (!first.ir) first = ck;
        else rc_ckpt_free(&ck);
    }
    if (rc == 0 && s->seeds_ok) {
        s->ok = 1;
        for (int c = 0; c < s->cells; c++) {
            s->cell_r[c] /= s->seeds_ok;
            s->cell_feve[c] /= s->seeds_ok;
        }
        finite_mean_sd(s->seed_r, v->n_trials, &s->mean_r, &s->sd_r);
        finite_mean_sd(s->seed_feve, v->n_trials, &s->mean_feve, &s->sd_feve);
        s->epochs_to_best = epochs / s->seeds_ok;
        const rc_ir *ir = first.ir;
        s->n_params = (int)ir->params_total;
        s->flops_fwd = ir->flops_fwd;
        s->flops_train = ir->flops_train;
        if (o->bench_iters > 0) {
            rc_bench_opts bo;
            rc_bench_opts_default(&bo);
            bo.backend = o->backend && !strcmp(o->backend, "ref") ? "ref" : "c";
            bo.iters = o->bench_iters;
            rc_bench_result br;
            if (rc_bench_run(ir, &bo, &br, err, errlen) < 0) rc = -1;
            else {
                s->train_sps = br.train_sps;
                s->infer_sps = br.infer_sps;
                s->bench_batch = br.batch;
            }
        }
    }
    if (first.ir) rc_ckpt_free(&first);
    return rc;
}

int rc_compare_summarize(const char *dir, const rc_compare_variant *v, int nv,
                         const rc_search_trial *t, const rc_search_row *rows,
                         const rc_compare_opts *o, rc_compare_summary *sum, char *err, size_t errlen)
{
    memset(sum, 0, (size_t)nv * sizeof *sum);
    for (int i = 0; i < nv; i++)
        if (summarize_variant(dir, &v[i], t, rows, o, &sum[i], err, errlen) < 0) return -1;
    const rc_compare_summary *b = &sum[0];
    for (int i = 1; i < nv && b->ok; i++) {
        rc_compare_summary *s = &sum[i];
        if (!s->ok) continue;
        if (s->cells != b->cells)
            return rc_errf(err, errlen, "variants %s and %s model %d and %d cells: not comparable",
                           v[0].name, v[i].name, b->cells, s->cells);
        if (s->cells < 2) continue;       /* no interval from one cell */
        rc_stats_paired_result pr;
        char m[256];
        if (rc_stats_paired(b->cell_r, s->cell_r, s->cells, RC_COMPARE_RESAMPLES, RC_COMPARE_BOOT_SEED,
                            &pr, m, sizeof m) < 0)
            return rc_errf(err, errlen, "variant %s: paired statistics: %s", v[i].name, m);
        s->d_mean = pr.diff.mean;
        s->d_lo = pr.diff.lo;
        s->d_hi = pr.diff.hi;
        s->p = pr.wilcoxon.p;
    }
    return 0;
}

/* The CPU model of this machine ("" if unknown), for the speeds' provenance. */
static void cpu_model(char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *p = strchr(line, ':');
            if (p) snprintf(buf, n, "%.*s", (int)strcspn(p + 2, "\n"), p + 2);
            break;
        }
    fclose(f);
}

static void put_csv(FILE *f, const rc_compare_variant *v, const rc_compare_summary *s)
{
    rc_search_csv_text(f, v->name);
    fputc(',', f);
    rc_search_csv_text(f, v->spec_path);
    fprintf(f, ",%s,%s,%d,%d,", v->setting, s->ok ? "ok" : "failed", s->seeds_ok, s->seeds);
    const double nums[] = {s->mean_r, s->sd_r, s->mean_feve, s->sd_feve, s->d_mean, s->d_lo, s->d_hi, s->p};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) { rc_search_csv_num(f, nums[i]); fputc(',', f); }
    if (s->ok) fprintf(f, "%d,%d", s->cells, s->n_params);
    else fputc(',', f);
    const double cost[] = {s->flops_fwd, s->flops_train, s->epochs_to_best, s->train_sps, s->infer_sps, s->seconds};
    for (size_t i = 0; i < sizeof cost / sizeof cost[0]; i++) { fputc(',', f); rc_search_csv_num(f, cost[i]); }
    fputc(',', f);
    if (!s->ok) rc_search_csv_text(f, s->error);
    fputc('\n', f);
}

/* "key": [x0, x1, ...] */
static void json_numbers(rc_json *j, const char *key, const double *x, int n)
{
    rc_json_key(j, key);
    rc_json_begin_array(j);
    for (int i = 0; i < n; i++) rc_json_number(j, x[i]);
    rc_json_end_array(j);
}

static void put_json(rc_json *j, const rc_compare_variant *v, const rc_compare_summary *s)
{
    rc_json_begin_object(j);
    rc_json_key(j, "name"); rc_json_string(j, v->name);
    rc_json_key(j, "spec"); rc_json_string(j, v->spec_path);
    rc_json_key(j, "setting"); rc_json_string(j, v->setting);
    rc_json_key(j, "status"); rc_json_string(j, s->ok ? "ok" : "failed");
    if (s->error[0]) { rc_json_key(j, "error"); rc_json_string(j, s->error); }
    rc_json_key(j, "seeds"); rc_json_int(j, s->seeds);
    rc_json_key(j, "seeds_ok"); rc_json_int(j, s->seeds_ok);
    rc_json_key(j, "mean_r"); rc_json_number(j, s->mean_r);
    rc_json_key(j, "sd_r_over_seeds"); rc_json_number(j, s->sd_r);
    rc_json_key(j, "mean_feve"); rc_json_number(j, s->mean_feve);
    rc_json_key(j, "sd_feve_over_seeds"); rc_json_number(j, s->sd_feve);
    rc_json_key(j, "paired_to_baseline");
    rc_json_begin_object(j);
    rc_json_key(j, "mean_diff_r"); rc_json_number(j, s->d_mean);
    rc_json_key(j, "ci95_lo"); rc_json_number(j, s->d_lo);
    rc_json_key(j, "ci95_hi"); rc_json_number(j, s->d_hi);
    rc_json_key(j, "wilcoxon_p"); rc_json_number(j, s->p);
    rc_json_end_object(j);
    rc_json_key(j, "cells"); rc_json_int(j, s->cells);
    rc_json_key(j, "params"); rc_json_int(j, s->n_params);
    rc_json_key(j, "flops_forward_per_sample"); rc_json_number(j, s->flops_fwd);
    rc_json_key(j, "flops_train_per_sample"); rc_json_number(j, s->flops_train);
    rc_json_key(j, "epochs_to_best"); rc_json_number(j, s->epochs_to_best);
    rc_json_key(j, "train_samples_per_s"); rc_json_number(j, s->train_sps);
    rc_json_key(j, "infer_samples_per_s"); rc_json_number(j, s->infer_sps);
    rc_json_key(j, "bench_batch"); rc_json_int(j, s->bench_batch);
    rc_json_key(j, "seconds"); rc_json_number(j, s->seconds);
    json_numbers(j, "seed_mean_r", s->seed_r, s->seed_r ? s->seeds : 0);
    json_numbers(j, "cell_r", s->cell_r, s->ok ? s->cells : 0);
    json_numbers(j, "cell_feve", s->cell_feve, s->ok ? s->cells : 0);
    rc_json_end_object(j);
}

/* Write the text of f (an open_memstream) to path atomically; closes f. */
static int commit(FILE *f, char **buf, size_t *len, const char *path, char *err, size_t errlen)
{
    int bad = fclose(f) != 0;
    int rc = bad ? rc_errf(err, errlen, "%s: out of memory", path)
                 : rc_write_file_atomic(path, *buf, *len, err, errlen);
    free(*buf);
    *buf = NULL;
    return rc;
}

int rc_compare_write(const char *dir, const rc_compare_variant *v, int nv,
                     const rc_compare_summary *sum, const rc_compare_opts *o, int seeds,
                     char *err, size_t errlen)
{
    char path[1100], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "%s: out of memory", dir);
    fputs("variant,spec,setting,status,seeds_ok,seeds,mean_r,sd_r,mean_feve,sd_feve,diff_r,diff_r_lo,"
          "diff_r_hi,wilcoxon_p,cells,params,flops_forward,flops_train,epochs_to_best,"
          "train_samples_per_s,infer_samples_per_s,seconds,error\n", f);
    for (int i = 0; i < nv; i++) put_csv(f, &v[i], &sum[i]);
    snprintf(path, sizeof path, "%s/compare.csv", dir);
    if (commit(f, &buf, &len, path, err, errlen) < 0) return -1;

    f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "%s: out of memory", dir);
    int cells = 0;
    for (int i = 0; i < nv; i++)
        if (sum[i].ok && sum[i].cells > cells) cells = sum[i].cells;
    fputs("cell", f);
    for (int i = 0; i < nv; i++) { fputc(',', f); rc_search_csv_text(f, v[i].name); }
    fputc('\n', f);
    for (int c = 0; c < cells; c++) {
        fprintf(f, "%d", c);
        for (int i = 0; i < nv; i++) {
            fputc(',', f);
            if (sum[i].ok && c < sum[i].cells) rc_search_csv_num(f, sum[i].cell_r[c]);
        }
        fputc('\n', f);
    }
    snprintf(path, sizeof path, "%s/compare_cells.csv", dir);
    if (commit(f, &buf, &len, path, err, errlen) < 0) return -1;

    f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "%s: out of memory", dir);
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    rc_json j;
    rc_json_init(&j, f, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "data"); rc_json_string(&j, o->data);
    rc_json_key(&j, "seeds"); rc_json_int(&j, seeds);
    rc_json_key(&j, "baseline"); rc_json_string(&j, v[0].name);
    rc_json_key(&j, "selection");
    rc_json_string(&j, "each seed's best.h5: the epoch of lowest validation loss; the test set only reports");
    rc_json_key(&j, "statistics");
    rc_json_string(&j, "per cell: test r averaged over a variant's finished seeds; paired difference "
                       "variant - baseline over cells: mean, percentile-bootstrap 95% interval "
                       "(10000 resamples, fixed seed), two-sided Wilcoxon signed-rank p (scipy's "
                       "defaults); sd over seeds of each seed's mean r");
    rc_json_key(&j, "bench_iters"); rc_json_int(&j, o->bench_iters);
    rc_json_key(&j, "cpu"); rc_json_string(&j, cpu);
    rc_json_key(&j, "variants");
    rc_json_begin_array(&j);
    for (int i = 0; i < nv; i++) put_json(&j, &v[i], &sum[i]);
    rc_json_end_array(&j);
    rc_json_end_object(&j);
    if (rc_json_finish(&j)) { fclose(f); free(buf); return rc_errf(err, errlen, "%s: JSON output failed", dir); }
    fputc('\n', f);
    snprintf(path, sizeof path, "%s/compare.json", dir);
    return commit(f, &buf, &len, path, err, errlen);
}
