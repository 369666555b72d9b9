/*
 * conn.c - the hardware-driver interface: TCP connections on the adapter, seen by the
 * storage loop as struct stk_conn (common/transport.h).
 *
 * Per connection: a receive queue the firmware fills from lwIP's recv callback (rxq.h:
 * small segments copied into a ring, large ones kept by reference and copied once, by the
 * consumer, or read in place), a send queue (txq.h) the consumer fills, copying into its
 * ring or putting its own buffers by reference, that lwIP sends from in place (no-copy
 * tcp_write; conn_tx.c: memory is freed only once the peer acknowledged it and lwIP let go
 * of the segment), and an eventfd.
 *
 * Flow control is TCP's own: tcp_recved is called only for bytes the consumer has taken
 * out of the receive queue, so the advertised window is what the queue can still take and
 * the peer stops when the consumer does. The queue's ring is as large as TCP_WND, so lwIP
 * can never hand us more than fits; if it ever did, recv returns ERR_MEM and lwIP keeps the
 * data. Receive references the consumer finished are freed here, on the firmware thread
 * (toe_rxq_reclaim: before each delivery, on each kick and each poll).
 *
 * Doorbells: a consumer that produced data or freed receive space puts the conn on the
 * device's kick list (once until served) and wakes the firmware only if it sleeps. The
 * firmware signals the eventfd only when the consumer said it waits (read or writev
 * returned -EAGAIN), or on a state change. Both sides avoid a syscall per operation.
 */
#include "toe_emu/toe_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Tell lwIP about consumed receive space once this much accumulated (or the ring is empty). */
#define RX_REPORT_BYTES (TOE_RX_RING_BYTES / 4)

static const struct stk_conn_ops toe_conn_ops;

static struct toe_conn *impl(struct stk_conn *sc)
{
    return sc->impl;
}

/* ---- consumer side ------------------------------------------------------------------ */

/* Ask the firmware to look at `c` (never after the consumer closed it). */
void toe_conn_kick(struct toe_conn *c)
{
    struct toe_dev *dev = c->dev;

    if (!dev)
        return;                    /* orphaned: the adapter is gone */
    if (atomic_exchange(&c->kicked, 1))
        return;
    struct toe_conn *head = atomic_load(&dev->kick_head);
    do {
        c->kick_next = head;
    } while (!atomic_compare_exchange_weak(&dev->kick_head, &head, c));
    toe_dev_wake(dev);
}

static void drain_fd(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing was signalled */
    }
}

/* After the consumer took bytes out of rx: let lwIP reopen the window when it matters. */
static void rx_consumed(struct toe_conn *c)
{
    uint64_t tail = toe_rxq_taken(&c->rx);
    uint64_t rep = atomic_load_explicit(&c->rx_reported, memory_order_relaxed);

    if (tail - rep >= RX_REPORT_BYTES)
        toe_conn_kick(c);
}

/*
 * Read (copy up to `len` bytes to `buf`) or, when `data` is set, peek (point *data at the
 * next contiguous bytes, leaving them in place). Same answers either way: a count, 0 at
 * end of stream, the connection's error, or -EAGAIN with the signal armed.
 */
static ssize_t conn_take(struct stk_conn *sc, void *buf, size_t len, const void **data)
{
    struct toe_conn *c = impl(sc);

    /* the consumer's thread: a consumer that only reads from now on gives it back too */
    if (atomic_load_explicit(&c->tx_idle, memory_order_relaxed))
        toe_conn_tx_trim(c);
    for (int pass = 0;; pass++) {
        /* Flags first: data published before them is then visible in the ring. */
        bool eof = atomic_load_explicit(&c->eof, memory_order_acquire);
        int err = atomic_load_explicit(&c->err, memory_order_acquire);
        size_t n = data ? toe_rxq_peek(&c->rx, data) : toe_rxq_read(&c->rx, buf, len);

        if (n) {
            if (!data) {
                sc->bytes_in += n;
                rx_consumed(c);
            }
            return (ssize_t)n;
        }
        if (eof)
            return 0;
        if (err)
            return err;
        if (pass)
            return -EAGAIN;
        drain_fd(sc->fd);
        atomic_store_explicit(&c->rx_armed_cpu, sched_getcpu(), memory_order_relaxed);
        atomic_store(&c->rx_armed, 1);
        atomic_thread_fence(memory_order_seq_cst);
    }
}

