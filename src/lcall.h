/*
 * lcall.h - the one way C calls user Lua: a protected call whose error
 * message carries the Lua traceback.
 */
#ifndef COTY_LCALL_H
#define COTY_LCALL_H

#include <lua.h>

/* Calls the function below its nargs arguments as lua_pcall does. On
 * error, returns the status and leaves "message\nstack traceback:..." on
 * the stack top. */
int coty_lua_call(lua_State *L, int nargs, int nres);

#endif
