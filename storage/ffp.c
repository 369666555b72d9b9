/*
 * ffp.c - the session's full feature phase: the task table (ITT = generation << 16 |
 * slot), submitting SCSI commands within the CmdSN window, immediate, unsolicited and
 * solicited (R2T) Data-Out, Data-In, SCSI responses, rejects, async messages, the command
 * timeouts with their task management escalation (tmf.c), and the dispatch of every
 * received PDU to its handler.
 */
#include "storage/session_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "storage/scsi.h"

/* ---------------------------------------------------------------- commands: slots */

static struct task *task_alloc(struct isc_session *s)
{
    struct task *t;
    uint16_t idx;

    if (!s->nfree)
        return NULL;
    idx = s->free_idx[--s->nfree];
    t = &s->tasks[idx];
    s->gen++;
    if (s->gen == 0xffff) /* keep ITTs clear of the reserved 0xffffffff */
        s->gen = 0;
    memset(t, 0, sizeof(*t));
    t->itt = ((uint32_t)s->gen << 16) | idx;
    t->in_use = true;
    return t;
}

/*
 * The command a target PDU names by its ITT. Only a command that was sent: one still
 * waiting for the CmdSN window is on the wait list, and a target that answers it (by
 * guessing its ITT) must not complete it there, or its slot would be reused while linked.
 */
static struct task *task_find(struct isc_session *s, uint32_t itt)
{
    uint32_t idx = itt & 0xffff;
    struct task *t;

    if (idx >= TASKS_MAX)
        return NULL;
    t = &s->tasks[idx];
    return t->in_use && t->sent && t->itt == itt ? t : NULL;
}

/*
 * Finish a command: release its slot, then run its callback (which may submit more). The
 * callback gives the command's buffer back to its owner, so first no queued PDU may point
 * into it any more (isc_tx_drop_task).
 */
static void task_complete(struct isc_session *s, struct task *t)
{
    bool dropped = t->tx_queued == 0 || isc_tx_drop_task(s, t) == 0;
    isc_scsi_cb cb = t->req.cb;
    void *arg = t->req.arg;

    if (!dropped && !t->res.err)
        t->res.err = -ENOMEM;
    struct isc_scsi_result res = t->res;
    t->in_use = false;
    if (t->sent) {
        s->outstanding--;
        if (t->req.dir == ISC_DIR_WRITE)
            s->outstanding_writes--;
    }
    s->free_idx[s->nfree++] = (uint16_t)(t - s->tasks);
    s->inflight--;
    bool answered_check = t->req.check_expected && res.status == SCSI_STATUS_CHECK_CONDITION;
    if (res.err || (res.status && !answered_check))
        s->counters.errors++;
    if (!dropped) /* the transmit queue still points into the buffer: never send it */
        isc_session_fail(s, -ENOMEM, "out of memory copying the data of a finished command");
    cb(s, &res, arg);
}

/* Fail one command with a reason its owner can show (res.why). */
static void task_fail(struct isc_session *s, struct task *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void task_fail(struct isc_session *s, struct task *t, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->res.why, sizeof(t->res.why), fmt, ap);
    va_end(ap);
    snprintf(s->err, sizeof(s->err), "%s", t->res.why);
    t->res.err = err;
    task_complete(s, t);
}

void isc_fail_all_tasks(struct isc_session *s, int err)
{
    s->wait_head = s->wait_tail = NULL;
    /* completions below count themselves out of `outstanding` */
    for (unsigned i = 0; i < TASKS_MAX; i++) {
        struct task *t = &s->tasks[i];
        if (!t->in_use)
            continue;
        t->res.err = err;
        snprintf(t->res.why, sizeof(t->res.why), "%.*s", (int)sizeof(t->res.why) - 1, s->err);
        task_complete(s, t);
    }
}

/* ---------------------------------------------------------------- commands: sending */

static void update_sn(struct isc_session *s, const uint8_t *h)
{
    uint32_t exp = isc_get32(h, ISC_OFF_EXPCMDSN), max = isc_get32(h, ISC_OFF_MAXCMDSN);

    /* RFC 7143 §4.2.2.1: ignore a window that is invalid or older than ours */
    if (isc_sn_lt(max, exp - 1))
        return;
    if (isc_sn_lt(s->exp_cmdsn, exp))
        s->exp_cmdsn = exp;
    if (isc_sn_lt(s->max_cmdsn, max))
        s->max_cmdsn = max;
}

