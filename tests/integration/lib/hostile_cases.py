"""hostile_cases.py - the cases of hostile_target.py: what the target does wrong in each, the
toegw command that reaches that point, and what toegw must answer.

Each entry: (name, command, needs, auth, query, expect, what the target does)
  command: luns | read | write | discover | roundtrip (write then read back)
  needs:   the timeout flags toegw must take for the case to end quickly: login, nop, cmd;
           mem: toegw's peak memory must stay near a baseline read's (comma-separated, -
           for none)
  auth:    - | chap | mutual             query: the URL query (- for none)
  expect:  ok (exit 0, byte-exact), or an extended regex (case-insensitive) that the
           one-line error must match (exit 1)
PARAMS holds the target-side parameters a case changes.
"""

CASES = [
    # baselines: a correct target must work, byte for byte
    ("baseline-luns", "luns", "-", "-", "-", "ok", "correct target: report luns and probe"),
    ("baseline-roundtrip", "roundtrip", "-", "-", "-", "ok",
     "correct target: write then read back"),
    ("baseline-discover", "discover", "-", "-", "-", "ok", "correct SendTargets answer"),
    ("baseline-chap-mutual", "luns", "-", "mutual", "-", "ok", "correct mutual CHAP"),
    ("baseline-digests", "read", "-", "-", "header_digest=crc32c&data_digest=crc32c", "ok",
     "correct CRC32C header and data digests"),
    ("async-vendor-ignored", "read", "-", "-", "-", "ok",
     "a vendor-specific async message (event 255) in the middle of a read"),
    ("async-scsi-event-ignored", "read", "-", "-", "-", "ok",
     "a SCSI async event (event 0) with sense data in the middle of a read"),
    # login
    ("login-bad-status", "luns", "-", "-", "-", "status",
     "login response with an undefined status class (0x07/0x42)"),
    ("login-junk", "luns", "-", "-", "-", "opcode|not an iscsi|pdu",
     "an HTTP error page instead of a login response (its first 48 bytes announce a "
     "320-byte AHS that never comes)"),
    ("login-wrong-opcode", "luns", "-", "-", "-", "login|nop-in|opcode",
     "a NOP-In in answer to the login request"),
    ("login-huge-dsl", "luns", "-", "-", "-", "bytes|segment|length",
     "login response header announcing a 16 MiB data segment"),
    ("login-version", "luns", "-", "-", "-", "version",
     "login response with VersionActive 5"),
    ("login-never-transit", "luns", "-", "-", "-", "converge|rounds|transit",
     "operational stage answered with T=0 forever"),
    ("login-no-tsih", "luns", "-", "-", "-", "session handle|tsih",
     "normal session login completed with TSIH 0"),
    ("login-continue-endless", "luns", "-", "-", "-", "exceeds|too long|login text",
     "login responses with the C bit set forever (8 KiB each)"),
    ("silent-mid-login", "luns", "login", "-", "-", "timed out|timeout",
     "20 bytes of a login response header, then nothing"),
    # text keys
    ("keys-malformed", "luns", "-", "-", "-", "malformed|key|text",
     "operational answer with a key without '='"),
    ("keys-repeated", "luns", "-", "-", "-", "repeat|twice|duplicate|more than once|again",
     "MaxBurstLength answered twice with different values"),
    ("keys-digest-downgrade", "read", "-", "-", "header_digest=crc32c", "digest",
     "HeaderDigest=CRC32C agreed, then HeaderDigest=None offered in a later round"),
    ("keys-digest-reject", "luns", "-", "-", "-", "digest",
     "HeaderDigest=None answered Reject, then header digests used anyway"),
    ("keys-mrdsl-huge", "luns", "-", "-", "-", "MaxRecvDataSegmentLength",
     "target declares MaxRecvDataSegmentLength=16777216 (above 2^24-1)"),
    ("keys-mrdsl-tiny", "luns", "-", "-", "-", "MaxRecvDataSegmentLength",
     "target declares MaxRecvDataSegmentLength=511 (below 512)"),
    ("keys-burst-above-offer", "luns", "-", "-", "-", "MaxBurstLength",
     "MaxBurstLength answered above the offer but within range (the result is the "
     "minimum)"),
    # CHAP
    ("chap-bad-algorithm", "luns", "-", "chap", "-", "algorithm|CHAP_A",
     "CHAP_A=99, which was not offered"),
    ("chap-short-challenge", "luns", "-", "chap", "-", "challenge|CHAP_C",
     "a 1-byte CHAP_C"),
    ("chap-huge-challenge", "luns", "-", "chap", "-", "challenge|CHAP_C",
     "a 1100-byte CHAP_C"),
    ("chap-bad-id", "luns", "-", "chap", "-", "CHAP_I|identifier",
     "CHAP_I=300"),
    ("chap-mutual-wrong", "luns", "-", "mutual", "-", "mutual",
     "mutual CHAP answered with a wrong CHAP_R"),
    ("chap-mutual-missing", "luns", "-", "mutual", "-", "mutual",
     "mutual CHAP asked, the target transits without CHAP_N/CHAP_R"),
    # SendTargets
    ("text-malformed", "discover", "-", "-", "-", "sendtargets|malformed",
     "SendTargets answer with a key without '='"),
    ("text-endless", "discover", "-", "-", "-", "sendtargets|exceeds|too long",
     "SendTargets answer continued (C bit) forever"),
    # Data-In
    ("reportluns-overlap", "luns", "-", "-", "-", "data-in|overlap",
     "REPORT LUNS answered with a list 4 x the allocation length, in Data-In PDUs at "
     "overlapping offsets (1.5 x the allocation length in total)"),
    ("vpd00-overlap", "luns", "-", "-", "-", "data-in|overlap",
     "VPD 0x00 with page length 0xffff in Data-In PDUs at overlapping offsets (750 bytes "
     "into 255)"),
    ("vpd83-overlap", "luns", "-", "-", "-", "data-in|overlap",
     "VPD 0x83 with page length 0xffff in Data-In PDUs at overlapping offsets"),
    ("datain-overlap", "read", "-", "-", "-", "data-in|overlap|order",
     "READ data in PDUs that overlap (correct bytes, 4.5 x the length in total)"),
    ("datain-repeat", "read", "-", "-", "-", "data-in|repeat|order",
     "READ data: the second PDU sent twice, the third never (byte count still adds up)"),
    ("datain-gap", "read", "-", "-", "-", "data-in|gap|order",
     "READ data: the second quarter skipped, status GOOD without a residual"),
    ("datain-out-of-order", "read", "-", "-", "-", "data-in|order",
     "READ data: PDUs in the order 1, 0, 2, 3 of offsets (DataPDUInOrder=Yes)"),
    ("datain-beyond", "read", "-", "-", "-", "beyond|data-in",
     "READ data: the last PDU runs 512 bytes past the expected length"),
    ("datain-datasn", "read", "-", "-", "-", "datasn|sequence",
     "READ data: the second PDU has DataSN 5"),
    ("datain-residual-lie", "read", "-", "-", "-", "residual",
     "READ data all sent, status says half of it is missing (underflow residual)"),
    ("datain-short-no-residual", "read", "-", "-", "-", "residual|short|only|missing",
     "READ data: half of it, status GOOD without a residual"),
    ("datain-status-no-final", "read", "-", "-", "-", "final",
     "READ data: the status PDU has S but not F"),
    ("datain-unknown-itt", "read", "-", "-", "-", "unknown task|task tag|itt",
     "READ data for a task tag that is not in use"),
    ("datain-never-final", "read", "cmd", "-", "-", "timed out|timeout",
     "READ data without F or S bits ever, no status"),
    # R2T
    ("r2t-beyond", "write", "-", "-", "-", "r2t",
     "R2T for 64 KiB at 4 KiB before the end of the write"),
    ("r2t-too-many", "write", "-", "-", "-", "r2t",
     "two R2Ts outstanding at once with MaxOutstandingR2T=1"),
    # responses and rejects
    ("rsp-check-before-dataout", "write", "-", "-", "-", "write error|medium error|check",
     "each write (immediate data, unsolicited Data-Out) gets an R2T for the rest and a CHECK "
     "CONDITION as soon as its header arrives, before any of its Data-Out is read"),
    ("reject-write-immediate", "write", "-", "-", "-", "reject",
     "each write with immediate data gets an R2T for the rest and a Reject as soon as its "
     "header arrives, before any of its Data-Out is read"),
    ("rsp-unknown-itt", "luns", "-", "-", "-", "unknown task|task tag|itt",
     "SCSI response for a task tag that is not in use"),
    ("rsp-sense-long", "read", "-", "-", "-", "sense|unrecovered read error",
     "CHECK CONDITION whose sense length (1024) is longer than the segment"),
    # NOP
    ("nop-only", "read", "cmd", "-", "-", "timed out|timeout",
     "answers the LUN probe, then NOPs (and pings) but never a READ/WRITE or a task "
     "management request"),
    ("nop-flood", "read", "cmd,mem", "-", "-", "timed out|timeout|flood|nop",
     "at the first READ/WRITE: a flood of NOP-In pings (32 MiB) while never reading from "
     "the socket"),
    ("no-answer-abort-ok", "read", "cmd", "-", "-", "timed out|timeout|abort",
     "never answers READ, answers ABORT TASK and LUN RESET"),
    # async messages
    ("async-logout", "read", "-", "-", "-", "logout",
     "AsyncEvent 1 (logout request) at the first READ"),
    ("async-drop", "read", "-", "-", "-", "async|drop",
     "AsyncEvent 2 (dropping the connection) at the first READ, then close"),
    ("async-drop-all", "read", "-", "-", "-", "async|drop",
     "AsyncEvent 3 (dropping all connections) at the first READ, then close"),
    ("async-vendor-oversize", "read", "-", "-", "-", "segment|above|async",
     "vendor async message with 300000 bytes of data (above the initiator's MRDSL)"),
    # CmdSN window, capacity, REPORT LUNS, VPD
    ("maxcmdsn-closed", "read", "cmd", "-", "-", "timed out|timeout|window|cmdsn",
     "MaxCmdSN = ExpCmdSN - 1 from the login on; commands outside the window dropped (NOPs "
     "answered)"),
    ("maxcmdsn-frozen", "read", "cmd", "-", "-", "timed out|timeout|window|cmdsn",
     "a window of 4; from the first READ on MaxCmdSN never advances (NOPs answered)"),
    ("limits-64k", "read", "-", "-", "-", "ok",
     "Block Limits VPD: at most 64 KiB per command (a legal limit the initiator must split "
     "for)"),
    ("capacity-2e56", "luns", "-", "-", "-", "capacity|too large|overflow",
     "READ CAPACITY: last LBA 2^56 with 4096-byte blocks"),
    ("blocksize-3", "luns", "-", "-", "-", "block size",
     "READ CAPACITY: block size 3"),
    ("blocksize-0", "luns", "-", "-", "-", "block size",
     "READ CAPACITY 10 and 16: block size 0"),
    ("reportluns-huge", "luns", "-", "-", "-",
     "report luns.*(length|list|malformed|large|bytes)",
     "REPORT LUNS list length 0xFFFFFFF8 in a 16-byte answer"),
    ("vpd-length-lie", "luns", "-", "-", "-", "vpd|page",
     "VPD 0x00 / 0x83 page lengths of 0xfffc / 0x200 with 8 / 40 bytes sent, status GOOD"),
    # silence
    ("silent-accept", "luns", "login", "-", "-", "timed out|timeout",
     "accepts the TCP connection, never says anything"),
    ("silent-after-login", "read", "nop", "-", "-", "timed out|timeout|stopped answering",
     "logs in, then never answers anything (NOPs included)"),
    ("silent-mid-command", "read", "nop", "-", "-", "timed out|timeout|stopped answering",
     "sends a Data-In header and half its data, then nothing"),
    # digests
    ("digest-header-corrupt", "read", "-", "-", "header_digest=crc32c",
     "header digest mismatch", "corrupts the header digest of its first full-feature PDU"),
    ("digest-data-corrupt", "read", "-", "-", "data_digest=crc32c",
     "data digest mismatch", "corrupts the data digest of its first Data-In"),
]
CASE_NAMES = {c[0] for c in CASES}

# Target-side parameters that a case changes.
PARAMS = {
    "rsp-check-before-dataout": dict(InitialR2T=False, FirstBurstLength=262144,
                                     MaxBurstLength=1048576,
                                     MaxRecvDataSegmentLength=8192, max_transfer=0,
                                     rcvbuf=16384, throttle=True),
    "reject-write-immediate": dict(InitialR2T=False, FirstBurstLength=262144,
                                   MaxBurstLength=1048576,
                                   MaxRecvDataSegmentLength=8192, max_transfer=0,
                                   rcvbuf=16384, throttle=True),
    "capacity-2e56": dict(block_size=4096),
    "maxcmdsn-frozen": dict(window=4),
    "limits-64k": dict(max_transfer=-65536),
}
