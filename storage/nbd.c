/*
 * nbd.c - fixed-newstyle NBD server on the storage loop.
 *
 * Each client is a state machine fed from a read-ahead buffer: handshake flags, option
 * haggling (EXPORT_NAME, GO, INFO, LIST, STRUCTURED_REPLY, ABORT), then transmission.
 * Requests are validated (nbdkit-style) before anything is queued; valid ones go to the
 * volume as async I/O and their replies leave in completion order. A client that
 * disconnects mid-request is freed once its in-flight requests have completed.
 */
#include "storage/nbd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/pdu.h"

#define NBD_MAGIC 0x4e42444d41474943ull          /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC 0x49484156454f5054ull     /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ull
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

#define NBD_FLAG_FIXED_NEWSTYLE 1
#define NBD_FLAG_NO_ZEROES 2
#define NBD_FLAG_C_FIXED_NEWSTYLE 1
#define NBD_FLAG_C_NO_ZEROES 2

enum {
    NBD_OPT_EXPORT_NAME = 1, NBD_OPT_ABORT = 2, NBD_OPT_LIST = 3, NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6, NBD_OPT_GO = 7, NBD_OPT_STRUCTURED_REPLY = 8,
};
enum { NBD_REP_ACK = 1, NBD_REP_SERVER = 2, NBD_REP_INFO = 3 };
#define NBD_REP_ERR(n) (0x80000000u | (n))
enum {
    NBD_REP_ERR_UNSUP = 1, NBD_REP_ERR_POLICY = 2, NBD_REP_ERR_INVALID = 3,
    NBD_REP_ERR_UNKNOWN = 6, NBD_REP_ERR_SHUTDOWN = 7, NBD_REP_ERR_TOO_BIG = 9,
};
enum { NBD_INFO_EXPORT = 0, NBD_INFO_NAME = 1, NBD_INFO_DESCRIPTION = 2,
       NBD_INFO_BLOCK_SIZE = 3 };

#define NBD_TFLAG_HAS_FLAGS (1u << 0)
#define NBD_TFLAG_SEND_FLUSH (1u << 2)
#define NBD_TFLAG_SEND_FUA (1u << 3)
#define NBD_TFLAG_SEND_TRIM (1u << 5)
#define NBD_TFLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_TFLAG_CAN_MULTI_CONN (1u << 8)

enum { NBD_CMD_READ = 0, NBD_CMD_WRITE = 1, NBD_CMD_DISC = 2, NBD_CMD_FLUSH = 3,
       NBD_CMD_TRIM = 4, NBD_CMD_CACHE = 5, NBD_CMD_WRITE_ZEROES = 6 };
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)

#define NBD_REPLY_FLAG_DONE 1
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_ERROR 0x8001

#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

#define MAX_REQUEST (32u * 1024 * 1024)  /* the maximum block size we announce */
#define MAX_OPTION_DATA 4096
#define MAX_INFLIGHT 128                  /* per client: stop reading beyond this */
#define RBUF 65536
#define DIRECT_MIN 65536

enum cstate {
    C_FLAGS,      /* the client's 32-bit flags */
    C_OPT_HDR,    /* IHAVEOPT, option, length */
    C_OPT_DATA,
    C_REQ_HDR,    /* transmission request header */
    C_REQ_DATA,   /* write payload */
    C_DISCARD,    /* payload of a refused write, skipped to stay in sync */
    C_CLOSING,
};

struct txbuf {
    struct txbuf *next;
    uint8_t hdr[40];
    uint32_t hlen;
    uint8_t *data;       /* owned */
    uint32_t dlen;
    uint8_t *tail;       /* owned (error message) */
    uint32_t tlen;
    size_t done;
};

struct nbds_client;

struct nreq {
    struct nbds_client *c;
    uint64_t handle;
    uint16_t type, flags;
    uint64_t offset;
    uint32_t len;
    uint8_t *buf;
};

