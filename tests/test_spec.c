/* test_spec.c — the Lua spec front end (compiler/frontend/spec.c): shipped specs against the reference
 * shapes/parameter counts/FLOPs, field mapping, the canonical hash (invariant under formatting,
 * sensitive to meaning), the IR text round trip, the sandbox, and error locations. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir.h"
#include "kit.h"
#include "spec.h"

static rc_ir *load_file(const char *rel, int cells)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", RC_SRC_DIR, rel);
    rc_ir *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    char err[1024];
    cr_assert_eq(rc_spec_load(path, ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(ir, cells, path, err, sizeof err), 0, "%s", err);
    return ir;
}

/* Load a spec text; returns the rc of the load (and infer when load_only == 0). */
static int load_text(const char *text, rc_ir *ir, char *err, size_t n)
{
    int rc = rc_spec_load_string("t.lua", text, ir, err, n);
    if (rc == 0) rc = rc_ir_infer(ir, 5, "t.lua", err, n);
    return rc;
}

static void hash_of(const char *text, char hex[65])
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    cr_assert_eq(load_text(text, ir, err, sizeof err), 0, "%s\n--- spec:\n%s", err, text);
    rc_ir_hash(ir, hex);
    free(ir);
}

static void expect_error(const char *text, const char *want)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024] = "";
    cr_assert_neq(load_text(text, ir, err, sizeof err), 0, "spec accepted:\n%s", text);
    cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
    cr_assert_null(strchr(err, '\n'), "error is not one line: %s", err);
    free(ir);
}

/* ---------------------------------------------------------------- shipped specs */

Test(spec, bncnn_matches_reference)
{
    rc_ir *ir = load_file("specs/bncnn.lua", 5);
    cr_assert_str_eq(ir->name, "bncnn");
    cr_assert_eq(ir->n_layers, 11);
    static const char *const kinds[] = {"conv", "batchnorm", "noise", "relu", "conv", "batchnorm",
                                        "noise", "relu", "dense", "batchnorm", "softplus"};
    for (int i = 0; i < 11; i++) {
        const rc_layer *l = &ir->layers[i];
        const char *k = l->kind == RC_LAYER_ACT ? rc_act_name(l->act) : rc_layer_kind_name(l->kind);
        cr_assert_str_eq(k, kinds[i], "layer %d", i + 1);
        cr_assert_gt(l->spec_line, 0);
        if (l->kind == RC_LAYER_BATCHNORM) {
            cr_assert_eq(l->over, RC_BN_UNIT);
            cr_assert_float_eq(l->eps, 1e-3, 1e-15);
            cr_assert_float_eq(l->momentum, 0.01, 1e-15);
            cr_assert_eq(l->abs_scale, 0);
        }
        if (l->kind == RC_LAYER_NOISE) cr_assert_float_eq(l->std, 0.05, 1e-15);
    }
    cr_assert_eq(ir->layers[0].out.c, 8);
    cr_assert_eq(ir->layers[0].out.h, 36);
    cr_assert_eq(ir->layers[0].out.w, 36);
    cr_assert_eq(ir->layers[4].out.c, 8);
    cr_assert_eq(ir->layers[4].out.h, 26);
    cr_assert_eq(ir->layers[0].n_params, 72008);
    cr_assert_eq(ir->layers[4].n_params, 7752);      /* conv total 79,760 (reference §5.3) */
    cr_assert_eq(ir->layers[1].n_params + ir->layers[5].n_params, 31552);
    cr_assert_eq(ir->layers[8].n_params, 5408 * 5);
    cr_assert_eq(ir->layers[8].bias, 0);
    cr_assert_eq(ir->layers[8].units, 0);
    cr_assert_eq(ir->layers[10].out.c, 5);
    double mflop = ir->flops_fwd / 1e6;
    cr_assert(mflop > 196 && mflop < 199, "forward %g MFLOP, reference about 197", mflop);
    /* training defaults: reference with lr 5e-3, l2 1e-3, l1 1e-4, batch 512 */
    cr_assert_eq(ir->train.loss, RC_LOSS_POISSON);
    cr_assert_eq(ir->train.optimizer, RC_OPT_ADAM);
    cr_assert_float_eq(ir->train.lr, 5e-3, 1e-15);
    cr_assert_float_eq(ir->train.l2, 1e-3, 1e-15);
    cr_assert_float_eq(ir->train.l1_activity, 1e-4, 1e-15);
    cr_assert_eq(ir->train.batch, 512);
    cr_assert_eq(ir->train.schedule, RC_SCHED_PLATEAU);
    free(ir);
}

