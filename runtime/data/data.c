/* data.c — opened recordings: cell selection, crop, training statistics, the train/validation
 * window plan, bounded-memory epoch iterators and the test set (contract in data.h).
 *
 * Invariants:
 *  - window i of the training stream reads frames [i, i+history) and is labelled by stream frame
 *    i+history; wsplit[i] says whether it is a training window, a validation window or neither.
 *  - chunk c covers windows [c*chunk_win, min((c+1)*chunk_win, N)); loading it needs at most
 *    chunk_win+history-1 frames and chunk_win labels, which fit mem_budget by construction.
 *  - shuffles use splitmix64 streams keyed by (seed, epoch, chunk): no global RNG state.
 *  - the statistics pass accumulates per frame (Chan's pairwise update in double), so mean/std
 *    do not depend on the memory budget or chunking.
 *  - the training frames are read by one pass per open (rc__train_frame_pass): the statistics
 *    and the data-sanity check (data_check.c) share it, and a resident recording keeps the
 *    frames it read, so checking before training costs no second read.
 */
#include "data_int.h"
#include "h5util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRF rc_errf

void rc_data_opts_default(rc_data_opts *o)
{
    memset(o, 0, sizeof *o);
    o->crop_cell = -1;
    o->crop_row = o->crop_col = -1;
}

int rc_data_budget_from_env(size_t *bytes, char *err, size_t errlen)
{
    const char *e = getenv("RETINAC_MEM_BUDGET");
    double mb = RC_DATA_DEFAULT_BUDGET_MB;
    if (e && *e) {
        char *end;
        mb = strtod(e, &end);
        if (*end || !(mb > 0) || mb > 1e9)
            return ERRF(err, errlen, "RETINAC_MEM_BUDGET='%s': expected a positive number of MB", e);
    }
    *bytes = (size_t)(mb * 1048576.0);
    return 0;
}

const rc_data_info *rc_data_get_info(const rc_data *d) { return &d->info; }

/* ---------------------------------------------------------------------------------------- */
/* PRNG: splitmix64 (Steele et al.), one stream per (seed, purpose, epoch, chunk).            */

static uint64_t sm_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t sm_stream(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = seed;
    uint64_t k = sm_next(&s) ^ (a * 0xD1B54A32D192ED03ull);
    s = k;
    k = sm_next(&s) ^ (b * 0xABC98388FB8FAC03ull);
    s = k;
    k = sm_next(&s) ^ (c * 0x8CB92BA72F3D8DD7ull);
    return k;
}

/* Uniform in [0, n): multiply-high; bias < n / 2^64, negligible for any n here. */
static uint64_t sm_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)sm_next(s) * n) >> 64);
}

static void shuffle_i64(int64_t *v, int64_t n, uint64_t st)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)sm_below(&st, (uint64_t)i + 1);
        int64_t t = v[i]; v[i] = v[j]; v[j] = t;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Open                                                                                       */

static int scan_labels(rc_data *d, int split, char *err, size_t errlen)
{
    const int64_t piece = 1 << 16;
    float *buf = malloc((size_t)piece * d->info.n_cells * sizeof *buf);
    if (!buf) return ERRF(err, errlen, "out of memory");
    int rc = 0;
    for (int64_t t = 0; t < d->sp[split].T && rc == 0; t += piece) {
        int64_t e = t + piece < d->sp[split].T ? t + piece : d->sp[split].T;
        rc = rc__read_labels(d, split, t, e, buf, err, errlen);
    }
    free(buf);
    return rc;
}

/* Chunking for the budget: a chunk's frames, labels, window indices and what the consumer keeps
 * per frame (frame_extra: the C backend's frame spectra) fit mem_budget. Replaces any earlier
 * chunking (rc_data_set_frame_extra). */
static int plan_chunks(rc_data *d, char *err, size_t errlen)
{
    const int h = d->info.history;
    const int64_t T = d->sp[RC_TRAIN].T;
    /* memory: normalized frames + labels (+ a label read buffer) + one window index per frame */
    const int64_t hw = (int64_t)d->info.h * d->info.w;
    d->bytes_per_frame = (size_t)(hw * 4 + (int64_t)d->info.n_cells * 4 + 4 + 8) + d->frame_extra;
    d->chunk_frames_max = (int64_t)(d->info.mem_budget / d->bytes_per_frame);
    if (d->chunk_frames_max < 2 * (int64_t)h + 1)
        return ERRF(err, errlen, "memory budget %.1f MB holds only %lld frames of %dx%d%s; need at least %d",
                    d->info.mem_budget / 1048576.0, (long long)d->chunk_frames_max, d->info.h, d->info.w,
                    d->frame_extra ? " with the backend's per-frame data" : "", 2 * h + 1);
    d->resident = T <= d->chunk_frames_max;
    int64_t nch = 1;
    if (!d->resident) {
        int64_t wmax = d->chunk_frames_max - h + 1;
        nch = (d->N + wmax - 1) / wmax;
    }
    if (nch > (1 << 30)) return ERRF(err, errlen, "too many chunks");
    d->info.n_chunks = (int)nch;
    d->chunk_win = (d->N + nch - 1) / nch;
    for (int k = 0; k < 2; k++) {
        free(d->chunk_cnt[k]);
        d->chunk_cnt[k] = calloc((size_t)nch, sizeof *d->chunk_cnt[k]);
        if (!d->chunk_cnt[k]) return ERRF(err, errlen, "out of memory");
    }
    d->info.n_train = d->info.n_val = 0;
    for (int64_t i = 0; i < d->N; i++) {
        if (d->wsplit[i] == RC_WIN_TRAIN) { d->chunk_cnt[0][i / d->chunk_win]++; d->info.n_train++; }
        else if (d->wsplit[i] == RC_WIN_VAL) { d->chunk_cnt[1][i / d->chunk_win]++; d->info.n_val++; }
    }
    return 0;
}

