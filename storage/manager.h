/*
 * manager.h - the appliance's sessions and volumes, run on one storage loop.
 *
 * The manager owns every iSCSI session of the appliance and the volumes (LUNs) they
 * expose. Everything it owns lives on the storage loop thread. Other threads (the REST
 * API, the state saver) use only the sto_mgr_* calls below: each posts a command to the
 * loop and waits for its completion with a timeout; nothing of the loop's is touched
 * directly. Volume I/O for the NBD server (also on the loop) uses the async
 * sto_volume_submit instead.
 *
 * Ids: a session id is random ("s-" + 12 hex) and kept across restarts by the state file;
 * a volume id is derived from the target IQN and LUN ("v-" + 16 hex), so it is the same
 * for the same target and LUN across restarts and sessions.
 */
#ifndef TOEGW_STORAGE_MANAGER_H
#define TOEGW_STORAGE_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/transport.h"
#include "storage/iscsi.h"
#include "storage/loop.h"
#include "storage/lun.h"

struct sto_mgr;

#define STO_ID_MAX 24
#define STO_NAME_MAX 224       /* IQNs are at most 223 bytes */
#define STO_SECRET_MAX 256
#define STO_ERR_MAX 320

/*
 * How the manager gets connections: the appliance wires these to the offload broker.
 * `owner` is the session id (the descriptor is reserved for it); `policy` and
 * `reservation` come from the session's request.
 */
struct sto_mgr_net {
    int (*connect)(void *arg, const char *owner, enum stk_policy policy, uint64_t reservation,
                   const struct sockaddr_in *dst, struct stk_conn **out, char *err,
                   size_t errlen);
    void (*release)(void *arg, const char *owner, struct stk_conn *c, bool abort);
    void *arg;
};

struct sto_mgr_config {
    struct sto_mgr_net net;          /* zeroed: host stack directly */
    const char *initiator_name;      /* NULL: the default IQN */
    uint32_t call_timeout_ms;        /* how long API calls wait (0: 30 s) */
    struct isc_timeouts timeouts;    /* every session's (0: storage/iscsi.h's defaults) */
    /*
     * Replacement timeout: I/O held while a session recovers fails with EIO this long
     * after the connection was lost, and new I/O fails at once until the session is back;
     * the session itself keeps logging in again (0: 120 s; ISC_TIMEOUT_ZERO: no holding).
     */
    uint32_t replacement_timeout_ms;
    uint32_t max_outstanding;        /* SCSI commands in flight per session (0: 128) */
    uint32_t max_outstanding_writes; /* of which writes (0: 32) */
    /*
     * Told on the loop thread when a volume comes to life (live) or its session leaves it
     * (NULL: nobody is told). The storage pool keeps its directory of volumes with it.
     */
    void (*volume_event)(void *arg, const char *id, bool live);
    void *volume_event_arg;
};

/* Created on the caller's thread; the loop must run (sto_loop_run) on its own thread. */
struct sto_mgr *sto_mgr_new(struct sto_loop *loop, const struct sto_mgr_config *cfg);
/* The initiator name sessions log in with unless their request names another (borrowed;
   fixed for the manager's life, so any thread may read it). */
const char *sto_mgr_initiator(const struct sto_mgr *m);
/* Logs every session out (bounded by timeout_ms) and frees. Called with the loop running. */
void sto_mgr_shutdown(struct sto_mgr *m, uint32_t timeout_ms);
void sto_mgr_free(struct sto_mgr *m);

struct sto_chap {
    char user[STO_NAME_MAX];
    char secret[STO_SECRET_MAX];
    char target_user[STO_NAME_MAX];
    char target_secret[STO_SECRET_MAX];
};

struct sto_session_req {
    char id[STO_ID_MAX];             /* "" for a new session; set when restoring */
    char portal[STO_NAME_MAX];       /* host[:port] */
    char target[STO_NAME_MAX];
    enum stk_policy stack;
    uint64_t reservation;            /* 0: none */
    bool header_digest, data_digest;
    struct sto_chap chap;            /* empty user: no CHAP */
    char initiator[STO_NAME_MAX];    /* this session's initiator name; "": the manager's */
};

