/* rf.h — receptive fields of a trained model (`retinac rf`), torch-deep-retina §5.4.
 *
 * Two estimates per cell, both on seeded Gaussian white noise of std `contrast` in model-input
 * units (z-scored stimulus, as the reference feeds its models), the windows of one frame stream
 * (consecutive windows share history-1 frames, as in the reference's windowed noise):
 *   grad    the gradient STA (utils.compute_sta): the mean over windows of d y_cell / d window
 *           in eval mode, i.e. the average instantaneous receptive field. Computed by the
 *           reference backend's eval-mode backward (rc_ref_eval_grad); layer 1's output comes
 *           from the FFT convolution when layer 1 is a plain or stacked conv (exact to fp32
 *           rounding), and its adjoint is applied once per batch (it is linear).
 *   revcor  the classic STA by reverse correlation (utils.revcor_sta): sum over windows of the
 *           z-scored response times the window, / N (the noise has mean 0; its sample mean is
 *           subtracted all the same). Inference only, on the fastest backend.
 * Each STA (history, H, W) is split into a rank-1 temporal x spatial pair (SVD by power
 * iteration on the history x history Gram matrix) and summarized (rc_rf_cell). Its reliability
 * is measured, not assumed: the windows are split into two halves (alternate batches) and the
 * two half-STAs correlated; Spearman-Brown gives the reliability of the full estimate.
 * Lags: channel c of a window is the frame history-c bins before the predicted bin (c =
 * history-1 is the most recent frame, lag 1).
 */
#ifndef RC_RF_H
#define RC_RF_H

#include <stddef.h>
#include <stdint.h>
#include "progress.h"
#include "checkpoint.h"

typedef struct {
    int64_t samples;      /* white-noise windows (default 2048) */
    double contrast;      /* noise std in model-input units (default 1) */
    uint64_t seed;        /* default 1 */
    int grad, revcor;     /* which estimates (default grad only) */
    int batch;            /* windows per batch (default 256; at most half the samples, so
                           * that both halves of the reliability split get windows) */
    int fft;              /* 1 (default): layer 1 and the input gradients of later plain convs
                           * by FFT where exact; 0: everything by the reference's loops */
    const char *backend;  /* revcor inference backend: "c", "ref" or NULL (c, else ref) */
    rc_progress progress; /* windows done per estimate ("gradient STA", "reverse correlation") */
} rc_rf_opts;

/* Summary of one STA. */
typedef struct {
    double rank1;         /* fraction of the STA's energy in its rank-1 part (0..1) */
    int peak_row, peak_col;   /* pixel of the largest |spatial| */
    double row, col;      /* centroid of the connected blob around the spatial peak above 20%
                           * of the peak (4-connected flood fill) */
    double sigma;         /* RMS radius of that blob, pixels */
    int polarity;         /* +1 ON (brightening drives the cell), -1 OFF */
    int peak_lag;         /* frames before the predicted bin at the temporal peak (1 = latest) */
    double half_r;        /* r between the two half-sample STAs */
    double reliability;   /* Spearman-Brown: 2 half_r / (1 + half_r) */
} rc_rf_cell;

typedef struct {
    int cells, history, h, w;
    int64_t samples;
    double contrast;
    uint64_t seed;
    float *grad;          /* (cells, history, h, w) or NULL */
    float *revcor;        /* (cells, history, h, w) or NULL */
    float *grad_spatial, *grad_temporal;       /* (cells, h, w), (cells, history) */
    float *revcor_spatial, *revcor_temporal;
    rc_rf_cell *grad_cell, *revcor_cell;       /* (cells) */
    double seconds_grad, seconds_revcor;
} rc_rf_result;

void rc_rf_opts_default(rc_rf_opts *o);

/* Both estimates requested in o, for the checkpoint's model. r is zeroed first; free it with
 * rc_rf_free (also after an error). */
int rc_rf_compute(const rc_checkpoint *ck, const rc_rf_opts *o, rc_rf_result *r, char *err,
                  size_t errlen);
void rc_rf_free(rc_rf_result *r);

/* Rank-1 split and summary of one STA (history, h, w) -> spatial (h, w), temporal (history),
 * with the spatial profile's peak made positive (the sign lives in the temporal filter).
 * half_r / reliability are left 0 (they need the halves). Exposed for tests. */
int rc_rf_summarize(const float *sta, int history, int h, int w, float *spatial, float *temporal,
                    rc_rf_cell *c);

/* The evaluator under the gradient STA, for other analyses of a checkpoint (interneuron
 * correlations, analysis/intr.h): eval-mode forward on the reference backend with layer 1 by FFT
 * (plain or stacked conv; exact to fp32 rounding) and later plain convs by FFT when fft = 1,
 * keeping every layer's output. frames (T, H, W) in model-input units; windows start at
 * starts[b] (b < B <= batch, starts[b] + history <= T); y (B, cells) or NULL. */
typedef struct rc_rf_eval rc_rf_eval;
int rc_rf_eval_open(const rc_checkpoint *ck, int batch, int fft, rc_rf_eval **ev, char *err, size_t errlen);
int rc_rf_eval_forward(rc_rf_eval *ev, const float *frames, int64_t T, const int64_t *starts, int B,
                       float *y, char *err, size_t errlen);
/* The output (B, c, h, w) of 0-based layer `layer` of the last forward (NULL before one). */
const float *rc_rf_eval_output(const rc_rf_eval *ev, int layer);
/* dx (history, H, W) += the eval input gradient of sum dy . y over the last forward's windows. */
int rc_rf_eval_grad(rc_rf_eval *ev, const float *frames, const int64_t *starts, const float *dy, float *dx,
                    char *err, size_t errlen);
void rc_rf_eval_close(rc_rf_eval *ev);

/* Write r to path atomically (HDF5: /grad/sta, /grad/spatial, /grad/temporal and per-cell
 * summaries, the same under /revcor, /cell_ids; attributes: model, spec_hash, samples,
 * contrast, seed). */
int rc_rf_write(const char *path, const rc_checkpoint *ck, const rc_rf_result *r, char *err,
                size_t errlen);

#endif
