/* spec_sandbox.c — the Lua libraries a spec may use, made safe and deterministic (see spec.c's
 * header for why each removal): base/string/table/math only; no code loading, files, raw
 * access, metatables, pcall, garbage collection or output; string.rep, string.format and
 * table.sort wrapped with size checks; pairs/next in a fixed key order and tostring without
 * addresses (the same spec always gives the same model and the same messages); math.random
 * seeded with a constant.
 * Invariant: nothing here knows the model; spec.c installs the constructors afterwards.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "spec_sandbox.h"

/* string.rep with a size check before any work: rep("", 1e15) would spin in C for hours */
static int l_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && (double)n * (double)(l + lsep) > (double)RC_SPEC_MAX_MEMORY)
        return luaL_error(L, "string.rep: result would exceed the spec memory limit (%d MiB)",
                          (int)(RC_SPEC_MAX_MEMORY >> 20));
    if (n > 0 && l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* ---- determinism: fixed key order, no addresses ---- */

typedef struct {
    int rank;                         /* 0 number, 1 string, 2 boolean */
    lua_Number num;
    const char *str;
    size_t len;
    lua_Integer pos;                  /* index in the key table (strings stay anchored there) */
} spec_key;

static int cmp_key(const void *pa, const void *pb)
{
    const spec_key *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank - b->rank;
    if (a->rank == 0) return (a->num > b->num) - (a->num < b->num);
    if (a->rank == 2) return (int)a->num - (int)b->num;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Push a sequence of t's keys in the fixed order. Integer keys 1..n are numbers like any other. */
static void push_sorted_keys(lua_State *L, int t)
{
    t = lua_absindex(L, t);
    lua_Integer n = 0;
    lua_newtable(L);                                   /* keys in Lua's order */
    int kt = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        int ty = lua_type(L, -1);
        if (ty != LUA_TNUMBER && ty != LUA_TSTRING && ty != LUA_TBOOLEAN)
            luaL_error(L, "pairs/next: a table with %s keys has no fixed order (use a list and "
                       "ipairs)", lua_typename(L, ty));
        lua_pushvalue(L, -1);
        lua_rawseti(L, kt, ++n);
    }
    spec_key *k = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *k, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, kt, i + 1);
        spec_key *e = &k[i];
        e->pos = i + 1;
        switch (lua_type(L, -1)) {
        case LUA_TNUMBER: e->rank = 0; e->num = lua_tonumber(L, -1); break;
        case LUA_TSTRING: e->rank = 1; e->str = lua_tolstring(L, -1, &e->len); break;
        default: e->rank = 2; e->num = lua_toboolean(L, -1); break;
        }
        lua_pop(L, 1);
    }
    qsort(k, (size_t)n, sizeof *k, cmp_key);
    lua_createtable(L, (int)(n < 1 << 20 ? n : 1 << 20), 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_rawgeti(L, kt, k[i].pos);
        lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, kt);                               /* result where the raw keys were */
    lua_pop(L, 1);                                    /* the userdata */
}

/* iterator of pairs: upvalues (t, sorted keys, position) */
static int l_pairs_step(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;
    if (lua_rawgeti(L, lua_upvalueindex(2), i) == LUA_TNIL) return 1;
    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushvalue(L, -1);
    lua_rawget(L, lua_upvalueindex(1));
    return 2;
}

static int l_pairs(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    push_sorted_keys(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, l_pairs_step, 3);
    return 1;
}

/* next(t [, k]) in the same order as pairs (O(n log n) a call: pairs is the fast way) */
static int l_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    push_sorted_keys(L, 1);
    lua_Integer i = 1;
    if (!lua_isnil(L, 2)) {
        for (;; i++) {
            if (lua_rawgeti(L, 3, i) == LUA_TNIL) return luaL_error(L, "next: invalid key");
            int same = lua_rawequal(L, -1, 2);
            lua_pop(L, 1);
            if (same) break;
        }
        i++;
    }
    if (lua_rawgeti(L, 3, i) == LUA_TNIL) return 1;
    lua_pushvalue(L, -1);
    lua_rawget(L, 1);
    return 2;
}

/* tostring without addresses: a table is "table", a function "function" */
static int l_tostring(lua_State *L)
{
    luaL_checkany(L, 1);
    int t = lua_type(L, 1);
    if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
        t == LUA_TLIGHTUSERDATA) {
        lua_pushstring(L, lua_typename(L, t));
        return 1;
    }
    luaL_tolstring(L, 1, NULL);
    return 1;
}

/* string.format without %p, and %s of a table shows "table" (no address) */
static int l_format(lua_State *L)
{
    size_t n;
    const char *f = luaL_checklstring(L, 1, &n);
    for (size_t i = 0; i + 1 < n; i++) {
        if (f[i] != '%') continue;
        size_t j = i + 1;
        while (j < n && strchr("-+ #0123456789.", f[j])) j++;
        if (j < n && f[j] == 'p')
            return luaL_error(L, "string.format: %%p is not allowed in a spec (an address differs "
                              "from run to run)");
        i = j;
    }
    int top = lua_gettop(L);
    for (int a = 2; a <= top; a++) {
        int t = lua_type(L, a);
        if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
            t == LUA_TLIGHTUSERDATA) {
            lua_pushstring(L, lua_typename(L, t));
            lua_replace(L, a);
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, top, 1);
    return 1;
}

/* table.sort with a size cap: sorting millions of strings runs for seconds inside one C call */
static int l_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n > RC_SPEC_MAX_SORT)
        return luaL_error(L, "table.sort: %I elements (a spec may sort at most %d)", (LUAI_UACINT)n,
                          RC_SPEC_MAX_SORT);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* Replace lib[name] by fn with the original as upvalue 1 (lib at index t). */
static void wrap_field(lua_State *L, int t, const char *name, lua_CFunction fn)
{
    lua_getfield(L, t, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, t, name);
}

static void drop_fields(lua_State *L, int t, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, t, names[i]);
    }
}

void rc_spec_sandbox_libs(lua_State *L)
{
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_settop(L, 0);

    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    static const char *const g_drop[] = {
        "dofile", "loadfile", "load", "loadstring", "require", "collectgarbage", "rawset",
        "rawget", "rawequal", "rawlen", "setmetatable", "getmetatable", "print", "warn",
        "pcall", "xpcall", "module", "setfenv", "getfenv", "newproxy", NULL};
    drop_fields(L, g, g_drop);

    lua_getfield(L, g, "string");
    int s = lua_gettop(L);
    wrap_field(L, s, "rep", l_rep);
    wrap_field(L, s, "format", l_format);
    static const char *const s_drop[] = {"dump", "find", "match", "gmatch", "gsub", "pack",
                                         "packsize", "unpack", NULL};
    drop_fields(L, s, s_drop);
    lua_pop(L, 1);

    lua_pushcfunction(L, l_pairs);
    lua_setfield(L, g, "pairs");
    lua_pushcfunction(L, l_next);
    lua_setfield(L, g, "next");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, g, "tostring");

    lua_getfield(L, g, "table");
    wrap_field(L, lua_gettop(L), "sort", l_sort);
    static const char *const t_drop[] = {"move", NULL};
    drop_fields(L, lua_gettop(L), t_drop);
    lua_pop(L, 1);

    lua_getfield(L, g, "math");
    int m = lua_gettop(L);
    lua_getfield(L, m, "randomseed");
    lua_pushinteger(L, 20160101);
    lua_call(L, 1, 0);
    static const char *const m_drop[] = {"randomseed", NULL};
    drop_fields(L, m, m_drop);
    lua_pop(L, 1);
    lua_pop(L, 1);
}
