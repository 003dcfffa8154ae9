/*
 * worker.c - the child side of the fork; see worker.h.
 *
 * Phases: INIT (signals are only recorded; they are delivered once init
 * returns), RUN (a signal sets a Lua hook, so terminate or reload runs at
 * the next safe point, wherever run is), TERMINATING (further SIGTERM and
 * SIGHUP are ignored). The graceful timeout is a POSIX timer armed by the
 * SIGTERM handler itself (timer_settime is async-signal-safe): it bounds
 * the time from the request to the exit, even when run is stuck in C.
 *
 * A worker driven by an event loop asks for loop delivery (signal_fd):
 * the handlers then poke a self-pipe instead of hooking Lua, and the loop
 * calls coty_worker_dispatch when the pipe is readable, between two of its
 * callbacks. A service with `drain_on_stop` keeps running after terminate
 * returns (it finishes its work in flight) and exits when run returns.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "lcall.h"
#include "log.h"
#include "loop.h"
#include "proctitle.h"
#include "selfpipe.h"

enum phase { P_NONE, P_INIT, P_RUN, P_TERMINATING };

#define MAX_SAVED 16 /* threads whose own hook waits to be given back */
/* The longest single kernel wait, in seconds: a longer timeout is waited
 * for in pieces (a time_t cast of 1e19 would overflow). */
#define LONG_WAIT (3600.0 * 24 * 365)

static volatile sig_atomic_t phase = P_NONE;
static volatile sig_atomic_t got_term, got_hup;
static volatile sig_atomic_t loop_mode; /* signals go to the self-pipe, not a hook */
static int in_reload;
static int drains;              /* the service drains on stop (drain_on_stop) */
static int draining;            /* terminate returned; waiting for run to return */
static lua_State *main_L;       /* the main thread of the worker */
/* The thread that runs now (NULL: main_L), as far as resumes through
 * coroutine.resume and coroutine.wrap tell: the handler hooks it, since
 * Lua hooks are per thread. A resume sets it to the coroutine, the return
 * from a resume to the thread that resumed: no stack, so any depth. */
static lua_State *volatile current;
/* The hooks of the user (debug.sethook) that the delivery hook replaced,
 * given back once it has run. Changed by the handler, and elsewhere only
 * with SIGTERM and SIGHUP blocked. */
static struct saved_hook {
    lua_State *L;
    lua_Hook fn;
    int mask, count;
} user_hooks[MAX_SAVED];
static volatile sig_atomic_t n_user_hooks;
/* Set while coty_worker_wait() sleeps with the signals unblocked: it
 * delivers them itself when the sleep ends, so no hook is needed (setting
 * one writes to every frame of the Lua stack: pages the worker would
 * otherwise keep sharing with the manager). */
static volatile sig_atomic_t waiting;
static int instance_ref = LUA_NOREF;
static timer_t term_timer;
static int has_timer;
static struct itimerspec term_timeout;
static volatile sig_atomic_t timer_armed;
static const char *stage = "init"; /* for the message of an error in the worker */
static const int *sockets;      /* the service's listening sockets */
static int nsockets;

int coty_worker_stopping(void) { return got_term != 0; }

void coty_worker_set_drain(int on) { drains = on; }

const int *coty_worker_sockets(int *n)
{
    *n = nsockets;
    return sockets;
}

static void hook(lua_State *L, lua_Debug *ar);
static void arm_term_timer(void);

/* The thread running now, as far as resumes through coroutine.resume and
 * coroutine.wrap tell. Signal-safe. */
static lua_State *running(void)
{
    lua_State *L = current;

    return L ? L : main_L;
}

static int find_saved(lua_State *L)
{
    for (int i = 0; i < n_user_hooks; i++)
        if (user_hooks[i].L == L)
            return i;
    return -1;
}

/* Installs the delivery hook on L, keeping L's own hook to give back.
 * Signal-safe; outside the handler, called with the signals blocked. */
