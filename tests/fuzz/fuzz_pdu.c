/*
 * fuzz_pdu.c - the PDU codec (storage/pdu.[ch]) over a stream of target PDUs.
 *
 * The input is read the way the receive path frames it (BHS, AHS, optional header digest,
 * data segment, padding, optional data digest; byte 0 says which digests are on) and
 * every header goes through the byte-offset helpers, the serial number comparisons, the
 * LUN codec and the CRC32C digests. Properties: chained CRCs equal the one-shot CRC, the
 * digest and field helpers round-trip, LUN encoding round-trips every LUN the decoder
 * returns below 16384, serial comparison is antisymmetric, padding aligns to 4 bytes.
 * The session's own receive state machine is fuzzed by fuzz_session.
 */
#include <string.h>

#include "storage/pdu.h"
#include "tests/fuzz/fuzz.h"

static void check_crc(const uint8_t *p, size_t n, size_t split)
{
    uint32_t one = isc_crc32c(p, n);
    uint32_t crc = isc_crc32c_update(ISC_CRC32C_INIT, p, split);

    crc = isc_crc32c_final(isc_crc32c_update(crc, p + split, n - split));
    FUZZ_CHECK(one == crc, "crc32c of %zu bytes split at %zu: 0x%08x != 0x%08x", n, split,
               one, crc);
}

static void check_header(const uint8_t *h)
{
    uint8_t copy[ISC_BHS_LEN];
    uint32_t a = isc_get32(h, ISC_OFF_STATSN), b = isc_get32(h, ISC_OFF_EXPCMDSN);
    uint32_t lun = isc_lun_decode(isc_get64(h, ISC_OFF_LUN));
    uint8_t d[ISC_DIGEST_LEN];

    FUZZ_CHECK(isc_opcode_name(isc_bhs_opcode(h)) != NULL, "opcode without a name");
    FUZZ_CHECK(isc_bhs_opcode(h) <= 0x3f, "opcode beyond 6 bits");
    FUZZ_CHECK(isc_bhs_dsl(h) <= ISC_MAX_DSL, "dsl beyond 24 bits");
    FUZZ_CHECK(!isc_sn_lt(a, a) && isc_sn_le(a, a), "serial comparison not reflexive");
    if (a != b && a - b != 0x80000000u)
        FUZZ_CHECK(isc_sn_lt(a, b) != isc_sn_lt(b, a),
                   "serial comparison of %u and %u not antisymmetric", a, b);
    if (lun < 16384)
        FUZZ_CHECK(isc_lun_decode(isc_lun_encode(lun)) == lun, "lun %u does not round-trip",
                   lun);

    /* rebuilding the header from its fields gives the same bytes */
    memset(copy, 0, sizeof(copy));
    isc_put8(copy, ISC_OFF_OPCODE, isc_get8(h, ISC_OFF_OPCODE));
    isc_put8(copy, ISC_OFF_FLAGS, isc_get8(h, ISC_OFF_FLAGS));
    isc_put16(copy, 2, isc_get16(h, 2));
    isc_put8(copy, ISC_OFF_TOTAHS, isc_get8(h, ISC_OFF_TOTAHS));
    isc_put24(copy, ISC_OFF_DSL, isc_bhs_dsl(h));
    isc_put64(copy, ISC_OFF_LUN, isc_get64(h, ISC_OFF_LUN));
    for (size_t off = 16; off < ISC_BHS_LEN; off += 4)
        isc_put32(copy, off, isc_get32(h, off));
    FUZZ_CHECK(memcmp(copy, h, ISC_BHS_LEN) == 0, "bhs field helpers do not round-trip");

    isc_digest_put(d, isc_get32(h, ISC_OFF_ITT));
    FUZZ_CHECK(isc_digest_get(d) == isc_get32(h, ISC_OFF_ITT), "digest bytes do not round-trip");
}

int fuzz_pdu(const uint8_t *data, size_t size)
{
    bool hd, dd;
    size_t pos = 1;

    if (size < 1)
        return 0;
    hd = data[0] & 1;
    dd = data[0] & 2;
    check_crc(data, size, data[0] % (size + 1));
    while (size - pos >= ISC_BHS_LEN) {
        const uint8_t *h = data + pos;
        uint64_t ahs = isc_bhs_ahs_len(h), dsl = isc_bhs_dsl(h);
        uint32_t pad = isc_pad4((uint32_t)dsl);
        uint64_t hlen = ISC_BHS_LEN + ahs, total;

        check_header(h);
        FUZZ_CHECK(pad < 4 && (dsl + pad) % 4 == 0, "padding of %llu is %u",
                   (unsigned long long)dsl, pad);
        total = hlen + (hd ? ISC_DIGEST_LEN : 0) + dsl + (dsl ? pad : 0) +
                (dd && dsl ? ISC_DIGEST_LEN : 0);
        if (total > size - pos)
            break;
        if (hd)
            (void)(isc_crc32c(h, hlen) == isc_digest_get(h + hlen));
        if (dsl) {
            const uint8_t *seg = h + hlen + (hd ? ISC_DIGEST_LEN : 0);
            check_crc(seg, dsl + pad, (size_t)(dsl / 2));
            if (dd)
                (void)(isc_crc32c(seg, dsl + pad) == isc_digest_get(seg + dsl + pad));
        }
        pos += total;
    }
    return 0;
}
