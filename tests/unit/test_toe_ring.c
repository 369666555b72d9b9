/*
 * test_toe_ring.c - the driver interface's byte ring: empty, full, wrap-around, in-place
 * access, one producer and one consumer thread moving a long stream through it, and an
 * empty ring's pages given back.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "toe_emu/ring.h"

static struct toe_ring r;

static void teardown(void)
{
    toe_ring_fini(&r);
}

TestSuite(toe_ring, .fini = teardown);

Test(toe_ring, size_rounds_up_to_a_power_of_two)
{
    cr_assert_eq(toe_ring_init(&r, 5000), 0);
    cr_assert_eq(r.size, 8192);
    toe_ring_fini(&r);
    cr_assert_eq(toe_ring_init(&r, 1), 0);
    cr_assert_eq(r.size, 4096, "at least one page");
}

Test(toe_ring, empty)
{
    uint8_t buf[16];

    cr_assert_eq(toe_ring_init(&r, 4096), 0);
    cr_assert_eq(toe_ring_used(&r), 0);
    cr_assert_eq(toe_ring_space(&r), 4096);
    cr_assert_eq(toe_ring_read(&r, buf, sizeof(buf)), 0);
    cr_assert_eq(toe_ring_write(&r, buf, 0), 0);
    cr_assert_eq(toe_ring_used(&r), 0);
}

Test(toe_ring, full)
{
    static uint8_t big[8192];
    uint8_t one = 7;

    memset(big, 0xab, sizeof(big));
    cr_assert_eq(toe_ring_init(&r, 4096), 0);
    cr_assert_eq(toe_ring_write(&r, big, sizeof(big)), 4096, "only what fits is taken");
    cr_assert_eq(toe_ring_space(&r), 0);
    cr_assert_eq(toe_ring_used(&r), 4096);
    cr_assert_eq(toe_ring_write(&r, &one, 1), 0, "a full ring takes nothing");

    struct iovec iov = { .iov_base = &one, .iov_len = 1 };
    cr_assert_eq(toe_ring_writev(&r, &iov, 1), 0);
    cr_assert_eq(toe_ring_read(&r, big, 100), 100);
    cr_assert_eq(toe_ring_space(&r), 100);
}

Test(toe_ring, wrap_around_keeps_order)
{
    uint8_t in[3000], out[3000];
    uint64_t next = 0, expect = 0;

    cr_assert_eq(toe_ring_init(&r, 4096), 0);
    /* 3000-byte steps over a 4096-byte ring cross the end in many different places. */
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof(in); i++)
            in[i] = (uint8_t)(next + i);
        cr_assert_eq(toe_ring_write(&r, in, sizeof(in)), sizeof(in));
        next += sizeof(in);
        cr_assert_eq(toe_ring_read(&r, out, sizeof(out)), sizeof(out));
        for (size_t i = 0; i < sizeof(out); i++)
            cr_assert_eq(out[i], (uint8_t)(expect + i), "round %d byte %zu", round, i);
        expect += sizeof(out);
    }
    cr_assert_eq(toe_ring_used(&r), 0);
}

Test(toe_ring, writev_gathers_and_stops_when_full)
{
    uint8_t a[1000], b[4000], out[4096];
    struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };

    memset(a, 1, sizeof(a));
    memset(b, 2, sizeof(b));
    cr_assert_eq(toe_ring_init(&r, 4096), 0);
    cr_assert_eq(toe_ring_writev(&r, iov, 2), 4096);
    cr_assert_eq(toe_ring_read(&r, out, sizeof(out)), 4096);
    cr_assert_eq(out[999], 1);
    cr_assert_eq(out[1000], 2);
    cr_assert_eq(out[4095], 2);
}

