/*
 * memtarget.c - an in-memory iSCSI target for the NBD fuzzer (see memtarget.h).
 *
 * Initiator bytes arrive through writev, are framed into PDUs and answered at once; the
 * answers wait in an output buffer that read drains. The conn's eventfd is signalled while
 * answers wait and cleared by the read that finds none (the TOE conn's rule: "fd is
 * signalled only after a read returned -EAGAIN"). Everything runs on the caller's thread.
 */
#include "tests/fuzz/memtarget.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "storage/pdu.h"
#include "storage/scsi.h"
#include "storage/text.h"
#include "tests/fuzz/fuzz.h"

#define MT_MAX_RECV_DSL 65536     /* what we declare: the longest segment we take */
#define MT_MAX_BURST 262144
#define MT_WINDOW 32              /* commands the initiator may send ahead */
#define MT_TASKS 256              /* writes waiting for their data */
#define MT_WRITE_MAX (64u << 20)
#define MT_STATSN0 0x1000

struct mt_task {
    bool used;
    uint32_t itt, ttt, r2tsn, datasn;
    uint32_t edtl, got, burst_end;
    uint8_t cdb[16];
    uint8_t *buf;
};

struct mt_conn {
    struct stk_conn c;
    struct memtgt *t;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_pos, out_cap;
    bool ffp;
    uint16_t tsih;
    uint32_t statsn, exp_cmdsn;
    uint32_t peer_max_dsl;        /* what the initiator declared */
    uint32_t max_burst;
    uint32_t next_ttt;
    struct mt_task tasks[MT_TASKS];
};

struct memtgt {
    uint32_t lun, bs;
    uint64_t blocks;
    uint8_t *data;
    struct mt_conn *conn;
    unsigned conns;
    uint64_t pdus;
};

/* ---------------------------------------------------------------- buffers */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        abort();
    return q;
}

