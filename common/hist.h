/*
 * hist.h - a latency histogram with fixed buckets (from 50 µs to 5 s), cheap enough to
 * take every I/O: one comparison walk and three additions, no allocation. The owner's
 * thread writes it; readers take a copy (a torn read costs one sample, never memory).
 * Rendered as a Prometheus histogram (cumulative buckets, _sum, _count) by the API.
 */
#ifndef TOEGW_COMMON_HIST_H
#define TOEGW_COMMON_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 14

/* The buckets' upper bounds, in microseconds (the last bucket ends at +Inf). */
static const uint32_t hist_bounds_us[HIST_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000,
};

struct hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t bucket[HIST_BUCKETS];  /* samples in (bound[i-1], bound[i]]; not cumulative */
};

/* Count one sample of ns nanoseconds. */
static inline void hist_add(struct hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;

    h->count++;
    h->sum_ns += ns;
    for (int i = 0; i < HIST_BUCKETS; i++)
        if (us <= hist_bounds_us[i]) {
            h->bucket[i]++;
            return;
        }
}

#endif
