/*
 * nbd_accept.c - the NBD server's listener: accepting, what a connection may cost before
 * it has picked an export, and the descriptor limit.
 *
 * - Handshake deadline: a connection must reach transmission (NBD_OPT_GO or
 *   NBD_OPT_EXPORT_NAME) within handshake_timeout_ms of being accepted, or it is closed.
 *   Handshaking clients are kept in accept order, so one timer, armed for the oldest,
 *   covers them all.
 * - Caps: at most max_handshakes_per_client handshaking connections from one IPv4 address
 *   (a new one beyond that is closed at once) and max_handshakes in all (a new one closes
 *   the oldest: a client that handshakes promptly is never the oldest for long). Each
 *   storage loop's server counts its own: a client that moves to another loop in the
 *   handshake (nbd_move.c) is admitted there as a new one, so one address holds at most
 *   max_handshakes_per_client per loop.
 * - Descriptor limit: accept4 failing with EMFILE/ENFILE (or ENOBUFS/ENOMEM) leaves the
 *   connection in the backlog and the level-triggered listener readable; retrying at once
 *   would spin. The listener leaves epoll for a back-off (100 ms, doubling to 1 s) and
 *   comes back on a timer. One line is logged when such an episode starts and one when a
 *   connection is accepted again, never one per attempt.
 * Refusals, timeouts and evictions log at most one line a second, with the count of those
 * left out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockspec.h"
#include "common/transport.h"
#include "storage/nbd_int.h"
#include "storage/pdu.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

/* ---------------------------------------------------------------- handshake phase */

static void hs_arm(struct nbds_server *srv)
{
    if (!srv->hs_head) {
        sto_timer_disarm(srv->loop, &srv->hs_timer);
        return;
    }
    uint64_t due = srv->hs_head->accepted_ms + srv->lim.handshake_timeout_ms;
    uint64_t now = sto_now_ms();
    sto_timer_arm(srv->loop, &srv->hs_timer, due > now ? due - now : 0);
}

void nbds_handshake_end(struct nbds_client *c)
{
    struct nbds_server *srv = c->srv;
    bool was_head = srv->hs_head == c;

    if (!c->handshaking)
        return;
    c->handshaking = false;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        srv->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        srv->hs_tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
    srv->nhs--;
    if (was_head)
        hs_arm(srv);
}

/* Link c (its accepted_ms set) into the handshake list, which stays in accept order. */
static void hs_link(struct nbds_server *srv, struct nbds_client *c)
{
    struct nbds_client *after = srv->hs_tail;

    while (after && after->accepted_ms > c->accepted_ms)
        after = after->hs_prev;
    c->handshaking = true;
    c->hs_prev = after;
    c->hs_next = after ? after->hs_next : srv->hs_head;
    if (c->hs_next)
        c->hs_next->hs_prev = c;
    else
        srv->hs_tail = c;
    if (after)
        after->hs_next = c;
    else
        srv->hs_head = c;
    srv->nhs++;
    if (srv->hs_head == c)
        hs_arm(srv);
}

static void hs_timer_cb(struct sto_timer *t)
{
    struct nbds_server *srv = (struct nbds_server *)((char *)t -
                                                     offsetof(struct nbds_server, hs_timer));
    uint64_t now = sto_now_ms(), left_out;

    while (srv->hs_head &&
           now - srv->hs_head->accepted_ms >= srv->lim.handshake_timeout_ms) {
        struct nbds_client *c = srv->hs_head;
        if (log_rate_due(&srv->log_timeout, &left_out))
            log_info("nbd", "closing %s: handshake not finished within %u ms (%llu more "
                     "since the last such line)", c->peer, srv->lim.handshake_timeout_ms,
                     (unsigned long long)left_out);
        nbds_client_close(c, NULL); /* unlinks it, re-arms the timer */
    }
    hs_arm(srv);
}

/* Handshaking connections from this address. */
static unsigned hs_count_from(const struct nbds_server *srv, uint32_t addr)
{
    unsigned n = 0;

    for (const struct nbds_client *c = srv->hs_head; c; c = c->hs_next)
        n += !c->is_unix && c->addr == addr;
    return n;
}

/* ---------------------------------------------------------------- accepting */

static void accept_resume_cb(struct sto_timer *t)
{
    struct nbds_server *srv = (struct nbds_server *)((char *)t -
                                                     offsetof(struct nbds_server,
                                                              accept_timer));

    if (!srv->accept_paused)
        return;
    if (sto_loop_add(srv->loop, &srv->w, EPOLLIN) < 0) {
        sto_timer_arm(srv->loop, &srv->accept_timer, srv->backoff_ms);
        return;
    }
    srv->accept_paused = false; /* epoll calls accept_cb if a connection waits */
}