static void out_put(struct mt_conn *k, const void *p, size_t n)
{
    uint64_t one = 1;

    if (k->out_len + n > k->out_cap) {
        k->out_cap = (k->out_len + n) * 2;
        k->out = xrealloc(k->out, k->out_cap);
    }
    memcpy(k->out + k->out_len, p, n);
    k->out_len += n;
    if (write(k->c.fd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the fd polls readable anyway */
    }
}

/* Queue a PDU: its BHS (DSL filled in here), data and padding. */
static void send_pdu(struct mt_conn *k, uint8_t *h, const uint8_t *data, uint32_t len)
{
    static const uint8_t zero[4];

    isc_put24(h, ISC_OFF_DSL, len);
    out_put(k, h, ISC_BHS_LEN);
    if (len) {
        out_put(k, data, len);
        out_put(k, zero, isc_pad4(len));
    }
}

static void put_sn(struct mt_conn *k, uint8_t *h, bool status)
{
    isc_put32(h, ISC_OFF_STATSN, status ? k->statsn++ : k->statsn);
    isc_put32(h, ISC_OFF_EXPCMDSN, k->exp_cmdsn);
    isc_put32(h, ISC_OFF_MAXCMDSN, k->exp_cmdsn + MT_WINDOW - 1);
}

/* ---------------------------------------------------------------- login */

/* Our answer to one key the initiator offered, or NULL when it needs none. */
static const char *answer_key(struct mt_conn *k, const char *key, const char *val, char *buf,
                              size_t len)
{
    unsigned long v = strtoul(val, NULL, 0);

    if (!strcmp(key, "InitiatorName") || !strcmp(key, "SessionType") ||
        !strcmp(key, "TargetName") || !strcmp(key, "InitiatorAlias"))
        return NULL;
    if (!strcmp(key, "AuthMethod")) {
        FUZZ_CHECK(strstr(val, "None") != NULL, "memtarget: initiator insists on %s", val);
        return "None";
    }
    if (!strcmp(key, "HeaderDigest") || !strcmp(key, "DataDigest")) {
        FUZZ_CHECK(strstr(val, "None") != NULL, "memtarget: initiator requires %s=%s", key,
                   val);
        return "None";
    }
    if (!strcmp(key, "MaxRecvDataSegmentLength")) {
        FUZZ_CHECK(v >= 512 && v < (1u << 24), "memtarget: initiator declared %s=%s", key,
                   val);
        k->peer_max_dsl = (uint32_t)v;
        snprintf(buf, len, "%u", MT_MAX_RECV_DSL);
        return buf;
    }
    if (!strcmp(key, "InitialR2T"))
        return "Yes";
    if (!strcmp(key, "ImmediateData"))
        return "No";
    if (!strcmp(key, "MaxBurstLength") || !strcmp(key, "FirstBurstLength")) {
        if (v > MT_MAX_BURST)
            v = MT_MAX_BURST;
        if (!strcmp(key, "MaxBurstLength"))
            k->max_burst = (uint32_t)v;
        snprintf(buf, len, "%lu", v);
        return buf;
    }
    if (!strcmp(key, "MaxOutstandingR2T") || !strcmp(key, "MaxConnections"))
        return "1";
    if (!strcmp(key, "ErrorRecoveryLevel"))
        return "0";
    if (!strcmp(key, "DataPDUInOrder") || !strcmp(key, "DataSequenceInOrder"))
        return "Yes";
    if (!strcmp(key, "DefaultTime2Wait") || !strcmp(key, "DefaultTime2Retain"))
        return val; /* the initiator's value suits us (a maximum and a minimum) */
    return "NotUnderstood";
}

static void handle_login(struct mt_conn *k, const uint8_t *h, const uint8_t *data, uint32_t dsl)
{
    uint8_t flags = h[ISC_OFF_FLAGS], rh[ISC_BHS_LEN] = { 0 };
    bool transit = flags & ISC_LOGIN_TRANSIT;
    int csg = (flags >> 2) & 3, nsg = flags & 3;
    struct isc_kvlist in = { 0 }, out = { 0 };
    char buf[32];
    uint8_t *seg;
    size_t n;

    FUZZ_CHECK(!k->ffp, "memtarget: login request in the full feature phase");
    FUZZ_CHECK(!(flags & ISC_LOGIN_CONTINUE), "memtarget: continued login request");
    FUZZ_CHECK(isc_kv_parse(data, dsl, &in) == 0, "memtarget: malformed login text");
    for (size_t i = 0; i < in.n; i++) {
        const char *a = answer_key(k, in.v[i].key, in.v[i].value, buf, sizeof(buf));
        if (a && isc_kv_add(&out, in.v[i].key, a) < 0)
            abort();
    }
    if (csg == ISC_STAGE_SECURITY && isc_kv_add(&out, "TargetPortalGroupTag", "1") < 0)
        abort();
    n = isc_kv_size(&out);
    seg = xrealloc(NULL, n);
    isc_kv_serialize(&out, seg);

    rh[ISC_OFF_OPCODE] = ISC_OP_LOGIN_RSP;
    rh[ISC_OFF_FLAGS] = (uint8_t)((transit ? ISC_LOGIN_TRANSIT | nsg : 0) | (csg << 2));
    memcpy(rh + ISC_OFF_ISID, h + ISC_OFF_ISID, 6);
    if (transit && nsg == ISC_STAGE_FFP)
        k->tsih = 1;
    isc_put16(rh, ISC_OFF_TSIH, k->tsih);
    isc_put32(rh, ISC_OFF_ITT, isc_get32(h, ISC_OFF_ITT));
    k->exp_cmdsn = isc_get32(h, ISC_OFF_CMDSN);
    put_sn(k, rh, true);
    send_pdu(k, rh, seg, (uint32_t)n);
    if (transit && nsg == ISC_STAGE_FFP)
        k->ffp = true;
    free(seg);
    isc_kv_clear(&in);
    isc_kv_clear(&out);
}

/* ---------------------------------------------------------------- SCSI */

static void scsi_status(struct mt_conn *k, const uint8_t *h, uint8_t status, uint8_t key,
                        uint8_t asc, uint32_t edtl, uint32_t sent)
{
    uint8_t rh[ISC_BHS_LEN] = { 0 }, sense[2 + 18] = { 0 };

    rh[ISC_OFF_OPCODE] = ISC_OP_SCSI_RSP;
    rh[ISC_OFF_FLAGS] = ISC_FLAG_FINAL;
    if (status == 0 && sent < edtl) {
        rh[ISC_OFF_FLAGS] |= ISC_RSP_UNDER;
        isc_put32(rh, ISC_OFF_RESIDUAL, edtl - sent);
    }
    rh[ISC_OFF_RSP_STATUS] = status;
    isc_put32(rh, ISC_OFF_ITT, isc_get32(h, ISC_OFF_ITT));
    put_sn(k, rh, true);
    if (status == 0) {
        send_pdu(k, rh, NULL, 0);
        return;
    }
    isc_put16(sense, 0, 18);
    sense[2] = 0x70;
    sense[2 + 2] = key;
    sense[2 + 7] = 10;
    sense[2 + 12] = asc;
    send_pdu(k, rh, sense, sizeof(sense));
}

static void check_condition(struct mt_conn *k, const uint8_t *h, uint8_t key, uint8_t asc)
{
    scsi_status(k, h, SCSI_STATUS_CHECK_CONDITION, key, asc, 0, 0);
}

/* Data-In for a read of `len` bytes (the command expects edtl), status in the last. */
static void data_in(struct mt_conn *k, const uint8_t *h, const uint8_t *data, uint32_t len,
                    uint32_t edtl)
{
    uint32_t seg = k->peer_max_dsl < MT_MAX_RECV_DSL ? k->peer_max_dsl : MT_MAX_RECV_DSL;
    uint32_t n = len < edtl ? len : edtl, off = 0, datasn = 0;

    if (n == 0) {
        scsi_status(k, h, 0, 0, 0, edtl, 0);
        return;
    }
    while (off < n) {
        uint8_t rh[ISC_BHS_LEN] = { 0 };
        uint32_t part = n - off < seg ? n - off : seg;
        bool last = off + part == n;
        rh[ISC_OFF_OPCODE] = ISC_OP_DATA_IN;
        if (last) {
            rh[ISC_OFF_FLAGS] = ISC_FLAG_FINAL | ISC_DATAIN_STATUS;
            if (n < edtl) {
                rh[ISC_OFF_FLAGS] |= ISC_RSP_UNDER;
                isc_put32(rh, ISC_OFF_RESIDUAL, edtl - n);
            } else if (len > edtl) {
                rh[ISC_OFF_FLAGS] |= ISC_RSP_OVER;
                isc_put32(rh, ISC_OFF_RESIDUAL, len - edtl);
            }
        }
        isc_put64(rh, ISC_OFF_LUN, isc_get64(h, ISC_OFF_LUN));
        isc_put32(rh, ISC_OFF_ITT, isc_get32(h, ISC_OFF_ITT));
        isc_put32(rh, ISC_OFF_TTT, ISC_RSVD_TAG);
        put_sn(k, rh, last);
        isc_put32(rh, ISC_OFF_DATASN, datasn++);
        isc_put32(rh, ISC_OFF_BUFOFF, off);
        send_pdu(k, rh, data + off, part);
        off += part;
    }
}

static void inquiry(struct mt_conn *k, const uint8_t *h, const uint8_t *cdb, uint32_t edtl,
                    bool our_lun)
{
    uint8_t d[64] = { 0 };
    uint32_t n;

    if (!(cdb[1] & 1)) {
        d[0] = our_lun ? 0x00 : 0x7f;
        d[2] = 6;
        d[3] = 2;
        d[4] = 31;
        d[7] = 0x02;
        memcpy(d + 8, "TOEGW   MEMTARGET       0001", 28);
        n = 36;
    } else if (!our_lun) {
        check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x25);
        return;
    } else {
        d[1] = cdb[2];
        switch (cdb[2]) {
        case 0x00:
            d[3] = 4;
            memcpy(d + 4, "\x00\x80\x83\xb0", 4);
            n = 8;
            break;
        case 0x80:
            d[3] = 8;
            memcpy(d + 4, "MEM00001", 8);
            n = 12;
            break;
        case 0x83:
            d[3] = 20;
            d[4] = 0x01;            /* binary */
            d[5] = 0x03;            /* logical unit, NAA */
            d[7] = 16;
            memcpy(d + 8, "\x60\x01\x40\x5e\x6f\x75\x7a\x7a\x00\x00\x00\x00\x00\x00\x00\x01", 16);
            n = 24;
            break;
        case 0xb0:
            d[3] = 0x3c;
            isc_put32(d, 8, (1u << 20) / k->t->bs);   /* maximum transfer length */
            isc_put32(d, 12, 65536 / k->t->bs);       /* optimal transfer length */
            isc_put32(d, 20, 0xffffffffu);            /* maximum unmap lba count */
            isc_put32(d, 24, 16);                     /* maximum unmap descriptors */
            isc_put64(d, 36, 0xffff);                 /* maximum write same length */
            n = 64;
            break;
        default:
            check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x24);
            return;
        }
    }
    if (n > isc_get16(cdb, 3))
        n = isc_get16(cdb, 3);
    data_in(k, h, d, n, edtl);
}

