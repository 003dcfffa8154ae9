/*
 * mgr.h - the manager's private state, shared by the files of the manager:
 * mgr_run.c (the state and its transitions, the run loop), manager.c
 * (services and slots), mgr_sockets.c (their listening sockets) and
 * readiness.c (when to tell systemd what). Nothing else includes this
 * file: the rest of the program sees manager.h.
 */
#ifndef COTY_MGR_H
#define COTY_MGR_H

#include <signal.h>
#include <sys/types.h>

#include "loop.h"
#include "manager.h"
#include "restart.h"
#include "sockets.h"

/* "1 worker", "2 workers" */
#define PLURAL(n) (n), ((n) == 1 ? "" : "s")

enum state { M_NONE, M_READY, M_RUNNING, M_STOPPING, M_KILLING, M_DONE };

struct service;

struct slot {
    struct service *svc;
    int wid;
    pid_t pid;                  /* 0 when no worker runs in this slot */
    double started;
    int stopping;               /* the manager asked this worker to stop */
    int restarting;             /* SIGHUP without reload(): it stops to restart */
    int ready;                  /* the worker reported that init is done */
    int in_pids;                /* entered in M.pids under its pid */
    struct coty_restart throttle;
    struct coty_timer respawn;  /* armed while the slot waits to restart */
    struct coty_timer kill;     /* armed while a stop waits for the exit */
    int *fds;                   /* reuseport: this slot's own sockets */
};

struct listener {
    char *spec;                 /* as the user wrote it */
    struct coty_addr addr;
    int activated;              /* handed over by systemd */
    int bound;                  /* bound here: a unix path to remove at the end */
};

struct service {
    int id;
    struct coty_service_conf conf;
    struct slot **slots;        /* by worker id; NULL entries are free */
    int nslots;
    struct listener *listeners;
    int *fds;                   /* by listener, shared by the workers; -1 with reuseport */
    int nlisteners;
};

struct coty_mgr {
    enum state state;
    struct coty_mgr_conf conf;
    struct service **svcs;
    int nsvcs;
    struct coty_loop *loop;
    int sigfd;
    sigset_t oldmask;
    sigset_t caught;            /* dispositions a worker resets (not SIG_DFL) */
    struct sigaction oldpipe, oldchld;
    const struct coty_mgr_ops *ops;
    void *ud;
    int live;                   /* forked and not yet reaped */
    int reap_all;               /* PID 1 or a subreaper: every child is ours */
    int nready;                 /* slots whose worker reported ready */
    int pending;                /* something changed: mgr_reconcile() has work */
    int more;                   /* a batch of forks goes on at the next turn */
    struct slot **pids;         /* live workers by pid (manager.c) */
    size_t npids;               /* its size: a power of two, or 0 */
    int status;                 /* what run() returns */
    int shutdown_asked;
    struct coty_timer stop_timer;
    int ready_fd[2];            /* workers send their pid once ready */
    int ready_sent, reloading;  /* READY=1 sent; a reload awaits READY=1 */
    double stop_deadline;       /* when the graceful stop gives up */
    pid_t pid;                  /* the manager's, for its children to check */
    struct coty_timer watchdog, extend;
};

extern struct coty_mgr M;

/* manager.c: services and slots */
void mgr_services_free(void);
/* The slot after prev (NULL: the first) in service order, then worker id
 * order; only svc's slots unless svc is NULL. Every walk over slots goes
 * through it. */
struct slot *mgr_slot_next(const struct service *svc, const struct slot *prev);
#define MGR_FOR_SLOTS(s, svc) \
    for (struct slot *s = mgr_slot_next(svc, NULL); s; s = mgr_slot_next(svc, s))
/* Calls fn on every slot; fn may free the slot it is given. */
void mgr_each_slot(void (*fn)(struct slot *));
struct slot *mgr_slot_by_pid(pid_t pid);
/* Starts missing workers (a slice of them: M.more when some are left, and
 * the loop then comes back at once) and stops extra ones. */
void mgr_reconcile(void);
/* Reaps the workers that ended (and, as PID 1 or a subreaper, any child). */
void mgr_reap(void);
void mgr_reap_setup(void);
void mgr_reaped(struct slot *s, int status);
void mgr_stop_worker(struct slot *s);
/* sig to the worker's process group (the worker and what it started). */
void mgr_signal_worker(const struct slot *s, int sig);
void mgr_reset_slot(struct slot *s);
/* Sets s->ready and keeps M.nready in step. */
void mgr_set_ready(struct slot *s, int ready);

/* mgr_sockets.c: the listening sockets of services and slots. */
int mgr_sockets_open(struct service *svc, const struct coty_service_conf *conf, char *err,
                     size_t errlen);
int mgr_slot_sockets(struct slot *s);
/* The fds a worker of slot s gets: svc->nlisteners of them. */
const int *mgr_worker_fds(const struct slot *s);
/* In a new worker: closes every socket that is not its own. */
void mgr_close_foreign_sockets(const struct slot *mine);
void mgr_slot_sockets_close(struct slot *s);
void mgr_sockets_close(struct service *svc, int unlink_paths);

/* readiness.c: the readiness socket, READY/RELOADING/STOPPING, STATUS=,
 * the watchdog and EXTEND_TIMEOUT_USEC. */
int mgr_readiness_setup(void);
void mgr_readiness_teardown(void);
void mgr_check_ready(void);
void mgr_update_status(void);
void mgr_notify_reloading(void);
void mgr_notify_stopping(void);

#endif
