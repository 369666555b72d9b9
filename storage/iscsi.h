/*
 * iscsi.h - the iSCSI initiator (the "network storage driver"): sessions with one
 * connection, login with CHAP, operational negotiation, SendTargets discovery, and the
 * full feature phase (SCSI commands with immediate/unsolicited/solicited data, Data-In,
 * NOP, async messages, logout). RFC 7143.
 *
 * Everything here runs on one storage loop thread; callbacks run on that thread. The
 * session gets its TCP connection from a connect hook (the offload broker, or the host
 * stack directly) and only ever uses it through common/transport.h.
 */
#ifndef TOEGW_STORAGE_ISCSI_H
#define TOEGW_STORAGE_ISCSI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/transport.h"
#include "storage/loop.h"
#include "storage/text.h"

#define ISC_DEFAULT_PORT 3260
#define ISC_DEFAULT_INITIATOR "iqn.2026-11.io.toegw:initiator"
#define ISC_SENSE_MAX 252

/*
 * Timeouts (open-iscsi's defaults). In a configuration 0 means "the default"; an explicit
 * zero, where one makes sense, is ISC_TIMEOUT_ZERO (no NOP-Out pings at all).
 */
#define ISC_TIMEOUT_ZERO UINT32_MAX
#define ISC_DEF_LOGIN_TIMEOUT_MS 15000
#define ISC_DEF_LOGOUT_TIMEOUT_MS 15000
#define ISC_DEF_NOP_INTERVAL_MS 5000
#define ISC_DEF_NOP_TIMEOUT_MS 5000
#define ISC_DEF_COMMAND_TIMEOUT_MS 30000
#define ISC_DEF_ABORT_TIMEOUT_MS 15000
#define ISC_DEF_LUN_RESET_TIMEOUT_MS 30000

struct isc_session;

/*
 * Obtains the TCP connection for a session (the broker in the appliance). On success *out
 * is a conn handed over to the session, which closes it through `release`. 0 or -errno;
 * a message may be written to err.
 */
struct isc_connector {
    int (*connect)(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                   char *err, size_t errlen);
    /* Return the conn to its provider (the broker); NULL: stk_conn_close. */
    void (*release)(void *arg, struct stk_conn *c, bool abort);
    void *arg;
};

struct isc_session_config {
    const char *initiator_name;     /* NULL: ISC_DEFAULT_INITIATOR */
    const char *target_name;        /* NULL for a discovery session */
    struct sockaddr_in portal;
    bool discovery;
    bool header_digest;             /* require CRC32C header digests */
    bool data_digest;               /* require CRC32C data digests */
    bool no_header_digest;          /* refuse them: offer None alone (neither flag: offer */
    bool no_data_digest;            /* None,CRC32C and let the target choose) */
    const char *chap_user;          /* one-way CHAP (NULL: AuthMethod=None) */
    const char *chap_secret;
    const char *target_user;        /* mutual CHAP: what the target must answer as */
    const char *target_secret;
    struct isc_connector connector; /* zeroed: host stack, kernel-chosen port */
    /* Our preferences; 0 means the built-in default. */
    uint32_t max_recv_dsl;
    uint32_t max_burst;
    uint32_t first_burst;
    /* Timeouts (ms; 0: the ISC_DEF_* default). Every wait on the target is bounded. */
    uint32_t login_timeout_ms;      /* connect and log in */
    uint32_t nop_interval_ms;       /* idle this long: NOP-Out ping (ISC_TIMEOUT_ZERO: none) */
    uint32_t nop_timeout_ms;        /* nothing received this long after a ping: drop */
    uint32_t command_timeout_ms;    /* a command unanswered this long is aborted */
    uint32_t abort_timeout_ms;      /* an ABORT TASK unanswered this long: LUN RESET */
    uint32_t lun_reset_timeout_ms;  /* a LUN RESET unanswered this long: drop */
    uint32_t logout_timeout_ms;     /* in-flight commands and the logout, together */
    /*
     * Commands sent and not yet answered, at most (0: only the target's CmdSN window
     * limits). Targets slow down with deep queues; more wait in the session meanwhile.
     */
    uint32_t max_outstanding;
    uint32_t max_outstanding_writes; /* the same for writes alone (0: no separate limit) */
};

/* The timeouts of isc_session_config together (0: default), for owners that pass them on. */
struct isc_timeouts {
    uint32_t login_ms, logout_ms, nop_interval_ms, nop_timeout_ms;
    uint32_t command_ms, abort_ms, lun_reset_ms;
};

static inline void isc_config_timeouts(struct isc_session_config *cfg,
                                       const struct isc_timeouts *t)
{
    cfg->login_timeout_ms = t->login_ms;
    cfg->logout_timeout_ms = t->logout_ms;
    cfg->nop_interval_ms = t->nop_interval_ms;
    cfg->nop_timeout_ms = t->nop_timeout_ms;
    cfg->command_timeout_ms = t->command_ms;
    cfg->abort_timeout_ms = t->abort_ms;
    cfg->lun_reset_timeout_ms = t->lun_reset_ms;
}

enum isc_session_state {
    ISC_STATE_CONNECTING = 0,
    ISC_STATE_LOGGING_IN,
    ISC_STATE_LOGGED_IN,
    ISC_STATE_LOGGING_OUT,
    ISC_STATE_LOGGED_OUT,
    ISC_STATE_FAILED,
};

const char *isc_state_name(enum isc_session_state st);

/*
 * Create a session on `loop`. Strings in cfg are copied (secrets wiped on free).
 * Returns NULL and sets errno. Caller frees with isc_session_free.
 */
