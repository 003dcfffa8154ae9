/*
 * notify.h - sd_notify for the manager: readiness, reload, stop, status
 * and watchdog, through libsystemd.
 *
 * Outside systemd (no NOTIFY_SOCKET at start-up) every call returns at
 * once without a system call. Workers never notify: they drop
 * NOTIFY_SOCKET from their environment after fork.
 */
#ifndef COTY_NOTIFY_H
#define COTY_NOTIFY_H

#include <stdint.h>

/* Reads NOTIFY_SOCKET and the watchdog settings; call once, in the manager. */
void coty_notify_init(void);
int coty_notify_enabled(void);
/* The watchdog interval systemd asked for, in microseconds; 0 = none. */
uint64_t coty_notify_watchdog_usec(void);

/* Sends the state lines in fmt (printf-style), when notifying at all. */
void coty_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "RELOADING=1" with MONOTONIC_USEC, as Type=notify-reload wants. */
void coty_notify_reloading(void);
/* Sends STATUS=status unless it is the one sent last. */
void coty_notify_status(const char *status);

#endif
