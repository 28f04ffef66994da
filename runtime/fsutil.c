/* fsutil.c — atomic outputs, mkdir -p, output-is-an-input refusal (see fsutil.h).
 *
 * Every file descriptor and HDF5 id opened here is closed on every path; every failure removes
 * the temp file it made. errno is read right after the call that failed and carried in a local,
 * since cleanup calls (close, unlink) may change it.
 */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "h5util.h"

/* ------------------------------------------------------------------ paths */

static void dir_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, n, ".");
    else if (slash == path) snprintf(dir, n, "/");
    else snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* realpath of path's directory + "/" + its last component; -1 if the directory cannot be
 * resolved. */
static int resolve_parent(const char *path, char *out, size_t n)
{
    char dir[PATH_MAX], real[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    if (!realpath(dir, real)) return -1;
    return snprintf(out, n, "%s/%s", real, base_of(path)) < (int)n ? 0 : -1;
}

int rc_path_same_file(const char *a, const char *b)
{
    if (!a || !b) return 0;
    struct stat sa, sb;
    int ha = stat(a, &sa) == 0, hb = stat(b, &sb) == 0;
    if (ha && hb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ha != hb) return 0;
    char ra[PATH_MAX + 256], rb[PATH_MAX + 256];
    if (resolve_parent(a, ra, sizeof ra) < 0 || resolve_parent(b, rb, sizeof rb) < 0)
        return strcmp(a, b) == 0;
    return strcmp(ra, rb) == 0;
}

int rc_out_not_input(const char *out, const char *const *inputs, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (inputs[i] && rc_path_same_file(out, inputs[i]))
            return rc_errf(err, errlen, "%s: is the input %s (the same file); refusing to "
                           "overwrite an input, choose another output path", out, inputs[i]);
    return 0;
}

int rc_dir_not_input(const char *dir, const char *const *names, const char *const *inputs, int n,
                     char *err, size_t errlen)
{
    for (int k = 0; names[k]; k++) {
        char out[PATH_MAX + 256];
        if (snprintf(out, sizeof out, "%s/%s", dir, names[k]) >= (int)sizeof out)
            return rc_errf(err, errlen, "%s: path too long", dir);
        if (rc_out_not_input(out, inputs, n, err, errlen) < 0) return -1;
    }
    return 0;
}

int rc_write_errf(char *err, size_t errlen, const char *path, const char *what, int e)
{
    return rc_errf(err, errlen, "%s: %s: %s", path, what, e ? strerror(e) : "unknown error");
}

int rc_make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return rc_errf(err, errlen, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return rc_errf(err, errlen, "%s: %s", buf, errno == ENOTDIR ? "a path component is not a directory" : strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return rc_errf(err, errlen, "%s: %s", buf, errno == ENOTDIR ? "a path component is not a directory" : strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return rc_errf(err, errlen, "%s: not a directory", buf);
    return 0;
}

/* ------------------------------------------------------------------ atomic files */

void rc_atomic_tmp(const char *path, char *tmp, size_t n)
{
    char dir[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    snprintf(tmp, n, "%s/.tmp.%ld.%s", dir, (long)getpid(), base_of(path));
}

static void fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {            /* best effort: some filesystems refuse fsync on directories */
        if (fsync(fd) != 0) { /* the rename itself is done */ }
        close(fd);
    }
}

int rc_atomic_commit(const char *tmp, const char *path, char *err, size_t errlen)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        unlink(tmp);
        return rc_write_errf(err, errlen, path, "cannot write (fsync of the temp file)", e);
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rc_write_errf(err, errlen, path, "cannot replace it with the new file", e);
    }
    fsync_dir_of(path);
    return 0;
}

/* Write data to a fresh temp file beside path (its name in tmp) and fsync it: 0, or the errno
 * (the temp file removed). */
static int write_tmp(const char *path, const void *data, size_t n, char *tmp, size_t tmplen,
                     int *created)
{
    rc_atomic_tmp(path, tmp, tmplen);
    *created = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    *created = 1;
    const char *p = data;
    size_t left = n;
    int e = 0;
    while (left > 0) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { e = k < 0 ? errno : EIO; break; }
        p += k;
        left -= (size_t)k;
    }
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (e) unlink(tmp);
    return e;
}

int rc_write_files_atomic(int k, const char *const *paths, const void *const *data,
                          const size_t *n, char *err, size_t errlen)
{
    char (*tmp)[PATH_MAX + 300] = calloc((size_t)(k > 0 ? k : 1), sizeof *tmp);
    if (!tmp) return rc_errf(err, errlen, "%s: out of memory", k > 0 ? paths[0] : "");
    int done = 0, rc = 0;
    for (; done < k; done++) {
        int created, e = write_tmp(paths[done], data[done], n[done], tmp[done], sizeof tmp[done], &created);
        if (e) {
            rc = rc_write_errf(err, errlen, paths[done], created ? "cannot write"
                               : "cannot write (creating a temp file beside it)", e);
            break;
        }
    }
    if (rc < 0) {
        for (int i = 0; i < done; i++) unlink(tmp[i]);
        free(tmp);
        return -1;
    }
    for (int i = 0; i < k; i++) {
        if (rename(tmp[i], paths[i]) != 0) {
            int e = errno;
            for (int j = i; j < k; j++) unlink(tmp[j]);
            free(tmp);
            return rc_write_errf(err, errlen, paths[i], "cannot replace it with the new file", e);
        }
        fsync_dir_of(paths[i]);
    }
    free(tmp);
    return 0;
}

