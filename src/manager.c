/*
 * manager.c - the master process; see manager.h.
 *
 * The manager is a small state machine driven by the event loop:
 *
 *   READY --run--> RUNNING --SIGTERM/shutdown()--> STOPPING --all reaped--> DONE
 *                     |                               |
 *                     +----------SIGINT--------------+--timeout--> KILLING --all reaped--> DONE
 *
 * Signals are read from a signalfd, never handled in a handler. After each
 * batch of events, reconcile() compares what runs with what is wanted:
 * it forks missing workers (unless their slot waits out a restart delay)
 * and stops the ones above a lowered worker count. Nothing here sleeps:
 * delays are timers in the loop, so the manager answers signals at once
 * even while it throttles a crash loop.
 */
#define _GNU_SOURCE
#include "manager.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "mgr.h"
#include "notify.h"
#include "proctitle.h"

#define FAST_KILL_DELAY 1.0 /* SIGINT, then SIGKILL to what is left */
#define KILL_MARGIN 1.0     /* past a worker's own graceful timeout */

struct coty_mgr M;

static void reconcile(void);

static void fast_stop(const char *why);
static void slot_free(struct slot *s);
static void service_free(struct service *svc);

/* ---- set-up --------------------------------------------------------- */

int coty_mgr_create(const struct coty_mgr_conf *conf)
{
    if (M.state != M_NONE) {
        errno = EBUSY;
        return -1;
    }
    M.conf = *conf;
    M.state = M_READY;
    M.sigfd = -1;
    M.ready_fd[0] = M.ready_fd[1] = -1;
    return 0;
}

int coty_mgr_exists(void) { return M.state != M_NONE; }

void coty_mgr_destroy(void)
{
    if (coty_mgr_running())
        return;
    for (int i = 0; i < M.nsvcs; i++)
        service_free(M.svcs[i]);
    free(M.svcs);
    memset(&M, 0, sizeof M);
}
const struct coty_mgr_conf *coty_mgr_conf(void) { return &M.conf; }
int coty_mgr_running(void) { return M.state >= M_RUNNING && M.state < M_DONE; }

static struct service *service(int id)
{
    return id >= 1 && id <= M.nsvcs ? M.svcs[id - 1] : NULL;
}

static void service_free(struct service *svc)
{
    for (int w = 0; w < svc->nslots; w++)
        if (svc->slots[w])
            slot_free(svc->slots[w]);
    mgr_sockets_close(svc, 0);
    free(svc->slots);
    free((char *)svc->conf.name);
    free(svc);
}

int coty_mgr_add(const struct coty_service_conf *conf, char *err, size_t errlen)
{
    struct service **svcs, *svc;
    const char *bad = coty_restart_check(&conf->restart);

    if (conf->workers < 1 || bad)
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
    svc->conf.name = strdup(conf->name);
    if (!svc->conf.name || mgr_sockets_open(svc, conf, err, errlen) < 0) {
        if (!svc->conf.name)
            snprintf(err, errlen, "out of memory");
        service_free(svc);
        return -1;
    }
    svc->id = M.nsvcs + 1;
    M.svcs[M.nsvcs++] = svc;
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
    (void)ud; /* reconcile() after the loop turn does the work */
}

static void on_kill_timer(void *ud)
{
    struct slot *s = ud;

    if (!s->pid)
        return;
    coty_warning("%s worker(%d) [pid %d] did not stop within %g s; sending SIGKILL",
                 s->svc->conf.name, s->wid, (int)s->pid, worker_timeout(s->svc));
    kill(s->pid, SIGKILL);
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

/* Calls fn on every slot, in service order then worker id order. */
static void each_slot(void (*fn)(struct slot *))
{
    for (int i = 0; i < M.nsvcs; i++)
        for (int w = 0; w < M.svcs[i]->nslots; w++)
            if (M.svcs[i]->slots[w])
                fn(M.svcs[i]->slots[w]);
}

struct slot *mgr_slot_by_pid(pid_t pid)
{
    for (int i = 0; i < M.nsvcs; i++)
        for (int w = 0; w < M.svcs[i]->nslots; w++) {
            struct slot *s = M.svcs[i]->slots[w];
            if (s && s->pid == pid)
                return s;
        }
    return NULL;
}

/* ---- spawn, stop, reap ---------------------------------------------- */

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
    };

    mgr_close_foreign_sockets(s);
    close(M.sigfd);
    close(M.ready_fd[0]);
    close(coty_loop_fd(M.loop));
    M.ops->worker(M.ud, &info);
    _exit(1);
}

static void throttle(struct slot *s, double delay, const char *what)
{
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
    fflush(NULL);
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
    s->pid = pid;
    s->started = coty_now();
    s->stopping = 0;
    s->ready = 0;
    M.live++;
    coty_debug("started %s worker(%d) [pid %d]", s->svc->conf.name, s->wid, (int)pid);
}

