/*
 * fuzz_scsi.c - the SCSI response decoders (storage/scsi.c) and the status/sense check
 * (sto_scsi_check): sense data, INQUIRY, the VPD pages (supported pages, unit serial
 * number, device identification, block limits), READ CAPACITY (10) and (16), REPORT LUNS;
 * plus the READ/WRITE CDB builders.
 *
 * Input: byte 0 selects the output capacities and the SCSI status, bytes 1..12 are an LBA
 * and a block count for the CDB builders, the rest is one response buffer that every
 * decoder reads. The buffer and every output array are heap blocks of exactly their size,
 * so a read or write past them is caught. Properties: a decoder never reports more than
 * the buffer holds (REPORT LUNS: entries within the bytes and the list length), strings it
 * returns fit and are printable, an accepted capacity is a usable block device, messages
 * are one printable line, and a CDB carries back the LBA and length it was built from.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/iscsi.h"
#include "storage/lun.h"
#include "storage/pdu.h"
#include "storage/scsi.h"
#include "tests/fuzz/fuzz.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        abort();
    return p;
}

static void check_str(const char *s, size_t cap, const char *what)
{
    size_t n = strnlen(s, cap);

    FUZZ_CHECK(n < cap, "%s is not terminated within its %zu bytes", what, cap);
    FUZZ_CHECK(fuzz_printable_line(s, n), "%s is not printable", what);
}

static void check_cdbs(uint64_t lba, uint32_t blocks)
{
    uint8_t cdb[16];
    int n = scsi_cdb_read(cdb, lba, blocks, blocks & 1);

    if (n == 10) {
        FUZZ_CHECK(isc_get32(cdb, 2) == lba && isc_get16(cdb, 7) == blocks,
                   "read(10) cdb does not carry lba %llu blocks %u", (unsigned long long)lba,
                   blocks);
        FUZZ_CHECK(lba + blocks <= 0xffffffffull, "read(10) for a range beyond 32 bits");
    } else {
        FUZZ_CHECK(n == 16 && isc_get64(cdb, 2) == lba && isc_get32(cdb, 10) == blocks,
                   "read(16) cdb does not carry lba %llu blocks %u", (unsigned long long)lba,
                   blocks);
    }
    n = scsi_cdb_write(cdb, lba, blocks, false);
    FUZZ_CHECK(n == 10 || n == 16, "write cdb of %d bytes", n);
    n = scsi_cdb_sync_cache(cdb, lba, blocks);
    FUZZ_CHECK(n == 10 || n == 16, "sync cache cdb of %d bytes", n);
}

static void check_capacity(int ret, const struct scsi_capacity *c, const char *what)
{
    char why[128];

    FUZZ_CHECK(ret == 0 || ret == -EPROTO || ret == -ERANGE, "%s returned %d", what, ret);
    if (ret == 0) {
        FUZZ_CHECK(scsi_capacity_problem(c, NULL, 0) == NULL, "%s accepted a bad capacity",
                   what);
        FUZZ_CHECK(c->block_size && !(c->block_size & (c->block_size - 1)) &&
                       c->blocks <= UINT64_MAX / c->block_size,
                   "%s: %llu blocks of %u", what, (unsigned long long)c->blocks,
                   c->block_size);
    } else if (ret == -ERANGE) {
        const char *p = scsi_capacity_problem(c, why, sizeof(why));
        FUZZ_CHECK(p && fuzz_printable_line(p, strlen(p)), "%s: -ERANGE without a reason",
                   what);
    }
}

int fuzz_scsi(const uint8_t *data, size_t size)
{
    static const size_t lun_max[] = { 0, 1, 4, 256 };
    static const size_t str_cap[] = { 1, 8, 17, 64, 80 };
    static const uint8_t statuses[] = { 0x00, 0x02, 0x08, 0x18, 0x28, 0x40 };
    const size_t hdr = 13;
    struct scsi_sense sense;
    struct scsi_inquiry inq;
    struct scsi_capacity cap;
    struct scsi_block_limits bl;
    struct isc_scsi_result res;
    uint8_t *buf, sel;
    uint32_t *luns;
    size_t len, max, scap;
    char msg[320], *str;
    int ret;

    if (size < hdr)
        return 0;
    sel = data[0];
    check_cdbs(isc_get64(data, 1), isc_get32(data, 9));
    len = size - hdr;
    buf = xmalloc(len);
    memcpy(buf, data + hdr, len);

    scsi_sense_decode(buf, len, &sense);
    FUZZ_CHECK(sense.key <= 15, "sense key %u", sense.key);
    scsi_sense_str(&sense, msg, sizeof(msg));
    check_str(msg, sizeof(msg), "sense text");

    ret = scsi_parse_inquiry(buf, len, &inq);
    FUZZ_CHECK((ret == 0) == (len >= 36), "inquiry of %zu bytes returned %d", len, ret);
    if (ret == 0) {
        check_str(inq.vendor, sizeof(inq.vendor), "inquiry vendor");
        check_str(inq.product, sizeof(inq.product), "inquiry product");
        check_str(inq.revision, sizeof(inq.revision), "inquiry revision");
        FUZZ_CHECK(scsi_type_name(inq.peripheral_type) != NULL, "type without a name");
    }

    check_capacity(scsi_parse_read_capacity10(buf, len, &cap), &cap, "read capacity(10)");
    check_capacity(scsi_parse_read_capacity16(buf, len, &cap), &cap, "read capacity(16)");

    max = lun_max[sel & 3];
    luns = xmalloc(max * sizeof(*luns));
    ret = scsi_parse_report_luns(buf, len, luns, max);
    if (ret >= 0) {
        FUZZ_CHECK((uint64_t)ret * 8 + 8 <= len, "report luns: %d entries in %zu bytes", ret,
                   len);
        FUZZ_CHECK((uint32_t)ret <= scsi_report_luns_listed(buf, len),
                   "report luns: %d entries, more than the %u listed", ret,
                   scsi_report_luns_listed(buf, len));
        for (int i = 0; i < ret && (size_t)i < max; i++)
            FUZZ_CHECK(luns[i] <= 0xffff, "lun %u", luns[i]);
    } else {
        FUZZ_CHECK(ret == -EPROTO, "report luns returned %d", ret);
    }
    free(luns);

    scsi_parse_block_limits(buf, len, &bl);

    scap = str_cap[(sel >> 2) % (sizeof(str_cap) / sizeof(str_cap[0]))];
    str = xmalloc(scap);
    if (scsi_parse_serial(buf, len, str, scap) == 0)
        check_str(str, scap, "unit serial number");
    free(str);
    scap = str_cap[(sel >> 5) % (sizeof(str_cap) / sizeof(str_cap[0]))];
    str = xmalloc(scap);
    if (scsi_parse_device_id(buf, len, str, scap) == 0) {
        check_str(str, scap, "device identifier");
        FUZZ_CHECK(!strncmp(str, "naa.", 4) || !strncmp(str, "eui.", 4),
                   "device identifier \"%s\"", str);
    }
    free(str);
    (void)scsi_vpd_supported(buf, len, 0x80);
    (void)scsi_vpd_supported(buf, len, 0x83);
    (void)scsi_vpd_supported(buf, len, sel);

    /* the same bytes as the sense data of a finished command */
    memset(&res, 0, sizeof(res));
    res.status = statuses[sel % sizeof(statuses)];
    res.sense_len = len < ISC_SENSE_MAX ? (uint32_t)len : ISC_SENSE_MAX;
    memcpy(res.sense, buf, res.sense_len);
    msg[0] = '\0';
    ret = sto_scsi_check(&res, "command", msg, sizeof(msg));
    FUZZ_CHECK(ret <= 0, "scsi check returned %d", ret);
    if (ret < 0)
        check_str(msg, sizeof(msg), "scsi check message");
    free(buf);
    return 0;
}
