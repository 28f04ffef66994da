/* test_nvrtc.c — compile-only checks of the CUDA renderer without a GPU, plus emulated runs.
 *
 * - every shipped spec (every .lua in specs/, 5 cells) and every test-size case of tests/cuda_cases.h
 *   renders, compiles with NVRTC for sm_80 and sm_90 with 0 spill bytes in the ptxas report,
 *   and its CUBIN (an ELF we read here) exports every kernel of the plan as a global function;
 * - the utility kernels (Adam, loss) compile the same way;
 * - the JIT cache returns identical bytes on a hit; a device newer than NVRTC gets PTX;
 *   a compile error returns the options, the numbered source and the log, and keeps the .cu;
 * - the text of common/rng.h pasted into generated sources is the file's;
 * - generated kernels run on the host emulation of the device (tests/cuda_emu.h) and agree
 *   with the reference backend on a training step and on inference (1e-4 relative).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_cases.h"
#include "cuda_emu.h"
#include "emit_cuda.h"
#include "kit.h"
#include "lower.h"
#include "rc_nvrtc.h"
#include "spec.h"

/* ---------------------------------------------------------------- ELF symbols */

/* Does the ELF64 image export `name` as a global function? */
static int elf_has_func(const unsigned char *img, size_t n, const char *name)
{
    if (n < 64 || memcmp(img, "\177ELF", 4) || img[4] != 2) return 0;   /* ELF64 only */
    uint64_t shoff;
    uint16_t shentsize, shnum;
    memcpy(&shoff, img + 0x28, 8);
    memcpy(&shentsize, img + 0x3A, 2);
    memcpy(&shnum, img + 0x3C, 2);
    if (shoff + (uint64_t)shentsize * shnum > n || shentsize < 64) return 0;
    for (int i = 0; i < shnum; i++) {
        const unsigned char *sh = img + shoff + (uint64_t)i * shentsize;
        uint32_t type, link;
        uint64_t off, size, entsize;
        memcpy(&type, sh + 4, 4);
        if (type != 2) continue;                      /* SHT_SYMTAB */
        memcpy(&off, sh + 0x18, 8);
        memcpy(&size, sh + 0x20, 8);
        memcpy(&link, sh + 0x28, 4);
        memcpy(&entsize, sh + 0x38, 8);
        if (link >= shnum || entsize < 24 || off + size > n) return 0;
        const unsigned char *ss = img + shoff + (uint64_t)link * shentsize;
        uint64_t stroff, strsize;
        memcpy(&stroff, ss + 0x18, 8);
        memcpy(&strsize, ss + 0x20, 8);
        if (stroff + strsize > n) return 0;
        for (uint64_t k = 0; k + entsize <= size; k += entsize) {
            const unsigned char *sym = img + off + k;
            uint32_t nm;
            memcpy(&nm, sym, 4);
            unsigned char info = sym[4];
            if (nm >= strsize || (info >> 4) != 1 || (info & 0xf) != 2) continue;   /* GLOBAL FUNC */
            const char *s = (const char *)img + stroff + nm;
            if (!strncmp(s, name, strsize - nm) && strlen(name) < strsize - nm && !s[strlen(name)]) return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- compile checks */

static void check_compiles(const rc_ir *ir, const char *label)
{
    char err[1024];
    char *src = NULL;
    rc_cuda_plan plan;
    cr_assert_eq(rc_emit_cuda(ir, label, &src, &plan, err, sizeof err), 0, "%s: emit: %s", label, err);
    cr_assert_gt(plan.n_kernels, 0);
    cr_assert(strstr(src, "extern \"C\" __global__"), "%s: no extern C kernels", label);
    for (int arch = 80; arch <= 90; arch += 10) {
        rc_nvrtc_result res;
        int rc = rc_nvrtc_compile(src, label, arch, 0, &res, err, sizeof err);
        cr_assert_eq(rc, 0, "%s sm_%d: %s\n%s", label, arch, err, res.report ? res.report : "");
        cr_assert_not(res.is_ptx, "%s: sm_%d should be a real CUBIN", label, arch);
        int regs, ss, sl, st;
        int nk = rc_nvrtc_log_stats(res.log, &regs, &ss, &sl, &st);
        cr_expect_eq(nk, plan.n_kernels, "%s sm_%d: ptxas reported %d kernels, plan has %d", label, arch, nk,
                     plan.n_kernels);
        cr_expect_eq(ss, 0, "%s sm_%d: %d bytes spill stores\n%s", label, arch, ss, res.log);
        cr_expect_eq(sl, 0, "%s sm_%d: %d bytes spill loads\n%s", label, arch, sl, res.log);
        cr_expect_leq(regs, 255);
        for (int k = 0; k < plan.n_kernels; k++)
            cr_expect(elf_has_func(res.image, res.size, plan.kernels[k]), "%s sm_%d: CUBIN lacks %s", label, arch,
                      plan.kernels[k]);
        cr_expect_not(elf_has_func(res.image, res.size, "rc_no_such_kernel"));
        rc_nvrtc_result_free(&res);
    }
    free(src);
    rc_cuda_plan_free(&plan);
}

static void check_spec(const char *file)
{
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/specs/%s", RC_SRC_DIR, file);
    rc_ir *ir = malloc(sizeof *ir);
    cr_assert_not_null(ir);
    cr_assert_eq(rc_spec_load(path, ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(ir, 5, path, err, sizeof err), 0, "%s", err);
    check_compiles(ir, file);
    free(ir);
}

static void check_case(int k)
{
    char name[64], err[1024];
    rc_ir *ir = malloc(sizeof *ir);
    cr_assert_not_null(ir);
    cr_assert_eq(cc_build(k, ir, name, sizeof name, err, sizeof err), 0, "case %d: %s", k, err);
    check_compiles(ir, name);
    free(ir);
}

TestSuite(nvrtc, .timeout = 600);

Test(nvrtc, available) { cr_assert(rc_nvrtc_available(), "built without NVRTC"); }

Test(nvrtc, spec_bncnn) { check_spec("bncnn.lua"); }
Test(nvrtc, spec_nips_cnn) { check_spec("nips_cnn.lua"); }
Test(nvrtc, spec_stacked_bncnn) { check_spec("stacked_bncnn.lua"); }
Test(nvrtc, spec_ln) { check_spec("ln.lua"); }
Test(nvrtc, spec_tiny) { check_spec("tiny.lua"); }
Test(nvrtc, spec_psoftplus) { check_spec("psoftplus.lua"); }
Test(nvrtc, spec_divnorm) { check_spec("divnorm.lua"); }
Test(nvrtc, spec_exp_poisson) { check_spec("exp_poisson.lua"); }

/* Every shipped spec is covered by one of the tests above. */
Test(nvrtc, every_spec_listed)
{
    const char *known[] = {"bncnn.lua", "nips_cnn.lua", "stacked_bncnn.lua", "ln.lua", "tiny.lua",
                           "psoftplus.lua", "divnorm.lua", "exp_poisson.lua"};
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/specs", RC_SRC_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        const char *line = e->d_name;
        size_t l = strlen(line);
        if (line[0] == '.' || l < 5 || strcmp(line + l - 4, ".lua")) continue;
        int found = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) found |= !strcmp(known[k], line);
        cr_expect(found, "specs/%s has no NVRTC compile test in tests/test_nvrtc.c", line);
    }
    closedir(d);
}

Test(nvrtc, case_conv_bnunit) { check_case(0); }
Test(nvrtc, case_tiled) { check_case(1); }
Test(nvrtc, case_stacked_gcconv) { check_case(2); }
Test(nvrtc, case_ln) { check_case(3); }
Test(nvrtc, case_dropout_acts) { check_case(4); }
Test(nvrtc, case_bigkernel) { check_case(5); }
Test(nvrtc, case_kwtile_segments) { check_case(6); }
Test(nvrtc, case_dw_channel_chunks) { check_case(7); }
Test(nvrtc, case_defined_layers) { check_case(8); }
Test(nvrtc, case_lowered_defined_layers) { check_case(9); }

Test(nvrtc, util_kernels)
{
    char err[1024];
    for (int arch = 80; arch <= 90; arch += 10) {
        rc_nvrtc_result res;
        cr_assert_eq(rc_nvrtc_compile(rc_cuda_util_source(), "retinac_util.cu", arch, 0, &res, err, sizeof err), 0,
                     "%s", err);
        int regs, ss, sl, st;
        cr_expect_eq(rc_nvrtc_log_stats(res.log, &regs, &ss, &sl, &st), 2);
        cr_expect_eq(ss + sl, 0, "%s", res.log);
        cr_expect(elf_has_func(res.image, res.size, "rc_util_adam"));
        cr_expect(elf_has_func(res.image, res.size, "rc_util_loss"));
        rc_nvrtc_result_free(&res);
    }
}

/* ---------------------------------------------------------------- cache, PTX, errors */

static const char small_src[] =
    "extern \"C\" __global__ void rc_small(float *x) { x[threadIdx.x] *= 2.0f; }\n";

Test(nvrtc, cache_hit_identical)
{
    char dir[64], err[1024];
    kit_tmpdir(dir, sizeof dir, "rc_nvrtc_cache");
    setenv("RETINAC_CACHE_DIR", dir, 1);
    rc_nvrtc_result a, b;
    cr_assert_eq(rc_nvrtc_compile(small_src, "small.cu", 90, 1, &a, err, sizeof err), 0, "%s", err);
    cr_expect_not(a.cache_hit);
    cr_assert_eq(rc_nvrtc_compile(small_src, "small.cu", 90, 1, &b, err, sizeof err), 0, "%s", err);
    cr_expect(b.cache_hit);
    cr_assert_eq(a.size, b.size);
    cr_expect_eq(memcmp(a.image, b.image, a.size), 0, "cache returned different bytes");
    cr_expect(strstr(b.log, "Used "), "the cached log keeps the ptxas report: '%s'", b.log);
    cr_expect(strstr(b.path, dir), "entry %s is in the cache dir %s", b.path, dir);
    /* a different arch is a different entry */
    rc_nvrtc_result c;
    cr_assert_eq(rc_nvrtc_compile(small_src, "small.cu", 80, 1, &c, err, sizeof err), 0, "%s", err);
    cr_expect_not(c.cache_hit);
    rc_nvrtc_result_free(&a);
    rc_nvrtc_result_free(&b);
    rc_nvrtc_result_free(&c);
    cr_expect_eq(kit_rmtree(dir), 0);
}

Test(nvrtc, newer_device_gets_ptx)
{
    char err[1024];
    rc_nvrtc_result r;
    int mx = rc_nvrtc_max_arch();
    cr_assert_geq(mx, 90);
    cr_assert_eq(rc_nvrtc_compile(small_src, "small.cu", mx + 10, 0, &r, err, sizeof err), 0, "%s", err);
    cr_expect(r.is_ptx);
    cr_expect_eq(r.arch, mx);
    cr_expect(strstr((const char *)r.image, ".entry rc_small"), "PTX names the kernel");
    rc_nvrtc_result_free(&r);
}

Test(nvrtc, failure_report)
{
    char dir[64], err[1024];
    kit_tmpdir(dir, sizeof dir, "rc_nvrtc_fail");
    setenv("RETINAC_CACHE_DIR", dir, 1);
    const char *bad = "extern \"C\" __global__ void k(float *x)\n{\n    x[0] = undefined_thing;\n}\n";
    rc_nvrtc_result r;
    cr_assert_eq(rc_nvrtc_compile(bad, "bad.cu", 90, 1, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "undefined_thing"), "one-line error names the problem: %s", err);
    cr_assert_not_null(r.report);
    cr_expect(strstr(r.report, "--gpu-architecture=sm_90"), "report has the options");
    cr_expect(strstr(r.report, "00003      x[0] = undefined_thing;"), "report has the numbered source:\n%s", r.report);
    cr_expect(strstr(r.report, "bad.cu(3): error"), "report has the log:\n%s", r.report);
    FILE *f = fopen(r.path, "r");
    cr_expect_not_null(f, "the source is kept at %s", r.path);
    if (f) fclose(f);
    rc_nvrtc_result_free(&r);
    cr_expect_eq(kit_rmtree(dir), 0);
}

Test(nvrtc, rng_text_is_the_file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/common/rng.h", RC_SRC_DIR);
    char *buf = kit_read_text(path);
    cr_expect_str_eq(rc_cuda_rng_text(), buf, "compiler/cuda/emit_cuda_text.c's copy of rng.h is stale");
    free(buf);
}

Test(nvrtc, deterministic_source)
{
    char name[64], err[1024];
    rc_ir *ir = malloc(sizeof *ir);
    cr_assert_not_null(ir);
    cr_assert_eq(cc_build(2, ir, name, sizeof name, err, sizeof err), 0);
    char *a, *b;
    rc_cuda_plan pa, pb;
    cr_assert_eq(rc_emit_cuda(ir, "x.lua", &a, &pa, err, sizeof err), 0);
    cr_assert_eq(rc_emit_cuda(ir, "x.lua", &b, &pb, err, sizeof err), 0);
    cr_expect_str_eq(a, b);
    cr_expect_eq(pa.ws_b, pb.ws_b);
    free(a); free(b);
    rc_cuda_plan_free(&pa); rc_cuda_plan_free(&pb);
    free(ir);
}

/* ---------------------------------------------------------------- emulated numerics */

/* ir on the emulated device against the reference backend */
static void emu_compare(const rc_ir *ir, const char *name, int B)
{
    char err[1024];
    rc_cuda_dev *dev = emu_open();
    cr_assert_not_null(dev);
    rc_backend *be = NULL;
    cr_assert_eq(rc_cuda_backend_create_on(ir, dev, &be, err, sizeof err), 0, "%s: %s", name, err);
    cc_result r;
    cr_assert_eq(cc_compare(ir, be, B, 777, &r, err, sizeof err), 0, "%s: %s", name, err);
    cr_expect_leq(r.y_train, 1e-4, "%s: training output err %g", name, r.y_train);
    cr_expect_leq(r.state, 1e-4, "%s: running statistics err %g", name, r.state);
    cr_expect_leq(r.grads, 1e-4, "%s: gradient err %g (%s)", name, r.grads, r.worst_grad);
    cr_expect_leq(r.y_infer, 1e-4, "%s: inference err %g", name, r.y_infer);
    /* a backward with another batch than the forward's is refused */
    cr_expect_neq(be->train_backward(be, B + 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL), 0);
    rc_backend_destroy(be);
    rc_cuda_close(dev);
}

static void check_emu(int k, int B)
{
    char name[64], err[1024];
    rc_ir *ir = malloc(sizeof *ir);
    cr_assert_not_null(ir);
    cr_assert_eq(cc_build(k, ir, name, sizeof name, err, sizeof err), 0, "%s", err);
    emu_compare(ir, name, B);
    free(ir);
}

Test(emu, conv_bnunit_noise_dense, .timeout = 300) { check_emu(0, 3); }
Test(emu, tiled_conv, .timeout = 300) { check_emu(1, 3); }
Test(emu, stacked_bnchannel_gcconv, .timeout = 300) { check_emu(2, 3); }
Test(emu, ln_dense, .timeout = 300) { check_emu(3, 3); }
Test(emu, dropout_acts, .timeout = 300) { check_emu(4, 3); }
Test(emu, bigkernel_bnfirst, .timeout = 300) { check_emu(5, 3); }
Test(emu, kwtile_segments, .timeout = 300) { check_emu(6, 3); }
Test(emu, dw_channel_chunks, .timeout = 300) { check_emu(7, 3); }
/* A spec of prelude definitions, inferred for 3 cells, lowered (n_lowered layers) and run on the
 * CUDA kernels under emulation against the reference; *low gets the lowered view. */
static void emu_lowered(const char *spec, int n_lowered, const char *what, rc_ir *ir, rc_ir *low)
{
    char err[512];
    cr_assert_eq(rc_spec_load_string("p.lua", spec, ir, err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_ir_infer(ir, 3, "p.lua", err, sizeof err), 0, "%s: %s", what, err);
    cr_assert_eq(rc_ir_lower(ir, low, err, sizeof err), n_lowered, "%s: every layer lowered: %s", what, err);
    emu_compare(ir, what, 3);
}

/* A model written with the prelude's definitions only: every layer is lowered to the built-in
 * CUDA kernels (noise and dropout drawing from the defined layers' streams), against the
 * reference, which evaluates the graphs. */
Test(emu, prelude_model_lowered, .timeout = 300)
{
    static rc_ir ir, low;
    const char *t = "return model \"p\" { input = { history = 4, height = 12, width = 12 },\n"
                    "def.conv { channels = 4, kernel = 5 }, def.batchnorm { over = \"channel\", abs = true }, def.noise {},\n"
                    "def.relu {}, def.conv { channels = 3, kernel = 3 }, def.dropout { p = 0.2 }, def.tanh {},\n"
                    "def.dense {}, def.batchnorm {}, def.softplus {}, train = { batch = 4 } }\n";
    emu_lowered(t, 10, "prelude model", &ir, &low);
}

/* The prelude's stacked conv (dropout between the sub-convs: the graph's masks) and gcconv,
 * lowered to the built-in CUDA kernels, against the reference's graphs. */
Test(emu, prelude_stack_and_gcconv_lowered, .timeout = 300)
{
    static rc_ir ir, low;
    const char *t = "return model \"s\" { input = { history = 4, height = 12, width = 12 },\n"
                    "def.conv { channels = 4, kernel = 5, stack = 3, stack_dropout = 0.2 }, def.batchnorm {}, def.relu {},\n"
                    "def.conv { channels = 3, kernel = 3, stack = 2, stack_channels = 2 }, def.relu {},\n"
                    "def.gcconv { kernel = 3, position = \"center\" }, def.softplus {}, train = { batch = 4 } }\n";
    emu_lowered(t, 7, "prelude stack and gcconv", &ir, &low);
    cr_expect(low.layers[0].n_sub == 2 && low.layers[0].stack_dropout == 0.2 && low.layers[5].kind == RC_LAYER_GCCONV);
}

/* The prelude's tiled and locally connected convs, lowered to the built-in tiled CUDA kernels. */
Test(emu, prelude_tiled_and_local_lowered, .timeout = 300)
{
    static rc_ir ir, low;
    const char *t = "return model \"t\" { input = { history = 4, height = 12, width = 12 },\n"
                    "def.conv { channels = 3, kernel = 5, period = 2 }, def.relu {},\n"
                    "def.conv { channels = 2, kernel = 3, period = 0 }, def.relu {}, def.dense {}, def.softplus {},\n"
                    "train = { batch = 4 } }\n";
    emu_lowered(t, 6, "prelude tiled and local", &ir, &low);
}

Test(emu, lowered_defined_layers, .timeout = 300)
{
    rc_ir *ir = malloc(sizeof *ir), *low = malloc(sizeof *low);
    char name[64], err[512];
    cr_assert(ir && low);
    cr_assert_eq(cc_build(9, ir, name, sizeof name, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_lower(ir, low, err, sizeof err), 2, "both defined layers are the built-ins' forms: %s", err);
    free(ir);
    free(low);
    check_emu(9, 3);
}
