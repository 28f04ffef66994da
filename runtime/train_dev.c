/* train_dev.c — host and CUDA execution of training steps and inference (see train_dev.h).
 *
 * Host mode is a thin wrapper over the backend functions. CUDA mode mirrors the model on the
 * device (params, state, grads, Adam moments, workspace, frames) and moves only starts and
 * labels up and predictions down per batch; the loss, its gradient and the Adam step run on the
 * device through backend_cuda.h's utility kernels (same formulas as loss.c / optim.c).
 */
#include "errbuf.h"
#include "train_dev.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "rng.h"

/* Device-side state of CUDA mode. All float/int pointers are device addresses. */
typedef struct {
    rc_cuda_dev *dev;          /* owned by the backend */
    rc_cuda_util *util;
    float *params, *state, *grads, *moments, *ws, *pred, *y, *dy, *frames;
    int *cell_pos;
    int64_t *starts;
    size_t frames_cap;         /* floats allocated at `frames` */
    int uploaded;              /* the device frames hold rc_dev.frames (n, gen) */
} cu_state;

/* ------------------------------------------------------------------ CUDA helpers */

static void *cu_alloc(cu_state *c, size_t bytes)
{
    return rc_cuda_malloc(c->dev, bytes ? bytes : 4);
}

static void cu_free_all(cu_state *c)
{
    if (!c) return;
    void *ptrs[] = {c->params, c->state, c->grads, c->moments, c->ws, c->pred, c->y, c->dy,
                    c->frames, c->cell_pos, c->starts};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i]) rc_cuda_free(c->dev, ptrs[i]);
    rc_cuda_util_destroy(c->util);
    free(c);
}

static int cu_init(rc_dev *d, char *err, size_t errlen)
{
    cu_state *c = calloc(1, sizeof *c);
    if (!c) return rc_errf(err, errlen, "out of memory");
    d->cu = c;
    c->dev = rc_cuda_backend_device(d->be);
    if (!c->dev) return rc_errf(err, errlen, "cuda backend: no device");
    if (rc_cuda_util_create(c->dev, &c->util, err, errlen) < 0) return -1;
    const rc_ir *ir = d->ir;
    size_t P = (size_t)ir->params_total, S = (size_t)ir->state_total, B = (size_t)d->B;
    size_t yc = B * (size_t)ir->cells;
    c->params = cu_alloc(c, P * sizeof(float));
    c->state = cu_alloc(c, S * sizeof(float));
    c->ws = cu_alloc(c, d->be->ws_floats(d->be, d->B) * sizeof(float));
    c->pred = cu_alloc(c, yc * sizeof(float));
    c->starts = cu_alloc(c, B * sizeof(int64_t));
    c->cell_pos = cu_alloc(c, (size_t)ir->cells * 2 * sizeof(int));
    int ok = c->params && c->state && c->ws && c->pred && c->starts && c->cell_pos;
    if (ok && d->training) {
        c->grads = cu_alloc(c, P * sizeof(float));
        c->moments = cu_alloc(c, 2 * P * sizeof(float));
        c->y = cu_alloc(c, yc * sizeof(float));
        c->dy = cu_alloc(c, yc * sizeof(float));
        ok = c->grads && c->moments && c->y && c->dy;
    }
    if (!ok) return rc_errf(err, errlen, "cuda: device memory for batch %d: %s", d->B, c->dev->err);
    return 0;
}

#define CU(call) do { if ((call) < 0) return rc_errf(err, errlen, "cuda: %s", c->dev->err); } while (0)

/* ------------------------------------------------------------------ the rc_dev interface */

int rc_dev_init(rc_dev *d, rc_backend *be, const rc_ir *ir, int B, int training, char *err,
                size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->be = be;
    d->ir = ir;
    d->B = B;
    d->training = training;
    d->cuda = be && be->name && !strcmp(be->name, "cuda");
    if (d->cuda) {
        if (cu_init(d, err, errlen) < 0) { rc_dev_free(d); return -1; }
        return 0;
    }
    size_t ws = be->ws_floats(be, B);
    d->ws = malloc((ws ? ws : 1) * sizeof(float));
    if (training) d->grads = malloc((size_t)(ir->params_total ? ir->params_total : 1) * sizeof(float));
    if (!d->ws || (training && !d->grads)) {
        rc_dev_free(d);
        return rc_errf(err, errlen, "out of memory for a %zu-float workspace (batch %d)", ws, B);
    }
    return 0;
}

