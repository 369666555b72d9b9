/*
 * api.h - the REST API (docs/api.md) and the dashboard, on libmicrohttpd + jansson.
 *
 * API threads (libmicrohttpd's) never touch the storage loops' objects: they call the
 * storage pool's sto_pool_* functions (posted commands with timeouts) and the broker's and
 * the TOE's thread-safe functions.
 */
#ifndef TOEGW_API_API_H
#define TOEGW_API_API_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <stdbool.h>

struct sto_pool;
struct stk_broker;
struct api_server;

/*
 * The emulated TOE as the API sees it: its state, counters and wire faults, and the
 * administrative operations the endpoints run on it. The appliance fills struct
 * api_toe_ops from the TOE's own functions (appliance/toe_admin.c), so that api/ does not
 * depend on toe_emu/.
 */
#define API_TOE_IFNAME_MAX 16

struct api_toe_faults {
    double drop;                   /* probabilities 0..1 of each fault per frame */
    double dup;
    double reorder;
    double corrupt;
    uint64_t seed;
};

struct api_toe_dir_counters {
    uint64_t frames;               /* frames that crossed the wire */
    uint64_t bytes;                /* their bytes, Ethernet header included */
    uint64_t drop_link_down;       /* dropped: link down */
    uint64_t drop_bad;             /* dropped: malformed */
    uint64_t fault_drop, fault_dup, fault_reorder, fault_corrupt; /* injected */
};

struct api_toe_counters {
    struct api_toe_dir_counters tx; /* adapter to host */
    struct api_toe_dir_counters rx; /* host to adapter */
    uint64_t tap_errors;
    uint64_t conns_opened;
    uint64_t conns_established;
    uint64_t conns_failed;
    uint64_t conns_reset;
    uint64_t conns_refused_full;
    uint64_t conns_current;
    uint64_t tcp_active_opens, tcp_attempt_fails, tcp_estab_resets;
    uint64_t tcp_in_segs, tcp_out_segs, tcp_retrans_segs, tcp_in_errs, tcp_out_rsts;
    uint64_t tcp_drop;
    uint64_t capture_frames;
};

struct api_toe_info {
    bool link_up;
    char ifname[API_TOE_IFNAME_MAX];
    uint8_t mac[6];
    struct in_addr addr, host_addr;
    uint8_t prefix, host_prefix;
    unsigned mtu;
    unsigned max_conns;
    unsigned conns;
    bool offload;
};

/*
 * Each op takes the `dev` of struct api_config's toe and returns 0 or -errno (-EINVAL,
 * -ENETDOWN, -EAGAIN, ...); strerror gives the calling thread's last failure as one line.
 * Every member is set; they may be called from any API thread at once.
 */
struct api_toe_ops {
    int (*get_info)(void *dev, struct api_toe_info *out);
    int (*get_counters)(void *dev, struct api_toe_counters *out);
    int (*get_faults)(void *dev, struct api_toe_faults *out);
    int (*set_faults)(void *dev, const struct api_toe_faults *f);
    int (*set_link)(void *dev, bool up);
    /* ring_bytes 0: the TOE's default ring (API_TOE_DEFAULT_RING) */
    int (*capture_start)(void *dev, size_t ring_bytes);
    int (*capture_save)(void *dev, const char *path);
    int (*capture_stop)(void *dev);
    const char *(*strerror)(void);
};
#define API_TOE_DEFAULT_RING (64u * 1024 * 1024)

/*
 * What clients may cost the API (docs/api.md, "Connections"). A zero member takes its
 * default. A client is an IPv4 address; unix socket clients are not counted per client.
 */
struct api_limits {
    unsigned max_conns;            /* connections being served or kept alive, each with
                                      its thread (128) */
    unsigned max_conns_per_client; /* of one address, in any phase; more get 429 (32) */
    unsigned header_timeout_ms;    /* a request header must be complete this long after
                                      the connection opened or its last answer (10 s) */
    unsigned max_pending;          /* connections still sending their first header (512) */
};
#define API_MAX_CONNS 128u
#define API_MAX_CONNS_PER_CLIENT 32u
#define API_HEADER_TIMEOUT_MS 10000u
#define API_MAX_PENDING 512u

/* What GET /api/v1/info says about the appliance (all borrowed, static for its life). */
#define API_INFO_LIBS 8
struct api_info {
    const char *version;               /* toegw's */
    struct {
        const char *name, *version;
    } libraries[API_INFO_LIBS];        /* the first with name NULL ends the list */
    const char *toe_mode;              /* "tap", or "none" without the TOE */
    const char *toe_uplink;            /* the uplink interface, or NULL */
    bool toe_nat;                      /* the TOE's subnet is masqueraded behind the host */
    bool tls_api;                      /* the API speaks HTTPS */
    const char *tls_fingerprint;       /* its certificate's SHA-256 ("AB:CD:..."), or NULL */
};

/*
 * Make a new API token, keep it where the appliance reads it at its next start (the token
 * file), and put it into tok. 0, or -errno with the reason in err (the old token stays).
 */
typedef int api_token_renew_fn(void *arg, char *tok, size_t toklen, char *err,
                               size_t errlen);
#define API_TOKEN_MAX 127                  /* the longest token the API takes */

struct api_config {
    const char *listen;        /* "host:port" or "unix:/path" */
    const char *token;         /* the bearer token every /api/v1 request must carry */
    struct sto_pool *pool;     /* borrowed; NULL: no sessions, volumes or NBD counters */
    struct stk_broker *broker; /* borrowed */
    void *toe;                 /* borrowed: the TOE handed to toe_ops; NULL with --no-toe */
    const struct api_toe_ops *toe_ops; /* borrowed; NULL: no TOE (as with --no-toe) */
    const char *nbd_host;      /* for volume export URIs: nbd://HOST:PORT/ID */
    uint16_t nbd_port;
    bool nbd_tls;              /* the NBD server offers TLS: the URIs are nbds:// */
    const char *state_dir;     /* where capture files go */
    struct api_limits limits;
    const struct api_info *info; /* borrowed; NULL: GET /api/v1/info says only what the API
                                    knows itself */
    /* HTTPS: the certificate (PEM, a chain may follow it) and its unencrypted key (PEM),
       both copied (the key wiped at the stop); NULL: plain HTTP */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    bool metrics_auth;         /* /metrics needs the token too, and may then name targets,
                                  portals and addresses in its labels (else ids only) */
    api_token_renew_fn *token_renew; /* POST /api/v1/token; NULL: tokens are not rotated */
    void *token_renew_arg;
};

/* Start serving. NULL on failure with the reason in err. Caller stops with api_server_stop. */
struct api_server *api_server_start(const struct api_config *cfg, char *err, size_t errlen);
/* Mark ready (/readyz 200) or not (503: starting, shutting down). */
void api_server_set_ready(struct api_server *s, int ready);
/* Stop accepting, finish in-flight requests, free. */
void api_server_stop(struct api_server *s);

/*
 * Stop accepting connections and answer /readyz 503, while requests in flight go on
 * (api_server_stop does this first anyway). Lets a shutdown quiesce the API, then make the
 * manager fail its pending calls, then stop: api_server_stop waits for every handler, and
 * a handler may be blocked in a sto_pool_* call for up to its call timeout.
 */
void api_server_quiesce(struct api_server *s);
/*
 * Where the server listens: "127.0.0.1:8080" (with the real port when port 0 was asked
 * for) or "unix:/path". Borrowed, valid until api_server_stop.
 */
const char *api_server_address(const struct api_server *s);

#endif
