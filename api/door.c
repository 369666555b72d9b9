/*
 * door.c - the REST API's front door: accepting connections, and what a connection may
 * cost before it has sent a whole request header.
 *
 * libmicrohttpd gives every connection a thread (server.c says why) and counts idle time
 * from the last byte received, so connections that trickle a header line every few
 * seconds used to hold every thread and keep the API, /livez included, unreachable. Here
 * one thread (nice 19, epoll) accepts, and a connection waits without a thread of its own
 * until its request header is complete (peeked, not read: MHD reads it all again); only
 * then is it handed to MHD (MHD_add_connection). MHD does not listen itself.
 *
 * Limits (struct api_limits; docs/api.md):
 * - header deadline: a connection's request header must be complete header_timeout_ms
 *   after it was accepted, or after the previous answer on a kept-alive connection (the
 *   watchdog below shuts such an MHD connection down); bytes arriving do not extend it;
 * - per client: at most max_conns_per_client connections of one IPv4 address, waiting
 *   or in MHD; more get 429 at once (unix socket clients are not counted);
 * - max_pending connections waiting for their header: a new one closes the oldest (408);
 * - max_conns connections in MHD: a complete request beyond it makes MHD close its
 *   longest-idle kept-alive connection, or gets 503 when every connection is busy;
 * - at the descriptor limit (EMFILE/ENFILE) the listener is left alone for 100 ms to 1 s
 *   instead of being retried at once; one line is logged per episode.
 * Refusals and timeouts get a problem+json answer and `Connection: close`; the socket
 * then lingers (input drained) for up to 2 s, so that the answer is read, not reset.
 *
 * On an HTTPS port (tls.c) the header is encrypted: a connection is handed over once its
 * first TLS record is in, and the header deadline (the watchdog) covers the handshake too.
 * Refusals there close the connection without an answer (a plain one would be noise to a
 * TLS client), except for a client that sent plain HTTP: it gets a plain 400 saying that
 * the port speaks HTTPS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "common/log.h"

#define DOOR_PEEK_MAX 32768        /* a header not complete by then goes to MHD (431) */
#define DOOR_LINGER_MS 2000
#define DOOR_LINGER_MAX 128
#define DOOR_TRANSIT_MS 5000       /* handed to MHD but never started: MHD dropped it */
#define DOOR_BACKOFF_MIN_MS 100
#define DOOR_BACKOFF_MAX_MS 1000
#define DOOR_MHD_SLACK 16          /* MHD counts a closed connection a moment longer */

/* A connection the door holds: waiting for its header, or lingering after an answer. */
struct pend {
    int fd;
    bool is_unix;
    uint32_t addr;                 /* IPv4, network order */
    struct sockaddr_storage ss;
    socklen_t sl;
    uint64_t since_ms;             /* accepted (waiting), answered (lingering) */
    bool ready;                    /* header complete, waiting for a slot in MHD */
    bool lingering;                /* answered; in the linger list */
    bool gone;                     /* closed; freed after the current epoll batch */
    bool plain;                    /* sent plain HTTP to an HTTPS port */
    struct pend *prev, *next;
};

struct pend_list {
    struct pend *head, *tail;      /* oldest first */
    unsigned n;
};

/* A connection in MHD (guarded by door->lock; MHD's threads and the door touch it). */
enum conn_state {
    CONN_TRANSIT,                  /* handed over, MHD has not started it yet */
    CONN_WAITING,                  /* waiting for a request header: the deadline runs */
    CONN_BUSY,                     /* a request is being served */
};

struct api_conn {
    int fd;                        /* MHD's; valid until the CLOSED notification */
    bool is_unix;
    uint32_t addr;
    enum conn_state st;
    uint64_t since_ms;             /* WAITING: accepted or last answered; TRANSIT: handed */
    bool shut;                     /* shut down by the watchdog already */
    struct api_conn *prev, *next;
};

