/* jit.h — compile generated C into a shared object with the system compiler, through the
 * content-addressed cache (cache.h), and load it.
 *
 * Toolchain: $CC (default "cc"), $CFLAGS (default "-O3 -march=native -fopenmp"); "-shared -fPIC"
 * are always added. Both are split at blanks into argv words and the compiler is started without
 * a shell (proc.h): no quoting, no variables, no command substitution. Cache key = sha256 over (generator version, compiler identity = first line
 * of `$CC --version`, flags, target = machine + CPU model + CPU flags (because of -march=native),
 * source). The source is kept next to the object as <key>.c for inspection.
 * A failed compile leaves the source at <cache>/failed-<key>.c and reports the command, that
 * file and the compiler's first error line (file:line: message); the full log is in
 * <cache>/failed-<key>.log.
 * Thread-safe: no global state (concurrent builds of one key rename identical bytes).
 */
#ifndef RC_JIT_H
#define RC_JIT_H

#include <stddef.h>

typedef struct {
    char cc[512];        /* compiler command */
    char cflags[1024];   /* optimization flags (without -shared -fPIC) */
    char ident[512];     /* first line of `cc --version` */
    char target[1024];   /* machine and CPU identity */
} rc_jit_toolchain;

/* Resolve the toolchain from the environment and probe the compiler. Returns 0 or -1. */
int rc_jit_toolchain_get(rc_jit_toolchain *tc, char *err, size_t errlen);

/* Build (or find in the cache) the shared object for C source `src`. `label` names the source in
 * messages (e.g. "bncnn/model.c"). On success the object's path is in so_path and *hit tells
 * whether it came from the cache (hit may be NULL). Returns 0 or -1 with a message. */
int rc_jit_build(const char *src, const char *label, char *so_path, size_t so_len, int *hit,
                 char *err, size_t errlen);

/* The same with an explicit toolchain (tests use it to force a failing compiler). */
int rc_jit_build_with(const rc_jit_toolchain *tc, const char *src, const char *label, char *so_path,
                      size_t so_len, int *hit, char *err, size_t errlen);

/* dlopen(RTLD_NOW | RTLD_LOCAL). Returns the handle or NULL with dlerror() in err. */
void *rc_jit_open(const char *so_path, char *err, size_t errlen);

/* rc_jit_build + rc_jit_open. A cached object that passes its checksum but does not load
 * (tampered with together with its sidecar, or left by an incompatible toolchain) is evicted
 * and rebuilt once instead of being refused forever. Returns the handle or NULL. */
void *rc_jit_load(const char *src, const char *label, char *so_path, size_t so_len, char *err,
                  size_t errlen);

#endif
