/* test_codegen.c — the generated C (compiler/c/emit_c.c through the JIT backend) against the
 * reference backend (runtime/backend/ref.c): training forward (outputs and BN running state), backward
 * (every parameter tensor) and inference, for every layer kind and option and every shipped
 * spec at test size; plus determinism of generation, the rng.h text pasted into it, and one
 * kernel naming scheme across the C and CUDA modules.
 *
 * Models are compact canonical-IR text (fields left out keep their defaults). Agreement is the
 * L2-relative error per tensor, <= 1e-5. BN parameters and running statistics are randomized
 * (not the init's 1/0) so that the folds and affines are really exercised. JIT objects go to
 * the suite's cache ($RETINAC_CACHE_DIR from `make test`, else a temp dir) and are compiled
 * with -O1 to keep the suite fast (set before the first compile).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen_cmp.h"
#include "emit.h"
#include "emit_c.h"
#include "emit_cuda.h"
#include "ir.h"
#include "kit.h"
#include "model.h"
#include "spec.h"

TestSuite(codegen, .init = codegen_setup_env);

Test(codegen, conv_unit_bn_noise_relu_dense)
{
    rc_ir ir;
    build_ir(&ir, "history=5 height=14 width=13",
             "layer conv channels=4 kernel=5\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer relu\n"
             "layer conv channels=3 kernel=3\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer relu\n"
             "layer dense bias=false\nlayer batchnorm over=unit\nlayer softplus\n", 3);
    compare(&ir, 6, "bncnn-like");
}

Test(codegen, channel_abs_bn_dropout_acts)
{
    rc_ir ir;
    build_ir(&ir, "history=4 height=12 width=12",
             "layer conv channels=5 kernel=3\nlayer batchnorm over=channel abs=true\nlayer dropout p=0.3\nlayer tanh\n"
             "layer conv channels=3 kernel=4 bias=false\nlayer sigmoid\nlayer batchnorm over=channel\n"
             "layer dense units=7 bias=true\nlayer exp\nlayer dropout p=0.2\n"
             "layer dense bias=true\nlayer identity\n", 2);
    compare(&ir, 5, "channel BN, abs, dropout, tanh/sigmoid/exp");
}

Test(codegen, tiled_and_locally_connected)
{
    rc_ir ir;
    build_ir(&ir, "history=3 height=11 width=10",
             "layer conv channels=3 kernel=3 period=2\nlayer square\nlayer batchnorm over=channel\n"
             "layer conv channels=2 kernel=3 period=0 bias=true\nlayer requ\nlayer abs\n"
             "layer dense bias=false\n", 2);
    compare(&ir, 4, "tiled (period 2), locally connected, square/requ/abs");
}

Test(codegen, stacked_dropout_gcconv)
{
    rc_ir ir;
    build_ir(&ir, "history=4 height=16 width=15",
             "layer conv channels=3 kernel=5 stack=3 stack_dropout=0.2\nlayer batchnorm over=channel abs=true\n"
             "layer noise std=0.05\nlayer relu\n"
             "layer conv channels=3 kernel=4 stack=3 stack_channels=2\nlayer relu\n"
             "layer gcconv kernel=3 bias=true\nlayer batchnorm over=unit abs=true\nlayer softplus\n", 4);
    compare(&ir, 5, "stacked convs (dropout, uneven sub-kernels), gcconv");
}

Test(codegen, elementwise_first_layer_and_blocking_hints)
{
    rc_ir ir;
    build_ir(&ir, "history=3 height=9 width=21",
             "layer batchnorm over=unit\nlayer noise std=0.2\nlayer abs\n"
             "layer conv channels=7 kernel=2 schedule.tile_c=3 schedule.tile_h=2 schedule.tile_w=5 schedule.vector=8\n"
             "layer relu\nlayer conv channels=5 kernel=3 schedule.vector=4 schedule.threads=1\nlayer relu\n"
             "layer dense bias=true\nlayer softplus\n", 2);
    compare(&ir, 3, "elementwise first layer, schedule hints, remainder blocks");
}

/* Shipped specs at test size: the spec's structure with small frames and kernels. */
static void spec_small(const char *name, int hist, int hw, const int *kernels, int cells, int B)
{
    char path[512], err[512];
    rc_ir ir;
    snprintf(path, sizeof path, "%s/specs/%s.lua", RC_SRC_DIR, name);
    cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
    ir.history = hist;
    ir.height = ir.width = hw;
    ir.crop = 0;
    for (int i = 0, k = 0; i < ir.n_layers; i++)
        if (ir.layers[i].kind == RC_LAYER_CONV || ir.layers[i].kind == RC_LAYER_GCCONV) ir.layers[i].kernel = kernels[k++];
    cr_assert_eq(rc_ir_infer(&ir, cells, path, err, sizeof err), 0, "%s", err);
    compare(&ir, B, name);
}

