/* emit_c_prim.c — C emitter: a defined layer (RC_LAYER_DEF, a graph of primitives, prim.h)
 * rendered as three static functions over the whole batch (batch-norm-like definitions reduce
 * over B, so nothing here is per sample):
 *   forward_l<i>_def(B, x, y, cx)       forward in training mode, then the UPDATE sinks (state)
 *   infer_l<i>_def(B, x, y, cx)         forward in evaluation mode (absent when the two modes
 *                                       are one graph: forward_l<i>_def serves both)
 *   backward_l<i>_def(B, x, dy, dx, cx) grads += d loss / d params; dx = d loss / d x (dx may be
 *                                       NULL when the driver needs no input gradient)
 * x is the layer input (B, C, H, W) and y its output, contiguous; params, state, grads, seed and
 * the workspace come through the rcg_ctx.
 *
 * The backward recomputes from x every forward node it needs (the forward keeps only its
 * input; noise is a pure function of the seed, so the recompute is exact): simple and correct,
 * at the price of one more forward. State read by the backward is the value before the
 * training step's UPDATEs: the training forward snapshots it into the workspace first.
 *
 * Fusion (per function, over the nodes it needs): a node is materialized -- one loop nest that
 * writes its value into a scratch buffer t<id> (or straight into y / dx / grads) -- when it is
 * not elementwise (reduce, movement, contraction), when it has more than one consumer and is
 * not a leaf, when it is a root (output, gradient, update value), or when it ends an inlined
 * chain of PR_INLINE_MAX elementwise nodes (bounded text and recursion). Every other node is
 * rendered inline, as a local `v<id>` computed inside the loop nest of its consumer from the
 * table's C template (rc_prim_info.c) with broadcast indexing (an operand dim of 1 reads index
 * 0): a chain of elementwise ops is one loop, and reductions and contractions read their
 * elementwise inputs fused into their own loops (tinygrad-style). Update values are all
 * materialized before any state is written, so an update never sees another's new value.
 * Accumulators: a sum that runs over the batch axis (batch statistics, weight gradients, a
 * matmul contracting B) is kept in double, since its length grows with B; every other sum
 * (conv taps, matmul rows, reductions within a sample) in float, like the built-in conv kernels:
 * tests/test_codegen_prim.c holds both to 1e-4 relative against the double reference.
 * Plain convolutions (conv2d, conv2d_dx, conv2d_dw with stride 1, no padding, dilation 1,
 * period 1 and a parameter weight) are not loop nests: emit_c_prim_conv.c draws them as calls of
 * the built-in conv's register-blocked kernels (emit_c_conv.c), their tensor operands
 * materialized (plan_convs); the other conv forms keep the generic loops (emit_conv).
 * Every loop bound is a compile-time constant except the batch B. Each nest parallelizes over
 * its output elements only, each output summed in a fixed order: results do not depend on the
 * thread count.
 */
#include "emit_c_int.h"
#include "prim.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PF_TRAIN, PF_EVAL, PF_BWD, PF_N };
/* where a node's value lives in one function */
enum { H_NONE, H_SCRATCH, H_Y, H_DX, H_GRAD, H_STATE };

#define PR_MAXROOT (2 * RC_PRIM_MAX_DECL + 2)
#define IXN 160        /* one index expression */
#define FLN 2048       /* one flat index */
#define EXN 4096       /* one rendered expression */
#define PR_INLINE_MAX 48   /* longest chain of elementwise nodes inlined into one expression */

typedef struct { int node, dest, k; } pr_root;   /* dest H_Y / H_DX / H_GRAD / H_STATE, k its index */

typedef struct {
    unsigned char *need, *mat;
    int *nuse, *home, *homek;    /* per node; home: H_*, homek: param/state index */
    int nroot;
    pr_root root[PR_MAXROOT];
    int direct[PR_MAXROOT];      /* root written by its node's own nest (no copy loop) */
    int reads_param[RC_PRIM_MAX_DECL], reads_state[RC_PRIM_MAX_DECL], grad_param[RC_PRIM_MAX_DECL];
} pr_fn;

struct em_prim {
    int li;
    int need_dx;
    rc_prim_graph g;
    pr_fn fn[PF_N];
    int *buf;                    /* per node: workspace buffer of its scratch, -1 = none */
    int snap[RC_PRIM_MAX_DECL];  /* state snapshot for the backward, -1 = none */
    int in_buf;                  /* layer 1: the input windows copied into (B, C, H, W), -1 */
    int *pci;                    /* per node: its index in pconv (lowered to a blocked conv), -1 */
    int npconv;
    em_pconv *pconv;             /* plain convs on the built-in's kernels (emit_c_prim_conv.c) */
    char pname[RC_PRIM_MAX_DECL][64], sname[RC_PRIM_MAX_DECL][64];
};

/* ---------------------------------------------------------------- small helpers */

static const rc_prim_node *ND(const em_prim *P, int i) { return &P->g.node[i]; }

static int is_elem(rc_prim_kind k)
{
    return k == RC_PK_LEAF || k == RC_PK_UNARY || k == RC_PK_BINARY || k == RC_PK_SELECT;
}

/* Copy an index expression (truncating: they are far shorter). */
static void ixcpy(char *d, const char *s)
{
    size_t l = strnlen(s, IXN - 1);
    memcpy(d, s, l);
    d[l] = 0;
}

static void dstr(int d, char *out) { if (d == RC_PRIM_B) strcpy(out, "B"); else snprintf(out, 16, "%d", d); }

/* Flat row-major index of node nd at idx (C expressions; "0" for a constant 0). */
static void flat_expr(const rc_prim_node *nd, char idx[][IXN], char *out, size_t n)
{
    char acc[FLN] = "", tmp[FLN], d[16];
    for (int a = 0; a < nd->rank; a++) {
        int zero = !strcmp(idx[a], "0");
        dstr(nd->dims[a], d);
        if (!acc[0]) {
            if (!zero) snprintf(acc, sizeof acc, "(size_t)(%s)", idx[a]);
            continue;
        }
        if (nd->dims[a] == 1) continue;
        /* rank <= 6 index expressions of < IXN chars each cannot fill FLN; checked anyway */
        int k = zero ? snprintf(tmp, sizeof tmp, "%s * %s", acc, d)
                     : snprintf(tmp, sizeof tmp, "(%s * %s + (%s))", acc, d, idx[a]);
        if (k < 0 || (size_t)k >= sizeof tmp) { snprintf(out, n, "%s", "0 /* index expression too long */"); return; }
        memcpy(acc, tmp, (size_t)k + 1);
    }
    snprintf(out, n, "%s", acc[0] ? acc : "0");
}

/* numel = pb * B + fx; -1 if B appears twice. */
static int numel_split(const rc_prim_node *nd, size_t *pb, size_t *fx)
{
    size_t p = 1;
    int nb = 0;
    for (int a = 0; a < nd->rank; a++) {
        if (nd->dims[a] == RC_PRIM_B) nb++;
        else p *= (size_t)nd->dims[a];
    }
    if (nb > 1) return -1;
    *pb = nb ? p : 0;
    *fx = nb ? 0 : p;
    return 0;
}

#define PR_PAR_WORK 32768.0   /* element-steps below which a nest runs on one thread */

/* OpenMP if-clause condition of a nest: elements * inner (times B when inner_b) against
 * PR_PAR_WORK; "" when the work is a constant under it (no pragma), "1" over it. */
