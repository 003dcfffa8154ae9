/*
 * notify.c - sd_notify for the manager; see notify.h. Every message the
 * manager sends to systemd is written in this file.
 *
 * The datagrams are sent here rather than by libsystemd's sd_notify,
 * which waits for room when the reader's queue is full: a reader that
 * stops reading would stop the manager. A message that cannot go at once
 * is dropped and counted, and the count is logged once one goes again.
 */
#define _GNU_SOURCE
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdlib.h"

static int enabled;
static uint64_t watchdog_usec;
static char last_status[512];
static struct sockaddr_un addr;  /* NOTIFY_SOCKET, when a unix socket */
static socklen_t addr_len;       /* 0: another kind, left to libsystemd */
static unsigned long dropped;    /* since the last message that went */

/* NOTIFY_SOCKET as a unix address: a path, or @name for an abstract one. */
static void parse_address(const char *sock)
{
    size_t n = strlen(sock);

    addr_len = 0;
    if ((sock[0] != '/' && sock[0] != '@') || n >= sizeof addr.sun_path)
        return;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, sock, n);
    if (sock[0] == '@')
        addr.sun_path[0] = '\0';
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (sock[0] == '/'));
}

void coty_notify_init(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;

    enabled = sock && *sock;
    if (enabled)
        parse_address(sock);
    if (enabled && coty_sd_watchdog_enabled(0, &usec) > 0)
        watchdog_usec = usec;
    last_status[0] = '\0';
    dropped = 0;
}

int coty_notify_enabled(void) { return enabled; }
uint64_t coty_notify_watchdog_usec(void) { return watchdog_usec; }

/* One datagram, never waiting: 0, or -errno. The socket is opened for
 * each message, so that no worker inherits it. */
static int send_now(const char *msg)
{
    int fd, r = 0;

    if (!addr_len)
        return coty_sd_notify(0, msg);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sendto(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr,
               addr_len) < 0)
        r = -errno;
    close(fd);
    return r;
}

static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int r;

    if (!enabled)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r = send_now(buf);
    if (r < 0) {
        dropped++;
        coty_debug("sd_notify(%s) failed: %s", buf, strerror(-r));
    } else if (dropped) {
        coty_warning("%lu message%s to NOTIFY_SOCKET dropped: its reader was not reading",
                     dropped, dropped == 1 ? "" : "s");
        dropped = 0;
    }
}

void coty_notify_reloading(void)
{
    struct timespec ts;

    if (!enabled)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    notify("RELOADING=1\nMONOTONIC_USEC=%llu",
                (unsigned long long)ts.tv_sec * 1000000ULL +
                    (unsigned long long)ts.tv_nsec / 1000ULL);
}

void coty_notify_status(const char *status)
{
    if (!enabled || !strcmp(status, last_status))
        return;
    snprintf(last_status, sizeof last_status, "%s", status);
    notify("STATUS=%s", status);
}

void coty_notify_ready(int first)
{
    if (first)
        notify("READY=1\nMAINPID=%d", (int)getpid());
    else
        notify("READY=1");
}

void coty_notify_stopping(void) { notify("STOPPING=1"); }

void coty_notify_watchdog(void) { notify("WATCHDOG=1"); }

void coty_notify_extend(double seconds)
{
    notify("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)(seconds * 1e6));
}
