/* test_ckpt_compat.c — checkpoints written by an earlier retinac still load and predict the
 * same (issue 14). The fixture tests/fixtures/ckpt_v1/ was written by the binary of commit
 * 7f6274d, the last one before defined layers (RC_LAYER_DEF) entered the IR (make.sh there
 * regenerates it): two trained checkpoints (tiny_crop: conv/relu/dense/batchnorm/softplus on a
 * 16x16 crop; tiny_bn_noise: the BN-CNN's conv/batchnorm/noise/relu sequence on a 12x12 crop),
 * the canonical IR text and hash that old `retinac check` gave for each spec, a 12-frame
 * uncropped 50x50 stimulus and the old `retinac predict` output of each checkpoint on it with
 * the ref and the c backend.
 *
 * Invariants checked, for each checkpoint, with the current code:
 *   - rc_ckpt_load accepts it (format_version, hashes, shapes, every validated value) and the
 *     run state it carries (epochs, cells, optimizer) reads back as written;
 *   - canonical text and hash are stable: the old spec text parses and formats to the same bytes
 *     and hashes to the old hash; the loaded model formats to the /model text the old binary
 *     stored; the current Lua front end on the same spec gives the old hash once the train
 *     fields added since are set to their reference values (and a new hash with the defaults);
 *   - predictions on the committed stimulus (the crop path included: the movie is uncropped)
 *     equal the old binary's per element to 1e-6 relative, per backend (ref against old ref,
 *     c against old c), through the library API and through `retinac predict`.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "ir.h"
#include "kit.h"
#include "retinac.h"
#include "spec.h"

#define FIX RC_SRC_DIR "/tests/fixtures/ckpt_v1"
#define CELLS 3
#define STIM_FRAMES 12
#define HISTORY 8
#define REL_TOL 1e-6

static const char *const models[] = {"tiny_crop", "tiny_bn_noise"};
#define N_MODELS (int)(sizeof models / sizeof models[0])

static char tmpdir[256];

/* A private JIT cache unless `make test` gave one, and a temp dir for outputs. */
static void setup(void)
{
    kit_tmpdir(tmpdir, sizeof tmpdir, "rc_ckcompat");
    if (!getenv("RETINAC_CACHE_DIR")) cr_assert_eq(setenv("RETINAC_CACHE_DIR", kit_path(tmpdir, "cache"), 1), 0);
}

TestSuite(ckpt_compat, .init = setup, .fini = kit_cleanup);

static const char *fix(const char *model, const char *suffix)
{
    return kit_path(FIX, "%s%s", model, suffix);
}

/* The old hash (one line of 64 hex digits). */
static void old_hash(const char *model, char hex[65])
{
    char *t = kit_read_text(fix(model, ".hash"));
    cr_assert_eq(strlen(t), 65, "%s.hash: expected 64 hex digits and a newline", model);
    cr_assert_eq(t[64], '\n');
    memcpy(hex, t, 64);
    hex[64] = 0;
    free(t);
}

/* A scalar string dataset (variable-length or fixed), malloc'd. */
static char *read_h5_string(const char *file, const char *path)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "cannot open %s", file);
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    cr_assert_geq(ds, 0, "%s: no %s", file, path);
    hid_t ty = H5Dget_type(ds);
    cr_assert_eq(H5Tget_class(ty), H5T_STRING, "%s: %s is not a string", file, path);
    char *out = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ty) > 0) {
        char *s = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        cr_assert_geq(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s), 0);
        cr_assert(s);
        out = strdup(s);
        H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(ty);
        out = calloc(sz + 1, 1);
        cr_assert(out);
        H5Tset_size(mt, sz + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        cr_assert_geq(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), 0);
    }
    cr_assert(out);
    H5Tclose(mt);
    H5Tclose(ty);
    H5Dclose(ds);
    H5Fclose(f);
    return out;
}

