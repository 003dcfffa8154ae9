/*
 * identity.c - a worker's identity and limits; see identity.h.
 *
 * Order, in coty_identity_apply: the names are looked up first (nothing
 * changes when one is gone); then what needs root while the worker still
 * has it: resource limits (raising a hard limit), nice (a negative one),
 * supplementary groups, the gid, and last the uid, real, effective and
 * saved alike, so that nothing can take root back (checked: setuid(0)
 * must fail). Then, as the user: umask, the working directory (its
 * permissions are the user's), the environment, and no_new_privs, which
 * also holds across any exec the service does. The caller exits on the
 * first failure: init never runs with half of it applied.
 *
 * It runs in the child of a fork of a single-threaded manager, so the
 * passwd and group lookups (not async-signal-safe) are allowed there.
 */
#define _GNU_SOURCE
#include "identity.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const struct {
    const char *name;
    int resource;
} limits[] = {
    {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};
#define NLIMITS (sizeof limits / sizeof limits[0])

int coty_rlimit_resource(const char *name)
{
    for (size_t i = 0; i < NLIMITS; i++)
        if (!strcmp(limits[i].name, name))
            return limits[i].resource;
    return -1;
}

const char *coty_rlimit_name(int i)
{
    return i >= 0 && (size_t)i < NLIMITS ? limits[i].name : NULL;
}

static const char *resource_name(int resource)
{
    for (size_t i = 0; i < NLIMITS; i++)
        if (limits[i].resource == resource)
            return limits[i].name;
    return "?";
}

/* Writes the reason into err; returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* errno after a lookup that found nothing: 0 means "no such entry". */
static const char *lookup_error(int err)
{
    return err ? strerror(err) : "no such entry";
}

static int find_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
    struct group *gr;

    errno = 0;
    if (!(gr = getgrnam(name)))
        return fail(err, errlen, "group \"%s\": %s", name, lookup_error(errno));
    *gid = gr->gr_gid;
    return 0;
}

int coty_identity_owner(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    char user[256];
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    struct passwd *pw;

    if (n == 0 || n >= sizeof user)
        return fail(err, errlen, "bad owner \"%s\" (USER or USER:GROUP)", spec);
    memcpy(user, spec, n);
    user[n] = '\0';
    errno = 0;
    if (!(pw = getpwnam(user)))
        return fail(err, errlen, "user \"%s\": %s", user, lookup_error(errno));
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return colon ? find_group(colon + 1, gid, err, errlen) : 0;
}

/* ---- the manager's copy ------------------------------------------------ */

static int dup_string(const char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -1 : 0;
}

static int copy_env(struct coty_identity *dst, const struct coty_identity *src)
{
    const char **env;

    if (!src->nenv)
        return 0;
    if (!(env = calloc((size_t)src->nenv, sizeof *env)))
        return -1;
    dst->env = env;
    for (int i = 0; i < src->nenv; i++) {
        dst->nenv = i + 1;
        if (dup_string(&env[i], src->env[i]) < 0)
            return -1;
    }
    return 0;
}

int coty_identity_copy(struct coty_identity *dst, const struct coty_identity *src)
{
    size_t rsize = (size_t)src->nrlimits * sizeof *src->rlimits;

    *dst = *src;
    dst->user = dst->group = dst->cwd = NULL;
    dst->env = NULL;
    dst->nenv = 0;
    dst->rlimits = NULL;
    dst->nrlimits = 0;
    if (dup_string(&dst->user, src->user) < 0 || dup_string(&dst->group, src->group) < 0 ||
        dup_string(&dst->cwd, src->cwd) < 0 || copy_env(dst, src) < 0)
        goto fail;
    if (rsize && !(dst->rlimits = malloc(rsize)))
        goto fail;
    if (rsize)
        memcpy(dst->rlimits, src->rlimits, rsize);
    dst->nrlimits = src->nrlimits;
    return 0;
fail:
    coty_identity_free(dst);
    return -1;
}

void coty_identity_free(struct coty_identity *id)
{
    free((char *)id->user);
    free((char *)id->group);
    free((char *)id->cwd);
    for (int i = 0; i < id->nenv; i++)
        free((char *)id->env[i]);
    free((void *)id->env);
    free(id->rlimits);
    id->user = id->group = id->cwd = NULL;
    id->env = NULL;
    id->rlimits = NULL;
    id->nenv = id->nrlimits = 0;
}

/* ---- in the worker ------------------------------------------------------ */

/* Who to become, looked up before anything changes. */
struct target {
    int change;                 /* user or group given */
    uid_t uid;
    gid_t gid;
    char name[256], home[4096]; /* the user's, when a user is given */
};

static int resolve(const struct coty_identity *id, struct target *t, char *err, size_t errlen)
{
    struct passwd *pw;

    t->change = id->user || id->group;
    t->uid = getuid();
    t->gid = getgid();
    t->name[0] = t->home[0] = '\0';
    if (id->user) {
        errno = 0;
        if (!(pw = getpwnam(id->user)))
            return fail(err, errlen, "user \"%s\": %s", id->user, lookup_error(errno));
        t->uid = pw->pw_uid;
        t->gid = pw->pw_gid;
        snprintf(t->name, sizeof t->name, "%s", pw->pw_name);
        snprintf(t->home, sizeof t->home, "%s", pw->pw_dir);
    }
    return id->group ? find_group(id->group, &t->gid, err, errlen) : 0;
}

