/* test_cuda_prim.c — the CUDA rendering of defined layers (compiler/cuda/emit_cuda_prim.c).
 *
 * - Four graphs built in C (elementwise with broadcasting, batch-norm-like with state updates,
 *   noise and dropout, movement and reductions, contractions) cover every row of the primitive
 *   table, backward included: the table is iterated and a primitive that no graph holds after
 *   rc_prim_grad fails the test.
 * - Each graph's kernels (training forward, backward, inference) compile with NVRTC for sm_80
 *   and sm_90 with 0 spill bytes, one ptxas entry per kernel of the plan.
 * - Each graph runs under the host emulation of the device (tests/cuda_emu.h) and agrees with
 *   the reference interpreter rc_prim_eval at 1e-4 (normwise relative): training output, updated
 *   state, accumulated parameter gradients (+=, from nonzero starting values), input gradient,
 *   eval output with the updated state.
 * - A model with defined layers (tests/cuda_cases.h case 8: the first layer reading the frame
 *   stream, a middle one with running statistics and noise, the last one writing y and reading
 *   dy) renders, compiles, and agrees with the reference backend on a training step and
 *   inference (cuda_cases.h's runner, emulated device; tests/gpu/gpu_numerics.c runs the same
 *   case on a real GPU); a backward autodiff refuses names the layer; the shipped
 *   specs' CUDA text is unchanged (tests/test_nvrtc.c and `make gen-check` cover those).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_cases.h"
#include "cuda_emu.h"
#include "emit_cuda_int.h"
#include "prim.h"
#include "rc_nvrtc.h"
#include "rng.h"
#include "spec.h"

static char err[1024];

/* ---------------------------------------------------------------- graph building */

