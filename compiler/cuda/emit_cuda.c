/* emit_cuda.c — the CUDA renderer of the IR: one .cu source of extern "C" kernels plus the
 * launch plan that runtime/backend/backend_cuda.c interprets (see emit_cuda.h).
 *
 * Structure of the generated code, per phase:
 *   forward  the layers are cut into segments: a producer (conv, stacked conv, dense, gcconv)
 *            with the pointwise layers after it fused into its epilogue; in training a
 *            batchnorm starts a segment (statistics kernel(s), then one apply kernel that also
 *            runs the pointwise layers after it); any other pointwise run is one kernel.
 *            In eval mode batchnorm is pointwise (running statistics), so it is folded into
 *            the producer's epilogue, and a stacked conv runs as its chain of small convs or,
 *            when that has more multiply-adds, collapsed on the device into one kernel.
 *   backward segments in reverse; the pointwise chain's gradient is computed on the fly inside
 *            the batchnorm reduction kernel or by one pointwise kernel; producers have a
 *            weight-gradient kernel (per-chunk partial sums, then a fixed-order reduction: no
 *            atomics, so results are bit-reproducible; P = 1 convs in compiler/cuda/emit_cuda_dw.c)
 *            and an input-gradient kernel (the conv's transposed, flipped kernel as a padded
 *            direct conv).
 * A defined layer (RC_LAYER_DEF, a graph of primitives) is a segment of its own in every phase,
 * rendered by compiler/cuda/emit_cuda_prim.c into the workspace regions out/gout of its layer.
 * Convs with P = 1 and K <= 16 use a shared-memory tiled direct conv: a block owns one sample,
 * a tile of output rows/columns and up to 8 output channels; each thread holds 8 x 4 outputs in
 * registers and slides a row segment of the input over the kernel row. Other convs (tiled
 * period > 1, very large kernels) use one thread per output element.
 * Workspace: every region is (b * B + c) floats, b and c multiples of 4 (16-byte alignment for
 * any B); offsets are literals in the kernels.
 */
#include "emit_cuda_int.h"
#include "lower.h"
#include "rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- layout */

static int64_t up4(int64_t x) { return (x + 3) & ~(int64_t)3; }

static reg alloc_reg(lay *L, int64_t b, int64_t c)
{
    reg r = { L->tb, L->tc };
    L->tb += up4(b);
    L->tc += up4(c);
    return r;
}

static int64_t sz(rc_shape s) { return (int64_t)s.c * s.h * s.w; }

#define BN_SPLIT(C) ((C) >= 264 ? 1 : (264 + (C) - 1) / (C))   /* channel-BN partial blocks */

/* Direct-conv schedule for P = 1 convs (forward, and dx as a padded conv). */
typedef struct {
    int ok;                   /* 0: use the simple kernels */
    int CO, NCO, PX, NX, TW, NTW, TH, NTH, CC, NT;
} dconv_sched;

static dconv_sched plan_dconv(int Cin, int Cout, int K, int Ho, int Wo)
{
    dconv_sched s;
    memset(&s, 0, sizeof s);
    if (K > 16) return s;
    s.CO = Cout < 8 ? Cout : 8;
    s.NCO = (Cout + s.CO - 1) / s.CO;
    s.PX = Wo < 4 ? Wo : 4;
    int nx = (Wo + s.PX - 1) / s.PX;
    s.NX = nx < 32 ? nx : 32;
    s.TW = s.NX * s.PX;
    s.NTW = (Wo + s.TW - 1) / s.TW;
    int thmax = 256 / s.NX;
    if (thmax < 1) thmax = 1;
    s.NTH = (Ho + thmax - 1) / thmax;
    s.TH = (Ho + s.NTH - 1) / s.NTH;
    s.NT = s.NX * s.TH;
    int per = (s.TH + K - 1) * (s.TW + K - 1) + s.CO * K * K;
    if (per > 11000) return s;
    s.CC = 10000 / per;
    if (s.CC < 1) s.CC = 1;
    if (s.CC > Cin) s.CC = Cin;
    if (s.CC > 16) s.CC = 16;
    s.ok = 1;
    return s;
}

/* ---------------------------------------------------------------- emitter state */

char *rc_cu_ws(reg r, char buf[96])
{
    snprintf(buf, 96, "(a.ws + (long long)a.B * %lldLL + %lldLL)", (long long)r.b, (long long)r.c);
    return buf;
}

