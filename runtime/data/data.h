/* data.h — recordings: validated HDF5 reading, streamed frames, minibatches, test sets.
 *
 * Layouts (auto-detected):
 *   Baccus lab (the public salamander data, and `retinac synth` output):
 *     /train/stimulus (T,H,W) any int/float dtype    /train/time (T) optional
 *     /train/response/<rate_key> (cells,T)            rate_key: firing_rate_{5,10,20}ms | binned
 *     /test/... the same (the test rate is the trial average; the test split is optional)
 *     /test/repeats/<rate_key> (repeats,cells,T_test)  or  /test/repeats/cellNN (repeats,T_test)
 *     /cells/centers (cells,2) int (row,col) optional; /test/response/true_rate (cells,T) optional
 *     Label keys are firing_rate_*, binned and true_rate (and cellNN in repeats/); every one
 *     present is validated; other datasets (e.g. train/stas) are ignored.
 *   openretina generic (papers-and-peers.md §4.6): responses_<stim> (cells,T) per stimulus, frames
 *     from stimulus_<stim> in the file or <stimuli_dir>/<stim>.npy, shape (1,T,H,W) or (T,H,W);
 *     the stimulus named test_name is the test split, all others are concatenated for training.
 *
 * Alignment (as torch-deep-retina, reference §2.3): window i = frames i..i+history-1 (oldest
 * first), label y[i] = rate[i + history]; T-history samples per segment. Windows never cross a
 * segment boundary (openretina stimuli are separate segments) and are never materialized: a batch
 * is a frames base pointer plus int64 starts into it (backend.h).
 *
 * Normalization: one scalar mean/std over every pixel of every training-split frame (after the
 * crop), population std + 1e-7, exactly the reference; frames are (x - mean) / std in float32.
 * The statistics are computed streaming on first need, or set from a checkpoint for inference.
 *
 * Validation split:
 *   RC_VAL_BLOCKS (default): val_fraction of the training frames in val_blocks contiguous blocks,
 *     one centred in each of val_blocks equal parts of the recording. A window (its history input
 *     frames AND its label frame) belongs to a split only if all of those history+1 frames lie in
 *     that split; windows straddling a block edge are dropped. So no validation frame is in any
 *     training window's input or label, and vice versa.
 *   RC_VAL_RANDOM (the reference): a seeded permutation of all windows; the last val_fraction of
 *     it is validation (windows overlap in time: label leakage, kept only for comparison).
 *
 * Streaming and memory: training frames live in a buffer of at most mem_budget bytes (frames,
 * labels, indices, and what the consumer keeps per frame: rc_data_set_frame_extra). If the whole training split fits, it is loaded once and kept (one chunk: a
 * global shuffle per epoch, as the reference). Otherwise the window range is cut into chunks of
 * equal size that each fit the budget (consecutive chunks share history-1 frames so no window is
 * lost); an epoch visits the chunks in a seeded random order, reads each by hyperslab and shuffles
 * its window indices. Shuffles depend on (seed, epoch, chunk) only, so they are reproducible for
 * a given budget and per-frame extra. The last partial batch of each chunk is dropped in
 * training (as the reference drops the last partial batch of an epoch); validation keeps every
 * window (a batch may be short).
 * One iterator may be live per rc_data at a time.
 *
 * Errors: every function returns 0 (or a count) on success and -1 with one line in err naming
 * the file and dataset key. NaN/Inf anywhere in frames, rates or repeats is an error.
 */
#ifndef RC_DATA_H
#define RC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"   /* rc_val_split: RC_VAL_BLOCK (default) | RC_VAL_RANDOM (reference) */

#define RC_DATA_HISTORY 40
#define RC_DATA_STD_EPS 1e-7
#define RC_DATA_DEFAULT_BUDGET_MB 4096
#define RC_DATA_MAX_KEYS 16

typedef enum { RC_LAYOUT_AUTO = 0, RC_LAYOUT_BACCUS, RC_LAYOUT_OPENRETINA } rc_layout;
typedef rc_val_split rc_val_mode;
#define RC_VAL_BLOCKS RC_VAL_BLOCK

