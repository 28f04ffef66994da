/* synth.c — the simulated retina and its recording writer (model and layout in synth.h).
 *
 * Invariants:
 *  - every random number is a pure function of (seed, purpose, split, index) through splitmix64
 *    (no global state): images, jitter, white noise, cell parameters and spikes can be
 *    regenerated independently, and the file is byte-identical for a seed (no time stamps).
 *  - lambda(t) is computed before frame t enters the retina, so it depends on frames < t only;
 *    all temporal kernels together span lags 1..39 (bipolar 1..24, gain control 0..7 on top,
 *    amacrine 1..8 on top of that).
 *  - frames stream to disk in blocks (bounded memory); per-cell rates are held as (cells,T)
 *    floats for the smoothing pass (4*cells bytes per frame).
 *  - the interneuron files (rc_synth_write_interneurons) use their own random purposes
 *    (P_INTR_*), so they never change the recording's draws; they hold the whole movie in memory.
 */
#include "synth.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "h5util.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRF rc_errf
#define NPIX 50                 /* frame side */
#define IMG 128                 /* 1/f^2 image side (periodic) */
#define IMG_FRAMES 100          /* frames per image: one second */
#define BLK 1000                /* frames per streamed block (a multiple of IMG_FRAMES) */
#define BIP_LEN 24              /* bipolar filter lags 1..24 */
#define CGC_LEN 8               /* gain-control lags 0..7 */
#define AM_LEN 8                /* amacrine lags 1..8 */
#define DT 0.01

enum { P_IMG = 1, P_JIT, P_LUM, P_WN, P_SPK, P_CELL, P_INTR_STIM, P_INTR_NOISE };
enum { CELL_OFF = 0, CELL_ON = 1, CELL_ONOFF = 2 };
enum { SPLIT_TRAIN = 0, SPLIT_TEST = 1, SPLIT_CAL = 2 };

/* ---------------------------------------------------------------------------------------- */
/* Counter-based randomness                                                                   */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t key4(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(seed ^ mix64(a)) ^ b) ^ c);
}

