/* cmd_bench.c — `retinac bench SPEC`: training-step and inference throughput of a model on one
 * backend, on synthetic data (random frames, random window starts over a stream four batches
 * long, random Poisson targets). A training step is forward + loss gradient + backward (the
 * optimizer update is excluded: it is the same small elementwise pass for every backend).
 * Reports samples/s and the GFLOP/s achieved from the IR's FLOP counts (rc_ir.flops_train,
 * flops_fwd per sample). The first iteration (JIT load, page faults) is a warmup.
 *
 * Frame stream: the backend is told the stream (backend.h set_stream, when it has the hook)
 * before the training and random-window inference timings, as the trainer does; per-frame work
 * a backend derives from it lazily (the C backend's FFT spectra) then falls mostly in the warmup.
 * Streaming inference: a separate movie of --movie frames, batches of B consecutive windows
 * (starts 0,1,2,...; the last batch may be short) covering its T - history windows, as
 * predicting a test movie does. The timed region of each pass includes set_stream on the movie
 * (the stream is forgotten, untimed, before each pass), so per-movie setup counts.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "backend.h"
#include "cmd.h"
#include "ir.h"
#include "json.h"
#include "loss.h"
#include "model.h"
#include "spec.h"

const char cmd_bench_help[] =
    "usage: retinac bench SPEC [--cells N] [--batch N] [--iters N] [--warmup N]\n"
    "                          [--backend c|ref] [--threads N] [--movie N] [--movie-iters N]\n"
    "                          [--json]\n"
    "\n"
    "Measure training-step (forward + loss gradient + backward, no optimizer) and inference\n"
    "throughput on synthetic data, in samples/s and GFLOP/s.\n"
    "\n"
    "  --cells N      model outputs (default 5)\n"
    "  --batch N      batch size (default: the spec's train.batch)\n"
    "  --iters N      timed iterations of each (default 5)\n"
    "  --warmup N     untimed iterations first (default 1)\n"
    "  --backend B    c (JIT-compiled generated C, default) or ref (naive reference)\n"
    "  --threads N    OpenMP threads (default: all)\n"
    "  --movie N      streaming inference over a movie of N frames: its N - history\n"
    "                 windows in batches of consecutive windows, the stream declared to\n"
    "                 the backend inside the timed region (default 2000 + history;\n"
    "                 0 skips it)\n"
    "  --movie-iters N\n"
    "                 timed passes over the movie (default 1)\n"
    "  --json         one JSON object: train_samples_per_s, infer_samples_per_s,\n"
    "                 train_gflops, infer_gflops, train_step_s, infer_s, train_cpu_s,\n"
    "                 infer_cpu_s (process CPU time per step: all threads), ...,\n"
    "                 history, set_stream (the backend has the hook); with a movie also\n"
    "                 stream_samples_per_s, stream_gflops, stream_s, stream_cpu_s (per\n"
    "                 movie pass), movie_frames, movie_windows, movie_iters\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int parse_int(const char *opt, const char *v, int lo, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > 1 << 24) {
        fprintf(stderr, "retinac bench: %s: expected an integer >= %d, got '%s'\n", opt, lo, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *spec = NULL, *backend = "c";
    int cells = 5, batch = 0, iters = 5, warmup = 1, threads = 0, json = 0;
    int movie = -1, movie_iters = 1;   /* movie -1: 2000 + history */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--cells") && i + 1 < argc) bad = parse_int(a, argv[++i], 1, &cells);
        else if (!strcmp(a, "--batch") && i + 1 < argc) bad = parse_int(a, argv[++i], 1, &batch);
        else if (!strcmp(a, "--iters") && i + 1 < argc) bad = parse_int(a, argv[++i], 1, &iters);
        else if (!strcmp(a, "--warmup") && i + 1 < argc) bad = parse_int(a, argv[++i], 0, &warmup);
        else if (!strcmp(a, "--threads") && i + 1 < argc) bad = parse_int(a, argv[++i], 1, &threads);
        else if (!strcmp(a, "--movie") && i + 1 < argc) bad = parse_int(a, argv[++i], 0, &movie);
        else if (!strcmp(a, "--movie-iters") && i + 1 < argc) bad = parse_int(a, argv[++i], 1, &movie_iters);
        else if (!strcmp(a, "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-') { fprintf(stderr, "retinac bench: unknown option '%s'\n%s", a, cmd_bench_help); return 2; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "retinac bench: more than one SPEC ('%s')\n", a); return 2; }
        if (bad) return 2;
    }
    if (!spec) { fputs(cmd_bench_help, stderr); return 2; }
    if (strcmp(backend, "c") && strcmp(backend, "ref")) {
        fprintf(stderr, "retinac bench: --backend: expected c or ref, got '%s'\n", backend);
        return 2;
    }
    if (threads) omp_set_num_threads(threads);

    static rc_ir ir;
    char err[2048];
    if (rc_spec_load_any(spec, &ir, err, sizeof err) || rc_ir_infer(&ir, cells, spec, err, sizeof err)) {
        fprintf(stderr, "retinac bench: %s\n", err);
        return 1;
    }
    int B = batch ? batch : ir.train.batch;
    const int hist = ir.in.c, HW = ir.in.h * ir.in.w;
    if (movie < 0) movie = 2000 + hist;
    if (movie && movie <= hist) {
        fprintf(stderr, "retinac bench: --movie: %d frames hold no window of %d frames (need > %d, or 0)\n",
                movie, hist, hist);
        return 2;
    }
    rc_backend *be = NULL;
    double t0 = rc_clock_s();
    if (rc_backend_open(&ir, backend, "cpu", &be, err, sizeof err) < 0) {
        fprintf(stderr, "retinac bench: %s\n", err);
        return 1;
    }
    double t_create = rc_clock_s() - t0;

    int64_t T = 4 * (int64_t)B + hist;
    const int64_t n_movie = movie ? movie - hist : 0;   /* windows of the movie (data.h alignment) */
    float *frames = malloc(sizeof(float) * T * HW), *y = malloc(sizeof(float) * B * cells);
    float *target = malloc(sizeof(float) * B * cells), *dy = malloc(sizeof(float) * B * cells);
    int64_t *starts = malloc(sizeof(int64_t) * B);
    float *params = malloc(sizeof(float) * (ir.params_total + 1)), *state = malloc(sizeof(float) * (ir.state_total + 1));
    float *grads = malloc(sizeof(float) * (ir.params_total + 1));
    float *mframes = malloc(sizeof(float) * ((int64_t)movie * HW + 1));   /* (movie, H, W) */
    float *my = malloc(sizeof(float) * (n_movie * cells + 1));            /* (n_movie, cells) */
    size_t wsn = be->ws_floats(be, B);
    float *ws = malloc(sizeof(float) * wsn);
    int *cell_pos = NULL;
    if (!frames || !y || !target || !dy || !starts || !params || !state || !grads || !ws || !mframes || !my) {
        fprintf(stderr, "retinac bench: out of memory (workspace %.1f MB)\n", wsn * 4e-6);
        return 1;
    }
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < T * HW; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        frames[i] = (float)((s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    for (int b = 0; b < B; b++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        starts[b] = (int64_t)(s % (uint64_t)(T - hist + 1));
    }
    for (int64_t i = 0; i < (int64_t)movie * HW; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        mframes[i] = (float)((s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    for (int i = 0; i < B * cells; i++) target[i] = (float)(i % 3);
    rc_params_init(&ir, ir.train.seed, params, state);
    int gl = rc_gc_layer(&ir);
    if (gl >= 0) {
        const rc_layer *L = &ir.layers[gl];
        cell_pos = malloc(sizeof(int) * 2 * cells);
        if (!cell_pos) { fprintf(stderr, "retinac bench: out of memory\n"); return 1; }
        for (int n = 0; n < cells; n++) {
            cell_pos[2 * n] = (L->in.h - L->kernel + 1) / 2;
            cell_pos[2 * n + 1] = (L->in.w - L->kernel + 1) / 2;
        }
    }

    /* the trainer declares its frame buffer the same way before running batches on it */
    if (be->set_stream && be->set_stream(be, frames, T)) goto fail;
    double t_train = 0, t_infer = 0, c_train = 0, c_infer = 0;
    for (int it = 0; it < warmup + iters; it++) {
        double a = rc_clock_s(), ca = cpu_now();
        if (be->train_forward(be, B, params, state, cell_pos, (uint64_t)it + 1, frames, starts, y, ws)) goto fail;
        rc_loss_train(&ir.train, B, cells, y, target, dy);
        memset(grads, 0, sizeof(float) * ir.params_total);
        if (be->train_backward(be, B, params, cell_pos, frames, starts, dy, grads, ws)) goto fail;
        if (it >= warmup) { t_train += rc_clock_s() - a; c_train += cpu_now() - ca; }
    }
    for (int it = 0; it < warmup + iters; it++) {
        double a = rc_clock_s(), ca = cpu_now();
        if (be->infer(be, B, params, state, cell_pos, frames, starts, y, ws)) goto fail;
        if (it >= warmup) { t_infer += rc_clock_s() - a; c_infer += cpu_now() - ca; }
    }
    /* streaming inference over the movie: warm up on its first batch, then each timed pass
     * declares the movie afresh (after an untimed forget) and runs every window in order */
    double t_stream = 0, c_stream = 0;
    if (movie) {
        if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;
        for (int64_t i = 0; i < B && i < n_movie; i++) starts[i] = i;
        if (warmup > 0) {
            if (be->set_stream && be->set_stream(be, mframes, movie)) goto fail;
            if (be->infer(be, (int)(n_movie < B ? n_movie : B), params, state, cell_pos, mframes, starts, my, ws)) goto fail;
        }
        for (int it = 0; it < movie_iters; it++) {
            if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;
            double a = rc_clock_s(), ca = cpu_now();
            if (be->set_stream && be->set_stream(be, mframes, movie)) goto fail;
            for (int64_t i0 = 0; i0 < n_movie; i0 += B) {
                int nb = (int)(n_movie - i0 < B ? n_movie - i0 : B);
                for (int b = 0; b < nb; b++) starts[b] = i0 + b;
                if (be->infer(be, nb, params, state, cell_pos, mframes, starts, my + i0 * cells, ws)) goto fail;
            }
            t_stream += rc_clock_s() - a;
            c_stream += cpu_now() - ca;
        }
        t_stream /= movie_iters;
        c_stream /= movie_iters;
    }
    if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;   /* before the frames are freed */
    t_train /= iters;
    t_infer /= iters;
    c_train /= iters;
    c_infer /= iters;
    double st_sps = movie ? n_movie / t_stream : 0, st_gf = movie ? ir.flops_fwd * n_movie / t_stream * 1e-9 : 0;
    double tr_sps = B / t_train, in_sps = B / t_infer;
    double tr_gf = ir.flops_train * B / t_train * 1e-9, in_gf = ir.flops_fwd * B / t_infer * 1e-9;
    int nthreads = omp_get_max_threads();
    if (json) {
        rc_json j;
        rc_json_init(&j, stdout, 1);
        rc_json_begin_object(&j);
        rc_json_key(&j, "model"); rc_json_string(&j, ir.name);
        rc_json_key(&j, "backend"); rc_json_string(&j, backend);
        rc_json_key(&j, "batch"); rc_json_int(&j, B);
        rc_json_key(&j, "cells"); rc_json_int(&j, cells);
        rc_json_key(&j, "threads"); rc_json_int(&j, nthreads);
        rc_json_key(&j, "iters"); rc_json_int(&j, iters);
        rc_json_key(&j, "setup_s"); rc_json_number(&j, t_create);
        rc_json_key(&j, "train_step_s"); rc_json_number(&j, t_train);
        rc_json_key(&j, "train_samples_per_s"); rc_json_number(&j, tr_sps);
        rc_json_key(&j, "train_gflops"); rc_json_number(&j, tr_gf);
        rc_json_key(&j, "train_cpu_s"); rc_json_number(&j, c_train);
        rc_json_key(&j, "infer_s"); rc_json_number(&j, t_infer);
        rc_json_key(&j, "infer_cpu_s"); rc_json_number(&j, c_infer);
        rc_json_key(&j, "infer_samples_per_s"); rc_json_number(&j, in_sps);
        rc_json_key(&j, "infer_gflops"); rc_json_number(&j, in_gf);
        rc_json_key(&j, "flops_train_per_sample"); rc_json_number(&j, ir.flops_train);
        rc_json_key(&j, "flops_infer_per_sample"); rc_json_number(&j, ir.flops_fwd);
        rc_json_key(&j, "history"); rc_json_int(&j, hist);
        rc_json_key(&j, "set_stream"); rc_json_bool(&j, be->set_stream != NULL);
        if (movie) {
            rc_json_key(&j, "movie_frames"); rc_json_int(&j, movie);
            rc_json_key(&j, "movie_windows"); rc_json_int(&j, n_movie);
            rc_json_key(&j, "movie_iters"); rc_json_int(&j, movie_iters);
            rc_json_key(&j, "stream_s"); rc_json_number(&j, t_stream);
            rc_json_key(&j, "stream_cpu_s"); rc_json_number(&j, c_stream);
            rc_json_key(&j, "stream_samples_per_s"); rc_json_number(&j, st_sps);
            rc_json_key(&j, "stream_gflops"); rc_json_number(&j, st_gf);
        }
        rc_json_end_object(&j);
        if (rc_json_finish(&j)) { fprintf(stderr, "retinac bench: JSON output failed\n"); return 1; }
        fputc('\n', stdout);
    } else {
        printf("%s on %s backend, batch %d, %d cells, %d threads (setup %.2f s)\n", ir.name, backend, B, cells,
               nthreads, t_create);
        printf("  train step  %9.4f s  %10.1f samples/s  %7.1f GFLOP/s  (cpu %.4f s)\n", t_train, tr_sps, tr_gf, c_train);
        printf("  inference   %9.4f s  %10.1f samples/s  %7.1f GFLOP/s  (cpu %.4f s)\n", t_infer, in_sps, in_gf, c_infer);
        if (movie)
            printf("  stream      %9.4f s  %10.1f samples/s  %7.1f GFLOP/s  (cpu %.4f s; movie of %d frames, "
                   "%lld windows, per pass)\n", t_stream, st_sps, st_gf, c_stream, movie, (long long)n_movie);
    }
    free(frames); free(y); free(target); free(dy); free(starts); free(params); free(state); free(grads);
    free(ws); free(cell_pos); free(mframes); free(my);
    rc_backend_destroy(be);
    return 0;
fail:
    fprintf(stderr, "retinac bench: %s\n", be->err);
    rc_backend_destroy(be);
    return 1;
}
