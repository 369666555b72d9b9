/*
 * test_session_timeouts.c - every wait of a session on its target ends: a target that
 * answers nothing, answers NOPs and task management but never a command, keeps the CmdSN
 * window closed, never sets the F/S bits, never answers a logout, or asks for a logout or
 * a disconnect with an async message.
 *
 * The initiator logs in over the host stack to a kernel TCP listener on 127.0.0.1 whose
 * thread plays the target (a clean login, then the case's behaviour) and records what it
 * was sent. The timeouts are short (hundreds of ms); no check depends on how long anything
 * took, only on what ended and how: a case that hung would hit the test's own timeout.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "storage/iscsi.h"
#include "storage/loop.h"
#include "storage/pdu.h"
#include "storage/tmf.h"

#define PEER_WAIT_MS 8000
#define READ_LEN 4096
#define SHORT_MS 300

enum peer_case {
    CASE_SILENT,           /* after login: reads everything, answers nothing */
    CASE_ABORT_OK,         /* never answers a command; ABORT TASK: function complete */
    CASE_ABORT_REFUSED,    /* ABORT TASK: not supported; LUN RESET: function complete */
    CASE_WINDOW_CLOSED,    /* answers the first command closing the window (MaxCmdSN) */
    CASE_NO_FINAL,         /* all the Data-In, never the F/S bits; aborts answered */
    CASE_ASYNC_LOGOUT,     /* async event 1 before answering; logout answered; re-login */
    CASE_ASYNC_DROP,       /* async event 2 (Time2Wait 3) right after login */
    CASE_LOGOUT_SILENT,    /* answers NOPs, never the logout */
    CASE_DISCOVERY_SILENT, /* a discovery login, then never answers SendTargets */
};

struct seen {
    uint8_t function;      /* 0x7f of byte 1 */
    uint32_t rtt, refcmdsn;
    uint64_t lun;
};

struct peer {
    int lfd;
    struct sockaddr_in addr;
    enum peer_case c;
    pthread_t thread;
    uint32_t statsn;
    /* results, read after the join */
    unsigned logins;
    unsigned commands;
    uint32_t cmd_itt, cmd_cmdsn;
    unsigned ntmf;
    struct seen tmf[4];
    unsigned logouts;
    uint8_t isid[2][6];
    char problem[128];
};

