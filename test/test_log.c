/*
 * test_log.c - log lines: the hand-made local time stamp against
 * strftime, levels, truncation, and the signal-safe path.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

/* Runs fn with stderr sent to a pipe; returns what it wrote. */
static char *capture(void (*fn)(void))
{
    static char buf[8192];
    int p[2], saved = dup(STDERR_FILENO);
    ssize_t n;

    if (pipe(p) < 0)
        return NULL;
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void write_info(void) { coty_log(COTY_INFO, "hello %d", 42); }
static void write_debug(void) { coty_log(COTY_DEBUG, "hidden"); }
static void write_safe(void) { coty_log_safe(COTY_ERROR, "from a handler"); }
static void write_long(void)
{
    static char big[6000];
    memset(big, 'x', sizeof big - 1);
    coty_log(COTY_WARNING, "%s", big);
}

/* True when out starts with t's local time to the minute, as strftime says. */
static int same_minute(const char *out, time_t t)
{
    char stamp[32];
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M", &tm);
    return strncmp(out, stamp, strlen(stamp)) == 0;
}

static void line_format(void)
{
    char expect[128];
    time_t before = time(NULL);
    char *out = capture(write_info);
    time_t after = time(NULL);

    /* the hand-made stamp agrees with strftime (a minute may turn meanwhile) */
    CHECK(same_minute(out, before) || same_minute(out, after));
    CHECK(out[16] == ':' && out[19] == '.' && out[23] == ' ');
    snprintf(expect, sizeof expect, " INFO tester[%d]: hello 42\n", (int)getpid());
    CHECK(strstr(out, expect) != NULL);
    CHECK(strlen(out) == 23 + strlen(expect));
}

static void levels(void)
{
    CHECK(coty_log_parse_level("debug") == COTY_DEBUG);
    CHECK(coty_log_parse_level("WARN") == COTY_WARNING);
    CHECK(coty_log_parse_level("error") == COTY_ERROR);
    CHECK(coty_log_parse_level("loud") == -1);
    CHECK(coty_log_parse_level(NULL) == -1);
    CHECK(strcmp(capture(write_debug), "") == 0);
    coty_log_set_default_level(COTY_DEBUG); /* the operator chose info: stays */
    CHECK(coty_log_get_level() == COTY_INFO);
}

static void safe_and_long(void)
{
    char *out = capture(write_safe);

    CHECK(strstr(out, " ERROR tester[") != NULL);
    CHECK(strstr(out, "]: from a handler\n") != NULL);
    out = capture(write_long);
    CHECK(strlen(out) <= 4096 && out[strlen(out) - 1] == '\n');
    CHECK(strstr(out, "xxxx") != NULL);
    /* a cut line says so: it ends with an ellipsis */
    CHECK(strlen(out) == 4096 && strcmp(out + 4092, "\xe2\x80\xa6\n") == 0);
}

static void fit(void)
{
    char out[32];
#define E "\xc3\xa9" /* é, two bytes */
    const char *cafe = "caf" E "caf" E "caf" E "caf" E "caf" E;

    coty_log_fit(out, sizeof out, "web", " worker(3)");
    CHECK(strcmp(out, "web worker(3)") == 0);
    coty_log_fit(out, sizeof out, "a-very-long-service-name-indeed", " worker(3)");
    CHECK(strcmp(out, "a-very-long-servic" "\xe2\x80\xa6" " worker(3)") == 0);
    /* no UTF-8 character is split */
    coty_log_fit(out, sizeof out, cafe, " worker(12345)"); /* 14 bytes for the name: é's 2nd */
    CHECK(strcmp(out, "caf" E "caf" E "caf" "\xe2\x80\xa6" " worker(12345)") == 0);
#undef E
}

int main(void)
{
    coty_log_init("tester");
    coty_log_set_level(COTY_INFO);
    line_format();
    levels();
    safe_and_long();
    fit();
    return unit_done("test_log");
}
