/*
 * worker.h - the child side: post-fork reset, signal -> Lua delivery,
 * graceful timeout, and the blocking waits that deliver signals.
 *
 * A worker runs one service instance. SIGTERM and SIGHUP are caught by a
 * handler that only sets a flag and, once init is done, a Lua hook (the
 * lua.c pattern); the hook, or cotylua.sleep/wait, then calls terminate or
 * reload at a safe point. Nothing here runs in the manager.
 */
#ifndef COTY_WORKER_H
#define COTY_WORKER_H

#include <lua.h>

#include "manager.h"

/* Becomes the worker described by info. The function at stack index
 * `start` is called as start(service_id, worker_id) and must return the
 * service instance (it runs init and the on_new_worker hooks). Never
 * returns: the worker exits with 0 after terminate, 1 when its graceful
 * timeout passes, 2 on a Lua error. */
void coty_worker_main(lua_State *L, const struct coty_worker_info *info, int start)
    __attribute__((noreturn));

/* True once this worker was asked to terminate. */
int coty_worker_stopping(void);
/* Whether terminate starts a drain (the worker exits when run returns)
 * instead of ending the worker; set in the worker before init. */
void coty_worker_set_drain(int on);
/* The listening sockets of this worker's service (n of them). */
const int *coty_worker_sockets(int *n);

/* Around every coroutine resume: the coroutine co is about to run, then
 * control is back in L. A signal then hooks the thread that runs. */
void coty_worker_enter(lua_State *co);
void coty_worker_leave(lua_State *L);

/* Waits until fd (or none when fd < 0) is ready for events, or timeout
 * seconds pass (< 0: no limit). In a worker, terminate and reload are
 * delivered during the wait. Returns the poll revents, 0 on timeout, or -1
 * with errno. */
int coty_worker_wait(lua_State *L, int fd, short events, double timeout);

/* Switches this worker to delivery through its event loop and returns an
 * fd that is readable while a terminate or reload is pending (-1 with
 * errno EPERM outside a worker). From then on signals no longer interrupt
 * Lua code: the loop calls coty_worker_dispatch when the fd is readable. */
int coty_worker_signal_fd(void);
/* Runs the terminate or reload that is pending, if any, here and now. */
void coty_worker_dispatch(lua_State *L);

#endif
