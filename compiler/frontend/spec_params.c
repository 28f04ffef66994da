/* spec_params.c — spec parameters: the `params` function of the sandbox, the overrides applied
 * to it, and the search dims over parameters (see spec_params.h).
 *
 * Invariants: the declaration is visited in name order (messages do not depend on Lua's table
 * order); an override is converted once, strictly (the whole text, finite, integral for an
 * integer parameter); the table `params` returns refuses reads of undeclared names, so a typo
 * in the spec body fails instead of reading nil.
 */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "spec_params.h"

static int is_ident(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* A string value a search can take: it names trial folders. */
static int is_name_safe(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

const rc_spec_param_decl *rc_spec_params_find(const rc_spec_params *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].name, name)) return &ps->p[i];
    return NULL;
}

void rc_spec_params_list(const rc_spec_params *ps, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    if (!ps->n) snprintf(buf, n, "none");
    for (int i = 0; i < ps->n && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", ps->p[i].name);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static const char *type_name(const rc_spec_param_decl *d)
{
    return d->type == LUA_TSTRING ? "a string" : d->type == LUA_TBOOLEAN ? "true or false"
           : d->is_int ? "an integer" : "a number";
}

/* Push the override text as d's type, or raise an error naming the override. */
static void push_override(lua_State *L, const rc_spec_param_decl *d, const char *v)
{
    if (d->type == LUA_TSTRING) {
        if (strlen(v) > 256) luaL_error(L, "--param %s: longer than 256 characters", d->name);
        lua_pushstring(L, v);
        return;
    }
    if (d->type == LUA_TBOOLEAN) {
        if (strcmp(v, "true") && strcmp(v, "false"))
            luaL_error(L, "--param %s=%s: expected true or false (the default is a boolean)", d->name, v);
        lua_pushboolean(L, !strcmp(v, "true"));
        return;
    }
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x))
        luaL_error(L, "--param %s=%s: expected %s (the default is one)", d->name, v, type_name(d));
    if (d->is_int) {
        if (x != floor(x) || fabs(x) > 9007199254740992.0)
            luaL_error(L, "--param %s=%s: expected an integer (the default is one)", d->name, v);
        lua_pushinteger(L, (lua_Integer)x);
    } else {
        lua_pushnumber(L, x);
    }
}

static int l_undeclared(lua_State *L)
{
    const rc_spec_params *ps = lua_touserdata(L, lua_upvalueindex(1));
    char names[512];
    rc_spec_params_list(ps, names, sizeof names);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L, "params: no parameter '%s' (declared: %s)", k, names);
}

static int l_readonly(lua_State *L)
{
    return luaL_error(L, "params: the parameter table is read-only");
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* params { name = default, ... } -> a table of the values (defaults or overrides). */
static int l_params(lua_State *L)
{
    rc_spec_params *ps = lua_touserdata(L, lua_upvalueindex(1));
    if (ps->called) return luaL_error(L, "params: declared twice (declare every parameter in one params { ... })");
    ps->called = 1;
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "params: write params { name = default, ... }");
    const char *names[RC_SPEC_MAX_PARAMS];
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "params: every entry is name = default");
        if (n == RC_SPEC_MAX_PARAMS) return luaL_error(L, "params: at most %d parameters", RC_SPEC_MAX_PARAMS);
        names[n++] = lua_tostring(L, -1);     /* the key stays alive in the table */
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_cstr);
    int ntf;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &ntf);
    lua_createtable(L, 0, n);
    int out = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        if (!is_ident(nm) || strlen(nm) + strlen(RC_SEARCH_PARAM_PREFIX) >= RC_NAME_MAX)
            return luaL_error(L, "params: '%s': a name is an identifier of at most %d characters", nm,
                              (int)(RC_NAME_MAX - strlen(RC_SEARCH_PARAM_PREFIX) - 1));
        for (int k = 0; k < ntf; k++)
            if (!strcmp(tf[k].name, nm))
                return luaL_error(L, "params: '%s' is a train field (set it with --%s or train = {...}); "
                                  "name the parameter otherwise", nm, nm);
        rc_spec_param_decl *d = &ps->p[ps->n];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s", nm);
        lua_getfield(L, 1, nm);
        d->type = lua_type(L, -1);
        if (d->type == LUA_TNUMBER) {
            if (!isfinite(lua_tonumber(L, -1))) return luaL_error(L, "params: %s: the default is not finite", nm);
            d->is_int = lua_isinteger(L, -1);
        } else if (d->type != LUA_TSTRING && d->type != LUA_TBOOLEAN) {
            return luaL_error(L, "params: %s: a default is a number, a string or a boolean, got %s", nm,
                              luaL_typename(L, -1));
        }
        ps->n++;
        lua_setfield(L, out, nm);
    }
    for (int k = 0; k < ps->n_ov; k++) {
        const rc_spec_override *o = &ps->ov[k];
        for (int j = 0; j < k; j++)
            if (!strcmp(ps->ov[j].name, o->name)) return luaL_error(L, "--param %s: given twice", o->name);
        const rc_spec_param_decl *d = rc_spec_params_find(ps, o->name);
        if (!d) {
            char list[512];
            rc_spec_params_list(ps, list, sizeof list);
            return luaL_error(L, "--param %s: the spec declares no parameter '%s' (declared: %s)", o->name,
                              o->name, list);
        }
        push_override(L, d, o->value);
        lua_setfield(L, out, o->name);
    }
    lua_createtable(L, 0, 3);
    lua_pushlightuserdata(L, ps);
    lua_pushcclosure(L, l_undeclared, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_readonly);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, out);
    return 1;
}

