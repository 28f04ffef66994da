/* checkpoint.c — HDF5 checkpoints (layout and atomicity rules in checkpoint.h).
 *
 * Every hid_t opened here is closed on every path (the CK macro jumps to a single cleanup per
 * function). Tensors are written float32 LE with their PyTorch shape; the loader checks every
 * shape against the IR it parsed from /model, so a checkpoint cannot be loaded into the wrong
 * layout silently.
 */
#include "errbuf.h"
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "fsutil.h"
#include "h5util.h"

const char *const rc_ckpt_hist_names[RC_HIST_COLS] = {
    "epoch", "train_loss", "val_loss", "val_r", "lr", "seconds", "samples_per_s"
};


/* ------------------------------------------------------------------ small HDF5 writers */

static hid_t make_group(hid_t f, const char *path)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0) return -1;
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(f, path, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* Dataset of `rank` dims (rank 0 = scalar) with file type ft, written from mt. */
static int write_ds(hid_t f, const char *path, hid_t ft, hid_t mt, int rank, const int64_t *dims,
                    const void *buf)
{
    hsize_t d[8];
    for (int i = 0; i < rank; i++) d[i] = (hsize_t)dims[i];
    hid_t sp = rank ? H5Screate_simple(rank, d, NULL) : H5Screate(H5S_SCALAR);
    if (sp < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) { H5Sclose(sp); return -1; }
    H5Pset_obj_track_times(dcpl, 0);
    hid_t ds = H5Dcreate2(f, path, ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = -1;
    if (ds >= 0) {
        int64_t n = 1;
        for (int i = 0; i < rank; i++) n *= dims[i];
        rc = (n == 0 || H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) ? 0 : -1;
        if (H5Dclose(ds) < 0) rc = -1;
    }
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

static int write_str_ds(hid_t f, const char *path, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    if (ty < 0) return -1;
    size_t len = strlen(s);
    H5Tset_size(ty, len ? len : 1);
    H5Tset_strpad(ty, H5T_STR_NULLPAD);
    int rc = write_ds(f, path, ty, ty, 0, NULL, len ? s : " ");
    H5Tclose(ty);
    return rc;
}

/* Attribute of n values (n == 1: scalar) with file type ft, memory type mt, on object obj. */
static int write_attr(hid_t f, const char *obj, const char *name, hid_t ft, hid_t mt, int n,
                      const void *v)
{
    hsize_t d = (hsize_t)n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &d, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate_by_name(f, obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (a >= 0) {
        rc = H5Awrite(a, mt, v) >= 0 ? 0 : -1;
        if (H5Aclose(a) < 0) rc = -1;
    }
    H5Sclose(sp);
    return rc;
}

/* ------------------------------------------------------------------ small HDF5 readers */

/* Read a string dataset (fixed or variable length) into a malloc'd string. The dataset must
 * hold ONE string (H5Dread fills one element per point of its dataspace) of at most
 * RC_H5_MAX_STRING bytes (a fixed length is declared by the file: bound it before allocating). */
static char *read_str_ds(hid_t f, const char *path)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    if (ds < 0) return NULL;
    char *out = NULL;
    hid_t ty = H5Dget_type(ds);
    if (ty >= 0 && H5Tget_class(ty) == H5T_STRING && rc_h5_one_point(ds, 0) && rc_h5_storage_ok(ds)) {
        if (H5Tis_variable_str(ty) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) >= 0 && s) {
                out = strdup(s);
                H5free_memory(s);
            }
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ty);
            out = sz <= RC_H5_MAX_STRING ? calloc(sz + 1, 1) : NULL;
            if (out) {
                hid_t mt = H5Tcopy(H5T_C_S1);
                H5Tset_size(mt, sz + 1);
                H5Tset_strpad(mt, H5T_STR_NULLTERM);
                if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) { free(out); out = NULL; }
                H5Tclose(mt);
            }
        }
    }
    if (ty >= 0) H5Tclose(ty);
    H5Dclose(ds);
    return out;
}

