/*
 * readiness.c - when the manager tells systemd what, and how it knows it
 * (the messages themselves are written in notify.c).
 *
 * Workers send their pid to the readiness socket once init and the
 * on_new_worker hooks are done; a report counts only when the kernel's
 * credentials say that it comes from the pid it names. READY=1 goes out when every wanted slot
 * has a ready worker: at start-up (with MAINPID), and again after a
 * SIGHUP (RELOADING=1), once the workers that restart instead of
 * reloading are back. STATUS= follows every change; WATCHDOG=1 and
 * EXTEND_TIMEOUT_USEC are loop timers. Without NOTIFY_SOCKET only the
 * readiness socket remains, and it costs one datagram per worker start.
 * It is a datagram socketpair rather than a pipe: a worker whose manager
 * is gone gets ECONNREFUSED from send(MSG_NOSIGNAL), not a SIGPIPE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mgr.h"
#include "notify.h"

#define EXTEND_EVERY 5.0 /* seconds between EXTEND_TIMEOUT_USEC while draining */

/* True when every wanted slot has a worker that finished its init. */
static int all_ready(void)
{
    int wanted = 0, ready = 0;

    for (int i = 0; i < M.nsvcs; i++)
        wanted += M.svcs[i]->conf.workers;
    if (M.nready < wanted)
        return 0; /* the walk below only once it may succeed */
    MGR_FOR_SLOTS (s, NULL)
        ready += s->wid < s->svc->conf.workers && s->pid && s->ready;
    return ready == wanted;
}

void mgr_check_ready(void)
{
    if (M.state != M_RUNNING || (M.ready_sent && !M.reloading) || !all_ready())
        return;
    if (!M.ready_sent)
        coty_info("ready: %d worker%s", PLURAL(M.live));
    coty_notify_ready(!M.ready_sent);
    M.ready_sent = 1;
    M.reloading = 0;
}

/* One report from the socket: the pid it names, counted only when the
 * kernel says that this pid sent it (SO_PASSCRED); 0 when the socket is
 * empty, -1 for a report to ignore. Every worker shares the sending end
 * during its init, so the pid in the message alone proves nothing. */
static pid_t read_report(int fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    pid_t pid;
    struct iovec iov = {.iov_base = &pid, .iov_len = sizeof pid};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);

    if (n < 0)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        struct ucred cred;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
            continue;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        if (n == (ssize_t)sizeof pid && cred.pid == pid)
            return pid;
        coty_warning("readiness report for pid %d ignored: sent by pid %d",
                     n == (ssize_t)sizeof pid ? (int)pid : -1, (int)cred.pid);
        return -1;
    }
    return -1;
}

static void on_ready_fd(void *ud, int fd, uint32_t events)
{
    pid_t pid;

    (void)ud;
    (void)events;
    while ((pid = read_report(fd)) != 0) {
        struct slot *s = pid > 0 ? mgr_slot_by_pid(pid) : NULL;
        if (s)
            mgr_set_ready(s, 1);
    }
    mgr_check_ready();
}

/* "3/4 workers: heavy 2/3, light 1/1; throttled: heavy worker(2)" */
static void status_line(char *buf, size_t cap)
{
    size_t pos;
    int wanted = 0, first = 1;

    for (int i = 0; i < M.nsvcs; i++)
        wanted += M.svcs[i]->conf.workers;
    pos = (size_t)snprintf(buf, cap, "%d/%d workers:", M.live, wanted);
    for (int i = 0; i < M.nsvcs && pos < cap; i++) {
        struct service *svc = M.svcs[i];
        int up = 0;
        MGR_FOR_SLOTS (s, svc)
            up += s->pid != 0;
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s %s %d/%d", i ? "," : "",
                                svc->conf.name, up, svc->conf.workers);
    }
    MGR_FOR_SLOTS (s, NULL) {
        if (pos >= cap || !coty_timer_armed(&s->respawn))
            continue;
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s %s worker(%d)",
                                first ? "; throttled:" : ",", s->svc->conf.name, s->wid);
        first = 0;
    }
}

void mgr_update_status(void)
{
    char buf[512];

    if (!coty_notify_enabled())
        return;
    if (M.state == M_RUNNING)
        status_line(buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "stopping: %d worker%s left", PLURAL(M.live));
    coty_notify_status(buf);
}

static void on_watchdog(void *ud)
{
    (void)ud;
    coty_notify_watchdog();
    coty_timer_start(M.loop, &M.watchdog, (double)coty_notify_watchdog_usec() / 2e6);
}

/* Tells systemd that the stop goes on, with the time it may still take. */
static void on_extend(void *ud)
{
    double left = M.stop_deadline > 0 ? M.stop_deadline - coty_now() : 2 * EXTEND_EVERY;

    (void)ud;
    if (M.state != M_STOPPING)
        return;
    coty_notify_extend(left + 1);
    coty_timer_start(M.loop, &M.extend, EXTEND_EVERY);
}

void mgr_notify_reloading(void)
{
    coty_notify_reloading();
    M.reloading = 1;
}

void mgr_notify_stopping(void)
{
    coty_notify_stopping();
    if (coty_notify_enabled())
        on_extend(NULL);
}

/* The readiness socketpair (close-on-exec, the manager's end non-blocking)
 * and the notify timers. */
int mgr_readiness_setup(void)
{
    int on = 1;

    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, M.ready_fd) < 0 ||
        fcntl(M.ready_fd[0], F_SETFL, O_NONBLOCK) < 0 ||
        setsockopt(M.ready_fd[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0 ||
        coty_loop_add_fd(M.loop, M.ready_fd[0], EPOLLIN, on_ready_fd, NULL) < 0) {
        coty_error("cannot set up the readiness socket: %s", strerror(errno));
        return -1;
    }
    coty_timer_init(&M.watchdog, on_watchdog, NULL);
    coty_timer_init(&M.extend, on_extend, NULL);
    coty_notify_init();
    if (coty_notify_watchdog_usec())
        on_watchdog(NULL);
    return 0;
}

void mgr_readiness_teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (M.ready_fd[i] >= 0) {
            close(M.ready_fd[i]);
            M.ready_fd[i] = -1;
        }
}
