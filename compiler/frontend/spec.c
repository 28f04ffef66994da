/* spec.c — Lua spec -> rc_ir (the only Lua user in retinac; see spec.h).
 *
 * Pipeline: a fresh lua_State with a capped allocator -> open base/string/table/math inside a
 * protected call -> strip everything that reaches outside the sandbox or can run unbounded in C
 * (both in spec_sandbox.c) -> install the constructors (model, conv, dense, ..., relu, ...)
 * -> load the chunk as text
 * ("t" mode) and run it under an instruction-count hook -> walk the returned model into the
 * rc_ir inside a second protected call -> close the state. No Lua value outlives the call.
 *
 * Constructors return opaque userdata ("rc.layer", "rc.model") that Lua code cannot forge or
 * open; each records its kind and the spec line that called it (from lua_getstack in C), so
 * errors can cite the line. All field checking (names, types, ranges, enums, unknown keys,
 * required fields) is one generic walker over the rc_fields() descriptors of compiler/ir.h.
 * Fields are visited in name order, not Lua's table order (which changes from run to run with
 * the hash seed), so the same spec always gives the same message.
 *
 * Sandbox notes (why each removal): load/loadfile/dofile/require/string.dump give code or
 * files; getmetatable/setmetatable/raw* bypass or alter metatables (string metatable, __gc);
 * pcall/xpcall would swallow the limit errors and keep a runaway spec alive; collectgarbage,
 * print and warn act outside the spec; the pattern functions (find/match/gmatch/gsub),
 * table.move and string.pack/unpack can run for a very long time inside one C call where the
 * instruction hook never fires; string.rep is wrapped so that huge repeat counts of empty
 * strings fail fast, table.sort refuses more than RC_SPEC_MAX_SORT elements.
 *
 * Time: besides the instruction count, a watchdog thread arms the hook to fire at the very next
 * instruction once RC_SPEC_MAX_SECONDS (or $RETINAC_SPEC_SECONDS) of wall time have passed (lua_sethook may be called
 * asynchronously), so a loop of expensive C calls (comparisons, string.upper, string.format on
 * strings of tens of MB) stops within one such call of the deadline.
 *
 * Determinism (a spec means one model): math.random is seeded with a constant; pairs and next
 * visit keys in a fixed order (numbers ascending, then strings bytewise, then false, true) instead
 * of Lua's hash order, which depends on a per-state random seed; tostring and string.format's %s
 * show a table or function as its type name without the address; %p is refused. A table with
 * table, function or userdata keys has no fixed order, so pairs over it is an error.
 */
#include "errbuf.h"
#include "spec.h"
#include "spec_layer.h"
#include "spec_params.h"
#include "spec_sandbox.h"
#include "search.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define HOOK_EVERY 1000               /* VM instructions between hook calls */
#define FLATTEN_DEPTH 8               /* nesting of plain layer lists */
#define LAYER_MT RC_SPEC_LAYER_MT
#define MODEL_MT "rc.model"
#define IR_MAGIC "retinac-ir "         /* first bytes of rc_ir_format text */

typedef struct {
    size_t used, cap;
    int hit;                          /* an allocation was refused (an emergency GC may
                                         still have let the spec go on) */
} spec_alloc;

typedef struct {
    const char *file;                 /* name used in messages */
    rc_ir *ir;
    char *err;
    size_t errlen;
    long steps;                       /* VM instructions executed (multiple of HOOK_EVERY) */
    atomic_int timed_out;             /* set by the watchdog at the wall-clock deadline */
    int seconds;                      /* the wall-clock limit */
    int failed;                       /* err holds a walker message */
    spec_alloc mem;
    rc_spec_params params;            /* params {...}: declared, and the caller's overrides */
} spec_ctx;

/* What a layer constructor records (userdata body; the field table is user value 1). */
typedef rc_spec_layer_ud spec_layer;

/* A model: user value 1 = the field table, user value 2 = the name string. */
typedef struct {
    int line;
} spec_model;

static spec_ctx *ctx_of(lua_State *L) { return *(spec_ctx **)lua_getextraspace(L); }

/* ------------------------------------------------------------------------------------------
 * Memory cap and instruction limit
 * ---------------------------------------------------------------------------------------- */

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    spec_alloc *a = ud;
    size_t old = ptr ? osize : 0;     /* with ptr == NULL, osize encodes a type tag */
    if (nsize == 0) {
        free(ptr);
        a->used -= old;
        return NULL;
    }
    if (nsize > old && (nsize - old > a->cap || a->used + (nsize - old) > a->cap)) {
        a->hit = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (ptr && nsize <= old) return ptr;   /* Lua assumes shrinking never fails */
        a->hit = 1;
        return NULL;
    }
    a->used = a->used - old + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    spec_ctx *c = ctx_of(L);
    int late = atomic_load(&c->timed_out);
    if (!late) {
        c->steps += HOOK_EVERY;
        if (c->steps <= RC_SPEC_MAX_INSTRUCTIONS) return;
    }
    int line = 0;
    if (lua_getinfo(L, "l", ar) && ar->currentline > 0) line = ar->currentline;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);     /* keep failing until unwound */
    if (late)
        lua_pushfstring(L, "%s:%d: spec exceeds the time limit (%d s of evaluation): runaway loop?",
                        c->file, line, c->seconds);
    else
        lua_pushfstring(L, "%s:%d: spec exceeds the instruction limit (%d million Lua steps): "
                        "runaway loop?", c->file, line, (int)(RC_SPEC_MAX_INSTRUCTIONS / 1000000));
    lua_error(L);
}

/* The wall-clock watchdog: sleeps until the deadline or until stopped; at the deadline it arms
 * the hook to fire at the next instruction (lua_sethook is safe to call asynchronously). */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, started;
    lua_State *L;
    spec_ctx *c;
} spec_watchdog;

