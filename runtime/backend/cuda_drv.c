/* cuda_drv.c — the CUDA driver API by dlopen("libcuda.so.1"), never linked (see cuda_drv.h).
 *
 * Only the entry points retinac needs are resolved, by their versioned symbol names (the
 * macros of cuda.h map cuMemAlloc to cuMemAlloc_v2 and so on; we do not include cuda.h so the
 * runtime builds without the toolkit). The device runs in its primary context, made current on
 * the calling thread at open. Modules are compiled by compiler/nvrtc.c for the device's own
 * compute capability (asked of the driver), through the JIT cache.
 *
 * RETINAC_CUDA_PROFILE=1 times every launch (device synchronized before and after, so the
 * numbers include ~10 us of launch latency each and serialize the stream) and prints a table per
 * kernel, largest total first, to stderr when the device is closed. Off by default: it costs
 * two synchronizations per launch.
 */
#include "errbuf.h"
#include "cuda_drv.h"
#include "clock.h"
#include "rc_nvrtc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef unsigned long long CUdeviceptr;

#define CU_ATTR_MULTIPROCESSOR_COUNT 16
#define CU_ATTR_CC_MAJOR 75
#define CU_ATTR_CC_MINOR 76

typedef struct {
    void *lib;
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDriverGetVersion)(int *);
    CUresult (*cuDeviceGetCount)(int *);
    CUresult (*cuDeviceGet)(CUdevice *, int);
    CUresult (*cuDeviceGetName)(char *, int, CUdevice);
    CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuModuleLoadData)(CUmodule *, const void *);
    CUresult (*cuModuleUnload)(CUmodule);
    CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                               unsigned, void *, void **, void **);
    CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
    CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*cuGetErrorString)(CUresult, const char **);
} drv_api;

/* Per-kernel launch statistics for RETINAC_CUDA_PROFILE (fixed table: kernels past it are
 * counted under the last row's name "other"). */
#define PROF_MAX 128
typedef struct {
    CUfunction fn;
    char name[64];
    double seconds;
    long launches;
} prof_row;

typedef struct {
    drv_api api;
    CUdevice dev;
    CUcontext ctx;
    char *log;
    int profile;
    int n_prof;
    prof_row prof[PROF_MAX];
} drv_priv;

static const char *cu_str(const drv_api *a, CUresult r)
{
    const char *s = NULL;
    if (a->cuGetErrorString && a->cuGetErrorString(r, &s) == 0 && s) return s;
    return "unknown CUDA error";
}

static int dfail(rc_cuda_dev *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    return -1;
}

#define API(d) (&((drv_priv *)(d)->priv)->api)
#define CHECK(d, call, what) do { CUresult r_ = (call); \
    if (r_) return dfail(d, "cuda: %s: %s (%d)", what, cu_str(API(d), r_), r_); } while (0)

static int load_api(drv_api *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) {
        snprintf(err, errlen, "no CUDA driver (libcuda.so.1 not found: %s)", dlerror());
        return -1;
    }
#define SYM(field, name) do { *(void **)&a->field = dlsym(a->lib, name); \
    if (!a->field) { snprintf(err, errlen, "CUDA driver lacks %s", name); dlclose(a->lib); a->lib = NULL; return -1; } } while (0)
    SYM(cuInit, "cuInit");
    SYM(cuDriverGetVersion, "cuDriverGetVersion");
    SYM(cuDeviceGetCount, "cuDeviceGetCount");
    SYM(cuDeviceGet, "cuDeviceGet");
    SYM(cuDeviceGetName, "cuDeviceGetName");
    SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    SYM(cuCtxSetCurrent, "cuCtxSetCurrent");
    SYM(cuCtxSynchronize, "cuCtxSynchronize");
    SYM(cuModuleLoadData, "cuModuleLoadData");
    SYM(cuModuleUnload, "cuModuleUnload");
    SYM(cuModuleGetFunction, "cuModuleGetFunction");
    SYM(cuLaunchKernel, "cuLaunchKernel");
    SYM(cuMemAlloc, "cuMemAlloc_v2");
    SYM(cuMemFree, "cuMemFree_v2");
    SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(cuMemcpyDtoD, "cuMemcpyDtoD_v2");
    SYM(cuMemsetD8, "cuMemsetD8_v2");
    SYM(cuGetErrorString, "cuGetErrorString");
#undef SYM
    return 0;
}

int rc_cuda_probe(char *why, size_t whylen)
{
    drv_api a;
    if (load_api(&a, why, whylen)) return 0;
    int n = 0, ok = 0;
    CUresult r = a.cuInit(0);
    if (r) snprintf(why, whylen, "CUDA driver present but cuInit failed: %s (%d)", cu_str(&a, r), r);
    else if ((r = a.cuDeviceGetCount(&n)) || n < 1) snprintf(why, whylen, "CUDA driver present but no CUDA device");
    else { ok = 1; snprintf(why, whylen, "%d CUDA device(s)", n); }
    dlclose(a.lib);
    return ok;
}

