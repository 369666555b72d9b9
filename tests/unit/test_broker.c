/*
 * test_broker.c - the offload broker (stacks/broker.c, stacks/table.c) against real kernel
 * sockets and, where a test needs one, a real emulated TOE.
 *
 * Port space: exhaustion, reuse after release, conflicts both ways with host sockets.
 * Reservations: create/list/delete, fixed ports, range and in-use errors, restore.
 * Placement: no TOE, policy host/toe, TOE link down, TOE full, unreachable through the TOE.
 * Ownership: only a descriptor's owner may use or release it; only a reservation's holder
 * may take its port. The unified table: a TOE connection and another process's kernel
 * socket in one listing. Counters and stats.
 *
 * Isolation: every test runs (Criterion forks one process per test) in a network namespace
 * of its own, entered in the suite's init with unshare(CLONE_NEWNET) (root), or with a user
 * namespace as well when not root. All traffic is on 127.0.0.1 and 192.0.2.0/24 inside it.
 * A test that needs the namespace or the TOE and cannot have it is skipped, saying why.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "appliance/net.h"
#include "common/log.h"
#include "stacks/stacks.h"
#include "toe_emu/toe.h"

#define OWNER "iscsi-test"
#define OTHER "someone-else"
#define LO 20000

/* ---------------------------------------------------------------- environment */

static bool netns_ok;
static char netns_why[160];

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

/* A private network namespace for this test's process, with lo up. */
static void netns_enter(void)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    struct ifreq ifr = { 0 };
    char map[64];
    int fd;

    netns_ok = false;
    if (unshare(CLONE_NEWNET) < 0) {
        int e1 = errno;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
            snprintf(netns_why, sizeof(netns_why),
                     "cannot create a private network namespace (%s; as a user: %s): run as "
                     "root", strerror(e1), strerror(errno));
            return;
        }
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        write_file("/proc/self/gid_map", map);
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        snprintf(netns_why, sizeof(netns_why), "cannot read the flags of lo: %s",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
        snprintf(netns_why, sizeof(netns_why), "cannot bring lo up: %s", strerror(errno));
        close(fd);
        return;
    }
    close(fd);
    netns_ok = true;
}

static void suite_init(void)
{
    log_set_level(LOG_LVL_ERROR);
    signal(SIGPIPE, SIG_IGN);
    netns_enter();
}

#define NEED_NETNS() \
    do { \
        if (!netns_ok) \
            cr_skip_test("%s", netns_why); \
    } while (0)

/* The default TOE (toe0, 192.0.2.2/24, host side 192.0.2.1/24), or a skip. */
static struct toe_dev *toe_up(unsigned max_conns)
{
    struct toe_config cfg;
    struct toe_dev *toe;

    NEED_NETNS();
    toe_config_defaults(&cfg);
    cfg.max_conns = max_conns;
    toe = toe_dev_new(&cfg);
    if (!toe) {
        int e = errno;
        if (e == EPERM || e == EACCES || e == ENOENT || e == ENODEV || e == ENXIO)
            cr_skip_test("cannot bring up a toe here (%s): %s", strerror(e), toe_strerror());
        cr_assert_fail("toe_dev_new: %s (%s)", strerror(e), toe_strerror());
    }
    return toe;
}

static struct stk_broker *broker_new(uint16_t lo, uint16_t hi, struct toe_dev *toe)
{
    struct stk_offload_ops off;
    struct stk_broker_config cfg = { .port_lo = lo, .port_hi = hi,
                                     .offload = toe ? &off : NULL };
    struct stk_broker *b;

    if (toe)
        app_net_toe_offload(toe, &off);
    b = stk_broker_new(&cfg);

    cr_assert_not_null(b, "stk_broker_new: %s", strerror(errno));
    return b;
}

static struct sockaddr_in sin_of(const char *ip, uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

/* A kernel listener on ip:0; *addr gets its address. */
static int listener(const char *ip, struct sockaddr_in *addr)
{
    struct sockaddr_in a = sin_of(ip, 0);
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %s", ip,
                 strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *addr = a;
    return fd;
}

/* A plain host socket bound to ip:port (optionally SO_REUSEADDR, optionally listening).
 * Returns the fd, or -errno of bind/listen. */
static int host_bind(const char *ip, uint16_t port, bool reuse, bool listening)
{
    struct sockaddr_in a = sin_of(ip, port);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

    cr_assert_geq(fd, 0);
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (listening && listen(fd, 4) < 0)) {
        ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

/* True when a plain bind(0.0.0.0:port) of a host application fails with EADDRINUSE. */
static bool port_taken_for_host(uint16_t port)
{
    int fd = host_bind("0.0.0.0", port, false, false);

    if (fd >= 0)
        close(fd);
    return fd == -EADDRINUSE;
}

static int request(struct stk_broker *b, const char *owner, struct sockaddr_in dst,
                   enum stk_policy policy, uint64_t reservation, struct stk_desc **d,
                   char *err)
{
    struct stk_request req = { .owner = owner, .dst = dst, .policy = policy,
                               .reservation = reservation };

    err[0] = '\0';
    return stk_request(b, &req, d, err, 256);
}

/* Wait until the descriptor's connection is established (or failed): 0 or -errno. */
static int wait_connected(struct stk_conn *c)
{
    for (int i = 0; i < 500; i++) {
        int r = c->ops->connect_result(c);
        if (r != -EINPROGRESS)
            return r;
        struct pollfd p = { .fd = c->fd, .events = (short)c->ops->events(c, false, true) };
        poll(&p, 1, 10);
    }
    return -ETIMEDOUT;
}

/* accept() with a 5 s limit; *peer gets the connecting side's address. */
static int accept_one(int lfd, struct sockaddr_in *peer)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    socklen_t len = sizeof(*peer);

    cr_assert_eq(poll(&p, 1, 5000), 1, "no connection arrived at the listener");
    int fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
    return fd;
}

/* Read exactly len bytes from a broker connection (poll its fd between tries). */
static void conn_read_all(struct stk_conn *c, void *buf, size_t len)
{
    size_t got = 0;

    for (int i = 0; got < len && i < 500; i++) {
        ssize_t n = stk_conn_read(c, (char *)buf + got, len - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        cr_assert_eq(n, -EAGAIN, "read: %s", n == 0 ? "end of stream" : strerror((int)-n));
        struct pollfd p = { .fd = c->fd, .events = (short)c->ops->events(c, true, false) };
        poll(&p, 1, 10);
    }
    cr_assert_eq(got, len, "read %zu of %zu bytes", got, len);
}

static void conn_write_all(struct stk_conn *c, const void *buf, size_t len)
{
    size_t put = 0;

    for (int i = 0; put < len && i < 500; i++) {
        struct iovec iov = { .iov_base = (char *)buf + put, .iov_len = len - put };
        ssize_t n = stk_conn_writev(c, &iov, 1);
        if (n > 0) {
            put += (size_t)n;
            continue;
        }
        cr_assert_eq(n, -EAGAIN, "writev: %s", strerror((int)-n));
        struct pollfd p = { .fd = c->fd, .events = (short)c->ops->events(c, false, true) };
        poll(&p, 1, 10);
    }
    cr_assert_eq(put, len);
}

static void sock_read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        cr_assert_eq(poll(&p, 1, 5000), 1, "the peer's data did not arrive");
        ssize_t n = read(fd, (char *)buf + got, len - got);
        cr_assert_gt(n, 0, "read: %s", n ? strerror(errno) : "end of stream");
        got += (size_t)n;
    }
}