static void *watchdog_main(void *arg)
{
    spec_watchdog *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)w->c->seconds;
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->stop && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    if (!w->stop) {
        atomic_store(&w->c->timed_out, 1);
        lua_sethook(w->L, count_hook, LUA_MASKCOUNT, 1);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The wall-clock limit: RC_SPEC_MAX_SECONDS, or $RETINAC_SPEC_SECONDS when it is 1..3600 (a
 * slow machine, a sanitizer build, or a test that wants the limit short). */
static int spec_seconds(void)
{
    const char *e = getenv("RETINAC_SPEC_SECONDS");
    char *end;
    long v = e && *e ? strtol(e, &end, 10) : 0;
    return e && *e && !*end && v >= 1 && v <= 3600 ? (int)v : RC_SPEC_MAX_SECONDS;
}

static int watchdog_start(spec_watchdog *w, lua_State *L, spec_ctx *c)
{
    memset(w, 0, sizeof *w);
    w->L = L;
    w->c = c;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca)) return -1;
    int bad = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bad = bad || pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (bad) return -1;
    if (pthread_mutex_init(&w->mu, NULL)) { pthread_cond_destroy(&w->cv); return -1; }
    if (pthread_create(&w->thread, NULL, watchdog_main, w)) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    w->started = 1;
    return 0;
}

static void watchdog_stop(spec_watchdog *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = 0;
}

/* ------------------------------------------------------------------------------------------
 * Messages
 * ---------------------------------------------------------------------------------------- */

/* One line: "FILE[:LINE]: [WHAT: ][FIELD: ]message". Returns -1 for `return fail(...)`. */
static int fail(spec_ctx *c, int line, const char *what, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    rc_verrf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char pos[24] = "";
    if (line > 0) snprintf(pos, sizeof pos, ":%d", line);
    if (c->errlen)
        snprintf(c->err, c->errlen, "%s%s: %s%s%s%s%s", c->file, pos,
                 what ? what : "", what ? ": " : "", field ? field : "", field ? ": " : "", msg);
    c->failed = 1;
    return -1;
}

/* Copy a Lua error message into err as one line, with the full file name in front. Lua shortens
 * long chunk names to "...tail"; put the full path back so every message names the file. */
static void lua_message(spec_ctx *c, const char *msg)
{
    char buf[1024];
    if (!msg) msg = "spec raised an error that is not a string";
    const char *rest = msg;
    int have_file = 0;
    size_t fl = strlen(c->file);
    if (strncmp(msg, c->file, fl) == 0 && msg[fl] == ':') {
        have_file = 1;
    } else if (strncmp(msg, "...", 3) == 0) {
        const char *colon = strchr(msg + 3, ':');
        if (colon) {
            size_t sl = (size_t)(colon - (msg + 3));
            if (sl <= fl && strncmp(c->file + fl - sl, msg + 3, sl) == 0) {
                rest = colon;
                have_file = 1;
            }
        }
    }
    if (rest != msg) snprintf(buf, sizeof buf, "%s%s", c->file, rest);
    else if (have_file) snprintf(buf, sizeof buf, "%s", msg);
    else snprintf(buf, sizeof buf, "%s: %s", c->file, msg);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    if (c->errlen) snprintf(c->err, c->errlen, "%s", buf);
}

/* A short description of the value at idx, for "got ..." (strings quoted and clipped). */
static const char *describe(lua_State *L, int idx, char *buf, size_t n)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) snprintf(buf, n, "%lld", (long long)lua_tointeger(L, idx));
        else snprintf(buf, n, "%g", lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        const char *s = lua_tostring(L, idx);
        snprintf(buf, n, "string '%.32s%s'", s, strlen(s) > 32 ? "..." : "");
        for (char *p = buf; *p; p++)
            if ((unsigned char)*p < 0x20) *p = '?';
        break;
    }
    case LUA_TUSERDATA:
        if (luaL_testudata(L, idx, LAYER_MT)) snprintf(buf, n, "a layer");
        else if (luaL_testudata(L, idx, MODEL_MT)) snprintf(buf, n, "a model");
        else snprintf(buf, n, "userdata");
        break;
    default:
        snprintf(buf, n, "%s", lua_typename(L, lua_type(L, idx)));
    }
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32) return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* " (did you mean 'x'?)" for the closest name within edit distance 2 (or that the key
 * abbreviates, as "hist" for "history"), else "" */
