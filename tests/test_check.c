/* test_check.c — `retinac check` end to end: the layer table and totals for the shipped specs,
 * --json (well-formed, required keys, same hash as the table), --emit-ir round trip through
 * rc_ir_parse, usage errors, and every malformed spec in tests/fixtures/bad_specs: exit 1 with
 * ONE line on stderr naming the file and containing the expected text (layer, field, reason). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir.h"
#include "kit.h"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---------------------------------------------------------------- a tiny JSON validator */

typedef struct { const char *p; int ok; } jp;

static void jws(jp *j) { while (isspace((unsigned char)*j->p)) j->p++; }
static void jvalue(jp *j, int depth);

static void jstring(jp *j)
{
    if (*j->p != '"') { j->ok = 0; return; }
    for (j->p++; *j->p && *j->p != '"'; j->p++) {
        if ((unsigned char)*j->p < 0x20) { j->ok = 0; return; }
        if (*j->p == '\\') {
            j->p++;
            if (*j->p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)*++j->p)) { j->ok = 0; return; }
            } else if (!strchr("\"\\/bfnrt", *j->p) || !*j->p) {
                j->ok = 0;
                return;
            }
        }
    }
    if (*j->p != '"') { j->ok = 0; return; }
    j->p++;
}

static void jvalue(jp *j, int depth)
{
    jws(j);
    if (!j->ok || depth > 64) { j->ok = 0; return; }
    char c = *j->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        jws(j);
        if (*j->p == close) { j->p++; return; }
        for (;;) {
            if (c == '{') {
                jws(j);
                jstring(j);
                jws(j);
                if (*j->p != ':') { j->ok = 0; return; }
                j->p++;
            }
            jvalue(j, depth + 1);
            if (!j->ok) return;
            jws(j);
            if (*j->p == ',') { j->p++; continue; }
            if (*j->p == close) { j->p++; return; }
            j->ok = 0;
            return;
        }
    }
    if (c == '"') { jstring(j); return; }
    if (!strncmp(j->p, "true", 4)) { j->p += 4; return; }
    if (!strncmp(j->p, "false", 5)) { j->p += 5; return; }
    if (!strncmp(j->p, "null", 4)) { j->p += 4; return; }
    char *end;
    strtod(j->p, &end);
    if (end == j->p || (*j->p != '-' && !isdigit((unsigned char)*j->p))) { j->ok = 0; return; }
    j->p = end;
}

static int json_valid(const char *s)
{
    jp j = {s, 1};
    jvalue(&j, 0);
    jws(&j);
    return j.ok && *j.p == 0;
}

/* The text of "key": value (first occurrence) up to the next comma/newline. */
static const char *json_field(const char *s, const char *key, char *buf, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *at = strstr(s, pat);
    if (!at) return NULL;
    at += strlen(pat);
    size_t k = strcspn(at, ",\n");
    if (*at == '[') k = strcspn(at, "]") + 1;
    snprintf(buf, n, "%.*s", (int)k, at);
    return buf;
}

/* ---------------------------------------------------------------- good specs */

Test(check, bncnn_table)
{
    kit_out r = kit_rc("check '%s/specs/bncnn.lua' --cells 5", RC_SRC_DIR);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err);
    cr_assert(strstr(r.out, "8x36x36"), "%s", r.out);
    cr_assert(strstr(r.out, "8x26x26"), "%s", r.out);
    cr_assert(strstr(r.out, "5x1x1"), "%s", r.out);
    const char *fw = strstr(r.out, "per sample: ");
    cr_assert_not_null(fw);
    double mflop = atof(fw + strlen("per sample: "));
    cr_assert(mflop > 196 && mflop < 199, "forward %g MFLOP", mflop);
    /* 11 layer rows, numbered 1..11, with the kind names */
    cr_assert(strstr(r.out, "  11  softplus"), "%s", r.out);
    cr_assert(strstr(r.out, "   1  conv"), "%s", r.out);
    cr_assert(strstr(r.out, "72008"), "%s", r.out);
    const char *h = strstr(r.out, "hash ");
    cr_assert_not_null(h);
    cr_assert_eq(strspn(h + 5, "0123456789abcdef"), 64);
    kit_out_free(&r);
}