struct api_door {
    struct api_limits lim;
    int lfd;                       /* borrowed from the server */
    bool tls;                      /* the port speaks HTTPS only */
    struct MHD_Daemon *mhd;
    int epfd, wakefd;
    pthread_t thread;
    bool running;
    atomic_bool stopping;
    /* door thread only */
    struct pend_list wait, linger;
    struct pend *graveyard;        /* closed this batch: events may still name them */
    char peek[DOOR_PEEK_MAX];
    bool paused;
    uint64_t resume_ms;
    unsigned backoff_ms;
    uint64_t fdlimit_since_ms, fdlimit_hits;
    struct log_rate log_client, log_timeout, log_evict, log_busy, log_mhd;
    /* shared */
    pthread_mutex_t lock;
    struct api_conn *conns;
    unsigned nconns;
};

/* epoll tags for the two fds that are not connections */
static char tag_listen, tag_wake;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *addr_str(bool is_unix, uint32_t addr, char *buf, size_t len)
{
    struct in_addr a = { .s_addr = addr };

    if (is_unix)
        snprintf(buf, len, "a unix socket client");
    else if (!inet_ntop(AF_INET, &a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

/* ---------------------------------------------------------------- lists */

static void list_add(struct pend_list *l, struct pend *p)
{
    p->next = NULL;
    p->prev = l->tail;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->n++;
}

static void list_del(struct pend_list *l, struct pend *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    p->prev = p->next = NULL;
    l->n--;
}

/* Out of the lists for good: freed once the events already fetched have been handled. */
static void pend_bury(struct api_door *d, struct pend *p)
{
    p->gone = true;
    p->next = d->graveyard;
    d->graveyard = p;
}

static void pend_close(struct api_door *d, struct pend_list *l, struct pend *p)
{
    list_del(l, p);
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    pend_bury(d, p);
}

/* ---------------------------------------------------------------- answers */

/* Answer a connection the door will not hand over, then let it linger. */
static void refuse(struct api_door *d, struct pend *p, int status, const char *title,
                   const char *slug, const char *detail)
{
    struct api_err e;
    char head[512];
    char *body;
    size_t blen = 0;
    int hlen;

    api_err_set_kind(&e, status, title, slug, "%s", detail);
    body = api_problem_render(&e, &blen);
    hlen = snprintf(head, sizeof(head),
                    "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\nCache-Control: no-store\r\n"
                    "X-Content-Type-Options: nosniff\r\n%s\r\n", status,
                    status == 400 ? "Bad Request" : status == 408 ? "Request Timeout"
                    : status == 429 ? "Too Many Requests" : "Service Unavailable",
                    body ? blen : 0,
                    status == 429 || status == 503 ? "Retry-After: 1\r\n" : "");
    struct iovec iov[2] = { { head, (size_t)hlen }, { body, body ? blen : 0 } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
    if ((!d->tls || p->plain) && sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the peer is gone or its window is shut: the close below is the answer */
    }
    free(body);
    shutdown(p->fd, SHUT_WR);
    if (d->linger.n >= DOOR_LINGER_MAX)
        pend_close(d, &d->linger, d->linger.head);
    p->since_ms = now_ms();
    p->ready = false;
    p->lingering = true;
    list_add(&d->linger, p);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p };
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, p->fd, &ev) < 0 &&
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0)
        pend_close(d, &d->linger, p);
}

/* Read and drop what a lingering connection sends; close it at its end. */
static void linger_drain(struct api_door *d, struct pend *p)
{
    char buf[4096];

    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        pend_close(d, &d->linger, p);
        return;
    }
}

/* ---------------------------------------------------------------- MHD's connections */

/* Connections of this client, waiting here or in MHD. */
static unsigned client_conns(struct api_door *d, uint32_t addr)
{
    unsigned n = 0;

    for (struct pend *p = d->wait.head; p; p = p->next)
        n += !p->is_unix && p->addr == addr;
    pthread_mutex_lock(&d->lock);
    for (struct api_conn *c = d->conns; c; c = c->next)
        n += !c->is_unix && c->addr == addr;
    pthread_mutex_unlock(&d->lock);
    return n;
}

