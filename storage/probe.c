/*
 * probe.c - the one LUN probe, asynchronous on the storage loop: REPORT LUNS (asked once
 * more with a larger buffer when the list is longer), and per LUN TEST UNIT READY, INQUIRY,
 * READ CAPACITY (16, then 10) and the optional VPD pages (serial, device id, block limits).
 * Every step absorbs a few UNIT ATTENTIONs (past events) before it judges the answer.
 * The manager probes a new session's LUNs with it; lun.c's blocking helpers run it to the
 * end for the client commands.
 */
#include "storage/lun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_UA_RETRIES 5
#define PROBE_BUF 256
/* REPORT LUNS: room for 256 LUNs first; the largest answer asked for is 1 MiB. */
#define REPORT_LUNS_FIRST (16u + 8u * 256u)
#define REPORT_LUNS_MAX (1024u * 1024u)

enum probe_step {
    P_REPORT_LUNS,
    P_TUR,
    P_INQUIRY,
    P_RC16,
    P_RC10,
    P_VPD0,
    P_VPD80,
    P_VPD83,
    P_VPDB0,
    P_DONE,
};

struct sto_probe {
    struct isc_session *s;
    enum probe_step step;
    int retries;                   /* unit attentions absorbed at this step */
    sto_probe_cb cb;               /* a LUN's probe */
    sto_luns_cb luns_cb;           /* REPORT LUNS */
    void *arg;
    uint8_t buf[PROBE_BUF];
    uint8_t *rl;                   /* REPORT LUNS answer (malloc'd) */
    uint32_t rl_alloc;
    uint32_t rl_got;               /* bytes of the last answer */
    bool rl_again;                 /* asked once more with a larger buffer */
    uint8_t pages[PROBE_BUF];      /* VPD page 00h: the supported pages */
    uint32_t npages;
    struct sto_lun_info li;
    char err[STO_PROBE_ERR_MAX];
};

static int probe_submit(struct sto_probe *p);

static void probe_free(struct sto_probe *p)
{
    free(p->rl);
    free(p);
}

/* The probe is over: report once, then it is gone. */
static void probe_end(struct sto_probe *p, int err)
{
    const char *msg = err ? p->err : NULL;

    if (err && !p->err[0])
        snprintf(p->err, sizeof(p->err), "%s", strerror(-err));
    if (p->luns_cb) {
        uint32_t *luns = NULL;
        size_t n = 0;
        if (!err) {
            int count = scsi_parse_report_luns(p->rl, p->rl_got, NULL, 0);
            luns = calloc((size_t)count + 1, sizeof(*luns));
            if (!luns) {
                err = -ENOMEM;
                snprintf(p->err, sizeof(p->err), "out of memory for %d luns", count);
                msg = p->err;
            } else {
                n = (size_t)scsi_parse_report_luns(p->rl, p->rl_got, luns, (size_t)count);
                if (n > (size_t)count)
                    n = (size_t)count;
            }
        }
        p->luns_cb(p->arg, err, msg, luns, n);
    } else {
        p->cb(p->arg, err, msg, &p->li);
    }
    probe_free(p);
}

/* The next VPD page the LUN lists, or P_DONE. */
static enum probe_step next_vpd(const struct sto_probe *p, enum probe_step from)
{
    static const uint8_t page[] = { [P_VPD80] = 0x80, [P_VPD83] = 0x83, [P_VPDB0] = 0xb0 };

    for (enum probe_step st = from; st <= P_VPDB0; st++)
        if (scsi_vpd_supported(p->pages, p->npages, page[st]))
            return st;
    return P_DONE;
}

/* REPORT LUNS answered: 0 (done, or asked again), or -errno with the message in p->err. */
static int report_luns_result(struct sto_probe *p, const struct isc_scsi_result *r)
{
    int ret = sto_scsi_check(r, "report luns", p->err, sizeof(p->err));
    uint32_t got = r->data_in_len;

    if (ret < 0)
        return ret;
    if (scsi_parse_report_luns(p->rl, got, NULL, 0) < 0) {
        snprintf(p->err, sizeof(p->err), "report luns returned malformed data (%u bytes)", got);
        return -EPROTO;
    }
    uint64_t want = (uint64_t)scsi_report_luns_listed(p->rl, got) * 8 + 8;
    if (want > got && got < p->rl_alloc) {
        /* there was room for the whole list, and the target sent less than it claims */
        snprintf(p->err, sizeof(p->err), "report luns claims a %llu-byte list but sent %u "
                 "bytes", (unsigned long long)want - 8, got < 8 ? 0 : got - 8);
        return -EPROTO;
    }
    if (want > p->rl_alloc && !p->rl_again) {
        /* the list is longer than our buffer: ask once more, for at most 1 MiB */
        uint8_t *bigger;
        p->rl_alloc = want < REPORT_LUNS_MAX ? (uint32_t)want : REPORT_LUNS_MAX;
        p->rl_again = true;
        bigger = realloc(p->rl, p->rl_alloc);
        if (!bigger) {
            snprintf(p->err, sizeof(p->err), "out of memory for a %u-byte report luns "
                     "answer", p->rl_alloc);
            return -ENOMEM;
        }
        p->rl = bigger;
        return 0;
    }
    p->rl_got = got;
    p->step = P_DONE;
    return 0;
}

