/*
 * broker.c - the offload broker: placement, the shared port space, reservations and
 * connection descriptors.
 *
 * Port space: every port the broker hands out (to a reservation or a connection) is held
 * on the host stack by a placeholder socket bound to 0.0.0.0:PORT, without SO_REUSEADDR and
 * never listening. The kernel's bind() is the arbiter: if it fails, a host application
 * holds the port and neither stack may use it; while it is held, no host application can
 * bind() it, with or without SO_REUSEADDR. A host-stack connection is made from the
 * placeholder socket itself (so the port is never let go); a TOE connection binds the
 * engine's stack to the port while the placeholder keeps it on the host.
 *
 * The TOE is whatever offload engine the broker was given (struct stk_offload_ops); with
 * none, every connection goes to the host stack.
 */
#include "stacks/stacks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "stacks/stacks_int.h"

/* Use of one port of the range. */
enum port_use {
    PORT_FREE = 0,
    PORT_RESERVED,   /* held for a reservation (maybe also used by a connection) */
    PORT_CONN,       /* held for a connection taken from the pool */
};

struct port_slot {
    int fd;              /* placeholder socket; -1 when not held */
    enum port_use use;
};

struct res_node {
    struct stk_reservation r;
    struct res_node *next;
};

struct desc_node {
    struct stk_desc d;
    struct desc_node *next;
};

struct stk_broker {
    pthread_mutex_t lock;
    uint16_t lo, hi;
    struct port_slot *ports;    /* hi - lo + 1 slots */
    uint32_t cursor;            /* where the next pool search starts */
    struct stk_offload_ops offload;
    bool has_offload;           /* offload holds an engine */
    struct res_node *res;
    struct desc_node *descs;
    uint64_t next_res_id, next_desc_id;
    struct stk_broker_stats stats;
    /* destinations a TOE connect got no answer from, until `until_ns` (monotonic) */
    struct {
        struct in_addr addr;
        uint64_t until_ns;
    } unreach[32];
};

const char *stk_placement_name(enum stk_placement p)
{
    switch (p) {
    case STK_PLACED_TOE: return "offloaded";
    case STK_PLACED_HOST_ASKED: return "host requested";
    case STK_PLACED_HOST_NO_TOE: return "no toe";
    case STK_PLACED_HOST_LINK_DOWN: return "toe link down";
    case STK_PLACED_HOST_TOE_FULL: return "toe full";
    case STK_PLACED_HOST_UNREACHABLE: return "unreachable via toe";
    case STK_PLACED_HOST_TOE_UNREACHABLE: return "toe_unreachable";
    }
    return "unknown";
}

int stk_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi)
{
    unsigned long a, b;
    char *end;

    errno = 0;
    a = strtoul(s, &end, 10);
    if (errno || end == s || *end != '-')
        return -EINVAL;
    s = end + 1;
    b = strtoul(s, &end, 10);
    if (errno || end == s || *end || a == 0 || b > 65535 || a > b)
        return -EINVAL;
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return 0;
}

struct stk_broker *stk_broker_new(const struct stk_broker_config *cfg)
{
    struct stk_broker *b;
    size_t n;