static void conn_unlink(struct api_door *d, struct api_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->nconns--;
}

/*
 * The watchdog: shut down MHD connections whose next request header is overdue (MHD's
 * thread then sees the end of the stream and closes the connection), forget handovers
 * MHD never started. Returns the milliseconds until the next deadline (-1: none).
 */
static int watchdog(struct api_door *d)
{
    uint64_t now = now_ms(), limit = d->lim.header_timeout_ms;
    int64_t next = -1;

    pthread_mutex_lock(&d->lock);
    for (struct api_conn *c = d->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->st == CONN_TRANSIT && now - c->since_ms >= DOOR_TRANSIT_MS) {
            conn_unlink(d, c);
            free(c);
            continue;
        }
        if (c->st != CONN_WAITING || c->shut)
            continue;
        if (now - c->since_ms >= limit) {
            shutdown(c->fd, SHUT_RDWR);
            c->shut = true;
            log_debug("api", "closing a connection: no request header within %llu ms",
                      (unsigned long long)limit);
            continue;
        }
        int64_t left = (int64_t)(c->since_ms + limit - now);
        if (next < 0 || left < next)
            next = left;
    }
    pthread_mutex_unlock(&d->lock);
    return (int)next;
}

/* MHD is full: shut down its longest-idle connection. False when every one is busy. */
static bool evict_idle(struct api_door *d)
{
    struct api_conn *oldest = NULL;

    bool leaving = false;

    pthread_mutex_lock(&d->lock);
    for (struct api_conn *c = d->conns; c; c = c->next) {
        leaving |= c->shut; /* one is on its way out already */
        if (c->st == CONN_WAITING && !c->shut &&
            (!oldest || c->since_ms < oldest->since_ms))
            oldest = c;
    }
    if (oldest && !leaving) {
        shutdown(oldest->fd, SHUT_RDWR);
        oldest->shut = true;
    }
    pthread_mutex_unlock(&d->lock);
    return oldest || leaving;
}

