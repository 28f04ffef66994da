/* gradcheck.c — a backend's training gradient against finite differences on the reference
 * (gradcheck.h). The work: one problem (frames, starts, targets, params, state), the gradient
 * under test from the backend, central differences of the same loss on the reference in
 * double (rc_ref64_*, ref.h), the reference's eval-mode input gradient against differences on
 * the frames, and the verdict.
 *
 * Invariants:
 *   - L(params) is deterministic: the double reference's train_forward with one seed (noise
 *     and dropout are pure functions of it), the BN running statistics copied back from state0
 *     before every evaluation (train_forward updates them), the loss of the double outputs
 *     (rc_loss_train64). Nothing in it is rounded to float, so L is smooth to about 1e-16 of
 *     its size and steps of 1e-6 are noise-free (the float reference's L wobbled by 2^-28 of
 *     itself, which forced steps of 1e-2 and put relu kinks inside most stencils).
 *   - Params, state and frames stay the float buffers of the backend interface (the prim
 *     interpreter of defined layers reads float params): a step of 1e-6 max(1, |p|) is 8 to 17
 *     float ulps of p; the denominator of a difference is the actual float step (float(x+h) -
 *     float(x-h)), so the rounding of the step never enters the estimate. Frames are multiples
 *     of 2^-14 in (-4, 4) so that the input steps (powers of two, >= 2^-22) are exact for every
 *     sample at once.
 *   - Elements checked: the quarter of the sample largest in max(|g backend|, |g reference|)
 *     (a zeroed element is large in one of them) and an even stride over the rest; the same
 *     for every run.
 *   - Measured (c backend, defaults: step 1e-6, 24 samples): every tensor of tiny, ln,
 *     psoftplus, divnorm and exp_poisson agrees to 4.2e-5 or better over seeds 1..6 (mostly
 *     1e-6..1e-5: the float32 backend's own rounding), with no kink hit; all elements of tiny,
 *     exp_poisson and divnorm (--samples 0, about 1,600 each): max 4.1e-6, no kink; bncnn
 *     (--batch 2 --samples 3): max 1.6e-5. The tolerance 1e-3 keeps a 20x margin over that and
 *     10x under the 1% error of a 1.01-scaled gradient. Steps: errors are flat from 1e-5 to
 *     1e-7, relu kinks appear at 1e-4 (exp_poisson: 14 kinks at 1e-4, 3 elements off at
 *     1e-3), the double rounding of L (about 3e-16 of it) shows below 1e-8, and below float
 *     ulps of p the step is quantized away.
 */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "errbuf.h"
#include "loss.h"
#include "model.h"
#include "ref.h"
#include "rng.h"

/* The relative error of element k is |g - fd| / max(|fd|, floor), floor = max(FLOOR_TENSOR *
 * the tensor's scale, FLOOR_MODEL * the largest scale of any parameter tensor), scale = max
 * |fd| over the tensor's checked elements. Why a floor: the float32 backend's gradient carries
 * ABSOLUTE errors of the size of the tensor's gradient, not of the element's (it sums many
 * terms of the size of the largest ones), so an element a thousand times smaller than its
 * neighbours has a meaningless relative error. Judged against 10% of its tensor's scale, such
 * an element still has to be right to tol x 10% of the tensor's scale. FLOOR_MODEL covers
 * tensors whose gradient is zero in theory (a conv bias before a batch norm): their
 * differences are 0 and the backend's gradient is float rounding (measured on bncnn: 1.1e-7
 * against a largest gradient of 0.72), so they are judged against 1% of the model's gradient
 * scale instead. Besides, an estimate is never judged below its own rounding noise over tol
 * (floor_at). */
#define FLOOR_TENSOR 0.1
#define FLOOR_MODEL 1e-2
/* Rounding noise of the objective relative to its size, on the double reference: at steps of
 * 1e-8 the differences of tiny and exp_poisson (L about 1) move by about 1.5e-8, so L wobbles by
 * about 3e-16 of itself; 1e-14 bounds it with a margin. */
#define NOISE_REL 1e-14
/* The input step is the power of two nearest to the step, at least 2^INPUT_STEP_MIN_EXP:
 * x + 2^-22 is exact in float for every multiple x of 2^-14 in (-4, 4) (24 significant bits). */
