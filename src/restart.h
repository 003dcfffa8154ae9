/*
 * restart.h - the restart throttle of one worker slot: pure logic.
 *
 * Up to `burst` immediate restarts within `interval` seconds; past that,
 * each restart waits, starting at `delay` and doubling up to `max_delay`.
 * Once in backoff a slot stays there until one of its workers stays up for
 * `interval` seconds, or the throttle is reset (SIGHUP, reconfigure).
 * Time is passed in, so the policy is tested without a clock.
 */
#ifndef COTY_RESTART_H
#define COTY_RESTART_H

/* The limits of a policy; cotylua.lua reads them from core.limits. */
#define COTY_BURST_MAX 10000
#define COTY_SECONDS_MAX 1e6    /* every duration a user gives, in seconds */

struct coty_restart_policy {
    int burst;
    double interval, delay, max_delay;
};

struct coty_restart {
    double *ring;           /* the last `burst` immediate restart times */
    int ring_len, ring_pos; /* entries used, next entry to write */
    double next_delay;      /* 0 while not in backoff */
    int deaths;             /* deaths since the last reset, for the log */
    double first_death;
};

extern const struct coty_restart_policy coty_restart_defaults;

/* NULL when the policy is valid, or the name of the bad field. */
const char *coty_restart_check(const struct coty_restart_policy *p);

/* Sets r up empty for policy p. 0, or -1 on ENOMEM. */
int coty_restart_init(struct coty_restart *r, const struct coty_restart_policy *p);
void coty_restart_free(struct coty_restart *r);
/* Forgets the slot's history (SIGHUP, reconfigure, a long-lived worker). */
void coty_restart_reset(struct coty_restart *r);

/* A worker of the slot died at `now` after `uptime` seconds up: returns how
 * many seconds to wait before starting the next one (0 = at once). */
double coty_restart_next(struct coty_restart *r, const struct coty_restart_policy *p,
                         double now, double uptime);

#endif
