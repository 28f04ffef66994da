/* stats.h — the statistics `retinac compare` (issue 17) reports for paired per-cell values.
 *
 * For a[i], b[i] (i < n cells, e.g. the test r of variant A and of variant B, each averaged over
 * seeds) the paired difference is d[i] = b[i] - a[i]. This module gives:
 *   - mean and sample standard deviation (n - 1 in the denominator) of a vector;
 *   - the mean of d with a percentile-bootstrap 95% interval (rc_stats_bootstrap_mean);
 *   - the Wilcoxon signed-rank test of d, two-sided, matching scipy.stats.wilcoxon with its
 *     defaults (zero_method="wilcox", correction=False, alternative="two-sided", method="auto";
 *     the rule of scipy 1.17.1, read from its source — see stats.c);
 *   - rc_stats_paired: all of the above for a and b at once.
 *
 * Invariants:
 *   - Pure functions of their inputs (and of the seed): no global state, no threads, the same
 *     numbers on every machine with IEEE doubles. The bootstrap draws its indices from
 *     common/rng.h's counter-based rc_rng_uniform(seed, RC_STATS_RNG_STREAM, k * n + i), so an
 *     interval is reproducible from (d, resamples, seed) alone.
 *   - Errors (no values, too few for the statistic, a NaN or infinite value, an allocation
 *     failure) return -1 with a one-line message in err (common/errbuf.h); nothing exits.
 *   - Inputs are never modified; scratch memory is allocated and freed inside each call.
 */
#ifndef RC_STATS_H
#define RC_STATS_H

#include <stddef.h>
#include <stdint.h>

#define RC_STATS_RESAMPLES_DEFAULT 10000
/* The rng.h stream of bootstrap draws (any fixed value; ASCII "STATS"). */
#define RC_STATS_RNG_STREAM 0x5354415453ull
/* Largest n (zeros included) for which the exact null distribution is used when there are
 * neither ties nor zeros (scipy's method="auto"); with ties or zeros, exact up to n = 13. */
#define RC_STATS_EXACT_MAX 50

typedef struct {
    int n;              /* values given */
    int n_used;         /* nonzero differences, the ones ranked */
    int zeros;          /* differences exactly 0 (dropped, scipy's zero_method="wilcox") */
    int ties;           /* 1: some |d| are tied (average ranks were used) */
    int exact;          /* 1: p from the exact null distribution; 0: normal approximation */
    double w_plus;      /* sum of the ranks of positive differences */
    double w_minus;     /* sum of the ranks of negative differences */
    double statistic;   /* min(w_plus, w_minus), scipy's two-sided statistic */
    double z;           /* normal approximation: (statistic - mean) / sd, <= 0; 0 when exact */
    double p;           /* two-sided p-value; 1 when every difference is 0 (see stats.c) */
} rc_stats_wilcoxon_result;

typedef struct {
    double mean;        /* mean of d */
    double lo, hi;      /* percentile-bootstrap interval at `level` */
    double level;       /* 0.95 */
    int resamples;      /* K */
    uint64_t seed;
} rc_stats_interval;

typedef struct {
    int n;
    double mean_a, sd_a;          /* spread of a over cells (sample sd) */
    double mean_b, sd_b;
    rc_stats_interval diff;       /* mean of b - a and its bootstrap interval */
    rc_stats_wilcoxon_result wilcoxon;
} rc_stats_paired_result;

/* Mean of x[0..n): n >= 1, all values finite. */
int rc_stats_mean(const double *x, int n, double *mean, char *err, size_t errn);
/* Mean and sample standard deviation (divisor n - 1): n >= 2, all values finite.
 * Two-pass (mean, then sum of squared deviations), so a constant vector gives sd 0 exactly. */
int rc_stats_mean_sd(const double *x, int n, double *mean, double *sd, char *err, size_t errn);

/* Mean of d and its percentile-bootstrap interval at `level` (0 < level < 1, e.g. 0.95):
 * K = resamples (>= 100; 0 means RC_STATS_RESAMPLES_DEFAULT) resamples of n cells with
 * replacement, cell index floor(u * n) for u = rc_rng_uniform(seed, RC_STATS_RNG_STREAM,
 * k * n + i); the K resample means are sorted and the interval ends are their (1-level)/2 and
 * (1+level)/2 quantiles, linearly interpolated (numpy's default percentile: position q (K - 1)).
 * n >= 2. */
int rc_stats_bootstrap_mean(const double *d, int n, int resamples, uint64_t seed, double level,
                            rc_stats_interval *out, char *err, size_t errn);

/* Wilcoxon signed-rank test of d against symmetry about 0, two-sided, as scipy's defaults:
 * zeros dropped; |d| ranked with average ranks for ties; exact null distribution when
 * n <= RC_STATS_EXACT_MAX and there are no ties and no zeros, or when n <= 13 (conditional on the
 * tied ranks, as scipy's permutation test), otherwise the normal approximation with the tie
 * correction and no continuity correction. n >= 1. */
int rc_stats_wilcoxon(const double *d, int n, rc_stats_wilcoxon_result *out, char *err, size_t errn);

/* All of the above for paired a, b (d = b - a): n >= 2. */
int rc_stats_paired(const double *a, const double *b, int n, int resamples, uint64_t seed,
                    rc_stats_paired_result *out, char *err, size_t errn);

#endif