static void queue_data_out(struct isc_session *s, struct task *t, uint32_t ttt, uint32_t off,
                           uint32_t len)
{
    uint32_t datasn = 0;
    uint32_t end = off + len;

    while (off < end) {
        uint32_t n = end - off;
        struct tx_pdu *p = isc_tx_new(s);
        if (!p) {
            isc_session_fail(s, -ENOMEM, "out of memory queueing data-out");
            return;
        }
        if (n > s->params.max_send_dsl)
            n = s->params.max_send_dsl;
        isc_put_common(s, p->hdr, ISC_OP_DATA_OUT, off + n == end ? ISC_FLAG_FINAL : 0,
                       t->itt);
        isc_put64(p->hdr, ISC_OFF_LUN, isc_lun_encode(t->req.lun));
        isc_put32(p->hdr, ISC_OFF_TTT, ttt);
        isc_put32(p->hdr, ISC_OFF_DATASN, datasn++);
        isc_put32(p->hdr, ISC_OFF_BUFOFF, off);
        p->task = t;
        p->r2t_end = ttt != ISC_RSVD_TAG && off + n == end;
        isc_tx_queue(s, p, (const uint8_t *)t->req.buf + off, n);
        off += n;
    }
}

static void task_send(struct isc_session *s, struct task *t)
{
    struct tx_pdu *p = isc_tx_new(s);
    uint32_t imm = 0, unsol = 0;
    uint8_t flags = ISC_CMD_ATTR_SIMPLE;

    if (!p) {
        isc_session_fail(s, -ENOMEM, "out of memory queueing a command");
        return;
    }
    if (t->req.dir == ISC_DIR_WRITE) {
        uint32_t first = t->req.len < s->params.first_burst ? t->req.len
                                                            : s->params.first_burst;
        if (s->params.immediate_data)
            imm = first < s->params.max_send_dsl ? first : s->params.max_send_dsl;
        if (!s->params.initial_r2t)
            unsol = first - imm;
        flags |= ISC_CMD_WRITE;
        s->counters.immediate_bytes += imm;
        s->counters.unsolicited_bytes += unsol;
    } else if (t->req.dir == ISC_DIR_READ) {
        flags |= ISC_CMD_READ;
    }
    if (!unsol)
        flags |= ISC_FLAG_FINAL;
    isc_put_common(s, p->hdr, ISC_OP_SCSI_CMD, flags, t->itt);
    isc_put64(p->hdr, ISC_OFF_LUN, isc_lun_encode(t->req.lun));
    isc_put32(p->hdr, ISC_OFF_CMD_EDTL, t->req.len);
    t->cmdsn = s->cmdsn;
    t->sent_ms = sto_now_ms();
    isc_cmd_timer_at(s, t->sent_ms + s->cfg.command_timeout_ms);
    isc_put32(p->hdr, ISC_OFF_CMDSN, s->cmdsn++);
    memcpy(p->hdr + ISC_OFF_CDB, t->req.cdb, t->req.cdb_len);
    p->task = imm ? t : NULL;
    isc_tx_queue(s, p, t->req.buf, imm);
    if (unsol)
        queue_data_out(s, t, ISC_RSVD_TAG, imm, unsol);
    s->counters.cmds++;
}

static void cmd_window_check(struct isc_session *s);

/*
 * Send queued commands while the CmdSN window is open (and no LUN reset is in flight: a
 * command sent meanwhile could be ended by it or not, the target decides).
 */
void isc_send_waiting(struct isc_session *s)
{
    bool sent = false;

    while (s->wait_head && s->state == ISC_STATE_LOGGED_IN &&
           s->tmf.state != ISC_TMF_RESETTING && isc_sn_le(s->cmdsn, s->max_cmdsn) &&
           (!s->cfg.max_outstanding || s->outstanding < s->cfg.max_outstanding)) {
        struct task *t = s->wait_head;
        bool write = t->req.dir == ISC_DIR_WRITE;
        /* commands leave in order: a write at the head waits for room among the writes */
        if (write && s->cfg.max_outstanding_writes &&
            s->outstanding_writes >= s->cfg.max_outstanding_writes)
            break;
        s->wait_head = t->next_wait;
        if (!s->wait_head)
            s->wait_tail = NULL;
        t->sent = true;
        s->outstanding++;
        s->outstanding_writes += write;
        task_send(s, t);
        sent = true;
    }
    cmd_window_check(s);
    if (sent)
        isc_tx_kick(s);
}