Test(check, default_cells_is_five_and_cells_changes_params)
{
    kit_out a = kit_rc("check '%s/specs/bncnn.lua'", RC_SRC_DIR);
    kit_out b = kit_rc("check '%s/specs/bncnn.lua' --cells=5", RC_SRC_DIR);
    kit_out c = kit_rc("check '%s/specs/bncnn.lua' --cells 17", RC_SRC_DIR);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(c.status, 0);
    cr_assert(strstr(a.out, ", 5 cells"), "%s", a.out);
    cr_assert_str_eq(a.out, b.out);
    cr_assert(strstr(c.out, ", 17 cells"));
    cr_assert(strstr(c.out, "17x1x1"));
    cr_assert(strstr(c.out, "91936"), "dense 5408x17: %s", c.out);
    kit_out h = kit_rc("help check");
    cr_assert_eq(h.status, 0);
    cr_assert(strstr(h.out, "--cells N") && strstr(h.out, "default 5"), "%s", h.out);
    kit_out_free(&a);
    kit_out_free(&b);
    kit_out_free(&c);
    kit_out_free(&h);
}

Test(check, json_output)
{
    kit_out r = kit_rc("check '%s/specs/stacked_bncnn.lua' --json", RC_SRC_DIR);
    kit_out t = kit_rc("check '%s/specs/stacked_bncnn.lua'", RC_SRC_DIR);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(json_valid(r.out), "invalid JSON:\n%s", r.out);
    char buf[256];
    cr_assert_not_null(json_field(r.out, "layers", buf, sizeof buf));
    cr_assert_not_null(json_field(r.out, "flops_forward", buf, sizeof buf));
    cr_assert_not_null(json_field(r.out, "flops_train", buf, sizeof buf));
    cr_assert_str_eq(json_field(r.out, "kind", buf, sizeof buf), "\"conv\"");
    cr_assert_str_eq(json_field(r.out, "out_shape", buf, sizeof buf), "[8, 36, 36]");
    cr_assert(strstr(r.out, "\"params\": 6344"), "%s", r.out);
    cr_assert(strstr(r.out, "\"kind\": \"gcconv\""));
    cr_assert(strstr(r.out, "\"out_shape\": [5, 1, 1]"));
    cr_assert(strstr(r.out, "\"params\": 14114,"), "total params");
    /* one "index" per layer */
    int n = 0;
    for (const char *p = r.out; (p = strstr(p, "\"index\": ")); p++) n++;
    cr_assert_eq(n, 11);
    /* the hash in the JSON is the hash of the table output */
    json_field(r.out, "hash", buf, sizeof buf);
    cr_assert_eq(strlen(buf), 66, "%s", buf);
    const char *h = strstr(t.out, "hash ");
    cr_assert_not_null(h);
    cr_assert(strncmp(buf + 1, h + 5, 64) == 0);
    kit_out_free(&r);
    kit_out_free(&t);
}

Test(check, emit_ir_round_trip)
{
    char dir[64];
    kit_tmpdir(dir, sizeof dir, "rc_check_ir");
    char ir_path[512];
    snprintf(ir_path, sizeof ir_path, "%s/model.ir", dir);
    static const char *const specs[] = {"bncnn", "nips_cnn", "stacked_bncnn", "ln", "tiny"};
    for (int i = 0; i < 5; i++) {
        kit_out r = kit_rc("check '%s/specs/%s.lua' --emit-ir '%s'", RC_SRC_DIR, specs[i], ir_path);
        cr_assert_eq(r.status, 0, "%s", r.err);
        char *text = kit_read_text(ir_path);
        rc_ir *ir = calloc(1, sizeof *ir);
        char err[512];
        cr_assert_eq(rc_ir_parse(ir, text, ir_path, err, sizeof err), 0, "%s", err);
        char *again = rc_ir_format(ir);
        cr_assert_str_eq(text, again, "%s: parse/format is not the identity", specs[i]);
        char hex[65];
        rc_ir_hash(ir, hex);
        cr_assert(strstr(r.out, hex), "%s: hash of the emitted IR differs from check's", specs[i]);
        /* check reads the IR file like a spec and reports the same table */
        kit_out r2 = kit_rc("check '%s'", ir_path);
        cr_assert_eq(r2.status, 0, "%s", r2.err);
        const char *t1 = strchr(r.out, '\n'), *t2 = strchr(r2.out, '\n');
        cr_assert(t1 && t2);
        cr_assert_str_eq(t1, t2, "%s: table differs when read back from the IR", specs[i]);
        free(text);
        free(again);
        free(ir);
        kit_out_free(&r);
        kit_out_free(&r2);
    }
    remove(ir_path);
    cr_assert_eq(rmdir(dir), 0, "temp files left behind in %s", dir);
}

