/*
 * frame.c - wire frame parsing, checksums and software segmentation (see frame.h).
 *
 * Checksums are summed in memory order (RFC 1071: the ones-complement sum does not care
 * about byte order as long as loads and the final store agree), so no swapping is needed.
 */
#include "toe_emu/frame.h"

#include <errno.h>
#include <string.h>

void toe_vnet_get(const uint8_t *p, struct toe_vnet *v)
{
    v->flags = p[0];
    v->gso_type = p[1];
    memcpy(&v->hdr_len, p + 2, 2);
    memcpy(&v->gso_size, p + 4, 2);
    memcpy(&v->csum_start, p + 6, 2);
    memcpy(&v->csum_offset, p + 8, 2);
}

void toe_vnet_put(uint8_t *p, const struct toe_vnet *v)
{
    p[0] = v->flags;
    p[1] = v->gso_type;
    memcpy(p + 2, &v->hdr_len, 2);
    memcpy(p + 4, &v->gso_size, 2);
    memcpy(p + 6, &v->csum_start, 2);
    memcpy(p + 8, &v->csum_offset, 2);
}

int toe_frame_parse(const uint8_t *f, size_t len, struct toe_frame_info *fi)
{
    memset(fi, 0, sizeof(*fi));
    if (len < TOE_ETH_HLEN)
        return -EINVAL;
    fi->ethertype = toe_get16(f + 12);
    if (fi->ethertype == TOE_ETHERTYPE_ARP)
        return len < TOE_ETH_HLEN + 28 ? -EINVAL : 0;
    if (fi->ethertype != TOE_ETHERTYPE_IPV4)
        return -EPROTONOSUPPORT;

    const uint8_t *ip = f + TOE_ETH_HLEN;
    size_t avail = len - TOE_ETH_HLEN;
    if (avail < 20 || (ip[0] >> 4) != 4)
        return -EINVAL;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t tot = toe_get16(ip + 2);
    if (ihl < 20 || ihl > avail || tot < ihl || tot > avail)
        return -EINVAL;
    fi->l3 = TOE_ETH_HLEN;
    fi->ip_end = TOE_ETH_HLEN + tot;
    fi->proto = ip[9];
    fi->l4 = fi->l3 + ihl;
    fi->payload = fi->ip_end;

    uint16_t frag = toe_get16(ip + 6);
    if (fi->proto != TOE_IPPROTO_TCP || (frag & 0x3fff) != 0)
        return 0;           /* not ours to look into: lwIP decides */
    if (tot - ihl < 20)
        return -EINVAL;
    const uint8_t *th = f + fi->l4;
    size_t doff = (size_t)(th[12] >> 4) * 4;
    if (doff < 20 || doff > tot - ihl)
        return -EINVAL;
    fi->tcp = true;
    fi->payload = fi->l4 + doff;
    fi->seq = toe_get32(th + 4);
    fi->tcp_flags = th[13];
    return 0;
}

bool toe_frame_is_sack_ack(const uint8_t *f, const struct toe_frame_info *fi)
{
    if (!fi->tcp || fi->payload != fi->ip_end || !(fi->tcp_flags & TOE_TCP_ACK) ||
        (fi->tcp_flags & (TOE_TCP_SYN | TOE_TCP_FIN | TOE_TCP_RST)))
        return false;
    for (size_t o = fi->l4 + 20; o < fi->payload;) {
        uint8_t kind = f[o];

        if (kind == 0)
            break;
        if (kind == 1) {
            o++;
            continue;
        }
        if (o + 1 >= fi->payload || f[o + 1] < 2 || o + f[o + 1] > fi->payload)
            break;
        if (kind == 5) {
            uint32_t ack = toe_get32(f + fi->l4 + 8);

            for (size_t b = o + 2; b + 8 <= o + f[o + 1]; b += 8)
                if ((int32_t)(toe_get32(f + b) - ack) > 0)
                    return true;
            return false;
        }
        o += f[o + 1];
    }
    return false;
}

