/* fftconv_lanes.c — 16-lane batched 2-D real FFTs (see fftconv_lanes.h for the contract).
 *
 * Invariants:
 *   - A "lane vector" (v16) holds one value of 16 independent transforms; every array below is
 *     an array of lane vectors, so twiddles and butterfly constants are scalars.
 *   - Complex data are split: separate re and im arrays (no shuffles inside the FFTs).
 *   - Complex FFT of length n: Stockham autosort, stage s has radix R_s, Ns = R_0...R_{s-1};
 *     element j (j = jj*Ns + k) reads x[j + r*(n/R)], twiddles by w^(k*r) with
 *     w = e^(-+2 pi i / (Ns*R)), does an R-point DFT and writes y[jj*Ns*R + k + r*Ns].
 *     Stages ping-pong between two scratch arrays; the first reads the (strided) input, the last
 *     writes the (strided) output, so input == output is legal.
 *   - Scratch (per call, caller-owned, 64-byte aligned): S (N1*nq complex half spectrum),
 *     z and Z (N2 complex row-pair buffers), A and B (max(N1,N2) complex ping-pong), G (largest
 *     radix, complex: direct-DFT temporaries).
 * Hot code is compiled three times (generic, AVX2+FMA, AVX-512) like fftconv.c's loops.
 */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "fftconv_lanes.h"
#include "fftconv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int v16i __attribute__((vector_size(64)));

#define INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RC_FL_X86 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define RC_FL_X86 0
#endif

#define MAX_STAGES 40

typedef struct {
    int n, nst, maxr;
    int radix[MAX_STAGES], ns[MAX_STAGES];
    float *tc[MAX_STAGES], *ts[MAX_STAGES];   /* forward twiddles cos, sin(-...) : Ns*R each */
    float *gc[MAX_STAGES], *gs[MAX_STAGES];   /* generic radix: cos, sin(-2 pi m / R), m < R */
} lfft;

struct rc_l2d {
    int N1, N2, nq, nb, nblk, isa;
    lfft f1, f2;            /* complex FFTs of length N1 (columns) and N2 (rows) */
    size_t off_s, off_z, off_a, off_g, total;   /* scratch layout, in lane vectors */
};

/* ---- plans ------------------------------------------------------------------------------- */

static void lfft_free(lfft *p)
{
    for (int s = 0; s < p->nst; s++) {
        free(p->tc[s]); free(p->ts[s]); free(p->gc[s]); free(p->gs[s]);
    }
}

static int lfft_init(lfft *p, int n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->maxr = 1;
    int m = n, ns = 1;
    static const int small[] = {4, 2, 3, 5};
    while (m > 1) {
        int r = 0;
        for (int i = 0; i < 4 && !r; i++)
            if (m % small[i] == 0) r = small[i];
        if (!r)
            for (int f = 7; !r; f += 2)
                if (m % f == 0) r = f;
        if (p->nst == MAX_STAGES) return -1;
        int s = p->nst++;
        p->radix[s] = r;
        p->ns[s] = ns;
        if (r > p->maxr) p->maxr = r;
        p->tc[s] = malloc((size_t)ns * r * sizeof(float));
        p->ts[s] = malloc((size_t)ns * r * sizeof(float));
        if (!p->tc[s] || !p->ts[s]) return -1;
        for (int k = 0; k < ns; k++)
            for (int q = 0; q < r; q++) {
                double a = -2.0 * M_PI * (double)k * q / ((double)ns * r);
                p->tc[s][k * r + q] = (float)cos(a);
                p->ts[s][k * r + q] = (float)sin(a);
            }
        if (r > 5) {
            p->gc[s] = malloc((size_t)r * sizeof(float));
            p->gs[s] = malloc((size_t)r * sizeof(float));
            if (!p->gc[s] || !p->gs[s]) return -1;
            for (int q = 0; q < r; q++) {
                p->gc[s][q] = (float)cos(-2.0 * M_PI * q / r);
                p->gs[s][q] = (float)sin(-2.0 * M_PI * q / r);
            }
        }
        ns *= r;
        m /= r;
    }
    return 0;
}

