/* phenomena.c — the phenomena battery (phenomena.h): run each stimulus through a predictor
 * callback and read the reference's numbers off the responses (reference §5.2).
 *
 * Invariants:
 *   - responses are handled in frame time: resp (T, cells) with row t the rate at frame t
 *     (NaN for t < history); traces are stored from frame 40 on (the reference's window 0), so
 *     every model's traces have the same length whatever its history;
 *   - "mean" traces are the mean over cells, as the reference's figures;
 *   - noise stimuli are averaged over several seeded repeats where the reference used one
 *     noisy draw (documented per phenomenon), so numbers are stable across runs;
 *   - numbers are NaN where undefined (a zero denominator, no flash), never a crash;
 *   - contrast_fig and fast_contrast_adaptation read the model's optional sta callback (the
 *     mean input gradient on white noise, or an estimate of it); without one they report NaN
 *     numbers and no traces, so every column has the same rows.
 */
#include "phenomena.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "rf.h"
#include "rng.h"

#define WIN0 40   /* the reference's first window predicts frame 40 */

const char *const rc_pheno_names[] = {
    "step", "osr", "reversing_grating", "contrast_adaptation", "contrast_fig", "motion_reversal",
    "motion_anticipation", "oms", "freq_doubling", "fast_contrast_adaptation", "latency",
};
const int rc_pheno_count = (int)(sizeof rc_pheno_names / sizeof rc_pheno_names[0]);

/* ---------------------------------------------------------------------------------------- */
/* Output collection                                                                          */