static void suggest(const char *key, const char *const *names, int n, char *out, size_t len)
{
    out[0] = 0;
    size_t best = 3, kl = strlen(key);
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(key, names[i]);
        if (d > 2 && kl >= 3 && strncmp(key, names[i], kl) == 0) d = 2;
        if (d < best) {
            best = d;
            snprintf(out, len, " (did you mean '%s'?)", names[i]);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * The generic field walker
 * ---------------------------------------------------------------------------------------- */

/* An integer-valued number that fits in int64 (integers, or floats like 1e3). */
static int get_integer(lua_State *L, int idx, long long *out)
{
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    if (lua_isinteger(L, idx)) {
        *out = (long long)lua_tointeger(L, idx);
        return 1;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return 0;
    *out = (long long)d;
    return 1;
}

#define MAX_KEYS 64                   /* named fields in one table */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The string keys of the table at t in byte order (Lua's own order varies from run to run,
 * and messages must not); *other counts the keys that are not strings. Returns the number of
 * string keys, or -1 if there are more than max. The strings live as long as the table. */
static int sorted_keys(lua_State *L, int t, const char **keys, int max, int *other)
{
    int n = 0;
    *other = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (n == max) {
                lua_pop(L, 1);
                return -1;
            }
            keys[n++] = lua_tostring(L, -1);
        } else {
            (*other)++;
        }
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    return n;
}

static void range_text(const rc_field *f, char *buf, size_t n)
{
    if (f->max >= 1e15) snprintf(buf, n, "must be >= %.15g", f->min);
    else snprintf(buf, n, "must be in [%.15g, %.15g]", f->min, f->max);
}

/* Where a message points: the line and "layer 2 (conv)" / "train" / ... */
typedef struct {
    int line;
    const char *what;
    const char *prefix;               /* field path prefix, e.g. "schedule." */
} spec_where;

static int check_int_value(spec_ctx *c, lua_State *L, int vidx, const rc_field *f,
                           const spec_where *w, const char *path, long long *out)
{
    char got[64], rng[64];
    long long v;
    if (!get_integer(L, vidx, &v))
        return fail(c, w->line, w->what, path, "expected an integer, got %s",
                    describe(L, vidx, got, sizeof got));
    if ((double)v < f->min || (double)v > f->max) {
        range_text(f, rng, sizeof rng);
        return fail(c, w->line, w->what, path, "%s, got %lld", rng, v);
    }
    *out = v;
    return 0;
}

/* Store the value at vidx into field f of the struct at base. */
static int read_field(spec_ctx *c, lua_State *L, int vidx, const rc_field *f, void *base,
                      const spec_where *w)
{
    char path[96], got[64], rng[64];
    snprintf(path, sizeof path, "%s%s", w->prefix ? w->prefix : "", f->name);
    char *p = (char *)base + f->offset;
    long long iv;
    switch (f->type) {
    case RC_F_INT:
        /* period = "full": locally connected (weights shared nowhere), stored as 0 */
        if (lua_type(L, vidx) == LUA_TSTRING && strcmp(f->name, "period") == 0 &&
            strcmp(lua_tostring(L, vidx), "full") == 0 && f->min <= 0) {
            *(int *)p = 0;
            return 0;
        }
        if (check_int_value(c, L, vidx, f, w, path, &iv)) return -1;
        if (iv < -2147483647LL || iv > 2147483647LL)
            return fail(c, w->line, w->what, path, "%lld is too large", iv);
        *(int *)p = (int)iv;
        return 0;
    case RC_F_U64:
        if (!get_integer(L, vidx, &iv) || iv < 0)
            return fail(c, w->line, w->what, path, "expected a non-negative integer, got %s",
                        describe(L, vidx, got, sizeof got));
        if ((double)iv < f->min || (double)iv > f->max) {
            range_text(f, rng, sizeof rng);
            return fail(c, w->line, w->what, path, "%s, got %lld", rng, iv);
        }
        *(uint64_t *)p = (uint64_t)iv;
        return 0;
    case RC_F_NUM: {
        if (lua_type(L, vidx) != LUA_TNUMBER)
            return fail(c, w->line, w->what, path, "expected a number, got %s",
                        describe(L, vidx, got, sizeof got));
        double d = lua_tonumber(L, vidx);
        if (!isfinite(d))
            return fail(c, w->line, w->what, path, "expected a finite number, got %s",
                        isnan(d) ? "NaN (0/0)" : d > 0 ? "inf" : "-inf");
        if (d < f->min || d > f->max) {
            range_text(f, rng, sizeof rng);
            return fail(c, w->line, w->what, path, "%s, got %g", rng, d);
        }
        *(double *)p = d;
        return 0;
    }
    case RC_F_BOOL:
        if (lua_type(L, vidx) != LUA_TBOOLEAN)
            return fail(c, w->line, w->what, path, "expected true or false, got %s",
                        describe(L, vidx, got, sizeof got));
        *(int *)p = lua_toboolean(L, vidx);
        return 0;
    case RC_F_ENUM: {
        char names[256] = "";
        size_t used = 0;
        for (int i = 0; f->enums && f->enums[i]; i++) {
            if (lua_type(L, vidx) == LUA_TSTRING && strcmp(lua_tostring(L, vidx), f->enums[i]) == 0) {
                *(int *)p = i;
                return 0;
            }
            int k = snprintf(names + used, sizeof names - used, "%s\"%s\"", i ? "|" : "",
                             f->enums[i]);
            if (k > 0 && (size_t)k < sizeof names - used) used += (size_t)k;
        }
        return fail(c, w->line, w->what, path, "expected one of %s, got %s", names,
                    describe(L, vidx, got, sizeof got));
    }
    case RC_F_INTLIST: {
        if (lua_type(L, vidx) != LUA_TTABLE)
            return fail(c, w->line, w->what, path, "expected a list of integers like {5, 15}, got %s",
                        describe(L, vidx, got, sizeof got));
        lua_Integer n = (lua_Integer)lua_rawlen(L, vidx);
        if (n > f->max_count)
            return fail(c, w->line, w->what, path, "at most %d values, got %lld", f->max_count,
                        (long long)n);
        int keys = 0;
        lua_pushnil(L);
        while (lua_next(L, vidx)) {
            keys++;
            lua_pop(L, 1);
        }
        if (keys != n)
            return fail(c, w->line, w->what, path, "expected a plain list of integers");
        int *items = (int *)p;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, vidx, i);
            char ipath[128];
            snprintf(ipath, sizeof ipath, "%s[%lld]", path, (long long)i);
            int r = check_int_value(c, L, lua_gettop(L), f, w, ipath, &iv);
            lua_pop(L, 1);
            if (r) return -1;
            items[i - 1] = (int)iv;
        }
        *(int *)((char *)base + f->count_offset) = (int)n;
        return 0;
    }
    }
    return fail(c, w->line, w->what, path, "internal error: unknown field type");
}

/* Walk the table at tidx into base using descriptors f[0..n). Keys listed in `extra` are left
 * for the caller. Afterwards every field the table did not set must hold a valid default: a
 * default outside its range marks a required field. */