int rc_data_set_frame_extra(rc_data *d, size_t bytes, char *err, size_t errlen)
{
    if (d->iter_live) return ERRF(err, errlen, "%s: an iterator is live: the chunking cannot change now", d->path);
    if (bytes == d->frame_extra) return 0;
    size_t was = d->frame_extra;
    d->frame_extra = bytes;
    if (plan_chunks(d, err, errlen) < 0) {   /* keep the plan that was: it fitted */
        char e2[64];
        d->frame_extra = was;
        plan_chunks(d, e2, sizeof e2);
        return -1;
    }
    if (!d->resident && d->res_frames) {   /* kept from the frame pass; now read chunk by chunk */
        free(d->res_frames);
        free(d->res_labels);
        d->res_frames = d->res_labels = NULL;
    }
    return 0;
}

/* Window plan: which windows are training / validation, chunking for the budget. */
static int plan(rc_data *d, const rc_data_opts *o, char *err, size_t errlen)
{
    const int h = d->info.history;
    const int64_t T = d->sp[RC_TRAIN].T;
    d->N = T - h;
    d->wsplit = calloc((size_t)d->N, 1);
    if (!d->wsplit) return ERRF(err, errlen, "out of memory for %lld windows", (long long)d->N);
    /* valid windows: inside one segment (label frame included) */
    for (int s = 0; s < d->sp[RC_TRAIN].n; s++) {
        const rc_seg *g = &d->sp[RC_TRAIN].seg[s];
        for (int64_t i = g->t0; i + h < g->t0 + g->T; i++) d->wsplit[i] = RC_WIN_TRAIN;
    }
    double frac = o->val_fraction == 0 ? 0.1 : o->val_fraction;
    if (frac >= 1) return ERRF(err, errlen, "%s: validation fraction %g must be below 1", d->path, frac);
    if (frac > 0 && o->val_mode == RC_VAL_BLOCKS) {
        int nb = o->val_blocks > 0 ? o->val_blocks : 4;
        int64_t vlen = (int64_t)llround(frac * (double)T / nb);
        if (vlen < 1) vlen = 1;
        if ((int64_t)nb * vlen >= T) return ERRF(err, errlen, "%s: %d validation blocks of %lld frames do not fit %lld frames", d->path, nb, (long long)vlen, (long long)T);
        /* block k is centred in part k of nb equal parts of the stream */
        int64_t *b0 = malloc((size_t)nb * sizeof *b0);
        if (!b0) return ERRF(err, errlen, "out of memory");
        for (int k = 0; k < nb; k++) {
            int64_t p0 = T * k / nb, p1 = T * (k + 1) / nb;
            b0[k] = p0 + (p1 - p0 - vlen) / 2;
        }
        /* a window spans frames [i, i+h]: all in a block -> val; none in any block -> train */
        for (int64_t i = 0; i < d->N; i++) {
            if (d->wsplit[i] == RC_WIN_NONE) continue;
            int64_t a = i, b = i + h;   /* inclusive */
            int any = 0, all = 0;
            for (int k = 0; k < nb; k++) {
                int64_t lo = b0[k], hi = b0[k] + vlen - 1;
                if (b < lo || a > hi) continue;
                any = 1;
                if (a >= lo && b <= hi) all = 1;
            }
            d->wsplit[i] = all ? RC_WIN_VAL : any ? RC_WIN_NONE : RC_WIN_TRAIN;
        }
        free(b0);
    } else if (frac > 0) {
        /* the reference: permutation of all windows, the last frac of it is validation */
        int64_t nv = 0;
        for (int64_t i = 0; i < d->N; i++) nv += d->wsplit[i] != RC_WIN_NONE;
        int64_t *idx = malloc((size_t)(nv ? nv : 1) * sizeof *idx);
        if (!idx) return ERRF(err, errlen, "out of memory");
        int64_t m = 0;
        for (int64_t i = 0; i < d->N; i++) if (d->wsplit[i] != RC_WIN_NONE) idx[m++] = i;
        shuffle_i64(idx, nv, sm_stream(o->val_seed, 0x5641u, 0, 0));
        int64_t nval = (int64_t)llround(frac * (double)nv);
        for (int64_t j = nv - nval; j < nv; j++) d->wsplit[idx[j]] = RC_WIN_VAL;
        free(idx);
    }
    return plan_chunks(d, err, errlen);
}

