/*
 * ring.h - the driver interface's byte ring: one producer thread, one consumer thread.
 *
 * Indices are 64-bit byte counts that only grow (never wrap in practice), so "used" is
 * head - tail and no slot is wasted. The producer owns `head`, the consumer owns `tail`;
 * each publishes its index with release order and reads the other's with acquire order,
 * so the bytes between them are visible to whoever owns them. The consumer may also look
 * at bytes in place (toe_ring_ptr) and release them later: the TOE's send path hands ring
 * memory to lwIP without copying and frees it only once the peer acknowledged it.
 *
 * No lwIP here: unit tests link this alone.
 */
#ifndef TOEGW_TOE_RING_H
#define TOEGW_TOE_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct toe_ring {
    uint8_t *buf;                          /* owned: mmap'd, `size` bytes */
    size_t size;                           /* a power of two */
    _Alignas(64) _Atomic uint64_t head;    /* written by the producer only */
    _Alignas(64) _Atomic uint64_t tail;    /* written by the consumer only */
};

/* `size` is rounded up to a power of two (at least 4096). 0 or -ENOMEM. */
int toe_ring_init(struct toe_ring *r, size_t size);
/*
 * toe_ring_init, and beside the ring `n` zeroed slots of `slot_size` bytes: the references a
 * queue keeps in one stream with the ring's bytes (rxq.h, txq.h). Returns the slots (the
 * caller frees them) or NULL, and then nothing is allocated.
 */
void *toe_ring_init_with_slots(struct toe_ring *r, size_t size, size_t n, size_t slot_size);
void toe_ring_fini(struct toe_ring *r);

/*
 * Give an empty ring's pages back to the kernel (they read as zeros and are committed again
 * as traffic touches them). Only its producer may call it, and only while used is 0: the
 * consumer has copied out and released everything, and nobody else writes.
 */
void toe_ring_trim(struct toe_ring *r);

/* Either side: bytes readable now (a snapshot). */
size_t toe_ring_used(const struct toe_ring *r);

/* ---- producer side ---- */
size_t toe_ring_space(const struct toe_ring *r);
/* Copy `len` bytes to ring index `at` (head <= at, at + len <= tail + size); no publish. */
void toe_ring_copy_in(struct toe_ring *r, uint64_t at, const void *src, size_t len);
void toe_ring_publish(struct toe_ring *r, size_t n);
/* Copy as much as fits and publish it; returns the count (0 when full). */
size_t toe_ring_write(struct toe_ring *r, const void *src, size_t len);
size_t toe_ring_writev(struct toe_ring *r, const struct iovec *iov, int iovcnt);

/* ---- consumer side ---- */
/* Copy `len` bytes from ring index `at` (tail <= at, at + len <= head). */
void toe_ring_copy_out(const struct toe_ring *r, uint64_t at, void *dst, size_t len);
void toe_ring_release(struct toe_ring *r, size_t n);
/* Copy out up to `len` bytes and release them; returns the count (0 when empty). */
size_t toe_ring_read(struct toe_ring *r, void *dst, size_t len);
/* The ring's memory at index `at` and how many bytes are contiguous from there. */
const uint8_t *toe_ring_ptr(const struct toe_ring *r, uint64_t at, size_t *contig);

static inline uint64_t toe_ring_head(const struct toe_ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_acquire);
}

static inline uint64_t toe_ring_tail(const struct toe_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
