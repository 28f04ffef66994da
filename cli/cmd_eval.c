/* cmd_eval.c — `retinac eval RUNDIR|CHECKPOINT... [--data FILE] [--json]`: per-cell Pearson r
 * against the trial-averaged test response, the repeat-reliability ceiling, jackknife oracle
 * and FEVe (runtime/metrics.h), for one or several runs side by side (per-cell rows, run
 * columns, plus the ceiling). A RUNDIR means its best.h5 (checkpoint.h5 if there is no best).
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd.h"
#include "json.h"
#include "train.h"

const char cmd_eval_help[] =
    "usage: retinac eval RUNDIR|CHECKPOINT... [--data FILE] [--json] [options]\n"
    "\n"
    "Evaluate trained models on the test split: per cell, the Pearson r between the model and\n"
    "the trial-averaged test response (the papers' metric), the data's reliability ceiling\n"
    "(split-half over random splits of the repeats, Spearman-Brown corrected; ceiling =\n"
    "sqrt(reliability), the r a perfect model reaches), the jackknife oracle (one trial vs the\n"
    "mean of the others) and FEVe (fraction of explainable variance explained, noise variance\n"
    "from the repeats). Several runs print side by side in one table.\n"
    "A RUNDIR stands for RUNDIR/best.h5 (or checkpoint.h5 when there is no best.h5).\n"
    "\n"
    "  --data FILE        recording (default: the one each checkpoint was trained on). It must\n"
    "                     be the recording the model was trained on: frame size, cells and a\n"
    "                     content fingerprint are checked against the checkpoint\n"
    "  --allow-other-recording  evaluate on a different recording on purpose (e.g. another\n"
    "                     recording of the same cells, with the checkpoint's cell ids); warns\n"
    "                     what differs\n"
    "  --json             one JSON object: for one run {cells:[{cell,r,ceiling,oracle,feve,...}],\n"
    "                     mean_r, mean_ceiling, mean_feve, ...}; for several {runs:[...]}\n"
    "  --backend c|ref    --device cpu|cuda   --threads N\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

static void copy_str(char *out, size_t n, const char *s)
{
    size_t L = strlen(s);
    if (L >= n) L = n - 1;
    memcpy(out, s, L);
    out[L] = 0;
}

/* A short column label: the run folder's name, else the file name without .h5. */
static void label_of(const char *arg, char *out, size_t n)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", arg);
    size_t L = strlen(buf);
    while (L > 1 && buf[L - 1] == '/') buf[--L] = 0;
    const char *b = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    copy_str(out, n, b);
    L = strlen(out);
    if (L > 3 && !strcmp(out + L - 3, ".h5")) {
        out[L - 3] = 0;
        /* best.h5 / checkpoint.h5 given directly: use the folder name */
        if ((!strcmp(out, "best") || !strcmp(out, "checkpoint")) && b != buf) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%.*s", (int)(b - buf - 1), buf);
            const char *d = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
            copy_str(out, n, d);
        }
    }
}

static void json_run(rc_json *j, const char *label, const char *path, const rc_checkpoint *ck,
                     const rc_eval_metrics *m, const double *truth)
{
    rc_json_key(j, "name"); rc_json_string(j, label);
    rc_json_key(j, "checkpoint"); rc_json_string(j, path);
    rc_json_key(j, "model"); rc_json_string(j, ck->ir->name);
    rc_json_key(j, "spec_hash"); rc_json_string(j, ck->spec_hash);
    rc_json_key(j, "epoch"); rc_json_int(j, ck->epoch);
    rc_json_key(j, "n_cells"); rc_json_int(j, m->cells);
    rc_json_key(j, "mean_r"); rc_json_number(j, m->mean_r);
    rc_json_key(j, "mean_ceiling"); rc_json_number(j, m->mean_ceiling);
    rc_json_key(j, "mean_oracle"); rc_json_number(j, m->mean_oracle);
    rc_json_key(j, "mean_feve"); rc_json_number(j, m->mean_feve);
    rc_json_key(j, "mean_reliability"); rc_json_number(j, m->mean_reliability);
    rc_json_key(j, "truth_mean_r"); rc_json_number(j, rc_mean_finite(truth, m->cells));
    rc_json_key(j, "cells");
    rc_json_begin_array(j);
    for (int c = 0; c < m->cells; c++) {
        rc_json_begin_object(j);
        rc_json_key(j, "cell"); rc_json_int(j, ck->cell_ids[c]);
        rc_json_key(j, "r"); rc_json_number(j, m->r[c]);
        rc_json_key(j, "ceiling"); rc_json_number(j, m->ceiling[c]);
        rc_json_key(j, "oracle"); rc_json_number(j, m->oracle[c]);
        rc_json_key(j, "feve"); rc_json_number(j, m->feve[c]);
        rc_json_key(j, "reliability"); rc_json_number(j, m->reliability[c]);
        rc_json_key(j, "truth_r"); rc_json_number(j, truth[c]);
        rc_json_end_object(j);
    }
    rc_json_end_array(j);
}

