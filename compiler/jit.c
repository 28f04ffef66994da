/* jit.c — generated C -> shared object through the system compiler and the disk cache
 * (see jit.h). The compiler is started without a shell (proc.h): CC and CFLAGS may hold several
 * words ("ccache gcc", "-O1 -g"), split at blanks only, and every path is one argv element, so
 * no character of a path or flag is ever shell syntax.
 */
#include "errbuf.h"
#include "jit.h"
#include "cache.h"
#include "emit.h"
#include "proc.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define RC_JIT_DEFAULT_CFLAGS "-O3 -march=native -fopenmp"


static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

/* First line of /proc/cpuinfo starting with key (x86: "model name", "flags"); "" if none. */
static void cpuinfo_line(const char *key, char *out, size_t n, int hash_it)
{
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, key, strlen(key))) continue;
        char *v = strchr(line, ':');
        v = v ? v + 1 : line;
        while (*v == ' ' || *v == '\t') v++;
        chomp(v);
        if (hash_it) {
            char hex[65];
            rc_cache_part p = rc_cache_str(v);
            rc_cache_key(&p, 1, hex);
            snprintf(out, n, "%.16s", hex);
        } else {
            snprintf(out, n, "%s", v);
        }
        break;
    }
    free(line);
    fclose(f);
}

int rc_jit_toolchain_get(rc_jit_toolchain *tc, char *err, size_t errlen)
{
    memset(tc, 0, sizeof *tc);
    const char *cc = getenv("CC"), *cf = getenv("CFLAGS");
    snprintf(tc->cc, sizeof tc->cc, "%s", cc && *cc ? cc : "cc");
    snprintf(tc->cflags, sizeof tc->cflags, "%s", cf && *cf ? cf : RC_JIT_DEFAULT_CFLAGS);
    /* the identity line keys the cache; a compiler that does not answer --version still gets
     * its chance to compile (and to say what is wrong) */
    char words[1600], *argv[RC_PROC_MAX_ARGS], probe_err[256];
    int n = rc_proc_split(tc->cc, argv, RC_PROC_MAX_ARGS - 1, words, sizeof words);
    if (n <= 0) return rc_errf(err, errlen, "jit: CC '%s' names no compiler", tc->cc);
    argv[n] = "--version";
    argv[n + 1] = NULL;
    if (rc_proc_first_line(argv, tc->ident, sizeof tc->ident, probe_err, sizeof probe_err)) tc->ident[0] = 0;
    chomp(tc->ident);
    if (!tc->ident[0]) snprintf(tc->ident, sizeof tc->ident, "unknown compiler '%.400s'", tc->cc);
    struct utsname u;
    char model[256], flags[32];
    cpuinfo_line("model name", model, sizeof model, 0);
    cpuinfo_line("flags", flags, sizeof flags, 1);
    snprintf(tc->target, sizeof tc->target, "%.64s | %.200s | cpu-flags %.20s", uname(&u) == 0 ? u.machine : "?", model, flags);
    return 0;
}

void *rc_jit_open(const char *so_path, char *err, size_t errlen)
{
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        rc_errf(err, errlen, "jit: dlopen %s: %s", so_path, e ? e : "unknown error");
    }
    return h;
}

/* 0, or -1 with errno set and no file left behind (a full disk leaves no temp in the cache). */
static int write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n, e = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (ok) return 0;
    unlink(path);
    errno = e ? e : EIO;
    return -1;
}

/* The first line of the compiler log that names an error, else the first line. */
static void first_error(const char *log, char *out, size_t n)
{
    const char *best = NULL;
    for (const char *l = log; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (!best && len) best = l;
        if (memmem(l, len, "error", 5)) { best = l; break; }
        l = nl ? nl + 1 : NULL;
    }
    if (!best) { snprintf(out, n, "(no compiler output)"); return; }
    const char *nl = strchr(best, '\n');
    size_t len = nl ? (size_t)(nl - best) : strlen(best);
    if (len >= n) len = n - 1;
    memcpy(out, best, len);
    out[len] = 0;
}

/* Run `CC CFLAGS -shared -fPIC -o OUT SRC -lm` with its output in log. 0 when it ran (*st its
 * exit status), -1 when it could not be started. */
static int compile(const rc_jit_toolchain *tc, const char *label, const char *out, const char *src,
                   const char *log, int *st, char *err, size_t errlen)
{
    char words[sizeof tc->cc + sizeof tc->cflags + 2], *argv[RC_PROC_MAX_ARGS];
    int n = rc_proc_split(tc->cc, argv, RC_PROC_MAX_ARGS, words, sizeof words);
    if (n <= 0) return rc_errf(err, errlen, "jit: CC '%s' names no compiler", tc->cc);
    size_t used = strlen(tc->cc) + 1;
    int m = rc_proc_split(tc->cflags, argv + n, RC_PROC_MAX_ARGS - n - 7, words + used, sizeof words - used);
    if (m < 0) return rc_errf(err, errlen, "jit: CFLAGS has too many words (at most %d)", RC_PROC_MAX_ARGS - 8);
    n += m;
    const char *tail[] = {"-shared", "-fPIC", "-o", out, src, "-lm", NULL};
    for (int i = 0; i < 7; i++) argv[n + i] = (char *)tail[i];
    char why[512];
    if (rc_proc_run(argv, log, st, why, sizeof why))
        return rc_errf(err, errlen, "jit: compiling %s: %s (set CC to a C compiler)", label, why);
    return 0;
}

