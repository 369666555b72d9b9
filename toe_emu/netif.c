/*
 * netif.c - the adapter's Ethernet port: our own lwIP netif driver on the TAP wire.
 *
 * Receive: frames are read in batches straight into buffers that lwIP then holds as custom
 * pbufs (no copy); the buffer returns to a free list when lwIP frees the pbuf.
 * Send: segments leave from lwIP's pbufs (whose data points into the connection's send
 * ring) with one writev each; consecutive segments of one flow that lwIP emits in a burst
 * are merged into one TSO super-frame that the kernel takes whole (its GRO path), which is
 * where the per-frame cost goes away.
 *
 * The emulated wire sits between the two: while faults are set or a capture runs, every
 * frame crosses it one wire frame at a time (super-frames split, checksums completed) so
 * that drops, duplicates, reordering, corruption and the capture are exact per frame.
 * Otherwise frames take the fast path above and checksums stay partial: the "hardware" on
 * each end would verify them, and nothing could have changed them in between.
 */
#include "toe_emu/toe_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "netif/ethernet.h"

#define RXBUF_DATA  (TOE_VNET_HLEN + TOE_FRAME_MAX)
#define RXFREE_MAX  256         /* spare receive buffers kept (64 KiB each) */
#define HOLD_MS     2           /* a reordered frame waits at most this long for the next */
#define TX_IOV_MAX  1024

struct toe_rxbuf {
    struct pbuf_custom pc;      /* first: lwIP's pbuf pointer is this buffer's address */
    struct toe_dev *dev;        /* borrowed */
    struct toe_rxbuf *next;     /* free list */
    uint8_t data[RXBUF_DATA];   /* virtio-net header + frame */
};

static void rxbuf_put(struct toe_dev *dev, struct toe_rxbuf *b)
{
    if (dev->rxfree_n >= RXFREE_MAX) {
        free(b);
        return;
    }
    b->next = dev->rxfree;
    dev->rxfree = b;
    dev->rxfree_n++;
}

static void rxbuf_release(struct pbuf *p)
{
    struct toe_rxbuf *b = (struct toe_rxbuf *)p;

    rxbuf_put(b->dev, b);
}

void toe_netif_rxbuf_free_raw(struct pbuf *p)
{
    while (p) {
        struct pbuf *next = p->next;

        if (--p->ref > 0)
            return;
        free(p);                /* a struct toe_rxbuf, which starts with its pbuf */
        p = next;
    }
}

static struct toe_rxbuf *rxbuf_get(struct toe_dev *dev)
{
    struct toe_rxbuf *b = dev->rxfree;

    if (b) {
        dev->rxfree = b->next;
        dev->rxfree_n--;
    } else {
        b = malloc(sizeof(*b));
        if (!b)
            return NULL;
        b->dev = dev;
    }
    b->pc.custom_free_function = rxbuf_release;
    return b;
}

bool toe_netif_slow_path(const struct toe_dev *dev)
{
    return dev->fault[0].active || dev->fault[1].active || dev->cap != NULL;
}

static struct toe_dir_counters *dir_cnt(struct toe_dev *dev, int dir)
{
    return dir ? &dev->cnt.rx : &dev->cnt.tx;
}