Test(codegen, spec_bncnn) { int k[] = {5, 3}; spec_small("bncnn", 6, 14, k, 3, 19); }
Test(codegen, spec_nips_cnn) { int k[] = {5, 3}; spec_small("nips_cnn", 5, 13, k, 2, 4); }
Test(codegen, spec_stacked_bncnn) { int k[] = {5, 5, 3}; spec_small("stacked_bncnn", 4, 15, k, 3, 4); }
Test(codegen, spec_ln) { int k[] = {0}; spec_small("ln", 6, 10, k, 3, 5); }
Test(codegen, spec_tiny)
{
    char path[512], err[512];
    rc_ir ir;
    snprintf(path, sizeof path, "%s/specs/tiny.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 4, path, err, sizeof err), 0, "%s", err);
    compare(&ir, 6, "tiny");
}

Test(codegen, generation_is_deterministic_and_carries_the_header)
{
    char path[512], err[512];
    rc_ir ir;
    snprintf(path, sizeof path, "%s/specs/bncnn.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 5, path, err, sizeof err), 0, "%s", err);
    char *a = NULL, *b = NULL, hash[65];
    cr_assert_eq(rc_emit_c(&ir, "specs/bncnn.lua", &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_emit_c(&ir, "specs/bncnn.lua", &b, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(a, b, "two generations differ");
    rc_ir_hash(&ir, hash);
    cr_assert(strstr(a, "DO NOT EDIT"));
    cr_assert(strstr(a, RC_EMIT_VERSION));
    cr_assert(strstr(a, "specs/bncnn.lua"));
    cr_assert(strstr(a, hash));
    cr_assert(strstr(a, "schedule model"));
    /* the shapes are compile-time constants: the first conv's loops are spelled out */
    cr_assert(strstr(a, "for (int c = 0; c < 40; c++)"));
    free(a);
    free(b);
}

Test(codegen, rng_text_is_runtime_rng_h_verbatim)
{
    char path[512];
    snprintf(path, sizeof path, "%s/common/rng.h", RC_SRC_DIR);
    char *buf = kit_read_text(path);
    cr_assert_str_eq(rc_emit_rng_text(), buf, "compiler/emit.c's copy of rng.h is stale: update rng_text");
    free(buf);
}

/* The generated C of every shipped spec compiles warning-free under -Wall -Wextra -Werror
 * (golden-file rule: what is committed must build), also for a target without AVX-512. */
Test(codegen, generated_c_is_warning_free)
{
    static const char *const specs[] = {"bncnn", "nips_cnn", "stacked_bncnn", "ln", "tiny"};
    char path[512], err[512], tmp[64];
    kit_tmpdir(tmp, sizeof tmp, "retinac-gen");
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        rc_ir ir;
        snprintf(path, sizeof path, "%s/specs/%s.lua", RC_SRC_DIR, specs[i]);
        cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_ir_infer(&ir, 5, path, err, sizeof err), 0, "%s", err);
        char *src = NULL;
        cr_assert_eq(rc_emit_c(&ir, path, &src, err, sizeof err), 0, "%s", err);
        char file[600];
        snprintf(file, sizeof file, "%s/%s.c", tmp, specs[i]);
        kit_write_text(file, src);
        free(src);
        const char *march[2] = {"-march=native", "-march=x86-64-v3"};
        const kit_opts merged = {.merge = 1};
        for (int m = 0; m < 2; m++) {
            kit_out r = kit_cmd(&merged, "cc -std=c11 -Wall -Wextra -Werror -fopenmp %s -fsyntax-only '%s'", march[m], file);
            cr_expect_eq(r.status, 0, "%s (%s): %s", specs[i], march[m], r.out);
            kit_out_free(&r);
        }
        remove(file);
    }
}

/* "<phase>_l<layer>_<part>" (emit.h): phase forward|backward|infer, layer 1..n_layers, part of
 * lower-case letters, digits and '_'. Returns the layer (1-based) or 0. */
static int kernel_name_ok(const char *nm, int n_layers)
{
    static const char *const ph[] = {"forward_l", "backward_l", "infer_l"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(ph[i]);
        if (strncmp(nm, ph[i], n)) continue;
        const char *p = nm + n;
        int layer = 0;
        while (*p >= '0' && *p <= '9') layer = layer * 10 + (*p++ - '0');
        if (layer < 1 || layer > n_layers || *p++ != '_' || !*p) return 0;
        for (; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
        return layer;
    }
    return 0;
}

/* Every function of the generated C that is not a module helper (rcg_*, rc_rng_*), and every
 * CUDA kernel, follows the one naming scheme; every plain conv layer's forward, input-gradient,
 * weight-gradient and inference kernels, and every dense layer's forward and inference, have
 * the same names in both modules. */
Test(codegen, one_kernel_naming_scheme_for_c_and_cuda)
{
    static const char *const specs[] = {"bncnn", "nips_cnn", "stacked_bncnn", "ln", "tiny", "divnorm", "psoftplus",
                                        "exp_poisson"};
    char path[512], err[512];
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        static rc_ir ir;
        snprintf(path, sizeof path, "%s/specs/%s.lua", RC_SRC_DIR, specs[i]);
        cr_assert_eq(rc_spec_check(path, 5, &ir, err, sizeof err), 0, "%s", err);
        char *c = NULL, *cu = NULL;
        rc_cuda_plan plan;
        cr_assert_eq(rc_emit_c(&ir, path, &c, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_emit_cuda(&ir, path, &cu, &plan, err, sizeof err), 0, "%s", err);
        int nc = 0;
        for (const char *p = c; (p = strstr(p, "\nstatic ")); p++) {
            const char *q = p + 8;
            if (!strncmp(q, "inline ", 7)) q += 7;
            if (strncmp(q, "void ", 5)) continue;
            q += 5;
            char nm[96];
            size_t n = strcspn(q, "(\n ");
            cr_assert_lt(n, sizeof nm);
            memcpy(nm, q, n);
            nm[n] = 0;
            if (!strncmp(nm, "rcg_", 4) || !strncmp(nm, "rc_rng_", 7)) continue;
            cr_expect(kernel_name_ok(nm, ir.n_layers), "%s: C function %s is outside the naming scheme", specs[i], nm);
            nc++;
        }
        cr_expect_gt(nc, 0, "%s: no C kernels found", specs[i]);
        cr_expect_gt(plan.n_kernels, 0);
        for (int k = 0; k < plan.n_kernels; k++)
            cr_expect(kernel_name_ok(plan.kernels[k], ir.n_layers), "%s: CUDA kernel %s is outside the naming scheme",
                      specs[i], plan.kernels[k]);
        for (int li = 0; li < ir.n_layers; li++) {
            const rc_layer *L = &ir.layers[li];
            static const struct { rc_phase ph; const char *part; } conv[] = {
                {RC_PHASE_FORWARD, "conv"}, {RC_PHASE_BACKWARD, "conv_dx"}, {RC_PHASE_BACKWARD, "conv_dw"},
                {RC_PHASE_INFER, "conv"}}, dense[] = {{RC_PHASE_FORWARD, "dense"}, {RC_PHASE_INFER, "dense"}};
            int plain = L->kind == RC_LAYER_CONV && !L->stack && L->period == 1;
            int n = plain ? 4 : L->kind == RC_LAYER_DENSE ? 2 : 0;
            for (int j = 0; j < n; j++) {
                if (plain && j == 1 && li == 0) continue;   /* layer 1 has no input gradient */
                char nm[80], call[96];
                rc_kernel_name(nm, sizeof nm, plain ? conv[j].ph : dense[j].ph, li, plain ? conv[j].part : dense[j].part);
                snprintf(call, sizeof call, " %s(", nm);
                cr_expect(strstr(c, call), "%s: C module lacks %s", specs[i], nm);
                cr_expect(strstr(cu, call), "%s: CUDA module lacks %s", specs[i], nm);
            }
        }
        rc_cuda_plan_free(&plan);
        free(c);
        free(cu);
    }
}
