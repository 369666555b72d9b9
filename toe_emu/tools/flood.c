/*
 * flood.c - `toe-tool flood`: a peer that sends without pause and never reads, against a
 * consumer that reads everything and answers every byte it receives (as the iSCSI initiator
 * answers each NOP-In with a NOP-Out).
 *
 * The answers back up: the peer reads none of them, so its receive buffer and then the
 * connection's send side fill, and every write returns -EAGAIN from then on. The consumer
 * keeps reading (its unsent answers are only a count here), and the connection must keep
 * receiving, acknowledging and delivering everything the peer sends, as a kernel socket
 * does. The same consumer runs over the host stack (common/transport.c, a kernel socket through
 * the same stk_conn ops) for comparison, against the same peer.
 *
 * --pace-ms N: the peer sleeps N ms after each send of up to 256 KiB, so that the flood
 * lasts long enough for the send side's zero-window probing to start.
 * --pause-ms N: once, after the first quarter of the stream, the consumer stops reading for
 * N ms: the receive side fills and its window closes (backpressure), then must reopen.
 * --out FILE: the TOE run is captured (in memory, saved to FILE at the end).
 *
 * Output, per stack S (toe, host): S_bytes, S_seconds, S_replied (answer bytes the stack
 * took), S_peer_sent, S_error, S_ok; for the TOE also its TCP counters. Exit 0 when every
 * stack run delivered the whole stream intact within --limit seconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "toe_emu/tools/tool.h"

#define FLOOD_PORT  5003
#define READ_BURST  64             /* reads per round before the answers get a turn */

/* The kernel peer: sends `bytes` of the pattern, reads nothing, closes when told. */
struct flood_peer {
    int lfd;
    uint64_t bytes;
    unsigned pace_ms;              /* pause between sends: the flood lasts a while */
    uint64_t sent;                 /* taken by its kernel socket */
    int err;                       /* errno of a failed send */
    _Atomic bool stop;             /* the consumer is done: close */
    pthread_t th;
};

static void *peer_main(void *arg)
{
    struct flood_peer *p = arg;
    struct timeval tmo = { .tv_sec = 0, .tv_usec = 200000 };
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        p->err = errno;
        return NULL;
    }
    /* Timed sends: a stalled connection must not keep this thread past the consumer. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
    while (p->sent < p->bytes && !atomic_load(&p->stop)) {
        size_t n = CHUNK;

        if (p->bytes - p->sent < n)
            n = (size_t)(p->bytes - p->sent);
        ssize_t w = send(fd, pat_at(p->sent), n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0) {
            p->err = w < 0 ? errno : EPIPE;
            break;
        }
        p->sent += (uint64_t)w;
        if (p->pace_ms)
            usleep(p->pace_ms * 1000u);
    }
    while (!atomic_load(&p->stop))
        usleep(10000);
    /* Unread data makes the close a reset anyway; say so at once. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return NULL;
}

struct flood_res {
    uint64_t got;                  /* bytes read, checked against the pattern */
    uint64_t replied;              /* answer bytes the connection accepted */
    uint64_t owed;                 /* answer bytes still waiting for room */
    double seconds;                /* connect to the last byte */
    int err;                       /* -errno of a failed read/write, -ETIMEDOUT past limit */
    bool bad;
    uint64_t bad_at;
};

static void take(struct flood_res *r, const uint8_t *buf, size_t n)
{
    if (verify && !r->bad && memcmp(buf, pat_at(r->got), n) != 0) {
        r->bad = true;
        r->bad_at = r->got;
    }
    r->got += n;
    r->owed += n;
}

/* Sleep until the conn can move (its fd), at most `ms`. */
static void conn_wait(struct stk_conn *c, bool want_read, bool want_write, int ms)
{
    uint32_t ev = c->ops->events(c, want_read, want_write);
    struct pollfd p = { .fd = c->fd };

    if (ev & EPOLLIN)
        p.events |= POLLIN;
    if (ev & EPOLLOUT)
        p.events |= POLLOUT;
    poll(&p, 1, ms);
}

/*
 * The consumer: read in bursts, answer what was read as far as the conn takes it, sleep
 * only when neither moved. Reads go on whatever the answers do: the receive side must not
 * depend on the send side.
 */
static void consume(struct stk_conn *c, uint64_t want, const struct opts *o, double t0,
                    struct flood_res *r)
{
    uint8_t *buf = malloc(CHUNK);
    double end = t0 + o->limit, pause_end = 0;
    bool paused_once = o->pause_ms == 0;

