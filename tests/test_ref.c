/* test_ref.c — pins the reference backend (runtime/backend/ref.c) to finite differences and to
 * hand-computed values: every layer kind and option forward/backward, BN running statistics,
 * stacked-conv collapse, init, readout positions, losses and the optimizers; its double
 * instance (rc_ref64_*) against the float one and against the float backward at small steps.
 *
 * Models are built from compact canonical-IR text (fields left out keep their defaults) and
 * rc_ir_infer; shapes are tiny so the whole suite runs in seconds. Finite differences: central,
 * on L = sum(R .* y) for a fixed random R, in double from the float outputs, with the actual
 * float step (x+h)-(x-h); checked per tensor as the L2-relative error of the gradient vector.
 * Training-mode randomness is a pure function of the seed, so noise and dropout models are
 * deterministic functions of the parameters and can be differentiated numerically too.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bias_bn.h"
#include "ir.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "spec.h"

/* ---------------------------------------------------------------- fixture */

typedef struct {
    rc_ir ir;
    rc_backend *be;
    int B, T;
    uint64_t seed;
    float *params, *grads, *state, *state0, *frames, *y, *R, *ws;
    int64_t *starts;
    int *cell_pos;
} fx;

static void build_ir(rc_ir *ir, const char *input, const char *layers, int cells)
{
    char text[4096], err[512];
    snprintf(text, sizeof text, "retinac-ir 1\nmodel t\ninput %s\n%send\n", input, layers);
    cr_assert_eq(rc_ir_parse(ir, text, "test", err, sizeof err), 0, "parse: %s\n%s", err, text);
    cr_assert_eq(rc_ir_infer(ir, cells, "test", err, sizeof err), 0, "infer: %s\n%s", err, text);
}

static float urand(uint64_t seed, uint64_t stream, uint64_t i, float lo, float hi)
{
    return lo + (hi - lo) * rc_rng_uniform(seed, stream, i);
}

/* Parameters: PyTorch init, then BN scale/shift and running stats made non-trivial (scales of
 * both signs, so |scale| matters). */
static void perturb_bn(const rc_ir *ir, float *params, float *state, uint64_t seed)
{
    for (int p = 0; p < ir->n_params; p++) {
        const rc_param *v = &ir->params[p];
        size_t nl = strlen(v->name);
        int is_scale = nl > 6 && !strcmp(v->name + nl - 6, ".scale");
        int is_shift = nl > 6 && !strcmp(v->name + nl - 6, ".shift");
        for (int64_t k = 0; k < v->count; k++) {
            if (is_scale) {
                float m = urand(seed, 900 + p, k, 0.5f, 1.5f);
                params[v->offset + k] = (k % 3 == 1) ? -m : m;
            } else if (is_shift) {
                params[v->offset + k] = urand(seed, 900 + p, k, -0.5f, 0.5f);
            }
        }
    }
    for (int p = 0; p < ir->n_state; p++) {
        const rc_param *v = &ir->state[p];
        int is_var = strstr(v->name, "running_var") != NULL;
        for (int64_t k = 0; k < v->count; k++)
            state[v->offset + k] = is_var ? urand(seed, 950 + p, k, 0.5f, 2.0f)
                                          : urand(seed, 950 + p, k, -0.3f, 0.3f);
    }
}

/* Buffers, init and data for an inferred IR (copied into f). */
static void fx_setup_ir(fx *f, const rc_ir *src, int B, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->ir = *src;
    int cells = src->cells;
    f->B = B;
    f->seed = seed;
    cr_assert_eq(rc_ref_backend_create(&f->ir, &f->be), 0);
    const rc_ir *ir = &f->ir;
    int64_t P = ir->params_total, S = ir->state_total > 0 ? ir->state_total : 1;
    f->params = calloc((size_t)P, sizeof(float));
    f->grads = calloc((size_t)P, sizeof(float));
    f->state = calloc((size_t)S, sizeof(float));
    f->state0 = calloc((size_t)S, sizeof(float));
    rc_params_init(ir, seed, f->params, f->state0);
    perturb_bn(ir, f->params, f->state0, seed);
    size_t hw = (size_t)ir->in.h * ir->in.w;
    f->T = B + ir->in.c + 5;
    f->frames = malloc((size_t)f->T * hw * sizeof(float));
    for (size_t k = 0; k < (size_t)f->T * hw; k++) f->frames[k] = rc_rng_normal(seed, 7, k);
    f->starts = malloc((size_t)B * sizeof(int64_t));
    for (int b = 0; b < B; b++) f->starts[b] = (b * 3 + 1) % (f->T - ir->in.c + 1);
    f->y = calloc((size_t)B * cells, sizeof(float));
    f->R = malloc((size_t)B * cells * sizeof(float));
    for (int k = 0; k < B * cells; k++) f->R[k] = urand(seed, 8, k, -1, 1);
    f->ws = calloc(f->be->ws_floats(f->be, B), sizeof(float));
    int g = rc_gc_layer(ir);
    if (g >= 0) {
        const rc_layer *L = &ir->layers[g];
        int Ho = L->in.h - L->kernel + 1, Wo = L->in.w - L->kernel + 1;
        f->cell_pos = malloc((size_t)cells * 2 * sizeof(int));
        for (int n = 0; n < cells; n++) {
            f->cell_pos[2 * n] = (n * 5 + 1) % Ho;
            f->cell_pos[2 * n + 1] = (n * 3 + 2) % Wo;
        }
    }
    cr_assert(f->params && f->grads && f->state && f->frames && f->starts && f->y && f->R && f->ws);
}

static void fx_setup(fx *f, const char *input, const char *layers, int cells, int B, uint64_t seed)
{
    rc_ir ir;
    build_ir(&ir, input, layers, cells);
    fx_setup_ir(f, &ir, B, seed);
}

static void fx_free(fx *f)
{
    rc_backend_destroy(f->be);
    free(f->params); free(f->grads); free(f->state); free(f->state0); free(f->frames);
    free(f->starts); free(f->y); free(f->R); free(f->ws); free(f->cell_pos);
}

/* L = sum R .* y of a training forward from the initial state. */
static double fx_loss(fx *f)
{
    const rc_ir *ir = &f->ir;
    memcpy(f->state, f->state0, (size_t)(ir->state_total > 0 ? ir->state_total : 1) * sizeof(float));
    int rc = f->be->train_forward(f->be, f->B, f->params, f->state, f->cell_pos, f->seed, f->frames,
                                  f->starts, f->y, f->ws);
    cr_assert_eq(rc, 0, "train_forward: %s", f->be->err);
    double L = 0;
    for (int k = 0; k < f->B * ir->cells; k++) L += (double)f->R[k] * f->y[k];
    return L;
}

static void fx_grads(fx *f)
{
    memset(f->grads, 0, (size_t)f->ir.params_total * sizeof(float));
    fx_loss(f);
    int rc = f->be->train_backward(f->be, f->B, f->params, f->cell_pos, f->frames, f->starts, f->R,
                                   f->grads, f->ws);
    cr_assert_eq(rc, 0, "train_backward: %s", f->be->err);
}

/* Central differences (Richardson-extrapolated over h and h/2, so that h can stay large
 * against float rounding) against the analytic gradient, per parameter tensor: all elements up to
 * max_n, else an even sample. Asserts ||fd - g|| <= tol * max(||g||, 1e-3 ||grad of all||). */
