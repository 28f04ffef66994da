/* cmd_synth.c — `retinac synth -o FILE`: write a synthetic retina recording (Baccus layout).
 * The simulation and the file layout are in sim/synth.h; this file only parses options.
 * Exit 0 ok, 1 error (one line on stderr), 2 usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "progress_ui.h"
#include "fsutil.h"
#include "synth.h"

const char cmd_synth_help[] =
    "usage: retinac synth -o FILE [--seed N] [--cells N] [--frames N] [--test-frames N]\n"
    "                     [--repeats N] [--stimulus natural|whitenoise] [--dtype uint8|float32]\n"
    "                     [--set NAME=VALUE ...] [--calib-frames N] [--cheap] [--quiet]\n"
    "                     [--interneurons DIR [--intr-frames N]]\n"
    "\n"
    "Simulate a salamander-like retina (centre-surround bipolar subunits with biphasic temporal\n"
    "filters, contrast gain control, rectification, amacrine inhibition, ganglion-cell pooling,\n"
    "Poisson spikes in 10 ms bins) and write a recording in the Baccus-lab HDF5 layout:\n"
    "/train|test/stimulus (T,50,50) at 100 Hz, /train|test/time, /train|test/response/\n"
    "{binned,firing_rate_5ms,firing_rate_10ms,firing_rate_20ms,true_rate} (cells,T),\n"
    "/test/repeats/<key> (repeats,cells,T), /cells/centers (cells,2), /truth/... (the noise-free\n"
    "rates and every parameter). See docs/synthetic-retina.md. The file is a pure function of\n"
    "the options, written atomically.\n"
    "\n"
    "  -o FILE            output file (required)\n"
    "  --seed N           retina, movie and spike seed; default 1\n"
    "  --cells N          ganglion cells; default 8\n"
    "  --frames N         training frames (100 per second); default 28000\n"
    "  --test-frames N    test movie frames; default frames/10 clamped to 2000..6000\n"
    "  --repeats N        test repeats; default 6\n"
    "  --stimulus S       natural (1/f^2 images, 1 s each, fixational jitter; default) or\n"
    "                     whitenoise (binary 1-pixel checkerboard, 70% contrast)\n"
    "  --dtype T          uint8 (default, 0..255) or float32 (0..1) frames\n"
    "  --set NAME=VALUE   override a retina parameter (repeatable); names and defaults in\n"
    "                     docs/synthetic-retina.md, e.g. --set cgc_k=0 --set amacrine_weight=0\n"
    "  --calib-frames N   length of the calibration movie (default 3000; fewer is faster but\n"
    "                     calibrates the gains on less data, giving a slightly different retina)\n"
    "  --cheap            I/O-test mode: uniform binary noise, a trivial linear response, no\n"
    "                     retina; for multi-GB streaming tests only\n"
    "  --interneurons DIR also write DIR/bipolars_synth.h5 and DIR/amacrines_synth.h5: simulated\n"
    "                     intracellular recordings of the same retina (6 bipolars, 6 amacrines at\n"
    "                     the first cells' centres) under a binary 2x2-px checkerboard, in\n"
    "                     torch-deep-retina's layout (boxes/stimuli, boxes/\n"
    "                     detrended_membrane_potential; plus centers); the recording is unchanged\n"
    "                     and -o may be left out to write only these files\n"
    "  --intr-frames N    frames of the interneuron files; default 3000\n"

    "  --quiet            no progress on stderr (a line with an ETA on a terminal, else a line\n"
    "                     at every quarter of each split)\n";

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || end == s || x < lo || x > hi) {
        fprintf(stderr, "retinac synth: %s: '%s' is not an integer in %lld..%lld\n", opt, s,
                (long long)lo, (long long)hi);
        return -1;
    }
    *v = x;
    return 0;
}

static int run(int argc, char **argv, const char **sets)
{
    rc_synth_opts o;
    rc_synth_opts_default(&o);
    const char *out = NULL, *intr_dir = NULL;
    int64_t intr_frames = 3000;
    o.sets = sets;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t v;
        if (!strcmp(a, "--cheap")) { o.cheap = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { o.quiet = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "retinac synth: %s: %s\n", a, a[0] == '-' ? "needs a value (or is unknown)" : "unexpected argument");
            return 2;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = val;
        else if (!strcmp(a, "--set")) sets[o.n_sets++] = val;
        else if (!strcmp(a, "--interneurons")) intr_dir = val;
        else if (!strcmp(a, "--intr-frames")) { if (parse_i64(a, val, 100, 100000, &v)) return 2; intr_frames = v; }
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || *end || end == val || val[0] == '-') { fprintf(stderr, "retinac synth: --seed: '%s' is not a non-negative integer\n", val); return 2; }
            o.seed = s;
        } else if (!strcmp(a, "--cells")) { if (parse_i64(a, val, 1, 256, &v)) return 2; o.cells = (int)v; }
        else if (!strcmp(a, "--frames")) { if (parse_i64(a, val, 200, (int64_t)1 << 40, &v)) return 2; o.frames = v; }
        else if (!strcmp(a, "--test-frames")) { if (parse_i64(a, val, 100, (int64_t)1 << 32, &v)) return 2; o.test_frames = v; }
        else if (!strcmp(a, "--repeats")) { if (parse_i64(a, val, 1, 1000, &v)) return 2; o.repeats = (int)v; }
        else if (!strcmp(a, "--calib-frames")) { if (parse_i64(a, val, 300, 1000000, &v)) return 2; o.calib_frames = (int)v; }
        else if (!strcmp(a, "--stimulus")) {
            if (!strcmp(val, "natural") || !strcmp(val, "naturalscene")) o.stimulus = RC_SYNTH_NATURAL;
            else if (!strcmp(val, "whitenoise")) o.stimulus = RC_SYNTH_WHITENOISE;
            else { fprintf(stderr, "retinac synth: --stimulus: '%s' (natural or whitenoise)\n", val); return 2; }
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(val, "uint8")) o.float32 = 0;
            else if (!strcmp(val, "float32")) o.float32 = 1;
            else { fprintf(stderr, "retinac synth: --dtype: '%s' (uint8 or float32)\n", val); return 2; }
        } else {
            fprintf(stderr, "retinac synth: unknown option '%s' (see retinac help synth)\n", a);
            return 2;
        }
    }
    if (!out && !intr_dir) { fprintf(stderr, "retinac synth: -o FILE is required (or --interneurons DIR alone)\n"); return 2; }
    if (intr_dir && o.cheap) { fprintf(stderr, "retinac synth: --interneurons needs the simulated retina (not --cheap)\n"); return 2; }
    char err[1024];
    static const char *const intr_files[] = {"bipolars_synth.h5", "amacrines_synth.h5", NULL};
    if (out && intr_dir && rc_dir_not_input(intr_dir, intr_files, &out, 1, err, sizeof err) < 0) {
        fprintf(stderr, "retinac synth: --interneurons %s (the -o file)\n", err);
        return 1;
    }
    /* interneurons first: a bad DIR fails before the long recording is written */
    if (intr_dir && rc_synth_write_interneurons(intr_dir, &o, intr_frames, err, sizeof err) < 0) {
        fprintf(stderr, "retinac synth: %s\n", err);
        return 1;
    }
    cli_progress pr;
    cli_progress_init(&pr, "synth", o.quiet);
    o.progress = cli_progress_hook(&pr);
    int wrc = out ? rc_synth_write(out, &o, err, sizeof err) : 0;
    cli_progress_end(&pr);
    if (wrc < 0) {
        fprintf(stderr, "retinac synth: %s\n", err);
        return 1;
    }
    if (out && !o.quiet)
        fprintf(stderr, "retinac synth: wrote %s (%lld train + %lld test frames, %d cells, %d repeats)\n", out,
                (long long)o.frames, (long long)rc_synth_test_frames(&o), o.cells, o.repeats);
    if (!o.quiet && intr_dir)
        fprintf(stderr, "retinac synth: wrote %s/bipolars_synth.h5 and %s/amacrines_synth.h5 (%lld frames)\n",
                intr_dir, intr_dir, (long long)intr_frames);
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc, sizeof *sets);   /* --set values (argv pointers) */
    if (!sets) { fprintf(stderr, "retinac synth: out of memory\n"); return 1; }
    int rc = run(argc, argv, sets);
    free(sets);
    return rc;
}