static int read_table(spec_ctx *c, lua_State *L, int tidx, const rc_field *f, int n, void *base,
                      const spec_where *w, const char *const *extra, const char *example)
{
    unsigned char set[128] = {0};
    const char *names[160];
    int nn = 0;
    for (int i = 0; i < n && nn < 150; i++) names[nn++] = f[i].name;
    for (int i = 0; extra && extra[i] && nn < 160; i++) names[nn++] = extra[i];

    const char *keys[MAX_KEYS];
    int other, nk = sorted_keys(L, tidx, keys, MAX_KEYS, &other);
    if (nk < 0) return fail(c, w->line, w->what, NULL, "more than %d fields", MAX_KEYS);
    if (other) {
        char got[64] = "?";
        lua_rawgeti(L, tidx, 1);
        if (!lua_isnil(L, -1)) describe(L, -1, got, sizeof got);
        lua_pop(L, 1);
        return fail(c, w->line, w->what, NULL,
                    "unnamed value %s: fields are written name = value%s%s", got,
                    example ? ", e.g. " : "", example ? example : "");
    }
    for (int k = 0; k < nk; k++) {
        const char *key = keys[k];
        int found = -1, is_extra = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(f[i].name, key) == 0) { found = i; break; }
        for (int i = 0; found < 0 && extra && extra[i]; i++)
            if (strcmp(extra[i], key) == 0) is_extra = 1;
        if (found < 0 && !is_extra) {
            char path[96], sug[96];
            snprintf(path, sizeof path, "%s%.60s", w->prefix ? w->prefix : "", key);
            suggest(key, names, nn, sug, sizeof sug);
            return fail(c, w->line, w->what, path, "unknown field%s", sug);
        }
        if (found >= 0) {
            lua_getfield(L, tidx, key);
            if (read_field(c, L, lua_gettop(L), &f[found], base, w)) return -1;
            lua_pop(L, 1);
            if (found < (int)sizeof set) set[found] = 1;
        }
    }
    for (int i = 0; i < n && i < (int)sizeof set; i++) {
        if (set[i]) continue;
        const char *p = (const char *)base + f[i].offset;
        double v;
        if (f[i].type == RC_F_INT) v = *(const int *)p;
        else if (f[i].type == RC_F_NUM) v = *(const double *)p;
        else continue;
        if (!(v >= f[i].min && v <= f[i].max)) {
            char path[96];
            snprintf(path, sizeof path, "%s%s", w->prefix ? w->prefix : "", f[i].name);
            return fail(c, w->line, w->what, path, "missing (required%s%s)",
                        f[i].doc ? ": " : "", f[i].doc ? f[i].doc : "");
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Walking the model
 * ---------------------------------------------------------------------------------------- */

static const char *layer_label(const spec_layer *sl)
{
    return sl->kind == RC_LAYER_ACT ? rc_act_name((rc_act)sl->act)
                                    : rc_layer_kind_name((rc_layer_kind)sl->kind);
}

/* Name of the constructor function at idx, or NULL (used for "relu" written without {}). */
static const char *constructor_name(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TFUNCTION || !lua_iscfunction(L, idx)) return NULL;
    if (lua_getupvalue(L, idx, 3) == NULL) return NULL;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);    /* the string stays alive: the closure holds it */
    return name;
}

static int walk_layer(spec_ctx *c, lua_State *L, int uidx)
{
    rc_ir *ir = c->ir;
    spec_layer *sl = luaL_testudata(L, uidx, LAYER_MT);
    if (sl->kind == RC_LAYER_DEF)        /* a layer defined in Lua: spec_layer.c */
        return rc_spec_def_walk(L, uidx, ir, c->file, c->err, c->errlen) ? (c->failed = 1, -1) : 0;
    char what[64];
    snprintf(what, sizeof what, "layer %d (%s)", ir->n_layers + 1, layer_label(sl));
    if (ir->n_layers >= RC_MAX_LAYERS)
        return fail(c, sl->line, what, NULL, "too many layers (at most %d)", RC_MAX_LAYERS);
    rc_layer *l = &ir->layers[ir->n_layers];
    rc_layer_defaults(l, (rc_layer_kind)sl->kind);
    if (sl->kind == RC_LAYER_ACT) l->act = (rc_act)sl->act;
    l->spec_line = sl->line;

    int n;
    const rc_field *f = rc_fields(RC_SECTION_LAYER, (rc_layer_kind)sl->kind, &n);
    /* the act of an act layer is its constructor's name, not a field */
    rc_field fields[64];
    int m = 0;
    for (int i = 0; i < n && m < 64; i++)
        if (!(sl->kind == RC_LAYER_ACT && strcmp(f[i].name, "act") == 0)) fields[m++] = f[i];
    static const char *const sched_key[] = {"schedule", NULL};
    int has_sched = sl->kind == RC_LAYER_CONV || sl->kind == RC_LAYER_GCCONV ||
                    sl->kind == RC_LAYER_DENSE;
    spec_where w = {sl->line, what, ""};

    lua_getiuservalue(L, uidx, 1);
    int tidx = lua_gettop(L);
    lua_getfield(L, tidx, "schedule");   /* raw: tables here never have metatables */
    int sched_given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (sched_given && !has_sched)
        return fail(c, sl->line, what, "schedule",
                    "schedule hints are allowed on conv, gcconv and dense layers only");
    char example[96];
    if (m > 0) snprintf(example, sizeof example, "%s { %s = ... }", layer_label(sl), fields[0].name);
    else snprintf(example, sizeof example, "%s {}", layer_label(sl));
    if (read_table(c, L, tidx, fields, m, l, &w, has_sched ? sched_key : NULL, example)) return -1;
    lua_getfield(L, tidx, "schedule");
    if (!lua_isnil(L, -1)) {
        char got[64];
        if (!lua_istable(L, -1))
            return fail(c, sl->line, what, "schedule", "expected a table like { tile_h = 4 }, got %s",
                        describe(L, -1, got, sizeof got));
        const rc_field *sf = rc_fields(RC_SECTION_SCHEDULE, RC_LAYER_CONV, &n);
        spec_where sw = {sl->line, what, "schedule."};
        if (read_table(c, L, lua_gettop(L), sf, n, &l->sched, &sw, NULL, "{ tile_h = 4 }"))
            return -1;
    }
    lua_pop(L, 2);
    ir->n_layers++;
    return 0;
}

/* Append the layers of the plain list at tidx (entries: layers, or nested plain lists). */
static int walk_layer_list(spec_ctx *c, lua_State *L, int tidx, int depth, int line)
{
    rc_ir *ir = c->ir;
    lua_Integer n = (lua_Integer)lua_rawlen(L, tidx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, tidx, i);
        int v = lua_gettop(L);
        char what[48], got[64];
        snprintf(what, sizeof what, "layer %d", ir->n_layers + 1);
        if (luaL_testudata(L, v, LAYER_MT)) {
            if (walk_layer(c, L, v)) return -1;
        } else if (lua_type(L, v) == LUA_TTABLE) {
            /* a plain list of layers (e.g. returned by a helper function) is spliced in */
            const char *keys[MAX_KEYS];
            int other, nk = sorted_keys(L, v, keys, MAX_KEYS, &other);
            if (nk != 0 || other != (int)lua_rawlen(L, v))
                return fail(c, line, what, NULL,
                            "expected a layer, got a table with field '%.40s' "
                            "(write e.g. conv { ... }, not { ... })", nk > 0 ? keys[0] : "?");
            if (depth >= FLATTEN_DEPTH)
                return fail(c, line, what, NULL, "layer lists nested too deeply");
            if (walk_layer_list(c, L, v, depth + 1, line)) return -1;
        } else {
            const char *ctor = constructor_name(L, v);
            if (ctor)
                return fail(c, line, what, NULL, "'%s' needs a field table: write %s {}", ctor,
                            ctor);
            return fail(c, line, what, NULL, "expected a layer such as conv { ... }, got %s",
                        describe(L, v, got, sizeof got));
        }
        lua_pop(L, 1);
    }
    /* integer keys beyond the border = a nil hole in the list */
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
        if (lua_isinteger(L, -2)) count++;
        lua_pop(L, 1);
    }
    if (count != n)
        return fail(c, line, "model", NULL, "layer list has a hole (a nil entry) after layer %d",
                    ir->n_layers);
    return 0;
}

