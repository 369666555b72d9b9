/*
 * transport.h - the one interface through which storage/ moves bytes over TCP.
 *
 * A connection on the host stack (a kernel socket) and one on the emulated TOE (rings
 * behind an eventfd) look the same to the storage loop: a pollable fd plus these ops.
 * The loop never calls read(2)/write(2) on `fd` itself; it only polls it.
 *
 * It sits below both stacks: the broker (stacks/) hands these conns out, the TOE (toe_emu/)
 * implements them, and neither has to include the other. The host stack's implementation
 * (a kernel socket) is here too (common/transport.c), so that anything that compares the
 * two stacks (the TOE's test driver) needs no broker.
 *
 * Threading: a stk_conn is used by exactly one thread at a time (the storage loop that
 * owns it). Neither this interface nor its implementations know anything about iSCSI.
 */
#ifndef TOEGW_COMMON_TRANSPORT_H
#define TOEGW_COMMON_TRANSPORT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum stk_stack {
    STK_STACK_HOST = 0, /* the Linux kernel's TCP/IP */
    STK_STACK_TOE,      /* the emulated TCP offload engine (toe_emu/) */
};

/* Which stack a caller wants; AUTO prefers the TOE and falls back to the host. */
enum stk_policy {
    STK_POLICY_AUTO = 0,
    STK_POLICY_TOE,
    STK_POLICY_HOST,
};

struct stk_conn;

struct stk_conn_ops {
    /*
     * True when `fd` polls readable for as long as bytes are buffered (a kernel socket): a
     * short read then means "drained", and the read that would only say -EAGAIN can be
     * skipped. False (a TOE conn) when `fd` is signalled only after a read returned -EAGAIN.
     */
    bool level_triggered;
    /*
     * Read up to `len` bytes. Returns the count (> 0), 0 at orderly end of stream,
     * -EAGAIN when nothing is available now, or another -errno.
     */
    ssize_t (*read)(struct stk_conn *c, void *buf, size_t len);
    /*
     * Gather-write. Returns the bytes accepted (may be fewer than offered; never 0 for a
     * non-empty request), -EAGAIN when no room now, or another -errno.
     */
    ssize_t (*writev)(struct stk_conn *c, const struct iovec *iov, int iovcnt);
    /*
     * While connecting: 0 once established, -EINPROGRESS while still pending, or the
     * -errno that made the connect fail. Call when `fd` polls ready.
     */
    int (*connect_result)(struct stk_conn *c);
    /*
     * The epoll event mask to register on `fd` for what the consumer wants now.
     * A host socket asks for exactly that; a TOE conn's eventfd is always EPOLLIN.
     */
    uint32_t (*events)(struct stk_conn *c, bool want_read, bool want_write);
    /* True when bytes are buffered inside the transport: read again before sleeping. */
    bool (*pending)(struct stk_conn *c);
    /* Half-close: no more writes. 0 or -errno. */
    int (*shutdown)(struct stk_conn *c);
    /* Close (graceful unless `abort`) and free the conn. `c` is invalid afterwards. */
    void (*close)(struct stk_conn *c, bool abort);
};

struct stk_conn {
    const struct stk_conn_ops *ops;
    int fd;                    /* pollable; owned by the conn, closed by ops->close */
    enum stk_stack stack;
    struct sockaddr_in local;  /* filled once connected (host) or at creation (TOE) */
    struct sockaddr_in remote;
    uint64_t bytes_in;         /* maintained by the implementation */
    uint64_t bytes_out;
    void *impl;                /* implementation-private */
};

static inline ssize_t stk_conn_read(struct stk_conn *c, void *buf, size_t len)
{
    return c->ops->read(c, buf, len);
}

static inline ssize_t stk_conn_writev(struct stk_conn *c, const struct iovec *iov, int n)
{
    return c->ops->writev(c, iov, n);
}

static inline void stk_conn_close(struct stk_conn *c, bool abort)
{
    c->ops->close(c, abort);
}

/*
 * Start a non-blocking TCP connect on the host stack from `local_port` (0: the kernel
 * picks) to `dst`. On success *out is a new conn (caller closes with stk_conn_close);
 * poll its fd for writability and call connect_result. Returns 0 or -errno.
 */
int stk_host_connect(const struct sockaddr_in *dst, uint16_t local_port,
                     struct stk_conn **out);

/*
 * The same from a socket already bound to its local port (the broker's placeholder): the
 * conn takes the socket over, also on failure (it is closed then). Returns 0 or -errno.
 */
int stk_host_connect_fd(int fd, const struct sockaddr_in *dst, struct stk_conn **out);

/*
 * Drop this process's reference to a host conn's socket and free the conn, without
 * shutting the connection down: for a socket another process now holds too (passed with
 * SCM_RIGHTS). Only for conns made by stk_host_connect / stk_host_connect_fd.
 */
void stk_host_conn_forget(struct stk_conn *c);

/* Resolve "host[:port]" (IPv4 literal or name) into *out; port defaults to def_port. */
int stk_parse_hostport(const char *s, uint16_t def_port, struct sockaddr_in *out);

/* "a.b.c.d/len" (len defaults to 32) into addr and prefix. 0 or -EINVAL. */
int stk_parse_cidr(const char *s, struct in_addr *addr, uint8_t *prefix);

/* "a.b.c.d:port" into buf (at least 22 bytes). Returns buf. */
const char *stk_addr_str(const struct sockaddr_in *a, char *buf, size_t len);

const char *stk_stack_name(enum stk_stack s);
int stk_parse_policy(const char *s, enum stk_policy *out);
const char *stk_policy_name(enum stk_policy p);

#endif
