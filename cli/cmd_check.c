/* cmd_check.c — `retinac check SPEC`: load a spec (or a canonical IR file), infer shapes,
 * parameters and FLOPs for N cells, print the layer table (or one JSON object), optionally
 * write the canonical IR. Exit 0 ok, 1 invalid spec or I/O error, 2 usage.
 * Errors are one line on stderr: "retinac check: FILE:LINE: layer I (KIND): FIELD: what". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "fsutil.h"
#include "ir.h"
#include "json.h"
#include "spec.h"
#include "train_flags.h"

#define DEFAULT_CELLS 5

const char cmd_check_help[] =
    "usage: retinac check SPEC [--cells N] [--json] [--emit-ir FILE]\n"
    "\n"
    "Validate a model spec (Lua, see specs/README.md) or a canonical IR file, infer every\n"
    "layer's output shape, parameter count and FLOPs, and print the layer table with totals\n"
    "and the canonical hash.\n"
    "\n"
    "  --cells N        number of recorded ganglion cells (model outputs); default 5\n"
    "  --param NAME=VALUE\n"
    "                   a parameter the spec declares with params {...} (repeatable)\n"
    "  --json           print one JSON object instead of the table: name, file, cells, input,\n"
    "                   layers [{index, kind, act, line, in_shape, out_shape, params,\n"
    "                   flops_forward, flops_train}], params, state, flops_forward,\n"
    "                   flops_train (per sample), tensors, hash\n"
    "  --emit-ir FILE   write the canonical IR text (what the runtime reads, no Lua) to FILE\n"
    "\n"
    "Exit status: 0 valid, 1 invalid spec or I/O error, 2 usage error.\n";

static void shape_str(rc_shape s, char *buf, size_t n) { snprintf(buf, n, "%dx%dx%d", s.c, s.h, s.w); }

static const char *layer_kind_label(const rc_layer *l)
{
    if (l->kind == RC_LAYER_DEF) return l->def_kind;
    return l->kind == RC_LAYER_ACT ? rc_act_name(l->act) : rc_layer_kind_name(l->kind);
}

/* A short human description of a layer's settings for the table. */
static void layer_detail(const rc_layer *l, char *buf, size_t n)
{
    static const char *const pos[] = {"center", "data", "reference"};
    switch (l->kind) {
    case RC_LAYER_CONV: {
        int k = snprintf(buf, n, "%dch k%d%s", l->channels, l->kernel, l->bias ? "" : " nobias");
        if (k < 0 || (size_t)k >= n) return;
        if (l->stack)
            k += snprintf(buf + k, n - (size_t)k, " stack%d x%d", l->stack, l->n_sub);
        else if (l->period != 1)
            k += snprintf(buf + k, n - (size_t)k, l->period ? " period %d" : " period full",
                          l->period);
        if (k > 0 && (size_t)k < n && l->stack_dropout > 0)
            snprintf(buf + k, n - (size_t)k, " drop %g", l->stack_dropout);
        break;
    }
    case RC_LAYER_GCCONV:
        snprintf(buf, n, "k%d%s at %s", l->kernel, l->bias ? "" : " nobias",
                 (unsigned)l->position < 3 ? pos[l->position] : "?");
        break;
    case RC_LAYER_DENSE:
        snprintf(buf, n, "%d units%s", l->out.c, l->bias ? "" : " nobias");
        break;
    case RC_LAYER_BATCHNORM:
        snprintf(buf, n, "%s%s eps %g mom %g", l->over == RC_BN_UNIT ? "unit" : "channel",
                 l->abs_scale ? " abs" : "", l->eps, l->momentum);
        break;
    case RC_LAYER_NOISE: snprintf(buf, n, "std %g", l->std); break;
    case RC_LAYER_DROPOUT: snprintf(buf, n, "p %g", l->p); break;
    case RC_LAYER_DEF: snprintf(buf, n, "defined from primitives"); break;
    default: buf[0] = 0;
    }
}