#define INPUT_STEP_MIN_EXP (-22)

typedef struct {
    const rc_ir *ir;
    rc_backend *ref;
    int B, cells, hist;
    int64_t HW;
    uint64_t seed;
    /* training problem: frames (T, H, W), consecutive windows */
    int64_t T;
    float *frames, *target, *R;
    int64_t *starts;
    int *cell_pos;
    float *params0, *params, *state0, *state, *y, *ws;   /* y, ws: the reference's float analysis */
    double *y64, *ws64;                                    /* the objectives: the double reference */
    /* input problem: B disjoint windows of frames_in (B*hist, H, W) */
    float *frames_in;
    int64_t *starts_in;
    double L0_train, L0_input, mag_input;   /* mag_input: sum |R y| of the input objective */
} gc_ctx;

void rc_gradcheck_defaults(rc_gradcheck_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 4;
    o->samples = RC_GRADCHECK_SAMPLES;
    o->tol = RC_GRADCHECK_TOL;
    o->step = RC_GRADCHECK_STEP;
    o->seed = 1;
    o->check_input = 1;
}

void rc_gradcheck_free(rc_gradcheck_result *res)
{
    if (!res) return;
    free(res->t);
    res->t = NULL;
    res->n = 0;
}

static float quantized_normal(uint64_t seed, uint64_t stream, int64_t i)
{
    double x = rc_rng_normal(seed, stream, (uint64_t)i);
    if (x > 3.5) x = 3.5;
    if (x < -3.5) x = -3.5;
    return (float)(nearbyint(x * 16384.0) / 16384.0);
}

static void ctx_free(gc_ctx *c)
{
    rc_backend_destroy(c->ref);
    free(c->frames); free(c->target); free(c->R); free(c->starts); free(c->cell_pos);
    free(c->params0); free(c->params); free(c->state0); free(c->state); free(c->y); free(c->ws);
    free(c->y64); free(c->ws64); free(c->frames_in); free(c->starts_in);
}

static int ctx_init(gc_ctx *c, const rc_ir *ir, const rc_gradcheck_opts *o, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->ir = ir;
    c->B = o->batch;
    c->cells = ir->cells;
    c->hist = ir->in.c;
    c->HW = (int64_t)ir->in.h * ir->in.w;
    c->seed = o->seed;
    c->T = c->hist + c->B - 1;
    if (rc_ref_backend_create(ir, &c->ref) != 0) return rc_errf(err, errlen, "reference backend: out of memory");
    size_t P = (size_t)(ir->params_total > 0 ? ir->params_total : 1);
    size_t S = (size_t)(ir->state_total > 0 ? ir->state_total : 1);
    size_t BC = (size_t)c->B * c->cells;
    c->frames = malloc(sizeof(float) * (size_t)(c->T * c->HW));
    c->frames_in = malloc(sizeof(float) * (size_t)((int64_t)c->B * c->hist * c->HW));
    c->target = malloc(sizeof(float) * BC);
    c->R = malloc(sizeof(float) * BC);
    c->y = malloc(sizeof(float) * BC);
    c->starts = malloc(sizeof(int64_t) * (size_t)c->B);
    c->starts_in = malloc(sizeof(int64_t) * (size_t)c->B);
    c->params0 = malloc(sizeof(float) * P);
    c->params = malloc(sizeof(float) * P);
    c->state0 = calloc(S, sizeof(float));
    c->state = calloc(S, sizeof(float));
    c->ws = malloc(sizeof(float) * c->ref->ws_floats(c->ref, c->B));
    c->y64 = malloc(sizeof(double) * BC);
    c->ws64 = malloc(sizeof(double) * rc_ref64_ws_doubles(c->ref, c->B));
    if (!c->frames || !c->frames_in || !c->target || !c->R || !c->y || !c->starts || !c->starts_in ||
        !c->params0 || !c->params || !c->state0 || !c->state || !c->ws ||
        !c->y64 || !c->ws64)
        return rc_errf(err, errlen, "%s: out of memory for the gradient check", ir->name);
    for (int64_t i = 0; i < c->T * c->HW; i++) c->frames[i] = quantized_normal(c->seed, 101, i);
    for (int64_t i = 0; i < (int64_t)c->B * c->hist * c->HW; i++) c->frames_in[i] = quantized_normal(c->seed, 102, i);
    for (int b = 0; b < c->B; b++) {
        c->starts[b] = b;
        c->starts_in[b] = (int64_t)b * c->hist;
    }
    /* targets non-negative (spike counts for Poisson): U(0, 2) */
    for (size_t k = 0; k < BC; k++) {
        c->target[k] = 2.0f * rc_rng_uniform(c->seed, 103, k);
        c->R[k] = 2.0f * rc_rng_uniform(c->seed, 104, k) - 1.0f;
    }
    rc_params_init(ir, ir->train.seed, c->params0, c->state0);
    memcpy(c->params, c->params0, sizeof(float) * P);
    if (rc_gc_layer(ir) >= 0) {
        /* every cell's receptive field at the frame center (position "data" reads centers) */
        int *centers = malloc(sizeof(int) * 2 * (size_t)c->cells);
        c->cell_pos = malloc(sizeof(int) * 2 * (size_t)c->cells);
        if (!centers || !c->cell_pos) { free(centers); return rc_errf(err, errlen, "out of memory"); }
        for (int n = 0; n < c->cells; n++) {
            centers[2 * n] = ir->in.h / 2;
            centers[2 * n + 1] = ir->in.w / 2;
        }
        int rc = rc_gc_positions(ir, centers, c->cell_pos, err, errlen);
        free(centers);
        if (rc) return -1;
    }
    return 0;
}

