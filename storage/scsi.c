/*
 * scsi.c - CDB builders and response decoders (SPC-4, SBC-3).
 */
#include "storage/scsi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/be.h"
#include "storage/pdu.h"

int scsi_cdb_tur(uint8_t *cdb)
{
    memset(cdb, 0, 6);
    return 6;
}

int scsi_cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc)
{
    memset(cdb, 0, 6);
    cdb[0] = SCSI_INQUIRY;
    cdb[1] = evpd ? 1 : 0;
    cdb[2] = page;
    be_put16(cdb + 3, alloc);
    return 6;
}

int scsi_cdb_read_capacity10(uint8_t *cdb)
{
    memset(cdb, 0, 10);
    cdb[0] = SCSI_READ_CAPACITY10;
    return 10;
}

int scsi_cdb_read_capacity16(uint8_t *cdb, uint32_t alloc)
{
    memset(cdb, 0, 16);
    cdb[0] = SCSI_SERVICE_IN16;
    cdb[1] = SCSI_SAI_READ_CAPACITY16;
    be_put32(cdb + 10, alloc);
    return 16;
}

int scsi_cdb_report_luns(uint8_t *cdb, uint32_t alloc)
{
    memset(cdb, 0, 12);
    cdb[0] = SCSI_REPORT_LUNS;
    be_put32(cdb + 6, alloc);
    return 12;
}

static int cdb_rw(uint8_t *cdb, uint8_t op10, uint8_t op16, uint64_t lba, uint32_t blocks,
                  bool fua)
{
    if (blocks <= 0xffff && lba <= 0xffffffffull - blocks) {
        memset(cdb, 0, 10);
        cdb[0] = op10;
        cdb[1] = fua ? 0x08 : 0;
        be_put32(cdb + 2, (uint32_t)lba);
        be_put16(cdb + 7, (uint16_t)blocks);
        return 10;
    }
    memset(cdb, 0, 16);
    cdb[0] = op16;
    cdb[1] = fua ? 0x08 : 0;
    be_put64(cdb + 2, lba);
    be_put32(cdb + 10, blocks);
    return 16;
}

int scsi_cdb_read(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool fua)
{
    return cdb_rw(cdb, SCSI_READ10, SCSI_READ16, lba, blocks, fua);
}

int scsi_cdb_write(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool fua)
{
    return cdb_rw(cdb, SCSI_WRITE10, SCSI_WRITE16, lba, blocks, fua);
}

int scsi_cdb_sync_cache(uint8_t *cdb, uint64_t lba, uint32_t blocks)
{
    if (lba <= 0xffffffffull && blocks <= 0xffff) {
        memset(cdb, 0, 10);
        cdb[0] = SCSI_SYNC_CACHE10;
        be_put32(cdb + 2, (uint32_t)lba);
        be_put16(cdb + 7, (uint16_t)blocks);
        return 10;
    }
    memset(cdb, 0, 16);
    cdb[0] = SCSI_SYNC_CACHE16;
    be_put64(cdb + 2, lba);
    be_put32(cdb + 10, blocks);
    return 16;
}

int scsi_cdb_write_same16(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool unmap)
{
    memset(cdb, 0, 16);
    cdb[0] = SCSI_WRITE_SAME16;
    cdb[1] = unmap ? 0x08 : 0;
    be_put64(cdb + 2, lba);
    be_put32(cdb + 10, blocks);
    return 16;
}

int scsi_cdb_unmap(uint8_t *cdb, uint8_t *param, uint64_t lba, uint32_t blocks)
{
    memset(cdb, 0, 10);
    cdb[0] = SCSI_UNMAP;
    be_put16(cdb + 7, SCSI_UNMAP_PARAM_LEN);
    memset(param, 0, SCSI_UNMAP_PARAM_LEN);
    be_put16(param, SCSI_UNMAP_PARAM_LEN - 2); /* unmap data length */
    be_put16(param + 2, 16);                       /* block descriptor data length */
    be_put64(param + 8, lba);
    be_put32(param + 16, blocks);
    return 10;
}

void scsi_sense_decode(const uint8_t *buf, size_t len, struct scsi_sense *out)
{
    uint8_t code;

    memset(out, 0, sizeof(*out));
    if (len < 3)
        return;
    code = buf[0] & 0x7f;
    if (code == 0x70 || code == 0x71) {
        out->key = buf[2] & 0x0f;
        if (len >= 14) {
            out->asc = buf[12];
            out->ascq = buf[13];
        }
        out->valid = true;
    } else if (code == 0x72 || code == 0x73) {
        out->key = buf[1] & 0x0f;
        out->asc = buf[2];
        out->ascq = len >= 4 ? buf[3] : 0;
        out->valid = true;
    }
}

const char *scsi_sense_key_name(uint8_t key)
{
    static const char *const names[16] = {
        "no sense", "recovered error", "not ready", "medium error", "hardware error",
        "illegal request", "unit attention", "data protect", "blank check",
        "vendor specific", "copy aborted", "aborted command", "reserved", "volume overflow",
        "miscompare", "completed",
    };
    return names[key & 15];
}