    if (!buf)
        die("out of memory");
    while (r->got < want) {
        double t = now_s();
        bool moved = false, paused = pause_end > t;

        if (t > end) {
            r->err = -ETIMEDOUT;
            break;
        }
        if (!paused_once && r->got >= want / 4) {
            paused_once = true;
            pause_end = t + o->pause_ms / 1000.0;
            paused = true;
        }
        for (int i = 0; !paused && i < READ_BURST && r->got < want; i++) {
            ssize_t n = stk_conn_read(c, buf, CHUNK);

            if (n == -EAGAIN)
                break;
            if (n == 0) {
                r->err = -EPIPE;           /* the peer never ends the stream first */
                goto out;
            }
            if (n < 0) {
                r->err = (int)n;
                goto out;
            }
            take(r, buf, (size_t)n);
            moved = true;
            if (c->ops->level_triggered && (size_t)n < CHUNK)
                break;                     /* a short read drained the socket */
        }
        while (r->owed) {
            size_t n = r->owed < CHUNK ? (size_t)r->owed : CHUNK;
            struct iovec iov = { .iov_base = (void *)pat_at(r->replied), .iov_len = n };
            ssize_t w = stk_conn_writev(c, &iov, 1);

            if (w == -EAGAIN)
                break;
            if (w < 0) {
                r->err = (int)w;
                goto out;
            }
            r->owed -= (uint64_t)w;
            r->replied += (uint64_t)w;
            moved = true;
        }
        if (!moved) {
            int ms = 100;

            if (paused)
                ms = (int)((pause_end - t) * 1000) + 1;
            conn_wait(c, !paused, r->owed > 0, ms);
        }
    }
out:
    r->seconds = now_s() - t0;
    free(buf);
}

static struct stk_conn *host_dial(uint16_t dport, double limit)
{
    struct sockaddr_in dst = host_addr(dport);
    struct stk_conn *c;
    int rc = stk_host_connect(&dst, 0, &c);
    double end = now_s() + limit;

    if (rc < 0)
        die("host connect: %s", strerror(-rc));
    while ((rc = c->ops->connect_result(c)) == -EINPROGRESS) {
        struct pollfd p = { .fd = c->fd, .events = POLLOUT };

        if (now_s() > end)
            die("host connect timed out");
        poll(&p, 1, 100);
    }
    if (rc < 0)
        die("host connect failed: %s", strerror(-rc));
    return c;
}

static bool run_one(const char *name, struct toe_dev *dev, const struct opts *o)
{
    struct flood_peer p = { .bytes = o->bytes, .pace_ms = o->pace_ms };
    struct flood_res r = { 0 };
    struct stk_conn *c;
    double t0 = now_s();
    bool toe = dev != NULL;

    p.lfd = listen_on("192.0.2.1", FLOOD_PORT);
    pthread_create(&p.th, NULL, peer_main, &p);
    c = toe ? toe_dial(dev, FLOOD_PORT, TOE_PORT0 + 100) : host_dial(FLOOD_PORT, o->limit);
    consume(c, o->bytes, o, t0, &r);
    atomic_store(&p.stop, true);
    pthread_join(p.th, NULL);
    stk_conn_close(c, true);
    close(p.lfd);

    bool ok = r.err == 0 && !r.bad && r.got == o->bytes && p.sent == o->bytes;
    printf("%s_bytes=%" PRIu64 " %s_seconds=%.3f %s_replied=%" PRIu64 " %s_owed=%" PRIu64
           " %s_peer_sent=%" PRIu64 " %s_error=\"%s\" %s_ok=%d\n", name, r.got, name,
           r.seconds, name, r.replied, name, r.owed, name, p.sent, name,
           r.err ? strerror(-r.err) : "", name, ok);
    if (r.bad)
        printf("%s_first_bad_byte=%" PRIu64 "\n", name, r.bad_at);
    return ok;
}

int cmd_flood(const struct opts *o)
{
    bool ok = true, do_toe = strcmp(o->stack, "host") != 0;
    bool do_host = strcmp(o->stack, "toe") != 0;
    struct toe_dev *dev;
    struct toe_counters k;

    if (!do_toe && !do_host)
        die("--stack must be toe, host or both");
    if (o->limit <= 0)
        die("--limit must be a positive number of seconds");
    /* The adapter also gives the host side its address, where the peer listens. */
    dev = dev_up(o->mtu, 64, o->no_offload);
    if (do_host)
        ok &= run_one("host", NULL, o);
    if (do_toe) {
        if (o->out && toe_capture_start(dev, NULL, 256u << 20) < 0)
            die("%s", toe_strerror());
        ok &= run_one("toe", dev, o);
        usleep(300000);            /* the reset and its answer cross the wire */
        if (o->out && toe_capture_save(dev, o->out) < 0)
            die("%s", toe_strerror());
        print_counters(dev);
        if (toe_get_counters(dev, &k) == 0)
            printf("tcp_drop=%" PRIu64 " tcp_in_errs=%" PRIu64 "\n", k.tcp_drop,
                   k.tcp_in_errs);
    }
    toe_dev_free(dev);
    printf("result=%s\n", ok ? "ok" : "fail");
    return ok ? 0 : 1;
}
