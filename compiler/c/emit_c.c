/* emit_c.c — the C code generator: model structure, workspace plan, fused elementwise chains
 * and the exported drivers (see emit_c.h for what is generated, emit_c_int.h for the
 * vocabulary, emit_c_conv.c for the convolution kernels, emit_c_layers.c for the other producers
 * and the producers' backward, backend_c.h for the ABI).
 *
 * Training storage rule (plan_storage): of the chain levels only these live in the workspace:
 * the group output (next layer's input / model output), every BN input (statistics and
 * x-hat in backward), and the input of an activation whose derivative cannot be computed from
 * its output (abs, square, requ, or an activation whose output is not stored). Noise needs
 * nothing (additive); dropout masks are recomputed from the counter-based RNG.
 * Backward of a chain: per BN one statistics pass (sum dy, sum dy*xhat) and one apply pass that
 * continues through the elementwise ops below it; no gradient of an intermediate level is
 * materialized except at BN boundaries and the producer output.
 */
#include "errbuf.h"
#include "emit_c.h"
#include "emit_c_int.h"
#include "lower.h"
#include "rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- per-layer plan */

/* ---------------------------------------------------------------- small helpers */

void em_fail(em *E, const char *fmt, ...)
{
    if (E->failed) return;
    E->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(E->err, sizeof E->err, fmt, ap);
    va_end(ap);
}

int em_add_buf(em *E, const char *name, size_t pb, size_t fx)
{
    if (E->nbuf >= EM_MAXBUF) { em_fail(E, "too many workspace buffers"); return 0; }
    em_buf *b = &E->buf[E->nbuf];
    snprintf(b->name, sizeof b->name, "B_%.60s", name);
    b->pb = pb;
    b->fx = fx;
    return E->nbuf++;
}

const char *em_bufname(const em *E, int id) { return E->buf[id].name; }

int64_t em_shsize(rc_shape s) { return (int64_t)s.c * s.h * s.w; }

const rc_param *em_lparam(const rc_ir *ir, int li, const char *suffix, int state)
{
    const rc_layer *L = &ir->layers[li];
    int first = state ? L->state_first : L->param_first, n = state ? L->state_count : L->param_count;
    const rc_param *arr = state ? ir->state : ir->params;
    size_t sl = strlen(suffix);
    for (int p = first; p < first + n; p++) {
        size_t nl = strlen(arr[p].name);
        if (nl >= sl && !strcmp(arr[p].name + nl - sl, suffix)) return &arr[p];
    }
    return NULL;
}

/* C identifier of a tensor: P_1_conv_weight / S_2_batchnorm_running_mean. */
static void pid(const rc_param *p, int state, char *out, size_t n)
{
    snprintf(out, n, "%c_%.60s", state ? 'S' : 'P', p->name);
    for (char *c = out; *c; c++) if (*c == '.') *c = '_';
}

/* Identifier of layer li's tensor `suffix` into out ("0" if absent: callers check). */
const char *em_P(const em *E, int li, const char *suffix, char *out)
{
    const rc_param *p = em_lparam(E->ir, li, suffix, 0);
    if (!p) { strcpy(out, "0"); return out; }
    pid(p, 0, out, 64);
    return out;
}

const char *em_S(const em *E, int li, const char *suffix, char *out)
{
    const rc_param *p = em_lparam(E->ir, li, suffix, 1);
    if (!p) { strcpy(out, "0"); return out; }
    pid(p, 1, out, 64);
    return out;
}

static const char *fl(double v, char *out) { rc_emit_float(out, v); return out; }
static const char *dbl(double v, char *out) { rc_emit_double(out, v); return out; }

static int threads_hint(const em *E, int li)
{
    if (li >= 0 && E->ir->layers[li].sched.threads) return E->ir->layers[li].sched.threads;
    return E->ir->sched.threads;
}

/* "#pragma omp parallel for ..." with the thread hint of layer li. */
void em_omp_for(em *E, rc_sb *s, int li, const char *extra)
{
    int t = threads_hint(E, li);
    if (t > 0) rc_sb_line(s, "#pragma omp parallel for schedule(static)%s%s num_threads(%d)", extra ? " " : "",
                          extra ? extra : "", t);
    else rc_sb_line(s, "#pragma omp parallel for schedule(static)%s%s", extra ? " " : "", extra ? extra : "");
}

/* em_omp_for for a loop of per_b element visits per sample: where a batch can make that fewer
 * than RCG_PAR_MIN in all, an if clause runs it on one thread then (see the prelude). */
static void em_omp_for_n(em *E, rc_sb *s, int li, const char *extra, int64_t per_b)
{
    char x[160];
    if (per_b >= EM_PAR_MIN) { em_omp_for(E, s, li, extra); return; }
    snprintf(x, sizeof x, "%s%sif((long long)B * %lld >= RCG_PAR_MIN)", extra ? extra : "", extra ? " " : "",
             (long long)per_b);
    em_omp_for(E, s, li, x);
}

static int act_out_ok(rc_act a)
{
    return a == RC_ACT_RELU || a == RC_ACT_SOFTPLUS || a == RC_ACT_EXP || a == RC_ACT_SIGMOID ||
           a == RC_ACT_TANH || a == RC_ACT_IDENTITY;
}

/* ---------------------------------------------------------------- grouping and storage */

static int is_producer(rc_layer_kind k)
{
    return k == RC_LAYER_CONV || k == RC_LAYER_DENSE || k == RC_LAYER_GCCONV || k == RC_LAYER_DEF;
}

static void plan_storage(const rc_ir *ir, em_grp *G)
{
    int n = G->nops;
    memset(G->stored, 0, sizeof G->stored);
    G->stored[n] = 1;
    for (int k = 1; k <= n; k++)
        if (ir->layers[G->op[k]].kind == RC_LAYER_BATCHNORM) G->stored[k - 1] = 1;
    for (int k = n; k >= 1; k--) {
        const rc_layer *L = &ir->layers[G->op[k]];
        if (L->kind != RC_LAYER_ACT || L->act == RC_ACT_IDENTITY) continue;
        if (!(G->stored[k] && act_out_ok(L->act))) G->stored[k - 1] = 1;
    }
    if (G->li >= 0 && ir->layers[G->li].kind == RC_LAYER_DEF) G->stored[0] = 1;   /* its functions write level 0 */
    G->j0 = 0;
    while (!G->stored[G->j0]) G->j0++;
    G->fold = 0;
    if (G->li >= 0 && ir->layers[G->li].kind == RC_LAYER_CONV) {
        for (int k = 1; k <= n; k++) {
            const rc_layer *L = &ir->layers[G->op[k]];
            if (L->kind == RC_LAYER_NOISE || L->kind == RC_LAYER_DROPOUT) continue;
            if (L->kind == RC_LAYER_BATCHNORM && (L->over == RC_BN_CHANNEL || (G->sh.h == 1 && G->sh.w == 1)))
                G->fold = k;
            break;
        }
    }
}

static void build_groups(em *E)
{
    const rc_ir *ir = E->ir;
    E->ng = 0;
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        if (is_producer(L->kind) || i == 0) {
            em_grp *G = &E->g[E->ng++];
            memset(G, 0, sizeof *G);
            G->li = is_producer(L->kind) ? i : -1;
            G->in = L->in;
            G->sh = G->li >= 0 ? L->out : L->in;
            if (G->li >= 0) continue;
        }
        em_grp *G = &E->g[E->ng - 1];
        G->op[++G->nops] = i;
    }
    for (int g = 0; g < E->ng; g++) plan_storage(ir, &E->g[g]);
}

/* Name of the layer that produces level k of group G (for buffer names). */
static int level_layer(const em_grp *G, int k) { return k == 0 ? G->li : G->op[k]; }

/* ---------------------------------------------------------------- chain emission */

/* Forward through ops lo+1..hi on `v`; skip = folded op (inference); store = write stored
 * levels (training passes). */
void em_ops_fwd(em *E, const em_plan *PL, rc_sb *s, const em_grp *G, int lo, int hi, int mode,
                    const char *b, const char *c, const char *f, int skip, int store)
{
    const rc_ir *ir = E->ir;
    int64_t F = em_shsize(G->sh);
    char n1[64], n2[64], n3[48], n4[48];
    for (int k = lo + 1; k <= hi; k++) {
        int li = G->op[k];
        const rc_layer *L = &ir->layers[li];
        if (k != skip) switch (L->kind) {
        case RC_LAYER_BATCHNORM: {
            int unit = L->over == RC_BN_UNIT;
            const char *ix = unit ? f : c;
            int64_t FB = unit ? F : G->sh.c;
            const char *st = em_bufname(E, PL->stat[li]);
            if (mode == M_TRAIN) {
                char gain[160];
                snprintf(gain, sizeof gain, L->abs_scale ? "fabsf(cx->params[%s + %s])" : "cx->params[%s + %s]",
                         em_P(E, li, ".scale", n1), ix);
                rc_sb_line(s, "v = (v - CXW(%s)[%s]) * CXW(%s)[%lld + %s] * %s + cx->params[%s + %s]; /* %d: batchnorm */",
                           st, ix, st, (long long)FB, ix, gain, em_P(E, li, ".shift", n2), ix, li + 1);
            } else {
                rc_sb_line(s, "v = v * CXW(%s)[%s] + CXW(%s)[%lld + %s]; /* %d: batchnorm (running stats) */", st, ix,
                           st, (long long)FB, ix, li + 1);
            }
            break;
        }
        case RC_LAYER_NOISE:
            if (mode == M_TRAIN && L->std != 0)
                rc_sb_line(s, "v += %s * rc_rng_normal(cx->seed, %lluull, (uint64_t)(%s) * %lldu + (uint64_t)(%s)); /* %d: noise */",
                           fl(L->std, n3), (unsigned long long)RC_RNG_STREAM(li, L->rng_sub), b, (long long)F, f, li + 1);
            break;
        case RC_LAYER_DROPOUT:
            if (mode == M_TRAIN && L->p > 0)
                rc_sb_line(s, "v = rc_rng_uniform(cx->seed, %lluull, (uint64_t)(%s) * %lldu + (uint64_t)(%s)) >= %s ? v * %s : 0.0f; /* %d: dropout */",
                           (unsigned long long)RC_RNG_STREAM(li, L->rng_sub), b, (long long)F, f, fl(L->p, n3),
                           fl(1.0 / (1.0 - L->p), n4), li + 1);
            break;
        case RC_LAYER_ACT:
            if (L->act != RC_ACT_IDENTITY) rc_sb_line(s, "v = rcg_%s(v); /* %d */", rc_act_name(L->act), li + 1);
            break;
        default:
            em_fail(E, "layer %d (%s): not an elementwise layer", li + 1, rc_layer_kind_name(L->kind));
        }
        if (store && G->stored[k])
            rc_sb_line(s, "CXW(%s)[(size_t)(%s) * %lld + (%s)] = v;", em_bufname(E, G->buf[k]), b, (long long)F, f);
    }
}