static void work_expr(const rc_prim_node *nd, double inner, int inner_b, char *out, size_t n)
{
    size_t pb, fx;
    if (numel_split(nd, &pb, &fx)) pb = 1, fx = 0;
    double w = (pb ? (double)pb : (double)fx) * inner;
    int nb = (pb ? 1 : 0) + (inner_b ? 1 : 0);
    if (!nb) snprintf(out, n, "%s", w >= PR_PAR_WORK ? "1" : "");
    else if (nb == 1) snprintf(out, n, "(double)B * %.17g >= %.1f", w, PR_PAR_WORK);
    else snprintf(out, n, "(double)B * B * %.17g >= %.1f", w, PR_PAR_WORK);
}

/* The parameter (state) view "<li+1>.<kind>.<name>" of layer li. */
static const rc_param *decl_view(const rc_ir *ir, int li, const char *name, int state)
{
    char suf[48];
    snprintf(suf, sizeof suf, ".%s", name);
    return em_lparam(ir, li, suf, state);
}

/* ---------------------------------------------------------------- planning */

static void fn_free(pr_fn *f)
{
    free(f->need); free(f->mat); free(f->nuse); free(f->home); free(f->homek);
}

void em_prim_free(em_prim *P)
{
    if (!P) return;
    for (int f = 0; f < PF_N; f++) fn_free(&P->fn[f]);
    free(P->buf);
    free(P->pci);
    free(P->pconv);
    rc_prim_free(&P->g);
    free(P);
}

static int add_root(em *E, em_prim *P, pr_fn *f, int node, int dest, int k)
{
    if (f->nroot >= PR_MAXROOT) { em_fail(E, "layer %d (def): too many outputs", P->li + 1); return -1; }
    f->root[f->nroot++] = (pr_root){node, dest, k};
    return 0;
}

