/*
 * fdscan.h - finds descriptors that no two processes should share.
 *
 * An event loop created while the services file loads (require("luv") at
 * the top of the file, a top-level cqueues.new()) leaves its epoll,
 * eventfd, timerfd, signalfd or inotify instance open in the manager,
 * and every forked worker would then drive the same kernel object. This
 * unit only looks and warns; it closes nothing.
 */
#ifndef COTY_FDSCAN_H
#define COTY_FDSCAN_H

/* The kind of fd as a short name ("epoll", "eventfd", "timerfd",
 * "signalfd", "inotify"), or NULL when it is none of those. */
const char *coty_fd_loop_kind(int fd);

/* Logs a warning for each such fd open in this process; returns how
 * many there were. Called once the services file has loaded. */
int coty_fds_warn_shared(void);

#endif