static void fd_check(fx *f, double h, double tol, int max_n, int kinked)
{
    fx_grads(f);
    const rc_ir *ir = &f->ir;
    /* noise floor: FD of a gradient that is exactly zero in theory (a conv bias before a BN)
     * is float noise, judged against the size of the whole gradient */
    double gall = 0;
    for (int64_t k = 0; k < ir->params_total; k++) gall += (double)f->grads[k] * f->grads[k];
    double floor_ = 1e-3 * sqrt(gall);
    for (int p = 0; p < ir->n_params; p++) {
        const rc_param *v = &ir->params[p];
        int64_t n = v->count, stride = n > max_n ? (n + max_n - 1) / max_n : 1;
        double e2 = 0, g2 = 0;
        int checked = 0, skipped = 0;
        for (int64_t k = (p * 7) % stride; k < n; k += stride) {
            float *x = &f->params[v->offset + k];
            float x0 = *x;
            double d[2];
            for (int r = 0; r < 2; r++) {
                float hh = (float)(r ? h / 2 : h), xp = x0 + hh, xm = x0 - hh;
                *x = xp;
                double lp = fx_loss(f);
                *x = xm;
                double lm = fx_loss(f);
                d[r] = (lp - lm) / ((double)xp - (double)xm);
            }
            *x = x0;
            /* Richardson cancels the h^2 term of smooth models; across a kink it amplifies the
             * error, so kinked models take the plain difference at h/2 */
            double fd = kinked ? d[1] : (4 * d[1] - d[0]) / 3;
            double g = f->grads[v->offset + k];
            /* kinked models (relu/abs/requ): an element whose difference straddles a kink is
             * wrong by about the slope change there; such outliers are skipped and counted,
             * at most 1 in 10 (a wrong derivative would spoil most elements, not a few) */
            if (kinked && fabs(fd - g) > 5 * tol * fabs(g) + floor_ / sqrt((double)n)) {
                skipped++;
                continue;
            }
            checked++;
            e2 += (fd - g) * (fd - g);
            g2 += g * g;
        }
        if (bias_before_bn(ir, v)) {
            /* zero in theory: both the analytic gradient and its difference from the FD
             * estimate must be negligible against the whole gradient (a real dependence would
             * be of the order of floor_ x 1000) */
            cr_assert(sqrt(g2) <= 0.1 * floor_ && sqrt(e2) <= 0.1 * floor_, "%s: gradient %s should vanish: "
                      "|g| %.3g, |fd - g| %.3g, whole gradient %.3g", ir->name, v->name, sqrt(g2), sqrt(e2),
                      1e3 * floor_);
            continue;
        }
        double rel = sqrt(e2) / fmax(sqrt(g2), floor_);
        cr_assert(rel <= tol, "%s: gradient %s: finite-difference L2-relative error %.3g > %.3g "
                  "(|g| = %.3g)", ir->name, v->name, rel, tol, sqrt(g2));
        cr_assert(g2 > 0 || n == 0, "%s: gradient %s is identically zero", ir->name, v->name);
        if (skipped) cr_log_info("%s: %s: %d of %d elements skipped as kink crossings", ir->name,
                                 v->name, skipped, skipped + checked);
        cr_assert(skipped * 10 <= checked, "%s: gradient %s: %d of %d elements off (kinks?)",
                  ir->name, v->name, skipped, skipped + checked);
    }
}

#define IN "history=3 height=8 width=8"

static void fd_model_k(const char *input, const char *layers, int cells, int B, double h, double tol,
                       int kinked)
{
    fx f;
    fx_setup(&f, input, layers, cells, B, 12345);
    fd_check(&f, h, tol, 150, kinked);
    fx_free(&f);
}

static void fd_model(const char *input, const char *layers, int cells, int B, double h, double tol)
{
    fd_model_k(input, layers, cells, B, h, tol, 0);
}

/* ---------------------------------------------------------------- finite differences per layer */

Test(ref_fd, conv_plain)
{
    fd_model(IN, "layer conv channels=3 kernel=3 bias=true\nlayer softplus\nlayer dense bias=true\n",
             2, 4, 1e-2, 2e-3);
    fd_model(IN, "layer conv channels=2 kernel=5 bias=false\nlayer tanh\nlayer dense bias=false\n",
             3, 3, 1e-2, 2e-3);
}

Test(ref_fd, conv_tiled_period2)
{
    fd_model(IN, "layer conv channels=2 kernel=3 period=2\nlayer softplus\n"
             "layer conv channels=2 kernel=2 period=3\nlayer tanh\nlayer dense\n", 2, 3, 1e-2, 2e-3);
}

Test(ref_fd, conv_locally_connected)
{
    fd_model(IN, "layer conv channels=2 kernel=4 period=0\nlayer sigmoid\nlayer dense\n", 2, 3, 1e-2, 2e-3);
}

Test(ref_fd, conv_stacked)
{
    fd_model(IN, "layer conv channels=2 kernel=5 stack=3\nlayer softplus\nlayer dense\n", 2, 3, 1e-2, 2e-3);
    /* uneven chain (7 = 3,3,3 ... last 3? no: 6 = 3,3,2), inner channels differ, no bias */
    fd_model(IN, "layer conv channels=2 kernel=6 stack=3 stack_channels=3 bias=false\nlayer tanh\n"
             "layer conv channels=2 kernel=3 stack=2\nlayer dense\n", 2, 3, 1e-2, 2e-3);
}

Test(ref_fd, conv_stacked_dropout)
{
    /* fixed seed: the masks are a pure function of (seed, layer, sub, index) */
    fd_model(IN, "layer conv channels=2 kernel=7 stack=3 stack_dropout=0.3\nlayer softplus\n"
             "layer conv channels=2 kernel=2 stack=2\nlayer dense\n", 2, 3, 1e-2, 2e-3);
}

Test(ref_fd, dense)
{
    fd_model(IN, "layer dense units=4 bias=true\nlayer tanh\nlayer dense bias=true\n", 3, 4, 1e-2, 2e-3);
    fd_model(IN, "layer dense units=3 bias=false\nlayer softplus\nlayer dense bias=false\n", 2, 4, 1e-2, 2e-3);
}

Test(ref_fd, batchnorm_unit)
{
    fd_model(IN, "layer conv channels=2 kernel=3\nlayer batchnorm over=unit\nlayer tanh\n"
             "layer dense\nlayer batchnorm\n", 2, 5, 1e-2, 3e-3);
}

Test(ref_fd, batchnorm_unit_abs)
{
    fd_model(IN, "layer conv channels=2 kernel=3\nlayer batchnorm over=unit abs=true\nlayer tanh\n"
             "layer dense\nlayer batchnorm abs=true\n", 2, 5, 1e-2, 3e-3);
}

Test(ref_fd, batchnorm_channel)
{
    fd_model(IN, "layer conv channels=3 kernel=3\nlayer batchnorm over=channel eps=0.01\nlayer softplus\n"
             "layer dense\n", 2, 4, 1e-2, 3e-3);
}

Test(ref_fd, batchnorm_channel_abs)
{
    fd_model(IN, "layer conv channels=3 kernel=3\nlayer batchnorm over=channel abs=true momentum=0.1\n"
             "layer softplus\nlayer dense\nlayer batchnorm abs=true\n", 2, 4, 1e-2, 3e-3);
}

/* Each rectification between a conv and a dense: the conv's gradients go through its backward.
 * Non-smooth ones (relu, abs, requ) use a small step; kinks are rare at random inputs. */
static void fd_act(const char *act, double h, double tol, int kinked)
{
    char layers[256];
    snprintf(layers, sizeof layers, "layer conv channels=2 kernel=3\nlayer %s\nlayer dense\n", act);
    fd_model_k(IN, layers, 2, 3, h, tol, kinked);
}

Test(ref_fd, act_smooth)
{
    fd_act("softplus", 1e-2, 2e-3, 0);
    fd_act("exp", 1e-2, 2e-3, 0);
    fd_act("square", 1e-2, 2e-3, 0);
    fd_act("sigmoid", 1e-2, 2e-3, 0);
    fd_act("tanh", 1e-2, 2e-3, 0);
    fd_act("identity", 1e-2, 2e-3, 0);
}

