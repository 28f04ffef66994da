/* spec_prims.c — the primitives of compiler/prim.h as Lua functions, methods and metamethods of
 * tensors, for layers defined in a spec (spec_layer.c runs the definitions; the syntax is in
 * specs/README.md, "Defining a layer").
 *
 * A tensor is userdata {node id, build generation} with metamethods (+ - * / unary - ^) and the
 * primitives as methods (x:exp(), x:sum({2, 3})). Each Lua call adds its node(s) to the graph
 * of the running build (rc_spec_build, in the registry while spec_layer.c builds a layer)
 * through node(), which records the spec line of the Lua code that called it (the layer's use
 * line when the caller is the prelude) and turns a builder error into ONE located Lua error:
 * "FILE:LINE: layer I (KIND): conv2d: input has 3 channels, weight expects 4".
 *
 * Conventions (the Lua side of the contract): axes are 1-based (negative: from the end), shapes
 * are lists where "B" is the batch and "cells" the cell count, a number operand becomes a
 * constant that broadcasts, and a lower-rank operand is aligned to the right (leading 1s).
 * Lua's < <= == on tensors are refused (they must return booleans): gt/ge/eq/lt/le give 1 or 0.
 *
 * Invariants: a tensor is usable only while its own build runs (a tensor kept in a global and
 * used later is refused); the primitives are globals only while a build runs
 * (rc_spec_prims_install / _uninstall), so a spec's top level keeps its namespace; the act names
 * (relu, exp, softplus, ...) and select are always global: on a table they make the built-in
 * layer or call Lua's select, on a tensor they apply the function.
 */
#include "spec_layer.h"
#include "prim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define TENSOR_MT "rc.tensor"
#define PRELUDE_CHUNK "=prelude"
#define DIM_INFER (-100)                /* a -1 in a reshape's shape (RC_PRIM_B is -1 too) */

/* The primitives a forward can call, for messages: the names registered by rc_spec_prims_open
 * (which includes every elementwise row of the primitive table), sorted, space-separated. */
char rc_spec_prim_list[2048];

typedef struct {
    int id, gen;
} def_tensor;

const char rc_spec_build_key = 'b';     /* registry: light userdata -> the running build */
static const char prims_key = 'p';      /* registry: name -> primitive function */

static int is_spec_source(const char *src, const char *file)
{
    return src && src[0] == '@' && strcmp(src + 1, file) == 0;
}

/* The spec line of the Lua code that called the running C function: its own line when it is the
 * spec, else the layer's use line (prelude code); *pl = the prelude line, or 0. */
static int caller_line(lua_State *L, const rc_spec_build *b, int *pl)
{
    lua_Debug ar;
    *pl = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        if (is_spec_source(ar.source, b->file)) return ar.currentline;
        if (!strcmp(ar.source, PRELUDE_CHUNK)) *pl = ar.currentline;
    }
    return b->use_line;
}

/* Raise "FILE:LINE: layer I (KIND): what" (the located form of every op error). */
static int op_fail(lua_State *L, const rc_spec_build *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int op_fail(lua_State *L, const rc_spec_build *b, const char *fmt, ...)
{
    char msg[600], out[900], where[40] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int pl, line = caller_line(L, b, &pl);
    if (pl) snprintf(where, sizeof where, " (prelude line %d)", pl);
    snprintf(out, sizeof out, "%s:%d: layer %d (%s): %s%s", b->file, line, b->layer + 1, b->kind,
             msg, where);
    lua_pushstring(L, out);
    return lua_error(L);
}

static rc_spec_build *cur_build(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &rc_spec_build_key);
    rc_spec_build *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!b) luaL_error(L, "tensor operations run only inside a layer definition's forward");
    return b;
}

/* The running build, in a mode where ops may add nodes. */
static rc_spec_build *op_build(lua_State *L, const char *op)
{
    rc_spec_build *b = cur_build(L);
    if (b->mode < 0)
        op_fail(L, b, "%s: tensor operations belong in forward (params and state only declare; "
                "read x.shape there)", op);
    return b;
}

static const char *dim_text(int d, char *buf)
{
    if (d == RC_PRIM_B) return "B";
    if (d == RC_PRIM_CELLS) return "cells";
    snprintf(buf, 16, "%d", d);
    return buf;
}

void rc_spec_shape_text(int rank, const int *dims, char *out, size_t n)
{
    size_t k = (size_t)snprintf(out, n, "(");
    char b[16];
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%s%s", i ? "," : "", dim_text(dims[i], b));
    if (k < n) snprintf(out + k, n - k, ")");
}

/* Add a node (ops called from Lua): the caller's line, one located error on failure. */
static int node(lua_State *L, rc_spec_build *b, rc_prim_op op, int n_in, const int *in,
                const int *attr, double value, int ref, int rank, const int *dims)
{
    char e[400];
    int pl, line = caller_line(L, b, &pl);
    if (value == 0) value = 0.0;        /* -0 and 0 are one constant in the text */
    int id = rc_prim_add(b->g, op, n_in, in, attr, value, ref, rank, dims, line, e, sizeof e);
    if (id < 0) op_fail(L, b, "%s", e);
    return id;
}

static const rc_prim_node *nd_of(const rc_spec_build *b, int id) { return &b->g->node[id]; }

/* ------------------------------------------------------------------------------------------
 * Tensors
 * ---------------------------------------------------------------------------------------- */

void rc_spec_push_tensor(lua_State *L, const rc_spec_build *b, int id)
{
    def_tensor *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->id = id;
    t->gen = b->gen;
    luaL_setmetatable(L, TENSOR_MT);
}

static int is_tensor(lua_State *L, int idx) { return luaL_testudata(L, idx, TENSOR_MT) != NULL; }