static int plan_fn(em *E, em_prim *P, int which)
{
    rc_prim_graph *g = &P->g;
    const rc_prim_info *T = rc_prim_table();
    pr_fn *f = &P->fn[which];
    int n = g->n;
    f->need = calloc((size_t)n, 1);
    f->mat = calloc((size_t)n, 1);
    f->nuse = calloc((size_t)n, sizeof(int));
    f->home = calloc((size_t)n, sizeof(int));
    f->homek = calloc((size_t)n, sizeof(int));
    if (!f->need || !f->mat || !f->nuse || !f->home || !f->homek) { em_fail(E, "out of memory"); return -1; }
    f->nroot = 0;
    if (which == PF_BWD) {
        int gi = g->grad_in[RC_PRIM_TRAIN];
        if (P->need_dx && gi >= 0 && add_root(E, P, f, gi, H_DX, 0)) return -1;
        for (int k = 0; k < g->n_param; k++) {
            int gp = g->grad_param[RC_PRIM_TRAIN][k];
            if (gp >= 0 && add_root(E, P, f, gp, H_GRAD, k)) return -1;
        }
    } else {
        int mode = which == PF_TRAIN ? RC_PRIM_TRAIN : RC_PRIM_EVAL;
        if (g->out[mode] < 0) { em_fail(E, "layer %d (def): no output in %s mode", P->li + 1, mode ? "eval" : "train"); return -1; }
        if (add_root(E, P, f, g->out[mode], H_Y, 0)) return -1;
        if (which == PF_TRAIN)
            for (int i = 0; i < n; i++)
                if (g->node[i].op == RC_P_UPDATE && add_root(E, P, f, g->node[i].in[0], H_STATE, g->node[i].ref)) return -1;
    }
    int roots[PR_MAXROOT];
    for (int r = 0; r < f->nroot; r++) roots[r] = f->root[r].node;
    if (f->nroot) rc_prim_needed(g, roots, f->nroot, f->need);
    for (int i = 0; i < n; i++) {
        if (!f->need[i]) continue;
        const rc_prim_node *nd = &g->node[i];
        if (nd->op < 0 || nd->op >= RC_P_COUNT) { em_fail(E, "layer %d (def): node %d: unknown op", P->li + 1, i); return -1; }
        for (int a = 0; a < nd->n_in; a++) {
            int dup = 0;
            for (int b = 0; b < a; b++) dup |= nd->in[b] == nd->in[a];
            if (!dup) f->nuse[nd->in[a]]++;
        }
        if (nd->op == RC_P_PARAM) f->reads_param[nd->ref] = 1;
        if (nd->op == RC_P_STATE) f->reads_state[nd->ref] = 1;
        rc_prim_kind k = T[nd->op].kind;
        if (k == RC_PK_SINK) { em_fail(E, "layer %d (def): node %d (%s) is a sink inside a computation", P->li + 1, i, T[nd->op].name); return -1; }
        if (!is_elem(k)) f->mat[i] = 1, f->home[i] = H_SCRATCH;
    }
    /* consumers are counted only now (they come after their inputs): the multi-consumer rule */
    for (int i = 0; i < n; i++)
        if (f->need[i] && T[g->node[i].op].kind != RC_PK_LEAF && f->nuse[i] > 1) f->mat[i] = 1, f->home[i] = H_SCRATCH;
    for (int r = 0; r < f->nroot; r++) {
        const pr_root *R = &f->root[r];
        int ndest = 0;
        for (int q = 0; q < f->nroot; q++) ndest += f->root[q].node == R->node;
        if (R->dest == H_GRAD) f->grad_param[R->k] = 1;
        if (f->nuse[R->node] == 0 && ndest == 1 && R->dest != H_STATE) {
            f->direct[r] = 1;
            f->mat[R->node] = 1;
            f->home[R->node] = R->dest;
            f->homek[R->node] = R->k;
        } else {
            f->direct[r] = 0;
            f->mat[R->node] = 1;
            f->home[R->node] = H_SCRATCH;
        }
    }
    /* an inlined chain longer than PR_INLINE_MAX is cut (materialized): bounded expression text
     * and recursion of val() (a spec's loop makes chains of thousands of nodes) */
    unsigned char *depth = calloc((size_t)n, 1);
    if (!depth) { em_fail(E, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        const rc_prim_node *nd = &g->node[i];
        if (!f->need[i] || f->mat[i] || T[nd->op].kind == RC_PK_LEAF) continue;
        int dp = 0;
        for (int a = 0; a < nd->n_in; a++)
            if (!f->mat[nd->in[a]] && depth[nd->in[a]] > dp) dp = depth[nd->in[a]];
        if (dp + 1 > PR_INLINE_MAX) f->mat[i] = 1, f->home[i] = H_SCRATCH;
        else depth[i] = (unsigned char)(dp + 1);
    }
    free(depth);
    return 0;
}

/* The conv2d / conv2d_dx / conv2d_dw nodes that the blocked direct kernels take
 * (em_pconv_plan); their tensor operands are materialized in every function that computes them,
 * so the kernels read contiguous (B, C, H, W) buffers. */
static int plan_convs(em *E, em_prim *P)
{
    int n = P->g.n;
    P->pci = malloc(sizeof(int) * (size_t)n);
    if (!P->pci) { em_fail(E, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        P->pci[i] = -1;
        int need = 0;
        for (int f = 0; f < PF_N; f++) need |= P->fn[f].need[i];
        rc_prim_op op = ND(P, i)->op;
        if (!need || (op != RC_P_CONV2D && op != RC_P_CONV2D_DX && op != RC_P_CONV2D_DW)) continue;
        em_pconv pc;
        /* a node of the forward graph: one kernel for training and evaluation, named forward */
        rc_phase ph = P->fn[PF_TRAIN].need[i] || P->fn[PF_EVAL].need[i] ? RC_PHASE_FORWARD : RC_PHASE_BACKWARD;
        if (!em_pconv_plan(E, P->li, &P->g, i, ph, &pc)) continue;
        em_pconv *np = realloc(P->pconv, sizeof(em_pconv) * (size_t)(P->npconv + 1));
        if (!np) { em_fail(E, "out of memory"); return -1; }
        P->pconv = np;
        P->pconv[P->npconv] = pc;
        P->pci[i] = P->npconv++;
        for (int f = 0; f < PF_N; f++) {
            pr_fn *F = &P->fn[f];
            if (!F->need[i]) continue;
            for (int a = 0; a < ND(P, i)->n_in; a++) {
                int in = ND(P, i)->in[a];
                if (!em_pconv_operand(&P->g, i, a) || F->mat[in] || rc_prim_table()[ND(P, in)->op].kind == RC_PK_LEAF) continue;
                F->mat[in] = 1;
                F->home[in] = H_SCRATCH;
            }
        }
    }
    return 0;
}

em_prim *em_prim_plan(em *E, int li, int need_dx)
{
    const rc_ir *ir = E->ir;
    const rc_layer *L = &ir->layers[li];
    char err[256];
    em_prim *P = calloc(1, sizeof *P);
    if (!P) { em_fail(E, "out of memory"); return NULL; }
    P->li = li;
    P->need_dx = need_dx;
    P->in_buf = -1;
    rc_prim_init(&P->g);
    size_t tn = (size_t)L->def_len + 1;
    char *text = malloc(tn);
    if (!text || !rc_ir_def_text(ir, li, text, tn)) {
        free(text);
        em_fail(E, "layer %d (%s): no graph text", li + 1, L->def_kind);
        em_prim_free(P);
        return NULL;
    }
    int rc = rc_prim_parse(&P->g, text, ir->cells, err, sizeof err);
    free(text);
    if (rc) { em_fail(E, "layer %d (%s): %s", li + 1, L->def_kind, err); em_prim_free(P); return NULL; }
    if (rc_prim_grad(&P->g, RC_PRIM_TRAIN, err, sizeof err)) {
        em_fail(E, "layer %d (%s): %s", li + 1, L->def_kind, err);
        em_prim_free(P);
        return NULL;
    }
    for (int f = 0; f < PF_N; f++)
        if (plan_fn(E, P, f)) { em_prim_free(P); return NULL; }
    if (plan_convs(E, P)) { em_prim_free(P); return NULL; }
    /* parameter / state identifiers */
    for (int k = 0; k < P->g.n_param; k++) {
        char suf[48];
        snprintf(suf, sizeof suf, ".%s", P->g.param[k].name);
        em_P(E, li, suf, P->pname[k]);
        if (!strcmp(P->pname[k], "0")) { em_fail(E, "layer %d (%s): parameter %s is not laid out", li + 1, L->def_kind, P->g.param[k].name); em_prim_free(P); return NULL; }
    }
    for (int k = 0; k < P->g.n_state; k++) {
        char suf[48];
        snprintf(suf, sizeof suf, ".%s", P->g.state[k].name);
        em_S(E, li, suf, P->sname[k]);
        if (!strcmp(P->sname[k], "0")) { em_fail(E, "layer %d (%s): state %s is not laid out", li + 1, L->def_kind, P->g.state[k].name); em_prim_free(P); return NULL; }
    }
    /* workspace: one scratch buffer per node materialized into scratch in any function */
    P->buf = malloc(sizeof(int) * (size_t)P->g.n);
    if (!P->buf) { em_fail(E, "out of memory"); em_prim_free(P); return NULL; }
    for (int i = 0; i < P->g.n; i++) {
        P->buf[i] = -1;
        int sc = 0;
        for (int f = 0; f < PF_N; f++) sc |= P->fn[f].need[i] && P->fn[f].home[i] == H_SCRATCH;
        if (!sc) continue;
        size_t pb, fx;
        if (numel_split(ND(P, i), &pb, &fx)) {
            em_fail(E, "layer %d (%s): node %d (%s) has the batch dimension twice", li + 1, L->def_kind, i,
                    rc_prim_name(ND(P, i)->op));
            em_prim_free(P);
            return NULL;
        }
        char nm[64];
        snprintf(nm, sizeof nm, "L%d_t%d", li + 1, i);
        P->buf[i] = em_add_buf(E, nm, pb, fx);
    }
    for (int k = 0; k < RC_PRIM_MAX_DECL; k++) P->snap[k] = -1;
    for (int k = 0; k < P->g.n_state; k++) {
        if (!P->fn[PF_BWD].reads_state[k]) continue;
        const rc_param *sp = decl_view(ir, li, P->g.state[k].name, 1);
        char nm[64];
        snprintf(nm, sizeof nm, "L%d_snap%d", li + 1, k);
        P->snap[k] = em_add_buf(E, nm, 0, sp ? (size_t)sp->count : 1);
    }
    if (li == 0) P->in_buf = em_add_buf(E, "L1_in", (size_t)em_shsize(L->in), 0);
    return P;
}

/* ---------------------------------------------------------------- rendering */

typedef struct { int node; char key[EXN]; char name[24]; } pr_memo;
#define PR_MEMO 512

typedef struct {
    em *E;
    const em_prim *P;
    const pr_fn *f;
    int fn;
    rc_sb *s;
    int nm;
    pr_memo *memo;               /* locals defined in the current body */
    int *uses;                   /* per node: locals named so far in this body (name suffixes) */
} pr_r;

static void val(pr_r *R, int n, char idx[][IXN], int self, char *out);

/* The pointer expression of a node's home. */
static void home_ptr(const pr_r *R, int n, char *out)
{
    switch (R->f->home[n]) {
    case H_Y: strcpy(out, "y"); break;
    case H_DX: strcpy(out, "dx"); break;
    case H_GRAD: snprintf(out, 32, "g%d", R->f->homek[n]); break;
    default: snprintf(out, 32, "t%d", n); break;
    }
}

static int memo_find(pr_r *R, int n, const char *key)
{
    for (int i = R->nm - 1; i >= 0; i--)
        if (R->memo[i].node == n && !strcmp(R->memo[i].key, key)) return i;
    return -1;
}

/* Define `const float NAME = expr;` for node n at key; returns its name. */
static const char *def_local(pr_r *R, int n, const char *key, const char *expr, const char *comment)
{
    if (R->nm >= PR_MEMO) { em_fail(R->E, "layer %d (def): expression too large", R->P->li + 1); return "0.0f"; }
    pr_memo *m = &R->memo[R->nm++];
    m->node = n;
    snprintf(m->key, sizeof m->key, "%s", key);
    if (R->uses[n]++) snprintf(m->name, sizeof m->name, "v%d_%d", n, R->uses[n] - 1);
    else snprintf(m->name, sizeof m->name, "v%d", n);
    rc_sb_line(R->s, "const float %s = %s; /* %s */", m->name, expr, comment);
    return m->name;
}

/* Operand a of node at idx with broadcasting: a dim of 1 reads index 0. */
static void bcast_idx(const rc_prim_node *a, char idx[][IXN], char out[][IXN])
{
    for (int d = 0; d < a->rank; d++) ixcpy(out[d], a->dims[d] == 1 ? "0" : idx[d]);
}

/* Substitute %0 %1 %2 %v in a template. */
static void subst(const char *tpl, char ops[3][64], const char *v, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = tpl; *p && o + 1 < n; p++) {
        const char *ins = NULL;
        if (p[0] == '%' && p[1] >= '0' && p[1] <= '2') ins = ops[p[1] - '0'];
        else if (p[0] == '%' && p[1] == 'v') ins = v;
        if (ins) {
            size_t l = strlen(ins);
            if (o + l >= n) break;
            memcpy(out + o, ins, l);
            o += l;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

/* The value of node n at idx as a C expression (a local's name or a literal) in out (64). self:
 * compute n itself even when it is materialized (its own nest). */
static void val(pr_r *R, int n, char idx[][IXN], int self, char *out)
{
    const em_prim *P = R->P;
    const rc_prim_node *nd = ND(P, n);
    const rc_prim_info *T = &rc_prim_table()[nd->op];
    char key[EXN], flat[FLN], expr[EXN], ptr[32], lit[48];
    size_t kl = 0;
    key[0] = 0;
    for (int d = 0; d < nd->rank && kl + IXN + 2 < sizeof key; d++) kl += (size_t)snprintf(key + kl, sizeof key - kl, "%s,", idx[d]);
    if (!self && R->f->mat[n]) {
        int m = memo_find(R, n, key);
        if (m >= 0) { snprintf(out, 64, "%s", R->memo[m].name); return; }
        home_ptr(R, n, ptr);
        flat_expr(nd, idx, flat, sizeof flat);
        snprintf(expr, sizeof expr, "%s[%s]", ptr, flat);
        snprintf(out, 64, "%s", def_local(R, n, key, expr, "read"));
        return;
    }
    if (nd->op == RC_P_CONST) {
        rc_emit_float(lit, nd->value);
        if (lit[0] == '-') snprintf(out, 64, "(%s)", lit);
        else snprintf(out, 64, "%s", lit);
        return;
    }
    if (nd->op == RC_P_NUMEL) {   /* an element count (cells substituted by rc_prim_parse) */
        if (nd->attr[2]) em_fail(R->E, "layer %d (def): node %d: numel with a symbolic cell count", P->li + 1, n);
        rc_emit_float(lit, (double)nd->attr[0]);
        if (nd->attr[1] && nd->attr[0] == 1) snprintf(out, 64, "(float)B");
        else if (nd->attr[1]) snprintf(out, 64, "((float)B * %s)", lit);
        else snprintf(out, 64, "%s", lit);
        return;
    }
    int m = memo_find(R, n, key);
    if (m >= 0) { snprintf(out, 64, "%s", R->memo[m].name); return; }
    flat_expr(nd, idx, flat, sizeof flat);
    switch (nd->op) {
    case RC_P_INPUT:
        snprintf(expr, sizeof expr, "%s[%s]", nd->ref ? "dy" : "x", flat);
        break;
    case RC_P_PARAM:
        snprintf(expr, sizeof expr, "p%d[%s]", nd->ref, flat);
        break;
    case RC_P_STATE:
        snprintf(expr, sizeof expr, "s%d[%s]", nd->ref, flat);
        break;
    case RC_P_RANDN:
    case RC_P_RANDU:
        snprintf(expr, sizeof expr, "rc_rng_%s(cx->seed, %lluull, (uint64_t)(%s))", nd->op == RC_P_RANDN ? "normal" : "uniform",
                 (unsigned long long)RC_RNG_STREAM(P->li, RC_PRIM_RNG_SUB0 + nd->attr[0]), flat);
        break;
    default: {
        if (!is_elem(T->kind) || !T->c) {
            em_fail(R->E, "layer %d (def): node %d (%s) cannot be rendered inline", P->li + 1, n, T->name);
            snprintf(out, 64, "0.0f");
            return;
        }
        char ops[3][64] = {"", "", ""}, oidx[RC_PRIM_MAX_RANK][IXN];
        for (int a = 0; a < nd->n_in && a < 3; a++) {
            char tag[4] = {'%', (char)('0' + a), 0};
            if (!strstr(T->c, tag)) continue;
            const rc_prim_node *an = ND(P, nd->in[a]);
            bcast_idx(an, idx, oidx);
            val(R, nd->in[a], oidx, 0, ops[a]);
        }
        rc_emit_float(lit, nd->value);
        char vlit[52];
        snprintf(vlit, sizeof vlit, lit[0] == '-' ? "(%s)" : "%s", lit);
        subst(T->c, ops, vlit, expr, sizeof expr);
    }
    }
    snprintf(out, 64, "%s", def_local(R, n, key, expr, T->name));
}

/* Open loops over the dims of nd (a dim of 1 is index "0"), naming variables PREFIX<d>; the
 * outer `nloops` get one collapsed OpenMP pragma when par. Returns the number of loops. */
static int open_loops(pr_r *R, const rc_prim_node *nd, const char *prefix, char idx[][IXN], int par, double inner,
                      int inner_b)
{
    int nl = 0;
    for (int d = 0; d < nd->rank; d++) nl += nd->dims[d] != 1;
    char w[96];
    work_expr(nd, inner, inner_b, w, sizeof w);
    if (par && nl && w[0]) {
        char extra[160];
        if (!strcmp(w, "1")) snprintf(extra, sizeof extra, "collapse(%d)", nl);
        else snprintf(extra, sizeof extra, "collapse(%d) if(%s)", nl, w);
        em_omp_for(R->E, R->s, R->P->li, extra);
    }
    for (int d = 0; d < nd->rank; d++) {
        if (nd->dims[d] == 1) { strcpy(idx[d], "0"); continue; }
        char b[16];
        dstr(nd->dims[d], b);
        snprintf(idx[d], IXN, "%s%d", prefix, d);
        rc_sb_line(R->s, "for (int %s%d = 0; %s%d < %s; %s%d++) {", prefix, d, prefix, d, b, prefix, d);
    }
    return nl;
}

static void close_loops(pr_r *R, int nl) { for (int i = 0; i < nl; i++) rc_sb_line(R->s, "}"); }

static void body_begin(pr_r *R) { R->nm = 0; memset(R->uses, 0, sizeof(int) * (size_t)R->P->g.n); }

/* Store `v` at idx into node n's home (accumulating into a gradient). */
static void store(pr_r *R, int n, char idx[][IXN], const char *v)
{
    char ptr[32], flat[FLN];
    home_ptr(R, n, ptr);
    flat_expr(ND(R->P, n), idx, flat, sizeof flat);
    rc_sb_line(R->s, "%s[%s] %s %s;", ptr, flat, R->f->home[n] == H_GRAD ? "+=" : "=", v);
}

static int64_t cdim(const rc_prim_node *nd, int d) { return nd->dims[d] == RC_PRIM_B ? -1 : nd->dims[d]; }

/* Product of constant dims of a over mask (B counted apart). */
static double inner_count(const rc_prim_node *a, int mask, int *hasb)
{
    double c = 1;
    *hasb = 0;
    for (int d = 0; d < a->rank; d++)
        if (mask & (1 << d)) {
            if (a->dims[d] == RC_PRIM_B) *hasb = 1;
            else c *= a->dims[d];
        }
    return c;
}

static void emit_reduce(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n), *a = ND(R->P, nd->in[0]);
    int mask = nd->attr[0], hasb;
    double cnt = inner_count(a, mask, &hasb);
    char idx[RC_PRIM_MAX_RANK][IXN], aidx[RC_PRIM_MAX_RANK][IXN], v[64], b[16];
    int nl = open_loops(R, nd, "i", idx, 1, cnt, hasb);
    if (nd->op == RC_P_RMAX) rc_sb_line(R->s, "%s acc = -INFINITY;", hasb ? "double" : "float");
    else rc_sb_line(R->s, "%s", hasb ? "double acc = 0.0;" : "float acc = 0.0f;");
    int ni = 0;
    for (int d = 0; d < a->rank; d++) {
        if (!(mask & (1 << d)) || a->dims[d] == 1) { ixcpy(aidx[d], a->dims[d] == 1 ? "0" : idx[d]); continue; }
        dstr(a->dims[d], b);
        snprintf(aidx[d], IXN, "k%d", d);
        rc_sb_line(R->s, "for (int k%d = 0; k%d < %s; k%d++) {", d, d, b, d);
        ni++;
    }
    body_begin(R);
    val(R, nd->in[0], aidx, 0, v);
    if (nd->op == RC_P_RMAX) rc_sb_line(R->s, "acc = acc > %s ? acc : %s;", v, v);
    else rc_sb_line(R->s, "acc += %s;", v);
    close_loops(R, ni);
    char res[EXN];
    if (nd->op == RC_P_MEAN) {
        if (hasb && cnt == 1) snprintf(res, sizeof res, "(float)(acc / (double)B)");
        else if (hasb) snprintf(res, sizeof res, "(float)(acc / ((double)B * %.17g))", cnt);
        else snprintf(res, sizeof res, "(float)(acc / %.17g)", cnt);
    } else {
        snprintf(res, sizeof res, "(float)acc");
    }
    store(R, n, idx, res);
    close_loops(R, nl);
}

static void emit_move(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n);
    const int *at = nd->attr;
    char idx[RC_PRIM_MAX_RANK][IXN], aidx[RC_PRIM_MAX_RANK][IXN], v[64], b[16];
    if (nd->op == RC_P_RESHAPE) {   /* loop over the input's dims: the flat index is the same */
        const rc_prim_node *a = ND(R->P, nd->in[0]);
        int nl = open_loops(R, a, "i", aidx, 1, 1, 0);
        body_begin(R);
        val(R, nd->in[0], aidx, 0, v);
        char ptr[32], flat[FLN];
        home_ptr(R, n, ptr);
        flat_expr(a, aidx, flat, sizeof flat);
        rc_sb_line(R->s, "%s[%s] %s %s;", ptr, flat, R->f->home[n] == H_GRAD ? "+=" : "=", v);
        close_loops(R, nl);
        return;
    }
    int nl = open_loops(R, nd, "i", idx, 1, 1, 0);
    body_begin(R);
    const rc_prim_node *a = ND(R->P, nd->in[0]);
    switch (nd->op) {
    case RC_P_TRANSPOSE:
        for (int d = 0; d < nd->rank; d++) snprintf(aidx[at[d]], IXN, "%s", idx[d]);
        val(R, nd->in[0], aidx, 0, v);
        store(R, n, idx, v);
        break;
    case RC_P_SLICE:
        for (int d = 0; d < nd->rank; d++) {
            if (a->dims[d] == 1) strcpy(aidx[d], "0");
            else if (at[2 * d]) snprintf(aidx[d], IXN, "%.100s + %d", idx[d], at[2 * d]);
            else ixcpy(aidx[d], idx[d]);
        }
        val(R, nd->in[0], aidx, 0, v);
        store(R, n, idx, v);
        break;
    case RC_P_EXPAND:
        bcast_idx(a, idx, aidx);
        val(R, nd->in[0], aidx, 0, v);
        store(R, n, idx, v);
        break;
    case RC_P_CELLPICK:   /* each cell's map at its readout position (rc_model's cell_pos) */
        ixcpy(aidx[0], idx[0]);
        ixcpy(aidx[1], idx[1]);
        snprintf(aidx[2], IXN, "cx->cell_pos[2 * (%.60s)]", idx[1]);
        snprintf(aidx[3], IXN, "cx->cell_pos[2 * (%.60s) + 1]", idx[1]);
        val(R, nd->in[0], aidx, 0, v);
        store(R, n, idx, v);
        break;
    case RC_P_CELLPLACE:
        ixcpy(aidx[0], idx[0]);
        ixcpy(aidx[1], idx[1]);
        strcpy(aidx[2], "0");
        strcpy(aidx[3], "0");
        rc_sb_line(R->s, "float pv = 0.0f;");
        rc_sb_line(R->s, "if (%s == cx->cell_pos[2 * (%s)] && %s == cx->cell_pos[2 * (%s) + 1]) {", idx[2], idx[1], idx[3], idx[1]);
        val(R, nd->in[0], aidx, 0, v);
        rc_sb_line(R->s, "pv = %s;", v);
        rc_sb_line(R->s, "}");
        store(R, n, idx, "pv");
        break;
    case RC_P_PAD: {
        char cond[EXN] = "";
        size_t cl = 0;
        for (int d = 0; d < nd->rank; d++) {
            int lo = at[2 * d];
            if (lo) snprintf(aidx[d], IXN, "(%.100s - %d)", idx[d], lo);
            else ixcpy(aidx[d], idx[d]);
            if (lo || at[2 * d + 1]) {
                dstr(a->dims[d], b);
                cl += (size_t)snprintf(cond + cl, sizeof cond - cl, "%s%s >= 0 && %s < %s", cl ? " && " : "", aidx[d],
                                       aidx[d], b);
            }
        }
        if (!cond[0]) strcpy(cond, "1");
        rc_sb_line(R->s, "float pv = 0.0f;");
        rc_sb_line(R->s, "if (%s) {", cond);
        val(R, nd->in[0], aidx, 0, v);
        rc_sb_line(R->s, "pv = %s;", v);
        rc_sb_line(R->s, "}");
        store(R, n, idx, "pv");
        break;
    }
    case RC_P_CONCAT: {
        int ax = at[0];
        if (a->dims[ax] == RC_PRIM_B) { em_fail(R->E, "layer %d (def): node %d: concat along the batch axis", R->P->li + 1, n); break; }
        const rc_prim_node *c = ND(R->P, nd->in[1]);
        rc_sb_line(R->s, "float cv;");
        rc_sb_line(R->s, "if (%s < %d) {", idx[ax], a->dims[ax]);
        bcast_idx(a, idx, aidx);
        ixcpy(aidx[ax], a->dims[ax] == 1 ? "0" : idx[ax]);
        body_begin(R);
        val(R, nd->in[0], aidx, 0, v);
        rc_sb_line(R->s, "cv = %s;", v);
        rc_sb_line(R->s, "} else {");
        bcast_idx(c, idx, aidx);
        ixcpy(aidx[ax], c->dims[ax] == 1 ? "0" : idx[ax]);
        if (c->dims[ax] != 1) snprintf(aidx[ax], IXN, "(%s - %d)", idx[ax], a->dims[ax]);
        body_begin(R);
        val(R, nd->in[1], aidx, 0, v);
        rc_sb_line(R->s, "cv = %s;", v);
        rc_sb_line(R->s, "}");
        store(R, n, idx, "cv");
        break;
    }
    default:
        em_fail(R->E, "layer %d (def): node %d (%s): no C rendering", R->P->li + 1, n, rc_prim_name(nd->op));
    }
    close_loops(R, nl);
}

/* Index of the weight at (phase of out position oy, ox; o, c, ky, kx). */
static void w_idx(const rc_prim_node *w, const char *oy, const char *ox, const char *o, const char *c, char idx[][IXN])
{
    int t = w->rank == 6, k = 0;
    if (t) {
        if (w->dims[0] == 1) strcpy(idx[k++], "0");
        else snprintf(idx[k++], IXN, "(%s) %% %d", oy, w->dims[0]);
        if (w->dims[1] == 1) strcpy(idx[k++], "0");
        else snprintf(idx[k++], IXN, "(%s) %% %d", ox, w->dims[1]);
    }
    ixcpy(idx[k++], w->dims[t * 2] == 1 ? "0" : o);
    ixcpy(idx[k++], w->dims[t * 2 + 1] == 1 ? "0" : c);
    ixcpy(idx[k++], w->dims[t * 2 + 2] == 1 ? "0" : "ky");
    ixcpy(idx[k++], w->dims[t * 2 + 3] == 1 ? "0" : "kx");
}

static void nchw_idx(const rc_prim_node *t, const char *a, const char *b, const char *c, const char *d, char idx[][IXN])
{
    const char *v[4] = {a, b, c, d};
    for (int k = 0; k < 4; k++) ixcpy(idx[k], t->dims[k] == 1 ? "0" : v[k]);
}

static void emit_matmul(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n), *a = ND(R->P, nd->in[0]), *bm = ND(R->P, nd->in[1]);
    char idx[RC_PRIM_MAX_RANK][IXN], ai[2][IXN], bi[2][IXN], va[64], vb[64], b[16];
    int64_t K = cdim(a, 1);
    int kb = a->dims[1] == RC_PRIM_B;   /* a sum over the batch: in double */
    int nl = open_loops(R, nd, "i", idx, 1, K > 0 ? (double)K : 1, kb);
    dstr(a->dims[1], b);
    rc_sb_line(R->s, "%s", kb ? "double acc = 0.0;" : "float acc = 0.0f;");
    rc_sb_line(R->s, "for (int k = 0; k < %s; k++) {", b);
    ixcpy(ai[0], a->dims[0] == 1 ? "0" : idx[0]);
    ixcpy(ai[1], a->dims[1] == 1 ? "0" : "k");
    ixcpy(bi[0], bm->dims[0] == 1 ? "0" : "k");
    ixcpy(bi[1], bm->dims[1] == 1 ? "0" : idx[1]);
    body_begin(R);
    val(R, nd->in[0], ai, 0, va);
    val(R, nd->in[1], bi, 0, vb);
    rc_sb_line(R->s, kb ? "acc += (double)%s * %s;" : "acc += %s * %s;", va, vb);
    rc_sb_line(R->s, "}");
    store(R, n, idx, "(float)acc");
    close_loops(R, nl);
}

/* A tap's input coordinate: "const int iy = oy * s - p + ky * d;" and its bounds check. */
static void tap(pr_r *R, const char *var, const char *o, const char *k, int st, int pad, int dil, int lim)
{
    char e[IXN];
    int l = snprintf(e, sizeof e, "%s", o);
    if (st != 1) l += snprintf(e + l, sizeof e - (size_t)l, " * %d", st);
    if (pad) l += snprintf(e + l, sizeof e - (size_t)l, " - %d", pad);
    if (dil != 1) snprintf(e + l, sizeof e - (size_t)l, " + %s * %d", k, dil);
    else snprintf(e + l, sizeof e - (size_t)l, " + %s", k);
    rc_sb_line(R->s, "const int %s = %s;", var, e);
    if (pad) rc_sb_line(R->s, "if (%s < 0 || %s >= %d) continue;", var, var, lim);
}

static void emit_conv(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n);
    const int *at = nd->attr;
    int st = at[0], pad = at[1], dil = at[2];
    char idx[RC_PRIM_MAX_RANK][IXN], xi[4][IXN], wi[6][IXN], gi[4][IXN], vx[64], vw[64], b[16];
    if (nd->op == RC_P_CONV2D) {
        const rc_prim_node *x = ND(R->P, nd->in[0]), *w = ND(R->P, nd->in[1]);
        int C = x->dims[1], H = x->dims[2], W = x->dims[3], K = w->dims[w->rank - 1];
        int nl = open_loops(R, nd, "i", idx, 1, (double)C * K * K, 0);
        rc_sb_line(R->s, "float acc = 0.0f; /* conv2d: stride %d, pad %d, dilation %d */", st, pad, dil);
        rc_sb_line(R->s, "for (int c = 0; c < %d; c++) {", C);
        rc_sb_line(R->s, "for (int ky = 0; ky < %d; ky++) {", K);
        tap(R, "iy", idx[2], "ky", st, pad, dil, H);
        rc_sb_line(R->s, "for (int kx = 0; kx < %d; kx++) {", K);
        tap(R, "ix", idx[3], "kx", st, pad, dil, W);
        nchw_idx(x, idx[0], "c", "iy", "ix", xi);
        w_idx(w, idx[2], idx[3], idx[1], "c", wi);
        body_begin(R);
        val(R, nd->in[0], xi, 0, vx);
        val(R, nd->in[1], wi, 0, vw);
        rc_sb_line(R->s, "acc += %s * %s;", vx, vw);
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        store(R, n, idx, "(float)acc");
        close_loops(R, nl);
    } else if (nd->op == RC_P_CONV2D_DX) {
        const rc_prim_node *g = ND(R->P, nd->in[0]), *w = ND(R->P, nd->in[1]);
        int O = g->dims[1], HO = g->dims[2], WO = g->dims[3], K = w->dims[w->rank - 1];
        int nl = open_loops(R, nd, "i", idx, 1, (double)O * K * K, 0);
        rc_sb_line(R->s, "float acc = 0.0f; /* conv2d input gradient: stride %d, pad %d, dilation %d */", st, pad, dil);
        rc_sb_line(R->s, "for (int o = 0; o < %d; o++) {", O);
        const char *ax[2] = {"y", "x"};
        const int lim[2] = {HO, WO};
        for (int q = 0; q < 2; q++) {
            rc_sb_line(R->s, "for (int k%s = 0; k%s < %d; k%s++) {", ax[q], ax[q], K, ax[q]);
            char e[IXN];
            int l = snprintf(e, sizeof e, "%s", idx[2 + q]);
            if (pad) l += snprintf(e + l, sizeof e - (size_t)l, " + %d", pad);
            if (dil != 1) snprintf(e + l, sizeof e - (size_t)l, " - k%s * %d", ax[q], dil);
            else snprintf(e + l, sizeof e - (size_t)l, " - k%s", ax[q]);
            rc_sb_line(R->s, "const int t%s = %s;", ax[q], e);
            if (st != 1) {
                rc_sb_line(R->s, "if (t%s < 0 || t%s %% %d) continue;", ax[q], ax[q], st);
                rc_sb_line(R->s, "const int o%s = t%s / %d;", ax[q], ax[q], st);
                rc_sb_line(R->s, "if (o%s >= %d) continue;", ax[q], lim[q]);
            } else {
                rc_sb_line(R->s, "const int o%s = t%s;", ax[q], ax[q]);
                rc_sb_line(R->s, "if (o%s < 0 || o%s >= %d) continue;", ax[q], ax[q], lim[q]);
            }
        }
        nchw_idx(g, idx[0], "o", "oy", "ox", gi);
        w_idx(w, "oy", "ox", "o", idx[1], wi);
        body_begin(R);
        val(R, nd->in[0], gi, 0, vx);
        val(R, nd->in[1], wi, 0, vw);
        rc_sb_line(R->s, "acc += %s * %s;", vx, vw);
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        store(R, n, idx, "(float)acc");
        close_loops(R, nl);
    } else {   /* CONV2D_DW */
        const rc_prim_node *x = ND(R->P, nd->in[0]), *g = ND(R->P, nd->in[1]);
        int t = nd->rank == 6, H = x->dims[2], W = x->dims[3], HO = g->dims[2], WO = g->dims[3];
        int py = t ? nd->dims[0] : 1, px = t ? nd->dims[1] : 1;
        int nb = x->dims[0] == RC_PRIM_B;   /* a sum over the batch: in double */
        int nl = open_loops(R, nd, "i", idx, 1, (double)HO * WO * (nb ? 1 : x->dims[0]), nb);
        const char *o = idx[t * 2], *c = idx[t * 2 + 1], *ky = idx[t * 2 + 2], *kx = idx[t * 2 + 3];
        dstr(x->dims[0], b);
        rc_sb_line(R->s, "%s acc = %s; /* conv2d weight gradient: stride %d, pad %d, dilation %d */", nb ? "double" : "float",
                   nb ? "0.0" : "0.0f", st, pad, dil);
        rc_sb_line(R->s, "for (int n = 0; n < %s; n++) {", b);
        if (py > 1) rc_sb_line(R->s, "for (int oy = %s; oy < %d; oy += %d) {", idx[0], HO, py);
        else rc_sb_line(R->s, "for (int oy = 0; oy < %d; oy++) {", HO);
        tap(R, "iy", "oy", ky, st, pad, dil, H);
        if (px > 1) rc_sb_line(R->s, "for (int ox = %s; ox < %d; ox += %d) {", idx[1], WO, px);
        else rc_sb_line(R->s, "for (int ox = 0; ox < %d; ox++) {", WO);
        tap(R, "ix", "ox", kx, st, pad, dil, W);
        nchw_idx(x, "n", c, "iy", "ix", xi);
        nchw_idx(g, "n", o, "oy", "ox", gi);
        body_begin(R);
        val(R, nd->in[0], xi, 0, vx);
        val(R, nd->in[1], gi, 0, vw);
        rc_sb_line(R->s, nb ? "acc += (double)%s * %s;" : "acc += %s * %s;", vx, vw);
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        rc_sb_line(R->s, "}");
        store(R, n, idx, "(float)acc");
        close_loops(R, nl);
    }
}

