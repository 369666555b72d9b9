/*
 * nbd_handshake.c - the NBD server's option haggling (fixed newstyle): EXPORT_NAME, GO,
 * INFO, LIST, STRUCTURED_REPLY, ABORT, and STARTTLS (nbd_starttls.c); everything else is
 * refused. A client that picks an
 * export leaves the handshake (nbd_accept.c stops its deadline) for transmission (nbd.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/be.h"
#include "common/log.h"
#include "storage/nbd_int.h"

/* ---------------------------------------------------------------- replies */

void nbds_opt_reply(struct nbds_client *c, uint32_t opt, uint32_t type, const void *data,
                    uint32_t len)
{
    struct txbuf *t = nbds_tx_new(c);

    if (!t)
        return;
    be_put64(t->hdr, NBD_REP_MAGIC);
    be_put32(t->hdr + 8, opt);
    be_put32(t->hdr + 12, type);
    be_put32(t->hdr + 16, len);
    t->hlen = 20;
    if (len) {
        t->data = malloc(len);
        if (!t->data) {
            free(t);
            nbds_client_close(c, "out of memory");
            return;
        }
        memcpy(t->data, data, len);
        t->dlen = len;
    }
    nbds_tx_push(c, t);
}

void nbds_opt_error(struct nbds_client *c, uint32_t opt, uint32_t err, const char *msg)
{
    nbds_opt_reply(c, opt, NBD_REP_ERR(err), msg, (uint32_t)strlen(msg));
}

/* ---------------------------------------------------------------- export data */

uint16_t nbds_export_flags(const struct sto_volume *v)
{
    uint16_t f = NBD_TFLAG_HAS_FLAGS | NBD_TFLAG_SEND_FLUSH | NBD_TFLAG_SEND_FUA |
                 NBD_TFLAG_SEND_WRITE_ZEROES;

    /*
     * Every connection to a volume goes through the volume's one iSCSI session: a
     * SYNCHRONIZE CACHE from any of them covers the completed writes of all of them.
     */
    f |= NBD_TFLAG_CAN_MULTI_CONN;
    if (sto_volume_access(v)->read_only)
        return f | NBD_TFLAG_READ_ONLY; /* no trim to offer either */
    if (sto_volume_info(v)->cap.thin)
        f |= NBD_TFLAG_SEND_TRIM;
    return f;
}

static uint32_t pref_block(const struct sto_volume *v)
{
    uint32_t bs = sto_volume_info(v)->cap.block_size;

    return bs > 4096 ? bs : 4096;
}

/*
 * Find the export by name; "" picks the only volume when there is exactly one. A volume of
 * another storage loop moves the client there (*moved, the caller answers nothing: that
 * loop runs the option again).
 */
static struct sto_volume *export_find(struct nbds_client *c, const char *name, bool *moved)
{
    char ids[2][STO_ID_MAX];

    *moved = false;
    if (!*name) {
        if (nbds_volume_ids(c->srv, ids, 2) != 1)
            return NULL;
        name = ids[0];
    }
    if (c->srv->peers.server_of && !c->rerun) {
        struct nbds_server *to = c->srv->peers.server_of(c->srv->peers.arg, name);
        if (to && to != c->srv) {
            nbds_move(c, to);
            *moved = true;
            return NULL;
        }
    }
    return sto_volume_find(c->srv->m, name);
}

static void attach(struct nbds_client *c, struct sto_volume *v)
{
    sto_volume_ref(v);
    c->vol = v;
    nbds_handshake_end(c);
    nbds_expect(c, C_REQ_HDR);
    if (c->tls_up)
        log_info("nbd", "%s (identity %s%s%s) uses volume %s%s", c->peer,
                 *c->identity ? "\"" : "", *c->identity ? c->identity : "none",
                 *c->identity ? "\"" : "", sto_volume_name(v),
                 sto_volume_access(v)->read_only ? " (read-only)" : "");
    else
        log_debug("nbd", "%s attached to lun %u", c->peer, sto_volume_info(v)->lun);
}

/* ---------------------------------------------------------------- options */

