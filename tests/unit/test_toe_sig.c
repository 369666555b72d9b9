/*
 * test_toe_sig.c - the firmware's receive signals to a consumer (toe_emu/conn_sig.c): only
 * an armed consumer is signalled, and once; small segments read off the TAP in one batch
 * are signalled after the batch; a large segment (a super-frame) is signalled at once when
 * the consumer armed its signal on another CPU than the firmware's, after the batch when
 * on the same one.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "toe_emu/toe_int.h"

static struct toe_dev *dev;
static struct toe_conn *c;
static int fw_cpu;                     /* the test plays the firmware, kept on this CPU */

static void setup(void)
{
    cpu_set_t one;

    fw_cpu = sched_getcpu();
    cr_assert_geq(fw_cpu, 0);
    CPU_ZERO(&one);
    CPU_SET(fw_cpu, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    dev = calloc(1, sizeof(*dev));
    c = calloc(1, sizeof(*c));
    cr_assert(dev && c);
    c->dev = dev;
    c->rx_armed_cpu = fw_cpu + 1;      /* the consumer on another CPU */
    c->stk.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert_geq(c->stk.fd, 0);
    pthread_mutex_init(&c->sig_lock, NULL);
}

static void teardown(void)
{
    close(c->stk.fd);
    pthread_mutex_destroy(&c->sig_lock);
    free(c);
    free(dev);
}

/* Signals written to the consumer's eventfd since the last look (0 or 1). */
static uint64_t signals(void)
{
    uint64_t v = 0;

    if (read(c->stk.fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        return 0;
    return v;
}

/* The consumer found nothing to read and armed its signal; the firmware reads a batch. */
static void armed_in_a_batch(void)
{
    atomic_store(&c->rx_armed, 1);
    dev->rx_batching = true;
}

TestSuite(toe_sig, .init = setup, .fini = teardown);

Test(toe_sig, unarmed_consumer_is_not_signalled)
{
    toe_conn_rx_ready(c, 100);
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 0);
}

Test(toe_sig, outside_a_batch_signals_at_once)
{
    atomic_store(&c->rx_armed, 1);
    toe_conn_rx_ready(c, 100);
    cr_assert_eq(signals(), 1);
    cr_assert_eq(atomic_load(&c->rx_armed), 0, "the signal disarms");
    toe_conn_rx_ready(c, 100);
    cr_assert_eq(signals(), 0, "one signal per arming");
}

Test(toe_sig, small_segments_in_a_batch_are_signalled_once_after_it)
{
    armed_in_a_batch();
    toe_conn_rx_ready(c, 1448);
    toe_conn_rx_ready(c, 9000);
    cr_assert_eq(signals(), 0, "nothing during the batch");
    cr_assert(c->rx_sig_pending);
    toe_conn_rx_flush(dev);
    cr_assert_eq(signals(), 1);
    cr_assert_not(c->rx_sig_pending);
    cr_assert_null(dev->sig_head);
    cr_assert_not(dev->rx_batching);
}

Test(toe_sig, large_segment_in_a_batch_is_signalled_at_once)
{
    armed_in_a_batch();
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 1, "a super-frame does not wait for the batch's end");
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 0, "not armed again");
    toe_conn_rx_flush(dev);
    cr_assert_eq(signals(), 0, "and not signalled twice");
}

Test(toe_sig, large_segment_after_small_ones_signals_once)
{
    armed_in_a_batch();
    toe_conn_rx_ready(c, 1448);
    toe_conn_rx_ready(c, 32768);
    cr_assert_eq(signals(), 1);
    toe_conn_rx_flush(dev);
    cr_assert_eq(signals(), 0);
    cr_assert_not(c->rx_sig_pending, "the flush took it off its list all the same");
}

Test(toe_sig, large_segment_for_a_consumer_on_the_firmwares_cpu_waits_for_the_batch)
{
    c->rx_armed_cpu = fw_cpu;
    armed_in_a_batch();
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 0, "it could only take the firmware's CPU from it");
    toe_conn_rx_flush(dev);
    cr_assert_eq(signals(), 1);
}

Test(toe_sig, large_segment_for_a_consumer_never_armed_is_signalled_at_once)
{
    c->rx_armed_cpu = -1;              /* unknown: not the firmware's */
    armed_in_a_batch();
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 1);
}

Test(toe_sig, closed_consumer_is_never_signalled)
{
    atomic_store(&c->rx_armed, 1);
    c->user_closed = true;
    toe_conn_rx_ready(c, 65536);
    cr_assert_eq(signals(), 0);
}
