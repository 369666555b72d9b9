/*
 * loop.c - epoll loop, posted commands, calls other threads wait for, and timers for the
 * storage thread.
 */
#include "storage/loop.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/spin.h"
#include "storage/timer_heap.h"

#define LOOP_MAX_EVENTS 64

/* Queued work: fn(arg), or a call (fn NULL) that runs call->run. */
struct posted {
    void (*fn)(void *arg);
    void *arg;
    struct sto_call *call;
    struct posted *next;
};

/* sto_call.state */
enum {
    CALL_WAITING,      /* queued or running, its caller waits */
    CALL_DONE,         /* ended, its caller takes it back */
    CALL_ABANDONED,    /* its caller timed out: whoever ends it (or the loop's end) frees it */
};

struct sto_loop {
    int epfd;
    struct sto_watch wake;          /* eventfd for posted commands */
    pthread_mutex_t lock;           /* guards posted_head/tail and every sto_call.state */
    pthread_cond_t calls_cv;        /* a call ended (CLOCK_MONOTONIC) */
    struct posted *posted_head, *posted_tail;
    struct sto_watch *kicked;       /* singly linked list of kicked watches */
    struct sto_defer *deferred;     /* doubly linked: work for the iteration's end ... */
    struct sto_defer *running;      /* ... and what of it is being run now */
    struct timer_heap timers;       /* the armed timers, earliest first */
    _Atomic bool stopping;          /* set by sto_loop_stop from any thread */
    struct spin_poll spin;          /* busy-poll before sleeping (sto_loop_set_busy_poll) */
    struct epoll_event *spin_evs;   /* during a spin: where events go ... */
    int spin_n;                     /* ... and how many came */
};

uint64_t sto_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sto_now_ms(void)
{
    return sto_now_ns() / 1000000ull;
}

/*
 * A call that never ran because the loop is going away: freed when its caller gave up;
 * one whose caller still waits (a caller's bug: see sto_loop_call) is left to it.
 */
static void loop_drop_call(struct sto_loop *loop, struct sto_call *c)
{
    bool abandoned;

    pthread_mutex_lock(&loop->lock);
    abandoned = c->state == CALL_ABANDONED;
    pthread_mutex_unlock(&loop->lock);
    if (abandoned)
        c->free(c);
}

/* Run what was posted; with `ending` (sto_loop_free) calls are dropped, not run. */
static size_t loop_drain_posted(struct sto_loop *loop, bool ending)
{
    struct posted *p, *next;
    uint64_t v;
    size_t n = 0;

    if (read(loop->wake.fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: someone else drained it; the list below is the truth. */
    }
    pthread_mutex_lock(&loop->lock);
    p = loop->posted_head;
    loop->posted_head = loop->posted_tail = NULL;
    pthread_mutex_unlock(&loop->lock);
    for (; p; p = next) {
        next = p->next;
        if (!p->call)
            p->fn(p->arg);
        else if (ending)
            loop_drop_call(loop, p->call);
        else
            p->call->run(p->call);
        free(p);
        n++;
    }
    return n;
}

size_t sto_loop_drain(struct sto_loop *loop)
{
    return loop_drain_posted(loop, true);
}

static void loop_wake_cb(struct sto_watch *w, uint32_t revents)
{
    (void)revents;
    loop_drain_posted((struct sto_loop *)((char *)w - offsetof(struct sto_loop, wake)), false);
}

struct sto_loop *sto_loop_new(void)
{
    struct sto_loop *loop = calloc(1, sizeof(*loop));
    pthread_condattr_t ca;

    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto err_free;
    loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake.fd < 0)
        goto err_epoll;
    loop->wake.cb = loop_wake_cb;
    pthread_mutex_init(&loop->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&loop->calls_cv, &ca);
    pthread_condattr_destroy(&ca);
    spin_init(&loop->spin, 0, true);
    if (sto_loop_add(loop, &loop->wake, EPOLLIN) < 0)
        goto err_wake;
    return loop;

err_wake:
    pthread_cond_destroy(&loop->calls_cv);
    pthread_mutex_destroy(&loop->lock);
    close(loop->wake.fd);
err_epoll:
    close(loop->epfd);
err_free:
    free(loop);
    return NULL;
}