int isc_session_submit(struct isc_session *s, const struct isc_scsi_req *req)
{
    struct task *t;

    if (s->state != ISC_STATE_LOGGED_IN || s->logout_wanted || s->cfg.discovery)
        return -ENOTCONN;
    if (!req->cb || req->cdb_len == 0 || req->cdb_len > 16 ||
        (req->dir != ISC_DIR_NONE && (!req->buf || !req->len)))
        return -EINVAL;
    t = task_alloc(s);
    if (!t)
        return -EBUSY;
    t->req = *req;
    t->submit_ms = sto_now_ms();
    s->inflight++;
    if (s->wait_tail)
        s->wait_tail->next_wait = t;
    else
        s->wait_head = t;
    s->wait_tail = t;
    isc_send_waiting(s);
    return 0;
}

/* ---------------------------------------------------------------- responses and data */

/*
 * A WRITE moves exactly the blocks its CDB names: a residual means blocks not written. Other
 * commands with data-out (UNMAP, WRITE SAME) may legally leave part of it unused.
 */
static bool is_data_write(uint8_t opcode)
{
    return opcode == SCSI_WRITE10 || opcode == SCSI_WRITE16 || opcode == 0xaa /* WRITE(12) */;
}

/*
 * Status arrived (a SCSI Response, or a Data-In with the S bit): record it and hold the
 * residual to the data that really arrived, so that a short read is never a success by
 * accident and a target's lie about what it sent fails the command.
 */
static void task_status(struct isc_session *s, struct task *t, const uint8_t *h)
{
    uint8_t flags = h[ISC_OFF_FLAGS];
    struct isc_scsi_result *r = &t->res;

    r->status = h[ISC_OFF_RSP_STATUS];
    r->underflow = flags & ISC_RSP_UNDER;
    r->overflow = flags & ISC_RSP_OVER;
    if (flags & (ISC_RSP_UNDER | ISC_RSP_OVER))
        r->residual = isc_get32(h, ISC_OFF_RESIDUAL);
    if (r->underflow && r->overflow) {
        task_fail(s, t, -EPROTO, "target reported both an underflow and an overflow for "
                  "task 0x%08x", t->itt);
        return;
    }
    if (r->status == SCSI_STATUS_GOOD && t->req.dir == ISC_DIR_READ) {
        uint32_t missing = t->req.len - r->data_in_len;
        if (r->underflow && r->residual != missing) {
            task_fail(s, t, -EPROTO, "target reported a residual of %u bytes but sent %u of "
                      "the %u expected", r->residual, r->data_in_len, t->req.len);
            return;
        }
        if (missing && !r->underflow) {
            /* data_in_len tells the truth: report the shortfall as the underflow it is */
            r->underflow = true;
            r->residual = missing;
        }
    } else if (r->status == SCSI_STATUS_GOOD && t->req.dir == ISC_DIR_WRITE &&
               (r->underflow || r->overflow) && r->residual && is_data_write(t->req.cdb[0])) {
        task_fail(s, t, -EIO, "target took %u bytes less than the %u-byte write",
                  r->residual, t->req.len);
        return;
    }
    task_complete(s, t);
}

static struct isc_rx_action handle_scsi_rsp(struct isc_session *s, const uint8_t *h,
                                            const uint8_t *data, uint32_t len)
{
    struct task *t = task_find(s, isc_get32(h, ISC_OFF_ITT));

    if (!t)
        return isc_rx_fail(s, -EPROTO, "scsi response for unknown task 0x%08x",
                           isc_get32(h, ISC_OFF_ITT));
    if (h[ISC_OFF_RSP_RESPONSE] != 0) {
        task_fail(s, t, -EIO, "target failed the command (iscsi response 0x%02x)",
                  h[ISC_OFF_RSP_RESPONSE]);
        return ISC_RX_GO;
    }
    if (len >= 2) {
        uint32_t slen = isc_get16(data, 0);
        if (slen > len - 2)
            slen = len - 2;
        if (slen > ISC_SENSE_MAX)
            slen = ISC_SENSE_MAX;
        memcpy(t->res.sense, data + 2, slen);
        t->res.sense_len = slen;
    }
    task_status(s, t, h);
    return ISC_RX_GO;
}