/* The block range of a READ/WRITE/WRITE SAME CDB. */
static void cdb_range(const uint8_t *cdb, uint64_t *lba, uint32_t *blocks)
{
    if (cdb[0] == SCSI_READ10 || cdb[0] == SCSI_WRITE10 || cdb[0] == SCSI_WRITE_SAME10) {
        *lba = isc_get32(cdb, 2);
        *blocks = isc_get16(cdb, 7);
    } else {
        *lba = isc_get64(cdb, 2);
        *blocks = isc_get32(cdb, 10);
    }
}

static bool in_range(const struct memtgt *t, uint64_t lba, uint64_t blocks)
{
    return lba <= t->blocks && blocks <= t->blocks - lba;
}

/* A write whose data has all arrived (or a write command without data). */
static void write_done(struct mt_conn *k, const uint8_t *h, const uint8_t *cdb,
                       const uint8_t *buf, uint32_t len)
{
    struct memtgt *t = k->t;
    uint64_t lba;
    uint32_t blocks;

    switch (cdb[0]) {
    case SCSI_WRITE10:
    case SCSI_WRITE16:
        cdb_range(cdb, &lba, &blocks);
        memcpy(t->data + lba * t->bs, buf, len);
        break;
    case SCSI_WRITE_SAME10:
    case SCSI_WRITE_SAME16:
        cdb_range(cdb, &lba, &blocks);
        if (blocks == 0)
            blocks = (uint32_t)(t->blocks - lba);
        for (uint32_t i = 0; i < blocks; i++) {
            if (cdb[1] & 0x08)
                memset(t->data + (lba + i) * t->bs, 0, t->bs);
            else
                memcpy(t->data + (lba + i) * t->bs, buf, t->bs);
        }
        break;
    case SCSI_UNMAP:
        for (uint32_t off = 8; off + 16 <= len; off += 16) {
            lba = isc_get64(buf, off);
            blocks = isc_get32(buf, off + 8);
            if (!in_range(t, lba, blocks)) {
                check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x21);
                return;
            }
            memset(t->data + lba * t->bs, 0, (size_t)blocks * t->bs);
        }
        break;
    }
    scsi_status(k, h, 0, 0, 0, 0, 0);
}

