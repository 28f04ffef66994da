/* prim.h — the primitive IR: small tensor primitives, graphs of them, reverse-mode autodiff.
 *
 * A defined layer (a layer kind written in Lua from primitives: compiler/frontend/prelude.lua and
 * a spec's own `layer` definitions) is one rc_prim_graph. Every primitive is one row of the table
 * in prim.c (rc_prim_info): name, arity, attributes, shape rule, FLOPs, reference in double,
 * vector-Jacobian product written as primitives, and its rendering as a C/CUDA expression when it
 * is elementwise. Emitters (compiler/c/emit_c_prim.c, compiler/cuda/emit_cuda_prim.c) and the
 * reference interpreter (rc_prim_eval) read that table; nothing else knows a primitive.
 *
 * Tensors have rank 0..RC_PRIM_MAX_RANK, row-major, float32 at run time (double in the
 * reference). A dimension may be RC_PRIM_B: the batch size, known only at run time. Every other
 * dimension is a compile-time constant once the cell count is known (RC_PRIM_CELLS). A layer's input is leaf "input 0" of shape (B, C, H, W),
 * its output (B, C', H', W').
 *
 * Invariants of a graph (rc_prim_check enforces them; the builder keeps them):
 *   - nodes are in topological order: node i reads only nodes < i;
 *   - identical nodes are one node (hash-consing in rc_prim_add), so a forward built twice, for
 *     training and for evaluation, shares every node the two modes have in common;
 *   - out[RC_PRIM_TRAIN] and out[RC_PRIM_EVAL] are the layer's output in each mode; update
 *     nodes (batch-norm running statistics) run in training only;
 *   - shapes are inferred by the table's shape rule when a node is added, never stored by hand.
 * Randomness: randn/randu draw rc_rng_normal/uniform(seed, RC_RNG_STREAM(layer, 8 + k), i) for
 * the flat row-major index i of the element (so every backend draws the same numbers; streams
 * 8.. are the defined layer's, below them the built-in layers').
 * Time as a dimension (a later issue) adds primitives over a leading time axis — causal
 * temporal conv with carried state, scan — as more rows; the graph and autodiff are unchanged.
 */
#ifndef RC_PRIM_H
#define RC_PRIM_H

#include <stddef.h>
#include <stdint.h>

#define RC_PRIM_MAX_RANK 6
#define RC_PRIM_B (-1)            /* the batch dimension's size */
#define RC_PRIM_CELLS (-2)        /* the number of recorded cells: symbolic in a spec's graph (the
                                     spec does not know the recording), substituted by
                                     rc_prim_parse(.., cells > 0, ..) when the model is inferred */
#define RC_PRIM_MAX_NODES 4096
#define RC_PRIM_MAX_DECL 16       /* parameters (and state tensors) of one defined layer */
#define RC_PRIM_NATTR 12
#define RC_PRIM_MAX_ELEMS (1ll << 31)   /* per-sample elements of one tensor: "runaway size" */
#define RC_PRIM_RNG_SUB0 8        /* first RNG sub-stream of defined layers */

