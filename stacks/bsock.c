/*
 * bsock.c - the broker socket's listener, its clients and their requests (bsock.h). The
 * connections they get are bsock_conn.c's.
 *
 * One thread, one epoll: the listener, a wake eventfd (stop), a 50 ms timer (deadlines and
 * the host sockets' watch), every control connection, and the fds of every connection.
 * Control connections are SOCK_SEQPACKET: one request per datagram, at most BP_MSG_MAX
 * bytes, read without blocking; a reply that cannot be sent at once drops its client
 * (a client that does not read its answers never holds the broker up).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "common/log.h"
#include "stacks/bsock_int.h"

#define TICK_MS 50

uint64_t bs_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bs_count(struct stk_bsock *bs, uint64_t *field, int64_t delta)
{
    pthread_mutex_lock(&bs->lock);
    *field += (uint64_t)delta;
    pthread_mutex_unlock(&bs->lock);
}

void stk_bsock_stats(struct stk_bsock *bs, struct stk_bsock_stats *out)
{
    pthread_mutex_lock(&bs->lock);
    *out = bs->stats;
    pthread_mutex_unlock(&bs->lock);
}

/* ---------------------------------------------------------------- clients */

static void client_drop(struct stk_bsock *bs, struct bs_client *cl, const char *why)
{
    if (cl->dead)
        return;
    if (!strcmp(why, "closed") || !strcmp(why, "the broker socket stops"))
        log_debug("bsock", "client %s gone: %s", cl->owner, why);
    else
        log_warn("bsock", "client %s dropped: %s", cl->owner, why);
    epoll_ctl(bs->ep, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    cl->fd = -1;
    cl->dead = true;
    bs->nclients--;
    bs_conn_forget_client(bs, cl);
}

int bs_reply(struct stk_bsock *bs, struct bs_client *cl, struct bp_msg *m, int fd)
{
    uint8_t buf[BP_MSG_MAX];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = { .iov_base = buf };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    int n;

    if (!cl || cl->dead)
        return -EPIPE;
    n = bp_encode(m, buf, sizeof(buf));
    if (n < 0)
        return n;
    iov.iov_len = (size_t)n;
    if (fd >= 0) {
        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.b;
        mh.msg_controllen = sizeof(cbuf.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
        return 0;
    n = errno ? -errno : -EIO;
    client_drop(bs, cl, errno == EAGAIN ? "it does not read its replies" : strerror(errno));
    return n;
}

void bs_reply_error(struct stk_bsock *bs, struct bs_client *cl, uint16_t seq, int code,
                    const char *fmt, ...)
{
    struct bp_msg m = { .type = BP_ERROR, .seq = seq, .code = (uint32_t)code };
    char text[BP_STR_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    bp_set(&m, BP_T_CODE);
    bp_set_str(&m, BP_T_MESSAGE, text[0] ? text : "error");
    bs_reply(bs, cl, &m, -1);
}

/* "pid/comm" of a peer (comm from /proc; "?" when it is gone already). */
static void peer_owner(pid_t pid, char *out, size_t len)
{
    char path[64], comm[32] = "?";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    f = fopen(path, "re");
    if (f) {
        if (fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    snprintf(out, len, "%d/%s", (int)pid, comm[0] ? comm : "?");
}

static void client_accept(struct stk_bsock *bs)
{
    for (int i = 0; i < 16; i++) {
        struct ucred cr;
        socklen_t crlen = sizeof(cr);
        int fd = accept4(bs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct bs_client *cl;

        if (fd < 0)
            return;
        if (bs->nclients >= STK_BSOCK_MAX_CLIENTS ||
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
            !(cl = calloc(1, sizeof(*cl)))) {
            log_warn("bsock", "client refused: %s", bs->nclients >= STK_BSOCK_MAX_CLIENTS
                     ? "too many clients" : "out of memory or no peer credentials");
            close(fd);
            continue;
        }
        cl->ref = (struct bs_ref){ BS_CLIENT, cl };
        cl->fd = fd;
        cl->pid = cr.pid;
        cl->uid = cr.uid;
        cl->last_ns = bs_now_ns();
        peer_owner(cr.pid, cl->owner, sizeof(cl->owner));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cl->ref };
        if (epoll_ctl(bs->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(cl);
            continue;
        }
        cl->next = bs->clients;
        bs->clients = cl;
        bs->nclients++;
        bs_count(bs, &bs->stats.clients, 1);
    }
}

/* ---------------------------------------------------------------- requests */

static void req_connect(struct stk_bsock *bs, struct bs_client *cl, const struct bp_msg *m)
{
    struct stk_request req = {
        .owner = cl->owner, .policy = (enum stk_policy)m->stack,
        .reservation = m->reservation, .holder = BP_HAS(m, BP_T_HOLDER) ? m->holder : NULL,
        .has_uid = true, .uid = cl->uid,
        .dst = { .sin_family = AF_INET, .sin_addr = m->addr, .sin_port = htons(m->port) },
    };
    struct stk_desc *d;
    char err[256] = "";
    int ret;

    if (cl->inflight >= STK_BSOCK_MAX_INFLIGHT) {
        bs_reply_error(bs, cl, m->seq, EAGAIN, "%u connects in progress already: wait for "
                       "their answers", cl->inflight);
        return;
    }
    ret = stk_request(bs->b, &req, &d, err, sizeof(err));
    if (ret == -EBUSY) {
        /* the reservation's last connection may be one its program just closed */
        bs_conn_reap(bs);
        ret = stk_request(bs->b, &req, &d, err, sizeof(err));
    }
    if (ret == 0)
        ret = bs_conn_start(bs, cl, m->seq, d);
    if (ret < 0) {
        bs_count(bs, &bs->stats.refused, 1);
        bs_reply_error(bs, cl, m->seq, -ret, "%s", err[0] ? err : strerror(-ret));
    }
}

static void req_release(struct stk_bsock *bs, struct bs_client *cl, const struct bp_msg *m)
{
    int ret = bs_conn_release_req(bs, m->conn_id, cl->uid, m->abort == 1);
    struct bp_msg r = { .type = BP_RELEASED, .seq = m->seq, .conn_id = m->conn_id };

    if (ret == -ENOENT)
        bs_reply_error(bs, cl, m->seq, ENOENT, "no connection %llu of this uid",
                       (unsigned long long)m->conn_id);
    else if (ret == -EBUSY)
        bs_reply_error(bs, cl, m->seq, EBUSY, "connection %llu is a host socket the program "
                       "still has open: close the descriptor (the broker then releases it)",
                       (unsigned long long)m->conn_id);
    else {
        bp_set(&r, BP_T_CONN_ID);
        bs_reply(bs, cl, &r, -1);
    }
}

/* Close every descriptor a client sent us: requests carry none. */
static void close_passed_fds(struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
}

/* One datagram from a client. */
static void client_message(struct stk_bsock *bs, struct bs_client *cl, const uint8_t *buf,
                           size_t len)
{
    struct bp_msg m;
    const char *why = "";
    int ret = bp_decode(buf, len, &m, &why);

    bs_count(bs, &bs->stats.requests, 1);
    cl->last_ns = bs_now_ns();
    if (ret == 0)
        ret = bp_check_request(&m, &why);
    if (ret < 0) {
        bs_count(bs, &bs->stats.bad_requests, 1);
        bs_reply_error(bs, cl, m.seq, -ret, "bad request: %s", why);
        return;
    }
    if (m.type == BP_CONNECT)
        req_connect(bs, cl, &m);
    else
        req_release(bs, cl, &m);
}

static void client_readable(struct stk_bsock *bs, struct bs_client *cl)
{
    for (int i = 0; i < 16 && !cl->dead; i++) {
        uint8_t buf[BP_MSG_MAX];
        char cbuf[CMSG_SPACE(16 * sizeof(int))];
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            client_drop(bs, cl, n == 0 ? "closed" : strerror(errno));
            return;
        }
        close_passed_fds(&mh);
        if (mh.msg_flags & MSG_TRUNC) {
            bs_count(bs, &bs->stats.bad_requests, 1);
            bs_reply_error(bs, cl, 0, EMSGSIZE, "bad request: a message is at most %u bytes",
                           BP_MSG_MAX);
            continue;
        }
        client_message(bs, cl, buf, (size_t)n);
    }
}

/* Timer: idle clients go; connections meet their deadlines. */
static void tick(struct stk_bsock *bs)
{
    uint64_t exp, now = bs_now_ns();

    if (read(bs->timer, &exp, sizeof(exp)) < 0)
        exp = 0;
    for (struct bs_client *cl = bs->clients; cl; cl = cl->next)
        if (!cl->dead && !cl->inflight &&
            now - cl->last_ns > STK_BSOCK_IDLE_MS * 1000000ull)
            client_drop(bs, cl, "idle");
    bs_conn_tick(bs);
}

/* Free the clients dropped during the last epoll batch. */
static void clients_sweep(struct stk_bsock *bs, bool all)
{
    struct bs_client **pp = &bs->clients;

    while (*pp) {
        struct bs_client *cl = *pp;
        if (all && !cl->dead)
            client_drop(bs, cl, "the broker socket stops");
        if (cl->dead) {
            *pp = cl->next;
            free(cl);
        } else {
            pp = &cl->next;
        }
    }
}

static void dispatch(struct stk_bsock *bs, struct bs_ref *ref, uint32_t ev)
{
    switch (ref->kind) {
    case BS_LISTEN: client_accept(bs); break;
    case BS_TIMER: tick(bs); break;
    case BS_WAKE: break;
    case BS_CLIENT: {
        struct bs_client *cl = ref->obj;
        if (!cl->dead)
            client_readable(bs, cl);
        break;
    }
    case BS_CONN_NET:
    case BS_CONN_APP: bs_conn_event(bs, ref->obj, ref->kind == BS_CONN_APP, ev); break;
    }
}

static void *bsock_main(void *arg)
{
    struct stk_bsock *bs = arg;

    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(bs->ep, evs, 64, -1);
        bool stop;

        pthread_mutex_lock(&bs->lock);
        stop = bs->stop;
        pthread_mutex_unlock(&bs->lock);
        if (stop)
            break;
        for (int i = 0; i < n; i++)
            dispatch(bs, evs[i].data.ptr, evs[i].events);
        bs_conn_sweep(bs, false);
        clients_sweep(bs, false);
    }
    return NULL;
}

/* ---------------------------------------------------------------- start, stop */

/* Bind the socket file; a stale one (nothing listening) is replaced, a live one is not. */
static int listen_path(struct stk_bsock *bs, mode_t mode, char *err, size_t errlen)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd;

    snprintf(a.sun_path, sizeof(a.sun_path), "%s", bs->path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        close(fd);
        snprintf(err, errlen, "another broker listens on %s already", bs->path);
        return -EADDRINUSE;
    }
    if (fd >= 0)
        close(fd);
    unlink(bs->path);
    bs->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bs->lfd < 0 || bind(bs->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        chmod(bs->path, mode) < 0 || listen(bs->lfd, 64) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s: %s", bs->path, strerror(e));
        return -e;
    }
    return 0;
}

static int add_fd(struct stk_bsock *bs, int fd, struct bs_ref *ref, enum bs_kind kind)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ref };

    ref->kind = kind;
    ref->obj = bs;
    return fd < 0 ? -1 : epoll_ctl(bs->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void bsock_free(struct stk_bsock *bs)
{
    if (bs->lfd >= 0) {
        close(bs->lfd);
        unlink(bs->path);
    }
    clients_sweep(bs, true);
    bs_conn_sweep(bs, true);
    int fds[] = { bs->wake, bs->timer, bs->ep, bs->diag };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_mutex_destroy(&bs->lock);
    free(bs);
}

struct stk_bsock *stk_bsock_start(const struct stk_bsock_config *cfg, char *err,
                                  size_t errlen)
{
    struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
                              .it_value = { 0, TICK_MS * 1000000L } };
    struct stk_bsock *bs;

    if (!cfg->path || !cfg->path[0] || strlen(cfg->path) >= sizeof(bs->path)) {
        snprintf(err, errlen, "the broker socket path must be 1 to %zu bytes",
                 sizeof(bs->path) - 1);
        return NULL;
    }
    bs = calloc(1, sizeof(*bs));
    if (!bs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&bs->lock, NULL);
    bs->b = cfg->broker;
    bs->lfd = -1;
    snprintf(bs->path, sizeof(bs->path), "%s", cfg->path);
    bs->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    bs->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    bs->ep = epoll_create1(EPOLL_CLOEXEC);
    bs->diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (bs->wake < 0 || bs->timer < 0 || bs->ep < 0 || bs->diag < 0 ||
        timerfd_settime(bs->timer, 0, &its, NULL) < 0) {
        snprintf(err, errlen, "cannot set up the broker socket: %s", strerror(errno));
        bsock_free(bs);
        return NULL;
    }
    if (listen_path(bs, cfg->mode, err, errlen) < 0) {
        bsock_free(bs);
        return NULL;
    }
    if (add_fd(bs, bs->lfd, &bs->lref, BS_LISTEN) < 0 ||
        add_fd(bs, bs->wake, &bs->wref, BS_WAKE) < 0 ||
        add_fd(bs, bs->timer, &bs->tref, BS_TIMER) < 0 ||
        pthread_create(&bs->thread, NULL, bsock_main, bs) != 0) {
        snprintf(err, errlen, "cannot start the broker socket's thread");
        bsock_free(bs);
        return NULL;
    }
    log_info("bsock", "broker socket on %s (mode %03o)", bs->path, (unsigned)cfg->mode);
    return bs;
}

void stk_bsock_stop(struct stk_bsock *bs)
{
    uint64_t one = 1;

    if (!bs)
        return;
    pthread_mutex_lock(&bs->lock);
    bs->stop = true;
    pthread_mutex_unlock(&bs->lock);
    if (write(bs->wake, &one, sizeof(one)) < 0)
        log_warn("bsock", "cannot wake the broker socket's thread: %s", strerror(errno));
    pthread_join(bs->thread, NULL);
    bsock_free(bs);
}