int rc_jit_build_with(const rc_jit_toolchain *tc, const char *src, const char *label, char *so_path,
                      size_t so_len, int *hit, char *err, size_t errlen)
{
    if (hit) *hit = 0;
    rc_cache_part parts[6] = {
        rc_cache_str(RC_EMIT_VERSION), rc_cache_str(tc->ident), rc_cache_str(tc->cflags),
        rc_cache_str("-shared -fPIC SRC -lm"), rc_cache_str(tc->target), rc_cache_str(src),
    };
    char key[RC_CACHE_KEY_LEN + 1];
    rc_cache_key(parts, 6, key);
    int r = rc_cache_lookup(key, "so", so_path, so_len, err, errlen);
    if (r < 0) return -1;
    if (r == 1) { if (hit) *hit = 1; return 0; }

    char dir[4096], cpath[4400], opath[4400], logp[4400];
    if (rc_cache_dir(dir, sizeof dir, err, errlen)) return -1;
    if (rc_cache_temp_path("c", cpath, sizeof cpath, err, errlen)) return -1;
    if (rc_cache_temp_path("so", opath, sizeof opath, err, errlen)) return -1;
    if (rc_cache_temp_path("log", logp, sizeof logp, err, errlen)) return -1;
    if (write_file(cpath, src, strlen(src)))
        return rc_errf(err, errlen, "jit: compile cache %s: cannot write the generated source: %s", dir,
                       strerror(errno));
    int st = 0;
    if (compile(tc, label ? label : "generated C", opath, cpath, logp, &st, err, errlen)) {
        unlink(cpath);
        unlink(logp);
        return -1;
    }
    if (st != 0) {
        /* keep the source and the log under stable names and report file:line */
        char fc[4400], fl[4400], line[600] = "(no compiler output)";
        snprintf(fc, sizeof fc, "%s/failed-%s.c", dir, key);
        snprintf(fl, sizeof fl, "%s/failed-%s.log", dir, key);
        rename(cpath, fc);
        void *logb = NULL;
        size_t ln = 0;
        FILE *lf = fopen(logp, "rb");
        if (lf) {
            logb = calloc(1, 1 << 16);
            if (logb) ln = fread(logb, 1, (1 << 16) - 1, lf);
            fclose(lf);
        }
        if (logb) {
            ((char *)logb)[ln] = 0;
            /* the log names the temp file: point at the kept copy instead */
            char *s = logb;
            char *at = strstr(s, cpath);
            first_error(at ? at : s, line, sizeof line);
            char *p = strstr(line, cpath);
            if (p) {
                char fixed[1200];
                snprintf(fixed, sizeof fixed, "%.*s%.400s%.300s", (int)(p - line), line, fc, p + strlen(cpath));
                snprintf(line, sizeof line, "%.590s", fixed);
            }
        }
        rename(logp, fl);
        unlink(opath);
        rc_errf(err, errlen, "jit: compiling %s failed (exit %d): command: %s %s -shared -fPIC -o OUT.so %s -lm: %s "
              "(full log: %s)", label ? label : "generated C", st, tc->cc, tc->cflags, fc, line, fl);
        free(logb);
        return -1;
    }
    unlink(logp);
    if (rc_cache_put_file(key, "so", opath, so_path, so_len, err, errlen)) { unlink(cpath); unlink(opath); return -1; }
    char keep[4400];
    snprintf(keep, sizeof keep, "%s/%s.c", dir, key);
    if (rename(cpath, keep) != 0) unlink(cpath);
    return 0;
}

int rc_jit_build(const char *src, const char *label, char *so_path, size_t so_len, int *hit,
                 char *err, size_t errlen)
{
    rc_jit_toolchain tc;
    if (rc_jit_toolchain_get(&tc, err, errlen)) return -1;
    return rc_jit_build_with(&tc, src, label, so_path, so_len, hit, err, errlen);
}

void *rc_jit_load(const char *src, const char *label, char *so_path, size_t so_len, char *err,
                  size_t errlen)
{
    int hit = 0;
    if (rc_jit_build(src, label, so_path, so_len, &hit, err, errlen)) return NULL;
    void *h = rc_jit_open(so_path, err, errlen);
    if (h || !hit) return h;
    if (rc_cache_evict(so_path)) return NULL;   /* err still says why it did not load */
    if (rc_jit_build(src, label, so_path, so_len, &hit, err, errlen)) return NULL;
    return rc_jit_open(so_path, err, errlen);
}