void rc_spec_params_open(lua_State *L, rc_spec_params *ps)
{
    lua_pushlightuserdata(L, ps);
    lua_pushcclosure(L, l_params, 1);
    lua_setglobal(L, "params");
}

int rc_spec_params_finish(const rc_spec_params *ps, char *err, size_t errlen)
{
    if (ps->n_ov > 0 && !ps->called)
        return rc_errf(err, errlen, "--param %s: the spec declares no parameters (declare them with "
                       "local p = params { %s = default } and use p.%s)", ps->ov[0].name, ps->ov[0].name,
                       ps->ov[0].name);
    return 0;
}

int rc_spec_params_search_dim(lua_State *L, int vidx, const rc_spec_params *ps, const char *name,
                              int is_random, rc_search_dim *d, char *path, size_t pathlen,
                              char *err, size_t errlen)
{
    const char *part = is_random ? "random" : "grid";
    snprintf(path, pathlen, "%s.params.%.60s", part, name);
    const rc_spec_param_decl *pd = rc_spec_params_find(ps, name);
    if (!pd) {
        char list[512];
        rc_spec_params_list(ps, list, sizeof list);
        return rc_errf(err, errlen, "not a parameter of this spec (declared with params {...}: %s)", list);
    }
    if (!lua_istable(L, vidx))
        return rc_errf(err, errlen, "expected a list of values like {11, 15}, got %s", luaL_typename(L, vidx));
    memset(d, 0, sizeof *d);
    snprintf(d->key, sizeof d->key, "%s%s", RC_SEARCH_PARAM_PREFIX, name);
    d->is_random = is_random;
    d->is_int = pd->is_int;
    d->is_string = pd->type != LUA_TNUMBER;
    if (is_random && d->is_string)
        return rc_errf(err, errlen, "%s parameters are searched on a grid (grid = { params = { %s = {...} } })",
                       pd->type == LUA_TSTRING ? "string" : "boolean", name);
    lua_pushnil(L);
    while (lua_next(L, vidx)) {
        int ok = lua_isinteger(L, -2) ||
                 (is_random && lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), "log"));
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return rc_errf(err, errlen, "unknown field%s", is_random ? " (a range is { lo, hi, log = true|false })" : "");
        }
    }
    lua_getfield(L, vidx, "log");
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1)) { lua_pop(L, 1); return rc_errf(err, errlen, "log: expected true or false"); }
        d->log_scale = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, vidx);
    if (is_random ? n != 2 : (n < 1 || n > RC_MAX_SEARCH_VALUES))
        return rc_errf(err, errlen, is_random ? "a random range is { lo, hi }, got %lld values"
                                              : "expected 1 to 32 values, got %lld", (long long)n);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, vidx, i);
        snprintf(path, pathlen, "%s.params.%.60s[%lld]", part, name, (long long)i);
        int t = lua_type(L, -1), bad = t != pd->type;
        if (!bad && t == LUA_TNUMBER) {
            double v = lua_tonumber(L, -1);
            bad = !isfinite(v) || (pd->is_int && (v != floor(v) || fabs(v) > 9007199254740992.0));
            d->values[i - 1] = v;
        } else if (!bad && t == LUA_TSTRING) {
            const char *v = lua_tostring(L, -1);
            if (strlen(v) >= RC_PARAM_STR_MAX || !is_name_safe(v)) {
                lua_pop(L, 1);
                return rc_errf(err, errlen, "'%.40s': a searched string is 1 to %d of [A-Za-z0-9_.-] "
                               "(it names the trial's folder)", v, RC_PARAM_STR_MAX - 1);
            }
            snprintf(d->strs[i - 1], sizeof d->strs[i - 1], "%s", v);
            d->values[i - 1] = (double)(i - 1);
        } else if (!bad) {
            snprintf(d->strs[i - 1], sizeof d->strs[i - 1], "%s", lua_toboolean(L, -1) ? "true" : "false");
            d->values[i - 1] = (double)(i - 1);
        }
        lua_pop(L, 1);
        if (bad) return rc_errf(err, errlen, "expected %s (the default of %s is one)", type_name(pd), name);
    }
    d->n_values = (int)n;
    snprintf(path, pathlen, "%s.params.%.60s", part, name);
    if (is_random) {
        if (!(d->values[0] < d->values[1]))
            return rc_errf(err, errlen, "range needs lo < hi, got { %g, %g }", d->values[0], d->values[1]);
        if (d->log_scale && d->values[0] <= 0)
            return rc_errf(err, errlen, "log = true needs lo > 0, got %g", d->values[0]);
    }
    return 0;
}