static uint64_t ports_held(struct stk_broker *b)
{
    struct stk_broker_stats st;

    stk_broker_stats(b, &st);
    return st.ports_held;
}

TestSuite(broker_ports, .init = suite_init);
TestSuite(broker_reservations, .init = suite_init);
TestSuite(broker_policy, .init = suite_init);
TestSuite(broker_owner, .init = suite_init);
TestSuite(broker_toe, .init = suite_init);
TestSuite(broker_table, .init = suite_init);

/* ---------------------------------------------------------------- port space */

Test(broker_ports, parse_port_range)
{
    uint16_t lo, hi;

    cr_assert_eq(stk_parse_port_range("20000-20999", &lo, &hi), 0);
    cr_assert_eq(lo, 20000);
    cr_assert_eq(hi, 20999);
    cr_assert_eq(stk_parse_port_range("7-7", &lo, &hi), 0);
    cr_assert_eq(stk_parse_port_range("0-10", &lo, &hi), -EINVAL);
    cr_assert_eq(stk_parse_port_range("10-9", &lo, &hi), -EINVAL);
    cr_assert_eq(stk_parse_port_range("1-65536", &lo, &hi), -EINVAL);
    cr_assert_eq(stk_parse_port_range("20000", &lo, &hi), -EINVAL);
    cr_assert_eq(stk_parse_port_range("a-b", &lo, &hi), -EINVAL);
    cr_assert_eq(stk_parse_port_range("1-2x", &lo, &hi), -EINVAL);
}

Test(broker_ports, bad_config_is_refused)
{
    struct stk_broker_config cfg = { .port_lo = 0, .port_hi = 10 };

    cr_assert_null(stk_broker_new(&cfg));
    cr_assert_eq(errno, EINVAL);
    cfg.port_lo = 11;
    cr_assert_null(stk_broker_new(&cfg));
    cr_assert_eq(errno, EINVAL);
}

Test(broker_ports, exhaustion_is_enospc)
{
    struct stk_broker *b;
    struct stk_desc *d[3], *x;
    struct sockaddr_in dst;
    struct stk_reservation r;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 2, NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d[i], err), 0, "%s", err);
        cr_assert(d[i]->port >= LO && d[i]->port <= LO + 2, "port %u outside the range",
                  d[i]->port);
        for (int j = 0; j < i; j++)
            cr_assert_neq(d[i]->port, d[j]->port, "port %u handed out twice", d[i]->port);
    }
    cr_assert_eq(ports_held(b), 3);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &x, err), -ENOSPC);
    cr_assert(strstr(err, "no free local port"), "error message: \"%s\"", err);
    cr_assert_eq(stk_reserve(b, "holder", 0, STK_POLICY_AUTO, &r), -ENOSPC);
    cr_assert_eq(ports_held(b), 3, "a refused request must not hold a port");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(stk_release(b, d[i], OWNER, true), 0);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_ports, release_returns_the_port_to_the_pool)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    uint16_t p;
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO, NULL);   /* one port: a second request needs the first's back */
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    p = d->port;
    cr_assert_eq(p, LO);
    cr_assert(port_taken_for_host(p), "the port of a live connection is free for the host");
    cr_assert_eq(stk_release(b, d, OWNER, true), 0);
    cr_assert_eq(ports_held(b), 0);
    cr_assert_not(port_taken_for_host(p), "a released port is still held on the host");
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0,
                 "the released port was not reused: %s", err);
    cr_assert_eq(d->port, p);
    cr_assert_eq(stk_release(b, d, OWNER, false), 0);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_ports, pool_rotates_and_reuses_released_ports)
{
    struct stk_broker *b;
    struct stk_desc *a, *c, *e;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 1, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &a, err), 0, "%s", err);
    uint16_t pa = a->port;
    cr_assert_eq(stk_release(b, a, OWNER, true), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &c, err), 0, "%s", err);
    cr_assert_neq(c->port, pa, "a just-released port is reused first (should be reused late)");
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &e, err), 0,
                 "the released port is not back in the pool: %s", err);
    cr_assert_eq(e->port, pa);
    stk_release(b, c, OWNER, true);
    stk_release(b, e, OWNER, true);
    stk_broker_free(b);
    close(lfd);
}

