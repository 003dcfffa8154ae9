/*
 * lcotylua.c - luaopen_cotylua_core: the one place where C meets Lua.
 *
 * It turns Lua calls into manager and worker calls, and the manager's
 * events back into calls of the Lua handlers that lua/cotylua.lua gives to
 * core.run().
 *
 * Who owns the rules: Lua. lua/cotylua.lua checks every value a user
 * gives and words every error (the user's file and line, the field, the
 * value and its type). What a check needs from C is exported here once
 * and never restated in Lua: the engine's service options with their
 * kinds and defaults (core.options, from the table `options` below), the
 * limits (core.limits), the restart defaults, the listen parser
 * (core.parse_listen) and the log level names (core.parse_level). The
 * functions here check types and ranges again only so that a caller of
 * cotylua.core cannot break the engine; their errors are not for users.
 *
 * A new service option is one line in `options` and one member of struct
 * coty_service_conf (if the engine acts on it), or one row in cotylua.lua's
 * OPTIONS (if only the Lua side does); cotylua.lua needs no other change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "cotylua.h"
#include "fdscan.h"
#include "lcall.h"
#include "log.h"
#include "loop.h"
#include "manager.h"
#include "sdlib.h"
#include "sockets.h"
#include "worker.h"

static int handlers_ref = LUA_NOREF;
static int worker_ref = LUA_NOREF;
static int check_mode;
static int in_worker;           /* this process is a worker */

/* ---- manager events -> Lua handlers ---------------------------------- */

/* handlers[name](...), with name a light userdata (a C string). Runs
 * protected: nothing that can raise happens outside it. */
static int call_handler(lua_State *L)
{
    int nargs = lua_gettop(L) - 1;

    lua_rawgeti(L, LUA_REGISTRYINDEX, handlers_ref);
    lua_getfield(L, -1, lua_touserdata(L, 1));
    lua_replace(L, 1);
    lua_pop(L, 1);
    lua_call(L, nargs, 0);
    return 0;
}

/* Calls handlers[name] with integer arguments. Called from the
 * manager's loop, so no Lua error may escape (lua_checkstack, light
 * userdata and integers never raise). */