int rc_spec_tensor_id(lua_State *L, int idx, const rc_spec_build *b)
{
    def_tensor *t = luaL_testudata(L, idx, TENSOR_MT);
    return !t ? -1 : t->gen != b->gen ? -2 : t->id;
}

const char *rc_spec_type_of(lua_State *L, int idx)
{
    if (is_tensor(L, idx)) return "a tensor";
    if (luaL_testudata(L, idx, RC_SPEC_LAYER_MT)) return "a layer";
    return lua_typename(L, lua_type(L, idx));
}

/* The node of the tensor at idx (argument `arg` of op, for messages). */
static int tensor_arg(lua_State *L, rc_spec_build *b, int idx, const char *op, int arg)
{
    def_tensor *t = luaL_testudata(L, idx, TENSOR_MT);
    if (!t) op_fail(L, b, "%s: argument %d: expected a tensor, got %s", op, arg, rc_spec_type_of(L, idx));
    if (t->gen != b->gen)
        op_fail(L, b, "%s: argument %d is a tensor of another layer's build (kept from an "
                "earlier forward?)", op, arg);
    return t->id;
}

/* A constant of `rank` (all dims 1: it broadcasts). */
static int const_node(lua_State *L, rc_spec_build *b, int rank, double v)
{
    int ones[RC_PRIM_MAX_RANK] = {1, 1, 1, 1, 1, 1};
    if (!isfinite(v)) op_fail(L, b, "const: %g is not a finite number", v);
    return node(L, b, RC_P_CONST, 0, NULL, NULL, v, 0, rank, ones);
}

/* Tensor or number at idx; a number becomes a constant of rank `rank`. */
static int operand(lua_State *L, rc_spec_build *b, int idx, int rank, const char *op, int arg)
{
    if (lua_type(L, idx) == LUA_TNUMBER) return const_node(L, b, rank, lua_tonumber(L, idx));
    if (!is_tensor(L, idx))
        op_fail(L, b, "%s: argument %d: expected a tensor or a number, got %s", op, arg,
                rc_spec_type_of(L, idx));
    return tensor_arg(L, b, idx, op, arg);
}

static int reshape_node(lua_State *L, rc_spec_build *b, int id, int rank, const int *dims)
{
    int attr[RC_PRIM_NATTR] = {0};
    memcpy(attr, dims, sizeof(int) * (size_t)rank);
    return node(L, b, RC_P_RESHAPE, 1, &id, attr, 0, 0, rank, dims);
}

/* Right-aligned broadcasting: a lower-rank operand gets leading 1s. */
static int lift(lua_State *L, rc_spec_build *b, int id, int rank)
{
    const rc_prim_node *n = nd_of(b, id);
    if (n->rank >= rank) return id;
    int dims[RC_PRIM_MAX_RANK], k = rank - n->rank;
    for (int i = 0; i < k; i++) dims[i] = 1;
    memcpy(dims + k, n->dims, sizeof(int) * (size_t)n->rank);
    return reshape_node(L, b, id, rank, dims);
}

static int rank_at(lua_State *L, const rc_spec_build *b, int idx)
{
    def_tensor *t = luaL_testudata(L, idx, TENSOR_MT);
    return t && t->gen == b->gen ? nd_of(b, t->id)->rank : 0;
}

/* Elementwise op over arguments 1..n (tensors or numbers, at least one tensor). */
static int elementwise(lua_State *L, rc_spec_build *b, rc_prim_op op, int n, const char *name)
{
    int rank = 0, in[3], any = 0;
    for (int i = 1; i <= n; i++) {
        int r = rank_at(L, b, i);
        if (r > rank) rank = r;
        any |= is_tensor(L, i);
    }
    if (!any)
        op_fail(L, b, "%s: expected a tensor among the arguments, got %s", name, rc_spec_type_of(L, 1));
    for (int i = 1; i <= n; i++) in[i - 1] = lift(L, b, operand(L, b, i, rank, name, i), rank);
    return node(L, b, op, n, in, NULL, 0, 0, 0, NULL);
}

/* ------------------------------------------------------------------------------------------
 * Shapes and axes from Lua
 * ---------------------------------------------------------------------------------------- */

static void push_shape(lua_State *L, int rank, const int *dims)
{
    lua_createtable(L, rank, 0);
    for (int k = 0; k < rank; k++) {
        if (dims[k] == RC_PRIM_B) lua_pushliteral(L, "B");
        else if (dims[k] == RC_PRIM_CELLS) lua_pushliteral(L, "cells");
        else lua_pushinteger(L, dims[k]);
        lua_rawseti(L, -2, k + 1);
    }
}

/* One dimension: an integer >= 1 (or -1 where infer is allowed), "B" (if allow_b) or "cells". */
int rc_spec_read_dim(lua_State *L, int idx, int allow_b, int allow_infer, int *out)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (allow_b && !strcmp(s, "B")) { *out = RC_PRIM_B; return 0; }
        if (!strcmp(s, "cells")) { *out = RC_PRIM_CELLS; return 0; }
        return -1;
    }
    if (!lua_isinteger(L, idx)) {
        if (lua_type(L, idx) != LUA_TNUMBER) return -1;
        double d = lua_tonumber(L, idx);
        if (d != floor(d) || fabs(d) > 2147483647.0) return -1;
        *out = (int)d;
    } else {
        lua_Integer v = lua_tointeger(L, idx);
        if (v < -1 || v > 2147483647) return -1;
        *out = (int)v;
    }
    if (*out == -1 && allow_infer) {
        *out = DIM_INFER;
        return 0;
    }
    return *out >= 1 ? 0 : -1;
}

