/*
 * stacks.h - the offload broker (the "offload application" of the claims).
 *
 * A requester (the iSCSI initiator) asks the broker for a TCP connection. The broker
 * places it on the TOE in preference to the host stack (claim 8), generates it, reserves
 * it and its local port for the requester (claim 4), hands it over as a descriptor that
 * carries the connection and the reserved port (claim 5), and takes it back on release
 * (claim 3). Both stacks behave as one (claim 8): one port space (--port-range, guarded on
 * the host by placeholder binds), one connection table (the whole machine's kernel TCP
 * sockets merged with the TOE's), one set of TCP counters labelled by stack.
 *
 * The broker knows no offload engine by name: it places connections on whatever engine its
 * owner gives it as a table of functions (struct stk_offload_ops; the appliance fills it
 * with the emulated TOE's when toegw is built with it), or on the host stack alone.
 *
 * Threading: every function is thread-safe (one mutex); connections themselves belong to
 * whichever thread their owner runs on.
 */
#ifndef TOEGW_STACKS_STACKS_H
#define TOEGW_STACKS_STACKS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/transport.h"

struct stk_broker;
struct stk_offload_ops;

#define STK_NAME_MAX 64

struct stk_broker_config {
    uint16_t port_lo, port_hi;  /* the broker's local port range (20000-20999) */
    /*
     * The offload engine to place on first; NULL: host stack only (--no-toe, or toegw
     * built without the TOE). The broker keeps a copy of the table; ops->ctx stays borrowed
     * and must outlive the broker (or a stk_broker_set_offload that replaces it).
     */
    const struct stk_offload_ops *offload;
};

/* NULL and errno on failure. Caller frees with stk_broker_free (after releasing all). */
struct stk_broker *stk_broker_new(const struct stk_broker_config *cfg);
void stk_broker_free(struct stk_broker *b);
/* Attach (a copy of `ops`, its ctx borrowed) or detach (NULL) the offload engine at run time. */
void stk_broker_set_offload(struct stk_broker *b, const struct stk_offload_ops *ops);

/* "LO-HI" into lo/hi. 0 or -EINVAL. */
int stk_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi);

/* ---------------------------------------------------------------- reservations */

struct stk_reservation {
    uint64_t id;
    char holder[STK_NAME_MAX];
    uint16_t port;
    enum stk_policy stack;
    time_t created;
    bool in_use;                /* a connection currently uses its port */
    bool has_uid;               /* only a requester of this uid may take it (broker socket
                                   clients, by SO_PEERCRED) */
    uid_t uid;
};

/*
 * Reserve a local port of the range for `holder` (port 0: any free one). The port is held
 * on the host stack from now on. 0, -EADDRINUSE (taken on either stack), -ERANGE (outside
 * the range), -ENOSPC (range exhausted), -EINVAL.
 */
int stk_reserve(struct stk_broker *b, const char *holder, uint16_t port, enum stk_policy stack,
                struct stk_reservation *out);
/* The same, for the holder running as `uid` only (has_uid false: any uid). */
int stk_reserve_uid(struct stk_broker *b, const char *holder, bool has_uid, uid_t uid,
                    uint16_t port, enum stk_policy stack, struct stk_reservation *out);
/* Delete a reservation; its port returns to the pool. 0, -ENOENT, -EBUSY (in use). */
int stk_unreserve(struct stk_broker *b, uint64_t id);
/* Snapshot; *out: caller frees with free(). */
int stk_list_reservations(struct stk_broker *b, struct stk_reservation **out, size_t *n);
int stk_get_reservation(struct stk_broker *b, uint64_t id, struct stk_reservation *out);

/* ---------------------------------------------------------------- descriptors */