static void stop_worker(struct slot *s)
{
    double timeout = worker_timeout(s->svc);

    s->stopping = 1;
    kill(s->pid, SIGTERM);
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
static void after_death(struct slot *s, int code, double uptime)
{
    double delay;

    M.ops->on_dead(M.ud, s->svc->id, s->wid, code);
    if (M.state != M_RUNNING || s->wid >= s->svc->conf.workers)
        return;
    delay = coty_restart_next(&s->throttle, &s->svc->conf.restart, coty_now(), uptime);
    if (delay > 0)
        throttle(s, delay, "died");
}

static void reaped(struct slot *s, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    double uptime = coty_now() - s->started;

    log_death(s, status);
    coty_timer_stop(M.loop, &s->kill);
    s->pid = 0;
    s->stopping = 0;
    s->ready = 0;
    M.live--;
    if (M.state == M_RUNNING)
        after_death(s, code, uptime);
}

static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct slot *s;

        if (pid <= 0)
            return;
        s = mgr_slot_by_pid(pid);
        if (s)
            reaped(s, status);
        else
            coty_debug("reaped process %d, not a worker", (int)pid);
    }
}

/* ---- reconcile: what runs against what is wanted ------------------- */

static void reconcile_service(struct service *svc)
{
    if (grow_slots(svc, svc->conf.workers) < 0) {
        coty_error("out of memory while resizing %s to %d workers",
                   svc->conf.name, svc->conf.workers);
        return;
    }
    for (int w = 0; w < svc->nslots; w++) {
        struct slot *s = svc->slots[w];

        if (w < svc->conf.workers) {
            if (!s && !(s = svc->slots[w] = slot_new(svc, w)))
                continue;
            if (!s->pid && !coty_timer_armed(&s->respawn))
                spawn(s);
        } else if (s && s->pid && !s->stopping) {
            stop_worker(s);
        } else if (s && !s->pid) {
            slot_free(s);
            svc->slots[w] = NULL;
        }
    }
}

static void reconcile(void)
{
    if (M.state != M_RUNNING)
        return;
    for (int i = 0; i < M.nsvcs && M.state == M_RUNNING; i++)
        reconcile_service(M.svcs[i]);
}

/* ---- stop and reload ------------------------------------------------ */

static void check_done(void)
{
    if ((M.state == M_STOPPING || M.state == M_KILLING) && M.live == 0)
        M.state = M_DONE;
}

static void stop_slot(struct slot *s)
{
    coty_timer_stop(M.loop, &s->respawn);
    if (s->pid && !s->stopping)
        stop_worker(s);
}

static void interrupt_slot(struct slot *s)
{
    coty_timer_stop(M.loop, &s->respawn);
    coty_timer_stop(M.loop, &s->kill);
    if (s->pid)
        kill(s->pid, SIGINT);
}

static void kill_slot(struct slot *s)
{
    if (s->pid)
        kill(s->pid, SIGKILL);
}

static void on_stop_timer(void *ud)
{
    (void)ud;
    if (M.state == M_STOPPING) {
        char why[96];
        snprintf(why, sizeof why, "graceful shutdown timeout (%g s) exceeded",
                 M.conf.graceful_timeout);
        fast_stop(why);
    } else if (M.state == M_KILLING) {
        coty_warning("%d worker%s still alive %g s after SIGINT; sending SIGKILL",
                     PLURAL(M.live), FAST_KILL_DELAY);
        each_slot(kill_slot);
    }
}

static void begin_stop(const char *why)
{
    if (M.state != M_RUNNING)
        return;
    M.state = M_STOPPING;
    coty_info("%s: stopping %d worker%s", why, PLURAL(M.live));
    M.ops->on_terminate(M.ud);
    each_slot(stop_slot);
    if (M.conf.graceful_timeout > 0) {
        coty_timer_start(M.loop, &M.stop_timer, M.conf.graceful_timeout);
        M.stop_deadline = coty_now() + M.conf.graceful_timeout;
    }
    mgr_notify_stopping();
    check_done();
}

static void fast_stop(const char *why)
{
    M.state = M_KILLING;
    M.status = 1;
    coty_warning("%s: interrupting %d worker%s", why, PLURAL(M.live));
    each_slot(interrupt_slot);
    coty_timer_start(M.loop, &M.stop_timer, FAST_KILL_DELAY);
    check_done();
}

static void hup_slot(struct slot *s)
{
    if (s->pid && !s->stopping)
        kill(s->pid, SIGHUP);
}

static void reset_slot(struct slot *s)
{
    coty_restart_reset(&s->throttle);
    coty_timer_stop(M.loop, &s->respawn);
}

/* Workers without reload() stop and restart: not ready until they are back. */
static void unready_slot(struct slot *s)
{
    if (!s->svc->conf.has_reload)
        s->ready = 0;
}

static void reload(void)
{
    coty_info("SIGHUP: reloading %d worker%s", PLURAL(M.live));
    mgr_notify_reloading();
    M.ops->on_reload(M.ud);
    if (M.state != M_RUNNING)
        return;
    each_slot(hup_slot);
    each_slot(unready_slot);
    each_slot(reset_slot);
    mgr_check_ready();
}

