/*
 * test_pdu.c - the PDU codec: byte-offset helpers, serial numbers, LUN encoding and
 * CRC32C digests against the RFC 3720 Appendix B.4 vectors.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "storage/pdu.h"

/* ---------------------------------------------------------------- get/put helpers */

Test(pdu, put_get_8_16_24)
{
    uint8_t b[8];

    memset(b, 0xee, sizeof(b));
    isc_put8(b, 1, 0xa5);
    cr_assert_eq(b[1], 0xa5);
    cr_assert_eq(isc_get8(b, 1), 0xa5);
    cr_assert_eq(b[0], 0xee, "put8 wrote outside its byte");
    cr_assert_eq(b[2], 0xee, "put8 wrote outside its byte");

    memset(b, 0xee, sizeof(b));
    isc_put16(b, 2, 0x1234);
    cr_assert_eq(b[2], 0x12);
    cr_assert_eq(b[3], 0x34);
    cr_assert_eq(isc_get16(b, 2), 0x1234);
    cr_assert_eq(b[1], 0xee);
    cr_assert_eq(b[4], 0xee);

    memset(b, 0xee, sizeof(b));
    isc_put24(b, 1, 0xabcdef);
    cr_assert_eq(b[1], 0xab);
    cr_assert_eq(b[2], 0xcd);
    cr_assert_eq(b[3], 0xef);
    cr_assert_eq(isc_get24(b, 1), 0xabcdef);
    cr_assert_eq(b[0], 0xee);
    cr_assert_eq(b[4], 0xee);
    /* the 24-bit field holds exactly 24 bits */
    isc_put24(b, 1, 0xffffff);
    cr_assert_eq(isc_get24(b, 1), 0xffffffu);
}