/* Called once the Data-In payload has landed (isc_data_in_dest checked where it went). */
static struct isc_rx_action handle_data_in(struct isc_session *s, const uint8_t *h,
                                           uint32_t len)
{
    struct task *t = s->rtask;
    uint8_t flags = h[ISC_OFF_FLAGS];

    if (!t)
        return ISC_RX_GO; /* already failed the session in isc_data_in_dest */
    s->rtask = NULL;
    t->res.data_in_len += len;
    s->counters.read_bytes += len;
    if (flags & ISC_DATAIN_STATUS) {
        if (!(flags & ISC_FLAG_FINAL))
            return isc_rx_fail(s, -EPROTO, "data-in with status but without the final bit");
        task_status(s, t, h);
    }
    return ISC_RX_GO;
}

/*
 * Choose where the data of a Data-In goes, validating it against its command. We offer
 * DataPDUInOrder=Yes and DataSequenceInOrder=Yes (their results are OR: always Yes), so
 * each PDU must start exactly where the data received so far ends: a repeated, overlapping
 * or skipped range is a protocol error, never data written twice or left unwritten.
 */
uint8_t *isc_data_in_dest(struct isc_session *s, const uint8_t *h, uint32_t len)
{
    uint32_t itt = isc_get32(h, ISC_OFF_ITT);
    struct task *t = task_find(s, itt);
    uint32_t off = isc_get32(h, ISC_OFF_BUFOFF), datasn = isc_get32(h, ISC_OFF_DATASN);

    s->rtask = NULL;
    if (!t || t->req.dir != ISC_DIR_READ) {
        isc_session_fail(s, -EPROTO, "data-in for %s task 0x%08x",
                         t ? "a non-read" : "unknown", itt);
        return NULL;
    }
    if ((uint64_t)off + len > t->req.len) {
        isc_session_fail(s, -EPROTO, "data-in at %u+%u beyond the %u bytes expected", off,
                         len, t->req.len);
        return NULL;
    }
    if (off != t->res.data_in_len) {
        isc_session_fail(s, -EPROTO, "data-in at offset %u after %u bytes had arrived (data "
                         "must arrive in order, without gaps or overlaps)", off,
                         t->res.data_in_len);
        return NULL;
    }
    if (datasn != t->exp_datasn) {
        isc_session_fail(s, -EPROTO, "data-in out of sequence (datasn %u, expected %u)",
                         datasn, t->exp_datasn);
        return NULL;
    }
    t->exp_datasn++;
    s->rtask = t;
    return (uint8_t *)t->req.buf + off;
}

static struct isc_rx_action handle_r2t(struct isc_session *s, const uint8_t *h)
{
    struct task *t = task_find(s, isc_get32(h, ISC_OFF_ITT));
    uint32_t off = isc_get32(h, ISC_OFF_BUFOFF), len = isc_get32(h, ISC_OFF_R2T_DDTL);

    s->counters.r2ts++;
    if (!t || t->req.dir != ISC_DIR_WRITE)
        return isc_rx_fail(s, -EPROTO, "r2t for an unknown or non-write task");
    if (len == 0 || (uint64_t)off + len > t->req.len || len > s->params.max_burst)
        return isc_rx_fail(s, -EPROTO, "r2t asks for %u+%u of a %u-byte write (max burst "
                           "%u)", off, len, t->req.len, s->params.max_burst);
    /* at error recovery level 0 each byte is asked for once: this bounds queued Data-Out */
    if ((uint64_t)t->r2t_bytes + len > t->req.len)
        return isc_rx_fail(s, -EPROTO, "r2ts ask for more than the %u bytes of the write",
                           t->req.len);
    /* an R2T is outstanding until the last of its Data-Out has left */
    if (t->r2t_open >= (s->params.max_outstanding_r2t ? s->params.max_outstanding_r2t : 1))
        return isc_rx_fail(s, -EPROTO, "target sent more r2ts at once than the "
                           "MaxOutstandingR2T=%u negotiated", s->params.max_outstanding_r2t);
    t->r2t_open++;
    t->r2t_bytes += len;
    s->counters.solicited_bytes += len;
    queue_data_out(s, t, isc_get32(h, ISC_OFF_TTT), off, len);
    return ISC_RX_GO;
}

/* ---------------------------------------------------------------- async, reject */

/*
 * The target asks for a logout (async event 1, within Parameter3 seconds): the owner is
 * told at once (it holds new I/O and logs in again once the session is logged out), the
 * commands in flight finish, then the session logs out, bounded by the logout timeout.
 * A session that is leaving already just goes on.
 */
