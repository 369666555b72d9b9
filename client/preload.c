/*
 * preload.c - toegw-preload.so: with LD_PRELOAD, a program's TCP connects to the
 * destinations of TOEGW_OFFLOAD go through toegw's broker (docs/broker.md, "The preload
 * shim"), unchanged programs included (iscsi-ls, qemu-img, ...).
 *
 * connect() of an unbound AF_INET SOCK_STREAM socket to a matching destination asks the
 * broker (libtoegw) and puts the descriptor it sends over the program's socket (dup3: the
 * fd number stays, O_NONBLOCK, FD_CLOEXEC and the socket options set so far come along).
 * Anything else, a broker that is not there, or a refusal: the kernel's connect(), as if the
 * shim were not loaded (TOEGW_DEBUG=1 says why on stderr).
 *
 * A host-stack descriptor is the kernel's TCP socket itself. A TOE descriptor is an AF_UNIX
 * socket: for it the shim answers getsockname/getpeername with the TCP addresses,
 * getsockopt SO_DOMAIN/SO_PROTOCOL with AF_INET/IPPROTO_TCP, and keeps the TCP- and
 * IP-level options the program sets (the TOE's own TCP settings apply on the wire).
 * dup/dup2/dup3/fcntl(F_DUPFD) and close keep the shim's table right; it is keyed by the
 * socket's inode, so a forked child's copies answer as well. After exec the table starts
 * from the inherited descriptors, and descriptors received over SCM_RIGHTS (recvmsg) join
 * it: each TOE descriptor carries its connection's name.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/preload_int.h"
#include "client/toegw.h"
#include "common/bproto.h"

#define EXPORT __attribute__((visibility("default")))

static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct pl_rules rules;
static bool debug;
static __thread bool asking_broker; /* libtoegw's own recvmsg: take_over adds its answer */

#define say(...)                                                                         \
    do {                                                                                 \
        if (debug)                                                                       \
            fprintf(stderr, "toegw-preload: " __VA_ARGS__);                              \
    } while (0)

/*
 * fd, if it is a TOE connection's descriptor this process inherited (across exec: the
 * table of the program before it is gone) or received (SCM_RIGHTS), into the table, by the
 * name the broker bound it to (common/bproto.h). Options another program set on it are not
 * known here. `how`: "inherited" or "received", for the debug line.
 */
static void adopt(int fd, const char *how)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    struct pl_sock ps = { 0 };
    char loc[32];

    if (real_getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 ||
        bp_conn_name_parse(&sa, sl, &ps.id, &ps.local, &ps.remote) < 0)
        return;
    if (pl_tab_get(fd, &ps))
        pl_tab_ref(fd, 1); /* a dup of one adopted already */
    else if (pl_tab_add(fd, &ps) == 0) {
        inet_ntop(AF_INET, &ps.local.sin_addr, loc, sizeof(loc));
        say("fd %d: connection %llu %s, local %s:%u\n", fd, (unsigned long long)ps.id, how,
            loc, ntohs(ps.local.sin_port));
    }
}

/* Every open descriptor through adopt(), once, before the first call is answered. */
static void adopt_inherited(void)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char buf[4096];
    ssize_t n;

    if (dir < 0) { /* no /proc: the usual range */
        for (int fd = 0; fd < 1024; fd++)
            adopt(fd, "inherited");
        return;
    }
    while ((n = getdents64(dir, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            char *end;
            long fd = strtol(d->d_name, &end, 10);
            if (end != d->d_name && !*end && fd != dir && fd >= 0 && fd <= INT_MAX)
                adopt((int)fd, "inherited");
            off += d->d_reclen;
        }
    }
    real_close(dir);
}

static void init(void)
{
    char bad[128];
    const char *d = getenv("TOEGW_DEBUG");

    real_connect = dlsym(RTLD_NEXT, "connect");
    real_close = dlsym(RTLD_NEXT, "close");
    real_dup = dlsym(RTLD_NEXT, "dup");
    real_dup2 = dlsym(RTLD_NEXT, "dup2");
    real_dup3 = dlsym(RTLD_NEXT, "dup3");
    real_fcntl = dlsym(RTLD_NEXT, "fcntl");
    real_getsockname = dlsym(RTLD_NEXT, "getsockname");
    real_getpeername = dlsym(RTLD_NEXT, "getpeername");
    real_getsockopt = dlsym(RTLD_NEXT, "getsockopt");
    real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
    real_recvmsg = dlsym(RTLD_NEXT, "recvmsg");
    debug = d && *d && strcmp(d, "0");
    if (pl_rules_parse(getenv("TOEGW_OFFLOAD"), &rules, bad, sizeof(bad)) < 0)
        fprintf(stderr, "toegw-preload: TOEGW_OFFLOAD: \"%s\" is not ADDR[/LEN][:PORT], "
                        "*:PORT or :PORT (ignored)\n", bad);
    adopt_inherited();
}