int rc_data_open(const char *path, const rc_data_opts *opts, rc_data **out, char *err, size_t errlen)
{
    *out = NULL;
    rc_data_opts def;
    if (!opts) { rc_data_opts_default(&def); opts = &def; }
    rc_data *d = calloc(1, sizeof *d);
    if (!d) return ERRF(err, errlen, "out of memory");
    d->file = -1;
    d->path = strdup(path);
    if (!d->path) { free(d); return ERRF(err, errlen, "out of memory"); }
    rc_data_probe p;
    if ((d->file = rc__open_file(path, err, errlen)) < 0) goto fail;
    if (rc__probe(path, d->file, opts, &p, err, errlen) < 0) goto fail;
    rc_data_info *in = &d->info;
    in->layout = p.layout;
    in->full_h = in->h = p.h;
    in->full_w = in->w = p.w;
    in->file_cells = p.cells;
    in->history = opts->history > 0 ? opts->history : RC_DATA_HISTORY;
    in->has_truth = p.has_truth;
    snprintf(in->stim_dtype, sizeof in->stim_dtype, "%s", p.stim_dtype);
    if (opts->mem_budget) in->mem_budget = opts->mem_budget;
    else if (rc_data_budget_from_env(&in->mem_budget, err, errlen) < 0) goto fail;

    /* cells */
    in->n_cells = opts->cells ? opts->n_cells : p.cells;
    if (in->n_cells <= 0) { ERRF(err, errlen, "%s: empty cell selection", path); goto fail; }
    d->sel = malloc((size_t)in->n_cells * sizeof *d->sel);
    if (!d->sel) { ERRF(err, errlen, "out of memory"); goto fail; }
    for (int c = 0; c < in->n_cells; c++) {
        int k = opts->cells ? opts->cells[c] : c;
        if (k < 0 || k >= p.cells) { ERRF(err, errlen, "%s: cell %d out of range (the file has cells 0..%d)", path, k, p.cells - 1); goto fail; }
        for (int j = 0; j < c; j++)
            if (d->sel[j] == k) { ERRF(err, errlen, "%s: cell %d selected twice", path, k); goto fail; }
        d->sel[c] = k;
    }
    /* centers (full-frame coordinates first) */
    if (opts->centers || p.has_centers) {
        d->centers = malloc((size_t)in->n_cells * 2 * sizeof *d->centers);
        if (!d->centers) { ERRF(err, errlen, "out of memory"); goto fail; }
        if (opts->centers) {
            memcpy(d->centers, opts->centers, (size_t)in->n_cells * 2 * sizeof *d->centers);
        } else {
            int *all = malloc((size_t)p.cells * 2 * sizeof *all);
            if (!all || rc_h5_read_all_int(d->file, "/cells/centers", all, 2 * (int64_t)p.cells, path, err, errlen) < 0) {
                if (!all) ERRF(err, errlen, "out of memory");
                free(all);
                goto fail;
            }
            for (int c = 0; c < in->n_cells; c++) {
                d->centers[2 * c] = all[2 * d->sel[c]];
                d->centers[2 * c + 1] = all[2 * d->sel[c] + 1];
            }
            free(all);
        }
        for (int c = 0; c < in->n_cells; c++)
            if (d->centers[2 * c] < 0 || d->centers[2 * c] >= p.h || d->centers[2 * c + 1] < 0 || d->centers[2 * c + 1] >= p.w) {
                ERRF(err, errlen, "%s: %s: center (%d,%d) of cell %d outside the %dx%d frame", path,
                     opts->centers ? "given centers" : "/cells/centers", d->centers[2 * c], d->centers[2 * c + 1], d->sel[c], p.h, p.w);
                goto fail;
            }
    }
    /* crop */
    if (opts->crop > 0) {
        if (opts->crop > p.h || opts->crop > p.w) { ERRF(err, errlen, "%s: crop %d larger than the %dx%d frame", path, opts->crop, p.h, p.w); goto fail; }
        int row = opts->crop_row >= 0 ? opts->crop_row : p.h / 2, col = opts->crop_col >= 0 ? opts->crop_col : p.w / 2;
        if (opts->crop_cell >= 0) {
            if (!d->centers) { ERRF(err, errlen, "%s: crop around cell %d needs cell centers (/cells/centers or given)", path, opts->crop_cell); goto fail; }
            if (opts->crop_cell >= in->n_cells) { ERRF(err, errlen, "%s: crop cell %d not among the %d selected cells", path, opts->crop_cell, in->n_cells); goto fail; }
            row = d->centers[2 * opts->crop_cell];
            col = d->centers[2 * opts->crop_cell + 1];
        }
        rc__crop_origin(p.h, p.w, opts->crop, row, col, &in->crop_row0, &in->crop_col0);
        in->h = in->w = opts->crop;
    }
    if (d->centers) {
        for (int c = 0; c < in->n_cells; c++) {
            d->centers[2 * c] -= in->crop_row0;
            d->centers[2 * c + 1] -= in->crop_col0;
        }
        in->centers = d->centers;
    }
    if (rc__open_sources(d, opts, &p, err, errlen) < 0) goto fail;
    in->train_frames = d->sp[RC_TRAIN].T;
    in->test_frames = d->sp[RC_TEST].T;
    if (in->train_frames <= in->history) {
        ERRF(err, errlen, "%s: %lld training frames; need more than the history of %d", path, (long long)in->train_frames, in->history);
        goto fail;
    }
    for (int s = 0; s < d->sp[RC_TRAIN].n; s++)
        if (d->sp[RC_TRAIN].seg[s].T <= in->history) {
            ERRF(err, errlen, "%s: %s: %lld frames; need more than the history of %d", path, d->sp[RC_TRAIN].seg[s].name,
                 (long long)d->sp[RC_TRAIN].seg[s].T, in->history);
            goto fail;
        }
    if (d->sp[RC_TEST].n && in->test_frames <= in->history) {
        ERRF(err, errlen, "%s: %lld test frames; need more than the history of %d", path, (long long)in->test_frames, in->history);
        goto fail;
    }
    if (!opts->defer_value_checks) {
        if (scan_labels(d, RC_TRAIN, err, errlen) < 0) goto fail;
        if (d->sp[RC_TEST].n && scan_labels(d, RC_TEST, err, errlen) < 0) goto fail;
        d->labels_checked = 1;
    }
    if (plan(d, opts, err, errlen) < 0) goto fail;
    *out = d;
    return 0;
fail:
    rc_data_close(d);
    return -1;
}