/* Backward of ops hi..lo+1 (no batchnorm among them) on the gradient `d`. */
static void ops_bwd(em *E, rc_sb *s, const em_grp *G, int hi, int lo, const char *b, const char *f)
{
    const rc_ir *ir = E->ir;
    int64_t F = em_shsize(G->sh);
    char n3[48], n4[48];
    for (int k = hi; k > lo; k--) {
        int li = G->op[k];
        const rc_layer *L = &ir->layers[li];
        switch (L->kind) {
        case RC_LAYER_NOISE: break;
        case RC_LAYER_DROPOUT:
            if (L->p > 0)
                rc_sb_line(s, "d = rc_rng_uniform(cx->seed, %lluull, (uint64_t)(%s) * %lldu + (uint64_t)(%s)) >= %s ? d * %s : 0.0f; /* %d: dropout */",
                           (unsigned long long)RC_RNG_STREAM(li, L->rng_sub), b, (long long)F, f, fl(L->p, n3),
                           fl(1.0 / (1.0 - L->p), n4), li + 1);
            break;
        case RC_LAYER_ACT:
            if (L->act == RC_ACT_IDENTITY) break;
            if (G->stored[k - 1])
                rc_sb_line(s, "d *= rcg_dx_%s(CXW(%s)[(size_t)(%s) * %lld + (%s)]); /* %d */", rc_act_name(L->act),
                           em_bufname(E, G->buf[k - 1]), b, (long long)F, f, li + 1);
            else
                rc_sb_line(s, "d *= rcg_dy_%s(CXW(%s)[(size_t)(%s) * %lld + (%s)]); /* %d */", rc_act_name(L->act),
                           em_bufname(E, G->buf[k]), b, (long long)F, f, li + 1);
            break;
        default:
            em_fail(E, "internal: layer %d (%s) inside an elementwise backward pass", li + 1, rc_layer_kind_name(L->kind));
        }
    }
}

void em_epi_chain(em *E, rc_sb *s, const void *ctx, const char *b, const char *c, const char *f)
{
    const em_epi_chain_ctx *x = ctx;
    em_ops_fwd(E, x->PL, s, x->G, x->lo, x->hi, x->mode, b, c, f, x->skip, 0);
}

typedef struct { uint64_t stream; int64_t size; double p; } epi_mask_ctx;

static void epi_mask(em *E, rc_sb *s, const void *ctx, const char *b, const char *c, const char *f)
{
    const epi_mask_ctx *x = ctx;
    char n3[48], n4[48];
    (void)E; (void)c;
    rc_sb_line(s, "v = rc_rng_uniform(cx->seed, %lluull, (uint64_t)(%s) * %lldu + (uint64_t)(%s)) >= %s ? v * %s : 0.0f; /* stack dropout */",
               (unsigned long long)x->stream, b, (long long)x->size, f, fl(x->p, n3), fl(1.0 / (1.0 - x->p), n4));
}

/* ---------------------------------------------------------------- workspace plan */

static size_t r16(size_t n) { return (n + 15) & ~(size_t)15; }

static void plan_conv(em *E, em_plan *PL, int g)
{
    const rc_ir *ir = E->ir;
    const em_grp *G = &E->g[g];
    int li = G->li;
    const rc_layer *L = &ir->layers[li];
    em_cl *cl = &PL->cl[li];
    char nm[64];
    int need_dx = g > 0, K = L->kernel;
    const rc_param *wp = em_lparam(ir, li, ".weight", 0);
    if (!L->stack && wp && wp->rank == 6) {
        cl->tiled = 1;
        cl->n = 1;
        cl->py = wp->dims[0];
        cl->px = wp->dims[1];
        if (G->fold) {
            snprintf(nm, sizeof nm, "L%d_wfold", li + 1);
            cl->prep_inf = em_add_buf(E, nm, 0, (size_t)wp->count);
            snprintf(nm, sizeof nm, "L%d_bfold", li + 1);
            cl->prep_bias = em_add_buf(E, nm, 0, (size_t)cl->py * cl->px * L->out.c);
        }
        return;
    }
    cl->n = L->stack ? L->n_sub : 1;
    int h = L->in.h, w = L->in.w;
    size_t off = 0, gs = 0;
    for (int j = 0; j < cl->n; j++) {
        int cin = L->stack ? L->sub_cin[j] : L->in.c, cout = L->stack ? L->sub_cout[j] : L->out.c;
        int k = L->stack ? L->sub_k[j] : K;
        cl->hi[j] = h; cl->wi[j] = w;
        cl->ho[j] = h - k + 1; cl->wo[j] = w - k + 1;
        char part[32], fn[64], dw[64];
        if (L->stack) snprintf(part, sizeof part, "sub%d", j);
        else snprintf(part, sizeof part, "conv");
        rc_kernel_name(fn, sizeof fn, RC_PHASE_FORWARD, li, part);
        snprintf(nm, sizeof nm, "%s_dw", part);
        rc_kernel_name(dw, sizeof dw, RC_PHASE_BACKWARD, li, nm);
        em_conv_init(E, li, &cl->fw[j], fn, dw, cin, h, w, cout, k);
        cl->has_dx[j] = j > 0 || need_dx;
        if (cl->has_dx[j]) {
            snprintf(nm, sizeof nm, "%s_dx", part);
            rc_kernel_name(fn, sizeof fn, RC_PHASE_BACKWARD, li, nm);
            em_conv_init(E, li, &cl->dx[j], fn, NULL, cout, cl->ho[j] + 2 * (k - 1), cl->wo[j] + 2 * (k - 1), cin, k);
            cl->dx[j].zpad = k - 1;   /* the padded output gradient: a zero border of k - 1 */
        }
        /* one buffer for the forward layout (training) and then the input-gradient layout */
        size_t pf = em_conv_prep_floats(&cl->fw[j]), pd = cl->has_dx[j] ? em_conv_prep_floats(&cl->dx[j]) : 0;
        snprintf(nm, sizeof nm, "L%d_%s%d_wt", li + 1, L->stack ? "s" : "w", j);
        cl->prep[j] = em_add_buf(E, nm, 0, pf > pd ? pf : pd);
        cl->acc_off[j] = off;
        off += r16((size_t)cin * k * cout * em_conv_kv(&cl->fw[j]));
        if (cl->has_dx[j]) {
            cl->pad_off[j] = off;
            off += r16((size_t)cout * cl->dx[j].hin * cl->dx[j].win);
        }
        if (j < cl->n - 1) {
            size_t sz = (size_t)cout * cl->ho[j] * cl->wo[j];
            snprintf(nm, sizeof nm, "L%d_s%d_out", li + 1, j);
            cl->sub_out[j] = em_add_buf(E, nm, sz, 0);
            if (sz > gs) gs = sz;
        }
        h = cl->ho[j];
        w = cl->wo[j];
    }
    cl->db_off = off;
    off += r16((size_t)L->out.c);
    cl->gs_off[0] = off;
    off += r16(gs);
    cl->gs_off[1] = off;
    off += r16(gs);
    cl->part_floats = off;
    rc_kernel_name(nm, sizeof nm, RC_PHASE_INFER, li, "conv");
    em_conv_init(E, li, &cl->inf, nm, NULL, L->in.c, L->in.h, L->in.w, L->out.c, K);
    if (L->stack) {
        snprintf(nm, sizeof nm, "L%d_wt", li + 1);
        cl->prep_inf = em_add_buf(E, nm, 0, em_conv_prep_floats(&cl->inf));
        size_t mx = 0;
        int kc = 0;
        for (int j = 0; j < cl->n; j++) {
            kc = j ? kc + L->sub_k[j] - 1 : L->sub_k[0];
            size_t sz = (size_t)L->sub_cout[j] * L->in.c * kc * kc;
            if (sz > mx) mx = sz;
        }
        cl->col_floats = mx;
        snprintf(nm, sizeof nm, "L%d_col0", li + 1);
        cl->col[0] = em_add_buf(E, nm, 0, mx);
        snprintf(nm, sizeof nm, "L%d_col1", li + 1);
        cl->col[1] = em_add_buf(E, nm, 0, mx);
    } else {
        cl->prep_inf = cl->prep[0];
    }
    snprintf(nm, sizeof nm, "L%d_bfold", li + 1);
    cl->prep_bias = em_add_buf(E, nm, 0, (size_t)L->out.c);
}

