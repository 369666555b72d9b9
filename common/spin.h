/*
 * spin.h - adaptive busy-polling before a thread sleeps: the TOE's firmware thread and the
 * storage loops look for work for a short while before they block in poll/epoll_wait, so
 * that a reply or a request arriving soon costs no wakeup.
 *
 * The window adapts to the gaps the thread sees, as a hypervisor's halt-polling does: after
 * a sleep that ended within the limit it doubles (from 10 µs), after a longer sleep it
 * halves (below 5 µs: no spin). A spin yields the CPU between looks and ends as soon as a
 * yield let another thread run; and none starts while the CPUs are wanted (/proc/loadavg,
 * looked at once a millisecond at most): for a polite poller (the storage loops, on the
 * host's CPUs) as soon as the threads runnable besides it fill every CPU, for the TOE's
 * firmware (which stands for the adapter's own processor) only when they are more than
 * the CPUs. So an idle thread sleeps, and a spin keeps no CPU from those that need it.
 *
 * One struct per thread, used by that thread only.
 */
#ifndef TOEGW_SPIN_H
#define TOEGW_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#define SPIN_MAX_US 10000u             /* the largest limit a flag may set */

struct spin_poll {
    uint64_t ns;                       /* the current window; 0: no spin */
    uint64_t max_ns;                   /* its limit; 0: never spin */
    int loadavg_fd;                    /* /proc/loadavg, or -1 */
    unsigned ncpus;
    bool polite;                       /* yield the CPUs sooner (spin_init) */
    bool cpus_busy;                    /* as of busy_at (ns) */
    uint64_t busy_at;
    uint64_t spun_ns;                  /* the last spin: how long ... */
    bool contended;                    /* ... and whether a yield ran another thread */
};

/* `polite`: stop spinning once the other runnable threads fill the CPUs (not only beyond). */
void spin_init(struct spin_poll *s, unsigned max_us, bool polite);
void spin_fini(struct spin_poll *s);
uint64_t spin_now_ns(void);

/*
 * Spin until ready(arg) says there is work (true), or the window ends or another thread
 * wanted the CPU (false; the thread then sleeps and calls spin_slept). ready() is called
 * once per look; it may make one non-blocking syscall (poll or epoll_wait with no timeout).
 */
bool spin_for(struct spin_poll *s, bool (*ready)(void *arg), void *arg);
/* After the sleep that followed: it lasted `slept_ns`. */
void spin_slept(struct spin_poll *s, uint64_t slept_ns);

#endif
