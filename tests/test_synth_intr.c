/* test_synth_intr.c — simulated interneuron recordings (`retinac synth --interneurons DIR`,
 * rc_synth_write_interneurons, rc_synth_retina_interneurons in sim/synth.h): the files'
 * torch-deep-retina layout and shapes, a binary 0/1 stimulus, the potentials against the
 * noise-free signals of the same retina (noise present but small: 0.1 x sd gives r = 0.995),
 * ON vs OFF bipolars at one pixel, the sign of the ON/OFF responses to light, the causal
 * alignment (value at t from frames < t), determinism, an unchanged recording, and errors.
 * Tiny sizes: 4 cells, 300 calibration frames, 500 interneuron frames.
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

#include "kit.h"
#include "synth.h"

#define T_INTR 500
#define NCELLS 4
#define P (50 * 50)

static char tmpdir[256];

static void mk_tmp(void)
{
    kit_tmpdir(tmpdir, sizeof tmpdir, "rc_synth_intr");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

TestSuite(synth_intr, .init = mk_tmp, .fini = kit_cleanup, .timeout = 60);

static const char *tpath(const char *name) { return kit_path(tmpdir, "%s", name); }

/* The small recording's options, as the command line below spells them. */
static rc_synth_opts small(void)
{
    rc_synth_opts o;
    rc_synth_opts_default(&o);
    o.seed = 3;
    o.cells = NCELLS;
    o.frames = 200;
    o.test_frames = 100;
    o.repeats = 1;
    o.calib_frames = 300;
    o.quiet = 1;
    return o;
}

/* retinac synth with small()'s options; extra: more arguments (words). Returns the exit status;
 * what it printed on stderr goes to *err when err is not NULL (the caller frees it). */
static int synth_cli_err(const char *out, const char *extra, char **err)
{
    kit_out r = kit_rc("synth -o '%s' --seed 3 --cells %d --frames 200 --test-frames 100 --repeats 1 "
                       "--calib-frames 300 --quiet %s", out, NCELLS, extra);
    if (err) {
        *err = r.err;
        r.err = NULL;
    }
    return kit_out_status(r);
}

static int synth_cli(const char *out, const char *extra) { return synth_cli_err(out, extra, NULL); }

static void write_intr(const char *out, const char *dir)
{
    char extra[600];
    snprintf(extra, sizeof extra, "--interneurons '%s' --intr-frames %d", dir, T_INTR);
    cr_assert_eq(synth_cli(out, extra), 0, "retinac synth --interneurons failed");
}

