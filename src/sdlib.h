/*
 * sdlib.h - the few libsystemd calls cotylua makes, with libsystemd
 * opened (dlopen) only on first use.
 *
 * Outside systemd nothing here is called, so the manager maps four
 * libraries instead of eleven, and every fork and worker exit is cheaper
 * for it. When the library cannot be opened, each call returns -ENOSYS
 * (reported once, through the function given to coty_sd_set_report).
 *
 * It logs nothing itself: the log writes to the journal through it, so
 * it must not depend on the log.
 */
#ifndef COTY_SDLIB_H
#define COTY_SDLIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* fn(why) is called once if the library cannot be used; it may run in a
 * signal handler (through the log), so it must be async-signal-safe. */
void coty_sd_set_report(void (*fn)(const char *why));

int coty_sd_notify(int unset_environment, const char *state);
int coty_sd_watchdog_enabled(int unset_environment, uint64_t *usec);
int coty_sd_listen_fds_with_names(int unset_environment, char ***names);
int coty_sd_is_socket_sockaddr(int fd, int type, const struct sockaddr *addr,
                               unsigned addr_len, int listening);
int coty_sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length);
int coty_sd_journal_sendv(const struct iovec *iov, int n);

#endif
