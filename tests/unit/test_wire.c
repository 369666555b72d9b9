/*
 * test_wire.c - the gather-write queue (storage/wire.c): buffers leave in order in one
 * gather write per batch, a write that stops inside a buffer resumes from there, a buffer
 * retires only once its last byte has left, and a sweep drops and keeps buffers in place.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/wire.h"

struct item {
    struct sto_wire_buf wb;
    char hdr[4], *data, trailer[2];
    int id;
    bool retired;
};

struct sink {
    char out[4096];
    size_t len;
    size_t limit;     /* bytes one write takes at most (0: all) */
    int calls;
    int max_iov;
    int fail;         /* -errno for the next write, 0: none */
};

static ssize_t sink_write(void *arg, const struct iovec *iov, int n)
{
    struct sink *k = arg;
    size_t took = 0;

    k->calls++;
    if (n > k->max_iov)
        k->max_iov = n;
    if (k->fail)
        return k->fail;
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        if (k->limit && took + l > k->limit)
            l = k->limit - took;
        memcpy(k->out + k->len, iov[i].iov_base, l);
        k->len += l;
        took += l;
        if (k->limit && took == k->limit)
            break;
    }
    return took ? (ssize_t)took : -EAGAIN;
}

static int retired_order[256], nretired;

static void retire(struct sto_wire *q, struct sto_wire_buf *b)
{
    struct item *it = (struct item *)((char *)b - offsetof(struct item, wb));

    (void)q;
    it->retired = true;
    retired_order[nretired++] = it->id;
}

static void item_init(struct item *it, int id, const char *h, char *data, const char *t)
{
    memset(it, 0, sizeof(*it));
    it->id = id;
    memcpy(it->hdr, h, strlen(h));
    memcpy(it->trailer, t, strlen(t));
    it->data = data;
    it->wb.part[0] = (struct sto_wire_part){ it->hdr, strlen(h) };
    it->wb.part[1] = (struct sto_wire_part){ data, data ? strlen(data) : 0 };
    it->wb.part[2] = (struct sto_wire_part){ it->trailer, strlen(t) };
}

Test(wire, in_order_and_resumes_a_partial_write)
{
    struct sto_wire q = { 0 };
    struct sink k = { .limit = 3 };
    struct item a, b;
    char da[] = "data", db[] = "more";

    nretired = 0;
    item_init(&a, 1, "HH", da, "t");
    item_init(&b, 2, "GG", db, "");
    sto_wire_push(&q, &a.wb);
    sto_wire_push(&q, &b.wb);
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), 0);
    cr_assert_eq(k.len, 13);
    cr_assert_eq(memcmp(k.out, "HHdatatGGmore", 13), 0);
    cr_assert(a.retired && b.retired);
    cr_assert_eq(retired_order[0], 1);
    cr_assert_eq(retired_order[1], 2);
    cr_assert(sto_wire_empty(&q));
}

Test(wire, would_block_keeps_the_rest_queued)
{
    struct sto_wire q = { 0 };
    struct sink k = { .limit = 3 };
    struct item a;
    char da[] = "abcdef";

    nretired = 0;
    item_init(&a, 1, "H", da, "");
    sto_wire_push(&q, &a.wb);
    k.fail = -EAGAIN;
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), 0);
    cr_assert(!a.retired);
    k.fail = 0;
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), 0);
    cr_assert_eq(memcmp(k.out, "Habcdef", 7), 0);
    cr_assert(a.retired);
}

Test(wire, a_write_error_is_returned)
{
    struct sto_wire q = { 0 };
    struct sink k = { .fail = -EPIPE };
    struct item a;

    nretired = 0;
    item_init(&a, 1, "H", NULL, "");
    sto_wire_push(&q, &a.wb);
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), -EPIPE);
    cr_assert(!a.retired);
    sto_wire_clear(&q, retire);
    cr_assert(a.retired);
    cr_assert(sto_wire_empty(&q));
}

Test(wire, batches_of_64_buffers)
{
    static struct item it[200];
    static char d[] = "d";
    struct sto_wire q = { 0 };
    struct sink k = { 0 };

    nretired = 0;
    for (int i = 0; i < 200; i++) {
        item_init(&it[i], i, "H", d, "T");
        sto_wire_push(&q, &it[i].wb);
    }
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), 0);
    cr_assert_eq(k.calls, 4); /* 64 + 64 + 64 + 8 */
    cr_assert_eq(k.max_iov, STO_WIRE_BATCH * STO_WIRE_PARTS);
    cr_assert_eq(nretired, 200);
}

static int drop_even(struct sto_wire_buf *b, void *arg)
{
    struct item *it = (struct item *)((char *)b - offsetof(struct item, wb));

    (void)arg;
    return it->id % 2 == 0 ? STO_WIRE_DROP : STO_WIRE_KEEP;
}

Test(wire, sweep_drops_unstarted_buffers_and_keeps_order)
{
    struct sto_wire q = { 0 };
    struct sink k = { 0 };
    struct item it[4];
    char d[4][2] = { "a", "b", "c", "d" };

    nretired = 0;
    for (int i = 0; i < 4; i++) {
        item_init(&it[i], i, "", d[i], "");
        sto_wire_push(&q, &it[i].wb);
    }
    cr_assert_eq(sto_wire_sweep(&q, drop_even, NULL, retire), 0);
    cr_assert(it[0].retired && it[2].retired);
    cr_assert(!it[1].retired && !it[3].retired);
    k.limit = 0;
    /* the tail is right after a sweep: a new buffer goes after the last kept one */
    struct item e;
    char de[] = "e";
    item_init(&e, 5, "", de, "");
    sto_wire_push(&q, &e.wb);
    cr_assert_eq(sto_wire_flush(&q, sink_write, &k, retire), 0);
    cr_assert_eq(k.len, 3);
    cr_assert_eq(memcmp(k.out, "bde", 3), 0);
    cr_assert(sto_wire_empty(&q));
}