void rc_cu_add_launch(em *e, const char *name, int layer, int block, int64_t gx_b, int64_t gx_c,
                      int64_t per_block, int gy_b, int gy_c)
{
    rc_cuda_plan *p = e->plan;
    if (p->n_launch == e->cap) {
        int nc = e->cap ? 2 * e->cap : 64;
        rc_cuda_launch *nl = realloc(p->launch, (size_t)nc * sizeof *nl);
        if (!nl) { e->fail = 1; return; }
        p->launch = nl;
        e->cap = nc;
    }
    rc_cuda_launch *l = &p->launch[p->n_launch++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->layer = layer;
    l->block = block;
    l->gx_b = gx_b;
    l->gx_c = gx_c;
    l->per_block = per_block;
    l->gy_b = gy_b;
    l->gy_c = gy_c;
    p->count[e->phase]++;
}

/* rc_cuda_phase and rc_phase count the phases in the same order */
_Static_assert((int)RC_CU_TRAIN_FWD == (int)RC_PHASE_FORWARD && (int)RC_CU_TRAIN_BWD == (int)RC_PHASE_BACKWARD &&
               (int)RC_CU_INFER == (int)RC_PHASE_INFER, "rc_cuda_phase and rc_phase differ");
static void kname(em *e, char *out, size_t n, int layer, const char *what)
{
    rc_kernel_name(out, n, (rc_phase)e->phase, layer, what);
}

static int is_producer(const rc_layer *l)
{
    return l->kind == RC_LAYER_CONV || l->kind == RC_LAYER_DENSE || l->kind == RC_LAYER_GCCONV;
}

static int is_pw(const rc_layer *l, int train)
{
    switch (l->kind) {
    case RC_LAYER_ACT: case RC_LAYER_NOISE: case RC_LAYER_DROPOUT: return 1;
    case RC_LAYER_BATCHNORM: return !train;
    default: return 0;
    }
}

/* Expression of element f of sample b of layer i's input (flat index over C*H*W). */
static void in_flat(em *e, int i, const char *b, const char *f, char *out, size_t n)
{
    if (i == 0) {
        int64_t hw = (int64_t)e->ir->in.h * e->ir->in.w;
        snprintf(out, n, "a.frames[a.starts[%s] * %lldLL + (%s)]", b, (long long)hw, f);
    } else {
        char w[96];
        snprintf(out, n, "%s[(long long)(%s) * %lldLL + (%s)]", rc_cu_ws(e->L.out[i - 1], w), b,
                 (long long)sz(e->ir->layers[i - 1].out), f);
    }
}

/* Expression of the plane pointer of channel c of sample b of layer i's input. */
static void in_plane(em *e, int i, const char *b, const char *c, char *out, size_t n)
{
    rc_shape s = i == 0 ? e->ir->in : e->ir->layers[i - 1].out;
    int64_t hw = (int64_t)s.h * s.w;
    if (i == 0) {
        snprintf(out, n, "(a.frames + (a.starts[%s] + (%s)) * %lldLL)", b, c, (long long)hw);
    } else {
        char w[96];
        snprintf(out, n, "(%s + ((long long)(%s) * %d + (%s)) * %lldLL)", rc_cu_ws(e->L.out[i - 1], w),
                 b, s.c, c, (long long)hw);
    }
}

static void flt(char *out, double v) { rc_emit_float(out, v); }

/* Gradient source of layer j's output: the model's dy for the last layer. */
static void gsrc(em *e, int j, char *out, size_t n)
{
    if (j == e->ir->n_layers - 1) snprintf(out, n, "a.dy");
    else { char w[96]; snprintf(out, n, "%s", rc_cu_ws(e->L.gout[j], w)); }
}

/* Emit the pointwise chain i0..i1 applied to float v at (b, f) (F features of layer i0's
 * input, equal through the chain); stores each output in training, the last one in eval, and
 * the model output y when the chain ends the model. */
static void emit_chain_fwd(em *e, int i0, int i1, int train, int store_first_in)
{
    const rc_ir *ir = e->ir;
    (void)store_first_in;
    for (int l = i0; l <= i1; l++) {
        const rc_layer *L = &ir->layers[l];
        int64_t F = sz(L->in);
        char a1[48], a2[48], w[96];
        switch (L->kind) {
        case RC_LAYER_ACT:
            P("        v = rcg_%s(v);\n", rc_act_name(L->act));
            break;
        case RC_LAYER_NOISE:
            if (train && L->std != 0) {
                flt(a1, L->std);
                P("        v += %s * rc_rng_normal(a.seed, %lluULL, (unsigned long long)b * %lldULL + (unsigned long long)f);\n",
                  a1, (unsigned long long)RC_RNG_STREAM(l, L->rng_sub), (long long)F);
            }
            break;
        case RC_LAYER_DROPOUT:
            if (train && L->p > 0) {
                flt(a1, (float)L->p);
                flt(a2, (float)(1.0 / (1.0 - L->p)));
                P("        v *= rc_rng_uniform(a.seed, %lluULL, (unsigned long long)b * %lldULL + (unsigned long long)f) >= %s ? %s : 0.0f;\n",
                  (unsigned long long)RC_RNG_STREAM(l, L->rng_sub), (long long)F, a1, a2);
            }
            break;
        case RC_LAYER_BATCHNORM: {   /* eval: running statistics */
            int inner = L->over == RC_BN_UNIT ? 1 : L->in.h * L->in.w;
            char feat[64];
            if (inner == 1) snprintf(feat, sizeof feat, "f");
            else snprintf(feat, sizeof feat, "(f / %d)", inner);
            flt(a1, L->eps);
            P("        { long long q = %s;\n", feat);
            P("          v = (v - a.state[%lldLL + q]) * (1.0f / sqrtf(a.state[%lldLL + q] + %s)) * %s(a.params[%lldLL + q]) + a.params[%lldLL + q]; }\n",
              (long long)e->srm[l], (long long)e->srv[l], a1, L->abs_scale ? "fabsf" : "",
              (long long)e->sscale[l], (long long)e->sshift[l]);
            break;
        }
        default:
            break;
        }
        if (train || l == i1)
            P("        %s[(long long)b * %lldLL + f] = v;\n", rc_cu_ws(e->L.out[l], w), (long long)F);
        if (l == ir->n_layers - 1)
            P("        a.y[(long long)b * %dLL + f] = v;\n", ir->cells);
    }
}

/* Backward of the pointwise chain i1 down to i0 (training mode) on float g at (b, f). */
static void emit_chain_bwd(em *e, int i0, int i1)
{
    const rc_ir *ir = e->ir;
    for (int l = i1; l >= i0; l--) {
        const rc_layer *L = &ir->layers[l];
        int64_t F = sz(L->in);
        char a1[48], a2[48], x[320];
        switch (L->kind) {
        case RC_LAYER_ACT:
            if (L->act == RC_ACT_IDENTITY) break;
            in_flat(e, l, "b", "f", x, sizeof x);
            P("        g *= rcg_dx_%s(%s);\n", rc_act_name(L->act), x);
            break;
        case RC_LAYER_DROPOUT:
            if (L->p > 0) {
                flt(a1, (float)L->p);
                flt(a2, (float)(1.0 / (1.0 - L->p)));
                P("        g *= rc_rng_uniform(a.seed, %lluULL, (unsigned long long)b * %lldULL + (unsigned long long)f) >= %s ? %s : 0.0f;\n",
                  (unsigned long long)RC_RNG_STREAM(l, L->rng_sub), (long long)F, a1, a2);
            }
            break;
        default:   /* noise: additive, gradient passes */
            break;
        }
    }
}

/* ---------------------------------------------------------------- kernels: generic pieces */

/* Kernel opening: one thread per element of B*F, b and f defined. */
static void open_elem_kernel(em *e, const char *name, int64_t F)
{
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    long long t = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (t < (long long)a.B * %lldLL) {\n", (long long)F);
    P("        long long b = t / %lldLL, f = t %% %lldLL;\n", (long long)F, (long long)F);
}

/* Pointwise segment i0..i1 not led by a producer (forward). */
static void emit_ew_fwd(em *e, int i0, int i1, int train)
{
    char name[64], x[320];
    kname(e, name, sizeof name, i0, "pointwise");
    int64_t F = sz(e->ir->layers[i0].in);
    open_elem_kernel(e, name, F);
    in_flat(e, i0, "b", "f", x, sizeof x);
    P("        float v = %s;\n", x);
    emit_chain_fwd(e, i0, i1, train, 0);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, i0, 256, F, 0, 256, 0, 1);
}

/* Pointwise backward i1..i0 into gout[i0-1]. */
static void emit_ew_bwd(em *e, int i0, int i1)
{
    char name[64], g[96], w[96];
    kname(e, name, sizeof name, i0, "pointwise");
    int64_t F = sz(e->ir->layers[i0].in);
    open_elem_kernel(e, name, F);
    gsrc(e, i1, g, sizeof g);
    P("        float g = %s[t];\n", g);
    emit_chain_bwd(e, i0, i1);
    P("        %s[t] = g;\n", rc_cu_ws(e->L.gout[i0 - 1], w));
    P("    }\n}\n");
    rc_cu_add_launch(e, name, i0, 256, F, 0, 256, 0, 1);
}

/* ---------------------------------------------------------------- conv */

void rc_cu_src_plane(em *e, const conv_desc *d, char *out, size_t n)
{
    if (d->layer >= 0) in_plane(e, d->layer, "b", "c", out, n);
    else snprintf(out, n, "(%s + ((long long)b * %d + c) * %lldLL)", d->src_ws, d->Cin,
                  (long long)d->IH * d->IW);
}

static void weight_at(const conv_desc *d, const char *o, const char *c, const char *kh,
                      const char *kw, char *out, size_t n)
{
    int K = d->K;
    if (!d->flip)
        snprintf(out, n, "%s[(((long long)(%s) * %d + (%s)) * %d + (%s)) * %d + (%s)]", d->wexpr,
                 o, d->Cin, c, K, kh, K, kw);
    else   /* original weight (Cin_orig = this Cout, Cout_orig = this Cin) */
        snprintf(out, n, "%s[(((long long)(%s) * %d + (%s)) * %d + (%d - (%s))) * %d + (%d - (%s))]",
                 d->wexpr, c, d->Cout, o, K, K - 1, kh, K, K - 1, kw);
}

typedef void (*epi_fn)(em *e, const void *ctx);

/* Shared-memory tiled direct conv; the epilogue sees float v, b, o, oh, ow, f (flat index in
 * the output) and must store it. */
static void emit_dconv(em *e, const char *name, const conv_desc *d, const dconv_sched *s,
                       epi_fn epi, const void *ctx)
{
    int K = d->K, SH = s->TH + K - 1, SW = s->TW + K - 1;
    char pl[320], wa[320];
    rc_cu_src_plane(e, d, pl, sizeof pl);
    weight_at(d, "o", "c", "kh", "kw", wa, sizeof wa);
    P("\n/* direct conv %dx%dx%d -> %dx%dx%d, k%d pad %d%s: tile %dx%d outputs x %d channels, "
      "%d px/thread, %d input channels per stage */\n",
      d->Cin, d->IH, d->IW, d->Cout, d->OH, d->OW, K, d->pad, d->flip ? " (transposed)" : "",
      s->TH, s->TW, s->CO, s->PX, s->CC);
    P("extern \"C\" __global__ void __launch_bounds__(%d, 1) %s(rc_kargs a)\n{\n", s->NT, name);
    P("    __shared__ __align__(16) float s_in[%d][%d][%d];\n", s->CC, SH, SW);
    P("    __shared__ __align__(16) float s_w[%d][%d][%d][%d];\n", s->CC, K, K, s->CO);
    P("    const int b = blockIdx.y;\n");
    P("    int bx = blockIdx.x;\n");
    P("    const int coc = bx %% %d; bx /= %d;\n", s->NCO, s->NCO);
    P("    const int co0 = coc * %d, ow0 = (bx %% %d) * %d, oh0 = (bx / %d) * %d;\n", s->CO, s->NTW,
      s->TW, s->NTW, s->TH);
    P("    const int tx = threadIdx.x %% %d, ty = threadIdx.x / %d;\n", s->NX, s->NX);
    P("    float acc[%d][%d];\n", s->CO, s->PX);
    P("#pragma unroll\n    for (int i = 0; i < %d; i++)\n#pragma unroll\n"
      "        for (int p = 0; p < %d; p++) acc[i][p] = 0.0f;\n", s->CO, s->PX);
    P("    for (int c0 = 0; c0 < %d; c0 += %d) {\n", d->Cin, s->CC);
    P("        __syncthreads();\n");
    P("        for (int q = threadIdx.x; q < %d; q += %d) {\n", s->CC * SH * SW, s->NT);
    P("            const int cc = q / %d, r = q %% %d, yy = r / %d, xx = r %% %d;\n", SH * SW,
      SH * SW, SW, SW);
    P("            const int c = c0 + cc, ih = oh0 + yy - %d, iw = ow0 + xx - %d;\n", d->pad, d->pad);
    P("            float v = 0.0f;\n");
    P("            if (c < %d && ih >= 0 && ih < %d && iw >= 0 && iw < %d) v = %s[ih * %d + iw];\n",
      d->Cin, d->IH, d->IW, pl, d->IW);
    P("            s_in[cc][yy][xx] = v;\n        }\n");
    P("        for (int q = threadIdx.x; q < %d; q += %d) {\n", s->CC * K * K * s->CO, s->NT);
    P("            const int co = q %% %d, r = q / %d, kw = r %% %d, kh = (r / %d) %% %d, cc = r / %d;\n",
      s->CO, s->CO, K, K, K, K * K);
    P("            const int c = c0 + cc, o = co0 + co;\n");
    P("            s_w[cc][kh][kw][co] = (c < %d && o < %d) ? %s : 0.0f;\n", d->Cin, d->Cout, wa);
    P("        }\n        __syncthreads();\n");
    P("#pragma unroll 1\n        for (int cc = 0; cc < %d; cc++) {\n", s->CC);
    P("#pragma unroll 1\n            for (int kh = 0; kh < %d; kh++) {\n", K);
    P("                float xr[%d];\n", s->PX + K - 1);
    P("#pragma unroll\n                for (int t = 0; t < %d; t++) xr[t] = s_in[cc][ty + kh][tx * %d + t];\n",
      s->PX + K - 1, s->PX);
    P("#pragma unroll\n                for (int kw = 0; kw < %d; kw++) {\n", K);
    P("#pragma unroll\n                    for (int co = 0; co < %d; co++) {\n", s->CO);
    P("                        const float wv = s_w[cc][kh][kw][co];\n");
    P("#pragma unroll\n                        for (int p = 0; p < %d; p++) acc[co][p] += wv * xr[kw + p];\n", s->PX);
    P("                    }\n                }\n            }\n        }\n    }\n");
    P("    const int oh = oh0 + ty;\n");
    P("#pragma unroll\n    for (int co = 0; co < %d; co++) {\n", s->CO);
    P("#pragma unroll\n        for (int p = 0; p < %d; p++) {\n", s->PX);
    P("            const int o = co0 + co, ow = ow0 + tx * %d + p;\n", s->PX);
    P("            if (o < %d && oh < %d && ow < %d) {\n", d->Cout, d->OH, d->OW);
    if (d->bias >= 0) P("                float v = acc[co][p] + a.params[%lldLL + o];\n", (long long)d->bias);
    else P("                float v = acc[co][p];\n");
    P("                const long long f = ((long long)o * %d + oh) * %d + ow;\n", d->OH, d->OW);
    P("                (void)f;\n");
    epi(e, ctx);
    P("            }\n        }\n    }\n}\n");
    rc_cu_add_launch(e, name, d->layer, s->NT, 0, (int64_t)s->NTH * s->NTW * s->NCO, 1, 1, 0);
}

/* One thread per output element; tiled weights (P,P,Cout,Cin,K,K) with phase (oh%P, ow%P). */
static void emit_sconv(em *e, const char *name, const conv_desc *d, int Pp, epi_fn epi,
                       const void *ctx)
{
    char pl[320];
    rc_cu_src_plane(e, d, pl, sizeof pl);
    int64_t F = (int64_t)d->Cout * d->OH * d->OW;
    P("\n/* conv %dx%dx%d -> %dx%dx%d, k%d, period %d: one thread per output */\n", d->Cin, d->IH,
      d->IW, d->Cout, d->OH, d->OW, d->K, Pp);
    open_elem_kernel(e, name, F);
    P("        const int o = (int)(f / %d), oh = (int)(f / %d %% %d), ow = (int)(f %% %d);\n",
      d->OH * d->OW, d->OW, d->OH, d->OW);
    P("        const long long ph = (long long)(oh %% %d) * %d + ow %% %d;\n", Pp, Pp, Pp);
    P("        const float *w = %s + (ph * %d + o) * %lldLL;\n", d->wexpr, d->Cout,
      (long long)d->Cin * d->K * d->K);
    P("        float v = 0.0f;\n");
    P("        for (int c = 0; c < %d; c++) {\n", d->Cin);
    P("            const float *x = %s + oh * %d + ow;\n", pl, d->IW);
    P("            const float *wc = w + c * %d;\n", d->K * d->K);
    P("            for (int kh = 0; kh < %d; kh++)\n", d->K);
    P("                for (int kw = 0; kw < %d; kw++) v += wc[kh * %d + kw] * x[kh * %d + kw];\n",
      d->K, d->K, d->IW);
    P("        }\n");
    if (d->bias >= 0) P("        v += a.params[%lldLL + ph * %d + o];\n", (long long)d->bias, d->Cout);
    epi(e, ctx);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, d->layer, 256, F, 0, 256, 0, 1);
}

