/* backend_c.c — the JIT-compiled C backend: emit C for the IR, build it through the cache,
 * dlopen it, verify its hash against the IR, and forward the backend.h calls to the module's
 * ABI (backend_c.h). Error codes of the module become one-line messages naming the layer.
 *
 * FFT first conv: when layer 1 is a plain conv the module also exports the rcg_*_ext entry
 * points, which start from layer 1's conv output (and stop at its gradient); for a stacked
 * layer 1 only the inference one, plus rcg_ext_weights (the collapsed kernel). This backend then
 * runs layer 1 itself with runtime/backend/fftconv.c on the frame stream declared by set_stream: frame
 * spectra are computed lazily in blocks of FFT_BLOCK frames and kept until the next set_stream.
 * A call takes the FFT path only if its frames pointer is the declared stream and every window
 * lies in it; otherwise the module's direct path runs (same results to fp32 rounding).
 * Invariant: the spectra of block k are valid iff done[k]; set_stream clears every flag.
 *
 * Later convs by FFT: the module offers each plain conv after the first to the conv hooks
 * (rc_c_hooks, backend_c.h), which run it with the same fftconv.c, each sample's C input maps
 * being the frames of one window (starts[b] = b * C): per sample C forward and O inverse
 * transforms instead of bncnn layer 2's 5.2 M MACs. A training forward keeps its input's spectra
 * for the backward (weight gradient, and the input gradient from the output gradient's spectra);
 * they serve it only while they are that input's (same x and B, no inference since).
 */
#include "errbuf.h"
#include "backend_c.h"
#include "data.h"
#include "emit_c.h"
#include "fftconv.h"
#include "jit.h"
#include "lower.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FFT_BLOCK 256   /* frames per lazily computed spectra block (~2.7 MB at 50x50) */

typedef size_t (*ws_fn)(int);
typedef const rc_c_hooks *hk_t;
typedef int (*tf_fn)(int, const float *, float *, const int *, uint64_t, const float *, const int64_t *,
                     float *, float *, hk_t);
typedef int (*tb_fn)(int, const float *, const int *, const float *, const int64_t *, const float *,
                     float *, float *, hk_t);
typedef int (*inf_fn)(int, const float *, const float *, const int *, const float *, const int64_t *,
                      float *, float *, hk_t);

typedef int (*tfx_fn)(int, const float *, float *, const int *, uint64_t, float *, float *, hk_t);
typedef int (*tbx_fn)(int, const float *, const int *, const float *, float *, float *, hk_t);
typedef int (*infx_fn)(int, const float *, const float *, const int *, float *, float *, hk_t);

/* A later conv layer run by FFT through the module's conv hooks: each sample's C input maps are
 * the "frames" of one window (starts[b] = b * C). The spectra of the last training forward's
 * input stay for its backward (valid while spec_x, spec_B match and no inference ran since). */
typedef struct {
    rc_fftconv *p;                /* NULL: the module's own kernels run this layer */
    int C;
    float *spec;                  /* (B * C maps x fst) floats */
    size_t spec_cap;
    const float *spec_x;
    int spec_B, spec_valid;
    int64_t calls;                /* hook calls this layer took (tests, bench) */
} c_lconv;
typedef size_t (*xoff_fn)(int, int);
typedef size_t (*xw_fn)(int, const float *, float *);