/* A shape list at idx into dims; returns the rank. Messages name op. */
static int read_shape(lua_State *L, rc_spec_build *b, int idx, const char *op, int allow_b,
                      int allow_infer, int *dims)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        op_fail(L, b, "%s: expected a shape such as {\"B\", 3, 12, 12}, got %s", op, rc_spec_type_of(L, idx));
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n > RC_PRIM_MAX_RANK) op_fail(L, b, "%s: rank %lld (at most %d)", op, (long long)n, RC_PRIM_MAX_RANK);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        int bad = rc_spec_read_dim(L, -1, allow_b, allow_infer, &dims[i - 1]);
        lua_pop(L, 1);
        if (bad)
            op_fail(L, b, "%s: shape entry %lld: expected an integer >= 1%s, \"cells\"%s", op,
                    (long long)i, allow_infer ? " (or -1: inferred)" : "",
                    allow_b ? " or \"B\"" : "");
    }
    return (int)n;
}

/* Axes (a 1-based number or list; negative counts from the end) -> bit mask over rank axes. */
static int read_axes(lua_State *L, rc_spec_build *b, int idx, int rank, const char *op)
{
    int mask = 0, n = 1, list = lua_type(L, idx) == LUA_TTABLE;
    if (list) n = (int)lua_rawlen(L, idx);
    else if (lua_type(L, idx) != LUA_TNUMBER)
        op_fail(L, b, "%s: expected axes such as {1, 3, 4} (1-based), got %s", op, rc_spec_type_of(L, idx));
    if (n < 1) op_fail(L, b, "%s: no axes given", op);
    for (int i = 1; i <= n; i++) {
        if (list) lua_rawgeti(L, idx, i);
        else lua_pushvalue(L, idx);
        int isnum = lua_isinteger(L, -1);
        lua_Integer a = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (isnum && a < 0) a += rank + 1;
        if (!isnum || a < 1 || a > rank)
            op_fail(L, b, "%s: axis %d: expected an integer in 1..%d", op, i, rank);
        mask |= 1 << (a - 1);
    }
    return mask;
}

/* The single axis at idx (1-based, negative from the end) -> 0-based. */
static int read_axis(lua_State *L, rc_spec_build *b, int idx, int rank, const char *op)
{
    if (!lua_isinteger(L, idx)) op_fail(L, b, "%s: expected an axis (1-based integer), got %s", op, rc_spec_type_of(L, idx));
    lua_Integer a = lua_tointeger(L, idx);
    if (a < 0) a += rank + 1;
    if (a < 1 || a > rank) op_fail(L, b, "%s: axis %lld outside 1..%d", op, (long long)lua_tointeger(L, idx), rank);
    return (int)a - 1;
}

static int read_int_arg(lua_State *L, rc_spec_build *b, int idx, const char *op, const char *what)
{
    if (!lua_isinteger(L, idx))
        op_fail(L, b, "%s: %s: expected an integer, got %s", op, what, rc_spec_type_of(L, idx));
    lua_Integer v = lua_tointeger(L, idx);
    if (v < -1000000000 || v > 1000000000) op_fail(L, b, "%s: %s: %lld is out of range", op, what, (long long)v);
    return (int)v;
}

/* ------------------------------------------------------------------------------------------
 * The primitives as Lua functions (also methods: x:exp(), x:sum({2})) and metamethods
 * ---------------------------------------------------------------------------------------- */

/* upvalues: 1 op, 2 name, 3 arity (1 unary, 2 binary, -2 swapped binary) */
static int l_elementwise(lua_State *L)
{
    rc_prim_op op = (rc_prim_op)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    int ar = (int)lua_tointeger(L, lua_upvalueindex(3));
    rc_spec_build *b = op_build(L, name);
    if (ar == -2) {                                   /* lt(a, b) = gt(b, a) */
        lua_settop(L, 2);
        lua_insert(L, 1);
        ar = 2;
    }
    lua_settop(L, ar);
    if (ar == 1) {
        int x = tensor_arg(L, b, 1, name, 1);
        rc_spec_push_tensor(L, b, node(L, b, op, 1, &x, NULL, 0, 0, 0, NULL));
        return 1;
    }
    rc_spec_push_tensor(L, b, elementwise(L, b, op, ar, name));
    return 1;
}

/* metamethods: upvalue 1 op, 2 name */
static int l_arith(lua_State *L)
{
    rc_prim_op op = (rc_prim_op)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    rc_spec_build *b = op_build(L, name);
    lua_settop(L, 2);
    rc_spec_push_tensor(L, b, elementwise(L, b, op, 2, name));
    return 1;
}

static int l_unm(lua_State *L)
{
    rc_spec_build *b = op_build(L, "neg");
    int x = tensor_arg(L, b, 1, "neg", 1);
    rc_spec_push_tensor(L, b, node(L, b, RC_P_NEG, 1, &x, NULL, 0, 0, 0, NULL));
    return 1;
}

/* x ^ c and pow(x, c): c a number; c ^ x (c > 0) as exp(x log c) */
static int l_pow(lua_State *L)
{
    rc_spec_build *b = op_build(L, "pow");
    lua_settop(L, 2);
    if (is_tensor(L, 1) && lua_type(L, 2) == LUA_TNUMBER) {
        int x = tensor_arg(L, b, 1, "pow", 1);
        double c = lua_tonumber(L, 2);
        if (!isfinite(c)) op_fail(L, b, "pow: exponent %g is not finite", c);
        rc_spec_push_tensor(L, b, node(L, b, RC_P_POWC, 1, &x, NULL, c, 0, 0, NULL));
        return 1;
    }
    if (lua_type(L, 1) == LUA_TNUMBER && is_tensor(L, 2) && lua_tonumber(L, 1) > 0) {
        int x = tensor_arg(L, b, 2, "pow", 2);
        int k = const_node(L, b, nd_of(b, x)->rank, log(lua_tonumber(L, 1)));
        int in2[2] = {x, k};
        int m = node(L, b, RC_P_MUL, 2, in2, NULL, 0, 0, 0, NULL);
        rc_spec_push_tensor(L, b, node(L, b, RC_P_EXP, 1, &m, NULL, 0, 0, 0, NULL));
        return 1;
    }
    return op_fail(L, b, "pow: the exponent must be a number (tensor ^ number), got %s ^ %s",
                   rc_spec_type_of(L, 1), rc_spec_type_of(L, 2));
}

