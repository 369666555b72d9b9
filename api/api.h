/*
 * api.h - the REST API (contract §3) and the dashboard, on libmicrohttpd + jansson.
 *
 * API threads (libmicrohttpd's) never touch the storage loop's objects: they call the
 * manager's sto_mgr_* functions (posted commands with timeouts) and the broker's and the
 * TOE's thread-safe functions.
 */
#ifndef TOEGW_API_API_H
#define TOEGW_API_API_H

#include <stddef.h>
#include <stdint.h>

struct nbds_server;
struct sto_mgr;
struct stk_broker;
struct toe_dev;
struct api_server;

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

struct api_config {
    const char *listen;        /* "host:port" or "unix:/path" */
    const char *token;         /* the bearer token every /api/v1 request must carry */
    struct sto_mgr *mgr;       /* borrowed */
    struct stk_broker *broker; /* borrowed */
    struct toe_dev *toe;       /* borrowed; NULL with --no-toe */
    const char *nbd_host;      /* for volume export URIs: nbd://HOST:PORT/ID */
    uint16_t nbd_port;
    const char *state_dir;     /* where capture files go */
    struct nbds_server *nbd;   /* borrowed; NULL: no NBD counters in /metrics */
    struct api_limits limits;
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
 * a handler may be blocked in a sto_mgr_* call for up to its call timeout.
 */
void api_server_quiesce(struct api_server *s);
/*
 * Where the server listens: "127.0.0.1:8080" (with the real port when port 0 was asked
 * for) or "unix:/path". Borrowed, valid until api_server_stop.
 */
const char *api_server_address(const struct api_server *s);

#endif
