/*
 * test_session_ffp.c - the full feature phase against a target that misbehaves on purpose.
 *
 * The initiator logs in over the host stack to a kernel TCP listener on 127.0.0.1 whose
 * thread plays the target: a clean login, then per case a scripted answer to the SCSI
 * commands the test submits. The cases are the ones that cost data: a command answered
 * while its unsolicited Data-Out still waits to be sent (the buffer goes back to its owner
 * with the callback: nothing may be sent from it afterwards; the target asks for 16 MiB of
 * Data-Out with an R2T, far more than the sockets hold, and answers at once), and Data-In that repeats,
 * overlaps or skips a range, or whose residual lies (never a success with wrong bytes).
 *
 * Real targets (tgtd, istgt) and the scripted target of the integration tests exercise the
 * rest; these cases are here because a unit test under ASan sees them byte for byte.
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

#define PEER_WAIT_MS 8000
#define WRITES 4
#define WRITE_LEN (16 * 1024 * 1024)
#define FILL 0x5a          /* what a write buffer holds while the command runs */
#define REUSED 0xee        /* what it holds once the callback gave it back */

enum peer_case {
    CASE_EARLY_CHECK_CONDITION, /* R2T for a whole write, then CHECK CONDITION at once */
    CASE_EARLY_REJECT,          /* R2T for a whole write, then reject the command at once */
    CASE_DATA_IN_REPEATED,      /* 0+4096, then 0+4096 again with status */
    CASE_DATA_IN_OVERLAP,       /* 0+4096, then 2048+4096 with status */
    CASE_DATA_IN_GAP,           /* 0+4096, then 8192+4096 with status */
    CASE_RESIDUAL_LIE,          /* 4096 of 12288 bytes, underflow with residual 0 */
    CASE_SHORT_WITHOUT_UNDERFLOW, /* 4096 of 12288 bytes, status good, no U bit */
};