Test(ref_fd, act_kinked)
{
    fd_act("relu", 2e-3, 1e-2, 1);
    fd_act("abs", 2e-3, 1e-2, 1);
    fd_act("requ", 2e-3, 1e-2, 1);
}

Test(ref_fd, noise)
{
    fd_model(IN, "layer conv channels=2 kernel=3\nlayer noise std=0.5\nlayer softplus\nlayer dense\n",
             2, 3, 1e-2, 2e-3);
}

Test(ref_fd, dropout)
{
    fd_model(IN, "layer conv channels=2 kernel=3\nlayer dropout p=0.4\nlayer softplus\nlayer dense\n",
             2, 3, 1e-2, 2e-3);
}

Test(ref_fd, gcconv)
{
    fd_model(IN, "layer conv channels=3 kernel=3\nlayer softplus\nlayer gcconv kernel=3 bias=true\n",
             4, 3, 1e-2, 2e-3);
    fd_model(IN, "layer gcconv kernel=4 bias=false\nlayer softplus\n", 3, 3, 1e-2, 2e-3);
}

/* Whole tiny models in the shape of the shipped architectures (relu -> smooth act for FD). */
Test(ref_fd, tiny_bncnn)
{
    fd_model("history=4 height=10 width=10",
             "layer conv channels=3 kernel=3\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer softplus\n"
             "layer conv channels=2 kernel=3\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer softplus\n"
             "layer dense bias=false\nlayer batchnorm\nlayer softplus\n", 3, 6, 1e-2, 3e-3);
}

Test(ref_fd, tiny_stacked_gc)
{
    fd_model("history=4 height=12 width=12",
             "layer conv channels=3 kernel=5 stack=3 stack_dropout=0.2\nlayer batchnorm over=channel abs=true\n"
             "layer noise std=0.1\nlayer softplus\n"
             "layer conv channels=2 kernel=3 stack=3 stack_dropout=0.2\nlayer batchnorm over=channel abs=true\n"
             "layer noise std=0.1\nlayer softplus\n"
             "layer gcconv kernel=3 bias=false\nlayer batchnorm abs=true\nlayer softplus\n", 3, 5, 1e-2, 3e-3);
}

Test(ref_fd, tiny_bncnn_relu)
{
    fd_model_k("history=4 height=10 width=10",
               "layer conv channels=3 kernel=3\nlayer batchnorm over=unit\nlayer noise std=0.05\nlayer relu\n"
               "layer conv channels=2 kernel=3\nlayer batchnorm over=unit\nlayer noise std=0.05\nlayer relu\n"
               "layer dense bias=false\nlayer batchnorm\nlayer softplus\n", 3, 6, 1e-3, 1e-2, 1);
}

/* The shipped test-size spec, loaded through the spec front end (relu: kinked). */
Test(ref_fd, spec_tiny)
{
    fx f;
    char err[512];
    rc_ir ir;
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", 3, &ir, err, sizeof err), 0, "%s", err);
    fx_setup_ir(&f, &ir, 6, 99);
    fd_check(&f, 1e-3, 1e-2, 40, 1);
    fx_free(&f);
}

/* ---------------------------------------------------------------- the double instance */

/* The double forward (rc_ref64_*) against the float one, train and eval, on f's problem: y
 * equal up to float rounding of the activations, y really not rounded to float, the BN running
 * statistics updated alike, the loss of rc_loss_train64 that of the float y up to rounding. */
static void ref64_agrees(fx *f)
{
    const rc_ir *ir = &f->ir;
    int BC = f->B * ir->cells;
    size_t S = (size_t)(ir->state_total > 0 ? ir->state_total : 1);
    size_t nws = rc_ref64_ws_doubles(f->be, f->B);
    cr_assert_gt(nws, 0);
    double *ws = malloc(sizeof(double) * nws), *y = malloc(sizeof(double) * (size_t)BC);
    float *state = malloc(sizeof(float) * S), *tgt = malloc(sizeof(float) * (size_t)BC);
    cr_assert(ws && y && state && tgt);
    for (int k = 0; k < BC; k++) tgt[k] = urand(f->seed, 31, k, 0, 2);
    for (int train = 1; train >= 0; train--) {
        memcpy(f->state, f->state0, sizeof(float) * S);
        memcpy(state, f->state0, sizeof(float) * S);
        int rc = train ? f->be->train_forward(f->be, f->B, f->params, f->state, f->cell_pos, f->seed, f->frames,
                                              f->starts, f->y, f->ws)
                       : f->be->infer(f->be, f->B, f->params, f->state0, f->cell_pos, f->frames, f->starts, f->y,
                                      f->ws);
        cr_assert_eq(rc, 0, "%s", f->be->err);
        rc = train ? rc_ref64_train_forward(f->be, f->B, f->params, state, f->cell_pos, f->seed, f->frames, f->starts,
                                            y, ws)
                   : rc_ref64_infer(f->be, f->B, f->params, f->state0, f->cell_pos, f->frames, f->starts, y, ws);
        cr_assert_eq(rc, 0, "%s", f->be->err);
        double ymax = 0, dmax = 0;
        int unrounded = 0;
        for (int k = 0; k < BC; k++) {
            ymax = fmax(ymax, fabs(y[k]));
            dmax = fmax(dmax, fabs(y[k] - f->y[k]));
            unrounded += y[k] != (double)(float)y[k];
        }
        cr_expect_leq(dmax, 1e-5 * ymax + 1e-7, "%s train %d: double and float outputs differ by %g (max %g)",
                      ir->name, train, dmax, ymax);
        cr_expect_gt(unrounded, 0, "%s train %d: the double outputs are all float values", ir->name, train);
        for (size_t k = 0; k < (size_t)ir->state_total; k++)
            cr_expect_leq(fabs(state[k] - f->state[k]), 1e-5 * (1 + fabs(f->state[k])), "%s: state %zu", ir->name, k);
        double l32 = rc_loss_train(&ir->train, f->B, ir->cells, f->y, tgt, NULL).total;
        double l64 = rc_loss_train64(&ir->train, f->B, ir->cells, y, tgt).total;
        cr_expect_leq(fabs(l64 - l32), 1e-5 * fabs(l32), "%s: loss %.9g vs %.9g", ir->name, l64, l32);
    }
    free(ws); free(y); free(state); free(tgt);
}

Test(ref64, agrees_with_float_reference)
{
    fx f;
    fx_setup(&f, "history=4 height=12 width=12",
             "layer conv channels=3 kernel=5 stack=3 stack_dropout=0.2\nlayer batchnorm over=channel abs=true\n"
             "layer noise std=0.1\nlayer relu\nlayer conv channels=2 kernel=3 bias=true\nlayer dropout p=0.3\n"
             "layer batchnorm over=unit\nlayer softplus\nlayer gcconv kernel=3 bias=true\nlayer batchnorm\n"
             "layer softplus\n", 3, 5, 4242);
    ref64_agrees(&f);
    fx_free(&f);
    fx_setup(&f, IN, "layer conv channels=2 kernel=3 bias=true\nlayer tanh\nlayer dense bias=true\nlayer exp\n", 3, 3, 7);
    ref64_agrees(&f);
    fx_free(&f);
    /* defined layers (divisive normalization, parametric softplus): the interpreter's double output */
    const char *specs[] = {"/specs/divnorm.lua", "/specs/psoftplus.lua"};
    for (int i = 0; i < 2; i++) {
        char path[1024], err[512];
        rc_ir ir;
        snprintf(path, sizeof path, "%s%s", RC_SRC_DIR, specs[i]);
        cr_assert_eq(rc_spec_check(path, 3, &ir, err, sizeof err), 0, "%s", err);
        fx_setup_ir(&f, &ir, 3, 5);
        ref64_agrees(&f);
        fx_free(&f);
    }
}

