/* prim.c — the primitive table, the graph builder with its shape rules, and reverse-mode
 * autodiff (see prim.h for the IR; prim_text.c for the canonical text, prim_eval.c for the
 * reference interpreter).
 *
 * Every primitive is one row of `table` below: its name, kind, arity, whether it is
 * differentiable, its elementwise C/CUDA expression, its reference function (elementwise ops;
 * the others are loops in prim_eval.c keyed by kind) and its vector-Jacobian product, written
 * with rc_prim_add — so the backward graph is made of the same primitives as the forward and
 * every emitter renders it without knowing about gradients. A static assert keeps the table
 * and the enum the same length.
 *
 * Shape rules live in check_shape (one switch over kinds, then ops). Symbolic dimensions
 * (RC_PRIM_B, RC_PRIM_CELLS) may appear anywhere a dimension only has to match another; where a
 * dimension is arithmetic (conv windows, slices, pads, concat) it must be a constant.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "prim.h"

/* ---------------------------------------------------------------- elementwise references */

static double f_neg(double x, double v) { (void)v; return -x; }
static double f_recip(double x, double v) { (void)v; return 1.0 / x; }
static double f_exp(double x, double v) { (void)v; return exp(x); }
static double f_log(double x, double v) { (void)v; return log(x); }
static double f_log1p(double x, double v) { (void)v; return log1p(x); }
static double f_abs(double x, double v) { (void)v; return fabs(x); }
static double f_sqrt(double x, double v) { (void)v; return sqrt(x); }
static double f_tanh(double x, double v) { (void)v; return tanh(x); }
static double f_sigmoid(double x, double v) { (void)v; return 1.0 / (1.0 + exp(-x)); }
/* PyTorch's Softplus (beta 1, threshold 20): linear above 20 */
static double f_softplus(double x, double v) { (void)v; return x > 20.0 ? x : log1p(exp(x)); }
static double f_powc(double x, double v) { return pow(x, v); }
static double f_sign(double x, double v) { (void)v; return (x > 0) - (x < 0); }
static double f_id(double x, double v) { (void)v; return x; }
static double f_erf(double x, double v) { (void)v; return erf(x); }
static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_max(double a, double b) { return a > b ? a : b; }
static double f_min(double a, double b) { return a < b ? a : b; }
static double f_gt(double a, double b) { return a > b; }
static double f_ge(double a, double b) { return a >= b; }
static double f_eq(double a, double b) { return a == b; }

/* ---------------------------------------------------------------- vector-Jacobian products */

#define VJP(name) static int name(rc_prim_graph *G, int id, int arg, int g, char *err, size_t el)
#define N(i) (G->node[i])
#define TRY(x) do { if ((x) < 0) return -1; } while (0)

static int cst(rc_prim_graph *G, int like, double v, char *err, size_t el) { return rc_prim_const_like(G, like, v, err, el); }
static int bin(rc_prim_graph *G, rc_prim_op op, int a, int b, char *err, size_t el) { return rc_prim_bin(G, op, a, b, err, el); }
static int un(rc_prim_graph *G, rc_prim_op op, int a, char *err, size_t el) { return rc_prim_un(G, op, a, err, el); }
/* the contribution t (of the node's shape) reduced to argument arg's shape */
static int to_arg(rc_prim_graph *G, int id, int arg, int t, char *err, size_t el)
{
    const rc_prim_node *a = &N(N(id).in[arg]);
    return rc_prim_unbroadcast(G, t, a->rank, a->dims, err, el);
}

VJP(vjp_neg) { (void)arg; (void)id; return un(G, RC_P_NEG, g, err, el); }
VJP(vjp_recip)   /* d(1/x) = -1/x^2 = -y*y */
{
    (void)arg;
    int yy = bin(G, RC_P_MUL, id, id, err, el); TRY(yy);
    int t = bin(G, RC_P_MUL, g, yy, err, el); TRY(t);
    return un(G, RC_P_NEG, t, err, el);
}
VJP(vjp_exp) { (void)arg; return bin(G, RC_P_MUL, g, id, err, el); }
VJP(vjp_log) { (void)arg; return bin(G, RC_P_DIV, g, N(id).in[0], err, el); }
VJP(vjp_log1p)
{
    (void)arg;
    int x = N(id).in[0];
    int one = cst(G, x, 1.0, err, el); TRY(one);
    int d = bin(G, RC_P_ADD, x, one, err, el); TRY(d);
    return bin(G, RC_P_DIV, g, d, err, el);
}
VJP(vjp_abs)     /* sign(x): 0 at 0, as PyTorch */
{
    (void)arg;
    int s = un(G, RC_P_SIGN, N(id).in[0], err, el); TRY(s);
    return bin(G, RC_P_MUL, g, s, err, el);
}
VJP(vjp_sqrt)
{
    (void)arg;
    int two = cst(G, id, 2.0, err, el); TRY(two);
    int d = bin(G, RC_P_MUL, two, id, err, el); TRY(d);
    return bin(G, RC_P_DIV, g, d, err, el);
}
VJP(vjp_tanh)
{
    (void)arg;
    int one = cst(G, id, 1.0, err, el); TRY(one);
    int yy = bin(G, RC_P_MUL, id, id, err, el); TRY(yy);
    int d = bin(G, RC_P_SUB, one, yy, err, el); TRY(d);
    return bin(G, RC_P_MUL, g, d, err, el);
}
VJP(vjp_sigmoid)
{
    (void)arg;
    int one = cst(G, id, 1.0, err, el); TRY(one);
    int om = bin(G, RC_P_SUB, one, id, err, el); TRY(om);
    int d = bin(G, RC_P_MUL, id, om, err, el); TRY(d);
    return bin(G, RC_P_MUL, g, d, err, el);
}
VJP(vjp_softplus)   /* sigmoid(x) (1 - 2e-9 at the threshold: PyTorch's own derivative) */
{
    (void)arg;
    int s = un(G, RC_P_SIGMOID, N(id).in[0], err, el); TRY(s);
    return bin(G, RC_P_MUL, g, s, err, el);
}
VJP(vjp_powc)
{
    (void)arg;
    int x = N(id).in[0];
    double c = N(id).value;
    int p = rc_prim_add(G, RC_P_POWC, 1, &x, NULL, c - 1.0, 0, 0, NULL, N(id).line, err, el); TRY(p);
    int k = cst(G, x, c, err, el); TRY(k);
    int d = bin(G, RC_P_MUL, k, p, err, el); TRY(d);
    return bin(G, RC_P_MUL, g, d, err, el);
}
VJP(vjp_erf)      /* 2/sqrt(pi) exp(-x^2) */
{
    (void)arg;
    int x = N(id).in[0];
    int e = un(G, RC_P_EXP, un(G, RC_P_NEG, bin(G, RC_P_MUL, x, x, err, el), err, el), err, el); TRY(e);
    int d = bin(G, RC_P_MUL, cst(G, x, 1.1283791670955126, err, el), e, err, el); TRY(d);
    return bin(G, RC_P_MUL, g, d, err, el);
}
VJP(vjp_none) { (void)G; (void)id; (void)arg; (void)g; (void)err; (void)el; return -2; }
VJP(vjp_zero) { (void)G; (void)id; (void)arg; (void)g; (void)err; (void)el; return -3; }
VJP(vjp_add) { return to_arg(G, id, arg, g, err, el); }
VJP(vjp_sub)
{
    if (arg == 0) return to_arg(G, id, arg, g, err, el);
    int t = un(G, RC_P_NEG, g, err, el); TRY(t);
    return to_arg(G, id, arg, t, err, el);
}
VJP(vjp_mul)
{
    int t = bin(G, RC_P_MUL, g, N(id).in[1 - arg], err, el); TRY(t);
    return to_arg(G, id, arg, t, err, el);
}
VJP(vjp_div)   /* d(a/b)/da = 1/b; d/db = -a/b^2 = -y/b */
{
    int b = N(id).in[1], t;
    if (arg == 0) t = bin(G, RC_P_DIV, g, b, err, el);
    else {
        int q = bin(G, RC_P_DIV, id, b, err, el); TRY(q);
        int m = bin(G, RC_P_MUL, g, q, err, el); TRY(m);
        t = un(G, RC_P_NEG, m, err, el);
    }
    TRY(t);
    return to_arg(G, id, arg, t, err, el);
}
/* max: the gradient goes to a where a > b, else to b (relu = max(x, 0) has gradient 0 at 0, as
 * PyTorch's relu); min: to a where b > a, else to b. */