/* Why a connection is on the stack it is on. */
enum stk_placement {
    STK_PLACED_TOE = 0,         /* the TOE took it (preferred) */
    STK_PLACED_HOST_ASKED,      /* the requester asked for the host stack */
    STK_PLACED_HOST_NO_TOE,     /* no TOE in this process (--no-toe, or none built in) */
    STK_PLACED_HOST_LINK_DOWN,  /* the TOE's link is down */
    STK_PLACED_HOST_TOE_FULL,   /* the TOE is at --toe-max-conns */
    STK_PLACED_HOST_UNREACHABLE,/* the destination is not reachable through the TOE */
    STK_PLACED_HOST_TOE_UNREACHABLE, /* a TOE connect to it got no answer lately */
};

/*
 * How long a destination stays "toe_unreachable" after a TOE connect to it got no answer
 * (the engine's connect timeout): meanwhile `auto` places connections to it on the host
 * stack at once and `toe` refuses them at once; after it, the TOE is tried again.
 */
#define STK_TOE_UNREACHABLE_HOLD_MS 30000u
const char *stk_placement_name(enum stk_placement p);

/*
 * The connection descriptor handed to the requester (claim 5): the TCP/IP connection (a
 * pollable fd and its transport ops), the stack it lives on, the addresses and the local
 * port reserved for `owner`. Owned by the broker; the requester borrows it until
 * stk_release. Only its owner may use or release it.
 */
struct stk_desc {
    uint64_t id;
    char owner[STK_NAME_MAX];
    enum stk_stack stack;
    enum stk_placement placement;
    uint16_t port;              /* the reserved local port */
    uint64_t reservation;       /* the reservation it uses (0: a port from the pool) */
    struct sockaddr_in remote;
    struct stk_conn *conn;      /* conn->local is the local address once connected */
    time_t created;
};

struct stk_request {
    const char *owner;          /* who the connection is reserved for */
    struct sockaddr_in dst;
    enum stk_policy policy;     /* auto: TOE first; toe: TOE or fail; host */
    uint64_t reservation;       /* 0, or a reservation of this owner's to take the port of */
    /*
     * The reservation may be another holder's: the request comes from an administrator
     * (the REST API) who hands that holder's port to this owner's connection.
     */
    bool any_holder;
    /*
     * The holder the requester speaks for when it names a reservation (NULL: the owner);
     * a broker socket client owns its connections as "pid/comm" and claims a reservation
     * by its holder's name.
     */
    const char *holder;
    /* The requester's uid (SO_PEERCRED); a reservation made for a uid checks it. */
    bool has_uid;
    uid_t uid;
};

/*
 * Generate a connection for req->owner (claim 4): place it, bind it to a reserved port,
 * start the connect. *out is borrowed until stk_release. On failure returns -errno and
 * writes why into err: -ENETDOWN / -EMFILE / -ENETUNREACH (policy toe and the TOE cannot
 * take it), -ENODEV (policy toe without a TOE), -ENOSPC (no free port), -ENOENT / -EPERM
 * (unknown reservation / another owner's), -EBUSY (reservation already in use).
 */
int stk_request(struct stk_broker *b, const struct stk_request *req, struct stk_desc **out,
                char *err, size_t errlen);
/*
 * Return a descriptor to the broker (claim 3): the connection is closed (reset when
 * `abort`), its port is no longer reserved for the owner (a port taken from a reservation
 * stays with that reservation). -EPERM when `owner` is not the descriptor's owner.
 */
int stk_release(struct stk_broker *b, struct stk_desc *d, const char *owner, bool abort);
/* Release the descriptor whose connection is `c` (as stk_release). -ENOENT when none. */
int stk_release_conn(struct stk_broker *b, struct stk_conn *c, const char *owner, bool abort);
/* Recreate a saved reservation with its id and creation time (state restore). */
int stk_restore_reservation(struct stk_broker *b, const struct stk_reservation *r);
/* The descriptor's connection, for its owner only (NULL and EPERM otherwise). */
struct stk_conn *stk_desc_conn(struct stk_desc *d, const char *owner);
/*
 * The descriptor's host-stack socket now lives in another process (passed as SCM_RIGHTS):
 * the broker drops its own reference without shutting the connection down and keeps the
 * descriptor (owner, port, reservation, table row) until stk_release, which then only
 * returns the port. 0, -EPERM (another owner's), -EINVAL (not a host connection).
 */
