/* test_fit.c — the headline science of a small run, pinned (issue 20): a regression in the fit,
 * not only in the numerics, fails CI.
 *
 * The shipped BN-CNN (specs/bncnn.lua) with the main job's settings (batch 32, lr 2e-3; the
 * JIT-compiled C backend, 2 threads) trains FIT_EPOCHS epochs on a short recording of the
 * synthetic retina (`retinac synth`: FIT_CELLS = 8 cells, FIT_FRAMES training frames, seed 1), once
 * with the defaults (output calibration, precise batch-norm statistics, output_lr 10) and once
 * with the reference's training (output_init = "torch", bn_stats = "ema", output_lr = 1). On the
 * test movie:
 *   - the defaults reach mean r >= FIT_R and FEVe >= FIT_FEVE, with r under the data's ceiling;
 *   - the rate scale is calibrated: each cell's mean predicted rate is near its mean recorded
 *     rate, and the predictions' SD is a sizeable fraction of the trial average's (bounds below);
 *   - the defaults beat the reference's training in FEVe by a margin, and do not lose in r.
 * The run is deterministic for a given seed, thread count and CPU; the thresholds sit below the
 * measured values (in the comments) by a tolerance for another CPU's rounding (the JIT compiles
 * with -march=native, so the float sums differ between CPU families and drift over 4 epochs).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "eval.h"
#include "kit.h"
#include "spec.h"
#include "synth.h"
#include "train.h"

enum { FIT_CELLS = 8, FIT_FRAMES = 6000, FIT_EPOCHS = 4 };

/* measured on a 2-core AMD EPYC, 2 threads: the defaults r 0.590, FEVe 0.301 (best epoch 4);
 * the reference's training r 0.518, FEVe -0.113 (best epoch 4) */
#define FIT_R 0.52
#define FIT_FEVE 0.20
#define FIT_FEVE_GAIN 0.25

static char dir[256], data[300];

static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_fit");
    snprintf(data, sizeof data, "%s/rec.h5", dir);
    rc_synth_opts so;
    rc_synth_opts_default(&so);
    so.cells = FIT_CELLS;
    so.frames = FIT_FRAMES;
    so.test_frames = 2000;
    char err[1024];
    cr_assert_eq(rc_synth_write(data, &so, err, sizeof err), 0, "synth: %s", err);
}

typedef struct {
    rc_train_result res;
    double mean_pred[FIT_CELLS], mean_rate[FIT_CELLS], sd_pred[FIT_CELLS], sd_rate[FIT_CELLS];
} fit_run;

/* Train specs/bncnn.lua at the main job's settings into dir/<run>, then read best.h5's test
 * traces: each cell's mean and SD of the prediction and of the recorded trial average. */