static int vjp_minmax(rc_prim_graph *G, int id, int arg, int g, int is_max, char *err, size_t el)
{
    int a = N(id).in[0], b = N(id).in[1];
    int c = is_max ? bin(G, RC_P_GT, a, b, err, el) : bin(G, RC_P_GT, b, a, err, el); TRY(c);
    int z = cst(G, g, 0.0, err, el); TRY(z);
    int in3[3] = { c, arg == 0 ? g : z, arg == 0 ? z : g };
    int t = rc_prim_add(G, RC_P_SELECT, 3, in3, NULL, 0, 0, 0, NULL, N(id).line, err, el); TRY(t);
    return to_arg(G, id, arg, t, err, el);
}
VJP(vjp_max) { return vjp_minmax(G, id, arg, g, 1, err, el); }
VJP(vjp_min) { return vjp_minmax(G, id, arg, g, 0, err, el); }
VJP(vjp_select)
{
    if (arg == 0) return -3;
    int z = cst(G, g, 0.0, err, el); TRY(z);
    int in3[3] = { N(id).in[0], arg == 1 ? g : z, arg == 1 ? z : g };
    int t = rc_prim_add(G, RC_P_SELECT, 3, in3, NULL, 0, 0, 0, NULL, N(id).line, err, el); TRY(t);
    return to_arg(G, id, arg, t, err, el);
}
VJP(vjp_sum)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    return rc_prim_expand_to(G, g, x->rank, x->dims, err, el);
}
/* the element count of the axes in mask of node x, as a NUMEL leaf of x's rank */
static int numel_of(rc_prim_graph *G, int x, int mask, int line, char *err, size_t el)
{
    int a[RC_PRIM_NATTR] = { 1, 0, 0 }, ones[RC_PRIM_MAX_RANK];
    const rc_prim_node *nx = &N(x);
    int rank = nx->rank;
    long long cnt = 1;            /* up to RC_PRIM_MAX_ELEMS = 2^31: one more than an int holds */
    for (int k = 0; k < rank; k++) {
        ones[k] = 1;
        if (!(mask >> k & 1)) continue;
        int d = nx->dims[k];
        if (d == RC_PRIM_B) a[1]++;
        else if (d == RC_PRIM_CELLS) a[2]++;
        else cnt *= d;
    }
    if (cnt > INT_MAX) return rc_errf(err, el, "mean: %lld elements to count, over %d", cnt, INT_MAX);
    a[0] = (int)cnt;
    return rc_prim_add(G, RC_P_NUMEL, 0, NULL, a, 0, 0, rank, ones, line, err, el);
}
VJP(vjp_mean)
{
    (void)arg;
    int x = N(id).in[0];
    int e = rc_prim_expand_to(G, g, N(x).rank, N(x).dims, err, el); TRY(e);
    int n = numel_of(G, x, N(id).attr[0], N(id).line, err, el); TRY(n);
    return bin(G, RC_P_DIV, e, n, err, el);
}
VJP(vjp_rmax)   /* split evenly between ties, as torch.amax */
{
    (void)arg;
    int x = N(id).in[0], r = N(x).rank;
    int ey = rc_prim_expand_to(G, id, r, N(x).dims, err, el); TRY(ey);
    int m = bin(G, RC_P_EQ, x, ey, err, el); TRY(m);
    int cnt = rc_prim_add(G, RC_P_SUM, 1, &m, N(id).attr, 0, 0, 0, NULL, N(id).line, err, el); TRY(cnt);
    int q = bin(G, RC_P_DIV, g, cnt, err, el); TRY(q);
    int eq = rc_prim_expand_to(G, q, r, N(x).dims, err, el); TRY(eq);
    return bin(G, RC_P_MUL, m, eq, err, el);
}
VJP(vjp_reshape)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    int a[RC_PRIM_NATTR] = {0};
    memcpy(a, x->dims, sizeof(int) * (size_t)x->rank);
    return rc_prim_add(G, RC_P_RESHAPE, 1, &g, a, 0, 0, x->rank, NULL, N(id).line, err, el);
}
VJP(vjp_transpose)
{
    (void)arg;
    int a[RC_PRIM_NATTR] = {0};
    for (int k = 0; k < N(id).rank; k++) a[N(id).attr[k]] = k;
    return rc_prim_add(G, RC_P_TRANSPOSE, 1, &g, a, 0, 0, N(id).rank, NULL, N(id).line, err, el);
}
VJP(vjp_slice)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    int a[RC_PRIM_NATTR] = {0};
    for (int k = 0; k < x->rank; k++) {
        a[2 * k] = N(id).attr[2 * k];
        a[2 * k + 1] = x->dims[k] < 0 ? 0 : x->dims[k] - N(id).attr[2 * k + 1];
    }
    return rc_prim_add(G, RC_P_PAD, 1, &g, a, 0, 0, 0, NULL, N(id).line, err, el);
}
VJP(vjp_pad)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    int a[RC_PRIM_NATTR] = {0};
    for (int k = 0; k < x->rank; k++) {
        a[2 * k] = N(id).attr[2 * k];
        a[2 * k + 1] = x->dims[k] < 0 ? x->dims[k] : N(id).attr[2 * k] + x->dims[k];
    }
    return rc_prim_add(G, RC_P_SLICE, 1, &g, a, 0, 0, 0, NULL, N(id).line, err, el);
}
VJP(vjp_concat)
{
    int ax = N(id).attr[0], a[RC_PRIM_NATTR] = {0};
    const rc_prim_node *y = &N(id), *x0 = &N(y->in[0]);
    for (int k = 0; k < y->rank; k++) { a[2 * k] = 0; a[2 * k + 1] = y->dims[k]; }
    a[2 * ax] = arg == 0 ? 0 : x0->dims[ax];
    a[2 * ax + 1] = arg == 0 ? x0->dims[ax] : y->dims[ax];
    return rc_prim_add(G, RC_P_SLICE, 1, &g, a, 0, 0, 0, NULL, N(id).line, err, el);
}
VJP(vjp_cellpick)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    int a[RC_PRIM_NATTR] = {N(id).attr[0], x->dims[2], x->dims[3]};
    return rc_prim_add(G, RC_P_CELLPLACE, 1, &g, a, 0, 0, 0, NULL, N(id).line, err, el);
}
VJP(vjp_cellplace)
{
    (void)arg;
    int a[RC_PRIM_NATTR] = {N(id).attr[0]};
    return rc_prim_add(G, RC_P_CELLPICK, 1, &g, a, 0, 0, 0, NULL, N(id).line, err, el);
}
VJP(vjp_expand)
{
    (void)arg;
    const rc_prim_node *x = &N(N(id).in[0]);
    return rc_prim_unbroadcast(G, g, x->rank, x->dims, err, el);
}
VJP(vjp_matmul)   /* a (M,K) b (K,N): da = g b^T, db = a^T g */
{
    int a = N(id).in[0], b = N(id).in[1], line = N(id).line;
    int perm[RC_PRIM_NATTR] = { 1, 0 };
    if (arg == 0) {
        int bt = rc_prim_add(G, RC_P_TRANSPOSE, 1, &b, perm, 0, 0, 0, NULL, line, err, el); TRY(bt);
        return bin(G, RC_P_MATMUL, g, bt, err, el);
    }
    int at = rc_prim_add(G, RC_P_TRANSPOSE, 1, &a, perm, 0, 0, 0, NULL, line, err, el); TRY(at);
    return bin(G, RC_P_MATMUL, at, g, err, el);
}
VJP(vjp_conv)
{
    const rc_prim_node *y = &N(id), *x = &N(y->in[0]), *w = &N(y->in[1]);
    int a[RC_PRIM_NATTR];
    memcpy(a, y->attr, sizeof a);
    if (arg == 0) {
        a[5] = x->dims[2]; a[6] = x->dims[3];
        int in2[2] = { g, y->in[1] };
        return rc_prim_add(G, RC_P_CONV2D_DX, 2, in2, a, 0, 0, 0, NULL, y->line, err, el);
    }
    a[5] = w->dims[w->rank - 1]; a[6] = w->rank == 6;
    int in2[2] = { y->in[0], g };
    return rc_prim_add(G, RC_P_CONV2D_DW, 2, in2, a, 0, 0, 0, NULL, y->line, err, el);
}

