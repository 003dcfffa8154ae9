/*
 * notify.h - sd_notify for the manager: readiness, reload, stop, status
 * and watchdog. A send never waits: a message that finds the reader's
 * queue full is dropped, and the count is logged once one goes again.
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

/* Each call sends one message, when notifying at all. */
/* "READY=1", with MAINPID= the first time. */
void coty_notify_ready(int first);
/* "RELOADING=1" with MONOTONIC_USEC, as Type=notify-reload wants. */
void coty_notify_reloading(void);
/* Sends STATUS=status unless it is the one sent last. */
void coty_notify_status(const char *status);
/* "STOPPING=1" */
void coty_notify_stopping(void);
/* "WATCHDOG=1" */
void coty_notify_watchdog(void);
/* "EXTEND_TIMEOUT_USEC=": the stop may take `seconds` more. */
void coty_notify_extend(double seconds);

#endif