void rc_data_close(rc_data *d)
{
    if (!d) return;
    rc__close_sources(d);
    if (d->file >= 0) H5Fclose(d->file);
    free(d->path);
    free(d->sel);
    free(d->centers);
    free(d->wsplit);
    free(d->chunk_cnt[0]);
    free(d->chunk_cnt[1]);
    free(d->res_frames);
    free(d->res_labels);
    free(d);
}

/* ---------------------------------------------------------------------------------------- */
/* Statistics and normalization                                                               */

/* Chan et al.: fold one frame (its own mean and M2 in double) into the running moments; the
 * pixel range on the way (it does not change the order of the sum). */
static void scan_add_frame(rc_frame_scan *m, const float *x, int64_t n)
{
    double s = 0;
    float lo = m->n > 0 ? (float)m->min : x[0], hi = m->n > 0 ? (float)m->max : x[0];
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    double mb = s / (double)n, m2b = 0;
    for (int64_t i = 0; i < n; i++) { double e = x[i] - mb; m2b += e * e; }
    double na = m->n, nb = (double)n, nn = na + nb, delta = mb - m->mean;
    m->mean += delta * nb / nn;
    m->m2 += m2b + delta * delta * na * nb / nn;
    m->n = nn;
    m->min = lo;
    m->max = hi;
}

static void normalize(const rc_data *d, float *x, int64_t n)
{
    const float m = (float)d->mean, s = (float)d->std;
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] - m) / s;
}

static int finish_stats(rc_data *d, const rc_frame_scan *m, char *err, size_t errlen)
{
    d->mean = m->mean;
    d->std = sqrt(m->m2 / m->n) + RC_DATA_STD_EPS;
    if (!isfinite(d->mean) || !isfinite(d->std))
        return ERRF(err, errlen, "%s: training stimulus statistics are not finite", d->path);
    d->have_stats = 1;
    return 0;
}

/* Content generations of frame buffers (rc_batch.gen): process-wide, never 0. */
static uint64_t next_gen(void) { static uint64_t g; return __atomic_add_fetch(&g, 1, __ATOMIC_RELAXED); }

/* Every frame of a split in stream order, read in pieces of at most 4096 frames within the
 * budget (into `full` at its place when given, else into one reused piece buffer), folded into
 * *s; stops at the first non-finite value. */
static int frame_pass(rc_data *d, int split, rc_frame_scan *s, float *full, char *err, size_t errlen)
{
    const int64_t T = d->sp[split].T, hw = (int64_t)d->info.h * d->info.w;
    memset(s, 0, sizeof *s);
    int64_t piece = (int64_t)(d->info.mem_budget / (size_t)(hw * 4));
    if (piece > 4096) piece = 4096;
    if (piece < 1) piece = 1;
    float *buf = full ? NULL : malloc((size_t)(piece * hw) * sizeof *buf);
    if (!full && !buf) return ERRF(err, errlen, "%s: out of memory for %lld frames of %dx%d", d->path,
                                   (long long)piece, d->info.h, d->info.w);
    int rc = 0;
    for (int64_t t = 0; t < T && rc == 0 && !s->bad; t += piece) {
        int64_t e = t + piece < T ? t + piece : T, bad;
        float *o = full ? full + t * hw : buf;
        if ((rc = rc__read_frames_raw(d, split, t, e, o, err, errlen)) < 0) break;
        int64_t nf = e - t;
        if (!rc_all_finite(o, nf * hw, &bad)) {
            s->bad = 1;
            s->bad_frame = t + bad / hw;
            s->bad_pixel = bad % hw;
            nf = bad / hw;
        }
        for (int64_t k = 0; k < nf; k++) scan_add_frame(s, o + k * hw, hw);
    }
    free(buf);
    return rc;
}

int rc__frame_pass(rc_data *d, int split, rc_frame_scan *s, char *err, size_t errlen)
{
    return frame_pass(d, split, s, NULL, err, errlen);
}

