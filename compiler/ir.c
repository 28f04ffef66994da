/* ir.c — field descriptors, defaults, shape inference, parameter layout, FLOPs, and the
 * canonical text form of the model IR (see ir.h for the invariants).
 *
 * The descriptor tables below are the single source of truth for every spec field: the Lua
 * loader, the canonical printer and the text parser all walk them. Canonical text writes every
 * field of every section in table order with the shortest decimal that round-trips, so equal
 * meaning gives equal bytes and so an equal sha256.
 */
#include "errbuf.h"
#include "ir.h"
#include "prim.h"
#include "search.h"
#include "sha256.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

static const char *const kind_names[RC_LAYER_COUNT] = {
    "conv", "dense", "batchnorm", "noise", "dropout", "act", "gcconv", "def",
};
static const char *const act_names[RC_ACT_COUNT + 1] = {
    "relu", "softplus", "exp", "abs", "square", "requ", "sigmoid", "tanh", "identity", NULL,
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == RC_LAYER_COUNT, "kind names");

static const char *const bn_over_names[] = {"unit", "channel", NULL};
static const char *const loss_names[] = {"poisson", "mse", "poisson_log", NULL};
static const char *const opt_names[] = {"adam", "adamw", NULL};
static const char *const l1_names[] = {"mean", "sum", NULL};
static const char *const output_init_names[] = {"torch", "mean_rate", NULL};
static const char *const bn_stats_names[] = {"ema", "precise", NULL};
static const char *const sched_names[] = {"none", "plateau", "step", NULL};
static const char *const val_names[] = {"block", "random", NULL};
static const char *const pos_names[] = {"center", "data", "reference", NULL};

const char *rc_layer_kind_name(rc_layer_kind k)
{
    return (unsigned)k < RC_LAYER_COUNT ? kind_names[k] : "?";
}

const char *rc_act_name(rc_act a) { return (unsigned)a < RC_ACT_COUNT ? act_names[a] : "?"; }

int rc_layer_kind_parse(const char *name, rc_layer_kind *kind, rc_act *act)
{
    for (int a = 0; a < RC_ACT_COUNT; a++)
        if (!strcmp(name, act_names[a])) { *kind = RC_LAYER_ACT; if (act) *act = (rc_act)a; return 0; }
    for (int k = 0; k < RC_LAYER_COUNT; k++)
        if (k != RC_LAYER_ACT && !strcmp(name, kind_names[k])) { *kind = (rc_layer_kind)k; return 0; }
    return -1;
}

/* The display name of a layer: the activation's own name for act layers. */
static const char *layer_name(const rc_layer *l)
{
    if (l->kind == RC_LAYER_DEF) return l->def_kind[0] ? l->def_kind : "def";
    return l->kind == RC_LAYER_ACT ? rc_act_name(l->act) : rc_layer_kind_name(l->kind);
}

/* ---------------------------------------------------------------- descriptors */

#define BIG 1e300
#define F_INT(st, f, lo, hi, d) {#f, RC_F_INT, offsetof(st, f), lo, hi, NULL, 0, 0, d, 0}
#define F_NUM(st, f, lo, hi, d) {#f, RC_F_NUM, offsetof(st, f), lo, hi, NULL, 0, 0, d, 0}
#define F_BOOL(st, f, d) {#f, RC_F_BOOL, offsetof(st, f), 0, 1, NULL, 0, 0, d, 0}
#define F_ENUM(st, f, names, d) {#f, RC_F_ENUM, offsetof(st, f), 0, 0, names, 0, 0, d, 0}

static const rc_field input_fields[] = {
    F_INT(rc_ir, history, 1, 4096, "frames of history, the input channels (oldest first)"),
    F_INT(rc_ir, height, 1, 16384, "frame height in pixels"),
    F_INT(rc_ir, width, 1, 16384, "frame width in pixels"),
    F_INT(rc_ir, crop, 0, 16384, "crop a crop x crop window around the cell's RF center (0 = none)"),
};

static const rc_field sched_fields[] = {
    F_INT(rc_schedule, tile_h, 0, 4096, "output rows per block (0 = auto)"),
    F_INT(rc_schedule, tile_w, 0, 4096, "output columns per block (0 = auto)"),
    F_INT(rc_schedule, tile_c, 0, 4096, "output channels per block (0 = auto)"),
    F_INT(rc_schedule, vector, 0, 64, "SIMD width in floats (0 = auto)"),
    F_INT(rc_schedule, threads, 0, 1024, "OpenMP threads (0 = all)"),
};

static const rc_field train_fields[] = {
    F_ENUM(rc_train, loss, loss_names, "poisson (reference), mse, or poisson_log (log-rate output: exp(y)-t*y)"),
    F_ENUM(rc_train, optimizer, opt_names, "adam (coupled L2, reference) or adamw"),
    F_NUM(rc_train, lr, 1e-12, 10, "learning rate"),
    F_NUM(rc_train, l2, 0, 1e6, "L2 weight decay on every trainable parameter"),
    F_NUM(rc_train, l1_activity, 0, 1e6, "L1 penalty on the output activity"),
    F_ENUM(rc_train, l1_mode, l1_names, "mean over the batch, or sum (reference)"),
    F_INT(rc_train, batch, 1, 1 << 20, "minibatch size"),
    F_INT(rc_train, epochs, 1, 1 << 20, "epochs"),
    F_ENUM(rc_train, schedule, sched_names, "learning-rate schedule"),
    F_NUM(rc_train, sched_factor, 1e-6, 1, "plateau: multiply lr by this"),
    F_INT(rc_train, sched_patience, 0, 1 << 20, "plateau: epochs without improvement"),
    F_NUM(rc_train, sched_threshold, 0, 1e6, "plateau: relative improvement that counts"),
    F_NUM(rc_train, sched_gamma, 1e-6, 1, "step: multiply lr by this at each milestone"),
    {"milestones", RC_F_INTLIST, offsetof(rc_train, milestones), 1, 1 << 20, NULL,
     offsetof(rc_train, n_milestones), RC_MAX_MILESTONES, "step: epochs at which lr drops", 0},
    F_INT(rc_train, early_patience, 0, 1 << 20, "stop after this many epochs without a better validation loss (0 = never)"),
    F_NUM(rc_train, early_min_delta, 0, 1e6, "smallest validation-loss decrease that counts"),
    {"seed", RC_F_U64, offsetof(rc_train, seed), 0, 18446744073709551615.0, NULL, 0, 0, "random seed", 0},
    F_NUM(rc_train, val_fraction, 0, 0.9, "fraction of training frames held out for validation"),
    F_ENUM(rc_train, val_split, val_names, "block (contiguous time blocks) or random (reference)"),
    {"output_init", RC_F_ENUM, offsetof(rc_train, output_init), 0, 0, output_init_names, 0, 0,
     "mean_rate (output bias from each cell's mean training rate) or torch (PyTorch's init, reference)", 1},
    {"bn_stats", RC_F_ENUM, offsetof(rc_train, bn_stats), 0, 0, bn_stats_names, 0, 0,
     "precise (running statistics recomputed for the saved weights) or ema (as trained, reference)", 1},
    {"output_lr", RC_F_NUM, offsetof(rc_train, output_lr), 0, 1000, NULL, 0, 0,
     "lr multiplier of the final batchnorm's scale and shift before the output nonlinearity (1 = reference)", 1},
};

