/* fuzz_torch.c — libFuzzer harness for `retinac import`'s readers (import/): the torch.save
 * containers (libzip from memory; the legacy pickle stream), the restricted unpickler, the
 * checkpoint-dict reader, the spec writer and, when the spec loads and infers, the
 * order-and-shape parameter fill — everything `retinac import FILE.pt` does before it writes.
 *
 * Each input is a whole .pt file. Seeds: fuzz/corpus/torch/ (fixtures of tests/fixtures/torch_import,
 * fuzz/make_corpus.sh). FUZZ_VERBOSE=1 prints each input's outcome.
 *
 * A crash here means a memory error, undefined behaviour, a leak or a hang on a hostile file;
 * error returns are expected and fine. Nothing in an input can run: the unpickler has no way to
 * call anything (a payload that tried would fail with "refuses to import").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "spec.h"
#include "torch_file.h"
#include "torch_import.h"

static rc_ir spec, ir;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1400] = "";
    rc_torch_file F;
    rc_torch_model M;
    memset(&M, 0, sizeof M);
    char *text = NULL, *map = NULL;
    const char *stage = "open";
    if (rc_torch_open_mem(data, size, "fuzz.pt", &F, err, sizeof err) < 0) goto out;
    stage = "read";
    if (rc_torch_model_read(&F, &M, err, sizeof err) < 0) goto out;
    /* every tensor of the state dict, copied out (strides and offsets are the file's) */
    for (int g = 0; g < M.n_groups; g++)
        for (int i = 0; i < M.g[g].n; i++) {
            float *v = NULL;
            if (rc_torch_tensor_f32(&F, M.g[g].t[i], M.g[g].key[i], &v, err, sizeof err) == 0) free(v);
        }
    stage = "spec";
    if (rc_torch_spec(&F, &M, &text, err, sizeof err) < 0) goto out;
    stage = "load";
    if (rc_spec_load_string("fuzz.lua", text, &spec, err, sizeof err) < 0) goto out;
    ir = spec;
    if (rc_ir_infer(&ir, M.cells, "fuzz.lua", err, sizeof err) < 0) goto out;
    if (ir.params_total > (1 << 24) || ir.state_total > (1 << 24)) goto out;
    stage = "fill";
    float *p = calloc((size_t)ir.params_total + 1, sizeof *p), *s = calloc((size_t)ir.state_total + 1, sizeof *s);
    if (p && s) rc_torch_fill(&F, &M, &ir, p, s, &map, err, sizeof err);
    free(p);
    free(s);
    stage = "done";
out:
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "[%s] %s\n", stage, err);
    free(map);
    free(text);
    rc_torch_model_free(&M);
    rc_torch_close(&F);
    return 0;
}
