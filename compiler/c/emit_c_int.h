/* emit_c_int.h — internals shared by the C emitter's files: emit_c.c (model structure,
 * workspace plan, elementwise chains, drivers), emit_c_conv.c (register-blocked convolution
 * kernels and their weight layouts) and emit_c_layers.c (the other producers, every backward).
 *
 * Vocabulary: a "group" is a producer layer (conv, dense, gcconv; or a copy of the input when
 * the model starts with an elementwise layer) followed by its chain of elementwise layers
 * (batchnorm, noise, dropout, act): ops 1..nops. Tensor "level" k is the value after op k
 * (level 0 = producer output). In training only the levels that backward needs are stored in
 * the workspace (see plan_storage in emit_c.c); the rest live in registers inside fused passes.
 * Generated code addresses the workspace as CXW(B_name) (ws + off[B_name]) through an rcg_ctx.
 */
#ifndef RC_EMIT_C_INT_H
#define RC_EMIT_C_INT_H

#include <stddef.h>
#include "emit.h"
#include "ir.h"

#define EM_MAXBUF 512
#define EM_NPART 8          /* batch parts with private weight-gradient accumulators */
#define EM_PAR_MIN 32768    /* element visits below which an elementwise loop runs on one thread */
#define EM_STR_(x) #x
#define EM_STR(x) EM_STR_(x)
#define EM_REGS 24          /* accumulator registers a conv block may use (AVX-512: 32 zmm) */
#define EM_MAXCHUNK 272     /* vector chunks of a kernel row (1024 / 4) or of a block row (8) */

typedef struct {
    int li;                         /* producer layer index; -1 = copy of the input */
    int nops;
    int op[RC_MAX_LAYERS + 1];      /* op[1..nops]: layer indices of the chain */
    int stored[RC_MAX_LAYERS + 1];  /* level k stored in training */
    int buf[RC_MAX_LAYERS + 1];     /* buffer id of each stored level, -1 otherwise */
    int j0;                         /* first stored level (the producer writes it) */
    int fold;                       /* inference: op index of a BN folded into conv weights */
    rc_shape in, sh;                /* producer input, level shape */
} em_grp;

typedef struct { char name[64]; size_t pb, fx; } em_buf;   /* pb*B + fx floats */

struct em;
/* Emits statements that transform the float `v` of element (b, channel c, flat index f in the
 * sample) -- the epilogue of a kernel. */
typedef void (*em_epi_fn)(struct em *E, rc_sb *sb, const void *ctx, const char *b,
                          const char *c, const char *f);

typedef struct {
    char name[64];                  /* the forward kernel (emit.h's kernel names) */
    char dwname[64];                /* the weight-gradient kernel */
    int cin, hin, win, cout, k;     /* input (cin,hin,win), kernel k -> (cout, hin-k+1, win-k+1) */
    int tc, th, tw, vw;             /* register block: channels, rows, columns; vector width */
    int cb, tco;                    /* weight gradient block: input channels, output channels */
    int pair;                       /* "pair" forward form: lanes = 8 channels x 2 columns */
    int zpad;                       /* the input is zero within zpad rows/cols of its border (the
                                       padded output gradient of an input-gradient conv, k - 1):
                                       the forward kernel skips those taps; 0 = none */
    int has_bias;
    em_epi_fn epi;                  /* NULL: plain store */
    const void *epi_ctx;
} em_conv;

typedef struct em {
    const rc_ir *ir;
    rc_sb k;                        /* kernels section */
    rc_sb d;                        /* drivers section */
    int ng;
    em_grp g[RC_MAX_LAYERS];
    int nbuf;
    em_buf buf[EM_MAXBUF];
    int hdr, gbuf[3], parts;
    size_t part_floats;
    /* External first conv (backend_c.c runs it, e.g. by FFT): emitted when layer 1 is a plain
     * or stacked (inference only: collapsed) conv and more groups follow. ext_buf holds its output (conv + bias, pre-chain) for
     * inference, and for training when level 0 is not stored (else buf[0] is used);
     * ext_gcur is the gradient buffer that holds d loss / d conv output after backward. */
    int ext, ext_buf, ext_gcur;
    int ext_train;                  /* training too (plain conv); a stacked conv: inference only */
    int failed;
    char err[256];
} em;

