/* compare.h — benchmarking architecture variants: every variant trained with K seeds (as the
 * trials of a search: search_run.h, so resume, failures and MPI come with it), then evaluated
 * and summarized: per variant the test r and FEVe over cells (mean over seeds, spread over
 * seeds), the paired difference to the first variant over cells (mean, percentile-bootstrap
 * 95% interval, Wilcoxon signed-rank p: analysis/stats.h), and the cost (parameters, FLOPs per
 * sample, training and inference samples/s measured here: runtime/bench.h, epochs to the best
 * validation loss, wall time).
 *
 * Statistics, precisely: for variant v and cell c, r[v][c] = the mean over v's finished seeds
 * of the test r of best.h5 (the epoch of lowest validation loss: the test set never selects);
 * the paired difference of v to the baseline (variant 0) is d[c] = r[v][c] - r[0][c] over the
 * cells. The seeds' spread is the sample sd over seeds of each seed's mean r over cells.
 * Library code: nothing printed; errors returned.
 */
#ifndef RC_COMPARE_H
#define RC_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "search.h"

#define RC_COMPARE_RESAMPLES 10000        /* bootstrap resamples of the paired interval */
#define RC_COMPARE_BOOT_SEED 20161205u    /* its seed: the summary is a pure function of the runs */

/* One variant: a spec file, or one setting of a parameterized spec's search. */
typedef struct {
    char name[RC_SEARCH_NAME_MAX];   /* folder name: DIR/<name>/seed<k> */
    const char *spec_path;
    char setting[RC_SEARCH_NAME_MAX];   /* the search trial it came from ("" for a plain spec) */
    const char *load_error;          /* the spec did not load: the variant failed, no trials */
    int first_trial, n_trials;       /* its seeds in the trial array */
} rc_compare_variant;

/* What the summary measured of one variant. */
typedef struct {
    int ok;                          /* at least one seed finished */
    char error[768];                 /* why not (the load error or the first seed's error) */
    int seeds, seeds_ok;
    int cells;
    double *cell_r, *cell_feve;      /* (cells) mean over finished seeds */
    double *seed_r, *seed_feve;      /* (seeds) mean over cells of each seed; NaN if it failed */
    double mean_r, sd_r, mean_feve, sd_feve;   /* over seeds (sd: NaN below 2 seeds) */
    double d_mean, d_lo, d_hi, p;    /* paired to the baseline over cells (NaN: none) */
    int n_params;
    double flops_fwd, flops_train;   /* per sample */
    double train_sps, infer_sps;     /* measured by rc_bench_run (NaN: not measured) */
    int bench_batch;
    double epochs_to_best;           /* mean over finished seeds of the best epoch */
    double seconds;                  /* training + evaluation wall time, all seeds */
} rc_compare_summary;

typedef struct {
    const char *data;                /* the recording (test split evaluated) */
    const char *backend, *device;    /* evaluation backend ("c" if NULL) */
    int bench_iters;                 /* timed iterations per variant; 0: no speed measured */
} rc_compare_opts;

/* Summarize the variants from the finished rows of their trials (rows, trials in variant
 * order, DIR/<trial>/ their runs). sum[nv] filled (free with rc_compare_summary_free). The
 * baseline is variant 0; when it failed, no paired differences are reported. Returns 0, or -1
 * with a message (a run that finished but cannot be read back or evaluated). */
int rc_compare_summarize(const char *dir, const rc_compare_variant *v, int nv,
                         const rc_search_trial *t, const rc_search_row *rows,
                         const rc_compare_opts *o, rc_compare_summary *sum, char *err, size_t errlen);
void rc_compare_summary_free(rc_compare_summary *sum, int nv);

/* DIR/compare.csv (one row per variant), DIR/compare_cells.csv (per-cell r of every variant)
 * and DIR/compare.json (all of it, per seed too), atomically. Returns 0 or -1. */
int rc_compare_write(const char *dir, const rc_compare_variant *v, int nv,
                     const rc_compare_summary *sum, const rc_compare_opts *o, int seeds,
                     char *err, size_t errlen);

#endif
