/* spec_layer.c — layers defined in a spec from primitives (see spec_layer.h; the syntax is in
 * specs/README.md, "Defining a layer"; the primitives are compiler/prim.h's).
 *
 *   local psoftplus = layer "psoftplus" {
 *     options = { beta0 = 1.0 },                               -- defaults; checked at each use
 *     params  = function(x, o) return { beta = { shape = {1, x.shape[2], 1, 1}, init = o.beta0 } } end,
 *     forward = function(x, p, o, mode) return softplus(x * p.beta) / p.beta end,
 *   }
 *   ... psoftplus { beta0 = 2 } ...                            -- in a model's layer list
 *
 * A use of a defined layer becomes one rc_prim_graph when the model is walked (the layers before
 * it are known then): its input shape comes from rc_ir_infer of the model truncated before it
 * (with a trailing dense so that the truncated model is valid), run with 1 and 2 cells — a
 * dimension that follows the cell count is RC_PRIM_CELLS ("cells" in Lua). params/state are
 * called once, forward twice on the same graph ("train", then "eval"; hash-consing shares what
 * the two modes have in common), then the graph is formatted into the IR (rc_ir_def_set) and
 * differentiated once (rc_prim_grad) so that an op without a gradient on the gradient path is
 * refused at `retinac check`, with its line.
 *
 * Invariants:
 *   - while a layer is built, its rc_spec_build is in the registry and the primitives are
 *     globals (spec_prims.c: tensors, ops, their located errors); both are undone afterwards,
 *     also on failure;
 *   - the spec's functions run under the spec's instruction and time limits (spec.c keeps its
 *     hook on while the model is walked); errors are caught here (lua_pcall), rewritten to carry
 *     the layer, and returned as -1 with the message, after the graph is freed;
 *   - params/state only declare (tensor ops there are refused: they would add dead nodes);
 *     declarations are visited in name order, so the IR text does not depend on Lua's hash order.
 */
#include "spec_layer.h"
#include "prim.h"
#include "spec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define BOX_MT "rc.defgraph"
#define DEF_NAME_MAX 24                 /* kind and parameter names: "<i>.<kind>.<name>" fits */
#define MAX_OPT_KEYS 64
#define PRELUDE_CHUNK "=prelude"

static const char prelude_text[] =
#include "prelude_lua.inc"
    ;

typedef struct {
    rc_prim_graph g;
    int live;
} def_box;                              /* userdata: the graph is freed by __gc at the latest */

static const char gen_key = 'g';        /* registry: integer, the last generation */

/* ------------------------------------------------------------------------------------------
 * The definition form and defined-layer constructors
 * ---------------------------------------------------------------------------------------- */

/* A defined layer's constructor: upvalues 1 kind (RC_LAYER_DEF), 2 act (0), 3 name, 4 the
 * definition table. */
static int l_def_ctor(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(3));
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "%s: expected one options table: write %s { ... } in the model's "
                          "layer list%s", name, name,
                          rc_spec_tensor_id(L, 1, &(rc_spec_build){0}) != -1
                              ? " (a defined layer is not a function of a tensor)" : "");
    rc_spec_new_layer(L, RC_LAYER_DEF, 0, 2);
    lua_pushvalue(L, lua_upvalueindex(4));
    lua_setiuservalue(L, -2, 2);
    luaL_setmetatable(L, RC_SPEC_LAYER_MT);
    return 1;
}

static int name_ok(const char *s, size_t n)
{
    if (n < 1 || n > DEF_NAME_MAX || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* layer "name" { params =, state =, forward =, options = }: upvalue 1 = name */
static int l_layer_body(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "layer \"%s\": write layer \"%s\" { forward = function(x, p, o, mode) "
                          "... end }", name, name);
    static const char *const keys[] = {"forward", "options", "params", "state", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        int ok = 0;
        for (int i = 0; keys[i]; i++)
            ok |= lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), keys[i]);
        if (!ok)
            return luaL_error(L, "layer \"%s\": unknown field '%s' (a definition has forward, params, "
                              "state, options)", name,
                              lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    }
    lua_createtable(L, 0, 5);                    /* the definition, a private copy */
    for (int i = 0; keys[i]; i++) {
        lua_getfield(L, 1, keys[i]);
        int t = lua_type(L, -1);
        int want = !strcmp(keys[i], "options") ? LUA_TTABLE : LUA_TFUNCTION;
        if (t == LUA_TNIL && !strcmp(keys[i], "forward"))
            return luaL_error(L, "layer \"%s\": forward: missing (forward = function(x, p, o, mode) "
                              "return ... end)", name);
        if (t != LUA_TNIL && t != want)
            return luaL_error(L, "layer \"%s\": %s: expected a %s, got %s", name, keys[i],
                              want == LUA_TTABLE ? "table of option defaults" : "function",
                              lua_typename(L, t));
        lua_setfield(L, -2, keys[i]);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, RC_LAYER_DEF);
    lua_pushinteger(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, -4);
    lua_pushcclosure(L, l_def_ctor, 4);
    return 1;
}

