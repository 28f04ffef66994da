/* rf.c — receptive fields of a trained model: gradient STA and reverse-correlation STA on
 * seeded white noise, their rank-1 split, summaries and split-half reliability (see rf.h).
 *
 * Invariants: the noise is a pure function of (seed, frame, pixel) (rc_rng, stream RF_STREAM),
 * so a result is a pure function of (checkpoint, options) up to the floating-point order of
 * the backends. Windows are taken in batches of o->batch consecutive windows; batch k's
 * frames are regenerated for it (history-1 frames overlap the previous batch), so memory is
 * one batch of frames whatever the sample count. Even batches feed half 0, odd ones half 1.
 */
#include "rf.h"

#include <fftw3.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "ref.h"
#include "clock.h"
#include "errbuf.h"
#include "fftconv.h"
#include "fsutil.h"
#include "h5util.h"
#include "model.h"
#include "rng.h"
#include "train.h"

#define RF_STREAM 0x5246u   /* "RF": the white-noise stream */

void rc_rf_opts_default(rc_rf_opts *o)
{
    memset(o, 0, sizeof *o);
    o->samples = 2048;
    o->contrast = 1.0;
    o->seed = 1;
    o->grad = 1;
    o->revcor = 0;     /* opt-in: it needs ~10x the windows for the same noise */
    o->batch = 256;
    o->fft = 1;
}

void rc_rf_free(rc_rf_result *r)
{
    if (!r) return;
    free(r->grad); free(r->revcor);
    free(r->grad_spatial); free(r->grad_temporal);
    free(r->revcor_spatial); free(r->revcor_temporal);
    free(r->grad_cell); free(r->revcor_cell);
    memset(r, 0, sizeof *r);
}

/* frames (n, hw): frames t0 .. t0+n-1 of the noise stream. */
static void noise_frames(uint64_t seed, double contrast, int64_t t0, int64_t n, int64_t hw,
                         float *frames)
{
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; t++)
        for (int64_t p = 0; p < hw; p++)
            frames[t * hw + p] = (float)contrast *
                                 rc_rng_normal(seed, RF_STREAM, (uint64_t)((t0 + t) * hw + p));
}

/* Pearson r of two vectors (0 when either is constant). */
static double vec_r(const double *a, const double *b, int64_t n)
{
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
    ma /= (double)n; mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i] - ma, y = b[i] - mb;
        sab += x * y; saa += x * x; sbb += y * y;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
}

int rc_rf_summarize(const float *sta, int history, int h, int w, float *spatial, float *temporal,
                    rc_rf_cell *c)
{
    int64_t hw = (int64_t)h * w;
    memset(c, 0, sizeof *c);
    double *G = calloc((size_t)history * history, sizeof *G);
    double *u = malloc((size_t)history * sizeof *u), *v = malloc((size_t)history * sizeof *v);
    double *sp = calloc((size_t)hw, sizeof *sp);
    if (!G || !u || !v || !sp) { free(G); free(u); free(v); free(sp); return -1; }
    for (int a = 0; a < history; a++)               /* Gram matrix of the rows (lags) */
        for (int b = a; b < history; b++) {
            double s = 0;
            for (int64_t p = 0; p < hw; p++) s += (double)sta[a * hw + p] * sta[b * hw + p];
            G[a * history + b] = G[b * history + a] = s;
        }
    double tr = 0;
    for (int a = 0; a < history; a++) { tr += G[a * history + a]; u[a] = 1.0 + 0.01 * a; }
    double lam = 0;
    for (int it = 0; it < 500 && tr > 0; it++) {    /* power iteration: top eigenvector of G */
        double nrm = 0;
        for (int a = 0; a < history; a++) {
            double s = 0;
            for (int b = 0; b < history; b++) s += G[a * history + b] * u[b];
            v[a] = s;
            nrm += s * s;
        }
        nrm = sqrt(nrm);
        if (nrm == 0) break;
        double diff = 0;
        for (int a = 0; a < history; a++) { double x = v[a] / nrm; diff += fabs(x - u[a]); u[a] = x; }
        lam = nrm;
        if (diff < 1e-12 * history) break;
    }
    double sv = sqrt(lam);
    c->rank1 = tr > 0 ? lam / tr : 0;
    /* spatial = M^T u / s (unit norm), temporal = s u */
    int64_t pk = 0;
    for (int64_t p = 0; p < hw; p++) {
        double s = 0;
        for (int a = 0; a < history; a++) s += u[a] * sta[a * hw + p];
        sp[p] = sv > 0 ? s / sv : 0;
        if (fabs(sp[p]) > fabs(sp[pk])) pk = p;
    }
    double sign = sp[pk] < 0 ? -1.0 : 1.0;          /* spatial peak positive */
    for (int64_t p = 0; p < hw; p++) { sp[p] *= sign; spatial[p] = (float)sp[p]; }
    int tk = 0;
    for (int a = 0; a < history; a++) {
        temporal[a] = (float)(sign * sv * u[a]);
        if (fabs(temporal[a]) > fabs(temporal[tk])) tk = a;
    }
    c->polarity = temporal[tk] >= 0 ? 1 : -1;
    c->peak_lag = history - tk;
    c->peak_row = (int)(pk / w);
    c->peak_col = (int)(pk % w);
    /* The blob around the peak: the 4-connected pixels above 20% of the peak that reach it
     * (a flood fill), so that noise or a second, separate hot spot elsewhere in the frame
     * does not pull the centre towards the middle. */
    double peak = sp[pk], thr = 0.2 * peak, sw = 0, sr = 0, sc = 0;
    int64_t *stack = malloc((size_t)hw * sizeof *stack);
    unsigned char *in = calloc((size_t)hw, 1);
    if (!stack || !in) { free(stack); free(in); free(G); free(u); free(v); free(sp); return -1; }
    int64_t top = 0;
    stack[top++] = pk;
    in[pk] = 1;
    while (top > 0) {
        int64_t p = stack[--top];
        int r = (int)(p / w), q = (int)(p % w);
        double wt = sp[p] - thr;
        sw += wt; sr += wt * r; sc += wt * q;
        const int nb[4][2] = {{r - 1, q}, {r + 1, q}, {r, q - 1}, {r, q + 1}};
        for (int k = 0; k < 4; k++) {
            if (nb[k][0] < 0 || nb[k][0] >= h || nb[k][1] < 0 || nb[k][1] >= w) continue;
            int64_t e = (int64_t)nb[k][0] * w + nb[k][1];
            if (!in[e] && sp[e] > thr) { in[e] = 1; stack[top++] = e; }
        }
    }
    if (sw > 0) {
        c->row = sr / sw;
        c->col = sc / sw;
        double s2 = 0;
        for (int64_t p = 0; p < hw; p++) {
            if (!in[p]) continue;
            double wt = sp[p] - thr, dr = (double)(p / w) - c->row, dc = (double)(p % w) - c->col;
            s2 += wt * (dr * dr + dc * dc);
        }
        c->sigma = sqrt(s2 / sw);
    }
    free(stack);
    free(in);
    free(G); free(u); free(v); free(sp);
    return 0;
}