int rc_l2d_create(int N1, int N2, int isa, rc_l2d **out)
{
    *out = NULL;
    rc_l2d *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->N1 = N1; t->N2 = N2; t->nq = N2 / 2 + 1;
    t->nb = N1 * t->nq;
    t->nblk = (t->nb + RC_LANES - 1) / RC_LANES;
    t->isa = isa;
    if (lfft_init(&t->f1, N1) != 0 || lfft_init(&t->f2, N2) != 0) {
        rc_l2d_destroy(t);
        return -1;
    }
    int nmax = N1 > N2 ? N1 : N2;
    int rmax = t->f1.maxr > t->f2.maxr ? t->f1.maxr : t->f2.maxr;
    t->off_s = 0;                                        /* S: 2 * N1*nq */
    t->off_z = t->off_s + 2 * (size_t)t->nb;             /* z, Z: 4 * N2 */
    t->off_a = t->off_z + 4 * (size_t)N2;                /* A, B: 4 * nmax */
    t->off_g = t->off_a + 4 * (size_t)nmax;              /* G: 2 * rmax */
    t->total = t->off_g + 2 * (size_t)rmax;
    *out = t;
    return 0;
}

void rc_l2d_destroy(rc_l2d *t)
{
    if (!t) return;
    lfft_free(&t->f1);
    lfft_free(&t->f2);
    free(t);
}

void rc_l2d_set_isa(rc_l2d *t, int isa) { t->isa = isa; }

size_t rc_l2d_scratch_floats(const rc_l2d *t) { return t->total * RC_LANES; }

/* ---- complex FFT over lane vectors ------------------------------------------------------- */

/* R-point DFT in place on (ar, ai)[0..R), sign sg = -1 forward, +1 inverse (constant). */
INLINE void bfly(const int R, const float sg, v16 *ar, v16 *ai)
{
    if (R == 2) {
        v16 tr = ar[0] - ar[1], ti = ai[0] - ai[1];
        ar[0] = ar[0] + ar[1]; ai[0] = ai[0] + ai[1];
        ar[1] = tr; ai[1] = ti;
    } else if (R == 4) {
        v16 t0r = ar[0] + ar[2], t0i = ai[0] + ai[2], t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
        v16 t2r = ar[1] + ar[3], t2i = ai[1] + ai[3], t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
        ar[0] = t0r + t2r; ai[0] = t0i + t2i;
        ar[2] = t0r - t2r; ai[2] = t0i - t2i;
        ar[1] = t1r - sg * t3i; ai[1] = t1i + sg * t3r;
        ar[3] = t1r + sg * t3i; ai[3] = t1i - sg * t3r;
    } else if (R == 3) {
        const float h = 0.86602540378443865f * sg;
        v16 sr = ar[1] + ar[2], si = ai[1] + ai[2], dr = ar[1] - ar[2], di = ai[1] - ai[2];
        v16 mr = ar[0] - 0.5f * sr, mi = ai[0] - 0.5f * si;
        ar[0] = ar[0] + sr; ai[0] = ai[0] + si;
        ar[1] = mr - h * di; ai[1] = mi + h * dr;
        ar[2] = mr + h * di; ai[2] = mi - h * dr;
    } else if (R == 5) {
        const float c1 = 0.30901699437494742f, c2 = -0.80901699437494742f;
        const float s1 = 0.95105651629515357f * sg, s2 = 0.58778525229247313f * sg;
        v16 t1r = ar[1] + ar[4], t1i = ai[1] + ai[4], t3r = ar[1] - ar[4], t3i = ai[1] - ai[4];
        v16 t2r = ar[2] + ar[3], t2i = ai[2] + ai[3], t4r = ar[2] - ar[3], t4i = ai[2] - ai[3];
        v16 b1r = ar[0] + c1 * t1r + c2 * t2r, b1i = ai[0] + c1 * t1i + c2 * t2i;
        v16 b2r = ar[0] + c2 * t1r + c1 * t2r, b2i = ai[0] + c2 * t1i + c1 * t2i;
        v16 d1r = s1 * t3r + s2 * t4r, d1i = s1 * t3i + s2 * t4i;
        v16 d2r = s2 * t3r - s1 * t4r, d2i = s2 * t3i - s1 * t4i;
        ar[0] = ar[0] + t1r + t2r; ai[0] = ai[0] + t1i + t2i;
        /* X1 = b1 + i d1, X4 = b1 - i d1, X2 = b2 + i d2, X3 = b2 - i d2 (sign in s1, s2) */
        ar[1] = b1r - d1i; ai[1] = b1i + d1r;
        ar[4] = b1r + d1i; ai[4] = b1i - d1r;
        ar[2] = b2r - d2i; ai[2] = b2i + d2r;
        ar[3] = b2r + d2i; ai[3] = b2i - d2r;
    }
}