static int l_layer_def(lua_State *L)
{
    size_t n;
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "layer: write layer \"name\" { forward = function(x, p, o, mode) ... end }");
    const char *name = lua_tolstring(L, 1, &n);
    if (!name_ok(name, n))
        return luaL_error(L, "layer: name '%s': an identifier of at most %d characters", name,
                          DEF_NAME_MAX);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_layer_body, 1);
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Walking one use of a defined layer
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    lua_State *L;
    rc_ir *ir;
    const char *file;
    char *err;
    size_t errlen;
    int li, line;
    const char *kind;
} def_walk;

static int wfail(def_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(def_walk *w, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->errlen)
        snprintf(w->err, w->errlen, "%s:%d: layer %d (%s): %s", w->file, w->line, w->li + 1, w->kind,
                 msg);
    return -1;
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

/* A Lua error raised while running the definition -> err: "FILE:LINE: layer I (KIND): what",
 * LINE the spec line in the message (the use line for prelude code, whose line is added). */
static void lua_failure(def_walk *w, int status, const char *m)
{
    if (status == LUA_ERRMEM) {
        snprintf(w->err, w->errlen, "%s: spec exceeds the memory limit (%d MiB)", w->file,
                 (int)(RC_SPEC_MAX_MEMORY >> 20));
        return;
    }
    if (!m) m = "raised an error that is not a string";
    char tag[80], extra[700];
    snprintf(tag, sizeof tag, "layer %d (%s): ", w->li + 1, w->kind);
    size_t fl = strlen(w->file);
    const char *p = NULL;                 /* the ":LINE: rest" of a located message */
    int prelude = 0, line = 0;
    if (!strncmp(m, w->file, fl) && m[fl] == ':') p = m + fl;
    else if (!strncmp(m, "prelude:", 8)) { p = m + 7; prelude = 1; }
    else if (!strncmp(m, "...", 3)) p = strchr(m, ':');    /* Lua's shortened chunk name */
    const char *rest = m;
    if (p && p[1] >= '0' && p[1] <= '9') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (*end == ':' && v > 0 && v < 100000000) {
            line = (int)v;
            rest = end + 1;
            while (*rest == ' ') rest++;
        }
    }
    if (!strncmp(rest, tag, strlen(tag))) rest += strlen(tag);   /* op_fail's own form */
    if (!strncmp(rest, "undefined name '", 16)) {
        const char *q = strchr(rest + 16, '\'');
        int len = q ? (int)(q - rest) + 1 : (int)strlen(rest);
        int w = snprintf(extra, sizeof extra, "%.*s: not a primitive or a global (the primitives: %s)", len,
                         rest, rc_spec_prim_list);
        if (w < 0 || (size_t)w >= sizeof extra) strcpy(extra + sizeof extra - 5, "...)");
        rest = extra;
    }
    if (prelude)
        snprintf(w->err, w->errlen, "%s:%d: %s%s (prelude line %d)", w->file, w->line, tag, rest, line);
    else
        snprintf(w->err, w->errlen, "%s:%d: %s%s", w->file, line ? line : w->line, tag, rest);
    one_line(w->err);
}

/* Call the function below nargs arguments on the stack with nres results; -1 with err. */
static int call_def(def_walk *w, int nargs, int nres)
{
    int st = lua_pcall(w->L, nargs, nres, 0);
    if (st == LUA_OK) return 0;
    lua_failure(w, st, lua_type(w->L, -1) == LUA_TSTRING ? lua_tostring(w->L, -1) : NULL);
    lua_pop(w->L, 1);
    return -1;
}

