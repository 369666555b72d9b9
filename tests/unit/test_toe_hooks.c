/*
 * test_toe_hooks.c - the correction toe_emu/lwip_tcp.c makes to lwIP's outgoing segments:
 * while a zero-window probe is unanswered, a segment without data (ACK, window update,
 * reset) carries SND.UNA instead of the probe's snd_nxt; nothing else is ever changed.
 * The wire behaviour is proved by tests/integration/test_toe_flood.sh against Linux.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/tcp.h"

/* toe_lwip_tcp_out is declared by toe_emu/lwipopts.h, which lwIP's headers include. */

#define UNA 1000u

static struct tcp_pcb pcb;
static struct {
    struct tcp_hdr h;
    u8_t data[4];
} seg;
static struct pbuf p;

/* lwIP in persist state right after a probe the peer has not acknowledged. */
static void probing(void)
{
    memset(&pcb, 0, sizeof(pcb));
    pcb.state = ESTABLISHED;
    pcb.persist_backoff = 2;
    pcb.lastack = UNA;
    pcb.snd_nxt = UNA + 1;
}

/* A segment as lwIP hands it to the hook: header built, `datalen` bytes of payload. */
static void segment(u16_t flags, u16_t datalen)
{
    memset(&seg, 0, sizeof(seg));
    TCPH_HDRLEN_FLAGS_SET(&seg.h, 5, flags);
    seg.h.seqno = lwip_htonl(pcb.snd_nxt);
    memset(&p, 0, sizeof(p));
    p.payload = &seg;
    p.len = p.tot_len = (u16_t)(TCP_HLEN + datalen);
}

static u32_t out_seq(void)
{
    u32_t *opts = (u32_t *)(void *)(&seg.h + 1);

    cr_assert_eq(toe_lwip_tcp_out(&p, &seg.h, &pcb, opts), opts, "no options are added");
    return lwip_ntohl(seg.h.seqno);
}

TestSuite(toe_hooks, .init = probing);

Test(toe_hooks, ack_during_unanswered_probe_carries_snd_una)
{
    segment(TCP_ACK, 0);
    cr_assert_eq(out_seq(), UNA);
}

Test(toe_hooks, reset_during_unanswered_probe_carries_snd_una)
{
    segment(TCP_RST | TCP_ACK, 0);
    cr_assert_eq(out_seq(), UNA, "the peer takes a reset only at its RCV.NXT");
}

Test(toe_hooks, segment_with_data_is_unchanged)
{
    segment(TCP_ACK | TCP_PSH, 1);
    cr_assert_eq(out_seq(), UNA + 1, "a segment with data keeps its own sequence number");
}

Test(toe_hooks, fin_and_syn_are_unchanged)
{
    segment(TCP_ACK | TCP_FIN, 0);
    cr_assert_eq(out_seq(), UNA + 1);
    segment(TCP_SYN, 0);
    cr_assert_eq(out_seq(), UNA + 1);
}

Test(toe_hooks, ack_outside_persist_is_unchanged)
{
    pcb.persist_backoff = 0;       /* data in flight: snd_nxt is what the peer may hold */
    segment(TCP_ACK, 0);
    cr_assert_eq(out_seq(), UNA + 1);
}

Test(toe_hooks, ack_after_the_probe_was_acknowledged_is_unchanged)
{
    pcb.lastack = UNA + 1;         /* the peer took the byte */
    segment(TCP_ACK, 0);
    cr_assert_eq(out_seq(), UNA + 1);
}

Test(toe_hooks, ack_with_data_in_flight_is_unchanged)
{
    struct tcp_seg inflight;

    memset(&inflight, 0, sizeof(inflight));
    pcb.unacked = &inflight;
    segment(TCP_ACK, 0);
    cr_assert_eq(out_seq(), UNA + 1);
}

Test(toe_hooks, reset_without_a_connection_is_unchanged)
{
    segment(TCP_RST | TCP_ACK, 0);
    u32_t *opts = (u32_t *)(void *)(&seg.h + 1);
    cr_assert_eq(toe_lwip_tcp_out(&p, &seg.h, NULL, opts), opts);
    cr_assert_eq(lwip_ntohl(seg.h.seqno), UNA + 1);
}

Test(toe_hooks, sequence_numbers_wrap)
{
    pcb.lastack = 0xffffffffu;
    pcb.snd_nxt = 0;               /* the probe's byte was the last before the wrap */
    segment(TCP_ACK, 0);
    cr_assert_eq(out_seq(), 0xffffffffu);
}