Test(pdu, put_get_32_64)
{
    static const uint8_t want32[4] = { 0xde, 0xad, 0xbe, 0xef };
    static const uint8_t want64[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    uint8_t b[12];

    memset(b, 0, sizeof(b));
    isc_put32(b, 3, 0xdeadbeef);
    cr_assert_arr_eq(b + 3, want32, 4);
    cr_assert_eq(isc_get32(b, 3), 0xdeadbeefu);
    cr_assert_eq(b[2], 0);
    cr_assert_eq(b[7], 0);

    memset(b, 0, sizeof(b));
    isc_put64(b, 2, 0x0123456789abcdefull);
    cr_assert_arr_eq(b + 2, want64, 8);
    cr_assert_eq(isc_get64(b, 2), 0x0123456789abcdefull);
    cr_assert_eq(b[1], 0);
    cr_assert_eq(b[10], 0);

    /* high bits survive (no sign extension through int promotion) */
    isc_put32(b, 0, 0xffffffffu);
    cr_assert_eq(isc_get32(b, 0), 0xffffffffu);
    isc_put64(b, 0, UINT64_MAX);
    cr_assert_eq(isc_get64(b, 0), UINT64_MAX);
    isc_put16(b, 0, 0xffff);
    cr_assert_eq(isc_get16(b, 0), 0xffff);
}

Test(pdu, bhs_accessors)
{
    uint8_t bhs[ISC_BHS_LEN] = { 0 };

    bhs[ISC_OFF_OPCODE] = ISC_OP_IMMEDIATE | ISC_OP_LOGIN_REQ;
    cr_assert_eq(isc_bhs_opcode(bhs), ISC_OP_LOGIN_REQ, "the I bit is not part of the opcode");
    bhs[ISC_OFF_OPCODE] = 0x80 | ISC_OP_REJECT;
    cr_assert_eq(isc_bhs_opcode(bhs), ISC_OP_REJECT);
    isc_put24(bhs, ISC_OFF_DSL, 0x012345);
    cr_assert_eq(isc_bhs_dsl(bhs), 0x012345u);
    bhs[ISC_OFF_TOTAHS] = 3;
    cr_assert_eq(isc_bhs_ahs_len(bhs), 12u, "TotalAHSLength counts 4-byte words");
}

Test(pdu, pad4)
{
    cr_assert_eq(isc_pad4(0), 0u);
    cr_assert_eq(isc_pad4(1), 3u);
    cr_assert_eq(isc_pad4(2), 2u);
    cr_assert_eq(isc_pad4(3), 1u);
    cr_assert_eq(isc_pad4(4), 0u);
    cr_assert_eq(isc_pad4(5), 3u);
    cr_assert_eq(isc_pad4(ISC_MAX_DSL), 1u);
    cr_assert_eq(isc_pad4(0xffffffffu), 1u);
}

/* ---------------------------------------------------------------- serial numbers */

Test(pdu, serial_compare_plain)
{
    cr_assert(isc_sn_lt(1, 2));
    cr_assert_not(isc_sn_lt(2, 1));
    cr_assert_not(isc_sn_lt(5, 5));
    cr_assert(isc_sn_le(5, 5));
    cr_assert(isc_sn_le(4, 5));
    cr_assert_not(isc_sn_le(6, 5));
}

Test(pdu, serial_compare_wraps_at_2_32)
{
    /* 0xffffffff precedes 0 and 1 after wrap-around (RFC 1982) */
    cr_assert(isc_sn_lt(0xffffffffu, 0));
    cr_assert(isc_sn_lt(0xfffffff0u, 5));
    cr_assert_not(isc_sn_lt(0, 0xffffffffu));
    cr_assert_not(isc_sn_lt(5, 0xfffffff0u));
    cr_assert(isc_sn_le(0xffffffffu, 0));
    cr_assert_not(isc_sn_le(0, 0xffffffffu));
    /* just under half the space apart: still ordered */
    cr_assert(isc_sn_lt(0, 0x7fffffffu));
    cr_assert(isc_sn_lt(0x80000000u, 0xffffffffu));
    cr_assert(isc_sn_lt(0xc0000000u, 0x3fffffffu));
}

/* ---------------------------------------------------------------- LUNs */

Test(pdu, lun_peripheral_below_256)
{
    cr_assert_eq(isc_lun_encode(0), 0ull);
    cr_assert_eq(isc_lun_encode(1), 0x0001000000000000ull);
    cr_assert_eq(isc_lun_encode(255), 0x00ff000000000000ull);
    for (uint32_t lun = 0; lun < 256; lun++)
        cr_assert_eq(isc_lun_decode(isc_lun_encode(lun)), lun, "lun %u", lun);
}

Test(pdu, lun_flat_space_from_256)
{
    uint8_t wire[8];

    cr_assert_eq(isc_lun_encode(256), 0x4100000000000000ull);
    cr_assert_eq(isc_lun_encode(16383), 0x7fff000000000000ull);
    isc_put64(wire, 0, isc_lun_encode(0x1234));
    cr_assert_eq(wire[0], 0x40 | 0x12, "flat space: address method 01b in the top bits");
    cr_assert_eq(wire[1], 0x34);
    for (int i = 2; i < 8; i++)
        cr_assert_eq(wire[i], 0, "single-level LUN: bytes 2..7 are zero");
    for (uint32_t lun = 256; lun < 16384; lun += 97)
        cr_assert_eq(isc_lun_decode(isc_lun_encode(lun)), lun, "lun %u", lun);
    cr_assert_eq(isc_lun_decode(isc_lun_encode(16383)), 16383u);
}

Test(pdu, lun_decode_wire_forms)
{
    /* peripheral method: the LUN is byte 1 */
    cr_assert_eq(isc_lun_decode(0x0007000000000000ull), 7u);
    cr_assert_eq(isc_lun_decode(0x4005000000000000ull), 5u, "flat space LUN 5");
    cr_assert_eq(isc_lun_decode(0x7fff000000000000ull), 16383u);
}

/* ---------------------------------------------------------------- CRC32C */

/* The digest's bytes as placed on the wire. */
static void crc_wire(const void *buf, size_t len, uint8_t out[4])
{
    isc_digest_put(out, isc_crc32c(buf, len));
}

Test(pdu, crc32c_rfc3720_zeros)
{
    static const uint8_t want[4] = { 0xaa, 0x36, 0x91, 0x8a };
    uint8_t buf[32], got[4];

    memset(buf, 0, sizeof(buf));
    crc_wire(buf, sizeof(buf), got);
    cr_assert_arr_eq(got, want, 4, "got %02x %02x %02x %02x", got[0], got[1], got[2], got[3]);
}

Test(pdu, crc32c_rfc3720_ones)
{
    static const uint8_t want[4] = { 0x43, 0xab, 0xa8, 0x62 };
    uint8_t buf[32], got[4];

    memset(buf, 0xff, sizeof(buf));
    crc_wire(buf, sizeof(buf), got);
    cr_assert_arr_eq(got, want, 4, "got %02x %02x %02x %02x", got[0], got[1], got[2], got[3]);
}

Test(pdu, crc32c_rfc3720_incrementing)
{
    static const uint8_t want[4] = { 0x4e, 0x79, 0xdd, 0x46 };
    uint8_t buf[32], got[4];

    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    crc_wire(buf, sizeof(buf), got);
    cr_assert_arr_eq(got, want, 4, "got %02x %02x %02x %02x", got[0], got[1], got[2], got[3]);
}

Test(pdu, crc32c_rfc3720_decrementing)
{
    static const uint8_t want[4] = { 0x5c, 0xdb, 0x3f, 0x11 };
    uint8_t buf[32], got[4];

    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    crc_wire(buf, sizeof(buf), got);
    cr_assert_arr_eq(got, want, 4, "got %02x %02x %02x %02x", got[0], got[1], got[2], got[3]);
}

/* RFC 3720 B.4: an iSCSI SCSI Read (10) Command PDU. */
static const uint8_t read10_pdu[48] = {
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

Test(pdu, crc32c_rfc3720_read10_pdu)
{
    static const uint8_t want[4] = { 0x56, 0x3a, 0x96, 0xd9 };
    uint8_t got[4];

    crc_wire(read10_pdu, sizeof(read10_pdu), got);
    cr_assert_arr_eq(got, want, 4, "got %02x %02x %02x %02x", got[0], got[1], got[2], got[3]);
}

Test(pdu, crc32c_check_value)
{
    cr_assert_eq(isc_crc32c("123456789", 9), 0xe3069283u, "got 0x%08x",
                 isc_crc32c("123456789", 9));
}

Test(pdu, crc32c_empty)
{
    /* init ^ final inversion of nothing */
    cr_assert_eq(isc_crc32c("", 0), 0u);
    cr_assert_eq(isc_crc32c_final(isc_crc32c_update(ISC_CRC32C_INIT, NULL, 0)), 0u);
}

Test(pdu, crc32c_chained_equals_one_shot)
{
    uint8_t buf[1000];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    uint32_t whole = isc_crc32c(buf, sizeof(buf));
    /* every split point, including empty halves and odd, unaligned lengths */
    for (size_t cut = 0; cut <= sizeof(buf); cut += 37) {
        uint32_t c = isc_crc32c_update(ISC_CRC32C_INIT, buf, cut);
        c = isc_crc32c_update(c, buf + cut, sizeof(buf) - cut);
        cr_assert_eq(isc_crc32c_final(c), whole, "split at %zu", cut);
    }
    /* three pieces, byte by byte in the middle */
    uint32_t c = isc_crc32c_update(ISC_CRC32C_INIT, buf, 3);
    for (size_t i = 3; i < 20; i++)
        c = isc_crc32c_update(c, buf + i, 1);
    c = isc_crc32c_update(c, buf + 20, sizeof(buf) - 20);
    cr_assert_eq(isc_crc32c_final(c), whole);
    /* and the B.4 PDU as header halves */
    c = isc_crc32c_update(ISC_CRC32C_INIT, read10_pdu, 17);
    c = isc_crc32c_update(c, read10_pdu + 17, 31);
    cr_assert_eq(isc_crc32c_final(c), isc_digest_get((const uint8_t[]){ 0x56, 0x3a, 0x96,
                                                                        0xd9 }));
}

Test(pdu, crc32c_detects_single_bit_flip)
{
    uint8_t buf[48];

    memcpy(buf, read10_pdu, sizeof(buf));
    uint32_t good = isc_crc32c(buf, sizeof(buf));
    buf[20] ^= 0x01;
    cr_assert_neq(isc_crc32c(buf, sizeof(buf)), good);
}

Test(pdu, digest_byte_order)
{
    uint8_t out[4];
    static const uint8_t want[4] = { 0x78, 0x56, 0x34, 0x12 };

    isc_digest_put(out, 0x12345678u);
    cr_assert_arr_eq(out, want, 4, "least significant byte first");
    cr_assert_eq(isc_digest_get(out), 0x12345678u);
    cr_assert_eq(isc_digest_get((const uint8_t[]){ 0xaa, 0x36, 0x91, 0x8a }), 0x8a9136aau);
    isc_digest_put(out, 0xffffffffu);
    cr_assert_eq(isc_digest_get(out), 0xffffffffu);
}

Test(pdu, opcode_names)
{
    cr_assert_str_eq(isc_opcode_name(ISC_OP_LOGIN_RSP), "login-response");
    cr_assert_str_eq(isc_opcode_name(ISC_OP_SCSI_CMD), "scsi-command");
    cr_assert_str_eq(isc_opcode_name(ISC_OP_REJECT), "reject");
    cr_assert_str_eq(isc_opcode_name((enum isc_opcode)0x1c), "unknown");
}
