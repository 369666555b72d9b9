/*
 * ring.c - single-producer single-consumer byte ring (see ring.h).
 */
#include "toe_emu/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int toe_ring_init(struct toe_ring *r, size_t size)
{
    size_t sz = 4096;

    while (sz < size)
        sz <<= 1;
    /* mmap: pages are only committed once traffic touches them (idle conns stay cheap). */
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    r->buf = p;
    r->size = sz;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

void *toe_ring_init_with_slots(struct toe_ring *r, size_t size, size_t n, size_t slot_size)
{
    void *slots = calloc(n, slot_size);

    if (slots && toe_ring_init(r, size) < 0) {
        free(slots);
        slots = NULL;
    }
    return slots;
}

void toe_ring_fini(struct toe_ring *r)
{
    if (r->buf)
        munmap(r->buf, r->size);
    r->buf = NULL;
    r->size = 0;
}

void toe_ring_trim(struct toe_ring *r)
{
    if (r->buf)
        madvise(r->buf, r->size, MADV_DONTNEED);
}

size_t toe_ring_used(const struct toe_ring *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);

    return (size_t)(h - t);
}

size_t toe_ring_space(const struct toe_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

    return r->size - (size_t)(h - t);
}

void toe_ring_copy_in(struct toe_ring *r, uint64_t at, const void *src, size_t len)
{
    size_t off = (size_t)at & (r->size - 1);
    size_t first = r->size - off;

    if (first >= len) {
        memcpy(r->buf + off, src, len);
    } else {
        memcpy(r->buf + off, src, first);
        memcpy(r->buf, (const uint8_t *)src + first, len - first);
    }
}

void toe_ring_publish(struct toe_ring *r, size_t n)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);

    atomic_store_explicit(&r->head, h + n, memory_order_release);
}

size_t toe_ring_write(struct toe_ring *r, const void *src, size_t len)
{
    size_t n = toe_ring_space(r);

    if (n > len)
        n = len;
    if (n == 0)
        return 0;
    toe_ring_copy_in(r, atomic_load_explicit(&r->head, memory_order_relaxed), src, n);
    toe_ring_publish(r, n);
    return n;
}

size_t toe_ring_writev(struct toe_ring *r, const struct iovec *iov, int iovcnt)
{
    size_t space = toe_ring_space(r);
    uint64_t at = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t done = 0;

    for (int i = 0; i < iovcnt && done < space; i++) {
        size_t n = iov[i].iov_len;

        if (n > space - done)
            n = space - done;
        if (n == 0)
            continue;
        toe_ring_copy_in(r, at + done, iov[i].iov_base, n);
        done += n;
    }
    if (done)
        toe_ring_publish(r, done);
    return done;
}

void toe_ring_copy_out(const struct toe_ring *r, uint64_t at, void *dst, size_t len)
{
    size_t off = (size_t)at & (r->size - 1);
    size_t first = r->size - off;

    if (first >= len) {
        memcpy(dst, r->buf + off, len);
    } else {
        memcpy(dst, r->buf + off, first);
        memcpy((uint8_t *)dst + first, r->buf, len - first);
    }
}

void toe_ring_release(struct toe_ring *r, size_t n)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    atomic_store_explicit(&r->tail, t + n, memory_order_release);
}

size_t toe_ring_read(struct toe_ring *r, void *dst, size_t len)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = (size_t)(h - t);

    if (n > len)
        n = len;
    if (n == 0)
        return 0;
    toe_ring_copy_out(r, t, dst, n);
    toe_ring_release(r, n);
    return n;
}

const uint8_t *toe_ring_ptr(const struct toe_ring *r, uint64_t at, size_t *contig)
{
    size_t off = (size_t)at & (r->size - 1);

    *contig = r->size - off;
    return r->buf + off;
}
