/*
 * lcall.c - protected calls with a traceback; see lcall.h.
 */
#include "lcall.h"

#include <lauxlib.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int coty_lua_call(lua_State *L, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    return status;
}
