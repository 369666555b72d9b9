/*
 * toe_tool.c - drives the emulated TOE for its integration tests and its benchmark.
 *
 * Every run first moves the whole process into a new, private network namespace (it
 * refuses to run otherwise): the TAP device, its host side and the kernel socket peers
 * exist only there and vanish with the process. The peers are kernel sockets on threads
 * of this process; the TOE side goes through the driver interface (toe_connect and the
 * stk_conn ops) on the main thread, as the storage loop will.
 *
 *   toe-tool bulk  [--mtu N] [--bytes N] [--dir tx|rx|both] [--faults D,U,R,C] [--seed N]
 *                  [--in-place]   (receive with toe_conn_peek/consume instead of read)
 *                  [--by-ref]     (send with toe_conn_send_ref instead of writev)
 *   toe-tool conns [--max N]
 *   toe-tool linkdown [--conns N] [--by-ref]
 *   toe-tool pcap  --out FILE [--bytes N] [--ring]
 *   toe-tool bench [--seconds N] [--rounds N] [--mtus 1500,9000] [--no-offload]
 *                  [--tcp-cc NAME]
 *   toe-tool flood [--stack toe|host|both] [--bytes N] [--pace-ms N] [--pause-ms N]
 *                  [--limit S] [--out FILE]
 *
 * Output: `key=value` lines; `bench` ends with one JSON line. Exit 0 on success, 1 when a
 * check failed, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <isa-l/crc64.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "toe_emu/toe.h"

#include "toe_emu/tools/tool.h"

#define LOOP_PORT   5002

static uint8_t *pattern;           /* PAT_LEN + CHUNK bytes, periodic */
bool verify = true;

double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "toe-tool: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void pattern_init(void)
{
    uint64_t x = 0x1234567890abcdefULL;

    pattern = malloc(PAT_LEN + CHUNK);
    if (!pattern)
        die("out of memory");
    for (size_t i = 0; i < PAT_LEN; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        pattern[i] = (uint8_t)(z >> 56);
    }
    memcpy(pattern + PAT_LEN, pattern, CHUNK);
}

const uint8_t *pat_at(uint64_t off)
{
    return pattern + off % PAT_LEN;
}

/*
 * The whole process leaves the caller's network: nothing here can reach it. A new namespace
 * takes the host's TCP congestion control; `tcp_cc` sets its own (the kernel sockets'
 * pacing decides much of what kernel loopback reaches).
 */
static void netns_enter(const char *tcp_cc)
{
    struct ifreq ifr;
    int s;

    if (unshare(CLONE_NEWNET) < 0)
        die("cannot create a private network namespace (needs root): %s", strerror(errno));
    if (tcp_cc) {
        FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "w");
        if (!f || fputs(tcp_cc, f) < 0 || fclose(f) != 0)
            die("cannot set the TCP congestion control to \"%s\": %s", tcp_cc,
                strerror(errno));
    }
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket: %s", strerror(errno));
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
}

struct toe_dev *dev_up(unsigned mtu, unsigned max_conns, bool no_offload)
{
    struct toe_config cfg;
    struct toe_dev *dev;

    toe_config_defaults(&cfg);
    cfg.mtu = mtu;
    cfg.max_conns = max_conns;
    cfg.no_offload = no_offload;
    dev = toe_dev_new(&cfg);
    if (!dev)
        die("%s", toe_strerror());
    return dev;
}

struct sockaddr_in host_addr(uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

    inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
    return a;
}

int listen_on(const char *ip, uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    inet_pton(AF_INET, ip, &a.sin_addr);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4096) < 0)
        die("cannot listen on %s:%u: %s", ip, port, strerror(errno));
    return s;
}

/* ---- kernel socket peers ------------------------------------------------------------ */

struct stream_result {
    uint64_t bytes;
    uint64_t crc;
    bool bad;                      /* data differed from the pattern */
    uint64_t bad_at;
    double t0, t1;                 /* first byte, end of stream */
    uint64_t refs;                 /* buffers sent by reference (toe_conn_send_ref) */
};

