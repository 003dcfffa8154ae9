/*
 * test_loop.c - the event loop's timer heap and fd dispatch.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "unit.h"

static int order[64], norder;

static void fired(void *ud) { order[norder++] = (int)(long)ud; }

static void timers_fire_in_order(void)
{
    struct coty_loop *loop = coty_loop_new();
    struct coty_timer t[5];
    const double delays[5] = {0.04, 0.01, 0.03, 0.02, 0.05};

    norder = 0;
    for (long i = 0; i < 5; i++) {
        coty_timer_init(&t[i], fired, (void *)i);
        CHECK(coty_timer_start(loop, &t[i], delays[i]) == 0);
    }
    coty_timer_stop(loop, &t[2]); /* 0.03 never fires */
    CHECK(!coty_timer_armed(&t[2]));
    CHECK(coty_loop_timers(loop) == 4);
    while (coty_loop_timers(loop))
        coty_loop_run_once(loop, -1);
    CHECK(norder == 4);
    CHECK(order[0] == 1 && order[1] == 3 && order[2] == 0 && order[3] == 4);
    coty_loop_free(loop);
}

static void many_timers_stop_anywhere(void)
{
    enum { N = 1000 };
    struct coty_loop *loop = coty_loop_new();
    struct coty_timer *t = calloc(N, sizeof *t);
    int armed = 0;

    for (long i = 0; i < N; i++) {
        coty_timer_init(&t[i], fired, (void *)i);
        coty_timer_start(loop, &t[i], (double)((i * 7919) % N) / 1000.0 + 10);
    }
    for (int i = 0; i < N; i += 3)
        coty_timer_stop(loop, &t[i]);
    for (int i = 0; i < N; i++)
        armed += coty_timer_armed(&t[i]);
    CHECK(armed == N - (N + 2) / 3);
    CHECK(coty_loop_timers(loop) == (size_t)armed);
    coty_loop_free(loop);
    free(t);
}

static int got_fd = -1;

static void readable(void *ud, int fd, uint32_t events)
{
    char c;

    (void)ud;
    if (events & EPOLLIN && read(fd, &c, 1) == 1)
        got_fd = fd;
}

static void fd_dispatch(void)
{
    struct coty_loop *loop = coty_loop_new();
    int p[2];

    CHECK(pipe(p) == 0);
    CHECK(coty_loop_add_fd(loop, p[0], EPOLLIN, readable, NULL) == 0);
    CHECK(write(p[1], "x", 1) == 1);
    CHECK(coty_loop_run_once(loop, 1) == 0);
    CHECK(got_fd == p[0]);
    CHECK(coty_loop_del_fd(loop, p[0]) == 0);
    CHECK(coty_loop_del_fd(loop, p[0]) == -1);
    close(p[0]);
    close(p[1]);
    coty_loop_free(loop);
}

static void waits_no_longer_than_asked(void)
{
    struct coty_loop *loop = coty_loop_new();
    double t0 = coty_now();

    CHECK(coty_loop_run_once(loop, 0.02) == 0);
    CHECK(coty_now() - t0 >= 0.019);
    coty_loop_free(loop);
}

int main(void)
{
    timers_fire_in_order();
    many_timers_stop_anywhere();
    fd_dispatch();
    waits_no_longer_than_asked();
    return unit_done("test_loop");
}
