/* pickle.c — the restricted unpickler (pickle.h): a stack machine over the opcodes torch.save
 * and Python's pickle write for plain data, building inert rc_pk values. Allow-listed globals
 * become RC_PK_GLOBAL values whose REDUCE/BUILD this file interprets; everything else stops
 * the load with a message. The opcode semantics follow CPython's Lib/pickle.py (_Unpickler).
 */
#include "pickle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

#define RC_PK_MAX_VALUES   (1u << 24)   /* values per arena */
#define RC_PK_MAX_STACK    (1u << 20)
#define RC_PK_MAX_MEMO     (1u << 22)
#define RC_PK_MAX_ITEMS    (1u << 24)   /* elements of one container */

enum {
    FN_ODICT, FN_REBUILD_V2, FN_REBUILD, FN_PARAM, FN_PARAM_STATE, FN_STORAGE_TYPE, FN_SIZE,
    FN_SET, FN_CODECS, FN_NP_SCALAR, FN_NP_DTYPE, FN_NP_RECON, FN_NP_NDARRAY
};

static const struct { const char *mod, *name; int fn; rc_dtype dt; } globals_ok[] = {
    {"collections", "OrderedDict", FN_ODICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", FN_REBUILD_V2, 0},
    {"torch._utils", "_rebuild_tensor", FN_REBUILD, 0},
    {"torch._utils", "_rebuild_parameter", FN_PARAM, 0},
    {"torch._utils", "_rebuild_parameter_with_state", FN_PARAM_STATE, 0},
    {"torch", "FloatStorage", FN_STORAGE_TYPE, RC_DT_F32},
    {"torch", "DoubleStorage", FN_STORAGE_TYPE, RC_DT_F64},
    {"torch", "HalfStorage", FN_STORAGE_TYPE, RC_DT_F16},
    {"torch", "BFloat16Storage", FN_STORAGE_TYPE, RC_DT_BF16},
    {"torch", "LongStorage", FN_STORAGE_TYPE, RC_DT_I64},
    {"torch", "IntStorage", FN_STORAGE_TYPE, RC_DT_I32},
    {"torch", "ShortStorage", FN_STORAGE_TYPE, RC_DT_I16},
    {"torch", "CharStorage", FN_STORAGE_TYPE, RC_DT_I8},
    {"torch", "ByteStorage", FN_STORAGE_TYPE, RC_DT_U8},
    {"torch", "BoolStorage", FN_STORAGE_TYPE, RC_DT_BOOL},
    {"torch", "Size", FN_SIZE, 0},
    {"builtins", "set", FN_SET, 0}, {"builtins", "frozenset", FN_SET, 0},
    {"__builtin__", "set", FN_SET, 0}, {"__builtin__", "frozenset", FN_SET, 0},
    {"_codecs", "encode", FN_CODECS, 0},
    {"numpy.core.multiarray", "scalar", FN_NP_SCALAR, 0},
    {"numpy._core.multiarray", "scalar", FN_NP_SCALAR, 0},
    {"numpy", "dtype", FN_NP_DTYPE, 0},
    {"numpy.core.multiarray", "_reconstruct", FN_NP_RECON, 0},
    {"numpy._core.multiarray", "_reconstruct", FN_NP_RECON, 0},
    {"numpy", "ndarray", FN_NP_NDARRAY, 0},
};

int rc_dtype_size(rc_dtype t)
{
    static const int sz[RC_DT_N] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    return (unsigned)t < RC_DT_N ? sz[t] : 0;
}

const char *rc_dtype_name(rc_dtype t)
{
    static const char *const nm[RC_DT_N] = {"float32", "float64", "float16", "bfloat16", "int64",
                                            "int32", "int16", "int8", "uint8", "bool"};
    return (unsigned)t < RC_DT_N ? nm[t] : "?";
}

typedef struct {
    rc_pk_arena *A;
    const uint8_t *b;
    size_t len, pos;
    rc_pk **stack;
    size_t sp, stack_cap;
    size_t *marks;             /* stack depths of the open MARKs */
    size_t n_marks, marks_cap;
    rc_pk **memo;
    size_t memo_cap, memo_n;   /* memo_n: entries stored (Python's len(memo)) */
    const char *what;
    char *err;
    size_t errlen;
} pk_state;

static int fail(pk_state *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(pk_state *S, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rc_errf(S->err, S->errlen, "%s: pickle: offset %zu: %s", S->what, S->pos, msg);
}

static rc_pk *val_new(pk_state *S, rc_pk_kind k)
{
    rc_pk_arena *A = S->A;
    if (A->n >= RC_PK_MAX_VALUES) { fail(S, "more than %u values", RC_PK_MAX_VALUES); return NULL; }
    if (A->n == A->cap) {
        size_t nc = A->cap ? 2 * A->cap : 256;
        rc_pk **p = realloc(A->all, nc * sizeof *p);
        if (!p) { fail(S, "out of memory"); return NULL; }
        A->all = p; A->cap = nc;
    }
    rc_pk *v = calloc(1, sizeof *v);
    if (!v) { fail(S, "out of memory"); return NULL; }
    v->kind = k;
    A->all[A->n++] = v;
    return v;
}

static int items_push(pk_state *S, rc_pk *c, rc_pk *v)
{
    if (c->n >= RC_PK_MAX_ITEMS) return fail(S, "a container of more than %u items", RC_PK_MAX_ITEMS);
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 4;
        rc_pk **p = realloc(c->items, nc * sizeof *p);
        if (!p) return fail(S, "out of memory");
        c->items = p; c->cap = nc;
    }
    c->items[c->n++] = v;
    return 0;
}

static int push(pk_state *S, rc_pk *v)
{
    if (!v) return -1;
    if (S->sp >= RC_PK_MAX_STACK) return fail(S, "stack deeper than %u", RC_PK_MAX_STACK);
    if (S->sp == S->stack_cap) {
        size_t nc = S->stack_cap ? 2 * S->stack_cap : 64;
        rc_pk **p = realloc(S->stack, nc * sizeof *p);
        if (!p) return fail(S, "out of memory");
        S->stack = p; S->stack_cap = nc;
    }
    S->stack[S->sp++] = v;
    return 0;
}

/* The stack depth at the last open MARK: values below it are not reachable until POP_MARK. */
static size_t stack_floor(const pk_state *S)
{
    return S->n_marks ? S->marks[S->n_marks - 1] : 0;
}

static rc_pk *pop(pk_state *S)
{
    if (S->sp <= stack_floor(S)) { fail(S, "stack underflow"); return NULL; }
    return S->stack[--S->sp];
}

static rc_pk *top(pk_state *S)
{
    if (S->sp <= stack_floor(S)) { fail(S, "stack underflow"); return NULL; }
    return S->stack[S->sp - 1];
}

/* Pop everything above the last MARK into a new container of kind k. */
static rc_pk *pop_mark(pk_state *S, rc_pk_kind k)
{
    if (!S->n_marks) { fail(S, "no MARK to pop to"); return NULL; }
    size_t m = S->marks[--S->n_marks];
    rc_pk *c = val_new(S, k);
    if (!c) return NULL;
    for (size_t i = m; i < S->sp; i++)
        if (items_push(S, c, S->stack[i]) < 0) return NULL;
    S->sp = m;
    return c;
}

static int need(pk_state *S, size_t n)
{
    if (n > S->len - S->pos) return fail(S, "truncated (needs %zu more bytes, %zu left)", n, S->len - S->pos);
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A text line (protocol 0 arguments), without its '\n'; NUL-terminated copy in buf. */
static int rd_line(pk_state *S, char *buf, size_t cap)
{
    const uint8_t *p = S->b + S->pos, *nl = memchr(p, '\n', S->len - S->pos);
    if (!nl) return fail(S, "truncated text argument");
    size_t n = (size_t)(nl - p);
    if (n >= cap) return fail(S, "text argument of %zu bytes (at most %zu)", n, cap - 1);
    memcpy(buf, p, n);
    buf[n] = 0;
    S->pos += n + 1;
    return 0;
}

static rc_pk *mk_int(pk_state *S, int64_t i)
{
    rc_pk *v = val_new(S, RC_PK_INT);
    if (v) v->i = i;
    return v;
}

static rc_pk *mk_bytes(pk_state *S, rc_pk_kind k, const uint8_t *p, size_t n)
{
    rc_pk *v = val_new(S, k);
    if (!v) return NULL;
    v->s = malloc(n + 1);
    if (!v->s) { fail(S, "out of memory"); return NULL; }
    if (n) memcpy(v->s, p, n);
    v->s[n] = 0;
    v->len = n;
    return v;
}

static rc_pk *rd_counted(pk_state *S, rc_pk_kind k, int lenbytes)
{
    if (need(S, (size_t)lenbytes) < 0) return NULL;
    uint64_t n = rd_le(S->b + S->pos, lenbytes);
    S->pos += (size_t)lenbytes;
    if (need(S, n) < 0) return NULL;
    rc_pk *v = mk_bytes(S, k, S->b + S->pos, (size_t)n);
    S->pos += (size_t)n;
    return v;
}

static int memo_put(pk_state *S, uint64_t idx, rc_pk *v)
{
    if (!v) return -1;
    if (idx >= RC_PK_MAX_MEMO) return fail(S, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= S->memo_cap) {
        size_t nc = S->memo_cap ? S->memo_cap : 64;
        while (nc <= idx) nc *= 2;
        rc_pk **p = realloc(S->memo, nc * sizeof *p);
        if (!p) return fail(S, "out of memory");
        memset(p + S->memo_cap, 0, (nc - S->memo_cap) * sizeof *p);
        S->memo = p; S->memo_cap = nc;
    }
    if (!S->memo[idx]) S->memo_n++;
    S->memo[idx] = v;
    return 0;
}

static int memo_get(pk_state *S, uint64_t idx)
{
    if (idx >= S->memo_cap || !S->memo[idx])
        return fail(S, "memo index %llu was never stored", (unsigned long long)idx);
    return push(S, S->memo[idx]);
}

static int global_lookup(pk_state *S, const char *mod, const char *name)
{
    for (size_t i = 0; i < sizeof globals_ok / sizeof *globals_ok; i++)
        if (!strcmp(globals_ok[i].mod, mod) && !strcmp(globals_ok[i].name, name)) {
            rc_pk *g = val_new(S, RC_PK_GLOBAL);
            if (!g) return -1;
            g->fn = globals_ok[i].fn;
            g->dtype = globals_ok[i].dt;
            g->s = strdup(name);
            if (!g->s) return fail(S, "out of memory");
            return push(S, g);
        }
    return fail(S, "refuses to import %s.%s: only tensors, containers and numbers are read, and "
                "nothing in the file is run (a checkpoint that pickles a Python object, such as a "
                "whole model, cannot be imported: save its state_dict)", mod, name);
}

static int is_int(const rc_pk *v) { return v && (v->kind == RC_PK_INT || v->kind == RC_PK_BOOL); }
static int is_seq(const rc_pk *v) { return v && (v->kind == RC_PK_TUPLE || v->kind == RC_PK_LIST); }

/* Sizes from a tuple of ints into out[]; -1 unless every entry is a non-negative int. */
static int int_tuple(pk_state *S, const rc_pk *t, int64_t *out, int *nd, const char *what)
{
    if (!is_seq(t)) return fail(S, "%s: expected a tuple", what);
    if (t->n > RC_PK_MAX_DIMS) return fail(S, "%s: %zu dimensions (at most %d)", what, t->n, RC_PK_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (!is_int(t->items[i]) || t->items[i]->i < 0 || t->items[i]->i > ((int64_t)1 << 40))
            return fail(S, "%s: entry %zu is not a size", what, i);
        out[i] = t->items[i]->i;
    }
    *nd = (int)t->n;
    return 0;
}

static rc_pk *rebuild_tensor(pk_state *S, rc_pk *args)
{
    if (!args || args->kind != RC_PK_TUPLE || args->n < 4)
        { fail(S, "_rebuild_tensor: expected (storage, offset, size, stride, ...)"); return NULL; }
    rc_pk *st = args->items[0];
    if (!st || st->kind != RC_PK_STORAGE) { fail(S, "_rebuild_tensor: the first argument is not a storage"); return NULL; }
    if (!is_int(args->items[1]) || args->items[1]->i < 0) { fail(S, "_rebuild_tensor: bad storage offset"); return NULL; }
    rc_pk *t = val_new(S, RC_PK_TENSOR);
    if (!t) return NULL;
    int nd1, nd2;
    if (int_tuple(S, args->items[2], t->size, &nd1, "tensor size") < 0 ||
        int_tuple(S, args->items[3], t->stride, &nd2, "tensor stride") < 0) return NULL;
    if (nd1 != nd2) { fail(S, "tensor size has %d dimensions, stride %d", nd1, nd2); return NULL; }
    t->ndim = nd1;
    t->storage = st;
    t->dtype = st->dtype;
    t->offset = args->items[1]->i;
    /* every element inside the storage: offset + sum (size-1)*stride < numel (empty: no element) */
    int64_t numel = 1, last = t->offset;
    for (int d = 0; d < nd1; d++) {
        if (numel > ((int64_t)1 << 40) / (t->size[d] ? t->size[d] : 1)) { fail(S, "tensor too large"); return NULL; }
        numel *= t->size[d];
        int64_t span;
        if (t->size[d] && (__builtin_mul_overflow(t->size[d] - 1, t->stride[d], &span) ||
                           __builtin_add_overflow(last, span, &last)))
            { fail(S, "tensor view out of range"); return NULL; }
    }
    t->numel = numel;
    /* a state dict's tensors are their storages or slices of them: an expanded view (stride 0)
     * with more elements than its storage is refused, so that no copy outgrows the file */
    if (numel > st->numel) {
        fail(S, "a tensor of %lld elements on a storage of %lld (an expanded view) is not read",
             (long long)numel, (long long)st->numel);
        return NULL;
    }
    if (numel && (last >= st->numel || last < 0)) {
        fail(S, "tensor view reaches element %lld of a storage of %lld", (long long)last, (long long)st->numel);
        return NULL;
    }
    return t;
}

static rc_pk *np_scalar(pk_state *S, rc_pk *args)
{
    if (!args || args->kind != RC_PK_TUPLE || args->n != 2 || args->items[0]->kind != RC_PK_DTYPE ||
        args->items[1]->kind != RC_PK_BYTES)
        { fail(S, "numpy scalar: expected (dtype, bytes)"); return NULL; }
    rc_dtype dt = args->items[0]->dtype;
    const uint8_t *p = (const uint8_t *)args->items[1]->s;
    if (args->items[1]->len != (size_t)rc_dtype_size(dt)) { fail(S, "numpy scalar: %zu bytes for a %s", args->items[1]->len, rc_dtype_name(dt)); return NULL; }
    rc_pk *v;
    uint64_t u = rd_le(p, rc_dtype_size(dt));
    switch (dt) {
    case RC_DT_F32: { float f; uint32_t w = (uint32_t)u; memcpy(&f, &w, 4); v = val_new(S, RC_PK_FLOAT); if (v) v->f = f; return v; }
    case RC_DT_F64: { double f; memcpy(&f, &u, 8); v = val_new(S, RC_PK_FLOAT); if (v) v->f = f; return v; }
    case RC_DT_I64: return mk_int(S, (int64_t)u);
    case RC_DT_I32: return mk_int(S, (int32_t)(uint32_t)u);
    case RC_DT_I16: return mk_int(S, (int16_t)(uint16_t)u);
    case RC_DT_I8: return mk_int(S, (int8_t)(uint8_t)u);
    case RC_DT_U8: return mk_int(S, (int64_t)u);
    case RC_DT_BOOL: v = val_new(S, RC_PK_BOOL); if (v) v->i = u != 0; return v;
    default: fail(S, "numpy scalar of dtype %s is not read", rc_dtype_name(dt)); return NULL;
    }
}

static rc_pk *np_dtype(pk_state *S, rc_pk *args)
{
    if (!args || args->kind != RC_PK_TUPLE || args->n < 1 || args->items[0]->kind != RC_PK_STR)
        { fail(S, "numpy dtype: expected (name, ...)"); return NULL; }
    static const struct { const char *n; rc_dtype t; } map[] = {
        {"f4", RC_DT_F32}, {"f8", RC_DT_F64}, {"f2", RC_DT_F16}, {"i8", RC_DT_I64}, {"i4", RC_DT_I32},
        {"i2", RC_DT_I16}, {"i1", RC_DT_I8}, {"u1", RC_DT_U8}, {"b1", RC_DT_BOOL}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(map[i].n, args->items[0]->s)) {
            rc_pk *v = val_new(S, RC_PK_DTYPE);
            if (v) v->dtype = map[i].t;
            return v;
        }
    fail(S, "numpy dtype '%.40s' is not read", args->items[0]->s);
    return NULL;
}

/* UTF-8 text -> latin-1 bytes (every code point must be < 256), as _codecs.encode(s, "latin1"). */
static rc_pk *codecs_encode(pk_state *S, rc_pk *args)
{
    if (!args || args->kind != RC_PK_TUPLE || args->n != 2 || args->items[0]->kind != RC_PK_STR ||
        args->items[1]->kind != RC_PK_STR || (strcmp(args->items[1]->s, "latin1") && strcmp(args->items[1]->s, "latin-1")))
        { fail(S, "_codecs.encode: only (str, 'latin1') is read"); return NULL; }
    const uint8_t *p = (const uint8_t *)args->items[0]->s;
    size_t n = args->items[0]->len, o = 0;
    rc_pk *v = mk_bytes(S, RC_PK_BYTES, p, n);     /* output is never longer than the input */
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) v->s[o++] = (char)p[i];
        else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80 && p[i] <= 0xC3) {
            v->s[o++] = (char)(((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F));
            i++;
        } else { fail(S, "_codecs.encode: a character outside latin-1"); return NULL; }
    }
    v->s[o] = 0;
    v->len = o;
    return v;
}

