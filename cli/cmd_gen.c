/* cmd_gen.c — `retinac gen SPEC [-o DIR] [--cells N] [--target c]`: write the generated source of
 * a model to DIR/<model>/model.c (DIR defaults to "generated"; with --cells other than 5 the
 * directory is <model>-cells<N>). Deterministic: regenerating gives identical bytes, which
 * `make gen-check` relies on. Written atomically (temp file + rename).
 * Targets are a table (gen_targets): the CUDA emitter adds its row ("cuda" -> model.cu, and an
 * --arch option) without touching the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd.h"
#include "fsutil.h"
#include "emit_c.h"
#include "emit_cuda.h"
#include "ir.h"
#include "spec.h"

#define GEN_DEFAULT_CELLS 5

const char cmd_gen_help[] =
    "usage: retinac gen SPEC [-o DIR] [--cells N] [--target c|cuda]\n"
    "\n"
    "Emit the specialized source of a model spec (Lua or canonical IR): C with OpenMP for\n"
    "the CPU backend. Shapes are compile-time constants; the file header names the generator\n"
    "version, the spec path, the canonical hash and the schedule. The output is deterministic.\n"
    "\n"
    "  -o DIR        output root (default: generated); the file is DIR/<model>/model.c\n"
    "  --cells N     cells to generate for (default 5); N != 5 writes DIR/<model>-cells<N>/\n"
    "  --target T    c (default) or cuda (model.cu: the NVRTC kernels)\n"
    "\n"
    "Exit status: 0 ok, 1 invalid spec or I/O error, 2 usage error.\n";

typedef int (*gen_fn)(const rc_ir *ir, const char *spec, char **src, char *err, size_t errlen);

/* One row per target: name, file name, emitter. (CUDA hook: {"cuda", "model.cu", ...}.) */
static const struct {
    const char *name, *file;
    gen_fn emit;
} gen_targets[] = {
    {"c", "model.c", rc_emit_c},
    {"cuda", "model.cu", rc_emit_cuda_source},
};
#define N_TARGETS (sizeof gen_targets / sizeof gen_targets[0])

int cmd_gen(int argc, char **argv)
{
    const char *spec = NULL, *outdir = "generated", *target = "c";
    int cells = GEN_DEFAULT_CELLS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && i + 1 < argc) outdir = argv[++i];
        else if (!strcmp(a, "--cells") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "retinac gen: --cells: expected a positive integer, got '%s'\n", argv[i]);
                return 2;
            }
            cells = (int)v;
        } else if (!strcmp(a, "--target") && i + 1 < argc) target = argv[++i];
        else if (a[0] == '-') { fprintf(stderr, "retinac gen: unknown option '%s'\n%s", a, cmd_gen_help); return 2; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "retinac gen: more than one SPEC ('%s')\n", a); return 2; }
    }
    if (!spec) { fputs(cmd_gen_help, stderr); return 2; }
    size_t t = 0;
    while (t < N_TARGETS && strcmp(gen_targets[t].name, target)) t++;
    if (t == N_TARGETS) { fprintf(stderr, "retinac gen: --target: unknown target '%s'\n", target); return 2; }

    rc_ir ir;
    char err[1024];
    if (rc_spec_load_any(spec, &ir, err, sizeof err) || rc_ir_infer(&ir, cells, spec, err, sizeof err)) {
        fprintf(stderr, "retinac gen: %s\n", err);
        return 1;
    }
    char *src = NULL;
    if (gen_targets[t].emit(&ir, spec, &src, err, sizeof err)) {
        fprintf(stderr, "retinac gen: %s\n", err);
        return 1;
    }
    char dir[4096], path[4200];
    if (cells == GEN_DEFAULT_CELLS) snprintf(dir, sizeof dir, "%s/%s", outdir, ir.name);
    else snprintf(dir, sizeof dir, "%s/%s-cells%d", outdir, ir.name, cells);
    snprintf(path, sizeof path, "%s/%s", dir, gen_targets[t].file);
    const char *inputs[1] = {spec};
    if (rc_out_not_input(path, inputs, 1, err, sizeof err) < 0 ||
        rc_make_dirs(dir, err, sizeof err) < 0 ||
        rc_write_file_atomic(path, src, strlen(src), err, sizeof err) < 0) {
        fprintf(stderr, "retinac gen: %s\n", err);
        free(src);
        return 1;
    }
    free(src);
    printf("%s\n", path);
    return 0;
}