/* ---------------------------------------------------------------- the table */

#define LEAF(nm) { nm, RC_PK_LEAF, -1, 0, NULL, NULL, NULL, vjp_none, 0 }
static const rc_prim_info table[RC_P_COUNT] = {
    [RC_P_INPUT] = LEAF("input"), [RC_P_PARAM] = LEAF("param"), [RC_P_STATE] = LEAF("state"),
    [RC_P_CONST] = { "const", RC_PK_LEAF, -1, 0, "%v", NULL, NULL, vjp_none, 0 },
    [RC_P_RANDN] = LEAF("randn"), [RC_P_RANDU] = LEAF("randu"),
    [RC_P_NUMEL] = { "numel", RC_PK_LEAF, -1, 0, "%n", NULL, NULL, vjp_none, 0 },
    [RC_P_NEG]     = { "neg", RC_PK_UNARY, 1, 1, "(-%0)", f_neg, NULL, vjp_neg, 1 },
    [RC_P_RECIP]   = { "recip", RC_PK_UNARY, 1, 1, "(1.0f / %0)", f_recip, NULL, vjp_recip, 1 },
    [RC_P_EXP]     = { "exp", RC_PK_UNARY, 1, 1, "expf(%0)", f_exp, NULL, vjp_exp, 1 },
    [RC_P_LOG]     = { "log", RC_PK_UNARY, 1, 1, "logf(%0)", f_log, NULL, vjp_log, 1 },
    [RC_P_LOG1P]   = { "log1p", RC_PK_UNARY, 1, 1, "log1pf(%0)", f_log1p, NULL, vjp_log1p, 1 },
    [RC_P_ABS]     = { "abs", RC_PK_UNARY, 1, 1, "fabsf(%0)", f_abs, NULL, vjp_abs, 1 },
    [RC_P_SQRT]    = { "sqrt", RC_PK_UNARY, 1, 1, "sqrtf(%0)", f_sqrt, NULL, vjp_sqrt, 1 },
    [RC_P_TANH]    = { "tanh", RC_PK_UNARY, 1, 1, "tanhf(%0)", f_tanh, NULL, vjp_tanh, 1 },
    [RC_P_SIGMOID] = { "sigmoid", RC_PK_UNARY, 1, 1, "(1.0f / (1.0f + expf(-%0)))", f_sigmoid, NULL, vjp_sigmoid, 4 },
    [RC_P_SOFTPLUS] = { "softplus", RC_PK_UNARY, 1, 1, "(%0 > 20.0f ? %0 : log1pf(expf(%0)))", f_softplus, NULL, vjp_softplus, 4 },
    [RC_P_POWC]    = { "pow", RC_PK_UNARY, 1, 1, "powf(%0, %v)", f_powc, NULL, vjp_powc, 4 },
    [RC_P_SIGN]    = { "sign", RC_PK_UNARY, 1, 0, "(float)((%0 > 0.0f) - (%0 < 0.0f))", f_sign, NULL, vjp_none, 1 },
    [RC_P_STOPGRAD] = { "stop_gradient", RC_PK_UNARY, 1, 1, "(%0)", f_id, NULL, vjp_zero, 0 },
    [RC_P_ERF]     = { "erf", RC_PK_UNARY, 1, 1, "erff(%0)", f_erf, NULL, vjp_erf, 8 },
    [RC_P_ADD] = { "add", RC_PK_BINARY, 2, 1, "(%0 + %1)", NULL, f_add, vjp_add, 1 },
    [RC_P_SUB] = { "sub", RC_PK_BINARY, 2, 1, "(%0 - %1)", NULL, f_sub, vjp_sub, 1 },
    [RC_P_MUL] = { "mul", RC_PK_BINARY, 2, 1, "(%0 * %1)", NULL, f_mul, vjp_mul, 1 },
    [RC_P_DIV] = { "div", RC_PK_BINARY, 2, 1, "(%0 / %1)", NULL, f_div, vjp_div, 1 },
    [RC_P_MAX] = { "max", RC_PK_BINARY, 2, 1, "fmaxf(%0, %1)", NULL, f_max, vjp_max, 1 },
    [RC_P_MIN] = { "min", RC_PK_BINARY, 2, 1, "fminf(%0, %1)", NULL, f_min, vjp_min, 1 },
    [RC_P_GT]  = { "gt", RC_PK_BINARY, 2, 0, "(float)(%0 > %1)", NULL, f_gt, vjp_none, 1 },
    [RC_P_GE]  = { "ge", RC_PK_BINARY, 2, 0, "(float)(%0 >= %1)", NULL, f_ge, vjp_none, 1 },
    [RC_P_EQ]  = { "eq", RC_PK_BINARY, 2, 0, "(float)(%0 == %1)", NULL, f_eq, vjp_none, 1 },
    [RC_P_SELECT] = { "select", RC_PK_SELECT, 3, 1, "(%0 != 0.0f ? %1 : %2)", NULL, NULL, vjp_select, 1 },
    [RC_P_SUM]  = { "sum", RC_PK_REDUCE, 1, 1, NULL, NULL, NULL, vjp_sum, 1 },
    [RC_P_MEAN] = { "mean", RC_PK_REDUCE, 1, 1, NULL, NULL, NULL, vjp_mean, 1 },
    [RC_P_RMAX] = { "amax", RC_PK_REDUCE, 1, 1, NULL, NULL, NULL, vjp_rmax, 1 },
    [RC_P_RESHAPE]   = { "reshape", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_reshape, 0 },
    [RC_P_TRANSPOSE] = { "transpose", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_transpose, 0 },
    [RC_P_SLICE]     = { "slice", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_slice, 0 },
    [RC_P_PAD]       = { "pad", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_pad, 0 },
    [RC_P_CONCAT]    = { "concat", RC_PK_MOVE, 2, 1, NULL, NULL, NULL, vjp_concat, 0 },
    [RC_P_EXPAND]    = { "expand", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_expand, 0 },
    [RC_P_CELLPICK]  = { "cellpick", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_cellpick, 0 },
    [RC_P_CELLPLACE] = { "cellplace", RC_PK_MOVE, 1, 1, NULL, NULL, NULL, vjp_cellplace, 0 },
    [RC_P_MATMUL]    = { "matmul", RC_PK_CONTRACT, 2, 1, NULL, NULL, NULL, vjp_matmul, 2 },
    [RC_P_CONV2D]    = { "conv2d", RC_PK_CONTRACT, 2, 1, NULL, NULL, NULL, vjp_conv, 2 },
    [RC_P_CONV2D_DX] = { "conv2d_dx", RC_PK_CONTRACT, 2, 0, NULL, NULL, NULL, vjp_none, 2 },
    [RC_P_CONV2D_DW] = { "conv2d_dw", RC_PK_CONTRACT, 2, 0, NULL, NULL, NULL, vjp_none, 2 },
    [RC_P_UPDATE]    = { "update", RC_PK_SINK, 1, 0, NULL, NULL, NULL, vjp_none, 0 },
};
_Static_assert(sizeof table / sizeof table[0] == RC_P_COUNT, "one row per primitive");

