/*
 * conn_tx.c - the firmware's half of a connection's sending: what the consumer offered
 * (txq.h: the send ring and buffers by reference) handed to lwIP without a copy, released
 * as the peer acknowledges it, and given up when lwIP lets go of the pcb.
 */
#include "toe_emu/toe_int.h"

/*
 * lwIP let go of the pcb, and with it of every segment: what the consumer offered is
 * released unsent. A super-frame still being gathered may point into it, so it goes out
 * first.
 */
void toe_conn_tx_abandon(struct toe_conn *c)
{
    toe_netif_flush(c->dev);
    toe_txq_abandon(&c->tx);
}

/*
 * Free send ring space, and give back buffers sent by reference, up to the first byte a
 * queued segment still references.
 */
void toe_conn_tx_reclaim(struct toe_conn *c)
{
    uint32_t behind = toe_tcp_queued_behind(c->pcb);

    if (c->fin_queued && behind)
        behind--;                  /* the FIN occupies a sequence number, no ring byte */
    if (toe_txq_release(&c->tx, c->tx.queued - behind))
        toe_conn_notify(c, &c->tx_armed);
}

/* Hand everything the consumer offered to lwIP, as far as lwIP takes it. */
void toe_conn_tx_pump(struct toe_conn *c)
{
    struct tcp_pcb *pcb = c->pcb;
    bool wrote = false;

    if (!pcb || c->fin_queued || atomic_load(&c->state) != TOE_CS_ESTABLISHED)
        return;
    for (;;) {
        const void *p;
        size_t n = toe_txq_next(&c->tx, &p);
        size_t room = tcp_sndbuf(pcb);

        if (n == 0 || room == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 8)
            break;
        if (n > room)
            n = room;
        if (n > 0xffff)
            n = 0xffff;
        u8_t flags = toe_txq_unsent(&c->tx) > n ? TCP_WRITE_FLAG_MORE : 0;
        err_t e = tcp_write(pcb, p, (u16_t)n, flags);
        if (e == ERR_MEM)
            break;
        if (e != ERR_OK) {
            c->pump_err = true;    /* the caller has it acted on outside lwIP's callbacks */
            return;
        }
        toe_txq_sent(&c->tx, n);
        wrote = true;
    }
    if (wrote)
        tcp_output(pcb);
}
