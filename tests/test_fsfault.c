/* test_fsfault.c — filesystem faults and outputs (issue 16, class 2), end to end through the CLI.
 *
 * The full disk is injected portably: the retinac child runs with RLIMIT_FSIZE = LIMIT bytes
 * (soft and hard) and SIGXFSZ ignored, so a write past LIMIT fails with EFBIG ("File too
 * large") as a full disk fails with ENOSPC; every output below is larger than LIMIT (checked).
 * The child is started by tests/kit.h (fork + execvp, no shell) with stderr captured (the
 * limit applies to regular files only). For every writing command the tests assert: exit status
 * exactly 1 (a crash in HDF5's exit handler, the old failure, is 139), one message naming the
 * user's output path and the reason, the inputs and the previous output byte-identical, and no
 * temp file left beside the output. A second group checks that every writing command refuses an
 * output that is one of its inputs, under other spellings too (./F, a hard link, a symlink,
 * dir/../F). The last test repeats a few writes on a real full disk (a small tmpfs) where the
 * machine lets the test mount one (root in a container that allows it), and is skipped
 * elsewhere.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "h5util.h"
#include "kit.h"
#include "tiny_retina.h"

#define LIMIT 512   /* bytes a child may write into one file */
#define NO_LIMIT (-1L)

static char dir[256];

static void setup(void) { kit_tmpdir(dir, sizeof dir, "rc_fsfault"); }

static void teardown(void) { kit_cleanup(); }

/* dir/name (printf-formatted) in the kit's ring of path buffers */
#define P(...) kit_path(dir, __VA_ARGS__)

/* ------------------------------------------------------------------ running retinac */

typedef struct {
    int status;        /* exit status, or 128 + signal */
    char err[8192];    /* stderr */
} run_res;

/* retinac ARGS... (NULL-terminated) with RLIMIT_FSIZE = limit (NO_LIMIT: none), stdout to
 * out_path (NULL: /dev/null), stderr captured. */
static run_res run_v(long limit, const char *out_path, va_list ap)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = RC_BIN;
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63) argv[n++] = a;
    argv[n] = NULL;
    kit_opts o = {.stdout_path = out_path ? out_path : "/dev/null", .limit_fsize = limit >= 0, .fsize = limit};
    kit_out k = kit_run(argv, &o);
    run_res r;
    r.status = k.status;
    snprintf(r.err, sizeof r.err, "%s", k.err);
    kit_out_free(&k);
    /* under make asan a sanitizer report exits 1 too: never accept one as the expected failure */
    cr_assert(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error:"), "%s: sanitizer report:\n%s",
              argv[1], r.err);
    return r;
}

static run_res run_lim(long limit, const char *out_path, ...)
{
    va_list ap;
    va_start(ap, out_path);
    run_res r = run_v(limit, out_path, ap);
    va_end(ap);
    return r;
}

#define RUN_OK(...) do { run_res r_ = run_lim(NO_LIMIT, NULL, __VA_ARGS__, (const char *)NULL); \
        cr_assert_eq(r_.status, 0, "setup run failed (%d):\n%s", r_.status, r_.err); } while (0)
#define RUN_FULL(...) run_lim(LIMIT, NULL, __VA_ARGS__, (const char *)NULL)
#define RUN(...) run_lim(NO_LIMIT, NULL, __VA_ARGS__, (const char *)NULL)

/* ------------------------------------------------------------------ files */

typedef struct {
    char path[700];
    char *data;
    size_t n;
} snap;

static void snap_take(snap *s, const char *path)
{
    snprintf(s->path, sizeof s->path, "%s", path);
    s->data = kit_read_file(path, &s->n);
    cr_assert(s->data, "%s: missing before the test", path);
}

/* the file is still there with the same bytes */
static void snap_same(snap *s)
{
    size_t n;
    char *b = kit_read_file(s->path, &n);
    cr_assert(b, "%s: gone after the failed command", s->path);
    cr_assert(n == s->n && memcmp(b, s->data, n) == 0, "%s: changed by the failed command", s->path);
    free(b);
    free(s->data);
    s->data = NULL;
}