Test(spec, stacked_bncnn_matches_reference)
{
    rc_ir *ir = load_file("specs/stacked_bncnn.lua", 5);
    cr_assert_eq(ir->n_layers, 11);
    const rc_layer *c1 = &ir->layers[0], *c2 = &ir->layers[4], *gc = &ir->layers[8];
    cr_assert_eq(c1->stack, 3);
    cr_assert_eq(c1->n_sub, 7);
    cr_assert_eq(c1->n_params, 6344);                /* reference §1.3 */
    cr_assert_float_eq(c1->stack_dropout, 0.05, 1e-15);
    cr_assert_eq(c1->out.h, 36);
    cr_assert_eq(c2->n_sub, 5);
    cr_assert_eq(c2->n_params, 2888);
    cr_assert_eq(c2->out.h, 26);
    for (int i = 1; i <= 5; i += 4) {
        cr_assert_eq(ir->layers[i].kind, RC_LAYER_BATCHNORM);
        cr_assert_eq(ir->layers[i].over, RC_BN_CHANNEL);
        cr_assert_eq(ir->layers[i].abs_scale, 1);
        cr_assert_eq(ir->layers[i].n_params, 16);
    }
    cr_assert_eq(gc->kind, RC_LAYER_GCCONV);
    cr_assert_eq(gc->kernel, 11);
    cr_assert_eq(gc->bias, 0);
    cr_assert_eq(gc->n_params, 5 * 8 * 11 * 11);
    cr_assert_eq(gc->out.c, 5);
    cr_assert_eq(ir->layers[9].abs_scale, 1);
    cr_assert_eq(ir->layers[9].n_params, 10);
    cr_assert_eq(ir->layers[10].act, RC_ACT_SOFTPLUS);
    free(ir);
}

Test(spec, nips_cnn_ln_tiny_shapes)
{
    rc_ir *ir = load_file("specs/nips_cnn.lua", 9);
    cr_assert_eq(ir->layers[0].out.c, 16);
    cr_assert_eq(ir->layers[0].out.h, 36);
    cr_assert_eq(ir->layers[3].out.c, 8);
    cr_assert_eq(ir->layers[3].out.h, 28);
    cr_assert_eq(ir->layers[6].n_params, 6272 * 9 + 9);
    cr_assert(ir->flops_fwd / 1e6 > 385 && ir->flops_fwd / 1e6 < 395, "%g", ir->flops_fwd / 1e6);
    free(ir);

    ir = load_file("specs/ln.lua", 4);
    cr_assert_eq(ir->params_total, 100000 * 4 + 4);
    cr_assert_eq(ir->layers[ir->n_layers - 1].act, RC_ACT_SOFTPLUS);
    free(ir);

    ir = load_file("specs/tiny.lua", 3);
    cr_assert_eq(ir->in.c, 8);
    cr_assert_eq(ir->in.h, 16);
    cr_assert_eq(ir->layers[0].out.h, 12);
    cr_assert_eq(ir->layers[2].out.h, 10);
    cr_assert_lt(ir->params_total, 5000);
    free(ir);
}

/* every shipped spec: canonical text -> parse -> same text, same inferred totals */
Test(spec, shipped_specs_round_trip)
{
    static const char *const specs[] = {"specs/bncnn.lua", "specs/nips_cnn.lua",
                                        "specs/stacked_bncnn.lua", "specs/ln.lua", "specs/tiny.lua"};
    for (int i = 0; i < 5; i++) {
        rc_ir *a = load_file(specs[i], 7);
        rc_ir *b = calloc(1, sizeof *b);
        char err[1024], ha[65], hb[65];
        char *t = rc_ir_format(a);
        cr_assert_not_null(t);
        cr_assert_eq(rc_ir_parse(b, t, specs[i], err, sizeof err), 0, "%s: %s", specs[i], err);
        char *t2 = rc_ir_format(b);
        cr_assert_str_eq(t, t2, "%s", specs[i]);
        rc_ir_hash(a, ha);
        rc_ir_hash(b, hb);
        cr_assert_str_eq(ha, hb);
        cr_assert_eq(rc_ir_infer(b, 7, specs[i], err, sizeof err), 0, "%s", err);
        cr_assert_eq(b->params_total, a->params_total, "%s", specs[i]);
        cr_assert_eq(b->state_total, a->state_total);
        cr_assert_float_eq(b->flops_fwd, a->flops_fwd, 1e-6);
        cr_assert_float_eq(b->flops_train, a->flops_train, 1e-6);
        free(t);
        free(t2);
        free(a);
        free(b);
    }
}

/* ---------------------------------------------------------------- hash */