/* One Stockham stage with a small constant radix R (2..5). Element j = jj*Ns + k reads
 * x[j + r*m] and writes y[ob + r*Ns], ob = jj*Ns*R + k, kept incrementally (no divisions, few
 * integer registers: this loop is the whole transform). */
INLINE void stage_small(const int R, const float sg, const lfft *p, int s, const v16 *xr,
                        const v16 *xi, size_t xs, v16 *yr, v16 *yi, size_t ys)
{
    const int ns = p->ns[s], m = p->n / R;
    const float *tc = p->tc[s], *ts = p->ts[s];
    const size_t xstep = (size_t)m * xs, ystep = (size_t)ns * ys;
    const size_t owrap = ((size_t)ns * (R - 1) + 1) * ys;
    int k = 0;
    for (int j = 0; j < m; j++) {
        v16 ar[5], ai[5];
        UNROLL
        for (int r = 0; r < R; r++) {
            ar[r] = xr[r * xstep];
            ai[r] = xi[r * xstep];
        }
        if (k > 0) {
            /* forward: w = c + i ts (ts = sin of the negative angle); inverse: conj */
            const float *c = tc + k * R, *sn = ts + k * R;
            UNROLL
            for (int r = 1; r < R; r++) {
                const float w_i = sg < 0 ? sn[r] : -sn[r];
                v16 tr = ar[r] * c[r] - ai[r] * w_i;
                ai[r] = ar[r] * w_i + ai[r] * c[r];
                ar[r] = tr;
            }
        }
        bfly(R, sg, ar, ai);
        UNROLL
        for (int r = 0; r < R; r++) {
            yr[r * ystep] = ar[r];
            yi[r * ystep] = ai[r];
        }
        xr += xs;
        xi += xs;
        if (++k == ns) { k = 0; yr += owrap; yi += owrap; }
        else { yr += ys; yi += ys; }
    }
}

/* One Stockham stage with any radix R by a direct R-point DFT (gr, gi: R temporaries). */
INLINE void stage_generic(const float sg, const lfft *p, int s, const v16 *xr, const v16 *xi,
                          size_t xs, v16 *yr, v16 *yi, size_t ys, v16 *gr, v16 *gi)
{
    const int n = p->n, ns = p->ns[s], R = p->radix[s], m = n / R;
    const float *tc = p->tc[s], *ts = p->ts[s], *gc = p->gc[s], *gs = p->gs[s];
    for (int jj = 0; jj < m / ns; jj++)
        for (int k = 0; k < ns; k++) {
            const int j = jj * ns + k;
            for (int r = 0; r < R; r++) {
                const v16 xr_ = xr[(size_t)(j + r * m) * xs], xi_ = xi[(size_t)(j + r * m) * xs];
                const float c = tc[k * R + r], w_i = sg < 0 ? ts[k * R + r] : -ts[k * R + r];
                gr[r] = xr_ * c - xi_ * w_i;
                gi[r] = xr_ * w_i + xi_ * c;
            }
            const size_t base = (size_t)jj * ns * R + k;
            for (int q = 0; q < R; q++) {
                v16 accr = gr[0], acci = gi[0];
                for (int r = 1; r < R; r++) {
                    const int e = (int)(((long)q * r) % R);
                    const float c = gc[e], w_i = sg < 0 ? gs[e] : -gs[e];
                    accr = accr + gr[r] * c - gi[r] * w_i;
                    acci = acci + gr[r] * w_i + gi[r] * c;
                }
                yr[(base + (size_t)q * ns) * ys] = accr;
                yi[(base + (size_t)q * ns) * ys] = acci;
            }
        }
}

