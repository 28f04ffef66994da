/* metrics.c — Pearson r, split-half reliability (Spearman–Brown), jackknife oracle and FEVe;
 * definitions in metrics.h. Every sum is in double over float inputs; two-pass (centered)
 * formulas, mathematically equal to the reference's mean(x^2) - mean(x)^2 form but without its
 * cancellation. Random splits come from rc_rng (counter based), so results are a pure function
 * of the inputs and the seed.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

double rc_pearson(const float *x, int64_t sx, const float *y, int64_t sy, int64_t n)
{
    if (n <= 0) return NAN;
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) { mx += x[i * sx]; my += y[i * sy]; }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = x[i * sx] - mx, b = y[i * sy] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if (sxx <= 0 || syy <= 0) return 0.0;   /* constant series: no linear relation */
    return sxy / sqrt(sxx * syy);
}

void rc_pearson_cols(const float *pred, const float *target, int64_t T, int cells, double *r)
{
    for (int c = 0; c < cells; c++) r[c] = rc_pearson(pred + c, cells, target + c, cells, T);
}

/* Pearson of two double series (the split-half means). */
static double pearson_d(const double *x, const double *y, int64_t n)
{
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if (sxx <= 0 || syy <= 0) return 0.0;
    return sxy / sqrt(sxx * syy);
}

double rc_split_half(const float *rep, int R, int64_t T, int n_splits, uint64_t seed)
{
    if (R < 2 || T < 2 || n_splits < 1) return NAN;
    double *a = malloc((size_t)T * sizeof *a), *b = malloc((size_t)T * sizeof *b);
    int *perm = malloc((size_t)R * sizeof *perm);
    if (!a || !b || !perm) { free(a); free(b); free(perm); return NAN; }
    int half = R / 2;
    double sum = 0;
    for (int s = 0; s < n_splits; s++) {
        /* Fisher–Yates with draws from the counter-based RNG: split s, draw i. */
        for (int i = 0; i < R; i++) perm[i] = i;
        for (int i = R - 1; i > 0; i--) {
            float u = rc_rng_uniform(seed, (uint64_t)s, (uint64_t)i);
            int j = (int)(u * (float)(i + 1));
            if (j > i) j = i;
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (int64_t t = 0; t < T; t++) {
            double sa = 0, sb = 0;
            for (int i = 0; i < half; i++) sa += rep[(int64_t)perm[i] * T + t];
            for (int i = half; i < R; i++) sb += rep[(int64_t)perm[i] * T + t];
            a[t] = sa / half;
            b[t] = sb / (R - half);
        }
        sum += pearson_d(a, b, T);
    }
    free(a); free(b); free(perm);
    return sum / n_splits;
}

double rc_spearman_brown(double r_half)
{
    if (!isfinite(r_half)) return NAN;
    if (r_half <= -1.0) return -INFINITY;
    return 2.0 * r_half / (1.0 + r_half);
}

double rc_jackknife_oracle(const float *rep, int R, int64_t T)
{
    if (R < 2 || T < 1) return NAN;
    /* r over the R*T pairs (single trial, mean of the others); accumulate moments in one pass
     * over centered values: first the means. */
    int64_t n = (int64_t)R * T;
    double *tot = malloc((size_t)T * sizeof *tot);
    if (!tot) return NAN;
    double mx = 0, my = 0;
    for (int64_t t = 0; t < T; t++) {
        double s = 0;
        for (int r = 0; r < R; r++) s += rep[(int64_t)r * T + t];
        tot[t] = s;
        mx += s;            /* sum over r of x = s */
        my += s;            /* sum over r of (s - x)/(R-1) = (R s - s)/(R-1) = s */
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t t = 0; t < T; t++) {
        for (int r = 0; r < R; r++) {
            double x = rep[(int64_t)r * T + t];
            double y = (tot[t] - x) / (R - 1);
            double a = x - mx, b = y - my;
            sxy += a * b;
            sxx += a * a;
            syy += b * b;
        }
    }
    free(tot);
    if (sxx <= 0 || syy <= 0) return 0.0;
    return sxy / sqrt(sxx * syy);
}

double rc_feve(const float *pred, const float *rep, int R, int64_t T, double *fev_out)
{
    if (fev_out) *fev_out = NAN;
    if (R < 2 || T < 1) return NAN;
    int64_t n = (int64_t)R * T;
    double gm = 0;
    for (int64_t k = 0; k < n; k++) gm += rep[k];
    gm /= (double)n;
    double total = 0, noise = 0, mse = 0;
    for (int64_t t = 0; t < T; t++) {
        double m = 0;
        for (int r = 0; r < R; r++) m += rep[(int64_t)r * T + t];
        m /= R;
        double v = 0;
        for (int r = 0; r < R; r++) {
            double x = rep[(int64_t)r * T + t];
            v += (x - m) * (x - m);
            total += (x - gm) * (x - gm);
            mse += (x - pred[t]) * (x - pred[t]);
        }
        noise += v / (R - 1);
    }
    noise /= (double)T;
    total /= (double)(n - 1);
    mse /= (double)n;
    if (fev_out) *fev_out = total > 0 ? (total - noise) / total : NAN;
    double expl = total - noise;
    if (!(expl > 0)) return NAN;    /* no explainable variance: FEVe undefined */
    return 1.0 - (mse - noise) / expl;
}

double rc_mean_finite(const double *x, int n)
{
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) { s += x[i]; k++; }
    return k ? s / k : NAN;
}