const rc_prim_info *rc_prim_table(void) { return table; }
const char *rc_prim_name(rc_prim_op op) { return (unsigned)op < RC_P_COUNT ? table[op].name : "?"; }
int rc_prim_lookup(const char *name)
{
    for (int i = 0; i < RC_P_COUNT; i++)
        if (table[i].name && !strcmp(table[i].name, name)) return i;
    return -1;
}

int rc_prim_decl_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 31) return 0;
    int seg = 0;   /* characters in the current dot-separated segment */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (!seg || i + 1 == n) return 0;
            seg = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (seg && c >= '0' && c <= '9')) {
            seg++;
        } else {
            return 0;
        }
    }
    return 1;
}

static int dot_suffix(const char *a, const char *b)   /* a ends with "." b */
{
    size_t la = strlen(a), lb = strlen(b);
    return la > lb && a[la - lb - 1] == '.' && !strcmp(a + la - lb, b);
}

int rc_prim_decl_names_clash(const char *a, const char *b)
{
    return !strcmp(a, b) || dot_suffix(a, b) || dot_suffix(b, a);
}

/* ---------------------------------------------------------------- graph storage */

void rc_prim_init(rc_prim_graph *g)
{
    memset(g, 0, sizeof *g);
    g->out[0] = g->out[1] = -1;
    g->grad_in[0] = g->grad_in[1] = -1;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < RC_PRIM_MAX_DECL; k++) g->grad_param[m][k] = -1;
}

void rc_prim_free(rc_prim_graph *g)
{
    if (!g) return;
    free(g->node);
    free(g->hash);
    g->node = NULL;
    g->hash = NULL;
    g->n = g->cap = g->hash_cap = 0;
}

static uint64_t node_hash(const rc_prim_node *nd)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(v) do { h ^= (uint64_t)(v); h *= 1099511628211ull; } while (0)
    MIX(nd->op); MIX(nd->n_in); MIX(nd->ref); MIX(nd->rank);
    for (int i = 0; i < nd->n_in; i++) MIX((uint32_t)nd->in[i]);
    for (int i = 0; i < nd->rank; i++) MIX((uint32_t)nd->dims[i]);
    for (int i = 0; i < RC_PRIM_NATTR; i++) MIX((uint32_t)nd->attr[i]);
    uint64_t vb;
    memcpy(&vb, &nd->value, sizeof vb);
    MIX(vb);
#undef MIX
    return h;
}

static int node_same(const rc_prim_node *a, const rc_prim_node *b)
{
    if (a->op != b->op || a->n_in != b->n_in || a->ref != b->ref || a->rank != b->rank) return 0;
    if (memcmp(a->in, b->in, sizeof(int) * (size_t)a->n_in)) return 0;
    if (memcmp(a->dims, b->dims, sizeof(int) * (size_t)a->rank)) return 0;
    if (memcmp(a->attr, b->attr, sizeof a->attr)) return 0;
    return memcmp(&a->value, &b->value, sizeof a->value) == 0;
}

static int hash_rebuild(rc_prim_graph *g, int cap)
{
    int *h = malloc(sizeof *h * (size_t)cap);
    if (!h) return -1;
    for (int i = 0; i < cap; i++) h[i] = -1;
    for (int i = 0; i < g->n; i++) {
        if (g->node[i].op == RC_P_UPDATE) continue;
        size_t s = (size_t)(node_hash(&g->node[i]) & (uint64_t)(cap - 1));
        while (h[s] >= 0) s = (s + 1) & (size_t)(cap - 1);
        h[s] = i;
    }
    free(g->hash);
    g->hash = h;
    g->hash_cap = cap;
    return 0;
}

/* ---------------------------------------------------------------- shape rules */

static int is_sym(int d) { return d < 0; }
static const char *dimtxt(int d, char *buf)
{
    if (d == RC_PRIM_B) return "B";
    if (d == RC_PRIM_CELLS) return "cells";
    snprintf(buf, 16, "%d", d);
    return buf;
}
static void shape_txt(const rc_prim_node *n, char *out, size_t len)
{
    size_t k = 0;
    char b[16];
    k += (size_t)snprintf(out + k, len - k, "(");
    for (int i = 0; i < n->rank && k < len; i++)
        k += (size_t)snprintf(out + k, len - k, "%s%s", i ? "," : "", dimtxt(n->dims[i], b));
    if (k < len) snprintf(out + k, len - k, ")");
}

