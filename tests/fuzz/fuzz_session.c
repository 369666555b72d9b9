/*
 * fuzz_session.c - the initiator's receive path as a whole (storage/session.c over
 * storage/pdu.c, text.c, chap.c, scsi.c and lun.c): a real struct isc_session on a real
 * storage loop, whose connection reads the fuzz input as the bytes a target sent.
 *
 * Input: byte 0 is the mode (FUZZ_SES_* in fuzz_session.h: CHAP, mutual CHAP, digests, discovery,
 * and how the bytes are delivered); the rest is the target's side of the TCP stream. The
 * session runs what `toegw luns` and a small read/write do: login, REPORT LUNS, the probe
 * of each LUN (TEST UNIT READY, INQUIRY, READ CAPACITY, the VPD pages), READ and WRITE of 8
 * blocks, SYNCHRONIZE CACHE and a READ past the end (for sense data) on the first disk,
 * logout (discovery: login, SendTargets, logout). Every answer comes from the input; the
 * end of the input is the target closing the connection, so every input ends. What the
 * initiator writes is read byte by byte (a send from freed memory is caught) and dropped.
 *
 * The delivery patterns split the stream at every kind of boundary (one byte at a time,
 * odd sizes, a read that finds nothing between two that do) and make writes short or
 * refused, so that partial headers, digests and data segments are exercised as well.
 *
 * Properties: the session ends (logged out, or failed with a message) within
 * FUZZ_SES_END_MS of its last step; a command never reports more Data-In than its buffer
 * holds; what probing reports is within its buffers. Seeds are real target streams (tgtd)
 * recorded with tests/fuzz/record-seeds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "storage/iscsi.h"
#include "storage/lun.h"
#include "storage/pdu.h"
#include "storage/scsi.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_session.h"

#define FEED_CONNECTS_MAX 16
#define IO_BLOCKS 8

/* ---------------------------------------------------------------- the input as a conn */

struct feed {
    const uint8_t *data;
    size_t size, pos;
    size_t pdu_end;                 /* where the PDU being delivered ends */
    bool gated, eagain;             /* at a PDU's end: say "nothing now" once, then wait */
    struct isc_session *s;          /* whose digests frame the stream */
    unsigned pattern;
    unsigned reads, writes;
    int connects;
    volatile uint8_t sink;
};

struct feed_conn {
    struct stk_conn c;
    struct feed *feed;
};

/* The length of the PDU at pos as the session will frame it (digests once logged in). */
static size_t next_pdu_len(const struct feed *f)
{
    const uint8_t *h = f->data + f->pos;
    enum isc_session_state st = isc_session_state(f->s);
    bool ffp = st == ISC_STATE_LOGGED_IN || st == ISC_STATE_LOGGING_OUT;
    const struct isc_params *p = isc_session_params(f->s);
    uint64_t dsl, len;

    if (f->size - f->pos < ISC_BHS_LEN)
        return f->size - f->pos;
    dsl = isc_bhs_dsl(h);
    len = ISC_BHS_LEN + isc_bhs_ahs_len(h) + (ffp && p->header_digest ? ISC_DIGEST_LEN : 0);
    if (dsl)
        len += dsl + isc_pad4((uint32_t)dsl) + (ffp && p->data_digest ? ISC_DIGEST_LEN : 0);
    return len < f->size - f->pos ? (size_t)len : f->size - f->pos;
}

/*
 * The target's bytes, one PDU per pass: at the end of each PDU the next read finds nothing
 * and the conn reports nothing pending, so the session goes back to the loop and its user
 * may act (submit the next command) before the next PDU arrives, as with a real target
 * that answers what it was asked. Within a PDU the pattern decides the read sizes.
 */
