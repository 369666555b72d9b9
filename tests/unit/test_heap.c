/*
 * test_heap.c - when the idle heap trim fires: once per quiet period, only after the
 * activity count stood still for APP_HEAP_QUIET_MS, never while it keeps moving. The clock
 * is passed in, so nothing here waits.
 */
#include <criterion/criterion.h>

#include "appliance/heap.h"

Test(heap, nothing_happened_nothing_to_trim)
{
    struct app_heap_idle h;

    app_heap_idle_init(&h, 1000);
    cr_assert_not(app_heap_idle_due(&h, 0, 1000));
    cr_assert_not(app_heap_idle_due(&h, 0, 1000 + 10 * APP_HEAP_QUIET_MS));
}

Test(heap, trims_once_after_quiet_period)
{
    struct app_heap_idle h;
    uint64_t t = 5000;

    app_heap_idle_init(&h, t);
    cr_assert_not(app_heap_idle_due(&h, 7, t));          /* activity */
    cr_assert_not(app_heap_idle_due(&h, 7, t + APP_HEAP_QUIET_MS - 1));
    cr_assert(app_heap_idle_due(&h, 7, t + APP_HEAP_QUIET_MS));
    /* once: the next ticks of the same quiet period do nothing */
    cr_assert_not(app_heap_idle_due(&h, 7, t + APP_HEAP_QUIET_MS + 500));
    cr_assert_not(app_heap_idle_due(&h, 7, t + 100 * APP_HEAP_QUIET_MS));
}

Test(heap, never_while_activity_moves)
{
    struct app_heap_idle h;
    uint64_t t = 0;

    app_heap_idle_init(&h, t);
    for (uint64_t n = 1; n <= 100; n++) {
        t += 500;
        cr_assert_not(app_heap_idle_due(&h, n, t), "trimmed under load at tick %lu",
                      (unsigned long)n);
    }
    cr_assert_not(app_heap_idle_due(&h, 100, t + APP_HEAP_QUIET_MS - 1));
    cr_assert(app_heap_idle_due(&h, 100, t + APP_HEAP_QUIET_MS));
    /* new activity opens a new quiet period */
    cr_assert_not(app_heap_idle_due(&h, 101, t + APP_HEAP_QUIET_MS + 1));
    cr_assert(app_heap_idle_due(&h, 101, t + 2 * APP_HEAP_QUIET_MS + 1));
}

Test(heap, tick_runs_the_trim)
{
    struct app_heap_idle h;

    /* the real clock: initialised long ago, the activity then quiet for longer than needed */
    app_heap_idle_init(&h, 0);
    h.activity = 3;
    h.dirty = true;
    app_heap_idle_tick(&h, 3);
    cr_assert_not(h.dirty, "a tick past the quiet period did not trim");
}
