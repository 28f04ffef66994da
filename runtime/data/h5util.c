/* h5util.c — validated HDF5 helpers (see h5util.h).
 *
 * Invariants: every hid_t opened here is closed on every path; messages name file and key;
 * objects are created without time stamps so that synthetic files are reproducible byte for byte.
 */
#include "h5util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int rc_h5_exists(hid_t loc, const char *path)
{
    rc_h5_quiet();
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, path, n + 1);
    /* Check every prefix: H5Lexists fails (instead of answering 0) on a missing parent. */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
        if (e > 0) e = H5Oexists_by_name(loc, buf, H5P_DEFAULT);
        buf[i] = c;
        if (e <= 0) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Why a path does not resolve                                                               */

#define MAX_HOPS 16   /* soft links followed before calling it a loop (HDF5's own limit is 16) */

typedef struct {
    char seen[MAX_HOPS][256];   /* soft links followed so far, in order */
    int n;
} hops;

static void chain_text(const hops *h, const char *last, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < h->n && k < n; i++) k += (size_t)snprintf(out + k, n - k, "%s -> ", h->seen[i]);
    if (k < n) snprintf(out + k, n - k, "%s", last);
}

static int unresolved(hid_t loc, const char *path, char *why, size_t n, hops *h);

/* The link at prefix p exists and does not resolve: say why (soft: follow it). */
static int broken_link(hid_t loc, const char *p, char *why, size_t n, hops *h)
{
    H5L_info_t li;
    if (H5Lget_info(loc, p, &li, H5P_DEFAULT) < 0) { snprintf(why, n, "cannot be read (%s)", p); return 1; }
    char val[1024];
    size_t vs = li.u.val_size;
    if (li.type == H5L_TYPE_SOFT) {
        if (vs == 0 || vs > sizeof val || H5Lget_val(loc, p, val, sizeof val, H5P_DEFAULT) < 0) {
            snprintf(why, n, "soft link %s cannot be read", p);
            return 1;
        }
        val[sizeof val - 1] = 0;
        char target[1024];
        if (val[0] == '/') snprintf(target, sizeof target, "%s", val);
        else {      /* relative to the group holding the link */
            const char *slash = strrchr(p, '/');
            int plen = slash ? (int)(slash - p) : 0;
            if (plen > 500) plen = 500;
            snprintf(target, sizeof target, "%.*s/%.500s", plen, p, val);
        }
        char chain[700];
        for (int i = 0; i < h->n; i++)
            if (!strcmp(h->seen[i], p)) {
                chain_text(h, p, chain, sizeof chain);
                snprintf(why, n, "soft link loop (%s)", chain);
                return 1;
            }
        if (h->n == MAX_HOPS) {
            chain_text(h, p, chain, sizeof chain);
            snprintf(why, n, "soft link loop (more than %d links: %s)", MAX_HOPS, chain);
            return 1;
        }
        snprintf(h->seen[h->n++], sizeof h->seen[0], "%.255s", p);
        char sub[700];
        if (!unresolved(loc, target, sub, sizeof sub, h)) {
            snprintf(why, n, "soft link %s -> %s does not resolve", p, target);
            return 1;
        }
        if (!strcmp(sub, "missing")) {
            chain_text(h, target, chain, sizeof chain);
            snprintf(why, n, "dangling soft link (%s: missing)", chain);
        } else {
            snprintf(why, n, "%s", sub);
        }
        return 1;
    }
    if (li.type == H5L_TYPE_EXTERNAL) {
        const char *file = NULL, *obj = NULL;
        unsigned flags = 0;
        if (vs == 0 || vs > sizeof val || H5Lget_val(loc, p, val, sizeof val, H5P_DEFAULT) < 0 ||
            H5Lunpack_elink_val(val, vs, &flags, &file, &obj) < 0 || !file || !obj) {
            snprintf(why, n, "external link %s cannot be read", p);
            return 1;
        }
        char at[64] = "";
        if (h->n) snprintf(at, sizeof at, " (reached through soft links)");
        snprintf(why, n, "dangling external link to %s:%s%s%s%s", file, obj, strcmp(p, "") ? " at " : "", p, at);
        return 1;
    }
    snprintf(why, n, "%s: link of type %d does not resolve", p, (int)li.type);
    return 1;
}

static int unresolved(hid_t loc, const char *path, char *why, size_t n, hops *h)
{
    char buf[1024];
    size_t len = strlen(path);
    why[0] = 0;
    if (len == 0 || len >= sizeof buf) { snprintf(why, n, "missing"); return 1; }
    memcpy(buf, path, len + 1);
    /* every prefix: H5Lexists fails (instead of answering 0) on a missing parent */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
        int bad = 0;
        if (e <= 0) { snprintf(why, n, "missing"); bad = 1; }
        else if (H5Oexists_by_name(loc, buf, H5P_DEFAULT) <= 0) bad = broken_link(loc, buf, why, n, h);
        buf[i] = c;
        if (bad) return 1;
    }
    return 0;
}