/* The input shape of layer li: the output of layer li-1 (or the input) with cells symbolic. */
static int input_dims(def_walk *w, int dims[4])
{
    rc_ir *t = malloc(sizeof *t);
    if (!t) return wfail(w, "out of memory");
    rc_shape s[2];
    char m[600];
    for (int k = 0; k < 2; k++) {
        memcpy(t, w->ir, sizeof *t);
        rc_layer *d = &t->layers[w->li];
        rc_layer_defaults(d, RC_LAYER_DENSE);   /* a valid end: one unit per cell */
        d->bias = 0;
        d->units = 0;
        d->spec_line = w->line;
        t->n_layers = w->li + 1;
        if (rc_ir_infer(t, k + 1, w->file, m, sizeof m)) {
            /* "FILE: layer N (K): ..." -> with the line of layer N */
            size_t fl = strlen(w->file);
            int n = strncmp(m, w->file, fl) == 0 && strncmp(m + fl, ": layer ", 8) == 0 ? atoi(m + fl + 8) : 0;
            if (n >= 1 && n <= w->li && t->layers[n - 1].spec_line > 0)
                snprintf(w->err, w->errlen, "%s:%d%s", w->file, t->layers[n - 1].spec_line, m + fl);
            else
                wfail(w, "input shape: %s", strncmp(m, w->file, fl) ? m : m + fl + 2);
            free(t);
            return -1;
        }
        s[k] = w->li ? t->layers[w->li - 1].out : t->in;
    }
    free(t);
    int a[3] = {s[0].c, s[0].h, s[0].w}, b[3] = {s[1].c, s[1].h, s[1].w};
    dims[0] = RC_PRIM_B;
    for (int k = 0; k < 3; k++) {
        if (a[k] == b[k]) dims[k + 1] = a[k];
        else if (a[k] == 1 && b[k] == 2) dims[k + 1] = RC_PRIM_CELLS;
        else
            return wfail(w, "input dimension %d is %d with one cell and %d with two: a defined layer "
                         "takes constants or the cell count", k + 2, a[k], b[k]);
    }
    return 0;
}

/* The options table o: the definition's defaults, overridden by the use's fields (pushed). */
static int merge_options(def_walk *w, int def_idx, int given_idx)
{
    lua_State *L = w->L;
    lua_newtable(L);
    int o = lua_gettop(L);
    lua_getfield(L, def_idx, "options");
    int dflt = lua_gettop(L);
    if (lua_istable(L, dflt)) {
        lua_pushnil(L);
        while (lua_next(L, dflt)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                return wfail(w, "options: defaults are written name = value");
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, o);
        }
    }
    /* the given fields in name order, so the first bad one is always the same */
    const char *keys[MAX_OPT_KEYS];
    int nk = 0;
    lua_pushnil(L);
    while (lua_next(L, given_idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return wfail(w, "options are written name = value (e.g. %s { std = 0.1 })", w->kind);
        }
        if (nk == MAX_OPT_KEYS) {
            lua_pop(L, 1);
            return wfail(w, "more than %d options", MAX_OPT_KEYS);
        }
        keys[nk++] = lua_tostring(L, -1);
    }
    for (int i = 1; i < nk; i++)
        for (int j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (int i = 0; i < nk; i++) {
        int dt = LUA_TNIL;
        if (lua_istable(L, dflt)) {
            dt = lua_getfield(L, dflt, keys[i]);
            lua_pop(L, 1);
        }
        if (dt == LUA_TNIL)
            return wfail(w, "%s: unknown option (%s takes %s)", keys[i], w->kind,
                         lua_istable(L, dflt) ? "the options listed in its definition's options = {...}"
                                              : "no options: write {}");
        lua_getfield(L, given_idx, keys[i]);
        if (lua_type(L, -1) != dt) {
            const char *gt = lua_typename(L, lua_type(L, -1));
            lua_pop(L, 1);
            return wfail(w, "%s: expected a %s, got %s", keys[i], lua_typename(L, dt), gt);
        }
        if (dt == LUA_TNUMBER && !isfinite(lua_tonumber(L, -1))) {
            lua_pop(L, 1);
            return wfail(w, "%s: expected a finite number", keys[i]);
        }
        lua_setfield(L, o, keys[i]);
    }
    lua_settop(L, o);
    return 0;
}

