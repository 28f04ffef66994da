/* cmd_import.c — `retinac import FILE.pt -o RUNDIR`: a torch-deep-retina checkpoint (torch.save,
 * zip or legacy format) as a retinac run folder: RUNDIR/spec.lua (the architecture, from the
 * file's own tensors and hyperparameters, or --spec), RUNDIR/checkpoint.h5 (an inference
 * checkpoint every analysis command takes) and RUNDIR/import.json (the source, its sha256 and
 * the tensor-to-parameter map). Nothing in the file is executed (import/pickle.h). All three
 * outputs are written atomically; a folder that already holds a run is refused.
 * Exit 0 ok, 1 error, 2 usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cmd.h"
#include "errbuf.h"
#include "fsutil.h"
#include "json.h"
#include "model.h"
#include "spec.h"
#include "torch_import.h"

const char cmd_import_help[] =
    "usage: retinac import FILE.pt -o RUNDIR [--spec SPEC] [--norm MEAN,STD]\n"
    "\n"
    "Bring a published PyTorch model in: read a torch-deep-retina checkpoint (torch.save's zip\n"
    "format or the legacy pickle format of PyTorch < 1.6) without Python, and write a run folder\n"
    "that eval, predict, rf, phenomena, interneurons and report accept:\n"
    "  RUNDIR/spec.lua        the architecture as a retinac spec (read from the file's tensors in\n"
    "                         order, and its hyps for frame size, noise, activation and output)\n"
    "  RUNDIR/checkpoint.h5   the weights, batch-norm statistics, the stimulus normalization\n"
    "                         (norm_stats) and the cell indices (hyps cells)\n"
    "  RUNDIR/import.json     the source file, its sha256, model_type and the map from every\n"
    "                         state-dict key to its retinac parameter\n"
    "Classes read: BNCNN, CNN, LinearStackedBNCNN, VaryModel (also with the convolutional\n"
    "ganglion-cell layer, GrabUnits' position quirk reproduced), AbsBNBNCNN, BNCNN2D, LN.\n"
    "The pickle is read by a restricted reader: only tensors, containers and numbers; a file that\n"
    "imports anything else (a Python class, os.system, ...) is refused, never run.\n"
    "\n"
    "  -o RUNDIR          output folder (created; must not hold a run already)\n"
    "  --spec SPEC        the architecture as a retinac spec, when the file does not say or says\n"
    "                     it differently; its parameters are filled from the state dict in order,\n"
    "                     every tensor used once and every shape checked\n"
    "  --norm MEAN,STD    the training stimulus' mean and std, for a file without norm_stats\n"
    "\n"
    "Exit status: 0 ok, 1 error (one line naming the file, key and layer), 2 usage error.\n";

static int write_text(const char *path, const char *text, char *err, size_t errlen)
{
    return rc_write_file_atomic(path, text, strlen(text), err, errlen);
}

static int write_import_json(const char *path, const char *src, const rc_torch_file *F,
                             const rc_torch_model *M, const char *spec_from, const char *map,
                             char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return rc_errf(err, errlen, "out of memory");
    rc_json j;
    rc_json_init(&j, f, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "source"); rc_json_string(&j, src);
    rc_json_key(&j, "sha256"); rc_json_string(&j, F->sha256);
    rc_json_key(&j, "format"); rc_json_string(&j, F->format);
    rc_json_key(&j, "model_type"); rc_json_string(&j, M->model_type[0] ? M->model_type : NULL);
    rc_json_key(&j, "spec"); rc_json_string(&j, spec_from);
    rc_json_key(&j, "epoch"); if (M->epoch >= 0) rc_json_int(&j, M->epoch); else rc_json_null(&j);
    rc_json_key(&j, "cells"); rc_json_int(&j, M->cells);
    rc_json_key(&j, "norm_mean"); rc_json_number(&j, M->norm_mean);
    rc_json_key(&j, "norm_std"); rc_json_number(&j, M->norm_std);
    rc_json_key(&j, "map");
    rc_json_begin_object(&j);
    for (const char *p = map; p && *p;) {
        const char *nl = strchr(p, '\n'), *arrow = strstr(p, " -> ");
        if (!nl || !arrow || arrow > nl) break;
        char k[300], v[80];
        snprintf(k, sizeof k, "%.*s", (int)(arrow - p), p);
        snprintf(v, sizeof v, "%.*s", (int)(nl - arrow - 4), arrow + 4);
        rc_json_key(&j, k); rc_json_string(&j, v);
        p = nl + 1;
    }
    rc_json_end_object(&j);
    rc_json_end_object(&j);
    int rc = rc_json_finish(&j);
    if (fclose(f) != 0 || rc < 0) { free(buf); return rc_errf(err, errlen, "%s: out of memory", path); }
    rc = rc_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *spec_path = NULL;
    double nmean = NAN, nstd = NAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac import: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); out = next; }
        else if (!strcmp(a, "--spec")) { NEED(); spec_path = next; }
        else if (!strcmp(a, "--norm")) {
            NEED();
            char *end;
            nmean = strtod(next, &end);
            if (*end != ',') { fprintf(stderr, "retinac import: --norm '%s': expected MEAN,STD\n", next); return 2; }
            nstd = strtod(end + 1, &end);
            if (*end || !isfinite(nmean) || !isfinite(nstd) || nstd <= 0) {
                fprintf(stderr, "retinac import: --norm '%s': expected MEAN,STD with a finite mean and std > 0\n", next);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac import: unknown option %s (see retinac help import)\n", a);
            return 2;
        } else if (!src) src = a;
        else { fprintf(stderr, "retinac import: unexpected argument '%s'\n", a); return 2; }
#undef NEED
    }
    if (!src || !out) {
        fputs("usage: retinac import FILE.pt -o RUNDIR (retinac help import)\n", stderr);
        return 2;
    }
    char err[1400];
    static const char *const run_files[] = {"checkpoint.h5", "best.h5", "spec.lua", "import.json", NULL};
    const char *inputs[2] = {src, spec_path};
    if (rc_dir_not_input(out, run_files, inputs, 2, err, sizeof err) < 0) { fprintf(stderr, "retinac import: -o %s\n", err); return 1; }
    char ckpath[1200], specout[1200], jsonout[1200], bestpath[1200];
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.h5", out);
    snprintf(bestpath, sizeof bestpath, "%s/best.h5", out);
    snprintf(specout, sizeof specout, "%s/spec.lua", out);
    snprintf(jsonout, sizeof jsonout, "%s/import.json", out);
    struct stat sb;
    if (!stat(ckpath, &sb) || !stat(bestpath, &sb)) {
        fprintf(stderr, "retinac import: -o %s: already holds a run (checkpoint.h5 or best.h5); choose another folder\n", out);
        return 1;
    }

    int rc = 1;
    rc_torch_file F;
    rc_torch_model M;
    memset(&M, 0, sizeof M);
    rc_ir *spec = calloc(1, sizeof *spec), *ir = calloc(1, sizeof *ir);
    char *text = NULL, *spec_canon = NULL, *map = NULL;
    rc_model mdl;
    memset(&mdl, 0, sizeof mdl);
    int *probe = NULL;
    if (!spec || !ir) { fprintf(stderr, "retinac import: out of memory\n"); goto out_nofile; }
    if (rc_torch_open(src, &F, err, sizeof err) < 0) goto fail;
    if (rc_torch_model_read(&F, &M, err, sizeof err) < 0) goto fail;
    if (!isnan(nmean)) { M.has_norm = 1; M.norm_mean = nmean; M.norm_std = nstd; }
    if (!M.has_norm) {
        snprintf(err, sizeof err, "%s: no norm_stats (the training stimulus' mean and std, needed to normalize any "
                 "stimulus the model sees); give them with --norm MEAN,STD", src);
        goto fail;
    }
    if (spec_path) {
        if (rc_spec_load_any(spec_path, spec, err, sizeof err) < 0) goto fail;
    } else {
        if (rc_torch_spec(&F, &M, &text, err, sizeof err) < 0) goto fail;
        if (rc_spec_load_string(specout, text, spec, err, sizeof err) < 0) goto fail;
    }
    *ir = *spec;
    if (rc_ir_infer(ir, M.cells, spec_path ? spec_path : specout, err, sizeof err) < 0) goto fail;
    if (rc_model_init(&mdl, ir, 1, M.centers, err, sizeof err) < 0) goto fail;   /* also the gcconv positions */
    if (rc_torch_fill(&F, &M, ir, mdl.params, mdl.state, &map, err, sizeof err) < 0) goto fail;

    rc_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.ir = ir;
    spec_canon = rc_ir_format(spec);
    if (!spec_canon) { snprintf(err, sizeof err, "out of memory"); goto fail; }
    ck.spec_text = spec_canon;
    rc_ir_hash(spec, ck.spec_hash);
    ck.params = mdl.params;
    ck.state = mdl.state;
    ck.norm_mean = M.norm_mean;
    ck.norm_std = M.norm_std;
    ck.cells = M.cells;
    ck.cell_ids = M.cell_ids;
    if (mdl.cell_pos) {
        if (!M.centers) {
            /* without centers the positions must not depend on them (true for the published sizes) */
            probe = malloc((size_t)M.cells * 4 * sizeof *probe);
            if (!probe) { snprintf(err, sizeof err, "out of memory"); goto fail; }
            int *alt = probe + 2 * M.cells, differ = 0;
            for (int corner = 0; corner < 2 && !differ; corner++) {
                for (int c = 0; c < M.cells; c++) {
                    probe[2 * c] = corner ? ir->height - 1 : 0;
                    probe[2 * c + 1] = corner ? ir->width - 1 : 0;
                }
                if (rc_gc_positions(ir, probe, alt, err, sizeof err) < 0) goto fail;
                differ = memcmp(alt, mdl.cell_pos, (size_t)M.cells * 2 * sizeof *alt) != 0;
            }
            if (differ) {
                snprintf(err, sizeof err, "%s: hyps: no 'centers', and this gcconv read-out's positions depend on them", src);
                goto fail;
            }
        }
        ck.cell_pos = mdl.cell_pos;
        ck.centers = M.centers;
    }
    snprintf(ck.data_path, sizeof ck.data_path, "%s", "");
    snprintf(ck.rate_key, sizeof ck.rate_key, "%s", "firing_rate_10ms");
    snprintf(ck.backend, sizeof ck.backend, "%s", "c");
    snprintf(ck.device, sizeof ck.device, "%s", "cpu");
    ck.epoch = M.epoch > 0 ? M.epoch : 0;
    ck.lr = ir->train.lr;
    ck.best_val_loss = INFINITY;
    ck.plateau_best = INFINITY;
    if (rc_make_dirs(out, err, sizeof err) < 0) goto fail;
    if (text && write_text(specout, text, err, sizeof err) < 0) goto fail;
    if (rc_ckpt_save(ckpath, &ck, err, sizeof err) < 0) goto fail;
    if (write_import_json(jsonout, src, &F, &M, spec_path ? spec_path : specout, map, err, sizeof err) < 0) goto fail;
    int n_map = 0;
    for (const char *p = map; p && *p; p++) n_map += *p == '\n';
    printf("imported %s (%s format, model_type %s): %d cells, %d tensors -> %lld parameters; "
           "stimulus normalization mean %g std %g\n", src, F.format, M.model_type[0] ? M.model_type : "?",
           M.cells, n_map, (long long)ir->params_total, M.norm_mean, M.norm_std);
    printf("wrote %s%s%s, %s\n", text ? specout : "", text ? ", " : "", ckpath, jsonout);
    printf("next: retinac eval %s --data REC.h5 | retinac rf %s | retinac phenomena %s\n", out, out, out);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "retinac import: %s\n", err);
out:
    rc_torch_model_free(&M);
    rc_torch_close(&F);
out_nofile:
    rc_model_free(&mdl);
    free(probe);
    free(text);
    free(spec_canon);
    free(map);
    free(spec);
    free(ir);
    return rc;
}