Test(check, usage_and_io_errors)
{
    static const char *const usage[] = {"", "--cells 0", "--cells", "--cells x", "--frobnicate",
                                        "'SRC/specs/ln.lua'", "--emit-ir"};
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        char args[600];
        const char *at = strstr(usage[i], "SRC");
        if (at) snprintf(args, sizeof args, "'%s/specs/tiny.lua' '%s%s", RC_SRC_DIR, RC_SRC_DIR, at + 3);
        else if (i == 0) snprintf(args, sizeof args, " ");
        else snprintf(args, sizeof args, "'%s/specs/tiny.lua' %s", RC_SRC_DIR, usage[i]);
        kit_out r = kit_rc("check %s", args);
        cr_assert_eq(r.status, 2, "check %s: exit %d", args, r.status);
        cr_assert_str_empty(r.out, "check %s printed: %s", args, r.out);
        if (i == 4) cr_assert(strstr(r.err, "--frobnicate"), "%s", r.err);
        kit_out_free(&r);
    }
    kit_out r = kit_rc("check /nonexistent/spec.lua");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/spec.lua: cannot open"), "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1);
    kit_out_free(&r);
    r = kit_rc("check '%s/specs/tiny.lua' --emit-ir /nonexistent/dir/x.ir", RC_SRC_DIR);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "cannot write"), "%s", r.err);
    kit_out_free(&r);
}

/* ---------------------------------------------------------------- malformed specs */

typedef struct {
    char file[40];
    char want[160];
} bad_case;

