/*
 * sdlib.c - libsystemd on demand; see sdlib.h.
 *
 * The prototypes come from libsystemd's own headers, so a mismatch
 * between what we call and what the library exports fails the build.
 */
#define _GNU_SOURCE
#include "sdlib.h"

#include <dlfcn.h>
#include <errno.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

static struct {
    int tried;
    __typeof__(sd_notify) *notify;
    __typeof__(sd_watchdog_enabled) *watchdog_enabled;
    __typeof__(sd_listen_fds_with_names) *listen_fds_with_names;
    __typeof__(sd_is_socket_sockaddr) *is_socket_sockaddr;
    __typeof__(sd_is_socket_unix) *is_socket_unix;
    __typeof__(sd_journal_sendv) *journal_sendv;
} sd;

static void (*report)(const char *why);

void coty_sd_set_report(void (*fn)(const char *why)) { report = fn; }

static void missing(const char *why)
{
    if (report)
        report(why);
}

/* Opens libsystemd once; 0, or -1 when it is not there (logged once). */
static int load(void)
{
    void *h;

    if (sd.tried)
        return sd.notify ? 0 : -1;
    sd.tried = 1;
    h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        missing("cannot load libsystemd.so.0: no sd_notify, socket activation or "
                "journal fields");
        return -1;
    }
    *(void **)&sd.watchdog_enabled = dlsym(h, "sd_watchdog_enabled");
    *(void **)&sd.listen_fds_with_names = dlsym(h, "sd_listen_fds_with_names");
    *(void **)&sd.is_socket_sockaddr = dlsym(h, "sd_is_socket_sockaddr");
    *(void **)&sd.is_socket_unix = dlsym(h, "sd_is_socket_unix");
    *(void **)&sd.journal_sendv = dlsym(h, "sd_journal_sendv");
    *(void **)&sd.notify = dlsym(h, "sd_notify");
    if (!sd.watchdog_enabled || !sd.listen_fds_with_names || !sd.is_socket_sockaddr ||
        !sd.is_socket_unix || !sd.journal_sendv || !sd.notify) {
        missing("libsystemd.so.0 lacks a function cotylua needs");
        sd.notify = NULL;
        return -1;
    }
    return 0;
}

int coty_sd_notify(int unset_environment, const char *state)
{
    return load() < 0 ? -ENOSYS : sd.notify(unset_environment, state);
}

int coty_sd_watchdog_enabled(int unset_environment, uint64_t *usec)
{
    return load() < 0 ? -ENOSYS : sd.watchdog_enabled(unset_environment, usec);
}

int coty_sd_listen_fds_with_names(int unset_environment, char ***names)
{
    return load() < 0 ? -ENOSYS : sd.listen_fds_with_names(unset_environment, names);
}

int coty_sd_is_socket_sockaddr(int fd, int type, const struct sockaddr *addr,
                               unsigned addr_len, int listening)
{
    return load() < 0 ? -ENOSYS : sd.is_socket_sockaddr(fd, type, addr, addr_len, listening);
}

int coty_sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
{
    return load() < 0 ? -ENOSYS : sd.is_socket_unix(fd, type, listening, path, length);
}

int coty_sd_journal_sendv(const struct iovec *iov, int n)
{
    return load() < 0 ? -ENOSYS : sd.journal_sendv(iov, n);
}
