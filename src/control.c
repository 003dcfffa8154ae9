/*
 * control.c - the manager's side of the control socket: accept, read
 * request lines, answer each with one JSON line; see control.h. Requests
 * are parsed by ctl_proto.c; status and metrics are written by
 * mgr_stats.c; this file owns the connections and the actions.
 *
 * Nothing here blocks: every socket is non-blocking and edge-triggered,
 * each client has a bounded input line and a bounded output buffer, and
 * a client gets CLIENT_TIMEOUT seconds for each request and for reading
 * its reply (slow, silent or stuck clients are dropped). A client answers
 * one request at a time: the next line waits until the reply is out.
 * Only the manager's uid and root are served (SO_PEERCRED); the socket
 * file is mode 0600 anyway.
 */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_proto.h"
#include "log.h"
#include "mgr.h"

#define MAX_CLIENTS 16
#define CLIENT_TIMEOUT 10.0     /* seconds for a request, and for its reply */
#define REPLY_MAX (16u << 20)
#define METRICS_EVERY 10.0      /* seconds between writes of the metrics file */
#define METRICS_AFTER 1.0       /* ... or this long after an event */

struct client {
    int fd;
    pid_t pid;
    uid_t uid;
    char in[COTY_CTL_LINE_MAX];
    size_t inlen;
    struct coty_buf out;
    int eof, closing;
    struct coty_timer timeout;
};

static char *cli_path, *path, *metrics_path;
static int lfd = -1;
static struct client *clients[MAX_CLIENTS];
static struct coty_timer metrics_timer;
static int metrics_written;     /* in this turn of the loop */

void coty_control_cli(const char *p)
{
    free(cli_path);
    cli_path = strdup(p);
}

const char *coty_control_path(void) { return lfd >= 0 ? path : NULL; }

/* ---- opening: one manager per file ------------------------------------ */

static int address(const char *p, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(p) >= sizeof sun->sun_path)
        return -1;
    strcpy(sun->sun_path, p);
    return 0;
}

/* Whether a manager answers at p: its pid, 0 for none (a stale file is
 * removed), -1 when p cannot be checked. */
static pid_t running_at(const char *p, const struct sockaddr_un *sun)
{
    struct ucred cr = {0};
    socklen_t len = sizeof cr;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    pid_t pid = 0;

    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0 || errno == EAGAIN)
        pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid ? cr.pid : 1;
    else if (errno == ECONNREFUSED)
        unlink(p); /* nobody listens: a manager that was killed left it */
    close(fd);
    return pid;
}

static int listen_at(const char *p, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    mode_t old;
    pid_t other;
    int fd;

    if (address(p, &sun) < 0)
        return snprintf(err, errlen, "control socket %s: path too long", p), -1;
    if ((other = running_at(p, &sun)) > 0)
        return snprintf(err, errlen, "a manager (pid %d) already runs this file: it answers on %s",
                        (int)other, p), -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    old = umask(0177); /* the file is born 0600 */
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 16) < 0) {
        int saved = errno;
        umask(old);
        if (fd >= 0)
            close(fd);
        return snprintf(err, errlen, "cannot listen on control socket %s: %s", p,
                        strerror(saved)), -1;
    }
    umask(old);
    return fd;
}

int coty_control_open(const char *opt_path, const char *file, const char *metrics_file,
                      char *err, size_t errlen)
{
    char def[PATH_MAX], why[200];
    const char *p = cli_path ? cli_path : opt_path;

    coty_control_close();
    free(metrics_path);
    metrics_path = metrics_file ? strdup(metrics_file) : NULL;
    if (!p) {
        if (coty_ctl_default_path(file ? file : "cotylua", def, sizeof def, why, sizeof why) < 0) {
            coty_warning("no control socket: %s", why);
            return 0;
        }
        if (geteuid() == 0 && !getenv("RUNTIME_DIRECTORY"))
            mkdir("/run/cotylua", 0755);
        p = def;
    }
    lfd = listen_at(p, err, errlen);
    if (lfd < 0)
        return -1;
    path = strdup(p);
    return 0;
}

void coty_control_close(void)
{
    if (lfd < 0)
        return;
    close(lfd);
    lfd = -1;
    if (path)
        unlink(path);
    free(path);
    path = NULL;
}

/* ---- clients ------------------------------------------------------------ */

static void drop(struct client *c)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] == c)
            clients[i] = NULL;
    coty_timer_stop(M.loop, &c->timeout);
    coty_loop_del_fd(M.loop, c->fd);
    close(c->fd);
    coty_buf_free(&c->out);
    free(c);
}

static void on_timeout(void *ud)
{
    struct client *c = ud;

    coty_info("control: dropped a client (pid %d): no %s within %g s", (int)c->pid,
              c->out.len ? "read of its reply" : "whole request", CLIENT_TIMEOUT);
    drop(c);
}

static void reply_error(struct client *c, const char *msg)
{
    coty_buf_add(&c->out, "{\"ok\":false,\"error\":", 20);
    coty_buf_json(&c->out, msg);
    coty_buf_add(&c->out, "}\n", 2);
}

/* ---- actions ------------------------------------------------------------ */

