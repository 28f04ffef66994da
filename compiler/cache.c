/* cache.c — content-addressed disk cache for JIT products (see cache.h for layout and invariants).
 *
 * Integrity: every product has a sidecar holding the sha256 of its bytes; lookups recompute it,
 * so a truncated or overwritten product is detected, removed and rebuilt by the caller.
 * Atomicity: temp file in the same directory + rename(); the product is renamed before the
 * sidecar, so a crash between the two leaves an entry without a sidecar = a miss.
 */
#include "errbuf.h"
#include "cache.h"
#include "sha256.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


void rc_cache_key(const rc_cache_part *parts, int n, char key[RC_CACHE_KEY_LEN + 1])
{
    rc_sha256 s;
    rc_sha256_init(&s);
    for (int i = 0; i < n; i++) {
        uint8_t le[8];
        uint64_t len = parts[i].len;
        for (int k = 0; k < 8; k++) le[k] = (uint8_t)(len >> (8 * k));
        rc_sha256_update(&s, le, 8);
        if (parts[i].len) rc_sha256_update(&s, parts[i].data, parts[i].len);
    }
    uint8_t d[32];
    rc_sha256_final(&s, d);
    rc_sha256_to_hex(d, key);
}

/* mkdir -p for an absolute or relative path. */
static int mkdirs(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return rc_errf(err, errlen, "cache: bad directory '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0) continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return rc_errf(err, errlen, "cache: mkdir %s: %s", tmp, strerror(errno));
        tmp[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return rc_errf(err, errlen, "cache: %s is not a directory", path);
    return 0;
}

int rc_cache_dir(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *d = getenv("RETINAC_CACHE_DIR");
    int n;
    if (d && *d) n = snprintf(out, outlen, "%s", d);
    else if ((d = getenv("XDG_CACHE_HOME")) && *d) n = snprintf(out, outlen, "%s/retinac", d);
    else if ((d = getenv("HOME")) && *d) n = snprintf(out, outlen, "%s/.cache/retinac", d);
    else return rc_errf(err, errlen, "cache: none of RETINAC_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
    if (n < 0 || (size_t)n >= outlen) return rc_errf(err, errlen, "cache: directory path too long");
    if (mkdirs(out, err, errlen)) return -1;
    /* the checksums catch corruption, not tampering: whoever can write here can hand retinac a
     * shared object to dlopen, so the directory must be this user's alone */
    struct stat st;
    if (stat(out, &st) != 0) return rc_errf(err, errlen, "cache: stat %s: %s", out, strerror(errno));
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return rc_errf(err, errlen, "cache: %s is %s (mode %03o): another user could place code there "
                       "that retinac would load; use a private directory (chmod go-w, or set "
                       "RETINAC_CACHE_DIR)", out, st.st_uid != geteuid() ? "owned by another user"
                       : "writable by other users", (unsigned)(st.st_mode & 0777));
    return 0;
}

static int valid_key(const char *key)
{
    if (!key || strlen(key) != RC_CACHE_KEY_LEN) return 0;
    for (int i = 0; i < RC_CACHE_KEY_LEN; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return 0;
    return 1;
}

int rc_cache_path(const char *key, const char *ext, char *out, size_t outlen, char *err, size_t errlen)
{
    if (!valid_key(key)) return rc_errf(err, errlen, "cache: malformed key");
    if (!ext || !*ext || strchr(ext, '/')) return rc_errf(err, errlen, "cache: bad extension");
    char dir[4096];
    if (rc_cache_dir(dir, sizeof dir, err, errlen)) return -1;
    int n = snprintf(out, outlen, "%s/%s.%s", dir, key, ext);
    if (n < 0 || (size_t)n >= outlen) return rc_errf(err, errlen, "cache: path too long");
    return 0;
}

/* Read a whole file. Returns 0, or -1 (errno set) on failure. */
static int read_all(const char *path, void **bytes, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); errno = ENOMEM; return -1; }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); errno = ENOMEM; return -1; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); errno = EIO; return -1; }
    *bytes = buf;
    *len = n;
    return 0;
}

