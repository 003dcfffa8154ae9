/*
 * restart.c - the restart throttle of one worker slot; see restart.h.
 *
 * The ring holds the times of the last `burst` immediate restarts: a new
 * immediate restart is allowed while the oldest of them is more than
 * `interval` ago (a sliding window, so no burst can straddle two windows).
 */
#include "restart.h"

#include <math.h>
#include <stdlib.h>

const struct coty_restart_policy coty_restart_defaults = {
    .burst = 5, .interval = 10, .delay = 1, .max_delay = 30,
};

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }

const char *coty_restart_check(const struct coty_restart_policy *p)
{
    if (p->burst < 0 || p->burst > COTY_BURST_MAX)
        return "burst";
    if (!finite_nonneg(p->interval) || p->interval > COTY_SECONDS_MAX)
        return "interval";
    if (!finite_nonneg(p->delay) || p->delay > COTY_SECONDS_MAX)
        return "delay";
    if (!finite_nonneg(p->max_delay) || p->max_delay > COTY_SECONDS_MAX || p->max_delay < p->delay)
        return "max_delay";
    return NULL;
}

int coty_restart_init(struct coty_restart *r, const struct coty_restart_policy *p)
{
    *r = (struct coty_restart){0};
    if (p->burst > 0) {
        r->ring = calloc((size_t)p->burst, sizeof *r->ring);
        if (!r->ring)
            return -1;
    }
    return 0;
}

void coty_restart_free(struct coty_restart *r)
{
    free(r->ring);
    r->ring = NULL;
}

void coty_restart_reset(struct coty_restart *r)
{
    r->ring_len = r->ring_pos = 0;
    r->next_delay = 0;
    r->deaths = 0;
}

/* True when one more immediate restart fits in the window. */
static int burst_allows(const struct coty_restart *r,
                        const struct coty_restart_policy *p, double now)
{
    if (p->burst <= 0 || r->next_delay > 0)
        return 0;
    if (r->ring_len < p->burst)
        return 1;
    return now - r->ring[r->ring_pos] >= p->interval;
}

double coty_restart_next(struct coty_restart *r, const struct coty_restart_policy *p,
                         double now, double uptime)
{
    double wait;

    if (uptime >= p->interval)
        coty_restart_reset(r);
    if (r->deaths++ == 0)
        r->first_death = now;
    if (burst_allows(r, p, now)) {
        r->ring[r->ring_pos] = now;
        r->ring_pos = (r->ring_pos + 1) % p->burst;
        if (r->ring_len < p->burst)
            r->ring_len++;
        return 0;
    }
    wait = r->next_delay > 0 ? r->next_delay : p->delay;
    r->next_delay = fmin(wait * 2, p->max_delay);
    if (r->next_delay <= 0)
        r->next_delay = 1e-9; /* a zero delay policy stays "in backoff" */
    return fmin(wait, p->max_delay);
}
