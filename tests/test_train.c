/* test_train.c — training end to end on a tiny synthetic recording (tests/tiny_retina.h, 16x16
 * frames, specs/tiny.lua, history 8) with the reference backend:
 *   - training lowers the loss and the CNN beats the LN model on test r;
 *   - the same seed and thread count give the same loss curve and parameters bit for bit;
 *   - 4 epochs == 2 epochs + resume to 4 (params, BN state, Adam state, lr, history);
 *   - best.h5 is the epoch of lowest validation loss;
 *   - `retinac eval` reproduces the table `retinac train` printed, and `retinac predict`
 *     reproduces the evaluation's predictions;
 *   - the epoch-end rules: plateau on the validation loss in the right direction, milestones,
 *     early stopping.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "kit.h"
#include "errbuf.h"
#include "spec.h"
#include "tiny_retina.h"
#include "train.h"

static char dir[256], data[300];

static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_train");
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    cr_assert_eq(tiny_retina_write(data, 3, 2000, 600, 5), 0, "writing the tiny recording");
}

static void load_spec(const char *name, rc_ir *ir)
{
    char err[512], path[512];
    if (!strcmp(name, "tiny_ln")) {
        cr_assert_eq(rc_spec_load_string("tiny_ln.lua", tiny_ln_spec, ir, err, sizeof err), 0, "%s", err);
        return;
    }
    snprintf(path, sizeof path, "%s/specs/%s.lua", RC_SRC_DIR, name);
    cr_assert_eq(rc_spec_load(path, ir, err, sizeof err), 0, "%s", err);
}

/* Train spec `ir` with `tr` into dir/<run> on the reference backend, one thread. */
static void train(const rc_ir *ir, const rc_train *tr, const char *run, int resume, int eval,
                  rc_train_result *res)
{
    rc_train_opts o;
    rc_train_opts_default(&o);
    char rundir[400], err[1024];
    snprintf(rundir, sizeof rundir, "%s/%s", dir, run);
    o.data_path = data;
    o.rundir = rundir;
    o.backend = "ref";
    o.threads = 1;
    o.resume = resume;
    o.eval_test = eval;
    cr_assert_eq(rc_train_run(ir, tr, &o, res, err, sizeof err), 0, "train %s: %s", run, err);
}

static void load_ck(const char *run, const char *file, rc_checkpoint *ck)
{
    char path[500], err[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, run, file);
    cr_assert_eq(rc_ckpt_load(path, ck, err, sizeof err), 0, "%s", err);
}

