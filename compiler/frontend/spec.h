/* spec.h — the spec-language front end: a Lua model spec -> rc_ir (spec fields only).
 *
 * The spec runs in a sandboxed Lua 5.4 (base/string/table/math only, text chunks only, an
 * instruction limit, a wall-clock limit and a memory cap) and is deterministic: the same text
 * always gives the same model (fixed pairs order, no addresses, a seeded math.random). Field names, types, ranges and enums come from the
 * rc_fields() descriptor tables in compiler/ir.h, so the loader, the canonical printer and the
 * IR text parser agree by construction. After a successful load call rc_ir_infer() for shapes,
 * parameters and FLOPs.
 *
 * Errors: -1 and ONE line in err, "FILE:LINE: layer I (KIND): FIELD: what" where those parts
 * apply (layer indices are 1-based, as in rc_ir_infer messages and parameter names "1.conv.weight").
 * No global state; every call makes and closes its own lua_State (thread-safe).
 */
#ifndef RC_SPEC_H
#define RC_SPEC_H

#include <stddef.h>
#include "ir.h"

/* Limits of the sandbox (exposed for tests and messages). */
#define RC_SPEC_MAX_INSTRUCTIONS 20000000L   /* Lua VM instructions per spec */
#define RC_SPEC_MAX_MEMORY (64u << 20)        /* bytes the Lua state may hold */
#define RC_SPEC_MAX_FILE (1u << 20)           /* bytes of spec source */
#define RC_SPEC_MAX_SECONDS 10                /* wall-clock seconds of evaluation; the
                                                 environment's RETINAC_SPEC_SECONDS (1..3600)
                                                 replaces it */
#define RC_SPEC_MAX_SORT 100000               /* elements table.sort may sort */

/* A value for a spec parameter: the spec declares `local p = params { k1 = 15, norm = "unit" }`
 * and a caller (`--param k1=21`, a search or compare trial) replaces a default. The value is
 * text, read as the default's type: a number (an integer when the default is a Lua integer), a
 * string, or true/false. Naming a parameter the spec does not declare is an error. */
typedef struct {
    const char *name, *value;
} rc_spec_override;

#define RC_SPEC_MAX_PARAMS 32                 /* parameters one spec declares */

/* Load a spec file with parameter overrides (n_ov may be 0). A canonical IR file takes none. */
int rc_spec_load_params(const char *path, const rc_spec_override *ov, int n_ov, rc_ir *ir,
                        char *err, size_t errlen);

/* rc_spec_check with parameter overrides. */
int rc_spec_check_params(const char *path, int cells, const rc_spec_override *ov, int n_ov,
                         rc_ir *ir, char *err, size_t errlen);

/* Load a spec file. ir is overwritten (rc_ir_defaults first). */
int rc_spec_load(const char *path, rc_ir *ir, char *err, size_t errlen);

/* Load a spec from memory; chunkname is the name used in messages (e.g. the file path). */
int rc_spec_load_string(const char *chunkname, const char *text, rc_ir *ir,
                        char *err, size_t errlen);

/* Load a model from either a Lua spec or a canonical IR text file (as written by
 * `retinac check --emit-ir`, recognised by its first line). Does not infer. */
int rc_spec_load_any(const char *path, rc_ir *ir, char *err, size_t errlen);

/* rc_spec_load_any + rc_ir_infer(cells): the one call a command needs. Errors of the inference
 * get the layer's spec line added ("FILE:LINE: layer I (KIND): FIELD: what"). */
int rc_spec_check(const char *path, int cells, rc_ir *ir, char *err, size_t errlen);

#endif