struct peer {
    int lfd;
    struct sockaddr_in addr;
    enum peer_case c;
    pthread_t thread;
    uint32_t statsn;
    /* results, read after the join */
    unsigned commands;
    unsigned data_out_bytes;
    unsigned reused_bytes;       /* Data-Out bytes sent from a buffer already given back */
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

/* One PDU from the initiator (no digests): BHS into h, its data into *data (malloc'd). */
static int read_pdu(int fd, uint8_t *h, uint8_t **data, uint32_t *len)
{
    uint32_t dsl;

    if (read_full(fd, h, ISC_BHS_LEN) < 0)
        return -1;
    dsl = isc_bhs_dsl(h) + isc_bhs_ahs_len(h);
    *len = isc_bhs_dsl(h);
    *data = malloc(dsl + isc_pad4(dsl) + 1);
    if (!*data)
        return -1;
    return read_full(fd, *data, dsl + isc_pad4(dsl));
}

/* A target PDU header answering initiator PDU `req`. */
static void rsp_hdr(struct peer *p, uint8_t *h, const uint8_t *req, uint8_t op, uint8_t flags)
{
    uint32_t cmdsn = isc_get32(req, ISC_OFF_CMDSN);

    memset(h, 0, ISC_BHS_LEN);
    h[ISC_OFF_OPCODE] = op;
    h[ISC_OFF_FLAGS] = flags;
    memcpy(h + ISC_OFF_ITT, req + ISC_OFF_ITT, 4);
    isc_put32(h, ISC_OFF_TTT, ISC_RSVD_TAG);
    isc_put32(h, ISC_OFF_STATSN, p->statsn);
    isc_put32(h, ISC_OFF_EXPCMDSN, cmdsn + 1);
    isc_put32(h, ISC_OFF_MAXCMDSN, cmdsn + 256);
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

/* Security stage, then operational keys: immediate data, the rest solicited by R2T. */
static int peer_login(struct peer *p, int fd)
{
    static const char sec[] = "AuthMethod=None";
    static const char op[] = "HeaderDigest=None\0DataDigest=None\0"
                             "MaxRecvDataSegmentLength=65536\0MaxBurstLength=16776704\0"
                             "FirstBurstLength=262144\0InitialR2T=Yes\0ImmediateData=Yes\0"
                             "MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0"
                             "DataSequenceInOrder=Yes\0DefaultTime2Wait=2\0"
                             "DefaultTime2Retain=0\0ErrorRecoveryLevel=0\0MaxConnections=1";
    uint8_t req[ISC_BHS_LEN], out[ISC_BHS_LEN + 1024], *data;
    uint32_t len;

    for (int step = 0; step < 2; step++) {
        if (read_pdu(fd, req, &data, &len) < 0)
            return -1;
        free(data);
        rsp_hdr(p, out, req, ISC_OP_LOGIN_RSP, step == 0 ? SEC_TO_OP : OP_TO_FFP);
        memcpy(out + ISC_OFF_ISID, req + ISC_OFF_ISID, 6);
        isc_put16(out, ISC_OFF_TSIH, step == 0 ? 0 : 0x4321);
        isc_put32(out, ISC_OFF_EXPCMDSN, isc_get32(req, ISC_OFF_CMDSN));
        isc_put32(out, ISC_OFF_MAXCMDSN, isc_get32(req, ISC_OFF_CMDSN) + 256);
        size_t n = step == 0 ? with_text(out, sec, sizeof(sec)) : with_text(out, op, sizeof(op));
        p->statsn++;
        if (write_full(fd, out, n) < 0)
            return -1;
    }
    return 0;
}

static int send_data_in(struct peer *p, int fd, const uint8_t *cmd, uint32_t off, uint32_t len,
                        uint32_t datasn, bool status, uint8_t rspflags, uint32_t residual)
{
    uint8_t *pdu = calloc(1, ISC_BHS_LEN + len);
    int ret;

    if (!pdu)
        return -1;
    rsp_hdr(p, pdu, cmd, ISC_OP_DATA_IN,
            status ? ISC_FLAG_FINAL | ISC_DATAIN_STATUS | rspflags : 0);
    isc_put24(pdu, ISC_OFF_DSL, len);
    isc_put32(pdu, ISC_OFF_DATASN, datasn);
    isc_put32(pdu, ISC_OFF_BUFOFF, off);
    isc_put32(pdu, ISC_OFF_RESIDUAL, residual);
    memset(pdu + ISC_BHS_LEN, 0x11 + (int)datasn, len);
    if (status)
        p->statsn++;
    ret = write_full(fd, pdu, ISC_BHS_LEN + len);
    free(pdu);
    return ret;
}

/* An R2T for everything of a write beyond its immediate data. */
static int send_r2t(struct peer *p, int fd, const uint8_t *cmd)
{
    uint8_t h[ISC_BHS_LEN];
    uint32_t imm = isc_bhs_dsl(cmd), edtl = isc_get32(cmd, ISC_OFF_CMD_EDTL);

    rsp_hdr(p, h, cmd, ISC_OP_R2T, ISC_FLAG_FINAL);
    isc_put32(h, ISC_OFF_TTT, 0x1000);
    isc_put32(h, ISC_OFF_BUFOFF, imm);
    isc_put32(h, ISC_OFF_R2T_DDTL, edtl - imm);
    return write_full(fd, h, ISC_BHS_LEN);
}

/* The target's answer to one SCSI command. */
static int answer_command(struct peer *p, int fd, const uint8_t *cmd)
{
    uint8_t out[ISC_BHS_LEN + 64] = { 0 };

    if ((p->c == CASE_EARLY_CHECK_CONDITION || p->c == CASE_EARLY_REJECT) &&
        send_r2t(p, fd, cmd) < 0)
        return -1;
    switch (p->c) {
    case CASE_EARLY_CHECK_CONDITION: {
        /* CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN CDB, fixed sense */
        static const uint8_t sense[] = { 0x00, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10,
                                         0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0 };
        rsp_hdr(p, out, cmd, ISC_OP_SCSI_RSP, ISC_FLAG_FINAL);
        out[ISC_OFF_RSP_STATUS] = 0x02;
        memcpy(out + ISC_BHS_LEN, sense, sizeof(sense));
        isc_put24(out, ISC_OFF_DSL, sizeof(sense));
        p->statsn++;
        return write_full(fd, out, ISC_BHS_LEN + sizeof(sense));
    }
    case CASE_EARLY_REJECT:
        rsp_hdr(p, out, cmd, ISC_OP_REJECT, ISC_FLAG_FINAL);
        out[ISC_OFF_REJECT_REASON] = 0x04; /* protocol error */
        isc_put32(out, ISC_OFF_ITT, ISC_RSVD_TAG);
        memcpy(out + ISC_BHS_LEN, cmd, ISC_BHS_LEN);
        isc_put24(out, ISC_OFF_DSL, ISC_BHS_LEN);
        p->statsn++;
        return write_full(fd, out, 2 * ISC_BHS_LEN);
    case CASE_DATA_IN_REPEATED:
        return send_data_in(p, fd, cmd, 0, 4096, 0, false, 0, 0) ||
               send_data_in(p, fd, cmd, 0, 4096, 1, true, 0, 0);
    case CASE_DATA_IN_OVERLAP:
        return send_data_in(p, fd, cmd, 0, 4096, 0, false, 0, 0) ||
               send_data_in(p, fd, cmd, 2048, 4096, 1, true, 0, 0);
    case CASE_DATA_IN_GAP:
        return send_data_in(p, fd, cmd, 0, 4096, 0, false, 0, 0) ||
               send_data_in(p, fd, cmd, 8192, 4096, 1, true, 0, 0);
    case CASE_RESIDUAL_LIE:
        return send_data_in(p, fd, cmd, 0, 4096, 0, true, ISC_RSP_UNDER, 0);
    case CASE_SHORT_WITHOUT_UNDERFLOW:
        return send_data_in(p, fd, cmd, 0, 4096, 0, true, 0, 0);
    }
    return -1;
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
    struct timeval tv = { .tv_sec = PEER_WAIT_MS / 1000 };
    uint8_t h[ISC_BHS_LEN], *data;
    uint32_t len;
    int fd, small = 4096;

    if (poll(&pfd, 1, PEER_WAIT_MS) != 1 || (fd = accept(p->lfd, NULL, NULL)) < 0) {
        snprintf(p->problem, sizeof(p->problem), "the initiator never connected");
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* a small window keeps the initiator's Data-Out waiting in its own transmit queue */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    if (peer_login(p, fd) < 0) {
        snprintf(p->problem, sizeof(p->problem), "login did not complete");
        close(fd);
        return NULL;
    }
    /* read everything until the initiator hangs up, answering each command once */
    while (read_pdu(fd, h, &data, &len) == 0) {
        uint8_t op = h[ISC_OFF_OPCODE] & 0x3f;
        if (op == ISC_OP_SCSI_CMD) {
            p->commands++;
            if (answer_command(p, fd, h) < 0) {
                free(data);
                break;
            }
        }
        if (op == ISC_OP_SCSI_CMD || op == ISC_OP_DATA_OUT) {
            if (op == ISC_OP_DATA_OUT)
                p->data_out_bytes += len;
            for (uint32_t i = 0; i < len; i++)
                p->reused_bytes += data[i] == REUSED;
        }
        free(data);
    }
    close(fd);
    return NULL;
}

static void peer_start(struct peer *p, enum peer_case c)
{
    socklen_t alen = sizeof(p->addr);
    int small = 4096;

    memset(p, 0, sizeof(*p));
    p->c = c;
    p->statsn = 1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(p->lfd, 0, "socket: %s", strerror(errno));
    setsockopt(p->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    p->addr.sin_family = AF_INET;
    p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(p->lfd, (struct sockaddr *)&p->addr, sizeof(p->addr)), 0);
    cr_assert_eq(listen(p->lfd, 1), 0);
    cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&p->addr, &alen), 0);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* ---------------------------------------------------------------- the initiator */

struct cmd {
    uint8_t *buf;
    bool done;
    struct isc_scsi_result res;
    unsigned *ndone;
};

static void login_cb(struct isc_session *s, int err, void *arg)
{
    (void)s;
    *(int *)arg = err == 0 ? 1 : -1;
}

/* The owner takes its buffer back in the callback and reuses it at once. */
static void cmd_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct cmd *c = arg;

