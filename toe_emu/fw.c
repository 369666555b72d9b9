/*
 * fw.c - the adapter's firmware thread: the only thread that runs lwIP.
 *
 * One poll() on the TAP, the wake eventfd and lwIP's next timeout. Each round: read a batch
 * of frames into lwIP, run control commands, act on consumers' closes, serve the connections
 * whose consumers rang the doorbell, run lwIP's timers, and push out the super-frame being
 * merged (closes also run before each command: no command overtakes a close). Consumers
 * ring the wake eventfd only when this thread announced it is about to sleep, so a busy
 * adapter takes doorbells without a syscall on either side.
 *
 * Before it sleeps, the thread busy-polls for a while (cfg.busy_poll_us at most): the
 * doorbells and the wire are watched without announcing sleep, so a reply or a request that
 * comes soon costs neither a wakeup here nor an eventfd write in the consumer. The window
 * adapts to the gaps seen and the spin gives way whenever another thread wants the CPU
 * (common/spin.h).
 */
#include "toe_emu/toe_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/spin.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

/* The relations lwIP's disabled sanity checks stand for, at the MSS a jumbo wire uses. */
_Static_assert(TCP_SND_QUEUELEN >= 2 * (TCP_SND_BUF / 1460) + 8,
               "send queue too short for the send buffer at MTU 1500");
_Static_assert(TCP_SNDLOWAT < TCP_SND_BUF, "TCP_SNDLOWAT must be below TCP_SND_BUF");
_Static_assert(TOE_RX_RING_BYTES >= TCP_WND, "the receive ring must hold a full window");
_Static_assert(TCP_WND <= (0xffffu << TCP_RCV_SCALE), "window too large for its scale");

/* lwIP's clock (NO_SYS port hook): milliseconds, wrapping. */
u32_t sys_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void toe_lwip_assert(const char *msg, const char *file, int line)
{
    log_error("toe", "lwip assertion failed at %s:%d: %s", file, line, msg);
    abort();
}

void toe_lwip_diag(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit(LOG_LVL_DEBUG, "lwip", fmt, ap);
    va_end(ap);
}

/* Initial sequence numbers and ports: unpredictable, as a real stack's. */
uint32_t toe_lwip_rand(void)
{
    static __thread uint64_t s;
    uint64_t z;

    if (s == 0 && getrandom(&s, sizeof(s), 0) != sizeof(s))
        s = (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
    z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)(z ^ (z >> 31));
}

/* Fold lwIP's 32-bit MIB counters into 64-bit totals (often enough that none wraps twice). */
void toe_fw_fold_mib(struct toe_dev *dev)
{
    const uint32_t now[9] = {
        lwip_stats.mib2.tcpactiveopens, lwip_stats.mib2.tcpattemptfails,
        lwip_stats.mib2.tcpestabresets, lwip_stats.mib2.tcpinsegs,
        lwip_stats.mib2.tcpoutsegs, lwip_stats.mib2.tcpretranssegs,
        lwip_stats.mib2.tcpinerrs, lwip_stats.mib2.tcpoutrsts, lwip_stats.tcp.drop,
    };

    for (int i = 0; i < 9; i++) {
        dev->mib_acc[i] += (uint32_t)(now[i] - dev->mib_last[i]);
        dev->mib_last[i] = now[i];
    }
    dev->mib_fold_at = sys_now();
}

/*
 * Closes first, before every command: a consumer's close comes before anything it asks
 * afterwards (a toe_connect on the port it just gave back must not find the old pcb).
 */
static void run_commands(struct toe_dev *dev)
{
    for (;;) {
        struct toe_cmd *cmd;

        toe_conn_run_closes(dev);
        pthread_mutex_lock(&dev->cmd_lock);
        cmd = dev->cmd_head;
        if (cmd) {
            dev->cmd_head = cmd->next;
            if (!dev->cmd_head)
                dev->cmd_tail = NULL;
        }
        pthread_mutex_unlock(&dev->cmd_lock);
        if (!cmd)
            return;

        int rc = cmd->fn(dev, cmd->arg);

        toe_netif_flush(dev);
        pthread_mutex_lock(&dev->cmd_lock);
        cmd->rc = rc;
        atomic_store_explicit(&cmd->done, true, memory_order_release);
        pthread_cond_broadcast(&dev->cmd_cond);
        pthread_mutex_unlock(&dev->cmd_lock);
    }
}

