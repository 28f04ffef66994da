/* test_data.c — the data layer (runtime/data/data.h): round trips of every layout (Baccus with
 * uint8/float32/float64 frames, 3-D and cellNN repeats, openretina with in-file and .npy
 * stimuli), exact label alignment y[i] = rate[i + history], statistics, validation splits
 * (contiguous blocks with no shared frame, the reference's random split), seeded shuffles,
 * bounded-memory streaming (chunks) against the resident path, crops, cell subsets, the
 * standalone stimulus reader, a bad-file corpus with the messages checked, and `retinac info`.
 *
 * Fixture files are written here with the plain HDF5 C API. Frames encode their own index:
 * pixel (0,0) = t % 200, pixel (0,1) = t / 200 (+ 50 * segment for openretina), the others a
 * fixed pattern; rates encode (cell, frame): rate[c][t] = 10000 c + t (+0.5 in the test split),
 * repeats 100000 r + 10000 c + t. So every batch can be checked against its source exactly.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "data.h"
#include "kit.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    kit_tmpdir(tmpdir, sizeof tmpdir, "rc_data");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

TestSuite(data, .init = mk_tmp, .fini = kit_cleanup);

static const char *tpath(const char *name) { return kit_path(tmpdir, "%s", name); }

/* ---------------------------------------------------------------------------------------- */
/* Fixture writer                                                                             */

typedef struct {
    int T, Tt, H, W, C, R;
    hid_t stim_type;      /* H5T_NATIVE_UCHAR, _FLOAT, _DOUBLE */
    int repeats;          /* 0 none, 1 (R,C,T) dataset, 2 cellNN */
    int centers;
    int rate20;           /* also write firing_rate_20ms (= rate + 0.25) */
} fx;

static fx fx_default(void)
{
    fx f = {.T = 600, .Tt = 200, .H = 8, .W = 10, .C = 3, .R = 4, .stim_type = H5T_NATIVE_UCHAR,
            .repeats = 1, .centers = 1, .rate20 = 0};
    return f;
}

static double pix(int64_t t, int r, int c, int seg)
{
    if (r == 0 && c == 0) return (double)(t % 200);
    if (r == 0 && c == 1) return (double)(t / 200 + 50 * seg);
    return (double)((t * 7 + r * 3 + c * 5) % 251);
}

static void put(hid_t f, const char *key, hid_t mtype, hid_t ftype, int rank, const hsize_t *dims, const void *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(f, key, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(ds >= 0, "create %s", key);
    cr_assert(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "write %s", key);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

static void *frames_buf(int T, int H, int W, hid_t type, int seg)
{
    size_t n = (size_t)T * H * W;
    if (type == H5T_NATIVE_UCHAR) {
        unsigned char *b = malloc(n);
        for (size_t i = 0; i < n; i++) b[i] = (unsigned char)pix((int64_t)(i / (H * W)), (int)(i / W % H), (int)(i % W), seg);
        return b;
    }
    if (type == H5T_NATIVE_FLOAT) {
        float *b = malloc(n * sizeof *b);
        for (size_t i = 0; i < n; i++) b[i] = (float)pix((int64_t)(i / (H * W)), (int)(i / W % H), (int)(i % W), seg);
        return b;
    }
    double *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) b[i] = pix((int64_t)(i / (H * W)), (int)(i / W % H), (int)(i % W), seg);
    return b;
}

static hid_t ftype_of(hid_t mtype)
{
    return mtype == H5T_NATIVE_UCHAR ? H5T_STD_U8LE : mtype == H5T_NATIVE_FLOAT ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
}

static void write_split(hid_t f, const char *sn, int T, const fx *o, float off)
{
    char key[128];
    void *fr = frames_buf(T, o->H, o->W, o->stim_type, 0);
    hsize_t d3[3] = {(hsize_t)T, (hsize_t)o->H, (hsize_t)o->W};
    snprintf(key, sizeof key, "/%s/stimulus", sn);
    put(f, key, o->stim_type, ftype_of(o->stim_type), 3, d3, fr);
    free(fr);
    double *tm = malloc((size_t)T * sizeof *tm);
    for (int t = 0; t < T; t++) tm[t] = t * 0.01;
    hsize_t d1 = (hsize_t)T;
    snprintf(key, sizeof key, "/%s/time", sn);
    put(f, key, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, &d1, tm);
    free(tm);
    float *r = malloc((size_t)o->C * T * sizeof *r);
    hsize_t d2[2] = {(hsize_t)o->C, (hsize_t)T};
    for (int c = 0; c < o->C; c++)
        for (int t = 0; t < T; t++) r[c * T + t] = 10000.0f * c + t + off;
    snprintf(key, sizeof key, "/%s/response/firing_rate_10ms", sn);
    put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, r);
    snprintf(key, sizeof key, "/%s/response/binned", sn);
    put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, r);
    if (o->rate20) {
        for (int i = 0; i < o->C * T; i++) r[i] += 0.25f;
        snprintf(key, sizeof key, "/%s/response/firing_rate_20ms", sn);
        put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, r);
    }
    free(r);
}

static void mk_baccus(const char *path, const fx *o)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0, "create %s", path);
    write_split(f, "train", o->T, o, 0.0f);
    if (o->Tt) write_split(f, "test", o->Tt, o, 0.5f);
    if (o->Tt && o->repeats == 1) {
        float *r = malloc((size_t)o->R * o->C * o->Tt * sizeof *r);
        for (int q = 0; q < o->R; q++)
            for (int c = 0; c < o->C; c++)
                for (int t = 0; t < o->Tt; t++) r[((size_t)q * o->C + c) * o->Tt + t] = 100000.0f * q + 10000.0f * c + t;
        hsize_t d[3] = {(hsize_t)o->R, (hsize_t)o->C, (hsize_t)o->Tt};
        put(f, "/test/repeats/firing_rate_10ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, d, r);
        free(r);
    } else if (o->Tt && o->repeats == 2) {
        /* names sort differently as text and as numbers: cell1, cell10, cell2 -> cells 0, 2, 1 */
        static const int ids[3] = {1, 2, 10};
        for (int c = 0; c < o->C; c++) {
            float *r = malloc((size_t)o->R * o->Tt * sizeof *r);
            for (int q = 0; q < o->R; q++)
                for (int t = 0; t < o->Tt; t++) r[(size_t)q * o->Tt + t] = 100000.0f * q + 10000.0f * c + t;
            hsize_t d[2] = {(hsize_t)o->R, (hsize_t)o->Tt};
            char key[64];
            snprintf(key, sizeof key, "/test/repeats/cell%d", c < 3 ? ids[c] : 100 + c);
            put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d, r);
            free(r);
        }
    }
    if (o->centers) {
        int *ct = malloc((size_t)o->C * 2 * sizeof *ct);
        for (int c = 0; c < o->C; c++) { ct[2 * c] = (2 + c) % o->H; ct[2 * c + 1] = (3 + 2 * c) % o->W; }
        hsize_t d[2] = {(hsize_t)o->C, 2};
        put(f, "/cells/centers", H5T_NATIVE_INT, H5T_STD_I32LE, 2, d, ct);
        free(ct);
    }
    H5Fclose(f);
}

