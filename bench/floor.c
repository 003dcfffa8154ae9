/*
 * floor.c - the benchmark's floor: about the least a manager of cotylua's
 * kind can do, measured beside it in the same run (bench/README.md).
 *
 *   floor APP KIND N
 *
 * One Lua 5.4 state with the standard libraries, in which APP (a Lua file,
 * called with KIND) is loaded before the first fork: it returns a table
 * with run(wid, pid) and, optionally, reload(wid, pid) and terminate(wid,
 * pid). The manager forks N workers from that state, reads its signals
 * from a signalfd, reaps in a
 * WNOHANG loop and restarts a dead worker under the policy of cotylua's
 * defaults: 5 immediate restarts within a 10 s sliding window, then a
 * delay of 1 s doubling up to 30 s; a worker that stayed up 10 s clears
 * its slot's history, and so does SIGHUP. SIGTERM stops the workers
 * (SIGTERM, SIGKILL to what is left after 60 s) and exits 0 once all are
 * reaped; SIGHUP is passed on. Each death is logged on stderr.
 *
 * A worker keeps the manager's signal mask, asks for SIGTERM when the
 * manager dies, calls run(wid, pid), then waits in sigwaitinfo: SIGHUP
 * calls reload(wid, pid), SIGTERM or SIGINT calls terminate(wid, pid) and
 * ends it with status 0.
 *
 * It is a yardstick, not a product: no sockets, no hooks, no readiness,
 * no titles, no Lua API for the services.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define BURST 5
#define INTERVAL 10.0
#define DELAY 1.0
#define MAX_DELAY 30.0
#define STOP_TIMEOUT 60.0
#define SERVICE "floor.service" /* the registry key of APP's table */

struct slot {
    pid_t pid;                  /* 0: not running */
    double started, respawn_at; /* respawn_at > 0: waits in backoff */
    double ring[BURST];         /* the last immediate restarts */
    int ring_len, ring_pos;
    double next_delay;          /* 0: not in backoff */
};

static struct slot *slots;
static int nslots, live, stopping, sigfd = -1;
static double stop_deadline;
static pid_t manager_pid;
static lua_State *L;
static sigset_t managed;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the worker ----------------------------------------------------- */

/* service[name](wid, pid) when the service has it; an error exits 2. */
static void call(const char *name, int wid)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SERVICE);
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return;
    }
    lua_pushinteger(L, wid);
    lua_pushinteger(L, getpid());
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "floor: worker(%d): %s\n", wid, lua_tostring(L, -1));
        fflush(NULL);
        _exit(2);
    }
    lua_pop(L, 1);
}

static void worker(int wid)
{
    close(sigfd);
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() != manager_pid)
        _exit(0);
    call("run", wid);
    for (;;) {
        int sig = sigwaitinfo(&managed, NULL);

        if (sig == SIGHUP)
            call("reload", wid);
        else if (sig == SIGTERM || sig == SIGINT)
            break;
    }
    call("terminate", wid);
    fflush(NULL);
    _exit(0);
}

/* ---- the manager ---------------------------------------------------- */

static void spawn(struct slot *s)
{
    pid_t pid = fork();

    if (pid == 0)
        worker((int)(s - slots));
    if (pid < 0) {
        fprintf(stderr, "floor: fork: %s\n", strerror(errno));
        s->respawn_at = now() + DELAY;
        return;
    }
    s->pid = pid;
    s->started = now();
    live++;
}

static void forget(struct slot *s)
{
    s->ring_len = s->ring_pos = 0;
    s->next_delay = 0;
}

/* Seconds to wait before the slot starts again (0: at once). */
static double restart_delay(struct slot *s, double t)
{
    double wait;

    if (t - s->started >= INTERVAL)
        forget(s);
    if (s->next_delay == 0 && (s->ring_len < BURST || t - s->ring[s->ring_pos] >= INTERVAL)) {
        s->ring[s->ring_pos] = t;
        s->ring_pos = (s->ring_pos + 1) % BURST;
        if (s->ring_len < BURST)
            s->ring_len++;
        return 0;
    }
    wait = s->next_delay > 0 ? s->next_delay : DELAY;
    s->next_delay = wait * 2 < MAX_DELAY ? wait * 2 : MAX_DELAY;
    return wait;
}

