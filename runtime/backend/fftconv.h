/* fftconv.h — FFT-based first convolution over history windows of a frame stream.
 *
 * The first conv of the retina CNNs (C = 40 history frames of H x W = 50 x 50, Cout = 8 kernels
 * of 15 x 15) is ~95% of all FLOPs. Each sample's input is a view into one frame stream: sample b
 * reads frames[starts[b] .. starts[b] + C) as channels 0..C-1. So the 2-D spectrum of a FRAME is
 * computed once (rc_fftconv_spectra) and shared by all the windows that contain it (up to C).
 * Per sample the conv is then a frequency-domain product-sum
 *     Y^[o] = sum_c conj(W^[o,c]) * F^[starts[b] + c]          (Cout*C*nbins complex MACs)
 * and Cout inverse real FFTs cropped to the valid region. The weight gradient has the same shape:
 *     dW^[o,c] = sum_b conj(dY^[b,o]) * F^[starts[b] + c]      (accumulated over the batch)
 * with one inverse FFT per (o,c) at the end. The input gradient is never needed (first layer).
 *
 * Semantics: valid cross-correlation, stride 1, PyTorch orientation (no kernel flip):
 *     out[b,o,i,j] = bias[o] + sum_{c,u,v} weight[o,c,u,v] * frames[starts[b]+c, i+u, j+v]
 * for i < Ho = H-K+1, j < Wo = W-K+1.
 *
 * FFT size: exactly H x W (r2c/c2r, nbins = H*(W/2+1)). Circular correlation at size N >= H
 * equals the linear one on every output i with i+u <= H-1 for all u < K, i.e. on exactly the
 * valid rows i < Ho (same for columns); wrap-around only pollutes outputs outside the valid
 * region, which are discarded. The same holds for the weight gradient (dY is zero outside the
 * valid region; lags u < K read x[i+u] with i+u <= H-1). No padding, so N = H is the cheapest
 * legal size (50 x 50: 1300 bins vs 2112 at 64 x 64).
 *
 * Transforms: two engines compute the 2-D real transforms (rc_fftconv_set_engine):
 *   LANES  fftconv_lanes.c: 16 independent transforms per SIMD batch (lane = transform),
 *          mixed-radix Stockham FFTs, no planner; the default with AVX-512 (~3x FFTW there);
 *   FFTW   fftw3f, FFTW_ESTIMATE plans, run as pruned two-stage (rows, columns) transforms;
 *          the default without AVX-512 (the lane transposes need AVX-512 shuffles).
 * The product-sums run on the best ISA variant the CPU has (generic, AVX2+FMA, AVX-512).
 *
 * Spectra layout (opaque to callers, but documented for memory planning): per frame
 * rc_fftconv_spectra_floats(p, 1) floats = 2*nbp (+16 when that is an even number of 64-byte
 * lines), nbp = nbins rounded up to 16; bins in blocks of 16, each block stored as 16 real parts
 * then 16 imaginary parts. A chunk of T frames needs T times that (50x50: 2,640 floats =
 * 10,560 B per frame, about the size of the frames themselves). No alignment needed.
 *
 * Threads: every call runs an OpenMP team of `threads` threads (0 = omp_get_max_threads() at
 * create). One plan object must not be used by two calls at the same time (it owns per-thread
 * scratch and the weight-spectrum cache); distinct plan objects may run concurrently. Create and
 * destroy take a process-wide lock around the FFTW planner (the FFTW planner is not
 * thread-safe; other code in the process that calls the FFTW planner must not race with them).
 *
 * Determinism: for a given engine and ISA variant, forward and weight gradient are bit-identical
 * for any thread count and schedule: each output sample and each transform is computed by one
 * thread with a fixed operation order, lanes of a batch never mix, and the weight gradient is
 * accumulated per frequency bin over the samples in batch order (threads split the bins). The
 * LANES engine has no planner; FFTW plans use FFTW_ESTIMATE, whose choice does not depend on
 * timings (but does reuse wisdom, if other code in the process created some for these sizes).
 *
 * Memory held by a plan (bncnn numbers, fst = floats per spectrum = 2,640): weight spectra
 * (Cout*C*fst floats, 3.4 MB), a copy of the last weights (288 KB); per thread: forward group
 * spectra (16*Cout*fst floats, 1.35 MB), lane-transform scratch (~190 KB), FFTW scratch (~30 KB).
 * The first backward call adds the weight-gradient accumulator (Cout*C*fst floats, 3.4 MB) and
 * a dY-spectrum chunk (RC_FFTCONV_BWD_CHUNK*Cout*fst floats, 5.4 MB); the first with an input
 * gradient, per thread max(1, 16 / C) samples' dX spectra.
 *
 * Every function returning int returns 0 on success or -1 with a one-line message available
 * from rc_fftconv_error().
 */
#ifndef RC_FFTCONV_H
#define RC_FFTCONV_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_fftconv rc_fftconv;

