/* emit_cuda_dw.c — the CUDA renderer's conv weight gradients (P = 1 convs): the schedule
 * (rc_cu_plan_dw, two forms: see emit_cuda_int.h), the partial-sum kernels per batch chunk, the
 * fixed-order sum into grads and the bias gradient. No atomics anywhere: the same inputs give
 * the same bits. Measured forms and their H200 times: results/gpu.md.
 */
#include "emit_cuda_int.h"

#include <stdio.h>
#include <string.h>

/* Split the staged rows x columns among the threads left over by `per` tiles per phase:
 * RS row phases (divide_rows: a divisor of R if one is at least half as many, so no phase idles
 * on the last row) x OS column segments of at least 8 outputs. */
static void split_rows(dw_sched *s, int per, int Wo, int divide_rows)
{
    int parts = 256 / per;
    if (parts < 1) parts = 1;
    s->RS = parts < s->R ? parts : s->R;
    if (divide_rows)
        for (int rs = s->RS; 2 * rs >= s->RS; rs--)
            if (s->R % rs == 0) { s->RS = rs; break; }
    int maxos = (Wo + 7) / 8;
    s->OS = parts / s->RS;
    if (s->OS > maxos) s->OS = maxos;
    if (s->OS < 1) s->OS = 1;
    s->OSEG = (Wo + s->OS - 1) / s->OS;
    s->NT = (per * s->RS * s->OS + 31) / 32 * 32;
}

dw_sched rc_cu_plan_dw(int Cin, int Cout, int K, int Ho, int Wo, int Wi)
{
    dw_sched s;
    memset(&s, 0, sizeof s);
    s.CO = Cout < 8 ? Cout : 8;
    s.NCO = (Cout + s.CO - 1) / s.CO;
    s.KWT = K < 4 ? K : 4;
    s.NKW = (K + s.KWT - 1) / s.KWT;
    s.SL = K * s.NKW;
    s.kwtile = s.SL >= 32;
    if (s.kwtile) {
        s.SLT = s.SL < 256 ? s.SL : 256;    /* slots at a time; more: the block loops */
        int nchunk = (Ho + 15) / 16;
        s.R = (Ho + nchunk - 1) / nchunk;   /* rows per staged tile, balanced chunks */
        s.XW = Wi > s.NKW * s.KWT + Wo - 1 ? Wi : s.NKW * s.KWT + Wo - 1;   /* zero-padded right */
        while (s.R > 1 && (s.R + K - 1) * s.XW + s.R * Wo * s.CO > 9000) s.R--;
        split_rows(&s, s.SLT, Wo, 0);
        s.CC = 1;
        s.UNR = 4;
        s.NCC = Cin;
    } else {
        /* chunk: CC input channels x K kernel rows = slots per block, each thread a K x CO tile
         * sliding along a row; XW odd so that a warp's combos (different rows of
         * the staged input) fall in different banks */
        s.CC = 256 / K < Cin ? 256 / K : Cin;
        s.XW = (Wi > Wo + K - 1 ? Wi : Wo + K - 1) | 1;
        for (;;) {
            s.R = Ho < 16 ? Ho : 16;
            while (s.R > 1 && s.CC * (s.R + K - 1) * s.XW + s.R * Wo * s.CO > 9000) s.R--;
            if (s.CC == 1 || s.CC * (s.R + K - 1) * s.XW + s.R * Wo * s.CO <= 9000) break;
            s.CC--;
        }
        s.NCC = (Cin + s.CC - 1) / s.CC;
        s.KWT = K;
        s.NKW = 1;
        s.SL = s.SLT = s.CC * K;
        split_rows(&s, s.SLT, Wo, 1);
        s.UNR = 2;
    }
    /* enough blocks to fill the device (528 = 4 x 132 SMs); partials are NCH x the weights */
    int blocks = s.NCC * s.NCO, cap = s.kwtile ? 64 : 512;
    s.NCH = (528 + blocks - 1) / blocks;
    if (s.NCH > cap) s.NCH = cap;
    if (s.NCH < 1) s.NCH = 1;
    return s;
}

