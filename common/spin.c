/*
 * spin.c - adaptive busy-polling before a thread sleeps (spin.h says how it adapts).
 */
#include "common/spin.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define SPIN_START_NS      10000u   /* the first window after a short sleep */
#define SPIN_MIN_NS        5000u    /* shrunk below this: no spin */
#define SPIN_YIELD_LOST_NS 20000u   /* a yield this long ran another thread */
#define SPIN_LOAD_EVERY_NS 1000000u /* /proc/loadavg at most this often */

uint64_t spin_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void spin_init(struct spin_poll *s, unsigned max_us, bool polite)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    *s = (struct spin_poll){ .loadavg_fd = -1, .ncpus = n > 0 ? (unsigned)n : 1,
                             .polite = polite };
    if (max_us > SPIN_MAX_US)
        max_us = SPIN_MAX_US;
    s->max_ns = (uint64_t)max_us * 1000u;
    if (s->max_ns)
        s->loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
}

void spin_fini(struct spin_poll *s)
{
    if (s->loadavg_fd >= 0)
        close(s->loadavg_fd);
    s->loadavg_fd = -1;
}

/*
 * Are the CPUs wanted? The threads runnable besides this one (the fourth field, "3/345",
 * counts this thread too) fill every CPU online (polite) or are more than the CPUs. The
 * firmware's spin runs on a busy machine that is not overloaded: its yields give the CPU
 * to whoever shares it.
 */
static bool cpus_busy(struct spin_poll *s, uint64_t now)
{
    char buf[128];
    unsigned running;
    ssize_t n;

    if (now - s->busy_at < SPIN_LOAD_EVERY_NS)
        return s->cpus_busy;
    s->busy_at = now;
    s->cpus_busy = false;
    if (s->loadavg_fd < 0)
        return false;
    n = pread(s->loadavg_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    if (sscanf(buf, "%*f %*f %*f %u/", &running) == 1) {
        unsigned others = running ? running - 1 : 0;

        s->cpus_busy = s->polite ? others >= s->ncpus : others > s->ncpus;
    }
    return s->cpus_busy;
}

bool spin_for(struct spin_poll *s, bool (*ready)(void *arg), void *arg)
{
    uint64_t t0, t;

    s->spun_ns = 0;
    s->contended = false;
    if (!s->ns)
        return false;
    t0 = t = spin_now_ns();
    if (cpus_busy(s, t0))
        return false;
    while (t - t0 < s->ns) {
        if (ready(arg))
            return true;
        uint64_t y = spin_now_ns();
        sched_yield();
        t = spin_now_ns();
        if (t - y > SPIN_YIELD_LOST_NS) {
            s->contended = true;
            break;
        }
    }
    s->spun_ns = t - t0;
    return false;
}

void spin_slept(struct spin_poll *s, uint64_t slept_ns)
{
    if (!s->max_ns)
        return;
    if (!s->contended && s->spun_ns + slept_ns < s->max_ns) {
        s->ns = s->ns ? s->ns * 2 : SPIN_START_NS;
        if (s->ns > s->max_ns)
            s->ns = s->max_ns;
    } else {
        s->ns /= 2;
        if (s->ns < SPIN_MIN_NS)
            s->ns = 0;
    }
}