/* Epilogues. */
typedef struct { int layer, i1, train; } epi_chain_ctx;

static void epi_chain(em *e, const void *vctx)
{
    const epi_chain_ctx *c = vctx;
    char w[96];
    /* the chain code is written for 8-space indentation; harmless inside deeper blocks */
    if (c->train || c->i1 == c->layer)
        P("        %s[(long long)b * %lldLL + f] = v;\n", rc_cu_ws(e->L.out[c->layer], w),
          (long long)sz(e->ir->layers[c->layer].out));
    if (c->layer == e->ir->n_layers - 1) P("        a.y[(long long)b * %dLL + f] = v;\n", e->ir->cells);
    if (c->i1 > c->layer) emit_chain_fwd(e, c->layer + 1, c->i1, c->train, 0);
}

typedef struct { reg dst; int64_t F; int drop; double p; uint64_t stream; } epi_store_ctx;

static void epi_store(em *e, const void *vctx)
{
    const epi_store_ctx *c = vctx;
    char w[96], a1[48], a2[48];
    if (c->drop) {
        flt(a1, (float)c->p);
        flt(a2, (float)(1.0 / (1.0 - c->p)));
        P("        v *= rc_rng_uniform(a.seed, %lluULL, (unsigned long long)b * %lldULL + (unsigned long long)f) >= %s ? %s : 0.0f;\n",
          (unsigned long long)c->stream, (long long)c->F, a1, a2);
    }
    P("        %s[(long long)b * %lldLL + f] = v;\n", rc_cu_ws(c->dst, w), (long long)c->F);
}

/* Conv forward (any variant) with source, weights and epilogue. */
static void emit_conv_any(em *e, const char *name, conv_desc *d, int Pp, epi_fn epi, const void *ctx)
{
    dconv_sched s = plan_dconv(d->Cin, d->Cout, d->K, d->OH, d->OW);
    if (Pp == 1 && s.ok) emit_dconv(e, name, d, &s, epi, ctx);
    else emit_sconv(e, name, d, Pp, epi, ctx);
}

int rc_cu_emit_conv_store(em *e, const char *name, int layer, const conv_desc *d, reg dst)
{
    dconv_sched s = plan_dconv(d->Cin, d->Cout, d->K, d->OH, d->OW);
    if (!s.ok) return 0;
    epi_store_ctx st = {dst, (int64_t)d->Cout * d->OH * d->OW, 0, 0, 0};
    emit_dconv(e, name, d, &s, epi_store, &st);
    e->plan->launch[e->plan->n_launch - 1].layer = layer;
    return 1;
}

/* Simple (period P) conv gradients: dW, db straight into grads; one thread per weight. */
static void emit_sconv_dw(em *e, int layer, const conv_desc *d, int Pp, const char *g,
                          int64_t wgrad, int64_t bgrad)
{
    char name[64], pl[320];
    int K = d->K;
    int64_t NW = (int64_t)Pp * Pp * d->Cout * d->Cin * K * K;
    rc_kernel_name(name, sizeof name, RC_PHASE_BACKWARD, layer, "conv_dw");
    rc_cu_src_plane(e, d, pl, sizeof pl);
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (q < %lldLL) {\n", (long long)NW);
    P("        const int kw = (int)(q %% %d), kh = (int)(q / %d %% %d), c = (int)(q / %d %% %d);\n",
      K, K, K, K * K, d->Cin);
    P("        const int o = (int)(q / %lldLL %% %d), ph = (int)(q / %lldLL);\n",
      (long long)d->Cin * K * K, d->Cout, (long long)d->Cout * d->Cin * K * K);
    P("        const int py = ph / %d, px = ph %% %d;\n", Pp, Pp);
    P("        float v = 0.0f;\n");
    P("        for (int b = 0; b < a.B; b++) {\n");
    P("            const float *x = %s;\n", pl);
    P("            const float *gg = %s + ((long long)b * %d + o) * %dLL;\n", g, d->Cout, d->OH * d->OW);
    P("            for (int oh = py; oh < %d; oh += %d)\n", d->OH, Pp);
    P("                for (int ow = px; ow < %d; ow += %d) v += gg[oh * %d + ow] * x[(oh + kh) * %d + ow + kw];\n",
      d->OW, Pp, d->OW, d->IW);
    P("        }\n        a.grads[%lldLL + q] += v;\n    }\n}\n", (long long)wgrad);
    rc_cu_add_launch(e, name, layer, 256, 0, NW, 256, 0, 1);
    if (bgrad >= 0) {
        rc_kernel_name(name, sizeof name, RC_PHASE_BACKWARD, layer, "conv_db");
        P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
        P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
        P("    if (q < %dLL) {\n", Pp * Pp * d->Cout);
        P("        const int o = (int)(q %% %d), ph = (int)(q / %d), py = ph / %d, px = ph %% %d;\n",
          d->Cout, d->Cout, Pp, Pp);
        P("        float v = 0.0f;\n");
        P("        for (int b = 0; b < a.B; b++)\n");
        P("            for (int oh = py; oh < %d; oh += %d)\n", d->OH, Pp);
        P("                for (int ow = px; ow < %d; ow += %d) v += %s[(((long long)b * %d + o) * %d + oh) * %d + ow];\n",
          d->OW, Pp, g, d->Cout, d->OH, d->OW);
        P("        a.grads[%lldLL + q] += v;\n    }\n}\n", (long long)bgrad);
        rc_cu_add_launch(e, name, layer, 256, 0, (int64_t)Pp * Pp * d->Cout, 256, 0, 1);
    }
}

/* Simple conv input gradient (gather), any period. dst (B, Cin, IH, IW). */
static void emit_sconv_dx(em *e, const char *name, int layer, const conv_desc *d, int Pp,
                          const char *g, const epi_store_ctx *st)
{
    int K = d->K;
    int64_t F = (int64_t)d->Cin * d->IH * d->IW;
    open_elem_kernel(e, name, F);
    P("        const int c = (int)(f / %d), h = (int)(f / %d %% %d), w = (int)(f %% %d);\n",
      d->IH * d->IW, d->IW, d->IH, d->IW);
    P("        float v = 0.0f;\n");
    P("        for (int o = 0; o < %d; o++) {\n", d->Cout);
    P("            const float *gg = %s + ((long long)b * %d + o) * %dLL;\n", g, d->Cout, d->OH * d->OW);
    P("            for (int kh = 0; kh < %d; kh++) {\n", K);
    P("                const int oh = h - kh;\n");
    P("                if (oh < 0 || oh >= %d) continue;\n", d->OH);
    P("                for (int kw = 0; kw < %d; kw++) {\n", K);
    P("                    const int ow = w - kw;\n");
    P("                    if (ow < 0 || ow >= %d) continue;\n", d->OW);
    P("                    const long long ph = (long long)(oh %% %d) * %d + ow %% %d;\n", Pp, Pp, Pp);
    P("                    v += %s[(((ph * %d + o) * %d + c) * %d + kh) * %d + kw] * gg[oh * %d + ow];\n",
      d->wexpr, d->Cout, d->Cin, K, K, d->OW);
    P("                }\n            }\n        }\n");
    epi_store(e, st);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, layer, 256, F, 0, 256, 0, 1);
}

