/* test_loss.c — the log-input Poisson loss (train.loss = "poisson_log", RC_LOSS_POISSON_LOG):
 *   - value against numbers worked by hand, one of them PyTorch's
 *     PoissonNLLLoss(log_input=True, full=False, eps=1e-8), i.e. mean(exp(input) - target*input);
 *   - gradient against (exp(p) - t)/n + l1c*sign(p) and against central finite differences,
 *     with both L1 modes;
 *   - validation's rate form (rc_loss_eval_kind): on eval-mode rates r = exp(y) it gives the
 *     training data term at y;
 *   - the spec/IR name "poisson_log" round-trips through the canonical text;
 *   - optim.c's vectorized Adam/AdamW loop equals the scalar per-element formula bit for bit;
 *   - the CUDA loss kernel (rc_util_loss) run on the host emulation of the device
 *     (tests/cuda_emu.h) agrees with loss.c for every loss kind, and the Adam kernel with optim.c;
 *   - training end to end (rc_train_run, reference backend, the tiny synthetic recording): the
 *     training loss falls; a model whose eval outputs go negative (log-rates, no eval-only exp)
 *     is warned about once and validates to NaN; one with positive eval outputs is not warned
 *     about and validates to a finite loss; and so does the reference's pairing, a last
 *     `exponential { train_off = true }` (the prelude's: identity in training, exp in eval),
 *     whose training run is the bare model's loss for loss.
 * (The rate-form poisson and mse losses are tested in test_ref.c, ref_loss.)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_emu.h"
#include "ir.h"
#include "kit.h"
#include "loss.h"
#include "optim.h"
#include "spec.h"
#include "tiny_retina.h"
#include "train.h"

/* PyTorch: torch.nn.PoissonNLLLoss(log_input=True)(input, target) with
 * input = [[0.5, -1], [2, 0]], target = [[1, 0], [3, 2]] is, by torch's formula
 * exp(input) - target*input averaged over the 4 elements:
 *   (e^0.5 - 0.5) + (e^-1 - 0) + (e^2 - 6) + (e^0 - 0)
 *   = 1.1487212707 + 0.3678794412 + 1.3890560989 + 1 = 3.9056568108;  / 4 = 0.9764142027. */
/* The optimizer's vectorized element loop (optim.c: one step size per range, an AVX-512 copy)
 * against the scalar per-element formula it replaced, bit for bit: Adam and AdamW, a fast range
 * in the middle, odd lengths (vector remainders), three steps. */
static double u01(uint64_t *s)   /* splitmix64 -> [0, 1) */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

Test(loss, adam_vector_loop_is_the_scalar_formula_bit_for_bit)
{
    enum { N = 1001 };
    for (int kind = 0; kind < 2; kind++) {
        rc_optim o;
        cr_assert_eq(rc_optim_init(&o, kind ? RC_OPT_ADAMW : RC_OPT_ADAM, N, 3e-3, 1e-2, NULL, 0), 0);
        o.fast_lo = 97;
        o.fast_hi = 333;
        o.fast_mult = 4.0;
        static float w[N], g[N], wr[N], mr[N], vr[N];
        uint64_t st = 5 + kind;
        for (int k = 0; k < N; k++) {
            w[k] = wr[k] = (float)(u01(&st) - 0.5);
            mr[k] = vr[k] = 0.0f;
        }
        for (int s = 1; s <= 3; s++) {
            for (int k = 0; k < N; k++) g[k] = (float)(u01(&st) - 0.5) * (k % 7 == 0 ? 1e-6f : 1.0f);
            rc_optim_step(&o, w, g);
            double bc1 = 1.0 - pow(0.9, s), bc2s = sqrt(1.0 - pow(0.999, s)), step = 3e-3 / bc1;
            for (int k = 0; k < N; k++) {   /* the scalar loop as it was */
                double ww = wr[k], gg = g[k];
                if (kind) ww *= 1.0 - 3e-3 * 1e-2;
                else gg += 1e-2 * ww;
                double mk = mr[k] + (1.0 - 0.9) * (gg - mr[k]);
                double vk = 0.999 * vr[k] + (1.0 - 0.999) * gg * gg;
                mr[k] = (float)mk;
                vr[k] = (float)vk;
                double ss = k >= 97 && k < 333 ? step * 4.0 : step;
                ww -= ss * mk / (sqrt(vk) / bc2s + 1e-8);
                wr[k] = (float)ww;
            }
            cr_assert(!memcmp(w, wr, sizeof w), "%s step %d: parameters differ from the scalar formula", kind ? "adamw" : "adam", s);
            cr_assert(!memcmp(o.moments, mr, sizeof mr) && !memcmp(o.moments + N, vr, sizeof vr), "moments differ");
        }
        rc_optim_free(&o);
    }
}