static void send_r2t(struct mt_conn *k, struct mt_task *w, const uint8_t *h)
{
    uint8_t rh[ISC_BHS_LEN] = { 0 };
    uint32_t len = w->edtl - w->got < k->max_burst ? w->edtl - w->got : k->max_burst;

    w->ttt = k->next_ttt++ & 0x7fffffff;
    w->burst_end = w->got + len;
    w->datasn = 0;
    rh[ISC_OFF_OPCODE] = ISC_OP_R2T;
    rh[ISC_OFF_FLAGS] = ISC_FLAG_FINAL;
    isc_put64(rh, ISC_OFF_LUN, isc_get64(h, ISC_OFF_LUN));
    isc_put32(rh, ISC_OFF_ITT, w->itt);
    isc_put32(rh, ISC_OFF_TTT, w->ttt);
    put_sn(k, rh, false);
    isc_put32(rh, ISC_OFF_DATASN, w->r2tsn++);
    isc_put32(rh, ISC_OFF_BUFOFF, w->got);
    isc_put32(rh, ISC_OFF_R2T_DDTL, len);
    send_pdu(k, rh, NULL, 0);
}

/* Start a write-direction command: wait for its data through R2Ts. */
static void start_write(struct mt_conn *k, const uint8_t *h, const uint8_t *cdb, uint32_t edtl)
{
    struct mt_task *w = NULL;

    FUZZ_CHECK(edtl <= MT_WRITE_MAX, "memtarget: a %u-byte write", edtl);
    if (edtl == 0) {
        write_done(k, h, cdb, NULL, 0);
        return;
    }
    for (int i = 0; i < MT_TASKS && !w; i++)
        if (!k->tasks[i].used)
            w = &k->tasks[i];
    FUZZ_CHECK(w != NULL, "memtarget: more than %d writes waiting for data", MT_TASKS);
    memset(w, 0, sizeof(*w));
    w->used = true;
    w->itt = isc_get32(h, ISC_OFF_ITT);
    w->edtl = edtl;
    memcpy(w->cdb, cdb, 16);
    w->buf = xrealloc(NULL, edtl);
    send_r2t(k, w, h);
}

