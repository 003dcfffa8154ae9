/*
 * proc.c - the spec suite's process helper.
 *
 * A small Lua 5.4 C module (require "proc") used by the busted specs in
 * spec/ to drive real processes: spawn children with a controlled
 * environment, signal them, wait for them with a timeout (pidfd + poll,
 * no busy sleeping), inspect /proc, and talk to them over pipes and
 * AF_UNIX datagram sockets.  It is test support code only; the cotylua
 * engine never links against it.
 *
 * Build (from the repository root):
 *   mkdir -p build/spec && gcc -std=c99 -Wall -Wextra -Wshadow \
 *     -Wstrict-prototypes -Wmissing-prototypes -fPIC -shared \
 *     $(pkg-config --cflags lua5.4) spec/support/proc.c -o build/spec/proc.so
 *
 * Conventions: misuse (wrong argument types, unknown signal names, ...)
 * raises a Lua error; runtime failures return nil, message, errno.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

int luaopen_proc(lua_State *L);

/* ------------------------------------------------------------------ */
/* small utilities                                                     */
/* ------------------------------------------------------------------ */

/* Push nil, "[what: ]strerror(err)", err and return 3. */
static int fail_errno(lua_State *L, const char *what, int err)
{
    lua_pushnil(L);
    if (what)
        lua_pushfstring(L, "%s: %s", what, strerror(err));
    else
        lua_pushstring(L, strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

static int fail_msg(lua_State *L, const char *msg, int err)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushinteger(L, err);
    return 3;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Optional timeout argument: nil or negative means "forever" (-1). */
static double opt_timeout(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return -1.0;
    double t = luaL_checknumber(L, idx);
    return t < 0 ? -1.0 : t;
}

/* Milliseconds left until deadline, rounded up; -1 if no deadline. */
static int ms_left(double deadline)
{
    if (deadline < 0)
        return -1;
    double left = deadline - mono_now();
    if (left <= 0)
        return 0;
    double ms = ceil(left * 1000.0);
    return ms > (double)INT_MAX ? INT_MAX : (int)ms;
}

/*
 * Wait until fd is readable (or hung up) or the timeout passes.
 * Returns 1 when readable, 0 on timeout, -1 on error (errno set).
 */
static int wait_readable(int fd, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : mono_now() + timeout;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
        int r = poll(&p, 1, ms_left(deadline));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r > 0) {
            if (p.revents & POLLNVAL) {
                errno = EBADF;
                return -1;
            }
            return 1;
        }
        if (deadline >= 0 && mono_now() >= deadline)
            return 0;
    }
}

static int checkfd(lua_State *L, int idx)
{
    lua_Integer fd = luaL_checkinteger(L, idx);
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, idx, "bad file descriptor");
    return (int)fd;
}

static pid_t checkpid(lua_State *L, int idx)
{
    lua_Integer pid = luaL_checkinteger(L, idx);
    luaL_argcheck(L, pid >= 0 && pid <= INT_MAX, idx, "bad pid");
    return (pid_t)pid;
}

/* ------------------------------------------------------------------ */
/* signals                                                             */
/* ------------------------------------------------------------------ */

static const struct { const char *name; int num; } signames[] = {
    { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT },
    { "ILL", SIGILL },   { "TRAP", SIGTRAP },   { "ABRT", SIGABRT },
    { "IOT", SIGABRT },  { "BUS", SIGBUS },     { "FPE", SIGFPE },
    { "KILL", SIGKILL }, { "USR1", SIGUSR1 },   { "SEGV", SIGSEGV },
    { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },   { "ALRM", SIGALRM },
    { "TERM", SIGTERM }, { "CHLD", SIGCHLD },   { "CONT", SIGCONT },
    { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },   { "TTIN", SIGTTIN },
    { "TTOU", SIGTTOU }, { "URG", SIGURG },     { "XCPU", SIGXCPU },
    { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
    { "WINCH", SIGWINCH }, { "IO", SIGIO },     { "SYS", SIGSYS },
#ifdef SIGPWR
    { "PWR", SIGPWR },
#endif
#ifdef SIGSTKFLT
    { "STKFLT", SIGSTKFLT },
#endif
};

/* Signal argument: a number (0 allowed) or a name with optional SIG prefix. */
static int checksig(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, idx);
        luaL_argcheck(L, n >= 0 && n < NSIG, idx, "bad signal number");
        return (int)n;
    }
    const char *name = luaL_checkstring(L, idx);
    const char *s = name;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
        if (strcasecmp(s, signames[i].name) == 0)
            return signames[i].num;
    return luaL_argerror(L, idx,
                         lua_pushfstring(L, "unknown signal '%s'", name));
}

