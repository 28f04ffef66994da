/* test_import.c — `retinac import` (issue 18): torch-deep-retina checkpoints read without Python.
 *
 * Fixtures: tests/fixtures/torch_import/, made by tests/make_import_fixtures.py from faithful
 * transcriptions of the reference's BNCNN, CNN, LinearStackedBNCNN and VaryModel (convgc,
 * GrabUnits quirk) classes at test size, saved by torch.save in the zip format (NAME.pt) and
 * the legacy pickle format (NAME_legacy.pt); expected.h5 holds a raw stimulus per model and
 * PyTorch's eval-mode output on it (normalized with the checkpoint's norm_stats); bad/ holds
 * malicious and malformed files.
 *
 * Checked:
 *   - every model in both formats imports, and retinac's predictions (library API, ref and c
 *     backends) equal PyTorch's within 1e-5 relative (max |diff| / max |y|);
 *   - the written run folder is usable by the analysis commands (rf), the spec by `check`;
 *   - --spec fills a given spec (the imported one: identical predictions) and refuses one whose
 *     architecture differs, naming the key; --norm supplies missing norm_stats;
 *   - every bad file exits 1 with one line naming what is wrong, writes no checkpoint, and the
 *     evil pickles run nothing (their payload would create a file);
 *   - the restricted unpickler directly: allow-listed values, memo cycles, and refusals
 *     (unknown global, truncation, bad memo index, opcodes that build objects).
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kit.h"
#include "pickle.h"
#include "retinac.h"

#define FIX RC_SRC_DIR "/tests/fixtures/torch_import"
#define REL_TOL 1e-5

static void read_f32(hid_t f, const char *name, float **out, hsize_t dims[2], int *rank)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "expected.h5: no %s", name);
    hid_t s = H5Dget_space(d);
    *rank = H5Sget_simple_extent_ndims(s);
    hsize_t dd[3] = {1, 1, 1};
    H5Sget_simple_extent_dims(s, dd, NULL);
    size_t n = 1;
    for (int i = 0; i < *rank; i++) n *= dd[i];
    dims[0] = dd[0];
    dims[1] = *rank > 1 ? dd[1] : 1;
    *out = malloc(n * sizeof **out);
    cr_assert(*out);
    cr_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0);
    H5Sclose(s);
    H5Dclose(d);
}

/* Max |a-b| / max |b| of predictions of the run in dir against PyTorch's, with backend be. */
static double pred_rel(const char *dir, const char *model, const char *be)
{
    hid_t f = H5Fopen(FIX "/expected.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    char name[128];
    float *frames, *y;
    hsize_t fd[2], yd[2];
    int fr, yr;
    snprintf(name, sizeof name, "%s/frames", model);
    read_f32(f, name, &frames, fd, &fr);
    snprintf(name, sizeof name, "%s/y_eval", model);
    read_f32(f, name, &y, yd, &yr);
    H5Fclose(f);
    char err[1024];
    retinac_model *m = retinac_open(dir, be, err, sizeof err);
    cr_assert(m, "%s: %s", dir, err);
    int hist, h, w, cells;
    retinac_shape(m, &hist, &h, &w, &cells);
    cr_assert_eq((hsize_t)cells, yd[1], "%s: %d cells, PyTorch %d", dir, cells, (int)yd[1]);
    cr_assert_eq(fd[0] - (hsize_t)hist, yd[0]);
    float *out = malloc(yd[0] * yd[1] * sizeof *out);
    cr_assert(retinac_predict(m, frames, (int64_t)fd[0], out, err, sizeof err) == 0, "%s", err);
    double dmax = 0, ymax = 0;
    for (hsize_t i = 0; i < yd[0] * yd[1]; i++) {
        dmax = fmax(dmax, fabs((double)out[i] - y[i]));
        ymax = fmax(ymax, fabs((double)y[i]));
    }
    retinac_close(m);
    free(out);
    free(frames);
    free(y);
    cr_assert_gt(ymax, 0);
    return dmax / ymax;
}

static const char *const models[] = {"bncnn", "cnn", "stacked", "vary_convgc"};

Test(import, every_model_both_formats_equals_pytorch, .timeout = 300)
{
    char dir[KIT_PATH_MAX];
    kit_tmpdir(dir, sizeof dir, "import");
    for (int i = 0; i < 4; i++)
        for (int legacy = 0; legacy < 2; legacy++) {
            const char *run = kit_path(dir, "%s%s", models[i], legacy ? "_legacy" : "");
            char out[4096];
            int st = kit_rc_text(out, sizeof out, "import " FIX "/%s%s.pt -o %s", models[i], legacy ? "_legacy" : "", run);
            cr_assert_eq(st, 0, "%s: %s", run, out);
            cr_assert(strstr(out, legacy ? "legacy format" : "zip format"), "%s", out);
            for (int b = 0; b < 2; b++) {
                const char *be = b ? "c" : "ref";
                double rel = pred_rel(run, models[i], be);
                cr_log_info("%s%s %s: max rel diff %.3g", models[i], legacy ? "_legacy" : "", be, rel);
                cr_assert_leq(rel, REL_TOL, "%s (%s): predictions differ from PyTorch by %.3g relative", run, be, rel);
            }
        }
}

Test(import, run_folder_works_with_analyses_and_spec_checks, .timeout = 300)
{
    char dir[KIT_PATH_MAX], out[8192];
    kit_tmpdir(dir, sizeof dir, "import");
    const char *run = kit_path(dir, "vary");
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/vary_convgc.pt -o %s", run), 0, "%s", out);
    char *spec = kit_read_text(kit_path(run, "spec.lua"));
    cr_assert(strstr(spec, "gcconv { kernel = 5, bias = false, position = \"reference\" }"), "%s", spec);
    cr_assert(strstr(spec, "stack = 3, stack_dropout = 0.05"), "%s", spec);
    cr_assert(strstr(spec, "batchnorm { over = \"channel\", abs = true, eps = 0.001, momentum = 0.01 }"), "%s", spec);
    free(spec);
    char *js = kit_read_text(kit_path(run, "import.json"));
    cr_assert(strstr(js, "\"sequential.4.convs.2.bias\": \"5.conv.bias\""), "%s", js);
    cr_assert(strstr(js, "\"model_type\": \"VaryModel\""), "%s", js);
    free(js);
    cr_assert_eq(kit_rc_text(out, sizeof out, "check %s/spec.lua --cells 4", run), 0, "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "rf %s -o %s/rf.h5 --samples 256", run, run), 0, "%s", out);
    /* a second import into the same folder is refused: it holds a run */
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/vary_convgc.pt -o %s", run), 1, "%s", out);
    cr_assert(strstr(out, "already holds a run"), "%s", out);
}

Test(import, spec_option_fills_or_refuses, .timeout = 300)
{
    char dir[KIT_PATH_MAX], out[8192];
    kit_tmpdir(dir, sizeof dir, "import");
    const char *a = kit_path(dir, "a"), *b = kit_path(dir, "b"), *c = kit_path(dir, "c");
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/stacked.pt -o %s", a), 0, "%s", out);
    /* the imported spec given back with --spec: the same model */
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/stacked_legacy.pt -o %s --spec %s/spec.lua", b, a), 0, "%s", out);
    cr_assert_leq(pred_rel(b, "stacked", "ref"), REL_TOL);
    /* an architecture that differs (plain instead of stacked convs) is refused, naming the key */
    char *spec = kit_read_text(kit_path(a, "spec.lua"));
    const char *stk = ", stack = 3, stack_dropout = 0.05";
    char *p = strstr(spec, stk);
    cr_assert(p, "%s", spec);
    memmove(p, p + strlen(stk), strlen(p + strlen(stk)) + 1);
    kit_write_text(kit_path(dir, "plain.lua"), spec);
    free(spec);
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/stacked.pt -o %s --spec %s/plain.lua", c, dir), 1, "%s", out);
    cr_assert(strstr(out, "sequential.0") && strstr(out, "sub-convs"), "%s", out);
    cr_assert_eq(kit_count_entries(c, NULL), -1, "a refused import left files in %s", c);
}

typedef struct { const char *file, *what; } bad_case;

Test(import, bad_files_refused_with_one_clear_line, .timeout = 120)
{
    static const bad_case cases[] = {
        {"evil_reduce.pt", "refuses to import posix.system"},
        {"evil_legacy.pt", "refuses to import posix.system"},
        {"whole_module.pt", "refuses to import __main__.BNCNN"},
        {"truncated.pt", "not a readable zip archive"},
        {"truncated_legacy.pt", "truncated"},
        {"missing_key.pt", "module sequential.8 has no running_var"},
        {"bad_shape.pt", "is hyps img_shape right?"},
        {"no_norm_stats.pt", "no norm_stats"},
        {"not_torch.pt", "not a PyTorch checkpoint"},
    };
    char dir[KIT_PATH_MAX], out[8192];
    kit_tmpdir(dir, sizeof dir, "import");
    const char *pwned = "/tmp/retinac_pwned";
    remove(pwned);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *run = kit_path(dir, "r%zu", i);
        kit_out r = kit_rc("import " FIX "/bad/%s -o %s", cases[i].file, run);
        cr_assert_eq(r.status, 1, "%s: exit %d: %s", cases[i].file, r.status, r.err);
        cr_assert(strstr(r.err, cases[i].what), "%s: message lacks '%s': %s", cases[i].file, cases[i].what, r.err);
        cr_assert(strstr(r.err, cases[i].file), "%s: the message does not name the file: %s", cases[i].file, r.err);
        cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "%s: more than one line: %s", cases[i].file, r.err);
        struct stat sb;
        cr_assert(stat(kit_path(run, "checkpoint.h5"), &sb) != 0, "%s: a checkpoint was written", cases[i].file);
        kit_out_free(&r);
    }
    struct stat sb;
    cr_assert(stat(pwned, &sb) != 0, "an evil pickle ran its payload");
    /* --norm supplies what the file lacks */
    const char *run = kit_path(dir, "norm");
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/bad/no_norm_stats.pt -o %s --norm 2.5,1.75", run), 0, "%s", out);
    cr_assert_leq(pred_rel(run, "bncnn", "ref"), REL_TOL);
    cr_assert_eq(kit_rc_text(out, sizeof out, "import " FIX "/bncnn.pt -o %s/x --norm 1,0", dir), 2, "%s", out);
}

