/* test_trust_meta.c — metadata outside the hashed model text is not trusted (issue 16, class 4).
 * On small `retinac synth` recordings (50x50 frames, 4 or 5 cells) and a tiny BN-CNN that crops
 * 16x16 around its first cell (trained for one epoch on the reference backend, ~1 s):
 *   - a checkpoint with a tampered history_len, crop window, cell ids, centres, fingerprint, a
 *     NaN/Inf tensor or a bad normalization is refused on load with the file and the key;
 *   - a checkpoint without a fingerprint (written before them) still loads, and eval warns;
 *   - the fingerprint survives copying the file and changes with the content;
 *   - eval and train --resume refuse another recording (other seed, other cell count, other
 *     cells) naming both files and what differs; --allow-other-recording overrides, warning;
 *   - a finished search trial is not reported against another recording;
 *   - a spec with a crop is refused on frames of another size before any work, and predict
 *     refuses a movie whose frames are neither the training size nor the crop size.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "data.h"
#include "data_fp.h"
#include "h5util.h"
#include "kit.h"

static char dir[256];

static const char crop_spec[] =
    "return model \"tinycrop\" {\n"
    "  input = { history = 8, height = %d, width = %d, crop = 16 },\n"
    "  conv { channels = 3, kernel = 5 },\n"
    "  relu {},\n"
    "  conv { channels = 3, kernel = 3 },\n"
    "  relu {},\n"
    "  dense { bias = false },\n"
    "  batchnorm { over = \"unit\" },\n"
    "  softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7 },\n"
    "%s"
    "}\n";

/* DIR/NAME.h5: a small synthetic recording. */
static void synth(const char *name, int seed, int cells)
{
    char out[4096];
    int st = kit_rc_text(out, sizeof out, "synth -o %s/%s.h5 --seed %d --cells %d --frames 1200 "
                         "--test-frames 300 --repeats 3 --calib-frames 300 --quiet", dir, name, seed, cells);
    cr_assert_eq(st, 0, "synth %s: %s", name, out);
}

/* The crop spec for frames of size hw (search: an extra search section). */
static void spec_file(const char *name, int hw, const char *extra)
{
    char text[2048], path[400];
    snprintf(text, sizeof text, crop_spec, hw, hw, extra);
    snprintf(path, sizeof path, "%s/%s.lua", dir, name);
    kit_write_text(path, text);
}

/* Setup: a.h5 (seed 1, 4 cells) and DIR/run trained on it for one epoch. */
static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_trust");
    synth("a", 1, 4);
    spec_file("crop", 50, "");
    char out[8192];
    int st = kit_rc_text(out, sizeof out, "train %s/crop.lua --data %s/a.h5 -o %s/run --backend ref "
                         "--threads 1 -q", dir, dir, dir);
    cr_assert_eq(st, 0, "train: %s", out);
}

/* ---------------------------------------------------------------- tampering with HDF5 */

typedef enum { T_ATTR_I64, T_ATTR_F64, T_ATTR_STR, T_DEL_FP, T_DS_F32, T_DS_I32 } tamper_kind;

typedef struct {
    const char *what;       /* case name */
    tamper_kind kind;
    const char *obj, *name; /* attribute: object and name; dataset: path (name NULL) */
    double value;           /* new value (element `index` for datasets) */
    int index;
    const char *str;
    const char *expect;     /* in the message (besides the file name); NULL: must load */
} tamper;

