/* gpu_bench.c — training and inference throughput of the CUDA backend on one spec, for the
 * side-by-side comparison with PyTorch + cuDNN (bench/torch_gpu_bench.py runs the identical
 * model from the canonical IR this program writes with --emit-ir).
 *
 * Measures, on synthetic frames with one window per sample (consecutive starts, the layout of
 * a real recording): inference (eval mode) and one full training step (train forward, device
 * loss + gradient, train backward, device Adam), each after warm-up, timed over N iterations
 * with a device synchronize at the end of every call. Prints a human line per measurement and,
 * with --json, one JSON object on the last line.
 *
 *   gpu_bench SPEC [--cells N] [--batch B] [--iters N] [--json] [--emit-ir FILE]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_cuda.h"
#include "model.h"
#include "optim.h"
#include "spec.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define DIE(...) do { fprintf(stderr, "gpu_bench: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

int main(int argc, char **argv)
{
    const char *spec = NULL, *emit_ir = NULL;
    int cells = 5, B = 0, iters = 20, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cells") && i + 1 < argc) cells = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--emit-ir") && i + 1 < argc) emit_ir = argv[++i];
        else if (argv[i][0] != '-' && !spec) spec = argv[i];
        else DIE("usage: gpu_bench SPEC [--cells N] [--batch B] [--iters N] [--json] [--emit-ir FILE]");
    }
    if (!spec) DIE("usage: gpu_bench SPEC [--cells N] [--batch B] [--iters N] [--json] [--emit-ir FILE]");
    char err[1024];
    rc_ir *ir = malloc(sizeof *ir);
    if (!ir) DIE("out of memory");
    if (rc_spec_load(spec, ir, err, sizeof err) || rc_ir_infer(ir, cells, spec, err, sizeof err)) DIE("%s", err);
    for (int l = 0; l < ir->n_layers; l++)
        if (ir->layers[l].kind == RC_LAYER_GCCONV) ir->layers[l].position = RC_POS_CENTER;
    if (B <= 0) B = ir->train.batch;
    if (emit_ir) {
        char *t = rc_ir_format(ir);
        FILE *f = t ? fopen(emit_ir, "w") : NULL;
        if (!f || fputs(t, f) < 0 || fclose(f)) DIE("cannot write %s", emit_ir);
        free(t);
    }
    double t0 = now();
    rc_backend *be = NULL;
    if (rc_cuda_backend_create(ir, &be, err, sizeof err)) DIE("%s", err);
    double t_build = now() - t0;
    rc_cuda_dev *dev = rc_cuda_backend_device(be);
    rc_cuda_util *u = NULL;
    if (rc_cuda_util_create(dev, &u, err, sizeof err)) DIE("%s", err);
    fprintf(stderr, "device: %s; module build %.2f s (NVRTC or cache)\n", dev->desc, t_build);

    int T = B + ir->history + 16, H = ir->in.h, W = ir->in.w;
    size_t P = (size_t)ir->params_total, S = (size_t)ir->state_total, nf = (size_t)T * H * W;
    size_t nws = be->ws_floats(be, B);
    float *params = malloc(P * 4), *state = malloc((S + 1) * 4), *frames = malloc(nf * 4);
    float *target = malloc((size_t)B * cells * 4);
    int64_t *starts = malloc((size_t)B * 8);
    int *cpos = malloc((size_t)cells * 2 * sizeof(int));
    if (!params || !state || !frames || !target || !starts || !cpos) DIE("out of memory");
    rc_params_init(ir, 1, params, state);
    uint64_t s = 1;
    for (size_t i = 0; i < nf; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; frames[i] = (float)((double)(s >> 40) / 16777216.0 * 2 - 1); }
    for (int i = 0; i < B * cells; i++) target[i] = (float)(i % 3);
    for (int b = 0; b < B; b++) starts[b] = b;
    int has_gc = rc_gc_layer(ir) >= 0;
    if (has_gc && rc_gc_positions(ir, NULL, cpos, err, sizeof err)) DIE("%s", err);

    float *d_params = rc_cuda_malloc(dev, P * 4), *d_state = rc_cuda_malloc(dev, (S + 1) * 4);
    float *d_frames = rc_cuda_malloc(dev, nf * 4), *d_y = rc_cuda_malloc(dev, (size_t)B * cells * 4);
    float *d_t = rc_cuda_malloc(dev, (size_t)B * cells * 4), *d_dy = rc_cuda_malloc(dev, (size_t)B * cells * 4);
    float *d_g = rc_cuda_malloc(dev, P * 4), *d_mv = rc_cuda_malloc(dev, 2 * P * 4), *d_ws = rc_cuda_malloc(dev, nws * 4);
    int64_t *d_starts = rc_cuda_malloc(dev, (size_t)B * 8);
    int *d_cpos = rc_cuda_malloc(dev, (size_t)cells * 8);
    if (!d_params || !d_state || !d_frames || !d_y || !d_t || !d_dy || !d_g || !d_mv || !d_ws || !d_starts || !d_cpos)
        DIE("device allocation (%zu MB workspace): %s", nws * 4 >> 20, dev->err);
    if (rc_cuda_upload(dev, d_params, params, P * 4) || rc_cuda_upload(dev, d_state, state, S * 4) ||
        rc_cuda_upload(dev, d_frames, frames, nf * 4) || rc_cuda_upload(dev, d_t, target, (size_t)B * cells * 4) ||
        rc_cuda_upload(dev, d_starts, starts, (size_t)B * 8) || rc_cuda_upload(dev, d_cpos, cpos, (size_t)cells * 8) ||
        rc_cuda_zero(dev, d_mv, 2 * P * 4))
        DIE("%s", dev->err);
    const int *cp = has_gc ? d_cpos : NULL;

    /* inference */
    for (int w = 0; w < 3; w++)
        if (be->infer(be, B, d_params, d_state, cp, d_frames, d_starts, d_y, d_ws)) DIE("%s", be->err);
    t0 = now();
    for (int it = 0; it < iters; it++)
        if (be->infer(be, B, d_params, d_state, cp, d_frames, d_starts, d_y, d_ws)) DIE("%s", be->err);
    double t_inf = (now() - t0) / iters;

    /* training step */
    rc_optim o;
    if (rc_optim_init(&o, ir->train.optimizer, (int64_t)P, ir->train.lr, ir->train.l2, err, sizeof err)) DIE("%s", err);
    free(o.moments);
    o.moments = NULL;
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    rc_loss_value lv = {0, 0, 0};
    for (int it = -3; it < iters; it++) {
        double a = now();
        if (rc_cuda_zero(dev, d_g, P * 4) ||
            be->train_forward(be, B, d_params, d_state, cp, (uint64_t)(it + 10), d_frames, d_starts, d_y, d_ws))
            DIE("%s %s", be->err, dev->err);
        double b = now();
        if (rc_cuda_loss(u, ir->train.loss, ir->train.l1_activity, ir->train.l1_mode, B, cells, d_y, d_t, d_dy, &lv) ||
            be->train_backward(be, B, d_params, cp, d_frames, d_starts, d_dy, d_g, d_ws))
            DIE("%s %s", be->err, rc_cuda_util_error(u));
        double c = now();
        if (rc_cuda_adam_step(u, &o, d_params, d_g, d_mv)) DIE("%s", rc_cuda_util_error(u));
        double d = now();
        if (it >= 0) { t_fwd += b - a; t_bwd += c - b; t_opt += d - c; }
    }
    t_fwd /= iters; t_bwd /= iters; t_opt /= iters;
    double t_train = t_fwd + t_bwd + t_opt;
    double gfl_inf = ir->flops_fwd * B / t_inf * 1e-9, gfl_train = ir->flops_train * B / t_train * 1e-9;
    printf("retinac cuda  %-14s B=%d  infer %.3f ms/batch  %.0f samples/s  %.0f GFLOP/s\n", ir->name, B,
           t_inf * 1e3, B / t_inf, gfl_inf);
    printf("retinac cuda  %-14s B=%d  train %.3f ms/step (fwd %.3f, loss+bwd %.3f, adam %.3f)  %.0f samples/s  "
           "%.0f GFLOP/s  loss %.4f\n", ir->name, B, t_train * 1e3, t_fwd * 1e3, t_bwd * 1e3, t_opt * 1e3,
           B / t_train, gfl_train, lv.total);
    if (json)
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"batch\": %d, \"infer_ms\": %.4f, \"infer_samples_s\": %.1f, "
               "\"train_ms\": %.4f, \"train_fwd_ms\": %.4f, \"train_bwd_ms\": %.4f, \"train_opt_ms\": %.4f, "
               "\"train_samples_s\": %.1f, \"flops_fwd\": %.6g, \"flops_train\": %.6g, \"ws_mb\": %.1f}\n",
               ir->name, dev->desc, B, t_inf * 1e3, B / t_inf, t_train * 1e3, t_fwd * 1e3, t_bwd * 1e3, t_opt * 1e3,
               B / t_train, ir->flops_fwd, ir->flops_train, nws * 4.0 / 1048576.0);
    rc_cuda_free(dev, d_params); rc_cuda_free(dev, d_state); rc_cuda_free(dev, d_frames);
    rc_cuda_free(dev, d_y); rc_cuda_free(dev, d_t); rc_cuda_free(dev, d_dy); rc_cuda_free(dev, d_g);
    rc_cuda_free(dev, d_mv); rc_cuda_free(dev, d_ws); rc_cuda_free(dev, d_starts); rc_cuda_free(dev, d_cpos);
    rc_cuda_util_destroy(u);
    rc_backend_destroy(be);
    free(params); free(state); free(frames); free(target); free(starts); free(cpos); free(ir);
    return 0;
}
