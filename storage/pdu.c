/*
 * pdu.c - LUN encoding, CRC32C digests (ISA-L's crc32_iscsi) and opcode names.
 */
#include "storage/pdu.h"

#include <isa-l/crc.h>

uint64_t isc_lun_encode(uint32_t lun)
{
    if (lun < 256)
        return (uint64_t)lun << 48;
    return ((uint64_t)(0x4000 | (lun & 0x3fff))) << 48;
}

uint32_t isc_lun_decode(uint64_t wire)
{
    uint16_t first = (uint16_t)(wire >> 48);

    switch (first >> 14) {
    case 0: /* peripheral device addressing: bus 0 only */
        return first & 0xff;
    case 1: /* flat space */
        return first & 0x3fff;
    default:
        return first; /* other methods are not used by the targets we talk to */
    }
}

/*
 * ISA-L's crc32_iscsi takes and returns the CRC register without the final inversion, so
 * it chains across buffers; the caller inverts once at the end.
 */
uint32_t isc_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        crc = crc32_iscsi((unsigned char *)p, chunk, crc);
        p += chunk;
        len -= (size_t)chunk;
    }
    return crc;
}

uint32_t isc_crc32c(const void *buf, size_t len)
{
    return isc_crc32c_final(isc_crc32c_update(ISC_CRC32C_INIT, buf, len));
}

void isc_digest_put(uint8_t *out, uint32_t digest)
{
    out[0] = (uint8_t)digest;
    out[1] = (uint8_t)(digest >> 8);
    out[2] = (uint8_t)(digest >> 16);
    out[3] = (uint8_t)(digest >> 24);
}

uint32_t isc_digest_get(const uint8_t *in)
{
    return (uint32_t)in[0] | ((uint32_t)in[1] << 8) | ((uint32_t)in[2] << 16) |
           ((uint32_t)in[3] << 24);
}

const char *isc_opcode_name(enum isc_opcode op)
{
    switch (op) {
    case ISC_OP_NOP_OUT: return "nop-out";
    case ISC_OP_SCSI_CMD: return "scsi-command";
    case ISC_OP_TMF_REQ: return "task-management-request";
    case ISC_OP_LOGIN_REQ: return "login-request";
    case ISC_OP_TEXT_REQ: return "text-request";
    case ISC_OP_DATA_OUT: return "data-out";
    case ISC_OP_LOGOUT_REQ: return "logout-request";
    case ISC_OP_SNACK: return "snack";
    case ISC_OP_NOP_IN: return "nop-in";
    case ISC_OP_SCSI_RSP: return "scsi-response";
    case ISC_OP_TMF_RSP: return "task-management-response";
    case ISC_OP_LOGIN_RSP: return "login-response";
    case ISC_OP_TEXT_RSP: return "text-response";
    case ISC_OP_DATA_IN: return "data-in";
    case ISC_OP_LOGOUT_RSP: return "logout-response";
    case ISC_OP_R2T: return "r2t";
    case ISC_OP_ASYNC: return "async-message";
    case ISC_OP_REJECT: return "reject";
    }
    return "unknown";
}
