/*
 * dev.c - the adapter object: creation, control calls, counters, connection table.
 *
 * Control calls are commands run on the firmware thread (toe_dev_call), so that lwIP and
 * the wire state have a single owner; the caller waits for the answer: a short while on the
 * CPU first (a command takes the firmware a few microseconds once it is awake, and a
 * connect is on the path of every offloaded connection), then asleep.
 */
#include "toe_emu/toe_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/stats.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

static __thread char last_err[256];
static _Atomic bool dev_exists;     /* lwIP is one stack per process */
static bool lwip_ready;             /* lwip_init ran (only from toe_dev_new, serialised) */

void toe_err_set(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_err, sizeof(last_err), fmt, ap);
    va_end(ap);
}

const char *toe_strerror(void)
{
    return last_err;
}

const char *toe_stack_version(void)
{
    return "lwIP " LWIP_VERSION_STRING;
}

void toe_config_defaults(struct toe_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->ifname, sizeof(cfg->ifname), "toe0");
    inet_pton(AF_INET, "192.0.2.2", &cfg->addr);
    cfg->prefix = 24;
    inet_pton(AF_INET, "192.0.2.1", &cfg->host_addr);
    cfg->host_prefix = 24;
    cfg->mtu = 9000;
    cfg->connect_timeout_ms = 3000;
    cfg->max_conns = 1024;
    cfg->busy_poll_us = 200;
}

