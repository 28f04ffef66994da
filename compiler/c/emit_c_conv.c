/* emit_c_conv.c — generated direct-convolution kernels for the C target.
 *
 * Forward (also used for the input gradient, as a correlation of the zero-padded output
 * gradient with the flipped, transposed kernel), two forms:
 *  - general: per sample, register blocks of tc output channels x th rows x tw columns; the
 *    columns are split into vector chunks (16/8/4 floats, then scalars) so every load is exact
 *    (never past a row's end, so never past the caller's frame buffer). Weights are
 *    pre-transposed to [cin][k][k][cout], so the tc broadcasts of one tap are adjacent. Inner
 *    loop: one unaligned load per row chunk, tc broadcast-FMAs per load.
 *  - pair (cout % 8 == 0, 16 lanes, no blocking hints): lanes = 8 output channels x 2 columns,
 *    so no lane is wasted on a row remainder (wo = 26 would leave 6 of 32 lanes idle); the k
 *    weight vectors of a kernel row stay in registers; the accumulators are split in two
 *    interleaved "waves" so enough independent FMAs are in flight; when the weights of 8
 *    channels exceed 16 KiB the input channels go in chunks whose weights stay in L1.
 *  With cv->zpad (the input gradient's zero border) rows and broadcast steps that read only
 *  zeros are skipped: the input gradient costs the forward's FLOPs, not the padded shape's.
 * Weight gradient, two forms: per sample, accumulators go to a per-part buffer
 * [cin][k][cout][kv] (kv = em_conv_kv), reduced later in a fixed order.
 *  - kx vectors: acc[o][c][kx..] += g[o][oy][ox] * x[c][oy+ky][ox+kx..] for a block of tco
 *    outputs x cb inputs; the last kv-k columns of each row are peeled with partial loads.
 *    Lanes past k are wasted (k = 11: 5 of 16).
 *  - pair (with the forward's pair form, when it uses the lanes better): lanes = 8 output
 *    channels x 2 columns of a transposed copy of the output gradient (stack), k accumulators
 *    (one per kx) per (c, ky), kv = k.
 * With constant trip counts the C compiler keeps every accumulator in a register and unrolls.
 * Every form is written that way: accumulators, weights, input and gradient vectors are small
 * arrays indexed only inside loops with constant bounds under `#pragma GCC unroll`, and the
 * chunk and tap conditions depend only on loop indices, so GCC unrolls them completely, keeps
 * every array element in a register and folds the conditions: the same FMAs in the same order
 * as the unrolled text the emitter wrote before (bit-identical checkpoints, the same speed;
 * results/performance.md rows 9 and 13), in a fraction of the lines.
 * All sums run in a fixed order: the output is deterministic for any thread count.
 */
#include "emit_c_int.h"

#include <stdio.h>
#include <string.h>

/* Kernel-column chunks of the weight gradient: full vectors, the last one rounded up. */
static int kx_chunks(int k, int vw, int *widths)
{
    int n = 0;
    while (k > 0) {
        int c = k >= vw ? vw : (k <= 4 ? 4 : k <= 8 ? 8 : 16);
        widths[n++] = c;
        k -= c < k ? c : k;
    }
    return n;
}

static int kx_kv(const em_conv *cv)
{
    int w[EM_MAXCHUNK], n = kx_chunks(cv->k, cv->vw, w), kv = 0;
    for (int i = 0; i < n; i++) kv += w[i];
    return kv;
}

/* Weight-gradient pair form (see em_conv_dw): the columns of a full block (even, or all of an
 * odd wo), or 0 for the kx-vector form. Registers: k accumulators + one gradient vector per
 * column pair + one broadcast <= 30, as in the forward pair form. Taken when its lanes are
 * better used than the kx form's (k / kv: 11 of 16 for k = 11) and the transposed gradient fits
 * the stack (<= 32K floats). */
static int dw_pair_tw(const em_conv *cv)
{
    int K = cv->k, ho = cv->hin - K + 1, wo = cv->win - K + 1;
    if (!cv->pair) return 0;   /* unhinted, 16 lanes, cout % 8 == 0, k <= 20, wo >= 2 */
    int pmax = 29 - K, nb = (wo + 2 * pmax - 1) / (2 * pmax), tw = 2 * ((wo + 2 * nb - 1) / (2 * nb));
    if (tw > wo) tw = wo;
    if ((size_t)(cv->cout / 8) * ho * ((wo + 1) / 2) * 16 > 32768) return 0;
    int pairs = wo / tw * ((tw + 1) / 2) + (wo % tw + 1) / 2;
    return (double)wo / (2 * pairs) > (double)K / kx_kv(cv) + 0.02 ? tw : 0;
}

int em_conv_kv(const em_conv *cv) { return dw_pair_tw(cv) ? cv->k : kx_kv(cv); }

/* Largest block <= max (at least 1), then balanced so the blocks of n are near equal. */
static int balanced(int n, int max)
{
    if (max < 1) max = 1;
    if (max >= n) return n;
    int nb = (n + max - 1) / max;
    return (n + nb - 1) / nb;
}