/* Damage helpers: reopen read-write and delete or replace one dataset. */
static void fx_delete(const char *path, const char *key)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Ldelete(f, key, H5P_DEFAULT) >= 0, "delete %s", key);
    H5Fclose(f);
}

static void fx_replace_f32(const char *path, const char *key, int rank, const hsize_t *dims, const float *v)
{
    fx_delete(path, key);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, rank, dims, v);
    H5Fclose(f);
}

/* Overwrite element `index` (flattened) of a dataset with v. */
static void fx_poke(const char *path, const char *key, hsize_t index, double v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, key, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4], coord[4];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = rank - 1; i >= 0; i--) { coord[i] = index % dims[i]; index /= dims[i]; }
    H5Sselect_elements(sp, H5S_SELECT_SET, 1, coord);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, &v) >= 0);
    H5Sclose(ms); H5Sclose(sp); H5Dclose(ds); H5Fclose(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static rc_data *open_ok(const char *path, const rc_data_opts *o)
{
    rc_data *d = NULL;
    char err[1024];
    int rc = rc_data_open(path, o, &d, err, sizeof err);
    cr_assert_eq(rc, 0, "open %s: %s", path, err);
    return d;
}

static void expected_stats(const fx *o, double *mean, double *std)
{
    double s = 0, s2 = 0, n = (double)o->T * o->H * o->W;
    for (int t = 0; t < o->T; t++)
        for (int r = 0; r < o->H; r++)
            for (int c = 0; c < o->W; c++) s += pix(t, r, c, 0);
    *mean = s / n;
    for (int t = 0; t < o->T; t++)
        for (int r = 0; r < o->H; r++)
            for (int c = 0; c < o->W; c++) s2 += (pix(t, r, c, 0) - *mean) * (pix(t, r, c, 0) - *mean);
    *std = sqrt(s2 / n) + 1e-7;
}

/* Frame index and segment encoded in a normalized frame (row 0, cols 0 and 1 of the crop). */
static int64_t decode_t(const float *frame, double mean, double std, int *seg)
{
    double a = frame[0] * std + mean, b = frame[1] * std + mean;
    long hi = lround(b);
    if (seg) *seg = (int)(hi / 50);
    return (int64_t)lround(a) + 200 * (hi % 50);
}

/* Check one batch: windows are consecutive frames, labels = rate[c][t + h] for selected cells. */
static void check_batch(const rc_batch *b, const rc_data_info *in, double mean, double std, const int *sel,
                        int64_t *t_out)
{
    const int64_t hw = (int64_t)in->h * in->w;
    for (int k = 0; k < b->B; k++) {
        cr_assert(b->starts[k] >= 0 && b->starts[k] + in->history <= b->n_frames, "start %lld outside the %lld-frame base",
                  (long long)b->starts[k], (long long)b->n_frames);
        int64_t t0 = decode_t(b->frames + b->starts[k] * hw, mean, std, NULL);
        for (int j = 1; j < in->history; j++)
            cr_assert_eq(decode_t(b->frames + (b->starts[k] + j) * hw, mean, std, NULL), t0 + j, "window not contiguous");
        for (int c = 0; c < in->n_cells; c++) {
            float want = 10000.0f * (sel ? sel[c] : c) + (float)(t0 + in->history);
            cr_assert_eq(b->y[(int64_t)k * in->n_cells + c], want, "label of window %lld cell %d: %g, want %g",
                         (long long)t0, c, b->y[(int64_t)k * in->n_cells + c], want);
        }
        if (t_out) t_out[k] = t0;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Round trips                                                                                */

Test(data, baccus_roundtrip_uint8)
{
    fx o = fx_default();
    const char *p = tpath("a.h5");
    mk_baccus(p, &o);
    rc_data *d = open_ok(p, NULL);
    const rc_data_info *in = rc_data_get_info(d);
    cr_assert_eq(in->layout, RC_LAYOUT_BACCUS);
    cr_assert_eq(in->train_frames, o.T);
    cr_assert_eq(in->test_frames, o.Tt);
    cr_assert_eq(in->h, o.H);
    cr_assert_eq(in->w, o.W);
    cr_assert_eq(in->n_cells, o.C);
    cr_assert_eq(in->n_repeats, o.R);
    cr_assert_eq(in->history, 40);
    cr_assert_str_eq(in->rate_key, "firing_rate_10ms");
    cr_assert_str_eq(in->stim_dtype, "uint8");
    cr_assert_not_null(in->centers);
    for (int c = 0; c < o.C; c++) {
        cr_assert_eq(in->centers[2 * c], (2 + c) % o.H);
        cr_assert_eq(in->centers[2 * c + 1], (3 + 2 * c) % o.W);
    }
    double m, s, em, es;
    char err[512];
    cr_assert_eq(rc_data_stats(d, &m, &s, err, sizeof err), 0, "%s", err);
    expected_stats(&o, &em, &es);
    cr_assert_float_eq(m, em, 1e-9 * em);
    cr_assert_float_eq(s, es, 1e-9 * es);

    rc_test_set t;
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
    cr_assert_eq(t.n_frames, o.Tt);
    cr_assert_eq(t.n, o.Tt - 40);
    cr_assert_eq(t.cells, o.C);
    for (int64_t i = 0; i < t.n_frames * o.H * o.W; i++) {
        int64_t fr = i / (o.H * o.W);
        int r = (int)(i / o.W % o.H), c = (int)(i % o.W);
        float want = (float)(pix(fr, r, c, 0)) - (float)m;
        want /= (float)s;
        cr_assert_eq(t.frames[i], want, "test frame value %lld", (long long)i);
    }
    for (int64_t i = 0; i < t.n; i++) {
        cr_assert_eq(t.starts[i], i);
        for (int c = 0; c < o.C; c++) {
            cr_assert_eq(t.rate[i * o.C + c], 10000.0f * c + (float)(i + 40) + 0.5f);
            for (int q = 0; q < o.R; q++)
                cr_assert_eq(t.repeats[((int64_t)q * o.C + c) * t.n + i], 100000.0f * q + 10000.0f * c + (float)(i + 40));
        }
    }
    cr_assert_null(t.truth);
    rc_test_set_free(&t);
    rc_data_close(d);
}

Test(data, stimulus_dtypes_agree)
{
    hid_t types[3] = {H5T_NATIVE_UCHAR, H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE};
    const char *names[3] = {"uint8", "float32", "float64"};
    float *ref = NULL;
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        fx o = fx_default();
        o.stim_type = types[k];
        char nm[32];
        snprintf(nm, sizeof nm, "d%d.h5", k);
        mk_baccus(tpath(nm), &o);
        rc_data *d = open_ok(tpath(nm), NULL);
        cr_assert_str_eq(rc_data_get_info(d)->stim_dtype, names[k]);
        rc_test_set t;
        char err[512];
        cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
        n = (size_t)t.n_frames * o.H * o.W;
        if (!ref) { ref = malloc(n * sizeof *ref); memcpy(ref, t.frames, n * sizeof *ref); }
        else cr_assert(memcmp(ref, t.frames, n * sizeof *ref) == 0, "%s frames differ from uint8", names[k]);
        rc_test_set_free(&t);
        rc_data_close(d);
    }
    free(ref);
}

Test(data, cellnn_repeats_in_numeric_order)
{
    fx o = fx_default();
    o.repeats = 2;
    mk_baccus(tpath("c.h5"), &o);
    rc_data *d = open_ok(tpath("c.h5"), NULL);
    cr_assert_eq(rc_data_get_info(d)->n_repeats, o.R);
    rc_test_set t;
    char err[512];
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(t.repeats);
    /* cell1 -> cell 0 (c=0), cell2 -> cell 1 (c=1), cell10 -> cell 2 (c=2) */
    for (int q = 0; q < o.R; q++)
        for (int c = 0; c < o.C; c++)
            for (int64_t i = 0; i < t.n; i += 17)
                cr_assert_eq(t.repeats[((int64_t)q * o.C + c) * t.n + i], 100000.0f * q + 10000.0f * c + (float)(i + 40),
                             "repeat %d cell %d", q, c);
    rc_test_set_free(&t);
    rc_data_close(d);
}

Test(data, rate_key_and_cell_subset)
{
    fx o = fx_default();
    o.rate20 = 1;
    mk_baccus(tpath("k.h5"), &o);
    int sel[2] = {2, 0};
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.rate_key = "firing_rate_20ms";
    op.cells = sel;
    op.n_cells = 2;
    rc_data *d = open_ok(tpath("k.h5"), &op);
    const rc_data_info *in = rc_data_get_info(d);
    cr_assert_eq(in->n_cells, 2);
    cr_assert_eq(in->file_cells, 3);
    cr_assert_eq(in->centers[0], (2 + 2) % o.H);
    cr_assert_eq(in->centers[2], 2 % o.H);
    cr_assert_eq(in->n_repeats, 0, "no repeats stored for firing_rate_20ms");
    rc_test_set t;
    char err[512];
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
    cr_assert_eq(t.rate[0], 20000.0f + 40 + 0.5f + 0.25f);
    cr_assert_eq(t.rate[1], 0.0f + 40 + 0.5f + 0.25f);
    rc_test_set_free(&t);
    rc_data_close(d);

    op.rate_key = "firing_rate_5ms";
    d = NULL;
    cr_assert_eq(rc_data_open(tpath("k.h5"), &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "/train/response/firing_rate_5ms: missing") && strstr(err, "firing_rate_20ms"), "%s", err);
    cr_assert(strstr(err, "k.h5"), "message names the file: %s", err);
    int bad[2] = {0, 3};
    op.rate_key = NULL;
    op.cells = bad;
    cr_assert_eq(rc_data_open(tpath("k.h5"), &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "cell 3 out of range"), "%s", err);
    int dup[2] = {1, 1};
    op.cells = dup;
    cr_assert_eq(rc_data_open(tpath("k.h5"), &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "selected twice"), "%s", err);
}

/* ---------------------------------------------------------------------------------------- */
/* Batches, splits, shuffles, streaming                                                       */

/* Visit an epoch; count[i] += 1 for every window i; returns the number of batches. */
static int64_t visit(rc_data *d, int train, int B, uint64_t seed, int epoch, int *count, int64_t *order, int64_t *n_order)
{
    const rc_data_info *in = rc_data_get_info(d);
    double m, s;
    char err[512];
    cr_assert_eq(rc_data_stats(d, &m, &s, err, sizeof err), 0, "%s", err);
    rc_iter *it;
    int rc = train ? rc_data_train_iter(d, B, seed, epoch, &it, err, sizeof err) : rc_data_val_iter(d, B, &it, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    rc_batch b;
    int64_t nb = 0, no = 0;
    int64_t *ts = malloc((size_t)B * sizeof *ts);
    while ((rc = rc_iter_next(it, &b, err, sizeof err)) == 1) {
        if (train) cr_assert_eq(b.B, B, "training batches are full");
        else cr_assert(b.B >= 1 && b.B <= B);
        check_batch(&b, in, m, s, NULL, ts);
        for (int k = 0; k < b.B; k++) {
            count[ts[k]]++;
            if (order) order[no] = ts[k];
            no++;
        }
        nb++;
    }
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(nb, rc_iter_batches(it), "announced %lld batches, got %lld", (long long)rc_iter_batches(it), (long long)nb);
    rc_iter_free(it);
    free(ts);
    if (n_order) *n_order = no;
    return nb;
}

Test(data, block_split_no_shared_frames)
{
    fx o = fx_default();
    o.T = 2000;
    mk_baccus(tpath("b.h5"), &o);
    rc_data *d = open_ok(tpath("b.h5"), NULL);
    const rc_data_info *in = rc_data_get_info(d);
    const int64_t N = o.T - 40;
    int *tr = calloc((size_t)N, sizeof *tr), *va = calloc((size_t)N, sizeof *va);
    int64_t nb = visit(d, 1, 1, 7, 0, tr, NULL, NULL);
    cr_assert_eq(nb, in->n_train);
    int64_t order[4096], no;
    visit(d, 0, 64, 0, 0, va, order, &no);
    cr_assert_eq(no, in->n_val);
    for (int64_t k = 1; k < no; k++) cr_assert(order[k] > order[k - 1], "validation in time order");
    /* 10% in 4 blocks of 50 frames: each block gives 50 - 40 windows */
    cr_assert_eq(in->n_val, 4 * (50 - 40));
    /* frames (inputs and label) of train and val windows never meet; every train window once */
    char *used = calloc((size_t)o.T, 1);
    for (int64_t i = 0; i < N; i++) {
        cr_assert(tr[i] <= 1 && va[i] <= 1 && !(tr[i] && va[i]));
        if (va[i]) for (int j = 0; j <= 40; j++) used[i + j] = 1;
    }
    for (int64_t i = 0; i < N; i++)
        if (tr[i]) for (int j = 0; j <= 40; j++) cr_assert(!used[i + j], "train window %lld touches a validation frame", (long long)i);
    /* windows dropped are exactly the ones straddling a block edge */
    int64_t ntr = 0;
    for (int64_t i = 0; i < N; i++) ntr += tr[i];
    cr_assert_eq(ntr, in->n_train);
    cr_assert_eq(ntr + in->n_val + 8 * 40, N, "4 blocks x 2 edges x 40 straddling windows dropped");
    /* batches of 16: the last partial batch dropped */
    int *cnt = calloc((size_t)N, sizeof *cnt);
    cr_assert_eq(visit(d, 1, 16, 7, 1, cnt, NULL, NULL), in->n_train / 16);
    free(cnt); free(used); free(tr); free(va);
    rc_data_close(d);
}

Test(data, shuffles_are_seeded)
{
    fx o = fx_default();
    o.T = 1000;
    mk_baccus(tpath("s.h5"), &o);
    rc_data *d = open_ok(tpath("s.h5"), NULL);
    const int64_t N = o.T - 40;
    int *cnt = calloc((size_t)N, sizeof *cnt);
    int64_t *a = malloc((size_t)N * sizeof *a), *b = malloc((size_t)N * sizeof *b), na, nb;
    visit(d, 1, 8, 42, 3, cnt, a, &na);
    visit(d, 1, 8, 42, 3, cnt, b, &nb);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(a, b, (size_t)na * sizeof *a) == 0, "same seed and epoch, same order");
    visit(d, 1, 8, 42, 4, cnt, b, &nb);
    cr_assert(memcmp(a, b, (size_t)na * sizeof *a) != 0, "another epoch, another order");
    visit(d, 1, 8, 43, 3, cnt, b, &nb);
    cr_assert(memcmp(a, b, (size_t)na * sizeof *a) != 0, "another seed, another order");
    /* a shuffle, not the identity */
    int64_t inversions = 0;
    for (int64_t k = 1; k < na; k++) inversions += a[k] < a[k - 1];
    cr_assert(inversions > na / 4, "order looks unshuffled (%lld descents)", (long long)inversions);
    free(a); free(b); free(cnt);
    rc_data_close(d);
}

Test(data, streaming_chunks_match_resident)
{
    fx o = fx_default();
    o.T = 3000;
    mk_baccus(tpath("st.h5"), &o);
    const int64_t N = o.T - 40;
    rc_data *dr = open_ok(tpath("st.h5"), NULL);
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.mem_budget = 400 * (8 * 10 * 4 + 3 * 4 + 12);   /* about 400 frames */
    rc_data *ds = open_ok(tpath("st.h5"), &op);
    const rc_data_info *ir = rc_data_get_info(dr), *is = rc_data_get_info(ds);
    cr_assert_eq(ir->n_chunks, 1);
    cr_assert(is->n_chunks >= 8, "%d chunks", is->n_chunks);
    cr_assert_eq(is->n_train, ir->n_train);
    cr_assert_eq(is->n_val, ir->n_val);
    double m1, s1, m2, s2;
    char err[512];
    cr_assert_eq(rc_data_stats(dr, &m1, &s1, err, sizeof err), 0);
    cr_assert_eq(rc_data_stats(ds, &m2, &s2, err, sizeof err), 0);
    cr_assert(m1 == m2 && s1 == s2, "statistics do not depend on the budget");
    int *a = calloc((size_t)N, sizeof *a), *b = calloc((size_t)N, sizeof *b);
    cr_assert_eq(visit(ds, 1, 1, 5, 0, b, NULL, NULL), is->n_train, "B=1: every window of every chunk");
    visit(dr, 1, 1, 5, 0, a, NULL, NULL);
    cr_assert(memcmp(a, b, (size_t)N * sizeof *a) == 0, "same training windows");
    memset(a, 0, (size_t)N * sizeof *a);
    memset(b, 0, (size_t)N * sizeof *b);
    visit(dr, 0, 32, 0, 0, a, NULL, NULL);
    visit(ds, 0, 32, 0, 0, b, NULL, NULL);
    cr_assert(memcmp(a, b, (size_t)N * sizeof *a) == 0, "same validation windows");
    /* bounded: the base of every batch fits the budget */
    rc_iter *it;
    cr_assert_eq(rc_data_train_iter(ds, 7, 1, 0, &it, err, sizeof err), 0, "%s", err);
    rc_batch bt;
    int k, n = 0;
    while ((k = rc_iter_next(it, &bt, err, sizeof err)) == 1) {
        cr_assert((size_t)bt.n_frames * 8 * 10 * 4 <= op.mem_budget, "chunk of %lld frames", (long long)bt.n_frames);
        n++;
    }
    cr_assert_eq(k, 0);
    cr_assert_eq(n, rc_iter_batches(it));
    /* one live iterator at a time */
    rc_iter *it2;
    cr_assert_eq(rc_data_val_iter(ds, 7, &it2, err, sizeof err), -1);
    rc_iter_free(it);
    free(a); free(b);
    rc_data_close(dr);
    rc_data_close(ds);
}

/* A consumer's per-frame data (the C backend's frame spectra) counted against the budget: a
 * recording that fitted is streamed in chunks whose frames and per-frame data fit together,
 * over the same windows; a live iterator or a budget too small for one window is refused. */
Test(data, frame_extra_replans_chunks_within_the_budget)
{
    fx o = fx_default();
    o.T = 3000;
    mk_baccus(tpath("fe.h5"), &o);
    const int64_t N = o.T - 40;
    const size_t base = 8 * 10 * 4 + 3 * 4 + 12, extra = 1000;
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.mem_budget = 3100 * base;   /* the whole stream fits, alone */
    rc_data *dr = open_ok(tpath("fe.h5"), &op), *ds = open_ok(tpath("fe.h5"), &op);
    const rc_data_info *ir = rc_data_get_info(dr), *is = rc_data_get_info(ds);
    char err[512];
    double m, sd;
    cr_assert_eq(rc_data_stats(ds, &m, &sd, err, sizeof err), 0, "%s", err);   /* the frame pass keeps the frames */
    cr_assert_eq(is->n_chunks, 1);
    cr_assert_eq(rc_data_set_frame_extra(ds, extra, err, sizeof err), 0, "%s", err);
    cr_assert_geq(is->n_chunks, 3, "%d chunks", is->n_chunks);
    cr_assert_eq(is->n_train, ir->n_train);
    cr_assert_eq(is->n_val, ir->n_val);
    int *a = calloc((size_t)N, sizeof *a), *b = calloc((size_t)N, sizeof *b);
    visit(dr, 1, 1, 5, 0, a, NULL, NULL);
    cr_assert_eq(visit(ds, 1, 1, 5, 0, b, NULL, NULL), is->n_train, "B=1: every window of every chunk");
    cr_assert(memcmp(a, b, (size_t)N * sizeof *a) == 0, "same training windows");
    rc_iter *it;
    cr_assert_eq(rc_data_train_iter(ds, 7, 1, 0, &it, err, sizeof err), 0, "%s", err);
    rc_batch bt;
    int k;
    while ((k = rc_iter_next(it, &bt, err, sizeof err)) == 1)
        cr_assert_leq((size_t)bt.n_frames * (base + extra), op.mem_budget, "chunk of %lld frames", (long long)bt.n_frames);
    cr_assert_eq(k, 0);
    cr_expect_eq(rc_data_set_frame_extra(ds, 0, err, sizeof err), -1, "re-planned under a live iterator");
    cr_expect(strstr(err, "iterator is live"), "%s", err);
    rc_iter_free(it);
    cr_expect_eq(rc_data_set_frame_extra(ds, op.mem_budget / 50, err, sizeof err), -1, "a window does not fit");
    cr_expect(strstr(err, "per-frame data"), "%s", err);
    cr_expect_geq(is->n_chunks, 3, "the refused extra left the plan as it was");
    memset(b, 0, (size_t)N * sizeof *b);
    cr_assert_eq(visit(ds, 1, 1, 5, 0, b, NULL, NULL), is->n_train);
    cr_assert(memcmp(a, b, (size_t)N * sizeof *a) == 0, "same training windows after the refusal");
    free(a); free(b);
    rc_data_close(dr);
    rc_data_close(ds);
}

Test(data, random_split_reference)
{
    fx o = fx_default();
    o.T = 1000;
    mk_baccus(tpath("r.h5"), &o);
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.val_mode = RC_VAL_RANDOM;
    op.val_seed = 11;
    rc_data *d = open_ok(tpath("r.h5"), &op);
    const rc_data_info *in = rc_data_get_info(d);
    const int64_t N = o.T - 40;
    cr_assert_eq(in->n_val, (int64_t)llround(0.1 * N));
    cr_assert_eq(in->n_train + in->n_val, N, "nothing dropped");
    int *tr = calloc((size_t)N, sizeof *tr), *va = calloc((size_t)N, sizeof *va), *va2 = calloc((size_t)N, sizeof *va2);
    visit(d, 1, 1, 1, 0, tr, NULL, NULL);
    visit(d, 0, 50, 0, 0, va, NULL, NULL);
    for (int64_t i = 0; i < N; i++) cr_assert_eq(tr[i] + va[i], 1, "window %lld in exactly one split", (long long)i);
    rc_data_close(d);
    op.val_seed = 12;
    d = open_ok(tpath("r.h5"), &op);
    visit(d, 0, 50, 0, 0, va2, NULL, NULL);
    cr_assert(memcmp(va, va2, (size_t)N * sizeof *va) != 0, "another seed, another split");
    op.val_fraction = -1;
    rc_data_close(d);
    d = open_ok(tpath("r.h5"), &op);
    cr_assert_eq(rc_data_get_info(d)->n_val, 0);
    cr_assert_eq(rc_data_get_info(d)->n_train, N);
    free(tr); free(va); free(va2);
    rc_data_close(d);
}

Test(data, crop_and_centers)
{
    fx o = fx_default();
    mk_baccus(tpath("cr.h5"), &o);
    rc_data *full = open_ok(tpath("cr.h5"), NULL);
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.crop = 5;
    op.crop_row = 4;
    op.crop_col = 6;
    rc_data *d = open_ok(tpath("cr.h5"), &op);
    const rc_data_info *in = rc_data_get_info(d);
    cr_assert_eq(in->h, 5);
    cr_assert_eq(in->w, 5);
    cr_assert_eq(in->crop_row0, 2);
    cr_assert_eq(in->crop_col0, 4);
    cr_assert_eq(in->centers[0], 2 - 2);
    cr_assert_eq(in->centers[1], 3 - 4);
    char err[512];
    double m;
    cr_assert_eq(rc_data_stats(d, &m, NULL, err, sizeof err), 0, "%s", err);
    double em = 0;   /* mean over the crop only (the reference crops before normalizing) */
    for (int t = 0; t < o.T; t++)
        for (int r = 2; r < 7; r++)
            for (int c = 4; c < 9; c++) em += pix(t, r, c, 0);
    em /= (double)o.T * 25;
    cr_assert_float_eq(m, em, 1e-9 * em);
    /* the cropped frames are the window of the full frames (in raw units) */
    double fm, fs, cm, cs;
    rc_data_stats(full, &fm, &fs, err, sizeof err);
    rc_data_stats(d, &cm, &cs, err, sizeof err);
    rc_test_set tf, tc;
    cr_assert_eq(rc_data_test(full, &tf, err, sizeof err), 0);
    cr_assert_eq(rc_data_test(d, &tc, err, sizeof err), 0);
    for (int64_t t = 0; t < tf.n_frames; t += 13)
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 5; c++) {
                double a = tf.frames[(t * o.H + r + 2) * o.W + c + 4] * fs + fm, b = tc.frames[(t * 5 + r) * 5 + c] * cs + cm;
                cr_assert_float_eq(a, b, 1e-3);
            }
    rc_test_set_free(&tf);
    rc_test_set_free(&tc);
    rc_data_close(d);
    /* clamped at the frame edge */
    op.crop_row = 0;
    op.crop_col = 9;
    d = open_ok(tpath("cr.h5"), &op);
    cr_assert_eq(rc_data_get_info(d)->crop_row0, 0);
    cr_assert_eq(rc_data_get_info(d)->crop_col0, 5);
    rc_data_close(d);
    /* around a selected cell's centre: cell 1 at (3, 5) */
    op.crop_cell = 1;
    d = open_ok(tpath("cr.h5"), &op);
    cr_assert_eq(rc_data_get_info(d)->crop_row0, 1);
    cr_assert_eq(rc_data_get_info(d)->crop_col0, 3);
    cr_assert_eq(rc_data_get_info(d)->centers[2], 2);
    cr_assert_eq(rc_data_get_info(d)->centers[3], 2);
    rc_data_close(d);
    op.crop = 11;
    d = NULL;
    cr_assert_eq(rc_data_open(tpath("cr.h5"), &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "crop 11 larger than the 8x10 frame"), "%s", err);
    rc_data_close(full);
}

Test(data, stimulus_read_for_predict)
{
    fx o = fx_default();
    mk_baccus(tpath("p.h5"), &o);
    rc_data *d = open_ok(tpath("p.h5"), NULL);
    double m, s;
    char err[512];
    cr_assert_eq(rc_data_stats(d, &m, &s, err, sizeof err), 0);
    rc_test_set t;
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0);
    float *fr;
    int64_t T;
    int H, W;
    cr_assert_eq(rc_stimulus_read(tpath("p.h5"), "test/stimulus", 0, 0, 0, m, s, &fr, &T, &H, &W, err, sizeof err), 0, "%s", err);
    cr_assert_eq(T, o.Tt);
    cr_assert_eq(H, o.H);
    cr_assert_eq(W, o.W);
    cr_assert(memcmp(fr, t.frames, (size_t)T * H * W * sizeof *fr) == 0, "same normalization as the test set");
    free(fr);
    rc_test_set_free(&t);
    rc_data_close(d);
    /* a standalone (1,T,H,W) "stimulus" dataset, raw values, cropped */
    hid_t f = H5Fcreate(tpath("stim.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float *v = frames_buf(60, 8, 10, H5T_NATIVE_FLOAT, 0);
    hsize_t d4[4] = {1, 60, 8, 10};
    put(f, "/stimulus", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 4, d4, v);
    H5Fclose(f);
    cr_assert_eq(rc_stimulus_read(tpath("stim.h5"), NULL, 3, 1, 1, 0, 0, &fr, &T, &H, &W, err, sizeof err), 0, "%s", err);
    cr_assert(T == 60 && H == 3 && W == 3);
    cr_assert_eq(fr[(5 * 3 + 2) * 3 + 1], v[(5 * 8 + 2) * 10 + 1], "crop origin (0,0)");
    free(fr);
    free(v);
    cr_assert_eq(rc_stimulus_read(tpath("stim.h5"), "movie", 0, 0, 0, 0, 0, &fr, &T, &H, &W, err, sizeof err), -1);
    cr_assert(strstr(err, "stim.h5: /movie: missing"), "%s", err);
}

/* ---------------------------------------------------------------------------------------- */
/* openretina                                                                                 */

static void write_npy(const char *path, int rank, const int64_t *shape, int u8, int T, int H, int W, int seg)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    char hdr[256], sh[64] = "";
    for (int i = 0; i < rank; i++) snprintf(sh + strlen(sh), sizeof sh - strlen(sh), "%lld, ", (long long)shape[i]);
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", u8 ? "|u1" : "<f4", sh);
    int tot = 10 + n + 1;
    int pad = (64 - tot % 64) % 64;
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    void *b = frames_buf(T, H, W, u8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT, seg);
    fwrite(b, u8 ? 1 : 4, (size_t)T * H * W, f);
    free(b);
    fclose(f);
}

Test(data, openretina_layout)
{
    const int C = 2, H = 6, W = 6, Ta = 300, Tb = 200, Tt = 150;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/stimuli", tmpdir);
    mkdir(dir, 0755);
    hid_t f = H5Fcreate(tpath("session.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int Ts[3] = {Ta, Tb, Tt};
    const char *names[3] = {"a", "b", "test"};
    for (int s = 0; s < 3; s++) {
        float *r = malloc((size_t)C * Ts[s] * sizeof *r);
        for (int c = 0; c < C; c++)
            for (int t = 0; t < Ts[s]; t++) r[c * Ts[s] + t] = 10000.0f * c + t + 1000.0f * s;
        hsize_t d2[2] = {(hsize_t)C, (hsize_t)Ts[s]};
        char key[64];
        snprintf(key, sizeof key, "/responses_%s", names[s]);
        put(f, key, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, r);
        free(r);
    }
    /* a: in the file as (1,T,H,W) uint8 with segment tag 0; b and test: .npy */
    unsigned char *fa = frames_buf(Ta, H, W, H5T_NATIVE_UCHAR, 0);
    hsize_t d4[4] = {1, (hsize_t)Ta, (hsize_t)H, (hsize_t)W};
    put(f, "/stimulus_a", H5T_NATIVE_UCHAR, H5T_STD_U8LE, 4, d4, fa);
    free(fa);
    H5Fclose(f);
    char np[600];
    snprintf(np, sizeof np, "%s/b.npy", dir);
    int64_t sb[3] = {Tb, H, W};
    write_npy(np, 3, sb, 1, Tb, H, W, 1);
    snprintf(np, sizeof np, "%s/test.npy", dir);
    int64_t st[4] = {1, Tt, H, W};
    write_npy(np, 4, st, 0, Tt, H, W, 2);

    rc_data_opts op;
    rc_data_opts_default(&op);
    op.val_fraction = -1;
    rc_data *d = open_ok(tpath("session.h5"), &op);
    const rc_data_info *in = rc_data_get_info(d);
    cr_assert_eq(in->layout, RC_LAYOUT_OPENRETINA);
    cr_assert_eq(in->train_frames, Ta + Tb);
    cr_assert_eq(in->test_frames, Tt);
    cr_assert_eq(in->n_cells, C);
    cr_assert_eq(in->n_train, (Ta - 40) + (Tb - 40), "no window straddles the two stimuli");
    double m, s;
    char err[512];
    cr_assert_eq(rc_data_stats(d, &m, &s, err, sizeof err), 0, "%s", err);
    rc_iter *it;
    cr_assert_eq(rc_data_train_iter(d, 16, 3, 0, &it, err, sizeof err), 0, "%s", err);
    rc_batch b;
    int k;
    while ((k = rc_iter_next(it, &b, err, sizeof err)) == 1)
        for (int j = 0; j < b.B; j++) {
            int seg, seg2;
            int64_t t0 = decode_t(b.frames + b.starts[j] * H * W, m, s, &seg);
            decode_t(b.frames + (b.starts[j] + 39) * H * W, m, s, &seg2);
            cr_assert_eq(seg, seg2, "window crosses stimuli");
            cr_assert_eq(b.y[j * C + 1], 10000.0f + (float)(t0 + 40) + 1000.0f * seg, "label of segment %d frame %lld", seg, (long long)t0);
        }
    cr_assert_eq(k, 0, "%s", err);
    rc_iter_free(it);
    rc_test_set t;
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
    cr_assert_eq(t.n, Tt - 40);
    cr_assert_eq(t.rate[3 * C + 1], 10000.0f + 43 + 2000.0f);
    cr_assert_eq(decode_t(t.frames + 7 * H * W, m, s, NULL), 7);
    rc_test_set_free(&t);
    rc_data_close(d);
    rc_data_probe p;
    cr_assert_eq(rc_data_probe_file(tpath("session.h5"), NULL, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.n_stims, 3);
    cr_assert_str_eq(p.stims[0], "test");
    /* a missing .npy is named */
    unlink(np);
    cr_assert_eq(rc_data_open(tpath("session.h5"), &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "responses_test: no stimulus") && strstr(err, "test.npy"), "%s", err);
}

/* ---------------------------------------------------------------------------------------- */
/* Bad files                                                                                  */

/* Open must fail (or, with stage 1/2, stats/test must) with every needle in the message. */
static void expect_fail(const char *path, int stage, const char *n1, const char *n2)
{
    rc_data *d = NULL;
    char err[1024] = "";
    int rc = rc_data_open(path, NULL, &d, err, sizeof err);
    if (stage == 0) {
        cr_assert_eq(rc, -1, "open of %s should fail (%s)", path, n1);
    } else {
        cr_assert_eq(rc, 0, "open: %s", err);
        rc = stage == 1 ? rc_data_stats(d, NULL, NULL, err, sizeof err) : -2;
        if (stage == 2) {
            rc_test_set t;
            rc = rc_data_test(d, &t, err, sizeof err);
        }
        cr_assert_eq(rc, -1, "should fail: %s", n1);
        rc_data_close(d);
    }
    cr_assert(strstr(err, path) || strstr(err, strrchr(path, '/') + 1), "message names the file: %s", err);
    cr_assert(strstr(err, n1), "message '%s' lacks '%s'", err, n1);
    if (n2) cr_assert(strstr(err, n2), "message '%s' lacks '%s'", err, n2);
    cr_assert(!strchr(err, '\n'), "one line");
}

static const char *good(const char *name)
{
    fx o = fx_default();
    const char *p = tpath(name);
    mk_baccus(p, &o);
    return p;
}

Test(data, bad_missing_keys)
{
    const char *p = good("m1.h5");
    fx_delete(p, "/train/stimulus");
    expect_fail(p, 0, "/train/stimulus: missing", NULL);
    p = good("m2.h5");
    fx_delete(p, "/train/response/firing_rate_10ms");
    expect_fail(p, 0, "/train/response/firing_rate_10ms: missing", "binned");
    p = good("m3.h5");
    fx_delete(p, "/train/response");
    expect_fail(p, 0, "/train/response: missing", NULL);
    hid_t f = H5Fcreate(tpath("empty.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_fail(tpath("empty.h5"), 0, "not a recording", NULL);
}

Test(data, bad_rank_length_dtype_empty)
{
    fx o = fx_default();
    const char *p = good("r1.h5");
    float *z = calloc((size_t)o.T * o.H * o.W, sizeof *z);
    hsize_t d2[2] = {(hsize_t)o.T, (hsize_t)(o.H * o.W)};
    fx_replace_f32(p, "/train/stimulus", 2, d2, z);
    expect_fail(p, 0, "/train/stimulus: expected rank 3 (T,H,W), found rank 2", NULL);
    p = good("r2.h5");
    hsize_t dr[2] = {(hsize_t)o.C, (hsize_t)o.T - 1};
    fx_replace_f32(p, "/train/response/firing_rate_10ms", 2, dr, z);
    expect_fail(p, 0, "/train/response/firing_rate_10ms: length 599 does not match the 600 stimulus frames", NULL);
    p = good("r3.h5");
    hsize_t dt = (hsize_t)o.T + 5;
    fx_replace_f32(p, "/train/time", 1, &dt, z);
    expect_fail(p, 0, "/train/time: length 605 does not match", NULL);
    p = good("r4.h5");
    hsize_t dc[2] = {(hsize_t)o.C + 1, (hsize_t)o.Tt};
    fx_replace_f32(p, "/test/response/firing_rate_10ms", 2, dc, z);
    expect_fail(p, 0, "/test/response/firing_rate_10ms: 4 cells", NULL);
    p = good("r5.h5");
    hsize_t dq[3] = {(hsize_t)o.R, (hsize_t)o.C, (hsize_t)o.Tt - 1};
    fx_replace_f32(p, "/test/repeats/firing_rate_10ms", 3, dq, z);
    expect_fail(p, 0, "/test/repeats/firing_rate_10ms: length 199 does not match the 200 test frames", NULL);
    p = good("r6.h5");
    hsize_t dce[2] = {(hsize_t)o.C, 3};
    fx_replace_f32(p, "/cells/centers", 2, dce, z);
    expect_fail(p, 0, "/cells/centers: expected shape (3,2)", NULL);
    /* empty dataset */
    p = good("e1.h5");
    hsize_t de[3] = {0, (hsize_t)o.H, (hsize_t)o.W};
    fx_replace_f32(p, "/train/stimulus", 3, de, z);
    expect_fail(p, 0, "/train/stimulus: empty dataset", NULL);
    /* wrong dtype: fixed-length strings */
    p = good("t1.h5");
    fx_delete(p, "/train/stimulus");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 4);
    hsize_t d3[3] = {(hsize_t)o.T, (hsize_t)o.H, (hsize_t)o.W};
    hid_t sp = H5Screate_simple(3, d3, NULL);
    hid_t ds = H5Dcreate2(f, "/train/stimulus", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds); H5Sclose(sp); H5Tclose(st); H5Fclose(f);
    expect_fail(p, 0, "/train/stimulus: unsupported dtype", NULL);
    /* too few frames for the history */
    fx s = fx_default();
    s.T = 40;
    mk_baccus(tpath("short.h5"), &s);
    expect_fail(tpath("short.h5"), 0, "40 training frames; need more than the history of 40", NULL);
    free(z);
}

Test(data, bad_nan_inf)
{
    fx o = fx_default();
    const char *p = good("n1.h5");
    fx_poke(p, "/train/response/firing_rate_10ms", (hsize_t)o.T + 17, NAN);   /* cell 1, frame 17 */
    expect_fail(p, 0, "/train/response/firing_rate_10ms: non-finite value (NaN/Inf) for cell 1 at frame 17", NULL);
    p = good("n2.h5");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);   /* float frames so that NaN can be stored */
    H5Fclose(f);
    fx of = fx_default();
    of.stim_type = H5T_NATIVE_FLOAT;
    mk_baccus(p, &of);
    fx_poke(p, "/train/stimulus", (hsize_t)(123 * o.H * o.W + 2 * o.W + 3), INFINITY);
    expect_fail(p, 1, "/train/stimulus: non-finite value (NaN/Inf) at frame 123, pixel (2,3)", NULL);
    mk_baccus(p, &of);
    fx_poke(p, "/test/stimulus", 5, NAN);
    expect_fail(p, 2, "/test/stimulus: non-finite value", NULL);
    p = good("n3.h5");
    fx_poke(p, "/test/repeats/firing_rate_10ms", 3, NAN);
    expect_fail(p, 2, "/test/repeats/firing_rate_10ms: non-finite value", NULL);
    p = good("n4.h5");
    fx_poke(p, "/test/response/firing_rate_10ms", 3, -INFINITY);
    expect_fail(p, 0, "/test/response/firing_rate_10ms: non-finite value", NULL);
}

Test(data, bad_files_truncated_or_not_hdf5)
{
    const char *p = good("tr.h5");
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(truncate(p, sb.st_size / 2), 0);
    rc_data *d = NULL;
    char err[1024];
    int rc = rc_data_open(p, NULL, &d, err, sizeof err);
    if (rc == 0) {   /* metadata may survive; the frames cannot */
        rc = rc_data_stats(d, NULL, NULL, err, sizeof err);
        rc_data_close(d);
    }
    cr_assert_eq(rc, -1, "a truncated file must fail");
    cr_assert(strstr(err, "tr.h5") && (strstr(err, "truncated") || strstr(err, "not an HDF5")), "%s", err);
    FILE *f = fopen(tpath("text.h5"), "w");
    fputs("hello\n", f);
    fclose(f);
    expect_fail(tpath("text.h5"), 0, "not an HDF5 file", NULL);
    expect_fail(tpath("absent.h5"), 0, "cannot read", NULL);
}

Test(data, bad_budget_and_batch)
{
    const char *p = good("bb.h5");
    rc_data_opts op;
    rc_data_opts_default(&op);
    op.mem_budget = 1000;
    rc_data *d = NULL;
    char err[512];
    cr_assert_eq(rc_data_open(p, &op, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "memory budget"), "%s", err);
    d = open_ok(p, NULL);
    rc_iter *it;
    cr_assert_eq(rc_data_train_iter(d, 100000, 1, 0, &it, err, sizeof err), -1);
    cr_assert(strstr(err, "larger than the"), "%s", err);
    cr_assert_eq(rc_data_set_stats(d, 0, 0, err, sizeof err), -1);
    cr_assert_eq(rc_data_set_stats(d, 3.0, 2.0, err, sizeof err), 0);
    double m, s;
    rc_data_stats(d, &m, &s, err, sizeof err);
    cr_assert(m == 3.0 && s == 2.0, "statistics from a checkpoint are used as given");
    rc_data_close(d);
    setenv("RETINAC_MEM_BUDGET", "abc", 1);
    cr_assert_eq(rc_data_open(p, NULL, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "RETINAC_MEM_BUDGET"), "%s", err);
    setenv("RETINAC_MEM_BUDGET", "0.05", 1);   /* 52 KB: about 120 frames of 8x10 */
    d = open_ok(p, NULL);
    cr_assert(rc_data_get_info(d)->n_chunks > 1);
    rc_data_close(d);
    unsetenv("RETINAC_MEM_BUDGET");
}

/* ---------------------------------------------------------------------------------------- */
/* retinac info                                                                               */

Test(data, info_command)
{
    const char *p = good("i.h5");
    char out[16384];
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s' --json", p), 0, "%s", out);
    cr_assert(strstr(out, "\"usable\": true") && strstr(out, "\"cells\": 3") && strstr(out, "\"frames\": 600")
              && strstr(out, "\"dtype\": \"uint8\"") && strstr(out, "\"count\": 4") && strstr(out, "\"mean\""), "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s'", p), 0, "%s", out);
    cr_assert(strstr(out, "8x10 uint8") && strstr(out, "usable"), "%s", out);
    fx o = fx_default();
    o.stim_type = H5T_NATIVE_FLOAT;
    mk_baccus(p, &o);
    fx_poke(p, "/train/stimulus", 1000, NAN);
    kit_out r = kit_rc("info '%s' --quick", p);
    cr_assert_eq(r.status, 0, "--quick skips the frame scan");
    kit_out_free(&r);
    r = kit_rc("info '%s'", p);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "retinac info:") && strstr(r.err, "/train/stimulus: non-finite value"), "%s", r.err);
    kit_out_free(&r);
    r = kit_rc("info '%s' --json", p);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "\"usable\": false") && strstr(r.out, "non-finite"), "%s", r.out);
    kit_out_free(&r);
    r = kit_rc("info '%s' --rate-key nope", p);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/train/response/nope: missing"), "%s", r.err);
    kit_out_free(&r);
    cr_assert_eq(kit_rc_text(out, sizeof out, "info"), 2, "usage error");
}

