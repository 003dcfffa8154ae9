/*
 * notify.c - sd_notify for the manager; see notify.h.
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

void coty_notify(const char *fmt, ...)
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
    coty_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
                (unsigned long long)ts.tv_sec * 1000000ULL +
                    (unsigned long long)ts.tv_nsec / 1000ULL);
}

void coty_notify_status(const char *status)
{
    if (!enabled || !strcmp(status, last_status))
        return;
    snprintf(last_status, sizeof last_status, "%s", status);
    coty_notify("STATUS=%s", status);
}
