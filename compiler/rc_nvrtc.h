/* rc_nvrtc.h — (named so, not nvrtc.h, to leave <nvrtc.h> to the toolkit) compile generated CUDA source with NVRTC to a CUBIN for one real architecture,
 * through the content-addressed cache (compiler/cache.h), without needing a GPU.
 *
 * Policy (reference/style-and-ecosystem.md §4): CUBIN for the device's own sm_XX; PTX for the
 * newest architecture NVRTC knows only when the device is newer than that (the driver JITs
 * it). The NVRTC log is read after every compile, success included; CUBIN compiles pass
 * --ptxas-options=-v so the log reports registers and spill bytes per kernel. On failure the
 * source is kept in the cache directory as failed-<key>.cu and the report (options, numbered
 * source, log) is returned for the caller to print.
 * Cache key: generator version, NVRTC version, target, options, source. The log is cached next
 * to the image (ext "<ext>.log") so a hit still reports spills.
 * Built without NVRTC (RC_HAVE_NVRTC=0) every call fails with a clear message.
 */
#ifndef RC_NVRTC_H
#define RC_NVRTC_H

#include <stddef.h>

typedef struct {
    void *image;        /* CUBIN (ELF) or NUL-terminated PTX; malloc'd */
    size_t size;
    int is_ptx;
    int arch;           /* the architecture compiled for, e.g. 90 */
    int cache_hit;
    char *log;          /* NVRTC + ptxas log (may be empty, never NULL on success); malloc'd */
    char *report;       /* on failure: options, numbered source and log; else NULL */
    char path[1024];    /* the cache entry (or, on failure, the kept .cu) */
} rc_nvrtc_result;

/* 1 if built with NVRTC. */
int rc_nvrtc_available(void);
/* NVRTC version; returns 0 or -1 when unavailable. */
int rc_nvrtc_version(int *major, int *minor);
/* The newest real architecture NVRTC supports (e.g. 121), or -1. */
int rc_nvrtc_max_arch(void);

/* Compile src (program name `name`, used in the log) for compute capability `arch`
 * (major*10+minor). use_cache 0 bypasses the cache (tests of the compiler itself).
 * Returns 0 (res filled) or -1 with one line in err (res->report may hold the full report). */
int rc_nvrtc_compile(const char *src, const char *name, int arch, int use_cache,
                     rc_nvrtc_result *res, char *err, size_t errlen);
void rc_nvrtc_result_free(rc_nvrtc_result *res);

/* Parse a ptxas -v log: the largest spill store/load bytes and stack frame of any kernel and
 * the largest register count; the number of kernels reported. Returns that number. */
int rc_nvrtc_log_stats(const char *log, int *max_regs, int *max_spill_st, int *max_spill_ld,
                       int *max_stack);

#endif
