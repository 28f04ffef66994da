/* test_ir.c — IR core: sha256 vectors, shape inference and parameter counts against the
 * reference architectures, canonical text round trip and hash stability, layout invariants. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emit.h"
#include "ir.h"
#include "sha256.h"

Test(ir, sha256_vectors)
{
    char hex[65];
    rc_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    rc_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    rc_sha256_hex(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static rc_ir *add(rc_ir *ir, rc_layer_kind k, rc_act a)
{
    rc_layer *l = &ir->layers[ir->n_layers++];
    rc_layer_defaults(l, k);
    l->act = a;
    return ir;
}
#define LAST(ir) (&(ir)->layers[(ir)->n_layers - 1])

static void bncnn(rc_ir *ir, int stacked)
{
    rc_ir_defaults(ir);
    for (int i = 0; i < 2; i++) {
        add(ir, RC_LAYER_CONV, 0);
        LAST(ir)->channels = 8;
        LAST(ir)->kernel = i ? 11 : 15;
        LAST(ir)->stack = stacked ? 3 : 0;
        add(ir, RC_LAYER_BATCHNORM, 0);
        add(ir, RC_LAYER_NOISE, 0);
        add(ir, RC_LAYER_ACT, RC_ACT_RELU);
    }
    add(ir, RC_LAYER_DENSE, 0);
    LAST(ir)->bias = 0;
    add(ir, RC_LAYER_BATCHNORM, 0);
    add(ir, RC_LAYER_ACT, RC_ACT_SOFTPLUS);
}

Test(ir, bncnn_shapes_params_flops)
{
    rc_ir ir;
    char err[256];
    bncnn(&ir, 0);
    cr_assert_eq(rc_ir_infer(&ir, 5, "bncnn", err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir.layers[0].out.c, 8);
    cr_assert_eq(ir.layers[0].out.h, 36);
    cr_assert_eq(ir.layers[4].out.h, 26);
    cr_assert_eq(ir.layers[0].n_params, 72008);
    cr_assert_eq(ir.layers[1].n_params, 2 * 10368);
    cr_assert_eq(ir.layers[4].n_params, 7744 + 8);
    cr_assert_eq(ir.layers[8].n_params, 5408 * 5);
    cr_assert_eq(ir.params_total, 72008 + 2 * 10368 + 7752 + 2 * 5408 + 5408 * 5 + 2 * 5);
    cr_assert_eq(ir.state_total, 2 * (10368 + 5408 + 5));
    double mflop = ir.flops_fwd / 1e6;
    cr_assert(mflop > 195 && mflop < 200, "forward MFLOP %g", mflop);
    /* views tile the buffer exactly, in order */
    int64_t off = 0;
    for (int i = 0; i < ir.n_params; i++) {
        cr_assert_eq(ir.params[i].offset, off, "%s", ir.params[i].name);
        off += ir.params[i].count;
    }
    cr_assert_eq(off, ir.params_total);
    cr_assert_not_null(rc_ir_find_param(&ir, "1.conv.weight"));
    cr_assert_not_null(rc_ir_find_param(&ir, "2.batchnorm.running_var"));
}

Test(ir, stacked_params_match_reference)
{
    rc_ir ir;
    char err[256];
    bncnn(&ir, 1);
    cr_assert_eq(rc_ir_infer(&ir, 5, "s", err, sizeof err), 0, "%s", err);
    cr_assert_eq(ir.layers[0].n_sub, 7);
    cr_assert_eq(ir.layers[0].n_params, 6344);
    cr_assert_eq(ir.layers[4].n_sub, 5);
    cr_assert_eq(ir.layers[4].n_params, 2888);
    cr_assert_eq(ir.layers[4].out.h, 26);
}

Test(ir, canonical_roundtrip_and_hash)
{
    rc_ir a, b;
    char err[256], ha[65], hb[65];
    bncnn(&a, 1);
    a.train.n_milestones = 2;
    a.train.milestones[0] = 5;
    a.train.milestones[1] = 15;
    a.search.n_dims = 1;
    a.search.trials = 3;           /* random ranges need trials (the parser checks the search) */
    strcpy(a.search.dims[0].key, "lr");
    a.search.dims[0].is_random = 1;
    a.search.dims[0].log_scale = 1;
    a.search.dims[0].n_values = 2;
    a.search.dims[0].values[0] = 1e-4;
    a.search.dims[0].values[1] = 1e-2;
    char *t = rc_ir_format(&a);
    cr_assert_not_null(t);
    cr_assert_eq(rc_ir_parse(&b, t, "t", err, sizeof err), 0, "%s\n%s", err, t);
    char *t2 = rc_ir_format(&b);
    cr_assert_str_eq(t, t2);
    rc_ir_hash(&a, ha);
    rc_ir_hash(&b, hb);
    cr_assert_str_eq(ha, hb);
    b.train.lr = 0.0051;
    rc_ir_hash(&b, hb);
    cr_assert_str_neq(ha, hb);
    b.train.lr = a.train.lr;
    b.layers[3].act = RC_ACT_SOFTPLUS;
    rc_ir_hash(&b, hb);
    cr_assert_str_neq(ha, hb);
    free(t);
    free(t2);
}