void coty_mgr_shutdown(void) { M.shutdown_asked = 1; }

int coty_mgr_reconfigure(int id, int workers)
{
    struct service *svc = service(id);

    if (!svc) {
        errno = ENOENT;
        return -1;
    }
    if (workers < 1) {
        errno = EINVAL;
        return -1;
    }
    svc->conf.workers = workers;
    for (int w = 0; w < svc->nslots; w++)
        if (svc->slots[w])
            reset_slot(svc->slots[w]);
    return 0;
}

/* ---- signals and the run loop --------------------------------------- */

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap();
        check_done();
        break;
    case SIGTERM:
        if (M.state == M_RUNNING)
            begin_stop("SIGTERM");
        else
            coty_info("SIGTERM: already stopping");
        break;
    case SIGINT:
        if (M.state < M_KILLING)
            fast_stop("SIGINT");
        break;
    case SIGHUP:
        if (M.state == M_RUNNING)
            reload();
        else
            coty_info("SIGHUP: ignored while stopping");
        break;
    default:
        coty_debug("%s: ignored", strsignal(sig));
    }
}

static void on_sigfd(void *ud, int fd, uint32_t events)
{
    struct signalfd_siginfo si;

    (void)ud;
    (void)events;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        on_signal((int)si.ssi_signo);
}

static void managed_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
}

/* Blocks the signals the manager reads and opens the loop. */
static int setup(void)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
    sigset_t set;

    managed_signals(&set);
    sigprocmask(SIG_BLOCK, &set, &M.oldmask);
    sigaction(SIGPIPE, &ign, &M.oldpipe);
    /* An ignored SIGCHLD (inherited from whoever started us) would make
     * the kernel reap the workers before waitpid() sees them. */
    sigaction(SIGCHLD, &dfl, &M.oldchld);
    M.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (M.sigfd < 0) {
        coty_error("signalfd() failed: %s", strerror(errno));
        return -1;
    }
    M.loop = coty_loop_new();
    if (!M.loop || coty_loop_add_fd(M.loop, M.sigfd, EPOLLIN, on_sigfd, NULL) < 0) {
        coty_error("cannot create the event loop: %s", strerror(errno));
        return -1;
    }
    coty_timer_init(&M.stop_timer, on_stop_timer, NULL);
    return mgr_readiness_setup();
}

/* Undoes setup(): signals pending now were meant for a manager that is
 * done, so they are drained before the mask is restored. */
static void teardown(void)
{
    struct signalfd_siginfo si;

    if (M.sigfd >= 0) {
        while (read(M.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            ;
        close(M.sigfd);
        M.sigfd = -1;
    }
    mgr_readiness_teardown();
    for (int i = 0; i < M.nsvcs; i++) {
        struct service *svc = M.svcs[i];
        for (int w = 0; w < svc->nslots; w++)
            if (svc->slots[w])
                mgr_slot_sockets_close(svc->slots[w]);
        mgr_sockets_close(svc, 1);
    }
    coty_loop_free(M.loop);
    M.loop = NULL;
    sigaction(SIGPIPE, &M.oldpipe, NULL);
    sigaction(SIGCHLD, &M.oldchld, NULL);
    sigprocmask(SIG_SETMASK, &M.oldmask, NULL);
}

/* The loop is gone: SIGKILL what is left and wait for it, so that no
 * worker outlives run(). */
static void reap_all_blocking(void)
{
    each_slot(kill_slot);
    while (M.live > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        struct slot *s;

        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            break;
        if ((s = mgr_slot_by_pid(pid)))
            reaped(s, status);
    }
}

static void set_title(void)
{
    char title[600];

    coty_log_set_procname("master");
    if (coty_proctitle_init() < 0)
        return;
    snprintf(title, sizeof title, "cotylua: master process [%s]",
             coty_proctitle_original());
    coty_proctitle_set(title);
}

int coty_mgr_run(const struct coty_mgr_ops *ops, void *ud)
{
    if (M.state != M_READY) {
        errno = M.state == M_NONE ? ENOENT : EBUSY;
        return -1;
    }
    M.ops = ops;
    M.ud = ud;
    M.pid = getpid();
    set_title();
    if (setup() < 0) {
        int saved = errno;
        teardown();
        errno = saved;
        return -1;
    }
    coty_sock_close_unused();
    M.state = M_RUNNING;
    coty_info("starting %d service%s", PLURAL(M.nsvcs));
    while (M.state != M_DONE) {
        if (M.shutdown_asked)
            begin_stop("shutdown()");
        reconcile();
        check_done();
        if (M.state == M_DONE)
            break;
        mgr_update_status();
        if (coty_loop_run_once(M.loop, -1) < 0) {
            coty_error("epoll_wait() failed: %s", strerror(errno));
            if (M.state == M_KILLING) {
                reap_all_blocking();
                break;
            }
            fast_stop("event loop failure");
        }
    }
    teardown();
    coty_info("stopped");
    return M.status;
}
