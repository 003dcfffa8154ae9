/*
 * manager.h - the master process: services, worker slots, spawn, reap,
 * respawn, reload and shutdown.
 *
 * All of the manager's state lives here, in C, outside any lua_State. It
 * knows nothing of the Lua API: it calls its user through struct
 * coty_mgr_ops (the binding turns those calls into Lua hooks and the
 * worker's life). There is one manager per process, so this is a module
 * with file-scope state rather than an object.
 */
#ifndef COTY_MANAGER_H
#define COTY_MANAGER_H

#include <signal.h>
#include <sys/types.h>

#include "identity.h"
#include "restart.h"

/* What the child of a fork is told about itself. */
struct coty_worker_info {
    int service_id, worker_id;
    const char *name;
    double graceful_timeout;    /* seconds, 0 = none */
    pid_t manager_pid;
    int ready_fd;               /* send the worker's pid here once ready */
    const int *fds;             /* the service's listening sockets */
    int nfds;
    int sigpipe_ignored;        /* SIGPIPE was ignored before run() */
    const struct coty_identity *identity; /* to apply before init */
    const sigset_t *caught;     /* signals not at SIG_DFL in the manager */
};

/* Why a worker died, as on_dead_worker's fourth argument tells it. */
enum coty_death {
    COTY_DEATH_CRASH, /* on its own, whatever its status: nobody asked it to stop */
    COTY_DEATH_STOP,  /* the manager asked it to stop (reload, reconfigure, ...) */
};

struct coty_mgr_ops {
    void (*on_terminate)(void *ud);  /* SIGTERM or shutdown(), manager */
    void (*on_reload)(void *ud);     /* SIGHUP, manager */
    /* after reaping a worker; why: one of enum coty_death */
    void (*on_dead)(void *ud, int service_id, int worker_id, int exit_code, int why);
    /* Runs in the child after fork and must not return. */
    void (*worker)(void *ud, const struct coty_worker_info *info);
};

#define COTY_WORKERS_MAX 1000000 /* per service */

struct coty_service_conf {
    const char *name;           /* copied */
    int workers;                /* 1 .. COTY_WORKERS_MAX */
    double graceful_timeout;    /* seconds; < 0 = the manager's; 0 = none */
    struct coty_restart_policy restart;
    int has_reload;             /* else SIGHUP restarts its workers */
    const char *const *listen;  /* listening addresses (copied), or NULL */
    int nlisten;
    int reuseport;              /* a socket of its own for each worker */
    const char *listen_owner;   /* unix sockets: "user" or "user:group", or NULL */
    struct coty_opt listen_mode; /* unix sockets: permission bits */
    struct coty_identity identity; /* the workers' (copied) */
};

struct coty_mgr_conf {
    double graceful_timeout;    /* whole stop; 0 = none */
    struct coty_restart_policy restart;
};

/* Sets the manager up; -1 (EBUSY) when one already exists in this process. */
int coty_mgr_create(const struct coty_mgr_conf *conf);
int coty_mgr_exists(void);
/* Frees every service and slot; the manager is gone (not while running). */
void coty_mgr_destroy(void);
const struct coty_mgr_conf *coty_mgr_conf(void);

/* Adds a service and opens its listening sockets; returns its id (1, 2,
 * ...) or -1 with the reason in err. */
int coty_mgr_add(const struct coty_service_conf *conf, char *err, size_t errlen);
/* Sets a service's worker count (1 .. COTY_WORKERS_MAX), also while
 * running. -1 (ENOENT, EINVAL). */
int coty_mgr_reconfigure(int service_id, int workers);

/* Starts the workers and supervises them until the manager stops. Returns
 * 0 after a graceful stop, 1 after a fast one (SIGINT, timeout), -1 when
 * it could not start (errno set, already logged). In a worker it never
 * returns: the child runs ops->worker. */
int coty_mgr_run(const struct coty_mgr_ops *ops, void *ud);
/* Asks for a graceful stop (as SIGTERM); a second call does nothing. */
void coty_mgr_shutdown(void);
int coty_mgr_running(void);

#endif