static ssize_t conn_read(struct stk_conn *sc, void *buf, size_t len)
{
    return len ? conn_take(sc, buf, len, NULL) : 0;
}

ssize_t toe_conn_peek(struct stk_conn *sc, const void **data)
{
    return conn_take(sc, NULL, 0, data);
}

void toe_conn_consume(struct stk_conn *sc, size_t n)
{
    struct toe_conn *c = impl(sc);

    sc->bytes_in += toe_rxq_consume(&c->rx, n);
    rx_consumed(c);
}

/* A buffer offered by reference (toe_conn_send_ref). */
struct offer_ref {
    const void *buf;
    size_t len;
    void (*done)(void *arg);
    void *arg;
};

/*
 * Offer `total` bytes to the send queue: `iov` copied into its ring (as much as fits), or
 * `ref`'s buffer by reference (all of it or nothing). Returns the count offered, 0 for an
 * empty offer, the connection's error, -EPIPE after shutdown, or -EAGAIN with the signal
 * armed.
 */
static ssize_t conn_offer(struct stk_conn *sc, const struct iovec *iov, int iovcnt,
                          size_t total, const struct offer_ref *ref)
{
    struct toe_conn *c = impl(sc);

    if (atomic_load_explicit(&c->tx_idle, memory_order_relaxed))
        toe_conn_tx_trim(c);
    for (int pass = 0;; pass++) {
        int err = atomic_load_explicit(&c->err, memory_order_acquire);

        if (err)
            return err;
        if (atomic_load(&c->req) & TOE_REQ_SHUTDOWN)
            return -EPIPE;
        if (total == 0)
            return 0;

        size_t n = !ref ? toe_txq_writev(&c->tx, iov, iovcnt)
                 : toe_txq_put_ref(&c->tx, ref->buf, ref->len, ref->done, ref->arg) ? ref->len
                 : 0;
        if (n) {
            sc->bytes_out += n;
            toe_conn_kick(c);
            return (ssize_t)n;
        }
        if (pass)
            return -EAGAIN;
        drain_fd(sc->fd);
        atomic_store(&c->tx_armed, 1);
        atomic_thread_fence(memory_order_seq_cst);
    }
}

static ssize_t conn_writev(struct stk_conn *sc, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return conn_offer(sc, iov, iovcnt, total, NULL);
}

ssize_t toe_conn_send_ref(struct stk_conn *sc, const void *buf, size_t len,
                          void (*done)(void *arg), void *arg)
{
    struct offer_ref ref = { .buf = buf, .len = len, .done = done, .arg = arg };

    if (len == 0 || !done)
        return -EINVAL;
    return conn_offer(sc, NULL, 0, len, &ref);
}

static int conn_connect_result(struct stk_conn *sc)
{
    struct toe_conn *c = impl(sc);

    switch (atomic_load_explicit(&c->state, memory_order_acquire)) {
    case TOE_CS_CONNECTING:
        return -EINPROGRESS;
    case TOE_CS_ESTABLISHED:
        return 0;
    default:
        return atomic_load(&c->err);
    }
}

static uint32_t conn_events(struct stk_conn *sc, bool want_read, bool want_write)
{
    (void)sc;
    (void)want_read;
    (void)want_write;
    return EPOLLIN;
}

static bool conn_pending(struct stk_conn *sc)
{
    return toe_rxq_used(&impl(sc)->rx) > 0;
}

static int conn_shutdown(struct stk_conn *sc)
{
    struct toe_conn *c = impl(sc);
    int err = atomic_load(&c->err);

    if (err)
        return err == -ENETDOWN ? err : -ENOTCONN;
    atomic_fetch_or(&c->req, TOE_REQ_SHUTDOWN);
    toe_conn_kick(c);
    return 0;
}

/* A receive reference the firmware frees (lwIP's pbuf_free, on its thread). */
static void drop_pbuf(struct pbuf *p)
{
    pbuf_free(p);
}