static void tap_writev(struct toe_dev *dev, struct iovec *iov, int n)
{
    ssize_t w;

    do {
        w = writev(dev->tap_fd, iov, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        dev->cnt.tap_errors++;
}

/* A complete frame with final checksums onto the TAP. */
static void tap_write_frame(struct toe_dev *dev, const uint8_t *f, size_t len)
{
    uint8_t vh[TOE_VNET_HLEN] = { 0 };
    struct iovec iov[2] = {
        { .iov_base = vh, .iov_len = sizeof(vh) },
        { .iov_base = (void *)f, .iov_len = len },
    };

    if (dev->vnet)
        tap_writev(dev, iov, 2);
    else
        tap_writev(dev, iov + 1, 1);
}

/* Hand a frame to lwIP (which takes `p`); `f` and `fi` describe it. */
static void input_frame(struct toe_dev *dev, struct pbuf *p, const uint8_t *f,
                        const struct toe_frame_info *fi)
{
    bool hint = toe_frame_is_sack_ack(f, fi);
    uint16_t lport = hint ? toe_get16(f + fi->l4 + 2) : 0;
    uint32_t ack = hint ? toe_get32(f + fi->l4 + 8) : 0;

    if (dev->netif.input(p, &dev->netif) != ERR_OK)
        pbuf_free(p);
    if (hint)
        toe_conn_sack_hint(dev, lport, ack);
}

/* Host-to-adapter frame off the wire: the adapter's checksum check, then lwIP (copied). */
static void rx_input_copy(struct toe_dev *dev, const uint8_t *f, size_t len)
{
    struct toe_frame_info fi;
    struct pbuf *p;

    if (toe_frame_parse(f, len, &fi) < 0 ||
        (fi.ethertype == TOE_ETHERTYPE_IPV4 && !toe_frame_ip_csum_ok(f, &fi)) ||
        (fi.tcp && !toe_frame_tcp_csum_ok(f, &fi)) || len > 0xffff) {
        dev->cnt.rx.drop_bad++;
        return;
    }
    p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
    if (!p) {
        dev->cnt.rx.drop_bad++;
        return;
    }
    memcpy(p->payload, f, len);
    input_frame(dev, p, f, &fi);
}

/* A frame arrives at the far end of the wire: count it, capture it, hand it over. */
static void deliver(struct toe_dev *dev, int dir, const uint8_t *f, size_t len)
{
    struct toe_dir_counters *dc = dir_cnt(dev, dir);

    dc->frames++;
    dc->bytes += len;
    if (dev->cap) {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        toe_cap_frame(dev->cap, &tv, f, len);
        dev->cnt.capture_frames++;
    }
    if (dir == 0)
        tap_write_frame(dev, f, len);
    else
        rx_input_copy(dev, f, len);
}

static void release_held(struct toe_dev *dev, int dir)
{
    struct toe_held *h = &dev->held[dir];
    uint8_t *f = h->frame;

    h->frame = NULL;
    deliver(dev, dir, f, h->len);
    free(f);
}

/* One wire frame (final checksums) crosses the emulated wire in direction `dir`. */
static void wire(struct toe_dev *dev, int dir, uint8_t *f, size_t len)
{
    struct toe_dir_counters *dc = dir_cnt(dev, dir);
    struct toe_held *h = &dev->held[dir];
    size_t off = 0;
    uint8_t x = 0;
    unsigned act = toe_fault_decide(&dev->fault[dir], len, &off, &x);

    if (act & TOE_FAULT_DROP) {
        dc->fault_drop++;
        return;
    }
    if (act & TOE_FAULT_CORRUPT) {
        f[off] ^= x;
        dc->fault_corrupt++;
    }
    if ((act & TOE_FAULT_REORDER) && !h->frame) {
        h->frame = malloc(len);
        if (h->frame) {
            memcpy(h->frame, f, len);
            h->len = len;
            h->deadline = sys_now() + HOLD_MS;
            dc->fault_reorder++;
            return;
        }
    }
    deliver(dev, dir, f, len);
    if (act & TOE_FAULT_DUP) {
        dc->fault_dup++;
        deliver(dev, dir, f, len);
    }
    if (h->frame)
        release_held(dev, dir);
}

static int rx_segment_emit(void *arg, uint8_t *frame, size_t len)
{
    wire(arg, 1, frame, len);
    return 0;
}

/* Host-to-adapter frame while the wire is emulated frame by frame. */
static void rx_slow(struct toe_dev *dev, uint8_t *f, size_t len,
                    const struct toe_frame_info *fi, const struct toe_vnet *v)
{
    if ((v->gso_type & ~TOE_VNET_GSO_ECN) != TOE_VNET_GSO_NONE || len > 0xffff) {
        size_t mss = v->gso_size ? v->gso_size : dev->cfg.mtu - (fi->payload - fi->l3);

        toe_frame_segment(f, fi, mss, dev->scratch_rx, rx_segment_emit, dev);
        return;
    }
    if (fi->tcp && (v->flags & TOE_VNET_F_NEEDS_CSUM))
        toe_frame_tcp_csum_fill(f, fi);
    wire(dev, 1, f, len);
}

static void rx_frame(struct toe_dev *dev, struct toe_rxbuf *b, size_t n)
{
    size_t vl = dev->vnet ? TOE_VNET_HLEN : 0;
    struct toe_vnet v = { 0 };
    struct toe_frame_info fi;
    uint8_t gso;

    if (n < vl)
        goto bad;
    if (vl)
        toe_vnet_get(b->data, &v);

    uint8_t *f = b->data + vl;
    size_t len = n - vl;
    if (!atomic_load_explicit(&dev->link_up, memory_order_relaxed)) {
        dev->cnt.rx.drop_link_down++;
        goto done;
    }
    if (toe_frame_parse(f, len, &fi) < 0)
        goto bad;
    gso = v.gso_type & (uint8_t)~TOE_VNET_GSO_ECN;
    if (gso != TOE_VNET_GSO_NONE && (gso != TOE_VNET_GSO_TCPV4 || !fi.tcp || !v.gso_size))
        goto bad;
    if (toe_netif_slow_path(dev) || len > 0xffff) {
        if (fi.tcp || gso == TOE_VNET_GSO_NONE)
            rx_slow(dev, f, len, &fi, &v);
        goto done;
    }
    if (fi.tcp && !(v.flags & (TOE_VNET_F_NEEDS_CSUM | TOE_VNET_F_DATA_VALID)) &&
        !toe_frame_tcp_csum_ok(f, &fi))
        goto bad;

    size_t segs = 1;
    if (gso) {
        size_t pl = fi.ip_end - fi.payload;

        segs = pl > v.gso_size ? (pl + v.gso_size - 1) / v.gso_size : 1;
    }
    dev->cnt.rx.frames += segs;
    dev->cnt.rx.bytes += len + (segs - 1) * fi.payload;

    struct pbuf *p = pbuf_alloced_custom(PBUF_RAW, (u16_t)len, PBUF_REF, &b->pc, f,
                                         (u16_t)len);
    if (!p)
        goto bad;
    input_frame(dev, p, f, &fi);
    return;

bad:
    dev->cnt.rx.drop_bad++;
done:
    rxbuf_put(dev, b);
}

static void rx_batch(struct toe_dev *dev)
{
    for (int i = 0; i < TOE_RX_BATCH; i++) {
        struct toe_rxbuf *b = rxbuf_get(dev);
        ssize_t n;

        if (!b)
            return;
        /* Anything we send next must not overtake what we already merged. */
        toe_netif_flush(dev);
        n = read(dev->tap_fd, b->data, sizeof(b->data));
        if (n <= 0) {
            rxbuf_put(dev, b);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN)
                dev->cnt.tap_errors++;
            return;
        }
        rx_frame(dev, b, (size_t)n);
    }
}

/* A batch of frames off the TAP; consumers with new data are signalled once, after it. */
void toe_netif_rx(struct toe_dev *dev)
{
    dev->rx_batching = true;
    rx_batch(dev);
    toe_conn_rx_flush(dev);
}

/* ---- send ---------------------------------------------------------------------------- */

static bool same_flow(const uint8_t *a, const uint8_t *b, size_t l3, size_t l4)
{
    return memcmp(a, b, 12) == 0 && memcmp(a + l3 + 12, b + l3 + 12, 8) == 0 &&
           memcmp(a + l4, b + l4, 4) == 0;
}

static bool merge_fits(const struct toe_merge *m, const struct pbuf *p,
                       const struct toe_frame_info *fi, size_t plen)
{
    const uint8_t *h = p->payload;

    return m->n < TOE_MERGE_MAX && !m->short_tail && plen <= m->seg &&
           fi->payload == m->hlen && fi->l4 == m->l4 && fi->seq == m->next_seq &&
           m->hlen - m->l3 + m->payload + plen <= 0xffff &&
           m->niov + pbuf_clen(p) + 2 <= TX_IOV_MAX &&
           same_flow(h, m->hdr, m->l3, m->l4);
}

static void merge_add(struct toe_merge *m, struct pbuf *p, const struct toe_frame_info *fi,
                      size_t plen)
{
    const uint8_t *h = p->payload;

    pbuf_ref(p);
    if (m->n == 0) {
        memcpy(m->hdr, h, fi->payload);
        m->hlen = fi->payload;
        m->l3 = fi->l3;
        m->l4 = fi->l4;
        m->seg = plen;
        m->payload = 0;
        m->niov = 0;
        m->short_tail = false;
    } else {
        /* The newest acknowledgment, window and push flag ride on the super-frame. */
        memcpy(m->hdr + m->l4 + 8, h + m->l4 + 8, 4);
        memcpy(m->hdr + m->l4 + 14, h + m->l4 + 14, 2);
        m->hdr[m->l4 + 13] |= h[m->l4 + 13] & TOE_TCP_PSH;
        if (plen < m->seg)
            m->short_tail = true;
    }
    m->p[m->n++] = p;
    m->payload += plen;
    m->next_seq = fi->seq + (uint32_t)plen;
    m->niov += pbuf_clen(p);
}

void toe_netif_flush(struct toe_dev *dev)
{
    struct toe_merge *m = &dev->merge;
    struct iovec iov[TX_IOV_MAX];
    uint8_t vh[TOE_VNET_HLEN];
    int n = 0;

    if (m->n == 0)
        return;

    struct toe_frame_info fi = {
        .tcp = true, .l3 = m->l3, .l4 = m->l4, .payload = m->hlen,
        .ip_end = m->hlen + m->payload,
    };
    struct toe_vnet v = {
        .flags = TOE_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)m->l4, .csum_offset = 16,
    };
    toe_put16(m->hdr + m->l3 + 2, (uint16_t)(fi.ip_end - m->l3));
    toe_frame_ip_csum_fill(m->hdr, &fi);
    toe_frame_tcp_csum_partial(m->hdr, &fi);
    if (m->n > 1) {
        v.gso_type = TOE_VNET_GSO_TCPV4;
        v.gso_size = (uint16_t)m->seg;
        v.hdr_len = (uint16_t)m->hlen;
    }
    toe_vnet_put(vh, &v);
    iov[n++] = (struct iovec){ .iov_base = vh, .iov_len = sizeof(vh) };
    iov[n++] = (struct iovec){ .iov_base = m->hdr, .iov_len = m->hlen };
    for (int i = 0; i < m->n; i++) {
        size_t skip = m->hlen;

        for (struct pbuf *q = m->p[i]; q; q = q->next) {
            if (q->len > skip)
                iov[n++] = (struct iovec){ .iov_base = (uint8_t *)q->payload + skip,
                                           .iov_len = q->len - skip };
            skip = skip > q->len ? skip - q->len : 0;
        }
    }
    tap_writev(dev, iov, n);
    dev->cnt.tx.frames += (uint64_t)m->n;
    dev->cnt.tx.bytes += (uint64_t)m->n * m->hlen + m->payload;
    for (int i = 0; i < m->n; i++)
        pbuf_free(m->p[i]);
    m->n = 0;
}