/* Complex FFT of length p->n: (xr, xi) stride xs -> (yr, yi) stride ys (may alias x).
 * sg = -1 forward, +1 inverse; unnormalized. ab: 4*n lane vectors of ping-pong scratch,
 * g: 2*maxr lane vectors. */
INLINE void lfft_run(const lfft *p, const float sg, const v16 *xr, const v16 *xi, size_t xs,
                     v16 *yr, v16 *yi, size_t ys, v16 *ab, v16 *g)
{
    const int n = p->n;
    if (p->nst == 0) {   /* n == 1 */
        v16 tr = xr[0], ti = xi[0];
        yr[0] = tr; yi[0] = ti;
        return;
    }
    const v16 *ir = xr, *ii = xi;
    size_t is = xs;
    for (int s = 0; s < p->nst; s++) {
        v16 *orr, *oi;
        size_t os;
        if (s == p->nst - 1) { orr = yr; oi = yi; os = ys; }
        else {
            v16 *buf = ab + (size_t)(s & 1) * 2 * n;
            orr = buf; oi = buf + n; os = 1;
        }
        switch (p->radix[s]) {
        case 2: stage_small(2, sg, p, s, ir, ii, is, orr, oi, os); break;
        case 3: stage_small(3, sg, p, s, ir, ii, is, orr, oi, os); break;
        case 4: stage_small(4, sg, p, s, ir, ii, is, orr, oi, os); break;
        case 5: stage_small(5, sg, p, s, ir, ii, is, orr, oi, os); break;
        default: stage_generic(sg, p, s, ir, ii, is, orr, oi, os, g, g + p->maxr); break;
        }
        ir = orr; ii = oi; is = os;
    }
}

/* Non-inlined per-ISA entry points: each transform is one call, so the big 2-D bodies do not
 * squeeze the stage loops' registers. sg is a constant inside each. */
#define LFFT_ARGS const lfft *p, const v16 *xr, const v16 *xi, size_t xs, v16 *yr, v16 *yi, \
                  size_t ys, v16 *ab, v16 *g
#define LFFT_PASS xr, xi, xs, yr, yi, ys, ab, g
typedef void (*lfft_fn)(LFFT_ARGS);
__attribute__((noinline)) static void lfft_fwd_generic(LFFT_ARGS) { lfft_run(p, -1.0f, LFFT_PASS); }
__attribute__((noinline)) static void lfft_inv_generic(LFFT_ARGS) { lfft_run(p, 1.0f, LFFT_PASS); }
#if RC_FL_X86
TARGET_AVX2 __attribute__((noinline)) static void lfft_fwd_avx2(LFFT_ARGS)
{
    lfft_run(p, -1.0f, LFFT_PASS);
}
TARGET_AVX2 __attribute__((noinline)) static void lfft_inv_avx2(LFFT_ARGS)
{
    lfft_run(p, 1.0f, LFFT_PASS);
}
TARGET_AVX512 __attribute__((noinline)) static void lfft_fwd_avx512(LFFT_ARGS)
{
    lfft_run(p, -1.0f, LFFT_PASS);
}
TARGET_AVX512 __attribute__((noinline)) static void lfft_inv_avx512(LFFT_ARGS)
{
    lfft_run(p, 1.0f, LFFT_PASS);
}
#endif