static int leaf(rc_prim_graph *g, rc_prim_op op, int ref, int rank, const int *dims, const int *attr)
{
    int id = rc_prim_add(g, op, 0, NULL, attr, 0, ref, rank, dims, 1, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int bin(rc_prim_graph *g, rc_prim_op op, int a, int b)
{
    int id = rc_prim_bin(g, op, a, b, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int un(rc_prim_graph *g, rc_prim_op op, int a)
{
    int id = rc_prim_un(g, op, a, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int op1(rc_prim_graph *g, rc_prim_op op, int a, const int *attr, double v)
{
    int id = rc_prim_add(g, op, 1, &a, attr, v, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int op2(rc_prim_graph *g, rc_prim_op op, int a, int b, const int *attr)
{
    int in[2] = {a, b};
    int id = rc_prim_add(g, op, 2, in, attr, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(id >= 0, "%s: %s", rc_prim_name(op), err);
    return id;
}
static int sel(rc_prim_graph *g, int c, int a, int b)
{
    int in[3] = {c, a, b};
    int id = rc_prim_add(g, RC_P_SELECT, 3, in, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    cr_assert(id >= 0, "select: %s", err);
    return id;
}
static int cst(rc_prim_graph *g, int like, double v)
{
    int id = rc_prim_const_like(g, like, v, err, sizeof err);
    cr_assert(id >= 0, "%s", err);
    return id;
}
static int reshape(rc_prim_graph *g, int a, int rank, const int *dims)
{
    int id = rc_prim_add(g, RC_P_RESHAPE, 1, &a, dims, 0, 0, rank, dims, 1, err, sizeof err);
    cr_assert(id >= 0, "reshape: %s", err);
    return id;
}
static void decl(rc_prim_decl *d, const char *name, int rank, const int *dims, double bound, double value)
{
    memset(d, 0, sizeof *d);
    strcpy(d->name, name);
    d->rank = rank;
    memcpy(d->dims, dims, sizeof(int) * (size_t)rank);
    d->init_bound = bound;
    d->init_value = value;
}

/* Elementwise: every unary and binary op with broadcast parameters; non-differentiable ops as
 * select conditions (training) and in the eval output (never differentiated). */
static void g_elementwise(rc_prim_graph *g)
{
    int xd[4] = {RC_PRIM_B, 3, 4, 4}, pd[4] = {1, 3, 1, 1}, qd[4] = {1, 1, 4, 4};
    decl(&g->param[g->n_param++], "p", 4, pd, 0.5, 0);
    decl(&g->param[g->n_param++], "q", 4, qd, 0.5, 0);
    int x = leaf(g, RC_P_INPUT, 0, 4, xd, NULL), p = leaf(g, RC_P_PARAM, 0, 0, NULL, NULL);
    int q = leaf(g, RC_P_PARAM, 1, 0, NULL, NULL);
    /* x in [0.2, 1), p in [0.5, 1.5): u > 0.5, s = u - 1 takes both signs */
    int u = bin(g, RC_P_ADD, bin(g, RC_P_MUL, x, p), cst(g, x, 0.5));
    int s = bin(g, RC_P_SUB, u, cst(g, u, 1.0));
    int terms[] = {
        un(g, RC_P_NEG, s), un(g, RC_P_RECIP, u), un(g, RC_P_EXP, s), un(g, RC_P_LOG, u),
        un(g, RC_P_LOG1P, u), un(g, RC_P_ABS, s), un(g, RC_P_SQRT, u), un(g, RC_P_TANH, s),
        un(g, RC_P_SIGMOID, s), un(g, RC_P_SOFTPLUS, s), op1(g, RC_P_POWC, u, NULL, 1.7),
        bin(g, RC_P_MUL, un(g, RC_P_STOPGRAD, u), s), bin(g, RC_P_DIV, s, u), bin(g, RC_P_MAX, s, q),
        bin(g, RC_P_MIN, s, q), sel(g, bin(g, RC_P_GT, x, cst(g, x, 0.6)), s, q),
        sel(g, bin(g, RC_P_GE, x, cst(g, x, 0.5)), u, p), sel(g, un(g, RC_P_SIGN, s), s, u),
        sel(g, bin(g, RC_P_EQ, x, cst(g, x, 0.5)), q, bin(g, RC_P_MUL, s, q)),
        un(g, RC_P_ERF, s),
    };
    int y = terms[0];
    for (size_t k = 1; k < sizeof terms / sizeof terms[0]; k++) y = bin(g, RC_P_ADD, y, terms[k]);
    for (int k = 0; k < 120; k++)   /* a chain longer than the emitter inlines in one expression */
        y = bin(g, k % 2 ? RC_P_ADD : RC_P_MUL, y, cst(g, y, k % 2 ? 0.01 * k : 1.0 - 0.001 * k));
    g->out[RC_PRIM_TRAIN] = y;
    int e = bin(g, RC_P_ADD, y, bin(g, RC_P_MUL, un(g, RC_P_SIGN, s), q));
    e = bin(g, RC_P_ADD, e, bin(g, RC_P_GT, x, cst(g, x, 0.6)));
    e = bin(g, RC_P_SUB, e, bin(g, RC_P_GE, s, q));
    g->out[RC_PRIM_EVAL] = bin(g, RC_P_ADD, e, bin(g, RC_P_EQ, x, x));
}

/* Channel batchnorm with running statistics (unbiased variance through numel), then noise and
 * dropout in training; eval uses the running statistics. */
static void g_batchnorm(rc_prim_graph *g)
{
    int xd[4] = {RC_PRIM_B, 3, 4, 4}, pd[4] = {1, 3, 1, 1};
    decl(&g->param[g->n_param++], "scale", 4, pd, 0, 1.0);
    decl(&g->param[g->n_param++], "shift", 4, pd, 0, 0.0);
    decl(&g->state[g->n_state++], "running_mean", 4, pd, 0, 0.0);
    decl(&g->state[g->n_state++], "running_var", 4, pd, 0, 1.0);
    int x = leaf(g, RC_P_INPUT, 0, 4, xd, NULL);
    int sc = leaf(g, RC_P_PARAM, 0, 0, NULL, NULL), sh = leaf(g, RC_P_PARAM, 1, 0, NULL, NULL);
    int rm = leaf(g, RC_P_STATE, 0, 0, NULL, NULL), rv = leaf(g, RC_P_STATE, 1, 0, NULL, NULL);
    int ax[RC_PRIM_NATTR] = {0x1 | 0x4 | 0x8};
    int m = op1(g, RC_P_MEAN, x, ax, 0);
    int d = bin(g, RC_P_SUB, x, m);
    int v = op1(g, RC_P_MEAN, bin(g, RC_P_MUL, d, d), ax, 0);
    int is = un(g, RC_P_RECIP, un(g, RC_P_SQRT, bin(g, RC_P_ADD, v, cst(g, v, 1e-3))));
    int y = bin(g, RC_P_ADD, bin(g, RC_P_MUL, bin(g, RC_P_MUL, d, is), sc), sh);
    int r1[RC_PRIM_NATTR] = {0}, r2[RC_PRIM_NATTR] = {1};
    y = bin(g, RC_P_ADD, y, bin(g, RC_P_MUL, cst(g, y, 0.1), leaf(g, RC_P_RANDN, 0, 4, xd, r1)));
    int keep = bin(g, RC_P_GE, leaf(g, RC_P_RANDU, 0, 4, xd, r2), cst(g, x, 0.2));
    g->out[RC_PRIM_TRAIN] = sel(g, keep, bin(g, RC_P_MUL, y, cst(g, y, 1.25)), cst(g, y, 0.0));
    int ones[4] = {1, 1, 1, 1}, na[RC_PRIM_NATTR] = {16, 1, 0};
    int n = leaf(g, RC_P_NUMEL, 0, 4, ones, na);
    int vu = bin(g, RC_P_DIV, bin(g, RC_P_MUL, v, n), bin(g, RC_P_SUB, n, cst(g, n, 1.0)));
    int nm = bin(g, RC_P_ADD, bin(g, RC_P_MUL, cst(g, m, 0.9), rm), bin(g, RC_P_MUL, cst(g, m, 0.1), m));
    int nv = bin(g, RC_P_ADD, bin(g, RC_P_MUL, cst(g, m, 0.9), rv), bin(g, RC_P_MUL, cst(g, m, 0.1), vu));
    int u0 = rc_prim_add(g, RC_P_UPDATE, 1, &nm, NULL, 0, 0, 0, NULL, 1, err, sizeof err);
    int u1 = rc_prim_add(g, RC_P_UPDATE, 1, &nv, NULL, 0, 1, 0, NULL, 1, err, sizeof err);
    cr_assert(u0 >= 0 && u1 >= 0, "%s", err);
    int ise = un(g, RC_P_RECIP, un(g, RC_P_SQRT, bin(g, RC_P_ADD, rv, cst(g, rv, 1e-3))));
    g->out[RC_PRIM_EVAL] = bin(g, RC_P_ADD, bin(g, RC_P_MUL, bin(g, RC_P_MUL, bin(g, RC_P_SUB, x, rm), ise), sc), sh);
}

/* Movement and reductions: reshape, transpose, slice, pad, concat, expand, sum, mean over the
 * batch, amax, cellpick and cellplace (the 3 channels as 3 cells' maps, read at cell_pos); the
 * output is their flattened concatenation (B, 365). */
static const int cell_pos[6] = {1, 2, 3, 0, 0, 3};

static void g_movement(rc_prim_graph *g)
{
    int xd[4] = {RC_PRIM_B, 3, 4, 4}, pd[4] = {1, 3, 1, 1};
    decl(&g->param[g->n_param++], "p", 4, pd, 0.5, 0);
    int x = leaf(g, RC_P_INPUT, 0, 4, xd, NULL), p = leaf(g, RC_P_PARAM, 0, 0, NULL, NULL);
    int xp = bin(g, RC_P_MUL, x, p);
    int tp[RC_PRIM_NATTR] = {0, 2, 3, 1};
    int sl[RC_PRIM_NATTR] = {0, RC_PRIM_B, 1, 3, 0, 4, 2, 3};
    int pa[RC_PRIM_NATTR] = {0, 0, 1, 0, 2, 1, 0, 3};
    int c1[RC_PRIM_NATTR] = {1}, ex[RC_PRIM_NATTR] = {RC_PRIM_B, 3, 4, 4};
    int su[RC_PRIM_NATTR] = {0x4 | 0x8}, mb[RC_PRIM_NATTR] = {0x1}, am[RC_PRIM_NATTR] = {0x2 | 0x4};
    int t = op1(g, RC_P_TRANSPOSE, xp, tp, 0);                          /* (B,4,4,3) */
    int s = op1(g, RC_P_SLICE, xp, sl, 0);                              /* (B,2,4,1) */
    int pz = op1(g, RC_P_PAD, xp, pa, 0);                               /* (B,4,7,7) */
    int cc = op2(g, RC_P_CONCAT, xp, x, c1);                            /* (B,6,4,4) */
    int e = bin(g, RC_P_MUL, op1(g, RC_P_EXPAND, p, ex, 0), x);         /* (B,3,4,4) */
    e = bin(g, RC_P_SUB, e, op1(g, RC_P_MEAN, xp, mb, 0));              /* minus the batch mean */
    int sm = op1(g, RC_P_SUM, cc, su, 0);                               /* (B,6,1,1) */
    int mx = op1(g, RC_P_RMAX, pz, am, 0);                              /* (B,1,1,7) */
    int pk[RC_PRIM_NATTR] = {1}, pl[RC_PRIM_NATTR] = {1, 4, 4};
    int ck = op1(g, RC_P_CELLPICK, xp, pk, 0);                          /* (B,3,1,1) */
    int cp = op1(g, RC_P_CELLPLACE, op1(g, RC_P_SUM, xp, su, 0), pl, 0); /* (B,3,4,4) */
    int f1[2] = {RC_PRIM_B, 48}, f2[2] = {RC_PRIM_B, 8}, f3[2] = {RC_PRIM_B, 196}, f4[2] = {RC_PRIM_B, 6};
    int f5[2] = {RC_PRIM_B, 7}, f6[2] = {RC_PRIM_B, 3};
    int parts[] = {reshape(g, t, 2, f1), reshape(g, s, 2, f2), reshape(g, pz, 2, f3), reshape(g, sm, 2, f4),
                   reshape(g, mx, 2, f5), reshape(g, e, 2, f1), reshape(g, ck, 2, f6), reshape(g, cp, 2, f1)};
    int y = parts[0];
    for (size_t k = 1; k < sizeof parts / sizeof parts[0]; k++) y = op2(g, RC_P_CONCAT, y, parts[k], c1);
    g->out[RC_PRIM_TRAIN] = g->out[RC_PRIM_EVAL] = y;
}

/* Contractions: padded conv + bias + softplus, tiled conv (period 2), strided dilated conv,
 * flatten, matmul. x (B, 3, 6, 6) -> (B, 5). */
static void g_contract(rc_prim_graph *g)
{
    int xd[4] = {RC_PRIM_B, 3, 6, 6}, w1[4] = {4, 3, 3, 3}, b1[4] = {1, 4, 1, 1}, w2[6] = {2, 2, 2, 4, 3, 3};
    int w3[4] = {3, 2, 2, 2}, wd[2] = {12, 5};
    decl(&g->param[g->n_param++], "w1", 4, w1, 0.3, 0);
    decl(&g->param[g->n_param++], "b1", 4, b1, 0.3, 0);
    decl(&g->param[g->n_param++], "w2", 6, w2, 0.3, 0);
    decl(&g->param[g->n_param++], "w3", 4, w3, 0.5, 0);
    decl(&g->param[g->n_param++], "wd", 2, wd, 0.5, 0);
    int x = leaf(g, RC_P_INPUT, 0, 4, xd, NULL);
    int P[5];
    for (int k = 0; k < 5; k++) P[k] = leaf(g, RC_P_PARAM, k, 0, NULL, NULL);
    int a1[RC_PRIM_NATTR] = {1, 1, 1, 1, 1}, a2[RC_PRIM_NATTR] = {1, 0, 1, 2, 2}, a3[RC_PRIM_NATTR] = {2, 1, 2, 1, 1};
    int h = un(g, RC_P_SOFTPLUS, bin(g, RC_P_ADD, op2(g, RC_P_CONV2D, x, P[0], a1), P[1]));   /* (B,4,6,6) */
    h = un(g, RC_P_TANH, op2(g, RC_P_CONV2D, h, P[2], a2));                                     /* (B,2,4,4) */
    h = op2(g, RC_P_CONV2D, h, P[3], a3);                                                       /* (B,3,2,2) */
    int fd[2] = {RC_PRIM_B, 12};
    g->out[RC_PRIM_TRAIN] = g->out[RC_PRIM_EVAL] = op2(g, RC_P_MATMUL, reshape(g, h, 2, fd), P[4], NULL);
}

typedef void (*gbuild)(rc_prim_graph *g);
static const struct { const char *name; gbuild build; } graphs[] = {
    {"elementwise", g_elementwise}, {"batchnorm", g_batchnorm}, {"movement", g_movement}, {"contract", g_contract},
};
#define NG ((int)(sizeof graphs / sizeof graphs[0]))

static void build(int k, rc_prim_graph *g)
{
    rc_prim_init(g);
    g->out[0] = g->out[1] = -1;
    graphs[k].build(g);
    cr_assert_eq(rc_prim_grad(g, RC_PRIM_TRAIN, err, sizeof err), 0, "%s: %s", graphs[k].name, err);
}

/* ---------------------------------------------------------------- coverage */

Test(cuda_prim, every_primitive_has_a_case)
{
    int seen[RC_P_COUNT] = {0};
    for (int k = 0; k < NG; k++) {
        rc_prim_graph g;
        build(k, &g);
        for (int i = 0; i < g.n; i++) seen[g.node[i].op] = 1;
        rc_prim_free(&g);
    }
    const rc_prim_info *t = rc_prim_table();
    for (int op = 0; op < RC_P_COUNT; op++)
        cr_expect(seen[op], "primitive %s (%d) is in no graph of tests/test_cuda_prim.c", t[op].name, op);
}

/* ---------------------------------------------------------------- NVRTC */

static void check_nvrtc(int k)
{
    rc_prim_graph g;
    build(k, &g);
    char *src = NULL;
    rc_cuda_plan plan;
    rc_cu_prim_io io;
    cr_assert_eq(rc_emit_cuda_prim(&g, 2, &src, &plan, &io, err, sizeof err), 0, "%s: %s", graphs[k].name, err);
    cr_assert_gt(plan.count[RC_CU_TRAIN_FWD], 0);
    cr_assert_gt(plan.count[RC_CU_TRAIN_BWD], 0);
    cr_assert_gt(plan.count[RC_CU_INFER], 0);
    for (int arch = 80; arch <= 90; arch += 10) {
        rc_nvrtc_result res;
        int rc = rc_nvrtc_compile(src, graphs[k].name, arch, 0, &res, err, sizeof err);
        cr_assert_eq(rc, 0, "%s sm_%d: %s\n%s", graphs[k].name, arch, err, res.report ? res.report : "");
        cr_assert_not(res.is_ptx);
        int regs, ss, sl, st;
        int nk = rc_nvrtc_log_stats(res.log, &regs, &ss, &sl, &st);
        cr_expect_eq(nk, plan.n_kernels, "%s sm_%d: ptxas reported %d kernels, plan has %d", graphs[k].name, arch,
                     nk, plan.n_kernels);
        cr_expect_eq(ss, 0, "%s sm_%d: %d bytes spill stores\n%s", graphs[k].name, arch, ss, res.log);
        cr_expect_eq(sl, 0, "%s sm_%d: %d bytes spill loads\n%s", graphs[k].name, arch, sl, res.log);
        rc_nvrtc_result_free(&res);
    }
    free(src);
    rc_cuda_plan_free(&plan);
    rc_prim_free(&g);
}

TestSuite(cuda_prim, .timeout = 300);

Test(cuda_prim, nvrtc_elementwise) { check_nvrtc(0); }
Test(cuda_prim, nvrtc_batchnorm) { check_nvrtc(1); }
Test(cuda_prim, nvrtc_movement) { check_nvrtc(2); }
Test(cuda_prim, nvrtc_contract) { check_nvrtc(3); }

/* ---------------------------------------------------------------- emulation vs rc_prim_eval */

static void fill(float *x, int64_t n, unsigned seed, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rc_rng_uniform(seed, 5, (uint64_t)i));
}

/* max |a - b| / max(max |b|, 1e-6) */
static double relerr(const float *a, const double *b, int64_t n)
{
    double md = 0, mb = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

static int64_t decl_numel(const rc_prim_decl *d)
{
    int64_t n = 1;
    for (int a = 0; a < d->rank; a++) n *= d->dims[a];
    return n;
}

static void run_phase(rc_cuda_dev *dev, void **fn, const rc_cuda_plan *pl, int ph, rc_cuda_args *a)
{
    for (int k = pl->first[ph]; k < pl->first[ph] + pl->count[ph]; k++) {
        unsigned gx, gy;
        rc_cuda_grid(&pl->launch[k], a->B, &gx, &gy);
        cr_assert_eq(dev->ops->launch(dev, fn[k], gx, gy, (unsigned)pl->launch[k].block, a, sizeof *a), 0, "%s: %s",
                     pl->launch[k].name, dev->err);
    }
}

static uint64_t dp(const void *p) { return (uint64_t)(uintptr_t)p; }

static void check_emu(int k, int B)
{
    const int li = 2;
    const uint64_t seed = 4242;
    rc_prim_graph g;
    build(k, &g);
    char *src = NULL;
    rc_cuda_plan plan;
    rc_cu_prim_io io;
    cr_assert_eq(rc_emit_cuda_prim(&g, li, &src, &plan, &io, err, sizeof err), 0, "%s: %s", graphs[k].name, err);
    rc_cuda_dev *dev = emu_open();
    cr_assert_not_null(dev);
    void *mod = NULL;
    cr_assert_eq(dev->ops->module_load(dev, src, graphs[k].name, &mod), 0, "%s", dev->err);
    void **fn = calloc((size_t)plan.n_launch + 1, sizeof *fn);
    for (int q = 0; q < plan.n_launch; q++)
        cr_assert_eq(dev->ops->get_function(dev, mod, plan.launch[q].name, &fn[q]), 0, "%s", dev->err);

    /* buffers */
    int64_t P = 0, S = 0;
    for (int q = 0; q < g.n_param; q++) P += decl_numel(&g.param[q]);
    for (int q = 0; q < g.n_state; q++) S += decl_numel(&g.state[q]);
    int64_t nin = B * io.F_in, nout = B * io.F_out, nws = plan.ws_b * B + plan.ws_c;
    float *params = malloc(sizeof(float) * (size_t)(P + 1)), *state = malloc(sizeof(float) * (size_t)(S + 1));
    float *state0 = malloc(sizeof(float) * (size_t)(S + 1)), *grads = malloc(sizeof(float) * (size_t)(P + 1));
    float *grads0 = malloc(sizeof(float) * (size_t)(P + 1)), *ws = calloc((size_t)nws + 4, sizeof(float));
    float *x = malloc(sizeof(float) * (size_t)nin), *gy = malloc(sizeof(float) * (size_t)nout);
    fill(params, P, 1, 0.5, 1.5);
    fill(state, S, 2, 0.5, 1.5);
    fill(grads, P, 3, -1, 1);
    fill(x, nin, 4, 0.2, 1.0);
    fill(gy, nout, 5, -1, 1);
    memcpy(state0, state, sizeof(float) * (size_t)(S + 1));
    memcpy(grads0, grads, sizeof(float) * (size_t)(P + 1));
    memcpy(ws + io.in.b * B + io.in.c, x, sizeof(float) * (size_t)nin);
    memcpy(ws + io.gout.b * B + io.gout.c, gy, sizeof(float) * (size_t)nout);

    /* device: training forward, backward (no state pointer, as the backend), inference */
    rc_cuda_args a = { dp(params), dp(state), dp(cell_pos), 0, 0, dp(ws), 0, 0, 0, seed, B, 0 };
    run_phase(dev, fn, &plan, RC_CU_TRAIN_FWD, &a);
    float *y_train = malloc(sizeof(float) * (size_t)nout), *gin = malloc(sizeof(float) * (size_t)nin);
    memcpy(y_train, ws + io.out.b * B + io.out.c, sizeof(float) * (size_t)nout);
    rc_cuda_args ab = { dp(params), 0, dp(cell_pos), 0, 0, dp(ws), 0, 0, dp(grads), seed, B, 0 };
    run_phase(dev, fn, &plan, RC_CU_TRAIN_BWD, &ab);
    memcpy(gin, ws + io.gin.b * B + io.gin.c, sizeof(float) * (size_t)nin);
    rc_cuda_args ai = { dp(params), dp(state), dp(cell_pos), 0, 0, dp(ws), 0, 0, 0, 0, B, 0 };
    run_phase(dev, fn, &plan, RC_CU_INFER, &ai);
    const float *y_eval = ws + io.out.b * B + io.out.c;

    /* reference: the training step with the state before the update */
    rc_prim_eval_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.B = B;
    cx.mode = RC_PRIM_TRAIN;
    cx.seed = seed;
    cx.layer = li;
    cx.input[0] = x;
    cx.input[1] = gy;
    cx.cell_pos = cell_pos;
    cx.n_cells = 3;
    for (int q = 0; q < g.n_param; q++) cx.param[q] = params + io.poff[q];
    for (int q = 0; q < g.n_state; q++) cx.state[q] = state0 + io.soff[q];
    double **val = calloc((size_t)g.n, sizeof *val);
    cr_assert_eq(rc_prim_eval(&g, &cx, NULL, val, err, sizeof err), 0, "%s", err);
    const char *nm = graphs[k].name;
    double e = relerr(y_train, val[g.out[RC_PRIM_TRAIN]], nout);
    cr_expect_leq(e, 1e-4, "%s: training output err %g", nm, e);
    /* the updated state, which the eval reference then reads */
    float *ref_state = malloc(sizeof(float) * (size_t)(S + 1));
    memcpy(ref_state, state0, sizeof(float) * (size_t)(S + 1));
    int n_upd = 0;
    for (int i = 0; i < g.n; i++) {
        if (g.node[i].op != RC_P_UPDATE) continue;
        int s = g.node[i].ref;
        const double *v = val[g.node[i].in[0]];
        for (int64_t j = 0; j < decl_numel(&g.state[s]); j++) ref_state[io.soff[s] + j] = (float)v[j];
        n_upd++;
    }
    for (int s = 0; s < g.n_state; s++) {
        int64_t n = decl_numel(&g.state[s]);
        double *r = malloc(sizeof(double) * (size_t)n);
        for (int64_t j = 0; j < n; j++) r[j] = ref_state[io.soff[s] + j];
        e = relerr(state + io.soff[s], r, n);
        cr_expect_leq(e, 1e-4, "%s: state %s err %g", nm, g.state[s].name, e);
        free(r);
    }
    cr_expect_eq(n_upd > 0, g.n_state > 0, "%s: updates and state go together here", nm);
    /* gradients: accumulated onto the starting values */
    for (int q = 0; q < g.n_param; q++) {
        int64_t n = decl_numel(&g.param[q]);
        float *dg = malloc(sizeof(float) * (size_t)n);
        double *r = calloc((size_t)n, sizeof(double));
        for (int64_t j = 0; j < n; j++) dg[j] = grads[io.poff[q] + j] - grads0[io.poff[q] + j];
        int gi = g.grad_param[RC_PRIM_TRAIN][q];
        if (gi >= 0) memcpy(r, val[gi], sizeof(double) * (size_t)n);
        e = relerr(dg, r, n);
        cr_expect_leq(e, 1e-4, "%s: gradient of %s err %g", nm, g.param[q].name, e);
        cr_expect(gi >= 0, "%s: %s has a gradient", nm, g.param[q].name);
        free(dg);
        free(r);
    }
    cr_assert_geq(g.grad_in[RC_PRIM_TRAIN], 0);
    e = relerr(gin, val[g.grad_in[RC_PRIM_TRAIN]], nin);
    cr_expect_leq(e, 1e-4, "%s: input gradient err %g", nm, e);
    rc_prim_vals_free(&g, val);

    /* eval with the updated state */
    cx.mode = RC_PRIM_EVAL;
    cx.input[1] = NULL;
    for (int q = 0; q < g.n_state; q++) cx.state[q] = ref_state + io.soff[q];
    unsigned char *need = calloc((size_t)g.n, 1);
    rc_prim_needed(&g, &g.out[RC_PRIM_EVAL], 1, need);
    cr_assert_eq(rc_prim_eval(&g, &cx, need, val, err, sizeof err), 0, "%s", err);
    e = relerr(y_eval, val[g.out[RC_PRIM_EVAL]], nout);
    cr_expect_leq(e, 1e-4, "%s: eval output err %g", nm, e);
    rc_prim_vals_free(&g, val);

    free(need); free(val); free(ref_state);
    free(params); free(state); free(state0); free(grads); free(grads0); free(ws); free(x); free(gy);
    free(y_train); free(gin); free(fn);
    dev->ops->module_unload(dev, mod);
    rc_cuda_close(dev);
    free(src);
    rc_cuda_plan_free(&plan);
    rc_prim_free(&g);
}

Test(cuda_prim, emu_elementwise) { check_emu(0, 2); }
Test(cuda_prim, emu_batchnorm) { check_emu(1, 3); }
Test(cuda_prim, emu_movement) { check_emu(2, 2); }
Test(cuda_prim, emu_contract) { check_emu(3, 2); }

/* ---------------------------------------------------------------- models with defined layers */

#define CELLS 5

static void attach(rc_ir *ir, int li, const char *kind, rc_prim_graph *g)
{
    char *t = rc_prim_format(g);
    cr_assert_not_null(t);
    rc_layer_defaults(&ir->layers[li], RC_LAYER_DEF);
    cr_assert_eq(rc_ir_def_set(ir, li, kind, t, err, sizeof err), 0, "%s", err);
    free(t);
    rc_prim_free(g);
}

/* tests/cuda_cases.h case 8: conv (frames in), batchnorm + noise + relu with running
 * statistics, then built-in conv, relu, dense, batchnorm, and a softplus as the last layer:
 * the first three and the last are defined layers */
static void model(rc_ir *ir)
{
    char name[64];
    cr_assert_eq(cc_build(8, ir, name, sizeof name, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(name, "defined_layers");
    int defs = 0;
    for (int i = 0; i < ir->n_layers; i++) defs += ir->layers[i].kind == RC_LAYER_DEF;
    cr_assert_eq(defs, 3);
    cr_assert_eq(ir->layers[0].kind, RC_LAYER_DEF);
    cr_assert_eq(ir->layers[ir->n_layers - 1].kind, RC_LAYER_DEF);
}

/* NVRTC compiles src for sm_80 and sm_90: every kernel of the plan, none spilling. */
static void nvrtc_no_spills(const char *src, const char *name, const rc_cuda_plan *plan)
{
    for (int arch = 80; arch <= 90; arch += 10) {
        rc_nvrtc_result res;
        cr_assert_eq(rc_nvrtc_compile(src, name, arch, 0, &res, err, sizeof err), 0, "%s\n%s", err,
                     res.report ? res.report : "");
        int regs, ss, sl, st;
        cr_expect_eq(rc_nvrtc_log_stats(res.log, &regs, &ss, &sl, &st), plan->n_kernels);
        cr_expect_eq(ss + sl, 0, "%s: sm_%d spills\n%s", name, arch, res.log);
        rc_nvrtc_result_free(&res);
    }
}

Test(cuda_prim, model_compiles)
{
    static rc_ir ir;
    model(&ir);
    char *src = NULL;
    rc_cuda_plan plan;
    cr_assert_eq(rc_emit_cuda(&ir, "defined.lua", &src, &plan, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(src, "forward_l1_") && strstr(src, "backward_l2_") && strstr(src, "infer_l7_"),
              "kernels of the defined layers 1, 2, 7");
    nvrtc_no_spills(src, "defined_layers", &plan);
    /* deterministic text */
    char *src2 = NULL;
    rc_cuda_plan plan2;
    cr_assert_eq(rc_emit_cuda(&ir, "defined.lua", &src2, &plan2, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(src, src2);
    free(src);
    free(src2);
    rc_cuda_plan_free(&plan);
    rc_cuda_plan_free(&plan2);
}

Test(cuda_prim, model_emulated_matches_reference)
{
    static rc_ir ir;
    model(&ir);
    rc_cuda_dev *dev = emu_open();
    cr_assert_not_null(dev);
    rc_backend *be = NULL;
    cr_assert_eq(rc_cuda_backend_create_on(&ir, dev, &be, err, sizeof err), 0, "%s", err);
    cc_result r;
    cr_assert_eq(cc_compare(&ir, be, 3, 99, &r, err, sizeof err), 0, "%s", err);
    cr_expect_leq(r.y_train, 1e-4, "training output err %g", r.y_train);
    cr_expect_leq(r.state, 1e-4, "running statistics err %g", r.state);
    cr_expect_leq(r.grads, 1e-4, "gradient err %g (%s)", r.grads, r.worst_grad);
    cr_expect_leq(r.y_infer, 1e-4, "inference err %g", r.y_infer);
    rc_backend_destroy(be);
    rc_cuda_close(dev);
}

/* Convs inside defined layers that are not a built-in form ("same" padding 1 and 2, a plain one
 * feeding a tanh) run on the tiled direct-conv kernel of the built-in convs, forward and input
 * gradient, and the plain one's weight gradient on the built-in's tiled weight-gradient kernel
 * (the padded ones' keep the generic kernel); NVRTC compiles the module for sm_80/sm_90 without spills, and under emulation it
 * matches the reference. */
Test(cuda_prim, graph_convs_on_the_tiled_kernel)
{
    static rc_ir ir;
    const char *t = "local same = layer \"same\" {\n"
                    "  params = function(x) local c = x.shape[2]\n"
                    "    return { w1 = { shape = { 4, c, 5, 5 }, init = { uniform = 0.2 } },\n"
                    "             w2 = { shape = { 3, 4, 3, 3 }, init = { uniform = 0.3 } } } end,\n"
                    "  forward = function(x, p)\n"
                    "    return conv2d(tanh(conv2d(x, p.w1, { pad = 2 })), p.w2, { pad = 1 }) end }\n"
                    "local plain = layer \"plain\" {\n"
                    "  params = function(x) return { w = { shape = { 2, x.shape[2], 3, 3 }, init = { uniform = 0.3 } } } end,\n"
                    "  forward = function(x, p) return tanh(conv2d(x, p.w)) end }\n"
                    "return model \"m\" { input = { history = 4, height = 14, width = 13 },\n"
                    "conv { channels = 4, kernel = 3 }, relu {}, same {}, relu {}, plain {}, dense {}, softplus {},\n"
                    "train = { batch = 4 } }\n";
    cr_assert_eq(rc_spec_load_string("t.lua", t, &ir, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&ir, 3, "t.lua", err, sizeof err), 0, "%s", err);
    char *src = NULL;
    rc_cuda_plan plan;
    cr_assert_eq(rc_emit_cuda(&ir, "t.lua", &src, &plan, err, sizeof err), 0, "%s", err);
    int tiled = 0, dw = 0;
    for (const char *q = src; (q = strstr(q, "/* direct conv ")); q++) tiled++;
    for (const char *q = src; (q = strstr(q, "/* weight gradient partials (")); q++) dw++;
    /* built-in layer 1 (forward, inference; layer 1 needs no input gradient) 2, the same layer's
     * two convs (training and inference forward, input gradient) 6, plain's conv 3; weight
     * gradients: layer 1 and plain's conv (the padded convs' are not that kernel's form) */
    cr_expect_eq(tiled, 11, "tiled conv kernels: %d", tiled);
    cr_expect_eq(dw, 2, "tiled weight-gradient kernels: %d", dw);
    nvrtc_no_spills(src, "graph_convs", &plan);
    free(src);
    rc_cuda_plan_free(&plan);
    rc_cuda_dev *dev = emu_open();
    cr_assert_not_null(dev);
    rc_backend *be = NULL;
    cr_assert_eq(rc_cuda_backend_create_on(&ir, dev, &be, err, sizeof err), 0, "%s", err);
    cc_result r;
    cr_assert_eq(cc_compare(&ir, be, 3, 99, &r, err, sizeof err), 0, "%s", err);
    cr_expect_leq(r.y_train, 1e-4, "training output err %g", r.y_train);
    cr_expect_leq(r.grads, 1e-4, "gradient err %g (%s)", r.grads, r.worst_grad);
    cr_expect_leq(r.y_infer, 1e-4, "inference err %g", r.y_infer);
    rc_backend_destroy(be);
    rc_cuda_close(dev);
}

/* a graph autodiff refuses is reported with the layer */
Test(cuda_prim, refused_backward_names_the_layer)
{
    static rc_ir ir;
    cr_assert_eq(rc_spec_check(RC_SRC_DIR "/specs/tiny.lua", CELLS, &ir, err, sizeof err), 0, "%s", err);
    rc_prim_graph g;
    rc_prim_init(&g);
    rc_shape in = ir.layers[1].in;
    int xd[4] = {RC_PRIM_B, in.c, in.h, in.w};
    int x = leaf(&g, RC_P_INPUT, 0, 4, xd, NULL);
    g.out[0] = g.out[1] = bin(&g, RC_P_MUL, un(&g, RC_P_SIGN, x), x);   /* sign on the gradient path */
    attach(&ir, 1, "mysign", &g);
    cr_assert_eq(rc_ir_infer(&ir, CELLS, "tiny", err, sizeof err), 0, "%s", err);
    char *src = NULL;
    rc_cuda_plan plan;
    cr_assert_neq(rc_emit_cuda(&ir, "tiny", &src, &plan, err, sizeof err), 0);
    cr_expect(strstr(err, "layer 2") && strstr(err, "sign"), "%s", err);
    cr_expect_null(src);
}