/* Error classes of the calls, for the REST layer to map to status codes. */
enum sto_err_class {
    STO_ERR_NONE = 0,
    STO_ERR_INVALID,      /* bad request (422) */
    STO_ERR_NOT_FOUND,    /* 404 */
    STO_ERR_CONFLICT,     /* 409 */
    STO_ERR_LOGIN,        /* the target refused the login (502 "login failed") */
    STO_ERR_UNREACHABLE,  /* portal unreachable / timed out (504) */
    STO_ERR_IO,           /* the I/O failed (502) */
    STO_ERR_RANGE,        /* out of range (416/422) */
    STO_ERR_UNAVAILABLE,  /* shutting down, recovering, busy (503) */
    STO_ERR_INTERNAL,     /* 500 */
};

struct sto_result {
    int err;                         /* 0 or -errno */
    enum sto_err_class cls;
    char msg[STO_ERR_MAX];           /* what failed and why; never a secret */
};

/* Discovery (SendTargets) through the broker. *out: caller frees (isc_target_list_free). */
int sto_mgr_discover(struct sto_mgr *m, const char *portal, enum stk_policy stack,
                     const struct sto_chap *chap, struct isc_target_list **out,
                     struct sto_result *res);

/* Log in and probe the LUNs. On success the new session's id is in id_out. */
int sto_mgr_session_create(struct sto_mgr *m, const struct sto_session_req *req,
                           char id_out[STO_ID_MAX], struct sto_result *res);
/*
 * Log out, release the connection, drop the session and its volumes. Bounded whatever
 * the target does: a logged-in session logs out within the logout timeout (then the
 * connection is dropped and its commands fail with EIO); any other is dropped at once.
 */
int sto_mgr_session_delete(struct sto_mgr *m, const char *id, struct sto_result *res);

/*
 * Who may use a volume over NBD, and how (docs/api.md, PATCH /api/v1/volumes/{id}). Kept
 * by volume id (target + LUN), so it stays with the volume across logouts and restarts.
 * An empty allow list admits every client; a non-empty one only clients whose TLS
 * identity (PSK identity or certificate CN) is in it.
 */
#define STO_ALLOW_MAX 16
#define STO_IDENTITY_MAX 128
struct sto_vol_access {
    char id[STO_ID_MAX];
    bool read_only;
    uint32_t nallow;
    char allow[STO_ALLOW_MAX][STO_IDENTITY_MAX];
};

/* A change of it: only the parts set change. */
struct sto_access_patch {
    bool set_read_only, read_only;
    bool set_allow;
    uint32_t nallow;
    char allow[STO_ALLOW_MAX][STO_IDENTITY_MAX];
};

struct sto_volume_view {
    char id[STO_ID_MAX];
    char session[STO_ID_MAX];
    char target[STO_NAME_MAX];
    uint32_t lun;
    uint64_t size_bytes;
    uint32_t block_size;
    char vendor[9], product[17];
    char wwn[80];
    bool thin;
    uint32_t max_transfer_bytes;     /* 0: no limit reported */
    struct sto_vol_access access;
    /* counters */
    uint64_t reads, writes, read_bytes, write_bytes, errors;
    uint64_t read_ns, write_ns;      /* summed latency */
    struct hist latency;             /* of every request (NBD, REST), whatever its op */
};

struct sto_session_view {
    char id[STO_ID_MAX];
    char portal[STO_NAME_MAX];
    char target[STO_NAME_MAX];
    char initiator[STO_NAME_MAX];    /* the initiator name it logs in with */
    const char *state;               /* logging_in logged_in recovering failed logged_out */
    enum stk_policy policy;
    uint64_t reservation;
    char error[STO_ERR_MAX];         /* last error, "" when none */
    /* connection */
    bool connected;
    enum stk_stack stack;
    struct sockaddr_in local, remote;
    uint64_t conn_bytes_in, conn_bytes_out;
    /* negotiated */
    struct isc_params params;
    uint16_t tsih;
    struct isc_session_counters counters;
    uint32_t nvolumes;
    char volumes[64][STO_ID_MAX];    /* the first 64 volume ids */
    uint32_t recoveries;
};

