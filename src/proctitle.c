/*
 * proctitle.c - process titles; see proctitle.h.
 *
 * The kernel shows /proc/PID/cmdline from the memory between arg_start and
 * arg_end; when the last byte there is no longer a NUL, it reads on into
 * the environment area up to env_end. So once environ points at heap
 * copies, [arg_start, env_end) is ours to write.
 */
#define _GNU_SOURCE
#include "proctitle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

extern char **environ;

static char *area;          /* start of the writable area, NULL if none */
static size_t area_len;
static char original[512];

/* Reads arg_start, arg_end, env_start, env_end (fields 48-51). */
static int read_bounds(unsigned long b[4])
{
    char buf[2048], *p;
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n;
    int field;

    if (!f)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return -1;
    for (field = 2; field < 48 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p, " %lu %lu %lu %lu", &b[0], &b[1], &b[2], &b[3]) != 4)
        return -1;
    return 0;
}

static void save_original(const char *args, size_t len)
{
    size_t n = len < sizeof original - 1 ? len : sizeof original - 1;

    memcpy(original, args, n);
    while (n > 0 && original[n - 1] == '\0')
        n--;
    for (size_t i = 0; i < n; i++)
        if (original[i] == '\0')
            original[i] = ' ';
    original[n] = '\0';
}

/* Moves the environment strings that lie in the area to the heap. The
 * copies are also kept in `moved`, so that they stay reachable (and are
 * not reported as leaks) after unsetenv() drops them from environ. */
static int move_environ(unsigned long start, unsigned long end)
{
    static char **moved;
    size_t count = 0;
    char **copy;

    while (environ && environ[count])
        count++;
    copy = calloc(count + 1, sizeof *copy);
    moved = calloc(count + 1, sizeof *moved);
    if (!copy || !moved) {
        free(copy);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        unsigned long at = (unsigned long)environ[i];
        copy[i] = at >= start && at < end ? (moved[i] = strdup(environ[i])) : environ[i];
        if (!copy[i]) {
            free(copy); /* environ is left as it was; `moved` keeps the copies */
            return -1;
        }
    }
    environ = copy;
    return 0;
}

int coty_proctitle_init(void)
{
    unsigned long b[4];

    if (area)
        return 0;
    if (read_bounds(b) < 0 || b[1] <= b[0])
        return -1;
    /* The kernel's bounds must be our own argv (program_invocation_name is
     * argv[0]); under valgrind, for one, they are the host's, not ours. */
    if ((unsigned long)program_invocation_name != b[0])
        return -1;
    save_original((const char *)b[0], b[1] - b[0]);
    area = (char *)b[0];
    area_len = b[1] - b[0];
    /* Take the environment too when it directly follows the arguments. */
    if (b[2] == b[1] && b[3] > b[2] && move_environ(b[2], b[3]) == 0)
        area_len = b[3] - b[0];
    return 0;
}

const char *coty_proctitle_original(void) { return original; }

void coty_proctitle_set(const char *title)
{
    size_t n = strlen(title);

    prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
    if (!area || area_len < 2)
        return;
    if (n > area_len - 1)
        n = area_len - 1;
    memcpy(area, title, n);
    memset(area + n, '\0', area_len - n);
    /* A title shorter than the original arguments ends in NUL and reads
     * back whole; a longer one runs into the environment area, which the
     * kernel reads up to the first NUL. */
}
