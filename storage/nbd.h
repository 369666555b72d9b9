/*
 * nbd.h - the NBD export (contract §4): a fixed-newstyle NBD server on the storage loop
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
 * Listen on `addr` ("host:port" or "unix:/path") and serve the manager's volumes. Call on
 * the loop thread (or before the loop runs). NULL with err on failure.
 */
struct nbds_server *nbds_server_new(struct sto_loop *loop, struct sto_mgr *m, const char *addr,
                                    char *err, size_t errlen);
/* Stop listening, disconnect every client (their in-flight I/O completes first). */
void nbds_server_free(struct nbds_server *srv);

struct nbds_stats {
    uint64_t clients_total, clients_now, requests, errors, disconnects_mid_request;
};
/* Thread-safe snapshot of the counters. */
void nbds_server_stats(const struct nbds_server *srv, struct nbds_stats *out);

#endif
