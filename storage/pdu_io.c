/*
 * pdu_io.c - the session's connection: connecting, the transmit queue and the receive
 * framing. PDUs queue as (header, data, trailer) buffers of the gather-write queue
 * (wire.h) and leave in batches with one gather write; write data is sent from the
 * caller's buffer, never copied. Received PDUs are framed out of a read-ahead buffer;
 * large Data-In segments are read straight into the command's buffer. The receive loop
 * hands each PDU to its handler (ffp.c) and applies what the handler asks of the
 * connection (reconnect, fail, close) only once the loop has returned.
 */
#include "storage/session_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* ---------------------------------------------------------------- transmit */

static struct tx_pdu *pdu_of(struct sto_wire_buf *b)
{
    return (struct tx_pdu *)((char *)b - offsetof(struct tx_pdu, wb));
}

struct tx_pdu *isc_tx_new(struct isc_session *s)
{
    struct tx_pdu *p = s->tx_free;

    if (p)
        s->tx_free = p->next_free;
    else if (!(p = malloc(sizeof(*p))))
        return NULL;
    memset(p->hdr, 0, ISC_BHS_LEN);
    memset(&p->wb, 0, sizeof(p->wb));
    p->own = NULL;
    p->task = NULL;
    p->nop_reply = false;
    p->r2t_end = false;
    p->next_free = NULL;
    return p;
}

void isc_tx_unused(struct isc_session *s, struct tx_pdu *p)
{
    p->next_free = s->tx_free;
    s->tx_free = p;
}

void isc_tx_queue(struct isc_session *s, struct tx_pdu *p, const uint8_t *data, uint32_t len)
{
    uint32_t pad = isc_pad4(len), hdr_len = ISC_BHS_LEN, trailer_len = 0;

    isc_put24(p->hdr, ISC_OFF_DSL, len);
    if (header_digest_on(s)) {
        isc_digest_put(p->hdr + ISC_BHS_LEN, isc_crc32c(p->hdr, ISC_BHS_LEN));
        hdr_len += ISC_DIGEST_LEN;
    }
    if (len) {
        memset(p->trailer, 0, pad);
        trailer_len = pad;
        if (data_digest_on(s)) {
            uint32_t crc = isc_crc32c_update(ISC_CRC32C_INIT, data, len);
            crc = isc_crc32c_update(crc, p->trailer, pad);
            isc_digest_put(p->trailer + pad, isc_crc32c_final(crc));
            trailer_len += ISC_DIGEST_LEN;
        }
    }
    p->wb.part[0] = (struct sto_wire_part){ p->hdr, hdr_len };
    p->wb.part[1] = (struct sto_wire_part){ data, len };
    p->wb.part[2] = (struct sto_wire_part){ p->trailer, trailer_len };
    sto_wire_push(&s->txq, &p->wb);
    if (p->task)
        p->task->tx_queued++;
    s->tx_nop_replies += p->nop_reply;
    s->counters.pdus_out++;
}

/* A PDU has left (or will never leave): forget what it pinned and recycle it. */
static void tx_retire(struct sto_wire *q, struct sto_wire_buf *b)
{
    struct isc_session *s = ISC_SESSION_OF(q, txq);
    struct tx_pdu *p = pdu_of(b);

    if (p->task)
        p->task->tx_queued--;
    if (p->task && p->r2t_end)
        p->task->r2t_open--;
    s->tx_nop_replies -= p->nop_reply;
    free(p->own);
    p->own = NULL;
    isc_tx_unused(s, p);
}

void isc_tx_free_all(struct isc_session *s)
{
    struct tx_pdu *p, *next;

    sto_wire_clear(&s->txq, tx_retire);
    for (p = s->tx_free; p; p = next) {
        next = p->next_free;
        free(p);
    }
    s->tx_free = NULL;
    s->tx_nop_replies = 0;
    s->rx_paused = false;
}

/* isc_tx_drop_task's decision for one queued PDU (sto_wire_sweep). */
static int drop_task_visit(struct sto_wire_buf *b, void *arg)
{
    struct task *t = arg;
    struct tx_pdu *p = pdu_of(b);
    struct sto_wire_part *data = &b->part[1];

    if (p->task != t)
        return STO_WIRE_KEEP;
    if (b->done == 0 && isc_bhs_opcode(p->hdr) == ISC_OP_DATA_OUT)
        return STO_WIRE_DROP;
    if (data->len && !p->own) {
        uint8_t *copy = malloc(data->len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, data->base, data->len);
        p->own = copy;
        data->base = copy;
    }
    p->task = NULL;
    t->tx_queued--;
    return STO_WIRE_KEEP;
}