int rc_h5_unresolved(hid_t loc, const char *path, char *why, size_t n)
{
    rc_h5_quiet();
    hops *h = calloc(1, sizeof *h);
    if (!h) { snprintf(why, n, "cannot be checked (out of memory)"); return 1; }
    int r = unresolved(loc, path, why, n, h);
    free(h);
    return r;
}

int rc_h5_broken(hid_t loc, const char *path, char *why, size_t n)
{
    return rc_h5_unresolved(loc, path, why, n) && strcmp(why, "missing") != 0;
}

int rc_h5_is_dataset(hid_t loc, const char *path)
{
    if (!rc_h5_exists(loc, path)) return 0;
    /* H5Oopen + H5Iget_type: the same call on HDF5 1.10 and 1.12+ (H5Oget_info changed). */
    hid_t o = H5Oopen(loc, path, H5P_DEFAULT);
    if (o < 0) return 0;
    int is = H5Iget_type(o) == H5I_DATASET;
    H5Oclose(o);
    return is;
}

int rc_h5_one_point(hid_t obj, int is_attr)
{
    hid_t sp = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    if (sp < 0) return 0;
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    return n == 1;
}

int rc_h5_storage_ok(hid_t ds)
{
    hid_t pl = H5Dget_create_plist(ds);
    if (pl < 0) return 0;
    H5D_layout_t lay = H5Pget_layout(pl);
    H5Pclose(pl);
    if (lay != H5D_COMPACT) return lay >= 0;
    hid_t ty = H5Dget_type(ds), sp = H5Dget_space(ds);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t ts = ty >= 0 ? H5Tget_size(ty) : 0;
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    return n >= 0 && ts > 0 && H5Dget_storage_size(ds) == (hsize_t)n * ts;
}

static void type_name(rc_h5_desc *d)
{
    if (d->is_float)
        snprintf(d->type_name, sizeof d->type_name, "float%d", d->size * 8);
    else
        snprintf(d->type_name, sizeof d->type_name, "%sint%d", d->is_signed ? "" : "u", d->size * 8);
}

int rc_h5_describe(hid_t loc, const char *fname, const char *path, int allow_empty,
                   rc_h5_desc *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char why[800];
    if (rc_h5_unresolved(loc, path, why, sizeof why)) return rc_errf(err, errlen, "%s: %s: %s", fname, path, why);
    if (!rc_h5_is_dataset(loc, path))
        return rc_errf(err, errlen, "%s: %s: is not a dataset", fname, path);
    hid_t ds = H5Dopen2(loc, path, H5P_DEFAULT);
    if (ds < 0) return rc_errf(err, errlen, "%s: %s: cannot open dataset", fname, path);
    int rc = -1;
    hid_t ty = H5Dget_type(ds), sp = H5Dget_space(ds);
    if (ty < 0 || sp < 0) { rc_errf(err, errlen, "%s: %s: cannot read type/shape", fname, path); goto out; }
    H5T_class_t cls = H5Tget_class(ty);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        rc_errf(err, errlen, "%s: %s: unsupported dtype (class %d); expected an integer or float type",
                   fname, path, (int)cls);
        goto out;
    }
    d->is_float = cls == H5T_FLOAT;
    size_t tsize = H5Tget_size(ty);   /* a 32-bit field on disk: bound it before any arithmetic */
    if (tsize < 1 || tsize > 8) {
        rc_errf(err, errlen, "%s: %s: unsupported dtype (%zu-byte %s); expected 1 to 8 bytes", fname, path,
                   tsize, d->is_float ? "float" : "integer");
        goto out;
    }
    d->size = (int)tsize;
    d->is_signed = cls == H5T_INTEGER ? H5Tget_sign(ty) == H5T_SGN_2 : 1;
    type_name(d);
    if (H5Sget_simple_extent_type(sp) != H5S_SIMPLE) {
        rc_errf(err, errlen, "%s: %s: scalar or null dataspace; expected an array", fname, path);
        goto out;
    }
    int r = H5Sget_simple_extent_ndims(sp);
    if (r < 1 || r > RC_H5_MAX_RANK) {
        rc_errf(err, errlen, "%s: %s: rank %d not supported (1..%d)", fname, path, r, RC_H5_MAX_RANK);
        goto out;
    }
    hsize_t dims[RC_H5_MAX_RANK];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    d->rank = r;
    for (int i = 0; i < r; i++) {
        d->dims[i] = (int64_t)dims[i];
        if (dims[i] == 0 && !allow_empty) {
            rc_errf(err, errlen, "%s: %s: empty dataset (dimension %d is 0)", fname, path, i);
            goto out;
        }
    }
    if (!rc_h5_storage_ok(ds)) {
        rc_errf(err, errlen, "%s: %s: corrupt dataset (its stored data does not match its shape)", fname, path);
        goto out;
    }
    rc = 0;