void em_conv_config(const em *E, int li, em_conv *cv)
{
    const rc_schedule *ls = li >= 0 ? &E->ir->layers[li].sched : NULL, *ms = &E->ir->sched;
#define HINT(f) (ls && ls->f ? ls->f : ms->f)
    int vw = HINT(vector);
    cv->vw = vw <= 0 || vw >= 16 ? 16 : vw >= 8 ? 8 : 4;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1;
    /* hints are clamped so a block stays within 8 vectors x 8 rows x 32 channels of code */
    int tw = HINT(tile_w);
    if (tw <= 0) tw = wo <= 4 * cv->vw ? wo : 4 * cv->vw;
    if (tw > 8 * cv->vw) tw = 8 * cv->vw;
    cv->tw = tw > wo ? wo : tw;
    int th = HINT(tile_h);
    if (th > 8) th = 8;
    cv->th = th <= 0 ? 1 : th > ho ? ho : th;
    int widths[EM_MAXCHUNK];
    int regs = (cv->tw + cv->vw - 1) / cv->vw * cv->th;
    int tc = HINT(tile_c);
    if (tc > 32) tc = 32;
    cv->tc = tc > 0 ? (tc > cv->cout ? cv->cout : tc) : balanced(cv->cout, EM_REGS / regs);
    /* pair form: 8 output channels x 2 columns per 16-lane vector, all k weight vectors in
     * registers (accumulators + k weights + 2 broadcasts <= 31; fewer, smaller blocks measured
     * slower); only without blocking hints */
    int hinted = (ls && (ls->tile_c || ls->tile_h || ls->tile_w)) || ms->tile_c || ms->tile_h || ms->tile_w;
    cv->pair = 0;
    if (cv->vw == 16 && cv->cout % 8 == 0 && !hinted && cv->k <= 20 && wo >= 2) {
        int pmax = 29 - cv->k, nb = (wo + 2 * pmax - 1) / (2 * pmax);
        int tw2 = 2 * ((wo + 2 * nb - 1) / (2 * nb));
        cv->pair = 1;
        cv->tc = 8;
        cv->th = 1;
        cv->tw = tw2 > wo ? wo : tw2;
    }
#undef HINT
    /* weight gradient block: the most accumulators within EM_REGS, weighted by how well the
     * blocks tile the channels */
    int nk = kx_chunks(cv->k, cv->vw, widths);
    double best = -1;
    cv->cb = cv->tco = 1;
    for (int t = 1; t <= cv->cout; t++)
        for (int c = 1; c <= cv->cin; c++) {
            if (t * c * nk > EM_REGS) continue;
            double ut = (double)cv->cout / (((cv->cout + t - 1) / t) * t);
            double uc = (double)cv->cin / (((cv->cin + c - 1) / c) * c);
            double sc = t * c * nk * ut * uc;
            if (sc > best + 1e-9) { best = sc; cv->tco = t; cv->cb = c; }
        }
}

void em_conv_init(em *E, int li, em_conv *cv, const char *name, const char *dwname, int cin, int hin, int win,
                  int cout, int k)
{
    memset(cv, 0, sizeof *cv);
    snprintf(cv->name, sizeof cv->name, "%s", name);
    snprintf(cv->dwname, sizeof cv->dwname, "%s", dwname ? dwname : "");
    cv->cin = cin; cv->hin = hin; cv->win = win; cv->cout = cout; cv->k = k;
    em_conv_config(E, li, cv);
}

static const char *vtype(int w)
{
    return w == 16 ? "rcg_v16" : w == 8 ? "rcg_v8" : w == 4 ? "rcg_v4" : "float";
}

/* ---------------------------------------------------------------- forward */

/* Forward chunks of a block row of w outputs: full vectors, then one partial vector (masked
 * load, exact reads) for the remainder, so every FMA of a tap shares one weight broadcast. */
static int fwd_chunks(int w, int vw, int *valid)
{
    int n = 0;
    while (w > 0) { valid[n++] = w >= vw ? vw : w; w -= vw; }
    return n;
}

/* Zero padding (cv->zpad = Z): the kernel rows ky for which rows oy0 .. oy0 + bh - 1 all read
 * zero input rows (outside [Z, hin - Z)) are skipped: ky0 <= ky < ky1. Skipped taps add exact
 * zeros, so the sums are unchanged. */
static void ky_range(rc_sb *s, const em_conv *cv, int bh)
{
    int Z = cv->zpad, K = cv->k;
    rc_sb_line(s, "const int ky0 = %d - oy0 > 0 ? %d - oy0 : 0, ky1 = %d - oy0 < %d ? %d - oy0 : %d;", Z - bh + 1,
               Z - bh + 1, cv->hin - Z, K, cv->hin - Z, K);
}

/* Block kernel: accumulators a[o][r][i] (bc channels x bh rows x nch vectors of vw columns, the
 * last vector holding the remainder, read by a masked load) over the input channels and taps.
 * Every loop over the block has constant bounds and is unrolled completely, so each a[o][r][i]
 * and x[r][i] is a register and the chunk conditions fold: the instructions of a hand-unrolled
 * kernel, each accumulator's sum in (c, ky, kx) order. */