/* Layer 1's output by FFT where that is exact: a plain (untiled) conv, or a stacked one through
 * its collapsed kernel (eval mode). NULL plan otherwise (the reference computes it). */
typedef struct {
    rc_fftconv *plan;
    float *weight, *spectra;   /* (Cout, C, K, K), spectra of one batch of frames */
    const float *bias;         /* (Cout) or NULL */
} rf_fft;

static int rf_fft_open(const rc_checkpoint *ck, int batch, rf_fft *f, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    const rc_layer *L = &ir->layers[0];
    memset(f, 0, sizeof *f);
    if (L->kind != RC_LAYER_CONV || L->period > 1) return 0;
    size_t wn = (size_t)L->out.c * L->in.c * L->kernel * L->kernel;
    if (!(f->weight = malloc(wn * sizeof *f->weight))) return rc_errf(err, errlen, "out of memory");
    if (L->stack > 0) {
        if (rc_stack_collapse(ir, 0, ck->params, f->weight, err, errlen) < 0) return -1;
    } else {
        const rc_param *w = rc_ir_find_param(ir, "1.conv.weight");
        if (!w || (size_t)w->count != wn)
            return rc_errf(err, errlen, "%s: layer 1 (conv): no weight of %zu floats", ir->name, wn);
        memcpy(f->weight, ck->params + w->offset, wn * sizeof *f->weight);
    }
    const rc_param *b = rc_ir_find_param(ir, "1.conv.bias");
    f->bias = L->bias && b ? ck->params + b->offset : NULL;
    if (rc_fftconv_create(L->in.c, L->in.h, L->in.w, L->out.c, L->kernel, 0, &f->plan, err, errlen) < 0)
        return -1;
    int64_t T = (int64_t)batch + ir->history - 1;
    if (!(f->spectra = malloc(rc_fftconv_spectra_floats(f->plan, T) * sizeof *f->spectra)))
        return rc_errf(err, errlen, "out of memory for %lld frame spectra", (long long)T);
    return 0;
}

static void rf_fft_close(rf_fft *f)
{
    rc_fftconv_destroy(f->plan);
    free(f->weight);
    free(f->spectra);
    memset(f, 0, sizeof *f);
}

/* The plain convs after layer 1, forward and input gradient, by FFT (rc_ref_set_conv_fast):
 * the eval-mode backward of layer 2 (Cout*Ho*Wo*Cin*K*K MACs per window and cell) and its
 * forward are most of a gradient STA in the reference's loops. With H x W transforms of the
 * layer's input size both are exact (fp32: ~1e-6 relative to the double loops; tested):
 *   forward, valid cross-correlation: y^[o] = sum_c x^[c] . conj(w^[o,c]); a circular
 *     correlation wraps only into outputs i >= Ho, which are cropped;
 *   adjoint, full convolution of size Ho+K-1 = H: dx^[c] = sum_o dy^[o] . w^[o,c], with dy
 *     zero-padded at the origin: no wrap-around. */
