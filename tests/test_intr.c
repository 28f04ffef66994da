/* test_intr.c — model units vs interneurons (analysis/intr.c, `retinac interneurons`).
 *
 * Planted answers: the "interneurons" of a test file are chosen units of the model itself
 * (computed here by the reference backend on an independently prepared movie: 2v - 1, centred
 * zero padding, one scalar z-score), affinely transformed plus 1% noise. The analysis must
 * find exactly those units, with the Pearson r this file computes directly; a one-frame error
 * in pairing windows with potentials, a wrong padding offset or a wrong unit index breaks that.
 * FFT and reference paths agree. The command writes its table, JSON and HDF5, and bad input
 * gives one-line errors naming the file and key.
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "checkpoint.h"
#include "h5util.h"
#include "intr.h"
#include "ir.h"
#include "kit.h"
#include "model.h"
#include "rng.h"

enum { HIST = 6, H = 12, W = 14, SH = 10, SW = 11, T = 400, CELLS = 2 };   /* not square: rows != cols */

typedef struct {
    rc_ir ir;
    rc_checkpoint ck;
    int ids[CELLS];
} fx;

static void fx_make(fx *f)
{
    memset(f, 0, sizeof *f);
    char text[1024], err[512];
    snprintf(text, sizeof text,
             "retinac-ir 1\nmodel t\ninput history=%d height=%d width=%d\n"
             "layer conv channels=3 kernel=5\nlayer batchnorm over=unit\nlayer relu\n"
             "layer conv channels=2 kernel=3\nlayer relu\nlayer dense\nlayer softplus\nend\n", HIST, H, W);
    cr_assert_eq(rc_ir_parse(&f->ir, text, "test", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&f->ir, CELLS, "test", err, sizeof err), 0, "%s", err);
    rc_checkpoint *ck = &f->ck;
    ck->ir = &f->ir;
    ck->spec_text = rc_ir_format(&f->ir);
    rc_ir_hash(&f->ir, ck->spec_hash);
    ck->params = malloc((size_t)f->ir.params_total * sizeof(float));
    ck->state = malloc((size_t)(f->ir.state_total + 1) * sizeof(float));
    cr_assert(ck->spec_text && ck->params && ck->state);
    rc_params_init(&f->ir, 3, ck->params, ck->state);
    for (int s = 0; s < f->ir.n_state; s++) {          /* non-trivial running statistics */
        const rc_param *v = &f->ir.state[s];
        int is_var = strstr(v->name, "var") != NULL;
        for (int64_t k = 0; k < v->count; k++)
            ck->state[v->offset + k] = is_var ? 0.5f + rc_rng_uniform(4, 10 + s, k) : 0.2f * (rc_rng_uniform(4, 20 + s, k) - 0.5f);
    }
    ck->cells = CELLS;
    for (int n = 0; n < CELLS; n++) f->ids[n] = n;
    ck->cell_ids = f->ids;
    ck->norm_mean = 0;
    ck->norm_std = 1;
    snprintf(ck->backend, sizeof ck->backend, "ref");
    snprintf(ck->device, sizeof ck->device, "cpu");
}

static void fx_free(fx *f)
{
    free(f->ck.params);
    free(f->ck.state);
    free(f->ck.spec_text);
}

/* The stimulus (T, SH, SW) in {0,1}, and the potentials of the two planted cells: cell 0 =
 * unit (ch 2, row 3, col 4) of layer 1, cell 1 = 2 x unit (ch 1, row 2, col 2) of layer 4 + 3,
 * each plus noise of 1% of its sd; the first HIST samples are noise only. r_true: the Pearson r
 * of each potential with its unit over the windows, computed here. */