static void fit(const char *run, int reference, fit_run *f)
{
    static rc_ir ir;
    char err[1024], path[512], rundir[400];
    snprintf(path, sizeof path, "%s/specs/bncnn.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
    rc_train tr = ir.train;
    tr.epochs = FIT_EPOCHS;
    tr.batch = 32;
    tr.lr = 2e-3;
    if (reference) {
        tr.output_init = RC_OUTPUT_INIT_TORCH;
        tr.bn_stats = RC_BN_STATS_EMA;
        tr.output_lr = 1;
    }
    rc_train_opts o;
    rc_train_opts_default(&o);
    snprintf(rundir, sizeof rundir, "%s/%s", dir, run);
    o.data_path = data;
    o.rundir = rundir;
    o.backend = "c";
    o.threads = 2;
    o.eval_test = 1;
    memset(f, 0, sizeof *f);
    cr_assert_eq(rc_train_run(&ir, &tr, &o, &f->res, err, sizeof err), 0, "train %s: %s", run, err);
    cr_assert(f->res.has_test);

    rc_checkpoint ck;
    snprintf(path, sizeof path, "%s/best.h5", rundir);
    cr_assert_eq(rc_ckpt_load(path, &ck, err, sizeof err), 0, "%s", err);
    rc_eval_metrics m;
    float *pred = NULL, *rate = NULL;
    int64_t n = 0;
    cr_assert_eq(rc_eval_test_traces(&ck, data, "c", &m, &pred, &rate, &n, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(ck.ir->cells, FIT_CELLS);
    cr_assert(n > 1000);
    /* the traces are the evaluation's: the same r as the trainer's final evaluation */
    cr_assert(fabs(m.mean_r - f->res.test.mean_r) < 1e-6, "r %g vs %g", m.mean_r, f->res.test.mean_r);
    for (int c = 0; c < FIT_CELLS; c++) {
        double sp = 0, sr = 0, qp = 0, qr = 0;
        for (int64_t t = 0; t < n; t++) {
            double p = pred[t * FIT_CELLS + c], r = rate[t * FIT_CELLS + c];
            sp += p, sr += r, qp += p * p, qr += r * r;
        }
        f->mean_pred[c] = sp / (double)n;
        f->mean_rate[c] = sr / (double)n;
        f->sd_pred[c] = sqrt(fmax(0, qp / (double)n - f->mean_pred[c] * f->mean_pred[c]));
        f->sd_rate[c] = sqrt(fmax(0, qr / (double)n - f->mean_rate[c] * f->mean_rate[c]));
    }
    free(pred);
    free(rate);
    rc_eval_metrics_free(&m);
    rc_ckpt_free(&ck);
}

static void report(const char *name, const fit_run *f)
{
    cr_log_info("%s: r %.4f (ceiling %.4f, truth %.4f) FEVe %.4f best epoch %lld", name,
                f->res.test.mean_r, f->res.test.mean_ceiling, f->res.truth_mean_r,
                f->res.test.mean_feve, (long long)f->res.best_epoch);
    for (int c = 0; c < FIT_CELLS; c++)
        cr_log_info("  cell %d: mean %.2f vs %.2f Hz, SD %.2f vs %.2f", c, f->mean_pred[c],
                    f->mean_rate[c], f->sd_pred[c], f->sd_rate[c]);
}

Test(fit, bncnn_small_run_reaches_the_pinned_r_feve_and_rate_scale, .init = setup,
     .fini = kit_cleanup, .timeout = 900)
{
    static fit_run d, ref;
    fit("defaults", 0, &d);
    fit("reference", 1, &ref);
    report("defaults", &d);
    report("reference", &ref);

    const rc_eval_metrics *m = &d.res.test;
    cr_assert_geq(m->mean_r, FIT_R, "mean test r %.4f", m->mean_r);
    cr_assert_geq(m->mean_feve, FIT_FEVE, "mean FEVe %.4f", m->mean_feve);
    cr_assert_lt(m->mean_r, m->mean_ceiling + 0.02, "r %.4f above the ceiling %.4f", m->mean_r,
                 m->mean_ceiling);
    /* the rate scale, per cell: the mean prediction within [0.55, 1.5] of the recorded mean
     * (measured 0.67-0.99; the reference's training: 0.07-0.37), its SD at least 0.15 of the
     * trial average's (measured 0.22-0.37, where the 6-trial average's own Poisson noise adds
     * to the recorded SD; the reference's: 0.03-0.08) */
    for (int c = 0; c < FIT_CELLS; c++) {
        double ratio = d.mean_pred[c] / d.mean_rate[c];
        cr_assert(ratio >= 0.55 && ratio <= 1.5, "cell %d: mean prediction %.2f Hz vs recorded %.2f Hz",
                  c, d.mean_pred[c], d.mean_rate[c]);
        cr_assert_geq(d.sd_pred[c], 0.15 * d.sd_rate[c], "cell %d: prediction SD %.2f vs recorded %.2f",
                      c, d.sd_pred[c], d.sd_rate[c]);
    }
    cr_assert_geq(m->mean_feve, ref.res.test.mean_feve + FIT_FEVE_GAIN,
                  "FEVe: defaults %.4f vs reference training %.4f", m->mean_feve,
                  ref.res.test.mean_feve);
    cr_assert_geq(m->mean_r, ref.res.test.mean_r - 0.01, "r: defaults %.4f vs reference training %.4f",
                  m->mean_r, ref.res.test.mean_r);
    rc_train_result_free(&d.res);
    rc_train_result_free(&ref.res);
}