static int read_full(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
    size_t put = 0;

    while (put < len) {
        ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

/* One PDU from the initiator (no digests): the BHS, its data discarded. */
static int read_pdu(int fd, uint8_t *h)
{
    static uint8_t sink[ISC_TEXT_MAX + 4];
    uint32_t dsl;

    if (read_full(fd, h, ISC_BHS_LEN) < 0)
        return -1;
    dsl = isc_bhs_dsl(h) + isc_bhs_ahs_len(h);
    dsl += isc_pad4(dsl);
    while (dsl) {
        uint32_t n = dsl < sizeof(sink) ? dsl : (uint32_t)sizeof(sink);
        if (read_full(fd, sink, n) < 0)
            return -1;
        dsl -= n;
    }
    return 0;
}

/* A target PDU header answering initiator PDU `req`; closed: MaxCmdSN = ExpCmdSN - 1. */
static void rsp_hdr(struct peer *p, uint8_t *h, const uint8_t *req, uint8_t op, bool closed)
{
    uint32_t cmdsn = isc_get32(req, ISC_OFF_CMDSN);
    bool immediate = req[0] & ISC_OP_IMMEDIATE;
    uint32_t exp = immediate ? cmdsn : cmdsn + 1;

    memset(h, 0, ISC_BHS_LEN);
    h[ISC_OFF_OPCODE] = op;
    h[ISC_OFF_FLAGS] = ISC_FLAG_FINAL;
    memcpy(h + ISC_OFF_ITT, req + ISC_OFF_ITT, 4);
    isc_put32(h, ISC_OFF_TTT, ISC_RSVD_TAG);
    isc_put32(h, ISC_OFF_STATSN, p->statsn);
    isc_put32(h, ISC_OFF_EXPCMDSN, exp);
    isc_put32(h, ISC_OFF_MAXCMDSN, closed ? exp - 1 : exp + 64);
}

static size_t with_text(uint8_t *out, const char *text, size_t len)
{
    memcpy(out + ISC_BHS_LEN, text, len);
    memset(out + ISC_BHS_LEN + len, 0, isc_pad4((uint32_t)len));
    isc_put24(out, ISC_OFF_DSL, (uint32_t)len);
    return ISC_BHS_LEN + len + isc_pad4((uint32_t)len);
}

#define SEC_TO_OP (ISC_LOGIN_TRANSIT | (ISC_STAGE_SECURITY << 2) | ISC_STAGE_OPERATIONAL)
#define OP_TO_FFP (ISC_LOGIN_TRANSIT | (ISC_STAGE_OPERATIONAL << 2) | ISC_STAGE_FFP)

static int peer_login(struct peer *p, int fd)
{
    static const char sec[] = "AuthMethod=None";
    static const char op[] = "HeaderDigest=None\0DataDigest=None\0"
                             "MaxRecvDataSegmentLength=65536\0MaxBurstLength=262144\0"
                             "FirstBurstLength=65536\0InitialR2T=Yes\0ImmediateData=Yes\0"
                             "MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0"
                             "DataSequenceInOrder=Yes\0DefaultTime2Wait=2\0"
                             "DefaultTime2Retain=0\0ErrorRecoveryLevel=0\0MaxConnections=1";
    static const char disc[] = "HeaderDigest=None\0DataDigest=None\0"
                               "MaxRecvDataSegmentLength=65536\0DefaultTime2Wait=2\0"
                               "DefaultTime2Retain=0";
    uint8_t req[ISC_BHS_LEN], out[ISC_BHS_LEN + 1024];

    for (int step = 0; step < 2; step++) {
        if (read_pdu(fd, req) < 0)
            return -1;
        if (step == 0 && p->logins < 2)
            memcpy(p->isid[p->logins], req + ISC_OFF_ISID, 6);
        rsp_hdr(p, out, req, ISC_OP_LOGIN_RSP, false);
        out[ISC_OFF_FLAGS] = step == 0 ? SEC_TO_OP : OP_TO_FFP;
        memcpy(out + ISC_OFF_ISID, req + ISC_OFF_ISID, 6);
        isc_put16(out, ISC_OFF_TSIH, step == 0 ? 0 : 0x4321);
        size_t n = step == 0 ? with_text(out, sec, sizeof(sec))
                   : p->c == CASE_DISCOVERY_SILENT ? with_text(out, disc, sizeof(disc))
                                                   : with_text(out, op, sizeof(op));
        p->statsn++;
        if (write_full(fd, out, n) < 0)
            return -1;
    }
    p->logins++;
    return 0;
}

static int send_async(struct peer *p, int fd, uint8_t event, uint16_t p2, uint16_t p3)
{
    uint8_t h[ISC_BHS_LEN] = { 0 };

    h[ISC_OFF_OPCODE] = ISC_OP_ASYNC;
    h[ISC_OFF_FLAGS] = ISC_FLAG_FINAL;
    isc_put32(h, ISC_OFF_ITT, ISC_RSVD_TAG);
    isc_put32(h, ISC_OFF_STATSN, p->statsn++);
    isc_put32(h, ISC_OFF_EXPCMDSN, 1);
    isc_put32(h, ISC_OFF_MAXCMDSN, 1);
    h[ISC_OFF_ASYNC_EVENT] = event;
    isc_put16(h, ISC_OFF_ASYNC_PARAM2, p2);
    isc_put16(h, ISC_OFF_ASYNC_PARAM3, p3);
    return write_full(fd, h, ISC_BHS_LEN);
}

/* Data-In for the whole read; with status (and the F bit) only when `status`. */
static int send_data_in(struct peer *p, int fd, const uint8_t *cmd, bool status)
{
    uint8_t pdu[ISC_BHS_LEN + READ_LEN];

    rsp_hdr(p, pdu, cmd, ISC_OP_DATA_IN, false);
    pdu[ISC_OFF_FLAGS] = status ? ISC_FLAG_FINAL | ISC_DATAIN_STATUS : 0;
    isc_put24(pdu, ISC_OFF_DSL, READ_LEN);
    memset(pdu + ISC_BHS_LEN, 0x3c, READ_LEN);
    if (status)
        p->statsn++;
    return write_full(fd, pdu, sizeof(pdu));
}

static int answer_tmf(struct peer *p, int fd, const uint8_t *req, uint8_t response)
{
    uint8_t h[ISC_BHS_LEN];

    rsp_hdr(p, h, req, ISC_OP_TMF_RSP, false);
    h[ISC_OFF_TMF_RESPONSE] = response;
    p->statsn++;
    return write_full(fd, h, ISC_BHS_LEN);
}

/* One connection: log in, then play the case until the initiator hangs up. */
static int peer_conn(struct peer *p, int fd)
{
    uint8_t h[ISC_BHS_LEN], out[ISC_BHS_LEN];
    int ret = 0;

    if (peer_login(p, fd) < 0) {
        snprintf(p->problem, sizeof(p->problem), "login %u did not complete", p->logins + 1);
        return -1;
    }
    if (p->c == CASE_ASYNC_DROP && send_async(p, fd, 2, 3, 0) < 0)
        return -1;
    while (ret == 0 && read_pdu(fd, h) == 0) {
        uint8_t op = h[ISC_OFF_OPCODE] & 0x3f;
        switch (op) {
        case ISC_OP_SCSI_CMD:
            if (p->commands++ == 0) {
                p->cmd_itt = isc_get32(h, ISC_OFF_ITT);
                p->cmd_cmdsn = isc_get32(h, ISC_OFF_CMDSN);
            }
            if (p->c == CASE_WINDOW_CLOSED) {
                rsp_hdr(p, out, h, ISC_OP_SCSI_RSP, true); /* good status, window shut */
                p->statsn++;
                ret = write_full(fd, out, ISC_BHS_LEN);
            } else if (p->c == CASE_NO_FINAL) {
                ret = send_data_in(p, fd, h, false);
            } else if (p->c == CASE_ASYNC_LOGOUT && p->logins == 1) {
                ret = send_async(p, fd, 1, 0, 5);
                if (ret == 0)
                    ret = send_data_in(p, fd, h, true); /* the command in flight finishes */
            }
            break;
        case ISC_OP_TMF_REQ:
            if (p->ntmf < 4)
                p->tmf[p->ntmf++] = (struct seen){
                    .function = h[ISC_OFF_FLAGS] & 0x7f, .rtt = isc_get32(h, ISC_OFF_TMF_RTT),
                    .refcmdsn = isc_get32(h, ISC_OFF_TMF_REFCMDSN),
                    .lun = isc_get64(h, ISC_OFF_LUN),
                };
            if (p->c == CASE_ABORT_OK || p->c == CASE_NO_FINAL)
                ret = answer_tmf(p, fd, h, 0);
            else if (p->c == CASE_ABORT_REFUSED)
                ret = answer_tmf(p, fd, h, (h[ISC_OFF_FLAGS] & 0x7f) == ISC_TMF_ABORT_TASK ? 5
                                                                                     : 0);
            break;
        case ISC_OP_NOP_OUT:
            if (p->c != CASE_SILENT && isc_get32(h, ISC_OFF_ITT) != ISC_RSVD_TAG) {
                rsp_hdr(p, out, h, ISC_OP_NOP_IN, false);
                isc_put32(out, ISC_OFF_STATSN, p->statsn++);
                ret = write_full(fd, out, ISC_BHS_LEN);
            }
            break;
        case ISC_OP_LOGOUT_REQ:
            p->logouts++;
            if (p->c != CASE_LOGOUT_SILENT && p->c != CASE_SILENT) {
                rsp_hdr(p, out, h, ISC_OP_LOGOUT_RSP, false);
                p->statsn++;
                ret = write_full(fd, out, ISC_BHS_LEN);
            }
            break;
        default:
            break;
        }
    }
    return 0;
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    struct timeval tv = { .tv_sec = PEER_WAIT_MS / 1000 };
    int conns = p->c == CASE_ASYNC_LOGOUT ? 2 : 1;

    for (int i = 0; i < conns; i++) {
        struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
        int fd;
        if (poll(&pfd, 1, PEER_WAIT_MS) != 1 || (fd = accept(p->lfd, NULL, NULL)) < 0) {
            snprintf(p->problem, sizeof(p->problem), "the initiator never connected (%d)", i);
            return NULL;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int ret = peer_conn(p, fd);
        close(fd);
        if (ret < 0)
            break;
    }
    return NULL;
}

static void peer_start(struct peer *p, enum peer_case c)
{
    socklen_t alen = sizeof(p->addr);

    memset(p, 0, sizeof(*p));
    p->c = c;
    p->statsn = 1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(p->lfd, 0, "socket: %s", strerror(errno));
    p->addr.sin_family = AF_INET;
    p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(p->lfd, (struct sockaddr *)&p->addr, sizeof(p->addr)), 0);
    cr_assert_eq(listen(p->lfd, 2), 0);
    cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&p->addr, &alen), 0);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* ---------------------------------------------------------------- the initiator */

struct cmd {
    uint8_t buf[READ_LEN];
    bool done;
    struct isc_scsi_result res;
};

struct events {
    int failures;
    enum isc_session_state state_then;
};

static void done_cb(struct isc_session *s, int err, void *arg)
{
    (void)s;
    *(int *)arg = err == 0 ? 1 : err;
}

static void cmd_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct cmd *c = arg;

    (void)s;
    c->res = *r;
    c->done = true;
}

