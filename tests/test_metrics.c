/* test_metrics.c — Pearson, split-half / Spearman–Brown, jackknife oracle and FEVe against
 * values computed by hand (worked in the comments), plus one statistical check that the
 * ceiling predicts the correlation of the true rate with the trial average.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "metrics.h"
#include "rng.h"

Test(metrics, pearson_hand_values)
{
    float x[] = {1, 2, 3, 4}, y[] = {2, 4, 6, 8}, z[] = {8, 6, 4, 2};
    cr_assert_float_eq(rc_pearson(x, 1, y, 1, 4), 1.0, 1e-12);
    cr_assert_float_eq(rc_pearson(x, 1, z, 1, 4), -1.0, 1e-12);
    /* x-mean = (-1,0,1), y-mean = (-1,1,0): sxy = 1, sxx = syy = 2 -> 0.5 */
    float a[] = {1, 2, 3}, b[] = {1, 3, 2};
    cr_assert_float_eq(rc_pearson(a, 1, b, 1, 3), 0.5, 1e-12);
    /* constant series: defined as 0 */
    float c[] = {5, 5, 5};
    cr_assert_float_eq(rc_pearson(a, 1, c, 1, 3), 0.0, 0);
}

Test(metrics, pearson_columns_use_strides)
{
    /* (T=3, cells=2): column 0 = (1,2,3), column 1 = (1,3,2) */
    float pred[] = {1, 1, 2, 3, 3, 2};
    float targ[] = {1, 1, 2, 2, 3, 3};   /* column 0 = (1,2,3), column 1 = (1,2,3) */
    double r[2];
    rc_pearson_cols(pred, targ, 3, 2, r);
    cr_assert_float_eq(r[0], 1.0, 1e-12);
    cr_assert_float_eq(r[1], 0.5, 1e-12);
}