Test(ir, errors_name_layer_and_field)
{
    rc_ir ir;
    char err[256];
    bncnn(&ir, 0);
    ir.layers[4].kernel = 40;
    cr_assert_eq(rc_ir_infer(&ir, 5, "m.lua", err, sizeof err), -1);
    cr_assert(strstr(err, "m.lua: layer 5 (conv): kernel:"), "%s", err);
    bncnn(&ir, 0);
    ir.n_layers -= 3;  /* ends on a conv stack: output is not per cell */
    cr_assert_eq(rc_ir_infer(&ir, 5, "m.lua", err, sizeof err), -1);
    cr_assert(strstr(err, "shape"), "%s", err);
    cr_assert_eq(rc_ir_parse(&ir, "retinac-ir 1\nlayer conv kernal=3\nend\n", "x.ir", err, sizeof err), -1);
    cr_assert(strstr(err, "kernal: unknown field"), "%s", err);
}

Test(ir, tiled_conv_layout)
{
    rc_ir ir;
    char err[256];
    rc_ir_defaults(&ir);
    ir.history = 4; ir.height = ir.width = 12;
    add(&ir, RC_LAYER_CONV, 0);
    LAST(&ir)->channels = 2; LAST(&ir)->kernel = 3; LAST(&ir)->period = 0;
    add(&ir, RC_LAYER_DENSE, 0);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t", err, sizeof err), 0, "%s", err);
    const rc_param *w = rc_ir_find_param(&ir, "1.conv.weight");
    cr_assert_eq(w->rank, 6);
    cr_assert_eq(w->dims[0], 10);
    cr_assert_eq(w->count, 10 * 10 * 2 * 4 * 9);
}

/* Issue 16: a model text read from a checkpoint is untrusted. Its name appears in generated C
 * (a comment) and in paths (generated/<model>/), so a name that could end the comment, climb
 * out of a directory or break a line is refused; so is a spec path that would end the comment. */
Test(ir, model_text_names_cannot_inject_code_or_paths)
{
    static const char *const bad[] = {
        "x*/ __attribute__((constructor)) static void p(void) {} /*", "../../etc", "a/b", "a b",
        "_x", "-x", "a\"b", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_ir ir;
        char text[512], err[256] = "";
        snprintf(text, sizeof text, "retinac-ir 1\nmodel %s\ninput history=4 height=8 width=8\nlayer dense\nend\n", bad[i]);
        cr_assert_eq(rc_ir_parse(&ir, text, "ck.h5:/model", err, sizeof err), -1, "accepted name '%s'", bad[i]);
        cr_assert(strstr(err, "ck.h5:/model:2: bad model name"), "'%s': %s", bad[i], err);
    }
    rc_ir ir;
    char err[256];
    cr_assert_eq(rc_ir_parse(&ir, "retinac-ir 1\nmodel ok_Name-2\ninput history=4 height=8 width=8\nlayer dense\nend\n",
                             "ok", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(ir.name, "ok_Name-2");
    /* the spec path is the user's and goes into the header comment: it cannot end it */
    cr_assert_eq(rc_ir_infer(&ir, 2, "ok", err, sizeof err), 0, "%s", err);
    rc_sb b = {0};
    rc_emit_header(&b, &ir, "specs/a*/int evil;/*\nb.lua", "c");
    char *h = rc_sb_finish(&b);
    cr_assert(h);
    const char *close = strstr(h, "*/");
    cr_assert(close && strstr(h, "specs/a* /int evil;/*?b.lua"), "%s", h);
    cr_assert(close > strstr(h, "evil"), "the spec path ended the header comment:\n%s", h);
    free(h);
}

/* Issue 16 (found by fuzz/fuzz_ir_text): a text that leaves out a required field (conv channels,
 * kernel) was accepted with the out-of-range default, and its canonical text
 * then failed to parse. The parser now applies the spec loader's rule: a default outside its
 * range marks a required field. Reproducer: fuzz/corpus/ir_text/regress-missing-required.ir. */
Test(ir, text_missing_required_fields_is_an_error)
{
    static rc_ir ir;
    char err[256] = "";
    cr_assert_eq(rc_ir_parse(&ir, "retinac-ir 1\ninput history=4 height=8 width=8\nlayer conv kernel=3\nend\n",
                             "m.ir", err, sizeof err), -1);
    cr_assert(strstr(err, "m.ir: layer 1 (conv): channels: missing (required)"), "%s", err);
    cr_assert_eq(rc_ir_parse(&ir, "retinac-ir 1\nlayer relu\nlayer conv channels=2\nend\n", "m.ir", err, sizeof err), -1);
    cr_assert(strstr(err, "m.ir: layer 2 (conv): kernel: missing (required)"), "%s", err);
    cr_assert_eq(rc_ir_parse(&ir, "retinac-ir 1\ninput history=4 height=8 width=8\nlayer conv channels=2 kernel=3\nend\n",
                             "m.ir", err, sizeof err), 0, "%s", err);
}

/* ---- Issue 16 (smaller items): integers that do not fit, CRLF line ends, milestones and the
 * search section validated by the text parser as by the spec loader, ranges printed readably. */

/* The canonical text of a small model with `from` replaced by `to` (malloc'd). */
static char *ir_text_with(const char *from, const char *to)
{
    static rc_ir a;
    bncnn(&a, 0);
    char *t = rc_ir_format(&a);
    cr_assert_not_null(t);
    char *at = strstr(t, from);
    cr_assert_not_null(at, "'%s' not in:\n%s", from, t);
    size_t n = strlen(t) - strlen(from) + strlen(to) + 1;
    char *o = malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from));
    free(t);
    return o;
}