int stk_desc_hand_over(struct stk_broker *b, struct stk_desc *d, const char *owner);

/* ---------------------------------------------------------------- one table, one MIB */

struct stk_conn_row {
    char id[32];                /* "toe-<n>" / "host-<inode>" */
    enum stk_stack stack;
    struct sockaddr_in local, remote;
    char state[16];             /* "ESTABLISHED", ... */
    char owner[STK_NAME_MAX];   /* the descriptor's owner, or "pid/comm" of a host socket */
    uint64_t bytes_in, bytes_out;
    char placement[24];         /* for broker connections: why there; else "" */
};
/* The unified table: every IPv4 TCP socket of the host plus the TOE's. Caller frees *out. */
int stk_list_connections(struct stk_broker *b, struct stk_conn_row **out, size_t *n);
/*
 * The same table without the owning process of host sockets that are not the broker's
 * (their `owner` is ""): naming those walks every process's descriptors in /proc. For
 * callers that need only addresses, states and byte counts (the API's history, each second).
 */
int stk_list_connection_counters(struct stk_broker *b, struct stk_conn_row **out, size_t *n);
/*
 * Fill `owner` and `placement` of the rows (stack, local and remote set) that are the
 * broker's connections or its placeholder binds; other rows are left alone.
 */
void stk_broker_annotate(struct stk_broker *b, struct stk_conn_row *rows, size_t n);

/* TCP MIB counters of one stack. */
struct stk_tcp_counters {
    uint64_t active_opens, passive_opens, attempt_fails, estab_resets, curr_estab;
    uint64_t in_segs, out_segs, retrans_segs, in_errs, out_rsts;
};
int stk_tcp_counters(struct stk_broker *b, enum stk_stack stack, struct stk_tcp_counters *out);

struct stk_broker_stats {
    uint64_t requests, granted_toe, granted_host, refused, released;
    uint64_t ports_held;        /* range ports held now (placeholders, host connections) */
    uint64_t latency_ns[2];     /* summed request→descriptor time per stack (host, toe) */
    uint64_t latency_count[2];
};
void stk_broker_stats(struct stk_broker *b, struct stk_broker_stats *out);

/* ---------------------------------------------------------------- the offload engine */

/*
 * What the broker needs of an offload engine (claim 8's "TOE"), as functions over an opaque
 * context. Every function may be called from any thread, with the broker's lock held: it
 * must not call back into the broker. All of them are required.
 */
struct stk_offload_ops {
    void *ctx;                  /* borrowed: the engine (e.g. a struct toe_dev) */
    /* True when the engine's link is up (it may take connections). */
    bool (*link_up)(void *ctx);
    /*
     * Open a TCP connection from the engine's address and exactly `local_port` to `dst`;
     * *out is a new conn in the connecting state, its stack STK_STACK_TOE (caller closes it
     * with stk_conn_close). 0, -ENETDOWN (link down), -EMFILE (engine full), -EADDRINUSE
     * (the engine still has that port to that peer), -ENETUNREACH, or another -errno.
     */
    int (*connect)(void *ctx, const struct sockaddr_in *dst, uint16_t local_port,
                   struct stk_conn **out);
    /* The calling thread's last failure of the engine, as one lowercase line ("" if none). */
    const char *(*last_error)(void *ctx);
    /*
     * The engine's connection table: local, remote, state, bytes_in and bytes_out of each
     * row filled, the rest zero. *out: caller frees with free(). 0 or -errno.
     */
    int (*list_conns)(void *ctx, struct stk_conn_row **out, size_t *n);
    /* The engine's TCP MIB counters (passive_opens stays 0 for an initiator-only engine). */
    int (*tcp_counters)(void *ctx, struct stk_tcp_counters *out);
    /*
     * 0, or the -errno that failed one of the engine's conns; -EHOSTUNREACH means its
     * connect got no answer within the engine's connect timeout. NULL: never asked.
     */
    int (*conn_error)(void *ctx, const struct stk_conn *c);
};

#endif
