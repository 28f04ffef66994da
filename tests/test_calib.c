/* test_calib.c — the fit-quality steps of the trainer (runtime/train_calib.c, issue 20):
 *   - output_init: which parameter each output form sets and to what (softplus^-1 and log of
 *     the mean rate; forms without one are left alone with a reason);
 *   - a fresh model trained with a vanishing learning rate predicts each cell's mean rate with
 *     output_init = "mean_rate", and PyTorch's 0.69-ish with "torch";
 *   - bn_stats = "precise": the running variance saved with the weights equals the batch-norm
 *     input's variance over a large independent batch of training windows for those weights
 *     (the EMA's lag is gone), closer than the EMA's;
 *   - output_lr: the final batchnorm's scale and shift (only) step at lr times the multiplier;
 *   - canonical text: the added fields print only when they differ from the reference (value 0),
 *     so IR text written before they existed keeps its hash; a spec gets the new defaults.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "checkpoint.h"
#include "data.h"
#include "eval.h"
#include "kit.h"
#include "optim.h"
#include "spec.h"
#include "tiny_retina.h"
#include "train.h"
#include "train_calib.h"

static char dir[256], data[300];

static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_calib");
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    cr_assert_eq(tiny_retina_write(data, 3, 2000, 600, 5), 0, "writing the tiny recording");
}

static rc_ir *load(const char *text, int cells)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    cr_assert_not_null(ir);
    cr_assert_eq(rc_spec_load_string("t.lua", text, ir, err, sizeof err), 0, "%s\n%s", err, text);
    if (cells) cr_assert_eq(rc_ir_infer(ir, cells, "t.lua", err, sizeof err), 0, "%s", err);
    return ir;
}

#define HEAD "return model \"m\" { input = { history = 8, height = 16, width = 16 },\n"

static const rc_param *param(const rc_ir *ir, const char *name)
{
    for (int p = 0; p < ir->n_params; p++)
        if (!strcmp(ir->params[p].name, name)) return &ir->params[p];
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

Test(calib, output_forms)
{
    const double mean[3] = {5.0, 0.2, 1e-9};
    char why[256];
    struct { const char *body, *pname; int exp_out; } ok[] = {
        {"dense {}, softplus {} }", "1.dense.bias", 0},
        {"dense { bias = false }, batchnorm { over = \"unit\" }, softplus {} }", "2.batchnorm.shift", 0},
        {"conv { channels = 2, kernel = 3 }, relu {}, dense {}, exp {} }", "3.dense.bias", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, HEAD "%s", ok[i].body);
        rc_ir *ir = load(text, 3);
        float *params = calloc((size_t)ir->params_total, sizeof *params);
        cr_assert_eq(rc_calib_output(ir, params, mean, why, sizeof why), 1, "%s: %s", ok[i].body, why);
        const rc_param *p = param(ir, ok[i].pname);
        for (int c = 0; c < 3; c++) {
            double m = c == 2 ? 1e-3 : mean[c];   /* rates below 1e-3 count as 1e-3 */
            double want = ok[i].exp_out ? log(m) : log(expm1(m));
            cr_assert_float_eq(params[p->offset + c], want, 1e-5 * (1 + fabs(want)), "%s cell %d", ok[i].body, c);
            double back = ok[i].exp_out ? exp(params[p->offset + c]) : log1p(exp(params[p->offset + c]));
            cr_assert_float_eq(back, m, 1e-5 * m, "the output nonlinearity gives the rate back");
        }
        free(params);
        free(ir);
    }
    struct { const char *body, *why; } no[] = {
        {"dense {}, relu {} }", "does not end in softplus or exp"},
        {"dense { bias = false }, softplus {} }", "has no bias or shift"},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, HEAD "%s", no[i].body);
        rc_ir *ir = load(text, 3);
        float *params = calloc((size_t)ir->params_total, sizeof *params);
        cr_assert_eq(rc_calib_output(ir, params, mean, why, sizeof why), 0, "%s", no[i].body);
        cr_assert(strstr(why, no[i].why), "%s: %s", no[i].body, why);
        for (int64_t k = 0; k < ir->params_total; k++) cr_assert_eq(params[k], 0.f, "nothing set");
        free(params);
        free(ir);
    }
}