static const char base_spec[] =
    "return model \"h\" {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  conv { channels = 3, kernel = 5 },\n"
    "  batchnorm { over = \"unit\" },\n"
    "  relu {},\n"
    "  conv { channels = 3, kernel = 3, schedule = { tile_h = 2 } },\n"
    "  relu {},\n"
    "  dense { bias = false },\n"
    "  softplus {},\n"
    "  train = { lr = 5e-3, batch = 16, milestones = { 2, 4 } },\n"
    "  search = { grid = { l2 = { 1e-4, 1e-3 } }, random = { trials = 3, lr = { 1e-4, 1e-2, log = true } } },\n"
    "}\n";

Test(spec, hash_ignores_formatting_comments_key_order_and_spelled_defaults)
{
    char h0[65], h1[65];
    hash_of(base_spec, h0);
    static const char *const same[] = {
        /* whitespace, comments, trailing separators */
        "-- a comment\n--[[ block\ncomment ]]\nreturn model \"h\"{input={history=8,height=16,width=16};"
        "conv{channels=3,kernel=5};batchnorm{over=\"unit\"};relu{};"
        "conv{channels=3,kernel=3,schedule={tile_h=2}};relu{};dense{bias=false};softplus{};"
        "train={lr=5e-3,batch=16,milestones={2,4}};"
        "search={grid={l2={1e-4,1e-3}},random={trials=3,lr={1e-4,1e-2,log=true}}}}",
        /* key order everywhere, sections after layers, numbers spelled differently */
        "return model \"h\" {\n"
        "  search = { random = { lr = { log = true, 0.0001, 0.01 }, trials = 3 }, grid = { l2 = { 0.0001, 0.001 } } },\n"
        "  train = { milestones = { 2, 4 }, batch = 16.0, lr = 0.005 },\n"
        "  conv { kernel = 5, channels = 3 },\n"
        "  batchnorm { over = \"unit\" },\n"
        "  relu {},\n"
        "  conv { schedule = { tile_h = 2 }, kernel = 3, channels = 3 },\n"
        "  relu {},\n"
        "  dense { bias = false },\n"
        "  softplus {},\n"
        "  input = { width = 16, height = 16, history = 8 },\n"
        "}\n",
        /* defaults written out; layers built by a helper and spliced from nested lists */
        "local function block(c, k, extra)\n"
        "  return { conv { channels = c, kernel = k, bias = true, period = 1, stack = 0, schedule = extra }, relu {} }\n"
        "end\n"
        "local first = block(3, 5)\n"
        "table.insert(first, 2, batchnorm { over = \"unit\", eps = 1e-3, momentum = 0.01, abs = false })\n"
        "return model \"h\" {\n"
        "  input = { history = 8, height = 16, width = 16, crop = 0 },\n"
        "  schedule = { threads = 0 },\n"
        "  first, { block(3, 3, { tile_h = 2, tile_w = 0 }) },\n"
        "  dense { bias = false, units = 0 }, softplus {},\n"
        "  train = { lr = 5e-3, batch = 16, milestones = { 2, 4 }, loss = \"poisson\", seed = 1 },\n"
        "  search = { grid = { l2 = { 1e-4, 1e-3 } }, random = { trials = 3, seed = 1, lr = { 1e-4, 1e-2, log = true } } },\n"
        "}\n",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        hash_of(same[i], h1);
        cr_assert_str_eq(h0, h1, "variant %zu changed the hash", i);
    }
}

/* Replace the first occurrence of `from` in base_spec by `to`. */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(base_spec, from);
    cr_assert_not_null(at, "'%s' not in base spec", from);
    size_t n = strlen(base_spec) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    cr_assert_not_null(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - base_spec), base_spec, to, at + strlen(from));
    return s;
}

