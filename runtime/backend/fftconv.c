/* fftconv.c — FFT-based first convolution over history windows (see fftconv.h for the math,
 * the spectra layout, threading and determinism contracts).
 *
 * Invariants:
 *   - FFT size N1 x N2 = H x W exactly (legal for valid correlation, see fftconv.h); nb bins of
 *     the r2c half spectrum, flattened row-major (r * (N2/2+1) + q), padded to nbp (multiple of
 *     VB = 16) with zero bins; every spectrum (frame, weight, dY, dW accumulator) uses the same
 *     split blocked layout: block k holds bins 16k..16k+15 as 16 re then 16 im floats.
 *   - Frame spectra: frame t at spectra + t * fst, fst = 2 * nbp (+ 16 when that is an even
 *     number of cache lines, so that the same block of many frames spreads over the L1 sets).
 *   - Weight spectra: wspec + ((k * Cout + o) * C + c) * 32 for block k — a block of all (o, c)
 *     is contiguous (Cout*C*32 floats) so it stays in cache across a group of samples. Scaled by
 *     1 / (N1*N2) so the unnormalized c2r gives the correlation directly.
 *   - dW accumulator: dacc + ((k * Cout + o) * C + c) * 32, unscaled (scaled after the c2r).
 *   - All FFTW arrays come from fftwf_malloc (same alignment), so the new-array execute
 *     functions are legal on any thread's scratch.
 * Hot loops use GCC vector extensions (16 floats), compiled per ISA (target attributes); the file
 * enables FP contraction so a*b + c becomes an FMA (the project builds with -std=c11, which
 * turns contraction off by default).
 */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "errbuf.h"
#include "fftconv.h"
#include "fftconv_lanes.h"

#include <fftw3.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VB 16          /* bins per block = floats per vector */
#define FWD_GROUP 16   /* samples whose spectra a thread builds before its inverse FFTs
                          (= RC_LANES: one lane-batched c2r per output channel) */

/* may_alias + aligned(4): loads/stores straight from float arrays at any 4-byte alignment. */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

/* ISA variants of the hot loops (chosen once per plan, see best_isa): the same source is
 * compiled three times with a target attribute. target_clones("arch=...") is not used because
 * it dispatches on the CPU model name (a Cascade Lake is not "skylake-avx512"), not features. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RC_FC_X86 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define RC_FC_X86 0
#endif
#define INLINE static inline __attribute__((always_inline))
/* Full unrolling of the constant tile loops keeps the accumulators in registers. */
#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 8")
#endif

#ifndef RC_FC_PREFETCH
#define RC_FC_PREFETCH 1
#endif
#define PREFETCH(a) do { if (RC_FC_PREFETCH) __builtin_prefetch(a); } while (0)

/* Macros, not functions: a 64-byte vector passed by value trips -Wpsabi without AVX-512. */
#define ld(p) (*(const v16 *)(p))
#define st(p, v) (*(v16 *)(p) = (v))

struct rc_fftconv {
    int C, H, W, Cout, K, Ho, Wo;
    int N1, N2, nq;          /* FFT size; nq = N2/2 + 1 */
    int nb, nblk, nbp;       /* bins, blocks of VB, padded bins */
    size_t fst;              /* floats per spectrum: 2 * nbp, or + 16 (odd number of lines) */
    int threads;
    int isa;                 /* rc_fftconv_isa: which variant of the hot loops runs */
    int engine;              /* RC_FFTCONV_ENGINE_*: who does the 2-D transforms */
    rc_l2d *l2d;             /* lane-batched transforms (engine LANES) */
    float **lscr;            /* [threads] rc_l2d_scratch_floats() scratch */
    /* The 2-D transforms run as two batched 1-D stages so that known-zero input rows and
     * unneeded output rows are skipped (pruning): rows (r2c/c2r along W, `howmany` = the rows
     * that matter) and columns (c2c along H over all nq columns). Out of place throughout. */
    fftwf_plan row_f[3];     /* r2c of the first H, K, Ho rows: rbuf -> cbuf */
    fftwf_plan row_b[3];     /* c2r of the first Ho, K, H rows: cbuf2 -> rbuf */
    fftwf_plan col_f, col_b; /* c2c forward cbuf -> cbuf2 / backward cbuf -> cbuf2 */
    float **rbuf;            /* [threads] (N1*N2) real scratch, fftwf_malloc */
    fftwf_complex **cbuf;    /* [threads] (nb) complex scratch, fftwf_malloc */
    fftwf_complex **cbuf2;   /* [threads] (nb) complex scratch, fftwf_malloc */
    float **ybuf;            /* [threads] (FWD_GROUP*Cout*fst) forward group spectra */
    float *wspec;            /* (nblk, Cout, C, 32) weight spectra */
    float *wcache;           /* (Cout, C, K, K) weights wspec was made from */
    int wvalid;
    float *dacc;             /* (nblk, Cout, C, 32) dW spectra, lazily allocated */
    float *dys;              /* (RC_FFTCONV_BWD_CHUNK, Cout, fst) dY spectra, lazily allocated */
    float **xbuf;            /* [threads] (DX_GROUP(C)*C*fst) dX spectra, lazily allocated */
    int64_t *order;          /* (order_cap * 3): forward's sample order, sorted starts */
    size_t order_cap;
    char err[256];
};

static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

void rc_fftw_planner_lock(void) { pthread_mutex_lock(&planner_lock); }
void rc_fftw_planner_unlock(void) { pthread_mutex_unlock(&planner_lock); }