/* Hand a connection with a complete header to MHD. False: no room yet (p kept). */
static bool handover(struct api_door *d, struct pend *p)
{
    struct api_conn *c;
    uint64_t left_out;

    pthread_mutex_lock(&d->lock);
    bool full = d->nconns >= d->lim.max_conns;
    pthread_mutex_unlock(&d->lock);
    if (full) {
        if (evict_idle(d))
            return false; /* retried when MHD reports a connection closed */
        if (log_rate_due(&d->log_busy, &left_out))
            log_warn("api", "refusing a request: all %u connections are busy (%llu more "
                     "since the last such line)", d->lim.max_conns,
                     (unsigned long long)left_out);
        char detail[128];
        snprintf(detail, sizeof(detail), "the api is serving its maximum of %u connections; "
                 "retry shortly", d->lim.max_conns);
        list_del(&d->wait, p);
        refuse(d, p, 503, "service unavailable", "unavailable", detail);
        return true;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return false;
    *c = (struct api_conn){ .fd = p->fd, .is_unix = p->is_unix, .addr = p->addr,
                            .st = CONN_TRANSIT, .since_ms = p->since_ms };
    /* linked before MHD can start it: its STARTED notification looks for it */
    pthread_mutex_lock(&d->lock);
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    pthread_mutex_unlock(&d->lock);
    list_del(&d->wait, p);
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    if (MHD_add_connection(d->mhd, p->fd, (struct sockaddr *)&p->ss, p->sl) != MHD_YES) {
        /* MHD has closed the socket */
        if (log_rate_due(&d->log_mhd, &left_out))
            log_warn("api", "the http server did not take a connection: %s (%llu more "
                     "since the last such line)", strerror(errno),
                     (unsigned long long)left_out);
        pthread_mutex_lock(&d->lock);
        conn_unlink(d, c);
        pthread_mutex_unlock(&d->lock);
        free(c);
    }
    pend_bury(d, p);
    return true;
}

void api_door_conn_started(struct api_door *d, struct MHD_Connection *conn,
                           void **socket_context)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

    *socket_context = NULL;
    if (!ci)
        return;
    pthread_mutex_lock(&d->lock);
    for (struct api_conn *c = d->conns; c; c = c->next) {
        if (c->st == CONN_TRANSIT && c->fd == ci->connect_fd) {
            c->st = CONN_WAITING; /* the header is there: the request begins at once */
            *socket_context = c;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

void api_door_conn_closed(struct api_door *d, void **socket_context)
{
    struct api_conn *c = *socket_context;
    uint64_t one = 1;

    if (!c)
        return;
    *socket_context = NULL;
    pthread_mutex_lock(&d->lock);
    conn_unlink(d, c);
    pthread_mutex_unlock(&d->lock);
    free(c);
    if (write(d->wakefd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the door is awake anyway */
    }
}

static struct api_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

void api_door_request_begins(struct api_door *d, struct MHD_Connection *conn)
{
    struct api_conn *c = conn_of(conn);

    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    c->st = CONN_BUSY;
    pthread_mutex_unlock(&d->lock);
}

void api_door_request_ends(struct api_door *d, struct MHD_Connection *conn)
{
    struct api_conn *c = conn_of(conn);

    if (!c)
        return;
    pthread_mutex_lock(&d->lock);
    c->st = CONN_WAITING;
    c->since_ms = now_ms();
    pthread_mutex_unlock(&d->lock);
}

/* ---------------------------------------------------------------- waiting for headers */

/*
 * A waiting connection is readable: hand it over once its header (HTTPS: its first TLS
 * record) is all there.
 */
static void wait_check(struct api_door *d, struct pend *p, uint32_t events)
{
    char *buf = d->peek;
    ssize_t n = recv(p->fd, buf, DOOR_PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        pend_close(d, &d->wait, p); /* gone before it asked anything */
        return;
    }
    switch (n > 0 ? api_door_sniff((const unsigned char *)buf, (size_t)n, d->tls,
                                   n == DOOR_PEEK_MAX) : API_SNIFF_WAIT) {
    case API_SNIFF_READY:
        p->ready = true;
        handover(d, p);
        return;
    case API_SNIFF_PLAIN:
        p->plain = true;
        list_del(&d->wait, p);
        refuse(d, p, 400, "bad request", "https-required", "this port speaks https only: "
               "send the request over tls (https://)");
        return;
    case API_SNIFF_JUNK:
        pend_close(d, &d->wait, p);
        return;
    case API_SNIFF_WAIT:
        break;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        pend_close(d, &d->wait, p); /* half a header, then the end of the stream */
}

static void timeouts(struct api_door *d)
{
    uint64_t now = now_ms(), left_out;
    char who[64], detail[160];

    while (d->wait.head && now - d->wait.head->since_ms >= d->lim.header_timeout_ms) {
        struct pend *p = d->wait.head;
        list_del(&d->wait, p);
        if (p->ready) {
            refuse(d, p, 503, "service unavailable", "unavailable",
                   "the api had no free connection for this request in time; retry");
            continue;
        }
        if (log_rate_due(&d->log_timeout, &left_out))
            log_info("api", "closing a connection from %s: no complete request header "
                     "within %u ms (%llu more since the last such line)",
                     addr_str(p->is_unix, p->addr, who, sizeof(who)),
                     d->lim.header_timeout_ms, (unsigned long long)left_out);
        snprintf(detail, sizeof(detail), "the request header did not arrive within %u ms",
                 d->lim.header_timeout_ms);
        refuse(d, p, 408, "request timeout", "request-timeout", detail);
    }
    while (d->linger.head && now - d->linger.head->since_ms >= DOOR_LINGER_MS)
        pend_close(d, &d->linger, d->linger.head);
}

/* ---------------------------------------------------------------- accepting */

static void listen_pause(struct api_door *d, int err)
{
    if (!d->fdlimit_since_ms) {
        d->fdlimit_since_ms = now_ms();
        d->fdlimit_hits = 0;
        d->backoff_ms = DOOR_BACKOFF_MIN_MS;
        log_warn("api", "cannot accept connections: %s; retrying every %u-%u ms until "
                 "descriptors are free (%u connections waiting for a header, %u in the "
                 "http server)", strerror(err), DOOR_BACKOFF_MIN_MS, DOOR_BACKOFF_MAX_MS,
                 d->wait.n, d->nconns);
    } else {
        d->backoff_ms = d->backoff_ms * 2 < DOOR_BACKOFF_MAX_MS ? d->backoff_ms * 2
                                                                : DOOR_BACKOFF_MAX_MS;
    }
    d->fdlimit_hits++;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->lfd, NULL);
    d->paused = true;
    d->resume_ms = now_ms() + d->backoff_ms;
}

static void listen_resume(struct api_door *d)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };

    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->lfd, &ev) == 0)
        d->paused = false;
    else
        d->resume_ms = now_ms() + d->backoff_ms;
}

