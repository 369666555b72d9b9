/*
 * session_int.h - the iSCSI session's internals, shared by its sources: session.c
 * (lifecycle, failure, NOP, logout), pdu_io.c (the transmit queue and the receive
 * framing), login.c (the login state machine), ffp.c (the full feature phase) and
 * discovery.c (SendTargets). Everything here runs on the storage loop. The public
 * interface is storage/iscsi.h.
 */
#ifndef TOEGW_STORAGE_SESSION_INT_H
#define TOEGW_STORAGE_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/iscsi.h"
#include "storage/pdu.h"
#include "storage/tmf.h"
#include "storage/wire.h"

#define TASKS_MAX 1024              /* commands queued or in flight per session */
#define RBUF_SIZE (256 * 1024)      /* read-ahead buffer */
#define DIRECT_READ_MIN (16 * 1024) /* read data this large straight into its destination */
#define RA_SMALL 1024               /* read-ahead while large data segments stream in */
#define RX_BUDGET 512               /* PDUs per wake before letting others run */
#define AHS_MAX 1020
/*
 * NOP-Out answers owed to the target that may wait unsent. A target that pings faster than
 * it reads would otherwise grow the transmit queue without bound: past this many, the
 * session stops reading from the target until its answers have left (as TCP does).
 */
#define TX_NOP_REPLIES_MAX 64

#define DEF_MAX_RECV_DSL (256 * 1024)
#define DEF_MAX_BURST (16 * 1024 * 1024 - 512)
#define DEF_FIRST_BURST (256 * 1024)

/* ITTs of non-SCSI requests: low 16 bits beyond any task index. */
#define ITT_LOGIN 0x0000fff1u
#define ITT_TEXT 0x0000fff2u
#define ITT_LOGOUT 0x0000fff3u
#define ITT_NOP 0x0000fff4u

/* Where the receive framing is in the current PDU. */
enum rx_state { RX_HDR, RX_DATA, RX_TRAILER };

/*
 * The login, one state per step (login.c). The security stage runs SECURITY (no CHAP:
 * AuthMethod=None offered) or CHAP_METHOD → CHAP_ALG → CHAP_RESPONSE → CHAP_DONE; then
 * OPERATIONAL negotiates the operational keys; FULL is the full feature phase.
 */
enum isc_login_state {
    ISC_LS_SECURITY,      /* security stage without CHAP */
    ISC_LS_CHAP_METHOD,   /* AuthMethod=CHAP offered */
    ISC_LS_CHAP_ALG,      /* CHAP_A offered */
    ISC_LS_CHAP_RESPONSE, /* CHAP_N/CHAP_R (and our challenge, for mutual CHAP) sent */
    ISC_LS_CHAP_DONE,     /* the target is satisfied (and, mutual, so are we) */
    ISC_LS_OPERATIONAL,   /* operational stage: keys offered and answered */
    ISC_LS_FULL,          /* the login is complete */
};

/*
 * What a receive handler asks of the connection once the receive loop has returned: the
 * handlers never close or replace the connection that loop reads from; the I/O layer
 * applies the action (isc_rx_apply) after the loop.
 */
enum isc_rx_verdict {
    ISC_RX_CONTINUE = 0, /* go on */
    ISC_RX_RECONNECT,    /* drop the connection, log in again at `dst` (redirect, retry) */
    ISC_RX_FAIL,         /* fail the session with `err` (s->err says why) */
    ISC_RX_LOGGED_OUT,   /* the logout was answered (`response`): close, report */
};

struct isc_rx_action {
    enum isc_rx_verdict verdict;
    int err;                /* ISC_RX_FAIL: -errno */
    uint8_t response;       /* ISC_RX_LOGGED_OUT: the Logout Response's response code */
    struct sockaddr_in dst; /* ISC_RX_RECONNECT: where to log in */
};