/* Whole dataset read as float (or int), checking its dimensions. */
static void *rd(hid_t f, const char *key, int rank, const int64_t *dims, int as_int)
{
    hid_t ds = H5Dopen2(f, key, H5P_DEFAULT);
    cr_assert(ds >= 0, "missing %s", key);
    hid_t sp = H5Dget_space(ds);
    hsize_t d[4];
    cr_assert_eq(H5Sget_simple_extent_ndims(sp), rank, "%s rank", key);
    H5Sget_simple_extent_dims(sp, d, NULL);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        cr_assert_eq((int64_t)d[i], dims[i], "%s dim %d: %lld, want %lld", key, i, (long long)d[i], (long long)dims[i]);
        n *= d[i];
    }
    hid_t ft = H5Dget_type(ds);
    cr_assert_eq(H5Tget_class(ft), as_int ? H5T_INTEGER : H5T_FLOAT, "%s type class", key);
    if (!as_int) cr_assert_eq(H5Tget_size(ft), 4, "%s: float32", key);
    H5Tclose(ft);
    void *v = malloc(n * 4);
    cr_assert(H5Dread(ds, as_int ? H5T_NATIVE_INT : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return v;
}

static double corr(const float *x, const float *y, int64_t n)
{
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= (double)n;
    my /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

Test(synth_intr, layout_stimulus_and_centres)
{
    write_intr(tpath("r.h5"), tpath("in/tr"));   /* mkdir -p: "in" does not exist yet */
    hid_t fr = H5Fopen(tpath("r.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(fr >= 0);
    int64_t dc[2] = {NCELLS, 2};
    int *gc = rd(fr, "/cells/centers", 2, dc, 1);
    H5Fclose(fr);
    for (int file = 0; file < 2; file++) {
        const char *path = tpath(file == 0 ? "in/tr/bipolars_synth.h5" : "in/tr/amacrines_synth.h5");
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        cr_assert(f >= 0, "missing %s", path);
        int64_t ds[3] = {T_INTR, 50, 50}, dp[2] = {6, T_INTR}, dcc[2] = {6, 2}, dt[1] = {6};
        float *v = rd(f, "/boxes/stimuli", 3, ds, 0);
        float *pot = rd(f, "/boxes/detrended_membrane_potential", 2, dp, 0);
        int *ctr = rd(f, "/centers", 2, dcc, 1);
        int64_t ones = 0;
        for (int64_t i = 0; i < (int64_t)T_INTR * P; i++) {
            cr_assert(v[i] == 0.0f || v[i] == 1.0f, "%s: stimulus value %g at %lld", path, v[i], (long long)i);
            ones += v[i] == 1.0f;
        }
        double frac = (double)ones / ((double)T_INTR * P);
        cr_assert(fabs(frac - 0.5) < 0.01, "half the boxes bright: %.4f", frac);
        /* 2x2 boxes: pixels (2i, 2j) and (2i+1, 2j+1) agree, neighbouring boxes do not always */
        int64_t diff_in = 0, diff_out = 0;
        for (int t = 0; t < T_INTR; t++)
            for (int y = 0; y < 50; y += 2)
                for (int x = 0; x + 2 < 50; x += 2) {
                    const float *fr0 = v + (int64_t)t * P;
                    diff_in += fr0[y * 50 + x] != fr0[(y + 1) * 50 + x + 1];
                    diff_out += fr0[y * 50 + x] != fr0[y * 50 + x + 2];
                }
        cr_assert_eq(diff_in, 0, "boxes are 2x2");
        cr_assert(diff_out > 100000, "boxes independent: %lld", (long long)diff_out);
        for (int j = 0; j < 6; j++) {
            /* bipolars j: OFF/ON pairs at cells 0,0,1,1,2,2; amacrines at cells j mod NCELLS */
            int c = file == 0 ? j / 2 : j % NCELLS;
            cr_assert(ctr[2 * j] == gc[2 * c] && ctr[2 * j + 1] == gc[2 * c + 1], "%s cell %d at (%d,%d), want (%d,%d)",
                      path, j, ctr[2 * j], ctr[2 * j + 1], gc[2 * c], gc[2 * c + 1]);
            double m = 0, s2 = 0;
            for (int t = 0; t < T_INTR; t++) { m += pot[j * T_INTR + t]; s2 += (double)pot[j * T_INTR + t] * pot[j * T_INTR + t]; }
            m /= T_INTR;
            double sd = sqrt(s2 / T_INTR - m * m);
            cr_assert(sd > 0 && isfinite(sd), "%s cell %d: sd %g", path, j, sd);
            cr_assert(fabs(m) < 1e-4 * sd, "%s cell %d: detrended mean %g (sd %g)", path, j, m, sd);
        }
        if (file == 0) {
            int *ty = rd(f, "/types", 1, dt, 1);
            for (int j = 0; j < 6; j++) cr_assert_eq(ty[j], j % 2, "bipolar %d type %d", j, ty[j]);
            free(ty);
        } else {
            cr_assert(H5Lexists(f, "/types", H5P_DEFAULT) <= 0, "amacrines have no /types");
        }
        H5Fclose(f);
        free(v); free(pot); free(ctr);
    }
    free(gc);
}

Test(synth_intr, potentials_are_the_noisy_truth)
{
    write_intr(tpath("r.h5"), tpath("d"));
    rc_synth_opts o = small();
    rc_synth_retina *r;
    char err[512];
    cr_assert_eq(rc_synth_retina_open(&o, &r, err, sizeof err), 0, "%s", err);
    int64_t ds[3] = {T_INTR, 50, 50}, dp[2] = {6, T_INTR}, dc[2] = {6, 2};
    float *on = malloc(6 * T_INTR * sizeof *on), *off = malloc(6 * T_INTR * sizeof *off);
    float *am = malloc(6 * T_INTR * sizeof *am);
    double r_on_off = 0, r_min = 1, r_max = 0;
    for (int file = 0; file < 2; file++) {
        hid_t f = H5Fopen(tpath(file == 0 ? "d/bipolars_synth.h5" : "d/amacrines_synth.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
        cr_assert(f >= 0);
        float *s = rd(f, "/boxes/stimuli", 3, ds, 0);
        float *pot = rd(f, "/boxes/detrended_membrane_potential", 2, dp, 0);
        int *ctr = rd(f, "/centers", 2, dc, 1);
        H5Fclose(f);
        for (int64_t i = 0; i < (int64_t)T_INTR * P; i++) s[i] = 2 * s[i] - 1;   /* prepare_stim, boxes */
        cr_assert_eq(rc_synth_retina_interneurons(r, s, T_INTR, 6, ctr, on, off, am, err, sizeof err), 0, "%s", err);
        for (int j = 0; j < 6; j++) {
            const float *truth = file == 1 ? am + j * T_INTR : j % 2 ? on + j * T_INTR : off + j * T_INTR;
            double c = corr(pot + j * T_INTR, truth, T_INTR);
            cr_log_info("%s %d: r with the noise-free signal %.5f", file ? "amacrine" : "bipolar", j, c);
            /* noise sd 0.1 x signal sd: r = 1/sqrt(1.01) = 0.9950 up to sampling */
            cr_assert(c > 0.99 && c < 0.999, "%s %d: r %.5f with the noise-free signal", file ? "amacrine" : "bipolar", j, c);
            r_min = fmin(r_min, c);
            r_max = fmax(r_max, c);
            if (file == 0) {
                /* the other polarity at the same pixel is a different signal */
                const float *other = j % 2 ? off + j * T_INTR : on + j * T_INTR;
                cr_assert(corr(pot + j * T_INTR, other, T_INTR) < 0.9, "bipolar %d: wrong polarity", j);
            }
        }
        if (file == 0) {
            for (int j = 0; j < 6; j += 2) r_on_off += corr(pot + j * T_INTR, pot + (j + 1) * T_INTR, T_INTR) / 3;
            /* ON bipolars depolarize to light at their pixel (after the filter's latency), OFF hyperpolarize */
            for (int j = 0; j < 2; j++) {
                int px = ctr[2 * j] * 50 + ctr[2 * j + 1];
                double best = 0;
                int lag = 0;
                float *sc = malloc(T_INTR * sizeof *sc);
                for (int k = 1; k <= 10; k++) {
                    for (int t = 0; t < T_INTR; t++) sc[t] = t >= k ? s[(int64_t)(t - k) * P + px] : 0;
                    double c = corr(pot + j * T_INTR + 40, sc + 40, T_INTR - 40);
                    if (fabs(c) > fabs(best)) { best = c; lag = k; }
                }
                free(sc);
                cr_log_info("bipolar %d (%s): peak r with its pixel %.3f at lag %d", j, j ? "ON" : "OFF", best, lag);
                cr_assert(j ? best > 0.2 : best < -0.2, "bipolar %d (%s): r %.3f with light at lag %d", j, j ? "ON" : "OFF", best, lag);
                cr_assert(lag >= 3 && lag <= 9, "bipolar %d: peak lag %d", j, lag);
            }
        }
        free(s); free(pot); free(ctr);
    }
    cr_log_info("file vs noise-free r in [%.5f, %.5f]; ON vs OFF at one pixel r %.3f", r_min, r_max, r_on_off);
    cr_assert(r_on_off < -0.8 && r_on_off > -0.99, "ON vs OFF bipolars at one pixel: r %.3f", r_on_off);
    free(on); free(off); free(am);
    rc_synth_retina_close(r);
}

Test(synth_intr, causal_alignment)
{
    /* the value at t depends on frames < t: changing frame t0 leaves [0, t0] unchanged (bipolar)
     * and [0, t0+1] (amacrine: one more synapse), and changes later values */
    rc_synth_opts o = small();
    rc_synth_retina *r;
    char err[512];
    cr_assert_eq(rc_synth_retina_open(&o, &r, err, sizeof err), 0, "%s", err);
    const int T = 120, t0 = 60, pos[2] = {25, 25};
    float *s = malloc((size_t)T * P * sizeof *s);
    float a[3][T], b[3][T];
    uint64_t x = 99;
    for (int64_t i = 0; i < (int64_t)T * P; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; s[i] = (x >> 40) & 1 ? 1.f : -1.f; }
    cr_assert_eq(rc_synth_retina_interneurons(r, s, T, 1, pos, a[0], a[1], a[2], err, sizeof err), 0, "%s", err);
    for (int i = 0; i < P; i++) s[(int64_t)t0 * P + i] = -s[(int64_t)t0 * P + i];
    cr_assert_eq(rc_synth_retina_interneurons(r, s, T, 1, pos, b[0], b[1], b[2], err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 3; k++) {
        int first = -1;
        for (int t = 0; t < T && first < 0; t++) if (a[k][t] != b[k][t]) first = t;
        cr_log_info("signal %d: first change at t0 + %d", k, first - t0);
        cr_assert(first > t0 + (k == 2), "signal %d changed at %d, frame %d was changed", k, first, t0);
        cr_assert(first >= 0 && first <= t0 + 10, "signal %d: no response to frame %d (first change %d)", k, t0, first);
    }
    /* NULL outputs are allowed and do not change the others */
    float c1[T];
    cr_assert_eq(rc_synth_retina_interneurons(r, s, T, 1, pos, NULL, c1, NULL, err, sizeof err), 0, "%s", err);
    cr_assert(!memcmp(c1, b[1], sizeof c1), "bip_off with other outputs NULL");
    int bad[2] = {10, 50};
    cr_assert_eq(rc_synth_retina_interneurons(r, s, T, 1, bad, b[0], NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "(10, 50)"), "error names the pixel: %s", err);
    free(s);
    rc_synth_retina_close(r);
}

Test(synth_intr, recording_unchanged_and_deterministic)
{
    write_intr(tpath("with.h5"), tpath("i1"));
    write_intr(tpath("with2.h5"), tpath("i2"));
    cr_assert_eq(synth_cli(tpath("without.h5"), ""), 0);
    cr_assert(kit_same_bytes(tpath("with.h5"), tpath("without.h5")), "--interneurons changed the recording");
    cr_assert(kit_same_bytes(tpath("i1/bipolars_synth.h5"), tpath("i2/bipolars_synth.h5")), "bipolars not deterministic");
    cr_assert(kit_same_bytes(tpath("i1/amacrines_synth.h5"), tpath("i2/amacrines_synth.h5")), "amacrines not deterministic");
    /* another seed: another stimulus (and noise) */
    cr_assert_eq(kit_out_status(kit_rc("synth -o '%s' --seed 4 --cells %d --frames 200 --test-frames 100 --repeats 1 "
                                       "--calib-frames 300 --quiet --interneurons '%s' --intr-frames %d",
                                       tpath("s4.h5"), NCELLS, tpath("i4"), T_INTR)), 0);
    cr_assert(!kit_same_bytes(tpath("i1/bipolars_synth.h5"), tpath("i4/bipolars_synth.h5")), "seed ignored");
    /* no temp files left behind */
    DIR *d = opendir(tpath("i1"));
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(n, 2, "i1 holds %d entries, want the 2 files", n);
}

Test(synth_intr, errors)
{
    /* a directory under a regular file: clear error, non-zero exit, nothing written */
    kit_write_text(tpath("plain"), "x\n");
    char extra[700], *err_text;
    snprintf(extra, sizeof extra, "--interneurons '%s'", tpath("plain/sub"));
    int rc = synth_cli_err(tpath("bad.h5"), extra, &err_text);
    cr_assert_neq(rc, 0, "bad DIR accepted");
    cr_assert(err_text[0], "nothing on stderr");
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(err_text, "\n") + 1, err_text);
    free(err_text);
    cr_assert(strstr(line, "plain") && strstr(line, "not a directory"), "error line: %s", line);
    cr_assert(access(tpath("bad.h5"), F_OK) != 0, "recording written despite the error");
    /* bad --intr-frames and --cheap */
    cr_assert_eq(kit_out_status(kit_rc("synth -o '%s' --interneurons '%s' --intr-frames 10", tpath("z.h5"), tpath("zz"))), 2);
    cr_assert_eq(kit_out_status(kit_rc("synth -o '%s' --cheap --interneurons '%s'", tpath("z.h5"), tpath("zz"))), 2);
    rc_synth_opts o = small();
    char err[512];
    cr_assert_eq(rc_synth_write_interneurons(tpath("plain/x"), &o, 500, err, sizeof err), -1);
    cr_assert(strstr(err, "plain/x"), "library error names DIR: %s", err);
    cr_assert_eq(rc_synth_write_interneurons(tpath("ok"), &o, 50, err, sizeof err), -1);
    cr_assert(strstr(err, "50"), "%s", err);
}