/* L(c->params) on the double reference, training mode, from the initial BN state. */
static int ref_train_loss(gc_ctx *c, double *L, char *err, size_t errlen)
{
    const rc_ir *ir = c->ir;
    memcpy(c->state, c->state0, sizeof(float) * (size_t)(ir->state_total > 0 ? ir->state_total : 1));
    if (rc_ref64_train_forward(c->ref, c->B, c->params, c->state, c->cell_pos, c->seed, c->frames, c->starts,
                               c->y64, c->ws64))
        return rc_errf(err, errlen, "reference train_forward: %s", c->ref->err);
    *L = rc_loss_train64(&ir->train, c->B, c->cells, c->y64, c->target).total;
    return 0;
}

/* sum R .* y of the double reference's eval-mode forward on frames_in. */
static int ref_input_objective(gc_ctx *c, double *s, char *err, size_t errlen)
{
    if (rc_ref64_infer(c->ref, c->B, c->params0, c->state0, c->cell_pos, c->frames_in, c->starts_in, c->y64,
                       c->ws64))
        return rc_errf(err, errlen, "reference infer: %s", c->ref->err);
    double a = 0, mag = 0;
    for (int k = 0; k < c->B * c->cells; k++) {
        a += (double)c->R[k] * c->y64[k];
        mag += fabs((double)c->R[k] * c->y64[k]);
    }
    *s = a;
    c->mag_input = mag;
    return 0;
}

/* The objective with element k of tensor t (t == n_params: the input window position k, moved
 * in every sample) moved by d (by one float ulp at least); *step gets the actual step taken. */
static int objective_at(gc_ctx *c, int t, int64_t k, double d, double *L, double *step, char *err,
                        size_t errlen)
{
    const rc_ir *ir = c->ir;
    if (t < ir->n_params) {
        float *x = &c->params[ir->params[t].offset + k];
        float x0 = *x;
        *x = (float)((double)x0 + d);
        if (*x == x0) *x = nextafterf(x0, d > 0 ? INFINITY : -INFINITY);   /* a step under an ulp */
        *step = (double)*x - (double)x0;
        int rc = ref_train_loss(c, L, err, errlen);
        *x = x0;
        return rc;
    }
    float saved[c->B];
    for (int b = 0; b < c->B; b++) {
        float *x = &c->frames_in[c->starts_in[b] * c->HW + k];
        saved[b] = *x;
        *x = (float)((double)saved[b] + d);   /* exact: see the header comment */
    }
    *step = d;
    int rc = ref_input_objective(c, L, err, errlen);
    for (int b = 0; b < c->B; b++) c->frames_in[c->starts_in[b] * c->HW + k] = saved[b];
    return rc;
}

/* ---------------------------------------------------------------- the gradient under test */