typedef struct {
    int ok, Cin, Cout, H, W, Ho, Wo, nb;
    const float *wsrc;             /* the weights the spectra were made from */
    fftwf_complex *wspec;          /* (Cout, Cin, nb) kernel spectra, / (H W) */
    fftwf_plan fwd, inv;           /* one H x W plane, new-array execution */
} rf_adj_layer;

typedef struct {
    rf_adj_layer L[RC_MAX_LAYERS];
} rf_adj;

static void rf_adj_close(rf_adj *a)
{
    rc_fftw_planner_lock();
    for (int i = 0; i < RC_MAX_LAYERS; i++) {
        if (a->L[i].fwd) fftwf_destroy_plan(a->L[i].fwd);
        if (a->L[i].inv) fftwf_destroy_plan(a->L[i].inv);
        fftwf_free(a->L[i].wspec);
    }
    rc_fftw_planner_unlock();
    memset(a, 0, sizeof *a);
}

/* Prepare every plain conv layer i > 0; a layer that cannot be prepared keeps ok = 0 and
 * takes the reference's loops. */
static void rf_adj_open(const rc_checkpoint *ck, rf_adj *a)
{
    const rc_ir *ir = ck->ir;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        if (L->kind != RC_LAYER_CONV || L->stack > 0 || L->period > 1) continue;
        char wn[32];
        snprintf(wn, sizeof wn, "%d.conv.weight", i + 1);
        const rc_param *w = rc_ir_find_param(ir, wn);
        rf_adj_layer *l = &a->L[i];
        l->Cin = L->in.c; l->Cout = L->out.c; l->H = L->in.h; l->W = L->in.w;
        l->Ho = L->out.h; l->Wo = L->out.w; l->nb = l->H * (l->W / 2 + 1);
        const int K = L->kernel;
        if (!w || w->count != (int64_t)l->Cout * l->Cin * K * K) continue;
        float *r = fftwf_malloc((size_t)l->H * l->W * sizeof *r);
        l->wspec = fftwf_malloc((size_t)l->Cout * l->Cin * l->nb * sizeof *l->wspec);
        if (!r || !l->wspec) { fftwf_free(r); continue; }
        rc_fftw_planner_lock();
        l->fwd = fftwf_plan_dft_r2c_2d(l->H, l->W, r, l->wspec, FFTW_ESTIMATE | FFTW_UNALIGNED);
        l->inv = fftwf_plan_dft_c2r_2d(l->H, l->W, l->wspec, r, FFTW_ESTIMATE | FFTW_UNALIGNED);
        rc_fftw_planner_unlock();
        if (!l->fwd || !l->inv) { fftwf_free(r); continue; }
        const float *W = ck->params + w->offset;
        const float scale = 1.0f / (float)(l->H * l->W);
        for (int o = 0; o < l->Cout; o++)
            for (int c = 0; c < l->Cin; c++) {
                memset(r, 0, (size_t)l->H * l->W * sizeof *r);
                for (int u = 0; u < K; u++)
                    for (int v = 0; v < K; v++)
                        r[u * l->W + v] = W[((size_t)(o * l->Cin + c) * K + u) * K + v] * scale;
                fftwf_execute_dft_r2c(l->fwd, r, l->wspec + (size_t)(o * l->Cin + c) * l->nb);
            }
        fftwf_free(r);
        l->wsrc = W;
        l->ok = 1;
    }
}

static int rf_adj_fwd(void *ctx, int layer, int B, const float *weight, const float *bias,
                      const float *x, float *y)
{
    const rf_adj_layer *l = &((const rf_adj *)ctx)->L[layer];
    if (!l->ok || weight != l->wsrc) return -1;
    const int nt = omp_get_max_threads(), P = l->H * l->W;
    const size_t per = (size_t)P * 2 + (size_t)(l->Cin + 1) * l->nb * 2;   /* floats */
    float *buf = fftwf_malloc((size_t)nt * per * sizeof *buf);
    if (!buf) return -1;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *r = buf + (size_t)omp_get_thread_num() * per;
        fftwf_complex *X = (fftwf_complex *)(r + 2 * (size_t)P), *acc = X + (size_t)l->Cin * l->nb;
        for (int c = 0; c < l->Cin; c++) {
            memcpy(r, x + ((size_t)b * l->Cin + c) * P, (size_t)P * sizeof *r);
            fftwf_execute_dft_r2c(l->fwd, r, X + (size_t)c * l->nb);
        }
        for (int o = 0; o < l->Cout; o++) {
            memset(acc, 0, (size_t)l->nb * sizeof *acc);
            for (int c = 0; c < l->Cin; c++) {
                const fftwf_complex *xs = X + (size_t)c * l->nb, *ws = l->wspec + (size_t)(o * l->Cin + c) * l->nb;
                for (int k = 0; k < l->nb; k++) {          /* x^ . conj(w^) */
                    acc[k][0] += xs[k][0] * ws[k][0] + xs[k][1] * ws[k][1];
                    acc[k][1] += xs[k][1] * ws[k][0] - xs[k][0] * ws[k][1];
                }
            }
            fftwf_execute_dft_c2r(l->inv, acc, r);
            float *yo = y + ((size_t)b * l->Cout + o) * l->Ho * l->Wo, bo = bias ? bias[o] : 0.0f;
            for (int i = 0; i < l->Ho; i++)
                for (int j = 0; j < l->Wo; j++) yo[(size_t)i * l->Wo + j] = r[(size_t)i * l->W + j] + bo;
        }
    }
    fftwf_free(buf);
    return 0;
}