struct nbds_client {
    struct nbds_server *srv;
    int fd;
    struct sto_watch w;
    enum cstate st;
    bool no_zeroes, structured, fixed;
    struct sto_volume *vol;      /* referenced while attached */
    uint8_t *rbuf;
    size_t rstart, rend;
    uint8_t hdr[32];
    uint8_t *dst;
    size_t need, got;
    uint32_t opt, optlen;
    uint8_t optdata[MAX_OPTION_DATA];
    uint64_t discard;
    struct nreq *cur;            /* write whose payload is arriving */
    unsigned inflight;
    bool dead;                   /* socket gone: free once nothing is in flight */
    bool defer_next;             /* the next reply waits for a refused write's payload */
    struct txbuf *deferred;      /* that reply, sent once the payload has been skipped */
    bool free_posted;
    struct txbuf *tx_head, *tx_tail;
    struct nbds_client *next;
    char peer[64];
};

struct nbds_server {
    struct sto_loop *loop;
    struct sto_mgr *m;
    int lfd;
    struct sto_watch w;
    struct nbds_client *clients;
    struct nbds_stats stats;
};

static void client_cb(struct sto_watch *w, uint32_t revents);
static void expect(struct nbds_client *c, enum cstate st);

/* Counters are written on the loop and read by the API's threads (/metrics). */
static inline void stat_add(uint64_t *v, uint64_t d)
{
    __atomic_fetch_add(v, d, __ATOMIC_RELAXED);
}
static void client_close(struct nbds_client *c, const char *why);
static void client_flush(struct nbds_client *c);

/* ---------------------------------------------------------------- output */

static struct txbuf *tx_new(struct nbds_client *c)
{
    struct txbuf *t = calloc(1, sizeof(*t));

    if (!t) {
        client_close(c, "out of memory");
        return NULL;
    }
    return t;
}

static void tx_push(struct nbds_client *c, struct txbuf *t)
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
    if (c->tx_tail)
        c->tx_tail->next = t;
    else
        c->tx_head = t;
    c->tx_tail = t;
}

static void tx_free_all(struct nbds_client *c)
{
    if (c->deferred) {
        free(c->deferred->data);
        free(c->deferred->tail);
        free(c->deferred);
        c->deferred = NULL;
    }
    while (c->tx_head) {
        struct txbuf *t = c->tx_head;
        c->tx_head = t->next;
        free(t->data);
        free(t->tail);
        free(t);
    }
    c->tx_tail = NULL;
}

static void opt_reply(struct nbds_client *c, uint32_t opt, uint32_t type, const void *data,
                      uint32_t len)
{
    struct txbuf *t = tx_new(c);

    if (!t)
        return;
    isc_put64(t->hdr, 0, NBD_REP_MAGIC);
    isc_put32(t->hdr, 8, opt);
    isc_put32(t->hdr, 12, type);
    isc_put32(t->hdr, 16, len);
    t->hlen = 20;
    if (len) {
        t->data = malloc(len);
        if (!t->data) {
            free(t);
            client_close(c, "out of memory");
            return;
        }
        memcpy(t->data, data, len);
        t->dlen = len;
    }
    tx_push(c, t);
}

static void opt_error(struct nbds_client *c, uint32_t opt, uint32_t err, const char *msg)
{
    opt_reply(c, opt, NBD_REP_ERR(err), msg, (uint32_t)strlen(msg));
}

/* ---------------------------------------------------------------- export data */

static uint16_t export_flags(const struct sto_volume *v)
{
    uint16_t f = NBD_TFLAG_HAS_FLAGS | NBD_TFLAG_SEND_FLUSH | NBD_TFLAG_SEND_FUA |
                 NBD_TFLAG_SEND_WRITE_ZEROES;

    /*
     * Every connection to a volume goes through the volume's one iSCSI session: a
     * SYNCHRONIZE CACHE from any of them covers the completed writes of all of them.
     */
    f |= NBD_TFLAG_CAN_MULTI_CONN;
    if (sto_volume_info(v)->cap.thin)
        f |= NBD_TFLAG_SEND_TRIM;
    return f;
}

