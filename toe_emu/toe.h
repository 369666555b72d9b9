/*
 * toe.h - the emulated TCP offload engine: an adapter with its own MAC, IPv4 address and
 * TCP/IP stack (lwIP, on the adapter's firmware thread), whose wire is a TAP device.
 *
 * Two faces:
 *  - the adapter (struct toe_dev): created with its wire and addresses, link up/down, wire
 *    faults, capture, counters, connection table. Thread-safe: any thread may call these;
 *    they are carried out on the firmware thread and wait for it (microseconds).
 *  - the hardware-driver interface (toe_connect): a TCP connection on the adapter,
 *    returned as a struct stk_conn (common/transport.h) so the storage loop uses it like a
 *    host socket. Behind it: a send ring and a receive ring in shared memory and an eventfd
 *    (stk_conn.fd) that the TOE signals; lwIP never runs on the consumer's thread.
 *
 * One adapter per process at a time (lwIP keeps global state); a new one may be created
 * after the previous one is freed.
 *
 * Errors: int functions return 0 or -errno; pointer functions return NULL and set errno.
 * toe_strerror() gives the human message of the calling thread's last failure.
 *   -ENETDOWN      the adapter's link is down (toe_set_link) or it is shutting down
 *   -EMFILE        the adapter is full: --toe-max-conns connections are open
 *   -EADDRINUSE    the local port is in use by another TOE connection to that peer
 *   -ENETUNREACH   no route to the destination through the adapter
 *   -ECONNREFUSED  the peer answered the SYN with a reset
 *   -ECONNRESET    the peer reset an established connection
 *   -ETIMEDOUT     the peer stopped answering (data retransmissions exhausted)
 *   -EHOSTUNREACH  a connect got no answer within connect_timeout_ms: nothing at the
 *                  destination answers the adapter (no route beyond its wire, no ARP reply)
 *   -ENOMEM        out of memory
 */
#ifndef TOEGW_TOE_TOE_H
#define TOEGW_TOE_TOE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/spin.h"
#include "common/transport.h"

struct toe_dev;

#define TOE_IFNAME_MAX 16

#define TOE_BUSY_POLL_MAX_US SPIN_MAX_US   /* the firmware polls with common/spin.h */

struct toe_config {
    char ifname[TOE_IFNAME_MAX];   /* TAP device, created or attached ("toe0") */
    uint8_t mac[6];                /* the adapter's MAC; all zero: a locally administered one */
    struct in_addr addr;           /* the adapter's own address (192.0.2.2) */
    uint8_t prefix;                /* its prefix length (24) */
    struct in_addr host_addr;      /* given to the host side of the TAP (192.0.2.1); also the
                                      adapter's gateway. 0.0.0.0: leave the host side alone */
    char uplink[TOE_IFNAME_MAX];   /* "": the wire is a private TAP. Else a macvtap on this
                                      interface, with the adapter's MAC: the adapter is a
                                      station on its segment (host_addr is not used) */
    struct in_addr gateway;        /* the adapter's default route; 0.0.0.0: host_addr */
    uint8_t host_prefix;
    unsigned mtu;                  /* wire MTU, set on both ends (9000); 576..65000 */
    unsigned max_conns;            /* offload capacity (1024); 0: up, but takes none */
    unsigned connect_timeout_ms;   /* a connect with no answer (no SYN-ACK, no ARP reply)
                                      this long fails with -EHOSTUNREACH (3000); 0: lwIP's
                                      own SYN retries decide */
    unsigned busy_poll_us;         /* the firmware watches the wire and the doorbells up to
                                      this long before it sleeps, adapting to the gaps it
                                      sees and yielding to runnable threads (200); 0: never */
    bool no_offload;               /* no TSO/GSO super-frames, no checksum offload on the
                                      TAP (measurements only) */
};

/* The defaults (docs/serve.md): toe0, 192.0.2.2/24, host 192.0.2.1/24, MTU 9000, 1024 conns,
 * busy-poll 200 µs. */
void toe_config_defaults(struct toe_config *cfg);
/* The version of the TCP/IP stack inside the adapter ("lwIP 2.1.3"; static). */
const char *toe_stack_version(void);

/*
 * Create or attach the TAP device, configure both ends, start the firmware thread with the
 * link up. Needs CAP_NET_ADMIN. Caller frees with toe_dev_free. NULL and errno on failure
 * (toe_strerror says why).
 */
