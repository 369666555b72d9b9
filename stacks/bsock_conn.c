/*
 * bsock_conn.c - the connections handed over on the broker socket (bsock.h), each a state
 * machine (enum bs_conn_state):
 *
 *   CONNECTING --established--> HANDED     (host: the socket goes to the program)
 *              --established--> PUMPING    (TOE: a socketpair's end goes to the program)
 *              --failed / deadline / client gone--> DONE (an ERROR reply when possible)
 *   PUMPING    --the program's end closed--> DRAINING --its bytes are in the TOE--> DONE
 *              --the TOE connection failed--> DONE (the program reads end of stream)
 *   HANDED     --sock_diag: the program's socket is gone--> DONE
 *   any        --RELEASE, stop--> DONE
 *
 * DONE releases the broker's descriptor (stk_release: the port goes back to the pool or
 * its reservation); the node is freed after the current epoll batch.
 *
 * The pump (TOE): two buffers of PUMP_BUF bytes, one per direction. Program -> TOE: read
 * the socketpair into to_net, writev it into the TOE's send ring (one copy there). TOE ->
 * program: read the TOE's receive ring into to_app, write it into the socketpair. Both fds
 * are edge-triggered: each event runs the pump until nothing moves, and a side that is full
 * or empty is resumed by the other side's next event (the TOE signals its eventfd only
 * after a read or writev returned -EAGAIN or short, which is exactly when the pump stops).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "stacks/bsock_int.h"

#define PUMP_BUF (256u * 1024u)
#define PAIR_BUF (1024 * 1024)

static void conn_unclient(struct bs_conn *bc)
{
    if (bc->client && bc->state == BC_CONNECTING)
        bc->client->inflight--;
    bc->client = NULL;
}

void bs_conn_release(struct stk_bsock *bs, struct bs_conn *bc, bool abort, const char *why)
{
    bool handed;
    uint16_t port;
    int ret;

    if (bc->state == BC_DONE)
        return;
    handed = bc->state != BC_CONNECTING;
    port = bc->d->port;
    conn_unclient(bc);
    if (bc->conn)
        epoll_ctl(bs->ep, EPOLL_CTL_DEL, bc->conn->fd, NULL);
    if (bc->app_fd >= 0) {
        epoll_ctl(bs->ep, EPOLL_CTL_DEL, bc->app_fd, NULL);
        close(bc->app_fd);
        bc->app_fd = -1;
    }
    ret = stk_release(bs->b, bc->d, bc->owner, abort);
    if (ret < 0)
        log_warn("bsock", "connection %llu of %s: release failed: %s",
                 (unsigned long long)bc->id, bc->owner, strerror(-ret));
    bc->d = NULL;
    bc->conn = NULL;
    if (handed)
        bs_count(bs, &bs->stats.open, -1);
    log_info("bsock", "connection %llu of %s released (%s), port %u back",
             (unsigned long long)bc->id, bc->owner, why, port);
    bc->state = BC_DONE;
}

int bs_conn_start(struct stk_bsock *bs, struct bs_client *cl, uint16_t seq,
                  struct stk_desc *d)
{
    struct bs_conn *bc = calloc(1, sizeof(*bc));
    struct stk_conn *c = stk_desc_conn(d, cl->owner);
    struct epoll_event ev;

    if (!bc || !c) {
        free(bc);
        stk_release(bs->b, d, cl->owner, true);
        return -ENOMEM;
    }
    bc->net_ref = (struct bs_ref){ BS_CONN_NET, bc };
    bc->app_ref = (struct bs_ref){ BS_CONN_APP, bc };
    bc->d = d;
    bc->conn = c;
    bc->id = d->id;
    snprintf(bc->owner, sizeof(bc->owner), "%s", cl->owner);
    bc->uid = cl->uid;
    bc->client = cl;
    bc->seq = seq;
    bc->deadline_ns = bs_now_ns() + STK_BSOCK_CONNECT_MS * 1000000ull;
    bc->app_fd = -1;
    bc->remote = d->remote;
    ev.events = c->stack == STK_STACK_TOE ? EPOLLIN : c->ops->events(c, false, true);
    ev.data.ptr = &bc->net_ref;
    if (epoll_ctl(bs->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        int e = errno;
        stk_release(bs->b, d, cl->owner, true);
        free(bc);
        return -e;
    }
    cl->inflight++;
    bc->next = bs->conns;
    bs->conns = bc;
    return 0;
}

/* The CONNECTED reply of an established connection (the caller adds the descriptor). */
static void connected_msg(const struct bs_conn *bc, struct bp_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = BP_CONNECTED;
    m->seq = bc->seq;
    m->conn_id = bc->id;
    m->local_addr = bc->local.sin_addr;
    m->local_port = bc->d->port;
    m->addr = bc->remote.sin_addr;
    m->port = ntohs(bc->remote.sin_port);
    m->on_stack = bc->d->stack == STK_STACK_TOE;
    m->reservation = bc->d->reservation;
    bp_set(m, BP_T_CONN_ID);
    bp_set(m, BP_T_LOCAL_ADDR);
    bp_set(m, BP_T_LOCAL_PORT);
    bp_set(m, BP_T_ADDR);
    bp_set(m, BP_T_PORT);
    bp_set(m, BP_T_ON_STACK);
    if (m->reservation)
        bp_set(m, BP_T_RESERVATION);
    bp_set_str(m, BP_T_PLACEMENT, stk_placement_name(bc->d->placement));
}