static void fwd_block(em *E, const em_conv *cv, int bc, int bh, int bw)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k, vw = cv->vw;
    int va[EM_MAXCHUNK], nch = fwd_chunks(bw, vw, va), last = va[nch - 1];
    const char *vt = vtype(vw);
    rc_sb_line(s, "/* %d output channels x %d rows x %d columns from (o0, oy0, ox0)%s */", bc, bh, bw,
               last < vw ? "; the last vector of a row holds the remaining columns" : "");
    rc_sb_line(s, "static inline void %s_b%d_%d_%d(const float *restrict x, const float *restrict wt, "
               "const float *restrict bias, float *restrict y, int b, const rcg_ctx *cx, int o0, int oy0, int ox0)",
               cv->name, bc, bh, bw);
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)bias; (void)b; (void)cx;");
    rc_sb_line(s, "%s a[%d][%d][%d];", vt, bc, bh, nch);
    rc_sb_line(s, "#pragma GCC unroll %d", bc);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bc);
    rc_sb_line(s, "#pragma GCC unroll %d", bh);
    rc_sb_line(s, "for (int r = 0; r < %d; r++) {", bh);
    rc_sb_line(s, "#pragma GCC unroll %d", nch);
    rc_sb_line(s, "for (int i = 0; i < %d; i++) a[o][r][i] = (%s){0};", nch, vt);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    if (cv->zpad) ky_range(s, cv, bh);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    if (cv->zpad) rc_sb_line(s, "for (int ky = ky0; ky < ky1; ky++) {");
    else rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "const float *xr = x + ((size_t)c * %d + oy0 + ky) * %d + ox0;", cv->hin, cv->win);
    rc_sb_line(s, "const float *wr = wt + (size_t)(c * %d + ky) * %d + o0;", K, K * cv->cout);
    rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) {", K);
    rc_sb_line(s, "%s xv[%d][%d];", vt, bh, nch);
    rc_sb_line(s, "#pragma GCC unroll %d", bh);
    rc_sb_line(s, "for (int r = 0; r < %d; r++) {", bh);
    rc_sb_line(s, "#pragma GCC unroll %d", nch);
    if (last == vw) rc_sb_line(s, "for (int i = 0; i < %d; i++) xv[r][i] = rcg_ld%d(xr + r * %d + i * %d + kx);", nch, vw,
                               cv->win, vw);
    else
        rc_sb_line(s, "for (int i = 0; i < %d; i++) xv[r][i] = i < %d ? rcg_ld%d(xr + r * %d + i * %d + kx) : "
                   "rcg_ldp%d(xr + r * %d + i * %d + kx, %d);", nch, nch - 1, vw, cv->win, vw, vw, cv->win, vw, last);
    rc_sb_line(s, "}");
    rc_sb_line(s, "#pragma GCC unroll %d", bc);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bc);
    rc_sb_line(s, "const float w = wr[kx * %d + o];", cv->cout);
    rc_sb_line(s, "#pragma GCC unroll %d", bh);
    rc_sb_line(s, "for (int r = 0; r < %d; r++) {", bh);
    rc_sb_line(s, "#pragma GCC unroll %d", nch);
    rc_sb_line(s, "for (int i = 0; i < %d; i++) a[o][r][i] += w * xv[r][i];", nch);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    /* epilogue: spill the block row by row and run the fused elementwise chain */
    rc_sb_line(s, "#pragma GCC unroll %d", bc);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bc);
    rc_sb_line(s, "#pragma GCC unroll %d", bh);
    rc_sb_line(s, "for (int r = 0; r < %d; r++) {", bh);
    rc_sb_line(s, "float t[%d];", nch * vw);
    rc_sb_line(s, "#pragma GCC unroll %d", nch);
    rc_sb_line(s, "for (int i = 0; i < %d; i++) rcg_st%d(t + i * %d, a[o][r][i]);", nch, vw, vw);
    rc_sb_line(s, "const int c = o0 + o;");
    rc_sb_line(s, "float *yr = y + ((size_t)c * %d + oy0 + r) * %d + ox0;", ho, wo);
    rc_sb_line(s, "for (int j = 0; j < %d; j++) {", bw);
    rc_sb_line(s, "float v = t[j]%s;", cv->has_bias ? " + bias[c]" : "");
    if (cv->epi) {
        char f[128];
        snprintf(f, sizeof f, "((c * %d + oy0 + r) * %d + ox0 + j)", ho, wo);
        cv->epi(E, s, cv->epi_ctx, "b", "c", f);
    }
    rc_sb_line(s, "yr[j] = v;");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

static void fwd_cols(rc_sb *s, const em_conv *cv, int bc, int bh)
{
    int wo = cv->win - cv->k + 1, nxf = wo / cv->tw, rx = wo % cv->tw;
    const char *args = "x, wt, bias, y, b, cx, o0, oy0";
    if (nxf == 1) rc_sb_line(s, "%s_b%d_%d_%d(%s, 0);", cv->name, bc, bh, cv->tw, args);
    else if (nxf > 1)
        rc_sb_line(s, "for (int ox0 = 0; ox0 < %d; ox0 += %d) %s_b%d_%d_%d(%s, ox0);", nxf * cv->tw, cv->tw,
                   cv->name, bc, bh, cv->tw, args);
    if (rx) rc_sb_line(s, "%s_b%d_%d_%d(%s, %d);", cv->name, bc, bh, rx, args, nxf * cv->tw);
}

static void fwd_rows(rc_sb *s, const em_conv *cv, int bc)
{
    int ho = cv->hin - cv->k + 1, nyf = ho / cv->th, ry = ho % cv->th;
    if (nyf) {
        rc_sb_line(s, "for (int oy0 = 0; oy0 < %d; oy0 += %d) {", nyf * cv->th, cv->th);
        fwd_cols(s, cv, bc, cv->th);
        rc_sb_line(s, "}");
    }
    if (ry) {
        rc_sb_line(s, "{");
        rc_sb_line(s, "const int oy0 = %d;", nyf * cv->th);
        fwd_cols(s, cv, bc, ry);
        rc_sb_line(s, "}");
    }
}

/* Pair form, channel chunks: when a block's weights ([cin][k][k] vectors for 8 channels) do not
 * fit in half the L1 cache they would come from L2 for every block; then the input channels go
 * in chunks of `cc` (weights of a chunk <= 16 KiB), each chunk sweeping all blocks, and the
 * accumulators of a block are kept between chunks in a per-call scratch (lanes as in
 * registers). The channels are still summed in order: the same bits as without chunks.
 * Returns cc (cin: no chunks). */
