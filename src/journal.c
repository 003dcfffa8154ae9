/*
 * journal.c - structured log entries for the journal; see journal.h.
 */
#define _GNU_SOURCE
#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "sdlib.h"

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
    n = coty_sd_journal_sendv(iov, n);
    free(message);
    return n < 0 ? -1 : 0;
}
