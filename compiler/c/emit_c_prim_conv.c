/* emit_c_prim_conv.c — C emitter: a defined layer's plain convolutions lowered to the
 * register-blocked direct kernels of emit_c_conv.c, the ones the built-in conv layer uses
 * (docs/primitives.md §6-7, issue #14). emit_c_prim.c asks em_pconv_plan for every conv2d,
 * conv2d_dx and conv2d_dw node it renders; a node this file takes is drawn as calls of a
 * generated kernel, every other one keeps the generic loop nest.
 *
 * Taken: stride 1, dilation 1, not tiled (period 1), zero padding p < K -- the built-in conv's
 * valid correlation of the input with a zero border of p (its kernels skip the taps that read
 * only the border) -- with the weight a parameter leaf (O, C, K, K), every tensor operand and the
 * result batched (B, ., ., .) and contiguous: the layer input or output gradient (INPUT leaves),
 * or a node emit_c_prim.c materializes into scratch (em_pconv_operand says which operands it
 * must materialize). Sizes are bounded (K <= 32, H, W <= 2048, channels <= 4096) so the kernels'
 * unrolled code and stack blocks stay small; the generic loops take the rest.
 *   conv2d     the forward kernel NAME(x, wt, bias, y, b, cx) per sample; the weight is
 *              transposed into the kernel's layout (em_conv_prep) in a workspace buffer once per
 *              call. With padding p each sample is first copied into its part's buffer with a
 *              zero border of p (zeroed once per call).
 *   conv2d_dx  the input gradient as the built-in computes it: a correlation of the output
 *              gradient, zero-padded by K - 1 - p on every side, with the flipped transposed
 *              weight, by a forward kernel that skips the zero border (cv.zpad). Samples go in
 *              EM_NPART parts, each with its padded buffer (its border zeroed once).
 *   conv2d_dw  the weight gradient kernel DWNAME(x, g, acc) per sample (x padded by p into its
 *              part's buffer first) into per-part accumulators, then the parts are summed in a
 *              fixed order (in double) into the node's home (+= for a parameter's gradient).
 * Every sample's work is the same whatever the thread count, and the parts depend on B only:
 * results are deterministic for any thread count.
 */
#include "emit_c_int.h"
#include "prim.h"

#include <stdio.h>
#include <string.h>

#define PC_MAXK 32
#define PC_MAXHW 2048
#define PC_MAXC 4096

static size_t r16(size_t n) { return (n + 15) & ~(size_t)15; }

static int batched4(const rc_prim_node *t)
{
    if (t->rank != 4 || t->dims[0] != RC_PRIM_B) return 0;
    for (int d = 1; d < 4; d++)
        if (t->dims[d] < 1 || t->dims[d] > (d == 1 ? PC_MAXC : PC_MAXHW)) return 0;
    return 1;
}

/* A tensor operand the kernels can read: the layer input / output gradient, or a computed node
 * (materialized by the caller); not a parameter, state, constant or random leaf. */
static int operand_ok(const rc_prim_graph *g, int a)
{
    const rc_prim_node *t = &g->node[a];
    if (!batched4(t)) return 0;
    if (t->op == RC_P_INPUT) return 1;
    return rc_prim_table()[t->op].kind != RC_PK_LEAF;
}

static int weight_ok(const rc_prim_graph *g, int a, int k)
{
    const rc_prim_node *t = &g->node[a];
    return t->op == RC_P_PARAM && t->rank == 4 && t->dims[2] == k && t->dims[3] == k && t->dims[0] <= PC_MAXC &&
           t->dims[1] <= PC_MAXC;
}

int em_pconv_operand(const rc_prim_graph *g, int n, int a)
{
    const rc_prim_node *nd = &g->node[n];
    if (nd->op == RC_P_CONV2D_DW) return a < 2;
    return a == 0;
}

