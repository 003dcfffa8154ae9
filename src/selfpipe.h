/*
 * selfpipe.h - a pipe that a signal handler writes to, so that an event
 * loop can watch for signals like for any other fd.
 *
 * The read end is readable while a poke is pending; draining empties it.
 * Both ends are non-blocking and close-on-exec. One per process.
 */
#ifndef COTY_SELFPIPE_H
#define COTY_SELFPIPE_H

/* Opens the pipe (once; later calls return the same fd). The read end, or
 * -1 with errno. Not signal-safe. */
int coty_selfpipe_open(void);
/* Makes the read end readable. Async-signal-safe; saves errno; does
 * nothing before coty_selfpipe_open. */
void coty_selfpipe_poke(void);
/* Reads everything pending, so that the read end is no longer readable
 * until the next poke. */
void coty_selfpipe_drain(void);

#endif
