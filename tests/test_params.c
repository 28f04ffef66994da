/* test_params.c — spec parameters (compiler/frontend/spec_params.c): `params {...}` defaults and
 * overrides of each type, every refusal (unknown or repeated override, wrong type, undeclared
 * read, train-field names, IR files), search dims over parameters (grid of numbers and strings,
 * integer random draws, names, IR text round trip) and the trial parameter list. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "kit.h"
#include "search.h"
#include "spec.h"

static const char *const family =
    "local p = params { ch = 4, k1 = 9, act = \"relu\", bn = true, scale = 0.5 }\n"
    "local body = { conv { channels = p.ch, kernel = p.k1 } }\n"
    "if p.bn then body[#body + 1] = batchnorm { over = \"unit\" } end\n"
    "body[#body + 1] = (p.act == \"relu\") and relu {} or softplus {}\n"
    "return model \"fam\" {\n"
    "  input = { history = 5, height = 20, width = 20 },\n"
    "  body, noise { std = p.scale }, dense {}, softplus {},\n"
    "  search = { grid = { lr = {1e-3, 1e-2}, params = { k1 = {5, 9}, act = {\"relu\", \"softplus\"} } },\n"
    "             random = { trials = 3, params = { ch = {2, 6} } } },\n"
    "}\n";

static char dir[256];

static const char *write_spec(const char *name, const char *text)
{
    if (!dir[0]) kit_tmpdir(dir, sizeof dir, "params");
    const char *p = kit_path(dir, "%s", name);
    kit_write_text(p, text);
    return p;
}

/* Load with overrides "a=1", ...; returns the rc, the message in err. */
static int load(const char *path, rc_ir *ir, char *err, size_t n, int n_ov, const char *const *ov)
{
    rc_spec_override o[8];
    char buf[8][64];
    for (int i = 0; i < n_ov; i++) {
        snprintf(buf[i], sizeof buf[i], "%s", ov[i]);
        char *eq = strchr(buf[i], '=');
        *eq = 0;
        o[i].name = buf[i];
        o[i].value = eq + 1;
    }
    int rc = rc_spec_load_params(path, o, n_ov, ir, err, n);
    if (rc == 0) rc = rc_ir_infer(ir, 3, path, err, n);
    return rc;
}

static rc_ir *ir_new(void)
{
    rc_ir *ir = calloc(1, sizeof *ir);
    cr_assert_not_null(ir);
    return ir;
}

Test(params, defaults_and_overrides_of_each_type)
{
    const char *p = write_spec("fam.lua", family);
    rc_ir *a = ir_new(), *b = ir_new();
    char err[1024];
    cr_assert_eq(load(p, a, err, sizeof err, 0, NULL), 0, "%s", err);
    cr_assert_eq(a->layers[0].channels, 4);
    cr_assert_eq(a->layers[0].kernel, 9);
    cr_assert_eq(a->layers[1].kind, RC_LAYER_BATCHNORM);
    cr_assert_eq(a->layers[2].act, RC_ACT_RELU);
    const char *ov[] = {"ch=7", "k1=3", "act=softplus", "bn=false", "scale=0.25"};
    cr_assert_eq(load(p, b, err, sizeof err, 5, ov), 0, "%s", err);
    cr_assert_eq(b->layers[0].channels, 7);
    cr_assert_eq(b->layers[0].kernel, 3);
    cr_assert_eq(b->layers[1].kind, RC_LAYER_ACT, "bn=false drops the batchnorm");
    cr_assert_eq(b->layers[1].act, RC_ACT_SOFTPLUS);
    cr_assert_float_eq(b->layers[2].std, 0.25, 0);
    char ha[65], hb[65];
    rc_ir_hash(a, ha);
    rc_ir_hash(b, hb);
    cr_assert_str_neq(ha, hb, "another model, another hash");
    free(a);
    free(b);
}

static void refused(const char *path, int n_ov, const char *const *ov, const char *want)
{
    rc_ir *ir = ir_new();
    char err[1024];
    cr_assert_neq(load(path, ir, err, sizeof err, n_ov, ov), 0, "loaded, expected '%s'", want);
    cr_assert(strstr(err, want), "message '%s' lacks '%s'", err, want);
    cr_assert(strstr(err, path), "message '%s' does not name the file", err);
    free(ir);
}

Test(params, overrides_refused)
{
    const char *p = write_spec("fam.lua", family);
    const char *unknown[] = {"chh=3"};
    refused(p, 1, unknown, "declares no parameter 'chh' (declared: act, bn, ch, k1, scale)");
    const char *twice[] = {"ch=3", "ch=4"};
    refused(p, 2, twice, "--param ch: given twice");
    const char *frac[] = {"ch=2.5"};
    refused(p, 1, frac, "--param ch=2.5: expected an integer");
    const char *word[] = {"scale=big"};
    refused(p, 1, word, "--param scale=big: expected a number");
    const char *inf[] = {"scale=inf"};
    refused(p, 1, inf, "expected a number");
    const char *yes[] = {"bn=yes"};
    refused(p, 1, yes, "--param bn=yes: expected true or false");
}

