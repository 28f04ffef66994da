/* fuzz_prim.h — the deep checks of a defined layer's primitive graph (compiler/prim.h), shared by
 * the harnesses that reach one (fuzz_prim.c: graph text; fuzz_ir_text.c: the `layer def` +
 * `prim` lines of a model's IR text).
 *
 * fz_graph_checks(g, cells): on a graph that rc_prim_parse accepted,
 *   - canonical round trip: rc_prim_format -> rc_prim_parse -> rc_prim_format is the same text;
 *   - rc_prim_grad in both modes (an error return is fine), then the round trip again (the
 *     backward is made of ordinary nodes, so it must read back too), rc_prim_flops;
 *   - when the cell count is substituted and the graph is small (FZ_EVAL_ELEMS values,
 *     FZ_EVAL_WORK multiply-adds at B = 2), the reference interpreter rc_prim_eval over every
 *     node, with every leaf given (inputs, parameters, state of their declared sizes).
 * fz_emit(ir): on an inferred IR that holds a defined layer, the C and CUDA emitters (text only;
 * an error return is fine).
 * A crash, sanitizer report, leak or abort("round trip") is the finding.
 */
#ifndef FUZZ_PRIM_H
#define FUZZ_PRIM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"
#include "emit_cuda.h"
#include "ir.h"
#include "prim.h"

#define FZ_EVAL_B 2
#define FZ_EVAL_ELEMS (1 << 18)      /* values over all nodes */
#define FZ_EVAL_WORK 4e6             /* multiply-adds over all nodes */

static void fz_prim_round_trip(const rc_prim_graph *g, int cells, const char *what)
{
    char err[300];
    char *t1 = rc_prim_format(g);
    if (!t1) return;                                   /* out of memory: not a finding */
    rc_prim_graph g2;
    if (rc_prim_parse(&g2, t1, cells, err, sizeof err) != 0) {
        fprintf(stderr, "round trip (%s): the graph's canonical text does not parse: %s\n---\n%s---\n", what, err, t1);
        abort();
    }
    char *t2 = rc_prim_format(&g2);
    if (t2 && strcmp(t1, t2) != 0) {
        fprintf(stderr, "round trip (%s): format(parse(graph)) != graph\n--- first\n%s--- second\n%s---\n", what, t1, t2);
        abort();
    }
    free(t1);
    free(t2);
    rc_prim_free(&g2);
}

static int64_t fz_decl_numel(const rc_prim_decl *d)
{
    int64_t n = 1;
    for (int k = 0; k < d->rank; k++) n *= d->dims[k] > 0 ? d->dims[k] : 1;
    return n;
}

/* Work of evaluating the graph at B (values, multiply-adds); 0 if a cell count is symbolic. */
static int fz_eval_cost(const rc_prim_graph *g, int B, double *elems, double *work)
{
    *elems = *work = 0;
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        for (int k = 0; k < nd->rank; k++) if (nd->dims[k] == RC_PRIM_CELLS) return 0;
        double n = (double)rc_prim_numel(nd, B), in = nd->n_in ? (double)rc_prim_numel(&g->node[nd->in[0]], B) : 0;
        *elems += n;
        switch (nd->op) {
        case RC_P_MATMUL: *work += n * (double)rc_prim_numel(&g->node[nd->in[1]], B); break;
        case RC_P_CONV2D: case RC_P_CONV2D_DX: case RC_P_CONV2D_DW: {
            const rc_prim_node *w = nd->op == RC_P_CONV2D_DW ? nd : &g->node[nd->in[1]];
            const rc_prim_node *gy = nd->op == RC_P_CONV2D ? nd : &g->node[nd->in[nd->op == RC_P_CONV2D_DX ? 0 : 1]];
            *work += (double)rc_prim_numel(gy, B) * (double)w->dims[w->rank - 3] * w->dims[w->rank - 1] * w->dims[w->rank - 1];
            break;
        }
        default: *work += n + in; break;
        }
    }
    return 1;
}

static void fz_eval(const rc_prim_graph *g)
{
    double elems, work;
    if (!fz_eval_cost(g, FZ_EVAL_B, &elems, &work) || elems > FZ_EVAL_ELEMS || work > FZ_EVAL_WORK) return;
    rc_prim_eval_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.B = FZ_EVAL_B;
    cx.mode = RC_PRIM_TRAIN;
    cx.seed = 7;
    static const int pos[2 * 8] = {0, 0, 1, 0, 0, 1, 2, 2, 1, 1, 0, 2, 3, 1, 1, 3};   /* cellpick maps of <= 8 cells */
    cx.cell_pos = pos;
    cx.n_cells = 8;
    int64_t nin[2] = {1, 1};
    for (int i = 0; i < g->n; i++)
        if (g->node[i].op == RC_P_INPUT && g->node[i].ref >= 0 && g->node[i].ref < 2) {
            int64_t n = rc_prim_numel(&g->node[i], FZ_EVAL_B);
            if (n > nin[g->node[i].ref]) nin[g->node[i].ref] = n;
        }
    float *buf[2 + 2 * RC_PRIM_MAX_DECL] = {0};
    int nb = 0, ok = 1;
    for (int k = 0; k < 2; k++) {
        float *x = buf[nb++] = malloc(sizeof(float) * (size_t)nin[k]);
        if (!x) { ok = 0; break; }
        for (int64_t e = 0; e < nin[k]; e++) x[e] = (float)((e % 7) - 3) * 0.25f;
        cx.input[k] = x;
    }
    for (int st = 0; ok && st < 2; st++)
        for (int k = 0; k < (st ? g->n_state : g->n_param); k++) {
            const rc_prim_decl *d = st ? &g->state[k] : &g->param[k];
            int64_t n = fz_decl_numel(d);
            float *p = buf[nb++] = malloc(sizeof(float) * (size_t)n);
            if (!p) { ok = 0; break; }
            for (int64_t e = 0; e < n; e++) p[e] = 0.5f + (float)(e % 5) * 0.125f;
            if (st) cx.state[k] = p; else cx.param[k] = p;
        }
    double **val = ok ? calloc((size_t)g->n, sizeof *val) : NULL;
    if (val) {
        char err[300];
        if (rc_prim_eval(g, &cx, NULL, val, err, sizeof err) == 0) rc_prim_vals_free(g, val);
        free(val);
    }
    for (int k = 0; k < nb; k++) free(buf[k]);
}

static void fz_graph_checks(rc_prim_graph *g, int cells)
{
    char err[300];
    fz_prim_round_trip(g, cells, "parsed graph");
    int gt = rc_prim_grad(g, RC_PRIM_TRAIN, err, sizeof err);
    int ge = rc_prim_grad(g, RC_PRIM_EVAL, err, sizeof err);
    if (gt == 0 || ge == 0) fz_prim_round_trip(g, cells, "graph with its gradient");
    (void)rc_prim_flops(g, RC_PRIM_TRAIN);
    (void)rc_prim_flops(g, RC_PRIM_EVAL);
    if (cells > 0) fz_eval(g);
}

static void fz_emit(const rc_ir *ir)
{
    int has_def = 0;
    for (int i = 0; i < ir->n_layers; i++) has_def |= ir->layers[i].kind == RC_LAYER_DEF;
    if (!has_def) return;
    char err[1024], *src = NULL;
    if (rc_emit_c(ir, NULL, &src, err, sizeof err) == 0) free(src);
    src = NULL;
    if (rc_emit_cuda_source(ir, NULL, &src, err, sizeof err) == 0) free(src);
}

#endif
