/* test_stats.c — the paired statistics of analysis/stats.c (issue 17's `retinac compare`).
 *
 * - The Wilcoxon signed-rank statistic and two-sided p equal scipy 1.17.1's on the fixed cases
 *   of tests/fixtures/stats_wilcoxon.txt (written by tests/make_stats_fixtures.py): exact
 *   branch to 1e-9 relative, normal approximation to 1e-6, and the same branch as scipy's
 *   method="auto" (n = 5 .. 60, with and without ties and zeros, all positive, all zero).
 * - Two identical variants: mean 0, an interval covering 0, p = 1.
 * - A planted shift (b = a + 0.05 + small noise, n = 20): positive mean, interval above 0,
 *   p < 0.01.
 * - The bootstrap interval is a function of the seed (same seed, same interval; another seed,
 *   another interval) and has the width the normal theory gives for d ~ N(0.1, 0.05^2), n = 40.
 * - mean / sd on known numbers; errors (no values, NaN, too few, bad resamples) are -1 with a
 *   message.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "stats.h"

#define FIXTURE RC_SRC_DIR "/tests/fixtures/stats_wilcoxon.txt"

static double rel_err(double got, double want)
{
    double s = fabs(want) > 0 ? fabs(want) : 1;
    return fabs(got - want) / s;
}

Test(stats, wilcoxon_matches_scipy_fixture)
{
    FILE *f = fopen(FIXTURE, "r");
    cr_assert_not_null(f, "cannot open %s", FIXTURE);
    static char line[1 << 16];
    int cases = 0, exact_cases = 0, normal_cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char name[64], method[16];
        int n, off = 0;
        double stat, p;
        cr_assert_eq(sscanf(line, "%63s %15s %d %lf %lf%n", name, method, &n, &stat, &p, &off), 5,
                     "bad fixture line: %s", line);
        cr_assert(n >= 1 && n <= 1000, "%s: n %d", name, n);
        double *d = malloc((size_t)n * sizeof *d);
        cr_assert_not_null(d);
        char *s = line + off;
        for (int i = 0; i < n; i++) {
            char *end;
            d[i] = strtod(s, &end);
            cr_assert(end != s, "%s: value %d missing", name, i);
            s = end;
        }
        rc_stats_wilcoxon_result r;
        char err[256] = "";
        cr_assert_eq(rc_stats_wilcoxon(d, n, &r, err, sizeof err), 0, "%s: %s", name, err);
        int want_exact = strcmp(method, "exact") == 0;
        cr_assert_eq(r.exact, want_exact, "%s: exact %d, scipy's branch %s", name, r.exact, method);
        cr_assert(fabs(r.statistic - stat) <= 1e-9 * (stat > 1 ? stat : 1),
                  "%s: statistic %.17g, scipy %.17g", name, r.statistic, stat);
        double tol = want_exact ? 1e-9 : 1e-6;
        cr_assert(rel_err(r.p, p) <= tol, "%s: p %.17g, scipy %.17g (rel %.3g)", name, r.p, p,
                  rel_err(r.p, p));
        cr_assert_eq(r.n, n);
        cr_assert_eq(r.n_used + r.zeros, n, "%s", name);
        cr_assert(fabs(r.w_plus + r.w_minus - r.n_used * (r.n_used + 1) / 2.0) < 1e-9, "%s", name);
        exact_cases += want_exact;
        normal_cases += !want_exact;
        cases++;
        free(d);
    }
    fclose(f);
    cr_assert_geq(cases, 18, "only %d fixture cases", cases);
    cr_assert_geq(exact_cases, 5);
    cr_assert_geq(normal_cases, 4);
}

/* a[i]: per-cell r of variant A, spread over cells. */
static void fill_cells(double *a, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++)
        a[i] = 0.4 + 0.1 * rc_rng_normal(seed, 1, (uint64_t)i);
}