uint64_t toe_csum_add(uint64_t acc, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len >= 8) {
        uint64_t v;

        memcpy(&v, p, 8);
        acc += (v & 0xffffffffu) + (v >> 32);
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t v;

        memcpy(&v, p, 4);
        acc += v;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t v;

        memcpy(&v, p, 2);
        acc += v;
        p += 2;
        len -= 2;
    }
    if (len) {
        uint8_t last[2] = { p[0], 0 };
        uint16_t v;

        memcpy(&v, last, 2);
        acc += v;
    }
    return acc;
}

uint16_t toe_csum_fold(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)acc;
}

static uint64_t pseudo_sum(const uint8_t *f, const struct toe_frame_info *fi)
{
    size_t tcplen = fi->ip_end - fi->l4;
    uint8_t ph[4] = { 0, TOE_IPPROTO_TCP, (uint8_t)(tcplen >> 8), (uint8_t)tcplen };

    return toe_csum_add(toe_csum_add(0, f + fi->l3 + 12, 8), ph, 4);
}

void toe_frame_ip_csum_fill(uint8_t *f, const struct toe_frame_info *fi)
{
    size_t ihl = fi->l4 - fi->l3;
    uint16_t c;

    f[fi->l3 + 10] = 0;
    f[fi->l3 + 11] = 0;
    c = (uint16_t)~toe_csum_fold(toe_csum_add(0, f + fi->l3, ihl));
    memcpy(f + fi->l3 + 10, &c, 2);
}

bool toe_frame_ip_csum_ok(const uint8_t *f, const struct toe_frame_info *fi)
{
    return toe_csum_fold(toe_csum_add(0, f + fi->l3, fi->l4 - fi->l3)) == 0xffff;
}

void toe_frame_tcp_csum_fill(uint8_t *f, const struct toe_frame_info *fi)
{
    uint16_t c;

    f[fi->l4 + 16] = 0;
    f[fi->l4 + 17] = 0;
    c = (uint16_t)~toe_csum_fold(toe_csum_add(pseudo_sum(f, fi), f + fi->l4,
                                              fi->ip_end - fi->l4));
    memcpy(f + fi->l4 + 16, &c, 2);
}

void toe_frame_tcp_csum_partial(uint8_t *f, const struct toe_frame_info *fi)
{
    uint16_t c = toe_csum_fold(pseudo_sum(f, fi));

    memcpy(f + fi->l4 + 16, &c, 2);
}

bool toe_frame_tcp_csum_ok(const uint8_t *f, const struct toe_frame_info *fi)
{
    uint64_t acc = toe_csum_add(pseudo_sum(f, fi), f + fi->l4, fi->ip_end - fi->l4);

    return toe_csum_fold(acc) == 0xffff;
}

int toe_frame_segment(const uint8_t *f, const struct toe_frame_info *fi, size_t mss,
                      uint8_t *scratch, int (*emit)(void *arg, uint8_t *frame, size_t len),
                      void *arg)
{
    size_t hlen = fi->payload;
    size_t total = fi->ip_end - fi->payload;
    uint16_t id = toe_get16(f + fi->l3 + 4);
    int count = 0;

    if (!fi->tcp || mss == 0)
        return -EINVAL;
    for (size_t off = 0; off < total || count == 0; off += mss) {
        size_t n = total - off < mss ? total - off : mss;
        bool first = off == 0, last = off + n >= total;
        struct toe_frame_info sfi = *fi;
        uint8_t flags = fi->tcp_flags;

        memcpy(scratch, f, hlen);
        memcpy(scratch + hlen, f + hlen + off, n);
        sfi.ip_end = hlen + n;
        sfi.seq = fi->seq + (uint32_t)off;
        toe_put16(scratch + fi->l3 + 2, (uint16_t)(sfi.ip_end - fi->l3));
        toe_put16(scratch + fi->l3 + 4, (uint16_t)(id + count));
        toe_frame_ip_csum_fill(scratch, &sfi);
        toe_put32(scratch + fi->l4 + 4, sfi.seq);
        if (!last)
            flags &= (uint8_t)~(TOE_TCP_FIN | TOE_TCP_PSH);
        if (!first)
            flags &= (uint8_t)~TOE_TCP_CWR;
        scratch[fi->l4 + 13] = flags;
        sfi.tcp_flags = flags;
        toe_frame_tcp_csum_fill(scratch, &sfi);
        count++;
        if (emit(arg, scratch, sfi.ip_end) != 0)
            break;
        if (last)
            break;
    }
    return count;
}