static void handle_opt_info(struct nbds_client *c, bool go)
{
    uint32_t len = c->optlen, namelen;
    char name[STO_ID_MAX + 8];
    uint16_t nreq;
    bool want_name = false, want_desc = false, moved;
    struct sto_volume *v;
    uint8_t buf[64];

    if (len < 6 || (namelen = be_get32(c->optdata)) > len - 6) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "malformed info request");
        return;
    }
    nreq = be_get16(c->optdata + 4 + namelen);
    if (6 + namelen + 2u * nreq != len) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "info request length mismatch");
        return;
    }
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t what = be_get16(c->optdata + 6 + namelen + 2u * i);
        want_name |= what == NBD_INFO_NAME;
        want_desc |= what == NBD_INFO_DESCRIPTION;
    }
    if (namelen >= sizeof(name) || memchr(c->optdata + 4, '\0', namelen)) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_UNKNOWN, "no such export");
        return;
    }
    memcpy(name, c->optdata + 4, namelen);
    name[namelen] = '\0';
    v = export_find(c, name, &moved);
    if (moved)
        return;
    if (!v) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_UNKNOWN, *name ? "no such export (the export name "
                                                          "is a volume id)"
                                                        : "no default export");
        return;
    }
    if (!nbds_access_ok(c, v)) {
        nbds_opt_error(c, c->opt, NBD_REP_ERR_POLICY, "this client may not use this volume "
                       "(not in its allow list)");
        return;
    }
    const struct sto_lun_info *li = sto_volume_info(v);
    be_put16(buf, NBD_INFO_EXPORT);
    be_put64(buf + 2, li->size_bytes);
    be_put16(buf + 10, nbds_export_flags(v));
    nbds_opt_reply(c, c->opt, NBD_REP_INFO, buf, 12);
    be_put16(buf, NBD_INFO_BLOCK_SIZE);
    be_put32(buf + 2, li->cap.block_size);
    be_put32(buf + 6, pref_block(v));
    be_put32(buf + 10, MAX_REQUEST);
    nbds_opt_reply(c, c->opt, NBD_REP_INFO, buf, 14);
    if (want_name) {
        uint8_t nb[2 + STO_ID_MAX];
        size_t n = strlen(name);
        be_put16(nb, NBD_INFO_NAME);
        memcpy(nb + 2, name, n);
        nbds_opt_reply(c, c->opt, NBD_REP_INFO, nb, (uint32_t)(2 + n));
    }
    if (want_desc) {
        char desc[128];
        uint8_t db[2 + sizeof(desc)];
        int n = snprintf(desc, sizeof(desc), "%s %s lun %u", li->inq.vendor, li->inq.product,
                         li->lun);
        be_put16(db, NBD_INFO_DESCRIPTION);
        memcpy(db + 2, desc, (size_t)n);
        nbds_opt_reply(c, c->opt, NBD_REP_INFO, db, (uint32_t)(2 + n));
    }
    nbds_opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
    if (go)
        attach(c, v);
}

void nbds_handle_option(struct nbds_client *c)
{
    if (!nbds_tls_gate(c))
        return;
    switch (c->opt) {
    case NBD_OPT_EXPORT_NAME: {
        char name[STO_ID_MAX + 8];
        struct sto_volume *v = NULL;
        bool moved = false;
        if (c->optlen < sizeof(name) && !memchr(c->optdata, '\0', c->optlen)) {
            memcpy(name, c->optdata, c->optlen);
            name[c->optlen] = '\0';
            v = export_find(c, name, &moved);
        }
        if (moved)
            return;
        if (!v) {
            /* this option has no error reply: the protocol says to hang up */
            nbds_client_close(c, "export name is not a volume id");
            return;
        }
        if (!nbds_access_ok(c, v)) {
            nbds_client_close(c, "not in the volume's allow list");
            return;
        }
        struct txbuf *t = nbds_tx_new(c);
        if (!t)
            return;
        be_put64(t->hdr, sto_volume_info(v)->size_bytes);
        be_put16(t->hdr + 8, nbds_export_flags(v));
        t->hlen = 10;
        if (!c->no_zeroes) {
            t->data = calloc(1, 124);
            t->dlen = t->data ? 124 : 0;
        }
        nbds_tx_push(c, t);
        attach(c, v);
        return;
    }
    case NBD_OPT_ABORT:
        nbds_opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        nbds_client_flush(c);
        nbds_client_close(c, "client aborted");
        return;
    case NBD_OPT_LIST: {
        char ids[256][STO_ID_MAX];
        size_t n;
        if (c->optlen) {
            nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "list takes no data");
            break;
        }
        n = nbds_volume_ids(c->srv, ids, 256);
        for (size_t i = 0; i < n && i < 256; i++) {
            uint8_t b[4 + STO_ID_MAX];
            uint32_t l = (uint32_t)strlen(ids[i]);
            be_put32(b, l);
            memcpy(b + 4, ids[i], l);
            nbds_opt_reply(c, c->opt, NBD_REP_SERVER, b, 4 + l);
        }
        nbds_opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        break;
    }
    case NBD_OPT_STRUCTURED_REPLY:
        if (c->optlen) {
            nbds_opt_error(c, c->opt, NBD_REP_ERR_INVALID, "structured reply takes no data");
            break;
        }
        c->structured = true;
        nbds_opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        handle_opt_info(c, c->opt == NBD_OPT_GO);
        break;
    case NBD_OPT_STARTTLS:
        nbds_starttls(c);
        break;
    default:
        nbds_opt_error(c, c->opt, NBD_REP_ERR_UNSUP, "option not supported");
        break;
    }
}
