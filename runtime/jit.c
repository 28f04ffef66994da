/* jit.c — generated C -> shared object through the system compiler and the disk cache
 * (see jit.h). The compiler runs through /bin/sh so that CC and CFLAGS may hold several words
 * ("ccache gcc", "-O1 -g"); every path we add is single-quoted.
 */
#include "errbuf.h"
#include "jit.h"
#include "cache.h"
#include "emit.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
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
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s --version 2>/dev/null", tc->cc);
    FILE *p = popen(cmd, "r");
    if (!p) return rc_errf(err, errlen, "jit: cannot run '%s': %s", cmd, strerror(errno));
    if (!fgets(tc->ident, sizeof tc->ident, p)) tc->ident[0] = 0;
    /* drain so the child does not die of SIGPIPE before we read its status */
    char sink[256];
    while (fgets(sink, sizeof sink, p)) {}
    pclose(p);
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

static int write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
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
        return rc_errf(err, errlen, "jit: write %s: %s", cpath, strerror(errno));
    char *cmd = malloc(16384);
    if (!cmd) { unlink(cpath); return rc_errf(err, errlen, "jit: out of memory"); }
    snprintf(cmd, 16384, "%s %s -shared -fPIC -o '%s' '%s' -lm > '%s' 2>&1", tc->cc, tc->cflags, opath, cpath, logp);
    int st = system(cmd);
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
        rc_errf(err, errlen, "jit: compiling %s failed (exit %d): command: %s %s -shared -fPIC -o OUT.so '%s' -lm: %s "
              "(full log: %s)", label ? label : "generated C", WIFEXITED(st) ? WEXITSTATUS(st) : -1, tc->cc,
              tc->cflags, fc, line, fl);
        free(logb);
        free(cmd);
        return -1;
    }
    free(cmd);
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
