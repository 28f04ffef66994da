/* kit.h — the small kit every Criterion suite shares: temp directories, running a program
 * (retinac or another) and capturing what it prints, reading and writing files, comparing float
 * arrays. Header-only (static inline functions): the Makefile builds each tests/test_X.c alone
 * with -Itests, so a suite includes this file and links nothing more.
 *
 *   temp dirs  kit_tmpdir(dir, n, tag), kit_path(dir, fmt, ...), kit_cleanup(), kit_rmtree(path)
 *   files      kit_read_file(path, &len), kit_read_text(path), kit_write_file(path, data, n),
 *              kit_write_text(path, text), kit_copy_file(from, to), kit_same_bytes(a, b),
 *              kit_count_entries(dir, match)
 *   programs   kit_run(argv, opts), kit_cmd(opts, fmt, ...), kit_rc(fmt, ...) (retinac, stdout
 *              and stderr apart), kit_rc_all(fmt, ...) (as one stream), kit_rc_text(buf, n, fmt,
 *              ...) (as one stream into buf, returns the exit status), kit_out_free(&r),
 *              kit_out_status(r)
 *   arrays     kit_l2_norm(a, n), kit_l2_diff(a, b, n), kit_rel_l2(a, b, n)
 *
 * Invariants:
 *   - No shell, ever: programs start by fork + execvp over an argument vector. kit_cmd and the
 *     kit_rc* forms cut a printf-formatted line into words at blanks, '...' quoting a word (or
 *     part of one) literally; nothing else is special, and an unquoted " \ $ ` ; & | < > fails
 *     the test (shell syntax there would be passed on as plain words, so it is refused instead).
 *     Environment variables for one run: the `env` program as the first word.
 *   - The child's stdin is /dev/null; its stdout and stderr are captured whole (both drained at
 *     once, so neither pipe can fill and stall the child), or stdout goes to a file.
 *   - A temp directory of kit_tmpdir belongs to the process that made it: kit_cleanup (a suite's
 *     .fini) and, failing that, exit remove it with everything under it (nftw, not crossing
 *     into a mount); a forked child never removes its parent's directories.
 *   - Failures are Criterion assertions, raised where the suite called the kit (a suite that
 *     wants to test a failure itself uses the returning forms: kit_read_file, kit_rmtree,
 *     kit_count_entries).
 */
#ifndef RC_TEST_KIT_H
#define RC_TEST_KIT_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ temp directories */

#define KIT_MAX_TMPDIRS 16
#define KIT_PATH_MAX 1024

typedef struct {
    int n;
    pid_t owner[KIT_MAX_TMPDIRS];
    char path[KIT_MAX_TMPDIRS][256];
} kit__tmp_list;

static inline kit__tmp_list *kit__tmps(void)
{
    static kit__tmp_list t;
    return &t;
}

static inline int *kit__rm_failed(void)
{
    static int failed;
    return &failed;
}

static inline int kit__rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) *kit__rm_failed() = 1;
    return 0;                                   /* go on, as rm -rf does */
}

/* Remove path and everything under it (not following links, not entering another mount).
 * 0 when it is gone (or was never there), -1 when something stayed. */
static inline int kit_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    *kit__rm_failed() = 0;
    if (nftw(path, kit__rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) return -1;
    return *kit__rm_failed() || lstat(path, &st) == 0 ? -1 : 0;
}

/* Remove the temp directories this process made (a suite's .fini; also run at exit). */
static inline void kit_cleanup(void)
{
    kit__tmp_list *t = kit__tmps();
    int keep = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->owner[i] != getpid()) continue;  /* a forked child leaves its parent's alone */
        if (kit_rmtree(t->path[i]) != 0) fprintf(stderr, "kit: could not remove %s\n", t->path[i]);
        t->owner[i] = 0;
    }
    for (int i = 0; i < t->n; i++)
        if (t->owner[i]) {
            t->owner[keep] = t->owner[i];
            memcpy(t->path[keep], t->path[i], sizeof t->path[i]);
            keep++;
        }
    t->n = keep;
}

/* A fresh directory /tmp/TAG_XXXXXX into dir (n bytes), removed by kit_cleanup or at exit. */
static inline char *kit_tmpdir(char *dir, size_t n, const char *tag)
{
    static int registered;
    kit__tmp_list *t = kit__tmps();
    cr_assert_lt(t->n, KIT_MAX_TMPDIRS, "kit: more than %d temp directories", KIT_MAX_TMPDIRS);
    int len = snprintf(dir, n, "/tmp/%s_XXXXXX", tag);
    cr_assert(len > 0 && (size_t)len < n && (size_t)len < sizeof t->path[0], "kit: temp dir name too long");
    cr_assert(mkdtemp(dir), "kit: mkdtemp %s: %s", dir, strerror(errno));
    t->owner[t->n] = getpid();
    snprintf(t->path[t->n], sizeof t->path[0], "%s", dir);
    t->n++;
    if (!registered) registered = atexit(kit_cleanup) == 0;
    return dir;
}