static void plan_all(em *E, em_plan *PL)
{
    const rc_ir *ir = E->ir;
    char nm[64];
    E->hdr = em_add_buf(E, "hdr", 0, 16);
    size_t gmax = 1, parts = 0;
    for (int g = 0; g < E->ng; g++) {
        em_grp *G = &E->g[g];
        for (int k = 0; k <= G->nops; k++) {
            G->buf[k] = -1;
            if (!G->stored[k]) continue;
            int ll = level_layer(G, k);
            if (ll < 0) snprintf(nm, sizeof nm, "input");
            else snprintf(nm, sizeof nm, "L%d_%s", ll + 1, ir->layers[ll].kind == RC_LAYER_ACT ?
                          rc_act_name(ir->layers[ll].act) : rc_layer_kind_name(ir->layers[ll].kind));
            G->buf[k] = em_add_buf(E, nm, (size_t)em_shsize(G->sh), 0);
        }
        if ((size_t)em_shsize(G->sh) > gmax) gmax = (size_t)em_shsize(G->sh);
        for (int k = 1; k <= G->nops; k++) {
            int li = G->op[k];
            const rc_layer *L = &ir->layers[li];
            if (L->kind != RC_LAYER_BATCHNORM) continue;
            size_t F = L->over == RC_BN_UNIT ? (size_t)em_shsize(G->sh) : (size_t)G->sh.c;
            snprintf(nm, sizeof nm, "L%d_bnstat", li + 1);
            PL->stat[li] = em_add_buf(E, nm, 0, 2 * F);
            snprintf(nm, sizeof nm, "L%d_bnsums", li + 1);
            PL->sums[li] = em_add_buf(E, nm, 0, 2 * F);
        }
        if (G->li >= 0 && ir->layers[G->li].kind == RC_LAYER_CONV) {
            plan_conv(E, PL, g);
            if (PL->cl[G->li].part_floats > parts) parts = PL->cl[G->li].part_floats;
        }
        if (G->li >= 0 && ir->layers[G->li].kind == RC_LAYER_DEF) PL->prim[G->li] = em_prim_plan(E, G->li, g > 0);
    }
    for (int k = 0; k < 3; k++) {
        snprintf(nm, sizeof nm, "grad%d", k);
        E->gbuf[k] = em_add_buf(E, nm, gmax, 0);
    }
    E->part_floats = parts;
    E->parts = em_add_buf(E, "parts", 0, EM_NPART * parts);
    const em_grp *G0 = &E->g[0];
    E->ext = E->ng >= 2 && G0->li == 0 && ir->layers[0].kind == RC_LAYER_CONV && !PL->cl[0].tiled;
    E->ext_train = E->ext && !ir->layers[0].stack;
    E->ext_gcur = -1;
    if (E->ext) E->ext_buf = em_add_buf(E, "L1_ext", (size_t)em_shsize(G0->sh), 0);
}

/* The kernel of a group without a blocked conv: named by its producer (dense, conv of a tiled or
 * locally connected layer, gcconv), or, for the input's own group, by its first layer (pointwise). */
static void group_kname(const em *E, const em_grp *G, rc_phase ph, char *out, size_t n)
{
    if (G->li >= 0) rc_kernel_name(out, n, ph, G->li, rc_layer_kind_name(E->ir->layers[G->li].kind));
    else rc_kernel_name(out, n, ph, G->nops > 0 ? G->op[1] : 0, "pointwise");
}

/* Training: the buffer the external first conv writes (level 0 if stored, else ext_buf). */
static int ext_train_buf(const em *E) { return E->g[0].stored[0] ? E->g[0].buf[0] : E->ext_buf; }

/* ---------------------------------------------------------------- kernels */

static void emit_kernels(em *E, em_plan *PL)
{
    const rc_ir *ir = E->ir;
    char nm[64];
    for (int g = 0; g < E->ng; g++) {
        const em_grp *G = &E->g[g];
        int li = G->li;
        if (li < 0) rc_sb_line(&E->k, "/* ================ group %d: the input itself */", g + 1);
        else rc_sb_line(&E->k, "/* ================ group %d: layer %d (%s) */", g + 1, li + 1,
                        rc_layer_kind_name(ir->layers[li].kind));
        if (li >= 0 && ir->layers[li].kind == RC_LAYER_DEF) {
            if (PL->prim[li]) em_prim_kernels(E, PL->prim[li]);
            continue;
        }
        if (li < 0 || ir->layers[li].kind != RC_LAYER_CONV || PL->cl[li].tiled) {
            int bias = li >= 0 && ir->layers[li].bias;
            group_kname(E, G, RC_PHASE_FORWARD, nm, sizeof nm);
            em_simple_fwd(E, PL, G, nm, G->j0, M_TRAIN, 0, bias);
            group_kname(E, G, RC_PHASE_INFER, nm, sizeof nm);
            em_simple_fwd(E, PL, G, nm, G->nops, M_INFER, G->fold, bias || G->fold);
            continue;
        }
        const rc_layer *L = &ir->layers[li];
        em_cl *cl = &PL->cl[li];
        em_epi_chain_ctx tr = {PL, G, 0, G->j0, M_TRAIN, 0};
        em_epi_chain_ctx in = {PL, G, 0, G->nops, M_INFER, G->fold};
        for (int j = 0; j < cl->n; j++) {
            em_conv *cv = &cl->fw[j];
            epi_mask_ctx mk = {RC_RNG_STREAM(li, L->rng_sub + j + 1), (int64_t)cv->cout * cl->ho[j] * cl->wo[j], L->stack_dropout};
            if (j == cl->n - 1) { cv->epi = em_epi_chain; cv->epi_ctx = &tr; cv->has_bias = L->bias; }
            else if (L->stack_dropout > 0) { cv->epi = epi_mask; cv->epi_ctx = &mk; }
            em_conv_fwd(E, cv);
            em_conv_dw(E, cv);
            cv->epi = NULL;
            cv->epi_ctx = NULL;
            if (cl->has_dx[j]) {
                em_conv *dx = &cl->dx[j];
                epi_mask_ctx mb = {RC_RNG_STREAM(li, L->rng_sub + j), j > 0 ? (int64_t)dx->cout * cl->ho[j - 1] * cl->wo[j - 1] : 0,
                                   L->stack_dropout};
                if (j > 0 && L->stack_dropout > 0) { dx->epi = epi_mask; dx->epi_ctx = &mb; }
                em_conv_fwd(E, dx);
                dx->epi = NULL;
                dx->epi_ctx = NULL;
            }
        }
        cl->inf.epi = em_epi_chain;
        cl->inf.epi_ctx = &in;
        cl->inf.has_bias = L->bias || G->fold;
        em_conv_fwd(E, &cl->inf);
        cl->inf.epi = NULL;
        cl->inf.epi_ctx = NULL;
    }
}

/* ---------------------------------------------------------------- drivers: helpers */

static int is_bn(const em *E, const em_grp *G, int k)
{
    return k >= 1 && k <= G->nops && E->ir->layers[G->op[k]].kind == RC_LAYER_BATCHNORM;
}

/* 1 when group g's producer may run through the runtime's conv hooks (rcg_hooks): a plain conv
 * (not stacked or tiled) over the previous group's output, a contiguous (B, C, H, W) buffer. */
int em_hook_conv(const em *E, const em_plan *PL, int g)
{
    const em_grp *G = &E->g[g];
    if (g == 0 || G->li < 0) return 0;
    const rc_layer *L = &E->ir->layers[G->li];
    return L->kind == RC_LAYER_CONV && !L->stack && !PL->cl[G->li].tiled && PL->cl[G->li].n == 1;
}

/* Opening of a hooked call: `const int hk_ = ...; if (hk_ < 0) return ...; if (hk_) {` (the
 * module's own code follows, then the caller closes the brace). */
static void hook_open_fwd(em *E, rc_sb *s, int g, const char *op, const char *bias, const char *y)
{
    char w[64];
    int li = E->g[g].li;
    const em_grp *P = &E->g[g - 1];   /* its output, (B, C, H, W), is this group's input */
    rc_sb_line(s, "const int hk_ = cx->hk ? cx->hk->conv(cx->hk->self, %s, %d, B, CXW(%s), cx->params + %s, %s, %s) : 1;", op,
               li, em_bufname(E, P->buf[P->nops]), em_P(E, li, ".weight", w), bias, y);
    rc_sb_line(s, "if (hk_ < 0) return RCG_ERR(RCG_E_HOOK, %d);", li);
}

/* Input of group g's producer for sample b. */
void em_in_expr(const em *E, int g, const char *b, char *out, size_t n)
{
    if (g == 0) snprintf(out, n, "(frames + (size_t)starts[%s] * %d)", b, E->ir->in.h * E->ir->in.w);
    else {
        const em_grp *P = &E->g[g - 1];
        snprintf(out, n, "(CXW(%s) + (size_t)(%s) * %lld)", em_bufname(E, P->buf[P->nops]), b,
                 (long long)em_shsize(P->sh));
    }
}

const char *em_gexpr(const em *E, int cur, char *out)
{
    if (cur < 0) strcpy(out, "dy");
    else snprintf(out, 64, "CXW(%s)", em_bufname(E, E->gbuf[cur]));
    return out;
}

static int pick(int cur) { return cur == 0 ? 1 : 0; }

/* Sub-conv j's weight tensor id of a conv layer. */
const char *em_wname(const em *E, int li, int j, char *out)
{
    char suf[40];
    if (E->ir->layers[li].stack) snprintf(suf, sizeof suf, ".sub%d.weight", j);
    else snprintf(suf, sizeof suf, ".weight");
    return em_P(E, li, suf, out);
}

/* ---------------------------------------------------------------- drivers: forward */