/* `drop`: drop_pbuf on the firmware thread; toe_netif_rxbuf_free_raw once it is gone. */
static void conn_release_memory(struct toe_conn *c, void (*drop)(struct pbuf *p))
{
    toe_rxq_fini(&c->rx, drop);
    toe_txq_fini(&c->tx);
    pthread_mutex_destroy(&c->sig_lock);
    free(c);
}

/*
 * The close request travels on its own list, pushed exactly once: from the moment the
 * firmware can see it, it may free `c`, so the push is the consumer's last access to `c`.
 * Everything the firmware needs to know about the close (close_abort) is written before
 * the push, so a kick that is still queued never sees half a close. The adapter's slot is
 * given back here, not when lwIP lets go of the pcb: the rest of the close (sending what is
 * queued, FIN, TIME_WAIT) is the adapter's business, and the owner may reconnect at once.
 */
static void conn_close(struct stk_conn *sc, bool abort)
{
    struct toe_conn *c = impl(sc);
    struct toe_dev *dev;

    pthread_mutex_lock(&c->sig_lock);
    c->user_closed = true;
    dev = c->dev;
    pthread_mutex_unlock(&c->sig_lock);
    close(sc->fd);
    sc->fd = -1;
    if (!dev) {
        /* The adapter is gone (toe_dev_free); nobody else references `c`. */
        conn_release_memory(c, toe_netif_rxbuf_free_raw);
        return;
    }
    c->close_abort = abort;
    atomic_fetch_sub(&dev->nconns, 1);

    struct toe_conn *head = atomic_load(&dev->close_head);
    do {
        c->close_next = head;
    } while (!atomic_compare_exchange_weak(&dev->close_head, &head, c));
    toe_dev_wake(dev);
}

static const struct stk_conn_ops toe_conn_ops = {
    .read = conn_read,
    .writev = conn_writev,
    .connect_result = conn_connect_result,
    .events = conn_events,
    .pending = conn_pending,
    .shutdown = conn_shutdown,
    .close = conn_close,
};

bool toe_conn_is_toe(const struct stk_conn *c)
{
    return c && c->ops == &toe_conn_ops;
}

uint32_t toe_conn_events(const struct stk_conn *sc)
{
    struct toe_conn *c = sc->impl;
    uint32_t ev = 0;
    int st = atomic_load_explicit(&c->state, memory_order_acquire);
    bool eof = atomic_load_explicit(&c->eof, memory_order_acquire);
    uint64_t used = toe_rxq_used(&c->rx);

    if (st == TOE_CS_ESTABLISHED || atomic_load(&c->err) == -ECONNRESET)
        ev |= TOE_EV_CONNECTED;    /* reset after it was established */
    if (used)
        ev |= TOE_EV_READABLE;
    if (st == TOE_CS_ESTABLISHED && toe_txq_space(&c->tx) > 0)
        ev |= TOE_EV_WRITABLE;
    if (eof && !used)
        ev |= TOE_EV_CLOSED;
    if (atomic_load(&c->reset))
        ev |= TOE_EV_RESET;
    if (st == TOE_CS_FAILED)
        ev |= TOE_EV_ERROR;
    return ev;
}

int toe_conn_error(const struct stk_conn *sc)
{
    struct toe_conn *c = sc->impl;

    return atomic_load(&c->err);
}

/* ---- firmware side ------------------------------------------------------------------ */

/*
 * The one place a conn is freed. Three things reference it: its consumer (until the
 * firmware took it off the close list: close_seen), lwIP (while c->pcb is set, as the
 * pcb's callback argument) and the kick list (while kicked); while a receive signal is
 * deferred (rx_sig_pending) the flush after the batch reaps it. Every firmware step that may
 * drop one of them ends here, and the last one frees; the caller must not touch `c` after.
 * Nothing else frees a conn, so a conn reached from both lists is freed exactly once.
 */
void toe_conn_reap(struct toe_conn *c)
{
    struct toe_dev *dev = c->dev;

    if (!c->close_seen || c->pcb || atomic_load(&c->kicked) || c->rx_sig_pending)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (dev->conns == c)
        dev->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    conn_release_memory(c, drop_pbuf);
}

