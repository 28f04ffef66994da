/* test_rf.c — receptive fields (analysis/rf.c) and the reference's eval-mode input gradient
 * (rc_ref_eval_forward / rc_ref_eval_grad in runtime/backend/ref.c).
 *
 * - The input gradient against central finite differences for every layer kind in eval mode
 *   (BN with running statistics, noise and dropout inactive), a linear layer 0 of each form
 *   (plain, tiled, stacked conv, dense) applied adjointly once, and a non-linear layer 0.
 * - rc_rf_compute with layer 1 by FFT equals the all-reference computation.
 * - A linear model's gradient STA is its filter exactly; its reverse-correlation STA converges
 *   to the filter; both split-half reliabilities behave as they must.
 * - The rank-1 summary recovers a known separable RF (centre, radius, polarity, lag).
 * - `retinac rf` end to end on a saved checkpoint: table, JSON, HDF5, errors.
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
#include "ir.h"
#include "kit.h"
#include "model.h"
#include "rf.h"
#include "rng.h"

static void build_ir(rc_ir *ir, const char *input, const char *layers, int cells)
{
    char text[4096], err[512];
    snprintf(text, sizeof text, "retinac-ir 1\nmodel t\ninput %s\n%send\n", input, layers);
    cr_assert_eq(rc_ir_parse(ir, text, "test", err, sizeof err), 0, "parse: %s\n%s", err, text);
    cr_assert_eq(rc_ir_infer(ir, cells, "test", err, sizeof err), 0, "infer: %s\n%s", err, text);
}

/* Init params, then give every BN non-trivial running statistics and scales of both signs. */
static void init_model(const rc_ir *ir, float *params, float *state, uint64_t seed)
{
    rc_params_init(ir, seed, params, state);
    for (int p = 0; p < ir->n_params; p++) {
        const rc_param *v = &ir->params[p];
        size_t nl = strlen(v->name);
        if (nl > 6 && !strcmp(v->name + nl - 6, ".scale"))
            for (int64_t k = 0; k < v->count; k++)
                params[v->offset + k] = (k % 3 == 1 ? -1.f : 1.f) * (0.5f + rc_rng_uniform(seed, 900 + p, k));
        if (nl > 6 && !strcmp(v->name + nl - 6, ".shift"))
            for (int64_t k = 0; k < v->count; k++) params[v->offset + k] = rc_rng_uniform(seed, 950 + p, k) - 0.5f;
    }
    for (int s = 0; s < ir->n_state; s++) {
        const rc_param *v = &ir->state[s];
        int is_var = strstr(v->name, "var") != NULL;
        for (int64_t k = 0; k < v->count; k++)
            state[v->offset + k] = is_var ? 0.5f + rc_rng_uniform(seed, 1000 + s, k)
                                          : 0.4f * (rc_rng_uniform(seed, 1100 + s, k) - 0.5f);
    }
}

/* L = sum_{b,n} dy[b,n] y[b,n] in eval mode. */
static double eval_loss(rc_backend *be, int B, const float *params, const float *state,
                        const int *pos, const float *frames, const int64_t *starts,
                        const float *dy, float *y, float *ws)
{
    cr_assert_eq(rc_ref_eval_forward(be, B, params, state, pos, frames, starts, NULL, y, ws), 0,
                 "%s", be->err);
    double L = 0;
    for (int i = 0; i < B * be->ir->cells; i++) L += (double)dy[i] * y[i];
    return L;
}

/* The batch-summed input gradient against central differences, on non-overlapping windows
 * (sample b's window is frames b*history .. so a frame belongs to one sample only). */