static void emit_stats_fwd(em *E, const em_plan *PL, const em_grp *G, int k)
{
    rc_sb *s = &E->d;
    int li = G->op[k];
    const rc_layer *L = &E->ir->layers[li];
    int64_t SZ = em_shsize(G->sh), HW = (int64_t)G->sh.h * G->sh.w;
    int unit = L->over == RC_BN_UNIT;
    char n1[64], n2[64], eps[48], mom[48];
    dbl(L->eps, eps);
    dbl(L->momentum, mom);
    rc_sb_line(s, "{ /* layer %d: batchnorm statistics (%s), running-state update */", li + 1, unit ? "per unit" : "per channel");
    rc_sb_line(s, "const float *t = CXW(%s);", em_bufname(E, G->buf[k - 1]));
    rc_sb_line(s, "float *st = CXW(%s);", em_bufname(E, PL->stat[li]));
    rc_sb_line(s, "float *rm = cx->state + %s, *rv = cx->state + %s;", em_S(E, li, ".running_mean", n1),
               em_S(E, li, ".running_var", n2));
    rc_sb_line(s, "const double n = (double)B * %lld;", unit ? 1LL : (long long)HW);
    if (unit) {
        em_omp_for_n(E, s, -1, NULL, 2 * SZ);
        rc_sb_line(s, "for (int f0 = 0; f0 < %lld; f0 += 16) {", (long long)SZ);
        rc_sb_line(s, "const int nf = %lld - f0 < 16 ? %lld - f0 : 16;", (long long)SZ, (long long)SZ);
        rc_sb_line(s, "double s1[16] = {0}, s2[16] = {0};");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *r = t + (size_t)b * %lld + f0;", (long long)SZ);
        rc_sb_line(s, "for (int j = 0; j < nf; j++) s1[j] += r[j];");
        rc_sb_line(s, "}");
        rc_sb_line(s, "for (int j = 0; j < nf; j++) s1[j] /= n;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *r = t + (size_t)b * %lld + f0;", (long long)SZ);
        rc_sb_line(s, "for (int j = 0; j < nf; j++) { const double d = r[j] - s1[j]; s2[j] += d * d; }");
        rc_sb_line(s, "}");
        rc_sb_line(s, "for (int j = 0; j < nf; j++) {");
        rc_sb_line(s, "const int f = f0 + j;");
        rc_sb_line(s, "const double m = s1[j], var = s2[j] / n;");
    } else {
        em_omp_for_n(E, s, -1, NULL, 2 * SZ);
        rc_sb_line(s, "for (int f = 0; f < %d; f++) {", G->sh.c);
        rc_sb_line(s, "double s1 = 0, s2 = 0;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *r = t + (size_t)b * %lld + (size_t)f * %lld;", (long long)SZ, (long long)HW);
        rc_sb_line(s, "for (int s = 0; s < %lld; s++) s1 += r[s];", (long long)HW);
        rc_sb_line(s, "}");
        rc_sb_line(s, "const double m = s1 / n;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *r = t + (size_t)b * %lld + (size_t)f * %lld;", (long long)SZ, (long long)HW);
        rc_sb_line(s, "for (int s = 0; s < %lld; s++) { const double d = r[s] - m; s2 += d * d; }", (long long)HW);
        rc_sb_line(s, "}");
        rc_sb_line(s, "{");
        rc_sb_line(s, "const double var = s2 / n;");
    }
    int64_t FB = unit ? SZ : G->sh.c;
    rc_sb_line(s, "st[f] = (float)m;");
    rc_sb_line(s, "st[%lld + f] = (float)(1.0 / sqrt(var + %s));", (long long)FB, eps);
    rc_sb_line(s, "rm[f] = (float)((1.0 - %s) * rm[f] + %s * m);", mom, mom);
    rc_sb_line(s, "rv[f] = (float)((1.0 - %s) * rv[f] + %s * var * n / (n - 1.0));", mom, mom);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

/* Loop header over every element of a level: b, c, s; f = c*HW + s. Closed by loops_close. */
static void loops_open(em *E, rc_sb *s, const em_grp *G)
{
    em_omp_for_n(E, s, -1, "collapse(2)", em_shsize(G->sh));
    rc_sb_line(s, "for (int b = 0; b < B; b++) {");
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", G->sh.c);
    rc_sb_line(s, "for (int s = 0; s < %d; s++) {", G->sh.h * G->sh.w);
    rc_sb_line(s, "const int f = c * %d + s;", G->sh.h * G->sh.w);
}

static void loops_close(rc_sb *s)
{
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

/* Pass over levels a -> m reading level a from buffer srcbuf (-1: its stored buffer). */
static void emit_pass_fwd(em *E, const em_plan *PL, const em_grp *G, int a, int m, int srcbuf)
{
    rc_sb *s = &E->d;
    rc_sb_line(s, "{ /* fused elementwise pass: levels %d -> %d */", a, m);
    rc_sb_line(s, "const float *src = CXW(%s);", em_bufname(E, srcbuf >= 0 ? srcbuf : G->buf[a]));
    loops_open(E, s, G);
    rc_sb_line(s, "float v = src[(size_t)b * %lld + f];", (long long)em_shsize(G->sh));
    em_ops_fwd(E, PL, s, G, a, m, M_TRAIN, "b", "c", "f", 0, 1);
    loops_close(s);
    rc_sb_line(s, "}");
}

static void drv_fwd_group(em *E, const em_plan *PL, int g, int ext)
{
    rc_sb *s = &E->d;
    const rc_ir *ir = E->ir;
    const em_grp *G = &E->g[g];
    int li = G->li;
    char in[160], n1[64], n2[64];
    int64_t SZ = em_shsize(G->sh);
    const char *out = em_bufname(E, G->buf[G->j0]);
    em_in_expr(E, g, "b", in, sizeof in);
    rc_sb_line(s, "{ /* group %d */", g + 1);
    if (ext && g == 0) {
        rc_sb_line(s, "/* layer 1 (conv): computed by the caller into %s */", em_bufname(E, ext_train_buf(E)));
        if (G->j0 > 0) emit_pass_fwd(E, PL, G, 0, G->j0, E->ext_buf);
    } else if (li >= 0 && ir->layers[li].kind == RC_LAYER_DEF) {
        char y[96];
        snprintf(y, sizeof y, "CXW(%s)", out);
        if (PL->prim[li]) em_prim_call_fwd(E, PL->prim[li], g, 1, y);
    } else if (li < 0 || ir->layers[li].kind != RC_LAYER_CONV || PL->cl[li].tiled) {
        char w[96] = "NULL", bias[96] = "NULL", nm[32];
        if (li >= 0) snprintf(w, sizeof w, "cx->params + %s", em_P(E, li, ".weight", n1));
        if (li >= 0 && ir->layers[li].bias) snprintf(bias, sizeof bias, "cx->params + %s", em_P(E, li, ".bias", n2));
        group_kname(E, G, RC_PHASE_FORWARD, nm, sizeof nm);
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int b = 0; b < B; b++) %s(%s, %s, %s, CXW(%s) + (size_t)b * %lld, b, cx);", nm, in, w,
                   bias, out, (long long)SZ);
    } else {
        const rc_layer *L = &ir->layers[li];
        const em_cl *cl = &PL->cl[li];
        int hook = em_hook_conv(E, PL, g) && G->j0 == 0;   /* the hook writes level 0 */
        if (hook) {
            char bias[96] = "NULL", y[96];
            if (L->bias) snprintf(bias, sizeof bias, "cx->params + %s", em_P(E, li, ".bias", n2));
            snprintf(y, sizeof y, "CXW(%s)", out);
            hook_open_fwd(E, s, g, "RCG_HOOK_TRAIN", bias, y);
            rc_sb_line(s, "if (hk_) {");
        }
        for (int j = 0; j < cl->n; j++) {
            char src[96], dst[96];
            snprintf(src, sizeof src, "cx->params + %s", em_wname(E, li, j, n1));
            snprintf(dst, sizeof dst, "CXW(%s)", em_bufname(E, cl->prep[j]));
            em_conv_prep(s, &cl->fw[j], src, dst, NULL, 0);
        }
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *x = %s;", in);
        for (int j = 0; j < cl->n; j++) {
            const em_conv *cv = &cl->fw[j];
            char xin[128], yout[128], bias[96] = "NULL";
            if (j == 0) snprintf(xin, sizeof xin, "x");
            else snprintf(xin, sizeof xin, "CXW(%s) + (size_t)b * %lld", em_bufname(E, cl->sub_out[j - 1]),
                          (long long)cl->fw[j - 1].cout * cl->ho[j - 1] * cl->wo[j - 1]);
            if (j < cl->n - 1) snprintf(yout, sizeof yout, "CXW(%s) + (size_t)b * %lld", em_bufname(E, cl->sub_out[j]),
                                        (long long)cv->cout * cl->ho[j] * cl->wo[j]);
            else snprintf(yout, sizeof yout, "CXW(%s) + (size_t)b * %lld", out, (long long)SZ);
            if (j == cl->n - 1 && L->bias) snprintf(bias, sizeof bias, "cx->params + %s", em_P(E, li, ".bias", n2));
            rc_sb_line(s, "%s(%s, CXW(%s), %s, %s, b, cx);", cv->name, xin, em_bufname(E, cl->prep[j]), bias, yout);
        }
        rc_sb_line(s, "}");
        if (hook) rc_sb_line(s, "}");
    }
    int pos = G->j0;
    while (pos < G->nops) {
        if (is_bn(E, G, pos + 1)) emit_stats_fwd(E, PL, G, pos + 1);
        int m = pos + 1;
        while (m < G->nops && !is_bn(E, G, m + 1)) m++;
        emit_pass_fwd(E, PL, G, pos, m, -1);
        pos = m;
    }
    rc_sb_line(s, "}");
}

/* ---------------------------------------------------------------- drivers: backward */