typedef struct {
    rc_layout layout;
    const char *rate_key;     /* NULL: "firing_rate_10ms" (Baccus); ignored for openretina */
    const int *cells;         /* subset: 0-based indices on the file's cell axis; NULL = all */
    int n_cells;
    int history;              /* 0: RC_DATA_HISTORY */
    int crop;                 /* side of a square crop; 0 = whole frame */
    int crop_row, crop_col;   /* crop centre (full-frame pixels; -1: frame centre); shifted to fit */
    int crop_cell;            /* >= 0: centre the crop on this selected cell's centre; -1: off */
    const int *centers;       /* optional (n selected cells, 2) row,col overriding /cells/centers */
    double val_fraction;      /* < 0: none; 0: default 0.1 */
    int val_blocks;           /* 0: default 4 (RC_VAL_BLOCKS) */
    rc_val_mode val_mode;
    uint64_t val_seed;        /* RC_VAL_RANDOM permutation seed */
    size_t mem_budget;        /* bytes; 0: $RETINAC_MEM_BUDGET (MB) or RC_DATA_DEFAULT_BUDGET_MB */
    const char *test_name;    /* openretina: test stimulus name; NULL: "test" */
    const char *stimuli_dir;  /* openretina: folder of <stim>.npy; NULL: <file's dir>/stimuli */
    int defer_value_checks;   /* 1: rc_data_open does not read the labels (so NaN/Inf in them do
                                 not fail it); the caller runs rc_data_check, which reports every
                                 problem (retinac info). Other reads still reject NaN/Inf. */
} rc_data_opts;

void rc_data_opts_default(rc_data_opts *o);

/* What an opened recording holds, after cell selection and crop. */
typedef struct {
    rc_layout layout;
    int64_t train_frames, test_frames; /* frames per split (test 0 when absent) */
    int full_h, full_w;                /* frame size on disk */
    int h, w;                          /* after crop */
    int crop_row0, crop_col0;          /* crop's top-left in the full frame (0,0 without crop) */
    int file_cells, n_cells;           /* cells on disk, selected */
    int history;
    int64_t n_train, n_val;            /* windows in each split */
    int n_chunks;                      /* training chunks per epoch (1 = resident) */
    int n_repeats;                     /* test repeats for the rate key (0: none) */
    const int *centers;                /* (n_cells,2) row,col relative to the crop; NULL if unknown */
    int has_truth;                     /* test/response/true_rate present (synthetic) */
    char rate_key[64];
    char stim_dtype[16];
    size_t mem_budget;                 /* bytes in effect */
} rc_data_info;

typedef struct rc_data rc_data;

int rc_data_open(const char *path, const rc_data_opts *opts, rc_data **out, char *err, size_t errlen);
void rc_data_close(rc_data *d);
const rc_data_info *rc_data_get_info(const rc_data *d);

/* Training statistics: computed (streaming, bounded memory) on first call unless set. */
int rc_data_stats(rc_data *d, double *mean, double *std, char *err, size_t errlen);
/* Use given statistics (std already includes the 1e-7), e.g. from a checkpoint. */
int rc_data_set_stats(rc_data *d, double mean, double std, char *err, size_t errlen);

/* Receptive-field centers (n_cells, 2) (row, col, in the cropped frame) estimated from the
 * spike-triggered average, for recordings without /cells/centers: over up to
 * RC_STA_MAX_WINDOWS training windows (a seeded random subset), sta_c[L] = sum (y_c - mean y_c)
 * x frame at lag L before the label, for L = 1 .. min(history, RC_STA_MAX_LAG); the center is
 * the argmax of sum_L sta_c[L]^2 after a 5x5 box filter (an ON-OFF or subunit-pooling cell has
 * its energy spread around its center; the filter finds the middle). Normalizes frames like
 * training (computes the statistics if unset). No live iterator may exist. Returns 0 or -1. */