/* Declarations returned by params/state (table at top) into d[]; st: state (constant init). */
static int read_decls(def_walk *w, const char *what, rc_prim_decl *d, int *n, int st,
                      const rc_prim_graph *g)
{
    lua_State *L = w->L;
    int t = lua_gettop(L);
    if (lua_type(L, t) != LUA_TTABLE)
        return wfail(w, "%s: must return a table name = { shape = {...}, init = ... }, got %s", what,
                     lua_typename(L, lua_type(L, t)));
    const char *keys[RC_PRIM_MAX_DECL + 1];
    int nk = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        size_t kl;
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : NULL;
        if (!k || kl > DEF_NAME_MAX || !rc_prim_decl_name_ok(k, kl)) {
            lua_pop(L, 1);
            return wfail(w, "%s: names are identifiers, or identifiers joined by dots (sub0.weight), of at "
                         "most %d characters (name = { shape = ..., init = ... })", what, DEF_NAME_MAX);
        }
        for (int j = 0; j < nk; j++)
            if (rc_prim_decl_names_clash(keys[j], k)) {
                const char *a = keys[j];
                lua_pop(L, 1);
                return wfail(w, "%s: names '%s' and '%s' clash (one ends with '.' and the other)", what,
                             strcmp(a, k) < 0 ? a : k, strcmp(a, k) < 0 ? k : a);
            }
        if (nk == RC_PRIM_MAX_DECL) {
            lua_pop(L, 1);
            return wfail(w, "%s: more than %d tensors", what, RC_PRIM_MAX_DECL);
        }
        keys[nk++] = k;
    }
    for (int i = 1; i < nk; i++)
        for (int j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *x = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = x;
        }
    for (int i = 0; i < nk; i++) {
        const char *k = keys[i];
        for (int j = 0; j < g->n_param; j++)
            if (!strcmp(g->param[j].name, k)) return wfail(w, "%s: '%s' is also a parameter", what, k);
        rc_prim_decl *e = &d[i];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", k);
        lua_getfield(L, t, k);
        int v = lua_gettop(L);
        if (!lua_istable(L, v))
            return wfail(w, "%s: %s: expected { shape = {...}, init = ... }, got %s", what, k,
                         lua_typename(L, lua_type(L, v)));
        lua_pushnil(L);
        while (lua_next(L, v)) {
            lua_pop(L, 1);
            const char *f = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            if (strcmp(f, "shape") && strcmp(f, "init")) {
                lua_pop(L, 1);
                return wfail(w, "%s: %s: unknown field '%s' (shape, init)", what, k, f);
            }
        }
        lua_getfield(L, v, "shape");
        if (!lua_istable(L, -1))
            return wfail(w, "%s: %s: shape: expected a list such as {1, x.shape[2], 1, 1}, got %s",
                         what, k, lua_typename(L, lua_type(L, -1)));
        lua_Integer r = (lua_Integer)lua_rawlen(L, -1);
        if (r > RC_PRIM_MAX_RANK)
            return wfail(w, "%s: %s: shape: rank %lld (at most %d)", what, k, (long long)r, RC_PRIM_MAX_RANK);
        e->rank = (int)r;
        double elems = 1;
        for (int j = 0; j < e->rank; j++) {
            lua_rawgeti(L, -1, j + 1);
            if (lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "B"))
                return wfail(w, "%s: %s: shape: a %s has no batch dimension", what, k,
                             st ? "state tensor" : "parameter");
            if (rc_spec_read_dim(L, -1, 0, 0, &e->dims[j]))
                return wfail(w, "%s: %s: shape[%d]: expected an integer >= 1 or \"cells\"", what, k, j + 1);
            if (e->dims[j] > 0) elems *= e->dims[j];
            lua_pop(L, 1);
        }
        if (elems > (double)RC_PRIM_MAX_ELEMS)
            return wfail(w, "%s: %s: %.0f elements, over the limit of %lld", what, k, elems,
                         (long long)RC_PRIM_MAX_ELEMS);
        lua_pop(L, 1);
        lua_getfield(L, v, "init");
        if (lua_type(L, -1) == LUA_TNUMBER) {
            e->init_value = lua_tonumber(L, -1);
            if (!isfinite(e->init_value)) return wfail(w, "%s: %s: init: not a finite number", what, k);
        } else if (lua_istable(L, -1) && !st) {
            lua_getfield(L, -1, "uniform");
            double bnd = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
            lua_pop(L, 1);
            int extra = 0;
            lua_pushnil(L);
            while (lua_next(L, -2)) { extra++; lua_pop(L, 1); }
            if (!(bnd > 0 && isfinite(bnd)) || extra != 1)
                return wfail(w, "%s: %s: init: expected a number or { uniform = bound } with bound > 0",
                             what, k);
            e->init_bound = bnd;
        } else if (lua_isnil(L, -1)) {
            return wfail(w, "%s: %s: init: missing (%s)", what, k,
                         st ? "a number" : "a number, or { uniform = bound }");
        } else {
            return wfail(w, "%s: %s: init: expected %s, got %s", what, k,
                         st ? "a number" : "a number or { uniform = bound }",
                         lua_typename(L, lua_type(L, -1)));
        }
        lua_settop(L, t);
    }
    *n = nk;
    return 0;
}

