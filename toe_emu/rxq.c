/*
 * rxq.c - a connection's receive queue: copied small segments and large ones by reference,
 * one ordered stream (rxq.h says how the two sides meet).
 */
#include "toe_emu/rxq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/pbuf.h"

_Static_assert((TOE_RXQ_REFS & (TOE_RXQ_REFS - 1)) == 0, "TOE_RXQ_REFS: a power of two");

static struct toe_rxref *slot(const struct toe_rxq *q, uint64_t i)
{
    return &q->refs[i & (TOE_RXQ_REFS - 1)];
}

int toe_rxq_init(struct toe_rxq *q, size_t ring_bytes)
{
    memset(q, 0, sizeof(*q));
    q->refs = toe_ring_init_with_slots(&q->bytes, ring_bytes, TOE_RXQ_REFS, sizeof(*q->refs));
    return q->refs ? 0 : -ENOMEM;
}

void toe_rxq_fini(struct toe_rxq *q, void (*drop)(struct pbuf *p))
{
    if (!q->refs)
        return;
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_acquire);

    for (uint64_t i = q->ref_freed; i != rh; i++)
        drop(slot(q, i)->p);
    q->ref_freed = rh;
    free(q->refs);
    q->refs = NULL;
    toe_ring_fini(&q->bytes);
}

uint64_t toe_rxq_used(const struct toe_rxq *q)
{
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);

    return atomic_load_explicit(&q->head, memory_order_acquire) - tail;
}

uint64_t toe_rxq_taken(const struct toe_rxq *q)
{
    return atomic_load_explicit(&q->tail, memory_order_acquire);
}

/* ---- producer -------------------------------------------------------------------------- */

/* Worth keeping by reference: large, and held in the adapter's own buffers throughout. */
static bool by_reference(const struct pbuf *p)
{
    if (p->tot_len < TOE_RXQ_REF_MIN)
        return false;
    for (; p; p = p->next) {
        if (!(p->flags & PBUF_FLAG_IS_CUSTOM))
            return false;
    }
    return true;
}

int toe_rxq_put(struct toe_rxq *q, struct pbuf *p)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_relaxed);

    if (rh - q->ref_freed < TOE_RXQ_REFS && by_reference(p)) {
        *slot(q, rh) = (struct toe_rxref){ .at = head, .p = p };
        atomic_store_explicit(&q->ref_head, rh + 1, memory_order_release);
        atomic_store_explicit(&q->head, head + p->tot_len, memory_order_release);
        return 1;
    }
    if (p->tot_len > toe_ring_space(&q->bytes))
        return -1;

    uint64_t at = toe_ring_head(&q->bytes);
    for (const struct pbuf *s = p; s; s = s->next) {
        toe_ring_copy_in(&q->bytes, at, s->payload, s->len);
        at += s->len;
    }
    toe_ring_publish(&q->bytes, p->tot_len);
    atomic_store_explicit(&q->head, head + p->tot_len, memory_order_release);
    return 0;
}

void toe_rxq_reclaim(struct toe_rxq *q, void (*drop)(struct pbuf *p))
{
    uint64_t done = atomic_load_explicit(&q->ref_tail, memory_order_acquire);

    while (q->ref_freed != done) {
        struct toe_rxref *r = slot(q, q->ref_freed);

        drop(r->p);
        r->p = NULL;
        q->ref_freed++;
    }
}

void toe_rxq_trim(struct toe_rxq *q)
{
    toe_ring_trim(&q->bytes);
}

/* ---- consumer -------------------------------------------------------------------------- */

/*
 * The pbuf of the reference `r` the consumer is at, past the ones it finished and any
 * empty ones lwIP leaves at the front of a trimmed chain; NULL when none is left.
 */
static const struct pbuf *ref_cursor(struct toe_rxq *q, const struct toe_rxref *r)
{
    if (!q->cur) {
        q->cur = r->p;
        q->cur_off = 0;
    }
    while (q->cur && q->cur_off == q->cur->len) {
        q->cur = q->cur->next;
        q->cur_off = 0;
    }
    return q->cur;
}

/*
 * Take up to `len` bytes from the reference `r`, which starts at or before the stream
 * position `pos`: copied to `dst`, or only released when `dst` is NULL.
 */
static size_t take_ref(struct toe_rxq *q, const struct toe_rxref *r, uint64_t pos,
                       uint8_t *dst, size_t len)
{
    size_t done = 0;

    while (done < len && ref_cursor(q, r)) {
        size_t n = q->cur->len - q->cur_off;

        if (n > len - done)
            n = len - done;
        if (dst)
            memcpy(dst + done, (const uint8_t *)q->cur->payload + q->cur_off, n);
        done += n;
        q->cur_off += n;
    }
    if (pos + done == r->at + r->p->tot_len) {
        /* Finished: the producer may free it from now on. */
        q->cur = NULL;
        atomic_store_explicit(&q->ref_tail, atomic_load_explicit(&q->ref_tail,
                              memory_order_relaxed) + 1, memory_order_release);
    }
    return done;
}

/* The reference the stream position `pos` lies in or starts, or NULL (ring bytes). */
static const struct toe_rxref *ref_at(const struct toe_rxq *q, uint64_t pos, uint64_t rh,
                                      uint64_t *next_at)
{
    uint64_t rt = atomic_load_explicit(&q->ref_tail, memory_order_relaxed);
    const struct toe_rxref *r = rt != rh ? slot(q, rt) : NULL;

    if (r && r->at <= pos)
        return r;
    if (r)
        *next_at = r->at;          /* ring bytes end where it starts */
    return NULL;
}

/* Move the consumer's side `len` bytes on, copying them to `dst` unless it is NULL. */
static size_t take(struct toe_rxq *q, uint8_t *dst, size_t len)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_acquire);
    size_t done = 0;

    while (done < len && pos < head) {
        uint64_t upto = head;
        const struct toe_rxref *r = ref_at(q, pos, rh, &upto);
        size_t n = len - done;

        if (r) {
            n = take_ref(q, r, pos, dst ? dst + done : NULL, n);
        } else {
            /* Ring bytes, up to the next reference (everything before `head` is there). */
            if (n > upto - pos)
                n = (size_t)(upto - pos);
            if (dst)
                n = toe_ring_read(&q->bytes, dst + done, n);
            else
                toe_ring_release(&q->bytes, n);
        }
        if (n == 0)
            break;
        done += n;
        pos += n;
    }
    if (done)
        atomic_store_explicit(&q->tail, pos, memory_order_release);
    return done;
}

size_t toe_rxq_read(struct toe_rxq *q, void *dst, size_t len)
{
    return take(q, dst, len);
}

size_t toe_rxq_peek(struct toe_rxq *q, const void **data)
{
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t rh = atomic_load_explicit(&q->ref_head, memory_order_acquire);
    uint64_t upto = head;
    const struct toe_rxref *r;
    size_t contig;

    if (pos == head)
        return 0;
    r = ref_at(q, pos, rh, &upto);
    if (r) {
        if (!ref_cursor(q, r))
            return 0;
        *data = (const uint8_t *)q->cur->payload + q->cur_off;
        return q->cur->len - q->cur_off;
    }
    *data = toe_ring_ptr(&q->bytes, toe_ring_tail(&q->bytes), &contig);
    return upto - pos < contig ? (size_t)(upto - pos) : contig;
}

size_t toe_rxq_consume(struct toe_rxq *q, size_t n)
{
    return take(q, NULL, n);
}