static bad_case bad_cases[] = {
    {"syntax_error.lua", "syntax_error.lua:7: '}' expected"},
    {"unknown_layer.lua", "unknown_layer.lua:3: undefined name 'conv2d'"},
    {"misspelt_field.lua", "misspelt_field.lua:3: layer 1 (conv): kernal: unknown field (did you mean 'kernel'?)"},
    {"wrong_type.lua", "wrong_type.lua:3: layer 1 (conv): channels: expected an integer, got string 'three'"},
    {"float_for_int.lua", "layer 1 (conv): kernel: expected an integer, got 2.5"},
    {"zero_channels.lua", "zero_channels.lua:5: layer 3 (conv): channels: must be in [1, 4096], got 0"},
    {"negative_kernel.lua", "layer 1 (conv): kernel: must be in [1, 1024], got -5"},
    {"zero_input_size.lua", "input: height: must be in [1, 16384], got 0"},
    {"kernel_too_large.lua", "kernel_too_large.lua:3: layer 1 (conv): kernel: 17 is larger than its 16x16 input"},
    {"shapes_collapse.lua", "shapes_collapse.lua:10: layer 7 (conv): kernel: 3 is larger than its 2x2 input"},
    {"not_per_cell.lua", "layer 2 (relu): shape: model output is 3x12x12"},
    {"unknown_rectification.lua", "unknown_rectification.lua:4: undefined name 'leaky_relu'"},
    {"missing_input.lua", "missing_input.lua:1: model: input: missing"},
    {"missing_required.lua", "missing_required.lua:3: layer 1 (conv): channels: missing (required"},
    {"non_table_return.lua", "must end with  return model \"name\" { ... }  (it returned 42)"},
    {"plain_table_return.lua", "must end with  return model \"name\" { ... }  (it returned table)"},
    {"no_return.lua", "(it returned nothing)"},
    {"empty_file.lua", "(it returned nothing)"},
    {"runaway_loop.lua", "runaway_loop.lua:2: spec exceeds the instruction limit"},
    {"runaway_recursion.lua", "runaway_recursion.lua:2: spec exceeds the instruction limit"},
    {"deep_recursion.lua", "deep_recursion.lua:1: stack overflow"},
    {"huge_alloc.lua", "huge_alloc.lua:1: string.rep: result would exceed the spec memory limit"},
    {"huge_table.lua", "huge_table.lua: spec exceeds the memory limit"},
    {"huge_string_concat.lua", "huge_string_concat.lua: spec exceeds the memory limit"},
    {"string_rep_empty.lua", "string_rep_empty.lua:3: string.rep: result would exceed"},
    {"table_move_spin.lua", "table_move_spin.lua:1: attempt to call a nil value (field 'move')"},
    {"pattern_bomb.lua", "pattern_bomb.lua:3: attempt to call a nil value (field 'find')"},
    {"escape_os.lua", "escape_os.lua:1: undefined name 'os'"},
    {"escape_io.lua", "escape_io.lua:1: undefined name 'io'"},
    {"escape_load.lua", "escape_load.lua:1: undefined name 'load'"},
    {"escape_loadstring.lua", "undefined name 'loadstring'"},
    {"escape_dofile.lua", "undefined name 'dofile'"},
    {"escape_loadfile.lua", "undefined name 'loadfile'"},
    {"escape_require.lua", "undefined name 'require'"},
    {"escape_package.lua", "undefined name 'package'"},
    {"escape_debug.lua", "undefined name 'debug'"},
    {"escape_string_dump.lua", "escape_string_dump.lua:1: attempt to call a nil value (field 'dump')"},
    {"escape_method_dump.lua", "escape_method_dump.lua:2: attempt to call a nil value (method 'dump')"},
    {"escape_getmetatable.lua", "undefined name 'getmetatable'"},
    {"escape_setmetatable.lua", "undefined name 'setmetatable'"},
    {"escape_rawset.lua", "undefined name 'rawset'"},
    {"escape_pcall.lua", "escape_pcall.lua:2: undefined name 'pcall'"},
    {"escape_collectgarbage.lua", "undefined name 'collectgarbage'"},
    {"escape_coroutine.lua", "undefined name 'coroutine'"},
    {"global_print.lua", "undefined name 'print'"},
    {"binary_chunk.lua", "binary_chunk.lua: attempt to load a binary chunk"},
    {"wrong_enum.lua", "wrong_enum.lua:4: layer 2 (batchnorm): over: expected one of \"unit\"|\"channel\", got string 'pixel'"},
    {"bad_bool.lua", "layer 1 (conv): bias: expected true or false, got string 'no'"},
    {"nan_value.lua", "nan_value.lua:4: layer 2 (noise): std: expected a finite number, got NaN"},
    {"dropout_out_of_range.lua", "layer 2 (dropout): p: must be in [0, 0.99], got 1.5"},
    {"bad_train_value.lua", "train: lr: must be in [1e-12, 10], got -0.001"},
    {"unknown_train_field.lua", "train: learning_rate: unknown field"},
    {"bad_loss.lua", "train: loss: expected one of \"poisson\"|\"mse\"|\"poisson_log\", got string 'l1'"},
    {"bad_milestones.lua", "train: milestones[2]: expected an integer, got string 'ten'"},
    {"layer_without_braces.lua", "layer 2: 'relu' needs a field table: write relu {}"},
    {"positional_fields.lua", "positional_fields.lua:3: layer 1 (conv): unnamed value 3: fields are written name = value, e.g. conv { channels = ... }"},
    {"plain_table_layer.lua", "layer 1: expected a layer, got a table with field 'channels'"},
    {"model_twice.lua", "layer 1: expected a layer such as conv { ... }, got a model"},
    {"layer_call_string.lua", "layer_call_string.lua:3: conv: expected one field table"},
    {"list_hole.lua", "layer 2: expected a layer such as conv { ... }, got nil"},
    {"unknown_model_field.lua", "model: outputs: unknown field"},
    {"bad_model_name.lua", "model: name 'my model!'"},
    {"no_layers.lua", "model: no layers"},
    {"crop_too_large.lua", "input: crop: 20 does not fit a 16x16 frame"},
    {"stack_larger_than_kernel.lua", "stack_larger_than_kernel.lua:3: layer 1 (conv): stack: sub-kernel 5 is larger than the kernel 3"},
    {"period_too_large.lua", "layer 1 (conv): period: 20 is larger than the 12x12 output"},
    {"bad_period_string.lua", "layer 1 (conv): period: expected an integer, got string 'half'"},
    {"gcconv_bad_position.lua", "layer 2 (gcconv): position: expected one of \"center\"|\"data\"|\"reference\""},
    {"schedule_on_batchnorm.lua", "layer 2 (batchnorm): schedule: schedule hints are allowed on conv, gcconv and dense layers only"},
    {"bad_schedule_field.lua", "layer 1 (conv): schedule.tile: unknown field (did you mean 'tile_h'?)"},
    {"bad_model_schedule.lua", "schedule: threads: must be in [0, 1024], got -2"},
    {"search_unknown_key.lua", "search: grid.lrate: not a train field"},
    {"search_bad_range.lua", "search: random.lr: range needs lo < hi"},
    {"search_no_trials.lua", "search: random.trials: missing"},
    {"search_enum_field.lua", "search: grid.optimizer: only numeric train fields can be searched"},
    {"search_grid_duplicate.lua", "search_grid_duplicate.lua:1: search: grid.lr: value 0.001 listed twice"},
    {"search_too_many_trials.lua", "search_too_many_trials.lua:3: search: more than 100000 trials"},
    {"milestones_not_increasing.lua", "milestones_not_increasing.lua:1: train: milestones: must be strictly increasing epochs, got 10,5"},
    {"error_call.lua", "error_call.lua:2: need at least 4 channels"},
    {"error_table.lua", "spec raised an error that is not a string"},
};
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

