/* test_spec_layer.c — layers defined in a spec from primitives (compiler/frontend/spec_layer.c,
 * compiler/frontend/prelude.lua; syntax in specs/README.md, "Defining a layer"):
 *   - the example specs (psoftplus, divnorm, exp_poisson) load, infer and carry their graphs;
 *   - the IR text of a defined layer is deterministic, and train/eval share their nodes;
 *   - the prelude's definitions (def.relu, def.batchnorm, def.conv, ...) give the built-in
 *     layers' outputs, running statistics and gradients on the reference backend (parameters
 *     copied by name); def.noise and def.dropout are the identity in evaluation and draw the
 *     right distributions in training;
 *   - the primitive functions build (shapes, cells, methods, broadcasting) and Lua's own select
 *     still works;
 *   - every malformed definition in tests/fixtures/bad_specs/def/ is refused by `retinac check`
 *     with ONE located line (file:line, layer, op) that contains the expected text;
 *   - the examples train for an epoch on the reference backend.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ir.h"
#include "kit.h"
#include "model.h"
#include "prim.h"
#include "rng.h"
#include "spec.h"
#include "tiny_retina.h"

#define CELLS 5
#define NB 6
static char err[1024];

static void load_file(const char *name, rc_ir *ir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/specs/%s", RC_SRC_DIR, name);
    cr_assert_eq(rc_spec_check(path, CELLS, ir, err, sizeof err), 0, "%s", err);
}

static void load_text(const char *text, rc_ir *ir)
{
    cr_assert_eq(rc_spec_load_string("t.lua", text, ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(ir, CELLS, "t.lua", err, sizeof err), 0, "%s", err);
}

static const rc_layer *layer_of_kind(const rc_ir *ir, const char *kind, int *at)
{
    for (int i = 0; i < ir->n_layers; i++)
        if (ir->layers[i].kind == RC_LAYER_DEF && !strcmp(ir->layers[i].def_kind, kind)) {
            if (at) *at = i;
            return &ir->layers[i];
        }
    return NULL;
}

/* ------------------------------------------------------------------ the examples */

Test(spec_layer, psoftplus_loads_with_a_beta_per_channel)
{
    static rc_ir ir;
    load_file("psoftplus.lua", &ir);
    int at;
    const rc_layer *l = layer_of_kind(&ir, "psoftplus", &at);
    cr_assert(l, "no psoftplus layer");
    cr_assert_eq(at, 1);
    cr_assert_eq(l->out.c, 3);
    cr_assert_eq(l->out.h, 12);
    const rc_param *p = rc_ir_find_param(&ir, "2.psoftplus.beta");
    cr_assert(p, "no 2.psoftplus.beta");
    cr_assert_eq(p->count, 3);
    cr_assert_eq(p->init_value, 1.0);
    p = rc_ir_find_param(&ir, "4.psoftplus.beta");
    cr_assert(p && p->init_value == 2.0, "the second use's option beta = 2.0 is its init");
    cr_assert_eq(ir.layers[ir.n_layers - 1].kind, RC_LAYER_ACT, "built-in softplus stays built in");
}

Test(spec_layer, divnorm_and_exp_poisson_load)
{
    static rc_ir a, b;
    load_file("divnorm.lua", &a);
    const rc_layer *l = layer_of_kind(&a, "divnorm", NULL);
    cr_assert(l);
    cr_assert(rc_ir_find_param(&a, "2.divnorm.weight") && rc_ir_find_param(&a, "2.divnorm.sigma"));
    cr_assert_eq(rc_ir_find_param(&a, "2.divnorm.weight")->count, 9);
    load_file("exp_poisson.lua", &b);
    l = &b.layers[b.n_layers - 1];
    cr_assert_eq(l->kind, RC_LAYER_DEF);
    cr_assert_str_eq(l->def_kind, "exponential");
    cr_assert_eq(l->out.c, CELLS);
    char buf[4096];
    cr_assert(rc_ir_def_text(&b, b.n_layers - 1, buf, sizeof buf));
    /* train_off: training is the identity (the input node), evaluation is exp of it */
    cr_assert(strstr(buf, "n0 input : B,C,1,1\nn1 exp n0 : B,C,1,1\nout train n0\nout eval n1"), "%s", buf);
}