static int fail(rc_fftconv *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *isa_name(int isa)
{
    return isa == RC_FFTCONV_ISA_AVX512 ? "avx512" : isa == RC_FFTCONV_ISA_AVX2 ? "avx2"
                                                                             : "generic";
}

const char *rc_fftconv_error(const rc_fftconv *p) { return p ? p->err : "fftconv: no plan"; }

size_t rc_fftconv_frame_floats(int H, int W)
{
    size_t nbp = ((size_t)H * (size_t)(W / 2 + 1) + VB - 1) / VB * VB, fst = 2 * nbp;
    /* An odd number of cache lines per spectrum: the same block of many frames (a window's
     * channels, a chunk's dY) then spreads over all L1 sets instead of a few. */
    if ((fst / 16) % 2 == 0) fst += 16;
    return fst;
}

size_t rc_fftconv_spectra_floats(const rc_fftconv *p, int64_t T)
{
    return T > 0 ? (size_t)T * p->fst : 0;
}

static int best_isa(void)
{
#if RC_FC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
        return RC_FFTCONV_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return RC_FFTCONV_ISA_AVX2;
#endif
    return RC_FFTCONV_ISA_GENERIC;
}

int rc_fftconv_set_isa(rc_fftconv *p, int isa)
{
    if (isa < RC_FFTCONV_ISA_GENERIC || isa > RC_FFTCONV_ISA_AVX512)
        return fail(p, "fftconv: unknown ISA variant %d", isa);
    if (isa > best_isa())
        return fail(p, "fftconv: this CPU cannot run the %s variant", isa_name(isa));
    p->isa = isa;
    rc_l2d_set_isa(p->l2d, isa);
    return 0;
}

int rc_fftconv_set_engine(rc_fftconv *p, int engine)
{
    if (engine != RC_FFTCONV_ENGINE_LANES && engine != RC_FFTCONV_ENGINE_FFTW)
        return fail(p, "fftconv: unknown transform engine %d", engine);
    p->engine = engine;
    return 0;
}

int rc_fftconv_isa(const rc_fftconv *p) { return p->isa; }

int rc_fftconv_engine(const rc_fftconv *p) { return p->engine; }

void rc_fftconv_out_shape(const rc_fftconv *p, int *ho, int *wo)
{
    if (ho) *ho = p->Ho;
    if (wo) *wo = p->Wo;
}

static void *alloc64(size_t floats)
{
    void *q = NULL;
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    if (posix_memalign(&q, 64, bytes) != 0) return NULL;
    return q;
}

void rc_fftconv_destroy(rc_fftconv *p)
{
    if (!p) return;
    pthread_mutex_lock(&planner_lock);
    fftwf_plan *plans[] = {&p->row_f[0], &p->row_f[1], &p->row_f[2], &p->row_b[0],
                           &p->row_b[1], &p->row_b[2], &p->col_f, &p->col_b};
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++)
        if (*plans[i]) fftwf_destroy_plan(*plans[i]);
    for (int t = 0; t < p->threads; t++) {
        if (p->rbuf) fftwf_free(p->rbuf[t]);
        if (p->cbuf) fftwf_free(p->cbuf[t]);
        if (p->cbuf2) fftwf_free(p->cbuf2[t]);
        if (p->ybuf) free(p->ybuf[t]);
        if (p->xbuf) free(p->xbuf[t]);
    }
    pthread_mutex_unlock(&planner_lock);
    free(p->rbuf);
    free(p->cbuf);
    free(p->cbuf2);
    if (p->lscr)
        for (int t = 0; t < p->threads; t++) free(p->lscr[t]);
    free(p->lscr);
    rc_l2d_destroy(p->l2d);
    free(p->ybuf);
    free(p->xbuf);
    free(p->order);
    free(p->wspec);
    free(p->wcache);
    free(p->dacc);
    free(p->dys);
    free(p);
}

int rc_fftconv_create(int C, int H, int W, int Cout, int K, int threads, rc_fftconv **out,
                      char *err, size_t n)
{
    *out = NULL;
    if (C < 1 || H < 1 || W < 1 || Cout < 1 || K < 1 || K > H || K > W || threads < 0) {
        snprintf(err, n, "fftconv: bad shape C=%d H=%d W=%d Cout=%d K=%d threads=%d "
                 "(need all >= 1, K <= H, K <= W)", C, H, W, Cout, K, threads);
        return -1;
    }
    if ((int64_t)H * W > (1 << 24)) {
        snprintf(err, n, "fftconv: frame %dx%d too large", H, W);
        return -1;
    }
    rc_fftconv *p = calloc(1, sizeof *p);
    if (!p) { snprintf(err, n, "fftconv: out of memory"); return -1; }
    p->C = C; p->H = H; p->W = W; p->Cout = Cout; p->K = K;
    p->Ho = H - K + 1; p->Wo = W - K + 1;
    p->N1 = H; p->N2 = W; p->nq = W / 2 + 1;
    p->nb = p->N1 * p->nq;
    p->nblk = (p->nb + VB - 1) / VB;
    p->nbp = p->nblk * VB;
    p->fst = rc_fftconv_frame_floats(H, W);
    p->threads = threads > 0 ? threads : omp_get_max_threads();
    if (p->threads < 1) p->threads = 1;
    p->isa = best_isa();
    /* The lane-batched transforms need AVX-512's 32 vector registers and two-source shuffles
     * (with AVX2 their 16x16 transposes are scalarized and they run ~2x slower than FFTW). */
    p->engine = p->isa == RC_FFTCONV_ISA_AVX512 ? RC_FFTCONV_ENGINE_LANES
                                                : RC_FFTCONV_ENGINE_FFTW;

    int T = p->threads;
    if (rc_l2d_create(p->N1, p->N2, p->isa, &p->l2d) != 0) goto oom;
    p->lscr = calloc((size_t)T, sizeof *p->lscr);
    if (!p->lscr) goto oom;
    for (int t = 0; t < T; t++)
        if (!(p->lscr[t] = alloc64(rc_l2d_scratch_floats(p->l2d)))) goto oom;
    p->rbuf = calloc((size_t)T, sizeof *p->rbuf);
    p->cbuf = calloc((size_t)T, sizeof *p->cbuf);
    p->cbuf2 = calloc((size_t)T, sizeof *p->cbuf2);
    p->ybuf = calloc((size_t)T, sizeof *p->ybuf);
    p->wspec = alloc64((size_t)Cout * C * p->fst);
    p->wcache = alloc64((size_t)Cout * C * K * K);
    if (!p->rbuf || !p->cbuf || !p->cbuf2 || !p->ybuf || !p->wspec || !p->wcache) goto oom;
    memset(p->wspec, 0, (size_t)Cout * C * p->fst * sizeof(float));
    pthread_mutex_lock(&planner_lock);   /* fftwf_malloc is thread-safe; kept here for plans */
    for (int t = 0; t < T; t++) {
        p->rbuf[t] = fftwf_malloc((size_t)p->N1 * p->N2 * sizeof(float));
        p->cbuf[t] = fftwf_malloc((size_t)p->nb * sizeof(fftwf_complex));
        p->cbuf2[t] = fftwf_malloc((size_t)p->nb * sizeof(fftwf_complex));
        p->ybuf[t] = alloc64((size_t)FWD_GROUP * Cout * p->fst);
        if (!p->rbuf[t] || !p->cbuf[t] || !p->cbuf2[t] || !p->ybuf[t]) {
            pthread_mutex_unlock(&planner_lock);
            goto oom;
        }
    }
    /* ESTIMATE: deterministic plan choice, and it does not scribble on the arrays. */
    const unsigned fl = FFTW_ESTIMATE;
    const int n1[1] = {p->N1}, n2[1] = {p->N2}, nq = p->nq;
    const int frows[3] = {p->H, p->K, p->Ho}, brows[3] = {p->Ho, p->K, p->H};
    float *r0 = p->rbuf[0];
    fftwf_complex *c0 = p->cbuf[0], *c1 = p->cbuf2[0];
    for (int i = 0; i < 3; i++)
        p->row_f[i] = fftwf_plan_many_dft_r2c(1, n2, frows[i], r0, NULL, 1, p->N2, c0, NULL, 1,
                                              nq, fl);
    for (int i = 0; i < 3; i++)
        p->row_b[i] = fftwf_plan_many_dft_c2r(1, n2, brows[i], c1, NULL, 1, nq, r0, NULL, 1,
                                              p->N2, fl | FFTW_DESTROY_INPUT);
    p->col_f = fftwf_plan_many_dft(1, n1, nq, c0, NULL, nq, 1, c1, NULL, nq, 1, FFTW_FORWARD, fl);
    p->col_b = fftwf_plan_many_dft(1, n1, nq, c0, NULL, nq, 1, c1, NULL, nq, 1, FFTW_BACKWARD,
                                   fl);
    pthread_mutex_unlock(&planner_lock);
    if (!p->row_f[0] || !p->row_f[1] || !p->row_f[2] || !p->row_b[0] || !p->row_b[1] ||
        !p->row_b[2] || !p->col_f || !p->col_b) {
        snprintf(err, n, "fftconv: FFTW could not plan a %dx%d real transform", p->N1, p->N2);
        rc_fftconv_destroy(p);
        return -1;
    }
    *out = p;
    return 0;
oom:
    snprintf(err, n, "fftconv: out of memory for C=%d H=%d W=%d Cout=%d K=%d threads=%d",
             C, H, W, Cout, K, p->threads);
    rc_fftconv_destroy(p);
    return -1;
}

