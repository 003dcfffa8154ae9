/*
 * test_identity.c - a worker's identity: limit names, the manager's deep
 * copy, and coty_identity_apply in a forked child (what needs no root:
 * umask, cwd, env, lowered limits, a higher nice value, no_new_privs, the
 * current user) and its errors, which must leave init unreached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "identity.h"
#include "unit.h"

static void names(void)
{
    const char *name;
    int n = 0;

    CHECK(coty_rlimit_resource("nofile") == RLIMIT_NOFILE);
    CHECK(coty_rlimit_resource("core") == RLIMIT_CORE);
    CHECK(coty_rlimit_resource("as") == RLIMIT_AS);
    CHECK(coty_rlimit_resource("files") == -1);
    for (; (name = coty_rlimit_name(n)); n++)
        CHECK(coty_rlimit_resource(name) >= 0);
    CHECK(n == 16);
    CHECK(coty_rlimit_name(-1) == NULL);
}

static void deep_copy(void)
{
    const char *env[] = {"A=1", "B"};
    struct coty_rlimit lim = {.resource = RLIMIT_CORE, .has_soft = 1, .soft = 0};
    struct coty_identity src = {.user = "root", .cwd = "/", .umask = {1, 022}, .env = env, .nenv = 2,
                                .rlimits = &lim, .nrlimits = 1, .nice = {1, 3}};
    struct coty_identity dst;

    CHECK(coty_identity_copy(&dst, &src) == 0);
    CHECK(dst.user != src.user && !strcmp(dst.user, "root"));
    CHECK(dst.group == NULL);
    CHECK(dst.cwd != src.cwd && !strcmp(dst.cwd, "/"));
    CHECK(dst.nenv == 2 && dst.env != src.env && !strcmp(dst.env[0], "A=1") && !strcmp(dst.env[1], "B"));
    CHECK(dst.nrlimits == 1 && dst.rlimits != &lim && dst.rlimits[0].resource == RLIMIT_CORE);
    CHECK(dst.umask.set && dst.umask.value == 022 && dst.nice.set && dst.nice.value == 3);
    coty_identity_free(&dst);
    CHECK(dst.user == NULL && dst.env == NULL && dst.rlimits == NULL && dst.nenv == 0);
}

/* Runs coty_identity_apply(id) in a child, then check() there; returns the
 * child's exit status: 0 when both went as expected, 1 or 2 otherwise.
 * The reason of a failed apply goes into err. */
static int in_child(const struct coty_identity *id, int (*check)(void), char *err, size_t errlen)
{
    int p[2], status;
    pid_t pid;
    ssize_t n;

    if (pipe(p) < 0 || (pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        char why[512] = "";
        int r = coty_identity_apply(id, why, sizeof why);
        if (write(p[1], why, strlen(why)) < 0)
            _exit(3);
        _exit(r < 0 ? 2 : check() ? 0 : 1);
    }
    close(p[1]);
    n = read(p[0], err, errlen - 1);
    err[n > 0 ? n : 0] = '\0';
    close(p[0]);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int applied(void)
{
    struct rlimit core;
    char cwd[64];
    mode_t old = umask(0);
    int nice;

    errno = 0;
    nice = getpriority(PRIO_PROCESS, 0);
    getrlimit(RLIMIT_CORE, &core);
    return old == 027 && getcwd(cwd, sizeof cwd) && !strcmp(cwd, "/") &&
           getenv("COTY_T_SET") && !strcmp(getenv("COTY_T_SET"), "a=b") &&
           !getenv("COTY_T_GONE") && core.rlim_cur == 0 && nice == 19 &&
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 && getuid() == geteuid();
}

static void applies_in_order(void)
{
    const char *env[] = {"COTY_T_SET=a=b", "COTY_T_GONE"};
    struct coty_rlimit lim = {.resource = RLIMIT_CORE, .has_soft = 1, .soft = 0};
    struct passwd *me = getpwuid(getuid());
    struct coty_identity id = {.user = me ? me->pw_name : "root", .umask = {1, 027}, .cwd = "/",
                               .env = env, .nenv = 2, .rlimits = &lim, .nrlimits = 1,
                               .nice = {1, 19}, .no_new_privs = 1};
    char err[512];

    setenv("COTY_T_GONE", "1", 1);
    CHECK(in_child(&id, applied, err, sizeof err) == 0);
    CHECK(err[0] == '\0');
    unsetenv("COTY_T_GONE");
}

static int parent_prio;

static int unchanged(void)
{
    mode_t old = umask(0);
    char cwd[64];

    errno = 0;
    return old == 022 && getpriority(PRIO_PROCESS, 0) == parent_prio && errno == 0 &&
           getcwd(cwd, sizeof cwd) && !strcmp(cwd, "/tmp") &&
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0;
}

/* A zeroed identity (the default of every option) changes nothing. */
static void zero_changes_nothing(void)
{
    struct coty_identity none = {0};
    char err[512];
    char cwd[4096];
    mode_t old;

    errno = 0;
    parent_prio = getpriority(PRIO_PROCESS, 0);
    if (errno || !getcwd(cwd, sizeof cwd) || chdir("/tmp") < 0) {
        CHECK(!"the test can read its nice value and enter /tmp");
        return;
    }
    old = umask(022);
    CHECK(in_child(&none, unchanged, err, sizeof err) == 0);
    CHECK(chdir(cwd) == 0);
    umask(old);
}

static int never(void) { return 0; }

static void refuses(void)
{
    struct coty_rlimit huge = {.resource = RLIMIT_NOFILE, .has_soft = 1, .has_hard = 1,
                               .soft = (rlim_t)1 << 40, .hard = (rlim_t)1 << 40};
    struct coty_identity nouser = {.user = "no-such-user-here"};
    struct coty_identity nogroup = {.group = "no-such-group-here"};
    struct coty_identity nodir = {.cwd = "/no/such/dir"};
    struct coty_identity toobig = {.rlimits = &huge, .nrlimits = 1};
    char err[512];

    CHECK(in_child(&nouser, never, err, sizeof err) == 2);
    CHECK(!strcmp(err, "user \"no-such-user-here\": no such entry"));
    CHECK(in_child(&nogroup, never, err, sizeof err) == 2);
    CHECK(!strcmp(err, "group \"no-such-group-here\": no such entry"));
    CHECK(in_child(&nodir, never, err, sizeof err) == 2);
    CHECK(!strcmp(err, "chdir(\"/no/such/dir\"): No such file or directory"));
    CHECK(in_child(&toobig, never, err, sizeof err) == 2);
    CHECK(!strncmp(err, "setrlimit(nofile, soft 1099511627776, hard 1099511627776): ", 59));
}

static void owner(void)
{
    uid_t uid = 1;
    gid_t gid = 1;
    char err[256];

    CHECK(coty_identity_owner("root", &uid, &gid, err, sizeof err) == 0 && uid == 0 && gid == 0);
    CHECK(coty_identity_owner("root:root", &uid, &gid, err, sizeof err) == 0);
    CHECK(coty_identity_owner("root:no-such-group-here", &uid, &gid, err, sizeof err) < 0);
    CHECK(!strcmp(err, "group \"no-such-group-here\": no such entry"));
    CHECK(coty_identity_owner(":root", &uid, &gid, err, sizeof err) < 0);
}

int main(void)
{
    names();
    deep_copy();
    zero_changes_nothing();
    applies_in_order();
    refuses();
    owner();
    return unit_done("test_identity");
}