static void failure_cb(struct isc_session *s, void *arg)
{
    struct events *e = arg;

    e->failures++;
    e->state_then = isc_session_state(s);
}

static struct isc_session_config short_timeouts(struct peer *p)
{
    struct isc_session_config cfg = {
        .target_name = "iqn.2026-11.io.toegw:timeouts",
        .login_timeout_ms = 5000,
        .nop_interval_ms = ISC_TIMEOUT_ZERO,
        .command_timeout_ms = SHORT_MS,
        .abort_timeout_ms = SHORT_MS,
        .lun_reset_timeout_ms = SHORT_MS,
        .logout_timeout_ms = SHORT_MS,
    };

    cfg.portal = p->addr;
    return cfg;
}

static struct isc_session *login(struct sto_loop *loop, const struct isc_session_config *cfg,
                                 struct events *ev)
{
    struct isc_session *s = isc_session_new(loop, cfg);
    int state = 0;

    cr_assert_not_null(s);
    isc_session_set_failure_cb(s, failure_cb, ev);
    cr_assert_eq(isc_session_login(s, done_cb, &state), 0, "%s", isc_session_error(s));
    while (!state)
        sto_loop_run_once(loop, 50);
    cr_assert_eq(state, 1, "login failed: %s", isc_session_error(s));
    return s;
}