static void target_requests_logout(struct isc_session *s, const uint8_t *h)
{
    uint32_t within_ms = isc_get16(h, ISC_OFF_ASYNC_PARAM3) * 1000u;
    uint32_t limit = s->cfg.logout_timeout_ms;

    log_info("iscsi", "target %s requests a logout within %u s (%u commands in flight)",
             isc_target_label(s), within_ms / 1000, s->inflight);
    if (s->state != ISC_STATE_LOGGED_IN || s->logout_wanted)
        return;
    isc_session_error_set(s, "the target requested a logout (async event 1)");
    s->logout_wanted = true;
    s->target_logout = true;
    if (within_ms && within_ms < limit)
        limit = within_ms;
    s->logout_limit_ms = limit;
    sto_timer_arm(s->loop, &s->logout_timer, limit);
    if (s->failure_cb && !s->owner_told) {
        s->owner_told = true;
        s->failure_cb(s, s->failure_arg);
    }
    isc_start_logout(s);
}

static struct isc_rx_action handle_async(struct isc_session *s, const uint8_t *h,
                                         const uint8_t *data, uint32_t len)
{
    uint8_t event = h[ISC_OFF_ASYNC_EVENT];
    uint32_t wait_s;

    s->counters.async_events++;
    switch (event) {
    case 0:
        log_info("iscsi", "target reported a scsi async event on lun %u (%u bytes of sense)",
                 isc_lun_decode(isc_get64(h, ISC_OFF_LUN)), len >= 2 ? isc_get16(data, 0) : 0);
        break;
    case 1:
        target_requests_logout(s, h);
        break;
    case 2:
    case 3:
        /* Parameter2 is Time2Wait: how long to wait before connecting again */
        wait_s = isc_get16(h, ISC_OFF_ASYNC_PARAM2);
        if (!wait_s)
            wait_s = s->params.default_time2wait;
        s->reconnect_delay_ms = wait_s * 1000u; /* before the owner hears of it */
        return isc_rx_fail(s, -ECONNRESET, "target is dropping %s (async event %u); logging "
                           "in again after %u s", event == 2 ? "the connection"
                                                             : "all connections",
                           event, wait_s);
    case 4:
        log_info("iscsi", "target asks for parameter renegotiation; keeping current values");
        break;
    default:
        log_debug("iscsi", "ignoring async event %u", event);
        break;
    }
    return ISC_RX_GO;
}

static struct isc_rx_action handle_reject(struct isc_session *s, const uint8_t *h,
                                          const uint8_t *data, uint32_t len)
{
    uint8_t reason = h[ISC_OFF_REJECT_REASON];
    static const char *const reasons[] = {
        [0x02] = "data digest error", [0x03] = "snack reject", [0x04] = "protocol error",
        [0x05] = "command not supported", [0x06] = "immediate command reject",
        [0x07] = "task in progress", [0x08] = "invalid data ack",
        [0x09] = "invalid pdu field", [0x0a] = "long operation reject",
        [0x0b] = "negotiation reset", [0x0c] = "waiting for logout",
    };
    const char *why = reason < sizeof(reasons) / sizeof(reasons[0]) && reasons[reason]
                          ? reasons[reason] : "unknown reason";

    s->counters.rejects++;
    if (len < ISC_BHS_LEN)
        return isc_rx_fail(s, -EPROTO, "target rejected a pdu: %s (0x%02x)", why, reason);
    struct task *t = task_find(s, isc_get32(data, ISC_OFF_ITT));
    enum isc_opcode op = isc_bhs_opcode(data);
    if (t && op == ISC_OP_SCSI_CMD) {
        task_fail(s, t, -EPROTO, "target rejected the command: %s (0x%02x)", why, reason);
        return ISC_RX_GO;
    }
    /* anything else rejected at ERL 0 leaves the connection in an unknown state */
    return isc_rx_fail(s, -EPROTO, "target rejected a %s pdu: %s (0x%02x)",
                       isc_opcode_name(op), why, reason);
}

/* ---------------------------------------------------------------- command timeouts */

/*
 * One watchdog timer per session, armed for the earliest deadline: a sent command's
 * (sent + command timeout), the CmdSN window's when commands wait on it, SendTargets',
 * and the task management request's in flight. Deadlines only move later as commands are
 * added, so arming is a comparison; the timer rescans all slots when it fires.
 */
