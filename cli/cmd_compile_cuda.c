/* cmd_compile_cuda.c — the CUDA row of `retinac compile` (cli/cmd_compile.c's target table):
 * render the model's CUDA source, compile it with NVRTC to a CUBIN for --arch sm_XX (default:
 * the GPU's own, asked of the driver; sm_90 when there is no GPU) through the JIT cache, keep
 * the source beside the CUBIN in the cache (<key>.cu next to <key>.cubin), and report the path,
 * registers and spills. A compile error prints the options, the numbered source and the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cuda_drv.h"
#include "emit_cuda.h"
#include "ir.h"
#include "rc_nvrtc.h"

/* Set by cmd_compile's --arch (e.g. "sm_90" or "90"); NULL = ask the driver. */
const char *rc_compile_cuda_arch = NULL;

int rc_compile_cuda(const rc_ir *ir, const char *spec, char *out, size_t n, int *hit, char *err, size_t errlen);

int rc_compile_cuda(const rc_ir *ir, const char *spec, char *out, size_t n, int *hit, char *err, size_t errlen)
{
    int arch = 0;
    if (rc_compile_cuda_arch) {
        const char *a = rc_compile_cuda_arch;
        if (!strncmp(a, "sm_", 3)) a += 3;
        char *end;
        long v = strtol(a, &end, 10);
        if (*end || v < 30 || v > 1000) {
            snprintf(err, errlen, "--arch: expected sm_XX (e.g. sm_90), got '%s'", rc_compile_cuda_arch);
            return -1;
        }
        arch = (int)v;
    } else {
        rc_cuda_dev *d = NULL;
        char why[512];
        if (rc_cuda_open(0, &d, why, sizeof why) == 0) {
            arch = d->arch;
            fprintf(stderr, "retinac compile: GPU: %s\n", d->desc);
            rc_cuda_close(d);
        } else {
            arch = 90;
            fprintf(stderr, "retinac compile: no GPU (%s): compiling for sm_90 (use --arch)\n", why);
        }
    }
    char *src = NULL;
    if (rc_emit_cuda_source(ir, spec, &src, err, errlen)) return -1;
    char label[600];
    snprintf(label, sizeof label, "%s/model.cu", ir->name);
    rc_nvrtc_result res;
    if (rc_nvrtc_compile(src, label, arch, 1, &res, err, errlen)) {
        if (res.report) fputs(res.report, stderr);
        rc_nvrtc_result_free(&res);
        free(src);
        return -1;
    }
    /* keep the source next to the image: same key stem, extension .cu */
    char srcpath[1200], cerr[512];
    snprintf(srcpath, sizeof srcpath, "%s", res.path);
    char *dot = strrchr(srcpath, '.');
    if (dot) strcpy(dot, ".cu");
    FILE *f = fopen(srcpath, "w");
    if (!f || fputs(src, f) < 0 || fclose(f)) {
        snprintf(err, errlen, "%s: cannot write the source", srcpath);
        rc_nvrtc_result_free(&res);
        free(src);
        return -1;
    }
    (void)cerr;
    int regs = 0, ss = 0, sl = 0, st = 0;
    int nk = rc_nvrtc_log_stats(res.log, &regs, &ss, &sl, &st);
    fprintf(stderr, "retinac compile: %s for %s_%d: %d kernels, max %d registers, %d/%d bytes spilled; source %s\n",
            res.is_ptx ? "PTX" : "CUBIN", res.is_ptx ? "compute" : "sm", res.arch, nk, regs, ss, sl, srcpath);
    snprintf(out, n, "%s", res.path);
    *hit = res.cache_hit;
    rc_nvrtc_result_free(&res);
    free(src);
    return 0;
}
