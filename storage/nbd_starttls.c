/*
 * nbd_starttls.c - TLS in the NBD server's handshake (the NBD protocol's "TLS support")
 * and who may use which volume.
 *
 * NBD_OPT_STARTTLS is answered NBD_REP_ACK in plaintext; the client then sits in two
 * states of its own until TLS is up: C_TLS_ACK (the ACK leaving; nothing is read) and
 * C_TLS_HANDSHAKE (the TLS handshake, watching the socket for what GnuTLS waits for).
 * Then option haggling starts again through TLS, with every option agreed before
 * forgotten (structured replies), as the protocol asks. With --nbd-tls require, every
 * option before that but STARTTLS and ABORT is answered NBD_REP_ERR_TLS_REQD, and
 * NBD_OPT_EXPORT_NAME (which has no error reply) closes the connection. A volume with an
 * allow list refuses (NBD_REP_ERR_POLICY) every client whose TLS identity is not in it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "storage/nbd_int.h"

void nbds_starttls(struct nbds_client *c)
{
    struct nbds_server *srv = c->srv;
    char err[200];

    if (srv->tls_mode == NBDS_TLS_OFF) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_POLICY, "tls is not offered");
        return;
    }
    if (c->tls) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "tls is up already");
        return;
    }
    if (c->optlen) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "starttls takes no data");
        return;
    }
    if (c->rend > c->rstart) {
        /* the TLS handshake may only start once the client has read our ACK */
        nbds_client_close(c, "data after NBD_OPT_STARTTLS before its reply");
        return;
    }
    c->tls = nbds_tls_new(srv->creds, c->fd, err, sizeof(err));
    if (!c->tls) {
        log_warn("nbd", "%s: %s", c->peer, err);
        nbds_opt_error(c, c->opt, NBD_REP_ERR_POLICY, "cannot start tls now");
        return;
    }
    nbds_opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
    c->st = C_TLS_ACK;
    sto_loop_kick(srv->loop, &c->w); /* nbds_tls_step sends the ACK, then handshakes */
}

/* The handshake failed: say who (the PSK identity offered, if any) and why, then close. */
static void tls_refused(struct nbds_client *c, const char *why)
{
    struct nbds_server *srv = c->srv;
    const char *tried = nbds_tls_tried(c->tls);
    uint64_t left_out;

    if (log_rate_due(&srv->log_tls, &left_out))
        log_info("nbd", "refusing tls client %s (psk identity %s%s%s): %s (%llu more refused "
                 "since the last such line)", c->peer, *tried ? "\"" : "",
                 *tried ? tried : "none", *tried ? "\"" : "", why,
                 (unsigned long long)left_out);
    nbds_client_close(c, NULL);
}

void nbds_tls_step(struct nbds_client *c)
{
    struct nbds_server *srv = c->srv;
    char err[200], desc[64];
    int ret;

    if (c->st == C_TLS_ACK) {
        nbds_client_flush(c);
        if (c->dead || !sto_wire_empty(&c->txq))
            return; /* EPOLLOUT is on: back here once the ACK has left */
        c->st = C_TLS_HANDSHAKE;
    }
    ret = nbds_tls_handshake(c->tls, err, sizeof(err));
    if (ret == -EAGAIN) {
        sto_loop_mod(srv->loop, &c->w, nbds_tls_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
        return;
    }
    if (ret < 0) {
        tls_refused(c, err);
        return;
    }
    c->tls_up = true;
    snprintf(c->identity, sizeof(c->identity), "%s", nbds_tls_identity(c->tls));
    nbds_tls_describe(c->tls, desc, sizeof(desc));
    log_info("nbd", "%s: tls up, identity %s%s%s (%s, %s); path: %s", c->peer,
             *c->identity ? "\"" : "", *c->identity ? c->identity : "none",
             *c->identity ? "\"" : "", nbds_tls_auth(c->tls), desc, nbds_tls_path(c->tls));
    c->structured = false; /* options agreed before STARTTLS do not carry over */
    nbds_expect(c, C_OPT_HDR);
    nbds_client_flush(c);
    sto_loop_kick(srv->loop, &c->w); /* options that came with the handshake's last flight */
}

bool nbds_tls_gate(struct nbds_client *c)
{
    struct nbds_server *srv = c->srv;
    uint64_t left_out;

    if (srv->tls_mode != NBDS_TLS_REQUIRE || c->tls_up || c->opt == NBD_OPT_STARTTLS ||
        c->opt == NBD_OPT_ABORT)
        return true;
    if (log_rate_due(&srv->log_plain, &left_out))
        log_info("nbd", "refusing option %u from %s without tls, which this server requires "
                 "(%llu more refused since the last such line)", c->opt, c->peer,
                 (unsigned long long)left_out);
    if (c->opt == NBD_OPT_EXPORT_NAME) {
        nbds_client_close(c, "NBD_OPT_EXPORT_NAME without tls, which this server requires");
        return false;
    }
    nbds_opt_error(c, c->opt, NBD_REP_ERR_TLS_REQD,
                   "tls is required: send NBD_OPT_STARTTLS first");
    return false;
}

bool nbds_access_ok(struct nbds_client *c, struct sto_volume *v)
{
    if (sto_volume_allows(v, c->identity))
        return true;
    log_info("nbd", "refusing %s (identity %s%s%s) volume %s: not in its allow list", c->peer,
             *c->identity ? "\"" : "", *c->identity ? c->identity : "none, no tls",
             *c->identity ? "\"" : "", sto_volume_name(v));
    return false;
}
