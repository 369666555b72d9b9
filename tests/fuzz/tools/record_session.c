/*
 * record_session.c - records seeds for fuzz_session (and, split by tests/fuzz/record-seeds,
 * for the pdu, text, chap and scsi fuzzers): runs the session harness's client steps
 * (fuzz_session_run) against a real target over the host stack and writes what each side
 * sent. The target's bytes, after the mode byte, are an input that drives the same steps
 * again in the fuzzer.
 *
 *   record_session MODE PORTAL TARGET TARGET_OUT INITIATOR_OUT
 *
 * MODE is the fuzz_session mode byte (decimal or 0x..), PORTAL "host[:port]", TARGET the
 * target's IQN (the fuzzer logs in to FUZZ_SES_TARGET; the name only appears in what the
 * initiator sends). TARGET_OUT gets MODE followed by the target's bytes, INITIATOR_OUT the
 * initiator's. Exit 0 when the steps ran (whatever the target answered), 1 otherwise.
 * Run inside a test's network namespace (tests/fuzz/record-seeds does).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/transport.h"
#include "storage/iscsi.h"
#include "storage/loop.h"
#include "tests/fuzz/fuzz_session.h"

struct rec {
    FILE *tgt, *ini;
    const char *target;
};

struct rec_conn {
    struct stk_conn c;
    struct stk_conn *real;
    struct stk_conn_ops ops;
    struct rec *r;
};

static ssize_t rec_read(struct stk_conn *c, void *buf, size_t len)
{
    struct rec_conn *rc = (struct rec_conn *)c;
    ssize_t n = stk_conn_read(rc->real, buf, len);

    if (n > 0 && fwrite(buf, 1, (size_t)n, rc->r->tgt) != (size_t)n)
        return -EIO;
    return n;
}

static ssize_t rec_writev(struct stk_conn *c, const struct iovec *iov, int iovcnt)
{
    struct rec_conn *rc = (struct rec_conn *)c;
    ssize_t n = stk_conn_writev(rc->real, iov, iovcnt), left = n;

    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = (size_t)left < iov[i].iov_len ? (size_t)left : iov[i].iov_len;
        if (fwrite(iov[i].iov_base, 1, k, rc->r->ini) != k)
            return -EIO;
        left -= (ssize_t)k;
    }
    return n;
}

static int rec_connect_result(struct stk_conn *c)
{
    struct rec_conn *rc = (struct rec_conn *)c;
    int ret = rc->real->ops->connect_result(rc->real);

    c->local = rc->real->local;
    c->remote = rc->real->remote;
    return ret;
}

static uint32_t rec_events(struct stk_conn *c, bool r, bool w)
{
    struct rec_conn *rc = (struct rec_conn *)c;

    return rc->real->ops->events(rc->real, r, w);
}

static bool rec_pending(struct stk_conn *c)
{
    struct rec_conn *rc = (struct rec_conn *)c;

    return rc->real->ops->pending(rc->real);
}

static int rec_shutdown(struct stk_conn *c)
{
    struct rec_conn *rc = (struct rec_conn *)c;

    return rc->real->ops->shutdown(rc->real);
}

static void rec_close(struct stk_conn *c, bool abort)
{
    struct rec_conn *rc = (struct rec_conn *)c;

    stk_conn_close(rc->real, abort);
    free(rc);
}

static int rec_connect(void *arg, const struct sockaddr_in *dst, struct stk_conn **out,
                       char *err, size_t errlen)
{
    struct rec_conn *rc = calloc(1, sizeof(*rc));
    int ret;

    (void)err;
    (void)errlen;
    if (!rc)
        return -ENOMEM;
    ret = stk_host_connect(dst, 0, &rc->real);
    if (ret < 0) {
        free(rc);
        return ret;
    }
    rc->r = arg;
    rc->ops = (struct stk_conn_ops){
        .level_triggered = rc->real->ops->level_triggered,
        .read = rec_read, .writev = rec_writev, .connect_result = rec_connect_result,
        .events = rec_events, .pending = rec_pending, .shutdown = rec_shutdown,
        .close = rec_close,
    };
    rc->c.ops = &rc->ops;
    rc->c.fd = rc->real->fd;
    rc->c.stack = rc->real->stack;
    rc->c.remote = *dst;
    *out = &rc->c;
    return 0;
}

int main(int argc, char **argv)
{
    struct rec r = { 0 };
    struct isc_connector conn = { rec_connect, NULL, &r };
    struct sockaddr_in portal;
    struct sto_loop *loop;
    unsigned long mode;
    char *end;
    int ret;

    if (argc != 6) {
        fprintf(stderr, "usage: record_session MODE PORTAL TARGET TARGET_OUT INITIATOR_OUT\n");
        return 2;
    }
    mode = strtoul(argv[1], &end, 0);
    if (*end || mode > 255 || stk_parse_hostport(argv[2], 3260, &portal) < 0) {
        fprintf(stderr, "record_session: bad mode \"%s\" or portal \"%s\"\n", argv[1], argv[2]);
        return 2;
    }
    r.target = argv[3];
    r.tgt = fopen(argv[4], "wb");
    r.ini = fopen(argv[5], "wb");
    loop = sto_loop_new();
    if (!r.tgt || !r.ini || !loop) {
        fprintf(stderr, "record_session: cannot open the outputs: %s\n", strerror(errno));
        return 1;
    }
    log_set_level(LOG_LVL_WARN);
    fputc((int)mode, r.tgt);
    ret = fuzz_session_record(loop, (uint8_t)mode, &conn, &portal, r.target);
    fclose(r.tgt);
    fclose(r.ini);
    sto_loop_free(loop);
    if (ret < 0)
        fprintf(stderr, "record_session: login failed: %s\n", strerror(-ret));
    return 0;
}