static void handler(lua_State *L, const char *name, const lua_Integer *args, int nargs)
{
    if (!lua_checkstack(L, nargs + 4)) {
        coty_error("no Lua stack left to call the %s handler", name);
        return;
    }
    lua_pushcfunction(L, call_handler);
    lua_pushlightuserdata(L, (void *)name);
    for (int i = 0; i < nargs; i++)
        lua_pushinteger(L, args[i]);
    if (coty_lua_call(L, nargs + 1, 0) != LUA_OK) {
        coty_error("error in the %s handler: %s", name, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

static void on_terminate(void *ud) { handler(ud, "terminate", NULL, 0); }
static void on_reload(void *ud) { handler(ud, "reload", NULL, 0); }

static void on_dead(void *ud, int sid, int wid, int code, int why)
{
    const lua_Integer args[4] = {sid, wid, code, why};

    handler(ud, "dead", args, 4);
}

static void on_worker(void *ud, const struct coty_worker_info *info)
{
    lua_State *L = ud;

    in_worker = 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, worker_ref);
    coty_worker_main(L, info, -1);
}

static const struct coty_mgr_ops ops = {
    .on_terminate = on_terminate,
    .on_reload = on_reload,
    .on_dead = on_dead,
    .worker = on_worker,
};

/* ---- the manager ----------------------------------------------------- */

/* A restart policy at index t, whole: cotylua.lua merges it over the
 * manager's (or the defaults) before it comes here. */
static struct coty_restart_policy restart_policy(lua_State *L, int t)
{
    struct coty_restart_policy p;

    luaL_checktype(L, t, LUA_TTABLE);
    lua_getfield(L, t, "burst");
    lua_getfield(L, t, "interval");
    lua_getfield(L, t, "delay");
    lua_getfield(L, t, "max_delay");
    p.burst = (int)luaL_checkinteger(L, -4);
    p.interval = luaL_checknumber(L, -3);
    p.delay = luaL_checknumber(L, -2);
    p.max_delay = luaL_checknumber(L, -1);
    lua_pop(L, 4);
    if (coty_restart_check(&p))
        luaL_argerror(L, t, "restart policy out of range");
    return p;
}

/* Frees the manager's C state when the Lua state closes (plain lua5.4
 * closes its state at exit; the module may be unloaded right after). */
static int l_manager_gc(lua_State *L)
{
    (void)L;
    coty_mgr_destroy();
    return 0;
}

/* Ties the manager's C state to the life of L. */
static void guard_manager(lua_State *L)
{
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_manager_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "cotylua.manager");
}

/* core.restart_defaults() -> { burst =, interval =, delay =, max_delay = } */
static int l_restart_defaults(lua_State *L)
{
    const struct coty_restart_policy *p = &coty_restart_defaults;

    lua_createtable(L, 0, 4);
    lua_pushinteger(L, p->burst);
    lua_setfield(L, -2, "burst");
    lua_pushnumber(L, p->interval);
    lua_setfield(L, -2, "interval");
    lua_pushnumber(L, p->delay);
    lua_setfield(L, -2, "delay");
    lua_pushnumber(L, p->max_delay);
    lua_setfield(L, -2, "max_delay");
    return 1;
}

/* core.manager(graceful_shutdown_timeout, restart) */
static int l_manager(lua_State *L)
{
    struct coty_mgr_conf conf;

    conf.graceful_timeout = luaL_checknumber(L, 1);
    luaL_argcheck(L, conf.graceful_timeout >= 0 && conf.graceful_timeout <= COTY_SECONDS_MAX, 1,
                  "out of range");
    conf.restart = restart_policy(L, 2);
    if (coty_mgr_create(&conf) < 0)
        return luaL_error(L, "a manager already exists in this process (one per process)");
    guard_manager(L);
    return 0;
}

/* ---- the options of a service ------------------------------------------ */

/* How an option's value is read; cotylua.lua checks each kind (and words
 * its errors) with the limits of core.limits. */
enum kind {
    K_WORKERS, K_SECONDS, K_RESTART, K_LISTEN, K_BOOLEAN,
    K_USER, K_GROUP, K_OWNER, K_MODE, K_PATH, K_ENV, K_RLIMITS, K_NICE
};
static const char *const kind_names[] = {
    "workers", "seconds", "restart", "listen", "boolean",
    "user", "group", "owner", "mode", "path", "env", "rlimits", "nice"
};

/* The options of a service that the engine acts on: the one list of them.
 * cotylua.lua learns their names, kinds and defaults from core.options(),
 * so a new one is a member of struct coty_service_conf and a line here. */
static const struct option {
    const char *name;
    enum kind kind;
    size_t at;          /* where it goes in struct coty_service_conf */
    double def;         /* when absent (the restart policy: the manager's) */
} options[] = {
    {"workers", K_WORKERS, offsetof(struct coty_service_conf, workers), 1},
    {"graceful_shutdown_timeout", K_SECONDS, offsetof(struct coty_service_conf, graceful_timeout),
     -1 /* the manager's */},
    {"restart", K_RESTART, offsetof(struct coty_service_conf, restart), 0},
    {"listen", K_LISTEN, offsetof(struct coty_service_conf, listen), 0},
    {"reuseport", K_BOOLEAN, offsetof(struct coty_service_conf, reuseport), 0},
    {"listen_owner", K_OWNER, offsetof(struct coty_service_conf, listen_owner), 0},
    {"listen_mode", K_MODE, offsetof(struct coty_service_conf, listen_mode), 0},
    {"user", K_USER, offsetof(struct coty_service_conf, identity.user), 0},
    {"group", K_GROUP, offsetof(struct coty_service_conf, identity.group), 0},
    {"umask", K_MODE, offsetof(struct coty_service_conf, identity.umask), 0},
    {"cwd", K_PATH, offsetof(struct coty_service_conf, identity.cwd), 0},
    {"env", K_ENV, offsetof(struct coty_service_conf, identity.env), 0},
    {"rlimits", K_RLIMITS, offsetof(struct coty_service_conf, identity.rlimits), 0},
    {"nice", K_NICE, offsetof(struct coty_service_conf, identity.nice), 0},
    {"no_new_privs", K_BOOLEAN, offsetof(struct coty_service_conf, identity.no_new_privs), 0},
};
#define NOPTIONS (sizeof options / sizeof options[0])

/* core.options() -> { name = { kind =, default = }, ... } */
static int l_options(lua_State *L)
{
    lua_createtable(L, 0, (int)NOPTIONS);
    for (size_t i = 0; i < NOPTIONS; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, kind_names[options[i].kind]);
        lua_setfield(L, -2, "kind");
        if (options[i].kind == K_WORKERS)
            lua_pushinteger(L, (lua_Integer)options[i].def);
        else if (options[i].kind == K_SECONDS)
            lua_pushnumber(L, options[i].def);
        else
            lua_pushnil(L);
        lua_setfield(L, -2, "default");
        lua_setfield(L, -2, options[i].name);
    }
    return 1;
}