static int l_compare_refused(lua_State *L)
{
    rc_spec_build *b = cur_build(L);
    return op_fail(L, b, "compare: Lua's < <= == on tensors must give a boolean; use gt(a, b), "
                   "ge(a, b), eq(a, b) (1 or 0 per element) with select(cond, a, b)");
}

static int l_newindex(lua_State *L)
{
    rc_spec_build *b = cur_build(L);
    return op_fail(L, b, "tensors are values: a field cannot be set");
}

/* select(c, a, b): c != 0 ? a : b elementwise */
static int l_select_t(lua_State *L)
{
    rc_spec_build *b = op_build(L, "select");
    lua_settop(L, 3);
    rc_spec_push_tensor(L, b, elementwise(L, b, RC_P_SELECT, 3, "select"));
    return 1;
}

/* select: the primitive when its first argument is a tensor, else Lua's select (upvalue 1) */
static int l_select(lua_State *L)
{
    if (is_tensor(L, 1)) return l_select_t(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* relu/square/requ/identity on a tensor: compositions */
static int act_compose(lua_State *L, rc_spec_build *b, const char *name, int x)
{
    int rank = nd_of(b, x)->rank;
    if (!strcmp(name, "identity")) return x;
    int in2[2] = {x, x};
    int sq = !strcmp(name, "relu") ? x : node(L, b, RC_P_MUL, 2, in2, NULL, 0, 0, 0, NULL);
    if (!strcmp(name, "square")) return sq;
    int z = const_node(L, b, rank, 0);
    int c2[2] = {x, z};
    int c = node(L, b, RC_P_GT, 2, c2, NULL, 0, 0, 0, NULL);
    int in3[3] = {c, sq, z};
    return node(L, b, RC_P_SELECT, 3, in3, NULL, 0, 0, 0, NULL);
}

/* sum/mean/amax(x, axes): upvalue 1 op, 2 name */
static int l_reduce(lua_State *L)
{
    rc_prim_op op = (rc_prim_op)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    rc_spec_build *b = op_build(L, name);
    int x = tensor_arg(L, b, 1, name, 1);
    int attr[RC_PRIM_NATTR] = {read_axes(L, b, 2, nd_of(b, x)->rank, name)};
    rc_spec_push_tensor(L, b, node(L, b, op, 1, &x, attr, 0, 0, 0, NULL));
    return 1;
}

/* count(x, axes): the number of elements over those axes, a rank-kept all-1 tensor (B-aware) */
static int l_count(lua_State *L)
{
    rc_spec_build *b = op_build(L, "count");
    int x = tensor_arg(L, b, 1, "count", 1);
    const rc_prim_node *n = nd_of(b, x);
    int mask = read_axes(L, b, 2, n->rank, "count");
    int attr[RC_PRIM_NATTR] = {1, 0, 0}, ones[RC_PRIM_MAX_RANK] = {1, 1, 1, 1, 1, 1};
    long long cnt = 1;                  /* up to RC_PRIM_MAX_ELEMS = 2^31, one past INT_MAX */
    for (int k = 0; k < n->rank; k++) {
        if (!(mask >> k & 1)) continue;
        if (n->dims[k] == RC_PRIM_B) attr[1]++;
        else if (n->dims[k] == RC_PRIM_CELLS) attr[2]++;
        else cnt *= n->dims[k];
    }
    if (cnt > 2147483647) op_fail(L, b, "count: %lld elements, more than a count holds", cnt);
    attr[0] = (int)cnt;
    rc_spec_push_tensor(L, b, node(L, b, RC_P_NUMEL, 0, NULL, attr, 0, 0, n->rank, ones));
    return 1;
}

/* reshape(x, shape): one entry may be -1 (inferred) */
static int l_reshape(lua_State *L)
{
    rc_spec_build *b = op_build(L, "reshape");
    int x = tensor_arg(L, b, 1, "reshape", 1);
    int dims[RC_PRIM_MAX_RANK], rank = read_shape(L, b, 2, "reshape", 1, 1, dims);
    const rc_prim_node *n = nd_of(b, x);
    int infer = -1;
    double pin = 1, pout = 1;
    for (int k = 0; k < n->rank; k++) if (n->dims[k] > 0) pin *= n->dims[k];
    for (int k = 0; k < rank; k++) {
        if (dims[k] == DIM_INFER) {
            if (infer >= 0) op_fail(L, b, "reshape: at most one -1");
            infer = k;
        } else if (dims[k] > 0) pout *= dims[k];
    }
    if (infer >= 0) {
        double q = pin / pout;
        if (q != floor(q) || q < 1 || q > 2147483647.0) {
            char s[96];
            rc_spec_shape_text(n->rank, n->dims, s, sizeof s);
            op_fail(L, b, "reshape: cannot infer -1 from %s", s);
        }
        dims[infer] = (int)q;
    }
    rc_spec_push_tensor(L, b, reshape_node(L, b, x, rank, dims));
    return 1;
}

/* transpose(x, perm): 1-based permutation, out axis i = in axis perm[i] */
static int l_transpose(lua_State *L)
{
    rc_spec_build *b = op_build(L, "transpose");
    int x = tensor_arg(L, b, 1, "transpose", 1);
    int rank = nd_of(b, x)->rank, attr[RC_PRIM_NATTR] = {0};
    if (lua_type(L, 2) != LUA_TTABLE || (int)lua_rawlen(L, 2) != rank)
        op_fail(L, b, "transpose: expected a permutation of the %d axes such as {1, 3, 2, 4}", rank);
    for (int i = 0; i < rank; i++) {
        lua_rawgeti(L, 2, i + 1);
        attr[i] = (int)lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
    }
    rc_spec_push_tensor(L, b, node(L, b, RC_P_TRANSPOSE, 1, &x, attr, 0, 0, 0, NULL));
    return 1;
}

/* slice(x, axis, first, last): 1-based, inclusive; negative counts from the end (-1 = last) */
static int l_slice(lua_State *L)
{
    rc_spec_build *b = op_build(L, "slice");
    int x = tensor_arg(L, b, 1, "slice", 1);
    const rc_prim_node *n = nd_of(b, x);
    int ax = read_axis(L, b, 2, n->rank, "slice"), d = n->dims[ax];
    int first = read_int_arg(L, b, 3, "slice", "first");
    int last = lua_isnoneornil(L, 4) ? -1 : read_int_arg(L, b, 4, "slice", "last");
    if (d < 1) op_fail(L, b, "slice: axis %d has a run-time size: it cannot be sliced", ax + 1);
    if (first < 0) first += d + 1;
    if (last < 0) last += d + 1;
    int attr[RC_PRIM_NATTR] = {0};
    for (int k = 0; k < n->rank; k++) attr[2 * k + 1] = n->dims[k];
    attr[2 * ax] = first - 1;
    attr[2 * ax + 1] = last;
    rc_spec_push_tensor(L, b, node(L, b, RC_P_SLICE, 1, &x, attr, 0, 0, 0, NULL));
    return 1;
}

/* cellpick(x, position): x (B, cells, H, W) read at each cell's readout position ->
 * (B, cells, 1, 1); position "data" (the cell's receptive-field centre, default), "center" (the
 * map centre) or "reference" (torch-deep-retina's GrabUnits), as gcconv's position option:
 * the model computes the positions (rc_gc_positions) and stores them in its checkpoint. */
static int l_cellpick(lua_State *L)
{
    rc_spec_build *b = op_build(L, "cellpick");
    int x = tensor_arg(L, b, 1, "cellpick", 1);
    const char *pos = lua_isnoneornil(L, 2) ? "data" : lua_tostring(L, 2);
    int attr[RC_PRIM_NATTR] = {0};
    if (!pos || lua_type(L, 2) == LUA_TNUMBER) op_fail(L, b, "cellpick: position: expected \"data\", \"center\" or \"reference\"");
    if (!strcmp(pos, "data")) attr[0] = RC_POS_DATA;
    else if (!strcmp(pos, "center")) attr[0] = RC_POS_CENTER;
    else if (!strcmp(pos, "reference")) attr[0] = RC_POS_REFERENCE;
    else op_fail(L, b, "cellpick: position: expected \"data\", \"center\" or \"reference\", got '%s'", pos);
    rc_spec_push_tensor(L, b, node(L, b, RC_P_CELLPICK, 1, &x, attr, 0, 0, 0, NULL));
    return 1;
}

/* pad(x, axis, before, after): zeros */
static int l_pad(lua_State *L)
{
    rc_spec_build *b = op_build(L, "pad");
    int x = tensor_arg(L, b, 1, "pad", 1);
    int ax = read_axis(L, b, 2, nd_of(b, x)->rank, "pad");
    int attr[RC_PRIM_NATTR] = {0};
    attr[2 * ax] = read_int_arg(L, b, 3, "pad", "before");
    attr[2 * ax + 1] = lua_isnoneornil(L, 4) ? attr[2 * ax] : read_int_arg(L, b, 4, "pad", "after");
    rc_spec_push_tensor(L, b, node(L, b, RC_P_PAD, 1, &x, attr, 0, 0, 0, NULL));
    return 1;
}

/* concat(a, b, axis) */
static int l_concat(lua_State *L)
{
    rc_spec_build *b = op_build(L, "concat");
    int in2[2] = {tensor_arg(L, b, 1, "concat", 1), tensor_arg(L, b, 2, "concat", 2)};
    int attr[RC_PRIM_NATTR] = {read_axis(L, b, 3, nd_of(b, in2[0])->rank, "concat")};
    rc_spec_push_tensor(L, b, node(L, b, RC_P_CONCAT, 2, in2, attr, 0, 0, 0, NULL));
    return 1;
}

static int expand_node(lua_State *L, rc_spec_build *b, int x, int rank, const int *dims)
{
    x = lift(L, b, x, rank);
    const rc_prim_node *n = nd_of(b, x);
    if (n->rank == rank && !memcmp(n->dims, dims, sizeof(int) * (size_t)rank)) return x;
    int attr[RC_PRIM_NATTR] = {0};
    memcpy(attr, dims, sizeof(int) * (size_t)rank);
    return node(L, b, RC_P_EXPAND, 1, &x, attr, 0, 0, 0, NULL);
}

/* expand(x, shape): dims of 1 grow (lower rank: leading 1s first) */
static int l_expand(lua_State *L)
{
    rc_spec_build *b = op_build(L, "expand");
    int x = tensor_arg(L, b, 1, "expand", 1);
    int dims[RC_PRIM_MAX_RANK], rank = read_shape(L, b, 2, "expand", 1, 0, dims);
    if (rank < nd_of(b, x)->rank) op_fail(L, b, "expand: shape of rank %d for a tensor of rank %d", rank, nd_of(b, x)->rank);
    rc_spec_push_tensor(L, b, expand_node(L, b, x, rank, dims));
    return 1;
}

/* full(shape, value): a tensor of that shape, every element value */
static int l_full(lua_State *L)
{
    rc_spec_build *b = op_build(L, "full");
    int dims[RC_PRIM_MAX_RANK], rank = read_shape(L, b, 1, "full", 1, 0, dims);
    if (lua_type(L, 2) != LUA_TNUMBER) op_fail(L, b, "full: value: expected a number, got %s", rc_spec_type_of(L, 2));
    int c = const_node(L, b, rank, lua_tonumber(L, 2));
    rc_spec_push_tensor(L, b, expand_node(L, b, c, rank, dims));
    return 1;
}

static int l_matmul(lua_State *L)
{
    rc_spec_build *b = op_build(L, "matmul");
    int in2[2] = {tensor_arg(L, b, 1, "matmul", 1), tensor_arg(L, b, 2, "matmul", 2)};
    rc_spec_push_tensor(L, b, node(L, b, RC_P_MATMUL, 2, in2, NULL, 0, 0, 0, NULL));
    return 1;
}

/* an integer option of conv2d's table */
static int conv_opt(lua_State *L, rc_spec_build *b, int t, const char *key, int def)
{
    lua_getfield(L, t, key);
    int v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1)) op_fail(L, b, "conv2d: %s: expected an integer, got %s", key, rc_spec_type_of(L, -1));
        lua_Integer i = lua_tointeger(L, -1);
        if (i < 0 || i > 1000000) op_fail(L, b, "conv2d: %s: %lld is out of range", key, (long long)i);
        v = (int)i;
    }
    lua_pop(L, 1);
    return v;
}