/*
 * A command is over while PDUs that send from its buffer may still be queued: a target may
 * answer a write before it has read the unsolicited Data-Out, or reject the command. Data-Out
 * not yet started is dropped (the target is done with the task); the command PDU itself
 * (its CmdSN must still reach the target) and a PDU half written (the stream must stay
 * framed) keep a private copy of their data. 0, or -ENOMEM.
 */
int isc_tx_drop_task(struct isc_session *s, struct task *t)
{
    return sto_wire_sweep(&s->txq, drop_task_visit, t, tx_retire);
}

static void update_events(struct isc_session *s)
{
    bool want_write = s->connecting || !sto_wire_empty(&s->txq);

    if (!s->conn)
        return;
    sto_loop_mod(s->loop, &s->watch,
                 s->conn->ops->events(s->conn, !s->rx_paused, want_write));
}

static ssize_t conn_write(void *arg, const struct iovec *iov, int iovcnt)
{
    return stk_conn_writev(arg, iov, iovcnt);
}

void isc_tx_flush(struct isc_session *s)
{
    int ret;

    if (!s->conn || s->connecting)
        return;
    ret = sto_wire_flush(&s->txq, conn_write, s->conn, tx_retire);
    if (ret < 0) {
        isc_session_fail(s, ret, "sending to the target failed: %s", strerror(-ret));
        return;
    }
    if (s->rx_paused && s->tx_nop_replies < TX_NOP_REPLIES_MAX / 2) {
        s->rx_paused = false; /* our answers left: read the target again */
        sto_loop_kick(s->loop, &s->watch);
    }
    update_events(s);
}

/*
 * PDUs were queued: they leave once, at the end of the loop's iteration (or of the receive
 * pass under way), together with whatever else the iteration queues, so that commands
 * submitted one by one (an NBD client's batch of requests) reach the target in one write.
 */
void isc_tx_kick(struct isc_session *s)
{
    if (!s->in_rx)
        sto_loop_defer(s->loop, &s->tx_defer);
}

void isc_tx_deferred(struct sto_defer *d)
{
    isc_tx_flush((struct isc_session *)((char *)d - offsetof(struct isc_session, tx_defer)));
}

void isc_put_common(struct isc_session *s, uint8_t *h, uint8_t op, uint8_t flags,
                    uint32_t itt)
{
    h[ISC_OFF_OPCODE] = op;
    h[ISC_OFF_FLAGS] = flags;
    isc_put32(h, ISC_OFF_ITT, itt);
    isc_put32(h, ISC_OFF_EXPSTATSN, s->exp_statsn);
}

/* ---------------------------------------------------------------- connecting */

int isc_conn_open(struct isc_session *s)
{
    char err[256] = "";
    char addr[32];
    int ret;

    if (s->cfg.connector.connect)
        ret = s->cfg.connector.connect(s->cfg.connector.arg, &s->target_addr, &s->conn,
                                       err, sizeof(err));
    else
        ret = stk_host_connect(&s->target_addr, 0, &s->conn);
    if (ret < 0) {
        stk_addr_str(&s->target_addr, addr, sizeof(addr));
        isc_session_error_set(s, "cannot connect to %s: %s", addr,
                              err[0] ? err : strerror(-ret));
        return ret;
    }
    s->watch.fd = s->conn->fd;
    s->connecting = true;
    s->rstart = s->rend = 0;
    s->rx = RX_HDR;
    s->rgot = 0;
    ret = sto_loop_add(s->loop, &s->watch, s->conn->ops->events(s->conn, true, true));
    if (ret < 0) {
        isc_session_error_set(s, "cannot watch the connection: %s", strerror(-ret));
        isc_conn_close(s, true);
        return ret;
    }
    return 0;
}

void isc_conn_close(struct isc_session *s, bool abort)
{
    if (!s->conn)
        return;
    sto_loop_del(s->loop, &s->watch);
    if (s->cfg.connector.release)
        s->cfg.connector.release(s->cfg.connector.arg, s->conn, abort);
    else
        stk_conn_close(s->conn, abort);
    s->conn = NULL;
    s->watch.fd = -1;
}