/* ------------------------------------------------------------------ the unpickler itself */

static int load(const char *bytes, size_t n, rc_pk_arena *A, rc_pk **v, char *err, size_t errlen)
{
    memset(A, 0, sizeof *A);
    size_t used;
    return rc_pk_load(A, (const uint8_t *)bytes, n, &used, v, "t", err, errlen);
}

Test(pickle, plain_values_and_ordered_dict)
{
    /* {'a': [1, -2, 3.5, True, None], 'b': OrderedDict([('x', 'hi')]), 'n': -300} in protocol 2 */
    static const char p[] =
        "\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x88Ne"
        "X\x01\x00\x00\x00" "bccollections\nOrderedDict\nq\x03)Rq\x04X\x01\x00\x00\x00xX\x02\x00\x00\x00his"
        "X\x01\x00\x00\x00n\x8a\x02\xd4\xfeu.";
    rc_pk_arena A;
    rc_pk *v;
    char err[512];
    cr_assert_eq(load(p, sizeof p - 1, &A, &v, err, sizeof err), 0, "%s", err);
    rc_pk *a = rc_pk_dict_get(v, "a"), *b = rc_pk_dict_get(v, "b"), *n = rc_pk_dict_get(v, "n");
    cr_assert(a && a->kind == RC_PK_LIST && a->n == 5);
    cr_assert_eq(a->items[0]->i, 1);
    cr_assert_eq(a->items[1]->i, -2);
    cr_assert_eq(a->items[2]->f, 3.5);
    cr_assert(a->items[3]->kind == RC_PK_BOOL && a->items[3]->i == 1);
    cr_assert_eq(a->items[4]->kind, RC_PK_NONE);
    cr_assert(b && b->kind == RC_PK_DICT);
    cr_assert_str_eq(rc_pk_dict_get(b, "x")->s, "hi");
    cr_assert(n && n->kind == RC_PK_INT && n->i == -300, "%lld", n ? (long long)n->i : 0LL);
    rc_pk_arena_free(&A);
}

