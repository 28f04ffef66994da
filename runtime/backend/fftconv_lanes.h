/* fftconv_lanes.h — 16-lane batched 2-D real FFTs for fftconv.c (internal to the runtime).
 *
 * Sixteen independent N1 x N2 real transforms run at once, lane l of every 16-float vector
 * belonging to transform l, so every butterfly is plain vertical SIMD with scalar (broadcast)
 * twiddles and no shuffles; data enter and leave through 16x16 transposes. The 2-D transform is
 * a row stage (two real rows packed into one complex FFT of length N2: z = a + i b) and a
 * column stage (complex FFT of length N1 over the nq = N2/2 + 1 half-spectrum columns); rows
 * known to be zero on input, or not wanted on output, are skipped. Complex FFTs are mixed-radix
 * Stockham (radix 4, 2, 3, 5 butterflies; any other prime factor by a direct DFT), so every
 * size works; deterministic (fixed operation order, no planner).
 *
 * Spectra use fftconv's split blocked layout: bins flattened r * nq + q, in blocks of 16 bins
 * stored as 16 re then 16 im floats; bins past N1*nq in the last block are written as zero.
 * Conventions match FFTW: r2c is the unnormalized forward DFT (e^{-i...}); c2r is the
 * unnormalized inverse of a Hermitian half spectrum (the imaginary parts of the self-conjugate
 * bins q = 0 and q = N2/2 are ignored, as FFTW's c2r does).
 */
#ifndef RC_FFTCONV_LANES_H
#define RC_FFTCONV_LANES_H

#include <stddef.h>

#define RC_LANES 16

typedef struct rc_l2d rc_l2d;

/* isa: RC_FFTCONV_ISA_* of fftconv.h (the caller checked the CPU supports it). */
int rc_l2d_create(int N1, int N2, int isa, rc_l2d **out);
void rc_l2d_destroy(rc_l2d *t);
void rc_l2d_set_isa(rc_l2d *t, int isa);
/* Floats of per-thread scratch a call needs (64-byte aligned). */
size_t rc_l2d_scratch_floats(const rc_l2d *t);

/* r2c of up to 16 real images: lane l reads rows x cols (<= N1 x N2) at src[l] (row stride sst;
 * the rest of the N1 x N2 image is zero; src[l] == NULL: all zero) and writes its half spectrum
 * times scale to dst[l] (block k at dst[l] + k * dbs; dst[l] == NULL: not written). */
void rc_l2d_r2c(const rc_l2d *t, float *scratch, const float *const *src, int rows, int cols,
                size_t sst, float *const *dst, size_t dbs, float scale);

/* c2r of up to 16 half spectra (src[l] block k at src[l] + k * sbs; NULL: zero) -> the first
 * rows x cols of each N1 x N2 real image, times scale, plus add[l] (add may be NULL), stored
 * (accumulate = 0) or added (accumulate = 1) to dst[l][i * dstride + j] (NULL: not written). */
void rc_l2d_c2r(const rc_l2d *t, float *scratch, const float *const *src, size_t sbs, int rows,
                int cols, float *const *dst, size_t dstride, float scale, const float *add,
                int accumulate);

#endif
