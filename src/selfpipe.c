/*
 * selfpipe.c - the self-pipe trick; see selfpipe.h. A full pipe is no
 * error: it is readable already, which is all a poke has to ensure.
 */
#define _GNU_SOURCE
#include "selfpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t rfd = -1, wfd = -1;

int coty_selfpipe_open(void)
{
    int fds[2];

    if (rfd >= 0)
        return rfd;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    wfd = fds[1];
    rfd = fds[0];
    return rfd;
}

void coty_selfpipe_poke(void)
{
    int saved = errno;
    char c = 1;

    if (wfd >= 0 && write(wfd, &c, 1) < 0) {
        /* EAGAIN: full, so readable already */
    }
    errno = saved;
}

void coty_selfpipe_drain(void)
{
    char buf[64];

    if (rfd < 0)
        return;
    while (read(rfd, buf, sizeof buf) > 0)
        ;
}
