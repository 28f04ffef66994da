/* cache.h — the content-addressed disk cache for JIT products (CPU shared objects, CUBINs).
 *
 * Location: $RETINAC_CACHE_DIR, else $XDG_CACHE_HOME/retinac, else $HOME/.cache/retinac
 * (created on first use, mode 0700). It must be owned by this user and not writable by group or
 * others, else every call fails: the sidecars detect corruption, not tampering, and the shared
 * objects here are dlopened. An entry is two files in that directory:
 *   <key>.<ext>          the product (e.g. "so", "cubin")
 *   <key>.<ext>.sha256   64 hex chars: sha256 of the product's bytes (integrity sidecar)
 * Keys are 64 lowercase hex chars: sha256 over length-prefixed parts (generator version,
 * compiler identity, flags, target/arch, source), so any change of any part is a new entry and
 * parts cannot run into each other ("ab"+"c" != "a"+"bc").
 * Invariants:
 *   - every write is a temp file in the cache directory followed by rename(), product first,
 *     sidecar second: a reader never sees a partial file, and an entry whose sidecar is missing
 *     or disagrees with the product's bytes (crash, disk error, tampering) counts as a miss and
 *     is removed, so the caller rebuilds it;
 *   - concurrent writers of the same key are harmless (same bytes, last rename wins);
 *   - no global state: the directory is resolved on every call (tests change the env var).
 * Errors: -1 with one line naming the path and the failing call in err.
 */
#ifndef RC_CACHE_H
#define RC_CACHE_H

#include <stddef.h>

#define RC_CACHE_KEY_LEN 64      /* hex chars, plus a NUL in buffers */

/* One part of a key: len bytes at data (len 0 allowed). */
typedef struct {
    const void *data;
    size_t len;
} rc_cache_part;

/* Convenience: a NUL-terminated string as a part. */
static inline rc_cache_part rc_cache_str(const char *s)
{
    size_t n = 0;
    if (s) while (s[n]) n++;
    rc_cache_part p = {s ? (const void *)s : (const void *)"", n};
    return p;
}

/* key = sha256( for each part: 8-byte little-endian length, then the bytes ), as hex. */
void rc_cache_key(const rc_cache_part *parts, int n, char key[RC_CACHE_KEY_LEN + 1]);

/* The cache directory (created if missing) into out. Returns 0 or -1. */
int rc_cache_dir(char *out, size_t outlen, char *err, size_t errlen);

/* Path of entry <dir>/<key>.<ext> into out (whether or not it exists). Returns 0 or -1. */
int rc_cache_path(const char *key, const char *ext, char *out, size_t outlen,
                  char *err, size_t errlen);

/* Look an entry up and verify it against its sidecar. Returns 1 (hit: path in out, if out is
 * not NULL), 0 (miss; a corrupt entry is removed first), -1 (error). */
int rc_cache_lookup(const char *key, const char *ext, char *out, size_t outlen,
                    char *err, size_t errlen);

/* Read a verified entry into a malloc'd buffer (*bytes, caller frees; *len bytes).
 * Returns 1 (hit), 0 (miss or corrupt: *bytes = NULL), -1 (error). */
int rc_cache_get(const char *key, const char *ext, void **bytes, size_t *len,
                 char *err, size_t errlen);

/* Store bytes as entry key.ext atomically (temp + rename), then its sidecar. Path of the
 * entry into out if out is not NULL. Returns 0 or -1. */
int rc_cache_put(const char *key, const char *ext, const void *bytes, size_t len,
                 char *out, size_t outlen, char *err, size_t errlen);

/* Move a finished file (e.g. a compiler's output, which should live in the cache directory
 * so that rename() stays on one filesystem; it is copied otherwise) into the entry key.ext,
 * then write its sidecar. src no longer exists afterwards. Returns 0 or -1. */
int rc_cache_put_file(const char *key, const char *ext, const char *src, char *out,
                      size_t outlen, char *err, size_t errlen);

/* A fresh temp path in the cache directory, "<dir>/tmp.<pid>.<n>.<suffix>" (nothing is
 * created). For a compiler to write into before rc_cache_put_file. Returns 0 or -1. */
int rc_cache_temp_path(const char *suffix, char *out, size_t outlen, char *err, size_t errlen);

/* Remove an entry (by its path) and its sidecar so that the next lookup misses and the caller
 * rebuilds it; a non-file in the way is renamed aside. For an entry that is intact by its
 * checksum but unusable (e.g. a shared object dlopen refuses). Returns 0 or -1. */
int rc_cache_evict(const char *path);

#endif