static void submit_read(struct isc_session *s, struct cmd *c, uint32_t lun)
{
    struct isc_scsi_req req = {
        .lun = lun, .cdb_len = 10, .dir = ISC_DIR_READ, .buf = c->buf, .len = READ_LEN,
        .cb = cmd_cb, .arg = c,
    };

    req.cdb[0] = 0x28;
    isc_put16(req.cdb, 7, READ_LEN / 512);
    c->done = false;
    cr_assert_eq(isc_session_submit(s, &req), 0, "%s", isc_session_error(s));
}

static void wait_done(struct sto_loop *loop, const bool *done)
{
    while (!*done)
        sto_loop_run_once(loop, 50);
}

static void finish(struct sto_loop *loop, struct isc_session *s, struct peer *p)
{
    isc_session_free(s);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    sto_loop_free(loop);
}

static void quiet(void)
{
    log_set_level(LOG_LVL_ERROR);
}

TestSuite(session_timeouts, .init = quiet, .timeout = 30);

/* Nothing answered: ABORT TASK, then LUN RESET, then the connection is dropped. */
Test(session_timeouts, silent_target_escalates_to_a_drop)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;

    peer_start(&p, CASE_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 3);
    wait_done(loop, &c.done);
    const struct isc_session_counters k = *isc_session_counters(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", c.res.why);
    enum isc_session_state st = isc_session_state(s);
    finish(loop, s, &p);

    cr_assert_eq(c.res.err, -ETIMEDOUT, "err %d: %s", c.res.err, err);
    cr_assert(strstr(err, "timed out") && strstr(err, "abort task got no answer") &&
              strstr(err, "lun reset got no answer") && strstr(err, "dropped"), "%s", err);
    cr_assert_eq(st, ISC_STATE_FAILED);
    cr_assert_eq(ev.failures, 1, "the owner hears of the drop once");
    cr_assert_eq(k.cmd_timeouts, 1);
    cr_assert_eq(k.aborts, 1);
    cr_assert_eq(k.lun_resets, 1);
    cr_assert_eq(p.ntmf, 2, "the target saw %u task management requests", p.ntmf);
    cr_assert_eq(p.tmf[0].function, ISC_TMF_ABORT_TASK);
    cr_assert_eq(p.tmf[0].rtt, p.cmd_itt, "the abort names the command");
    cr_assert_eq(p.tmf[0].refcmdsn, p.cmd_cmdsn, "and its CmdSN");
    cr_assert_eq(p.tmf[0].lun, isc_lun_encode(3));
    cr_assert_eq(p.tmf[1].function, ISC_TMF_LUN_RESET);
    cr_assert_eq(p.tmf[1].rtt, ISC_RSVD_TAG);
    cr_assert_eq(p.tmf[1].lun, isc_lun_encode(3));
}

