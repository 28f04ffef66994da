/* h5util.h — small validated HDF5 helpers shared by the data layer (data.c) and the synthetic
 * retina writer (synth.c).
 *
 * Invariants: every function returns 0 on success or -1 with a one-line message in a caller
 * buffer that names the file and the dataset key ("FILE: /train/stimulus: ..."); nothing prints.
 * rc_h5_quiet() turns off HDF5's own error-stack printing (process-global, idempotent); the
 * helpers call it themselves. Reads convert to float32 (or int) in HDF5, from any integer or
 * float class on disk; other classes (strings, compounds, ...) are rejected by rc_h5_describe.
 */
#ifndef RC_H5UTIL_H
#define RC_H5UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <hdf5.h>
#include "errbuf.h"

#define RC_H5_MAX_RANK 4


void rc_h5_quiet(void);

/* What a dataset holds. */
typedef struct {
    int rank;
    int64_t dims[RC_H5_MAX_RANK];
    int is_float;        /* 1 float class, 0 integer class */
    int is_signed;       /* integers */
    int size;            /* bytes per element */
    char type_name[16];  /* "uint8", "float32", ... */
} rc_h5_desc;

/* 1 if the path exists (every component a link that resolves), 0 if not. */
int rc_h5_exists(hid_t loc, const char *path);
/* 0 if the path resolves; else 1 with why it does not, for "FILE: KEY: <why>": "missing", or a
 * link that exists but leads nowhere: "dangling soft link (/a -> /b: missing)", "soft link loop
 * (/a -> /b -> /a)", "dangling external link to FILE:PATH at /a" (each component is checked, so
 * a broken link higher up the path is named). */
int rc_h5_unresolved(hid_t loc, const char *path, char *why, size_t n);
/* 1 (with why) if the path does not resolve because of a broken link rather than being absent:
 * for optional keys, where "absent" is fine but a dangling link must not read as absent. */
int rc_h5_broken(hid_t loc, const char *path, char *why, size_t n);
/* 1 if path is a dataset (resp. group), 0 if it is something else or absent. */
int rc_h5_is_dataset(hid_t loc, const char *path);
int rc_h5_is_group(hid_t loc, const char *path);
/* 1 if an open dataset's storage can be handed to H5Dread, 0 if not: a compact dataset whose
 * stored data size differs from (points x type size) is a corrupt file that makes HDF5 1.10.8's
 * H5Dread copy from NULL or past a buffer (HDFGroup/hdf5 #2606, fixed upstream in 2023).
 * rc_h5_describe checks it; other readers call it before H5Dread. */
int rc_h5_storage_ok(hid_t ds);
/* 1 if a dataset (is_attr 0) or attribute (1) holds exactly one element (scalar or one point):
 * string readers pass a one-element buffer to H5Dread/H5Aread. */
int rc_h5_one_point(hid_t obj, int is_attr);
/* Longest fixed-length string read from a file (a model text is at most 16 MiB). */
#define RC_H5_MAX_STRING (16u << 20)
/* Names of the links in a group, sorted (strcmp); *names is malloc'd, free with rc_h5_free_names.
 * Returns the count, or -1 if the group cannot be read. */
int rc_h5_list(hid_t loc, const char *group, char ***names);
void rc_h5_free_names(char **names, int n);
/* Describe a numeric dataset: rank <= 4, integer or float class, every dim > 0 unless
 * allow_empty. fname is used in messages only. */
int rc_h5_describe(hid_t loc, const char *fname, const char *path, int allow_empty,
                   rc_h5_desc *d, char *err, size_t errlen);

/* Read the hyperslab start/count (rank entries each) of an open dataset into out (float32,
 * row-major over count). key/fname for messages. */
int rc_h5_read_f32(hid_t dset, int rank, const int64_t *start, const int64_t *count, float *out,
                   const char *fname, const char *key, char *err, size_t errlen);
/* Whole dataset by path, as float32 or int (n = element count, checked against the dataset). */
int rc_h5_read_all_f32(hid_t loc, const char *path, float *out, int64_t n, const char *fname,
                       char *err, size_t errlen);
int rc_h5_read_all_int(hid_t loc, const char *path, int *out, int64_t n, const char *fname,
                       char *err, size_t errlen);
/* 1 if every value is finite; else 0 and *bad = index of the first non-finite one. */
int rc_all_finite(const float *x, int64_t n, int64_t *bad);

/* Attributes on an object (path "/" = the file root). Reading: 0 ok, -1 absent or wrong type. */
int rc_h5_attr_get_double(hid_t loc, const char *obj, const char *name, double *v);
int rc_h5_attr_get_int64(hid_t loc, const char *obj, const char *name, int64_t *v);
int rc_h5_attr_get_string(hid_t loc, const char *obj, const char *name, char *buf, size_t n);
int rc_h5_attr_set_double(hid_t loc, const char *obj, const char *name, double v);
int rc_h5_attr_set_int64(hid_t loc, const char *obj, const char *name, int64_t v);
int rc_h5_attr_set_string(hid_t loc, const char *obj, const char *name, const char *s);
int rc_h5_attr_set_doubles(hid_t loc, const char *obj, const char *name, const double *v, int n);

/* Create a contiguous dataset (parents created as needed; no object time stamps, so a file
 * written twice from the same inputs is byte-identical). mem_type: H5T_NATIVE_FLOAT, ...;
 * file_type: the on-disk type (H5T_IEEE_F32LE, H5T_STD_U8LE, ...). Returns the dataset or -1. */
hid_t rc_h5_create(hid_t file, const char *path, hid_t file_type, int rank, const int64_t *dims);
/* Write a hyperslab of an open dataset from a buffer of mem_type. */
int rc_h5_write(hid_t dset, hid_t mem_type, int rank, const int64_t *start, const int64_t *count,
                const void *buf);
/* Create + write a whole dataset in one call. */
int rc_h5_write_all(hid_t file, const char *path, hid_t file_type, hid_t mem_type, int rank,
                    const int64_t *dims, const void *buf);

#endif
