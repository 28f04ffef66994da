/* spec_sandbox.h — the restricted, deterministic Lua libraries of the spec sandbox (internal to
 * the front end; spec_sandbox.c). */
#ifndef RC_SPEC_SANDBOX_H
#define RC_SPEC_SANDBOX_H

#include <lua.h>

/* Open base/string/table/math and strip or wrap everything that reaches outside the sandbox,
 * runs unbounded inside one C call, or depends on addresses or hash order. Raises a Lua error
 * on failure (call it inside a protected call). Leaves the stack as it found it. */
void rc_spec_sandbox_libs(lua_State *L);

#endif
