/*
 * toe_int.h - the TOE's internals, shared by the .c files of toe_emu/ only (includes lwIP).
 *
 * Threads: the firmware thread owns lwIP and everything marked "firmware" below. Consumers
 * (storage loops) own their stk_conn and touch only the rings and the atomics of a conn.
 * Control calls (toe_set_link, counters, ...) run as commands on the firmware thread.
 */
#ifndef TOEGW_TOE_INT_H
#define TOEGW_TOE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lwip/netif.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"

#include "common/spin.h"
#include "toe_emu/capture.h"
#include "toe_emu/fault.h"
#include "toe_emu/frame.h"
#include "toe_emu/ring.h"
#include "toe_emu/rxq.h"
#include "toe_emu/txq.h"
#include "toe_emu/toe.h"

#define TOE_RX_RING_BYTES   TCP_WND         /* never smaller: see conn.c recv_cb */
#define TOE_TX_RING_BYTES   TCP_SND_BUF
#define TOE_RX_BATCH        128             /* frames read from the TAP per wake */
#define TOE_MERGE_MAX       64              /* segments merged into one TSO super-frame */

/* Consumer requests (struct toe_conn.req bits), acted on by the firmware. */
enum {
    TOE_REQ_SHUTDOWN = 1u << 0,
};

enum toe_conn_state {
    TOE_CS_CONNECTING = 0,
    TOE_CS_ESTABLISHED,
    TOE_CS_FAILED,
};

struct toe_conn {
    struct stk_conn stk;            /* handed to the consumer; stk.impl points here */
    struct toe_dev *dev;            /* borrowed */
    struct toe_rxq rx;              /* firmware produces, consumer reads (rxq.h) */
    struct toe_txq tx;              /* consumer produces, firmware sends from it in place
                                       (txq.h: the send ring and buffers by reference) */

    /* consumer -> firmware */
    _Atomic unsigned req;           /* TOE_REQ_* */
    _Atomic int kicked;             /* on the device's kick list */
    struct toe_conn *kick_next;
    struct toe_conn *sig_next;      /* firmware: on dev->sig_head, rx signal deferred */
    bool rx_sig_pending;            /* firmware: on that list (conn_reap waits for it) */
    struct toe_conn *close_next;    /* on the device's close list (pushed once, by close) */
    bool close_abort;               /* close with a reset; written before that push */

    /* firmware -> consumer */
    _Atomic int state;              /* enum toe_conn_state */
    _Atomic int err;                /* -errno once failed */
    _Atomic bool eof;               /* FIN received; everything before it is in rx */
    _Atomic bool reset;             /* the failure was the peer's reset */
    _Atomic int rx_armed;           /* consumer saw rx empty: signal on new data */
    _Atomic int rx_armed_cpu;       /* consumer: the CPU it armed rx on (-1: unknown; a
                                       hint: a stale one only moves a signal in time) */
    _Atomic int tx_armed;           /* consumer saw tx full: signal on freed space */
    _Atomic bool tx_idle;           /* tx drained and idle: the consumer's next read or
                                       write gives its pages back first (conn_idle.c) */
    _Atomic uint64_t rx_reported;   /* rx tail already given back with tcp_recved (the
                                       firmware writes it, the consumer reads it) */
    pthread_mutex_t sig_lock;       /* orders signals against the consumer's close */
    bool user_closed;               /* under sig_lock: fd closed, never signal again */

    /* firmware only */
    struct tcp_pcb *pcb;            /* NULL once lwIP let go of it */
    struct toe_conn *prev, *next;   /* dev->conns */
    bool close_seen;                /* taken off the close list: the consumer is gone */
    bool pump_err;                  /* tcp_write failed: abort outside the callbacks */
    bool fin_queued;                /* shutdown/close sent to lwIP */
    bool was_established;
    uint32_t connect_start_ms;      /* sys_now() when the SYN went out */
    uint64_t bytes_in, bytes_out;   /* delivered to rx / acknowledged by the peer */
    uint64_t rx_idle_mark;          /* bytes_in at the previous poll (conn_idle.c) */
    bool rx_trimmed;                /* rx's pages given back; none touched since */
    uint64_t tx_idle_mark;          /* bytes_out at the previous poll (conn_idle.c) */
    uint64_t tx_trim_mark;          /* tx.queued when tx_idle was last set */
    uint32_t sack_ack;              /* duplicate ACKs with SACK blocks seen for this ... */
    unsigned sack_dups;             /* ... acknowledgment number, and how many */
    bool in_recovery;               /* a loss recovery we started runs until ... */
    uint32_t recover;               /* ... this sequence number is acknowledged */
};