/* The point of the double instance: along one parameter of a relu model, sum(R .* y) has no
 * float rounding, so central differences at a step of 1e-6 match the float backward to the
 * latter's rounding (the float reference's own differences at that step are noise). */
Test(ref64, small_step_differences_match_backward)
{
    fx f;
    char err[512];
    rc_ir ir;
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", 3, &ir, err, sizeof err), 0, "%s", err);
    fx_setup_ir(&f, &ir, 4, 99);
    fx_grads(&f);
    size_t S = (size_t)(ir.state_total > 0 ? ir.state_total : 1), BC = (size_t)f.B * ir.cells;
    double *ws = malloc(sizeof(double) * rc_ref64_ws_doubles(f.be, f.B)), *y = malloc(sizeof(double) * BC);
    cr_assert(ws && y);
    int checked = 0;
    for (int p = 0; p < f.ir.n_params; p++) {
        const rc_param *v = &f.ir.params[p];
        for (int64_t k = 0; k < v->count; k += 1 + v->count / 5) {
            float *x = &f.params[v->offset + k], x0 = *x, xs[2];
            double L[2];
            for (int r = 0; r < 2; r++) {
                *x = xs[r] = (float)(x0 + (r ? -1e-6 : 1e-6) * fmax(1, fabs(x0)));
                memcpy(f.state, f.state0, sizeof(float) * S);
                cr_assert_eq(rc_ref64_train_forward(f.be, f.B, f.params, f.state, f.cell_pos, f.seed, f.frames,
                                                    f.starts, y, ws), 0, "%s", f.be->err);
                L[r] = 0;
                for (size_t e = 0; e < BC; e++) L[r] += (double)f.R[e] * y[e];
            }
            *x = x0;
            double fd = (L[0] - L[1]) / ((double)xs[0] - (double)xs[1]), g = f.grads[v->offset + k];
            if (bias_before_bn(&f.ir, v)) continue;
            cr_expect_leq(fabs(fd - g), 1e-4 * fabs(g) + 1e-7, "%s[%lld]: fd %.9g, backward %.9g", v->name,
                          (long long)k, fd, g);
            checked++;
        }
    }
    cr_expect_gt(checked, 20);
    free(ws); free(y);
    fx_free(&f);
}

Test(ref64, refuses_other_backends)
{
    fx f;
    fx_setup(&f, IN, "layer conv channels=2 kernel=3\nlayer dense\n", 3, 2, 1);
    rc_backend other = *f.be;
    other.name = "c";
    double y[6], ws[4];
    cr_expect_eq(rc_ref64_ws_doubles(&other, 2), 0);
    cr_expect_eq(rc_ref64_train_forward(&other, 2, f.params, f.state, NULL, 1, f.frames, f.starts, y, ws), -1);
    cr_expect_eq(rc_ref64_infer(&other, 2, f.params, f.state0, NULL, f.frames, f.starts, y, ws), -1);
    fx_free(&f);
}

/* ---------------------------------------------------------------- forward semantics */