static void tamper_file(const char *path, const tamper *t)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s", path);
    switch (t->kind) {
    case T_ATTR_I64: cr_assert_eq(rc_h5_attr_set_int64(f, t->obj, t->name, (int64_t)t->value), 0); break;
    case T_ATTR_F64: cr_assert_eq(rc_h5_attr_set_double(f, t->obj, t->name, t->value), 0); break;
    case T_ATTR_STR: cr_assert_eq(rc_h5_attr_set_string(f, t->obj, t->name, t->str), 0); break;
    case T_DEL_FP: {
        const char *names[] = {"fingerprint", "fingerprint_version", "file_cells", "frame_h",
                               "frame_w", "train_frames", "test_frames"};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            cr_assert_geq(H5Adelete_by_name(f, "/data", names[i], H5P_DEFAULT), 0, "%s", names[i]);
        break;
    }
    case T_DS_F32:
    case T_DS_I32: {
        hid_t d = H5Dopen2(f, t->obj, H5P_DEFAULT);
        cr_assert_geq(d, 0, "%s", t->obj);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        cr_assert(n > t->index);
        int is_f = t->kind == T_DS_F32;
        void *buf = malloc((size_t)n * 4);
        cr_assert(buf);
        hid_t mt = is_f ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT;
        cr_assert_geq(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
        if (is_f) ((float *)buf)[t->index] = (float)t->value;
        else ((int *)buf)[t->index] = (int)t->value;
        cr_assert_geq(H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
        free(buf);
        H5Sclose(sp);
        H5Dclose(d);
        break;
    }
    }
    cr_assert_geq(H5Fclose(f), 0);
}

Test(trust_meta, tampered_checkpoint_values_are_refused_with_file_and_key, .init = setup,
     .fini = kit_cleanup, .timeout = 120)
{
    char best[400], err[1024];
    snprintf(best, sizeof best, "%s/run/best.h5", dir);
    rc_checkpoint ck;
    cr_assert_eq(rc_ckpt_load(best, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ck.fp.version, RC_FP_VERSION, "training records the recording's fingerprint");
    cr_assert_eq(ck.fp.file_cells, 4);
    cr_assert(ck.fp.frame_h == 50 && ck.fp.frame_w == 50);
    cr_assert_eq(ck.fp.train_frames, 1200);
    cr_assert(ck.centers, "the crop model stores the cells' centres");
    cr_assert(ck.ir->n_state > 0);
    char state0[128], var[128];
    snprintf(state0, sizeof state0, "/state/%s", ck.ir->state[0].name);
    snprintf(var, sizeof var, "/state/%s", ck.ir->state[1].name);
    cr_assert(strstr(var, "running_var"), "%s", var);
    rc_ckpt_free(&ck);

    const tamper cases[] = {
        {"untouched", T_ATTR_I64, "/", "epoch", 1, 0, NULL, NULL},
        {"history_len", T_ATTR_I64, "/", "history_len", 12, 0, NULL, "/: history_len: 12"},
        {"crop row beyond the frame", T_ATTR_I64, "/", "crop_row0", 40, 0, NULL, "crop_row0"},
        {"crop col negative", T_ATTR_I64, "/", "crop_col0", -1, 0, NULL, "crop_col0"},
        {"cell id twice", T_DS_I32, "/data/cell_ids", NULL, 0, 1, NULL, "/data/cell_ids: cell 0 listed twice"},
        {"cell id beyond the recording", T_DS_I32, "/data/cell_ids", NULL, 7, 3, NULL, "/data/cell_ids"},
        {"cell id negative", T_DS_I32, "/data/cell_ids", NULL, -2, 2, NULL, "/data/cell_ids"},
        {"centre outside the frame", T_DS_I32, "/data/centers", NULL, 500, 0, NULL, "/data/centers"},
        {"NaN weight", T_DS_F32, "/params/1.conv.weight", NULL, NAN, 7, NULL, "/params/1.conv.weight: non-finite value (NaN) at element 7"},
        {"Inf BN mean", T_DS_F32, state0, NULL, INFINITY, 2, NULL, state0},
        {"negative BN variance", T_DS_F32, var, NULL, -0.5, 0, NULL, "negative value"},
        {"NaN Adam moment", T_DS_F32, "/optim/m/1.conv.bias", NULL, NAN, 0, NULL, "/optim/m/1.conv.bias"},
        {"norm_std 0", T_ATTR_F64, "/", "norm_std", 0, 0, NULL, "/: norm_std: 0"},
        {"norm_std Inf", T_ATTR_F64, "/", "norm_std", INFINITY, 0, NULL, "/: norm_std: inf"},
        {"norm_mean NaN", T_ATTR_F64, "/", "norm_mean", NAN, 0, NULL, "/: norm_mean: nan"},
        {"lr NaN", T_ATTR_F64, "/", "lr", NAN, 0, NULL, "/: lr"},
        {"fingerprint not a hash", T_ATTR_STR, "/data", "fingerprint", 0, 0, "0123", "/data: fingerprint"},
        {"fingerprint frame size", T_ATTR_I64, "/data", "frame_h", 40, 0, NULL, "/data: frame_h x frame_w 40x50"},
        {"fingerprint cells", T_ATTR_I64, "/data", "file_cells", 2, 0, NULL, "/data: file_cells 2"},
        {"no fingerprint (older checkpoint)", T_DEL_FP, NULL, NULL, 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const tamper *t = &cases[i];
        char path[500];
        snprintf(path, sizeof path, "%s/case%zu.h5", dir, i);
        kit_copy_file(best, path);
        tamper_file(path, t);
        int rc = rc_ckpt_load(path, &ck, err, sizeof err);
        if (!t->expect) {
            cr_assert_eq(rc, 0, "%s: %s", t->what, err);
            if (t->kind == T_DEL_FP) cr_assert_eq(ck.fp.version, 0, "%s", t->what);
            rc_ckpt_free(&ck);
            continue;
        }
        cr_assert_eq(rc, -1, "%s: loaded", t->what);
        cr_assert(strstr(err, path), "%s: the message names the file: %s", t->what, err);
        cr_assert(strstr(err, t->expect), "%s: expected '%s' in: %s", t->what, t->expect, err);
    }
}

Test(trust_meta, older_checkpoint_without_fingerprint_is_evaluated_with_a_warning, .init = setup,
     .fini = kit_cleanup, .timeout = 120)
{
    char path[400], out[8192];
    snprintf(path, sizeof path, "%s/old.h5", dir);
    char best[400];
    snprintf(best, sizeof best, "%s/run/best.h5", dir);
    kit_copy_file(best, path);
    const tamper del = {"no fingerprint", T_DEL_FP, NULL, NULL, 0, 0, NULL, NULL};
    tamper_file(path, &del);
    int st = kit_rc_text(out, sizeof out, "eval %s --data %s/a.h5 --backend ref", path, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "warning") && strstr(out, "records no recording fingerprint"), "%s", out);
    cr_assert(strstr(out, "\nmean"), "%s", out);
}

Test(trust_meta, fingerprint_survives_a_copy_and_sees_the_content, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char a[400], copy[400], err[1024];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(copy, sizeof copy, "%s/sub_copy.h5", dir);
    kit_copy_file(a, copy);
    rc_data_fp fa, fc, fx;
    rc_data *d;
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.val_fraction = -1;
    o.history = 8;
    const char *paths[2] = {a, copy};
    rc_data_fp *fps[2] = {&fa, &fc};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rc_data_open(paths[i], &o, &d, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_data_fp_compute(d, fps[i], err, sizeof err), 0, "%s", err);
        rc_data_close(d);
    }
    char what[600];
    cr_assert_eq(rc_data_fp_diff(&fa, &fc, what, sizeof what), 0, "a copy differs: %s", what);
    cr_assert_eq(strlen(fa.sha256), 64);
    /* one test response changed: another recording */
    const tamper one = {"response", T_DS_F32, "/test/response/firing_rate_10ms", NULL, 123.0, 5, NULL, NULL};
    tamper_file(copy, &one);
    cr_assert_eq(rc_data_open(copy, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_data_fp_compute(d, &fx, err, sizeof err), 0, "%s", err);
    rc_data_close(d);
    cr_assert_eq(rc_data_fp_diff(&fa, &fx, what, sizeof what), 1);
    cr_assert(strstr(what, "content"), "%s", what);
    /* the same file with the cells in another order: another fingerprint */
    int cells[4] = {1, 0, 2, 3};
    o.cells = cells;
    o.n_cells = 4;
    cr_assert_eq(rc_data_open(a, &o, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_data_fp_compute(d, &fx, err, sizeof err), 0, "%s", err);
    rc_data_close(d);
    cr_assert_neq(strcmp(fa.sha256, fx.sha256), 0, "the cells' order is part of the fingerprint");
}

Test(trust_meta, eval_refuses_another_recording_unless_allowed, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char out[8192];
    synth("b", 2, 4);      /* same shape and cell count, another retina and movie */
    synth("c", 1, 5);      /* another cell count */
    /* a copy of the training recording elsewhere is the same recording: no warning */
    char a[400], copy[400];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(copy, sizeof copy, "%s/moved.h5", dir);
    kit_copy_file(a, copy);
    int st = kit_rc_text(out, sizeof out, "eval %s/run --data %s --backend ref", dir, copy);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_null(strstr(out, "warning"), "%s", out);

    st = kit_rc_text(out, sizeof out, "eval %s/run --data %s/b.h5 --backend ref", dir, dir);
    cr_assert_eq(st, 1, "eval on another recording must fail:\n%s", out);
    cr_assert(strstr(out, "b.h5 is not the recording") && strstr(out, "run/best.h5") &&
              strstr(out, "a.h5") && strstr(out, "content") && strstr(out, "--allow-other-recording"),
              "%s", out);
    cr_assert_null(strstr(out, "\nmean"), "no metrics may be printed: %s", out);

    st = kit_rc_text(out, sizeof out, "eval %s/run --data %s/c.h5 --backend ref", dir, dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "cells on disk 4 vs 5"), "%s", out);

    st = kit_rc_text(out, sizeof out, "eval %s/run --data %s/b.h5 --backend ref --allow-other-recording",
                     dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "warning: ") && strstr(out, "b.h5 is not the recording"), "%s", out);
    cr_assert(strstr(out, "\nmean"), "%s", out);
}

Test(trust_meta, eval_refuses_a_checkpoint_whose_cell_ids_were_changed, .init = setup,
     .fini = kit_cleanup, .timeout = 120)
{
    /* swapped ids are valid and distinct: only the fingerprint can tell the cells apart */
    char best[400], out[8192];
    snprintf(best, sizeof best, "%s/run/best.h5", dir);
    const tamper t0 = {"id", T_DS_I32, "/data/cell_ids", NULL, 1, 0, NULL, NULL};
    const tamper t1 = {"id", T_DS_I32, "/data/cell_ids", NULL, 0, 1, NULL, NULL};
    tamper_file(best, &t0);
    tamper_file(best, &t1);
    int st = kit_rc_text(out, sizeof out, "eval %s/run --backend ref", dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "is not the recording") && strstr(out, "content"), "%s", out);
}