/* A host application holds a port of the range: the broker skips it and cannot reserve it. */
static void host_holds(const char *ip, bool reuse, bool listening)
{
    struct stk_broker *b;
    struct stk_desc *d, *x;
    struct stk_reservation r;
    struct sockaddr_in dst;
    char err[256];
    int lfd, hfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    hfd = host_bind(ip, LO, reuse, listening);
    cr_assert_geq(hfd, 0, "host bind %s:%u: %s", ip, LO, strerror(-hfd));
    b = broker_new(LO, LO + 1, NULL);
    cr_assert_eq(stk_reserve(b, "holder", LO, STK_POLICY_AUTO, &r), -EADDRINUSE,
                 "reserving a port a host socket holds (%s:%u) must fail", ip, LO);
    cr_assert_eq(ports_held(b), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->port, LO + 1, "the broker used port %u that a host socket holds",
                 d->port);
    /* both held (one by the host, one by us): no free port */
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &x, err), -ENOSPC);
    cr_assert(strstr(err, "no free local port"), "error message: \"%s\"", err);
    stk_release(b, d, OWNER, true);
    stk_broker_free(b);
    close(hfd);
    close(lfd);
}

Test(broker_ports, host_socket_bound_to_any_is_skipped)
{
    host_holds("0.0.0.0", false, false);
}

Test(broker_ports, host_socket_bound_to_loopback_is_skipped)
{
    host_holds("127.0.0.1", false, false);
}

Test(broker_ports, host_listener_is_skipped)
{
    host_holds("0.0.0.0", false, true);
}

Test(broker_ports, host_reuseaddr_listener_is_skipped)
{
    host_holds("0.0.0.0", true, true);
}

Test(broker_ports, host_socket_with_ipv6_dual_stack_bind_is_skipped)
{
    struct stk_broker *b;
    struct stk_reservation r;
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(LO),
                               .sin6_addr = IN6ADDR_ANY_INIT };
    int zero = 0, fd;

    NEED_NETNS();
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        cr_skip_test("no IPv6 sockets here: %s", strerror(errno));
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    cr_assert_eq(bind(fd, (struct sockaddr *)&a6, sizeof(a6)), 0, "%s", strerror(errno));
    b = broker_new(LO, LO, NULL);
    cr_assert_eq(stk_reserve(b, "holder", 0, STK_POLICY_AUTO, &r), -ENOSPC,
                 "a [::]:%u dual-stack socket holds the only port", LO);
    stk_broker_free(b);
    close(fd);
}

/* The other way: what the broker holds, a host application cannot take. */
Test(broker_ports, held_port_refuses_a_plain_bind)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct stk_reservation r;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, "holder", LO + 5, STK_POLICY_AUTO, &r), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    cr_assert_neq(d->port, LO + 5);
    cr_assert_eq(wait_connected(d->conn), 0);
    uint16_t ports[2] = { r.port, d->port };
    for (int i = 0; i < 2; i++) {
        const char *what = i ? "connection" : "reservation";
        int fd = host_bind("0.0.0.0", ports[i], false, false);
        cr_assert_eq(fd, -EADDRINUSE, "bind(0.0.0.0:%u) of the %s's port: %s", ports[i], what,
                     fd >= 0 ? "succeeded" : strerror(-fd));
        fd = host_bind("127.0.0.1", ports[i], false, false);
        cr_assert_eq(fd, -EADDRINUSE, "bind(127.0.0.1:%u) of the %s's port: %s", ports[i],
                     what, fd >= 0 ? "succeeded" : strerror(-fd));
        fd = host_bind("0.0.0.0", ports[i], false, true);
        cr_assert_eq(fd, -EADDRINUSE, "a listener on the %s's port %u: %s", what, ports[i],
                     fd >= 0 ? "succeeded" : strerror(-fd));
    }
    stk_release(b, d, OWNER, true);
    cr_assert_eq(stk_unreserve(b, r.id), 0);
    cr_assert_not(port_taken_for_host(r.port), "a deleted reservation's port is still held");
    stk_broker_free(b);
    close(lfd);
}

/*
 * Servers usually set SO_REUSEADDR before bind+listen. On a single stack such a server
 * cannot listen on a port a connection (or another application) holds without it; the
 * broker's placeholder must keep it out as well, or the reservation's host connection
 * later fails (its bind conflicts with the listener).
 */
Test(broker_ports, held_port_refuses_a_reuseaddr_listener)
{
    struct stk_broker *b;
    struct stk_reservation r;
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd, fd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO, NULL);
    cr_assert_eq(stk_reserve(b, OWNER, LO, STK_POLICY_HOST, &r), 0);
    fd = host_bind("0.0.0.0", LO, true, true);
    if (fd >= 0) {
        /* show the consequence before failing: the reservation is now unusable */
        int ret = request(b, OWNER, dst, STK_POLICY_HOST, r.id, &d, err);
        if (ret == 0)
            stk_release(b, d, OWNER, true);
        close(fd);
        cr_assert_fail("a host server with SO_REUSEADDR bound and listened on reserved port "
                       "%u; the reservation's host connection then %s%s", LO,
                       ret ? "fails: " : "still works", ret ? err : "");
    }
    cr_assert_eq(fd, -EADDRINUSE);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_ports, host_connection_uses_the_reserved_port)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst, peer;
    char err[256];
    int lfd, afd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    cr_assert_eq(wait_connected(d->conn), 0);
    afd = accept_one(lfd, &peer);
    cr_assert_eq(ntohs(peer.sin_port), d->port,
                 "the target sees local port %u, the descriptor says %u", ntohs(peer.sin_port),
                 d->port);
    cr_assert_eq(d->remote.sin_port, dst.sin_port);
    cr_assert_eq(d->remote.sin_addr.s_addr, dst.sin_addr.s_addr);
    close(afd);
    stk_release(b, d, OWNER, false);
    stk_broker_free(b);
    close(lfd);
}

/* ---------------------------------------------------------------- reservations */