    if (!cfg->port_lo || cfg->port_lo > cfg->port_hi) {
        errno = EINVAL;
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    n = (size_t)(cfg->port_hi - cfg->port_lo) + 1;
    b->ports = calloc(n, sizeof(*b->ports));
    if (!b->ports) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        b->ports[i].fd = -1;
    b->lo = cfg->port_lo;
    b->hi = cfg->port_hi;
    if (cfg->offload) {
        b->offload = *cfg->offload;
        b->has_offload = true;
    }
    b->next_res_id = 1;
    b->next_desc_id = 1;
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void stk_broker_free(struct stk_broker *b)
{
    if (!b)
        return;
    while (b->descs) {
        struct desc_node *dn = b->descs;
        b->descs = dn->next;
        if (dn->d.conn)
            stk_conn_close(dn->d.conn, true);
        free(dn);
    }
    while (b->res) {
        struct res_node *rn = b->res;
        b->res = rn->next;
        free(rn);
    }
    for (size_t i = 0; i <= (size_t)(b->hi - b->lo); i++)
        if (b->ports[i].fd >= 0)
            close(b->ports[i].fd);
    free(b->ports);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void stk_broker_set_offload(struct stk_broker *b, const struct stk_offload_ops *ops)
{
    pthread_mutex_lock(&b->lock);
    b->has_offload = ops != NULL;
    if (ops)
        b->offload = *ops;
    else
        memset(&b->offload, 0, sizeof(b->offload));
    pthread_mutex_unlock(&b->lock);
}

/* ---------------------------------------------------------------- port space */

/* Bind the placeholder for `port`. 0, -EADDRINUSE when a host socket holds it, -errno. */
static int bind_placeholder(uint16_t port, bool reuse)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int one = 1, fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int port_hold(struct stk_broker *b, uint16_t port)
{
    int fd = bind_placeholder(port, false);

    if (fd < 0)
        return fd;
    b->ports[port - b->lo].fd = fd;
    b->stats.ports_held++;
    return 0;
}

/*
 * Hold a reservation's port again after its host connection closed. That connection's
 * TIME_WAIT keeps a plain bind() out for a while; SO_REUSEADDR gets past it (a weaker
 * guard: only other SO_REUSEADDR sockets could then share the port until it passes).
 */
static void port_rehold(struct stk_broker *b, uint16_t port)
{
    struct port_slot *ps = &b->ports[port - b->lo];
    int fd = bind_placeholder(port, false);

    if (fd == -EADDRINUSE)
        fd = bind_placeholder(port, true);
    if (fd < 0) {
        log_warn("broker", "cannot hold reserved port %u again: %s", port, strerror(-fd));
        return;
    }
    ps->fd = fd;
}

/* Hand the placeholder socket of `port` over (to become a host connection). */
static int port_take_socket(struct stk_broker *b, uint16_t port)
{
    struct port_slot *ps = &b->ports[port - b->lo];
    int fd = ps->fd;

    if (fd >= 0) {
        ps->fd = -1; /* still held: by the connection now */
        return fd;
    }
    /* not held (a reservation that could not be held again): bind afresh, past a
       TIME_WAIT of its last connection as port_rehold does */
    fd = bind_placeholder(port, false);
    return fd == -EADDRINUSE ? bind_placeholder(port, true) : fd;
}

static void port_drop(struct stk_broker *b, uint16_t port)
{
    struct port_slot *ps = &b->ports[port - b->lo];

    if (ps->fd >= 0)
        close(ps->fd);
    if (ps->use != PORT_FREE || ps->fd >= 0)
        b->stats.ports_held--;
    ps->fd = -1;
    ps->use = PORT_FREE;
}

/* Take any free port of the range for `use`; the search rotates so ports are reused late. */
static int port_take_any(struct stk_broker *b, enum port_use use, uint16_t *out)
{
    uint32_t n = (uint32_t)(b->hi - b->lo) + 1;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = (b->cursor + i) % n;
        uint16_t port = (uint16_t)(b->lo + idx);
        if (b->ports[idx].use != PORT_FREE)
            continue;
        int ret = port_hold(b, port);
        if (ret == -EADDRINUSE || ret == -EACCES)
            continue; /* a host application has it: never ours to use */
        if (ret < 0)
            return ret;
        b->ports[idx].use = use;
        b->cursor = (idx + 1) % n;
        *out = port;
        return 0;
    }
    return -ENOSPC;
}

/* ---------------------------------------------------------------- reservations */

static struct res_node *res_find(struct stk_broker *b, uint64_t id)
{
    for (struct res_node *rn = b->res; rn; rn = rn->next)
        if (rn->r.id == id)
            return rn;
    return NULL;
}

/*
 * A restored reservation's port may still be in TIME_WAIT from this appliance's previous
 * run (its host connection closed at shutdown): a plain bind() refuses it, so the restore
 * falls back to SO_REUSEADDR, which still fails when a live host socket holds the port.
 */
static int port_hold_restored(struct stk_broker *b, uint16_t port)
{
    int fd = bind_placeholder(port, false);

    if (fd == -EADDRINUSE)
        fd = bind_placeholder(port, true);
    if (fd < 0)
        return fd;
    b->ports[port - b->lo].fd = fd;
    b->stats.ports_held++;
    return 0;
}

static int reserve(struct stk_broker *b, const struct stk_reservation *want, bool restoring,
                   struct stk_reservation *out);

int stk_reserve(struct stk_broker *b, const char *holder, uint16_t port, enum stk_policy stack,
                struct stk_reservation *out)
{
    return stk_reserve_uid(b, holder, false, 0, port, stack, out);
}

int stk_reserve_uid(struct stk_broker *b, const char *holder, bool has_uid, uid_t uid,
                    uint16_t port, enum stk_policy stack, struct stk_reservation *out)
{
    struct stk_reservation want = { .port = port, .stack = stack, .has_uid = has_uid,
                                    .uid = uid };

    if (!holder || strlen(holder) >= STK_NAME_MAX)
        return -EINVAL;
    snprintf(want.holder, sizeof(want.holder), "%s", holder);
    return reserve(b, &want, false, out);
}

/* Reserve want->port (0: any) for want->holder, with want's stack and uid. */
static int reserve(struct stk_broker *b, const struct stk_reservation *want, bool restoring,
                   struct stk_reservation *out)
{
    const char *holder = want->holder;
    uint16_t port = want->port;
    struct res_node *rn;
    int ret;

    if (!*holder)
        return -EINVAL;
    rn = calloc(1, sizeof(*rn));
    if (!rn)
        return -ENOMEM;
    pthread_mutex_lock(&b->lock);
    if (port) {
        if (port < b->lo || port > b->hi) {
            ret = -ERANGE;
            goto fail;
        }
        if (b->ports[port - b->lo].use != PORT_FREE) {
            ret = -EADDRINUSE;
            goto fail;
        }
        ret = restoring ? port_hold_restored(b, port) : port_hold(b, port);
        if (ret < 0)
            goto fail;
        b->ports[port - b->lo].use = PORT_RESERVED;
    } else {
        ret = port_take_any(b, PORT_RESERVED, &port);
        if (ret < 0)
            goto fail;
    }
    rn->r.id = b->next_res_id++;
    snprintf(rn->r.holder, sizeof(rn->r.holder), "%s", holder);
    rn->r.port = port;
    rn->r.stack = want->stack;
    rn->r.has_uid = want->has_uid;
    rn->r.uid = want->uid;
    rn->r.created = time(NULL);
    rn->next = b->res;
    b->res = rn;
    if (out)
        *out = rn->r;
    pthread_mutex_unlock(&b->lock);
    log_info("broker", "reserved port %u for \"%s\" (reservation %llu)", port, holder,
             (unsigned long long)rn->r.id);
    return 0;
fail:
    pthread_mutex_unlock(&b->lock);
    free(rn);
    return ret;
}

int stk_unreserve(struct stk_broker *b, uint64_t id)
{
    struct res_node **pp;

    pthread_mutex_lock(&b->lock);
    for (pp = &b->res; *pp && (*pp)->r.id != id; pp = &(*pp)->next)
        ;
    if (!*pp) {
        pthread_mutex_unlock(&b->lock);
        return -ENOENT;
    }
    if ((*pp)->r.in_use) {
        pthread_mutex_unlock(&b->lock);
        return -EBUSY;
    }
    struct res_node *rn = *pp;
    *pp = rn->next;
    port_drop(b, rn->r.port);
    pthread_mutex_unlock(&b->lock);
    log_info("broker", "released reservation %llu (port %u)", (unsigned long long)id,
             rn->r.port);
    free(rn);
    return 0;
}

int stk_list_reservations(struct stk_broker *b, struct stk_reservation **out, size_t *n)
{
    size_t count = 0, i = 0;

    pthread_mutex_lock(&b->lock);
    for (struct res_node *rn = b->res; rn; rn = rn->next)
        count++;
    *out = calloc(count ? count : 1, sizeof(**out));
    if (!*out) {
        pthread_mutex_unlock(&b->lock);
        return -ENOMEM;
    }
    /* oldest first */
    for (struct res_node *rn = b->res; rn; rn = rn->next)
        (*out)[count - 1 - i++] = rn->r;
    *n = count;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int stk_get_reservation(struct stk_broker *b, uint64_t id, struct stk_reservation *out)
{
    struct res_node *rn;

    pthread_mutex_lock(&b->lock);
    rn = res_find(b, id);
    if (rn)
        *out = rn->r;
    pthread_mutex_unlock(&b->lock);
    return rn ? 0 : -ENOENT;
}

/* ---------------------------------------------------------------- requests */

/* Whether the offload engine could ever reach `dst` (loopback never crosses a wire). */
static bool offload_can_reach(const struct sockaddr_in *dst)
{
    uint32_t a = ntohl(dst->sin_addr.s_addr);

    return (a >> 24) != 127 && (a >> 24) != 0 && (a >> 28) != 0xe;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------ destinations the TOE cannot reach */

/* Whether a TOE connect to `a` got no answer lately (under the lock). */
static bool unreach_held(struct stk_broker *b, struct in_addr a)
{
    uint64_t now = now_ns();

    for (size_t i = 0; i < sizeof(b->unreach) / sizeof(b->unreach[0]); i++)
        if (b->unreach[i].addr.s_addr == a.s_addr && b->unreach[i].until_ns > now)
            return true;
    return false;
}

/* Remember `a` as unreachable through the TOE for a while (under the lock). */
static void unreach_mark(struct stk_broker *b, struct in_addr a)
{
    size_t n = sizeof(b->unreach) / sizeof(b->unreach[0]), slot = 0;
    char addr[INET_ADDRSTRLEN];

    for (size_t i = 0; i < n; i++) {
        if (b->unreach[i].addr.s_addr == a.s_addr) {
            slot = i;
            break;
        }
        if (b->unreach[i].until_ns < b->unreach[slot].until_ns)
            slot = i; /* else the one that expires first gives way */
    }
    b->unreach[slot].addr = a;
    b->unreach[slot].until_ns = now_ns() + STK_TOE_UNREACHABLE_HOLD_MS * 1000000ull;
    inet_ntop(AF_INET, &a, addr, sizeof(addr));
    log_info_f("broker", LOG_FIELDS({ "portal", addr }, { "stack", "toe" },
                                    { "err", "toe_unreachable" }),
               "the toe got no answer: connections there go to the host stack (auto) or are "
               "refused (toe) for %u s", STK_TOE_UNREACHABLE_HOLD_MS / 1000);
}

/* One stk_request on its way to a descriptor (lives on the caller's stack, under the lock). */
struct req_ctx {
    const struct stk_request *req;
    char dst[32];               /* req->dst as text, for messages */
    char *err;
    size_t errlen;
    enum stk_policy policy;     /* req->policy, or the reservation's stack for auto */
    enum stk_placement placement;
    struct res_node *rn;        /* the reservation whose port it takes, or NULL */
    uint16_t port;              /* the local port; 0 until one is taken */
    bool pool_port;             /* port came from the pool (not a reservation) */
    struct stk_conn *conn;
};

/* The owner's reservation, when the request names one: its port and its stack. */
static int req_take_reservation(struct stk_broker *b, struct req_ctx *rc)
{
    const struct stk_request *req = rc->req;
    struct res_node *rn;

    if (!req->reservation)
        return 0;
    rn = res_find(b, req->reservation);
    if (!rn) {
        snprintf(rc->err, rc->errlen, "reservation %llu does not exist",
                 (unsigned long long)req->reservation);
        return -ENOENT;
    }
    const char *holder = req->holder ? req->holder : req->owner;
    if (!req->any_holder && strcmp(rn->r.holder, holder) != 0) {
        snprintf(rc->err, rc->errlen, "reservation %llu is held by \"%s\", not \"%s\"",
                 (unsigned long long)req->reservation, rn->r.holder, holder);
        return -EPERM;
    }
    if (rn->r.has_uid && req->has_uid && rn->r.uid != req->uid) {
        snprintf(rc->err, rc->errlen, "reservation %llu is for uid %u, not uid %u",
                 (unsigned long long)req->reservation, (unsigned)rn->r.uid,
                 (unsigned)req->uid);
        return -EPERM;
    }
    if (rn->r.in_use) {
        snprintf(rc->err, rc->errlen, "reservation %llu (port %u) is already in use",
                 (unsigned long long)req->reservation, rn->r.port);
        return -EBUSY;
    }
    rc->rn = rn;
    rc->port = rn->r.port;
    if (rc->policy == STK_POLICY_AUTO)
        rc->policy = rn->r.stack;
    return 0;
}

/* Placement (claim 8): the TOE first, the host stack as the fallback. */
static enum stk_placement req_place(struct stk_broker *b, const struct req_ctx *rc)
{
    if (rc->policy == STK_POLICY_HOST)
        return STK_PLACED_HOST_ASKED;
    if (!b->has_offload)
        return STK_PLACED_HOST_NO_TOE;
    if (!b->offload.link_up(b->offload.ctx))
        return STK_PLACED_HOST_LINK_DOWN;
    if (!offload_can_reach(&rc->req->dst))
        return STK_PLACED_HOST_UNREACHABLE;
    if (unreach_held(b, rc->req->dst.sin_addr))
        return STK_PLACED_HOST_TOE_UNREACHABLE;
    return STK_PLACED_TOE;
}

/*
 * Take a pool port when the request has none yet, then (placed on the TOE) connect through
 * the offload engine. A refusal the host stack can absorb changes the placement instead of
 * failing; a pool port the engine still holds (TIME_WAIT to that peer) is swapped for
 * another, a few times.
 */
static int req_port_and_offload(struct stk_broker *b, struct req_ctx *rc)
{
    int ret;

    for (int attempt = 0;; attempt++) {
        if (!rc->port) {
            ret = port_take_any(b, PORT_CONN, &rc->port);
            if (ret < 0) {
                snprintf(rc->err, rc->errlen, "no free local port in %u-%u: %s", b->lo, b->hi,
                         ret == -ENOSPC ? "all in use" : strerror(-ret));
                return ret;
            }
            rc->pool_port = true;
        }
        if (rc->placement != STK_PLACED_TOE)
            return 0;
        ret = b->offload.connect(b->offload.ctx, &rc->req->dst, rc->port, &rc->conn);
        if (ret == -EADDRINUSE && rc->pool_port && attempt < 8) {
            port_drop(b, rc->port);
            rc->port = 0;
            continue;
        }
        if (ret == -EMFILE) {
            rc->placement = STK_PLACED_HOST_TOE_FULL;
        } else if (ret == -ENETDOWN) {
            rc->placement = STK_PLACED_HOST_LINK_DOWN;
        } else if (ret == -ENETUNREACH) {
            rc->placement = STK_PLACED_HOST_UNREACHABLE;
        } else if (ret < 0) {
            const char *why = b->offload.last_error(b->offload.ctx);
            snprintf(rc->err, rc->errlen, "toe connect to %s from port %u failed: %s", rc->dst,
                     rc->port, why && why[0] ? why : strerror(-ret));
            return ret;
        }
        return 0;
    }
}

/* Policy toe and the TOE cannot take it: the refusal, and why, for the requester. */
static int req_refuse_toe(struct req_ctx *rc)
{
    enum stk_placement p = rc->placement;

    snprintf(rc->err, rc->errlen, "the toe cannot take a connection to %s: %s", rc->dst,
             p == STK_PLACED_HOST_NO_TOE ? "no toe device (--no-toe, or toegw built without it)"
             : p == STK_PLACED_HOST_LINK_DOWN ? "its link is down"
             : p == STK_PLACED_HOST_TOE_FULL ? "it is at its connection limit (--toe-max-conns)"
             : p == STK_PLACED_HOST_TOE_UNREACHABLE
                 ? "it got no answer from there within its connect timeout "
                   "(--toe-connect-timeout): nothing on its wire routes to that address"
             : "the destination is not reachable through it");
    return p == STK_PLACED_HOST_NO_TOE ? -ENODEV
           : p == STK_PLACED_HOST_LINK_DOWN ? -ENETDOWN
           : p == STK_PLACED_HOST_TOE_FULL ? -EMFILE
           : p == STK_PLACED_HOST_TOE_UNREACHABLE ? -EHOSTUNREACH : -ENETUNREACH;
}

/* The host-stack connection, made from the port's placeholder socket itself. */
static int req_connect_host(struct stk_broker *b, struct req_ctx *rc)
{
    int fd = port_take_socket(b, rc->port);
    int ret = fd < 0 ? fd : stk_host_connect_fd(fd, &rc->req->dst, &rc->conn);

    if (ret < 0)
        snprintf(rc->err, rc->errlen, "host connect to %s from port %u failed: %s", rc->dst,
                 rc->port, strerror(-ret));
    return ret;
}

/* Record the connection as a descriptor of its owner's (claim 5) and count the grant. */
static void req_grant(struct stk_broker *b, struct req_ctx *rc, struct desc_node *dn,
                      uint64_t t0)
{
    struct stk_conn *conn = rc->conn;
    int si = conn->stack == STK_STACK_TOE;

    if (rc->rn)
        rc->rn->r.in_use = true;
    dn->d.id = b->next_desc_id++;
    snprintf(dn->d.owner, sizeof(dn->d.owner), "%s", rc->req->owner);
    dn->d.stack = conn->stack;
    dn->d.placement = rc->placement;
    dn->d.port = rc->port;
    dn->d.reservation = rc->rn ? rc->rn->r.id : 0;
    dn->d.remote = rc->req->dst;
    dn->d.conn = conn;
    dn->d.created = time(NULL);
    dn->next = b->descs;
    b->descs = dn;
    if (si)
        b->stats.granted_toe++;
    else
        b->stats.granted_host++;
    b->stats.latency_ns[si] += now_ns() - t0;
    b->stats.latency_count[si]++;
}

/* A refused request gives back the port it took (or holds its reservation's port again). */
static void req_undo_port(struct stk_broker *b, struct req_ctx *rc)
{
    if (rc->pool_port && rc->port)
        port_drop(b, rc->port);
    else if (rc->rn && b->ports[rc->port - b->lo].fd < 0)
        port_rehold(b, rc->port); /* a failed host connect consumed the placeholder */
}

/* Under the lock: reservation, placement, port, connection; 0 with rc->conn, or -errno. */
static int req_connect(struct stk_broker *b, struct req_ctx *rc)
{
    int ret = req_take_reservation(b, rc);

    if (ret < 0)
        return ret;
    rc->placement = req_place(b, rc);
    ret = req_port_and_offload(b, rc);
    if (ret == 0 && rc->placement != STK_PLACED_TOE)
        ret = rc->policy == STK_POLICY_TOE ? req_refuse_toe(rc) : req_connect_host(b, rc);
    if (ret < 0 && rc->port)
        req_undo_port(b, rc);
    return ret;
}

int stk_request(struct stk_broker *b, const struct stk_request *req, struct stk_desc **out,
                char *err, size_t errlen)
{
    struct req_ctx rc = { .req = req, .err = err, .errlen = errlen, .policy = req->policy };
    struct desc_node *dn;
    uint64_t t0 = now_ns();
    int ret;

    stk_addr_str(&req->dst, rc.dst, sizeof(rc.dst));
    if (!req->owner || !*req->owner || strlen(req->owner) >= STK_NAME_MAX) {
        snprintf(err, errlen, "a connection request needs an owner name");
        return -EINVAL;
    }
    dn = calloc(1, sizeof(*dn));
    if (!dn)
        return -ENOMEM;
    pthread_mutex_lock(&b->lock);
    b->stats.requests++;
    ret = req_connect(b, &rc);
    if (ret < 0) {
        b->stats.refused++;
        pthread_mutex_unlock(&b->lock);
        free(dn);
        return ret;
    }
    req_grant(b, &rc, dn, t0);
    pthread_mutex_unlock(&b->lock);
    log_info_f("broker", LOG_FIELDS({ "owner", dn->d.owner }, { "portal", rc.dst },
                                    { "stack", stk_stack_name(dn->d.stack) },
                                    { "placement", stk_placement_name(rc.placement) }),
               "connection %llu on local port %u", (unsigned long long)dn->d.id, rc.port);
    *out = &dn->d;
    return 0;
}

int stk_release(struct stk_broker *b, struct stk_desc *d, const char *owner, bool abort)
{
    struct desc_node **pp;

    pthread_mutex_lock(&b->lock);
    for (pp = &b->descs; *pp && &(*pp)->d != d; pp = &(*pp)->next)
        ;
    if (!*pp) {
        pthread_mutex_unlock(&b->lock);
        return -ENOENT;
    }
    if (!owner || strcmp(owner, d->owner) != 0) {
        pthread_mutex_unlock(&b->lock);
        return -EPERM;
    }
    struct desc_node *dn = *pp;
    *pp = dn->next;
    if (dn->d.conn && dn->d.stack == STK_STACK_TOE && b->has_offload &&
        b->offload.conn_error &&
        b->offload.conn_error(b->offload.ctx, dn->d.conn) == -EHOSTUNREACH)
        unreach_mark(b, dn->d.conn->remote.sin_addr);
    if (dn->d.conn)
        stk_conn_close(dn->d.conn, abort);
    if (dn->d.reservation) {
        struct res_node *rn = res_find(b, dn->d.reservation);
        if (rn)
            rn->r.in_use = false;
        if (dn->d.stack == STK_STACK_HOST)
            port_rehold(b, dn->d.port); /* its placeholder became the connection */
    } else {
        port_drop(b, dn->d.port);
    }
    b->stats.released++;
    pthread_mutex_unlock(&b->lock);
    log_debug("broker", "connection %llu of \"%s\" released, port %u %s",
              (unsigned long long)dn->d.id, dn->d.owner, dn->d.port,
              dn->d.reservation ? "back to its reservation" : "back to the pool");
    free(dn);
    return 0;
}

int stk_release_conn(struct stk_broker *b, struct stk_conn *c, const char *owner, bool abort)
{
    struct stk_desc *d = NULL;

    pthread_mutex_lock(&b->lock);
    for (struct desc_node *dn = b->descs; dn; dn = dn->next)
        if (dn->d.conn == c)
            d = &dn->d;
    pthread_mutex_unlock(&b->lock);
    return d ? stk_release(b, d, owner, abort) : -ENOENT;
}

int stk_restore_reservation(struct stk_broker *b, const struct stk_reservation *r)
{
    struct stk_reservation got;
    int ret = reserve(b, r, true, &got);

    if (ret < 0)
        return ret;
    pthread_mutex_lock(&b->lock);
    struct res_node *rn = res_find(b, got.id);
    if (rn && !res_find(b, r->id)) {
        rn->r.id = r->id;
        rn->r.created = r->created;
        if (b->next_res_id <= r->id)
            b->next_res_id = r->id + 1;
    }
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int stk_desc_hand_over(struct stk_broker *b, struct stk_desc *d, const char *owner)
{
    int ret = 0;

    pthread_mutex_lock(&b->lock);
    if (!owner || strcmp(owner, d->owner) != 0)
        ret = -EPERM;
    else if (!d->conn || d->stack != STK_STACK_HOST)
        ret = -EINVAL;
    if (ret == 0) {
        stk_host_conn_forget(d->conn); /* the other process keeps the socket */
        d->conn = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    return ret;
}

struct stk_conn *stk_desc_conn(struct stk_desc *d, const char *owner)
{
    if (!owner || strcmp(owner, d->owner) != 0) {
        errno = EPERM;
        return NULL;
    }
    return d->conn;
}

void stk_broker_stats(struct stk_broker *b, struct stk_broker_stats *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    pthread_mutex_unlock(&b->lock);
}

/* Broker connections, for the unified table: fills owner/placement of matching rows. */
void stk_broker_annotate(struct stk_broker *b, struct stk_conn_row *rows, size_t n)
{
    pthread_mutex_lock(&b->lock);
    /* placeholder binds: a bound, unconnected socket shows as CLOSE; say what it is */
    for (size_t i = 0; i < n; i++) {
        uint16_t port = ntohs(rows[i].local.sin_port);
        if (rows[i].stack != STK_STACK_HOST || rows[i].remote.sin_port != 0 ||
            port < b->lo || port > b->hi || b->ports[port - b->lo].fd < 0 ||
            strcmp(rows[i].state, "CLOSE") != 0)
            continue;
        snprintf(rows[i].state, sizeof(rows[i].state), "RESERVED");
        snprintf(rows[i].placement, sizeof(rows[i].placement), "placeholder");
        const char *holder = "broker";
        for (struct res_node *rn = b->res; rn; rn = rn->next)
            if (rn->r.port == port)
                holder = rn->r.holder;
        for (struct desc_node *dn = b->descs; dn; dn = dn->next)
            if (dn->d.port == port)
                holder = dn->d.owner; /* the host side of a TOE connection's port */
        snprintf(rows[i].owner, sizeof(rows[i].owner), "%s", holder);
    }
    for (struct desc_node *dn = b->descs; dn; dn = dn->next) {
        for (size_t i = 0; i < n; i++) {
            if (rows[i].stack != dn->d.stack || ntohs(rows[i].local.sin_port) != dn->d.port ||
                rows[i].remote.sin_addr.s_addr != dn->d.remote.sin_addr.s_addr ||
                rows[i].remote.sin_port != dn->d.remote.sin_port)
                continue;
            snprintf(rows[i].owner, sizeof(rows[i].owner), "%s", dn->d.owner);
            snprintf(rows[i].placement, sizeof(rows[i].placement), "%s",
                     stk_placement_name(dn->d.placement));
        }
    }
    pthread_mutex_unlock(&b->lock);
}

bool stk_broker_offload(struct stk_broker *b, struct stk_offload_ops *out)
{
    bool has;

    pthread_mutex_lock(&b->lock);
    has = b->has_offload;
    if (has)
        *out = b->offload;
    pthread_mutex_unlock(&b->lock);
    return has;
}
