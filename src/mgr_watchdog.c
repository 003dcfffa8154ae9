/*
 * mgr_watchdog.c - the manager's side of the `watchdog` service option:
 * workers send a heartbeat (heartbeat.c) on a datagram socketpair, and
 * the kernel says who sent it (SO_PASSCRED: a worker cannot beat for
 * another, nor a process that a worker forked for it); a scan every watchdog/4 seconds finds the workers silent
 * for longer than their service's watchdog. Such a worker is logged as
 * hung, asked to stop (SIGTERM), killed after its graceful timeout like
 * any worker that does not stop, and replaced. Nothing of this exists
 * when no service has a watchdog: no socket, no timer, no wake-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mgr.h"

#define SCAN_MIN 0.05 /* seconds: the shortest scan period */

/* The shortest watchdog of any service, 0 when none has one. */
static double shortest(void)
{
    double min = 0;

    for (int i = 0; i < M.nsvcs; i++) {
        double w = M.svcs[i]->conf.watchdog;
        if (w > 0 && (min == 0 || w < min))
            min = w;
    }
    return min;
}

static double period(void)
{
    double p = shortest() / 4;

    return p < SCAN_MIN ? SCAN_MIN : p;
}

/* The sender of one heartbeat, as the kernel tells it; 0 when there is
 * none left, -1 for a datagram without credentials. */
static pid_t sender(int fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    char byte[sizeof(pid_t)];
    struct iovec iov = {.iov_base = byte, .iov_len = sizeof byte};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    struct cmsghdr *c;
    struct ucred cred;

    if (recvmsg(fd, &msg, MSG_CMSG_CLOEXEC) < 0)
        return 0;
    c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
        return -1;
    memcpy(&cred, CMSG_DATA(c), sizeof cred);
    return cred.pid;
}

static void on_beat(void *ud, int fd, uint32_t events)
{
    pid_t pid;

    (void)ud;
    (void)events;
    while ((pid = sender(fd)) != 0) {
        struct slot *s = pid > 0 ? mgr_slot_by_pid(pid) : NULL;
        if (s)
            s->last_beat = coty_now();
    }
}

static void hang(struct slot *s, double silent)
{
    struct coty_log_subject who = {
        .service = s->svc->conf.name, .worker_id = s->wid, .pid = (int)s->pid};

    s->hung = 1;
    s->svc->hangs++;
    coty_log_about(&who, COTY_WARNING,
                   "%s worker(%d) [pid %d] is hung: no sign of life for %.1f s (watchdog %g s); "
                   "stopping it", s->svc->conf.name, s->wid, (int)s->pid, silent,
                   s->svc->conf.watchdog);
    mgr_stop_worker(s);
}

static void on_scan(void *ud)
{
    double now = coty_now();

    (void)ud;
    if (M.state != M_RUNNING)
        return;
    MGR_FOR_SLOTS (s, NULL) {
        double w = s->svc->conf.watchdog;
        if (w > 0 && s->pid && !s->stopping && !s->hung && now - s->last_beat > w)
            hang(s, now - s->last_beat);
    }
    coty_timer_start(M.loop, &M.beat_scan, period());
}

int mgr_watchdog_setup(void)
{
    int on = 1;

    coty_timer_init(&M.beat_scan, on_scan, NULL);
    if (shortest() <= 0)
        return 0;
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, M.beat_fd) < 0 ||
        fcntl(M.beat_fd[0], F_SETFL, O_NONBLOCK) < 0 ||
        setsockopt(M.beat_fd[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0 ||
        coty_loop_add_fd(M.loop, M.beat_fd[0], EPOLLIN, on_beat, NULL) < 0) {
        coty_error("cannot set up the watchdog's socket: %s", strerror(errno));
        return -1;
    }
    coty_timer_start(M.loop, &M.beat_scan, period());
    return 0;
}

void mgr_watchdog_teardown(void)
{
    if (M.loop)
        coty_timer_stop(M.loop, &M.beat_scan);
    for (int i = 0; i < 2; i++)
        if (M.beat_fd[i] >= 0) {
            close(M.beat_fd[i]);
            M.beat_fd[i] = -1;
        }
}

int mgr_watchdog_child(const struct slot *s)
{
    if (M.beat_fd[0] >= 0)
        close(M.beat_fd[0]);
    if (s->svc->conf.watchdog > 0)
        return M.beat_fd[1];
    if (M.beat_fd[1] >= 0)
        close(M.beat_fd[1]);
    return -1;
}