Test(train, lowers_loss_and_cnn_beats_ln, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    static rc_ir cnn, ln;
    load_spec("tiny", &cnn);
    load_spec("tiny_ln", &ln);
    rc_train tc = cnn.train, tl = ln.train;
    tc.epochs = tl.epochs = 4;
    rc_train_result rc_, rl;
    train(&cnn, &tc, "cnn", 0, 1, &rc_);
    train(&ln, &tl, "ln", 0, 1, &rl);

    rc_checkpoint ck;
    load_ck("cnn", "checkpoint.h5", &ck);
    cr_assert_eq(ck.n_hist, 4);
    double *trl = ck.hist[RC_HIST_TRAIN_LOSS], *vl = ck.hist[RC_HIST_VAL_LOSS];
    /* the calibrated output (output_init = "mean_rate") starts near the data's rate scale, so
     * the first epoch's loss is already far below PyTorch's init's; training still lowers it */
    cr_assert(trl[3] < trl[0] - 0.02, "training loss %g -> %g", trl[0], trl[3]);
    cr_assert(vl[3] < vl[0], "validation loss %g -> %g", vl[0], vl[3]);
    /* best.h5 is the epoch of the lowest validation loss */
    int arg = 0;
    for (int e = 1; e < ck.n_hist; e++) if (vl[e] < vl[arg]) arg = e;
    cr_assert_eq(rc_.best_epoch, arg + 1);
    rc_checkpoint best;
    load_ck("cnn", "best.h5", &best);
    cr_assert_eq(best.epoch, arg + 1);
    rc_ckpt_free(&best);
    rc_ckpt_free(&ck);

    cr_assert(rc_.has_test && rl.has_test);
    cr_assert(rc_.test.mean_r > 0.45, "CNN test r %g", rc_.test.mean_r);
    cr_assert(rc_.test.mean_r > rl.test.mean_r + 0.2, "CNN r %g vs LN r %g", rc_.test.mean_r,
              rl.test.mean_r);
    cr_assert(rc_.test.mean_feve > rl.test.mean_feve, "FEVe CNN %g vs LN %g", rc_.test.mean_feve,
              rl.test.mean_feve);
    /* the ceiling is the data's, the same for both, and close to the true rate's r */
    cr_assert_eq(rc_.test.mean_ceiling, rl.test.mean_ceiling);
    cr_assert(fabs(rc_.test.mean_ceiling - rc_.truth_mean_r) < 0.05, "ceiling %g vs truth r %g",
              rc_.test.mean_ceiling, rc_.truth_mean_r);
    cr_assert(rc_.test.mean_r < rc_.test.mean_ceiling + 0.02);

    /* run folder */
    char p[500];
    snprintf(p, sizeof p, "%s/cnn/metrics.json", dir);
    cr_assert_eq(access(p, F_OK), 0, "metrics.json");
    snprintf(p, sizeof p, "%s/cnn/log.csv", dir);
    FILE *f = fopen(p, "r");
    cr_assert(f);
    char line[512];
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "epoch,train_loss,val_loss,val_r,lr,seconds,samples_per_s\n");
    int rows = 0;
    while (fgets(line, sizeof line, f)) rows++;
    fclose(f);
    cr_assert_eq(rows, 4);
    rc_train_result_free(&rc_);
    rc_train_result_free(&rl);
}

Test(train, same_seed_same_run_bit_for_bit, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    static rc_ir ir;
    load_spec("tiny", &ir);
    rc_train tr = ir.train;
    tr.epochs = 2;
    rc_train_result r;
    train(&ir, &tr, "a", 0, 0, &r);
    train(&ir, &tr, "b", 0, 0, &r);
    tr.seed = 8;
    train(&ir, &tr, "c", 0, 0, &r);
    rc_checkpoint a, b, c;
    load_ck("a", "checkpoint.h5", &a);
    load_ck("b", "checkpoint.h5", &b);
    load_ck("c", "checkpoint.h5", &c);
    for (int k = RC_HIST_TRAIN_LOSS; k <= RC_HIST_LR; k++)
        for (int e = 0; e < 2; e++)
            cr_assert_eq(memcmp(&a.hist[k][e], &b.hist[k][e], sizeof(double)), 0,
                         "%s differs at epoch %d", rc_ckpt_hist_names[k], e + 1);
    size_t np = (size_t)a.ir->params_total * sizeof(float);
    cr_assert_eq(memcmp(a.params, b.params, np), 0, "params differ");
    cr_assert_eq(memcmp(a.moments, b.moments, 2 * np), 0, "Adam state differs");
    /* a different seed is a different run (the comparison above can fail) */
    cr_assert_neq(memcmp(a.params, c.params, np), 0);
    cr_assert_neq(a.hist[RC_HIST_TRAIN_LOSS][1], c.hist[RC_HIST_TRAIN_LOSS][1]);
    rc_ckpt_free(&a); rc_ckpt_free(&b); rc_ckpt_free(&c);
}

/* tiny.lua with noise (seeded per step), dropout and per-unit batchnorm after conv1, and a
 * step schedule at epoch 3: everything resume must carry. */
static const char noisy_spec[] =
    "return model \"tiny_noisy\" {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  conv { channels = 3, kernel = 5 }, batchnorm { over = \"unit\", momentum = 0.1 },\n"
    "  noise { std = 0.1 }, relu {},\n"
    "  conv { channels = 3, kernel = 3 }, dropout { p = 0.1 }, relu {},\n"
    "  dense { bias = false }, batchnorm { over = \"unit\" }, softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 4, l1_activity = 1e-3, seed = 5,\n"
    "            schedule = \"step\", milestones = {3}, sched_gamma = 0.5, optimizer = \"adamw\" },\n"
    "}\n";

