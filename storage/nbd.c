/*
 * nbd.c - fixed-newstyle NBD server on the storage loop: transmission.
 *
 * Each client is a state machine fed from a read-ahead buffer: handshake flags, option
 * haggling (nbd_handshake.c), then transmission. Requests are validated (nbdkit-style)
 * before anything is queued; valid ones go to the volume as async I/O and their replies
 * leave in completion order. What one client can make toegw hold is bounded: 128 requests
 * in flight and `max_buffered_bytes` of request and reply data (a client that does not
 * read its replies stops being read). A client that disconnects mid-request is freed once
 * its in-flight requests have completed. Listening and accepting: nbd_accept.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/be.h"
#include "common/log.h"
#include "storage/nbd_int.h"

/* ---------------------------------------------------------------- output */

struct txbuf *nbds_tx_new(struct nbds_client *c)
{
    struct txbuf *t = calloc(1, sizeof(*t));

    if (!t) {
        nbds_client_close(c, "out of memory");
        return NULL;
    }
    return t;
}

void nbds_tx_push(struct nbds_client *c, struct txbuf *t)
{
    /*
     * A refused write is answered only after its payload has been read: clients (libnbd)
     * match a reply to a command only once they have sent all of it.
     */
    if (c->defer_next) {
        c->defer_next = false;
        c->deferred = t;
        return;
    }
    t->wb.part[0] = (struct sto_wire_part){ t->hdr, t->hlen };
    t->wb.part[1] = (struct sto_wire_part){ t->data, t->dlen };
    t->wb.part[2] = (struct sto_wire_part){ t->tail, t->tlen };
    sto_wire_push(&c->txq, &t->wb);
}

/* ---------------------------------------------------------------- buffered bytes */

static uint64_t buffer_limit(const struct nbds_client *c)
{
    return c->srv->lim.max_buffered_bytes;
}

/* Whether a request with a len-byte buffer may start now (one always may when none is). */
static bool buffer_fits(const struct nbds_client *c, uint32_t len)
{
    return c->held == 0 || c->held + len <= buffer_limit(c);
}

static void held_add(struct nbds_client *c, uint32_t n)
{
    c->held += n;
}

/* n bytes of c's were freed: a request waiting for room may go on. */
static void held_release(struct nbds_client *c, uint32_t n)
{
    c->held -= n;
    if (c->parked && !c->dead && buffer_fits(c, c->parked_len))
        sto_loop_kick(c->srv->loop, &c->w);
}

static void tx_free(struct nbds_client *c, struct txbuf *t)
{
    if (t->held)
        held_release(c, t->held);
    free(t->data);
    free(t->tail);
    free(t);
}

/* The queue has written a reply (or drops it): free it. */
static void tx_retire(struct sto_wire *q, struct sto_wire_buf *b)
{
    tx_free((struct nbds_client *)((char *)q - offsetof(struct nbds_client, txq)),
            (struct txbuf *)((char *)b - offsetof(struct txbuf, wb)));
}

static void tx_free_all(struct nbds_client *c)
{
    if (c->deferred) {
        tx_free(c, c->deferred);
        c->deferred = NULL;
    }
    sto_wire_clear(&c->txq, tx_retire);
}

/* ---------------------------------------------------------------- transmission */

static void req_free(struct nreq *r)
{
    if (r->buf) {
        held_release(r->c, r->len);
        free(r->buf);
    }
    free(r);
}

static void client_maybe_free(struct nbds_client *c);

static uint32_t nbd_errno(int err)
{
    switch (err) {
    case 0: return 0;
    case -EROFS:
    case -EPERM:
    case -EACCES: return NBD_EPERM;
    case -ENOMEM: return NBD_ENOMEM;
    case -EINVAL: return NBD_EINVAL;
    case -ERANGE:
    case -ENOSPC: return NBD_ENOSPC;
    case -EOPNOTSUPP: return NBD_ENOTSUP;
    case -ENOTCONN:
    case -ESHUTDOWN: return NBD_ESHUTDOWN;
    default: return NBD_EIO;
    }
}