static uint32_t pref_block(const struct sto_volume *v)
{
    uint32_t bs = sto_volume_info(v)->cap.block_size;

    return bs > 4096 ? bs : 4096;
}

/* Find the export by name; "" picks the only volume when there is exactly one. */
static struct sto_volume *export_find(struct nbds_client *c, const char *name)
{
    if (*name)
        return sto_volume_find(c->srv->m, name);
    char ids[2][STO_ID_MAX];
    if (sto_mgr_volume_ids(c->srv->m, ids, 2) == 1)
        return sto_volume_find(c->srv->m, ids[0]);
    return NULL;
}

static void attach(struct nbds_client *c, struct sto_volume *v)
{
    sto_volume_ref(v);
    c->vol = v;
    expect(c, C_REQ_HDR);
    log_debug("nbd", "%s attached to lun %u", c->peer, sto_volume_info(v)->lun);
}

/* ---------------------------------------------------------------- options */

static void handle_opt_info(struct nbds_client *c, bool go)
{
    uint32_t len = c->optlen, namelen;
    char name[STO_ID_MAX + 8];
    uint16_t nreq;
    bool want_name = false, want_desc = false;
    struct sto_volume *v;
    uint8_t buf[64];

    if (len < 6 || (namelen = isc_get32(c->optdata, 0)) > len - 6) {
        opt_error(c, c->opt, NBD_REP_ERR_INVALID, "malformed info request");
        return;
    }
    nreq = isc_get16(c->optdata, 4 + namelen);
    if (6 + namelen + 2u * nreq != len) {
        opt_error(c, c->opt, NBD_REP_ERR_INVALID, "info request length mismatch");
        return;
    }
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t what = isc_get16(c->optdata, 6 + namelen + 2u * i);
        want_name |= what == NBD_INFO_NAME;
        want_desc |= what == NBD_INFO_DESCRIPTION;
    }
    if (namelen >= sizeof(name) || memchr(c->optdata + 4, '\0', namelen)) {
        opt_error(c, c->opt, NBD_REP_ERR_UNKNOWN, "no such export");
        return;
    }
    memcpy(name, c->optdata + 4, namelen);
    name[namelen] = '\0';
    v = export_find(c, name);
    if (!v) {
        opt_error(c, c->opt, NBD_REP_ERR_UNKNOWN, *name ? "no such export (the export name "
                                                          "is a volume id)"
                                                        : "no default export");
        return;
    }
    const struct sto_lun_info *li = sto_volume_info(v);
    isc_put16(buf, 0, NBD_INFO_EXPORT);
    isc_put64(buf, 2, li->size_bytes);
    isc_put16(buf, 10, export_flags(v));
    opt_reply(c, c->opt, NBD_REP_INFO, buf, 12);
    isc_put16(buf, 0, NBD_INFO_BLOCK_SIZE);
    isc_put32(buf, 2, li->cap.block_size);
    isc_put32(buf, 6, pref_block(v));
    isc_put32(buf, 10, MAX_REQUEST);
    opt_reply(c, c->opt, NBD_REP_INFO, buf, 14);
    if (want_name) {
        uint8_t nb[2 + STO_ID_MAX];
        size_t n = strlen(name);
        isc_put16(nb, 0, NBD_INFO_NAME);
        memcpy(nb + 2, name, n);
        opt_reply(c, c->opt, NBD_REP_INFO, nb, (uint32_t)(2 + n));
    }
    if (want_desc) {
        char desc[128];
        uint8_t db[2 + sizeof(desc)];
        int n = snprintf(desc, sizeof(desc), "%s %s lun %u", li->inq.vendor, li->inq.product,
                         li->lun);
        isc_put16(db, 0, NBD_INFO_DESCRIPTION);
        memcpy(db + 2, desc, (size_t)n);
        opt_reply(c, c->opt, NBD_REP_INFO, db, (uint32_t)(2 + n));
    }
    opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
    if (go)
        attach(c, v);
}