struct toe_cmd {
    int (*fn)(struct toe_dev *dev, void *arg);
    void *arg;
    int rc;
    atomic_bool done;               /* set (release) after rc, by the firmware, under cmd_lock */
    struct toe_cmd *next;
};

/* A frame held back by the reorder fault (firmware only). */
struct toe_held {
    uint8_t *frame;                 /* owned copy, NULL when nothing is held */
    size_t len;
    uint32_t deadline;              /* sys_now() after which it goes out anyway */
};

struct toe_rxbuf;

struct toe_merge {
    struct pbuf *p[TOE_MERGE_MAX];  /* referenced segments waiting to go out as one frame */
    int n;
    uint8_t hdr[128];               /* Ethernet+IPv4+TCP header of the super-frame */
    size_t hlen;                    /* its length */
    size_t l3, l4;
    size_t seg;                     /* payload size of every segment but the last */
    size_t payload;                 /* payload bytes merged so far */
    uint32_t next_seq;
    size_t niov;                    /* iovecs the payload needs */
    bool short_tail;                /* the last segment was short: nothing may follow */
};

struct toe_dev {
    struct toe_config cfg;

    /* any thread */
    _Atomic bool link_up;
    _Atomic unsigned nconns;               /* driver-interface conns holding a slot (from
                                              toe_connect until their consumer's close) */
    _Atomic(struct toe_conn *) kick_head;  /* conns whose consumer asked for service */
    _Atomic(struct toe_conn *) close_head; /* conns their consumer closed */
    _Atomic int sleeping;                  /* firmware is (about to be) in poll() */
    bool rx_batching;                      /* firmware: in a TAP read batch */
    struct toe_conn *sig_head;             /* conns with new data to signal after it */
    _Atomic uint64_t refused_full;         /* toe_connect past max_conns */
    int wake_fd;                           /* eventfd that wakes the firmware */
    pthread_mutex_t cmd_lock;
    pthread_cond_t cmd_cond;
    struct toe_cmd *cmd_head, *cmd_tail;   /* under cmd_lock */
    bool stopping;                         /* under cmd_lock: no more commands */
    pthread_t thread;
    bool thread_started;

    /* firmware (or set once before it starts) */
    int tap_fd;
    bool vnet;                             /* frames on the TAP carry a virtio-net header */
    bool offload;                          /* ... and super-frames/partial checksums */
    bool stop;
    struct netif netif;
    struct toe_conn *conns;                /* every driver conn with firmware state */
    struct toe_fault_model fault[2];       /* [0] TOE->host, [1] host->TOE */
    struct toe_held held[2];
    struct toe_capture *cap;
    struct toe_rxbuf *rxfree;              /* spare receive buffers */
    unsigned rxfree_n;
    uint8_t *scratch_rx;                   /* one frame: splitting received super-frames */
    uint8_t *scratch_tx;                   /* one frame: flattening sent frames */
    struct toe_merge merge;
    struct toe_counters cnt;               /* frames/bytes/faults/conns (not the tcp_ ones) */
    uint32_t mib_last[9];                  /* lwIP's 32-bit counters at the last fold */
    uint64_t mib_acc[9];                   /* ... accumulated to 64 bits */
    uint32_t mib_fold_at;
    struct spin_poll spin;                 /* busy-poll before sleeping (cfg.busy_poll_us) */
};

/* dev.c */
void toe_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int toe_dev_call(struct toe_dev *dev, int (*fn)(struct toe_dev *, void *), void *arg);
void toe_dev_wake(struct toe_dev *dev);

/* tap.c */
int toe_tap_open(struct toe_dev *dev);
void toe_tap_close(struct toe_dev *dev);
/* macvtap.c: the wire as a macvtap on cfg->uplink (--toe-uplink). 0/fd or -errno. */
int toe_macvtap_create(struct toe_config *cfg);
int toe_macvtap_open(const char *ifname);
int toe_macvtap_delete(const char *ifname);
int toe_tap_set_carrier(struct toe_dev *dev, bool up);