/* Whole-batch pointer of a conv operand: the layer input / output gradient, a parameter, or a
 * materialized node's home; 0 when it is none of those (the generic loops then render it). */
static int operand_ptr(const pr_r *R, int a, char *out)
{
    const rc_prim_node *t = ND(R->P, a);
    if (t->op == RC_P_INPUT) snprintf(out, 32, "%s", t->ref ? "dy" : "x");
    else if (t->op == RC_P_PARAM) snprintf(out, 32, "p%d", t->ref);
    else if (R->f->mat[a] && R->f->home[a] == H_SCRATCH) home_ptr(R, a, out);
    else return 0;
    return 1;
}

/* A conv node on the built-in's blocked kernels (emit_c_prim_conv.c); 0 = not taken here. */
static int emit_pconv(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n);
    int k = R->P->pci ? R->P->pci[n] : -1, home = R->f->home[n];
    char a[32], b[32], dst[32];
    if (k < 0 || (home == H_GRAD && nd->op != RC_P_CONV2D_DW)) return 0;
    if (!operand_ptr(R, nd->in[0], a) || !operand_ptr(R, nd->in[1], b)) return 0;
    home_ptr(R, n, dst);
    em_pconv_emit(R->E, R->s, R->P->li, &R->P->pconv[k], a, b, dst, home == H_GRAD);
    return 1;
}

