#!/usr/bin/env bash
#
# test_nbd_load.sh - legal load never fails I/O: more NBD requests in flight than an iSCSI
# session has command slots (1024) wait for a slot instead of failing with EIO.
#
# In a private network namespace: tgtd with one 64 MiB LUN (tmpfs), toegw serve with a
# host-stack session to it. With tgtd stopped (SIGSTOP) so that nothing completes, ten
# libnbd connections send 128 reads each (1280 requests against 1024 slots), then tgtd
# resumes; then the same with nine connections of 128 writes of 32 KiB over distinct
# regions; every request must succeed, and the data read back over
# NBD must equal what was written (and the backing file).
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl cmp
h_need_toegw

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"
PY=$(nbd_python) || h_skip_all "python3 with libnbd's bindings (python3-libnbd) is missing"

MIB=1048576
h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:nbd-load
h_lun_file 1 1 $((64 * MIB)) 512
nbd_serve --no-toe
declare -A SID VOL URI
nbd_login host 1 "$H_PORTAL" host || h_end

cat >"$H_TMP/load.py" <<'PY'
import os, sys, nbd
uri, mode, conns, depth, size = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
tgtd = int(sys.argv[6])
backing = sys.argv[7] if len(sys.argv) > 7 else None
def say(*a):
    print(*a, file=sys.stderr)
hs = []
for _ in range(conns):
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)
errors, done = [], [0]
bufs = {}
def cb(tag):
    def f(err):
        if err.value:
            errors.append("%s: %s" % (tag, os.strerror(err.value)))
        done[0] += 1
        return 1
    return f
for c, h in enumerate(hs):
    for i in range(depth):
        off = (c * depth + i) * size % (64 << 20)
        if mode == "write":
            data = bytes([(c * depth + i) % 251 + 1]) * size
            b = nbd.Buffer.from_bytearray(bytearray(data))
            h.aio_pwrite(b, off, completion=cb("write %d@%d" % (size, off)))
        else:
            b = nbd.Buffer(size)
            h.aio_pread(b, off, completion=cb("read %d@%d" % (size, off)))
        bufs[(c, i)] = b
total = conns * depth
# let toegw take every request while the target is stopped, so that all are in flight
import signal, time
t0 = time.time()
while time.time() - t0 < 3:
    for h in hs:
        h.poll(0)
    time.sleep(0.05)
os.kill(tgtd, signal.SIGCONT)
while done[0] < total:
    for h in hs:
        if h.aio_in_flight():
            h.poll(1)
            break
    else:
        break
say("done %d of %d, %d errors" % (done[0], total, len(errors)), *errors[:2])
if mode == "write":
    # every region written once: read back through the export and compare
    h = hs[0]
    for c in range(conns):
        for i in range(depth):
            off = (c * depth + i) * size % (64 << 20)
            want = bytes([(c * depth + i) % 251 + 1]) * size
            if h.pread(size, off) != want:
                say("read back over nbd differs at", off)
                sys.exit(1)
            if backing:
                with open(backing, "rb") as f:
                    f.seek(off)
                    if f.read(size) != want:
                        say("backing file differs at", off)
                        sys.exit(1)
for h in hs:
    h.shutdown()
sys.exit(1 if errors or done[0] != total else 0)
PY

# tgtd stopped while the requests arrive: they all wait in toegw at once (load.py resumes it)
kill -STOP "$H_TGTD_PID"
H_CMD_TIMEOUT=120 h_run "$PY" "$H_TMP/load.py" "${URI[host.1]}" read 10 128 65536 "$H_TGTD_PID"
kill -CONT "$H_TGTD_PID"
h_check "$H_TEST.reads_wait_for_slots" "1280 reads in flight: $(h_last)" [ "$H_RC" -eq 0 ]
kill -STOP "$H_TGTD_PID"
H_CMD_TIMEOUT=120 h_run "$PY" "$H_TMP/load.py" "${URI[host.1]}" write 9 128 32768 \
    "$H_TGTD_PID" "$(h_lun_path 1 1)"
kill -CONT "$H_TGTD_PID"
h_check "$H_TEST.writes_wait_for_slots" "1152 writes in flight: $(h_last)" [ "$H_RC" -eq 0 ]
h_check "$H_TEST.serve_alive" "toegw serve stopped answering" serve_alive
h_end
