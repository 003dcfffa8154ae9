/*
 * cotylua.h - what the binary and the module share: the version and the
 * entry point of the cotylua.core Lua module.
 */
#ifndef COTYLUA_H
#define COTYLUA_H

#include <lua.h>

#define COTYLUA_VERSION "0.1.0"

int luaopen_cotylua_core(lua_State *L);

#endif