static int pair_chunk(const em_conv *cv)
{
    int K = cv->k, ho = cv->hin - K + 1, wo = cv->win - K + 1;
    int cc = 16384 / (K * K * 64);
    if (cc < 1) cc = 1;
    if (cc >= cv->cin || (size_t)ho * ((wo + 1) / 2) * 16 > 32768) return cv->cin;
    return cc;
}

/* Pair form block: bw columns (odd bw: the last lane pair holds one valid column). The k weight
 * vectors of a kernel row stay in registers; accumulator a<p> gets its k taps from the
 * broadcasts xb = (x[j], x[j + 1]), j = 2p .. 2p + k - 1. In j order only about k/2
 * accumulators are live at a time, too few to cover the FMA latency (4 cycles x 2 ports), so
 * the accumulators are split into two halves ("waves") whose steps are interleaved: about k
 * independent FMAs per step; each accumulator still sums its taps in kx order. */
static void fwd_block_pair(em *E, const em_conv *cv, int bw, int xc)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k, nob = cv->cout / 8, npt = (wo + 1) / 2;
    int P = (bw + 1) / 2, nw = P >= 2 ? 2 : 1, p0[3] = {0, (P + 1) / 2, P}, cc = pair_chunk(cv);
    if (nw == 1) p0[1] = P;
    /* zero padding: the block at column xc (>= 0, then ox0 == xc) reads nonzero input columns
     * xlo <= j < xhi only; a broadcast step wholly outside is skipped */
    int xlo = xc >= 0 ? cv->zpad - xc : -K, xhi = xc >= 0 ? cv->win - cv->zpad - xc : bw + 2 * K;
    char fn[96];
    if (xc >= 0) snprintf(fn, sizeof fn, "%s_p%d_x%d", cv->name, bw, xc);
    else snprintf(fn, sizeof fn, "%s_p%d", cv->name, bw);
    rc_sb_line(s, "/* pair form: 8 channels x %d columns from (o0, oy0, ox0); lanes (channel, column parity)%s%s */", bw,
               cc < cv->cin ? "; input channels c0 .. c0 + cc - 1, partial sums kept in part" : "",
               cv->zpad ? "; taps on the zero border skipped" : "");
    rc_sb_line(s, "static inline void %s(const float *restrict x, const float *restrict wt, "
               "const float *restrict bias, float *restrict y, int b, const rcg_ctx *cx, int o0, int oy0, int ox0%s)",
               fn, cc < cv->cin ? ", int c0, float *restrict part" : "");
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)bias; (void)b; (void)cx;");
    if (cv->zpad) ky_range(s, cv, 1);
    rc_sb_line(s, "rcg_v16 a[%d];", P);
    rc_sb_line(s, "#pragma GCC unroll %d", P);
    rc_sb_line(s, "for (int p = 0; p < %d; p++) a[p] = (rcg_v16){0};", P);
    if (cc < cv->cin) {
        rc_sb_line(s, "float *restrict pp = part + ((size_t)oy0 * %d + ox0 / 2) * 16;", npt);
        rc_sb_line(s, "const int c1 = c0 + %d < %d ? c0 + %d : %d;", cc, cv->cin, cc, cv->cin);
        rc_sb_line(s, "if (c0 > 0) {");
        rc_sb_line(s, "#pragma GCC unroll %d", P);
        rc_sb_line(s, "for (int p = 0; p < %d; p++) a[p] = rcg_ld16(pp + 16 * p);", P);
        rc_sb_line(s, "}");
        rc_sb_line(s, "for (int c = c0; c < c1; c++) {");
    } else {
        rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    }
    if (cv->zpad) rc_sb_line(s, "for (int ky = ky0; ky < ky1; ky++) {");
    else rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "const float *xr = x + ((size_t)c * %d + oy0 + ky) * %d + ox0;", cv->hin, cv->win);
    rc_sb_line(s, "const float *wr = wt + ((size_t)(c * %d + ky) * %d + o0 / 8) * 16;", K, K * nob);
    rc_sb_line(s, "rcg_v16 w[%d];", K);
    rc_sb_line(s, "#pragma GCC unroll %d", K);
    rc_sb_line(s, "for (int k = 0; k < %d; k++) w[k] = rcg_ld16(wr + %d * k);", K, nob * 16);
    /* Step i of wave v broadcasts input columns j, j + 1 (j = j0[v] + i, up to je[v]) into the
     * accumulators of that wave's pairs p with 0 <= j - 2p < K (tap kx = j - 2p). Every loop has
     * constant bounds and is unrolled completely, so each a[p] and w[k] is a register and the
     * conditions fold away: the same instructions as a hand-unrolled kernel, in kx order per
     * accumulator. */
    int j0[2] = {0, 0}, je[2] = {-1, -1}, ni = 0;
    for (int w = 0; w < nw; w++) {
        int n = 0;
        for (int j = 2 * p0[w]; j <= 2 * (p0[w + 1] - 1) + K - 1; j++) {
            /* the pair reads x[j + 1]: past the needed columns only for an odd block's last pair;
             * with zero padding a step that reads only the border is skipped */
            int single = j + 1 > bw + K - 2;
            if (j >= xhi || j + !single < xlo) continue;
            if (n == 0) j0[w] = j;
            else if (j != je[w] + 1) { em_fail(E, "%s: pair form: skipped steps inside a wave", cv->name); return; }
            je[w] = j;
            n++;
        }
        if (n > ni) ni = n;
    }
    rc_sb_line(s, "#pragma GCC unroll %d", ni);
    rc_sb_line(s, "for (int i = 0; i < %d; i++) {", ni);
    rc_sb_line(s, "#pragma GCC unroll %d", nw);
    if (nw == 2)
        rc_sb_line(s, "for (int v = 0; v < 2; v++) {   /* wave v: pairs %d .. %d, then %d .. %d */", p0[0], p0[1] - 1,
                   p0[1], p0[2] - 1);
    else rc_sb_line(s, "for (int v = 0; v < 1; v++) {   /* one wave: pairs 0 .. %d */", P - 1);
    rc_sb_line(s, "const int j = (v ? %d : %d) + i;   /* broadcast columns j, j + 1 */", j0[1], j0[0]);
    rc_sb_line(s, "if (j > (v ? %d : %d)) continue;", je[1], je[0]);
    /* the pair reads x[j + 1]: past the needed columns only for an odd block's last pair */
    if (bw % 2) rc_sb_line(s, "const rcg_v16 xb = j + 1 > %d ? rcg_bc1(xr + j) : rcg_bc2(xr + j);", bw + K - 2);
    else rc_sb_line(s, "const rcg_v16 xb = rcg_bc2(xr + j);");
    rc_sb_line(s, "#pragma GCC unroll %d", P);
    rc_sb_line(s, "for (int p = 0; p < %d; p++)", P);
    if (nw == 2)
        rc_sb_line(s, "    if ((v ? p >= %d : p < %d) && j - 2 * p >= 0 && j - 2 * p < %d) a[p] += w[j - 2 * p] * xb;",
                   p0[1], p0[1], K);
    else rc_sb_line(s, "    if (j - 2 * p >= 0 && j - 2 * p < %d) a[p] += w[j - 2 * p] * xb;", K);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    if (cc < cv->cin) {
        rc_sb_line(s, "if (c1 < %d) {", cv->cin);
        rc_sb_line(s, "#pragma GCC unroll %d", P);
        rc_sb_line(s, "for (int p = 0; p < %d; p++) rcg_st16(pp + 16 * p, a[p]);", P);
        rc_sb_line(s, "return;");
        rc_sb_line(s, "}");
    }
    /* epilogue: row o of the block is the 64-bit lane o of every pair vector; copied out to a
     * contiguous row first, so that the elementwise chain runs over unit-stride data */
    rc_sb_line(s, "float t[%d];", P * 16);
    rc_sb_line(s, "#pragma GCC unroll %d", P);
    rc_sb_line(s, "for (int p = 0; p < %d; p++) rcg_st16(t + 16 * p, a[p]);", P);
    rc_sb_line(s, "for (int o = 0; o < 8; o++) {");
    rc_sb_line(s, "const int c = o0 + o;");
    rc_sb_line(s, "float r[%d];", 2 * P);
    rc_sb_line(s, "for (int q = 0; q < %d; q++) memcpy(r + 2 * q, t + q * 16 + 2 * o, 2 * sizeof(float));", P);
    rc_sb_line(s, "float *yr = y + ((size_t)c * %d + oy0) * %d + ox0;", ho, wo);
    rc_sb_line(s, "for (int j = 0; j < %d; j++) {", bw);
    rc_sb_line(s, "float v = r[j]%s;", cv->has_bias ? " + bias[c]" : "");
    if (cv->epi) {
        char f[128];
        snprintf(f, sizeof f, "((c * %d + oy0) * %d + ox0 + j)", ho, wo);
        cv->epi(E, s, cv->epi_ctx, "b", "c", f);
    }
    rc_sb_line(s, "yr[j] = v;");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