struct toe_dev *toe_dev_new(const struct toe_config *cfg);
/*
 * Stop the firmware and release the TAP (a TAP this call created disappears). Every
 * connection should be closed first; any still open is aborted and fails with -ENETDOWN,
 * and its stk_conn must still be closed by its owner afterwards.
 */
void toe_dev_free(struct toe_dev *dev);

/* The calling thread's last toe_ failure, as one lowercase line ("" if none). */
const char *toe_strerror(void);

/*
 * Link state of the emulated wire (also the TAP's carrier). Down: every connection fails
 * at once with -ENETDOWN, frames are dropped, toe_connect returns -ENETDOWN. Up: new
 * connections work again.
 */
int toe_set_link(struct toe_dev *dev, bool up);
bool toe_link_up(const struct toe_dev *dev);

/* Wire faults, each a probability 0..1 per frame and direction; seed makes runs replayable. */
struct toe_faults {
    double drop;
    double dup;
    double reorder;
    double corrupt;
    uint64_t seed;
};
/* Replace the fault settings (all zero: a perfect wire). 0, -EINVAL or -ENETDOWN. */
int toe_set_faults(struct toe_dev *dev, const struct toe_faults *f);
int toe_get_faults(struct toe_dev *dev, struct toe_faults *out);

/*
 * Capture every frame that crosses the wire (after faults, as the receiver sees them),
 * pcap with the Ethernet link type. `path`: write to that file as frames pass; NULL: keep
 * the newest frames in memory, at most `ring_bytes` of frame data (0: 64 MiB), until saved.
 * Starting a capture replaces the current one. While capturing, super-frames are split into
 * wire frames and checksums completed, so the file shows exactly the wire.
 */
int toe_capture_start(struct toe_dev *dev, const char *path, size_t ring_bytes);
/* Write the in-memory capture (or flush the file capture) as pcap to `path`. */
int toe_capture_save(struct toe_dev *dev, const char *path);
/* Stop capturing (a file capture is flushed and closed; a memory capture is discarded). */
int toe_capture_stop(struct toe_dev *dev);

struct toe_dir_counters {
    uint64_t frames;               /* frames that crossed the wire (a super-frame counts as
                                      the wire frames it stands for) */
    uint64_t bytes;                /* their bytes, Ethernet header included */
    uint64_t drop_link_down;       /* dropped: link down */
    uint64_t drop_bad;             /* dropped: malformed, unknown ethertype, bad checksum */
    uint64_t fault_drop, fault_dup, fault_reorder, fault_corrupt; /* injected */
};

struct toe_counters {
    struct toe_dir_counters tx;    /* adapter to host (TAP) */
    struct toe_dir_counters rx;    /* host to adapter */
    uint64_t tap_errors;           /* TAP reads/writes that failed */
    uint64_t conns_opened;         /* toe_connect calls that started a connection */
    uint64_t conns_established;
    uint64_t conns_failed;         /* never established: refused, timed out, link down */
    uint64_t conns_reset;          /* established, then reset or aborted */
    uint64_t conns_refused_full;   /* toe_connect past --toe-max-conns */
    uint64_t conns_current;        /* open now (driver-interface connections) */
    /* lwIP's TCP MIB counters (the adapter's TCP stack) */
    uint64_t tcp_active_opens, tcp_attempt_fails, tcp_estab_resets;
    uint64_t tcp_in_segs, tcp_out_segs, tcp_retrans_segs, tcp_in_errs, tcp_out_rsts;
    uint64_t tcp_drop;             /* segments lwIP dropped */
    uint64_t capture_frames;       /* frames written to the current capture */
};
int toe_get_counters(struct toe_dev *dev, struct toe_counters *out);

struct toe_info {
    bool link_up;
    char ifname[TOE_IFNAME_MAX];
    uint8_t mac[6];
    struct in_addr addr, host_addr;
    uint8_t prefix, host_prefix;
    unsigned mtu;
    unsigned max_conns;
    unsigned conns;                /* driver-interface connections open now */
    bool offload;                  /* TSO/GSO and checksum offload in use on the TAP */
};
int toe_get_info(struct toe_dev *dev, struct toe_info *out);

/* One row of the adapter's connection table. */
struct toe_conn_info {
    struct sockaddr_in local, remote;
    char state[12];                /* "ESTABLISHED", "TIME_WAIT", ... as netstat says */
    bool driver;                   /* a driver-interface connection (else lwIP's leftover,
                                      e.g. TIME_WAIT) */
    uint64_t bytes_in;             /* delivered to the receive ring */
    uint64_t bytes_out;            /* acknowledged by the peer */
};
/* Snapshot of every TCP pcb of the adapter. *out: caller frees with free(). */
int toe_list_conns(struct toe_dev *dev, struct toe_conn_info **out, size_t *n);