Test(data, unknown_datasets_ignored_label_keys_checked)
{
    fx o = fx_default();
    const char *p = good("u.h5");
    float z[8] = {0};
    hsize_t d1 = 5;
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    put(f, "/train/response/spikes", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &d1, z);
    put(f, "/test/repeats/notes", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &d1, z);
    put(f, "/train/stas/cell01", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &d1, z);
    H5Fclose(f);
    rc_data_probe pr;
    char err[512];
    cr_assert_eq(rc_data_probe_file(p, NULL, &pr, err, sizeof err), 0, "%s", err);
    cr_assert_eq(pr.n_rate_keys, 2, "binned and firing_rate_10ms only");
    rc_data_close(open_ok(p, NULL));
    /* a label key with the wrong length is an error even if it is not the one selected */
    float *w = calloc((size_t)o.C * 10, sizeof *w);
    hsize_t d2[2] = {(hsize_t)o.C, 10};
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    put(f, "/train/response/firing_rate_5ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, w);
    H5Fclose(f);
    expect_fail(p, 0, "/train/response/firing_rate_5ms: length 10 does not match", NULL);
    free(w);
}

/* Issue 16 (found by fuzz/fuzz_probe): the dtype size is a 32-bit field of the file; a huge one
 * overflowed `size * 8` (signed int) in the type name. Sizes outside 1..8 bytes are refused.
 * Reproducer: fuzz/corpus/probe/regress-dtype-size-overflow.h5. */
Test(data, dtype_size_out_of_range)
{
    fx o = fx_default();
    const char *p = good("sz.h5");
    fx_delete(p, "/train/stimulus");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t it = H5Tcopy(H5T_STD_I32LE);
    cr_assert(H5Tset_size(it, 16) >= 0);
    hsize_t d3[3] = {(hsize_t)o.T, (hsize_t)o.H, (hsize_t)o.W};
    hid_t sp = H5Screate_simple(3, d3, NULL);
    hid_t ds = H5Dcreate2(f, "/train/stimulus", it, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(ds >= 0);
    H5Dclose(ds); H5Sclose(sp); H5Tclose(it); H5Fclose(f);
    expect_fail(p, 0, "/train/stimulus: unsupported dtype (16-byte integer)", NULL);
}