/* Buffers sent by reference that the TOE gave back (their done ran), on its thread. */
static _Atomic uint64_t refs_done;

static void ref_done(void *arg)
{
    (void)arg;
    atomic_fetch_add(&refs_done, 1);
}

/* Wait up to 5 s for `refs` buffers to have come back; returns how many did. */
static uint64_t refs_back(uint64_t refs)
{
    for (double end = now_s() + 5; atomic_load(&refs_done) < refs && now_s() < end;)
        usleep(1000);
    return atomic_load(&refs_done);
}

static void sink_fd(int fd, struct stream_result *r)
{
    uint8_t *buf = malloc(CHUNK);
    ssize_t n;

    memset(r, 0, sizeof(*r));
    while ((n = recv(fd, buf, CHUNK, 0)) > 0) {
        if (r->bytes == 0)
            r->t0 = now_s();
        if (verify) {
            if (!r->bad && memcmp(buf, pat_at(r->bytes), (size_t)n) != 0) {
                r->bad = true;
                r->bad_at = r->bytes;
            }
            r->crc = crc64_ecma_refl(r->crc, buf, (uint64_t)n);
        }
        r->bytes += (uint64_t)n;
    }
    r->t1 = now_s();
    free(buf);
}

/* Send `bytes` of pattern (or for `seconds` when seconds > 0). */
static void source_fd(int fd, uint64_t bytes, double seconds, struct stream_result *r)
{
    double end = now_s() + seconds;

    memset(r, 0, sizeof(*r));
    r->t0 = now_s();
    for (;;) {
        size_t n = CHUNK;

        if (seconds > 0) {
            if ((r->bytes & ((64u << 20) - 1)) < CHUNK && now_s() >= end)
                break;
        } else {
            if (r->bytes >= bytes)
                break;
            if (bytes - r->bytes < n)
                n = (size_t)(bytes - r->bytes);
        }
        ssize_t w = send(fd, pat_at(r->bytes), n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        if (verify)
            r->crc = crc64_ecma_refl(r->crc, pat_at(r->bytes), (uint64_t)w);
        r->bytes += (uint64_t)w;
    }
    shutdown(fd, SHUT_WR);
    r->t1 = now_s();
}

struct server {
    int lfd;
    int mode;                      /* 0: sink, 1: source */
    uint64_t bytes;
    double seconds;
    struct stream_result res;
    pthread_t th;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return NULL;
    if (s->mode == 0) {
        sink_fd(fd, &s->res);
    } else {
        char c;

        source_fd(fd, s->bytes, s->seconds, &s->res);
        while (recv(fd, &c, 1, 0) > 0) {
            /* wait for the peer's close */
        }
    }
    close(fd);
    return NULL;
}

/* ---- the TOE side, through the driver interface ------------------------------------- */

void wait_fd(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    poll(&p, 1, ms);
}

struct stk_conn *toe_dial(struct toe_dev *dev, uint16_t dport, uint16_t lport)
{
    struct sockaddr_in dst = host_addr(dport);
    struct stk_conn *c;
    int rc = toe_connect(dev, &dst, lport, &c);

    if (rc < 0)
        die("%s", toe_strerror());
    double end = now_s() + 10;
    while ((rc = c->ops->connect_result(c)) == -EINPROGRESS) {
        if (now_s() > end)
            die("connect from port %u timed out", lport);
        wait_fd(c->fd, 100);
    }
    if (rc < 0)
        die("connect from port %u failed: %s", lport, strerror(-rc));
    return c;
}

/* Send the pattern: copied into the send ring with writev, or `by_ref`, from where it is. */
static void toe_source(struct stk_conn *c, uint64_t bytes, double seconds,
                       struct stream_result *r, bool by_ref)
{
    double end = now_s() + seconds;

    memset(r, 0, sizeof(*r));
    r->t0 = now_s();
    for (;;) {
        size_t n = CHUNK;

        if (seconds > 0) {
            if ((r->bytes & ((64u << 20) - 1)) < CHUNK && now_s() >= end)
                break;
        } else {
            if (r->bytes >= bytes)
                break;
            if (bytes - r->bytes < n)
                n = (size_t)(bytes - r->bytes);
        }
        struct iovec iov = { .iov_base = (void *)pat_at(r->bytes), .iov_len = n };
        ssize_t w = by_ref ? toe_conn_send_ref(c, iov.iov_base, n, ref_done, NULL)
                           : stk_conn_writev(c, &iov, 1);
        if (w == -EAGAIN) {
            wait_fd(c->fd, 1000);
            continue;
        }
        if (w < 0)
            die("toe write failed after %" PRIu64 " bytes: %s", r->bytes, strerror((int)-w));
        if (verify)
            r->crc = crc64_ecma_refl(r->crc, pat_at(r->bytes), (uint64_t)w);
        r->bytes += (uint64_t)w;
        r->refs += by_ref;
    }
    c->ops->shutdown(c);
    r->t1 = now_s();
}

/*
 * Receive until end of stream: copied out with read, or, `in_place`, looked at where the
 * adapter holds it (toe_conn_peek) and then moved past (toe_conn_consume).
 */
static void toe_sink(struct stk_conn *c, struct stream_result *r, bool in_place)
{
    uint8_t *buf = malloc(CHUNK);

    memset(r, 0, sizeof(*r));
    for (;;) {
        const void *data = buf;
        ssize_t n = in_place ? toe_conn_peek(c, &data) : stk_conn_read(c, buf, CHUNK);

        if (n == -EAGAIN) {
            wait_fd(c->fd, 1000);
            continue;
        }
        if (n < 0)
            die("toe read failed after %" PRIu64 " bytes: %s", r->bytes, strerror((int)-n));
        if (n == 0)
            break;
        if (n > CHUNK)
            n = CHUNK;             /* a span of the ring may be longer than pat_at's */
        if (r->bytes == 0)
            r->t0 = now_s();
        if (verify) {
            if (!r->bad && memcmp(data, pat_at(r->bytes), (size_t)n) != 0) {
                r->bad = true;
                r->bad_at = r->bytes;
            }
            r->crc = crc64_ecma_refl(r->crc, data, (uint64_t)n);
        }
        if (in_place)
            toe_conn_consume(c, (size_t)n);
        r->bytes += (uint64_t)n;
    }
    r->t1 = now_s();
    free(buf);
}

/* Wait for the peer's end of stream (after our FIN) so every byte is known delivered. */
static void toe_wait_eof(struct stk_conn *c)
{
    char buf[256];

    for (;;) {
        ssize_t n = stk_conn_read(c, buf, sizeof(buf));

        if (n == -EAGAIN) {
            wait_fd(c->fd, 1000);
            continue;
        }
        if (n <= 0)
            return;
    }
}

/* TOE -> kernel: returns the receiver's view. */
static struct stream_result run_tx(struct toe_dev *dev, uint64_t bytes, double seconds,
                                   uint16_t lport, struct stream_result *sent, bool by_ref)
{
    struct server s = { .mode = 0 };

    atomic_store(&refs_done, 0);
    s.lfd = listen_on("192.0.2.1", SRV_PORT);
    pthread_create(&s.th, NULL, server_main, &s);
    struct stk_conn *c = toe_dial(dev, SRV_PORT, lport);
    toe_source(c, bytes, seconds, sent, by_ref);
    pthread_join(s.th, NULL);
    toe_wait_eof(c);
    stk_conn_close(c, false);
    refs_back(sent->refs);   /* the peer acknowledged all: every buffer comes back */
    close(s.lfd);
    return s.res;
}

/* kernel -> TOE: returns the receiver's view. */
static struct stream_result run_rx(struct toe_dev *dev, uint64_t bytes, double seconds,
                                   uint16_t lport, struct stream_result *sent, bool in_place)
{
    struct server s = { .mode = 1, .bytes = bytes, .seconds = seconds };
    struct stream_result r;

    s.lfd = listen_on("192.0.2.1", SRV_PORT);
    pthread_create(&s.th, NULL, server_main, &s);
    struct stk_conn *c = toe_dial(dev, SRV_PORT, lport);
    toe_sink(c, &r, in_place);
    stk_conn_close(c, false);
    pthread_join(s.th, NULL);
    close(s.lfd);
    *sent = s.res;
    return r;
}

/* Kernel loopback pair, the reference: a client thread sends to a server thread. */
static struct stream_result run_loopback(double seconds)
{
    struct server s = { .mode = 0 };
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(LOOP_PORT) };
    struct stream_result sent;
    int fd;

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    s.lfd = listen_on("127.0.0.1", LOOP_PORT);
    pthread_create(&s.th, NULL, server_main, &s);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("loopback connect: %s", strerror(errno));
    source_fd(fd, 0, seconds, &sent);
    pthread_join(s.th, NULL);
    close(fd);
    close(s.lfd);
    return s.res;
}

