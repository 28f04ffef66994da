/* emit_cuda_int.h — what the CUDA renderer's files share (compiler/cuda/emit_cuda.c: segments,
 * forward/backward kernels, layout; compiler/cuda/emit_cuda_dw.c: conv weight gradients;
 * compiler/cuda/emit_cuda_prim.c: defined layers, graphs of primitives). Internal:
 * not part of the library's interface. Invariant: every workspace region is (b * B + c) floats
 * with b, c multiples of 4; kernel text is written through P() into e->sb.
 */
#ifndef RC_EMIT_CUDA_INT_H
#define RC_EMIT_CUDA_INT_H

#include "emit.h"
#include "emit_cuda.h"
#include "prim.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- layout */

typedef struct { int64_t b, c; } reg;

typedef struct {
    reg out[RC_MAX_LAYERS], gout[RC_MAX_LAYERS];
    reg stats[RC_MAX_LAYERS];   /* BN: mean (F), invstd (F) */
    reg bsum[RC_MAX_LAYERS];    /* BN backward: sdy (F), sdyx (F) */
    reg part[RC_MAX_LAYERS];    /* BN channel: partial sums (C*S*2 doubles) */
    reg sub[RC_MAX_LAYERS][RC_MAX_STACK], gsub[RC_MAX_LAYERS][RC_MAX_STACK];
    reg dwp[RC_MAX_LAYERS][RC_MAX_STACK];   /* conv weight-gradient partials */
    reg coll[RC_MAX_LAYERS], collt[RC_MAX_LAYERS][2];
    int64_t tb, tc;
} lay;

/* ---------------------------------------------------------------- emitter state */

typedef struct rc_cu_prim rc_cu_prim;   /* a defined layer's plan (emit_cuda_prim.c) */

typedef struct {
    const rc_ir *ir;
    lay L;
    rc_sb *sb;
    rc_cuda_plan *plan;
    int cap;
    int phase;
    char *err;
    size_t errlen;
    int fail;
    int64_t poff[RC_MAX_LAYERS][RC_MAX_STACK + 2];   /* param offsets: w/sub w, bias, scale, shift */
    int64_t sbias[RC_MAX_LAYERS], sscale[RC_MAX_LAYERS], sshift[RC_MAX_LAYERS];
    int64_t srm[RC_MAX_LAYERS], srv[RC_MAX_LAYERS];
    int period[RC_MAX_LAYERS];
    rc_cu_prim *prim[RC_MAX_LAYERS];                  /* defined layers, else NULL */
} em;

#define P(...) rc_sb_put(e->sb, __VA_ARGS__)

/* "(a.ws + (long long)a.B * b + c)": the device expression of a workspace region */
char *rc_cu_ws(reg r, char buf[96]);
/* Append a kernel launch to the plan of the current phase (grid x = gx_b * B + gx_c over
 * per_block, grid y = gy_b * B + gy_c). On allocation failure sets e->fail. */
void rc_cu_add_launch(em *e, const char *name, int layer, int block, int64_t gx_b, int64_t gx_c,
                      int64_t per_block, int gy_b, int gy_c);

/* ---------------------------------------------------------------- conv */

typedef struct {
    int Cin, IH, IW;          /* source tensor */
    int Cout, OH, OW, K, pad;
    int flip;                 /* dx mode: weight(o,c,kh,kw) = W[c][o][K-1-kh][K-1-kw] */
    char wexpr[128];          /* weight base pointer expression */
    int layer;                /* input accessor layer (src_plane from layer input) or -1 */
    char src_ws[96];          /* else: source (B, Cin, IH, IW) in ws at this expression */
    int64_t bias;             /* param offset of the bias or -1 */
} conv_desc;

/* The tiled direct conv of the built-in conv layers (period 1; d->pad, d->flip as it says)
 * storing its output (B, Cout, OH, OW) into region dst, as kernel `name` of model layer
 * `layer`. Returns 1, or 0 (nothing emitted) when the shape does not suit the tiled kernel. */
int rc_cu_emit_conv_store(em *e, const char *name, int layer, const conv_desc *d, reg dst);

/* The input plane (sample b, channel c: the names in the generated text) of a conv's source. */
void rc_cu_src_plane(em *e, const conv_desc *d, char *out, size_t n);

