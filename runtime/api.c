/* api.c — the public API of retinac.h over the runtime: a loaded checkpoint plus a backend.
 * Normalization matches the data layer exactly ((x - (float)mean) / (float)std in float32),
 * so predictions from raw frames equal those `retinac eval` computes on the same frames.
 */
#include "retinac.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "data.h"
#include "fsutil.h"
#include "h5util.h"
#include "train.h"

struct retinac_model {
    rc_checkpoint ck;
    rc_backend *be;
    char backend[16];
};

const char *retinac_version(void) { return "0.1.0"; }

retinac_model *retinac_open(const char *checkpoint, const char *backend, char *err, size_t errlen)
{
    char path[1100];
    rc_ckpt_resolve(checkpoint, path, sizeof path);
    retinac_model *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, errlen, "out of memory"); return NULL; }
    if (rc_ckpt_load(path, &m->ck, err, errlen) < 0) { free(m); return NULL; }
    /* NULL: the generated C, else the reference (rc_backend_open's automatic choice) */
    if (rc_backend_open(m->ck.ir, backend, "cpu", &m->be, err, errlen) < 0) {
        rc_ckpt_free(&m->ck);
        free(m);
        return NULL;
    }
    snprintf(m->backend, sizeof m->backend, "%s", backend ? backend : m->be->name);
    return m;
}

void retinac_close(retinac_model *m)
{
    if (!m) return;
    rc_backend_destroy(m->be);
    rc_ckpt_free(&m->ck);
    free(m);
}

void retinac_shape(const retinac_model *m, int *history, int *height, int *width, int *cells)
{
    if (history) *history = m->ck.ir->history;
    if (height) *height = m->ck.ir->in.h;
    if (width) *width = m->ck.ir->in.w;
    if (cells) *cells = m->ck.cells;
}

const char *retinac_model_name(const retinac_model *m) { return m->ck.ir->name; }
const char *retinac_backend_name(const retinac_model *m) { return m->backend; }

int retinac_predict(retinac_model *m, const float *frames, int64_t T, float *out, char *err,
                    size_t errlen)
{
    const rc_ir *ir = m->ck.ir;
    if (T <= ir->history) {
        snprintf(err, errlen, "stimulus has %lld frames, the model needs more than %d",
                 (long long)T, ir->history);
        return -1;
    }
    size_t n = (size_t)T * (size_t)ir->in.h * (size_t)ir->in.w;
    float *z = malloc(n * sizeof *z);
    if (!z) { snprintf(err, errlen, "out of memory for %lld frames", (long long)T); return -1; }
    const float mean = (float)m->ck.norm_mean, sd = (float)m->ck.norm_std;
    for (size_t i = 0; i < n; i++) z[i] = (frames[i] - mean) / sd;
    int rc = rc_predict_frames(m->be, &m->ck, z, T, out, err, errlen);
    free(z);
    return rc;
}

/* Frame size on disk (before any crop) of the movie dataset key: (T,H,W) or (1,T,H,W). */
static int movie_frame_size(const char *path, const char *key, int *H, int *W, char *err,
                            size_t errlen)
{
    char k[200];
    snprintf(k, sizeof k, "%s%s", (key && key[0] == '/') ? "" : "/", key ? key : "stimulus");
    rc_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { snprintf(err, errlen, "%s: cannot open (missing, unreadable or not HDF5)", path); return -1; }
    rc_h5_desc d;
    int rc = rc_h5_describe(f, path, k, 0, &d, err, errlen);
    if (H5Fclose(f) < 0 && rc == 0) { snprintf(err, errlen, "%s: close failed", path); rc = -1; }
    if (rc < 0) return -1;
    if (d.rank != 3 && !(d.rank == 4 && d.dims[0] == 1)) {
        snprintf(err, errlen, "%s: %s: rank %d, expected a (T,H,W) or (1,T,H,W) movie", path, k, d.rank);
        return -1;
    }
    *H = (int)d.dims[d.rank - 2];
    *W = (int)d.dims[d.rank - 1];
    return 0;
}

int retinac_predict_file(retinac_model *m, const char *stim_path, const char *key,
                         const char *out_path, char *err, size_t errlen)
{
    const rc_checkpoint *ck = &m->ck;
    const rc_ir *ir = ck->ir;
    int crop = ir->crop, row = -1, col = -1;
    if (crop > 0) { row = ck->crop_row0 + crop / 2; col = ck->crop_col0 + crop / 2; }
    float *frames = NULL, *out = NULL;
    int64_t T;
    int H, W, rc = -1;
    /* the crop window is a place in the training frame: a movie of another frame size would be
     * cropped somewhere else, not where the model looked; refuse it before reading. A movie of
     * exactly the crop size is taken as already cropped (what retinac_predict takes). */
    if (crop > 0) {
        if (movie_frame_size(stim_path, key, &H, &W, err, errlen) < 0) return -1;
        if (H == crop && W == crop && (H != ir->height || W != ir->width)) {
            crop = 0;
        } else if (H != ir->height || W != ir->width) {
            snprintf(err, errlen, "%s: frames are %dx%d, but the model of %s was trained on %dx%d "
                     "frames cropped to %dx%d at (%d,%d): give the movie at the training frame size "
                     "(or already cropped to %dx%d)", stim_path, H, W, ck->path, ir->height,
                     ir->width, crop, crop, ck->crop_row0, ck->crop_col0, crop, crop);
            return -1;
        }
    }
    if (rc_stimulus_read(stim_path, key, crop, row, col, ck->norm_mean, ck->norm_std, &frames,
                         &T, &H, &W, err, errlen) < 0)
        return -1;
    if (H != ir->in.h || W != ir->in.w) {
        snprintf(err, errlen, "%s: frames are %dx%d, the model of %s expects %dx%d", stim_path, H,
                 W, ck->path, ir->in.h, ir->in.w);
        goto out;
    }
    if (T <= ir->history) {
        snprintf(err, errlen, "%s: %lld frames, the model needs more than %d", stim_path,
                 (long long)T, ir->history);
        goto out;
    }
    int64_t n = T - ir->history;
    out = malloc((size_t)n * (size_t)ck->cells * sizeof *out);
    if (!out) { snprintf(err, errlen, "out of memory"); goto out; }
    if (rc_predict_frames(m->be, ck, frames, T, out, err, errlen) < 0) goto out;

    hid_t f = rc_h5_mem_create(out_path, H5P_DEFAULT, err, errlen);   /* fsutil.h */
    if (f < 0) goto out;
    int64_t dims[2] = {n, ck->cells}, d1[1] = {ck->cells};
    int bad = rc_h5_write_all(f, "/response", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, out) < 0 ||
              rc_h5_write_all(f, "/cell_ids", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, ck->cell_ids) < 0 ||
              rc_h5_attr_set_string(f, "/response", "model", ir->name) < 0 ||
              rc_h5_attr_set_string(f, "/response", "spec_hash", ck->spec_hash) < 0 ||
              rc_h5_attr_set_string(f, "/response", "stimulus", stim_path) < 0 ||
              rc_h5_attr_set_int64(f, "/response", "history", ir->history) < 0 ||
              rc_h5_attr_set_int64(f, "/response", "first_frame", ir->history) < 0;
    if (bad) snprintf(err, errlen, "%s: HDF5 could not build the file (in memory)", out_path);
    if (rc_h5_mem_commit(f, out_path, !bad, err, errlen) < 0) goto out;
    rc = 0;
out:
    free(frames);
    free(out);
    return rc;
}