typedef enum {
    /* leaves */
    RC_P_INPUT,      /* ref 0 = the layer input, ref 1 = the output gradient (backward) */
    RC_P_PARAM,      /* ref = parameter index */
    RC_P_STATE,      /* ref = state index */
    RC_P_CONST,      /* value, of the node's dims (all 1s: a broadcast scalar) */
    RC_P_RANDN,      /* attr[0] = sub-stream k; standard normal */
    RC_P_RANDU,      /* attr[0] = sub-stream k; uniform (0,1) */
    RC_P_NUMEL,      /* attr[0] * B^attr[1] * cells^attr[2]: an element count as a value (means,
                        unbiased variances over axes that include the batch); dims all 1 */
    /* unary elementwise */
    RC_P_NEG, RC_P_RECIP, RC_P_EXP, RC_P_LOG, RC_P_LOG1P, RC_P_ABS, RC_P_SQRT, RC_P_TANH,
    RC_P_SIGMOID, RC_P_SOFTPLUS, RC_P_POWC /* x^value */, RC_P_SIGN, RC_P_STOPGRAD,
    RC_P_ERF,
    /* binary elementwise, broadcasting (equal rank; each dim equal or 1) */
    RC_P_ADD, RC_P_SUB, RC_P_MUL, RC_P_DIV, RC_P_MAX, RC_P_MIN,
    RC_P_GT, RC_P_GE, RC_P_EQ,   /* 1 or 0; not differentiable */
    /* ternary elementwise */
    RC_P_SELECT,     /* in0 != 0 ? in1 : in2 */
    /* reductions: attr[0] = bitmask of axes; rank kept, reduced dims become 1 */
    RC_P_SUM, RC_P_MEAN, RC_P_RMAX,
    /* movement */
    RC_P_RESHAPE,    /* attr[0..rank) = new dims (RC_PRIM_B allowed once, where the input has it) */
    RC_P_TRANSPOSE,  /* attr[0..rank) = permutation: out dim i = in dim attr[i] */
    RC_P_SLICE,      /* attr[2i], attr[2i+1] = start, stop on axis i (step 1) */
    RC_P_PAD,        /* attr[2i], attr[2i+1] = zeros before, after on axis i */
    RC_P_CONCAT,     /* attr[0] = axis; two inputs */
    RC_P_EXPAND,     /* attr[0..rank) = new dims; only 1 -> n */
    RC_P_CELLPICK,   /* x (B, cells, H, W) -> (B, cells, 1, 1): x[b, c, pos_c] at each cell's readout
                        position pos_c = cell_pos[2c], cell_pos[2c + 1] (the model's, one per cell:
                        rc_gc_positions); attr[0] = how the positions are found (ir.h's rc_gc_pos:
                        0 center, 1 data, 2 reference) */
    RC_P_CELLPLACE,  /* g (B, cells, 1, 1) -> (B, cells, attr[1], attr[2]): g at pos_c, 0 elsewhere
                        (cellpick's transpose); attr[0] as cellpick's */
    /* contractions */
    RC_P_MATMUL,     /* (M, K) x (K, N) -> (M, N); M may be B */
    RC_P_CONV2D,     /* x (N, C, H, W), w (O, C, K, K) or tiled (PY, PX, O, C, K, K) -> (N, O, Ho, Wo)
                        attr: 0 stride, 1 pad, 2 dilation, 3 py, 4 px (periods; 1 = plain conv) */
    RC_P_CONV2D_DX,  /* g (N, O, Ho, Wo), w -> dx (N, C, H, W): attr as CONV2D, 5 H, 6 W */
    RC_P_CONV2D_DW,  /* x (N, C, H, W), g (N, O, Ho, Wo) -> dw of w's shape: attr as CONV2D, 5 K,
                        6 tiled (0/1) */
    /* state */
    RC_P_UPDATE,     /* state[ref] := in0 after the training step's forward; a sink (rank 0) */
    RC_P_COUNT
} rc_prim_op;

typedef enum { RC_PRIM_TRAIN = 0, RC_PRIM_EVAL = 1 } rc_prim_mode;

typedef enum {
    RC_PK_LEAF, RC_PK_UNARY, RC_PK_BINARY, RC_PK_SELECT, RC_PK_REDUCE, RC_PK_MOVE,
    RC_PK_CONTRACT, RC_PK_SINK
} rc_prim_kind;

typedef struct {
    rc_prim_op op;
    int n_in, in[3];
    int rank, dims[RC_PRIM_MAX_RANK];
    int attr[RC_PRIM_NATTR];
    double value;                 /* CONST value, POWC exponent */
    int ref;                      /* INPUT / PARAM / STATE / UPDATE: which */
    int line;                     /* spec line that made it (messages), 0 = unknown; not hashed */
} rc_prim_node;