/* params(x, o) or state(x, o) into the graph's declarations */
static int declare(def_walk *w, int def_idx, int x_idx, int o_idx, rc_prim_graph *g, int st)
{
    lua_State *L = w->L;
    const char *what = st ? "state" : "params";
    lua_getfield(L, def_idx, what);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, x_idx);
    lua_pushvalue(L, o_idx);
    if (call_def(w, 2, 1)) return -1;
    int rc = read_decls(w, what, st ? g->state : g->param, st ? &g->n_state : &g->n_param, st, g);
    lua_pop(L, 1);
    return rc;
}

static int box_gc(lua_State *L)
{
    def_box *bx = luaL_testudata(L, 1, BOX_MT);
    if (bx && bx->live) {
        rc_prim_free(&bx->g);
        bx->live = 0;
    }
    return 0;
}

/* Build the graph of the layer (everything but the IR text); the box is at box_idx. */
static int build_graph(def_walk *w, rc_spec_build *b, int def_idx, int o_idx)
{
    lua_State *L = w->L;
    rc_prim_graph *g = b->g;
    char e[400];
    int in_dims[4];
    if (input_dims(w, in_dims)) return -1;
    int x = rc_prim_add(g, RC_P_INPUT, 0, NULL, NULL, 0, 0, 4, in_dims, w->line, e, sizeof e);
    if (x < 0) return wfail(w, "input: %s", e);
    rc_spec_push_tensor(L, b, x);
    int x_idx = lua_gettop(L);

    if (declare(w, def_idx, x_idx, o_idx, g, 0) || declare(w, def_idx, x_idx, o_idx, g, 1)) return -1;
    lua_createtable(L, 0, g->n_param + g->n_state);    /* p: parameters and state by name */
    int p_idx = lua_gettop(L);
    for (int st = 0; st < 2; st++)
        for (int k = 0; k < (st ? g->n_state : g->n_param); k++) {
            int id = rc_prim_add(g, st ? RC_P_STATE : RC_P_PARAM, 0, NULL, NULL, 0, k, 0, NULL, w->line,
                                 e, sizeof e);
            if (id < 0) return wfail(w, "%s: %s", st ? "state" : "params", e);
            rc_spec_push_tensor(L, b, id);
            lua_setfield(L, p_idx, st ? g->state[k].name : g->param[k].name);
        }

    static const char *const mode_name[2] = {"train", "eval"};
    for (int mode = 0; mode < 2; mode++) {
        b->mode = mode;
        b->n_rand = 0;
        lua_getfield(L, def_idx, "forward");
        lua_pushvalue(L, x_idx);
        lua_pushvalue(L, p_idx);
        lua_pushvalue(L, o_idx);
        lua_pushstring(L, mode_name[mode]);
        if (call_def(w, 4, 1)) return -1;
        int y = rc_spec_tensor_id(L, -1, b);
        if (y < 0)
            return wfail(w, "forward (%s): must return a tensor, got %s", mode_name[mode],
                         y == -2 ? "a tensor of another layer" : rc_spec_type_of(L, -1));
        g->out[mode] = y;
        lua_pop(L, 1);
    }
    b->mode = -1;
    const rc_prim_node *yt = &g->node[g->out[0]], *ye = &g->node[g->out[1]];
    char s1[96], s2[96];
    rc_spec_shape_text(yt->rank, yt->dims, s1, sizeof s1);
    rc_spec_shape_text(ye->rank, ye->dims, s2, sizeof s2);
    if (yt->rank != 4 || yt->dims[0] != RC_PRIM_B)
        return wfail(w, "forward: must return a (B, C, H, W) tensor, got %s (reshape it)", s1);
    if (ye->rank != yt->rank || memcmp(ye->dims, yt->dims, sizeof ye->dims))
        return wfail(w, "forward: returns %s in train mode but %s in eval mode", s1, s2);
    for (int k = 1; k < 4; k++)
        if (yt->dims[k] == RC_PRIM_B) return wfail(w, "forward: output %s has B past the first axis", s1);
    return 0;
}