/* ---------------------------------------------------------------- ops */

static int d_alloc(rc_cuda_dev *d, size_t bytes, uint64_t *ptr)
{
    CUdeviceptr p = 0;
    CHECK(d, API(d)->cuMemAlloc(&p, bytes ? bytes : 4), "cuMemAlloc");
    *ptr = p;
    return 0;
}

static int d_free(rc_cuda_dev *d, uint64_t ptr)
{
    if (ptr) CHECK(d, API(d)->cuMemFree(ptr), "cuMemFree");
    return 0;
}

static int d_htod(rc_cuda_dev *d, uint64_t dst, const void *src, size_t n)
{
    if (n) CHECK(d, API(d)->cuMemcpyHtoD(dst, src, n), "cuMemcpyHtoD");
    return 0;
}

static int d_dtoh(rc_cuda_dev *d, void *dst, uint64_t src, size_t n)
{
    if (n) CHECK(d, API(d)->cuMemcpyDtoH(dst, src, n), "cuMemcpyDtoH");
    return 0;
}

static int d_dtod(rc_cuda_dev *d, uint64_t dst, uint64_t src, size_t n)
{
    if (n) CHECK(d, API(d)->cuMemcpyDtoD(dst, src, n), "cuMemcpyDtoD");
    return 0;
}

static int d_zero(rc_cuda_dev *d, uint64_t dst, size_t n)
{
    if (n) CHECK(d, API(d)->cuMemsetD8(dst, 0, n), "cuMemsetD8");
    return 0;
}

static int d_module_load(rc_cuda_dev *d, const char *src, const char *name, void **mod)
{
    drv_priv *p = d->priv;
    rc_nvrtc_result res;
    char err[768];
    if (rc_nvrtc_compile(src, name, d->arch, 1, &res, err, sizeof err)) {
        free(p->log);
        p->log = res.report;   /* the full report (options, numbered source, log) */
        res.report = NULL;
        rc_nvrtc_result_free(&res);
        return dfail(d, "%s", err);
    }
    free(p->log);
    p->log = res.log;
    res.log = NULL;
    CUmodule m = NULL;
    CUresult r = p->api.cuModuleLoadData(&m, res.image);
    rc_nvrtc_result_free(&res);
    if (r) return dfail(d, "cuda: cuModuleLoadData(%s, %s): %s (%d)", name, d->desc, cu_str(&p->api, r), r);
    *mod = m;
    return 0;
}

static void d_module_unload(rc_cuda_dev *d, void *mod)
{
    if (mod) API(d)->cuModuleUnload(mod);
}

static int d_get_function(rc_cuda_dev *d, void *mod, const char *name, void **fn)
{
    CUfunction f = NULL;
    CUresult r = API(d)->cuModuleGetFunction(&f, mod, name);
    if (r) return dfail(d, "cuda: kernel %s not in module: %s (%d)", name, cu_str(API(d), r), r);
    *fn = f;
    drv_priv *p = d->priv;
    if (p->profile && p->n_prof < PROF_MAX) {
        prof_row *row = &p->prof[p->n_prof++];
        row->fn = f;
        snprintf(row->name, sizeof row->name, "%s", p->n_prof == PROF_MAX ? "other" : name);
    }
    return 0;
}

static prof_row *prof_find(drv_priv *p, CUfunction fn)
{
    for (int i = 0; i < p->n_prof; i++)
        if (p->prof[i].fn == fn) return &p->prof[i];
    return p->n_prof == PROF_MAX ? &p->prof[PROF_MAX - 1] : NULL;
}