static void setup(void)
{
    pthread_once(&once, init);
}

/* ---------------------------------------------------------------- connect */

/* The options a program may have set before connect, carried to the new descriptor. */
static const struct {
    int level, name;
} carried[] = {
    { SOL_SOCKET, SO_KEEPALIVE }, { SOL_SOCKET, SO_PRIORITY },
    { IPPROTO_TCP, TCP_NODELAY }, { IPPROTO_TCP, TCP_KEEPIDLE },
    { IPPROTO_TCP, TCP_KEEPINTVL }, { IPPROTO_TCP, TCP_KEEPCNT },
    { IPPROTO_TCP, TCP_USER_TIMEOUT }, { IPPROTO_TCP, TCP_SYNCNT },
};

/* Whether connect(fd, dst) is one to ask the broker for. */
static bool wanted(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sockaddr_in self;
    socklen_t sl = sizeof(self);
    int type = 0, dom = 0;
    socklen_t tl = sizeof(type), dl = sizeof(dom);

    if (!addr || len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET)
        return false;
    if (!pl_rules_match(&rules, (const struct sockaddr_in *)addr))
        return false;
    if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
        real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) < 0 || dom != AF_INET)
        return false;
    /* a socket the program bound itself keeps the address it chose: the kernel's */
    if (real_getsockname(fd, (struct sockaddr *)&self, &sl) < 0 || self.sin_port != 0 ||
        self.sin_addr.s_addr != htonl(INADDR_ANY))
        return false;
    return true;
}

/* The request: TOEGW_STACK, TOEGW_RESERVATION and TOEGW_HOLDER. */
static void request_from_env(struct toegw_conn_req *req, const struct sockaddr_in *dst)
{
    const char *res = getenv("TOEGW_RESERVATION");
    const char *tmo = getenv("TOEGW_CONNECT_TIMEOUT_MS");

    memset(req, 0, sizeof(*req));
    req->dst = *dst;
    req->stack = getenv("TOEGW_STACK");
    req->reservation = res ? strtoull(res, NULL, 10) : 0;
    req->holder = getenv("TOEGW_HOLDER");
    req->timeout_ms = tmo ? atoi(tmo) : 0;
}

/*
 * Put the broker's descriptor nfd over the program's fd: its options, its fd flags and file
 * status flags come along. 0 or -errno (nfd closed either way).
 */
static int take_over(int fd, int nfd, bool toe, const struct toegw_conn_info *info)
{
    struct pl_sock ps = { .id = info->id, .local = info->local, .remote = info->remote };
    int fl = real_fcntl(fd, F_GETFL), fdfl = real_fcntl(fd, F_GETFD);

    for (size_t i = 0; i < sizeof(carried) / sizeof(carried[0]); i++) {
        int v = 0;
        socklen_t vl = sizeof(v);
        if (real_getsockopt(fd, carried[i].level, carried[i].name, &v, &vl) < 0)
            continue;
        if (!toe) {
            real_setsockopt(nfd, carried[i].level, carried[i].name, &v, sizeof(v));
        } else if (ps.nopts < PL_MAX_OPTS) {
            ps.opts[ps.nopts].level = carried[i].level;
            ps.opts[ps.nopts].name = carried[i].name;
            ps.opts[ps.nopts++].value = v;
        }
    }
    if (fl < 0 || fdfl < 0 ||
        real_dup3(nfd, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        int e = errno;
        real_close(nfd);
        return -e;
    }
    real_close(nfd);
    real_fcntl(fd, F_SETFL, fl);
    return toe ? pl_tab_add(fd, &ps) : 0;
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct toegw_conn_req req;
    struct toegw_conn_info info;
    char err[256], dst[32], loc[32];
    int nfd, ret;

    setup();
    if (!wanted(fd, addr, len))
        return real_connect(fd, addr, len);
    struct pl_sock ps;
    if (pl_tab_get(fd, &ps)) {
        errno = EISCONN;
        return -1;
    }
    request_from_env(&req, (const struct sockaddr_in *)addr);
    inet_ntop(AF_INET, &req.dst.sin_addr, dst, sizeof(dst));
    asking_broker = true;
    nfd = toegw_connect(NULL, &req, &info, err, sizeof(err));
    asking_broker = false;
    if (nfd < 0) {
        say("connect to %s:%u: %s; the kernel connects instead\n", dst,
            ntohs(req.dst.sin_port), err);
        return real_connect(fd, addr, len);
    }
    ret = take_over(fd, nfd, !strcmp(info.stack, "toe"), &info);
    if (ret < 0) {
        say("connect to %s:%u: cannot take the broker's descriptor over fd %d: %s\n", dst,
            ntohs(req.dst.sin_port), fd, strerror(-ret));
        toegw_release(NULL, -1, info.id, true, NULL, 0);
        return real_connect(fd, addr, len);
    }
    inet_ntop(AF_INET, &info.local.sin_addr, loc, sizeof(loc));
    say("fd %d: connection %llu to %s:%u on the %s stack (%s), local %s:%u\n", fd,
        (unsigned long long)info.id, dst, ntohs(req.dst.sin_port), info.stack,
        info.placement, loc, ntohs(info.local.sin_port));
    return 0;
}

/* ---------------------------------------------------------------- fd bookkeeping */

/* Descriptors another process passed over a Unix socket: a TOE connection's answers as its
 * TCP socket here too (its name says which connection it is). */
EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t n;
    int e;

    setup();
    n = real_recvmsg(fd, msg, flags);
    if (n < 0 || asking_broker || !msg->msg_control || msg->msg_controllen < CMSG_LEN(0))
        return n;
    e = errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int pfd;
            memcpy(&pfd, CMSG_DATA(c) + i * sizeof(int), sizeof(pfd));
            adopt(pfd, "received");
        }
    }
    errno = e;
    return n;
}