    (void)s;
    c->res = *r;
    c->done = true;
    memset(c->buf, REUSED, WRITE_LEN);
    (*c->ndone)++;
}

static struct isc_session *login(struct sto_loop *loop, struct peer *p)
{
    struct isc_session_config cfg = {
        .target_name = "iqn.2026-11.io.toegw:ffp",
        .login_timeout_ms = 5000,
        .max_outstanding = WRITES,
        .max_outstanding_writes = WRITES,
    };
    struct isc_session *s;
    int state = 0;

    cfg.portal = p->addr;
    s = isc_session_new(loop, &cfg);
    cr_assert_not_null(s);
    cr_assert_eq(isc_session_login(s, login_cb, &state), 0, "%s", isc_session_error(s));
    while (!state)
        sto_loop_run_once(loop, 100);
    cr_assert_eq(state, 1, "login failed: %s", isc_session_error(s));
    return s;
}

static void run_for(struct sto_loop *loop, unsigned ms)
{
    uint64_t end = sto_now_ms() + ms;

    while (sto_now_ms() < end)
        sto_loop_run_once(loop, 20);
}

static void quiet(void)
{
    log_set_level(LOG_LVL_ERROR);
}

TestSuite(session_ffp, .init = quiet);

/*
 * Writes answered (or rejected) while their unsolicited Data-Out still waits: the owner
 * reuses each buffer in its callback, so not one byte of the reuse pattern may reach the
 * target afterwards, and every command completes once.
 */