/* temp files (.tmp.*, .ckpt.tmp.*, *.tmp<pid>) left in d */
static int is_temp(const char *name)
{
    return !strncmp(name, ".tmp.", 5) || !strncmp(name, ".ckpt.tmp.", 10) || strstr(name, ".tmp") != NULL;
}

static int temps_in(const char *d)
{
    int n = kit_count_entries(d, is_temp);
    return n < 0 ? 0 : n;                       /* a folder never made holds none */
}

static long size_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (long)st.st_size;
}

/* The failed write: exit 1, the target named with the reason, nothing left behind. */
static void assert_refused_write(const run_res *r, const char *target, const char *outdir, const char *what)
{
    cr_assert_eq(r->status, 1, "%s: exit status %d, want 1; stderr:\n%s", what, r->status, r->err);
    cr_assert(strstr(r->err, target), "%s: the message does not name %s:\n%s", what, target, r->err);
    cr_assert(strstr(r->err, strerror(EFBIG)), "%s: the message does not give the reason (%s):\n%s",
              what, strerror(EFBIG), r->err);
    cr_assert_eq(temps_in(outdir), 0, "%s: a temp file was left in %s", what, outdir);
}

/* ------------------------------------------------------------------ fixtures */

static const char *data_path(void)
{
    const char *d = P("tiny.h5");
    if (access(d, F_OK) != 0) cr_assert_eq(tiny_retina_write(d, 3, 400, 100, 2), 0, "writing %s", d);
    return d;
}

static const char *spec_path(void)
{
    static char s[600];
    snprintf(s, sizeof s, "%s/specs/tiny.lua", RC_SRC_DIR);
    return s;
}

/* a trained run folder (1 epoch, reference backend): checkpoint.h5, best.h5, log.csv, metrics.json */
static const char *run_dir(void)
{
    const char *run = P("run");
    if (access(P("run/checkpoint.h5"), F_OK) != 0)
        RUN_OK("train", spec_path(), "--data", data_path(), "-o", run, "--epochs", "1", "--backend", "ref",
               "--threads", "1", "-q");
    return run;
}

/* an interneuron recording for the 16x16 tiny model: boxes/stimuli (T,16,16) in [0,1] and
 * boxes/detrended_membrane_potential (2,T) */
static const char *intr_rec(void)
{
    const char *path = P("bipolars_x.h5");
    enum { T = 200 };
    static float stim[T * 16 * 16], pot[2 * T];
    for (int i = 0; i < T * 16 * 16; i++) stim[i] = rc_rng_uniform(5, 1, (uint64_t)i) < 0.5f ? 0.f : 1.f;
    for (int i = 0; i < 2 * T; i++) pot[i] = rc_rng_uniform(5, 2, (uint64_t)i) - 0.5f;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    int64_t ds[3] = {T, 16, 16}, dp[2] = {2, T};
    cr_assert_eq(rc_h5_write_all(f, "/boxes/stimuli", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, ds, stim), 0);
    cr_assert_eq(rc_h5_write_all(f, "/boxes/detrended_membrane_potential", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dp, pot), 0);
    cr_assert_geq(H5Fclose(f), 0);
    return path;
}

/* a one-trial search spec (tiny model, 1 epoch) */
static const char *search_spec(void)
{
    const char *path = P("search.lua");
    kit_write_text(path, "return model \"tiny\" {\n"
                         "  input = { history = 8, height = 16, width = 16 },\n"
                         "  conv { channels = 3, kernel = 5 }, relu {},\n"
                         "  conv { channels = 3, kernel = 3 }, relu {},\n"
                         "  dense { bias = false }, batchnorm { over = \"unit\" }, softplus {},\n"
                         "  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7 },\n"
                         "  search = { grid = { lr = { 1e-2 } } },\n}\n");
    return path;
}

