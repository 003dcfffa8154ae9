/*
 * control.h - the manager's control socket, as the rest of the program
 * sees it: where it goes, and opening it early (when the manager is
 * created), so that a second manager of the same file stops before it
 * binds anything. Serving it is the manager's (mgr.h: mgr_control_*).
 */
#ifndef COTY_CONTROL_H
#define COTY_CONTROL_H

#include <stddef.h>

/* --control PATH: wins over the services file's option and the default. */
void coty_control_cli(const char *path);

/* Opens the control socket: at PATH from --control, else opt_path (the
 * manager's `control` option), else the default for `file` (ctl.h).
 * Refuses (-1, the reason in err) when a manager answers there already;
 * a stale socket file is removed. Without a runtime directory for the
 * default, it warns and there is no control socket. metrics_file (or
 * NULL): where the metrics are written, every few seconds. */
int coty_control_open(const char *opt_path, const char *file, const char *metrics_file,
                      char *err, size_t errlen);
/* Closes it and removes its file (the manager is destroyed unrun). */
void coty_control_close(void);
/* The path of the open socket, or NULL. */
const char *coty_control_path(void);

#endif