static void conn_established(struct isc_session *s)
{
    char a[32], b[32];

    s->connecting = false;
    s->toe_unanswered = false;
    log_debug("iscsi", "connected %s -> %s on the %s stack",
              stk_addr_str(&s->conn->local, a, sizeof(a)),
              stk_addr_str(&s->conn->remote, b, sizeof(b)), stk_stack_name(s->conn->stack));
    s->last_rx_ms = sto_now_ms();
    isc_login_start(s);
    isc_tx_flush(s);
}

/* Drop the connection and log in again from the start at dst (a redirect, a retry). */
static void conn_reopen(struct isc_session *s, const struct sockaddr_in *dst)
{
    int ret;

    isc_conn_close(s, false);
    isc_tx_free_all(s);
    s->target_addr = *dst;
    s->state = ISC_STATE_CONNECTING;
    ret = isc_conn_open(s);
    if (ret < 0)
        isc_session_down(s, ret); /* s->err says why */
}

void isc_rx_apply(struct isc_session *s, struct isc_rx_action a)
{
    switch (a.verdict) {
    case ISC_RX_CONTINUE:
        return;
    case ISC_RX_FAIL:
        /* unless the owner dropped the session meanwhile (isc_session_drop applied it) */
        if (isc_fail_pending(s))
            isc_session_down(s, s->rx_pending.err);
        return;
    case ISC_RX_RECONNECT:
        if (s->state == ISC_STATE_LOGGING_IN)
            conn_reopen(s, &a.dst);
        return;
    case ISC_RX_LOGGED_OUT:
        if (s->state == ISC_STATE_LOGGING_OUT)
            isc_logged_out(s, a.response);
        return;
    }
}

/* ---------------------------------------------------------------- receive */

/*
 * Move up to `want` bytes into dst: first from the read-ahead buffer, then from the
 * transport (straight into dst when the rest is large). Returns bytes moved (>= 0), or
 * -errno; 0 with nothing available means "wait".
 */
static ssize_t rx_take(struct isc_session *s, uint8_t *dst, size_t want, bool *eof)
{
    size_t moved = 0;

    while (moved < want) {
        size_t avail = s->rend - s->rstart;
        if (avail) {
            size_t n = avail < want - moved ? avail : want - moved;
            memcpy(dst + moved, s->rbuf + s->rstart, n);
            s->rstart += n;
            moved += n;
            continue;
        }
        s->rstart = s->rend = 0;
        /* drained by a short read: the poll wakes us when more arrives (transport.h) */
        if (s->rx_drained && s->conn->ops->level_triggered)
            break;
        ssize_t r;
        size_t asked;
        if (want - moved >= DIRECT_READ_MIN) {
            asked = want - moved;
            r = stk_conn_read(s->conn, dst + moved, asked);
            if (r > 0) {
                moved += (size_t)r;
                s->rx_drained = (size_t)r < asked;
                continue;
            }
        } else {
            asked = s->ra_size;
            r = stk_conn_read(s->conn, s->rbuf, asked);
            if (r > 0) {
                s->rend = (size_t)r;
                s->rx_drained = (size_t)r < asked;
                continue;
            }
        }
        if (r == 0)
            *eof = true;
        else if (r != -EAGAIN)
            return r;
        break;
    }
    return (ssize_t)moved;
}

