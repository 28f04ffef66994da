/* phenomena_stim.c — the stimulus generators of the phenomena battery (phenomena.h) and two
 * small analysis helpers (DFT amplitude, peak, spectral centre of mass, binned nonlinearity). Each generator follows torch-deep-retina's stimuli.py (reference
 * §5.1) in model-input z-units; where the reference is ill-defined or buggy, the evidently
 * intended stimulus is drawn and the difference is noted here and in docs/phenomena.md.
 * Invariants: frames are (T, H, W) row-major float32; x is the column (the horizontal axis),
 * the frame centre is W/2 (integer division, as the reference's nx // 2); every random draw
 * is rc_rng (seed, stream, index), so a stimulus is a pure function of its arguments.
 */
#include "phenomena.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

void rc_pheno_flash(float *fr, int nsamples, int H, int W, int duration, int delay,
                    float intensity)
{
    const int64_t P = (int64_t)H * W;
    for (int t = 0; t < nsamples; t++) {
        float v = t >= delay && t < delay + duration ? intensity : 0.0f;
        for (int64_t i = 0; i < P; i++) fr[t * P + i] = v;
    }
}

int rc_pheno_osr_stim(float *fr, int H, int W, int duration, int interval, int nflashes,
                      float intensity, int *omitted_frame)
{
    /* reference osr_stim: concat(start_pad 6*7, zero_pad 40-6, nflashes x flash(duration,
     * interval, interval+duration), the omitted flash, zero_pad) */
    const int start_pad = 42, zero_pad = 34, cyc = interval + duration;
    const int T = start_pad + zero_pad + (nflashes + 1) * cyc + zero_pad;
    if (omitted_frame) *omitted_frame = start_pad + zero_pad + nflashes * cyc + interval;
    if (!fr) return T;
    const int64_t P = (int64_t)H * W;
    for (int t = 0; t < T; t++) {
        int u = t - start_pad - zero_pad, k = u / cyc, ph = u % cyc;
        float v = u >= 0 && k < nflashes && ph >= interval ? intensity : 0.0f;
        for (int64_t i = 0; i < P; i++) fr[t * P + i] = v;
    }
    return T;
}

void rc_pheno_square(float *out, int n, int halfperiod, double phase, float intensity)
{
    if (halfperiod <= 0) {
        for (int i = 0; i < n; i++) out[i] = 1.0f;
        return;
    }
    int off = (int)(2.0 * phase * halfperiod);
    for (int i = 0; i < n; i++) out[i] = ((i + off) / halfperiod) % 2 == 0 ? intensity : -intensity;
}

void rc_pheno_grating(float *img, int H, int W, int width, double phase, int sine)
{
    float row[4096];
    int w = W < 4096 ? W : 4096;
    if (sine) {
        for (int x = 0; x < w; x++)
            row[x] = (float)sin(M_PI * x / width + 2.0 * M_PI * phase);
    } else {
        rc_pheno_square(row, w, width, phase, 1.0f);
    }
    for (int y = 0; y < H; y++) memcpy(img + (int64_t)y * W, row, (size_t)w * sizeof *row);
}

void rc_pheno_reverse(float *fr, const float *img, int H, int W, int halfperiod, int n)
{
    const int64_t P = (int64_t)H * W;
    for (int t = 0; t < n; t++) {
        const float s = (t / halfperiod) % 2 == 0 ? 1.0f : -1.0f;   /* square(halfperiod) */
        for (int64_t i = 0; i < P; i++) fr[t * P + i] = s * img[i];
    }
}

void rc_pheno_bar(float *img, int H, int W, double c, int width, float intensity, int us)
{
    /* stim.bar: on a canvas upsampled by us, columns [cx - w/2, cx + w/2) with
     * cx = int(c*us + (W*us)//2) (truncation as Python's int), then downscale_local_mean:
     * pixel x gets intensity * (covered sub-columns) / us. Full height. */
    const int nxu = W * us, wu = width * us;
    const int cx = (int)(c * us + (double)(nxu / 2));
    int lo = cx - wu / 2, hi = cx + wu / 2;
    if (lo < 0) lo = 0;
    if (hi > nxu) hi = nxu;
    float row[4096];
    int w = W < 4096 ? W : 4096;
    for (int x = 0; x < w; x++) {
        int a = x * us > lo ? x * us : lo, b = (x + 1) * us < hi ? (x + 1) * us : hi;
        row[x] = b > a ? intensity * (float)(b - a) / (float)us : 0.0f;
    }
    for (int y = 0; y < H; y++) memcpy(img + (int64_t)y * W, row, (size_t)w * sizeof *row);
}

