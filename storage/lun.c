/*
 * lun.c - LUN probing, SCSI result checking and blocking wrappers over the initiator.
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

static int sync_cmd(struct sto_loop *loop, struct isc_session *s, uint32_t lun,
                    const uint8_t *cdb, int cdb_len, void *buf, uint32_t len,
                    struct isc_scsi_result *res)
{
    struct isc_scsi_req req = {
        .lun = lun, .cdb_len = (uint8_t)cdb_len, .dir = buf ? ISC_DIR_READ : ISC_DIR_NONE,
        .buf = buf, .len = len,
    };

    memcpy(req.cdb, cdb, (size_t)cdb_len);
    return sto_sync_scsi(loop, s, &req, res);
}

/* The largest REPORT LUNS answer we ask for: 131071 LUNs. */
#define REPORT_LUNS_MAX (1024u * 1024u)

int sto_sync_report_luns(struct sto_loop *loop, struct isc_session *s, uint32_t **luns,
                         size_t *n, char *err, size_t errlen)
{
    uint32_t alloc = 16 + 8 * 256;
    struct isc_scsi_result res;
    uint8_t cdb[16];
    int ret, count;

    for (int round = 0;; round++) {
        uint8_t *buf = malloc(alloc);
        if (!buf) {
            snprintf(err, errlen, "out of memory for a %u-byte report luns answer", alloc);
            return -ENOMEM;
        }
        ret = sync_cmd(loop, s, 0, cdb, scsi_cdb_report_luns(cdb, alloc), buf, alloc, &res);
        if (ret == 0)
            ret = sto_scsi_check(&res, "report luns", err, errlen);
        if (ret < 0) {
            free(buf);
            return ret;
        }
        uint32_t got = res.data_in_len;
        count = scsi_parse_report_luns(buf, got, NULL, 0);
        if (count < 0) {
            free(buf);
            snprintf(err, errlen, "report luns returned malformed data (%u bytes)", got);
            return -EPROTO;
        }
        uint64_t want = (uint64_t)scsi_report_luns_listed(buf, got) * 8 + 8;
        if (want > got && got < alloc) {
            /* there was room for the whole list, and the target sent less than it claims */
            free(buf);
            snprintf(err, errlen, "report luns claims a %llu-byte list but sent %u bytes",
                     (unsigned long long)want - 8, got < 8 ? 0 : got - 8);
            return -EPROTO;
        }
        if (want > alloc && round == 0) {
            /* the list is longer than our buffer: ask once more, for at most 1 MiB */
            alloc = want < REPORT_LUNS_MAX ? (uint32_t)want : REPORT_LUNS_MAX;
            free(buf);
            continue;
        }
        *luns = calloc((size_t)count + 1, sizeof(**luns));
        if (!*luns) {
            free(buf);
            snprintf(err, errlen, "out of memory for %d luns", count);
            return -ENOMEM;
        }
        *n = (size_t)scsi_parse_report_luns(buf, got, *luns, (size_t)count);
        if (*n > (size_t)count)
            *n = (size_t)count;
        free(buf);
        return 0;
    }
}

int sto_sync_probe_lun(struct sto_loop *loop, struct isc_session *s, uint32_t lun,
                       struct sto_lun_info *out, char *err, size_t errlen)
{
    uint8_t cdb[16], buf[512];
    struct isc_scsi_result res;
    int ret;

    memset(out, 0, sizeof(*out));
    out->lun = lun;

    /* TEST UNIT READY clears pending unit attentions before the real questions */
    ret = sync_cmd(loop, s, lun, cdb, scsi_cdb_tur(cdb), NULL, 0, &res);
    if (ret == 0)
        ret = sto_scsi_check(&res, "test unit ready", err, errlen);
    if (ret < 0)
        return ret;