static const rc_field conv_fields[] = {
    F_INT(rc_layer, channels, 1, 4096, "output channels"),
    F_INT(rc_layer, kernel, 1, 1024, "kernel size (square, valid, stride 1)"),
    F_BOOL(rc_layer, bias, "add a bias per output channel"),
    F_INT(rc_layer, period, 0, 1 << 16, "tile period: 1 = conv, 0 = full (locally connected)"),
    F_INT(rc_layer, stack, 0, 1024, "stacked conv: sub-kernel size (0 = plain conv)"),
    F_INT(rc_layer, stack_channels, 0, 4096, "stacked conv: inner channels (0 = channels)"),
    F_NUM(rc_layer, stack_dropout, 0, 0.99, "stacked conv: dropout between sub-convs (training)"),
};
static const rc_field dense_fields[] = {
    F_INT(rc_layer, units, 0, 1 << 20, "output units (0 = one per cell)"),
    F_BOOL(rc_layer, bias, "add a bias per unit"),
};
static const rc_field bn_fields[] = {
    F_ENUM(rc_layer, over, bn_over_names, "unit (flattened C*H*W, BatchNorm1d) or channel"),
    {"abs", RC_F_BOOL, offsetof(rc_layer, abs_scale), 0, 1, NULL, 0, 0, "use |scale| (abs BN)", 0},
    F_NUM(rc_layer, eps, 1e-12, 1, "variance epsilon"),
    F_NUM(rc_layer, momentum, 0, 1, "running-statistics momentum (PyTorch convention)"),
};
static const rc_field noise_fields[] = {
    F_NUM(rc_layer, std, 0, 1e6, "standard deviation of additive Gaussian noise (training)"),
};
static const rc_field dropout_fields[] = {
    F_NUM(rc_layer, p, 0, 0.99, "drop probability (training)"),
};
static const rc_field gcconv_fields[] = {
    F_INT(rc_layer, kernel, 1, 1024, "kernel size"),
    F_BOOL(rc_layer, bias, "add a bias per cell"),
    F_ENUM(rc_layer, position, pos_names, "readout position: center, data (RF centers), reference"),
};

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

const rc_field *rc_fields(rc_section sec, rc_layer_kind kind, int *n)
{
    switch (sec) {
    case RC_SECTION_INPUT: *n = NELEM(input_fields); return input_fields;
    case RC_SECTION_SCHEDULE: *n = NELEM(sched_fields); return sched_fields;
    case RC_SECTION_TRAIN: *n = NELEM(train_fields); return train_fields;
    case RC_SECTION_LAYER: break;
    }
    switch (kind) {
    case RC_LAYER_CONV: *n = NELEM(conv_fields); return conv_fields;
    case RC_LAYER_DENSE: *n = NELEM(dense_fields); return dense_fields;
    case RC_LAYER_BATCHNORM: *n = NELEM(bn_fields); return bn_fields;
    case RC_LAYER_NOISE: *n = NELEM(noise_fields); return noise_fields;
    case RC_LAYER_DROPOUT: *n = NELEM(dropout_fields); return dropout_fields;
    case RC_LAYER_GCCONV: *n = NELEM(gcconv_fields); return gcconv_fields;
    default: *n = 0; return NULL;
    }
}

/* Layers whose loops the schedule hints can block. */
static int layer_has_schedule(rc_layer_kind k)
{
    return k == RC_LAYER_CONV || k == RC_LAYER_GCCONV || k == RC_LAYER_DENSE;
}

/* ---------------------------------------------------------------- defaults */

void rc_layer_defaults(rc_layer *l, rc_layer_kind kind)
{
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->bias = 1;
    l->period = 1;
    l->position = RC_POS_DATA;
    l->over = RC_BN_UNIT;
    l->eps = 1e-3;
    l->momentum = 0.01;
    l->std = 0.05;
    l->p = 0.5;
    l->act = RC_ACT_IDENTITY;
}

void rc_ir_defaults(rc_ir *ir)
{
    memset(ir, 0, sizeof *ir);
    strcpy(ir->name, "model");
    ir->history = 40;
    ir->height = 50;
    ir->width = 50;
    rc_train *t = &ir->train;
    t->loss = RC_LOSS_POISSON;
    t->optimizer = RC_OPT_ADAM;
    t->lr = 5e-3;
    t->l2 = 1e-3;
    t->l1_activity = 1e-4;
    t->l1_mode = RC_L1_MEAN;
    t->batch = 512;
    t->epochs = 40;
    t->schedule = RC_SCHED_PLATEAU;
    t->sched_factor = 0.5;
    t->sched_patience = 6;
    t->sched_threshold = 0.01;
    t->sched_gamma = 0.1;
    t->early_patience = 10;
    t->early_min_delta = 0;
    t->seed = 1;
    t->val_fraction = 0.1;
    t->val_split = RC_VAL_BLOCK;
    ir->search.seed = 1;
}

/* ---------------------------------------------------------------- errors */


#define LFAIL(field, ...) \
    do { \
        char m_[256]; snprintf(m_, sizeof m_, __VA_ARGS__); \
        return rc_errf(err, errlen, "%s: layer %d (%s): %s: %s", file, li + 1, layer_name(l), field, m_); \
    } while (0)

/* ---------------------------------------------------------------- layout */