void isc_cmd_timer_at(struct isc_session *s, uint64_t due_ms)
{
    uint64_t now = sto_now_ms();

    if (s->cmd_timer.armed && s->cmd_timer.due_ms <= due_ms)
        return;
    sto_timer_arm(s->loop, &s->cmd_timer, due_ms > now ? due_ms - now : 0);
}

/*
 * Commands that wait because the target keeps its window closed (MaxCmdSN) time out from
 * when it closed; commands that wait for toegw's own limits (max_outstanding) do not: the
 * commands ahead of them carry the deadline.
 */
static void cmd_window_check(struct isc_session *s)
{
    if (s->wait_head && s->state == ISC_STATE_LOGGED_IN && !isc_sn_le(s->cmdsn, s->max_cmdsn)) {
        if (!s->window_closed_ms) {
            s->window_closed_ms = sto_now_ms();
            isc_cmd_timer_at(s, s->window_closed_ms + s->cfg.command_timeout_ms);
        }
    } else {
        s->window_closed_ms = 0;
    }
}

/* "abort task got no answer within 15000 ms" / "... was refused (function rejected)" */
static const char *tmf_outcome(char *buf, size_t len, const char *what, int response,
                               uint32_t ms)
{
    if (response < 0)
        snprintf(buf, len, "%s got no answer within %u ms", what, ms);
    else
        snprintf(buf, len, "%s was refused (%s)", what, isc_tmf_response_name(response));
    return buf;
}

/* Queue the ABORT TASK or LUN RESET the task management machine decided on. */
static void tmf_send(struct isc_session *s, enum isc_tmf_action a)
{
    const char *name = s->cfg.target_name ? s->cfg.target_name : "discovery";
    char o1[96];
    struct tx_pdu *p = isc_tx_new(s);
    struct task *t;

    if (!p) {
        isc_session_fail(s, -ENOMEM, "out of memory queueing a task management request");
        return;
    }
    t = task_find(s, s->tmf.ref_itt);
    isc_tmf_build(&s->tmf, p->hdr, s->cmdsn, s->exp_statsn, t ? t->cmdsn : 0);
    s->reset_cmdsn = s->cmdsn; /* no command leaves while it is in flight */
    isc_tx_queue(s, p, NULL, 0);
    if (a == ISC_TMF_SEND_ABORT) {
        s->counters.aborts++;
        log_info("iscsi", "%s: command 0x%08x to lun %u timed out after %u ms; sending "
                 "abort task", name, s->tmf.ref_itt, s->tmf.lun, s->cfg.command_timeout_ms);
    } else {
        s->counters.lun_resets++;
        log_info("iscsi", "%s: %s; sending lun reset to lun %u", name,
                 tmf_outcome(o1, sizeof(o1), "abort task", s->tmf.abort_response,
                             s->cfg.abort_timeout_ms), s->tmf.lun);
    }
    isc_cmd_timer_at(s, s->tmf.deadline_ms);
    isc_tx_kick(s);
}

/* A LUN reset succeeded: end every command sent to the LUN before it. */
static void tmf_fail_lun(struct isc_session *s, uint32_t lun)
{
    log_info("iscsi", "%s: lun reset of lun %u done: its commands are ended",
             s->cfg.target_name ? s->cfg.target_name : "discovery", lun);
    for (unsigned i = 0; i < TASKS_MAX && in_ffp(s) && !isc_fail_pending(s); i++) {
        struct task *t = &s->tasks[i];
        /* a callback may send a new command to the lun at once: that one stays */
        if (t->in_use && t->sent && t->req.lun == lun && isc_sn_lt(t->cmdsn, s->reset_cmdsn))
            task_fail(s, t, -ETIMEDOUT, "command to lun %u was ended by a lun reset after a "
                      "command timed out (%u ms)", lun, s->cfg.command_timeout_ms);
    }
}

