/*
 * proctitle.h - process titles, as shown by ps and /proc/PID/cmdline.
 *
 * The title is written over the process's own argument area, extended
 * over the environment strings once those are copied to the heap (the
 * nginx way). The area is found through /proc/self/stat, so the same code
 * serves the cotylua binary and a module loaded into a plain lua5.4. The
 * short name (comm) is set with PR_SET_NAME.
 */
#ifndef COTY_PROCTITLE_H
#define COTY_PROCTITLE_H

/* Finds the argument area and saves the original command line. Call once,
 * before any title is set; 0, or -1 when titles are unavailable. */
int coty_proctitle_init(void);
/* The command line as it was at init, arguments joined by spaces. */
const char *coty_proctitle_original(void);
/* Sets the title (truncated to the area) and comm (to 15 bytes). */
void coty_proctitle_set(const char *title);

#endif
