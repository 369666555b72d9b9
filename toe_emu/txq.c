/*
 * txq.c - a connection's send queue: copied bytes and the consumer's buffers by
 * reference, one ordered stream (txq.h says how the two sides meet).
 */
#include "toe_emu/txq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((TOE_TXQ_REFS & (TOE_TXQ_REFS - 1)) == 0, "TOE_TXQ_REFS: a power of two");

static struct toe_txref *slot(const struct toe_txq *q, uint64_t i)
{
    return &q->refs[i & (TOE_TXQ_REFS - 1)];
}

int toe_txq_init(struct toe_txq *q, size_t ring_bytes)
{
    memset(q, 0, sizeof(*q));
    q->refs = toe_ring_init_with_slots(&q->bytes, ring_bytes, TOE_TXQ_REFS, sizeof(*q->refs));
    return q->refs ? 0 : -ENOMEM;
}

void toe_txq_fini(struct toe_txq *q)
{
    if (!q->refs)
        return;
    toe_txq_abandon(q);
    free(q->refs);
    q->refs = NULL;
    toe_ring_fini(&q->bytes);
}

uint64_t toe_txq_used(const struct toe_txq *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire) - q->released;
}

/* ---- the consumer ---------------------------------------------------------------------- */

size_t toe_txq_space(const struct toe_txq *q)
{
    return toe_ring_space(&q->bytes);
}

bool toe_txq_trim(struct toe_txq *q)
{
    if (toe_ring_used(&q->bytes) != 0)
        return false;
    toe_ring_trim(&q->bytes);
    return true;
}

size_t toe_txq_writev(struct toe_txq *q, const struct iovec *iov, int iovcnt)
{
    size_t n = toe_ring_writev(&q->bytes, iov, iovcnt);

    if (n)
        atomic_store_explicit(&q->head, atomic_load_explicit(&q->head, memory_order_relaxed) + n,
                              memory_order_release);
    return n;
}

bool toe_txq_put_ref(struct toe_txq *q, const void *base, size_t len,
                     void (*done)(void *arg), void *arg)
{
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);

    if (rh - atomic_load_explicit(&q->ref_done, memory_order_acquire) >= TOE_TXQ_REFS)
        return false;
    *slot(q, rh) = (struct toe_txref){ .at = head, .base = base, .len = len, .done = done,
                                       .arg = arg };
    atomic_store_explicit(&q->ref_head, rh + 1, memory_order_release);
    atomic_store_explicit(&q->head, head + len, memory_order_release);
    return true;
}

/* ---- the firmware ---------------------------------------------------------------------- */

uint64_t toe_txq_unsent(const struct toe_txq *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire) - q->queued;
}

/*
 * The reference stream position `pos` lies in, among those from index `i` on, or NULL
 * when `pos` is in ring bytes; then *ring_end is where those end: the next reference's
 * start, but never beyond `limit` (a reference may be published before the `head` that
 * counts it).
 */
static const struct toe_txref *ref_at(const struct toe_txq *q, uint64_t i, uint64_t pos,
                                      uint64_t limit, uint64_t *ring_end)
{
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_acquire);
    const struct toe_txref *r = i != rh ? slot(q, i) : NULL;

    *ring_end = limit;
    if (r && r->at <= pos)
        return r;
    if (r && r->at < limit)
        *ring_end = r->at;
    return NULL;
}

size_t toe_txq_next(struct toe_txq *q, const void **data)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint64_t end;
    const struct toe_txref *r;
    size_t contig;

    if (q->queued == head)
        return 0;
    r = ref_at(q, q->ref_queued, q->queued, head, &end);
    if (r) {
        *data = r->base + (q->queued - r->at);
        return (size_t)(r->at + r->len - q->queued);
    }
    *data = toe_ring_ptr(&q->bytes, q->ring_queued, &contig);
    return end - q->queued < contig ? (size_t)(end - q->queued) : contig;
}

void toe_txq_sent(struct toe_txq *q, size_t n)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

    while (n) {
        uint64_t end;
        const struct toe_txref *r = ref_at(q, q->ref_queued, q->queued, head, &end);
        size_t k;

        if (r) {
            k = (size_t)(r->at + r->len - q->queued);
            if (k > n)
                k = n;
            if (q->queued + k == r->at + r->len)
                q->ref_queued++;
        } else {
            k = end - q->queued < n ? (size_t)(end - q->queued) : n;
            q->ring_queued += k;
        }
        if (k == 0)
            break;                     /* more than was offered: nothing more to hand on */
        q->queued += k;
        n -= k;
    }
}

bool toe_txq_release(struct toe_txq *q, uint64_t upto)
{
    uint64_t done = atomic_load_explicit(&q->ref_done, memory_order_relaxed);
    bool freed = false;

    while (q->released < upto) {
        uint64_t end;
        const struct toe_txref *r = ref_at(q, done, q->released, upto, &end);

        if (r) {
            if (r->at + r->len > upto)
                break;                 /* partly acknowledged: kept whole until the rest is */
            q->released = r->at + r->len;
            r->done(r->arg);
            atomic_store_explicit(&q->ref_done, ++done, memory_order_release);
        } else {
            toe_ring_release(&q->bytes, (size_t)(end - q->released));
            q->released = end;
        }
        freed = true;
    }
    return freed;
}

void toe_txq_abandon(struct toe_txq *q)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

    toe_txq_sent(q, (size_t)(head - q->queued));
    toe_txq_release(q, head);
}
