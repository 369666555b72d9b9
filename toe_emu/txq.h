/*
 * txq.h - a connection's send queue: the byte stream the consumer offers and the firmware
 * sends, one producer thread (the consumer) and one consumer thread (the firmware).
 *
 * Two kinds of bytes make one stream. Bytes written with toe_txq_writev are copied into a
 * byte ring (toe_emu/ring.h). Buffers put with toe_txq_put_ref are not copied: the queue
 * records where they are, the firmware hands that memory to lwIP as it is, and calls the
 * buffer's `done` once nothing refers to it any more (the peer acknowledged it, or the
 * queue is torn down). That takes the consumer's copy out of sending.
 *
 * Positions are 64-bit stream byte counts that only grow. `head` is what the consumer
 * offered; the firmware's `queued` is what it handed to lwIP and `released` what lwIP let
 * go of. Each reference records the stream position it starts at; every byte between two
 * references comes from the ring, in order. The consumer publishes ring bytes and
 * references first and `head` last (release), so a firmware that loaded `head` (acquire)
 * sees everything before it.
 *
 * No lwIP here: unit tests link this alone.
 */
#ifndef TOEGW_TOE_TXQ_H
#define TOEGW_TOE_TXQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "toe_emu/ring.h"

#define TOE_TXQ_REFS 64                /* reference slots (a power of two) */

struct toe_txref {
    uint64_t at;                       /* stream position of its first byte */
    const uint8_t *base;               /* the consumer's memory, `len` bytes */
    size_t len;
    void (*done)(void *arg);           /* called once nothing refers to it any more */
    void *arg;
};

struct toe_txq {
    struct toe_ring bytes;             /* the copied bytes */
    struct toe_txref *refs;            /* TOE_TXQ_REFS slots */

    /* the consumer (producer of the stream) */
    _Alignas(64) _Atomic uint64_t head;    /* stream bytes offered */
    _Atomic uint64_t ref_head;             /* references published */

    /* the firmware */
    _Alignas(64) _Atomic uint64_t ref_done;    /* references released (slots free again) */
    uint64_t queued;                           /* stream bytes handed on (toe_txq_sent) */
    uint64_t ref_queued;                       /* the first reference not wholly handed on */
    uint64_t ring_queued;                      /* ring index of the next ring byte to hand on */
    uint64_t released;                         /* stream bytes let go of (toe_txq_release) */
};

/* A ring of `ring_bytes` for the copies and the reference slots. 0 or -ENOMEM. */
int toe_txq_init(struct toe_txq *q, size_t ring_bytes);
/* Free everything; every reference not yet released gets its `done` (once each). */
void toe_txq_fini(struct toe_txq *q);


/* ---- the consumer ---- */
/* Ring space for writev now (references need none, only a slot). */
size_t toe_txq_space(const struct toe_txq *q);
/* Give the ring's pages back if it is empty (the ring's writer only: toe_ring_trim). */
bool toe_txq_trim(struct toe_txq *q);
/* Copy as much of `iov` as fits into the ring and offer it; returns the count (0: full). */
size_t toe_txq_writev(struct toe_txq *q, const struct iovec *iov, int iovcnt);
/*
 * Offer `len` (> 0) bytes at `base` by reference; `done(arg)` is called when they are no
 * longer needed, on the thread that releases them. Returns false when every slot is taken.
 */
bool toe_txq_put_ref(struct toe_txq *q, const void *base, size_t len,
                     void (*done)(void *arg), void *arg);

/* ---- the firmware ---- */
/* Stream bytes offered and not yet released. */
uint64_t toe_txq_used(const struct toe_txq *q);
/* Stream bytes offered and not yet handed on. */
uint64_t toe_txq_unsent(const struct toe_txq *q);
/* The next bytes to hand on, where they lie: *data and how many are contiguous (0: none). */
size_t toe_txq_next(struct toe_txq *q, const void **data);
/* Record that `n` bytes from toe_txq_next were handed on. */
void toe_txq_sent(struct toe_txq *q, size_t n);
/*
 * Everything before stream position `upto` (<= queued) is let go of: free its ring bytes
 * and call `done` for every reference wholly before it. Returns true when anything freed.
 */
bool toe_txq_release(struct toe_txq *q, uint64_t upto);
/* The connection is gone: everything offered so far is let go of without being sent. */
void toe_txq_abandon(struct toe_txq *q);

#endif