/*
 * The driver interface. Open a TCP connection from the adapter's address and exactly
 * `local_port` (the broker's reservation; 1..65535) to `dst`. Returns at once with *out a
 * new conn in the connecting state (caller closes with stk_conn_close): poll its fd and
 * call connect_result. Fails with -ENETDOWN, -EMFILE, -EADDRINUSE, -ENETUNREACH, -EINVAL.
 *
 * Contract of the returned conn (beyond common/transport.h):
 *  - fd is an eventfd, always registered for EPOLLIN. The TOE signals it when the
 *    connection is established or fails, when data or end of stream arrives after read
 *    returned -EAGAIN, and when ring space frees after writev returned -EAGAIN or a short
 *    count. read/writev drain it when they return -EAGAIN; so read (when you want input)
 *    and write (when you have output) until -EAGAIN before sleeping, or check pending().
 *  - writev copies into the send ring (2 MiB) and returns what fitted; the data is sent
 *    from the ring without another copy. Writing is allowed while connecting.
 *  - close(c, false) sends what is still in the send ring, then FIN; unread received data
 *    makes it a reset (as a host socket does). close(c, true) resets at once.
 */
int toe_connect(struct toe_dev *dev, const struct sockaddr_in *dst, uint16_t local_port,
                struct stk_conn **out);

/*
 * In-place receive, for a consumer that can use received bytes where they lie (the
 * adapter's receive buffers or the receive ring) instead of a copy of them.
 * toe_conn_peek points *data at the next bytes of the stream and returns how many are
 * contiguous there (> 0); otherwise it answers as read does: 0 at end of stream, -EAGAIN
 * (the eventfd armed as read arms it), or the -errno that failed the connection. The bytes
 * stay valid and unchanged until toe_conn_consume moves past them or the conn is closed.
 * toe_conn_consume(c, n) takes n bytes, at most what peek returned, as a read of them would
 * (the window reopens as they go). Reads and peeks may be mixed; one consumer thread; a
 * TOE conn only (toe_conn_is_toe).
 */
ssize_t toe_conn_peek(struct stk_conn *c, const void **data);
void toe_conn_consume(struct stk_conn *c, size_t n);

/*
 * Send by reference, for a consumer that can leave a buffer alone until it is sent: the
 * TOE sends the `len` (> 0) bytes at `buf`, in stream order with what writev queued, from
 * that memory itself, without copying them into the send ring. The buffer must stay valid
 * and unchanged until done(arg) is called: once the peer acknowledged every byte of it, or
 * the connection ended (failed, reset, or closed: a graceful close still sends it first).
 * done runs exactly once, on the adapter's thread (or in close or toe_dev_free when the
 * adapter is already gone), so it must only hand the buffer back, not block.
 * Returns len; -EAGAIN while 64 buffers are outstanding (the eventfd is signalled as one
 * comes back, as writev arms it); -EINVAL for an empty buffer or no
 * done; the connection's -errno, or -EPIPE after shutdown. done is not called unless len
 * was returned. A TOE conn only, on the consumer's thread.
 */
ssize_t toe_conn_send_ref(struct stk_conn *c, const void *buf, size_t len,
                          void (*done)(void *arg), void *arg);

/* State of a TOE conn for event-style consumers (a snapshot; any of these bits). */
enum toe_conn_event {
    TOE_EV_CONNECTED = 1u << 0,    /* established (stays set) */
    TOE_EV_READABLE = 1u << 1,     /* bytes in the receive ring */
    TOE_EV_WRITABLE = 1u << 2,     /* space in the send ring */
    TOE_EV_CLOSED = 1u << 3,       /* the peer sent FIN and the ring holds no more data */
    TOE_EV_RESET = 1u << 4,        /* the peer reset it */
    TOE_EV_ERROR = 1u << 5,        /* failed (toe_conn_error says why) */
};
uint32_t toe_conn_events(const struct stk_conn *c);
/* 0, or the -errno that failed the connection. */
int toe_conn_error(const struct stk_conn *c);
/* True when `c` is a TOE connection. */
bool toe_conn_is_toe(const struct stk_conn *c);

#endif