Test(loss, poisson_log_torch_value)
{
    float in[4] = {0.5f, -1.0f, 2.0f, 0.0f}, targ[4] = {1, 0, 3, 2}, dy[4];
    rc_loss_value v = rc_loss_compute(RC_LOSS_POISSON_LOG, 0, RC_L1_SUM, 2, 2, in, targ, dy);
    cr_assert_float_eq(v.data, 0.9764142027005552, 1e-12);
    cr_assert_float_eq(v.l1, 0, 0);
    cr_assert_float_eq(v.total, 0.9764142027005552, 1e-12);
    /* d/dp = (e^p - t)/4: 0.1621803177, 0.0919698603, 1.0972640247, (1 - 2)/4 = -0.25 */
    const double g[4] = {0.16218031767503205, 0.09196986029286058, 1.0972640247326626, -0.25};
    for (int k = 0; k < 4; k++) cr_assert_float_eq(dy[k], g[k], 1e-7 * fabs(g[k]), "k %d: %g", k, dy[k]);
    /* the L1 activity penalty on the log-rate output, as the reference (torch.norm(pred, 1)):
     * sum |p| = 0.5 + 1 + 2 + 0 = 3.5 */
    v = rc_loss_compute(RC_LOSS_POISSON_LOG, 0.01, RC_L1_SUM, 2, 2, in, targ, dy);
    cr_assert_float_eq(v.l1, 0.035, 1e-15);
    cr_assert_float_eq(v.total, 0.9764142027005552 + 0.035, 1e-12);
    /* sign(p) * 0.01 added; sign(0) = 0 (PyTorch) leaves the last one alone */
    cr_assert_float_eq(dy[0], g[0] + 0.01, 1e-7);
    cr_assert_float_eq(dy[1], g[1] - 0.01, 1e-7);
    cr_assert_float_eq(dy[3], -0.25, 1e-7);
    v = rc_loss_compute(RC_LOSS_POISSON_LOG, 0.01, RC_L1_MEAN, 2, 2, in, targ, dy);
    cr_assert_float_eq(v.l1, 0.035 / 2, 1e-15);
    cr_assert_float_eq(dy[0], g[0] + 0.005, 1e-7);
    /* rc_loss_train reads the same settings from a train section */
    rc_train tr;
    memset(&tr, 0, sizeof tr);
    tr.loss = RC_LOSS_POISSON_LOG;
    tr.l1_activity = 0.01;
    tr.l1_mode = RC_L1_SUM;
    cr_assert_float_eq(rc_loss_train(&tr, 2, 2, in, targ, NULL).total, 0.9764142027005552 + 0.035, 1e-12);
}

Test(loss, poisson_log_value_and_gradient_by_hand_and_finite_differences)
{
    enum { B = 2, C = 3, N = B * C };
    /* log-rates: negative ones are normal here (rate < 1) */
    float p[N] = {-1.2f, 0.3f, 1.7f, -0.4f, 2.5f, 0.8f}, t[N] = {0, 1, 4, 0, 2, 3}, dy[N];
    for (int mode = 0; mode < 2; mode++) {
        const double l1 = 0.05, l1c = mode == RC_L1_MEAN ? l1 / B : l1;
        double want = 0, sa = 0;
        for (int k = 0; k < N; k++) { want += exp((double)p[k]) - t[k] * (double)p[k]; sa += fabs((double)p[k]); }
        want /= N;
        rc_loss_value v = rc_loss_compute(RC_LOSS_POISSON_LOG, l1, (rc_l1_mode)mode, B, C, p, t, dy);
        cr_assert_float_eq(v.data, want, 1e-12);
        cr_assert_float_eq(v.l1, l1c * sa, 1e-12);
        cr_assert_float_eq(v.total, want + l1c * sa, 1e-12);
        for (int k = 0; k < N; k++) {
            double g = (exp((double)p[k]) - t[k]) / N + l1c * (p[k] > 0 ? 1 : -1);
            cr_assert_float_eq(dy[k], g, 1e-6 * (1 + fabs(g)), "mode %d k %d", mode, k);
            /* central differences of the total (no element is near the |p| kink at 0) */
            float q[N];
            memcpy(q, p, sizeof q);
            q[k] = p[k] + 1e-3f;
            double lp = rc_loss_compute(RC_LOSS_POISSON_LOG, l1, (rc_l1_mode)mode, B, C, q, t, NULL).total;
            double hp = (double)q[k];
            q[k] = p[k] - 1e-3f;
            double lm = rc_loss_compute(RC_LOSS_POISSON_LOG, l1, (rc_l1_mode)mode, B, C, q, t, NULL).total;
            double fd = (lp - lm) / (hp - (double)q[k]);
            cr_assert_float_eq(dy[k], fd, 1e-5 * (1 + fabs(fd)), "mode %d k %d: %g vs fd %g", mode, k, dy[k], fd);
        }
    }
    /* it is not the rate-form loss: on the same numbers the two differ */
    double a = rc_loss_compute(RC_LOSS_POISSON_LOG, 0, RC_L1_SUM, B, C, p, t, NULL).data;
    float r[N];
    for (int k = 0; k < N; k++) r[k] = fabsf(p[k]);
    double b = rc_loss_compute(RC_LOSS_POISSON, 0, RC_L1_SUM, B, C, r, t, NULL).data;
    cr_assert(fabs(a - b) > 0.1, "%g %g", a, b);
}

