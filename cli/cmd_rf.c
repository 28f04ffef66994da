/* cmd_rf.c — `retinac rf RUN|CHECKPOINT`: receptive fields of a trained model (analysis/rf.h):
 * gradient STA and reverse-correlation STA on white noise, a per-cell summary table, and
 * optionally every STA and its rank-1 parts in an HDF5 file (written atomically).
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd.h"
#include "fsutil.h"
#include "json.h"
#include "progress_ui.h"
#include "rf.h"

const char cmd_rf_help[] =
    "usage: retinac rf CHECKPOINT|RUNDIR [options]\n"
    "\n"
    "Receptive fields of a trained model, on seeded Gaussian white noise in model-input units\n"
    "(the z-scored stimulus), as torch-deep-retina computes them:\n"
    "  grad    gradient STA: the mean over noise windows of d(cell output)/d(input window), in\n"
    "          eval mode (utils.compute_sta)\n"
    "  revcor  reverse correlation: sum of z-scored response x window / N (utils.revcor_sta)\n"
    "Per cell: the spatial centre (centroid of the rank-1 spatial profile's blob above 20% of\n"
    "its peak, connected to the peak; recording-frame pixels, crop offset added), its RMS\n"
    "radius, polarity (ON/OFF), the lag of the temporal peak (frames before the predicted bin),\n"
    "the share of the STA in its rank-1 part, and the split-half reliability (two halves of the\n"
    "windows, Spearman-Brown). With known or estimated centres in the checkpoint, the distance\n"
    "to them is shown.\n"
    "\n"
    "  --method grad|revcor|both   default grad (revcor needs ~10x the windows: check reliab)\n"
    "  --samples N        noise windows (default 2048; the reference uses 10,000 for grad)\n"
    "  --contrast C       noise standard deviation (default 1)\n"
    "  --seed N           noise seed (default 1)\n"
    "  --batch N          windows per batch (default 256)\n"
    "  --backend c|ref    revcor inference backend (default c, falling back to ref)\n"
    "  --threads N\n"
    "  -o OUT.h5          write /grad and /revcor: sta (cells,history,H,W), spatial, temporal,\n"
    "                     center, peak, sigma, polarity, peak_lag, rank1, half_r, reliability\n"
    "  --json             print the summary as JSON instead of the table\n"
    "  -q, --quiet        no progress on stderr (a line with an ETA on a terminal, else a line\n"
    "                     at every quarter)\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

static int parse_long(const char *opt, const char *s, long lo, long hi, long *v)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (*s == 0 || *end || x < lo || x > hi) {
        fprintf(stderr, "retinac rf: %s '%s': expected an integer in %ld..%ld\n", opt, s, lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

static void json_cells(rc_json *j, const rc_checkpoint *ck, const rc_rf_cell *c)
{
    rc_json_begin_array(j);
    for (int n = 0; n < ck->cells; n++) {
        rc_json_begin_object(j);
        rc_json_key(j, "cell"); rc_json_int(j, ck->cell_ids[n]);
        rc_json_key(j, "row"); rc_json_number(j, c[n].row + ck->crop_row0);
        rc_json_key(j, "col"); rc_json_number(j, c[n].col + ck->crop_col0);
        rc_json_key(j, "sigma"); rc_json_number(j, c[n].sigma);
        rc_json_key(j, "polarity"); rc_json_int(j, c[n].polarity);
        rc_json_key(j, "peak_lag"); rc_json_int(j, c[n].peak_lag);
        rc_json_key(j, "rank1"); rc_json_number(j, c[n].rank1);
        rc_json_key(j, "half_r"); rc_json_number(j, c[n].half_r);
        rc_json_key(j, "reliability"); rc_json_number(j, c[n].reliability);
        rc_json_end_object(j);
    }
    rc_json_end_array(j);
}

static void print_table(const rc_checkpoint *ck, const char *name, const rc_rf_cell *c,
                        double seconds)
{
    printf("\n%s STA (%.1f s)\n", name, seconds);
    printf("  cell   centre (row, col)   sigma  pol  lag  rank1  reliab%s\n",
           ck->centers ? "  |d| to recording centre" : "");
    for (int n = 0; n < ck->cells; n++) {
        double r = c[n].row + ck->crop_row0, col = c[n].col + ck->crop_col0;
        printf("  %4d   (%5.1f, %5.1f)    %5.2f  %-3s  %3d  %5.2f  %6.3f", ck->cell_ids[n], r, col,
               c[n].sigma, c[n].polarity > 0 ? "ON" : "OFF", c[n].peak_lag, c[n].rank1,
               c[n].reliability);
        if (ck->centers) {
            double dr = r - ck->centers[2 * n], dc = col - ck->centers[2 * n + 1];
            printf("  %5.1f px", sqrt(dr * dr + dc * dc));
        }
        printf("\n");
    }
}

int cmd_rf(int argc, char **argv)
{
    const char *run = NULL, *out = NULL;
    int json = 0;
    rc_rf_opts o;
    rc_rf_opts_default(&o);
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        long v;
#define NEED() do { if (!next) { fprintf(stderr, "retinac rf: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--method")) {
            NEED();
            if (!strcmp(next, "grad")) { o.grad = 1; o.revcor = 0; }
            else if (!strcmp(next, "revcor")) { o.grad = 0; o.revcor = 1; }
            else if (!strcmp(next, "both")) { o.grad = 1; o.revcor = 1; }
            else { fprintf(stderr, "retinac rf: --method '%s': expected grad, revcor or both\n", next); return 2; }
        } else if (!strcmp(a, "--samples")) {
            NEED();
            if (parse_long(a, next, 2, 100000000, &v) < 0) return 2;
            o.samples = v;
        } else if (!strcmp(a, "--contrast")) {
            NEED();
            char *end;
            o.contrast = strtod(next, &end);
            if (*end || !(o.contrast > 0) || o.contrast > 1e6) {
                fprintf(stderr, "retinac rf: --contrast '%s': expected a number > 0\n", next);
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            NEED();
            if (parse_long(a, next, 0, 2147483647L, &v) < 0) return 2;
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--batch")) {
            NEED();
            if (parse_long(a, next, 1, 65536, &v) < 0) return 2;
            o.batch = (int)v;
        } else if (!strcmp(a, "--backend")) { NEED(); o.backend = next; }
        else if (!strcmp(a, "--threads")) {
            NEED();
            if (parse_long(a, next, 1, 4096, &v) < 0) return 2;
            omp_set_num_threads((int)v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); out = next; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac rf: unknown option %s (see retinac help rf)\n", a);
            return 2;
        } else if (!run) run = a;
        else { fprintf(stderr, "retinac rf: unexpected argument '%s'\n", a); return 2; }
#undef NEED
    }
    if (!run) { fputs("usage: retinac rf CHECKPOINT|RUNDIR [options] (retinac help rf)\n", stderr); return 2; }
    if (o.backend && strcmp(o.backend, "c") && strcmp(o.backend, "ref")) {
        fprintf(stderr, "retinac rf: --backend '%s': expected c or ref\n", o.backend);
        return 2;
    }
    char path[1100], err[1024];
    rc_ckpt_resolve(run, path, sizeof path);
    const char *inputs[1] = {path};
    if (out && rc_out_not_input(out, inputs, 1, err, sizeof err) < 0) { fprintf(stderr, "retinac rf: -o %s\n", err); return 1; }
    rc_checkpoint ck;
    if (rc_ckpt_load(path, &ck, err, sizeof err) < 0) { fprintf(stderr, "retinac rf: %s\n", err); return 1; }
    rc_rf_result r;
    int rc = 1;
    cli_progress pr;
    cli_progress_init(&pr, "rf", quiet);
    o.progress = cli_progress_hook(&pr);
    int crc = rc_rf_compute(&ck, &o, &r, err, sizeof err);
    cli_progress_end(&pr);
    if (crc < 0) { fprintf(stderr, "retinac rf: %s: %s\n", path, err); goto out; }
    if (out && rc_rf_write(out, &ck, &r, err, sizeof err) < 0) { fprintf(stderr, "retinac rf: %s\n", err); goto out; }
    if (json) {
        rc_json j;
        rc_json_init(&j, stdout, 1);
        rc_json_begin_object(&j);
        rc_json_key(&j, "checkpoint"); rc_json_string(&j, path);
        rc_json_key(&j, "model"); rc_json_string(&j, ck.ir->name);
        rc_json_key(&j, "samples"); rc_json_int(&j, r.samples);
        rc_json_key(&j, "contrast"); rc_json_number(&j, r.contrast);
        rc_json_key(&j, "seed"); rc_json_int(&j, (int64_t)r.seed);
        if (r.grad) { rc_json_key(&j, "grad"); json_cells(&j, &ck, r.grad_cell); }
        if (r.revcor) { rc_json_key(&j, "revcor"); json_cells(&j, &ck, r.revcor_cell); }
        rc_json_end_object(&j);
        if (rc_json_finish(&j) < 0) { fprintf(stderr, "retinac rf: writing JSON to stdout failed\n"); goto out; }
    } else {
        printf("%s: receptive fields of %s on %lld white-noise windows (contrast %g, seed %llu)\n",
               path, ck.ir->name, (long long)r.samples, r.contrast, (unsigned long long)r.seed);
        if (r.grad) print_table(&ck, "gradient", r.grad_cell, r.seconds_grad);
        if (r.revcor) print_table(&ck, "reverse-correlation", r.revcor_cell, r.seconds_revcor);
        if (out) printf("\nwrote %s\n", out);
    }
    rc = 0;
out:
    rc_rf_free(&r);
    rc_ckpt_free(&ck);
    return rc;
}