const char *scsi_status_name(uint8_t status)
{
    switch (status) {
    case 0x00: return "good";
    case 0x02: return "check condition";
    case 0x04: return "condition met";
    case 0x08: return "busy";
    case 0x18: return "reservation conflict";
    case 0x28: return "task set full";
    case 0x30: return "aca active";
    case 0x40: return "task aborted";
    default: return "unknown status";
    }
}

const char *scsi_type_name(uint8_t type)
{
    switch (type) {
    case 0x00: return "disk";
    case 0x01: return "tape";
    case 0x05: return "cd/dvd";
    case 0x08: return "medium changer";
    case 0x0c: return "storage array controller";
    case 0x0d: return "enclosure services";
    case 0x1f: return "unknown";
    default: return "other";
    }
}

/* The additional sense codes an operator is most likely to meet. */
static const char *asc_name(uint8_t asc, uint8_t ascq)
{
    static const struct { uint8_t asc, ascq; const char *name; } codes[] = {
        { 0x04, 0x00, "logical unit not ready" },
        { 0x04, 0x01, "logical unit becoming ready" },
        { 0x04, 0x02, "logical unit not ready, initializing command required" },
        { 0x0c, 0x00, "write error" },
        { 0x11, 0x00, "unrecovered read error" },
        { 0x1a, 0x00, "parameter list length error" },
        { 0x20, 0x00, "invalid command operation code" },
        { 0x21, 0x00, "logical block address out of range" },
        { 0x24, 0x00, "invalid field in cdb" },
        { 0x25, 0x00, "logical unit not supported" },
        { 0x26, 0x00, "invalid field in parameter list" },
        { 0x27, 0x00, "write protected" },
        { 0x28, 0x00, "not ready to ready change, medium may have changed" },
        { 0x29, 0x00, "power on, reset, or bus device reset occurred" },
        { 0x29, 0x01, "power on occurred" },
        { 0x2a, 0x01, "mode parameters changed" },
        { 0x2a, 0x09, "capacity data has changed" },
        { 0x3a, 0x00, "medium not present" },
        { 0x3f, 0x0e, "reported luns data has changed" },
        { 0x44, 0x00, "internal target failure" },
        { 0x55, 0x03, "insufficient resources" },
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].asc == asc && codes[i].ascq == ascq)
            return codes[i].name;
    return NULL;
}

const char *scsi_sense_str(const struct scsi_sense *s, char *buf, size_t len)
{
    const char *an;

    if (!s->valid) {
        snprintf(buf, len, "no sense data");
        return buf;
    }
    an = asc_name(s->asc, s->ascq);
    snprintf(buf, len, "%s: %s (asc 0x%02x/0x%02x)", scsi_sense_key_name(s->key),
             an ? an : "additional sense", s->asc, s->ascq);
    return buf;
}

/* Copy a space-padded ASCII field, trimming trailing spaces. */
static void copy_ascii(char *dst, const uint8_t *src, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : ' ';
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

int scsi_parse_inquiry(const uint8_t *buf, size_t len, struct scsi_inquiry *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 36)
        return -EPROTO;
    out->peripheral_qual = buf[0] >> 5;
    out->peripheral_type = buf[0] & 0x1f;
    copy_ascii(out->vendor, buf + 8, 8);
    copy_ascii(out->product, buf + 16, 16);
    copy_ascii(out->revision, buf + 32, 4);
    return 0;
}

int scsi_parse_read_capacity10(const uint8_t *buf, size_t len, struct scsi_capacity *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 8)
        return -EPROTO;
    out->blocks = (uint64_t)be_get32(buf) + 1;
    out->block_size = be_get32(buf + 4);
    return scsi_capacity_problem(out, NULL, 0) ? -ERANGE : 0;
}

int scsi_parse_read_capacity16(const uint8_t *buf, size_t len, struct scsi_capacity *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 32)
        return -EPROTO;
    out->blocks = be_get64(buf) + 1;
    out->block_size = be_get32(buf + 8);
    out->lbppbe = buf[13] & 0x0f;
    out->thin = buf[14] & 0x80;
    return scsi_capacity_problem(out, NULL, 0) ? -ERANGE : 0;
}

/*
 * A capacity is exported as a block device whose size is blocks * block_size bytes in 64
 * bits: the block size must be a power of two a block layer takes, and the size must not
 * overflow. Returns NULL when usable, else the reason (written into buf when given).
 */
const char *scsi_capacity_problem(const struct scsi_capacity *c, char *buf, size_t len)
{
    if (!buf) {
        static char unusable[] = "unusable capacity";
        buf = NULL;
        len = 0;
        if (c->block_size < SCSI_BLOCK_SIZE_MIN || c->block_size > SCSI_BLOCK_SIZE_MAX ||
            (c->block_size & (c->block_size - 1)) || c->blocks == 0 ||
            c->blocks > (uint64_t)INT64_MAX / c->block_size)
            return unusable;
        return NULL;
    }
    if (c->block_size < SCSI_BLOCK_SIZE_MIN || c->block_size > SCSI_BLOCK_SIZE_MAX ||
        (c->block_size & (c->block_size - 1))) {
        snprintf(buf, len, "block size %u is not a power of two from %u to %u",
                 c->block_size, SCSI_BLOCK_SIZE_MIN, SCSI_BLOCK_SIZE_MAX);
        return buf;
    }
    if (c->blocks == 0 || c->blocks > (uint64_t)INT64_MAX / c->block_size) {
        snprintf(buf, len, "capacity of %llu blocks of %u bytes is out of range",
                 (unsigned long long)c->blocks, c->block_size);
        return buf;
    }
    return NULL;
}