static int do_reduce(pk_state *S)
{
    rc_pk *args = pop(S), *f = args ? pop(S) : NULL;
    if (!f) return -1;
    if (f->kind != RC_PK_GLOBAL) return fail(S, "REDUCE on a value that is not a known constructor");
    if (!is_seq(args)) return fail(S, "REDUCE %s: arguments are not a tuple", f->s);
    rc_pk *r = NULL;
    switch (f->fn) {
    case FN_ODICT:
        r = val_new(S, RC_PK_DICT);
        if (r && args->n == 1 && is_seq(args->items[0]))
            for (size_t i = 0; i < args->items[0]->n; i++) {
                rc_pk *kv = args->items[0]->items[i];
                if (!is_seq(kv) || kv->n != 2) return fail(S, "OrderedDict: an item is not a pair");
                if (items_push(S, r, kv->items[0]) < 0 || items_push(S, r, kv->items[1]) < 0) return -1;
            }
        else if (r && args->n) return fail(S, "OrderedDict: unexpected arguments");
        break;
    case FN_REBUILD_V2: case FN_REBUILD: r = rebuild_tensor(S, args); break;
    case FN_PARAM: case FN_PARAM_STATE:
        if (args->n < 1 || args->items[0]->kind != RC_PK_TENSOR) return fail(S, "_rebuild_parameter: no tensor");
        r = args->items[0];
        break;
    case FN_SIZE:
        if (args->n != 1 || !is_seq(args->items[0])) return fail(S, "torch.Size: expected one tuple");
        r = args->items[0];
        break;
    case FN_SET:
        r = val_new(S, RC_PK_LIST);
        if (r && args->n == 1 && is_seq(args->items[0]))
            for (size_t i = 0; i < args->items[0]->n; i++)
                if (items_push(S, r, args->items[0]->items[i]) < 0) return -1;
        break;
    case FN_CODECS: r = codecs_encode(S, args); break;
    case FN_NP_SCALAR: r = np_scalar(S, args); break;
    case FN_NP_DTYPE: r = np_dtype(S, args); break;
    case FN_NP_RECON:
        if (args->n < 1 || args->items[0]->kind != RC_PK_GLOBAL || args->items[0]->fn != FN_NP_NDARRAY)
            return fail(S, "numpy _reconstruct: only ndarray is read");
        r = val_new(S, RC_PK_ARRAY);   /* filled by BUILD */
        if (r) r->ndim = -1;
        break;
    default:
        return fail(S, "REDUCE: %s is not callable", f->s);
    }
    return push(S, r);
}