static ssize_t feed_read(struct stk_conn *c, void *buf, size_t len)
{
    struct feed *f = ((struct feed_conn *)c)->feed;
    static const size_t chunk[8] = { 0, 1, 7, 48, 1000, 0, 13, 4096 };
    size_t n;

    f->reads++;
    if (f->eagain) {
        f->eagain = false;
        return -EAGAIN;
    }
    if (f->pattern == 5 && (f->reads & 1))
        return -EAGAIN; /* nothing now: the loop must come back */
    f->gated = false;
    if (f->pos == f->size)
        return 0;       /* the target closed the connection */
    if (f->pos == f->pdu_end)
        f->pdu_end = f->pos + next_pdu_len(f);
    n = f->pdu_end - f->pos;
    if (n > len)
        n = len;
    if (chunk[f->pattern] && n > chunk[f->pattern])
        n = chunk[f->pattern];
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    if (f->pos == f->pdu_end)
        f->gated = f->eagain = true;
    c->bytes_in += n;
    return (ssize_t)n;
}

static ssize_t feed_writev(struct stk_conn *c, const struct iovec *iov, int iovcnt)
{
    struct feed *f = ((struct feed_conn *)c)->feed;
    size_t total = 0, cap = SIZE_MAX;
    uint8_t acc = 0;

    f->writes++;
    if (f->pattern == 7 && f->writes % 3 == 0)
        return -EAGAIN;
    if (f->pattern == 6)
        cap = 100;
    for (int i = 0; i < iovcnt && total < cap; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t n = iov[i].iov_len < cap - total ? iov[i].iov_len : cap - total;
        for (size_t j = 0; j < n; j++)
            acc ^= p[j]; /* every byte sent is read: a send from freed memory shows */
        total += n;
    }
    f->sink ^= acc;
    c->bytes_out += total;
    return (ssize_t)total;
}

static int feed_connect_result(struct stk_conn *c)
{
    (void)c;
    return 0;
}

static uint32_t feed_events(struct stk_conn *c, bool want_read, bool want_write)
{
    (void)c;
    return (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
}

static bool feed_pending(struct stk_conn *c)
{
    struct feed *f = ((struct feed_conn *)c)->feed;

    return f->pos < f->size && !f->gated;
}

static int feed_shutdown(struct stk_conn *c)
{
    (void)c;
    return 0;
}

static void feed_close(struct stk_conn *c, bool abort)
{
    (void)abort;
    close(c->fd);
    free(c);
}

static const struct stk_conn_ops feed_ops = {
    .level_triggered = false,
    .read = feed_read,
    .writev = feed_writev,
    .connect_result = feed_connect_result,
    .events = feed_events,
    .pending = feed_pending,
    .shutdown = feed_shutdown,
    .close = feed_close,
};

/* Each connect (the first, a redirect, a login retry) continues the same stream. */
static int feed_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                        char *err, size_t errlen)
{
    struct feed *f = arg;
    struct feed_conn *fc;

    (void)err;
    (void)errlen;
    if (++f->connects > FEED_CONNECTS_MAX)
        return -ECONNREFUSED;
    f->pdu_end = f->pos; /* a new connection frames from here */
    f->gated = f->eagain = false;
    fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    /* an eventfd that always polls readable and writable: the loop keeps calling back */
    fc->c.fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fc->c.fd < 0) {
        free(fc);
        return -errno;
    }
    fc->c.ops = &feed_ops;
    fc->c.stack = STK_STACK_HOST;
    fc->c.remote = *dst;
    fc->c.local.sin_family = AF_INET;
    fc->c.local.sin_addr.s_addr = htonl(0xc6336402); /* 198.51.100.2 */
    fc->c.local.sin_port = htons(40000);
    fc->feed = f;
    *out = &fc->c;
    return 0;
}

/* ---------------------------------------------------------------- what the client does */

/*
 * After the steps, the session goes on reading until it is logged out or has failed (at
 * the latest when the input ends: the target closes). It must get there, and a failure
 * must say why.
 */
static void finish(struct sto_loop *loop, struct isc_session *s)
{
    uint64_t deadline = sto_now_ms() + FUZZ_SES_END_MS;
    enum isc_session_state st;

    while ((st = isc_session_state(s)) != ISC_STATE_FAILED && st != ISC_STATE_LOGGED_OUT) {
        FUZZ_CHECK(sto_now_ms() < deadline, "session still %s %d ms after its last step",
                   isc_state_name(st), FUZZ_SES_END_MS);
        sto_loop_run_once(loop, 10);
    }
    if (st == ISC_STATE_FAILED)
        FUZZ_CHECK(isc_session_error(s)[0], "session failed without saying why");
}