#define RC_STA_MAX_WINDOWS 10000
#define RC_STA_MAX_LAG 30
int rc_data_sta_centers(rc_data *d, int *centers, char *err, size_t errlen);

typedef struct {
    const float *frames;     /* (n_frames, H, W) normalized; the base `starts` index into */
    int64_t n_frames;
    const int64_t *starts;   /* (B) */
    const float *y;          /* (B, cells) labels aligned as above */
    int B;
    uint64_t gen;            /* content generation of `frames`: equal gen = same buffer, same
                                content (a streamed chunk reuses its buffer with a new gen);
                                never 0 */
} rc_batch;

typedef struct rc_iter rc_iter;

/* Training epoch: seeded shuffle, batches of exactly B. rc_iter_batches tells how many. */
int rc_data_train_iter(rc_data *d, int B, uint64_t seed, int epoch, rc_iter **out, char *err,
                       size_t errlen);
/* Validation windows in time order, batches of at most B. */
int rc_data_val_iter(rc_data *d, int B, rc_iter **out, char *err, size_t errlen);
/* 1: *b holds a batch (valid until the next call or free); 0: done; -1: error. */
int rc_iter_next(rc_iter *it, rc_batch *b, char *err, size_t errlen);
int64_t rc_iter_batches(const rc_iter *it);
void rc_iter_free(rc_iter *it);

/* The whole test split, normalized with the training statistics. */
typedef struct {
    int64_t n_frames;   /* T_test */
    float *frames;      /* (T_test, H, W) */
    int64_t n;          /* samples: T_test - history */
    int64_t *starts;    /* (n) = 0..n-1 */
    int cells;
    float *rate;        /* (n, cells) trial-averaged rate, rate[i][c] = file[c][i + history] */
    int n_repeats;
    float *repeats;     /* (n_repeats, cells, n) single trials, same alignment; NULL if none */
    float *truth;       /* (n, cells) noise-free expected rate (synthetic files); NULL if none */
} rc_test_set;

/* 0, RC_ERR_NO_TEST (errbuf.h) when the recording has no test split, -1 on any other error. */
int rc_data_test(rc_data *d, rc_test_set *t, char *err, size_t errlen);
void rc_test_set_free(rc_test_set *t);

/* A standalone stimulus for `retinac predict`: dataset key (NULL: "stimulus", else e.g.
 * "test/stimulus") of shape (T,H,W) or (1,T,H,W). crop > 0 crops around (crop_row, crop_col)
 * as rc_data_open does. If std > 0 frames are (x - mean) / std, else raw values. *frames is
 * malloc'd (T,H',W'). */
int rc_stimulus_read(const char *path, const char *key, int crop, int crop_row, int crop_col,
                     double mean, double std, float **frames, int64_t *T, int *H, int *W,
                     char *err, size_t errlen);

/* Everything `retinac info` reports, read from metadata only (no frame scan). */
typedef struct {
    rc_layout layout;
    int has_test;
    int64_t frames[2];                     /* train, test */
    int h, w;
    char stim_dtype[16];
    int cells;
    int n_rate_keys;
    char rate_keys[RC_DATA_MAX_KEYS][64];  /* response keys usable as labels */
    int n_repeat_keys;
    char repeat_keys[RC_DATA_MAX_KEYS][64];/* e.g. "firing_rate_10ms", "cellNN" */
    int repeats;                           /* count (0 if none) */
    int has_centers, has_truth, has_time;
    int is_synthetic;                      /* written by retinac synth (root attr "generator") */
    int64_t synth_seed;
    char synth_stimulus[32];
    int n_stims;                           /* openretina: stimulus names (test first if any) */
    char stims[RC_DATA_MAX_KEYS][64];
} rc_data_probe;

int rc_data_probe_file(const char *path, const rc_data_opts *opts, rc_data_probe *p, char *err,
                       size_t errlen);

