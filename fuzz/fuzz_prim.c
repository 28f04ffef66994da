/* fuzz_prim.c — libFuzzer harness for the primitive graphs of defined layers (compiler/prim.c,
 * prim_text.c, prim_eval.c) and the code paths behind them: the canonical graph text of one
 * defined layer (the lines a model's IR text carries after "prim "), as a checkpoint stores it.
 *
 * Each input is a graph text (cut at its first NUL; at most 64 KiB, RC_DEF_TEXT_MAX). It is
 * parsed with the cell count symbolic and with 3 cells; each graph that parses goes through
 * fz_graph_checks (fuzz_prim.h: round trips, rc_prim_grad in both modes, rc_prim_flops, the
 * reference interpreter when small). The symbolic graph is then wrapped in a model -- input
 * (history, height, width) = the graph input's (C, H, W), the defined layer, a dense layer --
 * given to rc_ir_parse as IR text and to rc_ir_infer for 3 cells (def_infer), and when that
 * infers, to the C and CUDA emitters (text only).
 *
 * FUZZ_VERBOSE=1 prints each input's outcome for triage.
 *
 * A crash here means a memory error, undefined behaviour, a leak or a hang in the graph parser,
 * the shape rules, autodiff, the interpreter, def_infer or the emitters on a hostile graph (a
 * checkpoint from elsewhere carries such text), or (abort with "round trip") a graph whose
 * canonical text does not read back identically. Error returns are expected and fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_prim.h"

#define FUZZ_CELLS 3

static rc_ir ir;

/* A model around the graph text t (symbolic cells): IR text, parse, infer, emit. */
static void as_model(const rc_prim_graph *g, const char *t, char *err, size_t errlen)
{
    int c = 1, h = 1, w = 1;
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        if (nd->op == RC_P_INPUT && nd->ref == 0 && nd->rank == 4) { c = nd->dims[1]; h = nd->dims[2]; w = nd->dims[3]; break; }
    }
    if (c < 1 || h < 1 || w < 1) return;
    size_t tl = strlen(t), n = 256 + 2 * tl;
    char *text = malloc(n);
    if (!text) return;
    size_t k = (size_t)snprintf(text, n, "retinac-ir 1\nmodel fz\ninput history=%d height=%d width=%d crop=0\n"
                                "layer def kind=fz\n", c, h, w);
    for (const char *s = t; *s;) {                    /* each graph line as a "prim" line */
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        k += (size_t)snprintf(text + k, n - k, "prim %.*s\n", (int)len, s);
        s += len + (nl ? 1 : 0);
    }
    snprintf(text + k, n - k, "layer dense\nend\n");
    if (rc_ir_parse(&ir, text, "fuzz.ir", err, errlen) == 0 && rc_ir_infer(&ir, FUZZ_CELLS, "fuzz.ir", err, errlen) == 0)
        fz_emit(&ir);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= RC_DEF_TEXT_MAX) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[1024] = "";
    rc_prim_graph g;
    if (rc_prim_parse(&g, text, FUZZ_CELLS, err, sizeof err) == 0) fz_graph_checks(&g, FUZZ_CELLS);
    rc_prim_free(&g);
    if (rc_prim_parse(&g, text, 0, err, sizeof err) == 0) {
        char *t = rc_prim_format(&g);               /* before the gradient is appended */
        fz_graph_checks(&g, 0);
        if (t) as_model(&g, t, err, sizeof err);
        free(t);
        if (!err[0]) snprintf(err, sizeof err, "parsed, inferred, emitted");
    }
    rc_prim_free(&g);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err);
    free(text);
    return 0;
}
