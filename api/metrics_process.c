/*
 * metrics_process.c - the process_* families every Prometheus client library exports
 * (CPU seconds, resident and virtual memory, descriptors open and allowed, start time),
 * read from /proc/self at each scrape, and toegw_build_info.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"

/* /proc/self/stat: utime and stime (ticks), starttime (ticks since boot), vsize, rss (pages). */
static int self_stat(unsigned long long *ticks, unsigned long long *start,
                     unsigned long long *vsize, long long *rss)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    unsigned long long ut, st;

    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
                     "%*d %*d %*d %*d %llu %llu %lld", &ut, &st, start, vsize, rss) != 5)
        return -1;
    *ticks = ut + st;
    return 0;
}

/* Seconds since the epoch at boot (/proc/stat btime). */
static long long boot_time(void)
{
    char line[256];
    long long bt = -1;
    FILE *f = fopen("/proc/stat", "re");

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &bt) == 1)
            break;
    if (f)
        fclose(f);
    return bt;
}

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n ? n - 1 : 0;                /* less opendir's own */
}

static void plain(struct api_buf *b, const char *name, const char *type, const char *help)
{
    api_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void api_metrics_process(struct api_buf *b)
{
    unsigned long long ticks, start, vsize;
    long long rss, bt = boot_time();
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;

    if (self_stat(&ticks, &start, &vsize, &rss) == 0 && hz > 0) {
        plain(b, "process_cpu_seconds_total", "counter", "CPU time of the process (user and "
              "system), in seconds.");
        api_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)ticks / (double)hz);
        plain(b, "process_resident_memory_bytes", "gauge", "Resident memory of the process.");
        api_buf_printf(b, "process_resident_memory_bytes %lld\n", rss * page);
        plain(b, "process_virtual_memory_bytes", "gauge", "Virtual memory of the process.");
        api_buf_printf(b, "process_virtual_memory_bytes %llu\n", vsize);
        if (bt > 0) {
            plain(b, "process_start_time_seconds", "gauge", "When the process started, in "
                  "seconds since the epoch.");
            api_buf_printf(b, "process_start_time_seconds %.2f\n",
                           (double)bt + (double)start / (double)hz);
        }
    }
    plain(b, "process_open_fds", "gauge", "Descriptors the process has open.");
    api_buf_printf(b, "process_open_fds %u\n", open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        plain(b, "process_max_fds", "gauge", "Descriptors the process may open.");
        api_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

void api_metrics_build_info(struct api_buf *b, const struct api_info *info)
{
    if (!info || !info->version)
        return;
    plain(b, "toegw_build_info", "gauge", "toegw's version and its libraries' (always 1).");
    api_buf_puts(b, "toegw_build_info{version=\"");
    api_metrics_label(b, info->version);
    for (size_t i = 0; i < API_INFO_LIBS && info->libraries[i].name; i++) {
        char key[40];
        size_t k = 0;
        /* a label name: [a-zA-Z_][a-zA-Z0-9_]* ("isa-l" -> "isa_l") */
        for (const char *p = info->libraries[i].name; *p && k + 1 < sizeof(key); p++)
            key[k++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_';
        key[k] = '\0';
        api_buf_printf(b, "\",%s=\"", key);
        api_metrics_label(b, info->libraries[i].version);
    }
    api_buf_puts(b, "\"} 1\n");
}
