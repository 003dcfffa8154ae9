/*
 * log.c - log lines on stderr; see log.h for the format.
 *
 * Every line is built in a stack buffer and written with one write(2), so
 * lines from the manager and its workers never interleave mid-line. The
 * time stamp is computed by hand from CLOCK_REALTIME and a cached UTC
 * offset: no localtime_r (which may lock) on the way, which is what lets
 * coty_log_safe() run inside a signal handler.
 *
 * Writing never blocks the manager, and never raises SIGPIPE:
 * - fd 2's open file description is shared (with the terminal, the shell,
 *   the workers), so O_NONBLOCK is never set on it: that would change it
 *   for all of them. When fd 2 is a pipe, a FIFO or a terminal, a second
 *   description of the same object is opened through /proc/self/fd/2 with
 *   O_NONBLOCK, for this process (and its workers' signal-safe path) only.
 *   Without /proc, a poll() with zero timeout comes before each write (a
 *   worker may fill the pipe in between: a small window, documented).
 *   A socket gets send(MSG_DONTWAIT | MSG_NOSIGNAL); a regular file never
 *   blocks and is written as it is.
 * - SIGPIPE is blocked around the write, and the one the write raised is
 *   taken back with sigtimedwait() before the mask is restored.
 * In the manager (the default), a line that cannot be written at once is
 * dropped and counted; the next line that gets through is preceded by one
 * that says how many were lost. A worker's lines may wait (that is its
 * back-pressure) except those of coty_log_safe(), which never wait.
 */
#define _GNU_SOURCE
#include "log.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
#define CUT_MARK "\xe2\x80\xa6" /* an ellipsis (UTF-8) ends a cut line */

enum sink_kind { SINK_PLAIN, SINK_OWN, SINK_POLL, SINK_SOCKET };

static enum sink_kind sink_kind = SINK_PLAIN;
static int sink_fd = STDERR_FILENO; /* SINK_OWN: a non-blocking description */
static int may_wait;                /* a worker: its ordinary lines may block */
static unsigned long dropped;       /* lines lost since the last one written */

static enum coty_level min_level = COTY_INFO;
static int level_chosen; /* by the operator: the services file cannot override it */
static long utc_offset;
static char procname[64] = "cotylua";
static char subject_service[256];
static struct coty_log_subject self_subject;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

static void open_sink(void);

void coty_log_init(const char *name)
{
    time_t now = time(NULL);
    struct tm tm;

    tzset();
    if (localtime_r(&now, &tm))
        utc_offset = tm.tm_gmtoff;
    coty_log_set_procname(name);
}

/* Any of fds 0-2 that is closed is opened on /dev/null: otherwise fd 2
 * would be the next file opened (a signalfd, a service's data file) and
 * log lines would go into it. open() takes the lowest free fd, so the
 * gaps fill in order. */
static void open_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (got >= 0 && got != fd)
                close(got); /* not the lowest: leave things as they are */
        }
}

const char *coty_log_setup(void)
{
    static int done;
    static const char *bad;
    const char *env;
    int level;

    if (done)
        return bad;
    done = 1;
    open_std_fds();
    coty_log_init("cotylua");
    open_sink();
    env = getenv("COTYLUA_LOG_LEVEL");
    if (!env || !*env)
        return NULL;
    level = coty_log_parse_level(env);
    if (level >= 0)
        coty_log_set_level((enum coty_level)level);
    else
        bad = env;
    return bad;
}

size_t coty_log_cut_utf8(const char *s, size_t len)
{
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return len;
}

void coty_log_fit(char *out, size_t cap, const char *name, const char *suffix)
{
    size_t nlen = strlen(name), slen = strlen(suffix), room;

    if (cap <= slen + sizeof CUT_MARK) { /* no room for a name: the suffix */
        snprintf(out, cap, "%s", suffix);
        return;
    }
    room = cap - 1 - slen;
    if (nlen <= room) {
        snprintf(out, cap, "%s%s", name, suffix);
        return;
    }
    nlen = coty_log_cut_utf8(name, room - (sizeof CUT_MARK - 1));
    snprintf(out, cap, "%.*s" CUT_MARK "%s", (int)nlen, name, suffix);
}

