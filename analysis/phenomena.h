/* phenomena.h — the in-silico retinal phenomena battery (torch-deep-retina's
 * retinal_phenomena.py, reference §5.1-5.2): stimulus generators and the analyses that read a
 * few numbers off a model's responses. Docs: docs/phenomena.md.
 *
 * Units and conventions:
 *   - frames are (T, H, W) float32 in MODEL-INPUT z-units (the z-scored stimulus the model was
 *     trained on: 0 = the training mean, 1 = one training std), as the reference feeds its
 *     models; stimuli are built at the model's own H x W (a cropped model gets smaller frames);
 *   - 100 Hz frames (10 ms), 55 um per pixel;
 *   - a predictor maps frames (T,H,W) to out (T - history, cells) with out[i] the response to
 *     window i = frames i..i+history-1, i.e. the rate at frame time t = i + history (reference
 *     §2.3). The battery works in frame time: the response at frame t exists for t >= history.
 *     Stimuli are the reference's (built for history 40); a model with history > 40 gets
 *     history-40 grey (z = 0) frames prepended, stripped from the traces again;
 *   - every random draw is counter-based (rng.h) from (seed, purpose, index): results are a pure
 *     function of the model and the seed.
 * The core never prints and never exits; errors go to a caller buffer (one line).
 */
#ifndef RC_PHENOMENA_H
#define RC_PHENOMENA_H

#include <stddef.h>
#include <stdint.h>
#include "progress.h"

#include "synth.h"

#define RC_PHENO_DT_MS 10.0
#define RC_PHENO_UM_PER_PX 55.0

/* frames (T, H, W) z-units -> out (T - history, cells). Returns 0 or -1 with a message. */
typedef int (*rc_pheno_predict)(void *ctx, const float *frames, int64_t T, float *out, char *err,
                                size_t errlen);

/* Optional: the mean input sensitivity per cell ("STA", the reference's utils.compute_sta) on
 * `samples` windows of one stream of seeded Gaussian white noise of std `contrast` (z-units):
 * out (cells, history, H, W), with out[n][c] the frame history-c before the predicted bin (c =
 * history-1 is lag 1, rf.h's convention). Checkpoints give the eval-mode gradient STA
 * (rc_rf_compute); the synthetic retina estimates the same quantity by reverse correlation
 * (Stein's lemma, phenomena_synth.c). Only the shape matters to the battery (it is rescaled). */
typedef int (*rc_pheno_sta_fn)(void *ctx, double contrast, int64_t samples, uint64_t seed,
                               float *out, char *err, size_t errlen);

typedef struct {
    rc_pheno_predict predict;
    void *ctx;
    int history, H, W, cells;
    uint64_t seed;               /* noise stimuli (contrast adaptation, OMS); 0 = default 1 */
    /* Optional (NULL: contrast_fig and fast_contrast_adaptation report nan): */
    rc_pheno_sta_fn sta;
    const char *sta_kind;        /* how sta estimates it (trace descriptions); NULL = "gradient STA" */
    int64_t sta_samples;         /* noise windows per STA; 0 = RC_PHENO_STA_SAMPLES */
    rc_progress progress;        /* phenomena done, as stage `label` (may be zeroed) */
    const char *label;
} rc_pheno_model;

#define RC_PHENO_STA_SAMPLES 256 /* per STA: 6 STAs per battery, ~7 s each for an 8-cell BN-CNN */

/* One summary number: key "phenomenon.name" (e.g. "osr.latency_ms"). */
typedef struct {
    char key[64];
    double value;                /* NaN where undefined (e.g. a zero denominator) */
} rc_pheno_num;

/* One trace (stimulus-free): key "phenomenon/name" (an HDF5 path below the run's group). */
typedef struct {
    char key[64];
    int rank;                    /* 1..3 */
    int64_t dims[3];
    float *data;                 /* row-major, dims[0] * ... */
    char desc[160];              /* what the axes are */
} rc_pheno_trace;

/* One stimulus parameter: key "phenomenon/name" (written as an attribute of the group). */
typedef struct {
    char key[64];
    double value;
} rc_pheno_param;