static void parse_fails(const char *from, const char *to, const char *want)
{
    static rc_ir ir;
    char err[512] = "";
    char *t = ir_text_with(from, to);
    cr_assert_eq(rc_ir_parse(&ir, t, "m.ir", err, sizeof err), -1, "accepted:\n%s", t);
    cr_assert(strstr(err, want), "got: %s\nwant: %s", err, want);
    free(t);
}

Test(ir, text_integer_overflow_is_refused)
{
    /* strtol saturates: this read as 9223372036854775807 ("... is out of range") before */
    parse_fails("kernel=15", "kernel=99999999999999999999",
                "m.ir:5: layer 1 (conv): kernel: integer out of range: '99999999999999999999' (range [1, 1024])");
    /* strtoull saturates too: the seed was silently 18446744073709551615 */
    parse_fails("seed=", "seed=99999999999999999999999", "train: seed: integer out of range: '99999999999999999999999");
    parse_fails("milestones=-", "milestones=5,99999999999999999999", "train: milestones: integer out of range: '99999999999999999999'");
    parse_fails("lr=0.005", "lr=1e999", "train: lr: number out of range: '1e999'");
    parse_fails("batch=512", "batch=0", "train: batch: 0 is out of range [1, 1048576]");
}

Test(ir, text_crlf_line_ends_are_accepted_with_the_same_hash)
{
    static rc_ir a, b;
    bncnn(&a, 0);
    char *t = rc_ir_format(&a);
    size_t n = strlen(t), k = 0;
    char *crlf = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\n') crlf[k++] = '\r';
        crlf[k++] = t[i];
    }
    crlf[k] = 0;
    char err[512] = "";
    cr_assert_eq(rc_ir_parse(&b, crlf, "w.ir", err, sizeof err), 0, "%s", err);
    char ha[65], hb[65];
    rc_ir_hash(&a, ha);
    rc_ir_hash(&b, hb);
    cr_assert_str_eq(ha, hb);
    char *t2 = rc_ir_format(&b);
    cr_assert_str_eq(t, t2, "the canonical text is LF");
    free(t);
    free(t2);
    free(crlf);
}

Test(ir, text_milestones_and_search_checked_like_the_spec_loader)
{
    parse_fails("milestones=-", "milestones=20,10",
                "train: milestones: must be strictly increasing epochs, got 20,10 (10 after 20)");
    parse_fails("milestones=-", "milestones=5,5", "must be strictly increasing");
    parse_fails("end\n", "search.dim lr grid 0.001,0.01,0.001\nend\n", "search: grid.lr: value 0.001 listed twice");
    parse_fails("end\n", "search.dim batch grid 0,16\nend\n", "search: batch: value 0 outside [1, 1048576]");
    /* and the rule itself */
    rc_train t;
    memset(&t, 0, sizeof t);
    char err[256];
    t.n_milestones = 3;
    t.milestones[0] = 5;
    t.milestones[1] = 15;
    t.milestones[2] = 25;
    cr_assert_eq(rc_train_check(&t, err, sizeof err), 0);
    t.milestones[2] = 15;
    cr_assert_eq(rc_train_check(&t, err, sizeof err), -1);
}

Test(ir, field_ranges_print_integers_in_full)
{
    int n;
    const rc_field *f = rc_fields(RC_SECTION_TRAIN, 0, &n);
    char buf[96];
    for (int i = 0; i < n; i++) {
        rc_field_range_text(&f[i], buf, sizeof buf);
        cr_assert(!strstr(buf, "e+"), "%s: %s", f[i].name, buf);
        if (!strcmp(f[i].name, "batch")) cr_assert_str_eq(buf, "[1, 1048576]");
        if (!strcmp(f[i].name, "lr")) cr_assert_str_eq(buf, "[1e-12, 10]");
        if (!strcmp(f[i].name, "seed")) cr_assert_str_eq(buf, "[0, 18446744073709551615]");
        if (!strcmp(f[i].name, "l2")) cr_assert_str_eq(buf, "[0, 1000000]");
    }
}
