/* prim_text.c — the canonical text of a primitive graph (prim.h): written by rc_prim_format,
 * read back by rc_prim_parse. It is the form a defined layer takes in the model IR, so it is
 * stored in every checkpoint and hashed with the model.
 *
 *   param NAME DIMS bound=B value=V        one per parameter, in index order
 *   state NAME DIMS value=V                one per state tensor
 *   nI OP [nJ ...] [a=A,...] [v=V] [r=R] : DIMS     one per node, in topological order
 *   out train nI / out eval nJ
 * DIMS is a comma list ("-" for rank 0) where B is the batch and C the number of cells. Numbers
 * are written with 17 significant digits so they read back exactly. Parsing rebuilds the graph
 * through rc_prim_add, so every shape is inferred again and checked against the text, and a
 * text that is not a graph (unknown op, a forward reference, a shape that does not fit) is
 * refused with its line.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "errbuf.h"
#include "prim.h"

static void put_int(rc_sb *b, int v)
{
    if (v == RC_PRIM_B) rc_sb_put(b, "B");
    else if (v == RC_PRIM_CELLS) rc_sb_put(b, "C");
    else rc_sb_put(b, "%d", v);
}

static void put_dims(rc_sb *b, int rank, const int *dims)
{
    if (rank == 0) { rc_sb_put(b, "-"); return; }
    for (int k = 0; k < rank; k++) { if (k) rc_sb_put(b, ","); put_int(b, dims[k]); }
}

char *rc_prim_format(const rc_prim_graph *g)
{
    rc_sb b = {0};
    for (int i = 0; i < g->n_param; i++) {
        rc_sb_put(&b, "param %s ", g->param[i].name);
        put_dims(&b, g->param[i].rank, g->param[i].dims);
        rc_sb_put(&b, " bound=%.17g value=%.17g\n", g->param[i].init_bound, g->param[i].init_value);
    }
    for (int i = 0; i < g->n_state; i++) {
        rc_sb_put(&b, "state %s ", g->state[i].name);
        put_dims(&b, g->state[i].rank, g->state[i].dims);
        rc_sb_put(&b, " value=%.17g\n", g->state[i].init_value);
    }
    for (int i = 0; i < g->n; i++) {
        const rc_prim_node *nd = &g->node[i];
        rc_sb_put(&b, "n%d %s", i, rc_prim_name(nd->op));
        for (int k = 0; k < nd->n_in; k++) rc_sb_put(&b, " n%d", nd->in[k]);
        int na = RC_PRIM_NATTR;
        while (na > 0 && nd->attr[na - 1] == 0) na--;
        if (na) {
            rc_sb_put(&b, " a=");
            for (int k = 0; k < na; k++) { if (k) rc_sb_put(&b, ","); put_int(&b, nd->attr[k]); }
        }
        if (nd->value != 0) rc_sb_put(&b, " v=%.17g", nd->value);
        if (nd->ref) rc_sb_put(&b, " r=%d", nd->ref);
        rc_sb_put(&b, " : ");
        put_dims(&b, nd->rank, nd->dims);
        rc_sb_put(&b, "\n");
    }
    if (g->out[RC_PRIM_TRAIN] >= 0) rc_sb_put(&b, "out train n%d\n", g->out[RC_PRIM_TRAIN]);
    if (g->out[RC_PRIM_EVAL] >= 0) rc_sb_put(&b, "out eval n%d\n", g->out[RC_PRIM_EVAL]);
    return rc_sb_finish(&b);
}

/* one integer: decimal, B, or C (cells when > 0, else symbolic) */
static int read_int(const char **p, int cells, int *out)
{
    const char *s = *p;
    if (*s == 'B') { *out = RC_PRIM_B; *p = s + 1; return 0; }
    if (*s == 'C') { *out = cells > 0 ? cells : RC_PRIM_CELLS; *p = s + 1; return 0; }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    *p = end;
    return 0;
}

static int read_list(const char *s, int cells, int *vals, int max, int *n)
{
    *n = 0;
    if (!strcmp(s, "-")) return 0;
    for (;;) {
        if (*n >= max) return -1;
        if (read_int(&s, cells, &vals[*n])) return -1;
        (*n)++;
        if (*s == 0) return 0;
        if (*s != ',') return -1;
        s++;
    }
}

static int read_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end == s || *end || errno == ERANGE || !isfinite(*v) ? -1 : 0;   /* the spec makes finite numbers only */
}