static int rf_adj_run(void *ctx, int layer, int B, const float *weight, const float *dy, float *dx)
{
    const rf_adj_layer *l = &((const rf_adj *)ctx)->L[layer];
    if (!l->ok || weight != l->wsrc) return -1;
    const int nt = omp_get_max_threads(), P = l->H * l->W;
    const size_t per = (size_t)P * 2 + (size_t)(l->Cout + 1) * l->nb * 2;   /* floats */
    float *buf = fftwf_malloc((size_t)nt * per * sizeof *buf);
    if (!buf) return -1;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *r = buf + (size_t)omp_get_thread_num() * per;
        fftwf_complex *G = (fftwf_complex *)(r + 2 * (size_t)P), *acc = G + (size_t)l->Cout * l->nb;
        for (int o = 0; o < l->Cout; o++) {
            memset(r, 0, (size_t)P * sizeof *r);
            const float *g = dy + ((size_t)b * l->Cout + o) * l->Ho * l->Wo;
            for (int i = 0; i < l->Ho; i++) memcpy(r + (size_t)i * l->W, g + (size_t)i * l->Wo, (size_t)l->Wo * sizeof *r);
            fftwf_execute_dft_r2c(l->fwd, r, G + (size_t)o * l->nb);
        }
        for (int c = 0; c < l->Cin; c++) {
            memset(acc, 0, (size_t)l->nb * sizeof *acc);
            for (int o = 0; o < l->Cout; o++) {
                const fftwf_complex *gs = G + (size_t)o * l->nb, *ws = l->wspec + (size_t)(o * l->Cin + c) * l->nb;
                for (int k = 0; k < l->nb; k++) {
                    acc[k][0] += gs[k][0] * ws[k][0] - gs[k][1] * ws[k][1];
                    acc[k][1] += gs[k][0] * ws[k][1] + gs[k][1] * ws[k][0];
                }
            }
            fftwf_execute_dft_c2r(l->inv, acc, r);    /* overwrites acc: rebuilt per c */
            memcpy(dx + ((size_t)b * l->Cin + c) * P, r, (size_t)P * sizeof *r);
        }
    }
    fftwf_free(buf);
    return 0;
}

/* Accumulators of one estimate: two halves of (cells, history*hw) sums in double. */
/* ---------------------------------------------------------------- the evaluator */

struct rc_rf_eval {
    const rc_checkpoint *ck;
    int batch;
    rc_backend *be;
    rf_fft fft;
    rf_adj *adj;
    float *ws, *x0, *y;   /* ref workspace (ws_floats(batch)), layer 1's output (batch, out), (batch, cells) */
    int last_B;
};

void rc_rf_eval_close(rc_rf_eval *ev)
{
    if (!ev) return;
    rf_fft_close(&ev->fft);
    rc_backend_destroy(ev->be);
    if (ev->adj) { rf_adj_close(ev->adj); free(ev->adj); }
    free(ev->ws); free(ev->x0); free(ev->y);
    free(ev);
}

int rc_rf_eval_open(const rc_checkpoint *ck, int batch, int fft, rc_rf_eval **out, char *err, size_t errlen)
{
    *out = NULL;
    const rc_ir *ir = ck->ir;
    rc_rf_eval *ev = calloc(1, sizeof *ev);
    if (!ev) return rc_errf(err, errlen, "out of memory");
    ev->ck = ck;
    ev->batch = batch;
    if (rc_backend_open(ir, "ref", "cpu", &ev->be, err, errlen) < 0) {   /* the analysis calls are ref.h's */
        free(ev);
        return -1;
    }
    if (fft && rf_fft_open(ck, batch, &ev->fft, err, errlen) < 0) { rc_rf_eval_close(ev); return -1; }
    if (fft && (ev->adj = malloc(sizeof *ev->adj)) != NULL) {
        rf_adj_open(ck, ev->adj);
        rc_ref_set_conv_fast(ev->be, rf_adj_fwd, rf_adj_run, ev->adj);
    }
    ev->ws = malloc(ev->be->ws_floats(ev->be, batch) * sizeof *ev->ws);
    ev->y = malloc((size_t)batch * ck->cells * sizeof *ev->y);
    if (ev->fft.plan) {
        const rc_layer *L = &ir->layers[0];
        ev->x0 = malloc((size_t)batch * L->out.c * L->out.h * L->out.w * sizeof *ev->x0);
    }
    if (!ev->ws || !ev->y || (ev->fft.plan && !ev->x0)) {
        rc_rf_eval_close(ev);
        return rc_errf(err, errlen, "out of memory for a batch of %d windows", batch);
    }
    *out = ev;
    return 0;
}