/* The strings of the list at index t, in an array that Lua collects
 * (kept in the registry under key until the next add). */
static const char **string_list(lua_State *L, int t, int *n, const char *key)
{
    const char **list;

    luaL_checktype(L, t, LUA_TTABLE);
    *n = (int)luaL_len(L, t);
    list = lua_newuserdatauv(L, (size_t)(*n + 1) * sizeof *list, 0);
    for (int i = 0; i < *n; i++) {
        lua_rawgeti(L, t, i + 1);
        list[i] = luaL_checkstring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the table */
    }
    lua_setfield(L, LUA_REGISTRYINDEX, key); /* alive until the next add */
    return list;
}

/* One side of a limit: an integer >= 0, "unlimited", or nil (kept). */
static int limit_side(lua_State *L, int t, const char *side, rlim_t *v)
{
    int type = lua_getfield(L, t, side);

    if (type == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "unlimited"))
        *v = RLIM_INFINITY;
    else if (type != LUA_TNIL)
        *v = (rlim_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return type != LUA_TNIL;
}

/* The limits at index t, { { name =, soft =, hard = }, ... } (cotylua.lua
 * gives this form), in an array that Lua collects. */
static struct coty_rlimit *rlimit_list(lua_State *L, int t, int *n)
{
    struct coty_rlimit *list;

    luaL_checktype(L, t, LUA_TTABLE);
    *n = (int)luaL_len(L, t);
    list = lua_newuserdatauv(L, (size_t)(*n + 1) * sizeof *list, 0);
    for (int i = 0; i < *n; i++) {
        lua_rawgeti(L, t, i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "name");
        list[i].resource = coty_rlimit_resource(luaL_checkstring(L, -1));
        luaL_argcheck(L, list[i].resource >= 0, t, "unknown limit");
        lua_pop(L, 1);
        list[i].has_soft = limit_side(L, lua_gettop(L), "soft", &list[i].soft);
        list[i].has_hard = limit_side(L, lua_gettop(L), "hard", &list[i].hard);
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "cotylua.rlimits");
    return list;
}

static int int_in(lua_State *L, int lo, int hi)
{
    lua_Integer v = luaL_checkinteger(L, -1);

    luaL_argcheck(L, v >= lo && v <= hi, lua_gettop(L), "out of range");
    return (int)v;
}