/* Carry out what the task management machine (tmf.c) decided. */
static void tmf_act(struct isc_session *s, enum isc_tmf_action a)
{
    uint32_t lun = s->tmf.lun, cmd_ms = s->cfg.command_timeout_ms;
    char o1[96], o2[96];
    struct task *t;

    switch (a) {
    case ISC_TMF_NONE:
        return;
    case ISC_TMF_SEND_ABORT:
    case ISC_TMF_SEND_LUN_RESET:
        tmf_send(s, a);
        return;
    case ISC_TMF_FAIL_TASK:
        t = task_find(s, s->tmf.ref_itt);
        if (t)
            task_fail(s, t, -ETIMEDOUT, "command to lun %u timed out after %u ms and was "
                      "aborted (%s)", lun, cmd_ms,
                      isc_tmf_response_name(s->tmf.abort_response));
        break;
    case ISC_TMF_FAIL_LUN:
        tmf_fail_lun(s, lun);
        break;
    case ISC_TMF_DROP:
        isc_session_fail(s, -ETIMEDOUT, "a command to lun %u timed out after %u ms; %s, %s: "
                         "connection dropped", lun, cmd_ms,
                         tmf_outcome(o1, sizeof(o1), "abort task", s->tmf.abort_response,
                                     s->cfg.abort_timeout_ms),
                         tmf_outcome(o2, sizeof(o2), "lun reset", s->tmf.reset_response,
                                     s->cfg.lun_reset_timeout_ms));
        return;
    case ISC_TMF_UNEXPECTED:
        isc_session_fail(s, -EPROTO, "task management response to no request in flight");
        return;
    }
    if (!in_ffp(s) || isc_fail_pending(s))
        return;
    /* the machine is idle: commands that timed out meanwhile get their turn next */
    sto_timer_arm(s->loop, &s->cmd_timer, 0);
    if (s->state == ISC_STATE_LOGGED_IN) {
        isc_send_waiting(s);
        if (s->logout_wanted && !s->inflight)
            isc_start_logout(s);
    }
}

static struct isc_rx_action handle_tmf_rsp(struct isc_session *s, const uint8_t *h)
{
    uint32_t itt = isc_get32(h, ISC_OFF_ITT);
    uint8_t response = h[ISC_OFF_TMF_RESPONSE];
    enum isc_tmf_state was = s->tmf.state;
    enum isc_tmf_action a = isc_tmf_response(&s->tmf, itt, response, sto_now_ms(),
                                             s->cfg.lun_reset_timeout_ms);

    if (a == ISC_TMF_UNEXPECTED)
        return isc_rx_fail(s, -EPROTO, "task management response with task tag 0x%08x, "
                           "which no request in flight has", itt);
    log_info("iscsi", "%s: %s answered: %s", s->cfg.target_name ? s->cfg.target_name : "",
             was == ISC_TMF_RESETTING && itt == s->tmf.itt ? "lun reset" : "abort task",
             isc_tmf_response_name(response));
    tmf_act(s, a);
    return ISC_RX_GO;
}

/* When t times out (UINT64_MAX: it does not run yet). */
static uint64_t task_deadline(const struct isc_session *s, const struct task *t)
{
    uint32_t cmd_ms = s->cfg.command_timeout_ms;

    if (t->sent)
        return t->sent_ms + cmd_ms;
    if (s->window_closed_ms)
        return (t->submit_ms > s->window_closed_ms ? t->submit_ms : s->window_closed_ms) +
               cmd_ms;
    return UINT64_MAX;
}

/*
 * Scan the commands for those past their deadline: one never sent fails the session, one
 * sent gets task management (one request at a time). Lowers *next to the earliest deadline
 * still ahead; false when the session failed.
 */
static bool tasks_expire(struct isc_session *s, uint64_t now, uint64_t *next)
{
    uint32_t cmd_ms = s->cfg.command_timeout_ms;

    for (unsigned i = 0; i < TASKS_MAX; i++) {
        struct task *t = &s->tasks[i];
        uint64_t due;

        if (!t->in_use || t->aborting || (due = task_deadline(s, t)) == UINT64_MAX)
            continue;
        if (due > now) {
            if (due < *next)
                *next = due;
            continue;
        }
        if (!t->sent) {
            /*
             * The target never had it, so there is nothing to abort; but a window closed
             * for a whole command timeout is a stuck target: drop the connection, so that
             * the owner recovers (or, without recovery, every command ends with this).
             */
            s->counters.cmd_timeouts++;
            isc_session_fail(s, -ETIMEDOUT, "command to lun %u timed out after %u ms "
                             "waiting for the target's command window (cmdsn %u, maxcmdsn "
                             "%u)", t->req.lun, cmd_ms, s->cmdsn, s->max_cmdsn);
            return false;
        }
        if (s->tmf.state != ISC_TMF_IDLE)
            continue; /* its turn comes when the request in flight ends (tmf_act) */
        s->counters.cmd_timeouts++;
        t->aborting = true;
        tmf_act(s, isc_tmf_timed_out(&s->tmf, t->itt, t->req.lun, now,
                                     s->cfg.abort_timeout_ms));
        if (!in_ffp(s))
            return false;
    }
    return true;
}