static void handle_option(struct nbds_client *c)
{
    switch (c->opt) {
    case NBD_OPT_EXPORT_NAME: {
        char name[STO_ID_MAX + 8];
        struct sto_volume *v = NULL;
        if (c->optlen < sizeof(name) && !memchr(c->optdata, '\0', c->optlen)) {
            memcpy(name, c->optdata, c->optlen);
            name[c->optlen] = '\0';
            v = export_find(c, name);
        }
        if (!v) {
            /* this option has no error reply: the protocol says to hang up */
            client_close(c, "export name is not a volume id");
            return;
        }
        struct txbuf *t = tx_new(c);
        if (!t)
            return;
        isc_put64(t->hdr, 0, sto_volume_info(v)->size_bytes);
        isc_put16(t->hdr, 8, export_flags(v));
        t->hlen = 10;
        if (!c->no_zeroes) {
            t->data = calloc(1, 124);
            t->dlen = t->data ? 124 : 0;
        }
        tx_push(c, t);
        attach(c, v);
        return;
    }
    case NBD_OPT_ABORT:
        opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        client_flush(c);
        client_close(c, "client aborted");
        return;
    case NBD_OPT_LIST: {
        char ids[256][STO_ID_MAX];
        size_t n;
        if (c->optlen) {
            opt_error(c, c->opt, NBD_REP_ERR_INVALID, "list takes no data");
            break;
        }
        n = sto_mgr_volume_ids(c->srv->m, ids, 256);
        for (size_t i = 0; i < n && i < 256; i++) {
            uint8_t b[4 + STO_ID_MAX];
            uint32_t l = (uint32_t)strlen(ids[i]);
            isc_put32(b, 0, l);
            memcpy(b + 4, ids[i], l);
            opt_reply(c, c->opt, NBD_REP_SERVER, b, 4 + l);
        }
        opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        break;
    }
    case NBD_OPT_STRUCTURED_REPLY:
        if (c->optlen) {
            opt_error(c, c->opt, NBD_REP_ERR_INVALID, "structured reply takes no data");
            break;
        }
        c->structured = true;
        opt_reply(c, c->opt, NBD_REP_ACK, NULL, 0);
        break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        handle_opt_info(c, c->opt == NBD_OPT_GO);
        break;
    case NBD_OPT_STARTTLS:
        opt_error(c, c->opt, NBD_REP_ERR_POLICY, "tls is not offered");
        break;
    default:
        opt_error(c, c->opt, NBD_REP_ERR_UNSUP, "option not supported");
        break;
    }
}

/* ---------------------------------------------------------------- transmission */

static void req_free(struct nreq *r)
{
    free(r->buf);
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
    struct txbuf *t = tx_new(c);

    if (!t)
        return;
    if (!c->structured) {
        isc_put32(t->hdr, 0, NBD_SIMPLE_REPLY_MAGIC);
        isc_put32(t->hdr, 4, error);
        isc_put64(t->hdr, 8, r->handle);
        t->hlen = 16;
        if (!error && r->type == NBD_CMD_READ) {
            t->data = r->buf;
            t->dlen = r->len;
            r->buf = NULL;
        }
    } else if (error) {
        size_t ml = msg ? strlen(msg) : 0;
        if (ml > 200)
            ml = 200;
        isc_put32(t->hdr, 0, NBD_STRUCTURED_REPLY_MAGIC);
        isc_put16(t->hdr, 4, NBD_REPLY_FLAG_DONE);
        isc_put16(t->hdr, 6, NBD_REPLY_TYPE_ERROR);
        isc_put64(t->hdr, 8, r->handle);
        isc_put32(t->hdr, 16, (uint32_t)(6 + ml));
        isc_put32(t->hdr, 20, error);
        isc_put16(t->hdr, 24, (uint16_t)ml);
        t->hlen = 26;
        if (ml) {
            t->tail = malloc(ml);
            if (t->tail) {
                memcpy(t->tail, msg, ml);
                t->tlen = (uint32_t)ml;
            } else {
                isc_put32(t->hdr, 16, 6);
                isc_put16(t->hdr, 24, 0);
            }
        }
    } else if (r->type == NBD_CMD_READ) {
        isc_put32(t->hdr, 0, NBD_STRUCTURED_REPLY_MAGIC);
        isc_put16(t->hdr, 4, NBD_REPLY_FLAG_DONE);
        isc_put16(t->hdr, 6, NBD_REPLY_TYPE_OFFSET_DATA);
        isc_put64(t->hdr, 8, r->handle);
        isc_put32(t->hdr, 16, 8 + r->len);
        isc_put64(t->hdr, 20, r->offset);
        t->hlen = 28;
        t->data = r->buf;
        t->dlen = r->len;
        r->buf = NULL;
    } else {
        isc_put32(t->hdr, 0, NBD_STRUCTURED_REPLY_MAGIC);
        isc_put16(t->hdr, 4, NBD_REPLY_FLAG_DONE);
        isc_put16(t->hdr, 6, NBD_REPLY_TYPE_NONE);
        isc_put64(t->hdr, 8, r->handle);
        isc_put32(t->hdr, 16, 0);
        t->hlen = 20;
    }
    tx_push(c, t);
}