static void emit_stats_bwd(em *E, const em_plan *PL, const em_grp *G, int k, int pos, int cur)
{
    rc_sb *s = &E->d;
    int li = G->op[k];
    const rc_layer *L = &E->ir->layers[li];
    int64_t SZ = em_shsize(G->sh), HW = (int64_t)G->sh.h * G->sh.w;
    int unit = L->over == RC_BN_UNIT;
    int64_t FB = unit ? SZ : G->sh.c;
    char n1[64], n2[64], ge[64];
    rc_sb_line(s, "{ /* layer %d: batchnorm gradient statistics: sum dy, sum dy*xhat */", li + 1);
    rc_sb_line(s, "const float *G = %s;", em_gexpr(E, cur, ge));
    rc_sb_line(s, "const float *X = CXW(%s);", em_bufname(E, G->buf[k - 1]));
    rc_sb_line(s, "const float *st = CXW(%s);", em_bufname(E, PL->stat[li]));
    rc_sb_line(s, "float *sm = CXW(%s);", em_bufname(E, PL->sums[li]));
    em_omp_for_n(E, s, -1, NULL, SZ);
    if (unit) {
        rc_sb_line(s, "for (int f0 = 0; f0 < %lld; f0 += 16) {", (long long)SZ);
        rc_sb_line(s, "const int nf = %lld - f0 < 16 ? %lld - f0 : 16;", (long long)SZ, (long long)SZ);
        rc_sb_line(s, "double sdy[16] = {0}, sdyx[16] = {0};");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "for (int j = 0; j < nf; j++) {");
        rc_sb_line(s, "const int f = f0 + j;");
        rc_sb_line(s, "float d = G[(size_t)b * %lld + f];", (long long)SZ);
        ops_bwd(E, s, G, pos, k, "b", "f");
        rc_sb_line(s, "const float xh = (X[(size_t)b * %lld + f] - st[f]) * st[%lld + f];", (long long)SZ, (long long)FB);
        rc_sb_line(s, "sdy[j] += d;");
        rc_sb_line(s, "sdyx[j] += (double)d * xh;");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "for (int j = 0; j < nf; j++) {");
        rc_sb_line(s, "const int f = f0 + j;");
        rc_sb_line(s, "const double a = sdy[j], bq = sdyx[j];");
    } else {
        rc_sb_line(s, "for (int f = 0; f < %d; f++) {", G->sh.c);
        rc_sb_line(s, "double a = 0, bq = 0;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "for (int s = 0; s < %lld; s++) {", (long long)HW);
        rc_sb_line(s, "const int e = f * %lld + s;", (long long)HW);
        rc_sb_line(s, "float d = G[(size_t)b * %lld + e];", (long long)SZ);
        ops_bwd(E, s, G, pos, k, "b", "e");
        rc_sb_line(s, "const float xh = (X[(size_t)b * %lld + e] - st[f]) * st[%lld + f];", (long long)SZ, (long long)FB);
        rc_sb_line(s, "a += d;");
        rc_sb_line(s, "bq += (double)d * xh;");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "{");
    }
    em_P(E, li, ".scale", n1);
    if (L->abs_scale) {
        rc_sb_line(s, "const float sc = cx->params[%s + f];", n1);
        rc_sb_line(s, "cx->grads[%s + f] += (float)(bq * (sc > 0.0f ? 1.0 : sc < 0.0f ? -1.0 : 0.0));", n1);
    } else {
        rc_sb_line(s, "cx->grads[%s + f] += (float)bq;", n1);
    }
    rc_sb_line(s, "cx->grads[%s + f] += (float)a;", em_P(E, li, ".shift", n2));
    rc_sb_line(s, "sm[f] = (float)a;");
    rc_sb_line(s, "sm[%lld + f] = (float)bq;", (long long)FB);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

/* Gradient from level pos (buffer cur) down to level lo, through the BN at op k if k > 0
 * (its statistics pass must have run), into gradient buffer nb. */
static void emit_pass_bwd(em *E, const em_plan *PL, const em_grp *G, int pos, int k, int lo, int cur, int nb)
{
    rc_sb *s = &E->d;
    int64_t SZ = em_shsize(G->sh), HW = (int64_t)G->sh.h * G->sh.w;
    char ge[64], n1[64];
    rc_sb_line(s, "{ /* fused backward pass: levels %d -> %d%s */", pos, lo, k ? " through batchnorm" : "");
    rc_sb_line(s, "const float *G = %s;", em_gexpr(E, cur, ge));
    rc_sb_line(s, "float *O = CXW(%s);", em_bufname(E, E->gbuf[nb]));
    if (k) {
        int li = G->op[k];
        const rc_layer *L = &E->ir->layers[li];
        int unit = L->over == RC_BN_UNIT;
        rc_sb_line(s, "const float *X = CXW(%s);", em_bufname(E, G->buf[k - 1]));
        rc_sb_line(s, "const float *st = CXW(%s);", em_bufname(E, PL->stat[li]));
        rc_sb_line(s, "const float *sm = CXW(%s);", em_bufname(E, PL->sums[li]));
        rc_sb_line(s, "const float inv_n = (float)(1.0 / ((double)B * %lld));", unit ? 1LL : (long long)HW);
        loops_open(E, s, G);
        rc_sb_line(s, "float d = G[(size_t)b * %lld + f];", (long long)SZ);
        ops_bwd(E, s, G, pos, k, "b", "f");
        const char *fi = unit ? "f" : "c";
        int64_t FB = unit ? SZ : G->sh.c;
        rc_sb_line(s, "const float xh = (X[(size_t)b * %lld + f] - st[%s]) * st[%lld + %s];", (long long)SZ, fi,
                   (long long)FB, fi);
        em_P(E, li, ".scale", n1);
        rc_sb_line(s, "const float gain = %s%s[%s + %s]%s;", L->abs_scale ? "fabsf(" : "", "cx->params", n1, fi,
                   L->abs_scale ? ")" : "");
        rc_sb_line(s, "d = gain * st[%lld + %s] * (d - sm[%s] * inv_n - xh * sm[%lld + %s] * inv_n);", (long long)FB, fi,
                   fi, (long long)FB, fi);
        ops_bwd(E, s, G, k - 1, lo, "b", "f");
    } else {
        loops_open(E, s, G);
        rc_sb_line(s, "float d = G[(size_t)b * %lld + f];", (long long)SZ);
        ops_bwd(E, s, G, pos, lo, "b", "f");
    }
    rc_sb_line(s, "O[(size_t)b * %lld + f] = d;", (long long)SZ);
    loops_close(s);
    rc_sb_line(s, "}");
}

static void drv_bwd_group(em *E, const em_plan *PL, int g, int *cur, int ext)
{
    const em_grp *G = &E->g[g];
    int pos = G->nops, c = *cur;
    int skip_tail = g == 0 && G->li < 0;   /* no producer: the level-0 gradient is unused */
    rc_sb_line(&E->d, "/* ---- group %d backward */", g + 1);
    while (pos > 0) {
        int k = pos;
        while (k > 0 && !is_bn(E, G, k)) k--;
        if (k == 0) {
            if (!skip_tail) { int nb = pick(c); emit_pass_bwd(E, PL, G, pos, 0, 0, c, nb); c = nb; }
            break;
        }
        emit_stats_bwd(E, PL, G, k, pos, c);
        int j = k - 1;
        while (j > 0 && !is_bn(E, G, j)) j--;
        if (skip_tail && j == 0) break;
        int nb = pick(c);
        emit_pass_bwd(E, PL, G, pos, k, j, c, nb);
        c = nb;
        pos = j;
    }
    char ge[64];
    if (ext && g == 0) {   /* the caller takes d loss / d conv output from here */
        if (c < 0) em_fail(E, "internal: external first conv without a gradient buffer");
        rc_sb_line(&E->d, "/* layer 1 (conv): its gradients are computed by the caller from %s */", em_gexpr(E, c, ge));
        E->ext_gcur = c;
        *cur = -1;
        return;
    }
    int out = g > 0 ? pick(c) : -1;
    em_prod_bwd(E, PL, g, em_gexpr(E, c, ge), out);
    *cur = out;
}

/* ---------------------------------------------------------------- drivers: entry points */

static void emit_checks(em *E, rc_sb *s, int train)
{
    const rc_ir *ir = E->ir;
    rc_sb_line(s, "if (B < 1) return RCG_ERR(RCG_E_BATCH, 0);");
    for (int li = 0; li < ir->n_layers; li++) {
        const rc_layer *L = &ir->layers[li];
        if (L->readout_h > 0) {   /* gcconv, or a defined layer with a cellpick */
            rc_sb_line(s, "if (!cell_pos) return RCG_ERR(RCG_E_CELLPOS, %d);", li);
            rc_sb_line(s, "for (int n = 0; n < %d; n++)", ir->cells);
            rc_sb_line(s, "    if (cell_pos[2 * n] < 0 || cell_pos[2 * n] > %d || cell_pos[2 * n + 1] < 0 || cell_pos[2 * n + 1] > %d)",
                       L->readout_h - 1, L->readout_w - 1);
            rc_sb_line(s, "        return RCG_ERR(RCG_E_CELLPOS, %d);", li);
        }
        if (train && L->kind == RC_LAYER_BATCHNORM) {
            long long inner = L->over == RC_BN_UNIT ? 1 : (long long)L->in.h * L->in.w;
            rc_sb_line(s, "if ((long long)B * %lld < 2) return RCG_ERR(RCG_E_BN_BATCH, %d);", inner, li);
        }
    }
}

static void emit_ctx(rc_sb *s, const char *params, const char *state, const char *seed, const char *grads,
                     const char *hk)
{
    rc_sb_line(s, "size_t off[RCG_NBUF];");
    rc_sb_line(s, "rcg_offsets(B, off);");
    rc_sb_line(s, "rcg_ctx cx_ = {%s, %s, ws, off, %s, cell_pos, %s, %s};", params, state, seed, grads, hk);
    rc_sb_line(s, "const rcg_ctx *cx = &cx_;");
    rc_sb_line(s, "(void)frames; (void)starts; (void)cx;");
}

/* The ext variants' opening: no frames, no starts (the caller ran layer 1). */
static void ext_open(rc_sb *s)
{
    rc_sb_line(s, "{");
    rc_sb_line(s, "const float *frames = NULL;");
    rc_sb_line(s, "const int64_t *starts = NULL;");
}

static void drv_train_forward(em *E, const em_plan *PL, int ext)
{
    rc_sb *s = &E->d;
    const em_grp *last = &E->g[E->ng - 1];
    if (ext) {
        rc_sb_line(s, "/* Training forward from layer 1's conv output (conv + bias, written by the caller into the");
        rc_sb_line(s, " * workspace at rcg_ext_offset(B, 0)); otherwise as rcg_train_forward. */");
        rc_sb_line(s, "int rcg_train_forward_ext(int B, const float *params, float *state, const int *cell_pos,");
        rc_sb_line(s, "                          uint64_t seed, float *y, float *ws, const rcg_hooks *hk)");
        ext_open(s);
    } else {
        rc_sb_line(s, "/* Training forward: batch statistics, running-state update, noise and dropout from seed. */");
        rc_sb_line(s, "int rcg_train_forward(int B, const float *params, float *state, const int *cell_pos, uint64_t seed,");
        rc_sb_line(s, "                      const float *frames, const int64_t *starts, float *y, float *ws,");
        rc_sb_line(s, "                      const rcg_hooks *hk)");
        rc_sb_line(s, "{");
    }
    emit_checks(E, s, 1);
    emit_ctx(s, "params", "state", "seed", "NULL", "hk");
    rc_sb_line(s, "{ /* header: what backward needs to check the batch and redraw the masks */");
    rc_sb_line(s, "const int32_t b32 = B;");
    rc_sb_line(s, "memcpy(ws, &seed, sizeof seed);");
    rc_sb_line(s, "memcpy(ws + 2, &b32, sizeof b32);");
    rc_sb_line(s, "ws[3] = RCG_MAGIC;");
    rc_sb_line(s, "}");
    for (int g = 0; g < E->ng; g++) drv_fwd_group(E, PL, g, ext);
    rc_sb_line(s, "memcpy(y, CXW(%s), (size_t)B * %d * sizeof(float));", em_bufname(E, last->buf[last->nops]), E->ir->cells);
    rc_sb_line(s, "return 0;");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

static void drv_train_backward(em *E, const em_plan *PL, int ext)
{
    rc_sb *s = &E->d;
    if (ext) {
        rc_sb_line(s, "/* Training backward down to layer 1's conv output: grads += d loss / d params of layers 2..,");
        rc_sb_line(s, " * and d loss / d (layer 1 conv output) left at rcg_ext_offset(B, 2) for the caller. */");
        rc_sb_line(s, "int rcg_train_backward_ext(int B, const float *params, const int *cell_pos, const float *dy,");
        rc_sb_line(s, "                           float *grads, float *ws, const rcg_hooks *hk)");
        ext_open(s);
    } else {
        rc_sb_line(s, "/* Training backward of the last rcg_train_forward with the same B and ws: grads += d loss / d params. */");
        rc_sb_line(s, "int rcg_train_backward(int B, const float *params, const int *cell_pos, const float *frames,");
        rc_sb_line(s, "                       const int64_t *starts, const float *dy, float *grads, float *ws,");
        rc_sb_line(s, "                       const rcg_hooks *hk)");
        rc_sb_line(s, "{");
    }
    rc_sb_line(s, "if (B < 1) return RCG_ERR(RCG_E_BATCH, 0);");
    rc_sb_line(s, "uint64_t seed;");
    rc_sb_line(s, "int32_t b32;");
    rc_sb_line(s, "memcpy(&seed, ws, sizeof seed);");
    rc_sb_line(s, "memcpy(&b32, ws + 2, sizeof b32);");
    rc_sb_line(s, "if (b32 != B || ws[3] != RCG_MAGIC) return RCG_ERR(RCG_E_BWD_BATCH, 0);");
    emit_ctx(s, "params", "NULL", "seed", "grads", "hk");
    int cur = -1;
    for (int g = E->ng - 1; g >= 0; g--) drv_bwd_group(E, PL, g, &cur, ext);
    rc_sb_line(s, "(void)dy;");
    rc_sb_line(s, "return 0;");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

/* Statements composing the sub-kernels of stacked conv li into one kernel (cout, cin, K, K) in
 * its workspace buffer em_collapsed_buf (inference and the external first conv's weights). */
static void emit_collapse(em *E, const em_plan *PL, rc_sb *s, int li)
{
    const rc_layer *L = &E->ir->layers[li];
    const em_cl *cl = &PL->cl[li];
    char n2[64];
    int K1 = L->sub_k[0], R = L->in.c;
    rc_sb_line(s, "/* collapse the stack: compose the sub-kernels into one %dx%d kernel */", L->kernel, L->kernel);
    rc_sb_line(s, "memcpy(CXW(%s), cx->params + %s, %lld * sizeof(float));", em_bufname(E, cl->col[0]),
               em_wname(E, li, 0, n2), (long long)L->sub_cout[0] * R * K1 * K1);
    for (int j = 1; j < cl->n; j++) {
        int Q = L->sub_cout[j - 1], Sx = L->sub_cout[j], K2 = L->sub_k[j], KN = K1 + K2 - 1;
        rc_sb_line(s, "{");
        rc_sb_line(s, "const float *base = CXW(%s), *stk = cx->params + %s;", em_bufname(E, cl->col[(j - 1) % 2]),
                   em_wname(E, li, j, n2));
        rc_sb_line(s, "float *nw = CXW(%s);", em_bufname(E, cl->col[j % 2]));
        rc_sb_line(s, "memset(nw, 0, %lld * sizeof(float));", (long long)Sx * R * KN * KN);
        rc_sb_line(s, "for (int so = 0; so < %d; so++) {", Sx);
        rc_sb_line(s, "for (int q = 0; q < %d; q++) {", Q);
        rc_sb_line(s, "for (int u = 0; u < %d; u++) {", K2);
        rc_sb_line(s, "for (int v = 0; v < %d; v++) {", K2);
        rc_sb_line(s, "const float a = stk[((so * %d + q) * %d + u) * %d + v];", Q, K2, K2);
        rc_sb_line(s, "for (int r = 0; r < %d; r++) {", R);
        rc_sb_line(s, "for (int yy = 0; yy < %d; yy++) {", K1);
        rc_sb_line(s, "for (int xx = 0; xx < %d; xx++) {", K1);
        rc_sb_line(s, "nw[(((size_t)so * %d + r) * %d + yy + u) * %d + xx + v] += base[(((size_t)q * %d + r) * %d + yy) * %d + xx] * a;",
                   R, KN, KN, R, K1, K1);
        for (int q = 0; q < 8; q++) rc_sb_line(s, "}");
        K1 = KN;
    }
}

static int em_collapsed_buf(const em_plan *PL, int li) { return PL->cl[li].col[(PL->cl[li].n - 1) % 2]; }

static void drv_infer(em *E, const em_plan *PL, int ext)
{
    rc_sb *s = &E->d;
    const rc_ir *ir = E->ir;
    const em_grp *last = &E->g[E->ng - 1];
    char n1[64], n2[64], n3[64], n4[64], eps[48];
    if (ext) {
        rc_sb_line(s, "/* Inference from layer 1's conv output (conv + bias, written by the caller into the workspace");
        rc_sb_line(s, " * at rcg_ext_offset(B, 1)); layer 1's batchnorm is applied as an affine, not folded. */");
        rc_sb_line(s, "int rcg_infer_ext(int B, const float *params, const float *state, const int *cell_pos, float *y,");
        rc_sb_line(s, "                  float *ws, const rcg_hooks *hk)");
        ext_open(s);
    } else {
        rc_sb_line(s, "/* Inference: running statistics, no noise or dropout, stacked convs collapsed, BN folded. */");
        rc_sb_line(s, "int rcg_infer(int B, const float *params, const float *state, const int *cell_pos,");
        rc_sb_line(s, "              const float *frames, const int64_t *starts, float *y, float *ws,");
        rc_sb_line(s, "              const rcg_hooks *hk)");
        rc_sb_line(s, "{");
    }
    emit_checks(E, s, 0);
    emit_ctx(s, "params", "(float *)state", "0", "NULL", "hk");
    for (int g = 0; g < E->ng; g++) {
        const em_grp *G = &E->g[g];
        for (int k = 1; k <= G->nops; k++) {
            int li = G->op[k];
            const rc_layer *L = &ir->layers[li];
            if (L->kind != RC_LAYER_BATCHNORM) continue;
            int64_t FB = L->over == RC_BN_UNIT ? em_shsize(G->sh) : G->sh.c;
            rc_sb_line(s, "{ /* layer %d: batchnorm as a per-feature affine a*x + c */", li + 1);
            rc_sb_line(s, "float *st = CXW(%s);", em_bufname(E, PL->stat[li]));
            rc_sb_line(s, "const float *rm = cx->state + %s, *rv = cx->state + %s;", em_S(E, li, ".running_mean", n1),
                       em_S(E, li, ".running_var", n2));
            rc_sb_line(s, "const float *sc = cx->params + %s, *sh = cx->params + %s;", em_P(E, li, ".scale", n3),
                       em_P(E, li, ".shift", n4));
            rc_sb_line(s, "for (int f = 0; f < %lld; f++) {", (long long)FB);
            rc_sb_line(s, "const double a = (double)%s / sqrt((double)rv[f] + %s);", L->abs_scale ? "fabsf(sc[f])" : "sc[f]",
                       dbl(L->eps, eps));
            rc_sb_line(s, "st[f] = (float)a;");
            rc_sb_line(s, "st[%lld + f] = (float)(sh[f] - rm[f] * a);", (long long)FB);
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
        }
    }
    for (int g = 0; g < E->ng; g++) {
        const em_grp *G = &E->g[g];
        int li = G->li;
        char in[160], w[128] = "NULL", bias[128] = "NULL", nm[32], ab[64] = "";
        em_in_expr(E, g, "b", in, sizeof in);
        const char *out = em_bufname(E, G->buf[G->nops]);
        int64_t SZ = em_shsize(G->sh);
        rc_sb_line(s, "{ /* group %d */", g + 1);
        int def = li >= 0 && ir->layers[li].kind == RC_LAYER_DEF;
        if ((ext && g == 0) || def) {
            if (def) {   /* the defined layer writes level 0; its chain (if any) as one pass */
                snprintf(w, sizeof w, "CXW(%s)", em_bufname(E, G->buf[0]));
                if (PL->prim[li]) em_prim_call_fwd(E, PL->prim[li], g, 0, w);
                if (!G->nops) { rc_sb_line(s, "}"); continue; }
            } else {
                rc_sb_line(s, "/* layer 1 (conv): computed by the caller into L1_ext; its chain as one pass */");
            }
            rc_sb_line(s, "const float *src = CXW(%s);", em_bufname(E, def ? G->buf[0] : E->ext_buf));
            loops_open(E, s, G);
            rc_sb_line(s, "float v = src[(size_t)b * %lld + f];", (long long)SZ);
            em_ops_fwd(E, PL, s, G, 0, G->nops, M_INFER, "b", "c", "f", 0, 0);
            rc_sb_line(s, "CXW(%s)[(size_t)b * %lld + f] = v;", out, (long long)SZ);
            loops_close(s);
            rc_sb_line(s, "}");
            continue;
        }
        if (G->fold) snprintf(ab, sizeof ab, "CXW(%s)", em_bufname(E, PL->stat[G->op[G->fold]]));
        if (li >= 0 && ir->layers[li].bias) snprintf(bias, sizeof bias, "cx->params + %s", em_P(E, li, ".bias", n1));
        if (li < 0 || ir->layers[li].kind != RC_LAYER_CONV || PL->cl[li].tiled) {
            if (li >= 0) snprintf(w, sizeof w, "cx->params + %s", em_P(E, li, ".weight", n2));
            if (li >= 0 && G->fold) {   /* tiled conv: fold BN into a scaled copy */
                const em_cl *cl = &PL->cl[li];
                const rc_layer *L = &ir->layers[li];
                int C = G->sh.c, CKK = L->in.c * L->kernel * L->kernel, PP = cl->py * cl->px;
                rc_sb_line(s, "{");
                rc_sb_line(s, "const float *ab = %s;", ab);
                rc_sb_line(s, "const float *W = %s;", w);
                rc_sb_line(s, "float *wf = CXW(%s), *bf = CXW(%s);", em_bufname(E, cl->prep_inf), em_bufname(E, cl->prep_bias));
                rc_sb_line(s, "for (int ph = 0; ph < %d; ph++) {", PP);
                rc_sb_line(s, "for (int o = 0; o < %d; o++) {", C);
                rc_sb_line(s, "for (int e = 0; e < %d; e++) wf[((size_t)ph * %d + o) * %d + e] = W[((size_t)ph * %d + o) * %d + e] * ab[o];",
                           CKK, C, CKK, C, CKK);
                if (L->bias) rc_sb_line(s, "bf[ph * %d + o] = cx->params[%s + ph * %d + o] * ab[o] + ab[%d + o];", C,
                                        em_P(E, li, ".bias", n3), C, C);
                else rc_sb_line(s, "bf[ph * %d + o] = ab[%d + o];", C, C);
                rc_sb_line(s, "}");
                rc_sb_line(s, "}");
                rc_sb_line(s, "}");
                snprintf(w, sizeof w, "CXW(%s)", em_bufname(E, cl->prep_inf));
                snprintf(bias, sizeof bias, "CXW(%s)", em_bufname(E, cl->prep_bias));
            }
            group_kname(E, G, RC_PHASE_INFER, nm, sizeof nm);
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int b = 0; b < B; b++) %s(%s, %s, %s, CXW(%s) + (size_t)b * %lld, b, cx);", nm, in, w, bias,
                       out, (long long)SZ);
        } else {
            const rc_layer *L = &ir->layers[li];
            const em_cl *cl = &PL->cl[li];
            char src[128];
            int hook = em_hook_conv(E, PL, g);
            if (hook) {   /* the hook writes conv + bias; the chain (BN unfolded) runs as one pass */
                char y[96];
                snprintf(y, sizeof y, "CXW(%s)", out);
                hook_open_fwd(E, s, g, "RCG_HOOK_INFER", bias, y);
                if (G->nops) {
                    rc_sb_line(s, "if (!hk_) {");
                    loops_open(E, s, G);
                    rc_sb_line(s, "float v = CXW(%s)[(size_t)b * %lld + f];", out, (long long)SZ);
                    em_ops_fwd(E, PL, s, G, 0, G->nops, M_INFER, "b", "c", "f", 0, 0);
                    rc_sb_line(s, "CXW(%s)[(size_t)b * %lld + f] = v;", out, (long long)SZ);
                    loops_close(s);
                    rc_sb_line(s, "}");
                }
                rc_sb_line(s, "if (hk_) {");
            }
            if (L->stack) {
                emit_collapse(E, PL, s, li);
                snprintf(src, sizeof src, "CXW(%s)", em_bufname(E, em_collapsed_buf(PL, li)));
            } else {
                snprintf(src, sizeof src, "cx->params + %s", em_P(E, li, ".weight", n2));
            }
            char dst[96];
            snprintf(dst, sizeof dst, "CXW(%s)", em_bufname(E, cl->prep_inf));
            em_conv_prep(s, &cl->inf, src, dst, G->fold ? ab : NULL, 0);
            if (G->fold) {
                rc_sb_line(s, "{ /* folded bias: (b - mean) * gain / std + shift */");
                rc_sb_line(s, "const float *ab = %s;", ab);
                rc_sb_line(s, "float *bf = CXW(%s);", em_bufname(E, cl->prep_bias));
                if (L->bias) rc_sb_line(s, "for (int o = 0; o < %d; o++) bf[o] = cx->params[%s + o] * ab[o] + ab[%d + o];",
                                        L->out.c, em_P(E, li, ".bias", n3), L->out.c);
                else rc_sb_line(s, "for (int o = 0; o < %d; o++) bf[o] = ab[%d + o];", L->out.c, L->out.c);
                rc_sb_line(s, "}");
                snprintf(bias, sizeof bias, "CXW(%s)", em_bufname(E, cl->prep_bias));
            }
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int b = 0; b < B; b++) %s(%s, %s, %s, CXW(%s) + (size_t)b * %lld, b, cx);", cl->inf.name,
                       in, dst, bias, out, (long long)SZ);
            if (hook) rc_sb_line(s, "}");
        }
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "memcpy(y, CXW(%s), (size_t)B * %d * sizeof(float));", em_bufname(E, last->buf[last->nops]), ir->cells);
    rc_sb_line(s, "return 0;");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