/* Input gradient of a conv into st->dst (with a dropout mask if st->drop). */
static void emit_conv_dx(em *e, const char *name, int layer, const conv_desc *fwd, int Pp,
                         const char *g, const epi_store_ctx *st)
{
    dconv_sched s = plan_dconv(fwd->Cout, fwd->Cin, fwd->K, fwd->IH, fwd->IW);
    if (Pp == 1 && s.ok) {
        conv_desc d;
        memset(&d, 0, sizeof d);
        d.Cin = fwd->Cout; d.IH = fwd->OH; d.IW = fwd->OW;
        d.Cout = fwd->Cin; d.OH = fwd->IH; d.OW = fwd->IW;
        d.K = fwd->K; d.pad = fwd->K - 1; d.flip = 1;
        snprintf(d.wexpr, sizeof d.wexpr, "%s", fwd->wexpr);
        d.layer = -1;
        snprintf(d.src_ws, sizeof d.src_ws, "%s", g);
        d.bias = -1;
        emit_dconv(e, name, &d, &s, epi_store, st);
        e->plan->launch[e->plan->n_launch - 1].layer = layer;
    } else {
        emit_sconv_dx(e, name, layer, fwd, Pp, g, st);
    }
}

/* ---------------------------------------------------------------- layers */

static void conv_input_desc(em *e, int i, conv_desc *d)
{
    const rc_layer *L = &e->ir->layers[i];
    memset(d, 0, sizeof *d);
    d->Cin = L->in.c; d->IH = L->in.h; d->IW = L->in.w;
    d->layer = i;
    d->bias = -1;
}

/* Eval of a stacked conv: the chain of small convs (dropout off) or one conv with the collapsed
 * kernel, whichever has fewer multiply-adds. The chain usually wins by far (stacked_bncnn layer 1:
 * 13 M against 93 M per sample); the collapse wins for a short chain of wide layers. Same linear
 * map either way; the CPU backends keep their own choice. */
static int stack_chain_cheaper(const rc_layer *L)
{
    double chain = 0;
    int h = L->in.h, w = L->in.w;
    for (int j = 0; j < L->n_sub; j++) {
        int k = L->sub_k[j];
        h -= k - 1; w -= k - 1;
        chain += (double)L->sub_cout[j] * L->sub_cin[j] * k * k * h * w;
    }
    double coll = (double)L->out.c * L->in.c * L->kernel * L->kernel * L->out.h * L->out.w;
    return chain < coll;
}

