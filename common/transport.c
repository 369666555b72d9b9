/*
 * transport.c - the host-stack transport (a non-blocking kernel TCP socket behind stk_conn)
 * and the address and name helpers of common/transport.h.
 */
#include "common/transport.h"

#include "common/sockspec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t host_read(struct stk_conn *c, void *buf, size_t len)
{
    ssize_t n;

    do {
        n = recv(c->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    c->bytes_in += (uint64_t)n;
    return n;
}

static ssize_t host_writev(struct stk_conn *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t n;

    do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    c->bytes_out += (uint64_t)n;
    return n;
}

static int host_connect_result(struct stk_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    socklen_t alen = sizeof(c->local);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    if (err == EINPROGRESS || err == EALREADY)
        return -EINPROGRESS;
    if (err)
        return -err;
    /* SO_ERROR is 0 both when connected and while still pending; ask the peer. */
    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) < 0)
        return errno == ENOTCONN ? -EINPROGRESS : -errno;
    getsockname(c->fd, (struct sockaddr *)&c->local, &alen);
    return 0;
}

static uint32_t host_events(struct stk_conn *c, bool want_read, bool want_write)
{
    (void)c;
    return (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0) | EPOLLRDHUP;
}

static bool host_pending(struct stk_conn *c)
{
    (void)c;
    return false; /* the kernel's buffer wakes epoll by itself */
}

static int host_shutdown(struct stk_conn *c)
{
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void host_close(struct stk_conn *c, bool abort)
{
    int one = 1;

    /*
     * The socket lingers in FIN_WAIT or TIME_WAIT on its port after close; marking it
     * SO_REUSEADDR now lets the broker hold that port again at once (its placeholders
     * fall back to SO_REUSEADDR), while a live connection kept the stricter guard.
     */
    setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (abort) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    free(c);
}

void stk_host_conn_forget(struct stk_conn *c)
{
    close(c->fd);
    free(c);
}

static const struct stk_conn_ops host_ops = {
    .level_triggered = true,
    .read = host_read,
    .writev = host_writev,
    .connect_result = host_connect_result,
    .events = host_events,
    .pending = host_pending,
    .shutdown = host_shutdown,
    .close = host_close,
};

int stk_host_connect_fd(int fd, const struct sockaddr_in *dst, struct stk_conn **out)
{
    struct stk_conn *c;
    int one = 1, flags, ret;

    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        ret = -errno;
        goto err_close;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS) {
        ret = -errno;
        goto err_close;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        ret = -ENOMEM;
        goto err_close;
    }
    c->ops = &host_ops;
    c->fd = fd;
    c->stack = STK_STACK_HOST;
    c->remote = *dst;
    *out = c;
    return 0;

err_close:
    close(fd);
    return ret;
}

int stk_host_connect(const struct sockaddr_in *dst, uint16_t local_port, struct stk_conn **out)
{
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (local_port) {
        struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(local_port) };
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&la, sizeof(la)) < 0) {
            int ret = -errno;
            close(fd);
            return ret;
        }
    }
    return stk_host_connect_fd(fd, dst, out);
}

/* A portal is a TCP address spec (common/sockspec.c) naming one address. */
int stk_parse_hostport(const char *s, uint16_t def_port, struct sockaddr_in *out)
{
    struct sockspec sp;
    int ret;

    if (!s || sockspec_is_unix(s))
        return -EINVAL;
    ret = sockspec_parse(s, def_port, &sp);
    if (ret < 0)
        return ret;
    if (!strcmp(sp.host, "*"))
        return -EINVAL;
    return sockspec_resolve(&sp, out, NULL);
}

int stk_parse_cidr(const char *s, struct in_addr *addr, uint8_t *prefix)
{
    char buf[32];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    unsigned long len = 32;

    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) != 1)
        return -EINVAL;
    if (slash) {
        char *end;

        if (slash[1] < '0' || slash[1] > '9')
            return -EINVAL;
        len = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || len > 32)
            return -EINVAL;
    }
    *prefix = (uint8_t)len;
    return 0;
}

const char *stk_addr_str(const struct sockaddr_in *a, char *buf, size_t len)
{
    char ip[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    snprintf(buf, len, "%s:%u", ip, ntohs(a->sin_port));
    return buf;
}

const char *stk_stack_name(enum stk_stack s)
{
    return s == STK_STACK_TOE ? "toe" : "host";
}

int stk_parse_policy(const char *s, enum stk_policy *out)
{
    if (strcmp(s, "auto") == 0)
        *out = STK_POLICY_AUTO;
    else if (strcmp(s, "toe") == 0)
        *out = STK_POLICY_TOE;
    else if (strcmp(s, "host") == 0)
        *out = STK_POLICY_HOST;
    else
        return -EINVAL;
    return 0;
}

const char *stk_policy_name(enum stk_policy p)
{
    switch (p) {
    case STK_POLICY_TOE:
        return "toe";
    case STK_POLICY_HOST:
        return "host";
    default:
        return "auto";
    }
}