/* Read dataset path with exactly `rank` dims `dims` as memory type mt. */
static int read_ds(hid_t f, const char *path, hid_t mt, int rank, const int64_t *dims, void *buf,
                   const char *fname, char *err, size_t errlen)
{
    if (!rc_h5_exists(f, path)) return rc_errf(err, errlen, "%s: %s: missing", fname, path);
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    if (ds < 0) return rc_errf(err, errlen, "%s: %s: cannot open dataset", fname, path);
    int rc = -1;
    hid_t sp = H5Dget_space(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t d[8] = {0};
    if (r < 0 || r > 8) {
        rc_errf(err, errlen, "%s: %s: bad dataspace", fname, path);
        goto out;
    }
    H5Sget_simple_extent_dims(sp, d, NULL);
    int same = r == rank;
    for (int i = 0; same && i < r; i++) same = (int64_t)d[i] == dims[i];
    if (!same) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < rank; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)dims[i]);
        for (int i = 0; i < r; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? "," : "",
                     (unsigned long long)d[i]);
        rc_errf(err, errlen, "%s: %s: shape (%s), expected (%s)", fname, path, got, want);
        goto out;
    }
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (!rc_h5_storage_ok(ds)) {
        rc_errf(err, errlen, "%s: %s: corrupt dataset (its stored data does not match its shape)", fname, path);
        goto out;
    }
    if (n > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc_errf(err, errlen, "%s: %s: read failed", fname, path);
        goto out;
    }
    rc = 0;
out:
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

/* ------------------------------------------------------------------ history */

int rc_ckpt_hist_append(rc_checkpoint *ck, const double row[RC_HIST_COLS])
{
    if (ck->n_hist == ck->cap_hist) {
        int cap = ck->cap_hist ? 2 * ck->cap_hist : 64;
        for (int c = 0; c < RC_HIST_COLS; c++) {
            double *p = realloc(ck->hist[c], (size_t)cap * sizeof *p);
            if (!p) return -1;
            ck->hist[c] = p;
        }
        ck->cap_hist = cap;
    }
    for (int c = 0; c < RC_HIST_COLS; c++) ck->hist[c][ck->n_hist] = row[c];
    ck->n_hist++;
    return 0;
}

void rc_ckpt_hist_free(rc_checkpoint *ck)
{
    for (int c = 0; c < RC_HIST_COLS; c++) { free(ck->hist[c]); ck->hist[c] = NULL; }
    ck->n_hist = ck->cap_hist = 0;
}

/* ------------------------------------------------------------------ run folders */

/* Atomic files and mkdir -p live in fsutil.c. */

void rc_ckpt_resolve(const char *arg, char *out, size_t n)
{
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(out, n, "%s/best.h5", arg);
        if (access(out, F_OK) != 0) snprintf(out, n, "%s/checkpoint.h5", arg);
    } else {
        snprintf(out, n, "%s", arg);
    }
}

int rc_ckpt_clean_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    const char *pre[] = {".ckpt.tmp.", ".tmp."};
    while ((e = readdir(d))) {
        for (int k = 0; k < 2; k++) {
            size_t pl = strlen(pre[k]);
            if (strncmp(e->d_name, pre[k], pl) != 0) continue;
            long pid = strtol(e->d_name + pl, NULL, 10);
            if (pid <= 0) continue;
            if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) == 0) removed++;
        }
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------------ save */