typedef struct {
    void *dl;
    ws_fn ws_floats;
    tf_fn train_forward;
    tb_fn train_backward;
    inf_fn infer;
    /* external first conv (NULL when the module has none) */
    tfx_fn train_forward_ext;
    tbx_fn train_backward_ext;
    infx_fn infer_ext;
    xoff_fn ext_offset;
    xw_fn ext_weights;            /* stacked layer 1: collapses it into the workspace (else NULL) */
    int fft_mode;                 /* RC_C_FFT_* asked for */
    rc_fftconv *fft;              /* non-NULL: the FFT path is on */
    int64_t w_off, b_off;         /* layer 1 weight (Cout, C, K, K) and bias (-1: none) offsets */
    /* the declared stream and its spectra */
    const float *sframes;         /* (sT, H, W) */
    int64_t sT;
    float *spectra;               /* (sT x fst) floats, NULL if over the memory budget */
    size_t spectra_cap;           /* floats allocated */
    uint8_t *done;                /* (ceil(sT / FFT_BLOCK)) */
    size_t done_cap;
    int64_t fft_calls;            /* calls that took the FFT path (tests, bench) */
    char so_path[4400];
    rc_ir *low;                   /* the module's view of the IR: defined layers lowered (lower.h) */
    /* conv hooks (rcg_hooks of the module): later conv layers by FFT */
    rc_c_hooks hooks;
    c_lconv lc[RC_MAX_LAYERS];
    int64_t *hstarts;             /* (hstarts_cap) b * C */
    int hstarts_cap;
    char hook_err[200];
} c_self;


/* Translate a module return code into be->err. */
static int code_err(rc_backend *be, int rc, int B, const char *what)
{
    if (rc == 0) return 0;
    int code = rc >> 8, li = rc & 255;
    const rc_ir *ir = be->ir;
    const char *kind = li < ir->n_layers ? rc_layer_kind_name(ir->layers[li].kind) : "?";
    switch (code) {
    case 1: snprintf(be->err, sizeof be->err, "c: %s: %s: batch %d, must be at least 1", ir->name, what, B); break;
    case 2:
        snprintf(be->err, sizeof be->err, "c: %s: %s: batch %d does not match the last train_forward on this "
                 "workspace", ir->name, what, B);
        break;
    case 3:
        snprintf(be->err, sizeof be->err, "c: %s: %s: layer %d (%s): a cell position is outside the %dx%d map "
                 "(or cell_pos is NULL)", ir->name, what, li + 1, kind, ir->layers[li].in.h - ir->layers[li].kernel + 1,
                 ir->layers[li].in.w - ir->layers[li].kernel + 1);
        break;
    case 4:
        snprintf(be->err, sizeof be->err, "c: %s: %s: layer %d (%s): training needs more than one value per "
                 "feature (batch %d)", ir->name, what, li + 1, kind, B);
        break;
    case 5:
        snprintf(be->err, sizeof be->err, "c: %s: %s: layer %d (%s), FFT path: %s", ir->name, what, li + 1, kind,
                 ((const c_self *)be->self)->hook_err);
        break;
    default: snprintf(be->err, sizeof be->err, "c: %s: %s: error code %d", ir->name, what, rc); break;
    }
    return -1;
}

static size_t c_ws_floats(rc_backend *be, int B)
{
    c_self *s = be->self;
    return s->ws_floats(B);
}

/* ---------------------------------------------------------------- FFT first conv */

static int fft_err(rc_backend *be, const char *what)
{
    c_self *s = be->self;
    snprintf(be->err, sizeof be->err, "c: %s: %s: layer 1 (conv), FFT path: %s", be->ir->name, what,
             rc_fftconv_error(s->fft));
    return -1;
}

/* 1 if this call can take the FFT path: spectra of every frame its windows read are then valid. */
static int fft_ready(rc_backend *be, int B, const float *frames, const int64_t *starts, const char *what, int *rc)
{
    c_self *s = be->self;
    *rc = 0;
    if (!s->fft || !s->spectra || frames != s->sframes || B < 1) return 0;
    const int C = be->ir->layers[0].in.c;
    for (int b = 0; b < B; b++)
        if (starts[b] < 0 || starts[b] > s->sT - C) return 0;
    const int64_t hw = (int64_t)be->ir->in.h * be->ir->in.w;
    const size_t fst = rc_fftconv_spectra_floats(s->fft, 1);
    for (int b = 0; b < B; b++) {
        for (int64_t k = starts[b] / FFT_BLOCK; k <= (starts[b] + C - 1) / FFT_BLOCK; k++) {
            if (s->done[k]) continue;
            int64_t t0 = k * FFT_BLOCK, n = s->sT - t0 < FFT_BLOCK ? s->sT - t0 : FFT_BLOCK;
            if (rc_fftconv_spectra(s->fft, s->sframes + t0 * hw, n, s->spectra + (size_t)t0 * fst)) {
                *rc = fft_err(be, what);
                return 0;
            }
            s->done[k] = 1;
        }
    }
    s->fft_calls++;
    return 1;
}

