/*
 * manager.c - the manager's services and their worker slots: add,
 * reconfigure, spawn, reap, respawn and reconcile; see manager.h.
 *
 * The manager's state and its transitions are mgr_run.c's; this file
 * reads the state and never changes it. After a batch of events that
 * changed something (a death, a restart delay over, a reload, a new
 * worker count: M.pending), mgr_reconcile() compares what runs with what
 * is wanted: it forks missing workers (unless their slot waits out a
 * restart delay) and stops the ones above a lowered worker count. Nothing
 * here sleeps: delays are timers in the loop, and a batch of forks is cut
 * into slices (SPAWN_SLICE seconds, or less when a signal is pending) with
 * a loop turn between them, so the manager answers signals at once even
 * while it starts thousands of workers or throttles a crash loop.
 */
#define _GNU_SOURCE
#include "manager.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "mgr.h"


#define KILL_MARGIN 1.0     /* past a worker's own graceful timeout */
#define SPAWN_SLICE 0.05    /* forks this long at most between two loop turns */

static void slot_free(struct slot *s);
static void service_free(struct service *svc);

/* ---- services ------------------------------------------------------- */

void mgr_services_free(void)
{
    for (int i = 0; i < M.nsvcs; i++)
        service_free(M.svcs[i]);
    free(M.svcs);
    M.svcs = NULL;
    M.nsvcs = 0;
    free(M.pids);
    M.pids = NULL;
    M.npids = 0;
}

const struct coty_mgr_conf *coty_mgr_conf(void) { return &M.conf; }

static struct service *service(int id)
{
    return id >= 1 && id <= M.nsvcs ? M.svcs[id - 1] : NULL;
}

static void service_free(struct service *svc)
{
    struct slot *s = mgr_slot_next(svc, NULL);

    while (s) {
        struct slot *next = mgr_slot_next(svc, s);
        slot_free(s);
        s = next;
    }
    mgr_sockets_close(svc, 1); /* removes the unix socket files it bound */
    coty_identity_free(&svc->conf.identity);
    free(svc->slots);
    free((char *)svc->conf.name);
    free(svc);
}

int coty_mgr_add(const struct coty_service_conf *conf, char *err, size_t errlen)
{
    struct service **svcs, *svc;
    const char *bad = coty_restart_check(&conf->restart);

    if (conf->workers < 1 || conf->workers > COTY_WORKERS_MAX || bad)
        return snprintf(err, errlen, "bad %s", bad ? bad : "workers"), -1;
    svcs = realloc(M.svcs, (size_t)(M.nsvcs + 1) * sizeof *svcs);
    if (!svcs)
        return snprintf(err, errlen, "out of memory"), -1;
    M.svcs = svcs;
    svc = calloc(1, sizeof *svc);
    if (!svc)
        return snprintf(err, errlen, "out of memory"), -1;
    svc->conf = *conf;
    svc->conf.listen = NULL;
    svc->conf.listen_owner = NULL;
    svc->conf.name = NULL;
    if (coty_identity_copy(&svc->conf.identity, &conf->identity) < 0 ||
        !(svc->conf.name = strdup(conf->name)) || mgr_sockets_open(svc, conf, err, errlen) < 0) {
        if (!svc->conf.name)
            snprintf(err, errlen, "out of memory");
        service_free(svc);
        return -1;
    }
    svc->id = M.nsvcs + 1;
    M.svcs[M.nsvcs++] = svc;
    M.pending = 1;
    return svc->id;
}

static double worker_timeout(const struct service *svc)
{
    return svc->conf.graceful_timeout < 0 ? M.conf.graceful_timeout
                                          : svc->conf.graceful_timeout;
}

/* ---- slots ---------------------------------------------------------- */

static void on_slot_timer(void *ud)
{
    (void)ud;
    M.pending = 1; /* mgr_reconcile() after the loop turn does the work */
}