/* The connection failed (pcb already gone or detached): tell the consumer. */
static void conn_fail(struct toe_conn *c, int err, bool reset)
{
    struct toe_dev *dev = c->dev;

    c->pcb = NULL;
    if (c->was_established)
        dev->cnt.conns_reset++;
    else
        dev->cnt.conns_failed++;
    atomic_store(&c->reset, reset);
    atomic_store_explicit(&c->err, err, memory_order_release);
    atomic_store_explicit(&c->state, TOE_CS_FAILED, memory_order_release);
    atomic_store(&c->rx_armed, 0);
    atomic_store(&c->tx_armed, 0);
    toe_conn_signal(c);
}

static void detach_pcb(struct tcp_pcb *pcb)
{
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
}

static void attach_pcb(struct tcp_pcb *pcb, struct toe_conn *c);

/* Abort the pcb without calling our err callback. */
static void abort_pcb(struct toe_conn *c)
{
    struct tcp_pcb *pcb = c->pcb;

    if (!pcb)
        return;
    c->pcb = NULL;
    detach_pcb(pcb);
    tcp_abort(pcb);
    toe_conn_tx_abandon(c);
}

/* Send what the consumer offered; a refusal is acted on at the next step (conn_step). */
static void tx_pump(struct toe_conn *c)
{
    toe_conn_tx_pump(c);
    if (c->pump_err)
        toe_conn_kick(c);
}

/* Give lwIP back the receive window the consumer freed. */
static void rx_report(struct toe_conn *c)
{
    uint64_t tail = toe_rxq_taken(&c->rx);
    uint64_t rep = atomic_load_explicit(&c->rx_reported, memory_order_relaxed);

    while (c->pcb && rep < tail) {
        uint64_t n = tail - rep;

        if (n > 0xffff)
            n = 0xffff;
        tcp_recved(c->pcb, (u16_t)n);
        rep += n;
    }
    atomic_store_explicit(&c->rx_reported, rep, memory_order_relaxed);
}

/*
 * Move the connection forward: window, refused data, sending, FIN, final release of the
 * pcb. Runs from the kick and close lists only, never inside an lwIP callback (it may abort
 * or close the pcb). It never frees `c`: conn_progress does that afterwards, if due.
 */
static void conn_step(struct toe_conn *c)
{
    unsigned req = atomic_load(&c->req);

    if (!c->pcb)
        return;
    if (c->pump_err) {
        abort_pcb(c);
        conn_fail(c, -EIO, false);
        return;
    }
    if (c->close_seen && (c->close_abort || atomic_load(&c->state) == TOE_CS_CONNECTING ||
                          toe_rxq_used(&c->rx) > 0 || c->pcb->refused_data)) {
        /* Closed with a reset, or with unread data: reset, as a host socket does. */
        abort_pcb(c);
        return;
    }
    toe_rxq_reclaim(&c->rx, drop_pbuf);
    rx_report(c);
    if (c->pcb->refused_data && !toe_tcp_redeliver_refused(c->pcb))
        return;
    if (!c->pcb)
        return;
    tx_pump(c);
    if (!c->pcb || atomic_load(&c->state) != TOE_CS_ESTABLISHED)
        return;
    if (((req & TOE_REQ_SHUTDOWN) || c->close_seen) && toe_txq_unsent(&c->tx) == 0) {
        if (!c->fin_queued) {
            if (tcp_shutdown(c->pcb, 0, 1) != ERR_OK)
                return;            /* out of memory: the poll callback retries */
            c->fin_queued = true;
        }
        if (c->close_seen && c->tx.released == c->tx.queued) {
            /* Everything acknowledged: lwIP finishes the close on its own. */
            struct tcp_pcb *pcb = c->pcb;

            detach_pcb(pcb);
            if (tcp_close(pcb) != ERR_OK) {
                attach_pcb(pcb, c);
                return;
            }
            c->pcb = NULL;
        }
    }
}

static void conn_progress(struct toe_conn *c)
{
    conn_step(c);
    toe_conn_reap(c);
}

/* From a callback: have conn_progress run soon, outside lwIP. */
static void conn_defer(struct toe_conn *c)
{
    toe_conn_kick(c);
}

/* Firmware: serve a conn taken off the kick list (its kicked flag already cleared). */
void toe_conn_service(struct toe_conn *c)
{
    conn_progress(c);
}

/*
 * Firmware: act on every close pushed so far. Run before each command and each round of
 * kicks, so that a close is acted on before anything its consumer queued after it: a
 * toe_connect that follows a close then finds an aborted connection's port free.
 */