/* Queue the reply for r (data: a successful read's bytes, handed over). */
static void reply(struct nbds_client *c, struct nreq *r, uint32_t error, const char *msg)
{
    struct txbuf *t = nbds_tx_new(c);

    if (!t)
        return;
    if (!c->structured) {
        be_put32(t->hdr, NBD_SIMPLE_REPLY_MAGIC);
        be_put32(t->hdr + 4, error);
        be_put64(t->hdr + 8, r->handle);
        t->hlen = 16;
        if (!error && r->type == NBD_CMD_READ) {
            t->data = r->buf;
            t->dlen = t->held = r->len;
            r->buf = NULL;
        }
    } else if (error) {
        size_t ml = msg ? strlen(msg) : 0;
        if (ml > 200)
            ml = 200;
        be_put32(t->hdr, NBD_STRUCTURED_REPLY_MAGIC);
        be_put16(t->hdr + 4, NBD_REPLY_FLAG_DONE);
        be_put16(t->hdr + 6, NBD_REPLY_TYPE_ERROR);
        be_put64(t->hdr + 8, r->handle);
        be_put32(t->hdr + 16, (uint32_t)(6 + ml));
        be_put32(t->hdr + 20, error);
        be_put16(t->hdr + 24, (uint16_t)ml);
        t->hlen = 26;
        if (ml) {
            t->tail = malloc(ml);
            if (t->tail) {
                memcpy(t->tail, msg, ml);
                t->tlen = (uint32_t)ml;
            } else {
                be_put32(t->hdr + 16, 6);
                be_put16(t->hdr + 24, 0);
            }
        }
    } else if (r->type == NBD_CMD_READ) {
        be_put32(t->hdr, NBD_STRUCTURED_REPLY_MAGIC);
        be_put16(t->hdr + 4, NBD_REPLY_FLAG_DONE);
        be_put16(t->hdr + 6, NBD_REPLY_TYPE_OFFSET_DATA);
        be_put64(t->hdr + 8, r->handle);
        be_put32(t->hdr + 16, 8 + r->len);
        be_put64(t->hdr + 20, r->offset);
        t->hlen = 28;
        t->data = r->buf;
        t->dlen = t->held = r->len;
        r->buf = NULL;
    } else {
        be_put32(t->hdr, NBD_STRUCTURED_REPLY_MAGIC);
        be_put16(t->hdr + 4, NBD_REPLY_FLAG_DONE);
        be_put16(t->hdr + 6, NBD_REPLY_TYPE_NONE);
        be_put64(t->hdr + 8, r->handle);
        be_put32(t->hdr + 16, 0);
        t->hlen = 20;
    }
    nbds_tx_push(c, t);
}

static void io_done(void *arg, int err, const char *msg)
{
    struct nreq *r = arg;
    struct nbds_client *c = r->c;

    c->inflight--;
    if (err && r->type == NBD_CMD_TRIM && (err == -EOPNOTSUPP || err == -EINVAL))
        err = 0; /* trim is advisory: a LUN that cannot unmap just keeps the data */
    if (err)
        nbds_stat_add(&c->srv->stats.errors, 1);
    if (c->dead) {
        nbds_stat_add(&c->srv->stats.disconnects_mid_request, 1);
        req_free(r);
        client_maybe_free(c);
        return;
    }
    reply(c, r, nbd_errno(err), msg);
    req_free(r);
    sto_loop_defer(c->srv->loop, &c->tx_defer); /* with the other replies of this pass */
    /* reading may have paused at the in-flight cap */
    if (c->inflight == MAX_INFLIGHT - 1)
        sto_loop_kick(c->srv->loop, &c->w);
}

