/* backend_c.c — the JIT-compiled C backend: emit C for the IR, build it through the cache,
 * dlopen it, verify its hash against the IR, and forward the backend.h calls to the module's
 * ABI (backend_c.h). Error codes of the module become one-line messages naming the layer.
 */
#include "errbuf.h"
#include "backend_c.h"
#include "emit_c.h"
#include "jit.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef size_t (*ws_fn)(int);
typedef int (*tf_fn)(int, const float *, float *, const int *, uint64_t, const float *, const int64_t *,
                     float *, float *);
typedef int (*tb_fn)(int, const float *, const int *, const float *, const int64_t *, const float *,
                     float *, float *);
typedef int (*inf_fn)(int, const float *, const float *, const int *, const float *, const int64_t *,
                      float *, float *);

typedef struct {
    void *dl;
    ws_fn ws_floats;
    tf_fn train_forward;
    tb_fn train_backward;
    inf_fn infer;
    char so_path[4400];
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
    default: snprintf(be->err, sizeof be->err, "c: %s: %s: error code %d", ir->name, what, rc); break;
    }
    return -1;
}

static size_t c_ws_floats(rc_backend *be, int B)
{
    c_self *s = be->self;
    return s->ws_floats(B);
}

static int c_train_forward(rc_backend *be, int B, const float *params, float *state, const int *cell_pos,
                           uint64_t seed, const float *frames, const int64_t *starts, float *y, float *ws)
{
    c_self *s = be->self;
    return code_err(be, s->train_forward(B, params, state, cell_pos, seed, frames, starts, y, ws), B, "train_forward");
}

static int c_train_backward(rc_backend *be, int B, const float *params, const int *cell_pos, const float *frames,
                            const int64_t *starts, const float *dy, float *grads, float *ws)
{
    c_self *s = be->self;
    return code_err(be, s->train_backward(B, params, cell_pos, frames, starts, dy, grads, ws), B, "train_backward");
}

static int c_infer(rc_backend *be, int B, const float *params, const float *state, const int *cell_pos,
                   const float *frames, const int64_t *starts, float *y, float *ws)
{
    c_self *s = be->self;
    return code_err(be, s->infer(B, params, state, cell_pos, frames, starts, y, ws), B, "infer");
}

static void c_destroy(rc_backend *be)
{
    if (!be) return;
    c_self *s = be->self;
    if (s && s->dl) dlclose(s->dl);
    free(s);
    free(be);
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
    int rc = rc_jit_build(src, label, s->so_path, sizeof s->so_path, NULL, err, errlen);
    free(src);
    if (rc) goto fail;
    s->dl = rc_jit_open(s->so_path, err, errlen);
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
    char want[65];
    rc_ir_hash(ir, want);
    if (*abi != RCG_ABI_VERSION || strcmp(hash, want) || *cells != ir->cells) {
        rc_errf(err, errlen, "c: %s: %s was generated for another model (abi %d, hash %.12s, %d cells; want abi %d, "
              "hash %.12s, %d cells)", ir->name, s->so_path, *abi, hash, *cells, RCG_ABI_VERSION, want, ir->cells);
        goto fail;
    }
    be->name = "c";
    be->ir = ir;
    be->self = s;
    be->ws_floats = c_ws_floats;
    be->train_forward = c_train_forward;
    be->train_backward = c_train_backward;
    be->infer = c_infer;
    be->destroy = c_destroy;
    *out = be;
    return 0;
fail:
    if (s->dl) dlclose(s->dl);
    free(s);
    free(be);
    return -1;
}