/* accept4 failed for want of descriptors or memory: stop watching the listener a while. */
static void accept_pause(struct nbds_server *srv, int err)
{
    if (!srv->fdlimit_since_ms) {
        srv->fdlimit_since_ms = sto_now_ms();
        srv->fdlimit_hits = 0;
        srv->backoff_ms = BACKOFF_MIN_MS;
        log_warn("nbd", "cannot accept connections: %s; retrying every %u-%u ms until "
                 "descriptors are free (%u connections in the handshake)", strerror(err),
                 BACKOFF_MIN_MS, BACKOFF_MAX_MS, srv->nhs);
    } else if (srv->backoff_ms < BACKOFF_MAX_MS) {
        srv->backoff_ms = srv->backoff_ms * 2 < BACKOFF_MAX_MS ? srv->backoff_ms * 2
                                                               : BACKOFF_MAX_MS;
    }
    srv->fdlimit_hits++;
    sto_loop_del(srv->loop, &srv->w);
    srv->accept_paused = true;
    sto_timer_arm(srv->loop, &srv->accept_timer, srv->backoff_ms);
}

static void accept_episode_end(struct nbds_server *srv)
{
    if (!srv->fdlimit_since_ms)
        return;
    log_info("nbd", "accepting connections again after %llu ms at the descriptor limit "
             "(%llu tries)", (unsigned long long)(sto_now_ms() - srv->fdlimit_since_ms),
             (unsigned long long)srv->fdlimit_hits);
    srv->fdlimit_since_ms = 0;
}

/* Within the caps? Closes the oldest handshake when all slots are taken. */
static bool admit(struct nbds_server *srv, struct nbds_client *c)
{
    uint64_t left_out;

    if (!c->is_unix &&
        hs_count_from(srv, c->addr) >= srv->lim.max_handshakes_per_client) {
        if (log_rate_due(&srv->log_refused, &left_out))
            log_info("nbd", "refusing a connection from %s: %u of its connections are in "
                     "the handshake already (at most %u; %llu more refused since the last "
                     "such line)", c->peer, srv->lim.max_handshakes_per_client,
                     srv->lim.max_handshakes_per_client, (unsigned long long)left_out);
        return false;
    }
    if (srv->nhs >= srv->lim.max_handshakes && srv->hs_head) {
        struct nbds_client *old = srv->hs_head;
        if (log_rate_due(&srv->log_evicted, &left_out))
            log_info("nbd", "closing %s: %u connections are in the handshake, the oldest "
                     "makes room (%llu more since the last such line)", old->peer,
                     srv->nhs, (unsigned long long)left_out);
        nbds_client_close(old, NULL);
    }
    return true;
}

bool nbds_handshake_adopt(struct nbds_client *c)
{
    /* it is counted where it was accepted no more: the caps apply again here */
    if (!admit(c->srv, c))
        return false;
    hs_link(c->srv, c);
    return true;
}