/* A conn may be on both lists: conn_reap frees it only once neither holds it any more. */
static void run_kicks(struct toe_dev *dev)
{
    struct toe_conn *c;

    toe_conn_run_closes(dev);
    c = atomic_exchange(&dev->kick_head, NULL);
    while (c) {
        struct toe_conn *next = c->kick_next;

        atomic_store(&c->kicked, 0);
        toe_conn_service(c);
        c = next;
    }
}

static bool work_queued(struct toe_dev *dev)
{
    bool cmds;

    if (atomic_load(&dev->kick_head) || atomic_load(&dev->close_head))
        return true;
    pthread_mutex_lock(&dev->cmd_lock);
    cmds = dev->cmd_head != NULL;
    pthread_mutex_unlock(&dev->cmd_lock);
    return cmds;
}

/* What the spin looks at: the device's lists, and its TAP and wake fds. */
struct fw_look {
    struct toe_dev *dev;
    struct pollfd *pfd;
};

/* For the spin: a doorbell, a close, a frame on the wire or a wake (pfd's revents say). */
static bool fw_ready(void *arg)
{
    struct fw_look *l = arg;

    if (atomic_load_explicit(&l->dev->kick_head, memory_order_relaxed) ||
        atomic_load_explicit(&l->dev->close_head, memory_order_relaxed)) {
        l->pfd[0].revents = l->pfd[1].revents = 0;
        return true;
    }
    return poll(l->pfd, 2, 0) > 0;
}

/* Wait for work: a spin first when that pays, then poll() until the next deadline. */
static int fw_wait(struct toe_dev *dev, struct pollfd *pfd, uint32_t sleep_ms)
{
    struct fw_look look = { dev, pfd };
    uint64_t t0;
    int timeout, n;

    if (work_queued(dev))
        return poll(pfd, 2, 0);
    if (sleep_ms > 0 && spin_for(&dev->spin, fw_ready, &look))
        return 1;
    atomic_store(&dev->sleeping, 1);
    timeout = work_queued(dev) ? 0 : (int)sleep_ms;
    t0 = spin_now_ns();
    n = poll(pfd, 2, timeout);
    atomic_store(&dev->sleeping, 0);
    if (timeout)
        spin_slept(&dev->spin, spin_now_ns() - t0);
    return n;
}

void *toe_fw_main(void *arg)
{
    struct toe_dev *dev = arg;
    struct pollfd pfd[2] = {
        { .fd = dev->tap_fd, .events = POLLIN },
        { .fd = dev->wake_fd, .events = POLLIN },
    };

    spin_init(&dev->spin, dev->cfg.busy_poll_us, false);
    while (!dev->stop) {
        uint32_t now = sys_now();
        uint32_t sleep_ms = sys_timeouts_sleeptime();

        sleep_ms = toe_netif_next_deadline(dev, now, sleep_ms);
        if (sleep_ms > 1000)
            sleep_ms = 1000;
        int n = fw_wait(dev, pfd, sleep_ms);

        if (n < 0 && errno != EINTR) {
            log_error("toe", "firmware poll failed: %s", strerror(errno));
            break;
        }
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            uint64_t v;

            if (read(dev->wake_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: another round already took it */
            }
        }
        if (n > 0 && (pfd[0].revents & POLLIN))
            toe_netif_rx(dev);
        toe_netif_flush(dev);
        run_commands(dev);
        run_kicks(dev);
        toe_netif_flush(dev);
        sys_check_timeouts();
        toe_netif_timers(dev);
        toe_netif_flush(dev);
        if ((uint32_t)(sys_now() - dev->mib_fold_at) >= 1000)
            toe_fw_fold_mib(dev);
    }
    spin_fini(&dev->spin);
    return NULL;
}