int em_pconv_plan(em *E, int li, const rc_prim_graph *g, int n, rc_phase ph, em_pconv *pc)
{
    const rc_prim_node *nd = &g->node[n];
    const int *at = nd->attr;
    memset(pc, 0, sizeof *pc);
    pc->node = n;
    pc->prep = pc->part = pc->xpad = -1;
    if (nd->op != RC_P_CONV2D && nd->op != RC_P_CONV2D_DX && nd->op != RC_P_CONV2D_DW) return 0;
    int p = at[1];
    if (at[0] != 1 || p < 0 || at[2] != 1) return 0;
    pc->pad = p;
    char nm[64], part[48];
    snprintf(part, sizeof part, "n%d_%s", n, rc_prim_name(nd->op));
    rc_kernel_name(nm, sizeof nm, ph, li, part);
    if (nd->op == RC_P_CONV2D) {
        const rc_prim_node *x = &g->node[nd->in[0]];
        if (at[3] != 1 || at[4] != 1 || !operand_ok(g, nd->in[0]) || !batched4(nd)) return 0;
        int k = g->node[nd->in[1]].dims[3];
        if (k > PC_MAXK || p >= k || !weight_ok(g, nd->in[1], k)) return 0;
        int hp = x->dims[2] + 2 * p, wp = x->dims[3] + 2 * p;
        em_conv_init(E, li, &pc->cv, nm, NULL, x->dims[1], hp, wp, nd->dims[1], k);
        pc->cv.zpad = p;
        snprintf(nm, sizeof nm, "L%d_n%d_wt", li + 1, n);
        pc->prep = em_add_buf(E, nm, 0, em_conv_prep_floats(&pc->cv));
    } else if (nd->op == RC_P_CONV2D_DX) {
        const rc_prim_node *gr = &g->node[nd->in[0]];
        if (at[3] != 1 || at[4] != 1 || !operand_ok(g, nd->in[0]) || !batched4(nd)) return 0;
        int k = g->node[nd->in[1]].dims[3];
        if (k > PC_MAXK || p >= k || !weight_ok(g, nd->in[1], k)) return 0;
        int z = k - 1 - p, hp = gr->dims[2] + 2 * z, wp = gr->dims[3] + 2 * z;
        em_conv_init(E, li, &pc->cv, nm, NULL, gr->dims[1], hp, wp, nd->dims[1], k);
        pc->cv.zpad = z;   /* the padded output gradient: a zero border of k - 1 - p */
        snprintf(nm, sizeof nm, "L%d_n%d_wt", li + 1, n);
        pc->prep = em_add_buf(E, nm, 0, em_conv_prep_floats(&pc->cv));
        pc->part_floats = r16((size_t)gr->dims[1] * hp * wp);
        snprintf(nm, sizeof nm, "L%d_n%d_pad", li + 1, n);
        pc->part = em_add_buf(E, nm, 0, EM_NPART * pc->part_floats);
    } else {
        const rc_prim_node *x = &g->node[nd->in[0]];
        if (at[6] != 0 || nd->rank != 4 || !operand_ok(g, nd->in[0]) || !operand_ok(g, nd->in[1])) return 0;
        int k = nd->dims[3];
        if (k > PC_MAXK || nd->dims[2] != k || p >= k) return 0;
        em_conv_init(E, li, &pc->cv, nm, nm, x->dims[1], x->dims[2] + 2 * p, x->dims[3] + 2 * p, nd->dims[0], k);
        pc->part_floats = r16((size_t)pc->cv.cin * k * pc->cv.cout * em_conv_kv(&pc->cv));
        snprintf(nm, sizeof nm, "L%d_n%d_acc", li + 1, n);
        pc->part = em_add_buf(E, nm, 0, EM_NPART * pc->part_floats);
    }
    if (p > 0 && nd->op != RC_P_CONV2D_DX) {
        pc->xpad_floats = r16((size_t)pc->cv.cin * pc->cv.hin * pc->cv.win);
        snprintf(nm, sizeof nm, "L%d_n%d_xpad", li + 1, n);
        pc->xpad = em_add_buf(E, nm, 0, EM_NPART * pc->xpad_floats);
    }
    pc->op = nd->op;
    return 1;
}

void em_pconv_kernels(em *E, const em_pconv *pc)
{
    if (pc->op == RC_P_CONV2D_DW) em_conv_dw(E, &pc->cv);
    else em_conv_fwd(E, &pc->cv);
}