static int l_signum(lua_State *L)
{
    lua_pushinteger(L, checksig(L, 1));
    return 1;
}

static int l_kill(lua_State *L)
{
    pid_t pid = checkpid(L, 1);
    int sig = checksig(L, 2);
    luaL_argcheck(L, pid > 0, 1, "pid must be positive");
    if (kill(pid, sig) < 0)
        return fail_errno(L, "kill", errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_killpg(lua_State *L)
{
    pid_t pgid = checkpid(L, 1);
    int sig = checksig(L, 2);
    luaL_argcheck(L, pgid > 1, 1, "pgid must be > 1");
    if (killpg(pgid, sig) < 0)
        return fail_errno(L, "killpg", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* spawn                                                               */
/* ------------------------------------------------------------------ */

enum spawn_stage {
    ST_SETPGID = 1, ST_STDIN, ST_STDOUT, ST_STDERR, ST_DUP2, ST_CHDIR,
    ST_EXEC
};

struct spawn_err { int stage; int err; };

struct spawn_req {
    char **argv;
    char **envp;          /* NULL: inherit environ */
    const char *cwd;      /* NULL: inherit */
    const char *path[3];  /* stdin, stdout, stderr; NULL: inherit */
    int newpgrp;
    int errfd;            /* CLOEXEC pipe write end, >= 3 */
};

static void child_fail(int errfd, int stage, int err)
    __attribute__((noreturn));
static void child_fail(int errfd, int stage, int err)
{
    struct spawn_err e = { stage, err };
    if (write(errfd, &e, sizeof e) < 0) {
        /* nothing sensible left to do */
    }
    _exit(127);
}

static void child_reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        if (sigaction(s, &sa, NULL) == 0 || errno != EINVAL)
            continue;
#ifdef SYS_rt_sigaction
        /*
         * glibc refuses to touch the signals it reserves for itself (32,
         * 33), but a parent may have left them ignored, and "ignored"
         * survives exec.  An all-zero kernel sigaction is SIG_DFL with no
         * flags and an empty mask on every architecture.
         */
        unsigned long ksa[8];
        memset(ksa, 0, sizeof ksa);
        syscall(SYS_rt_sigaction, s, ksa, NULL, (size_t)(NSIG / 8));
#endif
    }
}

/* Close every fd >= 3 except keep. keep must be >= 3. */
static void child_close_fds(int keep)
{
#ifdef SYS_close_range
    int ok = 1;
    if (keep > 3 && syscall(SYS_close_range, 3U, (unsigned)keep - 1U, 0U) < 0)
        ok = 0;
    if (ok && syscall(SYS_close_range, (unsigned)keep + 1U, ~0U, 0U) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1048576)
        max = 1048576;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* Open path as the child's fd target (0, 1 or 2). */
static void child_redirect(const struct spawn_req *rq, int target, int stage)
{
    const char *path = rq->path[target];
    if (!path)
        return;
    int flags = target == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | O_APPEND);
    int fd = open(path, flags | O_NOCTTY, 0644);
    if (fd < 0)
        child_fail(rq->errfd, stage, errno);
    if (fd != target) {
        if (dup2(fd, target) < 0)
            child_fail(rq->errfd, ST_DUP2, errno);
        close(fd);
    }
}

static void child_exec(const struct spawn_req *rq) __attribute__((noreturn));
static void child_exec(const struct spawn_req *rq)
{
    if (rq->newpgrp && setpgid(0, 0) < 0)
        child_fail(rq->errfd, ST_SETPGID, errno);
    child_reset_signals();
    child_redirect(rq, 0, ST_STDIN);
    child_redirect(rq, 1, ST_STDOUT);
    child_redirect(rq, 2, ST_STDERR);
    child_close_fds(rq->errfd);
    if (rq->cwd && chdir(rq->cwd) < 0)
        child_fail(rq->errfd, ST_CHDIR, errno);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (rq->envp)
        execvpe(rq->argv[0], rq->argv, rq->envp);
    else
        execvp(rq->argv[0], rq->argv);
    child_fail(rq->errfd, ST_EXEC, errno);
}

/*
 * Collect the string array at field `key` of the table at index 1 into a
 * NULL-terminated char* array.  The strings stay on the Lua stack so the
 * pointers remain valid until spawn returns.  Returns NULL if absent.
 */
static char **collect_strings(lua_State *L, const char *key, int required)
{
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TNIL && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TTABLE)
        luaL_error(L, "spawn: field '%s' must be a table of strings", key);
    int tidx = lua_gettop(L);
    lua_Unsigned n = lua_rawlen(L, tidx);
    if (required && n == 0)
        luaL_error(L, "spawn: field '%s' must not be empty", key);
    if (n > 100000)
        luaL_error(L, "spawn: field '%s' is too long", key);
    char **arr = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof(char *), 0);
    luaL_checkstack(L, (int)n + 8, "spawn: too many strings");
    for (lua_Unsigned i = 1; i <= n; i++) {
        int et = lua_rawgeti(L, tidx, (lua_Integer)i);
        if (et != LUA_TSTRING && et != LUA_TNUMBER)
            luaL_error(L, "spawn: %s[%d] must be a string", key, (int)i);
        arr[i - 1] = (char *)lua_tostring(L, -1); /* stays on the stack */
    }
    arr[n] = NULL;
    return arr;
}