/* ---- layout helpers ---------------------------------------------------------------------- */

/* Interleaved FFTW half spectrum (nb) -> split blocked spectrum at dst (stride bstride floats
 * per block), times scale; padding bins zero. Full blocks deinterleave 16 complex values with
 * two shuffles (vpermt2ps on AVX-512). */
typedef int v16i __attribute__((vector_size(64)));
INLINE void split_store_body(const rc_fftconv *p, const fftwf_complex *src, float *dst,
                             size_t bstride, float scale)
{
    const v16i even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const v16i odd = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    const float *s = (const float *)src;
    const int full = p->nb / VB;
    for (int k = 0; k < full; k++) {
        const v16 a = ld(s + (size_t)k * 2 * VB), b = ld(s + (size_t)k * 2 * VB + VB);
        float *d = dst + (size_t)k * bstride;
        st(d, __builtin_shuffle(a, b, even) * scale);
        st(d + VB, __builtin_shuffle(a, b, odd) * scale);
    }
    for (int k = full; k < p->nblk; k++) {
        float *d = dst + (size_t)k * bstride;
        for (int v = 0; v < VB; v++) {
            int q = k * VB + v;
            d[v] = q < p->nb ? src[q][0] * scale : 0.0f;
            d[VB + v] = q < p->nb ? src[q][1] * scale : 0.0f;
        }
    }
}

/* Split blocked spectrum (block stride bstride) -> interleaved FFTW half spectrum. */
INLINE void split_load_body(const rc_fftconv *p, const float *src, size_t bstride,
                            fftwf_complex *dst)
{
    const v16i lo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
    const v16i hi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    float *d = (float *)dst;
    const int full = p->nb / VB;
    for (int k = 0; k < full; k++) {
        const float *s = src + (size_t)k * bstride;
        const v16 re = ld(s), im = ld(s + VB);
        st(d + (size_t)k * 2 * VB, __builtin_shuffle(re, im, lo));
        st(d + (size_t)k * 2 * VB + VB, __builtin_shuffle(re, im, hi));
    }
    for (int k = full; k < p->nblk; k++) {
        const float *s = src + (size_t)k * bstride;
        for (int v = 0; v < VB && k * VB + v < p->nb; v++) {
            dst[k * VB + v][0] = s[v];
            dst[k * VB + v][1] = s[VB + v];
        }
    }
}

#define SST_ARGS const rc_fftconv *p, const fftwf_complex *src, float *dst, size_t bs, float sc
#define SLD_ARGS const rc_fftconv *p, const float *src, size_t bs, fftwf_complex *dst
static void sst_generic(SST_ARGS) { split_store_body(p, src, dst, bs, sc); }
static void sld_generic(SLD_ARGS) { split_load_body(p, src, bs, dst); }
#if RC_FC_X86
TARGET_AVX2 static void sst_avx2(SST_ARGS) { split_store_body(p, src, dst, bs, sc); }
TARGET_AVX2 static void sld_avx2(SLD_ARGS) { split_load_body(p, src, bs, dst); }
TARGET_AVX512 static void sst_avx512(SST_ARGS) { split_store_body(p, src, dst, bs, sc); }
TARGET_AVX512 static void sld_avx512(SLD_ARGS) { split_load_body(p, src, bs, dst); }
#endif

static void split_store(SST_ARGS)
{
#if RC_FC_X86
    if (p->isa == RC_FFTCONV_ISA_AVX512) { sst_avx512(p, src, dst, bs, sc); return; }
    if (p->isa == RC_FFTCONV_ISA_AVX2) { sst_avx2(p, src, dst, bs, sc); return; }
#endif
    sst_generic(p, src, dst, bs, sc);
}

static void split_load(SLD_ARGS)
{
#if RC_FC_X86
    if (p->isa == RC_FFTCONV_ISA_AVX512) { sld_avx512(p, src, bs, dst); return; }
    if (p->isa == RC_FFTCONV_ISA_AVX2) { sld_avx2(p, src, bs, dst); return; }
#endif
    sld_generic(p, src, bs, dst);
}

static int check_starts(rc_fftconv *p, const int64_t *starts, int B, int64_t T)
{
    if (B < 0) return fail(p, "fftconv: batch size %d < 0", B);
    if (T < p->C) return fail(p, "fftconv: chunk of %lld frames is shorter than the window (%d)",
                              (long long)T, p->C);
    for (int b = 0; b < B; b++)
        if (starts[b] < 0 || starts[b] > T - p->C)
            return fail(p, "fftconv: starts[%d] = %lld out of range [0, %lld] for a chunk of "
                        "%lld frames", b, (long long)starts[b], (long long)(T - p->C),
                        (long long)T);
    return 0;
}

