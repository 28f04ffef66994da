/* metrics.h — evaluation metrics of predicted vs recorded ganglion-cell responses.
 *
 * Definitions (all per cell; sums in double):
 *   Pearson r       population-std formula of torch-deep-retina utils.pearsonr:
 *                   mean((x-mx)(y-my)) / (std(x) std(y)), std with 1/n. A constant series has
 *                   no defined r; we return 0 for it (not NaN) so means over cells stay finite.
 *   split-half      for each of n_splits random partitions of the R repeats (a permutation
 *                   drawn from rc_rng under `seed`, split into floor(R/2) and the rest), the
 *                   Pearson r between the two halves' trial means; r_half = mean over splits.
 *   reliability     Spearman–Brown: rho = 2 r_half / (1 + r_half): the correlation expected
 *                   between two independent R-trial means.
 *   ceiling         sqrt(max(rho, 0)): the expected r between the true rate and the R-trial
 *                   mean (corr(s, s + e/sqrt(R))^2 = rho), i.e. the r a perfect model reaches
 *                   against the trial-averaged test response. This is the number to compare
 *                   the model's r with.
 *   oracle          jackknife oracle (neuralpredictors oracle_corr_jackknife): Pearson r over
 *                   all (t, repeat) pairs between a single trial and the mean of the other R-1.
 *   FEVe            fraction of explainable variance explained (neuralpredictors/openretina
 *                   fev): mse = mean over (t, repeat) of (rep - pred)^2; noise = mean over t of
 *                   the across-repeat variance (ddof 1); total = variance over all (t, repeat)
 *                   (ddof 1); FEVe = 1 - (mse - noise) / (total - noise). fev (the explainable
 *                   fraction) = (total - noise) / total.
 * Layouts: series of length T are contiguous; repeats of one cell are (R, T) row-major.
 * Functions needing R >= 2 return NaN for fewer repeats; NaN never enters rc_mean_finite.
 */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Pearson r of x, y (n) with strides (in elements) sx, sy. */
double rc_pearson(const float *x, int64_t sx, const float *y, int64_t sy, int64_t n);

/* Per-column Pearson of a (T, cells) prediction against a (T, cells) target: r (cells). */
void rc_pearson_cols(const float *pred, const float *target, int64_t T, int cells, double *r);

/* rep (R, T) of one cell. */
double rc_split_half(const float *rep, int R, int64_t T, int n_splits, uint64_t seed);
double rc_spearman_brown(double r_half);
double rc_jackknife_oracle(const float *rep, int R, int64_t T);
/* pred (T). fev_out (may be NULL) receives the explainable fraction. */
double rc_feve(const float *pred, const float *rep, int R, int64_t T, double *fev_out);

/* Mean of the finite values of x (n); NaN if none. */
double rc_mean_finite(const double *x, int n);

/* Everything for one model on one test set. */
typedef struct {
    int cells;
    int has_repeats;      /* 0: ceiling/oracle/feve are NaN */
    double *r;            /* (cells) vs the trial-averaged response */
    double *split_half;   /* (cells) mean split-half r (uncorrected) */
    double *reliability;  /* (cells) Spearman–Brown corrected */
    double *ceiling;      /* (cells) sqrt(reliability) */
    double *oracle;       /* (cells) jackknife oracle */
    double *feve;         /* (cells) */
    double *fev;          /* (cells) explainable fraction of the variance */
    double mean_r, mean_ceiling, mean_oracle, mean_feve, mean_reliability, mean_fev;
} rc_eval_metrics;

#define RC_SPLIT_HALF_SPLITS 100
#define RC_SPLIT_HALF_SEED 20240607u

/* pred, avg (T, cells); rep (R, cells, T) or NULL when the recording has no repeats (R ignored).
 * Allocates the arrays (rc_eval_metrics_free). Returns 0, or -1 with a message (OOM, bad sizes). */
int rc_eval_metrics_compute(rc_eval_metrics *m, const float *pred, const float *avg,
                            const float *rep, int R, int64_t T, int cells,
                            char *err, size_t errlen);
void rc_eval_metrics_free(rc_eval_metrics *m);

#endif
