/* ir.h — the model IR shared by the compiler and the runtime.
 *
 * A model is a straight chain of layers over one input (history, H, W). The compiler
 * (compiler/frontend/spec.c, the only Lua user) fills an rc_ir from a Lua spec; the canonical text
 * (rc_ir_format) is the IR's serialization: deterministic, key order fixed by the field
 * descriptors, every default written out, so two specs that mean the same thing produce
 * the same text and the same hash. The runtime reads that text back with rc_ir_parse and
 * never needs Lua.
 *
 * rc_ir_infer() derives everything else from the spec fields and the number of cells:
 * shapes, parameter and state layout, FLOPs. Invariants after a successful infer:
 *   - layer i reads shape layers[i-1].out (layer 0 reads the input (history, H', W'),
 *     H' = W' = crop when crop > 0);
 *   - parameters of all layers live in one contiguous float buffer; each tensor is a named
 *     view rc_ir_param {layer, name, offset, count, shape};
 *   - BN running statistics live in a second buffer ("state"), same scheme.
 * Errors are returned as text "FILE: layer I (KIND): FIELD: what" in the caller's buffer.
 */
#ifndef RC_IR_H
#define RC_IR_H

#include <stddef.h>
#include <stdint.h>

#define RC_IR_VERSION 1
#define RC_MAX_LAYERS 64
#define RC_MAX_PARAMS 256
#define RC_MAX_STACK 32          /* sub-convs in one stacked conv */
#define RC_MAX_SEARCH 16         /* hyperparameters in a search */
#define RC_MAX_SEARCH_VALUES 32
#define RC_MAX_MILESTONES 16
#define RC_NAME_MAX 64
#define RC_DEF_TEXT_MAX 65536    /* canonical primitive-graph text of all defined layers */
#define RC_DEF_KIND_MAX 32

typedef enum {
    RC_LAYER_CONV,      /* conv: valid, stride 1; tiled (period) or stacked (stack) */
    RC_LAYER_DENSE,     /* dense: flatten + linear; units 0 = one per cell */
    RC_LAYER_BATCHNORM, /* batchnorm over unit (C*H*W) or channel, optional |scale| */
    RC_LAYER_NOISE,     /* additive Gaussian noise, training only */
    RC_LAYER_DROPOUT,   /* element dropout, training only (inverted scaling) */
    RC_LAYER_ACT,       /* rectification, see rc_act */
    RC_LAYER_GCCONV,    /* convolutional ganglion-cell layer: conv to one channel per cell,
                           read out at each cell's position -> (cells, 1, 1) */
    RC_LAYER_DEF,       /* a defined layer: a graph of primitives (compiler/prim.h), written in
                           Lua (the prelude or the spec); def_kind names it */
    RC_LAYER_COUNT
} rc_layer_kind;

typedef enum {
    RC_ACT_RELU, RC_ACT_SOFTPLUS, RC_ACT_EXP, RC_ACT_ABS, RC_ACT_SQUARE, RC_ACT_REQU,
    RC_ACT_SIGMOID, RC_ACT_TANH, RC_ACT_IDENTITY, RC_ACT_COUNT
} rc_act;

typedef enum { RC_BN_UNIT, RC_BN_CHANNEL } rc_bn_over;
typedef enum { RC_LOSS_POISSON, RC_LOSS_MSE, RC_LOSS_POISSON_LOG } rc_loss;
typedef enum { RC_OPT_ADAM, RC_OPT_ADAMW } rc_opt;
typedef enum { RC_L1_MEAN, RC_L1_SUM } rc_l1_mode;          /* SUM = reference (batch sum) */
typedef enum { RC_SCHED_NONE, RC_SCHED_PLATEAU, RC_SCHED_STEP } rc_sched;
typedef enum { RC_VAL_BLOCK, RC_VAL_RANDOM } rc_val_split;  /* RANDOM = reference */
/* Fields added to the train section after IR format 1 (rc_field.added): value 0 is what a
 * model meant before the field existed (the reference's behaviour), so text without the field
 * keeps its meaning and its hash; the spec loader's defaults are the better values. */
