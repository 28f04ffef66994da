/* test_codegen_prim.c — generated C for defined layers (compiler/c/emit_c_prim.c) against the
 * reference backend (which interprets the same primitive graphs in double): training forward
 * outputs, state updates, every parameter gradient (through the layer's input gradient too),
 * and inference, per tensor at 1e-4 relative L2.
 *
 * Graphs are built here in C with the builder of compiler/prim.h and attached with
 * rc_ir_def_set, independent of the Lua front end. The primitive table is iterated: every row
 * gets a small defined layer of its own (with a parameter, so gradients flow) through one table
 * of per-kind / per-op argument builders; a row the builders do not know fails the test, and
 * after all cases every primitive must have appeared in some compared graph (forward or the
 * derived backward), so a new primitive row cannot land untested.
 *
 * JIT objects go to the suite's cache ($RETINAC_CACHE_DIR from `make test`, else a temp dir),
 * compiled with -O1 to keep the suite fast.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_c.h"
#include "emit_c.h"
#include "ir.h"
#include "kit.h"
#include "prim.h"
#include "model.h"
#include "lower.h"
#include "rng.h"
#include "spec.h"

#define PTOL 1e-4
static char err[1024];

static void setup_env(void)
{
    if (!getenv("RETINAC_CACHE_DIR")) setenv("RETINAC_CACHE_DIR", "/tmp/retinac-test-cache", 1);
    setenv("CFLAGS", "-O1 -march=native -fopenmp", 1);
}

TestSuite(codegen_prim, .init = setup_env);

/* ---------------------------------------------------------------- graph building */