Test(broker_reservations, create_list_delete)
{
    struct stk_broker *b;
    struct stk_reservation r1, r2, g, *list;
    size_t n;

    NEED_NETNS();
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_list_reservations(b, &list, &n), 0);
    cr_assert_eq(n, 0);
    free(list);

    cr_assert_eq(stk_reserve(b, "vol-a", 0, STK_POLICY_AUTO, &r1), 0);
    cr_assert(r1.port >= LO && r1.port <= LO + 9);
    cr_assert_eq(stk_reserve(b, "vol-b", LO + 7, STK_POLICY_TOE, &r2), 0);
    cr_assert_eq(r2.port, LO + 7, "a fixed port must be the one asked for");
    cr_assert_neq(r1.id, r2.id);
    cr_assert_str_eq(r2.holder, "vol-b");
    cr_assert_eq(r2.stack, STK_POLICY_TOE);
    cr_assert_not(r2.in_use);
    cr_assert_gt(r2.created, 0);
    cr_assert_eq(ports_held(b), 2);
    cr_assert(port_taken_for_host(r1.port));
    cr_assert(port_taken_for_host(r2.port));

    cr_assert_eq(stk_list_reservations(b, &list, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].id, r1.id, "oldest first");
    cr_assert_eq(list[1].id, r2.id);
    cr_assert_eq(list[1].port, LO + 7);
    cr_assert_str_eq(list[0].holder, "vol-a");
    free(list);

    cr_assert_eq(stk_get_reservation(b, r2.id, &g), 0);
    cr_assert_eq(g.port, r2.port);
    cr_assert_str_eq(g.holder, "vol-b");

    cr_assert_eq(stk_unreserve(b, r1.id), 0);
    cr_assert_eq(stk_unreserve(b, r1.id), -ENOENT);
    cr_assert_eq(stk_get_reservation(b, r1.id, &g), -ENOENT);
    cr_assert_not(port_taken_for_host(r1.port), "a deleted reservation's port is still held");
    cr_assert_eq(stk_list_reservations(b, &list, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(list[0].id, r2.id);
    free(list);
    cr_assert_eq(stk_unreserve(b, r2.id), 0);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
}

Test(broker_reservations, fixed_port_twice_is_eaddrinuse)
{
    struct stk_broker *b;
    struct stk_reservation r, r2;

    NEED_NETNS();
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, "a", LO + 3, STK_POLICY_AUTO, &r), 0);
    cr_assert_eq(stk_reserve(b, "b", LO + 3, STK_POLICY_AUTO, &r2), -EADDRINUSE);
    cr_assert_eq(stk_reserve(b, "a", LO + 3, STK_POLICY_AUTO, &r2), -EADDRINUSE);
    /* the pool skips it */
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(stk_reserve(b, "c", 0, STK_POLICY_AUTO, &r2), 0);
        cr_assert_neq(r2.port, LO + 3);
    }
    cr_assert_eq(stk_reserve(b, "c", 0, STK_POLICY_AUTO, &r2), -ENOSPC);
    stk_broker_free(b);
}

Test(broker_reservations, outside_the_range_is_erange)
{
    struct stk_broker *b;
    struct stk_reservation r;

    NEED_NETNS();
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, "a", LO - 1, STK_POLICY_AUTO, &r), -ERANGE);
    cr_assert_eq(stk_reserve(b, "a", LO + 10, STK_POLICY_AUTO, &r), -ERANGE);
    cr_assert_eq(stk_reserve(b, "a", 80, STK_POLICY_AUTO, &r), -ERANGE);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
}

Test(broker_reservations, bad_holder_is_einval)
{
    struct stk_broker *b;
    struct stk_reservation r;
    char lng[STK_NAME_MAX + 1];

    NEED_NETNS();
    memset(lng, 'x', sizeof(lng) - 1);
    lng[sizeof(lng) - 1] = '\0';
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, "", 0, STK_POLICY_AUTO, &r), -EINVAL);
    cr_assert_eq(stk_reserve(b, NULL, 0, STK_POLICY_AUTO, &r), -EINVAL);
    cr_assert_eq(stk_reserve(b, lng, 0, STK_POLICY_AUTO, &r), -EINVAL);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
}

Test(broker_reservations, in_use_is_ebusy_and_survives_release)
{
    struct stk_broker *b;
    struct stk_reservation r, g;
    struct stk_desc *d, *x;
    struct sockaddr_in dst, peer;
    char err[256];
    int lfd, afd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, OWNER, LO + 4, STK_POLICY_HOST, &r), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, r.id, &d, err), 0, "%s", err);
    cr_assert_eq(d->port, LO + 4, "the connection must use its reservation's port");
    cr_assert_eq(d->reservation, r.id);
    cr_assert_eq(d->placement, STK_PLACED_HOST_ASKED, "the reservation asked for the host");
    cr_assert_eq(wait_connected(d->conn), 0);
    afd = accept_one(lfd, &peer);
    cr_assert_eq(ntohs(peer.sin_port), LO + 4);
    close(afd);

    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
    cr_assert(g.in_use);
    cr_assert_eq(stk_unreserve(b, r.id), -EBUSY);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, r.id, &x, err), -EBUSY);
    cr_assert(strstr(err, "in use"), "error message: \"%s\"", err);

    cr_assert_eq(stk_release(b, d, OWNER, true), 0);
    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0, "release must not delete the reservation");
    cr_assert_not(g.in_use);
    cr_assert(port_taken_for_host(r.port), "a reservation's port must stay held after release");
    cr_assert_eq(ports_held(b), 1);
    /* usable again */
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, r.id, &d, err), 0, "%s", err);
    cr_assert_eq(d->port, r.port);
    cr_assert_eq(stk_release(b, d, OWNER, true), 0);
    cr_assert_eq(stk_unreserve(b, r.id), 0);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_reservations, unknown_reservation_is_enoent)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 42, &d, err), -ENOENT);
    cr_assert(strstr(err, "42"), "error message: \"%s\"", err);
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_reservations, restore_keeps_id_and_creation_time)
{
    struct stk_broker *b;
    struct stk_reservation saved = { .id = 17, .port = LO + 2, .stack = STK_POLICY_TOE,
                                     .created = 1700000000 }, g, next;

    NEED_NETNS();
    snprintf(saved.holder, sizeof(saved.holder), "vol-restored");
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_restore_reservation(b, &saved), 0);
    cr_assert_eq(stk_get_reservation(b, 17, &g), 0);
    cr_assert_eq(g.port, LO + 2);
    cr_assert_eq(g.created, 1700000000);
    cr_assert_str_eq(g.holder, "vol-restored");
    cr_assert(port_taken_for_host(LO + 2));
    cr_assert_eq(stk_reserve(b, "new", 0, STK_POLICY_AUTO, &next), 0);
    cr_assert_gt(next.id, 17, "new ids must not collide with restored ones");
    stk_broker_free(b);
}

