/*
 * heartbeat.h - a worker's sign of life for the manager's watchdog (the
 * `watchdog` service option): its pid as one datagram, sent at most every
 * watchdog/4 seconds, never blocking. cotylua.heartbeat() sends one; so
 * do the worker's own waits (cotylua.sleep, cotylua.wait, and the loop
 * glue built on them), which also wake up to send them while they wait.
 */
#ifndef COTY_HEARTBEAT_H
#define COTY_HEARTBEAT_H

/* In a new worker: fd is the manager's heartbeat socket (-1: no watchdog). */
void coty_heartbeat_setup(int fd, double watchdog);
/* Sends a heartbeat unless one went less than watchdog/4 seconds ago. */
void coty_heartbeat(void);
/* Seconds between heartbeats (watchdog/4); < 0 when there is no watchdog. */
double coty_heartbeat_every(void);
/* Seconds until the next heartbeat is due; < 0 when there is no watchdog. */
double coty_heartbeat_due(void);

#endif