static int scsi_cmd(struct sto_loop *loop, struct isc_session *s, uint32_t lun,
                    const uint8_t *cdb, int cdb_len, enum isc_dir dir, void *buf,
                    uint32_t len)
{
    struct isc_scsi_req req = {
        .lun = lun, .cdb_len = (uint8_t)cdb_len, .dir = dir, .buf = buf, .len = len,
    };
    struct isc_scsi_result res;
    char err[320];

    memcpy(req.cdb, cdb, (size_t)cdb_len);
    if (sto_sync_scsi(loop, s, &req, &res) < 0)
        return -1;
    FUZZ_CHECK(res.data_in_len <= len, "%u bytes of data-in for a %u-byte buffer",
               res.data_in_len, len);
    FUZZ_CHECK(res.sense_len <= ISC_SENSE_MAX, "sense of %u bytes", res.sense_len);
    if (sto_scsi_check(&res, "command", err, sizeof(err)) < 0)
        FUZZ_CHECK(err[0], "a failed command without a message");
    return isc_session_state(s) == ISC_STATE_LOGGED_IN ? 0 : -1;
}

/* READ, WRITE back elsewhere, SYNCHRONIZE CACHE on a disk the probe found. */
static void run_io(struct sto_loop *loop, struct isc_session *s, const struct sto_lun_info *li)
{
    uint32_t bs = li->cap.block_size, len = bs * IO_BLOCKS;
    uint8_t cdb[16], *buf;
    int n;

    if (bs < 512 || bs > 4096 || li->cap.blocks < 2 * IO_BLOCKS)
        return;
    buf = malloc(len);
    if (!buf)
        abort();
    memset(buf, 0, len);
    n = scsi_cdb_read(cdb, 0, IO_BLOCKS, false);
    if (scsi_cmd(loop, s, li->lun, cdb, n, ISC_DIR_READ, buf, len) == 0) {
        /* the write's buffer is freed right after its callback, as NBD's is */
        uint8_t *wbuf = malloc(len);
        if (!wbuf)
            abort();
        memcpy(wbuf, buf, len);
        n = scsi_cdb_write(cdb, IO_BLOCKS, IO_BLOCKS, false);
        int ret = scsi_cmd(loop, s, li->lun, cdb, n, ISC_DIR_WRITE, wbuf, len);
        free(wbuf);
        if (ret == 0) {
            n = scsi_cdb_sync_cache(cdb, 0, 0);
            ret = scsi_cmd(loop, s, li->lun, cdb, n, ISC_DIR_NONE, NULL, 0);
        }
        /* one block past the end: a target answers with sense data */
        if (ret == 0) {
            n = scsi_cdb_read(cdb, li->cap.blocks, 1, false);
            scsi_cmd(loop, s, li->lun, cdb, n, ISC_DIR_READ, buf, bs);
        }
    }
    free(buf);
}

static void run_normal(struct sto_loop *loop, struct isc_session *s)
{
    uint32_t *luns = NULL;
    size_t n = 0;
    char err[320];
    struct sto_lun_info li;
    bool io_done = false;

    err[0] = '\0';
    if (sto_sync_report_luns(loop, s, &luns, &n, err, sizeof(err)) < 0) {
        FUZZ_OPEN_CHECK(err[0], "report luns failed without a message");
        free(luns);
        return;
    }
    for (size_t i = 0; i < n && i < FUZZ_SES_PROBE_MAX; i++) {
        err[0] = '\0';
        if (sto_sync_probe_lun(loop, s, luns[i], &li, err, sizeof(err)) < 0) {
            FUZZ_OPEN_CHECK(err[0], "probe of lun %u failed without a message", luns[i]);
            if (isc_session_state(s) != ISC_STATE_LOGGED_IN)
                break;
            continue;
        }
        FUZZ_CHECK(strnlen(li.serial, sizeof(li.serial)) < sizeof(li.serial) &&
                       strnlen(li.wwn, sizeof(li.wwn)) < sizeof(li.wwn),
                   "probe strings not terminated");
        if (!io_done && li.inq.peripheral_type == SCSI_TYPE_DISK) {
            run_io(loop, s, &li);
            io_done = true;
        }
        if (isc_session_state(s) != ISC_STATE_LOGGED_IN)
            break;
    }
    free(luns);
}

