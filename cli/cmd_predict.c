/* cmd_predict.c — `retinac predict CHECKPOINT --stimulus FILE -o OUT.h5`: model responses to a
 * stimulus movie, through the public API (runtime/retinac.h), normalized with the checkpoint's
 * training statistics; OUT.h5 is written atomically. Exit 0 ok, 1 error, 2 usage.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd.h"
#include "fsutil.h"
#include "retinac.h"

const char cmd_predict_help[] =
    "usage: retinac predict CHECKPOINT|RUNDIR --stimulus FILE -o OUT.h5 [options]\n"
    "\n"
    "Write the model's responses to a stimulus movie. FILE holds a (T,H,W) or (1,T,H,W)\n"
    "dataset (key 'stimulus' unless --key; e.g. --key test/stimulus for a recording), in the\n"
    "units of the training recording: it is z-scored with the checkpoint's statistics and\n"
    "cropped as in training (frames of the training size; a movie of exactly the crop size is\n"
    "taken as already cropped; any other size is refused). OUT.h5 gets /response\n"
    "(T - history, cells) float32, row i being the response in the bin after frames\n"
    "i..i+history-1 (attribute first_frame = history), and /cell_ids. A RUNDIR stands for its\n"
    "best.h5.\n"
    "\n"
    "  --stimulus FILE    HDF5 file with the movie\n"
    "  --key K            dataset key (default stimulus)\n"
    "  -o OUT.h5          output file\n"
    "  --backend c|ref    default: c, falling back to ref if no C compiler is available\n"
    "  --threads N\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

int cmd_predict(int argc, char **argv)
{
    const char *ck = NULL, *stim = NULL, *key = NULL, *out = NULL, *backend = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!next) { fprintf(stderr, "retinac predict: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--stimulus")) { NEED(); stim = next; }
        else if (!strcmp(a, "--key")) { NEED(); key = next; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); out = next; }
        else if (!strcmp(a, "--backend")) { NEED(); backend = next; }
        else if (!strcmp(a, "--threads")) {
            NEED();
            char *end;
            long v = strtol(next, &end, 10);
            if (*end || v < 1 || v > 4096) { fprintf(stderr, "retinac predict: --threads '%s': expected 1..4096\n", next); return 2; }
            omp_set_num_threads((int)v);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac predict: unknown option %s (see retinac help predict)\n", a);
            return 2;
        } else if (!ck) ck = a;
        else { fprintf(stderr, "retinac predict: unexpected argument '%s'\n", a); return 2; }
#undef NEED
    }
    if (!ck || !stim || !out) {
        fputs("usage: retinac predict CHECKPOINT --stimulus FILE -o OUT.h5 (retinac help predict)\n", stderr);
        return 2;
    }
    char err[1024], ckpath[1100];
    rc_ckpt_resolve(ck, ckpath, sizeof ckpath);
    const char *inputs[2] = {stim, ckpath};
    if (rc_out_not_input(out, inputs, 2, err, sizeof err) < 0) { fprintf(stderr, "retinac predict: -o %s\n", err); return 1; }
    retinac_model *m = retinac_open(ck, backend, err, sizeof err);
    if (!m) { fprintf(stderr, "retinac predict: %s\n", err); return 1; }
    int rc = retinac_predict_file(m, stim, key, out, err, sizeof err);
    if (rc < 0) fprintf(stderr, "retinac predict: %s\n", err);
    else {
        int hist, h, w, cells;
        retinac_shape(m, &hist, &h, &w, &cells);
        fprintf(stderr, "wrote %s: %s responses of %d cells (backend %s)\n", out,
                retinac_model_name(m), cells, retinac_backend_name(m));
    }
    retinac_close(m);
    return rc < 0 ? 1 : 0;
}