static int add(rc_prim_graph *g, rc_prim_op op, int n_in, const int *in, const int *attr, double v, int ref)
{
    int id = rc_prim_add(g, op, n_in, in, attr, v, ref, 0, NULL, 1, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int leaf(rc_prim_graph *g, rc_prim_op op, int ref, int rank, const int *dims, const int *attr)
{
    int id = rc_prim_add(g, op, 0, NULL, attr, 0, ref, rank, dims, 1, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int un(rc_prim_graph *g, rc_prim_op op, int a) { return add(g, op, 1, &a, NULL, 0, 0); }
static int op1(rc_prim_graph *g, rc_prim_op op, int a, const int *attr) { return add(g, op, 1, &a, attr, 0, 0); }
static int bin(rc_prim_graph *g, rc_prim_op op, int a, int b)
{
    int id = rc_prim_bin(g, op, a, b, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int cst(rc_prim_graph *g, int like, double v)
{
    int id = rc_prim_const_like(g, like, v, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static int reshape(rc_prim_graph *g, int a, int rank, const int *dims)
{
    int at[RC_PRIM_NATTR] = {0};
    memcpy(at, dims, sizeof(int) * (size_t)rank);
    int id = rc_prim_add(g, RC_P_RESHAPE, 1, &a, at, 0, 0, rank, dims, 1, err, sizeof err);
    cr_assert(id >= 0, "reshape: %s", err);
    return id;
}
static int decl(rc_prim_graph *g, int state, const char *name, int rank, const int *dims, double bound, double value)
{
    rc_prim_decl *d = state ? &g->state[g->n_state++] : &g->param[g->n_param++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->rank = rank;
    memcpy(d->dims, dims, sizeof(int) * (size_t)rank);
    d->init_bound = bound;
    d->init_value = value;
    return leaf(g, state ? RC_P_STATE : RC_P_PARAM, (state ? g->n_state : g->n_param) - 1, 0, NULL, NULL);
}
static int input(rc_prim_graph *g, rc_shape in)
{
    int xd[4] = {RC_PRIM_B, in.c, in.h, in.w};
    return leaf(g, RC_P_INPUT, 0, 4, xd, NULL);
}

/* Attach g as layer li of ir (kind name); g is freed. */
static void attach(rc_ir *ir, int li, const char *kind, rc_prim_graph *g)
{
    char *t = rc_prim_format(g);
    cr_assert(t);
    rc_layer_defaults(&ir->layers[li], RC_LAYER_DEF);
    cr_assert_eq(rc_ir_def_set(ir, li, kind, t, err, sizeof err), 0, "%s", err);
    free(t);
    rc_prim_free(g);
}

/* ---------------------------------------------------------------- C vs reference */

static void fill(float *x, size_t n, unsigned seed, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rc_rng_uniform(seed, 7, i));
}

/* Relative L2 of a against the reference r, with a floor for tensors that are ~0. */
static double rel_err(const float *a, const float *r, int64_t n, double floor_norm)
{
    return kit_l2_diff(a, r, n) / fmax(kit_l2_norm(r, n), floor_norm);
}

/* Run ref and c on ir with identical buffers: train forward (y, state), backward (every
 * gradient), infer. fft: layer 1 (a plain conv) by the C backend's FFT path on the declared
 * stream (the module's ext entry points), else the module's direct path. */
/* fft: 0 direct layer 1; 1 the FFT path in all three calls; 2 in inference only (a stacked
 * layer 1, collapsed for inference) */
static void compare_fft(const rc_ir *ir, int B, const char *what, int fft)
{
    rc_backend *rb = NULL, *cb = NULL;
    cr_assert_eq(rc_backend_open(ir, "ref", "cpu", &rb, err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_backend_open(ir, "c", "cpu", &cb, err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_c_backend_set_fft(cb, fft ? RC_C_FFT_ON : RC_C_FFT_OFF, err, sizeof err), 0, "%s: %s", what, err);
    int T = ir->in.c + B + 3, cells = ir->cells;
    size_t P = (size_t)ir->params_total, S = (size_t)ir->state_total, F = (size_t)ir->in.h * ir->in.w;
    float *frames = malloc(sizeof(float) * T * F), *params = malloc(sizeof(float) * (P + 1));
    float *s_r = malloc(sizeof(float) * (S + 1)), *s_c = malloc(sizeof(float) * (S + 1));
    float *y_r = malloc(sizeof(float) * B * cells), *y_c = malloc(sizeof(float) * B * cells);
    float *dy = malloc(sizeof(float) * B * cells);
    float *g_r = calloc(P + 1, sizeof(float)), *g_c = calloc(P + 1, sizeof(float));
    float *w_r = malloc(sizeof(float) * rb->ws_floats(rb, B)), *w_c = malloc(sizeof(float) * cb->ws_floats(cb, B));
    int64_t *starts = malloc(sizeof(int64_t) * B);
    cr_assert(frames && params && s_r && s_c && y_r && y_c && dy && g_r && g_c && w_r && w_c && starts);
    for (int b = 0; b < B; b++) starts[b] = (b * 3) % (T - ir->in.c + 1);
    fill(frames, (size_t)T * F, 1, -1, 1);
    fill(params, P, 2, -0.5, 0.5);
    fill(s_r, S, 3, 0.5, 1.5);
    memcpy(s_c, s_r, sizeof(float) * S);
    fill(dy, (size_t)B * cells, 4, -1, 1);
    if (fft) cr_assert_eq(cb->set_stream(cb, frames, T), 0, "%s: %s", what, cb->err);
    int *pos = NULL;   /* a model that reads cells out of a map: positions from spread centres */
    if (rc_gc_layer(ir) >= 0) {
        int *centers = malloc(sizeof(int) * 2 * (size_t)cells);
        pos = malloc(sizeof(int) * 2 * (size_t)cells);
        cr_assert(centers && pos);
        for (int k = 0; k < 2 * cells; k++) centers[k] = (k * 7 + 1) % ir->in.h;
        cr_assert_eq(rc_gc_positions(ir, centers, pos, err, sizeof err), 0, "%s: %s", what, err);
        free(centers);
    }

    cr_assert_eq(rb->train_forward(rb, B, params, s_r, pos, 11, frames, starts, y_r, w_r), 0, "%s: %s", what, rb->err);
    cr_assert_eq(cb->train_forward(cb, B, params, s_c, pos, 11, frames, starts, y_c, w_c), 0, "%s: %s", what, cb->err);
    double e = rel_err(y_c, y_r, (int64_t)B * cells, 1e-6);
    cr_log_info("%s: train forward y: rel L2 %.3g", what, e);
    cr_expect_leq(e, PTOL, "%s: train forward y: rel L2 %g", what, e);
    for (int i = 0; i < ir->n_state; i++) {
        const rc_param *p = &ir->state[i];
        e = rel_err(s_c + p->offset, s_r + p->offset, p->count, 1e-6);
        cr_expect_leq(e, PTOL, "%s: state %s after the update: rel L2 %g", what, p->name, e);
    }
    cr_assert_eq(rb->train_backward(rb, B, params, pos, frames, starts, dy, g_r, w_r), 0, "%s: %s", what, rb->err);
    cr_assert_eq(cb->train_backward(cb, B, params, pos, frames, starts, dy, g_c, w_c), 0, "%s: %s", what, cb->err);
    double gall = kit_l2_norm(g_r, (int64_t)P);
    cr_expect_gt(gall, 0, "%s: no gradient at all", what);
    for (int i = 0; i < ir->n_params; i++) {
        const rc_param *p = &ir->params[i];
        e = rel_err(g_c + p->offset, g_r + p->offset, p->count, 1e-3 * gall);
        cr_log_info("%s: gradient %s: rel L2 %.3g", what, p->name, e);
        cr_expect_leq(e, PTOL, "%s: gradient %s: rel L2 %g", what, p->name, e);
    }
    cr_assert_eq(rb->infer(rb, B, params, s_r, pos, frames, starts, y_r, w_r), 0, "%s: %s", what, rb->err);
    cr_assert_eq(cb->infer(cb, B, params, s_r, pos, frames, starts, y_c, w_c), 0, "%s: %s", what, cb->err);
    e = rel_err(y_c, y_r, (int64_t)B * cells, 1e-6);
    cr_log_info("%s: infer y: rel L2 %.3g", what, e);
    cr_expect_leq(e, PTOL, "%s: infer y: rel L2 %g", what, e);
    cr_expect_eq(rc_c_backend_fft_calls(cb), fft == 2 ? 1 : fft ? 3 : 0, "%s: calls through the FFT path", what);

    free(frames); free(params); free(s_r); free(s_c); free(y_r); free(y_c); free(dy);
    free(g_r); free(g_c); free(w_r); free(w_c); free(starts); free(pos);
    rc_backend_destroy(rb);
    rc_backend_destroy(cb);
}

static void compare(const rc_ir *ir, int B, const char *what) { compare_fft(ir, B, what, 0); }

static void build_ir(rc_ir *ir, const char *input, const char *layers, int cells)
{
    char text[4096];
    snprintf(text, sizeof text, "retinac-ir 1\nmodel t\ninput %s\n%send\n", input, layers);
    cr_assert_eq(rc_ir_parse(ir, text, "test", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(ir, cells, "test", err, sizeof err), 0, "%s", err);
}

static void reinfer(rc_ir *ir, int cells) { cr_assert_eq(rc_ir_infer(ir, cells, "test", err, sizeof err), 0, "%s", err); }

/* ---------------------------------------------------------------- defined layers */

/* conv (valid, stride 1) + bias */
static void def_conv(rc_ir *ir, int li, int cout, int k)
{
    rc_shape in = ir->layers[li].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int wd[4] = {cout, in.c, k, k}, bd[4] = {1, cout, 1, 1};
    double bound = 1.0 / sqrt((double)in.c * k * k);
    int x = input(&g, in);
    int w = decl(&g, 0, "weight", 4, wd, bound, 0), b = decl(&g, 0, "bias", 4, bd, bound, 0);
    int at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in2[2] = {x, w};
    int c = add(&g, RC_P_CONV2D, 2, in2, at, 0, 0);
    g.out[0] = g.out[1] = bin(&g, RC_P_ADD, c, b);
    attach(ir, li, "myconv", &g);
}

/* batchnorm per unit with PyTorch's running-statistics rule; softplus of the result in eval */
static void def_bn(rc_ir *ir, int li, double eps, double mom)
{
    rc_shape in = ir->layers[li].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int pd[4] = {1, in.c, in.h, in.w}, ones[4] = {1, 1, 1, 1};
    int x = input(&g, in);
    int sc = decl(&g, 0, "scale", 4, pd, 0, 1.0), sh = decl(&g, 0, "shift", 4, pd, 0, 0.0);
    int rm = decl(&g, 1, "running_mean", 4, pd, 0, 0.0), rv = decl(&g, 1, "running_var", 4, pd, 0, 1.0);
    int ax[RC_PRIM_NATTR] = {0x1}, na[RC_PRIM_NATTR] = {1, 1, 0};
    int m = op1(&g, RC_P_MEAN, x, ax);
    int d = bin(&g, RC_P_SUB, x, m);
    int v = op1(&g, RC_P_MEAN, bin(&g, RC_P_MUL, d, d), ax);
    int is = un(&g, RC_P_RECIP, un(&g, RC_P_SQRT, bin(&g, RC_P_ADD, v, cst(&g, v, eps))));
    g.out[0] = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, bin(&g, RC_P_MUL, d, is), sc), sh);
    int n = leaf(&g, RC_P_NUMEL, 0, 4, ones, na);
    int vu = bin(&g, RC_P_DIV, bin(&g, RC_P_MUL, v, n), bin(&g, RC_P_SUB, n, cst(&g, n, 1.0)));
    int keep = cst(&g, m, 1 - mom), mm = cst(&g, m, mom);
    int nm = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, keep, rm), bin(&g, RC_P_MUL, mm, m));
    int nv = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, keep, rv), bin(&g, RC_P_MUL, mm, vu));
    add(&g, RC_P_UPDATE, 1, &nm, NULL, 0, 0);
    add(&g, RC_P_UPDATE, 1, &nv, NULL, 0, 1);
    int ise = un(&g, RC_P_RECIP, un(&g, RC_P_SQRT, bin(&g, RC_P_ADD, rv, cst(&g, rv, eps))));
    g.out[1] = bin(&g, RC_P_ADD, bin(&g, RC_P_MUL, bin(&g, RC_P_MUL, bin(&g, RC_P_SUB, x, rm), ise), sc), sh);
    attach(ir, li, "mybn", &g);
}

/* training: x * (1 + std * randn) then dropout-like mask from randu (select); eval: x */
static void def_noise(rc_ir *ir, int li)
{
    rc_shape in = ir->layers[li].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int xd[4] = {RC_PRIM_B, in.c, in.h, in.w}, pd[4] = {1, in.c, 1, 1};
    int x = input(&g, in);
    int s = decl(&g, 0, "gain", 4, pd, 0.5, 0);
    int a0[RC_PRIM_NATTR] = {0}, a1[RC_PRIM_NATTR] = {1};
    int rn = leaf(&g, RC_P_RANDN, 0, 4, xd, a0), ru = leaf(&g, RC_P_RANDU, 0, 4, xd, a1);
    int noisy = bin(&g, RC_P_MUL, x, bin(&g, RC_P_ADD, cst(&g, x, 1.0), bin(&g, RC_P_MUL, s, rn)));
    int keep = bin(&g, RC_P_GE, ru, cst(&g, ru, 0.25));
    int in3[3] = {keep, bin(&g, RC_P_MUL, noisy, cst(&g, x, 1 / 0.75)), cst(&g, x, 0.0)};
    g.out[0] = add(&g, RC_P_SELECT, 3, in3, NULL, 0, 0);
    g.out[1] = bin(&g, RC_P_MUL, x, s);
    attach(ir, li, "mynoise", &g);
}

/* tiny.lua: conv, relu, conv, relu, dense, batchnorm(unit), softplus: layer 1 as a defined conv
 * (reads the frame stream; built-in relu chain after it), layer 4 as noise (between two built-in
 * groups: its input gradient is needed), layer 6 as a defined batchnorm (softplus after it). */
Test(codegen_prim, tiny_with_defined_conv_noise_and_batchnorm)
{
    static rc_ir ir;
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", 4, &ir, err, sizeof err), 0, "%s", err);
    def_conv(&ir, 0, ir.layers[0].channels, ir.layers[0].kernel);
    def_noise(&ir, 3);
    def_bn(&ir, 5, ir.layers[5].eps, ir.layers[5].momentum);
    reinfer(&ir, 4);
    compare(&ir, 6, "tiny + defined conv, noise, batchnorm");
}

/* tanh(conv2d(softplus(x), w) + b): the conv reads a computed node and its gradient is one
 * (both materialized for the blocked kernels) */
static void def_conv_tanh(rc_ir *ir, int li, int cout, int k)
{
    rc_shape in = ir->layers[li].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int wd[4] = {cout, in.c, k, k}, bd[4] = {1, cout, 1, 1};
    int x = input(&g, in);
    int w = decl(&g, 0, "weight", 4, wd, 0.3, 0), b = decl(&g, 0, "bias", 4, bd, 0.3, 0);
    int at[RC_PRIM_NATTR] = {1, 0, 1, 1, 1}, in2[2] = {un(&g, RC_P_SOFTPLUS, x), w};
    int c = add(&g, RC_P_CONV2D, 2, in2, at, 0, 0);
    g.out[0] = g.out[1] = un(&g, RC_P_TANH, bin(&g, RC_P_ADD, c, b));
    attach(ir, li, "convtanh", &g);
}

/* Plain valid convs at sizes the blocked kernels tile (8 channels, 16x16, kernel 5; 8 -> 4,
 * kernel 3): lowered to the built-in conv's kernels (forward, input gradient as the padded
 * flipped correlation, weight gradient), in the middle of the model so the input gradients are
 * needed; B = 11 > EM_NPART parts, unevenly split. */
Test(codegen_prim, plain_convs_on_the_blocked_kernels)
{
    static rc_ir ir;
    build_ir(&ir, "history=8 height=16 width=16",
             "layer conv channels=8 kernel=1\nlayer conv channels=8 kernel=5\nlayer relu\n"
             "layer conv channels=4 kernel=3\nlayer dense\n", 3);
    def_conv(&ir, 1, 8, 5);
    reinfer(&ir, 3);
    def_conv_tanh(&ir, 3, 4, 3);
    reinfer(&ir, 3);
    char *src = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &src, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(src, "static void forward_l2_def(int B,"));
    cr_expect(strstr(src, "plain valid conv (stride 1, no padding): the built-in conv's register-blocked"),
              "the forward runs on the blocked kernel");
    cr_expect(strstr(src, "input gradient of a conv (stride 1, padding 0)"), "the input gradient runs on the blocked kernel");
    cr_expect(strstr(src, "weight gradient of a conv (stride 1, padding 0)"), "the weight gradient runs on the blocked kernel");
    cr_expect(!strstr(src, "/* conv2d: stride 1, pad 0"), "no plain conv left on the generic loops");
    free(src);
    compare(&ir, 11, "plain defined convs on the blocked kernels");
    compare(&ir, 3, "the same, B = 3");
}

/* The prelude's def.conv as layer 1, def.relu, def.dense and def.softplus (and def.batchnorm,
 * see the next test) are the built-in kinds' graphs: compiler/lower.c hands them to the built-in
 * kernels, so layer 1 takes the FFT path over the frame stream. Against the reference (which
 * evaluates the graphs) with the FFT path and the direct one. */
Test(codegen_prim, prelude_conv_dense_and_rectifications_lowered_to_builtin_kernels)
{
    static rc_ir ir;
    const char *t = "return model \"m\" { input = { history = 12, height = 20, width = 20 },\n"
                    "def.conv { channels = 8, kernel = 9 }, def.batchnorm {}, def.relu {},\n"
                    "def.conv { channels = 8, kernel = 3 }, def.relu {}, def.dense {}, def.softplus {},\n"
                    "train = { batch = 8 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    static rc_ir low;
    cr_assert_eq(rc_ir_lower(&ir, &low, err, sizeof err), 7, "%s", err);   /* every layer */
    cr_assert_eq(low.layers[0].kind, RC_LAYER_CONV);
    cr_assert_eq(low.layers[1].kind, RC_LAYER_BATCHNORM);
    cr_assert(low.layers[5].kind == RC_LAYER_DENSE && low.layers[6].kind == RC_LAYER_ACT && low.layers[6].act == RC_ACT_SOFTPLUS);
    char *src = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &src, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(src, "layer 1 (conv, defined): its graph is the built-in conv's; emitted with that kind's kernels"), "lowered");
    cr_expect(strstr(src, "const int rcg_ext = 1;"), "layer 1 is an external (FFT) first conv");
    free(src);
    compare_fft(&ir, 7, "prelude conv/dense/relu lowered, FFT layer 1", 1);
    compare_fft(&ir, 7, "the same, direct layer 1", 0);
}

/* The prelude's batch norms (per unit, per channel with |scale|, another eps and momentum), noise
 * and dropout are lowered too: the built-in kernels, drawing from the defined layers' streams,
 * so the noise and masks are the graph's (the reference evaluates the graphs). A batch norm that
 * differs from the prelude's by one term (the biased variance in its running statistics) and a
 * noise scaled by its input are not the built-ins' forms and stay graphs. */
Test(codegen_prim, prelude_batchnorm_noise_and_dropout_lowered_with_their_streams)
{
    static rc_ir ir, low;
    const char *t = "local mybn = layer \"mybn\" {\n"
                    "  options = { eps = 1e-3, momentum = 0.1 },\n"
                    "  params = function(x) local f = x.shape[2] * x.shape[3] * x.shape[4]\n"
                    "    return { scale = { shape = { f }, init = 1 }, shift = { shape = { f }, init = 0 } } end,\n"
                    "  state = function(x) local f = x.shape[2] * x.shape[3] * x.shape[4]\n"
                    "    return { running_mean = { shape = { f }, init = 0 }, running_var = { shape = { f }, init = 1 } } end,\n"
                    "  forward = function(x, p, o, mode)\n"
                    "    local st = { 1, x.shape[2], x.shape[3], x.shape[4] }\n"
                    "    local function s(t) return reshape(t, st) end\n"
                    "    local m, v = s(p.running_mean), s(p.running_var)\n"
                    "    if mode == \"train\" then\n"
                    "      m = mean(x, 1); v = mean((x - m) ^ 2, 1)\n"
                    "      update(p.running_mean, (1 - o.momentum) * s(p.running_mean) + o.momentum * m)\n"
                    "      update(p.running_var, (1 - o.momentum) * s(p.running_var) + o.momentum * v)\n"
                    "    end\n"
                    "    return (x - m) / sqrt(v + o.eps) * s(p.scale) + s(p.shift)\n"
                    "  end }\n"
                    "local xnoise = layer \"xnoise\" { forward = function(x, p, o, mode)\n"
                    "  if mode == \"train\" then return x + 0.1 * x * randn(x) end return x end }\n"
                    "return model \"m\" { input = { history = 12, height = 20, width = 20 },\n"
                    "def.conv { channels = 8, kernel = 9 }, def.batchnorm {}, def.noise { std = 0.2 }, def.relu {},\n"
                    "def.conv { channels = 8, kernel = 3 }, def.batchnorm { over = \"channel\", abs = true, eps = 0.01, momentum = 0.3 },\n"
                    "def.dropout { p = 0.25 }, def.relu {}, mybn {}, xnoise {}, def.dense {}, def.batchnorm {}, def.softplus {},\n"
                    "train = { batch = 8 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_lower(&ir, &low, err, sizeof err), 11, "all but mybn and xnoise: %s", err);
    cr_assert(low.layers[1].kind == RC_LAYER_BATCHNORM && low.layers[1].over == RC_BN_UNIT && !low.layers[1].abs_scale);
    cr_assert(low.layers[5].kind == RC_LAYER_BATCHNORM && low.layers[5].over == RC_BN_CHANNEL && low.layers[5].abs_scale &&
              low.layers[5].eps == 0.01 && low.layers[5].momentum == 0.3);
    cr_assert(low.layers[2].kind == RC_LAYER_NOISE && low.layers[2].std == 0.2 && low.layers[2].rng_sub == RC_PRIM_RNG_SUB0);
    cr_assert(low.layers[6].kind == RC_LAYER_DROPOUT && low.layers[6].p == 0.25);
    cr_assert(low.layers[8].kind == RC_LAYER_DEF && low.layers[9].kind == RC_LAYER_DEF, "near misses stay graphs");
    compare_fft(&ir, 7, "prelude batchnorm/noise/dropout lowered, FFT layer 1", 1);
    compare_fft(&ir, 7, "the same, direct layer 1", 0);
}

/* The prelude's stacked def.conv (with and without dropout between the sub-convs, one with
 * inner channels of its own) and def.gcconv are lowered too: the built-in stacked conv's
 * kernels (collapsed in inference, the FFT path for a stacked layer 1's inference) drawing the
 * graph's dropout masks, and the built-in gcconv read out at the model's positions. A stack whose
 * sub-kernels are not the built-in's plan, and a chain with a nonlinearity inside, stay graphs. */
Test(codegen_prim, prelude_stacked_conv_and_gcconv_lowered)
{
    static rc_ir ir, low;
    const char *t = "local odd = layer \"odd\" {\n"
                    "  params = function(x) return { [\"sub0.weight\"] = { shape = { 4, x.shape[2], 2, 2 }, init = { uniform = 0.2 } },\n"
                    "    [\"sub1.weight\"] = { shape = { 4, 4, 3, 3 }, init = { uniform = 0.2 } } } end,\n"
                    "  forward = function(x, p) return conv2d(conv2d(x, p[\"sub0.weight\"]), p[\"sub1.weight\"]) end }\n"
                    "local bent = layer \"bent\" {\n"
                    "  params = function(x) return { [\"sub0.weight\"] = { shape = { 4, x.shape[2], 3, 3 }, init = { uniform = 0.2 } },\n"
                    "    [\"sub1.weight\"] = { shape = { 4, 4, 3, 3 }, init = { uniform = 0.2 } } } end,\n"
                    "  forward = function(x, p) return conv2d(tanh(conv2d(x, p[\"sub0.weight\"])), p[\"sub1.weight\"]) end }\n"
                    "return model \"m\" { input = { history = 10, height = 24, width = 24 },\n"
                    "def.conv { channels = 8, kernel = 7, stack = 3, stack_dropout = 0.2 }, def.batchnorm {}, def.relu {},\n"
                    "def.conv { channels = 8, kernel = 5, stack = 3, stack_channels = 4 }, def.relu {},\n"
                    "def.conv { channels = 4, kernel = 3, stack = 2, stack_dropout = 0.3, bias = false }, def.relu {},\n"
                    "odd {}, bent {},\n"
                    "def.gcconv { kernel = 3, position = \"center\" }, def.batchnorm {}, def.softplus {},\n"
                    "train = { batch = 8 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_lower(&ir, &low, err, sizeof err), 10, "all but odd and bent: %s", err);
    const rc_layer *a = &low.layers[0], *b = &low.layers[3], *c = &low.layers[5], *g = &low.layers[9];
    cr_assert(a->kind == RC_LAYER_CONV && a->stack == 3 && a->n_sub == 3 && a->kernel == 7 && a->stack_dropout == 0.2 &&
              a->bias && a->rng_sub + 1 == RC_PRIM_RNG_SUB0, "layer 1: stack 3 of 3 sub-convs, dropout streams 8, 9");
    cr_assert(b->kind == RC_LAYER_CONV && b->n_sub == 2 && b->stack_channels == 4 && b->sub_cout[0] == 4 &&
              b->stack_dropout == 0 && b->rng_sub == 0);
    cr_assert(c->kind == RC_LAYER_CONV && c->n_sub == 2 && c->sub_k[0] == 2 && !c->bias && c->stack_dropout == 0.3);
    cr_assert(low.layers[7].kind == RC_LAYER_DEF && low.layers[8].kind == RC_LAYER_DEF, "near misses stay graphs");
    cr_assert(g->kind == RC_LAYER_GCCONV && g->kernel == 3 && g->position == RC_POS_CENTER && g->bias);
    compare_fft(&ir, 6, "prelude stacked convs and gcconv lowered, FFT layer 1 (inference)", 2);
    compare_fft(&ir, 6, "the same, direct layer 1", 0);
}

/* The prelude's tiled (period 2 and 3) and locally connected (period 0) def.conv lowered to the
 * built-in tiled conv: the bias map is recognized by evaluating it on a probe. A tiled conv whose
 * bias map is transposed (bias[x % P][y % P]) is another function and stays a graph. */
Test(codegen_prim, prelude_tiled_and_local_convs_lowered)
{
    static rc_ir ir, low;
    const char *t = "local twisted = layer \"twisted\" {\n"
                    "  params = function(x) local c = x.shape[2]\n"
                    "    return { weight = { shape = { 2, 2, 2, c, 3, 3 }, init = { uniform = 0.3 } },\n"
                    "             bias = { shape = { 2, 2, 2 }, init = { uniform = 0.3 } } } end,\n"
                    "  forward = function(x, p)\n"
                    "    local y = conv2d(x, p.weight, { period = 2 })\n"
                    "    local ho, wo = y.shape[3], y.shape[4]\n"
                    "    local b = reshape(transpose(p.bias, { 3, 2, 1 }), { 2, 1, 2, 1, 2 })\n"
                    "    b = reshape(expand(b, { 2, (ho + 1) // 2, 2, (wo + 1) // 2, 2 }), { 2, ((ho + 1) // 2) * 2, ((wo + 1) // 2) * 2 })\n"
                    "    return y + reshape(slice(slice(b, 2, 1, ho), 3, 1, wo), { 1, 2, ho, wo }) end }\n"
                    "return model \"m\" { input = { history = 6, height = 16, width = 16 },\n"
                    "def.conv { channels = 3, kernel = 5, period = 2 }, def.relu {},\n"
                    "def.conv { channels = 2, kernel = 3, period = 0 }, def.relu {},\n"
                    "def.conv { channels = 2, kernel = 3, period = 3, bias = false }, twisted {}, def.relu {},\n"
                    "def.dense {}, def.softplus {}, train = { batch = 8 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_lower(&ir, &low, err, sizeof err), 8, "all but twisted: %s", err);
    cr_assert(low.layers[0].kind == RC_LAYER_CONV && low.layers[0].period == 2 && low.layers[0].bias);
    cr_assert(low.layers[2].kind == RC_LAYER_CONV && low.layers[2].period == 10, "period 0: one weight set per position");
    cr_assert(low.layers[4].kind == RC_LAYER_CONV && low.layers[4].period == 3 && !low.layers[4].bias);
    cr_assert(low.layers[5].kind == RC_LAYER_DEF, "a transposed bias map stays a graph");
    compare(&ir, 6, "prelude tiled and local convs lowered");
}

/* Padded convs inside a defined layer ("same" convolutions, padding 1 and 2, one of them on a
 * computed operand, then a "full" one, padding K - 1) take the blocked kernels too: the input copied into a buffer with a zero
 * border (forward, weight gradient), the output gradient padded by K - 1 - p (input gradient).
 * Against the reference, and the generated source says which kernels. */
Test(codegen_prim, padded_convs_on_the_blocked_kernels)
{
    static rc_ir ir;
    const char *t = "local same = layer \"same\" {\n"
                    "  params = function(x) local c = x.shape[2]\n"
                    "    return { w1 = { shape = { 4, c, 5, 5 }, init = { uniform = 0.2 } },\n"
                    "             w2 = { shape = { 3, 4, 3, 3 }, init = { uniform = 0.3 } },\n"
                    "             w3 = { shape = { 3, 3, 3, 3 }, init = { uniform = 0.3 } } } end,\n"
                    "  forward = function(x, p)\n"
                    "    local h = conv2d(x, p.w1, { pad = 2 })\n"
                    "    return conv2d(conv2d(tanh(h), p.w2, { pad = 1 }), p.w3, { pad = 2 }) end }\n"
                    "return model \"m\" { input = { history = 6, height = 14, width = 13 },\n"
                    "conv { channels = 4, kernel = 3 }, relu {}, same {}, relu {}, dense {}, softplus {},\n"
                    "train = { batch = 8 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    cr_assert(ir.layers[2].out.h == 14 && ir.layers[2].out.w == 13, "same size, then a full conv (padding K - 1)");
    char *src = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &src, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(src, "conv with zero padding 2 (stride 1)") && strstr(src, "conv with zero padding 1 (stride 1)"),
              "both forward convs on the blocked kernels");
    cr_expect(strstr(src, "input gradient of a conv (stride 1, padding 1)"), "the inner conv's input gradient");
    cr_expect(strstr(src, "weight gradient of a conv (stride 1, padding 2)") &&
              strstr(src, "weight gradient of a conv (stride 1, padding 1)"), "both weight gradients");
    free(src);
    compare(&ir, 6, "padded convs in a defined layer");
}

/* A defined layer as the last layer and two defined layers in a row (no built-in in between). */
Test(codegen_prim, defined_layers_back_to_back_and_last)
{
    static rc_ir ir;
    build_ir(&ir, "history=3 height=7 width=7",
             "layer conv channels=4 kernel=3\nlayer relu\nlayer relu\nlayer dense units=6\nlayer dense\n", 3);
    def_noise(&ir, 1);
    def_bn(&ir, 2, 1e-3, 0.1);
    reinfer(&ir, 3);
    /* the last layer: dense as matmul + bias on the flattened input, then softplus */
    rc_shape in = ir.layers[4].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int wd[2] = {in.c * in.h * in.w, 3}, bd[2] = {1, 3}, fl[2] = {RC_PRIM_B, in.c * in.h * in.w}, od[4] = {RC_PRIM_B, 3, 1, 1};
    int x = input(&g, in);
    int w = decl(&g, 0, "weight", 2, wd, 0.4, 0), b = decl(&g, 0, "bias", 2, bd, 0.4, 0);
    int mm = bin(&g, RC_P_MATMUL, reshape(&g, x, 2, fl), w);
    g.out[0] = g.out[1] = reshape(&g, un(&g, RC_P_SOFTPLUS, bin(&g, RC_P_ADD, mm, b)), 4, od);
    attach(&ir, 4, "mydense", &g);
    reinfer(&ir, 3);
    compare(&ir, 5, "defined noise, batchnorm back to back; defined dense last");
    compare_fft(&ir, 5, "the same, layer 1 by FFT", 1);
}

/* A chain of 1200 elementwise nodes (a spec's loop makes such chains): the emitter cuts it every
 * PR_INLINE_MAX nodes -- with no cut its recursion overflowed the stack (found by
 * fuzz/fuzz_prim.c) -- and the cut chain computes the same values and gradients. */
Test(codegen_prim, long_elementwise_chain_is_cut)
{
    static rc_ir ir;
    build_ir(&ir, "history=2 height=5 width=5", "layer relu\nlayer dense\n", 2);
    rc_shape in = ir.layers[0].in;
    rc_prim_graph g;
    rc_prim_init(&g);
    int pd[4] = {1, in.c, 1, 1};
    int x = input(&g, in);
    int y = bin(&g, RC_P_MUL, x, decl(&g, 0, "gain", 4, pd, 0.5, 0));
    for (int k = 0; k < 1200; k++) y = bin(&g, RC_P_MUL, y, cst(&g, y, 1.0005));
    g.out[0] = g.out[1] = y;
    attach(&ir, 0, "chain", &g);
    reinfer(&ir, 2);
    char *src = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &src, err, sizeof err), 0, "%s", err);
    cr_assert_gt(strlen(src), 1000);
    free(src);
    compare(&ir, 3, "a 1200-node elementwise chain");
}

