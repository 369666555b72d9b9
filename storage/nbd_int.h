/*
 * nbd_int.h - the NBD server's internals, shared by its sources: nbd.c (transmission: the
 * input state machine, requests, replies, client lifetime), nbd_handshake.c (option
 * haggling), nbd_accept.c (listening, accepting at the fd limit, handshake caps and
 * deadline) and nbd_starttls.c (NBD_OPT_STARTTLS, the TLS handshake, who may use what).
 * Everything here runs on the storage loop.
 */
#ifndef TOEGW_STORAGE_NBD_INT_H
#define TOEGW_STORAGE_NBD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "storage/loop.h"
#include "storage/manager.h"
#include "storage/nbd.h"
#include "storage/nbd_tls.h"
#include "storage/tls_creds.h"
#include "storage/wire.h"

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
    NBD_REP_ERR_TLS_REQD = 5, NBD_REP_ERR_UNKNOWN = 6, NBD_REP_ERR_SHUTDOWN = 7,
    NBD_REP_ERR_TOO_BIG = 9,
};
enum { NBD_INFO_EXPORT = 0, NBD_INFO_NAME = 1, NBD_INFO_DESCRIPTION = 2,
       NBD_INFO_BLOCK_SIZE = 3 };

#define NBD_TFLAG_HAS_FLAGS (1u << 0)
#define NBD_TFLAG_READ_ONLY (1u << 1)
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
    C_TLS_ACK,    /* STARTTLS answered: its ACK leaves in plaintext, then the handshake */
    C_TLS_HANDSHAKE, /* the TLS handshake on the socket; then options again (C_OPT_HDR) */
    C_MOVING,     /* on its way to another loop's server (nbd_move.c) */
    C_CLOSING,
};

/* One reply: header, data, tail, written through the client's gather-write queue. */
struct txbuf {
    struct sto_wire_buf wb;  /* its parts are set from the fields below by nbds_tx_push */
    uint8_t hdr[40];
    uint32_t hlen;
    uint8_t *data;       /* owned */
    uint32_t dlen;
    uint32_t held;       /* of dlen, the bytes counted in the client's `held` (read data) */
    uint8_t *tail;       /* owned (error message) */
    uint32_t tlen;
};

struct nbds_client;

struct nreq {
    struct nbds_client *c;
    uint64_t handle;
    uint16_t type, flags;
    uint64_t offset;
    uint32_t len;
    uint8_t *buf;        /* owned; when set, its len bytes are counted in c->held */
};

struct nbds_client {
    struct nbds_server *srv;
    int fd;
    struct sto_watch w;
    struct sto_defer tx_defer;   /* replies queued by io_done: one flush per loop iteration */
    enum cstate st;
    bool no_zeroes, structured, fixed;
    struct sto_volume *vol;      /* referenced while attached */
    uint8_t *rbuf;
    size_t rstart, rend;
    bool rx_drained;             /* the last socket read came back short (nbd.c) */
    uint8_t hdr[32];
    uint8_t *dst;
    size_t need, got;
    uint32_t opt, optlen;
    uint8_t optdata[MAX_OPTION_DATA];
    uint64_t discard;
    struct nreq *cur;            /* write whose payload is arriving */
    unsigned inflight;
    /*
     * Data bytes this client holds in toegw: buffers of requests in progress (a write's
     * payload, a read's data) and read data queued for sending. While a new READ or WRITE
     * would take it past the server's buffer limit, the request waits (`parked`, its
     * header kept) and nothing more is read from the socket.
     */
    uint64_t held;
    bool parked;
    uint32_t parked_len;
    bool dead;                   /* socket gone: free once nothing is in flight */
    bool defer_next;             /* the next reply waits for a refused write's payload */
    struct txbuf *deferred;      /* that reply, sent once the payload has been skipped */
    bool free_posted;
    struct sto_wire txq;         /* replies queued for the socket (txbufs) */
    struct nbds_client *next;
    /* handshake phase: linked in the server's list in accept order (see nbd_accept.c) */
    bool handshaking;
    uint64_t accepted_ms;
    struct nbds_client *hs_prev, *hs_next;
    bool is_unix;
    uint32_t addr;               /* IPv4 peer address (network order); unused for unix */
    char peer[64];
    /* TLS (nbd_starttls.c): the session once STARTTLS was answered, and who the client is */
    struct nbds_tls *tls;
    bool tls_up;                 /* handshake done: all traffic goes through tls */
    char identity[TLS_IDENTITY_MAX]; /* "" without TLS or without an identity */
    /* moving to another loop's server (nbd_move.c) */
    struct nbds_server *move_to;
    bool move_hs;                /* it was handshaking: it goes on doing so there */
    bool rerun;                  /* the moved option runs again: it never moves twice */
};