/* conv2d(x, w, { stride =, pad =, dilation =, period = n or {py, px} }) */
static int l_conv2d(lua_State *L)
{
    rc_spec_build *b = op_build(L, "conv2d");
    int in2[2] = {tensor_arg(L, b, 1, "conv2d", 1), tensor_arg(L, b, 2, "conv2d", 2)};
    int attr[RC_PRIM_NATTR] = {1, 0, 1, 1, 1};
    if (!lua_isnoneornil(L, 3)) {
        if (!lua_istable(L, 3)) op_fail(L, b, "conv2d: options: expected a table such as { pad = 1 }, got %s", rc_spec_type_of(L, 3));
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pop(L, 1);
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            if (strcmp(k, "stride") && strcmp(k, "pad") && strcmp(k, "dilation") && strcmp(k, "period"))
                op_fail(L, b, "conv2d: unknown option '%s' (stride, pad, dilation, period)", k);
        }
        attr[0] = conv_opt(L, b, 3, "stride", 1);
        attr[1] = conv_opt(L, b, 3, "pad", 0);
        attr[2] = conv_opt(L, b, 3, "dilation", 1);
        lua_getfield(L, 3, "period");
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            attr[3] = (int)lua_tointeger(L, -2);
            attr[4] = (int)lua_tointeger(L, -1);
            lua_pop(L, 2);
        } else if (!lua_isnil(L, -1)) {
            attr[3] = attr[4] = conv_opt(L, b, 3, "period", 1);
        }
        lua_pop(L, 1);
    }
    rc_spec_push_tensor(L, b, node(L, b, RC_P_CONV2D, 2, in2, attr, 0, 0, 0, NULL));
    return 1;
}