int rc_dev_set_model(rc_dev *d, float *params, float *state, const int *cell_pos, char *err,
                     size_t errlen)
{
    d->params = params;
    d->state = state;
    d->cell_pos = cell_pos;
    if (!d->cuda) return 0;
    cu_state *c = d->cu;
    const rc_ir *ir = d->ir;
    CU(rc_cuda_upload(c->dev, c->params, params, (size_t)ir->params_total * sizeof(float)));
    if (ir->state_total)
        CU(rc_cuda_upload(c->dev, c->state, state, (size_t)ir->state_total * sizeof(float)));
    if (cell_pos)
        CU(rc_cuda_upload(c->dev, c->cell_pos, cell_pos, (size_t)ir->cells * 2 * sizeof(int)));
    return 0;
}

int rc_dev_set_optim(rc_dev *d, const rc_optim *opt, char *err, size_t errlen)
{
    if (!d->cuda) return 0;
    cu_state *c = d->cu;
    CU(rc_cuda_upload(c->dev, c->moments, opt->moments, (size_t)(2 * opt->n) * sizeof(float)));
    return 0;
}

int rc_dev_set_frames(rc_dev *d, const float *frames, int64_t n_floats, uint64_t gen, char *err,
                      size_t errlen)
{
    int same = frames == d->frames && n_floats == d->frames_n && gen != 0 && gen == d->frames_gen;
    d->frames = frames;
    d->frames_n = n_floats;
    d->frames_gen = gen;
    if (!d->cuda) {
        rc_backend *be = d->be;
        if (same || !be->set_stream) return 0;
        const int64_t hw = (int64_t)d->ir->in.h * d->ir->in.w;
        if (be->set_stream(be, frames, n_floats / hw) != 0)
            return rc_errf(err, errlen, "%s backend: %s", be->name, be->err);
        return 0;
    }
    cu_state *c = d->cu;
    if (same && c->uploaded) return 0;
    c->uploaded = 0;
    if ((size_t)n_floats > c->frames_cap) {
        if (c->frames) rc_cuda_free(c->dev, c->frames);
        c->frames = cu_alloc(c, (size_t)n_floats * sizeof(float));
        c->frames_cap = c->frames ? (size_t)n_floats : 0;
        if (!c->frames)
            return rc_errf(err, errlen, "cuda: device memory for %lld frame floats: %s",
                        (long long)n_floats, c->dev->err);
    }
    CU(rc_cuda_upload(c->dev, c->frames, frames, (size_t)n_floats * sizeof(float)));
    c->uploaded = 1;
    return 0;
}

int rc_dev_train_step(rc_dev *d, rc_optim *opt, uint64_t seed, const int64_t *starts,
                      const float *y, float *pred, float *dy, rc_loss_value *lv, char *err,
                      size_t errlen)
{
    rc_backend *be = d->be;
    const rc_ir *ir = d->ir;
    const int B = d->B;
    const size_t yb = (size_t)B * ir->cells * sizeof(float);
    if (d->cuda) {
        cu_state *c = d->cu;
        const int *cp = d->cell_pos ? c->cell_pos : NULL;
        CU(rc_cuda_upload(c->dev, c->starts, starts, (size_t)B * sizeof(int64_t)));
        CU(rc_cuda_upload(c->dev, c->y, y, yb));
        CU(rc_cuda_zero(c->dev, c->grads, (size_t)ir->params_total * sizeof(float)));
        if (be->train_forward(be, B, c->params, c->state, cp, seed, c->frames, c->starts,
                              c->pred, c->ws) != 0)
            return rc_errf(err, errlen, "cuda backend: forward: %s", be->err);
        const rc_train *t = &ir->train;
        if (rc_cuda_loss(c->util, t->loss, t->l1_activity, t->l1_mode, B, ir->cells, c->pred,
                         c->y, c->dy, lv) < 0)
            return rc_errf(err, errlen, "cuda: loss: %s", rc_cuda_util_error(c->util));
        if (be->train_backward(be, B, c->params, cp, c->frames, c->starts, c->dy, c->grads,
                               c->ws) != 0)
            return rc_errf(err, errlen, "cuda backend: backward: %s", be->err);
        if (rc_cuda_adam_step(c->util, opt, c->params, c->grads, c->moments) < 0)
            return rc_errf(err, errlen, "cuda: adam: %s", rc_cuda_util_error(c->util));
        (void)pred; (void)dy;
        return 0;
    }
    memset(d->grads, 0, (size_t)ir->params_total * sizeof(float));
    if (be->train_forward(be, B, d->params, d->state, d->cell_pos, seed, d->frames, starts, pred,
                          d->ws) != 0)
        return rc_errf(err, errlen, "%s backend: forward: %s", be->name, be->err);
    *lv = rc_loss_train(&ir->train, B, ir->cells, pred, y, dy);
    if (be->train_backward(be, B, d->params, d->cell_pos, d->frames, starts, dy, d->grads,
                           d->ws) != 0)
        return rc_errf(err, errlen, "%s backend: backward: %s", be->name, be->err);
    rc_optim_step(opt, d->params, d->grads);
    return 0;
}

