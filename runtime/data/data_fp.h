/* data_fp.h — recording fingerprints: which recording, and which of its cells, a model was
 * trained on, so that a model is never silently applied to a different one.
 *
 * A fingerprint is content-based: it survives copying or renaming the file (and re-storing the
 * stimulus in another dtype with the same values) but changes when the data differs. Version 1:
 *   file_cells, frame_h x frame_w (on disk, before any crop), train_frames, test_frames, and
 *   sha256 over
 *     a header "retinac-recording-fingerprint 1\n" + layout, the numbers above, the rate key
 *     and the selected cell indices (in selection order), one "key value\n" line each;
 *     the training responses of the selected cells, every frame ((T_train, cells) float32 LE,
 *     in selection order, streamed 64Ki frames at a time);
 *     the test responses (the trial average, (T_test, cells) float32 LE) when there is a test
 *     split;
 *     RC_FP_TRAIN_SAMPLES training and RC_FP_TEST_SAMPLES test stimulus frames, whole frames
 *     as float32 LE, at the evenly spaced indices floor(i (T-1) / (K-1)) (every frame when
 *     T <= K).
 *   Cost: reading the selected cells' responses once more (the data layer already scans them
 *   at open) plus at most 80 frames; nothing proportional to the stimulus size.
 *
 * rc_ckpt_check_recording (train.h) compares a recording opened for a checkpoint (its cells,
 * rate key and crop) against the checkpoint: the frame size must be the model's (hard error: a crop
 * taken from a frame of another size is meaningless), the crop window must be the one the
 * model was trained with, and the fingerprint must match; a fingerprint difference is an error
 * unless allow_other is set, then a warning. A checkpoint without a fingerprint (written before
 * they existed) passes with a warning.
 * Errors: 0 / -1 with one line in err naming the files; nothing prints.
 */
#ifndef RC_DATA_FP_H
#define RC_DATA_FP_H

#include <stddef.h>
#include <stdint.h>

#define RC_FP_VERSION 1
#define RC_FP_TRAIN_SAMPLES 64
#define RC_FP_TEST_SAMPLES 16

typedef struct {
    int version;                 /* RC_FP_VERSION; 0 = none (a checkpoint from before them) */
    int file_cells;              /* cells on disk */
    int frame_h, frame_w;        /* frame size on disk (before any crop) */
    int64_t train_frames, test_frames;
    char sha256[65];             /* lowercase hex */
} rc_data_fp;

struct rc_data;

/* Fingerprint of an opened recording with its current cell selection and rate key. No
 * iterator may be live. */
int rc_data_fp_compute(struct rc_data *d, rc_data_fp *fp, char *err, size_t errlen);

/* What differs between two fingerprints, in words ("content (sha256 1a2b3c4d5e6f vs ...)",
 * "cells on disk 8 vs 10", ...; "; "-separated) into out. Returns the number of differences
 * (0: the same recording). */
int rc_data_fp_diff(const rc_data_fp *trained, const rc_data_fp *now, char *out, size_t n);

/* One-line description: "8 cells, 50x50 frames, 28000+2800 frames, sha256 1a2b3c4d5e6f". */
void rc_data_fp_describe(const rc_data_fp *fp, char *out, size_t n);

/* Options and results of rc_ckpt_check_recording (train.h). */
typedef struct {
    int allow_other;             /* --allow-other-recording: a fingerprint difference warns */
    const rc_data_fp *known;     /* the recording's fingerprint when already computed, else NULL */
    rc_data_fp got;              /* out: the recording's fingerprint (version 0 if not computed) */
    char warning[1024];          /* out: a warning line, "" if none */
} rc_rec_check;

#endif