static void early_answer(enum peer_case c)
{
    struct sto_loop *loop = sto_loop_new();
    struct peer p;
    struct cmd cmds[WRITES];
    unsigned ndone = 0;

    cr_assert_not_null(loop);
    peer_start(&p, c);
    struct isc_session *s = login(loop, &p);
    for (int i = 0; i < WRITES; i++) {
        cmds[i] = (struct cmd){ .buf = malloc(WRITE_LEN), .ndone = &ndone };
        cr_assert_not_null(cmds[i].buf);
        memset(cmds[i].buf, FILL, WRITE_LEN);
        struct isc_scsi_req req = {
            .lun = 0, .cdb_len = 10, .dir = ISC_DIR_WRITE, .buf = cmds[i].buf,
            .len = WRITE_LEN, .cb = cmd_cb, .arg = &cmds[i],
        };
        req.cdb[0] = 0x2a;
        isc_put16(req.cdb, 7, WRITE_LEN / 512);
        isc_put32(req.cdb, 2, (uint32_t)i * (WRITE_LEN / 512));
        cr_assert_eq(isc_session_submit(s, &req), 0, "%s", isc_session_error(s));
    }
    uint64_t end = sto_now_ms() + 15000;
    while (ndone < WRITES && sto_now_ms() < end)
        sto_loop_run_once(loop, 50);
    run_for(loop, 300); /* whatever is still queued leaves now */
    unsigned finished = ndone;
    int err0 = cmds[0].res.err;
    uint8_t st0 = cmds[0].res.status;
    isc_session_free(s);
    pthread_join(p.thread, NULL);
    close(p.lfd);
    sto_loop_free(loop);
    for (int i = 0; i < WRITES; i++)
        free(cmds[i].buf);

    cr_assert_eq(finished, WRITES, "%u of %d writes completed", finished, WRITES);
    cr_assert_eq(p.commands, WRITES, "the target saw %u commands: %s", p.commands, p.problem);
    if (c == CASE_EARLY_CHECK_CONDITION)
        cr_assert(err0 == 0 && st0 == 0x02, "err %d status 0x%02x", err0, st0);
    else
        cr_assert_eq(err0, -EPROTO, "a rejected command fails with EPROTO, not %d", err0);
    cr_assert_eq(p.reused_bytes, 0, "%u bytes were sent from buffers already given back "
                 "(of %u Data-Out bytes)", p.reused_bytes, p.data_out_bytes);
}