/* The frame spectra: a batch's windows gather lines from all over them (one per frame, bin block
 * and window), so with 4 KB pages nearly every line of a large stream is a TLB miss. A buffer
 * past HUGE_MIN bytes (beyond what the TLB maps with 4 KB pages) is 2 MB-aligned and advised for
 * transparent huge pages (Linux's default THP mode is madvise); where the advice is refused it
 * keeps 4 KB pages and works the same. Smaller ones (a test movie) are left alone: their first
 * touch would pay for the kernel's huge-page compaction and gain nothing. */
#define HUGE_MIN ((size_t)64 << 20)
static float *alloc_spectra(size_t floats)
{
    size_t bytes = floats * sizeof(float);
    if (bytes < HUGE_MIN) return malloc(bytes);
    const size_t al = (size_t)2 << 20;
    bytes = (bytes + al - 1) / al * al;
    void *p = NULL;
    if (posix_memalign(&p, al, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (madvise(p, bytes, MADV_HUGEPAGE) != 0) { /* advice only: 4 KB pages then */ }
#endif
    return p;
}

static int c_set_stream(rc_backend *be, const float *frames, int64_t T)
{
    c_self *s = be->self;
    s->sframes = NULL;
    s->sT = 0;
    if (!s->fft || !frames || T < be->ir->layers[0].in.c) return 0;
    size_t budget = be->stream_budget;
    if (!budget && rc_data_budget_from_env(&budget, be->err, sizeof be->err) < 0) return -1;
    size_t need = rc_fftconv_spectra_floats(s->fft, T), nblk = (size_t)((T + FFT_BLOCK - 1) / FFT_BLOCK);
    if (need > budget / sizeof(float)) return 0;   /* over the memory budget: the direct path */
    if (need > s->spectra_cap) {
        free(s->spectra);
        s->spectra = alloc_spectra(need);
        s->spectra_cap = s->spectra ? need : 0;
        if (!s->spectra) return rc_errf(be->err, sizeof be->err, "c: %s: out of memory for the spectra of %lld frames",
                                        be->ir->name, (long long)T);
    }
    if (nblk > s->done_cap) {
        free(s->done);
        s->done = malloc(nblk);
        s->done_cap = s->done ? nblk : 0;
        if (!s->done) return rc_errf(be->err, sizeof be->err, "c: %s: out of memory", be->ir->name);
    }
    memset(s->done, 0, nblk);
    s->sframes = frames;
    s->sT = T;
    return 0;
}

size_t rc_c_stream_bytes_per_frame(const rc_ir *ir)
{
    char err[256];
    rc_ir *low = ir->n_layers >= 2 ? malloc(sizeof *low) : NULL;   /* large: not on the stack */
    if (!low) return 0;
    size_t n = 0;
    if (rc_ir_lower(ir, low, err, sizeof err) >= 0) {
        const rc_layer *L = &low->layers[0];   /* a def.conv layer 1 is a conv here, as in the module */
        if (L->kind == RC_LAYER_CONV && L->period == 1) n = rc_fftconv_frame_floats(L->in.h, L->in.w) * sizeof(float);
    }
    free(low);
    return n;
}

/* ---------------------------------------------------------------- conv hooks: later layers by FFT */

static int hook_fail(c_self *s, const char *msg)
{
    snprintf(s->hook_err, sizeof s->hook_err, "%s", msg);
    return -1;
}

/* Room for the spectra of the B * C input maps of layer li (starts b * C); marks them not yet
 * computed. */
static int hook_room(c_self *s, int li, int B)
{
    c_lconv *c = &s->lc[li];
    int64_t T = (int64_t)B * c->C;
    size_t need = rc_fftconv_spectra_floats(c->p, T);
    if (need > c->spec_cap) {
        free(c->spec);
        c->spec = malloc(need * sizeof(float));
        c->spec_cap = c->spec ? need : 0;
        if (!c->spec) return hook_fail(s, "out of memory for the input spectra");
    }
    if (B > s->hstarts_cap) {
        free(s->hstarts);
        s->hstarts = malloc((size_t)B * sizeof *s->hstarts);
        s->hstarts_cap = s->hstarts ? B : 0;
        if (!s->hstarts) return hook_fail(s, "out of memory");
    }
    c->spec_valid = 0;
    return 0;
}

static void hook_starts(c_self *s, int B, int C)
{
    for (int b = 0; b < B; b++) s->hstarts[b] = (int64_t)b * C;
}

static int hook_conv(void *self, int op, int li, int B, const float *x, const float *w, const float *bias, float *y)
{
    c_self *s = self;
    if (li < 1 || li >= RC_MAX_LAYERS || !s->lc[li].p || B < 1) return 1;
    c_lconv *c = &s->lc[li];
    if (hook_room(s, li, B)) return -1;
    hook_starts(s, B, c->C);
    if (rc_fftconv_forward_frames(c->p, x, (int64_t)B * c->C, c->spec, s->hstarts, B, w, bias, y))
        return hook_fail(s, rc_fftconv_error(c->p));
    if (op == 0) {   /* RCG_HOOK_TRAIN: keep the spectra for the backward */
        c->spec_x = x;
        c->spec_B = B;
        c->spec_valid = 1;
    }
    c->calls++;
    return 0;
}

static int hook_conv_bwd(void *self, int li, int B, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db)
{
    c_self *s = self;
    if (li < 1 || li >= RC_MAX_LAYERS || !s->lc[li].p || B < 1) return 1;
    c_lconv *c = &s->lc[li];
    if (!(c->spec_valid && c->spec_x == x && c->spec_B == B)) {   /* not the forward's input */
        if (hook_room(s, li, B)) return -1;
        if (rc_fftconv_spectra(c->p, x, (int64_t)B * c->C, c->spec)) return hook_fail(s, rc_fftconv_error(c->p));
    }
    hook_starts(s, B, c->C);
    if (rc_fftconv_backward(c->p, c->spec, (int64_t)B * c->C, s->hstarts, B, w, dy, dw, db, dx))
        return hook_fail(s, rc_fftconv_error(c->p));
    c->calls++;
    return 0;
}

/* Direct MACs of conv layer L per sample against its FFT work (the O x C frequency-domain
 * product-sums at 4 real MACs per complex one, plus `transforms` 2-D transforms per sample): the
 * FFT is worth it when it does well under half the direct work. Layer 1 pays O inverse
 * transforms (its frame spectra are shared by the windows: bncnn 93 M vs ~1.8 M); a later layer
 * also C forward ones (bncnn layer 2: 5.2 M vs ~1.4 M). */
static int fft_pays(const rc_layer *L, int transforms)
{
    double K = L->kernel, C = L->in.c, H = L->in.h, W = L->in.w, O = L->out.c;
    double direct = O * C * K * K * (H - K + 1) * (W - K + 1);
    double nb = H * (W / 2 + 1), fft = O * C * nb * 4 + transforms * 5 * H * W * 12;
    return fft < 0.5 * direct;
}

static void hooks_drop(c_self *s)
{
    for (int li = 0; li < RC_MAX_LAYERS; li++) {
        rc_fftconv_destroy(s->lc[li].p);
        free(s->lc[li].spec);
        memset(&s->lc[li], 0, sizeof s->lc[li]);
    }
}

/* Plans for the conv layers after the first that the module can hand to the hooks (a plain conv
 * over the previous layer's output: emit_c.c em_hook_conv) and where mode asks for the FFT. */
static int hooks_plan(c_self *s, int mode, char *err, size_t errlen)
{
    const rc_ir *ir = s->low;
    for (int li = 1; li < ir->n_layers && li < RC_MAX_LAYERS; li++) {
        const rc_layer *L = &ir->layers[li];
        char wn[32];
        snprintf(wn, sizeof wn, "%d.conv.weight", li + 1);
        const rc_param *w = rc_ir_find_param(ir, wn);
        int ok = L->kind == RC_LAYER_CONV && !L->stack && L->period == 1 && w &&
                 w->count == (int64_t)L->out.c * L->in.c * L->kernel * L->kernel &&
                 L->out.h == L->in.h - L->kernel + 1 && L->out.w == L->in.w - L->kernel + 1;
        int want = ok && (mode == RC_C_FFT_ON || (mode == RC_C_FFT_AUTO && fft_pays(L, L->out.c + L->in.c)));
        if (!want || s->lc[li].p) continue;
        if (rc_fftconv_create(L->in.c, L->in.h, L->in.w, L->out.c, L->kernel, 0, &s->lc[li].p, err, errlen))
            return -1;
        s->lc[li].C = L->in.c;
    }
    return 0;
}

/* ---------------------------------------------------------------- backend.h calls */

static int c_train_forward(rc_backend *be, int B, const float *params, float *state, const int *cell_pos,
                           uint64_t seed, const float *frames, const int64_t *starts, float *y, float *ws)
{
    c_self *s = be->self;
    int rc = 0;
    if (s->train_forward_ext && fft_ready(be, B, frames, starts, "train_forward", &rc)) {
        if (rc_fftconv_forward(s->fft, s->spectra, s->sT, starts, B, params + s->w_off,
                               s->b_off >= 0 ? params + s->b_off : NULL, ws + s->ext_offset(B, 0)))
            return fft_err(be, "train_forward");
        return code_err(be, s->train_forward_ext(B, params, state, cell_pos, seed, y, ws, &s->hooks), B,
                        "train_forward");
    }
    if (rc) return rc;
    return code_err(be, s->train_forward(B, params, state, cell_pos, seed, frames, starts, y, ws, &s->hooks), B,
                    "train_forward");
}

static int c_train_backward(rc_backend *be, int B, const float *params, const int *cell_pos, const float *frames,
                            const int64_t *starts, const float *dy, float *grads, float *ws)
{
    c_self *s = be->self;
    int rc = 0;
    if (s->train_backward_ext && fft_ready(be, B, frames, starts, "train_backward", &rc)) {
        if (code_err(be, s->train_backward_ext(B, params, cell_pos, dy, grads, ws, &s->hooks), B, "train_backward"))
            return -1;
        if (rc_fftconv_backward_weight(s->fft, s->spectra, s->sT, starts, B, ws + s->ext_offset(B, 2), grads + s->w_off,
                                       s->b_off >= 0 ? grads + s->b_off : NULL))
            return fft_err(be, "train_backward");
        return 0;
    }
    if (rc) return rc;
    return code_err(be, s->train_backward(B, params, cell_pos, frames, starts, dy, grads, ws, &s->hooks), B,
                    "train_backward");
}

static int c_infer(rc_backend *be, int B, const float *params, const float *state, const int *cell_pos,
                   const float *frames, const int64_t *starts, float *y, float *ws)
{
    c_self *s = be->self;
    int rc = 0;
    if (fft_ready(be, B, frames, starts, "infer", &rc)) {
        const float *w = s->ext_weights ? ws + s->ext_weights(B, params, ws) : params + s->w_off;
        if (rc_fftconv_forward(s->fft, s->spectra, s->sT, starts, B, w,
                               s->b_off >= 0 ? params + s->b_off : NULL, ws + s->ext_offset(B, 1)))
            return fft_err(be, "infer");
        return code_err(be, s->infer_ext(B, params, state, cell_pos, y, ws, &s->hooks), B, "infer");
    }
    if (rc) return rc;
    return code_err(be, s->infer(B, params, state, cell_pos, frames, starts, y, ws, &s->hooks), B, "infer");
}

static void c_destroy(rc_backend *be)
{
    if (!be) return;
    c_self *s = be->self;
    if (s && s->dl) dlclose(s->dl);
    if (s) {
        rc_fftconv_destroy(s->fft);
        free(s->spectra);
        free(s->done);
        hooks_drop(s);
        free(s->hstarts);
    }
    free(s->low);
    free(s);
    free(be);
}

int rc_c_backend_set_fft(rc_backend *be, int mode, char *err, size_t errlen)
{
    c_self *s = be->self;
    const rc_ir *ir = s->low;   /* a def.conv layer 1 is a conv here, as in the module */
    s->fft_mode = mode;
    hooks_drop(s);
    if (mode != RC_C_FFT_OFF && hooks_plan(s, mode, err, errlen)) return -1;
    int want = mode == RC_C_FFT_ON || (mode == RC_C_FFT_AUTO && fft_pays(&ir->layers[0], ir->layers[0].out.c));
    if (want && !s->ext_offset) {
        if (mode == RC_C_FFT_ON) {
            hooks_drop(s);
            return rc_errf(err, errlen, "c: %s: the FFT first conv needs layer 1 to be a plain or stacked (not tiled) "
                           "conv followed by more layers", ir->name);
        }
        want = 0;
    }
    if (!want) {   /* drop the plan and the spectra: the direct path needs neither */
        rc_fftconv_destroy(s->fft);
        free(s->spectra);
        free(s->done);
        s->fft = NULL;
        s->spectra = NULL;
        s->done = NULL;
        s->spectra_cap = s->done_cap = 0;
        s->sframes = NULL;
        return 0;
    }
    if (s->fft) return 0;
    const rc_layer *L = &ir->layers[0];
    char wn[32], bn[32];
    snprintf(wn, sizeof wn, "1.%s.weight", rc_layer_kind_name(L->kind));
    snprintf(bn, sizeof bn, "1.%s.bias", rc_layer_kind_name(L->kind));
    const rc_param *w = rc_ir_find_param(ir, wn), *bias = rc_ir_find_param(ir, bn);
    if (!s->ext_weights && (!w || w->count != (int64_t)L->out.c * L->in.c * L->kernel * L->kernel))
        return rc_errf(err, errlen, "c: %s: layer 1 (conv): no parameter '%s' of %d x %d x %d x %d floats", ir->name,
                       wn, L->out.c, L->in.c, L->kernel, L->kernel);
    s->w_off = w ? w->offset : -1;
    s->b_off = bias && L->bias ? bias->offset : -1;
    if (rc_fftconv_create(L->in.c, L->in.h, L->in.w, L->out.c, L->kernel, 0, &s->fft, err, errlen)) return -1;
    return 0;
}

int rc_c_backend_fft(const rc_backend *be)
{
    if (!be || !be->name || strcmp(be->name, "c")) return 0;
    return ((const c_self *)be->self)->fft != NULL;
}

int64_t rc_c_backend_fft_calls(const rc_backend *be)
{
    if (!be || !be->name || strcmp(be->name, "c")) return 0;
    return ((const c_self *)be->self)->fft_calls;
}

int64_t rc_c_backend_hook_calls(const rc_backend *be, int layer)
{
    if (!be || !be->name || strcmp(be->name, "c") || layer < 0 || layer >= RC_MAX_LAYERS) return -1;
    const c_self *s = be->self;
    return s->lc[layer].p ? s->lc[layer].calls : -1;
}

const char *rc_c_backend_object(const rc_backend *be)
{
    if (!be || !be->name || strcmp(be->name, "c")) return NULL;
    return ((const c_self *)be->self)->so_path;
}

int rc_c_backend_create(const rc_ir *ir, rc_backend **out, char *err, size_t errlen)
{
    *out = NULL;
    char *src = NULL;
    if (rc_emit_c(ir, NULL, &src, err, errlen)) return -1;
    c_self *s = calloc(1, sizeof *s);
    rc_backend *be = calloc(1, sizeof *be);
    if (!s || !be) { free(src); free(s); free(be); return rc_errf(err, errlen, "c: out of memory"); }
    char label[RC_NAME_MAX + 16];
    snprintf(label, sizeof label, "%s/model.c", ir->name);
    s->dl = rc_jit_load(src, label, s->so_path, sizeof s->so_path, err, errlen);
    free(src);
    if (!s->dl) goto fail;
    const char *hash = dlsym(s->dl, "rcg_hash");
    const int *abi = dlsym(s->dl, "rcg_abi"), *cells = dlsym(s->dl, "rcg_cells");
    s->ws_floats = (ws_fn)dlsym(s->dl, "rcg_ws_floats");
    s->train_forward = (tf_fn)dlsym(s->dl, "rcg_train_forward");
    s->train_backward = (tb_fn)dlsym(s->dl, "rcg_train_backward");
    s->infer = (inf_fn)dlsym(s->dl, "rcg_infer");
    if (!hash || !abi || !cells || !s->ws_floats || !s->train_forward || !s->train_backward || !s->infer) {
        rc_errf(err, errlen, "c: %s: %s lacks the rcg_* ABI symbols", ir->name, s->so_path);
        goto fail;
    }
    s->train_forward_ext = (tfx_fn)dlsym(s->dl, "rcg_train_forward_ext");
    s->train_backward_ext = (tbx_fn)dlsym(s->dl, "rcg_train_backward_ext");
    s->infer_ext = (infx_fn)dlsym(s->dl, "rcg_infer_ext");
    s->ext_offset = (xoff_fn)dlsym(s->dl, "rcg_ext_offset");
    s->ext_weights = (xw_fn)dlsym(s->dl, "rcg_ext_weights");
    const int *ext = dlsym(s->dl, "rcg_ext");
    int ok = ext && s->infer_ext && s->ext_offset &&
             (*ext == 1 ? s->train_forward_ext && s->train_backward_ext && !s->ext_weights
                        : *ext == 2 && s->ext_weights && !s->train_forward_ext && !s->train_backward_ext);
    if (!ok) {   /* no external first conv (or an inconsistent module: never use it) */
        s->train_forward_ext = NULL, s->train_backward_ext = NULL, s->infer_ext = NULL;
        s->ext_offset = NULL, s->ext_weights = NULL;
    }
    char want[65];
    rc_ir_hash(ir, want);
    if (*abi != RCG_ABI_VERSION || strcmp(hash, want) || *cells != ir->cells) {
        rc_errf(err, errlen, "c: %s: %s was generated for another model (abi %d, hash %.12s, %d cells; want abi %d, "
              "hash %.12s, %d cells)", ir->name, s->so_path, *abi, hash, *cells, RCG_ABI_VERSION, want, ir->cells);
        goto fail;
    }
    s->low = malloc(sizeof *s->low);
    if (!s->low) { rc_errf(err, errlen, "c: out of memory"); goto fail; }
    if (rc_ir_lower(ir, s->low, err, errlen) < 0) goto fail;
    be->name = "c";
    be->ir = ir;
    be->self = s;
    be->ws_floats = c_ws_floats;
    be->train_forward = c_train_forward;
    be->train_backward = c_train_backward;
    be->infer = c_infer;
    be->set_stream = c_set_stream;
    be->destroy = c_destroy;
    s->hooks.self = s;
    s->hooks.conv = hook_conv;
    s->hooks.conv_bwd = hook_conv_bwd;
    int mode = RC_C_FFT_AUTO;
    const char *env = getenv("RETINAC_FFT");
    if (env && *env) {
        if (!strcmp(env, "0")) mode = RC_C_FFT_OFF;
        else if (!strcmp(env, "1")) mode = RC_C_FFT_ON;
        else if (strcmp(env, "auto")) {
            rc_errf(err, errlen, "RETINAC_FFT='%s': expected 0, 1 or auto", env);
            goto fail;
        }
    }
    if (rc_c_backend_set_fft(be, mode, err, errlen)) goto fail;
    *out = be;
    return 0;
fail:
    rc_fftconv_destroy(s->fft);
    hooks_drop(s);
    if (s->dl) dlclose(s->dl);
    free(s->low);
    free(s);
    free(be);
    return -1;
}