static int dims_ok(int rank, const int *dims, const char *what, char *err, size_t el)
{
    if (rank < 0 || rank > RC_PRIM_MAX_RANK)
        return rc_errf(err, el, "%s: rank %d outside 0..%d", what, rank, RC_PRIM_MAX_RANK);
    double n = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 0 || dims[k] < RC_PRIM_CELLS)
            return rc_errf(err, el, "%s: dimension %d is %d (expected >= 1)", what, k + 1, dims[k]);
        if (dims[k] > 0) n *= dims[k];
    }
    if (n > (double)RC_PRIM_MAX_ELEMS)
        return rc_errf(err, el, "%s: %.0f elements per sample, over the limit of %lld", what, n,
                       (long long)RC_PRIM_MAX_ELEMS);
    return 0;
}

/* Infer nd's shape from its inputs (g's nodes) and attributes; message prefix is the op. */
static int check_shape(const rc_prim_graph *g, rc_prim_node *nd, char *err, size_t el)
{
    const rc_prim_info *I = &table[nd->op];
    const char *nm = I->name;
    const rc_prim_node *a = nd->n_in > 0 ? &g->node[nd->in[0]] : NULL;
    const rc_prim_node *b = nd->n_in > 1 ? &g->node[nd->in[1]] : NULL;
    char s1[96], s2[96];
    switch (I->kind) {
    case RC_PK_LEAF:
        if (nd->op == RC_P_PARAM || nd->op == RC_P_STATE) {
            int n = nd->op == RC_P_PARAM ? g->n_param : g->n_state;
            if (nd->ref < 0 || nd->ref >= n) return rc_errf(err, el, "%s: no %s %d declared", nm, nm, nd->ref);
            const rc_prim_decl *d = nd->op == RC_P_PARAM ? &g->param[nd->ref] : &g->state[nd->ref];
            nd->rank = d->rank;
            memcpy(nd->dims, d->dims, sizeof(int) * (size_t)d->rank);
        }
        if (nd->op == RC_P_INPUT && (nd->ref < 0 || nd->ref > 1)) return rc_errf(err, el, "input: index %d (0 or 1)", nd->ref);
        if ((nd->op == RC_P_RANDN || nd->op == RC_P_RANDU) && (nd->attr[0] < 0 || nd->attr[0] >= 64 - RC_PRIM_RNG_SUB0))
            return rc_errf(err, el, "%s: stream %d outside 0..%d", nm, nd->attr[0], 63 - RC_PRIM_RNG_SUB0);
        if (nd->op == RC_P_NUMEL) {
            for (int k = 0; k < nd->rank; k++) if (nd->dims[k] != 1) return rc_errf(err, el, "numel: dims must be 1");
            if (nd->attr[0] < 1 || nd->attr[1] < 0 || nd->attr[1] > 1 || nd->attr[2] < 0 || nd->attr[2] > 1)
                return rc_errf(err, el, "numel: bad count");
        }
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    case RC_PK_UNARY:
        nd->rank = a->rank;
        memcpy(nd->dims, a->dims, sizeof nd->dims);
        return 0;
    case RC_PK_BINARY: case RC_PK_SELECT: {
        nd->rank = a->rank;
        for (int i = 1; i < nd->n_in; i++)
            if (g->node[nd->in[i]].rank != a->rank) {
                shape_txt(a, s1, sizeof s1); shape_txt(&g->node[nd->in[i]], s2, sizeof s2);
                return rc_errf(err, el, "%s: operands of rank %d %s and %d %s (equal ranks needed)", nm,
                               a->rank, s1, g->node[nd->in[i]].rank, s2);
            }
        for (int k = 0; k < a->rank; k++) {
            int d = 1;
            for (int i = 0; i < nd->n_in; i++) {
                int e = g->node[nd->in[i]].dims[k];
                if (e == 1 || e == d) continue;
                if (d != 1) {
                    shape_txt(a, s1, sizeof s1); shape_txt(&g->node[nd->in[i]], s2, sizeof s2);
                    return rc_errf(err, el, "%s: shapes %s and %s do not broadcast (axis %d)", nm, s1, s2, k + 1);
                }
                d = e;
            }
            nd->dims[k] = d;
        }
        return 0;
    }
    case RC_PK_REDUCE:
        if (nd->attr[0] <= 0 || nd->attr[0] >= (1 << a->rank))
            return rc_errf(err, el, "%s: axes mask %d outside the %d axes", nm, nd->attr[0], a->rank);
        nd->rank = a->rank;
        for (int k = 0; k < a->rank; k++) nd->dims[k] = (nd->attr[0] >> k & 1) ? 1 : a->dims[k];
        return 0;
    case RC_PK_SINK:
        if (nd->ref < 0 || nd->ref >= g->n_state) return rc_errf(err, el, "update: no state %d declared", nd->ref);
        if (a->rank != g->state[nd->ref].rank || memcmp(a->dims, g->state[nd->ref].dims, sizeof(int) * (size_t)a->rank)) {
            rc_prim_node t = { .rank = g->state[nd->ref].rank };
            memcpy(t.dims, g->state[nd->ref].dims, sizeof t.dims);
            shape_txt(a, s1, sizeof s1); shape_txt(&t, s2, sizeof s2);
            return rc_errf(err, el, "update: value %s does not have the shape of state '%s' %s", s1,
                           g->state[nd->ref].name, s2);
        }
        nd->rank = 0;
        return 0;
    default: break;
    }
    shape_txt(a, s1, sizeof s1);
    if (b) shape_txt(b, s2, sizeof s2);
    switch (nd->op) {
    case RC_P_RESHAPE: {
        double pa = 1, pb = 1;
        int sa[2] = {0, 0}, sb[2] = {0, 0};
        for (int k = 0; k < a->rank; k++) { if (is_sym(a->dims[k])) sa[-a->dims[k] - 1]++; else pa *= a->dims[k]; }
        if (dims_ok(nd->rank, nd->attr, nm, err, el)) return -1;
        for (int k = 0; k < nd->rank; k++) { if (is_sym(nd->attr[k])) sb[-nd->attr[k] - 1]++; else pb *= nd->attr[k]; }
        if (pa != pb || sa[0] != sb[0] || sa[1] != sb[1])
            return rc_errf(err, el, "reshape: %s cannot become a shape of another element count", s1);
        memcpy(nd->dims, nd->attr, sizeof(int) * (size_t)nd->rank);
        return 0;
    }
    case RC_P_TRANSPOSE: {
        int seen = 0;
        nd->rank = a->rank;
        for (int k = 0; k < a->rank; k++) {
            int p = nd->attr[k];
            if (p < 0 || p >= a->rank || (seen >> p & 1)) return rc_errf(err, el, "transpose: not a permutation of %d axes", a->rank);
            seen |= 1 << p;
            nd->dims[k] = a->dims[p];
        }
        return 0;
    }
    case RC_P_SLICE: case RC_P_PAD:
        nd->rank = a->rank;
        for (int k = 0; k < a->rank; k++) {
            int lo = nd->attr[2 * k], hi = nd->attr[2 * k + 1], d = a->dims[k];
            if (is_sym(d)) {
                if (nd->op == RC_P_SLICE ? (lo != 0 || hi != d) : (lo != 0 || hi != 0))
                    return rc_errf(err, el, "%s: axis %d has %s elements, only known at run time: it cannot be %s", nm,
                                   k + 1, d == RC_PRIM_B ? "B" : "cells", nd->op == RC_P_SLICE ? "sliced" : "padded");
                nd->dims[k] = d;
            } else if (nd->op == RC_P_SLICE) {
                if (lo < 0 || hi > d || lo >= hi)
                    return rc_errf(err, el, "slice: axis %d: [%d, %d) is not a non-empty range of 0..%d", k + 1, lo, hi, d);
                nd->dims[k] = hi - lo;
            } else {
                if (lo < 0 || hi < 0) return rc_errf(err, el, "pad: axis %d: negative padding", k + 1);
                if ((long long)d + lo + hi > INT_MAX) return rc_errf(err, el, "pad: axis %d: %d + %d + %d elements", k + 1, lo, d, hi);
                nd->dims[k] = d + lo + hi;
            }
        }
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    case RC_P_CONCAT: {
        int ax = nd->attr[0];
        if (b->rank != a->rank || ax < 0 || ax >= a->rank)
            return rc_errf(err, el, "concat: %s and %s on axis %d", s1, s2, ax + 1);
        nd->rank = a->rank;
        for (int k = 0; k < a->rank; k++) {
            if (k == ax) {
                if (is_sym(a->dims[k]) || is_sym(b->dims[k]))
                    return rc_errf(err, el, "concat: axis %d is only known at run time", k + 1);
                if ((long long)a->dims[k] + b->dims[k] > INT_MAX)
                    return rc_errf(err, el, "concat: %s and %s: axis %d too long", s1, s2, k + 1);
                nd->dims[k] = a->dims[k] + b->dims[k];
            } else if (a->dims[k] != b->dims[k]) {
                return rc_errf(err, el, "concat: %s and %s differ on axis %d", s1, s2, k + 1);
            } else nd->dims[k] = a->dims[k];
        }
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    }
    case RC_P_EXPAND:
        nd->rank = a->rank;
        for (int k = 0; k < a->rank; k++) {
            int t = nd->attr[k];
            if (t != a->dims[k] && a->dims[k] != 1)
                return rc_errf(err, el, "expand: %s: axis %d cannot become %d", s1, k + 1, t);
            if (t == 0 || t < RC_PRIM_CELLS) return rc_errf(err, el, "expand: bad dimension %d", t);
            nd->dims[k] = t;
        }
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    case RC_P_CELLPICK: case RC_P_CELLPLACE: {
        int pick = nd->op == RC_P_CELLPICK;
        if (nd->attr[0] < 0 || nd->attr[0] > 2) return rc_errf(err, el, "%s: position %d (0 center, 1 data, 2 reference)", nm, nd->attr[0]);
        if (a->rank != 4 || a->dims[0] != RC_PRIM_B || a->dims[1] == RC_PRIM_B || (!pick && (a->dims[2] != 1 || a->dims[3] != 1)))
            return rc_errf(err, el, "%s: %s is not (B, cells, %s)", nm, s1, pick ? "H, W" : "1, 1");
        nd->rank = 4;
        nd->dims[0] = RC_PRIM_B;
        nd->dims[1] = a->dims[1];
        nd->dims[2] = pick ? 1 : nd->attr[1];
        nd->dims[3] = pick ? 1 : nd->attr[2];
        if (!pick && (nd->attr[1] < 1 || nd->attr[2] < 1)) return rc_errf(err, el, "cellplace: map %dx%d", nd->attr[1], nd->attr[2]);
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    }
    case RC_P_MATMUL:
        if (a->rank != 2 || b->rank != 2 || a->dims[1] != b->dims[0])
            return rc_errf(err, el, "matmul: %s x %s (needs (M,K) x (K,N))", s1, s2);
        nd->rank = 2;
        nd->dims[0] = a->dims[0];
        nd->dims[1] = b->dims[1];
        return 0;
    case RC_P_CONV2D: case RC_P_CONV2D_DX: case RC_P_CONV2D_DW: {
        int s = nd->attr[0], p = nd->attr[1], d = nd->attr[2], py = nd->attr[3], px = nd->attr[4];
        if (s < 1 || p < 0 || d < 1 || py < 1 || px < 1)
            return rc_errf(err, el, "%s: stride %d, pad %d, dilation %d, period %dx%d (stride, dilation, period >= 1; pad >= 0)", nm, s, p, d, py, px);
        /* the conv's own x (N,C,H,W) and w, whichever op this is */
        int N, C, H, W, O, K, Ho, Wo, tiled;
        const rc_prim_node *w = nd->op == RC_P_CONV2D_DW ? NULL : b;
        const rc_prim_node *x = nd->op == RC_P_CONV2D_DX ? NULL : a;
        const rc_prim_node *gy = nd->op == RC_P_CONV2D ? NULL : (nd->op == RC_P_CONV2D_DX ? a : b);
        if ((x && x->rank != 4) || (gy && gy->rank != 4) || (w && w->rank != 4 && w->rank != 6))
            return rc_errf(err, el, "%s: ranks of %s and %s (x (N,C,H,W), w (O,C,K,K) or (PY,PX,O,C,K,K))", nm, s1, s2);
        if (w) {
            tiled = w->rank == 6;
            O = w->dims[w->rank - 4]; C = w->dims[w->rank - 3]; K = w->dims[w->rank - 1];
            if (w->dims[w->rank - 2] != K) return rc_errf(err, el, "%s: kernel %dx%d is not square", nm, w->dims[w->rank - 2], K);
            if (tiled && (w->dims[0] != py || w->dims[1] != px))
                return rc_errf(err, el, "%s: tiled weight periods %dx%d, attribute %dx%d", nm, w->dims[0], w->dims[1], py, px);
            if (!tiled && (py != 1 || px != 1)) return rc_errf(err, el, "%s: a period needs a tiled weight (PY,PX,O,C,K,K)", nm);
        } else {
            tiled = nd->attr[6];
            K = nd->attr[5];
            C = x->dims[1]; O = gy->dims[1];
        }
        if (x) { N = x->dims[0]; H = x->dims[2]; W = x->dims[3]; if (x->dims[1] != C) return rc_errf(err, el, "%s: input has %s channels, weight expects %d", nm, x->dims[1] < 0 ? "a run-time number of" : (snprintf(s2, sizeof s2, "%d", x->dims[1]), s2), C); }
        else { N = gy->dims[0]; H = nd->attr[5]; W = nd->attr[6]; }
        if (is_sym(H) || is_sym(W) || is_sym(K) || K < 1 || H < 1 || W < 1)
            return rc_errf(err, el, "%s: spatial dims and kernel must be constants >= 1", nm);
        /* in 64 bits: pad, dilation and kernel are any int in an IR text */
        long long span = (long long)d * (K - 1) + 1, eh = (long long)H + 2ll * p - span, ew = (long long)W + 2ll * p - span;
        if (eh < 0 || ew < 0)
            return rc_errf(err, el, "%s: kernel %d (dilation %d) is larger than the %dx%d input (pad %d)", nm, K, d, H, W, p);
        if (eh / s + 1 > INT_MAX || ew / s + 1 > INT_MAX)
            return rc_errf(err, el, "%s: a %dx%d input padded by %d gives an output too large", nm, H, W, p);
        Ho = (int)(eh / s + 1);
        Wo = (int)(ew / s + 1);
        if (py > Ho || px > Wo) return rc_errf(err, el, "%s: period %dx%d larger than the %dx%d output", nm, py, px, Ho, Wo);
        if (gy && (gy->dims[1] != O || gy->dims[2] != Ho || gy->dims[3] != Wo || gy->dims[0] != N))
            return rc_errf(err, el, "%s: gradient shape does not match the conv's output", nm);
        if (nd->op == RC_P_CONV2D) { nd->rank = 4; nd->dims[0] = N; nd->dims[1] = O; nd->dims[2] = Ho; nd->dims[3] = Wo; }
        else if (nd->op == RC_P_CONV2D_DX) { nd->rank = 4; nd->dims[0] = N; nd->dims[1] = C; nd->dims[2] = H; nd->dims[3] = W; }
        else {
            int r = 0;
            nd->rank = tiled ? 6 : 4;
            if (tiled) { nd->dims[r++] = py; nd->dims[r++] = px; }
            nd->dims[r++] = O; nd->dims[r++] = C; nd->dims[r++] = K; nd->dims[r++] = K;
        }
        return dims_ok(nd->rank, nd->dims, nm, err, el);
    }
    default:
        return rc_errf(err, el, "%s: no shape rule", nm);
    }
}