static int host_grad(gc_ctx *c, rc_backend *be, float *grads, double *L, char *err, size_t errlen)
{
    const rc_ir *ir = c->ir;
    size_t BC = (size_t)c->B * c->cells;
    float *ws = malloc(sizeof(float) * (be->ws_floats(be, c->B) + 1));
    float *y = malloc(sizeof(float) * BC), *dy = malloc(sizeof(float) * BC);
    int rc = -1;
    if (!ws || !y || !dy) { rc_errf(err, errlen, "out of memory"); goto done; }
    memcpy(c->state, c->state0, sizeof(float) * (size_t)(ir->state_total > 0 ? ir->state_total : 1));
    memset(grads, 0, sizeof(float) * (size_t)ir->params_total);
    /* the trainer declares its frame buffer before running batches on it: the same paths */
    if (be->set_stream && be->set_stream(be, c->frames, c->T)) {
        rc_errf(err, errlen, "%s set_stream: %s", be->name, be->err);
        goto done;
    }
    if (be->train_forward(be, c->B, c->params0, c->state, c->cell_pos, c->seed, c->frames, c->starts, y, ws)) {
        rc_errf(err, errlen, "%s train_forward: %s", be->name, be->err);
        goto done;
    }
    *L = rc_loss_train(&ir->train, c->B, c->cells, y, c->target, dy).total;
    if (be->train_backward(be, c->B, c->params0, c->cell_pos, c->frames, c->starts, dy, grads, ws)) {
        rc_errf(err, errlen, "%s train_backward: %s", be->name, be->err);
        goto done;
    }
    rc = 0;
done:
    if (be->set_stream) be->set_stream(be, NULL, 0);   /* forget: cannot fail */
    free(ws); free(y); free(dy);
    return rc;
}

/* The same on a CUDA backend: device copies of every buffer, the loss on the host. */
static int cuda_grad(gc_ctx *c, rc_backend *be, float *grads, double *L, char *err, size_t errlen)
{
    const rc_ir *ir = c->ir;
    rc_cuda_dev *d = rc_cuda_backend_device(be);
    if (!d) return rc_errf(err, errlen, "cuda backend without a device");
    size_t P = (size_t)ir->params_total, S = (size_t)(ir->state_total > 0 ? ir->state_total : 1);
    size_t BC = (size_t)c->B * c->cells, F = (size_t)(c->T * c->HW);
    size_t nc = c->cell_pos ? 2 * (size_t)c->cells : 1;
    size_t wsn = be->ws_floats(be, c->B) + 1;
    float *y = malloc(sizeof(float) * BC), *dy = malloc(sizeof(float) * BC);
    void *dp = rc_cuda_malloc(d, 4 * (P + 1)), *ds = rc_cuda_malloc(d, 4 * S), *dg = rc_cuda_malloc(d, 4 * (P + 1));
    void *df = rc_cuda_malloc(d, 4 * F), *dst = rc_cuda_malloc(d, 8 * (size_t)c->B), *dcp = rc_cuda_malloc(d, 4 * nc);
    void *dyv = rc_cuda_malloc(d, 4 * BC), *ddy = rc_cuda_malloc(d, 4 * BC), *dws = rc_cuda_malloc(d, 4 * wsn);
    int rc = -1;
    if (!y || !dy || !dp || !ds || !dg || !df || !dst || !dcp || !dyv || !ddy || !dws) {
        rc_errf(err, errlen, "cuda: out of memory: %s", d->err);
        goto done;
    }
    if (rc_cuda_upload(d, dp, c->params0, 4 * P) || rc_cuda_upload(d, ds, c->state0, 4 * S) ||
        rc_cuda_upload(d, df, c->frames, 4 * F) || rc_cuda_upload(d, dst, c->starts, 8 * (size_t)c->B) ||
        (c->cell_pos && rc_cuda_upload(d, dcp, c->cell_pos, 4 * nc)) || rc_cuda_zero(d, dg, 4 * (P + 1))) {
        rc_errf(err, errlen, "cuda upload: %s", d->err);
        goto done;
    }
    const int *cp = c->cell_pos ? dcp : NULL;
    if (be->train_forward(be, c->B, dp, ds, cp, c->seed, df, dst, dyv, dws)) {
        rc_errf(err, errlen, "cuda train_forward: %s", be->err);
        goto done;
    }
    if (rc_cuda_download(d, y, dyv, 4 * BC)) { rc_errf(err, errlen, "cuda download: %s", d->err); goto done; }
    *L = rc_loss_train(&ir->train, c->B, c->cells, y, c->target, dy).total;
    if (rc_cuda_upload(d, ddy, dy, 4 * BC)) { rc_errf(err, errlen, "cuda upload: %s", d->err); goto done; }
    if (be->train_backward(be, c->B, dp, cp, df, dst, ddy, dg, dws)) {
        rc_errf(err, errlen, "cuda train_backward: %s", be->err);
        goto done;
    }
    if (rc_cuda_download(d, grads, dg, 4 * P)) { rc_errf(err, errlen, "cuda download: %s", d->err); goto done; }
    rc = 0;
done:
    free(y); free(dy);
    void *all[] = {dp, ds, dg, df, dst, dcp, dyv, ddy, dws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) rc_cuda_free(d, all[i]);
    return rc;
}

