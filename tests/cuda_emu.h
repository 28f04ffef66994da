/* cuda_emu.h — a host emulation of the CUDA device layer (runtime/backend/cuda_drv.h) for tests
 * without a GPU: "device" memory is host memory, a module is the generated .cu compiled as
 * host C++ (g++ -shared) between rc_cuda_emu_prelude() and rc_cuda_emu_trailer(), and a launch
 * runs each block's threads as fibers of one OS thread, switched at __syncthreads and
 * warp shuffles. It runs the very
 * kernel text NVRTC compiles, so index math, tiling, barriers and fusion are checked on the CPU.
 * Header-only (static functions) for the test programs; not part of the library.
 */
#ifndef RC_TEST_CUDA_EMU_H
#define RC_TEST_CUDA_EMU_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_drv.h"
#include "emit_cuda.h"
#include "proc.h"

typedef int (*emu_launch_fn)(void *fn, const void *args, unsigned gx, unsigned gy, unsigned block);

typedef struct emu_fn {
    void *k;
    emu_launch_fn launch;
    size_t args_size;   /* the kernel's argument block (rc_kargs, or rc_uargs for the utility module) */
    struct emu_fn *next;
} emu_fn;

typedef struct {
    void *so;
    emu_launch_fn launch;
    size_t args_size;
    emu_fn *fns;
    char dir[256];
} emu_mod;

static int emu_err(rc_cuda_dev *d, const char *msg, const char *detail)
{
    snprintf(d->err, sizeof d->err, "emu: %s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    return -1;
}

static int emu_alloc(rc_cuda_dev *d, size_t bytes, uint64_t *ptr)
{
    void *p = calloc(1, bytes ? bytes : 4);
    if (!p) return emu_err(d, "out of memory", NULL);
    *ptr = (uint64_t)(uintptr_t)p;
    return 0;
}
static int emu_free(rc_cuda_dev *d, uint64_t ptr) { (void)d; free((void *)(uintptr_t)ptr); return 0; }
static int emu_htod(rc_cuda_dev *d, uint64_t dst, const void *src, size_t n)
{ (void)d; if (n) memcpy((void *)(uintptr_t)dst, src, n); return 0; }
static int emu_dtoh(rc_cuda_dev *d, void *dst, uint64_t src, size_t n)
{ (void)d; if (n) memcpy(dst, (const void *)(uintptr_t)src, n); return 0; }
static int emu_dtod(rc_cuda_dev *d, uint64_t dst, uint64_t src, size_t n)
{ (void)d; if (n) memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n); return 0; }
static int emu_zero(rc_cuda_dev *d, uint64_t dst, size_t n)
{ (void)d; if (n) memset((void *)(uintptr_t)dst, 0, n); return 0; }

static int emu_module_load(rc_cuda_dev *d, const char *src, const char *name, void **mod)
{
    emu_mod *m = calloc(1, sizeof *m);
    if (!m) return emu_err(d, "out of memory", NULL);
    snprintf(m->dir, sizeof m->dir, "/tmp/rc_emu_XXXXXX");
    if (!mkdtemp(m->dir)) { free(m); return emu_err(d, "mkdtemp failed", NULL); }
    char cpp[320], so[320], lg[320];
    snprintf(cpp, sizeof cpp, "%s/k.cpp", m->dir);
    snprintf(so, sizeof so, "%s/k.so", m->dir);
    snprintf(lg, sizeof lg, "%s/log", m->dir);
    FILE *f = fopen(cpp, "w");
    if (!f) { free(m); return emu_err(d, "cannot write", cpp); }
    fputs(rc_cuda_emu_prelude(), f);
    fputs(src, f);
    fputs(rc_cuda_emu_trailer(), f);
    if (fclose(f)) { free(m); return emu_err(d, "cannot write", cpp); }
    /* no shell: compiler/proc.c starts g++ over an argument vector, its output into the log */
    char *argv[] = {"g++", "-std=c++17", "-O1", "-g0", "-w", "-shared", "-fPIC", "-o", so, cpp, "-lpthread", NULL};
    char perr[512];
    int st = -1;
    if (rc_proc_run(argv, lg, &st, perr, sizeof perr) != 0) {
        free(m);
        return emu_err(d, "cannot start g++", perr);
    }
    if (st != 0) {
        snprintf(d->err, sizeof d->err, "emu: g++ failed on %s (see %s, source %s)", name, lg, cpp);
        free(m);
        return -1;
    }
    m->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!m->so) { free(m); return emu_err(d, "dlopen", dlerror()); }
    *(void **)&m->launch = dlsym(m->so, "rc_emu_launch");
    if (!m->launch) { dlclose(m->so); free(m); return emu_err(d, "no rc_emu_launch in", so); }
    const unsigned long long *asz = dlsym(m->so, "rc_emu_args_size");
    if (!asz) { dlclose(m->so); free(m); return emu_err(d, "no rc_emu_args_size in", so); }
    m->args_size = (size_t)*asz;
    unlink(cpp);
    unlink(so);
    unlink(lg);
    rmdir(m->dir);
    *mod = m;
    return 0;
}

static void emu_module_unload(rc_cuda_dev *d, void *mod)
{
    (void)d;
    emu_mod *m = mod;
    if (!m) return;
    for (emu_fn *f = m->fns; f;) { emu_fn *n = f->next; free(f); f = n; }
    dlclose(m->so);
    free(m);
}

static int emu_get_function(rc_cuda_dev *d, void *mod, const char *name, void **fn)
{
    emu_mod *m = mod;
    void *k = dlsym(m->so, name);
    if (!k) return emu_err(d, "kernel not in module", name);
    emu_fn *f = calloc(1, sizeof *f);
    if (!f) return emu_err(d, "out of memory", NULL);
    f->k = k;
    f->launch = m->launch;
    f->args_size = m->args_size;
    f->next = m->fns;
    m->fns = f;
    *fn = f;
    return 0;
}

static int emu_launch(rc_cuda_dev *d, void *fn, unsigned gx, unsigned gy, unsigned block, void *args,
                      size_t argbytes)
{
    emu_fn *f = fn;
    if (argbytes != f->args_size) return emu_err(d, "argument block size differs from the kernel's", NULL);
    if (f->launch(f->k, args, gx, gy, block)) return emu_err(d, "launch failed", NULL);
    return 0;
}

static int emu_sync(rc_cuda_dev *d) { (void)d; return 0; }
static void emu_close(rc_cuda_dev *d) { free(d); }

static const rc_cuda_ops emu_ops = {
    "emu", emu_alloc, emu_free, emu_htod, emu_dtoh, emu_dtod, emu_zero, emu_module_load,
    emu_module_unload, emu_get_function, emu_launch, emu_sync, emu_close,
};

static rc_cuda_dev *emu_open(void)
{
    rc_cuda_dev *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->ops = &emu_ops;
    snprintf(d->desc, sizeof d->desc, "host emulation");
    return d;
}

#endif