int rc_rf_eval_forward(rc_rf_eval *ev, const float *frames, int64_t T, const int64_t *starts, int B,
                       float *y, char *err, size_t errlen)
{
    const rc_checkpoint *ck = ev->ck;
    if (B < 1 || B > ev->batch) return rc_errf(err, errlen, "eval: batch %d outside 1..%d", B, ev->batch);
    if (ev->fft.plan &&
        (rc_fftconv_spectra(ev->fft.plan, frames, T, ev->fft.spectra) < 0 ||
         rc_fftconv_forward(ev->fft.plan, ev->fft.spectra, T, starts, B, ev->fft.weight, ev->fft.bias, ev->x0) < 0))
        return rc_errf(err, errlen, "%s", rc_fftconv_error(ev->fft.plan));
    if (rc_ref_eval_forward(ev->be, B, ck->params, ck->state, ck->cell_pos, frames, starts,
                            ev->fft.plan ? ev->x0 : NULL, y ? y : ev->y, ev->ws) < 0)
        return rc_errf(err, errlen, "%s", ev->be->err);
    ev->last_B = B;
    return 0;
}

const float *rc_rf_eval_output(const rc_rf_eval *ev, int layer)
{
    return ev->last_B ? rc_ref_eval_output(ev->be, ev->last_B, ev->ws, layer) : NULL;
}

int rc_rf_eval_grad(rc_rf_eval *ev, const float *frames, const int64_t *starts, const float *dy, float *dx,
                    char *err, size_t errlen)
{
    const rc_checkpoint *ck = ev->ck;
    if (!ev->last_B) return rc_errf(err, errlen, "eval: gradient before a forward");
    if (rc_ref_eval_grad(ev->be, ev->last_B, ck->params, ck->cell_pos, frames, starts, dy, dx, ev->ws) < 0)
        return rc_errf(err, errlen, "%s", ev->be->err);
    return 0;
}

typedef struct {
    double *s[2];
    int64_t n[2];
} rf_acc;

static int acc_alloc(rf_acc *a, size_t n)
{
    memset(a, 0, sizeof *a);
    a->s[0] = calloc(n, sizeof(double));
    a->s[1] = calloc(n, sizeof(double));
    return a->s[0] && a->s[1] ? 0 : -1;
}

static void acc_free(rf_acc *a) { free(a->s[0]); free(a->s[1]); }

/* Gradient STA sums: for every batch, eval forward once, then one eval backward per cell. */
static int run_grad(const rc_checkpoint *ck, const rc_rf_opts *o, rf_acc *acc, char *err,
                    size_t errlen)
{
    const rc_ir *ir = ck->ir;
    const int C = ir->history, cells = ck->cells, Bmax = o->batch;
    const int64_t hw = (int64_t)ir->in.h * ir->in.w, win = (int64_t)C * hw;
    rc_rf_eval *ev = NULL;
    float *frames = NULL, *dy = NULL, *dx = NULL;
    int64_t *starts = NULL;
    int rc = -1;
    if (rc_rf_eval_open(ck, Bmax, o->fft, &ev, err, errlen) < 0) goto out;
    frames = malloc((size_t)(Bmax + C - 1) * hw * sizeof *frames);
    dy = malloc((size_t)Bmax * cells * sizeof *dy);
    dx = malloc((size_t)win * sizeof *dx);
    starts = malloc((size_t)Bmax * sizeof *starts);
    if (!frames || !dy || !dx || !starts) {
        rc_errf(err, errlen, "out of memory for a batch of %d windows", Bmax);
        goto out;
    }
    for (int b = 0; b < Bmax; b++) starts[b] = b;
    int64_t k = 0;
    rc_progress_report(&o->progress, "gradient STA", 0, o->samples);
    for (int64_t s0 = 0; s0 < o->samples; s0 += Bmax, k++) {
        int B = (int)(o->samples - s0 < Bmax ? o->samples - s0 : Bmax);
        int64_t T = (int64_t)B + C - 1;
        if (k) rc_progress_report(&o->progress, "gradient STA", s0, o->samples);
        noise_frames(o->seed, o->contrast, s0, T, hw, frames);
        if (rc_rf_eval_forward(ev, frames, T, starts, B, NULL, err, errlen) < 0) goto out;
        int half = (int)(k & 1);
        for (int n = 0; n < cells; n++) {
            memset(dy, 0, (size_t)B * cells * sizeof *dy);
            for (int b = 0; b < B; b++) dy[(size_t)b * cells + n] = 1.0f;
            memset(dx, 0, (size_t)win * sizeof *dx);
            if (rc_rf_eval_grad(ev, frames, starts, dy, dx, err, errlen) < 0) goto out;
            double *s = acc->s[half] + (size_t)n * win;
            for (int64_t e = 0; e < win; e++) s[e] += dx[e];
        }
        acc->n[half] += B;
    }
    rc_progress_report(&o->progress, "gradient STA", o->samples, o->samples);
    rc = 0;
out:
    rc_rf_eval_close(ev);
    free(frames); free(dy); free(dx); free(starts);
    return rc;
}

