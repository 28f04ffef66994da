/* test_synth.c — `retinac synth` and the simulated retina (sim/synth.h): the Baccus layout
 * it writes (read back through the data layer), plausible rates, repeat reliability well above
 * zero and below one, the noise-free ceiling above the repeat reliability, the 1/f^2 spectrum of
 * the natural-like images and frames (log-log slope of the radially averaged power spectrum, by
 * a direct DFT), binary white noise, byte-for-byte determinism for a seed, atomic writes, the
 * parameter overrides and the command line.
 */
#include <criterion/criterion.h>
#include <dirent.h>
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
#include "synth.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    kit_tmpdir(tmpdir, sizeof tmpdir, "rc_synth");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

TestSuite(synth, .init = mk_tmp, .fini = kit_cleanup, .timeout = 120);

static const char *tpath(const char *name) { return kit_path(tmpdir, "%s", name); }

static rc_synth_opts small(void)
{
    rc_synth_opts o;
    rc_synth_opts_default(&o);
    o.frames = 2000;
    o.test_frames = 1200;
    o.cells = 6;
    o.repeats = 6;
    o.quiet = 1;
    return o;
}

static void synth_ok(const char *path, const rc_synth_opts *o)
{
    char err[1024];
    cr_assert_eq(rc_synth_write(path, o, err, sizeof err), 0, "%s", err);
}

