/*
 * lwipopts.h - lwIP configured as the TOE adapter's firmware (read docs/toe.md).
 *
 * lwIP runs only on the adapter's firmware thread (NO_SYS=1, raw API, no core lock). The
 * window and the send buffer are large (one SAN connection must fill a 9000-byte-MTU link),
 * memory comes from the C library (a pool sized for --toe-max-conns connections with
 * megabyte windows would be huge and mostly idle), and statistics are on: they are the
 * adapter's TCP counters. TCP checksums are done by the emulated adapter's "hardware"
 * (toe_emu/netif.c), as on a NIC with checksum offload.
 */
#ifndef TOEGW_TOE_LWIPOPTS_H
#define TOEGW_TOE_LWIPOPTS_H

/* ---- system ---- */
#define NO_SYS                      1
#define LWIP_TIMERS                 1
#define SYS_LIGHTWEIGHT_PROT        0
#define LWIP_NETCONN                0
#define LWIP_SOCKET                 0
#define LWIP_TCPIP_CORE_LOCKING     0
#define LWIP_CALLBACK_API           1
#define LWIP_EVENT_API              0
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1   /* htons & co. come from the C library */

/* ---- memory: libc malloc for the heap and for every pool ---- */
#define MEM_LIBC_MALLOC             1
#define MEMP_MEM_MALLOC             1
#define MEM_ALIGNMENT               8
#define LWIP_SUPPORT_CUSTOM_PBUF    1   /* received frames are wrapped, not copied */
#define PBUF_POOL_SIZE              64  /* unused by our netif; lwIP itself wants a pool */
#define PBUF_POOL_BUFSIZE           1536 /* the default derives from TCP_MSS and overflows */
#define MEMP_OVERFLOW_CHECK         0
#define MEMP_SANITY_CHECK           0

/* ---- protocols: IPv4 TCP over Ethernet with ARP and ICMP echo ---- */
#define LWIP_IPV4                   1
#define LWIP_IPV6                   0
#define LWIP_ARP                    1
#define LWIP_ETHERNET               1
#define ETH_PAD_SIZE                0
#define ARP_TABLE_SIZE              32
#define ARP_QUEUEING                1
#define LWIP_ICMP                   1
#define LWIP_RAW                    0
#define LWIP_UDP                    0
#define LWIP_DHCP                   0
#define LWIP_AUTOIP                 0
#define LWIP_IGMP                   0
#define LWIP_DNS                    0
#define IP_REASSEMBLY               0   /* TCP respects the MSS; fragments are not offloaded */
#define IP_FRAG                     0   /* also: segments larger than the MTU reach our netif,
                                           which sends them as TSO super-frames */
#define LWIP_SINGLE_NETIF           1
#define LWIP_HAVE_LOOPIF            0
#define LWIP_NETIF_LOOPBACK         0
#define LWIP_NETIF_HOSTNAME         0
#define LWIP_NETIF_TX_SINGLE_PBUF   0   /* no-copy sends chain the ring's memory */

/* ---- checksums: the adapter's hardware verifies and completes TCP checksums ---- */
#define CHECKSUM_GEN_IP             1
#define CHECKSUM_CHECK_IP           1
#define CHECKSUM_GEN_ICMP           1
#define CHECKSUM_CHECK_ICMP         1
#define CHECKSUM_GEN_TCP            0
#define CHECKSUM_CHECK_TCP          0

/* ---- TCP ---- */
#define LWIP_TCP                    1
#define SO_REUSE                    1   /* broker-owned ports are reused across TIME_WAIT */
/*
 * Random initial sequence numbers, as a real stack's. lwIP's own ISN is a counter that
 * barely moves (6510 plus timer ticks), so a connection reusing the 4-tuple of one just
 * reset (a broker-owned port reconnecting at once) began where the old one ended, and the
 * peer's late segments of the old connection looked valid to both ends of the new one.
 */
#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) LWIP_RAND()
/*
 * Every segment lwIP sends passes toe_lwip_tcp_out (toe_emu/lwip_tcp.c), which adds no
 * options: while a zero-window probe is unanswered, a segment without data carries SND.UNA,
 * not the probe's snd_nxt that a peer with a closed window must drop (its ACKs and window
 * updates were lost while the peer did not read).
 */
#include <stdint.h>
struct pbuf;
struct tcp_hdr;
struct tcp_pcb;
uint32_t *toe_lwip_tcp_out(struct pbuf *p, struct tcp_hdr *hdr, const struct tcp_pcb *pcb,
                           uint32_t *opts);
#define LWIP_HOOK_TCP_OUT_ADD_TCPOPTS(p, hdr, pcb, opts) toe_lwip_tcp_out(p, hdr, pcb, opts)
#define TCP_TTL                     64
/* Largest MSS we accept or announce; the wire MTU (netif->mtu) bounds the real one. */
#define TCP_MSS                     65495
#define LWIP_WND_SCALE              1
#define TCP_RCV_SCALE               6
#define TCP_WND                     (2U * 1024 * 1024)
#define TCP_SND_BUF                 (2U * 1024 * 1024)
/* No-copy writes take a header pbuf plus one or two data pbufs per segment. */
#define TCP_SND_QUEUELEN            16384
#define TCP_SNDLOWAT                4096
#define TCP_SNDQUEUELOWAT           (TCP_SND_QUEUELEN / 2)
#define TCP_OVERSIZE                0
#define TCP_QUEUE_OOSEQ             1
#define LWIP_TCP_SACK_OUT           1
#define LWIP_TCP_MAX_SACK_NUM       4
#define LWIP_TCP_TIMESTAMPS         0
#define TCP_WND_UPDATE_THRESHOLD    (TCP_WND / 8)
#define TCP_LISTEN_BACKLOG          0
#define LWIP_TCP_KEEPALIVE          0
/*
 * lwIP's TCP timers tick at TCP_TMR_INTERVAL (fast: delayed ACKs) and twice that (slow:
 * retransmission timeouts, counted in ticks). The stock 250/500 ms makes every RTO at least
 * half a second; on a wire with a sub-millisecond RTT that turns each lost frame into a long
 * stall. 50/100 ms keeps the minimum RTO near Linux's 200 ms.
 */
#define TCP_TMR_INTERVAL            50
#define TCP_MAXRTX                  12
#define TCP_SYNMAXRTX               6
/*
 * The stock sanity checks assume a 16-bit window (TCP_SNDLOWAT vs TCP_MSS) and would reject
 * TCP_MSS above ~15000; with window scaling the send buffer is 32 bits wide. The relations
 * that matter are asserted in toe_emu/fw.c for the MSS a jumbo wire really uses.
 */
#define LWIP_DISABLE_TCP_SANITY_CHECKS 1

/* ---- statistics: the adapter's counters ---- */
#define LWIP_STATS                  1
#define LWIP_STATS_LARGE            1
#define LWIP_STATS_DISPLAY          0
#define MIB2_STATS                  1
#define LINK_STATS                  1
#define ETHARP_STATS                1
#define IP_STATS                    1
#define ICMP_STATS                  1
#define TCP_STATS                   1
#define MEM_STATS                   0
#define MEMP_STATS                  0
#define SYS_STATS                   0

#endif
