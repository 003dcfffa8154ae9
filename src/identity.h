/*
 * identity.h - who a worker runs as and within what limits: user, group
 * and supplementary groups, umask, working directory, environment,
 * resource limits, nice value, no_new_privs.
 *
 * The manager keeps a copy per service (taken when the service is added);
 * a new worker applies it between fork and init, while it is still root
 * for what needs root. Names are looked up again when applied: a user
 * removed since the service was added fails the worker, never half-drops.
 */
#ifndef COTY_IDENTITY_H
#define COTY_IDENTITY_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#define COTY_NICE_MIN (-20)
#define COTY_NICE_MAX 19

/* An optional integer: when not set (as zeroed), nothing changes. */
struct coty_opt {
    int set, value;
};

struct coty_rlimit {
    int resource;               /* RLIMIT_* */
    int has_soft, has_hard;     /* the other side stays as it is */
    rlim_t soft, hard;
};

/* A zeroed one changes nothing. */
struct coty_identity {
    const char *user;           /* a user name, or NULL: the manager's */
    const char *group;          /* a group name, or NULL: the user's (or the manager's) */
    struct coty_opt umask;      /* unset: the manager's */
    const char *cwd;            /* NULL: the manager's */
    const char *const *env;     /* "NAME=value" sets, "NAME" unsets */
    int nenv;
    struct coty_rlimit *rlimits;
    int nrlimits;
    struct coty_opt nice;       /* -20 .. 19; unset: the manager's */
    int no_new_privs;
};

/* RLIMIT_* of a limit name ("nofile", "core", "as", ...), or -1. */
int coty_rlimit_resource(const char *name);
/* The name of the i-th known limit, NULL past the last. */
const char *coty_rlimit_name(int i);

/* Resolves "user" or "user:group" (a socket's owner): 0, or -1 with the
 * reason in err. */
int coty_identity_owner(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* A deep copy of src into dst (dst's strings and arrays are new); -1 when
 * out of memory (dst is then empty). coty_identity_free frees the copy. */
int coty_identity_copy(struct coty_identity *dst, const struct coty_identity *src);
void coty_identity_free(struct coty_identity *id);

/* In a new worker, before init: applies id in the order that keeps root
 * as long as it is needed (limits, nice, groups, gid, uid, then umask,
 * cwd, environment, no_new_privs). 0, or -1 with the reason in err (the
 * worker must then exit without running init). */
int coty_identity_apply(const struct coty_identity *id, char *err, size_t errlen);

/* In a new worker, before init: applies id, or logs why it cannot and
 * exits with COTY_IDENTITY_EXIT (the manager counts it as a death). */
#define COTY_IDENTITY_EXIT 3
void coty_identity_become(const struct coty_identity *id);

#endif