/* Write bytes to a temp file next to `path` and rename it over `path`. */
static int write_atomic(const char *path, const void *bytes, size_t len, char *err, size_t errlen)
{
    char tmp[4300];
    static atomic_uint seq;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
    FILE *f = fopen(tmp, "wb");
    if (!f) return rc_errf(err, errlen, "cache: open %s: %s", tmp, strerror(errno));
    int ok = len == 0 || fwrite(bytes, 1, len, f) == len;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        int e = errno;
        unlink(tmp);
        return rc_errf(err, errlen, "cache: write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rc_errf(err, errlen, "cache: rename %s -> %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

int rc_cache_evict(const char *path)
{
    char side[4300];
    snprintf(side, sizeof side, "%s.sha256", path);
    unlink(side);
    if (unlink(path) == 0 || errno == ENOENT) return 0;
    /* not a plain file (e.g. a directory): move it out of the key's way */
    static atomic_uint seq;
    char aside[4300];
    snprintf(aside, sizeof aside, "%s.stale.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
    return rename(path, aside) == 0 ? 0 : -1;
}

/* Verify path against path.sha256. Returns 1 intact, 0 missing/corrupt (removed), -1 error.
 * If bytes is not NULL the content is handed back on a hit. */
static int verify(const char *path, void **bytes, size_t *len, char *err, size_t errlen)
{
    char side[4300];
    snprintf(side, sizeof side, "%s.sha256", path);
    void *data = NULL, *sd = NULL;
    size_t n = 0, sn = 0;
    if (read_all(path, &data, &n) != 0) {
        int e = errno;
        if (e == ENOENT) { unlink(side); return 0; }
        /* unreadable (a directory, no permission, I/O error): a miss, not a refusal forever */
        if (rc_cache_evict(path) == 0) return 0;
        return rc_errf(err, errlen, "cache: %s cannot be read (%s) nor removed: remove it by hand",
                       path, strerror(e));
    }
    int intact = 0;
    if (read_all(side, &sd, &sn) == 0) {
        char hex[65];
        rc_sha256_hex(data, n, hex);
        intact = sn >= 64 && memcmp(sd, hex, 64) == 0;
        free(sd);
    }
    if (!intact) {
        free(data);
        unlink(path);
        unlink(side);
        return 0;
    }
    if (bytes) { *bytes = data; *len = n; }
    else free(data);
    return 1;
}

int rc_cache_lookup(const char *key, const char *ext, char *out, size_t outlen, char *err, size_t errlen)
{
    char path[4200];
    if (rc_cache_path(key, ext, path, sizeof path, err, errlen)) return -1;
    int r = verify(path, NULL, NULL, err, errlen);
    if (r == 1 && out) {
        if (strlen(path) >= outlen) return rc_errf(err, errlen, "cache: path too long");
        strcpy(out, path);
    }
    return r;
}

int rc_cache_get(const char *key, const char *ext, void **bytes, size_t *len, char *err, size_t errlen)
{
    char path[4200];
    *bytes = NULL;
    *len = 0;
    if (rc_cache_path(key, ext, path, sizeof path, err, errlen)) return -1;
    return verify(path, bytes, len, err, errlen);
}

static int write_sidecar(const char *path, const void *bytes, size_t len, char *err, size_t errlen)
{
    char side[4300], hex[65];
    snprintf(side, sizeof side, "%s.sha256", path);
    rc_sha256_hex(bytes, len, hex);
    hex[64] = '\n';
    return write_atomic(side, hex, 65, err, errlen);
}

int rc_cache_put(const char *key, const char *ext, const void *bytes, size_t len, char *out,
                 size_t outlen, char *err, size_t errlen)
{
    char path[4200];
    if (rc_cache_path(key, ext, path, sizeof path, err, errlen)) return -1;
    if (write_atomic(path, bytes, len, err, errlen)) return -1;
    if (write_sidecar(path, bytes, len, err, errlen)) return -1;
    if (out) {
        if (strlen(path) >= outlen) return rc_errf(err, errlen, "cache: path too long");
        strcpy(out, path);
    }
    return 0;
}

int rc_cache_put_file(const char *key, const char *ext, const char *src, char *out, size_t outlen,
                      char *err, size_t errlen)
{
    char path[4200];
    if (rc_cache_path(key, ext, path, sizeof path, err, errlen)) return -1;
    void *data = NULL;
    size_t n = 0;
    if (read_all(src, &data, &n) != 0) return rc_errf(err, errlen, "cache: read %s: %s", src, strerror(errno));
    int rc;
    if (rename(src, path) == 0) rc = 0;
    else {
        rc = write_atomic(path, data, n, err, errlen);
        unlink(src);
    }
    if (rc == 0) rc = write_sidecar(path, data, n, err, errlen);
    free(data);
    if (rc) return -1;
    if (out) {
        if (strlen(path) >= outlen) return rc_errf(err, errlen, "cache: path too long");
        strcpy(out, path);
    }
    return 0;
}

int rc_cache_temp_path(const char *suffix, char *out, size_t outlen, char *err, size_t errlen)
{
    static atomic_uint seq;
    char dir[4096];
    if (rc_cache_dir(dir, sizeof dir, err, errlen)) return -1;
    int n = snprintf(out, outlen, "%s/tmp.%ld.%u.%s", dir, (long)getpid(), atomic_fetch_add(&seq, 1),
                     suffix ? suffix : "tmp");
    if (n < 0 || (size_t)n >= outlen) return rc_errf(err, errlen, "cache: path too long");
    return 0;
}
