/* bench.c — throughput of a model on one backend (see bench.h). Invariants: the timed regions
 * hold only backend calls and the loss gradient; everything the backend needs is allocated
 * before them; the stream is forgotten before the frames are freed.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "bench.h"
#include "clock.h"
#include "errbuf.h"
#include "loss.h"
#include "model.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

void rc_bench_opts_default(rc_bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "c";
    o->iters = 5;
    o->warmup = 1;
    o->movie_iters = 1;
}

/* xorshift64 uniform in [-1, 1) */
static float next_uniform(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

int rc_bench_run(const rc_ir *ir, const rc_bench_opts *o, rc_bench_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const int cells = ir->cells, B = o->batch ? o->batch : ir->train.batch;
    const int hist = ir->in.c, HW = ir->in.h * ir->in.w, movie = o->movie;
    if (B < 1 || o->iters < 1 || o->warmup < 0 || o->movie_iters < 1 || movie < 0)
        return rc_errf(err, errlen, "bench: batch, iters and movie passes must be >= 1");
    if (movie && movie <= hist)
        return rc_errf(err, errlen, "bench: a movie of %d frames holds no window of %d frames", movie, hist);
    rc_backend *be = NULL;
    double t0 = rc_clock_s();
    if (rc_backend_open(ir, o->backend ? o->backend : "c", "cpu", &be, err, errlen) < 0) return -1;
    r->setup_s = rc_clock_s() - t0;

    const int64_t T = 4 * (int64_t)B + hist;
    const int64_t n_movie = movie ? movie - hist : 0;   /* windows of the movie (data.h alignment) */
    float *frames = malloc(sizeof(float) * T * HW);                  /* (T, H, W) */
    float *y = malloc(sizeof(float) * B * cells);                    /* (B, cells) */
    float *target = malloc(sizeof(float) * B * cells), *dy = malloc(sizeof(float) * B * cells);
    int64_t *starts = malloc(sizeof(int64_t) * B);
    float *params = malloc(sizeof(float) * (ir->params_total + 1)), *state = malloc(sizeof(float) * (ir->state_total + 1));
    float *grads = malloc(sizeof(float) * (ir->params_total + 1));
    float *mframes = malloc(sizeof(float) * ((int64_t)movie * HW + 1));   /* (movie, H, W) */
    float *my = malloc(sizeof(float) * (n_movie * cells + 1));            /* (n_movie, cells) */
    size_t wsn = be->ws_floats(be, B);
    float *ws = malloc(sizeof(float) * (wsn + 1));
    int *cell_pos = NULL;
    int rc = -1;
    if (!frames || !y || !target || !dy || !starts || !params || !state || !grads || !ws || !mframes || !my) {
        rc_errf(err, errlen, "bench: out of memory (workspace %.1f MB)", wsn * 4e-6);
        goto out;
    }
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < T * HW; i++) frames[i] = next_uniform(&s);
    for (int b = 0; b < B; b++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        starts[b] = (int64_t)(s % (uint64_t)(T - hist + 1));
    }
    for (int64_t i = 0; i < (int64_t)movie * HW; i++) mframes[i] = next_uniform(&s);
    for (int i = 0; i < B * cells; i++) target[i] = (float)(i % 3);
    if (rc_params_init(ir, ir->train.seed, params, state) < 0) {
        rc_errf(err, errlen, "bench: parameter initialization failed");
        goto out;
    }
    int gl = rc_gc_layer(ir);
    if (gl >= 0) {
        const rc_layer *L = &ir->layers[gl];
        cell_pos = malloc(sizeof(int) * 2 * cells);
        if (!cell_pos) { rc_errf(err, errlen, "bench: out of memory"); goto out; }
        for (int n = 0; n < cells; n++) {
            cell_pos[2 * n] = L->readout_h / 2;
            cell_pos[2 * n + 1] = L->readout_w / 2;
        }
    }

    /* the trainer declares its frame buffer the same way before running batches on it */
    if (be->set_stream && be->set_stream(be, frames, T)) goto fail;
    rc_progress_report(&o->progress, "training steps", 0, o->warmup + o->iters);
    for (int it = 0; it < o->warmup + o->iters; it++) {
        double a = rc_clock_s(), ca = cpu_now();
        if (be->train_forward(be, B, params, state, cell_pos, (uint64_t)it + 1, frames, starts, y, ws)) goto fail;
        rc_loss_train(&ir->train, B, cells, y, target, dy);
        memset(grads, 0, sizeof(float) * ir->params_total);
        if (be->train_backward(be, B, params, cell_pos, frames, starts, dy, grads, ws)) goto fail;
        if (it >= o->warmup) { r->train_step_s += rc_clock_s() - a; r->train_cpu_s += cpu_now() - ca; }
        rc_progress_report(&o->progress, "training steps", it + 1, o->warmup + o->iters);
    }
    rc_progress_report(&o->progress, "inference", 0, o->warmup + o->iters);
    for (int it = 0; it < o->warmup + o->iters; it++) {
        double a = rc_clock_s(), ca = cpu_now();
        if (be->infer(be, B, params, state, cell_pos, frames, starts, y, ws)) goto fail;
        if (it >= o->warmup) { r->infer_s += rc_clock_s() - a; r->infer_cpu_s += cpu_now() - ca; }
        rc_progress_report(&o->progress, "inference", it + 1, o->warmup + o->iters);
    }
    /* streaming inference over the movie: warm up on its first batch, then each timed pass
     * declares the movie afresh (after an untimed forget) and runs every window in order */
    if (movie) {
        if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;
        for (int64_t i = 0; i < B && i < n_movie; i++) starts[i] = i;
        if (o->warmup > 0) {
            if (be->set_stream && be->set_stream(be, mframes, movie)) goto fail;
            if (be->infer(be, (int)(n_movie < B ? n_movie : B), params, state, cell_pos, mframes, starts, my, ws)) goto fail;
        }
        for (int it = 0; it < o->movie_iters; it++) {
            if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;
            double a = rc_clock_s(), ca = cpu_now();
            if (be->set_stream && be->set_stream(be, mframes, movie)) goto fail;
            for (int64_t i0 = 0; i0 < n_movie; i0 += B) {
                int nb = (int)(n_movie - i0 < B ? n_movie - i0 : B);
                for (int b = 0; b < nb; b++) starts[b] = i0 + b;
                if (be->infer(be, nb, params, state, cell_pos, mframes, starts, my + i0 * cells, ws)) goto fail;
            }
            r->stream_s += rc_clock_s() - a;
            r->stream_cpu_s += cpu_now() - ca;
            rc_progress_report(&o->progress, "movie passes", it + 1, o->movie_iters);
        }
        r->stream_s /= o->movie_iters;
        r->stream_cpu_s /= o->movie_iters;
        r->movie_windows = n_movie;
        r->stream_sps = n_movie / r->stream_s;
        r->stream_gflops = ir->flops_fwd * n_movie / r->stream_s * 1e-9;
    }
    if (be->set_stream && be->set_stream(be, NULL, 0)) goto fail;   /* before the frames are freed */
    r->train_step_s /= o->iters;
    r->infer_s /= o->iters;
    r->train_cpu_s /= o->iters;
    r->infer_cpu_s /= o->iters;
    r->train_sps = B / r->train_step_s;
    r->infer_sps = B / r->infer_s;
    r->train_gflops = ir->flops_train * B / r->train_step_s * 1e-9;
    r->infer_gflops = ir->flops_fwd * B / r->infer_s * 1e-9;
    r->batch = B;
    r->threads = omp_get_max_threads();
    r->history = hist;
    r->set_stream = be->set_stream != NULL;
    rc = 0;
    goto out;
fail:
    rc_errf(err, errlen, "%s", be->err);
out:
    free(frames); free(y); free(target); free(dy); free(starts); free(params); free(state); free(grads);
    free(ws); free(cell_pos); free(mframes); free(my);
    rc_backend_destroy(be);
    return rc;
}
