/*
 * loop.h - the manager's event loop: file descriptors and timers.
 *
 * An epoll set plus a min-heap of timers. It knows nothing of processes or
 * signals: the manager gives it a signalfd like any other fd. Timers are
 * owned by the caller (embedded in its own structs), so starting and
 * stopping one never allocates except to grow the heap. An idle loop
 * sleeps in epoll_wait with no timeout: no periodic wake-ups.
 */
#ifndef COTY_LOOP_H
#define COTY_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct coty_loop;

typedef void coty_fd_cb(void *ud, int fd, uint32_t events);
typedef void coty_timer_cb(void *ud);

struct coty_timer {
    double when;            /* monotonic deadline, seconds */
    size_t index;           /* place in the heap + 1; 0 when not armed */
    coty_timer_cb *cb;
    void *ud;
};

/* Monotonic clock in seconds. */
double coty_now(void);

struct coty_loop *coty_loop_new(void);
void coty_loop_free(struct coty_loop *loop);
/* The epoll fd, so that a forked child can close it. */
int coty_loop_fd(const struct coty_loop *loop);

int coty_loop_add_fd(struct coty_loop *loop, int fd, uint32_t events,
                     coty_fd_cb *cb, void *ud);
int coty_loop_del_fd(struct coty_loop *loop, int fd);

void coty_timer_init(struct coty_timer *t, coty_timer_cb *cb, void *ud);
/* (Re)arms t to fire once, delay seconds from now. 0 or -1 on ENOMEM. */
int coty_timer_start(struct coty_loop *loop, struct coty_timer *t, double delay);
void coty_timer_stop(struct coty_loop *loop, struct coty_timer *t);
int coty_timer_armed(const struct coty_timer *t);
size_t coty_loop_timers(const struct coty_loop *loop);

/* Waits for events (at most max_wait seconds, <0 = until one comes) and
 * runs their callbacks. 0, or -1 with errno when epoll_wait failed. */
int coty_loop_run_once(struct coty_loop *loop, double max_wait);

#endif