int rc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    return rc_write_files_atomic(1, &path, &data, &n, err, errlen);
}

/* ------------------------------------------------------------------ HDF5 in memory */

hid_t rc_h5_mem_create(const char *path, hid_t fcpl, char *err, size_t errlen)
{
    rc_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        rc_errf(err, errlen, "%s: HDF5 in-memory file: property list failed", path);
        return -1;
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fapl);
    if (f < 0) rc_errf(err, errlen, "%s: HDF5 in-memory file: cannot create", path);
    return f;
}

int rc_h5_mem_image(hid_t f, const char *path, int ok, void **img, size_t *n, char *err,
                    size_t errlen)
{
    unsigned char *buf = NULL;
    ssize_t len = 0;
    *img = NULL;
    *n = 0;
    if (ok && H5Fflush(f, H5F_SCOPE_LOCAL) < 0) {
        ok = 0;
        rc_errf(err, errlen, "%s: HDF5 could not finish the file (in memory)", path);
    }
    if (ok) {
        len = H5Fget_file_image(f, NULL, 0);
        buf = len > 0 ? malloc((size_t)len) : NULL;
        if (!buf || H5Fget_file_image(f, buf, (size_t)len) != len) {
            ok = 0;
            rc_errf(err, errlen, "%s: HDF5 file image of %lld bytes: %s", path, (long long)len,
                    buf ? "cannot be read" : "out of memory");
        }
    }
    /* the core driver without backing store never touches the disk: this close cannot meet a
     * disk error (see fsutil.h) */
    if (H5Fclose(f) < 0 && ok) {
        ok = 0;
        rc_errf(err, errlen, "%s: HDF5 could not close the file (in memory)", path);
    }
    if (!ok) {
        free(buf);
        return -1;
    }
    *img = buf;
    *n = (size_t)len;
    return 0;
}

int rc_h5_mem_commit(hid_t f, const char *path, int ok, char *err, size_t errlen)
{
    void *img;
    size_t n;
    if (rc_h5_mem_image(f, path, ok, &img, &n, err, errlen) < 0) return -1;
    int rc = rc_write_file_atomic(path, img, n, err, errlen);
    free(img);
    return rc;
}

/* ------------------------------------------------------------------ HDF5 streamed */

hid_t rc_h5_stream_create(const char *path, int64_t expect_bytes, hid_t fcpl, char *tmp,
                          size_t tmplen, char *err, size_t errlen)
{
    rc_h5_quiet();
    rc_atomic_tmp(path, tmp, tmplen);
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)expect_bytes > (uint64_t)rl.rlim_cur) {
        rc_errf(err, errlen, "%s: cannot write: %s (about %lld bytes, over the file size limit "
                "of %llu bytes, ulimit -f)", path, strerror(EFBIG), (long long)expect_bytes,
                (unsigned long long)rl.rlim_cur);
        return -1;
    }
    /* a real allocation first, so that a full or read-only disk fails here with its errno
     * before HDF5 has written anything (HDF5 1.10 leaves junk behind a failed H5Fcreate) */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc_write_errf(err, errlen, path, "cannot write (creating a temp file beside it)", errno);
        return -1;
    }
    off_t probe = expect_bytes < ((int64_t)1 << 20) ? (off_t)expect_bytes : (off_t)1 << 20;
    int e = probe > 0 ? posix_fallocate(fd, 0, probe) : 0;
    if (e == EOPNOTSUPP || e == EINVAL) e = 0;   /* the filesystem cannot tell in advance */
    if (close(fd) != 0 && !e) e = errno;
    if (e) {
        unlink(tmp);
        rc_write_errf(err, errlen, path, "cannot write", e);
        return -1;
    }
    errno = 0;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (f < 0) {
        e = errno;
        unlink(tmp);
        rc_write_errf(err, errlen, path, "cannot create (HDF5)", e);
        return -1;
    }
    return f;
}

/* Point HDF5's descriptor at an in-memory file, so that the close's remaining writes and its
 * truncate succeed on a file nobody keeps (the real temp file is removed by the caller). */
static void divert_to_memory(hid_t f)
{
    void *h = NULL;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, &h) < 0 || !h) return;
    int fd = *(int *)h;
    int mfd = memfd_create("retinac-discard", MFD_CLOEXEC);
    if (mfd < 0) return;
    if (dup2(mfd, fd) < 0) { /* the close may still fail; nothing more to try */ }
    close(mfd);
}

int rc_h5_stream_commit(hid_t f, const char *tmp, const char *path, int ok, char *err,
                        size_t errlen)
{
    if (ok) {
        errno = 0;
        if (H5Fflush(f, H5F_SCOPE_LOCAL) < 0) {
            rc_write_errf(err, errlen, path, "cannot write", errno ? errno : EIO);
            ok = 0;
        }
    }
    if (!ok) divert_to_memory(f);
    errno = 0;
    if (H5Fclose(f) < 0 && ok) {
        rc_write_errf(err, errlen, path, "cannot write (closing)", errno ? errno : EIO);
        ok = 0;
    }
    if (!ok) {
        unlink(tmp);
        return -1;
    }
    return rc_atomic_commit(tmp, path, err, errlen);
}
