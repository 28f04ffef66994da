/* prim_eval.c — the reference interpreter of primitive graphs (prim.h), in double.
 *
 * The oracle for every emitter of defined layers: obviously-correct loops, one per primitive
 * kind, no fusion, no blocking. Each node's value is its own malloc'd array of rc_prim_numel
 * doubles, row-major. Elementwise ops read their operands through broadcast strides (0 on an
 * axis of size 1). Reductions and contractions accumulate in double. Random leaves draw
 * rc_rng_normal/uniform(seed, RC_RNG_STREAM(layer, RC_PRIM_RNG_SUB0 + k), flat index) — the
 * same float numbers as every backend.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "prim.h"
#include "rng.h"

/* strides of node nd's dims with B; bcast: 0 on axes of size 1 */
static void strides(const rc_prim_node *nd, int B, int64_t *st, int bcast)
{
    int64_t s = 1;
    for (int k = nd->rank - 1; k >= 0; k--) {
        int d = nd->dims[k] == RC_PRIM_B ? B : nd->dims[k];
        st[k] = bcast && d == 1 ? 0 : s;
        s *= d;
    }
}

static void dims_b(const rc_prim_node *nd, int B, int *d)
{
    for (int k = 0; k < nd->rank; k++) d[k] = nd->dims[k] == RC_PRIM_B ? B : nd->dims[k];
}

/* odometer over dims d (rank r): advance idx, return 0 at the end */
static int next_idx(int r, const int *d, int *idx)
{
    for (int k = r - 1; k >= 0; k--) {
        if (++idx[k] < d[k]) return 1;
        idx[k] = 0;
    }
    return 0;
}

static int64_t offset(int r, const int *idx, const int64_t *st)
{
    int64_t o = 0;
    for (int k = 0; k < r; k++) o += idx[k] * st[k];
    return o;
}

static void conv_loops(const rc_prim_graph *g, const rc_prim_node *nd, int B, double **val, double *y)
{
    const int s = nd->attr[0], p = nd->attr[1], dl = nd->attr[2], py = nd->attr[3], px = nd->attr[4];
    const rc_prim_node *x = NULL, *w = NULL, *gy = NULL;
    const double *X = NULL, *Wt = NULL, *GY = NULL;
    if (nd->op == RC_P_CONV2D) { x = &g->node[nd->in[0]]; w = &g->node[nd->in[1]]; X = val[nd->in[0]]; Wt = val[nd->in[1]]; }
    else if (nd->op == RC_P_CONV2D_DX) { gy = &g->node[nd->in[0]]; w = &g->node[nd->in[1]]; GY = val[nd->in[0]]; Wt = val[nd->in[1]]; }
    else { x = &g->node[nd->in[0]]; gy = &g->node[nd->in[1]]; X = val[nd->in[0]]; GY = val[nd->in[1]]; }
    int N, C, H, W, O, K, Ho, Wo;
    if (nd->op == RC_P_CONV2D) {
        N = x->dims[0] == RC_PRIM_B ? B : x->dims[0]; C = x->dims[1]; H = x->dims[2]; W = x->dims[3];
        O = nd->dims[1]; Ho = nd->dims[2]; Wo = nd->dims[3]; K = w->dims[w->rank - 1];
    } else if (nd->op == RC_P_CONV2D_DX) {
        N = gy->dims[0] == RC_PRIM_B ? B : gy->dims[0]; O = gy->dims[1]; Ho = gy->dims[2]; Wo = gy->dims[3];
        C = nd->dims[1]; H = nd->dims[2]; W = nd->dims[3]; K = w->dims[w->rank - 1];
    } else {
        N = x->dims[0] == RC_PRIM_B ? B : x->dims[0]; C = x->dims[1]; H = x->dims[2]; W = x->dims[3];
        O = gy->dims[1]; Ho = gy->dims[2]; Wo = gy->dims[3]; K = nd->dims[nd->rank - 1];
    }
    /* weight element (phase, o, c, ky, kx) */
#define WIDX(oy, ox, o, c, ky, kx) (((((int64_t)((oy) % py * px + (ox) % px) * O + (o)) * C + (c)) * K + (ky)) * K + (kx))
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    int64_t yo = (((int64_t)n * O + o) * Ho + oy) * Wo + ox;
                    double acc = 0, gv = GY ? GY[yo] : 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++) {
                            int iy = oy * s - p + ky * dl;
                            if (iy < 0 || iy >= H) continue;
                            for (int kx = 0; kx < K; kx++) {
                                int ix = ox * s - p + kx * dl;
                                if (ix < 0 || ix >= W) continue;
                                int64_t xi = (((int64_t)n * C + c) * H + iy) * W + ix;
                                int64_t wi = WIDX(oy, ox, o, c, ky, kx);
                                if (nd->op == RC_P_CONV2D) acc += X[xi] * Wt[wi];
                                else if (nd->op == RC_P_CONV2D_DX) y[xi] += gv * Wt[wi];
                                else y[wi] += X[xi] * gv;
                            }
                        }
                    if (nd->op == RC_P_CONV2D) y[yo] = acc;
                }