void isc_cmd_timer_cb(struct sto_timer *tm)
{
    struct isc_session *s = ISC_SESSION_OF(tm, cmd_timer);
    uint64_t now = sto_now_ms(), next = UINT64_MAX;
    uint32_t cmd_ms = s->cfg.command_timeout_ms;

    if (!in_ffp(s))
        return;
    if (s->tmf.state != ISC_TMF_IDLE) {
        tmf_act(s, isc_tmf_expired(&s->tmf, now, s->cfg.lun_reset_timeout_ms));
        if (!in_ffp(s))
            return;
    }
    if (s->text_sent_ms) {
        if (now - s->text_sent_ms >= cmd_ms) {
            isc_session_fail(s, -ETIMEDOUT, "sendtargets timed out after %u ms", cmd_ms);
            return;
        }
        next = s->text_sent_ms + cmd_ms;
    }
    if (!tasks_expire(s, now, &next))
        return;
    if (s->tmf.state != ISC_TMF_IDLE && s->tmf.deadline_ms < next)
        next = s->tmf.deadline_ms;
    if (next != UINT64_MAX)
        isc_cmd_timer_at(s, next);
    if (s->state == ISC_STATE_LOGGED_IN && s->logout_wanted && !s->inflight)
        isc_start_logout(s);
}

/* ---------------------------------------------------------------- dispatch */

static struct isc_rx_action ffp_handle(struct isc_session *s, enum isc_opcode op)
{
    const uint8_t *h = s->rhdr;

    switch (op) {
    case ISC_OP_SCSI_RSP:
        return handle_scsi_rsp(s, h, s->rdata, s->rdsl);
    case ISC_OP_DATA_IN:
        return handle_data_in(s, h, s->rdsl);
    case ISC_OP_R2T:
        return handle_r2t(s, h);
    case ISC_OP_NOP_IN:
        isc_nop_in(s, h);
        return ISC_RX_GO;
    case ISC_OP_TEXT_RSP:
        return isc_text_rsp(s, h, s->rdata, s->rdsl);
    case ISC_OP_LOGOUT_RSP:
        return isc_logout_rsp(s, h);
    case ISC_OP_ASYNC:
        return handle_async(s, h, s->rdata, s->rdsl);
    case ISC_OP_REJECT:
        return handle_reject(s, h, s->rdata, s->rdsl);
    case ISC_OP_TMF_RSP:
        return handle_tmf_rsp(s, h);
    default:
        return isc_rx_fail(s, -EPROTO, "target sent an unexpected %s pdu (opcode 0x%02x)",
                           isc_opcode_name(op), op);
    }
}

struct isc_rx_action isc_rx_dispatch(struct isc_session *s)
{
    const uint8_t *h = s->rhdr;
    enum isc_opcode op = isc_bhs_opcode(h);
    struct isc_rx_action act;

    s->counters.pdus_in++;
    s->last_rx_ms = sto_now_ms();
    if (op == ISC_OP_LOGIN_RSP)
        return isc_login_rsp(s, h, s->rdata, s->rdsl);
    if (!in_ffp(s))
        return isc_rx_fail(s, -EPROTO, "target sent a %s pdu during login",
                           isc_opcode_name(op));
    /* StatSN: every response that carries status advances it */
    if (op != ISC_OP_DATA_IN && op != ISC_OP_R2T &&
        !(op == ISC_OP_NOP_IN && isc_get32(h, ISC_OFF_ITT) == ISC_RSVD_TAG))
        s->exp_statsn = isc_get32(h, ISC_OFF_STATSN) + 1;
    else if (op == ISC_OP_DATA_IN && (h[ISC_OFF_FLAGS] & ISC_DATAIN_STATUS))
        s->exp_statsn = isc_get32(h, ISC_OFF_STATSN) + 1;
    update_sn(s, h);
    act = ffp_handle(s, op);
    if (isc_rx_go(act) && !isc_fail_pending(s) && s->state == ISC_STATE_LOGGED_IN) {
        isc_send_waiting(s);
        if (s->logout_wanted && !s->inflight)
            isc_start_logout(s);
    }
    return act;
}
