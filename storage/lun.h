/*
 * lun.h - what a block client needs on top of the initiator: LUN discovery and probing
 * (REPORT LUNS, TEST UNIT READY with UNIT ATTENTION handling, INQUIRY + VPD, READ
 * CAPACITY), SCSI status/sense turned into -errno with a message, and blocking helpers
 * that run the storage loop until an operation completes (for the client commands).
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