/* Validation scores eval-mode outputs; under poisson_log those are rates exp(y) (the reference's
 * Exponential(train_off=True)), scored with the rate form, which equals the training data term
 * at the log-rate y up to the 1e-8 inside the log. */
Test(loss, validation_scores_eval_rates_with_the_rate_form)
{
    cr_assert_eq(rc_loss_eval_kind(RC_LOSS_POISSON_LOG), RC_LOSS_POISSON);
    cr_assert_eq(rc_loss_eval_kind(RC_LOSS_POISSON), RC_LOSS_POISSON);
    cr_assert_eq(rc_loss_eval_kind(RC_LOSS_MSE), RC_LOSS_MSE);
    enum { N = 8 };
    float y[N] = {-2.0f, -0.5f, 0.0f, 0.3f, 1.0f, 1.5f, -1.0f, 2.2f}, t[N] = {0, 1, 0, 2, 3, 1, 0, 5}, r[N];
    for (int k = 0; k < N; k++) r[k] = expf(y[k]);
    double train = rc_loss_compute(RC_LOSS_POISSON_LOG, 0, RC_L1_SUM, 2, 4, y, t, NULL).data;
    double val = rc_loss_compute(rc_loss_eval_kind(RC_LOSS_POISSON_LOG), 0, RC_L1_SUM, 2, 4, r, t, NULL).data;
    cr_assert_float_eq(val, train, 1e-6, "val %.9g train %.9g", val, train);
}

Test(loss, spec_and_canonical_text_name)
{
    static rc_ir ir, back;
    char err[512] = "";
    const char *spec =
        "return model \"plog\" {\n"
        "  input = { history = 2, height = 6, width = 6 },\n"
        "  dense {},\n"
        "  train = { loss = \"poisson_log\" },\n"
        "}\n";
    cr_assert_eq(rc_spec_load_string("plog.lua", spec, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir.train.loss, RC_LOSS_POISSON_LOG);
    char *text = rc_ir_format(&ir);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "loss=poisson_log"), "%s", text);
    cr_assert_eq(rc_ir_parse(&back, text, "plog.ir", err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.train.loss, RC_LOSS_POISSON_LOG);
    free(text);
    /* a misspelling is refused, naming the choices */
    const char *bad =
        "return model \"plog\" {\n"
        "  input = { history = 2, height = 6, width = 6 },\n"
        "  dense {},\n"
        "  train = { loss = \"log_poisson\" },\n"
        "}\n";
    cr_assert_eq(rc_spec_load_string("bad.lua", bad, &ir, err, sizeof err), -1);
    cr_assert(strstr(err, "poisson_log"), "%s", err);
}

/* The device loss and Adam kernels (compiler/cuda/emit_cuda_text.c) run on the host emulation:
 * the very text NVRTC compiles. 300 elements: two blocks, the second partial. */