static int add_view(rc_ir *ir, int state, int layer, const char *suffix, int rank, const int *dims,
                    double bound, double value, char *err, size_t errlen)
{
    int *n = state ? &ir->n_state : &ir->n_params;
    rc_param *arr = state ? ir->state : ir->params;
    int64_t *total = state ? &ir->state_total : &ir->params_total;
    if (*n >= RC_MAX_PARAMS) return rc_errf(err, errlen, "model: more than %d parameter tensors", RC_MAX_PARAMS);
    rc_param *p = &arr[(*n)++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%d.%s.%s", layer + 1, layer_name(&ir->layers[layer]), suffix);
    p->layer = layer;
    p->rank = rank;
    int64_t count = 1;
    for (int i = 0; i < rank; i++) { p->dims[i] = dims[i]; count *= dims[i]; }
    p->offset = *total;
    p->count = count;
    p->init_bound = bound;
    p->init_value = value;
    *total += count;
    return 0;
}

/* ---------------------------------------------------------------- defined layers */

int rc_ir_def_set(rc_ir *ir, int li, const char *kind, const char *text, char *err, size_t errlen)
{
    if (li < 0 || li >= ir->n_layers) return rc_errf(err, errlen, "layer %d: no such layer", li + 1);
    size_t kl = strlen(kind), tl = strlen(text);
    int ident = kl > 0 && kl < RC_DEF_KIND_MAX && !(kind[0] >= '0' && kind[0] <= '9');
    for (size_t i = 0; ident && i < kl; i++)
        ident = (kind[i] >= 'a' && kind[i] <= 'z') || (kind[i] >= 'A' && kind[i] <= 'Z') ||
                (kind[i] >= '0' && kind[i] <= '9') || kind[i] == '_';
    if (!ident) return rc_errf(err, errlen, "layer %d: kind '%s' is not an identifier of at most %d characters",
                               li + 1, kind, RC_DEF_KIND_MAX - 1);
    if ((size_t)ir->def_text_len + tl + 1 > sizeof ir->def_text)
        return rc_errf(err, errlen, "layer %d (%s): the defined layers' graphs exceed %d bytes of text", li + 1,
                       kind, RC_DEF_TEXT_MAX);
    rc_layer *l = &ir->layers[li];
    l->kind = RC_LAYER_DEF;
    memcpy(l->def_kind, kind, kl + 1);
    l->def_off = ir->def_text_len;
    l->def_len = (int)tl;
    memcpy(ir->def_text + ir->def_text_len, text, tl + 1);
    ir->def_text_len += (int)tl + 1;
    return 0;
}

const char *rc_ir_def_text(const rc_ir *ir, int li, char *buf, size_t n)
{
    if (li < 0 || li >= ir->n_layers) return NULL;
    const rc_layer *l = &ir->layers[li];
    if (l->kind != RC_LAYER_DEF || l->def_off < 0 || l->def_len < 0 ||
        (size_t)l->def_off + (size_t)l->def_len > sizeof ir->def_text || (size_t)l->def_len + 1 > n) return NULL;
    memcpy(buf, ir->def_text + l->def_off, (size_t)l->def_len);
    buf[l->def_len] = 0;
    return buf;
}

int rc_ir_def_graph(const rc_ir *ir, int li, rc_prim_graph *g, char *err, size_t errlen)
{
    rc_prim_init(g);
    char *buf = malloc(RC_DEF_TEXT_MAX);
    if (!buf) return rc_errf(err, errlen, "layer %d: out of memory", li + 1);
    char m[300];
    int rc = 0;
    if (!rc_ir_def_text(ir, li, buf, RC_DEF_TEXT_MAX))
        rc = rc_errf(err, errlen, "layer %d: not a defined layer", li + 1);
    else if (rc_prim_parse(g, buf, ir->cells > 0 ? ir->cells : 0, m, sizeof m))
        rc = rc_errf(err, errlen, "layer %d (%s): %s", li + 1, ir->layers[li].def_kind, m);
    free(buf);
    return rc;
}

/* A defined layer in rc_ir_infer: its graph for the IR's cell count, input (B, in) and output
 * (B, C, H, W) in both modes, its parameters and state laid out in declaration order. */
static int def_infer(rc_ir *ir, int li, rc_shape in, int need_dx, rc_shape *out, double *fwd, double *bwd,
                     const char *file, char *err, size_t errlen)
{
    rc_layer *l = &ir->layers[li];
    rc_prim_graph g;
    char m[300];
    int rc = -1;
    if (rc_ir_def_graph(ir, li, &g, m, sizeof m)) {
        rc_errf(err, errlen, "%s: %s", file, m);
        goto done;
    }
    for (int i = 0; i < g.n; i++) {
        const rc_prim_node *nd = &g.node[i];
        if (nd->op != RC_P_INPUT || nd->ref != 0) continue;
        if (nd->rank != 4 || nd->dims[0] != RC_PRIM_B || nd->dims[1] != in.c || nd->dims[2] != in.h || nd->dims[3] != in.w) {
            rc_errf(err, errlen, "%s: layer %d (%s): the graph's input is not the layer's input (B,%d,%d,%d)", file,
                    li + 1, layer_name(l), in.c, in.h, in.w);
            goto done;
        }
    }
    const rc_prim_node *yt = &g.node[g.out[RC_PRIM_TRAIN]], *ye = &g.node[g.out[RC_PRIM_EVAL]];
    if (yt->rank != 4 || yt->dims[0] != RC_PRIM_B || ye->rank != 4 || memcmp(yt->dims, ye->dims, sizeof yt->dims)) {
        rc_errf(err, errlen, "%s: layer %d (%s): the output must be (B, C, H, W), the same in training and "
                "evaluation", file, li + 1, layer_name(l));
        goto done;
    }
    for (int k = 1; k < 4; k++)
        if (yt->dims[k] < 1) {
            rc_errf(err, errlen, "%s: layer %d (%s): output dimension %d is not a number", file, li + 1, layer_name(l), k + 1);
            goto done;
        }
    *out = (rc_shape){yt->dims[1], yt->dims[2], yt->dims[3]};
    /* cellpick (cellplace, its transpose): the layer reads cells out of a map at the model's
     * readout positions (one map size and one way of finding the positions per model, as for
     * gcconv) */
    for (int i = 0; i < g.n; i++) {
        const rc_prim_node *nd = &g.node[i];
        if (nd->op != RC_P_CELLPICK && nd->op != RC_P_CELLPLACE) continue;
        const rc_prim_node *x = nd->op == RC_P_CELLPICK ? &g.node[nd->in[0]] : nd;   /* the map */
        if (x->dims[1] != ir->cells) {
            rc_errf(err, errlen, "%s: layer %d (%s): cellpick: the map has %d channels, not one per cell (%d)", file,
                    li + 1, layer_name(l), x->dims[1], ir->cells);
            goto done;
        }
        if (l->readout_h && (l->readout_h != x->dims[2] || l->readout_w != x->dims[3] || (int)l->position != nd->attr[0])) {
            rc_errf(err, errlen, "%s: layer %d (%s): cellpick: two readout maps (%dx%d and %dx%d) or positions in one "
                    "model", file, li + 1, layer_name(l), l->readout_h, l->readout_w, x->dims[2], x->dims[3]);
            goto done;
        }
        l->readout_h = x->dims[2];
        l->readout_w = x->dims[3];
        l->position = (rc_gc_pos)nd->attr[0];
    }
    for (int st = 0; st < 2; st++) {
        int n = st ? g.n_state : g.n_param;
        for (int k = 0; k < n; k++) {
            const rc_prim_decl *d = st ? &g.state[k] : &g.param[k];
            if (add_view(ir, st, li, d->name, d->rank, d->dims, d->init_bound > 0 ? d->init_bound : -1,
                         d->init_value, err, errlen)) goto done;
        }
    }
    *fwd = rc_prim_flops(&g, RC_PRIM_EVAL);
    /* parameter gradients, and the input gradient once weights come before (as for conv) */
    *bwd = (need_dx ? 2 : 1) * rc_prim_flops(&g, RC_PRIM_TRAIN);
    rc = 0;
done:
    rc_prim_free(&g);
    return rc;
}

/* Reference §1.3: number and sizes of the sub-convs of a k×k stacked conv of s×s pieces. */
static int stack_plan(int k, int s, int *sub_k)
{
    int n;
    if ((k - s) % (s - 1) == 0) {
        n = (k - s) / (s - 1) + 1;
        for (int i = 0; i < n; i++) sub_k[i] = s;
    } else {
        int n0 = (k - s) / (s - 1) + 1;
        int last = k - (s + (n0 - 1) * (s - 1)) + 1;
        n = n0 + 1;
        if (n > RC_MAX_STACK) return n;
        for (int i = 0; i < n0; i++) sub_k[i] = s;
        sub_k[n0] = last;
    }
    return n;
}

int rc_ir_infer(rc_ir *ir, int cells, const char *file, char *err, size_t errlen)
{
    if (!file) file = "<spec>";
    ir->n_params = ir->n_state = 0;
    ir->params_total = ir->state_total = 0;
    ir->flops_fwd = ir->flops_train = 0;
    if (cells < 1) return rc_errf(err, errlen, "%s: cells: must be at least 1, got %d", file, cells);
    ir->cells = cells;
    if (ir->history < 1 || ir->height < 1 || ir->width < 1)
        return rc_errf(err, errlen, "%s: input: history, height and width must be positive", file);
    if (ir->crop < 0 || ir->crop > ir->height || ir->crop > ir->width)
        return rc_errf(err, errlen, "%s: input: crop: %d does not fit a %dx%d frame", file, ir->crop,
                    ir->height, ir->width);
    if (ir->n_layers < 1) return rc_errf(err, errlen, "%s: model: no layers", file);
    if (ir->n_layers > RC_MAX_LAYERS)
        return rc_errf(err, errlen, "%s: model: %d layers, at most %d", file, ir->n_layers, RC_MAX_LAYERS);
    ir->in = (rc_shape){ir->history, ir->crop ? ir->crop : ir->height, ir->crop ? ir->crop : ir->width};

    rc_shape cur = ir->in;
    int seen_weights = 0;  /* a layer with weights before: its input gradient is needed */
    for (int li = 0; li < ir->n_layers; li++) {
        rc_layer *l = &ir->layers[li];
        l->in = cur;
        l->param_first = ir->n_params;
        l->state_first = ir->n_state;
        l->n_sub = 0;
        l->readout_h = l->readout_w = 0;
        int64_t p0 = ir->params_total;
        double el = (double)cur.c * cur.h * cur.w;  /* elements in */
        double fwd = 0, bwd = 0;
        switch (l->kind) {
        case RC_LAYER_CONV: {
            int K = l->kernel;
            if (l->channels < 1) LFAIL("channels", "must be at least 1, got %d", l->channels);
            if (K < 1) LFAIL("kernel", "must be at least 1, got %d", K);
            if (K > cur.h || K > cur.w)
                LFAIL("kernel", "%d is larger than its %dx%d input", K, cur.h, cur.w);
            rc_shape o = {l->channels, cur.h - K + 1, cur.w - K + 1};
            int full = o.h > o.w ? o.h : o.w;
            if (l->period < 0) LFAIL("period", "must be >= 0, got %d", l->period);
            int P = l->period == 0 ? full : l->period;
            if (P > full) LFAIL("period", "%d is larger than the %dx%d output", P, o.h, o.w);
            if (l->stack) {
                int s = l->stack;
                if (P != 1) LFAIL("stack", "a stacked conv cannot also be tiled (period %d)", P);
                if (s < 2) LFAIL("stack", "sub-kernel must be at least 2, got %d", s);
                if (s > K) LFAIL("stack", "sub-kernel %d is larger than the kernel %d", s, K);
                int n = stack_plan(K, s, l->sub_k);
                if (n > RC_MAX_STACK) LFAIL("stack", "%d sub-convs, at most %d", n, RC_MAX_STACK);
                l->n_sub = n;
                int sc = l->stack_channels ? l->stack_channels : l->channels;
                int h = cur.h, w = cur.w;
                for (int j = 0; j < n; j++) {
                    l->sub_cin[j] = j == 0 ? cur.c : sc;
                    l->sub_cout[j] = j == n - 1 ? l->channels : sc;
                    int k = l->sub_k[j];
                    h = h - k + 1;
                    w = w - k + 1;
                    int dims[4] = {l->sub_cout[j], l->sub_cin[j], k, k};
                    char nm[32];
                    snprintf(nm, sizeof nm, "sub%d.weight", j);
                    if (add_view(ir, 0, li, nm, 4, dims, 1.0 / sqrt((double)l->sub_cin[j] * k * k), 0, err, errlen)) return -1;
                    double f = 2.0 * l->sub_cout[j] * l->sub_cin[j] * k * k * h * w;
                    fwd += f;
                    bwd += (j == 0 && !seen_weights) ? f : 2 * f;
                }
                if (l->bias) {
                    int dims[1] = {l->channels};
                    int j = n - 1;
                    if (add_view(ir, 0, li, "bias", 1, dims, 1.0 / sqrt((double)l->sub_cin[j] * l->sub_k[j] * l->sub_k[j]), 0, err, errlen)) return -1;
                }
                if (l->stack_dropout > 0) fwd += (double)(n - 1) * o.c * o.h * o.w; /* upper bound */
            } else {
                if (l->stack_channels || l->stack_dropout > 0)
                    LFAIL(l->stack_channels ? "stack_channels" : "stack_dropout", "only valid with stack");
                double bound = 1.0 / sqrt((double)cur.c * K * K);
                if (P == 1) {
                    int dims[4] = {o.c, cur.c, K, K};
                    if (add_view(ir, 0, li, "weight", 4, dims, bound, 0, err, errlen)) return -1;
                    if (l->bias) {
                        int bd[1] = {o.c};
                        if (add_view(ir, 0, li, "bias", 1, bd, bound, 0, err, errlen)) return -1;
                    }
                } else {
                    int dims[6] = {P, P, o.c, cur.c, K, K};
                    if (add_view(ir, 0, li, "weight", 6, dims, bound, 0, err, errlen)) return -1;
                    if (l->bias) {
                        int bd[3] = {P, P, o.c};
                        if (add_view(ir, 0, li, "bias", 3, bd, bound, 0, err, errlen)) return -1;
                    }
                }
                double f = 2.0 * o.c * cur.c * K * K * o.h * o.w;
                fwd = f;
                bwd = seen_weights ? 2 * f : f;
            }
            if (l->bias) fwd += (double)o.c * o.h * o.w;
            cur = o;
            seen_weights = 1;
            break;
        }
        case RC_LAYER_GCCONV: {
            int K = l->kernel;
            if (K < 1) LFAIL("kernel", "must be at least 1, got %d", K);
            if (K > cur.h || K > cur.w)
                LFAIL("kernel", "%d is larger than its %dx%d input", K, cur.h, cur.w);
            double bound = 1.0 / sqrt((double)cur.c * K * K);
            int dims[4] = {cells, cur.c, K, K};
            if (add_view(ir, 0, li, "weight", 4, dims, bound, 0, err, errlen)) return -1;
            if (l->bias) {
                int bd[1] = {cells};
                if (add_view(ir, 0, li, "bias", 1, bd, bound, 0, err, errlen)) return -1;
            }
            l->readout_h = cur.h - K + 1;
            l->readout_w = cur.w - K + 1;
            double f = 2.0 * cells * cur.c * K * K;  /* one position per cell */
            fwd = f;
            bwd = seen_weights ? 2 * f : f;
            cur = (rc_shape){cells, 1, 1};
            seen_weights = 1;
            break;
        }
        case RC_LAYER_DENSE: {
            int units = l->units ? l->units : cells;
            double in = el;
            if (in > 2147483647.0) LFAIL("units", "input of %.0f features is too large", in);
            double bound = 1.0 / sqrt(in);
            int dims[2] = {units, (int)in};
            if (add_view(ir, 0, li, "weight", 2, dims, bound, 0, err, errlen)) return -1;
            if (l->bias) {
                int bd[1] = {units};
                if (add_view(ir, 0, li, "bias", 1, bd, bound, 0, err, errlen)) return -1;
            }
            double f = 2.0 * units * in;
            fwd = f;
            bwd = seen_weights ? 2 * f : f;
            cur = (rc_shape){units, 1, 1};
            seen_weights = 1;
            break;
        }
        case RC_LAYER_BATCHNORM: {
            if (!(l->eps > 0)) LFAIL("eps", "must be positive");
            if (l->momentum < 0 || l->momentum > 1) LFAIL("momentum", "must be in [0, 1], got %g", l->momentum);
            int F = l->over == RC_BN_UNIT ? cur.c * cur.h * cur.w : cur.c;
            int dims[1] = {F};
            if (add_view(ir, 0, li, "scale", 1, dims, -1, 1.0, err, errlen)) return -1;
            if (add_view(ir, 0, li, "shift", 1, dims, -1, 0.0, err, errlen)) return -1;
            if (add_view(ir, 1, li, "running_mean", 1, dims, -1, 0.0, err, errlen)) return -1;
            if (add_view(ir, 1, li, "running_var", 1, dims, -1, 1.0, err, errlen)) return -1;
            fwd = 6 * el;   /* stats (2), normalize + affine (4) */
            bwd = 8 * el;
            break;
        }
        case RC_LAYER_NOISE:
            if (l->std < 0) LFAIL("std", "must be >= 0, got %g", l->std);
            fwd = el; bwd = 0;
            break;
        case RC_LAYER_DROPOUT:
            if (l->p < 0 || l->p >= 1) LFAIL("p", "must be in [0, 1), got %g", l->p);
            fwd = el; bwd = el;
            break;
        case RC_LAYER_ACT:
            if ((unsigned)l->act >= RC_ACT_COUNT) LFAIL("act", "unknown rectification");
            fwd = el; bwd = 2 * el;
            break;
        case RC_LAYER_DEF: {
            rc_shape o;
            if (def_infer(ir, li, cur, seen_weights, &o, &fwd, &bwd, file, err, errlen)) return -1;
            if (ir->n_params > l->param_first) seen_weights = 1;
            cur = o;
            break;
        }
        default:
            return rc_errf(err, errlen, "%s: layer %d: unknown kind %d", file, li + 1, (int)l->kind);
        }
        if (cur.c < 1 || cur.h < 1 || cur.w < 1)
            LFAIL("shape", "output collapses to %dx%dx%d", cur.c, cur.h, cur.w);
        l->out = cur;
        l->param_count = ir->n_params - l->param_first;
        l->state_count = ir->n_state - l->state_first;
        l->n_params = ir->params_total - p0;
        l->flops_fwd = fwd;
        l->flops_train = fwd + bwd;
        ir->flops_fwd += fwd;
        ir->flops_train += fwd + bwd;
    }
    for (int li = 0, first = -1; li < ir->n_layers; li++) {
        const rc_layer *l = &ir->layers[li];
        if (!l->readout_h) continue;
        if (first >= 0) LFAIL("readout", "layer %d reads cells out too: one gcconv (or cellpick) per model", first + 1);
        first = li;
    }
    if (cur.c != cells || cur.h != 1 || cur.w != 1) {
        int li = ir->n_layers - 1;
        const rc_layer *l = &ir->layers[li];
        LFAIL("shape", "model output is %dx%dx%d but must be one value per cell (%dx1x1): end with dense or gcconv",
              cur.c, cur.h, cur.w, cells);
    }
    return 0;
}

const rc_param *rc_ir_find_param(const rc_ir *ir, const char *name)
{
    for (int i = 0; i < ir->n_params; i++)
        if (!strcmp(ir->params[i].name, name)) return &ir->params[i];
    for (int i = 0; i < ir->n_state; i++)
        if (!strcmp(ir->state[i].name, name)) return &ir->state[i];
    return NULL;
}

/* ---------------------------------------------------------------- canonical text */

typedef struct { char *s; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = 1; return; }
        b->s = s;
        b->cap = cap;
    }
}