#define ISC_RX_GO ((struct isc_rx_action){ .verdict = ISC_RX_CONTINUE })

static inline bool isc_rx_go(struct isc_rx_action a)
{
    return a.verdict == ISC_RX_CONTINUE;
}

/* One PDU in the transmit queue; recycled through the session's free list. */
struct tx_pdu {
    struct sto_wire_buf wb; /* parts: hdr (hdr_len), data (data_len), trailer */
    uint8_t hdr[ISC_BHS_LEN + ISC_DIGEST_LEN];
    uint8_t *own;           /* owned data (login/text, or a copy), freed when retired */
    struct task *task;      /* the command whose buffer the data points into, or NULL */
    bool nop_reply;         /* an answer to the target's NOP-In (TX_NOP_REPLIES_MAX) */
    bool r2t_end;           /* the last Data-Out answering an R2T: that R2T is done */
    uint8_t trailer[3 + ISC_DIGEST_LEN];
    struct tx_pdu *next_free;
};

/* One SCSI command: a slot of the session's task table. */
struct task {
    struct isc_scsi_req req;
    struct isc_scsi_result res;
    uint32_t itt;
    uint32_t exp_datasn;
    uint32_t r2t_bytes;     /* solicited bytes asked for so far (each byte once at ERL 0) */
    unsigned tx_queued;     /* PDUs in the transmit queue that send from req.buf */
    unsigned r2t_open;      /* R2Ts whose Data-Out has not all left (MaxOutstandingR2T) */
    bool in_use;
    bool sent;
    bool aborting;          /* timed out: task management is ending it (tmf.c) */
    uint32_t cmdsn;         /* once sent: for an ABORT TASK's RefCmdSN */
    uint64_t submit_ms;     /* when it was submitted */
    uint64_t submit_ns;     /* the same, finer: its latency */
    uint64_t sent_ms;       /* when it was sent: the command timeout runs from here */
    struct task *next_wait;
};

struct isc_session {
    struct sto_loop *loop;
    struct isc_session_config cfg;  /* strings owned (copied) */
    enum isc_session_state state;
    char err[320];

    struct stk_conn *conn;          /* owned; returned through cfg.connector.release */
    struct sto_watch watch;
    struct sto_defer tx_defer;      /* isc_tx_kick: a flush at the loop iteration's end */
    bool connecting;
    bool toe_unanswered;            /* this connect already met a TOE that got no answer */
    struct sockaddr_in target_addr; /* portal, or where a redirect sent us */

    struct isc_params want;         /* our offers */
    struct isc_params params;       /* negotiated */
    uint8_t isid[6];
    uint16_t tsih;
    uint32_t cmdsn, exp_cmdsn, max_cmdsn, exp_statsn;

    /* login (login.c) */
    enum isc_login_state login;
    int chap_alg;
    bool chap_md5_only;             /* the target refused our algorithm list once */
    uint8_t chap_id;                /* our id for mutual CHAP */
    uint8_t chap_challenge[16];     /* our challenge for mutual CHAP */
    uint8_t *login_text;            /* owned; accumulated across continued responses */
    size_t login_text_len;
    struct isc_kvlist offered;      /* operational keys offered and not yet answered */
    struct isc_kvlist replies;      /* answers owed to keys the target offered */
    int login_rounds;
    int redirects;
    isc_done_cb login_cb;
    void *login_arg;
    isc_event_cb failure_cb;
    void *failure_arg;
    struct sto_timer login_timer;

    /* discovery (discovery.c) */
    isc_discovery_cb disc_cb;
    void *disc_arg;
    uint8_t *text_buf;              /* owned; the SendTargets answer so far */
    size_t text_len;

    /* logout */
    isc_done_cb logout_cb;
    void *logout_arg;
    bool logout_wanted;
    bool target_logout;             /* the target asked for it (async event 1) */
    struct sto_timer logout_timer;  /* in-flight commands + logout response */
    uint32_t logout_limit_ms;       /* what logout_timer was armed for */
    bool owner_told;                /* failure_cb ran since the last login */
    uint32_t reconnect_delay_ms;    /* Time2Wait of an async message that dropped us */