static void emit_conv_fwd(em *e, int i, int i1, int train)
{
    const rc_ir *ir = e->ir;
    const rc_layer *L = &ir->layers[i];
    char name[64];
    epi_chain_ctx ec = { i, i1, train };
    conv_desc d;
    conv_input_desc(e, i, &d);
    if (L->stack > 0 && (train || stack_chain_cheaper(L))) {
        int h = L->in.h, w = L->in.w;
        char prev[96] = "";
        for (int j = 0; j < L->n_sub; j++) {
            int last = j == L->n_sub - 1, k = L->sub_k[j];
            conv_desc s;
            memset(&s, 0, sizeof s);
            s.Cin = L->sub_cin[j]; s.IH = h; s.IW = w;
            s.Cout = L->sub_cout[j]; s.K = k; s.OH = h - k + 1; s.OW = w - k + 1;
            s.layer = j == 0 ? i : -1;
            if (j > 0) snprintf(s.src_ws, sizeof s.src_ws, "%s", prev);
            snprintf(s.wexpr, sizeof s.wexpr, "(a.params + %lldLL)", (long long)e->poff[i][j]);
            s.bias = last ? e->sbias[i] : -1;
            char tag[32];
            snprintf(tag, sizeof tag, "sub%d", j);
            kname(e, name, sizeof name, i, tag);
            if (last) {
                emit_conv_any(e, name, &s, 1, epi_chain, &ec);
            } else {
                epi_store_ctx st = { e->L.sub[i][j], (int64_t)s.Cout * s.OH * s.OW,
                                     train && L->stack_dropout > 0, L->stack_dropout, RC_RNG_STREAM(i, L->rng_sub + j + 1) };
                emit_conv_any(e, name, &s, 1, epi_store, &st);
                rc_cu_ws(e->L.sub[i][j], prev);
            }
            e->plan->launch[e->plan->n_launch - 1].layer = i;
            h = s.OH; w = s.OW;
        }
        return;
    }
    d.Cout = L->out.c; d.OH = L->out.h; d.OW = L->out.w; d.K = L->kernel;
    d.bias = e->sbias[i];
    if (L->stack > 0 && L->n_sub > 1) {
        /* eval: collapse the chain on the device, then one conv */
        int Kc = L->sub_k[0];
        for (int j = 1; j < L->n_sub; j++) {
            int K2 = L->sub_k[j], Kn = Kc + K2 - 1, R = L->in.c, Q = L->sub_cout[j - 1], S = L->sub_cout[j];
            char base[128], dst[128], w1[96], tag[32];
            if (j == 1) snprintf(base, sizeof base, "(a.params + %lldLL)", (long long)e->poff[i][0]);
            else snprintf(base, sizeof base, "%s", rc_cu_ws(e->L.collt[i][j % 2], w1));
            snprintf(dst, sizeof dst, "%s", rc_cu_ws(j == L->n_sub - 1 ? e->L.coll[i] : e->L.collt[i][(j + 1) % 2], w1));
            snprintf(tag, sizeof tag, "collapse%d", j);
            kname(e, name, sizeof name, i, tag);
            int64_t N = (int64_t)S * R * Kn * Kn;
            P("\n/* stacked conv collapse step %d: (%d,%d,%d) then (%d,%d,%d) -> (%d,%d,%d) */\n", j, Q, R, Kc,
              S, Q, K2, S, R, Kn);
            P("extern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
            P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
            P("    if (q < %lldLL) {\n", (long long)N);
            P("        const int x = (int)(q %% %d), y = (int)(q / %d %% %d), r = (int)(q / %d %% %d), s = (int)(q / %lldLL);\n",
              Kn, Kn, Kn, Kn * Kn, R, (long long)R * Kn * Kn);
            P("        const float *base = %s, *st = a.params + %lldLL;\n", base, (long long)e->poff[i][j]);
            P("        float v = 0.0f;\n");
            P("        for (int qc = 0; qc < %d; qc++)\n", Q);
            P("            for (int dy = 0; dy < %d; dy++) {\n", K2);
            P("                const int yy = y - dy;\n");
            P("                if (yy < 0 || yy >= %d) continue;\n", Kc);
            P("                for (int dx = 0; dx < %d; dx++) {\n", K2);
            P("                    const int xx = x - dx;\n");
            P("                    if (xx < 0 || xx >= %d) continue;\n", Kc);
            P("                    v += st[((s * %d + qc) * %d + dy) * %d + dx] * base[((qc * %d + r) * %d + yy) * %d + xx];\n",
              Q, K2, K2, R, Kc, Kc);
            P("                }\n            }\n");
            P("        %s[q] = v;\n    }\n}\n", dst);
            rc_cu_add_launch(e, name, i, 256, 0, N, 256, 0, 1);
            Kc = Kn;
        }
        char w1[96];
        snprintf(d.wexpr, sizeof d.wexpr, "%s", rc_cu_ws(e->L.coll[i], w1));
    } else if (L->stack > 0) {
        snprintf(d.wexpr, sizeof d.wexpr, "(a.params + %lldLL)", (long long)e->poff[i][0]);
    } else {
        snprintf(d.wexpr, sizeof d.wexpr, "(a.params + %lldLL)", (long long)e->poff[i][0]);
    }
    kname(e, name, sizeof name, i, "conv");
    emit_conv_any(e, name, &d, L->stack > 0 ? 1 : e->period[i], epi_chain, &ec);
}

static void emit_conv_bwd(em *e, int i)
{
    const rc_layer *L = &e->ir->layers[i];
    char g[96], name[64];
    gsrc(e, i, g, sizeof g);
    if (L->stack > 0) {
        int hs[RC_MAX_STACK + 1], wsz[RC_MAX_STACK + 1];
        hs[0] = L->in.h; wsz[0] = L->in.w;
        for (int j = 0; j < L->n_sub; j++) { hs[j + 1] = hs[j] - L->sub_k[j] + 1; wsz[j + 1] = wsz[j] - L->sub_k[j] + 1; }
        char gj[96];
        snprintf(gj, sizeof gj, "%s", g);
        for (int j = L->n_sub - 1; j >= 0; j--) {
            conv_desc s;
            memset(&s, 0, sizeof s);
            s.Cin = L->sub_cin[j]; s.IH = hs[j]; s.IW = wsz[j];
            s.Cout = L->sub_cout[j]; s.K = L->sub_k[j]; s.OH = hs[j + 1]; s.OW = wsz[j + 1];
            s.layer = j == 0 ? i : -1;
            char w1[96];
            if (j > 0) snprintf(s.src_ws, sizeof s.src_ws, "%s", rc_cu_ws(e->L.sub[i][j - 1], w1));
            snprintf(s.wexpr, sizeof s.wexpr, "(a.params + %lldLL)", (long long)e->poff[i][j]);
            s.bias = -1;
            char tag[32];
            snprintf(tag, sizeof tag, "sub%d", j);
            rc_cu_emit_conv_dw(e, i, tag, &s, gj, e->L.dwp[i][j], e->poff[i][j],
                         j == L->n_sub - 1 ? e->sbias[i] : -1);
            if (j > 0 || i > 0) {
                epi_store_ctx st;
                memset(&st, 0, sizeof st);
                st.dst = j > 0 ? e->L.gsub[i][j - 1] : e->L.gout[i - 1];
                st.F = (int64_t)s.Cin * s.IH * s.IW;
                st.drop = j > 0 && L->stack_dropout > 0;
                st.p = L->stack_dropout;
                st.stream = RC_RNG_STREAM(i, L->rng_sub + j);   /* the mask of sub-conv j - 1 */
                snprintf(tag, sizeof tag, "sub%d_dx", j);
                kname(e, name, sizeof name, i, tag);
                emit_conv_dx(e, name, i, &s, 1, gj, &st);
            }
            if (j > 0) rc_cu_ws(e->L.gsub[i][j - 1], gj);
        }
        return;
    }
    conv_desc d;
    conv_input_desc(e, i, &d);
    d.Cout = L->out.c; d.OH = L->out.h; d.OW = L->out.w; d.K = L->kernel;
    snprintf(d.wexpr, sizeof d.wexpr, "(a.params + %lldLL)", (long long)e->poff[i][0]);
    int Pp = e->period[i];
    if (Pp == 1) rc_cu_emit_conv_dw(e, i, "conv", &d, g, e->L.dwp[i][0], e->poff[i][0], e->sbias[i]);
    else emit_sconv_dw(e, i, &d, Pp, g, e->poff[i][0], e->sbias[i]);
    if (i > 0) {
        epi_store_ctx st;
        memset(&st, 0, sizeof st);
        st.dst = e->L.gout[i - 1];
        st.F = sz(L->in);
        kname(e, name, sizeof name, i, "conv_dx");
        emit_conv_dx(e, name, i, &d, Pp, g, &st);
    }
}

/* dense: block per (sample, chunk of up to 8 units), block reduction over the features. */
static void emit_dense_fwd(em *e, int i, int i1, int train)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], x[320];
    int U = L->out.c;
    int64_t F = sz(L->in);
    int UC = U < 8 ? U : 8, NUC = (U + UC - 1) / UC;
    kname(e, name, sizeof name, i, "dense");
    in_flat(e, i, "b", "k", x, sizeof x);
    P("\n/* dense %lld -> %d: block per (sample, %d units) */\n", (long long)F, U, UC);
    P("extern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    __shared__ double s_r[32];\n");
    P("    const long long b = blockIdx.x / %d;\n    const int u0 = (blockIdx.x %% %d) * %d;\n", NUC, NUC, UC);
    P("    float acc[%d];\n#pragma unroll\n    for (int u = 0; u < %d; u++) acc[u] = 0.0f;\n", UC, UC);
    P("    const float *W = a.params + %lldLL;\n", (long long)e->poff[i][0]);
    P("    for (long long k = threadIdx.x; k < %lldLL; k += 256) {\n", (long long)F);
    P("        const float xv = %s;\n", x);
    P("#pragma unroll\n        for (int u = 0; u < %d; u++)\n", UC);
    P("            if (u0 + u < %d) acc[u] += W[(long long)(u0 + u) * %lldLL + k] * xv;\n", U, (long long)F);
    P("    }\n");
    P("#pragma unroll\n    for (int u = 0; u < %d; u++) {\n", UC);
    P("        const double s = rc_block_sum((double)acc[u], s_r);\n");
    P("        if (threadIdx.x == 0 && u0 + u < %d) {\n", U);
    P("        const long long f = u0 + u;\n");
    if (e->sbias[i] >= 0) P("        float v = (float)s + a.params[%lldLL + f];\n", (long long)e->sbias[i]);
    else P("        float v = (float)s;\n");
    epi_chain_ctx ec = { i, i1, train };
    epi_chain(e, &ec);
    P("        }\n    }\n}\n");
    rc_cu_add_launch(e, name, i, 256, NUC, 0, 1, 0, 1);
}

static void emit_dense_bwd(em *e, int i)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], x[320], g[96], w[96];
    int U = L->out.c;
    int64_t F = sz(L->in);
    gsrc(e, i, g, sizeof g);
    kname(e, name, sizeof name, i, "dense_dw");
    in_flat(e, i, "b", "k", x, sizeof x);
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (q < %lldLL) {\n", (long long)U * F);
    P("        const long long u = q / %lldLL, k = q %% %lldLL;\n", (long long)F, (long long)F);
    P("        float v = 0.0f;\n");
    P("        for (int b = 0; b < a.B; b++) v += %s[(long long)b * %d + u] * %s;\n", g, U, x);
    P("        a.grads[%lldLL + q] += v;\n    }\n}\n", (long long)e->poff[i][0]);
    rc_cu_add_launch(e, name, i, 256, 0, (int64_t)U * F, 256, 0, 1);
    if (e->sbias[i] >= 0) {
        kname(e, name, sizeof name, i, "dense_db");
        P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
        P("    const int u = blockIdx.x * 256 + threadIdx.x;\n");
        P("    if (u < %d) {\n        float v = 0.0f;\n", U);
        P("        for (int b = 0; b < a.B; b++) v += %s[(long long)b * %d + u];\n", g, U);
        P("        a.grads[%lldLL + u] += v;\n    }\n}\n", (long long)e->sbias[i]);
        rc_cu_add_launch(e, name, i, 256, 0, U, 256, 0, 1);
    }
    if (i > 0) {
        kname(e, name, sizeof name, i, "dense_dx");
        open_elem_kernel(e, name, F);
        P("        const float *W = a.params + %lldLL;\n", (long long)e->poff[i][0]);
        P("        float v = 0.0f;\n");
        P("        for (int u = 0; u < %d; u++) v += W[(long long)u * %lldLL + f] * %s[b * %d + u];\n",
          U, (long long)F, g, U);
        P("        %s[t] = v;\n    }\n}\n", rc_cu_ws(e->L.gout[i - 1], w));
        rc_cu_add_launch(e, name, i, 256, F, 0, 256, 0, 1);
    }
}

/* gcconv: block per (sample, cell), block reduction over (c, kh, kw). */
static void emit_gc_fwd(em *e, int i, int i1, int train)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], pl[320];
    int cells = e->ir->cells, K = L->kernel, C = L->in.c;
    kname(e, name, sizeof name, i, "gcconv");
    in_plane(e, i, "b", "c", pl, sizeof pl);
    P("\n/* gcconv: %d cells, %dx%dx%d input, k%d: block per (sample, cell) */\n", cells, C, L->in.h,
      L->in.w, K);
    P("extern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    __shared__ double s_r[32];\n");
    P("    const long long b = blockIdx.x / %d;\n    const int n = blockIdx.x %% %d;\n", cells, cells);
    P("    const int r0 = a.cell_pos[2 * n], c0 = a.cell_pos[2 * n + 1];\n");
    P("    const float *W = a.params + %lldLL + (long long)n * %d;\n", (long long)e->poff[i][0], C * K * K);
    P("    float acc = 0.0f;\n");
    P("    for (int q = threadIdx.x; q < %d; q += 256) {\n", C * K * K);
    P("        const int c = q / %d, kh = q / %d %% %d, kw = q %% %d;\n", K * K, K, K, K);
    P("        acc += W[q] * %s[(r0 + kh) * %d + c0 + kw];\n    }\n", pl, L->in.w);
    P("    const double s = rc_block_sum((double)acc, s_r);\n");
    P("    if (threadIdx.x == 0) {\n        const long long f = n;\n");
    if (e->sbias[i] >= 0) P("        float v = (float)s + a.params[%lldLL + n];\n", (long long)e->sbias[i]);
    else P("        float v = (float)s;\n");
    epi_chain_ctx ec = { i, i1, train };
    epi_chain(e, &ec);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, i, 256, cells, 0, 1, 0, 1);
}