/* Shortest %g that reads back to the same double. */
static void fmt_num(char *out, size_t n, double v)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void put_fields(sbuf *b, const rc_field *f, int nf, const void *base, const char *prefix)
{
    const char *p = (const char *)base;
    for (int i = 0; i < nf; i++) {
        char num[40];
        const char *at = p + f[i].offset;
        if (f[i].added) {                                      /* the old meaning: not printed */
            int zero = f[i].type == RC_F_NUM ? *(const double *)at == 0
                     : f[i].type == RC_F_U64 ? *(const uint64_t *)at == 0 : *(const int *)at == 0;
            if (zero) continue;
        }
        sb_put(b, " %s%s=", prefix, f[i].name);
        switch (f[i].type) {
        case RC_F_INT: sb_put(b, "%d", *(const int *)at); break;
        case RC_F_BOOL: sb_put(b, "%s", *(const int *)at ? "true" : "false"); break;
        case RC_F_NUM: fmt_num(num, sizeof num, *(const double *)at); sb_put(b, "%s", num); break;
        case RC_F_U64: sb_put(b, "%llu", (unsigned long long)*(const uint64_t *)at); break;
        case RC_F_ENUM: {
            int v = *(const int *)at, k = 0;
            while (f[i].enums[k] && k < v) k++;
            sb_put(b, "%s", v >= 0 && f[i].enums[k] ? f[i].enums[k] : "?");
            break;
        }
        case RC_F_INTLIST: {
            int cnt = *(const int *)(p + f[i].count_offset);
            const int *v = (const int *)at;
            if (cnt == 0) sb_put(b, "-");
            for (int k = 0; k < cnt; k++) sb_put(b, "%s%d", k ? "," : "", v[k]);
            break;
        }
        }
    }
}

