/* fuzz_checkpoint.c — libFuzzer harness for the checkpoint loader (rc_ckpt_load in
 * runtime/checkpoint.c), which `retinac eval/predict/train --resume` and the library API run on
 * files that may come from anywhere.
 *
 * Each input is the bytes of an HDF5 file (written to a private temp file: the loader takes a
 * path). It is loaded and freed; a checkpoint that loads must hold an inferred model whose
 * parameter count matches what was read.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome (the error line, or success) for triage.
 *
 * A crash here means: a memory error, undefined behaviour, a leak or a hang in the loader (or in
 * the IR text parser and shape inference it runs on the stored /model text) on a damaged or
 * hostile file, or (abort) an HDF5 object left open by the loader. Error returns ("PATH: /key:
 * what") are expected and fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_h5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_h5_write(data, size, "checkpoint.h5");
    rc_checkpoint ck;
    char err[1024] = "";
    memset(&ck, 0, sizeof ck);
    if (rc_ckpt_load(path, &ck, err, sizeof err) == 0) {
        if (!ck.ir || !ck.params || ck.cells != ck.ir->cells) {
            fprintf(stderr, "loaded checkpoint is inconsistent (ir %p, params %p, cells %d)\n",
                    (void *)ck.ir, (void *)ck.params, ck.cells);
            abort();
        }
        /* touch every tensor the loader claims to hold (ASan checks the extents) */
        volatile float sink = 0;
        for (int64_t i = 0; i < ck.ir->params_total; i++) sink += ck.params[i];
        for (int64_t i = 0; ck.state && i < ck.ir->state_total; i++) sink += ck.state[i];
        for (int64_t i = 0; ck.has_optim && ck.moments && i < 2 * ck.ir->params_total; i++) sink += ck.moments[i];
        for (int c = 0; c < ck.cells; c++) sink += (float)ck.cell_ids[c];
        (void)sink;
        rc_ckpt_free(&ck);
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err[0] ? err : "loaded");
    fuzz_h5_check_closed("rc_ckpt_load");
    return 0;
}