static void fd_input(const char *input, const char *layers, int cells, double tol)
{
    rc_ir ir;
    build_ir(&ir, input, layers, cells);
    rc_backend *be;
    cr_assert_eq(rc_ref_backend_create(&ir, &be), 0);
    const int B = 3, C = ir.history;
    const int64_t hw = (int64_t)ir.in.h * ir.in.w, win = C * hw, T = (int64_t)B * C;
    float *params = malloc((size_t)ir.params_total * sizeof *params);
    float *state = malloc((size_t)(ir.state_total + 1) * sizeof *state);
    float *frames = malloc((size_t)T * hw * sizeof *frames);
    float *ws = malloc(be->ws_floats(be, B) * sizeof *ws);
    float *y = malloc((size_t)B * cells * sizeof *y), *dy = malloc((size_t)B * cells * sizeof *dy);
    float *dx = calloc((size_t)win, sizeof *dx);
    int64_t starts[3];
    int pos[2 * 8];
    cr_assert(params && state && frames && ws && y && dy && dx);
    init_model(&ir, params, state, 11);
    for (int64_t i = 0; i < T * hw; i++) frames[i] = rc_rng_normal(5, 1, (uint64_t)i);
    for (int i = 0; i < B * cells; i++) dy[i] = rc_rng_normal(6, 1, (uint64_t)i);
    for (int b = 0; b < B; b++) starts[b] = (int64_t)b * C;
    int gc = rc_gc_layer(&ir);
    if (gc >= 0) {
        const rc_layer *L = &ir.layers[gc];
        int ho = L->in.h - L->kernel + 1, wo = L->in.w - L->kernel + 1;
        for (int n = 0; n < cells; n++) { pos[2 * n] = (n * 2) % ho; pos[2 * n + 1] = (n * 3 + 1) % wo; }
    }
    const int *cp = gc >= 0 ? pos : NULL;
    eval_loss(be, B, params, state, cp, frames, starts, dy, y, ws);
    cr_assert_eq(rc_ref_eval_grad(be, B, params, cp, frames, starts, dy, dx, ws), 0, "%s", be->err);
    double worst = 0, scale = 0;
    for (int64_t e = 0; e < win; e++) scale = fmax(scale, fabs(dx[e]));
    cr_assert_gt(scale, 0, "%s: the input gradient is all zero", layers);
    for (int k = 0; k < 24; k++) {                    /* 24 random (channel, pixel) entries */
        int64_t e = (int64_t)(rc_rng_uniform(7, 2, (uint64_t)k) * (float)win) % win;
        double fd = 0, h = 1e-2;
        for (int b = 0; b < B; b++) {
            float *v = frames + (int64_t)b * win + e, keep = *v;
            *v = keep + (float)h;
            double lp = eval_loss(be, B, params, state, cp, frames, starts, dy, y, ws);
            *v = keep - (float)h;
            double lm = eval_loss(be, B, params, state, cp, frames, starts, dy, y, ws);
            *v = keep;
            fd += (lp - lm) / (2 * h);
        }
        worst = fmax(worst, fabs(fd - dx[e]) / scale);
    }
    cr_assert_lt(worst, tol, "%s: input gradient off by %.2e of its scale", layers, worst);
    rc_backend_destroy(be);
    free(params); free(state); free(frames); free(ws); free(y); free(dy); free(dx);
}

#define IN "history=3 height=9 width=9"

Test(rf, input_gradient_plain_tiled_stacked_and_dense_first_layers)
{
    fd_input(IN, "layer conv channels=3 kernel=3 bias=true\nlayer softplus\nlayer dense bias=true\n", 2, 2e-3);
    fd_input(IN, "layer conv channels=2 kernel=3 period=2\nlayer tanh\n"
                 "layer conv channels=2 kernel=2 period=3\nlayer softplus\nlayer dense\n", 2, 2e-3);
    fd_input(IN, "layer conv channels=2 kernel=5 stack=3 stack_dropout=0.3\nlayer softplus\n"
                 "layer conv channels=2 kernel=3 stack=2\nlayer dense\n", 2, 2e-3);
    fd_input(IN, "layer dense units=4 bias=true\nlayer tanh\nlayer dense bias=true\n", 3, 2e-3);
}

Test(rf, input_gradient_eval_mode_batchnorm_noise_dropout_gcconv)
{
    fd_input(IN, "layer conv channels=3 kernel=3\nlayer batchnorm over=unit abs=true\nlayer noise std=0.5\n"
                 "layer softplus\nlayer conv channels=2 kernel=3\nlayer batchnorm over=channel\n"
                 "layer dropout p=0.4\nlayer tanh\nlayer dense\nlayer batchnorm\nlayer softplus\n", 3, 3e-3);
    fd_input(IN, "layer conv channels=3 kernel=3\nlayer batchnorm over=channel\nlayer softplus\n"
                 "layer gcconv kernel=3 bias=true\nlayer batchnorm abs=true\nlayer softplus\n", 3, 3e-3);
}