void toe_conn_run_closes(struct toe_dev *dev)
{
    struct toe_conn *c = atomic_exchange(&dev->close_head, NULL), *next;

    for (; c; c = next) {
        next = c->close_next;
        c->close_seen = true;
        conn_progress(c);
    }
}

static err_t recv_cb(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct toe_conn *c = arg;

    (void)err;
    if (!c || c->close_seen) {
        if (p) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    if (!p) {
        atomic_store_explicit(&c->eof, true, memory_order_release);
        atomic_store(&c->rx_armed, 0);
        toe_conn_signal(c);
        return ERR_OK;
    }
    toe_rxq_reclaim(&c->rx, drop_pbuf);

    u16_t len = p->tot_len;
    int taken = toe_rxq_put(&c->rx, p);
    if (taken < 0)
        return ERR_MEM;            /* lwIP keeps it; conn_progress hands it back */
    if (!taken)
        pbuf_free(p);              /* copied */
    c->bytes_in += len;
    c->rx_trimmed = false;
    toe_conn_rx_ready(c, len);
    return ERR_OK;
}

static err_t sent_cb(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct toe_conn *c = arg;

    (void)pcb;
    if (!c)
        return ERR_OK;
    c->bytes_out += len;
    toe_conn_tx_reclaim(c);
    tx_pump(c);
    if ((atomic_load(&c->req) & TOE_REQ_SHUTDOWN) || c->close_seen)
        conn_defer(c);
    return ERR_OK;
}

static void err_cb(void *arg, err_t err)
{
    struct toe_conn *c = arg;
    int e;

    if (!c)
        return;
    switch (err) {
    case ERR_RST:
        e = c->was_established ? -ECONNRESET : -ECONNREFUSED;
        break;
    case ERR_ABRT:
        e = -ETIMEDOUT;            /* lwIP gave up retransmitting (our aborts detach first) */
        break;
    case ERR_CLSD:
        e = -ECONNRESET;
        break;
    default:
        e = -EIO;
        break;
    }
    conn_fail(c, e, err == ERR_RST);
    toe_conn_tx_abandon(c);            /* lwIP freed the pcb's segments */
    toe_conn_reap(c);                  /* lwIP frees the pcb and never calls us again */
}

/*
 * While connecting, every coarse tick (500 ms): a connect nothing answers (no route beyond
 * the wire, no ARP reply) fails after the connect timeout, long before lwIP's SYN retries
 * would, so that the broker can place the owner's next try on the host stack. Once
 * established, every 2 s: idle rings give their pages back (conn_idle.c).
 */
static err_t poll_cb(void *arg, struct tcp_pcb *unused)
{
    (void)unused;
    struct toe_conn *c = arg;

    if (!c)
        return ERR_OK;
    unsigned limit = c->dev->cfg.connect_timeout_ms;
    if (!c->was_established && limit && (uint32_t)(sys_now() - c->connect_start_ms) >= limit) {
        abort_pcb(c); /* detached first: err_cb does not run */
        conn_fail(c, -EHOSTUNREACH, false);
        toe_conn_reap(c);
        return ERR_ABRT;
    }
    if (c->was_established) {
        toe_rxq_reclaim(&c->rx, drop_pbuf);
        toe_conn_idle_poll(c);
    }
    conn_defer(c);
    return ERR_OK;
}

static err_t connected_cb(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct toe_conn *c = arg;

    (void)err;
    if (!c)
        return ERR_OK;
    c->was_established = true;
    c->dev->cnt.conns_established++;
    /*
     * Seed the RTT estimator from the handshake, as Linux does: lwIP starts every connection
     * at its 3 s initial RTO and takes no RTT sample during its first timer tick, so a frame
     * lost early on a sub-millisecond wire would stall the connection for seconds. Two slow
     * ticks (200 ms, Linux's minimum RTO) is what the handshake says here.
     */
    toe_tcp_seed_rtt(pcb, 200);
    tcp_poll(pcb, poll_cb, 4);     /* the connect deadline is over: the usual 2 s poll */
    atomic_store_explicit(&c->state, TOE_CS_ESTABLISHED, memory_order_release);
    toe_conn_signal(c);
    tx_pump(c);
    if (atomic_load(&c->req) || c->close_seen)
        conn_defer(c);
    return ERR_OK;
}

void toe_conn_fail_all(struct toe_dev *dev, int err)
{
    struct toe_conn *c = dev->conns, *next;

    for (; c; c = next) {
        next = c->next;
        if (!c->pcb)
            continue;
        abort_pcb(c);
        conn_fail(c, err, false);
        toe_conn_reap(c);
    }
}

/* A 4-tuple of the adapter's, to find its pcb. */
struct tuple {
    const ip_addr_t *local, *remote;
    u16_t lport, rport;
};

/* toe_tcp_for_each: 1 when the tuple's pcb was reaped, -1 when it is kept, else 0. */
static int reap_tuple(struct tcp_pcb *p, void *arg)
{
    const struct tuple *t = arg;
    struct toe_conn *c = p->callback_arg;

    if (p->local_port != t->lport || p->remote_port != t->rport ||
        !ip_addr_cmp(&p->local_ip, t->local) || !ip_addr_cmp(&p->remote_ip, t->remote))
        return 0;
    if (!c) {
        tcp_abort(p);
        return 1;
    }
    if (!c->close_seen)
        return -1;
    abort_pcb(c);
    toe_conn_reap(c);
    return 1;
}

/*
 * A pcb of ours blocking exactly this 4-tuple. The broker hands a port out again only after
 * its previous connection was released, so such a pcb belongs to a connection its consumer
 * already closed: lwIP's leftover of a finished close (FIN_WAIT, TIME_WAIT; detached) or a
 * closed conn still sending its last bytes. The port's owner wants it now, so the old one
 * is reset, as a host stack reuses a TIME_WAIT tuple. A conn still open keeps its pcb
 * (-EADDRINUSE). True when a pcb was reaped.
 */
static bool reap_released(const ip_addr_t *local, u16_t lport, const ip_addr_t *remote,
                          u16_t rport)
{
    struct tuple t = { .local = local, .remote = remote, .lport = lport, .rport = rport };

    return toe_tcp_for_each(reap_tuple, &t) > 0;
}

static void attach_pcb(struct tcp_pcb *pcb, struct toe_conn *c)
{
    tcp_arg(pcb, c);
    tcp_recv(pcb, recv_cb);
    tcp_sent(pcb, sent_cb);
    tcp_err(pcb, err_cb);
    tcp_poll(pcb, poll_cb, 4);
}

struct start_args {
    struct toe_conn *c;
    struct sockaddr_in dst;
    uint16_t local_port;
};

static int lwip_to_errno(err_t e)
{
    switch (e) {
    case ERR_MEM:
    case ERR_BUF:
        return -ENOMEM;
    case ERR_RTE:
        return -ENETUNREACH;
    case ERR_USE:
        return -EADDRINUSE;
    case ERR_ISCONN:
        return -EISCONN;
    case ERR_VAL:
    case ERR_ARG:
        return -EINVAL;
    default:
        return -EIO;
    }
}

int toe_conn_start(struct toe_dev *dev, void *arg)
{
    struct start_args *a = arg;
    struct toe_conn *c = a->c;
    ip_addr_t local, remote;
    struct tcp_pcb *pcb;
    err_t e;

    if (!atomic_load(&dev->link_up))
        return -ENETDOWN;
    pcb = tcp_new();
    if (!pcb)
        return -ENOMEM;
    ip_set_option(pcb, SOF_REUSEADDR);
    ip_addr_copy(local, dev->netif.ip_addr);
    ip_addr_set_ip4_u32(&remote, a->dst.sin_addr.s_addr);
    e = tcp_bind(pcb, &local, a->local_port);
    if (e != ERR_OK)
        goto fail;
    attach_pcb(pcb, c);
    tcp_poll(pcb, poll_cb, 1);     /* every tick until established: the connect deadline */
    c->connect_start_ms = sys_now();
    tcp_nagle_disable(pcb);
    e = tcp_connect(pcb, &remote, ntohs(a->dst.sin_port), connected_cb);
    if (e == ERR_USE && reap_released(&local, a->local_port, &remote, ntohs(a->dst.sin_port)))
        e = tcp_connect(pcb, &remote, ntohs(a->dst.sin_port), connected_cb);
    if (e != ERR_OK)
        goto fail;
    c->pcb = pcb;
    c->next = dev->conns;
    if (dev->conns)
        dev->conns->prev = c;
    dev->conns = c;
    dev->cnt.conns_opened++;
    return 0;

fail:
    detach_pcb(pcb);
    tcp_abort(pcb);
    return lwip_to_errno(e);
}

int toe_connect(struct toe_dev *dev, const struct sockaddr_in *dst, uint16_t local_port,
                struct stk_conn **out)
{
    struct toe_conn *c;
    unsigned n;
    int rc;
    char addr[INET_ADDRSTRLEN];

    if (!dst || dst->sin_family != AF_INET || dst->sin_port == 0 || local_port == 0) {
        toe_err_set("toe: connect needs an IPv4 destination with a port and a local port");
        return -EINVAL;
    }
    inet_ntop(AF_INET, &dst->sin_addr, addr, sizeof(addr));
    if (!atomic_load(&dev->link_up)) {
        toe_err_set("toe: cannot connect to %s:%u: the adapter's link is down", addr,
                    ntohs(dst->sin_port));
        return -ENETDOWN;
    }
    n = atomic_load(&dev->nconns);
    do {
        if (n >= dev->cfg.max_conns) {
            atomic_fetch_add(&dev->refused_full, 1);
            toe_err_set("toe: cannot connect to %s:%u: the adapter is full (%u connections)",
                        addr, ntohs(dst->sin_port), dev->cfg.max_conns);
            return -EMFILE;
        }
    } while (!atomic_compare_exchange_weak(&dev->nconns, &n, n + 1));

    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto fail_slot;
    }
    c->dev = dev;
    c->rx_armed_cpu = -1;
    pthread_mutex_init(&c->sig_lock, NULL);
    rc = toe_rxq_init(&c->rx, TOE_RX_RING_BYTES);
    if (rc < 0)
        goto fail_conn;
    rc = toe_txq_init(&c->tx, TOE_TX_RING_BYTES);
    if (rc < 0)
        goto fail_conn;
    c->stk.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->stk.fd < 0) {
        rc = -errno;
        goto fail_conn;
    }
    c->stk.ops = &toe_conn_ops;
    c->stk.stack = STK_STACK_TOE;
    c->stk.local.sin_family = AF_INET;
    c->stk.local.sin_addr = dev->cfg.addr;
    c->stk.local.sin_port = htons(local_port);
    c->stk.remote = *dst;
    c->stk.impl = c;
    atomic_init(&c->state, TOE_CS_CONNECTING);

    struct start_args a = { .c = c, .dst = *dst, .local_port = local_port };
    rc = toe_dev_call(dev, toe_conn_start, &a);
    if (rc < 0)
        goto fail_fd;
    *out = &c->stk;
    return 0;

