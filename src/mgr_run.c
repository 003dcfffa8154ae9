/*
 * mgr_run.c - the manager's state and every transition of it, driven by
 * the run loop; signals are read from a signalfd, never handled in a
 * handler. The services and slots it acts on are manager.c's.
 *
 *   NONE --create()--> READY --run()--> RUNNING --SIGTERM, shutdown()--> STOPPING
 *                                          |                                |
 *                                          | SIGINT      SIGINT, stop timeout |
 *                                          v                                |
 *                                       KILLING <---------------------------+
 *
 *   STOPPING, KILLING --all reaped--> DONE
 *   READY, DONE --destroy()--> NONE
 *
 * KILLING sends SIGKILL to what is left FAST_KILL_DELAY after SIGINT.
 * SIGHUP while RUNNING reloads (RUNNING to RUNNING); SIGCHLD reaps in
 * any state. destroy() is refused from RUNNING, STOPPING and KILLING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "mgr.h"
#include "proctitle.h"

#define FAST_KILL_DELAY 1.0 /* SIGINT, then SIGKILL to what is left */

struct coty_mgr M;

static void fast_stop(const char *why);

/* ---- create and destroy --------------------------------------------- */

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
int coty_mgr_running(void) { return M.state >= M_RUNNING && M.state < M_DONE; }

void coty_mgr_destroy(void)
{
    if (coty_mgr_running())
        return;
    mgr_services_free();
    memset(&M, 0, sizeof M);
}

void coty_mgr_shutdown(void) { M.shutdown_asked = 1; }

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
        mgr_stop_worker(s);
}

static void interrupt_slot(struct slot *s)
{
    coty_timer_stop(M.loop, &s->respawn);
    coty_timer_stop(M.loop, &s->kill);
    mgr_signal_worker(s, SIGINT);
}

static void kill_slot(struct slot *s) { mgr_signal_worker(s, SIGKILL); }

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
        mgr_each_slot(kill_slot);
    }
}

static void begin_stop(const char *why)
{
    if (M.state != M_RUNNING)
        return;
    M.state = M_STOPPING;
    coty_info("%s: stopping %d worker%s", why, PLURAL(M.live));
    M.ops->on_terminate(M.ud);
    mgr_each_slot(stop_slot);
    if (M.conf.graceful_timeout > 0) {
        coty_timer_start(M.loop, &M.stop_timer, M.conf.graceful_timeout);
        M.stop_deadline = coty_now() + M.conf.graceful_timeout;
    }
    mgr_notify_stopping();
    check_done();
}

static void fast_stop(const char *why)
{
    if (M.state == M_RUNNING)
        mgr_notify_stopping();
    M.state = M_KILLING;
    M.status = 1;
    coty_warning("%s: interrupting %d worker%s", why, PLURAL(M.live));
    mgr_each_slot(interrupt_slot);
    coty_timer_start(M.loop, &M.stop_timer, FAST_KILL_DELAY);
    check_done();
}

static void hup_slot(struct slot *s)
{
    if (s->pid && !s->stopping) {
        s->restarting = !s->svc->conf.has_reload;
        kill(s->pid, SIGHUP);
    }
}

/* Workers without reload() stop and restart: not ready until they are back. */
static void unready_slot(struct slot *s)
{
    if (!s->svc->conf.has_reload)
        mgr_set_ready(s, 0);
}

static void reload(void)
{
    coty_info("SIGHUP: reloading %d worker%s", PLURAL(M.live));
    mgr_notify_reloading();
    M.ops->on_reload(M.ud);
    if (M.state != M_RUNNING)
        return;
    mgr_each_slot(hup_slot);
    mgr_each_slot(unready_slot);
    mgr_each_slot(mgr_reset_slot);
    mgr_check_ready();
}

/* ---- signals and the run loop --------------------------------------- */

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        mgr_reap();
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
    mgr_reap_setup();
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
    mgr_each_slot(mgr_slot_sockets_close);
    for (int i = 0; i < M.nsvcs; i++)
        mgr_sockets_close(M.svcs[i], 1);
    coty_loop_free(M.loop);
    M.loop = NULL;
    sigaction(SIGPIPE, &M.oldpipe, NULL);
    sigaction(SIGCHLD, &M.oldchld, NULL);
    sigprocmask(SIG_SETMASK, &M.oldmask, NULL);
}

/* The loop is gone: SIGKILL what is left and wait for it, so that no
 * worker outlives run(). */
static void reap_slot_blocking(struct slot *s)
{
    int status;
    pid_t pid;

    if (!s->pid)
        return;
    do
        pid = waitpid(s->pid, &status, 0);
    while (pid < 0 && errno == EINTR);
    if (pid == s->pid)
        mgr_reaped(s, status);
}

/* The loop is gone: SIGKILL what is left and wait for it, so that no
 * worker outlives run(). */
static void reap_all_blocking(void)
{
    mgr_each_slot(kill_slot);
    mgr_each_slot(reap_slot_blocking);
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
        mgr_reconcile();
        check_done();
        if (M.state == M_DONE)
            break;
        mgr_check_ready(); /* slots may have gone (reconfigure) without a report */
        mgr_update_status();
        if (coty_loop_run_once(M.loop, M.pending || M.more ? 0 : -1) < 0) {
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