Test(trust_meta, resume_refuses_another_recording_unless_allowed, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char out[8192], err[1024], ckp[400];
    synth("b", 2, 4);
    snprintf(ckp, sizeof ckp, "%s/run/checkpoint.h5", dir);
    int st = kit_rc_text(out, sizeof out, "train -o %s/run --resume --epochs 2 --data %s/b.h5 -q --no-eval",
                         dir, dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "b.h5 is not the recording") && strstr(out, "checkpoint.h5"), "%s", out);
    rc_checkpoint ck;
    cr_assert_eq(rc_ckpt_load(ckp, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ck.epoch, 1, "the refused resume trained nothing");
    char fp_a[65];
    memcpy(fp_a, ck.fp.sha256, sizeof fp_a);
    rc_ckpt_free(&ck);

    st = kit_rc_text(out, sizeof out, "train -o %s/run --resume --epochs 2 --data %s/b.h5 -q --no-eval "
                     "--allow-other-recording", dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "warning: ") && strstr(out, "b.h5 is not the recording"), "%s", out);
    cr_assert_eq(rc_ckpt_load(ckp, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ck.epoch, 2);
    cr_assert_neq(strcmp(ck.fp.sha256, fp_a), 0, "the checkpoint now records the recording it continued on");
    rc_ckpt_free(&ck);
    /* the run now belongs to b.h5: going back to a.h5 needs the flag again */
    st = kit_rc_text(out, sizeof out, "train -o %s/run --resume --epochs 3 --data %s/a.h5 -q --no-eval",
                     dir, dir);
    cr_assert_eq(st, 1, "%s", out);
}