/* Host: the connected socket itself goes to the program; the broker keeps no reference. */
static int hand_over_host(struct stk_bsock *bs, struct bs_conn *bc, struct bs_client *cl)
{
    socklen_t len = sizeof(bc->local);
    struct stat st;
    struct bp_msg m;
    int ret;

    if (getsockname(bc->conn->fd, (struct sockaddr *)&bc->local, &len) < 0 ||
        fstat(bc->conn->fd, &st) < 0)
        return -errno;
    bc->ino = st.st_ino;
    connected_msg(bc, &m);
    ret = bs_reply(bs, cl, &m, bc->conn->fd);
    if (ret < 0)
        return ret;
    epoll_ctl(bs->ep, EPOLL_CTL_DEL, bc->conn->fd, NULL);
    stk_desc_hand_over(bs->b, bc->d, bc->owner);
    bc->conn = NULL;
    bc->state = BC_HANDED;
    bs_count(bs, &bs->stats.open, 1);
    bs_count(bs, &bs->stats.handed_host, 1);
    return 0;
}

static void pump_settle(struct stk_bsock *bs, struct bs_conn *bc);

/*
 * Name the program's end after its connection (common/bproto.h, "A TOE connection's
 * descriptor names itself"): a program that inherited it across exec, or got it passed,
 * can still tell which TCP connection it is. A name already taken leaves it unnamed; the
 * descriptor works the same.
 */
static void name_app_end(const struct bs_conn *bc, int fd)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = bp_conn_name(sa.sun_path, sizeof(sa.sun_path), (long)getpid(), bc->id, &bc->local,
                         &bc->remote);

    if (n < 0 ||
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                                     (size_t)n)) < 0)
        log_debug("bsock", "connection %llu: its descriptor stays unnamed: %s",
                  (unsigned long long)bc->id, strerror(n < 0 ? -n : errno));
}

/* TOE: one end of a socketpair goes to the program; the pump serves the other. */
static int hand_over_toe(struct stk_bsock *bs, struct bs_conn *bc, struct bs_client *cl)
{
    struct epoll_event net = { .events = EPOLLIN | EPOLLET, .data.ptr = &bc->net_ref };
    struct epoll_event app = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                               .data.ptr = &bc->app_ref };
    int sv[2], buf = PAIR_BUF, ret;
    struct bp_msg m;

    bc->to_net.p = malloc(PUMP_BUF);
    bc->to_app.p = malloc(PUMP_BUF);
    if (!bc->to_net.p || !bc->to_app.p)
        return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
            setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    bc->local = bc->conn->local;
    name_app_end(bc, sv[1]);
    connected_msg(bc, &m);
    ret = bs_reply(bs, cl, &m, sv[1]);
    close(sv[1]);
    if (ret < 0) {
        close(sv[0]);
        return ret;
    }
    bc->app_fd = sv[0];
    bc->state = BC_PUMPING;
    bs_count(bs, &bs->stats.open, 1);
    if (epoll_ctl(bs->ep, EPOLL_CTL_MOD, bc->conn->fd, &net) < 0 ||
        epoll_ctl(bs->ep, EPOLL_CTL_ADD, bc->app_fd, &app) < 0)
        return -errno;
    bs_count(bs, &bs->stats.handed_toe, 1);
    return 0;
}

static void conn_connecting(struct stk_bsock *bs, struct bs_conn *bc)
{
    struct bs_client *cl = bc->client;
    int r = bc->conn->ops->connect_result(bc->conn);
    char dst[32];

    if (r == -EINPROGRESS)
        return;
    stk_addr_str(&bc->remote, dst, sizeof(dst));
    if (r < 0) {
        bs_count(bs, &bs->stats.refused, 1);
        bs_reply_error(bs, cl, bc->seq, -r, "connect to %s from port %u on the %s stack "
                       "failed: %s", dst, bc->d->port, stk_stack_name(bc->d->stack),
                       strerror(-r));
        bs_conn_release(bs, bc, true, "the connect failed");
        return;
    }
    if (!cl || cl->dead) {
        bs_conn_release(bs, bc, true, "its client went away while it connected");
        return;
    }
    /* answered now, whatever happens: a failing reply drops the client, not this conn */
    cl->inflight--;
    bc->client = NULL;
    r = bc->d->stack == STK_STACK_TOE ? hand_over_toe(bs, bc, cl) : hand_over_host(bs, bc, cl);
    if (r < 0) {
        bs_conn_release(bs, bc, true, "it could not be handed over");
        return;
    }
    log_info("bsock", "connection %llu for %s to %s on the %s stack, port %u (%s), handed "
             "over as %s", (unsigned long long)bc->id, bc->owner, dst,
             stk_stack_name(bc->d->stack), bc->d->port, stk_placement_name(bc->d->placement),
             bc->d->stack == STK_STACK_TOE ? "a socketpair" : "its socket");
    if (bc->state == BC_PUMPING)
        pump_settle(bs, bc);
}

