/* emit_cuda_prim.c — the CUDA rendering of a defined layer (RC_LAYER_DEF): one primitive graph
 * (compiler/prim.h) at model layer li as kernels plus launches in the plan, in the style of the
 * rest of the CUDA renderer (every kernel takes rc_kargs; workspace regions are (b * B + c)
 * floats with literal offsets; every loop bound is a literal except the batch size a.B).
 *
 * Plan per phase (training forward, training backward, inference):
 *   roots   train forward: the training output and the value of every UPDATE sink; inference:
 *           the eval output; backward: the gradients rc_prim_grad(g, RC_PRIM_TRAIN) made, of the
 *           input (unless the layer is the model's first) and of each parameter.
 *   kernels one per materialized node, in node order, one thread per output element
 *           (grid-stride loop); a node is materialized when it is not elementwise (reduction,
 *           movement, contraction), when it has more than one consumer or root use in the phase,
 *           when a contraction reads it, when it is a root, or when it ends a chain of INLINE_MAX
 *           inlined elementwise nodes. Elementwise nodes that are not
 *           materialized are inlined into their consumer's kernel as expressions of the
 *           primitive table's template text (rc_prim_info.c, the same text the C emitter uses),
 *           with the broadcast index mapping (an operand's size-1 axes read index 0). Leaves are
 *           read where used: the layer input, the output gradient, parameters, state, constants,
 *           and random draws rc_rng_normal/uniform(seed, RC_RNG_STREAM(li, RC_PRIM_RNG_SUB0 + k),
 *           flat row-major index), a pure function of the seed, so recomputing them is exact.
 *   reductions and contractions: one thread per output element looping over the reduced
 *           elements in double (first version: no block-level tiling; parameter gradients sum
 *           over the batch the same way, so there are no atomics and results are reproducible).
 *   backward every node the training forward materialized is read back from its region (the
 *           forward ran on the same input, parameters and seed with the same B, and nothing
 *           writes those regions between train_forward and train_backward, as for the built-in
 *           layers' stored activations); any other forward node is recomputed from the stored
 *           layer input. Parameter gradients are accumulated (+=), the input gradient written.
 *   state   UPDATE sinks write their value to a staging region during the forward; the forward's
 *           last kernels ("commit") copy every state tensor the backward reads to a snapshot
 *           region (the backward has no state pointer, and the forward may update it) and then
 *           the staged values into the state.
 * Invariants: deterministic text; no atomics; no barriers (so no early-return hazard).
 */
#include "emit_cuda_int.h"
#include "rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INLINE_MAX 48   /* longest chain of elementwise nodes inlined into one expression */
#define PH_TF RC_CU_TRAIN_FWD
#define PH_TB RC_CU_TRAIN_BWD
#define PH_IF RC_CU_INFER

enum { ST_OUT, ST_GIN, ST_GRAD, ST_STAGE };

typedef struct {
    int root;        /* node whose value is stored */
    int kind;        /* ST_* */
    int k;           /* ST_GRAD: parameter; ST_STAGE: the UPDATE node */
    int done;        /* stored by the root's own kernel */
} dest;

struct rc_cu_prim {
    rc_prim_graph *g;               /* owned */
    rc_cu_prim_io io;
    int n;                          /* nodes after rc_prim_grad */
    reg *nreg;                      /* per node region (materialized nodes, UPDATE stages) */
    unsigned char *has_reg;
    unsigned char *mat[RC_CU_NPHASE];
    unsigned char *live[RC_CU_NPHASE];
    unsigned char *contract_in;     /* scratch */
    unsigned char *depth;           /* scratch: length of an inlined elementwise chain */
    int *uses;                      /* scratch */
    int snap_need[RC_PRIM_MAX_DECL];
    reg snap[RC_PRIM_MAX_DECL];
    int n_dest[RC_CU_NPHASE];
    dest dst[RC_CU_NPHASE][RC_PRIM_MAX_DECL + 4];
    int in_node;                    /* INPUT ref 0 node, -1 if unused */
    reg *dwp;                       /* conv2d_dw nodes on the tiled weight-gradient kernel: the */
    unsigned char *has_dwp;         /*   region of its per-batch-chunk partials */
};

/* ---------------------------------------------------------------- small helpers */

static int64_t up4(int64_t x) { return (x + 3) & ~(int64_t)3; }

static reg alloc_ws(em *e, int64_t b, int64_t c)
{
    reg r = { e->L.tb, e->L.tc };
    e->L.tb += up4(b);
    e->L.tc += up4(c);
    return r;
}

static const rc_prim_info *info(const rc_prim_node *nd) { return &rc_prim_table()[nd->op]; }

static int is_ew(const rc_prim_node *nd)
{
    rc_prim_kind k = info(nd)->kind;
    return k == RC_PK_UNARY || k == RC_PK_BINARY || k == RC_PK_SELECT;
}

/* Copy an index name (at most 23 characters: loop variables, "i3", "0"). */
static void setix(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > 23) n = 23;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int is_leaf(const rc_prim_node *nd) { return info(nd)->kind == RC_PK_LEAF; }

/* Elements of a shape: c * B^nb. */
static void numel(int rank, const int *dims, int64_t *c, int *nb)
{
    *c = 1;
    *nb = 0;
    for (int a = 0; a < rank; a++) {
        if (dims[a] == RC_PRIM_B) (*nb)++;
        else *c *= dims[a];
    }
}

static void bound(int d, char *out, size_t n)
{
    if (d == RC_PRIM_B) snprintf(out, n, "a.B");
    else snprintf(out, n, "%d", d);
}

/* Flat row-major index of idx[] in a tensor of shape dims; size-1 axes and "0" indices add nothing. */
static void flat_expr(int rank, const int *dims, char idx[][24], char *out, size_t n)
{
    size_t len = 0;
    int64_t c = 1;
    int nb = 0;
    out[0] = 0;
    for (int ax = rank - 1; ax >= 0; ax--) {
        if (dims[ax] != 1 && strcmp(idx[ax], "0")) {
            len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s(long long)%s%s * %lldLL",
                                    len ? " + " : "", idx[ax], nb ? " * a.B" : "", (long long)c);
        }
        if (dims[ax] == RC_PRIM_B) nb++;
        else c *= dims[ax];
    }
    if (!len) snprintf(out, n, "0LL");
}

/* ---------------------------------------------------------------- kernel text context */

#define VLEN 96
#define MEMO_MAX 512

typedef struct {
    int node, level;
    char key[160];
    char var[VLEN];
} memo_ent;

typedef struct {
    em *e;
    rc_cu_prim *p;
    int ph;
    int depth;          /* indentation, 4 spaces each */
    int nvar;
    int level;
    int n_memo;
    memo_ent memo[MEMO_MAX];
} kx;