static int cmp_dim(const void *a, const void *b)
{
    const rc_search_dim *x = a, *y = b;
    if (x->is_random != y->is_random) return x->is_random - y->is_random;
    return strcmp(x->key, y->key);
}

/* grid|random = { params = { k1 = {11, 15, 21}, norm = {"unit", "channel"} } }: dims
 * "param.NAME" over the parameters the spec declared (spec_params.c checks the values). */
static int walk_search_params(spec_ctx *c, lua_State *L, int pidx, int is_random, int line,
                              int *n_random)
{
    rc_search *s = &c->ir->search;
    const char *part = is_random ? "random.params" : "grid.params";
    const char *names[MAX_KEYS];
    int other, n = lua_istable(L, pidx) ? sorted_keys(L, pidx, names, MAX_KEYS, &other) : -1;
    if (n < 0 || other)
        return fail(c, line, "search", part, "write params = { name = { values... } }");
    for (int i = 0; i < n; i++) {
        char path[160], m[300];
        if (s->n_dims >= RC_MAX_SEARCH)
            return fail(c, line, "search", part, "at most %d searched fields", RC_MAX_SEARCH);
        lua_getfield(L, pidx, names[i]);
        rc_search_dim *d = &s->dims[s->n_dims];
        if (rc_spec_params_search_dim(L, lua_gettop(L), &c->params, names[i], is_random, d, path,
                                      sizeof path, m, sizeof m) < 0)
            return fail(c, line, "search", path, "%s", m);
        for (int e = 0; e < s->n_dims; e++)
            if (!strcmp(s->dims[e].key, d->key))
                return fail(c, line, "search", path, "'%s' is searched twice", names[i]);
        *n_random += is_random;
        s->n_dims++;
        lua_pop(L, 1);
    }
    return 0;
}

/* search = { grid = { lr = {1e-3, 1e-2} }, random = { trials = 20, seed = 1,
 *            lr = { 1e-4, 1e-2, log = true } } } */
