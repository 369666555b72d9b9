/*
 * bsock.h - the broker socket: the broker's connections for other programs (claims 5, 14,
 * 26), handed over as file descriptors.
 *
 * A Unix SOCK_SEQPACKET socket (`toegw serve --broker PATH`) on which a local program asks
 * for a TCP connection (common/bproto.h: CONNECT, RELEASE). The broker places it as it
 * places its own (stk_request: the TOE first), waits until it is established, and sends the
 * program a descriptor with SCM_RIGHTS:
 *
 *  - on the host stack, the connected kernel socket itself (the broker keeps no reference
 *    and watches the socket through sock_diag: once the program closed it, or died, the
 *    broker releases the connection and its port within STK_BSOCK_WATCH_MS);
 *  - on the TOE, one end of an AF_UNIX socketpair whose other end the broker's thread
 *    pumps to and from the TOE connection (bsock_conn.c); when the program's end closes,
 *    the TOE connection is closed and released at once.
 *
 * The program is the connection's owner ("pid/comm" by SO_PEERCRED) in the unified table.
 * Access: the socket file's mode (0660 by default) and, for a reservation made for a uid,
 * the client's uid by SO_PEERCRED. One thread (epoll) serves every client and pumps every
 * connection; nothing a client does (or fails to do) blocks it.
 */
#ifndef TOEGW_STACKS_BSOCK_H
#define TOEGW_STACKS_BSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stacks/stacks.h"

#define STK_BSOCK_MAX_CLIENTS 256      /* control connections at once */
#define STK_BSOCK_MAX_INFLIGHT 16      /* connects in progress per control connection */
#define STK_BSOCK_CONNECT_MS 10000u    /* a connect not established by then fails */
#define STK_BSOCK_IDLE_MS 60000u       /* a control connection idle this long is closed */
#define STK_BSOCK_WATCH_MS 200u        /* how often handed-over host sockets are checked */
#define STK_BSOCK_DRAIN_MS 500u        /* a closed TOE descriptor's last bytes: this long */

struct stk_bsock;

struct stk_bsock_config {
    const char *path;                  /* the socket file (replaced if stale) */
    mode_t mode;                       /* its permissions (0660) */
    struct stk_broker *broker;         /* borrowed; outlives the socket */
};

struct stk_bsock_stats {
    uint64_t clients, requests, bad_requests, refused;
    uint64_t handed_toe, handed_host;  /* descriptors sent */
    uint64_t closed_by_client;         /* released because the program closed or died */
    uint64_t open;                     /* handed-over connections now */
};

/*
 * Listen on cfg->path and start the broker socket's thread. NULL with the reason in err
 * (another live broker listening there, a path too long, bind or chmod failing).
 */
struct stk_bsock *stk_bsock_start(const struct stk_bsock_config *cfg, char *err,
                                  size_t errlen);
/* Stop: every handed-over connection is released (reset), the socket file removed. */
void stk_bsock_stop(struct stk_bsock *bs);
void stk_bsock_stats(struct stk_bsock *bs, struct stk_bsock_stats *out);

#endif
