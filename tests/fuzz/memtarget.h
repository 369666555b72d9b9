/*
 * memtarget.h - an in-memory iSCSI target behind the transport interface, for the NBD
 * fuzzer.
 *
 * The NBD fuzzer's subject is the NBD server; the volume it exports needs an iSCSI target
 * that answers at the fuzzer's pace (thousands of inputs a second, on the storage loop's
 * thread, the same answers for the same requests). This is that target: one LUN of a
 * given size in memory, login without authentication, TEST UNIT READY, INQUIRY (standard,
 * pages 00h 80h 83h B0h), READ CAPACITY (10)/(16), REPORT LUNS, READ/WRITE (10)/(16),
 * SYNCHRONIZE CACHE, WRITE SAME (10)/(16), UNMAP, NOP, text, task management and logout,
 * with R2T for all write data (it negotiates InitialR2T=Yes, ImmediateData=No). It also
 * checks what the initiator sends (framing, CmdSN order, Data-Out against its R2T, data
 * segment lengths against what it declared) and calls fuzz_fail() on a violation.
 * The initiator's behaviour against real targets (tgtd, istgt) is the integration tests'.
 */
#ifndef TOEGW_TESTS_FUZZ_MEMTARGET_H
#define TOEGW_TESTS_FUZZ_MEMTARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "common/transport.h"

struct memtgt;

/* One LUN `lun` of `blocks` blocks of `block_size` bytes; NULL when out of memory. */
struct memtgt *memtgt_new(uint32_t lun, uint32_t block_size, uint64_t blocks);
void memtgt_free(struct memtgt *t);
/* Zero the LUN's data. */
void memtgt_clear(struct memtgt *t);

/* The manager's connector (struct sto_mgr_net): arg is the memtgt. One conn at a time. */
int memtgt_connect(void *arg, const char *owner, enum stk_policy policy, uint64_t reservation,
                   const struct sockaddr_in *dst, struct stk_conn **out, char *err,
                   size_t errlen);
void memtgt_release(void *arg, const char *owner, struct stk_conn *c, bool abort);

/* Connections made so far, and whether one is open and in the full feature phase. */
unsigned memtgt_connections(const struct memtgt *t);
bool memtgt_logged_in(const struct memtgt *t);
/* PDUs received so far, and whether nothing waits (no answer unread, no write's data). */
uint64_t memtgt_pdus(const struct memtgt *t);
bool memtgt_idle(const struct memtgt *t);

#endif