static int walk_search(spec_ctx *c, lua_State *L, int sidx, int line)
{
    rc_search *s = &c->ir->search;
    int ntrain;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &ntrain);
    const char *tnames[128];
    int ntn = 0;
    for (int i = 0; i < ntrain && ntn < 128; i++)
        if (tf[i].type == RC_F_INT || tf[i].type == RC_F_NUM || tf[i].type == RC_F_U64)
            tnames[ntn++] = tf[i].name;
    int trials_set = 0, n_random = 0;
    char got[64], path[128];

    const char *parts_k[MAX_KEYS], *dk[MAX_KEYS];
    int other, np = sorted_keys(L, sidx, parts_k, MAX_KEYS, &other);
    if (np < 0 || other)
        return fail(c, line, "search", NULL, "write search = { grid = {...}, random = {...} }");
    for (int pi = 0; pi < np; pi++) {
        const char *part = parts_k[pi];
        lua_getfield(L, sidx, part);
        int vidx = lua_gettop(L);
        int is_random;
        if (part && strcmp(part, "grid") == 0) is_random = 0;
        else if (part && strcmp(part, "random") == 0) is_random = 1;
        else {
            static const char *const parts[] = {"grid", "random"};
            char sug[64] = "";
            suggest(part, parts, 2, sug, sizeof sug);
            return fail(c, line, "search", part,
                        "unknown field%s (search has grid = {...} and random = {...})", sug);
        }
        if (!lua_istable(L, vidx))
            return fail(c, line, "search", part, "expected a table, got %s",
                        describe(L, vidx, got, sizeof got));
        int nd = sorted_keys(L, vidx, dk, MAX_KEYS, &other);
        if (nd < 0 || other)
            return fail(c, line, "search", part, "entries are written key = { values... }");
        for (int ki = 0; ki < nd; ki++) {
            const char *key = dk[ki];
            lua_getfield(L, vidx, key);
            int di = lua_gettop(L);
            snprintf(path, sizeof path, "%s.%.60s", part, key);
            if (is_random && strcmp(key, "trials") == 0) {
                rc_field ft = {"trials", RC_F_INT, 0, 1, 1e6, NULL, 0, 0, NULL, 0};
                spec_where w = {line, "search", "random."};
                if (read_field(c, L, di, &ft, &s->trials, &w)) return -1;
                trials_set = 1;
                lua_pop(L, 1);
                continue;
            }
            if (strcmp(key, "params") == 0) {      /* the spec's own parameters */
                if (walk_search_params(c, L, di, is_random, line, &n_random)) return -1;
                lua_pop(L, 1);
                continue;
            }
            if (is_random && strcmp(key, "seed") == 0) {
                rc_field fs = {"seed", RC_F_U64, 0, 0, 9.2e18, NULL, 0, 0, NULL, 0};
                spec_where w = {line, "search", "random."};
                if (read_field(c, L, di, &fs, &s->seed, &w)) return -1;
                lua_pop(L, 1);
                continue;
            }
            const rc_field *f = NULL;
            for (int i = 0; i < ntrain; i++)
                if (strcmp(tf[i].name, key) == 0) f = &tf[i];
            if (!f) {
                char sug[96];
                suggest(key, tnames, ntn, sug, sizeof sug);
                return fail(c, line, "search", path, "not a train field%s", sug);
            }
            if (f->type != RC_F_INT && f->type != RC_F_NUM && f->type != RC_F_U64)
                return fail(c, line, "search", path, "only numeric train fields can be searched");
            for (int i = 0; i < s->n_dims; i++)
                if (strcmp(s->dims[i].key, key) == 0)
                    return fail(c, line, "search", path, "'%s' is searched twice", key);
            if (s->n_dims >= RC_MAX_SEARCH)
                return fail(c, line, "search", path, "at most %d searched fields", RC_MAX_SEARCH);
            if (!lua_istable(L, di))
                return fail(c, line, "search", path, "expected a list of values like {1e-3, 1e-2}, "
                            "got %s", describe(L, di, got, sizeof got));
            rc_search_dim *d = &s->dims[s->n_dims];
            memset(d, 0, sizeof *d);
            snprintf(d->key, sizeof d->key, "%s", key);
            d->is_random = is_random;
            lua_Integer n = (lua_Integer)lua_rawlen(L, di);
            /* only the list and (random) log = bool */
            lua_pushnil(L);
            while (lua_next(L, di)) {
                int ok = lua_isinteger(L, -2) ||
                         (is_random && lua_type(L, -2) == LUA_TSTRING &&
                          strcmp(lua_tostring(L, -2), "log") == 0);
                if (!ok) {
                    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
                    return fail(c, line, "search", path, "unknown field '%.40s'%s", k,
                                is_random ? " (a range is { lo, hi, log = true|false })" : "");
                }
                lua_pop(L, 1);
            }
            lua_getfield(L, di, "log");
            if (!lua_isnil(L, -1)) {
                if (!lua_isboolean(L, -1))
                    return fail(c, line, "search", path, "log: expected true or false, got %s",
                                describe(L, -1, got, sizeof got));
                d->log_scale = lua_toboolean(L, -1);
            }
            lua_pop(L, 1);
            if (is_random ? n != 2 : (n < 1 || n > RC_MAX_SEARCH_VALUES))
                return fail(c, line, "search", path, is_random
                            ? "a random range is { lo, hi }, got %lld values"
                            : "expected 1 to 32 values, got %lld", (long long)n);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, di, i);
                char ipath[160];
                snprintf(ipath, sizeof ipath, "%s[%lld]", path, (long long)i);
                double v;
                long long iv;
                if (f->type == RC_F_NUM) {
                    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(lua_tonumber(L, -1)))
                        return fail(c, line, "search", ipath, "expected a finite number, got %s",
                                    describe(L, -1, got, sizeof got));
                    v = lua_tonumber(L, -1);
                } else {
                    if (!get_integer(L, -1, &iv))
                        return fail(c, line, "search", ipath, "expected an integer, got %s",
                                    describe(L, -1, got, sizeof got));
                    v = (double)iv;
                }
                if (v < f->min || v > f->max) {
                    char rng[64];
                    range_text(f, rng, sizeof rng);
                    return fail(c, line, "search", ipath, "%s, got %g", rng, v);
                }
                d->values[i - 1] = v;
                lua_pop(L, 1);
            }
            d->n_values = (int)n;
            if (is_random) {
                if (!(d->values[0] < d->values[1]))
                    return fail(c, line, "search", path, "range needs lo < hi, got { %g, %g }",
                                d->values[0], d->values[1]);
                if (d->log_scale && d->values[0] <= 0)
                    return fail(c, line, "search", path, "log = true needs lo > 0, got %g",
                                d->values[0]);
                n_random++;
            }
            s->n_dims++;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (n_random > 0 && !trials_set)
        return fail(c, line, "search", "random.trials", "missing (required with random ranges)");
    if (n_random == 0 && trials_set)
        return fail(c, line, "search", "random", "trials given but no ranges "
                    "(add e.g. lr = { 1e-4, 1e-2, log = true })");
    /* canonical order: grid dims then random dims, each by key (Lua's key order is arbitrary) */
    qsort(s->dims, (size_t)s->n_dims, sizeof s->dims[0], cmp_dim);
    /* and every rule `retinac search` applies (values listed twice, the trial count), so that
     * `retinac check` accepts exactly the searches that run */
    char m[300];
    if (rc_search_check(s, m, sizeof m) < 0)
        return fail(c, line, "search", NULL, "%s", strncmp(m, "search: ", 8) ? m : m + 8);
    return 0;
}

/* Walk the model userdata at index 1 into ctx->ir; -1 with ctx->err set on failure. */
static int walk_model_table(spec_ctx *c, lua_State *L)
{
    rc_ir *ir = c->ir;
    spec_model *m = luaL_checkudata(L, 1, MODEL_MT);
    int line = m->line;
    char got[64];

    lua_getiuservalue(L, 1, 2);
    snprintf(ir->name, sizeof ir->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getiuservalue(L, 1, 1);
    int t = lua_gettop(L);

    static const char *const model_keys[] = {"input", "train", "schedule", "search"};
    const char *keys[MAX_KEYS];
    int other, nk = sorted_keys(L, t, keys, MAX_KEYS, &other);
    if (nk < 0) return fail(c, line, "model", NULL, "more than %d named fields", MAX_KEYS);
    for (int k = 0; k < nk; k++) {
        int ok = 0;
        for (int i = 0; i < 4; i++) ok |= strcmp(keys[k], model_keys[i]) == 0;
        if (!ok) {
            char sug[96];
            suggest(keys[k], model_keys, 4, sug, sizeof sug);
            return fail(c, line, "model", keys[k], "unknown field%s (a model has input, train, "
                        "schedule, search and its layers)", sug);
        }
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING && !lua_isinteger(L, -1)) {
            const char *tn = lua_typename(L, lua_type(L, -1));
            lua_pop(L, 1);
            return fail(c, line, "model", NULL, "unexpected key of type %s", tn);
        }
    }

    int n;
    const rc_field *f;
    lua_getfield(L, t, "input");
    if (lua_isnil(L, -1))
        return fail(c, line, "model", "input", "missing (e.g. input = { history = 40, "
                    "height = 50, width = 50 })");
    if (!lua_istable(L, -1))
        return fail(c, line, "model", "input", "expected a table, got %s",
                    describe(L, -1, got, sizeof got));
    f = rc_fields(RC_SECTION_INPUT, RC_LAYER_CONV, &n);
    spec_where wi = {line, "input", ""};
    if (read_table(c, L, lua_gettop(L), f, n, ir, &wi, NULL, "input = { history = 40 }")) return -1;
    lua_pop(L, 1);

    lua_getfield(L, t, "schedule");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return fail(c, line, "model", "schedule", "expected a table, got %s",
                        describe(L, -1, got, sizeof got));
        f = rc_fields(RC_SECTION_SCHEDULE, RC_LAYER_CONV, &n);
        spec_where ws = {line, "schedule", ""};
        if (read_table(c, L, lua_gettop(L), f, n, &ir->sched, &ws, NULL, "{ threads = 2 }"))
            return -1;
    }
    lua_pop(L, 1);

    lua_getfield(L, t, "train");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return fail(c, line, "model", "train", "expected a table, got %s",
                        describe(L, -1, got, sizeof got));
        f = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &n);
        spec_where wt = {line, "train", ""};
        if (read_table(c, L, lua_gettop(L), f, n, &ir->train, &wt, NULL, "{ lr = 5e-3 }"))
            return -1;
        char m[300];
        if (rc_train_check(&ir->train, m, sizeof m) < 0) return fail(c, line, "train", NULL, "%s", m);
    }
    lua_pop(L, 1);

    lua_getfield(L, t, "search");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return fail(c, line, "model", "search", "expected a table, got %s",
                        describe(L, -1, got, sizeof got));
        if (walk_search(c, L, lua_gettop(L), line)) return -1;
    }
    lua_pop(L, 1);

    ir->n_layers = 0;
    if (walk_layer_list(c, L, t, 0, line)) return -1;
    if (ir->n_layers == 0)
        return fail(c, line, "model", NULL, "no layers (list them after input, e.g. "
                    "conv { channels = 8, kernel = 15 }, relu {}, ...)");
    return 0;
}

