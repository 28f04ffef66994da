/* cmd_interneurons.c — `retinac interneurons RUN|CHECKPOINT FILE.h5...`: correlate every unit
 * of a trained model with recorded interneurons (analysis/intr.h): the best unit per cell and
 * layer, the mean of the best r per cell type, optionally every correlation map in an HDF5 file
 * (written atomically). Exit 0 ok, 1 error, 2 usage.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd.h"
#include "progress_ui.h"
#include "fsutil.h"
#include "intr.h"
#include "json.h"

const char cmd_interneurons_help[] =
    "usage: retinac interneurons CHECKPOINT|RUNDIR FILE.h5 [FILE.h5 ...] [options]\n"
    "\n"
    "Correlate every unit (channel, row, col) of a trained model's layers with recorded\n"
    "interneurons, as torch-deep-retina's get_intr_cors: each FILE holds STIM/stimuli (T, h, w)\n"
    "and STIM/detrended_membrane_potential (cells, T) (the reference's interneuron files;\n"
    "`retinac synth --interneurons DIR` writes simulated ones). The stimulus is taken as\n"
    "s = 2v - 1, zero-padded centred to the model's input, z-scored with one scalar mean/std;\n"
    "the window of frames t..t+history-1 is paired with the potential at t+history. The model\n"
    "runs in eval mode. Per cell: the best unit of each layer and its Pearson r over the windows;\n"
    "then the mean best r per cell type (from the file name: bipolar, amacrine, horizontal).\n"
    "\n"
    "  --stim KEY         stimulus group (default boxes)\n"
    "  --layers L[,L...]  1-based layers whose outputs are compared (default: every conv layer,\n"
    "                     i.e. the conv outputs before batchnorm, as the reference's hooks)\n"
    "  --batch N          windows per forward (default 256)\n"
    "  --threads N\n"
    "  -o OUT.h5          write /layers, /best (cells, layers, 5: layer chan row col r) and\n"
    "                     /cells/<k>: each cell's correlation maps (every layer's (c,h,w))\n"
    "  --json             print the result as JSON instead of the table\n"
    "  -q, --quiet        no progress on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

#define MAX_FILES 64

static int parse_layers(const char *s, rc_intr_opts *o)
{
    const char *p = s;
    o->n_layers = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > RC_MAX_LAYERS || o->n_layers == RC_MAX_LAYERS || (*end && *end != ','))
            return -1;
        o->layers[o->n_layers++] = (int)v - 1;
        p = *end ? end + 1 : end;
    }
    return o->n_layers ? 0 : -1;
}

static void unit_str(const rc_intr_unit *u, const rc_ir *ir, char *out, size_t n)
{
    snprintf(out, n, "%d.%s ch %d (%d,%d)", u->layer + 1, rc_layer_kind_name(ir->layers[u->layer].kind), u->chan,
             u->row, u->col);
}

static void print_table(const rc_checkpoint *ck, const rc_intr_result *r, const char *stim)
{
    const rc_ir *ir = ck->ir;
    printf("interneurons vs %s (%s stimulus, %d cells, %.1f s)\n", ir->name, stim, r->n_cells, r->seconds);
    printf("  %-24s %4s  %-10s  %-24s %6s", "file", "cell", "type", "best unit", "r");
    for (int k = 0; k < r->n_layers; k++) printf("  layer %-2d", r->layers[k] + 1);
    printf("\n");
    for (int c = 0; c < r->n_cells; c++) {
        const rc_intr_cell *cell = &r->cells[c];
        char u[64];
        unit_str(&cell->best[cell->best_k], ir, u, sizeof u);
        printf("  %-24s %4d  %-10s  %-24s %6.3f", cell->file, cell->index, cell->type, u, cell->best[cell->best_k].r);
        for (int k = 0; k < r->n_layers; k++) printf("  %8.3f", cell->best[k].r);
        printf("\n");
    }
    static const char *const types[] = {"bipolar", "amacrine", "horizontal", "unknown"};
    printf("mean best r:");
    double all = 0;
    for (int t = 0; t < 4; t++) {
        double s = 0;
        int n = 0;
        for (int c = 0; c < r->n_cells; c++)
            if (!strcmp(r->cells[c].type, types[t])) { s += r->cells[c].best[r->cells[c].best_k].r; n++; }
        if (n) printf("  %s %.3f (%d)", types[t], s / n, n);
        all += s;
    }
    if (r->n_cells) printf("  all %.3f (%d)", all / r->n_cells, r->n_cells);
    printf("\n");
}

static void print_json(const char *path, const rc_checkpoint *ck, const rc_intr_result *r, const char *stim,
                       int *ok)
{
    rc_json j;
    rc_json_init(&j, stdout, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "checkpoint"); rc_json_string(&j, path);
    rc_json_key(&j, "model"); rc_json_string(&j, ck->ir->name);
    rc_json_key(&j, "stim"); rc_json_string(&j, stim);
    rc_json_key(&j, "layers");
    rc_json_begin_array(&j);
    for (int k = 0; k < r->n_layers; k++) rc_json_int(&j, r->layers[k] + 1);
    rc_json_end_array(&j);
    rc_json_key(&j, "cells");
    rc_json_begin_array(&j);
    for (int c = 0; c < r->n_cells; c++) {
        const rc_intr_cell *cell = &r->cells[c];
        rc_json_begin_object(&j);
        rc_json_key(&j, "file"); rc_json_string(&j, cell->file);
        rc_json_key(&j, "index"); rc_json_int(&j, cell->index);
        rc_json_key(&j, "type"); rc_json_string(&j, cell->type);
        rc_json_key(&j, "windows"); rc_json_int(&j, cell->windows);
        rc_json_key(&j, "best");
        rc_json_begin_array(&j);
        for (int k = 0; k < r->n_layers; k++) {
            const rc_intr_unit *u = &cell->best[k];
            rc_json_begin_object(&j);
            rc_json_key(&j, "layer"); rc_json_int(&j, u->layer + 1);
            rc_json_key(&j, "chan"); rc_json_int(&j, u->chan);
            rc_json_key(&j, "row"); rc_json_int(&j, u->row);
            rc_json_key(&j, "col"); rc_json_int(&j, u->col);
            rc_json_key(&j, "r"); rc_json_number(&j, u->r);
            rc_json_end_object(&j);
        }
        rc_json_end_array(&j);
        rc_json_end_object(&j);
    }
    rc_json_end_array(&j);
    rc_json_end_object(&j);
    *ok = rc_json_finish(&j) == 0;
}

int cmd_interneurons(int argc, char **argv)
{
    const char *run = NULL, *out = NULL, *files[MAX_FILES];
    int n_files = 0, json = 0;
    rc_intr_opts o;
    rc_intr_opts_default(&o);
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac interneurons: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--stim")) { NEED(); o.stim = next; }
        else if (!strcmp(a, "--layers")) {
            NEED();
            if (parse_layers(next, &o) < 0) {
                fprintf(stderr, "retinac interneurons: --layers '%s': expected 1-based layer numbers, e.g. 1,5\n", next);
                return 2;
            }
        } else if (!strcmp(a, "--batch") || !strcmp(a, "--threads")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            if (!*next || *end || v < 1 || v > 65536) {
                fprintf(stderr, "retinac interneurons: %s '%s': expected an integer in 1..65536\n", a, next);
                return 2;
            }
            if (a[2] == 'b') o.batch = (int)v;
            else omp_set_num_threads((int)v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); out = next; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac interneurons: unknown option %s (see retinac help interneurons)\n", a);
            return 2;
        } else if (!run) run = a;
        else if (n_files < MAX_FILES) files[n_files++] = a;
        else { fprintf(stderr, "retinac interneurons: more than %d files\n", MAX_FILES); return 2; }
#undef NEED
    }
    if (!run || !n_files) {
        fputs("usage: retinac interneurons CHECKPOINT|RUNDIR FILE.h5 [FILE.h5 ...] (retinac help interneurons)\n", stderr);
        return 2;
    }
    char path[1100], err[1024];
    rc_ckpt_resolve(run, path, sizeof path);
    if (out) {
        const char *inputs[MAX_FILES + 1];
        inputs[0] = path;
        for (int k = 0; k < n_files; k++) inputs[k + 1] = files[k];
        if (rc_out_not_input(out, inputs, n_files + 1, err, sizeof err) < 0) {
            fprintf(stderr, "retinac interneurons: -o %s\n", err);
            return 1;
        }
    }
    rc_checkpoint ck;
    if (rc_ckpt_load(path, &ck, err, sizeof err) < 0) { fprintf(stderr, "retinac interneurons: %s\n", err); return 1; }
    rc_intr_result r;
    int rc = 1;
    cli_progress pr;
    cli_progress_init(&pr, "interneurons", quiet);
    o.progress = cli_progress_hook(&pr);
    int crc = rc_intr_compute(&ck, files, n_files, &o, &r, err, sizeof err);
    cli_progress_end(&pr);
    if (crc < 0) {
        fprintf(stderr, "retinac interneurons: %s\n", err);
        goto out;
    }
    if (out && rc_intr_write(out, &ck, &r, err, sizeof err) < 0) { fprintf(stderr, "retinac interneurons: %s\n", err); goto out; }
    if (json) {
        int ok;
        print_json(path, &ck, &r, o.stim, &ok);
        if (!ok) { fprintf(stderr, "retinac interneurons: writing JSON to stdout failed\n"); goto out; }
    } else {
        print_table(&ck, &r, o.stim);
        if (out) printf("wrote %s\n", out);
    }
    rc = 0;
out:
    rc_intr_free(&r);
    rc_ckpt_free(&ck);
    return rc;
}