int rc_dev_train_forward(rc_dev *d, uint64_t seed, const int64_t *starts, float *pred, char *err,
                         size_t errlen)
{
    rc_backend *be = d->be;
    const int B = d->B;
    if (d->cuda) {
        cu_state *c = d->cu;
        CU(rc_cuda_upload(c->dev, c->starts, starts, (size_t)B * sizeof(int64_t)));
        if (be->train_forward(be, B, c->params, c->state, d->cell_pos ? c->cell_pos : NULL, seed,
                              c->frames, c->starts, c->pred, c->ws) != 0)
            return rc_errf(err, errlen, "cuda backend: forward: %s", be->err);
        (void)pred;
        return 0;
    }
    if (be->train_forward(be, B, d->params, d->state, d->cell_pos, seed, d->frames, starts, pred,
                          d->ws) != 0)
        return rc_errf(err, errlen, "%s backend: forward: %s", be->name, be->err);
    return 0;
}

int rc_dev_get_state(rc_dev *d, float *state, char *err, size_t errlen)
{
    size_t n = (size_t)d->ir->state_total * sizeof(float);
    if (!n) return 0;
    if (!d->cuda) {
        if (state != d->state) memcpy(state, d->state, n);
        return 0;
    }
    cu_state *c = d->cu;
    CU(rc_cuda_download(c->dev, state, c->state, n));
    return 0;
}

int rc_dev_put_state(rc_dev *d, const float *state, char *err, size_t errlen)
{
    size_t n = (size_t)d->ir->state_total * sizeof(float);
    if (!n) return 0;
    if (!d->cuda) {
        if (state != d->state) memcpy(d->state, state, n);
        return 0;
    }
    cu_state *c = d->cu;
    CU(rc_cuda_upload(c->dev, c->state, state, n));
    return 0;
}

int rc_dev_infer(rc_dev *d, int B, const int64_t *starts, float *out, char *err, size_t errlen)
{
    rc_backend *be = d->be;
    if (B > d->B) return rc_errf(err, errlen, "inference batch %d exceeds %d", B, d->B);
    if (d->cuda) {
        cu_state *c = d->cu;
        CU(rc_cuda_upload(c->dev, c->starts, starts, (size_t)B * sizeof(int64_t)));
        if (be->infer(be, B, c->params, c->state, d->cell_pos ? c->cell_pos : NULL, c->frames,
                      c->starts, c->pred, c->ws) != 0)
            return rc_errf(err, errlen, "cuda backend: inference: %s", be->err);
        CU(rc_cuda_download(c->dev, out, c->pred, (size_t)B * d->ir->cells * sizeof(float)));
        return 0;
    }
    if (be->infer(be, B, d->params, d->state, d->cell_pos, d->frames, starts, out, d->ws) != 0)
        return rc_errf(err, errlen, "%s backend: inference: %s", be->name, be->err);
    return 0;
}

int rc_dev_get_model(rc_dev *d, float *params, float *state, float *moments, char *err,
                     size_t errlen)
{
    if (!d->cuda) return 0;
    cu_state *c = d->cu;
    const rc_ir *ir = d->ir;
    CU(rc_cuda_download(c->dev, params, c->params, (size_t)ir->params_total * sizeof(float)));
    if (ir->state_total)
        CU(rc_cuda_download(c->dev, state, c->state, (size_t)ir->state_total * sizeof(float)));
    if (moments && c->moments)
        CU(rc_cuda_download(c->dev, moments, c->moments, (size_t)(2 * ir->params_total) * sizeof(float)));
    return 0;
}

void rc_dev_free(rc_dev *d)
{
    if (!d) return;
    if (d->cuda) cu_free_all(d->cu);
    else if (d->be && d->be->set_stream && d->frames) d->be->set_stream(d->be, NULL, 0);   /* forget: cannot fail */
    d->cu = NULL;
    d->frames = NULL;
    free(d->ws);
    free(d->grads);
    d->ws = d->grads = NULL;
}
