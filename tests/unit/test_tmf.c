/*
 * test_tmf.c - the escalation of a timed-out command (storage/tmf.c): ABORT TASK, LUN
 * RESET, drop, as decided from responses and deadlines; the request PDU byte by byte
 * (RFC 7143 §11.5).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/pdu.h"
#include "storage/tmf.h"

#define ITT 0x00070003u
#define ABORT_MS 15000
#define RESET_MS 30000

static struct isc_tmf fresh(void)
{
    struct isc_tmf t;

    memset(&t, 0, sizeof(t));
    isc_tmf_reset(&t);
    return t;
}

Test(tmf, abort_answered_fails_the_task)
{
    struct isc_tmf t = fresh();

    cr_assert_eq(isc_tmf_timed_out(&t, ITT, 3, 1000, ABORT_MS), ISC_TMF_SEND_ABORT);
    cr_assert_eq(t.state, ISC_TMF_ABORTING);
    cr_assert_eq(t.ref_itt, ITT);
    cr_assert_eq(t.lun, 3);
    cr_assert_eq(t.deadline_ms, 1000 + ABORT_MS);
    cr_assert_eq(t.itt & 0xffff, ISC_ITT_TMF, "the request's tag is no task's");
    /* a second command timing out meanwhile waits its turn */
    cr_assert_eq(isc_tmf_timed_out(&t, ITT + 1, 3, 1001, ABORT_MS), ISC_TMF_NONE);
    cr_assert_eq(isc_tmf_response(&t, t.itt, 0, 1200, RESET_MS), ISC_TMF_FAIL_TASK);
    cr_assert_eq(t.state, ISC_TMF_IDLE);
    cr_assert_eq(t.abort_response, 0);
}

Test(tmf, task_that_does_not_exist_is_over_too)
{
    struct isc_tmf t = fresh();

    isc_tmf_timed_out(&t, ITT, 0, 0, ABORT_MS);
    cr_assert_eq(isc_tmf_response(&t, t.itt, 1, 10, RESET_MS), ISC_TMF_FAIL_TASK);
}

Test(tmf, refused_abort_becomes_a_lun_reset)
{
    struct isc_tmf t = fresh();

    isc_tmf_timed_out(&t, ITT, 2, 0, ABORT_MS);
    uint32_t abort_itt = t.itt;
    cr_assert_eq(isc_tmf_response(&t, abort_itt, 5, 100, RESET_MS), ISC_TMF_SEND_LUN_RESET);
    cr_assert_eq(t.state, ISC_TMF_RESETTING);
    cr_assert_neq(t.itt, abort_itt, "the lun reset has a tag of its own");
    cr_assert_eq(t.deadline_ms, 100 + RESET_MS);
    cr_assert_eq(isc_tmf_response(&t, t.itt, 0, 200, RESET_MS), ISC_TMF_FAIL_LUN);
    cr_assert_eq(t.state, ISC_TMF_IDLE);
    cr_assert_eq(t.lun, 2);
}

Test(tmf, unanswered_abort_becomes_a_lun_reset_then_a_drop)
{
    struct isc_tmf t = fresh();

    isc_tmf_timed_out(&t, ITT, 1, 0, ABORT_MS);
    cr_assert_eq(isc_tmf_expired(&t, ABORT_MS - 1, RESET_MS), ISC_TMF_NONE, "not yet due");
    cr_assert_eq(isc_tmf_expired(&t, ABORT_MS, RESET_MS), ISC_TMF_SEND_LUN_RESET);
    cr_assert_eq(t.abort_response, -1);
    cr_assert_eq(isc_tmf_expired(&t, ABORT_MS + RESET_MS - 1, RESET_MS), ISC_TMF_NONE);
    cr_assert_eq(isc_tmf_expired(&t, ABORT_MS + RESET_MS, RESET_MS), ISC_TMF_DROP);
    cr_assert_eq(t.reset_response, -1);
    cr_assert_eq(t.state, ISC_TMF_IDLE);
}

Test(tmf, refused_lun_reset_drops)
{
    struct isc_tmf t = fresh();

    isc_tmf_timed_out(&t, ITT, 1, 0, ABORT_MS);
    isc_tmf_expired(&t, ABORT_MS, RESET_MS);
    cr_assert_eq(isc_tmf_response(&t, t.itt, 255, ABORT_MS + 1, RESET_MS), ISC_TMF_DROP);
    cr_assert_eq(t.reset_response, 255);
}