/* ---------------------------------------------------------------- prelude and assembly */

static const char prelude[] =
    "#if defined(__GNUC__) && !defined(__clang__)\n"
    "#pragma GCC diagnostic ignored \"-Wpsabi\" /* 64-byte vectors in static helpers on non-AVX-512 targets */\n"
    "#endif\n"
    "#include <math.h>\n"
    "#include <stddef.h>\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "\n"
    "/* helpers a model may not use: no unused-function warnings */\n"
    "#define RCG_INLINE static inline __attribute__((unused))\n"
    "#define RC_RNG_QUAL RCG_INLINE\n"
    "/* Elementwise loops of fewer element visits run on one thread: a parallel region costs each\n"
    " * thread a wake-up and a sleep (tens of microseconds in a VM), more than such a loop takes. */\n"
    "#define RCG_PAR_MIN " EM_STR(EM_PAR_MIN) "\n";

static const char helpers[] =
    "\n"
    "#define RCG_ABI 3\n"
    "#define RCG_MAGIC 20245.5f\n"
    "#define RCG_ERR(code, layer) (((code) << 8) | (layer))\n"
    "enum { RCG_E_BATCH = 1, RCG_E_BWD_BATCH = 2, RCG_E_CELLPOS = 3, RCG_E_BN_BATCH = 4, RCG_E_HOOK = 5 };\n"
    "\n"
    "/* Services of the runtime (backend_c.h; hk NULL: none). conv: layer `layer`'s conv over the\n"
    " * batch, y (B, O, Ho, Wo) = conv + bias of x (B, C, H, W) (op RCG_HOOK_TRAIN in training,\n"
    " * RCG_HOOK_INFER in inference); conv_bwd: dw, db (NULL: none) += its parameter gradients and\n"
    " * dx (NULL: none) = its input gradient for the output gradient dy. They return 0 when done,\n"
    " * 1 when they decline (the module's own kernels run), < 0 on error. */\n"
    "enum { RCG_HOOK_TRAIN = 0, RCG_HOOK_INFER = 1 };\n"
    "typedef struct rcg_hooks {\n"
    "    void *self;\n"
    "    int (*conv)(void *self, int op, int layer, int B, const float *x, const float *w, const float *bias, float *y);\n"
    "    int (*conv_bwd)(void *self, int layer, int B, const float *x, const float *w, const float *dy, float *dx,\n"
    "                    float *dw, float *db);\n"
    "} rcg_hooks;\n"
    "\n"
    "/* Portable SIMD through GCC/Clang vector extensions; memcpy = unaligned load/store. */\n"
    "typedef float rcg_v16 __attribute__((vector_size(64)));\n"
    "typedef float rcg_v8 __attribute__((vector_size(32)));\n"
    "typedef float rcg_v4 __attribute__((vector_size(16)));\n"
    "RCG_INLINE rcg_v16 rcg_ld16(const float *p) { rcg_v16 v; memcpy(&v, p, sizeof v); return v; }\n"
    "RCG_INLINE rcg_v8 rcg_ld8(const float *p) { rcg_v8 v; memcpy(&v, p, sizeof v); return v; }\n"
    "RCG_INLINE rcg_v4 rcg_ld4(const float *p) { rcg_v4 v; memcpy(&v, p, sizeof v); return v; }\n"
    "RCG_INLINE void rcg_st16(float *p, rcg_v16 v) { memcpy(p, &v, sizeof v); }\n"
    "RCG_INLINE void rcg_st8(float *p, rcg_v8 v) { memcpy(p, &v, sizeof v); }\n"
    "RCG_INLINE void rcg_st4(float *p, rcg_v4 v) { memcpy(p, &v, sizeof v); }\n"
    "/* partial loads: the first n floats, zeros after (never reads past p + n): one masked load\n"
    " * with AVX-512, a small copy otherwise */\n"
    "#if defined(__AVX512F__)\n"
    "#include <immintrin.h>\n"
    "RCG_INLINE rcg_v16 rcg_ldp16(const float *p, int n) { return (rcg_v16)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p); }\n"
    "#else\n"
    "RCG_INLINE rcg_v16 rcg_ldp16(const float *p, int n) { rcg_v16 v = {0}; memcpy(&v, p, (size_t)n * sizeof(float)); return v; }\n"
    "#endif\n"
    "/* broadcasts for the pair form: (p[0], p[1]) to every lane pair; p[0] to every lane */\n"
    "#if defined(__AVX512F__)\n"
    "RCG_INLINE rcg_v16 rcg_bc2(const float *p) { double d; memcpy(&d, p, sizeof d); return (rcg_v16)_mm512_set1_pd(d); }\n"
    "#else\n"
    "RCG_INLINE rcg_v16 rcg_bc2(const float *p) { const float a = p[0], b = p[1]; return (rcg_v16){a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b}; }\n"
    "#endif\n"
    "RCG_INLINE rcg_v16 rcg_bc1(const float *p) { rcg_v16 v = {0}; return v + p[0]; }\n"
    "#if defined(__AVX512F__) && defined(__AVX512VL__)\n"
    "RCG_INLINE rcg_v8 rcg_ldp8(const float *p, int n) { return (rcg_v8)_mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1u), p); }\n"
    "RCG_INLINE rcg_v4 rcg_ldp4(const float *p, int n) { return (rcg_v4)_mm_maskz_loadu_ps((__mmask8)((1u << n) - 1u), p); }\n"
    "#else\n"
    "RCG_INLINE rcg_v8 rcg_ldp8(const float *p, int n) { rcg_v8 v = {0}; memcpy(&v, p, (size_t)n * sizeof(float)); return v; }\n"
    "RCG_INLINE rcg_v4 rcg_ldp4(const float *p, int n) { rcg_v4 v = {0}; memcpy(&v, p, (size_t)n * sizeof(float)); return v; }\n"
    "#endif\n"
    "\n"
    RC_EMIT_ACT_TEXT
    "\n"
    "/* Everything a kernel needs besides its tensors. */\n"
    "typedef struct {\n"
    "    const float *params;\n"
    "    float *state;\n"
    "    float *ws;\n"
    "    const size_t *off;\n"
    "    uint64_t seed;\n"
    "    const int *cell_pos;\n"
    "    float *grads;\n"
    "    const rcg_hooks *hk;\n"
    "} rcg_ctx;\n"
    "#define CXW(k) (cx->ws + cx->off[k])\n"
    "\n";

