/*
 * broker-latency.c - the offload broker's request→descriptor time on each stack (claim 9).
 *
 * In a network namespace of its own (unshare(CLONE_NEWNET); root), brings up the emulated
 * TOE with its defaults (toe0, 192.0.2.2/24, host side 192.0.2.1/24) and a kernel
 * listener on 192.0.2.1, then runs N stk_request/stk_release cycles per stack against it:
 * policy toe (the connection goes through the TOE's driver interface and lwIP) and policy
 * host (a kernel socket to the same address). The two stacks alternate cycle by cycle so
 * drift hits both alike. Each stk_request call is timed with clock_gettime(CLOCK_MONOTONIC)
 * (the descriptor is handed over with the connect started); the time until the connection is
 * established is reported as well. Each connection is released gracefully (-a: with a
 * reset, as an aborted session would); the ports rotate through a 10000-port range, so
 * TIME_WAIT never blocks the next one.
 *
 * Output: one JSON object on stdout,
 *   {"bench":"broker-latency","n":N,"toe":{"request_p50_us":..,"request_p99_us":..,
 *    "request_mean_us":..,"established_p50_us":..,"established_p99_us":..},"host":{...}}
 * or {"bench":"broker-latency","error":"..."} and exit status 1.
 *
 * Usage: broker-latency [-n CYCLES] [-w WARMUP] [-a]     (defaults 2000 and 100)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/net.h"
#include "common/log.h"
#include "stacks/stacks.h"
#include "toe_emu/toe.h"

#define OWNER "broker-latency"

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* the message holds no quotes or backslashes of ours; escape what a strerror might */
    printf("{\"bench\":\"broker-latency\",\"error\":\"");
    for (const char *p = msg; *p; p++)
        printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    printf("\"}\n");
    fprintf(stderr, "broker-latency: %s\n", msg);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void netns_enter(void)
{
    struct ifreq ifr = { 0 };
    int fd;

    if (unshare(CLONE_NEWNET) < 0)
        fail("cannot create a private network namespace: %s (run as root)", strerror(errno));
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        fail("cannot read the flags of lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        fail("cannot bring lo up: %s", strerror(errno));
    close(fd);
}

/* Accepts and closes every connection: the target side of the cycles. */
static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            break;
    }
    return NULL;
}

