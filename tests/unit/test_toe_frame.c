/*
 * test_toe_frame.c - the adapter's frame parser, checksums and software segmentation:
 * good frames parse, bad ones (truncated, wrong ethertype, broken headers) are refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "toe_emu/frame.h"

static uint8_t f[TOE_FRAME_MAX];

/* Ethernet + IPv4 (20) + TCP (20) + `plen` payload bytes; returns the frame length. */
static size_t build_tcp(size_t plen, uint32_t seq, uint8_t flags)
{
    uint8_t *ip = f + 14, *th = ip + 20;

    memset(f, 0, 14 + 40);
    memcpy(f, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
    toe_put16(f + 12, TOE_ETHERTYPE_IPV4);
    ip[0] = 0x45;
    toe_put16(ip + 2, (uint16_t)(40 + plen));
    toe_put16(ip + 4, 0x1234);
    ip[8] = 64;
    ip[9] = TOE_IPPROTO_TCP;
    memcpy(ip + 12, "\xc0\x00\x02\x02\xc0\x00\x02\x01", 8);   /* 192.0.2.2 -> 192.0.2.1 */
    toe_put16(th, 20000);
    toe_put16(th + 2, 3260);
    toe_put32(th + 4, seq);
    toe_put32(th + 8, 777);
    th[12] = 5 << 4;
    th[13] = flags;
    toe_put16(th + 14, 65535);
    for (size_t i = 0; i < plen; i++)
        th[20 + i] = (uint8_t)(i * 7 + 3);

    struct toe_frame_info fi;
    cr_assert_eq(toe_frame_parse(f, 54 + plen, &fi), 0);
    toe_frame_ip_csum_fill(f, &fi);
    toe_frame_tcp_csum_fill(f, &fi);
    return 54 + plen;
}

Test(toe_frame, parses_a_tcp_segment)
{
    size_t len = build_tcp(100, 1000, TOE_TCP_ACK | TOE_TCP_PSH);
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert(fi.tcp);
    cr_assert_eq(fi.ethertype, TOE_ETHERTYPE_IPV4);
    cr_assert_eq(fi.l3, 14);
    cr_assert_eq(fi.l4, 34);
    cr_assert_eq(fi.payload, 54);
    cr_assert_eq(fi.ip_end, len);
    cr_assert_eq(fi.seq, 1000);
    cr_assert_eq(fi.tcp_flags, TOE_TCP_ACK | TOE_TCP_PSH);
    cr_assert(toe_frame_ip_csum_ok(f, &fi));
    cr_assert(toe_frame_tcp_csum_ok(f, &fi));
}

Test(toe_frame, ethernet_padding_is_not_payload)
{
    size_t len = build_tcp(0, 1, TOE_TCP_ACK);
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(f, len + 6, &fi), 0, "a 60-byte minimum frame");
    cr_assert_eq(fi.ip_end, len);
    cr_assert_eq(fi.payload, len);
}

Test(toe_frame, truncated_frames)
{
    size_t len = build_tcp(100, 1, TOE_TCP_ACK);
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(f, 0, &fi), -EINVAL);
    cr_assert_eq(toe_frame_parse(f, 13, &fi), -EINVAL, "shorter than an Ethernet header");
    cr_assert_eq(toe_frame_parse(f, 14, &fi), -EINVAL, "no IPv4 header");
    cr_assert_eq(toe_frame_parse(f, 33, &fi), -EINVAL, "IPv4 header cut short");
    cr_assert_eq(toe_frame_parse(f, len - 1, &fi), -EINVAL, "IPv4 total length past the end");
    toe_put16(f + 16, 20 + 10);      /* IPv4 length leaves 10 bytes for TCP */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EINVAL, "TCP header cut short");
}

Test(toe_frame, wrong_ethertype)
{
    size_t len = build_tcp(10, 1, TOE_TCP_ACK);
    struct toe_frame_info fi;

    toe_put16(f + 12, 0x86dd);       /* IPv6 */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EPROTONOSUPPORT);
    toe_put16(f + 12, 0x8100);       /* VLAN tag */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EPROTONOSUPPORT);
}

Test(toe_frame, arp)
{
    struct toe_frame_info fi;

    memset(f, 0, 64);
    toe_put16(f + 12, TOE_ETHERTYPE_ARP);
    cr_assert_eq(toe_frame_parse(f, 42, &fi), 0);
    cr_assert_not(fi.tcp);
    cr_assert_eq(toe_frame_parse(f, 41, &fi), -EINVAL, "ARP body cut short");
}

Test(toe_frame, broken_headers)
{
    size_t len = build_tcp(10, 1, TOE_TCP_ACK);
    struct toe_frame_info fi;

    f[14] = 0x65;                    /* version 6 in an IPv4 frame */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EINVAL);
    f[14] = 0x44;                    /* IHL 4: shorter than the fixed header */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EINVAL);
    f[14] = 0x45;
    f[34 + 12] = 4 << 4;             /* TCP data offset 4 */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EINVAL);
    f[34 + 12] = 15 << 4;            /* TCP options past the segment */
    cr_assert_eq(toe_frame_parse(f, len, &fi), -EINVAL);
}

Test(toe_frame, fragments_and_other_protocols_are_not_tcp)
{
    size_t len = build_tcp(10, 1, TOE_TCP_ACK);
    struct toe_frame_info fi;

    toe_put16(f + 20, 0x2000);       /* more fragments */
    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert_not(fi.tcp);
    toe_put16(f + 20, 0);
    f[23] = 17;                      /* UDP */
    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert_not(fi.tcp);
}