/* A frame lwIP wants sent, fast path: partial checksum, merged into super-frames. */
static void tx_fast(struct toe_dev *dev, struct pbuf *p)
{
    struct toe_merge *m = &dev->merge;
    struct toe_frame_info fi;
    uint8_t vh[TOE_VNET_HLEN] = { 0 };
    struct iovec iov[TX_IOV_MAX];
    int n = 0;

    /* lwIP builds all headers in the first pbuf; toe_frame_parse reads only headers. */
    if (toe_frame_parse(p->payload, p->tot_len, &fi) == 0 && fi.tcp && fi.payload <= p->len &&
        fi.ip_end == p->tot_len) {
        size_t plen = fi.ip_end - fi.payload;
        bool mergeable = plen > 0 && !(fi.tcp_flags & (TOE_TCP_SYN | TOE_TCP_FIN |
                                                      TOE_TCP_RST | TOE_TCP_URG));

        if (mergeable && m->n && merge_fits(m, p, &fi, plen)) {
            merge_add(m, p, &fi, plen);
            return;
        }
        toe_netif_flush(dev);
        if (mergeable) {
            merge_add(m, p, &fi, plen);
            return;
        }
        struct toe_vnet v = {
            .flags = TOE_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)fi.l4, .csum_offset = 16,
        };
        toe_frame_tcp_csum_partial(p->payload, &fi);
        toe_vnet_put(vh, &v);
    } else {
        toe_netif_flush(dev);
    }
    iov[n++] = (struct iovec){ .iov_base = vh, .iov_len = sizeof(vh) };
    for (struct pbuf *q = p; q && n < TX_IOV_MAX; q = q->next)
        iov[n++] = (struct iovec){ .iov_base = q->payload, .iov_len = q->len };
    tap_writev(dev, iov, n);
    dev->cnt.tx.frames++;
    dev->cnt.tx.bytes += p->tot_len;
}