int rc_emit_c(const rc_ir *ir, const char *spec_path, char **src, char *err, size_t errlen)
{
    *src = NULL;
    if (ir->n_layers < 1 || ir->cells < 1) {
        snprintf(err, errlen, "emit: %s: the IR is not inferred (call rc_ir_infer first)", ir->name);
        return -1;
    }
    em *E = calloc(1, sizeof *E);
    em_plan *PL = calloc(1, sizeof *PL);
    rc_ir *low = malloc(sizeof *low);   /* the kernels' view: defined layers lowered (lower.h) */
    if (!E || !PL || !low) { free(E); free(PL); free(low); snprintf(err, errlen, "emit: out of memory"); return -1; }
    char lm[256];
    if (rc_ir_lower(ir, low, lm, sizeof lm) < 0) {
        snprintf(err, errlen, "emit: %s: %s", ir->name, lm);
        free(E); free(PL); free(low);
        return -1;
    }
    E->ir = low;
    build_groups(E);
    plan_all(E, PL);
    emit_kernels(E, PL);
    drv_train_forward(E, PL, 0);
    drv_train_backward(E, PL, 0);
    drv_infer(E, PL, 0);
    if (E->ext) {
        rc_sb_line(&E->d, "/* ================================================================ external first conv */\n");
        if (E->ext_train) {
            drv_train_forward(E, PL, 1);
            drv_train_backward(E, PL, 1);
        }
        drv_infer(E, PL, 1);
        rc_sb *s = &E->d;
        rc_sb_line(s, "/* 1: the ext entry points for training and inference; 2: inference only (stacked layer 1,");
        rc_sb_line(s, " * its collapsed weights from rcg_ext_weights). */");
        rc_sb_line(s, "const int rcg_ext = %d;", E->ext_train ? 1 : 2);
        rc_sb_line(s, "/* Workspace float offset of: 0 the training conv output the caller writes, 1 the inference");
        rc_sb_line(s, " * conv output the caller writes, 2 d loss / d conv output after rcg_train_backward_ext. Each");
        rc_sb_line(s, " * holds B x %d x %d x %d floats (conv + bias, before layer 1's chain). */", E->g[0].sh.c, E->g[0].sh.h,
                   E->g[0].sh.w);
        rc_sb_line(s, "size_t rcg_ext_offset(int B, int which)");
        rc_sb_line(s, "{");
        rc_sb_line(s, "size_t off[RCG_NBUF];");
        rc_sb_line(s, "rcg_offsets(B < 1 ? 1 : B, off);");
        if (E->ext_train)
            rc_sb_line(s, "return which == 0 ? off[%s] : which == 1 ? off[%s] : off[%s];", em_bufname(E, ext_train_buf(E)),
                       em_bufname(E, E->ext_buf), E->ext_gcur >= 0 ? em_bufname(E, E->gbuf[E->ext_gcur]) : "0");
        else
            rc_sb_line(s, "return which == 1 ? off[%s] : (size_t)-1;", em_bufname(E, E->ext_buf));
        rc_sb_line(s, "}");
        if (!E->ext_train) {
            rc_sb_raw(s, "\n", 1);
            rc_sb_line(s, "/* Layer 1's stack collapsed into one kernel (%d, %d, %d, %d) in the workspace (the same for", ir->layers[0].out.c,
                       ir->layers[0].in.c, ir->layers[0].kernel, ir->layers[0].kernel);
            rc_sb_line(s, " * any B); returns its float offset. */");
            rc_sb_line(s, "size_t rcg_ext_weights(int B, const float *params, float *ws)");
            rc_sb_line(s, "{");
            rc_sb_line(s, "const float *frames = NULL;");
            rc_sb_line(s, "const int64_t *starts = NULL;");
            rc_sb_line(s, "const int *cell_pos = NULL;");
            emit_ctx(s, "params", "NULL", "0", "NULL", "NULL");
            emit_collapse(E, PL, s, 0);
            rc_sb_line(s, "return off[%s];", em_bufname(E, em_collapsed_buf(PL, 0)));
            rc_sb_line(s, "}");
        }
    }

    rc_sb out = {0};
    char hash[65];
    rc_ir_hash(ir, hash);
    rc_emit_header(&out, ir, spec_path, "C (OpenMP), ABI of runtime/backend/backend_c.h");
    rc_emit_lowered(&out, ir, low);
    rc_sb_put(&out, "%s", prelude);
    const char *rng = rc_emit_rng_text();
    rc_sb_raw(&out, rng, strlen(rng));
    rc_sb_put(&out, "%s", helpers);
    rc_sb_put(&out, "/* Parameter and state tensors: float offsets (PyTorch layouts, see the IR). */\n");
    for (int i = 0; i < ir->n_params; i++) {
        char id[80];
        pid(&ir->params[i], 0, id, sizeof id);
        rc_sb_put(&out, "#define %s %lld\n", id, (long long)ir->params[i].offset);
    }
    for (int i = 0; i < ir->n_state; i++) {
        char id[80];
        pid(&ir->state[i], 1, id, sizeof id);
        rc_sb_put(&out, "#define %s %lld\n", id, (long long)ir->state[i].offset);
    }
    rc_sb_put(&out, "\n/* Workspace: buffer k holds rcg_pb[k] * B + rcg_fx[k] floats (16-float aligned). */\nenum {\n");
    for (int k = 0; k < E->nbuf; k++) rc_sb_put(&out, "    %s,\n", E->buf[k].name);
    rc_sb_put(&out, "    RCG_NBUF\n};\nstatic const size_t rcg_pb[RCG_NBUF] = {");
    for (int k = 0; k < E->nbuf; k++) rc_sb_put(&out, "%s%zu", k ? ", " : "", E->buf[k].pb);
    rc_sb_put(&out, "};\nstatic const size_t rcg_fx[RCG_NBUF] = {");
    for (int k = 0; k < E->nbuf; k++) rc_sb_put(&out, "%s%zu", k ? ", " : "", E->buf[k].fx);
    rc_sb_put(&out, "};\n\n"
              "static size_t rcg_offsets(int B, size_t *off)\n"
              "{\n"
              "    size_t o = 0;\n"
              "    for (int k = 0; k < RCG_NBUF; k++) {\n"
              "        off[k] = o;\n"
              "        o += (rcg_pb[k] * (size_t)B + rcg_fx[k] + 15) & ~(size_t)15;\n"
              "    }\n"
              "    return o;\n"
              "}\n\n");
    if (E->k.s) rc_sb_raw(&out, E->k.s, E->k.len);
    rc_sb_put(&out, "/* ================================================================ exported ABI */\n\n");
    rc_sb_put(&out, "const char rcg_hash[] = \"%s\";\n", hash);
    rc_sb_put(&out, "const char rcg_generator[] = \"%s\";\n", RC_EMIT_VERSION);
    rc_sb_put(&out, "const int rcg_abi = RCG_ABI;\n");
    rc_sb_put(&out, "const int rcg_cells = %d;\n\n", ir->cells);
    rc_sb_put(&out, "size_t rcg_ws_floats(int B)\n{\n    size_t off[RCG_NBUF];\n    return rcg_offsets(B < 1 ? 1 : B, off);\n}\n\n");
    if (E->d.s) rc_sb_raw(&out, E->d.s, E->d.len);
    int failed = E->failed || E->k.oom || E->d.oom;
    if (E->failed) snprintf(err, errlen, "emit: %s: %s", ir->name, E->err);
    else if (failed) snprintf(err, errlen, "emit: %s: out of memory", ir->name);
    free(E->k.s);
    free(E->d.s);
    free(E);
    for (int li = 0; li < RC_MAX_LAYERS; li++) em_prim_free(PL->prim[li]);
    free(PL);
    free(low);
    char *text = rc_sb_finish(&out);
    if (failed || !text) {
        free(text);
        if (!failed) snprintf(err, errlen, "emit: %s: out of memory", ir->name);
        return -1;
    }
    *src = text;
    return 0;
}
