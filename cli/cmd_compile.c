/* cmd_compile.c — `retinac compile SPEC [--cells N] [--target c]`: generate the model's C in
 * memory, JIT-compile it ahead of time through the content-addressed cache (compiler/jit.c) and
 * print where the shared object is. A failing compile prints the command and the generated
 * file:line. Targets are a table; the CUDA target (with --arch sm_XX) adds its row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cmd.h"
#include "emit_c.h"
#include "ir.h"
#include "jit.h"
#include "spec.h"

const char cmd_compile_help[] =
    "usage: retinac compile SPEC [--cells N] [--target c|cuda [--arch sm_XX]]\n"
    "\n"
    "Generate and compile a model ahead of time into the JIT cache ($RETINAC_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/retinac, else ~/.cache/retinac) and print the object's path. Compiler:\n"
    "$CC (default cc) with $CFLAGS (default -O3 -march=native -fopenmp) -shared -fPIC.\n"
    "\n"
    "  --cells N     cells to compile for (default 5)\n"
    "  --target T    c (default) or cuda (NVRTC CUBIN; the .cu is kept beside it)\n"
    "  --arch sm_XX  cuda: architecture (default: the GPU's own; sm_90 without a GPU)\n"
    "\n"
    "Exit status: 0 ok, 1 invalid spec or compile error, 2 usage error.\n";

static int compile_c(const rc_ir *ir, const char *spec, char *out, size_t n, int *hit, char *err, size_t errlen)
{
    char *src = NULL;
    if (rc_emit_c(ir, NULL, &src, err, errlen)) return -1;
    char label[4200];
    snprintf(label, sizeof label, "%s (%s/model.c)", spec, ir->name);
    int rc = rc_jit_build(src, label, out, n, hit, err, errlen);
    free(src);
    return rc;
}

typedef int (*compile_fn)(const rc_ir *ir, const char *spec, char *out, size_t n, int *hit, char *err, size_t errlen);
/* CUDA target: cli/cmd_compile_cuda.c (NVRTC CUBIN, --arch sm_XX). */
int rc_compile_cuda(const rc_ir *ir, const char *spec, char *out, size_t n, int *hit, char *err, size_t errlen);
extern const char *rc_compile_cuda_arch;

static const struct { const char *name; compile_fn fn; } compile_targets[] = {
    {"c", compile_c},
    {"cuda", rc_compile_cuda},
};
#define N_TARGETS (sizeof compile_targets / sizeof compile_targets[0])

int cmd_compile(int argc, char **argv)
{
    const char *spec = NULL, *target = "c";
    int cells = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--cells") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "retinac compile: --cells: expected a positive integer, got '%s'\n", argv[i]);
                return 2;
            }
            cells = (int)v;
        } else if (!strcmp(a, "--target") && i + 1 < argc) target = argv[++i];
        else if (!strcmp(a, "--arch") && i + 1 < argc) rc_compile_cuda_arch = argv[++i];
        else if (a[0] == '-') { fprintf(stderr, "retinac compile: unknown option '%s'\n%s", a, cmd_compile_help); return 2; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "retinac compile: more than one SPEC ('%s')\n", a); return 2; }
    }
    if (!spec) { fputs(cmd_compile_help, stderr); return 2; }
    size_t t = 0;
    while (t < N_TARGETS && strcmp(compile_targets[t].name, target)) t++;
    if (t == N_TARGETS) { fprintf(stderr, "retinac compile: --target: unknown target '%s'\n", target); return 2; }
    rc_ir ir;
    char err[2048], path[4400];
    if (rc_spec_load_any(spec, &ir, err, sizeof err) || rc_ir_infer(&ir, cells, spec, err, sizeof err)) {
        fprintf(stderr, "retinac compile: %s\n", err);
        return 1;
    }
    double t0 = rc_clock_s();
    int hit = 0;
    if (compile_targets[t].fn(&ir, spec, path, sizeof path, &hit, err, sizeof err)) {
        fprintf(stderr, "retinac compile: %s\n", err);
        return 1;
    }
    double s = rc_clock_s() - t0;
    printf("%s\n", path);
    fprintf(stderr, "retinac compile: %s: %s (%.2f s)\n", ir.name, hit ? "cache hit" : "compiled", s);
    return 0;
}