static void set_hook(lua_State *L)
{
    lua_Hook fn = lua_gethook(L);
    int n = n_user_hooks;

    if (fn && fn != hook && find_saved(L) < 0 && n < MAX_SAVED) {
        user_hooks[n] = (struct saved_hook){L, fn, lua_gethookmask(L), lua_gethookcount(L)};
        n_user_hooks = n + 1;
    }
    lua_sethook(L, hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Gives L back its own hook (or none). Not signal-safe: signals blocked. */
static void restore_hook(lua_State *L)
{
    int i = find_saved(L);

    if (i < 0) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    lua_sethook(L, user_hooks[i].fn, user_hooks[i].mask, user_hooks[i].count);
    user_hooks[i] = user_hooks[n_user_hooks - 1];
    n_user_hooks = n_user_hooks - 1;
}

static void block_signals(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, old);
}

/* set_hook outside a handler. */
static void set_hook_blocked(lua_State *L)
{
    sigset_t old;

    block_signals(&old);
    set_hook(L);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ---- signal handlers: flags, a hook, a timer; nothing else ----------- */

static void on_signal(int sig)
{
    int saved = errno;

    if (phase == P_TERMINATING)
        return;
    if (sig == SIGTERM && !got_term) {
        got_term = 1;
        arm_term_timer();
    } else if (sig == SIGHUP) {
        got_hup = 1;
    }
    if (loop_mode)
        coty_selfpipe_poke();
    else if (phase == P_RUN && !waiting)
        set_hook(running());
    errno = saved;
}

static void on_timeout(int sig)
{
    (void)sig;
    coty_log_safe(COTY_ERROR, "graceful shutdown timeout exceeded; exiting with status 1");
    _exit(1);
}

/* ---- calling into Lua ----------------------------------------------- */

static void finish(int status) __attribute__((noreturn));
static void finish(int status)
{
    fflush(NULL);
    _exit(status);
}

/* instance:NAME() when the instance has NAME (NAME is argument 1);
 * returns whether it had. Runs protected. */
static int method_call(lua_State *L)
{
    const char *name = lua_tostring(L, 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, instance_ref);
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* The coroutine of call_method(), made once and kept in the registry: a
 * method that returned leaves it ready for the next, so a reload creates
 * no thread. While it runs (a terminate from within reload), another
 * call gets a new one. Either way the coroutine is pushed on L. */
static lua_State *spare;
static int spare_ref = LUA_NOREF, spare_busy;

static lua_State *method_thread(lua_State *L)
{
    lua_State *co;

    if (spare && !spare_busy) {
        spare_busy = 1;
        lua_rawgeti(L, LUA_REGISTRYINDEX, spare_ref);
        return spare;
    }
    co = lua_newthread(L);
    if (!spare) {
        lua_pushvalue(L, -1);
        spare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        spare = co;
        spare_busy = 1;
    }
    return co;
}

/* Runs instance:name() (reload, terminate) in a coroutine of its own: Lua
 * turns hooks off in a thread while it runs a hook, and this may be called
 * from the hook, but a SIGTERM must still reach a busy reload. An error
 * logs the traceback and exits 2. Returns whether the method exists. */
static int call_method(lua_State *L, const char *name)
{
    lua_State *co = method_thread(L);
    int nres, status, found;

    lua_pushcfunction(co, method_call);
    lua_pushstring(co, name);
    coty_worker_enter(co);
    status = lua_resume(co, L, 1, &nres);
    coty_worker_leave(L);
    if (status != LUA_OK) {
        const char *msg = status == LUA_YIELD ? "attempt to yield from the service method"
                                              : lua_tostring(co, -1);
        luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
        coty_error("error in %s: %s", name, lua_tostring(L, -1));
        finish(2);
    }
    found = lua_toboolean(co, -1);
    if (co == spare) {
        lua_settop(co, 0); /* finished: ready to start another function */
        spare_busy = 0;
    }
    lua_pop(L, 1); /* the coroutine */
    return found;
}

/* Arms the graceful timeout once. Async-signal-safe. */
static void arm_term_timer(void)
{
    if (has_timer && !timer_armed) {
        timer_armed = 1;
        timer_settime(term_timer, 0, &term_timeout, NULL);
    }
}

/* instance:terminate() on the thread that runs: from P_TERMINATING on no
 * signal is delivered, so no hook has to reach it and it needs no
 * coroutine of its own (none is created). An error logs the traceback and
 * exits 2; the graceful timeout bounds it. The worker exits 0 once it
 * returns, unless the service drains: then the worker goes back to what it
 * was doing and exits when run returns. */
static void terminate(lua_State *L)
{
    phase = P_TERMINATING;
    got_term = 1;
    arm_term_timer(); /* not armed yet when a SIGHUP led here */
    lua_pushcfunction(L, method_call);
    lua_pushliteral(L, "terminate");
    if (coty_lua_call(L, 1, 0) != LUA_OK) {
        coty_error("error in terminate: %s", lua_tostring(L, -1));
        finish(2);
    }
    if (!drains)
        finish(0);
    draining = 1;
    coty_info("draining: the worker exits when run returns");
}

static void reload(lua_State *L)
{
    got_hup = 0;
    in_reload = 1;
    if (!call_method(L, "reload")) {
        coty_info("no reload(): stopping to be restarted");
        terminate(L);
    }
    in_reload = 0;
}

/* True when a recorded signal may be delivered now. */
static int deliverable(void)
{
    return phase == P_RUN && (got_term || (got_hup && !in_reload));
}

/* Delivers what the handlers recorded. Called from the hook and from the
 * waits, never from a handler. */
static void dispatch(lua_State *L)
{
    while (deliverable()) {
        if (got_term)
            terminate(L);
        else
            reload(L);
    }
}

/* The user's hook comes back before delivery: a reload that returns
 * leaves it as it was (and the reload's coroutine inherits it). */
static void hook(lua_State *L, lua_Debug *ar)
{
    sigset_t old;

    (void)ar;
    block_signals(&old);
    restore_hook(L);
    sigprocmask(SIG_SETMASK, &old, NULL);
    dispatch(L);
}

void coty_worker_enter(lua_State *co)
{
    current = co;
    if (deliverable() && !loop_mode)
        set_hook_blocked(co);
}

void coty_worker_leave(lua_State *L)
{
    current = L == main_L ? NULL : L;
    if (deliverable() && !loop_mode)
        set_hook_blocked(L);
}

/* ---- waiting -------------------------------------------------------- */

/* Seconds as a timespec. Signal-safe. A positive time too small for a
 * nanosecond is one nanosecond (a real delay, never "now" or "disarm");
 * one past LONG_WAIT is LONG_WAIT (the caller waits again). */
static void to_timespec(double s, struct timespec *ts)
{
    if (!(s > 0)) {
        *ts = (struct timespec){0, 0};
        return;
    }
    if (s > LONG_WAIT)
        s = LONG_WAIT;
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec > 999999999)
        ts->tv_nsec = 999999999;
    if (ts->tv_sec == 0 && ts->tv_nsec == 0)
        ts->tv_nsec = 1;
}

/* What is left until deadline (NULL: none), or zero once it has passed. */
static struct timespec *remaining(double deadline, struct timespec *ts)
{
    if (deadline < 0)
        return NULL;
    to_timespec(deadline - coty_now(), ts);
    return ts;
}

/* The wait without an fd: TERM and HUP (those of them that the caller
 * had not blocked itself) stay blocked and are taken here (sigtimedwait)
 * and recorded as the handler would have, so that an idle worker wakes
 * without a signal frame. As ppoll: -1 with EINTR after a signal, 0 once
 * tp passed. */
static int wait_signal(const sigset_t *old, const struct timespec *tp)
{
    sigset_t want;
    int sig;

    sigemptyset(&want);
    if (sigismember(old, SIGTERM) == 0)
        sigaddset(&want, SIGTERM);
    if (sigismember(old, SIGHUP) == 0)
        sigaddset(&want, SIGHUP);
    sig = sigtimedwait(&want, NULL, tp);

    if (sig > 0) {
        on_signal(sig); /* `waiting` is set: no hook */
        errno = EINTR;
        return -1;
    }
    return errno == EAGAIN ? 0 : -1;
}

int coty_worker_wait(lua_State *L, int fd, short events, double timeout)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    /* beyond a million years (math.huge too): no limit */
    double deadline = timeout < 0 || timeout > 3.2e13 ? -1 : coty_now() + timeout;
    int tiny = timeout > 0; /* a positive timeout waits at least once */
    sigset_t block, old;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    for (;;) {
        struct timespec ts, *tp;
        int n;

        if (draining)
            return 0; /* stopping: a plain loop notices at once */
        sigprocmask(SIG_BLOCK, &block, &old);
        if (deliverable()) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            dispatch(L);
            continue;
        }
        tp = remaining(deadline, &ts);
        if (tp && tp->tv_sec == 0 && tp->tv_nsec == 0 && !tiny) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            return 0;
        }
        if (tp && tp->tv_sec == 0 && tp->tv_nsec == 0)
            tp->tv_nsec = 1;
        tiny = 0;
        /* ppoll unblocks atomically, sigtimedwait takes what is pending:
         * a signal that came after the check above ends the wait at once. */
        waiting = 1;
        n = fd >= 0 ? ppoll(&pfd, 1, tp, &old) : wait_signal(&old, tp);
        /* Blocked again here: a signal that comes once they are unblocked
         * finds waiting = 0 and hooks the thread. */
        waiting = 0;
        {
            int saved = errno;
            sigprocmask(SIG_SETMASK, &old, NULL);
            errno = saved;
        }
        if (n > 0)
            return pfd.revents;
        if (n == 0 && tp && deadline - coty_now() <= 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- delivery through an event loop ---------------------------------- */

int coty_worker_signal_fd(void)
{
    int fd;

    if (phase == P_NONE) {
        errno = EPERM;
        return -1;
    }
    if ((fd = coty_selfpipe_open()) < 0)
        return -1;
    loop_mode = 1;
    if (got_term || got_hup)
        coty_selfpipe_poke();
    return fd;
}

void coty_worker_dispatch(lua_State *L)
{
    coty_selfpipe_drain();
    dispatch(L);
}

/* ---- start-up ------------------------------------------------------- */

/* SIGTERM interrupts a C call (no SA_RESTART): a stop must not wait for a
 * read that may never end. SIGHUP restarts it (SA_RESTART): a routine
 * reload must not turn into an EINTR error in code that does not expect
 * one (io.lines()); it is delivered when the call returns. cotylua's own
 * waits (ppoll) are never restarted, so they deliver both at once. */
static void set_handler(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa = {.sa_handler = fn, .sa_flags = flags};

    sigfillset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* True for the signals whose disposition reset_process() sets anyway. */
static int kept(int sig, const struct coty_worker_info *info)
{
    return sig == SIGTERM || sig == SIGHUP || sig == SIGALRM ||
           (sig == SIGPIPE && info->sigpipe_ignored);
}

static void unset(const char *name)
{
    if (getenv(name))
        unsetenv(name);
}

/* Everything of the manager's goes: dispositions, mask (still blocked
 * until the end of start-up), notify variables. Only the dispositions the
 * manager found caught or ignored are reset (info->caught): the others
 * are at SIG_DFL already. */
static void reset_process(const struct coty_worker_info *info)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};

    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(info->caught, sig) == 1 && !kept(sig, info))
            sigaction(sig, &dfl, NULL);
    /* The one disposition a worker keeps: an ignored SIGPIPE, as network
     * libraries set it when the services file loads them (luasocket). The
     * manager itself ignores SIGPIPE, so the worker's is SIG_IGN already. */
    if (info->sigpipe_ignored && sigismember(info->caught, SIGPIPE) != 1)
        sigaction(SIGPIPE, &ign, NULL);
    set_handler(SIGTERM, on_signal, 0);
    set_handler(SIGHUP, on_signal, SA_RESTART);
    set_handler(SIGALRM, on_timeout, 0);
    /* The manager may die before this line: then nobody would send the
     * death signal, so ask the kernel first and look afterwards. */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() != info->manager_pid)
        raise(SIGTERM); /* blocked now: delivered once init is done */
    coty_log_may_wait(1); /* a worker's lines wait for stderr, but not on_timeout's */
    unset("NOTIFY_SOCKET");
    unset("WATCHDOG_USEC");
    unset("WATCHDOG_PID");
}