int rc_spec_def_walk(lua_State *L, int uidx, rc_ir *ir, const char *file, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    uidx = lua_absindex(L, uidx);
    rc_spec_layer_ud *sl = luaL_checkudata(L, uidx, RC_SPEC_LAYER_MT);
    lua_getiuservalue(L, uidx, 2);
    int def_idx = lua_gettop(L);
    lua_getfield(L, def_idx, "name");
    def_walk w = {L, ir, file, err, errlen, ir->n_layers, sl->line, lua_tostring(L, -1)};
    lua_pop(L, 1);                                     /* the name stays in the definition */
    if (!w.kind) w.kind = "def";
    if (errlen) err[0] = 0;
    if (ir->n_layers >= RC_MAX_LAYERS) {
        lua_settop(L, top);
        return wfail(&w, "too many layers (at most %d)", RC_MAX_LAYERS);
    }
    lua_getiuservalue(L, uidx, 1);
    int given = lua_gettop(L);
    if (merge_options(&w, def_idx, given)) {
        lua_settop(L, top);
        return -1;
    }
    int o_idx = lua_gettop(L);

    def_box *bx = lua_newuserdatauv(L, sizeof *bx, 0);
    rc_prim_init(&bx->g);
    bx->live = 1;
    luaL_setmetatable(L, BOX_MT);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &gen_key);
    int gen = (int)lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    lua_pushinteger(L, gen);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &gen_key);
    rc_spec_build b = {&bx->g, gen, w.li, w.line, -1, 0, file, w.kind};
    lua_pushlightuserdata(L, &b);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &rc_spec_build_key);
    rc_spec_prims_install(L);
    int saved = lua_gettop(L);

    int rc = build_graph(&w, &b, def_idx, o_idx);
    rc_spec_prims_uninstall(L, saved);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &rc_spec_build_key);

    char *text = NULL;
    if (rc == 0 && !(text = rc_prim_format(&bx->g))) rc = wfail(&w, "out of memory");
    if (rc == 0) {
        char m[400];
        if (rc_prim_grad(&bx->g, RC_PRIM_TRAIN, m, sizeof m)) {
            if (bx->g.err_line > 0) w.line = bx->g.err_line;
            rc = wfail(&w, "%s", m);
        }
    }
    if (rc == 0) {
        rc_layer *l = &ir->layers[ir->n_layers];
        rc_layer_defaults(l, RC_LAYER_DEF);
        l->spec_line = sl->line;
        ir->n_layers++;
        char m[400];
        if (rc_ir_def_set(ir, w.li, w.kind, text, m, sizeof m)) {
            ir->n_layers--;
            rc = wfail(&w, "%s", m);
        }
    }
    free(text);
    rc_prim_free(&bx->g);
    bx->live = 0;
    lua_settop(L, top);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Installing it all
 * ---------------------------------------------------------------------------------------- */

void rc_spec_layer_open(lua_State *L)
{
    rc_spec_prims_open(L);
    lua_pushglobaltable(L);
    int G = lua_gettop(L);
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    lua_pushcfunction(L, l_layer_def);
    lua_setfield(L, G, "layer");
    lua_settop(L, G - 1);

    if (luaL_loadbufferx(L, prelude_text, sizeof prelude_text - 1, PRELUDE_CHUNK, "t") != LUA_OK)
        lua_error(L);
    lua_call(L, 0, 0);
}