char *rc_ir_format(const rc_ir *ir)
{
    sbuf b = {0};
    int n;
    const rc_field *f;
    sb_put(&b, "retinac-ir %d\nmodel %s\ninput", RC_IR_VERSION, ir->name);
    f = rc_fields(RC_SECTION_INPUT, 0, &n);
    put_fields(&b, f, n, ir, "");
    sb_put(&b, "\nschedule");
    f = rc_fields(RC_SECTION_SCHEDULE, 0, &n);
    put_fields(&b, f, n, &ir->sched, "");
    sb_put(&b, "\n");
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *l = &ir->layers[i];
        if (l->kind == RC_LAYER_DEF) {          /* the graph, one "prim" line per line */
            sb_put(&b, "layer def kind=%s\n", l->def_kind);
            const char *t = ir->def_text + l->def_off, *e = t + l->def_len;
            while (t < e) {
                const char *nl = memchr(t, '\n', (size_t)(e - t));
                int len = (int)((nl ? nl : e) - t);
                if (len) sb_put(&b, "prim %.*s\n", len, t);
                t += len + 1;
            }
            continue;
        }
        sb_put(&b, "layer %s", layer_name(l));
        f = rc_fields(RC_SECTION_LAYER, l->kind, &n);
        put_fields(&b, f, n, l, "");
        if (layer_has_schedule(l->kind)) {
            const rc_field *sf = rc_fields(RC_SECTION_SCHEDULE, 0, &n);
            put_fields(&b, sf, n, &l->sched, "schedule.");
        }
        sb_put(&b, "\n");
    }
    sb_put(&b, "train");
    f = rc_fields(RC_SECTION_TRAIN, 0, &n);
    put_fields(&b, f, n, &ir->train, "");
    sb_put(&b, "\nsearch trials=%d seed=%llu\n", ir->search.trials, (unsigned long long)ir->search.seed);
    for (int i = 0; i < ir->search.n_dims; i++) {
        const rc_search_dim *d = &ir->search.dims[i];
        sb_put(&b, "search.dim %s %s%s%s%s ", d->key, d->is_random ? "random" : "grid",
               d->is_random && d->log_scale ? " log" : "", d->is_int ? " int" : "",
               d->is_string ? " str" : "");
        for (int k = 0; k < d->n_values; k++) {
            char num[40];
            fmt_num(num, sizeof num, d->values[k]);
            sb_put(&b, "%s%.*s", k ? "," : "", RC_PARAM_STR_MAX, d->is_string ? d->strs[k] : num);
        }
        sb_put(&b, "\n");
    }
    sb_put(&b, "end\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

void rc_ir_hash(const rc_ir *ir, char hex[65])
{
    char *t = rc_ir_format(ir);
    if (!t) { memset(hex, '0', 64); hex[64] = 0; return; }
    rc_sha256_hex(t, strlen(t), hex);
    free(t);
}

/* ---------------------------------------------------------------- parse */

/* A number of a field's range: integers in full ("1048576", not "1.04858e+06"), others as the
 * shortest decimal that reads back. */
static void range_num(char *out, size_t n, double v, int integer)
{
    if ((integer || v == floor(v)) && fabs(v) < 1e15) snprintf(out, n, "%.0f", v);
    else fmt_num(out, n, v);
}

void rc_field_range_text(const rc_field *f, char *buf, size_t n)
{
    char lo[40], hi[40];
    const int integer = f->type != RC_F_NUM;
    range_num(lo, sizeof lo, f->min, integer);
    if (f->type == RC_F_U64) snprintf(hi, sizeof hi, "%llu", (unsigned long long)UINT64_MAX);
    else range_num(hi, sizeof hi, f->max, integer);
    snprintf(buf, n, "[%s, %s]", lo, hi);
}

/* Set one field from its text value. Returns 0 or -1 with a message in err. */
static int set_field(const rc_field *f, void *base, const char *val, char *err, size_t errlen)
{
    char *end, rng[96];
    char *at = (char *)base + f->offset;
    rc_field_range_text(f, rng, sizeof rng);
    switch (f->type) {
    case RC_F_INT: case RC_F_BOOL: {
        long v;
        if (f->type == RC_F_BOOL) {
            if (!strcmp(val, "true")) v = 1;
            else if (!strcmp(val, "false")) v = 0;
            else return rc_errf(err, errlen, "expected true or false, got '%s'", val);
        } else {
            errno = 0;
            v = strtol(val, &end, 10);
            if (end == val || *end) return rc_errf(err, errlen, "expected an integer, got '%s'", val);
            if (errno == ERANGE) return rc_errf(err, errlen, "integer out of range: '%s' (range %s)", val, rng);
        }
        if (v < f->min || v > f->max) return rc_errf(err, errlen, "%ld is out of range %s", v, rng);
        *(int *)at = (int)v;
        return 0;
    }
    case RC_F_NUM: {
        errno = 0;
        double v = strtod(val, &end);
        if (end == val || *end) return rc_errf(err, errlen, "expected a number, got '%s'", val);
        if (errno == ERANGE || !isfinite(v)) return rc_errf(err, errlen, "number out of range: '%s' (range %s)", val, rng);
        if (v < f->min || v > f->max) return rc_errf(err, errlen, "%s is out of range %s", val, rng);
        *(double *)at = v;
        return 0;
    }
    case RC_F_U64: {
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (end == val || *end || val[0] == '-' || val[0] == '+' || val[0] == ' ')
            return rc_errf(err, errlen, "expected an unsigned integer, got '%s'", val);
        if (errno == ERANGE) return rc_errf(err, errlen, "integer out of range: '%s' (range %s)", val, rng);
        *(uint64_t *)at = v;
        return 0;
    }
    case RC_F_ENUM:
        for (int i = 0; f->enums[i]; i++)
            if (!strcmp(val, f->enums[i])) { *(int *)at = i; return 0; }
        return rc_errf(err, errlen, "unknown value '%s'", val);
    case RC_F_INTLIST: {
        int *cnt = (int *)((char *)base + f->count_offset);
        int *v = (int *)at;
        *cnt = 0;
        if (!strcmp(val, "-")) return 0;
        const char *s = val;
        while (*s) {
            if (*cnt >= f->max_count) return rc_errf(err, errlen, "more than %d values", f->max_count);
            errno = 0;
            long x = strtol(s, &end, 10);
            if (end == s) return rc_errf(err, errlen, "expected integers, got '%s'", val);
            if (errno == ERANGE) return rc_errf(err, errlen, "integer out of range: '%.*s' (range %s)", (int)(end - s), s, rng);
            if (x < f->min || x > f->max) return rc_errf(err, errlen, "%ld is out of range %s", x, rng);
            v[(*cnt)++] = (int)x;
            s = end;
            if (*s == ',') s++;
            else if (*s) return rc_errf(err, errlen, "expected integers, got '%s'", val);
        }
        return 0;
    }
    }
    return rc_errf(err, errlen, "bad field type");
}

/* Parse "k=v k=v ..." tokens against a descriptor table (prefix selects nested fields). */
static int parse_kv(char *rest, const rc_field *f, int nf, void *base, const rc_field *sf, int nsf,
                    void *sbase, char *err, size_t errlen)
{
    char *save = NULL;
    for (char *tok = strtok_r(rest, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return rc_errf(err, errlen, "expected key=value, got '%s'", tok);
        *eq = 0;
        const char *key = tok, *val = eq + 1;
        const rc_field *tab = f;
        int nt = nf;
        void *b = base;
        if (!strncmp(key, "schedule.", 9) && sf) { key += 9; tab = sf; nt = nsf; b = sbase; }
        int found = 0;
        for (int i = 0; i < nt; i++) {
            if (strcmp(tab[i].name, key)) continue;
            char m[200];
            if (set_field(&tab[i], b, val, m, sizeof m)) return rc_errf(err, errlen, "%s: %s", key, m);
            found = 1;
            break;
        }
        if (!found) return rc_errf(err, errlen, "%s: unknown field", key);
    }
    return 0;
}

/* Every INT/NUM field of a section parsed from text must lie in its range: set_field checked
 * the values a line gave, so a value out of range here is a default that marks a required field
 * the text left out (the spec loader's rule, compiler/frontend/spec.c read_table). Returns 0 or -1. */
static int check_required(const rc_field *f, int n, const void *base, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)base + f[i].offset;
        double v;
        if (f[i].type == RC_F_INT) v = *(const int *)p;
        else if (f[i].type == RC_F_NUM) v = *(const double *)p;
        else continue;
        if (!(v >= f[i].min && v <= f[i].max)) return rc_errf(err, errlen, "%s: missing (required)", f[i].name);
    }
    return 0;
}