/* ------------------------------------------------------------------ the shared helper */

Test(fsfault, path_same_file_sees_through_spellings, .init = setup, .fini = teardown)
{
    const char *f = P("f.h5"), *g = P("g.h5");
    kit_write_text(f, "x");
    kit_write_text(g, "x");
    cr_assert_eq(link(f, P("hard.h5")), 0);
    cr_assert_eq(symlink(f, P("soft.h5")), 0);
    cr_assert_eq(mkdir(P("sub"), 0777), 0);
    cr_assert_eq(rc_path_same_file(f, f), 1);
    cr_assert_eq(rc_path_same_file(f, P("hard.h5")), 1, "hard link");
    cr_assert_eq(rc_path_same_file(P("soft.h5"), f), 1, "symlink");
    cr_assert_eq(rc_path_same_file(P("sub/../f.h5"), f), 1, "dir/../F");
    cr_assert_eq(rc_path_same_file(f, g), 0, "same contents, other file");
    cr_assert_eq(rc_path_same_file(P("new.h5"), f), 0, "absent vs existing");
    cr_assert_eq(rc_path_same_file(P("new.h5"), P("sub/../new.h5")), 1, "absent: same parent + name");
    cr_assert_eq(rc_path_same_file(P("new.h5"), P("sub/new.h5")), 0);
    char cwd[1024];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    cr_assert_eq(rc_path_same_file("./f.h5", f), 1, "./F");
    cr_assert_eq(rc_path_same_file("new.h5", P("new.h5")), 1, "relative vs absolute, absent");
    cr_assert_eq(chdir(cwd), 0);

    char err[1024];
    const char *ins[3] = {NULL, g, P("hard.h5")};
    cr_assert_eq(rc_out_not_input(P("out.h5"), ins, 3, err, sizeof err), 0);
    cr_assert_eq(rc_out_not_input(P("soft.h5"), ins, 3, err, sizeof err), -1);
    cr_assert(strstr(err, P("soft.h5")) && strstr(err, "input"), "%s", err);
    static const char *const names[] = {"a.txt", "f.h5", NULL};
    const char *in1[1] = {f};
    cr_assert_eq(rc_dir_not_input(dir, names, in1, 1, err, sizeof err), -1);
    cr_assert_eq(rc_dir_not_input(P("sub"), names, in1, 1, err, sizeof err), 0);
}

