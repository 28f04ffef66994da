/* emit_c_layers.c — C emitter: the producers other than the register-blocked convolutions
 * (emit_c_conv.c): dense, gcconv readout, tiled / locally connected conv and the input copy
 * (per-sample forward kernels with the fused chain epilogue), and every producer's backward
 * (parameter and input gradients), including the per-part weight-gradient loop of the blocked
 * convs and stacked chains. Vocabulary and invariants: emit_c_int.h, emit_c.c.
 */
#include "emit_c_int.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- simple producers */

/* Emit `acc` = the dot product of a K x K x in.c window of x at (ROW, COL) with the kernel at wp;
 * shared by the gcconv readout and the tiled conv forward. */
static void em_window_dot(rc_sb *s, rc_shape in, int K, const char *row, const char *col)
{
    rc_sb_line(s, "float acc = 0.0f;");
    rc_sb_line(s, "for (int ci = 0; ci < %d; ci++) {", in.c);
    rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
    rc_sb_line(s, "const float *xr = x + ((size_t)ci * %d + %s + ky) * %d + %s;", in.h, row, in.w, col);
    rc_sb_line(s, "const float *wr = wp + (ci * %d + ky) * %d;", K, K);
    rc_sb_line(s, "#pragma omp simd reduction(+:acc)");
    rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) acc += wr[kx] * xr[kx];", K);
    rc_sb_line(s, "}");
    rc_sb_line(s, "}");
}

/* Per-sample function NAME(x, w, bias, y, b, cx) for dense, gcconv, tiled conv, input copy;
 * the epilogue runs ops 1..hi in `mode` (skip = folded BN). */
void em_simple_fwd(em *E, const em_plan *PL, const em_grp *G, const char *name, int hi, int mode,
                            int skip, int has_bias)
{
    rc_sb *s = &E->k;
    const rc_ir *ir = E->ir;
    em_epi_chain_ctx ec = {PL, G, 0, hi, mode, skip};
    rc_sb_line(s, "static void %s(const float *restrict x, const float *restrict w, const float *restrict bias, "
               "float *restrict y, int b, const rcg_ctx *cx)", name);
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)w; (void)bias; (void)b; (void)cx;");
    rc_shape in = G->in, o = G->sh;
    if (G->li < 0) {
        rc_sb_line(s, "for (int c = 0; c < %d; c++) {", o.c);
        rc_sb_line(s, "for (int s = 0; s < %d; s++) {", o.h * o.w);
        rc_sb_line(s, "float v = x[c * %d + s];", o.h * o.w);
        char f[64];
        snprintf(f, sizeof f, "(c * %d + s)", o.h * o.w);
        em_epi_chain(E, s, &ec, "b", "c", f);
        rc_sb_line(s, "y[c * %d + s] = v;", o.h * o.w);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_raw(s, "\n", 1);
        return;
    }
    const rc_layer *L = &ir->layers[G->li];
    if (L->kind == RC_LAYER_DENSE) {
        int64_t F = em_shsize(in);
        rc_sb_line(s, "for (int c = 0; c < %d; c++) {", o.c);
        rc_sb_line(s, "const float *wr = w + (size_t)c * %lld;", (long long)F);
        rc_sb_line(s, "float acc = 0.0f;");
        rc_sb_line(s, "#pragma omp simd reduction(+:acc)");
        rc_sb_line(s, "for (int e = 0; e < %lld; e++) acc += wr[e] * x[e];", (long long)F);
        rc_sb_line(s, "float v = acc%s;", has_bias ? " + bias[c]" : "");
        em_epi_chain(E, s, &ec, "b", "c", "c");
        rc_sb_line(s, "y[c] = v;");
        rc_sb_line(s, "}");
    } else if (L->kind == RC_LAYER_GCCONV) {
        int K = L->kernel;
        rc_sb_line(s, "for (int c = 0; c < %d; c++) {", o.c);
        rc_sb_line(s, "const int r0 = cx->cell_pos[2 * c], c0 = cx->cell_pos[2 * c + 1];");
        rc_sb_line(s, "const float *wp = w + (size_t)c * %d;", in.c * K * K);
        em_window_dot(s, in, K, "r0", "c0");
        rc_sb_line(s, "float v = acc%s;", has_bias ? " + bias[c]" : "");
        em_epi_chain(E, s, &ec, "b", "c", "c");
        rc_sb_line(s, "y[c] = v;");
        rc_sb_line(s, "}");
    } else {   /* tiled conv */
        const em_cl *cl = &PL->cl[G->li];
        int K = L->kernel, KK = K * K;
        rc_sb_line(s, "for (int c = 0; c < %d; c++) {", o.c);
        rc_sb_line(s, "for (int oy = 0; oy < %d; oy++) {", o.h);
        rc_sb_line(s, "for (int ox = 0; ox < %d; ox++) {", o.w);
        rc_sb_line(s, "const int ph = (oy %% %d) * %d + ox %% %d;", cl->py, cl->px, cl->px);
        rc_sb_line(s, "const float *wp = w + ((size_t)ph * %d + c) * %d;", o.c, in.c * KK);
        em_window_dot(s, in, K, "oy", "ox");
        if (has_bias) rc_sb_line(s, "float v = acc + bias[ph * %d + c];", o.c);
        else rc_sb_line(s, "float v = acc;");
        char f[96];
        snprintf(f, sizeof f, "((c * %d + oy) * %d + ox)", o.h, o.w);
        em_epi_chain(E, s, &ec, "b", "c", f);
        rc_sb_line(s, "y[%s] = v;", f);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
}

