/*
 * ctl.h - `cotylua ctl`: the client of the control socket, and where that
 * socket lives by default (the manager asks the same function).
 */
#ifndef COTY_CTL_H
#define COTY_CTL_H

#include <stddef.h>

/* The default control socket of the services file `file`: in
 * $RUNTIME_DIRECTORY (its first entry), else /run/cotylua for root, else
 * $XDG_RUNTIME_DIR; named "STEM-HASH.sock" after the file's name and its
 * real path. 0, or -1 with the reason in err. */
int coty_ctl_default_path(const char *file, char *out, size_t cap, char *err, size_t errlen);

/* `cotylua ctl ARGS...` (argv[0] is "ctl"); returns the exit status. */
int coty_ctl_main(int argc, char **argv);

#endif
