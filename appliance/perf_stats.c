/*
 * perf_stats.c - per-thread CPU time and request latency percentiles for `toegw perf`.
 */
#include "appliance/perf_stats.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double app_cpu_this_thread(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One task's CPU seconds: schedstat's first field (ns on CPU), else stat's utime+stime. */
static double task_cpu(const char *tid)
{
    char path[64], buf[1024];
    unsigned long long ns, ut, st;
    FILE *f;
    double s = 0;

    snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", tid);
    f = fopen(path, "r");
    if (f) {
        int ok = fscanf(f, "%llu", &ns) == 1;

        fclose(f);
        if (ok)
            return (double)ns / 1e9;
    }
    snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f)) {
        /* fields after the ")" closing comm: state is field 3, utime 14, stime 15 */
        char *p = strrchr(buf, ')');

        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                        &ut, &st) == 2)
            s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    fclose(f);
    return s;
}

double app_cpu_threads_named(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    double total = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[64], name[32];
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof(name), f)) {
            name[strcspn(name, "\n")] = '\0';
            if (strcmp(name, comm) == 0)
                total += task_cpu(e->d_name);
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

int app_lat_init(struct app_lat *l, size_t cap)
{
    memset(l, 0, sizeof(*l));
    l->ns = malloc(cap * sizeof(*l->ns));
    if (!l->ns)
        return -1;
    l->cap = cap;
    return 0;
}

void app_lat_add(struct app_lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->dropped++;
        return;
    }
    l->ns[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

void app_lat_finish(struct app_lat *l)
{
    if (l->n)
        qsort(l->ns, l->n, sizeof(*l->ns), cmp_u32);
}

double app_lat_pct(const struct app_lat *l, double q)
{
    size_t i;

    if (!l->n)
        return 0;
    i = (size_t)(q * (double)(l->n - 1) + 0.5);
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->ns[i] / 1e3;
}

double app_lat_mean_us(const struct app_lat *l)
{
    double sum = 0;

    for (size_t i = 0; i < l->n; i++)
        sum += l->ns[i];
    return l->n ? sum / (double)l->n / 1e3 : 0;
}

void app_lat_free(struct app_lat *l)
{
    free(l->ns);
    l->ns = NULL;
}