static void json_shape(rc_json *j, rc_shape s)
{
    rc_json_begin_array(j);
    rc_json_int(j, s.c);
    rc_json_int(j, s.h);
    rc_json_int(j, s.w);
    rc_json_end_array(j);
}

static int print_json(const rc_ir *ir, const char *file, const char *hash)
{
    rc_json j;
    rc_json_init(&j, stdout, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "name"); rc_json_string(&j, ir->name);
    rc_json_key(&j, "file"); rc_json_string(&j, file);
    rc_json_key(&j, "cells"); rc_json_int(&j, ir->cells);
    rc_json_key(&j, "input"); json_shape(&j, ir->in);
    rc_json_key(&j, "layers");
    rc_json_begin_array(&j);
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *l = &ir->layers[i];
        rc_json_begin_object(&j);
        rc_json_key(&j, "index"); rc_json_int(&j, i + 1);
        rc_json_key(&j, "kind"); rc_json_string(&j, layer_kind_label(l));
        if (l->kind == RC_LAYER_ACT) { rc_json_key(&j, "act"); rc_json_string(&j, rc_act_name(l->act)); }
        rc_json_key(&j, "line"); rc_json_int(&j, l->spec_line);
        rc_json_key(&j, "in_shape"); json_shape(&j, l->in);
        rc_json_key(&j, "out_shape"); json_shape(&j, l->out);
        rc_json_key(&j, "params"); rc_json_int(&j, l->n_params);
        rc_json_key(&j, "flops_forward"); rc_json_number(&j, l->flops_fwd);
        rc_json_key(&j, "flops_train"); rc_json_number(&j, l->flops_train);
        if (l->n_sub) { rc_json_key(&j, "sub_convs"); rc_json_int(&j, l->n_sub); }
        rc_json_end_object(&j);
    }
    rc_json_end_array(&j);
    rc_json_key(&j, "params"); rc_json_int(&j, ir->params_total);
    rc_json_key(&j, "state"); rc_json_int(&j, ir->state_total);
    rc_json_key(&j, "flops_forward"); rc_json_number(&j, ir->flops_fwd);
    rc_json_key(&j, "flops_train"); rc_json_number(&j, ir->flops_train);
    rc_json_key(&j, "tensors");
    rc_json_begin_array(&j);
    for (int s = 0; s < 2; s++) {
        const rc_param *arr = s ? ir->state : ir->params;
        int n = s ? ir->n_state : ir->n_params;
        for (int i = 0; i < n; i++) {
            rc_json_begin_object(&j);
            rc_json_key(&j, "name"); rc_json_string(&j, arr[i].name);
            rc_json_key(&j, "buffer"); rc_json_string(&j, s ? "state" : "params");
            rc_json_key(&j, "offset"); rc_json_int(&j, arr[i].offset);
            rc_json_key(&j, "count"); rc_json_int(&j, arr[i].count);
            rc_json_key(&j, "shape");
            rc_json_begin_array(&j);
            for (int d = 0; d < arr[i].rank; d++) rc_json_int(&j, arr[i].dims[d]);
            rc_json_end_array(&j);
            rc_json_end_object(&j);
        }
    }
    rc_json_end_array(&j);
    rc_json_key(&j, "hash"); rc_json_string(&j, hash);
    rc_json_end_object(&j);
    return rc_json_finish(&j);
}

