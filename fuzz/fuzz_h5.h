/* fuzz_h5.h — shared by the HDF5 harnesses (fuzz_checkpoint.c, fuzz_probe.c): the input bytes
 * become a file, because the loaders under test open files by path.
 *
 * One private directory per process (mkdtemp under $TMPDIR or /tmp, removed at exit) holds one
 * file, rewritten for every input; nothing else is in that directory, so an openretina
 * stimuli_dir (<dir>/stimuli) never exists. HDF5's automatic error printing is off.
 * After every input fuzz_h5_check_closed() aborts if the code under test left any HDF5 object
 * (file, group, dataset, attribute, datatype) open: a leaked handle is a bug even when the call
 * returned an error, and LeakSanitizer cannot see it (HDF5 keeps it reachable).
 */
#ifndef FUZZ_H5_H
#define FUZZ_H5_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[512], fuzz_path[600];

static void fuzz_h5_cleanup(void)
{
    if (fuzz_path[0]) unlink(fuzz_path);
    if (fuzz_dir[0]) rmdir(fuzz_dir);
}

/* Write the input to the per-process file; returns its path, or NULL (input skipped). */
static const char *fuzz_h5_write(const uint8_t *data, size_t size, const char *name)
{
    if (!fuzz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/rc_fuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir)) { perror("fuzz: mkdtemp"); abort(); }
        snprintf(fuzz_path, sizeof fuzz_path, "%s/%s", fuzz_dir, name);
        atexit(fuzz_h5_cleanup);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) { perror("fuzz: fopen"); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror("fuzz: fwrite"); abort(); }
    if (fclose(f) != 0) { perror("fuzz: fclose"); abort(); }
    return fuzz_path;
}

static void fuzz_h5_check_closed(const char *what)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (n > 0) {
        fprintf(stderr, "%s left %zd HDF5 object(s) open (files %zd, datasets %zd, groups %zd, attributes %zd)\n",
                what, n, H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATASET),
                H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_GROUP), H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ATTR));
        abort();
    }
}

#endif
