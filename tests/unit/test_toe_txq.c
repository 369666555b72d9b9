/*
 * test_toe_txq.c - a connection's send queue (toe_emu/txq.h): bytes copied into the ring
 * and buffers put by reference make one ordered stream; a buffer is given back (its done
 * called) exactly once, only when everything in it was released, or when the queue is
 * abandoned or torn down; slots run out and come back; and a consumer and a firmware
 * thread moving a long stream of mixed pieces through it.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toe_emu/txq.h"

static struct toe_txq q;
static uint8_t *stream;                /* the whole stream's bytes, a pattern */
static atomic_int back[4096];          /* done calls per buffer index */
static atomic_int backs;               /* done calls in all */

#define STREAM_BYTES (64u << 20)

static void stream_init(void)
{
    if (stream)
        return;
    stream = malloc(STREAM_BYTES);
    cr_assert_not_null(stream);
    for (size_t i = 0; i < STREAM_BYTES; i++)
        stream[i] = (uint8_t)(i * 131 + (i >> 9));
}

static void done(void *arg)
{
    atomic_fetch_add(&back[(uintptr_t)arg], 1);
    atomic_fetch_add(&backs, 1);
}

static void setup(void)
{
    stream_init();
    for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++)
        atomic_store(&back[i], 0);
    atomic_store(&backs, 0);
}

static void teardown(void)
{
    toe_txq_fini(&q);
}

TestSuite(toe_txq, .init = setup, .fini = teardown);

/* Offer stream bytes [at, at + len): copied, or by reference as buffer number `id`. */
static void offer(uint64_t at, size_t len, bool by_ref, uintptr_t id)
{
    if (by_ref) {
        cr_assert(toe_txq_put_ref(&q, stream + at, len, done, (void *)id));
    } else {
        struct iovec iov = { .iov_base = stream + at, .iov_len = len };

        cr_assert_eq(toe_txq_writev(&q, &iov, 1), len);
    }
}

/* Hand on everything offered, in pieces of at most `max`, checking each against the stream. */
static uint64_t send_all(uint64_t from, size_t max)
{
    const void *data;
    size_t n;

    while ((n = toe_txq_next(&q, &data)) > 0) {
        if (n > max)
            n = max;
        cr_assert(memcmp(data, stream + from, n) == 0, "stream bytes at %lu differ",
                  (unsigned long)from);
        toe_txq_sent(&q, n);
        from += n;
    }
    return from;
}

Test(toe_txq, copies_and_references_make_one_ordered_stream)
{
    const size_t sizes[] = { 100, 40000, 17, 20000, 64000, 1, 70000, 5000, 33000 };
    uint64_t at = 0;

    cr_assert_eq(toe_txq_init(&q, 1 << 20), 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        offer(at, sizes[i], i % 2, i);
        at += sizes[i];
    }
    cr_assert_eq(toe_txq_unsent(&q), at);
    cr_assert_eq(send_all(0, 7919), at, "every byte handed on, in order");
    cr_assert_eq(toe_txq_unsent(&q), 0);
    cr_assert_eq(toe_txq_used(&q), at, "nothing released yet");
    cr_assert_eq(q.bytes.head, 100 + 17 + 64000 + 70000 + 33000, "only the copies in the ring");
    cr_assert_eq(atomic_load(&backs), 0);
}

Test(toe_txq, a_buffer_comes_back_once_and_only_when_wholly_released)
{
    cr_assert_eq(toe_txq_init(&q, 1 << 20), 0);
    offer(0, 1000, false, 0);
    offer(1000, 50000, true, 1);
    offer(51000, 2000, false, 0);
    offer(53000, 30000, true, 2);
    send_all(0, 65536);

    cr_assert(toe_txq_release(&q, 500), "half the first copied bytes");
    cr_assert_eq(toe_ring_used(&q.bytes), 2500);
    cr_assert(toe_txq_release(&q, 40000), "the rest of the copied bytes");
    cr_assert_eq(atomic_load(&back[1]), 0, "buffer 1 is only partly released");
    cr_assert_not(toe_txq_release(&q, 50999), "nothing more to free before its end");
    cr_assert_eq(atomic_load(&back[1]), 0);
    cr_assert(toe_txq_release(&q, 52000));
    cr_assert_eq(atomic_load(&back[1]), 1, "wholly released: given back");
    cr_assert_eq(toe_ring_used(&q.bytes), 1000);
    cr_assert(toe_txq_release(&q, 83000));
    cr_assert_eq(atomic_load(&back[2]), 1);
    cr_assert_eq(toe_txq_used(&q), 0);
    cr_assert_not(toe_txq_release(&q, 83000), "a second release of the same does nothing");
    cr_assert_eq(atomic_load(&backs), 2, "each buffer once");
}

