/* pickle.h — a restricted reader of Python pickles: the subset that torch.save writes for a
 * checkpoint dict, turned into a tree of inert values. Nothing in the file is executed.
 *
 * What it reads: protocols 0-5 opcodes for None, bools, ints (up to 64 bits; wider LONGs are
 * kept as their little-endian bytes), floats, str, bytes, tuples, lists, dicts, sets (as lists),
 * the memo, marks, and persistent ids (torch's storage references). GLOBAL / STACK_GLOBAL is
 * accepted only for an allow-list of constructors, each interpreted here in C, never looked up:
 *   collections.OrderedDict                       -> dict
 *   torch._utils._rebuild_tensor(_v2), _rebuild_parameter(_with_state) -> tensor (a view on a storage)
 *   torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage -> a storage dtype
 *   torch.Size, builtins/__builtin__ set/frozenset -> tuple / list
 *   _codecs.encode(str, "latin1")                 -> bytes (protocol 2's spelling of bytes)
 *   numpy scalar / dtype / ndarray (_reconstruct) -> number / dtype / array (little-endian only)
 * Any other global ("os.system", a model class, ...) is refused with a message naming it: a
 * file that pickles an object rather than tensors and plain data is not a checkpoint we read.
 *
 * Invariants: every read is bounds-checked against the buffer; sizes are capped (RC_PK_MAX_*),
 * so a hostile file costs at most a few times its own size in memory. Values live in an arena
 * freed at once; the memo may make the tree a graph (even cyclic), so callers walk it with
 * bounded depth (rc_pk_dict_get looks one level down only).
 * Errors: -1 with one line "WHAT: pickle: offset N: what" in err.
 */
#ifndef RC_PICKLE_H
#define RC_PICKLE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RC_PK_NONE, RC_PK_BOOL, RC_PK_INT, RC_PK_BIGINT, RC_PK_FLOAT, RC_PK_STR, RC_PK_BYTES,
    RC_PK_TUPLE, RC_PK_LIST, RC_PK_DICT,
    RC_PK_GLOBAL,   /* an allow-listed constructor (fn) */
    RC_PK_STORAGE,  /* a persistent id: torch storage (key, dtype, numel) */
    RC_PK_TENSOR,   /* view on a storage: offset, size[], stride[] */
    RC_PK_DTYPE,    /* numpy dtype */
    RC_PK_ARRAY,    /* numpy ndarray: dtype, size[], raw bytes (s, len) */
    RC_PK_MARK      /* internal */
} rc_pk_kind;

typedef enum {
    RC_DT_F32, RC_DT_F64, RC_DT_F16, RC_DT_BF16, RC_DT_I64, RC_DT_I32, RC_DT_I16, RC_DT_I8,
    RC_DT_U8, RC_DT_BOOL, RC_DT_N
} rc_dtype;

#define RC_PK_MAX_DIMS 8

typedef struct rc_pk rc_pk;
struct rc_pk {
    rc_pk_kind kind;
    int64_t i;                 /* BOOL, INT */
    double f;                  /* FLOAT */
    char *s;                   /* STR (UTF-8, NUL-terminated), BYTES, BIGINT, ARRAY data, STORAGE key */
    size_t len;
    rc_pk **items;             /* TUPLE, LIST; DICT: 2n entries (key, value) in insertion order */
    size_t n, cap;
    int fn;                    /* GLOBAL: which constructor (pickle.c) */
    rc_dtype dtype;            /* STORAGE, TENSOR (its storage's), DTYPE, ARRAY */
    int64_t numel;             /* STORAGE: elements; TENSOR/ARRAY: product of size */
    int64_t offset;            /* TENSOR: storage offset in elements */
    int ndim;                  /* TENSOR, ARRAY */
    int64_t size[RC_PK_MAX_DIMS], stride[RC_PK_MAX_DIMS];
    rc_pk *storage;            /* TENSOR */
};

typedef struct {
    rc_pk **all;               /* every value, for rc_pk_arena_free */
    size_t n, cap;
    rc_pk **storages;          /* every persistent id seen, in order */
    size_t n_storages, cap_storages;
} rc_pk_arena;

/* Unpickle one pickle from buf[0..len) (it ends at its STOP opcode; *used gets the bytes
 * consumed, so a stream of pickles can be read in turn). what names the file in messages. */
int rc_pk_load(rc_pk_arena *A, const uint8_t *buf, size_t len, size_t *used, rc_pk **out,
               const char *what, char *err, size_t errlen);
void rc_pk_arena_free(rc_pk_arena *A);

/* The value under string key in a DICT, or NULL (also when d is not a dict). */
rc_pk *rc_pk_dict_get(const rc_pk *d, const char *key);
/* A number (INT, BOOL or FLOAT) as double: 0, or -1 when v is not a number. */
int rc_pk_num(const rc_pk *v, double *out);
/* Bytes per element of a dtype, and its torch spelling ("float32"). */
int rc_dtype_size(rc_dtype t);
const char *rc_dtype_name(rc_dtype t);
/* "(8,40,15,15)": a shape for messages. */
void rc_pk_shape_text(const int64_t *size, int ndim, char *out, size_t n);
/* One short line describing v for messages ("tensor float32 (8,40,15,15)", "dict of 12", ...). */
void rc_pk_describe(const rc_pk *v, char *out, size_t n);

#endif