static double gbps(const struct stream_result *r)
{
    double t = r->t1 - r->t0;

    return t > 0 ? (double)r->bytes / t / 1e9 : 0;
}

void print_counters(struct toe_dev *dev)
{
    struct toe_counters k;

    if (toe_get_counters(dev, &k) < 0)
        return;
    printf("tx_frames=%" PRIu64 " tx_bytes=%" PRIu64 " rx_frames=%" PRIu64 " rx_bytes=%" PRIu64
           "\n", k.tx.frames, k.tx.bytes, k.rx.frames, k.rx.bytes);
    printf("fault_tx=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
           " fault_rx=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " (drop/dup/reorder/corrupt)\n",
           k.tx.fault_drop, k.tx.fault_dup, k.tx.fault_reorder, k.tx.fault_corrupt,
           k.rx.fault_drop, k.rx.fault_dup, k.rx.fault_reorder, k.rx.fault_corrupt);
    printf("rx_drop_bad=%" PRIu64 " tap_errors=%" PRIu64 " tcp_retrans=%" PRIu64
           " tcp_in_segs=%" PRIu64 " tcp_out_segs=%" PRIu64 "\n", k.rx.drop_bad, k.tap_errors,
           k.tcp_retrans_segs, k.tcp_in_segs, k.tcp_out_segs);
    printf("conns_opened=%" PRIu64 " conns_established=%" PRIu64 " conns_failed=%" PRIu64
           " conns_reset=%" PRIu64 " conns_refused_full=%" PRIu64 "\n", k.conns_opened,
           k.conns_established, k.conns_failed, k.conns_reset, k.conns_refused_full);
}

