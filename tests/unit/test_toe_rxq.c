/*
 * test_toe_rxq.c - a connection's receive queue (toe_emu/rxq.h): small segments copied,
 * large chains of the adapter's buffers kept by reference, one ordered stream out of both;
 * every reference dropped exactly once, by reclaim or at the end; a full ring refuses; the
 * stream seen in place (peek, consume) as well as copied; and a producer and a consumer
 * thread moving a long stream of mixed segments through it, either way.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/pbuf.h"
#include "toe_emu/rxq.h"

static struct toe_rxq q;
static atomic_int dropped;

/* Stream byte i is a function of i, so order and content are checked at once. */
static uint8_t pat(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

/*
 * A chain of `parts` pbufs holding stream bytes [at, at + len). `custom`: flagged as the
 * adapter's own buffers (PBUF_FLAG_IS_CUSTOM), as lwIP delivers them; else as lwIP's heap.
 */
static struct pbuf *chain(uint64_t at, size_t len, int parts, bool custom)
{
    struct pbuf *first = NULL, **link = &first;
    size_t left = len;

    for (int i = 0; i < parts; i++) {
        size_t n = i == parts - 1 ? left : len / (size_t)parts;
        struct pbuf *p = calloc(1, sizeof(*p) + n);

        cr_assert_not_null(p);
        p->payload = (uint8_t *)(p + 1);
        p->len = (u16_t)n;
        p->ref = 1;
        p->flags = custom ? PBUF_FLAG_IS_CUSTOM : 0;
        for (size_t k = 0; k < n; k++)
            ((uint8_t *)p->payload)[k] = pat(at + len - left + k);
        left -= n;
        *link = p;
        link = &p->next;
    }
    for (struct pbuf *p = first; p; p = p->next) {
        size_t rest = 0;

        for (struct pbuf *s = p; s; s = s->next)
            rest += s->len;
        p->tot_len = (u16_t)rest;
    }
    return first;
}

static void free_chain(struct pbuf *p)
{
    while (p) {
        struct pbuf *next = p->next;

        free(p);
        p = next;
    }
}

static void drop(struct pbuf *p)
{
    atomic_fetch_add(&dropped, 1);
    free_chain(p);
}

/* Put a chain; frees it when the queue copied it. Returns toe_rxq_put's answer. */
static int put(uint64_t at, size_t len, int parts, bool custom)
{
    struct pbuf *p = chain(at, len, parts, custom);
    int rc = toe_rxq_put(&q, p);

    if (rc <= 0)
        free_chain(p);
    return rc;
}

static void expect_stream(const uint8_t *buf, uint64_t at, size_t len)
{
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(buf[i], pat(at + i), "stream byte %lu", (unsigned long)(at + i));
}

static void teardown(void)
{
    toe_rxq_fini(&q, drop);
}

TestSuite(toe_rxq, .fini = teardown);

Test(toe_rxq, small_segments_are_copied_large_ones_referenced)
{
    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    cr_assert_eq(put(0, 1000, 1, true), 0, "below TOE_RXQ_REF_MIN: copied");
    cr_assert_eq(put(1000, 65000, 2, true), 1, "a large chain of the adapter's buffers");
    cr_assert_eq(put(66000, 40000, 1, false), 0, "not the adapter's buffers: copied");
    cr_assert_eq(put(106000, TOE_RXQ_REF_MIN, 3, true), 1, "exactly the threshold");
    cr_assert_eq(toe_rxq_used(&q), 106000 + TOE_RXQ_REF_MIN);
    cr_assert_eq(q.bytes.head, 41000, "only the copies are in the ring");
}

Test(toe_rxq, reads_one_ordered_stream_in_any_pieces)
{
    static uint8_t buf[300000];
    const size_t sizes[] = { 100, 40000, 17, 20000, 64000, 1, TOE_RXQ_REF_MIN, 5000, 33000 };
    uint64_t at = 0, got = 0;

    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        put(at, sizes[i], (int)(i % 3) + 1, true);
        at += sizes[i];
    }
    /* Odd read sizes cross every kind of boundary: ring to reference, pbuf to pbuf. */
    for (size_t n = 1; got < at; n = n * 7 % 9973 + 1) {
        size_t r = toe_rxq_read(&q, buf + got, n);

        cr_assert(r > 0 && r <= n, "read %zu of %zu with %lu left", r, n,
                  (unsigned long)(at - got));
        got += r;
    }
    expect_stream(buf, 0, at);
    cr_assert_eq(toe_rxq_read(&q, buf, 10), 0, "empty");
    cr_assert_eq(toe_rxq_used(&q), 0);
    cr_assert_eq(toe_rxq_taken(&q), at);
}