/* ---------------------------------------------------------------- sampling and judging */

/* Elements of a tensor of n to check: all when n <= m (or m == 0), else the m/4 largest keys
 * and an even stride over the rest, ascending. Returns the count written to idx. */
static int pick(const float *g, int64_t n, int m, int salt, int64_t *idx)
{
    if (m <= 0 || n <= m) {
        for (int64_t k = 0; k < n; k++) idx[k] = k;
        return (int)n;
    }
    int top = m / 4 > 0 ? m / 4 : 1, cnt = 0;
    for (int64_t k = 0; k < n; k++) {         /* insertion into the top list, largest first */
        double a = fabs((double)g[k]);
        if (cnt == top && a <= fabs((double)g[idx[top - 1]])) continue;
        int j = cnt < top ? cnt++ : top - 1;
        while (j > 0 && fabs((double)g[idx[j - 1]]) < a) { idx[j] = idx[j - 1]; j--; }
        idx[j] = k;
    }
    int rest = m - cnt;
    int64_t stride = n / rest, off = salt % (stride > 0 ? stride : 1);
    for (int r = 0; r < rest && cnt < m; r++) {
        int64_t k = off + r * stride, dup = 0;
        for (int j = 0; j < top && !dup; j++) dup = idx[j] == k;
        if (!dup) idx[cnt++] = k;
    }
    for (int i = 1; i < cnt; i++)              /* ascending */
        for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) { int64_t s = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = s; }
    return cnt;
}

typedef struct {
    int t;           /* tensor (n_params: input) */
    int m;
    int64_t *idx;
    double *g, *h;   /* the gradient under test, the step */
    double *fd, *fwd, *bwd;   /* central, forward and backward differences */
    int64_t top;     /* the element of the largest key */
} gc_samples;

static double rel_err(double g, double fd, double floor_)
{
    return fabs(g - fd) / fmax(fabs(fd), floor_);
}

/* The denominator floor of a difference whose rounding noise is NOISE_REL Lmag / h: the
 * tensor's floor, or that noise over tol (an error the size of the noise never fails). */
static double floor_at(double floor_, double Lmag, double h, double tol)
{
    return fmax(floor_, NOISE_REL * Lmag / h / tol);
}

static double step_of(const gc_ctx *c, const gc_samples *s, int i, double step)
{
    if (s->t == c->ir->n_params) {    /* a power of two near step, exact on the frames */
        int e = (int)lround(log2(step));
        return ldexp(1.0, e < INPUT_STEP_MIN_EXP ? INPUT_STEP_MIN_EXP : e);
    }
    return step * fmax(1.0, fabs(c->params[c->ir->params[s->t].offset + s->idx[i]]));
}

/* The differences of every sampled element: L at -h and +h; central (L(+h) - L(-h)) / (actual
 * steps), one-sided forward and backward from the same values and L0 (free, used when a kink
 * lies inside the central stencil: see judge). */
static int differences(gc_ctx *c, gc_samples *s, double step, double L0, char *err, size_t errlen)
{
    for (int i = 0; i < s->m; i++) {
        double lp, lm, ap, am;
        s->h[i] = step_of(c, s, i, step);
        if (objective_at(c, s->t, s->idx[i], s->h[i], &lp, &ap, err, errlen) ||
            objective_at(c, s->t, s->idx[i], -s->h[i], &lm, &am, err, errlen))
            return -1;
        s->h[i] = (ap - am) / 2;     /* the step taken (noise floors) */
        s->fd[i] = (lp - lm) / (ap - am);
        s->fwd[i] = (lp - L0) / ap;
        s->bwd[i] = (L0 - lm) / -am;
    }
    return 0;
}