/* One materialized node's loop nest. */
static void emit_node(pr_r *R, int n)
{
    const rc_prim_node *nd = ND(R->P, n);
    const rc_prim_info *T = &rc_prim_table()[nd->op];
    char idx[RC_PRIM_MAX_RANK][IXN], v[64], ptr[32], d[16], shape[96] = "";
    size_t sl = 0;
    for (int a = 0; a < nd->rank; a++) {
        dstr(nd->dims[a], d);
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%s", a ? ", " : "", d);
    }
    home_ptr(R, n, ptr);
    rc_sb_line(R->s, "{ /* %s = %s (%s)%s */", ptr, T->name, shape,
               R->f->home[n] == H_GRAD ? ", accumulated" : "");
    if (is_elem(T->kind)) {
        int nl = open_loops(R, nd, "i", idx, 1, 1, 0);
        body_begin(R);
        val(R, n, idx, 1, v);
        store(R, n, idx, v);
        close_loops(R, nl);
    } else if (T->kind == RC_PK_REDUCE) {
        emit_reduce(R, n);
    } else if (T->kind == RC_PK_MOVE) {
        emit_move(R, n);
    } else if (nd->op == RC_P_MATMUL) {
        emit_matmul(R, n);
    } else if (nd->op == RC_P_CONV2D || nd->op == RC_P_CONV2D_DX || nd->op == RC_P_CONV2D_DW) {
        if (!emit_pconv(R, n)) emit_conv(R, n);
    } else {
        em_fail(R->E, "layer %d (def): node %d (%s): no C rendering", R->P->li + 1, n, T->name);
    }
    rc_sb_line(R->s, "}");
}

