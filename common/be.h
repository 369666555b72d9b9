/*
 * be.h - big-endian (network byte order) loads and stores on byte buffers.
 *
 * Every wire format here (iSCSI PDUs, SCSI CDBs and parameter data, NBD messages, Ethernet,
 * IPv4 and TCP headers) is big-endian and read from plain byte buffers; no struct is ever laid
 * over a buffer, so alignment never matters. These are the one copy of those helpers; a
 * module may keep its own names for them as one-line wrappers.
 */
#ifndef TOEGW_COMMON_BE_H
#define TOEGW_COMMON_BE_H

#include <stdint.h>

static inline uint16_t be_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be_get24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t be_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be_get64(const uint8_t *p)
{
    return ((uint64_t)be_get32(p) << 32) | be_get32(p + 4);
}

static inline void be_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The low 24 bits of v (iSCSI's DataSegmentLength, SCSI's 3-byte fields). */
static inline void be_put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static inline void be_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void be_put64(uint8_t *p, uint64_t v)
{
    be_put32(p, (uint32_t)(v >> 32));
    be_put32(p + 4, (uint32_t)v);
}

#endif