void coty_log_set_procname(const char *name)
{
    if (name)
        snprintf(procname, sizeof procname, "%s", name);
}

void coty_log_set_level(enum coty_level level)
{
    min_level = level;
    level_chosen = 1;
}

void coty_log_set_default_level(enum coty_level level)
{
    if (!level_chosen)
        min_level = level;
}
enum coty_level coty_log_get_level(void) { return min_level; }

const char *coty_log_level_name(enum coty_level level)
{
    return level_names[level];
}

int coty_log_parse_level(const char *name)
{
    if (!name)
        return -1;
    if (!strcasecmp(name, "warn"))
        return COTY_WARNING;
    for (int i = COTY_DEBUG; i <= COTY_ERROR; i++)
        if (!strcasecmp(name, level_names[i]))
            return i;
    return -1;
}

/* Appends s to buf at *pos, never past cap-1. Signal-safe. */
static void put(char *buf, size_t cap, size_t *pos, const char *s)
{
    while (*s && *pos < cap - 1)
        buf[(*pos)++] = *s++;
}

/* Appends n, zero-padded to width digits. Signal-safe. */
static void put_num(char *buf, size_t cap, size_t *pos, long n, int width)
{
    char tmp[24];
    int len = 0;

    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && len < (int)sizeof tmp);
    while (len < width && len < (int)sizeof tmp)
        tmp[len++] = '0';
    while (len > 0 && *pos < cap - 1)
        buf[(*pos)++] = tmp[--len];
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(long days, long *y, int *m, int *d)
{
    long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Writes "YYYY-MM-DD HH:MM:SS.mmm LEVEL name[pid]: " into buf. Signal-safe. */
static size_t prefix(char *buf, size_t cap, enum coty_level level)
{
    struct timespec ts;
    size_t pos = 0;
    long y, secs;
    int m, d;

    clock_gettime(CLOCK_REALTIME, &ts);
    secs = (long)ts.tv_sec + utc_offset;
    civil(secs / 86400 - (secs % 86400 < 0), &y, &m, &d);
    secs = ((secs % 86400) + 86400) % 86400;
    put_num(buf, cap, &pos, y, 4);
    put(buf, cap, &pos, "-");
    put_num(buf, cap, &pos, m, 2);
    put(buf, cap, &pos, "-");
    put_num(buf, cap, &pos, d, 2);
    put(buf, cap, &pos, " ");
    put_num(buf, cap, &pos, secs / 3600, 2);
    put(buf, cap, &pos, ":");
    put_num(buf, cap, &pos, secs / 60 % 60, 2);
    put(buf, cap, &pos, ":");
    put_num(buf, cap, &pos, secs % 60, 2);
    put(buf, cap, &pos, ".");
    put_num(buf, cap, &pos, ts.tv_nsec / 1000000, 3);
    put(buf, cap, &pos, " ");
    put(buf, cap, &pos, level_names[level]);
    put(buf, cap, &pos, " ");
    put(buf, cap, &pos, procname);
    put(buf, cap, &pos, "[");
    put_num(buf, cap, &pos, (long)getpid(), 1);
    put(buf, cap, &pos, "]: ");
    return pos;
}

/* Chooses how lines reach fd 2 (see the top of the file). Called once at
 * start-up, after fds 0-2 are known to be open. */
static void open_sink(void)
{
    struct stat st;
    int fd;

    if (fstat(STDERR_FILENO, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        sink_kind = SINK_SOCKET;
        return;
    }
    if (!S_ISFIFO(st.st_mode) && !isatty(STDERR_FILENO))
        return;
    fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
        sink_kind = SINK_OWN;
        sink_fd = fd;
    } else {
        sink_kind = SINK_POLL;
    }
}

void coty_log_may_wait(int yes) { may_wait = yes; }

/* write(2) that cannot raise SIGPIPE: blocked during the call, and the
 * one the call raised is consumed. Signal-safe. */
static ssize_t write_nopipe(int fd, const char *p, size_t len)
{
    static const struct timespec zero;
    sigset_t pipe_set, old;
    ssize_t n;
    int saved;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_set, &old);
    n = write(fd, p, len);
    saved = errno;
    if (n < 0 && saved == EPIPE && !sigismember(&old, SIGPIPE))
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

/* One attempt to write; wait says whether it may block. Signal-safe. */
static ssize_t write_once(const char *p, size_t len, int wait)
{
    struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};

    switch (sink_kind) {
    case SINK_SOCKET:
        return send(STDERR_FILENO, p, len, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
    case SINK_OWN:
        return write_nopipe(wait ? STDERR_FILENO : sink_fd, p, len);
    case SINK_POLL:
        if (!wait && poll(&pfd, 1, 0) == 0) {
            errno = EAGAIN;
            return -1;
        }
        return write_nopipe(STDERR_FILENO, p, len);
    default:
        return write_nopipe(STDERR_FILENO, p, len);
    }
}

/* Writes the whole of buf; returns 0, or -1 when it could not be written
 * without waiting (or at all). Signal-safe. */
static int write_all(const char *p, size_t len, int wait)
{
    while (len > 0) {
        ssize_t n = write_once(p, len, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Says how many lines were lost, once the sink takes lines again. */
static int report_dropped(void)
{
    char buf[256];
    size_t pos = prefix(buf, sizeof buf, COTY_WARNING);

    put_num(buf, sizeof buf, &pos, (long)dropped, 1);
    put(buf, sizeof buf, &pos, " log line(s) dropped: stderr did not take them in time");
    buf[pos++] = '\n';
    if (write_all(buf, pos, 0) < 0)
        return -1;
    dropped = 0;
    return 0;
}

/* One line; stderr may be full or a pipe that is gone. wait: the caller
 * may block (a worker's ordinary lines). */
static void emit(char *buf, size_t len, int wait)
{
    if (!wait && dropped && report_dropped() < 0) {
        dropped++;
        return;
    }
    if (write_all(buf, len, wait) < 0 && !wait)
        dropped++;
}

void coty_log_safe(enum coty_level level, const char *msg)
{
    char buf[512];
    int saved = errno;
    size_t pos;

    if (level < min_level)
        return;
    pos = prefix(buf, sizeof buf, level);
    put(buf, sizeof buf, &pos, msg);
    buf[pos++] = '\n';
    emit(buf, pos, 0);
    errno = saved;
}

void coty_log_set_subject(const char *service, int worker_id)
{
    coty_log_fit(subject_service, sizeof subject_service, service, "");
    self_subject = (struct coty_log_subject){.service = subject_service, .worker_id = worker_id};
}

static void logv(const struct coty_log_subject *subject, enum coty_level level,
                 const char *fmt, va_list ap)
{
    char buf[LINE_MAX_LEN];
    int saved = errno;
    size_t pos;
    int n;

    if (level < min_level)
        return;
    if (coty_journal_active()) {
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(buf, sizeof buf, fmt, copy);
        va_end(copy);
        if (coty_journal_send(level, procname, subject, buf) == 0) {
            errno = saved;
            return;
        }
    }
    pos = prefix(buf, sizeof buf, level);
    n = vsnprintf(buf + pos, sizeof buf - pos - 1, fmt, ap);
    if (n > 0 && (size_t)n < sizeof buf - pos - 1) {
        pos += (size_t)n;
    } else if (n > 0) { /* cut: the last bytes say so */
        pos = sizeof buf - 1 - (sizeof CUT_MARK - 1);
        pos = coty_log_cut_utf8(buf, pos);
        memcpy(buf + pos, CUT_MARK, sizeof CUT_MARK - 1);
        pos += sizeof CUT_MARK - 1;
    }
    buf[pos++] = '\n';
    emit(buf, pos, may_wait);
    errno = saved;
}

void coty_logv(enum coty_level level, const char *fmt, va_list ap)
{
    logv(self_subject.service ? &self_subject : NULL, level, fmt, ap);
}

void coty_log(enum coty_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    coty_logv(level, fmt, ap);
    va_end(ap);
}

void coty_log_about(const struct coty_log_subject *subject, enum coty_level level,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    logv(subject, level, fmt, ap);
    va_end(ap);
}