Test(toe_rxq, finished_references_are_dropped_once_by_reclaim)
{
    static uint8_t buf[100000];

    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    atomic_store(&dropped, 0);
    cr_assert_eq(put(0, 40000, 1, true), 1);
    cr_assert_eq(put(40000, 50000, 2, true), 1);
    toe_rxq_reclaim(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 0, "nothing read yet");
    cr_assert_eq(toe_rxq_read(&q, buf, 45000), 45000);
    toe_rxq_reclaim(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 1, "the first is finished, the second is half read");
    cr_assert_eq(toe_rxq_read(&q, buf + 45000, 55000), 45000);
    expect_stream(buf, 0, 90000);
    toe_rxq_reclaim(&q, drop);
    toe_rxq_reclaim(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 2);
    cr_assert_eq(put(90000, 40000, 1, true), 1);
    toe_rxq_fini(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 3, "fini drops what is still held");
    toe_rxq_fini(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 3, "a second fini does nothing");
}

Test(toe_rxq, a_full_ring_refuses_a_copy_but_references_still_go)
{
    static uint8_t buf[8192];

    cr_assert_eq(toe_rxq_init(&q, 8192), 0);
    cr_assert_eq(put(0, 8000, 1, true), 0);
    cr_assert_eq(put(8000, 1000, 1, true), -1, "no room: refused, nothing changed");
    cr_assert_eq(toe_rxq_used(&q), 8000);
    cr_assert_eq(put(8000, 40000, 1, true), 1, "a reference needs no ring space");
    cr_assert_eq(toe_rxq_read(&q, buf, sizeof(buf)), 8192);
    expect_stream(buf, 0, 8192);
}

Test(toe_rxq, when_every_slot_is_taken_large_segments_are_copied)
{
    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    for (int i = 0; i < TOE_RXQ_REFS; i++)
        cr_assert_eq(put((uint64_t)i * TOE_RXQ_REF_MIN, TOE_RXQ_REF_MIN, 1, true), 1);
    cr_assert_eq(put((uint64_t)TOE_RXQ_REFS * TOE_RXQ_REF_MIN, TOE_RXQ_REF_MIN, 1, true), 0,
                 "no slot left: copied");
}

Test(toe_rxq, peek_shows_the_stream_in_place_and_consume_moves_past_it)
{
    const size_t sizes[] = { 100, 40000, 17, 20000, 64000, 1, TOE_RXQ_REF_MIN, 5000, 33000 };
    uint64_t at = 0, got = 0;
    const void *data;

    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    atomic_store(&dropped, 0);
    cr_assert_eq(toe_rxq_peek(&q, &data), 0, "empty");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        put(at, sizes[i], (int)(i % 3) + 1, true);
        at += sizes[i];
    }
    /* Consume odd amounts of each span so every boundary is met mid-span too. */
    for (size_t k = 1; got < at; k = k * 7 % 9973 + 1) {
        size_t n = toe_rxq_peek(&q, &data);

        cr_assert(n > 0, "nothing shown with %lu left", (unsigned long)(at - got));
        expect_stream(data, got, n);
        cr_assert_eq(toe_rxq_peek(&q, &data), n, "looking again shows the same span");
        toe_rxq_reclaim(&q, drop);
        if (n > k)
            n = k;
        cr_assert_eq(toe_rxq_consume(&q, n), n);
        got += n;
        cr_assert_eq(toe_rxq_taken(&q), got);
    }
    cr_assert_eq(toe_rxq_peek(&q, &data), 0, "all consumed");
    toe_rxq_reclaim(&q, drop);
    cr_assert_eq(atomic_load(&dropped), 4, "each reference dropped once it was consumed");
}