/* The abort's answer arriving after the LUN reset went out is no protocol error. */
Test(tmf, late_abort_answer_is_ignored)
{
    struct isc_tmf t = fresh();

    isc_tmf_timed_out(&t, ITT, 1, 0, ABORT_MS);
    uint32_t abort_itt = t.itt;
    isc_tmf_expired(&t, ABORT_MS, RESET_MS);
    cr_assert_eq(isc_tmf_response(&t, abort_itt, 0, ABORT_MS + 5, RESET_MS), ISC_TMF_NONE);
    cr_assert_eq(t.state, ISC_TMF_RESETTING, "the lun reset still decides");
    cr_assert_eq(isc_tmf_response(&t, t.itt, 0, ABORT_MS + 6, RESET_MS), ISC_TMF_FAIL_LUN);
}

Test(tmf, foreign_responses_are_protocol_errors)
{
    struct isc_tmf t = fresh();

    cr_assert_eq(isc_tmf_response(&t, 0x1234fff5u, 0, 0, RESET_MS), ISC_TMF_UNEXPECTED,
                 "nothing in flight");
    isc_tmf_timed_out(&t, ITT, 1, 0, ABORT_MS);
    cr_assert_eq(isc_tmf_response(&t, t.itt ^ 0x10000, 0, 1, RESET_MS), ISC_TMF_UNEXPECTED,
                 "another tag");
    /* a reset keeps the generation: a response meant for the last connection stays foreign */
    uint32_t old = t.itt;
    isc_tmf_reset(&t);
    isc_tmf_timed_out(&t, ITT, 1, 0, ABORT_MS);
    cr_assert_neq(t.itt, old);
}

Test(tmf, abort_task_pdu)
{
    struct isc_tmf t = fresh();
    uint8_t h[ISC_BHS_LEN];

    isc_tmf_timed_out(&t, ITT, 5, 0, ABORT_MS);
    memset(h, 0xaa, sizeof(h));
    isc_tmf_build(&t, h, 100, 77, 93);
    cr_assert_eq(h[0], 0x42, "immediate task management request");
    cr_assert_eq(h[1], 0x81, "final bit and ABORT TASK");
    cr_assert_eq(isc_get24(h, ISC_OFF_DSL), 0);
    cr_assert_eq(isc_get64(h, ISC_OFF_LUN), isc_lun_encode(5));
    cr_assert_eq(isc_get32(h, ISC_OFF_ITT), t.itt);
    cr_assert_eq(isc_get32(h, 20), ITT, "referenced task tag");
    cr_assert_eq(isc_get32(h, 24), 100, "cmdsn");
    cr_assert_eq(isc_get32(h, 28), 77, "expstatsn");
    cr_assert_eq(isc_get32(h, 32), 93, "refcmdsn: the aborted command's");
    cr_assert_eq(isc_get32(h, 36), 0, "expdatasn");
    for (int i = 40; i < ISC_BHS_LEN; i++)
        cr_assert_eq(h[i], 0, "reserved byte %d", i);
}

Test(tmf, lun_reset_pdu)
{
    struct isc_tmf t = fresh();
    uint8_t h[ISC_BHS_LEN];

    isc_tmf_timed_out(&t, ITT, 300, 0, ABORT_MS);
    isc_tmf_expired(&t, ABORT_MS, RESET_MS);
    isc_tmf_build(&t, h, 100, 77, 93);
    cr_assert_eq(h[1], 0x85, "final bit and LOGICAL UNIT RESET");
    cr_assert_eq(isc_get64(h, ISC_OFF_LUN), isc_lun_encode(300), "flat space lun");
    cr_assert_eq(isc_get32(h, 20), ISC_RSVD_TAG, "no referenced task");
    cr_assert_eq(isc_get32(h, 32), 0, "refcmdsn reserved");
}

Test(tmf, response_names)
{
    cr_assert_str_eq(isc_tmf_response_name(-1), "no answer");
    cr_assert_str_eq(isc_tmf_response_name(0), "function complete");
    cr_assert_str_eq(isc_tmf_response_name(255), "function rejected");
    cr_assert_str_eq(isc_tmf_response_name(77), "unknown response");
}