Test(rf, input_gradient_through_a_nonlinear_first_layer)
{
    /* layer 0 not linear: per-sample input gradients are summed instead */
    fd_input(IN, "layer tanh\nlayer conv channels=2 kernel=3\nlayer softplus\nlayer dense\n", 2, 2e-3);
}

/* An in-memory checkpoint of the given model (random params, 3 cells or `cells`). */
typedef struct {
    rc_ir ir;
    rc_checkpoint ck;
    int ids[8], pos[16], centers[16];
} ck_fx;

static void ck_make(ck_fx *f, const char *input, const char *layers, int cells, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    build_ir(&f->ir, input, layers, cells);
    rc_checkpoint *ck = &f->ck;
    ck->ir = &f->ir;
    ck->spec_text = rc_ir_format(&f->ir);
    rc_ir_hash(&f->ir, ck->spec_hash);
    ck->params = malloc((size_t)f->ir.params_total * sizeof(float));
    ck->state = malloc((size_t)(f->ir.state_total + 1) * sizeof(float));
    cr_assert(ck->spec_text && ck->params && ck->state);
    init_model(&f->ir, ck->params, ck->state, seed);
    ck->cells = cells;
    for (int n = 0; n < cells; n++) {
        f->ids[n] = 10 + n;
        f->centers[2 * n] = 3 + n;
        f->centers[2 * n + 1] = 4 + n;
    }
    ck->cell_ids = f->ids;
    ck->norm_mean = 0;
    ck->norm_std = 1;
    int gc = rc_gc_layer(&f->ir);
    if (gc >= 0) {
        char err[256];
        cr_assert_eq(rc_gc_positions(&f->ir, f->centers, f->pos, err, sizeof err), 0, "%s", err);
        ck->cell_pos = f->pos;
    }
    snprintf(ck->backend, sizeof ck->backend, "ref");
    snprintf(ck->device, sizeof ck->device, "cpu");
}

static void ck_free(ck_fx *f)
{
    free(f->ck.params);
    free(f->ck.state);
    free(f->ck.spec_text);
}

static void fft_vs_ref(const char *layers)
{
    ck_fx f;
    ck_make(&f, "history=6 height=14 width=14", layers, 2, 3);
    rc_rf_opts o;
    rc_rf_opts_default(&o);
    o.samples = 40;
    o.batch = 16;
    o.revcor = 0;
    rc_rf_result a, b;
    char err[512];
    cr_assert_eq(rc_rf_compute(&f.ck, &o, &a, err, sizeof err), 0, "%s", err);
    o.fft = 0;
    cr_assert_eq(rc_rf_compute(&f.ck, &o, &b, err, sizeof err), 0, "%s", err);
    size_t n = (size_t)2 * 6 * 14 * 14;
    double d = kit_rel_l2(a.grad, b.grad, n);
    cr_assert_lt(d, 1e-5, "%s: FFT layer 1 vs reference: relative L2 %.2e", layers, d);
    rc_rf_free(&a);
    rc_rf_free(&b);
    ck_free(&f);
}

Test(rf, first_layer_by_fft_equals_the_reference)
{
    fft_vs_ref("layer conv channels=3 kernel=5 bias=true\nlayer batchnorm over=unit\nlayer relu\n"
               "layer conv channels=2 kernel=3\nlayer softplus\nlayer dense\nlayer softplus\n");
    fft_vs_ref("layer conv channels=3 kernel=7 stack=3\nlayer batchnorm over=channel\nlayer relu\n"
               "layer gcconv kernel=3\nlayer softplus\n");
}