Test(fsfault, write_file_atomic_full_disk_keeps_the_old_file, .init = setup, .fini = teardown)
{
    /* in a child under the limit: the old file stays, the message names it with the reason */
    const char *path = P("t.txt");
    kit_write_text(path, "old");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {LIMIT, LIMIT};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        static char big[4 * LIMIT];
        char err[1024];
        const char *paths[2] = {P("u.txt"), path};
        const void *data[2] = {"small", big};
        size_t n[2] = {5, sizeof big};
        int a = rc_write_file_atomic(path, big, sizeof big, err, sizeof err) == -1 &&
                strstr(err, path) && strstr(err, strerror(EFBIG));
        int b = rc_write_files_atomic(2, paths, data, n, err, sizeof err) == -1 &&
                access(P("u.txt"), F_OK) != 0;   /* the pair is one output: the first is not renamed */
        _exit(a && b ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rc_write_file(s)_atomic under the limit");
    size_t n;
    char *b = kit_read_file(path, &n);
    cr_assert(b && n == 3 && !memcmp(b, "old", 3));
    free(b);
    cr_assert_eq(temps_in(dir), 0);
}

/* ------------------------------------------------------------------ every writing command, disk full */

Test(fsfault, train_full_disk_keeps_the_previous_checkpoint, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *data = data_path(), *run = run_dir();
    static const char *files[] = {"checkpoint.h5", "best.h5", "log.csv", "metrics.json"};
    snap s[5];
    for (int i = 0; i < 4; i++) {
        snap_take(&s[i], P("run/%s", files[i]));
        if (i < 2) cr_assert_gt(size_of(s[i].path), LIMIT);
    }
    snap_take(&s[4], data);
    /* the next epochs' checkpoint cannot be written: exit 1 (not a SIGSEGV at exit) */
    run_res r = RUN_FULL("train", "-o", run, "--resume", "--epochs", "3", "--backend", "ref", "--threads", "1", "-q");
    assert_refused_write(&r, run, run, "train --resume");
    for (int i = 0; i < 5; i++) snap_same(&s[i]);
    /* the previous checkpoint still resumes */
    RUN_OK("train", "-o", run, "--resume", "--epochs", "2", "--backend", "ref", "--threads", "1", "-q", "--no-eval");

    /* a fresh run on a full disk: the same, and no checkpoint appears */
    const char *run2 = P("run2");
    snap_take(&s[4], data);
    r = RUN_FULL("train", spec_path(), "--data", data, "-o", run2, "--epochs", "1", "--backend", "ref",
                 "--threads", "1", "-q");
    assert_refused_write(&r, run2, run2, "train");
    cr_assert_neq(access(P("run2/checkpoint.h5"), F_OK), 0);
    snap_same(&s[4]);
}

Test(fsfault, predict_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *data = data_path(), *run = run_dir(), *out = P("pred.h5");
    RUN_OK("predict", run, "--stimulus", data, "--key", "test/stimulus", "-o", out, "--backend", "ref");
    cr_assert_gt(size_of(out), LIMIT);
    snap s[3];
    snap_take(&s[0], out); snap_take(&s[1], data); snap_take(&s[2], P("run/best.h5"));
    run_res r = RUN_FULL("predict", run, "--stimulus", data, "--key", "test/stimulus", "-o", out, "--backend", "ref");
    assert_refused_write(&r, out, dir, "predict");
    for (int i = 0; i < 3; i++) snap_same(&s[i]);
}

Test(fsfault, rf_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *run = run_dir(), *out = P("rf.h5");
    RUN_OK("rf", run, "--backend", "ref", "--samples", "16", "-o", out);
    cr_assert_gt(size_of(out), LIMIT);
    snap s[2];
    snap_take(&s[0], out); snap_take(&s[1], P("run/best.h5"));
    run_res r = RUN_FULL("rf", run, "--backend", "ref", "--samples", "16", "-o", out);
    assert_refused_write(&r, out, dir, "rf -o");
    for (int i = 0; i < 2; i++) snap_same(&s[i]);
}

Test(fsfault, phenomena_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *run = run_dir(), *out = P("ph.h5");
    RUN_OK("phenomena", run, "--backend", "ref", "--only", "osr", "--sta-samples", "16", "-o", out);
    cr_assert_gt(size_of(out), LIMIT);
    snap s[2];
    snap_take(&s[0], out); snap_take(&s[1], P("run/best.h5"));
    run_res r = RUN_FULL("phenomena", run, "--backend", "ref", "--only", "osr", "--sta-samples", "16", "-o", out);
    assert_refused_write(&r, out, dir, "phenomena -o");
    for (int i = 0; i < 2; i++) snap_same(&s[i]);
}

Test(fsfault, interneurons_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *run = run_dir(), *rec = intr_rec(), *out = P("intr.h5");
    RUN_OK("interneurons", run, rec, "-o", out);
    cr_assert_gt(size_of(out), LIMIT);
    snap s[3];
    snap_take(&s[0], out); snap_take(&s[1], P("run/best.h5")); snap_take(&s[2], rec);
    run_res r = RUN_FULL("interneurons", run, rec, "-o", out);
    assert_refused_write(&r, out, dir, "interneurons -o");
    for (int i = 0; i < 3; i++) snap_same(&s[i]);
}

Test(fsfault, synth_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    /* -o: the recording is streamed; the size limit is found before anything is written */
    const char *out = P("synth.h5");
    RUN_OK("synth", "-o", out, "--cheap", "--frames", "400", "--test-frames", "100", "--repeats", "2",
           "--cells", "2", "-q");
    snap s[2];
    snap_take(&s[0], out);
    run_res r = RUN_FULL("synth", "-o", out, "--cheap", "--frames", "400", "--test-frames", "100",
                         "--repeats", "2", "--cells", "2", "--seed", "9", "-q");
    assert_refused_write(&r, out, dir, "synth -o");
    snap_same(&s[0]);

    /* --interneurons DIR: both files as one output */
    const char *idir = P("intr");
    RUN_OK("synth", "--interneurons", idir, "--calib-frames", "300", "--intr-frames", "100", "-q");
    snap_take(&s[0], P("intr/bipolars_synth.h5"));
    snap_take(&s[1], P("intr/amacrines_synth.h5"));
    r = RUN_FULL("synth", "--interneurons", idir, "--calib-frames", "300", "--intr-frames", "100",
                 "--seed", "9", "-q");
    assert_refused_write(&r, idir, idir, "synth --interneurons");
    for (int i = 0; i < 2; i++) snap_same(&s[i]);
}

Test(fsfault, search_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *data = data_path(), *spec = search_spec(), *out = P("search");
    RUN_OK("search", spec, "--data", data, "-o", out, "--backend", "ref", "--threads", "1", "-q");
    static const char *files[] = {"search.csv", "search.json", "search_scope.txt", "lr-0.01/checkpoint.h5",
                                  "lr-0.01/best.h5", "lr-0.01/search_row.txt"};
    snap s[8];
    for (int i = 0; i < 6; i++) snap_take(&s[i], P("search/%s", files[i]));
    cr_assert_gt(size_of(P("search/search.json")), LIMIT);
    snap_take(&s[6], data); snap_take(&s[7], spec);
    run_res r = RUN_FULL("search", spec, "--data", data, "-o", out, "--backend", "ref", "--threads", "1", "-q");
    assert_refused_write(&r, out, out, "search -o (rerun)");
    for (int i = 0; i < 8; i++) snap_same(&s[i]);
    cr_assert_eq(temps_in(P("search/lr-0.01")), 0);

    /* a new search: the trial fails, is recorded as failed, and the command fails */
    const char *out2 = P("search2");
    r = RUN_FULL("search", spec, "--data", data, "-o", out2, "--backend", "ref", "--threads", "1", "-q");
    assert_refused_write(&r, out2, out2, "search -o");
    cr_assert_eq(temps_in(P("search2/lr-0.01")), 0);
    cr_assert_neq(access(P("search2/lr-0.01/checkpoint.h5"), F_OK), 0);
}

Test(fsfault, gen_and_check_full_disk, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *gen = P("gen"), *src = P("gen/tiny/model.c");
    RUN_OK("gen", spec_path(), "-o", gen);
    cr_assert_gt(size_of(src), LIMIT);
    snap s[2];
    snap_take(&s[0], src);
    run_res r = RUN_FULL("gen", spec_path(), "-o", gen, "--target", "c");
    assert_refused_write(&r, src, P("gen/tiny"), "gen -o");
    snap_same(&s[0]);

    /* check --emit-ir: the IR of a 1000-cell model is well over LIMIT */
    const char *ir = P("ir.txt");
    RUN_OK("check", spec_path(), "--cells", "1000", "--emit-ir", ir);
    cr_assert_gt(size_of(ir), LIMIT);
    snap_take(&s[0], ir);
    snap_take(&s[1], spec_path());
    r = RUN_FULL("check", spec_path(), "--cells", "1000", "--emit-ir", ir);
    assert_refused_write(&r, ir, dir, "check --emit-ir");
    for (int i = 0; i < 2; i++) snap_same(&s[i]);
}

Test(fsfault, compile_full_disk_leaves_no_temp_in_the_cache, .init = setup, .fini = teardown, .timeout = 60)
{
    /* the JIT cache is compile's output: a private one, so the shared test cache is untouched */
    const char *cache = P("cache");
    cr_assert_eq(setenv("RETINAC_CACHE_DIR", cache, 1), 0);
    run_res r = RUN_FULL("compile", spec_path());
    cr_assert_eq(r.status, 1, "exit %d:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, cache) && strstr(r.err, strerror(EFBIG)), "%s", r.err);
    DIR *d = opendir(cache);
    int files = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) files += e->d_name[0] != '.';
    if (d) closedir(d);
    cr_assert_eq(files, 0, "the failed compile left %d file(s) in %s", files, cache);
}

Test(fsfault, stdout_full_disk_fails_the_command, .init = setup, .fini = teardown, .timeout = 60)
{
    /* tables and JSON on a full disk: exit 1 with a message, not a silent truncated file */
    const char *run = run_dir(), *data = data_path(), *out = P("stdout.txt");
    struct { const char *what; run_res r; } c[4];
    c[0].what = "eval --json"; c[0].r = run_lim(0, out, "eval", run, "--json", "--backend", "ref", (const char *)NULL);
    c[1].what = "check --json"; c[1].r = run_lim(0, out, "check", spec_path(), "--json", (const char *)NULL);
    c[2].what = "info"; c[2].r = run_lim(0, out, "info", data, (const char *)NULL);
    c[3].what = "check"; c[3].r = run_lim(0, out, "check", spec_path(), (const char *)NULL);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c[i].r.status, 1, "%s: exit %d, want 1:\n%s", c[i].what, c[i].r.status, c[i].r.err);
        cr_assert(strstr(c[i].r.err, "stdout") || strstr(c[i].r.err, "standard output"),
                  "%s: no message about stdout:\n%s", c[i].what, c[i].r.err);
    }
}

