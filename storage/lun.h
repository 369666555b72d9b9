/*
 * lun.h - what a block client needs on top of the initiator: LUN discovery and probing
 * (REPORT LUNS, TEST UNIT READY with UNIT ATTENTION handling, INQUIRY + VPD, READ
 * CAPACITY) as one asynchronous probe (probe.c), SCSI status/sense turned into -errno with
 * a message, and blocking helpers that run the storage loop until an operation completes
 * (for the client commands).
 */
#ifndef TOEGW_STORAGE_LUN_H
#define TOEGW_STORAGE_LUN_H

#include <stddef.h>
#include <stdint.h>

#include "storage/iscsi.h"
#include "storage/scsi.h"

struct sto_lun_info {
    uint32_t lun;
    struct scsi_inquiry inq;
    struct scsi_capacity cap;
    struct scsi_block_limits limits;  /* zeroes when the LUN has no Block Limits page */
    char serial[64];
    char wwn[80];                     /* "naa.…" / "eui.…", or "" */
    uint64_t size_bytes;
};

/*
 * Turn a finished command into 0 or -errno, with a message naming `what` in err:
 * -ERANGE (lba out of range), -EROFS (write protected), -EAGAIN (not ready / busy /
 * unit attention), -EOPNOTSUPP (invalid opcode), -EINVAL (other illegal request), -EIO.
 */
int sto_scsi_check(const struct isc_scsi_result *r, const char *what, char *err, size_t errlen);

/*
 * The asynchronous probe (storage/probe.c), on the loop thread. A probe ends with exactly
 * one callback, after which it is gone; *out (may be NULL) is its handle until then. 0, or
 * -errno when its first command cannot be queued (no callback then).
 */
#define STO_PROBE_ERR_MAX 320
struct sto_probe;
/*
 * One LUN probed: 0 (li filled; a LUN that is not a disk has only li->inq), or -errno and
 * msg: -ENODEV (peripheral qualifier not 0: no usable unit), -ERANGE (a capacity that is no
 * block device), -EPROTO (an answer that lies), a failed command's error (TEST UNIT READY,
 * INQUIRY or READ CAPACITY), -ECONNRESET (the session dropped meanwhile). li is borrowed.
 */
typedef void (*sto_probe_cb)(void *arg, int err, const char *msg,
                             const struct sto_lun_info *li);
/* REPORT LUNS answered: 0 with luns (malloc'd, the callee frees) and n, or -errno and msg. */
typedef void (*sto_luns_cb)(void *arg, int err, const char *msg, uint32_t *luns, size_t n);
int sto_probe_lun(struct isc_session *s, uint32_t lun, sto_probe_cb cb, void *arg,
                  struct sto_probe **out);
int sto_probe_report_luns(struct isc_session *s, sto_luns_cb cb, void *arg,
                          struct sto_probe **out);
/*
 * Free a probe that has not ended, without its callback: only when none of its commands
 * can complete any more (its session is freed right after; isc_session_free completes
 * none).
 */
void sto_probe_abandon(struct sto_probe *p);

/* Blocking helpers: run `loop` until the operation finishes. Not for the appliance loop. */
int sto_sync_login(struct sto_loop *loop, struct isc_session *s);
int sto_sync_logout(struct sto_loop *loop, struct isc_session *s);
int sto_sync_send_targets(struct sto_loop *loop, struct isc_session *s,
                          struct isc_target_list **out);
/* Retries UNIT ATTENTION (up to 5 times) before giving up. */
int sto_sync_scsi(struct sto_loop *loop, struct isc_session *s, struct isc_scsi_req *req,
                  struct isc_scsi_result *res);

/* REPORT LUNS into a malloc'd array (caller frees). 0 or -errno with message. */
int sto_sync_report_luns(struct sto_loop *loop, struct isc_session *s, uint32_t **luns,
                         size_t *n, char *err, size_t errlen);
/* Probe one LUN. 0 or -errno with message. */
int sto_sync_probe_lun(struct sto_loop *loop, struct isc_session *s, uint32_t lun,
                       struct sto_lun_info *out, char *err, size_t errlen);

#endif
