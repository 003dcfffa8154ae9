/*
 * notify.c - sd_notify for the manager; see notify.h. Every message the
 * manager sends to systemd is written in this file.
 */
#define _GNU_SOURCE
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdlib.h"

static int enabled;
static uint64_t watchdog_usec;
static char last_status[512];

void coty_notify_init(void)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;

    enabled = sock && *sock;
    if (enabled && coty_sd_watchdog_enabled(0, &usec) > 0)
        watchdog_usec = usec;
    last_status[0] = '\0';
}

int coty_notify_enabled(void) { return enabled; }
uint64_t coty_notify_watchdog_usec(void) { return watchdog_usec; }

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
    r = coty_sd_notify(0, buf);
    if (r < 0)
        coty_debug("sd_notify(%s) failed: %s", buf, strerror(-r));
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