/* output_lr: which parameters step faster, and by exactly the multiplier. */
Test(calib, output_lr_range_and_step)
{
    rc_ir *ir = load(HEAD "dense { bias = false }, batchnorm { over = \"unit\" }, softplus {} }", 3);
    int64_t lo, hi;
    cr_assert_eq(rc_calib_output_params(ir, &lo, &hi), 1);
    const rc_param *sc = param(ir, "2.batchnorm.scale"), *sh = param(ir, "2.batchnorm.shift");
    cr_assert(sc && sh);
    cr_assert_eq(lo, sc->offset < sh->offset ? sc->offset : sh->offset);
    cr_assert_eq(hi - lo, 6, "scale and shift of 3 cells");
    free(ir);
    ir = load(HEAD "dense {}, softplus {} }", 3);
    cr_assert_eq(rc_calib_output_params(ir, &lo, &hi), 0, "an LN model has no output affine");
    free(ir);
    /* one Adam step from zero moments moves every element by lr (sign of g): x10 in the range */
    enum { N = 8 };
    float w[N] = {0}, g[N];
    for (int i = 0; i < N; i++) g[i] = (i % 2 ? 1.0f : -0.5f) * (float)(i + 1);
    rc_optim o;
    char err[256];
    cr_assert_eq(rc_optim_init(&o, RC_OPT_ADAM, N, 1e-3, 0, err, sizeof err), 0, "%s", err);
    o.fast_lo = 2;
    o.fast_hi = 5;
    o.fast_mult = 10;
    rc_optim_step(&o, w, g);
    for (int i = 0; i < N; i++) {
        double want = (i >= 2 && i < 5 ? 1e-2 : 1e-3) * (g[i] > 0 ? -1 : 1);
        cr_assert_float_eq(w[i], want, 1e-6 * fabs(want), "element %d: %g, want %g", i, w[i], want);
    }
    rc_optim_free(&o);
}

Test(calib, added_fields_keep_old_hashes)
{
    rc_ir *ir = load(HEAD "dense {}, softplus {} }", 0);
    cr_assert_eq(ir->train.output_init, RC_OUTPUT_INIT_MEAN_RATE, "a spec gets the new default");
    cr_assert_eq(ir->train.bn_stats, RC_BN_STATS_PRECISE);
    cr_assert_float_eq(ir->train.output_lr, RC_OUTPUT_LR_DEFAULT, 0);
    char *text = rc_ir_format(ir);
    cr_assert(strstr(text, " output_init=mean_rate bn_stats=precise output_lr=1e+01\n"), "%s", text);
    /* the reference's values are not printed: text from before the fields parses to them */
    ir->train.output_init = RC_OUTPUT_INIT_TORCH;
    ir->train.bn_stats = RC_BN_STATS_EMA;
    ir->train.output_lr = 0;
    char *old = rc_ir_format(ir);
    cr_assert(!strstr(old, "output_init") && !strstr(old, "bn_stats") && !strstr(old, "output_lr"), "%s", old);
    rc_ir *back = calloc(1, sizeof *back);
    char err[512], h1[65], h2[65];
    cr_assert_eq(rc_ir_parse(back, old, "old.ir", err, sizeof err), 0, "%s", err);
    cr_assert_eq(back->train.output_init, RC_OUTPUT_INIT_TORCH);
    cr_assert_eq(back->train.bn_stats, RC_BN_STATS_EMA);
    cr_assert_float_eq(back->train.output_lr, 0, 0);
    rc_ir_hash(ir, h1);
    rc_ir_hash(back, h2);
    cr_assert_str_eq(h1, h2);
    free(text);
    free(old);
    free(back);
    free(ir);
}