/* Parts of the batch: np = min(B, EM_NPART), part p runs samples b0 .. b1 - 1 in order. */
static void parts_open(em *E, rc_sb *s, int li)
{
    rc_sb_line(s, "const int np = B < %d ? B : %d;", EM_NPART, EM_NPART);
    em_omp_for(E, s, li, NULL);
    rc_sb_line(s, "for (int p = 0; p < np; p++) {");
    rc_sb_line(s, "const int b0 = (int)((long long)B * p / np), b1 = (int)((long long)B * (p + 1) / np);");
}

/* Statements copying one sample src (ch, hin - 2z, win - 2z) into the interior of dst
 * (ch, hin, win), whose zero border of z is left as it is. */
static void copy_padded(rc_sb *s, const char *dst, const char *src, int ch, int hin, int win, int z)
{
    int h = hin - 2 * z, w = win - 2 * z;
    rc_sb_line(s, "for (int c = 0; c < %d; c++)", ch);
    rc_sb_line(s, "    for (int iy = 0; iy < %d; iy++)", h);
    rc_sb_line(s, "        memcpy(%s + ((size_t)c * %d + iy + %d) * %d + %d, %s + ((size_t)c * %d + iy) * %d, %d * sizeof(float));",
               dst, hin, z, win, z, src, h, w, w);
}