int rc_pheno_drifting_bar(float *fr, double *centers, int H, int W, double speed, int width,
                          double x0, double x1)
{
    /* driftingbar: npts = 1 + int((x1 - x0) / velocity), centres linspace(x0, x1, npts) */
    double q = (x1 - x0) / speed;
    int npts = 1 + (int)(q < 0 ? -q : q);
    const int64_t P = (int64_t)H * W;
    for (int t = 0; t < npts; t++) {
        double c = npts > 1 ? x0 + (x1 - x0) * (double)t / (double)(npts - 1) : x0;
        if (centers) centers[t] = c;
        if (fr) rc_pheno_bar(fr + t * P, H, W, c, width, -1.0f, 5);
    }
    return npts;
}

void rc_pheno_flicker(float *fr, int n, int H, int W, const float *contrast, int hold,
                      uint64_t seed, uint64_t stream)
{
    const int64_t P = (int64_t)H * W;
    for (int t = 0; t < n; t++) {
        float v = contrast[t] * rc_rng_normal(seed, stream, (uint64_t)(t / hold));
        for (int64_t i = 0; i < P; i++) fr[t * P + i] = v;
    }
}

/* One OMS frame (H, W): vertical stripes of `width` px (1/0), shifted by off_fg inside the disk
 * of `radius` at the centre and by off_bg outside it. */
static void oms_frame(float *fr, int H, int W, int width, double radius, int off_fg, int off_bg)
{
    const double cy = H / 2, cx = W / 2;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dy = y - cy, dx = x - cx;
            int o = dy * dy + dx * dx < radius * radius ? off_fg : off_bg;
            int m = ((x - o) % (2 * width) + 2 * width) % (2 * width);
            fr[(int64_t)y * W + x] = m < width ? 1.0f : 0.0f;
        }
}

int rc_pheno_oms_stim(float *fr, int H, int W, int width, double radius, int pre, int n,
                      int post, double p_bg, double p_fg, int sync, uint64_t seed,
                      uint64_t stream)
{
    /* oms_random_differential with stim.random_differential_circle: the reference draws the
     * global condition's background and foreground step decisions separately even with
     * sync_jitters (so "global" is not quite global) and orients the differential and global
     * gratings differently; here both conditions use vertical stripes moving horizontally,
     * and the global background takes exactly the disk's steps. The disk's draws come from the
     * same stream in both conditions, so the disk content is identical between them.
     * Stripes are periodic (stim.stripes fills the remainder W mod 2*width with ones). */
    const int T = pre + n + post;
    if (!fr) return T;
    const int64_t P = (int64_t)H * W;
    const uint64_t L_FG = stream * 16 + 1, L_BG = stream * 16 + 3;
    int off_bg = 0, off_fg = 0;
    for (int t = 0; t < T; t++) {
        int j = t - pre;   /* jitter frame index; static copies before and after */
        if (j >= 0 && j < n) {
            int fg = rc_rng_uniform(seed, L_FG, 2 * (uint64_t)j) < (float)p_fg;
            int dfg = rc_rng_uniform(seed, L_FG, 2 * (uint64_t)j + 1) < 0.5f ? -1 : 1;
            int bg = rc_rng_uniform(seed, L_BG, 2 * (uint64_t)j) < (float)p_bg;
            int dbg = rc_rng_uniform(seed, L_BG, 2 * (uint64_t)j + 1) < 0.5f ? -1 : 1;
            if (sync) { bg = fg; dbg = dfg; }
            if (fg) off_fg += dfg;
            if (bg) off_bg += dbg;
        }
        if (j == 0 && t > 0) {
            /* the pre frames are copies of jitter frame 0: rewrite them now that it is known */
            for (int k = 0; k < pre; k++) oms_frame(fr + k * P, H, W, width, radius, off_fg, off_bg);
        }
        oms_frame(fr + t * P, H, W, width, radius, off_fg, off_bg);
    }
    return T;
}

double rc_pheno_dft_amp(const float *x, int n, int k)
{
    double re = 0, im = 0;
    for (int t = 0; t < n; t++) {
        double a = 2.0 * M_PI * (double)k * (double)t / (double)n;
        re += x[t] * cos(a);
        im -= x[t] * sin(a);
    }
    return sqrt(re * re + im * im);
}