static void handle_cmd(struct mt_conn *k, const uint8_t *h, uint32_t dsl)
{
    struct memtgt *t = k->t;
    const uint8_t *cdb = h + ISC_OFF_CDB;
    uint8_t flags = h[ISC_OFF_FLAGS], d[32] = { 0 };
    uint32_t edtl = isc_get32(h, ISC_OFF_CMD_EDTL), blocks;
    bool ours = isc_lun_decode(isc_get64(h, ISC_OFF_LUN)) == t->lun;
    uint64_t lba;

    FUZZ_CHECK(dsl == 0, "memtarget: %u bytes of immediate data after ImmediateData=No", dsl);
    FUZZ_CHECK(flags & ISC_FLAG_FINAL, "memtarget: unsolicited data after InitialR2T=Yes");
    FUZZ_CHECK(!((flags & ISC_CMD_READ) && (flags & ISC_CMD_WRITE)),
               "memtarget: a bidirectional command");
    if (cdb[0] == SCSI_REPORT_LUNS) {
        isc_put32(d, 0, 8);
        isc_put64(d, 8, isc_lun_encode(t->lun));
        data_in(k, h, d, isc_get32(cdb, 6) < 16 ? isc_get32(cdb, 6) : 16, edtl);
        return;
    }
    if (cdb[0] == SCSI_INQUIRY) {
        inquiry(k, h, cdb, edtl, ours);
        return;
    }
    if (!ours) {
        check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x25);
        return;
    }
    switch (cdb[0]) {
    case SCSI_TEST_UNIT_READY:
    case SCSI_SYNC_CACHE10:
    case SCSI_SYNC_CACHE16:
        scsi_status(k, h, 0, 0, 0, 0, 0);
        return;
    case SCSI_READ_CAPACITY10:
        isc_put32(d, 0, t->blocks - 1 > 0xffffffffull ? 0xffffffffu : (uint32_t)(t->blocks - 1));
        isc_put32(d, 4, t->bs);
        data_in(k, h, d, 8, edtl);
        return;
    case SCSI_SERVICE_IN16:
        if ((cdb[1] & 0x1f) != SCSI_SAI_READ_CAPACITY16)
            break;
        isc_put64(d, 0, t->blocks - 1);
        isc_put32(d, 8, t->bs);
        d[14] = 0x80; /* LBPME: UNMAP and WRITE SAME unmap work */
        data_in(k, h, d, isc_get32(cdb, 10) < 32 ? isc_get32(cdb, 10) : 32, edtl);
        return;
    case SCSI_READ10:
    case SCSI_READ16:
        cdb_range(cdb, &lba, &blocks);
        if (!in_range(t, lba, blocks)) {
            check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x21);
            return;
        }
        FUZZ_CHECK((uint64_t)blocks * t->bs == edtl && (flags & ISC_CMD_READ),
                   "memtarget: read of %u blocks with an edtl of %u", blocks, edtl);
        data_in(k, h, t->data + lba * t->bs, edtl, edtl);
        return;
    case SCSI_WRITE10:
    case SCSI_WRITE16:
    case SCSI_WRITE_SAME10:
    case SCSI_WRITE_SAME16:
        cdb_range(cdb, &lba, &blocks);
        if (!in_range(t, lba, blocks)) {
            check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x21);
            return;
        }
        FUZZ_CHECK(flags & ISC_CMD_WRITE, "memtarget: a write without the W bit");
        if (cdb[0] == SCSI_WRITE10 || cdb[0] == SCSI_WRITE16)
            FUZZ_CHECK((uint64_t)blocks * t->bs == edtl, "memtarget: write of %u blocks with "
                       "an edtl of %u", blocks, edtl);
        else
            FUZZ_CHECK(edtl == t->bs, "memtarget: write same with an edtl of %u", edtl);
        start_write(k, h, cdb, edtl);
        return;
    case SCSI_UNMAP:
        FUZZ_CHECK(flags & ISC_CMD_WRITE && edtl == isc_get16(cdb, 7) && edtl >= 8,
                   "memtarget: unmap with a %u-byte parameter list", edtl);
        start_write(k, h, cdb, edtl);
        return;
    default:
        break;
    }
    check_condition(k, h, SCSI_SENSE_ILLEGAL_REQUEST, 0x20);
}

