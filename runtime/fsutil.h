/* fsutil.h — the files retinac writes: one atomic-replacement path, mkdir -p, and the refusal of
 * an output that is one of a command's inputs.
 *
 * Atomicity: every output is written to DIR/.tmp.<pid>.<name> beside its target, fsynced, renamed
 * over the target, and DIR fsynced. A failure at any step (ENOSPC, EFBIG, EACCES, EROFS, EIO, ...)
 * removes the temp file and leaves the previous target, if any, untouched; a process killed
 * midway leaves at most a temp file, which rc_ckpt_clean_stale removes.
 *
 * HDF5 outputs: HDF5 1.10 (Debian 12) cannot survive a failed H5Fclose: when the close's final
 * flush fails (a full disk), it frees the file but keeps its id, and its atexit handler closes
 * that id again (SIGSEGV after the right message; fixed upstream in 1.14.1). So HDF5 must never
 * be the one that meets a disk error at close:
 *   - bounded outputs (checkpoints, predictions, rf, phenomena, interneurons) are built in
 *     memory (core driver without backing store, rc_h5_mem_create) and written by
 *     rc_h5_mem_commit through rc_write_file_atomic: every disk error is a plain write(2) errno;
 *   - streamed outputs too large for memory (synth -o) use rc_h5_stream_create/commit: the file
 *     size limit (RLIMIT_FSIZE) is checked against the expected size before anything is written,
 *     the temp file is probed with a real allocation, and when a write fails midway the file
 *     descriptor under HDF5 is swapped for an in-memory one so that the close completes.
 *
 * Messages: one line "PATH: what: strerror(errno)" that names the user's target, never only the
 * temp file. Functions return 0, or -1 with that line in err.
 */
#ifndef RC_FSUTIL_H
#define RC_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <hdf5.h>

/* 1 if a and b name the same file: both exist and share st_dev/st_ino (hard links, symlinks,
 * ./F and F), or neither exists and their parent directories resolve (realpath) to the same
 * directory with the same last component. 0 otherwise. */
int rc_path_same_file(const char *a, const char *b);

/* -1 with "OUT: is also the input IN ..." if out is the same file as one of the n inputs (NULL
 * entries are skipped); 0 otherwise. */
int rc_out_not_input(const char *out, const char *const *inputs, int n, char *err, size_t errlen);

/* The same for the files DIR/name, name in names (NULL-terminated): a command that writes into
 * a folder refuses to replace one of its inputs there. */
int rc_dir_not_input(const char *dir, const char *const *names, const char *const *inputs, int n,
                     char *err, size_t errlen);

/* "PATH: WHAT: strerror(e)" into err; returns -1. The one write-failure message. */
int rc_write_errf(char *err, size_t errlen, const char *path, const char *what, int e);

/* mkdir -p: every missing directory of path; 0, or -1 with a message (also when path exists
 * and is not a directory). */
int rc_make_dirs(const char *path, char *err, size_t errlen);

/* The temp name beside path: DIR/.tmp.<pid>.<basename>. */
void rc_atomic_tmp(const char *path, char *tmp, size_t n);
/* fsync tmp, rename it over path, fsync DIR; on failure tmp is removed. */
int rc_atomic_commit(const char *tmp, const char *path, char *err, size_t errlen);
/* Write a whole file atomically (temp in the same directory, fsync, rename, fsync dir). */
int rc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);
/* k files as one output: every temp is written and fsynced before the first rename, so a full
 * disk leaves all k targets as they were (only a failing rename, after that, could split them). */
int rc_write_files_atomic(int k, const char *const *paths, const void *const *data,
                          const size_t *n, char *err, size_t errlen);

/* An HDF5 file in memory that rc_h5_mem_commit will write to path (path only labels it here:
 * nothing touches the disk). fcpl may be H5P_DEFAULT. Returns the file id or -1. */
hid_t rc_h5_mem_create(const char *path, hid_t fcpl, char *err, size_t errlen);
/* Close f (always) and, if ok, hand back its image: *img (malloc'd, free it) of *n bytes.
 * ok == 0: err is left as it is, *img = NULL; returns -1. */
int rc_h5_mem_image(hid_t f, const char *path, int ok, void **img, size_t *n, char *err,
                    size_t errlen);
/* Close f (always) and, if ok, write its image to path atomically. With ok == 0 the caller has
 * already put its message in err, which is left as it is; returns -1. */
int rc_h5_mem_commit(hid_t f, const char *path, int ok, char *err, size_t errlen);

/* A streamed HDF5 output of about expect_bytes (an upper bound): the temp file beside path is
 * created in tmp (tmplen bytes) after the checks above. Returns the file id or -1. */
hid_t rc_h5_stream_create(const char *path, int64_t expect_bytes, hid_t fcpl, char *tmp,
                          size_t tmplen, char *err, size_t errlen);
/* Finish a streamed output: flush and close f and rename tmp over path if ok; otherwise (or if
 * the flush fails) close f safely and remove tmp. ok == 0: err already holds the caller's
 * message and is kept; returns -1. */
int rc_h5_stream_commit(hid_t f, const char *tmp, const char *path, int ok, char *err,
                        size_t errlen);

#endif
