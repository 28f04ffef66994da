/* cmd_bench.c — `retinac bench SPEC`: parse the options, load the model (with --param values),
 * measure it with rc_bench_run (runtime/bench.h: training-step, inference and streaming
 * throughput on synthetic data, the first iterations untimed) and print samples/s and the
 * GFLOP/s achieved from the IR's FLOP counts (rc_ir.flops_train, flops_fwd per sample), as a
 * table or --json.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "bench.h"
#include "cmd.h"
#include "progress_ui.h"
#include "ir.h"
#include "json.h"
#include "loss.h"
#include "model.h"
#include "spec.h"
#include "train_flags.h"

const char cmd_bench_help[] =
    "usage: retinac bench SPEC [--cells N] [--batch N] [--iters N] [--warmup N]\n"
    "                          [--backend c|ref] [--threads N] [--movie N] [--movie-iters N]\n"
    "                          [--param NAME=VALUE] [--json]\n"
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
    "  -q, --quiet    no progress on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

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
    int cells = 5, batch = 0, iters = 5, warmup = 1, threads = 0, json = 0, quiet = 0;
    int movie = -1, movie_iters = 1;   /* movie -1: 2000 + history */
    rc_spec_override pov[RC_SPEC_MAX_PARAMS];
    int n_pov = 0;
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
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--param") && i + 1 < argc) {
            char perr[512];
            if (cli_parse_param(argv[++i], pov, &n_pov, RC_SPEC_MAX_PARAMS, perr, sizeof perr) < 0) {
                fprintf(stderr, "retinac bench: %s\n", perr);
                return 2;
            }
        }
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
    if (rc_spec_load_params(spec, pov, n_pov, &ir, err, sizeof err) || rc_ir_infer(&ir, cells, spec, err, sizeof err)) {
        fprintf(stderr, "retinac bench: %s\n", err);
        return 1;
    }
    rc_bench_opts bo;
    rc_bench_opts_default(&bo);
    bo.backend = backend;
    bo.batch = batch;
    bo.iters = iters;
    bo.warmup = warmup;
    bo.movie = movie < 0 ? 2000 + ir.in.c : movie;
    bo.movie_iters = movie_iters;
    if (bo.movie && bo.movie <= ir.in.c) {
        fprintf(stderr, "retinac bench: --movie: %d frames hold no window of %d frames (need > %d, or 0)\n",
                bo.movie, ir.in.c, ir.in.c);
        return 2;
    }
    rc_bench_result r;
    cli_progress pr;
    cli_progress_init(&pr, "bench", quiet);
    bo.progress = cli_progress_hook(&pr);
    int brc = rc_bench_run(&ir, &bo, &r, err, sizeof err);
    cli_progress_end(&pr);
    if (brc < 0) {
        fprintf(stderr, "retinac bench: %s\n", err);
        return 1;
    }
    movie = bo.movie;
    const int B = r.batch, hist = r.history;
    const long long n_movie = r.movie_windows;
    const double t_create = r.setup_s, t_train = r.train_step_s, t_infer = r.infer_s;
    const double c_train = r.train_cpu_s, c_infer = r.infer_cpu_s, t_stream = r.stream_s, c_stream = r.stream_cpu_s;
    const double st_sps = r.stream_sps, st_gf = r.stream_gflops, tr_sps = r.train_sps, in_sps = r.infer_sps;
    const double tr_gf = r.train_gflops, in_gf = r.infer_gflops;
    int nthreads = r.threads;
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
        rc_json_key(&j, "set_stream"); rc_json_bool(&j, r.set_stream);
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
    return 0;
}
