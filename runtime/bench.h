/* bench.h — throughput of one model on one backend on synthetic data: training steps (forward +
 * loss gradient + backward; the optimizer update is excluded: it is the same small elementwise
 * pass for every backend), inference on random windows, and streaming inference over a movie
 * (batches of consecutive windows, the stream declared inside the timed region, as predicting a
 * test movie does). `retinac bench` prints it; `retinac compare` reports it per variant.
 *
 * Data: random frames (T = 4 batches + history), random window starts, targets i % 3; the
 * backend is told the frame stream before the training and random-window timings, as the
 * trainer does. The first `warmup` iterations (JIT load, page faults, lazy per-frame spectra)
 * are not timed. Library code: nothing printed; errors returned.
 */
#ifndef RC_BENCH_H
#define RC_BENCH_H

#include <stddef.h>
#include "progress.h"

#include "ir.h"

typedef struct {
    const char *backend;     /* "c" (default) or "ref" */
    int batch;               /* 0: the model's train.batch */
    int iters;               /* timed iterations of training and inference (>= 1) */
    int warmup;              /* untimed iterations first (>= 0) */
    int movie;               /* frames of the streaming movie (0: none; must exceed history) */
    int movie_iters;         /* timed passes over the movie (>= 1) */
    rc_progress progress;    /* iterations done per stage, reported outside the timed spans */
} rc_bench_opts;

typedef struct {
    int batch, threads, history, set_stream;
    double setup_s;                          /* backend creation (JIT compile or cache load) */
    double train_step_s, train_cpu_s, train_sps, train_gflops;
    double infer_s, infer_cpu_s, infer_sps, infer_gflops;
    long long movie_windows;
    double stream_s, stream_cpu_s, stream_sps, stream_gflops;   /* per pass; 0 without a movie */
} rc_bench_result;

/* batch 0, iters 5, warmup 1, movie 0, movie_iters 1, backend "c" */
void rc_bench_opts_default(rc_bench_opts *o);

/* Measure ir (inferred; its cells are the outputs). Returns 0, or -1 with a message. */
int rc_bench_run(const rc_ir *ir, const rc_bench_opts *o, rc_bench_result *r, char *err, size_t errlen);

#endif