static int set_limit(const struct coty_rlimit *r, char *err, size_t errlen)
{
    struct rlimit now, want;

    if (getrlimit(r->resource, &now) < 0)
        return fail(err, errlen, "getrlimit(%s): %s", resource_name(r->resource), strerror(errno));
    want.rlim_max = r->has_hard ? r->hard : now.rlim_max;
    want.rlim_cur = r->has_soft ? r->soft : now.rlim_cur;
    if (!r->has_soft && want.rlim_cur > want.rlim_max)
        want.rlim_cur = want.rlim_max; /* a lower hard limit takes the soft one down */
    if (setrlimit(r->resource, &want) == 0)
        return 0;
    return fail(err, errlen, "setrlimit(%s, soft %llu, hard %llu): %s (the hard limit is %llu)",
                resource_name(r->resource), (unsigned long long)want.rlim_cur,
                (unsigned long long)want.rlim_max, strerror(errno),
                (unsigned long long)now.rlim_max);
}

/* What needs root: limits, nice, groups, gid, and the uid last. */
static int as_root(const struct coty_identity *id, const struct target *t, char *err,
                   size_t errlen)
{
    for (int i = 0; i < id->nrlimits; i++)
        if (set_limit(&id->rlimits[i], err, errlen) < 0)
            return -1;
    if (id->nice.set && setpriority(PRIO_PROCESS, 0, id->nice.value) < 0)
        return fail(err, errlen, "setpriority(%d): %s", id->nice.value, strerror(errno));
    if (!t->change)
        return 0;
    /* Without root the groups cannot change; becoming oneself still works. */
    if (geteuid() == 0 && (t->name[0] ? initgroups(t->name, t->gid) : setgroups(1, &t->gid)) < 0)
        return fail(err, errlen, "setting the supplementary groups of %s: %s",
                    t->name[0] ? t->name : "the group", strerror(errno));
    if (setresgid(t->gid, t->gid, t->gid) < 0)
        return fail(err, errlen, "setresgid(%d): %s", (int)t->gid, strerror(errno));
    if (setresuid(t->uid, t->uid, t->uid) < 0)
        return fail(err, errlen, "setresuid(%d): %s", (int)t->uid, strerror(errno));
    if (t->uid != 0 && setuid(0) == 0)
        return fail(err, errlen, "uid %d could take root back", (int)t->uid);
    return 0;
}

static int set_env(const struct coty_identity *id, const struct target *t, char *err,
                   size_t errlen)
{
    if (t->name[0] && (setenv("USER", t->name, 1) < 0 || setenv("LOGNAME", t->name, 1) < 0 ||
                       setenv("HOME", t->home, 1) < 0))
        return fail(err, errlen, "setenv: %s", strerror(errno));
    for (int i = 0; i < id->nenv; i++) {
        const char *eq = strchr(id->env[i], '=');
        char name[256];
        size_t n = eq ? (size_t)(eq - id->env[i]) : strlen(id->env[i]);

        if (n == 0 || n >= sizeof name)
            return fail(err, errlen, "bad environment entry \"%s\"", id->env[i]);
        memcpy(name, id->env[i], n);
        name[n] = '\0';
        if ((eq ? setenv(name, eq + 1, 1) : unsetenv(name)) < 0)
            return fail(err, errlen, "%s %s: %s", eq ? "setenv" : "unsetenv", name,
                        strerror(errno));
    }
    return 0;
}

int coty_identity_apply(const struct coty_identity *id, char *err, size_t errlen)
{
    struct target t;

    if (resolve(id, &t, err, errlen) < 0 || as_root(id, &t, err, errlen) < 0)
        return -1;
    if (id->umask.set)
        umask((mode_t)id->umask.value);
    if (id->cwd && chdir(id->cwd) < 0)
        return fail(err, errlen, "chdir(\"%s\"): %s", id->cwd, strerror(errno));
    if (set_env(id, &t, err, errlen) < 0)
        return -1;
    if (id->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
    return 0;
}

/* A change of the effective uid or gid clears the parent-death signal:
 * it is set again, and a parent that died meanwhile is noticed (the
 * signal is raised; the worker's signals are still blocked). */
static void keep_death_signal(int sig, pid_t parent)
{
    if (sig <= 0)
        return;
    prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
    if (getppid() != parent)
        raise(sig);
}

void coty_identity_become(const struct coty_identity *id)
{
    char err[512];
    int sig = 0;
    pid_t parent = getppid();

    if (!id)
        return;
    prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
    if (coty_identity_apply(id, err, sizeof err) == 0) {
        keep_death_signal(sig, parent);
        return;
    }
    coty_error("cannot take the service's identity, init not run: %s; exiting with status %d",
               err, COTY_IDENTITY_EXIT);
    fflush(NULL);
    _exit(COTY_IDENTITY_EXIT);
}