/* ---- 16x16 transposes -------------------------------------------------------------------- */

/* v[i][l] -> v[l][i] (recursive block exchange, 4 rounds of two-source shuffles). */
INLINE void transpose16(v16 *v)
{
    static const v16i lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const v16i hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    static const v16i lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const v16i hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const v16i lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const v16i hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const v16i lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const v16i hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
#define XCH(S, LO, HI)                                                                         \
    UNROLL                                                                                     \
    for (int i = 0; i < 16; i++)                                                               \
        if (!(i & S)) {                                                                        \
            v16 x = v[i], y = v[i + S];                                                        \
            v[i] = __builtin_shuffle(x, y, LO);                                                \
            v[i + S] = __builtin_shuffle(x, y, HI);                                            \
        }
    XCH(8, lo8, hi8)
    XCH(4, lo4, hi4)
    XCH(2, lo2, hi2)
    XCH(1, lo1, hi1)
#undef XCH
}

/* Row r of the 16 source images (cols valid columns, rest zero) -> out[0..N2) lane vectors.
 * A partial last block is read as the full block ending at the row's end (its first columns
 * are rewritten with the same values); only rows narrower than 16 take the element path. */
INLINE void rows_in(const float *const *src, int r, int cols, size_t sst, int N2, v16 *out)
{
    int j = 0;
    for (; j < cols; j += 16) {
        v16 v[16];
        if (cols - j < 16 && cols >= 16) j = cols - 16;
        const int w = cols - j < 16 ? cols - j : 16;
        UNROLL
        for (int l = 0; l < 16; l++) {
            if (!src[l]) { v[l] = (v16){0}; continue; }
            const float *s = src[l] + (size_t)r * sst + j;
            if (w == 16) v[l] = *(const v16 *)s;
            else {   /* tail: element loop (a memcpy call per lane costs more than the FFT) */
                float tmp[16] = {0};
                for (int x = 0; x < w; x++) tmp[x] = s[x];
                v[l] = *(const v16 *)tmp;
            }
        }
        transpose16(v);
        const int lim = N2 - j < 16 ? N2 - j : 16;
        UNROLL
        for (int jj = 0; jj < 16; jj++)
            if (jj < lim) out[j + jj] = v[jj];
    }
    for (; j < N2; j++) out[j] = (v16){0};
}

/* ---- 2-D transforms ---------------------------------------------------------------------- */

INLINE void r2c_body(const rc_l2d *t, float *scratch, const float *const *src, int rows,
                     int cols, size_t sst, float *const *dst, size_t dbs, float scale,
                     const lfft_fn fft)
{
    const int N2 = t->N2, nq = t->nq;
    v16 *base = (v16 *)scratch;
    v16 *Sr = base + t->off_s, *Si = Sr + t->nb;
    v16 *zr = base + t->off_z, *zi = zr + N2, *Zr = zi + N2, *Zi = Zr + N2;
    v16 *ab = base + t->off_a, *g = base + t->off_g;
    /* Row stage: rows r, r+1 packed as z = a + i b; A = (Z[q] + conj Z[-q]), B = -i (Z[q] -
     * conj Z[-q]) are twice the two rows' spectra (the 1/2 is folded into scale). */
    for (int r = 0; r < rows; r += 2) {
        rows_in(src, r, cols, sst, N2, zr);
        if (r + 1 < rows) rows_in(src, r + 1, cols, sst, N2, zi);
        else for (int j = 0; j < N2; j++) zi[j] = (v16){0};
        fft(&t->f2, zr, zi, 1, Zr, Zi, 1, ab, g);
        v16 *ar = Sr + (size_t)r * nq, *ai = Si + (size_t)r * nq;
        for (int q = 0; q < nq; q++) {
            const int mq = q == 0 ? 0 : N2 - q;
            const v16 pr = Zr[q], pi = Zi[q], cr = Zr[mq], ci = Zi[mq];
            ar[q] = pr + cr;
            ai[q] = pi - ci;
            if (r + 1 < rows) {
                ar[nq + q] = pi + ci;
                ai[nq + q] = cr - pr;
            }
        }
    }
    for (size_t i = (size_t)rows * nq; i < (size_t)t->nb; i++) {
        Sr[i] = (v16){0};
        Si[i] = (v16){0};
    }
    /* Column stage, in place on S. */
    for (int q = 0; q < nq; q++)
        fft(&t->f1, Sr + q, Si + q, nq, Sr + q, Si + q, nq, ab, g);
    /* Out: blocks of 16 bins x 16 lanes, transposed to 16 bins per lane. */
    const float sc = 0.5f * scale;
    for (int k = 0; k < t->nblk; k++) {
        v16 vr[16], vi[16];
        UNROLL
        for (int b = 0; b < 16; b++) {
            const int bin = k * 16 + b;
            vr[b] = bin < t->nb ? Sr[bin] : (v16){0};
            vi[b] = bin < t->nb ? Si[bin] : (v16){0};
        }
        transpose16(vr);
        transpose16(vi);
        UNROLL
        for (int l = 0; l < 16; l++)
            if (dst[l]) {
                *(v16 *)(dst[l] + (size_t)k * dbs) = vr[l] * sc;
                *(v16 *)(dst[l] + (size_t)k * dbs + 16) = vi[l] * sc;
            }
    }
}