/* ---------------------------------------------------------------- placement (no TOE) */

Test(broker_policy, no_toe_places_on_host)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct stk_broker_stats st;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_HOST);
    cr_assert_eq(d->conn->stack, STK_STACK_HOST);
    cr_assert_eq(d->placement, STK_PLACED_HOST_NO_TOE);
    cr_assert_str_eq(stk_placement_name(d->placement), "no toe");
    cr_assert_str_eq(d->owner, OWNER);
    cr_assert_eq(wait_connected(d->conn), 0);
    stk_broker_stats(b, &st);
    cr_assert_eq(st.requests, 1);
    cr_assert_eq(st.granted_host, 1);
    cr_assert_eq(st.granted_toe, 0);
    cr_assert_eq(st.latency_count[STK_STACK_HOST], 1);
    cr_assert_eq(stk_release(b, d, OWNER, false), 0);
    stk_broker_stats(b, &st);
    cr_assert_eq(st.released, 1);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_policy, toe_policy_without_toe_is_enodev)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct stk_broker_stats st;
    struct stk_reservation r, g;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), -ENODEV);
    cr_assert(strstr(err, "no toe"), "error message: \"%s\"", err);
    cr_assert_eq(ports_held(b), 0, "a refused request must return its port");
    stk_broker_stats(b, &st);
    cr_assert_eq(st.refused, 1);
    /* a reservation for the TOE, used with policy auto: the same refusal, reservation intact */
    cr_assert_eq(stk_reserve(b, OWNER, 0, STK_POLICY_TOE, &r), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, r.id, &d, err), -ENODEV);
    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
    cr_assert_not(g.in_use);
    cr_assert(port_taken_for_host(r.port), "a refused request must not drop its reservation");
    stk_broker_free(b);
    close(lfd);
}

Test(broker_policy, host_policy_is_host_asked)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_HOST);
    cr_assert_eq(d->placement, STK_PLACED_HOST_ASKED);
    cr_assert_str_eq(stk_placement_name(d->placement), "host requested");
    stk_release(b, d, OWNER, true);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_policy, request_needs_an_owner)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst = sin_of("127.0.0.1", 3260);
    char err[256];

    NEED_NETNS();
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, NULL, dst, STK_POLICY_HOST, 0, &d, err), -EINVAL);
    cr_assert_eq(request(b, "", dst, STK_POLICY_HOST, 0, &d, err), -EINVAL);
    cr_assert_neq(err[0], '\0', "no error message");
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
}

Test(broker_policy, placement_names)
{
    cr_assert_str_eq(stk_placement_name(STK_PLACED_TOE), "offloaded");
    cr_assert_str_eq(stk_placement_name(STK_PLACED_HOST_LINK_DOWN), "toe link down");
    cr_assert_str_eq(stk_placement_name(STK_PLACED_HOST_TOE_FULL), "toe full");
    cr_assert_str_eq(stk_placement_name(STK_PLACED_HOST_UNREACHABLE), "unreachable via toe");
}

/* ---------------------------------------------------------------- ownership */

Test(broker_owner, only_the_owner_uses_or_releases)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct stk_conn dummy = { 0 };
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);

    errno = 0;
    cr_assert_null(stk_desc_conn(d, OTHER));
    cr_assert_eq(errno, EPERM);
    errno = 0;
    cr_assert_null(stk_desc_conn(d, NULL));
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(stk_desc_conn(d, OWNER), d->conn);

    cr_assert_eq(stk_release(b, d, OTHER, true), -EPERM);
    cr_assert_eq(stk_release(b, d, NULL, true), -EPERM);
    cr_assert_eq(stk_release_conn(b, d->conn, OTHER, true), -EPERM);
    cr_assert_eq(stk_release_conn(b, &dummy, OWNER, true), -ENOENT);
    /* still the owner's, still connected, still holding its port */
    cr_assert_eq(wait_connected(d->conn), 0);
    cr_assert(port_taken_for_host(d->port));
    uint16_t p = d->port;
    cr_assert_eq(stk_release_conn(b, d->conn, OWNER, true), 0);
    cr_assert_not(port_taken_for_host(p));
    cr_assert_eq(ports_held(b), 0);
    stk_broker_free(b);
    close(lfd);
}

Test(broker_owner, another_holders_reservation_is_eperm)
{
    struct stk_broker *b;
    struct stk_reservation r, g;
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve(b, OWNER, 0, STK_POLICY_HOST, &r), 0);
    cr_assert_eq(request(b, OTHER, dst, STK_POLICY_HOST, r.id, &d, err), -EPERM);
    cr_assert(strstr(err, OWNER), "the message should name the holder: \"%s\"", err);
    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
    cr_assert_not(g.in_use);
    cr_assert_eq(ports_held(b), 1);
    stk_broker_free(b);
    close(lfd);
}

