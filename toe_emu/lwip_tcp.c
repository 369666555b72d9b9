/*
 * lwip_tcp.c - the one file of the TOE that uses lwIP's private TCP state
 * (lwip/priv/tcp_priv.h); every other file of toe_emu/ keeps to lwIP's public API and hooks.
 *
 * Why private state at all: lwIP's public API has no way to list or abort every pcb (the
 * connection table shows TIME_WAIT leftovers, the adapter's shutdown and a port's reuse must
 * end them), to tell which bytes of a no-copy tcp_write lwIP still references (the send ring
 * frees space only behind them), to retransmit on a SACK loss signal lwIP does not count, to
 * offer data that recv refused once again, or to name its timer tick. Those few things are
 * functions here (declared in toe_int.h), so that an lwIP upgrade has one file to check.
 *
 * Firmware thread only, like the rest of lwIP.
 *
 * The hook: a window probe must not put our pure ACKs outside the peer's window.
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

/* ---------------------------------------------------------------- private TCP state */

bool toe_tcp_seq_lt(uint32_t a, uint32_t b)
{
    return TCP_SEQ_LT(a, b);
}

void toe_tcp_seed_rtt(struct tcp_pcb *pcb, unsigned ms)
{
    pcb->sa = 0;
    pcb->sv = (s16_t)(ms / TCP_SLOW_INTERVAL);
    pcb->rto = pcb->sv;
}

uint32_t toe_tcp_queued_behind(const struct tcp_pcb *pcb)
{
    const struct tcp_seg *segs[2] = { pcb->unacked, pcb->unsent };
    uint32_t behind = 0;

    for (int i = 0; i < 2; i++) {
        if (!segs[i])
            continue;
        uint32_t b = pcb->snd_lbb - lwip_ntohl(segs[i]->tcphdr->seqno);

        if (b > behind)
            behind = b;
    }
    return behind;
}

void toe_tcp_rexmit_next(struct tcp_pcb *pcb)
{
    if (tcp_rexmit(pcb) == ERR_OK)
        tcp_output(pcb);
}

void toe_tcp_rexmit_fast(struct tcp_pcb *pcb)
{
    tcp_rexmit_fast(pcb);
    tcp_output(pcb);
}

int toe_tcp_for_each(int (*fn)(struct tcp_pcb *pcb, void *arg), void *arg)
{
    struct tcp_pcb *const *lists[] = { &tcp_active_pcbs, &tcp_tw_pcbs };

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        for (struct tcp_pcb *p = *lists[i], *next; p; p = next) {
            next = p->next;
            int rc = fn(p, arg);

            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

bool toe_tcp_redeliver_refused(struct tcp_pcb *pcb)
{
    return tcp_process_refused_data(pcb) != ERR_ABRT;
}

void toe_tcp_abort_all(void)
{
    while (tcp_active_pcbs)
        tcp_abort(tcp_active_pcbs);
    while (tcp_tw_pcbs)
        tcp_abort(tcp_tw_pcbs);
    while (tcp_bound_pcbs)
        tcp_abort(tcp_bound_pcbs);
}