/* Wait until the connection is established: 0 or -errno. */
static int wait_connected(struct stk_conn *c)
{
    for (int i = 0; i < 5000; i++) {
        int r = c->ops->connect_result(c);
        if (r != -EINPROGRESS)
            return r;
        struct pollfd p = { .fd = c->fd, .events = (short)c->ops->events(c, false, true) };
        poll(&p, 1, 1);
    }
    return -ETIMEDOUT;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted sample, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

struct sample {
    uint64_t *req, *est;
    size_t n;
};

/* One request/established/release cycle; the times go into s when `keep`. */
static bool abort_release;

static void cycle(struct stk_broker *b, const struct sockaddr_in *dst, enum stk_policy pol,
                  enum stk_stack want, struct sample *s, bool keep)
{
    struct stk_request req = { .owner = OWNER, .dst = *dst, .policy = pol };
    struct stk_desc *d;
    char err[256] = "";
    uint64_t t0, t1, t2;
    int ret;

    t0 = now_ns();
    ret = stk_request(b, &req, &d, err, sizeof(err));
    t1 = now_ns();
    if (ret < 0)
        fail("stk_request (%s) failed: %s", stk_policy_name(pol), err);
    if (d->stack != want)
        fail("asked for the %s stack, got the %s stack (%s)", stk_stack_name(want),
             stk_stack_name(d->stack), stk_placement_name(d->placement));
    ret = wait_connected(d->conn);
    t2 = now_ns();
    if (ret < 0)
        fail("the %s connection did not come up: %s", stk_stack_name(want), strerror(-ret));
    ret = stk_release(b, d, OWNER, abort_release);
    if (ret < 0)
        fail("stk_release failed: %s", strerror(-ret));
    if (keep) {
        s->req[s->n] = t1 - t0;
        s->est[s->n] = t2 - t0;
        s->n++;
    }
}

static void print_stack(const char *name, struct sample *s)
{
    double sum = 0;

    for (size_t i = 0; i < s->n; i++)
        sum += (double)s->req[i];
    qsort(s->req, s->n, sizeof(*s->req), cmp_u64);
    qsort(s->est, s->n, sizeof(*s->est), cmp_u64);
    printf("\"%s\":{\"request_p50_us\":%.1f,\"request_p99_us\":%.1f,\"request_mean_us\":%.1f,"
           "\"established_p50_us\":%.1f,\"established_p99_us\":%.1f}",
           name, pct_us(s->req, s->n, 50), pct_us(s->req, s->n, 99), sum / (double)s->n / 1000.0,
           pct_us(s->est, s->n, 50), pct_us(s->est, s->n, 99));
}

int main(int argc, char **argv)
{
    struct stk_broker_config bc = { .port_lo = 20000, .port_hi = 29999 };
    struct stk_offload_ops off;
    struct toe_config tc;
    struct toe_dev *toe;
    struct stk_broker *b;
    struct sockaddr_in dst = { .sin_family = AF_INET };
    socklen_t len = sizeof(dst);
    struct sample toe_s = { 0 }, host_s = { 0 };
    long n = 2000, warm = 100;
    pthread_t th;
    int c, lfd;

    while ((c = getopt(argc, argv, "n:w:a")) != -1) {
        switch (c) {
        case 'n': n = strtol(optarg, NULL, 10); break;
        case 'w': warm = strtol(optarg, NULL, 10); break;
        case 'a': abort_release = true; break;
        default:
            fprintf(stderr, "usage: broker-latency [-n CYCLES] [-w WARMUP] [-a]\n");
            return 2;
        }
    }
    if (n < 1 || n > 1000000 || warm < 0 || warm > 1000000) {
        fprintf(stderr, "broker-latency: -n must be 1..1000000, -w 0..1000000\n");
        return 2;
    }
    log_set_level(LOG_LVL_ERROR);
    netns_enter();

    toe_config_defaults(&tc);
    toe = toe_dev_new(&tc);
    if (!toe)
        fail("cannot bring up the toe: %s", toe_strerror()[0] ? toe_strerror()
                                                               : strerror(errno));
    /* the listener exists once the TOE gave the TAP's host side 192.0.2.1 */
    inet_pton(AF_INET, "192.0.2.1", &dst.sin_addr);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
        listen(lfd, 1024) < 0 || getsockname(lfd, (struct sockaddr *)&dst, &len) < 0)
        fail("cannot listen on 192.0.2.1: %s", strerror(errno));
    if (pthread_create(&th, NULL, acceptor, &lfd) != 0)
        fail("cannot start the acceptor thread");
    pthread_detach(th);

    app_net_toe_offload(toe, &off);  /* the TOE as the broker's offload engine, as serve does */
    bc.offload = &off;
    b = stk_broker_new(&bc);
    if (!b)
        fail("cannot create the broker: %s", strerror(errno));
    toe_s.req = calloc((size_t)n, sizeof(uint64_t));
    toe_s.est = calloc((size_t)n, sizeof(uint64_t));
    host_s.req = calloc((size_t)n, sizeof(uint64_t));
    host_s.est = calloc((size_t)n, sizeof(uint64_t));
    if (!toe_s.req || !toe_s.est || !host_s.req || !host_s.est)
        fail("out of memory");

    for (long i = 0; i < warm + n; i++) {
        bool keep = i >= warm;
        /* alternate which stack goes first */
        if (i % 2) {
            cycle(b, &dst, STK_POLICY_TOE, STK_STACK_TOE, &toe_s, keep);
            cycle(b, &dst, STK_POLICY_HOST, STK_STACK_HOST, &host_s, keep);
        } else {
            cycle(b, &dst, STK_POLICY_HOST, STK_STACK_HOST, &host_s, keep);
            cycle(b, &dst, STK_POLICY_TOE, STK_STACK_TOE, &toe_s, keep);
        }
    }

    printf("{\"bench\":\"broker-latency\",\"n\":%ld,", n);
    print_stack("toe", &toe_s);
    printf(",");
    print_stack("host", &host_s);
    printf("}\n");

    stk_broker_free(b);
    toe_dev_free(toe);
    close(lfd);
    return 0;
}