/* Reads option o from the value on top of the stack (nil: its default). */
static void read_option(lua_State *L, const struct option *o, struct coty_service_conf *conf)
{
    char *at = (char *)conf + o->at;
    int absent = lua_isnil(L, -1);

    switch (o->kind) {
    case K_WORKERS:
        *(int *)at = absent ? (int)o->def : (int)luaL_checkinteger(L, -1);
        break;
    case K_SECONDS:
        *(double *)at = absent ? o->def : luaL_checknumber(L, -1);
        break;
    case K_RESTART:
        *(struct coty_restart_policy *)at =
            absent ? coty_mgr_conf()->restart : restart_policy(L, lua_gettop(L));
        break;
    case K_LISTEN:
        conf->listen = absent ? NULL : string_list(L, lua_gettop(L), &conf->nlisten, "cotylua.listen");
        break;
    case K_BOOLEAN:
        *(int *)at = lua_toboolean(L, -1);
        break;
    case K_USER: case K_GROUP: case K_OWNER: case K_PATH:
        *(const char **)at = absent ? NULL : luaL_checkstring(L, -1);
        break;
    case K_MODE:
        if (!absent)
            *(struct coty_opt *)at = (struct coty_opt){1, int_in(L, 0, 07777)};
        break;
    case K_NICE:
        if (!absent)
            *(struct coty_opt *)at = (struct coty_opt){1, int_in(L, COTY_NICE_MIN, COTY_NICE_MAX)};
        break;
    case K_ENV:
        conf->identity.env =
            absent ? NULL : string_list(L, lua_gettop(L), &conf->identity.nenv, "cotylua.env");
        break;
    case K_RLIMITS:
        conf->identity.rlimits =
            absent ? NULL : rlimit_list(L, lua_gettop(L), &conf->identity.nrlimits);
        break;
    }
}

/* The option named by the key on top of the stack; raises for another. */
static const struct option *known_option(lua_State *L)
{
    const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";

    for (size_t i = 0; i < NOPTIONS; i++)
        if (!strcmp(options[i].name, key))
            return &options[i];
    luaL_error(L, "unknown service option %s", key);
    return NULL;
}

/* core.add(name, has_reload, { option = value, ... }) -> id. The options
 * are cotylua.lua's, checked there: here an unknown one is an error. */
static int l_add(lua_State *L)
{
    struct coty_service_conf conf = {0};
    char err[256];
    int id;

    if (!coty_mgr_exists())
        return luaL_error(L, "no manager");
    conf.name = luaL_checkstring(L, 1);
    conf.has_reload = lua_toboolean(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pushvalue(L, -2);
        known_option(L);
        lua_pop(L, 2);
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        lua_getfield(L, 3, options[i].name);
        read_option(L, &options[i], &conf);
        lua_pop(L, 1);
    }
    id = coty_mgr_add(&conf, err, sizeof err);
    if (id < 0)
        return luaL_error(L, "service %s: %s", conf.name, err);
    lua_pushinteger(L, id);
    return 1;
}

static int l_reconfigure(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);

    if (in_worker)
        return luaL_error(L, "reconfigure: not in a worker");
    luaL_argcheck(L, n >= 1 && n <= COTY_WORKERS_MAX, 2, "out of range");
    if (coty_mgr_reconfigure((int)id, (int)n) < 0)
        return luaL_error(L, "no service with id %d", (int)id);
    return 0;
}

static int l_run(lua_State *L)
{
    int status;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, worker_ref);
    if (lua_getfield(L, 1, "worker") != LUA_TFUNCTION)
        return luaL_argerror(L, 1, "no worker function");
    worker_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    luaL_unref(L, LUA_REGISTRYINDEX, handlers_ref);
    handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* A full cycle before the first fork: the workers inherit no garbage
     * and a GC debt far from the next step, so that their first
     * allocations do not walk (and copy) the heap they share. */
    lua_gc(L, LUA_GCCOLLECT);
    status = coty_mgr_run(&ops, L);
    if (status < 0)
        return luaL_error(L, "cannot run the manager: %s", strerror(errno));
    lua_pushinteger(L, status);
    return 1;
}