Test(fsfault, unwritable_output_directory, .init = setup, .fini = teardown, .timeout = 60)
{
    /* A directory that cannot take the file. Tests run as root, where mode bits do not stop a
     * write (EACCES), so the directory is a path through a regular file (ENOTDIR): the temp
     * file cannot be created; exit 1, the user's path and the reason, the inputs unchanged. */
    const char *data = data_path(), *run = run_dir();
    char want[100];
    snprintf(want, sizeof want, "%s", strerror(ENOTDIR));
    snap s;
    snap_take(&s, data);
    struct { const char *what, *target; run_res r; } c[6];
    c[0].what = "predict"; c[0].target = P("tiny.h5/pred.h5");
    c[0].r = RUN("predict", run, "--stimulus", data, "--key", "test/stimulus", "-o", c[0].target, "--backend", "ref");
    c[1].what = "rf"; c[1].target = P("tiny.h5/rf.h5");
    c[1].r = RUN("rf", run, "--backend", "ref", "--samples", "16", "-o", c[1].target);
    c[2].what = "phenomena"; c[2].target = P("tiny.h5/ph.h5");
    c[2].r = RUN("phenomena", run, "--backend", "ref", "--only", "osr", "--sta-samples", "16", "-o", c[2].target);
    c[3].what = "check --emit-ir"; c[3].target = P("tiny.h5/ir.txt");
    c[3].r = RUN("check", spec_path(), "--emit-ir", c[3].target);
    c[4].what = "synth -o"; c[4].target = P("tiny.h5/s.h5");
    c[4].r = RUN("synth", "-o", c[4].target, "--cheap", "--frames", "400", "--test-frames", "100", "-q");
    c[5].what = "train"; c[5].target = P("tiny.h5/run");
    c[5].r = RUN("train", spec_path(), "--data", data, "-o", c[5].target, "--epochs", "1", "--backend", "ref", "-q");
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(c[i].r.status, 1, "%s: exit %d, want 1:\n%s", c[i].what, c[i].r.status, c[i].r.err);
        cr_assert(strstr(c[i].r.err, P("tiny.h5")) && (strstr(c[i].r.err, want) ||
                  strstr(c[i].r.err, "a path component is not a directory")),
                  "%s: the message does not name %s with the reason:\n%s", c[i].what, c[i].target, c[i].r.err);
    }
    snap_same(&s);
    cr_assert_eq(temps_in(dir), 0);
}