static void start_io(struct nbds_client *c, struct nreq *r)
{
    static const enum sto_io_op ops[] = {
        [NBD_CMD_READ] = STO_IO_READ, [NBD_CMD_WRITE] = STO_IO_WRITE,
        [NBD_CMD_FLUSH] = STO_IO_FLUSH, [NBD_CMD_TRIM] = STO_IO_TRIM,
        [NBD_CMD_WRITE_ZEROES] = STO_IO_ZERO,
    };
    int ret;

    if (!sto_volume_alive(c->vol)) {
        reply(c, r, NBD_ESHUTDOWN, "the volume's session is gone");
        req_free(r);
        return;
    }
    c->inflight++;
    nbds_stat_add(&c->srv->stats.requests, 1);
    ret = sto_volume_submit(c->vol, ops[r->type], r->offset, r->len, r->buf,
                            r->flags & NBD_CMD_FLAG_FUA, io_done, r);
    if (ret < 0) {
        c->inflight--;
        reply(c, r, nbd_errno(ret), "cannot start the request");
        req_free(r);
    }
}

/* Validate a request header (nbdkit's validate_request, our rules). 0 or an NBD errno. */
static uint32_t validate(struct nbds_client *c, uint16_t type, uint16_t flags, uint64_t off,
                         uint32_t len, const char **why)
{
    const struct sto_lun_info *li = sto_volume_info(c->vol);
    uint64_t size = li->size_bytes;
    uint32_t bs = li->cap.block_size;

    switch (type) {
    case NBD_CMD_READ:
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
    case NBD_CMD_CACHE:
        break;
    case NBD_CMD_FLUSH:
        if (off || len) {
            *why = "flush takes no offset or length";
            return NBD_EINVAL;
        }
        return 0;
    default:
        *why = "unknown command";
        return NBD_EINVAL;
    }
    if ((type == NBD_CMD_WRITE || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES) &&
        sto_volume_access(c->vol)->read_only) {
        *why = "the volume is read-only";
        return NBD_EPERM;
    }
    if (flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE)) {
        *why = "unsupported command flags";
        return NBD_EINVAL;
    }
    if ((flags & NBD_CMD_FLAG_NO_HOLE) && type != NBD_CMD_WRITE_ZEROES) {
        *why = "no_hole is only for write_zeroes";
        return NBD_EINVAL;
    }
    if (len == 0) {
        *why = "zero length";
        return NBD_EINVAL;
    }
    if (off % bs || len % bs) {
        *why = "offset and length must be multiples of the minimum block size";
        return NBD_EINVAL;
    }
    if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && len > MAX_REQUEST) {
        /* EOVERFLOW is only for a client that asked for an unfragmented read (DF) */
        *why = "request larger than the maximum block size";
        return NBD_EINVAL;
    }
    if (off > size || len > size - off) {
        *why = "request beyond the end of the export";
        return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
    }
    if (type == NBD_CMD_TRIM && !(nbds_export_flags(c->vol) & NBD_TFLAG_SEND_TRIM)) {
        *why = "trim was not advertised";
        return NBD_EINVAL;
    }
    return 0;
}