static void fwd_pair(em *E, const em_conv *cv)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, cc = pair_chunk(cv);
    int nxf = wo / cv->tw, rx = wo % cv->tw;
    rc_sb_line(s, "/* %s: conv %dx%dx%d -> %dx%dx%d, kernel %d; pair form, blocks of 8 ch x %d cols", cv->name,
               cv->cin, cv->hin, cv->win, cv->cout, ho, wo, cv->k, cv->tw);
    if (cc < cv->cin) rc_sb_line(s, " * input channels in chunks of %d (their weights stay in L1) */", cc);
    else rc_sb_line(s, " */");
    if (cv->zpad) {   /* one block function per column position: the skipped steps differ */
        for (int i = 0; i < nxf; i++) fwd_block_pair(E, cv, cv->tw, i * cv->tw);
        if (rx) fwd_block_pair(E, cv, rx, nxf * cv->tw);
    } else {
        fwd_block_pair(E, cv, cv->tw, -1);
        if (rx) fwd_block_pair(E, cv, rx, -1);
    }
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict wt, const float *restrict bias, "
               "float *restrict y, int b, const rcg_ctx *cx)", cv->name);
    rc_sb_line(s, "{");
    const char *args = "x, wt, bias, y, b, cx, o0, oy0", *ca = "";
    if (cc < cv->cin) {
        rc_sb_line(s, "float part[%d] __attribute__((aligned(64)));   /* partial sums [oy][pair][16] */",
                   ho * ((wo + 1) / 2) * 16);
        ca = ", c0, part";
    }
    rc_sb_line(s, "for (int o0 = 0; o0 < %d; o0 += 8) {", cv->cout);
    if (cc < cv->cin) rc_sb_line(s, "for (int c0 = 0; c0 < %d; c0 += %d) {", cv->cin, cc);
    rc_sb_line(s, "for (int oy0 = 0; oy0 < %d; oy0++) {", ho);
    if (cv->zpad) {
        for (int i = 0; i < nxf; i++) rc_sb_line(s, "%s_p%d_x%d(%s, %d%s);", cv->name, cv->tw, i * cv->tw, args, i * cv->tw, ca);
        if (rx) rc_sb_line(s, "%s_p%d_x%d(%s, %d%s);", cv->name, rx, nxf * cv->tw, args, nxf * cv->tw, ca);
    } else {
        if (nxf == 1) rc_sb_line(s, "%s_p%d(%s, 0%s);", cv->name, cv->tw, args, ca);
        else rc_sb_line(s, "for (int ox0 = 0; ox0 < %d; ox0 += %d) %s_p%d(%s, ox0%s);", nxf * cv->tw, cv->tw, cv->name,
                        cv->tw, args, ca);
        if (rx) rc_sb_line(s, "%s_p%d(%s, %d%s);", cv->name, rx, args, nxf * cv->tw, ca);
    }
    rc_sb_line(s, "}");
    if (cc < cv->cin) rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