/* Reverse-correlation sums: s[half][n] = sum_b y[b,n] * window_b, plus the response sums
 * (sy, syy per half and cell) and the window sums sx[half] (history*hw) for the centring. */
static int run_revcor(const rc_checkpoint *ck, const rc_rf_opts *o, rf_acc *acc, double *sy,
                      double *syy, double *sx, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    const int C = ir->history, cells = ck->cells, Bmax = o->batch;
    const int64_t hw = (int64_t)ir->in.h * ir->in.w, win = (int64_t)C * hw;
    rc_backend *be = NULL;
    float *frames = malloc((size_t)(Bmax + C - 1) * hw * sizeof *frames);
    float *y = malloc((size_t)Bmax * cells * sizeof *y);
    int rc = -1;
    if (!frames || !y) { rc_errf(err, errlen, "out of memory for a batch of %d windows", Bmax); goto out; }
    /* o->backend NULL: the generated C, else the reference (rc_backend_open's automatic choice) */
    if (rc_backend_open(ir, o->backend, "cpu", &be, err, errlen) < 0) goto out;
    int64_t k = 0;
    rc_progress_report(&o->progress, "reverse correlation", 0, o->samples);
    for (int64_t s0 = 0; s0 < o->samples; s0 += Bmax, k++) {
        int B = (int)(o->samples - s0 < Bmax ? o->samples - s0 : Bmax);
        int64_t T = (int64_t)B + C - 1;
        int half = (int)(k & 1);
        if (k) rc_progress_report(&o->progress, "reverse correlation", s0, o->samples);
        noise_frames(o->seed, o->contrast, s0, T, hw, frames);
        if (rc_predict_frames(be, ck, frames, T, y, err, errlen) < 0) goto out;
        for (int n = 0; n < cells; n++)
            for (int b = 0; b < B; b++) {
                double v = y[(size_t)b * cells + n];
                sy[half * cells + n] += v;
                syy[half * cells + n] += v * v;
            }
        /* s[n][c][p] += sum_b y[b,n] * frames[b + c][p]: a float partial per batch, then double */
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n <= cells; n++)          /* n == cells: the window sums sx */
            for (int c = 0; c < C; c++) {
                float part[4096];
                for (int64_t p0 = 0; p0 < hw; p0 += 4096) {
                    int64_t np = hw - p0 < 4096 ? hw - p0 : 4096;
                    memset(part, 0, (size_t)np * sizeof *part);
                    for (int b = 0; b < B; b++) {
                        float a = n < cells ? y[(size_t)b * cells + n] : 1.0f;
                        const float *fr = frames + (size_t)(b + c) * hw + p0;
                        for (int64_t p = 0; p < np; p++) part[p] += a * fr[p];
                    }
                    double *dst = n < cells ? acc->s[half] + (size_t)n * win + (size_t)c * hw + p0
                                            : sx + (size_t)half * win + (size_t)c * hw + p0;
                    for (int64_t p = 0; p < np; p++) dst[p] += part[p];
                }
            }
        acc->n[half] += B;
    }
    rc_progress_report(&o->progress, "reverse correlation", o->samples, o->samples);
    rc = 0;
out:
    rc_backend_destroy(be);
    free(frames);
    free(y);
    return rc;
}

/* STA from one or both halves (h = 0, 1, or 2 = both) into out (win) as double. */
static void grad_sta(const rf_acc *a, int n, int64_t win, int h, double *out)
{
    int64_t cnt = h == 2 ? a->n[0] + a->n[1] : a->n[h];
    for (int64_t e = 0; e < win; e++) {
        double s = h == 2 ? a->s[0][(size_t)n * win + e] + a->s[1][(size_t)n * win + e]
                          : a->s[h][(size_t)n * win + e];
        out[e] = cnt > 0 ? s / (double)cnt : 0.0;
    }
}

/* revcor STA = sum_b z(y_b) (x_b - mean x) / N, z by the response's own mean and sd. */
static void revcor_sta(const rf_acc *a, const double *sy, const double *syy, const double *sx,
                       int cells, int n, int64_t win, int h, double *out)
{
    int64_t N = h == 2 ? a->n[0] + a->n[1] : a->n[h];
    double s1 = h == 2 ? sy[n] + sy[cells + n] : sy[h * cells + n];
    double s2 = h == 2 ? syy[n] + syy[cells + n] : syy[h * cells + n];
    double m = N > 0 ? s1 / (double)N : 0, var = N > 0 ? s2 / (double)N - m * m : 0;
    double sd = var > 0 ? sqrt(var) : 0;
    for (int64_t e = 0; e < win; e++) {
        double sxy = h == 2 ? a->s[0][(size_t)n * win + e] + a->s[1][(size_t)n * win + e]
                            : a->s[h][(size_t)n * win + e];
        double sxe = h == 2 ? sx[e] + sx[win + e] : sx[(size_t)h * win + e];
        /* sum (y - m)(x - mx) = sxy - m * sx */
        out[e] = N > 0 && sd > 0 ? (sxy - m * sxe) / (sd * (double)N) : 0.0;
    }
}