/* /response (rows, cols) float32 and /cell_ids (cols) of a predict output. */
static float *read_response(const char *file, int64_t *rows, int64_t *cols, int *cell_ids)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "cannot open %s", file);
    hid_t ds = H5Dopen2(f, "/response", H5P_DEFAULT);
    cr_assert_geq(ds, 0, "%s: no /response", file);
    hid_t sp = H5Dget_space(ds);
    hsize_t d[2];
    cr_assert_eq(H5Sget_simple_extent_ndims(sp), 2, "%s: /response is not 2-D", file);
    H5Sget_simple_extent_dims(sp, d, NULL);
    *rows = (int64_t)d[0];
    *cols = (int64_t)d[1];
    float *out = malloc((size_t)(d[0] * d[1]) * sizeof *out);
    cr_assert(out);
    cr_assert_geq(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), 0);
    H5Sclose(sp);
    H5Dclose(ds);
    hid_t ci = H5Dopen2(f, "/cell_ids", H5P_DEFAULT);
    cr_assert_geq(ci, 0, "%s: no /cell_ids", file);
    cr_assert_eq(*cols, CELLS);
    cr_assert_geq(H5Dread(ci, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, cell_ids), 0);
    H5Dclose(ci);
    H5Fclose(f);
    return out;
}

/* new equals old per element to REL_TOL relative (shapes and cell ids exactly). */
static void assert_same_response(const char *new_file, const char *old_file, const char *what)
{
    int64_t nr, nc, orows, ocols;
    int nid[CELLS], oid[CELLS];
    float *a = read_response(new_file, &nr, &nc, nid);
    float *b = read_response(old_file, &orows, &ocols, oid);
    cr_assert_eq(orows, STIM_FRAMES - HISTORY, "%s: the old output has %lld rows", what, (long long)orows);
    cr_assert(nr == orows && nc == ocols, "%s: shape (%lld,%lld), the old binary wrote (%lld,%lld)", what,
              (long long)nr, (long long)nc, (long long)orows, (long long)ocols);
    cr_assert_arr_eq(nid, oid, sizeof nid, "%s: cell ids differ", what);
    double worst = 0;
    for (int64_t i = 0; i < nr * nc; i++) {
        cr_assert(isfinite(a[i]) && isfinite(b[i]) && b[i] > 0, "%s: element %lld: %g vs old %g", what,
                  (long long)i, a[i], b[i]);
        double rel = fabs((double)a[i] - b[i]) / fabs((double)b[i]);
        if (rel > worst) worst = rel;
        cr_assert_leq(rel, REL_TOL, "%s: element (%lld,%lld) = %.9g, the old binary gave %.9g (rel %.3g)",
                      what, (long long)(i / nc), (long long)(i % nc), a[i], b[i], rel);
    }
    cr_log_info("%s: %lld values, worst relative difference %.3g", what, (long long)(nr * nc), worst);
    free(a);
    free(b);
}

Test(ckpt_compat, old_checkpoints_load_with_their_state)
{
    for (int k = 0; k < N_MODELS; k++) {
        const char *m = models[k];
        rc_checkpoint ck;
        char err[1024], hex[65];
        cr_assert_eq(rc_ckpt_load(fix(m, ".h5"), &ck, err, sizeof err), 0, "%s: %s", m, err);
        old_hash(m, hex);
        cr_assert_str_eq(ck.spec_hash, hex, "%s: spec_hash", m);
        cr_assert_str_eq(ck.ir->name, m);
        cr_assert_eq(ck.cells, CELLS, "%s: cells %d", m, ck.cells);
        cr_assert_eq(ck.epoch, 2, "%s: epoch %lld", m, (long long)ck.epoch);
        cr_assert_eq(ck.n_hist, 2, "%s: %d history rows", m, ck.n_hist);
        cr_assert(ck.has_optim && ck.opt_step > 0, "%s: the Adam state is missing", m);
        cr_assert(ck.fp.version > 0, "%s: the recording fingerprint is missing", m);
        cr_assert(ck.norm_std > 0 && isfinite(ck.norm_mean), "%s: normalization", m);
        cr_assert_gt(ck.ir->params_total, 0);
        cr_assert_gt(ck.ir->state_total, 0, "%s: batchnorm running statistics expected", m);
        cr_assert_eq(rc_ckpt_validate(&ck, fix(m, ".h5"), err, sizeof err), 0, "%s: %s", m, err);
        for (int i = 0; i < ck.ir->n_layers; i++)
            cr_assert_neq(ck.ir->layers[i].kind, RC_LAYER_DEF, "%s: layer %d became a defined layer", m, i);
        rc_ckpt_free(&ck);
    }
}