Test(loss, cuda_util_kernels_on_host_emulation, .timeout = 120)
{
    enum { B = 20, C = 15, N = B * C, W = 257 };
    char err[1024];
    rc_cuda_dev *dev = emu_open();
    cr_assert_not_null(dev);
    rc_cuda_util *u = NULL;
    cr_assert_eq(rc_cuda_util_create(dev, &u, err, sizeof err), 0, "%s", err);
    static float pred[N], tgt[N], dy[N], dy2[N];
    for (int i = 0; i < N; i++) {
        pred[i] = (float)((i * 37) % 23) / 7.0f - 1.0f;   /* [-1, 2.14]: log-rates; |p| > 0 for the rate forms below */
        tgt[i] = (float)((i * 11) % 5);
    }
    float *dp = rc_cuda_malloc(dev, sizeof pred), *dt = rc_cuda_malloc(dev, sizeof tgt), *ddy = rc_cuda_malloc(dev, sizeof dy);
    cr_assert(dp && dt && ddy);
    for (int kind = 0; kind < 3; kind++)
        for (int mode = 0; mode < 2; mode++) {
            static float in[N];
            for (int i = 0; i < N; i++) in[i] = kind == RC_LOSS_POISSON ? fabsf(pred[i]) + 0.05f : pred[i];
            rc_loss_value want = rc_loss_compute((rc_loss)kind, 1e-3, (rc_l1_mode)mode, B, C, in, tgt, dy), got;
            cr_assert_eq(rc_cuda_upload(dev, dp, in, sizeof in), 0);
            cr_assert_eq(rc_cuda_upload(dev, dt, tgt, sizeof tgt), 0);
            cr_assert_eq(rc_cuda_loss(u, (rc_loss)kind, 1e-3, (rc_l1_mode)mode, B, C, dp, dt, ddy, &got), 0, "%s",
                         rc_cuda_util_error(u));
            cr_assert_eq(rc_cuda_download(dev, dy2, ddy, sizeof dy2), 0);
            cr_assert_float_eq(got.data, want.data, 1e-12 * (1 + fabs(want.data)), "kind %d", kind);
            cr_assert_float_eq(got.l1, want.l1, 1e-12, "kind %d", kind);
            cr_assert_float_eq(got.total, want.total, 1e-12 * (1 + fabs(want.total)), "kind %d", kind);
            for (int i = 0; i < N; i++)
                cr_assert_float_eq(dy2[i], dy[i], 1e-7 * (1 + fabsf(dy[i])), "kind %d mode %d i %d: %g vs %g", kind, mode,
                                   i, dy2[i], dy[i]);
        }
    /* Adam (coupled L2) and AdamW, three steps */
    static float w[W], g[W], w2[W], wd[W], mv[2 * W];
    for (int i = 0; i < W; i++) { w[i] = (float)((i * 13) % 17) / 8.0f - 1.0f; g[i] = (float)((i * 7) % 11) / 5.0f - 1.0f; }
    float *dw = rc_cuda_malloc(dev, sizeof w), *dg = rc_cuda_malloc(dev, sizeof g), *dmv = rc_cuda_malloc(dev, sizeof mv);
    cr_assert(dw && dg && dmv);
    for (int k = 0; k < 2; k++) {
        rc_optim o1, o2;
        rc_opt kind = k ? RC_OPT_ADAMW : RC_OPT_ADAM;
        cr_assert_eq(rc_optim_init(&o1, kind, W, 1e-2, 1e-3, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_optim_init(&o2, kind, W, 1e-2, 1e-3, err, sizeof err), 0, "%s", err);
        o1.fast_lo = o2.fast_lo = W / 4;   /* output_lr: a range at 10x lr, both sides */
        o1.fast_hi = o2.fast_hi = W / 2;
        o1.fast_mult = o2.fast_mult = 10;
        memcpy(w2, w, sizeof w);
        cr_assert_eq(rc_cuda_upload(dev, dw, w, sizeof w), 0);
        cr_assert_eq(rc_cuda_upload(dev, dg, g, sizeof g), 0);
        cr_assert_eq(rc_cuda_zero(dev, dmv, sizeof mv), 0);
        for (int s = 0; s < 3; s++) {
            rc_optim_step(&o1, w2, g);
            cr_assert_eq(rc_cuda_adam_step(u, &o2, dw, dg, dmv), 0, "%s", rc_cuda_util_error(u));
        }
        cr_assert_eq(rc_cuda_download(dev, wd, dw, sizeof wd), 0);
        for (int i = 0; i < W; i++) cr_assert_float_eq(wd[i], w2[i], 1e-6 * (1 + fabsf(w2[i])), "adam %d i %d", k, i);
        rc_optim_free(&o1);
        rc_optim_free(&o2);
    }
    rc_cuda_free(dev, dw); rc_cuda_free(dev, dg); rc_cuda_free(dev, dmv);
    rc_cuda_free(dev, dp); rc_cuda_free(dev, dt); rc_cuda_free(dev, ddy);
    rc_cuda_util_destroy(u);
    rc_cuda_close(dev);
}

/* ---------------------------------------------------------------- training end to end */

enum { E2E_EPOCHS = 3 };

typedef struct {
    int warnings, log_rate_warnings, epochs;
    double train_loss[E2E_EPOCHS], val_loss[E2E_EPOCHS];
} e2e_log;

static void e2e_warn(void *ctx, const char *line)
{
    e2e_log *l = ctx;
    l->warnings++;
    if (strstr(line, "poisson_log") && strstr(line, "log-rates")) l->log_rate_warnings++;
}

static void e2e_progress(void *ctx, const rc_train_progress *p)
{
    e2e_log *l = ctx;
    if (!p->epoch_done || l->epochs >= E2E_EPOCHS) return;
    l->train_loss[l->epochs] = p->train_loss;
    l->val_loss[l->epochs] = p->val_loss;
    l->epochs++;
}

/* Train `last` (the model's last layer(s) after a dense layer) with loss = "poisson_log". */
static void e2e_train(const char *last, e2e_log *l)
{
    char dir[256], data[300], rundir[320], spec[512], err[1024];
    kit_tmpdir(dir, sizeof dir, "rc_loss");
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    snprintf(rundir, sizeof rundir, "%s/run", dir);
    cr_assert_eq(tiny_retina_write(data, 3, 800, 200, 2), 0, "writing the tiny recording");
    snprintf(spec, sizeof spec,
             "return model \"plog\" {\n"
             "  input = { history = 8, height = 16, width = 16 },\n"
             "  dense { bias = true },%s\n"
             "  train = { loss = \"poisson_log\", lr = 1e-3, batch = 16, epochs = %d, l1_activity = 1e-4,\n"
             "            early_patience = 0, schedule = \"none\", seed = 5 },\n"
             "}\n", last, E2E_EPOCHS);
    static rc_ir ir;
    cr_assert_eq(rc_spec_load_string("plog.lua", spec, &ir, err, sizeof err), 0, "%s", err);
    rc_train_opts o;
    rc_train_opts_default(&o);
    o.data_path = data;
    o.rundir = rundir;
    o.backend = "ref";
    o.threads = 1;
    o.eval_test = 0;
    o.warn = e2e_warn;
    o.warn_ctx = l;
    o.progress = e2e_progress;
    o.progress_ctx = l;
    memset(l, 0, sizeof *l);
    rc_train_result res;
    cr_assert_eq(rc_train_run(&ir, &ir.train, &o, &res, err, sizeof err), 0, "%s", err);
    rc_train_result_free(&res);
    cr_assert_eq(l->epochs, E2E_EPOCHS);
    for (int e = 0; e < E2E_EPOCHS; e++) cr_assert(isfinite(l->train_loss[e]), "epoch %d: %g", e, l->train_loss[e]);
    cr_assert(l->train_loss[E2E_EPOCHS - 1] < l->train_loss[0], "training loss %g -> %g", l->train_loss[0],
              l->train_loss[E2E_EPOCHS - 1]);
}

Test(loss, poisson_log_trains_and_warns_when_eval_outputs_are_log_rates, .fini = kit_cleanup, .timeout = 120)
{
    e2e_log l;
    /* a bare dense output: a log-rate in both modes; rates < 1 per bin make it negative */
    e2e_train("", &l);
    cr_assert_eq(l.log_rate_warnings, 1, "warned %d times", l.log_rate_warnings);
    for (int e = 0; e < E2E_EPOCHS; e++) cr_assert(isnan(l.val_loss[e]), "epoch %d: %g", e, l.val_loss[e]);
    /* positive eval outputs (as an eval-only exp would give): no warning, a finite validation loss */
    e2e_train(" softplus {},", &l);
    cr_assert_eq(l.log_rate_warnings, 0);
    for (int e = 0; e < E2E_EPOCHS; e++) cr_assert(isfinite(l.val_loss[e]), "epoch %d: %g", e, l.val_loss[e]);
}

Test(loss, poisson_log_with_an_eval_only_exponential, .fini = kit_cleanup, .timeout = 120)
{
    e2e_log bare, ex;
    e2e_train("", &bare);
    e2e_train(" exponential { train_off = true },", &ex);
    /* the identity in training: the same run, loss for loss */
    for (int e = 0; e < E2E_EPOCHS; e++)
        cr_assert_float_eq(ex.train_loss[e], bare.train_loss[e], 1e-12 * (1 + fabs(bare.train_loss[e])),
                           "epoch %d: %.17g vs %.17g", e, ex.train_loss[e], bare.train_loss[e]);
    /* exp in eval: rates, no warning, a finite validation loss */
    cr_assert_eq(bare.log_rate_warnings, 1);
    cr_assert_eq(ex.log_rate_warnings, 0);
    for (int e = 0; e < E2E_EPOCHS; e++) cr_assert(isfinite(ex.val_loss[e]), "epoch %d: %g", e, ex.val_loss[e]);
}
