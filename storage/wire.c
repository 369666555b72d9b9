/*
 * wire.c - the gather-write queue (wire.h): batches of iovecs built from the queued
 * buffers' parts, one gather write per batch, and the retirement of the buffers a write
 * finished, including one written in part.
 */
#include "storage/wire.h"

#include <errno.h>
#include <stdint.h>

void sto_wire_push(struct sto_wire *q, struct sto_wire_buf *b)
{
    b->next = NULL;
    b->done = 0;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
}

/* The iovecs of up to STO_WIRE_BATCH buffers from the head on, skipping what has left. */
static int wire_gather(const struct sto_wire *q, struct iovec *iov)
{
    int n = 0;

    for (struct sto_wire_buf *b = q->head; b && n <= (STO_WIRE_BATCH - 1) * STO_WIRE_PARTS;
         b = b->next) {
        size_t skip = b->done;
        for (int i = 0; i < STO_WIRE_PARTS; i++) {
            const struct sto_wire_part *p = &b->part[i];
            if (skip >= p->len) {
                skip -= p->len;
                continue;
            }
            iov[n].iov_base = (uint8_t *)p->base + skip;
            iov[n].iov_len = p->len - skip;
            skip = 0;
            n++;
        }
    }
    return n;
}

static size_t wire_len(const struct sto_wire_buf *b)
{
    size_t len = 0;

    for (int i = 0; i < STO_WIRE_PARTS; i++)
        len += b->part[i].len;
    return len;
}

/* w bytes have left: retire the buffers they finished, advance the one they cut. */
static void wire_written(struct sto_wire *q, size_t w, sto_wire_retire_fn retire)
{
    while (w > 0 && q->head) {
        struct sto_wire_buf *b = q->head;
        size_t left = wire_len(b) - b->done;
        if (w < left) {
            b->done += w;
            break;
        }
        w -= left;
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        retire(q, b);
    }
}

int sto_wire_flush(struct sto_wire *q, sto_wire_write_fn write, void *arg,
                   sto_wire_retire_fn retire)
{
    struct iovec iov[STO_WIRE_BATCH * STO_WIRE_PARTS];

    while (q->head) {
        int n = wire_gather(q, iov);
        ssize_t w = write(arg, iov, n);
        if (w == -EAGAIN)
            return 0;
        if (w < 0)
            return (int)w;
        wire_written(q, (size_t)w, retire);
    }
    return 0;
}

int sto_wire_sweep(struct sto_wire *q, sto_wire_visit_fn visit, void *arg,
                   sto_wire_retire_fn retire)
{
    struct sto_wire_buf **pp = &q->head, *b;
    int ret = 0;

    q->tail = NULL;
    while ((b = *pp)) {
        ret = visit(b, arg);
        if (ret < 0)
            break;
        if (ret == STO_WIRE_DROP && b->done == 0) {
            *pp = b->next;
            retire(q, b);
            continue;
        }
        q->tail = b;
        pp = &b->next;
    }
    if (ret < 0) {
        for (; *pp; pp = &(*pp)->next)
            q->tail = *pp;
        return ret;
    }
    return 0;
}

void sto_wire_clear(struct sto_wire *q, sto_wire_retire_fn retire)
{
    struct sto_wire_buf *b, *next;

    for (b = q->head; b; b = next) {
        next = b->next;
        retire(q, b);
    }
    q->head = q->tail = NULL;
}