static void handle_request(struct nbds_client *c)
{
    uint32_t magic = be_get32(c->hdr);
    uint16_t flags = be_get16(c->hdr + 4), type = be_get16(c->hdr + 6);
    uint64_t handle = be_get64(c->hdr + 8), off = be_get64(c->hdr + 16);
    uint32_t len = be_get32(c->hdr + 24);
    const char *why = NULL;
    struct nreq *r;
    uint32_t err;

    if (magic != NBD_REQUEST_MAGIC) {
        nbds_client_close(c, "bad request magic");
        return;
    }
    if (type == NBD_CMD_DISC) {
        nbds_client_flush(c);
        nbds_client_close(c, NULL);
        return;
    }
    err = validate(c, type, flags, off, len, &why);
    if (!err && (type == NBD_CMD_READ || type == NBD_CMD_WRITE) && !buffer_fits(c, len)) {
        /* wait (header kept, socket not read) until earlier data has left */
        c->parked = true;
        c->parked_len = len;
        return;
    }
    c->parked = false;
    r = calloc(1, sizeof(*r));
    if (!r) {
        nbds_client_close(c, "out of memory");
        return;
    }
    *r = (struct nreq){ .c = c, .handle = handle, .type = type, .flags = flags,
                        .offset = off, .len = len };
    if (err) {
        if (type == NBD_CMD_WRITE) {
            /* its payload follows all the same: skip it, or hang up if absurd */
            if (len > 4 * MAX_REQUEST) {
                req_free(r);
                nbds_client_close(c, "oversized write payload");
                return;
            }
            c->discard = len;
            c->st = C_DISCARD;
            c->defer_next = true;
        }
        reply(c, r, err, why);
        req_free(r);
        nbds_client_flush(c);
        return;
    }
    if (type == NBD_CMD_CACHE) {
        reply(c, r, 0, NULL); /* a hint; the target's cache is its own business */
        req_free(r);
        return;
    }
    if (type == NBD_CMD_READ || type == NBD_CMD_WRITE) {
        r->buf = malloc(len);
        if (r->buf)
            held_add(c, len);
        if (!r->buf) {
            if (type == NBD_CMD_WRITE) {
                c->discard = len;
                c->st = C_DISCARD;
                c->defer_next = true;
            }
            reply(c, r, NBD_ENOMEM, "out of memory");
            req_free(r);
            return;
        }
    }
    if (type == NBD_CMD_WRITE) {
        c->cur = r;
        c->dst = r->buf;
        c->need = len;
        c->got = 0;
        c->st = C_REQ_DATA;
        return;
    }
    start_io(c, r);
}

/* ---------------------------------------------------------------- input */

/* Where the next bytes go for the current state. */
void nbds_expect(struct nbds_client *c, enum cstate st)
{
    c->st = st;
    c->got = 0;
    switch (st) {
    case C_FLAGS:
        c->dst = c->hdr;
        c->need = 4;
        break;
    case C_OPT_HDR:
        c->dst = c->hdr;
        c->need = 16;
        break;
    case C_REQ_HDR:
        c->dst = c->hdr;
        c->need = 28;
        break;
    default:
        break;
    }
}

static void step(struct nbds_client *c)
{
    switch (c->st) {
    case C_FLAGS: {
        uint32_t f = be_get32(c->hdr);
        if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
            nbds_client_close(c, "unknown client flags");
            return;
        }
        c->fixed = f & NBD_FLAG_C_FIXED_NEWSTYLE;
        c->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
        nbds_expect(c, C_OPT_HDR);
        return;
    }
    case C_OPT_HDR:
        if (be_get64(c->hdr) != NBD_OPTS_MAGIC) {
            nbds_client_close(c, "bad option magic");
            return;
        }
        c->opt = be_get32(c->hdr + 8);
        c->optlen = be_get32(c->hdr + 12);
        if (c->optlen > MAX_OPTION_DATA) {
            if (c->optlen > 16 * 1024 * 1024) {
                nbds_client_close(c, "absurd option length");
                return;
            }
            nbds_opt_error(c, c->opt, NBD_REP_ERR_TOO_BIG, "option data too large");
            c->discard = c->optlen;
            c->st = C_DISCARD;
            return;
        }
        c->st = C_OPT_DATA;
        c->dst = c->optdata;
        c->need = c->optlen;
        c->got = 0;
        if (c->optlen)
            return;
        /* fall through: no data */
    /* FALLTHROUGH */
    case C_OPT_DATA:
        nbds_expect(c, C_OPT_HDR);
        nbds_handle_option(c);
        return;
    case C_REQ_HDR:
        handle_request(c);
        if (c->st == C_REQ_HDR && !c->parked)
            nbds_expect(c, C_REQ_HDR);
        return;
    case C_REQ_DATA: {
        struct nreq *r = c->cur;
        c->cur = NULL;
        nbds_expect(c, C_REQ_HDR);
        start_io(c, r);
        return;
    }
    default:
        return;
    }
}