/* Validate a complete header and set up the data phase. 0, or -1 after failing. */
static int rx_header_done(struct isc_session *s)
{
    const uint8_t *h = s->rhdr;
    enum isc_opcode op = isc_bhs_opcode(h);
    uint32_t dsl = isc_bhs_dsl(h);
    uint32_t limit = in_ffp(s) ? s->params.max_recv_dsl : ISC_TEXT_MAX;

    if (header_digest_on(s)) {
        size_t hl = s->rneed - ISC_DIGEST_LEN;
        if (isc_crc32c(h, hl) != isc_digest_get(h + hl)) {
            isc_session_fail(s, -EBADMSG, "header digest mismatch on a %s pdu",
                             isc_opcode_name(op));
            return -1;
        }
    }
    if (!(op & 0x20) || (h[ISC_OFF_OPCODE] & 0x80)) {
        isc_session_fail(s, -EPROTO, "target sent initiator opcode 0x%02x", h[0]);
        return -1;
    }
    if (dsl > limit) {
        isc_session_fail(s, -EPROTO, "%s pdu carries %u bytes, above the %u we accept",
                         isc_opcode_name(op), dsl, limit);
        return -1;
    }
    s->rdsl = dsl;
    s->rtask = NULL;
    /*
     * Large segments are read straight into their destination; a big read-ahead would
     * only copy most of the next one through rbuf. Small PDUs want a big read-ahead.
     */
    s->ra_size = dsl >= DIRECT_READ_MIN ? RA_SMALL : RBUF_SIZE;
    if (op == ISC_OP_DATA_IN && in_ffp(s)) {
        s->rdata = isc_data_in_dest(s, h, dsl);
        if (!s->rdata)
            return -1;
    } else {
        if (dsl > s->scratch_cap) {
            uint8_t *b = realloc(s->scratch, dsl);
            if (!b) {
                isc_session_fail(s, -ENOMEM, "out of memory for a %u-byte pdu", dsl);
                return -1;
            }
            s->scratch = b;
            s->scratch_cap = dsl;
        }
        /* never NULL, even for an empty segment: rdata + 0 and memcpy of 0 stay defined */
        s->rdata = s->scratch ? s->scratch : s->rtrail;
    }
    return 0;
}

/* What one framing step did: go on, wait for bytes, stopped (failed), or a PDU is in. */
enum rx_step { RX_STEP_ON, RX_STEP_WAIT, RX_STEP_STOP, RX_STEP_PDU };

/* The BHS, then its AHS and header digest. RX_STEP_* or -errno. */
static int rx_step_header(struct isc_session *s, bool *eof)
{
    ssize_t n;

    if (s->rgot < ISC_BHS_LEN)
        s->rneed = ISC_BHS_LEN;
    n = rx_take(s, s->rhdr + s->rgot, s->rneed - s->rgot, eof);
    if (n < 0)
        return (int)n;
    s->rgot += (size_t)n;
    if (s->rgot < s->rneed)
        return RX_STEP_WAIT;
    if (s->rneed == ISC_BHS_LEN) {
        uint32_t ahs = isc_bhs_ahs_len(s->rhdr);
        /* junk (not iSCSI at all) fails here, not after waiting for an AHS */
        if (!(s->rhdr[0] & 0x20) || (s->rhdr[0] & 0x80)) {
            isc_session_fail(s, -EPROTO, "target sent initiator opcode 0x%02x (not an "
                             "iscsi target pdu)", s->rhdr[0]);
            return RX_STEP_STOP;
        }
        if (ahs > AHS_MAX) {
            isc_session_fail(s, -EPROTO, "ahs of %u bytes", ahs);
            return RX_STEP_STOP;
        }
        s->rneed = ISC_BHS_LEN + ahs + (header_digest_on(s) ? ISC_DIGEST_LEN : 0);
        if (s->rgot < s->rneed)
            return RX_STEP_ON;
    }
    if (rx_header_done(s) < 0)
        return RX_STEP_STOP;
    s->rgot = 0;
    s->rcrc = ISC_CRC32C_INIT;
    s->rx = RX_DATA;
    return RX_STEP_ON;
}

/* The data segment, into its destination (digest computed on the way). */
static int rx_step_data(struct isc_session *s, bool *eof)
{
    ssize_t n = rx_take(s, s->rdata + s->rgot, s->rdsl - s->rgot, eof);

    if (n < 0)
        return (int)n;
    if (data_digest_on(s) && n > 0)
        s->rcrc = isc_crc32c_update(s->rcrc, s->rdata + s->rgot, (size_t)n);
    s->rgot += (size_t)n;
    if (s->rgot < s->rdsl)
        return RX_STEP_WAIT;
    s->rgot = 0;
    s->rneed = s->rdsl ? isc_pad4(s->rdsl) : 0;
    if (s->rdsl && data_digest_on(s))
        s->rneed += ISC_DIGEST_LEN;
    s->rx = RX_TRAILER;
    return RX_STEP_ON;
}