/* The partial-sum kernel of either form (see emit_cuda_int.h): slot sl = (input channel cc of
 * the block's chunk, kh, kw group); kwtile has CC = 1, chunk NKW = 1 (KWT = K).
 * pl: the input plane expression of sample b, channel c. */
static void emit_dw_partials(em *e, const char *name, const conv_desc *d, const dw_sched *sp, const char *pl,
                             const char *g, reg part, int64_t NW, int bias)
{
    char w[96];
    const dw_sched s = *sp;
    int K = d->K, XR = s.R + K - 1;
    int64_t NWB = NW + d->Cout;   /* partial row: the weights, then the bias */
    P("\n/* weight gradient partials (%s form): block = (%d input channel(s), %d output channels, 1/%d of\n"
      " * the batch); thread = (input channel, kh, %d kw) x (row phase of %d, column segment of %d):\n"
      " * a %d x %d (kw x co) register tile sliding along the row */\n",
      s.kwtile ? "kw-tile" : "channel-chunk", s.CC, s.CO, s.NCH, s.KWT, s.RS, s.OS, s.KWT, s.CO);
    P("extern \"C\" __global__ void __launch_bounds__(%d, 1) %s(rc_kargs a)\n{\n", s.NT, name);
    P("    __shared__ __align__(16) float s_x[%d][%d][%d];\n", s.CC, XR, s.XW);
    P("    __shared__ __align__(16) float s_g[%d][%d][%d];\n", s.R, d->OW, s.CO);
    P("    __shared__ float s_red[%d][%d];\n", s.NT, s.CO);
    P("    const int c0 = blockIdx.x / %d * %d, co0 = (blockIdx.x %% %d) * %d;\n", s.NCO, s.CC, s.NCO, s.CO);
    P("    const int per = (a.B + %d) / %d;\n", s.NCH - 1, s.NCH);
    P("    const int b0 = blockIdx.y * per, b1 = min(a.B, b0 + per);\n");
    P("    const int t = threadIdx.x, ts = t %% %d, part = t / %d, rs = part %% %d, os = part / %d;\n",
      s.SLT, s.SLT, s.RS, s.RS);
    P("    const int ow_lo = os * %d, ow_hi = min(%d, ow_lo + %d);\n", s.OSEG, d->OW, s.OSEG);
    P("    const bool active = t < %d;\n", s.SLT * s.RS * s.OS);
    if (bias) {
        P("    /* bias gradient: the first channel chunk's blocks also sum their staged gradient tiles;\n"
          "     * thread t always reads output channel t %% %d (the block size is a multiple of it) */\n", s.CO);
        P("    const bool bias_block = c0 == 0;\n    float gsum = 0.0f;\n");
    }
    P("    for (int sl0 = 0; sl0 < %d; sl0 += %d) {\n", s.SL, s.SLT);
    P("        const int sl = sl0 + ts, cc = sl / %d, kh = sl / %d %% %d, kw0 = (sl %% %d) * %d;\n",
      K * s.NKW, s.NKW, K, s.NKW, s.KWT);
    P("        const bool live = active && sl < %d && c0 + cc < %d;\n", s.SL, d->Cin);
    P("        float acc[%d][%d];\n", s.KWT, s.CO);
    P("#pragma unroll\n        for (int j = 0; j < %d; j++)\n#pragma unroll\n"
      "            for (int co = 0; co < %d; co++) acc[j][co] = 0.0f;\n", s.KWT, s.CO);
    P("        for (int b = b0; b < b1; b++) {\n");
    if (s.CC == 1) P("            const int c = c0;\n            const float *xp = %s;\n", pl);
    P("            for (int r0 = 0; r0 < %d; r0 += %d) {\n", d->OH, s.R);
    P("                __syncthreads();\n");
    P("                for (int q = t; q < %d; q += %d) {\n", s.CC * XR * s.XW, s.NT);
    P("                    const int qc = q / %d, yy = q / %d %% %d, xx = q %% %d;\n", XR * s.XW, s.XW, XR, s.XW);
    if (s.CC == 1) {
        P("                    s_x[qc][yy][xx] = r0 + yy < %d && xx < %d ? xp[(r0 + yy) * %d + xx] : 0.0f;\n",
          d->IH, d->IW, d->IW);
    } else {
        P("                    const int c = c0 + qc;\n");
        P("                    float v = 0.0f;\n");
        P("                    if (c < %d && r0 + yy < %d && xx < %d) {\n", d->Cin, d->IH, d->IW);
        P("                        const float *xp = %s;\n", pl);
        P("                        v = xp[(r0 + yy) * %d + xx];\n", d->IW);
        P("                    }\n");
        P("                    s_x[qc][yy][xx] = v;\n");
    }
    P("                }\n");
    P("                for (int q = t; q < %d; q += %d) {\n", s.R * d->OW * s.CO, s.NT);
    P("                    const int co = q / %d, r = (q / %d) %% %d, ow = q %% %d;\n", s.R * d->OW,
      d->OW, s.R, d->OW);
    P("                    const int o = co0 + co;\n");
    P("                    s_g[r][ow][co] = (o < %d && r0 + r < %d) ? %s[(((long long)b * %d + o) * %d + r0 + r) * %d + ow] : 0.0f;\n",
      d->Cout, d->OH, g, d->Cout, d->OH, d->OW);
    P("                }\n                __syncthreads();\n");
    if (bias) {
        P("                if (bias_block && sl0 == 0)\n");
        P("                    for (int f = t; f < %d; f += %d) gsum += (&s_g[0][0][0])[f];\n", s.R * d->OW * s.CO, s.NT);
    }
    P("                if (live) {\n");
    P("#pragma unroll 1\n                    for (int r = rs; r < %d; r += %d) {\n", s.R, s.RS);
    P("                        const float *xr = &s_x[cc][r + kh][kw0];\n");
    P("                        float xw[%d];\n", s.KWT);
    P("#pragma unroll\n                        for (int j = 0; j < %d; j++) xw[j] = xr[ow_lo + j];\n", s.KWT - 1);
    P("#pragma unroll %d\n                        for (int ow = ow_lo; ow < ow_hi; ow++) {\n", s.UNR);
    P("                            xw[%d] = xr[ow + %d];\n", s.KWT - 1, s.KWT - 1);
    P("                            float gv[%d];\n", s.CO);
    P("#pragma unroll\n                            for (int co = 0; co < %d; co++) gv[co] = s_g[r][ow][co];\n", s.CO);
    P("#pragma unroll\n                            for (int j = 0; j < %d; j++)\n", s.KWT);
    P("#pragma unroll\n                                for (int co = 0; co < %d; co++) acc[j][co] += gv[co] * xw[j];\n", s.CO);
    P("#pragma unroll\n                            for (int j = 0; j < %d; j++) xw[j] = xw[j + 1];\n", s.KWT - 1);
    P("                        }\n                    }\n                }\n            }\n        }\n");
    P("        /* fixed-order sum over the row phases and column segments, one kw at a time */\n");
    P("#pragma unroll\n        for (int j = 0; j < %d; j++) {\n", s.KWT);
    P("            __syncthreads();\n");
    P("#pragma unroll\n            for (int co = 0; co < %d; co++) s_red[t][co] = acc[j][co];\n", s.CO);
    P("            __syncthreads();\n");
    P("            if (live && part == 0 && kw0 + j < %d) {\n", K);
    P("                for (int co = 0; co < %d; co++) {\n", s.CO);
    P("                    float v = 0.0f;\n");
    P("                    for (int q = 0; q < %d; q++) v += s_red[q * %d + ts][co];\n", s.RS * s.OS, s.SLT);
    P("                    const int o = co0 + co;\n");
    P("                    if (o < %d) %s[(long long)blockIdx.y * %lldLL + (((long long)o * %d + c0 + cc) * %d + kh) * %d + kw0 + j] = v;\n",
      d->Cout, rc_cu_ws(part, w), (long long)NWB, d->Cin, K, K);
    P("                }\n            }\n        }\n    }\n");
    if (bias) {
        P("    __syncthreads();\n");
        P("    s_red[t][0] = gsum;\n");
        P("    __syncthreads();\n");
        P("    if (bias_block && t < %d && co0 + t < %d) {\n", s.CO, d->Cout);
        P("        float v = 0.0f;\n");
        P("        for (int q = t; q < %d; q += %d) v += s_red[q][0];\n", s.NT, s.CO);
        P("        %s[(long long)blockIdx.y * %lldLL + %lldLL + co0 + t] = v;\n", rc_cu_ws(part, w), (long long)NWB,
          (long long)NW);
        P("    }\n");
    }
    P("}\n");
}

