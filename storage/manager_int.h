/*
 * manager_int.h - what the manager's files share (manager.c: sessions, recovery, views,
 * shutdown; manager_call.c: the calls of other threads; volume.c: volumes and their I/O;
 * manager_discovery.c: SendTargets). Private to them: everything here lives on the storage loop
 * thread unless it says otherwise.
 */
#ifndef TOEGW_STORAGE_MANAGER_INT_H
#define TOEGW_STORAGE_MANAGER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "storage/loop.h"
#include "storage/lun.h"
#include "storage/manager.h"

#define VOLUMES_MAX 256            /* per session */

enum ms_state {
    MS_LOGGING_IN,
    MS_PROBING,
    MS_LOGGED_IN,
    MS_RECOVERING,
    MS_LOGGING_OUT,
    MS_FAILED,
    MS_LOGGED_OUT,
};

struct mgr_call;
struct mgr_session;
struct vchunk;

/*
 * A volume: one disk LUN of a session. Owned by the manager's list and by its references
 * (the session's, one per I/O request, the NBD server's); freed with the last one.
 */
struct sto_volume {
    int refs;
    struct sto_mgr *m;
    struct mgr_session *ses;       /* NULL once the session is gone */
    char id[STO_ID_MAX];
    struct sto_lun_info li;
    uint32_t chunk;                /* bytes per SCSI command */
    bool no_write_same;            /* the LUN refused WRITE SAME: zero with plain writes */
    struct sto_volume_view stats;  /* counters part only */
    struct sto_volume *next;
};

/* A session's probe of its LUNs (probe.c does each step). */
struct probe {
    struct sto_probe *op;          /* the REPORT LUNS or LUN probe under way, or NULL */
    uint32_t *luns;
    size_t nluns, idx;
    int skipped_err;
    char skipped[STO_ERR_MAX];     /* why the last unusable LUN was left out */
};

/* A session of the appliance; owned by the manager's list, freed by ses_free. */
struct mgr_session {
    struct sto_mgr *m;
    struct sto_session_req req;    /* holds secrets: wiped on free */
    char id[STO_ID_MAX];
    enum ms_state state;
    char error[STO_ERR_MAX];
    struct isc_session *s;
    struct stk_conn *conn;         /* the broker's descriptor conn while connected */
    struct probe *probe;
    struct sto_volume *vols[VOLUMES_MAX];
    size_t nvols;
    struct mgr_call *create_call;  /* completes when login + probe finish (borrowed) */
    struct mgr_call *delete_call;  /* completes when the logout has (borrowed) */
    struct sto_timer retry_timer;  /* the next login while recovering */
    struct sto_timer repl_timer;   /* the replacement timeout while recovering */
    struct sto_timer free_timer;   /* armed once the session is over: frees it */
    bool io_failfast;              /* past it: I/O fails at once until the session is back */
    uint32_t recoveries;
    struct vchunk *held_head, *held_tail;
    /* chunks waiting for a free command slot of the session (-EBUSY), in arrival order */
    struct vchunk *busy_head, *busy_tail;
    struct mgr_session *next;
};

/* The manager; the caller of sto_mgr_new owns it. */
struct sto_mgr {
    struct sto_loop *loop;
    struct sto_mgr_config cfg;
    char initiator[STO_NAME_MAX];
    struct mgr_session *sessions;
    struct sto_volume *volumes;    /* every live volume, also those held by refs */
    bool shutting_down;
    struct mgr_call *shutdown_call; /* ends when the logouts of the shutdown have */
    atomic_int shutdown_pending;   /* those logouts (read by the waiting thread) */
    struct sto_vol_access *access; /* volumes whose access is not the default (vol_access.c) */
    size_t naccess;
};

/*
 * A call of another thread into the manager (sto_loop_call): the caller's arguments in, the
 * loop's results out. Until the loop ends it (sto_mgr_call_finish) the loop may write into
 * it; what becomes of it after is sto_loop_call's answer (storage/loop.h).
 */
struct mgr_call {
    struct sto_call call;          /* first: the loop's handle on it */
    struct sto_mgr *m;
    void (*run)(struct sto_mgr *m, struct mgr_call *c);
    struct sto_result res;
    /* arguments and results */
    struct sto_session_req sreq;
    char id[STO_ID_MAX];
    uint64_t offset;
    uint32_t len;
    uint8_t *data;                 /* owned by the call */
    void *out;                     /* owned by the call until taken */
    void (*out_free)(void *out);   /* how `out` is freed (NULL: free) */
    size_t nout;
    struct sto_chap chap;
    enum stk_policy policy;
    bool any_time;                 /* runs while shutting down too (the shutdown itself) */
};

/* ---------------------------------------------------------------- manager_call.c */

/* A call running `run` on the loop; NULL without memory. The caller owns it until it runs. */
struct mgr_call *sto_mgr_call_new(struct sto_mgr *m,
                                  void (*run)(struct sto_mgr *, struct mgr_call *));
/* Free a call (wipes its secrets). */
void sto_mgr_call_free(struct mgr_call *c);
/* Loop thread: the call's result is known. The loop never touches c afterwards. */
void sto_mgr_call_finish(struct mgr_call *c, int err, enum sto_err_class cls, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
/* Loop thread: finish c with a snapshot v of n items (c owns it; NULL: out of memory). */
void sto_mgr_call_hand_over(struct mgr_call *c, void *v, size_t n);
/*
 * Run c on the loop and wait up to ms. True when it ended: c is the caller's again, to read
 * and free. False when it did not: c is no longer the caller's, *err and *res say why.
 */
bool sto_mgr_call_through(struct sto_mgr *m, struct mgr_call *c, uint32_t ms,
                          struct sto_result *res, int *err);
/* Run `run` (on `id`) and take what it handed over: *out (caller frees), *n the count. */
int sto_mgr_call_take(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                      const char *id, void **out, size_t *n);
/* sto_mgr_call_take for one item of `size` bytes copied into *out. */
int sto_mgr_call_take_one(struct sto_mgr *m, void (*run)(struct sto_mgr *, struct mgr_call *),
                          const char *id, void *out, size_t size);

/* ---------------------------------------------------------------- manager.c */

/* The class of a login or connect failure. */
enum sto_err_class sto_mgr_login_class(int err);

/* ---------------------------------------------------------------- vol_access.c */

/* The access of volume id into out (the defaults when none was set). */
void sto_vol_access_get(const struct sto_mgr *m, const char *id, struct sto_vol_access *out);
void sto_vol_access_free(struct sto_mgr *m);

/* ---------------------------------------------------------------- volume.c */

/* A probed disk LUN of ms becomes a volume (at most VOLUMES_MAX; none without memory). */
void sto_vol_add(struct mgr_session *ms, const struct sto_lun_info *li);
/* The session is back: run its held chunks again. */
void sto_vol_held_resubmit(struct mgr_session *ms);
/* Fail the session's held chunks and those waiting for a command slot. */
void sto_vol_held_fail(struct mgr_session *ms, int err, const char *why);

/* A session's log fields: its id, target and portal, and the error (NULL: none). */
#define SES_FIELDS(ms, err)                                                               \
    LOG_FIELDS({ "session", (ms)->id }, { "target", (ms)->req.target },                   \
               { "portal", (ms)->req.portal }, { "err", (err) })

#endif