/* A program (broker socket) owns as "pid/comm" and claims a reservation by its holder. */
Test(broker_owner, reservation_claimed_by_holder_and_uid)
{
    struct stk_broker *b;
    struct stk_reservation r, g;
    struct stk_desc *d;
    struct sockaddr_in dst;
    struct stk_request req = { .owner = "4242/prog", .policy = STK_POLICY_HOST,
                               .holder = "perfjob", .has_uid = true, .uid = 1000 };
    char err[256];
    int lfd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    req.dst = dst;
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(stk_reserve_uid(b, "perfjob", true, 1001, 0, STK_POLICY_HOST, &r), 0);
    cr_assert(r.has_uid && r.uid == 1001);
    req.reservation = r.id;
    cr_assert_eq(stk_request(b, &req, &d, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "is for uid 1001, not uid 1000"), "%s", err);
    req.uid = 1001;
    req.holder = "other";
    cr_assert_eq(stk_request(b, &req, &d, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "held by \"perfjob\", not \"other\""), "%s", err);
    req.holder = "perfjob";
    cr_assert_eq(stk_request(b, &req, &d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d->port, r.port);
    cr_assert_str_eq(d->owner, "4242/prog");
    /* handed over: the broker keeps the descriptor, not the socket */
    cr_assert_eq(stk_desc_hand_over(b, d, "someone"), -EPERM);
    cr_assert_eq(stk_desc_hand_over(b, d, "4242/prog"), 0);
    cr_assert_null(d->conn);
    cr_assert_eq(stk_desc_hand_over(b, d, "4242/prog"), -EINVAL);
    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
    cr_assert(g.in_use);
    cr_assert_eq(stk_release(b, d, "4242/prog", false), 0);
    cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
    cr_assert_not(g.in_use);
    stk_broker_free(b);
    close(lfd);
}

/* ---------------------------------------------------------------- with a TOE */

Test(broker_toe, auto_places_on_the_toe_and_moves_data)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *d;
    struct stk_broker_stats st;
    struct stk_tcp_counters tc;
    struct sockaddr_in dst, peer;
    char err[256], buf[6];
    int lfd, afd;

    lfd = listener("192.0.2.1", &dst);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_TOE);
    cr_assert_eq(d->placement, STK_PLACED_TOE);
    cr_assert(toe_conn_is_toe(d->conn));
    cr_assert_eq(wait_connected(d->conn), 0);
    afd = accept_one(lfd, &peer);
    cr_assert_str_eq(inet_ntoa(peer.sin_addr), "192.0.2.2",
                     "the target must see the TOE's own address");
    cr_assert_eq(ntohs(peer.sin_port), d->port, "the TOE must use the broker's port");
    cr_assert(port_taken_for_host(d->port), "a TOE connection's port is free for the host");

    conn_write_all(d->conn, "hello", 5);
    sock_read_all(afd, buf, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_eq(write(afd, "world", 5), 5);
    conn_read_all(d->conn, buf, 5);
    cr_assert_eq(memcmp(buf, "world", 5), 0);

    cr_assert_eq(stk_tcp_counters(b, STK_STACK_TOE, &tc), 0);
    cr_assert_geq(tc.active_opens, 1);
    cr_assert_geq(tc.curr_estab, 1);
    cr_assert_gt(tc.out_segs, 0);
    cr_assert_eq(stk_tcp_counters(b, STK_STACK_HOST, &tc), 0);
    cr_assert_geq(tc.passive_opens, 1, "the kernel accepted one connection");
    stk_broker_stats(b, &st);
    cr_assert_eq(st.granted_toe, 1);
    cr_assert_eq(st.latency_count[STK_STACK_TOE], 1);

    uint16_t p = d->port;
    cr_assert_eq(stk_release(b, d, OWNER, false), 0);
    cr_assert_eq(ports_held(b), 0);
    cr_assert_not(port_taken_for_host(p), "a released TOE port is still held on the host");
    close(afd);
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

Test(broker_toe, toe_skips_a_port_a_host_socket_holds)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 1, toe);
    struct stk_desc *d, *x;
    struct sockaddr_in dst, peer;
    char err[256];
    int lfd, afd, hfd;

    lfd = listener("192.0.2.1", &dst);
    hfd = host_bind("0.0.0.0", LO, false, false);
    cr_assert_geq(hfd, 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->port, LO + 1, "the TOE used port %u that a host socket holds", d->port);
    cr_assert_eq(wait_connected(d->conn), 0);
    afd = accept_one(lfd, &peer);
    cr_assert_eq(ntohs(peer.sin_port), LO + 1);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &x, err), -ENOSPC);
    cr_assert(strstr(err, "no free local port"), "error message: \"%s\"", err);
    stk_release(b, d, OWNER, true);
    close(afd);
    close(hfd);
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

Test(broker_toe, link_down_falls_back_to_host)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    lfd = listener("192.0.2.1", &dst);
    cr_assert_eq(toe_set_link(toe, false), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_HOST);
    cr_assert_eq(d->placement, STK_PLACED_HOST_LINK_DOWN);
    cr_assert_str_eq(stk_placement_name(d->placement), "toe link down");
    cr_assert_eq(wait_connected(d->conn), 0, "the host fallback did not connect");
    stk_release(b, d, OWNER, true);

    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), -ENETDOWN);
    cr_assert(strstr(err, "link is down"), "error message: \"%s\"", err);
    cr_assert_eq(ports_held(b), 0);

    cr_assert_eq(toe_set_link(toe, true), 0);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->placement, STK_PLACED_TOE, "link up again: back to the TOE");
    cr_assert_eq(wait_connected(d->conn), 0);
    stk_release(b, d, OWNER, true);
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

Test(broker_toe, full_toe_falls_back_to_host)
{
    struct toe_dev *toe = toe_up(0);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *d;
    struct stk_broker_stats st;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    lfd = listener("192.0.2.1", &dst);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_HOST);
    cr_assert_eq(d->placement, STK_PLACED_HOST_TOE_FULL);
    cr_assert_eq(wait_connected(d->conn), 0);
    stk_release(b, d, OWNER, true);

    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), -EMFILE);
    cr_assert(strstr(err, "--toe-max-conns"), "error message: \"%s\"", err);
    cr_assert_eq(ports_held(b), 0, "a refused request must return its port");
    stk_broker_stats(b, &st);
    cr_assert_eq(st.refused, 1);
    cr_assert_eq(st.granted_host, 1);
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

/* The TOE's room is back as soon as stk_release returns (each round follows the last). */
Test(broker_toe, room_frees_when_a_toe_connection_is_released)
{
    struct toe_dev *toe = toe_up(1);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *d1, *d2;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    lfd = listener("192.0.2.1", &dst);
    for (int round = 0; round < 100; round++) {
        cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d1, err), 0, "%s", err);
        cr_assert_eq(d1->placement, STK_PLACED_TOE,
                     "round %d: placed on the host (%s) right after the TOE's only "
                     "connection was released", round, stk_placement_name(d1->placement));
        cr_assert_eq(wait_connected(d1->conn), 0);
        cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d2, err), 0, "%s", err);
        cr_assert_eq(d2->placement, STK_PLACED_HOST_TOE_FULL);
        cr_assert_eq(wait_connected(d2->conn), 0);
        for (int i = 0; i < 2; i++) {
            struct sockaddr_in peer;
            close(accept_one(lfd, &peer));
        }
        cr_assert_eq(stk_release(b, d2, OWNER, true), 0);
        cr_assert_eq(stk_release(b, d1, OWNER, true), 0);
    }
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