void sto_loop_free(struct sto_loop *loop)
{
    if (!loop)
        return;
    loop_drain_posted(loop, true);
    close(loop->wake.fd);
    close(loop->epfd);
    spin_fini(&loop->spin);
    pthread_cond_destroy(&loop->calls_cv);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

int sto_loop_add(struct sto_loop *loop, struct sto_watch *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };

    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
        return -errno;
    w->events = events;
    w->kicked = false;
    return 0;
}

int sto_loop_mod(struct sto_loop *loop, struct sto_watch *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };

    if (w->events == events)
        return 0;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return -errno;
    w->events = events;
    return 0;
}

void sto_loop_del(struct sto_loop *loop, struct sto_watch *w)
{
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    if (w->kicked) {
        struct sto_watch **pp = &loop->kicked;
        while (*pp && *pp != w)
            pp = &(*pp)->next_kicked;
        if (*pp)
            *pp = w->next_kicked;
        w->kicked = false;
    }
}

void sto_loop_kick(struct sto_loop *loop, struct sto_watch *w)
{
    if (w->kicked)
        return;
    w->kicked = true;
    w->next_kicked = loop->kicked;
    loop->kicked = w;
}

static void defer_push(struct sto_defer **head, struct sto_defer *d)
{
    d->head = head;
    d->prev = NULL;
    d->next = *head;
    if (d->next)
        d->next->prev = d;
    *head = d;
}

void sto_loop_defer(struct sto_loop *loop, struct sto_defer *d)
{
    if (!d->head)
        defer_push(&loop->deferred, d);
}

void sto_defer_cancel(struct sto_defer *d)
{
    if (!d->head)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        *d->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->head = NULL;
    d->next = d->prev = NULL;
}

/*
 * The work deferred until now. It moves to `running` first, so that work queued by a cb
 * waits for the next iteration (which then does not sleep), and each leaves that list
 * before its cb runs: a cb may free its owner, or cancel work still to run.
 */
static void loop_run_deferred(struct sto_loop *loop)
{
    struct sto_defer *d;

    while ((d = loop->deferred)) {
        sto_defer_cancel(d);
        defer_push(&loop->running, d);
    }
    while ((d = loop->running)) {
        sto_defer_cancel(d);
        d->cb(d);
    }
}

void sto_timer_arm(struct sto_loop *loop, struct sto_timer *t, uint64_t after_ms)
{
    sto_timer_disarm(loop, t);
    t->due_ms = sto_now_ms() + after_ms;
    t->armed = true;
    timer_heap_insert(&loop->timers, t);
}

void sto_timer_disarm(struct sto_loop *loop, struct sto_timer *t)
{
    if (!t->armed)
        return;
    timer_heap_remove(&loop->timers, t);
    t->armed = false;
}

/*
 * Queue fn(arg) or a call; a call is refused once the loop is stopping (it would only wait
 * out its timeout). Once queued the work is the loop's: a wake-up that cannot be written
 * (the counter is saturated) means the loop is awake anyway, never a failure.
 */
static int loop_enqueue(struct sto_loop *loop, void (*fn)(void *arg), void *arg,
                        struct sto_call *call)
{
    struct posted *p = malloc(sizeof(*p));
    uint64_t one = 1;

    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->call = call;
    p->next = NULL;
    pthread_mutex_lock(&loop->lock);
    if (call && loop->stopping) {
        pthread_mutex_unlock(&loop->lock);
        free(p);
        return -ESHUTDOWN;
    }
    if (loop->posted_tail)
        loop->posted_tail->next = p;
    else
        loop->posted_head = p;
    loop->posted_tail = p;
    pthread_mutex_unlock(&loop->lock);
    if (write(loop->wake.fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the loop will wake */
    }
    return 0;
}

int sto_loop_post(struct sto_loop *loop, void (*fn)(void *arg), void *arg)
{
    return loop_enqueue(loop, fn, arg, NULL);
}

/*
 * One lock (the loop's) orders the three ends of a call: the caller taking it back (DONE),
 * the caller giving up (ABANDONED), the loop ending it. Whichever comes second knows it
 * holds the last use of the call, so it is freed exactly once and never read after.
 */
enum sto_call_status sto_loop_call(struct sto_loop *loop, struct sto_call *c,
                                   uint32_t timeout_ms)
{
    struct timespec dl;

    c->loop = loop;
    c->state = CALL_WAITING;
    if (loop_enqueue(loop, NULL, NULL, c) < 0) {
        c->free(c);
        return STO_CALL_NOT_POSTED;
    }
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&loop->lock);
    while (c->state != CALL_DONE) {
        if (pthread_cond_timedwait(&loop->calls_cv, &loop->lock, &dl) == ETIMEDOUT &&
            c->state != CALL_DONE) {
            c->state = CALL_ABANDONED;
            pthread_mutex_unlock(&loop->lock);
            return STO_CALL_TIMED_OUT;
        }
    }
    pthread_mutex_unlock(&loop->lock);
    return STO_CALL_DONE;
}