static void print_table(const rc_ir *ir, const char *file, const char *hash)
{
    char sh[48], det[96];
    printf("%s: model \"%s\", input %dx%dx%d", file, ir->name, ir->history, ir->height, ir->width);
    if (ir->crop) printf(" cropped to %dx%d", ir->crop, ir->crop);
    printf(", %d cells\n\n", ir->cells);
    printf("%4s  %-10s %-32s %-12s %10s %12s %12s\n", "#", "layer", "settings", "output",
           "params", "MFLOP fwd", "MFLOP train");
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *l = &ir->layers[i];
        shape_str(l->out, sh, sizeof sh);
        layer_detail(l, det, sizeof det);
        printf("%4d  %-10s %-32s %-12s %10lld %12.3f %12.3f\n", i + 1, layer_kind_label(l), det, sh,
               (long long)l->n_params, l->flops_fwd / 1e6, l->flops_train / 1e6);
    }
    printf("%4s  %-10s %-32s %-12s %10lld %12.3f %12.3f\n", "", "total", "", "",
           (long long)ir->params_total, ir->flops_fwd / 1e6, ir->flops_train / 1e6);
    printf("\nparameters %lld (%d tensors), BN state %lld floats\n", (long long)ir->params_total,
           ir->n_params, (long long)ir->state_total);
    printf("per sample: %.1f MFLOP forward, %.1f MFLOP training step\n", ir->flops_fwd / 1e6,
           ir->flops_train / 1e6);
    printf("hash %s\n", hash);
}

static int parse_cells(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

int cmd_check(int argc, char **argv)
{
    const char *spec = NULL, *emit = NULL;
    int cells = DEFAULT_CELLS, json = 0;
    rc_spec_override pov[RC_SPEC_MAX_PARAMS];   /* --param NAME=VALUE */
    int n_pov = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--param")) {
            char perr[512] = "--param needs NAME=VALUE";
            if (i + 1 >= argc || cli_parse_param(argv[++i], pov, &n_pov, RC_SPEC_MAX_PARAMS, perr, sizeof perr) < 0) {
                fprintf(stderr, "retinac check: %s\n", perr);
                return 2;
            }
        } else if (!strcmp(a, "--cells") || !strncmp(a, "--cells=", 8)) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || parse_cells(v, &cells)) {
                fprintf(stderr, "retinac check: --cells: expected a positive integer, got '%s'\n",
                        v ? v : "");
                return 2;
            }
        } else if (!strcmp(a, "--emit-ir") || !strncmp(a, "--emit-ir=", 10)) {
            emit = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            if (!emit || !*emit) {
                fprintf(stderr, "retinac check: --emit-ir: expected a file name\n");
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac check: unknown option '%s' (see 'retinac help check')\n", a);
            return 2;
        } else if (spec) {
            fprintf(stderr, "retinac check: one SPEC at a time (got '%s' and '%s')\n", spec, a);
            return 2;
        } else {
            spec = a;
        }
    }
    if (!spec) {
        fputs(cmd_check_help, stderr);
        return 2;
    }

    rc_ir *ir = calloc(1, sizeof *ir);
    char err[1024];
    if (!ir) {
        fprintf(stderr, "retinac check: out of memory\n");
        return 1;
    }
    int rc = 1;
    const char *inputs[1] = {spec};
    if (emit && rc_out_not_input(emit, inputs, 1, err, sizeof err) < 0) {
        fprintf(stderr, "retinac check: --emit-ir %s\n", err);
        goto out;
    }
    if (rc_spec_check_params(spec, cells, pov, n_pov, ir, err, sizeof err) != 0) {
        fprintf(stderr, "retinac check: %s\n", err);
        goto out;
    }
    char hash[65];
    rc_ir_hash(ir, hash);
    if (emit) {
        char *text = rc_ir_format(ir);
        if (!text) {
            fprintf(stderr, "retinac check: out of memory\n");
            goto out;
        }
        int w = rc_write_file_atomic(emit, text, strlen(text), err, sizeof err);
        free(text);
        if (w) {
            fprintf(stderr, "retinac check: %s\n", err);
            goto out;
        }
    }
    if (json) {
        if (print_json(ir, spec, hash)) {
            fprintf(stderr, "retinac check: cannot write JSON to stdout\n");
            goto out;
        }
    } else {
        print_table(ir, spec, hash);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "retinac check: writing the table to stdout: %s\n", strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    free(ir);
    return rc;
}