/* "nI" -> I, a node already read (mapped through ids) */
static int read_ref(const char *tok, const int *ids, int n_read, int *out)
{
    const char *s = tok + 1;
    int v;
    if (tok[0] != 'n' || read_int(&s, 0, &v) || *s || v < 0 || v >= n_read) return -1;
    *out = ids[v];
    return 0;
}

static int parse_decl(rc_prim_graph *g, char *rest, int state, int cells, char *m, size_t ml)
{
    char *save = NULL, *name = strtok_r(rest, " ", &save), *dims = strtok_r(NULL, " ", &save);
    int n = state ? g->n_state : g->n_param;
    if (n >= RC_PRIM_MAX_DECL) return rc_errf(m, ml, "more than %d %s tensors", RC_PRIM_MAX_DECL, state ? "state" : "param");
    if (!name || !dims || strlen(name) >= sizeof g->param[0].name) return rc_errf(m, ml, "expected NAME DIMS");
    /* dotted identifiers: they become parts of C identifiers and comments in generated code, and
     * a parameter's view name "<layer>.<kind>.<name>" is looked up by its suffix */
    if (!rc_prim_decl_name_ok(name, strlen(name)))
        return rc_errf(m, ml, "name '%s' is not an identifier (or identifiers joined by dots)", name);
    const rc_prim_decl *prev = state ? g->state : g->param;
    for (int k = 0; k < n; k++)
        if (rc_prim_decl_names_clash(prev[k].name, name))
            return rc_errf(m, ml, "names '%s' and '%s' clash (one is the other or ends with '.' and it)", prev[k].name, name);
    rc_prim_decl *d = state ? &g->state[g->n_state] : &g->param[g->n_param];
    memset(d, 0, sizeof *d);
    strcpy(d->name, name);
    if (read_list(dims, cells, d->dims, RC_PRIM_MAX_RANK, &d->rank)) return rc_errf(m, ml, "bad dims '%s'", dims);
    double count = 1;
    for (int k = 0; k < d->rank; k++) {
        if (d->dims[k] == RC_PRIM_B || d->dims[k] == 0 || d->dims[k] < RC_PRIM_CELLS)
            return rc_errf(m, ml, "%s: dimension %d must be >= 1 (no batch axis in a parameter)", name, k + 1);
        if (d->dims[k] > 0) count *= d->dims[k];
    }
    if (count > (double)RC_PRIM_MAX_ELEMS)     /* as a node's (a declaration no node reads too) */
        return rc_errf(m, ml, "%s: %.0f elements, over the limit of %lld", name, count, (long long)RC_PRIM_MAX_ELEMS);
    for (char *t; (t = strtok_r(NULL, " ", &save));) {
        if (!strncmp(t, "bound=", 6) && !state) { if (read_num(t + 6, &d->init_bound)) return rc_errf(m, ml, "bad bound"); }
        else if (!strncmp(t, "value=", 6)) { if (read_num(t + 6, &d->init_value)) return rc_errf(m, ml, "bad value"); }
        else return rc_errf(m, ml, "unknown field '%s'", t);
    }
    for (int i = 0; i < g->n_param; i++)      /* one namespace, as in the spec (p.NAME) */
        if (!strcmp(g->param[i].name, name)) return rc_errf(m, ml, "'%s' declared twice", name);
    for (int i = 0; i < g->n_state; i++)
        if (!strcmp(g->state[i].name, name)) return rc_errf(m, ml, "'%s' declared twice", name);
    if (state) g->n_state++; else g->n_param++;
    return 0;
}