/* ---- 2-D transforms, RC_LANES at a time ------------------------------------------------- */

/* FFTW engine: the 2-D transforms run as two batched 1-D stages so that known-zero input rows
 * and unneeded output rows are skipped. Thread tid's rbuf (first `rows` rows, row stride N2;
 * the other rows count as zero) -> interleaved half spectrum in cbuf2. */
static fftwf_complex *fftw_r2c(const rc_fftconv *p, int tid, int rows)
{
    const int which = rows == p->H ? 0 : rows == p->K ? 1 : 2;
    fftwf_complex *cb = p->cbuf[tid], *cb2 = p->cbuf2[tid];
    fftwf_execute_dft_r2c(p->row_f[which], p->rbuf[tid], cb);
    if (rows < p->N1)
        memset(cb + (size_t)rows * p->nq, 0, (size_t)(p->N1 - rows) * p->nq * sizeof *cb);
    fftwf_execute_dft(p->col_f, cb, cb2);
    return cb2;
}

/* FFTW engine: half spectrum in cbuf (destroyed) -> the first `rows` (Ho, K or H) rows of rbuf
 * (row stride N2), unnormalized. */
static float *fftw_c2r(const rc_fftconv *p, int tid, int rows)
{
    fftwf_execute_dft(p->col_b, p->cbuf[tid], p->cbuf2[tid]);
    fftwf_execute_dft_c2r(p->row_b[rows == p->Ho ? 0 : rows == p->K ? 1 : 2], p->cbuf2[tid], p->rbuf[tid]);
    return p->rbuf[tid];
}

/* Up to RC_LANES r2c transforms with the rc_l2d_r2c contract (rows is H, K or Ho). */
static void r2c_batch(const rc_fftconv *p, int tid, const float *const *src, int rows, int cols,
                      size_t sst, float *const *dst, size_t dbs, float scale)
{
    if (p->engine == RC_FFTCONV_ENGINE_LANES) {
        rc_l2d_r2c(p->l2d, p->lscr[tid], src, rows, cols, sst, dst, dbs, scale);
        return;
    }
    float *r = p->rbuf[tid];
    for (int l = 0; l < RC_LANES; l++) {
        if (!dst[l]) continue;
        memset(r, 0, (size_t)rows * p->N2 * sizeof(float));
        if (src[l])
            for (int i = 0; i < rows; i++)
                memcpy(r + (size_t)i * p->N2, src[l] + (size_t)i * sst,
                       (size_t)cols * sizeof(float));
        split_store(p, fftw_r2c(p, tid, rows), dst[l], dbs, scale);
    }
}

/* Up to RC_LANES c2r transforms with the rc_l2d_c2r contract (rows is Ho, K or H). */
static void c2r_batch(const rc_fftconv *p, int tid, const float *const *src, size_t sbs, int rows,
                      int cols, float *const *dst, size_t dstride, float scale, const float *add,
                      int accumulate)
{
    if (p->engine == RC_FFTCONV_ENGINE_LANES) {
        rc_l2d_c2r(p->l2d, p->lscr[tid], src, sbs, rows, cols, dst, dstride, scale, add,
                   accumulate);
        return;
    }
    for (int l = 0; l < RC_LANES; l++) {
        if (!dst[l]) continue;
        if (src[l]) split_load(p, src[l], sbs, p->cbuf[tid]);
        else memset(p->cbuf[tid], 0, (size_t)p->nb * sizeof(fftwf_complex));
        const float *r = fftw_c2r(p, tid, rows);
        const float a = add ? add[l] : 0.0f;
        for (int i = 0; i < rows; i++) {
            float *d = dst[l] + (size_t)i * dstride;
            for (int j = 0; j < cols; j++) {
                const float v = r[(size_t)i * p->N2 + j] * scale + a;
                d[j] = accumulate ? d[j] + v : v;
            }
        }
    }
}

/* ---- spectra ----------------------------------------------------------------------------- */

/* Batch bt of the spectra of T frames (lanes = frames bt*16 ..). */
static void frame_batch(const rc_fftconv *p, int tid, const float *frames, int64_t T,
                        float *spectra, int64_t bt)
{
    const size_t hw = (size_t)p->H * p->W;
    const float *src[RC_LANES];
    float *dst[RC_LANES];
    for (int l = 0; l < RC_LANES; l++) {
        const int64_t t = bt * RC_LANES + l;
        src[l] = t < T ? frames + (size_t)t * hw : NULL;
        dst[l] = t < T ? spectra + (size_t)t * p->fst : NULL;
    }
    r2c_batch(p, tid, src, p->H, p->W, (size_t)p->W, dst, 2 * VB, 1.0f);
}

int rc_fftconv_spectra(rc_fftconv *p, const float *frames, int64_t T, float *spectra)
{
    if (T < 0) return fail(p, "fftconv: spectra of %lld frames", (long long)T);
    const int64_t nbat = (T + RC_LANES - 1) / RC_LANES;
    #pragma omp parallel for num_threads(p->threads) schedule(dynamic, 1)
    for (int64_t bt = 0; bt < nbat; bt++)
        frame_batch(p, omp_get_thread_num(), frames, T, spectra, bt);
    return 0;
}

/* Weight spectra into p->wspec (scaled by 1/(N1*N2)), unless the weights equal the cached copy:
 * weight_batches says how many lane batches (0: cached), weight_batch computes one (any thread,
 * any order), weight_done records the copy once all ran. Split so that a caller's parallel
 * region can run them beside other transforms, without a region or barrier of their own. */
static int weight_batches(const rc_fftconv *p, const float *weight)
{
    const size_t nw = (size_t)p->Cout * p->C * p->K * p->K;
    if (p->wvalid && memcmp(p->wcache, weight, nw * sizeof(float)) == 0) return 0;
    return (p->Cout * p->C + RC_LANES - 1) / RC_LANES;
}

static void weight_batch(const rc_fftconv *p, int tid, const float *weight, int bt)
{
    const int K = p->K, n = p->Cout * p->C;
    const float scale = 1.0f / ((float)p->N1 * (float)p->N2);
    const float *src[RC_LANES];
    float *dst[RC_LANES];
    for (int l = 0; l < RC_LANES; l++) {
        const int oc = bt * RC_LANES + l;   /* = o * C + c */
        src[l] = oc < n ? weight + (size_t)oc * K * K : NULL;
        dst[l] = oc < n ? p->wspec + (size_t)oc * 2 * VB : NULL;
    }
    r2c_batch(p, tid, src, K, K, (size_t)K, dst, (size_t)n * 2 * VB, scale);
}