static void on_kill_timer(void *ud)
{
    struct slot *s = ud;

    if (!s->pid)
        return;
    coty_warning("%s worker(%d) [pid %d] did not stop within %g s; sending SIGKILL",
                 s->svc->conf.name, s->wid, (int)s->pid, worker_timeout(s->svc));
    mgr_signal_worker(s, SIGKILL);
}

static struct slot *slot_new(struct service *svc, int wid)
{
    struct slot *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->svc = svc;
    s->wid = wid;
    coty_timer_init(&s->respawn, on_slot_timer, s);
    coty_timer_init(&s->kill, on_kill_timer, s);
    if (coty_restart_init(&s->throttle, &svc->conf.restart) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void slot_free(struct slot *s)
{
    coty_timer_stop(M.loop, &s->respawn);
    coty_timer_stop(M.loop, &s->kill);
    coty_restart_free(&s->throttle);
    mgr_slot_sockets_close(s);
    free(s);
}

/* Makes room for `n` slots in svc; -1 on ENOMEM. */
static int grow_slots(struct service *svc, int n)
{
    struct slot **slots;

    if (n <= svc->nslots)
        return 0;
    slots = realloc(svc->slots, (size_t)n * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots + svc->nslots, 0, (size_t)(n - svc->nslots) * sizeof *slots);
    svc->slots = slots;
    svc->nslots = n;
    return 0;
}

/* The first slot of svc from worker id w on, or NULL. */
static struct slot *first_from(const struct service *svc, int w)
{
    for (; w < svc->nslots; w++)
        if (svc->slots[w])
            return svc->slots[w];
    return NULL;
}

struct slot *mgr_slot_next(const struct service *only, const struct slot *prev)
{
    const struct service *svc = prev ? prev->svc : only;
    struct slot *s = svc ? first_from(svc, prev ? prev->wid + 1 : 0) : NULL;

    if (only)
        return s;
    for (int i = svc ? svc->id : 0; !s && i < M.nsvcs; i++)
        s = first_from(M.svcs[i], 0);
    return s;
}

void mgr_each_slot(void (*fn)(struct slot *))
{
    struct slot *s = mgr_slot_next(NULL, NULL);

    while (s) {
        struct slot *next = mgr_slot_next(NULL, s);
        fn(s);
        s = next;
    }
}

/* ---- pid -> slot ---------------------------------------------------- */

/* Open addressing with linear probing over a power-of-two table that is
 * at most half full; room is made before a batch of forks (pids_reserve),
 * so that recording a new worker never allocates. */
static size_t pid_home(pid_t pid) { return (size_t)pid & (M.npids - 1); }

static void pid_put(struct slot *s)
{
    size_t i = pid_home(s->pid);

    while (M.pids[i])
        i = (i + 1) & (M.npids - 1);
    M.pids[i] = s;
}

/* Room for `n` workers. 0, or -1 on ENOMEM. */
static int pids_reserve(int n)
{
    struct slot **old = M.pids;
    size_t cap = M.npids ? M.npids : 64, oldcap = M.npids;

    while (cap < 2 * (size_t)n)
        cap *= 2;
    if (cap == M.npids)
        return 0;
    if (!(M.pids = calloc(cap, sizeof *M.pids))) {
        M.pids = old;
        return -1;
    }
    M.npids = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            pid_put(old[i]);
    free(old);
    return 0;
}

/* Removes s (by its pid) and moves up the entries probed past it. */
static void pid_del(struct slot *s)
{
    size_t i = pid_home(s->pid), mask = M.npids - 1;

    while (M.pids[i] != s)
        i = (i + 1) & mask;
    M.pids[i] = NULL;
    for (size_t j = (i + 1) & mask; M.pids[j]; j = (j + 1) & mask) {
        struct slot *t = M.pids[j];
        M.pids[j] = NULL;
        pid_put(t);
    }
}

/* Workers are in the table from the end of the batch of forks that
 * started them: every lookup comes later, from the loop. */
struct slot *mgr_slot_by_pid(pid_t pid)
{
    if (!M.npids || pid <= 0)
        return NULL;
    for (size_t i = pid_home(pid); M.pids[i]; i = (i + 1) & (M.npids - 1))
        if (M.pids[i]->pid == pid)
            return M.pids[i];
    return NULL;
}

void mgr_set_ready(struct slot *s, int ready)
{
    M.nready += !!ready - s->ready;
    s->ready = !!ready;
}

/* ---- spawn, stop, reap ---------------------------------------------- */

/* Every worker leads a process group of its own, where whatever it starts
 * stays (os.execute, io.popen, a daemon that forks twice): a stop reaches
 * them all, and what is left once the worker is reaped is killed. Both
 * sides of the fork call setpgid, so that the group exists before either
 * goes on. */
static void own_group(pid_t pid) { setpgid(pid, pid); }

void mgr_signal_worker(const struct slot *s, int sig)
{
    if (!s->pid)
        return;
    kill(-s->pid, sig);
    if (getpgid(s->pid) != s->pid) /* it left its group: reach it too */
        kill(s->pid, sig);
}

/* The child side of fork: drop the manager's machinery, become a worker. */
static void child(struct slot *s)
{
    struct coty_worker_info info = {
        .service_id = s->svc->id,
        .worker_id = s->wid,
        .name = s->svc->conf.name,
        .graceful_timeout = worker_timeout(s->svc),
        .manager_pid = M.pid,
        .ready_fd = M.ready_fd[1],
        .fds = mgr_worker_fds(s),
        .nfds = s->svc->nlisteners,
        .sigpipe_ignored = M.oldpipe.sa_handler == SIG_IGN,
        .identity = &s->svc->conf.identity,
        .caught = &M.caught,
    };

    own_group(0);
    mgr_close_foreign_sockets(s);
    close(M.sigfd);
    close(M.ready_fd[0]);
    close(coty_loop_fd(M.loop));
    M.ops->worker(M.ud, &info);
    _exit(1);
}

static void throttle(struct slot *s, double delay, const char *what)
{
    /* A reuseport socket with nobody to accept on it would keep the
     * connections the kernel hands it: closed (they are refused) until
     * the slot starts again. */
    mgr_slot_sockets_close(s);
    coty_timer_start(M.loop, &s->respawn, delay);
    coty_warning("%s worker(%d) %s %d times in %.1f s; next start in %g s",
                 s->svc->conf.name, s->wid, what, s->throttle.deaths,
                 coty_now() - s->throttle.first_death, delay);
}

static void spawn(struct slot *s)
{
    pid_t pid;

    if (mgr_slot_sockets(s) < 0) {
        throttle(s, coty_restart_next(&s->throttle, &s->svc->conf.restart, coty_now(), 0),
                 "failed to start");
        return;
    }
    pid = fork();
    if (pid < 0) {
        coty_error("fork() failed while spawning %s worker(%d): %s",
                   s->svc->conf.name, s->wid, strerror(errno));
        throttle(s, coty_restart_next(&s->throttle, &s->svc->conf.restart,
                                      coty_now(), 0), "failed to start");
        return;
    }
    if (pid == 0)
        child(s);
    own_group(pid);
    /* Each write here copies a page that the new worker shares: s->ready
     * is 0 already (as the slot's last worker was reaped), and the pid
     * table is written after the batch of forks (record_pids). */
    s->pid = pid;
    s->started = coty_now();
    s->stopping = 0;
    M.live++;
    if (coty_log_get_level() <= COTY_DEBUG)
        coty_debug("started %s worker(%d) [pid %d]", s->svc->conf.name, s->wid, (int)pid);
}

void mgr_stop_worker(struct slot *s)
{
    double timeout = worker_timeout(s->svc);

    s->stopping = 1;
    mgr_signal_worker(s, SIGTERM);
    if (timeout > 0)
        coty_timer_start(M.loop, &s->kill, timeout + KILL_MARGIN);
}

static void log_death(const struct slot *s, int status)
{
    const char *name = s->svc->conf.name;
    struct coty_log_subject who = {
        .service = name,
        .worker_id = s->wid,
        .pid = (int)s->pid,
        .exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
        .has_exit_code = 1,
    };

    if (WIFSIGNALED(status))
        coty_log_about(&who, COTY_WARNING, "%s worker(%d) [pid %d] killed by signal %d (%s)",
                       name, s->wid, (int)s->pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) != 0)
        coty_log_about(&who, COTY_WARNING, "%s worker(%d) [pid %d] exited with status %d", name,
                       s->wid, (int)s->pid, WEXITSTATUS(status));
    else
        coty_log_about(&who, COTY_INFO, "%s worker(%d) [pid %d] exited", name, s->wid,
                       (int)s->pid);
}

/* What happens to a slot whose worker was reaped while RUNNING. */
static void after_death(struct slot *s, int code, enum coty_death why, double uptime)
{
    double delay;

    M.ops->on_dead(M.ud, s->svc->id, s->wid, code, (int)why);
    if (M.state != M_RUNNING || s->wid >= s->svc->conf.workers)
        return;
    delay = coty_restart_next(&s->throttle, &s->svc->conf.restart, coty_now(), uptime);
    if (delay > 0)
        throttle(s, delay, "died");
}

void mgr_reaped(struct slot *s, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    double uptime = coty_now() - s->started;
    enum coty_death why = s->stopping || s->restarting ? COTY_DEATH_STOP : COTY_DEATH_CRASH;

    log_death(s, status);
    coty_timer_stop(M.loop, &s->kill);
    if (s->in_pids)
        pid_del(s);
    s->in_pids = 0;
    s->pid = 0;
    s->stopping = 0;
    s->restarting = 0;
    mgr_set_ready(s, 0);
    M.live--;
    M.pending = 1;
    if (M.state == M_RUNNING)
        after_death(s, code, why, uptime);
}

/* PID 1 and a subreaper own every child that ends up with them: they
 * reap them all. Any other manager reaps its workers only, so that a
 * hook's io.popen() or os.execute() still gets its child's status. */
static int reaps_all(void)
{
    int subreaper = 0;

    return getpid() == 1 || (prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0 && subreaper);
}

/* Reaps slot s's worker if it has ended; 1 then. What is left of its
 * process group is killed first, while the zombie still holds the
 * group's id (so that no other process can have it). */
static int reap_ended(struct slot *s)
{
    siginfo_t si;
    int status;

    si.si_pid = 0;
    if (!s->pid || waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
        si.si_pid != s->pid)
        return 0;
    kill(-s->pid, SIGKILL);
    if (waitpid(s->pid, &status, WNOHANG) == s->pid)
        mgr_reaped(s, status);
    return 1;
}

static void reap_slot(struct slot *s) { reap_ended(s); }

/* Looks at the child that ended without reaping it: a worker is reaped,
 * any other child only by PID 1 or a subreaper. A child of someone else's
 * (a hook's io.popen) that its owner has not waited for yet would hide
 * the workers behind it: then each worker is asked by its pid. */
void mgr_reap(void)
{
    for (;;) {
        siginfo_t si;
        struct slot *s;
        int status;

        si.si_pid = 0;
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            return;
        s = mgr_slot_by_pid(si.si_pid);
        if (s) {
            if (!reap_ended(s))
                return;
        } else if (M.reap_all) {
            waitpid(si.si_pid, &status, WNOHANG);
            coty_debug("reaped process %d, not a worker", (int)si.si_pid);
        } else {
            mgr_each_slot(reap_slot);
            return;
        }
    }
}

void mgr_reap_setup(void) { M.reap_all = reaps_all(); }

/* ---- reconcile: what runs against what is wanted ------------------- */

/* Every slot that may fork soon exists before the first fork, and the pid
 * table has room for them: the manager allocates nothing between forks,
 * so each fork leaves it fewer pages to copy on its next writes. */
static int prepare_service(struct service *svc)
{
    if (grow_slots(svc, svc->conf.workers) < 0)
        return -1;
    for (int w = 0; w < svc->conf.workers; w++)
        if (!svc->slots[w] && !(svc->slots[w] = slot_new(svc, w)))
            return -1;
    return 0;
}

/* The signals whose disposition a new worker must reset: asked of the
 * kernel once per batch of forks rather than reset blindly in each worker
 * (a Lua library loaded by a hook may have set one since). */
static void find_caught(void)
{
    sigemptyset(&M.caught);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 &&
            sa.sa_handler != SIG_DFL)
            sigaddset(&M.caught, sig);
    }
}