static int parse_node(rc_prim_graph *g, char *line, int *ids, int *n_read, int cells, char *m, size_t ml)
{
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    int idx;
    const char *p = tok + 1;
    if (read_int(&p, 0, &idx) || *p || idx != *n_read) return rc_errf(m, ml, "expected node n%d", *n_read);
    char *opname = strtok_r(NULL, " ", &save);
    int op = opname ? rc_prim_lookup(opname) : -1;
    if (op < 0) return rc_errf(m, ml, "unknown primitive '%s'", opname ? opname : "");
    int in[3], n_in = 0, attr[RC_PRIM_NATTR] = {0}, ref = 0, rank = 0, dims[RC_PRIM_MAX_RANK] = {0}, had_dims = 0;
    double value = 0;
    for (char *t; (t = strtok_r(NULL, " ", &save));) {
        if (t[0] == 'n' && t[1] >= '0' && t[1] <= '9') {
            if (n_in >= 3 || read_ref(t, ids, *n_read, &in[n_in])) return rc_errf(m, ml, "bad operand '%s'", t);
            n_in++;
        } else if (!strncmp(t, "a=", 2)) {
            int na;
            if (read_list(t + 2, cells, attr, RC_PRIM_NATTR, &na)) return rc_errf(m, ml, "bad attributes '%s'", t);
        } else if (!strncmp(t, "v=", 2)) {
            if (read_num(t + 2, &value)) return rc_errf(m, ml, "bad value '%s'", t);
        } else if (!strncmp(t, "r=", 2)) {
            const char *q = t + 2;
            if (read_int(&q, 0, &ref) || *q) return rc_errf(m, ml, "bad ref '%s'", t);
        } else if (!strcmp(t, ":")) {
            char *d = strtok_r(NULL, " ", &save);
            if (!d || read_list(d, cells, dims, RC_PRIM_MAX_RANK, &rank)) return rc_errf(m, ml, "bad dims");
            had_dims = 1;
        } else return rc_errf(m, ml, "unexpected '%s'", t);
    }
    if (!had_dims) return rc_errf(m, ml, "no ': DIMS'");
    if (op == RC_P_NUMEL && cells > 0 && attr[2] == 1) {   /* other exponents: rc_prim_add refuses */
        if (attr[0] < 1 || (long long)attr[0] * cells > INT_MAX)
            return rc_errf(m, ml, "numel: %d x %d cells is not a count", attr[0], cells);
        attr[0] *= cells;
        attr[2] = 0;
    }
    char e[240];
    int id = rc_prim_add(g, (rc_prim_op)op, n_in, in, attr, value, ref, rank, dims, 0, e, sizeof e);
    if (id < 0) return rc_errf(m, ml, "%s", e);
    const rc_prim_node *nd = &g->node[id];
    if (nd->op != RC_P_UPDATE && (nd->rank != rank || memcmp(nd->dims, dims, sizeof(int) * (size_t)rank)))
        return rc_errf(m, ml, "%s: the text's shape is not the inferred one", opname);
    ids[(*n_read)++] = id;
    return 0;
}

int rc_prim_parse(rc_prim_graph *g, const char *text, int cells, char *err, size_t errlen)
{
    rc_prim_init(g);
    char *buf = strdup(text ? text : "");
    int *ids = malloc(sizeof *ids * RC_PRIM_MAX_NODES);
    int rc = -1, lineno = 0, n_read = 0;
    char m[300];
    if (!buf || !ids) { rc_errf(err, errlen, "graph: out of memory"); goto out; }
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (!strncmp(line, "param ", 6)) { if (parse_decl(g, line + 6, 0, cells, m, sizeof m)) goto bad; }
        else if (!strncmp(line, "state ", 6)) { if (parse_decl(g, line + 6, 1, cells, m, sizeof m)) goto bad; }
        else if (line[0] == 'n') {
            if (n_read >= RC_PRIM_MAX_NODES) { rc_errf(m, sizeof m, "more than %d nodes", RC_PRIM_MAX_NODES); goto bad; }
            if (parse_node(g, line, ids, &n_read, cells, m, sizeof m)) goto bad;
        } else if (!strncmp(line, "out ", 4)) {
            char mode[8], ref[24];
            int id;
            if (sscanf(line + 4, "%7s %23s", mode, ref) != 2 || read_ref(ref, ids, n_read, &id) ||
                (strcmp(mode, "train") && strcmp(mode, "eval"))) { rc_errf(m, sizeof m, "expected 'out train|eval nI'"); goto bad; }
            if (g->node[id].op == RC_P_UPDATE) { rc_errf(m, sizeof m, "an update is not an output"); goto bad; }
            g->out[strcmp(mode, "train") ? RC_PRIM_EVAL : RC_PRIM_TRAIN] = id;
        } else { rc_errf(m, sizeof m, "unknown line"); goto bad; }
    }
    if (g->out[RC_PRIM_TRAIN] < 0 || g->out[RC_PRIM_EVAL] < 0) {
        rc_errf(err, errlen, "graph: no 'out train' and 'out eval' lines");
        goto out;
    }
    rc = 0;
    goto out;
bad:
    rc_errf(err, errlen, "graph line %d: %s", lineno, m);
out:
    free(buf);
    free(ids);
    return rc;
}