/* randn(x or shape), randu(...): upvalue 1 op, 2 name; one sub-stream per call and mode */
static int l_rand(lua_State *L)
{
    rc_prim_op op = (rc_prim_op)lua_tointeger(L, lua_upvalueindex(1));
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    rc_spec_build *b = op_build(L, name);
    int dims[RC_PRIM_MAX_RANK], rank;
    if (is_tensor(L, 1)) {
        const rc_prim_node *n = nd_of(b, tensor_arg(L, b, 1, name, 1));
        rank = n->rank;
        memcpy(dims, n->dims, sizeof dims);
    } else {
        rank = read_shape(L, b, 1, name, 1, 0, dims);
    }
    if (b->n_rand >= 64 - RC_PRIM_RNG_SUB0)
        op_fail(L, b, "%s: more than %d random draws in one layer", name, 64 - RC_PRIM_RNG_SUB0);
    int attr[RC_PRIM_NATTR] = {b->n_rand++};
    rc_spec_push_tensor(L, b, node(L, b, op, 0, NULL, attr, 0, 0, rank, dims));
    return 1;
}

/* update(p.state_name, value): the state's new value after a training step */
static int l_update(lua_State *L)
{
    rc_spec_build *b = op_build(L, "update");
    int s = tensor_arg(L, b, 1, "update", 1);
    const rc_prim_node *sn = nd_of(b, s);
    if (sn->op != RC_P_STATE)
        op_fail(L, b, "update: argument 1 must be a state tensor (declared by state = function(x, o) "
                "... end and read as p.NAME)");
    if (b->mode != RC_PRIM_TRAIN)
        op_fail(L, b, "update: state changes only in training (write: if mode == \"train\" then "
                "update(...) end)");
    int ref = sn->ref, srank = sn->rank, sdims[RC_PRIM_MAX_RANK];
    memcpy(sdims, sn->dims, sizeof sdims);
    int v = operand(L, b, 2, srank, "update", 2);
    const rc_prim_node *vn = nd_of(b, v);
    if (vn->rank != srank || memcmp(vn->dims, sdims, sizeof(int) * (size_t)srank)) {
        int ones = 1, same_count = 1;
        double pv = 1, ps = 1;
        int cv = 0, cs = 0;
        for (int k = 0; k < vn->rank; k++) {
            ones &= vn->dims[k] == 1;
            if (vn->dims[k] == RC_PRIM_B) same_count = 0;
            else if (vn->dims[k] == RC_PRIM_CELLS) cv++;
            else pv *= vn->dims[k];
        }
        for (int k = 0; k < srank; k++) {
            if (sdims[k] == RC_PRIM_CELLS) cs++;
            else ps *= sdims[k];
        }
        if (same_count && pv == ps && cv == cs) v = reshape_node(L, b, v, srank, sdims);
        else if (ones && vn->rank <= srank) v = expand_node(L, b, v, srank, sdims);
    }
    int id = node(L, b, RC_P_UPDATE, 1, &v, NULL, 0, ref, 0, NULL);
    (void)id;
    return 0;
}

