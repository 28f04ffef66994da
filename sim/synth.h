/* synth.h — `retinac synth`: a simulated salamander-like retina with known ground truth,
 * written as a recording in the Baccus layout (see data.h and docs/synthetic-retina.md).
 *
 * The model (all at the 100 Hz frame rate, 50x50 pixels):
 *   stimulus s = 2*v - 1 (contrast about the global mean grey), v in [0,1] as stored
 *   outer retina: difference-of-Gaussians centre-surround filter D = (Gc - ws*Gs) * s
 *   bipolar drive: u_on = f_on (*)t D, u_off = -f_off (*)t D (biphasic filters, lags 1..24)
 *   contrast gain control: sigma_loc = sqrt(g (*)t G3 * (u_on^2 + u_off^2)/2); v = u/(1+k*sigma/u_ref)
 *   rectified subunits: b_pre = relu(v - theta_b*v_sd)
 *   amacrine inhibition: a = h (*)t Ga * (b_pre_on + b_pre_off), lags 1..8; b = relu(v - theta_b*v_sd - w_am*a)
 *   ganglion cell c: g_c = sum_x W_c(x) (w_on b_on + w_off b_off); z = (g - mean)/sd (calibrated)
 *   lambda_c = R_c * softplus(alpha*(z - theta_c)) spikes/s; spikes ~ Poisson(lambda*dt) per 10 ms bin
 *   rates: the binned counts /dt smoothed by Gaussians of sd 5, 10, 20 ms (edge-renormalized)
 * Everything lambda(t) depends on lies in frames t-40..t-1: a model with 40 frames of history
 * can reach the true ceiling. Each run calibrates u_ref, v_sd, the generator mean/sd and the
 * gains R_c on a separate natural movie, so the same seed gives the same retina for either
 * stimulus. Output is a pure function of the options (bit-identical for a seed).
 */
#ifndef RC_SYNTH_H
#define RC_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include "progress.h"

typedef enum { RC_SYNTH_NATURAL = 0, RC_SYNTH_WHITENOISE } rc_synth_stim;

typedef struct {
    uint64_t seed;          /* default 1 */
    int cells;              /* default 8 */
    int64_t frames;         /* training frames, default 28000 (280 s at 100 Hz) */
    int64_t test_frames;    /* 0: clamp(frames/10, 2000, 6000) */
    int repeats;            /* test repeats, default 6 */
    rc_synth_stim stimulus;
    int float32;            /* 1: frames stored as float32 in [0,1]; 0 (default): uint8 0..255 */
    int cheap;              /* 1: I/O-test mode: uint8 white noise and a trivial LN response */
    int quiet;              /* kept for callers; the library prints nothing itself */
    rc_progress progress;   /* frames written per split ("train", "test"), the calibration */
    int calib_frames;       /* calibration movie length; 0: 3000 (fewer: faster, noisier gains) */
    const char *const *sets; /* retina parameter overrides "NAME=VALUE" (see --set) */
    int n_sets;
} rc_synth_opts;

void rc_synth_opts_default(rc_synth_opts *o);
int64_t rc_synth_test_frames(const rc_synth_opts *o);

/* Write the recording to path atomically (a temp file beside it, then rename: fsutil.h). */
int rc_synth_write(const char *path, const rc_synth_opts *o, char *err, size_t errlen);

/* The simulated retina as a function, for in-silico experiments (analysis/phenomena.h): the same
 * options (seed, cells, --set, calib_frames) give the same retina as rc_synth_write, calibrated
 * the same way (a few seconds). rate: lam (T, cells) = the noise-free Poisson intensity
 * lambda(t) in spikes/s for frames s (T, 50, 50) in the retina's contrast units s = 2v - 1
 * (v = stored value / 255 for uint8 files); lambda(t) depends on frames t-39..t-1 only, each
 * call starts from a grey (s = 0) past. Stimuli are not quantized to 8 bits, not clipped. */
typedef struct rc_synth_retina rc_synth_retina;
int rc_synth_retina_open(const rc_synth_opts *o, rc_synth_retina **r, char *err, size_t errlen);
int rc_synth_retina_cells(const rc_synth_retina *r);
int rc_synth_retina_rate(rc_synth_retina *r, const float *s, int64_t T, float *lam, char *err,
                         size_t errlen);
/* The noise-free interneuron signals of the same retina at n pixels pos (n, 2) = (row, col), for
 * frames s (T, 50, 50) in contrast units, each call from a grey past: bip_on, bip_off (n, T) the
 * bipolar "membrane potentials" v_on, v_off (after contrast gain control, before rectification),
 * amac (n, T) the amacrine inhibition a (before its weight). Aligned like lambda: the value at t
 * is the one retina_step computes for lambda(t), from frames < t only (v: t-31..t-1, a: t-39..t-2).
 * Any output may be NULL. */
int rc_synth_retina_interneurons(rc_synth_retina *r, const float *s, int64_t T, int n, const int *pos,
                                 float *bip_on, float *bip_off, float *amac, char *err, size_t errlen);
void rc_synth_retina_close(rc_synth_retina *r);
/* Simulated intracellular recordings of that retina (`retinac synth --interneurons DIR`): mkdir -p
 * dir, then dir/bipolars_synth.h5 and dir/amacrines_synth.h5, each atomically, in
 * torch-deep-retina's layout: /boxes/stimuli (T,50,50) float32 exactly 0 or 1 (a binary 2x2-px
 * checkerboard, new every frame, its own random stream), /boxes/detrended_membrane_potential
 * (n,T) float32 = the noise-free signal (rc_synth_retina_interneurons of s = 2v - 1) plus Gaussian
 * noise of 0.1 x its sd, minus its mean; /centers (n,2) int32 (row, col); bipolars also /types
 * (n) int32, 0 OFF 1 ON. T in 100..100000. Does not touch the recording. */
int rc_synth_write_interneurons(const char *dir, const rc_synth_opts *o, int64_t T, char *err, size_t errlen);
/* Mean and population std over every pixel of the training stimulus rc_synth_write would store
 * for o (stored units: 0..255 for uint8, 0..1 for float32), i.e. the data layer's
 * normalization of a model trained on that file (before its + 1e-7; uncropped). */
int rc_synth_stim_stats(const rc_synth_opts *o, double *mean, double *std, char *err, size_t errlen);

/* One 1/f^2 natural-like image (n x n, n a power of two), zero mean, unit sd; exposed for tests. */
int rc_synth_image(uint64_t seed, uint64_t index, int n, double *out);

#endif