static void weight_done(rc_fftconv *p, const float *weight)
{
    memcpy(p->wcache, weight, (size_t)p->Cout * p->C * p->K * p->K * sizeof(float));
    p->wvalid = 1;
}

static void weight_spectra(rc_fftconv *p, const float *weight)
{
    const int nbat = weight_batches(p, weight);
    if (!nbat) return;
    #pragma omp parallel for num_threads(p->threads) schedule(dynamic, 1)
    for (int bt = 0; bt < nbat; bt++) weight_batch(p, omp_get_thread_num(), weight, bt);
    weight_done(p, weight);
}

/* ---- forward ----------------------------------------------------------------------------- */

/* One bin block of TS samples x TO output channels: y[s][o] = sum_c conj(w[c][o]) * f[s][c].
 * f[s]: frame spectrum block of channel 0 of sample s (channel stride fst); w: weight block of
 * (c=0, o0) (input-channel stride 32, output-channel stride wos); y[s]: output block of o0
 * (channel stride yst). A weight vector is loaded once for the TS samples. */
INLINE void fwd_tile(const int TS, const int TO, const float *const *f, size_t fst,
                     const float *w, size_t wos, int C, float *const *y, size_t yst)
{
    v16 ar[2][4], ai[2][4];
    UNROLL
    for (int s = 0; s < TS; s++)
        UNROLL
        for (int o = 0; o < TO; o++) { ar[s][o] = (v16){0}; ai[s][o] = (v16){0}; }
    for (int c = 0; c < C; c++) {
        v16 fr[2], fi[2];
        UNROLL
        for (int s = 0; s < TS; s++) {
            fr[s] = ld(f[s] + (size_t)c * fst);
            fi[s] = ld(f[s] + (size_t)c * fst + VB);
            /* the same lines of the next bin block (never faults, even past the end): random
             * windows miss every cache, and this spreads the misses over the compute */
            PREFETCH(f[s] + (size_t)c * fst + 2 * VB);
            PREFETCH(f[s] + (size_t)c * fst + 3 * VB);
        }
        const float *wc = w + (size_t)c * 2 * VB;
        UNROLL
        for (int o = 0; o < TO; o++) {
            const v16 wr = ld(wc + o * wos), wi = ld(wc + o * wos + VB);
            UNROLL
            for (int s = 0; s < TS; s++) {
                ar[s][o] = ar[s][o] + wr * fr[s];
                ar[s][o] = ar[s][o] + wi * fi[s];
                ai[s][o] = ai[s][o] + wr * fi[s];
                ai[s][o] = ai[s][o] - wi * fr[s];
            }
        }
    }
    UNROLL
    for (int s = 0; s < TS; s++)
        UNROLL
        for (int o = 0; o < TO; o++) {
            st(y[s] + (size_t)o * yst, ar[s][o]);
            st(y[s] + (size_t)o * yst + VB, ai[s][o]);
        }
}

/* Spectra of g samples into y (g, Cout, fst). Loop order: bin block, then output-channel tile
 * (its weight spectra, TOM*C*32 contiguous floats = 20 KB for bncnn, stay in L1 across the
 * group's samples), then pairs of samples (TSM = 2 shares each weight load between two
 * samples). */
INLINE void fwd_group_mac_body(const rc_fftconv *p, const float *spectra, const int64_t *starts,
                               int g, float *y, const int TSM, const int TOM)
{
    const int C = p->C, Cout = p->Cout;
    const size_t fst = p->fst, wos = (size_t)C * 2 * VB;
    for (int k = 0; k < p->nblk; k++) {
        const float *wk = p->wspec + (size_t)k * Cout * wos;
        for (int o = 0; o < Cout;) {
            const int to = Cout - o >= TOM ? TOM : 1;
            const float *wo = wk + (size_t)o * wos;
            for (int bi = 0; bi < g;) {
                const int ts = g - bi >= TSM ? TSM : 1;
                const float *f[2];
                float *yb[2];
                for (int s = 0; s < ts; s++) {
                    f[s] = spectra + (size_t)starts[bi + s] * fst + (size_t)k * 2 * VB;
                    yb[s] = y + ((size_t)(bi + s) * Cout + o) * fst + (size_t)k * 2 * VB;
                }
                if (ts == TSM && to == TOM) fwd_tile(TSM, TOM, f, fst, wo, wos, C, yb, fst);
                else if (ts == TSM) fwd_tile(TSM, 1, f, fst, wo, wos, C, yb, fst);
                else if (to == TOM) fwd_tile(1, TOM, f, fst, wo, wos, C, yb, fst);
                else fwd_tile(1, 1, f, fst, wo, wos, C, yb, fst);
                bi += ts;
            }
            o += to;
        }
    }
}

#define FWD_ARGS const rc_fftconv *p, const float *spectra, const int64_t *starts, int g, float *y
static void fwd_mac_generic(FWD_ARGS) { fwd_group_mac_body(p, spectra, starts, g, y, 1, 1); }
#if RC_FC_X86
TARGET_AVX2 static void fwd_mac_avx2(FWD_ARGS)
{
    fwd_group_mac_body(p, spectra, starts, g, y, 1, 2);
}
TARGET_AVX512 static void fwd_mac_avx512(FWD_ARGS)
{
    fwd_group_mac_body(p, spectra, starts, g, y, 2, 4);
}
#endif

static void fwd_group_mac(FWD_ARGS)
{
#if RC_FC_X86
    if (p->isa == RC_FFTCONV_ISA_AVX512) { fwd_mac_avx512(p, spectra, starts, g, y); return; }
    if (p->isa == RC_FFTCONV_ISA_AVX2) { fwd_mac_avx2(p, spectra, starts, g, y); return; }
#endif
    fwd_mac_generic(p, spectra, starts, g, y);
}

