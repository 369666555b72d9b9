/*
 * test_loop_defer.c - work deferred to the end of a storage loop iteration (sto_loop_defer,
 * storage/loop.h): it runs once however often it was asked for, after the iteration's
 * events, kicks and timers, in the order it was asked for; cancelled work never runs, also
 * when an earlier cb of the same pass cancels it; work queued by a cb runs in the next
 * iteration, which does not sleep; work queued outside an iteration keeps the next one from
 * sleeping.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "storage/loop.h"

static struct sto_loop *loop;
static struct sto_defer dw[4];
static int order[16], nran;

static void on_run(struct sto_defer *d)
{
    order[nran++] = (int)(d - dw);
}

static void setup(void)
{
    loop = sto_loop_new();
    cr_assert_not_null(loop);
    nran = 0;
    for (int i = 0; i < 4; i++)
        dw[i] = (struct sto_defer){ .cb = on_run };
}

static void teardown(void)
{
    sto_loop_free(loop);
}

TestSuite(loop_defer, .init = setup, .fini = teardown);

/* The event's callback defers 0, 1, 0, 2 and records when it ran. */
static int event_at = -1;

static void on_event(struct sto_watch *w, uint32_t revents)
{
    uint64_t v;

    (void)revents;
    cr_assert_eq(read(w->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    event_at = nran;
    sto_loop_defer(loop, &dw[0]);
    sto_loop_defer(loop, &dw[1]);
    sto_loop_defer(loop, &dw[0]);
    sto_loop_defer(loop, &dw[2]);
}

Test(loop_defer, runs_once_after_the_events_in_the_order_asked)
{
    int fds[2];
    uint64_t one = 1;
    struct sto_watch w = { .cb = on_event };

    cr_assert_eq(pipe(fds), 0);
    w.fd = fds[0];
    cr_assert_eq(sto_loop_add(loop, &w, EPOLLIN), 0);
    cr_assert_eq(write(fds[1], &one, sizeof(one)), (ssize_t)sizeof(one));
    cr_assert_eq(sto_loop_run_once(loop, 1000), 0);
    cr_assert_eq(event_at, 0, "the deferred work ran before the event's callback");
    cr_assert_eq(nran, 3, "%d runs for 3 pieces of work asked for 4 times", nran);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 1);
    cr_assert_eq(order[2], 2);
    for (int i = 0; i < 3; i++)
        cr_assert_null(dw[i].head, "work %d still queued after it ran", i);
    sto_loop_del(loop, &w);
    close(fds[0]);
    close(fds[1]);
}

Test(loop_defer, cancelled_work_never_runs)
{
    sto_loop_defer(loop, &dw[0]);
    sto_loop_defer(loop, &dw[1]);
    sto_loop_defer(loop, &dw[2]);
    sto_defer_cancel(&dw[1]);
    sto_defer_cancel(&dw[3]); /* never queued: nothing to do */
    cr_assert_eq(sto_loop_run_once(loop, 1000), 0);
    cr_assert_eq(nran, 2);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 2);
}

/* dw[0]'s cb cancels dw[1], queued after it in the same pass (its owner went away). */
static void cancel_next(struct sto_defer *d)
{
    on_run(d);
    sto_defer_cancel(&dw[1]);
}

Test(loop_defer, work_cancelled_by_an_earlier_cb_of_the_pass_does_not_run)
{
    dw[0].cb = cancel_next;
    sto_loop_defer(loop, &dw[0]);
    sto_loop_defer(loop, &dw[1]);
    sto_loop_defer(loop, &dw[2]);
    cr_assert_eq(sto_loop_run_once(loop, 1000), 0);
    cr_assert_eq(nran, 2, "%d ran", nran);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 2);
    cr_assert_null(dw[1].head);
}

#define AGAIN_MAX 5
static int again;

static void defer_again(struct sto_defer *d)
{
    on_run(d);
    if (++again < AGAIN_MAX)
        sto_loop_defer(loop, d);
}

Test(loop_defer, work_queued_by_a_cb_runs_next_iteration_without_a_sleep)
{
    uint64_t t0;

    again = 0;
    dw[0].cb = defer_again;
    sto_loop_defer(loop, &dw[0]);
    cr_assert_eq(sto_loop_run_once(loop, 1000), 0);
    cr_assert_eq(nran, 1, "one pass ran the work %d times", nran);
    t0 = sto_now_ms();
    for (int i = 1; i < AGAIN_MAX; i++)
        cr_assert_eq(sto_loop_run_once(loop, 1000), 0);
    cr_assert_eq(nran, AGAIN_MAX);
    /* four iterations with work queued: none waited for its 1 s timeout */
    cr_assert_lt(sto_now_ms() - t0, 1000, "an iteration with work queued slept");
    cr_assert_null(dw[0].head);
}