static const char *opt_string_field(lua_State *L, const char *key,
                                    const char *def)
{
    int t = lua_getfield(L, 1, key);
    if (t == LUA_TNIL)
        return def;     /* leave the nil on the stack; harmless */
    if (t != LUA_TSTRING)
        luaL_error(L, "spawn: field '%s' must be a string", key);
    return lua_tostring(L, -1);
}

static int spawn_error(lua_State *L, const struct spawn_req *rq,
                       const struct spawn_err *e)
{
    char what[64];
    const char *subject = what;
    switch (e->stage) {
    case ST_SETPGID: subject = "setpgid"; break;
    case ST_STDIN:
    case ST_STDOUT:
    case ST_STDERR:
        lua_pushfstring(L, "open %s", rq->path[e->stage - ST_STDIN]);
        subject = lua_tostring(L, -1);
        break;
    case ST_DUP2: subject = "dup2"; break;
    case ST_CHDIR:
        lua_pushfstring(L, "chdir %s", rq->cwd);
        subject = lua_tostring(L, -1);
        break;
    case ST_EXEC:
        lua_pushfstring(L, "exec %s", rq->argv[0]);
        subject = lua_tostring(L, -1);
        break;
    default:
        snprintf(what, sizeof what, "spawn stage %d", e->stage);
        break;
    }
    return fail_errno(L, subject, e->err);
}

/* Read the child's error report; 0 bytes means exec succeeded. */
static ssize_t read_spawn_report(int fd, struct spawn_err *e)
{
    ssize_t r;
    do
        r = read(fd, e, sizeof *e);
    while (r < 0 && errno == EINTR);
    return r;
}

static void reap_blocking(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int l_spawn(lua_State *L)
{
    struct spawn_req rq;
    memset(&rq, 0, sizeof rq);
    luaL_checktype(L, 1, LUA_TTABLE);
    rq.argv = collect_strings(L, "argv", 1);
    rq.envp = collect_strings(L, "env", 0);
    rq.cwd = opt_string_field(L, "cwd", NULL);
    rq.path[0] = opt_string_field(L, "stdin", "/dev/null");
    rq.path[1] = opt_string_field(L, "stdout", NULL);
    rq.path[2] = opt_string_field(L, "stderr", NULL);
    lua_getfield(L, 1, "newpgrp");
    rq.newpgrp = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    luaL_checkstack(L, 16, "spawn");

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return fail_errno(L, "pipe", errno);
    /* Keep the write end out of 0..2 so redirections cannot clobber it. */
    if (pfd[1] < 3) {
        int nfd = fcntl(pfd[1], F_DUPFD_CLOEXEC, 3);
        int err = errno;
        close(pfd[1]);
        if (nfd < 0) {
            close(pfd[0]);
            return fail_errno(L, "fcntl", err);
        }
        pfd[1] = nfd;
    }
    rq.errfd = pfd[1];

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(&rq);
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return fail_errno(L, "fork", fork_errno);
    }
    if (rq.newpgrp)
        setpgid(pid, pid); /* also done in the child; avoids a race */

    struct spawn_err e;
    ssize_t r = read_spawn_report(pfd[0], &e);
    close(pfd[0]);
    if (r == (ssize_t)sizeof e) {
        reap_blocking(pid);
        return spawn_error(L, &rq, &e);
    }
    lua_pushinteger(L, pid);
    return 1;
}