/* Plan for input windows (C, H, W) and kernels (Cout, C, K, K). threads: 0 = all. */
int rc_fftconv_create(int C, int H, int W, int Cout, int K, int threads, rc_fftconv **out,
                      char *err, size_t n);
void rc_fftconv_destroy(rc_fftconv *p);
const char *rc_fftconv_error(const rc_fftconv *p);

/* Floats of spectra storage for T frames. */
size_t rc_fftconv_spectra_floats(const rc_fftconv *p, int64_t T);
/* Floats of one frame's spectrum for H x W frames, without a plan (= spectra_floats(p, 1)). */
size_t rc_fftconv_frame_floats(int H, int W);
/* Output size of one sample: Ho, Wo. */
void rc_fftconv_out_shape(const rc_fftconv *p, int *ho, int *wo);

/* Spectra of T frames: frames (T, H, W) -> spectra (rc_fftconv_spectra_floats(p, T) floats).
 * Compute once per chunk of the frame stream and reuse for every batch whose windows lie in it,
 * forward and backward alike. */
int rc_fftconv_spectra(rc_fftconv *p, const float *frames, int64_t T, float *spectra);

/* Forward: out (B, Cout, Ho, Wo) = conv of the windows starting at starts (B) into the chunk
 * whose spectra (of T frames) are given; 0 <= starts[b] <= T - C. weight (Cout, C, K, K);
 * bias (Cout) or NULL. The weight spectra are cached and recomputed only when the weight
 * values differ from the previous call's (a memcmp of Cout*C*K*K floats). */
int rc_fftconv_forward(rc_fftconv *p, const float *spectra, int64_t T, const int64_t *starts,
                       int B, const float *weight, const float *bias, float *out);

/* rc_fftconv_spectra(p, frames, T, spectra) then rc_fftconv_forward on them, in one parallel
 * region (the frame and weight transforms share a work loop): for small per-call streams, such
 * as a later layer's per-sample maps, where each region's thread wake-ups cost more than the
 * work. Same results as the two calls. */
int rc_fftconv_forward_frames(rc_fftconv *p, const float *frames, int64_t T, float *spectra,
                              const int64_t *starts, int B, const float *weight,
                              const float *bias, float *out);

/* Weight gradient: dweight (Cout, C, K, K) += sum_b d out / d weight . dout (B, Cout, Ho, Wo);
 * dbias (Cout) += sum of dout over b, i, j (NULL to skip). Same spectra/starts contract as
 * forward. The input gradient is not computed. */
int rc_fftconv_backward_weight(rc_fftconv *p, const float *spectra, int64_t T,
                               const int64_t *starts, int B, const float *dout,
                               float *dweight, float *dbias);

/* Weight gradient as above, and with dx non-NULL also the input gradient of every window:
 * dx (B, C, H, W) = d out / d window . dout, written (not accumulated; windows that share frames
 * get separate gradients), computed as C inverse transforms of sum_o W^[o,c] * dY^[b,o] (exact:
 * dY is zero outside the valid region, so the circular convolution never wraps onto an input
 * pixel). weight (Cout, C, K, K) is needed for dx (NULL otherwise); its spectra share forward's
 * cache. The later layers of a model use this per sample, each sample's C maps as its own
 * "frames" (starts[b] = b * C), through the C backend's conv hooks (backend_c.c). */
int rc_fftconv_backward(rc_fftconv *p, const float *spectra, int64_t T, const int64_t *starts,
                        int B, const float *weight, const float *dout, float *dweight,
                        float *dbias, float *dx);

/* Variants of the hot loops: the best the CPU supports is chosen at create. Tests force the
 * others (set_isa fails with -1 if the CPU cannot run the variant); results agree to rounding
 * (the generic variant has no FMA). set_isa does not change the engine. */
enum { RC_FFTCONV_ISA_GENERIC = 0, RC_FFTCONV_ISA_AVX2 = 1, RC_FFTCONV_ISA_AVX512 = 2 };
int rc_fftconv_isa(const rc_fftconv *p);
int rc_fftconv_set_isa(rc_fftconv *p, int isa);

/* Who computes the 2-D transforms (see above). Both engines give the same results to rounding
 * (relative L2 ~3e-7 apart at the bncnn size); -1 for an unknown engine. */
enum { RC_FFTCONV_ENGINE_LANES = 0, RC_FFTCONV_ENGINE_FFTW = 1 };
int rc_fftconv_engine(const rc_fftconv *p);
int rc_fftconv_set_engine(rc_fftconv *p, int engine);

/* The process-wide lock around the FFTW planner (plan creation and destruction are not
 * thread-safe in FFTW); other code in the process that plans must hold it too. */
void rc_fftw_planner_lock(void);
void rc_fftw_planner_unlock(void);

/* Samples per dY-spectrum chunk in backward (bounds its scratch; does not change results). */
#ifndef RC_FFTCONV_BWD_CHUNK
#define RC_FFTCONV_BWD_CHUNK 64
#endif

#endif