void sto_call_done(struct sto_call *c)
{
    struct sto_loop *loop = c->loop;

    pthread_mutex_lock(&loop->lock);
    if (c->state == CALL_ABANDONED) {
        pthread_mutex_unlock(&loop->lock);
        c->free(c);
        return;
    }
    c->state = CALL_DONE;
    pthread_cond_broadcast(&loop->calls_cv);
    pthread_mutex_unlock(&loop->lock);
}

/* Milliseconds until the earliest timer, capped by `cap` (-1: no cap). */
static int loop_timeout(struct sto_loop *loop, int cap)
{
    struct sto_timer *t = timer_heap_first(&loop->timers);
    int64_t d;

    if (!t)
        return cap;
    d = (int64_t)(t->due_ms - sto_now_ms());
    if (d < 0)
        d = 0;
    if (d > INT_MAX)
        d = INT_MAX;
    return cap >= 0 && cap < d ? cap : (int)d;
}

/*
 * Run the timers due by now. Each runs disarmed and may arm itself or others again; one
 * armed again for "now" waits for the next pass once the millisecond has moved on.
 */
static void loop_run_timers(struct sto_loop *loop)
{
    uint64_t now = sto_now_ms();
    struct sto_timer *t;

    while ((t = timer_heap_first(&loop->timers)) && (int64_t)(t->due_ms - now) <= 0) {
        sto_timer_disarm(loop, t);
        t->cb(t);
    }
}

void sto_loop_set_busy_poll(struct sto_loop *loop, unsigned us)
{
    spin_fini(&loop->spin);
    spin_init(&loop->spin, us, true);
}

/* For the spin: any event ready now? (they are kept for the round) */
static bool loop_ready(void *arg)
{
    struct sto_loop *loop = arg;

    loop->spin_n = epoll_wait(loop->epfd, loop->spin_evs, LOOP_MAX_EVENTS, 0);
    return loop->spin_n != 0;
}

/* Wait for events: a spin first when that pays, then epoll_wait until the timeout. */
static int loop_wait(struct sto_loop *loop, struct epoll_event *evs, int timeout_ms)
{
    uint64_t t0;
    int n;

    if (timeout_ms == 0 || !loop->spin.max_ns)    /* no wait, or never a spin */
        return epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
    loop->spin_evs = evs;
    if (spin_for(&loop->spin, loop_ready, loop))
        return loop->spin_n;
    t0 = spin_now_ns();
    n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
    spin_slept(&loop->spin, spin_now_ns() - t0);
    return n;
}

int sto_loop_run_once(struct sto_loop *loop, int timeout_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n;

    if (loop->kicked || loop->deferred)
        timeout_ms = 0;
    timeout_ms = loop_timeout(loop, timeout_ms);
    n = loop_wait(loop, evs, timeout_ms);
    if (n < 0 && errno != EINTR)
        return -errno;
    for (int i = 0; i < n; i++) {
        struct sto_watch *w = evs[i].data.ptr;
        w->cb(w, evs[i].events);
    }
    while (loop->kicked) {
        struct sto_watch *w = loop->kicked;
        loop->kicked = w->next_kicked;
        w->kicked = false;
        w->cb(w, 0);
        if (w == loop->kicked) /* re-kicked itself: let epoll breathe first */
            break;
    }
    loop_run_timers(loop);
    loop_run_deferred(loop);
    return 0;
}

void sto_loop_run_until(struct sto_loop *loop, const bool *done)
{
    while (!*done && !loop->stopping)
        sto_loop_run_once(loop, -1);
}

void sto_loop_run(struct sto_loop *loop)
{
    while (!loop->stopping)
        sto_loop_run_once(loop, -1);
}

void sto_loop_stop(struct sto_loop *loop)
{
    uint64_t one = 1;

    pthread_mutex_lock(&loop->lock); /* a call queued from now on is refused */
    loop->stopping = true;
    pthread_mutex_unlock(&loop->lock);
    if (write(loop->wake.fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the loop is awake anyway */
    }
}