void em_pconv_emit(em *E, rc_sb *s, int li, const em_pconv *pc, const char *a, const char *b, const char *dst, int acc)
{
    const em_conv *cv = &pc->cv;
    int K = cv->k, ho = cv->hin - K + 1, wo = cv->win - K + 1;
    long long isz = (long long)cv->cin * cv->hin * cv->win, osz = (long long)cv->cout * ho * wo;
    char wt[96];
    if (pc->prep >= 0) snprintf(wt, sizeof wt, "CXW(%s)", em_bufname(E, pc->prep));
    const int P = pc->pad, Z = cv->zpad;
    /* the unpadded input of conv2d / conv2d_dw: (C, hin - 2P, win - 2P) */
    int xh = cv->hin - 2 * P, xw = cv->win - 2 * P;
    long long xsz = (long long)cv->cin * xh * xw;
    if (pc->op == RC_P_CONV2D && P == 0) {
        rc_sb_line(s, "/* plain valid conv (stride 1, no padding): the built-in conv's register-blocked direct kernel");
        rc_sb_line(s, " * %s (emit_c_conv.c), one sample per call, weights transposed into its layout first */", cv->name);
        em_conv_prep(s, cv, b, wt, NULL, 0);
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int b = 0; b < B; b++) %s(%s + (size_t)b * %lld, %s, NULL, %s + (size_t)b * %lld, b, cx);", cv->name,
                   a, isz, wt, dst, osz);
    } else if (pc->op == RC_P_CONV2D) {
        rc_sb_line(s, "/* conv with zero padding %d (stride 1): each sample copied into its part's buffer with a zero", P);
        rc_sb_line(s, " * border of %d, then the built-in conv's register-blocked kernel %s, which skips the taps that", P, cv->name);
        rc_sb_line(s, " * read only the border; weights transposed into its layout first */");
        em_conv_prep(s, cv, b, wt, NULL, 0);
        rc_sb_line(s, "float *xpads = CXW(%s);", em_bufname(E, pc->xpad));
        parts_open(E, s, li);
        rc_sb_line(s, "float *xp = xpads + (size_t)p * %zu;", pc->xpad_floats);
        rc_sb_line(s, "memset(xp, 0, %zu * sizeof(float));", pc->xpad_floats);
        rc_sb_line(s, "for (int b = b0; b < b1; b++) {");
        rc_sb_line(s, "const float *xs = %s + (size_t)b * %lld;", a, xsz);
        copy_padded(s, "xp", "xs", cv->cin, cv->hin, cv->win, P);
        rc_sb_line(s, "%s(xp, %s, NULL, %s + (size_t)b * %lld, b, cx);", cv->name, wt, dst, osz);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
    } else if (pc->op == RC_P_CONV2D_DX) {
        /* here cv runs over the output gradient padded by Z = K - 1 - P: cin = O, (hin, win) padded, cout = C */
        int gh = cv->hin - 2 * Z, gw = cv->win - 2 * Z;
        long long gsz = (long long)cv->cin * gh * gw;
        rc_sb_line(s, "/* input gradient of a conv (stride 1, padding %d), as the built-in conv computes it: the output gradient", P);
        rc_sb_line(s, " * zero-padded by %d, correlated with the flipped, transposed weights by the forward kernel %s", Z,
                   cv->name);
        rc_sb_line(s, " * (which skips the zero border); samples in parts, one padded buffer per part */");
        em_conv_prep(s, cv, b, wt, NULL, 1);
        rc_sb_line(s, "float *pads = CXW(%s);", em_bufname(E, pc->part));
        parts_open(E, s, li);
        rc_sb_line(s, "float *gp = pads + (size_t)p * %zu;", pc->part_floats);
        rc_sb_line(s, "memset(gp, 0, %zu * sizeof(float));", pc->part_floats);
        rc_sb_line(s, "for (int b = b0; b < b1; b++) {");
        rc_sb_line(s, "const float *g = %s + (size_t)b * %lld;", a, gsz);
        copy_padded(s, "gp", "g", cv->cin, cv->hin, cv->win, Z);
        rc_sb_line(s, "%s(gp, %s, NULL, %s + (size_t)b * %lld, b, cx);", cv->name, wt, dst, osz);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
    } else {
        int kv = em_conv_kv(cv), ckk = cv->cin * K * K;
        rc_sb_line(s, "/* weight gradient of a conv (stride 1, padding %d), as the built-in conv computes it: the kernel %s", P,
                   cv->dwname);
        rc_sb_line(s, " * (emit_c_conv.c) per sample%s into private accumulators per part [c][ky][o][kx < %d], then",
                   P ? " (its input copied with a zero border first)" : "", kv);
        rc_sb_line(s, " * the parts summed in a fixed order */");
        rc_sb_line(s, "float *accs = CXW(%s);", em_bufname(E, pc->part));
        if (P) rc_sb_line(s, "float *xpads = CXW(%s);", em_bufname(E, pc->xpad));
        rc_sb_line(s, "{");
        parts_open(E, s, li);
        rc_sb_line(s, "float *pp = accs + (size_t)p * %zu;", pc->part_floats);
        rc_sb_line(s, "memset(pp, 0, %zu * sizeof(float));", pc->part_floats);
        if (P) {
            rc_sb_line(s, "float *xp = xpads + (size_t)p * %zu;", pc->xpad_floats);
            rc_sb_line(s, "memset(xp, 0, %zu * sizeof(float));", pc->xpad_floats);
            rc_sb_line(s, "for (int b = b0; b < b1; b++) {");
            rc_sb_line(s, "const float *xs = %s + (size_t)b * %lld;", a, xsz);
            copy_padded(s, "xp", "xs", cv->cin, cv->hin, cv->win, P);
            rc_sb_line(s, "%s(xp, %s + (size_t)b * %lld, pp);", cv->dwname, b, osz);
            rc_sb_line(s, "}");
        } else {
            rc_sb_line(s, "for (int b = b0; b < b1; b++) %s(%s + (size_t)b * %lld, %s + (size_t)b * %lld, pp);", cv->dwname, a, isz,
                       b, osz);
        }
        rc_sb_line(s, "}");
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int e = 0; e < %d; e++) {", cv->cout * ckk);
        rc_sb_line(s, "const int o = e / %d, r = e %% %d, c = r / %d, kk = r %% %d, ky = kk / %d, kx = kk %% %d;", ckk, ckk, K * K,
                   K * K, K, K);
        rc_sb_line(s, "double sum = 0.0;");
        rc_sb_line(s, "for (int p = 0; p < np; p++) sum += accs[(size_t)p * %zu + ((size_t)(c * %d + ky) * %d + o) * %d + kx];",
                   pc->part_floats, K, cv->cout, kv);
        rc_sb_line(s, "%s[e] %s (float)sum;", dst, acc ? "+=" : "=");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
    }
}
