/* data_fp.c — recording fingerprints and the check of a recording against a checkpoint
 * (definitions in data_fp.h; rc_ckpt_check_recording is declared in train.h).
 *
 * Whole frames are read through the data layer's own reader (so both layouts, every dtype and
 * the NaN checks apply) by viewing the recording without its crop for the duration of one read:
 * d->info is saved and restored around it, and no iterator may be live.
 */
#include "data_fp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "data_int.h"
#include "errbuf.h"
#include "sha256.h"
#include "train.h"

#define FP_PIECE (1 << 16)      /* frames of responses per read */

static void hash_line(rc_sha256 *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hash_line(rc_sha256 *s, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    rc_sha256_update(s, buf, (size_t)n);
}

/* float32 values as little-endian bytes, whatever the host order */
static void hash_floats(rc_sha256 *s, const float *x, int64_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    rc_sha256_update(s, x, (size_t)n * sizeof *x);
#else
    unsigned char b[1024];
    int64_t k = 0;
    while (k < n) {
        int m = 0;
        for (; m < 256 && k < n; m++, k++) {
            uint32_t u;
            memcpy(&u, &x[k], 4);
            for (int j = 0; j < 4; j++) b[4 * m + j] = (unsigned char)(u >> (8 * j));
        }
        rc_sha256_update(s, b, (size_t)m * 4);
    }
#endif
}

/* Labels of the selected cells over a whole split, streamed. */
static int hash_labels(rc_data *d, int split, rc_sha256 *s, char *err, size_t errlen)
{
    const int C = d->info.n_cells;
    const int64_t T = d->sp[split].T;
    float *buf = malloc((size_t)FP_PIECE * (size_t)C * sizeof *buf);
    if (!buf) return rc_errf(err, errlen, "%s: out of memory for the recording fingerprint", d->path);
    int rc = 0;
    for (int64_t t = 0; t < T && rc == 0; t += FP_PIECE) {
        int64_t e = t + FP_PIECE < T ? t + FP_PIECE : T;
        rc = rc__read_labels(d, split, t, e, buf, err, errlen);
        if (rc == 0) hash_floats(s, buf, (e - t) * C);
    }
    free(buf);
    return rc;
}

/* K whole frames of a split at evenly spaced indices (all of them when T <= K). */
static int hash_frames(rc_data *d, int split, int K, rc_sha256 *s, char *err, size_t errlen)
{
    const int64_t T = d->sp[split].T, hw = (int64_t)d->info.full_h * d->info.full_w;
    float *buf = malloc((size_t)hw * sizeof *buf);
    if (!buf) return rc_errf(err, errlen, "%s: out of memory for the recording fingerprint", d->path);
    const int64_t n = T < K ? T : K;
    const rc_data_info save = d->info;
    d->info.h = d->info.full_h;
    d->info.w = d->info.full_w;
    d->info.crop_row0 = d->info.crop_col0 = 0;
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        int64_t t = n < 2 ? 0 : i * (T - 1) / (n - 1);
        rc = rc__read_frames(d, split, t, t + 1, buf, err, errlen);
        if (rc == 0) hash_floats(s, buf, hw);
    }
    d->info = save;
    free(buf);
    return rc;
}

int rc_data_fp_compute(struct rc_data *d, rc_data_fp *fp, char *err, size_t errlen)
{
    memset(fp, 0, sizeof *fp);
    if (d->iter_live)
        return rc_errf(err, errlen, "%s: recording fingerprint with an epoch iterator live", d->path);
    const rc_data_info *in = &d->info;
    rc_sha256 s;
    rc_sha256_init(&s);
    hash_line(&s, "retinac-recording-fingerprint %d\n", RC_FP_VERSION);
    hash_line(&s, "layout %s\n", in->layout == RC_LAYOUT_OPENRETINA ? "openretina" : "baccus");
    hash_line(&s, "file_cells %d\nframe %dx%d\n", in->file_cells, in->full_h, in->full_w);
    hash_line(&s, "train_frames %" PRId64 "\ntest_frames %" PRId64 "\n", in->train_frames,
              in->test_frames);
    hash_line(&s, "rate_key %s\ncells", in->rate_key);
    for (int c = 0; c < in->n_cells; c++) hash_line(&s, " %d", d->sel[c]);
    hash_line(&s, "\n");
    if (hash_labels(d, RC_TRAIN, &s, err, errlen) < 0) return -1;
    if (d->sp[RC_TEST].n && hash_labels(d, RC_TEST, &s, err, errlen) < 0) return -1;
    if (hash_frames(d, RC_TRAIN, RC_FP_TRAIN_SAMPLES, &s, err, errlen) < 0) return -1;
    if (d->sp[RC_TEST].n && hash_frames(d, RC_TEST, RC_FP_TEST_SAMPLES, &s, err, errlen) < 0)
        return -1;
    uint8_t dig[32];
    rc_sha256_final(&s, dig);
    rc_sha256_to_hex(dig, fp->sha256);
    fp->version = RC_FP_VERSION;
    fp->file_cells = in->file_cells;
    fp->frame_h = in->full_h;
    fp->frame_w = in->full_w;
    fp->train_frames = in->train_frames;
    fp->test_frames = in->test_frames;
    return 0;
}