/* ------------------------------------------------------------------ */
/* waiting                                                             */
/* ------------------------------------------------------------------ */

static int push_status(lua_State *L, int st)
{
    lua_createtable(L, 0, 2);
    if (WIFEXITED(st)) {
        lua_pushinteger(L, WEXITSTATUS(st));
        lua_setfield(L, -2, "code");
    } else if (WIFSIGNALED(st)) {
        lua_pushinteger(L, WTERMSIG(st));
        lua_setfield(L, -2, "signal");
#ifdef WCOREDUMP
        if (WCOREDUMP(st)) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "core");
        }
#endif
    }
    return 1;
}

/* waitpid() retrying on EINTR. */
static pid_t waitpid_retry(pid_t pid, int *st, int flags)
{
    pid_t r;
    do
        r = waitpid(pid, st, flags);
    while (r < 0 && errno == EINTR);
    return r;
}

static int wait_result(lua_State *L, pid_t r, int st)
{
    if (r < 0) {
        if (errno == ECHILD)
            return fail_msg(L, "not a child", ECHILD);
        return fail_errno(L, "waitpid", errno);
    }
    return push_status(L, st);
}

/* Fallback for kernels without pidfd_open: short sleeps. */
static int wait_sleeping(lua_State *L, pid_t pid, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : mono_now() + timeout;
    for (;;) {
        int st = 0;
        pid_t r = waitpid_retry(pid, &st, WNOHANG);
        if (r != 0)
            return wait_result(L, r, st);
        if (deadline >= 0 && mono_now() >= deadline)
            return fail_msg(L, "timeout", ETIMEDOUT);
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
    }
}

static int l_wait(lua_State *L)
{
    pid_t pid = checkpid(L, 1);
    double timeout = opt_timeout(L, 2);
    luaL_argcheck(L, pid > 0, 1, "pid must be positive");
    int st = 0;
    pid_t r = waitpid_retry(pid, &st, WNOHANG);
    if (r != 0)
        return wait_result(L, r, st);
    if (timeout == 0)
        return fail_msg(L, "timeout", ETIMEDOUT);
#ifdef SYS_pidfd_open
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0U);
#else
    int pfd = -1;
    errno = ENOSYS;
#endif
    if (pfd < 0) {
        if (errno == ENOSYS)
            return wait_sleeping(L, pid, timeout);
        return fail_errno(L, "pidfd_open", errno);
    }
    int ready = wait_readable(pfd, timeout);
    int err = errno;
    close(pfd);
    if (ready < 0)
        return fail_errno(L, "poll", err);
    if (ready == 0)
        return fail_msg(L, "timeout", ETIMEDOUT);
    r = waitpid_retry(pid, &st, 0);
    return wait_result(L, r, st);
}