Test(train, resume_equals_uninterrupted, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    static rc_ir ir;
    char err[512];
    cr_assert_eq(rc_spec_load_string("noisy.lua", noisy_spec, &ir, err, sizeof err), 0, "%s", err);
    rc_train tr = ir.train;
    rc_train_result r;
    train(&ir, &tr, "full", 0, 0, &r);
    tr.epochs = 2;
    train(&ir, &tr, "split", 0, 0, &r);
    /* resuming a finished run without more epochs changes nothing */
    train(&ir, &tr, "split", 1, 0, &r);
    tr.epochs = 4;
    train(&ir, &tr, "split", 1, 0, &r);
    cr_assert_eq(r.epochs_done, 4);
    rc_checkpoint a, b;
    load_ck("full", "checkpoint.h5", &a);
    load_ck("split", "checkpoint.h5", &b);
    size_t np = (size_t)a.ir->params_total * sizeof(float);
    cr_assert_eq(memcmp(a.params, b.params, np), 0, "params differ after resume");
    cr_assert_eq(memcmp(a.state, b.state, (size_t)a.ir->state_total * sizeof(float)), 0, "BN state differs");
    cr_assert_eq(memcmp(a.moments, b.moments, 2 * np), 0, "Adam moments differ");
    cr_assert_eq(a.opt_step, b.opt_step);
    cr_assert_eq(a.rng_step, b.rng_step);
    cr_assert_eq(a.lr, b.lr);
    cr_assert_eq(a.lr, 5e-3, "milestone at epoch 3 halves the lr");
    cr_assert_eq(b.n_hist, 4);
    for (int e = 0; e < 4; e++)
        cr_assert_eq(a.hist[RC_HIST_VAL_LOSS][e], b.hist[RC_HIST_VAL_LOSS][e], "epoch %d", e + 1);
    rc_ckpt_free(&a); rc_ckpt_free(&b);

    /* resume refuses a different spec */
    static rc_ir other;
    load_spec("tiny", &other);
    rc_train_opts o;
    rc_train_opts_default(&o);
    char rundir[400];
    snprintf(rundir, sizeof rundir, "%s/split", dir);
    o.data_path = data; o.rundir = rundir; o.backend = "ref"; o.resume = 1; o.eval_test = 0;
    cr_assert_eq(rc_train_run(&other, &other.train, &o, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "spec changed"), "%s", err);
    /* and a fresh run refuses to overwrite */
    o.resume = 0;
    cr_assert_eq(rc_train_run(&ir, &tr, &o, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "--resume"), "%s", err);
}

/* The lines of the metric table: from the line starting "cell" through "mean". */
static const char *table_start(const char *out)
{
    const char *t = strstr(out, "\ncell");
    cr_assert(t, "no table in:\n%s", out);
    return t + 1;
}