/* The generated source: one function per mode and the backward, named by layer; deterministic. */
Test(codegen_prim, generated_source_names_the_layer_and_nodes)
{
    static rc_ir ir;
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", 4, &ir, err, sizeof err), 0, "%s", err);
    def_bn(&ir, 5, ir.layers[5].eps, ir.layers[5].momentum);
    reinfer(&ir, 4);
    char *src = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &src, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(src, "static void forward_l6_def(int B,"));
    cr_assert(strstr(src, "static void infer_l6_def(int B,"));
    cr_assert(strstr(src, "static void backward_l6_def(int B,"));
    cr_assert(strstr(src, "mean ("), "materialized nodes are named by their op");
    cr_assert(strstr(src, "/* state updates, after every value is computed */"));
    char *again = NULL;
    cr_assert_eq(rc_emit_c(&ir, NULL, &again, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(src, again, "generation is deterministic");
    free(src);
    free(again);
}

/* ---------------------------------------------------------------- every primitive */

/* The per-op case: x (B,3,4,4) (a conv's output, so the input gradient is checked too) and a
 * parameter p; returns the output node (B, C', H', W'); 0 = no case for this op. */
typedef struct { rc_prim_graph g; int x, p; rc_shape in; } pcase;

static void pbase(pcase *c, int prank, const int *pdims)
{
    rc_prim_init(&c->g);
    c->x = input(&c->g, c->in);
    c->p = decl(&c->g, 0, "p", prank, pdims, 0.8, 0);
}

static const int chan[4] = {1, 3, 1, 1};

static int build_case(pcase *c, rc_prim_op op)
{
    const rc_prim_info *I = &rc_prim_table()[op];
    rc_prim_graph *g = &c->g;
    int xd[4] = {RC_PRIM_B, 3, 4, 4};
    switch (I->kind) {
    case RC_PK_UNARY: {
        pbase(c, 4, chan);
        int xp = bin(g, RC_P_MUL, c->x, c->p);
        /* positive argument for the ops with a domain: (x p)^2 + 0.3 */
        int pos = bin(g, RC_P_ADD, bin(g, RC_P_MUL, xp, xp), cst(g, xp, 0.3));
        int dom = op == RC_P_LOG || op == RC_P_LOG1P || op == RC_P_SQRT || op == RC_P_RECIP || op == RC_P_POWC;
        int a = dom ? pos : xp, y;
        if (op == RC_P_POWC) y = add(g, op, 1, &a, NULL, 1.7, 0);
        else y = un(g, op, a);
        if (!I->differentiable) return bin(g, RC_P_ADD, xp, un(g, RC_P_STOPGRAD, y));
        if (op == RC_P_STOPGRAD) return bin(g, RC_P_ADD, bin(g, RC_P_MUL, y, c->x), xp);
        return y;
    }
    case RC_PK_BINARY: {
        pbase(c, 4, chan);
        int a = bin(g, RC_P_MUL, c->x, cst(g, c->x, 1.3));
        if (I->differentiable) return bin(g, op, a, c->p);
        int b = op == RC_P_EQ ? bin(g, RC_P_MAX, c->x, c->p) : c->p;   /* eq: true where x >= p */
        return bin(g, RC_P_ADD, bin(g, RC_P_MUL, c->x, c->p), un(g, RC_P_STOPGRAD, bin(g, op, c->x, b)));
    }
    case RC_PK_SELECT: {
        pbase(c, 4, chan);
        int in3[3] = {bin(g, RC_P_GT, c->x, cst(g, c->x, 0.0)), bin(g, RC_P_MUL, c->x, c->p), c->p};
        return add(g, op, 3, in3, NULL, 0, 0);
    }
    case RC_PK_REDUCE: {   /* over the batch and the rows, broadcast back */
        pbase(c, 4, chan);
        int at[RC_PRIM_NATTR] = {0x1 | 0x4};
        int r = op1(g, op, bin(g, RC_P_MUL, c->x, c->p), at);
        return bin(g, RC_P_MUL, c->x, r);
    }
    case RC_PK_MOVE: {
        pbase(c, 4, chan);
        int xp = bin(g, RC_P_MUL, c->x, c->p);
        switch (op) {
        case RC_P_RESHAPE: { int d[4] = {RC_PRIM_B, 12, 2, 2}; return reshape(g, xp, 4, d); }
        case RC_P_TRANSPOSE: { int pm[RC_PRIM_NATTR] = {0, 2, 3, 1}; return op1(g, op, xp, pm); }
        case RC_P_SLICE: { int s[RC_PRIM_NATTR] = {0, RC_PRIM_B, 1, 3, 0, 4, 2, 3}; return op1(g, op, xp, s); }
        case RC_P_PAD: { int s[RC_PRIM_NATTR] = {0, 0, 1, 0, 2, 1, 0, 3}; return op1(g, op, xp, s); }
        case RC_P_CONCAT: { int at[RC_PRIM_NATTR] = {1}, in2[2] = {xp, un(g, RC_P_TANH, c->x)}; return add(g, op, 2, in2, at, 0, 0); }
        case RC_P_EXPAND: { int e[RC_PRIM_NATTR] = {RC_PRIM_B, 3, 4, 4}; return bin(g, RC_P_MUL, op1(g, op, c->p, e), c->x); }
        /* the 3 channels are the 3 cells' maps, read at the model's positions (compare_fft) */
        case RC_P_CELLPICK: { int at[RC_PRIM_NATTR] = {1}; return op1(g, op, xp, at); }
        case RC_P_CELLPLACE: {
            int sa[RC_PRIM_NATTR] = {0xc}, pl[RC_PRIM_NATTR] = {1, 4, 4};
            return bin(g, RC_P_MUL, op1(g, op, op1(g, RC_P_SUM, xp, sa), pl), c->x);
        }
        default: return 0;
        }
    }
    case RC_PK_CONTRACT:
        if (op == RC_P_MATMUL) {
            int pd[2] = {48, 5}, fl[2] = {RC_PRIM_B, 48}, od[4] = {RC_PRIM_B, 5, 1, 1};
            pbase(c, 2, pd);
            return reshape(g, bin(g, op, reshape(g, c->x, 2, fl), c->p), 4, od);
        }
        if (op == RC_P_CONV2D) {   /* strided, padded, dilated; then a tiled one on top */
            int pd[4] = {4, 3, 3, 3}, td[6] = {2, 2, 2, 4, 2, 2};
            pbase(c, 4, pd);
            int at[RC_PRIM_NATTR] = {1, 2, 2, 1, 1}, in2[2] = {c->x, c->p};
            int y = add(g, op, 2, in2, at, 0, 0);   /* (B,4,4,4) */
            int tw = decl(g, 0, "tiled", 6, td, 0.5, 0);
            int at2[RC_PRIM_NATTR] = {1, 0, 1, 2, 2}, in3[2] = {un(g, RC_P_TANH, y), tw};
            int y2 = add(g, op, 2, in3, at2, 0, 0);   /* (B,2,3,3) */
            int at3[RC_PRIM_NATTR] = {2, 1, 1, 1, 1}, in4[2] = {c->x, c->p};
            int y3 = add(g, op, 2, in4, at3, 0, 0);   /* stride 2, pad 1: (B,4,2,2) */
            int sl[RC_PRIM_NATTR] = {0, RC_PRIM_B, 0, 2, 0, 2, 0, 2};
            return bin(g, RC_P_ADD, op1(g, RC_P_SLICE, y2, sl), op1(g, RC_P_SLICE, y3, sl));
        }
        return 0;   /* conv2d_dx, conv2d_dw: conv2d's backward renders them (coverage checked below) */
    case RC_PK_LEAF:
        if (op == RC_P_RANDN || op == RC_P_RANDU) {
            pbase(c, 4, chan);
            int at[RC_PRIM_NATTR] = {3};
            int r = leaf(g, op, 0, 4, xd, at);
            return bin(g, RC_P_ADD, c->x, bin(g, RC_P_MUL, c->p, r));
        }
        if (op == RC_P_STATE || op == RC_P_NUMEL) {   /* a running mean: state, update, numel */
            pbase(c, 4, chan);
            int s = decl(g, 1, "run", 4, chan, 0, 0.5), ones[4] = {1, 1, 1, 1}, na[RC_PRIM_NATTR] = {16, 1, 0};
            int ax[RC_PRIM_NATTR] = {0x1 | 0x4 | 0x8};
            int sum = op1(g, RC_P_SUM, c->x, ax), n = leaf(g, RC_P_NUMEL, 0, 4, ones, na);
            int m = bin(g, RC_P_DIV, sum, n);
            int nm = bin(g, RC_P_ADD, bin(g, RC_P_MUL, cst(g, s, 0.7), s), bin(g, RC_P_MUL, cst(g, m, 0.3), m));
            add(g, RC_P_UPDATE, 1, &nm, NULL, 0, 0);
            int eval = bin(g, RC_P_MUL, bin(g, RC_P_SUB, c->x, s), c->p);
            g->out[1] = eval;
            return bin(g, RC_P_MUL, bin(g, RC_P_SUB, c->x, bin(g, RC_P_ADD, m, s)), c->p);
        }
        return 0;   /* input, param, const: in every case */
    case RC_PK_SINK:
        return 0;   /* update: the state case */
    }
    return 0;
}

/* Ops whose case is another's (checked by the coverage assertion). */
static int covered_elsewhere(rc_prim_op op)
{
    return op == RC_P_INPUT || op == RC_P_PARAM || op == RC_P_CONST || op == RC_P_UPDATE ||
           op == RC_P_CONV2D_DX || op == RC_P_CONV2D_DW;
}

/* Mark the ops of the nodes the rendered functions need (forward of both modes with the
 * updates, and the training gradients). */
static void mark_ops(const rc_ir *ir, int li, int *seen)
{
    rc_prim_graph g;
    char buf[RC_DEF_TEXT_MAX];
    cr_assert(rc_ir_def_text(ir, li, buf, sizeof buf));
    rc_prim_init(&g);
    cr_assert_eq(rc_prim_parse(&g, buf, ir->cells, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_prim_grad(&g, RC_PRIM_TRAIN, err, sizeof err), 0, "%s", err);
    int roots[4 + 2 * RC_PRIM_MAX_DECL], nr = 0;
    roots[nr++] = g.out[0];
    roots[nr++] = g.out[1];
    roots[nr++] = g.grad_in[0];
    for (int k = 0; k < g.n_param; k++) roots[nr++] = g.grad_param[0][k];
    unsigned char *need = malloc((size_t)g.n);
    rc_prim_needed(&g, roots, nr, need);
    for (int i = 0; i < g.n; i++) {
        if (g.node[i].op == RC_P_UPDATE) { seen[RC_P_UPDATE] = 1; need[g.node[i].in[0]] = 1; }
        if (need[i]) seen[g.node[i].op] = 1;
    }
    free(need);
    rc_prim_free(&g);
}

Test(codegen_prim, every_primitive_of_the_table)
{
    int seen[RC_P_COUNT] = {0};
    const rc_prim_info *T = rc_prim_table();
    for (int op = 0; op < RC_P_COUNT; op++) {
        if (covered_elsewhere((rc_prim_op)op)) continue;
        static rc_ir ir;
        /* conv (B,3,4,4) -> the defined layer -> dense to 2 cells (3 for the readout ops: one
         * map channel per cell) */
        int cells = op == RC_P_CELLPICK || op == RC_P_CELLPLACE ? 3 : 2;
        build_ir(&ir, "history=3 height=6 width=6", "layer conv channels=3 kernel=3\nlayer relu\nlayer dense bias=true\n", cells);
        pcase c;
        c.in = ir.layers[1].in;
        int y = build_case(&c, (rc_prim_op)op);
        cr_expect_gt(y, 0, "primitive '%s' (row %d) has no case in build_case: add one", T[op].name, op);
        if (y <= 0) { rc_prim_free(&c.g); continue; }
        c.g.out[0] = y;
        if (c.g.out[1] < 0) c.g.out[1] = y;
        char kind[RC_DEF_KIND_MAX];
        snprintf(kind, sizeof kind, "t_%s", T[op].name);
        attach(&ir, 1, kind, &c.g);
        reinfer(&ir, cells);
        mark_ops(&ir, 1, seen);
        compare(&ir, 4, T[op].name);
    }
    for (int op = 0; op < RC_P_COUNT; op++)
        cr_expect(seen[op], "primitive '%s' appeared in no compared graph", T[op].name);
}
