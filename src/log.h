/*
 * log.h - one log line per event, on stderr.
 *
 * Format: "2026-12-01 11:40:02.123 INFO  master[1234]: message".
 * Local time, with the UTC offset read once at start-up (and again by
 * coty_log_init), so formatting a line needs no lock or allocation and
 * coty_log_safe() may be called from a signal handler.
 * When stderr is the systemd journal, lines go there as structured
 * entries instead (journal.c).
 * It is not a general logging framework: no files, no rotation.
 */
#ifndef COTY_LOG_H
#define COTY_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum coty_level { COTY_DEBUG, COTY_INFO, COTY_WARNING, COTY_ERROR };

/* Whom a line is about, for the journal's fields (service NULL: none). */
struct coty_log_subject {
    const char *service;
    int worker_id;
    int pid;                    /* 0: this process */
    int exit_code;
    int has_exit_code;
};

/* Once per process, first thing: opens a closed fd 0, 1 or 2 on
 * /dev/null, chooses how lines reach stderr, then coty_log_init("cotylua")
 * and the level from COTYLUA_LOG_LEVEL. Later calls do nothing. Returns
 * the value of COTYLUA_LOG_LEVEL when it names no level (the caller
 * refuses it, as it refuses a bad --log-level), else NULL. */
const char *coty_log_setup(void);
/* The accepted level names, for messages. */
#define COTY_LEVEL_NAMES "debug, info, warning (or warn) or error, in any case"
/* Reads the UTC offset and sets the process name shown in each line. */
void coty_log_init(const char *procname);
void coty_log_set_procname(const char *procname);
/* The operator's choice (--log-level, COTYLUA_LOG_LEVEL): it stands. */
void coty_log_set_level(enum coty_level level);
/* The services file's choice: taken unless the operator made one. */
void coty_log_set_default_level(enum coty_level level);
enum coty_level coty_log_get_level(void);
/* Parses "debug", "info", "warning" (or "warn"), "error"; -1 when unknown. */
int coty_log_parse_level(const char *name);
const char *coty_log_level_name(enum coty_level level);

void coty_log(enum coty_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void coty_logv(enum coty_level level, const char *fmt, va_list ap);
/* A line about a worker other than this process (the manager's deaths). */
void coty_log_about(const struct coty_log_subject *subject, enum coty_level level,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* This process is a worker: its lines name its service and worker id. */
void coty_log_set_subject(const char *service, int worker_id);
/* Whether this process's ordinary lines may wait for stderr (a worker)
 * or are dropped and counted when it is full (the manager, the default). */
void coty_log_may_wait(int yes);
/* The length to keep of s cut at len, so that no UTF-8 character is split
 * (s[len] must be readable). */
size_t coty_log_cut_utf8(const char *s, size_t len);
/* name followed by suffix in out; when both do not fit, the name is cut
 * and ends with an ellipsis, the suffix is kept whole. */
void coty_log_fit(char *out, size_t cap, const char *name, const char *suffix);
/* Async-signal-safe: a fixed message, formatted with write(2) only. */
void coty_log_safe(enum coty_level level, const char *msg);

#define coty_debug(...) coty_log(COTY_DEBUG, __VA_ARGS__)
#define coty_info(...) coty_log(COTY_INFO, __VA_ARGS__)
#define coty_warning(...) coty_log(COTY_WARNING, __VA_ARGS__)
#define coty_error(...) coty_log(COTY_ERROR, __VA_ARGS__)

#endif