/* netif.c */
err_t toe_netif_init(struct netif *netif);
void toe_netif_rx(struct toe_dev *dev);          /* read and deliver a batch of frames */
void toe_netif_flush(struct toe_dev *dev);       /* send the pending super-frame */
uint32_t toe_netif_next_deadline(struct toe_dev *dev, uint32_t now, uint32_t sleep_ms);
void toe_netif_timers(struct toe_dev *dev);      /* release held (reordered) frames */
void toe_netif_free(struct toe_dev *dev);
/* Free a chain of the adapter's receive buffers without lwIP or the device (after both). */
void toe_netif_rxbuf_free_raw(struct pbuf *p);
bool toe_netif_slow_path(const struct toe_dev *dev);

/* conn.c */
void toe_conn_kick(struct toe_conn *c);          /* have the firmware look at c (again) */
void toe_conn_service(struct toe_conn *c);       /* firmware: act on a kick */
void toe_conn_reap(struct toe_conn *c);          /* firmware: free c if nothing holds it */
void toe_conn_signal(struct toe_conn *c);        /* firmware: write the conn's eventfd */
void toe_conn_notify(struct toe_conn *c, _Atomic int *armed); /* signal if armed */
/* `len` new bytes in rx: signalled after the batch, or at once for a large segment */
void toe_conn_rx_ready(struct toe_conn *c, size_t len);
void toe_conn_rx_flush(struct toe_dev *dev);     /* signal the deferred ones */
void toe_conn_run_closes(struct toe_dev *dev);   /* firmware: act on consumers' closes */
void toe_conn_sack_hint(struct toe_dev *dev, uint16_t lport, uint32_t ackno);
void toe_conn_fail_all(struct toe_dev *dev, int err);
int toe_conn_start(struct toe_dev *dev, void *arg);  /* firmware half of toe_connect */
void toe_conn_orphan_all(struct toe_dev *dev);

/* conn_idle.c */
void toe_conn_idle_poll(struct toe_conn *c);     /* firmware, every 2 s: idle rings */
void toe_conn_tx_trim(struct toe_conn *c);       /* consumer, in read/writev: tx_idle set */

/* conn_tx.c, the firmware's sending */
void toe_conn_tx_pump(struct toe_conn *c);       /* hand what was offered to lwIP;
                                                    pump_err set when lwIP refused it */
void toe_conn_tx_reclaim(struct toe_conn *c);    /* release what lwIP let go of */
void toe_conn_tx_abandon(struct toe_conn *c);    /* the pcb is gone: release it all */

/* fw.c */
void *toe_fw_main(void *arg);
void toe_fw_fold_mib(struct toe_dev *dev);

/*
 * lwip_tcp.c: what the TOE needs of lwIP's private TCP state (that file says why), so that
 * no other file includes lwip/priv/tcp_priv.h. Firmware thread only.
 */
bool toe_tcp_seq_lt(uint32_t a, uint32_t b);     /* sequence number a before b */
/* Start the RTT estimator at `ms` (lwIP's is in units of its slow timer tick). */
void toe_tcp_seed_rtt(struct tcp_pcb *pcb, unsigned ms);
/* Bytes from the first byte a queued (unacked or unsent) segment references to snd_lbb. */
uint32_t toe_tcp_queued_behind(const struct tcp_pcb *pcb);
void toe_tcp_rexmit_next(struct tcp_pcb *pcb);   /* resend the first unacked segment now */
void toe_tcp_rexmit_fast(struct tcp_pcb *pcb);   /* lwIP's own fast retransmit, then send */
/*
 * Call fn on every active and TIME_WAIT pcb (fn may abort the pcb it is given, then must
 * stop the walk) until it returns non-zero; returns that value, or 0.
 */
int toe_tcp_for_each(int (*fn)(struct tcp_pcb *pcb, void *arg), void *arg);
void toe_tcp_abort_all(void);                    /* abort every pcb lwIP has */
/* Offer the data recv once refused to recv again; false when that aborted the pcb. */
bool toe_tcp_redeliver_refused(struct tcp_pcb *pcb);

#endif