Test(train, eval_and_predict_reproduce_training, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    kit_out tr = kit_rc("train %s/specs/tiny.lua --data %s -o %s/cli --epochs 2 --backend ref --threads 1 -q",
                        RC_SRC_DIR, data, dir);
    const char *tr_out = tr.out;
    cr_assert_eq(tr.status, 0, "train failed:\n%s", tr_out);
    kit_out ev = kit_rc("eval %s/cli --backend ref --threads 1", dir);
    const char *ev_out = ev.out;
    cr_assert_eq(ev.status, 0, "eval failed:\n%s", ev_out);
    const char *a = table_start(tr_out), *b = table_start(ev_out);
    cr_assert_str_eq(a + strcspn(a, "\n"), b + strcspn(b, "\n"),
                     "eval's table differs from train's:\n%s\nvs\n%s", tr_out, ev_out);
    cr_assert(strstr(a, "\nmean"));

    /* eval --json carries the same numbers as metrics.json */
    kit_out jr = kit_rc("eval %s/cli --json --backend ref", dir);
    const char *js = jr.out;
    cr_assert_eq(jr.status, 0);
    for (const char *k = "\"cells\"\0\"mean_r\"\0\"mean_ceiling\"\0\"mean_feve\"\0\"feve\"\0\"ceiling\"\0"; *k; k += strlen(k) + 1)
        cr_assert(strstr(js, k), "eval --json lacks %s:\n%s", k, js);

    /* predict on the test movie equals the evaluation's predictions */
    rc_checkpoint ck;
    load_ck("cli", "best.h5", &ck);
    rc_eval_metrics m;
    float *pred;
    int64_t n;
    char err[1024];
    cr_assert_eq(rc_eval_checkpoint(&ck, data, "ref", "cpu", &m, &pred, &n, NULL, err, sizeof err), 0, "%s", err);
    kit_out pr = kit_rc_all("predict %s/cli --stimulus %s --key test/stimulus -o %s/pred.h5 --backend ref",
                            dir, data, dir);
    cr_assert_eq(pr.status, 0, "predict failed: %s", pr.out);
    char pp[400];
    snprintf(pp, sizeof pp, "%s/pred.h5", dir);
    hid_t f = H5Fopen(pp, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t d = H5Dopen2(f, "/response", H5P_DEFAULT);
    cr_assert(d >= 0);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2];
    cr_assert_eq(H5Sget_simple_extent_dims(sp, dims, NULL), 2);
    cr_assert_eq((int64_t)dims[0], n);
    cr_assert_eq((int)dims[1], ck.cells);
    float *resp = malloc((size_t)n * ck.cells * sizeof *resp);
    cr_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, resp) >= 0);
    H5Sclose(sp); H5Dclose(d); H5Fclose(f);
    cr_assert_eq(memcmp(resp, pred, (size_t)n * ck.cells * sizeof(float)), 0,
                 "predict differs from eval's predictions");
    free(resp); free(pred);
    kit_out_free(&pr); kit_out_free(&jr); kit_out_free(&tr); kit_out_free(&ev);
    rc_eval_metrics_free(&m);
    rc_ckpt_free(&ck);
}

Test(train_rules, plateau_watches_validation_loss_downwards)
{
    rc_train tr = {0};
    tr.schedule = RC_SCHED_PLATEAU;
    tr.sched_factor = 0.5;
    tr.sched_patience = 2;
    tr.sched_threshold = 0.01;
    rc_sched_state s;
    rc_sched_init(&s, 1.0);
    int imp;
    /* a steadily falling loss never cuts the lr (the reference's inverted use would) */
    double fall[] = {5, 4, 3, 2, 1, 0.5, -1, -2, -3};
    for (int e = 0; e < 9; e++) rc_sched_epoch_end(&tr, &s, e + 1, fall[e], &imp);
    cr_assert_eq(s.lr, 1.0);
    cr_assert_eq(s.best_epoch, 9);
    /* now flat (changes below 1% of |best| do not count): cut after patience+1 = 3 epochs */
    rc_sched_epoch_end(&tr, &s, 10, -3.01, &imp);
    cr_assert_eq(s.lr, 1.0);
    rc_sched_epoch_end(&tr, &s, 11, -3.0, &imp);
    cr_assert_eq(s.lr, 1.0);
    rc_sched_epoch_end(&tr, &s, 12, -2.5, &imp);
    cr_assert_eq(s.lr, 0.5, "lr cut after 3 epochs without a 1%% improvement");
    rc_sched_epoch_end(&tr, &s, 13, -4.0, &imp);
    cr_assert(imp);
    cr_assert_eq(s.plateau_bad, 0);
}