struct isc_session *isc_session_new(struct sto_loop *loop, const struct isc_session_config *cfg);
/* Closes the connection abruptly if still open; pending callbacks are not called. */
void isc_session_free(struct isc_session *s);

typedef void (*isc_done_cb)(struct isc_session *s, int err, void *arg);

/*
 * Connect and log in; cb(err) once: 0 when in full feature phase, else -errno. Bounded by
 * the login timeout. Logging in again keeps the session's ISID, so the target reinstates
 * the session (RFC 7143 §6.3.5) and ends whatever the old connection left running.
 */
int isc_session_login(struct isc_session *s, isc_done_cb cb, void *arg);
/*
 * Log out (after in-flight commands finish); cb(err) once the connection is closed. The
 * wait for those commands and the logout together are bounded by the logout timeout: then
 * the connection is dropped, the commands fail and cb gets -ETIMEDOUT.
 */
int isc_session_logout(struct isc_session *s, isc_done_cb cb, void *arg);
/*
 * Drop the connection now, without a logout: every command fails with err (callbacks
 * run), as do pending login, logout and discovery callbacks; the failure callback does not
 * run. For an owner that deletes a session in whatever state it is.
 */
void isc_session_drop(struct isc_session *s, int err, const char *why);

/*
 * Told once per login when a session that was logged in stops taking commands without its
 * owner asking (isc_session_error says why): either the connection failed - it is already
 * closed, and the commands in flight are failed right after this returns - or the target
 * asked for a logout (async event 1) - the commands in flight finish first, then the session
 * logs out by itself (bounded by the logout timeout) and ends logged_out. Either way the
 * owner may log in again once the session is no longer logged in, after
 * isc_session_reconnect_delay_ms. Runs on the loop thread; it must not free the session.
 */
typedef void (*isc_event_cb)(struct isc_session *s, void *arg);
void isc_session_set_failure_cb(struct isc_session *s, isc_event_cb cb, void *arg);
/*
 * How long to wait before logging in again after a failure: the Time2Wait of the target's
 * async message that dropped the connection (event 2 or 3; when it says 0, the negotiated
 * DefaultTime2Wait), else 0.
 */
uint32_t isc_session_reconnect_delay_ms(const struct isc_session *s);

/* The last error message of the session ("" when none). Borrowed. */
const char *isc_session_error(const struct isc_session *s);
enum isc_session_state isc_session_state(const struct isc_session *s);
const struct isc_params *isc_session_params(const struct isc_session *s);
/* The session's connection (NULL when not connected). Borrowed. */
struct stk_conn *isc_session_conn(const struct isc_session *s);
uint16_t isc_session_tsih(const struct isc_session *s);

/* SendTargets=All on a discovery session: each target and its portals. */
struct isc_target_info {
    char *name;       /* owned */
    char **portals;   /* owned; "addr:port,tpgt" as sent */
    size_t nportals;
};
struct isc_target_list {
    struct isc_target_info *v;
    size_t n;
};
typedef void (*isc_discovery_cb)(struct isc_session *s, int err, struct isc_target_list *list,
                                 void *arg);
/* cb receives a list it owns (free with isc_target_list_free), or err. */
int isc_session_send_targets(struct isc_session *s, isc_discovery_cb cb, void *arg);
void isc_target_list_free(struct isc_target_list *l);

/* SCSI command. */
enum isc_dir { ISC_DIR_NONE = 0, ISC_DIR_READ, ISC_DIR_WRITE };

struct isc_scsi_result {
    int err;                 /* 0: a SCSI status arrived; -errno: it never will */
    uint8_t status;          /* SCSI status byte (0 good, 2 check condition, ...) */
    uint32_t residual;       /* from the response when under/overflow is set */
    bool underflow, overflow;
    uint32_t data_in_len;    /* bytes of Data-In received */
    uint32_t sense_len;
    uint8_t sense[ISC_SENSE_MAX];
    char why[160];           /* when err is set: what went wrong, for the owner to show */
};

struct isc_scsi_cmd;
typedef void (*isc_scsi_cb)(struct isc_session *s, const struct isc_scsi_result *r, void *arg);

struct isc_scsi_req {
    uint32_t lun;
    uint8_t cdb[16];
    uint8_t cdb_len;
    enum isc_dir dir;
    void *buf;         /* borrowed until the callback: Data-In destination / Data-Out source */
    uint32_t len;      /* expected data transfer length */
    isc_scsi_cb cb;
    void *arg;
    bool check_expected; /* a CHECK CONDITION is an answer, not an error (the LUN probe's
                            UNIT ATTENTION at login, an unsupported VPD page): not counted */
};

/*
 * Queue a SCSI command. It is sent when the CmdSN window allows. The callback runs exactly
 * once (never from inside this call). 0, -ENOTCONN (not logged in), -EINVAL, -ENOMEM.
 */
int isc_session_submit(struct isc_session *s, const struct isc_scsi_req *req);
/* Commands queued or in flight. */
unsigned isc_session_inflight(const struct isc_session *s);

struct isc_session_counters {
    uint64_t cmds, read_bytes, write_bytes, errors;
    uint64_t pdus_in, pdus_out, r2ts, nops_in, nops_out, async_events, rejects;
    uint64_t immediate_bytes, unsolicited_bytes, solicited_bytes;
    /* timeouts: commands timed out, ABORT TASK / LUN RESET sent, pings unanswered */
    uint64_t cmd_timeouts, aborts, lun_resets, nop_timeouts;
};
const struct isc_session_counters *isc_session_counters(const struct isc_session *s);

#endif