/* ---- tensor fields and methods ---- */

static int l_index(lua_State *L)
{
    rc_spec_build *b = cur_build(L);
    int x = tensor_arg(L, b, 1, "index", 1);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    if (!strcmp(k, "shape")) {
        push_shape(L, nd_of(b, x)->rank, nd_of(b, x)->dims);
        return 1;
    }
    if (!strcmp(k, "rank")) {
        lua_pushinteger(L, nd_of(b, x)->rank);
        return 1;
    }
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    return op_fail(L, b, "tensor has no field or method '%s' (fields: shape, rank; methods: %s)", k,
                   rc_spec_prim_list);
}

/* ------------------------------------------------------------------------------------------
 * The act constructors, which also apply to tensors
 * ---------------------------------------------------------------------------------------- */

static int caller_spec_line(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline > 0)
        return ar.currentline;
    return 0;
}

/* A layer userdata (as spec.c's constructors make them) for the table at 1; nuv user values. */
rc_spec_layer_ud *rc_spec_new_layer(lua_State *L, int kind, int act, int nuv)
{
    rc_spec_layer_ud *sl = lua_newuserdatauv(L, sizeof *sl, nuv);
    sl->kind = kind;
    sl->act = act;
    sl->line = caller_spec_line(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    return sl;
}

/* relu, softplus, exp, ...: upvalues 1 kind, 2 act, 3 name (as spec.c's), 4 primitive or -1.
 * A table makes the built-in layer; a tensor applies the function. */
static int l_act(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(3));
    if (lua_gettop(L) == 1 && is_tensor(L, 1)) {
        rc_spec_build *b = op_build(L, name);
        int x = tensor_arg(L, b, 1, name, 1);
        int op = (int)lua_tointeger(L, lua_upvalueindex(4));
        rc_spec_push_tensor(L, b, op >= 0 ? node(L, b, (rc_prim_op)op, 1, &x, NULL, 0, 0, 0, NULL)
                                  : act_compose(L, b, name, x));
        return 1;
    }
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "%s: expected one field table: write %s { ... } (or %s(x) on a tensor "
                          "inside a layer definition)", name, name, name);
    rc_spec_new_layer(L, (int)lua_tointeger(L, lua_upvalueindex(1)), (int)lua_tointeger(L, lua_upvalueindex(2)), 1);
    luaL_setmetatable(L, RC_SPEC_LAYER_MT);
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Installing it all
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    rc_prim_op op;
    int arity;                          /* 1, 2, -2 (swapped) */
} elem_fn;

static const elem_fn elem_fns[] = {
    {"log", RC_P_LOG, 1}, {"log1p", RC_P_LOG1P, 1}, {"sqrt", RC_P_SQRT, 1},
    {"sign", RC_P_SIGN, 1}, {"stop_gradient", RC_P_STOPGRAD, 1}, {"recip", RC_P_RECIP, 1},
    {"max", RC_P_MAX, 2}, {"min", RC_P_MIN, 2}, {"gt", RC_P_GT, 2}, {"ge", RC_P_GE, 2},
    {"eq", RC_P_EQ, 2}, {"lt", RC_P_GT, -2}, {"le", RC_P_GE, -2},
};

static const luaL_Reg plain_fns[] = {
    {"count", l_count}, {"reshape", l_reshape}, {"transpose", l_transpose}, {"slice", l_slice},
    {"pad", l_pad}, {"concat", l_concat}, {"expand", l_expand}, {"full", l_full}, {"cellpick", l_cellpick},
    {"matmul", l_matmul}, {"conv2d", l_conv2d}, {"update", l_update}, {"pow", l_pow},
    {"where", l_select_t}, {NULL, NULL},
};

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* rc_spec_prim_list from the registered primitives (table at g), the act names and select */
static void prim_list_build(lua_State *L, int g)
{
    const char *names[256];
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, g) && n < 256 - RC_ACT_COUNT - 1) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) names[n++] = lua_tostring(L, -1);
    }
    if (n >= 256 - RC_ACT_COUNT - 1) lua_pop(L, 1);
    for (int a = 0; a < RC_ACT_COUNT; a++) names[n++] = rc_act_name((rc_act)a);
    names[n++] = "select";
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    size_t k = 0;
    rc_spec_prim_list[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i && !strcmp(names[i], names[i - 1])) continue;
        int w = snprintf(rc_spec_prim_list + k, sizeof rc_spec_prim_list - k, "%s%s", k ? " " : "", names[i]);
        if (w < 0 || (size_t)w >= sizeof rc_spec_prim_list - k) break;
        k += (size_t)w;
    }
}

/* Set fn (at top) as primitive `name` (table at g: globals while a layer is built) and as
 * method `name` (methods table at m); pops it. */
static void publish(lua_State *L, int g, int m, const char *name)
{
    lua_pushvalue(L, -1);
    lua_setfield(L, m, name);
    lua_setfield(L, g, name);
}

/* The primitives become globals while a defined layer is built (outside, a spec's top level
 * keeps its namespace: conv2d { ... } there is still "undefined name 'conv2d'"); the globals
 * they hide are saved in the table pushed by install and put back by uninstall. */