ParameterizedTestParameters(check, bad_spec)
{
    return cr_make_param_array(bad_case, bad_cases, N_BAD);
}

ParameterizedTest(bad_case *c, check, bad_spec, .timeout = 60)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/bad_specs/%s", RC_SRC_DIR, c->file);
    kit_out r = kit_rc("check '%s'", path);
    cr_assert_eq(r.status, 1, "%s: exit %d, stderr: %s", c->file, r.status, r.err);
    cr_assert_str_empty(r.out, "%s printed to stdout: %s", c->file, r.out);
    cr_assert_eq(count_lines(r.err), 1, "%s: not one line: %s", c->file, r.err);
    cr_assert(strncmp(r.err, "retinac check: ", 15) == 0, "%s", r.err);
    cr_assert(strstr(r.err, path), "%s: message does not name the file: %s", c->file, r.err);
    cr_assert(strstr(r.err, c->want), "%s: got: %s  want: %s", c->file, r.err, c->want);
    kit_out_free(&r);
}

Test(check, every_bad_fixture_has_an_expectation)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bad_specs", RC_SRC_DIR);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".lua")) continue;
        int found = 0;
        for (size_t i = 0; i < N_BAD; i++) found |= !strcmp(bad_cases[i].file, e->d_name);
        cr_assert(found, "fixture %s has no expected message in test_check.c", e->d_name);
        n++;
    }
    closedir(d);
    cr_assert_eq((size_t)n, N_BAD, "table lists fixtures that do not exist");
    cr_assert_geq(n, 30);
}

Test(check, escapes_leave_no_trace)
{
    remove("/tmp/retinac-pwned");
    kit_out r = kit_rc("check '%s/tests/fixtures/bad_specs/escape_os.lua'", RC_SRC_DIR);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(access("/tmp/retinac-pwned", F_OK), -1, "os.execute ran");
    kit_out_free(&r);
}
