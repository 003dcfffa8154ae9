/*
 * journal.h - structured log entries when stderr is the systemd journal.
 *
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * connected to stdout/stderr; when they match our stderr, log lines go
 * to journald's socket as entries with PRIORITY and fields naming the
 * service, worker id, pid and exit code, instead of plain text. A send
 * never waits: an entry journald cannot take at once is -1 (the caller
 * writes the line to stderr instead).
 */
#ifndef COTY_JOURNAL_H
#define COTY_JOURNAL_H

struct coty_log_subject;

/* True when JOURNAL_STREAM names our stderr (checked once). */
int coty_journal_active(void);
/* One entry; 0, or -1 when the journal did not take it. */
int coty_journal_send(int level, const char *procname, const struct coty_log_subject *s,
                      const char *msg);

#endif