static int l_reap(lua_State *L)
{
    lua_Integer n = 0;
    while (waitpid_retry(-1, NULL, WNOHANG) > 0)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

static int l_set_subreaper(lua_State *L)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) < 0)
        return fail_errno(L, "prctl", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* process inspection                                                  */
/* ------------------------------------------------------------------ */

/* Process state letter from /proc/PID/stat, or 0 if unreadable. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ' || rp[2] == '\0')
        return 0;
    return rp[2];
}

static int l_alive(lua_State *L)
{
    pid_t pid = checkpid(L, 1);
    int alive = 0;
    if (pid > 0 && kill(pid, 0) == 0) {
        char s = proc_state(pid);
        alive = s != 0 && s != 'Z' && s != 'X';
    }
    lua_pushboolean(L, alive);
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int l_getpgid(lua_State *L)
{
    pid_t pid = lua_isnoneornil(L, 1) ? 0 : checkpid(L, 1);
    pid_t g = getpgid(pid);
    if (g < 0)
        return fail_errno(L, "getpgid", errno);
    lua_pushinteger(L, g);
    return 1;
}

/* proc.setsid(): the caller leaves its process group and session (used by
 * services in specs to check that the manager still reaches them). */
static int l_setsid(lua_State *L)
{
    pid_t s = setsid();
    if (s < 0)
        return fail_errno(L, "setsid", errno);
    lua_pushinteger(L, s);
    return 1;
}

/* proc.setuid(uid) -> true, or nil, message, errno: a worker that has
 * dropped root shows that it cannot take it back. */
static int l_setuid(lua_State *L)
{
    lua_Integer uid = luaL_checkinteger(L, 1);

    if (setuid((uid_t)uid) < 0)
        return fail_errno(L, "setuid", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* proc.geteuid() -> the effective uid (specs that need root ask) */
static int l_geteuid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)geteuid());
    return 1;
}

/* proc.sigblock_all(): blocks every signal that can be blocked. */
static int l_sigblock_all(lua_State *L)
{
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) < 0)
        return fail_errno(L, "sigprocmask", errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int is_numeric(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int l_pids(lua_State *L)
{
    DIR *d = opendir("/proc");
    if (!d)
        return fail_errno(L, "opendir /proc", errno);
    lua_newtable(L);
    lua_Integer i = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (is_numeric(de->d_name)) {
            lua_pushinteger(L, strtol(de->d_name, NULL, 10));
            lua_rawseti(L, -2, ++i);
        }
    closedir(d);
    return 1;
}

/* Names of a directory's entries except "." and "..". */
static int l_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d)
        return fail_errno(L, lua_pushfstring(L, "opendir %s", path), errno);
    lua_newtable(L);
    lua_Integer i = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        lua_pushstring(L, de->d_name);
        lua_rawseti(L, -2, ++i);
    }
    closedir(d);
    return 1;
}

static int l_readlink(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t size = 256;
    for (;;) {
        char *buf = lua_newuserdatauv(L, size, 0);
        ssize_t n = readlink(path, buf, size);
        if (n < 0)
            return fail_errno(L, lua_pushfstring(L, "readlink %s", path),
                              errno);
        if ((size_t)n < size) {
            lua_pushlstring(L, buf, (size_t)n);
            return 1;
        }
        lua_pop(L, 1);
        if (size > (1u << 20))
            return fail_msg(L, "readlink: link too long", ENAMETOOLONG);
        size *= 2;
    }
}

static int l_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r)
        return fail_errno(L, lua_pushfstring(L, "realpath %s", path), errno);
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static int l_mkdtemp(lua_State *L)
{
    size_t len;
    const char *tmpl = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len >= 6 && strcmp(tmpl + len - 6, "XXXXXX") == 0, 1,
                  "template must end in XXXXXX");
    char *buf = lua_newuserdatauv(L, len + 1, 0);
    memcpy(buf, tmpl, len + 1);
    if (!mkdtemp(buf))
        return fail_errno(L, lua_pushfstring(L, "mkdtemp %s", tmpl), errno);
    lua_pushstring(L, buf);
    return 1;
}

/* ------------------------------------------------------------------ */
/* time                                                                */
/* ------------------------------------------------------------------ */

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s < 1e9, 1, "bad duration");
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, mono_now());
    return 1;
}

/* ------------------------------------------------------------------ */
/* pipes and sockets                                                   */
/* ------------------------------------------------------------------ */

static int l_pipe(lua_State *L)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return fail_errno(L, "pipe", errno);
    lua_pushinteger(L, fds[0]);
    lua_pushinteger(L, fds[1]);
    return 2;
}