static int prepare(void)
{
    int n = M.live;

    for (int i = 0; i < M.nsvcs; i++) {
        if (prepare_service(M.svcs[i]) < 0) {
            coty_error("out of memory while resizing %s to %d workers",
                       M.svcs[i]->conf.name, M.svcs[i]->conf.workers);
            return -1;
        }
        n += M.svcs[i]->conf.workers;
    }
    /* What the manager's stdio buffers hold is written once, not by each
     * worker that inherited it. */
    fflush(NULL);
    find_caught();
    return pids_reserve(n);
}

/* True when the slice of forks is over: its time is up, or a signal
 * waits to be read (one syscall, against a fork's hundreds of
 * microseconds). */
static int slice_over(double until)
{
    sigset_t set;

    if (coty_now() >= until)
        return 1;
    sigpending(&set);
    return sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1 ||
           sigismember(&set, SIGHUP) == 1 || sigismember(&set, SIGCHLD) == 1;
}

/* Forks and stops what svc needs, until the slice is over; 1 when it is
 * all done. */
static int reconcile_service(struct service *svc, double until)
{
    for (int w = 0; w < svc->nslots; w++) {
        struct slot *s = svc->slots[w];

        if (w < svc->conf.workers) {
            if (s->pid || coty_timer_armed(&s->respawn))
                continue;
            if (slice_over(until))
                return 0;
            spawn(s);
        } else if (s && s->pid && !s->stopping) {
            mgr_stop_worker(s);
        } else if (s && !s->pid) {
            slot_free(s);
            svc->slots[w] = NULL;
        }
    }
    return 1;
}