int rc_prim_add(rc_prim_graph *g, rc_prim_op op, int n_in, const int *in, const int *attr,
                double value, int ref, int rank, const int *dims, int line, char *err, size_t errlen)
{
    if ((unsigned)op >= RC_P_COUNT) return rc_errf(err, errlen, "unknown primitive %d", (int)op);
    const rc_prim_info *I = &table[op];
    int want = I->n_in < 0 ? 0 : I->n_in;
    if (n_in != want) return rc_errf(err, errlen, "%s: %d operands (expected %d)", I->name, n_in, want);
    if (g->n >= RC_PRIM_MAX_NODES)
        return rc_errf(err, errlen, "%s: the graph has more than %d nodes", I->name, RC_PRIM_MAX_NODES);
    rc_prim_node nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        if (in[i] < 0 || in[i] >= g->n) return rc_errf(err, errlen, "%s: operand %d is not a node", I->name, i + 1);
        if (g->node[in[i]].op == RC_P_UPDATE) return rc_errf(err, errlen, "%s: operand %d is an update (no value)", I->name, i + 1);
        nd.in[i] = in[i];
    }
    /* a reshape's new shape may come as dims (rank entries): attr is then not read, so a
     * caller's short dims array is never read past its end */
    if (op == RC_P_RESHAPE && dims) {
        if (rank < 0 || rank > RC_PRIM_MAX_RANK) return rc_errf(err, errlen, "reshape: rank %d outside 0..%d", rank, RC_PRIM_MAX_RANK);
        memcpy(nd.attr, dims, sizeof(int) * (size_t)rank);
    } else if (attr) memcpy(nd.attr, attr, sizeof nd.attr);
    nd.value = value;
    nd.ref = ref;
    nd.line = line;
    g->err_line = line;
    if (I->kind == RC_PK_LEAF || op == RC_P_RESHAPE) {
        nd.rank = rank;
        if (rank < 0 || rank > RC_PRIM_MAX_RANK) return rc_errf(err, errlen, "%s: rank %d outside 0..%d", I->name, rank, RC_PRIM_MAX_RANK);
        if (dims) memcpy(nd.dims, dims, sizeof(int) * (size_t)rank);
    }
    if (check_shape(g, &nd, err, errlen)) return -1;
    /* an existing identical node (updates are sinks: never merged) */
    if (op != RC_P_UPDATE && g->hash) {
        size_t s = (size_t)(node_hash(&nd) & (uint64_t)(g->hash_cap - 1));
        for (; g->hash[s] >= 0; s = (s + 1) & (size_t)(g->hash_cap - 1))
            if (node_same(&g->node[g->hash[s]], &nd)) return g->hash[s];
    }
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        rc_prim_node *p = realloc(g->node, sizeof *p * (size_t)cap);
        if (!p) return rc_errf(err, errlen, "%s: out of memory", I->name);
        g->node = p;
        g->cap = cap;
    }
    g->node[g->n++] = nd;
    if (2 * g->n >= g->hash_cap) {
        if (hash_rebuild(g, g->hash_cap ? 2 * g->hash_cap : 256)) return rc_errf(err, errlen, "out of memory");
    } else if (op != RC_P_UPDATE) {
        size_t s = (size_t)(node_hash(&nd) & (uint64_t)(g->hash_cap - 1));
        while (g->hash[s] >= 0) s = (s + 1) & (size_t)(g->hash_cap - 1);
        g->hash[s] = g->n - 1;
    }
    return g->n - 1;
}

