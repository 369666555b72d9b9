/*
 * pool.h - the storage pool: the appliance's sessions and volumes spread over N storage
 * loops, each a thread ("toegw-sto<i>") with its own session manager (manager.h) and NBD
 * server (nbd.h). A session and its volumes live on one loop for their whole life; I/O
 * never crosses threads (docs/architecture.md, "Storage threads").
 *
 * Placement: a target goes to the loop with the fewest targets when a session to it is
 * created and stays there while it has a session or a create is under way, so a second
 * session to it meets the first in the same manager (which refuses it) and its volumes
 * (ids from target + LUN) are on that loop. A target left with none gives its place up (a
 * failed login to an unknown target leaves nothing behind); its next session may be placed
 * elsewhere. The pool keeps a directory of live volumes (volume id -> loop) for the NBD
 * servers and the API: only the first loop listens for NBD; a client that picks a volume
 * of another loop moves there (nbd_move.c).
 *
 * The calls below mirror manager.h's and have its semantics: any thread but a storage
 * loop's, blocking up to the manager's call timeout. Lists concatenate the loops' lists.
 */
#ifndef TOEGW_STORAGE_POOL_H
#define TOEGW_STORAGE_POOL_H

#include <stddef.h>

#include "storage/manager.h"
#include "storage/nbd.h"

struct sto_pool;

#define STO_POOL_THREADS_MAX 64

struct sto_pool_config {
    unsigned threads;                 /* storage loops (0: one per CPU in the affinity mask, at most 64) */
    unsigned busy_poll_us;            /* each loop's busy-poll (sto_loop_set_busy_poll) */
    struct sto_mgr_config mgr;        /* every loop's manager's (volume_event is the pool's) */
    const char *nbd_addr;             /* the NBD export's listener (NULL: no export) */
    const struct nbds_limits *nbd_lim;
    enum nbds_tls_mode nbd_tls;
    const struct tls_creds *nbd_creds; /* borrowed: outlive the pool */
    const struct sto_vol_access *access; /* the volumes' saved access (copied) */
    size_t naccess;
};

/* Make the loops, their managers and NBD servers, and start the threads. NULL with err. */
struct sto_pool *sto_pool_new(const struct sto_pool_config *cfg, char *err, size_t errlen);
/* Log every session out, on every loop at once (bounded by timeout_ms). */
void sto_pool_shutdown(struct sto_pool *p, uint32_t timeout_ms);
/* Stop the threads, then free everything (NBD clients are disconnected). NULL: nothing. */
void sto_pool_free(struct sto_pool *p);

unsigned sto_pool_threads(const struct sto_pool *p);
/* The NBD servers' counters, summed. Thread-safe. */
void sto_pool_nbd_stats(const struct sto_pool *p, struct nbds_stats *out);
/* As sto_mgr_initiator (borrowed, fixed). */
const char *sto_pool_initiator(const struct sto_pool *p);

int sto_pool_discover(struct sto_pool *p, const char *portal, enum stk_policy stack,
                      const struct sto_chap *chap, struct isc_target_list **out,
                      struct sto_result *res);
int sto_pool_session_create(struct sto_pool *p, const struct sto_session_req *req,
                            char id_out[STO_ID_MAX], struct sto_result *res);
int sto_pool_session_delete(struct sto_pool *p, const char *id, struct sto_result *res);
/* Targets that have a loop now: those with a session, or a create under way. */
size_t sto_pool_targets_placed(struct sto_pool *p);
int sto_pool_list_sessions(struct sto_pool *p, struct sto_session_view **out, size_t *n);
int sto_pool_get_session(struct sto_pool *p, const char *id, struct sto_session_view *out);
int sto_pool_list_volumes(struct sto_pool *p, struct sto_volume_view **out, size_t *n);
int sto_pool_get_volume(struct sto_pool *p, const char *id, struct sto_volume_view *out);
/* *out holds secrets: the caller wipes and frees it. */
int sto_pool_export_sessions(struct sto_pool *p, struct sto_session_req **out, size_t *n);
int sto_pool_volume_read(struct sto_pool *p, const char *id, uint64_t offset, uint32_t len,
                         void *buf, struct sto_result *res);
int sto_pool_volume_write(struct sto_pool *p, const char *id, uint64_t offset, uint32_t len,
                          const void *buf, struct sto_result *res);
/* The volume's loop applies the patch; every other loop then keeps the same access. */
int sto_pool_volume_set_access(struct sto_pool *p, const char *id,
                               const struct sto_access_patch *patch, struct sto_result *res);
int sto_pool_export_access(struct sto_pool *p, struct sto_vol_access **out, size_t *n);

#endif
