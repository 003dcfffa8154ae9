/*
 * loop.c - epoll and a timer heap; see loop.h.
 *
 * Each fd registered carries a small record (callback, user data) that
 * epoll hands back. Timers live in a binary min-heap ordered by deadline;
 * each timer remembers its slot, so stopping one is O(log n) even with
 * thousands armed (one per worker during a shutdown).
 */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

struct watch {
    int fd;
    coty_fd_cb *cb;
    void *ud;
    struct watch *next;
};

struct coty_loop {
    int epfd;
    struct watch *watches;
    struct watch *removed;      /* freed after the batch of events in hand */
    struct coty_timer **heap;
    size_t ntimers, cap;
};

double coty_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct coty_loop *coty_loop_new(void)
{
    struct coty_loop *loop = calloc(1, sizeof *loop);

    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    return loop;
}

static void free_watches(struct watch *w)
{
    while (w) {
        struct watch *next = w->next;
        free(w);
        w = next;
    }
}

void coty_loop_free(struct coty_loop *loop)
{
    if (!loop)
        return;
    free_watches(loop->watches);
    free_watches(loop->removed);
    for (size_t i = 0; i < loop->ntimers; i++)
        loop->heap[i]->index = 0;
    free(loop->heap);
    close(loop->epfd);
    free(loop);
}

int coty_loop_fd(const struct coty_loop *loop) { return loop->epfd; }

int coty_loop_add_fd(struct coty_loop *loop, int fd, uint32_t events,
                     coty_fd_cb *cb, void *ud)
{
    struct epoll_event ev = {.events = events};
    struct watch *w = malloc(sizeof *w);

    if (!w)
        return -1;
    *w = (struct watch){.fd = fd, .cb = cb, .ud = ud, .next = loop->watches};
    ev.data.ptr = w;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int saved = errno;
        free(w);
        errno = saved;
        return -1;
    }
    loop->watches = w;
    return 0;
}

int coty_loop_del_fd(struct coty_loop *loop, int fd)
{
    for (struct watch **pw = &loop->watches; *pw; pw = &(*pw)->next) {
        struct watch *w = *pw;
        if (w->fd != fd)
            continue;
        *pw = w->next;
        /* Events of this batch may still point at w: it is only marked
         * (no callback) and freed once the batch is done. */
        w->cb = NULL;
        w->next = loop->removed;
        loop->removed = w;
        return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    errno = ENOENT;
    return -1;
}

/* ---- timer heap (index is 1-based in the timer, 0-based in the array) */

static void heap_set(struct coty_loop *loop, size_t i, struct coty_timer *t)
{
    loop->heap[i] = t;
    t->index = i + 1;
}

static void sift_up(struct coty_loop *loop, size_t i)
{
    struct coty_timer *t = loop->heap[i];

    while (i > 0 && loop->heap[(i - 1) / 2]->when > t->when) {
        heap_set(loop, i, loop->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(loop, i, t);
}

static void sift_down(struct coty_loop *loop, size_t i)
{
    struct coty_timer *t = loop->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->ntimers)
            break;
        if (c + 1 < loop->ntimers && loop->heap[c + 1]->when < loop->heap[c]->when)
            c++;
        if (loop->heap[c]->when >= t->when)
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

void coty_timer_init(struct coty_timer *t, coty_timer_cb *cb, void *ud)
{
    *t = (struct coty_timer){.cb = cb, .ud = ud};
}

int coty_timer_armed(const struct coty_timer *t) { return t->index != 0; }
size_t coty_loop_timers(const struct coty_loop *loop) { return loop->ntimers; }

void coty_timer_stop(struct coty_loop *loop, struct coty_timer *t)
{
    size_t i;
    struct coty_timer *last;

    if (!t->index)
        return;
    i = t->index - 1;
    t->index = 0;
    last = loop->heap[--loop->ntimers];
    if (i == loop->ntimers)
        return;
    heap_set(loop, i, last);
    sift_down(loop, i);
    sift_up(loop, last->index - 1);
}

int coty_timer_start(struct coty_loop *loop, struct coty_timer *t, double delay)
{
    coty_timer_stop(loop, t);
    if (loop->ntimers == loop->cap) {
        size_t cap = loop->cap ? loop->cap * 2 : 16;
        struct coty_timer **heap = realloc(loop->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        loop->heap = heap;
        loop->cap = cap;
    }
    t->when = coty_now() + (delay > 0 ? delay : 0);
    heap_set(loop, loop->ntimers++, t);
    sift_up(loop, loop->ntimers - 1);
    return 0;
}

/* Milliseconds epoll may sleep: until the first timer, capped by max_wait. */
static int wait_ms(const struct coty_loop *loop, double max_wait)
{
    double wait = max_wait;

    if (loop->ntimers) {
        double first = loop->heap[0]->when - coty_now();
        if (first < 0)
            first = 0;
        if (wait < 0 || first < wait)
            wait = first;
    }
    if (wait < 0)
        return -1;
    if (wait > 3600 * 24)
        wait = 3600 * 24;
    return (int)ceil(wait * 1000);
}

static void run_timers(struct coty_loop *loop)
{
    double now = coty_now();

    while (loop->ntimers && loop->heap[0]->when <= now) {
        struct coty_timer *t = loop->heap[0];
        coty_timer_stop(loop, t);
        t->cb(t->ud);
    }
}

int coty_loop_run_once(struct coty_loop *loop, double max_wait)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(loop->epfd, evs, MAX_EVENTS, wait_ms(loop, max_wait));

    if (n < 0 && errno != EINTR)
        return -1;
    for (int i = 0; i < n; i++) {
        struct watch *w = evs[i].data.ptr;
        if (w->cb)
            w->cb(w->ud, w->fd, evs[i].events);
    }
    free_watches(loop->removed);
    loop->removed = NULL;
    run_timers(loop);
    return 0;
}