Test(pickle, memo_cycle_is_harmless)
{
    /* l = []; l.append(l) — the list contains itself through the memo */
    static const char p[] = "\x80\x02]q\x00h\x00" "a.";
    rc_pk_arena A;
    rc_pk *v;
    char err[512];
    cr_assert_eq(load(p, sizeof p - 1, &A, &v, err, sizeof err), 0, "%s", err);
    cr_assert(v->kind == RC_PK_LIST && v->n == 1 && v->items[0] == v);
    char d[64];
    rc_pk_describe(v, d, sizeof d);
    cr_assert_str_eq(d, "list of 1");
    rc_pk_arena_free(&A);
}

Test(pickle, refusals)
{
#define P(s) s, sizeof s - 1
    static const struct { const char *p; size_t n; const char *what; } cases[] = {
        {P("cos\nsystem\nX\x02\x00\x00\x00idR."), "refuses to import os.system"},
        {P("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."), "refuses to import builtins.eval"},
        {P("\x80\x02X\xff\xff\xff\x7f"), "truncated"},
        {P("\x80\x02h\x05."), "memo index 5 was never stored"},
        {P("\x80\x02(ccollections\nOrderedDict\n)\x81."), "builds an object"},
        {P("\x80\x02K\x01K\x02."), "STOP with 2 values"},
        {P("\x80\x02" "e."), "without MARK"},
        {P("\x80\x02\xff"), "unknown opcode 0xff"},
        {P("\x80\x09N."), "protocol 9"},
    };
#undef P
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rc_pk_arena A;
        rc_pk *v;
        char err[512];
        cr_assert_eq(load(cases[i].p, cases[i].n, &A, &v, err, sizeof err), -1, "case %zu loaded", i);
        cr_assert(strstr(err, cases[i].what), "case %zu: '%s' lacks '%s'", i, err, cases[i].what);
        cr_assert(!strncmp(err, "t: pickle: offset ", 18), "case %zu: %s", i, err);
        rc_pk_arena_free(&A);
    }
}