/* Direct conv of the frames for one output, written independently of ref.c. */
static double conv_at(const fx *f, const float *W, int Cin, int K, int b, int o, int y, int x)
{
    int H = f->ir.in.h, Wd = f->ir.in.w;
    double s = 0;
    for (int c = 0; c < Cin; c++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                s += (double)W[((o * Cin + c) * K + i) * K + j] *
                     f->frames[((size_t)f->starts[b] + c) * H * Wd + (size_t)(y + i) * Wd + x + j];
    return s;
}

Test(ref_fwd, conv_dense_by_hand)
{
    /* conv -> identity -> dense: y = Wd . flatten(conv(x) + bc) + bd, computed here by hand */
    fx f;
    fx_setup(&f, IN, "layer conv channels=2 kernel=3\nlayer dense\n", 2, 3, 77);
    const rc_ir *ir = &f.ir;
    const float *Wc = f.params + ir->params[0].offset, *bc = f.params + ir->params[1].offset;
    const float *Wd = f.params + ir->params[2].offset, *bd = f.params + ir->params[3].offset;
    cr_assert_str_eq(ir->params[0].name, "1.conv.weight");
    cr_assert_str_eq(ir->params[2].name, "2.dense.weight");
    fx_loss(&f);
    for (int b = 0; b < f.B; b++)
        for (int u = 0; u < 2; u++) {
            double s = bd[u];
            for (int o = 0; o < 2; o++)
                for (int y = 0; y < 6; y++)
                    for (int x = 0; x < 6; x++)
                        s += Wd[u * 72 + (o * 6 + y) * 6 + x] * (conv_at(&f, Wc, 3, 3, b, o, y, x) + bc[o]);
            cr_assert_float_eq(f.y[b * 2 + u], s, 1e-4 * (1 + fabs(s)), "b %d u %d: %g vs %g", b, u, f.y[b * 2 + u], s);
        }
    /* no BN/noise/dropout: eval equals training */
    float yi[6];
    cr_assert_eq(f.be->infer(f.be, f.B, f.params, f.state, f.cell_pos, f.frames, f.starts, yi, f.ws), 0);
    for (int k = 0; k < 6; k++) cr_assert_eq(yi[k], f.y[k]);
    fx_free(&f);
}

Test(ref_fwd, tiled_equal_phases_is_plain_conv)
{
    fx a, t;
    fx_setup(&a, IN, "layer conv channels=2 kernel=3\nlayer dense\n", 2, 3, 5);
    fx_setup(&t, IN, "layer conv channels=2 kernel=3 period=2\nlayer dense\n", 2, 3, 5);
    const rc_param *wa = &a.ir.params[0], *wt = &t.ir.params[0];
    cr_assert_eq(wt->rank, 6);
    cr_assert_eq(wt->count, 4 * wa->count);
    for (int ph = 0; ph < 4; ph++) {
        memcpy(t.params + wt->offset + ph * wa->count, a.params + wa->offset, wa->count * sizeof(float));
        memcpy(t.params + t.ir.params[1].offset + ph * 2, a.params + a.ir.params[1].offset, 2 * sizeof(float));
    }
    memcpy(t.params + t.ir.params[2].offset, a.params + a.ir.params[2].offset,
           (a.ir.params[2].count + 2) * sizeof(float));   /* dense weight + bias follow */
    fx_loss(&a);
    fx_loss(&t);
    for (int k = 0; k < 6; k++) cr_assert_float_eq(a.y[k], t.y[k], 1e-6, "%d", k);
    /* and changing one phase changes only the outputs that use it */
    t.params[wt->offset + 3 * wa->count] += 1.0f;   /* phase (1,1), weight (0,0,0,0) */
    fx_loss(&t);
    int changed = 0;
    for (int k = 0; k < 6; k++) changed += fabsf(a.y[k] - t.y[k]) > 1e-6f;
    cr_assert(changed > 0);
    fx_free(&a);
    fx_free(&t);
}

Test(ref_fwd, stacked_collapse_equals_chain)
{
    const char *chain[] = {
        "layer conv channels=2 kernel=7 stack=3 stack_dropout=0.3\nlayer dense\n",
        "layer conv channels=3 kernel=6 stack=3 stack_channels=4 bias=false\nlayer dense\n",
    };
    const char *plain[] = {
        "layer conv channels=2 kernel=7\nlayer dense\n",
        "layer conv channels=3 kernel=6 bias=false\nlayer dense\n",
    };
    for (int m = 0; m < 2; m++) {
        fx s, p;
        fx_setup(&s, IN, chain[m], 2, 3, 9 + m);
        fx_setup(&p, IN, plain[m], 2, 3, 9 + m);
        char err[256];
        const rc_param *pw = rc_ir_find_param(&p.ir, "1.conv.weight");
        cr_assert_eq(rc_stack_collapse(&s.ir, 0, s.params, p.params + pw->offset, err, sizeof err), 0, "%s", err);
        const char *names[] = {"1.conv.bias", "2.dense.weight", "2.dense.bias"};
        for (int k = 0; k < 3; k++) {
            const rc_param *a = rc_ir_find_param(&s.ir, names[k]), *b = rc_ir_find_param(&p.ir, names[k]);
            if (!a) { cr_assert_null(b); continue; }
            cr_assert_eq(a->count, b->count);
            memcpy(p.params + b->offset, s.params + a->offset, a->count * sizeof(float));
        }
        float ys[6], yp[6];
        cr_assert_eq(s.be->infer(s.be, 3, s.params, s.state0, NULL, s.frames, s.starts, ys, s.ws), 0);
        cr_assert_eq(p.be->infer(p.be, 3, p.params, p.state0, NULL, s.frames, s.starts, yp, p.ws), 0);
        for (int k = 0; k < 6; k++)
            cr_assert_float_eq(ys[k], yp[k], 1e-4 * (1 + fabsf(yp[k])), "model %d out %d: %g vs %g", m, k, ys[k], yp[k]);
        /* training with dropout differs from eval (model 0 only) */
        if (m == 0) {
            fx_loss(&s);
            double d = 0;
            for (int k = 0; k < 6; k++) d += fabs(s.y[k] - ys[k]);
            cr_assert(d > 1e-4, "stack dropout had no effect in training");
        }
        fx_free(&s);
        fx_free(&p);
    }
    rc_ir ir;
    build_ir(&ir, IN, "layer conv channels=2 kernel=3\nlayer dense\n", 2);
    float w[64];
    char err[256];
    cr_assert_eq(rc_stack_collapse(&ir, 0, NULL, w, err, sizeof err), -1);
    cr_assert(strstr(err, "not a stacked conv") != NULL, "%s", err);
}

Test(ref_fwd, stack_filter_composition_by_hand)
{
    /* base 1x1x2x2, stack 1x1x2x2 -> 3x3 full 2-D convolution-of-correlations */
    float base[4] = {1, 2, 3, 4}, stack[4] = {5, 6, 7, 8}, out[9];
    rc_stack_filter(base, 1, 1, 2, stack, 1, 2, out);
    /* out[a+i][c+j] += stack[a][c] * base[i][j] */
    float want[9] = {5, 16, 12, 22, 60, 40, 21, 52, 32};
    for (int k = 0; k < 9; k++) cr_assert_float_eq(out[k], want[k], 1e-6, "%d: %g vs %g", k, out[k], want[k]);
}

Test(ref_fwd, dropout_masks)
{
    /* dropout as layer 0 on the frames: kept elements scaled by 1/(1-p), dropped ones 0,
     * about p of them dropped, the same for the same seed, different for another seed */
    fx f;
    fx_setup(&f, "history=4 height=16 width=16", "layer dropout p=0.3\nlayer dense\n", 2, 8, 3);
    const rc_ir *ir = &f.ir;
    fx_loss(&f);
    /* read the dropout layer's output: ws layout is internal, so recompute y by hand instead */
    const float *W = f.params + ir->params[0].offset, *bias = f.params + ir->params[1].offset;
    int F = 4 * 16 * 16, dropped = 0;
    for (int b = 0; b < f.B; b++) {
        double s0 = bias[0];
        for (int k = 0; k < F; k++) {
            float x = f.frames[(size_t)f.starts[b] * 256 + k];
            int keep = rc_rng_uniform(f.seed, RC_RNG_STREAM(0, 0), (uint64_t)(b * F + k)) >= 0.3f;
            dropped += !keep;
            s0 += W[k] * (keep ? x / 0.7 : 0.0);
        }
        cr_assert_float_eq(f.y[b * 2], s0, 1e-4 * (1 + fabs(s0)), "b %d: %g vs %g", b, f.y[b * 2], s0);
    }
    double frac = (double)dropped / (f.B * F);
    cr_assert(frac > 0.27 && frac < 0.33, "dropped fraction %g for p 0.3", frac);
    float y1[16];
    memcpy(y1, f.y, sizeof y1);
    fx_loss(&f);
    cr_assert_eq(memcmp(y1, f.y, sizeof y1), 0, "same seed, different output");
    f.seed = 4;
    fx_loss(&f);
    cr_assert_neq(memcmp(y1, f.y, sizeof y1), 0, "another seed, same output");
    float yi[16];
    cr_assert_eq(f.be->infer(f.be, f.B, f.params, f.state, NULL, f.frames, f.starts, yi, f.ws), 0);
    for (int b = 0; b < f.B; b++) {
        double s0 = bias[0];
        for (int k = 0; k < F; k++) s0 += W[k] * f.frames[(size_t)f.starts[b] * 256 + k];
        cr_assert_float_eq(yi[b * 2], s0, 1e-4 * (1 + fabs(s0)), "eval is not identity");
    }
    fx_free(&f);
}

Test(ref_fwd, noise_draws)
{
    fx f;
    fx_setup(&f, "history=2 height=8 width=8", "layer noise std=0.5\nlayer dense\n", 1, 4, 21);
    const rc_ir *ir = &f.ir;
    fx_loss(&f);
    const float *W = f.params + ir->params[0].offset, *bias = f.params + ir->params[1].offset;
    int F = 128;
    for (int b = 0; b < f.B; b++) {
        double s = bias[0];
        for (int k = 0; k < F; k++)
            s += W[k] * (f.frames[(size_t)f.starts[b] * 64 + k] +
                         0.5 * rc_rng_normal(f.seed, RC_RNG_STREAM(0, 0), (uint64_t)(b * F + k)));
        cr_assert_float_eq(f.y[b], s, 1e-4 * (1 + fabs(s)), "b %d: %g vs %g", b, f.y[b], s);
    }
    fx_free(&f);
}

Test(ref_fwd, batchnorm_running_update_and_eval)
{
    /* BN over units as layer 0 reads the frames directly; momentum 0.1 */
    fx f;
    fx_setup(&f, "history=2 height=3 width=3", "layer batchnorm over=unit momentum=0.1 eps=0.001\nlayer dense\n",
             1, 5, 31);
    const rc_ir *ir = &f.ir;
    const rc_param *rm = rc_ir_find_param(ir, "1.batchnorm.running_mean");
    const rc_param *rv = rc_ir_find_param(ir, "1.batchnorm.running_var");
    cr_assert_not_null(rm);
    cr_assert_not_null(rv);
    fx_loss(&f);
    int F = 18;
    for (int k = 0; k < F; k++) {
        double m = 0, v = 0;
        for (int b = 0; b < 5; b++) m += f.frames[(size_t)f.starts[b] * 9 + k];
        m /= 5;
        for (int b = 0; b < 5; b++) {
            double d = f.frames[(size_t)f.starts[b] * 9 + k] - m;
            v += d * d;
        }
        double em = 0.9 * f.state0[rm->offset + k] + 0.1 * m;
        double ev = 0.9 * f.state0[rv->offset + k] + 0.1 * v / 4;   /* unbiased */
        cr_assert_float_eq(f.state[rm->offset + k], em, 1e-6, "mean %d", k);
        cr_assert_float_eq(f.state[rv->offset + k], ev, 1e-5, "var %d", k);
    }
    /* eval uses the running statistics */
    const float *sc = f.params + rc_ir_find_param(ir, "1.batchnorm.scale")->offset;
    const float *sh = f.params + rc_ir_find_param(ir, "1.batchnorm.shift")->offset;
    const float *W = f.params + rc_ir_find_param(ir, "2.dense.weight")->offset;
    const float *bd = f.params + rc_ir_find_param(ir, "2.dense.bias")->offset;
    float yi[5];
    cr_assert_eq(f.be->infer(f.be, 5, f.params, f.state, NULL, f.frames, f.starts, yi, f.ws), 0);
    for (int b = 0; b < 5; b++) {
        double s = bd[0];
        for (int k = 0; k < F; k++) {
            double x = f.frames[(size_t)f.starts[b] * 9 + k];
            s += W[k] * ((x - f.state[rm->offset + k]) / sqrt(f.state[rv->offset + k] + 0.001) * sc[k] + sh[k]);
        }
        cr_assert_float_eq(yi[b], s, 1e-4 * (1 + fabs(s)), "b %d: %g vs %g", b, yi[b], s);
    }
    fx_free(&f);
}

Test(ref_fwd, batchnorm_channel_stats_by_hand)
{
    /* channel BN (abs) of layer 0: features = history channels, stats over B*H*W */
    fx f;
    fx_setup(&f, "history=2 height=3 width=3", "layer batchnorm over=channel abs=true\nlayer dense bias=false\n",
             1, 3, 41);
    const rc_ir *ir = &f.ir;
    fx_loss(&f);
    const float *sc = f.params + rc_ir_find_param(ir, "1.batchnorm.scale")->offset;
    const float *sh = f.params + rc_ir_find_param(ir, "1.batchnorm.shift")->offset;
    const float *W = f.params + rc_ir_find_param(ir, "2.dense.weight")->offset;
    cr_assert_eq(rc_ir_find_param(ir, "1.batchnorm.scale")->count, 2);
    double m[2] = {0, 0}, v[2] = {0, 0};
    for (int c = 0; c < 2; c++) {
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 9; k++) m[c] += f.frames[((size_t)f.starts[b] + c) * 9 + k];
        m[c] /= 27;
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 9; k++) {
                double d = f.frames[((size_t)f.starts[b] + c) * 9 + k] - m[c];
                v[c] += d * d;
            }
        v[c] /= 27;
    }
    for (int b = 0; b < 3; b++) {
        double s = 0;
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 9; k++) {
                double x = f.frames[((size_t)f.starts[b] + c) * 9 + k];
                s += W[c * 9 + k] * ((x - m[c]) / sqrt(v[c] + 1e-3) * fabs(sc[c]) + sh[c]);
            }
        cr_assert_float_eq(f.y[b], s, 1e-4 * (1 + fabs(s)), "b %d: %g vs %g", b, f.y[b], s);
    }
    fx_free(&f);
}