/* protected entry: lua_pcall(walk_model, model) */
static int walk_model(lua_State *L)
{
    walk_model_table(ctx_of(L), L);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Constructors visible to the spec
 * ---------------------------------------------------------------------------------------- */

static int caller_line(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline > 0)
        return ar.currentline;
    return 0;
}

/* upvalues: 1 kind, 2 act, 3 name */
static int l_layer(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(3));
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "%s: expected one field table: write %s { ... }", name, name);
    spec_layer *sl = lua_newuserdatauv(L, sizeof *sl, 1);
    sl->kind = (int)lua_tointeger(L, lua_upvalueindex(1));
    sl->act = (int)lua_tointeger(L, lua_upvalueindex(2));
    sl->line = caller_line(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, LAYER_MT);
    return 1;
}

/* model "name" { ... }: upvalue 1 = name, 2 = line of the model call */
static int l_model_body(lua_State *L)
{
    if (lua_gettop(L) != 1 || !lua_istable(L, 1))
        return luaL_error(L, "model: write model \"name\" { input = {...}, layers... }");
    spec_model *m = lua_newuserdatauv(L, sizeof *m, 2);
    m->line = (int)lua_tointeger(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setiuservalue(L, -2, 2);
    luaL_setmetatable(L, MODEL_MT);
    return 1;
}

static int l_model(lua_State *L)
{
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "model: write model \"name\" { ... } (the name comes first)");
    size_t len;
    const char *name = lua_tolstring(L, 1, &len);
    if (len == 0 || len >= RC_NAME_MAX)
        return luaL_error(L, "model: name must have 1 to %d characters", RC_NAME_MAX - 1);
    if (!rc_ir_name_ok(name, len))
        return luaL_error(L, "model: name '%s': use letters, digits, '_' and '-' "
                          "(it names generated/<model>/)", name);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, caller_line(L));
    lua_pushcclosure(L, l_model_body, 2);
    return 1;
}

/* __index of _G: reading an undefined global is an error that names it */
static int l_undefined(lua_State *L)
{
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L, "undefined name '%s' (layers: conv dense batchnorm noise dropout gcconv "
                      "relu softplus exp abs square requ sigmoid tanh identity; libraries: string "
                      "table math)", k);
}

/* protected: open the sandboxed libraries and the constructors */
static int open_sandbox(lua_State *L)
{
    rc_spec_sandbox_libs(L);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);

    luaL_newmetatable(L, LAYER_MT);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    luaL_newmetatable(L, MODEL_MT);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    for (int k = 0; k < RC_LAYER_DEF; k++) {      /* defined layers: rc_spec_layer_open */
        int nacts = k == RC_LAYER_ACT ? RC_ACT_COUNT : 1;
        for (int a = 0; a < nacts; a++) {
            const char *name = k == RC_LAYER_ACT ? rc_act_name((rc_act)a)
                                                 : rc_layer_kind_name((rc_layer_kind)k);
            lua_pushinteger(L, k);
            lua_pushinteger(L, a);
            lua_pushstring(L, name);
            lua_pushcclosure(L, l_layer, 3);
            lua_setfield(L, g, name);
        }
    }
    lua_pushcfunction(L, l_model);
    lua_setfield(L, g, "model");

    lua_newtable(L);
    lua_pushcfunction(L, l_undefined);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, g);
    lua_pop(L, 1);
    rc_spec_params_open(L, &ctx_of(L)->params);
    rc_spec_layer_open(L);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------------------------- */