static void handle_data_out(struct mt_conn *k, const uint8_t *h, const uint8_t *data,
                            uint32_t dsl)
{
    uint32_t itt = isc_get32(h, ISC_OFF_ITT), off = isc_get32(h, ISC_OFF_BUFOFF);
    struct mt_task *w = NULL;

    for (int i = 0; i < MT_TASKS && !w; i++)
        if (k->tasks[i].used && k->tasks[i].itt == itt)
            w = &k->tasks[i];
    FUZZ_CHECK(w != NULL, "memtarget: data-out for task 0x%08x, which waits for none", itt);
    FUZZ_CHECK(isc_get32(h, ISC_OFF_TTT) == w->ttt, "memtarget: data-out with ttt 0x%08x, "
               "not the r2t's 0x%08x", isc_get32(h, ISC_OFF_TTT), w->ttt);
    FUZZ_CHECK(off == w->got && dsl <= w->burst_end - w->got,
               "memtarget: data-out at %u+%u, expected %u..%u", off, dsl, w->got, w->burst_end);
    FUZZ_CHECK(isc_get32(h, ISC_OFF_DATASN) == w->datasn, "memtarget: data-out datasn %u, "
               "expected %u", isc_get32(h, ISC_OFF_DATASN), w->datasn);
    w->datasn++;
    memcpy(w->buf + off, data, dsl);
    w->got += dsl;
    if (!(h[ISC_OFF_FLAGS] & ISC_FLAG_FINAL))
        return;
    FUZZ_CHECK(w->got == w->burst_end, "memtarget: burst ended at %u of %u", w->got,
               w->burst_end);
    if (w->got < w->edtl) {
        send_r2t(k, w, h);
        return;
    }
    /* a response for the command: its ITT is in h, its LUN too */
    write_done(k, h, w->cdb, w->buf, w->edtl);
    free(w->buf);
    w->used = false;
}

/* ---------------------------------------------------------------- other PDUs */

static void handle_simple(struct mt_conn *k, const uint8_t *h, const uint8_t *data,
                          uint32_t dsl)
{
    uint8_t rh[ISC_BHS_LEN] = { 0 };
    enum isc_opcode op = isc_bhs_opcode(h);

    rh[ISC_OFF_FLAGS] = ISC_FLAG_FINAL;
    isc_put32(rh, ISC_OFF_ITT, isc_get32(h, ISC_OFF_ITT));
    switch (op) {
    case ISC_OP_NOP_OUT:
        if (isc_get32(h, ISC_OFF_ITT) == ISC_RSVD_TAG)
            return; /* an answer to a ping of ours: we send none */
        rh[ISC_OFF_OPCODE] = ISC_OP_NOP_IN;
        isc_put64(rh, ISC_OFF_LUN, isc_get64(h, ISC_OFF_LUN));
        isc_put32(rh, ISC_OFF_TTT, ISC_RSVD_TAG);
        put_sn(k, rh, true);
        send_pdu(k, rh, data, dsl);
        return;
    case ISC_OP_TEXT_REQ:
        rh[ISC_OFF_OPCODE] = ISC_OP_TEXT_RSP;
        isc_put32(rh, ISC_OFF_TTT, ISC_RSVD_TAG);
        break;
    case ISC_OP_TMF_REQ:
        rh[ISC_OFF_OPCODE] = ISC_OP_TMF_RSP;
        break;
    case ISC_OP_LOGOUT_REQ:
        rh[ISC_OFF_OPCODE] = ISC_OP_LOGOUT_RSP;
        break;
    default:
        fuzz_fail("memtarget: initiator sent a %s pdu (opcode 0x%02x)", isc_opcode_name(op),
                  h[0]);
    }
    put_sn(k, rh, true);
    send_pdu(k, rh, NULL, 0);
}

