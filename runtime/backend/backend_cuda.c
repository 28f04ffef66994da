/* backend_cuda.c — the CUDA backend: renders the IR with emit_cuda, loads the module through
 * the device layer (NVRTC + driver API, or the host emulation in tests), and interprets the
 * launch plan for train_forward / train_backward / infer. Also the device memory helpers
 * (see backend_cuda.h); the device-side Adam and loss are in backend_cuda_train.c.
 *
 * Invariants: the plan and the module come from one rc_emit_cuda call, so kernel names, grid
 * formulas and workspace offsets agree; all launches go to the default stream in plan order and
 * every entry point synchronizes once at its end; the seed and batch of the last
 * train_forward are kept host-side for train_backward (dropout masks are recomputed from them).
 */
#include "errbuf.h"
#include "backend_cuda.h"
#include "emit_cuda.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    rc_cuda_dev *dev;
    int own_dev;
    rc_cuda_plan plan;
    char *src;
    void *mod;
    void **fn;          /* per launch */
    uint64_t seed;
    int last_B;         /* batch of the last train_forward, 0 if none */
    int has_gc;
} cu_self;

static int bfail(rc_backend *be, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(be->err, sizeof be->err, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t dp(const void *p) { return (uint64_t)(uintptr_t)p; }

static size_t cu_ws_floats(rc_backend *be, int B)
{
    cu_self *s = be->self;
    return (size_t)(s->plan.ws_b * (int64_t)B + s->plan.ws_c);
}

static int run_phase(rc_backend *be, int ph, rc_cuda_args *a)
{
    cu_self *s = be->self;
    rc_cuda_dev *d = s->dev;
    for (int k = s->plan.first[ph]; k < s->plan.first[ph] + s->plan.count[ph]; k++) {
        const rc_cuda_launch *l = &s->plan.launch[k];
        unsigned gx, gy;
        rc_cuda_grid(l, a->B, &gx, &gy);
        if (d->ops->launch(d, s->fn[k], gx, gy, (unsigned)l->block, a, sizeof *a))
            return bfail(be, "cuda: %s: layer %d: %s: %s", be->ir->name, l->layer + 1, l->name, d->err);
    }
    if (d->ops->sync(d)) return bfail(be, "cuda: %s: %s", be->ir->name, d->err);
    return 0;
}

static int check_batch(rc_backend *be, int B, int train, const int *cell_pos)
{
    cu_self *s = be->self;
    const rc_ir *ir = be->ir;
    if (B < 1) return bfail(be, "cuda: %s: batch size %d < 1", ir->name, B);
    if (B > 65535) return bfail(be, "cuda: %s: batch size %d > 65535 (grid y limit)", ir->name, B);
    if (s->has_gc && !cell_pos) return bfail(be, "cuda: %s: the gcconv layer needs cell positions", ir->name);
    if (train)
        for (int i = 0; i < ir->n_layers; i++) {
            const rc_layer *L = &ir->layers[i];
            if (L->kind != RC_LAYER_BATCHNORM) continue;
            int64_t inner = L->over == RC_BN_UNIT ? 1 : (int64_t)L->in.h * L->in.w;
            if (inner * B < 2)
                return bfail(be, "cuda: %s: layer %d (batchnorm): training needs more than one value per "
                             "feature (batch %d)", ir->name, i + 1, B);
        }
    return 0;
}

static int cu_train_forward(rc_backend *be, int B, const float *params, float *state,
                            const int *cell_pos, uint64_t seed, const float *frames,
                            const int64_t *starts, float *y, float *ws)
{
    cu_self *s = be->self;
    if (check_batch(be, B, 1, cell_pos)) return -1;
    rc_cuda_args a = { dp(params), dp(state), dp(cell_pos), dp(frames), dp(starts), dp(ws), dp(y), 0, 0,
                       seed, B, 0 };
    s->last_B = 0;
    if (run_phase(be, RC_CU_TRAIN_FWD, &a)) return -1;
    s->seed = seed;
    s->last_B = B;
    return 0;
}

static int cu_train_backward(rc_backend *be, int B, const float *params, const int *cell_pos,
                             const float *frames, const int64_t *starts, const float *dy,
                             float *grads, float *ws)
{
    cu_self *s = be->self;
    if (check_batch(be, B, 1, cell_pos)) return -1;
    if (s->last_B != B)
        return bfail(be, "cuda: %s: backward with batch %d after a forward with batch %d", be->ir->name, B,
                     s->last_B);
    rc_cuda_args a = { dp(params), 0, dp(cell_pos), dp(frames), dp(starts), dp(ws), 0, dp(dy), dp(grads),
                       s->seed, B, 0 };
    return run_phase(be, RC_CU_TRAIN_BWD, &a);
}

static int cu_infer(rc_backend *be, int B, const float *params, const float *state,
                    const int *cell_pos, const float *frames, const int64_t *starts, float *y,
                    float *ws)
{
    if (check_batch(be, B, 0, cell_pos)) return -1;
    rc_cuda_args a = { dp(params), dp(state), dp(cell_pos), dp(frames), dp(starts), dp(ws), dp(y), 0, 0,
                       0, B, 0 };
    return run_phase(be, RC_CU_INFER, &a);
}

static void cu_destroy(rc_backend *be)
{
    if (!be) return;
    cu_self *s = be->self;
    if (s) {
        if (s->mod) s->dev->ops->module_unload(s->dev, s->mod);
        free(s->fn);
        free(s->src);
        rc_cuda_plan_free(&s->plan);
        if (s->own_dev) rc_cuda_close(s->dev);
        free(s);
    }
    free(be);
}

int rc_cuda_backend_create_on(const rc_ir *ir, rc_cuda_dev *dev, rc_backend **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    rc_backend *be = calloc(1, sizeof *be);
    cu_self *s = calloc(1, sizeof *s);
    if (!be || !s) { free(be); free(s); snprintf(err, errlen, "cuda: out of memory"); return -1; }
    s->dev = dev;
    be->name = "cuda";
    be->ir = ir;
    be->self = s;
    be->ws_floats = cu_ws_floats;
    be->train_forward = cu_train_forward;
    be->train_backward = cu_train_backward;
    be->infer = cu_infer;
    be->destroy = cu_destroy;
    for (int i = 0; i < ir->n_layers; i++) s->has_gc |= ir->layers[i].readout_h > 0;   /* gcconv or cellpick */
    char e2[512];
    if (rc_emit_cuda(ir, NULL, &s->src, &s->plan, e2, sizeof e2)) {
        snprintf(err, errlen, "cuda: %s: %s", ir->name, e2);
        cu_destroy(be);
        return -1;
    }
    char pname[128];
    snprintf(pname, sizeof pname, "%s.cu", ir->name);
    if (dev->ops->module_load(dev, s->src, pname, &s->mod)) {
        snprintf(err, errlen, "%s", dev->err);
        cu_destroy(be);
        return -1;
    }
    s->fn = calloc((size_t)s->plan.n_launch + 1, sizeof *s->fn);
    if (!s->fn) { snprintf(err, errlen, "cuda: out of memory"); cu_destroy(be); return -1; }
    for (int k = 0; k < s->plan.n_launch; k++)
        if (dev->ops->get_function(dev, s->mod, s->plan.launch[k].name, &s->fn[k])) {
            snprintf(err, errlen, "%s", dev->err);
            cu_destroy(be);
            return -1;
        }
    *out = be;
    return 0;
}

int rc_cuda_backend_create(const rc_ir *ir, rc_backend **out, char *err, size_t errlen)
{
    rc_cuda_dev *dev = NULL;
    *out = NULL;
    if (rc_cuda_open(0, &dev, err, errlen)) return -1;
    if (rc_cuda_backend_create_on(ir, dev, out, err, errlen)) { rc_cuda_close(dev); return -1; }
    ((cu_self *)(*out)->self)->own_dev = 1;
    return 0;
}

rc_cuda_dev *rc_cuda_backend_device(rc_backend *be) { return ((cu_self *)be->self)->dev; }
const char *rc_cuda_backend_source(rc_backend *be) { return ((cu_self *)be->self)->src; }

/* ---------------------------------------------------------------- memory helpers */

void *rc_cuda_malloc(rc_cuda_dev *d, size_t bytes)
{
    uint64_t p = 0;
    if (d->ops->alloc(d, bytes, &p)) return NULL;
    return (void *)(uintptr_t)p;
}

int rc_cuda_free(rc_cuda_dev *d, void *p) { return p ? d->ops->free(d, dp(p)) : 0; }
int rc_cuda_upload(rc_cuda_dev *d, void *dst, const void *src, size_t n) { return d->ops->htod(d, dp(dst), src, n); }
int rc_cuda_download(rc_cuda_dev *d, void *dst, const void *src, size_t n) { return d->ops->dtoh(d, dst, dp(src), n); }
int rc_cuda_copy(rc_cuda_dev *d, void *dst, const void *src, size_t n) { return d->ops->dtod(d, dp(dst), dp(src), n); }
int rc_cuda_zero(rc_cuda_dev *d, void *dst, size_t n) { return d->ops->zero(d, dp(dst), n); }
int rc_cuda_sync(rc_cuda_dev *d) { return d->ops->sync(d); }
