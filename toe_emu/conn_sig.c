/*
 * conn_sig.c - the firmware's signals to a consumer (its conn's eventfd).
 *
 * A signal is written only when the consumer armed it (its read or writev found nothing
 * to do). New receive data found while the firmware reads a batch of frames off the TAP is
 * signalled once, after the batch: a consumer woken by the first frame of a burst would
 * otherwise read it, arm again and be woken again by the next, one wakeup (and one
 * eventfd write, epoll_wait and read) per frame instead of per burst.
 *
 * A large segment (a TSO super-frame) for a consumer that armed its signal on another CPU
 * than the firmware's is signalled at once: its copy out is worth a wakeup of its own, and
 * the consumer copying it while the firmware reads the next frame off the TAP keeps a
 * 128 KiB reply at one in flight from waiting for both copies in turn. A consumer on the
 * firmware's own CPU could only take that CPU from it: it waits for the batch's end.
 */
#include "toe_emu/toe_int.h"

#include <sched.h>
#include <unistd.h>

void toe_conn_signal(struct toe_conn *c)
{
    static const uint64_t one = 1;

    pthread_mutex_lock(&c->sig_lock);
    if (!c->user_closed && write(c->stk.fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the fd is readable anyway */
    }
    pthread_mutex_unlock(&c->sig_lock);
}

void toe_conn_notify(struct toe_conn *c, _Atomic int *armed)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(armed, memory_order_relaxed) && atomic_exchange(armed, 0))
        toe_conn_signal(c);
}

/* A super-frame (the size the receive queue keeps by reference) whose consumer armed its
 * signal on another CPU than this, the firmware's. */
static bool for_another_cpu(const struct toe_conn *c, size_t len)
{
    return len >= TOE_RXQ_REF_MIN &&
           atomic_load_explicit(&c->rx_armed_cpu, memory_order_relaxed) != sched_getcpu();
}

void toe_conn_rx_ready(struct toe_conn *c, size_t len)
{
    struct toe_dev *dev = c->dev;

    if (!dev || !dev->rx_batching || for_another_cpu(c, len)) {
        toe_conn_notify(c, &c->rx_armed);
        return;
    }
    if (c->rx_sig_pending)
        return;
    c->rx_sig_pending = true;
    c->sig_next = dev->sig_head;
    dev->sig_head = c;
}

/* After the batch; a conn lwIP let go of meanwhile is freed here (conn_reap waited). */
void toe_conn_rx_flush(struct toe_dev *dev)
{
    struct toe_conn *c = dev->sig_head, *next;

    dev->sig_head = NULL;
    dev->rx_batching = false;
    for (; c; c = next) {
        next = c->sig_next;
        c->rx_sig_pending = false;
        toe_conn_notify(c, &c->rx_armed);
        toe_conn_reap(c);
    }
}