typedef struct {
    rc_pheno_num *nums;
    int n_nums, cap_nums;
    rc_pheno_trace *traces;
    int n_traces, cap_traces;
    rc_pheno_param *params;
    int n_params, cap_params;
} rc_pheno_out;

/* The phenomena in battery order (the reference's numbering 1..11): step, osr,
 * reversing_grating, contrast_adaptation, contrast_fig, motion_reversal, motion_anticipation,
 * oms, freq_doubling, fast_contrast_adaptation, latency. contrast_fig and
 * fast_contrast_adaptation need the model's sta callback (NaN numbers without it). */
extern const char *const rc_pheno_names[];
extern const int rc_pheno_count;

/* Check a comma-separated list of names (NULL or "" = all). 0 ok, -1 naming the bad one. */
int rc_pheno_check_only(const char *only, char *err, size_t errlen);

/* Run the battery (or the `only` subset) on a model; results are appended to out (zeroed by
 * the caller before the first use). Returns 0, or -1 with a message (predictor errors pass
 * through, prefixed with the phenomenon). */
int rc_pheno_run(const rc_pheno_model *m, const char *only, rc_pheno_out *out, char *err,
                 size_t errlen);
void rc_pheno_out_free(rc_pheno_out *o);
/* The number with this key, or NULL. */
const rc_pheno_num *rc_pheno_find(const rc_pheno_out *o, const char *key);
const rc_pheno_trace *rc_pheno_find_trace(const rc_pheno_out *o, const char *key);

/* ---- the report file (phenomena_io.c) ---- */

/* One column of a report: a model's (or the retina's) battery output and where it came from. */
typedef struct {
    char label[64];              /* its HDF5 group: unique among the columns, no '/' */
    char source[1100];           /* the checkpoint it was loaded from, or how the retina was made */
    char model[64];              /* the model's name */
    rc_pheno_model pm;           /* its history, H, W and cells are written with it */
    rc_pheno_out out;
} rc_pheno_column;

/* Write n columns to path (HDF5, atomically: built in memory, then rc_h5_mem_commit; see
 * fsutil.h): /<label>/<phenomenon>/<name> for every trace (float32, its description as an
 * attribute) and summary number (one float64), the stimulus parameters as attributes of
 * /<label>/<phenomenon>, and source, model, history, height, width, cells as attributes of
 * /<label>; the root carries generator, only (`only`, "" for the whole battery) and units.
 * Returns 0, or -1 with a message naming path (a failed write leaves the old file as it was). */
int rc_pheno_write(const char *path, const rc_pheno_column *cols, int n, const char *only,
                   char *err, size_t errlen);

/* ---- the ground truth: the synthetic retina of `retinac synth` (phenomena_synth.c) ---- */

/* Open the retina of o (same seed => the same retina as `retinac synth --seed`; calibration
 * takes a few seconds) and fill m with its predictor (history 40, 50x50, o->cells cells).
 * z-units map to the retina's contrast through the training stimulus statistics of o
 * (rc_synth_stim_stats): s = 2 (z std + mean) / 255 - 1 for uint8 frames. */
typedef struct rc_pheno_synth rc_pheno_synth;
int rc_pheno_synth_open(const rc_synth_opts *o, rc_pheno_model *m, rc_pheno_synth **s,
                        char *err, size_t errlen);
void rc_pheno_synth_stats(const rc_pheno_synth *s, double *mean, double *std);
void rc_pheno_synth_close(rc_pheno_synth *s);

/* ---- stimulus generators (all write frames (T, H, W) z-units; the caller owns the buffer) ---- */

/* Full-field flash: 0 everywhere, `intensity` in frames [delay, delay+duration). T = nsamples. */
void rc_pheno_flash(float *fr, int nsamples, int H, int W, int duration, int delay,
                    float intensity);
/* The reference OSR train: 42 + 34 grey, nflashes x (interval grey + duration at intensity),
 * one omitted flash (interval + duration grey), 34 grey. Returns T (182 for the defaults) and
 * sets *omitted_frame to the frame where the omitted flash would start (146 = window 106).
 * fr may be NULL to query T. */