/* Train text into dir/run on the reference backend, one thread. */
static void train(const char *text, const char *run, double lr, int output_init, int bn_stats)
{
    rc_ir *ir = load(text, 0);
    rc_train tr = ir->train;
    tr.lr = lr;
    tr.output_init = output_init;
    tr.bn_stats = bn_stats;
    rc_train_opts o;
    rc_train_opts_default(&o);
    char rundir[400], err[1024];
    snprintf(rundir, sizeof rundir, "%s/%s", dir, run);
    o.data_path = data;
    o.rundir = rundir;
    o.backend = "ref";
    o.threads = 1;
    rc_train_result res;
    cr_assert_eq(rc_train_run(ir, &tr, &o, &res, err, sizeof err), 0, "train %s: %s", run, err);
    rc_train_result_free(&res);
    free(ir);
}

static void load_ck(const char *run, rc_checkpoint *ck)
{
    char path[500], err[1024];
    snprintf(path, sizeof path, "%s/%s/best.h5", dir, run);
    cr_assert_eq(rc_ckpt_load(path, ck, err, sizeof err), 0, "%s", err);
}

static const char bn_net[] = HEAD
    "  conv { channels = 3, kernel = 5 }, batchnorm { over = \"unit\" }, relu {},\n"
    "  dense { bias = false }, batchnorm { over = \"unit\" }, softplus {},\n"
    "  train = { batch = 32, epochs = 1, seed = 3 },\n}\n";

/* Mean over the test movie of each cell's prediction, relative error against the mean rate. */
static double rate_error(const char *run, const double *mean)
{
    rc_checkpoint ck;
    load_ck(run, &ck);
    rc_eval_metrics m;
    float *pred = NULL;
    int64_t n = 0;
    char err[1024];
    cr_assert_eq(rc_eval_checkpoint(&ck, data, "ref", "cpu", &m, &pred, &n, NULL, err, sizeof err), 0, "%s", err);
    double worst = 0;
    for (int c = 0; c < ck.ir->cells; c++) {
        double s = 0;
        for (int64_t t = 0; t < n; t++) s += pred[t * ck.ir->cells + c];
        double e = fabs(s / n - mean[c]) / mean[c];
        if (e > worst) worst = e;
    }
    free(pred);
    rc_eval_metrics_free(&m);
    rc_ckpt_free(&ck);
    return worst;
}

Test(calib, fresh_model_predicts_the_mean_rate, .init = setup, .fini = kit_cleanup)
{
    /* lr 1e-12: the weights stay at their init, so the prediction is the init's */
    train(bn_net, "rate", 1e-12, RC_OUTPUT_INIT_MEAN_RATE, RC_BN_STATS_PRECISE);
    train(bn_net, "torch", 1e-12, RC_OUTPUT_INIT_TORCH, RC_BN_STATS_PRECISE);
    rc_data_opts dopt;
    rc_data_opts_default(&dopt);
    dopt.history = 8;
    rc_data *d = NULL;
    char err[1024];
    cr_assert_eq(rc_data_open(data, &dopt, &d, err, sizeof err), 0, "%s", err);
    double mean[TINY_CELLS];
    cr_assert_eq(rc_calib_mean_rates(d, 32, 1, TINY_CELLS, mean, err, sizeof err), 0, "%s", err);
    rc_data_close(d);
    double e_rate = rate_error("rate", mean), e_torch = rate_error("torch", mean);
    cr_assert_lt(e_rate, 0.25, "calibrated output off the mean rate by %.3f (torch init: %.3f)", e_rate, e_torch);
    cr_assert_gt(e_torch, 2 * e_rate, "PyTorch's init (%.3f) should be far off, calibrated %.3f", e_torch, e_rate);
}