static int load_buffer(const char *file, const char *text, size_t len, const rc_spec_override *ov,
                       int n_ov, rc_ir *ir, char *err, size_t errlen)
{
    spec_ctx c;
    memset(&c, 0, sizeof c);
    c.params.ov = ov;
    c.params.n_ov = n_ov;
    c.file = file;
    c.ir = ir;
    c.err = err;
    c.errlen = errlen;
    c.mem.cap = RC_SPEC_MAX_MEMORY;
    c.seconds = spec_seconds();
    if (errlen) err[0] = 0;
    rc_ir_defaults(ir);
    /* fields added after IR format 1 default to their old meaning in IR text (ir.h); a spec
     * gets the better behaviour unless it asks for the reference's */
    ir->train.output_init = RC_OUTPUT_INIT_MEAN_RATE;
    ir->train.bn_stats = RC_BN_STATS_PRECISE;
    ir->train.output_lr = RC_OUTPUT_LR_DEFAULT;

    lua_State *L = lua_newstate(sandbox_alloc, &c.mem);
    if (!L) {
        fail(&c, 0, NULL, NULL, "cannot create the Lua state (out of memory)");
        return -1;
    }
    *(spec_ctx **)lua_getextraspace(L) = &c;

    int rc = -1;
    lua_pushcfunction(L, open_sandbox);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fail(&c, 0, NULL, NULL, "cannot set up the spec sandbox: %s",
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "out of memory");
        goto done;
    }

    char chunkname[1100];
    snprintf(chunkname, sizeof chunkname, "@%s", file);
    int st = luaL_loadbufferx(L, text, len, chunkname, "t");
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM) fail(&c, 0, NULL, NULL, "spec exceeds the memory limit (%d MiB)",
                                   (int)(RC_SPEC_MAX_MEMORY >> 20));
        else lua_message(&c, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
        goto done;
    }
    spec_watchdog wd;
    if (watchdog_start(&wd, L, &c)) {
        fail(&c, 0, NULL, NULL, "cannot start the spec's time limit (pthread)");
        goto done;
    }
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    st = lua_pcall(L, 0, 1, 0);
    int walk_st = LUA_OK;     /* the walk runs defined layers' Lua code: under the same limits */
    if (st == LUA_OK && luaL_testudata(L, -1, MODEL_MT)) {
        lua_pushcfunction(L, walk_model);
        lua_pushvalue(L, -2);
        walk_st = lua_pcall(L, 1, 0, 0);
        if (walk_st != LUA_OK) lua_remove(L, -2);     /* the error on top, for the message */
    }
    watchdog_stop(&wd);
    lua_sethook(L, NULL, 0, 0);
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM)
            fail(&c, 0, NULL, NULL, "spec exceeds the memory limit (%d MiB)",
                 (int)(RC_SPEC_MAX_MEMORY >> 20));
        else lua_message(&c, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
        goto done;
    }
    if (walk_st == LUA_OK && !luaL_testudata(L, -1, MODEL_MT)) {
        char got[64];
        fail(&c, 0, NULL, NULL, "the spec must end with  return model \"name\" { ... }  "
             "(it returned %s)", lua_isnil(L, -1) ? "nothing" : describe(L, -1, got, sizeof got));
        goto done;
    }
    st = walk_st;
    if (st != LUA_OK) {
        if (!c.failed) {
            if (st == LUA_ERRMEM) fail(&c, 0, NULL, NULL, "spec exceeds the memory limit (%d MiB)",
                                       (int)(RC_SPEC_MAX_MEMORY >> 20));
            else lua_message(&c, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
        }
        goto done;
    }
    if (!c.failed) {
        char m[512];
        rc = rc_spec_params_finish(&c.params, m, sizeof m) < 0 ? fail(&c, 0, NULL, NULL, "%s", m) : 0;
    }
done:
    lua_close(L);
    return rc;
}

int rc_spec_load_string(const char *chunkname, const char *text, rc_ir *ir, char *err,
                        size_t errlen)
{
    return load_buffer(chunkname ? chunkname : "=spec", text, strlen(text), NULL, 0, ir, err, errlen);
}

/* Read a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. */
static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    if (n > max) {
        free(buf);
        snprintf(err, errlen, "%s: file larger than %zu bytes: not a spec", path, max);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int rc_spec_load(const char *path, rc_ir *ir, char *err, size_t errlen)
{
    size_t len;
    char *text = read_file(path, RC_SPEC_MAX_FILE, &len, err, errlen);
    if (!text) return -1;
    int rc = load_buffer(path, text, len, NULL, 0, ir, err, errlen);
    free(text);
    return rc;
}

int rc_spec_load_any(const char *path, rc_ir *ir, char *err, size_t errlen)
{
    return rc_spec_load_params(path, NULL, 0, ir, err, errlen);
}

int rc_spec_load_params(const char *path, const rc_spec_override *ov, int n_ov, rc_ir *ir,
                        char *err, size_t errlen)
{
    size_t len;
    char *text = read_file(path, 16u << 20, &len, err, errlen);
    if (!text) return -1;
    int rc;
    if (strncmp(text, IR_MAGIC, strlen(IR_MAGIC)) == 0) {
        rc_ir_defaults(ir);
        rc = rc_ir_parse(ir, text, path, err, errlen);
        if (rc == 0 && n_ov > 0)
            rc = rc_errf(err, errlen, "%s: --param %s: a canonical IR file is one concrete model and "
                         "takes no parameters (pass the Lua spec)", path, ov[0].name);
    } else if (len > RC_SPEC_MAX_FILE) {
        snprintf(err, errlen, "%s: file larger than %u bytes: not a spec", path, RC_SPEC_MAX_FILE);
        rc = -1;
    } else {
        rc = load_buffer(path, text, len, ov, n_ov, ir, err, errlen);
    }
    free(text);
    return rc;
}

/* "FILE: layer N (...)" from rc_ir_infer -> "FILE:LINE: layer N (...)" using the layer's line. */
static void add_line(const char *path, const rc_ir *ir, char *err, size_t errlen)
{
    size_t fl = strlen(path);
    if (strncmp(err, path, fl) != 0 || strncmp(err + fl, ": layer ", 8) != 0) return;
    int n = atoi(err + fl + 8);
    if (n < 1 || n > ir->n_layers || ir->layers[n - 1].spec_line <= 0) return;
    size_t len = strlen(err) + 1;
    char *rest = malloc(len);
    if (!rest) return;
    memcpy(rest, err + fl, len - fl);
    snprintf(err, errlen, "%s:%d%s", path, ir->layers[n - 1].spec_line, rest);
    free(rest);
}

int rc_spec_check(const char *path, int cells, rc_ir *ir, char *err, size_t errlen)
{
    return rc_spec_check_params(path, cells, NULL, 0, ir, err, errlen);
}

int rc_spec_check_params(const char *path, int cells, const rc_spec_override *ov, int n_ov,
                         rc_ir *ir, char *err, size_t errlen)
{
    if (rc_spec_load_params(path, ov, n_ov, ir, err, errlen)) return -1;
    if (rc_ir_infer(ir, cells, path, err, errlen) == 0) return 0;
    add_line(path, ir, err, errlen);
    return -1;
}