typedef enum { RC_OUTPUT_INIT_TORCH, RC_OUTPUT_INIT_MEAN_RATE } rc_output_init;
typedef enum { RC_BN_STATS_EMA, RC_BN_STATS_PRECISE } rc_bn_stats;
/* A spec's output_lr when it does not set one (IR text without the field: 1, the reference). */
#define RC_OUTPUT_LR_DEFAULT 10.0
typedef enum { RC_POS_CENTER, RC_POS_DATA, RC_POS_REFERENCE } rc_gc_pos;

/* Schedule hints: 0 = automatic. Legal on the model and on conv/gcconv/dense layers. */
typedef struct {
    int tile_h, tile_w;   /* output rows/cols per register/cache block */
    int tile_c;           /* output channels per block */
    int vector;           /* SIMD width in floats */
    int threads;          /* OpenMP threads; 0 = all */
} rc_schedule;

typedef struct { int c, h, w; } rc_shape;

typedef struct {
    rc_layer_kind kind;
    int spec_line;        /* line of the layer in the spec, 0 if unknown */
    /* conv / gcconv */
    int channels;         /* conv out channels */
    int kernel;
    int bias;             /* bool */
    int period;           /* tiled conv: weights shared between units `period` apart; 1 = conv;
                             0 in the spec means "full" = output size (locally connected) */
    int stack;            /* stacked conv: sub-kernel size (3 in the paper), 0 = plain conv */
    int stack_channels;   /* inner channels of the stack, 0 = channels */
    double stack_dropout; /* dropout between sub-convs, training only */
    rc_gc_pos position;   /* gcconv: where each cell is read out */
    /* dense */
    int units;            /* 0 = one per cell */
    /* batchnorm */
    rc_bn_over over;
    int abs_scale;        /* bool: use |scale| */
    double eps, momentum; /* PyTorch convention: running = (1-m) running + m batch */
    /* noise / dropout */
    double std, p;
    /* act */
    rc_act act;
    /* def: the kind's name (a Lua identifier) and its graph's canonical text (rc_prim_format,
     * cells symbolic) at ir->def_text[def_off .. def_off + def_len) */
    char def_kind[RC_DEF_KIND_MAX];
    int def_off, def_len;
    rc_schedule sched;

    /* ---- derived by rc_ir_infer ---- */
    rc_shape in, out;
    int readout_h, readout_w;       /* the map (cells, h, w) whose pixel at each cell's readout
                                       position is the cell's value: a gcconv's conv output, or a
                                       defined layer's cellpick input (its position then set from the
                                       cellpick); 0 = the layer reads out no cells */
    int rng_sub;                    /* noise / dropout: sub-stream of RC_RNG_STREAM(layer, .) they
                                       draw from; a stacked conv's dropout after sub-conv j draws
                                       from rng_sub + j + 1. 0 for the built-ins; a defined layer
                                       lowered to one (compiler/lower.c) keeps its graph's streams */
    int n_sub;                      /* stacked conv: number of sub-convs */
    int sub_k[RC_MAX_STACK];        /* kernel of each sub-conv */
    int sub_cin[RC_MAX_STACK], sub_cout[RC_MAX_STACK];
    int param_first, param_count;   /* range in rc_ir.params */
    int state_first, state_count;   /* range in rc_ir.state */
    int64_t n_params;
    double flops_fwd, flops_train;  /* per sample */
} rc_layer;

typedef struct {
    char name[RC_NAME_MAX];   /* 1-based layer: "1.conv.weight", "1.conv.sub2.weight", "2.batchnorm.scale" */
    int layer;
    int64_t offset, count;    /* in floats, into the params (or state) buffer */
    int rank, dims[6];        /* PyTorch layout */
    double init_bound;        /* U(-b, b) init for weights/biases; <0 means constant init_value */
    double init_value;
} rc_param;

#define RC_SEARCH_PARAM_PREFIX "param."   /* key of a searched spec parameter: "param.k1" */
#define RC_PARAM_STR_MAX 32                 /* a string parameter value in a search */