/* ||running_var of the first batchnorm - its input's variance over one batch of B training windows
 * for the checkpoint's weights|| / ||that mean||, the batch statistic read back from the EMA
 * step of a training-mode forward on the reference backend. */
static double bn_lag(const char *run, int B)
{
    rc_checkpoint ck;
    load_ck(run, &ck);
    const rc_ir *ir = ck.ir;
    rc_data_opts dopt;
    rc_data_opts_default(&dopt);
    dopt.history = ir->history;
    rc_data *d = NULL;
    char err[1024];
    cr_assert_eq(rc_data_open(data, &dopt, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_data_set_stats(d, ck.norm_mean, ck.norm_std, err, sizeof err), 0, "%s", err);
    rc_iter *it = NULL;
    cr_assert_eq(rc_data_train_iter(d, B, 99, 0, &it, err, sizeof err), 0, "%s", err);
    rc_batch b;
    cr_assert_eq(rc_iter_next(it, &b, err, sizeof err), 1, "%s", err);
    rc_backend *be = NULL;
    cr_assert_eq(rc_backend_open(ir, "ref", "cpu", &be, err, sizeof err), 0, "%s", err);
    float *state = malloc((size_t)ir->state_total * sizeof *state), *y = malloc((size_t)B * ir->cells * sizeof *y);
    float *ws = malloc(be->ws_floats(be, B) * sizeof *ws + 4);
    memcpy(state, ck.state, (size_t)ir->state_total * sizeof *state);
    if (be->set_stream) cr_assert_eq(be->set_stream(be, b.frames, b.n_frames), 0);
    cr_assert_eq(be->train_forward(be, B, ck.params, state, NULL, 7, b.frames, b.starts, y, ws), 0, "%s", be->err);
    if (be->set_stream) be->set_stream(be, NULL, 0);
    const rc_layer *L = &ir->layers[1];
    cr_assert_eq(L->kind, RC_LAYER_BATCHNORM);
    /* the variance, not the mean: per-unit means sit near 0, where sampling noise of any
     * batch dominates a relative error; variances are O(1) */
    const rc_param *rm = &ir->state[L->state_first + 1];
    cr_assert(strstr(rm->name, "running_var"), "%s", rm->name);
    double num = 0, den = 0, m = L->momentum;
    for (int64_t j = rm->offset; j < rm->offset + rm->count; j++) {
        double s = ((double)state[j] - (1 - m) * ck.state[j]) / m;   /* this batch's variance */
        num += (ck.state[j] - s) * (ck.state[j] - s);
        den += s * s;
    }
    free(state); free(y); free(ws);
    rc_backend_destroy(be);
    rc_iter_free(it);
    rc_data_close(d);
    rc_ckpt_free(&ck);
    return sqrt(num / den);
}

Test(calib, precise_bn_matches_the_saved_weights, .init = setup, .fini = kit_cleanup)
{
    static const char net[] = HEAD
        "  conv { channels = 3, kernel = 5 }, batchnorm { over = \"unit\", momentum = 0.01 }, relu {},\n"
        "  dense { bias = false }, batchnorm { over = \"unit\" }, softplus {},\n"
        "  train = { batch = 64, epochs = 2, seed = 3, lr = 0.02 },\n}\n";
    train(net, "precise", 0.02, RC_OUTPUT_INIT_MEAN_RATE, RC_BN_STATS_PRECISE);
    train(net, "ema", 0.02, RC_OUTPUT_INIT_MEAN_RATE, RC_BN_STATS_EMA);
    double precise = bn_lag("precise", 1024), ema = bn_lag("ema", 1024);
    cr_assert_lt(precise, 0.08, "precise running variance off the weights' batch variance by %.4f (EMA: %.4f)", precise, ema);
    cr_assert_lt(precise, ema / 4, "precise %.4f should beat the EMA's lag %.4f", precise, ema);
}
