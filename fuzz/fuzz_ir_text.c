/* fuzz_ir_text.c — libFuzzer harness for the canonical model-text (IR text) parser
 * (rc_ir_parse in compiler/ir.c), the text every checkpoint stores and the runtime reads back.
 *
 * Each input is an IR text (cut at its first NUL). It is parsed; a text that parses is also
 * inferred for 5 cells (rc_ir_infer), and must survive the round trip rc_ir_format ->
 * rc_ir_parse -> rc_ir_format with the same text. A model that infers and has defined layers
 * (`layer def kind=` + `prim` lines) goes further: each defined layer's graph (rc_ir_def_graph)
 * through fz_graph_checks (fuzz_prim.h: graph round trips, rc_prim_grad, the reference
 * interpreter when small), then the C and CUDA emitters (fz_emit).
 *
 * FUZZ_VERBOSE=1 prints each input's outcome (the error line, or success) for triage.
 *
 * A crash here means: a memory error, undefined behaviour or a leak in the parser or the shape
 * inference on hostile text (a checkpoint from elsewhere carries such text), or (abort with
 * "round trip") a text the parser accepts whose canonical form does not read back identically.
 * Error returns are expected and fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_prim.h"
#include "ir.h"

#define FUZZ_CELLS 5

static rc_ir ir, ir2;

static void round_trip(const rc_ir *a, const char *what)
{
    char err[1024];
    char *t1 = rc_ir_format(a);
    if (!t1) return;
    if (rc_ir_parse(&ir2, t1, "fuzz.ir", err, sizeof err) != 0) {
        fprintf(stderr, "round trip (%s): the canonical text does not parse: %s\n---\n%s---\n", what, err, t1);
        abort();
    }
    char *t2 = rc_ir_format(&ir2);
    if (t2 && strcmp(t1, t2) != 0) {
        fprintf(stderr, "round trip (%s): format(parse(text)) != text\n--- first\n%s--- second\n%s---\n", what, t1, t2);
        abort();
    }
    free(t1);
    free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (16u << 20)) return 0;                  /* rc_spec_load_any's read limit */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[1024] = "";
    if (rc_ir_parse(&ir, text, "fuzz.ir", err, sizeof err) == 0) {
        round_trip(&ir, "parsed text");
        if (rc_ir_infer(&ir, FUZZ_CELLS, "fuzz.ir", err, sizeof err) == 0) {
            round_trip(&ir, "inferred text");
            for (int li = 0; li < ir.n_layers; li++) {
                if (ir.layers[li].kind != RC_LAYER_DEF) continue;
                rc_prim_graph g;
                if (rc_ir_def_graph(&ir, li, &g, err, sizeof err) == 0) fz_graph_checks(&g, ir.cells);
                else {
                    fprintf(stderr, "layer %d: the graph inferred but does not parse again: %s\n", li + 1, err);
                    abort();
                }
                rc_prim_free(&g);
            }
            fz_emit(&ir);
            err[0] = 0;
        }
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err[0] ? err : "parsed and inferred");
    free(text);
    return 0;
}