/* Copy loop of a root that lives in scratch into its destination. */
static void emit_root_copy(pr_r *R, const pr_root *rt)
{
    const em_prim *P = R->P;
    const rc_prim_node *nd = ND(P, rt->node);
    char dst[32], flat[FLN], idx[RC_PRIM_MAX_RANK][IXN];
    const char *op = "=";
    switch (rt->dest) {
    case H_Y: strcpy(dst, "y"); break;
    case H_DX: strcpy(dst, "dx"); break;
    case H_GRAD: snprintf(dst, sizeof dst, "g%d", rt->k); op = "+="; break;
    default: snprintf(dst, sizeof dst, "s%d", rt->k); break;
    }
    rc_sb_line(R->s, "{ /* %s %s t%d */", dst, op, rt->node);
    int nl = open_loops(R, nd, "i", idx, 1, 1, 0);
    flat_expr(nd, idx, flat, sizeof flat);
    rc_sb_line(R->s, "%s[%s] %s t%d[%s];", dst, flat, op, rt->node, flat);
    close_loops(R, nl);
    rc_sb_line(R->s, "}");
}

/* The two modes are one function when they are one graph: the same output node and no state
 * (so no updates and no snapshots in training). */
static int one_forward(const em_prim *P)
{
    return P->g.out[RC_PRIM_TRAIN] == P->g.out[RC_PRIM_EVAL] && P->g.n_state == 0;
}