Test(stats, identical_variants_show_no_difference)
{
    enum { N = 30 };
    double a[N], b[N];
    fill_cells(a, N, 7);
    memcpy(b, a, sizeof a);
    rc_stats_paired_result r;
    char err[256] = "";
    cr_assert_eq(rc_stats_paired(a, b, N, 0, 11, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(r.diff.mean, 0.0);
    cr_assert(r.diff.lo <= 0 && r.diff.hi >= 0, "[%g, %g]", r.diff.lo, r.diff.hi);
    cr_assert_eq(r.diff.resamples, RC_STATS_RESAMPLES_DEFAULT);
    cr_assert_eq(r.wilcoxon.n_used, 0);
    cr_assert_eq(r.wilcoxon.zeros, N);
    cr_assert_eq(r.wilcoxon.p, 1.0);
    cr_assert_eq(r.wilcoxon.statistic, 0.0);
    cr_assert(fabs(r.mean_a - r.mean_b) == 0 && r.sd_a == r.sd_b && r.sd_a > 0.05 && r.sd_a < 0.15,
              "sd %g", r.sd_a);
}

Test(stats, planted_shift_is_detected)
{
    enum { N = 20 };
    double a[N], b[N];
    fill_cells(a, N, 3);
    for (int i = 0; i < N; i++)
        b[i] = a[i] + 0.05 + 0.01 * rc_rng_normal(5, 2, (uint64_t)i);
    rc_stats_paired_result r;
    char err[256] = "";
    cr_assert_eq(rc_stats_paired(a, b, N, 0, 11, &r, err, sizeof err), 0, "%s", err);
    cr_assert(r.diff.mean > 0.04 && r.diff.mean < 0.06, "mean %g", r.diff.mean);
    cr_assert(r.diff.lo > 0 && r.diff.lo < r.diff.mean && r.diff.hi > r.diff.mean,
              "[%g, %g]", r.diff.lo, r.diff.hi);
    cr_assert(r.wilcoxon.p < 0.01, "p %g", r.wilcoxon.p);
    cr_assert_eq(r.wilcoxon.exact, 1);          /* n = 20, no ties, no zeros */
    cr_assert_eq(r.wilcoxon.w_minus, 0.0);      /* every difference positive */
    /* the reverse comparison: the same p, the interval mirrored */
    rc_stats_paired_result q;
    cr_assert_eq(rc_stats_paired(b, a, N, 0, 11, &q, err, sizeof err), 0, "%s", err);
    cr_assert(q.diff.hi < 0 && fabs(q.diff.mean + r.diff.mean) < 1e-15);
    cr_assert_eq(q.wilcoxon.p, r.wilcoxon.p);
}

Test(stats, bootstrap_is_deterministic_and_sized_right)
{
    enum { N = 40 };
    double d[N];
    for (int i = 0; i < N; i++)
        d[i] = 0.1 + 0.05 * rc_rng_normal(21, 3, (uint64_t)i);
    rc_stats_interval x, y, z;
    char err[256] = "";
    cr_assert_eq(rc_stats_bootstrap_mean(d, N, 10000, 42, 0.95, &x, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_stats_bootstrap_mean(d, N, 10000, 42, 0.95, &y, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_stats_bootstrap_mean(d, N, 10000, 43, 0.95, &z, err, sizeof err), 0, "%s", err);
    cr_assert(x.lo == y.lo && x.hi == y.hi, "same seed, different interval");
    cr_assert(x.lo != z.lo || x.hi != z.hi, "another seed, the same interval");
    cr_assert(x.lo < x.mean && x.mean < x.hi, "[%g, %g] mean %g", x.lo, x.hi, x.mean);
    double nominal = 2 * 1.96 * 0.05 / sqrt(N), width = x.hi - x.lo;
    cr_assert(fabs(width - nominal) <= 0.25 * nominal, "width %g, nominal %g", width, nominal);
    double mean, sd;
    cr_assert_eq(rc_stats_mean_sd(d, N, &mean, &sd, err, sizeof err), 0, "%s", err);
    cr_assert_eq(mean, x.mean);
    double sample = 2 * 1.96 * sd * sqrt((N - 1.0) / N) / sqrt(N);   /* plug-in sd */
    cr_assert(fabs(width - sample) <= 0.1 * sample, "width %g, from the sample sd %g", width, sample);
    /* a wider level gives a wider interval from the same draws */
    rc_stats_interval w;
    cr_assert_eq(rc_stats_bootstrap_mean(d, N, 10000, 42, 0.99, &w, err, sizeof err), 0, "%s", err);
    cr_assert(w.lo < x.lo && w.hi > x.hi);
}

Test(stats, mean_and_sd_on_known_numbers)
{
    const double x[8] = {2, 4, 4, 4, 5, 5, 7, 9};
    double mean, sd;
    char err[256] = "";
    cr_assert_eq(rc_stats_mean_sd(x, 8, &mean, &sd, err, sizeof err), 0, "%s", err);
    cr_assert_eq(mean, 5.0);
    cr_assert(fabs(sd - sqrt(32.0 / 7.0)) < 1e-15, "sd %.17g", sd);
    const double c[3] = {0.3, 0.3, 0.3};
    cr_assert_eq(rc_stats_mean_sd(c, 3, &mean, &sd, err, sizeof err), 0, "%s", err);
    cr_assert_eq(sd, 0.0);
}

Test(stats, errors_are_codes_with_messages)
{
    const double x[3] = {1, NAN, 2}, ok[3] = {1, 2, 3};
    double mean, sd;
    rc_stats_wilcoxon_result w;
    rc_stats_interval iv;
    rc_stats_paired_result pr;
    char err[256];
#define EXPECT_FAIL(call, word)                                                          \
    do {                                                                                 \
        err[0] = 0;                                                                      \
        cr_assert_eq((call), -1, #call " did not fail");                                 \
        cr_assert(strstr(err, word) != NULL, #call ": message '%s' lacks '%s'", err, word); \
    } while (0)
    EXPECT_FAIL(rc_stats_mean(ok, 0, &mean, err, sizeof err), "at least 1");
    EXPECT_FAIL(rc_stats_mean(x, 3, &mean, err, sizeof err), "not a finite");
    EXPECT_FAIL(rc_stats_mean_sd(ok, 1, &mean, &sd, err, sizeof err), "at least 2");
    EXPECT_FAIL(rc_stats_wilcoxon(x, 3, &w, err, sizeof err), "d[1]");
    EXPECT_FAIL(rc_stats_wilcoxon(ok, 0, &w, err, sizeof err), "at least 1");
    EXPECT_FAIL(rc_stats_bootstrap_mean(ok, 3, 50, 1, 0.95, &iv, err, sizeof err), "100 resamples");
    EXPECT_FAIL(rc_stats_bootstrap_mean(ok, 3, 1000, 1, 1.5, &iv, err, sizeof err), "level");
    EXPECT_FAIL(rc_stats_bootstrap_mean(ok, 1, 1000, 1, 0.95, &iv, err, sizeof err), "at least 2");
    EXPECT_FAIL(rc_stats_paired(ok, x, 3, 0, 1, &pr, err, sizeof err), "b[1]");
    EXPECT_FAIL(rc_stats_paired(ok, ok, 1, 0, 1, &pr, err, sizeof err), "at least 2");
    /* a NULL error buffer is allowed */
    cr_assert_eq(rc_stats_mean(x, 3, &mean, NULL, 0), -1);
#undef EXPECT_FAIL
}