static void accept_some(struct api_door *d)
{
    char who[64], detail[160];
    uint64_t left_out;

    for (int i = 0; i < 64; i++) {
        struct pend *p;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listen_pause(d, errno);
            return;
        }
        if (d->fdlimit_since_ms) {
            log_info("api", "accepting connections again after %llu ms at the descriptor "
                     "limit (%llu tries)", (unsigned long long)(now_ms() - d->fdlimit_since_ms),
                     (unsigned long long)d->fdlimit_hits);
            d->fdlimit_since_ms = 0;
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
            close(fd);
            continue;
        }
        p->fd = fd;
        p->ss = ss;
        p->sl = sl;
        p->is_unix = ss.ss_family != AF_INET;
        if (!p->is_unix)
            p->addr = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
        p->since_ms = now_ms();
        if (!p->is_unix && client_conns(d, p->addr) >= d->lim.max_conns_per_client) {
            addr_str(false, p->addr, who, sizeof(who));
            if (log_rate_due(&d->log_client, &left_out))
                log_info("api", "refusing a connection from %s: it has %u already (%llu "
                         "more refused since the last such line)", who,
                         d->lim.max_conns_per_client, (unsigned long long)left_out);
            snprintf(detail, sizeof(detail), "too many connections from %s (at most %u at "
                     "once)", who, d->lim.max_conns_per_client);
            refuse(d, p, 429, "too many connections", "too-many-connections", detail);
            continue;
        }
        if (d->wait.n >= d->lim.max_pending) {
            struct pend *old = d->wait.head;
            list_del(&d->wait, old);
            if (log_rate_due(&d->log_evict, &left_out))
                log_info("api", "closing the oldest of %u connections still sending their "
                         "request header (%llu more since the last such line)",
                         d->lim.max_pending, (unsigned long long)left_out);
            refuse(d, old, 408, "request timeout", "request-timeout",
                   "the request header took too long while others waited");
        }
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p };
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(p);
            continue;
        }
        list_add(&d->wait, p); /* epoll reports data that arrived before the add */
    }
}

/* Connections whose header is complete and that wait for MHD to have room. */
static void retry_ready(struct api_door *d)
{
    for (struct pend *p = d->wait.head, *nx; p; p = nx) {
        nx = p->next;
        if (p->ready && !handover(d, p))
            return;
    }
}

static int next_timeout(struct api_door *d, int wd)
{
    uint64_t now = now_ms();
    int64_t t = 1000;

    if (d->wait.head) {
        int64_t left = (int64_t)(d->wait.head->since_ms + d->lim.header_timeout_ms - now);
        t = left < t ? left : t;
    }
    if (d->linger.head) {
        int64_t left = (int64_t)(d->linger.head->since_ms + DOOR_LINGER_MS - now);
        t = left < t ? left : t;
    }
    if (d->paused) {
        int64_t left = (int64_t)(d->resume_ms - now);
        t = left < t ? left : t;
    }
    if (wd >= 0 && wd < t)
        t = wd;
    return t < 0 ? 0 : (int)t;
}

