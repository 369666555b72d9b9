/*
 * test_timer_heap.c - the storage loop's timers (storage/timer_heap.h, storage/loop.h):
 * the heap always offers its earliest timer, through any mix of inserts and removals of
 * any member (checked against a plain array, with repeated due times too); and through the
 * loop, armed timers fire once each, in due order, a disarmed or re-armed one fires only
 * when it is due, one armed from a firing timer fires after it, and one that keeps arming
 * itself for "now" does not hold the loop in one pass.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "storage/loop.h"
#include "storage/timer_heap.h"

#define N 2000

static struct sto_timer tm[N];
static bool in_heap[N];

/* The earliest due time among the timers in the heap, by looking at all of them. */
static uint64_t min_due(void)
{
    uint64_t best = UINT64_MAX;

    for (int i = 0; i < N; i++)
        if (in_heap[i] && tm[i].due_ms < best)
            best = tm[i].due_ms;
    return best;
}

static void check_first(struct timer_heap *h, size_t count)
{
    cr_assert_eq(h->count, count);
    if (!count) {
        cr_assert_null(timer_heap_first(h));
        return;
    }
    cr_assert_not_null(timer_heap_first(h));
    cr_assert_eq(timer_heap_first(h)->due_ms, min_due(),
                 "first is due at %lu, not the earliest %lu",
                 (unsigned long)timer_heap_first(h)->due_ms, (unsigned long)min_due());
}

/* Take the first timer until none is left: each time the earliest, never earlier than the last. */
static void drain_in_order(struct timer_heap *h, size_t count)
{
    for (uint64_t last = 0; count; count--) {
        struct sto_timer *t = timer_heap_first(h);
        check_first(h, count);
        cr_assert_geq(t->due_ms, last);
        last = t->due_ms;
        timer_heap_remove(h, t);
        in_heap[t - tm] = false;
    }
    check_first(h, 0);
}

Test(timer_heap, empty)
{
    struct timer_heap h = { 0 };

    cr_assert_null(timer_heap_first(&h));
    cr_assert_eq(h.count, 0);
}

Test(timer_heap, taking_the_first_gives_every_timer_in_due_order)
{
    struct timer_heap h = { 0 };

    srandom(7);
    for (int i = 0; i < N; i++) {
        tm[i].due_ms = (uint64_t)(random() % 500); /* many equal due times */
        timer_heap_insert(&h, &tm[i]);
        in_heap[i] = true;
    }
    drain_in_order(&h, N);
}

Test(timer_heap, any_mix_of_inserts_and_removals_of_any_member)
{
    struct timer_heap h = { 0 };
    size_t count = 0;

    srandom(11);
    for (int i = 0; i < N; i++)
        in_heap[i] = false;
    for (int step = 0; step < 200000; step++) {
        int i = (int)(random() % N);
        if (in_heap[i]) {
            timer_heap_remove(&h, &tm[i]);
            in_heap[i] = false;
            count--;
        } else {
            tm[i].due_ms = (uint64_t)(random() % 100000);
            timer_heap_insert(&h, &tm[i]);
            in_heap[i] = true;
            count++;
        }
        if (step % 97 == 0)
            check_first(&h, count);
    }
    drain_in_order(&h, count);
}

/* ---------------------------------------------------------------- through the loop */

static struct sto_loop *loop;
static int fired[8], nfired;
static struct sto_timer lt[8];

static void on_fire(struct sto_timer *t)
{
    fired[nfired++] = (int)(t - lt);
}

/* From timer 0: arm timer 7 for "now"; it must not fire in the same pass as timer 0. */
static void arm_seven(struct sto_timer *t)
{
    on_fire(t);
    sto_timer_arm(loop, &lt[7], 0);
}

static void run_for(uint64_t ms)
{
    uint64_t end = sto_now_ms() + ms;

    while (sto_now_ms() < end)
        cr_assert_eq(sto_loop_run_once(loop, 5), 0);
}

Test(timer_heap, the_loop_fires_each_timer_once_in_due_order)
{
    static const uint64_t after[] = { 40, 10, 30, 20, 50 };

    loop = sto_loop_new();
    cr_assert_not_null(loop);
    nfired = 0;
    for (int i = 0; i < 5; i++) {
        lt[i] = (struct sto_timer){ .cb = on_fire };
        sto_timer_arm(loop, &lt[i], after[i]);
    }
    /* disarmed: never fires; re-armed later: fires at its new time */
    sto_timer_disarm(loop, &lt[2]);
    sto_timer_arm(loop, &lt[1], 60);
    run_for(120);
    cr_assert_eq(nfired, 4, "%d timers fired", nfired);
    cr_assert_eq(fired[0], 3);
    cr_assert_eq(fired[1], 0);
    cr_assert_eq(fired[2], 4);
    cr_assert_eq(fired[3], 1);
    for (int i = 0; i < 5; i++)
        cr_assert(!lt[i].armed);
    sto_loop_free(loop);
}

Test(timer_heap, a_timer_armed_by_a_firing_timer_fires_after_it)
{
    loop = sto_loop_new();
    cr_assert_not_null(loop);
    nfired = 0;
    lt[0] = (struct sto_timer){ .cb = arm_seven };
    lt[7] = (struct sto_timer){ .cb = on_fire };
    sto_timer_arm(loop, &lt[0], 0);
    run_for(30);
    cr_assert_eq(nfired, 2, "%d timers fired", nfired);
    cr_assert_eq(fired[0], 0);
    cr_assert_eq(fired[1], 7);
    sto_loop_free(loop);
}

#define SELF_MAX 100000
static int self_fires;

static void rearm_self(struct sto_timer *t)
{
    if (++self_fires < SELF_MAX)
        sto_timer_arm(loop, t, 0);
}

Test(timer_heap, a_timer_arming_itself_for_now_does_not_hold_the_loop)
{
    loop = sto_loop_new();
    cr_assert_not_null(loop);
    self_fires = 0;
    lt[0] = (struct sto_timer){ .cb = rearm_self };
    sto_timer_arm(loop, &lt[0], 0);
    cr_assert_eq(sto_loop_run_once(loop, 0), 0);
    /* one pass runs what was due when it began: at most a millisecond's worth */
    cr_assert(self_fires >= 1 && self_fires < SELF_MAX, "%d fires in one pass", self_fires);
    cr_assert(lt[0].armed);
    sto_loop_free(loop);
}