    ret = sync_cmd(loop, s, lun, cdb, scsi_cdb_inquiry(cdb, false, 0, 96), buf, 96, &res);
    if (ret == 0)
        ret = sto_scsi_check(&res, "inquiry", err, errlen);
    if (ret == 0 && scsi_parse_inquiry(buf, res.data_in_len, &out->inq) < 0) {
        snprintf(err, errlen, "inquiry returned %u bytes, fewer than 36", res.data_in_len);
        ret = -EPROTO;
    }
    if (ret < 0)
        return ret;
    if (out->inq.peripheral_qual != 0) {
        snprintf(err, errlen, "lun %u is not connected (peripheral qualifier %u)", lun,
                 out->inq.peripheral_qual);
        return -ENODEV;
    }
    if (out->inq.peripheral_type != SCSI_TYPE_DISK)
        return 0; /* a controller or other non-block unit: nothing more to ask */

    ret = sync_cmd(loop, s, lun, cdb, scsi_cdb_read_capacity16(cdb, 32), buf, 32, &res);
    int pret = -EPROTO;
    if (ret == 0 && sto_scsi_check(&res, "read capacity(16)", err, errlen) == 0 &&
        (pret = scsi_parse_read_capacity16(buf, res.data_in_len, &out->cap)) == 0) {
        /* done */
    } else if (pret == -ERANGE) {
        char why[128];
        snprintf(err, errlen, "lun %u: read capacity(16): %s", lun,
                 scsi_capacity_problem(&out->cap, why, sizeof(why)));
        return -ERANGE;
    } else {
        ret = sync_cmd(loop, s, lun, cdb, scsi_cdb_read_capacity10(cdb), buf, 8, &res);
        if (ret == 0)
            ret = sto_scsi_check(&res, "read capacity(10)", err, errlen);
        if (ret == 0 && (pret = scsi_parse_read_capacity10(buf, res.data_in_len,
                                                           &out->cap)) < 0) {
            char why[128];
            if (pret == -ERANGE)
                snprintf(err, errlen, "lun %u: read capacity(10): %s", lun,
                         scsi_capacity_problem(&out->cap, why, sizeof(why)));
            else
                snprintf(err, errlen, "lun %u: read capacity(10) returned %u bytes, fewer "
                         "than 8", lun, res.data_in_len);
            ret = pret;
        }
        if (ret < 0)
            return ret;
    }
    out->size_bytes = out->cap.blocks * out->cap.block_size;

    /* VPD pages are optional: their absence is not an error, a page that lies is */
    ret = sync_cmd(loop, s, lun, cdb, scsi_cdb_inquiry(cdb, true, 0x00, 255), buf, 255, &res);
    if (ret == 0 && res.status == SCSI_STATUS_GOOD && !res.err) {
        static const struct { uint8_t page; uint16_t alloc; } opt[] = {
            { 0x80, 255 }, { 0x83, 255 }, { 0xb0, 64 },
        };
        uint8_t pages[256];
        uint32_t plen = res.data_in_len < sizeof(pages) ? res.data_in_len : sizeof(pages);
        memcpy(pages, buf, plen);
        if (scsi_vpd_check(pages, plen, 255, 0x00, err, errlen) < 0)
            return -EPROTO;
        for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
            if (!scsi_vpd_supported(pages, plen, opt[i].page) ||
                sync_cmd(loop, s, lun, cdb, scsi_cdb_inquiry(cdb, true, opt[i].page,
                                                             opt[i].alloc),
                         buf, opt[i].alloc, &res) != 0 ||
                res.status != SCSI_STATUS_GOOD || res.err)
                continue;
            if (scsi_vpd_check(buf, res.data_in_len, opt[i].alloc, opt[i].page, err,
                               errlen) < 0)
                return -EPROTO;
            if (opt[i].page == 0x80)
                scsi_parse_serial(buf, res.data_in_len, out->serial, sizeof(out->serial));
            else if (opt[i].page == 0x83)
                scsi_parse_device_id(buf, res.data_in_len, out->wwn, sizeof(out->wwn));
            else
                scsi_parse_block_limits(buf, res.data_in_len, &out->limits);
        }
    }
    if (isc_session_state(s) != ISC_STATE_LOGGED_IN) {
        snprintf(err, errlen, "%s", isc_session_error(s));
        return -ECONNRESET;
    }
    return 0;
}