size_t em_conv_prep_floats(const em_conv *cv)
{
    size_t n = (size_t)cv->cin * cv->k * cv->k * cv->cout;
    return cv->pair ? 2 * n : n;
}

void em_conv_prep(rc_sb *s, const em_conv *cv, const char *src, const char *dst, const char *scale, int flip)
{
    int K = cv->k;
    rc_sb_line(s, "{ /* %s weights: %s */", cv->name, cv->pair ? "[c][ky][kx][o/8][(o%8)*2 + 0|1]" : "[c][ky][kx][o]");
    rc_sb_line(s, "const float *ws_ = %s;", src);
    rc_sb_line(s, "float *wt_ = %s;", dst);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", cv->cout);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) {", K);
    if (flip)
        rc_sb_line(s, "const float v = ws_[(((size_t)c * %d + o) * %d + %d - ky) * %d + %d - kx]%s%s%s;", cv->cout, K,
                   K - 1, K, K - 1, scale ? " * " : "", scale ? scale : "", scale ? "[o]" : "");
    else
        rc_sb_line(s, "const float v = ws_[(((size_t)o * %d + c) * %d + ky) * %d + kx]%s%s%s;", cv->cin, K, K,
                   scale ? " * " : "", scale ? scale : "", scale ? "[o]" : "");
    if (cv->pair) {
        rc_sb_line(s, "float *d_ = wt_ + (((size_t)(c * %d + ky) * %d + kx) * %d + o / 8) * 16 + (o %% 8) * 2;", K, K,
                   cv->cout / 8);
        rc_sb_line(s, "d_[0] = v;");
        rc_sb_line(s, "d_[1] = v;");
    } else {
        rc_sb_line(s, "wt_[((size_t)(c * %d + ky) * %d + kx) * %d + o] = v;", K, K, cv->cout);
    }
    for (int q = 0; q < 5; q++) rc_sb_line(s, "}");
}

