/*
 * pdu.h - iSCSI PDU codec (RFC 7143 §11): opcodes, Basic Header Segment field offsets,
 * byte-offset get/put helpers and CRC32C digests. No struct is ever cast over a buffer.
 */
#ifndef TOEGW_STORAGE_PDU_H
#define TOEGW_STORAGE_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/be.h"

#define ISC_BHS_LEN 48
#define ISC_DIGEST_LEN 4
/* The largest data segment any peer may declare (24-bit field) and our hard cap. */
#define ISC_MAX_DSL ((1u << 24) - 1)
#define ISC_RSVD_TAG 0xffffffffu

/* Opcodes: initiator to target. */
enum isc_opcode {
    ISC_OP_NOP_OUT = 0x00,
    ISC_OP_SCSI_CMD = 0x01,
    ISC_OP_TMF_REQ = 0x02,
    ISC_OP_LOGIN_REQ = 0x03,
    ISC_OP_TEXT_REQ = 0x04,
    ISC_OP_DATA_OUT = 0x05,
    ISC_OP_LOGOUT_REQ = 0x06,
    ISC_OP_SNACK = 0x10,
    /* target to initiator */
    ISC_OP_NOP_IN = 0x20,
    ISC_OP_SCSI_RSP = 0x21,
    ISC_OP_TMF_RSP = 0x22,
    ISC_OP_LOGIN_RSP = 0x23,
    ISC_OP_TEXT_RSP = 0x24,
    ISC_OP_DATA_IN = 0x25,
    ISC_OP_LOGOUT_RSP = 0x26,
    ISC_OP_R2T = 0x31,
    ISC_OP_ASYNC = 0x32,
    ISC_OP_REJECT = 0x3f,
};

/* BHS byte offsets shared by most PDUs. */
#define ISC_OFF_OPCODE 0
#define ISC_OFF_FLAGS 1
#define ISC_OFF_TOTAHS 4
#define ISC_OFF_DSL 5
#define ISC_OFF_LUN 8
#define ISC_OFF_ITT 16
#define ISC_OFF_TTT 20
#define ISC_OFF_STATSN 24  /* target PDUs */
#define ISC_OFF_EXPCMDSN 28
#define ISC_OFF_MAXCMDSN 32
#define ISC_OFF_CMDSN 24   /* initiator PDUs */
#define ISC_OFF_EXPSTATSN 28

#define ISC_OP_IMMEDIATE 0x40
#define ISC_FLAG_FINAL 0x80

/* SCSI Command flags (byte 1). */
#define ISC_CMD_READ 0x40
#define ISC_CMD_WRITE 0x20
#define ISC_CMD_ATTR_SIMPLE 0x01
#define ISC_OFF_CMD_EDTL 20
#define ISC_OFF_CDB 32

/* SCSI Response / Data-In flags (byte 1) and fields. */
#define ISC_RSP_BIDI_OVER 0x10
#define ISC_RSP_BIDI_UNDER 0x08
#define ISC_RSP_OVER 0x04
#define ISC_RSP_UNDER 0x02
#define ISC_DATAIN_ACK 0x40
#define ISC_DATAIN_STATUS 0x01
#define ISC_OFF_RSP_RESPONSE 2
#define ISC_OFF_RSP_STATUS 3
#define ISC_OFF_DATASN 36
#define ISC_OFF_BUFOFF 40
#define ISC_OFF_RESIDUAL 44
#define ISC_OFF_R2T_DDTL 44

/* Login. */
#define ISC_LOGIN_TRANSIT 0x80
#define ISC_LOGIN_CONTINUE 0x40
#define ISC_OFF_VMAX 2
#define ISC_OFF_VMIN 3
#define ISC_OFF_ISID 8
#define ISC_OFF_TSIH 14
#define ISC_OFF_CID 20
#define ISC_OFF_STATUS_CLASS 36
#define ISC_OFF_STATUS_DETAIL 37
enum isc_stage {
    ISC_STAGE_SECURITY = 0,
    ISC_STAGE_OPERATIONAL = 1,
    ISC_STAGE_FFP = 3,
};

/* Async message. */
#define ISC_OFF_ASYNC_EVENT 36
#define ISC_OFF_ASYNC_VCODE 37
#define ISC_OFF_ASYNC_PARAM1 38
#define ISC_OFF_ASYNC_PARAM2 40
#define ISC_OFF_ASYNC_PARAM3 42

/* Reject reason (byte 2). */
#define ISC_OFF_REJECT_REASON 2

/*
 * Byte-offset forms of common/be.h's helpers: the BHS is addressed by the field offsets
 * above, so the PDU code reads best as isc_get32(bhs, ISC_OFF_...).
 */
static inline uint8_t isc_get8(const uint8_t *b, size_t off) { return b[off]; }
static inline uint16_t isc_get16(const uint8_t *b, size_t off) { return be_get16(b + off); }
static inline uint32_t isc_get24(const uint8_t *b, size_t off) { return be_get24(b + off); }
static inline uint32_t isc_get32(const uint8_t *b, size_t off) { return be_get32(b + off); }
static inline uint64_t isc_get64(const uint8_t *b, size_t off) { return be_get64(b + off); }
static inline void isc_put8(uint8_t *b, size_t off, uint8_t v) { b[off] = v; }
static inline void isc_put16(uint8_t *b, size_t off, uint16_t v) { be_put16(b + off, v); }
static inline void isc_put24(uint8_t *b, size_t off, uint32_t v) { be_put24(b + off, v); }
static inline void isc_put32(uint8_t *b, size_t off, uint32_t v) { be_put32(b + off, v); }
static inline void isc_put64(uint8_t *b, size_t off, uint64_t v) { be_put64(b + off, v); }

static inline enum isc_opcode isc_bhs_opcode(const uint8_t *bhs)
{
    return (enum isc_opcode)(bhs[ISC_OFF_OPCODE] & 0x3f);
}

static inline uint32_t isc_bhs_dsl(const uint8_t *bhs) { return isc_get24(bhs, ISC_OFF_DSL); }

/* TotalAHSLength is in 4-byte words. */
static inline uint32_t isc_bhs_ahs_len(const uint8_t *bhs) { return 4u * bhs[ISC_OFF_TOTAHS]; }

static inline uint32_t isc_pad4(uint32_t n) { return (4 - (n & 3)) & 3; }

/* RFC 1982 serial number arithmetic on 32-bit sequence numbers. */
static inline bool isc_sn_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool isc_sn_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/*
 * Single-level LUN encoding (SAM): LUNs < 256 use the peripheral method, the rest the
 * flat space method. Returns the 8-byte wire value.
 */
uint64_t isc_lun_encode(uint32_t lun);
uint32_t isc_lun_decode(uint64_t wire);

/* CRC32C (Castagnoli) as iSCSI uses it: start with isc_crc32c(NULL,0,...) semantics below. */
#define ISC_CRC32C_INIT 0xffffffffu
/* Continue a running CRC over buf; pass ISC_CRC32C_INIT first. */
uint32_t isc_crc32c_update(uint32_t crc, const void *buf, size_t len);
/* Finish a running CRC into the value placed on the wire (little-endian bytes). */
static inline uint32_t isc_crc32c_final(uint32_t crc) { return ~crc; }
/* One-shot digest of buf. */
uint32_t isc_crc32c(const void *buf, size_t len);
/* Digest as it appears on the wire: the CRC's bytes, least significant first. */
void isc_digest_put(uint8_t *out, uint32_t digest);
uint32_t isc_digest_get(const uint8_t *in);

const char *isc_opcode_name(enum isc_opcode op);

#endif
