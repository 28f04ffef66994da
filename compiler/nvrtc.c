/* nvrtc.c — NVRTC compile to CUBIN (or PTX fallback) through the JIT cache; see nvrtc.h.
 *
 * NVRTC is linked (it works without a GPU); the driver is not involved here at all.
 * The log is always read right after nvrtcCompileProgram, before its status is checked.
 */
#include "errbuf.h"
#include "rc_nvrtc.h"
#include "cache.h"
#include "emit_cuda.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if RC_HAVE_NVRTC
#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>
#endif


int rc_nvrtc_available(void) { return RC_HAVE_NVRTC; }

void rc_nvrtc_result_free(rc_nvrtc_result *res)
{
    if (!res) return;
    free(res->image);
    free(res->log);
    free(res->report);
    memset(res, 0, sizeof *res);
}

int rc_nvrtc_log_stats(const char *log, int *max_regs, int *max_spill_st, int *max_spill_ld,
                       int *max_stack)
{
    int n = 0, r = 0, ss = 0, sl = 0, st = 0;
    for (const char *p = log ? log : ""; (p = strstr(p, "Used ")); p += 5) {
        int v;
        if (sscanf(p, "Used %d registers", &v) == 1) { n++; if (v > r) r = v; }
    }
    for (const char *p = log ? log : ""; (p = strstr(p, "bytes stack frame")); p++) {
        /* "N bytes stack frame, S bytes spill stores, L bytes spill loads" */
        const char *q = p;
        while (q > log && q[-1] == ' ') q--;
        while (q > log && q[-1] >= '0' && q[-1] <= '9') q--;
        int a, b, c;
        if (sscanf(q, "%d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &a, &b, &c) == 3) {
            if (a > st) st = a;
            if (b > ss) ss = b;
            if (c > sl) sl = c;
        }
    }
    if (max_regs) *max_regs = r;
    if (max_spill_st) *max_spill_st = ss;
    if (max_spill_ld) *max_spill_ld = sl;
    if (max_stack) *max_stack = st;
    return n;
}

#if !RC_HAVE_NVRTC

int rc_nvrtc_version(int *major, int *minor) { *major = *minor = 0; return -1; }
int rc_nvrtc_max_arch(void) { return -1; }
int rc_nvrtc_compile(const char *src, const char *name, int arch, int use_cache,
                     rc_nvrtc_result *res, char *err, size_t errlen)
{
    (void)src; (void)name; (void)arch; (void)use_cache;
    memset(res, 0, sizeof *res);
    return rc_errf(err, errlen, "%s: retinac was built without NVRTC (no CUDA toolkit at build time)", name);
}

#else

int rc_nvrtc_version(int *major, int *minor)
{
    return nvrtcVersion(major, minor) == NVRTC_SUCCESS ? 0 : -1;
}

int rc_nvrtc_max_arch(void)
{
    int n = 0;
    if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n < 1) return -1;
    int *a = malloc((size_t)n * sizeof *a);
    if (!a) return -1;
    int best = -1;
    if (nvrtcGetSupportedArchs(a) == NVRTC_SUCCESS)
        for (int i = 0; i < n; i++) if (a[i] > best) best = a[i];
    free(a);
    return best;
}

static int arch_supported(int arch)
{
    int n = 0, ok = 0;
    if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n < 1) return 0;
    int *a = malloc((size_t)n * sizeof *a);
    if (!a) return 0;
    if (nvrtcGetSupportedArchs(a) == NVRTC_SUCCESS)
        for (int i = 0; i < n; i++) ok |= a[i] == arch;
    free(a);
    return ok;
}

/* Options + numbered source + log, as one malloc'd text. */
static char *make_report(const char *name, const char *const *opts, int nopt, const char *src,
                         const char *log)
{
    size_t cap = strlen(src) + strlen(log ? log : "") + 4096, len = 0;
    for (const char *p = src; *p; p++) if (*p == '\n') cap += 8;
    char *r = malloc(cap);
    if (!r) return NULL;
    len += (size_t)snprintf(r + len, cap - len, "NVRTC failed on %s\noptions:", name);
    for (int i = 0; i < nopt && len < cap; i++) len += (size_t)snprintf(r + len, cap - len, " %s", opts[i]);
    len += (size_t)snprintf(r + len, cap - len, "\nsource:\n");
    int line = 1;
    for (const char *p = src; *p && len + 64 < cap;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        len += (size_t)snprintf(r + len, cap - len, "%05d  ", line++);
        if (len + n + 2 >= cap) break;
        memcpy(r + len, p, n);
        len += n;
        r[len++] = '\n';
        p += n + (nl ? 1 : 0);
    }
    snprintf(r + len, cap - len, "log:\n%s\n", log ? log : "");
    return r;
}

