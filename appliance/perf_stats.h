/*
 * perf_stats.h - what `toegw perf` measures besides counting: CPU time per thread (the
 * storage loop's own thread and the TOE's firmware thread, told apart by name) and the
 * latency of each request (percentiles).
 */
#ifndef APP_PERF_STATS_H
#define APP_PERF_STATS_H

#include <stddef.h>
#include <stdint.h>

/* CPU seconds (user + system) of the calling thread so far. */
double app_cpu_this_thread(void);

/*
 * CPU seconds (user + system) so far of every thread of this process named `comm`
 * (/proc/self/task/TID/comm; nanoseconds from schedstat where the kernel has it, clock
 * ticks from stat otherwise); 0 when none has that name.
 */
double app_cpu_threads_named(const char *comm);

/* Request latencies in nanoseconds, kept up to a fixed number of samples. */
struct app_lat {
    uint32_t *ns;
    size_t n, cap;
    uint64_t dropped;  /* samples beyond cap (not counted in the percentiles) */
};

int app_lat_init(struct app_lat *l, size_t cap);
void app_lat_add(struct app_lat *l, uint64_t ns);
/* Sorts the samples; then app_lat_pct(l, 0.99) is the 99th percentile in microseconds. */
void app_lat_finish(struct app_lat *l);
double app_lat_pct(const struct app_lat *l, double q);
double app_lat_mean_us(const struct app_lat *l);
void app_lat_free(struct app_lat *l);

#endif