Test(metrics, spearman_brown)
{
    cr_assert_float_eq(rc_spearman_brown(0.5), 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(rc_spearman_brown(0.6), 0.75, 1e-12);
    cr_assert_float_eq(rc_spearman_brown(1.0), 1.0, 1e-12);
    cr_assert(isnan(rc_spearman_brown(NAN)));
}

Test(metrics, split_half_two_repeats_is_their_correlation)
{
    float rep[] = {1, 2, 3, /* repeat 1 */ 1, 3, 2};
    cr_assert_float_eq(rc_split_half(rep, 2, 3, 10, 1), 0.5, 1e-12);
    cr_assert_float_eq(rc_split_half(rep, 2, 3, 10, 999), 0.5, 1e-12);
    cr_assert(isnan(rc_split_half(rep, 1, 3, 10, 1)));
}

Test(metrics, split_half_four_repeats_averages_partitions)
{
    /* R=4, T=3. The three 2+2 partitions {01|23}, {02|13}, {03|12} give halves' means:
     *   r0=(1,2,3) r1=(1,2,3) r2=(1,3,2) r3=(3,2,1)
     *   {01|23}: (1,2,3) vs (2,2.5,1.5): dev (-1,0,1) vs (0,.5,-.5): sxy=-.5, sxx=2, syy=.5 -> -0.5
     *   {02|13}: (1,2.5,2.5) vs (2,2,2): constant -> 0
     *   {03|12}: (2,2,2) vs ... constant -> 0
     * so any average over random splits lies in [-0.5, 0] and is negative when {01|23} is
     * drawn at all (100 splits: certainly). */
    float rep[] = {1, 2, 3, 1, 2, 3, 1, 3, 2, 3, 2, 1};
    double s = rc_split_half(rep, 4, 3, 100, 42);
    cr_assert(s < 0 && s >= -0.5, "split-half %g", s);
    cr_assert_eq(s, rc_split_half(rep, 4, 3, 100, 42), "same seed, same value");
    /* identical repeats: every split gives 1 */
    float same[] = {1, 2, 4, 1, 2, 4, 1, 2, 4, 1, 2, 4};
    cr_assert_float_eq(rc_split_half(same, 4, 3, 7, 3), 1.0, 1e-12);
}

Test(metrics, jackknife_oracle_hand_value)
{
    /* R=2: each trial vs the other. Pairs over (t, r): X = (1,2,3,1,3,2), Y = (1,3,2,1,2,3);
     * dev X = (-1,0,1,-1,1,0), dev Y = (-1,1,0,-1,0,1): sxy = 2, sxx = syy = 4 -> 0.5 */
    float rep[] = {1, 2, 3, 1, 3, 2};
    cr_assert_float_eq(rc_jackknife_oracle(rep, 2, 3), 0.5, 1e-12);
    /* R=3, T=2: trials (0,2), (2,4), (1,0). Oracles: trial0 vs mean(t1,t2) = (1.5,2),
     * trial1 vs (0.5,1), trial2 vs (1,3). X = (0,2,2,4,1,0), Y = (1.5,2,0.5,1,1,3).
     * mean X = 1.5, mean Y = 1.5; dX = (-1.5,.5,.5,2.5,-.5,-1.5), dY = (0,.5,-1,-.5,-.5,1.5)
     * sxy = 0+.25-.5-1.25+.25-2.25 = -3.5; sxx = 2.25+.25+.25+6.25+.25+2.25 = 11.5;
     * syy = 0+.25+1+.25+.25+2.25 = 4 -> r = -3.5 / sqrt(46) */
    float rep3[] = {0, 2, 2, 4, 1, 0};
    cr_assert_float_eq(rc_jackknife_oracle(rep3, 3, 2), -3.5 / sqrt(46.0), 1e-12);
}

Test(metrics, feve_hand_values)
{
    /* R=2, T=2: repeats (1,3) and (3,5). Per-time variance (ddof 1): t0 {1,3} -> 2, t1 {3,5}
     * -> 2: noise = 2. All values (1,3,3,5): mean 3, ss = 8, total = 8/3.
     * pred (3,3): errors (2,0,0,2) -> mse = 2 -> FEVe = 1 - (2-2)/(8/3-2) = 1.
     * pred (2,4): errors (1,1,1,1) -> mse = 1 -> FEVe = 1 + 1/(2/3) = 2.5.
     * fev = (8/3 - 2) / (8/3) = 0.25. */
    float rep[] = {1, 3, 3, 5};
    float p1[] = {3, 3}, p2[] = {2, 4};
    double fev;
    cr_assert_float_eq(rc_feve(p1, rep, 2, 2, &fev), 1.0, 1e-12);
    cr_assert_float_eq(fev, 0.25, 1e-12);
    cr_assert_float_eq(rc_feve(p2, rep, 2, 2, NULL), 2.5, 1e-12);
    /* no explainable variance (every repeat identical to the noise level): undefined */
    float flat[] = {1, 1, 1, 1};
    cr_assert(isnan(rc_feve(p1, flat, 2, 2, NULL)));
}

Test(metrics, eval_metrics_layout_and_means)
{
    /* cells=2, T=3, R=2. Cell 1 carries the hand example of jackknife_oracle_hand_value;
     * cell 0 has identical repeats (reliability 1, oracle 1). Layout: rep (R, cells, T). */
    float rep[] = {
        5, 1, 2,   1, 2, 3,    /* repeat 0: cell 0, cell 1 */
        5, 1, 2,   1, 3, 2,    /* repeat 1 */
    };
    float avg[] = {5, 1, 1, 2.5, 2, 2.5};          /* (T, cells) trial means */
    float pred[] = {5, 1, 1, 2.5, 2, 2.5};         /* perfect on the averages */
    rc_eval_metrics m;
    char err[256];
    cr_assert_eq(rc_eval_metrics_compute(&m, pred, avg, rep, 2, 3, 2, err, sizeof err), 0, "%s", err);
    cr_assert_float_eq(m.r[0], 1.0, 1e-12);
    cr_assert_float_eq(m.r[1], 1.0, 1e-12);
    cr_assert_float_eq(m.oracle[0], 1.0, 1e-12);
    cr_assert_float_eq(m.oracle[1], 0.5, 1e-12);
    cr_assert_float_eq(m.split_half[1], 0.5, 1e-12);
    cr_assert_float_eq(m.reliability[1], 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(m.ceiling[1], sqrt(2.0 / 3.0), 1e-12);
    /* cell 0: no noise, perfect prediction -> FEVe 1. Cell 1: noise = (0 + .5 + .5)/3 = 1/3,
     * total = 4/5 (values 1,2,3,1,3,2), mse = 4 * .25 / 6 = 1/6 ->
     * FEVe = 1 - (1/6 - 1/3) / (4/5 - 1/3) = 1 + 15/42 */
    cr_assert_float_eq(m.feve[0], 1.0, 1e-12);
    cr_assert_float_eq(m.feve[1], 1.0 + 15.0 / 42.0, 1e-12);
    cr_assert_float_eq(m.mean_feve, (2.0 + 15.0 / 42.0) / 2, 1e-12);
    cr_assert_float_eq(m.mean_r, 1.0, 1e-12);
    cr_assert_float_eq(m.mean_oracle, 0.75, 1e-12);
    cr_assert_float_eq(m.mean_ceiling, (1.0 + sqrt(2.0 / 3.0)) / 2, 1e-12);
    rc_eval_metrics_free(&m);

    /* without repeats only r is defined */
    cr_assert_eq(rc_eval_metrics_compute(&m, pred, avg, NULL, 0, 3, 2, err, sizeof err), 0);
    cr_assert_eq(m.has_repeats, 0);
    cr_assert(isnan(m.mean_ceiling) && isnan(m.mean_feve));
    cr_assert_float_eq(m.mean_r, 1.0, 1e-12);
    rc_eval_metrics_free(&m);
}

Test(metrics, ceiling_predicts_truth_correlation)
{
    /* s(t) ~ N(0,1), trials = s + N(0, 2^2), R = 8: reliability = 1/(1 + 4/8) = 2/3 and the
     * true rate correlates with the 8-trial mean at sqrt(2/3) = 0.816. */
    enum { T = 6000, R = 8 };
    float *s = malloc(T * sizeof *s), *rep = malloc((size_t)R * T * sizeof *rep);
    float *mean = calloc(T, sizeof *mean);
    cr_assert(s && rep && mean);
    for (int t = 0; t < T; t++) s[t] = rc_rng_normal(11, 0, (uint64_t)t);
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            rep[r * T + t] = s[t] + 2.0f * rc_rng_normal(11, 1 + (uint64_t)r, (uint64_t)t);
            mean[t] += rep[r * T + t] / R;
        }
    double rel = rc_spearman_brown(rc_split_half(rep, R, T, 50, 5));
    double truth_r = rc_pearson(s, 1, mean, 1, T);
    cr_assert(fabs(rel - 2.0 / 3.0) < 0.03, "reliability %g", rel);
    cr_assert(fabs(sqrt(rel) - truth_r) < 0.02, "ceiling %g vs truth r %g", sqrt(rel), truth_r);
    /* the true rate explains all the explainable variance: FEVe ~ 1 */
    double fe = rc_feve(s, rep, R, T, NULL);
    cr_assert(fabs(fe - 1.0) < 0.06, "FEVe of the truth %g", fe);
    /* the jackknife oracle of a single trial: corr(s+e, s+e'/sqrt(7)) = 1/sqrt(5 * (1+4/7)) */
    double orc = rc_jackknife_oracle(rep, R, T);
    cr_assert(fabs(orc - 1.0 / sqrt(5.0 * (1.0 + 4.0 / 7.0))) < 0.02, "oracle %g", orc);
    free(s); free(rep); free(mean);
}
