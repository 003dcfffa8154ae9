/*
 * ctl_proto.c - the control protocol's pure parts; see ctl_proto.h.
 *
 * Every function takes lengths, never trusts a NUL in client bytes, and
 * writes within the bounds it is given: test/fuzz/fuzz_ctl.c feeds it
 * arbitrary bytes under ASan and UBSan.
 */
#define _GNU_SOURCE
#include "ctl_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"

size_t coty_ctl_line(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);

    return nl ? (size_t)(nl - buf) + 1 : 0;
}

/* ---- requests ------------------------------------------------------- */

static const struct {
    const char *word;
    enum coty_ctl_verb verb;
    int args;           /* 0: none; 1: NAME; 2: NAME N; -1: optional "json" */
} verbs[] = {
    {"status", CTL_STATUS, -1},  {"metrics", CTL_METRICS, 0}, {"reload", CTL_RELOAD, 0},
    {"stop", CTL_STOP, 0},       {"scale", CTL_SCALE, 2},     {"restart", CTL_RESTART, 1},
    {"check", CTL_CHECK, 0},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static int refuse(struct coty_ctl_req *req, const char *why)
{
    req->error = why;
    return -1;
}

/* A worker count: 1 .. COTY_WORKERS_MAX in decimal digits. */
static int parse_count(const char *s, size_t len, int *n)
{
    long v = 0;

    if (len == 0 || len > 7)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > COTY_WORKERS_MAX)
        return -1;
    *n = (int)v;
    return 0;
}

static int take_name(struct coty_ctl_req *req, const char *s, size_t len)
{
    if (len == 0)
        return refuse(req, "a service name is missing");
    if (len > COTY_CTL_NAME_MAX)
        return refuse(req, "the service name is too long");
    memcpy(req->name, s, len);
    req->name[len] = '\0';
    return 0;
}

/* The arguments after the verb: rest[0..len), without the space after it. */
static int parse_args(struct coty_ctl_req *req, int kind, const char *rest, size_t len)
{
    const char *sp;

    if (kind == 0)
        return len ? refuse(req, "this request takes no argument") : 0;
    if (kind == -1) {
        if (len == 4 && !memcmp(rest, "json", 4))
            req->verb = CTL_STATUS_JSON;
        else if (len)
            return refuse(req, "status takes no argument but json");
        return 0;
    }
    if (kind == 1)
        return take_name(req, rest, len);
    sp = len ? memrchr(rest, ' ', len) : NULL;
    if (!sp)
        return refuse(req, "usage: scale NAME N");
    if (parse_count(sp + 1, len - (size_t)(sp + 1 - rest), &req->n) < 0)
        return refuse(req, "the worker count must be an integer from 1 to 1000000");
    return take_name(req, rest, (size_t)(sp - rest));
}

int coty_ctl_parse(const char *line, size_t len, struct coty_ctl_req *req)
{
    size_t vlen;

    memset(req, 0, sizeof *req);
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return refuse(req, "empty request");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return refuse(req, "a request is printable ASCII");
    for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
        ;
    for (size_t i = 0; i < NVERBS; i++) {
        if (strlen(verbs[i].word) != vlen || memcmp(verbs[i].word, line, vlen))
            continue;
        req->verb = verbs[i].verb;
        if (vlen < len)
            vlen++; /* the space */
        return parse_args(req, verbs[i].args, line + vlen, len - vlen);
    }
    return refuse(req, "unknown request (status, metrics, reload, stop, scale, restart, check)");
}

/* ---- the output buffer ----------------------------------------------- */

void coty_buf_init(struct coty_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void coty_buf_free(struct coty_buf *b)
{
    free(b->p);
    coty_buf_init(b, b->max);
}

static int reserve(struct coty_buf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    if (b->failed || n > b->max - b->len) {
        b->failed = 1;
        return -1;
    }
    if (b->len + n + 1 <= b->cap)
        return 0;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (!(p = realloc(b->p, cap))) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void coty_buf_add(struct coty_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void coty_buf_printf(struct coty_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        coty_buf_add(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void coty_buf_json(struct coty_buf *b, const char *s)
{
    coty_buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            coty_buf_add(b, esc, 2);
        } else if (c == '\n') {
            coty_buf_add(b, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            coty_buf_printf(b, "\\u%04x", c);
        } else {
            coty_buf_add(b, s, 1);
        }
    }
    coty_buf_add(b, "\"", 1);
}

void coty_buf_consume(struct coty_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = '\0';
}

/* ---- reading a reply ---------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One escape after a backslash at s; the byte it stands for, or -1 (only
 * \uXXXX below 0x80 is written by the manager; others become '?'). */
static int unescape(const char **s)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *p = *s, *at = **s ? strchr(from, **s) : NULL;
    int v = 0;

    if (at) {
        *s = p + 1;
        return to[at - from];
    }
    if (*p != 'u')
        return -1;
    for (int i = 1; i <= 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    *s = p + 5;
    return v > 0 && v < 0x80 ? v : '?';
}

int coty_json_string(const char *reply, const char *key, char *out, size_t cap)
{
    char pat[64];
    const char *s;
    size_t n = 0;

    if (cap == 0 || (size_t)snprintf(pat, sizeof pat, "\"%s\":\"", key) >= sizeof pat)
        return -1;
    if (!(s = strstr(reply, pat)))
        return -1;
    for (s += strlen(pat); *s && *s != '"'; ) {
        int c = (unsigned char)*s++;
        if (c == '\\' && (c = unescape(&s)) < 0)
            return -1;
        if (n + 1 < cap)
            out[n++] = (char)c;
    }
    out[n] = '\0';
    return *s == '"' ? 0 : -1;
}