/* The verdict of one tensor. An element agrees when its central difference does, or else (a
 * kink of relu/abs inside the stencil: 'kinks') when one of its one-sided differences does: a
 * kink on one side leaves the other side's difference clean (its floor is set by twice the
 * central's rounding noise; its truncation error, h f''/2, is far below tol at 1e-6). The tensor
 * fails when any element is off: the double reference leaves no rounding noise to excuse
 * one, and a kink on both sides of a step of 1e-6 is vanishingly rare. */
static void judge(gc_samples *s, double floor_, double tol, double Lmag, rc_gradcheck_tensor *out)
{
    out->checked = s->m;
    out->max_rel = out->max_abs = 0;
    out->worst = s->m ? s->idx[0] : 0;
    int bad = 0;
    for (int i = 0; i < s->m; i++) {
        double g = s->g[i], fd = s->fd[i], h = s->h[i];
        double r = rel_err(g, fd, floor_at(floor_, Lmag, h, tol));
        if (r > tol) {
            double fl1 = floor_at(floor_, Lmag, h / 2, tol);
            double rf = rel_err(g, s->fwd[i], fl1), rb = rel_err(g, s->bwd[i], fl1);
            double best = fmin(rf, rb);
            if (best <= tol) {
                out->kinks++;
                r = best;
                fd = rf <= rb ? s->fwd[i] : s->bwd[i];
            } else bad++;
        }
        if (r > out->max_rel || i == 0) {
            out->max_rel = r;
            out->worst = s->idx[i];
            out->worst_g = g;
            out->worst_fd = fd;
        }
        if (fabs(g - fd) > out->max_abs) out->max_abs = fabs(g - fd);
    }
    out->off = bad;
    out->pass = bad == 0;
}

/* ---------------------------------------------------------------- the check */

