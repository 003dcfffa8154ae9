/*
 * heartbeat.c - the worker's side of the watchdog; see heartbeat.h. The
 * manager's side is mgr_watchdog.c.
 */
#define _GNU_SOURCE
#include "heartbeat.h"

#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

static int beat_fd = -1;
static double every, last = -1;

void coty_heartbeat_setup(int fd, double watchdog)
{
    beat_fd = fd;
    every = watchdog / 4;
}

void coty_heartbeat(void)
{
    pid_t pid;

    if (beat_fd < 0 || (last >= 0 && coty_now() - last < every))
        return;
    pid = getpid();
    last = coty_now(); /* sent or not: one try per period, never a spin */
    /* A full socket or a manager that is gone: the next one will do. */
    send(beat_fd, &pid, sizeof pid, MSG_DONTWAIT | MSG_NOSIGNAL);
}

double coty_heartbeat_every(void) { return beat_fd < 0 ? -1 : every; }

double coty_heartbeat_due(void)
{
    double left;

    if (beat_fd < 0)
        return -1;
    left = last < 0 ? 0 : last + every - coty_now();
    return left > 0 ? left : 0;
}