Test(train_rules, step_milestones_and_early_stopping)
{
    rc_train tr = {0};
    tr.schedule = RC_SCHED_STEP;
    tr.sched_gamma = 0.1;
    tr.n_milestones = 2;
    tr.milestones[0] = 2;
    tr.milestones[1] = 4;
    tr.early_patience = 2;
    rc_sched_state s;
    rc_sched_init(&s, 1.0);
    int imp, stop;
    stop = rc_sched_epoch_end(&tr, &s, 1, 3.0, &imp);
    cr_assert(imp && !stop && s.lr == 1.0);
    stop = rc_sched_epoch_end(&tr, &s, 2, 2.0, &imp);
    cr_assert(imp && !stop);
    cr_assert_float_eq(s.lr, 0.1, 1e-15);
    stop = rc_sched_epoch_end(&tr, &s, 3, 2.5, &imp);
    cr_assert(!imp && !stop);
    stop = rc_sched_epoch_end(&tr, &s, 4, 2.0, &imp);   /* equal is not better */
    cr_assert(!imp);
    cr_assert(stop, "two epochs without improvement with patience 2");
    cr_assert_float_eq(s.lr, 0.01, 1e-15);
    cr_assert_eq(s.best_epoch, 2);
    /* NaN never improves */
    rc_sched_init(&s, 1.0);
    rc_sched_epoch_end(&tr, &s, 1, NAN, &imp);
    cr_assert(!imp);
    /* patience 0 = never stop */
    tr.early_patience = 0;
    for (int e = 2; e < 50; e++) cr_assert_eq(rc_sched_epoch_end(&tr, &s, e, 10.0, &imp), 0);
}

/* The C backend with layer 1 by FFT (RETINAC_FFT=1) against the direct path (RETINAC_FFT=0), on
 * a data budget that forces streamed chunks: every chunk reuses one buffer with new frames, so a
 * stale spectrum (a missed re-declaration of the stream) would change the run. The two runs
 * agree to fp32 rounding (loss history, parameters, test predictions). */
static const char fft_spec[] =
    "return model 'fft' {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  conv { channels = 3, kernel = 9 }, batchnorm { over = 'unit' }, relu {},\n"
    "  conv { channels = 3, kernel = 3 }, relu {},\n"
    "  dense { bias = false }, batchnorm { over = 'unit' }, softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },\n"
    "}\n";

static void train_c(const rc_ir *ir, const char *run, const char *fft, rc_train_result *res)
{
    rc_train_opts o;
    rc_train_opts_default(&o);
    char rundir[400], err[1024];
    snprintf(rundir, sizeof rundir, "%s/%s", dir, run);
    o.data_path = data;
    o.rundir = rundir;
    o.backend = "c";
    o.threads = 2;
    o.mem_budget = 200 * 1024;   /* ~190 frames of 16x16 per chunk */
    o.eval_test = 1;
    setenv("RETINAC_FFT", fft, 1);
    if (!getenv("RETINAC_CACHE_DIR")) setenv("RETINAC_CACHE_DIR", "/tmp/retinac-test-cache", 1);
    int rc = rc_train_run(ir, &ir->train, &o, res, err, sizeof err);
    unsetenv("RETINAC_FFT");
    cr_assert_eq(rc, 0, "train %s: %s", run, err);
}

Test(train, fft_first_conv_matches_direct_over_streamed_chunks, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    static rc_ir ir;
    char err[512];
    cr_assert_eq(rc_spec_load_string("fft.lua", fft_spec, &ir, err, sizeof err), 0, "%s", err);
    rc_train_result rf, rd;
    train_c(&ir, "fft", "1", &rf);
    train_c(&ir, "direct", "0", &rd);
    rc_checkpoint f, d;
    load_ck("fft", "checkpoint.h5", &f);
    load_ck("direct", "checkpoint.h5", &d);
    for (int e = 0; e < 2; e++)
        for (int k = RC_HIST_TRAIN_LOSS; k <= RC_HIST_VAL_LOSS; k++) {
            double a = f.hist[k][e], b = d.hist[k][e];
            cr_expect_leq(fabs(a - b), 1e-4 * fmax(1.0, fabs(b)), "%s epoch %d: fft %.9g direct %.9g",
                          rc_ckpt_hist_names[k], e + 1, a, b);
        }
    double num = 0, den = 0;
    for (int64_t i = 0; i < f.ir->params_total; i++) {
        num += ((double)f.params[i] - d.params[i]) * ((double)f.params[i] - d.params[i]);
        den += (double)d.params[i] * d.params[i];
    }
    cr_expect_leq(sqrt(num / den), 1e-4, "params: rel L2 %g", sqrt(num / den));
    cr_assert(rf.has_test && rd.has_test);
    cr_expect_leq(fabs(rf.test.mean_r - rd.test.mean_r), 1e-4, "test r: fft %g direct %g", rf.test.mean_r, rd.test.mean_r);
    rc_ckpt_free(&f);
    rc_ckpt_free(&d);
    rc_train_result_free(&rf);
    rc_train_result_free(&rd);
}