static int l_shutdown(lua_State *L)
{
    if (in_worker)
        return luaL_error(L, "shutdown: not in a worker");
    coty_mgr_shutdown();
    return 0;
}

/* in_worker() -> whether this process is a worker (calls on the manager
 * are refused there). */
static int l_in_worker(lua_State *L)
{
    lua_pushboolean(L, in_worker);
    return 1;
}

/* Warns about the loop fds that loading the services file left open. */
static int l_warn_shared_fds(lua_State *L)
{
    lua_pushinteger(L, coty_fds_warn_shared());
    return 1;
}

static int l_check_mode(lua_State *L)
{
    if (!lua_isnone(L, 1))
        check_mode = lua_toboolean(L, 1);
    lua_pushboolean(L, check_mode);
    return 1;
}

/* ---- users, groups, limits: what the checks of identities need ---------- */

/* The supplementary groups of user name (primary gid) as a list. */
static void push_groups(lua_State *L, const char *name, gid_t gid)
{
    gid_t groups[256];
    int n = (int)(sizeof groups / sizeof groups[0]);

    if (getgrouplist(name, gid, groups, &n) < 0)
        n = (int)(sizeof groups / sizeof groups[0]);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, groups[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* nil, why a lookup found nothing (errno 0: no such entry) */
static int not_found(lua_State *L, const char *none)
{
    int err = errno;

    lua_pushnil(L);
    lua_pushstring(L, err ? strerror(err) : none);
    return 2;
}

/* core.user(name or uid [, gid]) -> { name =, uid =, gid =, home =, groups
 * = {} } or nil, reason; groups: with gid as the primary group if given */
static int l_user(lua_State *L)
{
    lua_Integer gid = luaL_optinteger(L, 2, -1);
    struct passwd *pw;

    errno = 0;
    pw = lua_isinteger(L, 1) ? getpwuid((uid_t)lua_tointeger(L, 1)) : getpwnam(luaL_checkstring(L, 1));
    if (!pw)
        return not_found(L, "no such user");
    lua_createtable(L, 0, 5);
    lua_pushstring(L, pw->pw_name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, pw->pw_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, pw->pw_gid);
    lua_setfield(L, -2, "gid");
    lua_pushstring(L, pw->pw_dir);
    lua_setfield(L, -2, "home");
    push_groups(L, pw->pw_name, gid >= 0 ? (gid_t)gid : pw->pw_gid);
    lua_setfield(L, -2, "groups");
    return 1;
}

/* core.group(name or gid) -> { name =, gid = } or nil, reason */
static int l_group(lua_State *L)
{
    struct group *gr;

    errno = 0;
    gr = lua_isinteger(L, 1) ? getgrgid((gid_t)lua_tointeger(L, 1)) : getgrnam(luaL_checkstring(L, 1));
    if (!gr)
        return not_found(L, "no such group");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, gr->gr_name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, gr->gr_gid);
    lua_setfield(L, -2, "gid");
    return 1;
}

/* core.rlimit_names() -> { "as", "core", ... } */
static int l_rlimit_names(lua_State *L)
{
    const char *name;

    lua_newtable(L);
    for (int i = 0; (name = coty_rlimit_name(i)); i++) {
        lua_pushstring(L, name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- helpers for services -------------------------------------------- */

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);

    luaL_argcheck(L, s >= 0 && !isnan(s), 1, "seconds must be a number >= 0");
    coty_worker_wait(L, -1, 0, isinf(s) ? -1 : s);
    return 0;
}

static short poll_events(lua_State *L, int arg)
{
    const char *mode = luaL_optstring(L, arg, "r");

    if (!strcmp(mode, "r"))
        return POLLIN;
    if (!strcmp(mode, "w"))
        return POLLOUT;
    if (!strcmp(mode, "rw") || !strcmp(mode, "wr"))
        return POLLIN | POLLOUT;
    return (short)luaL_argerror(L, arg, "mode must be \"r\", \"w\" or \"rw\"");
}

/* wait(fd, mode, timeout) -> true when ready, false on timeout */
static int l_wait(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    short events = poll_events(L, 2);
    double timeout = luaL_optnumber(L, 3, -1);
    int n;

    luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "fd must be an integer >= 0");
    luaL_argcheck(L, !isnan(timeout), 3, "timeout must be a number");
    n = coty_worker_wait(L, (int)fd, events, isinf(timeout) ? -1 : timeout);
    if (n < 0)
        return luaL_fileresult(L, 0, NULL);
    if (n & POLLNVAL) {
        lua_pushnil(L);
        lua_pushfstring(L, "fd %d is not open", (int)fd);
        lua_pushinteger(L, EBADF);
        return 3;
    }
    lua_pushboolean(L, n != 0);
    return 1;
}

static int l_stopping(lua_State *L)
{
    lua_pushboolean(L, coty_worker_stopping());
    return 1;
}

static int l_drain_on_stop(lua_State *L)
{
    coty_worker_set_drain(lua_toboolean(L, 1));
    return 0;
}

static int l_signal_fd(lua_State *L)
{
    int fd = coty_worker_signal_fd();

    if (fd < 0)
        return luaL_error(L, "cotylua.signal_fd: %s",
                          errno == EPERM ? "only a worker has one (call it in init or run)"
                                         : strerror(errno));
    lua_pushinteger(L, fd);
    return 1;
}

static int l_dispatch(lua_State *L)
{
    coty_worker_dispatch(L);
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, coty_now());
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

/* co_enter(co): a coroutine is about to be resumed. */
static int l_co_enter(lua_State *L)
{
    coty_worker_enter(lua_tothread(L, 1));
    return 0;
}

/* co_leave(...): the resume is over; returns its arguments. */
static int l_co_leave(lua_State *L)
{
    coty_worker_leave(L);
    return lua_gettop(L);
}

/* The error of a wrapped coroutine, as lcorolib.c's auxwrap makes it: an
 * error inside the coroutine closes it (its to-be-closed variables), and
 * a string gets the caller's position. */
static int wrap_error(lua_State *L, lua_State *co)
{
    int stat = lua_status(co);

    if (stat != LUA_OK && stat != LUA_YIELD) {
#if LUA_VERSION_RELEASE_NUM >= 50406
        stat = lua_closethread(co, L);
#else
        stat = lua_resetthread(co);
#endif
        lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* The function co_wrap returns: resumes its coroutine (upvalue 1) with
 * the engine told, as coroutine.wrap's own function does. */
static int wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L), nres, status;

    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return wrap_error(L, co);
    }
    lua_xmove(L, co, narg);
    coty_worker_enter(co);
    status = lua_resume(co, L, narg, &nres);
    coty_worker_leave(L);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_xmove(co, L, 1);
        return wrap_error(L, co);
    }
    if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        return wrap_error(L, co);
    }
    lua_xmove(co, L, nres);
    return nres;
}

