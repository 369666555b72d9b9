/*
 * loop.h - the storage loop: one epoll thread that runs iSCSI sessions (and the NBD
 * server), with an eventfd-woken command queue for other threads and coarse (millisecond)
 * timers, kept in a heap (timer_heap.h).
 */
#ifndef TOEGW_STORAGE_LOOP_H
#define TOEGW_STORAGE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sto_loop;

/* An fd watched by the loop. Embedded in its owner; the owner outlives the registration. */
struct sto_watch {
    int fd;
    uint32_t events;                                 /* registered epoll mask */
    void (*cb)(struct sto_watch *w, uint32_t revents);
    bool kicked;                                     /* run cb again without sleeping */
    struct sto_watch *next_kicked;
};

/*
 * Work for the end of the current iteration, after its events, kicks and timers, run once
 * however often it was asked for: a connection's output that several events queued leaves
 * in one write (one send per batch, not per request). Embedded in its owner, which sets cb
 * and cancels it (sto_defer_cancel) before it is freed or moves to another loop.
 */
struct sto_defer {
    void (*cb)(struct sto_defer *d);
    struct sto_defer **head;                         /* the loop's list it is on, or NULL */
    struct sto_defer *next, *prev;
};

/* A one-shot timer, embedded in its owner. */
struct sto_timer {
    uint64_t due_ms;
    void (*cb)(struct sto_timer *t);
    bool armed;
    struct sto_timer *child, *next, *prev; /* the loop's, while armed (timer_heap.h) */
};

/* Returns NULL and sets errno on failure. Caller frees with sto_loop_free. */
struct sto_loop *sto_loop_new(void);
void sto_loop_free(struct sto_loop *loop);
/*
 * Busy-poll up to `us` microseconds before each sleep, adapting to the gaps seen and giving
 * way to other threads (common/spin.h); 0 (the default): never. Before the loop runs.
 */
void sto_loop_set_busy_poll(struct sto_loop *loop, unsigned us);

int sto_loop_add(struct sto_loop *loop, struct sto_watch *w, uint32_t events);
int sto_loop_mod(struct sto_loop *loop, struct sto_watch *w, uint32_t events);
void sto_loop_del(struct sto_loop *loop, struct sto_watch *w);
/* Ask for w->cb(w, 0) on the next iteration without waiting (data buffered in a transport). */
void sto_loop_kick(struct sto_loop *loop, struct sto_watch *w);

/* Queue d for the end of this iteration (the next one, outside an iteration); once. */
void sto_loop_defer(struct sto_loop *loop, struct sto_defer *d);
/* Take d off its loop's queue if it is on it. */
void sto_defer_cancel(struct sto_defer *d);
void sto_timer_arm(struct sto_loop *loop, struct sto_timer *t, uint64_t after_ms);
void sto_timer_disarm(struct sto_loop *loop, struct sto_timer *t);

/*
 * Thread-safe: run fn(arg) on the loop thread soon. 0 or -errno (-ENOMEM: not queued, fn
 * never runs). Work still queued when the loop is freed runs in sto_loop_free.
 */
int sto_loop_post(struct sto_loop *loop, void (*fn)(void *arg), void *arg);

/*
 * A call from another thread that waits for the loop's answer (sto_loop_call). Embedded in
 * the caller's object, which holds the arguments and the results. The caller sets `run`
 * and `free`; the other members are the loop's.
 */
struct sto_call {
    /* Loop thread: do the work, and end it (at once or later) with sto_call_done(c). */
    void (*run)(struct sto_call *c);
    /* Frees the object c is embedded in; the loop calls it for a call it was left with. */
    void (*free)(struct sto_call *c);
    struct sto_loop *loop;
    int state;                                       /* guarded by the loop's lock */
};

/*
 * What became of a call, and so who owns it now. After anything but STO_CALL_DONE the
 * caller never touches the call again.
 */
enum sto_call_status {
    STO_CALL_DONE,        /* it ran and ended: the caller's again (read results, free it) */
    STO_CALL_TIMED_OUT,   /* no end within the timeout: the loop's now; it frees the call
                             once the call ends, or in sto_loop_free if it never ran */
    STO_CALL_NOT_POSTED,  /* the loop did not take it (stopped, out of memory): freed */
};

/*
 * Thread-safe, never from the loop thread: queue c (c->run runs on the loop thread) and
 * wait up to timeout_ms for sto_call_done(c). No thread may be waiting in here when the
 * loop is freed.
 */
enum sto_call_status sto_loop_call(struct sto_loop *loop, struct sto_call *c,
                                   uint32_t timeout_ms);
/*
 * Loop thread: c's work is over (its results are in the caller's object). Wakes the caller,
 * or frees c when the caller gave up waiting. The loop side never touches c afterwards.
 */
void sto_call_done(struct sto_call *c);

/*
 * The loop no longer runs (its thread is gone): run the functions posted to it until now
 * (calls are dropped, as at free). Returns how many ran. For owners of several loops whose
 * work posts to each other: drain them all until none has work, then free.
 */
size_t sto_loop_drain(struct sto_loop *loop);

/* One iteration: wait at most timeout_ms (-1: until an event or timer). */
int sto_loop_run_once(struct sto_loop *loop, int timeout_ms);
/* Iterate until *done becomes true (set from a callback on this thread). */
void sto_loop_run_until(struct sto_loop *loop, const bool *done);
/* Iterate until sto_loop_stop is called (from any thread). */
void sto_loop_run(struct sto_loop *loop);
void sto_loop_stop(struct sto_loop *loop);

uint64_t sto_now_ms(void);
uint64_t sto_now_ns(void);

#endif