/* NOPs and aborts answered, commands never: the command fails, the session stays up. */
Test(session_timeouts, aborted_command_fails_session_stays)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;

    peer_start(&p, CASE_ABORT_OK);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.nop_interval_ms = 100;  /* pings go on and are answered meanwhile */
    cfg.nop_timeout_ms = 5000;
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 0);
    wait_done(loop, &c.done);
    const struct isc_session_counters k = *isc_session_counters(s);
    enum isc_session_state st = isc_session_state(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", c.res.why);
    finish(loop, s, &p);

    cr_assert_eq(c.res.err, -ETIMEDOUT, "err %d: %s", c.res.err, err);
    cr_assert(strstr(err, "timed out") && strstr(err, "aborted"), "%s", err);
    cr_assert_eq(st, ISC_STATE_LOGGED_IN, "an answered abort keeps the session");
    cr_assert_eq(ev.failures, 0);
    cr_assert_eq(k.aborts, 1);
    cr_assert_eq(k.lun_resets, 0);
}

/* An abort the target refuses becomes a LUN reset; once that is done the command fails. */
Test(session_timeouts, refused_abort_then_lun_reset)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;

    peer_start(&p, CASE_ABORT_REFUSED);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 1);
    wait_done(loop, &c.done);
    const struct isc_session_counters k = *isc_session_counters(s);
    enum isc_session_state st = isc_session_state(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", c.res.why);
    finish(loop, s, &p);

    cr_assert_eq(c.res.err, -ETIMEDOUT, "err %d: %s", c.res.err, err);
    cr_assert(strstr(err, "lun reset"), "%s", err);
    cr_assert_eq(st, ISC_STATE_LOGGED_IN);
    cr_assert_eq(k.aborts, 1);
    cr_assert_eq(k.lun_resets, 1);
    cr_assert_eq(p.ntmf, 2);
    cr_assert_eq(p.tmf[1].function, ISC_TMF_LUN_RESET);
}

/* A command queued behind a window the target keeps closed times out unsent. */
Test(session_timeouts, closed_window_times_out_queued_commands)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd a, b;

    peer_start(&p, CASE_WINDOW_CLOSED);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &a, 0);
    wait_done(loop, &a.done);
    submit_read(s, &b, 0);
    wait_done(loop, &b.done);
    enum isc_session_state st = isc_session_state(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", b.res.why);
    finish(loop, s, &p);

    cr_assert_eq(a.res.err, 0, "the first command is answered: %s", a.res.why);
    cr_assert_eq(b.res.err, -ETIMEDOUT, "err %d: %s", b.res.err, err);
    cr_assert(strstr(err, "command window"), "%s", err);
    cr_assert_eq(p.commands, 1, "the second command is never sent");
    cr_assert_eq(p.ntmf, 0, "nothing to abort: the target never had it");
    cr_assert_eq(st, ISC_STATE_FAILED, "a window closed for a whole command timeout drops the "
                 "connection, so that the owner recovers");
}

