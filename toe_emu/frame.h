/*
 * frame.h - the emulated adapter's view of wire frames: Ethernet/IPv4/TCP parsing with
 * every length checked, Internet checksums (the adapter's checksum offload), the TAP's
 * virtio-net header, and splitting a TCP super-frame into wire frames (software GSO).
 *
 * Frames are plain byte buffers read with byte-offset helpers; no struct is laid over them.
 * No lwIP here: unit tests link this alone.
 */
#ifndef TOEGW_TOE_FRAME_H
#define TOEGW_TOE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/be.h"

#define TOE_ETH_HLEN        14
#define TOE_ETHERTYPE_IPV4  0x0800
#define TOE_ETHERTYPE_ARP   0x0806
#define TOE_IPPROTO_TCP     6
#define TOE_TCP_FIN         0x01
#define TOE_TCP_SYN         0x02
#define TOE_TCP_RST         0x04
#define TOE_TCP_PSH         0x08
#define TOE_TCP_ACK         0x10
#define TOE_TCP_URG         0x20
#define TOE_TCP_ECE         0x40
#define TOE_TCP_CWR         0x80
#define TOE_FRAME_MAX       (TOE_ETH_HLEN + 65535)   /* largest frame we ever handle */

/* The TAP's virtio-net header (legacy layout: 10 bytes, host byte order). */
#define TOE_VNET_HLEN           10
#define TOE_VNET_F_NEEDS_CSUM   1
#define TOE_VNET_F_DATA_VALID   2
#define TOE_VNET_GSO_NONE       0
#define TOE_VNET_GSO_TCPV4      1
#define TOE_VNET_GSO_ECN        0x80

struct toe_vnet {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};

void toe_vnet_get(const uint8_t *p, struct toe_vnet *v);
void toe_vnet_put(uint8_t *p, const struct toe_vnet *v);

/* What toe_frame_parse found. Offsets are from the start of the Ethernet header. */
struct toe_frame_info {
    uint16_t ethertype;
    uint8_t proto;          /* IPv4 protocol (0 for ARP) */
    bool tcp;               /* an unfragmented IPv4 TCP segment with a sane header */
    size_t l3;              /* IPv4 header */
    size_t l4;              /* TCP header */
    size_t payload;         /* TCP payload */
    size_t ip_end;          /* end of the IPv4 datagram (a frame may carry padding after) */
    uint8_t tcp_flags;
    uint32_t seq;
};

/*
 * Parse and sanity-check a frame of `len` bytes: 0 for an IPv4 or ARP frame whose headers
 * fit, -EPROTONOSUPPORT for another ethertype, -EINVAL for a truncated or malformed one.
 */
int toe_frame_parse(const uint8_t *f, size_t len, struct toe_frame_info *fi);

/* A TCP segment without payload or SYN/FIN/RST whose SACK option reports data above its
   acknowledgment number (a hole at the receiver; a D-SACK alone does not count). */
bool toe_frame_is_sack_ack(const uint8_t *f, const struct toe_frame_info *fi);

/* Internet checksum: accumulate bytes (any length, any alignment), then fold. */
uint64_t toe_csum_add(uint64_t acc, const void *p, size_t len);
uint16_t toe_csum_fold(uint64_t acc);      /* folded, not complemented */

/* The IPv4 header checksum, recomputed in place. */
void toe_frame_ip_csum_fill(uint8_t *f, const struct toe_frame_info *fi);
/* The TCP checksum over the whole segment, written in place. */
void toe_frame_tcp_csum_fill(uint8_t *f, const struct toe_frame_info *fi);
/* The pseudo-header sum a NEEDS_CSUM frame carries in its TCP checksum field. */
void toe_frame_tcp_csum_partial(uint8_t *f, const struct toe_frame_info *fi);
bool toe_frame_tcp_csum_ok(const uint8_t *f, const struct toe_frame_info *fi);
bool toe_frame_ip_csum_ok(const uint8_t *f, const struct toe_frame_info *fi);

/*
 * Split a TCP super-frame into frames of at most `mss` payload bytes, each with its own
 * IPv4 length, id and checksum, sequence number, flags (FIN/PSH on the last, CWR on the
 * first) and complete TCP checksum. `scratch` holds one frame (payload offset + mss bytes).
 * `emit` gets each frame in turn (valid only during the call); a non-zero return stops.
 * Returns the number of frames, or -EINVAL when `fi` is not TCP or mss is 0.
 */
int toe_frame_segment(const uint8_t *f, const struct toe_frame_info *fi, size_t mss,
                      uint8_t *scratch, int (*emit)(void *arg, uint8_t *frame, size_t len),
                      void *arg);

/* The adapter's names for common/be.h's helpers (header fields are big-endian). */
static inline uint16_t toe_get16(const uint8_t *p) { return be_get16(p); }
static inline uint32_t toe_get32(const uint8_t *p) { return be_get32(p); }
static inline void toe_put16(uint8_t *p, uint16_t v) { be_put16(p, v); }
static inline void toe_put32(uint8_t *p, uint32_t v) { be_put32(p, v); }

#endif
