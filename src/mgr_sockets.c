/*
 * mgr_sockets.c - the listening sockets of services: opened when a
 * service is added (or taken from socket activation) and shared by all
 * its workers, or with reuseport one set per worker slot, opened before
 * the slot's first fork. They outlive every worker and close when the
 * manager stops.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"
#include "log.h"
#include "mgr.h"

/* Who owns the unix sockets a service binds, and their mode. */
struct owner {
    int chown, chmod;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

/* Gives a unix socket that was just bound its owner and mode (the path:
 * a socket's own fd does not carry them). Before any worker runs. */
static int set_owner(const struct listener *l, const struct owner *o, char *err,
                     size_t errlen)
{
    const char *path = ((const struct sockaddr_un *)&l->addr.sa)->sun_path;

    if (l->addr.family != AF_UNIX)
        return 0;
    if (o->chown && chown(path, o->uid, o->gid) < 0)
        return snprintf(err, errlen, "chown %s: %s", l->spec, strerror(errno)), -1;
    if (o->chmod && chmod(path, o->mode) < 0)
        return snprintf(err, errlen, "chmod %s: %s", l->spec, strerror(errno)), -1;
    return 0;
}

/* Opens (or takes over) listener i of svc; -1 with the reason in err. */
static int open_listener(struct service *svc, int i, const char *spec, const struct owner *o,
                         char *err, size_t errlen)
{
    struct listener *l = &svc->listeners[i];
    char why[160];

    if (!(l->spec = strdup(spec)))
        return snprintf(err, errlen, "out of memory"), -1;
    if (coty_sock_parse(spec, &l->addr, why, sizeof why) < 0)
        return snprintf(err, errlen, "bad listen address \"%s\": %s", spec, why), -1;
    svc->fds[i] = coty_sock_activated(spec, svc->conf.name, &l->addr);
    l->activated = svc->fds[i] >= 0;
    if (l->activated) {
        coty_info("%s: listening on %s (socket-activated fd %d)", svc->conf.name, spec,
                  svc->fds[i]);
    } else if (svc->conf.reuseport) {
        /* The workers bind their own sockets later: find a busy address now. */
        if (coty_sock_probe(&l->addr) < 0)
            return snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno)), -1;
    } else {
        svc->fds[i] = coty_sock_listen(&l->addr, 0);
        if (svc->fds[i] < 0)
            return snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno)), -1;
        l->bound = 1;
        if (set_owner(l, o, err, errlen) < 0)
            return -1;
        coty_info("%s: listening on %s", svc->conf.name, spec);
    }
    return 0;
}

int mgr_sockets_open(struct service *svc, const struct coty_service_conf *conf, char *err,
                     size_t errlen)
{
    size_t n = (size_t)conf->nlisten;
    struct owner o = {.chown = conf->listen_owner != NULL, .chmod = conf->listen_mode.set,
                      .mode = (mode_t)conf->listen_mode.value};

    if (o.chown && coty_identity_owner(conf->listen_owner, &o.uid, &o.gid, err, errlen) < 0)
        return -1;
    svc->listeners = calloc(n + 1, sizeof *svc->listeners);
    svc->fds = malloc((n + 1) * sizeof *svc->fds);
    if (!svc->listeners || !svc->fds)
        return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < conf->nlisten; i++) {
        svc->fds[i] = -1;
        svc->nlisteners = i + 1;
        if (open_listener(svc, i, conf->listen[i], &o, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int mgr_slot_sockets(struct slot *s)
{
    struct service *svc = s->svc;

    if (!svc->conf.reuseport || !svc->nlisteners)
        return 0;
    if (!s->fds) {
        if (!(s->fds = malloc((size_t)svc->nlisteners * sizeof *s->fds)))
            return -1;
        memcpy(s->fds, svc->fds, (size_t)svc->nlisteners * sizeof *s->fds);
    }
    for (int i = 0; i < svc->nlisteners; i++) {
        if (s->fds[i] >= 0)
            continue;
        s->fds[i] = coty_sock_listen(&svc->listeners[i].addr, 1);
        if (s->fds[i] < 0) {
            coty_error("cannot listen on %s for %s worker(%d): %s", svc->listeners[i].spec,
                       svc->conf.name, s->wid, strerror(errno));
            return -1;
        }
    }
    return 0;
}

const int *mgr_worker_fds(const struct slot *s)
{
    return s->fds ? s->fds : s->svc->fds;
}

static void close_unless_mine(const struct slot *mine, int fd)
{
    const int *fds = mgr_worker_fds(mine);

    if (fd < 0)
        return;
    for (int i = 0; i < mine->svc->nlisteners; i++)
        if (fds[i] == fd)
            return;
    close(fd);
}

void mgr_close_foreign_sockets(const struct slot *mine)
{
    for (int i = 0; i < M.nsvcs; i++)
        for (int l = 0; l < M.svcs[i]->nlisteners; l++)
            close_unless_mine(mine, M.svcs[i]->fds[l]);
    MGR_FOR_SLOTS (s, NULL)
        for (int l = 0; s->fds && l < s->svc->nlisteners; l++)
            close_unless_mine(mine, s->fds[l]);
}

void mgr_slot_sockets_close(struct slot *s)
{
    for (int i = 0; s->fds && i < s->svc->nlisteners; i++)
        if (s->fds[i] >= 0 && !s->svc->listeners[i].activated)
            close(s->fds[i]);
    free(s->fds);
    s->fds = NULL;
}

void mgr_sockets_close(struct service *svc, int unlink_paths)
{
    for (int i = 0; i < svc->nlisteners; i++) {
        struct listener *l = &svc->listeners[i];
        if (svc->fds[i] >= 0)
            close(svc->fds[i]);
        svc->fds[i] = -1;
        if (unlink_paths && l->bound)
            coty_sock_unlink(&l->addr);
        free(l->spec);
    }
    free(svc->listeners);
    free(svc->fds);
    svc->listeners = NULL;
    svc->fds = NULL;
    svc->nlisteners = 0;
}