Test(broker_toe, unreachable_through_the_toe_falls_back)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    lfd = listener("127.0.0.1", &dst);   /* loopback never crosses the TOE's wire */
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, 0, &d, err), 0, "%s", err);
    cr_assert_eq(d->stack, STK_STACK_HOST);
    cr_assert_eq(d->placement, STK_PLACED_HOST_UNREACHABLE);
    cr_assert_eq(wait_connected(d->conn), 0);
    stk_release(b, d, OWNER, true);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), -ENETUNREACH);
    cr_assert_eq(ports_held(b), 0);
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

Test(broker_toe, reservation_for_the_toe)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_reservation r, g;
    struct stk_desc *d;
    struct sockaddr_in dst, peer;
    char err[256];
    int lfd, afd;

    lfd = listener("192.0.2.1", &dst);
    cr_assert_eq(stk_reserve(b, OWNER, LO + 50, STK_POLICY_TOE, &r), 0);
    for (int round = 0; round < 100; round++) {
        /* each round follows the previous release at once, as a session's reconnect does */
        cr_assert_eq(request(b, OWNER, dst, STK_POLICY_AUTO, r.id, &d, err), 0,
                     "round %d: the reservation's port is not usable right after "
                     "stk_release (abort): %s", round, err);
        cr_assert_eq(d->stack, STK_STACK_TOE);
        cr_assert_eq(d->port, LO + 50);
        cr_assert_eq(wait_connected(d->conn), 0);
        afd = accept_one(lfd, &peer);
        cr_assert_eq(ntohs(peer.sin_port), LO + 50);
        close(afd);
        cr_assert_eq(stk_get_reservation(b, r.id, &g), 0);
        cr_assert(g.in_use);
        cr_assert_eq(stk_release(b, d, OWNER, true), 0);
        cr_assert(port_taken_for_host(LO + 50), "the reservation's port must stay held");
    }
    cr_assert_eq(stk_unreserve(b, r.id), 0);
    cr_assert_not(port_taken_for_host(LO + 50));
    close(lfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

/*
 * A requester may give a connection back at any moment, also while it is still connecting
 * (an iSCSI login that times out, a session torn down at once): with a reset, over and over,
 * then the adapter goes away. Nothing may be freed twice or touched after it is freed.
 */
Test(broker_toe, release_while_connecting_is_safe)
{
    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 999, toe);
    struct stk_desc *d;
    struct sockaddr_in dst;
    char err[256];
    int lfd;

    lfd = listener("192.0.2.1", &dst);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(request(b, OWNER, dst, STK_POLICY_TOE, 0, &d, err), 0, "cycle %d: %s", i,
                     err);
        if (i % 2)
            cr_assert_eq(wait_connected(d->conn), 0);
        cr_assert_eq(stk_release(b, d, OWNER, true), 0);
        if (i % 50 == 0) {
            /* drain the listener's backlog */
            struct pollfd p = { .fd = lfd, .events = POLLIN };
            while (poll(&p, 1, 0) == 1) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                close(fd);
            }
        }
    }
    stk_broker_free(b);
    toe_dev_free(toe);
    close(lfd);
}

/* ---------------------------------------------------------------- the unified table */

static const struct stk_conn_row *find_row(const struct stk_conn_row *rows, size_t n,
                                           enum stk_stack stack, uint16_t lport,
                                           uint16_t rport)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].stack == stack && ntohs(rows[i].local.sin_port) == lport &&
            ntohs(rows[i].remote.sin_port) == rport)
            return &rows[i];
    return NULL;
}

static void dump_rows(const struct stk_conn_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char l[32], r[32];
        cr_log_info("%s %s %s -> %s %s owner=%s placement=%s", rows[i].id,
                    stk_stack_name(rows[i].stack), stk_addr_str(&rows[i].local, l, sizeof(l)),
                    stk_addr_str(&rows[i].remote, r, sizeof(r)), rows[i].state, rows[i].owner,
                    rows[i].placement);
    }
}

/*
 * One listing holds the TOE's connection (which no host tool can see) and a kernel socket
 * of another process, each with its owner, plus a broker host-stack connection.
 */