int em_add_buf(em *E, const char *name, size_t pb, size_t fx);
const char *em_bufname(const em *E, int id);
void em_fail(em *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fill blocking of a plain conv for layer li (schedule hints of the layer, then the model,
 * then automatic). */
void em_conv_config(const em *E, int li, em_conv *cv);

/* cv = a conv of layer li named name (forward kernel) and dwname (weight gradient; may be
 * NULL: none), blocked by em_conv_config. */
void em_conv_init(em *E, int li, em_conv *cv, const char *name, const char *dwname, int cin, int hin, int win,
                  int cout, int k);

/* static void NAME(const float *x, const float *wt, const float *bias, float *y, int b,
 *                  const rcg_ctx *cx): one sample; wt is [cin][k][k][cout]. */
void em_conv_fwd(em *E, const em_conv *cv);
/* static void DWNAME(const float *x, const float *g, float *acc): one sample's weight
 * gradient accumulated into acc [cin][k][cout][kv] (kv = em_conv_kv). */
void em_conv_dw(em *E, const em_conv *cv);
int em_conv_kv(const em_conv *cv);

/* Weights of a forward kernel in its layout, from the logical kernel W[o][c][ky][kx] of cv
 * (flip = 0: src is (cout, cin, k, k); flip = 1: src is the layer whose input gradient cv
 * computes, (cin, cout, k, k), read flipped). scale: NULL or an expression indexable by o.
 * Floats the layout needs: em_conv_prep_floats. */
void em_conv_prep(rc_sb *s, const em_conv *cv, const char *src, const char *dst, const char *scale, int flip);
size_t em_conv_prep_floats(const em_conv *cv);

/* Conv layer (plain, stacked or tiled) kernels and buffers. */
typedef struct {
    int n;                          /* sub-convs (1 = plain or tiled) */
    int tiled, py, px;              /* tiled: weight periods */
    em_conv fw[RC_MAX_STACK];       /* training forward, per sub */
    em_conv dx[RC_MAX_STACK];       /* input gradient (padded correlation), per sub */
    em_conv inf;                    /* inference (plain or collapsed) */
    int has_dx[RC_MAX_STACK];
    int prep[RC_MAX_STACK];         /* transposed weights per sub (train), reused for dx */
    int prep_inf, prep_bias;        /* inference: transposed (folded) weights, folded bias */
    int col[2];                     /* stacked collapse scratch */
    size_t col_floats;
    int sub_out[RC_MAX_STACK];      /* stacked: outputs of subs 0..n-2 */
    size_t acc_off[RC_MAX_STACK], pad_off[RC_MAX_STACK], db_off, gs_off[2], part_floats;
    int ho[RC_MAX_STACK], wo[RC_MAX_STACK];   /* output of each sub */
    int hi[RC_MAX_STACK], wi[RC_MAX_STACK];   /* input of each sub */
} em_cl;

typedef struct em_prim em_prim;   /* a defined layer's plan (emit_c_prim.c) */

typedef struct {
    em_cl cl[RC_MAX_LAYERS];
    int stat[RC_MAX_LAYERS], sums[RC_MAX_LAYERS];   /* BN buffers */
    em_prim *prim[RC_MAX_LAYERS];                   /* defined layers (owned), NULL otherwise */
} em_plan;

enum { M_TRAIN, M_INFER };

typedef struct { const em_plan *PL; const em_grp *G; int lo, hi, mode, skip; } em_epi_chain_ctx;

/* ---- helpers shared by the emitter files (emit_c.c) */
int64_t em_shsize(rc_shape s);
const rc_param *em_lparam(const rc_ir *ir, int li, const char *suffix, int state);
/* C identifier of layer li's parameter (P_) or state (S_) tensor `suffix` ("0" if absent). */
const char *em_P(const em *E, int li, const char *suffix, char *out);
const char *em_S(const em *E, int li, const char *suffix, char *out);
/* Sub-conv j's weight identifier (the plain weight for an unstacked conv). */
const char *em_wname(const em *E, int li, int j, char *out);
/* "#pragma omp parallel for schedule(static) [extra] [num_threads(hint of layer li)]" */
void em_omp_for(em *E, rc_sb *s, int li, const char *extra);
/* 1 when group g's producer may run through the runtime's conv hooks (rcg_hooks in the module). */
int em_hook_conv(const em *E, const em_plan *PL, int g);
/* Input of group g's producer for sample b; gradient buffer expression (-1 = dy). */
void em_in_expr(const em *E, int g, const char *b, char *out, size_t n);
const char *em_gexpr(const em *E, int cur, char *out);
/* Forward of chain ops lo+1..hi on `v` (skip = folded op; store = write stored levels). */
void em_ops_fwd(em *E, const em_plan *PL, rc_sb *s, const em_grp *G, int lo, int hi, int mode,
                const char *b, const char *c, const char *f, int skip, int store);
void em_epi_chain(em *E, rc_sb *s, const void *ctx, const char *b, const char *c, const char *f);

/* ---- emit_c_layers.c: the producers other than the blocked convolutions */
/* Per-sample forward NAME(x, w, bias, y, b, cx) of dense, gcconv, tiled conv or input copy, with
 * the chain ops 1..hi in `mode` as epilogue. */
void em_simple_fwd(em *E, const em_plan *PL, const em_grp *G, const char *name, int hi, int mode,
                   int skip, int has_bias);
/* Producer backward of group g (conv, stacked, tiled, dense, gcconv): parameter gradients from
 * gz, input gradient into gradient buffer `out` (-1: not needed). */
void em_prod_bwd(em *E, const em_plan *PL, int g, const char *gz, int out);

/* ---- emit_c_prim.c: defined layers (RC_LAYER_DEF), rendered from their primitive graphs.
 * A defined layer is a group's producer; its output (level 0) is always stored. */
/* Parse and differentiate layer li's graph, choose what each rendered function materializes,
 * add the scratch buffers. need_dx: the backward writes the input gradient. NULL after
 * em_fail on error. */
em_prim *em_prim_plan(em *E, int li, int need_dx);
void em_prim_free(em_prim *P);
/* The static functions forward_l<i>_def / infer_l<i>_def (B, x, y, cx) and backward_l<i>_def
 * (B, x, dy, dx, cx) into E->k. */
void em_prim_kernels(em *E, const em_prim *P);
/* Driver statements (into E->d) of group g: the forward call writing y (train: the training
 * forward with its updates; else eval), copying layer 1's input windows first; the backward call
 * (dx NULL: no input gradient). */
void em_prim_call_fwd(em *E, const em_prim *P, int g, int train, const char *y);
void em_prim_call_bwd(em *E, const em_prim *P, int g, const char *dy, const char *dx);

/* ---- emit_c_prim_conv.c: a defined layer's plain convolutions (conv2d, conv2d_dx, conv2d_dw with
 * stride 1, zero padding p < K, dilation 1, period 1, a parameter weight) on the blocked kernels above */
struct rc_prim_graph;
typedef struct {
    int node, op;                   /* the conv node and its op (0 until planned) */
    em_conv cv;                     /* conv2d: its forward; conv2d_dx: the padded correlation;
                                       conv2d_dw: the forward configuration its _dw kernel takes */
    int prep;                       /* workspace buffer of the weight layout (conv2d, _dx), -1 */
    int part;                       /* EM_NPART parts: padded gradients (_dx), accumulators (_dw) */
    size_t part_floats;
    int pad;                        /* the node's zero padding p (conv2d, _dw: the input is copied
                                       into a buffer with a zero border of p first) */
    int xpad;                       /* EM_NPART parts of xpad_floats: padded inputs, -1 */
    size_t xpad_floats;
} em_pconv;
/* 1 when node n of layer li's graph is lowered to the kernels (pc filled, its workspace
 * buffers added), 0 when the generic loops keep it. */
int em_pconv_plan(em *E, int li, const struct rc_prim_graph *g, int n, rc_phase ph, em_pconv *pc);
/* 1 when input a of node n must be a contiguous buffer (materialized, unless an INPUT leaf). */
int em_pconv_operand(const struct rc_prim_graph *g, int n, int a);
/* The kernel functions (into E->k), before the functions that call them. */
void em_pconv_kernels(em *E, const em_pconv *pc);
/* Statements computing the node over the batch into dst (acc: += into dst, a gradient;
 * conv2d_dw only): a, b its operands' whole-batch pointers (conv2d, _dx: tensor and weight;
 * _dw: x and the output gradient). */
void em_pconv_emit(em *E, rc_sb *s, int li, const em_pconv *pc, const char *a, const char *b, const char *dst, int acc);

#endif
