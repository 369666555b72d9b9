/*
 * heap.c - malloc_trim once the appliance has been quiet for a while (see heap.h).
 */
#include "appliance/heap.h"

#include <malloc.h>
#include <time.h>

#include "common/log.h"

uint64_t app_heap_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void app_heap_idle_init(struct app_heap_idle *h, uint64_t now_ms)
{
    h->activity = 0;
    h->changed_ms = now_ms;
    h->dirty = false;
}

bool app_heap_idle_due(struct app_heap_idle *h, uint64_t activity, uint64_t now_ms)
{
    if (activity != h->activity) {
        h->activity = activity;
        h->changed_ms = now_ms;
        h->dirty = true;
        return false;
    }
    if (!h->dirty || now_ms - h->changed_ms < APP_HEAP_QUIET_MS)
        return false;
    h->dirty = false;
    return true;
}

void app_heap_idle_tick(struct app_heap_idle *h, uint64_t activity)
{
    if (!app_heap_idle_due(h, activity, app_heap_now_ms()))
        return;
    /* walks every arena and madvise()s its free pages away: a few ms for 200 MiB */
    int freed = malloc_trim(0);
    log_debug("serve", "quiet for %u ms: heap trimmed (%s)", APP_HEAP_QUIET_MS,
              freed ? "memory returned to the system" : "nothing to return");
}
