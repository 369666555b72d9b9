/*
 * tmf.c - the escalation of a command that timed out: ABORT TASK, then LOGICAL UNIT
 * RESET, then dropping the connection (RFC 7143 §11.5, §11.6; open-iscsi's order).
 */
#include "storage/tmf.h"

#include <string.h>

#include "storage/pdu.h"

void isc_tmf_reset(struct isc_tmf *t)
{
    uint16_t gen = t->gen;

    memset(t, 0, sizeof(*t));
    t->gen = gen; /* a late answer to a request of the last connection stays foreign */
    t->abort_response = t->reset_response = -1;
}

static void next_request(struct isc_tmf *t, uint64_t now_ms, uint32_t timeout_ms)
{
    t->gen++;
    t->itt = ((uint32_t)t->gen << 16) | ISC_ITT_TMF;
    t->deadline_ms = now_ms + timeout_ms;
}

enum isc_tmf_action isc_tmf_timed_out(struct isc_tmf *t, uint32_t ref_itt, uint32_t lun,
                                      uint64_t now_ms, uint32_t abort_ms)
{
    if (t->state != ISC_TMF_IDLE)
        return ISC_TMF_NONE;
    t->state = ISC_TMF_ABORTING;
    t->ref_itt = ref_itt;
    t->lun = lun;
    t->abort_itt = 0;
    t->abort_response = t->reset_response = -1;
    next_request(t, now_ms, abort_ms);
    return ISC_TMF_SEND_ABORT;
}

/* The abort did not end the task (refused, or no answer in time): reset its LUN. */
static enum isc_tmf_action escalate(struct isc_tmf *t, uint64_t now_ms, uint32_t lun_reset_ms)
{
    t->state = ISC_TMF_RESETTING;
    t->abort_itt = t->itt;
    next_request(t, now_ms, lun_reset_ms);
    return ISC_TMF_SEND_LUN_RESET;
}

enum isc_tmf_action isc_tmf_response(struct isc_tmf *t, uint32_t itt, uint8_t response,
                                     uint64_t now_ms, uint32_t lun_reset_ms)
{
    if (t->state == ISC_TMF_RESETTING && t->abort_itt && itt == t->abort_itt) {
        /* the abort's answer came after we gave up on it: the LUN reset decides now */
        t->abort_response = response;
        return ISC_TMF_NONE;
    }
    if (t->state == ISC_TMF_IDLE || itt != t->itt)
        return ISC_TMF_UNEXPECTED;
    if (t->state == ISC_TMF_ABORTING) {
        t->abort_response = response;
        /* complete, or the target never had it / already answered it: the task is over */
        if (response == 0 || response == 1) {
            t->state = ISC_TMF_IDLE;
            return ISC_TMF_FAIL_TASK;
        }
        return escalate(t, now_ms, lun_reset_ms);
    }
    t->reset_response = response;
    t->state = ISC_TMF_IDLE;
    return response == 0 ? ISC_TMF_FAIL_LUN : ISC_TMF_DROP;
}

enum isc_tmf_action isc_tmf_expired(struct isc_tmf *t, uint64_t now_ms, uint32_t lun_reset_ms)
{
    if (t->state == ISC_TMF_IDLE || now_ms < t->deadline_ms)
        return ISC_TMF_NONE;
    if (t->state == ISC_TMF_ABORTING)
        return escalate(t, now_ms, lun_reset_ms);
    t->state = ISC_TMF_IDLE;
    return ISC_TMF_DROP;
}

void isc_tmf_build(const struct isc_tmf *t, uint8_t *bhs, uint32_t cmdsn, uint32_t exp_statsn,
                   uint32_t ref_cmdsn)
{
    bool abort = t->state == ISC_TMF_ABORTING;

    memset(bhs, 0, ISC_BHS_LEN);
    bhs[ISC_OFF_OPCODE] = ISC_OP_IMMEDIATE | ISC_OP_TMF_REQ;
    bhs[ISC_OFF_TMF_FUNCTION] = ISC_FLAG_FINAL | (abort ? ISC_TMF_ABORT_TASK
                                                        : ISC_TMF_LUN_RESET);
    isc_put64(bhs, ISC_OFF_LUN, isc_lun_encode(t->lun));
    isc_put32(bhs, ISC_OFF_ITT, t->itt);
    isc_put32(bhs, ISC_OFF_TMF_RTT, abort ? t->ref_itt : ISC_RSVD_TAG);
    isc_put32(bhs, ISC_OFF_CMDSN, cmdsn);
    isc_put32(bhs, ISC_OFF_EXPSTATSN, exp_statsn);
    isc_put32(bhs, ISC_OFF_TMF_REFCMDSN, abort ? ref_cmdsn : 0);
    isc_put32(bhs, ISC_OFF_TMF_EXPDATASN, 0);
}

const char *isc_tmf_response_name(int response)
{
    switch (response) {
    case -1: return "no answer";
    case 0: return "function complete";
    case 1: return "task does not exist";
    case 2: return "lun does not exist";
    case 3: return "task still allegiant";
    case 4: return "task allegiance reassignment not supported";
    case 5: return "task management function not supported";
    case 6: return "function authorization failed";
    case 255: return "function rejected";
    default: return "unknown response";
    }
}
