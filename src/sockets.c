/*
 * sockets.c - listening sockets; see sockets.h.
 *
 * A unix socket path left behind by a manager that died is taken over:
 * when bind() finds the path in use but nobody accepts connections on it,
 * the stale file is removed and bind() tried once more.
 *
 * Every listening socket a service gets is non-blocking, as nginx makes
 * its own: workers share it, all of them wake when a client connects, and
 * the ones that lose the race must get EAGAIN from accept(), not block.
 */
#define _GNU_SOURCE
#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "sdlib.h"

#include "log.h"

#define BACKLOG 511

static int nactivated = -1;  /* -1 until LISTEN_FDS was read */
static char **names;
static int *taken;

/* Digits only: strtol alone would take " 80" and "+80". */
static int parse_port(const char *s, char *err, size_t errlen)
{
    long port = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9' && port <= 65535)
        port = port * 10 + (*p++ - '0');
    if (p == s || *p || port < 1 || port > 65535) {
        snprintf(err, errlen, "bad port \"%s\" (digits only, 1 to 65535)", s);
        return -1;
    }
    return (int)port;
}

static int parse_tcp(const char *hostport, int family, struct coty_addr *a, char *err,
                     size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    size_t hlen;
    int port;

    if (!colon) {
        snprintf(err, errlen, "no port in \"%s\"", hostport);
        return -1;
    }
    hlen = (size_t)(colon - hostport);
    if (family == AF_INET6 && hlen >= 2 && hostport[0] == '[' && hostport[hlen - 1] == ']') {
        hostport++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "bad host in \"%s\"", hostport);
        return -1;
    }
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    if ((port = parse_port(colon + 1, err, errlen)) < 0)
        return -1;
    memset(a, 0, sizeof *a);
    a->family = family;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (!strcmp(host, "*"))
            in->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            goto bad_host;
        a->len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (!strcmp(host, "*"))
            in6->sin6_addr = in6addr_any;
        else if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            goto bad_host;
        a->len = sizeof *in6;
    }
    return 0;
bad_host:
    snprintf(err, errlen, "\"%s\" is not a numeric IPv%d address (or *)", host,
             family == AF_INET ? 4 : 6);
    return -1;
}

/* unix:/PATH, or unix:@NAME for an abstract socket (no file: sun_path
 * starts with a NUL, the length says where the name ends). */
static int parse_unix(const char *path, struct coty_addr *a, char *err, size_t errlen)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
    int abstract = path[0] == '@';
    size_t len = strlen(path);

    if (len <= (size_t)abstract || len >= sizeof un->sun_path) {
        snprintf(err, errlen, "bad unix socket %s (1 to %zu bytes)",
                 abstract ? "name after @" : "path", sizeof un->sun_path - 1 - abstract);
        return -1;
    }
    memset(a, 0, sizeof *a);
    a->family = un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len);
    if (abstract)
        un->sun_path[0] = '\0';
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + !abstract);
    return 0;
}

int coty_sock_is_abstract(const struct coty_addr *a)
{
    return a->family == AF_UNIX && ((const struct sockaddr_un *)&a->sa)->sun_path[0] == '\0';
}

int coty_sock_parse(const char *spec, struct coty_addr *a, char *err, size_t errlen)
{
    if (!strncmp(spec, "tcp://", 6))
        return parse_tcp(spec + 6, AF_INET, a, err, errlen);
    if (!strncmp(spec, "tcp6://", 7))
        return parse_tcp(spec + 7, AF_INET6, a, err, errlen);
    if (!strncmp(spec, "unix:", 5))
        return parse_unix(spec + 5, a, err, errlen);
    snprintf(err, errlen, "expected tcp://HOST:PORT, tcp6://[HOST]:PORT or unix:/PATH");
    return -1;
}