INLINE void c2r_body(const rc_l2d *t, float *scratch, const float *const *src, size_t sbs,
                     int rows, int cols, float *const *dst, size_t dstride, float scale,
                     const float *add, int accumulate, const lfft_fn ifft)
{
    const int N2 = t->N2, nq = t->nq;
    v16 *base = (v16 *)scratch;
    v16 *Sr = base + t->off_s, *Si = Sr + t->nb;
    v16 *zr = base + t->off_z, *zi = zr + N2, *Zr = zi + N2, *Zi = Zr + N2;
    v16 *ab = base + t->off_a, *g = base + t->off_g;
    /* In: 16 bins per lane -> lane vectors per bin. */
    for (int k = 0; k < t->nblk; k++) {
        v16 vr[16], vi[16];
        UNROLL
        for (int l = 0; l < 16; l++) {
            vr[l] = src[l] ? *(const v16 *)(src[l] + (size_t)k * sbs) : (v16){0};
            vi[l] = src[l] ? *(const v16 *)(src[l] + (size_t)k * sbs + 16) : (v16){0};
        }
        transpose16(vr);
        transpose16(vi);
        const int lim = t->nb - k * 16 < 16 ? t->nb - k * 16 : 16;
        UNROLL
        for (int b = 0; b < 16; b++)
            if (b < lim) { Sr[k * 16 + b] = vr[b]; Si[k * 16 + b] = vi[b]; }
    }
    /* Column stage (inverse), in place. */
    for (int q = 0; q < nq; q++)
        ifft(&t->f1, Sr + q, Si + q, nq, Sr + q, Si + q, nq, ab, g);
    /* Row stage: rows i, i+1 -> Z = X_a + i X_b over the full length (Hermitian extension),
     * inverse FFT: real part row i, imaginary part row i+1. */
    for (int i = 0; i < rows; i += 2) {
        v16 *ar = Sr + (size_t)i * nq, *ai = Si + (size_t)i * nq;
        const int hasb = i + 1 < rows;
        v16 *br = ar + nq, *bi = ai + nq;
        ai[0] = (v16){0};                       /* self-conjugate bins: imaginary part ignored */
        if (!(N2 & 1)) ai[N2 / 2] = (v16){0};
        if (hasb) {
            bi[0] = (v16){0};
            if (!(N2 & 1)) bi[N2 / 2] = (v16){0};
        }
        for (int q = 0; q < nq; q++) {
            const v16 xbr = hasb ? br[q] : (v16){0}, xbi = hasb ? bi[q] : (v16){0};
            Zr[q] = ar[q] - xbi;
            Zi[q] = ai[q] + xbr;
        }
        for (int q = nq; q < N2; q++) {
            const int mq = N2 - q;
            const v16 xbr = hasb ? br[mq] : (v16){0}, xbi = hasb ? bi[mq] : (v16){0};
            Zr[q] = ar[mq] + xbi;
            Zi[q] = xbr - ai[mq];
        }
        ifft(&t->f2, Zr, Zi, 1, zr, zi, 1, ab, g);
        for (int h = 0; h < 1 + hasb; h++) {
            const v16 *row = h ? zi : zr;
            const int ii = i + h;
            for (int j = 0; j < cols; j += 16) {
                v16 v[16];
                /* partial last block: the full block ending at cols (overlap rewritten with
                 * the same values), unless accumulating */
                if (cols - j < 16 && cols >= 16 && !accumulate) j = cols - 16;
                UNROLL
                for (int jj = 0; jj < 16; jj++) v[jj] = j + jj < N2 ? row[j + jj] : (v16){0};
                transpose16(v);
                const int w = cols - j < 16 ? cols - j : 16;
                UNROLL
                for (int l = 0; l < 16; l++) {
                    if (!dst[l]) continue;
                    float *d = dst[l] + (size_t)ii * dstride + j;
                    const float a = add ? add[l] : 0.0f;
                    v16 val = v[l] * scale + a;
                    if (w == 16) {
                        if (accumulate) val = val + *(const v16 *)d;
                        *(v16 *)d = val;
                    } else {
                        float tmp[16];
                        *(v16 *)tmp = val;
                        for (int x = 0; x < w; x++) d[x] = accumulate ? d[x] + tmp[x] : tmp[x];
                    }
                }
            }
        }
    }
}

