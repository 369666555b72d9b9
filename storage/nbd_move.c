/*
 * nbd_move.c - a client moving between the NBD servers of several storage loops (the
 * storage pool: docs/architecture.md, "Storage threads").
 *
 * Only the first loop listens. A volume's I/O runs on the loop of its session, so a client
 * that names a volume of another loop (NBD_OPT_EXPORT_NAME, _INFO, _GO) goes there before
 * the option is answered:
 *
 *   here (in the option's handler)  posts move_go to its own loop (so nothing up the
 *                                   handler's stack sees it go), leaves the handshake
 *                                   list, the epoll set and the client list; C_MOVING
 *   here (next turn)                posts move_adopt to the other loop
 *   there                           joins the client list (and the handshake list, with
 *                                   its first deadline), the epoll set, and runs the option
 *                                   again; the rest of the read-ahead buffer follows
 *
 * The socket, the TLS session, the read-ahead buffer and queued replies travel with the
 * client: in the handshake nothing of it is in flight. A client moves at most once per
 * option (the option runs again with `rerun` set), so two loops never hand one back and
 * forth.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/nbd_int.h"

size_t nbds_volume_ids(struct nbds_server *srv, char (*ids)[STO_ID_MAX], size_t max)
{
    if (srv->peers.volume_ids)
        return srv->peers.volume_ids(srv->peers.arg, ids, max);
    return sto_mgr_volume_ids(srv->m, ids, max);
}

/* A client that cannot go on: it is in no server's lists, so it goes here and now. */
static void move_fail(struct nbds_client *c, const char *why)
{
    log_warn("nbd", "closing %s: cannot move it to its volume's storage thread: %s", c->peer,
             why);
    close(c->fd);
    nbds_client_destroy(c);
}

static void move_adopt(void *arg)
{
    struct nbds_client *c = arg;
    struct nbds_server *srv = c->move_to;

    c->srv = srv;
    c->move_to = NULL;
    c->next = srv->clients;
    srv->clients = c;
    nbds_stat_add(&srv->stats.clients_now, 1);
    if (c->move_hs && !nbds_handshake_adopt(c)) {
        nbds_client_close(c, NULL); /* refused by this loop's caps (logged) */
        return;
    }
    if (sto_loop_add(srv->loop, &c->w, EPOLLIN | EPOLLOUT) < 0) {
        nbds_client_close(c, "cannot watch its socket on the new storage thread");
        return;
    }
    c->st = C_OPT_HDR;
    c->rx_drained = false;         /* read until EAGAIN once: the new epoll set starts afresh */
    c->rerun = true;
    nbds_handle_option(c);
    c->rerun = false;
    if (!c->dead)
        sto_loop_kick(srv->loop, &c->w); /* options already read, replies to send */
}

static void move_go(void *arg)
{
    struct nbds_client *c = arg;

    if (sto_loop_post(c->move_to->loop, move_adopt, c) < 0)
        move_fail(c, "out of memory");
}

void nbds_move(struct nbds_client *c, struct nbds_server *to)
{
    struct nbds_server *srv = c->srv;
    struct nbds_client **pp = &srv->clients;

    if (sto_loop_post(srv->loop, move_go, c) < 0) {
        nbds_client_close(c, "out of memory moving it to its volume's storage thread");
        return;
    }
    c->move_hs = c->handshaking;
    nbds_handshake_end(c);
    sto_loop_del(srv->loop, &c->w);
    sto_defer_cancel(&c->tx_defer);
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    c->next = NULL;
    nbds_stat_add(&srv->stats.clients_now, (uint64_t)-1);
    c->st = C_MOVING;
    c->move_to = to;
    log_debug("nbd", "%s moves to the storage thread of its volume", c->peer);
}
