/*
 * fdscan.c - warns about loop descriptors left open by the services file;
 * see fdscan.h. Reads /proc/self/fd: readlink names an anonymous inode
 * "anon_inode:[eventpoll]", "anon_inode:inotify" and so on.
 */
#define _GNU_SOURCE
#include "fdscan.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const struct {
    const char *link, *kind;
} kinds[] = {
    {"anon_inode:[eventpoll]", "epoll"},   {"anon_inode:[eventfd]", "eventfd"},
    {"anon_inode:[timerfd]", "timerfd"},   {"anon_inode:[signalfd]", "signalfd"},
    {"anon_inode:inotify", "inotify"},
};

const char *coty_fd_loop_kind(int fd)
{
    char path[64], link[64];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return NULL;
    link[n] = '\0';
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(link, kinds[i].link))
            return kinds[i].kind;
    return NULL;
}

int coty_fds_warn_shared(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        const char *kind;

        if (*end || end == e->d_name || fd == dirfd(d) || !(kind = coty_fd_loop_kind((int)fd)))
            continue;
        coty_warning("fd %ld is an open %s instance after loading the services file: every "
                     "worker would share it; create event loops in init, not when the file "
                     "loads (README: \"Event loops\")",
                     fd, kind);
        found++;
    }
    closedir(d);
    return found;
}
