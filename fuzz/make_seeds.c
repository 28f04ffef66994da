/* make_seeds.c — writes the small HDF5 recordings of the fuzz seed corpus (fuzz/corpus/probe/)
 * and the tiny recording the checkpoint seeds are trained on (fuzz/make_corpus.sh runs it).
 *
 * `retinac synth` cannot go below 50x50 frames and 200 frames (about 1 MB), too large for seeds
 * that a fuzzer mutates byte by byte, so these are written here with the HDF5 API: a few frames
 * of a few pixels, each file exercising one branch of the prober (Baccus layout with every
 * optional part, per-cell repeats "cellNN", a training split only, the openretina layout).
 * Every file is a pure function of this program (no timestamps: obj_track_times off).
 * usage: make_seeds OUTDIR   (writes OUTDIR/probe/*.h5 and OUTDIR/train_rec.h5); exit 0 / 1.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/tiny_retina.h"

static int put(hid_t f, const char *key, hid_t mem, hid_t file_type, int rank, const hsize_t *dims,
               const void *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, key, file_type, sp, lcpl, dcpl, H5P_DEFAULT);
    int rc = d >= 0 && H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    if (rc) fprintf(stderr, "make_seeds: cannot write %s\n", key);
    return rc;
}

static int attr_str(hid_t f, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, t, v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static int attr_i64(hid_t f, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static hid_t create(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f < 0) fprintf(stderr, "make_seeds: cannot create %s\n", p);
    return f;
}

/* (n) values: a deterministic pattern in [0, scale) */
static float *pattern(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++) v[i] = (float)((i * 2654435761u) % 1000u) * scale / 1000.0f;
    return v;
}

/* Baccus layout, everything optional present: uint8 8x8 frames, times, 2 cells, two rate keys,
 * test repeats, true_rate, centres, the synth root attributes. */