/* READ CAPACITY (16) or (10) answered: 0 or -errno with the message in p->err. */
static int capacity_result(struct sto_probe *p, const struct isc_scsi_result *r)
{
    bool rc16 = p->step == P_RC16;
    const char *what = rc16 ? "read capacity(16)" : "read capacity(10)";
    char why[128];
    int ret = sto_scsi_check(r, what, p->err, sizeof(p->err));
    int parsed = -EPROTO;

    if (ret == 0)
        parsed = rc16 ? scsi_parse_read_capacity16(p->buf, r->data_in_len, &p->li.cap)
                      : scsi_parse_read_capacity10(p->buf, r->data_in_len, &p->li.cap);
    if (ret == 0 && parsed == -ERANGE) {
        /* an answer that is no usable block device: the 10-byte form would not be either */
        snprintf(p->err, sizeof(p->err), "%s: %s", what,
                 scsi_capacity_problem(&p->li.cap, why, sizeof(why)));
        return -ERANGE;
    }
    if ((ret < 0 || parsed < 0) && rc16) {
        p->step = P_RC10;          /* no READ CAPACITY(16): the 10-byte form */
        return 0;
    }
    if (ret < 0)
        return ret;
    if (parsed < 0) {
        snprintf(p->err, sizeof(p->err), "%s returned %u bytes, fewer than 8", what,
                 r->data_in_len);
        return parsed;
    }
    p->li.size_bytes = p->li.cap.blocks * p->li.cap.block_size;
    p->step = P_VPD0;
    return 0;
}

/* An optional VPD page answered: absent is fine, a page that lies is -EPROTO. */
static int vpd_result(struct sto_probe *p, const struct isc_scsi_result *r)
{
    static const uint16_t alloc[] = { [P_VPD0] = 255, [P_VPD80] = 255, [P_VPD83] = 255,
                                      [P_VPDB0] = 64 };
    static const uint8_t page[] = { [P_VPD0] = 0x00, [P_VPD80] = 0x80, [P_VPD83] = 0x83,
                                    [P_VPDB0] = 0xb0 };
    enum probe_step st = p->step;
    uint32_t got = r->data_in_len;

    if (r->err || r->status != SCSI_STATUS_GOOD) {
        p->step = st == P_VPD0 ? P_DONE : next_vpd(p, st + 1);
        return 0;
    }
    if (scsi_vpd_check(p->buf, got, alloc[st], page[st], p->err, sizeof(p->err)) < 0)
        return -EPROTO;
    if (st == P_VPD0) {
        p->npages = got < sizeof(p->pages) ? got : sizeof(p->pages);
        memcpy(p->pages, p->buf, p->npages);
        p->step = next_vpd(p, P_VPD80);
        return 0;
    }
    if (st == P_VPD80)
        scsi_parse_serial(p->buf, got, p->li.serial, sizeof(p->li.serial));
    else if (st == P_VPD83)
        scsi_parse_device_id(p->buf, got, p->li.wwn, sizeof(p->li.wwn));
    else
        scsi_parse_block_limits(p->buf, got, &p->li.limits);
    p->step = next_vpd(p, st + 1);
    return 0;
}

/* INQUIRY answered: a LUN that is not connected is no usable unit; a non-disk ends here. */
static int inquiry_result(struct sto_probe *p, const struct isc_scsi_result *r)
{
    int ret = sto_scsi_check(r, "inquiry", p->err, sizeof(p->err));

    if (ret < 0)
        return ret;
    if (scsi_parse_inquiry(p->buf, r->data_in_len, &p->li.inq) < 0) {
        snprintf(p->err, sizeof(p->err), "inquiry returned %u bytes, fewer than 36",
                 r->data_in_len);
        return -EPROTO;
    }
    if (p->li.inq.peripheral_qual != 0) {
        snprintf(p->err, sizeof(p->err), "lun %u is not connected (peripheral qualifier %u)",
                 p->li.lun, p->li.inq.peripheral_qual);
        return -ENODEV;
    }
    /* a controller or other non-block unit: nothing more to ask */
    p->step = p->li.inq.peripheral_type == SCSI_TYPE_DISK ? P_RC16 : P_DONE;
    return 0;
}