out:
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    H5Dclose(ds);
    return rc;
}

int rc_h5_read_f32(hid_t dset, int rank, const int64_t *start, const int64_t *count, float *out,
                   const char *fname, const char *key, char *err, size_t errlen)
{
    rc_h5_quiet();
    hsize_t st[RC_H5_MAX_RANK], ct[RC_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) { st[i] = (hsize_t)start[i]; ct[i] = (hsize_t)count[i]; }
    hid_t fs = H5Dget_space(dset);
    if (fs < 0) return rc_errf(err, errlen, "%s: %s: cannot get dataspace", fname, key);
    hid_t ms = H5Screate_simple(rank, ct, NULL);
    int rc = -1;
    if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, ct, NULL) < 0) {
        rc_errf(err, errlen, "%s: %s: bad hyperslab selection", fname, key);
    } else if (H5Dread(dset, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0) {
        rc_errf(err, errlen, "%s: %s: read failed at [%lld..%lld) (truncated or corrupt file?)",
                   fname, key, (long long)start[0], (long long)(start[0] + count[0]));
    } else {
        rc = 0;
    }
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

static int read_all(hid_t loc, const char *path, hid_t mtype, void *out, int64_t n,
                    const char *fname, char *err, size_t errlen)
{
    rc_h5_desc d;
    if (rc_h5_describe(loc, fname, path, 1, &d, err, errlen) < 0) return -1;
    int64_t total = 1;
    for (int i = 0; i < d.rank; i++) total *= d.dims[i];
    if (total != n)
        return rc_errf(err, errlen, "%s: %s: has %lld values, expected %lld", fname, path,
                          (long long)total, (long long)n);
    if (n == 0) return 0;
    hid_t ds = H5Dopen2(loc, path, H5P_DEFAULT);
    if (ds < 0) return rc_errf(err, errlen, "%s: %s: cannot open dataset", fname, path);
    herr_t e = H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    if (e < 0) return rc_errf(err, errlen, "%s: %s: read failed (truncated or corrupt file?)", fname, path);
    return 0;
}

int rc_h5_read_all_f32(hid_t loc, const char *path, float *out, int64_t n, const char *fname,
                       char *err, size_t errlen)
{
    return read_all(loc, path, H5T_NATIVE_FLOAT, out, n, fname, err, errlen);
}

int rc_h5_read_all_int(hid_t loc, const char *path, int *out, int64_t n, const char *fname,
                       char *err, size_t errlen)
{
    return read_all(loc, path, H5T_NATIVE_INT, out, n, fname, err, errlen);
}

int rc_all_finite(const float *x, int64_t n, int64_t *bad)
{
    /* Branch-free scan first (vectorizes); locate the culprit only when one exists. */
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= isfinite(x[i]) ? 1 : 0;
    if (ok) return 1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) { if (bad) *bad = i; break; }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Attributes                                                                                */

static hid_t attr_open(hid_t loc, const char *obj, const char *name)
{
    rc_h5_quiet();
    if (strcmp(obj, "/") != 0 && !rc_h5_exists(loc, obj)) return -1;
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) <= 0) return -1;
    return H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
}

static int attr_get_num(hid_t loc, const char *obj, const char *name, hid_t mtype, void *v)
{
    hid_t a = attr_open(loc, obj, name);
    if (a < 0) return -1;
    hid_t ty = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(ty);
    hid_t sp = H5Aget_space(a);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    int rc = -1;
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && npts == 1 && H5Aread(a, mtype, v) >= 0) rc = 0;
    H5Sclose(sp);
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

int rc_h5_attr_get_double(hid_t loc, const char *obj, const char *name, double *v)
{
    return attr_get_num(loc, obj, name, H5T_NATIVE_DOUBLE, v);
}

int rc_h5_attr_get_int64(hid_t loc, const char *obj, const char *name, int64_t *v)
{
    return attr_get_num(loc, obj, name, H5T_NATIVE_INT64, v);
}

int rc_h5_attr_get_string(hid_t loc, const char *obj, const char *name, char *buf, size_t n)
{
    if (n == 0) return -1;
    hid_t a = attr_open(loc, obj, name);
    if (a < 0) return -1;
    int rc = -1;
    hid_t ty = H5Aget_type(a);
    /* one string only: H5Aread fills one element per point of the attribute's dataspace */
    if (H5Tget_class(ty) == H5T_STRING && rc_h5_one_point(a, 1)) {
        if (H5Tis_variable_str(ty) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, n, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ty);
            char *tmp = sz <= RC_H5_MAX_STRING ? calloc(sz + 1, 1) : NULL;
            if (tmp) {
                hid_t mt = H5Tcopy(H5T_C_S1);
                H5Tset_size(mt, sz + 1);
                H5Tset_strpad(mt, H5T_STR_NULLTERM);
                if (H5Aread(a, mt, tmp) >= 0) { snprintf(buf, n, "%s", tmp); rc = 0; }
                H5Tclose(mt);
                free(tmp);
            }
        }
    }
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