static void make_data(fx *f, float *stim, float *pot, double r_true[CELLS])
{
    for (int64_t i = 0; i < (int64_t)T * SH * SW; i++) stim[i] = rc_rng_uniform(21, 1, (uint64_t)i) < 0.5f ? 0.0f : 1.0f;
    /* independent preparation: s = 2v - 1, centred zero padding, one scalar z-score */
    const int64_t n = (int64_t)T * H * W;
    float *movie = calloc((size_t)n, sizeof *movie);
    cr_assert(movie);
    const int r0 = (H - SH) / 2, c0 = (W - SW) / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < SH; i++)
            for (int j = 0; j < SW; j++)
                movie[((int64_t)t * H + r0 + i) * W + c0 + j] = 2.0f * stim[((int64_t)t * SH + i) * SW + j] - 1.0f;
    double s = 0, ss = 0;
    for (int64_t e = 0; e < n; e++) s += movie[e];
    double m = s / n;
    for (int64_t e = 0; e < n; e++) ss += (movie[e] - m) * (movie[e] - m);
    double sd = sqrt(ss / n) + 1e-5;
    for (int64_t e = 0; e < n; e++) movie[e] = (float)((movie[e] - m) / sd);
    /* the units on every window, by the reference backend */
    rc_backend *be;
    cr_assert_eq(rc_ref_backend_create(&f->ir, &be), 0);
    const int NW = T - HIST;
    int64_t *starts = malloc((size_t)NW * sizeof *starts);
    float *ws = malloc(be->ws_floats(be, NW) * sizeof *ws), *y = malloc((size_t)NW * CELLS * sizeof *y);
    cr_assert(starts && ws && y);
    for (int b = 0; b < NW; b++) starts[b] = b;
    cr_assert_eq(rc_ref_eval_forward(be, NW, f->ck.params, f->ck.state, NULL, movie, starts, NULL, y, ws), 0, "%s", be->err);
    const float *l1 = rc_ref_eval_output(be, NW, ws, 0), *l4 = rc_ref_eval_output(be, NW, ws, 3);
    cr_assert(l1 && l4);
    const int64_t U1 = 3 * 8 * 10, U4 = 2 * 6 * 8, u1 = (2 * 8 + 3) * 10 + 4, u4 = (1 * 6 + 2) * 8 + 2;
    for (int c = 0; c < CELLS; c++) {
        double su = 0, suu = 0;
        for (int b = 0; b < NW; b++) {
            double u = c == 0 ? l1[b * U1 + u1] : l4[b * U4 + u4];
            su += u; suu += u * u;
        }
        double usd = sqrt(suu / NW - (su / NW) * (su / NW));
        cr_assert_gt(usd, 1e-3, "planted unit %d is dead: pick another", c);
        for (int t = 0; t < T; t++) pot[(int64_t)c * T + t] = (float)(0.01 * usd * rc_rng_normal(22, 1 + c, (uint64_t)t));
        for (int b = 0; b < NW; b++) {
            double u = c == 0 ? l1[b * U1 + u1] : 2 * l4[b * U4 + u4] + 3;
            pot[(int64_t)c * T + b + HIST] += (float)u;
        }
        double sx = 0, sxx = 0, sy = 0, syy = 0, sxy = 0;
        for (int b = 0; b < NW; b++) {
            double x = c == 0 ? l1[b * U1 + u1] : l4[b * U4 + u4], yv = pot[(int64_t)c * T + b + HIST];
            sx += x; sxx += x * x; sy += yv; syy += yv * yv; sxy += x * yv;
        }
        double cov = sxy / NW - sx / NW * sy / NW;
        r_true[c] = cov / sqrt((sxx / NW - sx / NW * sx / NW) * (syy / NW - sy / NW * sy / NW));
    }
    rc_backend_destroy(be);
    free(movie); free(starts); free(ws); free(y);
}