int rc_pheno_osr_stim(float *fr, int H, int W, int duration, int interval, int nflashes,
                      float intensity, int *omitted_frame);
/* 1-D square wave as the reference's stim.square: +intensity for halfperiod samples, then
 * -intensity, ..., started at offset int(2 * phase * halfperiod). */
void rc_pheno_square(float *out, int n, int halfperiod, double phase, float intensity);
/* Vertical grating (varies along x): square (bar width px, +1 first, phase offset as square)
 * or sine (sin(pi x / width + 2 pi phase)). img (H, W). */
void rc_pheno_grating(float *img, int H, int W, int width, double phase, int sine);
/* Reversing image: frame t = square(halfperiod)[t] * img. fr (n, H, W). */
void rc_pheno_reverse(float *fr, const float *img, int H, int W, int halfperiod, int n);
/* One frame of a full-height vertical bar (the reference's stim.bar with height >= H): centre
 * c px from the frame centre (W/2), width px, drawn on a canvas upsampled by us and
 * block-averaged back (us 5: anti-aliased sub-pixel positions, as driftingbar). */
void rc_pheno_bar(float *img, int H, int W, double c, int width, float intensity, int us);
/* Drifting bar from x0 to x1 at |speed| px/frame (the reference's driftingbar): returns the
 * frame count npts = 1 + floor(|x1 - x0| / |speed|); centers (npts) may be NULL; fr may be NULL
 * to query. Width 2, intensity -1, us 5 as the reference. */
int rc_pheno_drifting_bar(float *fr, double *centers, int H, int W, double speed, int width,
                          double x0, double x1);
/* Full-field Gaussian flicker held for `hold` frames (repeat_white, spatially uniform) with
 * per-frame contrast contrast[t]: frame t = contrast[t] * N(0,1)[t / hold]. */
void rc_pheno_flicker(float *fr, int n, int H, int W, const float *contrast, int hold,
                      uint64_t seed, uint64_t stream);
/* OMS jitter movie: vertical stripes (values 1 and 0, bar width px, as stim.stripes) in a
 * disk of radius r at the frame centre over a background of the same stripes; pre static
 * frames, n jittering frames, post static frames. Each frame, the background steps +-1 px with
 * probability p_bg and the disk's grating with p_fg (independent draws, "differential"), or
 * both take the disk's step ("global", sync = 1). Returns T = pre + n + post (fr NULL: query). */
int rc_pheno_oms_stim(float *fr, int H, int W, int width, double radius, int pre, int n,
                      int post, double p_bg, double p_fg, int sync, uint64_t seed,
                      uint64_t stream);

/* ---- small analysis helpers (exposed for tests) ---- */

/* |DFT of x (n samples) at k cycles per n samples|. */
double rc_pheno_dft_amp(const float *x, int n, int k);
/* Sub-sample peak position of x[lo..hi): argmax refined by the parabola through its
 * neighbours (clamped to the range). *peak receives the parabola's value there. */
double rc_pheno_peak(const float *x, int lo, int hi, double *peak);
/* Centre of mass (Hz) of the power spectrum of a temporal filter over its first 7 frequency
 * bins (0, 2.5, .., 15 Hz): the DFT of the 40 most recent lags (zero-padded when history < 40),
 * i.e. 400 ms at 10 ms per frame. temporal (history) in rf.h's order (last = lag 1).
 * power (7, may be NULL) receives the power normalized to its maximum over all bins (the
 * reference's npower). NaN for an all-zero filter. */
double rc_pheno_com_hz(const float *temporal, int history, float *power);
/* Static nonlinearity by binned means (pyret's Binterp: nbins bins of equal count along x):
 * bx, by (nbins) the mean x and mean y per bin; *gain the least-squares slope of y on x over
 * the samples within one standard deviation of x's mean (NaN if undefined). -1: no memory. */
int rc_pheno_nonlinearity(const float *x, const float *y, int64_t n, int nbins, float *bx,
                          float *by, double *gain);

#endif