static int attr_set(hid_t loc, const char *obj, const char *name, hid_t ftype, hid_t mtype,
                    int n, const void *v)
{
    rc_h5_quiet();
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) > 0 &&
        H5Adelete_by_name(loc, obj, name, H5P_DEFAULT) < 0)
        return -1;
    hsize_t d = (hsize_t)n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate_by_name(loc, obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (a >= 0) {
        rc = H5Awrite(a, mtype, v) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(sp);
    return rc;
}

int rc_h5_attr_set_double(hid_t loc, const char *obj, const char *name, double v)
{
    return attr_set(loc, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &v);
}

int rc_h5_attr_set_int64(hid_t loc, const char *obj, const char *name, int64_t v)
{
    return attr_set(loc, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &v);
}

int rc_h5_attr_set_doubles(hid_t loc, const char *obj, const char *name, const double *v, int n)
{
    return attr_set(loc, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, v);
}

int rc_h5_attr_set_string(hid_t loc, const char *obj, const char *name, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    if (ty < 0) return -1;
    size_t len = strlen(s);
    H5Tset_size(ty, len ? len : 1);
    H5Tset_strpad(ty, H5T_STR_NULLPAD);
    int rc = attr_set(loc, obj, name, ty, ty, 1, s);   /* "" as its one NUL byte: reads back "" */
    H5Tclose(ty);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Create the parent groups of path that do not exist yet, without time stamps. */
static int make_parents(hid_t file, const char *path)
{
    char buf[1024];
    size_t n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0) return -1;
    H5Pset_obj_track_times(gcpl, 0);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0) rc = -1; else H5Gclose(g);
        }
        buf[i] = '/';
    }
    H5Pclose(gcpl);
    return rc;
}

hid_t rc_h5_create(hid_t file, const char *path, hid_t file_type, int rank, const int64_t *dims)
{
    rc_h5_quiet();
    if (make_parents(file, path) < 0) return -1;
    hsize_t d[RC_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) d[i] = (hsize_t)dims[i];
    hid_t sp = H5Screate_simple(rank, d, NULL);
    if (sp < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    /* Writers fill every element (and write to a temp file renamed only on success). */
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t ds = H5Dcreate2(file, path, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

int rc_h5_write(hid_t dset, hid_t mem_type, int rank, const int64_t *start, const int64_t *count,
                const void *buf)
{
    hsize_t st[RC_H5_MAX_RANK], ct[RC_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) { st[i] = (hsize_t)start[i]; ct[i] = (hsize_t)count[i]; }
    hid_t fs = H5Dget_space(dset);
    if (fs < 0) return -1;
    hid_t ms = H5Screate_simple(rank, ct, NULL);
    int rc = -1;
    if (ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, ct, NULL) >= 0 &&
        H5Dwrite(dset, mem_type, ms, fs, H5P_DEFAULT, buf) >= 0)
        rc = 0;
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

int rc_h5_write_all(hid_t file, const char *path, hid_t file_type, hid_t mem_type, int rank,
                    const int64_t *dims, const void *buf)
{
    hid_t ds = rc_h5_create(file, path, file_type, rank, dims);
    if (ds < 0) return -1;
    int rc = H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    H5Dclose(ds);
    return rc;
}

int rc_h5_is_group(hid_t loc, const char *path)
{
    if (strcmp(path, "/") != 0 && !rc_h5_exists(loc, path)) return 0;
    hid_t o = H5Oopen(loc, path, H5P_DEFAULT);
    if (o < 0) return 0;
    int is = H5Iget_type(o) == H5I_GROUP;
    H5Oclose(o);
    return is;
}

typedef struct { char **v; int n, cap, fail; } name_list;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g; (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) { l->fail = 1; return -1; }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(name);
    if (!l->v[l->n]) { l->fail = 1; return -1; }
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rc_h5_list(hid_t loc, const char *group, char ***names)
{
    *names = NULL;
    if (!rc_h5_is_group(loc, group)) return -1;
    hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
    if (g < 0) return -1;
    name_list l = {0};
    hsize_t idx = 0;
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &l);
    H5Gclose(g);
    if (e < 0 || l.fail) { rc_h5_free_names(l.v, l.n); return -1; }
    if (l.n > 1) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *names = l.v;
    return l.n;
}

void rc_h5_free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}
