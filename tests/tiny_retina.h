/* tiny_retina.h — a test-size synthetic recording (Baccus layout) written by the training and
 * checkpoint tests: 16x16 binary white noise at "100 Hz", a few ganglion cells each pooling four
 * rectified subunits (ON subunits plus weaker OFF subunits, so the response is strongly
 * nonlinear: an LN model sees only the small linear part, a CNN can learn the subunits),
 * Poisson spike counts per bin, and a repeated test movie.
 *
 * Ground truth (frames at t-1..t-4 drive rate(t), inside any history >= 5):
 *   u_j(t)  = sum_{lag=1..4} f[lag] * sum over a 3x3 box of s(t-lag)   (4 boxes per cell)
 *   g(t)    = sum_j relu(u_j) + 0.3 relu(-u_j)
 *   lambda  = 0.05 + 0.8 softplus(1.5 (g - g0) / gs)   spikes per bin
 *   labels  = counts / bin (the "rate"); test avg = mean of the repeats; true_rate = lambda
 * A pure function of the seed. Header-only (static functions) for the test binaries.
 */
#ifndef TINY_RETINA_H
#define TINY_RETINA_H

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define TINY_HW 16
#define TINY_CELLS 3

static const int tiny_centers[TINY_CELLS][2] = {{5, 5}, {8, 10}, {10, 6}};

static float tiny_pixel(uint64_t seed, int split, int64_t t, int p)
{
    return rc_rng_uniform(seed, 100 + (uint64_t)split, (uint64_t)t * 256 + (uint64_t)p) < 0.5f ? 0.f : 1.f;
}

/* lambda (T, cells) for frames (T, 16, 16) in {0,1}; rows t < 4 are the baseline. */
static void tiny_lambda(const float *fr, int64_t T, double *lam)
{
    static const double f[5] = {0, 1.0, 0.5, -0.4, -0.2};
    static const int off[4][2] = {{-2, -2}, {-2, 2}, {2, -2}, {2, 2}};
    const double g0 = 2.2, gs = 1.6;
    for (int64_t t = 0; t < T; t++)
        for (int c = 0; c < TINY_CELLS; c++) {
            double g = 0;
            for (int j = 0; j < 4 && t >= 4; j++) {
                double u = 0;
                int r0 = tiny_centers[c][0] + off[j][0], c0 = tiny_centers[c][1] + off[j][1];
                for (int lag = 1; lag <= 4; lag++)
                    for (int dr = -1; dr <= 1; dr++)
                        for (int dc = -1; dc <= 1; dc++)
                            u += f[lag] * (2.0 * fr[((t - lag) * TINY_HW + r0 + dr) * TINY_HW + c0 + dc] - 1.0);
                g += u > 0 ? u : -0.3 * u;
            }
            double z = 1.5 * (g - g0) / gs;
            double sp = z > 20 ? z : log1p(exp(z));
            lam[t * TINY_CELLS + c] = 0.05 + 0.8 * sp;
        }
}

static float tiny_poisson(double lam, uint64_t seed, uint64_t stream, uint64_t idx)
{
    double L = exp(-lam), p = 1.0;
    int k = 0;
    do {
        p *= rc_rng_uniform(seed, stream, idx * 64 + (uint64_t)k);
        k++;
    } while (p > L && k < 60);
    return (float)(k - 1);
}

static int tiny_write_ds(hid_t f, const char *path, int rank, const hsize_t *dims, hid_t mt,
                         const void *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ft = mt == H5T_NATIVE_INT ? H5T_STD_I32LE : H5T_IEEE_F32LE;
    hid_t d = H5Dcreate2(f, path, ft, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d >= 0 && H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
    return rc;
}

/* Write the recording: T_train training frames, T_test test frames, `repeats` test trials. */
static int tiny_retina_write(const char *path, uint64_t seed, int64_t T_train, int64_t T_test,
                             int repeats)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = 0;
    for (int split = 0; split < 2 && rc == 0; split++) {
        int64_t T = split ? T_test : T_train;
        float *fr = malloc((size_t)T * TINY_HW * TINY_HW * sizeof *fr);
        double *lam = malloc((size_t)T * TINY_CELLS * sizeof *lam);
        float *resp = malloc((size_t)T * TINY_CELLS * sizeof *resp);
        float *rep = malloc((size_t)repeats * T * TINY_CELLS * sizeof *rep);
        float *truth = malloc((size_t)T * TINY_CELLS * sizeof *truth);
        if (!fr || !lam || !resp || !rep || !truth) rc = -1;
        if (rc == 0) {
            for (int64_t t = 0; t < T; t++)
                for (int p = 0; p < TINY_HW * TINY_HW; p++) fr[t * TINY_HW * TINY_HW + p] = tiny_pixel(seed, split, t, p);
            tiny_lambda(fr, T, lam);
            const char *sn = split ? "test" : "train";
            char key[128];
            hsize_t ds[3] = {(hsize_t)T, TINY_HW, TINY_HW};
            snprintf(key, sizeof key, "/%s/stimulus", sn);
            rc |= tiny_write_ds(f, key, 3, ds, H5T_NATIVE_FLOAT, fr);
            int R = split ? repeats : 1;
            /* (cells, T) layout on disk; repeats (R, cells, T) */
            for (int r = 0; r < R; r++)
                for (int c = 0; c < TINY_CELLS; c++)
                    for (int64_t t = 0; t < T; t++)
                        rep[((int64_t)r * TINY_CELLS + c) * T + t] =
                            tiny_poisson(lam[t * TINY_CELLS + c], seed, 10 + (uint64_t)split * 1000 + (uint64_t)r,
                                         (uint64_t)(t * TINY_CELLS + c));
            for (int c = 0; c < TINY_CELLS; c++)
                for (int64_t t = 0; t < T; t++) {
                    double s = 0;
                    for (int r = 0; r < R; r++) s += rep[((int64_t)r * TINY_CELLS + c) * T + t];
                    resp[c * T + t] = (float)(s / R);
                    truth[c * T + t] = (float)lam[t * TINY_CELLS + c];
                }
            hsize_t dr[2] = {TINY_CELLS, (hsize_t)T};
            snprintf(key, sizeof key, "/%s/response/firing_rate_10ms", sn);
            rc |= tiny_write_ds(f, key, 2, dr, H5T_NATIVE_FLOAT, resp);
            if (split) {
                hsize_t d3[3] = {(hsize_t)repeats, TINY_CELLS, (hsize_t)T};
                rc |= tiny_write_ds(f, "/test/repeats/firing_rate_10ms", 3, d3, H5T_NATIVE_FLOAT, rep);
                rc |= tiny_write_ds(f, "/test/response/true_rate", 2, dr, H5T_NATIVE_FLOAT, truth);
            }
        }
        free(fr); free(lam); free(resp); free(rep); free(truth);
    }
    if (rc == 0) {
        hsize_t dc[2] = {TINY_CELLS, 2};
        rc |= tiny_write_ds(f, "/cells/centers", 2, dc, H5T_NATIVE_INT, tiny_centers);
    }
    if (H5Fclose(f) < 0) rc = -1;
    return rc;
}

/* An LN model of the tiny spec's input: one dense filter + bias per cell, softplus. */
static const char tiny_ln_spec[] =
    "return model \"tiny_ln\" {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  dense { bias = true },\n"
    "  softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },\n"
    "}\n";

#endif