static void io_done(void *arg, int err, const char *msg)
{
    struct nreq *r = arg;
    struct nbds_client *c = r->c;

    c->inflight--;
    if (err && r->type == NBD_CMD_TRIM && (err == -EOPNOTSUPP || err == -EINVAL))
        err = 0; /* trim is advisory: a LUN that cannot unmap just keeps the data */
    if (err)
        stat_add(&c->srv->stats.errors, 1);
    if (c->dead) {
        stat_add(&c->srv->stats.disconnects_mid_request, 1);
        req_free(r);
        client_maybe_free(c);
        return;
    }
    reply(c, r, nbd_errno(err), msg);
    req_free(r);
    client_flush(c);
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
    stat_add(&c->srv->stats.requests, 1);
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
    if (type == NBD_CMD_TRIM && !(export_flags(c->vol) & NBD_TFLAG_SEND_TRIM)) {
        *why = "trim was not advertised";
        return NBD_EINVAL;
    }
    return 0;
}

static void handle_request(struct nbds_client *c)
{
    uint32_t magic = isc_get32(c->hdr, 0);
    uint16_t flags = isc_get16(c->hdr, 4), type = isc_get16(c->hdr, 6);
    uint64_t handle = isc_get64(c->hdr, 8), off = isc_get64(c->hdr, 16);
    uint32_t len = isc_get32(c->hdr, 24);
    const char *why = NULL;
    struct nreq *r;
    uint32_t err;

    if (magic != NBD_REQUEST_MAGIC) {
        client_close(c, "bad request magic");
        return;
    }
    if (type == NBD_CMD_DISC) {
        client_flush(c);
        client_close(c, NULL);
        return;
    }
    err = validate(c, type, flags, off, len, &why);
    r = calloc(1, sizeof(*r));
    if (!r) {
        client_close(c, "out of memory");
        return;
    }
    *r = (struct nreq){ .c = c, .handle = handle, .type = type, .flags = flags,
                        .offset = off, .len = len };
    if (err) {
        if (type == NBD_CMD_WRITE) {
            /* its payload follows all the same: skip it, or hang up if absurd */
            if (len > 4 * MAX_REQUEST) {
                req_free(r);
                client_close(c, "oversized write payload");
                return;
            }
            c->discard = len;
            c->st = C_DISCARD;
            c->defer_next = true;
        }
        reply(c, r, err, why);
        req_free(r);
        client_flush(c);
        return;
    }
    if (type == NBD_CMD_CACHE) {
        reply(c, r, 0, NULL); /* a hint; the target's cache is its own business */
        req_free(r);
        return;
    }
    if (type == NBD_CMD_READ || type == NBD_CMD_WRITE) {
        r->buf = malloc(len);
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
static void expect(struct nbds_client *c, enum cstate st)
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
        uint32_t f = isc_get32(c->hdr, 0);
        if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
            client_close(c, "unknown client flags");
            return;
        }
        c->fixed = f & NBD_FLAG_C_FIXED_NEWSTYLE;
        c->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
        expect(c, C_OPT_HDR);
        return;
    }
    case C_OPT_HDR:
        if (isc_get64(c->hdr, 0) != NBD_OPTS_MAGIC) {
            client_close(c, "bad option magic");
            return;
        }
        c->opt = isc_get32(c->hdr, 8);
        c->optlen = isc_get32(c->hdr, 12);
        if (c->optlen > MAX_OPTION_DATA) {
            if (c->optlen > 16 * 1024 * 1024) {
                client_close(c, "absurd option length");
                return;
            }
            opt_error(c, c->opt, NBD_REP_ERR_TOO_BIG, "option data too large");
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
        expect(c, C_OPT_HDR);
        handle_option(c);
        return;
    case C_REQ_HDR:
        handle_request(c);
        if (c->st == C_REQ_HDR)
            expect(c, C_REQ_HDR);
        return;
    case C_REQ_DATA: {
        struct nreq *r = c->cur;
        c->cur = NULL;
        expect(c, C_REQ_HDR);
        start_io(c, r);
        return;
    }
    default:
        return;
    }
}