static void L(kx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void L(kx *x, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rc_sb_put(x->e->sb, "%*s%s\n", 4 * x->depth, "", buf);
}

static void open_block(kx *x) { x->depth++; x->level++; }
static void close_block(kx *x)
{
    while (x->n_memo > 0 && x->memo[x->n_memo - 1].level >= x->level) x->n_memo--;
    x->level--;
    x->depth--;
}

static void fail(kx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(kx *x, const char *fmt, ...)
{
    if (x->e->fail) return;
    char m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(x->e->err, x->e->errlen, "layer %d (defined): %s", x->p->io.li + 1, m);
    x->e->fail = 2;
}


static void newvar(kx *x, char *out) { snprintf(out, VLEN, "v%d", x->nvar++); }

/* Operand text for templates: plain identifiers as they are, anything else in parentheses. */
static void operand(const char *v, char *out, size_t n)
{
    int ident = (v[0] == '_' || (v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z'));
    for (const char *c = v; *c && ident; c++)
        ident = *c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
    snprintf(out, n, ident ? "%s" : "(%s)", v);
}

/* Expand an expression template: %0 %1 %2 the operands, %v the node's value. */
static void expand_tpl(const char *tpl, char ops[3][VLEN], double value, char *out, size_t n)
{
    size_t len = 0;
    char lit[48], o[VLEN + 4];
    for (const char *c = tpl; *c && len + 1 < n; c++) {
        const char *ins = NULL;
        if (c[0] == '%' && c[1] >= '0' && c[1] <= '2') {
            operand(ops[c[1] - '0'], o, sizeof o);
            ins = o;
            c++;
        } else if (c[0] == '%' && c[1] == 'v') {
            rc_emit_float(lit, value);
            snprintf(o, sizeof o, "(%s)", lit);
            ins = o;
            c++;
        }
        if (ins) len += (size_t)snprintf(out + len, n - len, "%s", ins);
        else out[len++] = *c;
    }
    out[len < n ? len : n - 1] = 0;
}

/* ---------------------------------------------------------------- values */

static void val(kx *x, int id, char idx[][24], char *out);
static void compute(kx *x, int id, char idx[][24], char *out);

/* Operand `arg` of node id read at the node's index (broadcast: size-1 axes read index 0). */
static void project(const rc_prim_node *in, char idx[][24], char pidx[][24])
{
    for (int a = 0; a < in->rank; a++) setix(pidx[a], in->dims[a] == 1 ? "0" : idx[a]);
}

static void region_expr(kx *x, reg r, char *out, size_t n) { (void)x; char w[96]; snprintf(out, n, "%s", rc_cu_ws(r, w)); }

/* Where a materialized (or forward-materialized) node, a leaf or a cotangent is read. */
static void load_leaf(kx *x, const rc_prim_node *nd, int id, char idx[][24], char *expr, size_t n)
{
    const rc_cu_prim_io *io = &x->p->io;
    char fl[512], w[160];
    flat_expr(nd->rank, nd->dims, idx, fl, sizeof fl);
    if (!is_leaf(nd)) {   /* region */
        region_expr(x, x->p->nreg[id], w, sizeof w);
        snprintf(expr, n, "%s[%s]", w, fl);
        return;
    }
    switch (nd->op) {
    case RC_P_INPUT:
        if (nd->ref == 0 && io->in_frames) {
            if (nd->rank < 1 || nd->dims[0] != RC_PRIM_B) { fail(x, "the layer input must lead with the batch"); break; }
            char f[512];
            flat_expr(nd->rank - 1, nd->dims + 1, idx + 1, f, sizeof f);
            snprintf(expr, n, "a.frames[a.starts[%s] * %lldLL + %s]", idx[0], (long long)io->in_hw, f);
        } else if (nd->ref == 0) {
            region_expr(x, io->in, w, sizeof w);
            snprintf(expr, n, "%s[%s]", w, fl);
        } else if (io->gout_dy) {
            snprintf(expr, n, "a.dy[%s]", fl);
        } else {
            region_expr(x, io->gout, w, sizeof w);
            snprintf(expr, n, "%s[%s]", w, fl);
        }
        break;
    case RC_P_PARAM:
        snprintf(expr, n, "a.params[%lldLL + %s]", (long long)io->poff[nd->ref], fl);
        break;
    case RC_P_STATE:
        if (x->ph == PH_TB) {
            region_expr(x, x->p->snap[nd->ref], w, sizeof w);
            snprintf(expr, n, "%s[%s]", w, fl);
        } else {
            snprintf(expr, n, "a.state[%lldLL + %s]", (long long)io->soff[nd->ref], fl);
        }
        break;
    case RC_P_RANDN: case RC_P_RANDU:
        snprintf(expr, n, "rc_rng_%s(a.seed, %lluULL, (unsigned long long)(%s))",
                 nd->op == RC_P_RANDN ? "normal" : "uniform",
                 (unsigned long long)RC_RNG_STREAM(io->li, RC_PRIM_RNG_SUB0 + nd->attr[0]), fl);
        break;
    default:
        fail(x, "node %d: leaf %s cannot be read", id, rc_prim_name(nd->op));
        snprintf(expr, n, "0.0f");
    }
}

/* Value of node id at idx: a literal, or a variable defined by statements emitted here. */
static void val(kx *x, int id, char idx[][24], char *out)
{
    const rc_cu_prim *p = x->p;
    const rc_prim_node *nd = &p->g->node[id];
    if (nd->op == RC_P_CONST) { rc_emit_float(out, nd->value); return; }
    if (nd->op == RC_P_NUMEL) {   /* attr[0] * B^attr[1] (cells substituted by rc_prim_parse) */
        char lit[48];
        if (nd->attr[2]) fail(x, "node %d (numel): the cell count is not substituted", id);
        rc_emit_float(lit, nd->attr[0]);
        if (nd->attr[1]) snprintf(out, VLEN, "((float)a.B * %s)", lit);
        else snprintf(out, VLEN, "%s", lit);
        return;
    }
    char key[160];
    size_t kl = (size_t)snprintf(key, sizeof key, "%d", id);
    for (int a = 0; a < nd->rank && kl < sizeof key; a++) kl += (size_t)snprintf(key + kl, sizeof key - kl, ",%s", idx[a]);
    for (int m = x->n_memo - 1; m >= 0; m--)
        if (x->memo[m].node == id && !strcmp(x->memo[m].key, key)) { snprintf(out, VLEN, "%s", x->memo[m].var); return; }
    int stored = p->mat[x->ph][id] || (x->ph == PH_TB && p->mat[PH_TF][id]);
    if (stored || is_leaf(nd)) {
        char ex[1024];
        load_leaf(x, nd, id, idx, ex, sizeof ex);
        newvar(x, out);
        L(x, "const float %s = %s;", out, ex);
    } else if (is_ew(nd)) {
        compute(x, id, idx, out);
    } else {
        fail(x, "node %d (%s) is neither stored nor elementwise", id, rc_prim_name(nd->op));
        snprintf(out, VLEN, "0.0f");
        return;
    }
    if (x->n_memo < MEMO_MAX) {
        memo_ent *m = &x->memo[x->n_memo++];
        m->node = id;
        m->level = x->level;
        snprintf(m->key, sizeof m->key, "%s", key);
        snprintf(m->var, sizeof m->var, "%s", out);
    }
}

/* Declare loop variable `name` over [0, d) and open its block. */
static void loop(kx *x, const char *name, int d)
{
    char b[16];
    bound(d, b, sizeof b);
    L(x, "for (int %s = 0; %s < %s; %s++) {", name, name, b, name);
    open_block(x);
}

static void endloop(kx *x) { close_block(x); L(x, "}"); }

static void emit_reduce(kx *x, const rc_prim_node *nd, char idx[][24], const char *out)
{
    const rc_prim_node *in = &x->p->g->node[nd->in[0]];
    int mask = nd->attr[0], nl = 0;
    char j[RC_PRIM_MAX_RANK][24], cnt[64];
    int64_t c = 1;
    int nb = 0;
    if (nd->op == RC_P_RMAX) L(x, "float m%s = -(1.0f/0.0f);", out);
    else L(x, "double s%s = 0.0;", out);
    for (int a = 0; a < in->rank; a++) {
        if ((mask >> a & 1) && in->dims[a] != 1) {
            snprintf(j[a], 24, "r%d", x->nvar++);
            loop(x, j[a], in->dims[a]);
            nl++;
            if (in->dims[a] == RC_PRIM_B) nb++;
            else c *= in->dims[a];
        } else {
            setix(j[a], in->dims[a] == 1 ? "0" : idx[a]);
        }
    }
    char v[VLEN];
    val(x, nd->in[0], j, v);
    if (nd->op == RC_P_RMAX) L(x, "m%s = %s > m%s ? %s : m%s;", out, v, out, v, out);
    else L(x, "s%s += (double)%s;", out, v);
    for (int k = 0; k < nl; k++) endloop(x);
    snprintf(cnt, sizeof cnt, "%s%lld.0", nb ? "(double)a.B * " : "", (long long)c);
    if (nd->op == RC_P_RMAX) L(x, "const float %s = m%s;", out, out);
    else if (nd->op == RC_P_MEAN) L(x, "const float %s = (float)(s%s / (%s));", out, out, cnt);
    else L(x, "const float %s = (float)s%s;", out, out);
}

static void emit_move(kx *x, const rc_prim_node *nd, char idx[][24], const char *out)
{
    const rc_prim_graph *g = x->p->g;
    const rc_prim_node *in = &g->node[nd->in[0]];
    char j[RC_PRIM_MAX_RANK][24], v[VLEN];
    switch (nd->op) {
    case RC_P_RESHAPE: {
        char fl[512];
        flat_expr(nd->rank, nd->dims, idx, fl, sizeof fl);
        int q = x->nvar++;
        L(x, "long long q%d = %s;", q, fl);
        for (int a = in->rank - 1; a >= 0; a--) {
            if (in->dims[a] == 1) { snprintf(j[a], 24, "0"); continue; }
            snprintf(j[a], 24, "r%d", x->nvar++);
            if (a == 0) { L(x, "const int %s = (int)q%d;", j[a], q); continue; }
            char b[16];
            bound(in->dims[a], b, sizeof b);
            L(x, "const int %s = (int)(q%d %% %s); q%d /= %s;", j[a], q, b, q, b);
        }
        val(x, nd->in[0], j, v);
        L(x, "const float %s = %s;", out, v);
        return;
    }
    case RC_P_TRANSPOSE:
        for (int a = 0; a < nd->rank; a++) setix(j[nd->attr[a]], idx[a]);
        for (int a = 0; a < in->rank; a++) if (in->dims[a] == 1) snprintf(j[a], 24, "0");
        val(x, nd->in[0], j, v);
        L(x, "const float %s = %s;", out, v);
        return;
    case RC_P_EXPAND:
        project(in, idx, j);
        val(x, nd->in[0], j, v);
        L(x, "const float %s = %s;", out, v);
        return;
    case RC_P_SLICE:
        for (int a = 0; a < in->rank; a++) {
            if (in->dims[a] == 1) snprintf(j[a], 24, "0");
            else if (nd->attr[2 * a] == 0) setix(j[a], idx[a]);
            else {
                snprintf(j[a], 24, "r%d", x->nvar++);
                L(x, "const int %s = %s + %d;", j[a], idx[a], nd->attr[2 * a]);
            }
        }
        val(x, nd->in[0], j, v);
        L(x, "const float %s = %s;", out, v);
        return;
    case RC_P_PAD: {
        char cond[1024] = "";
        size_t cl = 0;
        for (int a = 0; a < in->rank; a++) {
            int lo = nd->attr[2 * a], hi = nd->attr[2 * a + 1];
            if (lo == 0 && hi == 0) { setix(j[a], in->dims[a] == 1 ? "0" : idx[a]); continue; }
            if (in->dims[a] == RC_PRIM_B) { fail(x, "pad along the batch axis"); return; }
            snprintf(j[a], 24, "r%d", x->nvar++);
            L(x, "const int %s = %s - %d;", j[a], idx[a], lo);
            cl += (size_t)snprintf(cond + cl, cl < sizeof cond ? sizeof cond - cl : 0, "%s%s >= 0 && %s < %d",
                                   cl ? " && " : "", j[a], j[a], in->dims[a]);
        }
        L(x, "float %s = 0.0f;", out);
        L(x, "if (%s) {", cl ? cond : "1");
        open_block(x);
        val(x, nd->in[0], j, v);
        L(x, "%s = %s;", out, v);
        close_block(x);
        L(x, "}");
        return;
    }
    case RC_P_CELLPICK: case RC_P_CELLPLACE: {   /* readout positions: a.cell_pos, one per cell */
        int pick = nd->op == RC_P_CELLPICK, py = x->nvar++, px = x->nvar++;
        L(x, "const int r%d = a.cell_pos[2 * (%s)], r%d = a.cell_pos[2 * (%s) + 1];", py, idx[1], px, idx[1]);
        setix(j[0], idx[0]);
        setix(j[1], in->dims[1] == 1 ? "0" : idx[1]);
        if (pick) {
            snprintf(j[2], 24, "r%d", py);
            snprintf(j[3], 24, "r%d", px);
            val(x, nd->in[0], j, v);
            L(x, "const float %s = %s;", out, v);
            return;
        }
        setix(j[2], "0");
        setix(j[3], "0");
        L(x, "float %s = 0.0f;", out);
        L(x, "if (%s == r%d && %s == r%d) {", idx[2], py, idx[3], px);
        open_block(x);
        val(x, nd->in[0], j, v);
        L(x, "%s = %s;", out, v);
        close_block(x);
        L(x, "}");
        return;
    }
    case RC_P_CONCAT: {
        int ax = nd->attr[0], d0 = in->dims[ax];
        const rc_prim_node *in1 = &g->node[nd->in[1]];
        if (d0 == RC_PRIM_B || in1->dims[ax] == RC_PRIM_B) { fail(x, "concat along the batch axis"); return; }
        L(x, "float %s;", out);
        L(x, "if (%s < %d) {", idx[ax], d0);
        open_block(x);
        project(in, idx, j);
        val(x, nd->in[0], j, v);
        L(x, "%s = %s;", out, v);
        close_block(x);
        L(x, "} else {");
        open_block(x);
        project(in1, idx, j);
        if (in1->dims[ax] != 1) {
            snprintf(j[ax], 24, "r%d", x->nvar++);
            L(x, "const int %s = %s - %d;", j[ax], idx[ax], d0);
        }
        val(x, nd->in[1], j, v);
        L(x, "%s = %s;", out, v);
        close_block(x);
        L(x, "}");
        return;
    }
    default:
        fail(x, "movement %s not handled", rc_prim_name(nd->op));
    }
}

/* Index of weight element (o, c, kh, kw) at output phase (ph, pw) in the 4- or 6-axis weight. */
static void widx(const rc_prim_node *w, const char *ph, const char *pw, const char *o, const char *c,
                 const char *kh, const char *kw, char j[][24])
{
    const char *src[6] = {ph, pw, o, c, kh, kw};
    int first = w->rank == 6 ? 0 : 2;
    for (int r = 0; r < w->rank; r++) setix(j[r], w->dims[r] == 1 ? "0" : src[first + r]);
}

static void emit_contract(kx *x, const rc_prim_node *nd, char idx[][24], const char *out)
{
    const rc_prim_graph *g = x->p->g;
    const rc_prim_node *A = &g->node[nd->in[0]], *Bn = &g->node[nd->in[1]];
    char j[RC_PRIM_MAX_RANK][24], k[RC_PRIM_MAX_RANK][24], va[VLEN], vb[VLEN];
    int s = nd->attr[0], pad = nd->attr[1], dil = nd->attr[2], py = nd->attr[3], px = nd->attr[4];
    if (py < 1) py = 1;
    if (px < 1) px = 1;
    L(x, "double s%s = 0.0;", out);
    if (nd->op == RC_P_MATMUL) {
        char r[24];
        snprintf(r, sizeof r, "r%d", x->nvar++);
        loop(x, r, A->dims[1]);
        setix(j[0], A->dims[0] == 1 ? "0" : idx[0]);
        setix(j[1], A->dims[1] == 1 ? "0" : r);
        setix(k[0], Bn->dims[0] == 1 ? "0" : r);
        setix(k[1], Bn->dims[1] == 1 ? "0" : idx[1]);
        val(x, nd->in[0], j, va);
        val(x, nd->in[1], k, vb);
        L(x, "s%s += (double)%s * (double)%s;", out, va, vb);
        endloop(x);
    } else if (nd->op == RC_P_CONV2D) {
        /* x (N, C, H, W), w; out (N, O, Ho, Wo) at idx = (n, o, oh, ow) */
        const rc_prim_node *w = Bn;
        int C = A->dims[1], H = A->dims[2], W = A->dims[3], K = w->dims[w->rank - 1];
        char c[24], kh[24], kw[24], ih[24], iw[24], ph[24], pw[24];
        snprintf(ph, 24, "r%d", x->nvar++);
        snprintf(pw, 24, "r%d", x->nvar++);
        L(x, "const int %s = %s %% %d, %s = %s %% %d;", ph, idx[2], py, pw, idx[3], px);
        snprintf(c, 24, "r%d", x->nvar++);
        snprintf(kh, 24, "r%d", x->nvar++);
        snprintf(kw, 24, "r%d", x->nvar++);
        snprintf(ih, 24, "r%d", x->nvar++);
        snprintf(iw, 24, "r%d", x->nvar++);
        loop(x, c, C);
        loop(x, kh, K);
        L(x, "const int %s = %s * %d - %d + %s * %d;", ih, idx[2], s, pad, kh, dil);
        L(x, "if (%s < 0 || %s >= %d) continue;", ih, ih, H);
        loop(x, kw, K);
        L(x, "const int %s = %s * %d - %d + %s * %d;", iw, idx[3], s, pad, kw, dil);
        L(x, "if (%s < 0 || %s >= %d) continue;", iw, iw, W);
        setix(j[0], idx[0]);
        setix(j[1], C == 1 ? "0" : c);
        setix(j[2], H == 1 ? "0" : ih);
        setix(j[3], W == 1 ? "0" : iw);
        widx(w, ph, pw, idx[1], c, kh, kw, k);
        val(x, nd->in[0], j, va);
        val(x, nd->in[1], k, vb);
        L(x, "s%s += (double)%s * (double)%s;", out, va, vb);
        endloop(x); endloop(x); endloop(x);
    } else if (nd->op == RC_P_CONV2D_DX) {
        /* g (N, O, Ho, Wo), w; dx (N, C, H, W) at idx = (n, c, ih, iw) */
        const rc_prim_node *w = Bn;
        int O = A->dims[1], Ho = A->dims[2], Wo = A->dims[3], K = w->dims[w->rank - 1];
        char o[24], kh[24], kw[24], th[24], tw[24], oh[24], ow[24], ph[24], pw[24];
        snprintf(o, 24, "r%d", x->nvar++);
        snprintf(kh, 24, "r%d", x->nvar++);
        snprintf(kw, 24, "r%d", x->nvar++);
        snprintf(th, 24, "r%d", x->nvar++);
        snprintf(tw, 24, "r%d", x->nvar++);
        snprintf(oh, 24, "r%d", x->nvar++);
        snprintf(ow, 24, "r%d", x->nvar++);
        snprintf(ph, 24, "r%d", x->nvar++);
        snprintf(pw, 24, "r%d", x->nvar++);
        loop(x, kh, K);
        L(x, "const int %s = %s + %d - %s * %d;", th, idx[2], pad, kh, dil);
        L(x, "if (%s < 0 || %s %% %d != 0 || %s / %d >= %d) continue;", th, th, s, th, s, Ho);
        L(x, "const int %s = %s / %d, %s = %s %% %d;", oh, th, s, ph, oh, py);
        loop(x, kw, K);
        L(x, "const int %s = %s + %d - %s * %d;", tw, idx[3], pad, kw, dil);
        L(x, "if (%s < 0 || %s %% %d != 0 || %s / %d >= %d) continue;", tw, tw, s, tw, s, Wo);
        L(x, "const int %s = %s / %d, %s = %s %% %d;", ow, tw, s, pw, ow, px);
        loop(x, o, O);
        setix(j[0], idx[0]);
        setix(j[1], O == 1 ? "0" : o);
        setix(j[2], Ho == 1 ? "0" : oh);
        setix(j[3], Wo == 1 ? "0" : ow);
        widx(w, ph, pw, o, idx[1], kh, kw, k);
        val(x, nd->in[0], j, va);
        val(x, nd->in[1], k, vb);
        L(x, "s%s += (double)%s * (double)%s;", out, va, vb);
        endloop(x); endloop(x); endloop(x);
    } else if (nd->op == RC_P_CONV2D_DW) {
        /* x (N, C, H, W), g (N, O, Ho, Wo); dw (O, C, K, K) or (PY, PX, O, C, K, K) */
        const rc_prim_node *X = A, *G = Bn;
        int H = X->dims[2], W = X->dims[3], Ho = G->dims[2], Wo = G->dims[3];
        int r6 = nd->rank == 6, b = r6 ? 2 : 0;
        const char *o = idx[b], *c = idx[b + 1], *kh = idx[b + 2], *kw = idx[b + 3];
        char n[24], oh[24], ow[24], ih[24], iw[24];
        snprintf(n, 24, "r%d", x->nvar++);
        snprintf(oh, 24, "r%d", x->nvar++);
        snprintf(ow, 24, "r%d", x->nvar++);
        snprintf(ih, 24, "r%d", x->nvar++);
        snprintf(iw, 24, "r%d", x->nvar++);
        loop(x, n, X->dims[0]);
        L(x, "for (int %s = %s; %s < %d; %s += %d) {", oh, r6 ? idx[0] : "0", oh, Ho, oh, r6 ? py : 1);
        open_block(x);
        L(x, "const int %s = %s * %d - %d + %s * %d;", ih, oh, s, pad, kh, dil);
        L(x, "if (%s < 0 || %s >= %d) continue;", ih, ih, H);
        L(x, "for (int %s = %s; %s < %d; %s += %d) {", ow, r6 ? idx[1] : "0", ow, Wo, ow, r6 ? px : 1);
        open_block(x);
        L(x, "const int %s = %s * %d - %d + %s * %d;", iw, ow, s, pad, kw, dil);
        L(x, "if (%s < 0 || %s >= %d) continue;", iw, iw, W);
        setix(j[0], X->dims[0] == 1 ? "0" : n);
        setix(j[1], X->dims[1] == 1 ? "0" : c);
        setix(j[2], H == 1 ? "0" : ih);
        setix(j[3], W == 1 ? "0" : iw);
        setix(k[0], G->dims[0] == 1 ? "0" : n);
        setix(k[1], G->dims[1] == 1 ? "0" : o);
        setix(k[2], Ho == 1 ? "0" : oh);
        setix(k[3], Wo == 1 ? "0" : ow);
        val(x, nd->in[0], j, va);
        val(x, nd->in[1], k, vb);
        L(x, "s%s += (double)%s * (double)%s;", out, va, vb);
        endloop(x); endloop(x); endloop(x);
    } else {
        fail(x, "contraction %s not handled", rc_prim_name(nd->op));
    }
    L(x, "const float %s = (float)s%s;", out, out);
}

/* Compute node id at idx (its own body, never a load of its region). */
static void compute(kx *x, int id, char idx[][24], char *out)
{
    const rc_prim_graph *g = x->p->g;
    const rc_prim_node *nd = &g->node[id];
    const rc_prim_info *in = info(nd);
    switch (in->kind) {
    case RC_PK_UNARY: case RC_PK_BINARY: case RC_PK_SELECT: {
        char ops[3][VLEN] = {"0.0f", "0.0f", "0.0f"}, pidx[RC_PRIM_MAX_RANK][24], ex[2048];
        for (int k = 0; k < nd->n_in && k < 3; k++) {
            project(&g->node[nd->in[k]], idx, pidx);
            val(x, nd->in[k], pidx, ops[k]);
        }
        if (!in->c) { fail(x, "%s has no expression template", in->name); snprintf(out, VLEN, "0.0f"); return; }
        expand_tpl(in->c, ops, nd->value, ex, sizeof ex);
        newvar(x, out);
        L(x, "const float %s = (float)(%s);", out, ex);
        return;
    }
    case RC_PK_REDUCE: newvar(x, out); emit_reduce(x, nd, idx, out); return;
    case RC_PK_MOVE: newvar(x, out); emit_move(x, nd, idx, out); return;
    case RC_PK_CONTRACT: newvar(x, out); emit_contract(x, nd, idx, out); return;
    default: {
        char ex[1024];
        load_leaf(x, nd, id, idx, ex, sizeof ex);
        newvar(x, out);
        L(x, "const float %s = %s;", out, ex);
    }
    }
}

/* ---------------------------------------------------------------- kernels */

/* Open kernel `name` over shape (rank, dims): one thread per element, grid-stride, index i0.. */
static void kopen(kx *x, const char *name, int rank, const int *dims, char idx[][24])
{
    int64_t c;
    int nb;
    numel(rank, dims, &c, &nb);
    rc_sb_put(x->e->sb, "\nextern \"C\" __global__ void __launch_bounds__(256, 1) %s(rc_kargs a)\n{\n", name);
    x->depth = 1;
    x->level = 0;
    x->nvar = 0;
    x->n_memo = 0;
    L(x, "const long long n_ = %s%lldLL;", nb ? "(long long)a.B * " : "", (long long)c);
    L(x, "for (long long t = (long long)blockIdx.x * 256 + threadIdx.x; t < n_; t += (long long)gridDim.x * 256) {");
    open_block(x);
    if (rank > 0) L(x, "long long q_ = t;");
    for (int a = rank - 1; a >= 0; a--) {
        snprintf(idx[a], 24, "i%d", a);
        if (dims[a] == 1) { snprintf(idx[a], 24, "0"); continue; }
        if (a == 0) { L(x, "const int i0 = (int)q_;"); continue; }
        char b[16];
        bound(dims[a], b, sizeof b);
        L(x, "const int i%d = (int)(q_ %% %s); q_ /= %s;", a, b, b);
    }
    (void)nb;
}

static void kclose(kx *x, const char *name, int rank, const int *dims)
{
    int64_t c;
    int nb;
    numel(rank, dims, &c, &nb);
    close_block(x);
    L(x, "}");
    rc_sb_put(x->e->sb, "}\n");
    rc_cu_add_launch(x->e, name, x->p->io.li, 256, nb ? c : 0, nb ? 0 : c, 256, 0, 1);
}

static void store(kx *x, const dest *d, const char *v)
{
    const rc_cu_prim_io *io = &x->p->io;
    char w[160];
    switch (d->kind) {
    case ST_OUT:
        region_expr(x, io->out, w, sizeof w);
        L(x, "%s[t] = %s;", w, v);
        if (io->out_y) L(x, "a.y[t] = %s;", v);
        break;
    case ST_GIN:
        region_expr(x, io->gin, w, sizeof w);
        L(x, "%s[t] = %s;", w, v);
        break;
    case ST_GRAD:
        L(x, "a.grads[%lldLL + t] += %s;", (long long)io->poff[d->k], v);
        break;
    case ST_STAGE:
        region_expr(x, x->p->nreg[d->k], w, sizeof w);
        L(x, "%s[t] = %s;", w, v);
        break;
    }
}

/* Shape a destination is written over. */
static void dest_shape(rc_cu_prim *p, const dest *d, int *rank, int *dims)
{
    const rc_prim_graph *g = p->g;
    const rc_prim_node *r = &g->node[d->root];
    *rank = r->rank;
    memcpy(dims, r->dims, sizeof r->dims);
    if (d->kind == ST_GRAD) {
        *rank = g->param[d->k].rank;
        memcpy(dims, g->param[d->k].dims, sizeof g->param[d->k].dims);
    } else if (d->kind == ST_GIN && p->in_node >= 0) {
        *rank = g->node[p->in_node].rank;
        memcpy(dims, g->node[p->in_node].dims, sizeof g->node[p->in_node].dims);
    } else if (d->kind == ST_GIN) {   /* the input is not read: (B, F_in) */
        *rank = 2;
        dims[0] = RC_PRIM_B;
        dims[1] = (int)p->io.F_in;
    } else if (d->kind == ST_STAGE) {
        const rc_prim_decl *s = &g->state[g->node[d->k].ref];
        *rank = s->rank;
        memcpy(dims, s->dims, sizeof s->dims);
    }
}

/* The base pointer of a batched operand a of a conv node in the current phase (the layer input,
 * the output gradient or a stored node) into out; 0 when it has none here. */
static int conv_src(kx *x, int a, char *out, size_t n)
{
    rc_cu_prim *p = x->p;
    const rc_prim_node *A = &p->g->node[a];
    char w[96];
    if (A->op == RC_P_INPUT && A->ref == 0) {
        if (p->io.in_frames) return 0;   /* a layer 1 reads windows of the frame stream */
        snprintf(out, n, "%s", rc_cu_ws(p->io.in, w));
    } else if (A->op == RC_P_INPUT) {
        snprintf(out, n, "%s", p->io.gout_dy ? "a.dy" : rc_cu_ws(p->io.gout, w));
    } else if (!is_leaf(A) && p->has_reg[a] && (p->mat[x->ph][a] || (x->ph == PH_TB && p->mat[PH_TF][a]))) {
        snprintf(out, n, "%s", rc_cu_ws(p->nreg[a], w));
    } else {
        return 0;
    }
    return 1;
}

/* A conv2d_dw node of the built-in conv's form (stride 1, no padding, dilation 1, not tiled)
 * whose value is one parameter's whole gradient (its only use): the built-in conv layers' tiled
 * weight-gradient kernel, partials per batch chunk, then a fixed-order sum into the gradient
 * (rc_cu_emit_conv_dw). Planned in rc_cu_prim_prepare (the partials' region); 0: not taken. */
static int tuned_dw(kx *x, int id)
{
    rc_cu_prim *p = x->p;
    const rc_prim_node *nd = &p->g->node[id], *X = &p->g->node[nd->in[0]], *G = &p->g->node[nd->in[1]];
    if (!p->has_dwp[id] || x->ph != PH_TB) return 0;
    int k = -1;
    for (int j = 0; j < p->n_dest[PH_TB]; j++)
        if (p->dst[PH_TB][j].root == id && p->dst[PH_TB][j].kind == ST_GRAD) k = j;
    conv_desc d;
    memset(&d, 0, sizeof d);
    char g[160];
    if (k < 0 || !conv_src(x, nd->in[0], d.src_ws, sizeof d.src_ws) || !conv_src(x, nd->in[1], g, sizeof g)) return 0;
    d.layer = -1;
    d.Cin = X->dims[1]; d.IH = X->dims[2]; d.IW = X->dims[3];
    d.Cout = G->dims[1]; d.OH = G->dims[2]; d.OW = G->dims[3];
    d.K = nd->dims[3];
    d.bias = -1;
    char tag[48];
    snprintf(tag, sizeof tag, "n%d_conv2d", id);
    rc_cu_emit_conv_dw(x->e, p->io.li, tag, &d, g, p->dwp[id], p->io.poff[p->dst[PH_TB][k].k], -1);
    p->dst[PH_TB][k].done = 1;
    return 1;
}

/* A conv2d or conv2d_dx node of the built-in conv's form (stride 1, dilation 1, period 1, zero
 * padding p < K, a parameter weight (O, C, K, K)) over a stored tensor or the output gradient,
 * on the tiled direct-conv kernel of the built-in conv layers (conv2d_dx as the correlation of
 * the output gradient with the flipped weight, padding K - 1 - p). Its value goes to its region;
 * the destinations it roots are stored from there by their own kernels. 0: not taken (the
 * generic kernel), nothing emitted. */
static int tuned_conv(kx *x, int id)
{
    rc_cu_prim *p = x->p;
    const rc_prim_graph *g = p->g;
    const rc_prim_node *nd = &g->node[id], *A = &g->node[nd->in[0]], *W = &g->node[nd->in[1]];
    if (nd->op != RC_P_CONV2D && nd->op != RC_P_CONV2D_DX) return 0;
    const int *at = nd->attr;
    if (at[0] != 1 || at[2] != 1 || at[3] != 1 || at[4] != 1 || nd->rank != 4 || nd->dims[0] != RC_PRIM_B) return 0;
    if (W->op != RC_P_PARAM || W->rank != 4 || W->dims[2] != W->dims[3] || A->rank != 4 || A->dims[0] != RC_PRIM_B) return 0;
    int K = W->dims[2], pad = at[1], a = nd->in[0];
    if (pad < 0 || pad >= K || !p->has_reg[id]) return 0;
    conv_desc d;
    memset(&d, 0, sizeof d);
    if (!conv_src(x, a, d.src_ws, sizeof d.src_ws)) return 0;
    d.layer = -1;
    d.Cin = A->dims[1]; d.IH = A->dims[2]; d.IW = A->dims[3];
    d.Cout = nd->dims[1]; d.OH = nd->dims[2]; d.OW = nd->dims[3];
    d.K = K;
    d.pad = nd->op == RC_P_CONV2D ? pad : K - 1 - pad;
    d.flip = nd->op == RC_P_CONV2D_DX;
    d.bias = -1;
    snprintf(d.wexpr, sizeof d.wexpr, "(a.params + %lldLL)", (long long)p->io.poff[W->ref]);
    char name[64], part[48];
    snprintf(part, sizeof part, "n%d_%s", id, rc_prim_name(nd->op));
    rc_kernel_name(name, sizeof name, (rc_phase)x->ph, p->io.li, part);
    return rc_cu_emit_conv_store(x->e, name, p->io.li, &d, p->nreg[id]);
}

/* Kernel of a materialized node: its region and the destinations whose root it is. */
static void node_kernel(kx *x, int id)
{
    if (tuned_conv(x, id) || tuned_dw(x, id)) return;
    rc_cu_prim *p = x->p;
    const rc_prim_node *nd = &p->g->node[id];
    char name[64], part[48], idx[RC_PRIM_MAX_RANK][24], v[VLEN], w[160];
    snprintf(part, sizeof part, "n%d_%s", id, rc_prim_name(nd->op));
    rc_kernel_name(name, sizeof name, (rc_phase)x->ph, p->io.li, part);
    rc_sb_put(x->e->sb, "\n/* layer %d (defined): node %d, %s */", p->io.li + 1, id, rc_prim_name(nd->op));
    kopen(x, name, nd->rank, nd->dims, idx);
    compute(x, id, idx, v);
    region_expr(x, p->nreg[id], w, sizeof w);
    L(x, "%s[t] = %s;", w, v);
    int64_t c, dc;
    int nb, dnb, rank, dims[RC_PRIM_MAX_RANK];
    numel(nd->rank, nd->dims, &c, &nb);
    for (int k = 0; k < p->n_dest[x->ph]; k++) {
        dest *d = &p->dst[x->ph][k];
        if (d->root != id) continue;
        dest_shape(p, d, &rank, dims);
        numel(rank, dims, &dc, &dnb);
        if (dc != c || dnb != nb) continue;   /* a broadcast root: its own kernel */
        store(x, d, v);
        d->done = 1;
    }
    kclose(x, name, nd->rank, nd->dims);
}

/* Kernel storing a root that no node kernel stored (inlined elementwise root, leaf, or a
 * broadcast root smaller than its destination). */
static void dest_kernel(kx *x, int k)
{
    rc_cu_prim *p = x->p;
    dest *d = &p->dst[x->ph][k];
    const rc_prim_node *r = &p->g->node[d->root];
    int rank, dims[RC_PRIM_MAX_RANK];
    dest_shape(p, d, &rank, dims);
    int64_t c1, c2;
    int b1, b2;
    numel(rank, dims, &c1, &b1);
    numel(r->rank, r->dims, &c2, &b2);
    int same = c1 == c2 && b1 == b2, bcast = rank == r->rank || r->op == RC_P_CONST || r->op == RC_P_NUMEL;
    for (int a = 0; a < rank && bcast && r->rank == rank; a++) bcast = r->dims[a] == 1 || r->dims[a] == dims[a];
    if (same && !bcast) { rank = r->rank; memcpy(dims, r->dims, sizeof r->dims); bcast = 1; }
    if (!bcast) { fail(x, "node %d (%s) does not fit its destination's shape", d->root, rc_prim_name(r->op)); return; }
    static const char *what[] = {"out", "gin", "gw", "upd"};
    char name[64], part[48], idx[RC_PRIM_MAX_RANK][24], pidx[RC_PRIM_MAX_RANK][24], v[VLEN];
    snprintf(part, sizeof part, "%s%d", what[d->kind], k);
    rc_kernel_name(name, sizeof name, (rc_phase)x->ph, p->io.li, part);
    rc_sb_put(x->e->sb, "\n/* layer %d (defined): %s from node %d */", p->io.li + 1, what[d->kind], d->root);
    kopen(x, name, rank, dims, idx);
    if (r->op == RC_P_CONST || r->op == RC_P_NUMEL) {
        char z[1][24] = {"0"};
        val(x, d->root, z, v);
    } else {
        project(r, idx, pidx);
        val(x, d->root, pidx, v);
    }
    store(x, d, v);
    kclose(x, name, rank, dims);
}

/* Forward only: snapshot the state the backward reads, then commit the staged updates. */
static void commit_kernels(kx *x)
{
    rc_cu_prim *p = x->p;
    const rc_prim_graph *g = p->g;
    for (int s = 0; s < g->n_state; s++) {
        int upd = 0;
        for (int i = 0; i < p->n; i++) upd |= g->node[i].op == RC_P_UPDATE && g->node[i].ref == s;
        if (!upd && !p->snap_need[s]) continue;
        const rc_prim_decl *dc = &g->state[s];
        char name[64], part[48], idx[RC_PRIM_MAX_RANK][24], w[160];
        snprintf(part, sizeof part, "commit%d", s);
        rc_kernel_name(name, sizeof name, RC_PHASE_FORWARD, p->io.li, part);
        rc_sb_put(x->e->sb, "\n/* layer %d (defined): state %s: snapshot for the backward, then the update */",
                  p->io.li + 1, dc->name);
        kopen(x, name, dc->rank, dc->dims, idx);
        if (p->snap_need[s]) {
            region_expr(x, p->snap[s], w, sizeof w);
            L(x, "%s[t] = a.state[%lldLL + t];", w, (long long)p->io.soff[s]);
        }
        for (int i = 0; i < p->n; i++)   /* node order: the last update of a state wins */
            if (g->node[i].op == RC_P_UPDATE && g->node[i].ref == s) {
                region_expr(x, p->nreg[i], w, sizeof w);
                L(x, "a.state[%lldLL + t] = %s[t];", (long long)p->io.soff[s], w);
            }
        kclose(x, name, dc->rank, dc->dims);
    }
}

static void emit_phase(em *e, rc_cu_prim *p, int ph)
{
    kx *x = calloc(1, sizeof *x);
    if (!x) { e->fail = 1; return; }
    x->e = e;
    x->p = p;
    x->ph = ph;
    for (int k = 0; k < p->n_dest[ph]; k++) p->dst[ph][k].done = 0;
    for (int i = 0; i < p->n && !e->fail; i++)
        if (p->mat[ph][i]) node_kernel(x, i);
    for (int k = 0; k < p->n_dest[ph] && !e->fail; k++)
        if (!p->dst[ph][k].done) dest_kernel(x, k);
    if (ph == PH_TF && !e->fail) commit_kernels(x);
    free(x);
}

void rc_cu_prim_fwd(em *e, rc_cu_prim *p, int train) { emit_phase(e, p, train ? PH_TF : PH_IF); }
void rc_cu_prim_bwd(em *e, rc_cu_prim *p) { emit_phase(e, p, PH_TB); }

/* ---------------------------------------------------------------- planning */

static void add_dest(rc_cu_prim *p, int ph, int root, int kind, int k)
{
    dest *d = &p->dst[ph][p->n_dest[ph]++];
    d->root = root;
    d->kind = kind;
    d->k = k;
    d->done = 0;
}

/* Live nodes and materialization of one phase (avail: nodes stored by an earlier phase). */
static void plan_phase(rc_cu_prim *p, int ph, const unsigned char *avail)
{
    const rc_prim_graph *g = p->g;
    unsigned char *live = p->live[ph], *mat = p->mat[ph];
    memset(live, 0, (size_t)p->n);
    memset(mat, 0, (size_t)p->n);
    memset(p->uses, 0, (size_t)p->n * sizeof *p->uses);
    memset(p->contract_in, 0, (size_t)p->n);
    memset(p->depth, 0, (size_t)p->n);
    for (int k = 0; k < p->n_dest[ph]; k++) {
        live[p->dst[ph][k].root] = 1;
        p->uses[p->dst[ph][k].root]++;
    }
    for (int i = p->n - 1; i >= 0; i--) {
        if (!live[i] || (avail && avail[i])) continue;
        const rc_prim_node *nd = &g->node[i];
        for (int k = 0; k < nd->n_in; k++) {
            int j = nd->in[k], dup = 0;
            for (int q = 0; q < k; q++) dup |= nd->in[q] == j;
            live[j] = 1;
            if (!dup) p->uses[j]++;
            if (info(nd)->kind == RC_PK_CONTRACT) p->contract_in[j] = 1;
        }
    }
    for (int i = 0; i < p->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        if (!live[i] || (avail && avail[i]) || is_leaf(nd) || nd->op == RC_P_UPDATE) continue;
        int root = 0;
        for (int k = 0; k < p->n_dest[ph]; k++) root |= p->dst[ph][k].root == i;
        mat[i] = !is_ew(nd) || p->uses[i] >= 2 || p->contract_in[i] || root;
        /* an inlined chain longer than INLINE_MAX is cut: bounded kernel text and recursion */
        int dp = 0;
        for (int k = 0; k < nd->n_in && !mat[i]; k++) {
            int j = nd->in[k];
            if (!mat[j] && !(avail && avail[j]) && p->depth[j] > dp) dp = p->depth[j];
        }
        if (!mat[i] && dp + 1 > INLINE_MAX) mat[i] = 1;
        p->depth[i] = mat[i] ? 0 : (unsigned char)(dp + 1);
    }
}

void rc_cu_prim_free(rc_cu_prim *p)
{
    if (!p) return;
    if (p->g) { rc_prim_free(p->g); free(p->g); }
    free(p->nreg);
    free(p->has_reg);
    for (int ph = 0; ph < RC_CU_NPHASE; ph++) { free(p->mat[ph]); free(p->live[ph]); }
    free(p->contract_in);
    free(p->depth);
    free(p->uses);
    free(p->dwp);
    free(p->has_dwp);
    free(p);
}

int rc_cu_prim_prepare(em *e, rc_prim_graph *g, const rc_cu_prim_io *io, rc_cu_prim **out)
{
    *out = NULL;
    char m[256];
    int li = io->li;
    if (g->out[RC_PRIM_TRAIN] < 0 || g->out[RC_PRIM_EVAL] < 0) {
        snprintf(e->err, e->errlen, "layer %d (defined): the graph has no output", li + 1);
        return -1;
    }
    if (rc_prim_grad(g, RC_PRIM_TRAIN, m, sizeof m)) {
        snprintf(e->err, e->errlen, "layer %d (defined): backward: %s", li + 1, m);
        return -1;
    }
    int gin = g->grad_in[RC_PRIM_TRAIN];
    if (io->want_gin && gin < 0) {   /* no path from the input: its gradient is zero */
        int like = g->out[RC_PRIM_TRAIN];
        for (int i = 0; i < g->n; i++)
            if (g->node[i].op == RC_P_INPUT && g->node[i].ref == 0) like = i;
        if ((gin = rc_prim_const_like(g, like, 0.0, m, sizeof m)) < 0) {
            snprintf(e->err, e->errlen, "layer %d (defined): %s", li + 1, m);
            return -1;
        }
    }
    rc_cu_prim *p = calloc(1, sizeof *p);
    if (!p) { snprintf(e->err, e->errlen, "out of memory"); return -1; }
    p->g = g;
    p->io = *io;
    p->n = g->n;
    size_t n = (size_t)g->n;
    p->nreg = calloc(n, sizeof *p->nreg);
    p->has_reg = calloc(n, 1);
    p->contract_in = calloc(n, 1);
    p->depth = calloc(n, 1);
    p->uses = calloc(n, sizeof *p->uses);
    int ok = p->nreg && p->has_reg && p->contract_in && p->depth && p->uses;
    for (int ph = 0; ph < RC_CU_NPHASE; ph++) {
        p->mat[ph] = calloc(n, 1);
        p->live[ph] = calloc(n, 1);
        ok = ok && p->mat[ph] && p->live[ph];
    }
    if (!ok) { p->g = NULL; rc_cu_prim_free(p); snprintf(e->err, e->errlen, "out of memory"); return -1; }
    p->in_node = -1;
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == RC_P_INPUT && g->node[i].ref == 0) p->in_node = i;

    /* destinations */
    add_dest(p, PH_TF, g->out[RC_PRIM_TRAIN], ST_OUT, 0);
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == RC_P_UPDATE && p->n_dest[PH_TF] < RC_PRIM_MAX_DECL + 4)
            add_dest(p, PH_TF, g->node[i].in[0], ST_STAGE, i);
    add_dest(p, PH_IF, g->out[RC_PRIM_EVAL], ST_OUT, 0);
    if (io->want_gin) add_dest(p, PH_TB, gin, ST_GIN, 0);
    for (int k = 0; k < g->n_param; k++)
        if (g->grad_param[RC_PRIM_TRAIN][k] >= 0) add_dest(p, PH_TB, g->grad_param[RC_PRIM_TRAIN][k], ST_GRAD, k);

    plan_phase(p, PH_TF, NULL);
    plan_phase(p, PH_IF, NULL);
    plan_phase(p, PH_TB, p->mat[PH_TF]);

    /* regions: materialized nodes of any phase, update stages, state snapshots */
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        int need = p->mat[PH_TF][i] || p->mat[PH_IF][i] || p->mat[PH_TB][i];
        const rc_prim_node *sh = nd;
        if (nd->op == RC_P_UPDATE) { need = 1; sh = &g->node[nd->in[0]]; }
        if (!need) continue;
        int64_t c;
        int nb;
        numel(sh->rank, sh->dims, &c, &nb);
        if (nb > 1) {
            snprintf(e->err, e->errlen, "layer %d (defined): node %d (%s) has the batch axis twice", li + 1, i,
                     rc_prim_name(nd->op));
            p->g = NULL;
            rc_cu_prim_free(p);
            return -1;
        }
        p->nreg[i] = alloc_ws(e, nb ? c : 0, nb ? 0 : c);
        p->has_reg[i] = 1;
    }
    /* conv2d_dw nodes for the tiled weight-gradient kernel: the built-in conv's form, batched
     * operands, and the value is a parameter's whole gradient (its only use in the backward) */
    p->dwp = calloc(n, sizeof *p->dwp);
    p->has_dwp = calloc(n, 1);
    if (!p->dwp || !p->has_dwp) { p->g = NULL; rc_cu_prim_free(p); snprintf(e->err, e->errlen, "out of memory"); return -1; }
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        if (nd->op != RC_P_CONV2D_DW || !p->mat[PH_TB][i] || p->uses[i] != 1) continue;
        const int *at = nd->attr;
        const rc_prim_node *X = &g->node[nd->in[0]], *G = &g->node[nd->in[1]];
        if (at[0] != 1 || at[1] != 0 || at[2] != 1 || at[6] != 0 || nd->rank != 4 || nd->dims[2] != nd->dims[3]) continue;
        if (X->rank != 4 || G->rank != 4 || X->dims[0] != RC_PRIM_B || G->dims[0] != RC_PRIM_B) continue;
        int root = 0;
        for (int j = 0; j < p->n_dest[PH_TB]; j++) root |= p->dst[PH_TB][j].root == i && p->dst[PH_TB][j].kind == ST_GRAD;
        if (!root) continue;
        int K = nd->dims[3];
        dw_sched s = rc_cu_plan_dw(X->dims[1], G->dims[1], K, G->dims[2], G->dims[3], X->dims[3]);
        p->dwp[i] = alloc_ws(e, 0, (int64_t)s.NCH * G->dims[1] * ((int64_t)X->dims[1] * K * K + 1));
        p->has_dwp[i] = 1;
    }
    for (int i = 0; i < g->n; i++)
        if (p->live[PH_TB][i] && g->node[i].op == RC_P_STATE) p->snap_need[g->node[i].ref] = 1;
    for (int s = 0; s < g->n_state; s++)
        if (p->snap_need[s]) {
            int64_t c;
            int nb;
            numel(g->state[s].rank, g->state[s].dims, &c, &nb);
            p->snap[s] = alloc_ws(e, 0, c);
        }
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- model integration */

static int64_t shape_sz(rc_shape s) { return (int64_t)s.c * s.h * s.w; }

static int find_view(const rc_param *arr, int first, int count, const char *name)
{
    for (int k = first; k < first + count; k++)
        if (!strcmp(arr[k].name, name)) return k;
    return -1;
}

int rc_cu_prim_setup(em *e, int li, rc_cu_prim **out)
{
    const rc_ir *ir = e->ir;
    const rc_layer *l = &ir->layers[li];
    *out = NULL;
    char *text = malloc(RC_DEF_TEXT_MAX + 1), m[256];
    rc_prim_graph *g = calloc(1, sizeof *g);
    if (!text || !g) { free(text); free(g); snprintf(e->err, e->errlen, "out of memory"); return -1; }
    rc_prim_init(g);
    if (!rc_ir_def_text(ir, li, text, RC_DEF_TEXT_MAX + 1)) {
        snprintf(e->err, e->errlen, "layer %d (%s): no graph text", li + 1, l->def_kind);
        goto bad;
    }
    if (rc_prim_parse(g, text, ir->cells, m, sizeof m)) {
        snprintf(e->err, e->errlen, "layer %d (%s): %s", li + 1, l->def_kind, m);
        goto bad;
    }
    rc_cu_prim_io io;
    memset(&io, 0, sizeof io);
    io.li = li;
    io.in_frames = li == 0;
    io.in_hw = (int64_t)ir->in.h * ir->in.w;
    if (li > 0) io.in = e->L.out[li - 1], io.gin = e->L.gout[li - 1];
    io.out = e->L.out[li];
    io.gout = e->L.gout[li];
    io.out_y = li == ir->n_layers - 1;
    io.gout_dy = io.out_y;
    io.want_gin = li > 0;
    io.F_out = shape_sz(l->out);
    io.F_in = li > 0 ? shape_sz(ir->layers[li - 1].out) : shape_sz(ir->in);
    for (int k = 0; k < g->n_param; k++) {
        char nm[RC_NAME_MAX];
        snprintf(nm, sizeof nm, "%d.%s.%s", li + 1, l->def_kind, g->param[k].name);
        int v = find_view(ir->params, l->param_first, l->param_count, nm);
        if (v < 0) { snprintf(e->err, e->errlen, "layer %d (%s): parameter %s is not laid out", li + 1, l->def_kind, nm); goto bad; }
        io.poff[k] = ir->params[v].offset;
    }
    for (int k = 0; k < g->n_state; k++) {
        char nm[RC_NAME_MAX];
        snprintf(nm, sizeof nm, "%d.%s.%s", li + 1, l->def_kind, g->state[k].name);
        int v = find_view(ir->state, l->state_first, l->state_count, nm);
        if (v < 0) { snprintf(e->err, e->errlen, "layer %d (%s): state %s is not laid out", li + 1, l->def_kind, nm); goto bad; }
        io.soff[k] = ir->state[v].offset;
    }
    free(text);
    if (rc_cu_prim_prepare(e, g, &io, out)) { rc_prim_free(g); free(g); return -1; }
    return 0;
bad:
    free(text);
    rc_prim_free(g);
    free(g);
    return -1;
}

/* ---------------------------------------------------------------- standalone (tests) */

extern const char rc_cuda_dev_prelude_text[];

int rc_emit_cuda_prim(rc_prim_graph *g, int li, char **src, rc_cuda_plan *plan, rc_cu_prim_io *io_out,
                      char *err, size_t errlen)
{
    *src = NULL;
    memset(plan, 0, sizeof *plan);
    rc_sb sb = {0};
    em *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, errlen, "out of memory"); return -1; }
    e->sb = &sb;
    e->plan = plan;
    e->err = err;
    e->errlen = errlen;
    rc_cu_prim_io io;
    memset(&io, 0, sizeof io);
    io.li = li;
    int in_node = -1;
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == RC_P_INPUT && g->node[i].ref == 0) in_node = i;
    int64_t c = 1, oc = 1;
    int nb = 0;
    if (in_node >= 0) numel(g->node[in_node].rank - 1, g->node[in_node].dims + 1, &c, &nb);
    if (g->out[RC_PRIM_TRAIN] >= 0) {
        const rc_prim_node *o = &g->node[g->out[RC_PRIM_TRAIN]];
        numel(o->rank - 1, o->dims + 1, &oc, &nb);
    }
    io.F_in = c;
    io.F_out = oc;
    io.in = alloc_ws(e, c, 0);
    io.gin = alloc_ws(e, c, 0);
    io.out = alloc_ws(e, oc, 0);
    io.gout = alloc_ws(e, oc, 0);
    io.want_gin = in_node >= 0;
    int64_t off = 0;
    for (int k = 0; k < g->n_param; k++) {
        int64_t pc;
        int pb;
        io.poff[k] = off;
        numel(g->param[k].rank, g->param[k].dims, &pc, &pb);
        off += pc;
    }
    off = 0;
    for (int k = 0; k < g->n_state; k++) {
        int64_t pc;
        int pb;
        io.soff[k] = off;
        numel(g->state[k].rank, g->state[k].dims, &pc, &pb);
        off += pc;
    }
    rc_cu_prim *p = NULL;
    if (rc_cu_prim_prepare(e, g, &io, &p)) { free(e); return -1; }
    rc_sb_put(&sb, "/* retinac: defined layer %d alone (tests) */\n%s\n", li + 1, rc_cuda_dev_prelude_text);
    rc_sb_put(&sb, "/* ---- common/rng.h, verbatim ---- */\n%s", rc_cuda_rng_text());
    rc_sb_put(&sb, "/* ---- end of common/rng.h ---- */\n");
    for (int ph = 0; ph < RC_CU_NPHASE && !e->fail; ph++) {
        e->phase = ph;
        plan->first[ph] = plan->n_launch;
        if (ph == PH_TB) rc_cu_prim_bwd(e, p);
        else rc_cu_prim_fwd(e, p, ph == PH_TF);
    }
    plan->ws_b = e->L.tb;
    plan->ws_c = e->L.tc;
    *io_out = p->io;
    p->g = NULL;   /* the caller's */
    rc_cu_prim_free(p);
    int fl = e->fail;
    free(e);
    char *s = rc_sb_finish(&sb);
    if (!s || fl) {
        free(s);
        rc_cuda_plan_free(plan);
        if (fl != 2) snprintf(err, errlen, "out of memory while emitting CUDA for a defined layer");
        return -1;
    }
    if (rc_cuda_plan_kernel_names(plan)) { free(s); rc_cuda_plan_free(plan); snprintf(err, errlen, "out of memory"); return -1; }
    *src = s;
    return 0;
}