/* ---------------------------------------------------------------- the pump */

/* Program -> TOE. 1 moved, 0 nothing to do now, -errno the TOE connection failed. */
static int pump_to_net(struct bs_conn *bc)
{
    struct bs_buf *b = &bc->to_net;
    int moved = 0;

    if (b->off == b->len && !bc->app_eof) {
        ssize_t n = read(bc->app_fd, b->p, PUMP_BUF);
        if (n > 0) {
            b->off = 0;
            b->len = (size_t)n;
            moved = 1;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            bc->app_eof = true;
            moved = 1;
        }
    }
    if (b->off < b->len) {
        struct iovec iov = { .iov_base = b->p + b->off, .iov_len = b->len - b->off };
        ssize_t n = stk_conn_writev(bc->conn, &iov, 1);
        if (n > 0) {
            b->off += (size_t)n;
            if (b->off == b->len)
                b->off = b->len = 0;
            moved = 1;
        } else if (n != -EAGAIN) {
            return (int)n;
        }
    }
    if (bc->app_eof && b->off == b->len && !bc->net_shut) {
        bc->net_shut = true;
        bc->conn->ops->shutdown(bc->conn);
    }
    return moved;
}

/* TOE -> program. 1 moved, 0 nothing to do now, -errno the TOE connection failed. */
static int pump_to_app(struct bs_conn *bc)
{
    struct bs_buf *b = &bc->to_app;
    int moved = 0;

    if (b->off == b->len && !bc->net_eof) {
        ssize_t n = stk_conn_read(bc->conn, b->p, PUMP_BUF);
        if (n > 0) {
            b->off = 0;
            b->len = (size_t)n;
            moved = 1;
        } else if (n == 0) {
            bc->net_eof = true;
            moved = 1;
        } else if (n != -EAGAIN) {
            return (int)n;
        }
    }
    if (b->off < b->len && !bc->app_gone) {
        ssize_t n = send(bc->app_fd, b->p + b->off, b->len - b->off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            b->off += (size_t)n;
            if (b->off == b->len)
                b->off = b->len = 0;
            moved = 1;
        } else if (errno == EPIPE || errno == ECONNRESET) {
            bc->app_gone = true;
        }
    }
    if (bc->app_gone)
        b->off = b->len = 0; /* nobody left to read it */
    if (bc->net_eof && b->off == b->len && !bc->app_shut && !bc->app_gone) {
        bc->app_shut = true;
        shutdown(bc->app_fd, SHUT_WR); /* the program reads end of stream */
    }
    return moved;
}

/* Run the pump until nothing moves, then move the state machine on. */
static void pump_settle(struct stk_bsock *bs, struct bs_conn *bc)
{
    int a, b;

    do {
        a = pump_to_net(bc);
        b = a < 0 ? a : pump_to_app(bc);
    } while (a > 0 || b > 0);
    if (a < 0 || b < 0) {
        char why[96];
        snprintf(why, sizeof(why), "the toe connection failed: %s", strerror(-(a < 0 ? a : b)));
        bs_conn_release(bs, bc, true, why);
        return;
    }
    if (bc->app_gone && bc->state == BC_PUMPING) {
        bc->state = BC_DRAINING;
        bc->deadline_ns = bs_now_ns() + STK_BSOCK_DRAIN_MS * 1000000ull;
    }
    if (bc->state == BC_DRAINING && bc->app_eof && bc->to_net.off == bc->to_net.len) {
        bs_count(bs, &bs->stats.closed_by_client, 1);
        bs_conn_release(bs, bc, false, "the program closed its descriptor");
    }
}

void bs_conn_event(struct stk_bsock *bs, struct bs_conn *bc, bool app_side, uint32_t ev)
{
    switch (bc->state) {
    case BC_CONNECTING:
        if (!app_side)
            conn_connecting(bs, bc);
        return;
    case BC_PUMPING:
    case BC_DRAINING:
        if (app_side && (ev & (EPOLLHUP | EPOLLERR)))
            bc->app_gone = true;
        pump_settle(bs, bc);
        return;
    case BC_HANDED:
    case BC_DONE:
        return;
    }
}

