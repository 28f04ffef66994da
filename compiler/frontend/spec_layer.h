/* spec_layer.h — defined layers in a spec (internal to the front end).
 *
 * spec.c owns the sandbox and the walk of the model; spec_layer.c owns layers written in Lua
 * from primitives (compiler/prim.h): the `layer "name" { ... }` definition form, the standard
 * prelude (compiler/frontend/prelude.lua, compiled in), and turning one use of a defined layer
 * into the primitive graph of an RC_LAYER_DEF layer (rc_ir_def_set); spec_prims.c owns tensors
 * (userdata with metamethods) and the primitives as Lua functions. The syntax is documented in
 * specs/README.md ("Defining a layer").
 */
#ifndef RC_SPEC_LAYER_H
#define RC_SPEC_LAYER_H

#include <stddef.h>
#include <lua.h>
#include "ir.h"

#define RC_SPEC_LAYER_MT "rc.layer"    /* metatable of every layer userdata */

/* The body of a layer userdata (built-in or defined). User value 1 is the field (options)
 * table; a defined layer has user value 2, its definition table. */
typedef struct {
    int kind, act, line;
} rc_spec_layer_ud;

/* Install the tensor metatable, the primitive functions, `layer`, the act constructors that
 * also apply to tensors, and run the prelude (globals `def` and `exponential`). Called inside
 * the protected sandbox set-up, after spec.c installed its constructors and the metatable of
 * _G. Raises a Lua error on failure. */
void rc_spec_layer_open(lua_State *L);

/* Walk the defined layer (userdata at uidx) into layer ir->n_layers: its input shape from the
 * layers before it (rc_ir_infer with 1 and 2 cells), its graph (params, state, forward in train
 * and eval mode), a gradient check, and rc_ir_def_set; increments ir->n_layers. Returns 0, or
 * -1 with one line "FILE:LINE: layer I (KIND): what" in err. Runs the spec's Lua functions under
 * whatever hook is set (the caller keeps the spec's limits on). */
int rc_spec_def_walk(lua_State *L, int uidx, rc_ir *ir, const char *file, char *err,
                     size_t errlen);

/* ---- between spec_layer.c and spec_prims.c ---- */

struct rc_prim_graph;

/* The layer being built; in the registry (light userdata at &rc_spec_build_key) while its
 * Lua functions run. */
typedef struct {
    struct rc_prim_graph *g;
    int gen;                            /* tensors of this build carry it */
    int layer;                          /* 0-based */
    int use_line;                       /* the spec line of the layer in the model */
    int mode;                           /* -1 declaring, RC_PRIM_TRAIN, RC_PRIM_EVAL */
    int n_rand;                         /* random sub-streams used in this mode */
    const char *file, *kind;
} rc_spec_build;

extern const char rc_spec_build_key;
extern char rc_spec_prim_list[2048];  /* the primitives' names, for messages */

/* Tensor metatable, primitives (registry), methods, act constructors, select. */
void rc_spec_prims_open(lua_State *L);
/* Make the primitives globals (pushes the table of what they hide) / put the globals back. */
void rc_spec_prims_install(lua_State *L);
void rc_spec_prims_uninstall(lua_State *L, int saved);
void rc_spec_push_tensor(lua_State *L, const rc_spec_build *b, int id);
/* The node of the tensor at idx: -1 if it is not a tensor, -2 if it is another build's. */
int rc_spec_tensor_id(lua_State *L, int idx, const rc_spec_build *b);
const char *rc_spec_type_of(lua_State *L, int idx);
void rc_spec_shape_text(int rank, const int *dims, char *out, size_t n);
/* One dimension from Lua: integer >= 1, "cells", "B" (allow_b), -1 (allow_infer); 0 or -1. */
int rc_spec_read_dim(lua_State *L, int idx, int allow_b, int allow_infer, int *out);
/* A layer userdata (kind, act, the caller's line) with the table at index 1 as user value 1
 * and nuv user values; the caller sets the metatable. */
rc_spec_layer_ud *rc_spec_new_layer(lua_State *L, int kind, int act, int nuv);

#endif