/* BUILD: set the state of the value below. Dicts (OrderedDict's _metadata) and tensors
 * (parameter state) ignore it; numpy dtypes check their byte order; arrays take their data. */
static int do_build(pk_state *S)
{
    rc_pk *st = pop(S), *o = st ? top(S) : NULL;
    if (!o) return -1;
    switch (o->kind) {
    case RC_PK_DICT: case RC_PK_TENSOR: return 0;
    case RC_PK_DTYPE:
        if (is_seq(st) && st->n >= 2 && st->items[1]->kind == RC_PK_STR &&
            strcmp(st->items[1]->s, "<") && strcmp(st->items[1]->s, "|") && strcmp(st->items[1]->s, "="))
            return fail(S, "numpy dtype with byte order '%.4s' (only little-endian is read)", st->items[1]->s);
        return 0;
    case RC_PK_ARRAY: {
        /* (version, shape, dtype, is_fortran, data) */
        if (!is_seq(st) || st->n != 5 || st->items[2]->kind != RC_PK_DTYPE || st->items[4]->kind != RC_PK_BYTES)
            return fail(S, "numpy array: unexpected state (object arrays are not read)");
        if (st->items[3]->kind == RC_PK_BOOL && st->items[3]->i) return fail(S, "numpy array in Fortran order is not read");
        if (int_tuple(S, st->items[1], o->size, &o->ndim, "numpy shape") < 0) return -1;
        o->dtype = st->items[2]->dtype;
        int64_t numel = 1;
        for (int d = 0; d < o->ndim; d++) {
            if (o->size[d] && numel > ((int64_t)1 << 40) / o->size[d]) return fail(S, "numpy array too large");
            numel *= o->size[d];
        }
        if ((uint64_t)numel * (uint64_t)rc_dtype_size(o->dtype) != st->items[4]->len)
            return fail(S, "numpy array: %zu data bytes for %lld elements of %s", st->items[4]->len,
                        (long long)numel, rc_dtype_name(o->dtype));
        o->numel = numel;
        o->s = malloc(st->items[4]->len + 1);
        if (!o->s) return fail(S, "out of memory");
        memcpy(o->s, st->items[4]->s, st->items[4]->len);
        o->len = st->items[4]->len;
        return 0;
    }
    default:
        return fail(S, "BUILD on a value that takes no state");
    }
}