static err_t linkoutput(struct netif *netif, struct pbuf *p)
{
    struct toe_dev *dev = netif->state;

    if (!atomic_load_explicit(&dev->link_up, memory_order_relaxed)) {
        dev->cnt.tx.drop_link_down++;
        return ERR_OK;             /* the wire lost it */
    }
    if (dev->offload && !toe_netif_slow_path(dev)) {
        tx_fast(dev, p);
        return ERR_OK;
    }

    /* One flat frame with final checksums, then the emulated wire. */
    struct toe_frame_info fi;
    size_t len = p->tot_len;

    toe_netif_flush(dev);
    pbuf_copy_partial(p, dev->scratch_tx, (u16_t)len, 0);
    if (toe_frame_parse(dev->scratch_tx, len, &fi) == 0 && fi.tcp)
        toe_frame_tcp_csum_fill(dev->scratch_tx, &fi);
    if (toe_netif_slow_path(dev))
        wire(dev, 0, dev->scratch_tx, len);
    else
        deliver(dev, 0, dev->scratch_tx, len);
    return ERR_OK;
}

err_t toe_netif_init(struct netif *netif)
{
    struct toe_dev *dev = netif->state;

    netif->name[0] = 't';
    netif->name[1] = 'e';
    netif->output = etharp_output;
    netif->linkoutput = linkoutput;
    netif->mtu = (u16_t)dev->cfg.mtu;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, dev->cfg.mac, ETH_HWADDR_LEN);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