#define R2C_ARGS const rc_l2d *t, float *scratch, const float *const *src, int rows, int cols, \
                 size_t sst, float *const *dst, size_t dbs, float scale
#define R2C_PASS t, scratch, src, rows, cols, sst, dst, dbs, scale
#define C2R_ARGS const rc_l2d *t, float *scratch, const float *const *src, size_t sbs, int rows, \
                 int cols, float *const *dst, size_t dstride, float scale, const float *add,     \
                 int accumulate
#define C2R_PASS t, scratch, src, sbs, rows, cols, dst, dstride, scale, add, accumulate

static void r2c_generic(R2C_ARGS) { r2c_body(R2C_PASS, lfft_fwd_generic); }
static void c2r_generic(C2R_ARGS) { c2r_body(C2R_PASS, lfft_inv_generic); }
#if RC_FL_X86
TARGET_AVX2 static void r2c_avx2(R2C_ARGS) { r2c_body(R2C_PASS, lfft_fwd_avx2); }
TARGET_AVX2 static void c2r_avx2(C2R_ARGS) { c2r_body(C2R_PASS, lfft_inv_avx2); }
TARGET_AVX512 static void r2c_avx512(R2C_ARGS) { r2c_body(R2C_PASS, lfft_fwd_avx512); }
TARGET_AVX512 static void c2r_avx512(C2R_ARGS) { c2r_body(C2R_PASS, lfft_inv_avx512); }
#endif

void rc_l2d_r2c(R2C_ARGS)
{
#if RC_FL_X86
    if (t->isa == RC_FFTCONV_ISA_AVX512) { r2c_avx512(R2C_PASS); return; }
    if (t->isa == RC_FFTCONV_ISA_AVX2) { r2c_avx2(R2C_PASS); return; }
#endif
    r2c_generic(R2C_PASS);
}

void rc_l2d_c2r(C2R_ARGS)
{
#if RC_FL_X86
    if (t->isa == RC_FFTCONV_ISA_AVX512) { c2r_avx512(C2R_PASS); return; }
    if (t->isa == RC_FFTCONV_ISA_AVX2) { c2r_avx2(C2R_PASS); return; }
#endif
    c2r_generic(C2R_PASS);
}