static void accept_cb(struct sto_watch *w, uint32_t revents)
{
    struct nbds_server *srv = (struct nbds_server *)((char *)w -
                                                     offsetof(struct nbds_server, w));
    (void)revents;

    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct nbds_client *c;
        int one = 1;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(srv, errno);
            return;
        }
        accept_episode_end(srv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c)
            c->rbuf = malloc(RBUF);
        if (!c || !c->rbuf) {
            free(c);
            close(fd);
            continue;
        }
        c->srv = srv;
        c->fd = fd;
        c->w.fd = fd;
        c->w.cb = nbds_client_cb;
        c->tx_defer.cb = nbds_client_deferred_flush;
        if (ss.ss_family == AF_INET) {
            c->addr = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
            stk_addr_str((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
        } else {
            c->is_unix = true;
            snprintf(c->peer, sizeof(c->peer), "unix client");
        }
        if (!admit(srv, c)) {
            free(c->rbuf);
            free(c);
            close(fd);
            continue;
        }
        nbds_expect(c, C_FLAGS);
        /* the server speaks first */
        struct txbuf *t = calloc(1, sizeof(*t));
        if (!t || sto_loop_add(srv->loop, &c->w, EPOLLIN | EPOLLOUT) < 0) {
            free(t);
            free(c->rbuf);
            free(c);
            close(fd);
            continue;
        }
        isc_put64(t->hdr, 0, NBD_MAGIC);
        isc_put64(t->hdr, 8, NBD_OPTS_MAGIC);
        isc_put16(t->hdr, 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
        t->hlen = 18;
        nbds_tx_push(c, t);
        c->next = srv->clients;
        srv->clients = c;
        c->accepted_ms = sto_now_ms();
        hs_link(srv, c);
        nbds_stat_add(&srv->stats.clients_total, 1);
        nbds_stat_add(&srv->stats.clients_now, 1);
        log_debug("nbd", "client %s connected", c->peer);
        nbds_client_flush(c);
    }
}

/* ---------------------------------------------------------------- the server */

static void limits_fill(struct nbds_limits *l, const struct nbds_limits *in)
{
    *l = in ? *in : (struct nbds_limits){ 0 };
    if (!l->handshake_timeout_ms)
        l->handshake_timeout_ms = NBDS_HANDSHAKE_TIMEOUT_MS;
    if (!l->max_handshakes_per_client)
        l->max_handshakes_per_client = NBDS_MAX_HANDSHAKES_PER_CLIENT;
    if (!l->max_handshakes)
        l->max_handshakes = NBDS_MAX_HANDSHAKES;
    if (!l->max_buffered_bytes)
        l->max_buffered_bytes = NBDS_MAX_BUFFERED_BYTES;
}

struct nbds_server *nbds_server_new(struct sto_loop *loop, struct sto_mgr *m, const char *addr,
                                    const struct nbds_limits *lim, char *err, size_t errlen)
{
    static const struct sockspec_listen_opts lo = {
        /* room for a burst (a client per volume, hundreds at once: over a unix socket a
         * full backlog fails the connect instead of retrying it); somaxconn caps it */
        .what = "nbd", .def_port = 10809, .backlog = 1024,
    };
    struct nbds_server *srv = calloc(1, sizeof(*srv));
    int fd;

    if (!srv)
        return NULL;
    limits_fill(&srv->lim, lim);
    srv->loop = loop;
    srv->m = m;
    srv->hs_timer.cb = hs_timer_cb;
    srv->accept_timer.cb = accept_resume_cb;
    srv->lfd = -1;
    if (!addr)
        return srv;
    fd = sockspec_listen(addr, &lo, NULL, 0, err, errlen);
    if (fd < 0)
        goto fail;
    srv->lfd = fd;
    srv->w.fd = fd;
    srv->w.cb = accept_cb;
    if (sto_loop_add(loop, &srv->w, EPOLLIN) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        goto fail;
    }
    return srv;
fail:
    if (fd >= 0)
        close(fd);
    free(srv);
    return NULL;
}

void nbds_server_set_tls(struct nbds_server *srv, enum nbds_tls_mode mode,
                         const struct tls_creds *creds)
{
    srv->tls_mode = creds ? mode : NBDS_TLS_OFF;
    srv->creds = creds;
}

void nbds_server_free(struct nbds_server *srv)
{
    if (!srv)
        return;
    sto_timer_disarm(srv->loop, &srv->hs_timer);
    sto_timer_disarm(srv->loop, &srv->accept_timer);
    if (srv->lfd >= 0) {
        if (!srv->accept_paused)
            sto_loop_del(srv->loop, &srv->w);
        close(srv->lfd);
    }
    while (srv->clients) {
        struct nbds_client *c = srv->clients;
        srv->clients = c->next;
        if (!c->dead) {
            sto_loop_del(srv->loop, &c->w);
            close(c->fd);
        }
        /* in-flight requests hold c: let them see it dead, free it in their callback */
        c->dead = true;
        c->handshaking = false;
        c->next = NULL;
        if (!c->inflight)
            nbds_client_destroy(c);
    }
    free(srv);
}

void nbds_server_set_peers(struct nbds_server *srv, const struct nbds_peers *peers)
{
    srv->peers = *peers;
}

void nbds_server_stats(const struct nbds_server *srv, struct nbds_stats *out)
{
    const struct nbds_stats *st = &srv->stats;

    out->clients_total = __atomic_load_n(&st->clients_total, __ATOMIC_RELAXED);
    out->clients_now = __atomic_load_n(&st->clients_now, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&st->requests, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&st->errors, __ATOMIC_RELAXED);
    out->disconnects_mid_request = __atomic_load_n(&st->disconnects_mid_request,
                                                   __ATOMIC_RELAXED);
}