/* ------------------------------------------------------------------ an output that is an input */

/* the command refused (exit 1, "is the input"), the input unchanged */
static void assert_refused_input(run_res r, snap *in, const char *what)
{
    cr_assert_eq(r.status, 1, "%s: exit %d, want 1:\n%s", what, r.status, r.err);
    cr_assert(strstr(r.err, "is the input"), "%s: message:\n%s", what, r.err);
    snap_same(in);
}

Test(fsfault, every_writing_command_refuses_an_input_as_its_output, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *data = data_path(), *run = run_dir();
    snap s;
    char cwd[1024];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(mkdir(P("sub"), 0777), 0);

    /* predict --stimulus F -o F, as F, ./F (relative), a hard link, a symlink, sub/../F */
    const char *stim = P("stim.h5");
    kit_copy_file(data, stim);
    cr_assert_eq(link(stim, P("stim_hard.h5")), 0);
    cr_assert_eq(symlink(stim, P("stim_soft.h5")), 0);
    const char *spell[] = {stim, "./stim.h5", P("stim_hard.h5"), P("stim_soft.h5"), P("sub/../stim.h5")};
    cr_assert_eq(chdir(dir), 0);
    for (int i = 0; i < 5; i++) {
        snap_take(&s, stim);
        assert_refused_input(RUN("predict", run, "--stimulus", stim, "--key", "test/stimulus", "-o", spell[i],
                                 "--backend", "ref"), &s, spell[i]);
    }
    cr_assert_eq(chdir(cwd), 0);
    /* ... and the checkpoint it reads (RUNDIR stands for best.h5) */
    snap_take(&s, P("run/best.h5"));
    assert_refused_input(RUN("predict", run, "--stimulus", data, "--key", "test/stimulus", "-o", P("run/best.h5"),
                             "--backend", "ref"), &s, "predict -o CHECKPOINT");

    /* rf, phenomena: the checkpoint; interneurons: the checkpoint or a recording */
    snap_take(&s, P("run/best.h5"));
    assert_refused_input(RUN("rf", run, "--backend", "ref", "--samples", "16", "-o", P("run/best.h5")), &s, "rf");
    snap_take(&s, P("run/best.h5"));
    assert_refused_input(RUN("phenomena", run, "--backend", "ref", "--only", "osr", "-o", P("run/../run/best.h5")),
                         &s, "phenomena");
    const char *rec = intr_rec();
    snap_take(&s, rec);
    assert_refused_input(RUN("interneurons", run, rec, "-o", rec), &s, "interneurons");

    /* check --emit-ir SPEC (a copy of the spec, through a symlink) */
    const char *spec = P("spec.lua");
    kit_copy_file(spec_path(), spec);
    cr_assert_eq(symlink(spec, P("spec_link.lua")), 0);
    snap_take(&s, spec);
    assert_refused_input(RUN("check", spec, "--emit-ir", P("spec_link.lua")), &s, "check --emit-ir");

    /* gen: a spec kept where its output goes (OUT/tiny/model.c) */
    cr_assert_eq(mkdir(P("g"), 0777), 0);
    cr_assert_eq(mkdir(P("g/tiny"), 0777), 0);
    kit_copy_file(spec_path(), P("g/tiny/model.c"));
    snap_take(&s, P("g/tiny/model.c"));
    assert_refused_input(RUN("gen", P("g/tiny/model.c"), "-o", P("g")), &s, "gen");

    /* train: a recording kept as RUNDIR/best.h5; search: as DIR/search.json */
    cr_assert_eq(mkdir(P("r3"), 0777), 0);
    kit_copy_file(data, P("r3/best.h5"));
    snap_take(&s, P("r3/best.h5"));
    assert_refused_input(RUN("train", spec_path(), "--data", P("r3/best.h5"), "-o", P("r3"), "--epochs", "1",
                             "--backend", "ref", "-q"), &s, "train");
    const char *sspec = search_spec();
    cr_assert_eq(mkdir(P("s3"), 0777), 0);
    kit_copy_file(data, P("s3/search.json"));
    snap_take(&s, P("s3/search.json"));
    assert_refused_input(RUN("search", sspec, "--data", P("s3/search.json"), "-o", P("s3"), "--backend", "ref",
                             "-q"), &s, "search");

    /* synth: -o and --interneurons DIR name the same file */
    const char *so = P("sy/bipolars_synth.h5");
    cr_assert_eq(mkdir(P("sy"), 0777), 0);
    kit_copy_file(data, so);
    snap_take(&s, so);
    assert_refused_input(RUN("synth", "-o", so, "--interneurons", P("sy"), "-q"), &s, "synth");
}