Test(ref_fwd, activations_by_hand)
{
    const char *acts[] = {"relu", "softplus", "exp", "abs", "square", "requ", "sigmoid", "tanh", "identity"};
    for (int a = 0; a < 9; a++) {
        char layers[128];
        snprintf(layers, sizeof layers, "layer %s\nlayer dense\n", acts[a]);
        fx f;
        fx_setup(&f, "history=1 height=2 width=2", layers, 1, 2, 50 + a);
        /* inputs spanning the softplus threshold */
        for (int k = 0; k < f.T * 4; k++) f.frames[k] = (float)(k % 7) * 4.0f - 9.0f;   /* -9..15 */
        for (int k = 0; k < f.T * 4; k++) if (k % 11 == 3) f.frames[k] = 21.0f;
        fx_loss(&f);
        const float *W = f.params + f.ir.params[0].offset, *bd = f.params + f.ir.params[1].offset;
        for (int b = 0; b < 2; b++) {
            double s = bd[0];
            for (int k = 0; k < 4; k++) {
                double x = f.frames[(size_t)f.starts[b] * 4 + k], y;
                switch (a) {
                case 0: y = x > 0 ? x : 0; break;
                case 1: y = x > 20 ? x : log(1 + exp(x)); break;
                case 2: y = exp(x); break;
                case 3: y = fabs(x); break;
                case 4: y = x * x; break;
                case 5: y = x > 0 ? x * x : 0; break;
                case 6: y = 1 / (1 + exp(-x)); break;
                case 7: y = tanh(x); break;
                default: y = x;
                }
                s += W[k] * y;
            }
            cr_assert_float_eq(f.y[b], s, 1e-5 * (1 + fabs(s)), "%s b %d: %g vs %g", acts[a], b, f.y[b], s);
        }
        fx_free(&f);
    }
}

Test(ref_fwd, gcconv_reads_each_cell_at_its_position)
{
    fx f;
    fx_setup(&f, IN, "layer gcconv kernel=3 bias=true\n", 3, 2, 61);
    const float *W = f.params + f.ir.params[0].offset, *bias = f.params + f.ir.params[1].offset;
    fx_loss(&f);
    for (int b = 0; b < 2; b++)
        for (int n = 0; n < 3; n++) {
            double s = bias[n] + conv_at(&f, W, 3, 3, b, n, f.cell_pos[2 * n], f.cell_pos[2 * n + 1]);
            cr_assert_float_eq(f.y[b * 3 + n], s, 1e-5 * (1 + fabs(s)), "b %d n %d", b, n);
        }
    /* a position off the map is an error, not a read out of bounds */
    f.cell_pos[0] = 6;
    cr_assert_eq(f.be->infer(f.be, 2, f.params, f.state, f.cell_pos, f.frames, f.starts, f.y, f.ws), -1);
    cr_assert(strstr(f.be->err, "gcconv") != NULL, "%s", f.be->err);
    cr_assert_eq(f.be->infer(f.be, 2, f.params, f.state, NULL, f.frames, f.starts, f.y, f.ws), -1);
    f.cell_pos[0] = 1;
    fx_loss(&f);
    cr_assert_eq(f.be->train_backward(f.be, 2, f.params, NULL, f.frames, f.starts, f.R, f.grads, f.ws), -1);
    cr_assert(strstr(f.be->err, "positions") != NULL, "%s", f.be->err);
    fx_free(&f);
}

Test(ref_fwd, errors)
{
    fx f;
    fx_setup(&f, IN, "layer conv channels=2 kernel=3\nlayer batchnorm\nlayer dense\n", 2, 2, 71);
    memcpy(f.state, f.state0, f.ir.state_total * sizeof(float));
    /* training BN on one sample is undefined (PyTorch raises too) */
    cr_assert_eq(f.be->train_forward(f.be, 1, f.params, f.state, NULL, 1, f.frames, f.starts, f.y, f.ws), -1);
    cr_assert(strstr(f.be->err, "batchnorm") != NULL, "%s", f.be->err);
    /* backward must follow a forward of the same batch size */
    fx_loss(&f);
    cr_assert_eq(f.be->train_backward(f.be, 1, f.params, NULL, f.frames, f.starts, f.R, f.grads, f.ws), -1);
    cr_assert(strstr(f.be->err, "batch") != NULL, "%s", f.be->err);
    fx_free(&f);
}

/* ---------------------------------------------------------------- init and positions */