typedef struct {
    char key[RC_NAME_MAX];    /* a train field (lr, l2, batch, ...) or "param.NAME": a parameter
                                 the spec declares with params { NAME = default } (spec.h) */
    int is_random;            /* 0 = grid values, 1 = random range */
    int log_scale;            /* random: sample log-uniformly */
    int is_int;               /* param: integer-valued (its default is a Lua integer) */
    int is_string;            /* param grid of strings (or booleans, as "true"/"false"): the
                                 values are strs[], values[i] = i */
    int n_values;
    double values[RC_MAX_SEARCH_VALUES];   /* grid values, or [lo, hi] for random */
    char strs[RC_MAX_SEARCH_VALUES][RC_PARAM_STR_MAX];
} rc_search_dim;

typedef struct {
    rc_loss loss;
    rc_opt optimizer;
    double lr, l2, l1_activity;
    rc_l1_mode l1_mode;
    int batch, epochs;
    rc_sched schedule;
    double sched_factor, sched_threshold, sched_gamma;
    int sched_patience;
    int n_milestones, milestones[RC_MAX_MILESTONES];
    int early_patience;          /* 0 = no early stopping */
    double early_min_delta;
    uint64_t seed;
    double val_fraction;
    rc_val_split val_split;
    rc_output_init output_init;  /* torch: PyTorch's init; mean_rate: the output's bias (or
                                    final batchnorm shift) set so the fresh model predicts each
                                    cell's mean training rate (runtime/train.c) */
    rc_bn_stats bn_stats;        /* ema: running statistics as trained (PyTorch); precise:
                                    recomputed for the current weights over training batches
                                    before every validation and checkpoint */
    double output_lr;            /* learning-rate multiplier of the output's per-cell affine (the
                                    final batchnorm's scale and shift before softplus/exp);
                                    0 or 1: the same lr as every parameter (reference) */
} rc_train;

typedef struct {
    int trials;                  /* random search: number of draws */
    uint64_t seed;
    int n_dims;
    rc_search_dim dims[RC_MAX_SEARCH];
} rc_search;

typedef struct {
    char name[RC_NAME_MAX];
    int history, height, width;
    int crop;                    /* 0 = none, else crop×crop window around a cell's RF center */
    rc_schedule sched;
    int n_layers;
    rc_layer layers[RC_MAX_LAYERS];
    rc_train train;
    rc_search search;
    int def_text_len;
    char def_text[RC_DEF_TEXT_MAX];   /* the defined layers' graphs, see rc_layer.def_off */

    /* ---- derived by rc_ir_infer ---- */
    int cells;
    rc_shape in;                 /* (history, H', W') after crop */
    int n_params, n_state;
    rc_param params[RC_MAX_PARAMS];
    rc_param state[RC_MAX_PARAMS];
    int64_t params_total, state_total;      /* floats */
    double flops_fwd, flops_train;          /* per sample */
} rc_ir;

/* Field descriptors: one table per section, shared by the Lua loader (compiler/frontend/spec.c), the
 * canonical printer and the text parser, so the three can never disagree on names, types or
 * ranges. Offsets are into the section's struct (rc_layer, rc_ir for "input", rc_schedule,
 * rc_train). A field is written canonically as name=value; lists as v1,v2,...;
 * enums by name. */
typedef enum {
    RC_F_INT, RC_F_NUM, RC_F_BOOL, RC_F_ENUM, RC_F_U64, RC_F_INTLIST
} rc_field_type;

typedef struct {
    const char *name;
    rc_field_type type;
    size_t offset;            /* offsetof in the section struct */
    double min, max;          /* inclusive range for INT/NUM/U64/INTLIST items */
    const char *const *enums; /* NULL-terminated names for RC_F_ENUM (value = index) */
    size_t count_offset;      /* RC_F_INTLIST: offset of the int element count */
    int max_count;            /* RC_F_INTLIST: capacity */
    const char *doc;          /* one line for specs/README and --help */
    int added;                /* added after IR format 1: value 0 (the old meaning) is not
                                 printed in the canonical text, so older texts keep their hash */
} rc_field;

typedef enum {
    RC_SECTION_INPUT, RC_SECTION_SCHEDULE, RC_SECTION_TRAIN, RC_SECTION_LAYER
} rc_section;

/* Fields of a section; for RC_SECTION_LAYER, of layer kind `kind` (ignored otherwise).
 * Sets *n. Layer fields do not include "schedule" (a nested table, see RC_SECTION_SCHEDULE). */
