/*
 * ctl.c - `cotylua ctl`: sends one request line to a manager's control
 * socket and prints its reply; see ctl.h. The manager's side is
 * control.c; the protocol is ctl_proto.h.
 *
 * Exit statuses: 0 done (for check: every worker is ready), 1 the manager
 * refused or is not ready or cannot be reached, 2 a usage error.
 */
#define _GNU_SOURCE
#include "ctl.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "manager.h"

#define REPLY_TIMEOUT_MS 10000
#define REPLY_MAX (64u << 20)
#define EXIT_FAILED 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: cotylua ctl [--control PATH | FILE] VERB\n"
    "\n"
    "Talks to the running manager of the services file FILE (or the one\n"
    "listening on the control socket PATH). VERB is one of:\n"
    "  status [--json]  every service and worker: pid, state, uptime, restarts, last exit\n"
    "  check            exit 0 when every worker is ready, else 1 (a readiness probe)\n"
    "  metrics          the counters, in the Prometheus text format\n"
    "  reload           as SIGHUP\n"
    "  stop             as SIGTERM\n"
    "  scale NAME N     run N workers of service NAME\n"
    "  restart NAME     restart the workers of NAME one at a time\n";

/* ---- where the socket is --------------------------------------------- */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The directory for control sockets; NULL when there is none. */
static const char *runtime_dir(char *buf, size_t cap)
{
    const char *d = getenv("RUNTIME_DIRECTORY");

    if (d && *d) {
        size_t n = strcspn(d, ":"); /* several directories: the first */
        snprintf(buf, cap, "%.*s", (int)n, d);
        return buf;
    }
    if (geteuid() == 0)
        return "/run/cotylua";
    d = getenv("XDG_RUNTIME_DIR");
    return d && *d ? d : NULL;
}

int coty_ctl_default_path(const char *file, char *out, size_t cap, char *err, size_t errlen)
{
    char real[PATH_MAX], dirbuf[PATH_MAX], stem[64];
    const char *dir = runtime_dir(dirbuf, sizeof dirbuf);
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    size_t n = strlen(base);

    if (!dir) {
        snprintf(err, errlen, "no runtime directory (set XDG_RUNTIME_DIR, or give a path)");
        return -1;
    }
    if (n > 4 && !strcmp(base + n - 4, ".lua"))
        n -= 4;
    snprintf(stem, sizeof stem, "%.*s", (int)(n < 40 ? n : 40), base);
    if (!realpath(file, real))
        snprintf(real, sizeof real, "%s", file);
    if ((size_t)snprintf(out, cap, "%s/%s-%08x.sock", dir, stem, fnv1a(real)) >= cap ||
        strlen(out) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        snprintf(err, errlen, "the control socket path in %s is too long", dir);
        return -1;
    }
    return 0;
}

/* ---- the request ------------------------------------------------------ */

static int usage(const char *msg, const char *arg)
{
    fprintf(stderr, "cotylua ctl: %s%s\n%s", msg, arg ? arg : "", usage_text);
    return EXIT_USAGE;
}

/* The request line for argv (VERB ARGS...): "status --json" is
 * "status json"; words are joined by one space. -1 when too long. */
static int request_line(int argc, char **argv, char *out, size_t cap)
{
    size_t pos = 0;

    for (int i = 0; i < argc; i++) {
        const char *w = !strcmp(argv[i], "--json") ? "json" : argv[i];
        int n = snprintf(out + pos, cap - pos, "%s%s", i ? " " : "", w);
        if (n < 0 || (size_t)n >= cap - pos)
            return -1;
        pos += (size_t)n;
    }
    if (pos + 2 > cap)
        return -1;
    memcpy(out + pos, "\n", 2);
    return 0;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof sun.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Writes the request, reads one reply line into b. 0, or -1 with errno. */
static int exchange(int fd, const char *req, struct coty_buf *b)
{
    size_t len = strlen(req), off = 0;
    char chunk[65536];

    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR)
            break; /* closed by the manager: its reply may say why */
        off += n > 0 ? (size_t)n : 0;
    }
    while (!b->len || b->p[b->len - 1] != '\n') {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int r = poll(&p, 1, REPLY_TIMEOUT_MS);
        if (r == 0)
            return errno = ETIMEDOUT, -1;
        if (r < 0 && errno == EINTR)
            continue;
        n = r < 0 ? -1 : read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? (errno = ECONNRESET, -1) : -1;
        coty_buf_add(b, chunk, (size_t)n);
        if (b->failed)
            return errno = EMSGSIZE, -1;
    }
    return 0;
}

/* Prints the reply: its text (or error), or the JSON itself. */
static int show(const struct coty_buf *b, int json, int is_check)
{
    char *text = malloc(b->len + 1);
    int ok = strncmp(b->p, "{\"ok\":true", 10) == 0, status;

    if (!text)
        return EXIT_FAILED;
    if (json) {
        fputs(b->p, stdout);
    } else if (!ok) {
        if (coty_json_string(b->p, "error", text, b->len + 1) < 0)
            snprintf(text, b->len + 1, "%s", "a reply that cannot be read");
        fprintf(stderr, "cotylua ctl: %s\n", text);
    } else if (coty_json_string(b->p, "text", text, b->len + 1) == 0) {
        size_t n = strlen(text);
        fputs(text, stdout);
        if (n && text[n - 1] != '\n')
            fputc('\n', stdout);
    }
    free(text);
    status = ok ? 0 : EXIT_FAILED;
    if (ok && is_check && !strstr(b->p, "\"ready\":true"))
        status = EXIT_FAILED;
    return status;
}

static int run(const char *path, int argc, char **argv)
{
    char req[COTY_CTL_LINE_MAX + 1];
    struct coty_buf reply;
    int fd, status, json = 0;

    for (int i = 0; i < argc; i++)
        json |= !strcmp(argv[i], "--json");
    if (request_line(argc, argv, req, sizeof req) < 0)
        return usage("request too long", NULL);
    if ((fd = connect_to(path)) < 0) {
        fprintf(stderr, "cotylua ctl: cannot connect to %s: %s\n", path, strerror(errno));
        return EXIT_FAILED;
    }
    coty_buf_init(&reply, REPLY_MAX);
    if (exchange(fd, req, &reply) < 0) {
        fprintf(stderr, "cotylua ctl: no reply from %s: %s\n", path, strerror(errno));
        status = EXIT_FAILED;
    } else {
        status = show(&reply, json, !strcmp(argv[0], "check"));
    }
    close(fd);
    coty_buf_free(&reply);
    return status;
}

int coty_ctl_main(int argc, char **argv)
{
    char path[PATH_MAX], err[160];
    int i = 1;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "--control")) {
        snprintf(path, sizeof path, "%s", argv[2]);
        i = 3;
    } else if (argc > 1) {
        if (coty_ctl_default_path(argv[1], path, sizeof path, err, sizeof err) < 0) {
            fprintf(stderr, "cotylua ctl: %s\n", err);
            return EXIT_FAILED;
        }
        i = 2;
    } else {
        return usage("no FILE or --control PATH given", NULL);
    }
    if (i >= argc)
        return usage("no request given", NULL);
    return run(path, argc - i, argv + i);
}