/* Uniform in (0,1) from (key, i): 53 random bits. */
static double unif(uint64_t key, uint64_t i)
{
    return ((double)(mix64(key ^ mix64(i)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double normal(uint64_t key, uint64_t i)
{
    double u1 = unif(key, 2 * i), u2 = unif(key, 2 * i + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---------------------------------------------------------------------------------------- */
/* 1/f^2 images by filtering white noise in the Fourier domain                                */

static void fft1(double *re, double *im, int n, int inv)
{
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        double ang = (inv ? 2 : -2) * 3.141592653589793 / len;
        double wr = cos(ang), wi = sin(ang);
        for (int i = 0; i < n; i += len) {
            double cr = 1, ci = 0;
            for (int k = 0; k < len / 2; k++) {
                double ur = re[i + k], ui = im[i + k];
                double vr = re[i + k + len / 2] * cr - im[i + k + len / 2] * ci;
                double vi = re[i + k + len / 2] * ci + im[i + k + len / 2] * cr;
                re[i + k] = ur + vr; im[i + k] = ui + vi;
                re[i + k + len / 2] = ur - vr; im[i + k + len / 2] = ui - vi;
                double t = cr * wr - ci * wi;
                ci = cr * wi + ci * wr;
                cr = t;
            }
        }
    }
}

static void fft2(double *re, double *im, int n, int inv)
{
    double *cr = malloc(2 * (size_t)n * sizeof *cr), *ci = cr + n;
    for (int r = 0; r < n; r++) fft1(re + r * n, im + r * n, n, inv);
    for (int c = 0; c < n; c++) {
        for (int r = 0; r < n; r++) { cr[r] = re[r * n + c]; ci[r] = im[r * n + c]; }
        fft1(cr, ci, n, inv);
        for (int r = 0; r < n; r++) { re[r * n + c] = cr[r]; im[r * n + c] = ci[r]; }
    }
    free(cr);
}

int rc_synth_image(uint64_t seed, uint64_t index, int n, double *out)
{
    if (n < 4 || (n & (n - 1))) return -1;
    double *im = calloc((size_t)n * n, sizeof *im);
    if (!im) return -1;
    uint64_t k = key4(seed, P_IMG, index, 0);
    for (int i = 0; i < n * n; i++) out[i] = normal(k, (uint64_t)i);
    fft2(out, im, n, 0);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            int fr = r <= n / 2 ? r : r - n, fc = c <= n / 2 ? c : c - n;
            double f = sqrt((double)(fr * fr + fc * fc));
            double a = f > 0 ? 1.0 / f : 0.0;       /* amplitude 1/f: power 1/f^2 */
            out[r * n + c] *= a;
            im[r * n + c] *= a;
        }
    fft2(out, im, n, 1);
    double m = 0, v = 0;
    for (int i = 0; i < n * n; i++) m += out[i];
    m /= (double)n * n;
    for (int i = 0; i < n * n; i++) v += (out[i] - m) * (out[i] - m);
    double sd = sqrt(v / ((double)n * n));
    for (int i = 0; i < n * n; i++) out[i] = (out[i] - m) / (sd > 0 ? sd : 1);
    free(im);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Stimulus generator: frame values v in [0,1]                                                */

typedef struct {
    uint64_t seed;
    int split, kind, u8;
    double wn_contrast;
    int64_t cur_img;
    double img[IMG * IMG];
} stimgen;

/* Frames [t0, t0+n) of a split into v (n, 50, 50); t0 and n multiples of IMG_FRAMES except at the end. */
static void stim_block(stimgen *g, int64_t t0, int64_t n, float *v)
{
    const int P = NPIX * NPIX;
    if (g->kind == RC_SYNTH_WHITENOISE) {
        for (int64_t k = 0; k < n; k++) {
            uint64_t key = key4(g->seed, P_WN, (uint64_t)g->split, (uint64_t)(t0 + k));
            float lo = (float)(0.5 - 0.5 * g->wn_contrast), hi = (float)(0.5 + 0.5 * g->wn_contrast);
            for (int i = 0; i < P; i += 64) {
                uint64_t bits = mix64(key ^ (uint64_t)i);
                for (int j = 0; j < 64 && i + j < P; j++) v[k * P + i + j] = (bits >> j) & 1 ? hi : lo;
            }
        }
    } else {
        for (int64_t k = 0; k < n;) {
            int64_t t = t0 + k, m = t / IMG_FRAMES, f0 = m * IMG_FRAMES;
            /* image m (independent per split), its luminance, contrast and jitter path */
            uint64_t id = (uint64_t)g->split << 40 | (uint64_t)m;
            if (g->cur_img != (int64_t)id) { rc_synth_image(g->seed, id, IMG, g->img); g->cur_img = (int64_t)id; }
            uint64_t kl = key4(g->seed, P_LUM, (uint64_t)g->split, (uint64_t)m);
            double mean = 0.35 + 0.3 * unif(kl, 0), con = 0.15 + 0.25 * unif(kl, 1);
            uint64_t kj = key4(g->seed, P_JIT, (uint64_t)g->split, (uint64_t)m);
            int oy = (int)(unif(kj, 0) * IMG), ox = (int)(unif(kj, 1) * IMG);
            for (int64_t f = f0; f < f0 + IMG_FRAMES && k < n; f++) {
                /* fixational drift: each axis steps -1/0/+1 pixel per frame (p = 0.2 each way) */
                if (f > f0) {
                    double a = unif(kj, (uint64_t)(2 * (f - f0) + 2)), b = unif(kj, (uint64_t)(2 * (f - f0) + 3));
                    oy += a < 0.2 ? -1 : a > 0.8 ? 1 : 0;
                    ox += b < 0.2 ? -1 : b > 0.8 ? 1 : 0;
                }
                if (f < t) continue;
                float *o = v + k * P;
                for (int r = 0; r < NPIX; r++)
                    for (int c = 0; c < NPIX; c++) {
                        int ir = ((oy + r) % IMG + IMG) % IMG, ic = ((ox + c) % IMG + IMG) % IMG;
                        double x = mean * (1.0 + con * g->img[ir * IMG + ic]);
                        o[r * NPIX + c] = (float)(x < 0 ? 0 : x > 1 ? 1 : x);
                    }
                k++;
            }
        }
    }
    if (g->u8)   /* the retina sees exactly the stored 8-bit values */
        for (int64_t i = 0; i < n * P; i++) v[i] = (float)(floor(v[i] * 255.0 + 0.5) / 255.0);
}

/* ---------------------------------------------------------------------------------------- */
/* The retina                                                                                 */

typedef struct {
    /* outer retina and bipolar cells */
    double sigma_c, sigma_s, w_s;
    double on_tau1, on_tau2, on_beta, off_tau1, off_tau2, off_beta, filt_order;
    /* gain control, rectification, amacrine */
    double cgc_sigma, cgc_tau, cgc_k, theta_b, am_sigma, am_tau, w_am;
    /* ganglion output */
    double alpha;
    /* calibrated */
    double u_ref, v_sd;
    /* filters */
    float f_on[BIP_LEN + 1], f_off[BIP_LEN + 1], g_cgc[CGC_LEN], h_am[AM_LEN + 1];
} retina_par;

typedef struct {
    int row, col, type;
    double sigma, rate, theta;            /* drawn */
    double g_mean, g_sd, gain;            /* calibrated */
    int r;                                /* pooling radius */
    float *w;                             /* (2r+1)^2 pooling weights */
} cell_par;

typedef struct { int r; float k[32]; } gauss1;

static void gauss_make(gauss1 *g, double sigma, int r)
{
    double s = 0;
    g->r = r;
    for (int i = -r; i <= r; i++) s += exp(-0.5 * i * i / (sigma * sigma));
    for (int i = -r; i <= r; i++) g->k[i + r] = (float)(exp(-0.5 * i * i / (sigma * sigma)) / s);
}

/* Separable blur with zero padding: out = G * in on the 50x50 grid. tmp: (50+2*15)*50 floats.
 * Loops run tap-outer, pixel-inner over zero-padded rows so that they vectorize. */
#define PADMAX 15
static void blur(const gauss1 *g, const float *in, float *out, float *tmp)
{
    const int n = NPIX, r = g->r, np = NPIX + 2 * PADMAX;
    float row[NPIX + 2 * PADMAX];
    for (int i = 0; i < np; i++) row[i] = 0;
    /* horizontal: tmp rows PADMAX..PADMAX+n-1 of a vertically padded image */
    for (int i = 0; i < PADMAX * n; i++) { tmp[i] = 0; tmp[(PADMAX + n) * n + i] = 0; }
    for (int y = 0; y < n; y++) {
        memcpy(row + PADMAX, in + y * n, (size_t)n * sizeof *row);
        float *restrict o = tmp + (PADMAX + y) * n;
        for (int x = 0; x < n; x++) o[x] = 0;
        for (int i = -r; i <= r; i++) {
            const float k = g->k[i + r], *restrict src = row + PADMAX + i;
#pragma omp simd
            for (int x = 0; x < NPIX; x++) o[x] += k * src[x];
        }
    }
    for (int y = 0; y < n; y++) {
        float *restrict o = out + y * n;
        for (int x = 0; x < n; x++) o[x] = 0;
        for (int i = -r; i <= r; i++) {
            const float k = g->k[i + r], *restrict src = tmp + (PADMAX + y + i) * n;
#pragma omp simd
            for (int x = 0; x < NPIX; x++) o[x] += k * src[x];
        }
    }
}

typedef struct {
    const retina_par *p;
    cell_par *cells;
    int ncells;
    gauss1 gc, gs, g3, ga;
    float *D, *Q, *Pa;                    /* rings: (BIP_LEN|CGC_LEN|AM_LEN, 2500) */
    float *u_on, *u_off, *v_on, *v_off, *b_on, *b_off, *t1, *t2, *t3;
    int64_t t;
    /* calibration accumulators (central 30x30) */
    int stage;                            /* 0 u only, 1 v, 2 full */
    double su2, nu, sv, sv2, nv;
    int64_t warmup;                       /* frames skipped by the calibration statistics */
    double *gtrace;                       /* (frames, cells) generator signal, or NULL */
    float *amac;                          /* (2500) copy of the amacrine signal a, or NULL */
} retina;

static float softplusf(float x) { return x > 20 ? x : log1pf(expf(x)); }

/* lambda(t) for every cell from frames < t, then take frame t (contrast s, 2500). */
static void retina_step(retina *R, const float *s, double *lam)
{
    const retina_par *p = R->p;
    const int P = NPIX * NPIX;
    const int64_t t = R->t;
    /* bipolar drive: biphasic filters over the DoG ring (lags 1..24) */
    for (int i = 0; i < P; i++) { R->u_on[i] = 0; R->u_off[i] = 0; }
    for (int k = 1; k <= BIP_LEN; k++) {
        const float *d = R->D + ((t - k) % BIP_LEN + BIP_LEN) % BIP_LEN * P;
        const float fo = p->f_on[k], ff = p->f_off[k];
        float *restrict uon = R->u_on, *restrict uoff = R->u_off;
#pragma omp simd
        for (int i = 0; i < P; i++) { uon[i] += fo * d[i]; uoff[i] -= ff * d[i]; }
    }
    if (R->stage == 0) {
        for (int y = 10; y < 40 && t >= R->warmup; y++)
            for (int x = 10; x < 40; x++) {
                int i = y * NPIX + x;
                R->su2 += 0.5 * ((double)R->u_on[i] * R->u_on[i] + (double)R->u_off[i] * R->u_off[i]);
                R->nu += 1;
            }
    } else {
        /* contrast gain control: local contrast over 8 frames (lags 0..7 of u), divisive */
        float *q = R->Q + (t % CGC_LEN) * P;
        for (int i = 0; i < P; i++) R->t1[i] = 0.5f * (R->u_on[i] * R->u_on[i] + R->u_off[i] * R->u_off[i]);
        blur(&R->g3, R->t1, q, R->t2);
        for (int i = 0; i < P; i++) R->t1[i] = 0;
        for (int j = 0; j < CGC_LEN; j++) {
            const float *restrict qq = R->Q + ((t - j) % CGC_LEN + CGC_LEN) % CGC_LEN * P;
            float *restrict acc = R->t1;
            const float gj = p->g_cgc[j];
#pragma omp simd
            for (int i = 0; i < P; i++) acc[i] += gj * qq[i];
        }
        const float k = (float)(p->cgc_k / p->u_ref);
#pragma omp simd
        for (int i = 0; i < P; i++) {
            float gain = 1.0f / (1.0f + k * sqrtf(R->t1[i]));
            R->v_on[i] = R->u_on[i] * gain;
            R->v_off[i] = R->u_off[i] * gain;
        }
        if (R->stage == 1) {
            for (int y = 10; y < 40 && t >= R->warmup; y++)
                for (int x = 10; x < 40; x++) {
                    int i = y * NPIX + x;
                    R->sv += R->v_on[i] + R->v_off[i];
                    R->sv2 += (double)R->v_on[i] * R->v_on[i] + (double)R->v_off[i] * R->v_off[i];
                    R->nv += 2;
                }
        } else {
            const float th = (float)(p->theta_b * p->v_sd), wa = (float)p->w_am;
            /* amacrine: wide-field pool of both subunit types, lags 1..8 */
            for (int i = 0; i < P; i++) R->t1[i] = 0;
            for (int j = 1; j <= AM_LEN; j++) {
                const float *restrict pp = R->Pa + ((t - j) % AM_LEN + AM_LEN) % AM_LEN * P;
                float *restrict acc = R->t1;
                const float hj = p->h_am[j];
#pragma omp simd
                for (int i = 0; i < P; i++) acc[i] += hj * pp[i];
            }
            if (R->amac) memcpy(R->amac, R->t1, (size_t)P * sizeof *R->amac);   /* t1 is reused below */
            for (int i = 0; i < P; i++) {
                float a = R->t1[i];
                R->t3[i] = fmaxf(R->v_on[i] - th, 0) + fmaxf(R->v_off[i] - th, 0);   /* b_pre sum */
                R->b_on[i] = fmaxf(R->v_on[i] - th - wa * a, 0);
                R->b_off[i] = fmaxf(R->v_off[i] - th - wa * a, 0);
            }
            blur(&R->ga, R->t3, R->Pa + (t % AM_LEN) * P, R->t2);
            /* ganglion cells */
            for (int c = 0; c < R->ncells; c++) {
                const cell_par *cp = &R->cells[c];
                double won = cp->type == CELL_OFF ? 0 : cp->type == CELL_ON ? 1 : 0.6;
                double woff = cp->type == CELL_ON ? 0 : cp->type == CELL_OFF ? 1 : 0.6;
                double g = 0;
                int n = 2 * cp->r + 1;
                for (int dy = -cp->r; dy <= cp->r; dy++)
                    for (int dx = -cp->r; dx <= cp->r; dx++) {
                        int y = cp->row + dy, x = cp->col + dx;
                        if (y < 0 || y >= NPIX || x < 0 || x >= NPIX) continue;
                        double w = cp->w[(dy + cp->r) * n + dx + cp->r];
                        g += w * (won * R->b_on[y * NPIX + x] + woff * R->b_off[y * NPIX + x]);
                    }
                if (R->gtrace) R->gtrace[t * R->ncells + c] = g;
                double z = cp->g_sd > 0 ? (g - cp->g_mean) / cp->g_sd : 0;
                double l = softplusf((float)(p->alpha * (z - cp->theta)));
                if (lam) lam[c] = cp->gain * l;
            }
        }
    }
    /* outer retina: DoG of the new frame into the ring */
    float *d = R->D + (t % BIP_LEN) * P;
    blur(&R->gc, s, d, R->t2);
    blur(&R->gs, s, R->t1, R->t2);
    for (int i = 0; i < P; i++) d[i] -= (float)p->w_s * R->t1[i];
    R->t++;
}

static int retina_init(retina *R, const retina_par *p, cell_par *cells, int ncells, int stage)
{
    memset(R, 0, sizeof *R);
    R->p = p;
    R->cells = cells;
    R->ncells = ncells;
    R->stage = stage;
    gauss_make(&R->gc, p->sigma_c, 3);
    gauss_make(&R->gs, p->sigma_s, 7);
    gauss_make(&R->g3, p->cgc_sigma, 7);
    gauss_make(&R->ga, p->am_sigma, 5);
    const size_t P = NPIX * NPIX;
    R->D = calloc((BIP_LEN + CGC_LEN + AM_LEN + 9) * P + 2 * PADMAX * NPIX, sizeof(float));
    if (!R->D) return -1;
    R->Q = R->D + BIP_LEN * P;
    R->Pa = R->Q + CGC_LEN * P;
    float *w = R->Pa + AM_LEN * P;
    R->u_on = w; R->u_off = w + P; R->v_on = w + 2 * P; R->v_off = w + 3 * P;
    R->b_on = w + 4 * P; R->b_off = w + 5 * P; R->t1 = w + 6 * P; R->t3 = w + 7 * P; R->t2 = w + 8 * P;  /* t2 last: (50+30)*50 */
    return 0;
}

static void retina_free(retina *R) { free(R->D); }

/* Biphasic filter: difference of two gamma-like lobes, latency 1 frame, tapered to 0 at lag 24. */
static void biphasic(float *f, double tau1, double tau2, double beta, double n)
{
    double a[BIP_LEN + 1], b[BIP_LEN + 1], sa = 0, sb = 0;
    for (int k = 0; k <= BIP_LEN; k++) {
        double x = k - 1.0;
        a[k] = x > 0 ? pow(x / tau1, n) * exp(-x / tau1) : 0;
        b[k] = x > 0 ? pow(x / tau2, n) * exp(-x / tau2) : 0;
        double taper = k <= 18 ? 1 : 0.5 * (1 + cos(3.141592653589793 * (k - 18) / (BIP_LEN - 18 + 1)));
        a[k] *= taper; b[k] *= taper;
        sa += a[k]; sb += b[k];
    }
    for (int k = 0; k <= BIP_LEN; k++) f[k] = (float)(a[k] / sa - beta * b[k] / sb);
}

static void retina_defaults(retina_par *p)
{
    memset(p, 0, sizeof *p);
    p->sigma_c = 0.9; p->sigma_s = 2.4; p->w_s = 0.8;
    p->filt_order = 4;
    p->off_tau1 = 1.25; p->off_tau2 = 2.2; p->off_beta = 0.7;
    p->on_tau1 = 1.5; p->on_tau2 = 2.4; p->on_beta = 0.6;
    p->cgc_sigma = 3.0; p->cgc_tau = 3.0; p->cgc_k = 1.5;
    p->theta_b = 0.25;
    p->am_sigma = 2.0; p->am_tau = 2.0; p->w_am = 0.6;
    p->alpha = 2.5;
    p->u_ref = 1; p->v_sd = 1;
}

/* The scalar parameters a user may override with --set NAME=VALUE (and that go to /truth). */
typedef struct { const char *name; size_t off; double lo, hi; } par_desc;
#define PD(n, f, lo, hi) {n, offsetof(retina_par, f), lo, hi}
static const par_desc PARS[] = {
    PD("sigma_center", sigma_c, 0.3, 3), PD("sigma_surround", sigma_s, 0.5, 3.5),
    PD("surround_weight", w_s, 0, 1.5), PD("filter_order", filt_order, 1, 8),
    PD("on_tau1", on_tau1, 0.3, 4), PD("on_tau2", on_tau2, 0.3, 4), PD("on_beta", on_beta, 0, 1.5),
    PD("off_tau1", off_tau1, 0.3, 4), PD("off_tau2", off_tau2, 0.3, 4), PD("off_beta", off_beta, 0, 1.5),
    PD("cgc_sigma", cgc_sigma, 0.5, 4), PD("cgc_tau", cgc_tau, 0.3, 20), PD("cgc_k", cgc_k, 0, 20),
    PD("theta_bipolar", theta_b, -3, 3), PD("amacrine_sigma", am_sigma, 0.5, 3),
    PD("amacrine_tau", am_tau, 0.3, 20), PD("amacrine_weight", w_am, 0, 10),
    PD("output_alpha", alpha, 0.1, 20),
};
#define N_PARS (sizeof PARS / sizeof PARS[0])

static int apply_sets(retina_par *p, const rc_synth_opts *o, char *err, size_t errlen)
{
    for (int i = 0; i < o->n_sets; i++) {
        const char *s = o->sets[i], *eq = strchr(s, '=');
        size_t k = 0;
        for (; eq && k < N_PARS; k++)
            if (strlen(PARS[k].name) == (size_t)(eq - s) && !strncmp(PARS[k].name, s, (size_t)(eq - s))) break;
        if (!eq || k == N_PARS) {
            char names[800] = "";
            for (size_t j = 0; j < N_PARS; j++) snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? " " : "", PARS[j].name);
            return ERRF(err, errlen, "--set '%s': expected NAME=VALUE with NAME one of: %s", s, names);
        }
        char *end;
        double v = strtod(eq + 1, &end);
        if (*end || end == eq + 1 || !(v >= PARS[k].lo && v <= PARS[k].hi))
            return ERRF(err, errlen, "--set %s: value '%s' not a number in [%g, %g]", PARS[k].name, eq + 1, PARS[k].lo, PARS[k].hi);
        *(double *)((char *)p + PARS[k].off) = v;
    }
    return 0;
}

/* Filters from the scalar parameters. */
static void retina_filters(retina_par *p)
{
    biphasic(p->f_on, p->on_tau1, p->on_tau2, p->on_beta, p->filt_order);
    biphasic(p->f_off, p->off_tau1, p->off_tau2, p->off_beta, p->filt_order);
    double s = 0;
    for (int j = 0; j < CGC_LEN; j++) s += exp(-j / p->cgc_tau);
    for (int j = 0; j < CGC_LEN; j++) p->g_cgc[j] = (float)(exp(-j / p->cgc_tau) / s);
    s = 0;
    p->h_am[0] = 0;
    for (int j = 1; j <= AM_LEN; j++) s += j * exp(-j / p->am_tau);
    for (int j = 1; j <= AM_LEN; j++) p->h_am[j] = (float)(j * exp(-j / p->am_tau) / s);
}

/* Cells: centres in the central region [18,31]^2 at least 3 px apart; OFF, ON, OFF, ON-OFF, ... */
static int cells_make(uint64_t seed, int n, cell_par *cells)
{
    static const int pattern[4] = {CELL_OFF, CELL_ON, CELL_OFF, CELL_ONOFF};
    uint64_t k = key4(seed, P_CELL, 0, 0);
    uint64_t draw = 0;
    for (int c = 0; c < n; c++) {
        cell_par *cp = &cells[c];
        memset(cp, 0, sizeof *cp);
        for (int tries = 0;; tries++) {
            cp->row = 18 + (int)(unif(k, draw++) * 14);
            cp->col = 18 + (int)(unif(k, draw++) * 14);
            int ok = 1;
            for (int j = 0; j < c && tries < 1000; j++) {
                int dr = cells[j].row - cp->row, dc = cells[j].col - cp->col;
                if (dr * dr + dc * dc < 9) ok = 0;
            }
            if (ok) break;
        }
        cp->type = pattern[c % 4];
        cp->sigma = 1.2 + 0.6 * unif(k, draw++);
        cp->rate = 4.0 + 12.0 * unif(k, draw++);
        cp->theta = 0.3 + 0.6 * unif(k, draw++);
        cp->r = (int)ceil(2.5 * cp->sigma);
        int m = 2 * cp->r + 1;
        cp->w = malloc((size_t)m * m * sizeof *cp->w);
        if (!cp->w) return -1;
        double s = 0;
        for (int i = 0; i < m * m; i++) {
            int dy = i / m - cp->r, dx = i % m - cp->r;
            s += exp(-0.5 * (dy * dy + dx * dx) / (cp->sigma * cp->sigma));
        }
        for (int i = 0; i < m * m; i++) {
            int dy = i / m - cp->r, dx = i % m - cp->r;
            cp->w[i] = (float)(exp(-0.5 * (dy * dy + dx * dx) / (cp->sigma * cp->sigma)) / s);
        }
    }
    return 0;
}

/* Run the retina over frames [0, T) of a split. lam (cells, T) may be NULL (calibration). */
static int retina_run(retina *R, stimgen *g, int64_t T, float *lam, float *vbuf, char *err, size_t errlen)
{
    const int P = NPIX * NPIX;
    double l[256];
    for (int64_t t0 = 0; t0 < T; t0 += BLK) {
        int64_t n = T - t0 < BLK ? T - t0 : BLK;
        stim_block(g, t0, n, vbuf);
        for (int64_t k = 0; k < n; k++) {
            float *s = vbuf + k * P;
            for (int i = 0; i < P; i++) s[i] = 2.0f * s[i] - 1.0f;
            retina_step(R, s, l);
            if (lam) for (int c = 0; c < R->ncells; c++) lam[(int64_t)c * T + t0 + k] = (float)l[c];
        }
    }
    (void)err; (void)errlen;
    return 0;
}

/* Calibrate on a natural movie (split 2, frames after a 100-frame warm-up): u_ref (RMS bipolar
 * drive), v_sd (sd of the gain-controlled drive), each cell's generator mean/sd, and the gain
 * R_c that makes the mean rate the cell's target. Three passes (each needs the previous). */
static int calibrate(uint64_t seed, int64_t T, retina_par *p, cell_par *cells, int ncells, float *vbuf,
                     char *err, size_t errlen)
{
    const int64_t W0 = T / 30 < 50 ? 50 : T / 30;   /* warm-up: 100 frames of the default 3000 */
    double *gt = malloc((size_t)T * ncells * sizeof *gt);
    if (!gt) return ERRF(err, errlen, "out of memory");
    for (int stage = 0; stage < 3; stage++) {
        retina R;
        stimgen *g = calloc(1, sizeof *g);
        if (!g || retina_init(&R, p, cells, ncells, stage) < 0) { free(g); free(gt); return ERRF(err, errlen, "out of memory"); }
        g->seed = seed; g->split = SPLIT_CAL; g->kind = RC_SYNTH_NATURAL; g->u8 = 1; g->cur_img = -1;
        R.gtrace = gt;
        R.warmup = W0;
        retina_run(&R, g, T, NULL, vbuf, err, errlen);
        if (stage == 0) p->u_ref = sqrt(R.su2 / R.nu);
        else if (stage == 1) {
            double m = R.sv / R.nv;
            p->v_sd = sqrt(R.sv2 / R.nv - m * m);
        } else {
            for (int c = 0; c < ncells; c++) {
                double s = 0, s2 = 0, n = (double)(T - W0);
                for (int64_t t = W0; t < T; t++) { s += gt[t * ncells + c]; s2 += gt[t * ncells + c] * gt[t * ncells + c]; }
                cell_par *cp = &cells[c];
                cp->g_mean = s / n;
                cp->g_sd = sqrt(fmax(s2 / n - cp->g_mean * cp->g_mean, 1e-20));
                double sl = 0;
                for (int64_t t = W0; t < T; t++)
                    sl += softplusf((float)(p->alpha * ((gt[t * ncells + c] - cp->g_mean) / cp->g_sd - cp->theta)));
                cp->gain = cp->rate / fmax(sl / n, 1e-9);
            }
        }
        retina_free(&R);
        free(g);
    }
    free(gt);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Spikes and smoothing                                                                       */

static int poisson(double mu, uint64_t key, uint64_t i)
{
    double u = unif(key, i), p = exp(-mu), F = p;
    int k = 0;
    while (u > F && k < 200) { k++; p *= mu / k; F += p; }
    return k;
}

/* out[t] = sum_j w_j x[t+j] / sum_j w_j over 0 <= t+j < T; Gaussian sd sigma (bins), radius ceil(4 sd). */
static void smooth(const float *x, int64_t T, double sigma, float *out)
{
    int r = (int)ceil(4 * sigma);
    double w[64];
    for (int j = -r; j <= r; j++) w[j + r] = exp(-0.5 * j * j / (sigma * sigma));
    for (int64_t t = 0; t < T; t++) {
        double s = 0, ws = 0;
        for (int j = -r; j <= r; j++) {
            int64_t u = t + j;
            if (u < 0 || u >= T) continue;
            s += w[j + r] * x[u];
            ws += w[j + r];
        }
        out[t] = (float)(s / ws);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Writer                                                                                     */

void rc_synth_opts_default(rc_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->cells = 8;
    o->frames = 28000;
    o->repeats = 6;
}

int64_t rc_synth_test_frames(const rc_synth_opts *o)
{
    if (o->test_frames > 0) return o->test_frames;
    int64_t t = o->frames / 10;
    return t < 2000 ? 2000 : t > 6000 ? 6000 : t;
}

static const double SMOOTH_SD[3] = {0.5, 1.0, 2.0};     /* bins: 5, 10, 20 ms */
static const char *const SMOOTH_KEY[3] = {"firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms"};

typedef struct {
    const char *path;
    hid_t f;
    const rc_synth_opts *o;
    retina_par *p;
    cell_par *cells;
    float *vbuf;          /* (BLK, 2500) */
    unsigned char *u8buf; /* (BLK, 2500) */
    double *tbuf;         /* (BLK) */
    int werr;             /* errno of the first failed write (0: none yet) */
} writer;

/* rc_h5_write that keeps the errno of the first failure in w->werr (messages name it). */
static int wr_slab(writer *w, hid_t ds, hid_t mt, int rank, const int64_t *st, const int64_t *ct,
                   const void *buf)
{
    errno = 0;
    if (rc_h5_write(ds, mt, rank, st, ct, buf) >= 0) return 0;
    if (!w->werr) w->werr = errno ? errno : EIO;
    return -1;
}

/* One split: frames streamed to disk, lambda in memory, then spikes and rates per cell. */
static int write_split(writer *w, int split, int64_t T, int R, char *err, size_t errlen)
{
    const rc_synth_opts *o = w->o;
    const int C = o->cells, P = NPIX * NPIX;
    const char *sn = split == SPLIT_TRAIN ? "train" : "test";
    char key[128];
    int rc = -1;
    hid_t ds_stim = -1, ds_time = -1;
    float *lam = malloc((size_t)C * T * sizeof *lam);
    float *cnt = malloc((size_t)T * sizeof *cnt), *sm = malloc((size_t)T * sizeof *sm);
    float *acc = calloc(5 * (size_t)T, sizeof *acc);  /* trial sums: binned + 3 rates (+1 spare) */
    stimgen *g = calloc(1, sizeof *g);
    float *cprev = calloc((size_t)C, sizeof *cprev);
    retina ret;
    int have_R = 0;
    if (!lam || !cnt || !sm || !acc || !g || !cprev) { ERRF(err, errlen, "out of memory for %lld frames", (long long)T); goto out; }
    g->seed = o->seed; g->split = split; g->kind = o->cheap ? RC_SYNTH_WHITENOISE : (int)o->stimulus;
    g->u8 = !o->float32; g->cur_img = -1;
    g->wn_contrast = o->cheap ? 1.0 : 0.7;
    if (!o->cheap) {
        if (retina_init(&ret, w->p, w->cells, C, 2) < 0) { ERRF(err, errlen, "out of memory"); goto out; }
        have_R = 1;
    }
    int64_t d3[3] = {T, NPIX, NPIX};
    snprintf(key, sizeof key, "/%s/stimulus", sn);
    ds_stim = rc_h5_create(w->f, key, o->float32 ? H5T_IEEE_F32LE : H5T_STD_U8LE, 3, d3);
    snprintf(key, sizeof key, "/%s/time", sn);
    ds_time = rc_h5_create(w->f, key, H5T_IEEE_F64LE, 1, &T);
    if (ds_stim < 0 || ds_time < 0) { ERRF(err, errlen, "%s: /%s: cannot create datasets", w->path, sn); goto out; }
    rc_progress_report(&o->progress, sn, 0, T);
    for (int64_t t0 = 0; t0 < T; t0 += BLK) {
        int64_t n = T - t0 < BLK ? T - t0 : BLK;
        stim_block(g, t0, n, w->vbuf);
        int64_t st[3] = {t0, 0, 0}, ct[3] = {n, NPIX, NPIX};
        int e;
        if (o->float32) e = wr_slab(w, ds_stim, H5T_NATIVE_FLOAT, 3, st, ct, w->vbuf);
        else {
            for (int64_t i = 0; i < n * P; i++) w->u8buf[i] = (unsigned char)lrintf(w->vbuf[i] * 255.0f);
            e = wr_slab(w, ds_stim, H5T_NATIVE_UCHAR, 3, st, ct, w->u8buf);
        }
        for (int64_t k = 0; k < n; k++) w->tbuf[k] = (double)(t0 + k) * DT;
        if (e < 0 || wr_slab(w, ds_time, H5T_NATIVE_DOUBLE, 1, st, ct, w->tbuf) < 0) {
            ERRF(err, errlen, "%s: /%s/stimulus: cannot write at frame %lld: %s", w->path, sn,
                 (long long)t0, strerror(w->werr));
            goto out;
        }
        for (int64_t k = 0; k < n; k++) {
            float *s = w->vbuf + k * P;
            for (int i = 0; i < P; i++) s[i] = 2.0f * s[i] - 1.0f;
            if (o->cheap) {
                /* I/O-test response: linear in the previous frame's centre pixel (s = +-1) */
                for (int c = 0; c < C; c++) {
                    lam[(int64_t)c * T + t0 + k] = (float)(w->cells[c].rate * (1.0 + 0.8 * cprev[c]));
                    cprev[c] = s[w->cells[c].row * NPIX + w->cells[c].col];
                }
            } else {
                double l[256];
                retina_step(&ret, s, l);
                for (int c = 0; c < C; c++) lam[(int64_t)c * T + t0 + k] = (float)l[c];
            }
        }
        rc_progress_report(&o->progress, sn, t0 + n, T);
    }
    /* rates */
    {
        hid_t ds[5] = {-1, -1, -1, -1, -1}, dr[4] = {-1, -1, -1, -1};
        int64_t d2[2] = {C, T}, dR[3] = {R, C, T};
        int ok = 1;
        for (int k = 0; k < 4; k++) {
            snprintf(key, sizeof key, "/%s/response/%s", sn, k == 0 ? "binned" : SMOOTH_KEY[k - 1]);
            ds[k] = rc_h5_create(w->f, key, H5T_IEEE_F32LE, 2, d2);
            ok &= ds[k] >= 0;
            if (split == SPLIT_TEST) {
                snprintf(key, sizeof key, "/test/repeats/%s", k == 0 ? "binned" : SMOOTH_KEY[k - 1]);
                dr[k] = rc_h5_create(w->f, key, H5T_IEEE_F32LE, 3, dR);
                ok &= dr[k] >= 0;
            }
        }
        snprintf(key, sizeof key, "/%s/response/true_rate", sn);
        ds[4] = rc_h5_create(w->f, key, H5T_IEEE_F32LE, 2, d2);
        ok &= ds[4] >= 0;
        for (int c = 0; c < C && ok; c++) {
            const float *lc = lam + (int64_t)c * T;
            memset(acc, 0, 4 * (size_t)T * sizeof *acc);
            for (int r = 0; r < R && ok; r++) {
                uint64_t kk = key4(o->seed, P_SPK, (uint64_t)split << 32 | (uint64_t)r, (uint64_t)c);
                for (int64_t t = 0; t < T; t++) cnt[t] = (float)poisson(lc[t] * DT, kk, (uint64_t)t);
                for (int k = 0; k < 4 && ok; k++) {
                    const float *src = cnt;
                    if (k > 0) {   /* counts/dt (acc row 4 as scratch), smoothed into sm */
                        for (int64_t t = 0; t < T; t++) acc[4 * (size_t)T + t] = cnt[t] / (float)DT;
                        smooth(acc + 4 * (size_t)T, T, SMOOTH_SD[k - 1], sm);
                        src = sm;
                    }
                    for (int64_t t = 0; t < T; t++) acc[(size_t)k * T + t] += src[t];
                    if (split == SPLIT_TEST) {
                        int64_t st[3] = {r, c, 0}, ct[3] = {1, 1, T};
                        ok &= wr_slab(w, dr[k], H5T_NATIVE_FLOAT, 3, st, ct, src) == 0;
                    }
                }
            }
            for (int k = 0; k < 4 && ok; k++) {
                for (int64_t t = 0; t < T; t++) acc[(size_t)k * T + t] /= (float)R;
                int64_t st[2] = {c, 0}, ct[2] = {1, T};
                ok &= wr_slab(w, ds[k], H5T_NATIVE_FLOAT, 2, st, ct, acc + (size_t)k * T) == 0;
            }
            /* the expected value of firing_rate_10ms: the same smoothing of lambda */
            smooth(lc, T, 1.0, sm);
            int64_t st[2] = {c, 0}, ct[2] = {1, T};
            ok &= wr_slab(w, ds[4], H5T_NATIVE_FLOAT, 2, st, ct, sm) == 0;
        }
        for (int k = 0; k < 5; k++) if (ds[k] >= 0) H5Dclose(ds[k]);
        for (int k = 0; k < 4; k++) if (dr[k] >= 0) H5Dclose(dr[k]);
        if (!ok) {
            ERRF(err, errlen, "%s: /%s/response: cannot write: %s", w->path, sn,
                 w->werr ? strerror(w->werr) : "cannot create the datasets");
            goto out;
        }
        snprintf(key, sizeof key, "/truth/%s_lambda", sn);
        errno = 0;
        if (rc_h5_write_all(w->f, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, lam) < 0) {
            int en = errno;
            ERRF(err, errlen, "%s: %s: cannot write: %s", w->path, key, en ? strerror(en) : "HDF5 write error");
            goto out;
        }
    }
    rc = 0;
out:
    if (ds_stim >= 0) H5Dclose(ds_stim);
    if (ds_time >= 0) H5Dclose(ds_time);
    if (have_R) retina_free(&ret);
    free(lam); free(cnt); free(sm); free(acc); free(g); free(cprev);
    return rc;
}

static int write_meta(writer *w, char *err, size_t errlen)
{
    const rc_synth_opts *o = w->o;
    const int C = o->cells;
    hid_t f = w->f;
    int ok = 1;
    ok &= rc_h5_attr_set_string(f, "/", "generator", "retinac synth") == 0;
    ok &= rc_h5_attr_set_string(f, "/", "layout", "baccus") == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "seed", (int64_t)o->seed) == 0;
    ok &= rc_h5_attr_set_string(f, "/", "stimulus", o->cheap ? "cheap-whitenoise" : o->stimulus == RC_SYNTH_NATURAL ? "naturalscene" : "whitenoise") == 0;
    ok &= rc_h5_attr_set_double(f, "/", "dt", DT) == 0;
    ok &= rc_h5_attr_set_double(f, "/", "frame_rate_hz", 1.0 / DT) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "cells", C) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "frames", o->frames) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "test_frames", rc_synth_test_frames(o)) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "repeats", o->repeats) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "cheap", o->cheap) == 0;
    ok &= rc_h5_attr_set_int64(f, "/", "calib_frames", o->calib_frames > 0 ? o->calib_frames : 3000) == 0;
    ok &= rc_h5_attr_set_string(f, "/", "truth", "/test/response/true_rate = E[firing_rate_10ms] (lambda smoothed like the rates); /truth/<split>_lambda = Poisson intensity, spikes/s") == 0;
    int *ctr = malloc(2 * (size_t)C * sizeof *ctr), *typ = malloc((size_t)C * sizeof *typ);
    double *pv = malloc(7 * (size_t)C * sizeof *pv);
    if (!ctr || !typ || !pv) { free(ctr); free(typ); free(pv); return ERRF(err, errlen, "out of memory"); }
    for (int c = 0; c < C; c++) {
        ctr[2 * c] = w->cells[c].row;
        ctr[2 * c + 1] = w->cells[c].col;
        typ[c] = w->cells[c].type;
        double v[7] = {w->cells[c].sigma, w->cells[c].rate, w->cells[c].theta, w->cells[c].g_mean,
                       w->cells[c].g_sd, w->cells[c].gain, 0};
        for (int k = 0; k < 7; k++) pv[(size_t)k * C + c] = v[k];
    }
    int64_t d2[2] = {C, 2}, d1 = C;
    ok &= rc_h5_write_all(f, "/cells/centers", H5T_STD_I32LE, H5T_NATIVE_INT, 2, d2, ctr) == 0;
    ok &= rc_h5_write_all(f, "/cells/types", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &d1, typ) == 0;
    static const char *const pn[6] = {"pool_sigma", "target_rate_hz", "threshold", "generator_mean", "generator_sd", "gain"};
    for (int k = 0; k < 6; k++) {
        char key[64];
        snprintf(key, sizeof key, "/cells/%s", pn[k]);
        ok &= rc_h5_write_all(f, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &d1, pv + (size_t)k * C) == 0;
    }
    if (ok) {
        ok &= rc_h5_attr_set_string(f, "/cells/types", "legend", "0=OFF 1=ON 2=ON-OFF") == 0;
        ok &= rc_h5_attr_set_string(f, "/cells/centers", "legend", "(row, col) of the receptive-field centre in the 50x50 frame") == 0;
    }
    free(ctr); free(typ); free(pv);
    const retina_par *p = w->p;
    if (ok && !o->cheap) {
        hid_t g = H5Gopen2(f, "/truth", H5P_DEFAULT);
        if (g < 0) ok = 0;
        for (size_t i = 0; ok && i < N_PARS; i++)
            ok &= rc_h5_attr_set_double(f, "/truth", PARS[i].name, *(const double *)((const char *)p + PARS[i].off)) == 0;
        ok &= rc_h5_attr_set_double(f, "/truth", "u_ref", p->u_ref) == 0;
        ok &= rc_h5_attr_set_double(f, "/truth", "v_sd", p->v_sd) == 0;
        if (g >= 0) H5Gclose(g);
        double fo[BIP_LEN + 1], ff[BIP_LEN + 1], gc[CGC_LEN], ha[AM_LEN + 1];
        for (int k = 0; k <= BIP_LEN; k++) { fo[k] = p->f_on[k]; ff[k] = p->f_off[k]; }
        for (int k = 0; k < CGC_LEN; k++) gc[k] = p->g_cgc[k];
        for (int k = 0; k <= AM_LEN; k++) ha[k] = p->h_am[k];
        int64_t nb = BIP_LEN + 1, nc = CGC_LEN, na = AM_LEN + 1;
        ok &= rc_h5_write_all(f, "/truth/filter_on", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &nb, fo) == 0;
        ok &= rc_h5_write_all(f, "/truth/filter_off", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &nb, ff) == 0;
        ok &= rc_h5_write_all(f, "/truth/filter_cgc", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &nc, gc) == 0;
        ok &= rc_h5_write_all(f, "/truth/filter_amacrine", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &na, ha) == 0;
    }
    return ok ? 0 : ERRF(err, errlen, "%s: writing metadata failed", w->path);
}

/* An upper bound of the recording's size in bytes: every dataset's raw data (write_split,
 * write_meta) plus 1/256 and 256 KiB for the metadata (about 15 KiB in practice). */
static int64_t synth_file_bytes(const rc_synth_opts *o)
{
    const int64_t C = o->cells, bps = o->float32 ? 4 : 1;
    int64_t b = 0;
    for (int split = 0; split < 2; split++) {
        int64_t T = split ? rc_synth_test_frames(o) : o->frames, R = split ? o->repeats : 0;
        b += T * NPIX * NPIX * bps + T * 8          /* stimulus, time */
             + 5 * C * T * 4 + 4 * R * C * T * 4    /* responses, test repeats */
             + C * T * 4;                           /* truth lambda */
    }
    b += C * 64 + 8 * (BIP_LEN + CGC_LEN + AM_LEN + 3);
    return b + b / 256 + ((int64_t)256 << 10);
}

int rc_synth_write(const char *path, const rc_synth_opts *o, char *err, size_t errlen)
{
    rc_h5_quiet();
    if (o->cells < 1 || o->cells > 256) return ERRF(err, errlen, "cells %d out of range 1..256", o->cells);
    if (o->frames < 200) return ERRF(err, errlen, "frames %lld: need at least 200", (long long)o->frames);
    if (o->repeats < 1 || o->repeats > 1000) return ERRF(err, errlen, "repeats %d out of range 1..1000", o->repeats);
    const int64_t Tt = rc_synth_test_frames(o);
    if (Tt < 100) return ERRF(err, errlen, "test frames %lld: need at least 100", (long long)Tt);
    if (o->calib_frames && (o->calib_frames < 300 || o->calib_frames > 1000000))
        return ERRF(err, errlen, "calibration frames %d out of range 300..1000000", o->calib_frames);
    char tmp[4200];
    retina_par p;
    retina_defaults(&p);
    if (apply_sets(&p, o, err, errlen) < 0) return -1;
    retina_filters(&p);
    writer w = {.path = path, .f = -1, .o = o, .p = &p};
    w.cells = calloc((size_t)o->cells, sizeof *w.cells);
    w.vbuf = malloc((size_t)BLK * NPIX * NPIX * sizeof *w.vbuf);
    w.u8buf = malloc((size_t)BLK * NPIX * NPIX);
    w.tbuf = malloc((size_t)BLK * sizeof *w.tbuf);
    int rc = -1;
    if (!w.cells || !w.vbuf || !w.u8buf || !w.tbuf || cells_make(o->seed, o->cells, w.cells) < 0) {
        ERRF(err, errlen, "out of memory");
        goto out;
    }
    if (!o->cheap) {
        rc_progress_report(&o->progress, "calibrating the retina", 0, 1);
        if (calibrate(o->seed, o->calib_frames > 0 ? o->calib_frames : 3000, &p, w.cells, o->cells, w.vbuf, err, errlen) < 0) goto out;
        rc_progress_report(&o->progress, "calibrating the retina", 1, 1);
    }
    /* streamed to disk (too large for memory): fsutil.h checks the size limit against this
     * upper bound first and closes safely after a failed write */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    w.f = rc_h5_stream_create(path, synth_file_bytes(o), fcpl >= 0 ? fcpl : H5P_DEFAULT, tmp,
                              sizeof tmp, err, errlen);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (w.f < 0) goto out;
    int ok = write_split(&w, SPLIT_TRAIN, o->frames, 1, err, errlen) == 0 &&
             write_split(&w, SPLIT_TEST, Tt, o->repeats, err, errlen) == 0 &&
             write_meta(&w, err, errlen) == 0;
    rc = rc_h5_stream_commit(w.f, tmp, path, ok, err, errlen);
    w.f = -1;
out:
    if (w.cells) for (int c = 0; c < o->cells; c++) free(w.cells[c].w);
    free(w.cells); free(w.vbuf); free(w.u8buf); free(w.tbuf);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The retina as a function: noise-free rates for an arbitrary stimulus (phenomena battery)   */

struct rc_synth_retina {
    rc_synth_opts o;
    retina_par p;
    cell_par *cells;
};

int rc_synth_retina_open(const rc_synth_opts *o, rc_synth_retina **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->cheap) return ERRF(err, errlen, "the --cheap retina has no simulated cells");
    if (o->cells < 1 || o->cells > 256) return ERRF(err, errlen, "cells %d out of range 1..256", o->cells);
    if (o->calib_frames && (o->calib_frames < 300 || o->calib_frames > 1000000))
        return ERRF(err, errlen, "calibration frames %d out of range 300..1000000", o->calib_frames);
    rc_synth_retina *r = calloc(1, sizeof *r);
    float *vbuf = malloc((size_t)BLK * NPIX * NPIX * sizeof *vbuf);
    if (!r || !vbuf) { free(r); free(vbuf); return ERRF(err, errlen, "out of memory"); }
    r->o = *o;
    r->o.sets = NULL;
    r->o.n_sets = 0;
    /* exactly rc_synth_write's retina: defaults, --set overrides, filters, cells, calibration */
    retina_defaults(&r->p);
    r->cells = calloc((size_t)o->cells, sizeof *r->cells);
    int rc = -1;
    if (apply_sets(&r->p, o, err, errlen) < 0) goto out;
    retina_filters(&r->p);
    if (!r->cells || cells_make(o->seed, o->cells, r->cells) < 0) { ERRF(err, errlen, "out of memory"); goto out; }
    if (calibrate(o->seed, o->calib_frames > 0 ? o->calib_frames : 3000, &r->p, r->cells, o->cells, vbuf,
                  err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(vbuf);
    if (rc < 0) { rc_synth_retina_close(r); return -1; }
    *out = r;
    return 0;
}

int rc_synth_retina_cells(const rc_synth_retina *r) { return r->o.cells; }

int rc_synth_retina_rate(rc_synth_retina *r, const float *s, int64_t T, float *lam, char *err,
                         size_t errlen)
{
    retina R;
    if (retina_init(&R, &r->p, r->cells, r->o.cells, 2) < 0) return ERRF(err, errlen, "out of memory");
    double l[256];
    for (int64_t t = 0; t < T; t++) {
        retina_step(&R, s + t * NPIX * NPIX, l);
        for (int c = 0; c < r->o.cells; c++) lam[t * r->o.cells + c] = (float)l[c];
    }
    retina_free(&R);
    return 0;
}

int rc_synth_retina_interneurons(rc_synth_retina *r, const float *s, int64_t T, int n, const int *pos,
                                 float *bip_on, float *bip_off, float *amac, char *err, size_t errlen)
{
    const int P = NPIX * NPIX;
    if (T < 0 || n < 0) return ERRF(err, errlen, "interneurons: negative length (T %lld, n %d)", (long long)T, n);
    for (int j = 0; j < n; j++)
        if (pos[2 * j] < 0 || pos[2 * j] >= NPIX || pos[2 * j + 1] < 0 || pos[2 * j + 1] >= NPIX)
            return ERRF(err, errlen, "interneurons: cell %d at (%d, %d) outside the 50x50 frame", j, pos[2 * j],
                        pos[2 * j + 1]);
    retina R;
    float *a = amac ? malloc((size_t)P * sizeof *a) : NULL;
    if ((amac && !a) || retina_init(&R, &r->p, r->cells, r->o.cells, 2) < 0) {
        free(a);
        return ERRF(err, errlen, "out of memory");
    }
    R.amac = a;
    /* sampled right after retina_step(t) computed them, i.e. from frames < t (as lambda(t)) */
    for (int64_t t = 0; t < T; t++) {
        retina_step(&R, s + t * P, NULL);
        for (int j = 0; j < n; j++) {
            int i = pos[2 * j] * NPIX + pos[2 * j + 1];
            if (bip_on) bip_on[(int64_t)j * T + t] = R.v_on[i];
            if (bip_off) bip_off[(int64_t)j * T + t] = R.v_off[i];
            if (amac) amac[(int64_t)j * T + t] = a[i];
        }
    }
    retina_free(&R);
    free(a);
    return 0;
}

void rc_synth_retina_close(rc_synth_retina *r)
{
    if (!r) return;
    if (r->cells) for (int c = 0; c < r->o.cells; c++) free(r->cells[c].w);
    free(r->cells);
    free(r);
}

int rc_synth_stim_stats(const rc_synth_opts *o, double *mean, double *std, char *err, size_t errlen)
{
    if (o->frames < 1) return ERRF(err, errlen, "frames %lld: need at least 1", (long long)o->frames);
    stimgen *g = calloc(1, sizeof *g);
    float *vbuf = malloc((size_t)BLK * NPIX * NPIX * sizeof *vbuf);
    if (!g || !vbuf) { free(g); free(vbuf); return ERRF(err, errlen, "out of memory"); }
    g->seed = o->seed; g->split = SPLIT_TRAIN; g->kind = o->cheap ? RC_SYNTH_WHITENOISE : (int)o->stimulus;
    g->u8 = !o->float32; g->cur_img = -1;
    g->wn_contrast = o->cheap ? 1.0 : 0.7;
    double s = 0, s2 = 0;
    const int P = NPIX * NPIX;
    for (int64_t t0 = 0; t0 < o->frames; t0 += BLK) {
        int64_t n = o->frames - t0 < BLK ? o->frames - t0 : BLK;
        stim_block(g, t0, n, vbuf);
        for (int64_t i = 0; i < n * P; i++) {
            /* the stored value: uint8 lrintf(v * 255) (as write_split) or float32 v */
            double x = o->float32 ? (double)vbuf[i] : (double)lrintf(vbuf[i] * 255.0f);
            s += x;
            s2 += x * x;
        }
    }
    double N = (double)o->frames * P, m = s / N;
    *mean = m;
    *std = sqrt(fmax(s2 / N - m * m, 0));
    free(g);
    free(vbuf);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Simulated interneuron recordings (torch-deep-retina's intracellular file layout)          */

#define INTR_BOX 2              /* checker side, px: about the DoG centre's width (FWHM 2.1 px) */
#define INTR_NBIP 6             /* bipolars: OFF and ON pairs at the centres of cells 0, 1, 2 */
#define INTR_NAM 6              /* amacrines: at the centres of cells 0..5 */
#define INTR_NOISE 0.1          /* measurement noise sd / the noise-free trace's sd */

/* One file: /boxes/stimuli (T,50,50) v = (s+1)/2, /boxes/detrended_membrane_potential (n,T),
 * /centers (n,2), optionally /types (n); built in memory, its image in *img (*img_n bytes). */
static int intr_file(const char *path, const rc_synth_opts *o, const char *kind, const float *s, int64_t T,
                     int n, const float *pot, const int *ctr, const int *types, void **img, size_t *img_n,
                     char *err, size_t errlen)
{
    const int P = NPIX * NPIX;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    hid_t f = rc_h5_mem_create(path, fcpl >= 0 ? fcpl : H5P_DEFAULT, err, errlen);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) return -1;
    int64_t d3[3] = {T, NPIX, NPIX}, d2[2] = {n, T}, dc[2] = {n, 2}, d1 = n;
    float *vb = malloc((size_t)BLK * P * sizeof *vb);
    hid_t ds = rc_h5_create(f, "/boxes/stimuli", H5T_IEEE_F32LE, 3, d3);
    int ok = vb && ds >= 0;
    for (int64_t t0 = 0; ok && t0 < T; t0 += BLK) {   /* stored v in [0,1]: exactly 0 or 1 */
        int64_t m = T - t0 < BLK ? T - t0 : BLK, st[3] = {t0, 0, 0}, ct[3] = {m, NPIX, NPIX};
        for (int64_t i = 0; i < m * P; i++) vb[i] = 0.5f * (s[t0 * P + i] + 1.0f);
        ok &= rc_h5_write(ds, H5T_NATIVE_FLOAT, 3, st, ct, vb) == 0;
    }
    if (ds >= 0) H5Dclose(ds);
    free(vb);
    ok = ok && rc_h5_write_all(f, "/boxes/detrended_membrane_potential", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, pot) == 0;
    ok = ok && rc_h5_write_all(f, "/centers", H5T_STD_I32LE, H5T_NATIVE_INT, 2, dc, ctr) == 0;
    ok = ok && rc_h5_attr_set_string(f, "/centers", "legend", "(row, col) of the cell in the 50x50 frame") == 0;
    if (ok && types) {
        ok = rc_h5_write_all(f, "/types", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &d1, types) == 0;
        ok = ok && rc_h5_attr_set_string(f, "/types", "legend", "0=OFF (v_off) 1=ON (v_on)") == 0;
    }
    ok = ok && rc_h5_attr_set_string(f, "/", "generator", "retinac synth --interneurons") == 0;
    ok = ok && rc_h5_attr_set_string(f, "/", "cell_type", kind) == 0;
    ok = ok && rc_h5_attr_set_int64(f, "/", "seed", (int64_t)o->seed) == 0;
    ok = ok && rc_h5_attr_set_int64(f, "/", "box_size", INTR_BOX) == 0;
    ok = ok && rc_h5_attr_set_double(f, "/", "noise_sd_fraction", INTR_NOISE) == 0;
    ok = ok && rc_h5_attr_set_string(f, "/", "alignment",
                                     "potential[t] depends on stimuli[:t] only (as the recording's lambda)") == 0;
    if (!ok) ERRF(err, errlen, "%s: HDF5 could not build the file (in memory)", path);
    return rc_h5_mem_image(f, path, ok, img, img_n, err, errlen);
}

/* x (T) += noise sd INTR_NOISE * sd(x), then minus its mean. */
static void intr_noise_detrend(float *x, int64_t T, uint64_t key)
{
    double m = 0, v = 0;
    for (int64_t t = 0; t < T; t++) m += x[t];
    m /= (double)T;
    for (int64_t t = 0; t < T; t++) v += (x[t] - m) * (x[t] - m);
    double sd = INTR_NOISE * sqrt(v / (double)T), m2 = 0;
    for (int64_t t = 0; t < T; t++) { x[t] += (float)(sd * normal(key, (uint64_t)t)); m2 += x[t]; }
    m2 /= (double)T;
    for (int64_t t = 0; t < T; t++) x[t] -= (float)m2;
}

int rc_synth_write_interneurons(const char *dir, const rc_synth_opts *o, int64_t T, char *err, size_t errlen)
{
    rc_h5_quiet();
    if (o->cheap) return ERRF(err, errlen, "interneurons: the --cheap retina has no interneurons");
    if (T < 100 || T > 100000) return ERRF(err, errlen, "interneuron frames %lld out of range 100..100000", (long long)T);
    char e2[600];
    if (rc_make_dirs(dir, e2, sizeof e2) < 0) return ERRF(err, errlen, "interneuron directory %s: %s", dir, e2);
    char pb[4200], pa[4200];
    if (snprintf(pb, sizeof pb, "%s/bipolars_synth.h5", dir) >= (int)sizeof pb ||
        snprintf(pa, sizeof pa, "%s/amacrines_synth.h5", dir) >= (int)sizeof pa)
        return ERRF(err, errlen, "%s: path too long", dir);
    const int P = NPIX * NPIX, NB = (NPIX + INTR_BOX - 1) / INTR_BOX;
    rc_synth_retina *r = NULL;
    float *s = malloc((size_t)T * P * sizeof *s);
    float *on = malloc((size_t)INTR_NAM * T * sizeof *on), *off = malloc((size_t)INTR_NAM * T * sizeof *off);
    float *am = malloc((size_t)INTR_NAM * T * sizeof *am), *bp = malloc((size_t)INTR_NBIP * T * sizeof *bp);
    int rc = -1;
    void *img[2] = {NULL, NULL};
    size_t img_n[2] = {0, 0};
    if (!s || !on || !off || !am || !bp) { ERRF(err, errlen, "out of memory for %lld interneuron frames", (long long)T); goto out; }
    if (rc_synth_retina_open(o, &r, err, errlen) < 0) goto out;
    /* binary checkerboard of INTR_BOX-px boxes, a new one every frame, contrast s = +-1 */
    for (int64_t t = 0; t < T; t++) {
        uint64_t key = key4(o->seed, P_INTR_STIM, 0, (uint64_t)t), bits = 0;
        for (int y = 0; y < NPIX; y++)
            for (int x = 0; x < NPIX; x++) {
                int b = (y / INTR_BOX) * NB + x / INTR_BOX;
                bits = mix64(key ^ (uint64_t)(b / 64));
                s[t * P + y * NPIX + x] = (bits >> (b % 64)) & 1 ? 1.0f : -1.0f;
            }
    }
    /* cells at the true receptive-field centres of the first ganglion cells (/cells/centers) */
    int pos[2 * INTR_NAM], cb[2 * INTR_NBIP], tb[INTR_NBIP];
    for (int j = 0; j < INTR_NAM; j++) {
        const cell_par *cp = &r->cells[j % r->o.cells];
        pos[2 * j] = cp->row;
        pos[2 * j + 1] = cp->col;
    }
    if (rc_synth_retina_interneurons(r, s, T, INTR_NAM, pos, on, off, am, err, errlen) < 0) goto out;
    for (int j = 0; j < INTR_NBIP; j++) {   /* OFF, ON at the position of amacrine j/2 */
        tb[j] = j % 2;
        memcpy(bp + (int64_t)j * T, (tb[j] ? on : off) + (int64_t)(j / 2) * T, (size_t)T * sizeof *bp);
        cb[2 * j] = pos[2 * (j / 2)];
        cb[2 * j + 1] = pos[2 * (j / 2) + 1];
        intr_noise_detrend(bp + (int64_t)j * T, T, key4(o->seed, P_INTR_NOISE, 0, (uint64_t)j));
    }
    for (int j = 0; j < INTR_NAM; j++)
        intr_noise_detrend(am + (int64_t)j * T, T, key4(o->seed, P_INTR_NOISE, 1, (uint64_t)j));
    /* both files as one output: a full disk leaves the previous pair, not a mixed one */
    if (intr_file(pb, o, "bipolar", s, T, INTR_NBIP, bp, cb, tb, &img[0], &img_n[0], err, errlen) < 0 ||
        intr_file(pa, o, "amacrine", s, T, INTR_NAM, am, pos, NULL, &img[1], &img_n[1], err, errlen) < 0)
        goto out;
    const char *paths[2] = {pb, pa};
    const void *imgs[2] = {img[0], img[1]};
    if (rc_write_files_atomic(2, paths, imgs, img_n, err, errlen) < 0) goto out;
    rc = 0;
out:
    free(img[0]); free(img[1]);
    rc_synth_retina_close(r);
    free(s); free(on); free(off); free(am); free(bp);
    return rc;
}
