/*
 * test_loop_call.c - a call another thread makes into the storage loop ends one of three
 * ways (done, timed out, not posted) and its object is freed exactly once, never touched
 * after the side that let go of it let go: the loop answers, the loop never runs its queue,
 * the loop answers only after the caller gave up, the loop is stopped, many callers at
 * once. The manager's calls (its public API) are checked over the same three endings, and
 * a session the loop was about to drop when it stopped is freed by the manager alone.
 *
 * Meant to be run under AddressSanitizer (a use after free or double free crashes) and
 * ThreadSanitizer (a caller reading what the loop writes without the loop's lock is a
 * report).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/loop.h"
#include "storage/manager.h"
#include "common/transport.h"

#define SHORT_MS 50

/*
 * Criterion cannot start under ThreadSanitizer (docs/ci.md): built with -fsanitize=thread
 * the file is its own runner, with the same cases and Criterion's summary line.
 */
#if defined(__SANITIZE_THREAD__)
#define STANDALONE 1
#endif

#ifndef STANDALONE
#include <criterion/criterion.h>
#define CHECK(cond, ...) cr_assert(cond, "" __VA_ARGS__)
#define CASE(suite, name) Test(suite, name)
#else
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                      \
        }                                                                                 \
    } while (0)
struct standalone_case {
    const char *name;
    void (*fn)(void);
};
static struct standalone_case cases[32];
static int ncases;
#define CASE(suite, name)                                                                 \
    static void suite##_##name(void);                                                     \
    __attribute__((constructor)) static void reg_##suite##_##name(void)                   \
    {                                                                                     \
        cases[ncases++] = (struct standalone_case){ #suite "::" #name, suite##_##name };  \
    }                                                                                     \
    static void suite##_##name(void)
#endif

/* ---------------------------------------------------------------- a loop on a thread */

struct runner {
    struct sto_loop *loop;
    pthread_t th;
    atomic_bool hold;              /* a posted blocker keeps the loop from its queue */
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;

    sto_loop_run(r->loop);
    return NULL;
}

static void runner_start(struct runner *r)
{
    r->loop = sto_loop_new();
    CHECK(r->loop != NULL);
    CHECK(pthread_create(&r->th, NULL, runner_main, r) == 0);
}

static void runner_stop(struct runner *r)
{
    sto_loop_stop(r->loop);
    pthread_join(r->th, NULL);
}

/* Keeps the loop thread busy until r->hold is cleared (no ordering with the test thread). */
static void blocker(void *arg)
{
    struct runner *r = arg;

    while (atomic_load_explicit(&r->hold, memory_order_relaxed))
        usleep(1000);
}

static void runner_block(struct runner *r)
{
    atomic_store_explicit(&r->hold, true, memory_order_relaxed);
    CHECK(sto_loop_post(r->loop, blocker, r) == 0);
}

static void runner_unblock(struct runner *r)
{
    atomic_store_explicit(&r->hold, false, memory_order_relaxed);
}

static uint64_t ms_since(uint64_t t0)
{
    return sto_now_ms() - t0;
}

/* ---------------------------------------------------------------- sto_loop_call */

static atomic_int frees, runs;

struct tcall {
    struct sto_call call;
    int value;                     /* the result: written by the loop */
    uint32_t end_after_ms;         /* 0: ends in run; else from a timer */
    struct sto_timer timer;
};

static void tcall_free(struct sto_call *c)
{
    struct tcall *t = (struct tcall *)c;

    t->value = -1;                 /* a write: a racing reader is a report */
    atomic_fetch_add(&frees, 1);
    free(t);
}

static void tcall_end(struct sto_timer *tm)
{
    struct tcall *t = (struct tcall *)((char *)tm - offsetof(struct tcall, timer));

    t->value = 42;
    sto_call_done(&t->call);
}

static void tcall_run(struct sto_call *c)
{
    struct tcall *t = (struct tcall *)c;

    atomic_fetch_add(&runs, 1);
    if (t->end_after_ms) {
        t->timer.cb = tcall_end;
        sto_timer_arm(c->loop, &t->timer, t->end_after_ms);
        return;
    }
    tcall_end(&t->timer);
}

static struct tcall *tcall_new(uint32_t end_after_ms)
{
    struct tcall *t = calloc(1, sizeof(*t));

    CHECK(t != NULL);
    t->call.run = tcall_run;
    t->call.free = tcall_free;
    t->end_after_ms = end_after_ms;
    return t;
}

static void wait_frees(int n)
{
    uint64_t t0 = sto_now_ms();

    while (atomic_load(&frees) < n && ms_since(t0) < 5000)
        usleep(1000);
}

static void reset_counts(void)
{
    atomic_store(&frees, 0);
    atomic_store(&runs, 0);
}

CASE(loop_call, done_in_run_is_the_callers_again)
{
    struct runner r = { 0 };
    struct tcall *t = tcall_new(0);

    reset_counts();
    runner_start(&r);
    CHECK(sto_loop_call(r.loop, &t->call, 5000) == STO_CALL_DONE);
    CHECK(t->value == 42);
    CHECK(atomic_load(&frees) == 0, "the loop freed a call its caller took back");
    tcall_free(&t->call);
    runner_stop(&r);
    sto_loop_free(r.loop);
    CHECK(atomic_load(&frees) == 1);
}

CASE(loop_call, done_later_from_a_timer)
{
    struct runner r = { 0 };
    struct tcall *t = tcall_new(20);

    reset_counts();
    runner_start(&r);
    CHECK(sto_loop_call(r.loop, &t->call, 5000) == STO_CALL_DONE);
    CHECK(t->value == 42);
    tcall_free(&t->call);
    runner_stop(&r);
    sto_loop_free(r.loop);
    CHECK(atomic_load(&frees) == 1);
}

/* The loop never runs its queue: the caller returns after the timeout; the loop's end frees. */
CASE(loop_call, loop_never_runs_times_out_and_its_end_frees)
{
    struct sto_loop *loop = sto_loop_new();
    struct tcall *t = tcall_new(0);
    uint64_t t0 = sto_now_ms();

    reset_counts();
    CHECK(loop != NULL);
    CHECK(sto_loop_call(loop, &t->call, SHORT_MS) == STO_CALL_TIMED_OUT);
    CHECK(ms_since(t0) >= SHORT_MS - 1);
    CHECK(atomic_load(&frees) == 0);
    sto_loop_free(loop);
    CHECK(atomic_load(&runs) == 0, "a call left in the queue ran at the loop's end");
    CHECK(atomic_load(&frees) == 1);
}

/* The loop is blocked past the timeout, then runs the call: it frees it, once. */
CASE(loop_call, loop_answers_after_the_caller_gave_up)
{
    struct runner r = { 0 };
    struct tcall *t = tcall_new(0);

    reset_counts();
    runner_start(&r);
    runner_block(&r);
    CHECK(sto_loop_call(r.loop, &t->call, SHORT_MS) == STO_CALL_TIMED_OUT);
    runner_unblock(&r);
    wait_frees(1);
    CHECK(atomic_load(&runs) == 1);
    CHECK(atomic_load(&frees) == 1);
    runner_stop(&r);
    sto_loop_free(r.loop);
    CHECK(atomic_load(&frees) == 1);
}

/* The call runs but ends after the timeout (async work): whoever ends it frees it. */
CASE(loop_call, call_ends_after_the_caller_gave_up)
{
    struct runner r = { 0 };
    struct tcall *t = tcall_new(200);

    reset_counts();
    runner_start(&r);
    CHECK(sto_loop_call(r.loop, &t->call, SHORT_MS) == STO_CALL_TIMED_OUT);
    wait_frees(1);
    CHECK(atomic_load(&frees) == 1);
    runner_stop(&r);
    sto_loop_free(r.loop);
    CHECK(atomic_load(&frees) == 1);
}

/* A stopped loop takes no call: freed once, at once, never run. */
CASE(loop_call, stopped_loop_is_not_posted_and_frees_once)
{
    struct sto_loop *loop = sto_loop_new();
    struct tcall *t = tcall_new(0);
    uint64_t t0 = sto_now_ms();

    reset_counts();
    CHECK(loop != NULL);
    sto_loop_stop(loop);
    CHECK(sto_loop_call(loop, &t->call, 5000) == STO_CALL_NOT_POSTED);
    CHECK(ms_since(t0) < 1000);
    CHECK(atomic_load(&frees) == 1);
    sto_loop_free(loop);
    CHECK(atomic_load(&runs) == 0);
    CHECK(atomic_load(&frees) == 1);
}

#define CALLERS 4
#define CALLS_EACH 100

struct caller {
    struct sto_loop *loop;
    int done, timed_out;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;

    for (int i = 0; i < CALLS_EACH; i++) {
        /* ends at once, or after 1-3 ms; waits 0-2 ms: both endings, often racing */
        struct tcall *t = tcall_new((uint32_t)(i % 4));
        enum sto_call_status st = sto_loop_call(c->loop, &t->call, (uint32_t)(i % 3));

        if (st == STO_CALL_DONE) {
            if (t->value != 42)
                abort();
            tcall_free(&t->call);
            c->done++;
        } else if (st == STO_CALL_TIMED_OUT) {
            c->timed_out++;
        } else {
            abort();
        }
    }
    return NULL;
}

/* Many callers racing their timeouts against the loop: every call freed exactly once. */
CASE(loop_call, racing_callers_free_every_call_once)
{
    struct runner r = { 0 };
    struct caller c[CALLERS] = { 0 };
    pthread_t th[CALLERS];

    reset_counts();
    runner_start(&r);
    for (int i = 0; i < CALLERS; i++) {
        c[i].loop = r.loop;
        CHECK(pthread_create(&th[i], NULL, caller_main, &c[i]) == 0);
    }
    for (int i = 0; i < CALLERS; i++)
        pthread_join(th[i], NULL);
    wait_frees(CALLERS * CALLS_EACH);
    runner_stop(&r);
    sto_loop_free(r.loop);
    CHECK(atomic_load(&frees) == CALLERS * CALLS_EACH);
}

/* ---------------------------------------------------------------- the manager's calls */

static struct sto_mgr *mgr_new(struct sto_loop *loop)
{
    struct sto_mgr_config cfg = { .call_timeout_ms = SHORT_MS };
    struct sto_mgr *m = sto_mgr_new(loop, &cfg);

    CHECK(m != NULL);
    return m;
}

static void quiet(void)
{
    log_set_level(LOG_LVL_ERROR);
}

/*
 * The loop answers just after the caller gave up: the caller has returned and reads
 * nothing of the call; the loop frees it.
 */
CASE(mgr_call, loop_answers_after_the_caller_gave_up)
{
    quiet();
    struct runner r = { 0 };
    struct sto_session_view *v = NULL;
    struct sto_mgr *m;
    size_t n = 0;

    runner_start(&r);
    m = mgr_new(r.loop);
    runner_block(&r);
    CHECK(sto_mgr_list_sessions(m, &v, &n) == -ETIMEDOUT);
    runner_unblock(&r);
    usleep(100 * 1000);            /* the loop runs the call now, and frees it */
    runner_stop(&r);
    sto_mgr_free(m);
    sto_loop_free(r.loop);
}

/* A stopped loop: the call fails, and nothing of it runs once the manager is gone. */
CASE(mgr_call, stopped_loop_never_runs_the_call_later)
{
    quiet();
    struct sto_loop *loop = sto_loop_new();
    struct sto_volume_view v;
    struct sto_mgr *m;

    CHECK(loop != NULL);
    m = mgr_new(loop);
    sto_loop_stop(loop);
    CHECK(sto_mgr_get_volume(m, "v-0000000000000000", &v) < 0);
    sto_mgr_free(m);
    sto_loop_free(loop);
}

/* The loop's eventfd: the one that was not open before sto_loop_new. */
static int find_new_eventfd(const bool *before, int nbefore)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    CHECK(d != NULL);
    while ((e = readdir(d))) {
        char path[300], link[64];
        int fd = atoi(e->d_name);
        ssize_t len;

        if (e->d_name[0] == '.' || (fd < nbefore && before[fd]))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        len = readlink(path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (strstr(link, "eventfd"))
            found = fd;
    }
    closedir(d);
    return found;
}

/*
 * The loop's wake-up cannot be written (its counter is saturated): the call is queued all
 * the same, so it is the loop's; the caller neither frees it nor touches it again.
 */
CASE(mgr_call, wake_up_that_cannot_be_written)
{
    quiet();
    static bool before[4096];
    struct sto_session_view *v = NULL;
    struct sto_loop *loop;
    struct sto_mgr *m;
    uint64_t full = 0xfffffffffffffffeull;
    size_t n = 0;
    int efd;

    for (int fd = 0; fd < 4096; fd++)
        before[fd] = fcntl(fd, F_GETFD) >= 0;
    loop = sto_loop_new();
    CHECK(loop != NULL);
    efd = find_new_eventfd(before, 4096);
    CHECK(efd >= 0);
    CHECK(write(efd, &full, sizeof(full)) == (ssize_t)sizeof(full));
    m = mgr_new(loop);
    CHECK(sto_mgr_list_sessions(m, &v, &n) < 0);
    sto_mgr_free(m);
    sto_loop_free(loop);
}

/* ---------------------------------------------------------------- a session the loop drops */

struct stop_net {
    struct sto_loop *loop;
};

static int stop_net_connect(void *arg, const char *owner, enum stk_policy policy,
                            uint64_t reservation, const struct sockaddr_in *dst,
                            struct stk_conn **out, char *err, size_t errlen)
{
    (void)arg, (void)owner, (void)policy, (void)reservation, (void)err, (void)errlen;
    return stk_host_connect(dst, 0, out);
}

/* The session lets go of its connection: stop the loop there, as a shutdown would. */
static void stop_net_release(void *arg, const char *owner, struct stk_conn *c, bool abort)
{
    struct stop_net *n = arg;

    (void)owner;
    stk_conn_close(c, abort);
    sto_loop_stop(n->loop);
}

/*
 * A session whose login fails is dropped by the loop soon after; when the loop stops
 * before that, the manager frees it, and nothing of it is left for the loop's end.
 */
CASE(mgr_session, login_fails_as_the_loop_stops)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof(sa);
    struct sto_session_req req = { .stack = STK_POLICY_HOST };
    struct sto_mgr_config cfg = { .call_timeout_ms = 5000 };
    struct runner r = { 0 };
    struct stop_net net;
    struct sto_result res;
    char id[STO_ID_MAX];
    struct sto_mgr *m;
    int lfd;

    quiet();
    /* a target that accepts the connection and never answers the login */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);
    runner_start(&r);
    net.loop = r.loop;
    cfg.net = (struct sto_mgr_net){ stop_net_connect, stop_net_release, &net };
    cfg.timeouts.login_ms = 100;
    m = sto_mgr_new(r.loop, &cfg);
    CHECK(m != NULL);
    snprintf(req.portal, sizeof(req.portal), "127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(req.target, sizeof(req.target), "iqn.2026-11.example:none");
    CHECK(sto_mgr_session_create(m, &req, id, &res) < 0);
    pthread_join(r.th, NULL);      /* stopped by the release */
    sto_mgr_free(m);
    sto_loop_free(r.loop);
    close(lfd);
}

#ifdef STANDALONE
int main(void)
{
    for (int i = 0; i < ncases; i++) {
        cases[i].fn();
        printf("[PASS] %s\n", cases[i].name);
    }
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: 0 | Crashing: 0\n", ncases,
           ncases);
    return 0;
}
#endif