/* Producer backward of group g: parameter gradients from gz (level 0 gradient), and the
 * input gradient into gradient buffer `out` (-1: not needed). */
void em_prod_bwd(em *E, const em_plan *PL, int g, const char *gz, int out)
{
    rc_sb *s = &E->d;
    const rc_ir *ir = E->ir;
    const em_grp *G = &E->g[g];
    int li = G->li;
    if (li < 0) return;
    const rc_layer *L = &ir->layers[li];
    if (L->kind == RC_LAYER_DEF) {
        char dx[96] = "";
        if (out >= 0) snprintf(dx, sizeof dx, "CXW(%s)", em_bufname(E, E->gbuf[out]));
        rc_sb_line(s, "/* layer %d (%s): parameter%s gradients */", li + 1, L->def_kind, out >= 0 ? " and input" : "");
        if (PL->prim[li]) em_prim_call_bwd(E, PL->prim[li], g, gz, out >= 0 ? dx : NULL);
        return;
    }
    char in[160], pw[64], pb[64], o[64] = "";
    em_in_expr(E, g, "b", in, sizeof in);
    em_P(E, li, ".weight", pw);
    em_P(E, li, ".bias", pb);
    if (out >= 0) snprintf(o, sizeof o, "CXW(%s)", em_bufname(E, E->gbuf[out]));
    int64_t SZ = em_shsize(G->sh), INSZ = em_shsize(G->in);
    int K = L->kernel, KK = K * K, CIN = G->in.c;
    rc_sb_line(s, "{ /* layer %d (%s): parameter%s gradients */", li + 1, rc_layer_kind_name(L->kind),
               out >= 0 ? " and input" : "");
    rc_sb_line(s, "const float *gz = %s;", gz);
    if (L->kind == RC_LAYER_DENSE) {
        int U = G->sh.c;
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int f0 = 0; f0 < %lld; f0 += 256) {", (long long)INSZ);
        rc_sb_line(s, "const int nf = %lld - f0 < 256 ? %lld - f0 : 256;", (long long)INSZ, (long long)INSZ);
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *x = %s + f0;", in);
        rc_sb_line(s, "for (int u = 0; u < %d; u++) {", U);
        rc_sb_line(s, "const float gv = gz[(size_t)b * %d + u];", U);
        rc_sb_line(s, "float *dw = cx->grads + %s + (size_t)u * %lld + f0;", pw, (long long)INSZ);
        rc_sb_line(s, "#pragma omp simd");
        rc_sb_line(s, "for (int e = 0; e < nf; e++) dw[e] += gv * x[e];");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        if (L->bias) {
            rc_sb_line(s, "for (int u = 0; u < %d; u++) {", U);
            rc_sb_line(s, "double a = 0;");
            rc_sb_line(s, "for (int b = 0; b < B; b++) a += gz[(size_t)b * %d + u];", U);
            rc_sb_line(s, "cx->grads[%s + u] += (float)a;", pb);
            rc_sb_line(s, "}");
        }
        if (out >= 0) {
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int b = 0; b < B; b++) {");
            rc_sb_line(s, "float *dx = %s + (size_t)b * %lld;", o, (long long)INSZ);
            rc_sb_line(s, "memset(dx, 0, %lld * sizeof(float));", (long long)INSZ);
            rc_sb_line(s, "for (int u = 0; u < %d; u++) {", U);
            rc_sb_line(s, "const float gv = gz[(size_t)b * %d + u];", U);
            rc_sb_line(s, "const float *wr = cx->params + %s + (size_t)u * %lld;", pw, (long long)INSZ);
            rc_sb_line(s, "#pragma omp simd");
            rc_sb_line(s, "for (int e = 0; e < %lld; e++) dx[e] += wr[e] * gv;", (long long)INSZ);
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
        }
    } else if (L->kind == RC_LAYER_GCCONV) {
        int CELLS = G->sh.c;
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int n = 0; n < %d; n++) {", CELLS);
        rc_sb_line(s, "const int r0 = cx->cell_pos[2 * n], c0 = cx->cell_pos[2 * n + 1];");
        rc_sb_line(s, "float *dw = cx->grads + %s + (size_t)n * %d;", pw, CIN * KK);
        rc_sb_line(s, "double db = 0;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float gv = gz[(size_t)b * %d + n];", CELLS);
        rc_sb_line(s, "const float *x = %s;", in);
        rc_sb_line(s, "db += gv;");
        rc_sb_line(s, "for (int ci = 0; ci < %d; ci++) {", CIN);
        rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
        rc_sb_line(s, "const float *xr = x + ((size_t)ci * %d + r0 + ky) * %d + c0;", G->in.h, G->in.w);
        rc_sb_line(s, "float *dr = dw + (ci * %d + ky) * %d;", K, K);
        rc_sb_line(s, "#pragma omp simd");
        rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) dr[kx] += gv * xr[kx];", K);
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        if (L->bias) rc_sb_line(s, "cx->grads[%s + n] += (float)db;", pb);
        else rc_sb_line(s, "(void)db;");
        rc_sb_line(s, "}");
        if (out >= 0) {
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int b = 0; b < B; b++) {");
            rc_sb_line(s, "float *dx = %s + (size_t)b * %lld;", o, (long long)INSZ);
            rc_sb_line(s, "memset(dx, 0, %lld * sizeof(float));", (long long)INSZ);
            rc_sb_line(s, "for (int n = 0; n < %d; n++) {", CELLS);
            rc_sb_line(s, "const int r0 = cx->cell_pos[2 * n], c0 = cx->cell_pos[2 * n + 1];");
            rc_sb_line(s, "const float gv = gz[(size_t)b * %d + n];", CELLS);
            rc_sb_line(s, "const float *wp = cx->params + %s + (size_t)n * %d;", pw, CIN * KK);
            rc_sb_line(s, "for (int ci = 0; ci < %d; ci++) {", CIN);
            rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
            rc_sb_line(s, "float *dr = dx + ((size_t)ci * %d + r0 + ky) * %d + c0;", G->in.h, G->in.w);
            rc_sb_line(s, "const float *wr = wp + (ci * %d + ky) * %d;", K, K);
            rc_sb_line(s, "#pragma omp simd");
            rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) dr[kx] += wr[kx] * gv;", K);
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
            rc_sb_line(s, "}");
        }
    } else if (PL->cl[li].tiled) {
        const em_cl *cl = &PL->cl[li];
        int COUT = G->sh.c, HO = G->sh.h, WO = G->sh.w;
        em_omp_for(E, s, li, "collapse(2)");
        rc_sb_line(s, "for (int ph = 0; ph < %d; ph++) {", cl->py * cl->px);
        rc_sb_line(s, "for (int o = 0; o < %d; o++) {", COUT);
        rc_sb_line(s, "const int py = ph / %d, px = ph %% %d;", cl->px, cl->px);
        rc_sb_line(s, "float *dw = cx->grads + %s + ((size_t)ph * %d + o) * %d;", pw, COUT, CIN * KK);
        rc_sb_line(s, "double db = 0;");
        rc_sb_line(s, "for (int b = 0; b < B; b++) {");
        rc_sb_line(s, "const float *x = %s;", in);
        rc_sb_line(s, "const float *g = gz + (size_t)b * %lld + (size_t)o * %d;", (long long)SZ, HO * WO);
        rc_sb_line(s, "for (int oy = py; oy < %d; oy += %d) {", HO, cl->py);
        rc_sb_line(s, "for (int ox = px; ox < %d; ox += %d) {", WO, cl->px);
        rc_sb_line(s, "const float gv = g[oy * %d + ox];", WO);
        rc_sb_line(s, "db += gv;");
        rc_sb_line(s, "for (int ci = 0; ci < %d; ci++) {", CIN);
        rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
        rc_sb_line(s, "const float *xr = x + ((size_t)ci * %d + oy + ky) * %d + ox;", G->in.h, G->in.w);
        rc_sb_line(s, "float *dr = dw + (ci * %d + ky) * %d;", K, K);
        rc_sb_line(s, "#pragma omp simd");
        rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) dr[kx] += gv * xr[kx];", K);
        for (int q = 0; q < 5; q++) rc_sb_line(s, "}");
        if (L->bias) rc_sb_line(s, "cx->grads[%s + ph * %d + o] += (float)db;", pb, COUT);
        else rc_sb_line(s, "(void)db;");
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        if (out >= 0) {
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int b = 0; b < B; b++) {");
            rc_sb_line(s, "float *dx = %s + (size_t)b * %lld;", o, (long long)INSZ);
            rc_sb_line(s, "const float *g = gz + (size_t)b * %lld;", (long long)SZ);
            rc_sb_line(s, "memset(dx, 0, %lld * sizeof(float));", (long long)INSZ);
            rc_sb_line(s, "for (int o = 0; o < %d; o++) {", COUT);
            rc_sb_line(s, "for (int oy = 0; oy < %d; oy++) {", HO);
            rc_sb_line(s, "for (int ox = 0; ox < %d; ox++) {", WO);
            rc_sb_line(s, "const float gv = g[(o * %d + oy) * %d + ox];", HO, WO);
            rc_sb_line(s, "const int ph = (oy %% %d) * %d + ox %% %d;", cl->py, cl->px, cl->px);
            rc_sb_line(s, "const float *wp = cx->params + %s + ((size_t)ph * %d + o) * %d;", pw, COUT, CIN * KK);
            rc_sb_line(s, "for (int ci = 0; ci < %d; ci++) {", CIN);
            rc_sb_line(s, "for (int ky = 0; ky < %d; ky++) {", K);
            rc_sb_line(s, "float *dr = dx + ((size_t)ci * %d + oy + ky) * %d + ox;", G->in.h, G->in.w);
            rc_sb_line(s, "const float *wr = wp + (ci * %d + ky) * %d;", K, K);
            rc_sb_line(s, "#pragma omp simd");
            rc_sb_line(s, "for (int kx = 0; kx < %d; kx++) dr[kx] += wr[kx] * gv;", K);
            for (int q = 0; q < 6; q++) rc_sb_line(s, "}");
        }
    } else {
        const em_cl *cl = &PL->cl[li];
        int n = cl->n, hook = em_hook_conv(E, PL, g);
        if (hook) {
            char gb[96] = "NULL";
            const em_grp *P = &E->g[g - 1];   /* its output is this group's input */
            if (L->bias) snprintf(gb, sizeof gb, "cx->grads + %s", pb);
            rc_sb_line(s, "const int hk_ = cx->hk ? cx->hk->conv_bwd(cx->hk->self, %d, B, CXW(%s), cx->params + %s, gz, %s, "
                       "cx->grads + %s, %s) : 1;", li, em_bufname(E, P->buf[P->nops]), pw, out >= 0 ? o : "NULL", pw, gb);
            rc_sb_line(s, "if (hk_ < 0) return RCG_ERR(RCG_E_HOOK, %d);", li);
            rc_sb_line(s, "if (hk_) {");
        }
        for (int j = 0; j < n; j++)
            if (cl->has_dx[j]) {
                char src[96], dst[96], w[64];
                snprintf(src, sizeof src, "cx->params + %s", em_wname(E, li, j, w));
                snprintf(dst, sizeof dst, "CXW(%s)", em_bufname(E, cl->prep[j]));
                em_conv_prep(s, &cl->dx[j], src, dst, NULL, 1);
            }
        size_t PF = E->part_floats;
        rc_sb_line(s, "float *parts = CXW(%s);", em_bufname(E, E->parts));
        rc_sb_line(s, "const int np = B < %d ? B : %d;", EM_NPART, EM_NPART);
        rc_sb_line(s, "/* per part: private weight-gradient accumulators, samples in order */");
        em_omp_for(E, s, li, NULL);
        rc_sb_line(s, "for (int p = 0; p < np; p++) {");
        rc_sb_line(s, "float *pp = parts + (size_t)p * %zu;", PF);
        rc_sb_line(s, "memset(pp, 0, %zu * sizeof(float));", cl->part_floats);
        rc_sb_line(s, "const int b0 = (int)((long long)B * p / np), b1 = (int)((long long)B * (p + 1) / np);");
        rc_sb_line(s, "for (int b = b0; b < b1; b++) {");
        rc_sb_line(s, "const float *g = gz + (size_t)b * %lld;", (long long)SZ);
        for (int j = n - 1; j >= 0; j--) {
            const em_conv *cv = &cl->fw[j];
            int ho = cl->ho[j], wo = cl->wo[j], k = cv->k;
            rc_sb_line(s, "{ /* %s */", n > 1 ? "sub-conv" : "conv");
            if (j == 0) rc_sb_line(s, "const float *x = %s;", in);
            else rc_sb_line(s, "const float *x = CXW(%s) + (size_t)b * %lld;", em_bufname(E, cl->sub_out[j - 1]),
                            (long long)cl->fw[j - 1].cout * cl->ho[j - 1] * cl->wo[j - 1]);
            rc_sb_line(s, "%s(x, g, pp + %zu);", cv->dwname, cl->acc_off[j]);
            if (j == n - 1 && L->bias) {
                rc_sb_line(s, "for (int o = 0; o < %d; o++) {", cv->cout);
                rc_sb_line(s, "float a = 0.0f;");
                rc_sb_line(s, "for (int e = 0; e < %d; e++) a += g[o * %d + e];", ho * wo, ho * wo);
                rc_sb_line(s, "pp[%zu + o] += a;", cl->db_off);
                rc_sb_line(s, "}");
            }
            if (cl->has_dx[j]) {
                const em_conv *dx = &cl->dx[j];
                rc_sb_line(s, "float *gp = pp + %zu;", cl->pad_off[j]);
                rc_sb_line(s, "for (int o = 0; o < %d; o++)", cv->cout);
                rc_sb_line(s, "    for (int oy = 0; oy < %d; oy++)", ho);
                rc_sb_line(s, "        memcpy(gp + ((size_t)o * %d + oy + %d) * %d + %d, g + ((size_t)o * %d + oy) * %d, %d * sizeof(float));",
                           dx->hin, k - 1, dx->win, k - 1, ho, wo, wo);
                if (j > 0) rc_sb_line(s, "float *dst = pp + %zu;", cl->gs_off[(n - 1 - j) % 2]);
                else rc_sb_line(s, "float *dst = %s + (size_t)b * %lld;", o, (long long)INSZ);
                rc_sb_line(s, "%s(gp, CXW(%s), NULL, dst, b, cx);", dx->name, em_bufname(E, cl->prep[j]));
                rc_sb_line(s, "g = dst;");
            }
            rc_sb_line(s, "}");
        }
        rc_sb_line(s, "}");
        rc_sb_line(s, "}");
        rc_sb_line(s, "/* reduce the parts in a fixed order */");
        for (int j = 0; j < n; j++) {
            const em_conv *cv = &cl->fw[j];
            int k = cv->k, kk = k * k, ckk = cv->cin * kk, kv = em_conv_kv(cv);
            char w[64];
            em_omp_for(E, s, li, NULL);
            rc_sb_line(s, "for (int e = 0; e < %d; e++) {", cv->cout * ckk);
            rc_sb_line(s, "const int o = e / %d, r = e %% %d, c = r / %d, kk = r %% %d, ky = kk / %d, kx = kk %% %d;", ckk,
                       ckk, kk, kk, k, k);
            rc_sb_line(s, "float a = 0.0f;");
            rc_sb_line(s, "for (int p = 0; p < np; p++) a += parts[(size_t)p * %zu + %zu + ((size_t)(c * %d + ky) * %d + o) * %d + kx];",
                       PF, cl->acc_off[j], k, cv->cout, kv);
            rc_sb_line(s, "cx->grads[%s + e] += a;", em_wname(E, li, j, w));
            rc_sb_line(s, "}");
        }
        if (L->bias) {
            rc_sb_line(s, "for (int o = 0; o < %d; o++) {", L->out.c);
            rc_sb_line(s, "float a = 0.0f;");
            rc_sb_line(s, "for (int p = 0; p < np; p++) a += parts[(size_t)p * %zu + %zu + o];", PF, cl->db_off);
            rc_sb_line(s, "cx->grads[%s + o] += a;", pb);
            rc_sb_line(s, "}");
        }
        if (hook) rc_sb_line(s, "}");
    }
    rc_sb_line(s, "}");
}

