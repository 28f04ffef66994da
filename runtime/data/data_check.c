/* data_check.c — the data-sanity check (rc_data_check; what it flags and why: data.h).
 *
 * Invariants: memory is bounded by one piece (at most 4096 frames within the budget, or 65536
 * label values), never the split; the training frames go through the one pass that also gives
 * the z-scoring statistics (rc__train_frame_pass: done at most once per open, so a trainer that
 * checks first reads its frames once); labels are read raw, row by row, so every dataset's first
 * bad value is named (key, cell, frame) instead of the first failure stopping the scan; nothing
 * prints: findings go to the caller's report, I/O failures to err.
 */
#include "errbuf.h"
#include "clock.h"
#include "data_int.h"
#include "h5util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRF rc_errf
#define PIECE 65536                 /* label values per read */
#define STD_REL_MIN 1e-6            /* std <= this * |mean|: a constant stimulus */
#define STD_ABS_WARN 1e-4           /* std below this: the 1e-7 epsilon shows (> 0.1%) */
#define MAX_LISTED 8                /* cells named in one message */

static void add(rc_data_report *r, int level, const char *key, int cell, int64_t index,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(rc_data_report *r, int level, const char *key, int cell, int64_t index,
                const char *fmt, ...)
{
    if (level == RC_ISSUE_ERROR) r->n_errors++;
    else r->n_warnings++;
    int slot = r->n;
    if (slot == RC_DATA_MAX_ISSUES) {
        /* full: an error replaces the last warning held; otherwise it is only counted */
        if (level != RC_ISSUE_ERROR) return;
        for (slot = r->n - 1; slot >= 0 && r->issue[slot].level == RC_ISSUE_ERROR; slot--) {}
        if (slot < 0) return;
    } else {
        r->n++;
    }
    rc_data_issue *s = &r->issue[slot];
    s->level = level;
    snprintf(s->key, sizeof s->key, "%s", key);
    s->cell = cell;
    s->index = index;
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
}

/* Name of a split's frames or labels for messages: the dataset key when there is one segment. */
static void split_key(const rc_data *d, int split, int labels, char *out, size_t n)
{
    const rc_split_src *sp = &d->sp[split];
    if (sp->n == 1) snprintf(out, n, "%.*s", (int)(n - 1), labels ? sp->seg[0].rate_name : sp->seg[0].name);
    else if (labels) snprintf(out, n, "%s", d->info.rate_key);
    else snprintf(out, n, "%s stimuli (%d segments)", split == RC_TRAIN ? "training" : "test", sp->n);
}

/* ---------------------------------------------------------------------------------------- */
/* Frames                                                                                     */

static void frame_issues(rc_data *d, int split, const rc_frame_scan *s, rc_data_report *r)
{
    const char *what = split == RC_TRAIN ? "training" : "test";
    char key[200];
    if (s->bad) {
        int64_t local = s->bad_frame;
        int si = rc__frame_seg(d, split, s->bad_frame, &local);
        const char *k = si >= 0 ? d->sp[split].seg[si].name : "?";
        const int w = d->info.w;
        add(r, RC_ISSUE_ERROR, k, -1, local, "%s: %s: non-finite value (NaN/Inf) at frame %lld, pixel (%lld,%lld)",
            d->path, k, (long long)local, (long long)(s->bad_pixel / w + d->info.crop_row0),
            (long long)(s->bad_pixel % w + d->info.crop_col0));
        return;
    }
    if (s->n <= 0) return;
    split_key(d, split, 0, key, sizeof key);
    const double sd = sqrt(s->m2 / s->n), am = fabs(s->mean);
    const int level = split == RC_TRAIN ? RC_ISSUE_ERROR : RC_ISSUE_WARNING;
    if (s->min == s->max)
        add(r, level, key, -1, -1, "%s: %s: the %s stimulus is constant (every pixel is %g)%s", d->path, key, what,
            s->min, split == RC_TRAIN ? ": z-scoring would divide by the 1e-7 epsilon and the model sees no input"
                                      : ": the test movie carries no information");
    else if (sd <= STD_REL_MIN * am)
        add(r, level, key, -1, -1, "%s: %s: the %s stimulus is effectively constant (std %.3g is at most %g of its "
            "mean %.6g; range [%.9g, %.9g])", d->path, key, what, sd, STD_REL_MIN, s->mean, s->min, s->max);
    else if (split == RC_TRAIN && sd < STD_ABS_WARN)
        add(r, RC_ISSUE_WARNING, key, -1, -1, "%s: %s: the training stimulus std %.3g is small against the 1e-7 "
            "normalization epsilon (the z-scored stimulus has std %.4f, not 1)", d->path, key, sd, sd / (sd + RC_DATA_STD_EPS));
}

/* ---------------------------------------------------------------------------------------- */
/* Labels                                                                                     */

typedef struct {
    int64_t bad, neg;        /* first non-finite / negative frame in the row, -1 if none */
    float neg_val;
    int64_t n_neg, nonzero;  /* negative values, finite non-zero values */
} row_stats;

/* One row of a label dataset: the dataset's last axis (frames [0,T)) at the leading indices
 * `lead` (rank-1 of them), read in pieces into buf (PIECE floats). */
static int scan_row(const rc_data *d, hid_t ds, const char *key, int rank, const int64_t *lead,
                    int64_t T, float *buf, row_stats *rs, char *err, size_t errlen)
{
    rs->bad = rs->neg = -1;
    rs->neg_val = 0;
    rs->n_neg = rs->nonzero = 0;
    for (int64_t t = 0; t < T; t += PIECE) {
        int64_t n = T - t < PIECE ? T - t : PIECE, st[RC_H5_MAX_RANK], ct[RC_H5_MAX_RANK];
        for (int i = 0; i < rank - 1; i++) { st[i] = lead[i]; ct[i] = 1; }
        st[rank - 1] = t;
        ct[rank - 1] = n;
        if (rc_h5_read_f32(ds, rank, st, ct, buf, d->path, key, err, errlen) < 0) return -1;
        for (int64_t i = 0; i < n; i++) {
            const float v = buf[i];
            if (!isfinite(v)) { if (rs->bad < 0) rs->bad = t + i; continue; }
            if (v < 0) {
                if (rs->neg < 0) { rs->neg = t + i; rs->neg_val = v; }
                rs->n_neg++;
            }
            rs->nonzero += v != 0;
        }
    }
    return 0;
}

/* Findings of one dataset, over its rows: the first non-finite and the first negative value. */
typedef struct {
    int64_t bad, neg;
    int bad_cell, neg_cell, bad_rep, neg_rep, neg_cells;
    float neg_val;
    int64_t n_neg;
} ds_stats;

static void ds_init(ds_stats *s)
{
    memset(s, 0, sizeof *s);
    s->bad = s->neg = -1;
}

static void ds_add(ds_stats *s, const row_stats *rs, int cell, int rep)
{
    if (rs->bad >= 0 && s->bad < 0) { s->bad = rs->bad; s->bad_cell = cell; s->bad_rep = rep; }
    if (rs->neg >= 0) {
        if (s->neg < 0) { s->neg = rs->neg; s->neg_cell = cell; s->neg_rep = rep; s->neg_val = rs->neg_val; }
        s->n_neg += rs->n_neg;
    }
}

static void ds_issues(const rc_data *d, const char *key, const ds_stats *s, int has_reps, unsigned what,
                      rc_data_report *r)
{
    char rep[48] = "";
    if (s->bad >= 0) {
        if (has_reps) snprintf(rep, sizeof rep, ", repeat %d", s->bad_rep);
        add(r, RC_ISSUE_ERROR, key, s->bad_cell, s->bad, "%s: %s: non-finite value (NaN/Inf) for cell %d%s at frame %lld",
            d->path, key, s->bad_cell, rep, (long long)s->bad);
    }
    if (s->neg >= 0) {
        if (has_reps) snprintf(rep, sizeof rep, ", repeat %d", s->neg_rep);
        const int signed_ok = (what & RC_CHECK_SIGNED_OK) != 0;
        add(r, signed_ok ? RC_ISSUE_WARNING : RC_ISSUE_ERROR, key, s->neg_cell, s->neg,
            "%s: %s: negative response %g for cell %d%s at frame %lld (%lld negative value%s in %d cell%s): %s",
            d->path, key, s->neg_val, s->neg_cell, rep, (long long)s->neg, (long long)s->n_neg, s->n_neg == 1 ? "" : "s",
            s->neg_cells, s->neg_cells == 1 ? "" : "s",
            signed_ok ? "accepted for loss = \"mse\"" : "firing rates and spike counts cannot be negative "
                        "(a Poisson loss cannot fit them; signed traces need loss = \"mse\")");
    }
}

/* "cell 3" / "cells 3, 7 and 12" (at most MAX_LISTED, then "and N more"). */
static void list_cells(const rc_data *d, const int *flag, char *out, size_t n)
{
    const int C = d->info.n_cells;
    int k = 0, total = 0;
    for (int c = 0; c < C; c++) total += flag[c];
    size_t len = (size_t)snprintf(out, n, "cell%s", total == 1 ? "" : "s");
    for (int c = 0; c < C && len < n; c++) {
        if (!flag[c]) continue;
        if (k == MAX_LISTED) { snprintf(out + len, n - len, " and %d more", total - k); return; }
        const char *sep = k == 0 ? " " : (k == total - 1 ? " and " : ", ");
        len += (size_t)snprintf(out + len, n - len, "%s%d", sep, d->sel[c]);
        k++;
    }
}

/* The responses of a split (every segment's rate dataset), per selected cell. */
static int check_responses(rc_data *d, int split, unsigned what, float *buf, rc_data_report *r,
                           char *err, size_t errlen)
{
    const int C = d->info.n_cells;
    const rc_split_src *sp = &d->sp[split];
    int64_t *nonzero = calloc((size_t)C, sizeof *nonzero);
    int *flag = calloc((size_t)C, sizeof *flag);
    if (!nonzero || !flag) {
        free(nonzero);
        free(flag);
        return ERRF(err, errlen, "%s: out of memory", d->path);
    }
    int rc = 0;
    for (int i = 0; i < sp->n && rc == 0; i++) {
        const rc_seg *s = &sp->seg[i];
        ds_stats ds;
        ds_init(&ds);
        for (int c = 0; c < C && rc == 0; c++) {
            row_stats rs;
            int64_t lead[1] = {d->sel[c]};
            rc = scan_row(d, s->rate, s->rate_name, 2, lead, s->T, buf, &rs, err, errlen);
            ds_add(&ds, &rs, d->sel[c], 0);
            ds.neg_cells += rs.n_neg > 0;
            nonzero[c] += rs.nonzero;
        }
        if (rc == 0) ds_issues(d, s->rate_name, &ds, 0, what, r);
    }
    if (rc == 0) {
        char key[200], cells[160];
        split_key(d, split, 1, key, sizeof key);
        int n_zero = 0, first = -1;
        for (int c = 0; c < C; c++) {
            flag[c] = nonzero[c] == 0;
            n_zero += flag[c];
            if (flag[c] && first < 0) first = d->sel[c];
        }
        list_cells(d, flag, cells, sizeof cells);
        if (split == RC_TRAIN && n_zero == C)
            add(r, RC_ISSUE_ERROR, key, -1, -1, "%s: %s: the training response is all zero (every selected cell): "
                "there is nothing to fit", d->path, key);
        else if (split == RC_TRAIN && n_zero)
            add(r, RC_ISSUE_ERROR, key, first, -1, "%s: %s: the training response of %s is all zero: a Poisson model "
                "can only drive its rate to 0 and its correlation is undefined (leave it out with --cells)",
                d->path, key, cells);
        else if (n_zero)
            add(r, RC_ISSUE_WARNING, key, first, -1, "%s: %s: the test response of %s is all zero: the test "
                "correlation of %s is undefined", d->path, key, cells, n_zero == 1 ? "that cell" : "those cells");
    }
    free(nonzero);
    free(flag);
    return rc;
}

/* One optional test dataset by key: rank 2 (rows, T) read at each selected cell's row, or rank 3
 * (R, cells, T) at [r, cell]; cellNN repeats (R, T) per cell are rank 2 read at each repeat. */
static int check_test_rows(rc_data *d, const char *key, int rank, int R, int cellnn_cell, unsigned what,
                           float *buf, rc_data_report *r, char *err, size_t errlen)
{
    const int C = d->info.n_cells;
    const int64_t T = d->sp[RC_TEST].T;
    hid_t ds = H5Dopen2(d->file, key, H5P_DEFAULT);
    if (ds < 0) return ERRF(err, errlen, "%s: %s: cannot open", d->path, key);
    ds_stats st;
    ds_init(&st);
    int rc = 0;
    for (int c = 0; c < C && rc == 0; c++) {
        if (cellnn_cell >= 0 && c != cellnn_cell) continue;
        int had_neg = 0;
        for (int rep = 0; rep < R && rc == 0; rep++) {
            row_stats rs;
            int64_t lead[2];
            if (cellnn_cell >= 0) lead[0] = rep;
            else if (rank == 3) { lead[0] = rep; lead[1] = d->sel[c]; }
            else lead[0] = d->sel[c];
            rc = scan_row(d, ds, key, rank, lead, T, buf, &rs, err, errlen);
            ds_add(&st, &rs, d->sel[c], rep);
            had_neg |= rs.n_neg > 0;
        }
        st.neg_cells += had_neg;
    }
    H5Dclose(ds);
    if (rc == 0) ds_issues(d, key, &st, R > 1 || rank == 3 || cellnn_cell >= 0, what, r);
    return rc;
}

static int check_test_extras(rc_data *d, unsigned what, float *buf, rc_data_report *r, char *err,
                             size_t errlen)
{
    const int R = d->info.n_repeats;
    if (d->rep_kind == 1 && check_test_rows(d, d->rep_key, 3, R, -1, what, buf, r, err, errlen) < 0) return -1;
    if (d->rep_kind == 2)
        for (int c = 0; c < d->info.n_cells; c++) {
            char k[200];
            snprintf(k, sizeof k, "/test/repeats/%s", d->rep_cell_keys[d->sel[c]]);
            if (check_test_rows(d, k, 2, R, c, what, buf, r, err, errlen) < 0) return -1;
        }
    if (d->truth_key[0] && check_test_rows(d, d->truth_key, 2, 1, -1, what, buf, r, err, errlen) < 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

/* Errors first, each kind in the order found. */
static void order_issues(rc_data_report *r)
{
    rc_data_issue *tmp = malloc((size_t)r->n * sizeof *tmp);
    if (!tmp) return;
    int k = 0;
    for (int lv = RC_ISSUE_ERROR; lv >= RC_ISSUE_WARNING; lv--)
        for (int i = 0; i < r->n; i++)
            if (r->issue[i].level == lv) tmp[k++] = r->issue[i];
    memcpy(r->issue, tmp, (size_t)k * sizeof *tmp);
    free(tmp);
}

int rc_data_check(rc_data *d, unsigned what, rc_data_report *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (d->iter_live) return ERRF(err, errlen, "%s: cannot check the data while an iterator is live", d->path);
    const double t0 = rc_clock_s();
    const int frames = !(what & RC_CHECK_LABELS), test = (what & RC_CHECK_TEST) && d->sp[RC_TEST].n > 0;
    float *buf = malloc(PIECE * sizeof *buf);
    if (!buf) return ERRF(err, errlen, "%s: out of memory", d->path);
    int rc = 0;
    if ((what & RC_CHECK_TRAIN) && frames) {
        rc = rc__train_frame_pass(d, err, errlen);
        if (rc == 0) {
            frame_issues(d, RC_TRAIN, &d->scan, r);
            if (!d->scan.bad && d->scan.n > 0) {
                r->have_stim = 1;
                r->stim_mean = d->scan.mean;
                r->stim_std = sqrt(d->scan.m2 / d->scan.n);
                r->stim_min = d->scan.min;
                r->stim_max = d->scan.max;
            }
        }
    }
    if (rc == 0 && (what & RC_CHECK_TRAIN)) rc = check_responses(d, RC_TRAIN, what, buf, r, err, errlen);
    if (rc == 0 && test && frames) {
        rc_frame_scan s;
        rc = rc__frame_pass(d, RC_TEST, &s, err, errlen);
        if (rc == 0) frame_issues(d, RC_TEST, &s, r);
    }
    if (rc == 0 && test) rc = check_responses(d, RC_TEST, what, buf, r, err, errlen);
    if (rc == 0 && test) rc = check_test_extras(d, what, buf, r, err, errlen);
    free(buf);
    order_issues(r);
    r->seconds = rc_clock_s() - t0;
    return rc;
}

int rc_data_report_error(const rc_data_report *r, char *err, size_t errlen)
{
    if (r->n_errors == 0) return 0;
    for (int i = 0; i < r->n; i++) {
        if (r->issue[i].level != RC_ISSUE_ERROR) continue;
        if (r->n_errors > 1)
            return ERRF(err, errlen, "%s (and %d more error%s; retinac info lists them)", r->issue[i].msg,
                        r->n_errors - 1, r->n_errors == 2 ? "" : "s");
        return ERRF(err, errlen, "%s", r->issue[i].msg);
    }
    return ERRF(err, errlen, "the recording has %d errors", r->n_errors);
}