int rc_gradcheck_run(const rc_ir *ir, rc_backend *be, const rc_gradcheck_opts *opts,
                     rc_gradcheck_result *res, char *err, size_t errlen)
{
    rc_gradcheck_opts o;
    if (opts) o = *opts; else rc_gradcheck_defaults(&o);
    memset(res, 0, sizeof *res);
    if (o.batch < 2) return rc_errf(err, errlen, "batch %d: need at least 2 samples", o.batch);
    if (o.samples < 0) return rc_errf(err, errlen, "samples %d: expected >= 0", o.samples);
    if (!(o.tol > 0) || !(o.step > 0) || o.step > 0.1)
        return rc_errf(err, errlen, "tolerance and step must be positive (step at most 0.1)");
    if (ir->cells <= 0 || ir->n_layers <= 0) return rc_errf(err, errlen, "%s: the model is not inferred", ir->name);
    snprintf(res->backend, sizeof res->backend, "%s", be->name);
    res->batch = o.batch;
    res->cells = ir->cells;
    res->tol = o.tol;
    int nt = ir->n_params + (o.check_input ? 1 : 0);
    res->t = calloc((size_t)nt + 1, sizeof *res->t);
    if (!res->t) return rc_errf(err, errlen, "out of memory");
    res->n = nt;

    gc_ctx c;
    gc_samples *s = calloc((size_t)nt + 1, sizeof *s);
    float *grads = malloc(sizeof(float) * (size_t)(ir->params_total + 1));
    float *key = malloc(sizeof(float) * (size_t)(ir->params_total + 1));   /* max(|g|, |g_ref|) */
    float *dx = NULL;
    int rc = -1;
    if (!s || !grads || !key) { rc_errf(err, errlen, "out of memory"); free(s); free(grads); free(key); return -1; }
    if (ctx_init(&c, ir, &o, err, errlen)) goto done;

    int is_cuda = !strcmp(be->name, "cuda");
    if ((is_cuda ? cuda_grad : host_grad)(&c, be, grads, &res->loss_backend, err, errlen)) goto done;
    /* the largest elements by either gradient are checked: a wrongly small element (zeroed by a
     * bug) is large in the reference's analytic gradient, a wrongly large one in the backend's */
    double Lr;
    if (host_grad(&c, c.ref, key, &Lr, err, errlen)) goto done;
    for (int64_t k = 0; k < ir->params_total; k++) key[k] = fmaxf(fabsf(key[k]), fabsf(grads[k]));
    if (ref_train_loss(&c, &c.L0_train, err, errlen)) goto done;
    res->loss_ref = c.L0_train;
    if (o.check_input) {
        size_t nin = (size_t)((int64_t)c.hist * c.HW);
        dx = calloc(nin, sizeof(float));
        if (!dx) { rc_errf(err, errlen, "out of memory"); goto done; }
        if (rc_ref_eval_forward(c.ref, c.B, c.params0, c.state0, c.cell_pos, c.frames_in, c.starts_in, NULL,
                                c.y, c.ws) ||
            rc_ref_eval_grad(c.ref, c.B, c.params0, c.cell_pos, c.frames_in, c.starts_in, c.R, dx, c.ws)) {
            rc_errf(err, errlen, "reference input gradient: %s", c.ref->err);
            goto done;
        }
        if (ref_input_objective(&c, &c.L0_input, err, errlen)) goto done;
    }

    /* samples and differences per tensor */
    double model_scale = 0;
    for (int t = 0; t < nt; t++) {
        int is_in = t == ir->n_params;
        int64_t n = is_in ? (int64_t)c.hist * c.HW : ir->params[t].count;
        const float *g = is_in ? dx : grads + ir->params[t].offset;
        int m = o.samples > 0 && n > o.samples ? o.samples : (int)n;
        gc_samples *st = &s[t];
        st->t = t;
        st->idx = malloc(sizeof(int64_t) * (size_t)(m + 1));
        st->g = malloc(sizeof(double) * (size_t)(m + 1));
        st->fd = malloc(sizeof(double) * (size_t)(m + 1));
        st->h = malloc(sizeof(double) * (size_t)(m + 1));
        st->fwd = malloc(sizeof(double) * (size_t)(m + 1));
        st->bwd = malloc(sizeof(double) * (size_t)(m + 1));
        if (!st->idx || !st->g || !st->fd || !st->h || !st->fwd || !st->bwd) { rc_errf(err, errlen, "out of memory"); goto done; }
        const float *kt = is_in ? dx : key + ir->params[t].offset;
        st->m = pick(kt, n, o.samples, t * 7 + 3, st->idx);
        st->top = 0;
        for (int64_t k = 1; k < n; k++)
            if (fabsf(kt[k]) > fabsf(kt[st->top])) st->top = k;
        for (int i = 0; i < st->m; i++) st->g[i] = g[st->idx[i]];
        if (differences(&c, st, o.step, is_in ? c.L0_input : c.L0_train, err, errlen)) goto done;
        rc_gradcheck_tensor *rt = &res->t[t];
        snprintf(rt->name, sizeof rt->name, "%s", is_in ? "input" : ir->params[t].name);
        rt->count = n;
        for (int i = 0; i < st->m; i++) rt->scale = fmax(rt->scale, fabs(st->fd[i]));
        if (!is_in) model_scale = fmax(model_scale, rt->scale);
    }
    for (int t = 0; t < nt; t++) {
        int is_in = t == ir->n_params;
        rc_gradcheck_tensor *rt = &res->t[t];
        /* the input's scale is its own (another objective); see FLOOR_MODEL for the others */
        double floor_ = fmax(FLOOR_TENSOR * rt->scale, is_in ? 0 : FLOOR_MODEL * model_scale);
        if (!(floor_ > 0)) floor_ = 1e-30;
        rt->floor = floor_at(floor_, is_in ? c.mag_input : fabs(c.L0_train), o.step, o.tol);
        judge(&s[t], floor_, o.tol, is_in ? c.mag_input : fabs(c.L0_train), rt);
        if (!rt->pass) res->n_failed++;
    }
    rc = 0;
done:
    for (int t = 0; t < nt; t++) { free(s[t].idx); free(s[t].g); free(s[t].fd); free(s[t].h); free(s[t].fwd); free(s[t].bwd); }
    free(s); free(grads); free(key); free(dx);
    ctx_free(&c);
    return rc;
}