Test(spec_layer, ir_text_is_deterministic_and_modes_share_nodes)
{
    static rc_ir a, b;
    load_file("psoftplus.lua", &a);
    load_file("psoftplus.lua", &b);
    char h1[65], h2[65];
    rc_ir_hash(&a, h1);
    rc_ir_hash(&b, h2);
    cr_assert_str_eq(h1, h2);
    char *t = rc_ir_format(&a);
    cr_assert(strstr(t, "layer def kind=psoftplus\nprim param beta 1,3,1,1 bound=0 value=1\n"), "%s", t);
    /* one forward for both modes: the same output node */
    cr_assert(strstr(t, "prim out train n4\nprim out eval n4\n"), "%s", t);
    free(t);
    /* the canonical text round-trips */
    static rc_ir c;
    char *t1 = rc_ir_format(&a);
    cr_assert_eq(rc_ir_parse(&c, t1, "t", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&c, CELLS, "t", err, sizeof err), 0, "%s", err);
    char *t2 = rc_ir_format(&c);
    cr_assert_str_eq(t1, t2);
    free(t1);
    free(t2);
}

/* ------------------------------------------------------------------ prelude vs built-ins */

static void fill(float *x, size_t n, unsigned seed, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rc_rng_uniform(seed, 7, i));
}

