/* cmd_gradcheck.c — `retinac gradcheck SPEC`: is the backend's training gradient right? Loads
 * and infers the spec, opens the backend, runs rc_gradcheck_run (runtime/gradcheck.h: all the
 * work) and prints one line per tensor (or one JSON object). Exit 0 when every tensor passes,
 * 1 when one fails (the message names it) or on an error, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cmd.h"
#include "cuda_drv.h"
#include "gradcheck.h"
#include "ir.h"
#include "json.h"
#include "spec.h"

const char cmd_gradcheck_help[] =
    "usage: retinac gradcheck SPEC [--cells N] [--batch N] [--backend c|ref|cuda]\n"
    "                              [--samples N] [--tol X] [--step X] [--seed N] [--no-input]\n"
    "                              [--json]\n"
    "\n"
    "Check a backend's training gradient (train_forward + train_backward with the model's\n"
    "training loss, noise and dropout of one seed) against central finite differences of the\n"
    "same loss on the reference backend run in double, per parameter tensor, on a small random\n"
    "problem (frames, targets, params from the spec's init rules). The tensor 'input' checks the\n"
    "reference's eval-mode input gradient (what `retinac rf` uses) against differences on\n"
    "the frames. Per tensor: elements checked, max relative error |g - fd| / max(|fd|, floor)\n"
    "(floor: 10% of the tensor's gradient scale), max absolute error, PASS or FAIL.\n"
    "\n"
    "  --cells N      model outputs (default 3)\n"
    "  --batch N      samples per batch, >= 2 (default 4)\n"
    "  --backend B    c (JIT-compiled generated C, default), ref or cuda (GPU 0)\n"
    "  --samples N    elements checked per tensor, the largest gradients among them\n"
    "                 (default 24; 0 = all)\n"
    "  --tol X        max relative error (default 1e-3)\n"
    "  --step X       finite-difference step, relative to max(1, |p|) (default 1e-6; the\n"
    "                 input's: the nearest power of two, at least 2^-22)\n"
    "  --seed N       seed of the data, targets and noise (default 1)\n"
    "  --no-input     skip the input-gradient check\n"
    "  --json         one JSON object: model, backend, batch, cells, tol, loss_ref,\n"
    "                 loss_backend, tensors [{name, elements, checked, kinks, off, max_rel,\n"
    "                 max_abs, scale, floor, worst, pass}], failed, pass\n"
    "\n"
    "An element whose central difference straddles a kink (relu, abs) is judged by its\n"
    "one-sided differences ('kinks' counts those that then agree); 'off' counts elements\n"
    "that agree by none. A tensor fails when any element is off.\n"
    "\n"
    "Exit status: 0 every tensor passes, 1 a tensor fails or an error, 2 usage error.\n";

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "retinac gradcheck: %s: expected an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_pos(const char *opt, const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x > 0) || x > 1) {
        fprintf(stderr, "retinac gradcheck: %s: expected a number in (0, 1], got '%s'\n", opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

static void print_json(const rc_ir *ir, const rc_gradcheck_result *r)
{
    rc_json j;
    rc_json_init(&j, stdout, 1);
    rc_json_begin_object(&j);
    rc_json_key(&j, "model"); rc_json_string(&j, ir->name);
    rc_json_key(&j, "backend"); rc_json_string(&j, r->backend);
    rc_json_key(&j, "batch"); rc_json_int(&j, r->batch);
    rc_json_key(&j, "cells"); rc_json_int(&j, r->cells);
    rc_json_key(&j, "tol"); rc_json_number(&j, r->tol);
    rc_json_key(&j, "loss_ref"); rc_json_number(&j, r->loss_ref);
    rc_json_key(&j, "loss_backend"); rc_json_number(&j, r->loss_backend);
    rc_json_key(&j, "tensors");
    rc_json_begin_array(&j);
    for (int i = 0; i < r->n; i++) {
        const rc_gradcheck_tensor *t = &r->t[i];
        rc_json_begin_object(&j);
        rc_json_key(&j, "name"); rc_json_string(&j, t->name);
        rc_json_key(&j, "elements"); rc_json_int(&j, t->count);
        rc_json_key(&j, "checked"); rc_json_int(&j, t->checked);
        rc_json_key(&j, "kinks"); rc_json_int(&j, t->kinks);
        rc_json_key(&j, "off"); rc_json_int(&j, t->off);
        rc_json_key(&j, "max_rel"); rc_json_number(&j, t->max_rel);
        rc_json_key(&j, "max_abs"); rc_json_number(&j, t->max_abs);
        rc_json_key(&j, "scale"); rc_json_number(&j, t->scale);
        rc_json_key(&j, "floor"); rc_json_number(&j, t->floor);
        rc_json_key(&j, "worst");
        rc_json_begin_object(&j);
        rc_json_key(&j, "index"); rc_json_int(&j, t->worst);
        rc_json_key(&j, "grad"); rc_json_number(&j, t->worst_g);
        rc_json_key(&j, "fd"); rc_json_number(&j, t->worst_fd);
        rc_json_end_object(&j);
        rc_json_key(&j, "pass"); rc_json_bool(&j, t->pass);
        rc_json_end_object(&j);
    }
    rc_json_end_array(&j);
    rc_json_key(&j, "failed"); rc_json_int(&j, r->n_failed);
    rc_json_key(&j, "pass"); rc_json_bool(&j, r->n_failed == 0);
    rc_json_end_object(&j);
    if (rc_json_finish(&j)) fprintf(stderr, "retinac gradcheck: JSON output failed\n");
}

static void print_table(const rc_ir *ir, const rc_gradcheck_result *r)
{
    printf("%s: %s backend against finite differences on ref, batch %d, %d cells, tol %g\n", ir->name,
           r->backend, r->batch, r->cells, r->tol);
    printf("loss %.9g (ref) %.9g (%s)\n", r->loss_ref, r->loss_backend, r->backend);
    printf("%-28s %9s %8s %10s %10s %10s  %s\n", "tensor", "elements", "checked", "max rel", "max abs",
           "scale", "");
    for (int i = 0; i < r->n; i++) {
        const rc_gradcheck_tensor *t = &r->t[i];
        char kinks[32] = "";
        if (t->kinks || t->off)
            snprintf(kinks, sizeof kinks, "  (%d kink%s, %d off)", t->kinks, t->kinks == 1 ? "" : "s", t->off);
        printf("%-28s %9lld %8d %10.3g %10.3g %10.3g  %s%s\n", t->name, (long long)t->count, t->checked, t->max_rel,
               t->max_abs, t->scale, t->pass ? "PASS" : "FAIL", kinks);
    }
}

int cmd_gradcheck(int argc, char **argv)
{
    const char *spec = NULL, *backend = "c";
    long cells = 3, v;
    int json = 0;
    rc_gradcheck_opts o;
    rc_gradcheck_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--cells") && i + 1 < argc) bad = parse_long(a, argv[++i], 1, 4096, &cells);
        else if (!strcmp(a, "--batch") && i + 1 < argc) { bad = parse_long(a, argv[++i], 2, 4096, &v); o.batch = (int)v; }
        else if (!strcmp(a, "--samples") && i + 1 < argc) { bad = parse_long(a, argv[++i], 0, 1 << 30, &v); o.samples = (int)v; }
        else if (!strcmp(a, "--seed") && i + 1 < argc) { bad = parse_long(a, argv[++i], 0, 0x7fffffffL, &v); o.seed = (uint64_t)v; }
        else if (!strcmp(a, "--tol") && i + 1 < argc) bad = parse_pos(a, argv[++i], &o.tol);
        else if (!strcmp(a, "--step") && i + 1 < argc) bad = parse_pos(a, argv[++i], &o.step);
        else if (!strcmp(a, "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(a, "--no-input")) o.check_input = 0;
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-') { fprintf(stderr, "retinac gradcheck: unknown option '%s'\n%s", a, cmd_gradcheck_help); return 2; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "retinac gradcheck: more than one SPEC ('%s')\n", a); return 2; }
        if (bad) return 2;
    }
    if (!spec) { fputs(cmd_gradcheck_help, stderr); return 2; }
    int cuda = !strcmp(backend, "cuda");
    if (!cuda && strcmp(backend, "c") && strcmp(backend, "ref")) {
        fprintf(stderr, "retinac gradcheck: --backend: expected c, ref or cuda, got '%s'\n", backend);
        return 2;
    }
    if (o.step > 0.1) { fprintf(stderr, "retinac gradcheck: --step: at most 0.1\n"); return 2; }

    static rc_ir ir;
    char err[2048];
    if (rc_spec_check(spec, (int)cells, &ir, err, sizeof err)) {
        fprintf(stderr, "retinac gradcheck: %s\n", err);
        return 1;
    }
    if (cuda && !rc_cuda_probe(err, sizeof err)) {
        fprintf(stderr, "retinac gradcheck: --backend cuda: no GPU (%s)\n", err);
        return 1;
    }
    rc_backend *be = NULL;
    if (rc_backend_open(&ir, cuda ? "cuda" : backend, cuda ? "cuda" : "cpu", &be, err, sizeof err) < 0) {
        fprintf(stderr, "retinac gradcheck: %s\n", err);
        return 1;
    }
    rc_gradcheck_result r;
    int rc = rc_gradcheck_run(&ir, be, &o, &r, err, sizeof err);
    rc_backend_destroy(be);
    if (rc) {
        fprintf(stderr, "retinac gradcheck: %s: %s\n", spec, err);
        rc_gradcheck_free(&r);
        return 1;
    }
    if (json) print_json(&ir, &r);
    else print_table(&ir, &r);
    for (int i = 0; i < r.n; i++) {
        const rc_gradcheck_tensor *t = &r.t[i];
        if (t->pass) continue;
        fprintf(stderr, "retinac gradcheck: %s: gradient of %s is off: %d of %d elements disagree, relative error "
                "up to %.3g > %g at element %lld (%s %.6g, finite difference %.6g)\n", spec, t->name, t->off,
                t->checked, t->max_rel, r.tol, (long long)t->worst, r.backend, t->worst_g, t->worst_fd);
    }
    int failed = r.n_failed;
    rc_gradcheck_free(&r);
    return failed ? 1 : 0;
}