static void handle_pdu(struct mt_conn *k, const uint8_t *h, const uint8_t *data, uint32_t dsl)
{
    enum isc_opcode op = isc_bhs_opcode(h);
    bool immediate = h[ISC_OFF_OPCODE] & ISC_OP_IMMEDIATE;

    k->t->pdus++;
    FUZZ_CHECK(!(op & 0x20), "memtarget: initiator sent target opcode 0x%02x", h[0]);
    if (op == ISC_OP_LOGIN_REQ) {
        handle_login(k, h, data, dsl);
        return;
    }
    FUZZ_CHECK(k->ffp, "memtarget: a %s pdu during login", isc_opcode_name(op));
    FUZZ_CHECK(dsl <= MT_MAX_RECV_DSL, "memtarget: a %u-byte segment, above the %u declared",
               dsl, MT_MAX_RECV_DSL);
    if (op != ISC_OP_DATA_OUT && op != ISC_OP_SNACK) {
        uint32_t cmdsn = isc_get32(h, ISC_OFF_CMDSN);
        FUZZ_CHECK(cmdsn == k->exp_cmdsn, "memtarget: %s with cmdsn %u, expected %u",
                   isc_opcode_name(op), cmdsn, k->exp_cmdsn);
        if (!immediate)
            k->exp_cmdsn++;
    }
    if (op == ISC_OP_SCSI_CMD)
        handle_cmd(k, h, dsl);
    else if (op == ISC_OP_DATA_OUT)
        handle_data_out(k, h, data, dsl);
    else
        handle_simple(k, h, data, dsl);
}

/* ---------------------------------------------------------------- the conn */

static ssize_t mt_read(struct stk_conn *c, void *buf, size_t len)
{
    struct mt_conn *k = (struct mt_conn *)c;
    size_t n = k->out_len - k->out_pos;
    uint64_t v;

    if (n == 0) {
        k->out_len = k->out_pos = 0;
        if (read(c->fd, &v, sizeof(v)) < 0) {
            /* not signalled: nothing to clear */
        }
        return -EAGAIN;
    }
    if (n > len)
        n = len;
    memcpy(buf, k->out + k->out_pos, n);
    k->out_pos += n;
    c->bytes_in += n;
    return (ssize_t)n;
}

static ssize_t mt_writev(struct stk_conn *c, const struct iovec *iov, int iovcnt)
{
    struct mt_conn *k = (struct mt_conn *)c;
    size_t total = 0, pos = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (k->in_len + iov[i].iov_len > k->in_cap) {
            k->in_cap = (k->in_len + iov[i].iov_len) * 2;
            k->in = xrealloc(k->in, k->in_cap);
        }
        memcpy(k->in + k->in_len, iov[i].iov_base, iov[i].iov_len);
        k->in_len += iov[i].iov_len;
        total += iov[i].iov_len;
    }
    /* frame and answer every complete PDU (we negotiate no digests) */
    while (k->in_len - pos >= ISC_BHS_LEN) {
        const uint8_t *h = k->in + pos;
        uint32_t ahs = isc_bhs_ahs_len(h), dsl = isc_bhs_dsl(h);
        size_t need = ISC_BHS_LEN + ahs + dsl + isc_pad4(dsl);
        if (k->in_len - pos < need)
            break;
        handle_pdu(k, h, h + ISC_BHS_LEN + ahs, dsl);
        pos += need;
    }
    memmove(k->in, k->in + pos, k->in_len - pos);
    k->in_len -= pos;
    c->bytes_out += total;
    return (ssize_t)total;
}