/* Weight gradient of a P = 1 conv: partials per batch chunk, then a fixed-order reduction.
 * x: layer input accessor (layer >= 0) or ws source; g: gradient (B, Cout, OH, OW) expr. */
void rc_cu_emit_conv_dw(em *e, int layer, const char *tag, const conv_desc *d, const char *g,
                        reg part, int64_t wgrad, int64_t bgrad)
{
    char name[64], kp[48], pl[320], w[96];
    int K = d->K;
    dw_sched s = rc_cu_plan_dw(d->Cin, d->Cout, K, d->OH, d->OW, d->IW);
    int64_t NW = (int64_t)d->Cout * d->Cin * K * K;
    snprintf(kp, sizeof kp, "%s_dw", tag);
    rc_kernel_name(name, sizeof name, RC_PHASE_BACKWARD, layer, kp);
    rc_cu_src_plane(e, d, pl, sizeof pl);
    /* the bias gradient rides along when every thread keeps to one output channel */
    int fold = bgrad >= 0 && s.NT % s.CO == 0;
    int64_t NWB = NW + d->Cout;
    emit_dw_partials(e, name, d, &s, pl, g, part, NW, fold);
    rc_cu_add_launch(e, name, layer, s.NT, 0, (int64_t)s.NCC * s.NCO, 1, 0, s.NCH);

    /* fixed-order sum of the partials into grads (weights, then the folded bias) */
    int64_t NS = fold ? NWB : NW;
    snprintf(kp, sizeof kp, "%s_dw_sum", tag);
    rc_kernel_name(name, sizeof name, RC_PHASE_BACKWARD, layer, kp);
    P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    P("    const long long q = (long long)blockIdx.x * 256 + threadIdx.x;\n");
    P("    if (q < %lldLL) {\n", (long long)NS);
    P("        const float *p = %s;\n", rc_cu_ws(part, w));
    P("        float v = 0.0f;\n");
    P("        for (int k = 0; k < %d; k++) v += p[(long long)k * %lldLL + q];\n", s.NCH, (long long)NWB);
    if (fold)
        P("        a.grads[q < %lldLL ? %lldLL + q : %lldLL + q] += v;\n    }\n}\n", (long long)NW, (long long)wgrad,
          (long long)bgrad - NW);
    else
        P("        a.grads[%lldLL + q] += v;\n    }\n}\n", (long long)wgrad);
    rc_cu_add_launch(e, name, layer, 256, 0, NS, 256, 0, 1);

    if (bgrad >= 0 && !fold) {
        snprintf(kp, sizeof kp, "%s_db", tag);
        rc_kernel_name(name, sizeof name, RC_PHASE_BACKWARD, layer, kp);
        P("\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
        P("    __shared__ double s_r[32];\n");
        P("    const int o = blockIdx.x;\n    double v = 0.0;\n");
        P("    for (long long q = threadIdx.x; q < (long long)a.B * %d; q += 256) {\n", d->OH * d->OW);
        P("        const long long b = q / %d, k = q %% %d;\n", d->OH * d->OW, d->OH * d->OW);
        P("        v += %s[(b * %d + o) * %dLL + k];\n    }\n", g, d->Cout, d->OH * d->OW);
        P("    v = rc_block_sum(v, s_r);\n");
        P("    if (threadIdx.x == 0) a.grads[%lldLL + o] += (float)v;\n}\n", (long long)bgrad);
        rc_cu_add_launch(e, name, layer, 256, 0, d->Cout, 1, 0, 1);
    }
}
