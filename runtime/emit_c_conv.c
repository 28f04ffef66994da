/* emit_c_conv.c — generated direct-convolution kernels for the C target.
 *
 * Forward (also used for the input gradient, as a correlation of the zero-padded output
 * gradient with the flipped, transposed kernel): per sample, register blocks of
 * tc output channels x th rows x tw columns; the columns are split into vector chunks
 * (16/8/4 floats, then scalars) so every load is exact (never past a row's end, so never past
 * the caller's frame buffer). Weights are pre-transposed to [cin][k][k][cout], so the tc
 * broadcasts of one tap are adjacent. Inner loop: one unaligned load per row chunk, tc
 * broadcast-FMAs per load. With constant trip counts the C compiler keeps every accumulator in
 * a register and unrolls.
 * Weight gradient: per sample, vectorized over the kernel columns kx (one chunk for k <= 16):
 * acc[o][c][kx..] += g[o][oy][ox] * x[c][oy+ky][ox+kx..] for a block of tco outputs x cb
 * inputs; the last kv-k columns of each row are peeled with partial loads (exact reads again).
 * Accumulators go to a per-part buffer [cin][k][cout][kv], reduced later in a fixed order.
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

int em_conv_kv(const em_conv *cv)
{
    int w[EM_MAXCHUNK], n = kx_chunks(cv->k, cv->vw, w), kv = 0;
    for (int i = 0; i < n; i++) kv += w[i];
    return kv;
}

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
     * registers (accumulators + k weights + 1 broadcast <= 30); only without blocking hints */
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