/*
 * Whether the socket is left unread for now: 128 requests in flight, or a request waits
 * for buffer room. io_done and held_release kick the client when that changes; until
 * then EPOLLIN is off (the level-triggered socket would wake the loop for nothing).
 */
static bool reading_paused(const struct nbds_client *c)
{
    if (c->parked)
        return !buffer_fits(c, c->parked_len);
    return c->inflight >= MAX_INFLIGHT && c->st == C_REQ_HDR;
}

/* Bytes from the client, through TLS once it is up: > 0, 0 (hung up), -EAGAIN or -errno. */
static ssize_t client_recv(struct nbds_client *c, void *buf, size_t len)
{
    ssize_t r;

    if (c->tls_up)
        return nbds_tls_read(c->tls, buf, len);
    r = read(c->fd, buf, len);
    if (r >= 0)
        return r;
    return errno == EINTR ? -EAGAIN : -errno;
}

/*
 * The last read from the socket came back short: it is empty, and its level-triggered
 * EPOLLIN says when more arrives (nbds_client_cb clears the mark), so asking again now
 * would only cost a read that fails with EAGAIN (one per request at one in flight). Not
 * with TLS: GnuTLS may hold decrypted records the socket no longer shows.
 */
static bool socket_drained(const struct nbds_client *c)
{
    return c->rx_drained && !c->tls_up;
}

static void client_read(struct nbds_client *c)
{
    for (int budget = 256; budget > 0 && !c->dead && c->st != C_CLOSING && c->st != C_MOVING;
         budget--) {
        if (reading_paused(c) || c->st == C_TLS_ACK)
            return;
        if (c->st == C_DISCARD) {
            size_t avail = c->rend - c->rstart;
            size_t n = avail < c->discard ? avail : (size_t)c->discard;
            c->rstart += n;
            c->discard -= n;
            if (!c->discard) {
                nbds_expect(c, c->vol ? C_REQ_HDR : C_OPT_HDR);
                if (c->deferred) {
                    struct txbuf *t = c->deferred;
                    c->deferred = NULL;
                    nbds_tx_push(c, t);
                    nbds_client_flush(c);
                }
                continue;
            }
        } else if (c->got < c->need) {
            size_t avail = c->rend - c->rstart, want = c->need - c->got;
            if (avail) {
                size_t n = avail < want ? avail : want;
                memcpy(c->dst + c->got, c->rbuf + c->rstart, n);
                c->rstart += n;
                c->got += n;
                continue;
            }
            if (socket_drained(c))
                return;
            if (want >= DIRECT_MIN) {
                ssize_t r = client_recv(c, c->dst + c->got, want);
                if (r > 0) {
                    c->got += (size_t)r;
                    c->rx_drained = (size_t)r < want;
                    continue;
                }
                if (r != -EAGAIN)
                    nbds_client_close(c, r == 0 ? NULL : strerror((int)-r));
                return;
            }
        } else {
            step(c);
            continue;
        }
        /* refill the read-ahead buffer */
        c->rstart = c->rend = 0;
        if (socket_drained(c))
            return;
        ssize_t r = client_recv(c, c->rbuf, RBUF);
        if (r > 0) {
            c->rend = (size_t)r;
            c->rx_drained = (size_t)r < RBUF;
            continue;
        }
        if (r != -EAGAIN)
            nbds_client_close(c, r == 0 ? NULL : strerror((int)-r));
        return;
    }
    if (!c->dead && c->st != C_CLOSING && c->st != C_MOVING)
        sto_loop_kick(c->srv->loop, &c->w); /* budget spent: come back soon */
}