static void add(char *out, size_t n, int *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(char *out, size_t n, int *k, const char *fmt, ...)
{
    size_t L = strlen(out);
    if (*k && L + 2 < n) { memcpy(out + L, "; ", 3); L += 2; }
    va_list ap;
    va_start(ap, fmt);
    if (L < n) vsnprintf(out + L, n - L, fmt, ap);
    va_end(ap);
    (*k)++;
}

int rc_data_fp_diff(const rc_data_fp *a, const rc_data_fp *b, char *out, size_t n)
{
    int k = 0;
    if (n) out[0] = 0;
    if (a->version != b->version) {
        add(out, n, &k, "fingerprint version %d vs %d (not comparable)", a->version, b->version);
        return k;
    }
    if (a->file_cells != b->file_cells)
        add(out, n, &k, "cells on disk %d vs %d", a->file_cells, b->file_cells);
    if (a->frame_h != b->frame_h || a->frame_w != b->frame_w)
        add(out, n, &k, "frames %dx%d vs %dx%d", a->frame_h, a->frame_w, b->frame_h, b->frame_w);
    if (a->train_frames != b->train_frames)
        add(out, n, &k, "training frames %" PRId64 " vs %" PRId64, a->train_frames, b->train_frames);
    if (a->test_frames != b->test_frames)
        add(out, n, &k, "test frames %" PRId64 " vs %" PRId64, a->test_frames, b->test_frames);
    if (strcmp(a->sha256, b->sha256))
        add(out, n, &k, "content (the model's cells' responses or the stimulus): sha256 %.12s vs %.12s",
            a->sha256, b->sha256);
    return k;
}

void rc_data_fp_describe(const rc_data_fp *fp, char *out, size_t n)
{
    if (!fp->version) { snprintf(out, n, "no fingerprint"); return; }
    snprintf(out, n, "%d cells on disk, %dx%d frames, %" PRId64 " training + %" PRId64
             " test frames, sha256 %.12s", fp->file_cells, fp->frame_h, fp->frame_w,
             fp->train_frames, fp->test_frames, fp->sha256);
}

int rc_ckpt_check_recording(const rc_checkpoint *ck, struct rc_data *d, const char *data_path,
                            rc_rec_check *chk, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    const rc_data_info *in = rc_data_get_info(d);
    const char *cp = ck->path[0] ? ck->path : "the checkpoint";
    const char *trained = ck->data_path[0] ? ck->data_path : "an unrecorded path";
    if (chk) {
        chk->warning[0] = 0;
        memset(&chk->got, 0, sizeof chk->got);
    }
    if (in->full_h != ir->height || in->full_w != ir->width) {
        char crop[64] = "";
        if (ir->crop > 0)
            snprintf(crop, sizeof crop, ", cropped to %dx%d at (%d,%d)", ir->crop, ir->crop,
                     ck->crop_row0, ck->crop_col0);
        return rc_errf(err, errlen, "%s: frames are %dx%d, but the model of %s ('%s') takes %dx%d "
                       "frames%s (trained on %s)", data_path, in->full_h, in->full_w, cp, ir->name,
                       ir->height, ir->width, crop, trained);
    }
    if (ir->crop > 0 && (in->crop_row0 != ck->crop_row0 || in->crop_col0 != ck->crop_col0))
        return rc_errf(err, errlen, "%s: crop window at (%d,%d), but %s was trained on the window at "
                       "(%d,%d)", data_path, in->crop_row0, in->crop_col0, cp, ck->crop_row0,
                       ck->crop_col0);
    if (in->n_cells != ck->cells)
        return rc_errf(err, errlen, "%s: %d cells selected, %s models %d", data_path, in->n_cells,
                       cp, ck->cells);
    if (!ck->fp.version && !*ck->data_path) {   /* retinac import: trained by PyTorch */
        if (chk)
            (void)rc_errf(chk->warning, sizeof chk->warning, "%s was imported from PyTorch and names no "
                          "recording: cannot check that %s is the one it was trained on (its cells, "
                          "order and frame size must match)", cp, data_path);
        return 0;
    }
    if (!ck->fp.version) {
        if (chk)
            (void)rc_errf(chk->warning, sizeof chk->warning, "%s records no recording fingerprint "
                          "(written before retinac recorded them): cannot check that %s is %s "
                          "recording it was trained on%s%s%s", cp, data_path,
                          strcmp(data_path, trained) ? "the" : "still the",
                          strcmp(data_path, trained) ? " (" : "",
                          strcmp(data_path, trained) ? trained : "",
                          strcmp(data_path, trained) ? ")" : "");
        return 0;
    }
    rc_data_fp got;
    if (chk && chk->known) got = *chk->known;
    else if (rc_data_fp_compute(d, &got, err, errlen) < 0) return -1;
    if (chk) chk->got = got;
    char what[600];
    if (rc_data_fp_diff(&ck->fp, &got, what, sizeof what) == 0) return 0;
    if (chk && chk->allow_other) {
        (void)rc_errf(chk->warning, sizeof chk->warning, "%s is not the recording %s was trained "
                      "on (%s): %s; using it anyway (--allow-other-recording)", data_path, cp,
                      trained, what);
        return 0;
    }
    return rc_errf(err, errlen, "%s is not the recording %s was trained on (%s): %s; pass "
                   "--allow-other-recording to use it anyway", data_path, cp,
                   trained, what);
}