Test(toe_rxq, peek_steps_over_the_empty_pbufs_lwip_leaves_after_trimming)
{
    struct pbuf *rest = chain(0, 40000, 2, true);
    struct pbuf *empty = calloc(1, sizeof(*empty));
    const void *data;

    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    *empty = (struct pbuf){ .next = rest, .payload = rest->payload, .tot_len = rest->tot_len,
                            .ref = 1, .flags = PBUF_FLAG_IS_CUSTOM };
    cr_assert_eq(toe_rxq_put(&q, empty), 1);
    cr_assert_eq(toe_rxq_peek(&q, &data), 20000);
    expect_stream(data, 0, 20000);
    toe_rxq_consume(&q, 20000);
    cr_assert_eq(toe_rxq_peek(&q, &data), 20000);
    expect_stream(data, 20000, 20000);
    cr_assert_eq(toe_rxq_consume(&q, 50000), 20000, "no further than what was delivered");
    cr_assert_eq(toe_rxq_taken(&q), 40000);
}

/* ---- two threads ----------------------------------------------------------------------- */

#define STREAM_BYTES (256ull << 20)

static int referenced;                 /* by the producer, read after the join */

static void *producer(void *arg)
{
    uint64_t at = 0, seed = 1;

    (void)arg;
    while (at < STREAM_BYTES) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (seed >> 33) % 3 ? (size_t)(seed >> 40) % 3000 + 1
                                      : (size_t)(seed >> 40) % (65536 - TOE_RXQ_REF_MIN) +
                                            TOE_RXQ_REF_MIN;
        if (len > STREAM_BYTES - at)
            len = (size_t)(STREAM_BYTES - at);

        struct pbuf *p = chain(at, len, (int)((seed >> 20) % 3) + 1, true);
        int rc;
        while ((rc = toe_rxq_put(&q, p)) < 0) {
            toe_rxq_reclaim(&q, drop);
            sched_yield();
        }
        if (rc == 0)
            free_chain(p);
        else
            referenced++;
        toe_rxq_reclaim(&q, drop);
        at += len;
    }
    return NULL;
}

/* The consumer's next piece of the stream: copied into `buf`, or seen in place. */
static size_t next_piece(bool in_place, uint8_t *buf, size_t len, const uint8_t **piece)
{
    if (!in_place) {
        *piece = buf;
        return toe_rxq_read(&q, buf, len);
    }

    const void *data;
    size_t n = toe_rxq_peek(&q, &data);

    *piece = data;
    return n < len ? n : len;
}

static void long_mixed_stream(bool in_place)
{
    static uint8_t buf[70000];
    uint64_t got = 0;
    pthread_t th;

    cr_assert_eq(toe_rxq_init(&q, 1 << 20), 0);
    atomic_store(&dropped, 0);
    referenced = 0;
    cr_assert_eq(pthread_create(&th, NULL, producer, NULL), 0);
    while (got < STREAM_BYTES) {
        const uint8_t *piece;
        size_t n = next_piece(in_place, buf, (size_t)(got % sizeof(buf)) + 1, &piece);

        if (!n) {
            sched_yield();
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (piece[i] != pat(got + i))
                cr_assert_fail("stream byte %lu differs", (unsigned long)(got + i));
        }
        if (in_place)
            toe_rxq_consume(&q, n);
        got += n;
    }
    pthread_join(th, NULL);
    cr_assert_eq(toe_rxq_used(&q), 0);
    cr_assert_eq(toe_rxq_read(&q, buf, 1), 0);
    toe_rxq_reclaim(&q, drop);
    cr_assert(referenced > 1000, "only %d segments went by reference", referenced);
    cr_assert_eq(atomic_load(&dropped), referenced, "every reference dropped once, when read");
}

Test(toe_rxq, a_long_mixed_stream_between_two_threads, .timeout = 120)
{
    long_mixed_stream(false);
}

Test(toe_rxq, a_long_mixed_stream_read_in_place_between_two_threads, .timeout = 120)
{
    long_mixed_stream(true);
}
