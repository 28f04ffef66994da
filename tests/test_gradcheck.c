/* test_gradcheck.c — rc_gradcheck_run (runtime/gradcheck.h) and `retinac gradcheck`.
 *
 * The check passes on the shipped tiny and exp_poisson (relu) models and on small inline specs
 * with noise, dropout, batch norm (unit and channel, abs), a stacked conv and a gcconv, on the
 * generated C backend, at the default tolerance and step; a step below a float ulp stays finite;
 * a backend whose training gradient is slightly wrong (one tensor scaled by 1.01, or its
 * largest element zeroed) fails, naming that tensor and only that one; the CLI exits 0 on a
 * pass and 2 on a usage error, and prints JSON that says which tensors were checked.
 * Shapes are tiny and few elements are sampled, so the suite runs in seconds.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bias_bn.h"
#include "cuda_drv.h"
#include "gradcheck.h"
#include "ir.h"
#include "kit.h"
#include "spec.h"

TestSuite(gradcheck, .fini = kit_cleanup);

static void load_file(rc_ir *ir, const char *rel, int cells)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/%s", RC_SRC_DIR, rel);
    cr_assert_eq(rc_spec_check(path, cells, ir, err, sizeof err), 0, "%s: %s", rel, err);
}

static void load_text(rc_ir *ir, const char *text, int cells)
{
    char err[1024];
    cr_assert_eq(rc_spec_load_string("inline.lua", text, ir, err, sizeof err), 0, "load: %s", err);
    cr_assert_eq(rc_ir_infer(ir, cells, "inline.lua", err, sizeof err), 0, "infer: %s", err);
}

static const rc_gradcheck_tensor *find_tensor(const rc_gradcheck_result *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->t[i].name, name)) return &r->t[i];
    return NULL;
}

/* Run the check of backend `name` on ir and assert every tensor passes. */
static void expect_pass(const rc_ir *ir, const char *name, int samples)
{
    rc_backend *be = NULL;
    char err[2048];
    cr_assert_eq(rc_backend_open(ir, name, "cpu", &be, err, sizeof err), 0, "%s", err);
    rc_gradcheck_opts o;
    rc_gradcheck_defaults(&o);
    o.samples = samples;
    rc_gradcheck_result r;
    cr_assert_eq(rc_gradcheck_run(ir, be, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(r.n, ir->n_params + 1, "one row per parameter tensor and the input");
    cr_assert_str_eq(r.t[r.n - 1].name, "input");
    for (int i = 0; i < r.n; i++) {
        const rc_gradcheck_tensor *t = &r.t[i];
        cr_log_info("%s %s: %s checked %d of %lld, max rel %.3g (abs %.3g, scale %.3g, %d kinks)", ir->name,
                    name, t->name, t->checked, (long long)t->count, t->max_rel, t->max_abs, t->scale, t->kinks);
        cr_expect(t->pass, "%s on %s: %s fails: max rel %.3g at %lld (g %.6g, fd %.6g)", ir->name, name, t->name,
                  t->max_rel, (long long)t->worst, t->worst_g, t->worst_fd);
        cr_expect_gt(t->checked, 0, "%s: nothing checked", t->name);
        if (i < ir->n_params && bias_before_bn(ir, &ir->params[i]))   /* the double reference: no rounding noise */
            cr_expect_leq(t->scale, 1e-8, "%s: %s (before a batch norm) has differences up to %g", ir->name, t->name,
                          t->scale);
        else
            cr_expect(t->scale > 0, "%s: %s has a zero finite-difference gradient", ir->name, t->name);
    }
    cr_expect_eq(r.n_failed, 0);
    cr_expect(fabs(r.loss_ref - r.loss_backend) <= 1e-4 * fabs(r.loss_ref), "loss ref %.9g vs %s %.9g", r.loss_ref,
              name, r.loss_backend);
    rc_gradcheck_free(&r);
    rc_backend_destroy(be);
}

Test(gradcheck, tiny_passes_on_c)
{
    static rc_ir ir;
    load_file(&ir, "specs/tiny.lua", 3);
    expect_pass(&ir, "c", 12);
}

/* noise, dropout, batch norm per channel (abs) and per unit, a smooth and a kinked activation,
 * a dense layer with bias and the L1 activity penalty */
Test(gradcheck, noise_dropout_batchnorm_pass_on_c)
{
    static rc_ir ir;
    load_text(&ir,
              "return model 'nd' {\n"
              "  input = { history = 4, height = 9, width = 9 },\n"
              "  conv { channels = 3, kernel = 3 }, batchnorm { over = 'channel', abs = true },\n"
              "  noise { std = 0.1 }, softplus {}, dropout { p = 0.25 },\n"
              "  conv { channels = 2, kernel = 3 }, batchnorm { over = 'unit' }, noise { std = 0.05 }, relu {},\n"
              "  dense { bias = true }, batchnorm {}, softplus {},\n"
              "  train = { loss = 'poisson', l1_activity = 1e-3 },\n"
              "}\n",
              2);
    expect_pass(&ir, "c", 10);
}

/* a stacked conv with dropout between its sub-convs and a gcconv read out at the cells */
Test(gradcheck, stacked_gcconv_pass_on_c)
{
    static rc_ir ir;
    load_text(&ir,
              "return model 'sg' {\n"
              "  input = { history = 3, height = 12, width = 12 },\n"
              "  conv { channels = 2, kernel = 5, stack = 3, stack_dropout = 0.1 },\n"
              "  batchnorm { over = 'channel' }, softplus {},\n"
              "  gcconv { kernel = 3, position = 'data' }, batchnorm { abs = true }, softplus {},\n"
              "  train = { loss = 'mse' },\n"
              "}\n",
              2);
    expect_pass(&ir, "c", 8);
}

/* The false failure: with finite differences on the float reference (steps of 1e-2, to
 * beat its rounding), relu kinks inside the stencils failed exp_poisson's 1.conv.bias (c 7.68e-5,
 * difference -6.8e-5); on the double reference at 1e-6 every tensor passes at the defaults. */
Test(gradcheck, exp_poisson_passes_at_defaults)
{
    static rc_ir ir;
    load_file(&ir, "specs/exp_poisson.lua", 3);
    expect_pass(&ir, "c", 8);
}

/* A step below a float ulp of the parameters still moves them (by one ulp): finite results. */
Test(gradcheck, step_below_an_ulp_is_finite)
{
    static rc_ir ir;
    load_file(&ir, "specs/tiny.lua", 2);
    rc_backend *be = NULL;
    char err[2048];
    cr_assert_eq(rc_backend_open(&ir, "ref", "cpu", &be, err, sizeof err), 0, "%s", err);
    rc_gradcheck_opts o;
    rc_gradcheck_defaults(&o);
    o.samples = 4;
    o.step = 1e-12;
    rc_gradcheck_result r;
    cr_assert_eq(rc_gradcheck_run(&ir, be, &o, &r, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < r.n; i++)
        cr_expect(isfinite(r.t[i].max_rel) && isfinite(r.t[i].worst_fd), "%s: max rel %g, fd %g", r.t[i].name,
                  r.t[i].max_rel, r.t[i].worst_fd);
    rc_gradcheck_free(&r);
    rc_backend_destroy(be);
}

/* ---------------------------------------------------------------- a wrong gradient is caught */

typedef struct {
    rc_backend *inner;
    const rc_param *v;   /* the tensor made wrong */
    int zero_largest;    /* 0: scale by 1.01; 1: zero its largest element */
    float *before;
} wrong;

static size_t w_ws(rc_backend *be, int B) { wrong *w = be->self; return w->inner->ws_floats(w->inner, B); }

static int w_fwd(rc_backend *be, int B, const float *params, float *state, const int *cell_pos, uint64_t seed,
                 const float *frames, const int64_t *starts, float *y, float *ws)
{
    wrong *w = be->self;
    return w->inner->train_forward(w->inner, B, params, state, cell_pos, seed, frames, starts, y, ws);
}

static int w_bwd(rc_backend *be, int B, const float *params, const int *cell_pos, const float *frames,
                 const int64_t *starts, const float *dy, float *grads, float *ws)
{
    wrong *w = be->self;
    float *g = grads + w->v->offset;
    memcpy(w->before, g, sizeof(float) * (size_t)w->v->count);   /* grads accumulate */
    if (w->inner->train_backward(w->inner, B, params, cell_pos, frames, starts, dy, grads, ws)) return -1;
    int64_t big = 0;
    for (int64_t k = 0; k < w->v->count; k++) {
        float add = g[k] - w->before[k];
        if (fabsf(add) > fabsf(g[big] - w->before[big])) big = k;
        if (!w->zero_largest) g[k] = w->before[k] + 1.01f * add;
    }
    if (w->zero_largest) g[big] = w->before[big];
    return 0;
}

static int w_infer(rc_backend *be, int B, const float *params, const float *state, const int *cell_pos,
                   const float *frames, const int64_t *starts, float *y, float *ws)
{
    wrong *w = be->self;
    return w->inner->infer(w->inner, B, params, state, cell_pos, frames, starts, y, ws);
}

static void w_destroy(rc_backend *be) { (void)be; }

static void expect_caught(const char *tensor, int zero_largest)
{
    static rc_ir ir;
    load_file(&ir, "specs/tiny.lua", 3);
    char err[2048];
    wrong w = {0};
    cr_assert_eq(rc_backend_open(&ir, "c", "cpu", &w.inner, err, sizeof err), 0, "%s", err);
    w.v = rc_ir_find_param(&ir, tensor);
    cr_assert(w.v, "no tensor %s", tensor);
    w.zero_largest = zero_largest;
    w.before = malloc(sizeof(float) * (size_t)w.v->count);
    rc_backend be = {.name = "wrong", .ir = &ir, .self = &w, .ws_floats = w_ws, .train_forward = w_fwd,
                     .train_backward = w_bwd, .infer = w_infer, .destroy = w_destroy};
    rc_gradcheck_opts o;
    rc_gradcheck_defaults(&o);
    o.samples = 12;
    o.check_input = 0;
    rc_gradcheck_result r;
    cr_assert_eq(rc_gradcheck_run(&ir, &be, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(r.n, ir.n_params);
    const rc_gradcheck_tensor *t = find_tensor(&r, tensor);
    cr_assert(t);
    cr_expect(!t->pass, "%s %s: not caught (max rel %.3g, tol %.3g)", tensor, zero_largest ? "zeroed" : "x1.01",
              t->max_rel, r.tol);
    cr_expect(t->max_rel > r.tol, "%s: max rel %.3g", tensor, t->max_rel);
    cr_expect_eq(r.n_failed, 1, "only %s fails (%d failed)", tensor, r.n_failed);
    for (int i = 0; i < r.n; i++)
        if (strcmp(r.t[i].name, tensor)) cr_expect(r.t[i].pass, "%s fails too (max rel %.3g)", r.t[i].name, r.t[i].max_rel);
    rc_gradcheck_free(&r);
    free(w.before);
    rc_backend_destroy(w.inner);
}

Test(gradcheck, scaled_conv_gradient_caught) { expect_caught("3.conv.weight", 0); }
Test(gradcheck, scaled_first_conv_gradient_caught) { expect_caught("1.conv.weight", 0); }
Test(gradcheck, scaled_bn_gradient_caught) { expect_caught("6.batchnorm.shift", 0); }
Test(gradcheck, zeroed_dense_element_caught) { expect_caught("5.dense.weight", 1); }

Test(gradcheck, bad_options_refused)
{
    static rc_ir ir;
    load_file(&ir, "specs/tiny.lua", 2);
    rc_backend *be = NULL;
    char err[2048];
    cr_assert_eq(rc_backend_open(&ir, "ref", "cpu", &be, err, sizeof err), 0, "%s", err);
    rc_gradcheck_opts o;
    rc_gradcheck_defaults(&o);
    o.batch = 1;
    rc_gradcheck_result r;
    cr_expect_eq(rc_gradcheck_run(&ir, be, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "batch"), "message: %s", err);
    rc_gradcheck_free(&r);
    rc_backend_destroy(be);
}

/* ---------------------------------------------------------------- the command */

Test(gradcheck, cli_pass_and_json)
{
    kit_out r = kit_rc("gradcheck %s/specs/tiny.lua --samples 6 --cells 2", RC_SRC_DIR);
    cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    cr_expect(strstr(r.out, "1.conv.weight") && strstr(r.out, "input") && strstr(r.out, "PASS"), "%s", r.out);
    cr_expect(!strstr(r.out, "FAIL"), "%s", r.out);
    kit_out_free(&r);

    r = kit_rc("gradcheck %s/specs/tiny.lua --samples 4 --cells 2 --backend ref --no-input --json", RC_SRC_DIR);
    cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    cr_expect(strstr(r.out, "\"backend\": \"ref\"") && strstr(r.out, "\"name\": \"6.batchnorm.shift\""), "%s", r.out);
    cr_expect(strstr(r.out, "\"pass\": true") && !strstr(r.out, "\"pass\": false"), "%s", r.out);
    cr_expect(!strstr(r.out, "\"input\""), "--no-input still checked the input:\n%s", r.out);
    kit_out_free(&r);
}

Test(gradcheck, cli_usage_and_cuda)
{
    cr_expect_eq(kit_out_status(kit_rc("gradcheck %s/specs/tiny.lua --batch 1", RC_SRC_DIR)), 2);
    cr_expect_eq(kit_out_status(kit_rc("gradcheck %s/specs/tiny.lua --backend gpu", RC_SRC_DIR)), 2);
    cr_expect_eq(kit_out_status(kit_rc("gradcheck")), 2);
    char why[512];
    if (!rc_cuda_probe(why, sizeof why)) {   /* no GPU here: a clean message, exit 1 */
        kit_out r = kit_rc("gradcheck %s/specs/tiny.lua --backend cuda", RC_SRC_DIR);
        cr_expect_eq(r.status, 1, "%s", r.err);
        cr_expect(strstr(r.err, "no GPU"), "%s", r.err);
        kit_out_free(&r);
    } else {
        kit_out r = kit_rc("gradcheck %s/specs/tiny.lua --backend cuda --samples 6", RC_SRC_DIR);
        cr_expect_eq(r.status, 0, "%s\n%s", r.out, r.err);
        kit_out_free(&r);
    }
}