/* Fill one estimate's arrays and summaries from its accumulators. */
static int finish(const rc_rf_result *r, const rf_acc *a, const double *sy, const double *syy,
                  const double *sx, float *sta, float *spatial, float *temporal, rc_rf_cell *cell)
{
    const int64_t hw = (int64_t)r->h * r->w, win = (int64_t)r->history * hw;
    double *full = malloc((size_t)win * sizeof *full), *h0 = malloc((size_t)win * sizeof *h0),
           *h1 = malloc((size_t)win * sizeof *h1);
    int rc = -1;
    if (!full || !h0 || !h1) goto out;
    for (int n = 0; n < r->cells; n++) {
        for (int h = 0; h < 3; h++) {
            double *dst = h == 0 ? h0 : h == 1 ? h1 : full;
            if (sy) revcor_sta(a, sy, syy, sx, r->cells, n, win, h, dst);
            else grad_sta(a, n, win, h, dst);
        }
        float *s = sta + (size_t)n * win;
        for (int64_t e = 0; e < win; e++) s[e] = (float)full[e];
        if (rc_rf_summarize(s, r->history, r->h, r->w, spatial + (size_t)n * hw,
                            temporal + (size_t)n * r->history, &cell[n]) < 0)
            goto out;
        double hr = vec_r(h0, h1, win);
        cell[n].half_r = hr;
        cell[n].reliability = hr > -1 ? 2 * hr / (1 + hr) : 0;
    }
    rc = 0;
out:
    free(full); free(h0); free(h1);
    return rc;
}

int rc_rf_compute(const rc_checkpoint *ck, const rc_rf_opts *opts, rc_rf_result *r, char *err,
                  size_t errlen)
{
    const rc_ir *ir = ck->ir;
    memset(r, 0, sizeof *r);
    rc_rf_opts oo = *opts, *o = &oo;
    if (o->batch > (o->samples + 1) / 2) o->batch = (int)((o->samples + 1) / 2);
    if (o->samples < 2) return rc_errf(err, errlen, "rf: --samples %lld: need at least 2", (long long)o->samples);
    if (o->batch < 1) return rc_errf(err, errlen, "rf: batch %d: need at least 1", o->batch);
    if (!(o->contrast > 0)) return rc_errf(err, errlen, "rf: --contrast %g: must be > 0", o->contrast);
    if (!o->grad && !o->revcor) return rc_errf(err, errlen, "rf: no method chosen");
    r->cells = ck->cells;
    r->history = ir->history;
    r->h = ir->in.h;
    r->w = ir->in.w;
    r->samples = o->samples;
    r->contrast = o->contrast;
    r->seed = o->seed;
    const int64_t hw = (int64_t)r->h * r->w, win = (int64_t)r->history * hw;
    const size_t all = (size_t)r->cells * win;
    rf_acc acc;
    memset(&acc, 0, sizeof acc);
    double *sy = NULL, *syy = NULL, *sx = NULL;
    int rc = -1;
    for (int m = 0; m < 2; m++) {
        if (!(m == 0 ? o->grad : o->revcor)) continue;
        float **sta = m == 0 ? &r->grad : &r->revcor;
        float **sp = m == 0 ? &r->grad_spatial : &r->revcor_spatial;
        float **tp = m == 0 ? &r->grad_temporal : &r->revcor_temporal;
        rc_rf_cell **cell = m == 0 ? &r->grad_cell : &r->revcor_cell;
        *sta = malloc(all * sizeof **sta);
        *sp = malloc((size_t)r->cells * hw * sizeof **sp);
        *tp = malloc((size_t)r->cells * r->history * sizeof **tp);
        *cell = calloc((size_t)r->cells, sizeof **cell);
        if (!*sta || !*sp || !*tp || !*cell || acc_alloc(&acc, all) < 0) {
            rc_errf(err, errlen, "rf: out of memory for %d cells x %lld floats", r->cells, (long long)win);
            goto out;
        }
        double t0 = rc_clock_s();
        if (m == 0) {
            if (run_grad(ck, o, &acc, err, errlen) < 0) goto out;
            if (finish(r, &acc, NULL, NULL, NULL, *sta, *sp, *tp, *cell) < 0) goto oom;
            r->seconds_grad = rc_clock_s() - t0;
        } else {
            sy = calloc((size_t)2 * r->cells, sizeof *sy);
            syy = calloc((size_t)2 * r->cells, sizeof *syy);
            sx = calloc((size_t)2 * win, sizeof *sx);
            if (!sy || !syy || !sx) goto oom;
            if (run_revcor(ck, o, &acc, sy, syy, sx, err, errlen) < 0) goto out;
            if (finish(r, &acc, sy, syy, sx, *sta, *sp, *tp, *cell) < 0) goto oom;
            r->seconds_revcor = rc_clock_s() - t0;
        }
        acc_free(&acc);
        memset(&acc, 0, sizeof acc);
    }
    rc = 0;
    goto out;
oom:
    rc_errf(err, errlen, "rf: out of memory");
out:
    acc_free(&acc);
    free(sy); free(syy); free(sx);
    return rc;
}

