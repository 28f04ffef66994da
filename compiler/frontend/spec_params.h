/* spec_params.h — spec parameters (internal to the front end): `params { NAME = default, ... }`
 * in a spec declares the knobs of a family of models, returns their values (defaults, or the
 * overrides the caller passed: `--param NAME=VALUE`, or a search trial's values), and lets the
 * spec's `search` section range over them (`grid = { params = { NAME = {...} } }`).
 *
 * Invariants: a spec declares its parameters once; every override names a declared parameter
 * and reads as its default's type (number, integer when the default is a Lua integer, string,
 * boolean), so a typo or a wrong type is an error, never a silently unused knob. Parameter names
 * are identifiers and are not train field names (a search names both in one namespace).
 */
#ifndef RC_SPEC_PARAMS_H
#define RC_SPEC_PARAMS_H

#include <stddef.h>
#include <lua.h>
#include "ir.h"
#include "spec.h"

typedef struct {
    char name[RC_NAME_MAX];
    int type;                 /* LUA_TNUMBER, LUA_TSTRING or LUA_TBOOLEAN */
    int is_int;               /* number whose default is a Lua integer */
} rc_spec_param_decl;

typedef struct {
    const rc_spec_override *ov;   /* the caller's overrides (may be NULL) */
    int n_ov;
    int called;                   /* params {...} ran */
    int n;
    rc_spec_param_decl p[RC_SPEC_MAX_PARAMS];
} rc_spec_params;

/* Install the global `params` (a closure over ps). Inside the protected sandbox set-up. */
void rc_spec_params_open(lua_State *L, rc_spec_params *ps);

/* The declaration of NAME, or NULL. */
const rc_spec_param_decl *rc_spec_params_find(const rc_spec_params *ps, const char *name);

/* "a, b, c" (the declared names), or "none". */
void rc_spec_params_list(const rc_spec_params *ps, char *buf, size_t n);

/* After the spec ran: overrides given to a spec that never called params. 0, or -1 with a
 * message (without the file) in err. */
int rc_spec_params_finish(const rc_spec_params *ps, char *err, size_t errlen);

/* The search dim of parameter NAME from the Lua value at vidx (grid: a list of values of the
 * parameter's type; random: { lo, hi, log = bool } of a numeric parameter) into *d. 0, or -1
 * with the message in err and the failing path ("grid.params.k1[2]") in path. */
int rc_spec_params_search_dim(lua_State *L, int vidx, const rc_spec_params *ps, const char *name,
                              int is_random, rc_search_dim *d, char *path, size_t pathlen,
                              char *err, size_t errlen);

#endif