static int run(struct sto_loop *loop, uint8_t mode, const struct isc_connector *conn,
               const struct sockaddr_in *portal, uint32_t timeout_ms, const char *target)
{
    struct isc_session_config cfg = {
        .target_name = (mode & FUZZ_SES_DISCOVERY) ? NULL : target,
        .portal = *portal,
        .discovery = mode & FUZZ_SES_DISCOVERY,
        .header_digest = mode & FUZZ_SES_HEADER_DIGEST,
        .data_digest = mode & FUZZ_SES_DATA_DIGEST,
        .connector = *conn,
        .login_timeout_ms = timeout_ms,
        .nop_interval_ms = timeout_ms,
    };
    struct isc_session *s;
    int ret;

    if ((mode & FUZZ_SES_AUTH) == FUZZ_SES_CHAP || (mode & FUZZ_SES_AUTH) == FUZZ_SES_MUTUAL) {
        cfg.chap_user = FUZZ_SES_CHAP_USER;
        cfg.chap_secret = FUZZ_SES_CHAP_SECRET;
    }
    if ((mode & FUZZ_SES_AUTH) == FUZZ_SES_MUTUAL) {
        cfg.target_user = FUZZ_SES_TARGET_USER;
        cfg.target_secret = FUZZ_SES_TARGET_SECRET;
    }
    s = isc_session_new(loop, &cfg);
    if (!s)
        abort();
    if (conn->connect == feed_connect)
        ((struct feed *)conn->arg)->s = s;
    ret = sto_sync_login(loop, s);
    if (ret == 0 && isc_session_state(s) == ISC_STATE_LOGGED_IN) {
        if (cfg.discovery) {
            struct isc_target_list *l = NULL;
            if (sto_sync_send_targets(loop, s, &l) == 0)
                FUZZ_CHECK(l != NULL, "sendtargets succeeded without a list");
            isc_target_list_free(l);
        } else {
            run_normal(loop, s);
        }
        if (isc_session_state(s) == ISC_STATE_LOGGED_IN)
            sto_sync_logout(loop, s);
    } else {
        FUZZ_CHECK(ret <= 0, "login returned %d", ret);
    }
    finish(loop, s);
    isc_session_free(s);
    return ret;
}

int fuzz_session_run(struct sto_loop *loop, uint8_t mode, const struct isc_connector *conn,
                     const struct sockaddr_in *portal, uint32_t timeout_ms)
{
    return run(loop, mode, conn, portal, timeout_ms, FUZZ_SES_TARGET);
}

int fuzz_session_record(struct sto_loop *loop, uint8_t mode, const struct isc_connector *conn,
                        const struct sockaddr_in *portal, const char *target)
{
    return run(loop, mode, conn, portal, 0, target);
}

int fuzz_session(const uint8_t *data, size_t size)
{
    static struct sto_loop *loop;
    struct feed f = { 0 };
    struct isc_connector conn = { feed_connect, NULL, &f };
    struct sockaddr_in portal = { .sin_family = AF_INET, .sin_port = htons(3260) };

    if (size < 1)
        return 0;
    fuzz_quiet_logs();
    if (!loop && !(loop = sto_loop_new()))
        abort();
    portal.sin_addr.s_addr = htonl(0xc6336401); /* 198.51.100.1 */
    f.data = data + 1;
    f.size = size - 1;
    f.pattern = data[0] >> FUZZ_SES_PATTERN_SHIFT;
    fuzz_session_run(loop, data[0], &conn, &portal, FUZZ_SES_TIMEOUT_MS);
    return 0;
}
