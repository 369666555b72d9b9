/*
 * libtoegw.c - the broker socket's client side (toegw.h). Each call is one control
 * connection: connect, one request, one reply (with the descriptor as SCM_RIGHTS), close.
 */
#include "client/toegw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/bproto.h"

#define DEFAULT_TIMEOUT_MS 15000

static int fail(char *err, size_t errlen, int code, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
    return -code;
}

const char *toegw_broker_path(const char *path)
{
    const char *env = getenv("TOEGW_BROKER");

    if (path && *path)
        return path;
    return env && *env ? env : TOEGW_BROKER_DEFAULT;
}

/* A control connection to the broker, or -errno with err. */
static int open_control(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd;

    path = toegw_broker_path(path);
    if (strlen(path) >= sizeof(a.sun_path))
        return fail(err, errlen, ENAMETOOLONG, "broker socket path too long: %s", path);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, errno, "cannot create a socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "no broker at %s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Send m, wait for the reply with the same seq (up to timeout_ms), decode it into *r; a
 * descriptor that came with it into *fd (-1 if none). 0 or -errno with err.
 */
static int exchange(int cfd, const struct bp_msg *m, int timeout_ms, struct bp_msg *r,
                    int *fd, char *err, size_t errlen)
{
    uint8_t buf[BP_MSG_MAX];
    int n = bp_encode(m, buf, sizeof(buf));
    long end = now_ms() + timeout_ms;

    *fd = -1;
    if (n < 0)
        return fail(err, errlen, EMSGSIZE, "%s", "request too large");
    if (send(cfd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        return fail(err, errlen, errno, "cannot send to the broker: %s", strerror(errno));
    for (;;) {
        struct pollfd p = { .fd = cfd, .events = POLLIN };
        long left = end - now_ms();
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(4 * sizeof(int))];
        } cbuf;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                             .msg_controllen = sizeof(cbuf.b) };
        const char *why = "";
        ssize_t got;

        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            return fail(err, errlen, ETIMEDOUT, "%s", "the broker did not answer in time");
        got = recvmsg(cfd, &mh, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return fail(err, errlen, got == 0 ? ECONNRESET : errno, "%s",
                        "the broker closed the control connection");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    if (*fd < 0)
                        *fd = f;
                    else
                        close(f);
                }
            }
        if (bp_decode(buf, (size_t)got, r, &why) < 0) {
            if (*fd >= 0)
                close(*fd);
            *fd = -1;
            return fail(err, errlen, EPROTO, "bad reply from the broker: %s", why);
        }
        if (r->seq == m->seq)
            return 0;
        if (*fd >= 0) { /* an answer to something else: not ours */
            close(*fd);
            *fd = -1;
        }
    }
}

/* The reply is an ERROR: its code and message. */
static int reply_error(const struct bp_msg *r, char *err, size_t errlen)
{
    int code = r->code > 0 && r->code < 4096 ? (int)r->code : EPROTO;

    if (err && errlen)
        snprintf(err, errlen, "the broker refused: %s", r->message[0] ? r->message : "?");
    return -code;
}

static int build_connect(const struct toegw_conn_req *req, struct bp_msg *m, char *err,
                         size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->type = BP_CONNECT;
    m->seq = (uint16_t)(getpid() ^ now_ms());
    if (req->host) {
        if (inet_pton(AF_INET, req->host, &m->addr) != 1)
            return fail(err, errlen, EINVAL, "not an IPv4 address: %s", req->host);
        m->port = req->port;
    } else {
        m->addr = req->dst.sin_addr;
        m->port = ntohs(req->dst.sin_port);
    }
    bp_set(m, BP_T_ADDR);
    bp_set(m, BP_T_PORT);
    if (req->stack && strcmp(req->stack, "auto")) {
        if (strcmp(req->stack, "toe") && strcmp(req->stack, "host"))
            return fail(err, errlen, EINVAL, "stack must be auto, toe or host, not %s",
                        req->stack);
        m->stack = req->stack[0] == 't' ? 1 : 2;
        bp_set(m, BP_T_STACK);
    }
    if (req->reservation) {
        m->reservation = req->reservation;
        bp_set(m, BP_T_RESERVATION);
        if (req->holder && *req->holder) {
            if (strlen(req->holder) > BP_HOLDER_MAX)
                return fail(err, errlen, EINVAL, "holder name too long: %s", req->holder);
            bp_set_str(m, BP_T_HOLDER, req->holder);
        }
    }
    return 0;
}