static void *door_main(void *arg)
{
    struct api_door *d = arg;
    struct epoll_event evs[64];
    int wd = -1;

    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
        log_debug("api", "cannot lower the api door's priority: %s", strerror(errno));
    while (!atomic_load(&d->stopping)) {
        int n = epoll_wait(d->epfd, evs, 64, next_timeout(d, wd));
        bool woken = false;

        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &tag_listen) {
                accept_some(d);
            } else if (ptr == &tag_wake) {
                uint64_t v;
                if (read(d->wakefd, &v, sizeof(v)) < 0) {
                    /* drained by an earlier wake */
                }
                woken = true;
            } else {
                struct pend *p = ptr;
                if (p->gone)
                    continue;
                if (p->lingering)
                    linger_drain(d, p);
                else if (!p->ready)
                    wait_check(d, p, evs[i].events);
            }
        }
        while (d->graveyard) {
            struct pend *p = d->graveyard;
            d->graveyard = p->next;
            free(p);
        }
        if (woken)
            retry_ready(d);
        if (d->paused && now_ms() >= d->resume_ms)
            listen_resume(d);
        timeouts(d);
        wd = watchdog(d);
    }
    return NULL;
}

/* ---------------------------------------------------------------- start, stop */

void api_limits_fill(struct api_limits *out, const struct api_limits *in)
{
    *out = in ? *in : (struct api_limits){ 0 };
    if (!out->max_conns)
        out->max_conns = API_MAX_CONNS;
    if (!out->max_conns_per_client)
        out->max_conns_per_client = API_MAX_CONNS_PER_CLIENT;
    if (!out->header_timeout_ms)
        out->header_timeout_ms = API_HEADER_TIMEOUT_MS;
    if (!out->max_pending)
        out->max_pending = API_MAX_PENDING;
}

unsigned api_door_mhd_limit(const struct api_limits *lim)
{
    return lim->max_conns + DOOR_MHD_SLACK;
}

struct api_door *api_door_new(const struct api_limits *lim, int lfd, bool tls)
{
    struct api_door *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    api_limits_fill(&d->lim, lim);
    d->lfd = lfd;
    d->tls = tls;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&d->lock, NULL);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &tag_listen };
    struct epoll_event wev = { .events = EPOLLIN, .data.ptr = &tag_wake };
    if (d->epfd < 0 || d->wakefd < 0 ||
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, lfd, &lev) < 0 ||
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->wakefd, &wev) < 0) {
        int err = errno;
        api_door_free(d);
        errno = err;
        return NULL;
    }
    return d;
}

int api_door_start(struct api_door *d, struct MHD_Daemon *mhd)
{
    int ret;

    d->mhd = mhd;
    ret = pthread_create(&d->thread, NULL, door_main, d);
    if (ret)
        return -ret;
    d->running = true;
    return 0;
}

void api_door_stop(struct api_door *d)
{
    uint64_t one = 1;

    if (!d || !d->running)
        return;
    atomic_store(&d->stopping, true);
    if (write(d->wakefd, &one, sizeof(one)) < 0) {
        /* saturated: the thread is awake anyway */
    }
    pthread_join(d->thread, NULL);
    d->running = false;
    while (d->wait.head)
        pend_close(d, &d->wait, d->wait.head);
    while (d->linger.head)
        pend_close(d, &d->linger, d->linger.head);
    while (d->graveyard) {
        struct pend *p = d->graveyard;
        d->graveyard = p->next;
        free(p);
    }
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->lfd, NULL);
}

void api_door_free(struct api_door *d)
{
    if (!d)
        return;
    api_door_stop(d);
    while (d->conns) {
        struct api_conn *c = d->conns;
        d->conns = c->next;
        free(c);
    }
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->wakefd >= 0)
        close(d->wakefd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
