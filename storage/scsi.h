/*
 * scsi.h - SCSI command blocks (SPC-4/SBC-3) the initiator issues, and decoders for
 * what comes back: sense data, INQUIRY (standard and VPD), READ CAPACITY, REPORT LUNS.
 * Pure functions over buffers: every decoder checks lengths before reading.
 */
#ifndef TOEGW_STORAGE_SCSI_H
#define TOEGW_STORAGE_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCSI_TEST_UNIT_READY 0x00
#define SCSI_INQUIRY 0x12
#define SCSI_READ_CAPACITY10 0x25
#define SCSI_READ10 0x28
#define SCSI_WRITE10 0x2a
#define SCSI_SYNC_CACHE10 0x35
#define SCSI_WRITE_SAME10 0x41
#define SCSI_UNMAP 0x42
#define SCSI_READ16 0x88
#define SCSI_WRITE16 0x8a
#define SCSI_SYNC_CACHE16 0x91
#define SCSI_WRITE_SAME16 0x93
#define SCSI_SERVICE_IN16 0x9e
#define SCSI_SAI_READ_CAPACITY16 0x10
#define SCSI_REPORT_LUNS 0xa0

#define SCSI_TYPE_DISK 0x00
#define SCSI_TYPE_CONTROLLER 0x0c

#define SCSI_STATUS_GOOD 0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02
#define SCSI_STATUS_BUSY 0x08
#define SCSI_STATUS_RESERVATION_CONFLICT 0x18
#define SCSI_STATUS_TASK_SET_FULL 0x28

#define SCSI_SENSE_NO_SENSE 0x0
#define SCSI_SENSE_RECOVERED 0x1
#define SCSI_SENSE_NOT_READY 0x2
#define SCSI_SENSE_MEDIUM_ERROR 0x3
#define SCSI_SENSE_HARDWARE_ERROR 0x4
#define SCSI_SENSE_ILLEGAL_REQUEST 0x5
#define SCSI_SENSE_UNIT_ATTENTION 0x6
#define SCSI_SENSE_DATA_PROTECT 0x7
#define SCSI_SENSE_ABORTED_COMMAND 0xb

/* CDB builders: fill cdb and return its length. */
int scsi_cdb_tur(uint8_t *cdb);
int scsi_cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc);
int scsi_cdb_read_capacity10(uint8_t *cdb);
int scsi_cdb_read_capacity16(uint8_t *cdb, uint32_t alloc);
int scsi_cdb_report_luns(uint8_t *cdb, uint32_t alloc);
/* READ/WRITE 10 when lba and blocks fit, else 16. fua sets Force Unit Access. */
int scsi_cdb_read(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool fua);
int scsi_cdb_write(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool fua);
int scsi_cdb_sync_cache(uint8_t *cdb, uint64_t lba, uint32_t blocks);
/* WRITE SAME(16) of one block over `blocks`, optionally unmapping. */
int scsi_cdb_write_same16(uint8_t *cdb, uint64_t lba, uint32_t blocks, bool unmap);
/* UNMAP with a parameter list of one descriptor written into param (24 bytes). */
int scsi_cdb_unmap(uint8_t *cdb, uint8_t *param, uint64_t lba, uint32_t blocks);
#define SCSI_UNMAP_PARAM_LEN 24

struct scsi_sense {
    bool valid;
    uint8_t key;
    uint8_t asc, ascq;
};

/* Decode fixed (0x70/0x71) or descriptor (0x72/0x73) sense. */
void scsi_sense_decode(const uint8_t *buf, size_t len, struct scsi_sense *out);
/* "illegal request: logical block address out of range (0x21/0x00)" into buf. */
const char *scsi_sense_str(const struct scsi_sense *s, char *buf, size_t len);
const char *scsi_sense_key_name(uint8_t key);
const char *scsi_status_name(uint8_t status);
/* "disk", "storage array controller", ... for a peripheral device type. */
const char *scsi_type_name(uint8_t type);

struct scsi_inquiry {
    uint8_t peripheral_type;  /* 0: direct-access block device */
    uint8_t peripheral_qual;  /* 0 connected, 1 not connected, 3 no LUN */
    char vendor[9];
    char product[17];
    char revision[5];
};
int scsi_parse_inquiry(const uint8_t *buf, size_t len, struct scsi_inquiry *out);

struct scsi_capacity {
    uint64_t blocks;        /* number of logical blocks */
    uint32_t block_size;
    bool thin;              /* LBPME: the LUN supports UNMAP / WRITE SAME unmap */
    uint8_t lbppbe;         /* physical block exponent */
};
/* -EPROTO when too short, -ERANGE when scsi_capacity_problem() has something to say. */
int scsi_parse_read_capacity10(const uint8_t *buf, size_t len, struct scsi_capacity *out);
int scsi_parse_read_capacity16(const uint8_t *buf, size_t len, struct scsi_capacity *out);
#define SCSI_BLOCK_SIZE_MIN 512u
#define SCSI_BLOCK_SIZE_MAX (1024u * 1024u)
/* NULL when the capacity is usable as a volume, else why not (into buf, when given). */
const char *scsi_capacity_problem(const struct scsi_capacity *c, char *buf, size_t len);

/*
 * REPORT LUNS: up to max LUN numbers into luns; returns how many entries the len bytes hold
 * (never more than the list length says). scsi_report_luns_listed() is how many the target
 * says it has, which may be more than fit (ask again with a larger allocation) or a lie.
 */
int scsi_parse_report_luns(const uint8_t *buf, size_t len, uint32_t *luns, size_t max);
uint32_t scsi_report_luns_listed(const uint8_t *buf, size_t len);

/* Block Limits VPD (0xB0). Zero means "not reported". */
struct scsi_block_limits {
    uint32_t max_transfer_blocks;
    uint32_t opt_transfer_blocks;
    uint32_t max_unmap_blocks;
    uint32_t max_unmap_descriptors;
    uint64_t max_write_same_blocks;
};
int scsi_parse_block_limits(const uint8_t *buf, size_t len, struct scsi_block_limits *out);

/* Unit serial number VPD (0x80) into out (NUL-terminated, trimmed). */
int scsi_parse_serial(const uint8_t *buf, size_t len, char *out, size_t cap);
/* Device identification VPD (0x83): the best NAA/EUI designator as hex "naa.<hex>". */
int scsi_parse_device_id(const uint8_t *buf, size_t len, char *out, size_t cap);
/*
 * A VPD page as it came back (got bytes of the alloc asked for): -EPROTO and the reason when
 * it is another page, or claims more than it sent although there was room for it.
 */
int scsi_vpd_check(const uint8_t *buf, size_t got, size_t alloc, uint8_t page, char *err,
                   size_t errlen);
/* Supported VPD pages (0x00): whether `page` is listed. */
bool scsi_vpd_supported(const uint8_t *buf, size_t len, uint8_t page);

#endif