static void fill_info(const struct bp_msg *r, struct toegw_conn_info *info)
{
    memset(info, 0, sizeof(*info));
    info->id = r->conn_id;
    info->local.sin_family = AF_INET;
    info->local.sin_addr = r->local_addr;
    info->local.sin_port = htons(r->local_port);
    info->remote.sin_family = AF_INET;
    info->remote.sin_addr = r->addr;
    info->remote.sin_port = htons(r->port);
    snprintf(info->stack, sizeof(info->stack), "%s", r->on_stack == 1 ? "toe" : "host");
    snprintf(info->placement, sizeof(info->placement), "%.63s", r->placement);
    info->reservation = r->reservation;
}

int toegw_connect(const char *path, const struct toegw_conn_req *req,
                  struct toegw_conn_info *info, char *err, size_t errlen)
{
    struct bp_msg m, r;
    int cfd, fd, ret;

    ret = build_connect(req, &m, err, errlen);
    if (ret < 0)
        return ret;
    cfd = open_control(path, err, errlen);
    if (cfd < 0)
        return cfd;
    ret = exchange(cfd, &m, req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS, &r,
                   &fd, err, errlen);
    close(cfd);
    if (ret < 0)
        return ret;
    if (r.type == BP_ERROR) {
        if (fd >= 0)
            close(fd);
        return reply_error(&r, err, errlen);
    }
    if (r.type != BP_CONNECTED || fd < 0 || !BP_HAS(&r, BP_T_CONN_ID)) {
        if (fd >= 0)
            close(fd);
        return fail(err, errlen, EPROTO, "%s", "the broker's answer carries no connection");
    }
    if (req->nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    else
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (info)
        fill_info(&r, info);
    return fd;
}

int toegw_release(const char *path, int fd, uint64_t id, bool abort, char *err,
                  size_t errlen)
{
    struct bp_msg m = { .type = BP_RELEASE, .conn_id = id, .abort = abort ? 1 : 0 };
    struct bp_msg r;
    int cfd, rfd, ret;

    if (fd >= 0)
        close(fd);
    m.seq = (uint16_t)(getpid() ^ now_ms());
    bp_set(&m, BP_T_CONN_ID);
    bp_set(&m, BP_T_ABORT);
    cfd = open_control(path, err, errlen);
    if (cfd < 0)
        return cfd;
    ret = exchange(cfd, &m, DEFAULT_TIMEOUT_MS, &r, &rfd, err, errlen);
    close(cfd);
    if (rfd >= 0)
        close(rfd);
    if (ret < 0)
        return ret;
    if (r.type == BP_ERROR) {
        /* the broker saw the descriptor closed first and released it already */
        if (r.code == ENOENT && fd >= 0)
            return 0;
        return reply_error(&r, err, errlen);
    }
    return r.type == BP_RELEASED ? 0 : fail(err, errlen, EPROTO, "%s", "unexpected reply");
}

int toegw_describe(int fd, struct toegw_conn_info *info)
{
    struct sockaddr_un sa;
    socklen_t sl = sizeof(sa);
    struct toegw_conn_info ci = { .stack = "toe" };

    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        return -errno;
    if (bp_conn_name_parse(&sa, sl, &ci.id, &ci.local, &ci.remote) < 0)
        return -ENOENT;
    if (info)
        *info = ci;
    return 0;
}