int cmd_eval(int argc, char **argv)
{
    const char *data = NULL, *backend = "c", *device = "cpu";
    int json = 0, threads = 0, n = 0, allow_other = 0;
    const char **runs = calloc((size_t)argc, sizeof *runs);
    if (!runs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac eval: %s needs a value\n", a); free(runs); return 2; } i++; } while (0)
        if (!strcmp(a, "--data")) { NEED(); data = next; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--allow-other-recording")) allow_other = 1;
        else if (!strcmp(a, "--backend")) { NEED(); backend = next; }
        else if (!strcmp(a, "--device")) { NEED(); device = next; }
        else if (!strcmp(a, "--threads")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            if (*end || v < 1 || v > 4096) { fprintf(stderr, "retinac eval: --threads '%s': expected 1..4096\n", next); free(runs); return 2; }
            threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac eval: unknown option %s (see retinac help eval)\n", a);
            free(runs);
            return 2;
        } else runs[n++] = a;
#undef NEED
    }
    if (n == 0) {
        fputs("usage: retinac eval RUNDIR|CHECKPOINT... [--data FILE] [--json]\n", stderr);
        free(runs);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    rc_checkpoint *cks = calloc((size_t)n, sizeof *cks);
    rc_eval_metrics *ms = calloc((size_t)n, sizeof *ms);
    double **truth = calloc((size_t)n, sizeof *truth);
    char (*paths)[1100] = calloc((size_t)n, sizeof *paths);
    char (*labels)[64] = calloc((size_t)n, sizeof *labels);
    int status = 1;
    char err[1024];
    if (!cks || !ms || !truth || !paths || !labels) { fprintf(stderr, "retinac eval: out of memory\n"); goto out; }
    for (int i = 0; i < n; i++) {
        rc_ckpt_resolve(runs[i], paths[i], sizeof paths[i]);
        label_of(runs[i], labels[i], sizeof labels[i]);
        if (rc_ckpt_load(paths[i], &cks[i], err, sizeof err) < 0) { fprintf(stderr, "retinac eval: %s\n", err); goto out; }
        truth[i] = malloc((size_t)cks[i].cells * sizeof(double));
        if (!truth[i]) { fprintf(stderr, "retinac eval: out of memory\n"); goto out; }
        rc_rec_check chk;
        memset(&chk, 0, sizeof chk);
        chk.allow_other = allow_other;
        if (rc_eval_checkpoint_chk(&cks[i], data, backend, device, &chk, &ms[i], NULL, NULL,
                                   truth[i], err, sizeof err) < 0) {
            fprintf(stderr, "retinac eval: %s: %s\n", paths[i], err);
            goto out;
        }
        if (chk.warning[0]) fprintf(stderr, "retinac eval: warning: %s\n", chk.warning);
        if (i > 0 && (cks[i].cells != cks[0].cells ||
                      memcmp(cks[i].cell_ids, cks[0].cell_ids, (size_t)cks[0].cells * sizeof(int)))) {
            fprintf(stderr, "retinac eval: %s: models different cells than %s; compare runs of the same cells\n",
                    paths[i], paths[0]);
            goto out;
        }
    }
    if (json) {
        rc_json j;
        rc_json_init(&j, stdout, 1);
        rc_json_begin_object(&j);
        if (n == 1) {
            json_run(&j, labels[0], paths[0], &cks[0], &ms[0], truth[0]);
        } else {
            rc_json_key(&j, "mean_ceiling"); rc_json_number(&j, ms[0].mean_ceiling);
            rc_json_key(&j, "mean_oracle"); rc_json_number(&j, ms[0].mean_oracle);
            rc_json_key(&j, "runs");
            rc_json_begin_array(&j);
            for (int i = 0; i < n; i++) {
                rc_json_begin_object(&j);
                json_run(&j, labels[i], paths[i], &cks[i], &ms[i], truth[i]);
                rc_json_end_object(&j);
            }
            rc_json_end_array(&j);
        }
        rc_json_end_object(&j);
        if (rc_json_finish(&j) != 0) {
            fprintf(stderr, "retinac eval: writing JSON to stdout: %s\n", errno ? strerror(errno) : "write error");
            goto out;
        }
    } else {
        const char *names[64];
        const rc_eval_metrics *mp[64];
        if (n > 64) { fprintf(stderr, "retinac eval: at most 64 runs in one table\n"); goto out; }
        for (int i = 0; i < n; i++) {
            names[i] = labels[i];
            mp[i] = &ms[i];
            printf("%-10s %s (%s, epoch %lld)\n", labels[i], paths[i], cks[i].ir->name,
                   (long long)cks[i].epoch);
        }
        int has_truth = isfinite(rc_mean_finite(truth[0], cks[0].cells));
        rc_eval_table(stdout, names, mp, n, cks[0].cell_ids, has_truth ? truth[0] : NULL);
    }
    status = 0;
out:
    for (int i = 0; cks && ms && truth && i < n; i++) {   /* calloc'd: zeroed entries are no-ops */
        rc_ckpt_free(&cks[i]);
        rc_eval_metrics_free(&ms[i]);
        free(truth[i]);
    }
    free(cks); free(ms); free(truth); free(paths); free(labels); free(runs);
    return status;
}