static int baccus_full(const char *dir)
{
    enum { H = 8, W = 8, C = 2, TR = 48, TE = 44, R = 2 };
    hid_t f = create(dir, "baccus_full.h5");
    if (f < 0) return -1;
    int rc = 0;
    unsigned char *fr = malloc((size_t)TR * H * W);
    for (size_t i = 0; i < (size_t)TR * H * W; i++) fr[i] = (unsigned char)(i * 37u);
    float *lab = pattern((size_t)R * C * TR, 3.0f), *tm = pattern(TR, 1.0f);
    for (int t = 0; t < TR; t++) tm[t] = 0.01f * (float)t;
    hsize_t d3[3] = {TR, H, W}, d2[2] = {C, TR}, d1[1] = {TR};
    rc |= put(f, "/train/stimulus", H5T_NATIVE_UCHAR, H5T_STD_U8LE, 3, d3, fr);
    rc |= put(f, "/train/time", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, d1, tm);
    rc |= put(f, "/train/response/firing_rate_10ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    rc |= put(f, "/train/response/binned", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    d3[0] = TE; d2[1] = TE; d1[0] = TE;
    rc |= put(f, "/test/stimulus", H5T_NATIVE_UCHAR, H5T_STD_U8LE, 3, d3, fr);
    rc |= put(f, "/test/time", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, d1, tm);
    rc |= put(f, "/test/response/firing_rate_10ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    rc |= put(f, "/test/response/binned", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    rc |= put(f, "/test/response/true_rate", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    hsize_t dr[3] = {R, C, TE};
    rc |= put(f, "/test/repeats/firing_rate_10ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, dr, lab);
    int centers[C][2] = {{2, 3}, {5, 4}};
    hsize_t dc[2] = {C, 2};
    rc |= put(f, "/cells/centers", H5T_NATIVE_INT, H5T_STD_I32LE, 2, dc, centers);
    rc |= attr_str(f, "generator", "retinac synth (fuzz seed)");
    rc |= attr_i64(f, "seed", 1);
    rc |= attr_str(f, "stimulus", "whitenoise");
    free(fr); free(lab); free(tm);
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* Baccus layout with per-cell repeats /test/repeats/cellNN (repeats,T), float32 4x4 frames,
 * integer labels. */
static int baccus_cellnn(const char *dir)
{
    enum { H = 4, W = 4, C = 2, TR = 45, TE = 42, R = 3 };
    hid_t f = create(dir, "baccus_cellnn.h5");
    if (f < 0) return -1;
    int rc = 0;
    float *fr = pattern((size_t)TR * H * W, 1.0f), *rep = pattern((size_t)R * TE, 2.0f);
    int *lab = malloc((size_t)C * TR * sizeof *lab);
    for (int i = 0; i < C * TR; i++) lab[i] = i % 3;
    hsize_t d3[3] = {TR, H, W}, d2[2] = {C, TR};
    rc |= put(f, "/train/stimulus", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, d3, fr);
    rc |= put(f, "/train/response/firing_rate_10ms", H5T_NATIVE_INT, H5T_STD_I16LE, 2, d2, lab);
    d3[0] = TE; d2[1] = TE;
    rc |= put(f, "/test/stimulus", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, d3, fr);
    rc |= put(f, "/test/response/firing_rate_10ms", H5T_NATIVE_INT, H5T_STD_I16LE, 2, d2, lab);
    hsize_t dr[2] = {R, TE};
    rc |= put(f, "/test/repeats/cell00", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, dr, rep);
    rc |= put(f, "/test/repeats/cell01", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, dr, rep);
    free(fr); free(rep); free(lab);
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* Baccus layout, training split only: float64 3x5 frames, one label key. */
static int baccus_train_only(const char *dir)
{
    enum { H = 3, W = 5, C = 1, TR = 50 };
    hid_t f = create(dir, "baccus_train_only.h5");
    if (f < 0) return -1;
    double *fr = malloc((size_t)TR * H * W * sizeof *fr);
    for (int i = 0; i < TR * H * W; i++) fr[i] = (i % 7) - 3.0;
    float *lab = pattern((size_t)C * TR, 1.0f);
    hsize_t d3[3] = {TR, H, W}, d2[2] = {C, TR};
    int rc = put(f, "/train/stimulus", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 3, d3, fr);
    rc |= put(f, "/train/response/firing_rate_10ms", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, lab);
    free(fr); free(lab);
    return H5Fclose(f) < 0 ? -1 : rc;
}

/* openretina layout: responses_<stim> (cells,T); frames in the file as stimulus_<stim>,
 * (1,T,H,W) uint8 for "a", (T,H,W) float32 for "test". */
static int openretina(const char *dir)
{
    enum { H = 6, W = 6, C = 2, TA = 50, TT = 42 };
    hid_t f = create(dir, "openretina.h5");
    if (f < 0) return -1;
    int rc = 0;
    unsigned char *fa = malloc((size_t)TA * H * W);
    for (int i = 0; i < TA * H * W; i++) fa[i] = (unsigned char)(i * 13u);
    float *ft = pattern((size_t)TT * H * W, 1.0f), *ra = pattern((size_t)C * TA, 4.0f);
    hsize_t d4[4] = {1, TA, H, W}, d3[3] = {TT, H, W}, d2[2] = {C, TA};
    rc |= put(f, "/stimulus_a", H5T_NATIVE_UCHAR, H5T_STD_U8LE, 4, d4, fa);
    rc |= put(f, "/responses_a", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, ra);
    d2[1] = TT;
    rc |= put(f, "/stimulus_test", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, d3, ft);
    rc |= put(f, "/responses_test", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, d2, ra);
    free(fa); free(ft); free(ra);
    return H5Fclose(f) < 0 ? -1 : rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: make_seeds OUTDIR\n"); return 1; }
    char probe[1024], train[1024];
    snprintf(probe, sizeof probe, "%s/probe", argv[1]);
    snprintf(train, sizeof train, "%s/train_rec.h5", argv[1]);
    int rc = baccus_full(probe) | baccus_cellnn(probe) | baccus_train_only(probe) | openretina(probe);
    /* 16x16 tiny retina (tests/tiny_retina.h) for training the checkpoint seeds: 400 frames */
    rc |= tiny_retina_write(train, 3, 400, 60, 2);
    return rc ? 1 : 0;
}