void toe_dev_wake(struct toe_dev *dev)
{
    static const uint64_t one = 1;

    if (atomic_exchange(&dev->sleeping, 0) && write(dev->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the firmware wakes anyway */
    }
}

/* How long a control call waits for its answer on the CPU before it sleeps. */
#define CMD_SPIN_NS 100000u

/*
 * Wait for the firmware to answer without sleeping, yielding between looks (the firmware
 * may need this CPU); false once CMD_SPIN_NS passed. The firmware sets `done` last and
 * touches the command no more after it, so the caller may return as soon as it sees it.
 */
static bool cmd_spin(const struct toe_cmd *cmd)
{
    uint64_t t0 = spin_now_ns();

    do {
        if (atomic_load_explicit(&cmd->done, memory_order_acquire))
            return true;
        sched_yield();
    } while (spin_now_ns() - t0 < CMD_SPIN_NS);
    return false;
}

int toe_dev_call(struct toe_dev *dev, int (*fn)(struct toe_dev *, void *), void *arg)
{
    struct toe_cmd cmd = { .fn = fn, .arg = arg };

    pthread_mutex_lock(&dev->cmd_lock);
    if (dev->stopping) {
        pthread_mutex_unlock(&dev->cmd_lock);
        toe_err_set("toe: the adapter is shutting down");
        return -ENETDOWN;
    }
    if (dev->cmd_tail)
        dev->cmd_tail->next = &cmd;
    else
        dev->cmd_head = &cmd;
    dev->cmd_tail = &cmd;
    pthread_mutex_unlock(&dev->cmd_lock);
    atomic_store(&dev->sleeping, 1);   /* force the wake write: commands are rare */
    toe_dev_wake(dev);
    if (cmd_spin(&cmd))
        return cmd.rc;
    pthread_mutex_lock(&dev->cmd_lock);
    while (!atomic_load_explicit(&cmd.done, memory_order_acquire))
        pthread_cond_wait(&dev->cmd_cond, &dev->cmd_lock);
    pthread_mutex_unlock(&dev->cmd_lock);
    return cmd.rc;
}

static int check_config(const struct toe_config *cfg)
{
    if (cfg->ifname[0] == '\0' || strnlen(cfg->ifname, TOE_IFNAME_MAX) >= TOE_IFNAME_MAX) {
        toe_err_set("toe: the TAP device needs a name of 1 to %d characters",
                    TOE_IFNAME_MAX - 1);
        return -EINVAL;
    }
    if (cfg->mtu < 576 || cfg->mtu > 65000) {
        toe_err_set("toe: mtu %u is out of range (576..65000)", cfg->mtu);
        return -EINVAL;
    }
    if (cfg->busy_poll_us > TOE_BUSY_POLL_MAX_US) {
        toe_err_set("toe: busy-poll %u us is out of range (0..%u)", cfg->busy_poll_us,
                    TOE_BUSY_POLL_MAX_US);
        return -EINVAL;
    }
    if (cfg->addr.s_addr == 0 || cfg->prefix > 32 || cfg->host_prefix > 32) {
        toe_err_set("toe: the adapter needs an IPv4 address with a prefix length of 0..32");
        return -EINVAL;
    }
    if (cfg->host_addr.s_addr == cfg->addr.s_addr) {
        toe_err_set("toe: the adapter and the host side need different addresses");
        return -EINVAL;
    }
    return 0;
}

static void lwip_start(struct toe_dev *dev)
{
    const struct toe_config *cfg = &dev->cfg;
    ip4_addr_t ip, mask, gw;

    if (!lwip_ready) {
        lwip_init();
        lwip_ready = true;
    }
    memset(&lwip_stats, 0, sizeof(lwip_stats));
    ip.addr = cfg->addr.s_addr;
    mask.addr = htonl(cfg->prefix ? ~0u << (32 - cfg->prefix) : 0);
    gw.addr = cfg->gateway.s_addr ? cfg->gateway.s_addr : cfg->host_addr.s_addr;
    netif_add(&dev->netif, &ip, &mask, &gw, dev, toe_netif_init, ethernet_input);
    netif_set_default(&dev->netif);
    netif_set_link_up(&dev->netif);
    netif_set_up(&dev->netif);
}

/* After the firmware thread is gone: release lwIP's remaining pcbs and our netif. */
static void lwip_stop(struct toe_dev *dev)
{
    toe_tcp_abort_all();
    toe_netif_free(dev);
    etharp_cleanup_netif(&dev->netif);
    netif_remove(&dev->netif);
}

struct toe_dev *toe_dev_new(const struct toe_config *cfg)
{
    struct toe_dev *dev;
    bool expected = false;
    int rc;

    rc = check_config(cfg);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    if (!atomic_compare_exchange_strong(&dev_exists, &expected, true)) {
        toe_err_set("toe: an adapter already exists in this process");
        errno = EBUSY;
        return NULL;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev) {
        rc = -ENOMEM;
        toe_err_set("toe: out of memory");
        goto fail_exists;
    }
    dev->cfg = *cfg;
    if (!memcmp(dev->cfg.mac, "\0\0\0\0\0\0", 6)) {
        /* Locally administered, and readable: 02:00 then the adapter's IPv4 address. */
        dev->cfg.mac[0] = 0x02;
        memcpy(dev->cfg.mac + 2, &cfg->addr.s_addr, 4);
    }
    dev->tap_fd = -1;
    atomic_init(&dev->link_up, true);
    pthread_mutex_init(&dev->cmd_lock, NULL);
    pthread_cond_init(&dev->cmd_cond, NULL);
    dev->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (dev->wake_fd < 0) {
        rc = -errno;
        toe_err_set("toe: cannot create an eventfd: %s", strerror(-rc));
        goto fail_dev;
    }
    dev->scratch_rx = malloc(TOE_FRAME_MAX);
    dev->scratch_tx = malloc(TOE_FRAME_MAX);
    if (!dev->scratch_rx || !dev->scratch_tx) {
        rc = -ENOMEM;
        toe_err_set("toe: out of memory");
        goto fail_fd;
    }
    struct toe_faults none = { 0 };
    toe_fault_init(&dev->fault[0], &none, 0);
    toe_fault_init(&dev->fault[1], &none, 1);

    rc = toe_tap_open(dev);
    if (rc < 0)
        goto fail_fd;
    lwip_start(dev);
    toe_fw_fold_mib(dev);
    rc = -pthread_create(&dev->thread, NULL, toe_fw_main, dev);
    if (rc < 0) {
        toe_err_set("toe: cannot start the firmware thread: %s", strerror(-rc));
        goto fail_lwip;
    }
    dev->thread_started = true;
    /* Named so that per-thread CPU accounting (toegw perf) can tell the adapter's share. */
    pthread_setname_np(dev->thread, "toe-fw");
    {
        char a[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &cfg->addr, a, sizeof(a));
        log_info("toe", "adapter up on '%s': %s/%u mtu %u max_conns %u offload %s "
                 "busy_poll %u us", cfg->ifname, a, cfg->prefix, cfg->mtu, cfg->max_conns,
                 dev->offload ? "tso+csum" : "none", cfg->busy_poll_us);
    }
    return dev;

fail_lwip:
    lwip_stop(dev);
    toe_tap_close(dev);
fail_fd:
    free(dev->scratch_rx);
    free(dev->scratch_tx);
    close(dev->wake_fd);
fail_dev:
    pthread_mutex_destroy(&dev->cmd_lock);
    pthread_cond_destroy(&dev->cmd_cond);
    free(dev);
fail_exists:
    atomic_store(&dev_exists, false);
    errno = -rc;
    return NULL;
}

static int cmd_stop(struct toe_dev *dev, void *arg)
{
    (void)arg;
    atomic_store(&dev->link_up, false);
    toe_conn_fail_all(dev, -ENETDOWN);
    dev->stop = true;
    return 0;
}

void toe_dev_free(struct toe_dev *dev)
{
    if (!dev)
        return;
    if (dev->thread_started) {
        toe_dev_call(dev, cmd_stop, NULL);
        pthread_mutex_lock(&dev->cmd_lock);
        dev->stopping = true;
        pthread_mutex_unlock(&dev->cmd_lock);
        pthread_join(dev->thread, NULL);
    }
    toe_conn_orphan_all(dev);
    lwip_stop(dev);
    toe_cap_close(dev->cap);
    toe_tap_close(dev);
    free(dev->scratch_rx);
    free(dev->scratch_tx);
    close(dev->wake_fd);
    pthread_mutex_destroy(&dev->cmd_lock);
    pthread_cond_destroy(&dev->cmd_cond);
    log_info("toe", "adapter on '%s' stopped", dev->cfg.ifname);
    free(dev);
    atomic_store(&dev_exists, false);
}

static int cmd_set_link(struct toe_dev *dev, void *arg)
{
    bool up = *(bool *)arg;

    if (up == atomic_load(&dev->link_up))
        return 0;
    if (up) {
        atomic_store(&dev->link_up, true);
        netif_set_link_up(&dev->netif);
        toe_tap_set_carrier(dev, true);
    } else {
        toe_netif_flush(dev);
        atomic_store(&dev->link_up, false);
        netif_set_link_down(&dev->netif);
        toe_tap_set_carrier(dev, false);
        toe_conn_fail_all(dev, -ENETDOWN);
        etharp_cleanup_netif(&dev->netif);
    }
    log_info("toe", "link of '%s' is %s", dev->cfg.ifname, up ? "up" : "down");
    return 0;
}

int toe_set_link(struct toe_dev *dev, bool up)
{
    return toe_dev_call(dev, cmd_set_link, &up);
}

bool toe_link_up(const struct toe_dev *dev)
{
    return atomic_load(&dev->link_up);
}

static int cmd_set_faults(struct toe_dev *dev, void *arg)
{
    const struct toe_faults *f = arg;

    toe_netif_flush(dev);
    toe_fault_init(&dev->fault[0], f, 0);
    toe_fault_init(&dev->fault[1], f, 1);
    return 0;
}

int toe_set_faults(struct toe_dev *dev, const struct toe_faults *f)
{
    if (toe_fault_validate(f) < 0) {
        toe_err_set("toe: fault probabilities must be between 0 and 1");
        return -EINVAL;
    }
    return toe_dev_call(dev, cmd_set_faults, (void *)f);
}

static int cmd_get_faults(struct toe_dev *dev, void *arg)
{
    *(struct toe_faults *)arg = dev->fault[0].cfg;
    return 0;
}

int toe_get_faults(struct toe_dev *dev, struct toe_faults *out)
{
    return toe_dev_call(dev, cmd_get_faults, out);
}

/* Swap the capture; the old one (if any) comes back in *arg to be closed by the caller. */
static int cmd_swap_capture(struct toe_dev *dev, void *arg)
{
    struct toe_capture **c = arg, *old = dev->cap;

    toe_netif_flush(dev);
    dev->cap = *c;
    dev->cnt.capture_frames = 0;
    *c = old;
    return 0;
}

int toe_capture_start(struct toe_dev *dev, const char *path, size_t ring_bytes)
{
    char err[256] = "";
    struct toe_capture *c;
    int rc;

    c = path ? toe_cap_open_file(path, err, sizeof(err)) : toe_cap_open_ring(ring_bytes);
    if (!c) {
        rc = -errno;
        toe_err_set("%s", err[0] ? err : "toe: cannot start a capture");
        return rc ? rc : -ENOMEM;
    }
    rc = toe_dev_call(dev, cmd_swap_capture, &c);
    toe_cap_close(c);          /* the previous capture, or ours if the call failed */
    return rc;
}

int toe_capture_stop(struct toe_dev *dev)
{
    struct toe_capture *c = NULL;
    int rc = toe_dev_call(dev, cmd_swap_capture, &c);

    toe_cap_close(c);
    return rc;
}

struct save_args {
    const char *path;
    char err[256];
};

static int cmd_save_capture(struct toe_dev *dev, void *arg)
{
    struct save_args *a = arg;

    if (!dev->cap) {
        snprintf(a->err, sizeof(a->err), "toe: no capture is running");
        return -ENOENT;
    }
    return toe_cap_save(dev->cap, a->path, a->err, sizeof(a->err));
}

int toe_capture_save(struct toe_dev *dev, const char *path)
{
    struct save_args a = { .path = path };
    int rc = toe_dev_call(dev, cmd_save_capture, &a);

    if (rc < 0 && a.err[0])
        toe_err_set("%s", a.err);
    return rc;
}

static int cmd_counters(struct toe_dev *dev, void *arg)
{
    struct toe_counters *out = arg;

    toe_fw_fold_mib(dev);
    *out = dev->cnt;
    out->tcp_active_opens = dev->mib_acc[0];
    out->tcp_attempt_fails = dev->mib_acc[1];
    out->tcp_estab_resets = dev->mib_acc[2];
    out->tcp_in_segs = dev->mib_acc[3];
    out->tcp_out_segs = dev->mib_acc[4];
    out->tcp_retrans_segs = dev->mib_acc[5];
    out->tcp_in_errs = dev->mib_acc[6];
    out->tcp_out_rsts = dev->mib_acc[7];
    out->tcp_drop = dev->mib_acc[8];
    out->conns_current = atomic_load(&dev->nconns);
    out->conns_refused_full = atomic_load(&dev->refused_full);
    return 0;
}

int toe_get_counters(struct toe_dev *dev, struct toe_counters *out)
{
    return toe_dev_call(dev, cmd_counters, out);
}

int toe_get_info(struct toe_dev *dev, struct toe_info *out)
{
    memset(out, 0, sizeof(*out));
    out->link_up = atomic_load(&dev->link_up);
    memcpy(out->ifname, dev->cfg.ifname, sizeof(out->ifname));
    memcpy(out->mac, dev->cfg.mac, sizeof(out->mac));
    out->addr = dev->cfg.addr;
    out->prefix = dev->cfg.prefix;
    out->host_addr = dev->cfg.host_addr;
    out->host_prefix = dev->cfg.host_prefix;
    out->mtu = dev->cfg.mtu;
    out->max_conns = dev->cfg.max_conns;
    out->conns = atomic_load(&dev->nconns);
    out->offload = dev->offload;
    return 0;
}

static const char *const tcp_state_names[] = {
    "CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
    "FIN_WAIT2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT",
};

struct list_args {
    struct toe_dev *dev;
    struct toe_conn_info *rows;
    size_t n, cap;
};

/* toe_tcp_for_each: one row for `pcb`. 0 or -ENOMEM. */
static int list_add(struct tcp_pcb *pcb, void *arg)
{
    struct list_args *a = arg;
    struct toe_dev *dev = a->dev;
    struct toe_conn_info *r;

    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        struct toe_conn_info *rows = realloc(a->rows, cap * sizeof(*rows));

        if (!rows)
            return -ENOMEM;
        a->rows = rows;
        a->cap = cap;
    }
    r = &a->rows[a->n++];
    memset(r, 0, sizeof(*r));
    r->local.sin_family = AF_INET;
    r->local.sin_addr.s_addr = ip_2_ip4(&pcb->local_ip)->addr;
    r->local.sin_port = htons(pcb->local_port);
    r->remote.sin_family = AF_INET;
    r->remote.sin_addr.s_addr = ip_2_ip4(&pcb->remote_ip)->addr;
    r->remote.sin_port = htons(pcb->remote_port);
    snprintf(r->state, sizeof(r->state), "%s",
             (unsigned)pcb->state < sizeof(tcp_state_names) / sizeof(tcp_state_names[0])
                 ? tcp_state_names[pcb->state] : "UNKNOWN");
    for (struct toe_conn *c = dev->conns; c; c = c->next) {
        if (c->pcb == pcb) {
            r->driver = true;
            r->bytes_in = c->bytes_in;
            r->bytes_out = c->bytes_out;
            break;
        }
    }
    return 0;
}

static int cmd_list(struct toe_dev *dev, void *arg)
{
    struct list_args *a = arg;

    a->dev = dev;
    return toe_tcp_for_each(list_add, a);
}

int toe_list_conns(struct toe_dev *dev, struct toe_conn_info **out, size_t *n)
{
    struct list_args a = { 0 };
    int rc = toe_dev_call(dev, cmd_list, &a);

    if (rc < 0) {
        free(a.rows);
        return rc;
    }
    *out = a.rows;
    *n = a.n;
    return 0;
}