static int grow(void **p, int *cap, int n, size_t sz)
{
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : 32;
    void *q = realloc(*p, (size_t)c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int add_num(rc_pheno_out *o, const char *key, double v)
{
    if (grow((void **)&o->nums, &o->cap_nums, o->n_nums, sizeof *o->nums) < 0) return -1;
    rc_pheno_num *n = &o->nums[o->n_nums++];
    snprintf(n->key, sizeof n->key, "%s", key);
    n->value = v;
    return 0;
}

static int add_param(rc_pheno_out *o, const char *key, double v)
{
    if (grow((void **)&o->params, &o->cap_params, o->n_params, sizeof *o->params) < 0) return -1;
    rc_pheno_param *n = &o->params[o->n_params++];
    snprintf(n->key, sizeof n->key, "%s", key);
    n->value = v;
    return 0;
}

/* Copies data (dims[0]*..*dims[rank-1] floats). */
static int add_trace(rc_pheno_out *o, const char *key, int rank, const int64_t *dims,
                     const float *data, const char *desc)
{
    if (grow((void **)&o->traces, &o->cap_traces, o->n_traces, sizeof *o->traces) < 0) return -1;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    if (!d) return -1;
    memcpy(d, data, (size_t)n * sizeof *d);
    rc_pheno_trace *t = &o->traces[o->n_traces++];
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    t->data = d;
    snprintf(t->desc, sizeof t->desc, "%s", desc);
    return 0;
}

void rc_pheno_out_free(rc_pheno_out *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_traces; i++) free(o->traces[i].data);
    free(o->traces);
    free(o->nums);
    free(o->params);
    memset(o, 0, sizeof *o);
}

const rc_pheno_num *rc_pheno_find(const rc_pheno_out *o, const char *key)
{
    for (int i = 0; i < o->n_nums; i++)
        if (!strcmp(o->nums[i].key, key)) return &o->nums[i];
    return NULL;
}

const rc_pheno_trace *rc_pheno_find_trace(const rc_pheno_out *o, const char *key)
{
    for (int i = 0; i < o->n_traces; i++)
        if (!strcmp(o->traces[i].key, key)) return &o->traces[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Running a model                                                                            */

typedef struct {
    const rc_pheno_model *m;
    rc_pheno_out *o;
    const char *name;       /* the phenomenon (key prefix) */
    uint64_t seed;
    int oom;                /* an add_* failed */
    char *err;
    size_t errlen;
} ctx;

static void num(ctx *c, const char *k, double v)
{
    char key[64];
    snprintf(key, sizeof key, "%s.%s", c->name, k);
    if (add_num(c->o, key, v) < 0) c->oom = 1;
}

static void param(ctx *c, const char *k, double v)
{
    char key[64];
    snprintf(key, sizeof key, "%s/%s", c->name, k);
    if (add_param(c->o, key, v) < 0) c->oom = 1;
}

static void trace(ctx *c, const char *k, int rank, int64_t d0, int64_t d1, int64_t d2,
                  const float *data, const char *desc)
{
    char key[64];
    int64_t dims[3] = {d0, d1, d2};
    snprintf(key, sizeof key, "%s/%s", c->name, k);
    if (add_trace(c->o, key, rank, dims, data, desc) < 0) c->oom = 1;
}

/* resp (T, cells) in frame time, NaN before the first predicted frame. A model with history
 * above 40 gets grey frames prepended so that frame 40 onwards is still predicted. */
static int respond(ctx *c, const float *fr, int T, float *resp)
{
    const rc_pheno_model *m = c->m;
    const int h = m->history, C = m->cells, pad = h > WIN0 ? h - WIN0 : 0;
    const int64_t P = (int64_t)m->H * m->W, Tp = (int64_t)T + pad;
    const float *in = fr;
    float *padded = NULL, *out = malloc((size_t)(Tp - h) * C * sizeof *out);
    if (!out) return rc_errf(c->err, c->errlen, "%s: out of memory", c->name);
    if (pad) {
        padded = calloc((size_t)(Tp * P), sizeof *padded);
        if (!padded) { free(out); return rc_errf(c->err, c->errlen, "%s: out of memory", c->name); }
        memcpy(padded + pad * P, fr, (size_t)(T * P) * sizeof *fr);
        in = padded;
    }
    char e[400];
    e[0] = 0;
    int rc = m->predict(m->ctx, in, Tp, out, e, sizeof e);
    free(padded);
    if (rc < 0) {
        free(out);
        return rc_errf(c->err, c->errlen, "%s: %s", c->name, e[0] ? e : "prediction failed");
    }
    for (int t = 0; t < T; t++) {
        int64_t i = (int64_t)t + pad - h;
        for (int k = 0; k < C; k++) resp[(int64_t)t * C + k] = i >= 0 ? out[i * C + k] : NAN;
    }
    free(out);
    return 0;
}

static void mean_cells(const float *resp, int T, int C, float *m)
{
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += resp[(int64_t)t * C + k];
        m[t] = (float)(s / C);
    }
}

static double mean_range(const float *x, int lo, int hi)
{
    double s = 0;
    for (int i = lo; i < hi; i++) s += x[i];
    return hi > lo ? s / (hi - lo) : NAN;
}

static double max_range(const float *x, int lo, int hi, int *at)
{
    int b = lo;
    for (int i = lo; i < hi; i++) if (x[i] > x[b]) b = i;
    if (at) *at = b;
    return x[b];
}

static double ratio(double a, double b) { return b != 0 && isfinite(a) && isfinite(b) ? a / b : NAN; }

/* Sub-frame position of the maximum of x over [lo, hi), or NaN when the maximum sits on either
 * end of the range (a monotone rise or decay there, not a response peak). *val: the maximum. */
static double peak_in(const float *x, int lo, int hi, double *val)
{
    double pos = rc_pheno_peak(x, lo, hi, val);
    return pos <= lo + 0.5 || pos >= hi - 1.5 ? NAN : pos;
}

static float *frames_alloc(ctx *c, int T)
{
    float *f = malloc((size_t)T * c->m->H * c->m->W * sizeof *f);
    if (!f) rc_errf(c->err, c->errlen, "%s: out of memory for %d frames", c->name, T);
    return f;
}

/* The standard traces of one stimulus: mean over cells and per cell, from frame 40 on. */
static void std_traces(ctx *c, const char *k, const float *resp, const float *mean, int T,
                       const char *what)
{
    char key[48], desc[160];
    snprintf(desc, sizeof desc, "mean over cells of the response to %s, frames 40..%d (10 ms)", what, T - 1);
    snprintf(key, sizeof key, "%s", k);
    trace(c, key, 1, T - WIN0, 0, 0, mean + WIN0, desc);
    snprintf(desc, sizeof desc, "(frames 40..%d, cells) response to %s", T - 1, what);
    snprintf(key, sizeof key, "%s_cells", k);
    trace(c, key, 2, T - WIN0, c->m->cells, 0, resp + (int64_t)WIN0 * c->m->cells, desc);
}

/* ---------------------------------------------------------------------------------------- */
/* 1. Step response: full-field flash of -1, frames 50..149 of 200                            */

static int ph_step(ctx *c)
{
    const int T = 200, on = 50, dur = 100, C = c->m->cells;
    const float I = -1.0f;
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp), *m = malloc((size_t)T * sizeof *m);
    int rc = -1;
    if (!fr || !resp || !m) { if (fr) rc_errf(c->err, c->errlen, "step: out of memory"); goto out; }
    rc_pheno_flash(fr, T, c->m->H, c->m->W, dur, on, I);
    if (respond(c, fr, T, resp) < 0) goto out;
    mean_cells(resp, T, C, m);
    /* the rate at frame t sees frames < t: the onset's first possible response is at on+1 */
    double peak, offp;
    double at = peak_in(m, on + 1, on + dur, &peak), at_off = peak_in(m, on + dur + 1, T, &offp);
    double base = mean_range(m, WIN0, on), sus = mean_range(m, on + dur - 20, on + dur);
    num(c, "baseline", base);
    num(c, "peak", peak);
    num(c, "latency_ms", (at - on) * RC_PHENO_DT_MS);
    num(c, "sustained", sus);
    num(c, "transience", ratio(peak - sus, peak - base));
    num(c, "off_peak", offp);
    num(c, "off_latency_ms", (at_off - on - dur) * RC_PHENO_DT_MS);
    param(c, "intensity", I); param(c, "delay", on); param(c, "duration", dur); param(c, "nsamples", T);
    std_traces(c, "response", resp, m, T, "a full-field step of -1 at frames 50..149");
    rc = 0;
out:
    free(fr); free(resp); free(m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 2. Omitted stimulus response: 8 flashes of -2 (2 frames every 8), then one omitted         */

static int ph_osr(ctx *c)
{
    const int dur = 2, interval = 6, nfl = 8, C = c->m->cells;
    const float I = -2.0f;
    int om;
    const int T = rc_pheno_osr_stim(NULL, 0, 0, dur, interval, nfl, I, &om);
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp), *m = malloc((size_t)T * sizeof *m);
    int rc = -1;
    if (!fr || !resp || !m) { if (fr) rc_errf(c->err, c->errlen, "osr: out of memory"); goto out; }
    rc_pheno_osr_stim(fr, c->m->H, c->m->W, dur, interval, nfl, I, &om);
    if (respond(c, fr, T, resp) < 0) goto out;
    mean_cells(resp, T, C, m);
    /* the OSR is a peak after the omitted flash time: a maximum on the window's first frame
     * is the decaying tail of the last flash response, not a peak (latency NaN then) */
    double pk;
    double pos = peak_in(m, om, T, &pk);
    double base = mean_range(m, WIN0, 76);
    /* steady response per flash cycle: the max over each of the last three cycles */
    const int cyc = dur + interval, first = 76;
    double fl = 0;
    for (int k = nfl - 3; k < nfl; k++) fl += max_range(m, first + k * cyc + interval, first + (k + 1) * cyc + interval, NULL) / 3.0;
    num(c, "latency_ms", (pos - om) * RC_PHENO_DT_MS);
    num(c, "peak", pk);
    num(c, "baseline", base);
    num(c, "peak_over_baseline", ratio(pk, base));
    num(c, "peak_over_flash", ratio(pk, fl));
    param(c, "intensity", I); param(c, "duration", dur); param(c, "interval", interval);
    param(c, "nflashes", nfl); param(c, "nsamples", T); param(c, "omitted_frame", om);
    std_traces(c, "response", resp, m, T, "the OSR flash train (omitted flash at frame 146)");
    rc = 0;
out:
    free(fr); free(resp); free(m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 3. Reversing grating: square grating of 5 px bars, polarity flipped every 50 frames        */

static int ph_reversing(ctx *c)
{
    const int T = 300, hp = 50, width = 5, C = c->m->cells, H = c->m->H, W = c->m->W;
    float *img = malloc((size_t)H * W * sizeof *img);
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp), *m = malloc((size_t)T * sizeof *m);
    int rc = -1;
    if (!img || !fr || !resp || !m) { if (fr) rc_errf(c->err, c->errlen, "reversing_grating: out of memory"); goto out; }
    rc_pheno_grating(img, H, W, width, 0.0, 0);
    rc_pheno_reverse(fr, img, H, W, hp, T);
    if (respond(c, fr, T, resp) < 0) goto out;
    mean_cells(resp, T, C, m);
    double pm = 0, pp = 0, st = 0, lat = 0;
    int nm = 0, np = 0, nr = 0;
    for (int r = hp; r < T; r += hp) {
        double p, at = peak_in(m, r + 1, r + hp, &p);
        if ((r / hp) % 2) { pm += p; nm++; } else { pp += p; np++; }
        st += mean_range(m, r + hp - 10, r + hp);
        lat += (at - r) * RC_PHENO_DT_MS;   /* NaN if any reversal has no peak */
        nr++;
    }
    pm /= nm; pp /= np; st /= nr; lat /= nr;
    double a = pm - st, b = pp - st, hi = a > b ? a : b, lo = a > b ? b : a;
    num(c, "peak_to_minus", pm);
    num(c, "peak_to_plus", pp);
    num(c, "steady", st);
    num(c, "latency_ms", lat);
    num(c, "polarity_balance", hi > 0 ? lo / hi : NAN);
    param(c, "bar_width", width); param(c, "halfperiod", hp); param(c, "nsamples", T);
    std_traces(c, "response", resp, m, T, "a 5 px square grating reversing every 50 frames");
    rc = 0;
out:
    free(img); free(fr); free(resp); free(m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 4. Contrast adaptation: full-field flicker, contrast 0.7 -> 0.1 -> 0.7                     */

static int ph_contrast(ctx *c)
{
    /* The reference multiplies fresh per-pixel noise by an envelope that is itself noise
     * (repeat_white); the evident intent (and its older version) is full-field Gaussian flicker
     * whose standard deviation steps 0.7 -> 0.1 -> 0.7. The flicker is held for 3 frames
     * (repeat_white) and averaged over 20 seeded repeats (the older version averaged 10). */
    const int T = 300, s1 = 105, s2 = 235, hold = 3, nrep = 20, C = c->m->cells;
    const float hi = 0.7f, lo = 0.1f;
    float *con = malloc((size_t)T * sizeof *con);
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp);
    float *acc = calloc((size_t)T * C, sizeof *acc), *m = malloc((size_t)T * sizeof *m);
    int rc = -1;
    if (!con || !fr || !resp || !acc || !m) { if (fr) rc_errf(c->err, c->errlen, "contrast_adaptation: out of memory"); goto out; }
    for (int t = 0; t < T; t++) con[t] = t < s1 || t >= s2 ? hi : lo;
    for (int r = 0; r < nrep; r++) {
        rc_pheno_flicker(fr, T, c->m->H, c->m->W, con, hold, c->seed, 0x434f4e00u + (uint64_t)r);
        if (respond(c, fr, T, resp) < 0) goto out;
        for (int64_t i = 0; i < (int64_t)T * C; i++) acc[i] += resp[i] / nrep;
    }
    mean_cells(acc, T, C, m);
    double hs = mean_range(m, 70, s1), le = mean_range(m, s1, s1 + 20), ll = mean_range(m, s2 - 40, s2);
    double he = mean_range(m, s2, s2 + 20), hl = mean_range(m, T - 25, T);
    num(c, "high_steady", hs);
    num(c, "low_early", le);
    num(c, "low_late", ll);
    num(c, "high_early", he);
    num(c, "high_late", hl);
    num(c, "adaptation_index", ratio(he, hs));
    num(c, "low_recovery", ratio(le, ll));
    param(c, "contrast_high", hi); param(c, "contrast_low", lo); param(c, "switch_down", s1);
    param(c, "switch_up", s2); param(c, "hold", hold); param(c, "repeats", nrep); param(c, "nsamples", T);
    std_traces(c, "response", acc, m, T, "full-field flicker, contrast 0.7/0.1/0.7 (mean of 20 repeats)");
    float env[300];
    for (int t = WIN0; t < T; t++) env[t - WIN0] = con[t];
    trace(c, "contrast", 1, T - WIN0, 0, 0, env, "flicker contrast (sd) at frames 40..299");
    rc = 0;
out:
    free(con); free(fr); free(resp); free(acc); free(m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 6. Motion reversal: a dark 2 px bar moves right from x = -40 at 0.19 px/frame, reverses    */
/*    at xflip in -9..2 and returns; responses aligned at the reversal                        */

static int ph_motion_reversal(ctx *c)
{
    const double speed = 0.19;
    const int x_lo = -9, x_hi = 2, npos = x_hi - x_lo + 1, half = 100, width = 2, C = c->m->cells;
    const int L = 2 * half + 1;
    const int64_t P = (int64_t)c->m->H * c->m->W;
    float *al = calloc((size_t)L * C, sizeof *al), *m = malloc((size_t)L * sizeof *m);
    float *fr = NULL, *resp = NULL;
    int rc = -1;
    if (!al || !m) { rc_errf(c->err, c->errlen, "motion_reversal: out of memory"); goto out; }
    for (int xi = 0; xi < npos; xi++) {
        double xf = x_lo + xi;
        int n = rc_pheno_drifting_bar(NULL, NULL, 0, 0, speed, width, -40, xf);
        int T = 2 * n, flip = n - 1;      /* centres c1 ++ c2: the first repeated centre */
        free(fr); free(resp);
        fr = frames_alloc(c, T);
        resp = malloc((size_t)T * C * sizeof *resp);
        if (!fr || !resp) { if (fr) rc_errf(c->err, c->errlen, "motion_reversal: out of memory"); goto out; }
        rc_pheno_drifting_bar(fr, NULL, c->m->H, c->m->W, speed, width, -40, xf);
        rc_pheno_drifting_bar(fr + n * P, NULL, c->m->H, c->m->W, -speed, width, xf, -40);
        if (flip - half < WIN0 || flip + half >= T) {
            rc_errf(c->err, c->errlen, "motion_reversal: reversal at frame %d leaves no +-%d frames", flip, half);
            goto out;
        }
        if (respond(c, fr, T, resp) < 0) goto out;
        for (int i = 0; i < L; i++)
            for (int k = 0; k < C; k++) al[(int64_t)i * C + k] += resp[(int64_t)(flip - half + i) * C + k] / npos;
    }
    mean_cells(al, L, C, m);
    double pk;
    double pos = peak_in(m, half + 1, half + 61, &pk);
    double mv = max_range(m, 0, half, NULL);
    num(c, "peak_latency_ms", (pos - half) * RC_PHENO_DT_MS);
    num(c, "peak_after", pk);
    num(c, "moving_peak", mv);
    num(c, "peak_ratio", ratio(pk, mv));
    param(c, "speed_px_per_frame", speed); param(c, "bar_width", width);
    param(c, "xflip_first", x_lo); param(c, "xflip_last", x_hi); param(c, "start_x", -40);
    trace(c, "response", 1, L, 0, 0, m, "mean over cells and reversal positions, frames -100..100 around the reversal");
    trace(c, "response_cells", 2, L, C, 0, al, "(frames -100..100 around the reversal, cells) mean over reversal positions");
    rc = 0;
out:
    free(al); free(m); free(fr); free(resp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 7. Motion anticipation (Berry 1999): drifting 2 px dark bars vs flashed bars               */

/* Position (px from the centre) where the normalized moving response peaks. */
static double moving_peak(const float *m, const double *cen, int T)
{
    double pos = rc_pheno_peak(m, WIN0, T, NULL);
    int i = (int)floor(pos);
    double f = pos - i;
    return i + 1 < T ? cen[i] + f * (cen[i + 1] - cen[i]) : cen[i];
}

static int ph_anticipation(ctx *c)
{
    const double v = 0.176;
    const int width = 2, fdur = 2, fdelay = 43, fT = 70, C = c->m->cells, H = c->m->H, W = c->m->W;
    const int64_t P = (int64_t)H * W;
    const int xmin = -(W / 2), xmax = W / 2, nx = xmax - xmin + 1;
    const int n = rc_pheno_drifting_bar(NULL, NULL, 0, 0, v, width, -30, 30);
    float *fr = frames_alloc(c, n > fT ? n : fT);
    float *resp = malloc((size_t)n * C * sizeof *resp), *mr = malloc((size_t)n * sizeof *mr), *ml = malloc((size_t)n * sizeof *ml);
    float *fl = malloc((size_t)nx * fT * C * sizeof *fl), *mf = malloc((size_t)fT * sizeof *mf);
    float *prof = malloc((size_t)nx * C * sizeof *prof), *pm = malloc((size_t)nx * sizeof *pm);
    float *rr = malloc((size_t)n * C * sizeof *rr), *img = malloc((size_t)P * sizeof *img);
    double *cr = malloc((size_t)n * sizeof *cr), *cl = malloc((size_t)n * sizeof *cl);
    int rc = -1;
    if (!fr || !resp || !mr || !ml || !fl || !mf || !prof || !pm || !rr || !img || !cr || !cl) {
        if (fr) rc_errf(c->err, c->errlen, "motion_anticipation: out of memory");
        goto out;
    }
    rc_pheno_drifting_bar(fr, cr, H, W, v, width, -30, 30);
    if (respond(c, fr, n, rr) < 0) goto out;
    mean_cells(rr, n, C, mr);
    rc_pheno_drifting_bar(fr, cl, H, W, -v, width, 30, -30);
    if (respond(c, fr, n, resp) < 0) goto out;
    mean_cells(resp, n, C, ml);
    /* flashed bars: flash(2, 43, 70, bar((x, 0), 2, H)) at x = -W/2..W/2 */
    for (int xi = 0; xi < nx; xi++) {
        rc_pheno_bar(img, H, W, xmin + xi, width, -1.0f, 1);
        for (int t = 0; t < fT; t++)
            for (int64_t i = 0; i < P; i++) fr[t * P + i] = t >= fdelay && t < fdelay + fdur ? img[i] : 0.0f;
        if (respond(c, fr, fT, fl + (int64_t)xi * fT * C) < 0) goto out;
    }
    for (int t = 0; t < fT; t++) {
        double s = 0;
        for (int xi = 0; xi < nx; xi++)
            for (int k = 0; k < C; k++) s += fl[((int64_t)xi * fT + t) * C + k];
        mf[t] = t < WIN0 ? NAN : (float)(s / ((double)nx * C));
    }
    int tmax;
    max_range(mf, WIN0, fT, &tmax);
    for (int xi = 0; xi < nx; xi++)
        for (int k = 0; k < C; k++) prof[xi * C + k] = fl[((int64_t)xi * fT + tmax) * C + k];
    mean_cells(prof, nx, C, pm);
    double xf = xmin + rc_pheno_peak(pm, 0, nx, NULL);
    double xr = moving_peak(mr, cr, n), xl = moving_peak(ml, cl, n);
    double lr = xf - xr, ll = xl - xf;
    num(c, "flash_peak_px", xf);
    num(c, "right_peak_px", xr);
    num(c, "left_peak_px", xl);
    num(c, "lead_right_px", lr);
    num(c, "lead_left_px", ll);
    num(c, "lead_px", 0.5 * (lr + ll));
    num(c, "lead_um", 0.5 * (lr + ll) * RC_PHENO_UM_PER_PX);
    num(c, "flash_peak_time_ms", (tmax - fdelay) * RC_PHENO_DT_MS);
    param(c, "speed_px_per_frame", v); param(c, "speed_mm_s", v * RC_PHENO_UM_PER_PX / RC_PHENO_DT_MS);
    param(c, "bar_width", width); param(c, "flash_duration", fdur); param(c, "flash_delay", fdelay);
    param(c, "um_per_px", RC_PHENO_UM_PER_PX);
    /* traces: positions of the bar at frames 40.. and the responses there */
    float *pos = malloc((size_t)(n > nx ? n : nx) * sizeof *pos);
    if (!pos) { rc_errf(c->err, c->errlen, "motion_anticipation: out of memory"); goto out; }
    for (int t = WIN0; t < n; t++) pos[t - WIN0] = (float)cr[t];
    trace(c, "right_position_px", 1, n - WIN0, 0, 0, pos, "bar centre (px from the frame centre) at frames 40.., rightward");
    for (int t = WIN0; t < n; t++) pos[t - WIN0] = (float)cl[t];
    trace(c, "left_position_px", 1, n - WIN0, 0, 0, pos, "bar centre (px from the frame centre) at frames 40.., leftward");
    trace(c, "right_response", 1, n - WIN0, 0, 0, mr + WIN0, "mean over cells, rightward bar, frames 40..");
    trace(c, "left_response", 1, n - WIN0, 0, 0, ml + WIN0, "mean over cells, leftward bar, frames 40..");
    trace(c, "right_response_cells", 2, n - WIN0, C, 0, rr + (int64_t)WIN0 * C, "(frames 40.., cells) rightward bar");
    trace(c, "left_response_cells", 2, n - WIN0, C, 0, resp + (int64_t)WIN0 * C, "(frames 40.., cells) leftward bar");
    for (int xi = 0; xi < nx; xi++) pos[xi] = (float)(xmin + xi);
    trace(c, "flash_position_px", 1, nx, 0, 0, pos, "flashed bar centres (px from the frame centre)");
    trace(c, "flash_profile", 1, nx, 0, 0, pm, "mean over cells of the flash response at the time of its peak, per position");
    trace(c, "flash_profile_cells", 2, nx, C, 0, prof, "(positions, cells) flash response at the peak time");
    free(pos);
    rc = 0;
out:
    free(fr); free(resp); free(mr); free(ml); free(fl); free(mf); free(prof); free(pm); free(rr);
    free(img); free(cr); free(cl);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 8. Object motion sensitivity: differential vs global jitter of a 4 px grating             */

static int ph_oms(ctx *c)
{
    /* oms_random_differential: 150 frames (40 static, 70 jittering, 40 static), disk radius 8
     * at the centre, background p 0.3, disk p 0.5, global p 0.5; the reference's metric
     * global.mean / diff.mean per cell over frames 40..149. Averaged over 5 seeded jitter
     * sequences (the reference draws one). */
    const int width = 4, pre = 40, njit = 70, post = 40, nrep = 5, C = c->m->cells;
    const double radius = 8, pbg = 0.3, pfg = 0.5;
    const int T = rc_pheno_oms_stim(NULL, 0, 0, width, radius, pre, njit, post, pbg, pfg, 0, 0, 0);
    const int L = T - WIN0;
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp);
    float *d = calloc((size_t)T * C, sizeof *d), *g = calloc((size_t)T * C, sizeof *g);
    float *md = malloc((size_t)T * sizeof *md), *mg = malloc((size_t)T * sizeof *mg);
    float *rat = malloc((size_t)C * sizeof *rat);
    int rc = -1;
    if (!fr || !resp || !d || !g || !md || !mg || !rat) { if (fr) rc_errf(c->err, c->errlen, "oms: out of memory"); goto out; }
    for (int r = 0; r < nrep; r++)
        for (int sync = 0; sync < 2; sync++) {
            rc_pheno_oms_stim(fr, c->m->H, c->m->W, width, radius, pre, njit, post, pbg, sync ? pfg : pfg,
                              sync, c->seed, 0x4f4d5300u + (uint64_t)r);
            if (respond(c, fr, T, resp) < 0) goto out;
            float *acc = sync ? g : d;
            for (int64_t i = 0; i < (int64_t)T * C; i++) acc[i] += resp[i] / nrep;
        }
    double sr = 0, sd = 0, sg = 0;
    int nr = 0;
    for (int k = 0; k < C; k++) {
        double a = 0, b = 0;
        for (int t = WIN0; t < T; t++) { a += g[(int64_t)t * C + k]; b += d[(int64_t)t * C + k]; }
        a /= L; b /= L;
        rat[k] = (float)ratio(a, b);
        if (isfinite(rat[k])) { sr += rat[k]; nr++; }
        sd += b / C; sg += a / C;
    }
    mean_cells(d, T, C, md);
    mean_cells(g, T, C, mg);
    num(c, "diff_mean", sd);
    num(c, "global_mean", sg);
    num(c, "ratio", nr ? sr / nr : NAN);
    num(c, "ratio_of_means", ratio(sg, sd));
    param(c, "bar_width", width); param(c, "radius", radius); param(c, "pre_frames", pre);
    param(c, "jitter_frames", njit); param(c, "post_frames", post);
    param(c, "background_p", pbg); param(c, "foreground_p", pfg); param(c, "global_p", pfg);
    param(c, "repeats", nrep);
    trace(c, "ratio_cells", 1, C, 0, 0, rat, "global / differential mean response per cell (frames 40..149)");
    std_traces(c, "differential", d, md, T, "differential jitter (mean of 5 repeats)");
    std_traces(c, "global", g, mg, T, "global jitter (mean of 5 repeats)");
    rc = 0;
out:
    free(fr); free(resp); free(d); free(g); free(md); free(mg); free(rat);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 9. Frequency doubling: sine gratings of bar width 1..8 px reversing every 25 frames       */

static int ph_f2(ctx *c)
{
    /* freq_doubling: reversing_grating(140, 25, width, phase, 'sin') for phases linspace(0,1,9);
     * amplitudes of the 100 samples (frames 40..139) at 2 Hz (F1) and 4 Hz (F2), a direct DFT
     * at k = 2 and 4 cycles per 100 samples. The reference averages F2/F1 over phases, which
     * explodes at the phases where a cell's linear drive cancels (F1 ~ 0); the table reports
     * the classic max over phases F2 / max over phases F1 (Hochstein & Shapley), the
     * reference's mean ratio is written too (ratio_ref). Mean over cells. */
    const int nw = 8, nph = 9, hp = 25, T = 140, N = T - WIN0, C = c->m->cells, H = c->m->H, W = c->m->W;
    float *img = malloc((size_t)H * W * sizeof *img);
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp), *x = malloc((size_t)N * sizeof *x);
    float *F1 = malloc((size_t)nw * nph * C * sizeof *F1), *F2 = malloc((size_t)nw * nph * C * sizeof *F2);
    float *rmax = malloc((size_t)nw * C * sizeof *rmax), *rref = malloc((size_t)nw * C * sizeof *rref);
    int rc = -1;
    if (!img || !fr || !resp || !x || !F1 || !F2 || !rmax || !rref) { if (fr) rc_errf(c->err, c->errlen, "freq_doubling: out of memory"); goto out; }
    for (int wi = 0; wi < nw; wi++)
        for (int pi = 0; pi < nph; pi++) {
            rc_pheno_grating(img, H, W, wi + 1, (double)pi / (nph - 1), 1);
            rc_pheno_reverse(fr, img, H, W, hp, T);
            if (respond(c, fr, T, resp) < 0) goto out;
            for (int k = 0; k < C; k++) {
                for (int t = 0; t < N; t++) x[t] = resp[(int64_t)(t + WIN0) * C + k];
                int64_t i = ((int64_t)wi * nph + pi) * C + k;
                F1[i] = (float)rc_pheno_dft_amp(x, N, N * 2 / 100);
                F2[i] = (float)rc_pheno_dft_amp(x, N, N * 4 / 100);
            }
        }
    for (int wi = 0; wi < nw; wi++) {
        double mean_max = 0;
        int nmax = 0;
        for (int k = 0; k < C; k++) {
            double m1 = 0, m2 = 0, sr = 0;
            int n = 0;
            for (int pi = 0; pi < nph; pi++) {
                int64_t i = ((int64_t)wi * nph + pi) * C + k;
                if (F1[i] > m1) m1 = F1[i];
                if (F2[i] > m2) m2 = F2[i];
                if (F1[i] > 0) { sr += F2[i] / F1[i]; n++; }
            }
            rmax[wi * C + k] = (float)ratio(m2, m1);
            rref[wi * C + k] = n ? (float)(sr / n) : NAN;
            if (isfinite(rmax[wi * C + k])) { mean_max += rmax[wi * C + k]; nmax++; }
        }
        char k[32];
        snprintf(k, sizeof k, "w%d", wi + 1);
        num(c, k, nmax ? mean_max / nmax : NAN);
    }
    param(c, "halfperiod", hp); param(c, "nsamples", T); param(c, "phases", nph);
    param(c, "width_min", 1); param(c, "width_max", nw); param(c, "f1_hz", 2); param(c, "f2_hz", 4);
    param(c, "um_per_px", RC_PHENO_UM_PER_PX);
    trace(c, "f1", 3, nw, nph, C, F1, "(bar width 1..8 px, phase linspace(0,1,9), cells) |DFT| at 2 Hz of frames 40..139");
    trace(c, "f2", 3, nw, nph, C, F2, "(bar width, phase, cells) |DFT| at 4 Hz");
    trace(c, "ratio_cells", 2, nw, C, 0, rmax, "(bar width, cells) max over phases F2 / max over phases F1");
    trace(c, "ratio_ref_cells", 2, nw, C, 0, rref, "(bar width, cells) mean over phases of F2/F1 (the reference's)");
    rc = 0;
out:
    free(img); free(fr); free(resp); free(x); free(F1); free(F2); free(rmax); free(rref);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 11. Latency encoding: 2-frame full-field flashes of 0..-10 at frame 40                     */

static int ph_latency(ctx *c)
{
    /* latency_encoding: flash(2, 40, 70, i) for i in linspace(0, -10, 21); the latency is the
     * time of the peak of the mean response within 0..200 ms of the flash onset. The reference
     * upsamples with cubic splines on an axis of linspace(0, 300, 30) (10.34 ms per frame, an
     * off-by-one); here frames are 10 ms and the peak is refined by a parabola. */
    const int ni = 21, T = 70, on = 40, dur = 2, C = c->m->cells;
    const int L = T - WIN0;
    float *fr = frames_alloc(c, T), *resp = malloc((size_t)T * C * sizeof *resp), *m = malloc((size_t)T * sizeof *m);
    float *all = malloc((size_t)ni * L * C * sizeof *all), *lat = malloc((size_t)ni * sizeof *lat), *iv = malloc((size_t)ni * sizeof *iv);
    int rc = -1;
    if (!fr || !resp || !m || !all || !lat || !iv) { if (fr) rc_errf(c->err, c->errlen, "latency: out of memory"); goto out; }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int n = 0;
    for (int k = 0; k < ni; k++) {
        iv[k] = (float)(-10.0 * k / (ni - 1));
        rc_pheno_flash(fr, T, c->m->H, c->m->W, dur, on, iv[k]);
        if (respond(c, fr, T, resp) < 0) goto out;
        mean_cells(resp, T, C, m);
        memcpy(all + (int64_t)k * L * C, resp + (int64_t)WIN0 * C, (size_t)L * C * sizeof *all);
        lat[k] = k == 0 ? NAN : (float)((peak_in(m, on + 1, on + 21, NULL) - on) * RC_PHENO_DT_MS);
        if (k > 0 && isfinite(lat[k])) {
            double xx = -iv[k];
            sx += xx; sy += lat[k]; sxx += xx * xx; sxy += xx * lat[k]; n++;
        }
    }
    num(c, "ms_at_1", lat[2]);
    num(c, "ms_at_2", lat[4]);
    num(c, "ms_at_5", lat[10]);
    num(c, "ms_at_10", lat[20]);
    double den = n * sxx - sx * sx;
    num(c, "slope_ms_per_unit", n > 1 && den != 0 ? (n * sxy - sx * sy) / den : NAN);
    param(c, "duration", dur); param(c, "delay", on); param(c, "nsamples", T);
    param(c, "intensity_min", -10); param(c, "intensity_max", 0); param(c, "intensities", ni);
    trace(c, "intensity", 1, ni, 0, 0, iv, "flash intensities (z-units), linspace(0,-10,21)");
    trace(c, "latency_ms", 1, ni, 0, 0, lat, "time of the mean response's peak after flash onset, per intensity");
    trace(c, "response_cells", 3, ni, L, C, all, "(intensity, frames 40..69, cells)");
    rc = 0;
out:
    free(fr); free(resp); free(m); free(all); free(lat); free(iv);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* STA-based phenomena (#5, #10): shared pieces                                               */

/* The model's STA at one contrast (cells, history, H, W) into sta, and per cell its rank-1
 * temporal filter (cells, history) in rf.h's lag order (spatial peak positive). */
static int sta_temporal(ctx *c, double contrast, float *sta, float *temporal)
{
    const rc_pheno_model *m = c->m;
    const int h = m->history, C = m->cells;
    const int64_t hw = (int64_t)m->H * m->W, win = (int64_t)h * hw;
    const int64_t ns = m->sta_samples > 0 ? m->sta_samples : RC_PHENO_STA_SAMPLES;
    char e[400];
    e[0] = 0;
    if (m->sta(m->ctx, contrast, ns, c->seed, sta, e, sizeof e) < 0)
        return rc_errf(c->err, c->errlen, "%s: STA at contrast %g: %s", c->name, contrast, e[0] ? e : "failed");
    float *sp = malloc((size_t)hw * sizeof *sp);
    if (!sp) return rc_errf(c->err, c->errlen, "%s: out of memory", c->name);
    for (int n = 0; n < C; n++) {
        rc_rf_cell cell;
        if (rc_rf_summarize(sta + (int64_t)n * win, h, m->H, m->W, sp, temporal + (int64_t)n * h, &cell) < 0) {
            free(sp);
            return rc_errf(c->err, c->errlen, "%s: out of memory", c->name);
        }
    }
    free(sp);
    return 0;
}

static const char *sta_kind(const ctx *c) { return c->m->sta_kind ? c->m->sta_kind : "gradient STA"; }

/* Least-squares slope of y on x (n points), NaN if undefined or any y is NaN. */
static double ls_slope(const double *x, const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) return NAN;
        sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i];
    }
    double den = n * sxx - sx * sx;
    return n > 1 && den != 0 ? (n * sxy - sx * sy) / den : NAN;
}

/* Frame of the filter's largest |value|, as a latency in ms (lag 1 = 10 ms), refined by the
 * parabola through the neighbours. temporal (history) in rf.h's lag order. */
static double filter_latency_ms(const float *temporal, int history)
{
    float a[4096];
    int h = history < 4096 ? history : 4096;
    for (int j = 0; j < h; j++) a[j] = fabsf(temporal[history - 1 - j]);   /* a[j]: lag j+1 */
    return (rc_pheno_peak(a, 0, h, NULL) + 1.0) * RC_PHENO_DT_MS;
}

/* ---------------------------------------------------------------------------------------- */
/* 5. contrast_fig: filter and static nonlinearity at contrasts 0.1 and 0.7                   */

static int ph_contrast_fig(ctx *c)
{
    /* contrast_fig(model, [0.1, 0.7]): per contrast the STA on white noise of that contrast,
     * rescaled by theta so that the linear response's sd equals the contrast
     * (normalize_filter; for a linear response theta = contrast / sd, no optimizer needed),
     * the rank-1 temporal filter of the rescaled STA / 0.01 s (s^-1, as the reference), and
     * the nonlinearity of the model's response against the linear response on a fresh noise
     * movie, by 40 equal-count bins (Binterp(40)). The reference shows unit 0 only; here every
     * cell, then the mean over cells. Numbers: the filter's peak latency and the
     * nonlinearity's gain (the slope within one sd of the mean) per contrast, the latency
     * shift and the gain ratio high / low of the mean gains (below 1: the gain falls at high
     * contrast; a ratio of means, since a cell that barely responds at 0.1 has a gain near
     * 0 whose per-cell ratio is meaningless). */
    static const double con[2] = {0.1, 0.7};
    static const char *const tag[2] = {"low", "high"};
    const rc_pheno_model *m = c->m;
    const int h = m->history, C = m->cells, NB = 40, N = 4000;
    const int64_t hw = (int64_t)m->H * m->W, win = (int64_t)h * hw, T = (int64_t)N + h;
    char k[64];
    if (!m->sta) {
        for (int i = 0; i < 2; i++) {
            snprintf(k, sizeof k, "%s_latency_ms", tag[i]); num(c, k, NAN);
            snprintf(k, sizeof k, "%s_gain", tag[i]); num(c, k, NAN);
        }
        num(c, "latency_shift_ms", NAN);
        num(c, "gain_ratio", NAN);
        param(c, "has_sta", 0);
        return 0;
    }
    float *sta = malloc((size_t)(C * win) * sizeof *sta), *tmp = malloc((size_t)C * h * sizeof *tmp);
    float *filt = malloc((size_t)2 * C * h * sizeof *filt), *fr = malloc((size_t)(T * hw) * sizeof *fr);
    float *y = malloc((size_t)N * C * sizeof *y), *x = malloc((size_t)N * C * sizeof *x);
    float *xs = malloc((size_t)N * sizeof *xs), *ys = malloc((size_t)N * sizeof *ys);
    float *nlx = malloc((size_t)2 * C * NB * sizeof *nlx), *nly = malloc((size_t)2 * C * NB * sizeof *nly);
    float *lat = malloc((size_t)2 * C * sizeof *lat), *gain = malloc((size_t)2 * C * sizeof *gain);
    int rc = -1;
    if (!sta || !tmp || !filt || !fr || !y || !x || !xs || !ys || !nlx || !nly || !lat || !gain) {
        rc_errf(c->err, c->errlen, "contrast_fig: out of memory");
        goto out;
    }
    for (int ci = 0; ci < 2; ci++) {
        if (sta_temporal(c, con[ci], sta, tmp) < 0) goto out;
        /* the noise movie (its own stream, not the STA's noise; the same draw scaled to each
         * contrast, so a linear model's gain ratio is exactly 1) and the model's response */
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < T * hw; i++)
            fr[i] = (float)con[ci] * rc_rng_normal(c->seed, 0x434e4c00u, (uint64_t)i);
        char e[400];
        e[0] = 0;
        if (m->predict(m->ctx, fr, T, y, e, sizeof e) < 0) {
            rc_errf(c->err, c->errlen, "contrast_fig: %s", e[0] ? e : "prediction failed");
            goto out;
        }
        /* the linear response of the full STA: x[i][n] = sum over lag and pixel of
         * sta[n] . window i (window i = frames i..i+h-1 predicts y[i]) */
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < C; n++)
            for (int i = 0; i < N; i++) {
                const float *s = sta + (int64_t)n * win, *w = fr + (int64_t)i * hw;
                float acc = 0;
                for (int64_t e2 = 0; e2 < win; e2++) acc += s[e2] * w[e2];
                x[(int64_t)i * C + n] = acc;
            }
        for (int n = 0; n < C; n++) {
            double sx = 0, sxx = 0;
            for (int i = 0; i < N; i++) { double v = x[(int64_t)i * C + n]; sx += v; sxx += v * v; }
            double mean = sx / N, var = sxx / N - mean * mean;
            double theta = var > 0 ? con[ci] / sqrt(var) : NAN;
            for (int i = 0; i < N; i++) {
                xs[i] = (float)(theta * x[(int64_t)i * C + n]);
                ys[i] = y[(int64_t)i * C + n];
            }
            int64_t o = ((int64_t)ci * C + n);
            double g = NAN;
            if (isfinite(theta)) {
                if (rc_pheno_nonlinearity(xs, ys, N, NB, nlx + o * NB, nly + o * NB, &g) < 0) {
                    rc_errf(c->err, c->errlen, "contrast_fig: out of memory");
                    goto out;
                }
            } else {
                for (int b = 0; b < NB; b++) nlx[o * NB + b] = nly[o * NB + b] = NAN;
            }
            gain[o] = (float)g;
            for (int j = 0; j < h; j++) filt[o * h + j] = (float)(theta * tmp[(int64_t)n * h + j] / (RC_PHENO_DT_MS * 1e-3));
            lat[o] = isfinite(theta) ? (float)filter_latency_ms(tmp + (int64_t)n * h, h) : NAN;
        }
    }
    double ml[2] = {0, 0}, mg[2] = {0, 0};
    int nl[2] = {0, 0}, ng[2] = {0, 0};
    for (int ci = 0; ci < 2; ci++)
        for (int n = 0; n < C; n++) {
            float l = lat[ci * C + n], g = gain[ci * C + n];
            if (isfinite(l)) { ml[ci] += l; nl[ci]++; }
            if (isfinite(g)) { mg[ci] += g; ng[ci]++; }
        }
    for (int ci = 0; ci < 2; ci++) {
        ml[ci] = nl[ci] ? ml[ci] / nl[ci] : NAN;
        mg[ci] = ng[ci] ? mg[ci] / ng[ci] : NAN;
        snprintf(k, sizeof k, "%s_latency_ms", tag[ci]); num(c, k, ml[ci]);
        snprintf(k, sizeof k, "%s_gain", tag[ci]); num(c, k, mg[ci]);
    }
    num(c, "latency_shift_ms", ml[1] - ml[0]);
    num(c, "gain_ratio", ratio(mg[1], mg[0]));
    param(c, "has_sta", 1);
    param(c, "contrast_low", con[0]); param(c, "contrast_high", con[1]);
    param(c, "sta_samples", (double)(m->sta_samples > 0 ? m->sta_samples : RC_PHENO_STA_SAMPLES));
    param(c, "nonlinearity_windows", N); param(c, "bins", NB);
    char desc[160];
    snprintf(desc, sizeof desc, "(contrast 0.1/0.7, cells, history) rank-1 temporal filter of the rescaled %s / 0.01 s (s^-1); last = lag 1", sta_kind(c));
    trace(c, "filter_cells", 3, 2, C, h, filt, desc);
    trace(c, "nl_x_cells", 3, 2, C, NB, nlx, "(contrast 0.1/0.7, cells, 40 equal-count bins) mean linear response (z-units) per bin");
    trace(c, "nl_y_cells", 3, 2, C, NB, nly, "(contrast 0.1/0.7, cells, 40 bins) mean model response per bin");
    trace(c, "latency_ms_cells", 2, 2, C, 0, lat, "(contrast 0.1/0.7, cells) peak latency of |filter|");
    trace(c, "gain_cells", 2, 2, C, 0, gain, "(contrast 0.1/0.7, cells) slope of the nonlinearity within 1 sd of the mean");
    rc = 0;
out:
    free(sta); free(tmp); free(filt); free(fr); free(y); free(x); free(xs); free(ys);
    free(nlx); free(nly); free(lat); free(gain);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* 10. fast_contrast_adaptation: the temporal filter's spectral centre of mass vs contrast     */

static int ph_fast_contrast(ctx *c)
{
    /* generate_data(model, 0.5, 2.0, 4): contrasts linspace(0.5, 2, 4); per contrast and cell
     * the STA on white noise, its rank-1 temporal filter, signfix (flip when the mean of the
     * 15 most recent lags is positive: the reference's tau[25:]; it does not change the
     * spectrum), the power spectrum's centre of mass over 0..15 Hz (rc_pheno_com_hz). The
     * reference draws 200 frames (160 windows) per contrast, separately, for 5 hard-coded
     * cells; here every cell, sta_samples windows (default 256), and the same noise draw
     * scaled to each contrast (common random numbers: the slope is not blurred by four
     * independent noise draws). Slope: least squares of the mean CoM over cells vs contrast
     * (np.polyfit(c, mean, 1)); positive: faster filters at higher contrast. */
    enum { NC = 4, K = 7 };
    static const char *const key[NC] = {"com_hz_0p5", "com_hz_1p0", "com_hz_1p5", "com_hz_2p0"};
    const rc_pheno_model *m = c->m;
    const int h = m->history, C = m->cells;
    const int64_t win = (int64_t)h * m->H * m->W;
    double con[NC];
    for (int i = 0; i < NC; i++) con[i] = 0.5 + 1.5 * i / (NC - 1);
    if (!m->sta) {
        for (int i = 0; i < NC; i++) num(c, key[i], NAN);
        num(c, "slope_hz_per_unit", NAN);
        param(c, "has_sta", 0);
        return 0;
    }
    float *sta = malloc((size_t)(C * win) * sizeof *sta), *tau = malloc((size_t)NC * C * h * sizeof *tau);
    float *pw = malloc((size_t)NC * C * K * sizeof *pw), *com = malloc((size_t)NC * C * sizeof *com);
    float *cref = malloc((size_t)NC * C * sizeof *cref), *slc = malloc((size_t)C * sizeof *slc);
    float *cf = malloc((size_t)NC * sizeof *cf);
    int rc = -1;
    if (!sta || !tau || !pw || !com || !cref || !slc || !cf) {
        rc_errf(c->err, c->errlen, "fast_contrast_adaptation: out of memory");
        goto out;
    }
    double mean[NC], xs[NC];
    for (int ci = 0; ci < NC; ci++) {
        float *t = tau + (int64_t)ci * C * h;
        if (sta_temporal(c, con[ci], sta, t) < 0) goto out;
        double s = 0;
        int ns = 0;
        for (int n = 0; n < C; n++) {
            float *tn = t + (int64_t)n * h;
            double rec = 0;
            int nr = 0;
            for (int j = h - 15 > 0 ? h - 15 : 0; j < h; j++) { rec += tn[j]; nr++; }
            if (nr && rec / nr > 0)
                for (int j = 0; j < h; j++) tn[j] = -tn[j];
            int64_t o = (int64_t)ci * C + n;
            com[o] = (float)rc_pheno_com_hz(tn, h, pw + o * K);
            double r = 0;
            for (int k = 0; k < K; k++) r += pw[o * K + k] * k * 2.5;
            cref[o] = isfinite(com[o]) ? (float)r : NAN;
            if (isfinite(com[o])) { s += com[o]; ns++; }
        }
        mean[ci] = ns ? s / ns : NAN;
        xs[ci] = con[ci];
        cf[ci] = (float)con[ci];
        num(c, key[ci], mean[ci]);
    }
    num(c, "slope_hz_per_unit", ls_slope(xs, mean, NC));
    for (int n = 0; n < C; n++) {
        double yc[NC];
        for (int ci = 0; ci < NC; ci++) yc[ci] = com[ci * C + n];
        slc[n] = (float)ls_slope(xs, yc, NC);
    }
    param(c, "has_sta", 1);
    param(c, "contrast_min", 0.5); param(c, "contrast_max", 2.0); param(c, "contrasts", NC);
    param(c, "sta_samples", (double)(m->sta_samples > 0 ? m->sta_samples : RC_PHENO_STA_SAMPLES));
    param(c, "bin_hz", 2.5); param(c, "bins", K);
    char desc[160];
    trace(c, "contrast", 1, NC, 0, 0, cf, "noise contrasts (sd, z-units), linspace(0.5, 2, 4)");
    snprintf(desc, sizeof desc, "(contrast, cells, history) rank-1 temporal filter of the %s, signfixed; last = lag 1", sta_kind(c));
    trace(c, "temporal_cells", 3, NC, C, h, tau, desc);
    trace(c, "power_cells", 3, NC, C, K, pw, "(contrast, cells, 7 bins 0..15 Hz) power / its maximum (npower)");
    trace(c, "com_hz_cells", 2, NC, C, 0, com, "(contrast, cells) centre of mass of the power over 0..15 Hz");
    trace(c, "com_ref_cells", 2, NC, C, 0, cref, "(contrast, cells) the reference's sum(f * power/max) over 0..15 Hz (Hz)");
    trace(c, "slope_cells", 1, C, 0, 0, slc, "per cell least-squares slope of the CoM vs contrast (Hz per unit)");
    rc = 0;
out:
    free(sta); free(tau); free(pw); free(com); free(cref); free(slc); free(cf);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The battery                                                                                */

typedef int (*ph_fn)(ctx *);
static const ph_fn PH_FN[] = {
    ph_step, ph_osr, ph_reversing, ph_contrast, ph_contrast_fig, ph_motion_reversal,
    ph_anticipation, ph_oms, ph_f2, ph_fast_contrast, ph_latency,
};

/* Whether name is in the comma-separated list (NULL/"" = everything). */
static int in_list(const char *only, const char *name)
{
    if (!only || !*only) return 1;
    size_t L = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == L && !strncmp(p, name, L)) return 1;
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

int rc_pheno_check_only(const char *only, char *err, size_t errlen)
{
    if (!only) return 0;
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int ok = 0;
        for (int i = 0; i < rc_pheno_count && !ok; i++)
            ok = strlen(rc_pheno_names[i]) == n && !strncmp(p, rc_pheno_names[i], n);
        if (!ok) {
            char names[600] = "";
            for (int i = 0; i < rc_pheno_count; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "", rc_pheno_names[i]);
            return rc_errf(err, errlen, "unknown phenomenon '%.*s' (known: %s)", (int)n, p, names);
        }
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

int rc_pheno_run(const rc_pheno_model *m, const char *only, rc_pheno_out *out, char *err,
                 size_t errlen)
{
    if (rc_pheno_check_only(only, err, errlen) < 0) return -1;
    if (!m->predict || m->history < 1 || m->H < 8 || m->W < 8 || m->cells < 1)
        return rc_errf(err, errlen, "phenomena: bad model (history %d, %dx%d, %d cells; frames must be at least 8x8)",
                       m->history, m->H, m->W, m->cells);
    if (m->W > 4096) return rc_errf(err, errlen, "phenomena: frame width %d above 4096", m->W);
    int total = 0, done = 0;
    for (int i = 0; i < rc_pheno_count; i++) total += in_list(only, rc_pheno_names[i]);
    const char *stage = m->label ? m->label : "phenomena";
    rc_progress_report(&m->progress, stage, 0, total);
    for (int i = 0; i < rc_pheno_count; i++) {
        if (!in_list(only, rc_pheno_names[i])) continue;
        ctx c = {.m = m, .o = out, .name = rc_pheno_names[i], .seed = m->seed ? m->seed : 1,
                 .err = err, .errlen = errlen};
        if (PH_FN[i](&c) < 0) return -1;
        if (c.oom) return rc_errf(err, errlen, "%s: out of memory for the results", c.name);
        rc_progress_report(&m->progress, stage, ++done, total);
    }
    return 0;
}
