/* backend_cuda.c — the CUDA backend: renders the IR with emit_cuda, loads the module through
 * the device layer (NVRTC + driver API, or the host emulation in tests), and interprets the
 * launch plan for train_forward / train_backward / infer. Also the device memory helpers and
 * the device-side Adam and loss (see backend_cuda.h).
 *
 * Invariants: the plan and the module come from one rc_emit_cuda call, so kernel names, grid
 * formulas and workspace offsets agree; all launches go to the default stream in plan order and
 * every entry point synchronizes once at its end; the seed and batch of the last
 * train_forward are kept host-side for train_backward (dropout masks are recomputed from them).
 */
#include "errbuf.h"
#include "backend_cuda.h"
#include "emit_cuda.h"

#include <math.h>
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
    for (int i = 0; i < ir->n_layers; i++) s->has_gc |= ir->layers[i].kind == RC_LAYER_GCCONV;
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

/* ---------------------------------------------------------------- Adam and loss */

/* Must match struct rc_uargs in rc_cuda_util_source(). */
typedef struct {
    uint64_t w, g, m, v, pred, target, dy, part;
    int64_t n;
    double lr, b1, b2, eps, wd, bc1, bc2s, l1c;
    int32_t adamw, kind, B, pad_;
} util_args;

struct rc_cuda_util {
    rc_cuda_dev *dev;
    void *mod, *adam, *loss;
    double *part_host;
    void *part_dev;
    int64_t part_cap;   /* blocks */
    char err[1024];
};

int rc_cuda_util_create(rc_cuda_dev *d, rc_cuda_util **out, char *err, size_t errlen)
{
    *out = NULL;
    rc_cuda_util *u = calloc(1, sizeof *u);
    if (!u) { snprintf(err, errlen, "cuda: out of memory"); return -1; }
    u->dev = d;
    if (d->ops->module_load(d, rc_cuda_util_source(), "retinac_util.cu", &u->mod) ||
        d->ops->get_function(d, u->mod, "rc_util_adam", &u->adam) ||
        d->ops->get_function(d, u->mod, "rc_util_loss", &u->loss)) {
        snprintf(err, errlen, "%s", d->err);
        rc_cuda_util_destroy(u);
        return -1;
    }
    *out = u;
    return 0;
}

void rc_cuda_util_destroy(rc_cuda_util *u)
{
    if (!u) return;
    if (u->part_dev) rc_cuda_free(u->dev, u->part_dev);
    if (u->mod) u->dev->ops->module_unload(u->dev, u->mod);
    free(u->part_host);
    free(u);
}

const char *rc_cuda_util_error(rc_cuda_util *u) { return u->err; }

int rc_cuda_adam_step(rc_cuda_util *u, rc_optim *o, float *w, const float *g, float *mv)
{
    o->step++;
    double t = (double)o->step;
    util_args a;
    memset(&a, 0, sizeof a);
    a.w = dp(w); a.g = dp(g); a.m = dp(mv); a.v = dp(mv + o->n);
    a.n = o->n;
    a.lr = o->lr; a.b1 = o->beta1; a.b2 = o->beta2; a.eps = o->eps; a.wd = o->weight_decay;
    a.bc1 = 1.0 - pow(o->beta1, t);
    a.bc2s = sqrt(1.0 - pow(o->beta2, t));
    a.adamw = o->kind == RC_OPT_ADAMW;
    if (o->n == 0) return 0;
    unsigned gx = (unsigned)((o->n + 255) / 256);
    if (u->dev->ops->launch(u->dev, u->adam, gx, 1, 256, &a, sizeof a) || u->dev->ops->sync(u->dev)) {
        snprintf(u->err, sizeof u->err, "cuda: adam: %.900s", u->dev->err);
        return -1;
    }
    return 0;
}

int rc_cuda_loss(rc_cuda_util *u, rc_loss kind, double l1, rc_l1_mode l1_mode, int B, int cells,
                 const float *pred, const float *target, float *dy, rc_loss_value *val)
{
    int64_t n = (int64_t)B * cells;
    memset(val, 0, sizeof *val);
    if (n <= 0) return 0;
    int64_t blocks = (n + 255) / 256;
    if (blocks > u->part_cap) {
        if (u->part_dev) rc_cuda_free(u->dev, u->part_dev);
        free(u->part_host);
        u->part_dev = rc_cuda_malloc(u->dev, (size_t)blocks * 2 * sizeof(double));
        u->part_host = malloc((size_t)blocks * 2 * sizeof(double));
        u->part_cap = u->part_dev && u->part_host ? blocks : 0;
        if (!u->part_cap) { snprintf(u->err, sizeof u->err, "cuda: loss: out of memory"); return -1; }
    }
    util_args a;
    memset(&a, 0, sizeof a);
    a.pred = dp(pred); a.target = dp(target); a.dy = dp(dy); a.part = dp(u->part_dev);
    a.n = n;
    a.kind = kind;
    a.B = B;
    a.l1c = l1_mode == RC_L1_MEAN ? l1 / (double)B : l1;
    if (u->dev->ops->launch(u->dev, u->loss, (unsigned)blocks, 1, 256, &a, sizeof a) ||
        u->dev->ops->dtoh(u->dev, u->part_host, dp(u->part_dev), (size_t)blocks * 2 * sizeof(double))) {
        snprintf(u->err, sizeof u->err, "cuda: loss: %.900s", u->dev->err);
        return -1;
    }
    double sd = 0, sa = 0;
    for (int64_t k = 0; k < blocks; k++) { sd += u->part_host[2 * k]; sa += u->part_host[2 * k + 1]; }
    val->data = sd / (double)n;
    val->l1 = a.l1c * sa;
    val->total = val->data + val->l1;
    return 0;
}