void rc_eval_metrics_free(rc_eval_metrics *m)
{
    if (!m) return;
    free(m->r);
    free(m->split_half);
    free(m->reliability);
    free(m->ceiling);
    free(m->oracle);
    free(m->feve);
    free(m->fev);
    memset(m, 0, sizeof *m);
}

int rc_eval_metrics_compute(rc_eval_metrics *m, const float *pred, const float *avg,
                            const float *rep, int R, int64_t T, int cells,
                            char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (cells < 1 || T < 2) {
        snprintf(err, errlen, "metrics: need at least 2 time points and 1 cell (T=%lld, cells=%d)",
                 (long long)T, cells);
        return -1;
    }
    m->cells = cells;
    m->has_repeats = rep != NULL && R >= 2;
    size_t nc = (size_t)cells;
    double **arrs[] = {&m->r, &m->split_half, &m->reliability, &m->ceiling, &m->oracle,
                       &m->feve, &m->fev};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        *arrs[i] = malloc(nc * sizeof(double));
        if (!*arrs[i]) {
            rc_eval_metrics_free(m);
            snprintf(err, errlen, "metrics: out of memory for %d cells", cells);
            return -1;
        }
        for (int c = 0; c < cells; c++) (*arrs[i])[c] = NAN;
    }
    rc_pearson_cols(pred, avg, T, cells, m->r);
    if (m->has_repeats) {
        float *cp = malloc((size_t)T * sizeof *cp);
        float *cr = malloc((size_t)R * (size_t)T * sizeof *cr);
        if (!cp || !cr) {
            free(cp); free(cr);
            rc_eval_metrics_free(m);
            snprintf(err, errlen, "metrics: out of memory for %d repeats x %lld samples", R,
                     (long long)T);
            return -1;
        }
        for (int c = 0; c < cells; c++) {
            for (int64_t t = 0; t < T; t++) cp[t] = pred[t * cells + c];
            for (int r = 0; r < R; r++)
                memcpy(cr + (int64_t)r * T, rep + ((int64_t)r * cells + c) * T,
                       (size_t)T * sizeof(float));
            m->split_half[c] = rc_split_half(cr, R, T, RC_SPLIT_HALF_SPLITS, RC_SPLIT_HALF_SEED);
            m->reliability[c] = rc_spearman_brown(m->split_half[c]);
            m->ceiling[c] = isfinite(m->reliability[c]) ? sqrt(fmax(m->reliability[c], 0.0)) : NAN;
            m->oracle[c] = rc_jackknife_oracle(cr, R, T);
            m->feve[c] = rc_feve(cp, cr, R, T, &m->fev[c]);
        }
        free(cp);
        free(cr);
    }
    m->mean_r = rc_mean_finite(m->r, cells);
    m->mean_reliability = rc_mean_finite(m->reliability, cells);
    m->mean_ceiling = rc_mean_finite(m->ceiling, cells);
    m->mean_oracle = rc_mean_finite(m->oracle, cells);
    m->mean_feve = rc_mean_finite(m->feve, cells);
    m->mean_fev = rc_mean_finite(m->fev, cells);
    return 0;
}
