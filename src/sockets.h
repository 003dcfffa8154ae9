/*
 * sockets.h - listening sockets for services: parse "tcp://host:port",
 * "tcp6://[host]:port" and "unix:/path", bind them, or take them from
 * systemd's socket activation (LISTEN_FDS, LISTEN_FDNAMES).
 *
 * The manager opens them once, before forking, and keeps them until it
 * stops, so a worker being replaced never makes a connection fail.
 */
#ifndef COTY_SOCKETS_H
#define COTY_SOCKETS_H

#include <sys/socket.h>
#include <sys/un.h>

struct coty_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    int family;
};

/* Parses spec (tcp://HOST:PORT, tcp6://[HOST]:PORT, unix:/PATH, unix:@NAME
 * for an abstract socket); 0, or -1 with a reason in err. */
int coty_sock_parse(const char *spec, struct coty_addr *a, char *err, size_t errlen);
/* True for an abstract unix socket: no file to unlink or take over. */
int coty_sock_is_abstract(const struct coty_addr *a);

/* A new listening socket bound to a (with SO_REUSEPORT when reuseport),
 * close-on-exec and non-blocking. The fd, or -1 with errno. */
int coty_sock_listen(const struct coty_addr *a, int reuseport);

/* Binds a throw-away socket to a (no SO_REUSEPORT, no listen), to report
 * an address in use before any worker needs it. 0, or -1 with errno. */
int coty_sock_probe(const struct coty_addr *a);

/* Sets O_NONBLOCK on fd (the flag belongs to the open file, so every
 * process holding it sees it). 0, or -1 with errno. */
int coty_sock_nonblock(int fd);

/* The activated socket listening on a, or else named `spec` or `name`; -1
 * when none; made non-blocking. Each activated socket is handed out once. */
int coty_sock_activated(const char *spec, const char *name, const struct coty_addr *a);
/* Closes the activated sockets that no service took (logs each). */
void coty_sock_close_unused(void);

/* Removes the socket file of a unix address (at stop). */
void coty_sock_unlink(const struct coty_addr *a);

#endif
