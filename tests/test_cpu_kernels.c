/* test_cpu_kernels.c — the generated CPU convolution kernels under every blocking path, and the
 * JIT/cache machinery they run through.
 *
 * Kernels: models whose convs force the emitter's corner cases -- kernel columns over one
 * vector (k > 16, several kx chunks), k = 1 and 2, outputs narrower than a vector, output
 * channel / row / column remainder blocks from schedule hints, every vector width (4, 8, 16),
 * a batch larger and smaller than the number of gradient parts -- each checked against the
 * reference backend (codegen_cmp.h), forward, backward and inference.
 * JIT: a cache hit returns the same object; a corrupted object (or a missing sidecar) is detected,
 * removed and rebuilt; bytes entries (as for CUBINs) round-trip and are verified; a failing
 * compile reports the command and the generated file:line; CC that does not exist fails cleanly;
 * no shell: quotes and $(...) in the cache path are plain characters, CC/CFLAGS are words; an
 * entry that passes its checksum but does not load, or is not a file, is rebuilt.
 * Each test that needs a private cache makes its own directory (Criterion forks per test).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "codegen_cmp.h"
#include "emit_c.h"
#include "jit.h"
#include "kit.h"
#include "sha256.h"

TestSuite(kernels, .init = codegen_setup_env);

Test(kernels, wide_and_tiny_kernels)
{
    rc_ir ir;
    /* 24x23 input: k=17 (kx chunks 16 + 4), k=1, k=2 on a 7x6 map, vector 16 */
    build_ir(&ir, "history=3 height=24 width=23",
             "layer conv channels=5 kernel=17\nlayer relu\nlayer conv channels=6 kernel=1\nlayer tanh\n"
             "layer conv channels=3 kernel=2 bias=false\nlayer relu\nlayer dense bias=true\n", 2);
    compare(&ir, 11, "k=17, k=1, k=2");
}

Test(kernels, remainder_blocks_and_vector_widths)
{
    rc_ir ir;
    build_ir(&ir, "history=4 height=13 width=40",
             "layer conv channels=7 kernel=3 schedule.tile_c=3 schedule.tile_h=4 schedule.tile_w=13 schedule.vector=8\n"
             "layer batchnorm over=channel\nlayer relu\n"
             "layer conv channels=5 kernel=5 schedule.vector=4 schedule.tile_w=7\nlayer relu\n"
             "layer conv channels=2 kernel=3 schedule.tile_c=1\nlayer softplus\n"
             "layer dense bias=false\n", 3);
    compare(&ir, 9, "remainders in channels, rows, columns; vectors 8 and 4");
}

Test(kernels, narrow_maps_and_one_sample)
{
    rc_ir ir;
    build_ir(&ir, "history=2 height=6 width=5",
             "layer conv channels=3 kernel=3\nlayer relu\nlayer conv channels=2 kernel=2\nlayer relu\n"
             "layer dense bias=true\n", 1);
    compare(&ir, 1, "maps narrower than a vector, B = 1");
}

/* ---------------------------------------------------------------- cache and JIT */

/* A fresh $RETINAC_CACHE_DIR for this test (removed when the test process exits). */
static void private_cache(char *dir, size_t n)
{
    kit_tmpdir(dir, n, "retinac-kcache");
    setenv("RETINAC_CACHE_DIR", dir, 1);
}

static const char *small_src = "int rc_probe(int x) { return x * 3 + 1; }\n";

static long file_ino(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (long)st.st_ino;
}