/* Data-In that never carries status: the command timeout catches it. */
Test(session_timeouts, data_in_without_final_bit_times_out)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;

    peer_start(&p, CASE_NO_FINAL);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 0);
    wait_done(loop, &c.done);
    finish(loop, s, &p);

    cr_assert_eq(c.res.err, -ETIMEDOUT, "err %d: %s", c.res.err, c.res.why);
    cr_assert_eq(c.res.data_in_len, READ_LEN, "the data came, the status never did");
    cr_assert_eq(p.ntmf, 1);
}

/* Nothing at all after a ping: the connection is dropped. */
Test(session_timeouts, unanswered_nop_drops_the_connection)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;

    peer_start(&p, CASE_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.nop_interval_ms = 100;
    cfg.nop_timeout_ms = 200;
    struct isc_session *s = login(loop, &cfg, &ev);
    while (isc_session_state(s) == ISC_STATE_LOGGED_IN)
        sto_loop_run_once(loop, 50);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    uint64_t nop_timeouts = isc_session_counters(s)->nop_timeouts;
    uint64_t nops_out = isc_session_counters(s)->nops_out;
    finish(loop, s, &p);

    cr_assert(strstr(err, "nop-out timed out"), "%s", err);
    cr_assert_eq(ev.failures, 1);
    cr_assert_eq(ev.state_then, ISC_STATE_FAILED);
    cr_assert_eq(nop_timeouts, 1);
    cr_assert_eq(nops_out, 1, "one ping, then the drop");
}

/*
 * Async event 1: the owner is told at once, the command in flight still completes, new
 * commands are refused, the session logs out by itself and ends logged_out; logging in
 * again works and keeps the ISID (the target reinstates the session).
 */
Test(session_timeouts, async_logout_request_logs_out_and_in)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c, d;

    peer_start(&p, CASE_ASYNC_LOGOUT);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.logout_timeout_ms = 5000;
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 0);
    while (!ev.failures)
        sto_loop_run_once(loop, 50);
    enum isc_session_state told_in = ev.state_then;
    struct isc_scsi_req req = {
        .lun = 0, .cdb_len = 6, .dir = ISC_DIR_NONE, .cb = cmd_cb, .arg = &d,
    };
    int refused = isc_session_submit(s, &req);
    wait_done(loop, &c.done);
    while (isc_session_state(s) != ISC_STATE_LOGGED_OUT &&
           isc_session_state(s) != ISC_STATE_FAILED)
        sto_loop_run_once(loop, 50);
    enum isc_session_state after = isc_session_state(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    int again = 0;
    cr_assert_eq(isc_session_login(s, done_cb, &again), 0);
    while (!again)
        sto_loop_run_once(loop, 50);
    finish(loop, s, &p);

    cr_assert_eq(told_in, ISC_STATE_LOGGED_IN, "told while the command still runs");
    cr_assert_eq(refused, -ENOTCONN, "no new commands once the target asked");
    cr_assert_eq(c.res.err, 0, "the command in flight completes: %s", c.res.why);
    cr_assert_eq(after, ISC_STATE_LOGGED_OUT, "%s", err);
    cr_assert(strstr(err, "target's request"), "%s", err);
    cr_assert_eq(ev.failures, 1, "told once");
    cr_assert_eq(p.logouts, 1);
    cr_assert_eq(again, 1, "logging in again works");
    cr_assert_eq(p.logins, 2);
    cr_assert_arr_eq(p.isid[0], p.isid[1], 6, "the same ISID: a reinstatement");
}

/* Async event 2: dropped at once, and the owner learns how long to wait (Time2Wait). */
Test(session_timeouts, async_drop_gives_time2wait)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;

    peer_start(&p, CASE_ASYNC_DROP);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    while (isc_session_state(s) == ISC_STATE_LOGGED_IN)
        sto_loop_run_once(loop, 50);
    uint32_t delay = isc_session_reconnect_delay_ms(s);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    finish(loop, s, &p);

    cr_assert_eq(ev.failures, 1);
    cr_assert_eq(delay, 3000, "Parameter2 of the async message");
    cr_assert(strstr(err, "async event 2"), "%s", err);
}