static double rel(const float *a, const float *b, size_t n)
{
    double m = 0, s = 1e-20;
    for (size_t i = 0; i < n; i++) if (fabs(b[i]) > s) s = fabs(b[i]);
    for (size_t i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m / s;
}

/* b's buffer from a's, tensor by tensor by name (the layouts may differ). */
static void by_name(const rc_param *pa, int na, const float *xa, const rc_param *pb, int nb,
                    float *xb)
{
    cr_assert_eq(na, nb, "%d vs %d tensors", na, nb);
    for (int k = 0; k < nb; k++) {
        const rc_param *q = NULL;
        for (int j = 0; j < na; j++)
            if (!strcmp(pa[j].name, pb[k].name)) q = &pa[j];
        cr_assert(q, "%s: no tensor of that name in the built-in model", pb[k].name);
        cr_assert_eq(q->count, pb[k].count, "%s: sizes differ", pb[k].name);
        memcpy(xb + pb[k].offset, xa + q->offset, sizeof(float) * (size_t)q->count);
    }
}

/* The same model with built-in (a) and defined (b) layers on the reference backend: training
 * outputs, running statistics and gradients (by name), and evaluation outputs. */
static void same_model(const char *builtin, const char *defined, double tol)
{
    static rc_ir a, b;
    load_text(builtin, &a);
    load_text(defined, &b);
    int ndef = 0;
    for (int i = 0; i < b.n_layers; i++) ndef += b.layers[i].kind == RC_LAYER_DEF;
    cr_assert(ndef > 0, "the defined model has no defined layer");
    rc_backend *ba, *bb;
    cr_assert_eq(rc_backend_open(&a, "ref", "cpu", &ba, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_backend_open(&b, "ref", "cpu", &bb, err, sizeof err), 0, "%s", err);
    int T = a.history + NB + 3;
    size_t F = (size_t)a.height * a.width, PA = (size_t)a.params_total, PB = (size_t)b.params_total;
    size_t SA = (size_t)a.state_total, SB = (size_t)b.state_total;
    float *frames = malloc(sizeof(float) * T * F);
    float *pa = malloc(sizeof(float) * (PA + 1)), *pb = malloc(sizeof(float) * (PB + 1));
    float *sa = malloc(sizeof(float) * (SA + 1)), *sb = malloc(sizeof(float) * (SB + 1));
    float *sb2 = malloc(sizeof(float) * (SA + 1));
    float ya[NB * CELLS], yb[NB * CELLS], dy[NB * CELLS];
    float *ga = calloc(PA + 1, sizeof(float)), *gb = calloc(PB + 1, sizeof(float));
    float *gb2 = malloc(sizeof(float) * (PA + 1));
    float *wa = malloc(sizeof(float) * ba->ws_floats(ba, NB)), *wb = malloc(sizeof(float) * bb->ws_floats(bb, NB));
    int64_t starts[NB];
    for (int i = 0; i < NB; i++) starts[i] = i * 2 % 4 + i / 2;
    fill(frames, (size_t)T * F, 1, -1, 1);
    fill(pa, PA, 2, -0.5, 0.5);
    fill(sa, SA, 3, 0.5, 1.5);
    fill(dy, NB * CELLS, 4, -1, 1);
    by_name(a.params, a.n_params, pa, b.params, b.n_params, pb);
    by_name(a.state, a.n_state, sa, b.state, b.n_state, sb);
    /* a model that reads cells out of a map (gcconv, cellpick): both at the same positions */
    int *pos = NULL, pos_b[2 * CELLS], centers[2 * CELLS];
    cr_assert_eq(rc_gc_layer(&a) >= 0, rc_gc_layer(&b) >= 0, "only one model reads cells out of a map");
    if (rc_gc_layer(&a) >= 0) {
        static int pos_a[2 * CELLS];
        for (int k = 0; k < 2 * CELLS; k++) centers[k] = (int)(k * 5 % a.in.h);
        cr_assert_eq(rc_gc_positions(&a, centers, pos_a, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_gc_positions(&b, centers, pos_b, err, sizeof err), 0, "%s", err);
        for (int k = 0; k < 2 * CELLS; k++) cr_assert_eq(pos_b[k], pos_a[k], "readout position %d", k);
        pos = pos_a;
    }

    cr_assert_eq(ba->train_forward(ba, NB, pa, sa, pos, 11, frames, starts, ya, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->train_forward(bb, NB, pb, sb, pos, 11, frames, starts, yb, wb), 0, "%s", bb->err);
    cr_assert(rel(yb, ya, NB * CELLS) < tol, "train output differs: %g", rel(yb, ya, NB * CELLS));
    by_name(b.state, b.n_state, sb, a.state, a.n_state, sb2);
    cr_assert(rel(sb2, sa, SA) < tol, "running statistics differ: %g", rel(sb2, sa, SA));
    cr_assert_eq(ba->train_backward(ba, NB, pa, pos, frames, starts, dy, ga, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->train_backward(bb, NB, pb, pos, frames, starts, dy, gb, wb), 0, "%s", bb->err);
    by_name(b.params, b.n_params, gb, a.params, a.n_params, gb2);
    double gmax = 0;                  /* a gradient that is zero in exact arithmetic (a bias */
    for (size_t i = 0; i < PA; i++)   /* before batch norm) is compared on the overall scale */
        if (fabs(ga[i]) > gmax) gmax = fabs(ga[i]);
    for (int k = 0; k < a.n_params; k++) {
        const rc_param *p = &a.params[k];
        double m = 1e-4 * gmax, d = 0;
        for (int64_t i = 0; i < p->count; i++) {
            if (fabs(ga[p->offset + i]) > m) m = fabs(ga[p->offset + i]);
            if (fabs(gb2[p->offset + i] - ga[p->offset + i]) > d) d = fabs(gb2[p->offset + i] - ga[p->offset + i]);
        }
        cr_assert(d / m < 10 * tol, "gradient of %s differs: %g (of %g)", p->name, d / m, m);
    }
    cr_assert_eq(ba->infer(ba, NB, pa, sa, pos, frames, starts, ya, wa), 0, "%s", ba->err);
    cr_assert_eq(bb->infer(bb, NB, pb, sb, pos, frames, starts, yb, wb), 0, "%s", bb->err);
    cr_assert(rel(yb, ya, NB * CELLS) < tol, "eval output differs: %g", rel(yb, ya, NB * CELLS));
    rc_backend_destroy(ba);
    rc_backend_destroy(bb);
    free(frames); free(pa); free(pb); free(sa); free(sb); free(sb2); free(ga); free(gb); free(gb2);
    free(wa); free(wb);
}

#define HEAD "return model \"m\" { input = { history = 8, height = 16, width = 16 },\n"
#define TAIL "\ntrain = { batch = 16 } }\n"

Test(spec_layer, prelude_relu_conv_dense_batchnorm_softplus_equal_the_builtins)
{
    same_model(HEAD "conv { channels = 3, kernel = 5 }, relu {}, conv { channels = 3, kernel = 3 },"
               "relu {}, dense { bias = false }, batchnorm { over = \"unit\" }, softplus {}," TAIL,
               HEAD "def.conv { channels = 3, kernel = 5 }, def.relu {}, conv { channels = 3, kernel = 3 },"
               "def.relu {}, def.dense { bias = false }, def.batchnorm { over = \"unit\" }, def.softplus {},"
               TAIL, 1e-5);
}

Test(spec_layer, prelude_channel_batchnorm_and_activations_equal_the_builtins)
{
    /* (no conv biases: before a batch norm their gradient is zero up to rounding) */
    same_model(HEAD "conv { channels = 3, kernel = 5, bias = false }, batchnorm { over = \"channel\", abs = true },"
               "tanh {}, conv { channels = 4, kernel = 3, bias = false }, batchnorm { over = \"unit\", eps = 0.01, momentum = 0.2 },"
               "sigmoid {}, square {}, abs {}, requ {}, identity {}, exp {}, dense { bias = true }," TAIL,
               HEAD "conv { channels = 3, kernel = 5, bias = false }, def.batchnorm { over = \"channel\", abs = true },"
               "def.tanh {}, conv { channels = 4, kernel = 3, bias = false }, def.batchnorm { over = \"unit\", eps = 0.01, momentum = 0.2 },"
               "def.sigmoid {}, def.square {}, def.abs {}, def.requ {}, def.identity {}, def.exp {},"
               "def.dense { bias = true }," TAIL, 1e-5);
}

Test(spec_layer, prelude_stacked_tiled_and_local_convs_equal_the_builtins)
{
    /* the built-in conv's other forms (no stack dropout: the defined form draws from its own
     * stream); a 7x7 kernel as three 3x3 sub-convs (sub0.weight .. sub2.weight), 2x2 tiles, and
     * locally connected (period "full" for the built-in, 0 for def.conv) */
    same_model(HEAD "conv { channels = 3, kernel = 7, stack = 3, stack_channels = 4 }, relu {},"
               "conv { channels = 3, kernel = 3, period = 2 }, relu {},"
               "conv { channels = 2, kernel = 3, period = \"full\" }, dense { bias = false }, softplus {}," TAIL,
               HEAD "def.conv { channels = 3, kernel = 7, stack = 3, stack_channels = 4 }, relu {},"
               "def.conv { channels = 3, kernel = 3, period = 2 }, relu {},"
               "def.conv { channels = 2, kernel = 3, period = 0 }, dense { bias = false }, softplus {}," TAIL, 1e-5);
    /* a kernel the sub-kernel does not divide: a 6x6 as sub-kernels 3, 3 and 2 */
    same_model(HEAD "conv { channels = 2, kernel = 6, stack = 3, bias = false }, relu {}, dense {}," TAIL,
               HEAD "def.conv { channels = 2, kernel = 6, stack = 3, bias = false }, relu {}, dense {}," TAIL, 1e-5);
}

Test(spec_layer, prelude_gcconv_equals_the_builtin_at_every_position_rule)
{
    const char *modes[3] = {"data", "center", "reference"};
    char ta[1024], tb[1024];
    for (int m = 0; m < 3; m++) {
        snprintf(ta, sizeof ta, HEAD "conv { channels = 3, kernel = 5 }, relu {}, gcconv { kernel = 3, position = \"%s\" },"
                 "batchnorm { over = \"unit\" }, softplus {}," TAIL, modes[m]);
        snprintf(tb, sizeof tb, HEAD "conv { channels = 3, kernel = 5 }, relu {}, def.gcconv { kernel = 3, position = \"%s\" },"
                 "batchnorm { over = \"unit\" }, softplus {}," TAIL, modes[m]);
        same_model(ta, tb, 1e-5);
    }
    /* without a bias, straight after the frames (the map of a 5x5 kernel over 16x16) */
    same_model(HEAD "gcconv { kernel = 5, bias = false }, softplus {}," TAIL,
               HEAD "def.gcconv { kernel = 5, bias = false }, softplus {}," TAIL, 1e-5);
}

Test(spec_layer, cellpick_needs_one_map_channel_per_cell_and_one_readout_per_model)
{
    static rc_ir ir;
    const char *pick3 = "local pick = layer \"pick\" { forward = function(x) return cellpick(x) end }\n";
    char t[1024];
    snprintf(t, sizeof t, "%s" HEAD "conv { channels = 3, kernel = 5 }, pick {}, dense {}," TAIL, pick3);
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_neq(rc_ir_infer(&ir, CELLS, "t.lua", err, sizeof err), 0);
    cr_assert(strstr(err, "cellpick: the map has 3 channels, not one per cell (5)"), "%s", err);
    snprintf(t, sizeof t, HEAD "conv { channels = 5, kernel = 5 }, def.gcconv { kernel = 3 }, gcconv { kernel = 1 }," TAIL);
    cr_assert_neq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err) || rc_ir_infer(&ir, CELLS, "t.lua", err, sizeof err), 0);
    cr_assert(strstr(err, "one gcconv (or cellpick) per model"), "%s", err);
    snprintf(t, sizeof t, HEAD "conv { channels = 3, kernel = 5 }, def.gcconv { kernel = 3, position = \"middle\" }," TAIL);
    cr_assert_neq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "cellpick: position: expected \"data\", \"center\" or \"reference\", got 'middle'"), "%s", err);
}

Test(spec_layer, gcconv_readout_positions_count_defined_convs_before_it)
{
    /* position "data": the map pixel under each cell's centre depends on the trim of every conv
     * before the gcconv; a defined conv trims like the built-in (the positions were wrong before:
     * only built-in convs were counted) */
    static rc_ir a, b;
    const char *gc = "gcconv { kernel = 3, bias = false, position = \"%s\" }, softplus {},";
    char ta[1024], tb[1024], g[160];
    int centers[10] = {8, 8, 0, 15, 12, 3, 5, 9, 15, 15};
    const char *modes[2] = {"data", "reference"};
    for (int m = 0; m < 2; m++) {
        snprintf(g, sizeof g, gc, modes[m]);
        snprintf(ta, sizeof ta, HEAD "conv { channels = 3, kernel = 5 }, relu {}, conv { channels = 5, kernel = 3 }, relu {}, %s" TAIL, g);
        snprintf(tb, sizeof tb, HEAD "def.conv { channels = 3, kernel = 5 }, relu {}, def.conv { channels = 5, kernel = 3 }, relu {}, %s" TAIL, g);
        load_text(ta, &a);
        load_text(tb, &b);
        int pa[10], pb[10];
        cr_assert_eq(rc_gc_positions(&a, centers, pa, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_gc_positions(&b, centers, pb, err, sizeof err), 0, "%s", err);
        for (int k = 0; k < 10; k++) cr_assert_eq(pb[k], pa[k], "%s: pos[%d] = %d, built-in %d", modes[m], k, pb[k], pa[k]);
        if (m == 0) cr_assert_eq(pa[0], 8 - 2 - 1 - 1, "centre 8 minus the trims 2 + 1 + 1");
    }
}

Test(spec_layer, prelude_noise_and_dropout_are_the_identity_in_evaluation)
{
    /* std = 0 and p = 0: the identity in training too, so training matches as well */
    same_model(HEAD "conv { channels = 3, kernel = 5 }, noise { std = 0 }, dropout { p = 0 }, relu {},"
               "dense {}," TAIL,
               HEAD "conv { channels = 3, kernel = 5 }, def.noise { std = 0 }, def.dropout { p = 0 }, relu {},"
               "dense {}," TAIL, 1e-6);
    static rc_ir a, b;
    load_text(HEAD "conv { channels = 3, kernel = 5 }, noise { std = 0.3 }, dropout { p = 0.4 }, dense {}," TAIL, &a);
    load_text(HEAD "conv { channels = 3, kernel = 5 }, def.noise { std = 0.3 }, def.dropout { p = 0.4 }, dense {}," TAIL, &b);
    cr_assert_eq(a.params_total, b.params_total);
}

/* The layer's own graph in training on a constant input: the noise's and dropout's draws. */
static void train_draws(const char *layer, double in, double **y, int64_t *n)
{
    static rc_ir ir;
    char text[512];
    snprintf(text, sizeof text, HEAD "%s, dense {}," TAIL, layer);
    load_text(text, &ir);
    rc_prim_graph g;
    cr_assert_eq(rc_ir_def_graph(&ir, 0, &g, err, sizeof err), 0, "%s", err);
    const int B = 4;
    int64_t N = (int64_t)B * ir.in.c * ir.in.h * ir.in.w;
    double *x = malloc(sizeof(double) * (size_t)N);
    for (int64_t i = 0; i < N; i++) x[i] = in;
    rc_prim_eval_ctx cx = {.B = B, .mode = RC_PRIM_TRAIN, .seed = 5, .layer = 0};
    cx.input_d[0] = x;
    double **val = calloc((size_t)g.n, sizeof *val);
    cr_assert_eq(rc_prim_eval(&g, &cx, NULL, val, err, sizeof err), 0, "%s", err);
    *n = N;
    *y = malloc(sizeof(double) * (size_t)N);
    memcpy(*y, val[g.out[RC_PRIM_TRAIN]], sizeof(double) * (size_t)N);
    rc_prim_vals_free(&g, val);
    free(val);
    free(x);
    rc_prim_free(&g);
}

Test(spec_layer, prelude_noise_and_dropout_draw_in_training)
{
    double *y;
    int64_t n;
    train_draws("def.noise { std = 0.3 }", 0.0, &y, &n);
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) { s1 += y[i]; s2 += y[i] * y[i]; }
    double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
    cr_assert(n > 4000);
    cr_assert(fabs(mean) < 0.03, "noise mean %g", mean);
    cr_assert(fabs(sd - 0.3) < 0.02, "noise std %g, want 0.3", sd);
    free(y);
    train_draws("def.dropout { p = 0.4 }", 1.0, &y, &n);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(y[i] == 0 || fabs(y[i] - 1 / 0.6) < 1e-12, "dropout value %g", y[i]);
        zeros += y[i] == 0;
    }
    cr_assert(fabs((double)zeros / n - 0.4) < 0.03, "dropped %g, want 0.4", (double)zeros / n);
    free(y);
}