Test(kernels, cache_hit_returns_the_same_object)
{
    char dir[256], a[4400], b[4400], err[2048];
    int hit = -1;
    private_cache(dir, sizeof dir);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", a, sizeof a, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 0);
    long ino = file_ino(a);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", b, sizeof b, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 1, "second build was not a cache hit");
    cr_assert_str_eq(a, b);
    cr_assert_eq(file_ino(b), ino, "the object was rewritten");
    cr_assert(!strncmp(a, dir, strlen(dir)), "object %s is not under $RETINAC_CACHE_DIR", a);
    void *h = rc_jit_open(a, err, sizeof err);
    cr_assert(h, "%s", err);
    int (*probe)(int) = (int (*)(int))dlsym(h, "rc_probe");
    cr_assert(probe);
    cr_assert_eq(probe(4), 13);
    dlclose(h);
    /* a different source is a different key */
    cr_assert_eq(rc_jit_build("int rc_probe(int x) { return x; }\n", "probe.c", b, sizeof b, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 0);
    cr_assert_str_neq(a, b);
}

Test(kernels, corrupted_entry_is_detected_and_rebuilt)
{
    char dir[256], a[4400], b[4400], err[2048], side[4500];
    int hit = -1;
    private_cache(dir, sizeof dir);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", a, sizeof a, &hit, err, sizeof err), 0, "%s", err);
    /* flip bytes in the middle of the object */
    FILE *f = fopen(a, "r+b");
    cr_assert(f);
    fseek(f, 200, SEEK_SET);
    fputs("CORRUPTED", f);
    fclose(f);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", b, sizeof b, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 0, "a corrupted entry was served from the cache");
    cr_assert_str_eq(a, b);
    void *h = rc_jit_open(b, err, sizeof err);
    cr_assert(h, "%s", err);
    int (*probe)(int) = (int (*)(int))dlsym(h, "rc_probe");
    cr_assert(probe && probe(2) == 7);
    dlclose(h);
    /* a missing sidecar is a miss too */
    snprintf(side, sizeof side, "%s.sha256", b);
    cr_assert_eq(unlink(side), 0);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", b, sizeof b, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 0, "an entry without its sidecar was served");
    cr_assert_eq(access(side, F_OK), 0, "the rebuilt entry has no sidecar");
}

Test(kernels, bytes_entries_round_trip_and_verify)
{
    char dir[256], key[RC_CACHE_KEY_LEN + 1], key2[RC_CACHE_KEY_LEN + 1], path[4400], err[1024];
    private_cache(dir, sizeof dir);
    rc_cache_part parts[3] = {rc_cache_str("nvrtc 13.0"), rc_cache_str("sm_90"), rc_cache_str("kernel source")};
    rc_cache_key(parts, 3, key);
    /* length prefixes: moving a byte between parts changes the key */
    rc_cache_part moved[3] = {rc_cache_str("nvrtc 13.0s"), rc_cache_str("m_90"), rc_cache_str("kernel source")};
    rc_cache_key(moved, 3, key2);
    cr_assert_str_neq(key, key2);
    void *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(rc_cache_get(key, "cubin", &bytes, &len, err, sizeof err), 0, "empty cache must miss");
    const char blob[] = "\x7f" "ELF fake cubin \x00 with a NUL";
    cr_assert_eq(rc_cache_put(key, "cubin", blob, sizeof blob, path, sizeof path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_cache_get(key, "cubin", &bytes, &len, err, sizeof err), 1, "%s", err);
    cr_assert_eq(len, sizeof blob);
    cr_assert_eq(memcmp(bytes, blob, len), 0);
    free(bytes);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fputc('X', f);
    fclose(f);
    cr_assert_eq(rc_cache_get(key, "cubin", &bytes, &len, err, sizeof err), 0, "corrupt entry must miss");
    cr_assert_null(bytes);
    cr_assert_neq(access(path, F_OK), 0, "corrupt entry was not removed");
}

Test(kernels, failing_compile_reports_command_and_file_line)
{
    char dir[256], so[4400], err[4096];
    private_cache(dir, sizeof dir);
    rc_jit_toolchain tc;
    cr_assert_eq(rc_jit_toolchain_get(&tc, err, sizeof err), 0, "%s", err);
    const char *bad = "/* line 1 */\nint rc_probe(int x)\n{\n    return x + undeclared_thing;\n}\n";
    cr_assert_eq(rc_jit_build_with(&tc, bad, "broken/model.c", so, sizeof so, NULL, err, sizeof err), -1);
    cr_log_info("%s", err);
    cr_assert(strstr(err, "broken/model.c"), "no label: %s", err);
    cr_assert(strstr(err, "-shared -fPIC"), "no command: %s", err);
    cr_assert(strstr(err, tc.cc), "no compiler: %s", err);
    char *at = strstr(err, "failed-");
    cr_assert(at, "no kept source: %s", err);
    cr_assert(strstr(err, ".c:4:"), "no file:line of the error (line 4): %s", err);
    cr_assert(strstr(err, "undeclared_thing"), "no compiler message: %s", err);
    /* the kept source is really there and holds the generated text */
    char kept[4400];
    const char *end = strstr(at, ".c");
    cr_assert(end);
    snprintf(kept, sizeof kept, "%s/%.*s.c", dir, (int)(end - at), at);
    FILE *f = fopen(kept, "r");
    cr_assert(f, "kept source %s missing", kept);
    fclose(f);
}

Test(kernels, missing_compiler_fails_cleanly)
{
    char dir[256], err[4096];
    private_cache(dir, sizeof dir);
    setenv("CC", "/nonexistent/retinac-cc", 1);
    rc_ir ir;
    build_ir(&ir, "history=2 height=5 width=5", "layer dense\n", 1);
    rc_backend *be = NULL;
    cr_assert_eq(rc_c_backend_create(&ir, &be, err, sizeof err), -1);
    cr_assert_null(be);
    cr_log_info("%s", err);
    cr_assert(strstr(err, "/nonexistent/retinac-cc"), "command not shown: %s", err);
    cr_assert(strstr(err, "t/model.c"), "generated file not named: %s", err);
}

Test(kernels, pair_form_blocks_and_remainders)
{
    rc_ir ir;
    /* 8 and 16 channels without hints: the pair form; widths 32 (one block), 38 (two blocks
     * of 20 + 18), 43 (odd: the last lane pair holds one column) */
    build_ir(&ir, "history=3 height=20 width=50",
             "layer conv channels=16 kernel=13\nlayer relu\nlayer conv channels=8 kernel=7\nlayer relu\n"
             "layer dense bias=false\n", 2);
    compare(&ir, 5, "pair form, 16 and 8 channels, two column blocks");
    rc_ir ir2;
    build_ir(&ir2, "history=2 height=7 width=45",
             "layer conv channels=8 kernel=3\nlayer batchnorm over=unit\nlayer relu\nlayer dense bias=true\n", 2);
    compare(&ir2, 4, "pair form, odd width 43");
}

/* Weight gradients are accumulated in a fixed number of batch parts and reduced in order, so a
 * training step gives the same bits on 1 and 2 threads. */
Test(kernels, training_is_bitwise_identical_across_thread_counts)
{
    char err[1024];
    rc_ir ir;
    build_ir(&ir, "history=4 height=14 width=14",
             "layer conv channels=8 kernel=5\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer relu\n"
             "layer conv channels=4 kernel=3\nlayer relu\nlayer dense bias=false\nlayer batchnorm\nlayer softplus\n", 3);
    rc_backend *be = NULL;
    cr_assert_eq(rc_c_backend_create(&ir, &be, err, sizeof err), 0, "%s", err);
    int B = 13, T = B + 8, HW = 14 * 14;
    float *frames = malloc(sizeof(float) * T * HW), *params = malloc(sizeof(float) * ir.params_total);
    float *state = malloc(sizeof(float) * ir.state_total), *y = malloc(sizeof(float) * B * 3), *dy = malloc(sizeof(float) * B * 3);
    float *g1 = calloc(ir.params_total, sizeof(float)), *g2 = calloc(ir.params_total, sizeof(float));
    float *ws = malloc(sizeof(float) * be->ws_floats(be, B));
    int64_t *starts = malloc(sizeof(int64_t) * B);
    uint64_t rs = 5;
    for (int i = 0; i < T * HW; i++) frames[i] = urand(&rs);
    for (int b = 0; b < B; b++) starts[b] = (b * 5) % (T - 4 + 1);
    for (int i = 0; i < B * 3; i++) dy[i] = urand(&rs);
    rc_params_init(&ir, 3, params, state);
    float *gs[2] = {g1, g2};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        rc_params_init(&ir, 3, params, state);
        cr_assert_eq(be->train_forward(be, B, params, state, NULL, 17, frames, starts, y, ws), 0, "%s", be->err);
        cr_assert_eq(be->train_backward(be, B, params, NULL, frames, starts, dy, gs[t], ws), 0, "%s", be->err);
    }
    cr_assert_eq(memcmp(g1, g2, sizeof(float) * ir.params_total), 0, "gradients differ between 1 and 2 threads");
    free(frames); free(params); free(state); free(y); free(dy); free(g1); free(g2); free(ws); free(starts);
    rc_backend_destroy(be);
}

Test(kernels, extreme_hints_are_clamped)
{
    rc_ir ir;
    /* k = 40 with 4-float vectors: ten kernel-column chunks; oversized tile hints */
    build_ir(&ir, "history=2 height=44 width=46",
             "layer conv channels=3 kernel=40 schedule.vector=4 schedule.tile_w=4096 schedule.tile_h=100 schedule.tile_c=100\n"
             "layer relu\nlayer conv channels=2 kernel=3\nlayer relu\nlayer dense bias=true\n", 2);
    compare(&ir, 3, "k=40, vector 4, clamped hints");
}

/* Issue 16: the compiler is started without a shell. A cache directory whose name holds quotes,
 * blanks and shell syntax is an ordinary path, and the command inside it never runs. */
Test(kernels, shell_syntax_in_the_cache_path_is_a_plain_path)
{
    char base[64], dir[2048], marker[128], so[4400], err[4096];
    kit_tmpdir(base, sizeof base, "retinac-kq");
    snprintf(marker, sizeof marker, "%s/pwned", base);
    /* each form that would escape a quoted or unquoted shell word */
    snprintf(dir, sizeof dir, "%s/it's a \"dir\" $(touch %s) `touch %s`; touch %s '", base, marker,
             marker, marker);
    setenv("RETINAC_CACHE_DIR", dir, 1);
    int hit = -1;
    cr_assert_eq(rc_jit_build(small_src, "probe.c", so, sizeof so, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 0);
    cr_assert(!strncmp(so, dir, strlen(dir)), "object %s is not under the quoted directory", so);
    cr_assert_neq(access(marker, F_OK), 0, "a command in the cache path ran");
    void *h = rc_jit_open(so, err, sizeof err);
    cr_assert(h, "%s", err);
    int (*probe)(int) = (int (*)(int))dlsym(h, "rc_probe");
    cr_assert(probe && probe(1) == 4);
    dlclose(h);
    /* a failing compile in such a directory reports the kept file by its real name */
    const char *bad = "int rc_probe(int x) { return x + nope; }\n";
    cr_assert_eq(rc_jit_build(bad, "bad.c", so, sizeof so, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, dir), "the message does not name the directory: %s", err);
    cr_assert(strstr(err, "nope"), "no compiler message: %s", err);
    cr_assert_neq(access(marker, F_OK), 0, "a command in the cache path ran");
}

/* CC and CFLAGS are split at blanks into words, never given to a shell. */
Test(kernels, cc_and_cflags_are_words_not_shell_text)
{
    char dir[256], so[4400], err[4096], marker[300];
    private_cache(dir, sizeof dir);
    snprintf(marker, sizeof marker, "%s/pwned", dir);
    setenv("CC", "env cc", 1);                           /* two words: a wrapper and the compiler */
    char flags[600];
    snprintf(flags, sizeof flags, "-O1  -DRC_K=5\t;touch %s", marker);   /* ';touch' is a bad flag */
    setenv("CFLAGS", flags, 1);
    rc_jit_toolchain tc;
    cr_assert_eq(rc_jit_toolchain_get(&tc, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(tc.ident, "cc") || strstr(tc.ident, "gcc") || strstr(tc.ident, "clang"),
              "`env cc --version` not probed: '%s'", tc.ident);
    cr_assert_eq(rc_jit_build_with(&tc, small_src, "probe.c", so, sizeof so, NULL, err, sizeof err), -1,
                 "';touch' reached a shell or was dropped");
    cr_assert_neq(access(marker, F_OK), 0, "a command in CFLAGS ran");
    setenv("CFLAGS", "-O1  -DRC_K=5\t-fopenmp", 1);
    cr_assert_eq(rc_jit_toolchain_get(&tc, err, sizeof err), 0, "%s", err);
    const char *src = "int rc_probe(int x) { return x * RC_K; }\n";
    cr_assert_eq(rc_jit_build_with(&tc, src, "probe.c", so, sizeof so, NULL, err, sizeof err), 0, "%s", err);
    void *h = rc_jit_open(so, err, sizeof err);
    cr_assert(h, "%s", err);
    int (*probe)(int) = (int (*)(int))dlsym(h, "rc_probe");
    cr_assert(probe && probe(2) == 10, "the -D flag did not reach the compiler");
    dlclose(h);
}

/* An entry that passes its checksum but does not load, and an entry that cannot be read at all,
 * are rebuilt: a bad cache entry is never refused forever. */
Test(kernels, unusable_entries_are_rebuilt_not_refused)
{
    char dir[256], so[4400], so2[4400], err[4096], side[4500];
    private_cache(dir, sizeof dir);
    void *h = rc_jit_load(small_src, "probe.c", so, sizeof so, err, sizeof err);
    cr_assert(h, "%s", err);
    dlclose(h);
    /* garbage with a matching sidecar (as if both were overwritten) */
    FILE *f = fopen(so, "wb");
    cr_assert(f);
    fputs("not an ELF object", f);
    fclose(f);
    char hex[65];
    rc_sha256_hex("not an ELF object", 17, hex);
    snprintf(side, sizeof side, "%s.sha256", so);
    f = fopen(side, "wb");
    fprintf(f, "%s\n", hex);
    fclose(f);
    int hit = -1;
    cr_assert_eq(rc_jit_build(small_src, "probe.c", so2, sizeof so2, &hit, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hit, 1, "the checksum-valid garbage should look like a hit");
    h = rc_jit_load(small_src, "probe.c", so2, sizeof so2, err, sizeof err);
    cr_assert(h, "a checksum-valid but unloadable entry was refused: %s", err);
    int (*probe)(int) = (int (*)(int))dlsym(h, "rc_probe");
    cr_assert(probe && probe(1) == 4);
    dlclose(h);
    /* a directory where the object should be */
    cr_assert_eq(unlink(so), 0);
    cr_assert_eq(mkdir(so, 0755), 0);
    h = rc_jit_load(small_src, "probe.c", so2, sizeof so2, err, sizeof err);
    cr_assert(h, "a directory in the entry's place was refused: %s", err);
    dlclose(h);
    struct stat st;
    cr_assert_eq(stat(so2, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "the entry was not rebuilt as a file");
}

/* A cache directory other users can write to could hand retinac a shared object to dlopen (a
 * matching sidecar is easy to forge): it is refused with the reason, never used. */
Test(kernels, a_cache_others_can_write_is_refused)
{
    char dir[256], so[4400], err[4096];
    private_cache(dir, sizeof dir);
    cr_assert_eq(chmod(dir, 0777), 0);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", so, sizeof so, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, dir) && strstr(err, "writable by other users (mode 777)"), "%s", err);
    cr_assert_eq(chmod(dir, 0775), 0);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", so, sizeof so, NULL, err, sizeof err), -1);
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_assert_eq(rc_jit_build(small_src, "probe.c", so, sizeof so, NULL, err, sizeof err), 0, "%s", err);
}