Test(trust_meta, crop_spec_on_frames_of_another_size_is_refused_before_any_work, .init = setup,
     .fini = kit_cleanup, .timeout = 120)
{
    char out[8192], p[400];
    spec_file("crop40", 40, "");       /* declares 40x40 frames; the recording has 50x50 */
    int st = kit_rc_text(out, sizeof out, "train %s/crop40.lua --data %s/a.h5 -o %s/r40 --backend ref -q",
                         dir, dir, dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "a.h5: frames are 50x50") && strstr(out, "takes 40x40 frames"), "%s", out);
    snprintf(p, sizeof p, "%s/r40/checkpoint.h5", dir);
    cr_assert_neq(access(p, F_OK), 0, "no checkpoint may be written");

    /* predict: the training frame size or the crop size, nothing else */
    char movie[400];
    snprintf(movie, sizeof movie, "%s/m40.h5", dir);
    hid_t f = H5Fcreate(movie, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    float *x = calloc(30 * 40 * 40, sizeof *x);
    cr_assert(x);
    int64_t dims[3] = {30, 40, 40};
    cr_assert_eq(rc_h5_write_all(f, "/stimulus", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dims, x), 0);
    int64_t d16[3] = {30, 16, 16};
    cr_assert_eq(rc_h5_write_all(f, "/cropped", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d16, x), 0);
    free(x);
    cr_assert_geq(H5Fclose(f), 0);
    st = kit_rc_text(out, sizeof out, "predict %s/run --stimulus %s -o %s/p.h5 --backend ref", dir,
                     movie, dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "frames are 40x40") && strstr(out, "50x50") && strstr(out, "16x16"), "%s", out);
    st = kit_rc_text(out, sizeof out, "predict %s/run --stimulus %s --key cropped -o %s/p.h5 --backend ref",
                     dir, movie, dir);
    cr_assert_eq(st, 0, "a movie of the crop size is taken as cropped: %s", out);
    st = kit_rc_text(out, sizeof out, "predict %s/run --stimulus %s/a.h5 --key test/stimulus -o %s/p.h5 "
                     "--backend ref", dir, dir, dir);
    cr_assert_eq(st, 0, "%s", out);
}

Test(trust_meta, search_rerun_on_another_recording_is_refused, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char out[16384];
    synth("b", 2, 4);
    spec_file("search", 50, "  search = { grid = { seed = { 7 } } },\n");
    int st = kit_rc_text(out, sizeof out, "search %s/search.lua --data %s/a.h5 -o %s/s --backend ref "
                         "--threads 1 -q", dir, dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    st = kit_rc_text(out, sizeof out, "search %s/search.lua --data %s/b.h5 -o %s/s --backend ref "
                     "--threads 1 -q", dir, dir, dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "b.h5 is not the recording finished trial"), "%s", out);
    st = kit_rc_text(out, sizeof out, "search %s/search.lua --data %s/b.h5 -o %s/s --backend ref "
                     "--threads 1 -q --allow-other-recording", dir, dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strstr(out, "warning: "), "%s", out);
}