int rc_train_check(const rc_train *t, char *err, size_t errlen)
{
    for (int i = 1; i < t->n_milestones; i++)
        if (t->milestones[i] <= t->milestones[i - 1]) {
            char list[16 * RC_MAX_MILESTONES] = "";
            size_t k = 0;
            for (int j = 0; j < t->n_milestones && k < sizeof list; j++)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", j ? "," : "", t->milestones[j]);
            return rc_errf(err, errlen, "milestones: must be strictly increasing epochs, got %s (%d after %d)",
                           list, t->milestones[i], t->milestones[i - 1]);
        }
    return 0;
}

int rc_ir_name_ok(const char *name, size_t len)
{
    if (len == 0 || len >= RC_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '_' || ch == '-'));
        if (!ok) return 0;
    }
    return 1;
}

int rc_ir_parse(rc_ir *ir, const char *text, const char *file, char *err, size_t errlen)
{
    if (!file) file = "<ir>";
    rc_ir_defaults(ir);
    char *buf = strdup(text);
    if (!buf) return rc_errf(err, errlen, "%s: out of memory", file);
    int rc = -1, lineno = 0, ended = 0, n, nsf, search_line = 0;
    char m[300];
    const rc_field *sf = rc_fields(RC_SECTION_SCHEDULE, 0, &nsf);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        /* CRLF line ends (a file edited on Windows) read as LF; the hash is over the canonical
         * text rc_ir_format writes, so it does not change */
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[ll - 1] = 0;
        char *sp = strchr(line, ' ');
        char *rest = sp ? sp + 1 : line + strlen(line);
        if (sp) *sp = 0;
        const char *head = line;
        if (lineno == 1) {
            if (strcmp(head, "retinac-ir") || atoi(rest) != RC_IR_VERSION) {
                rc_errf(err, errlen, "%s:1: not a retinac IR version %d file", file, RC_IR_VERSION);
                goto out;
            }
            continue;
        }
        if (ended) { rc_errf(err, errlen, "%s:%d: text after 'end'", file, lineno); goto out; }
        if (!strcmp(head, "model")) {
            if (!rc_ir_name_ok(rest, strlen(rest))) {
                rc_errf(err, errlen, "%s:%d: bad model name (1 to %d of letters, digits, '_', '-')", file,
                        lineno, RC_NAME_MAX - 1);
                goto out;
            }
            strcpy(ir->name, rest);
        } else if (!strcmp(head, "input")) {
            const rc_field *f = rc_fields(RC_SECTION_INPUT, 0, &n);
            if (parse_kv(rest, f, n, ir, NULL, 0, NULL, m, sizeof m)) { rc_errf(err, errlen, "%s:%d: input: %s", file, lineno, m); goto out; }
        } else if (!strcmp(head, "schedule")) {
            if (parse_kv(rest, sf, nsf, &ir->sched, NULL, 0, NULL, m, sizeof m)) { rc_errf(err, errlen, "%s:%d: schedule: %s", file, lineno, m); goto out; }
        } else if (!strcmp(head, "layer")) {
            char *sp2 = strchr(rest, ' ');
            char *kv = sp2 ? sp2 + 1 : rest + strlen(rest);
            if (sp2) *sp2 = 0;
            rc_layer_kind kind;
            rc_act act = RC_ACT_IDENTITY;
            if (!strcmp(rest, "def")) {         /* its graph follows as "prim" lines */
                if (ir->n_layers >= RC_MAX_LAYERS) { rc_errf(err, errlen, "%s:%d: too many layers", file, lineno); goto out; }
                rc_layer *l = &ir->layers[ir->n_layers++];
                rc_layer_defaults(l, RC_LAYER_DEF);
                if (strncmp(kv, "kind=", 5) || rc_ir_def_set(ir, ir->n_layers - 1, kv + 5, "", m, sizeof m)) {
                    rc_errf(err, errlen, "%s:%d: layer %d (def): expected kind=NAME (an identifier)", file, lineno, ir->n_layers);
                    goto out;
                }
                ir->def_text_len--;             /* reopen the (empty) text for the prim lines */
                continue;
            }
            if (rc_layer_kind_parse(rest, &kind, &act)) { rc_errf(err, errlen, "%s:%d: unknown layer '%s'", file, lineno, rest); goto out; }
            if (ir->n_layers >= RC_MAX_LAYERS) { rc_errf(err, errlen, "%s:%d: too many layers", file, lineno); goto out; }
            rc_layer *l = &ir->layers[ir->n_layers++];
            rc_layer_defaults(l, kind);
            l->act = act;
            const rc_field *f = rc_fields(RC_SECTION_LAYER, kind, &n);
            int hs = layer_has_schedule(kind);
            if (parse_kv(kv, f, n, l, hs ? sf : NULL, hs ? nsf : 0, &l->sched, m, sizeof m)) {
                rc_errf(err, errlen, "%s:%d: layer %d (%s): %s", file, lineno, ir->n_layers, rest, m);
                goto out;
            }
        } else if (!strcmp(head, "prim")) {   /* a line of the last layer's graph */
            rc_layer *l = ir->n_layers ? &ir->layers[ir->n_layers - 1] : NULL;
            size_t rl = strlen(rest);
            if (!l || l->kind != RC_LAYER_DEF || l->def_off + l->def_len != ir->def_text_len) {
                rc_errf(err, errlen, "%s:%d: a 'prim' line outside a defined layer", file, lineno); goto out;
            }
            if ((size_t)ir->def_text_len + rl + 2 > sizeof ir->def_text) {
                rc_errf(err, errlen, "%s:%d: the defined layers' graphs exceed %d bytes", file, lineno, RC_DEF_TEXT_MAX); goto out;
            }
            memcpy(ir->def_text + ir->def_text_len, rest, rl);
            ir->def_text[ir->def_text_len + rl] = '\n';
            ir->def_text_len += (int)rl + 1;
            l->def_len += (int)rl + 1;
            ir->def_text[ir->def_text_len] = 0;
        } else if (!strcmp(head, "train")) {
            const rc_field *f = rc_fields(RC_SECTION_TRAIN, 0, &n);
            if (parse_kv(rest, f, n, &ir->train, NULL, 0, NULL, m, sizeof m) || rc_train_check(&ir->train, m, sizeof m)) {
                rc_errf(err, errlen, "%s:%d: train: %s", file, lineno, m);
                goto out;
            }
        } else if (!strcmp(head, "search")) {
            unsigned long long seed = 1;
            if (sscanf(rest, "trials=%d seed=%llu", &ir->search.trials, &seed) != 2 || ir->search.trials < 0) {
                rc_errf(err, errlen, "%s:%d: search: expected trials=N seed=S", file, lineno); goto out;
            }
            ir->search.seed = seed;
            search_line = lineno;
        } else if (!strcmp(head, "search.dim")) {
            if (!search_line) search_line = lineno;
            if (ir->search.n_dims >= RC_MAX_SEARCH) { rc_errf(err, errlen, "%s:%d: too many search dimensions", file, lineno); goto out; }
            rc_search_dim *d = &ir->search.dims[ir->search.n_dims++];
            memset(d, 0, sizeof *d);
            /* KEY grid|random [log] [int] [str] V1,V2,... */
            char key[RC_NAME_MAX], mode[16], vals[2048], flag[16];
            int k = sscanf(rest, "%63s %15s", key, mode), used = 0;
            const char *p = rest;
            if (k == 2) {
                for (int w = 0; w < 2; w++) { p += strspn(p, " "); p += strcspn(p, " "); }
                while (sscanf(p, " %15s%n", flag, &used) == 1 &&
                       (!strcmp(flag, "log") || !strcmp(flag, "int") || !strcmp(flag, "str"))) {
                    if (!strcmp(flag, "log")) d->log_scale = 1;
                    else if (!strcmp(flag, "int")) d->is_int = 1;
                    else d->is_string = 1;
                    p += used;
                }
                k += sscanf(p, " %2047s", vals) == 1;
            }
            if (k != 3 || (strcmp(mode, "grid") && strcmp(mode, "random")) ||
                (d->log_scale && strcmp(mode, "random"))) {
                rc_errf(err, errlen, "%s:%d: search.dim: expected KEY grid|random [log] [int] [str] V1,V2,...", file, lineno); goto out;
            }
            strcpy(d->key, key);
            d->is_random = !strcmp(mode, "random");
            for (char *s = vals; *s;) {
                char *end;
                if (d->n_values >= RC_MAX_SEARCH_VALUES) { rc_errf(err, errlen, "%s:%d: too many values", file, lineno); goto out; }
                if (d->is_string) {
                    size_t l = strcspn(s, ",");
                    if (l == 0 || l >= RC_PARAM_STR_MAX) { rc_errf(err, errlen, "%s:%d: search.dim %s: bad string value", file, lineno, key); goto out; }
                    memcpy(d->strs[d->n_values], s, l);
                    d->values[d->n_values] = d->n_values;
                    d->n_values++;
                    end = s + l;
                } else {
                    d->values[d->n_values++] = strtod(s, &end);
                    if (end == s) { rc_errf(err, errlen, "%s:%d: search.dim %s: bad number", file, lineno, key); goto out; }
                }
                s = *end == ',' ? end + 1 : end;
            }
        } else if (!strcmp(head, "end")) {
            ended = 1;
        } else {
            rc_errf(err, errlen, "%s:%d: unknown section '%s'", file, lineno, head);
            goto out;
        }
    }
    if (!ended) { rc_errf(err, errlen, "%s: truncated IR (no 'end' line)", file); goto out; }
    /* the search section must be one `retinac search` runs (the spec loader's rule too) */
    if (ir->search.n_dims && rc_search_check(&ir->search, m, sizeof m) < 0) {
        rc_errf(err, errlen, "%s:%d: %s", file, search_line, m);
        goto out;
    }
    const rc_field *rf = rc_fields(RC_SECTION_INPUT, 0, &n);
    if (check_required(rf, n, ir, m, sizeof m)) { rc_errf(err, errlen, "%s: input: %s", file, m); goto out; }
    if (check_required(sf, nsf, &ir->sched, m, sizeof m)) { rc_errf(err, errlen, "%s: schedule: %s", file, m); goto out; }
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *l = &ir->layers[i];
        rf = rc_fields(RC_SECTION_LAYER, l->kind, &n);
        if (check_required(rf, n, l, m, sizeof m) ||
            (layer_has_schedule(l->kind) && check_required(sf, nsf, &l->sched, m, sizeof m))) {
            rc_errf(err, errlen, "%s: layer %d (%s): %s", file, i + 1,
                    l->kind == RC_LAYER_ACT ? rc_act_name(l->act) : rc_layer_kind_name(l->kind), m);
            goto out;
        }
    }
    rf = rc_fields(RC_SECTION_TRAIN, 0, &n);
    if (check_required(rf, n, &ir->train, m, sizeof m)) { rc_errf(err, errlen, "%s: train: %s", file, m); goto out; }
    rc = 0;
out:
    free(buf);
    return rc;
}
