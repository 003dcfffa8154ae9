/*
 * ctl_proto.h - the control protocol, as pure functions: splitting a
 * client's bytes into request lines, parsing a request, building a JSON
 * reply in a bounded buffer, and reading a string field back out of one.
 *
 * A request is one line of printable ASCII, "VERB [ARGS]" ending in "\n"
 * (a "\r" before it is ignored), at most COTY_CTL_LINE_MAX bytes. A reply
 * is one line holding one JSON object: {"ok":true,...} or
 * {"ok":false,"error":"..."}. Nothing here does I/O or knows the manager,
 * so that the parser can be unit-tested and fuzzed alone.
 */
#ifndef COTY_CTL_PROTO_H
#define COTY_CTL_PROTO_H

#include <stdarg.h>
#include <stddef.h>

#define COTY_CTL_LINE_MAX 1024       /* a request line, "\n" included */
#define COTY_CTL_NAME_MAX 255        /* a service name in a request */

enum coty_ctl_verb {
    CTL_STATUS, CTL_STATUS_JSON, CTL_METRICS, CTL_RELOAD, CTL_STOP, CTL_SCALE,
    CTL_RESTART, CTL_CHECK
};

struct coty_ctl_req {
    enum coty_ctl_verb verb;
    char name[COTY_CTL_NAME_MAX + 1]; /* scale, restart */
    int n;                            /* scale */
    const char *error;                /* why the line was refused */
};

/* The length of the first line in buf[0..len), "\n" included; 0 when no
 * "\n" came yet. */
size_t coty_ctl_line(const char *buf, size_t len);

/* Parses one line (its "\n" and a "\r" before it may be included). 0, or
 * -1 with req->error set to a static message. */
int coty_ctl_parse(const char *line, size_t len, struct coty_ctl_req *req);

/* A growing output buffer that gives up past `max` bytes: once `failed`,
 * further writes do nothing. */
struct coty_buf {
    char *p;
    size_t len, cap, max;
    int failed;
};

void coty_buf_init(struct coty_buf *b, size_t max);
void coty_buf_free(struct coty_buf *b);
void coty_buf_add(struct coty_buf *b, const char *s, size_t n);
void coty_buf_printf(struct coty_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as a JSON string, quotes included. */
void coty_buf_json(struct coty_buf *b, const char *s);
/* Drops the first n bytes (written out). */
void coty_buf_consume(struct coty_buf *b, size_t n);

/* The string value of the first "key":"..." in the JSON text `reply`,
 * unescaped into out (cap bytes, NUL-terminated; longer values are cut).
 * -1 when there is none. */
int coty_json_string(const char *reply, const char *key, char *out, size_t cap);

#endif