/* True when a unix socket file exists at a's path but nobody listens. */
static int stale_unix(const struct coty_addr *a)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->sa;
    struct stat st;
    int fd, stale;

    if (a->family != AF_UNIX || coty_sock_is_abstract(a) || stat(un->sun_path, &st) < 0 ||
        !S_ISSOCK(st.st_mode))
        return 0;
    /* Non-blocking: a listener with a full backlog answers EAGAIN at once
     * (someone is there) instead of making the manager wait. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    stale = connect(fd, (const struct sockaddr *)&a->sa, a->len) < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int try_bind(int fd, const struct coty_addr *a)
{
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        return 0;
    if (errno != EADDRINUSE || !stale_unix(a))
        return -1;
    unlink(((const struct sockaddr_un *)&a->sa)->sun_path);
    return bind(fd, (const struct sockaddr *)&a->sa, a->len);
}

int coty_sock_listen(const struct coty_addr *a, int reuseport)
{
    int one = 1, saved;
    int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    if (a->family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (a->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (try_bind(fd, a) < 0 || listen(fd, BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int coty_sock_probe(const struct coty_addr *a)
{
    int one = 1, saved, r;
    int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    r = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (r == 0 && a->family == AF_INET6)
        r = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (r == 0)
        r = bind(fd, (const struct sockaddr *)&a->sa, a->len);
    saved = errno;
    close(fd);
    errno = saved;
    return r;
}

int coty_sock_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || (flags & O_NONBLOCK))
        return flags < 0 ? -1 : 0;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void read_activation(void)
{
    int n = getenv("LISTEN_FDS") ? coty_sd_listen_fds_with_names(1, &names) : 0;

    nactivated = n > 0 ? n : 0;
    taken = nactivated ? calloc((size_t)nactivated, sizeof *taken) : NULL;
    if (nactivated && !taken)
        nactivated = 0;
    for (int i = 0; i < nactivated; i++)
        fcntl(SD_LISTEN_FDS_START + i, F_SETFD, FD_CLOEXEC);
}

static int same_address(int i, const struct coty_addr *a)
{
    int fd = SD_LISTEN_FDS_START + i;

    if (a->family == AF_UNIX) /* length 0: a NUL-terminated path */
        return coty_sd_is_socket_unix(fd, SOCK_STREAM, 1,
                                      ((const struct sockaddr_un *)&a->sa)->sun_path,
                                      coty_sock_is_abstract(a)
                                          ? a->len - offsetof(struct sockaddr_un, sun_path)
                                          : 0) > 0;
    return coty_sd_is_socket_sockaddr(fd, SOCK_STREAM, (const struct sockaddr *)&a->sa,
                                      a->len, 1) > 0;
}

static int same_name(int i, const char *spec, const char *name)
{
    const char *fdname = names ? names[i] : NULL;

    return fdname && (!strcmp(fdname, spec) || !strcmp(fdname, name));
}

/* An activated socket on the entry's own address wins over one that is
 * only named after it, so that entries keep their order. */
int coty_sock_activated(const char *spec, const char *name, const struct coty_addr *a)
{
    if (nactivated < 0)
        read_activation();
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nactivated; i++)
            if (!taken[i] && (pass == 0 ? same_address(i, a) : same_name(i, spec, name))) {
                taken[i] = 1;
                coty_sock_nonblock(SD_LISTEN_FDS_START + i);
                return SD_LISTEN_FDS_START + i;
            }
    return -1;
}

void coty_sock_close_unused(void)
{
    if (nactivated < 0)
        read_activation();
    for (int i = 0; i < nactivated; i++)
        if (!taken[i]) {
            coty_warning("socket-activated fd %d (%s) matches no listen entry; closing it",
                         SD_LISTEN_FDS_START + i, names ? names[i] : "unnamed");
            close(SD_LISTEN_FDS_START + i);
            taken[i] = 1;
        }
}

void coty_sock_unlink(const struct coty_addr *a)
{
    if (a->family == AF_UNIX && !coty_sock_is_abstract(a))
        unlink(((const struct sockaddr_un *)&a->sa)->sun_path);
}