static void fwd_block(em *E, const em_conv *cv, int bc, int bh, int bw)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k, vw = cv->vw;
    int va[EM_MAXCHUNK], nch = fwd_chunks(bw, vw, va);
    const char *vt = vtype(vw);
    rc_sb_line(s, "/* %d output channels x %d rows x %d columns from (o0, oy0, ox0) */", bc, bh, bw);
    rc_sb_line(s, "static inline void %s_b%d_%d_%d(const float *restrict x, const float *restrict wt, "
               "const float *restrict bias, float *restrict y, int b, const rcg_ctx *cx, int o0, int oy0, int ox0)",
               cv->name, bc, bh, bw);
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)bias; (void)b; (void)cx;");
    for (int o = 0; o < bc; o++)
        for (int r = 0; r < bh; r++)
            for (int i = 0; i < nch; i++) rc_sb_line(s, "%s a%d_%d_%d = {0};", vt, o, r, i);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "const float *xr = x + ((size_t)c * %d + oy0 + ky) * %d + ox0;", cv->hin, cv->win);
    rc_sb_line(s, "const float *wr = wt + (size_t)(c * %d + ky) * %d + o0;", K, K * cv->cout);
    rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) {", K);
    for (int r = 0; r < bh; r++)
        for (int i = 0; i < nch; i++) {
            if (va[i] == vw) rc_sb_line(s, "const %s x%d_%d = rcg_ld%d(xr + %d + kx);", vt, r, i, vw, r * cv->win + i * vw);
            else rc_sb_line(s, "const %s x%d_%d = rcg_ldp%d(xr + %d + kx, %d);", vt, r, i, vw, r * cv->win + i * vw, va[i]);
        }
    for (int o = 0; o < bc; o++) {
        rc_sb_line(s, "{");
        rc_sb_line(s, "const float w = wr[kx * %d + %d];", cv->cout, o);
        for (int r = 0; r < bh; r++)
            for (int i = 0; i < nch; i++) rc_sb_line(s, "a%d_%d_%d += w * x%d_%d;", o, r, i, r, i);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    /* epilogue: spill the block row by row and run the fused elementwise chain */
    for (int o = 0; o < bc; o++)
        for (int r = 0; r < bh; r++) {
            rc_sb_line(s, "{");
            rc_sb_line(s, "float t[%d];", nch * vw);
            for (int i = 0; i < nch; i++) rc_sb_line(s, "rcg_st%d(t + %d, a%d_%d_%d);", vw, i * vw, o, r, i);
            rc_sb_line(s, "const int c = o0 + %d;", o);
            rc_sb_line(s, "float *yr = y + ((size_t)c * %d + oy0 + %d) * %d + ox0;", ho, r, wo);
            rc_sb_line(s, "for (int j = 0; j < %d; j++) {", bw);
            rc_sb_line(s, "float v = t[j]%s;", cv->has_bias ? " + bias[c]" : "");
            if (cv->epi) {
                char f[128];
                snprintf(f, sizeof f, "((c * %d + oy0 + %d) * %d + ox0 + j)", ho, r, wo);
                cv->epi(E, s, cv->epi_ctx, "b", "c", f);
            }
            rc_sb_line(s, "yr[j] = v;");
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
        }
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

/* Pair form block: bw columns (odd bw: the last lane pair holds one valid column). */
static void fwd_block_pair(em *E, const em_conv *cv, int bw)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k, nob = cv->cout / 8;
    int P = (bw + 1) / 2;
    rc_sb_line(s, "/* pair form: 8 channels x %d columns from (o0, oy0, ox0); lanes (channel, column parity) */", bw);
    rc_sb_line(s, "static inline void %s_p%d(const float *restrict x, const float *restrict wt, "
               "const float *restrict bias, float *restrict y, int b, const rcg_ctx *cx, int o0, int oy0, int ox0)",
               cv->name, bw);
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)bias; (void)b; (void)cx;");
    for (int p = 0; p < P; p++) rc_sb_line(s, "rcg_v16 a%d = {0};", p);
    rc_sb_line(s, "for (int c = 0; c < %d; c++) {", cv->cin);
    rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "const float *xr = x + ((size_t)c * %d + oy0 + ky) * %d + ox0;", cv->hin, cv->win);
    rc_sb_line(s, "const float *wr = wt + ((size_t)(c * %d + ky) * %d + o0 / 8) * 16;", K, K * nob);
    for (int k = 0; k < K; k++) rc_sb_line(s, "const rcg_v16 w%d = rcg_ld16(wr + %d);", k, k * nob * 16);
    int jmax = 2 * (P - 1) + K - 1;
    for (int j = 0; j <= jmax; j++) {
        int lo = j - (K - 1) > 0 ? (j - (K - 1) + 1) / 2 : 0, hi = j / 2 < P - 1 ? j / 2 : P - 1;
        if (lo > hi) continue;
        /* the pair reads x[j + 1]: past the needed columns only for an odd block's last pair */
        int single = j + 1 > bw + K - 2;
        rc_sb_line(s, "{");
        rc_sb_line(s, "const rcg_v16 xb = rcg_bc%d(xr + %d);", single ? 1 : 2, j);
        for (int p = lo; p <= hi; p++) rc_sb_line(s, "a%d += w%d * xb;", p, j - 2 * p);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
    rc_sb_line(s, "float t[%d];", P * 16);
    for (int p = 0; p < P; p++) rc_sb_line(s, "rcg_st16(t + %d, a%d);", p * 16, p);
    rc_sb_line(s, "for (int o = 0; o < 8; o++) {");
    rc_sb_line(s, "const int c = o0 + o;");
    rc_sb_line(s, "float *yr = y + ((size_t)c * %d + oy0) * %d + ox0;", ho, wo);
    rc_sb_line(s, "for (int j = 0; j < %d; j++) {", bw);
    rc_sb_line(s, "float v = t[(j >> 1) * 16 + o * 2 + (j & 1)]%s;", cv->has_bias ? " + bias[c]" : "");
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
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1;
    int nxf = wo / cv->tw, rx = wo % cv->tw;
    rc_sb_line(s, "/* %s: conv %dx%dx%d -> %dx%dx%d, kernel %d; pair form, blocks of 8 ch x %d cols */", cv->name,
               cv->cin, cv->hin, cv->win, cv->cout, ho, wo, cv->k, cv->tw);
    fwd_block_pair(E, cv, cv->tw);
    if (rx) fwd_block_pair(E, cv, rx);
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict wt, const float *restrict bias, "
               "float *restrict y, int b, const rcg_ctx *cx)", cv->name);
    rc_sb_line(s, "{");
    rc_sb_line(s, "for (int o0 = 0; o0 < %d; o0 += 8) {", cv->cout);
    rc_sb_line(s, "for (int oy0 = 0; oy0 < %d; oy0++) {", ho);
    const char *args = "x, wt, bias, y, b, cx, o0, oy0";
    if (nxf == 1) rc_sb_line(s, "%s_p%d(%s, 0);", cv->name, cv->tw, args);
    else rc_sb_line(s, "for (int ox0 = 0; ox0 < %d; ox0 += %d) %s_p%d(%s, ox0);", nxf * cv->tw, cv->tw, cv->name,
                    cv->tw, args);
    if (rx) rc_sb_line(s, "%s_p%d(%s, %d);", cv->name, rx, args, nxf * cv->tw);
    rc_sb_line(s, "}");
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

static void dw_taps(rc_sb *s, const em_conv *cv, int bcb, int bto, int nk, const int *kw, const int *koff,
                    const char *ox, int peeled_ox)
{
    for (int c = 0; c < bcb; c++)
        for (int k = 0; k < nk; k++) {
            if (peeled_ox < 0)
                rc_sb_line(s, "const %s x%d_%d = rcg_ld%d(xr%d + %s + %d);", vtype(kw[k]), c, k, kw[k], c, ox, koff[k]);
            else {
                int valid = cv->win - (peeled_ox + koff[k]);
                if (valid > kw[k]) valid = kw[k];
                if (valid == kw[k])
                    rc_sb_line(s, "const %s x%d_%d = rcg_ld%d(xr%d + %d);", vtype(kw[k]), c, k, kw[k], c,
                               peeled_ox + koff[k]);
                else
                    rc_sb_line(s, "const %s x%d_%d = rcg_ldp%d(xr%d + %d, %d);", vtype(kw[k]), c, k, kw[k], c,
                               peeled_ox + koff[k], valid);
            }
        }
    for (int o = 0; o < bto; o++) {
        rc_sb_line(s, "{");
        rc_sb_line(s, "const float gv = gr%d[%s];", o, ox);
        for (int c = 0; c < bcb; c++)
            for (int k = 0; k < nk; k++) rc_sb_line(s, "a%d_%d_%d += gv * x%d_%d;", o, c, k, c, k);
        rc_sb_line(s, "}");
    }
}