static bool check_stream(const char *name, const struct stream_result *sent,
                         const struct stream_result *got, uint64_t want)
{
    bool ok = !got->bad && got->bytes == want && sent->bytes == want && got->crc == sent->crc;

    printf("%s_bytes=%" PRIu64 " %s_crc_sent=%016" PRIx64 " %s_crc_recv=%016" PRIx64
           " %s_gbps=%.3f %s_ok=%d\n", name, got->bytes, name, sent->crc, name, got->crc, name,
           gbps(got), name, ok);
    if (got->bad)
        printf("%s_first_bad_byte=%" PRIu64 "\n", name, got->bad_at);
    return ok;
}

/* ---- subcommands -------------------------------------------------------------------- */

static int cmd_bulk(const struct opts *o)
{
    struct toe_dev *dev = dev_up(o->mtu, 64, o->no_offload);
    struct stream_result sent, got;
    bool ok = true;

    if (toe_set_faults(dev, &o->faults) < 0)
        die("%s", toe_strerror());
    if (strcmp(o->dir, "rx") != 0) {
        got = run_tx(dev, o->bytes, 0, TOE_PORT0, &sent, o->by_ref);
        ok &= check_stream("tx", &sent, &got, o->bytes);
        if (o->by_ref) {
            uint64_t back = atomic_load(&refs_done);

            printf("tx_refs=%" PRIu64 " tx_refs_done=%" PRIu64 "\n", sent.refs, back);
            ok &= back == sent.refs && sent.refs > 0;
        }
    }
    if (strcmp(o->dir, "tx") != 0) {
        got = run_rx(dev, o->bytes, 0, TOE_PORT0 + 1, &sent, o->in_place);
        ok &= check_stream("rx", &sent, &got, o->bytes);
    }
    print_counters(dev);
    toe_dev_free(dev);
    printf("result=%s\n", ok ? "ok" : "fail");
    return ok ? 0 : 1;
}