/* Enters the workers forked by the last batch in the pid table (for
 * which pids_reserve() made room). */
static void record_pids(void)
{
    MGR_FOR_SLOTS (s, NULL)
        if (s->pid && !s->in_pids) {
            pid_put(s);
            s->in_pids = 1;
        }
}

/* Called after each loop turn. M.pending (something changed) makes it
 * prepare a batch of forks; M.more (the last slice ended before the
 * batch did) only goes on with it. The loop does not sleep while either
 * is set. No Lua runs in the manager without setting M.pending (hooks
 * run on a death, a reload, a stop), so prepare()'s flush covers them. */
void mgr_reconcile(void)
{
    double until = coty_now() + SPAWN_SLICE;

    if (M.state != M_RUNNING || !(M.pending || M.more))
        return;
    if (M.pending && prepare() < 0)
        return; /* M.pending stays: tried again at the next turn */
    M.pending = M.more = 0;
    for (int i = 0; i < M.nsvcs && M.state == M_RUNNING; i++)
        if (!reconcile_service(M.svcs[i], until)) {
            M.more = 1;
            break;
        }
    record_pids();
}

void mgr_reset_slot(struct slot *s)
{
    coty_restart_reset(&s->throttle);
    coty_timer_stop(M.loop, &s->respawn);
    M.pending = 1;
}

int coty_mgr_reconfigure(int id, int workers)
{
    struct service *svc = service(id);

    if (!svc) {
        errno = ENOENT;
        return -1;
    }
    if (workers < 1 || workers > COTY_WORKERS_MAX) {
        errno = EINVAL;
        return -1;
    }
    /* Only the slots that come or go start afresh: a crash loop keeps
     * its throttle whatever a hook asks of its service. */
    MGR_FOR_SLOTS (s, svc)
        if ((s->wid < workers) != (s->wid < svc->conf.workers))
            mgr_reset_slot(s);
    svc->conf.workers = workers;
    M.pending = 1;
    return 0;
}