/* Padding and data digest: then the PDU is complete. */
static int rx_step_trailer(struct isc_session *s, bool *eof)
{
    ssize_t n = rx_take(s, s->rtrail + s->rgot, s->rneed - s->rgot, eof);

    if (n < 0)
        return (int)n;
    s->rgot += (size_t)n;
    if (s->rgot < s->rneed)
        return RX_STEP_WAIT;
    if (s->rdsl && data_digest_on(s)) {
        uint32_t pad = isc_pad4(s->rdsl);
        uint32_t crc = isc_crc32c_final(isc_crc32c_update(s->rcrc, s->rtrail, pad));
        if (crc != isc_digest_get(s->rtrail + pad)) {
            isc_session_fail(s, -EBADMSG, "data digest mismatch on a %s pdu",
                             isc_opcode_name(isc_bhs_opcode(s->rhdr)));
            return RX_STEP_STOP;
        }
    }
    s->rx = RX_HDR;
    s->rgot = 0;
    return RX_STEP_PDU;
}

/*
 * The receive loop: frame PDUs and hand each to its handler until the data runs out, the
 * budget is spent, or a handler asks something of the connection. Returns that action.
 */
static struct isc_rx_action rx_loop(struct isc_session *s, unsigned *budget, bool *eof)
{
    struct isc_rx_action act = ISC_RX_GO;

    /* an owner's callback may drop the session, or log it in again (still connecting) */
    while (s->conn && !s->connecting && *budget && isc_rx_go(act)) {
        int st;
        if (s->tx_nop_replies >= TX_NOP_REPLIES_MAX) {
            s->rx_paused = true; /* isc_tx_flush reads on once the answers have left */
            break;
        }
        if (s->rx == RX_HDR)
            st = rx_step_header(s, eof);
        else if (s->rx == RX_DATA)
            st = rx_step_data(s, eof);
        else
            st = rx_step_trailer(s, eof);
        if (st < 0) {
            isc_session_fail(s, st, "receiving from the target failed: %s", strerror(-st));
            break;
        }
        if (st == RX_STEP_WAIT || st == RX_STEP_STOP)
            break;
        if (st == RX_STEP_PDU) {
            act = isc_rx_dispatch(s);
            (*budget)--;
        }
        if (isc_fail_pending(s))
            act = s->rx_pending; /* a failure recorded on the way comes first */
    }
    return isc_fail_pending(s) ? s->rx_pending : act;
}

static void rx_process(struct isc_session *s)
{
    bool eof = false;
    unsigned budget = RX_BUDGET;
    struct isc_rx_action act;

    s->in_rx = true;
    s->rx_drained = false;
    s->rx_pending = ISC_RX_GO;
    act = rx_loop(s, &budget, &eof);
    s->in_rx = false;
    isc_rx_apply(s, act);
    if (s->conn && eof && isc_rx_go(act)) {
        isc_session_fail(s, -ECONNRESET, "target closed the connection");
        return;
    }
    if (s->conn && s->connecting) {
        /* the new conn's readiness may already be signalled: look at it without sleeping */
        sto_loop_kick(s->loop, &s->watch);
        return;
    }
    if (s->conn) {
        isc_tx_flush(s);
        /* more PDUs already buffered, or budget spent: come back without sleeping */
        if (s->conn && !s->rx_paused &&
            (!budget || s->rend > s->rstart || s->conn->ops->pending(s->conn)))
            sto_loop_kick(s->loop, &s->watch);
    }
}

void isc_conn_cb(struct sto_watch *w, uint32_t revents)
{
    struct isc_session *s = ISC_SESSION_OF(w, watch);
    (void)revents;

    if (!s->conn)
        return;
    if (s->connecting) {
        int ret = s->conn->ops->connect_result(s->conn);
        char addr[32];
        if (ret == -EINPROGRESS)
            return;
        if (ret == -EHOSTUNREACH && s->conn->stack == STK_STACK_TOE && !s->toe_unanswered) {
            /*
             * The TOE got no answer within its connect timeout. Ask the connector once
             * more at once: its broker now knows, and places the connection on the host
             * stack (auto) or refuses it and says why (toe).
             */
            s->toe_unanswered = true;
            log_info("iscsi", "the toe got no answer from %s; connecting again",
                     stk_addr_str(&s->target_addr, addr, sizeof(addr)));
            conn_reopen(s, &s->target_addr);
            return;
        }
        if (ret < 0) {
            isc_session_fail(s, ret, "cannot connect to %s: %s",
                             stk_addr_str(&s->target_addr, addr, sizeof(addr)),
                             strerror(-ret));
            return;
        }
        conn_established(s);
        if (!s->conn)
            return;
    }
    if (!sto_wire_empty(&s->txq))
        isc_tx_flush(s);
    if (s->conn && !s->rx_paused)
        rx_process(s);
}
