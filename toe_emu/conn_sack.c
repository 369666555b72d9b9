/*
 * conn_sack.c - loss recovery the adapter adds to lwIP's: fast retransmit driven by SACK
 * (RFC 6675's loss signal) and NewReno's partial ACKs (RFC 6582). Firmware thread only.
 */
#include "toe_emu/toe_int.h"

/*
 * A pure ACK whose SACK blocks report data above a hole arrived for local port `lport`, and
 * lwIP has processed it. lwIP counts a duplicate ACK only if the advertised window did not
 * change, and Linux updates its window in nearly every ACK; lwIP also has no NewReno partial
 * ACK rule. So after most losses it would wait for the retransmission timeout. Here three
 * such ACKs start lwIP's own fast retransmit (RFC 6675's loss signal), and within that
 * recovery an ACK that advances but still reports a hole resends the next missing segment
 * at once (RFC 6582).
 */
void toe_conn_sack_hint(struct toe_dev *dev, uint16_t lport, uint32_t ackno)
{
    for (struct toe_conn *c = dev->conns; c; c = c->next) {
        struct tcp_pcb *pcb = c->pcb;

        if (!pcb || pcb->local_port != lport)
            continue;
        if (pcb->lastack != ackno || !pcb->unacked) {
            c->sack_dups = 0;      /* stale, or nothing outstanding */
            return;
        }
        if (c->in_recovery && toe_tcp_seq_lt(ackno, c->recover)) {
            if (ackno != c->sack_ack) {
                c->sack_ack = ackno;
                toe_tcp_rexmit_next(pcb);
            }
            return;
        }
        c->in_recovery = false;
        if (ackno != c->sack_ack) {
            c->sack_ack = ackno;
            c->sack_dups = 1;
            return;
        }
        if (++c->sack_dups >= 3) {
            /* A loss episode, whether lwIP noticed it (TF_INFR) or we start the recovery. */
            c->sack_dups = 0;
            c->in_recovery = true;
            c->recover = pcb->snd_nxt;
            if (!(pcb->flags & TF_INFR))
                toe_tcp_rexmit_fast(pcb);
        }
        return;
    }
}