Test(ref_model, init_pytorch_bounds_and_determinism)
{
    rc_ir ir;
    build_ir(&ir, "history=5 height=12 width=12",
             "layer conv channels=4 kernel=5 stack=3\nlayer batchnorm over=channel\nlayer relu\n"
             "layer conv channels=3 kernel=3\nlayer batchnorm\nlayer relu\nlayer dense\nlayer batchnorm\n", 2);
    float *a = malloc(ir.params_total * sizeof(float)), *b = malloc(ir.params_total * sizeof(float));
    float *s = malloc(ir.state_total * sizeof(float));
    rc_params_init(&ir, 1, a, s);
    rc_params_init(&ir, 1, b, NULL);
    cr_assert_eq(memcmp(a, b, ir.params_total * sizeof(float)), 0);
    rc_params_init(&ir, 2, b, NULL);
    cr_assert_neq(memcmp(a, b, ir.params_total * sizeof(float)), 0);
    for (int p = 0; p < ir.n_params; p++) {
        const rc_param *v = &ir.params[p];
        double sum = 0, sq = 0, mx = 0;
        for (int64_t k = 0; k < v->count; k++) {
            double x = a[v->offset + k];
            sum += x; sq += x * x; mx = fmax(mx, fabs(x));
        }
        if (strstr(v->name, ".scale")) { cr_assert_eq(sum, (double)v->count); continue; }
        if (strstr(v->name, ".shift")) { cr_assert_eq(mx, 0.0); continue; }
        /* fan_in from the PyTorch layout: dims[1..] of a weight; a stacked sub-conv's own */
        cr_assert(v->init_bound > 0, "%s", v->name);
        cr_assert(mx <= v->init_bound, "%s: %g outside U(-%g,%g)", v->name, mx, v->init_bound, v->init_bound);
        if (v->count >= 100) {
            double var = sq / v->count, want = v->init_bound * v->init_bound / 3;
            cr_assert(fabs(var - want) < 0.25 * want, "%s: variance %g, U(-b,b) has %g", v->name, var, want);
        }
    }
    const rc_param *w0 = rc_ir_find_param(&ir, "1.conv.sub0.weight");
    cr_assert_not_null(w0);
    cr_assert_float_eq(w0->init_bound, 1 / sqrt(5.0 * 9), 1e-12);
    const rc_param *w1 = rc_ir_find_param(&ir, "1.conv.sub1.weight");
    cr_assert_float_eq(w1->init_bound, 1 / sqrt(4.0 * 9), 1e-12);
    for (int p = 0; p < ir.n_state; p++) {
        const rc_param *v = &ir.state[p];
        float want = strstr(v->name, "running_var") ? 1.0f : 0.0f;
        for (int64_t k = 0; k < v->count; k++) cr_assert_eq(s[v->offset + k], want, "%s", v->name);
    }
    free(a); free(b); free(s);
}

static void gc_ir(rc_ir *ir, const char *pos, int size)
{
    char input[128], layers[512];
    snprintf(input, sizeof input, "history=2 height=%d width=%d", size, size);
    snprintf(layers, sizeof layers, "layer conv channels=2 kernel=15\nlayer relu\nlayer conv channels=2 kernel=11\n"
             "layer relu\nlayer gcconv kernel=11 bias=false position=%s\n", pos);
    build_ir(ir, input, layers, 4);
}

