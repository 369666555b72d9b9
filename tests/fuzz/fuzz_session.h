/*
 * fuzz_session.h - the initiator's part of fuzz_session, shared with the seed recorder
 * (tests/fuzz/tools/record_session.c), which runs the same client steps against a real
 * target so that what the target sent is a seed that drives those steps again.
 */
#ifndef TOEGW_TESTS_FUZZ_SESSION_H
#define TOEGW_TESTS_FUZZ_SESSION_H

#include <netinet/in.h>
#include <stdint.h>

#include "storage/iscsi.h"
#include "storage/loop.h"

/* The mode byte (the input's first byte). */
#define FUZZ_SES_AUTH 0x03          /* 0 none, 1 CHAP, 2 mutual CHAP, 3 none */
#define FUZZ_SES_CHAP 0x01
#define FUZZ_SES_MUTUAL 0x02
#define FUZZ_SES_HEADER_DIGEST 0x04 /* require CRC32C header digests */
#define FUZZ_SES_DATA_DIGEST 0x08   /* require CRC32C data digests */
#define FUZZ_SES_DISCOVERY 0x10     /* a discovery session: SendTargets */
#define FUZZ_SES_PATTERN_SHIFT 5    /* bits 5..7: how the bytes are delivered */

#define FUZZ_SES_TARGET "iqn.2026-11.io.toegw.fuzz:disk"
#define FUZZ_SES_CHAP_USER "fuzz-initiator"
#define FUZZ_SES_CHAP_SECRET "fuzz-secret-12chars"
#define FUZZ_SES_TARGET_USER "fuzz-target"
#define FUZZ_SES_TARGET_SECRET "fuzz-target-secret-1"
#define FUZZ_SES_PROBE_MAX 4        /* LUNs probed at most */
#define FUZZ_SES_TIMEOUT_MS 500     /* login and NOP timers while fuzzing */
#define FUZZ_SES_END_MS 5000        /* the session ends this soon after the last step */

/*
 * Run the client steps of `mode` over connections from `conn` (timers of timeout_ms; 0:
 * the defaults). Returns the login result (0 or -errno).
 */
int fuzz_session_run(struct sto_loop *loop, uint8_t mode, const struct isc_connector *conn,
                     const struct sockaddr_in *portal, uint32_t timeout_ms);
/* The same with the default timers and the real target's name (the recorder's). */
int fuzz_session_record(struct sto_loop *loop, uint8_t mode, const struct isc_connector *conn,
                        const struct sockaddr_in *portal, const char *target);

#endif