Test(toe_txq, slots_run_out_and_come_back)
{
    cr_assert_eq(toe_txq_init(&q, 4096), 0);
    for (uintptr_t i = 0; i < TOE_TXQ_REFS; i++)
        offer(i * 10, 10, true, i);
    cr_assert_not(toe_txq_put_ref(&q, stream, 10, done, (void *)99), "every slot taken");
    cr_assert_eq(toe_txq_unsent(&q), TOE_TXQ_REFS * 10, "the refused one was not offered");
    send_all(0, 25);
    toe_txq_release(&q, 25);
    cr_assert_eq(atomic_load(&backs), 2);
    cr_assert(toe_txq_put_ref(&q, stream + TOE_TXQ_REFS * 10, 10, done, (void *)99));
}

Test(toe_txq, abandon_and_fini_give_every_buffer_back_once)
{
    cr_assert_eq(toe_txq_init(&q, 1 << 20), 0);
    offer(0, 5000, true, 0);
    offer(5000, 300, false, 0);
    offer(5300, 6000, true, 1);
    const void *data;
    cr_assert_eq(toe_txq_next(&q, &data), 5000);
    toe_txq_sent(&q, 4000);        /* part of the first buffer only */
    toe_txq_release(&q, 4000);
    cr_assert_eq(atomic_load(&backs), 0);
    toe_txq_abandon(&q);
    cr_assert_eq(atomic_load(&back[0]), 1);
    cr_assert_eq(atomic_load(&back[1]), 1, "never handed on, given back all the same");
    cr_assert_eq(toe_txq_used(&q), 0);
    cr_assert_eq(toe_ring_used(&q.bytes), 0);

    offer(11300, 7000, true, 2);
    toe_txq_fini(&q);
    cr_assert_eq(atomic_load(&back[2]), 1, "fini gives back what is still outstanding");
    toe_txq_fini(&q);
    cr_assert_eq(atomic_load(&backs), 3, "a second fini does nothing");
}

/* ---- two threads ----------------------------------------------------------------------- */

static atomic_int put_refs;            /* by the consumer thread */

static void *consumer(void *arg)
{
    uint64_t at = 0, seed = 1;
    uintptr_t id = 0;

    (void)arg;
    while (at < STREAM_BYTES) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        bool by_ref = (seed >> 33) % 3 == 0;
        size_t len = by_ref ? (size_t)(seed >> 40) % 200000 + 1 : (size_t)(seed >> 40) % 3000 + 1;

        if (len > STREAM_BYTES - at)
            len = (size_t)(STREAM_BYTES - at);
        if (by_ref) {
            while (!toe_txq_put_ref(&q, stream + at, len, done, (void *)(id % 4096)))
                sched_yield();
            id++;
            atomic_fetch_add(&put_refs, 1);
            at += len;
            continue;
        }
        struct iovec iov = { .iov_base = stream + at, .iov_len = len };
        size_t n;
        while ((n = toe_txq_writev(&q, &iov, 1)) == 0)
            sched_yield();
        at += n;
    }
    return NULL;
}

Test(toe_txq, a_long_mixed_stream_between_two_threads, .timeout = 120)
{
    uint64_t got = 0;
    pthread_t th;

    cr_assert_eq(toe_txq_init(&q, 1 << 20), 0);
    atomic_store(&put_refs, 0);
    cr_assert_eq(pthread_create(&th, NULL, consumer, NULL), 0);
    while (got < STREAM_BYTES) {
        const void *data;
        size_t n = toe_txq_next(&q, &data);

        if (!n) {
            sched_yield();
            continue;
        }
        if (n > 65535)
            n = 65535;             /* one tcp_write at most */
        if (memcmp(data, stream + got, n) != 0)
            cr_assert_fail("stream bytes at %lu differ", (unsigned long)got);
        toe_txq_sent(&q, n);
        got += n;
        /* acknowledged some way behind what was sent */
        toe_txq_release(&q, got > 300000 ? got - 300000 : 0);
    }
    pthread_join(th, NULL);
    toe_txq_release(&q, got);
    cr_assert_eq(toe_txq_used(&q), 0);
    cr_assert(atomic_load(&put_refs) > 100, "only %d buffers by reference",
              atomic_load(&put_refs));
    cr_assert_eq(atomic_load(&backs), atomic_load(&put_refs), "every buffer back once");
}
