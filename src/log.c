/*
 * log.c - log lines on stderr; see log.h for the format.
 *
 * Every line is built in a stack buffer and written with one write(2), so
 * lines from the manager and its workers never interleave mid-line. The
 * time stamp is computed by hand from CLOCK_REALTIME and a cached UTC
 * offset: no localtime_r (which may lock) on the way, which is what lets
 * coty_log_safe() run inside a signal handler.
 */
#define _GNU_SOURCE
#include "log.h"
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096

static enum coty_level min_level = COTY_INFO;
static int level_chosen; /* by the operator: the services file cannot override it */
static long utc_offset;
static char procname[64] = "cotylua";
static char subject_service[64];
static struct coty_log_subject self_subject;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void coty_log_init(const char *name)
{
    time_t now = time(NULL);
    struct tm tm;

    tzset();
    if (localtime_r(&now, &tm))
        utc_offset = tm.tm_gmtoff;
    coty_log_set_procname(name);
}

void coty_log_setup(void)
{
    static int done;
    int level;

    if (done)
        return;
    done = 1;
    coty_log_init("cotylua");
    level = coty_log_parse_level(getenv("COTYLUA_LOG_LEVEL"));
    if (level >= 0)
        coty_log_set_level((enum coty_level)level);
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

/* One write of the whole line; stderr may be a pipe that is gone. */
static void emit(char *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
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
    emit(buf, pos);
    errno = saved;
}

void coty_log_set_subject(const char *service, int worker_id)
{
    snprintf(subject_service, sizeof subject_service, "%s", service);
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
    if (n > 0)
        pos += (size_t)n < sizeof buf - pos - 1 ? (size_t)n : sizeof buf - pos - 2;
    buf[pos++] = '\n';
    emit(buf, pos);
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