/* co_wrap(co) -> a function that resumes co: the coroutine.wrap
 * replacement, with the original's results and errors. */
static int l_co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_settop(L, 1);
    lua_pushcclosure(L, wrapped, 1);
    return 1;
}

/* parse_listen(addr) -> true, or nil and why: the same parser the manager
 * binds with, so that --check refuses what a run would refuse. */
static int l_parse_listen(lua_State *L)
{
    struct coty_addr a;
    char why[160];
    size_t len;
    const char *spec = luaL_checklstring(L, 1, &len);

    if (strlen(spec) != len) { /* C would see only what is before the NUL */
        lua_pushnil(L);
        lua_pushliteral(L, "the address contains a NUL byte");
        return 2;
    }
    if (coty_sock_parse(spec, &a, why, sizeof why) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sockets() -> { fd, ... }: the listening sockets of this worker's service. */
static int l_sockets(lua_State *L)
{
    int n;
    const int *fds = coty_worker_sockets(&n);

    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, fds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- logging ---------------------------------------------------------- */

static enum coty_level check_level(lua_State *L, int arg)
{
    int level = coty_log_parse_level(luaL_checkstring(L, arg));

    if (level < 0)
        luaL_argerror(L, arg, "level must be debug, info, warning or error");
    return (enum coty_level)level;
}

/* parse_level(name) -> the level's own name, or nil: the one rule for
 * level names, shared with --log-level and COTYLUA_LOG_LEVEL. */
static int l_parse_level(lua_State *L)
{
    int level = coty_log_parse_level(luaL_checkstring(L, 1));

    if (level < 0)
        return 0;
    lua_pushstring(L, coty_log_level_name((enum coty_level)level));
    return 1;
}

static int l_log(lua_State *L)
{
    enum coty_level level = check_level(L, 1);

    coty_log(level, "%s", luaL_checkstring(L, 2));
    return 0;
}

/* log_level([name [, default]]) -> the level's name. With default true,
 * the level is only a default: --log-level and COTYLUA_LOG_LEVEL win. */
static int l_log_level(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        enum coty_level level = check_level(L, 1);
        if (lua_toboolean(L, 2))
            coty_log_set_default_level(level);
        else
            coty_log_set_level(level);
    }
    lua_pushstring(L, coty_log_level_name(coty_log_get_level()));
    return 1;
}

static const luaL_Reg funcs[] = {
    {"manager", l_manager},
    {"restart_defaults", l_restart_defaults},
    {"options", l_options},
    {"add", l_add},
    {"reconfigure", l_reconfigure},
    {"run", l_run},
    {"shutdown", l_shutdown},
    {"check_mode", l_check_mode},
    {"in_worker", l_in_worker},
    {"warn_shared_fds", l_warn_shared_fds},
    {"sleep", l_sleep},
    {"wait", l_wait},
    {"stopping", l_stopping},
    {"signal_fd", l_signal_fd},
    {"drain_on_stop", l_drain_on_stop},
    {"dispatch", l_dispatch},
    {"now", l_now},
    {"getpid", l_getpid},
    {"sockets", l_sockets},
    {"parse_listen", l_parse_listen},
    {"co_enter", l_co_enter},
    {"co_leave", l_co_leave},
    {"co_wrap", l_co_wrap},
    {"log", l_log},
    {"log_level", l_log_level},
    {"parse_level", l_parse_level},
    {"user", l_user},
    {"group", l_group},
    {"rlimit_names", l_rlimit_names},
    {NULL, NULL},
};

/* libsystemd missing: a warning, written the signal-safe way as sdlib asks. */
static void sd_missing(const char *why) { coty_log_safe(COTY_WARNING, why); }

int luaopen_cotylua_core(lua_State *L)
{
    const char *bad_level = coty_log_setup();

    if (bad_level)
        return luaL_error(L, "unknown log level in COTYLUA_LOG_LEVEL: '%s' (" COTY_LEVEL_NAMES ")",
                          bad_level);
    coty_sd_set_report(sd_missing);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, COTYLUA_VERSION);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, COTY_WORKERS_MAX);
    lua_setfield(L, -2, "workers");
    lua_pushnumber(L, COTY_SECONDS_MAX);
    lua_setfield(L, -2, "seconds");
    lua_pushinteger(L, COTY_BURST_MAX);
    lua_setfield(L, -2, "burst");
    lua_pushinteger(L, COTY_NICE_MIN);
    lua_setfield(L, -2, "nice_min");
    lua_pushinteger(L, COTY_NICE_MAX);
    lua_setfield(L, -2, "nice_max");
    lua_setfield(L, -2, "limits");
    return 1;
}