int rc_prim_un(rc_prim_graph *g, rc_prim_op op, int a, char *err, size_t errlen)
{
    int line = a >= 0 && a < g->n ? g->node[a].line : 0;
    return rc_prim_add(g, op, 1, &a, NULL, 0, 0, 0, NULL, line, err, errlen);
}

int rc_prim_bin(rc_prim_graph *g, rc_prim_op op, int a, int b, char *err, size_t errlen)
{
    int in2[2] = { a, b };
    int line = a >= 0 && a < g->n ? g->node[a].line : 0;
    return rc_prim_add(g, op, 2, in2, NULL, 0, 0, 0, NULL, line, err, errlen);
}

int rc_prim_const_like(rc_prim_graph *g, int like, double v, char *err, size_t errlen)
{
    if (like < 0 || like >= g->n) return rc_errf(err, errlen, "const: bad node");
    int ones[RC_PRIM_MAX_RANK] = { 1, 1, 1, 1, 1, 1 };
    return rc_prim_add(g, RC_P_CONST, 0, NULL, NULL, v, 0, g->node[like].rank, ones, 0, err, errlen);
}

int rc_prim_unbroadcast(rc_prim_graph *g, int a, int rank, const int *dims, char *err, size_t errlen)
{
    const rc_prim_node *n = &g->node[a];
    if (n->rank != rank) return rc_errf(err, errlen, "unbroadcast: rank %d to %d", n->rank, rank);
    int mask = 0;
    for (int k = 0; k < rank; k++) {
        if (n->dims[k] == dims[k]) continue;
        if (dims[k] != 1) return rc_errf(err, errlen, "unbroadcast: axis %d: %d to %d", k + 1, n->dims[k], dims[k]);
        mask |= 1 << k;
    }
    if (!mask) return a;
    int at[RC_PRIM_NATTR] = { mask };
    return rc_prim_add(g, RC_P_SUM, 1, &a, at, 0, 0, 0, NULL, n->line, err, errlen);
}

