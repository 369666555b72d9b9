/*
 * heap.h - gives the heap's free memory back to the system once the appliance is quiet.
 *
 * glibc keeps what a burst of I/O freed (NBD request buffers, PDU buffers: 150-200 MiB
 * with 32 busy NBD clients) in its arenas, so without this toegw's RSS stays at its peak
 * long after the load is gone. The main thread ticks this twice a second with an activity
 * count; once the count has stood still for APP_HEAP_QUIET_MS after changing, one
 * malloc_trim(0) returns the free pages. Never on a data path thread, never under load.
 */
#ifndef TOEGW_APPLIANCE_HEAP_H
#define TOEGW_APPLIANCE_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#define APP_HEAP_QUIET_MS 2000

struct app_heap_idle {
    uint64_t activity;          /* the count at the last tick */
    uint64_t changed_ms;        /* when it last changed */
    bool dirty;                 /* changed since the last trim */
};

/* CLOCK_MONOTONIC in milliseconds, the clock the ticks take. */
uint64_t app_heap_now_ms(void);
void app_heap_idle_init(struct app_heap_idle *h, uint64_t now_ms);
/*
 * Whether to trim now: `activity` is any count that moves when I/O is done or sessions
 * come and go. True once per quiet period, APP_HEAP_QUIET_MS after the last change.
 */
bool app_heap_idle_due(struct app_heap_idle *h, uint64_t activity, uint64_t now_ms);
/* One tick of the main thread: app_heap_idle_due, then malloc_trim(0) when it says so. */
void app_heap_idle_tick(struct app_heap_idle *h, uint64_t activity);

#endif