Test(spec, hash_changes_with_meaning)
{
    static const char *const edits[][2] = {
        {"model \"h\"", "model \"h2\""},
        {"history = 8", "history = 9"},
        {"width = 16 }", "width = 16, crop = 14 }"},
        {"channels = 3, kernel = 5", "channels = 4, kernel = 5"},
        {"channels = 3, kernel = 5", "channels = 3, kernel = 5, bias = false"},
        {"channels = 3, kernel = 5", "channels = 3, kernel = 5, period = 2"},
        {"channels = 3, kernel = 5", "channels = 3, kernel = 5, stack = 3"},
        {"over = \"unit\"", "over = \"channel\""},
        {"over = \"unit\"", "over = \"unit\", abs = true"},
        {"over = \"unit\"", "over = \"unit\", momentum = 0.1"},
        {"relu {},\n  conv", "tanh {},\n  conv"},
        {"relu {},\n  conv", "relu {}, noise { std = 0.05 },\n  conv"},
        {"tile_h = 2", "tile_h = 4"},
        {"dense { bias = false }", "dense { bias = true }"},
        {"lr = 5e-3", "lr = 5.1e-3"},
        {"batch = 16", "batch = 16, loss = \"mse\""},
        {"milestones = { 2, 4 }", "milestones = { 2, 5 }"},
        {"batch = 16", "batch = 16, seed = 2"},
        {"l2 = { 1e-4, 1e-3 }", "l2 = { 1e-4, 1e-2 }"},
        {"trials = 3", "trials = 4"},
        {"log = true", "log = false"},
        {"  input = {", "  schedule = { threads = 2 },\n  input = {"},
    };
    char h0[65], h1[65];
    hash_of(base_spec, h0);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *s = edit(edits[i][0], edits[i][1]);
        hash_of(s, h1);
        cr_assert_str_neq(h0, h1, "edit '%s' -> '%s' kept the hash", edits[i][0], edits[i][1]);
        free(s);
    }
}

/* ---------------------------------------------------------------- field mapping */