static struct slot *by_pid(pid_t pid)
{
    for (int i = 0; i < nslots; i++)
        if (slots[i].pid == pid)
            return &slots[i];
    return NULL;
}

static void reaped(struct slot *s, int status)
{
    double t = now(), delay;

    fprintf(stderr, "floor: worker(%d) [pid %d] exited, status %d\n", (int)(s - slots),
            (int)s->pid, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    s->pid = 0;
    live--;
    if (stopping)
        return;
    delay = restart_delay(s, t);
    if (delay > 0)
        s->respawn_at = t + delay;
    else
        spawn(s);
}

static void reap(void)
{
    int status;
    pid_t pid;
    struct slot *s;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if ((s = by_pid(pid)))
            reaped(s, status);
}

static void each_worker(int sig)
{
    for (int i = 0; i < nslots; i++)
        if (slots[i].pid)
            kill(slots[i].pid, sig);
}

static void on_signal(int sig)
{
    if (sig == SIGCHLD) {
        reap();
    } else if (sig == SIGHUP && !stopping) {
        for (int i = 0; i < nslots; i++)
            forget(&slots[i]);
        each_worker(SIGHUP);
    } else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
        stopping = 1;
        stop_deadline = now() + STOP_TIMEOUT;
        each_worker(SIGTERM);
    }
}

/* Starts the slots whose backoff is over; the poll timeout in ms until
 * the next one (or the stop deadline), -1 for none. */
static int due(void)
{
    double t = now(), next = stopping ? stop_deadline : 0;

    if (stopping && t >= stop_deadline)
        each_worker(SIGKILL);
    for (int i = 0; i < nslots && !stopping; i++) {
        struct slot *s = &slots[i];
        if (s->respawn_at > 0 && s->respawn_at <= t) {
            s->respawn_at = 0;
            spawn(s);
        } else if (s->respawn_at > 0 && (next == 0 || s->respawn_at < next)) {
            next = s->respawn_at;
        }
    }
    return next == 0 ? -1 : (int)((next - t) * 1e3) + 1;
}

static void load(const char *app, const char *kind)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadfile(L, app) != LUA_OK) {
        fprintf(stderr, "floor: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    lua_pushstring(L, kind);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        fprintf(stderr, "floor: %s: %s\n", app,
                lua_isstring(L, -1) ? lua_tostring(L, -1) : "must return a table");
        exit(2);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, SERVICE);
}

int main(int argc, char **argv)
{
    struct pollfd pfd;

    if (argc != 4 || (nslots = atoi(argv[3])) < 1) {
        fprintf(stderr, "usage: floor APP KIND N\n");
        return 2;
    }
    load(argv[1], argv[2]);
    slots = calloc((size_t)nslots, sizeof *slots);
    if (!slots)
        return 1;
    sigemptyset(&managed);
    sigaddset(&managed, SIGCHLD);
    sigaddset(&managed, SIGTERM);
    sigaddset(&managed, SIGINT);
    sigaddset(&managed, SIGHUP);
    sigprocmask(SIG_BLOCK, &managed, NULL);
    sigfd = signalfd(-1, &managed, SFD_NONBLOCK | SFD_CLOEXEC);
    manager_pid = getpid();
    for (int i = 0; i < nslots; i++)
        spawn(&slots[i]);
    pfd = (struct pollfd){.fd = sigfd, .events = POLLIN};
    while (!stopping || live > 0) {
        struct signalfd_siginfo si;

        if (poll(&pfd, 1, due()) < 0 && errno != EINTR)
            return 1;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            on_signal((int)si.ssi_signo);
    }
    return 0;
}