Test(params, declarations_refused)
{
    const char *none = write_spec("none.lua", "return model \"m\" { input = { history = 5, height = 9, "
                                  "width = 9 }, dense {}, softplus {} }\n");
    const char *ov[] = {"k=1"};
    refused(none, 1, ov, "--param k: the spec declares no parameters");
    refused(write_spec("twice.lua", "params { a = 1 }\nparams { b = 1 }\nreturn nil\n"), 0, NULL,
            "params: declared twice");
    refused(write_spec("lr.lua", "params { lr = 1 }\nreturn nil\n"), 0, NULL, "params: 'lr' is a train field");
    refused(write_spec("tab.lua", "params { a = {} }\nreturn nil\n"), 0, NULL,
            "params: a: a default is a number, a string or a boolean, got table");
    refused(write_spec("typo.lua", "local p = params { ch = 4 }\nlocal c = p.chh\nreturn nil\n"), 0, NULL,
            "params: no parameter 'chh' (declared: ch)");
    refused(write_spec("ro.lua", "local p = params { ch = 4 }\np.new = 1\nreturn nil\n"), 0, NULL,
            "read-only");
}

Test(params, ir_file_takes_no_parameters)
{
    const char *p = write_spec("fam.lua", family);
    rc_ir *ir = ir_new();
    char err[1024];
    cr_assert_eq(load(p, ir, err, sizeof err, 0, NULL), 0, "%s", err);
    char *text = rc_ir_format(ir);
    const char *irp = write_spec("fam.ir", text);
    free(text);
    const char *ov[] = {"ch=3"};
    refused(irp, 1, ov, "takes no parameters");
    free(ir);
}

Test(params, search_over_parameters)
{
    const char *p = write_spec("fam.lua", family);
    rc_ir *ir = ir_new();
    char err[1024];
    cr_assert_eq(load(p, ir, err, sizeof err, 0, NULL), 0, "%s", err);
    const rc_search *s = &ir->search;
    cr_assert_eq(s->n_dims, 4);
    /* grid dims by key, then random: lr, param.act, param.k1 | param.ch */
    cr_assert_str_eq(s->dims[0].key, "lr");
    cr_assert_str_eq(s->dims[1].key, "param.act");
    cr_assert(s->dims[1].is_string);
    cr_assert_str_eq(s->dims[1].strs[1], "softplus");
    cr_assert_str_eq(s->dims[2].key, "param.k1");
    cr_assert(s->dims[2].is_int && !s->dims[2].is_string);
    cr_assert_str_eq(s->dims[3].key, "param.ch");
    cr_assert(s->dims[3].is_random && s->dims[3].is_int);
    rc_search_trial *t = NULL;
    int n = 0;
    cr_assert_eq(rc_search_expand(s, &ir->train, &t, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 2 * 2 * 2 * 3);
    cr_assert_str_eq(t[0].name, "lr-0.001_act-relu_k1-5_r0_ch-" "4", "got %s", t[0].name);
    for (int i = 0; i < n; i++) {
        double ch = t[i].values[3];
        cr_assert(ch == floor(ch) && ch >= 2 && ch <= 6, "integer draw in [2, 6], got %g", ch);
        cr_assert_float_eq(t[i].train.lr, t[i].values[0], 0, "train fields still applied");
        rc_spec_override ov[8];
        char vals[8][RC_PARAM_STR_MAX + 16];
        cr_assert_eq(rc_search_trial_params(s, &t[i], ov, 8, vals), 3);
        cr_assert_str_eq(ov[0].name, "act");
        cr_assert_str_eq(ov[0].value, (i / 6) % 2 ? "softplus" : "relu");
    }
    /* the canonical text keeps the dims (int, str) and reads back to the same text */
    char *text = rc_ir_format(ir);
    cr_assert(strstr(text, "search.dim param.act grid str relu,softplus\n"), "%s", text);
    cr_assert(strstr(text, "search.dim param.k1 grid int 5,9\n"), "%s", text);
    cr_assert(strstr(text, "search.dim param.ch random int 2,6\n"), "%s", text);
    rc_ir *back = ir_new();
    rc_ir_defaults(back);
    cr_assert_eq(rc_ir_parse(back, text, "fam.ir", err, sizeof err), 0, "%s", err);
    char *text2 = rc_ir_format(back);
    cr_assert_str_eq(text, text2);
    free(text);
    free(text2);
    free(back);
    free(t);
    free(ir);
}

Test(params, search_dims_refused)
{
    static const char *const head =
        "local p = params { ch = 4, act = \"relu\" }\n"
        "return model \"m\" { input = { history = 5, height = 9, width = 9 },\n"
        "  conv { channels = p.ch, kernel = 3 }, relu {}, dense {}, softplus {},\n";
    char text[1024];
    struct { const char *search, *want; } cases[] = {
        {"grid = { params = { chh = {1, 2} } }", "grid.params.chh: not a parameter of this spec (declared with params {...}: act, ch)"},
        {"grid = { params = { ch = {1.5} } }", "grid.params.ch[1]: expected an integer"},
        {"grid = { params = { act = {\"relu\", 3} } }", "grid.params.act[2]: expected a string"},
        {"grid = { params = { act = {\"a b\"} } }", "a searched string is 1 to 31 of [A-Za-z0-9_.-]"},
        {"grid = { params = { act = {\"relu\", \"relu\"} } }", "listed twice"},
        {"random = { trials = 2, params = { act = {\"a\", \"b\"} } }", "string parameters are searched on a grid"},
        {"random = { trials = 2, params = { ch = {6, 2} } }", "range needs lo < hi"},
        {"grid = { params = { ch = {2} } }, random = { trials = 2, params = { ch = {2, 6} } }", "'ch' is searched twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s  search = { %s },\n}\n", head, cases[i].search);
        refused(write_spec("bad.lua", text), 0, NULL, cases[i].want);
    }
}