static void arm_timeout(double seconds)
{
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};

    /* 0: no timeout; past a million years: none either */
    if (!(seconds > 0) || seconds > 3.2e13 ||
        timer_create(CLOCK_MONOTONIC, &sev, &term_timer) < 0)
        return;
    to_timespec(seconds, &term_timeout.it_value);
    if (seconds > LONG_WAIT) /* a POSIX timer takes any time_t: no piecing */
        term_timeout.it_value.tv_sec = (time_t)seconds;
    has_timer = 1;
}

static void identify(const struct coty_worker_info *info)
{
    char name[64], suffix[32], title[160];

    /* a long service name is cut, the worker id stays */
    snprintf(suffix, sizeof suffix, " worker(%d)", info->worker_id);
    coty_log_fit(name, sizeof name, info->name, suffix);
    snprintf(title, sizeof title, "cotylua: %s", name);
    coty_log_set_procname(name);
    coty_log_set_subject(info->name, info->worker_id);
    coty_proctitle_set(title);
}

/* Tells the manager that init and the on_new_worker hooks are done. A
 * manager that is gone is no error: MSG_NOSIGNAL, no SIGPIPE. */
static void report_ready(int fd)
{
    pid_t pid = getpid();

    if (fd < 0)
        return;
    while (send(fd, &pid, sizeof pid, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    close(fd);
}

/* The worker's whole Lua life, under one protected call: start(service_id,
 * worker_id) builds the instance (init, on_new_worker hooks), then run,
 * then idling until a signal ends it. Never returns normally. */
static int body(lua_State *L)
{
    int ready_fd = (int)lua_tointeger(L, 4);

    lua_settop(L, 3);
    lua_call(L, 2, 1);
    instance_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    phase = P_RUN;
    stage = "run";
    dispatch(L); /* what came during init; a terminate never reports ready */
    if (draining)
        finish(0); /* nor starts run, even when the service drains */
    report_ready(ready_fd);
    lua_pushcfunction(L, method_call);
    lua_pushliteral(L, "run");
    lua_call(L, 1, 0);
    stage = "the worker";
    while (!draining)
        coty_worker_wait(L, -1, 0, -1);
    finish(0);
    return 0;
}

void coty_worker_main(lua_State *L, const struct coty_worker_info *info, int start)
{
    sigset_t none;

    main_L = L;
    sockets = info->fds;
    nsockets = info->nfds;
    start = lua_absindex(L, start);
    reset_process(info);
    identify(info);
    coty_identity_become(info->identity);
    arm_timeout(info->graceful_timeout);
    phase = P_INIT;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    lua_pushcfunction(L, body);
    lua_pushvalue(L, start);
    lua_pushinteger(L, info->service_id);
    lua_pushinteger(L, info->worker_id);
    lua_pushinteger(L, info->ready_fd);
    if (coty_lua_call(L, 4, 0) != LUA_OK)
        coty_error("error in %s: %s", stage, lua_tostring(L, -1));
    finish(2);
}
