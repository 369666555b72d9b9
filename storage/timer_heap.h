/*
 * timer_heap.h - the storage loop's armed timers, ordered by due time.
 *
 * An intrusive pairing heap: the links live in the timers themselves (struct sto_timer,
 * storage/loop.h), so arming never allocates and cannot fail. The earliest timer is the
 * root (O(1)); inserting is O(1); removing any timer is O(log n) amortised. The loop looks
 * at the earliest timer on every iteration, so with hundreds of sessions (each with its
 * NOP and command timers) that look must not walk them all.
 *
 * Single-threaded: the heap belongs to one storage loop.
 */
#ifndef TOEGW_STORAGE_TIMER_HEAP_H
#define TOEGW_STORAGE_TIMER_HEAP_H

#include <stddef.h>

#include "storage/loop.h"

struct timer_heap {
    struct sto_timer *root; /* the earliest timer, or NULL */
    size_t count;
};

/* Insert `t` (not in any heap) by its due_ms. */
void timer_heap_insert(struct timer_heap *h, struct sto_timer *t);
/* Remove `t`, which is in `h`. */
void timer_heap_remove(struct timer_heap *h, struct sto_timer *t);

/* The timer due first, or NULL when the heap is empty. */
static inline struct sto_timer *timer_heap_first(const struct timer_heap *h)
{
    return h->root;
}

#endif