static void probe_cb(struct isc_session *s, const struct isc_scsi_result *r, void *arg)
{
    struct sto_probe *p = arg;
    struct scsi_sense sense;
    int ret = 0;

    (void)s;
    if (!r->err && r->status == SCSI_STATUS_CHECK_CONDITION) {
        scsi_sense_decode(r->sense, r->sense_len, &sense);
        /* a unit attention reports a past event (power on, resize): ask again */
        if (sense.key == SCSI_SENSE_UNIT_ATTENTION && p->retries++ < PROBE_UA_RETRIES) {
            ret = probe_submit(p);
            if (ret < 0)
                probe_end(p, ret);
            return;
        }
    }
    p->retries = 0;
    p->err[0] = '\0';
    switch (p->step) {
    case P_REPORT_LUNS:
        ret = report_luns_result(p, r);
        break;
    case P_TUR:
        /* it clears pending unit attentions before the real questions */
        ret = sto_scsi_check(r, "test unit ready", p->err, sizeof(p->err));
        p->step = P_INQUIRY;
        break;
    case P_INQUIRY:
        ret = inquiry_result(p, r);
        break;
    case P_RC16:
    case P_RC10:
        ret = capacity_result(p, r);
        break;
    case P_VPD0:
    case P_VPD80:
    case P_VPD83:
    case P_VPDB0:
        ret = vpd_result(p, r);
        break;
    case P_DONE:
        break;
    }
    if (ret == 0 && p->step == P_DONE && !p->luns_cb &&
        isc_session_state(p->s) != ISC_STATE_LOGGED_IN) {
        snprintf(p->err, sizeof(p->err), "%s", isc_session_error(p->s));
        ret = -ECONNRESET;
    }
    if (ret == 0 && p->step != P_DONE)
        ret = probe_submit(p);
    if (ret < 0 || p->step == P_DONE)
        probe_end(p, ret);
}

/* Issue the command of the current step. */
static int probe_submit(struct sto_probe *p)
{
    struct isc_scsi_req req = {
        .lun = p->li.lun, .cb = probe_cb, .arg = p, .buf = p->buf, .dir = ISC_DIR_READ,
        .check_expected = true,
    };
    uint8_t vpd = 0;
    int ret;

    switch (p->step) {
    case P_REPORT_LUNS:
        req.lun = 0;
        req.buf = p->rl;
        req.len = p->rl_alloc;
        req.cdb_len = (uint8_t)scsi_cdb_report_luns(req.cdb, p->rl_alloc);
        break;
    case P_TUR:
        req.dir = ISC_DIR_NONE;
        req.buf = NULL;
        req.cdb_len = (uint8_t)scsi_cdb_tur(req.cdb);
        break;
    case P_INQUIRY:
        req.len = 96;
        req.cdb_len = (uint8_t)scsi_cdb_inquiry(req.cdb, false, 0, 96);
        break;
    case P_RC16:
        req.len = 32;
        req.cdb_len = (uint8_t)scsi_cdb_read_capacity16(req.cdb, 32);
        break;
    case P_RC10:
        req.len = 8;
        req.cdb_len = (uint8_t)scsi_cdb_read_capacity10(req.cdb);
        break;
    case P_VPDB0:
        vpd = 0xb0;
        req.len = 64;
        req.cdb_len = (uint8_t)scsi_cdb_inquiry(req.cdb, true, vpd, 64);
        break;
    case P_VPD0:
    case P_VPD80:
    case P_VPD83:
        vpd = p->step == P_VPD0 ? 0x00 : p->step == P_VPD80 ? 0x80 : 0x83;
        req.len = 255;
        req.cdb_len = (uint8_t)scsi_cdb_inquiry(req.cdb, true, vpd, 255);
        break;
    case P_DONE:
        return 0;
    }
    ret = isc_session_submit(p->s, &req);
    if (ret < 0 && isc_session_state(p->s) != ISC_STATE_LOGGED_IN) {
        /* an optional page's command failed with the session: say why the session did */
        snprintf(p->err, sizeof(p->err), "%s", isc_session_error(p->s));
        return -ECONNRESET;
    }
    if (ret < 0)
        snprintf(p->err, sizeof(p->err), "cannot queue a probe command: %s", strerror(-ret));
    return ret;
}

/* *out is set first: a command can complete (and the probe end) before submit returns. */
static int probe_start(struct sto_probe *p, struct sto_probe **out)
{
    int ret;

    if (out)
        *out = p;
    ret = probe_submit(p);
    if (ret < 0) {
        if (out)
            *out = NULL;
        probe_free(p);
    }
    return ret;
}

int sto_probe_lun(struct isc_session *s, uint32_t lun, sto_probe_cb cb, void *arg,
                  struct sto_probe **out)
{
    struct sto_probe *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    p->s = s;
    p->step = P_TUR;
    p->cb = cb;
    p->arg = arg;
    p->li.lun = lun;
    return probe_start(p, out);
}

int sto_probe_report_luns(struct isc_session *s, sto_luns_cb cb, void *arg,
                          struct sto_probe **out)
{
    struct sto_probe *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    p->s = s;
    p->step = P_REPORT_LUNS;
    p->luns_cb = cb;
    p->arg = arg;
    p->rl_alloc = REPORT_LUNS_FIRST;
    p->rl = malloc(p->rl_alloc);
    if (!p->rl) {
        free(p);
        return -ENOMEM;
    }
    return probe_start(p, out);
}

void sto_probe_abandon(struct sto_probe *p)
{
    if (p)
        probe_free(p);
}