Test(rf, linear_model_gradient_sta_is_its_filter_and_revcor_converges_to_it)
{
    ck_fx f;
    ck_make(&f, "history=4 height=8 width=8", "layer dense bias=true\n", 2, 9);
    const rc_param *w = rc_ir_find_param(&f.ir, "1.dense.weight");
    cr_assert(w);
    rc_rf_opts o;
    rc_rf_opts_default(&o);
    o.samples = 8192;
    o.batch = 512;
    o.revcor = 1;
    rc_rf_result r;
    char err[512];
    cr_assert_eq(rc_rf_compute(&f.ck, &o, &r, err, sizeof err), 0, "%s", err);
    const size_t win = 4 * 8 * 8;
    for (int n = 0; n < 2; n++) {
        const float *W = f.ck.params + w->offset + n * win;
        cr_assert_lt(kit_rel_l2(r.grad + n * win, W, win), 1e-6, "cell %d: gradient STA is not W", n);
        cr_assert_gt(r.grad_cell[n].reliability, 0.999999, "cell %d", n);
        /* revcor: z-scored response, so the STA is W / sd(y); compare directions */
        double dot = 0, a2 = 0, b2 = 0;
        for (size_t e = 0; e < win; e++) {
            dot += (double)r.revcor[n * win + e] * W[e];
            a2 += (double)r.revcor[n * win + e] * r.revcor[n * win + e];
            b2 += (double)W[e] * W[e];
        }
        double cosv = dot / sqrt(a2 * b2);
        /* expected ~ sqrt(N / (N + dims)) = 0.985 for independent windows; overlap costs a bit */
        cr_assert_gt(cosv, 0.9, "cell %d: revcor STA vs filter: cos %.3f", n, cosv);
        cr_assert_gt(r.revcor_cell[n].reliability, 0.8, "cell %d: %.3f", n, r.revcor_cell[n].reliability);
        cr_assert_lt(r.revcor_cell[n].reliability, 0.9999, "cell %d: noise cannot be this reliable", n);
    }
    rc_rf_free(&r);
    ck_free(&f);
}