static void write_file(const char *path, const float *stim, const float *pot, const char *stimkey)
{
    char err[256], key[64];
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    hid_t g = H5Gcreate2(h, stimkey, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(g, 0);
    H5Gclose(g);
    int64_t ds[3] = {T, SH, SW}, dp[2] = {CELLS, T};
    snprintf(key, sizeof key, "/%s/stimuli", stimkey);
    cr_assert_eq(rc_h5_write_all(h, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, ds, stim), 0);
    snprintf(key, sizeof key, "/%s/detrended_membrane_potential", stimkey);
    cr_assert_eq(rc_h5_write_all(h, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dp, pot), 0);
    cr_assert_geq(H5Fclose(h), 0, "%s", err);
}

static char tmpdir[256];
static void mk_tmp(void) { kit_tmpdir(tmpdir, sizeof tmpdir, "retinac_intr"); }
static void rm_tmp(void) { cr_assert_eq(kit_rmtree(tmpdir), 0); }

Test(intr, finds_the_planted_units_with_the_exact_r, .init = mk_tmp, .fini = rm_tmp)
{
    fx f;
    fx_make(&f);
    float *stim = malloc((size_t)T * SH * SW * sizeof *stim), *pot = malloc((size_t)CELLS * T * sizeof *pot);
    cr_assert(stim && pot);
    double r_true[CELLS];
    make_data(&f, stim, pot, r_true);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/bipolars_test.h5", tmpdir);
    write_file(path, stim, pot, "boxes");
    const char *files[1] = {path};
    rc_intr_opts o;
    rc_intr_opts_default(&o);
    o.batch = 64;                               /* several batches: the pairing crosses batches */
    rc_intr_result r, q;
    for (int fft = 1; fft >= 0; fft--) {
        o.fft = fft;
        rc_intr_result *res = fft ? &r : &q;
        cr_assert_eq(rc_intr_compute(&f.ck, files, 1, &o, res, err, sizeof err), 0, "%s", err);
        cr_assert_eq(res->n_layers, 2, "default: the two conv layers");
        cr_assert(res->layers[0] == 0 && res->layers[1] == 3);
        cr_assert_eq(res->n_cells, CELLS);
        const rc_intr_unit *a = &res->cells[0].best[0], *b = &res->cells[1].best[1];
        cr_assert(a->chan == 2 && a->row == 3 && a->col == 4, "cell 0: ch %d (%d,%d)", a->chan, a->row, a->col);
        cr_assert(b->chan == 1 && b->row == 2 && b->col == 2, "cell 1: ch %d (%d,%d)", b->chan, b->row, b->col);
        cr_assert_eq(res->cells[0].best_k, 0);
        cr_assert_eq(res->cells[1].best_k, 1);
        cr_assert_gt(r_true[0], 0.99);
        cr_assert_lt(fabs(a->r - r_true[0]), 1e-5, "cell 0: r %.7f, directly %.7f", a->r, r_true[0]);
        cr_assert_lt(fabs(b->r - r_true[1]), 1e-5, "cell 1: r %.7f, directly %.7f", b->r, r_true[1]);
        cr_assert_eq(res->cells[0].windows, T - HIST);
        cr_assert_str_eq(res->cells[0].type, "bipolar");
        /* the map holds r of every unit: the planted unit's entry is the best */
        cr_assert_lt(fabs(res->cells[0].maps[(2 * 8 + 3) * 10 + 4] - a->r), 1e-6);
    }
    for (int c = 0; c < CELLS; c++)
        for (int64_t u = 0; u < r.map_floats; u++)
            cr_assert_lt(fabs(r.cells[c].maps[u] - q.cells[c].maps[u]), 1e-4, "FFT vs reference, cell %d unit %lld", c, (long long)u);
    rc_intr_free(&r);
    rc_intr_free(&q);
    free(stim); free(pot);
    fx_free(&f);
}

Test(intr, type_from_the_file_name)
{
    cr_assert_str_eq(rc_intr_type_of("/x/bipolars_late_2012.h5"), "bipolar");
    cr_assert_str_eq(rc_intr_type_of("amacrines_early_2012.h5"), "amacrine");
    cr_assert_str_eq(rc_intr_type_of("d/horizontals_late_2012.h5"), "horizontal");
    cr_assert_str_eq(rc_intr_type_of("unks_17-10-18.h5"), "unknown");
}

/* retinac interneurons ARGS, stdout and stderr into out; the exit status */
static int run(const char *args, char *out, size_t n) { return kit_rc_text(out, n, "interneurons %s", args); }

Test(intr, command_table_json_hdf5_and_errors, .init = mk_tmp, .fini = rm_tmp)
{
    fx f;
    fx_make(&f);
    float *stim = malloc((size_t)T * SH * SW * sizeof *stim), *pot = malloc((size_t)CELLS * T * sizeof *pot);
    cr_assert(stim && pot);
    double r_true[CELLS];
    make_data(&f, stim, pot, r_true);
    char ck[512], data[512], outp[512], args[1800], buf[16384], err[512];
    snprintf(ck, sizeof ck, "%s/ck.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(ck, &f.ck, err, sizeof err), 0, "%s", err);
    snprintf(data, sizeof data, "%s/amacrines_x.h5", tmpdir);
    write_file(data, stim, pot, "boxes");
    snprintf(outp, sizeof outp, "%s/intr.h5", tmpdir);
    snprintf(args, sizeof args, "%s %s -o %s", ck, data, outp);
    cr_assert_eq(run(args, buf, sizeof buf), 0, "%s", buf);
    cr_assert(strstr(buf, "amacrines_x.h5") && strstr(buf, "mean best r:  amacrine"), "%s", buf);
    cr_assert(strstr(buf, "1.conv ch 2 (3,4)") && strstr(buf, "4.conv ch 1 (2,2)"), "%s", buf);
    hid_t h = H5Fopen(outp, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    double best[CELLS * 2 * 5];
    hid_t d = H5Dopen2(h, "/best", H5P_DEFAULT);
    cr_assert_geq(d, 0);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, best), 0);
    H5Dclose(d);
    cr_assert(best[0] == 1 && best[1] == 2 && best[2] == 3 && best[3] == 4, "cell 0 layer 1 row of /best");
    cr_assert_lt(fabs(best[4] - r_true[0]), 1e-5);
    cr_assert_eq(rc_h5_is_dataset(h, "/cells/1"), 1);
    H5Fclose(h);

    snprintf(args, sizeof args, "%s %s --layers 4 --json", ck, data);
    cr_assert_eq(run(args, buf, sizeof buf), 0, "%s", buf);
    cr_assert(strstr(buf, "\"layers\": [4]") || strstr(buf, "\"layers\":[4]"), "%s", buf);
    cr_assert(strstr(buf, "\"type\": \"amacrine\"") || strstr(buf, "\"type\":\"amacrine\""), "%s", buf);

    /* errors: the file and the key, exit 1; usage errors exit 2 */
    snprintf(args, sizeof args, "%s %s --stim lines", ck, data);
    cr_assert_eq(run(args, buf, sizeof buf), 1, "%s", buf);
    cr_assert(strstr(buf, "amacrines_x.h5") && strstr(buf, "/lines/stimuli"), "%s", buf);
    snprintf(args, sizeof args, "%s %s --layers 9", ck, data);
    cr_assert_eq(run(args, buf, sizeof buf), 1, "%s", buf);
    cr_assert(strstr(buf, "no layer 9"), "%s", buf);
    snprintf(args, sizeof args, "%s %s --layers x", ck, data);
    cr_assert_eq(run(args, buf, sizeof buf), 2, "%s", buf);
    snprintf(args, sizeof args, "%s", ck);
    cr_assert_eq(run(args, buf, sizeof buf), 2, "%s", buf);
    free(stim); free(pot);
    fx_free(&f);
}