/* "FILE: KEY: non-finite value ... at frame F, pixel (r,c)" for a frame pass's first bad value. */
static int nonfinite_err(const rc_data *d, int split, const rc_frame_scan *s, char *err, size_t errlen)
{
    int64_t local = s->bad_frame;
    int si = rc__frame_seg(d, split, s->bad_frame, &local);
    const int w = d->info.w;
    return ERRF(err, errlen, "%s: %s: non-finite value (NaN/Inf) at frame %lld, pixel (%lld,%lld)", d->path,
                si >= 0 ? d->sp[split].seg[si].name : "?", (long long)local,
                (long long)(s->bad_pixel / w + d->info.crop_row0), (long long)(s->bad_pixel % w + d->info.crop_col0));
}

int rc__train_frame_pass(rc_data *d, char *err, size_t errlen)
{
    if (d->have_scan) return 0;
    const int64_t T = d->sp[RC_TRAIN].T, hw = (int64_t)d->info.h * d->info.w;
    const int C = d->info.n_cells;
    /* a resident recording keeps the frames (labels verified at open: they are read strictly) */
    int keep = d->resident && !d->res_frames && d->labels_checked;
    if (keep) {
        d->res_frames = malloc((size_t)(T * hw) * sizeof(float));
        d->res_labels = malloc((size_t)(T * C) * sizeof(float));
        if (!d->res_frames || !d->res_labels) {
            free(d->res_frames);
            free(d->res_labels);
            d->res_frames = d->res_labels = NULL;
            return ERRF(err, errlen, "%s: out of memory loading %lld training frames", d->path, (long long)T);
        }
    }
    int rc = frame_pass(d, RC_TRAIN, &d->scan, keep ? d->res_frames : NULL, err, errlen);
    if (rc == 0) d->have_scan = 1;
    if (rc == 0 && !d->scan.bad && !d->have_stats) rc = finish_stats(d, &d->scan, err, errlen);
    if (keep && rc == 0 && !d->scan.bad) {
        rc = rc__read_labels(d, RC_TRAIN, 0, T, d->res_labels, err, errlen);
        if (rc == 0) {
            normalize(d, d->res_frames, T * hw);
            d->res_gen = next_gen();
            return 0;
        }
    }
    if (keep) {
        free(d->res_frames);
        free(d->res_labels);
        d->res_frames = d->res_labels = NULL;
    }
    return rc;
}

/* Load the whole training stream (resident mode), normalized with the statistics (set). */
static int load_resident(rc_data *d, char *err, size_t errlen)
{
    const int64_t T = d->sp[RC_TRAIN].T, hw = (int64_t)d->info.h * d->info.w;
    const int C = d->info.n_cells;
    d->res_frames = malloc((size_t)(T * hw) * sizeof(float));
    d->res_labels = malloc((size_t)(T * C) * sizeof(float));
    if (!d->res_frames || !d->res_labels) goto oom;
    /* read in pieces so that HDF5's conversion and our finite check stream through the cache */
    const int64_t piece = 4096;
    for (int64_t t = 0; t < T; t += piece) {
        int64_t e = t + piece < T ? t + piece : T;
        if (rc__read_frames(d, RC_TRAIN, t, e, d->res_frames + t * hw, err, errlen) < 0) goto fail;
    }
    if (rc__read_labels(d, RC_TRAIN, 0, T, d->res_labels, err, errlen) < 0) goto fail;
    normalize(d, d->res_frames, T * hw);
    d->res_gen = next_gen();
    return 0;
oom:
    ERRF(err, errlen, "%s: out of memory loading %lld training frames", d->path, (long long)T);
fail:
    free(d->res_frames);
    free(d->res_labels);
    d->res_frames = d->res_labels = NULL;
    return -1;
}

/* The statistics from the training frame pass (which a resident recording also loads from). */
static int ensure_stats(rc_data *d, char *err, size_t errlen)
{
    if (d->have_stats) return 0;
    if (rc__train_frame_pass(d, err, errlen) < 0) return -1;
    if (d->scan.bad) return nonfinite_err(d, RC_TRAIN, &d->scan, err, errlen);
    return d->have_stats ? 0 : finish_stats(d, &d->scan, err, errlen);
}

int rc_data_stats(rc_data *d, double *mean, double *std, char *err, size_t errlen)
{
    if (ensure_stats(d, err, errlen) < 0) return -1;
    if (mean) *mean = d->mean;
    if (std) *std = d->std;
    return 0;
}