/* torch's persistent ids: ('storage', StorageType, key, location, numel[, view_metadata]). */
static int do_persid(pk_state *S, rc_pk *pid)
{
    if (!pid) return -1;
    if (pid->kind == RC_PK_TUPLE && pid->n >= 1 && pid->items[0]->kind == RC_PK_STR &&
        !strcmp(pid->items[0]->s, "module"))
        return fail(S, "the file pickles Python source of a module (torch.save of a whole model); "
                    "save the model's state_dict instead");
    if (pid->kind != RC_PK_TUPLE || (pid->n != 5 && pid->n != 6) || pid->items[0]->kind != RC_PK_STR ||
        strcmp(pid->items[0]->s, "storage"))
        return fail(S, "a persistent id that is not a torch storage reference");
    rc_pk *ty = pid->items[1], *key = pid->items[2], *numel = pid->items[4];
    if (ty->kind != RC_PK_GLOBAL || ty->fn != FN_STORAGE_TYPE) return fail(S, "storage of an unknown type");
    if (key->kind != RC_PK_STR || !key->len || key->len > 64) return fail(S, "storage key is not a short string");
    for (size_t i = 0; i < key->len; i++)
        if (!((key->s[i] >= '0' && key->s[i] <= '9') || (key->s[i] >= 'a' && key->s[i] <= 'z') ||
              (key->s[i] >= 'A' && key->s[i] <= 'Z') || key->s[i] == '_'))
            return fail(S, "storage key '%.64s' has characters other than letters, digits and _", key->s);
    if (!is_int(numel) || numel->i < 0 || numel->i > ((int64_t)1 << 40)) return fail(S, "storage size is not a count");
    if (pid->n == 6 && pid->items[5]->kind != RC_PK_NONE)
        return fail(S, "storage views (legacy view_metadata) are not read");
    rc_pk *st = val_new(S, RC_PK_STORAGE);
    if (!st) return -1;
    st->s = strdup(key->s);
    if (!st->s) return fail(S, "out of memory");
    st->len = key->len;
    st->dtype = ty->dtype;
    st->numel = numel->i;
    rc_pk_arena *A = S->A;
    if (A->n_storages == A->cap_storages) {
        size_t nc = A->cap_storages ? 2 * A->cap_storages : 16;
        rc_pk **p = realloc(A->storages, nc * sizeof *p);
        if (!p) return fail(S, "out of memory");
        A->storages = p; A->cap_storages = nc;
    }
    A->storages[A->n_storages++] = st;
    return push(S, st);
}