/* First line of the log that says "error" (for the one-line message). */
static void first_error(const char *log, char *out, size_t n)
{
    const char *p = log ? strstr(log, "error") : NULL;
    if (!p) { snprintf(out, n, "%s", log && *log ? log : "(empty log)"); }
    else {
        const char *s = p;
        while (s > log && s[-1] != '\n') s--;
        const char *e = strchr(p, '\n');
        size_t k = e ? (size_t)(e - s) : strlen(s);
        if (k >= n) k = n - 1;
        memcpy(out, s, k);
        out[k] = 0;
    }
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
}

/* NVRTC dlopens libnvrtc-builtins.so.MAJOR.MINOR by that name when it compiles. retinac finds
 * libnvrtc itself through its rpath, but a toolkit that is not on the loader path (no
 * /etc/ld.so.conf.d entry: a tarball, pip or module install) then fails every compile with
 * "failed to open libnvrtc-builtins". Loading the builtins once from the directory libnvrtc was
 * loaded from makes NVRTC's own dlopen find them already loaded (glibc matches the soname).
 * Best effort: if this fails, NVRTC reports what it reported before. */
static void preload_builtins(void)
{
    Dl_info info;
    int major, minor;
    if (!dladdr((void *)nvrtcVersion, &info) || !info.dli_fname) return;
    if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (!slash) return;
    char path[4096];
    if (snprintf(path, sizeof path, "%.*s/libnvrtc-builtins.so.%d.%d", (int)(slash - info.dli_fname),
                 info.dli_fname, major, minor) >= (int)sizeof path)
        return;
    (void)dlopen(path, RTLD_NOW | RTLD_GLOBAL);   /* kept for the process's life */
}