Test(broker_table, toe_and_another_process_in_one_table)
{
    struct sockaddr_in kdst, tdst, peer;
    int kfd, pipe_up[2], pipe_hold[2];
    pid_t child;
    uint16_t child_port;

    NEED_NETNS();
    kfd = listener("127.0.0.1", &kdst);
    cr_assert_eq(pipe(pipe_up), 0);
    cr_assert_eq(pipe(pipe_hold), 0);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        /* another process with an ordinary kernel TCP connection */
        char c = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        close(pipe_hold[1]); /* so that the test's end, even a failed one, ends this read */
        if (fd < 0 || connect(fd, (struct sockaddr *)&kdst, sizeof(kdst)) < 0)
            _exit(1);
        if (write(pipe_up[1], "x", 1) != 1)
            _exit(1);
        if (read(pipe_hold[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(pipe_up[1]);
    close(pipe_hold[0]);
    char c;
    cr_assert_eq(read(pipe_up[0], &c, 1), 1, "the other process could not connect");
    int kafd = accept_one(kfd, &peer);
    child_port = ntohs(peer.sin_port);

    struct toe_dev *toe = toe_up(1024);
    struct stk_broker *b = broker_new(LO, LO + 99, toe);
    struct stk_desc *dt, *dh;
    char err[256];
    int tfd = listener("192.0.2.1", &tdst);
    cr_assert_eq(request(b, OWNER, tdst, STK_POLICY_AUTO, 0, &dt, err), 0, "%s", err);
    cr_assert_eq(dt->stack, STK_STACK_TOE);
    cr_assert_eq(wait_connected(dt->conn), 0);
    cr_assert_eq(request(b, "nbd-test", kdst, STK_POLICY_HOST, 0, &dh, err), 0, "%s", err);
    cr_assert_eq(wait_connected(dh->conn), 0);
    int tafd = accept_one(tfd, &peer);
    int hafd = accept_one(kfd, &peer);

    struct stk_conn_row *rows;
    size_t n;
    cr_assert_eq(stk_list_connections(b, &rows, &n), 0);
    dump_rows(rows, n);

    const struct stk_conn_row *t = find_row(rows, n, STK_STACK_TOE, dt->port,
                                            ntohs(tdst.sin_port));
    cr_assert_not_null(t, "no TOE row for %u -> %u", dt->port, ntohs(tdst.sin_port));
    cr_assert_str_eq(inet_ntoa(t->local.sin_addr), "192.0.2.2");
    cr_assert_str_eq(inet_ntoa(t->remote.sin_addr), "192.0.2.1");
    cr_assert_str_eq(t->state, "ESTABLISHED");
    cr_assert_str_eq(t->owner, OWNER);
    cr_assert_str_eq(t->placement, "offloaded");

    const struct stk_conn_row *k = find_row(rows, n, STK_STACK_HOST, child_port,
                                            ntohs(kdst.sin_port));
    cr_assert_not_null(k, "no row for the other process's socket (port %u)", child_port);
    char want[32];
    snprintf(want, sizeof(want), "%d/", (int)child);
    cr_assert(strncmp(k->owner, want, strlen(want)) == 0,
              "the other process's socket: owner \"%s\", wanted \"%s...\"", k->owner, want);
    cr_assert_str_eq(k->state, "ESTABLISHED");
    cr_assert_str_eq(k->placement, "", "not a broker connection");

    const struct stk_conn_row *h = find_row(rows, n, STK_STACK_HOST, dh->port,
                                            ntohs(kdst.sin_port));
    cr_assert_not_null(h, "no row for the broker's host connection (port %u)", dh->port);
    cr_assert_str_eq(h->owner, "nbd-test");
    cr_assert_str_eq(h->placement, "host requested");

    /* the kernel's own listing cannot see the TOE's connection: only ours has it */
    for (size_t i = 0; i < n; i++)
        if (rows[i].stack == STK_STACK_HOST)
            cr_assert_neq(rows[i].local.sin_addr.s_addr, inet_addr("192.0.2.2"),
                          "a host row with the TOE's address");
    free(rows);

    /*
     * The counters' listing (the API's history): the same rows and the broker's own
     * annotations, but no process named for other sockets; a full listing asked for right
     * after it (inside the table's cache time) still names them. First the full listing
     * above leaves the cache (50 ms), or the counters' listing would be served from it.
     */
    usleep(80 * 1000);
    cr_assert_eq(stk_list_connection_counters(b, &rows, &n), 0);
    t = find_row(rows, n, STK_STACK_TOE, dt->port, ntohs(tdst.sin_port));
    cr_assert_not_null(t);
    cr_assert_str_eq(t->owner, OWNER);
    k = find_row(rows, n, STK_STACK_HOST, child_port, ntohs(kdst.sin_port));
    cr_assert_not_null(k);
    cr_assert_str_eq(k->owner, "", "the counters' listing named a process: \"%s\"", k->owner);
    h = find_row(rows, n, STK_STACK_HOST, dh->port, ntohs(kdst.sin_port));
    cr_assert_not_null(h);
    cr_assert_str_eq(h->owner, "nbd-test");
    cr_assert_str_eq(h->placement, "host requested");
    free(rows);
    cr_assert_eq(stk_list_connections(b, &rows, &n), 0);
    k = find_row(rows, n, STK_STACK_HOST, child_port, ntohs(kdst.sin_port));
    cr_assert_not_null(k);
    cr_assert(strncmp(k->owner, want, strlen(want)) == 0,
              "a full listing after the counters': owner \"%s\", wanted \"%s...\"", k->owner,
              want);
    free(rows);

    stk_release(b, dt, OWNER, true);
    stk_release(b, dh, "nbd-test", true);
    close(tafd);
    close(hafd);
    close(tfd);
    cr_assert_eq(write(pipe_hold[1], "x", 1), 1);
    waitpid(child, NULL, 0);
    close(kafd);
    close(kfd);
    stk_broker_free(b);
    toe_dev_free(toe);
}

/*
 * Byte counts mean the same on both stacks: application bytes delivered (in) and
 * acknowledged (out), as the TOE counts them; TCP's SYN and FIN are not data.
 */
Test(broker_table, host_rows_count_data_bytes_only)
{
    struct stk_broker *b;
    struct stk_desc *d;
    struct sockaddr_in dst, peer;
    struct stk_conn_row *rows;
    const struct stk_conn_row *h;
    char err[256], buf[8];
    size_t n;
    int lfd, afd;

    NEED_NETNS();
    lfd = listener("127.0.0.1", &dst);
    b = broker_new(LO, LO + 9, NULL);
    cr_assert_eq(request(b, OWNER, dst, STK_POLICY_HOST, 0, &d, err), 0, "%s", err);
    cr_assert_eq(wait_connected(d->conn), 0);
    afd = accept_one(lfd, &peer);
    conn_write_all(d->conn, "hello", 5);
    sock_read_all(afd, buf, 5);
    cr_assert_eq(write(afd, "abc", 3), 3);
    conn_read_all(d->conn, buf, 3);
    usleep(20000);  /* the last ACKs */
    cr_assert_eq(stk_list_connections(b, &rows, &n), 0);
    h = find_row(rows, n, STK_STACK_HOST, d->port, ntohs(dst.sin_port));
    cr_assert_not_null(h);
    cr_expect_eq(h->bytes_out, 5, "bytes_out %llu for 5 bytes sent",
                 (unsigned long long)h->bytes_out);
    cr_expect_eq(h->bytes_in, 3, "bytes_in %llu for 3 bytes received",
                 (unsigned long long)h->bytes_in);
    free(rows);
    stk_release(b, d, OWNER, true);
    close(afd);
    stk_broker_free(b);
    close(lfd);
}