/* (start, index) pairs in increasing order: the forward order of the samples. */
static int cmp_start(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Forward; frames non-NULL: first the spectra of its T frames into spec_out (= spectra). The
 * frame and weight transforms share one work loop and the product-sums follow in the same
 * parallel region: at small batches each region or barrier is a thread sleep and wake-up,
 * which costs more than the work between them (issue 19; bench/omp_wait.sh). */
static int forward_impl(rc_fftconv *p, const float *frames, float *spec_out,
                        const float *spectra, int64_t T, const int64_t *starts, int B,
                        const float *weight, const float *bias, float *out)
{
    if (check_starts(p, starts, B, T) != 0) return -1;   /* also T >= C */
    if (B == 0) return frames ? rc_fftconv_spectra(p, frames, T, spec_out) : 0;
    /* Samples run in the order of their windows' starts: a group of windows that overlap reads
     * each shared frame line once from memory instead of once per window (the windows of a
     * stream, or of a batch drawn densely from a chunk). Each sample's result does not depend
     * on the order. */
    if ((size_t)B > p->order_cap) {
        free(p->order);
        p->order = malloc((size_t)B * 3 * sizeof(int64_t));
        p->order_cap = p->order ? (size_t)B : 0;
        if (!p->order) return fail(p, "fftconv: out of memory");
    }
    int64_t *pair = p->order, *sorted = p->order + 2 * (size_t)B;   /* (B, 2), (B) */
    for (int b = 0; b < B; b++) { pair[2 * b] = starts[b]; pair[2 * b + 1] = b; }
    qsort(pair, (size_t)B, 2 * sizeof(int64_t), cmp_start);
    for (int b = 0; b < B; b++) sorted[b] = pair[2 * b];
    const int nwb = weight_batches(p, weight);
    const int64_t nfb = frames ? (T + RC_LANES - 1) / RC_LANES : 0;
    const int Cout = p->Cout, Ho = p->Ho, Wo = p->Wo;
    /* Small batches: shrink groups so every thread gets work. */
    int g = (B + p->threads - 1) / p->threads;
    if (g > FWD_GROUP) g = FWD_GROUP;
    if (g < 1) g = 1;
    const int ngroups = (B + g - 1) / g;
    #pragma omp parallel num_threads(p->threads)
    {
        const int tid = omp_get_thread_num();
        float *y = p->ybuf[tid];
        if (nfb + nwb > 0) {   /* the same on every thread */
            #pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < nfb + nwb; i++) {
                if (i < nfb) frame_batch(p, tid, frames, T, spec_out, i);
                else weight_batch(p, tid, weight, (int)(i - nfb));
            }
        }
        #pragma omp for schedule(dynamic, 1)
        for (int gi = 0; gi < ngroups; gi++) {
            const int b0 = gi * g, gn = B - b0 < g ? B - b0 : g;
            fwd_group_mac(p, spectra, sorted + b0, gn, y);
            /* one batch of inverse transforms per output channel: lane = sample of the group */
            for (int o = 0; o < Cout; o++) {
                const float *src[RC_LANES];
                float *dst[RC_LANES];
                float add[RC_LANES];
                for (int l = 0; l < RC_LANES; l++) {
                    src[l] = l < gn ? y + ((size_t)l * Cout + o) * p->fst : NULL;
                    dst[l] = l < gn ? out + ((size_t)pair[2 * (b0 + l) + 1] * Cout + o) * Ho * Wo : NULL;
                    add[l] = bias ? bias[o] : 0.0f;
                }
                c2r_batch(p, tid, src, 2 * VB, Ho, Wo, dst, (size_t)Wo, 1.0f, add, 0);
            }
        }
    }
    if (nwb) weight_done(p, weight);
    return 0;
}

int rc_fftconv_forward(rc_fftconv *p, const float *spectra, int64_t T, const int64_t *starts,
                       int B, const float *weight, const float *bias, float *out)
{
    return forward_impl(p, NULL, NULL, spectra, T, starts, B, weight, bias, out);
}

int rc_fftconv_forward_frames(rc_fftconv *p, const float *frames, int64_t T, float *spectra,
                              const int64_t *starts, int B, const float *weight,
                              const float *bias, float *out)
{
    return forward_impl(p, frames, spectra, spectra, T, starts, B, weight, bias, out);
}

/* ---- weight gradient --------------------------------------------------------------------- */

/* One bin block, TO x TC (o, c) accumulators, over n samples in order:
 * acc[o][c] += conj(dy[b][o]) * f[starts[b] + c]; fresh: acc starts at zero (not read), so the
 * accumulator needs no zeroing pass (0 + x is x exactly: the sums are unchanged). */
INLINE void bwd_tile(const int TO, const int TC, float *acc, size_t aos /* o stride */,
                     const float *dy, size_t dybs /* sample stride */, size_t fst,
                     const float *fk /* spectra + block offset + c0 * fst */,
                     const int64_t *starts, int n, int fresh)
{
    v16 ar[8][2], ai[8][2];
    UNROLL
    for (int o = 0; o < TO; o++)
        UNROLL
        for (int c = 0; c < TC; c++) {
            ar[o][c] = fresh ? (v16){0} : ld(acc + o * aos + c * 2 * VB);
            ai[o][c] = fresh ? (v16){0} : ld(acc + o * aos + c * 2 * VB + VB);
        }
    for (int b = 0; b < n; b++) {
        const float *db = dy + (size_t)b * dybs;
        const float *fb = fk + (size_t)starts[b] * fst;
        v16 fr[2], fi[2];
        UNROLL
        for (int c = 0; c < TC; c++) {
            fr[c] = ld(fb + (size_t)c * fst);
            fi[c] = ld(fb + (size_t)c * fst + VB);
            /* this sample's lines of the next c tile in this block: read 16 samples later.
             * Unlike forward (which walks one window's consecutive frames, a stride the
             * hardware prefetcher follows), this walks random windows; prefetching the next
             * block instead (as forward does) was 8-15% slower per training step here */
            PREFETCH(fb + (size_t)(c + TC) * fst);
            PREFETCH(fb + (size_t)(c + TC) * fst + VB);
        }
        UNROLL
        for (int o = 0; o < TO; o++) {
            const v16 dr = ld(db + (size_t)o * fst), di = ld(db + (size_t)o * fst + VB);
            UNROLL
            for (int c = 0; c < TC; c++) {
                ar[o][c] = ar[o][c] + dr * fr[c];
                ar[o][c] = ar[o][c] + di * fi[c];
                ai[o][c] = ai[o][c] + dr * fi[c];
                ai[o][c] = ai[o][c] - di * fr[c];
            }
        }
    }
    UNROLL
    for (int o = 0; o < TO; o++)
        UNROLL
        for (int c = 0; c < TC; c++) {
            st(acc + o * aos + c * 2 * VB, ar[o][c]);
            st(acc + o * aos + c * 2 * VB + VB, ai[o][c]);
        }
}

/* Bin block k of the dW accumulator += the n samples of the current chunk, in sub-chunks of
 * BWD_SUB samples (their dY blocks, BWD_SUB*Cout*32 floats = 16 KB for bncnn, stay in L1 while
 * every (o, c) tile streams over them); register tiles of TOM output x TCM input channels
 * (remainders in tiles of 1). Each accumulator still sums the samples in batch order. */