/* Budget in bytes from $RETINAC_MEM_BUDGET (MB) or the default; -1 on a malformed variable. */
int rc_data_budget_from_env(size_t *bytes, char *err, size_t errlen);

/* Count `bytes` more per training frame against mem_budget: what the consumer keeps for each
 * frame of a chunk it is handed (the C backend's FFT first conv keeps a spectrum per frame,
 * rc_backend.stream_bytes_per_frame), so a chunk and what is derived from it fit the budget
 * together. Re-plans the chunks (a recording that fitted may now be streamed; the window split
 * is unchanged; the shuffles then follow the new chunking). No iterator may be live. On error
 * (a window no longer fits the budget) the chunking is left as it was. */
int rc_data_set_frame_extra(rc_data *d, size_t bytes, char *err, size_t errlen);

/* ---- Data sanity (runtime/data/data_check.c) ----------------------------------------------------
 * What `retinac info` reports and what train, search and eval refuse before any work. Checked
 * on the selected cells (and the crop), every split the caller names:
 *   errors   NaN/Inf anywhere in a stimulus, response, test repeat or true rate (first one:
 *            dataset key, frame, cell or pixel); a negative response (firing rates and spike
 *            counts cannot be negative; a warning instead with RC_CHECK_SIGNED_OK, for loss =
 *            "mse" on e.g. calcium traces); a training response that is zero for every cell; a
 *            selected cell whose training response is all zero (a Poisson model can only drive
 *            its rate to 0, and its correlation is undefined: leave it out with --cells); a
 *            constant training stimulus (every pixel equal, or std <= 1e-6 |mean|: z-scoring
 *            divides by ~1e-7 and amplifies rounding noise);
 *   warnings a training stimulus std below 1e-4 (the normalization's 1e-7 epsilon shrinks it by
 *            more than 0.1%); a constant test stimulus; a cell whose test response is all zero
 *            (its test correlation is undefined).
 * Cost: the training frames are read once by the same pass that computes the z-scoring
 * statistics (rc_data_stats reuses it, and a resident recording keeps its frames from it, so a
 * trainer reads them once either way); the test split's frames and the labels are streamed in
 * pieces within the memory budget. Nothing is held beyond one piece. */
typedef enum { RC_ISSUE_WARNING = 1, RC_ISSUE_ERROR = 2 } rc_issue_level;

typedef struct {
    int level;                 /* rc_issue_level */
    char key[160];             /* dataset key (or .npy path) */
    int cell;                  /* file cell index, -1 if not about one cell */
    int64_t index;             /* first bad frame within the dataset, -1 if none */
    char msg[480];             /* one line: "FILE: KEY: what" */
} rc_data_issue;

#define RC_DATA_MAX_ISSUES 24
typedef struct {
    int n_errors, n_warnings;
    int n;                     /* issues held (errors first in file order, then warnings) */
    rc_data_issue issue[RC_DATA_MAX_ISSUES];
    int have_stim;             /* training stimulus moments below are valid (no NaN/Inf) */
    double stim_mean, stim_std, stim_min, stim_max;   /* raw: population std, no epsilon */
    double seconds;            /* wall time of the check */
} rc_data_report;

enum {
    RC_CHECK_TRAIN = 1,        /* training stimulus and responses */
    RC_CHECK_TEST = 2,         /* test stimulus, responses, repeats and true rate */
    RC_CHECK_LABELS = 4,       /* responses only: no frame pass (retinac info --quick) */
    RC_CHECK_SIGNED_OK = 8,    /* negative responses are a warning, not an error (loss mse) */
};

/* Run the checks `what` names. Returns 0 with the findings in *r (usable iff r->n_errors == 0),
 * or -1 if the recording could not be read (err). No live iterator may exist. */
int rc_data_check(rc_data *d, unsigned what, rc_data_report *r, char *err, size_t errlen);
/* The first error as one line (plus "and N more problems"), for a caller that refuses to go on:
 * returns -1 with it in err when r has errors, else 0. */
int rc_data_report_error(const rc_data_report *r, char *err, size_t errlen);

#endif
