/*
 * fuzz_frame.c - the emulated adapter's frame parser (toe_emu/frame.c), used the way its
 * receive path uses it (toe_emu/netif.c: rx_frame, rx_slow).
 *
 * Input: a virtio-net header (10 bytes, as the TAP hands it over) and an Ethernet frame.
 * The frame is parsed; its checksums are checked, recomputed and checked again; a TCP
 * segment is looked at for SACK hints and split into wire frames (software GSO) with the
 * header's gso_size as the MSS, or the MSS of a 1500-byte MTU. The frame and the
 * segmentation scratch buffer are heap blocks of exactly their size.
 * Properties: parsed offsets are ordered and inside the frame; a recomputed checksum
 * verifies; checksums split at an even offset add up; every segment parses as TCP with
 * good checksums, at most MSS payload bytes, the right sequence number, IP id and flags,
 * and the segments' payloads put together are the original payload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "toe_emu/frame.h"

struct seg_state {
    const uint8_t *orig;
    struct toe_frame_info fi;
    size_t mss, off;
    int count;
    bool last_seen;
};

static int emit(void *arg, uint8_t *f, size_t len)
{
    struct seg_state *st = arg;
    struct toe_frame_info fi;
    size_t plen;

    FUZZ_CHECK(!st->last_seen, "a segment after the last one");
    FUZZ_CHECK(toe_frame_parse(f, len, &fi) == 0 && fi.tcp, "segment %d does not parse",
               st->count);
    plen = fi.ip_end - fi.payload;
    FUZZ_CHECK(fi.ip_end == len, "segment %d: ip length %zu in a %zu-byte frame", st->count,
               fi.ip_end, len);
    FUZZ_CHECK(plen <= st->mss, "segment %d carries %zu bytes, mss %zu", st->count, plen,
               st->mss);
    FUZZ_CHECK(fi.payload == st->fi.payload, "segment %d: headers of %zu bytes, not %zu",
               st->count, fi.payload, st->fi.payload);
    FUZZ_CHECK(toe_frame_ip_csum_ok(f, &fi) && toe_frame_tcp_csum_ok(f, &fi),
               "segment %d: bad checksum", st->count);
    FUZZ_CHECK(fi.seq == st->fi.seq + (uint32_t)st->off, "segment %d: seq %u", st->count,
               fi.seq);
    FUZZ_CHECK(toe_get16(f + fi.l3 + 4) ==
                   (uint16_t)(toe_get16(st->orig + st->fi.l3 + 4) + st->count),
               "segment %d: ip id", st->count);
    FUZZ_CHECK(!memcmp(f + fi.payload, st->orig + st->fi.payload + st->off, plen),
               "segment %d: payload differs from the original at offset %zu", st->count,
               st->off);
    st->off += plen;
    if (st->off >= st->fi.ip_end - st->fi.payload)
        st->last_seen = true;
    if (!st->last_seen)
        FUZZ_CHECK(!(fi.tcp_flags & (TOE_TCP_FIN | TOE_TCP_PSH)),
                   "segment %d: fin/psh before the last", st->count);
    if (st->count > 0)
        FUZZ_CHECK(!(fi.tcp_flags & TOE_TCP_CWR), "segment %d: cwr after the first",
                   st->count);
    st->count++;
    return 0;
}

static void check_sums(const uint8_t *f, size_t len)
{
    size_t split = (len / 2) & ~(size_t)1;
    uint16_t whole = toe_csum_fold(toe_csum_add(0, f, len));
    uint16_t parts = toe_csum_fold(toe_csum_add(toe_csum_add(0, f, split), f + split,
                                                len - split));

    FUZZ_CHECK(whole == parts, "checksum of %zu bytes split at %zu: 0x%04x != 0x%04x", len,
               split, whole, parts);
}

int fuzz_frame(const uint8_t *data, size_t size)
{
    struct toe_vnet v, v2;
    struct toe_frame_info fi;
    uint8_t vh[TOE_VNET_HLEN], *f, *scratch;
    size_t len;
    int ret;

    if (size < TOE_VNET_HLEN || size - TOE_VNET_HLEN > TOE_FRAME_MAX)
        return 0;
    toe_vnet_get(data, &v);
    toe_vnet_put(vh, &v);
    toe_vnet_get(vh, &v2);
    FUZZ_CHECK(!memcmp(vh, data, TOE_VNET_HLEN) && !memcmp(&v, &v2, sizeof(v)),
               "virtio-net header does not round-trip");
    len = size - TOE_VNET_HLEN;
    f = malloc(len ? len : 1);
    if (!f)
        abort();
    memcpy(f, data + TOE_VNET_HLEN, len);
    check_sums(f, len);

    ret = toe_frame_parse(f, len, &fi);
    FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -EPROTONOSUPPORT, "parse returned %d",
               ret);
    if (ret < 0 || fi.ethertype != TOE_ETHERTYPE_IPV4) {
        free(f);
        return 0;
    }
    FUZZ_CHECK(fi.l3 == TOE_ETH_HLEN && fi.l3 + 20 <= fi.l4 && fi.l4 <= fi.payload &&
                   fi.payload <= fi.ip_end && fi.ip_end <= len,
               "offsets l3 %zu l4 %zu payload %zu end %zu in %zu bytes", fi.l3, fi.l4,
               fi.payload, fi.ip_end, len);
    (void)toe_frame_ip_csum_ok(f, &fi);
    toe_frame_ip_csum_fill(f, &fi);
    FUZZ_CHECK(toe_frame_ip_csum_ok(f, &fi), "ip checksum does not verify after fill");
    if (!fi.tcp) {
        free(f);
        return 0;
    }
    FUZZ_CHECK(fi.payload - fi.l4 >= 20, "tcp header of %zu bytes", fi.payload - fi.l4);
    if (toe_frame_is_sack_ack(f, &fi))
        FUZZ_CHECK((fi.tcp_flags & TOE_TCP_ACK) && fi.payload == fi.ip_end,
                   "a sack hint from a segment with data or without ack");
    (void)toe_frame_tcp_csum_ok(f, &fi);
    toe_frame_tcp_csum_partial(f, &fi);
    toe_frame_tcp_csum_fill(f, &fi);
    FUZZ_CHECK(toe_frame_tcp_csum_ok(f, &fi), "tcp checksum does not verify after fill");

    struct seg_state st = { .orig = f, .fi = fi };
    st.mss = v.gso_size ? v.gso_size : 1500 - (fi.payload - fi.l3);
    scratch = malloc(fi.payload + st.mss);
    if (!scratch)
        abort();
    ret = toe_frame_segment(f, &fi, st.mss, scratch, emit, &st);
    FUZZ_CHECK(ret == st.count && ret >= 1, "segment returned %d for %d frames", ret,
               st.count);
    FUZZ_CHECK(st.off == fi.ip_end - fi.payload, "segments carried %zu of %zu bytes", st.off,
               fi.ip_end - fi.payload);
    free(scratch);
    free(f);
    return 0;
}