/* Whole dataset as float (n elements expected), or as int. */
static float *rd(hid_t f, const char *key, int64_t n)
{
    hid_t ds = H5Dopen2(f, key, H5P_DEFAULT);
    cr_assert(ds >= 0, "missing %s", key);
    hid_t sp = H5Dget_space(ds);
    cr_assert_eq(H5Sget_simple_extent_npoints(sp), n, "%s size", key);
    float *v = malloc((size_t)n * sizeof *v);
    cr_assert(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return v;
}

static double corr(const float *a, const float *b, int64_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
    ma /= n; mb /= n;
    for (int64_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

/* ---------------------------------------------------------------------------------------- */

Test(synth, layout_rates_reliability)
{
    rc_synth_opts o = small();
#ifdef __SANITIZE_ADDRESS__
    o.calib_frames = 1000;   /* the sanitizer build runs the retina ~13x slower */
#endif
    const char *p = tpath("nat.h5");
    synth_ok(p, &o);
    /* what the data layer sees */
    rc_data_probe pr;
    char err[1024];
    cr_assert_eq(rc_data_probe_file(p, NULL, &pr, err, sizeof err), 0, "%s", err);
    cr_assert_eq(pr.layout, RC_LAYOUT_BACCUS);
    cr_assert(pr.is_synthetic && pr.synth_seed == 1);
    cr_assert_str_eq(pr.synth_stimulus, "naturalscene");
    cr_assert(pr.frames[0] == 2000 && pr.frames[1] == 1200 && pr.h == 50 && pr.w == 50 && pr.cells == 6);
    cr_assert_str_eq(pr.stim_dtype, "uint8");
    cr_assert(pr.has_time && pr.has_centers && pr.has_truth);
    cr_assert_eq(pr.repeats, 6);
    const char *keys[4] = {"binned", "firing_rate_10ms", "firing_rate_20ms", "firing_rate_5ms"};
    cr_assert_eq(pr.n_rate_keys, 4);
    for (int i = 0; i < 4; i++) cr_assert_str_eq(pr.rate_keys[i], keys[i]);
    rc_data *d;
    cr_assert_eq(rc_data_open(p, NULL, &d, err, sizeof err), 0, "%s", err);
    rc_test_set t;
    cr_assert_eq(rc_data_test(d, &t, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(t.truth);
    cr_assert_eq(t.n_repeats, 6);
    const rc_data_info *in = rc_data_get_info(d);
    for (int c = 0; c < 6; c++) {
        /* compact RFs in the central region: a 25x25 patch of a 15+11 conv chain sees them */
        cr_assert(in->centers[2 * c] >= 12 && in->centers[2 * c] <= 37 && in->centers[2 * c + 1] >= 12 && in->centers[2 * c + 1] <= 37);
    }
    rc_test_set_free(&t);
    rc_data_close(d);

    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    const int64_t T = 2000, Tt = 1200, C = 6, R = 6, H = 40, n = Tt - H;
    float *lam = rd(f, "/truth/train_lambda", C * T);
    float *bin = rd(f, "/train/response/binned", C * T);
    float *fr = rd(f, "/train/response/firing_rate_10ms", C * T);
    float *rep = rd(f, "/test/repeats/firing_rate_10ms", R * C * Tt);
    float *avg = rd(f, "/test/response/firing_rate_10ms", C * Tt);
    float *tru = rd(f, "/test/response/true_rate", C * Tt);
    float *a = malloc((size_t)Tt * sizeof *a), *b = malloc((size_t)Tt * sizeof *b);
    for (int c = 0; c < C; c++) {
        double ml = 0, mx = 0, sb = 0, sf = 0;
        for (int64_t t = 200; t < T; t++) { ml += lam[c * T + t]; mx = fmax(mx, lam[c * T + t]); }
        for (int64_t t = 0; t < T; t++) { sb += bin[c * T + t]; sf += fr[c * T + t]; }
        ml /= (double)(T - 200);
        cr_assert(ml > 1 && ml < 40, "cell %d: mean rate %.1f spikes/s outside 1..40", c, ml);
        cr_assert(mx < 1000, "cell %d: peak rate %.0f spikes/s", c, mx);
        cr_assert(mx > 3 * ml, "cell %d: responses should be modulated (peak %.0f, mean %.1f)", c, mx, ml);
        /* spikes: Poisson counts whose mean follows lambda; smoothing keeps the mass */
        double counts = sb, expect = 0;
        for (int64_t t = 0; t < T; t++) expect += lam[c * T + t] * 0.01;
        cr_assert(fabs(counts - expect) < 5 * sqrt(expect) + 5, "cell %d: %.0f spikes for an expected %.0f", c, counts, expect);
        cr_assert(fabs(sf * 0.01 - sb) < 0.01 * sb + 1, "cell %d: firing_rate_10ms integrates to the spike count", c);
        /* split-half reliability of the repeats: well above 0, below 1 */
        for (int64_t i = 0; i < n; i++) {
            a[i] = b[i] = 0;
            for (int q = 0; q < R; q++) (q % 2 ? b : a)[i] += rep[((int64_t)q * C + c) * Tt + H + i];
        }
        double sh = corr(a, b, n), ceil = corr(tru + c * Tt + H, avg + c * Tt + H, n);
        cr_log_info("cell %d: mean %.1f Hz, peak %.0f Hz, split-half r %.3f, ceiling %.3f", c, ml, mx, sh, ceil);
        cr_assert(sh > 0.3 && sh < 0.98, "cell %d: split-half reliability %.3f", c, sh);
        cr_assert(ceil > sh && ceil < 0.999, "cell %d: ceiling %.3f vs split-half %.3f", c, ceil, sh);
        /* the trial average is the mean of the repeats */
        for (int64_t i = 0; i < Tt; i += 97) {
            double s = 0;
            for (int q = 0; q < R; q++) s += rep[((int64_t)q * C + c) * Tt + i];
            cr_assert_float_eq(avg[c * Tt + i], s / R, 1e-3 + 1e-5 * fabs(s));
        }
    }
    free(a); free(b); free(lam); free(bin); free(fr); free(rep); free(avg); free(tru);
    /* the parameters travel with the file */
    hid_t g = H5Gopen2(f, "/truth", H5P_DEFAULT);
    cr_assert(g >= 0);
    cr_assert(H5Aexists(g, "cgc_k") > 0 && H5Aexists(g, "amacrine_weight") > 0 && H5Aexists(g, "u_ref") > 0);
    H5Gclose(g);
    H5Fclose(f);
}

/* Radially averaged power spectrum of n x n real images (direct DFT); slope of log P vs log f
 * fitted over radial frequencies lo..hi (cycles per image). */
static double spectrum_slope(const double *img, int n, int count, int lo, int hi)
{
    double *pw = calloc((size_t)n, sizeof *pw);
    int *cnt = calloc((size_t)n, sizeof *cnt);
    double *re = malloc((size_t)n * n * sizeof *re), *im = malloc((size_t)n * n * sizeof *im);
    double *cs = malloc((size_t)n * sizeof *cs), *sn = malloc((size_t)n * sizeof *sn);
    for (int k = 0; k < n; k++) { cs[k] = cos(2 * M_PI * k / n); sn[k] = sin(2 * M_PI * k / n); }
    for (int m = 0; m < count; m++) {
        const double *x = img + (size_t)m * n * n;
        double mean = 0;
        for (int i = 0; i < n * n; i++) mean += x[i];
        mean /= (double)n * n;
        /* rows, then columns */
        for (int r = 0; r < n; r++)
            for (int k = 0; k < n; k++) {
                double a = 0, b = 0;
                for (int c = 0; c < n; c++) { int e = (k * c) % n; a += (x[r * n + c] - mean) * cs[e]; b -= (x[r * n + c] - mean) * sn[e]; }
                re[r * n + k] = a; im[r * n + k] = b;
            }
        for (int k2 = 0; k2 < n; k2++) {
            int fy = k2 <= n / 2 ? k2 : n - k2;
            for (int k = 0; k < n; k++) {
                double a = 0, b = 0;
                for (int r = 0; r < n; r++) {
                    int e = (k2 * r) % n;
                    a += re[r * n + k] * cs[e] + im[r * n + k] * sn[e];
                    b += im[r * n + k] * cs[e] - re[r * n + k] * sn[e];
                }
                int fx = k <= n / 2 ? k : n - k;
                int f = (int)lround(sqrt((double)(fx * fx + fy * fy)));
                if (f < n) { pw[f] += a * a + b * b; cnt[f]++; }
            }
        }
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int f = lo; f <= hi; f++) {
        double lx = log((double)f), ly = log(pw[f] / cnt[f]);
        sx += lx; sy += ly; sxx += lx * lx; sxy += lx * ly; m++;
    }
    free(pw); free(cnt); free(re); free(im); free(cs); free(sn);
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

Test(synth, natural_images_are_one_over_f_squared)
{
    const int n = 64, count = 4;
    double *img = malloc((size_t)count * n * n * sizeof *img);
    for (int m = 0; m < count; m++) cr_assert_eq(rc_synth_image(9, (uint64_t)m, n, img + (size_t)m * n * n), 0);
    double s = spectrum_slope(img, n, count, 2, 24);
    cr_log_info("1/f^2 image spectrum slope %.3f", s);
    cr_assert(s > -2.2 && s < -1.8, "image spectrum slope %.3f, expected about -2", s);
    /* the images are standardized */
    double mean = 0, var = 0;
    for (int i = 0; i < n * n; i++) mean += img[i];
    mean /= n * n;
    for (int i = 0; i < n * n; i++) var += (img[i] - mean) * (img[i] - mean);
    cr_assert(fabs(mean) < 1e-9 && fabs(var / (n * n) - 1) < 1e-9);
    cr_assert_eq(rc_synth_image(9, 0, 48, img), -1, "sizes are powers of two");
    free(img);
}

Test(synth, natural_frames_spectrum_and_jitter)
{
    rc_synth_opts o = small();
    o.frames = 400;
    o.test_frames = 200;
    o.cells = 2;
    o.repeats = 2;
    o.calib_frames = 300;
    const char *p = tpath("fr.h5");
    synth_ok(p, &o);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    float *v = rd(f, "/train/stimulus", 400 * 2500);
    H5Fclose(f);
    /* one frame from each of 4 images (1 s = 100 frames each) */
    const int count = 4;
    double *img = malloc((size_t)count * 2500 * sizeof *img);
    for (int m = 0; m < count; m++)
        for (int i = 0; i < 2500; i++) img[(size_t)m * 2500 + i] = v[(size_t)(m * 100 + 50) * 2500 + i];
    double s = spectrum_slope(img, 50, count, 2, 16);
    cr_log_info("frame spectrum slope %.3f", s);
    cr_assert(s > -2.5 && s < -1.6, "frame spectrum slope %.3f, expected about -2", s);
    /* fixational jitter: within an image consecutive frames are shifted copies (mostly equal
     * up to a shift), across an image boundary they are unrelated */
    int moved = 0;
    for (int t = 1; t < 100; t++) moved += memcmp(v + (size_t)t * 2500, v + (size_t)(t - 1) * 2500, 2500 * sizeof *v) != 0;
    cr_assert(moved > 40 && moved < 99, "%d of 99 frames moved", moved);
    double within = corr(v + 10 * 2500, v + 11 * 2500, 2500), across = corr(v + 99 * 2500, v + 100 * 2500, 2500);
    cr_assert(within > 0.5, "frames of one image correlate (%.2f)", within);
    cr_assert(fabs(across) < 0.5, "frames of two images do not (%.2f)", across);
    double mn = 1e9, mx = -1e9;
    for (int i = 0; i < 400 * 2500; i++) { mn = fmin(mn, v[i]); mx = fmax(mx, v[i]); }
    cr_assert(mn >= 0 && mx <= 255 && mx - mn > 150, "uint8 range used: %g..%g", mn, mx);
    free(img);
    free(v);
}

Test(synth, white_noise_is_binary_and_white)
{
    rc_synth_opts o = small();
    o.frames = 400;
    o.test_frames = 200;
    o.cells = 2;
    o.repeats = 2;
    o.stimulus = RC_SYNTH_WHITENOISE;
    o.float32 = 1;
    o.calib_frames = 300;
    const char *p = tpath("wn.h5");
    synth_ok(p, &o);
    rc_data_probe pr;
    char err[512];
    cr_assert_eq(rc_data_probe_file(p, NULL, &pr, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(pr.synth_stimulus, "whitenoise");
    cr_assert_str_eq(pr.stim_dtype, "float32");
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    float *v = rd(f, "/train/stimulus", 400 * 2500);
    H5Fclose(f);
    int64_t hi = 0;
    for (int64_t i = 0; i < 400 * 2500; i++) {
        cr_assert(v[i] == 0.15f || v[i] == 0.85f, "value %g is not one of the two levels", v[i]);
        hi += v[i] > 0.5f;
    }
    cr_assert(fabs(hi / 1e6 - 0.5) < 0.005, "fraction bright %.4f", hi / 1e6);
    double nb = 0, nt = 0;   /* neighbour and frame-to-frame correlations */
    for (int t = 0; t < 399; t++) {
        nb += corr(v + (size_t)t * 2500, v + (size_t)t * 2500 + 1, 2499) / 399;
        nt += corr(v + (size_t)t * 2500, v + (size_t)(t + 1) * 2500, 2500) / 399;
    }
    cr_log_info("white noise: neighbour r %.4f, frame-to-frame r %.4f, bright %.4f", nb, nt, hi / 1e6);
    cr_assert(fabs(nb) < 0.02 && fabs(nt) < 0.02, "white: neighbour r %.3f, frame r %.3f", nb, nt);
    free(v);
}

Test(synth, deterministic_for_a_seed)
{
    rc_synth_opts o = small();
    o.frames = 300;
    o.test_frames = 200;
    o.cells = 3;
    o.repeats = 2;
    o.calib_frames = 300;
    synth_ok(tpath("a.h5"), &o);
    synth_ok(tpath("b.h5"), &o);
    cr_assert(kit_same_bytes(tpath("a.h5"), tpath("b.h5")), "same seed: identical files");
    o.seed = 2;
    synth_ok(tpath("c.h5"), &o);
    cr_assert(!kit_same_bytes(tpath("a.h5"), tpath("c.h5")), "another seed: another file");
    /* no temporary file left behind */
    DIR *dd = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(dd))) cr_assert(!strstr(e->d_name, ".tmp"), "left %s", e->d_name);
    closedir(dd);
}

Test(synth, errors_and_overrides)
{
    rc_synth_opts o = small();
    o.frames = 300;
    o.test_frames = 200;
    o.cells = 2;
    o.repeats = 2;
    o.calib_frames = 300;
    char err[1024];
    cr_assert_eq(rc_synth_write(tpath("no/such/dir/x.h5"), &o, err, sizeof err), -1);
    cr_assert(strstr(err, tpath("no/such/dir/x.h5")) && strstr(err, "cannot write") &&
              strstr(err, "No such file or directory"), "%s", err);
    rc_synth_opts b = o;
    b.cells = 0;
    cr_assert_eq(rc_synth_write(tpath("x.h5"), &b, err, sizeof err), -1);
    cr_assert(strstr(err, "cells 0"), "%s", err);
    b = o;
    const char *bad[1] = {"cgc_k=abc"};
    b.sets = bad;
    b.n_sets = 1;
    cr_assert_eq(rc_synth_write(tpath("x.h5"), &b, err, sizeof err), -1);
    cr_assert(strstr(err, "cgc_k"), "%s", err);
    cr_assert_eq(access(tpath("x.h5"), F_OK), -1, "nothing written on error");
    const char *sets[2] = {"cgc_k=0.5", "amacrine_weight=0"};
    b.sets = sets;
    b.n_sets = 2;
    synth_ok(tpath("x.h5"), &b);
    hid_t f = H5Fopen(tpath("x.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = H5Aopen_by_name(f, "/truth", "cgc_k", H5P_DEFAULT, H5P_DEFAULT);
    double v = -1;
    cr_assert(a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    cr_assert_eq(v, 0.5);
    H5Aclose(a);
    H5Fclose(f);
}

/* retinac ARGS (printf-formatted words): the exit status; what it prints is not looked at */
#define run(...) kit_out_status(kit_rc(__VA_ARGS__))

Test(synth, command_line)
{
    cr_assert_eq(run("synth -o '%s' --frames 300 --test-frames 150 --cells 3 --repeats 5 --seed 4 --dtype float32 --calib-frames 300 --quiet",
                     tpath("cli.h5")), 0);
    cr_assert_eq(run("info '%s'", tpath("cli.h5")), 0, "retinac info accepts what synth writes");
    rc_data_probe pr;
    char err[512];
    cr_assert_eq(rc_data_probe_file(tpath("cli.h5"), NULL, &pr, err, sizeof err), 0, "%s", err);
    cr_assert(pr.cells == 3 && pr.repeats == 5 && pr.frames[0] == 300 && pr.frames[1] == 150 && pr.synth_seed == 4);
    cr_assert_str_eq(pr.stim_dtype, "float32");
    cr_assert_eq(run("synth --frames 300"), 2, "-o is required");
    cr_assert_eq(run("synth -o '%s' --stimulus movies", tpath("z.h5")), 2);
    cr_assert_eq(run("synth -o '%s' --set nope=1 --frames 300", tpath("z.h5")), 1);
    cr_assert_eq(run("synth -o '%s' --cheap --frames 5000 --cells 2 --quiet", tpath("cheap.h5")), 0);
    cr_assert_eq(rc_data_probe_file(tpath("cheap.h5"), NULL, &pr, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(pr.synth_stimulus, "cheap-whitenoise");
}