static struct service *service_named(const char *name)
{
    for (int i = 0; i < M.nsvcs; i++)
        if (!strcmp(M.svcs[i]->conf.name, name))
            return M.svcs[i];
    return NULL;
}

static void reply_ok(struct client *c, const char *text)
{
    coty_buf_add(&c->out, "{\"ok\":true,\"text\":", 18);
    coty_buf_json(&c->out, text);
    coty_buf_add(&c->out, "}\n", 2);
}

static void scale(struct client *c, const struct coty_ctl_req *r)
{
    struct service *svc = service_named(r->name);
    char msg[COTY_CTL_NAME_MAX + 64];

    if (!svc)
        return reply_error(c, "no such service");
    coty_info("control: scale %s from %d to %d workers (client pid %d)", svc->conf.name,
              svc->conf.workers, r->n, (int)c->pid);
    coty_mgr_reconfigure(svc->id, r->n);
    snprintf(msg, sizeof msg, "%s: %d worker%s", svc->conf.name, PLURAL(r->n));
    reply_ok(c, msg);
}

/* restart NAME: one worker at a time, each replacement ready before the
 * next goes; mgr_control_tick() moves it on. */
static void restart(struct client *c, const struct coty_ctl_req *r)
{
    struct service *svc = service_named(r->name);
    char msg[COTY_CTL_NAME_MAX + 80];

    if (!svc)
        return reply_error(c, "no such service");
    svc->roll_since = coty_now();
    svc->roll_wid = 0;
    svc->rolling = 1;
    coty_info("control: restarting the %d worker%s of %s one at a time (client pid %d)",
              PLURAL(svc->conf.workers), svc->conf.name, (int)c->pid);
    snprintf(msg, sizeof msg, "%s: restarting %d worker%s one at a time", svc->conf.name,
             PLURAL(svc->conf.workers));
    reply_ok(c, msg);
}

static void signal_self(struct client *c, int sig, const char *what)
{
    coty_info("control: %s requested (client pid %d)", what, (int)c->pid);
    kill(getpid(), sig); /* read from the signalfd, as from kill(1) */
    reply_ok(c, what);
}

static void serve(struct client *c, const char *line, size_t len)
{
    struct coty_ctl_req r;

    if (coty_ctl_parse(line, len, &r) < 0)
        return reply_error(c, r.error);
    if (M.state != M_RUNNING && r.verb != CTL_STATUS && r.verb != CTL_STATUS_JSON &&
        r.verb != CTL_METRICS && r.verb != CTL_CHECK)
        return reply_error(c, "the manager is stopping");
    switch (r.verb) {
    case CTL_STATUS: mgr_status(&c->out, 0); break;
    case CTL_STATUS_JSON: mgr_status(&c->out, 1); break;
    case CTL_METRICS: mgr_metrics_reply(&c->out); break;
    case CTL_CHECK: mgr_check_reply(&c->out); break;
    case CTL_RELOAD: signal_self(c, SIGHUP, "reload"); break;
    case CTL_STOP: signal_self(c, SIGTERM, "stop"); break;
    case CTL_SCALE: scale(c, &r); break;
    case CTL_RESTART: restart(c, &r); break;
    }
    if (c->out.failed) {
        coty_buf_free(&c->out);
        reply_error(c, "reply too large");
        c->closing = 1;
    }
}

/* ---- moving bytes --------------------------------------------------------- */

/* Writes what is pending; -1 when the client is gone. */
static int flush(struct client *c)
{
    int had = c->out.len != 0;

    while (c->out.len) {
        ssize_t n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        coty_buf_consume(&c->out, (size_t)n);
    }
    if (had) /* the reply is out: the next request has its own time */
        coty_timer_start(M.loop, &c->timeout, CLIENT_TIMEOUT);
    return 0;
}

/* Answers the first whole line in the input; 1 when there was one. */
static int take_line(struct client *c)
{
    size_t n = coty_ctl_line(c->in, c->inlen);

    if (!n && c->eof && c->inlen) /* half-closed after a last line without "\n" */
        n = c->inlen;
    if (!n) {
        if (c->inlen == sizeof c->in) {
            reply_error(c, "request too long");
            c->closing = 1;
            return 1;
        }
        return 0;
    }
    serve(c, c->in, n);
    memmove(c->in, c->in + n, c->inlen - n);
    c->inlen -= n;
    return 1;
}

/* Reads once; 1 when bytes came, 0 on EAGAIN or a full buffer, -1 when
 * the client is gone. */
static int fill(struct client *c)
{
    ssize_t n;

    if (c->eof || c->inlen == sizeof c->in)
        return 0;
    n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0) {
        c->eof = 1;
        return 1;
    }
    c->inlen += (size_t)n;
    return 1;
}

/* Moves everything that can move without blocking. Edge-triggered: it
 * stops only on EAGAIN, or with a reply pending (EPOLLOUT resumes it). */
static void pump(struct client *c)
{
    for (;;) {
        int r;
        if (flush(c) < 0)
            return drop(c);
        if (c->out.len)
            return;
        if (c->closing || (c->eof && !c->inlen))
            return drop(c);
        if (take_line(c))
            continue;
        if ((r = fill(c)) < 0)
            return drop(c);
        if (r == 0)
            return;
    }
}

