/*
 * mgr_stats.c - what the manager counts about its workers (starts, exits
 * by status, hangs, reloads) and the replies that show it: `cotylua ctl
 * status` (text or JSON), `check`, and the metrics in the Prometheus
 * text format. It reads the manager's state and changes none of it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "log.h"
#include "mgr.h"

/* ---- counting ----------------------------------------------------------- */

void mgr_stats_spawned(struct slot *s)
{
    if (s->spawns++ > 0)
        s->svc->restarts++;
    s->hung = 0;
    s->last_beat = s->started;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

void mgr_stats_reaped(struct slot *s, int status)
{
    struct service *svc = s->svc;
    int code = exit_code(status);
    struct exit_count *e;

    s->last_status = status;
    s->exited = 1;
    s->was_hung = s->hung;
    for (int i = 0; i < svc->nexits; i++)
        if (svc->exits[i].code == code) {
            svc->exits[i].n++;
            return;
        }
    e = realloc(svc->exits, (size_t)(svc->nexits + 1) * sizeof *e);
    if (!e)
        return; /* a count lost, nothing else */
    svc->exits = e;
    svc->exits[svc->nexits++] = (struct exit_count){.code = code, .n = 1};
}

void mgr_stats_free(struct service *svc)
{
    free(svc->exits);
    svc->exits = NULL;
    svc->nexits = 0;
}

/* ---- words ---------------------------------------------------------------- */

static const char *slot_state(const struct slot *s)
{
    if (s->pid && s->hung)
        return "hung";
    if (s->pid && (s->stopping || s->wid >= s->svc->conf.workers))
        return "stopping";
    if (s->pid)
        return s->ready ? "ready" : "starting";
    return coty_timer_armed(&s->respawn) ? "throttled" : "down";
}

static void describe_exit(const struct slot *s, char *buf, size_t cap)
{
    int status = s->last_status;
    const char *hung = s->was_hung ? ", hung" : "";

    if (WIFSIGNALED(status))
        snprintf(buf, cap, "signal %d (%s%s)", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 hung);
    else
        snprintf(buf, cap, "status %d%s", WEXITSTATUS(status), s->was_hung ? " (hung)" : "");
}

/* "45s", "3m07s", "2h05m", "4d03h" */
static void duration(double secs, char *buf, size_t cap)
{
    long t = secs > 0 ? (long)secs : 0;

    if (t < 60)
        snprintf(buf, cap, "%lds", t);
    else if (t < 3600)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else
        snprintf(buf, cap, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
}

/* When a throttled slot starts again, in wall-clock seconds. */
static double wall_when(const struct coty_timer *t)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (t->when - coty_now());
}

static void count_ready(int *ready, int *wanted)
{
    *ready = *wanted = 0;
    for (int i = 0; i < M.nsvcs; i++)
        *wanted += M.svcs[i]->conf.workers;
    MGR_FOR_SLOTS (s, NULL)
        *ready += s->wid < s->svc->conf.workers && s->pid && s->ready && !s->stopping &&
                  !s->hung;
}

static const char *mgr_state(void)
{
    return M.state == M_RUNNING ? "running" : "stopping";
}

/* ---- status as text ---------------------------------------------------- */

static void slot_text(struct coty_buf *b, const struct slot *s, double now)
{
    char up[32] = "-", last[96] = "-", pid[24] = "-", state[64];

    snprintf(state, sizeof state, "%s", slot_state(s));
    if (s->pid) {
        snprintf(pid, sizeof pid, "%d", (int)s->pid);
        duration(now - s->started, up, sizeof up);
    } else if (coty_timer_armed(&s->respawn)) {
        time_t at = (time_t)wall_when(&s->respawn);
        struct tm tm;
        char hms[16];
        strftime(hms, sizeof hms, "%H:%M:%S", localtime_r(&at, &tm));
        snprintf(state, sizeof state, "throttled until %s", hms);
    }
    if (s->exited)
        describe_exit(s, last, sizeof last);
    coty_buf_printf(b, "  worker(%d)  pid %-7s  %-9s  up %-6s  restarts %d  last exit %s\n",
                    s->wid, pid, state, up, s->spawns > 1 ? s->spawns - 1 : 0, last);
}

static void status_text(struct coty_buf *t)
{
    double now = coty_now();
    char up[32];
    int ready, wanted;

    count_ready(&ready, &wanted);
    duration(now - M.started, up, sizeof up);
    coty_buf_printf(t, "master pid %d, %s, up %s: %d/%d workers ready\n", (int)getpid(),
                    mgr_state(), up, ready, wanted);
    for (int i = 0; i < M.nsvcs; i++) {
        struct service *svc = M.svcs[i];
        coty_buf_printf(t, "%s: %d worker%s, %ld restart%s\n", svc->conf.name,
                        PLURAL(svc->conf.workers), PLURAL(svc->restarts));
        MGR_FOR_SLOTS (s, svc)
            slot_text(t, s, now);
    }
}

/* ---- status as JSON ------------------------------------------------------ */

static void slot_json(struct coty_buf *b, const struct slot *s, double now)
{
    char last[96];

    coty_buf_printf(b, "{\"id\":%d,\"pid\":%d,\"state\":\"%s\",\"uptime\":%.3f,\"restarts\":%d,"
                    "\"last_exit\":", s->wid, (int)s->pid, slot_state(s),
                    s->pid ? now - s->started : 0.0, s->spawns > 1 ? s->spawns - 1 : 0);
    if (s->exited) {
        describe_exit(s, last, sizeof last);
        coty_buf_json(b, last);
    } else {
        coty_buf_add(b, "null", 4);
    }
    if (!s->pid && coty_timer_armed(&s->respawn))
        coty_buf_printf(b, ",\"throttled_until\":%.3f", wall_when(&s->respawn));
    coty_buf_add(b, "}", 1);
}

static void status_json(struct coty_buf *b)
{
    double now = coty_now();
    int ready, wanted;

    count_ready(&ready, &wanted);
    coty_buf_printf(b, "{\"ok\":true,\"pid\":%d,\"state\":\"%s\",\"uptime\":%.3f,\"ready\":%s,"
                    "\"workers_ready\":%d,\"workers_wanted\":%d,\"services\":[", (int)getpid(),
                    mgr_state(), now - M.started, ready == wanted ? "true" : "false", ready,
                    wanted);
    for (int i = 0; i < M.nsvcs; i++) {
        struct service *svc = M.svcs[i];
        const char *sep = "";
        coty_buf_add(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        coty_buf_json(b, svc->conf.name);
        coty_buf_printf(b, ",\"workers\":%d,\"restarts\":%ld,\"slots\":[", svc->conf.workers,
                        svc->restarts);
        MGR_FOR_SLOTS (s, svc) {
            coty_buf_add(b, sep, strlen(sep));
            slot_json(b, s, now);
            sep = ",";
        }
        coty_buf_add(b, "]}", 2);
    }
    coty_buf_add(b, "]}\n", 3);
}

void mgr_status(struct coty_buf *b, int json)
{
    struct coty_buf t;

    if (json)
        return status_json(b);
    coty_buf_init(&t, b->max);
    status_text(&t);
    coty_buf_add(b, "{\"ok\":true,\"text\":", 18);
    coty_buf_json(b, t.failed ? "" : t.p);
    coty_buf_add(b, "}\n", 2);
    b->failed |= t.failed;
    coty_buf_free(&t);
}

void mgr_check_reply(struct coty_buf *b)
{
    int ready, wanted;

    count_ready(&ready, &wanted);
    coty_buf_printf(b, "{\"ok\":true,\"ready\":%s,\"text\":\"%s: %d/%d workers ready\"}\n",
                    ready == wanted && M.state == M_RUNNING ? "true" : "false",
                    M.state == M_RUNNING ? (ready == wanted ? "ready" : "not ready") : "stopping",
                    ready, wanted);
}

/* ---- metrics --------------------------------------------------------------- */

static void label(struct coty_buf *b, const char *metric, const struct service *svc)
{
    coty_buf_printf(b, "%s{service=", metric);
    coty_buf_json(b, svc->conf.name); /* the same escapes: \\ \" \n */
}

static void per_state(struct coty_buf *b, const struct service *svc)
{
    static const char *const states[] = {"starting", "ready", "stopping", "hung", "throttled"};

    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        long n = 0;
        MGR_FOR_SLOTS (s, svc)
            n += !strcmp(slot_state(s), states[k]);
        label(b, "cotylua_workers", svc);
        coty_buf_printf(b, ",state=\"%s\"} %ld\n", states[k], n);
    }
}

static void exits(struct coty_buf *b, const struct service *svc)
{
    for (int i = 0; i < svc->nexits; i++) {
        const struct exit_count *e = &svc->exits[i];
        label(b, "cotylua_worker_exits_total", svc);
        coty_buf_printf(b, ",%s=\"%d\"} %ld\n", e->code < 0 ? "signal" : "status",
                        e->code < 0 ? -e->code : e->code, e->n);
    }
}

#define EACH_SERVICE(b, head, line)                                   \
    do {                                                              \
        coty_buf_printf(b, "%s", head);                               \
        for (int i_ = 0; i_ < M.nsvcs; i_++) {                        \
            const struct service *svc = M.svcs[i_];                   \
            line;                                                     \
        }                                                             \
    } while (0)

static long throttled(const struct service *svc)
{
    long n = 0;

    MGR_FOR_SLOTS (s, svc)
        n += !s->pid && coty_timer_armed(&s->respawn);
    return n;
}

void mgr_metrics(struct coty_buf *b)
{
    coty_buf_printf(b, "# HELP cotylua_uptime_seconds Seconds since the manager started.\n"
                    "# TYPE cotylua_uptime_seconds gauge\ncotylua_uptime_seconds %.3f\n",
                    coty_now() - M.started);
    coty_buf_printf(b, "# HELP cotylua_reloads_total Reloads begun (SIGHUP, ctl reload).\n"
                    "# TYPE cotylua_reloads_total counter\ncotylua_reloads_total %ld\n"
                    "# HELP cotylua_reloads_completed_total Reloads after which every worker "
                    "was ready again.\n# TYPE cotylua_reloads_completed_total counter\n"
                    "cotylua_reloads_completed_total %ld\n", M.reloads, M.reloads_done);
    coty_buf_printf(b, "# HELP cotylua_log_lines_dropped_total The manager's log lines that "
                    "stderr did not take in time.\n# TYPE cotylua_log_lines_dropped_total "
                    "counter\ncotylua_log_lines_dropped_total %lu\n", coty_log_dropped());
    EACH_SERVICE(b, "# HELP cotylua_workers_wanted Workers a service should run.\n"
                 "# TYPE cotylua_workers_wanted gauge\n",
                 (label(b, "cotylua_workers_wanted", svc),
                  coty_buf_printf(b, "} %d\n", svc->conf.workers)));
    EACH_SERVICE(b, "# HELP cotylua_workers Workers by state.\n# TYPE cotylua_workers gauge\n",
                 per_state(b, svc));
    EACH_SERVICE(b, "# HELP cotylua_throttled_slots Slots waiting out a restart delay.\n"
                 "# TYPE cotylua_throttled_slots gauge\n",
                 (label(b, "cotylua_throttled_slots", svc),
                  coty_buf_printf(b, "} %ld\n", throttled(svc))));
    EACH_SERVICE(b, "# HELP cotylua_worker_restarts_total Workers started again in a slot.\n"
                 "# TYPE cotylua_worker_restarts_total counter\n",
                 (label(b, "cotylua_worker_restarts_total", svc),
                  coty_buf_printf(b, "} %ld\n", svc->restarts)));
    EACH_SERVICE(b, "# HELP cotylua_worker_hangs_total Workers stopped for missing the "
                 "watchdog.\n# TYPE cotylua_worker_hangs_total counter\n",
                 (label(b, "cotylua_worker_hangs_total", svc),
                  coty_buf_printf(b, "} %ld\n", svc->hangs)));
    EACH_SERVICE(b, "# HELP cotylua_worker_exits_total Workers ended, by exit status or "
                 "signal.\n# TYPE cotylua_worker_exits_total counter\n", exits(b, svc));
}

void mgr_metrics_reply(struct coty_buf *b)
{
    struct coty_buf t;

    coty_buf_init(&t, b->max);
    mgr_metrics(&t);
    coty_buf_add(b, "{\"ok\":true,\"text\":", 18);
    coty_buf_json(b, t.failed ? "" : t.p);
    coty_buf_add(b, "}\n", 2);
    b->failed |= t.failed;
    coty_buf_free(&t);
}
