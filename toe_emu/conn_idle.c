/*
 * conn_idle.c - an idle connection's rings give their pages back.
 *
 * Each ring is 2 MiB of address space mapped lazily; traffic that wraps around it leaves
 * all of it resident, per connection, after the traffic stops. The firmware looks at each
 * established connection every 2 s (conn.c poll_cb):
 *  - the receive ring, written by the firmware alone, is trimmed there when it is empty and
 *    nothing arrived since the previous look;
 *  - the send ring is written by the consumer, so trimming it from the firmware would race a
 *    write: the firmware only flags it (tx_idle) when it is drained and nothing was
 *    acknowledged since the previous look, and the consumer trims it in its next read or
 *    write (both run on the consumer's thread). The flag wakes a consumer that waits to
 *    read, so one that never writes again (a program that only listens now, or a connection
 *    idle both ways) gives the pages back too: one wakeup whose read finds nothing.
 */
#include "toe_emu/toe_int.h"

#include <arpa/inet.h>

#include "common/log.h"

/* Bytes through the send ring since it was last flagged before it is flagged again. */
#define TX_TRIM_MIN (256u * 1024)

static void say_given_back(const struct toe_conn *c, const char *which)
{
    log_debug("toe", "connection from port %u: idle %s ring's pages given back",
              ntohs(c->stk.local.sin_port), which);
}

void toe_conn_idle_poll(struct toe_conn *c)
{
    if (!c->rx_trimmed && c->bytes_in == c->rx_idle_mark && !toe_rxq_used(&c->rx)) {
        toe_rxq_trim(&c->rx);
        c->rx_trimmed = true;
        say_given_back(c, "receive");
    }
    c->rx_idle_mark = c->bytes_in;

    /* drained: everything acknowledged, and (tx_reclaim) no queued segment refers to it */
    if (c->bytes_out == c->tx_idle_mark && c->tx.queued - c->tx_trim_mark >= TX_TRIM_MIN &&
        toe_txq_used(&c->tx) == 0) {
        atomic_store_explicit(&c->tx_idle, true, memory_order_relaxed);
        c->tx_trim_mark = c->tx.queued;
        toe_conn_notify(c, &c->rx_armed);
    }
    c->tx_idle_mark = c->bytes_out;
}

/*
 * The consumer is the ring's only writer, so here (in its read or writev) nothing can write
 * it while it is trimmed; it trims only what is still drained (it may have written since
 * the flag was set).
 */
void toe_conn_tx_trim(struct toe_conn *c)
{
    atomic_store_explicit(&c->tx_idle, false, memory_order_relaxed);
    if (toe_txq_trim(&c->tx))
        say_given_back(c, "send");
}
