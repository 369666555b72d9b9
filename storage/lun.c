/*
 * lun.c - SCSI result checking, and blocking wrappers over the initiator and the LUN probe
 * (probe.c) for the client commands.
 */
#include "storage/lun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sto_scsi_check(const struct isc_scsi_result *r, const char *what, char *err, size_t errlen)
{
    struct scsi_sense sense;
    char sbuf[160];

    if (r->err) {
        snprintf(err, errlen, "%s failed: %s", what, r->why[0] ? r->why : strerror(-r->err));
        return r->err;
    }
    if (r->status == SCSI_STATUS_GOOD)
        return 0;
    if (r->status != SCSI_STATUS_CHECK_CONDITION) {
        snprintf(err, errlen, "%s failed: scsi status %s (0x%02x)", what,
                 scsi_status_name(r->status), r->status);
        return r->status == SCSI_STATUS_BUSY || r->status == SCSI_STATUS_TASK_SET_FULL
                   ? -EAGAIN : -EIO;
    }
    scsi_sense_decode(r->sense, r->sense_len, &sense);
    snprintf(err, errlen, "%s failed: %s", what, scsi_sense_str(&sense, sbuf, sizeof(sbuf)));
    switch (sense.key) {
    case SCSI_SENSE_ILLEGAL_REQUEST:
        if (sense.asc == 0x21)
            return -ERANGE;
        if (sense.asc == 0x20)
            return -EOPNOTSUPP;
        return -EINVAL;
    case SCSI_SENSE_DATA_PROTECT:
        return -EROFS;
    case SCSI_SENSE_NOT_READY:
    case SCSI_SENSE_UNIT_ATTENTION:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

struct wait_state {
    bool done;
    int err;
    struct isc_target_list *targets;
    struct isc_scsi_result *res;
};

static void done_cb(struct isc_session *s, int err, void *arg)
{
    struct wait_state *w = arg;

    (void)s;
    w->err = err;
    w->done = true;
}

int sto_sync_login(struct sto_loop *loop, struct isc_session *s)
{
    struct wait_state w = { 0 };
    int ret = isc_session_login(s, done_cb, &w);

    if (ret < 0)
        return ret;
    sto_loop_run_until(loop, &w.done);
    return w.err;
}

int sto_sync_logout(struct sto_loop *loop, struct isc_session *s)
{
    struct wait_state w = { 0 };
    int ret = isc_session_logout(s, done_cb, &w);

    if (ret < 0)
        return ret;
    sto_loop_run_until(loop, &w.done);
    return w.err;
}

static void targets_cb(struct isc_session *s, int err, struct isc_target_list *l, void *arg)
{
    struct wait_state *w = arg;

    (void)s;
    w->err = err;
    w->targets = l;
    w->done = true;
}

int sto_sync_send_targets(struct sto_loop *loop, struct isc_session *s,
                          struct isc_target_list **out)
{
    struct wait_state w = { 0 };
    int ret = isc_session_send_targets(s, targets_cb, &w);

    if (ret < 0)
        return ret;
    sto_loop_run_until(loop, &w.done);
    *out = w.targets;
    return w.err;
}

static void scsi_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct wait_state *w = arg;

    (void)s;
    *w->res = *r;
    w->done = true;
}

int sto_sync_scsi(struct sto_loop *loop, struct isc_session *s, struct isc_scsi_req *req,
                  struct isc_scsi_result *res)
{
    for (int attempt = 0; attempt < 6; attempt++) {
        struct wait_state w = { .res = res };
        struct scsi_sense sense;
        int ret;

        req->cb = scsi_cb;
        req->arg = &w;
        ret = isc_session_submit(s, req);
        if (ret < 0) {
            memset(res, 0, sizeof(*res));
            res->err = ret;
            return ret;
        }
        sto_loop_run_until(loop, &w.done);
        if (res->err || res->status != SCSI_STATUS_CHECK_CONDITION)
            return 0;
        scsi_sense_decode(res->sense, res->sense_len, &sense);
        if (sense.key != SCSI_SENSE_UNIT_ATTENTION)
            return 0;
        /* a unit attention reports a past event (power on, resize): run it again */
    }
    return 0;
}

/* One probe run to its end by a blocking helper. */
struct sync_probe {
    bool done;
    int err;
    char *errbuf;
    size_t errlen;
    struct sto_lun_info *out;
    uint32_t *luns;
    size_t n;
};

static void sync_probe_end(struct sync_probe *w, int err, const char *msg)
{
    w->err = err;
    if (err)
        snprintf(w->errbuf, w->errlen, "%s", msg ? msg : strerror(-err));
    w->done = true;
}

static void sync_luns_cb(void *arg, int err, const char *msg, uint32_t *luns, size_t n)
{
    struct sync_probe *w = arg;

    w->luns = luns;
    w->n = n;
    sync_probe_end(w, err, msg);
}

static void sync_probe_cb(void *arg, int err, const char *msg, const struct sto_lun_info *li)
{
    struct sync_probe *w = arg;

    *w->out = *li;
    sync_probe_end(w, err, msg);
}

/* A probe that could not start: the session's own error when it is the cause. */
static void sync_start_failed(struct isc_session *s, int ret, const char *what, char *err,
                              size_t errlen)
{
    if (isc_session_state(s) != ISC_STATE_LOGGED_IN && isc_session_error(s)[0])
        snprintf(err, errlen, "%s", isc_session_error(s));
    else
        snprintf(err, errlen, "%s: %s", what, strerror(-ret));
}

int sto_sync_report_luns(struct sto_loop *loop, struct isc_session *s, uint32_t **luns,
                         size_t *n, char *err, size_t errlen)
{
    struct sync_probe w = { .errbuf = err, .errlen = errlen };
    int ret = sto_probe_report_luns(s, sync_luns_cb, &w, NULL);

    if (ret < 0) {
        sync_start_failed(s, ret, "cannot send report luns", err, errlen);
        return ret;
    }
    sto_loop_run_until(loop, &w.done);
    if (w.err)
        return w.err;
    *luns = w.luns;
    *n = w.n;
    return 0;
}

int sto_sync_probe_lun(struct sto_loop *loop, struct isc_session *s, uint32_t lun,
                       struct sto_lun_info *out, char *err, size_t errlen)
{
    struct sync_probe w = { .errbuf = err, .errlen = errlen, .out = out };
    int ret;

    memset(out, 0, sizeof(*out));
    out->lun = lun;
    ret = sto_probe_lun(s, lun, sync_probe_cb, &w, NULL);
    if (ret < 0) {
        sync_start_failed(s, ret, "cannot start the probe", err, errlen);
        return ret;
    }
    sto_loop_run_until(loop, &w.done);
    return w.err;
}
