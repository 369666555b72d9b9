/*
 * tcp_hooks.c - corrections to lwIP's TCP, made at its hook points (lwipopts.h names them).
 * Firmware thread only: lwIP calls these while it builds a segment.
 *
 * A window probe must not put our pure ACKs outside the peer's window.
 * When the peer's receive window is zero and we have data queued, lwIP's persist timer
 * sends one byte of that data as a probe (RFC 9293 3.8.6.1) and counts the byte as sent:
 * snd_nxt moves to SND.UNA + 1 whether or not the peer took it. Every segment without data
 * that lwIP builds afterwards - the ACKs of what the peer sends us, our window updates, a
 * reset - carries snd_nxt as its sequence number. A peer whose window is still zero has
 * RCV.NXT = SND.UNA and, as RFC 9293 3.10.7.4 requires, accepts a segment with no data only
 * when its sequence number is exactly RCV.NXT: Linux drops each of them and answers with a
 * duplicate ACK. So while the peer stopped reading, it never learnt that we received its
 * data (it retransmitted with backoff until it gave up) nor that our window reopened.
 *
 * BSD keeps a probe's byte out of snd_nxt (only snd_max covers it), Linux probes with an old
 * sequence number and no data; lwIP has neither. Its state stays as it is (the peer may yet
 * acknowledge the byte, and lwIP's ACK processing expects snd_nxt to include it); only the
 * header of a segment without data gets SND.UNA while that probe byte is unacknowledged.
 */
#include "toe_emu/toe_int.h"

#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/tcp.h"

/*
 * True while the only sequence space beyond SND.UNA is an unanswered window probe: lwIP is
 * in persist state (it never probes otherwise), nothing is in flight, snd_nxt is ahead.
 */
static bool probe_outstanding(const struct tcp_pcb *pcb)
{
    return pcb->state >= ESTABLISHED && pcb->persist_backoff > 0 && pcb->unacked == NULL &&
           TCP_SEQ_GT(pcb->snd_nxt, pcb->lastack);
}

/*
 * LWIP_HOOK_TCP_OUT_ADD_TCPOPTS: called for every segment lwIP sends, its TCP header built
 * and p->payload at that header. Adds no options (returns `opts` as it came).
 */
u32_t *toe_lwip_tcp_out(struct pbuf *p, struct tcp_hdr *hdr, const struct tcp_pcb *pcb,
                        u32_t *opts)
{
    u8_t flags = TCPH_FLAGS(hdr);

    /* pcb is NULL for a reset answering a segment of no connection; LISTEN is not used. */
    if (!pcb || pcb->state == LISTEN || (flags & (TCP_SYN | TCP_FIN)))
        return opts;
    if (p->tot_len != TCPH_HDRLEN_BYTES(hdr) || !probe_outstanding(pcb))
        return opts;               /* carries data, or nothing to correct */
    hdr->seqno = lwip_htonl(pcb->lastack);
    return opts;
}