static void emit_fn(em *E, const em_prim *P, int which)
{
    rc_sb *s = &E->k;
    const rc_ir *ir = E->ir;
    const rc_layer *L = &ir->layers[P->li];
    const pr_fn *f = &P->fn[which];
    const rc_prim_graph *g = &P->g;
    static const rc_phase fph[PF_N] = {RC_PHASE_FORWARD, RC_PHASE_INFER, RC_PHASE_BACKWARD};
    char fname[64];
    rc_kernel_name(fname, sizeof fname, fph[which], P->li, "def");
    pr_r R = {E, P, f, which, s, 0, NULL, NULL};
    R.memo = malloc(sizeof(pr_memo) * PR_MEMO);
    R.uses = calloc((size_t)g->n, sizeof(int));
    if (!R.memo || !R.uses) { free(R.memo); free(R.uses); em_fail(E, "out of memory"); return; }
    if (which == PF_BWD) {
        rc_sb_line(s, "/* layer %d (%s): backward: grads += d loss / d params, dx = d loss / d x (dx NULL: not needed).", P->li + 1,
                   L->def_kind);
        rc_sb_line(s, " * Recomputes from x the forward values it needs (the forward keeps only x; noise is a pure");
        rc_sb_line(s, " * function of the seed, so the recompute is exact). */");
        rc_sb_line(s, "static void %s(int B, const float *restrict x, const float *restrict dy, float *restrict dx, "
                   "const rcg_ctx *cx)", fname);
    } else {
        if (which == PF_TRAIN && one_forward(P))
            rc_sb_line(s, "/* layer %d (%s): forward over the whole batch, training and evaluation (one graph) */",
                       P->li + 1, L->def_kind);
        else
            rc_sb_line(s, "/* layer %d (%s): forward, %s mode%s, over the whole batch */", P->li + 1, L->def_kind,
                       which == PF_TRAIN ? "training" : "evaluation", which == PF_TRAIN ? " (then the state updates)" : "");
        rc_sb_line(s, "static void %s(int B, const float *restrict x, float *restrict y, const rcg_ctx *cx)", fname);
    }
    rc_sb_line(s, "{");
    rc_sb_line(s, "(void)B; (void)x; (void)cx;");
    if (which == PF_BWD) rc_sb_line(s, "(void)dy; (void)dx;");
    else rc_sb_line(s, "(void)y;");
    for (int k = 0; k < g->n_param; k++) {
        if (f->reads_param[k]) rc_sb_line(s, "const float *restrict p%d = cx->params + %s; /* %s */", k, P->pname[k], g->param[k].name);
        if (f->grad_param[k]) rc_sb_line(s, "float *restrict g%d = cx->grads + %s;", k, P->pname[k]);
    }
    int has_upd = 0;
    for (int r = 0; r < f->nroot; r++) has_upd |= f->root[r].dest == H_STATE;
    for (int k = 0; k < g->n_state; k++) {
        int wr = 0;
        for (int r = 0; r < f->nroot; r++) wr |= f->root[r].dest == H_STATE && f->root[r].k == k;
        if (!f->reads_state[k] && !wr) continue;
        if (which == PF_BWD) rc_sb_line(s, "const float *restrict s%d = CXW(%s); /* %s before the update */", k,
                                        em_bufname(E, P->snap[k]), g->state[k].name);
        else rc_sb_line(s, "%sfloat *restrict s%d = cx->state + %s; /* %s */", wr ? "" : "const ", k, P->sname[k],
                        g->state[k].name);
    }
    for (int i = 0; i < g->n; i++)
        if (f->need[i] && f->mat[i] && f->home[i] == H_SCRATCH)
            rc_sb_line(s, "float *restrict t%d = CXW(%s);", i, em_bufname(E, P->buf[i]));
    if (which == PF_TRAIN)
        for (int k = 0; k < g->n_state; k++)
            if (P->snap[k] >= 0) {
                const rc_param *sp = decl_view(ir, P->li, g->state[k].name, 1);
                rc_sb_line(s, "memcpy(CXW(%s), cx->state + %s, %lld * sizeof(float)); /* %s for the backward */",
                           em_bufname(E, P->snap[k]), P->sname[k], sp ? (long long)sp->count : 0LL, g->state[k].name);
            }
    if (which == PF_BWD && P->need_dx && g->grad_in[RC_PRIM_TRAIN] < 0)
        rc_sb_line(s, "if (dx) memset(dx, 0, (size_t)B * %lld * sizeof(float)); /* no path from x to the output */",
                   (long long)em_shsize(L->in));
    for (int i = 0; i < g->n; i++) {
        if (!f->need[i] || !f->mat[i]) continue;
        if (f->home[i] == H_DX) rc_sb_line(s, "if (dx)");
        emit_node(&R, i);
    }
    for (int r = 0; r < f->nroot; r++)
        if (!f->direct[r] && f->root[r].dest != H_STATE) {
            if (f->root[r].dest == H_DX) rc_sb_line(s, "if (dx)");
            emit_root_copy(&R, &f->root[r]);
        }
    if (has_upd) rc_sb_line(s, "/* state updates, after every value is computed */");
    for (int r = 0; r < f->nroot; r++)
        if (f->root[r].dest == H_STATE) emit_root_copy(&R, &f->root[r]);
    rc_sb_line(s, "}");
    rc_sb_raw(s, "\n", 1);
    free(R.memo);
    free(R.uses);
}