const rc_field *rc_fields(rc_section sec, rc_layer_kind kind, int *n);

/* A field's range for messages: "[1, 1048576]" (integers in full, never 1.04858e+06). */
void rc_field_range_text(const rc_field *f, char *buf, size_t n);

/* Rules across the fields of a train section, shared by the spec loader, the text parser and
 * the command-line flags: milestones strictly increasing (MultiStepLR steps at each listed
 * epoch; a repeat or a step back is a typo, not a schedule). Returns 0 or -1 with
 * "FIELD: what" in err. */
int rc_train_check(const rc_train *t, char *err, size_t errlen);

/* Fill every field with its default (used by the spec loader before reading a table). */
void rc_ir_defaults(rc_ir *ir);
void rc_layer_defaults(rc_layer *l, rc_layer_kind kind);

/* Names. kind_name("conv"), act names are the spec's layer names ("relu", "softplus", ...). */
const char *rc_layer_kind_name(rc_layer_kind k);
const char *rc_act_name(rc_act a);
/* Resolve a spec layer name ("conv", "relu", ...) to kind (and act). Returns 0 or -1. */
int rc_layer_kind_parse(const char *name, rc_layer_kind *kind, rc_act *act);

/* Shape inference, layout and FLOPs for `cells` output cells. file is used in messages.
 * Returns 0, or -1 with "file: layer I (kind): field: reason" in err. */
int rc_ir_infer(rc_ir *ir, int cells, const char *file, char *err, size_t errlen);

/* A model name is 1..RC_NAME_MAX-1 of [A-Za-z0-9_-], not starting with '_' or '-': it names a
 * directory (generated/<model>/) and appears in generated source, so a model text from a
 * checkpoint must not carry a path or a comment terminator. Returns 1 if valid. */
int rc_ir_name_ok(const char *name, size_t len);

/* Canonical text. Returns a malloc'd NUL-terminated string (caller frees) or NULL on OOM. */
char *rc_ir_format(const rc_ir *ir);
/* Parse canonical text (as written by rc_ir_format). Does not call rc_ir_infer. CRLF line ends
 * are accepted (the hash is of the canonical text, so it is the same); an integer that does not
 * fit is refused ("integer out of range", with the line); the train section passes
 * rc_train_check and the search section rc_search_check (search.h), as in the spec loader. */
int rc_ir_parse(rc_ir *ir, const char *text, const char *file, char *err, size_t errlen);

/* sha256 of the canonical text, as 64 hex chars + NUL. */
void rc_ir_hash(const rc_ir *ir, char hex[65]);

/* Defined layers (RC_LAYER_DEF). rc_ir_def_set appends graph text (rc_prim_format's, cells
 * symbolic) for layer li of kind `kind` and points the layer at it; -1 with a message if the
 * pool is full or kind is not an identifier. rc_ir_def_text returns the text (NUL-terminated
 * copy in buf of n bytes; NULL if it does not fit). In the canonical IR a defined layer is
 *   layer def kind=NAME
 *   prim <one line of the graph text>      (as many as the graph has)
 * and rc_ir_infer parses the graph with the cell count substituted (rc_prim_parse), takes the
 * layer's output shape from it, lays out its parameters ("<i>.<kind>.<name>") and state, and
 * counts its FLOPs (forward; training = 3x forward, as for the built-in layers). */
int rc_ir_def_set(rc_ir *ir, int li, const char *kind, const char *text, char *err, size_t errlen);
const char *rc_ir_def_text(const rc_ir *ir, int li, char *buf, size_t n);
/* The graph of defined layer li with the IR's cell count substituted (after rc_ir_infer),
 * into g (compiler/prim.h; need not be inited; free with rc_prim_free, also after an error).
 * Returns 0 or -1 with a message naming the layer. */
struct rc_prim_graph;
int rc_ir_def_graph(const rc_ir *ir, int li, struct rc_prim_graph *g, char *err, size_t errlen);

/* Find a parameter view by name; NULL if absent. */
const rc_param *rc_ir_find_param(const rc_ir *ir, const char *name);

#endif