    /* commands (ffp.c) */
    struct task *tasks;             /* owned: TASKS_MAX slots */
    uint16_t *free_idx;             /* owned */
    unsigned nfree;
    uint16_t gen;
    struct task *wait_head, *wait_tail;
    unsigned inflight;              /* queued + sent */
    unsigned outstanding;           /* sent, not answered */
    unsigned outstanding_writes;

    /* transmit (pdu_io.c) */
    struct sto_wire txq;            /* tx_pdus queued for the connection */
    struct tx_pdu *tx_free;         /* owned: recycled PDUs */
    unsigned tx_nop_replies;        /* queued NOP-Out answers (TX_NOP_REPLIES_MAX) */
    bool rx_paused;                 /* not reading until those answers have left */
    bool in_rx;                     /* a receive pass runs: flushes and failures wait */
    struct isc_rx_action rx_pending; /* a failure recorded during the receive pass */

    /* receive (pdu_io.c) */
    uint8_t *rbuf;                  /* owned: RBUF_SIZE */
    size_t rstart, rend;
    bool rx_drained;                /* the last read came back short: no more for now */
    size_t ra_size;                 /* read-ahead size: small while big PDUs stream in */
    enum rx_state rx;
    uint8_t rhdr[ISC_BHS_LEN + AHS_MAX + ISC_DIGEST_LEN];
    size_t rgot, rneed;
    uint8_t *rdata;                 /* destination of the current data segment */
    uint32_t rdsl;
    uint8_t *scratch;               /* owned: data segments with no other destination */
    uint32_t scratch_cap;
    uint32_t rcrc;
    uint8_t rtrail[3 + ISC_DIGEST_LEN];
    struct task *rtask;             /* command the current Data-In belongs to */

    /* liveness */
    struct sto_timer nop_timer;
    uint64_t last_rx_ms;
    uint64_t nop_sent_ms;           /* 0: no ping outstanding */
    uint16_t nop_gen;

    /* command timeouts: one watchdog timer per session, armed for the earliest deadline */
    struct sto_timer cmd_timer;
    struct isc_tmf tmf;             /* the escalation in progress (tmf.c) */
    uint32_t reset_cmdsn;           /* CmdSN of the LUN reset in flight: older ones end */
    uint64_t window_closed_ms;      /* commands wait on a closed CmdSN window since (0: no) */
    uint64_t text_sent_ms;          /* a SendTargets request is unanswered since (0: no) */

    struct isc_session_counters counters;
};

#define ISC_SESSION_OF(ptr, member) \
    ((struct isc_session *)((char *)(ptr) - offsetof(struct isc_session, member)))

static inline bool in_ffp(const struct isc_session *s)
{
    return s->state == ISC_STATE_LOGGED_IN || s->state == ISC_STATE_LOGGING_OUT;
}

/* Digests apply from the first PDU after the login phase on. */
static inline bool header_digest_on(const struct isc_session *s)
{
    return s->params.header_digest && in_ffp(s);
}

static inline bool data_digest_on(const struct isc_session *s)
{
    return s->params.data_digest && in_ffp(s);
}

/* A failure waits for the receive pass to end (isc_session_fail). */
static inline bool isc_fail_pending(const struct isc_session *s)
{
    return s->rx_pending.verdict != ISC_RX_CONTINUE;
}

static inline const char *isc_target_label(const struct isc_session *s)
{
    return s->cfg.discovery ? "discovery" : s->cfg.target_name;
}

/* session.c */
/*
 * Fail the session: the message goes to s->err, the connection is dropped, commands and
 * pending callbacks fail with err. During a receive pass the failure is only recorded
 * (s->rx_pending) and the I/O layer applies it when the pass ends.
 */
