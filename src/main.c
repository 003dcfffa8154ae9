/*
 * main.c - the cotylua command: options, then FILE run under one protected
 * call (lua.c's pmain pattern), then the manager FILE returned.
 *
 * The cotylua Lua module is built in (package.preload), so the binary
 * needs no module on the Lua paths. Exit statuses: those of the manager
 * (0 after a graceful stop, 1 after a fast one), 2 when the command line
 * or FILE is refused.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cotylua.h"
#include "lcall.h"
#include "log.h"
#include "manager.h"

#define EXIT_REFUSED 2

extern const char coty_embedded_lua[];
extern const unsigned long coty_embedded_lua_len;
extern const char coty_embedded_loop[];
extern const unsigned long coty_embedded_loop_len;

struct options {
    int check;
    int first_arg;      /* index of FILE in argv */
    int argc;
    char **argv;
};

static const char usage_text[] =
    "usage: cotylua [--log-level LEVEL] FILE [ARGS...]\n"
    "       cotylua --check FILE [ARGS...]\n"
    "       cotylua --version | --help\n"
    "\n"
    "Runs the manager that the Lua file FILE returns: it forks the workers of\n"
    "each service, restarts them when they die and stops them on SIGTERM.\n"
    "\n"
    "  --check FILE       load and validate FILE, list its services, start nothing\n"
    "  --log-level LEVEL  debug, info (default), warning (or warn) or error,\n"
    "                     in any case; also COTYLUA_LOG_LEVEL\n"
    "  --version          print the version and exit\n"
    "  --help             print this help and exit\n"
    "\n"
    "Signals to the manager: TERM stops gracefully (exit 0), INT stops at once\n"
    "(exit 1), HUP reloads every worker. Exit status 2: FILE or the command\n"
    "line was refused. The services file and the Lua API: man cotylua.\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "cotylua: %s%s\n%s", msg, arg ? arg : "", usage_text);
    return EXIT_REFUSED;
}

/* Parses options; returns -1 to go on, or an exit status. */
static int parse(int argc, char **argv, struct options *o)
{
    int i;

    *o = (struct options){.argc = argc, .argv = argv};
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
            printf("cotylua %s (%s)\n", COTYLUA_VERSION, LUA_RELEASE);
            return 0;
        } else if (!strcmp(a, "--check")) {
            o->check = 1;
        } else if (!strcmp(a, "--log-level") && i + 1 < argc) {
            int level = coty_log_parse_level(argv[++i]);
            if (level < 0)
                return usage_error("unknown log level: ", argv[i]);
            coty_log_set_level((enum coty_level)level);
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else {
            return usage_error("unknown option: ", a);
        }
    }
    if (i >= argc)
        return usage_error("no FILE given", NULL);
    o->first_arg = i;
    return -1;
}

/* arg table as lua.c builds it: arg[0] = FILE, ARGS at 1.., the rest below. */
static void create_arg(lua_State *L, const struct options *o)
{
    lua_createtable(L, o->argc - o->first_arg, o->first_arg + 1);
    for (int i = 0; i < o->argc; i++) {
        lua_pushstring(L, o->argv[i]);
        lua_rawseti(L, -2, i - o->first_arg);
    }
    lua_setglobal(L, "arg");
}

static int load_embedded(lua_State *L)
{
    if (luaL_loadbuffer(L, coty_embedded_lua, coty_embedded_lua_len, "=cotylua.lua"))
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static int load_embedded_loop(lua_State *L)
{
    if (luaL_loadbuffer(L, coty_embedded_loop, coty_embedded_loop_len, "=cotylua/loop.lua"))
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static void preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_cotylua_core);
    lua_setfield(L, -2, "cotylua.core");
    lua_pushcfunction(L, load_embedded);
    lua_setfield(L, -2, "cotylua");
    lua_pushcfunction(L, load_embedded_loop);
    lua_setfield(L, -2, "cotylua.loop");
    lua_pop(L, 1);
}

/* Everything that can raise runs here, under one protected call. */
static int pmain(lua_State *L)
{
    const struct options *o = lua_touserdata(L, 1);
    const char *file = o->argv[o->first_arg];
    int nargs = o->argc - o->first_arg - 1, nres;

    luaL_openlibs(L);
    preload(L);
    create_arg(L, o);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cotylua");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "_check_mode");
    lua_pushboolean(L, o->check);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "_host");           /* module._host(file, ...) */
    lua_pushstring(L, file);
    if (luaL_loadfile(L, file) != LUA_OK) { /* no traceback to show */
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_pushinteger(L, EXIT_REFUSED);
        return 1;
    }
    luaL_checkstack(L, nargs + 8, "too many arguments");
    for (int i = 1; i <= nargs; i++)
        lua_pushstring(L, o->argv[o->first_arg + i]);
    lua_call(L, nargs, LUA_MULTRET);
    nres = lua_gettop(L) - 4;
    lua_call(L, 1 + nres, 1);
    return 1;
}

/* Static, so that leak checkers see the never-closed state as reachable. */
static lua_State *L;

int main(int argc, char **argv)
{
    struct options o;
    int status;
    const char *bad_level = coty_log_setup();

    status = parse(argc, argv, &o);
    if (status >= 0)
        return status;
    if (bad_level)
        return usage_error("unknown log level in COTYLUA_LOG_LEVEL: ", bad_level);
    L = luaL_newstate();
    if (!L) {
        fputs("cotylua: cannot create a Lua state: not enough memory\n", stderr);
        return EXIT_REFUSED;
    }
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &o);
    status = coty_lua_call(L, 1, 1);
    /* Whatever became of stderr and stdout (a reader that went away), the
     * last words and the flush below must not turn a clean stop into a
     * death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (status != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        status = EXIT_REFUSED;
    } else {
        status = (int)lua_tointeger(L, -1);
    }
    /* Sockets a refused file had bound (and their unix socket files) go. */
    coty_mgr_destroy();
    fflush(NULL);
    /* The state is not closed: closing would run __gc of user objects the
     * workers share, and the process ends here anyway. */
    return status;
}