static int write_train_attrs(hid_t f, const rc_train *t)
{
    int n;
    const rc_field *fs = rc_fields(RC_SECTION_TRAIN, 0, &n);
    for (int i = 0; i < n; i++) {
        const rc_field *fd = &fs[i];
        const char *base = (const char *)t + fd->offset;
        int rc = 0;
        switch (fd->type) {
        case RC_F_INT: case RC_F_BOOL: {
            int64_t v = *(const int *)base;
            rc = write_attr(f, "/train", fd->name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &v);
            break;
        }
        case RC_F_NUM:
            rc = write_attr(f, "/train", fd->name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, base);
            break;
        case RC_F_U64:
            rc = write_attr(f, "/train", fd->name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, base);
            break;
        case RC_F_ENUM: {
            int v = *(const int *)base;
            rc = rc_h5_attr_set_string(f, "/train", fd->name, fd->enums[v]);
            break;
        }
        case RC_F_INTLIST: {
            int cnt = *(const int *)((const char *)t + fd->count_offset);
            if (cnt > 0)
                rc = write_attr(f, "/train", fd->name, H5T_STD_I32LE, H5T_NATIVE_INT, cnt, base);
            break;
        }
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* Write the tensors of `views` (n of them) from buf into group grp ("/params", ...). */
static int write_views(hid_t f, const char *grp, const rc_param *views, int n, const float *buf,
                       const char *fname, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const rc_param *p = &views[i];
        char path[160];
        int64_t dims[6];
        for (int k = 0; k < p->rank; k++) dims[k] = p->dims[k];
        snprintf(path, sizeof path, "%s/%s", grp, p->name);
        if (write_ds(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->rank, dims,
                     buf + p->offset) < 0)
            return rc_errf(err, errlen, "%s: %s: write failed", fname, path);
    }
    return 0;
}

static int save_body(hid_t f, const rc_checkpoint *ck, const char *fname, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    char *model = rc_ir_format(ir);
    if (!model) return rc_errf(err, errlen, "%s: out of memory formatting the model", fname);
    int bad = write_str_ds(f, "/spec", ck->spec_text) < 0 || write_str_ds(f, "/model", model) < 0;
    free(model);
    if (bad) return rc_errf(err, errlen, "%s: /spec: write failed", fname);

    struct { const char *k; double v; } dattrs[] = {
        {"lr", ck->lr}, {"norm_mean", ck->norm_mean}, {"norm_std", ck->norm_std},
        {"best_val_loss", ck->best_val_loss}, {"plateau_best", ck->plateau_best},
    };
    struct { const char *k; int64_t v; } iattrs[] = {
        {"format_version", RC_CKPT_VERSION}, {"cells", ck->cells}, {"epoch", ck->epoch},
        {"step", ck->opt_step}, {"rng_step", ck->rng_step}, {"best_epoch", ck->best_epoch},
        {"early_bad", ck->early_bad}, {"plateau_bad", ck->plateau_bad},
        {"threads", ck->threads}, {"crop_row0", ck->crop_row0}, {"crop_col0", ck->crop_col0},
        {"history_len", ir->history},
    };
    struct { const char *k; const char *v; } sattrs[] = {
        {"format", RC_CKPT_FORMAT}, {"generator", RC_GENERATOR}, {"spec_hash", ck->spec_hash},
        {"model", ir->name}, {"backend", ck->backend}, {"device", ck->device},
        {"data", ck->data_path}, {"rate_key", ck->rate_key},
    };
    for (size_t i = 0; i < sizeof dattrs / sizeof dattrs[0]; i++)
        if (rc_h5_attr_set_double(f, "/", dattrs[i].k, dattrs[i].v) < 0)
            return rc_errf(err, errlen, "%s: /: attribute %s: write failed", fname, dattrs[i].k);
    for (size_t i = 0; i < sizeof iattrs / sizeof iattrs[0]; i++)
        if (rc_h5_attr_set_int64(f, "/", iattrs[i].k, iattrs[i].v) < 0)
            return rc_errf(err, errlen, "%s: /: attribute %s: write failed", fname, iattrs[i].k);
    for (size_t i = 0; i < sizeof sattrs / sizeof sattrs[0]; i++)
        if (rc_h5_attr_set_string(f, "/", sattrs[i].k, sattrs[i].v) < 0)
            return rc_errf(err, errlen, "%s: /: attribute %s: write failed", fname, sattrs[i].k);

    const char *groups[] = {"/train", "/params", "/state", "/data", "/history"};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        hid_t g = make_group(f, groups[i]);
        if (g < 0) return rc_errf(err, errlen, "%s: %s: cannot create group", fname, groups[i]);
        H5Gclose(g);
    }
    if (write_train_attrs(f, &ir->train) < 0)
        return rc_errf(err, errlen, "%s: /train: write failed", fname);
    if (write_views(f, "/params", ir->params, ir->n_params, ck->params, fname, err, errlen) < 0)
        return -1;
    if (ir->n_state && write_views(f, "/state", ir->state, ir->n_state, ck->state, fname, err,
                                   errlen) < 0)
        return -1;
    if (ck->has_optim) {
        const char *og[] = {"/optim", "/optim/m", "/optim/v"};
        for (int i = 0; i < 3; i++) {
            hid_t g = make_group(f, og[i]);
            if (g < 0) return rc_errf(err, errlen, "%s: %s: cannot create group", fname, og[i]);
            H5Gclose(g);
        }
        if (write_views(f, "/optim/m", ir->params, ir->n_params, ck->moments, fname, err,
                        errlen) < 0 ||
            write_views(f, "/optim/v", ir->params, ir->n_params, ck->moments + ir->params_total,
                        fname, err, errlen) < 0)
            return -1;
        int64_t st = ck->opt_step;
        double hp[3] = {ck->beta1, ck->beta2, ck->eps};
        const char *hn[3] = {"beta1", "beta2", "eps"};
        if (write_attr(f, "/optim", "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &st) < 0 ||
            rc_h5_attr_set_string(f, "/optim", "kind", ck->opt_kind == RC_OPT_ADAMW ? "adamw"
                                                                                    : "adam") < 0)
            return rc_errf(err, errlen, "%s: /optim: attributes: write failed", fname);
        for (int i = 0; i < 3; i++)
            if (rc_h5_attr_set_double(f, "/optim", hn[i], hp[i]) < 0)
                return rc_errf(err, errlen, "%s: /optim: attribute %s: write failed", fname, hn[i]);
        if (rc_h5_attr_set_double(f, "/optim", "weight_decay", ir->train.l2) < 0)
            return rc_errf(err, errlen, "%s: /optim: attribute weight_decay: write failed", fname);
    }
    int64_t d1[1] = {ck->cells}, d2[2] = {ck->cells, 2};
    if (write_ds(f, "/data/cell_ids", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, ck->cell_ids) < 0 ||
        (ck->cell_pos && write_ds(f, "/data/cell_pos", H5T_STD_I32LE, H5T_NATIVE_INT, 2, d2,
                                  ck->cell_pos) < 0) ||
        (ck->centers && write_ds(f, "/data/centers", H5T_STD_I32LE, H5T_NATIVE_INT, 2, d2,
                                 ck->centers) < 0))
        return rc_errf(err, errlen, "%s: /data: write failed", fname);
    if (ck->fp.version) {
        const rc_data_fp *fp = &ck->fp;
        struct { const char *k; int64_t v; } fa[] = {
            {"fingerprint_version", fp->version}, {"file_cells", fp->file_cells},
            {"frame_h", fp->frame_h}, {"frame_w", fp->frame_w},
            {"train_frames", fp->train_frames}, {"test_frames", fp->test_frames},
        };
        for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++)
            if (rc_h5_attr_set_int64(f, "/data", fa[i].k, fa[i].v) < 0)
                return rc_errf(err, errlen, "%s: /data: attribute %s: write failed", fname, fa[i].k);
        if (rc_h5_attr_set_string(f, "/data", "fingerprint", fp->sha256) < 0)
            return rc_errf(err, errlen, "%s: /data: attribute fingerprint: write failed", fname);
    }
    int64_t dh[1] = {ck->n_hist};
    for (int c = 0; c < RC_HIST_COLS; c++) {
        char path[64];
        snprintf(path, sizeof path, "/history/%s", rc_ckpt_hist_names[c]);
        static const double none = 0;
        if (write_ds(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dh,
                     ck->n_hist ? ck->hist[c] : &none) < 0)
            return rc_errf(err, errlen, "%s: %s: write failed", fname, path);
    }
    return 0;
}

int rc_ckpt_save(const char *path, const rc_checkpoint *ck, char *err, size_t errlen)
{
    rc_h5_quiet();
    if (!ck->ir || !ck->params || !ck->spec_text || !ck->cell_ids || ck->cells != ck->ir->cells)
        return rc_errf(err, errlen, "%s: incomplete checkpoint (model, params, spec or cells)", path);
    if (ck->has_optim && !ck->moments)
        return rc_errf(err, errlen, "%s: optimizer state missing", path);
    if (rc_ckpt_validate(ck, path, err, errlen) < 0) return -1;   /* what saves must load */
    /* built in memory, written by rc_write_file_atomic: HDF5 never meets the disk (fsutil.h) */
    hid_t f = rc_h5_mem_create(path, H5P_DEFAULT, err, errlen);
    if (f < 0) return -1;
    int rc = save_body(f, ck, path, err, errlen);
    return rc_h5_mem_commit(f, path, rc == 0, err, errlen);
}

/* ------------------------------------------------------------------ load */

void rc_ckpt_free(rc_checkpoint *ck)
{
    if (!ck) return;
    if (ck->owned) {
        free(ck->ir);
        free(ck->spec_text);
        free(ck->params);
        free(ck->state);
        free(ck->moments);
        free(ck->cell_ids);
        free(ck->cell_pos);
        free(ck->centers);
        rc_ckpt_hist_free(ck);
    }
    memset(ck, 0, sizeof *ck);
}

static int read_views(hid_t f, const char *grp, const rc_param *views, int n, float *buf,
                      const char *fname, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const rc_param *p = &views[i];
        char path[160];
        int64_t dims[6];
        for (int k = 0; k < p->rank; k++) dims[k] = p->dims[k];
        snprintf(path, sizeof path, "%s/%s", grp, p->name);
        if (read_ds(f, path, H5T_NATIVE_FLOAT, p->rank, dims, buf + p->offset, fname, err,
                    errlen) < 0)
            return -1;
    }
    return 0;
}