Test(toe_ring, in_place_access_and_late_release)
{
    uint8_t in[4096];
    size_t contig;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    cr_assert_eq(toe_ring_init(&r, 4096), 0);
    cr_assert_eq(toe_ring_write(&r, in, 3000), 3000);
    toe_ring_release(&r, 3000);                    /* the consumer frees it late */
    cr_assert_eq(toe_ring_write(&r, in, 2000), 2000);

    const uint8_t *p = toe_ring_ptr(&r, 3000, &contig);
    cr_assert_eq(contig, 1096, "contiguous up to the end of the buffer");
    cr_assert_eq(memcmp(p, in, contig), 0);
    p = toe_ring_ptr(&r, 3000 + contig, &contig);
    cr_assert_eq(p, r.buf, "then it continues at the start");
    cr_assert_eq(memcmp(p, in + 1096, 2000 - 1096), 0);
}

#define STREAM_BYTES (64u << 20)

static void *producer(void *arg)
{
    struct toe_ring *ring = arg;
    uint8_t buf[7919];
    uint64_t sent = 0;
    uint32_t x = 1;

    while (sent < STREAM_BYTES) {
        size_t n = 1 + (x = x * 1103515245u + 12345u) % sizeof(buf);

        if (n > STREAM_BYTES - sent)
            n = (size_t)(STREAM_BYTES - sent);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)((sent + i) * 31u);
        for (size_t done = 0; done < n;) {
            size_t w = toe_ring_write(ring, buf + done, n - done);

            if (w == 0)
                sched_yield();
            done += w;
        }
        sent += n;
    }
    return NULL;
}

Test(toe_ring, concurrent_producer_and_consumer, .timeout = 60)
{
    pthread_t th;
    uint8_t buf[5003];
    uint64_t got = 0;
    uint32_t x = 7;

    cr_assert_eq(toe_ring_init(&r, 16384), 0);
    pthread_create(&th, NULL, producer, &r);
    while (got < STREAM_BYTES) {
        size_t want = 1 + (x = x * 1103515245u + 12345u) % sizeof(buf);
        size_t n = toe_ring_read(&r, buf, want);

        if (n == 0) {
            sched_yield();
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (buf[i] != (uint8_t)((got + i) * 31u))
                cr_assert_fail("byte %llu is %u, expected %u", (unsigned long long)(got + i),
                         buf[i], (uint8_t)((got + i) * 31u));
        }
        got += n;
    }
    pthread_join(th, NULL);
    cr_assert_eq(toe_ring_used(&r), 0);
    cr_assert_eq(toe_ring_head(&r), STREAM_BYTES);
}

/* Pages resident in the ring's memory (mincore). */
static size_t resident_pages(const struct toe_ring *ring)
{
    size_t pages = ring->size / 4096, n = 0;
    unsigned char vec[1024];

    cr_assert(pages <= sizeof(vec));
    cr_assert_eq(mincore(ring->buf, ring->size, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

Test(toe_ring, trim_gives_an_empty_rings_pages_back)
{
    uint8_t in[8192], out[8192];

    cr_assert_eq(toe_ring_init(&r, 65536), 0);
    cr_assert_eq(resident_pages(&r), 0, "mapped lazily");
    for (int i = 0; i < 12; i++) {           /* wrap around once: every page touched */
        memset(in, 'a' + i, sizeof(in));
        cr_assert_eq(toe_ring_write(&r, in, sizeof(in)), sizeof(in));
        cr_assert_eq(toe_ring_read(&r, out, sizeof(out)), sizeof(out));
        cr_assert(!memcmp(in, out, sizeof(in)));
    }
    cr_assert_eq(resident_pages(&r), 16);
    toe_ring_trim(&r);
    cr_assert_eq(resident_pages(&r), 0, "trimmed");
    memset(in, 'z', sizeof(in));             /* and it goes on working, across the wrap */
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(toe_ring_write(&r, in, sizeof(in)), sizeof(in));
        cr_assert_eq(toe_ring_read(&r, out, sizeof(out)), sizeof(out));
        cr_assert(!memcmp(in, out, sizeof(in)));
    }
}