fail_fd:
    close(c->stk.fd);
fail_conn:
    conn_release_memory(c, drop_pbuf);   /* nothing held yet */
fail_slot:
    atomic_fetch_sub(&dev->nconns, 1);
    toe_err_set("toe: cannot connect to %s:%u from port %u: %s", addr, ntohs(dst->sin_port),
                local_port, strerror(-rc));
    return rc;
}

/*
 * At toe_dev_free, after the firmware thread ended (every pcb is already aborted): serve the
 * last kicks and closes, which frees every closed conn, then hand each conn its consumer
 * still holds over to that consumer alone.
 */
void toe_conn_orphan_all(struct toe_dev *dev)
{
    struct toe_conn *c = atomic_exchange(&dev->kick_head, NULL), *next;

    for (; c; c = next) {
        next = c->kick_next;
        atomic_store(&c->kicked, 0);
        toe_conn_service(c);
    }
    toe_conn_run_closes(dev);
    for (c = dev->conns; c; c = next) {
        next = c->next;
        pthread_mutex_lock(&c->sig_lock);
        bool closed = c->user_closed;
        c->dev = NULL;
        pthread_mutex_unlock(&c->sig_lock);
        if (closed)
            conn_release_memory(c, toe_netif_rxbuf_free_raw); /* closed while we stopped */
        atomic_fetch_sub(&dev->nconns, 1);
    }
    dev->conns = NULL;
}