static void emit_gc_bwd(em *e, int i)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], pl[320], g[96], w[96];
    int cells = e->ir->cells, K = L->kernel, C = L->in.c;
    gsrc(e, i, g, sizeof g);
    kname(e, name, sizeof name, i, "gcconv_dw");
    in_plane(e, i, "b", "c", pl, sizeof pl);
    int64_t NW = (int64_t)cells * C * K * K;
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (q < %lldLL) {\n", (long long)NW);
    P("        const int n = (int)(q / %d), c = (int)(q / %d %% %d), kh = (int)(q / %d %% %d), kw = (int)(q %% %d);\n",
      C * K * K, K * K, C, K, K, K);
    P("        const int r0 = a.cell_pos[2 * n], c0 = a.cell_pos[2 * n + 1];\n");
    P("        float v = 0.0f;\n");
    P("        for (int b = 0; b < a.B; b++) v += %s[(long long)b * %d + n] * %s[(r0 + kh) * %d + c0 + kw];\n",
      g, cells, pl, L->in.w);
    P("        a.grads[%lldLL + q] += v;\n    }\n}\n", (long long)e->poff[i][0]);
    rc_cu_add_launch(e, name, i, 256, 0, NW, 256, 0, 1);
    if (e->sbias[i] >= 0) {
        kname(e, name, sizeof name, i, "gcconv_db");
        P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
        P("    const int n = blockIdx.x * 256 + threadIdx.x;\n");
        P("    if (n < %d) {\n        float v = 0.0f;\n", cells);
        P("        for (int b = 0; b < a.B; b++) v += %s[(long long)b * %d + n];\n", g, cells);
        P("        a.grads[%lldLL + n] += v;\n    }\n}\n", (long long)e->sbias[i]);
        rc_cu_add_launch(e, name, i, 256, 0, cells, 256, 0, 1);
    }
    if (i > 0) {
        int64_t F = sz(L->in);
        kname(e, name, sizeof name, i, "gcconv_dx");
        open_elem_kernel(e, name, F);
        P("        const int c = (int)(f / %d), h = (int)(f / %d %% %d), w = (int)(f %% %d);\n",
          L->in.h * L->in.w, L->in.w, L->in.h, L->in.w);
        P("        const float *W = a.params + %lldLL;\n", (long long)e->poff[i][0]);
        P("        float v = 0.0f;\n");
        P("        for (int n = 0; n < %d; n++) {\n", cells);
        P("            const int kh = h - a.cell_pos[2 * n], kw = w - a.cell_pos[2 * n + 1];\n");
        P("            if (kh >= 0 && kh < %d && kw >= 0 && kw < %d)\n", K, K);
        P("                v += W[(((long long)n * %d + c) * %d + kh) * %d + kw] * %s[b * %d + n];\n", C, K, K, g, cells);
        P("        }\n        %s[t] = v;\n    }\n}\n", rc_cu_ws(e->L.gout[i - 1], w));
        rc_cu_add_launch(e, name, i, 256, F, 0, 256, 0, 1);
    }
}

/* ---------------------------------------------------------------- batchnorm (training) */

/* Emit the code that walks a BN layer's elements: unit mode uses a 32x8 block over (features,
 * batch lanes); channel mode a block per (channel, split) over a chunk of (b, pixel) pairs.
 * body sees b, f (flat index), feat, and accumulates double s1, s2. */
static void bn_reduce_open(em *e, const char *name, int i, int *block, int64_t *gx, int64_t *per)
{
    const rc_layer *L = &e->ir->layers[i];
    int64_t F = sz(L->in);
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    if (L->over == RC_BN_UNIT) {
        P("    __shared__ double s_1[8][33], s_2[8][33];\n");
        P("    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;\n");
        P("    const long long feat = (long long)blockIdx.x * 32 + tx, f = feat;\n");
        P("    double s1 = 0.0, s2 = 0.0;\n");
        P("    if (feat < %lldLL)\n", (long long)F);
        P("    for (long long b = ty; b < a.B; b += 8) {\n");
        *block = 256; *gx = (F + 31) / 32; *per = 1;
    } else {
        int inner = L->in.h * L->in.w, S = BN_SPLIT(L->in.c);
        P("    __shared__ double s_r[32];\n");
        P("    const long long feat = blockIdx.x / %d, split = blockIdx.x %% %d;\n", S, S);
        P("    const long long N = (long long)a.B * %d, chunk = (N + %d) / %d;\n", inner, S - 1, S);
        P("    const long long e0 = split * chunk, e1 = min(N, e0 + chunk);\n");
        P("    double s1 = 0.0, s2 = 0.0;\n");
        P("    for (long long q = e0 + threadIdx.x; q < e1; q += 256) {\n");
        P("        const long long b = q / %d, f = feat * %d + q %% %d;\n", inner, inner, inner);
        *block = 256; *gx = (int64_t)L->in.c * S; *per = 1;
    }
}

/* Close the element loop and reduce; unit mode ends with thread (tx, ty==0) holding s1, s2 for
 * feature `feat` inside `if (FIN)`; channel mode writes partials. Returns with an open block
 * "{" in unit mode, in which the caller emits the finalization. */
static void bn_reduce_close_unit(em *e, int i)
{
    int64_t F = sz(e->ir->layers[i].in);
    P("    }\n");
    P("    s_1[ty][tx] = s1; s_2[ty][tx] = s2;\n    __syncthreads();\n");
    P("    if (ty == 0 && feat < %lldLL) {\n", (long long)F);
    P("        for (int k = 1; k < 8; k++) { s1 += s_1[k][tx]; s2 += s_2[k][tx]; }\n");
}

static void bn_reduce_close_channel(em *e, int i, reg part)
{
    char w[96];
    P("    }\n");
    P("    s1 = rc_block_sum(s1, s_r);\n");
    P("    s2 = rc_block_sum(s2, s_r);\n");
    P("    if (threadIdx.x == 0) {\n");
    P("        double *p = (double *)%s;\n", rc_cu_ws(part, w));
    P("        p[2 * blockIdx.x] = s1; p[2 * blockIdx.x + 1] = s2;\n    }\n}\n");
    (void)i;
}

/* Channel mode: finalize kernel header, one thread per channel, s1/s2 summed in fixed order. */
static void bn_final_open(em *e, const char *name, int i, reg part)
{
    const rc_layer *L = &e->ir->layers[i];
    char w[96];
    int S = BN_SPLIT(L->in.c);
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    const long long feat = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (feat < %d) {\n", L->in.c);
    P("        const double *p = (const double *)%s;\n", rc_cu_ws(part, w));
    P("        double s1 = 0.0, s2 = 0.0;\n");
    P("        for (int k = 0; k < %d; k++) { s1 += p[2 * (feat * %d + k)]; s2 += p[2 * (feat * %d + k) + 1]; }\n",
      S, S, S);
}

static void emit_bn_stats_final_body(em *e, int i)
{
    const rc_layer *L = &e->ir->layers[i];
    char w[96], eps[48], mom[48];
    int64_t feat = L->over == RC_BN_UNIT ? sz(L->in) : L->in.c;
    int inner = L->over == RC_BN_UNIT ? 1 : L->in.h * L->in.w;
    rc_emit_double(eps, L->eps);
    rc_emit_double(mom, L->momentum);
    P("        const double n = (double)a.B * %d;\n", inner);
    P("        const double m = s1 / n;\n");
    P("        double v = s2 / n - m * m;\n        if (v < 0.0) v = 0.0;\n");
    P("        float *st = %s;\n", rc_cu_ws(e->L.stats[i], w));
    P("        st[feat] = (float)m;\n");
    P("        st[%lldLL + feat] = (float)(1.0 / sqrt(v + %s));\n", (long long)feat, eps);
    P("        float *rm = a.state + %lldLL, *rv = a.state + %lldLL;\n", (long long)e->srm[i], (long long)e->srv[i]);
    P("        rm[feat] = (float)((1.0 - %s) * rm[feat] + %s * m);\n", mom, mom);
    P("        rv[feat] = (float)((1.0 - %s) * rv[feat] + %s * v * n / (n - 1.0));\n", mom, mom);
}

static void emit_bn_fwd(em *e, int i, int i1)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], x[320], w[96];
    int block;
    int64_t gx, per;
    kname(e, name, sizeof name, i, "bn_stats");
    bn_reduce_open(e, name, i, &block, &gx, &per);
    in_flat(e, i, "b", "f", x, sizeof x);
    P("        const double xv = %s;\n", x);
    P("        s1 += xv; s2 += xv * xv;\n");
    if (L->over == RC_BN_UNIT) {
        bn_reduce_close_unit(e, i);
        emit_bn_stats_final_body(e, i);
        P("    }\n}\n");
        rc_cu_add_launch(e, name, i, block, 0, gx, per, 0, 1);
    } else {
        bn_reduce_close_channel(e, i, e->L.part[i]);
        rc_cu_add_launch(e, name, i, block, 0, gx, per, 0, 1);
        kname(e, name, sizeof name, i, "bn_stats_final");
        bn_final_open(e, name, i, e->L.part[i]);
        emit_bn_stats_final_body(e, i);
        P("    }\n}\n");
        rc_cu_add_launch(e, name, i, 256, 0, L->in.c, 256, 0, 1);
    }
    /* apply + the pointwise chain after it */
    int64_t F = sz(L->in);
    int inner = L->over == RC_BN_UNIT ? 1 : L->in.h * L->in.w;
    int64_t nfeat = L->over == RC_BN_UNIT ? F : L->in.c;
    kname(e, name, sizeof name, i, "bn_apply");
    open_elem_kernel(e, name, F);
    P("        const long long q = f / %d;\n", inner);
    P("        const float *st = %s;\n", rc_cu_ws(e->L.stats[i], w));
    in_flat(e, i, "b", "f", x, sizeof x);
    P("        float v = (%s - st[q]) * st[%lldLL + q] * %s(a.params[%lldLL + q]) + a.params[%lldLL + q];\n", x,
      (long long)nfeat, L->abs_scale ? "fabsf" : "", (long long)e->sscale[i], (long long)e->sshift[i]);
    P("        %s[t] = v;\n", rc_cu_ws(e->L.out[i], w));
    if (i == e->ir->n_layers - 1) P("        a.y[t] = v;\n");
    if (i1 > i) emit_chain_fwd(e, i + 1, i1, 1, 0);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, i, 256, F, 0, 256, 0, 1);
}