Test(ref_model, gc_positions)
{
    rc_ir ir;
    int centers[8] = {25, 25, 0, 0, 49, 10, 30, 44}, pos[8];
    char err[256];
    /* torch-deep-retina GrabUnits quirk: index 10 of the 16x16 map for every cell */
    gc_ir(&ir, "reference", 50);
    cr_assert_eq(ir.layers[4].in.h - 11 + 1, 16);
    cr_assert_eq(rc_gc_positions(&ir, centers, pos, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 8; k++) cr_assert_eq(pos[k], 10, "pos[%d] = %d", k, pos[k]);
    cr_assert_eq(rc_gc_positions(&ir, NULL, pos, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 8; k++) cr_assert_eq(pos[k], 10);
    /* data: center - (7 + 5 + 5), clamped to [0, 15] */
    gc_ir(&ir, "data", 50);
    cr_assert_eq(rc_gc_positions(&ir, centers, pos, err, sizeof err), 0, "%s", err);
    int want[8] = {8, 8, 0, 0, 15, 0, 13, 15};
    for (int k = 0; k < 8; k++) cr_assert_eq(pos[k], want[k], "pos[%d] = %d, want %d", k, pos[k], want[k]);
    cr_assert_eq(rc_gc_positions(&ir, NULL, pos, err, sizeof err), -1);
    cr_assert(strstr(err, "centers") != NULL, "%s", err);
    gc_ir(&ir, "center", 50);
    cr_assert_eq(rc_gc_positions(&ir, NULL, pos, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 8; k++) cr_assert_eq(pos[k], 8);
    build_ir(&ir, IN, "layer conv channels=2 kernel=3\nlayer dense\n", 2);
    cr_assert_eq(rc_gc_positions(&ir, centers, pos, err, sizeof err), -1);
    /* rc_model owns buffers and positions */
    rc_model m;
    gc_ir(&ir, "data", 50);
    cr_assert_eq(rc_model_init(&m, &ir, 3, centers, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(m.cell_pos);
    cr_assert_eq(m.cell_pos[0], 8);
    rc_model_free(&m);
    cr_assert_eq(rc_model_init(&m, &ir, 3, NULL, err, sizeof err), -1);
    cr_assert_null(m.params);
}

/* ---------------------------------------------------------------- losses */

Test(ref_loss, values_and_gradients)
{
    float pred[6] = {0.5f, 1.5f, 0.0f, 2.0f, 0.1f, 3.0f}, targ[6] = {1, 0, 2, 3, 0, 1}, dy[6];
    /* poisson: mean(p - t log(p + 1e-8)), with the L1 sum (reference) */
    double want = 0, l1 = 0;
    for (int k = 0; k < 6; k++) { want += pred[k] - targ[k] * log(pred[k] + 1e-8); l1 += fabs(pred[k]); }
    want /= 6;
    rc_loss_value v = rc_loss_compute(RC_LOSS_POISSON, 0.01, RC_L1_SUM, 2, 3, pred, targ, dy);
    cr_assert_float_eq(v.data, want, 1e-9);
    cr_assert_float_eq(v.l1, 0.01 * l1, 1e-12);
    cr_assert_float_eq(v.total, want + 0.01 * l1, 1e-9);
    v = rc_loss_compute(RC_LOSS_POISSON, 0.01, RC_L1_MEAN, 2, 3, pred, targ, NULL);
    cr_assert_float_eq(v.l1, 0.01 * l1 / 2, 1e-12);
    v = rc_loss_compute(RC_LOSS_MSE, 0, RC_L1_SUM, 2, 3, pred, targ, NULL);
    double mse = 0;
    for (int k = 0; k < 6; k++) mse += (pred[k] - targ[k]) * (pred[k] - targ[k]);
    cr_assert_float_eq(v.total, mse / 6, 1e-9);
    /* finite differences of total w.r.t. pred (away from p = 0 for the |p| kink) */
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 2; mode++) {
            rc_loss_compute(kind, 0.05, mode, 2, 3, pred, targ, dy);
            for (int k = 0; k < 6; k++) {
                if (k == 2) {   /* p = 0: sign(0) = 0, so only the data term */
                    double g = kind == RC_LOSS_MSE ? 2.0 * (0 - 2) / 6 : (1 - 2 / 1e-8) / 6;
                    cr_assert_float_eq(dy[k], g, 1e-6 * fabs(g));
                    continue;
                }
                float q[6];
                memcpy(q, pred, sizeof q);
                double h = 1e-3;
                q[k] = pred[k] + (float)h;
                double lp = rc_loss_compute(kind, 0.05, mode, 2, 3, q, targ, NULL).total;
                q[k] = pred[k] - (float)h;
                double lm = rc_loss_compute(kind, 0.05, mode, 2, 3, q, targ, NULL).total;
                double fd = (lp - lm) / ((double)(pred[k] + (float)h) - (double)(pred[k] - (float)h));
                cr_assert_float_eq(dy[k], fd, 1e-4 * (1 + fabs(fd)), "kind %d mode %d k %d: %g vs %g",
                                   kind, mode, k, dy[k], fd);
            }
        }
    rc_train tr;
    memset(&tr, 0, sizeof tr);
    tr.loss = RC_LOSS_POISSON; tr.l1_activity = 0.01; tr.l1_mode = RC_L1_SUM;
    cr_assert_float_eq(rc_loss_train(&tr, 2, 3, pred, targ, NULL).total, want + 0.01 * l1, 1e-9);
}

/* The double-prediction loss is the same formula: equal bit for bit on float predictions. */
Test(ref_loss, double_prediction_same_formula)
{
    float pred[6] = {0.5f, 1.5f, 0.0f, 2.0f, 0.1f, 3.0f}, targ[6] = {1, 0, 2, 3, 0, 1};
    double pd[6];
    for (int k = 0; k < 6; k++) pd[k] = pred[k];
    for (int kind = 0; kind < 3; kind++)
        for (int mode = 0; mode < 2; mode++) {
            rc_loss_value a = rc_loss_compute((rc_loss)kind, 0.05, (rc_l1_mode)mode, 2, 3, pred, targ, NULL);
            rc_loss_value b = rc_loss_compute64((rc_loss)kind, 0.05, (rc_l1_mode)mode, 2, 3, pd, targ);
            cr_expect(a.data == b.data && a.l1 == b.l1 && a.total == b.total, "kind %d mode %d: %.17g vs %.17g",
                      kind, mode, a.total, b.total);
        }
    pd[3] = 2.0 + 1e-12;   /* not a float: the double value is what is used */
    cr_expect_neq(rc_loss_compute64(RC_LOSS_MSE, 0, RC_L1_SUM, 2, 3, pd, targ).total,
                  rc_loss_compute(RC_LOSS_MSE, 0, RC_L1_SUM, 2, 3, pred, targ, NULL).total);
}

/* ---------------------------------------------------------------- optimizers */

Test(ref_optim, adam_coupled_l2_by_hand)
{
    rc_optim o;
    char err[128];
    cr_assert_eq(rc_optim_init(&o, RC_OPT_ADAM, 3, 0.01, 0.1, err, sizeof err), 0);
    float w[3] = {1.0f, -2.0f, 0.5f};
    float g1[3] = {0.3f, 0.0f, -1.0f}, g2[3] = {-0.2f, 0.5f, 0.25f};
    double W[3] = {1.0, -2.0, 0.5}, m[3] = {0}, v[3] = {0};
    const float *gs[2] = {g1, g2};
    for (int t = 1; t <= 2; t++) {
        rc_optim_step(&o, w, gs[t - 1]);
        for (int k = 0; k < 3; k++) {
            double g = gs[t - 1][k] + 0.1 * W[k];
            m[k] = 0.9 * m[k] + 0.1 * g;
            v[k] = 0.999 * v[k] + 0.001 * g * g;
            double mh = m[k] / (1 - pow(0.9, t)), vh = v[k] / (1 - pow(0.999, t));
            W[k] -= 0.01 * mh / (sqrt(vh) + 1e-8);
            cr_assert_float_eq(w[k], W[k], 1e-6, "step %d k %d: %g vs %g", t, k, w[k], W[k]);
        }
    }
    /* the first step moves every weight by about lr (Adam's sign-like first step) */
    cr_assert_eq(o.step, 2);
    cr_assert_float_eq(o.moments[0], (float)m[0], 1e-7);
    cr_assert_float_eq(o.moments[3 + 2], (float)v[2], 1e-9);
    rc_optim_free(&o);
}

Test(ref_optim, adamw_decoupled_by_hand)
{
    rc_optim o;
    char err[128];
    cr_assert_eq(rc_optim_init(&o, RC_OPT_ADAMW, 2, 0.05, 0.2, err, sizeof err), 0);
    float w[2] = {1.0f, -1.0f}, g[2] = {0.5f, 0.0f};
    rc_optim_step(&o, w, g);
    /* step 1: w *= 1 - lr wd; then w -= lr * g / (|g| + eps) */
    cr_assert_float_eq(w[0], 1.0 * (1 - 0.01) - 0.05 * 0.5 / (0.5 + 1e-8), 1e-6);
    cr_assert_float_eq(w[1], -1.0 * (1 - 0.01), 1e-6);   /* zero gradient: decay only */
    /* coupled Adam with the same zero gradient instead moves by lr (g = wd w) */
    rc_optim a;
    cr_assert_eq(rc_optim_init(&a, RC_OPT_ADAM, 2, 0.05, 0.2, err, sizeof err), 0);
    float w2[2] = {1.0f, -1.0f};
    rc_optim_step(&a, w2, g);
    cr_assert_float_eq(w2[1], -1.0 + 0.05, 1e-6);
    rc_optim_free(&o);
    rc_optim_free(&a);
}

/* A training loop on the reference decreases the loss (end-to-end sanity of the pieces). */
Test(ref_optim, tiny_training_decreases_loss)
{
    fx f;
    fx_setup(&f, "history=3 height=8 width=8",
             "layer conv channels=3 kernel=3\nlayer batchnorm over=unit\nlayer relu\n"
             "layer dense bias=false\nlayer batchnorm\nlayer softplus\n", 2, 16, 81);
    const rc_ir *ir = &f.ir;
    float targ[32], dy[32];
    for (int k = 0; k < 32; k++) targ[k] = (float)((k * 7) % 5) * 0.5f;
    rc_optim o;
    char err[128];
    cr_assert_eq(rc_optim_init(&o, RC_OPT_ADAM, ir->params_total, 0.02, 1e-3, err, sizeof err), 0);
    memcpy(f.state, f.state0, ir->state_total * sizeof(float));
    double first = 0, last = 0;
    for (int it = 0; it < 60; it++) {
        cr_assert_eq(f.be->train_forward(f.be, 16, f.params, f.state, NULL, it, f.frames, f.starts, f.y, f.ws), 0);
        rc_loss_value v = rc_loss_compute(RC_LOSS_POISSON, 1e-4, RC_L1_MEAN, 16, 2, f.y, targ, dy);
        if (it == 0) first = v.total;
        last = v.total;
        memset(f.grads, 0, ir->params_total * sizeof(float));
        cr_assert_eq(f.be->train_backward(f.be, 16, f.params, NULL, f.frames, f.starts, dy, f.grads, f.ws), 0);
        rc_optim_step(&o, f.params, f.grads);
    }
    cr_assert(last < first - 0.05, "loss %g -> %g", first, last);
    rc_optim_free(&o);
    fx_free(&f);
}

/* rng.h's libm-free Box-Muller parts against libm on their whole input ranges, and the normal
 * draws' moments and tail mass (a wrong constant or range reduction fails these). */
Test(rng, box_muller_parts_and_moments)
{
    double e_ln = 0, e_cos = 0, e_sqrt = 0;
    for (int i = 0; i < (1 << 24); i += 3) {
        float u = ((float)i + 0.5f) * (1.0f / 16777216.0f);   /* every value rc_rng_uniform can give */
        e_ln = fmax(e_ln, fabs(rc_rng__ln(u) - log((double)u)) / fmax(fabs(log((double)u)), 1e-30));
        e_cos = fmax(e_cos, fabs(rc_rng__cos2pi(u) - cos(2 * 3.14159265358979323846 * (double)u)));
        float v = -2.0f * rc_rng__ln(u);
        e_sqrt = fmax(e_sqrt, fabs(rc_rng__sqrt(v) - sqrt((double)v)) / sqrt((double)v));
    }
    cr_expect_leq(e_ln, 5e-7, "ln: max relative error %g", e_ln);
    cr_expect_leq(e_cos, 5e-7, "cos(2 pi u): max absolute error %g", e_cos);
    cr_expect_leq(e_sqrt, 5e-7, "sqrt: max relative error %g", e_sqrt);
    const int n = 1 << 21;
    double s1 = 0, s2 = 0, s4 = 0;
    int below = 0;
    for (int i = 0; i < n; i++) {
        double z = rc_rng_normal(42, 5, (uint64_t)i);
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
        below += z < 1.959964;
    }
    double m = s1 / n, var = s2 / n - m * m, kurt = s4 / n;
    cr_expect_leq(fabs(m), 5.0 / sqrt((double)n), "mean %g", m);
    cr_expect_leq(fabs(var - 1), 0.005, "variance %g", var);
    cr_expect_leq(fabs(kurt - 3), 0.03, "fourth moment %g (normal: 3)", kurt);
    cr_expect_leq(fabs((double)below / n - 0.975), 0.0006, "P(z < 1.96) = %g", (double)below / n);
}