void em_prim_kernels(em *E, const em_prim *P)
{
    for (int k = 0; k < P->npconv; k++) em_pconv_kernels(E, &P->pconv[k]);
    for (int f = 0; f < PF_N; f++)
        if (!(f == PF_EVAL && one_forward(P))) emit_fn(E, P, f);
}

/* ---------------------------------------------------------------- driver statements */

/* Batch input pointer of the layer (group g): the previous group's output, or for layer 1 the
 * windows copied into the workspace (emitting the copy when `copy`). */
static void in_ptr(em *E, const em_prim *P, int g, int copy, char *out, size_t n)
{
    rc_sb *s = &E->d;
    if (g > 0) {
        const em_grp *Pg = &E->g[g - 1];
        snprintf(out, n, "CXW(%s)", em_bufname(E, Pg->buf[Pg->nops]));
        return;
    }
    const rc_ir *ir = E->ir;
    int64_t F = em_shsize(ir->layers[P->li].in);
    snprintf(out, n, "CXW(%s)", em_bufname(E, P->in_buf));
    if (!copy) return;
    rc_sb_line(s, "/* layer %d reads the whole batch: copy the input windows */", P->li + 1);
    em_omp_for(E, s, P->li, NULL);
    rc_sb_line(s, "for (int b = 0; b < B; b++) memcpy(%s + (size_t)b * %lld, frames + (size_t)starts[b] * %d, %lld * sizeof(float));",
               out, (long long)F, ir->in.h * ir->in.w, (long long)F);
}

void em_prim_call_fwd(em *E, const em_prim *P, int g, int train, const char *y)
{
    char x[96];
    in_ptr(E, P, g, 1, x, sizeof x);
    char fn[64];
    rc_kernel_name(fn, sizeof fn, train || one_forward(P) ? RC_PHASE_FORWARD : RC_PHASE_INFER, P->li, "def");
    rc_sb_line(&E->d, "%s(B, %s, %s, cx);", fn, x, y);
}

void em_prim_call_bwd(em *E, const em_prim *P, int g, const char *dy, const char *dx)
{
    char x[96];
    in_ptr(E, P, g, 0, x, sizeof x);
    char fn[64];
    rc_kernel_name(fn, sizeof fn, RC_PHASE_BACKWARD, P->li, "def");
    rc_sb_line(&E->d, "%s(B, %s, %s, %s, cx);", fn, x, dy, dx ? dx : "NULL");
}