static int set_items(pk_state *S, rc_pk *d, size_t from)
{
    if ((S->sp - from) % 2) return fail(S, "SETITEMS with an odd number of values");
    for (size_t i = from; i < S->sp; i++)
        if (items_push(S, d, S->stack[i]) < 0) return -1;
    S->sp = from;
    return 0;
}

static int run(pk_state *S, rc_pk **out)
{
    char line[256];
    for (;;) {
        if (need(S, 1) < 0) return -1;
        uint8_t op = S->b[S->pos++];
        rc_pk *v;
        switch (op) {
        case 0x80: /* PROTO */
            if (need(S, 1) < 0) return -1;
            if (S->b[S->pos] > 5) return fail(S, "pickle protocol %d (at most 5)", S->b[S->pos]);
            S->pos++;
            break;
        case 0x95: /* FRAME: a length hint only */
            if (need(S, 8) < 0) return -1;
            S->pos += 8;
            break;
        case '.': /* STOP */
            if (S->sp != 1 || S->n_marks) return fail(S, "STOP with %zu values on the stack", S->sp);
            *out = S->stack[0];
            return 0;
        case '(': /* MARK */
            if (S->n_marks == S->marks_cap) {
                size_t nc = S->marks_cap ? 2 * S->marks_cap : 16;
                if (nc > RC_PK_MAX_STACK) return fail(S, "too many open MARKs");
                size_t *p = realloc(S->marks, nc * sizeof *p);
                if (!p) return fail(S, "out of memory");
                S->marks = p; S->marks_cap = nc;
            }
            S->marks[S->n_marks++] = S->sp;
            break;
        case '0': if (!pop(S)) return -1; break;                 /* POP */
        case '1': if (!pop_mark(S, RC_PK_LIST)) return -1; break; /* POP_MARK */
        case '2': if (!(v = top(S)) || push(S, v) < 0) return -1; break; /* DUP */
        case 'N': if (push(S, val_new(S, RC_PK_NONE)) < 0) return -1; break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            if (!(v = val_new(S, RC_PK_BOOL))) return -1;
            v->i = op == 0x88;
            if (push(S, v) < 0) return -1;
            break;
        case 'J': if (need(S, 4) < 0 || push(S, mk_int(S, (int32_t)rd_le(S->b + S->pos, 4))) < 0) return -1; S->pos += 4; break;
        case 'K': if (need(S, 1) < 0 || push(S, mk_int(S, S->b[S->pos])) < 0) return -1; S->pos += 1; break;
        case 'M': if (need(S, 2) < 0 || push(S, mk_int(S, (int64_t)rd_le(S->b + S->pos, 2))) < 0) return -1; S->pos += 2; break;
        case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
            int lb = op == 0x8a ? 1 : 4;
            if (need(S, (size_t)lb) < 0) return -1;
            uint64_t n = rd_le(S->b + S->pos, lb);
            S->pos += (size_t)lb;
            if (need(S, n) < 0) return -1;
            if (n <= 8) {
                uint64_t u = rd_le(S->b + S->pos, (int)n);
                if (n && n < 8 && (S->b[S->pos + n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
                v = mk_int(S, (int64_t)u);
            } else {
                v = mk_bytes(S, RC_PK_BIGINT, S->b + S->pos, (size_t)n);
            }
            S->pos += (size_t)n;
            if (push(S, v) < 0) return -1;
            break;
        }
        case 'I': case 'L': { /* INT, LONG (text): "01"/"00" are True/False in protocol 0 */
            if (rd_line(S, line, sizeof line) < 0) return -1;
            size_t n = strlen(line);
            if (n && line[n - 1] == 'L') line[--n] = 0;
            if (op == 'I' && (!strcmp(line, "01") || !strcmp(line, "00"))) {
                if (!(v = val_new(S, RC_PK_BOOL))) return -1;
                v->i = line[1] == '1';
            } else {
                char *end;
                long long x = strtoll(line, &end, 10);
                if (!n || *end) return fail(S, "bad integer text '%.40s'", line);
                v = mk_int(S, x);
            }
            if (push(S, v) < 0) return -1;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (need(S, 8) < 0) return -1;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = (u << 8) | S->b[S->pos + i];
            S->pos += 8;
            if (!(v = val_new(S, RC_PK_FLOAT))) return -1;
            memcpy(&v->f, &u, 8);
            if (push(S, v) < 0) return -1;
            break;
        }
        case 'F': { /* FLOAT (text) */
            if (rd_line(S, line, sizeof line) < 0) return -1;
            char *end;
            double x = strtod(line, &end);
            if (end == line || *end) return fail(S, "bad float text '%.40s'", line);
            if (!(v = val_new(S, RC_PK_FLOAT))) return -1;
            v->f = x;
            if (push(S, v) < 0) return -1;
            break;
        }
        case 'X': if (push(S, rd_counted(S, RC_PK_STR, 4)) < 0) return -1; break;       /* BINUNICODE */
        case 0x8c: if (push(S, rd_counted(S, RC_PK_STR, 1)) < 0) return -1; break;     /* SHORT_BINUNICODE */
        case 0x8d: if (push(S, rd_counted(S, RC_PK_STR, 8)) < 0) return -1; break;     /* BINUNICODE8 */
        case 'T': if (push(S, rd_counted(S, RC_PK_STR, 4)) < 0) return -1; break;      /* BINSTRING (py2 str) */
        case 'U': if (push(S, rd_counted(S, RC_PK_STR, 1)) < 0) return -1; break;      /* SHORT_BINSTRING */
        case 'B': if (push(S, rd_counted(S, RC_PK_BYTES, 4)) < 0) return -1; break;    /* BINBYTES */
        case 'C': if (push(S, rd_counted(S, RC_PK_BYTES, 1)) < 0) return -1; break;    /* SHORT_BINBYTES */
        case 0x8e: case 0x96: if (push(S, rd_counted(S, RC_PK_BYTES, 8)) < 0) return -1; break; /* BINBYTES8, BYTEARRAY8 */
        case ')': if (push(S, val_new(S, RC_PK_TUPLE)) < 0) return -1; break;
        case ']': if (push(S, val_new(S, RC_PK_LIST)) < 0) return -1; break;
        case '}': if (push(S, val_new(S, RC_PK_DICT)) < 0) return -1; break;
        case 0x8f: if (push(S, val_new(S, RC_PK_LIST)) < 0) return -1; break;         /* EMPTY_SET */
        case 't': if (push(S, pop_mark(S, RC_PK_TUPLE)) < 0) return -1; break;
        case 'l': if (push(S, pop_mark(S, RC_PK_LIST)) < 0) return -1; break;
        case 0x91: if (push(S, pop_mark(S, RC_PK_LIST)) < 0) return -1; break;         /* FROZENSET */
        case 'd': {                                                                    /* DICT */
            if (!S->n_marks) return fail(S, "DICT without MARK");
            size_t m = S->marks[--S->n_marks];
            if (!(v = val_new(S, RC_PK_DICT)) || set_items(S, v, m) < 0 || push(S, v) < 0) return -1;
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            int k = op - 0x84;
            rc_pk *it[3];
            for (int i = k - 1; i >= 0; i--) if (!(it[i] = pop(S))) return -1;
            if (!(v = val_new(S, RC_PK_TUPLE))) return -1;
            for (int i = 0; i < k; i++) if (items_push(S, v, it[i]) < 0) return -1;
            if (push(S, v) < 0) return -1;
            break;
        }
        case 'a': { /* APPEND */
            rc_pk *x = pop(S), *l = x ? top(S) : NULL;
            if (!l) return -1;
            if (l->kind != RC_PK_LIST) return fail(S, "APPEND to a value that is not a list");
            if (items_push(S, l, x) < 0) return -1;
            break;
        }
        case 'e': case 0x90: { /* APPENDS, ADDITEMS */
            if (!S->n_marks) return fail(S, "APPENDS without MARK");
            size_t m = S->marks[--S->n_marks];
            if (m <= stack_floor(S)) return fail(S, "APPENDS with no list below the MARK");
            rc_pk *l = S->stack[m - 1];
            if (l->kind != RC_PK_LIST) return fail(S, "APPENDS to a value that is not a list");
            for (size_t i = m; i < S->sp; i++) if (items_push(S, l, S->stack[i]) < 0) return -1;
            S->sp = m;
            break;
        }
        case 's': { /* SETITEM */
            rc_pk *val = pop(S), *key = val ? pop(S) : NULL, *d = key ? top(S) : NULL;
            if (!d) return -1;
            if (d->kind != RC_PK_DICT) return fail(S, "SETITEM on a value that is not a dict");
            if (items_push(S, d, key) < 0 || items_push(S, d, val) < 0) return -1;
            break;
        }
        case 'u': { /* SETITEMS */
            if (!S->n_marks) return fail(S, "SETITEMS without MARK");
            size_t m = S->marks[--S->n_marks];
            if (m <= stack_floor(S)) return fail(S, "SETITEMS with no dict below the MARK");
            rc_pk *d = S->stack[m - 1];
            if (d->kind != RC_PK_DICT) return fail(S, "SETITEMS on a value that is not a dict");
            if (set_items(S, d, m) < 0) return -1;
            break;
        }
        case 'q': if (need(S, 1) < 0) return -1; if (memo_put(S, S->b[S->pos], top(S)) < 0) return -1; S->pos += 1; break;
        case 'r': if (need(S, 4) < 0) return -1; if (memo_put(S, rd_le(S->b + S->pos, 4), top(S)) < 0) return -1; S->pos += 4; break;
        case 0x94: if (memo_put(S, S->memo_n, top(S)) < 0) return -1; break; /* MEMOIZE: memo[len(memo)] */
        case 'p': { /* PUT (text) */
            if (rd_line(S, line, sizeof line) < 0) return -1;
            char *end;
            unsigned long long x = strtoull(line, &end, 10);
            if (!*line || *end) return fail(S, "bad PUT index");
            if (memo_put(S, x, top(S)) < 0) return -1;
            break;
        }
        case 'h': if (need(S, 1) < 0) return -1; S->pos += 1; if (memo_get(S, S->b[S->pos - 1]) < 0) return -1; break;
        case 'j': if (need(S, 4) < 0) return -1; S->pos += 4; if (memo_get(S, rd_le(S->b + S->pos - 4, 4)) < 0) return -1; break;
        case 'g': { /* GET (text) */
            if (rd_line(S, line, sizeof line) < 0) return -1;
            char *end;
            unsigned long long x = strtoull(line, &end, 10);
            if (!*line || *end) return fail(S, "bad GET index");
            if (memo_get(S, x) < 0) return -1;
            break;
        }
        case 'c': { /* GLOBAL "module\nname\n" */
            char mod[128], name[128];
            if (rd_line(S, mod, sizeof mod) < 0 || rd_line(S, name, sizeof name) < 0) return -1;
            if (global_lookup(S, mod, name) < 0) return -1;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            rc_pk *name = pop(S), *mod = name ? pop(S) : NULL;
            if (!mod) return -1;
            if (mod->kind != RC_PK_STR || name->kind != RC_PK_STR) return fail(S, "STACK_GLOBAL of non-strings");
            if (global_lookup(S, mod->s, name->s) < 0) return -1;
            break;
        }
        case 'R': if (do_reduce(S) < 0) return -1; break;
        case 'b': if (do_build(S) < 0) return -1; break;
        case 'Q': { rc_pk *pid = pop(S); if (do_persid(S, pid) < 0) return -1; break; } /* BINPERSID */
        case 'P': /* PERSID (text) */
            return fail(S, "text persistent ids are not read");
        case 0x81: case 0x92: case 'i': case 'o':
            return fail(S, "opcode 0x%02x builds an object of a class; refused (nothing in the file is run)", op);
        case 0x82: case 0x83: case 0x84:
            return fail(S, "extension-registry opcode 0x%02x refused", op);
        case 'S': case 'V':
            return fail(S, "protocol-0 quoted strings are not read (torch.save writes protocol 2)");
        default:
            return fail(S, "unknown opcode 0x%02x", op);
        }
    }
}

int rc_pk_load(rc_pk_arena *A, const uint8_t *buf, size_t len, size_t *used, rc_pk **out,
               const char *what, char *err, size_t errlen)
{
    pk_state S = { .A = A, .b = buf, .len = len, .what = what ? what : "pickle", .err = err, .errlen = errlen };
    *out = NULL;
    int rc = run(&S, out);
    if (used) *used = S.pos;
    free(S.stack);
    free(S.marks);
    free(S.memo);
    return rc;
}

void rc_pk_arena_free(rc_pk_arena *A)
{
    for (size_t i = 0; i < A->n; i++) {
        free(A->all[i]->s);
        free(A->all[i]->items);
        free(A->all[i]);
    }
    free(A->all);
    free(A->storages);
    memset(A, 0, sizeof *A);
}

rc_pk *rc_pk_dict_get(const rc_pk *d, const char *key)
{
    if (!d || d->kind != RC_PK_DICT) return NULL;
    rc_pk *found = NULL;                  /* the last SETITEM of a key wins, as in Python */
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->items[i]->kind == RC_PK_STR && !strcmp(d->items[i]->s, key)) found = d->items[i + 1];
    return found;
}

int rc_pk_num(const rc_pk *v, double *out)
{
    if (!v) return -1;
    if (v->kind == RC_PK_INT || v->kind == RC_PK_BOOL) { *out = (double)v->i; return 0; }
    if (v->kind == RC_PK_FLOAT) { *out = v->f; return 0; }
    return -1;
}

void rc_pk_shape_text(const int64_t *size, int ndim, char *out, size_t n)
{
    int o = snprintf(out, n, "(");
    for (int d = 0; d < ndim && o > 0 && (size_t)o < n; d++)
        o += snprintf(out + o, n - (size_t)o, "%s%lld", d ? "," : "", (long long)size[d]);
    if (o > 0 && (size_t)o < n) snprintf(out + o, n - (size_t)o, ")");
}

void rc_pk_describe(const rc_pk *v, char *out, size_t n)
{
    if (!v) { snprintf(out, n, "nothing"); return; }
    switch (v->kind) {
    case RC_PK_NONE: snprintf(out, n, "None"); return;
    case RC_PK_BOOL: snprintf(out, n, "%s", v->i ? "True" : "False"); return;
    case RC_PK_INT: snprintf(out, n, "int %lld", (long long)v->i); return;
    case RC_PK_BIGINT: snprintf(out, n, "int of %zu bytes", v->len); return;
    case RC_PK_FLOAT: snprintf(out, n, "float %g", v->f); return;
    case RC_PK_STR: snprintf(out, n, "str '%.60s'", v->s); return;
    case RC_PK_BYTES: snprintf(out, n, "bytes (%zu)", v->len); return;
    case RC_PK_TUPLE: snprintf(out, n, "tuple of %zu", v->n); return;
    case RC_PK_LIST: snprintf(out, n, "list of %zu", v->n); return;
    case RC_PK_DICT: snprintf(out, n, "dict of %zu", v->n / 2); return;
    case RC_PK_GLOBAL: snprintf(out, n, "%s", v->s); return;
    case RC_PK_STORAGE: snprintf(out, n, "storage %s", v->s); return;
    case RC_PK_DTYPE: snprintf(out, n, "dtype %s", rc_dtype_name(v->dtype)); return;
    case RC_PK_TENSOR: case RC_PK_ARRAY: {
        int o = snprintf(out, n, "%s %s ", v->kind == RC_PK_TENSOR ? "tensor" : "array", rc_dtype_name(v->dtype));
        if (o > 0 && (size_t)o < n) rc_pk_shape_text(v->size, v->ndim, out + o, n - (size_t)o);
        return;
    }
    case RC_PK_MARK: snprintf(out, n, "mark"); return;
    }
    snprintf(out, n, "?");
}
