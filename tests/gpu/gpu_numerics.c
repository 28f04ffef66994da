/* gpu_numerics.c — GPU-vs-CPU numerical check of the CUDA backend (plain C, no Criterion: it
 * must run from the GPU bundle, and forking after CUDA init is unsafe).
 *
 * For every test-size case of tests/cuda_cases.h (every layer kind and variant) and every
 * shipped spec (every .lua in specs/, 5 cells), one training step (forward, BN running statistics,
 * backward) and one inference run on the CUDA backend and on the reference backend; each is
 * PASS when every relative error (max |gpu - ref| / max |ref| per tensor) is <= 1e-4.
 * On a real GPU it also checks the device Adam step and loss against runtime/optim.c and
 * runtime/loss.c. Prints one line per case and "N passed, M failed"; exit 1 on any failure.
 *
 *   gpu_numerics [--emu] [--specs DIR] [--batch B] [--only NAME] [--no-specs] [--probe]
 *   --emu: run on the host emulation of the device (tests/cuda_emu.h) instead of a GPU.
 *   --probe: open the device, print it, exit 0 (exit 3 "NO GPU: why" without one).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cuda_cases.h"
#include "../cuda_emu.h"
#include "backend_cuda.h"
#include "loss.h"
#include "optim.h"
#include "spec.h"

#define TOL 1e-4

static int n_pass, n_fail;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void run_case(const char *name, const rc_ir *ir, rc_cuda_dev *dev, int B)
{
    char err[1024];
    rc_backend *be = NULL;
    double t0 = now();
    if (rc_cuda_backend_create_on(ir, dev, &be, err, sizeof err)) {
        printf("FAIL %-28s create: %s\n", name, err);
        const char *lg = rc_cuda_last_log(dev);
        if (lg && strstr(lg, "NVRTC failed")) fprintf(stderr, "%s\n", lg);
        n_fail++;
        return;
    }
    cc_result r;
    if (cc_compare(ir, be, B, 12345, &r, err, sizeof err)) {
        printf("FAIL %-28s %s\n", name, err);
        n_fail++;
    } else {
        int ok = r.y_train <= TOL && r.state <= TOL && r.grads <= TOL && r.y_infer <= TOL;
        printf("%s %-28s B=%d y_train %.2e state %.2e grads %.2e (worst %s) y_infer %.2e  [%.1fs]\n",
               ok ? "PASS" : "FAIL", name, B, r.y_train, r.state, r.grads, r.worst_grad, r.y_infer, now() - t0);
        if (ok) n_pass++; else n_fail++;
    }
    fflush(stdout);
    rc_backend_destroy(be);
}

/* Device Adam and loss against the host versions. */
static void run_util(rc_cuda_dev *dev)
{
    char err[1024];
    rc_cuda_util *u = NULL;
    if (rc_cuda_util_create(dev, &u, err, sizeof err)) {
        printf("FAIL %-28s create: %s\n", "util_adam_loss", err);
        n_fail++;
        return;
    }
    enum { N = 1000, B = 10, C = 7 };
    float w[N], g[N], w2[N], mvh[2 * N], pred[B * C], tgt[B * C], dy[B * C], dy2[B * C];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) { w[i] = cc_rand(&s); g[i] = cc_rand(&s); }
    for (int i = 0; i < B * C; i++) { pred[i] = 0.05f + fabsf(cc_rand(&s)); tgt[i] = fabsf(cc_rand(&s)) * 2; }
    memcpy(w2, w, sizeof w);
    float *dw = rc_cuda_malloc(dev, sizeof w), *dg = rc_cuda_malloc(dev, sizeof g), *dmv = rc_cuda_malloc(dev, sizeof mvh);
    float *dp = rc_cuda_malloc(dev, sizeof pred), *dt = rc_cuda_malloc(dev, sizeof tgt), *ddy = rc_cuda_malloc(dev, sizeof dy);
    double e_adam = 1, e_loss = 1, e_dy = 1;
    int ok = dw && dg && dmv && dp && dt && ddy;
    for (int kind = 0; ok && kind < 2; kind++) {
        rc_optim o1, o2;
        ok = !rc_optim_init(&o1, kind ? RC_OPT_ADAMW : RC_OPT_ADAM, N, 1e-2, 1e-3, err, sizeof err) &&
             !rc_optim_init(&o2, kind ? RC_OPT_ADAMW : RC_OPT_ADAM, N, 1e-2, 1e-3, err, sizeof err);
        if (!ok) break;
        memcpy(w2, w, sizeof w);
        ok = !rc_cuda_upload(dev, dw, w, sizeof w) && !rc_cuda_upload(dev, dg, g, sizeof g) &&
             !rc_cuda_zero(dev, dmv, sizeof mvh);
        for (int step = 0; ok && step < 3; step++) {
            rc_optim_step(&o1, w2, g);
            ok = !rc_cuda_adam_step(u, &o2, dw, dg, dmv);
        }
        float wd[N];
        ok = ok && !rc_cuda_download(dev, wd, dw, sizeof wd);
        double e = ok ? cc_relerr(wd, w2, N) : 1;
        if (kind == 0 || e > e_adam) e_adam = e;
        rc_optim_free(&o1);
        rc_optim_free(&o2);
    }
    for (int kind = 0; ok && kind < 3; kind++) {   /* poisson, mse, poisson_log */
        rc_loss_value v1 = rc_loss_compute((rc_loss)kind, 1e-3, RC_L1_SUM, B, C, pred, tgt, dy), v2;
        ok = !rc_cuda_upload(dev, dp, pred, sizeof pred) && !rc_cuda_upload(dev, dt, tgt, sizeof tgt) &&
             !rc_cuda_loss(u, (rc_loss)kind, 1e-3, RC_L1_SUM, B, C, dp, dt, ddy, &v2) &&
             !rc_cuda_download(dev, dy2, ddy, sizeof dy2);
        if (!ok) break;
        double el = fabs(v1.total - v2.total) / (fabs(v1.total) + 1e-30), ed = cc_relerr(dy2, dy, B * C);
        if (kind == 0 || el > e_loss) e_loss = el;
        if (kind == 0 || ed > e_dy) e_dy = ed;
    }
    int pass = ok && e_adam <= TOL && e_loss <= TOL && e_dy <= TOL;
    printf("%s %-28s adam %.2e loss %.2e dloss %.2e%s%s\n", pass ? "PASS" : "FAIL", "util_adam_loss", e_adam,
           e_loss, e_dy, ok ? "" : " error: ", ok ? "" : (rc_cuda_util_error(u)[0] ? rc_cuda_util_error(u) : dev->err));
    if (pass) n_pass++; else n_fail++;
    rc_cuda_free(dev, dw); rc_cuda_free(dev, dg); rc_cuda_free(dev, dmv);
    rc_cuda_free(dev, dp); rc_cuda_free(dev, dt); rc_cuda_free(dev, ddy);
    rc_cuda_util_destroy(u);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    int emu = 0, B = 4, specs = 1, probe = 0;
    const char *spec_dir = "specs", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--emu")) emu = 1;
        else if (!strcmp(argv[i], "--no-specs")) specs = 0;
        else if (!strcmp(argv[i], "--probe")) probe = 1;
        else if (!strcmp(argv[i], "--specs") && i + 1 < argc) spec_dir = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else { fprintf(stderr, "usage: gpu_numerics [--emu] [--specs DIR] [--batch B] [--only NAME] [--no-specs] [--probe]\n"); return 2; }
    }
    char err[1024];
    rc_cuda_dev *dev = NULL;
    if (emu) dev = emu_open();
    else if (rc_cuda_open(0, &dev, err, sizeof err)) {
        printf("NO GPU: %s\n", err);
        return 3;
    }
    if (!dev) { printf("cannot open the device\n"); return 1; }
    printf("device: %s\n", dev->desc);
    fflush(stdout);
    if (probe) { rc_cuda_close(dev); return 0; }
    rc_ir *ir = malloc(sizeof *ir);
    if (!ir) return 1;
    char name[64];
    for (int k = 0;; k++) {
        int r = cc_build(k, ir, name, sizeof name, err, sizeof err);
        if (r == 1) break;
        if (only && strcmp(only, name)) continue;
        if (r < 0) { printf("FAIL %-28s build: %s\n", name, err); n_fail++; continue; }
        run_case(name, ir, dev, B);
    }
    if (!only) run_util(dev);   /* the emulation runs the utility module too */
    if (specs) {
        DIR *d = opendir(spec_dir);
        char *names[64];
        int n = 0;
        if (!d) { printf("FAIL specs: cannot open %s\n", spec_dir); n_fail++; }
        else {
            struct dirent *de;
            while ((de = readdir(d)) && n < 64) {
                size_t l = strlen(de->d_name);
                if (l > 4 && !strcmp(de->d_name + l - 4, ".lua")) names[n++] = strdup(de->d_name);
            }
            closedir(d);
        }
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int i = 0; i < n; i++) {
            char path[512], label[96];
            snprintf(path, sizeof path, "%s/%s", spec_dir, names[i]);
            snprintf(label, sizeof label, "spec:%s", names[i]);
            if (!only || !strcmp(only, label)) {
                if (rc_spec_load(path, ir, err, sizeof err) || rc_ir_infer(ir, 5, path, err, sizeof err)) {
                    printf("FAIL %-28s load: %s\n", label, err);
                    n_fail++;
                } else {
                    for (int l = 0; l < ir->n_layers; l++)   /* no RF centers here: read out at the center */
                        if (ir->layers[l].kind == RC_LAYER_GCCONV) ir->layers[l].position = RC_POS_CENTER;
                    run_case(label, ir, dev, B);
                }
            }
            free(names[i]);
        }
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    free(ir);
    rc_cuda_close(dev);
    return n_fail ? 1 : 0;
}