/* Weight-gradient schedule for P = 1 convs, two forms. In both a thread owns a register tile
 * (kw x CO output channels) and slides along an output row: one input load and CO broadcast
 * gradient loads per KW x CO FMAs; the sum over a block's rows and columns is split among RS
 * row phases x OS column segments and reduced in shared memory in a fixed order; the sum over
 * the NCH batch chunks is the _dw_sum kernel's. Block = (CC input channels, CO output channels,
 * batch chunk).
 * kwtile (K * NKW >= 32 slots, the large kernels): CC = 1; a slot is (kh, KWT = 4 consecutive
 *   kw). H200: bncnn's 15x15 layer-1 dW, one weight per thread before, 9.1 -> 5.1 ms backward.
 * chunk (small kernels, the stacked 3x3 convs): a "combo" is (input channel of the chunk, kh)
 *   with all K kw. With one input channel per block each staged gradient tile served a single
 *   channel (staging-bound), and kw-tiles of a 3x3 kernel put 10+ gradient rows in one warp
 *   (bank conflicts). H200: stacked_bncnn backward 25.2 -> 11.0 ms.
 */
typedef struct {
    int kwtile, CO, NCO, KWT, NKW, SL, SLT, RS, OS, OSEG, NT, R, XW, NCH, CC, NCC, UNR;
} dw_sched;

dw_sched rc_cu_plan_dw(int Cin, int Cout, int K, int Ho, int Wo, int Wi);

/* Weight (and bias, bgrad >= 0) gradient of a P = 1 conv into grads at wgrad/bgrad: partial
 * kernel per batch chunk into the workspace region part, then a fixed-order sum. g: the
 * expression of the output gradient (B, Cout, OH, OW). */
void rc_cu_emit_conv_dw(em *e, int layer, const char *tag, const conv_desc *d, const char *g,
                        reg part, int64_t wgrad, int64_t bgrad);

/* ---------------------------------------------------------------- defined layers
 * (compiler/cuda/emit_cuda_prim.c; its header comment describes the generated code).
 * An error sets e->fail = 2 with the message in e->err (1 means out of memory). */

/* Where a defined layer's tensors live. */
typedef struct {
    int li;                   /* 0-based model layer: kernel names, RNG streams */
    int in_frames;            /* the input is the frame stream (model layer 0), else ws region in */
    int64_t in_hw;            /* frames: H * W */
    reg in, out, gout, gin;   /* (B, F_in), (B, F_out), (B, F_out), (B, F_in) */
    int64_t F_in, F_out;      /* per-sample elements */
    int out_y;                /* the output is also the model output a.y */
    int gout_dy;              /* the output gradient is a.dy (else ws region gout) */
    int want_gin;             /* write the input gradient */
    int64_t poff[RC_PRIM_MAX_DECL], soff[RC_PRIM_MAX_DECL];   /* into a.params/a.grads, a.state */
} rc_cu_prim_io;

/* Plan graph g (taken over on success) at io: its backward (rc_prim_grad), what each phase
 * materializes, its workspace regions (allocated in e->L). Returns 0 or -1 with e->err. */
int rc_cu_prim_prepare(em *e, rc_prim_graph *g, const rc_cu_prim_io *io, rc_cu_prim **out);
/* Parse layer li's graph from the IR (cells substituted), find its parameter and state views,
 * wire it to the model's workspace (e->L.out/gout of li-1 and li) and prepare it. */
int rc_cu_prim_setup(em *e, int li, rc_cu_prim **out);
/* Kernels and launches of the current phase e->phase. */
void rc_cu_prim_fwd(em *e, rc_cu_prim *p, int train);
void rc_cu_prim_bwd(em *e, rc_cu_prim *p);
void rc_cu_prim_free(rc_cu_prim *p);
/* Tests: render graph g (not taken over) alone as model layer li: input (B, ...) in ws region
 * io->in, output in io->out, output gradient in io->gout, input gradient into io->gin,
 * parameters (and state) packed in declaration order at io->poff (io->soff). The source holds
 * the device prelude, rng.h and the three phases' kernels; the plan as rc_emit_cuda's. */
int rc_emit_cuda_prim(rc_prim_graph *g, int li, char **src, rc_cuda_plan *plan, rc_cu_prim_io *io,
                      char *err, size_t errlen);
/* plan->kernels: the distinct kernel names of plan->launch, in first-launch order; -1 on OOM. */
int rc_cuda_plan_kernel_names(rc_cuda_plan *plan);

#endif