static int mt_connect_result(struct stk_conn *c)
{
    (void)c;
    return 0;
}

static uint32_t mt_events(struct stk_conn *c, bool want_read, bool want_write)
{
    (void)c;
    (void)want_read;
    (void)want_write;
    return EPOLLIN; /* writes never wait: the eventfd says when answers are ready */
}

static bool mt_pending(struct stk_conn *c)
{
    struct mt_conn *k = (struct mt_conn *)c;

    return k->out_pos < k->out_len;
}

static int mt_shutdown(struct stk_conn *c)
{
    (void)c;
    return 0;
}

static void mt_close(struct stk_conn *c, bool abort)
{
    struct mt_conn *k = (struct mt_conn *)c;

    (void)abort;
    if (k->t->conn == k)
        k->t->conn = NULL;
    for (int i = 0; i < MT_TASKS; i++)
        free(k->tasks[i].buf);
    close(c->fd);
    free(k->in);
    free(k->out);
    free(k);
}

static const struct stk_conn_ops mt_ops = {
    .level_triggered = false,
    .read = mt_read,
    .writev = mt_writev,
    .connect_result = mt_connect_result,
    .events = mt_events,
    .pending = mt_pending,
    .shutdown = mt_shutdown,
    .close = mt_close,
};

int memtgt_connect(void *arg, const char *owner, enum stk_policy policy, uint64_t reservation,
                   const struct sockaddr_in *dst, struct stk_conn **out, char *err,
                   size_t errlen)
{
    struct memtgt *t = arg;
    struct mt_conn *k;

    (void)owner;
    (void)policy;
    (void)reservation;
    if (t->conn) {
        snprintf(err, errlen, "memtarget takes one connection at a time");
        return -EBUSY;
    }
    k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    /* signalled from the start: the connect completes on the first poll */
    k->c.fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (k->c.fd < 0) {
        free(k);
        return -errno;
    }
    k->c.ops = &mt_ops;
    k->c.stack = STK_STACK_HOST;
    k->c.remote = *dst;
    k->c.local.sin_family = AF_INET;
    k->c.local.sin_addr.s_addr = htonl(0xc6336402); /* 198.51.100.2 */
    k->c.local.sin_port = htons(40001);
    k->t = t;
    k->statsn = MT_STATSN0;
    k->peer_max_dsl = 8192;
    k->max_burst = 262144;
    k->next_ttt = 1;
    t->conn = k;
    t->conns++;
    *out = &k->c;
    return 0;
}

void memtgt_release(void *arg, const char *owner, struct stk_conn *c, bool abort)
{
    (void)arg;
    (void)owner;
    stk_conn_close(c, abort);
}

struct memtgt *memtgt_new(uint32_t lun, uint32_t block_size, uint64_t blocks)
{
    struct memtgt *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->lun = lun;
    t->bs = block_size;
    t->blocks = blocks;
    t->data = calloc(blocks, block_size);
    if (!t->data) {
        free(t);
        return NULL;
    }
    return t;
}

void memtgt_free(struct memtgt *t)
{
    if (!t)
        return;
    free(t->data);
    free(t);
}

void memtgt_clear(struct memtgt *t)
{
    memset(t->data, 0, t->blocks * t->bs);
}

unsigned memtgt_connections(const struct memtgt *t)
{
    return t->conns;
}

bool memtgt_logged_in(const struct memtgt *t)
{
    return t->conn && t->conn->ffp;
}

uint64_t memtgt_pdus(const struct memtgt *t)
{
    return t->pdus;
}

bool memtgt_idle(const struct memtgt *t)
{
    const struct mt_conn *k = t->conn;

    if (!k)
        return true;
    if (k->out_pos < k->out_len || k->in_len)
        return false;
    for (int i = 0; i < MT_TASKS; i++)
        if (k->tasks[i].used)
            return false;
    return true;
}