#define BWD_SUB 16
#ifndef BWD_TOM512
#define BWD_TOM512 8   /* AVX-512: 8 (o) x 1 (c) tile: 16 accumulators, each frame line once */
#define BWD_TCM512 1
#endif
#define BWD_TILE(TO, TC)                                                                       \
    bwd_tile(TO, TC, acck + o * aos + (size_t)c * 2 * VB, aos,                                 \
             dyk + (size_t)s0 * dybs + (size_t)o * fst, dybs, fst, fk + (size_t)c * fst,       \
             starts + s0, ns, fresh && s0 == 0)
INLINE void bwd_block_mac_body(const rc_fftconv *p, int k, const float *spectra,
                               const int64_t *starts, int n, int fresh, const int TOM,
                               const int TCM)
{
    const int C = p->C, Cout = p->Cout;
    const size_t fst = p->fst, aos = (size_t)C * 2 * VB;
    float *acck = p->dacc + (size_t)k * Cout * aos;
    const float *dyk = p->dys + (size_t)k * 2 * VB;
    const float *fk = spectra + (size_t)k * 2 * VB;
    const size_t dybs = (size_t)Cout * fst;
    for (int s0 = 0; s0 < n; s0 += BWD_SUB) {
        const int ns = n - s0 < BWD_SUB ? n - s0 : BWD_SUB;
        int o = 0;
        for (; o + TOM <= Cout; o += TOM) {
            int c = 0;
            for (; c + TCM <= C; c += TCM) BWD_TILE(TOM, TCM);
            for (; c < C; c++) BWD_TILE(TOM, 1);
        }
        for (; o < Cout; o++) {
            int c = 0;
            for (; c + TCM <= C; c += TCM) BWD_TILE(1, TCM);
            for (; c < C; c++) BWD_TILE(1, 1);
        }
    }
}

#define BWD_ARGS \
    const rc_fftconv *p, int k, const float *spectra, const int64_t *starts, int n, int fresh
static void bwd_mac_generic(BWD_ARGS) { bwd_block_mac_body(p, k, spectra, starts, n, fresh, 1, 1); }
#if RC_FC_X86
TARGET_AVX2 static void bwd_mac_avx2(BWD_ARGS)
{
    bwd_block_mac_body(p, k, spectra, starts, n, fresh, 2, 1);
}
TARGET_AVX512 static void bwd_mac_avx512(BWD_ARGS)
{
    bwd_block_mac_body(p, k, spectra, starts, n, fresh, BWD_TOM512, BWD_TCM512);
}
#endif

static void bwd_block_mac(BWD_ARGS)
{
#if RC_FC_X86
    if (p->isa == RC_FFTCONV_ISA_AVX512) {
        bwd_mac_avx512(p, k, spectra, starts, n, fresh);
        return;
    }
    if (p->isa == RC_FFTCONV_ISA_AVX2) {
        bwd_mac_avx2(p, k, spectra, starts, n, fresh);
        return;
    }
#endif
    bwd_mac_generic(p, k, spectra, starts, n, fresh);
}

/* ---- input gradient ---------------------------------------------------------------------- */

/* Samples whose dX spectra one thread builds before their inverse transforms: enough (o, c)
 * pairs to fill the RC_LANES lanes of a c2r batch. */
#define DX_GROUP(C) ((C) >= RC_LANES ? 1 : RC_LANES / (C))

/* One bin block of TC input channels of one sample: x[c] = sum_o w[o][c] * dy[o] (no conjugate:
 * the adjoint of forward's conj(w) * f). w: weight block of (o=0, c0) (input-channel stride 32,
 * output-channel stride wos); dy: dY block of o = 0 (channel stride fst); x: dX block of c0
 * (channel stride fst). */
INLINE void dx_tile(const int TC, const float *w, size_t wos, const float *dy, size_t fst,
                    int Cout, float *x)
{
    v16 ar[8], ai[8];
    UNROLL
    for (int c = 0; c < TC; c++) { ar[c] = (v16){0}; ai[c] = (v16){0}; }
    for (int o = 0; o < Cout; o++) {
        const v16 dr = ld(dy + (size_t)o * fst), di = ld(dy + (size_t)o * fst + VB);
        const float *wo = w + (size_t)o * wos;
        UNROLL
        for (int c = 0; c < TC; c++) {
            const v16 wr = ld(wo + c * 2 * VB), wi = ld(wo + c * 2 * VB + VB);
            ar[c] = ar[c] + wr * dr;
            ar[c] = ar[c] - wi * di;
            ai[c] = ai[c] + wr * di;
            ai[c] = ai[c] + wi * dr;
        }
    }
    UNROLL
    for (int c = 0; c < TC; c++) {
        st(x + (size_t)c * fst, ar[c]);
        st(x + (size_t)c * fst + VB, ai[c]);
    }
}

/* dX spectra (C, fst) of one sample from its dY spectra (Cout, fst), tiles of TCM channels. */
INLINE void dx_mac_body(const rc_fftconv *p, const float *dy, float *x, const int TCM)
{
    const int C = p->C, Cout = p->Cout;
    const size_t fst = p->fst, wos = (size_t)C * 2 * VB;
    for (int k = 0; k < p->nblk; k++) {
        const float *wk = p->wspec + (size_t)k * Cout * wos;
        const float *dk = dy + (size_t)k * 2 * VB;
        float *xk = x + (size_t)k * 2 * VB;
        int c = 0;
        for (; c + TCM <= C; c += TCM) dx_tile(TCM, wk + (size_t)c * 2 * VB, wos, dk, fst, Cout, xk + (size_t)c * fst);
        for (; c < C; c++) dx_tile(1, wk + (size_t)c * 2 * VB, wos, dk, fst, Cout, xk + (size_t)c * fst);
    }
}

#define DX_ARGS const rc_fftconv *p, const float *dy, float *x
static void dx_mac_generic(DX_ARGS) { dx_mac_body(p, dy, x, 1); }
#if RC_FC_X86
TARGET_AVX2 static void dx_mac_avx2(DX_ARGS) { dx_mac_body(p, dy, x, 2); }
TARGET_AVX512 static void dx_mac_avx512(DX_ARGS) { dx_mac_body(p, dy, x, 8); }
#endif

static void dx_mac(DX_ARGS)
{
#if RC_FC_X86
    if (p->isa == RC_FFTCONV_ISA_AVX512) { dx_mac_avx512(p, dy, x); return; }
    if (p->isa == RC_FFTCONV_ISA_AVX2) { dx_mac_avx2(p, dy, x); return; }
#endif
    dx_mac_generic(p, dy, x);
}