/* ---------------------------------------------------------------- host socket watch */

/*
 * Whether the program still holds the handed-over host socket: sock_diag's exact lookup of
 * its four-tuple must find a socket with the same inode (a closed socket is gone, or an
 * orphan in FIN_WAIT / TIME_WAIT with inode 0). On a netlink failure: assume it is.
 */
static bool host_alive(struct stk_bsock *bs, const struct bs_conn *bc)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 r;
    } req = { .nh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                      .nlmsg_flags = NLM_F_REQUEST },
              .r = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP,
                     .idiag_states = ~0u } };
    struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
    char buf[4096], junk[512];
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    ssize_t n;

    while (recv(bs->diag, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ; /* an answer left over from an earlier failure */
    req.r.id.idiag_sport = bc->local.sin_port;
    req.r.id.idiag_dport = bc->remote.sin_port;
    req.r.id.idiag_src[0] = bc->local.sin_addr.s_addr;
    req.r.id.idiag_dst[0] = bc->remote.sin_addr.s_addr;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (sendto(bs->diag, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
        return true;
    n = recv(bs->diag, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < (ssize_t)sizeof(*h) || !NLMSG_OK(h, (size_t)n))
        return true;
    if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        return e->error != -ENOENT;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return true;
    const struct inet_diag_msg *dm = NLMSG_DATA(h);
    return dm->idiag_inode == bc->ino;
}

/* Whether the program's end of a TOE connection's socketpair is closed. */
static bool app_end_closed(const struct bs_conn *bc)
{
    struct pollfd p = { .fd = bc->app_fd, .events = POLLIN };

    return bc->app_fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

void bs_conn_reap(struct stk_bsock *bs)
{
    for (struct bs_conn *bc = bs->conns; bc; bc = bc->next) {
        if (bc->state == BC_PUMPING && app_end_closed(bc)) {
            bc->app_gone = true;
            pump_settle(bs, bc);
        } else if (bc->state == BC_HANDED && !host_alive(bs, bc)) {
            bs_count(bs, &bs->stats.closed_by_client, 1);
            bs_conn_release(bs, bc, false, "the program closed its socket");
        }
    }
}

void bs_conn_tick(struct stk_bsock *bs)
{
    uint64_t now = bs_now_ns();
    bool watch = now - bs->last_watch_ns >= STK_BSOCK_WATCH_MS * 1000000ull;

    if (watch)
        bs->last_watch_ns = now;
    for (struct bs_conn *bc = bs->conns; bc; bc = bc->next) {
        if (bc->state == BC_CONNECTING && now > bc->deadline_ns) {
            bs_reply_error(bs, bc->client, bc->seq, ETIMEDOUT, "the connection was not "
                           "established within %u ms", STK_BSOCK_CONNECT_MS);
            bs_conn_release(bs, bc, true, "not established in time");
        } else if (bc->state == BC_DRAINING && now > bc->deadline_ns) {
            bs_conn_release(bs, bc, true, "its last bytes did not reach the toe in time");
        } else if (bc->state == BC_HANDED && watch && !host_alive(bs, bc)) {
            bs_count(bs, &bs->stats.closed_by_client, 1);
            bs_conn_release(bs, bc, false, "the program closed its socket");
        }
    }
}

int bs_conn_release_req(struct stk_bsock *bs, uint64_t id, uid_t uid, bool abort)
{
    for (struct bs_conn *bc = bs->conns; bc; bc = bc->next) {
        if (bc->id != id || bc->state == BC_DONE || (uid != 0 && uid != bc->uid))
            continue;
        if (bc->state == BC_HANDED && host_alive(bs, bc))
            return -EBUSY;
        if (bc->state == BC_CONNECTING)
            bs_reply_error(bs, bc->client, bc->seq, ECANCELED, "released before it was "
                           "established");
        bs_conn_release(bs, bc, abort, "released on request");
        return 0;
    }
    return -ENOENT;
}

void bs_conn_forget_client(struct stk_bsock *bs, struct bs_client *cl)
{
    for (struct bs_conn *bc = bs->conns; bc; bc = bc->next)
        if (bc->client == cl && bc->state == BC_CONNECTING)
            bs_conn_release(bs, bc, true, "its client went away while it connected");
}

void bs_conn_sweep(struct stk_bsock *bs, bool all)
{
    struct bs_conn **pp = &bs->conns;

    while (*pp) {
        struct bs_conn *bc = *pp;
        if (all && bc->state != BC_DONE)
            bs_conn_release(bs, bc, true, "the broker socket stops");
        if (bc->state == BC_DONE) {
            *pp = bc->next;
            free(bc->to_net.p);
            free(bc->to_app.p);
            free(bc);
        } else {
            pp = &bc->next;
        }
    }
}