static int prof_cmp(const void *a, const void *b)
{
    double x = ((const prof_row *)a)->seconds, y = ((const prof_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void prof_print(drv_priv *p, const char *desc)
{
    qsort(p->prof, (size_t)p->n_prof, sizeof p->prof[0], prof_cmp);
    double total = 0;
    for (int i = 0; i < p->n_prof; i++) total += p->prof[i].seconds;
    fprintf(stderr, "RETINAC_CUDA_PROFILE (%s): %.3f ms in launches, synchronized\n", desc, total * 1e3);
    fprintf(stderr, "  %-40s %9s %10s %7s\n", "kernel", "launches", "ms/launch", "share");
    for (int i = 0; i < p->n_prof; i++) {
        const prof_row *r = &p->prof[i];
        if (!r->launches) continue;
        fprintf(stderr, "  %-40s %9ld %10.4f %6.1f%%\n", r->name, r->launches, r->seconds * 1e3 / (double)r->launches,
                total > 0 ? 100.0 * r->seconds / total : 0.0);
    }
}

static int d_launch(rc_cuda_dev *d, void *fn, unsigned gx, unsigned gy, unsigned block, void *args,
                    size_t argbytes)
{
    (void)argbytes;
    void *params[1] = { args };
    drv_priv *p = d->priv;
    if (!p->profile) {
        CHECK(d, API(d)->cuLaunchKernel(fn, gx, gy, 1, block, 1, 1, 0, NULL, params, NULL), "cuLaunchKernel");
        return 0;
    }
    CHECK(d, API(d)->cuCtxSynchronize(), "cuCtxSynchronize (before a profiled launch)");
    double t0 = rc_clock_s();
    CHECK(d, API(d)->cuLaunchKernel(fn, gx, gy, 1, block, 1, 1, 0, NULL, params, NULL), "cuLaunchKernel");
    CHECK(d, API(d)->cuCtxSynchronize(), "cuCtxSynchronize (a profiled kernel failed)");
    prof_row *row = prof_find(p, fn);
    if (row) { row->seconds += rc_clock_s() - t0; row->launches++; }
    return 0;
}

static int d_sync(rc_cuda_dev *d)
{
    CHECK(d, API(d)->cuCtxSynchronize(), "cuCtxSynchronize (a kernel failed)");
    return 0;
}

static void d_close(rc_cuda_dev *d)
{
    if (!d) return;
    drv_priv *p = d->priv;
    if (p) {
        if (p->profile) prof_print(p, d->desc);
        p->api.cuDevicePrimaryCtxRelease(p->dev);
        /* libcuda stays loaded: unloading a driver library while contexts may live is unsafe */
        free(p->log);
        free(p);
    }
    free(d);
}

static const rc_cuda_ops drv_ops = {
    "cuda", d_alloc, d_free, d_htod, d_dtoh, d_dtod, d_zero, d_module_load, d_module_unload,
    d_get_function, d_launch, d_sync, d_close,
};

const char *rc_cuda_last_log(rc_cuda_dev *d)
{
    if (!d || d->ops != &drv_ops) return "";
    drv_priv *p = d->priv;
    return p->log ? p->log : "";
}

int rc_cuda_open(int ordinal, rc_cuda_dev **out, char *err, size_t errlen)
{
    *out = NULL;
    rc_cuda_dev *d = calloc(1, sizeof *d);
    drv_priv *p = calloc(1, sizeof *p);
    if (!d || !p) { free(d); free(p); snprintf(err, errlen, "cuda: out of memory"); return -1; }
    if (load_api(&p->api, err, errlen)) { free(d); free(p); return -1; }
    drv_api *a = &p->api;
    int n = 0, ver = 0, maj = 0, min = 0, sms = 0;
    CUresult r;
    char name[128] = "?";
    if ((r = a->cuInit(0))) { snprintf(err, errlen, "cuda: cuInit: %s (%d)", cu_str(a, r), r); goto fail; }
    if ((r = a->cuDeviceGetCount(&n)) || n < 1) { snprintf(err, errlen, "cuda: no CUDA device"); goto fail; }
    if (ordinal < 0 || ordinal >= n) { snprintf(err, errlen, "cuda: device %d does not exist (%d found)", ordinal, n); goto fail; }
    if ((r = a->cuDeviceGet(&p->dev, ordinal))) { snprintf(err, errlen, "cuda: cuDeviceGet: %s", cu_str(a, r)); goto fail; }
    a->cuDriverGetVersion(&ver);
    a->cuDeviceGetName(name, sizeof name, p->dev);
    if ((r = a->cuDeviceGetAttribute(&maj, CU_ATTR_CC_MAJOR, p->dev)) ||
        (r = a->cuDeviceGetAttribute(&min, CU_ATTR_CC_MINOR, p->dev))) {
        snprintf(err, errlen, "cuda: compute capability: %s", cu_str(a, r));
        goto fail;
    }
    a->cuDeviceGetAttribute(&sms, CU_ATTR_MULTIPROCESSOR_COUNT, p->dev);
    if ((r = a->cuDevicePrimaryCtxRetain(&p->ctx, p->dev))) {
        snprintf(err, errlen, "cuda: cuDevicePrimaryCtxRetain: %s (%d)", cu_str(a, r), r);
        goto fail;
    }
    if ((r = a->cuCtxSetCurrent(p->ctx))) {
        a->cuDevicePrimaryCtxRelease(p->dev);
        snprintf(err, errlen, "cuda: cuCtxSetCurrent: %s (%d)", cu_str(a, r), r);
        goto fail;
    }
    d->ops = &drv_ops;
    d->priv = p;
    {
        const char *pe = getenv("RETINAC_CUDA_PROFILE");
        p->profile = pe && *pe && strcmp(pe, "0");
    }
    d->arch = maj * 10 + min;
    d->sm_count = sms;
    {
        int nm = 0, nn = 0;
        rc_nvrtc_version(&nm, &nn);
        snprintf(d->desc, sizeof d->desc, "%s, sm_%d, %d SMs, driver %d.%d, nvrtc %d.%d", name, d->arch, sms,
                 ver / 1000, (ver % 1000) / 10, nm, nn);
    }
    *out = d;
    return 0;
fail:
    dlclose(a->lib);
    free(p);
    free(d);
    return -1;
}