/* DIR/NAME (NAME printf-formatted) in a ring of 16 buffers: several may be live in one call. */
static inline const char *kit_path(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline const char *kit_path(const char *dir, const char *fmt, ...)
{
    static char ring[16][KIT_PATH_MAX];
    static int k;
    char *out = ring[k++ % 16];
    int len = snprintf(out, KIT_PATH_MAX, "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    if (len > 0 && len < KIT_PATH_MAX) len += vsnprintf(out + len, KIT_PATH_MAX - (size_t)len, fmt, ap);
    va_end(ap);
    cr_assert(len > 0 && len < KIT_PATH_MAX, "kit: path too long under %s", dir);
    return out;
}

/* ------------------------------------------------------------------ files */

/* The whole file, NUL-terminated (malloc'd; *len its size when len is not NULL), or NULL when it
 * cannot be opened (errno says why). */
static inline char *kit_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    cr_assert(buf, "kit: out of memory");
    while ((k = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
        n += k;
        if (n == cap - 1) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf, "kit: out of memory");
        }
    }
    cr_assert_not(ferror(f), "kit: cannot read %s", path);
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* The text of a file that must be there (malloc'd). */
static inline char *kit_read_text(const char *path)
{
    char *t = kit_read_file(path, NULL);
    cr_assert(t, "kit: cannot open %s: %s", path, strerror(errno));
    return t;
}

static inline void kit_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "kit: cannot write %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n, "kit: cannot write %s", path);
    cr_assert_eq(fclose(f), 0, "kit: cannot write %s", path);
}

static inline void kit_write_text(const char *path, const char *text) { kit_write_file(path, text, strlen(text)); }

static inline void kit_copy_file(const char *from, const char *to)
{
    size_t n;
    char *b = kit_read_file(from, &n);
    cr_assert(b, "kit: cannot open %s: %s", from, strerror(errno));
    kit_write_file(to, b, n);
    free(b);
}

/* Do the two files (both must exist) hold the same bytes? */
static inline int kit_same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    char *x = kit_read_file(a, &na), *y = kit_read_file(b, &nb);
    cr_assert(x && y, "kit: cannot open %s, %s", a, b);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* How many entries of dir (not . and ..) `match` accepts (every one if match is NULL); -1 when
 * dir cannot be opened (as when it does not exist). */
static inline int kit_count_entries(const char *dir, int (*match)(const char *name))
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n += !match || match(e->d_name);
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ running a program */

typedef struct {
    int merge;                /* stderr into out, one stream in the order written (2>&1) */
    const char *stdout_path;  /* stdout to this file (created or truncated) instead of out */
    int limit_fsize;          /* 1: the child runs with RLIMIT_FSIZE = fsize bytes, SIGXFSZ ignored */
    long fsize;
} kit_opts;

typedef struct {
    int status;   /* exit status; 128 + N when signal N ended it; 127: it could not be started */
    int signal;   /* the signal that ended it, 0 when it exited */
    char *out;    /* stdout (with .merge, stdout and stderr); NUL-terminated, malloc'd */
    char *err;    /* stderr ("" with .merge) */
} kit_out;

#define KIT_MAX_ARGS 128
#define KIT_LINE_MAX 8192

typedef struct {
    char *p;
    size_t n, cap;
} kit__buf;

static inline void kit__append(kit__buf *b, const char *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = realloc(b->p, b->cap);
        cr_assert(b->p, "kit: out of memory");
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Run argv (argv[0] searched in PATH unless it holds a '/') and wait for it. */
static inline kit_out kit_run(const char *const argv[], const kit_opts *o)
{
    static const kit_opts none;
    if (!o) o = &none;
    int po[2], pe[2] = {-1, -1};
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0, "kit: pipe: %s", strerror(errno));
    if (!o->merge) cr_assert_eq(pipe2(pe, O_CLOEXEC), 0, "kit: pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "kit: fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out = o->stdout_path ? open(o->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666) : po[1];
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(o->merge ? po[1] : pe[1], 2) < 0)
            _exit(126);
        if (o->limit_fsize) {
            struct rlimit rl = {(rlim_t)o->fsize, (rlim_t)o->fsize};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
        }
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "kit: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    if (pe[1] >= 0) close(pe[1]);
    kit__buf b[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
    kit__append(&b[0], "", 0);
    kit__append(&b[1], "", 0);
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 1 + (pe[0] >= 0);
    while (open_fds > 0) {
        if (poll(pf, 2, -1) < 0) {
            cr_assert_eq(errno, EINTR, "kit: poll: %s", strerror(errno));
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents) continue;
            char chunk[8192];
            ssize_t k = read(pf[i].fd, chunk, sizeof chunk);
            if (k > 0) kit__append(&b[i], chunk, (size_t)k);
            else if (k == 0 || errno != EINTR) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) cr_assert_eq(errno, EINTR, "kit: waitpid: %s", strerror(errno));
    kit_out r;
    r.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + r.signal;
    r.out = b[0].p;
    r.err = b[1].p;
    return r;
}

static inline void kit_out_free(kit_out *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* The exit status of a finished run, its output dropped: kit_out_status(kit_rc("...")). */
static inline int kit_out_status(kit_out r)
{
    kit_out_free(&r);
    return r.status;
}

/* Cut line into argv at blanks ('...' quotes literally); words are written into buf. Returns
 * the number of words. Unquoted shell syntax fails the test (see the top of this file). */
static inline int kit__words(const char *line, const char **argv, int max, char *buf)
{
    int n = 0, in_word = 0;
    char *w = buf;
    for (const char *p = line;; p++) {
        if (*p == 0 || *p == ' ' || *p == '\t' || *p == '\n') {
            if (in_word) {
                *w++ = 0;
                in_word = 0;
            }
            if (*p == 0) break;
            continue;
        }
        if (!in_word) {
            cr_assert_lt(n, max - 1, "kit: more than %d words in: %s", max - 1, line);
            argv[n++] = w;
            in_word = 1;
        }
        if (*p == '\'') {
            const char *q = strchr(p + 1, '\'');
            cr_assert(q, "kit: unmatched ' in: %s", line);
            memcpy(w, p + 1, (size_t)(q - p - 1));
            w += q - p - 1;
            p = q;
            continue;
        }
        cr_assert(!strchr("\"\\$`;&|<>", *p), "kit: shell syntax '%c' in a command line (no shell runs it): %s",
                  *p, line);
        *w++ = *p;
    }
    argv[n] = NULL;
    return n;
}

static inline kit_out kit__vcmd(const char *prog, const kit_opts *o, const char *fmt, va_list ap)
{
    char line[KIT_LINE_MAX], buf[KIT_LINE_MAX];
    const char *argv[KIT_MAX_ARGS + 1];
    int len = vsnprintf(line, sizeof line, fmt, ap);
    cr_assert(len >= 0 && len < (int)sizeof line, "kit: command line too long");
    int off = prog != NULL;
    if (prog) argv[0] = prog;
    int n = kit__words(line, argv + off, KIT_MAX_ARGS + 1 - off, buf);
    cr_assert_gt(n + off, 0, "kit: empty command line");
    return kit_run(argv, o);
}

/* Run the words of a printf-formatted line: the first is the program. */
static inline kit_out kit_cmd(const kit_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline kit_out kit_cmd(const kit_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kit_out r = kit__vcmd(NULL, o, fmt, ap);
    va_end(ap);
    return r;
}

#ifdef RC_BIN
/* retinac (the binary of this build, RC_BIN) with the words of a line as its arguments;
 * stdout and stderr apart. */
static inline kit_out kit_rc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline kit_out kit_rc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kit_out r = kit__vcmd(RC_BIN, NULL, fmt, ap);
    va_end(ap);
    return r;
}

/* The same with stdout and stderr as one stream in out, as `retinac ... 2>&1` gave them. */
static inline kit_out kit_rc_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline kit_out kit_rc_all(const char *fmt, ...)
{
    static const kit_opts merged = {.merge = 1};
    va_list ap;
    va_start(ap, fmt);
    kit_out r = kit__vcmd(RC_BIN, &merged, fmt, ap);
    va_end(ap);
    return r;
}

/* retinac with stdout and stderr as one stream, as `retinac ... 2>&1` gave them: the first n-1
 * bytes go to buf (NUL-terminated). Returns the exit status. */
static inline int kit_rc_text(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int kit_rc_text(char *buf, size_t n, const char *fmt, ...)
{
    char line[KIT_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cr_assert(len >= 0 && len < (int)sizeof line, "kit: command line too long");
    kit_out r = kit_rc_all("%s", line);
    snprintf(buf, n, "%s", r.out);
    int st = r.status;
    kit_out_free(&r);
    return st;
}
#endif

/* ------------------------------------------------------------------ comparing float arrays */

static inline double kit_l2_norm(const float *a, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

/* |a - b| (L2), in double */
static inline double kit_l2_diff(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

/* |a - b| / |b| (L2); |a - b| when b is all zero. */
static inline double kit_rel_l2(const float *a, const float *b, int64_t n)
{
    double d = kit_l2_diff(a, b, n), s = kit_l2_norm(b, n);
    return s > 0 ? d / s : d;
}

#endif