int rc_nvrtc_compile(const char *src, const char *name, int arch, int use_cache,
                     rc_nvrtc_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    int maj = 0, min = 0;
    if (rc_nvrtc_version(&maj, &min)) return rc_errf(err, errlen, "%s: nvrtcVersion failed", name);
    int ptx = !arch_supported(arch);
    int target = arch;
    if (ptx) {
        int mx = rc_nvrtc_max_arch();
        if (mx < 0) return rc_errf(err, errlen, "%s: NVRTC reports no supported architectures", name);
        if (arch < mx)
            return rc_errf(err, errlen, "%s: NVRTC %d.%d cannot compile for sm_%d (oldest supported is older "
                         "than the device? supported up to sm_%d)", name, maj, min, arch, mx);
        target = mx;   /* device newer than NVRTC: PTX for the newest arch it knows */
    }
    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s_%d", ptx ? "compute" : "sm", target);
    const char *opts[4];
    int nopt = 0;
    opts[nopt++] = archopt;
    if (!ptx) opts[nopt++] = "--ptxas-options=-v";
    opts[nopt++] = "--std=c++17";
    opts[nopt++] = "-default-device";
    res->arch = target;
    res->is_ptx = ptx;
    const char *ext = ptx ? "ptx" : "cubin";

    char ver[32], key[RC_CACHE_KEY_LEN + 1], optcat[256] = "";
    snprintf(ver, sizeof ver, "nvrtc %d.%d", maj, min);
    for (int i = 0; i < nopt; i++) {
        strncat(optcat, opts[i], sizeof optcat - strlen(optcat) - 2);
        strncat(optcat, "\n", sizeof optcat - strlen(optcat) - 1);
    }
    rc_cache_part parts[5] = { rc_cache_str(RC_CUDA_GEN_VERSION), rc_cache_str(ver), rc_cache_str(archopt),
                               rc_cache_str(optcat), rc_cache_str(src) };
    rc_cache_key(parts, 5, key);
    char logext[32];
    snprintf(logext, sizeof logext, "%s.log", ext);
    char cerr[512];
    if (use_cache) {
        void *bytes = NULL;
        size_t len = 0;
        int hit = rc_cache_get(key, ext, &bytes, &len, cerr, sizeof cerr);
        if (hit < 0) return rc_errf(err, errlen, "%s: cache: %s", name, cerr);
        if (hit == 1) {
            void *lb = NULL;
            size_t ll = 0;
            if (rc_cache_get(key, logext, &lb, &ll, cerr, sizeof cerr) != 1) { lb = NULL; ll = 0; }
            res->log = malloc(ll + 1);
            if (!res->log) { free(bytes); free(lb); return rc_errf(err, errlen, "%s: out of memory", name); }
            if (ll) memcpy(res->log, lb, ll);
            res->log[ll] = 0;
            free(lb);
            res->image = bytes;
            res->size = len;
            res->cache_hit = 1;
            rc_cache_path(key, ext, res->path, sizeof res->path, cerr, sizeof cerr);
            return 0;
        }
    }

    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, preload_builtins);
    nvrtcProgram prog;
    nvrtcResult rc = nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL);
    if (rc != NVRTC_SUCCESS) return rc_errf(err, errlen, "%s: nvrtcCreateProgram: %s", name, nvrtcGetErrorString(rc));
    rc = nvrtcCompileProgram(prog, nopt, opts);
    size_t lsz = 0;
    char *log = NULL;
    if (nvrtcGetProgramLogSize(prog, &lsz) == NVRTC_SUCCESS && lsz > 0 && (log = malloc(lsz + 1))) {
        if (nvrtcGetProgramLog(prog, log) != NVRTC_SUCCESS) log[0] = 0;
        log[lsz] = 0;
    }
    if (!log && (log = malloc(1))) log[0] = 0;
    if (!log) { nvrtcDestroyProgram(&prog); return rc_errf(err, errlen, "%s: out of memory", name); }
    if (rc != NVRTC_SUCCESS) {
        char first[300];
        first_error(log, first, sizeof first);
        res->report = make_report(name, opts, nopt, src, log);
        char dir[900] = ".";
        if (rc_cache_dir(dir, sizeof dir, cerr, sizeof cerr)) snprintf(dir, sizeof dir, ".");
        snprintf(res->path, sizeof res->path, "%s/failed-%.16s.cu", dir, key);
        FILE *f = fopen(res->path, "w");
        if (f) { fputs(src, f); if (fclose(f)) res->path[0] = 0; }
        else res->path[0] = 0;
        res->log = log;
        nvrtcDestroyProgram(&prog);
        return rc_errf(err, errlen, "%s: NVRTC: %s: %s (source kept in %s)", name, nvrtcGetErrorString(rc), first,
                     res->path[0] ? res->path : "(could not write)");
    }
    size_t n = 0;
    void *img = NULL;
    if (ptx) {
        if (nvrtcGetPTXSize(prog, &n) == NVRTC_SUCCESS && (img = malloc(n + 1)) &&
            nvrtcGetPTX(prog, img) == NVRTC_SUCCESS) ((char *)img)[n] = 0;
        else { free(img); img = NULL; }
    } else {
        if (nvrtcGetCUBINSize(prog, &n) == NVRTC_SUCCESS && n > 0 && (img = malloc(n)) &&
            nvrtcGetCUBIN(prog, img) == NVRTC_SUCCESS) {}
        else { free(img); img = NULL; }
    }
    nvrtcDestroyProgram(&prog);
    if (!img) { free(log); return rc_errf(err, errlen, "%s: NVRTC produced no %s", name, ext); }
    res->image = img;
    res->size = n;
    res->log = log;
    if (use_cache) {
        if (rc_cache_put(key, ext, img, n, res->path, sizeof res->path, cerr, sizeof cerr) ||
            rc_cache_put(key, logext, log, strlen(log), NULL, 0, cerr, sizeof cerr)) {
            rc_nvrtc_result_free(res);
            return rc_errf(err, errlen, "%s: cache: %s", name, cerr);
        }
    }
    return 0;
}

#endif