struct sink_all {
    int lfd;
    unsigned n;
    pthread_t th;
};

static void *sink_all_main(void *arg)
{
    struct sink_all *s = arg;
    int *fds = calloc(s->n, sizeof(int));
    struct pollfd *p = calloc(s->n, sizeof(*p));
    char *buf = malloc(CHUNK);
    unsigned open = 0;

    for (unsigned i = 0; i < s->n; i++) {
        fds[i] = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        open++;
    }
    /* Drain until every connection ended or nothing happened for 3 s. */
    while (open && poll(p, s->n, 3000) > 0) {
        for (unsigned i = 0; i < s->n; i++) {
            if (p[i].fd >= 0 && p[i].revents) {
                if (recv(p[i].fd, buf, CHUNK, 0) <= 0) {
                    close(p[i].fd);
                    p[i].fd = -1;
                    open--;
                }
            }
        }
    }
    for (unsigned i = 0; i < s->n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    free(buf);
    free(p);
    free(fds);
    return NULL;
}

static int cmd_linkdown(const struct opts *o)
{
    unsigned n = o->conns;
    struct toe_dev *dev = dev_up(o->mtu, 64, o->no_offload);
    struct stk_conn **c = calloc(n, sizeof(*c));
    struct sink_all s = { .n = n };
    int *err = calloc(n, sizeof(int));
    bool ok = true;

    s.lfd = listen_on("192.0.2.1", SRV_PORT);
    pthread_create(&s.th, NULL, sink_all_main, &s);
    for (unsigned i = 0; i < n; i++)
        c[i] = toe_dial(dev, SRV_PORT, (uint16_t)(TOE_PORT0 + i));

    /* Keep every connection busy for half a second, then pull the cable. */
    double t_down = 0, start = now_s();
    unsigned failed = 0;
    uint64_t off = 0, refs = 0;
    bool cut = false;

    atomic_store(&refs_done, 0);
    while (failed < n) {
        double t = now_s();

        if (o->by_ref && !cut && t - start > 0.4) {
            /* nothing gets through from now on: buffers are outstanding at link down */
            struct toe_faults all_lost = { .drop = 1.0 };

            if (toe_set_faults(dev, &all_lost) < 0)
                die("%s", toe_strerror());
            cut = true;
        }
        if (t_down == 0 && t - start > 0.5) {
            struct toe_faults none = { 0 };

            if (toe_set_link(dev, false) < 0 || toe_set_faults(dev, &none) < 0)
                die("%s", toe_strerror());
            t_down = now_s();
        }
        if (t_down && t - t_down > 5)
            break;
        for (unsigned i = 0; i < n; i++) {
            if (err[i])
                continue;
            struct iovec iov = { .iov_base = (void *)pat_at(off), .iov_len = 65536 };
            ssize_t w = o->by_ref ? toe_conn_send_ref(c[i], iov.iov_base, 65536, ref_done, NULL)
                                  : stk_conn_writev(c[i], &iov, 1);

            refs += o->by_ref && w > 0;
            if (w < 0 && w != -EAGAIN) {
                err[i] = (int)w;
                failed++;
            }
        }
        off += 4096;
        usleep(1000);
    }
    double took = now_s() - t_down;
    unsigned enetdown = 0;
    for (unsigned i = 0; i < n; i++)
        enetdown += err[i] == -ENETDOWN;
    printf("link_down_failed=%u of %u enetdown=%u seconds=%.3f\n", failed, n, enetdown, took);
    ok &= failed == n && enetdown == n && took < 1.0;

    struct sockaddr_in dst = host_addr(SRV_PORT);
    struct stk_conn *x;
    int rc = toe_connect(dev, &dst, (uint16_t)(TOE_PORT0 + n), &x);
    printf("connect_while_down_rc=%d error=\"%s\"\n", rc, rc < 0 ? toe_strerror() : "");
    ok &= rc == -ENETDOWN;
    if (rc == 0)
        stk_conn_close(x, true);
    /*
     * Buffers sent by reference: the failures gave them back, sent or not, before their
     * consumer closed anything (all but one per connection, which may have been put while
     * its connection was failing); the closes give back the rest.
     */
    uint64_t back_failed = atomic_load(&refs_done);
    for (unsigned i = 0; i < n; i++)
        stk_conn_close(c[i], true);
    if (o->by_ref) {
        uint64_t back = refs_back(refs);

        printf("refs=%" PRIu64 " refs_done_at_failure=%" PRIu64 " refs_done=%" PRIu64 "\n",
               refs, back_failed, back);
        ok &= refs > 0 && back_failed + n >= refs && back == refs;
    }
    pthread_join(s.th, NULL);
    close(s.lfd);

    if (toe_set_link(dev, true) < 0)
        die("%s", toe_strerror());
    struct stream_result sent, got;
    got = run_tx(dev, 4u << 20, 0, (uint16_t)(TOE_PORT0 + n + 1), &sent, false);
    ok &= check_stream("after_up", &sent, &got, 4u << 20);
    print_counters(dev);
    free(c);
    free(err);
    toe_dev_free(dev);
    printf("result=%s\n", ok ? "ok" : "fail");
    return ok ? 0 : 1;
}

static int cmd_pcap(const struct opts *o)
{
    struct toe_dev *dev = dev_up(o->mtu, 64, o->no_offload);
    struct toe_counters k0, k1;
    struct stream_result sent, got;
    bool ok = true;

    if (!o->out)
        die("pcap needs --out FILE");
    if (toe_set_faults(dev, &o->faults) < 0)
        die("%s", toe_strerror());
    if (toe_capture_start(dev, o->ring ? NULL : o->out, 0) < 0)
        die("%s", toe_strerror());
    toe_get_counters(dev, &k0);
    got = run_tx(dev, o->bytes, 0, TOE_PORT0, &sent, false);
    ok &= check_stream("tx", &sent, &got, o->bytes);
    got = run_rx(dev, o->bytes, 0, TOE_PORT0 + 1, &sent, false);
    ok &= check_stream("rx", &sent, &got, o->bytes);
    usleep(300000);                /* let the last ACKs and FINs cross */
    toe_get_counters(dev, &k1);
    if (toe_capture_save(dev, o->out) < 0)
        die("%s", toe_strerror());
    toe_capture_stop(dev);
    printf("wire_frames=%" PRIu64 " capture_frames=%" PRIu64 "\n",
           (k1.tx.frames + k1.rx.frames) - (k0.tx.frames + k0.rx.frames), k1.capture_frames);
    print_counters(dev);
    toe_dev_free(dev);
    printf("result=%s\n", ok ? "ok" : "fail");
    return ok ? 0 : 1;
}

/* The namespace's TCP congestion control, as the kernel says it (the kernel peers' one). */
static const char *tcp_cc_now(char *buf, size_t len)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");

    if (!f || !fgets(buf, (int)len, f))
        snprintf(buf, len, "unknown");
    if (f)
        fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static int cmd_bench(const struct opts *o)
{
    char json[2048];
    size_t jl = 0;
    double r_tx = 0, r_txr = 0, r_rx = 0, r_rxp = 0;
    char mtus[64], cc[32];

    verify = false;
    if (o->rounds == 0)
        die("--rounds must be at least 1");
    snprintf(mtus, sizeof(mtus), "%s", o->mtus);
    jl += (size_t)snprintf(json + jl, sizeof(json) - jl,
                           "{\"bench\":\"toe-bulk\",\"seconds\":%.1f,\"rounds\":%u,"
                           "\"offload\":%s,\"tcp_congestion_control\":\"%s\"", o->seconds,
                           o->rounds, o->no_offload ? "false" : "true",
                           tcp_cc_now(cc, sizeof(cc)));
    for (char *save, *m = strtok_r(mtus, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        unsigned mtu = (unsigned)strtoul(m, NULL, 10);
        struct stream_result sent, tx = { 0 }, txr = { 0 }, rx = { 0 }, rxp = { 0 }, lo = { 0 };
        struct stream_result r;
        uint64_t retrans = 0;

        /* Best of `rounds`, alternating which goes first, measured within one invocation. */
        for (unsigned round = 0; round < o->rounds; round++) {
            if (round % 2 == 0) {
                r = run_loopback(o->seconds);
                if (gbps(&r) > gbps(&lo))
                    lo = r;
            }
            struct toe_dev *dev = dev_up(mtu, 64, o->no_offload);
            r = run_tx(dev, 0, o->seconds, TOE_PORT0, &sent, false);
            if (gbps(&r) > gbps(&tx))
                tx = r;
            r = run_tx(dev, 0, o->seconds, TOE_PORT0 + 3, &sent, true);
            if (gbps(&r) > gbps(&txr))
                txr = r;
            r = run_rx(dev, 0, o->seconds, TOE_PORT0 + 1, &sent, false);
            if (gbps(&r) > gbps(&rx))
                rx = r;
            r = run_rx(dev, 0, o->seconds, TOE_PORT0 + 2, &sent, true);
            if (gbps(&r) > gbps(&rxp))
                rxp = r;
            struct toe_counters k;
            toe_get_counters(dev, &k);
            retrans += k.tcp_retrans_segs;
            toe_dev_free(dev);
            if (round % 2 == 1) {
                r = run_loopback(o->seconds);
                if (gbps(&r) > gbps(&lo))
                    lo = r;
            }
        }

        double rt = gbps(&tx) / gbps(&lo), rr = gbps(&rx) / gbps(&lo);
        double rtr = gbps(&txr) / gbps(&lo), rp = gbps(&rxp) / gbps(&lo);
        printf("mtu=%u loopback=%.2fGB/s toe_to_kernel=%.2fGB/s (%.2fx) "
               "by_ref=%.2fGB/s (%.2fx) kernel_to_toe=%.2fGB/s (%.2fx) "
               "in_place=%.2fGB/s (%.2fx) retrans=%" PRIu64 "\n", mtu, gbps(&lo), gbps(&tx),
               rt, gbps(&txr), rtr, gbps(&rx), rr, gbps(&rxp), rp, retrans);
        fflush(stdout);
        jl += (size_t)snprintf(json + jl, sizeof(json) - jl,
                               ",\"mtu%u\":{\"loopback_gbps\":%.3f,\"toe_to_kernel_gbps\":%.3f,"
                               "\"toe_to_kernel_by_ref_gbps\":%.3f,"
                               "\"kernel_to_toe_gbps\":%.3f,"
                               "\"kernel_to_toe_in_place_gbps\":%.3f,"
                               "\"ratio_toe_to_kernel\":%.3f,"
                               "\"ratio_toe_to_kernel_by_ref\":%.3f,"
                               "\"ratio_kernel_to_toe\":%.3f,"
                               "\"ratio_kernel_to_toe_in_place\":%.3f}", mtu, gbps(&lo),
                               gbps(&tx), gbps(&txr), gbps(&rx), gbps(&rxp), rt, rtr, rr, rp);
        if (mtu == 9000) {
            r_tx = rt;
            r_txr = rtr;
            r_rx = rr;
            r_rxp = rp;
        }
    }
    snprintf(json + jl, sizeof(json) - jl,
             ",\"ratio_toe_to_kernel\":%.3f,\"ratio_toe_to_kernel_by_ref\":%.3f,"
             "\"ratio_kernel_to_toe\":%.3f,\"ratio_kernel_to_toe_in_place\":%.3f}", r_tx,
             r_txr, r_rx, r_rxp);
    printf("%s\n", json);
    return 0;
}

static int parse_faults(const char *s, struct toe_faults *f)
{
    return sscanf(s, "%lf,%lf,%lf,%lf", &f->drop, &f->dup, &f->reorder, &f->corrupt) == 4
               ? 0 : -1;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);

    switch (*end) {
    case 'k': case 'K': return v << 10;
    case 'm': case 'M': return v << 20;
    case 'g': case 'G': return v << 30;
    default: return v;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: toe-tool bulk|conns|linkdown|pcap|bench|flood [options] "
                    "(see toe_emu/tools/toe_tool.c)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {
        .mtu = 9000, .bytes = 64u << 20, .dir = "both", .max = 64, .conns = 8,
        .seconds = 3, .mtus = "1500,9000", .rounds = 1, .stack = "both", .limit = 30,
    };
    static const struct option lo[] = {
        { "mtu", required_argument, NULL, 'm' },
        { "bytes", required_argument, NULL, 'b' },
        { "dir", required_argument, NULL, 'd' },
        { "faults", required_argument, NULL, 'f' },
        { "seed", required_argument, NULL, 's' },
        { "max", required_argument, NULL, 'x' },
        { "conns", required_argument, NULL, 'c' },
        { "out", required_argument, NULL, 'o' },
        { "ring", no_argument, NULL, 'r' },
        { "seconds", required_argument, NULL, 't' },
        { "mtus", required_argument, NULL, 'M' },
        { "no-offload", no_argument, NULL, 'n' },
        { "rounds", required_argument, NULL, 'R' },
        { "quiet", no_argument, NULL, 'q' },
        { "stack", required_argument, NULL, 'S' },
        { "pause-ms", required_argument, NULL, 'P' },
        { "pace-ms", required_argument, NULL, 'A' },
        { "limit", required_argument, NULL, 'L' },
        { "tcp-cc", required_argument, NULL, 'C' },
        { "in-place", no_argument, NULL, 'I' },
        { "by-ref", no_argument, NULL, 'B' },
        { 0 },
    };
    int opt;

    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    optind = 2;
    log_set_level(LOG_LVL_WARN);
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'm': o.mtu = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': o.bytes = parse_size(optarg); break;
        case 'd': o.dir = optarg; break;
        case 'f': if (parse_faults(optarg, &o.faults) < 0) usage(); break;
        case 's': o.faults.seed = strtoull(optarg, NULL, 0); break;
        case 'x': o.max = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': o.conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': o.out = optarg; break;
        case 'r': o.ring = true; break;
        case 't': o.seconds = strtod(optarg, NULL); break;
        case 'M': o.mtus = optarg; break;
        case 'n': o.no_offload = true; break;
        case 'R': o.rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'S': o.stack = optarg; break;
        case 'A': o.pace_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'P': o.pause_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'L': o.limit = strtod(optarg, NULL); break;
        case 'C': o.tcp_cc = optarg; break;
        case 'I': o.in_place = true; break;
        case 'B': o.by_ref = true; break;
        default: usage();
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    netns_enter(o.tcp_cc);
    pattern_init();
    if (!strcmp(cmd, "bulk"))
        return cmd_bulk(&o);
    if (!strcmp(cmd, "conns"))
        return cmd_conns(&o);
    if (!strcmp(cmd, "linkdown"))
        return cmd_linkdown(&o);
    if (!strcmp(cmd, "pcap"))
        return cmd_pcap(&o);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(&o);
    if (!strcmp(cmd, "flood"))
        return cmd_flood(&o);
    usage();
}