double rc_pheno_peak(const float *x, int lo, int hi, double *peak)
{
    int b = lo;
    for (int i = lo; i < hi; i++)
        if (x[i] > x[b] || (isnan(x[b]) && !isnan(x[i]))) b = i;
    double pos = b, val = x[b];
    if (b > lo && b + 1 < hi) {
        double ym = x[b - 1], y0 = x[b], yp = x[b + 1], den = ym - 2 * y0 + yp;
        if (den < 0) {
            double d = 0.5 * (ym - yp) / den;
            if (d > 0.5) d = 0.5;
            if (d < -0.5) d = -0.5;
            pos = b + d;
            val = y0 - 0.25 * (ym - yp) * d;
        }
    }
    if (peak) *peak = val;
    return pos;
}

double rc_pheno_com_hz(const float *temporal, int history, float *power)
{
    /* The reference (fast_contrast_adaptation) cubic-upsamples the 40-lag kernel to 1000
     * points over the same 400 ms and takes fftfreq(1000, 0.4 ms): bins 0, 2.5, .., 15 Hz. At
     * those frequencies the upsampled kernel's DFT is the 40-sample DFT up to interpolation
     * error, so the DFT is taken directly (10 ms frames, N = 40). The reference sums f * P over
     * the 7 bins with P normalized to its maximum, not to its sum (not a centre of mass: it
     * grows with the spectrum's width); the centre of mass sum(f P) / sum(P) is returned. */
    enum { N = 40, K = 7 };
    double x[N], P[N / 2 + 1], pmax = 0;
    for (int j = 0; j < N; j++) {
        int idx = history - (N - j);        /* x[N-1] is lag 1 */
        x[j] = idx >= 0 ? temporal[idx] : 0.0;
    }
    for (int k = 0; k <= N / 2; k++) {
        double re = 0, im = 0;
        for (int j = 0; j < N; j++) {
            double a = 2.0 * M_PI * k * j / N;
            re += x[j] * cos(a);
            im -= x[j] * sin(a);
        }
        P[k] = re * re + im * im;
        if (P[k] > pmax) pmax = P[k];
    }
    double sp = 0, sfp = 0;
    for (int k = 0; k < K; k++) {
        double p = pmax > 0 ? P[k] / pmax : 0.0;
        if (power) power[k] = (float)p;
        sp += p;
        sfp += p * k / (N * RC_PHENO_DT_MS * 1e-3);
    }
    return sp > 0 ? sfp / sp : NAN;
}

typedef struct { float x, y; } xy_pair;

static int cmp_x(const void *a, const void *b)
{
    float xa = ((const xy_pair *)a)->x, xb = ((const xy_pair *)b)->x;
    return xa < xb ? -1 : xa > xb;
}

int rc_pheno_nonlinearity(const float *x, const float *y, int64_t n, int nbins, float *bx,
                          float *by, double *gain)
{
    *gain = NAN;
    for (int b = 0; b < nbins; b++) bx[b] = by[b] = NAN;
    if (n < 2 || nbins < 1) return 0;
    double mx = 0, vx = 0;
    for (int64_t i = 0; i < n; i++) mx += x[i];
    mx /= (double)n;
    for (int64_t i = 0; i < n; i++) vx += (x[i] - mx) * (x[i] - mx);
    double sd = sqrt(vx / (double)n);
    /* bins of equal count along sorted x (Binterp): bin b holds ranks [b n / nbins, (b+1) n / nbins) */
    xy_pair *q = malloc((size_t)n * sizeof *q);
    if (!q) return -1;
    for (int64_t i = 0; i < n; i++) { q[i].x = x[i]; q[i].y = y[i]; }
    qsort(q, (size_t)n, sizeof *q, cmp_x);
    for (int b = 0; b < nbins; b++) {
        int64_t lo = (int64_t)b * n / nbins, hi = (int64_t)(b + 1) * n / nbins;
        double sx = 0, sy = 0;
        for (int64_t r = lo; r < hi; r++) { sx += q[r].x; sy += q[r].y; }
        bx[b] = hi > lo ? (float)(sx / (double)(hi - lo)) : NAN;
        by[b] = hi > lo ? (float)(sy / (double)(hi - lo)) : NAN;
    }
    free(q);
    /* gain: least-squares slope of y on x over |x - mean| <= sd */
    double s0 = 0, s1 = 0, s2 = 0, sy = 0, sxy = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mx;
        if (fabs(d) > sd) continue;
        s0 += 1; s1 += d; s2 += d * d; sy += y[i]; sxy += d * y[i];
    }
    double den = s0 * s2 - s1 * s1;
    if (s0 > 1 && den > 0) *gain = (s0 * sxy - s1 * sy) / den;
    return 0;
}
