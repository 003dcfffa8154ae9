/*
 * test_restart.c - the restart throttle, with time passed in by hand.
 */
#include "restart.h"
#include "unit.h"

static struct coty_restart_policy policy(void)
{
    return coty_restart_defaults; /* 5 in 10 s, then 1, 2, 4 ... 30 s */
}

static void burst_then_backoff(void)
{
    struct coty_restart_policy p = policy();
    struct coty_restart r;
    double t = 100;

    CHECK(coty_restart_init(&r, &p) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(coty_restart_next(&r, &p, t += 0.1, 0.1) == 0);
    CHECK(coty_restart_next(&r, &p, t += 0.1, 0.1) == 1);
    CHECK(coty_restart_next(&r, &p, t += 1, 0.1) == 2);
    CHECK(coty_restart_next(&r, &p, t += 2, 0.1) == 4);
    CHECK(coty_restart_next(&r, &p, t += 4, 0.1) == 8);
    CHECK(coty_restart_next(&r, &p, t += 8, 0.1) == 16);
    CHECK(coty_restart_next(&r, &p, t += 16, 0.1) == 30);
    CHECK(coty_restart_next(&r, &p, t += 30, 0.1) == 30);
    CHECK(r.deaths == 12);
    coty_restart_free(&r);
}

static void long_uptime_forgets(void)
{
    struct coty_restart_policy p = policy();
    struct coty_restart r;
    double t = 0;

    coty_restart_init(&r, &p);
    for (int i = 0; i < 7; i++)
        coty_restart_next(&r, &p, t += 0.1, 0.1);
    CHECK(r.next_delay > 0);
    /* A worker that stayed up for the interval starts the count again. */
    CHECK(coty_restart_next(&r, &p, t += 10, 10) == 0);
    CHECK(r.deaths == 1);
    coty_restart_free(&r);
}

static void sliding_window(void)
{
    struct coty_restart_policy p = policy();
    struct coty_restart r;

    coty_restart_init(&r, &p);
    /* 5 immediate restarts spread over 9 s: the sixth at 9.5 s waits. */
    for (int i = 0; i < 5; i++)
        CHECK(coty_restart_next(&r, &p, 2.0 * i, 1) == 0);
    CHECK(coty_restart_next(&r, &p, 9.5, 1) == 1);
    coty_restart_free(&r);

    coty_restart_init(&r, &p);
    for (int i = 0; i < 5; i++)
        CHECK(coty_restart_next(&r, &p, 2.0 * i, 1) == 0);
    /* At 10.5 s the first of them has left the window. */
    CHECK(coty_restart_next(&r, &p, 10.5, 1) == 0);
    coty_restart_free(&r);
}

static void reset_clears(void)
{
    struct coty_restart_policy p = policy();
    struct coty_restart r;

    coty_restart_init(&r, &p);
    for (int i = 0; i < 8; i++)
        coty_restart_next(&r, &p, i * 0.01, 0.01);
    coty_restart_reset(&r);
    CHECK(coty_restart_next(&r, &p, 1, 0.01) == 0);
    coty_restart_free(&r);
}

static void zero_burst_and_checks(void)
{
    struct coty_restart_policy p = {.burst = 0, .interval = 10, .delay = 0.5, .max_delay = 1};
    struct coty_restart r;

    CHECK(coty_restart_check(&p) == NULL);
    coty_restart_init(&r, &p);
    CHECK(coty_restart_next(&r, &p, 1, 0) == 0.5);
    CHECK(coty_restart_next(&r, &p, 2, 0) == 1);
    CHECK(coty_restart_next(&r, &p, 3, 0) == 1);
    coty_restart_free(&r);

    p.max_delay = 0.1; /* below delay */
    CHECK(coty_restart_check(&p) != NULL);
    p = policy();
    p.burst = -1;
    CHECK(coty_restart_check(&p) != NULL);
    p = policy();
    p.interval = 0.0 / 0.0;
    CHECK(coty_restart_check(&p) != NULL);
}

int main(void)
{
    burst_then_backoff();
    long_uptime_forgets();
    sliding_window();
    reset_clears();
    zero_burst_and_checks();
    return unit_done("test_restart");
}