void em_conv_fwd(em *E, const em_conv *cv)
{
    if (cv->pair) { fwd_pair(E, cv); return; }
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1;
    int nof = cv->cout / cv->tc, rc = cv->cout % cv->tc;
    int nyf = ho / cv->th, ry = ho % cv->th, nxf = wo / cv->tw, rx = wo % cv->tw;
    int bcs[2] = {cv->tc, rc}, bhs[2] = {cv->th, ry}, bws[2] = {cv->tw, rx};
    int has[3][2] = {{nof > 0, rc > 0}, {nyf > 0, ry > 0}, {nxf > 0, rx > 0}};
    rc_sb_line(s, "/* %s: conv %dx%dx%d -> %dx%dx%d, kernel %d; block %d ch x %d rows x %d cols, "
               "vector %d */", cv->name, cv->cin, cv->hin, cv->win, cv->cout, ho, wo, cv->k, cv->tc,
               cv->th, cv->tw, cv->vw);
    for (int a = 0; a < 2; a++)
        for (int bq = 0; bq < 2; bq++)
            for (int c = 0; c < 2; c++)
                if (has[0][a] && has[1][bq] && has[2][c]) fwd_block(E, cv, bcs[a], bhs[bq], bws[c]);
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict wt, const float *restrict bias, "
               "float *restrict y, int b, const rcg_ctx *cx)", cv->name);
    rc_sb_line(s, "{");
    if (nof) {
        rc_sb_line(s, "for (int o0 = 0; o0 < %d; o0 += %d) {", nof * cv->tc, cv->tc);
        fwd_rows(s, cv, cv->tc);
        rc_sb_line(s, "}");
    }
    if (rc) {
        rc_sb_line(s, "{");
        rc_sb_line(s, "const int o0 = %d;", nof * cv->tc);
        fwd_rows(s, cv, rc);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

/* ---------------------------------------------------------------- weight gradient */

/* One output column ox (peel_from >= 0: ox >= peel_from, near the row's end, where the chunk
 * loads are masked to the row): x chunk vectors of every input channel, then each output
 * channel's gradient broadcast into the block's accumulators, in (o, c, chunk) order. */
static void dw_taps(rc_sb *s, const em_conv *cv, int bcb, int bto, int nk, const int *kw, const int *koff,
                    int peel_from)
{
    for (int k = 0; k < nk; k++) rc_sb_line(s, "%s x%d[%d];", vtype(kw[k]), k, bcb);
    rc_sb_line(s, "#pragma GCC unroll %d", bcb);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", bcb);
    for (int k = 0; k < nk; k++) {
        int n = cv->win - (peel_from + koff[k]);   /* valid columns at the first peeled ox */
        if (peel_from < 0 || n >= kw[k]) rc_sb_line(s, "x%d[c] = rcg_ld%d(xr[c] + ox + %d);", k, kw[k], koff[k]);
        else
            rc_sb_line(s, "x%d[c] = rcg_ldp%d(xr[c] + ox + %d, %d - ox < %d ? %d - ox : %d);", k, kw[k], koff[k],
                       cv->win - koff[k], kw[k], cv->win - koff[k], kw[k]);
    }
    rc_sb_line(s, "}");
    rc_sb_line(s, "#pragma GCC unroll %d", bto);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bto);
    rc_sb_line(s, "const float gv = gr[o][ox];");
    rc_sb_line(s, "#pragma GCC unroll %d", bcb);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", bcb);
    for (int k = 0; k < nk; k++) rc_sb_line(s, "a%d[o][c] += gv * x%d[c];", k, k);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

/* Block kernel: accumulators a<chunk>[o][c] (bto output x bcb input channels, one array per kx
 * chunk of the kernel row) over all output positions; constant-bound loops unrolled
 * completely, so the arrays are registers, as in the forward block. */
static void dw_block(em *E, const em_conv *cv, int bcb, int bto)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k;
    int kw[EM_MAXCHUNK], nk = kx_chunks(K, cv->vw, kw), koff[EM_MAXCHUNK], kv = 0;
    for (int i = 0; i < nk; i++) { koff[i] = kv; kv += kw[i]; }
    int peel = kv - K < wo ? kv - K : wo;
    rc_sb_line(s, "static inline void %s_b%d_%d(const float *restrict x, const float *restrict g, "
               "float *restrict acc, int c0, int ky, int o0)", cv->dwname, bcb, bto);
    rc_sb_line(s, "{");
    for (int k = 0; k < nk; k++) rc_sb_line(s, "%s a%d[%d][%d];", vtype(kw[k]), k, bto, bcb);
    rc_sb_line(s, "#pragma GCC unroll %d", bto);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bto);
    rc_sb_line(s, "#pragma GCC unroll %d", bcb);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", bcb);
    for (int k = 0; k < nk; k++) rc_sb_line(s, "a%d[o][c] = (%s){0};", k, vtype(kw[k]));
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "for (int oy = 0; oy < %d; oy++) {", ho);
    rc_sb_line(s, "const float *xr[%d], *gr[%d];", bcb, bto);
    rc_sb_line(s, "#pragma GCC unroll %d", bcb);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) xr[c] = x + ((size_t)(c0 + c) * %d + oy + ky) * %d;", bcb, cv->hin, cv->win);
    rc_sb_line(s, "#pragma GCC unroll %d", bto);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) gr[o] = g + ((size_t)(o0 + o) * %d + oy) * %d;", bto, ho, wo);
    if (wo - peel > 0) {
        rc_sb_line(s, "for (int ox = 0; ox < %d; ox++) {", wo - peel);
        dw_taps(s, cv, bcb, bto, nk, kw, koff, -1);
        rc_sb_line(s, "}");
    }
    if (peel > 0) {
        rc_sb_line(s, "for (int ox = %d; ox < %d; ox++) {   /* the last columns: loads masked to the row */", wo - peel, wo);
        dw_taps(s, cv, bcb, bto, nk, kw, koff, wo - peel);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_line(s, "#pragma GCC unroll %d", bto);
    rc_sb_line(s, "for (int o = 0; o < %d; o++) {", bto);
    rc_sb_line(s, "#pragma GCC unroll %d", bcb);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", bcb);
    rc_sb_line(s, "float *p = acc + (((size_t)(c0 + c) * %d + ky) * %d + o0 + o) * %d;", K, cv->cout, kv);
    for (int k = 0; k < nk; k++) rc_sb_line(s, "rcg_st%d(p + %d, rcg_ld%d(p + %d) + a%d[o][c]);", kw[k], koff[k], kw[k], koff[k], k);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

static void dw_outs(rc_sb *s, const em_conv *cv, int bcb)
{
    int nof = cv->cout / cv->tco, ro = cv->cout % cv->tco;
    if (nof == 1) rc_sb_line(s, "%s_b%d_%d(x, g, acc, c0, ky, 0);", cv->dwname, bcb, cv->tco);
    else if (nof > 1)
        rc_sb_line(s, "for (int o0 = 0; o0 < %d; o0 += %d) %s_b%d_%d(x, g, acc, c0, ky, o0);", nof * cv->tco,
                   cv->tco, cv->dwname, bcb, cv->tco);
    if (ro) rc_sb_line(s, "%s_b%d_%d(x, g, acc, c0, ky, %d);", cv->dwname, bcb, ro, nof * cv->tco);
}

/* Pair form: the rows oy of one column block of bw columns starting at pair q0 (a name or a
 * number): gradient vectors g<q> = lanes (o % 8, column parity) of columns 2 (q0 + q) + 0|1,
 * broadcasts xb = (x[j], x[j + 1]) of the input row; accumulator a<kx> gets g<q> * xb at
 * j = 2q + kx. */
static void dw_pair_block(rc_sb *s, const em_conv *cv, int bw, const char *q0)
{
    int K = cv->k, ho = cv->hin - K + 1, wo = cv->win - K + 1, P = (bw + 1) / 2, npt = (wo + 1) / 2;
    rc_sb_line(s, "for (int oy = 0; oy < %d; oy++) {", ho);
    rc_sb_line(s, "const float *xr = x + ((size_t)c * %d + oy + ky) * %d + 2 * %s;", cv->hin, cv->win, q0);
    rc_sb_line(s, "const float *gr = gt + ((size_t)(ob * %d + oy) * %d + %s) * 16;", ho, npt, q0);
    rc_sb_line(s, "rcg_v16 gq[%d];", P);
    rc_sb_line(s, "#pragma GCC unroll %d", P);
    rc_sb_line(s, "for (int q = 0; q < %d; q++) gq[q] = rcg_ld16(gr + 16 * q);", P);
    /* constant bounds, unrolled completely: a[kx] and gq[q] are registers, the condition folds */
    rc_sb_line(s, "#pragma GCC unroll %d", 2 * (P - 1) + K);
    rc_sb_line(s, "for (int j = 0; j < %d; j++) {", 2 * (P - 1) + K);
    /* x[j + 1] is past the needed columns only for an odd block's last pair (its lane is 0) */
    if (bw % 2) rc_sb_line(s, "const rcg_v16 xb = j + 1 > %d ? rcg_bc1(xr + j) : rcg_bc2(xr + j);", bw + K - 2);
    else rc_sb_line(s, "const rcg_v16 xb = rcg_bc2(xr + j);");
    rc_sb_line(s, "#pragma GCC unroll %d", P);
    rc_sb_line(s, "for (int q = 0; q < %d; q++)", P);
    rc_sb_line(s, "    if (j - 2 * q >= 0 && j - 2 * q < %d) a[j - 2 * q] += gq[q] * xb;", K);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

static void dw_pair(em *E, const em_conv *cv, int tw)
{
    rc_sb *s = &E->k;
    int K = cv->k, ho = cv->hin - K + 1, wo = cv->win - K + 1, nob = cv->cout / 8, npt = (wo + 1) / 2;
    int nxf = wo / tw, rx = wo % tw;
    rc_sb_line(s, "/* %s: weight gradient of one sample, pair form: lanes (o %% 8, column parity), %d kx "
               "accumulators, blocks of %d columns; acc [%d][%d][%d][%d] */", cv->dwname, K, tw, cv->cin, K, cv->cout, K);
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict g, float *restrict acc)", cv->dwname);
    rc_sb_line(s, "{");
    rc_sb_line(s, "/* gt[o / 8][oy][pair q][(o %% 8) * 2 + parity] = g[o][oy][2q + parity], 0 past the row */");
    rc_sb_line(s, "float gt[%d] __attribute__((aligned(64)));", nob * ho * npt * 16);
    rc_sb_line(s, "for (int ob = 0; ob < %d; ob++)", nob);
    rc_sb_line(s, "for (int oy = 0; oy < %d; oy++)", ho);
    rc_sb_line(s, "for (int q = 0; q < %d; q++)", npt);
    rc_sb_line(s, "for (int l = 0; l < 16; l++) {");
    rc_sb_line(s, "const int ox = 2 * q + (l & 1);");
    rc_sb_line(s, "gt[((ob * %d + oy) * %d + q) * 16 + l] = ox < %d ? g[((size_t)(ob * 8 + (l >> 1)) * %d + oy) * %d + ox] : 0.0f;",
               ho, npt, wo, ho, wo);
    rc_sb_line(s, "}");
    rc_sb_line(s, "for (int ob = 0; ob < %d; ob++) {", nob);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "rcg_v16 a[%d];", K);
    rc_sb_line(s, "#pragma GCC unroll %d", K);
    rc_sb_line(s, "for (int k = 0; k < %d; k++) a[k] = (rcg_v16){0};", K);
    if (nxf == 1) {
        rc_sb_line(s, "{");
        dw_pair_block(s, cv, tw, "0");
        rc_sb_line(s, "}");
    } else {
        rc_sb_line(s, "for (int q0 = 0; q0 < %d; q0 += %d) {", nxf * tw / 2, tw / 2);
        dw_pair_block(s, cv, tw, "q0");
        rc_sb_line(s, "}");
    }
    if (rx) {
        char q0[16];
        snprintf(q0, sizeof q0, "%d", nxf * tw / 2);
        rc_sb_line(s, "{");
        dw_pair_block(s, cv, rx, q0);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "float t[%d];", K * 16);
    rc_sb_line(s, "#pragma GCC unroll %d", K);
    rc_sb_line(s, "for (int k = 0; k < %d; k++) rcg_st16(t + 16 * k, a[k]);", K);
    rc_sb_line(s, "float *p = acc + ((size_t)(c * %d + ky) * %d + ob * 8) * %d;", K, cv->cout, K);
    rc_sb_line(s, "for (int o = 0; o < 8; o++)");
    rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) p[o * %d + kx] += t[kx * 16 + 2 * o] + t[kx * 16 + 2 * o + 1];", K, K);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

