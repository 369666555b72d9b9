/*
 * tmf.h - task management for commands that time out (internal to storage/): the
 * escalation state machine of one session and its request PDU. RFC 7143 §11.5, §11.6.
 *
 * A command unanswered past the command timeout gets an ABORT TASK; an abort that is
 * refused or unanswered within the abort timeout becomes a LOGICAL UNIT RESET of the
 * command's LUN; a LUN reset refused or unanswered within its timeout drops the connection
 * (the owner's recovery takes over). One request is in flight per session at a time, as in
 * open-iscsi; other commands that time out meanwhile wait their turn. The machine only
 * decides: session.c sends the PDUs, fails the commands and drops the connection.
 */
#ifndef TOEGW_STORAGE_TMF_H
#define TOEGW_STORAGE_TMF_H

#include <stdint.h>

/* Task Management Function Request / Response fields (byte offsets in the BHS). */
#define ISC_OFF_TMF_FUNCTION 1      /* 0x80 | function */
#define ISC_OFF_TMF_RTT 20          /* Referenced Task Tag */
#define ISC_OFF_TMF_REFCMDSN 32
#define ISC_OFF_TMF_EXPDATASN 36
#define ISC_OFF_TMF_RESPONSE 2

#define ISC_TMF_ABORT_TASK 1
#define ISC_TMF_LUN_RESET 5

/* Task management ITTs: low 16 bits beyond any task index (see session.c). */
#define ISC_ITT_TMF 0x0000fff5u

enum isc_tmf_state {
    ISC_TMF_IDLE,        /* nothing in flight */
    ISC_TMF_ABORTING,    /* ABORT TASK for ref_itt in flight */
    ISC_TMF_RESETTING,   /* LOGICAL UNIT RESET for lun in flight */
};

enum isc_tmf_action {
    ISC_TMF_NONE,            /* nothing to do */
    ISC_TMF_SEND_ABORT,      /* send ABORT TASK for ref_itt (isc_tmf_build) */
    ISC_TMF_SEND_LUN_RESET,  /* send LOGICAL UNIT RESET for lun (isc_tmf_build) */
    ISC_TMF_FAIL_TASK,       /* the target ended ref_itt: fail it if it is still running */
    ISC_TMF_FAIL_LUN,        /* the target ended every task of lun: fail those it had */
    ISC_TMF_DROP,            /* neither helped: drop the connection */
    ISC_TMF_UNEXPECTED,      /* a response to no request of ours: a protocol error */
};

struct isc_tmf {
    enum isc_tmf_state state;
    uint32_t ref_itt;        /* the command that timed out */
    uint32_t lun;            /* its LUN */
    uint32_t itt;            /* of the request in flight */
    uint32_t abort_itt;      /* of an abort overtaken by the LUN reset (late answers) */
    uint16_t gen;
    uint64_t deadline_ms;    /* when the request in flight times out */
    int abort_response;      /* how the target answered the abort, -1: it did not */
    int reset_response;      /* how it answered the LUN reset, -1: it did not */
};

void isc_tmf_reset(struct isc_tmf *t);
/* A sent command timed out. SEND_ABORT, or NONE while another request is in flight. */
enum isc_tmf_action isc_tmf_timed_out(struct isc_tmf *t, uint32_t ref_itt, uint32_t lun,
                                      uint64_t now_ms, uint32_t abort_ms);
/* A Task Management Function Response with this ITT and response code arrived. */
enum isc_tmf_action isc_tmf_response(struct isc_tmf *t, uint32_t itt, uint8_t response,
                                     uint64_t now_ms, uint32_t lun_reset_ms);
/* Time passed: SEND_LUN_RESET or DROP once the request in flight is past its deadline. */
enum isc_tmf_action isc_tmf_expired(struct isc_tmf *t, uint64_t now_ms, uint32_t lun_reset_ms);

/*
 * The BHS (ISC_BHS_LEN bytes, no data segment) of the request in flight: immediate, with
 * the session's next CmdSN (not consumed), and for ABORT TASK the aborted command's CmdSN.
 */
void isc_tmf_build(const struct isc_tmf *t, uint8_t *bhs, uint32_t cmdsn, uint32_t exp_statsn,
                   uint32_t ref_cmdsn);

/* "function complete", "task does not exist", ... ("no answer" for -1). */
const char *isc_tmf_response_name(int response);

#endif