static void on_client(void *ud, int fd, uint32_t events)
{
    (void)fd;
    (void)events;
    pump(ud);
}

/* A client of another uid gets one line and is closed. */
static int allowed(int fd, struct ucred *cr)
{
    socklen_t len = sizeof *cr;
    static const char no[] = "{\"ok\":false,\"error\":\"permission denied\"}\n";

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
        return 0;
    if (cr->uid == 0 || cr->uid == geteuid())
        return 1;
    coty_warning("control: refused a client of uid %d (pid %d)", (int)cr->uid, (int)cr->pid);
    if (send(fd, no, sizeof no - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        coty_debug("control: %s", strerror(errno));
    return 0;
}

static int free_place(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (!clients[i])
            return i;
    return -1;
}

static void add_client(int fd, const struct ucred *cr)
{
    int i = free_place();
    struct client *c = i < 0 ? NULL : calloc(1, sizeof *c);

    if (!c || coty_loop_add_fd(M.loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_client,
                               c) < 0) {
        coty_warning("control: refused a client (pid %d): %s", (int)cr->pid,
                     i < 0 ? "too many clients" : strerror(errno));
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->pid = cr->pid;
    c->uid = cr->uid;
    coty_buf_init(&c->out, REPLY_MAX);
    coty_timer_init(&c->timeout, on_timeout, c);
    coty_timer_start(M.loop, &c->timeout, CLIENT_TIMEOUT);
    clients[i] = c;
    pump(c);
}

static void on_accept(void *ud, int fd, uint32_t events)
{
    int cfd;

    (void)ud;
    (void)events;
    while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct ucred cr;
        if (allowed(cfd, &cr))
            add_client(cfd, &cr);
        else
            close(cfd);
    }
}

/* ---- the rolling restart --------------------------------------------------- */

/* Moves a restart of svc on; 1 when it is done. */
static int roll(struct service *svc)
{
    while (svc->roll_wid < svc->conf.workers) {
        struct slot *s = svc->roll_wid < svc->nslots ? svc->slots[svc->roll_wid] : NULL;
        if (!s || !s->pid)
            return 0; /* a replacement is due: reconcile starts it */
        if (s->started < svc->roll_since) {
            if (!s->stopping)
                mgr_stop_worker(s);
            return 0;
        }
        if (!s->ready)
            return 0;
        svc->roll_wid++;
    }
    return 1;
}

/* ---- the metrics file ------------------------------------------------------ */

static void write_metrics(void)
{
    char tmp[PATH_MAX];
    struct coty_buf b;
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", metrics_path);
    coty_buf_init(&b, REPLY_MAX);
    mgr_metrics(&b);
    f = fopen(tmp, "we");
    if (!f || b.failed || fwrite(b.p, 1, b.len, f) != b.len || fclose(f) != 0 ||
        rename(tmp, metrics_path) < 0) {
        coty_warning("cannot write the metrics to %s: %s", metrics_path, strerror(errno));
        if (f)
            unlink(tmp);
    }
    coty_buf_free(&b);
}

static void on_metrics_timer(void *ud)
{
    (void)ud;
    write_metrics();
    metrics_written = 1;
    coty_timer_start(M.loop, &metrics_timer, METRICS_EVERY);
}

/* After a turn of the loop with events (other than the write itself): the
 * file is written again within METRICS_AFTER, at most that often. */
static void metrics_soon(void)
{
    if (metrics_written || !coty_timer_armed(&metrics_timer))
        metrics_written = 0;
    else if (metrics_timer.when - coty_now() > METRICS_AFTER)
        coty_timer_start(M.loop, &metrics_timer, METRICS_AFTER);
}

/* ---- the manager's calls ------------------------------------------------------ */

int mgr_control_start(void)
{
    coty_timer_init(&metrics_timer, on_metrics_timer, NULL);
    if (metrics_path)
        coty_timer_start(M.loop, &metrics_timer, 0);
    if (lfd < 0)
        return 0;
    if (coty_loop_add_fd(M.loop, lfd, EPOLLIN, on_accept, NULL) < 0) {
        coty_error("cannot watch the control socket: %s", strerror(errno));
        return -1;
    }
    coty_info("control socket: %s", path);
    return 0;
}

void mgr_control_tick(void)
{
    if (metrics_path)
        metrics_soon();
    for (int i = 0; i < M.nsvcs && M.state == M_RUNNING; i++) {
        struct service *svc = M.svcs[i];
        if (svc->rolling && roll(svc)) {
            svc->rolling = 0;
            coty_info("control: the workers of %s are restarted", svc->conf.name);
        }
    }
}

void mgr_control_stop(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i])
            drop(clients[i]);
    if (metrics_path && M.loop)
        write_metrics();
    coty_timer_stop(M.loop, &metrics_timer);
    coty_control_close();
}

void mgr_control_close_in_child(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i])
            close(clients[i]->fd);
    if (lfd >= 0)
        close(lfd);
    lfd = -1; /* and the file is not the child's to remove */
}