/* One estimate's datasets under group g. */
static int write_group(hid_t f, const char *g, const rc_rf_result *r, const float *sta,
                       const float *spatial, const float *temporal, const rc_rf_cell *cell)
{
    char path[64];
    int n = r->cells;
    hid_t grp = H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (grp < 0 || H5Gclose(grp) < 0) return -1;
    int64_t d4[4] = {n, r->history, r->h, r->w}, d3[3] = {n, r->h, r->w}, d2[2] = {n, r->history},
            d1[1] = {n}, dc[2] = {n, 2};
    snprintf(path, sizeof path, "%s/sta", g);
    if (rc_h5_write_all(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, d4, sta) < 0) return -1;
    snprintf(path, sizeof path, "%s/spatial", g);
    if (rc_h5_write_all(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, spatial) < 0) return -1;
    snprintf(path, sizeof path, "%s/temporal", g);
    if (rc_h5_write_all(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, temporal) < 0) return -1;
    double *dv = malloc((size_t)n * 2 * sizeof *dv);
    int *iv = malloc((size_t)n * 2 * sizeof *iv);
    int bad = !dv || !iv;
    static const char *const dnames[] = {"rank1", "sigma", "half_r", "reliability"};
    for (int q = 0; q < 4 && !bad; q++) {
        for (int i = 0; i < n; i++)
            dv[i] = q == 0 ? cell[i].rank1 : q == 1 ? cell[i].sigma : q == 2 ? cell[i].half_r
                                                                             : cell[i].reliability;
        snprintf(path, sizeof path, "%s/%s", g, dnames[q]);
        bad = rc_h5_write_all(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, dv) < 0;
    }
    if (!bad) {
        for (int i = 0; i < n; i++) { dv[2 * i] = cell[i].row; dv[2 * i + 1] = cell[i].col; }
        snprintf(path, sizeof path, "%s/center", g);
        bad = rc_h5_write_all(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dc, dv) < 0;
    }
    if (!bad) {
        for (int i = 0; i < n; i++) { iv[2 * i] = cell[i].peak_row; iv[2 * i + 1] = cell[i].peak_col; }
        snprintf(path, sizeof path, "%s/peak", g);
        bad = rc_h5_write_all(f, path, H5T_STD_I32LE, H5T_NATIVE_INT, 2, dc, iv) < 0;
    }
    for (int q = 0; q < 2 && !bad; q++) {
        for (int i = 0; i < n; i++) iv[i] = q == 0 ? cell[i].polarity : cell[i].peak_lag;
        snprintf(path, sizeof path, "%s/%s", g, q == 0 ? "polarity" : "peak_lag");
        bad = rc_h5_write_all(f, path, H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, iv) < 0;
    }
    free(dv);
    free(iv);
    return bad ? -1 : 0;
}

int rc_rf_write(const char *path, const rc_checkpoint *ck, const rc_rf_result *r, char *err,
                size_t errlen)
{
    hid_t f = rc_h5_mem_create(path, H5P_DEFAULT, err, errlen);   /* fsutil.h */
    if (f < 0) return -1;
    int64_t d1[1] = {r->cells};
    int bad = rc_h5_write_all(f, "/cell_ids", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, ck->cell_ids) < 0 ||
              rc_h5_attr_set_string(f, "/", "model", ck->ir->name) < 0 ||
              rc_h5_attr_set_string(f, "/", "spec_hash", ck->spec_hash) < 0 ||
              rc_h5_attr_set_int64(f, "/", "samples", r->samples) < 0 ||
              rc_h5_attr_set_double(f, "/", "contrast", r->contrast) < 0 ||
              rc_h5_attr_set_int64(f, "/", "seed", (int64_t)r->seed) < 0 ||
              /* centres and peaks are in model-input pixels; + these = recording pixels */
              rc_h5_attr_set_int64(f, "/", "crop_row0", ck->crop_row0) < 0 ||
              rc_h5_attr_set_int64(f, "/", "crop_col0", ck->crop_col0) < 0 ||
              rc_h5_attr_set_string(f, "/", "lag_convention",
                                    "sta[c] is the frame history-c bins before the predicted bin") < 0;
    if (!bad && r->grad)
        bad = write_group(f, "/grad", r, r->grad, r->grad_spatial, r->grad_temporal, r->grad_cell) < 0;
    if (!bad && r->revcor)
        bad = write_group(f, "/revcor", r, r->revcor, r->revcor_spatial, r->revcor_temporal,
                          r->revcor_cell) < 0;
    if (bad) rc_errf(err, errlen, "%s: HDF5 could not build the file (in memory)", path);
    return rc_h5_mem_commit(f, path, !bad, err, errlen);
}