Test(ckpt_compat, canonical_text_and_hash_are_the_old_ones)
{
    for (int k = 0; k < N_MODELS; k++) {
        const char *m = models[k];
        char err[1024], hex[65], h[65];
        old_hash(m, hex);

        /* the old `check --emit-ir` text: parses, formats to the same bytes, same hash */
        char *old_text = kit_read_text(fix(m, ".spec.ir"));
        rc_ir *ir = calloc(1, sizeof *ir);
        cr_assert(ir);
        cr_assert_eq(rc_ir_parse(ir, old_text, fix(m, ".spec.ir"), err, sizeof err), 0, "%s: %s", m, err);
        char *again = rc_ir_format(ir);
        cr_assert(again);
        cr_assert_str_eq(again, old_text, "%s: the canonical text of the old spec changed:\n%s", m, again);
        rc_ir_hash(ir, h);
        cr_assert_str_eq(h, hex, "%s: hash of the old spec text", m);
        free(again);

        /* the checkpoint's /spec is that text, and its /model formats back to itself */
        char *spec = read_h5_string(fix(m, ".h5"), "/spec");
        cr_assert_str_eq(spec, old_text, "%s: /spec", m);
        char *model = read_h5_string(fix(m, ".h5"), "/model");
        rc_checkpoint ck;
        cr_assert_eq(rc_ckpt_load(fix(m, ".h5"), &ck, err, sizeof err), 0, "%s: %s", m, err);
        char *loaded = rc_ir_format(ck.ir);
        cr_assert(loaded);
        cr_assert_str_eq(loaded, model, "%s: the loaded model formats to\n%s\nthe old binary stored\n%s", m,
                         loaded, model);
        free(loaded);
        rc_ckpt_free(&ck);

        /* the current Lua front end on the same spec gives the old model: the old hash once
         * the train fields added since (issue 20: output_init, bn_stats, output_lr, whose spec defaults
         * are new behaviour and so, rightly, a new hash) are set to their reference values,
         * which is all that differs */
        memset(ir, 0, sizeof *ir);
        cr_assert_eq(rc_spec_check(fix(m, ".lua"), CELLS, ir, err, sizeof err), 0, "%s: %s", m, err);
        rc_ir_hash(ir, h);
        cr_assert_str_neq(h, hex, "%s.lua: the new defaults train differently: a new hash", m);
        ir->train.output_init = RC_OUTPUT_INIT_TORCH;
        ir->train.bn_stats = RC_BN_STATS_EMA;
        ir->train.output_lr = 0;
        rc_ir_hash(ir, h);
        cr_assert_str_eq(h, hex, "%s.lua: the current front end's hash with the reference's values", m);

        free(model);
        free(spec);
        free(ir);
        free(old_text);
    }
}

Test(ckpt_compat, predictions_equal_the_old_binary_through_the_api)
{
    static const char *const backends[] = {"ref", "c"};
    for (int k = 0; k < N_MODELS; k++)
        for (int b = 0; b < 2; b++) {
            const char *m = models[k];
            char err[1024], what[128];
            snprintf(what, sizeof what, "%s (backend %s, API)", m, backends[b]);
            retinac_model *rm = retinac_open(fix(m, ".h5"), backends[b], err, sizeof err);
            cr_assert(rm, "%s: %s", what, err);
            cr_assert_str_eq(retinac_backend_name(rm), backends[b]);
            int hist, h, w, cells;
            retinac_shape(rm, &hist, &h, &w, &cells);
            cr_assert(hist == HISTORY && cells == CELLS, "%s: history %d, cells %d", what, hist, cells);
            const char *out = kit_path(tmpdir, "%s_%s.h5", m, backends[b]);
            cr_assert_eq(retinac_predict_file(rm, FIX "/stim.h5", NULL, out, err, sizeof err), 0, "%s: %s",
                         what, err);
            retinac_close(rm);
            char old[64];
            snprintf(old, sizeof old, ".pred_%s.h5", backends[b]);
            assert_same_response(out, fix(m, old), what);
        }
}

Test(ckpt_compat, predictions_equal_the_old_binary_through_the_cli)
{
    for (int k = 0; k < N_MODELS; k++) {
        const char *m = models[k];
        const char *out = kit_path(tmpdir, "%s_cli.h5", m);
        kit_out r = kit_rc_all("predict %s --stimulus %s -o %s --backend ref --threads 1", fix(m, ".h5"),
                               FIX "/stim.h5", out);
        cr_assert_eq(r.status, 0, "retinac predict %s: %s", m, r.out);
        kit_out_free(&r);
        char what[128];
        snprintf(what, sizeof what, "%s (backend ref, retinac predict)", m);
        assert_same_response(out, fix(m, ".pred_ref.h5"), what);
    }
}