void em_conv_dw(em *E, const em_conv *cv)
{
    int tw = dw_pair_tw(cv);
    if (tw) { dw_pair(E, cv, tw); return; }
    rc_sb *s = &E->k;
    int ncf = cv->cin / cv->cb, rcn = cv->cin % cv->cb;
    int nof = cv->cout / cv->tco, ro = cv->cout % cv->tco;
    int cbs[2] = {cv->cb, rcn}, tos[2] = {cv->tco, ro};
    int hc[2] = {ncf > 0, rcn > 0}, hoo[2] = {nof > 0, ro > 0};
    rc_sb_line(s, "/* %s: weight gradient of one sample, block %d in x %d out channels, "
               "acc [%d][%d][%d][%d] */", cv->dwname, cv->cb, cv->tco, cv->cin, cv->k, cv->cout, em_conv_kv(cv));
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 2; c++)
            if (hc[a] && hoo[c]) dw_block(E, cv, cbs[a], tos[c]);
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict g, float *restrict acc)", cv->dwname);
    rc_sb_line(s, "{");
    if (ncf) {
        rc_sb_line(s, "for (int c0 = 0; c0 < %d; c0 += %d) {", ncf * cv->cb, cv->cb);
        rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", cv->k);
        dw_outs(s, cv, cv->cb);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
    }
    if (rcn) {
        rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", cv->k);
        rc_sb_line(s, "const int c0 = %d;", ncf * cv->cb);
        dw_outs(s, cv, rcn);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}