void rc_spec_prims_install(lua_State *L)
{
    lua_newtable(L);
    int saved = lua_gettop(L);
    lua_pushglobaltable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &prims_key);
    lua_pushnil(L);
    while (lua_next(L, -2)) {                          /* key, fn */
        lua_pushvalue(L, -2);
        lua_rawget(L, saved + 1);                      /* the old global (or nil) */
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, saved);                          /* saved[key] = old */
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, saved + 1);                      /* _G[key] = fn */
    }
    lua_settop(L, saved);
}

void rc_spec_prims_uninstall(lua_State *L, int saved)
{
    lua_pushglobaltable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &prims_key);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -1);
        lua_rawget(L, saved);
        lua_rawset(L, -5);                             /* _G[key] = saved[key] */
    }
    lua_pop(L, 2);
}

void rc_spec_prims_open(lua_State *L)
{
    lua_pushglobaltable(L);
    int G = lua_gettop(L);
    lua_newtable(L);                                   /* the primitives */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &prims_key);
    int g = lua_gettop(L);
    lua_newtable(L);                                   /* tensor methods */
    int m = lua_gettop(L);

    for (size_t i = 0; i < sizeof elem_fns / sizeof elem_fns[0]; i++) {
        lua_pushinteger(L, elem_fns[i].op);
        lua_pushstring(L, elem_fns[i].name);
        lua_pushinteger(L, elem_fns[i].arity);
        lua_pushcclosure(L, l_elementwise, 3);
        publish(L, g, m, elem_fns[i].name);
    }
    /* every other elementwise row of the primitive table under its own name: a new unary or
     * binary primitive is callable from a spec with no change here */
    const rc_prim_info *T = rc_prim_table();
    for (int op = 0; op < RC_P_COUNT; op++) {
        if (T[op].kind != RC_PK_UNARY && T[op].kind != RC_PK_BINARY) continue;
        lua_getfield(L, g, T[op].name);
        int have = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (have || op == RC_P_POWC) continue;         /* pow: its own form, a constant exponent */
        lua_pushinteger(L, op);
        lua_pushstring(L, T[op].name);
        lua_pushinteger(L, T[op].n_in);
        lua_pushcclosure(L, l_elementwise, 3);
        publish(L, g, m, T[op].name);
    }
    static const struct { const char *name; rc_prim_op op; } red[] = {
        {"sum", RC_P_SUM}, {"mean", RC_P_MEAN}, {"amax", RC_P_RMAX}};
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, red[i].op);
        lua_pushstring(L, red[i].name);
        lua_pushcclosure(L, l_reduce, 2);
        publish(L, g, m, red[i].name);
    }
    static const struct { const char *name; rc_prim_op op; } rnd[] = {
        {"randn", RC_P_RANDN}, {"randu", RC_P_RANDU}};
    for (int i = 0; i < 2; i++) {
        lua_pushinteger(L, rnd[i].op);
        lua_pushstring(L, rnd[i].name);
        lua_pushcclosure(L, l_rand, 2);
        publish(L, g, m, rnd[i].name);
    }
    for (int i = 0; plain_fns[i].name; i++) {
        lua_pushcfunction(L, plain_fns[i].func);
        publish(L, g, m, plain_fns[i].name);
    }
    /* select: the primitive on a tensor, Lua's select otherwise (always global) */
    lua_getfield(L, G, "select");
    lua_pushcclosure(L, l_select, 1);
    lua_setfield(L, G, "select");
    lua_pushcfunction(L, l_select_t);
    lua_setfield(L, m, "select");
    /* the act layers: a table makes the built-in layer, a tensor applies the function */
    static const int act_prim[RC_ACT_COUNT] = {
        [RC_ACT_RELU] = -1, [RC_ACT_SOFTPLUS] = RC_P_SOFTPLUS, [RC_ACT_EXP] = RC_P_EXP,
        [RC_ACT_ABS] = RC_P_ABS, [RC_ACT_SQUARE] = -1, [RC_ACT_REQU] = -1,
        [RC_ACT_SIGMOID] = RC_P_SIGMOID, [RC_ACT_TANH] = RC_P_TANH, [RC_ACT_IDENTITY] = -1};
    for (int a = 0; a < RC_ACT_COUNT; a++) {
        lua_pushinteger(L, RC_LAYER_ACT);
        lua_pushinteger(L, a);
        lua_pushstring(L, rc_act_name((rc_act)a));
        lua_pushinteger(L, act_prim[a]);
        lua_pushcclosure(L, l_act, 4);
        publish(L, G, m, rc_act_name((rc_act)a));        /* always global: also layers */
    }

    prim_list_build(L, g);
    luaL_newmetatable(L, TENSOR_MT);
    int t = lua_gettop(L);
    lua_pushliteral(L, "locked");
    lua_setfield(L, t, "__metatable");
    lua_pushvalue(L, m);
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, t, "__index");
    lua_pushcfunction(L, l_newindex);
    lua_setfield(L, t, "__newindex");
    static const struct { const char *mm, *name; rc_prim_op op; } arith[] = {
        {"__add", "add", RC_P_ADD}, {"__sub", "sub", RC_P_SUB}, {"__mul", "mul", RC_P_MUL},
        {"__div", "div", RC_P_DIV}};
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, arith[i].op);
        lua_pushstring(L, arith[i].name);
        lua_pushcclosure(L, l_arith, 2);
        lua_setfield(L, t, arith[i].mm);
    }
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, t, "__unm");
    lua_pushcfunction(L, l_pow);
    lua_setfield(L, t, "__pow");
    static const char *const refused[] = {"__lt", "__le", "__eq", NULL};
    for (int i = 0; refused[i]; i++) {
        lua_pushcfunction(L, l_compare_refused);
        lua_setfield(L, t, refused[i]);
    }
    lua_pop(L, 1);
    lua_settop(L, G - 1);
}
