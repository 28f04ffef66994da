/* stats.c — paired statistics for `retinac compare`: mean / sd, the percentile bootstrap of a
 * mean, the Wilcoxon signed-rank test (see stats.h for the contract).
 *
 * Wilcoxon, as scipy.stats.wilcoxon(d) with its defaults in scipy 1.17.1 (read from its
 * scipy/stats/_wilcoxon.py; the same "auto" rule since scipy 1.13):
 *   - zeros are dropped (zero_method="wilcox"); the remaining |d| are ranked 1..m, tied values
 *     getting the average of their ranks; W+ / W- are the rank sums of positive / negative d;
 *     the statistic is min(W+, W-).
 *   - method="auto": with n (all values, zeros included) <= 50 and neither ties nor zeros, the
 *     exact null distribution of W+ (every one of the 2^m sign assignments equally likely);
 *     with ties or zeros and n <= 13, scipy runs a permutation test over all 2^n sign flips,
 *     which is the exact conditional distribution of W+ given the tied ranks — computed here by
 *     the same counting over doubled (integer) ranks; otherwise the normal approximation:
 *     z = (W+ - m(m+1)/4) / sqrt((m(m+1)(2m+1) - sum_t (t^3 - t) / 2) / 24) over the tie groups
 *     t, no continuity correction, reported as -|z|.
 *   - two-sided p: exact, 2 min(P(W+ <= w), P(W+ >= w)) clipped to 1; normal, erfc(|z| / sqrt 2).
 *   - every difference 0 (m = 0): statistic 0, p 1. scipy gives the same for n <= 13 and NaN
 *     for larger n (its normal approximation divides by a zero sd); "no evidence of a
 *     difference" is the useful answer for compare, so p = 1 here for every n.
 * The counts of the exact distribution are integers below 2^50 (m <= 50), so they are exact in
 * uint64_t, and the p-value is their ratio to 2^m, accurate to a rounding.
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "rng.h"

static int check_finite(const double *x, int n, const char *what, char *err, size_t errn)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return rc_errf(err, errn, "stats: %s[%d] is not a finite number (%g)", what, i, x[i]);
    return 0;
}

int rc_stats_mean(const double *x, int n, double *mean, char *err, size_t errn)
{
    if (n < 1)
        return rc_errf(err, errn, "stats: the mean needs at least 1 value (got %d)", n);
    if (check_finite(x, n, "x", err, errn) != 0)
        return -1;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    return 0;
}

int rc_stats_mean_sd(const double *x, int n, double *mean, double *sd, char *err, size_t errn)
{
    if (n < 2)
        return rc_errf(err, errn, "stats: a standard deviation needs at least 2 values (got %d)", n);
    double m;
    if (rc_stats_mean(x, n, &m, err, errn) != 0)
        return -1;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = sqrt(ss / (n - 1));
    return 0;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* numpy.percentile's default (linear) quantile of sorted s[0..k). */
static double quantile_sorted(const double *s, int k, double q)
{
    double pos = q * (k - 1);
    int lo = (int)floor(pos);
    if (lo >= k - 1)
        return s[k - 1];
    if (lo < 0)
        return s[0];
    double frac = pos - lo;
    return s[lo] + frac * (s[lo + 1] - s[lo]);
}

int rc_stats_bootstrap_mean(const double *d, int n, int resamples, uint64_t seed, double level,
                            rc_stats_interval *out, char *err, size_t errn)
{
    if (n < 2)
        return rc_errf(err, errn, "stats: the bootstrap needs at least 2 values (got %d)", n);
    if (resamples == 0)
        resamples = RC_STATS_RESAMPLES_DEFAULT;
    if (resamples < 100)
        return rc_errf(err, errn, "stats: the bootstrap needs at least 100 resamples (got %d)",
                       resamples);
    if (!(level > 0 && level < 1))
        return rc_errf(err, errn, "stats: the interval level must be in (0, 1) (got %g)", level);
    double mean;
    if (rc_stats_mean(d, n, &mean, err, errn) != 0)
        return -1;
    double *means = malloc((size_t)resamples * sizeof *means);
    if (!means)
        return rc_errf(err, errn, "stats: out of memory for %d bootstrap means", resamples);
    for (int k = 0; k < resamples; k++) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            float u = rc_rng_uniform(seed, RC_STATS_RNG_STREAM, (uint64_t)k * (uint64_t)n + (uint64_t)i);
            int j = (int)((double)u * n);      /* u in (0, 1): j in [0, n) */
            if (j >= n)
                j = n - 1;
            s += d[j];
        }
        means[k] = s / n;
    }
    qsort(means, (size_t)resamples, sizeof *means, cmp_double);
    out->mean = mean;
    out->lo = quantile_sorted(means, resamples, (1 - level) / 2);
    out->hi = quantile_sorted(means, resamples, (1 + level) / 2);
    out->level = level;
    out->resamples = resamples;
    out->seed = seed;
    free(means);
    return 0;
}

typedef struct {
    double abs;
    int positive;
} signed_abs;

static int cmp_signed_abs(const void *pa, const void *pb)
{
    double a = ((const signed_abs *)pa)->abs, b = ((const signed_abs *)pb)->abs;
    return (a > b) - (a < b);
}