/* A logout the target never answers ends after the logout timeout, connection dropped. */
Test(session_timeouts, unanswered_logout_times_out)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    int out = 0;

    peer_start(&p, CASE_LOGOUT_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    struct isc_session *s = login(loop, &cfg, &ev);
    cr_assert_eq(isc_session_logout(s, done_cb, &out), 0);
    while (!out)
        sto_loop_run_once(loop, 50);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    enum isc_session_state st = isc_session_state(s);
    finish(loop, s, &p);

    cr_assert_eq(out, -ETIMEDOUT);
    cr_assert(strstr(err, "logout") && strstr(err, "timed out"), "%s", err);
    cr_assert_eq(st, ISC_STATE_FAILED);
    cr_assert_eq(p.logouts, 1);
    cr_assert_eq(ev.failures, 0, "the owner asked for the logout");
}

/* A logout waiting for a command that never ends is bounded too; the command fails. */
Test(session_timeouts, logout_with_a_command_in_flight_times_out)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;
    int out = 0;

    peer_start(&p, CASE_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.command_timeout_ms = 60000; /* the logout's own timeout must end it */
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 0);
    cr_assert_eq(isc_session_logout(s, done_cb, &out), 0);
    while (!out)
        sto_loop_run_once(loop, 50);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    finish(loop, s, &p);

    cr_assert_eq(out, -ETIMEDOUT);
    cr_assert(c.done, "the command in flight was failed");
    cr_assert_eq(c.res.err, -ETIMEDOUT);
    cr_assert(strstr(err, "in flight"), "%s", err);
    cr_assert_eq(p.logouts, 0, "the logout waited for the command, as it must");
}

/* Dropping a session fails its commands and runs their callbacks; no failure callback. */
Test(session_timeouts, drop_fails_commands)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    struct cmd c;

    peer_start(&p, CASE_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.command_timeout_ms = 60000;
    struct isc_session *s = login(loop, &cfg, &ev);
    submit_read(s, &c, 0);
    isc_session_drop(s, -ECANCELED, "deleted");
    enum isc_session_state st = isc_session_state(s);
    finish(loop, s, &p);

    cr_assert(c.done);
    cr_assert_eq(c.res.err, -ECANCELED);
    cr_assert_eq(st, ISC_STATE_FAILED);
    cr_assert_eq(ev.failures, 0);
}

static void targets_cb(struct isc_session *s, int err, struct isc_target_list *l, void *arg)
{
    (void)s;
    isc_target_list_free(l);
    *(int *)arg = err ? err : 1;
}

/* SendTargets is bounded by the command timeout. */
Test(session_timeouts, unanswered_sendtargets_times_out)
{
    struct sto_loop *loop = sto_loop_new();
    struct events ev = { 0 };
    struct peer p;
    int got = 0;

    peer_start(&p, CASE_DISCOVERY_SILENT);
    struct isc_session_config cfg = short_timeouts(&p);
    cfg.target_name = NULL;
    cfg.discovery = true;
    struct isc_session *s = login(loop, &cfg, &ev);
    cr_assert_eq(isc_session_send_targets(s, targets_cb, &got), 0);
    while (!got)
        sto_loop_run_once(loop, 50);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    finish(loop, s, &p);

    cr_assert_eq(got, -ETIMEDOUT);
    cr_assert(strstr(err, "sendtargets timed out"), "%s", err);
}

/* Logging in to a target that accepts the connection and never answers is bounded. */
Test(session_timeouts, login_timeout)
{
    struct sto_loop *loop = sto_loop_new();
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), state = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 1), 0); /* the kernel accepts; nobody ever reads */
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    struct isc_session_config cfg = { .target_name = "iqn.2026-11.io.toegw:t",
                                      .portal = a, .login_timeout_ms = SHORT_MS };
    struct isc_session *s = isc_session_new(loop, &cfg);
    cr_assert_eq(isc_session_login(s, done_cb, &state), 0);
    while (!state)
        sto_loop_run_once(loop, 50);
    char err[320];
    snprintf(err, sizeof(err), "%s", isc_session_error(s));
    isc_session_free(s);
    close(lfd);
    sto_loop_free(loop);

    cr_assert_eq(state, -ETIMEDOUT);
    cr_assert(strstr(err, "login to 127.0.0.1:") && strstr(err, "timed out after 300 ms"),
              "%s", err);
}