/* Snapshots; *out: caller frees with free(). */
int sto_mgr_list_sessions(struct sto_mgr *m, struct sto_session_view **out, size_t *n);
int sto_mgr_get_session(struct sto_mgr *m, const char *id, struct sto_session_view *out);
int sto_mgr_list_volumes(struct sto_mgr *m, struct sto_volume_view **out, size_t *n);
int sto_mgr_get_volume(struct sto_mgr *m, const char *id, struct sto_volume_view *out);
/* Requests to restore (with secrets) for the state file; *out: caller frees (wipe!). */
int sto_mgr_export_sessions(struct sto_mgr *m, struct sto_session_req **out, size_t *n);

/*
 * Read/write a byte range of a volume (block-aligned offset and length; at most 32 MiB).
 * A write returns once it is durable (SYNCHRONIZE CACHE). Blocking, from any thread but
 * the loop's.
 */
int sto_mgr_volume_read(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                        void *buf, struct sto_result *res);
int sto_mgr_volume_write(struct sto_mgr *m, const char *id, uint64_t offset, uint32_t len,
                         const void *buf, struct sto_result *res);

/*
 * Change a live volume's access (-ENOENT: no such volume). Any thread but the loop's.
 */
int sto_mgr_volume_set_access(struct sto_mgr *m, const char *id,
                              const struct sto_access_patch *p, struct sto_result *res);
/* Every volume's access that differs from the default, for the state file (caller frees). */
int sto_mgr_export_access(struct sto_mgr *m, struct sto_vol_access **out, size_t *n);
/*
 * Put a volume's whole access in the table whether or not the volume is here (the storage
 * pool keeps every loop's table the same). Any thread but the loop's.
 */
int sto_mgr_store_access(struct sto_mgr *m, const struct sto_vol_access *a,
                         struct sto_result *res);
/*
 * The saved access of volumes, at start: before the loop runs (or on its thread). 0 or
 * -ENOMEM.
 */
int sto_mgr_restore_access(struct sto_mgr *m, const struct sto_vol_access *a, size_t n);

/* ---------------------------------------------------------------- loop-thread API (NBD) */

struct sto_volume;

enum sto_io_op { STO_IO_READ, STO_IO_WRITE, STO_IO_FLUSH, STO_IO_TRIM, STO_IO_ZERO };
typedef void (*sto_io_cb)(void *arg, int err, const char *msg);

/* Look a volume up by id (loop thread only). NULL when unknown. Borrowed. */
struct sto_volume *sto_volume_find(struct sto_mgr *m, const char *id);
const struct sto_lun_info *sto_volume_info(const struct sto_volume *v);
/* Hold a reference across async I/O (the volume outlives its session's logout). */
void sto_volume_ref(struct sto_volume *v);
void sto_volume_unref(struct sto_volume *v);
/* The volume's id (borrowed). Loop thread. */
const char *sto_volume_name(const struct sto_volume *v);
/* The volume's access (never NULL: the defaults when none was set). Loop thread. */
const struct sto_vol_access *sto_volume_access(const struct sto_volume *v);
/* Whether identity ("" or NULL: a client without one) may use the volume. Loop thread. */
bool sto_volume_allows(const struct sto_volume *v, const char *identity);
/* False once its session is gone for good. */
bool sto_volume_alive(const struct sto_volume *v);
/*
 * Async I/O on the loop thread: split into SCSI commands within the target's limits, run in
 * parallel; cb(err) once when all are done (-ERANGE, -EIO, -EROFS, -ENOTCONN, ...). While
 * the session is recovering, requests wait (up to the replacement timeout). A command
 * aborted after the command timeout is issued once more before its request fails.
 */
int sto_volume_submit(struct sto_volume *v, enum sto_io_op op, uint64_t offset, uint32_t len,
                      void *buf, bool fua, sto_io_cb cb, void *arg);

/* Loop thread: the ids of the live volumes, at most max of them. Returns how many exist. */
size_t sto_mgr_volume_ids(struct sto_mgr *m, char (*ids)[STO_ID_MAX], size_t max);

/* A stable volume id for target + lun. */
void sto_volume_id(const char *target, uint32_t lun, char out[STO_ID_MAX]);

#endif