uint32_t toe_netif_next_deadline(struct toe_dev *dev, uint32_t now, uint32_t sleep_ms)
{
    for (int dir = 0; dir < 2; dir++) {
        const struct toe_held *h = &dev->held[dir];

        if (h->frame) {
            int32_t left = (int32_t)(h->deadline - now);
            uint32_t ms = left > 0 ? (uint32_t)left : 0;

            if (ms < sleep_ms)
                sleep_ms = ms;
        }
    }
    return sleep_ms;
}

void toe_netif_timers(struct toe_dev *dev)
{
    uint32_t now = sys_now();

    for (int dir = 0; dir < 2; dir++) {
        struct toe_held *h = &dev->held[dir];

        if (h->frame && (int32_t)(now - h->deadline) >= 0)
            release_held(dev, dir);
    }
}

void toe_netif_free(struct toe_dev *dev)
{
    struct toe_merge *m = &dev->merge;

    for (int i = 0; i < m->n; i++)
        pbuf_free(m->p[i]);
    m->n = 0;
    for (int dir = 0; dir < 2; dir++) {
        free(dev->held[dir].frame);
        dev->held[dir].frame = NULL;
    }
    while (dev->rxfree) {
        struct toe_rxbuf *b = dev->rxfree;

        dev->rxfree = b->next;
        free(b);
    }
    dev->rxfree_n = 0;
}