static int get_i64(hid_t f, const char *obj, const char *k, int64_t *v, const char *fname,
                   char *err, size_t errlen)
{
    if (rc_h5_attr_get_int64(f, obj, k, v) < 0)
        return rc_errf(err, errlen, "%s: %s: attribute %s missing or not an integer", fname, obj, k);
    return 0;
}

static int get_f64(hid_t f, const char *obj, const char *k, double *v, const char *fname,
                   char *err, size_t errlen)
{
    if (rc_h5_attr_get_double(f, obj, k, v) < 0)
        return rc_errf(err, errlen, "%s: %s: attribute %s missing or not a number", fname, obj, k);
    return 0;
}

static int load_body(hid_t f, rc_checkpoint *ck, const char *fname, char *err, size_t errlen)
{
    char fmt[64] = "";
    if (rc_h5_attr_get_string(f, "/", "format", fmt, sizeof fmt) < 0 || strcmp(fmt, RC_CKPT_FORMAT))
        return rc_errf(err, errlen, "%s: /: not a retinac checkpoint (attribute format)", fname);
    int64_t ver = 0, cells = 0, v = 0;
    if (get_i64(f, "/", "format_version", &ver, fname, err, errlen)) return -1;
    if (ver != RC_CKPT_VERSION)
        return rc_errf(err, errlen, "%s: /: format_version %lld, this retinac reads %d", fname,
                    (long long)ver, RC_CKPT_VERSION);
    if (get_i64(f, "/", "cells", &cells, fname, err, errlen)) return -1;
    if (cells < 1 || cells > 1000000)
        return rc_errf(err, errlen, "%s: /: cells = %lld out of range", fname, (long long)cells);
    ck->cells = (int)cells;
    ck->spec_text = read_str_ds(f, "/spec");
    char *model = read_str_ds(f, "/model");
    if (!ck->spec_text || !model) {
        free(model);
        return rc_errf(err, errlen, "%s: /spec or /model: missing or not a string", fname);
    }
    if (rc_h5_attr_get_string(f, "/", "spec_hash", ck->spec_hash, sizeof ck->spec_hash) < 0) {
        free(model);
        return rc_errf(err, errlen, "%s: /: attribute spec_hash missing", fname);
    }
    /* The stored spec must hash to spec_hash (the text was not altered), and /model must be the
     * same model (only its train section may differ). */
    rc_ir *spec = malloc(sizeof *spec);
    ck->ir = malloc(sizeof *ck->ir);
    if (!spec || !ck->ir) { free(spec); free(model); return rc_errf(err, errlen, "%s: out of memory", fname); }
    char m[512];
    int rc = -1;
    if (rc_ir_parse(spec, ck->spec_text, fname, m, sizeof m) < 0) {
        rc_errf(err, errlen, "%s: /spec: %s", fname, m);
        goto out;
    }
    char h[65];
    rc_ir_hash(spec, h);
    if (strcmp(h, ck->spec_hash)) {
        rc_errf(err, errlen, "%s: /spec: hash %.12s does not match spec_hash %.12s", fname, h,
             ck->spec_hash);
        goto out;
    }
    if (rc_ir_parse(ck->ir, model, fname, m, sizeof m) < 0) {
        rc_errf(err, errlen, "%s: /model: %s", fname, m);
        goto out;
    }
    {
        rc_ir tmp = *ck->ir;
        tmp.train = spec->train;
        char h2[65];
        rc_ir_hash(&tmp, h2);
        if (strcmp(h2, ck->spec_hash)) {
            rc_errf(err, errlen, "%s: /model: differs from /spec beyond the train section", fname);
            goto out;
        }
    }
    if (rc_ir_infer(ck->ir, ck->cells, fname, m, sizeof m) < 0) {
        rc_errf(err, errlen, "%s: /model: %s", fname, m);
        goto out;
    }
    rc = 0;
out:
    free(spec);
    free(model);
    if (rc) return -1;

    const rc_ir *ir = ck->ir;
    ck->params = malloc((size_t)(ir->params_total ? ir->params_total : 1) * sizeof(float));
    ck->state = malloc((size_t)(ir->state_total ? ir->state_total : 1) * sizeof(float));
    ck->cell_ids = malloc((size_t)ck->cells * sizeof(int));
    if (!ck->params || !ck->state || !ck->cell_ids) return rc_errf(err, errlen, "%s: out of memory", fname);
    if (read_views(f, "/params", ir->params, ir->n_params, ck->params, fname, err, errlen) < 0)
        return -1;
    if (ir->n_state && read_views(f, "/state", ir->state, ir->n_state, ck->state, fname, err,
                                  errlen) < 0)
        return -1;

    if (get_f64(f, "/", "lr", &ck->lr, fname, err, errlen) ||
        get_f64(f, "/", "norm_mean", &ck->norm_mean, fname, err, errlen) ||
        get_f64(f, "/", "norm_std", &ck->norm_std, fname, err, errlen) ||
        get_f64(f, "/", "best_val_loss", &ck->best_val_loss, fname, err, errlen) ||
        get_f64(f, "/", "plateau_best", &ck->plateau_best, fname, err, errlen))
        return -1;
    struct { const char *k; int64_t *p; } iv[] = {
        {"epoch", &ck->epoch}, {"rng_step", &ck->rng_step}, {"best_epoch", &ck->best_epoch},
    };
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++)
        if (get_i64(f, "/", iv[i].k, iv[i].p, fname, err, errlen)) return -1;
    struct { const char *k; int *p; } ii[] = {
        {"early_bad", &ck->early_bad}, {"plateau_bad", &ck->plateau_bad},
        {"threads", &ck->threads}, {"crop_row0", &ck->crop_row0}, {"crop_col0", &ck->crop_col0},
    };
    for (size_t i = 0; i < sizeof ii / sizeof ii[0]; i++) {
        if (get_i64(f, "/", ii[i].k, &v, fname, err, errlen)) return -1;
        *ii[i].p = (int)v;
    }
    if (get_i64(f, "/", "history_len", &v, fname, err, errlen)) return -1;
    if (v != ir->history)
        return rc_errf(err, errlen, "%s: /: history_len: %lld, but the model's input history is %d",
                       fname, (long long)v, ir->history);
    if (rc_h5_exists(f, "/data") &&
        rc_h5_attr_get_string(f, "/data", "fingerprint", ck->fp.sha256, sizeof ck->fp.sha256) == 0) {
        struct { const char *k; int64_t *p; } fa[] = {
            {"fingerprint_version", NULL}, {"file_cells", NULL}, {"frame_h", NULL},
            {"frame_w", NULL}, {"train_frames", &ck->fp.train_frames},
            {"test_frames", &ck->fp.test_frames},
        };
        int *ip[] = {&ck->fp.version, &ck->fp.file_cells, &ck->fp.frame_h, &ck->fp.frame_w};
        for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++) {
            if (get_i64(f, "/data", fa[i].k, &v, fname, err, errlen)) return -1;
            if (fa[i].p) *fa[i].p = v;
            else if (v < 0 || v > 1000000000) return rc_errf(err, errlen, "%s: /data: attribute %s: %lld out of range", fname, fa[i].k, (long long)v);
            else *ip[i] = (int)v;
        }
        if (ck->fp.version != RC_FP_VERSION)
            return rc_errf(err, errlen, "%s: /data: fingerprint_version %d, this retinac reads %d",
                           fname, ck->fp.version, RC_FP_VERSION);
    }
    rc_h5_attr_get_string(f, "/", "backend", ck->backend, sizeof ck->backend);
    rc_h5_attr_get_string(f, "/", "device", ck->device, sizeof ck->device);
    rc_h5_attr_get_string(f, "/", "data", ck->data_path, sizeof ck->data_path);
    rc_h5_attr_get_string(f, "/", "rate_key", ck->rate_key, sizeof ck->rate_key);

    int64_t d1[1] = {ck->cells}, d2[2] = {ck->cells, 2};
    if (read_ds(f, "/data/cell_ids", H5T_NATIVE_INT, 1, d1, ck->cell_ids, fname, err, errlen) < 0)
        return -1;
    if (rc_h5_exists(f, "/data/cell_pos")) {
        ck->cell_pos = malloc((size_t)ck->cells * 2 * sizeof(int));
        if (!ck->cell_pos) return rc_errf(err, errlen, "%s: out of memory", fname);
        if (read_ds(f, "/data/cell_pos", H5T_NATIVE_INT, 2, d2, ck->cell_pos, fname, err, errlen) < 0)
            return -1;
    }
    if (rc_h5_exists(f, "/data/centers")) {
        ck->centers = malloc((size_t)ck->cells * 2 * sizeof(int));
        if (!ck->centers) return rc_errf(err, errlen, "%s: out of memory", fname);
        if (read_ds(f, "/data/centers", H5T_NATIVE_INT, 2, d2, ck->centers, fname, err, errlen) < 0)
            return -1;
    }

    ck->has_optim = rc_h5_exists(f, "/optim");
    if (ck->has_optim) {
        char kind[16] = "";
        rc_h5_attr_get_string(f, "/optim", "kind", kind, sizeof kind);
        ck->opt_kind = !strcmp(kind, "adamw") ? RC_OPT_ADAMW : RC_OPT_ADAM;
        if (get_i64(f, "/optim", "step", &ck->opt_step, fname, err, errlen) ||
            get_f64(f, "/optim", "beta1", &ck->beta1, fname, err, errlen) ||
            get_f64(f, "/optim", "beta2", &ck->beta2, fname, err, errlen) ||
            get_f64(f, "/optim", "eps", &ck->eps, fname, err, errlen))
            return -1;
        ck->moments = malloc((size_t)(2 * ir->params_total + 1) * sizeof(float));
        if (!ck->moments) return rc_errf(err, errlen, "%s: out of memory", fname);
        if (read_views(f, "/optim/m", ir->params, ir->n_params, ck->moments, fname, err, errlen) < 0 ||
            read_views(f, "/optim/v", ir->params, ir->n_params, ck->moments + ir->params_total,
                       fname, err, errlen) < 0)
            return -1;
    }

    /* history: every column has the same length */
    int64_t nh = -1;
    for (int c = 0; c < RC_HIST_COLS; c++) {
        char path[64];
        snprintf(path, sizeof path, "/history/%s", rc_ckpt_hist_names[c]);
        rc_h5_desc d;
        if (rc_h5_describe(f, fname, path, 1, &d, m, sizeof m) < 0)
            return rc_errf(err, errlen, "%s", m);
        if (d.rank != 1 || (nh >= 0 && d.dims[0] != nh) || d.dims[0] > (1 << 24))
            return rc_errf(err, errlen, "%s: %s: expected one column of the history", fname, path);
        nh = d.dims[0];
    }
    for (int64_t r = 0; r < nh; r++) {
        double row[RC_HIST_COLS] = {0};
        if (rc_ckpt_hist_append(ck, row) < 0) return rc_errf(err, errlen, "%s: out of memory", fname);
    }
    for (int c = 0; c < RC_HIST_COLS && nh > 0; c++) {
        char path[64];
        snprintf(path, sizeof path, "/history/%s", rc_ckpt_hist_names[c]);
        int64_t d[1] = {nh};
        if (read_ds(f, path, H5T_NATIVE_DOUBLE, 1, d, ck->hist[c], fname, err, errlen) < 0)
            return -1;
    }
    return rc_ckpt_validate(ck, fname, err, errlen);
}

int rc_ckpt_load(const char *path, rc_checkpoint *ck, char *err, size_t errlen)
{
    rc_h5_quiet();
    memset(ck, 0, sizeof *ck);
    ck->owned = 1;
    snprintf(ck->path, sizeof ck->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) return rc_errf(err, errlen, "%s: %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { rc_ckpt_free(ck); return rc_errf(err, errlen, "%s: not an HDF5 file or unreadable", path); }
    int rc = load_body(f, ck, path, err, errlen);
    if (H5Fclose(f) < 0 && rc == 0) rc = rc_errf(err, errlen, "%s: close failed", path);
    if (rc) rc_ckpt_free(ck);
    return rc;
}