Test(rf, summary_recovers_a_separable_receptive_field)
{
    enum { HIST = 10, H = 16, W = 16 };
    static float sta[HIST * H * W], sp[H * W], tp[HIST];
    const double r0 = 5.3, c0 = 7.1, sg = 1.5;
    /* temporal: biphasic, strongest (negative: an OFF cell) at channel 7 = lag 3 */
    double t[HIST];
    for (int c = 0; c < HIST; c++) t[c] = -exp(-0.5 * pow((c - 7) / 1.0, 2)) + 0.3 * exp(-0.5 * pow((c - 4) / 1.5, 2));
    for (int c = 0; c < HIST; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                sta[(c * H + y) * W + x] =
                    (float)(t[c] * exp(-((y - r0) * (y - r0) + (x - c0) * (x - c0)) / (2 * sg * sg)));
    rc_rf_cell c;
    cr_assert_eq(rc_rf_summarize(sta, HIST, H, W, sp, tp, &c), 0);
    cr_assert_gt(c.rank1, 0.9999);
    cr_assert_eq(c.polarity, -1);
    cr_assert_eq(c.peak_lag, 3);
    cr_assert_eq(c.peak_row, 5);
    cr_assert_eq(c.peak_col, 7);
    cr_assert_lt(fabs(c.row - r0), 0.15, "row %.3f", c.row);
    cr_assert_lt(fabs(c.col - c0), 0.15, "col %.3f", c.col);
    /* RMS radius of a Gaussian's profile above 20% of its peak: 0.957 sigma (continuum) */
    cr_assert_lt(fabs(c.sigma - 0.957 * sg), 0.1 * sg, "sigma %.3f", c.sigma);
    cr_assert_gt(sp[5 * W + 7], 0, "spatial peak made positive");
    cr_assert_lt(tp[7], 0, "the sign lives in the temporal filter");

    /* a second, weaker hot spot far away does not move the centre or widen the radius */
    for (int c2 = 0; c2 < HIST; c2++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                sta[(c2 * H + y) * W + x] += (float)(0.6 * t[c2] *
                    exp(-((y - 12.0) * (y - 12.0) + (x - 12.0) * (x - 12.0)) / (2 * sg * sg)));
    rc_rf_cell c2;
    cr_assert_eq(rc_rf_summarize(sta, HIST, H, W, sp, tp, &c2), 0);
    cr_assert_lt(fabs(c2.row - r0), 0.15, "row %.3f with a second hot spot", c2.row);
    cr_assert_lt(fabs(c2.col - c0), 0.15, "col %.3f with a second hot spot", c2.col);
    cr_assert_lt(fabs(c2.sigma - c.sigma), 0.05 * sg, "sigma %.3f vs %.3f", c2.sigma, c.sigma);
}

/* ---------------------------------------------------------------- the command */

static char tmpdir[256];
static void mk_tmp(void) { kit_tmpdir(tmpdir, sizeof tmpdir, "retinac_rf"); }
static void rm_tmp(void) { cr_assert_eq(kit_rmtree(tmpdir), 0); }

/* retinac rf ARGS, stdout and stderr into out; the exit status */
static int run(const char *args, char *out, size_t n) { return kit_rc_text(out, n, "rf %s", args); }

Test(rf, command_writes_table_json_and_hdf5, .init = mk_tmp, .fini = rm_tmp)
{
    ck_fx f;
    ck_make(&f, "history=5 height=16 width=16 crop=12",
            "layer conv channels=2 kernel=5\nlayer batchnorm over=unit\nlayer relu\nlayer dense\n"
            "layer softplus\n", 2, 4);
    f.ck.centers = f.centers;
    f.ck.crop_row0 = 2;                /* a 12x12 crop of a 16x16 frame, stored with the centres */
    char path[512], outp[512], args[1200], buf[8192], err[512];
    snprintf(path, sizeof path, "%s/ck.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(path, &f.ck, err, sizeof err), 0, "%s", err);
    snprintf(outp, sizeof outp, "%s/rf.h5", tmpdir);
    snprintf(args, sizeof args, "%s --samples 96 --batch 32 --backend ref --method both -o %s", path, outp);
    cr_assert_eq(run(args, buf, sizeof buf), 0, "%s", buf);
    cr_assert(strstr(buf, "gradient STA") && strstr(buf, "reverse-correlation STA"), "%s", buf);
    cr_assert(strstr(buf, "|d| to recording centre"), "%s", buf);
    hid_t h = H5Fopen(outp, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    static const char *const sets[] = {"/grad/sta", "/grad/spatial", "/grad/temporal", "/grad/center",
                                       "/revcor/sta", "/revcor/reliability", "/cell_ids"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        hid_t d = H5Dopen2(h, sets[i], H5P_DEFAULT);
        cr_assert_geq(d, 0, "%s missing", sets[i]);
        hid_t s = H5Dget_space(d);
        hsize_t dims[4];
        int rank = H5Sget_simple_extent_dims(s, dims, NULL);
        cr_assert_eq(dims[0], 2, "%s: first dimension is the cells", sets[i]);
        if (!strcmp(sets[i], "/grad/sta")) {
            cr_assert_eq(rank, 4);
            cr_assert(dims[1] == 5 && dims[2] == 12 && dims[3] == 12);
        }
        H5Sclose(s);
        H5Dclose(d);
    }
    /* the file's STA equals the library's for the same options */
    float *sta = malloc(2 * 5 * 144 * sizeof *sta);
    cr_assert(sta);
    int64_t crop_row0 = -1;
    hid_t at = H5Aopen(h, "crop_row0", H5P_DEFAULT);
    cr_assert_geq(at, 0, "crop_row0 attribute missing");
    cr_assert_geq(H5Aread(at, H5T_NATIVE_INT64, &crop_row0), 0);
    H5Aclose(at);
    cr_assert_eq(crop_row0, f.ck.crop_row0);
    hid_t d = H5Dopen2(h, "/grad/sta", H5P_DEFAULT);
    cr_assert_geq(d, 0);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, sta), 0);
    H5Dclose(d);
    H5Fclose(h);
    rc_rf_opts o;
    rc_rf_opts_default(&o);
    o.samples = 96; o.batch = 32; o.backend = "ref"; o.revcor = 1;
    rc_rf_result r;
    cr_assert_eq(rc_rf_compute(&f.ck, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert_lt(kit_rel_l2(sta, r.grad, 2 * 5 * 144), 1e-7);
    rc_rf_free(&r);
    free(sta);

    snprintf(args, sizeof args, "%s --samples 64 --method grad --json", path);
    cr_assert_eq(run(args, buf, sizeof buf), 0, "%s", buf);
    cr_assert(strstr(buf, "\"grad\"") && !strstr(buf, "\"revcor\""), "%s", buf);
    cr_assert(strstr(buf, "\"reliability\""), "%s", buf);

    /* errors: one line, non-zero */
    snprintf(args, sizeof args, "%s/missing.h5", tmpdir);
    cr_assert_eq(run(args, buf, sizeof buf), 1, "%s", buf);
    cr_assert(strstr(buf, "missing.h5"), "%s", buf);
    snprintf(args, sizeof args, "%s --method sideways", path);
    cr_assert_eq(run(args, buf, sizeof buf), 2, "%s", buf);
    cr_assert(strstr(buf, "--method 'sideways'"), "%s", buf);
    snprintf(args, sizeof args, "%s --samples 1", path);
    cr_assert_eq(run(args, buf, sizeof buf), 2, "%s", buf);
    ck_free(&f);
}