static void emit_bn_bwd_final_body(em *e, int i)
{
    const rc_layer *L = &e->ir->layers[i];
    char w[96];
    int64_t nfeat = L->over == RC_BN_UNIT ? sz(L->in) : L->in.c;
    P("        const float sc = a.params[%lldLL + feat];\n", (long long)e->sscale[i]);
    if (L->abs_scale) P("        const double ds = s2 * (sc > 0.0f ? 1.0 : (sc < 0.0f ? -1.0 : 0.0));\n");
    else P("        const double ds = s2;\n");
    P("        a.grads[%lldLL + feat] += (float)ds;\n", (long long)e->sscale[i]);
    P("        a.grads[%lldLL + feat] += (float)s1;\n", (long long)e->sshift[i]);
    P("        float *bs = %s;\n", rc_cu_ws(e->L.bsum[i], w));
    P("        bs[feat] = (float)s1; bs[%lldLL + feat] = (float)s2;\n", (long long)nfeat);
}

static void emit_bn_bwd(em *e, int i, int i1)
{
    const rc_layer *L = &e->ir->layers[i];
    char name[64], x[320], w[96], g[96];
    int block;
    int64_t gx, per;
    int64_t F = sz(L->in);
    int inner = L->over == RC_BN_UNIT ? 1 : L->in.h * L->in.w;
    int64_t nfeat = L->over == RC_BN_UNIT ? F : L->in.c;
    gsrc(e, i1, g, sizeof g);
    kname(e, name, sizeof name, i, "bn_reduce");
    bn_reduce_open(e, name, i, &block, &gx, &per);
    P("        const long long t = b * %lldLL + f;\n", (long long)F);
    P("        float g = %s[t];\n", g);
    if (i1 > i) {
        emit_chain_bwd(e, i + 1, i1);
        P("        %s[t] = g;\n", rc_cu_ws(e->L.gout[i], w));
    }
    in_flat(e, i, "b", "f", x, sizeof x);
    P("        const float *st = %s;\n", rc_cu_ws(e->L.stats[i], w));
    P("        const long long qf = f / %d;\n", inner);
    P("        const double xh = ((double)%s - st[qf]) * st[%lldLL + qf];\n", x, (long long)nfeat);
    P("        s1 += g; s2 += g * xh;\n");
    if (L->over == RC_BN_UNIT) {
        bn_reduce_close_unit(e, i);
        emit_bn_bwd_final_body(e, i);
        P("    }\n}\n");
        rc_cu_add_launch(e, name, i, block, 0, gx, per, 0, 1);
    } else {
        bn_reduce_close_channel(e, i, e->L.part[i]);
        rc_cu_add_launch(e, name, i, block, 0, gx, per, 0, 1);
        kname(e, name, sizeof name, i, "bn_reduce_final");
        bn_final_open(e, name, i, e->L.part[i]);
        emit_bn_bwd_final_body(e, i);
        P("    }\n}\n");
        rc_cu_add_launch(e, name, i, 256, 0, L->in.c, 256, 0, 1);
    }
    if (i == 0) return;
    char gb[96];
    if (i1 > i) rc_cu_ws(e->L.gout[i], gb);
    else gsrc(e, i, gb, sizeof gb);
    kname(e, name, sizeof name, i, "bn_dx");
    open_elem_kernel(e, name, F);
    P("        const long long q = f / %d;\n", inner);
    P("        const float *st = %s, *bs = %s;\n", rc_cu_ws(e->L.stats[i], w), rc_cu_ws(e->L.bsum[i], x));
    in_flat(e, i, "b", "f", x, sizeof x);
    P("        const float is = st[%lldLL + q], xh = (%s - st[q]) * is;\n", (long long)nfeat, x);
    P("        const float rn = 1.0f / ((float)a.B * %d.0f);\n", inner);
    P("        const float gain = %s(a.params[%lldLL + q]);\n", L->abs_scale ? "fabsf" : "", (long long)e->sscale[i]);
    P("        %s[t] = gain * is * (%s[t] - bs[q] * rn - xh * bs[%lldLL + q] * rn);\n",
      rc_cu_ws(e->L.gout[i - 1], w), gb, (long long)nfeat);
    P("    }\n}\n");
    rc_cu_add_launch(e, name, i, 256, F, 0, 256, 0, 1);
}

extern const char rc_cuda_dev_prelude_text[];   /* emit_cuda_text.c */

/* ---------------------------------------------------------------- driver */

typedef struct { int kind; int i0, i1; } seg;   /* kind: 0 producer, 1 bn, 2 pointwise, 3 defined */

static int segments(const rc_ir *ir, int train, seg *out)
{
    int n = 0, i = 0;
    while (i < ir->n_layers) {
        const rc_layer *L = &ir->layers[i];
        int kind = is_producer(L) ? 0 : (L->kind == RC_LAYER_BATCHNORM && train) ? 1 :
                   L->kind == RC_LAYER_DEF ? 3 : 2;
        int j = i;
        while (kind != 3 && j + 1 < ir->n_layers && is_pw(&ir->layers[j + 1], train)) j++;
        out[n].kind = kind; out[n].i0 = i; out[n].i1 = j;
        n++;
        i = j + 1;
    }
    return n;
}

static const rc_param *lparam(const rc_ir *ir, int i, const char *suffix, int state)
{
    const rc_layer *L = &ir->layers[i];
    int first = state ? L->state_first : L->param_first, count = state ? L->state_count : L->param_count;
    const rc_param *arr = state ? ir->state : ir->params;
    size_t sl = strlen(suffix);
    for (int p = first; p < first + count; p++) {
        size_t nl = strlen(arr[p].name);
        if (nl >= sl && !strcmp(arr[p].name + nl - sl, suffix)) return &arr[p];
    }
    return NULL;
}

static int resolve(em *e)
{
    const rc_ir *ir = e->ir;
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        e->sbias[i] = e->sscale[i] = e->sshift[i] = e->srm[i] = e->srv[i] = -1;
        e->period[i] = 1;
        const rc_param *p;
        char m[64];
        switch (L->kind) {
        case RC_LAYER_CONV:
            if (L->stack > 0) {
                for (int j = 0; j < L->n_sub; j++) {
                    snprintf(m, sizeof m, ".sub%d.weight", j);
                    if (!(p = lparam(ir, i, m, 0))) goto missing;
                    e->poff[i][j] = p->offset;
                }
            } else {
                if (!(p = lparam(ir, i, ".weight", 0))) goto missing;
                e->poff[i][0] = p->offset;
                if (p->rank == 6) {
                    if (p->dims[0] != p->dims[1]) {
                        snprintf(e->err, e->errlen, "layer %d (conv): non-square tile period %dx%d", i + 1,
                                 p->dims[0], p->dims[1]);
                        return -1;
                    }
                    e->period[i] = p->dims[0];
                }
            }
            if (L->bias) { if (!(p = lparam(ir, i, ".bias", 0))) goto missing; e->sbias[i] = p->offset; }
            break;
        case RC_LAYER_DENSE: case RC_LAYER_GCCONV:
            if (!(p = lparam(ir, i, ".weight", 0))) goto missing;
            e->poff[i][0] = p->offset;
            if (L->bias) { if (!(p = lparam(ir, i, ".bias", 0))) goto missing; e->sbias[i] = p->offset; }
            break;
        case RC_LAYER_BATCHNORM:
            if (!(p = lparam(ir, i, ".scale", 0))) goto missing;
            e->sscale[i] = p->offset;
            if (!(p = lparam(ir, i, ".shift", 0))) goto missing;
            e->sshift[i] = p->offset;
            if (!(p = lparam(ir, i, ".running_mean", 1))) goto missing;
            e->srm[i] = p->offset;
            if (!(p = lparam(ir, i, ".running_var", 1))) goto missing;
            e->srv[i] = p->offset;
            break;
        default:
            break;
        }
        continue;
    missing:
        snprintf(e->err, e->errlen, "layer %d (%s): a parameter tensor is missing (IR not inferred?)", i + 1,
                 rc_layer_kind_name(L->kind));
        return -1;
    }
    return 0;
}