static int l_read(lua_State *L)
{
    int fd = checkfd(L, 1);
    lua_Integer n = luaL_optinteger(L, 2, 4096);
    double timeout = opt_timeout(L, 3);
    luaL_argcheck(L, n > 0 && n <= (1 << 24), 2, "bad byte count");
    int ready = wait_readable(fd, timeout);
    if (ready < 0)
        return fail_errno(L, "poll", errno);
    if (ready == 0)
        return fail_msg(L, "timeout", ETIMEDOUT);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    ssize_t r;
    do
        r = read(fd, p, (size_t)n);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return fail_errno(L, "read", errno);
    luaL_pushresultsize(&b, (size_t)r);
    return 1;
}

static int l_write(lua_State *L)
{
    int fd = checkfd(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    size_t done = 0;
    while (done < len) {
        ssize_t r = write(fd, s + done, len - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(L, "write", errno);
        }
        done += (size_t)r;
    }
    lua_pushinteger(L, (lua_Integer)done);
    return 1;
}

static int l_close(lua_State *L)
{
    int fd = checkfd(L, 1);
    if (close(fd) < 0 && errno != EINTR)
        return fail_errno(L, "close", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* A leading '@' selects the abstract namespace, as sd_notify does. */
static socklen_t fill_sockaddr(lua_State *L, int arg, struct sockaddr_un *sa,
                               const char *path, size_t len)
{
    memset(sa, 0, sizeof *sa);
    luaL_argcheck(L, len > 0 && len < sizeof sa->sun_path, arg,
                  "socket path empty or too long");
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len);
    if (path[0] == '@')
        sa->sun_path[0] = '\0';
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                       (path[0] == '@' ? 0 : 1));
}

static int l_dgram_socket(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    struct sockaddr_un sa;
    socklen_t salen = fill_sockaddr(L, 1, &sa, path, len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_errno(L, "socket", errno);
    if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
        int err = errno;
        close(fd);
        return fail_errno(L, lua_pushfstring(L, "bind %s", path), err);
    }
    lua_pushinteger(L, fd);
    return 1;
}

/* Send one datagram to the AF_UNIX socket at path (unbound sender). */
static int l_send(lua_State *L)
{
    size_t len, dlen;
    const char *path = luaL_checklstring(L, 1, &len);
    const char *data = luaL_checklstring(L, 2, &dlen);
    struct sockaddr_un sa;
    socklen_t salen = fill_sockaddr(L, 1, &sa, path, len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_errno(L, "socket", errno);
    ssize_t r;
    do
        r = sendto(fd, data, dlen, 0, (struct sockaddr *)&sa, salen);
    while (r < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (r < 0)
        return fail_errno(L, lua_pushfstring(L, "sendto %s", path), err);
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
}

static int l_recv(lua_State *L)
{
    int fd = checkfd(L, 1);
    double timeout = opt_timeout(L, 2);
    int ready = wait_readable(fd, timeout);
    if (ready < 0)
        return fail_errno(L, "poll", errno);
    if (ready == 0)
        return fail_msg(L, "timeout", ETIMEDOUT);
    const size_t cap = 65536;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, cap);
    ssize_t r;
    do
        r = recv(fd, p, cap, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return fail_errno(L, "recv", errno);
    luaL_pushresultsize(&b, (size_t)r);
    return 1;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg proc_funcs[] = {
    { "spawn", l_spawn },
    { "kill", l_kill },
    { "killpg", l_killpg },
    { "signum", l_signum },
    { "wait", l_wait },
    { "reap", l_reap },
    { "set_subreaper", l_set_subreaper },
    { "alive", l_alive },
    { "getpid", l_getpid },
    { "getpgid", l_getpgid },
    { "setsid", l_setsid },
    { "sigblock_all", l_sigblock_all },
    { "setuid", l_setuid },
    { "geteuid", l_geteuid },
    { "pids", l_pids },
    { "listdir", l_listdir },
    { "readlink", l_readlink },
    { "realpath", l_realpath },
    { "mkdtemp", l_mkdtemp },
    { "sleep", l_sleep },
    { "now", l_now },
    { "pipe", l_pipe },
    { "read", l_read },
    { "write", l_write },
    { "close", l_close },
    { "dgram_socket", l_dgram_socket },
    { "send", l_send },
    { "recv", l_recv },
    { NULL, NULL }
};

int luaopen_proc(lua_State *L)
{
    luaL_newlib(L, proc_funcs);
    return 1;
}
