/*
 * rxq.h - a connection's receive queue: the byte stream the firmware delivers and the
 * consumer reads, one producer thread and one consumer thread.
 *
 * Small segments are copied into a byte ring (toe_emu/ring.h). Large ones (a TSO
 * super-frame of up to 64 KiB, held in the adapter's own receive buffers) are not copied:
 * the queue keeps the pbuf chain itself, by reference, and the consumer copies straight out
 * of it. That removes one copy of every large segment from the firmware thread; copying the
 * small ones keeps memory bounded (a 64 KiB receive buffer is never held for one MSS).
 *
 * Both kinds make one stream. Positions are 64-bit byte counts that only grow: `head` is
 * what the producer delivered, `tail` what the consumer took. Each reference records the
 * stream position it starts at; every byte between two references comes from the ring, in
 * order. The producer publishes ring bytes and references first and `head` last (release),
 * so a consumer that loaded `head` (acquire) sees everything before it.
 *
 * A reference the consumer finished stays in its slot until the producer reclaims it
 * (toe_rxq_reclaim): pbufs are freed on the thread that owns them, never on the consumer's.
 *
 * No lwIP functions here (only struct pbuf): unit tests link this without a stack.
 */
#ifndef TOEGW_TOE_RXQ_H
#define TOEGW_TOE_RXQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toe_emu/ring.h"

struct pbuf;

#define TOE_RXQ_REFS     256           /* reference slots (a power of two) */
#define TOE_RXQ_REF_MIN  32768         /* segments from this size go by reference: at
                                          least half of a 64 KiB receive buffer, so what
                                          a window's references hold stays under twice
                                          the window */

struct toe_rxref {
    uint64_t at;                       /* stream position of its first byte */
    struct pbuf *p;                    /* the chain, owned by the queue */
};

struct toe_rxq {
    struct toe_ring bytes;             /* the copied segments */
    struct toe_rxref *refs;            /* TOE_RXQ_REFS slots */

    /* producer */
    _Alignas(64) _Atomic uint64_t head;    /* stream bytes delivered */
    _Atomic uint64_t ref_head;             /* references published */
    uint64_t ref_freed;                    /* references reclaimed (pbufs dropped) */

    /* consumer */
    _Alignas(64) _Atomic uint64_t tail;    /* stream bytes taken */
    _Atomic uint64_t ref_tail;             /* references finished */
    const struct pbuf *cur;                /* within refs[ref_tail]: the pbuf at ... */
    size_t cur_off;                        /* ... this offset is next */
};

/* A ring of `ring_bytes` for the copies and the reference slots. 0 or -ENOMEM. */
int toe_rxq_init(struct toe_rxq *q, size_t ring_bytes);
/* Free everything; every pbuf still held goes to `drop` (once each). */
void toe_rxq_fini(struct toe_rxq *q, void (*drop)(struct pbuf *p));

/* Either side: stream bytes delivered and not yet taken (a snapshot). */
uint64_t toe_rxq_used(const struct toe_rxq *q);
uint64_t toe_rxq_taken(const struct toe_rxq *q);

/* ---- producer ---- */
/*
 * Deliver the chain `p` (tot_len bytes). Returns 1 when the queue took it by reference
 * (it now owns `p`), 0 when it copied it (the caller still owns `p` and frees it), -1 when
 * the ring has no room for a copy (nothing changed).
 */
int toe_rxq_put(struct toe_rxq *q, struct pbuf *p);
/* Hand every reference the consumer finished to `drop`. */
void toe_rxq_reclaim(struct toe_rxq *q, void (*drop)(struct pbuf *p));
/* Give the ring's pages back; only while toe_rxq_used is 0 (toe_ring_trim). */
void toe_rxq_trim(struct toe_rxq *q);

/* ---- consumer ---- */
/* Copy out up to `len` bytes of the stream, in order; returns the count (0: none now). */
size_t toe_rxq_read(struct toe_rxq *q, void *dst, size_t len);
/*
 * In place: point *data at the next bytes of the stream where they lie (the ring, or a
 * pbuf held by reference) and return how many are contiguous there (0: none now). They
 * stay put until toe_rxq_consume moves past them; nothing is released by looking.
 */
size_t toe_rxq_peek(struct toe_rxq *q, const void **data);
/* Move past up to `n` bytes, as a read would, without copying; returns how many. */
size_t toe_rxq_consume(struct toe_rxq *q, size_t n);

#endif