int rc_fftconv_backward_weight(rc_fftconv *p, const float *spectra, int64_t T,
                               const int64_t *starts, int B, const float *dout,
                               float *dweight, float *dbias)
{
    return rc_fftconv_backward(p, spectra, T, starts, B, NULL, dout, dweight, dbias, NULL);
}

int rc_fftconv_backward(rc_fftconv *p, const float *spectra, int64_t T, const int64_t *starts,
                        int B, const float *weight, const float *dout, float *dweight,
                        float *dbias, float *dx)
{
    if (check_starts(p, starts, B, T) != 0) return -1;
    if (B == 0) return 0;
    const int C = p->C, Cout = p->Cout, Ho = p->Ho, Wo = p->Wo, N1 = p->N1, N2 = p->N2;
    const int K = p->K, H = p->H, W = p->W;
    const size_t fst = p->fst, nacc = (size_t)Cout * C * fst;
    if (!p->dacc) p->dacc = alloc64(nacc);
    if (!p->dys) p->dys = alloc64((size_t)RC_FFTCONV_BWD_CHUNK * Cout * fst);
    if (!p->dacc || !p->dys)
        return fail(p, "fftconv: out of memory for the weight-gradient buffers (%zu floats)",
                    nacc + (size_t)RC_FFTCONV_BWD_CHUNK * Cout * fst);
    const int dxg = DX_GROUP(C);
    if (dx && !p->xbuf) {
        p->xbuf = calloc((size_t)p->threads, sizeof *p->xbuf);
        if (!p->xbuf) return fail(p, "fftconv: out of memory");
        for (int t = 0; t < p->threads; t++)
            if (!(p->xbuf[t] = alloc64((size_t)dxg * C * fst)))
                return fail(p, "fftconv: out of memory for the input-gradient buffers (%zu floats)",
                            (size_t)dxg * C * fst);
    }
    if (dx && !weight) return fail(p, "fftconv: the input gradient needs the weights");
    if (dx) weight_spectra(p, weight);
    const float scale = 1.0f / ((float)N1 * (float)N2);
    const size_t plane = (size_t)Ho * Wo;
    #pragma omp parallel num_threads(p->threads)
    {
        const int tid = omp_get_thread_num();
        for (int b0 = 0; b0 < B; b0 += RC_FFTCONV_BWD_CHUNK) {
            const int n = B - b0 < RC_FFTCONV_BWD_CHUNK ? B - b0 : RC_FFTCONV_BWD_CHUNK;
            /* dY spectra of the chunk, zero-padded to N1 x N2 (wrap-free, see fftconv.h). */
            const int nbat = (n * Cout + RC_LANES - 1) / RC_LANES;
            #pragma omp for schedule(dynamic, 1)
            for (int bt = 0; bt < nbat; bt++) {
                const float *src[RC_LANES];
                float *dst[RC_LANES];
                for (int l = 0; l < RC_LANES; l++) {
                    const int bo = bt * RC_LANES + l;
                    src[l] = bo < n * Cout ? dout + ((size_t)b0 * Cout + bo) * plane : NULL;
                    dst[l] = bo < n * Cout ? p->dys + (size_t)bo * fst : NULL;
                }
                r2c_batch(p, tid, src, Ho, Wo, (size_t)Wo, dst, 2 * VB, 1.0f);
            }
            /* Threads split the bins; each bin sums the samples in batch order (the first
             * chunk starts the sums: no zeroing pass). With dx the input gradient, which also
             * only reads the dY spectra, follows without a barrier; its loop's barrier then
             * covers both before the next chunk's transforms overwrite them. */
            if (dx) {
                #pragma omp for schedule(dynamic, 4) nowait
                for (int k = 0; k < p->nblk; k++)
                    bwd_block_mac(p, k, spectra, starts + b0, n, b0 == 0);
            } else {
                #pragma omp for schedule(dynamic, 4)
                for (int k = 0; k < p->nblk; k++)
                    bwd_block_mac(p, k, spectra, starts + b0, n, b0 == 0);
            }
            /* Input gradient: each sample's dX spectra from its dY spectra, then C inverse
             * transforms of the whole H x W (exact: dY is zero outside the valid region, so the
             * circular convolution does not wrap onto any input pixel). */
            if (dx) {
                const int ng = (n + dxg - 1) / dxg;
                #pragma omp for schedule(dynamic, 1)
                for (int gi = 0; gi < ng; gi++) {
                    const int s0 = gi * dxg, sn = n - s0 < dxg ? n - s0 : dxg;
                    float *xb = p->xbuf[tid];
                    for (int q = 0; q < sn; q++)
                        dx_mac(p, p->dys + (size_t)(s0 + q) * Cout * fst, xb + (size_t)q * C * fst);
                    for (int q0 = 0; q0 < sn * C; q0 += RC_LANES) {
                        const float *src[RC_LANES];
                        float *dst[RC_LANES];
                        for (int l = 0; l < RC_LANES; l++) {
                            const int q = q0 + l;   /* = sample in group * C + c */
                            src[l] = q < sn * C ? xb + (size_t)q * fst : NULL;
                            dst[l] = q < sn * C ? dx + ((size_t)(b0 + s0) * C + q) * H * W : NULL;
                        }
                        c2r_batch(p, tid, src, 2 * VB, H, W, dst, (size_t)W, 1.0f, NULL, 0);
                    }
                }
            }
        }
        /* One inverse transform per (o, c); lags 0..K-1 are the gradient. The bias sums after
         * it read only dout (the region's end is the barrier). */
        const int nbat = (Cout * C + RC_LANES - 1) / RC_LANES;
        #pragma omp for schedule(dynamic, 1) nowait
        for (int bt = 0; bt < nbat; bt++) {
            const float *src[RC_LANES];
            float *dst[RC_LANES];
            for (int l = 0; l < RC_LANES; l++) {
                const int oc = bt * RC_LANES + l;
                src[l] = oc < Cout * C ? p->dacc + (size_t)oc * 2 * VB : NULL;
                dst[l] = oc < Cout * C ? dweight + (size_t)oc * K * K : NULL;
            }
            c2r_batch(p, tid, src, (size_t)Cout * C * 2 * VB, K, K, dst, (size_t)K, scale, NULL,
                      1);
        }
        if (dbias) {
            #pragma omp for schedule(static)
            for (int o = 0; o < Cout; o++) {
                double s = 0.0;
                for (int b = 0; b < B; b++) {
                    const float *src = dout + ((size_t)b * Cout + o) * plane;
                    for (size_t i = 0; i < plane; i++) s += src[i];
                }
                dbias[o] += (float)s;
            }
        }
    }
    return 0;
}