Test(session_ffp, write_answered_before_its_data_out, .timeout = 30)
{
    early_answer(CASE_EARLY_CHECK_CONDITION);
}

Test(session_ffp, write_rejected_before_its_data_out, .timeout = 30)
{
    early_answer(CASE_EARLY_REJECT);
}

/* One 12 KiB read against a Data-In script; returns the result and the session error. */
static void one_read(enum peer_case c, struct isc_scsi_result *res, char *err, size_t errlen,
                     enum isc_session_state *st)
{
    struct sto_loop *loop = sto_loop_new();
    struct peer p;
    unsigned ndone = 0;
    struct cmd cmd = { .buf = malloc(WRITE_LEN), .ndone = &ndone };

    cr_assert_not_null(loop);
    cr_assert_not_null(cmd.buf);
    peer_start(&p, c);
    struct isc_session *s = login(loop, &p);
    struct isc_scsi_req req = {
        .lun = 0, .cdb_len = 10, .dir = ISC_DIR_READ, .buf = cmd.buf, .len = 12288,
        .cb = cmd_cb, .arg = &cmd,
    };
    req.cdb[0] = 0x28;
    isc_put16(req.cdb, 7, 24);
    cr_assert_eq(isc_session_submit(s, &req), 0);
    uint64_t end = sto_now_ms() + 10000;
    while (!cmd.done && sto_now_ms() < end)
        sto_loop_run_once(loop, 50);
    *res = cmd.res;
    snprintf(err, errlen, "%s", res->why[0] ? res->why : isc_session_error(s));
    *st = isc_session_state(s);
    bool done = cmd.done;
    isc_session_free(s);
    pthread_join(p.thread, NULL);
    close(p.lfd);
    sto_loop_free(loop);
    free(cmd.buf);
    cr_assert(done, "the read never completed");
}

static void expect_protocol_error(enum peer_case c, const char *word)
{
    struct isc_scsi_result res;
    enum isc_session_state st;
    char err[400];

    one_read(c, &res, err, sizeof(err), &st);
    cr_assert_eq(res.err, -EPROTO, "err %d status %u (%u bytes): \"%s\"", res.err, res.status,
                 res.data_in_len, err);
    cr_assert(strstr(err, word), "error \"%s\" lacks \"%s\"", err, word);
}

Test(session_ffp, data_in_repeated_offset_fails, .timeout = 20)
{
    expect_protocol_error(CASE_DATA_IN_REPEATED, "in order");
    struct isc_scsi_result res;
    enum isc_session_state st;
    char err[400];
    one_read(CASE_DATA_IN_REPEATED, &res, err, sizeof(err), &st);
    cr_assert_eq(st, ISC_STATE_FAILED, "a target that breaks the data order is dropped");
}

Test(session_ffp, data_in_overlap_fails, .timeout = 20)
{
    expect_protocol_error(CASE_DATA_IN_OVERLAP, "in order");
}

Test(session_ffp, data_in_gap_fails, .timeout = 20)
{
    expect_protocol_error(CASE_DATA_IN_GAP, "in order");
}

Test(session_ffp, residual_that_lies_fails, .timeout = 20)
{
    expect_protocol_error(CASE_RESIDUAL_LIE, "residual");
}

/* A short read with good status is reported as the underflow it is, never as complete. */
Test(session_ffp, short_read_is_an_underflow, .timeout = 20)
{
    struct isc_scsi_result res;
    enum isc_session_state st;
    char err[400];

    one_read(CASE_SHORT_WITHOUT_UNDERFLOW, &res, err, sizeof(err), &st);
    cr_assert_eq(res.err, 0, "%s", err);
    cr_assert_eq(res.data_in_len, 4096);
    cr_assert(res.underflow, "the shortfall is an underflow");
    cr_assert_eq(res.residual, 12288 - 4096);
}