void isc_session_fail(struct isc_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* isc_session_fail for a receive handler: records the failure, returns the action. */
struct isc_rx_action isc_rx_fail(struct isc_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Apply a failure whose message is in s->err already. */
void isc_session_down(struct isc_session *s, int err);
void isc_session_error_set(struct isc_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run the login callback once (err 0: logged in). */
void isc_finish_login(struct isc_session *s, int err);
/* Send the Logout Request once nothing is in flight (bounded by the logout timer). */
void isc_start_logout(struct isc_session *s);
struct isc_rx_action isc_logout_rsp(struct isc_session *s, const uint8_t *h);
/* The Logout Response arrived (ISC_RX_LOGGED_OUT): close the connection, report. */
void isc_logged_out(struct isc_session *s, uint8_t response);
void isc_send_nop_out(struct isc_session *s, uint32_t itt, uint32_t ttt, uint64_t lun);
/* A NOP-In: our ping's answer, or the target's ping (answered). */
void isc_nop_in(struct isc_session *s, const uint8_t *h);
void isc_nop_timer_cb(struct sto_timer *t);
void isc_logout_timeout_cb(struct sto_timer *t);

/* pdu_io.c */
struct tx_pdu *isc_tx_new(struct isc_session *s);
/* Give back a PDU never queued. */
void isc_tx_unused(struct isc_session *s, struct tx_pdu *p);
/* Finish a PDU whose BHS is filled in (but for DSL): digests, padding, queue it. */
void isc_tx_queue(struct isc_session *s, struct tx_pdu *p, const uint8_t *data, uint32_t len);
/* Write what is queued (not while connecting). */
void isc_tx_flush(struct isc_session *s);
/* Flush at the end of the loop's iteration, or of the receive pass that runs. */
void isc_tx_kick(struct isc_session *s);
void isc_tx_deferred(struct sto_defer *d);      /* the cb of tx_defer */
/* Drop every queued PDU and the free list. */
void isc_tx_free_all(struct isc_session *s);
/* No queued PDU may point into t's buffer any more. 0, or -ENOMEM. */
int isc_tx_drop_task(struct isc_session *s, struct task *t);
void isc_put_common(struct isc_session *s, uint8_t *h, uint8_t op, uint8_t flags,
                    uint32_t itt);
/* Connect to s->target_addr (the connector, or the host stack). 0 or -errno (s->err). */
int isc_conn_open(struct isc_session *s);
void isc_conn_close(struct isc_session *s, bool abort);
void isc_conn_cb(struct sto_watch *w, uint32_t revents);
/* Carry out what a receive handler asked for, the receive loop having returned. */
void isc_rx_apply(struct isc_session *s, struct isc_rx_action a);

/* login.c */
/* The connection is up: reset per-connection login state, send the first request. */
void isc_login_start(struct isc_session *s);
struct isc_rx_action isc_login_rsp(struct isc_session *s, const uint8_t *h,
                                   const uint8_t *data, uint32_t len);
void isc_login_timeout_cb(struct sto_timer *t);

/* ffp.c */
/* Dispatch the PDU in s->rhdr / s->rdata (s->rdsl bytes) to its handler. */
struct isc_rx_action isc_rx_dispatch(struct isc_session *s);
/* Where the data of a Data-In goes (validated against its command); NULL: failed. */
uint8_t *isc_data_in_dest(struct isc_session *s, const uint8_t *h, uint32_t len);
void isc_send_waiting(struct isc_session *s);
void isc_fail_all_tasks(struct isc_session *s, int err);
void isc_cmd_timer_at(struct isc_session *s, uint64_t due_ms);
void isc_cmd_timer_cb(struct sto_timer *t);

/* discovery.c */
struct isc_rx_action isc_text_rsp(struct isc_session *s, const uint8_t *h,
                                  const uint8_t *data, uint32_t len);

#endif
