/* fuzz_spec.c — libFuzzer harness for the Lua spec loader (compiler/frontend/spec.c).
 *
 * Each input is the text of a spec (cut at its first NUL). It is loaded as rc_spec_check does
 * (rc_spec_load_string, then rc_ir_infer for 5 cells), and every spec that loads must survive
 * the canonical round trip: rc_ir_format -> rc_ir_parse -> rc_ir_format gives the same text.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome (the error line, or success) for triage.
 *
 * A crash here means: a memory error, undefined behaviour or a leak in the sandboxed loader or
 * the shape inference (the sandbox's instruction limit and memory cap must turn every hostile
 * spec into an error line), or (abort with "round trip") a spec the loader accepts that the
 * canonical printer and the IR text parser do not agree on. Error returns are expected and fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "spec.h"

#define FUZZ_CELLS 5

static rc_ir ir, ir2;   /* large structs: static, reset by every load */

static void round_trip(const rc_ir *a, const char *what)
{
    char err[1024];
    char *t1 = rc_ir_format(a);
    if (!t1) return;                                   /* out of memory: not a finding */
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
    if (size > RC_SPEC_MAX_FILE) return 0;             /* rc_spec_load refuses larger files */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char err[1024] = "";
    if (rc_spec_load_string("fuzz.lua", text, &ir, err, sizeof err) == 0) {
        round_trip(&ir, "loaded spec");
        if (rc_ir_infer(&ir, FUZZ_CELLS, "fuzz.lua", err, sizeof err) == 0) round_trip(&ir, "inferred spec");
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err[0] ? err : "loaded and inferred");
    free(text);
    return 0;
}