/* Exact two-sided p of W+ = w2 / 2 among the 2^m sign assignments of the doubled ranks r2. */
static int exact_p(const int *r2, int m, long w2, double *p, char *err, size_t errn)
{
    long total = 0;
    for (int i = 0; i < m; i++)
        total += r2[i];
    uint64_t *cnt = calloc((size_t)total + 1, sizeof *cnt);
    if (!cnt)
        return rc_errf(err, errn, "stats: out of memory for the exact Wilcoxon distribution");
    cnt[0] = 1;
    long reach = 0;
    for (int i = 0; i < m; i++) {       /* subsets of the ranks seen so far, by sum */
        for (long s = reach; s >= 0; s--)
            if (cnt[s])
                cnt[s + r2[i]] += cnt[s];
        reach += r2[i];
    }
    uint64_t le = 0, ge = 0;
    for (long s = 0; s <= total; s++) {
        if (s <= w2)
            le += cnt[s];
        if (s >= w2)
            ge += cnt[s];
    }
    free(cnt);
    double pl = ldexp((double)le, -m), pg = ldexp((double)ge, -m);
    double v = 2 * (pl < pg ? pl : pg);
    *p = v > 1 ? 1 : v;
    return 0;
}

int rc_stats_wilcoxon(const double *d, int n, rc_stats_wilcoxon_result *out, char *err, size_t errn)
{
    if (n < 1)
        return rc_errf(err, errn, "stats: the Wilcoxon test needs at least 1 value (got %d)", n);
    if (check_finite(d, n, "d", err, errn) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->n = n;
    signed_abs *v = malloc((size_t)n * sizeof *v);
    int *r2 = malloc((size_t)n * sizeof *r2);
    if (!v || !r2) {
        free(v);
        free(r2);
        return rc_errf(err, errn, "stats: out of memory for %d ranks", n);
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (d[i] == 0) {
            out->zeros++;
            continue;
        }
        v[m].abs = fabs(d[i]);
        v[m].positive = d[i] > 0;
        m++;
    }
    out->n_used = m;
    qsort(v, (size_t)m, sizeof *v, cmp_signed_abs);
    /* Doubled average ranks: a tie group at 1-based positions [i+1, j] has rank (i+1+j)/2. */
    double tie_sum = 0;     /* sum over tie groups of t^3 - t */
    long w2_plus = 0, w2_minus = 0;
    for (int i = 0; i < m;) {
        int j = i + 1;
        while (j < m && v[j].abs == v[i].abs)
            j++;
        int t = j - i;
        if (t > 1) {
            out->ties = 1;
            tie_sum += (double)t * t * t - t;
        }
        for (int k = i; k < j; k++) {
            r2[k] = i + 1 + j;
            if (v[k].positive)
                w2_plus += r2[k];
            else
                w2_minus += r2[k];
        }
        i = j;
    }
    free(v);
    out->w_plus = w2_plus / 2.0;
    out->w_minus = w2_minus / 2.0;
    out->statistic = out->w_plus < out->w_minus ? out->w_plus : out->w_minus;
    if (m == 0) {               /* every difference 0: no evidence either way (see above) */
        out->p = 1;
        out->exact = 1;
        free(r2);
        return 0;
    }
    int exact = (n <= RC_STATS_EXACT_MAX && !out->ties && out->zeros == 0) || n <= 13;
    if (exact) {
        out->exact = 1;
        int rc = exact_p(r2, m, w2_plus, &out->p, err, errn);
        free(r2);
        return rc;
    }
    free(r2);
    double mm = m;
    double mean = mm * (mm + 1) / 4;
    double var = (mm * (mm + 1) * (2 * mm + 1) - tie_sum / 2) / 24;
    double z = (out->w_plus - mean) / sqrt(var);
    out->z = -fabs(z);
    double p = erfc(fabs(z) / sqrt(2.0));
    out->p = p > 1 ? 1 : p;
    return 0;
}

int rc_stats_paired(const double *a, const double *b, int n, int resamples, uint64_t seed,
                    rc_stats_paired_result *out, char *err, size_t errn)
{
    if (n < 2)
        return rc_errf(err, errn, "stats: a paired comparison needs at least 2 cells (got %d)", n);
    if (check_finite(a, n, "a", err, errn) != 0 || check_finite(b, n, "b", err, errn) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->n = n;
    if (rc_stats_mean_sd(a, n, &out->mean_a, &out->sd_a, err, errn) != 0 ||
        rc_stats_mean_sd(b, n, &out->mean_b, &out->sd_b, err, errn) != 0)
        return -1;
    double *d = malloc((size_t)n * sizeof *d);
    if (!d)
        return rc_errf(err, errn, "stats: out of memory for %d differences", n);
    for (int i = 0; i < n; i++)
        d[i] = b[i] - a[i];
    int rc = rc_stats_bootstrap_mean(d, n, resamples, seed, 0.95, &out->diff, err, errn);
    if (rc == 0)
        rc = rc_stats_wilcoxon(d, n, &out->wilcoxon, err, errn);
    free(d);
    return rc;
}