/* ------------------------------------------------------------------ a real full disk */

static char mnt[400];
static int mounted;

static void setup_tmpfs(void)
{
    setup();
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    cr_assert_eq(mkdir(mnt, 0777), 0);
    mounted = geteuid() == 0 && mount("tmpfs", mnt, "tmpfs", 0, "size=1200k") == 0;
}

static void teardown_tmpfs(void)
{
    if (mounted && umount2(mnt, MNT_DETACH) != 0) cr_log_warn("could not unmount %s", mnt);
    teardown();
}

Test(fsfault, tmpfs_enospc, .init = setup_tmpfs, .fini = teardown_tmpfs, .timeout = 60)
{
    if (!mounted) cr_skip_test("cannot mount a tmpfs here (not root, or not permitted)");
    const char *data = data_path(), *run = run_dir();
    char out[600], msg[100];
    snprintf(msg, sizeof msg, "%s", strerror(ENOSPC));
    /* synth -o: 1.3 MB into 1.2 MB, the disk fills midway */
    snprintf(out, sizeof out, "%s/synth.h5", mnt);
    run_res r = RUN("synth", "-o", out, "--cheap", "--frames", "400", "--test-frames", "100", "--repeats", "2",
                    "--cells", "2", "-q");
    cr_assert_eq(r.status, 1, "synth: exit %d:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, out) && strstr(r.err, msg), "synth: %s", r.err);
    cr_assert_eq(temps_in(mnt), 0);
    /* a previous output, then the disk filled to the last block: predictions, a checkpoint */
    snprintf(out, sizeof out, "%s/pred.h5", mnt);
    kit_write_text(out, "previous");
    char fill[600];
    snprintf(fill, sizeof fill, "%s/fill", mnt);
    int fd = open(fill, O_WRONLY | O_CREAT, 0644);
    cr_assert(fd >= 0);
    static char z[4096];
    while (write(fd, z, sizeof z) > 0) {}
    close(fd);
    snap s;
    snap_take(&s, out);
    r = RUN("predict", run, "--stimulus", data, "--key", "test/stimulus", "-o", out, "--backend", "ref");
    cr_assert_eq(r.status, 1, "predict: exit %d:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, out) && strstr(r.err, msg), "predict: %s", r.err);
    snap_same(&s);
    char rd[600];
    snprintf(rd, sizeof rd, "%s/run", mnt);
    r = RUN("train", spec_path(), "--data", data, "-o", rd, "--epochs", "1", "--backend", "ref", "--threads", "1", "-q");
    cr_assert_eq(r.status, 1, "train: exit %d:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, rd) && strstr(r.err, msg), "train: %s", r.err);
    cr_assert_eq(temps_in(mnt), 0);
    cr_assert_eq(temps_in(rd), 0);
}