static void dw_block(em *E, const em_conv *cv, int bcb, int bto)
{
    rc_sb *s = &E->k;
    int ho = cv->hin - cv->k + 1, wo = cv->win - cv->k + 1, K = cv->k;
    int kw[EM_MAXCHUNK], nk = kx_chunks(K, cv->vw, kw), koff[EM_MAXCHUNK], kv = 0;
    for (int i = 0; i < nk; i++) { koff[i] = kv; kv += kw[i]; }
    int peel = kv - K < wo ? kv - K : wo;
    rc_sb_line(s, "static inline void %s_dwb%d_%d(const float *restrict x, const float *restrict g, "
               "float *restrict acc, int c0, int ky, int o0)", cv->name, bcb, bto);
    rc_sb_line(s, "{");
    for (int o = 0; o < bto; o++)
        for (int c = 0; c < bcb; c++)
            for (int k = 0; k < nk; k++) rc_sb_line(s, "%s a%d_%d_%d = {0};", vtype(kw[k]), o, c, k);
    rc_sb_line(s, "for (int oy = 0; oy < %d; oy++) {", ho);
    for (int c = 0; c < bcb; c++)
        rc_sb_line(s, "const float *xr%d = x + ((size_t)(c0 + %d) * %d + oy + ky) * %d;", c, c, cv->hin, cv->win);
    for (int o = 0; o < bto; o++)
        rc_sb_line(s, "const float *gr%d = g + ((size_t)(o0 + %d) * %d + oy) * %d;", o, o, ho, wo);
    if (wo - peel > 0) {
        rc_sb_line(s, "for (int ox = 0; ox < %d; ox++) {", wo - peel);
        dw_taps(s, cv, bcb, bto, nk, kw, koff, "ox", -1);
        rc_sb_line(s, "}");
    }
    for (int ox = wo - peel; ox < wo; ox++) {
        char oxs[16];
        snprintf(oxs, sizeof oxs, "%d", ox);
        rc_sb_line(s, "{ /* ox = %d: partial loads, never past the row */", ox);
        dw_taps(s, cv, bcb, bto, nk, kw, koff, oxs, ox);
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    for (int o = 0; o < bto; o++)
        for (int c = 0; c < bcb; c++)
            for (int k = 0; k < nk; k++) {
                rc_sb_line(s, "{");
                rc_sb_line(s, "float *p = acc + (((size_t)(c0 + %d) * %d + ky) * %d + o0 + %d) * %d + %d;", c, K,
                           cv->cout, o, kv, koff[k]);
                rc_sb_line(s, "rcg_st%d(p, rcg_ld%d(p) + a%d_%d_%d);", kw[k], kw[k], o, c, k);
                rc_sb_line(s, "}");
            }
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

static void dw_outs(rc_sb *s, const em_conv *cv, int bcb)
{
    int nof = cv->cout / cv->tco, ro = cv->cout % cv->tco;
    if (nof == 1) rc_sb_line(s, "%s_dwb%d_%d(x, g, acc, c0, ky, 0);", cv->name, bcb, cv->tco);
    else if (nof > 1)
        rc_sb_line(s, "for (int o0 = 0; o0 < %d; o0 += %d) %s_dwb%d_%d(x, g, acc, c0, ky, o0);", nof * cv->tco,
                   cv->tco, cv->name, bcb, cv->tco);
    if (ro) rc_sb_line(s, "%s_dwb%d_%d(x, g, acc, c0, ky, %d);", cv->name, bcb, ro, nof * cv->tco);
}

void em_conv_dw(em *E, const em_conv *cv)
{
    rc_sb *s = &E->k;
    int ncf = cv->cin / cv->cb, rcn = cv->cin % cv->cb;
    int nof = cv->cout / cv->tco, ro = cv->cout % cv->tco;
    int cbs[2] = {cv->cb, rcn}, tos[2] = {cv->tco, ro};
    int hc[2] = {ncf > 0, rcn > 0}, hoo[2] = {nof > 0, ro > 0};
    rc_sb_line(s, "/* %s_dw: weight gradient of one sample, block %d in x %d out channels, "
               "acc [%d][%d][%d][%d] */", cv->name, cv->cb, cv->tco, cv->cin, cv->k, cv->cout, em_conv_kv(cv));
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 2; c++)
            if (hc[a] && hoo[c]) dw_block(E, cv, cbs[a], tos[c]);
    rc_sb_line(s, "static void %s_dw(const float *restrict x, const float *restrict g, float *restrict acc)", cv->name);
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