#undef WIDX
}

static int eval_node(const rc_prim_graph *g, const rc_prim_eval_ctx *cx, int i, double **val,
                     char *err, size_t el)
{
    const rc_prim_node *nd = &g->node[i];
    const rc_prim_info *I = &rc_prim_table()[nd->op];
    const int B = cx->B;
    for (int k = 0; k < nd->rank; k++)
        if (nd->dims[k] == RC_PRIM_CELLS) return rc_errf(err, el, "n%d %s: the cell count is not substituted", i, I->name);
    if (nd->op == RC_P_UPDATE) { val[i] = NULL; return 0; }
    int64_t n = rc_prim_numel(nd, B);
    double *y = calloc((size_t)(n ? n : 1), sizeof *y);
    if (!y) return rc_errf(err, el, "n%d %s: out of memory (%lld elements)", i, I->name, (long long)n);
    val[i] = y;
    int r = nd->rank, d[RC_PRIM_MAX_RANK], idx[RC_PRIM_MAX_RANK] = {0};
    int64_t st[3][RC_PRIM_MAX_RANK];
    dims_b(nd, B, d);
    switch (I->kind) {
    case RC_PK_LEAF:
        switch (nd->op) {
        case RC_P_INPUT: {
            int k = nd->ref;
            if (cx->input_d[k]) memcpy(y, cx->input_d[k], sizeof *y * (size_t)n);
            else if (cx->input[k]) for (int64_t e = 0; e < n; e++) y[e] = cx->input[k][e];
            else return rc_errf(err, el, "n%d input %d: not given", i, k);
            break;
        }
        case RC_P_PARAM: case RC_P_STATE: {
            const float *src = nd->op == RC_P_PARAM ? cx->param[nd->ref] : cx->state[nd->ref];
            if (!src) return rc_errf(err, el, "n%d %s %d: not given", i, I->name, nd->ref);
            for (int64_t e = 0; e < n; e++) y[e] = src[e];
            break;
        }
        case RC_P_CONST: for (int64_t e = 0; e < n; e++) y[e] = nd->value; break;
        case RC_P_NUMEL:
            if (nd->attr[2]) return rc_errf(err, el, "n%d numel: the cell count is not substituted", i);
            y[0] = (double)nd->attr[0] * (nd->attr[1] ? B : 1);
            break;
        case RC_P_RANDN: case RC_P_RANDU: {
            uint64_t stream = RC_RNG_STREAM(cx->layer, RC_PRIM_RNG_SUB0 + nd->attr[0]);
            for (int64_t e = 0; e < n; e++)
                y[e] = nd->op == RC_P_RANDN ? rc_rng_normal(cx->seed, stream, (uint64_t)e)
                                            : rc_rng_uniform(cx->seed, stream, (uint64_t)e);
            break;
        }
        default: return rc_errf(err, el, "n%d %s: not a leaf", i, I->name);
        }
        return 0;
    case RC_PK_UNARY: case RC_PK_BINARY: case RC_PK_SELECT: {
        for (int a = 0; a < nd->n_in; a++) strides(&g->node[nd->in[a]], B, st[a], 1);
        const double *A = val[nd->in[0]], *Bv = nd->n_in > 1 ? val[nd->in[1]] : NULL, *Cv = nd->n_in > 2 ? val[nd->in[2]] : NULL;
        if (n == 0) return 0;
        int64_t e = 0;
        do {
            double a = A[offset(r, idx, st[0])];
            if (I->kind == RC_PK_UNARY) y[e] = I->unary(a, nd->value);
            else if (I->kind == RC_PK_BINARY) y[e] = I->binary(a, Bv[offset(r, idx, st[1])]);
            else y[e] = a != 0 ? Bv[offset(r, idx, st[1])] : Cv[offset(r, idx, st[2])];
            e++;
        } while (next_idx(r, d, idx));
        return 0;
    }
    case RC_PK_REDUCE: {
        const rc_prim_node *x = &g->node[nd->in[0]];
        int dx[RC_PRIM_MAX_RANK];
        dims_b(x, B, dx);
        strides(nd, B, st[0], 1);      /* output strides: reduced axes have size 1 -> 0 */
        int64_t nx = rc_prim_numel(x, B), cnt = nx / (n ? n : 1);
        if (nd->op == RC_P_RMAX) for (int64_t e = 0; e < n; e++) y[e] = -INFINITY;
        const double *X = val[nd->in[0]];
        if (nx == 0) return 0;
        int64_t e = 0;
        do {
            int64_t o = offset(r, idx, st[0]);
            if (nd->op == RC_P_RMAX) { if (X[e] > y[o]) y[o] = X[e]; }
            else y[o] += X[e];
            e++;
        } while (next_idx(r, dx, idx));
        if (nd->op == RC_P_MEAN) for (int64_t k = 0; k < n; k++) y[k] /= (double)cnt;
        return 0;
    }
    case RC_PK_MOVE: {
        const rc_prim_node *x = &g->node[nd->in[0]];
        const double *X = val[nd->in[0]];
        if (nd->op == RC_P_RESHAPE) { memcpy(y, X, sizeof *y * (size_t)n); return 0; }
        if (nd->op == RC_P_CONCAT) {
            const rc_prim_node *x2 = &g->node[nd->in[1]];
            int ax = nd->attr[0];
            int64_t outer = 1, ia = 1, ib = 1;
            for (int k = 0; k < ax; k++) outer *= d[k];
            for (int k = ax; k < r; k++) {
                ia *= x->dims[k] == RC_PRIM_B ? B : x->dims[k];
                ib *= x2->dims[k] == RC_PRIM_B ? B : x2->dims[k];
            }
            for (int64_t o = 0; o < outer; o++) {
                memcpy(y + o * (ia + ib), X + o * ia, sizeof *y * (size_t)ia);
                memcpy(y + o * (ia + ib) + ia, val[nd->in[1]] + o * ib, sizeof *y * (size_t)ib);
            }
            return 0;
        }
        int dxb[RC_PRIM_MAX_RANK];
        dims_b(x, B, dxb);
        strides(x, B, st[1], nd->op == RC_P_EXPAND);
        if (n == 0) return 0;
        if (nd->op == RC_P_CELLPICK || nd->op == RC_P_CELLPLACE) {
            /* (B, cells, H, W) map side: every cell's position inside it */
            const int *mp = nd->op == RC_P_CELLPICK ? dxb : d;
            if (!cx->cell_pos) return rc_errf(err, el, "n%d %s: no cell positions given", i, I->name);
            if (mp[1] > cx->n_cells)
                return rc_errf(err, el, "n%d %s: a map of %d channels, positions of %d cells", i, I->name, mp[1], cx->n_cells);
            for (int c = 0; c < mp[1]; c++)
                if (cx->cell_pos[2 * c] < 0 || cx->cell_pos[2 * c] >= mp[2] || cx->cell_pos[2 * c + 1] < 0 ||
                    cx->cell_pos[2 * c + 1] >= mp[3])
                    return rc_errf(err, el, "n%d %s: cell %d at (%d,%d), outside the %dx%d map", i, I->name, c,
                                   cx->cell_pos[2 * c], cx->cell_pos[2 * c + 1], mp[2], mp[3]);
        }
        int64_t e = 0;
        do {
            int64_t o = 0, ok = 1;
            for (int k = 0; k < r; k++) {
                int j;
                if (nd->op == RC_P_TRANSPOSE) { o += idx[k] * st[1][nd->attr[k]]; continue; }
                if (nd->op == RC_P_EXPAND) { o += idx[k] * st[1][k]; continue; }
                if (nd->op == RC_P_SLICE) j = idx[k] + nd->attr[2 * k];
                else if (nd->op == RC_P_PAD) j = idx[k] - nd->attr[2 * k];
                else if (nd->op == RC_P_CELLPICK && k >= 2) j = cx->cell_pos[2 * idx[1] + k - 2];
                else if (nd->op == RC_P_CELLPLACE && k >= 2) j = idx[k] == cx->cell_pos[2 * idx[1] + k - 2] ? 0 : -1;
                else j = idx[k];
                if (j < 0 || j >= dxb[k]) { ok = 0; break; }
                o += j * st[1][k];
            }
            y[e++] = ok ? X[o] : 0.0;
        } while (next_idx(r, d, idx));
        return 0;
    }
    case RC_PK_CONTRACT:
        if (nd->op == RC_P_MATMUL) {
            const rc_prim_node *a = &g->node[nd->in[0]];
            int M = d[0], N = d[1], K = a->dims[1] == RC_PRIM_B ? B : a->dims[1];
            const double *A = val[nd->in[0]], *Bm = val[nd->in[1]];
            for (int m = 0; m < M; m++)
                for (int c = 0; c < N; c++) {
                    double acc = 0;
                    for (int k = 0; k < K; k++) acc += A[(int64_t)m * K + k] * Bm[(int64_t)k * N + c];
                    y[(int64_t)m * N + c] = acc;
                }
            return 0;
        }
        conv_loops(g, nd, B, val, y);
        return 0;
    default:
        return rc_errf(err, el, "n%d %s: cannot evaluate", i, I->name);
    }
}

int rc_prim_eval(const rc_prim_graph *g, const rc_prim_eval_ctx *cx, const unsigned char *need,
                 double **val, char *err, size_t errlen)
{
    for (int i = 0; i < g->n; i++) val[i] = NULL;
    if (cx->B < 1) return rc_errf(err, errlen, "graph: batch %d < 1", cx->B);
    for (int i = 0; i < g->n; i++) {
        if (need && !need[i]) continue;
        if (eval_node(g, cx, i, val, err, errlen)) { rc_prim_vals_free(g, val); return -1; }
    }
    return 0;
}

void rc_prim_vals_free(const rc_prim_graph *g, double **val)
{
    for (int i = 0; i < g->n; i++) { free(val[i]); val[i] = NULL; }
}