/* ------------------------------------------------------------------ the primitive functions */

Test(spec_layer, primitives_build_with_shapes_cells_methods_and_broadcasting)
{
    static rc_ir ir;
    load_text(
        "local many = layer \"many\" {\n"
        "  options = { k = 2 },\n"
        "  params = function(x, o) return { w = { shape = { 4, x.shape[2], 3, 3 }, init = { uniform = 0.1 } },\n"
        "                                   b = { shape = { 4 }, init = 0 } } end,\n"
        "  forward = function(x, p, o, mode)\n"
        "    assert(x.rank == 4 and x.shape[1] == \"B\" and x.shape[2] == 3)\n"
        "    local y = conv2d(x, p.w, { pad = 1 }) + reshape(p.b, { 1, 4, 1, 1 })\n"
        "    local a = slice(y, 3, 2, -2)                                  -- rows 2..11 of 12\n"
        "    a = pad(a, 3, 1, 1)                                           -- back to 12\n"
        "    local c = concat(a, y, 2)                                     -- 8 channels\n"
        "    c = transpose(transpose(c, { 1, 2, 4, 3 }), { 1, 2, 4, 3 })\n"
        "    local m = amax(c, { 3, 4 }) + c:mean({ -1, -2 }) - 0.5 * sum(c, 2) / count(c, 2)\n"
        "    local g = where(lt(c, m), max(c, -1), min(c, 1)) * -stop_gradient(c:tanh())\n"
        "    g = g + 2 ^ c:sigmoid() + pow(c:abs() + 1, o.k) + log1p(c * c) + sqrt(c * c + 1):log()\n"
        "    return relu(g) + square(c) / (1 + requ(c)) + identity(c) + full(g.shape, 1)\n"
        "  end,\n"
        "}\n"
        "local percell = layer \"percell\" {\n"
        "  params = function(x) return { gain = { shape = { 1, x.shape[2], 1, 1 }, init = 1 } } end,\n"
        "  forward = function(x, p)\n"
        "    assert(x.shape[2] == \"cells\", tostring(x.shape[2]))\n"
        "    local n = select(\"#\", 1, 2, 3)                            -- Lua's select still works\n"
        "    return x * p.gain + n\n"
        "  end,\n"
        "}\n"
        HEAD "conv { channels = 3, kernel = 5 }, many { k = 3 }, dense {}, percell {}," TAIL, &ir);
    int at;
    const rc_layer *l = layer_of_kind(&ir, "many", &at);
    cr_assert(l);
    cr_assert_eq(l->out.c, 8);
    cr_assert_eq(l->out.h, 12);
    l = layer_of_kind(&ir, "percell", &at);
    cr_assert(l && l->out.c == CELLS);
    cr_assert_eq(rc_ir_find_param(&ir, "4.percell.gain")->count, CELLS, "a 'cells' dimension follows the data");
    /* and with another cell count the same spec infers again */
    cr_assert_eq(rc_ir_infer(&ir, 7, "t.lua", err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_find_param(&ir, "4.percell.gain")->count, 7);
}

Test(spec_layer, a_tensor_kept_from_another_layer_is_refused)
{
    static rc_ir ir;
    const char *text =
        "local kept\n"
        "local a = layer \"a\" { forward = function(x) kept = x; return x end }\n"
        "local b = layer \"b\" { forward = function(x) return x + kept end }\n"
        HEAD "conv { channels = 3, kernel = 5 }, a {}, b {}, dense {}," TAIL;
    cr_assert_neq(rc_spec_load_string("t.lua", text, &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua:3: layer 3 (b): add: argument 2 is a tensor of another layer's build"), "%s", err);
}

Test(spec_layer, definition_errors_are_located_at_the_definition)
{
    static rc_ir ir;
    cr_assert_neq(rc_spec_load_string("t.lua", "local l = layer \"x\" { fwd = 1 }\n" HEAD "dense {}," TAIL,
                                      &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua:1: layer \"x\": unknown field 'fwd'"), "%s", err);
    cr_assert_neq(rc_spec_load_string("t.lua", "local l = layer \"x\" { params = 3 }\n" HEAD "dense {}," TAIL,
                                      &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua:1: layer \"x\": forward: missing"), "%s", err);
    cr_assert_neq(rc_spec_load_string("t.lua", "local l = layer \"a b\"\n" HEAD "dense {}," TAIL,
                                      &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua:1: layer: name 'a b'"), "%s", err);
    /* a tensor used outside any forward (the prelude's exp applied to a number) */
    cr_assert_neq(rc_spec_load_string("t.lua", "local y = exp(3)\n" HEAD "dense {}," TAIL,
                                      &ir, err, sizeof err), 0);
    cr_assert(strstr(err, "t.lua:1: exp: expected one field table"), "%s", err);
}

/* ------------------------------------------------------------------ malformed definitions */

typedef struct {
    char file[40];
    char want[200];
} bad_case;

static bad_case bad_cases[] = {
    {"shape_mismatch.lua", "shape_mismatch.lua:4: layer 2 (mix): conv2d: input has 3 channels, weight expects 4"},
    {"unknown_primitive.lua", "unknown_primitive.lua:3: layer 2 (leaky): undefined name 'leaky_relu': not a primitive"},
    {"param_without_init.lua", "param_without_init.lua:10: layer 2 (scaled): params: gain: init: missing"},
    {"not_differentiable.lua", "not_differentiable.lua:5: layer 2 (gate): gt: has no gradient, and lies on the gradient path"},
    {"sign_on_path.lua", "sign_on_path.lua:3: layer 2 (signed): sign: has no gradient"},
    {"recursion.lua", "recursion.lua:3: layer 2 (rec): stack overflow"},
    {"runaway_size.lua", "runaway_size.lua:3: layer 2 (big): expand: 7247757312 elements per sample, over the limit"},
    {"too_many_nodes.lua", "too_many_nodes.lua:4: layer 2 (deep): add: the graph has more than 4096 nodes"},
    {"runaway_forward.lua", "runaway_forward.lua:3: layer 2 (spin): spec exceeds the instruction limit"},
    {"unknown_option.lua", "unknown_option.lua:8: layer 2 (scaled): gian: unknown option"},
    {"update_in_eval.lua", "update_in_eval.lua:4: layer 2 (track): update: state changes only in training"},
    {"bad_return.lua", "bad_return.lua:9: layer 2 (flat): forward: must return a (B, C, H, W) tensor, got (B,432)"},
    {"name_clash.lua", "name_clash.lua:11: layer 2 (gains): params: names 'gain' and 'on.gain' clash"},
};
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

ParameterizedTestParameters(spec_layer, bad_definition)
{
    return cr_make_param_array(bad_case, bad_cases, N_BAD);
}

ParameterizedTest(bad_case *c, spec_layer, bad_definition)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/bad_specs/def/%s", RC_SRC_DIR, c->file);
    kit_out r = kit_rc("check '%s'", path);
    cr_assert_eq(r.status, 1, "%s: exit %d, stderr: %s", c->file, r.status, r.err);
    cr_assert_str_empty(r.out, "%s printed to stdout: %s", c->file, r.out);
    int lines = 0;
    for (const char *s = r.err; *s; s++) lines += *s == '\n';
    cr_assert_eq(lines, 1, "%s: not one line: %s", c->file, r.err);
    cr_assert(strstr(r.err, path), "%s: message does not name the file: %s", c->file, r.err);
    cr_assert(strstr(r.err, c->want), "%s: got: %s  want: %s", c->file, r.err, c->want);
    kit_out_free(&r);
}

Test(spec_layer, every_bad_definition_fixture_has_an_expectation)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bad_specs/def", RC_SRC_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".lua")) continue;
        int found = 0;
        for (size_t i = 0; i < N_BAD; i++) found |= !strcmp(bad_cases[i].file, e->d_name);
        cr_assert(found, "fixture %s has no expected message in test_spec_layer.c", e->d_name);
        n++;
    }
    closedir(d);
    cr_assert_eq(n, N_BAD, "the table lists fixtures that do not exist");
}

/* ------------------------------------------------------------------ the examples train */

Test(spec_layer, examples_train_an_epoch_on_the_reference_backend, .fini = kit_cleanup)
{
    char dir[256], data[400];
    kit_tmpdir(dir, sizeof dir, "rc_spec_layer");
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    cr_assert_eq(tiny_retina_write(data, 3, 600, 200, 3), 0, "writing the tiny recording");
    static const char *const specs[] = {"psoftplus", "divnorm", "exp_poisson"};
    for (int i = 0; i < 3; i++) {
        kit_out r = kit_rc_all("train %s/specs/%s.lua --data %s -o %s/%s --epochs 1 --backend ref "
                               "--threads 1 -q", RC_SRC_DIR, specs[i], data, dir, specs[i]);
        cr_assert_eq(r.status, 0, "%s: train failed:\n%s", specs[i], r.out);
        cr_assert(strstr(r.out, "\nmean"), "%s: no metric table:\n%s", specs[i], r.out);
        kit_out_free(&r);
    }
}