struct nbds_server {
    struct sto_loop *loop;
    struct sto_mgr *m;
    struct nbds_limits lim;
    int lfd;                     /* -1: no listener (takes moved clients only) */
    struct sto_watch w;
    struct nbds_client *clients;
    struct nbds_stats stats;
    /* accepting: paused (listener out of epoll) while at the fd limit */
    bool accept_paused;
    unsigned backoff_ms;
    struct sto_timer accept_timer;
    uint64_t fdlimit_since_ms;   /* start of the current episode, 0: none */
    uint64_t fdlimit_hits;
    /* clients still in the handshake, oldest first; one timer for the oldest's deadline */
    struct nbds_client *hs_head, *hs_tail;
    unsigned nhs;
    struct sto_timer hs_timer;
    struct log_rate log_refused, log_timeout, log_evicted, log_plain, log_tls;
    enum nbds_tls_mode tls_mode;
    const struct tls_creds *creds; /* borrowed; set when tls_mode is not off */
    struct nbds_peers peers;     /* the other loops' servers (server_of NULL: none) */
};

/* Counters are written on the loop and read by the API's threads (/metrics). */
static inline void nbds_stat_add(uint64_t *v, uint64_t d)
{
    __atomic_fetch_add(v, d, __ATOMIC_RELAXED);
}

/* nbd.c */
struct txbuf *nbds_tx_new(struct nbds_client *c);      /* NULL: the client was closed */
void nbds_tx_push(struct nbds_client *c, struct txbuf *t);
void nbds_expect(struct nbds_client *c, enum cstate st);
void nbds_client_flush(struct nbds_client *c);
void nbds_client_deferred_flush(struct sto_defer *d);   /* the cb of tx_defer */
/* Close the socket (why NULL: the client hung up); the client is freed later. */
void nbds_client_close(struct nbds_client *c, const char *why);
void nbds_client_cb(struct sto_watch *w, uint32_t revents);
/* Free a client nothing refers to any more (no request in flight). */
void nbds_client_destroy(struct nbds_client *c);

/* nbd_handshake.c: run the option in c->opt / c->optdata (the client may be closed after). */
void nbds_handle_option(struct nbds_client *c);
uint16_t nbds_export_flags(const struct sto_volume *v);
/* An option's reply: header and len bytes of data. */
void nbds_opt_reply(struct nbds_client *c, uint32_t opt, uint32_t type, const void *data,
                    uint32_t len);
/* An NBD_REP_ERR_* reply to option opt, with a message. */
void nbds_opt_error(struct nbds_client *c, uint32_t opt, uint32_t err, const char *msg);

/* nbd_accept.c: the client left the handshake (attached to a volume, or closed). */
void nbds_handshake_end(struct nbds_client *c);
/*
 * A client moved here that was handshaking goes on, with the deadline it had, if this
 * server's caps admit it (the oldest handshake may be closed to make room); false: refused
 * (logged), the caller closes it.
 */
bool nbds_handshake_adopt(struct nbds_client *c);

/* nbd_move.c */
/*
 * Move c (in C_OPT_HDR, its option c->opt not answered) to server `to`, whose loop runs the
 * option again. On return c is no longer this loop's: the caller touches it no more.
 */
void nbds_move(struct nbds_client *c, struct nbds_server *to);
/* The ids of the live volumes (of every peer too), at most max; returns how many exist. */
size_t nbds_volume_ids(struct nbds_server *srv, char (*ids)[STO_ID_MAX], size_t max);
/* True when a line of this kind may be logged now; *left_out: how many were not. */

/* nbd_starttls.c */
/* NBD_OPT_STARTTLS: ACK and go to C_TLS_ACK, or refuse. */
void nbds_starttls(struct nbds_client *c);
/* Run the C_TLS_ACK / C_TLS_HANDSHAKE states on a socket event. */
void nbds_tls_step(struct nbds_client *c);
/*
 * Whether option c->opt may run: false (answered NBD_REP_ERR_TLS_REQD, or the client
 * closed for NBD_OPT_EXPORT_NAME) when TLS is required and not up yet.
 */
bool nbds_tls_gate(struct nbds_client *c);
/* Whether c may use v (its allow list); false after logging the refusal. */
bool nbds_access_ok(struct nbds_client *c, struct sto_volume *v);

#endif