/* A recording without /cells/centers and a gcconv read out at the data's centers: training
 * estimates the centers from spike-triggered averages (within a pixel of the tiny retina's
 * true centers), stores them in the checkpoint, and a resumed run keeps them. */
static const char gc_spec[] =
    "return model 'gc' {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  conv { channels = 3, kernel = 5 }, relu {},\n"
    "  gcconv { kernel = 3, position = 'data' }, softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7 },\n"
    "}\n";

Test(train, sta_centers_when_the_recording_has_none, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    static rc_ir ir;
    char err[1024];
    cr_assert_eq(rc_spec_load_string("gc.lua", gc_spec, &ir, err, sizeof err), 0, "%s", err);
    hid_t f = H5Fopen(data, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Ldelete(f, "/cells/centers", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    rc_train t = ir.train;
    rc_train_result r;
    train(&ir, &t, "gc", 0, 0, &r);
    cr_assert_eq(r.centers_estimated, 1);
    rc_train_result_free(&r);
    rc_checkpoint ck;
    load_ck("gc", "checkpoint.h5", &ck);
    cr_assert(ck.centers);
    for (int c = 0; c < TINY_CELLS; c++)
        for (int a = 0; a < 2; a++)
            cr_expect_leq(abs(ck.centers[2 * c + a] - tiny_centers[c][a]), 1, "cell %d: estimated (%d,%d), true (%d,%d)",
                          c, ck.centers[2 * c], ck.centers[2 * c + 1], tiny_centers[c][0], tiny_centers[c][1]);
    rc_ckpt_free(&ck);
    t.epochs = 2;
    train(&ir, &t, "gc", 1, 0, &r);   /* resume: the stored centers, no new estimate */
    cr_expect_eq(r.centers_estimated, 0);
    rc_train_result_free(&r);
}

/* Issue 13: "no test split" is a return code (RC_ERR_NO_TEST), not message text a caller
 * searches for. A recording without a test split trains, and the run says it has no test
 * metrics; evaluating it returns the code. */
Test(train, a_recording_without_a_test_split_trains, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    hid_t f = H5Fopen(data, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Ldelete(f, "/test", H5P_DEFAULT) >= 0);
    cr_assert(H5Fclose(f) >= 0);
    rc_ir ir;
    load_spec("tiny_ln", &ir);
    rc_train tr = ir.train;
    tr.epochs = 1;
    rc_train_result res;
    train(&ir, &tr, "notest", 0, 1, &res);
    cr_assert_eq(res.has_test, 0, "test metrics from a recording without a test split");
    rc_checkpoint ck;
    load_ck("notest", "best.h5", &ck);
    char err[1024] = "";
    rc_eval_metrics m;
    memset(&m, 0, sizeof m);
    cr_assert_eq(rc_eval_checkpoint(&ck, data, "ref", NULL, &m, NULL, NULL, NULL, err, sizeof err),
                 RC_ERR_NO_TEST, "%s", err);
    cr_assert(strstr(err, "no test split"), "%s", err);
    rc_ckpt_free(&ck);
    rc_train_result_free(&res);
}