/*
 * The client's socket (through TLS once it is up) as the queue's stream: -EAGAIN also for
 * EINTR (tried again later).
 */
static ssize_t client_write(void *arg, const struct iovec *iov, int iovcnt)
{
    struct nbds_client *c = arg;
    struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t w;

    if (c->tls_up)
        return nbds_tls_writev(c->tls, iov, iovcnt);
    w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

    if (w >= 0)
        return w;
    return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
}

void nbds_client_flush(struct nbds_client *c)
{
    bool out;

    if (c->dead || c->st == C_TLS_HANDSHAKE || c->st == C_MOVING)
        return; /* the handshake watches the socket itself (nbds_tls_step); a moving
                   client is another loop's */
    /* records of replies already taken from the queue go first */
    if (c->tls_up && nbds_tls_flush(c->tls) < 0) {
        nbds_client_close(c, "cannot send through tls");
        return;
    }
    int ret = sto_wire_flush(&c->txq, client_write, c, tx_retire);
    if (ret < 0) {
        nbds_client_close(c, strerror(-ret));
        return;
    }
    out = !sto_wire_empty(&c->txq) || (c->tls_up && nbds_tls_send_pending(c->tls));
    sto_loop_mod(c->srv->loop, &c->w, (reading_paused(c) ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0));
    /* records GnuTLS decrypted already: the socket will not say they are there */
    if (c->tls_up && !reading_paused(c) && nbds_tls_pending(c->tls))
        sto_loop_kick(c->srv->loop, &c->w);
}

void nbds_client_deferred_flush(struct sto_defer *d)
{
    nbds_client_flush((struct nbds_client *)((char *)d - offsetof(struct nbds_client, tx_defer)));
}

void nbds_client_destroy(struct nbds_client *c)
{
    sto_defer_cancel(&c->tx_defer);
    if (c->cur)
        req_free(c->cur);
    if (c->vol)
        sto_volume_unref(c->vol);
    tx_free_all(c);
    nbds_tls_free(c->tls);
    free(c->rbuf);
    free(c);
}

static void client_free(void *arg)
{
    struct nbds_client *c = arg;
    struct nbds_server *srv = c->srv;
    struct nbds_client **pp = &srv->clients;

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    nbds_client_destroy(c);
}

/* Free a dead client once nothing refers to it: later, from the loop, exactly once. */
static void client_maybe_free(struct nbds_client *c)
{
    if (!c->dead || c->inflight || c->free_posted)
        return;
    c->free_posted = true;
    sto_loop_post(c->srv->loop, client_free, c);
}

void nbds_client_close(struct nbds_client *c, const char *why)
{
    if (c->dead)
        return;
    if (why)
        log_info("nbd", "closing %s: %s", c->peer, why);
    else
        log_debug("nbd", "%s disconnected", c->peer);
    nbds_handshake_end(c);
    sto_loop_del(c->srv->loop, &c->w);
    if (c->tls_up && !why)
        nbds_tls_bye(c->tls); /* a clean end (NBD_CMD_DISC): close the tls session too */
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->parked = false;
    c->st = C_CLOSING;
    nbds_stat_add(&c->srv->stats.clients_now, (uint64_t)-1);
    client_maybe_free(c); /* callers up the stack still hold c: the free comes later */
}

void nbds_client_cb(struct sto_watch *w, uint32_t revents)
{
    struct nbds_client *c = (struct nbds_client *)((char *)w -
                                                   offsetof(struct nbds_client, w));

    if (c->dead)
        return;
    if (c->st == C_TLS_ACK || c->st == C_TLS_HANDSHAKE) {
        nbds_tls_step(c);
        return;
    }
    if (revents & EPOLLIN)
        c->rx_drained = false;
    if (revents & EPOLLOUT)
        nbds_client_flush(c);
    if (!c->dead)
        client_read(c);
    if (!c->dead)
        nbds_client_flush(c);
}
