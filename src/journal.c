/*
 * journal.c - structured log entries for the journal; see journal.h.
 *
 * Entries go to journald's socket in its native protocol, sent by hand
 * rather than with sd_journal_sendv(): a journald that stops reading
 * fills the socket's queue, and sd_journal_sendv() would then block the
 * manager. Here a send that cannot go at once fails (MSG_DONTWAIT) and
 * the line goes to stderr, which never blocks the manager either (log.c).
 */
#define _GNU_SOURCE
#include "journal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define ENTRY_MAX 8192

#define CUT "\xe2\x80\xa6" /* an ellipsis */

static const int priorities[] = {7, 6, 4, 3}; /* debug, info, warning, error */

int coty_journal_active(void)
{
    static int active = -1;
    const char *js;
    unsigned long dev, ino;
    struct stat st;

    if (active >= 0)
        return active;
    js = getenv("JOURNAL_STREAM");
    active = js && sscanf(js, "%lu:%lu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
             (unsigned long)st.st_dev == dev && (unsigned long)st.st_ino == ino;
    return active;
}

/* Appends "KEY=value" to iov (the text lives in buf); a value too long
 * for buf is cut and ends with an ellipsis. */
static void field(struct iovec *iov, int *n, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void field(struct iovec *iov, int *n, char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (len >= 0 && (size_t)len >= cap) {
        len = (int)coty_log_cut_utf8(buf, cap - 1 - (sizeof CUT - 1));
        memcpy(buf + len, CUT, sizeof CUT - 1);
        len += (int)sizeof CUT - 1;
    }
    iov[*n].iov_base = buf;
    iov[*n].iov_len = len < 0 ? 0 : (size_t)len;
    (*n)++;
}

/* Appends one field of iov ("KEY=value") to buf in the native protocol:
 * "KEY=value\n", or "KEY\n", a 64-bit little-endian length, the value
 * and "\n" when the value has a newline. -1 when buf is full. */
static int append(char *buf, size_t *pos, const struct iovec *iov)
{
    const char *f = iov->iov_base, *eq = memchr(f, '=', iov->iov_len);
    size_t klen = eq ? (size_t)(eq - f) : iov->iov_len;
    size_t vlen = eq ? iov->iov_len - klen - 1 : 0;

    if (*pos + iov->iov_len + 10 > ENTRY_MAX)
        return -1;
    if (!memchr(f, '\n', iov->iov_len)) {
        memcpy(buf + *pos, f, iov->iov_len);
        *pos += iov->iov_len;
    } else {
        uint64_t len = vlen;
        memcpy(buf + *pos, f, klen);
        *pos += klen;
        buf[(*pos)++] = '\n';
        for (int i = 0; i < 8; i++, len >>= 8)
            buf[(*pos)++] = (char)(len & 0xff);
        memcpy(buf + *pos, eq + 1, vlen);
        *pos += vlen;
    }
    buf[(*pos)++] = '\n';
    return 0;
}

/* One datagram to journald, never waiting; 0 or -1. */
static int send_entry(const struct iovec *iov, int n)
{
    static int fd = -1;
    static const struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET};
    char *buf = malloc(ENTRY_MAX);
    size_t pos = 0;
    ssize_t sent = -1;

    if (!buf)
        return -1;
    if (fd < 0)
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    for (int i = 0; i < n; i++)
        if (append(buf, &pos, &iov[i]) < 0)
            goto out;
    if (fd >= 0)
        sent = sendto(fd, buf, pos, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sa,
                      sizeof sa);
out:
    free(buf);
    return sent < 0 ? -1 : 0;
}

int coty_journal_send(int level, const char *procname, const struct coty_log_subject *s,
                      const char *msg)
{
    char bufs[8][320];
    struct iovec iov[9];
    int n = 0;
    char *message;

    if (asprintf(&message, "MESSAGE=%s", msg) < 0)
        return -1;
    iov[n].iov_base = message;
    iov[n++].iov_len = strlen(message);
    field(iov, &n, bufs[0], sizeof bufs[0], "PRIORITY=%d", priorities[level]);
    field(iov, &n, bufs[1], sizeof bufs[1], "SYSLOG_IDENTIFIER=cotylua");
    field(iov, &n, bufs[2], sizeof bufs[2], "COTYLUA_PROCESS=%s", procname);
    field(iov, &n, bufs[3], sizeof bufs[3], "COTYLUA_PID=%d", s && s->pid ? s->pid : (int)getpid());
    if (s && s->service) {
        field(iov, &n, bufs[4], sizeof bufs[4], "COTYLUA_SERVICE=%s", s->service);
        field(iov, &n, bufs[5], sizeof bufs[5], "COTYLUA_WORKER_ID=%d", s->worker_id);
    }
    if (s && s->has_exit_code)
        field(iov, &n, bufs[6], sizeof bufs[6], "COTYLUA_EXIT_CODE=%d", s->exit_code);
    n = send_entry(iov, n);
    free(message);
    return n;
}