Test(toe_frame, checksums_catch_any_single_byte_change)
{
    size_t len = build_tcp(333, 5, TOE_TCP_ACK);
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    for (size_t off = 14; off < len; off += 7) {
        uint8_t save = f[off];

        f[off] ^= 0x5a;
        bool ok = toe_frame_ip_csum_ok(f, &fi) && toe_frame_tcp_csum_ok(f, &fi);
        f[off] = save;
        cr_assert_not(ok, "change at %zu went unnoticed", off);
    }
    cr_assert(toe_frame_tcp_csum_ok(f, &fi));
}

Test(toe_frame, partial_checksum_completes_to_the_full_one)
{
    size_t len = build_tcp(1001, 5, TOE_TCP_ACK);
    struct toe_frame_info fi;
    uint8_t full[2];

    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    memcpy(full, f + fi.l4 + 16, 2);
    toe_frame_tcp_csum_partial(f, &fi);
    /* What a NIC does with a partial checksum: sum from l4 on and store the complement. */
    uint16_t c = (uint16_t)~toe_csum_fold(toe_csum_add(0, f + fi.l4, len - fi.l4));
    cr_assert_eq(memcmp(&c, full, 2), 0);
}

struct seg_check {
    size_t n;
    uint32_t next_seq;
    uint8_t payload[65536];
    size_t plen;
    uint8_t flags[16];
};

static int collect(void *arg, uint8_t *frame, size_t len)
{
    struct seg_check *s = arg;
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(frame, len, &fi), 0);
    cr_assert(toe_frame_ip_csum_ok(frame, &fi), "segment %zu ip checksum", s->n);
    cr_assert(toe_frame_tcp_csum_ok(frame, &fi), "segment %zu tcp checksum", s->n);
    cr_assert_eq(fi.seq, s->next_seq);
    cr_assert_eq(toe_get16(frame + 18), (uint16_t)(0x1234 + s->n), "ip id increments");
    memcpy(s->payload + s->plen, frame + fi.payload, fi.ip_end - fi.payload);
    s->plen += fi.ip_end - fi.payload;
    s->next_seq += (uint32_t)(fi.ip_end - fi.payload);
    s->flags[s->n++] = fi.tcp_flags;
    return 0;
}

Test(toe_frame, segments_a_super_frame)
{
    static struct seg_check s;
    static uint8_t scratch[TOE_FRAME_MAX];
    size_t len = build_tcp(3500, 0xfffffc00u, TOE_TCP_ACK | TOE_TCP_PSH | TOE_TCP_FIN);
    struct toe_frame_info fi;

    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    memset(&s, 0, sizeof(s));
    s.next_seq = 0xfffffc00u;        /* crosses the 32-bit sequence wrap */
    cr_assert_eq(toe_frame_segment(f, &fi, 1000, scratch, collect, &s), 4);
    cr_assert_eq(s.plen, 3500);
    cr_assert_eq(memcmp(s.payload, f + 54, 3500), 0);
    cr_assert_eq(s.flags[0], TOE_TCP_ACK);
    cr_assert_eq(s.flags[2], TOE_TCP_ACK);
    cr_assert_eq(s.flags[3], TOE_TCP_ACK | TOE_TCP_PSH | TOE_TCP_FIN, "PSH and FIN on the last");
}

Test(toe_frame, vnet_header_round_trip)
{
    struct toe_vnet a = {
        .flags = TOE_VNET_F_NEEDS_CSUM, .gso_type = TOE_VNET_GSO_TCPV4, .hdr_len = 54,
        .gso_size = 8960, .csum_start = 34, .csum_offset = 16,
    }, b;
    uint8_t raw[TOE_VNET_HLEN];

    toe_vnet_put(raw, &a);
    toe_vnet_get(raw, &b);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

/* A pure ACK (ack 1000) whose options are NOP NOP SACK(left, right), 12 option bytes. */
static size_t build_sack_ack(uint32_t left, uint32_t right, uint8_t sack_len)
{
    size_t len = build_tcp(0, 1, TOE_TCP_ACK);
    uint8_t *th = f + 34;

    memmove(th + 32, th + 20, len - 54);
    th[12] = 8 << 4;
    toe_put32(th + 8, 1000);
    th[20] = 1;
    th[21] = 1;
    th[22] = 5;
    th[23] = sack_len;
    toe_put32(th + 24, left);
    toe_put32(th + 28, right);
    toe_put16(f + 16, 20 + 32);
    return 14 + 20 + 32;
}

Test(toe_frame, sack_ack_reports_a_hole)
{
    struct toe_frame_info fi;
    size_t len = build_sack_ack(2000, 3000, 10);

    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert(toe_frame_is_sack_ack(f, &fi), "data above the acknowledgment");
    len = build_sack_ack(500, 1000, 10);
    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert_not(toe_frame_is_sack_ack(f, &fi), "a D-SACK below the acknowledgment");
    len = build_sack_ack(2000, 3000, 40);
    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert_not(toe_frame_is_sack_ack(f, &fi), "an option longer than the header");
    len = build_tcp(10, 1, TOE_TCP_ACK);
    cr_assert_eq(toe_frame_parse(f, len, &fi), 0);
    cr_assert_not(toe_frame_is_sack_ack(f, &fi), "data segments are not ACK-only");
}