/* A parameter or state tensor of a defined layer. init: bound > 0 -> U(-bound, bound);
 * otherwise the constant value. */
typedef struct {
    char name[32];
    int rank, dims[RC_PRIM_MAX_RANK];    /* no batch dimension */
    double init_bound, init_value;
} rc_prim_decl;

typedef struct rc_prim_graph {
    int n;
    rc_prim_node *node;           /* n nodes, owned */
    int cap;
    int n_param, n_state;
    rc_prim_decl param[RC_PRIM_MAX_DECL], state[RC_PRIM_MAX_DECL];
    int out[2];                   /* output node per mode, -1 = not set */
    /* Filled by rc_prim_grad(g, mode): the gradient nodes of the mode's output w.r.t. the input
     * (-1: no path) and each parameter (-1: no path, the gradient is zero), for a cotangent
     * leaf INPUT ref 1 of the output's shape. */
    int has_grad[2];
    int grad_in[2];
    int grad_param[2][RC_PRIM_MAX_DECL];
    int err_line;                 /* spec line of the node that the last error is about */
    /* hash-consing table (open addressing over node ids), rebuilt as the graph grows */
    int *hash;
    int hash_cap;
} rc_prim_graph;

/* One primitive's row. vjp appends, for input `arg` of node `id` with cotangent node `g`, the
 * nodes of its gradient contribution (already of the input's shape) and returns its id; -1 with
 * a message in gr->err-compatible buffer on error; -2 when the op has no gradient (not
 * differentiable). ref computes the node in double from its inputs (NULL for leaves and sinks,
 * which the interpreter handles). c is the C/CUDA expression template of an elementwise op over
 * its operands %0 %1 %2 (and %v, the node's value, as a float literal; %n, NUMEL's count as a
 * float expression of B): the same text renders on both targets (CUDA has the same float math
 * functions), NULL otherwise. vjp returns -3 when the argument gets no gradient by definition
 * (stop_gradient, select's condition). UPDATE nodes have no value of their own: the new state
 * is the value of their input. */
typedef struct rc_prim_eval_ctx rc_prim_eval_ctx;
typedef struct {
    const char *name;
    rc_prim_kind kind;
    int n_in;                     /* -1 leaves */
    int differentiable;
    const char *c;                /* elementwise C/CUDA expression, else NULL */
    double (*unary)(double x, double v);           /* elementwise reference */
    double (*binary)(double a, double b);
    int (*vjp)(rc_prim_graph *gr, int id, int arg, int g, char *err, size_t errlen);
    double flops;                 /* per output element (elementwise, reduce: per input element) */
} rc_prim_info;

const rc_prim_info *rc_prim_table(void);         /* RC_P_COUNT rows, indexed by op */
const char *rc_prim_name(rc_prim_op op);
int rc_prim_lookup(const char *name);            /* -1 if unknown */
/* A parameter or state name: identifiers joined by single dots ("weight", "sub0.weight"), n
 * characters, 1 <= n <= 31. Names become comments and (dots as '_') parts of C identifiers in
 * generated code, and views "<layer>.<kind>.<name>" looked up by their suffix "." NAME. */
int rc_prim_decl_name_ok(const char *s, size_t n);
/* 1 if name a is b or ends with "." b (or the other way round): the two views' suffixes would
 * be ambiguous, so one layer's parameters (or its state tensors) may not have such a pair. */
int rc_prim_decl_names_clash(const char *a, const char *b);

/* ---- building (the frontend, the prelude, autodiff) */
void rc_prim_init(rc_prim_graph *g);
void rc_prim_free(rc_prim_graph *g);
/* Add a node: op, inputs, attributes (NULL = zeros; else RC_PRIM_NATTR ints are read), value,
 * ref. A reshape takes its new shape from (rank, dims) when dims is given, else from attr. Infers its shape, checks its
 * arguments, returns its id (an existing identical node's id if there is one), or -1 with a
 * message ("conv2d: input has 3 channels, weight expects 4") in err. Leaves take their dims
 * from `dims` (rank `rank`) for CONST/RANDN/RANDU/INPUT, from the declaration for PARAM/STATE.
 * `line` is recorded for messages. */