int scsi_parse_report_luns(const uint8_t *buf, size_t len, uint32_t *luns, size_t max)
{
    uint32_t list_len;
    size_t n = 0;

    if (len < 8)
        return -EPROTO;
    list_len = be_get32(buf);
    if (list_len % 8)
        return -EPROTO;
    for (size_t off = 8; off + 8 <= len && off - 8 < list_len && n < INT32_MAX; off += 8) {
        if (n < max)
            luns[n] = isc_lun_decode(be_get64(buf + off));
        n++;
    }
    return (int)n;
}

uint32_t scsi_report_luns_listed(const uint8_t *buf, size_t len)
{
    return len < 8 ? 0 : be_get32(buf) / 8;
}

int scsi_parse_block_limits(const uint8_t *buf, size_t len, struct scsi_block_limits *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 4 || buf[1] != 0xb0)
        return -EPROTO;
    if (len >= 12)
        out->max_transfer_blocks = be_get32(buf + 8);
    if (len >= 16)
        out->opt_transfer_blocks = be_get32(buf + 12);
    if (len >= 28) {
        out->max_unmap_blocks = be_get32(buf + 20);
        out->max_unmap_descriptors = be_get32(buf + 24);
    }
    if (len >= 44)
        out->max_write_same_blocks = be_get64(buf + 36);
    return 0;
}

int scsi_parse_serial(const uint8_t *buf, size_t len, char *out, size_t cap)
{
    size_t n;

    if (len < 4 || buf[1] != 0x80 || cap == 0)
        return -EPROTO;
    n = be_get16(buf + 2);
    if (n > len - 4)
        n = len - 4;
    /* SPC-4 serials are right-aligned: drop the padding in front too */
    size_t skip = 0;
    while (skip < n && buf[4 + skip] == ' ')
        skip++;
    n -= skip;
    if (n > cap - 1)
        n = cap - 1;
    copy_ascii(out, buf + 4 + skip, n);
    return 0;
}

int scsi_parse_device_id(const uint8_t *buf, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t end, off, best_off = 0, best_len = 0;
    int best_rank = -1;

    if (len < 4 || buf[1] != 0x83 || cap < 8)
        return -EPROTO;
    end = 4 + (size_t)be_get16(buf + 2);
    if (end > len)
        end = len;
    for (off = 4; off + 4 <= end; off += 4 + buf[off + 3]) {
        uint8_t codeset = buf[off] & 0x0f, type = buf[off + 1] & 0x0f;
        uint8_t assoc = (buf[off + 1] >> 4) & 3, dlen = buf[off + 3];
        int rank = -1;
        if (off + 4 + dlen > end)
            break;
        if (assoc != 0 || codeset != 1)
            continue; /* only binary designators of the logical unit */
        if (type == 3)
            rank = 2; /* NAA */
        else if (type == 2)
            rank = 1; /* EUI-64 */
        if (rank > best_rank) {
            best_rank = rank;
            best_off = off + 4;
            best_len = dlen;
        }
    }
    if (best_rank < 0)
        return -ENOENT;
    size_t pos = (size_t)snprintf(out, cap, best_rank == 2 ? "naa." : "eui.");
    for (size_t i = 0; i < best_len && pos + 2 < cap; i++) {
        out[pos++] = hex[buf[best_off + i] >> 4];
        out[pos++] = hex[buf[best_off + i] & 15];
    }
    out[pos] = '\0';
    return 0;
}

bool scsi_vpd_supported(const uint8_t *buf, size_t len, uint8_t page)
{
    size_t n;

    if (len < 4 || buf[1] != 0x00)
        return false;
    n = be_get16(buf + 2);
    for (size_t i = 0; i < n && 4 + i < len; i++)
        if (buf[4 + i] == page)
            return true;
    return false;
}

int scsi_vpd_check(const uint8_t *buf, size_t got, size_t alloc, uint8_t page, char *err,
                   size_t errlen)
{
    if (got < 4) {
        snprintf(err, errlen, "vpd page 0x%02x: %zu bytes, fewer than its 4-byte header", page,
                 got);
        return -EPROTO;
    }
    if (buf[1] != page) {
        snprintf(err, errlen, "vpd page 0x%02x came back as page 0x%02x", page, buf[1]);
        return -EPROTO;
    }
    size_t len = 4 + (size_t)be_get16(buf + 2);
    if (len > got && got < alloc) {
        snprintf(err, errlen, "vpd page 0x%02x claims %zu bytes but sent %zu", page, len, got);
        return -EPROTO;
    }
    return 0;
}
