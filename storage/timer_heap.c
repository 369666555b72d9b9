/*
 * timer_heap.c - a pairing heap of timers (see timer_heap.h).
 *
 * Each timer links to its leftmost child (`child`), its right sibling (`next`) and, to the
 * left, either its left sibling or, for a leftmost child, its parent (`prev`). A parent is
 * never due later than its children. Removing a timer cuts it (with its subtree) out of
 * its sibling list, pairs its children up left to right, joins the pairs right to left and
 * joins the result to the root: the classic two-pass pairing that keeps removal O(log n)
 * amortised.
 */
#include "storage/timer_heap.h"

/* Two trees (roots with no siblings) into one; the earlier root stays on top. */
static struct sto_timer *join(struct sto_timer *a, struct sto_timer *b)
{
    if (b->due_ms < a->due_ms) {
        struct sto_timer *t = a;
        a = b;
        b = t;
    }
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    b->prev = a;
    a->child = b;
    return a;
}

/* A sibling list (its first timer) into one tree: the two passes. */
static struct sto_timer *join_siblings(struct sto_timer *first)
{
    struct sto_timer *pairs = NULL; /* joined pairs, last first, chained by `next` */
    struct sto_timer *root = NULL;

    while (first) {
        struct sto_timer *a = first, *b = first->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b) {
            b->next = b->prev = NULL;
            a = join(a, b);
        }
        a->next = pairs;
        pairs = a;
    }
    while (pairs) {
        struct sto_timer *t = pairs;
        pairs = t->next;
        t->next = NULL;
        root = root ? join(root, t) : t;
    }
    return root;
}

void timer_heap_insert(struct timer_heap *h, struct sto_timer *t)
{
    t->child = t->next = t->prev = NULL;
    h->root = h->root ? join(h->root, t) : t;
    h->count++;
}

void timer_heap_remove(struct timer_heap *h, struct sto_timer *t)
{
    struct sto_timer *sub = join_siblings(t->child);

    if (t == h->root) {
        h->root = sub;
    } else {
        /* out of its sibling list: `prev` is its parent when it is the leftmost child */
        if (t->prev->child == t)
            t->prev->child = t->next;
        else
            t->prev->next = t->next;
        if (t->next)
            t->next->prev = t->prev;
        if (sub)
            h->root = join(h->root, sub);
    }
    t->child = t->next = t->prev = NULL;
    h->count--;
}