int rc_data_set_stats(rc_data *d, double mean, double std, char *err, size_t errlen)
{
    if (!isfinite(mean) || !(std > 0) || !isfinite(std))
        return ERRF(err, errlen, "normalization statistics mean=%g std=%g are invalid", mean, std);
    if (d->iter_live) return ERRF(err, errlen, "cannot change statistics while an iterator is live");
    if (d->have_stats && d->mean == mean && d->std == std) return 0;
    d->mean = mean;
    d->std = std;
    d->have_stats = 1;
    free(d->res_frames);         /* normalized with other statistics: reload on demand */
    free(d->res_labels);
    d->res_frames = d->res_labels = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Iterators                                                                                  */

struct rc_iter {
    rc_data *d;
    int train, B;
    uint64_t seed;
    int epoch;
    int64_t n_batches;
    int *order;
    int oi;
    int64_t *win, nwin, pos;     /* windows of the current chunk (absolute indices) */
    float *fbuf, *lbuf;          /* streaming buffers */
    const float *base;
    int64_t base_t0, base_n;
    uint64_t base_gen;
    const float *lab;
    int64_t lab_t0;
    int64_t *starts;             /* (B) */
    float *y;                    /* (B, cells) */
};

static int iter_new(rc_data *d, int train, int B, uint64_t seed, int epoch, rc_iter **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (B <= 0) return ERRF(err, errlen, "batch size %d must be positive", B);
    if (d->iter_live) return ERRF(err, errlen, "%s: another iterator is still live (free it first)", d->path);
    if (ensure_stats(d, err, errlen) < 0) return -1;
    if (d->resident && !d->res_frames && load_resident(d, err, errlen) < 0) return -1;
    const int nch = d->info.n_chunks, C = d->info.n_cells;
    int64_t nb = 0;
    for (int c = 0; c < nch; c++)
        nb += train ? d->chunk_cnt[0][c] / B : (d->chunk_cnt[1][c] + B - 1) / B;
    if (train && nb == 0) {
        if (d->info.n_train >= B)
            return ERRF(err, errlen, "%s: no chunk of the memory budget (%.0f MB) holds a batch of %d windows",
                        d->path, d->info.mem_budget / 1048576.0, B);
        return ERRF(err, errlen, "%s: batch size %d larger than the %lld training windows", d->path, B, (long long)d->info.n_train);
    }
    rc_iter *it = calloc(1, sizeof *it);
    if (!it) return ERRF(err, errlen, "out of memory");
    it->d = d;
    it->train = train;
    it->B = B;
    it->seed = seed;
    it->epoch = epoch;
    it->n_batches = nb;
    it->order = malloc((size_t)nch * sizeof *it->order);
    it->win = malloc((size_t)d->chunk_win * sizeof *it->win);
    it->starts = malloc((size_t)B * sizeof *it->starts);
    it->y = malloc((size_t)B * C * sizeof *it->y);
    if (!it->order || !it->win || !it->starts || !it->y) goto oom;
    if (!d->resident) {
        const int64_t hw = (int64_t)d->info.h * d->info.w;
        it->fbuf = malloc((size_t)((d->chunk_win + d->info.history - 1) * hw) * sizeof(float));
        it->lbuf = malloc((size_t)(d->chunk_win * C) * sizeof(float));
        if (!it->fbuf || !it->lbuf) goto oom;
    }
    for (int c = 0; c < nch; c++) it->order[c] = c;
    if (train && nch > 1) {
        uint64_t st = sm_stream(seed, 0x43484b, (uint64_t)epoch, 0);   /* chunk order */
        for (int i = nch - 1; i > 0; i--) {
            int j = (int)sm_below(&st, (uint64_t)i + 1);
            int t = it->order[i]; it->order[i] = it->order[j]; it->order[j] = t;
        }
    }
    d->iter_live = 1;
    *out = it;
    return 0;
oom:
    rc_iter_free(it);
    return ERRF(err, errlen, "%s: out of memory for the batch iterator", d->path);
}

int rc_data_train_iter(rc_data *d, int B, uint64_t seed, int epoch, rc_iter **out, char *err,
                       size_t errlen)
{
    return iter_new(d, 1, B, seed, epoch, out, err, errlen);
}

int rc_data_val_iter(rc_data *d, int B, rc_iter **out, char *err, size_t errlen)
{
    return iter_new(d, 0, B, 0, 0, out, err, errlen);
}

int64_t rc_iter_batches(const rc_iter *it) { return it->n_batches; }

void rc_iter_free(rc_iter *it)
{
    if (!it) return;
    it->d->iter_live = 0;
    free(it->order);
    free(it->win);
    free(it->starts);
    free(it->y);
    free(it->fbuf);
    free(it->lbuf);
    free(it);
}

/* Make chunk c current: its windows of the iterator's kind, frames and labels in memory. */
static int load_chunk(rc_iter *it, int c, char *err, size_t errlen)
{
    rc_data *d = it->d;
    const int kind = it->train ? RC_WIN_TRAIN : RC_WIN_VAL;
    const int h = d->info.history, C = d->info.n_cells;
    int64_t s = (int64_t)c * d->chunk_win, e = s + d->chunk_win < d->N ? s + d->chunk_win : d->N;
    it->nwin = it->pos = 0;
    for (int64_t i = s; i < e; i++)
        if (d->wsplit[i] == kind) it->win[it->nwin++] = i;
    if (it->nwin == 0) return 0;
    if (d->resident) {
        it->base = d->res_frames;
        it->base_gen = d->res_gen;
        it->base_t0 = 0;
        it->base_n = d->sp[RC_TRAIN].T;
        it->lab = d->res_labels;
        it->lab_t0 = 0;
    } else {
        const int64_t hw = (int64_t)d->info.h * d->info.w;
        int64_t w0 = it->win[0], w1 = it->win[it->nwin - 1];
        if (rc__read_frames(d, RC_TRAIN, w0, w1 + h, it->fbuf, err, errlen) < 0) return -1;
        normalize(d, it->fbuf, (w1 + h - w0) * hw);
        if (rc__read_labels(d, RC_TRAIN, w0 + h, w1 + h + 1, it->lbuf, err, errlen) < 0) return -1;
        it->base = it->fbuf;
        it->base_gen = next_gen();
        it->base_t0 = w0;
        it->base_n = w1 + h - w0;
        it->lab = it->lbuf;
        it->lab_t0 = w0 + h;
    }
    (void)C;
    if (it->train)
        shuffle_i64(it->win, it->nwin, sm_stream(it->seed, 0x57494e, (uint64_t)it->epoch, (uint64_t)c));
    return 0;
}

int rc_iter_next(rc_iter *it, rc_batch *b, char *err, size_t errlen)
{
    rc_data *d = it->d;
    const int nch = d->info.n_chunks, C = d->info.n_cells, h = d->info.history;
    /* training drops a chunk's last partial batch; validation keeps it */
    while (it->train ? it->nwin - it->pos < it->B : it->pos >= it->nwin) {
        if (it->oi >= nch) return 0;
        if (load_chunk(it, it->order[it->oi++], err, errlen) < 0) return -1;
    }
    int64_t n = it->nwin - it->pos;
    int B = n < it->B ? (int)n : it->B;
    for (int k = 0; k < B; k++) {
        int64_t i = it->win[it->pos + k];
        it->starts[k] = i - it->base_t0;
        memcpy(it->y + (int64_t)k * C, it->lab + (i + h - it->lab_t0) * C, (size_t)C * sizeof(float));
    }
    it->pos += B;
    b->frames = it->base;
    b->n_frames = it->base_n;
    b->gen = it->base_gen;
    b->starts = it->starts;
    b->y = it->y;
    b->B = B;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Test set                                                                                   */

void rc_test_set_free(rc_test_set *t)
{
    if (!t) return;
    free(t->frames);
    free(t->starts);
    free(t->rate);
    free(t->repeats);
    free(t->truth);
    memset(t, 0, sizeof *t);
}

/* Per selected cell: dataset[..., sel[c], 0 : T] (all of it is checked for NaN/Inf), stored from
 * frame h on: (R, C, n) when by_cell_major, else (n, C). */
static int read_test_rows(rc_data *d, const char *key, int rank, int R, float *out, int by_cell_major,
                          char *err, size_t errlen)
{
    const int C = d->info.n_cells, h = d->info.history;
    const int64_t T = d->sp[RC_TEST].T, n = T - h;
    float *tmp = malloc((size_t)(R * T) * sizeof *tmp);
    if (!tmp) return ERRF(err, errlen, "out of memory");
    int rc = 0;
    for (int c = 0; c < C && rc == 0; c++) {
        char k[200];
        hid_t ds;
        int64_t st[3], ct[3];
        if (d->rep_kind == 2 && rank == 2 && by_cell_major) {
            /* cellNN: (repeats, T) per cell */
            snprintf(k, sizeof k, "/test/repeats/%s", d->rep_cell_keys[d->sel[c]]);
            st[0] = 0; ct[0] = R; st[1] = 0; ct[1] = T;
        } else if (rank == 3) {
            snprintf(k, sizeof k, "%s", key);
            st[0] = 0; ct[0] = R; st[1] = d->sel[c]; ct[1] = 1; st[2] = 0; ct[2] = T;
        } else {
            snprintf(k, sizeof k, "%s", key);
            st[0] = d->sel[c]; ct[0] = 1; st[1] = 0; ct[1] = T;
        }
        if ((ds = H5Dopen2(d->file, k, H5P_DEFAULT)) < 0) { rc = ERRF(err, errlen, "%s: %s: cannot open", d->path, k); break; }
        rc = rc_h5_read_f32(ds, rank, st, ct, tmp, d->path, k, err, errlen);
        H5Dclose(ds);
        if (rc < 0) break;
        int64_t bad;
        if (!rc_all_finite(tmp, (int64_t)R * T, &bad)) {
            rc = ERRF(err, errlen, "%s: %s: non-finite value (NaN/Inf) for cell %d at frame %lld", d->path, k,
                      d->sel[c], (long long)(bad % T));
            break;
        }
        if (by_cell_major) {          /* (R, C, n) */
            for (int r = 0; r < R; r++) memcpy(out + ((int64_t)r * C + c) * n, tmp + (int64_t)r * T + h, (size_t)n * sizeof *out);
        } else {                      /* (n, C) */
            for (int64_t i = 0; i < n; i++) out[i * C + c] = tmp[i + h];
        }
    }
    free(tmp);
    return rc;
}

int rc_data_test(rc_data *d, rc_test_set *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!d->sp[RC_TEST].n) {
        rc_errf(err, errlen, "%s: no test split", d->path);
        return RC_ERR_NO_TEST;
    }
    if (ensure_stats(d, err, errlen) < 0) return -1;
    const int64_t T = d->sp[RC_TEST].T, hw = (int64_t)d->info.h * d->info.w;
    const int C = d->info.n_cells, h = d->info.history;
    const int64_t n = T - h;
    t->n_frames = T;
    t->n = n;
    t->cells = C;
    t->frames = malloc((size_t)(T * hw) * sizeof *t->frames);
    t->starts = malloc((size_t)n * sizeof *t->starts);
    t->rate = malloc((size_t)(n * C) * sizeof *t->rate);
    if (!t->frames || !t->starts || !t->rate) goto oom;
    if (rc__read_frames(d, RC_TEST, 0, T, t->frames, err, errlen) < 0) goto fail;
    normalize(d, t->frames, T * hw);
    for (int64_t i = 0; i < n; i++) t->starts[i] = i;
    if (rc__read_labels(d, RC_TEST, h, T, t->rate, err, errlen) < 0) goto fail;
    if (d->rep_kind) {
        int R = d->info.n_repeats;
        t->repeats = malloc((size_t)((int64_t)R * C * n) * sizeof *t->repeats);
        if (!t->repeats) goto oom;
        if (read_test_rows(d, d->rep_key, d->rep_kind == 1 ? 3 : 2, R, t->repeats, 1, err, errlen) < 0) goto fail;
        t->n_repeats = R;
    }
    if (d->truth_key[0]) {
        t->truth = malloc((size_t)(n * C) * sizeof *t->truth);
        if (!t->truth) goto oom;
        if (read_test_rows(d, d->truth_key, 2, 1, t->truth, 0, err, errlen) < 0) goto fail;
    }
    return 0;
oom:
    ERRF(err, errlen, "%s: out of memory for the test split", d->path);
fail:
    rc_test_set_free(t);
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Receptive-field centers from the spike-triggered average (data.h)                         */

int rc_data_sta_centers(rc_data *d, int *centers, char *err, size_t errlen)
{
    const rc_data_info *in = &d->info;
    const int C = in->n_cells, h = in->history, H = in->h, W = in->w, B = 256;
    const int nl = h < RC_STA_MAX_LAG ? h : RC_STA_MAX_LAG;
    const int64_t hw = (int64_t)H * W;
    double mean, std;
    if (rc_data_stats(d, &mean, &std, err, errlen) < 0) return -1;
    /* One pass: sum y*x per cell and lag, sum x per lag (shared by the cells), sum y per cell;
     * then sum (y - mean y) x = sum y x - mean y * sum x, so the frames' own mean does not leak
     * into the STA. */
    float *sta = calloc((size_t)(C + 1) * nl * hw, sizeof *sta);  /* (C + 1, nl, H, W): last = sum x */
    double *ysum = calloc((size_t)C, sizeof *ysum);
    double *energy = malloc((size_t)hw * sizeof *energy);
    if (!sta || !ysum || !energy) {
        free(sta); free(ysum); free(energy);
        return ERRF(err, errlen, "%s: out of memory for the spike-triggered averages (%d cells)", d->path, C);
    }
    int rc = -1;
    rc_iter *it = NULL;
    if (rc_data_train_iter(d, B, 0x535441, 0, &it, err, errlen) < 0) goto out;
    rc_batch b;
    int64_t n = 0;
    int k = 0;
    while (n < RC_STA_MAX_WINDOWS && (k = rc_iter_next(it, &b, err, errlen)) == 1) {
        #pragma omp parallel for schedule(static)
        for (int c = 0; c <= C; c++) {   /* c == C: the unweighted sum of the frames */
            for (int i = 0; i < b.B; i++) {
                const float wgt = c < C ? b.y[(int64_t)i * C + c] : 1.0f;
                if (wgt == 0.0f) continue;
                for (int L = 1; L <= nl; L++) {
                    const float *restrict fr = b.frames + (b.starts[i] + h - L) * hw;
                    float *restrict s = sta + ((int64_t)c * nl + (L - 1)) * hw;
                    #pragma omp simd
                    for (int64_t p = 0; p < hw; p++) s[p] += wgt * fr[p];
                }
            }
        }
        for (int i = 0; i < b.B; i++)
            for (int c = 0; c < C; c++) ysum[c] += b.y[(int64_t)i * C + c];
        n += b.B;
    }
    rc_iter_free(it);
    if (k < 0) goto out;
    if (n == 0) { ERRF(err, errlen, "%s: no training windows for the spike-triggered averages", d->path); goto out; }
    const float *sx = sta + (int64_t)C * nl * hw;
    for (int c = 0; c < C; c++) {
        const float ym = (float)(ysum[c] / (double)n);
        float *sc = sta + (int64_t)c * nl * hw;
        for (int64_t e = 0; e < (int64_t)nl * hw; e++) sc[e] -= ym * sx[e];
    }
    for (int c = 0; c < C; c++) {
        for (int64_t p = 0; p < hw; p++) {
            double e = 0;
            for (int L = 0; L < nl; L++) {
                const double v = sta[((int64_t)c * nl + L) * hw + p];
                e += v * v;
            }
            energy[p] = e;
        }
        double best = -1;
        int br = H / 2, bc = W / 2;
        for (int r = 0; r < H; r++)
            for (int q = 0; q < W; q++) {
                double e = 0;
                for (int dr = -2; dr <= 2; dr++)
                    for (int dq = -2; dq <= 2; dq++) {
                        const int rr = r + dr, qq = q + dq;
                        if (rr >= 0 && rr < H && qq >= 0 && qq < W) e += energy[(int64_t)rr * W + qq];
                    }
                if (e > best) { best = e; br = r; bc = q; }
            }
        centers[2 * c] = br;
        centers[2 * c + 1] = bc;
    }
    rc = 0;
out:
    free(sta);
    free(ysum);
    free(energy);
    return rc;
}