static int layout(em *e)
{
    const rc_ir *ir = e->ir;
    lay *L = &e->L;
    memset(L, 0, sizeof *L);
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *l = &ir->layers[i];
        int64_t F = sz(l->out);
        L->out[i] = alloc_reg(L, F, 0);
        L->gout[i] = alloc_reg(L, F, 0);
        if (l->kind == RC_LAYER_BATCHNORM) {
            int64_t nf = l->over == RC_BN_UNIT ? sz(l->in) : l->in.c;
            L->stats[i] = alloc_reg(L, 0, 2 * nf);
            L->bsum[i] = alloc_reg(L, 0, 2 * nf);
            if (l->over == RC_BN_CHANNEL) L->part[i] = alloc_reg(L, 0, 4 * (int64_t)l->in.c * BN_SPLIT(l->in.c));
        }
        if (l->kind == RC_LAYER_CONV) {
            if (l->stack > 0) {
                int h = l->in.h, w = l->in.w, Kc = 0;
                int64_t tmax = 0;
                for (int j = 0; j < l->n_sub; j++) {
                    int k = l->sub_k[j];
                    dw_sched s = rc_cu_plan_dw(l->sub_cin[j], l->sub_cout[j], k, h - k + 1, w - k + 1, w);
                    L->dwp[i][j] = alloc_reg(L, 0, (int64_t)s.NCH * l->sub_cout[j] * (l->sub_cin[j] * k * k + 1));
                    h -= k - 1; w -= k - 1;
                    if (j + 1 < l->n_sub) {
                        int64_t f = (int64_t)l->sub_cout[j] * h * w;
                        L->sub[i][j] = alloc_reg(L, f, 0);
                        L->gsub[i][j] = alloc_reg(L, f, 0);
                    }
                    Kc = j == 0 ? k : Kc + k - 1;
                    int64_t cs = (int64_t)l->sub_cout[j] * l->in.c * Kc * Kc;
                    if (cs > tmax) tmax = cs;
                }
                L->coll[i] = alloc_reg(L, 0, tmax);
                L->collt[i][0] = alloc_reg(L, 0, tmax);
                L->collt[i][1] = alloc_reg(L, 0, tmax);
            } else if (e->period[i] == 1) {
                dw_sched s = rc_cu_plan_dw(l->in.c, l->out.c, l->kernel, l->out.h, l->out.w, l->in.w);
                L->dwp[i][0] = alloc_reg(L, 0, (int64_t)s.NCH * l->out.c * (l->in.c * l->kernel * l->kernel + 1));
            }
        }
        if (l->kind == RC_LAYER_DEF && rc_cu_prim_setup(e, i, &e->prim[i])) return -1;
    }
    return 0;
}

static void free_prims(em *e)
{
    for (int i = 0; i < RC_MAX_LAYERS; i++) rc_cu_prim_free(e->prim[i]);
}

/* ir: the kernels' view (defined layers lowered, lower.h); orig: the model (header, hash). */
static int emit_cuda(const rc_ir *ir, const rc_ir *orig, const char *spec_path, char **src, rc_cuda_plan *plan,
                     char *err, size_t errlen)
{
    *src = NULL;
    memset(plan, 0, sizeof *plan);
    if (ir->n_layers < 1 || ir->cells < 1) {
        snprintf(err, errlen, "model %s: not inferred (no layers or cells)", ir->name);
        return -1;
    }
    rc_sb sb = {0};
    em *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, errlen, "out of memory"); return -1; }
    e->ir = ir;
    e->sb = &sb;
    e->plan = plan;
    e->err = err;
    e->errlen = errlen;
    if (resolve(e)) { free(e); return -1; }
    if (layout(e)) { free_prims(e); free(e); return -1; }

    rc_emit_header(&sb, orig, spec_path, "CUDA (NVRTC, " RC_CUDA_GEN_VERSION ")");
    rc_emit_lowered(&sb, orig, ir);
    rc_sb_put(&sb, "%s\n", rc_cuda_dev_prelude_text);
    rc_sb_put(&sb, "/* ---- common/rng.h, verbatim ---- */\n%s", rc_cuda_rng_text());
    rc_sb_put(&sb, "/* ---- end of common/rng.h ---- */\n");

    seg sg[RC_MAX_LAYERS];
    for (int ph = 0; ph < RC_CU_NPHASE; ph++) {
        e->phase = ph;
        plan->first[ph] = plan->n_launch;
        int train = ph != RC_CU_INFER;
        int ns = segments(ir, train, sg);
        rc_sb_put(&sb, "\n/* ================= %s ================= */\n",
                  ph == RC_CU_TRAIN_FWD ? "training forward" : ph == RC_CU_TRAIN_BWD ? "training backward" : "inference");
        if (ph != RC_CU_TRAIN_BWD) {
            for (int k = 0; k < ns; k++) {
                int i0 = sg[k].i0, i1 = sg[k].i1;
                const rc_layer *L = &ir->layers[i0];
                if (sg[k].kind == 0) {
                    if (L->kind == RC_LAYER_CONV) emit_conv_fwd(e, i0, i1, train);
                    else if (L->kind == RC_LAYER_DENSE) emit_dense_fwd(e, i0, i1, train);
                    else emit_gc_fwd(e, i0, i1, train);
                } else if (sg[k].kind == 1) {
                    emit_bn_fwd(e, i0, i1);
                } else if (sg[k].kind == 3) {
                    rc_cu_prim_fwd(e, e->prim[i0], train);
                } else {
                    emit_ew_fwd(e, i0, i1, train);
                }
            }
        } else {
            for (int k = ns - 1; k >= 0; k--) {
                int i0 = sg[k].i0, i1 = sg[k].i1;
                const rc_layer *L = &ir->layers[i0];
                if (sg[k].kind == 0) {
                    if (i1 > i0) emit_ew_bwd(e, i0 + 1, i1);
                    if (L->kind == RC_LAYER_CONV) emit_conv_bwd(e, i0);
                    else if (L->kind == RC_LAYER_DENSE) emit_dense_bwd(e, i0);
                    else emit_gc_bwd(e, i0);
                } else if (sg[k].kind == 1) {
                    emit_bn_bwd(e, i0, i1);
                } else if (sg[k].kind == 3) {
                    rc_cu_prim_bwd(e, e->prim[i0]);
                } else if (i0 > 0) {
                    emit_ew_bwd(e, i0, i1);
                }
            }
        }
    }
    plan->ws_b = e->L.tb;
    plan->ws_c = e->L.tc;
    int fail = e->fail;   /* 2: a defined layer's message is in err */
    free_prims(e);
    free(e);
    char *s = rc_sb_finish(&sb);
    if (!s || fail) {
        free(s);
        rc_cuda_plan_free(plan);
        if (fail != 2) snprintf(err, errlen, "out of memory while emitting CUDA for %s", ir->name);
        return -1;
    }
    if (rc_cuda_plan_kernel_names(plan)) { free(s); rc_cuda_plan_free(plan); snprintf(err, errlen, "out of memory"); return -1; }
    *src = s;
    return 0;
}

int rc_emit_cuda(const rc_ir *ir, const char *spec_path, char **src, rc_cuda_plan *plan,
                 char *err, size_t errlen)
{
    *src = NULL;
    memset(plan, 0, sizeof *plan);
    rc_ir *low = malloc(sizeof *low);
    if (!low) { snprintf(err, errlen, "out of memory"); return -1; }
    char m[256];
    int rc = rc_ir_lower(ir, low, m, sizeof m) < 0 ? (snprintf(err, errlen, "%s: %s", ir->name, m), -1)
                                                   : emit_cuda(low, ir, spec_path, src, plan, err, errlen);
    free(low);
    return rc;
}

int rc_cuda_plan_kernel_names(rc_cuda_plan *plan)
{
    plan->kernels = calloc((size_t)plan->n_launch + 1, sizeof *plan->kernels);
    if (!plan->kernels) return -1;
    for (int k = 0; k < plan->n_launch; k++) {
        int dup = 0;
        for (int q = 0; q < plan->n_kernels && !dup; q++) dup = !strcmp(plan->kernels[q], plan->launch[k].name);
        if (!dup) snprintf(plan->kernels[plan->n_kernels++], 64, "%s", plan->launch[k].name);
    }
    return 0;
}

void rc_cuda_plan_free(rc_cuda_plan *plan)
{
    if (!plan) return;
    free(plan->launch);
    free(plan->kernels);
    memset(plan, 0, sizeof *plan);
}


int rc_emit_cuda_source(const rc_ir *ir, const char *spec_path, char **src, char *err, size_t errlen)
{
    rc_cuda_plan plan;
    int rc = rc_emit_cuda(ir, spec_path, src, &plan, err, errlen);
    if (rc == 0) rc_cuda_plan_free(&plan);
    return rc;
}