Test(spec, fields_map_to_the_ir)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    const char *text =
        "return model \"m-1\" {\n"
        "  input = { history = 6, height = 20, width = 20, crop = 12 },\n"
        "  schedule = { threads = 2, vector = 8 },\n"
        "  conv { channels = 2, kernel = 3, period = \"full\", schedule = { tile_h = 5, tile_c = 2 } },\n"
        "  dropout { p = 0.25 },\n"
        "  conv { channels = 4, kernel = 5, stack = 3, stack_channels = 6, stack_dropout = 0.1, bias = false },\n"
        "  batchnorm { over = \"channel\", abs = true, eps = 1e-5, momentum = 0.1 },\n"
        "  noise { std = 0.2 }, requ {},\n"
        "  gcconv { kernel = 3, bias = false, position = \"reference\" },\n"
        "  exp {},\n"
        "  train = { loss = \"mse\", optimizer = \"adamw\", lr = 1e-3, l2 = 0, l1_activity = 2e-4,\n"
        "            l1_mode = \"sum\", batch = 64, epochs = 3, schedule = \"step\", sched_gamma = 0.5,\n"
        "            milestones = { 1, 2 }, early_patience = 0, seed = 123456789012, val_fraction = 0.2,\n"
        "            val_split = \"random\" },\n"
        "  search = { random = { trials = 5, seed = 9, lr = { 1e-4, 1e-2, log = true }, batch = { 16, 128 } },\n"
        "             grid = { sched_gamma = { 0.1, 0.5 } } },\n"
        "}\n";
    cr_assert_eq(load_text(text, ir, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(ir->name, "m-1");
    cr_assert_eq(ir->history, 6);
    cr_assert_eq(ir->crop, 12);
    cr_assert_eq(ir->in.h, 12);
    cr_assert_eq(ir->sched.threads, 2);
    cr_assert_eq(ir->sched.vector, 8);
    const rc_layer *l = ir->layers;
    cr_assert_eq(l[0].period, 0);                    /* "full" */
    cr_assert_eq(l[0].sched.tile_h, 5);
    cr_assert_eq(l[0].sched.tile_c, 2);
    cr_assert_eq(l[0].spec_line, 4);
    const rc_param *w = rc_ir_find_param(ir, "1.conv.weight");
    cr_assert_not_null(w);
    cr_assert_eq(w->rank, 6);                        /* locally connected: a kernel per position */
    cr_assert_eq(w->dims[0], 10);
    cr_assert_float_eq(l[1].p, 0.25, 1e-15);
    cr_assert_eq(l[2].stack, 3);
    cr_assert_eq(l[2].stack_channels, 6);
    cr_assert_eq(l[2].n_sub, 2);
    cr_assert_eq(l[2].sub_cout[0], 6);
    cr_assert_eq(l[2].bias, 0);
    cr_assert_eq(l[3].over, RC_BN_CHANNEL);
    cr_assert_eq(l[3].abs_scale, 1);
    cr_assert_float_eq(l[3].eps, 1e-5, 1e-18);
    cr_assert_float_eq(l[4].std, 0.2, 1e-15);
    cr_assert_eq(l[5].kind, RC_LAYER_ACT);
    cr_assert_eq(l[5].act, RC_ACT_REQU);
    cr_assert_eq(l[5].spec_line, 8);
    cr_assert_eq(l[6].position, RC_POS_REFERENCE);
    cr_assert_eq(l[7].act, RC_ACT_EXP);
    const rc_train *t = &ir->train;
    cr_assert_eq(t->loss, RC_LOSS_MSE);
    cr_assert_eq(t->optimizer, RC_OPT_ADAMW);
    cr_assert_eq(t->l1_mode, RC_L1_SUM);
    cr_assert_eq(t->schedule, RC_SCHED_STEP);
    cr_assert_eq(t->n_milestones, 2);
    cr_assert_eq(t->milestones[1], 2);
    cr_assert_eq(t->early_patience, 0);
    cr_assert_eq(t->seed, 123456789012ULL);
    cr_assert_eq(t->val_split, RC_VAL_RANDOM);
    const rc_search *s = &ir->search;
    cr_assert_eq(s->trials, 5);
    cr_assert_eq(s->seed, 9);
    cr_assert_eq(s->n_dims, 3);
    /* canonical order: grid first, then random, each by key */
    cr_assert_str_eq(s->dims[0].key, "sched_gamma");
    cr_assert_eq(s->dims[0].is_random, 0);
    cr_assert_eq(s->dims[0].n_values, 2);
    cr_assert_str_eq(s->dims[1].key, "batch");
    cr_assert_eq(s->dims[1].is_random, 1);
    cr_assert_eq(s->dims[1].log_scale, 0);
    cr_assert_str_eq(s->dims[2].key, "lr");
    cr_assert_eq(s->dims[2].log_scale, 1);
    cr_assert_float_eq(s->dims[2].values[1], 1e-2, 1e-15);
    free(ir);
}

Test(spec, plain_lua_is_available)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    const char *text =
        "local layers = {}\n"
        "for i, k in ipairs({5, 3}) do\n"
        "  table.insert(layers, conv { channels = math.floor(7 / 2), kernel = k })\n"
        "  layers[#layers + 1] = relu {}\n"
        "end\n"
        "local name = string.format(\"%s_%d\", (\"Gen\"):lower(), #layers)\n"
        "assert(type(name) == \"string\" and tostring(1) == \"1\" and select('#', 1, 2) == 2)\n"
        "local r = math.random(1, 1000)\n"
        "return model (name) { input = { history = 8, height = 16, width = 16 }, layers, dense {} }\n";
    cr_assert_eq(load_text(text, ir, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(ir->name, "gen_4");
    cr_assert_eq(ir->n_layers, 5);
    cr_assert_eq(ir->layers[2].kernel, 3);
    /* math.random is seeded with a constant: the same spec always means the same model */
    const char *rnd = "return model \"r\" { input = { history = 8, height = 16, width = 16 },\n"
                      "  conv { channels = math.random(1, 50), kernel = 3 }, dense {} }\n";
    char h1[65], h2[65];
    hash_of(rnd, h1);
    hash_of(rnd, h2);
    cr_assert_str_eq(h1, h2);
    free(ir);
}

/* ---------------------------------------------------------------- errors and sandbox */

Test(spec, errors_name_line_layer_and_field)
{
    expect_error("return model \"x\" {\n input = {},\n\n conv { channels = 2, kernel = 3 },\n"
                 " relu {},\n dense { unitz = 3 },\n}\n",
                 "t.lua:6: layer 3 (dense): unitz: unknown field (did you mean 'units'?)");
    /* nested lists are numbered in order */
    expect_error("local b = { conv { channels = 2, kernel = 3 }, relu {} }\n"
                 "return model \"x\" { input = {}, b, { b, { tanh { alpha = 1 } } }, dense {} }\n",
                 "t.lua:2: layer 5 (tanh): alpha: unknown field");
    expect_error("return model \"x\" { input = { history = 8, height = 16, width = 16 },\n"
                 " conv { channels = 2, kernel = 3, schedule = { threads = 1.5 } }, dense {} }\n",
                 "t.lua:2: layer 1 (conv): schedule.threads: expected an integer, got 1.5");
    expect_error("return model \"x\" { input = { history = 8, height = 16, width = 16 },\n"
                 " conv { channels = 2, kernel = 3 },\n relu {},\n conv { channels = 2, kernel = 20 },\n"
                 " dense {} }\n",
                 "t.lua: layer 3 (conv): kernel: 20 is larger than its 14x14 input");
    expect_error("return model \"x\" { input = { hist = 8 }, dense {} }\n",
                 "t.lua:1: input: hist: unknown field (did you mean 'history'?)");
    expect_error("return model \"x\" { input = {}, dense {}, train = { batch = 0 } }\n",
                 "train: batch: must be in [1, 1048576], got 0");
    expect_error("return model \"x\" { input = {}, dense {}, train = { seed = -1 } }\n",
                 "train: seed: expected a non-negative integer, got -1");
    expect_error("return model \"x\" { input = {}, gcconv { bias = false } }\n",
                 "layer 1 (gcconv): kernel: missing (required");
    expect_error("return model \"x\" { input = {}, dense {}, search = { grid = { lr = { 1, 2, x = 3 } } } }\n",
                 "search: grid.lr: unknown field 'x'");
    expect_error("return model \"x\" { input = {}, dense {}, search = { grids = {} } }\n",
                 "search: grids: unknown field (did you mean 'grid'?)");
    expect_error("return model \"x\" { input = {}, dense {}, search = { grid = { batch = { 16, 0.5 } } } }\n",
                 "search: grid.batch[2]: expected an integer, got 0.5");
    expect_error("return model \"x\" { input = {}, dense {}, search = { random = { trials = 2, l2 = { 0, 1, log = true } } } }\n",
                 "search: random.l2: log = true needs lo > 0");
}

Test(spec, long_file_names_stay_whole_in_lua_errors)
{
    /* Lua shortens chunk names over 60 characters to "...tail"; messages must keep the name */
    char name[200];
    snprintf(name, sizeof name, "/a/very/long/directory/name/that/goes/on/and/on/and/on/forever/spec.lua");
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    cr_assert_neq(rc_spec_load_string(name, "local x = nil + 1\n", ir, err, sizeof err), 0);
    cr_assert(strncmp(err, name, strlen(name)) == 0, "%s", err);
    cr_assert(strstr(err, "spec.lua:1: attempt to perform arithmetic"), "%s", err);
    free(ir);
}

Test(spec, sandbox_removes_escapes)
{
    static const char *const probes[][2] = {
        {"return os.getenv('HOME')", "undefined name 'os'"},
        {"return io.open('/etc/passwd')", "undefined name 'io'"},
        {"return load('return 1')", "undefined name 'load'"},
        {"return require('os')", "undefined name 'require'"},
        {"return dofile('/etc/passwd')", "undefined name 'dofile'"},
        {"return loadfile('/etc/passwd')", "undefined name 'loadfile'"},
        {"return debug.getinfo(1)", "undefined name 'debug'"},
        {"return string.dump(print)", "undefined name 'print'"},
        {"return string.dump(tostring)", "field 'dump'"},
        {"return (''):dump()", "method 'dump'"},
        {"return getmetatable('').__index", "undefined name 'getmetatable'"},
        {"return setmetatable({}, {})", "undefined name 'setmetatable'"},
        {"return rawget(_G, 'os')", "undefined name 'rawget'"},
        {"return collectgarbage('count')", "undefined name 'collectgarbage'"},
        {"return pcall(error)", "undefined name 'pcall'"},
        {"return xpcall(error, error)", "undefined name 'xpcall'"},
        {"return coroutine.wrap(error)", "undefined name 'coroutine'"},
        {"return package.loaded", "undefined name 'package'"},
        {"return utf8.char(65)", "undefined name 'utf8'"},
        {"return _G.os", "undefined name 'os'"},
        {"return _ENV.io", "undefined name 'io'"},
        {"return string.gsub('a', 'a', 'b')", "field 'gsub'"},
        {"return table.move({}, 1, 2, 1)", "field 'move'"},
        {"return math.randomseed(1)", "field 'randomseed'"},
        {"return model 'x' { input = {}, dense {} } .. 1", "attempt to concatenate"},
        {"local l = conv { channels = 1, kernel = 1 }; return l.kind", "attempt to index"},
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        rc_ir *ir = calloc(1, sizeof *ir);
        char err[1024] = "";
        cr_assert_neq(rc_spec_load_string("probe.lua", probes[i][0], ir, err, sizeof err), 0,
                      "escaped: %s", probes[i][0]);
        cr_assert(strstr(err, probes[i][1]), "%s -> '%s' (want '%s')", probes[i][0], err, probes[i][1]);
        cr_assert(strncmp(err, "probe.lua", 9) == 0, "%s", err);
        free(ir);
    }
}

Test(spec, binary_chunks_are_refused)
{
    static const char chunk[] = "\x1bLuaT\x00\x19\x93\r\n\x1a\n\x04\x08\x08";
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    cr_assert_neq(rc_spec_load_string("bin.lua", chunk, ir, err, sizeof err), 0);
    cr_assert(strstr(err, "bin.lua") && strstr(err, "binary chunk"), "%s", err);
    free(ir);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Test(spec, runaway_and_huge_specs_stop_quickly, .timeout = 60)
{
    static const char *const probes[][2] = {
        {"while true do end", "t.lua:1: spec exceeds the instruction limit"},
        {"local function f() return f() end return f()", "instruction limit"},
        {"local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end", "memory limit"},
        {"local s = 'x' while true do s = s .. s end", "memory limit"},
        {"return string.rep('x', 1e12)", "memory limit"},
        {"return string.rep('', 1e15), string.rep('ab', 2^62)", "memory limit"},
        {"local t = {} t[1e9] = 1 return table.concat(t, ',', 1, 1e9)", "invalid value"},
        {"return table.unpack({}, 1, 1e8)", "too many results"},
        {"local function f(n) return 1 + f(n) end return f(1)", "stack overflow"},
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        rc_ir *ir = calloc(1, sizeof *ir);
        char err[1024] = "";
        double t0 = seconds();
        cr_assert_neq(rc_spec_load_string("t.lua", probes[i][0], ir, err, sizeof err), 0);
        double dt = seconds() - t0;
        cr_assert(strstr(err, probes[i][1]), "%s -> '%s' (want '%s')", probes[i][0], err, probes[i][1]);
        cr_assert_lt(dt, 15.0, "%s took %g s", probes[i][0], dt);
        free(ir);
    }
}

Test(spec, layers_cannot_be_forged)
{
    expect_error("return model \"x\" { input = {}, { kind = \"conv\", channels = 2, kernel = 3 }, dense {} }",
                 "layer 1: expected a layer, got a table with field");
    expect_error("return { name = \"x\", input = {}, dense {} }", "must end with");
    expect_error("return model \"x\" { input = {}, dense }", "layer 1: 'dense' needs a field table: write dense {}");
    expect_error("return model \"x\" { input = {}, 42 }", "layer 1: expected a layer such as conv { ... }, got 42");
    expect_error("return model { input = {} }", "model: write model \"name\" { ... }");
    expect_error("return model \"x\" ( 3 )", "model: write model \"name\"");
    expect_error("return model \"x\" { input = {}, dense {}, [true] = 1 }", "model: unexpected key of type boolean");
}

Test(spec, load_any_reads_canonical_ir_files)
{
    char path[512], dir[64];
    const char *ir_path = kit_path(kit_tmpdir(dir, sizeof dir, "rc_test_spec"), "ir_text");   /* no .lua */
    snprintf(path, sizeof path, "%s/specs/stacked_bncnn.lua", RC_SRC_DIR);
    rc_ir *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    char err[1024], ha[65], hb[65];
    cr_assert_eq(rc_spec_check(path, 5, a, err, sizeof err), 0, "%s", err);
    char *t = rc_ir_format(a);
    kit_write_text(ir_path, t);
    cr_assert_eq(rc_spec_check(ir_path, 5, b, err, sizeof err), 0, "%s", err);
    rc_ir_hash(a, ha);
    rc_ir_hash(b, hb);
    cr_assert_str_eq(ha, hb);
    cr_assert_eq(b->params_total, a->params_total);
    remove(ir_path);
    free(t);
    free(a);
    free(b);
}

Test(spec, check_adds_the_spec_line_to_inference_errors)
{
    char dir[64];
    const char *path = kit_path(kit_tmpdir(dir, sizeof dir, "rc_test_spec"), "spec");
    kit_write_text(path, "return model \"x\" {\n  input = { history = 4, height = 8, width = 8 },\n"
                         "  conv { channels = 2, kernel = 3 },\n\n  conv { channels = 2, kernel = 7 },\n"
                         "  dense {},\n}\n");
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024], want[256];
    cr_assert_neq(rc_spec_check(path, 5, ir, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s:5: layer 2 (conv): kernel: 7 is larger than its 6x6 input", path);
    cr_assert_str_eq(err, want);
    remove(path);
    free(ir);
}

Test(spec, messages_do_not_depend_on_lua_key_order)
{
    /* Lua's table order changes with its per-state hash seed; with several mistakes in one
     * table the message must still be the same every time (fields are checked in name order) */
    const char *text = "return model \"x\" { zeta = 1, input = {}, alpha = 2,\n"
                       "  conv { zz = 1, mm = 3, aa = 2, channels = 2, kernel = 3, bias = 0 },\n"
                       "  { q = 1, b = 2 }, dense {} }\n";
    const char *layer = "return model \"x\" { input = {},\n"
                        "  conv { zz = 1, mm = 3, aa = 2, channels = 2, kernel = 3, bias = 0 }, dense {} }\n";
    const char *plain = "return model \"x\" { input = {}, { q = 1, b = 2, [3] = 4 }, dense {} }\n";
    const char *search = "return model \"x\" { input = {}, dense {}, search = { random = { trials = 1, zz = {1, 2} },\n"
                         "  grid = { lr = { 1, 20 }, aa = { 1 } }, zgrid = {} } }\n";
    for (int i = 0; i < 40; i++) {
        expect_error(text, "t.lua:1: model: alpha: unknown field");
        expect_error(layer, "t.lua:2: layer 1 (conv): aa: unknown field");
        expect_error(plain, "layer 1: expected a layer, got a table with field 'b'");
        expect_error(search, "search: grid.aa: not a train field");
    }
}

Test(spec, garbage_near_the_memory_cap_is_collected)
{
    /* 150 MB allocated in total, about 40 MB live: the collector (and its emergency pass when
     * the cap refuses an allocation) keeps the spec under 64 MiB, and it loads */
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    const char *text = "local keep = {}\n"
                       "for i = 1, 150 do keep[i % 40] = string.rep('x', 1000000) .. i end\n"
                       "return model \"g\" { input = { history = 8, height = 16, width = 16 }, dense {} }\n";
    cr_assert_eq(load_text(text, ir, err, sizeof err), 0, "%s", err);
    free(ir);
}

/* ---------------------------------------------------------------- issue 16: time and determinism */

/* A loop of expensive C calls (the instruction hook sees one VM step per call) stops at the
 * wall-clock limit, within about one call of it. */
Test(spec, loops_of_expensive_c_calls_stop_at_the_time_limit)
{
    static const char *const probes[] = {
        /* string comparison: strcoll over 16 MB per '<' */
        "local a, b = string.rep('x', 1 << 24), string.rep('x', 1 << 24)\n"
        "local n = 0 while true do if a < b or a <= b then n = n + 1 end end\n",
        /* string.upper and string.format('%s') of 8 MB, and table.sort at its cap */
        "local s = string.rep('y', 1 << 23)\n"
        "local t = {} for i = 1, 100000 do t[i] = tostring((i * 7919) % 100003) end\n"
        "while true do local u = s:upper() local f = string.format('%s', s) table.sort(t) end\n",
    };
    setenv("RETINAC_SPEC_SECONDS", "2", 1);   /* the default (10 s) works alike, only slower */
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        rc_ir *ir = calloc(1, sizeof *ir);
        char err[1024] = "";
        double t0 = seconds();
        cr_assert_neq(rc_spec_load_string("slow.lua", probes[i], ir, err, sizeof err), 0);
        double dt = seconds() - t0;
        cr_assert(strstr(err, i == 0 ? "slow.lua:2: spec exceeds the time limit (2 s"
                                     : "slow.lua:3: spec exceeds the time limit (2 s"), "probe %zu: '%s'", i, err);
        cr_assert_lt(dt, 2 + 3.0, "probe %zu stopped after %.1f s", i, dt);
        cr_assert_gt(dt, 2 - 0.5, "probe %zu stopped early (%.1f s)", i, dt);
        free(ir);
    }
    expect_error("local t = {} for i = 1, 100001 do t[i] = i end table.sort(t)\n",
                 "table.sort: 100001 elements (a spec may sort at most 100000)");
}

/* The same spec text always means the same model: no addresses, a fixed pairs/next order. */
Test(spec, specs_are_deterministic)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    /* the name is built from the visiting order of pairs and next, and from tostring of a table */
    const char *text =
        "local t = { zeta = 1, alpha = 2, mid = 3, [10] = 4, [2] = 5, [true] = 6, [false] = 7, [1.5] = 8 }\n"
        "local order = {}\n"
        "for k, v in pairs(t) do order[#order + 1] = tostring(k) .. '=' .. v end\n"
        "local k, seen = next(t), {}\n"
        "while k ~= nil do seen[#seen + 1] = tostring(k) k = next(t, k) end\n"
        "assert(table.concat(seen, ',') == '1.5,2,10,alpha,mid,zeta,false,true', table.concat(seen, ','))\n"
        "assert(tostring({}) == 'table' and tostring(tostring) == 'function')\n"
        "assert(string.format('%s|%5.2f', {}, 1) == 'table| 1.00')\n"
        "return model 'det' { input = { history = 8, height = 16, width = 16 },\n"
        "  conv { channels = #table.concat(order, '_') % 7 + 1, kernel = 3 }, dense {} }\n";
    cr_assert_eq(load_text(text, ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir->layers[0].channels, (int)strlen("1.5=8_2=5_10=4_alpha=2_mid=3_zeta=1_false=7_true=6") % 7 + 1);
    free(ir);
    expect_error("return string.format('%p', {})", "%p is not allowed");
    expect_error("return string.format('%-20p', 'x')", "%p is not allowed");
    expect_error("for k in pairs({ [{}] = 1 }) do end", "pairs/next: a table with table keys has no fixed order");
    expect_error("return next({ [tostring] = 1 })", "a table with function keys");
}