int rc_prim_expand_to(rc_prim_graph *g, int a, int rank, const int *dims, char *err, size_t errlen)
{
    const rc_prim_node *n = &g->node[a];
    if (n->rank == rank && !memcmp(n->dims, dims, sizeof(int) * (size_t)rank)) return a;
    int at[RC_PRIM_NATTR] = {0};
    memcpy(at, dims, sizeof(int) * (size_t)rank);
    return rc_prim_add(g, RC_P_EXPAND, 1, &a, at, 0, 0, 0, NULL, n->line, err, errlen);
}

/* ---------------------------------------------------------------- analysis */

/* mark the inputs of every marked node, last to first (nodes are in topological order) */
static void needed_sweep(const rc_prim_graph *g, unsigned char *need)
{
    for (int i = g->n - 1; i >= 0; i--)
        if (need[i])
            for (int k = 0; k < g->node[i].n_in; k++) need[g->node[i].in[k]] = 1;
}

void rc_prim_needed(const rc_prim_graph *g, const int *roots, int n_roots, unsigned char *need)
{
    memset(need, 0, (size_t)g->n);
    for (int i = 0; i < n_roots; i++)
        if (roots[i] >= 0 && roots[i] < g->n) need[roots[i]] = 1;
    needed_sweep(g, need);
}

void rc_prim_needed_mode(const rc_prim_graph *g, rc_prim_mode mode, unsigned char *need)
{
    memset(need, 0, (size_t)g->n);
    if (g->out[mode] >= 0 && g->out[mode] < g->n) need[g->out[mode]] = 1;
    for (int i = 0; mode == RC_PRIM_TRAIN && i < g->n; i++) need[i] |= g->node[i].op == RC_P_UPDATE;
    needed_sweep(g, need);
}

int64_t rc_prim_numel(const rc_prim_node *nd, int B)
{
    int64_t n = 1;
    for (int k = 0; k < nd->rank; k++) n *= nd->dims[k] == RC_PRIM_B ? B : nd->dims[k] < 0 ? 1 : nd->dims[k];
    return n;
}

double rc_prim_flops(const rc_prim_graph *g, rc_prim_mode mode)
{
    if (g->n == 0 || g->out[mode] < 0) return 0;
    unsigned char *need = malloc((size_t)g->n);
    if (!need) return 0;
    rc_prim_needed_mode(g, mode, need);
    double f = 0;
    for (int i = 0; i < g->n; i++) {
        if (!need[i]) continue;
        const rc_prim_node *nd = &g->node[i];
        const rc_prim_info *I = &table[nd->op];
        switch (I->kind) {
        case RC_PK_UNARY: case RC_PK_BINARY: case RC_PK_SELECT: f += I->flops * (double)rc_prim_numel(nd, 1); break;
        case RC_PK_REDUCE: f += I->flops * (double)rc_prim_numel(&g->node[nd->in[0]], 1); break;
        case RC_PK_CONTRACT:
            if (nd->op == RC_P_MATMUL) f += 2.0 * (double)rc_prim_numel(nd, 1) * g->node[nd->in[0]].dims[1];
            else {
                const rc_prim_node *w = &g->node[nd->in[1]];
                f += 2.0 * (double)rc_prim_numel(nd, 1) * w->dims[w->rank - 3] * w->dims[w->rank - 1] * w->dims[w->rank - 1];
            }
            break;
        default: break;
        }
    }
    free(need);
    return f;
}

/* ---------------------------------------------------------------- reverse-mode autodiff */

static int leaf_node(const rc_prim_graph *g, rc_prim_op op, int ref)
{
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == op && g->node[i].ref == ref) return i;
    return -1;
}

int rc_prim_grad(rc_prim_graph *g, rc_prim_mode mode, char *err, size_t errlen)
{
    if (g->has_grad[mode]) return 0;
    int out = g->out[mode];
    if (out < 0) return rc_errf(err, errlen, "gradient: the graph has no %s output", mode ? "eval" : "train");
    int n0 = g->n;
    unsigned char *need = malloc((size_t)n0), *req = calloc((size_t)n0, 1);
    int *cot = malloc(sizeof *cot * (size_t)n0);
    int rc = -1;
    if (!need || !req || !cot) { rc_errf(err, errlen, "gradient: out of memory"); goto done; }
    rc_prim_needed(g, &out, 1, need);
    /* req: depends on the input or a parameter */
    for (int i = 0; i < n0; i++) {
        const rc_prim_node *nd = &g->node[i];
        req[i] = (nd->op == RC_P_INPUT && nd->ref == 0) || nd->op == RC_P_PARAM;
        for (int k = 0; k < nd->n_in; k++) req[i] |= req[nd->in[k]];
        cot[i] = -1;
    }
    {
        const rc_prim_node *y = &g->node[out];
        cot[out] = rc_prim_add(g, RC_P_INPUT, 0, NULL, NULL, 0, 1, y->rank, y->dims, y->line, err, errlen);
        if (cot[out] < 0) goto done;
    }
    for (int i = out; i >= 0; i--) {
        if (!need[i] || !req[i] || cot[i] < 0) continue;
        const rc_prim_node nd = g->node[i];      /* copy: rc_prim_add may move the array */
        const rc_prim_info *I = &table[nd.op];
        if (I->kind == RC_PK_LEAF) continue;
        for (int k = 0; k < nd.n_in; k++) {
            int a = nd.in[k];
            if (!req[a]) continue;
            int c = I->vjp(g, i, k, cot[i], err, errlen);
            if (c == -3) continue;
            if (c == -2) {
                g->err_line = nd.line;
                rc_errf(err, errlen, "%s: has no gradient, and lies on the gradient path (its value depends on a "
                        "parameter or the input and reaches the output); use select(cond, a, b) for a "
                        "condition, or stop_gradient(x)", I->name);
                goto done;
            }
            if (c < 0) goto done;
            if (cot[a] < 0) cot[a] = c;
            else if ((cot[a] = rc_prim_bin(g, RC_P_ADD, cot[a], c, err, errlen)) < 0) goto done;
        }
    }
    int in0 = leaf_node(g, RC_P_INPUT, 0);
    g->grad_in[mode] = in0 >= 0 && in0 < n0 ? cot[in0] : -1;
    for (int k = 0; k < g->n_param; k++) {
        int p = leaf_node(g, RC_P_PARAM, k);
        g->grad_param[mode][k] = p >= 0 && p < n0 ? cot[p] : -1;
    }
    g->has_grad[mode] = 1;
    rc = 0;
done:
    free(need);
    free(req);
    free(cot);
    return rc;
}