EXPORT int close(int fd)
{
    setup();
    pl_tab_ref(fd, -1);
    return real_close(fd);
}

EXPORT int dup(int fd)
{
    setup();
    int r = real_dup(fd);
    if (r >= 0)
        pl_tab_ref(fd, 1);
    return r;
}

EXPORT int dup2(int fd, int fd2)
{
    setup();
    if (fd != fd2)
        pl_tab_ref(fd2, -1);
    int r = real_dup2(fd, fd2);
    if (r >= 0 && fd != fd2)
        pl_tab_ref(fd, 1);
    return r;
}

EXPORT int dup3(int fd, int fd2, int flags)
{
    setup();
    if (fd != fd2)
        pl_tab_ref(fd2, -1);
    int r = real_dup3(fd, fd2, flags);
    if (r >= 0)
        pl_tab_ref(fd, 1);
    return r;
}

static int fcntl_common(int fd, int cmd, va_list ap)
{
    void *arg = va_arg(ap, void *);

    setup();
    int r = real_fcntl(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        pl_tab_ref(fd, 1);
    return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;

    va_start(ap, cmd);
    int r = fcntl_common(fd, cmd, ap);
    va_end(ap);
    return r;
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;

    va_start(ap, cmd);
    int r = fcntl_common(fd, cmd, ap);
    va_end(ap);
    return r;
}

/* ---------------------------------------------------------------- a TCP socket's face */

static int answer_addr(const struct sockaddr_in *a, struct sockaddr *out, socklen_t *len)
{
    if (!out || !len) {
        errno = EFAULT;
        return -1;
    }
    memcpy(out, a, *len < sizeof(*a) ? *len : sizeof(*a));
    *len = sizeof(*a);
    return 0;
}

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct pl_sock ps;

    setup();
    if (pl_tab_get(fd, &ps))
        return answer_addr(&ps.local, addr, len);
    return real_getsockname(fd, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct pl_sock ps;

    setup();
    if (pl_tab_get(fd, &ps))
        return answer_addr(&ps.remote, addr, len);
    return real_getpeername(fd, addr, len);
}

static int answer_int(int v, void *val, socklen_t *len)
{
    if (!val || !len || *len < sizeof(int)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(val, &v, sizeof(v));
    *len = sizeof(v);
    return 0;
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    struct pl_sock ps;
    int v = 0;

    setup();
    if (!pl_tab_get(fd, &ps))
        return real_getsockopt(fd, level, name, val, len);
    if (level == SOL_SOCKET && name == SO_DOMAIN)
        return answer_int(AF_INET, val, len);
    if (level == SOL_SOCKET && name == SO_PROTOCOL)
        return answer_int(IPPROTO_TCP, val, len);
    if (level == IPPROTO_TCP && name == TCP_INFO) {
        struct tcp_info ti = { .tcpi_state = TCP_ESTABLISHED };
        memcpy(val, &ti, *len < sizeof(ti) ? *len : sizeof(ti));
        *len = *len < sizeof(ti) ? *len : sizeof(ti);
        return 0;
    }
    if (level == IPPROTO_TCP || level == IPPROTO_IP) {
        pl_tab_get_opt(fd, level, name, &v);
        return answer_int(v, val, len);
    }
    if (real_getsockopt(fd, level, name, val, len) == 0)
        return 0;
    if (!pl_tab_get_opt(fd, level, name, &v))
        return -1;
    return answer_int(v, val, len);
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    struct pl_sock ps;
    int v = 0;

    setup();
    if (!pl_tab_get(fd, &ps))
        return real_setsockopt(fd, level, name, val, len);
    if (val && len >= sizeof(int))
        memcpy(&v, val, sizeof(v));
    if (level == SOL_SOCKET && real_setsockopt(fd, level, name, val, len) == 0)
        return 0;
    /* a TCP or IP option, or a socket option a Unix socket lacks: kept and answered */
    pl_tab_set_opt(fd, level, name, v);
    return 0;
}