int rc_prim_add(rc_prim_graph *g, rc_prim_op op, int n_in, const int *in, const int *attr,
                double value, int ref, int rank, const int *dims, int line, char *err, size_t errlen);
/* Convenience forms used by vjp rules and the prelude; same returns. */
int rc_prim_un(rc_prim_graph *g, rc_prim_op op, int a, char *err, size_t errlen);
int rc_prim_bin(rc_prim_graph *g, rc_prim_op op, int a, int b, char *err, size_t errlen);
int rc_prim_const_like(rc_prim_graph *g, int like, double v, char *err, size_t errlen); /* all-1 dims, like's rank */
/* Sum `a` down to shape (rank, dims) over the broadcast axes (its unbroadcast). */
int rc_prim_unbroadcast(rc_prim_graph *g, int a, int rank, const int *dims, char *err, size_t errlen);
int rc_prim_expand_to(rc_prim_graph *g, int a, int rank, const int *dims, char *err, size_t errlen);

/* Reverse-mode autodiff of out[mode]: appends the backward graph and fills grad_in[mode] and
 * grad_param[mode]. Refuses (-1, message naming the op and its spec line) a non-differentiable
 * op that lies on a gradient path (its output needs a cotangent that reaches a parameter or the
 * input). Idempotent per mode. */
int rc_prim_grad(rc_prim_graph *g, rc_prim_mode mode, char *err, size_t errlen);

/* Nodes needed to compute `roots` (n_roots ids): need[i] = 1. */
void rc_prim_needed(const rc_prim_graph *g, const int *roots, int n_roots, unsigned char *need);
/* Nodes a forward in `mode` runs: its output, and in training every update sink. */
void rc_prim_needed_mode(const rc_prim_graph *g, rc_prim_mode mode, unsigned char *need);

/* Elements of node id for batch B (B dims count B). */
int64_t rc_prim_numel(const rc_prim_node *nd, int B);
/* Forward FLOPs per sample of mode's output (+ updates in training). */
double rc_prim_flops(const rc_prim_graph *g, rc_prim_mode mode);

/* ---- canonical text: one line per declaration and node, deterministic; the form stored in
 * the model IR (and so in every checkpoint). rc_prim_parse rebuilds the graph through
 * rc_prim_add, so every shape is re-inferred and checked. */
char *rc_prim_format(const rc_prim_graph *g);    /* malloc'd, NULL on OOM; B and C for the symbols */
/* cells > 0: RC_PRIM_CELLS becomes that number; 0: stays symbolic. g must be freshly inited. */
int rc_prim_parse(rc_prim_graph *g, const char *text, int cells, char *err, size_t errlen);

/* ---- reference interpreter in double */
struct rc_prim_eval_ctx {
    int B;
    int mode;
    uint64_t seed;
    int layer;                    /* 0-based model layer (RNG stream) */
    const float *input[2];        /* input (B, ...) and output gradient (B, ...), or NULL */
    const double *input_d[2];     /* or in double (takes precedence when non-NULL) */
    const float *param[RC_PRIM_MAX_DECL];
    const float *state[RC_PRIM_MAX_DECL];
    const int *cell_pos;          /* (n_cells, 2) readout positions for cellpick / cellplace, or NULL */
    int n_cells;                  /* positions in cell_pos: a map with more channels is refused */
};
/* Evaluate the nodes marked in need (NULL: all) into val[i] (malloc'd doubles, numel each; the
 * caller frees with rc_prim_vals_free). Returns 0 or -1 with a message. */
int rc_prim_eval(const rc_prim_graph *g, const rc_prim_eval_ctx *cx, const unsigned char *need,
                 double **val, char *err, size_t errlen);
void rc_prim_vals_free(const rc_prim_graph *g, double **val);

#endif
