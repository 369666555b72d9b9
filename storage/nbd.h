/*
 * nbd.h - the NBD export (docs/nbd.md): a fixed-newstyle NBD server on the storage loop
 * (no thread per client). The export name is the volume id. Protocol: the NBD project's
 * doc/proto.md.
 */
#ifndef TOEGW_STORAGE_NBD_H
#define TOEGW_STORAGE_NBD_H

#include <stddef.h>
#include <stdint.h>

#include "storage/loop.h"
#include "storage/manager.h"

struct nbds_server;

/*
 * What one client may cost (docs/nbd.md, "Limits"). A zero member takes its default.
 * Clients from one IPv4 address count as one client; unix socket clients are not capped
 * per client (only by max_handshakes).
 */
struct nbds_limits {
    unsigned handshake_timeout_ms;     /* accept to transmission phase (10 s) */
    unsigned max_handshakes_per_client; /* connections of one address still in the
                                           handshake; more are closed at once (64) */
    unsigned max_handshakes;           /* of all clients; the oldest is closed for a new
                                           one (256) */
    uint64_t max_buffered_bytes;       /* request and reply data one connection holds:
                                           beyond it its requests wait (64 MiB) */
};
#define NBDS_HANDSHAKE_TIMEOUT_MS 10000u
#define NBDS_MAX_HANDSHAKES_PER_CLIENT 64u
#define NBDS_MAX_HANDSHAKES 256u
#define NBDS_MAX_BUFFERED_BYTES (64ull << 20)

/*
 * Listen on `addr` ("host:port" or "unix:/path") and serve the manager's volumes, within
 * `lim` (NULL: the defaults). addr NULL: no listener; the server only takes clients its
 * peers move to it (nbds_server_set_peers). Call on the loop thread (or before the loop
 * runs). NULL with err on failure.
 */
struct nbds_server *nbds_server_new(struct sto_loop *loop, struct sto_mgr *m, const char *addr,
                                    const struct nbds_limits *lim, char *err, size_t errlen);
/*
 * TLS (docs/security.md): off (NBD_OPT_STARTTLS refused), on (offered, plaintext still
 * served) or require (every option but STARTTLS and ABORT answered NBD_REP_ERR_TLS_REQD
 * until TLS is up).
 */
enum nbds_tls_mode { NBDS_TLS_OFF = 0, NBDS_TLS_ON, NBDS_TLS_REQUIRE };
struct tls_creds;
/*
 * Use TLS with creds (borrowed: they outlive the server; needed unless mode is off).
 * Before the loop runs, like nbds_server_new.
 */
void nbds_server_set_tls(struct nbds_server *srv, enum nbds_tls_mode mode,
                         const struct tls_creds *creds);
/*
 * Servers on several storage loops (storage/pool.c), each serving its own manager's
 * volumes: a client that asks for a volume of another loop is moved to that loop's server
 * (its socket, TLS session and handshake deadline go with it), which runs the option
 * again. Both functions are thread-safe.
 */
struct nbds_peers {
    /* The server whose manager has volume id (NULL: none has it). */
    struct nbds_server *(*server_of)(void *arg, const char *id);
    /* The ids of every live volume of every server, at most max; returns how many exist. */
    size_t (*volume_ids)(void *arg, char (*ids)[STO_ID_MAX], size_t max);
    void *arg;
};
/* Before the loop runs, like nbds_server_new. */
void nbds_server_set_peers(struct nbds_server *srv, const struct nbds_peers *peers);
/* Stop listening, disconnect every client (their in-flight I/O completes first). */
void nbds_server_free(struct nbds_server *srv);

struct nbds_stats {
    uint64_t clients_total, clients_now, requests, errors, disconnects_mid_request;
};
/* Thread-safe snapshot of the counters. */
void nbds_server_stats(const struct nbds_server *srv, struct nbds_stats *out);

#endif