static void client_read(struct nbds_client *c)
{
    for (int budget = 256; budget > 0 && !c->dead && c->st != C_CLOSING; budget--) {
        if (c->inflight >= MAX_INFLIGHT && (c->st == C_REQ_HDR))
            return; /* io_done kicks us when there is room again */
        if (c->st == C_DISCARD) {
            size_t avail = c->rend - c->rstart;
            size_t n = avail < c->discard ? avail : (size_t)c->discard;
            c->rstart += n;
            c->discard -= n;
            if (!c->discard) {
                expect(c, c->vol ? C_REQ_HDR : C_OPT_HDR);
                if (c->deferred) {
                    struct txbuf *t = c->deferred;
                    c->deferred = NULL;
                    tx_push(c, t);
                    client_flush(c);
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
            if (want >= DIRECT_MIN) {
                ssize_t r = read(c->fd, c->dst + c->got, want);
                if (r > 0) {
                    c->got += (size_t)r;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    client_close(c, r == 0 ? NULL : strerror(errno));
                return;
            }
        } else {
            step(c);
            continue;
        }
        /* refill the read-ahead buffer */
        c->rstart = c->rend = 0;
        ssize_t r = read(c->fd, c->rbuf, RBUF);
        if (r > 0) {
            c->rend = (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            client_close(c, r == 0 ? NULL : strerror(errno));
        return;
    }
    if (!c->dead && c->st != C_CLOSING)
        sto_loop_kick(c->srv->loop, &c->w); /* budget spent: come back soon */
}

static void client_flush(struct nbds_client *c)
{
    struct iovec iov[192];

    while (c->tx_head && !c->dead) {
        int n = 0;
        for (struct txbuf *t = c->tx_head; t && n <= 189; t = t->next) {
            size_t skip = t->done;
            const struct { const void *b; size_t l; } parts[3] = {
                { t->hdr, t->hlen }, { t->data, t->dlen }, { t->tail, t->tlen } };
            for (int i = 0; i < 3; i++) {
                if (skip >= parts[i].l) {
                    skip -= parts[i].l;
                    continue;
                }
                iov[n].iov_base = (uint8_t *)parts[i].b + skip;
                iov[n++].iov_len = parts[i].l - skip;
                skip = 0;
            }
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            client_close(c, strerror(errno));
            return;
        }
        while (w > 0 && c->tx_head) {
            struct txbuf *t = c->tx_head;
            size_t left = t->hlen + t->dlen + t->tlen - t->done;
            if ((size_t)w < left) {
                t->done += (size_t)w;
                break;
            }
            w -= (ssize_t)left;
            c->tx_head = t->next;
            if (!c->tx_head)
                c->tx_tail = NULL;
            free(t->data);
            free(t->tail);
            free(t);
        }
    }
    if (!c->dead)
        sto_loop_mod(c->srv->loop, &c->w, EPOLLIN | (c->tx_head ? EPOLLOUT : 0));
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
    if (c->cur)
        req_free(c->cur);
    if (c->vol)
        sto_volume_unref(c->vol);
    tx_free_all(c);
    free(c->rbuf);
    free(c);
}

/* Free a dead client once nothing refers to it: later, from the loop, exactly once. */
static void client_maybe_free(struct nbds_client *c)
{
    if (!c->dead || c->inflight || c->free_posted)
        return;
    c->free_posted = true;
    sto_loop_post(c->srv->loop, client_free, c);
}

static void client_close(struct nbds_client *c, const char *why)
{
    if (c->dead)
        return;
    if (why)
        log_info("nbd", "closing %s: %s", c->peer, why);
    else
        log_debug("nbd", "%s disconnected", c->peer);
    sto_loop_del(c->srv->loop, &c->w);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->st = C_CLOSING;
    stat_add(&c->srv->stats.clients_now, (uint64_t)-1);
    client_maybe_free(c); /* callers up the stack still hold c: the free comes later */
}

static void client_cb(struct sto_watch *w, uint32_t revents)
{
    struct nbds_client *c = (struct nbds_client *)((char *)w -
                                                   offsetof(struct nbds_client, w));

    if (c->dead)
        return;
    if (revents & EPOLLOUT)
        client_flush(c);
    if (!c->dead)
        client_read(c);
    if (!c->dead)
        client_flush(c);
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

        if (fd < 0)
            return;
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
        c->w.cb = client_cb;
        if (ss.ss_family == AF_INET)
            stk_addr_str((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
        else
            snprintf(c->peer, sizeof(c->peer), "unix client");
        expect(c, C_FLAGS);
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
        tx_push(c, t);
        c->next = srv->clients;
        srv->clients = c;
        stat_add(&srv->stats.clients_total, 1);
        stat_add(&srv->stats.clients_now, 1);
        log_debug("nbd", "client %s connected", c->peer);
        client_flush(c);
    }
}

struct nbds_server *nbds_server_new(struct sto_loop *loop, struct sto_mgr *m, const char *addr,
                                    char *err, size_t errlen)
{
    struct nbds_server *srv = calloc(1, sizeof(*srv));
    int one = 1, fd = -1, ret;

    if (!srv)
        return NULL;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        if (strlen(addr + 5) >= sizeof(un.sun_path)) {
            snprintf(err, errlen, "unix socket path too long");
            goto fail;
        }
        strcpy(un.sun_path, addr + 5);
        unlink(un.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
            goto fail_errno;
    } else {
        struct sockaddr_in sa;
        ret = stk_parse_hostport(addr, 10809, &sa);
        if (ret < 0) {
            snprintf(err, errlen, "bad nbd address \"%.64s\"", addr);
            goto fail;
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            goto fail_errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            goto fail_errno;
    }
    if (listen(fd, 64) < 0)
        goto fail_errno;
    srv->loop = loop;
    srv->m = m;
    srv->lfd = fd;
    srv->w.fd = fd;
    srv->w.cb = accept_cb;
    if (sto_loop_add(loop, &srv->w, EPOLLIN) < 0)
        goto fail_errno;
    return srv;
fail_errno:
    snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
fail:
    if (fd >= 0)
        close(fd);
    free(srv);
    return NULL;
}

void nbds_server_free(struct nbds_server *srv)
{
    if (!srv)
        return;
    sto_loop_del(srv->loop, &srv->w);
    close(srv->lfd);
    while (srv->clients) {
        struct nbds_client *c = srv->clients;
        srv->clients = c->next;
        if (!c->dead) {
            sto_loop_del(srv->loop, &c->w);
            close(c->fd);
        }
        /* in-flight requests hold c: let them see it dead, free it in their callback */
        c->dead = true;
        c->next = NULL;
        if (!c->inflight) {
            if (c->cur)
                req_free(c->cur);
            if (c->vol)
                sto_volume_unref(c->vol);
            tx_free_all(c);
            free(c->rbuf);
            free(c);
        }
    }
    free(srv);
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
