/*
 * wire.h - the gather-write queue of a non-blocking byte stream, shared by the iSCSI
 * session's transmit queue and the NBD server's reply queue. Buffers of up to three parts
 * (header, data, trailer) leave in order, up to STO_WIRE_BATCH * STO_WIRE_PARTS iovecs
 * (STO_WIRE_BATCH buffers of three parts) per gather write; a buffer written in part keeps
 * its place and goes on from where the write stopped. No byte is copied: the parts point
 * at their owner's memory until the buffer is retired.
 */
#ifndef TOEGW_STORAGE_WIRE_H
#define TOEGW_STORAGE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define STO_WIRE_BATCH 64 /* three-part buffers per gather write */
#define STO_WIRE_PARTS 3  /* header, data, trailer */

struct sto_wire_part {
    const void *base; /* borrowed from the buffer's owner; NULL when len is 0 */
    size_t len;
};

/* Embedded in the owner's buffer; the owner recovers its buffer with offsetof. */
struct sto_wire_buf {
    struct sto_wire_buf *next;                   /* the queue's link while queued */
    struct sto_wire_part part[STO_WIRE_PARTS];   /* empty parts are skipped */
    size_t done;                                 /* bytes already written */
};

struct sto_wire;

/* A buffer has left, or never will (cleared, swept out): its owner takes it back. */
typedef void (*sto_wire_retire_fn)(struct sto_wire *q, struct sto_wire_buf *b);
/* Write iov: bytes written, -EAGAIN when nothing can be written now, or another -errno. */
typedef ssize_t (*sto_wire_write_fn)(void *arg, const struct iovec *iov, int iovcnt);
/* sto_wire_sweep's question about one buffer: STO_WIRE_KEEP, STO_WIRE_DROP or -errno. */
typedef int (*sto_wire_visit_fn)(struct sto_wire_buf *b, void *arg);

enum { STO_WIRE_KEEP = 0, STO_WIRE_DROP = 1 };

/*
 * Embedded in its owner, which recovers itself in its retire function with offsetof.
 * All zero is an empty queue.
 */
struct sto_wire {
    struct sto_wire_buf *head, *tail; /* buffers queued, held by the queue until retired */
};

static inline bool sto_wire_empty(const struct sto_wire *q)
{
    return q->head == NULL;
}

/* Queue b (its parts filled in) at the tail; the queue holds it until it retires it. */
void sto_wire_push(struct sto_wire *q, struct sto_wire_buf *b);
/*
 * Write what is queued until the queue is empty or the stream takes no more, retiring
 * each buffer as its last byte leaves. 0 (empty, or -EAGAIN from write), or the -errno
 * write failed with (the buffers not written stay queued).
 */
int sto_wire_flush(struct sto_wire *q, sto_wire_write_fn write, void *arg,
                   sto_wire_retire_fn retire);
/*
 * Ask visit about each buffer in order: STO_WIRE_DROP unlinks and retires it (only for
 * a buffer not started: done == 0), STO_WIRE_KEEP keeps it, -errno stops the walk and is
 * returned. 0 when every buffer was visited.
 */
int sto_wire_sweep(struct sto_wire *q, sto_wire_visit_fn visit, void *arg,
                   sto_wire_retire_fn retire);
/* Retire every buffer queued, written or not. */
void sto_wire_clear(struct sto_wire *q, sto_wire_retire_fn retire);

#endif
