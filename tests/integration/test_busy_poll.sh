#!/usr/bin/env bash
#
# test_busy_poll.sh - adaptive busy-polling (common/spin.h): the TOE firmware's
# (--toe-busy-poll, default 200 µs) and the storage loops' (--busy-poll, default 0). Data
# moves right with it on and off, and an idle thread stops spinning.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with one 32 MiB LUN of random data.
# Checks:
#   - --toe-busy-poll and --busy-poll refuse 10001, -1 and words, and say the range, for
#     serve and perf;
#   - serve with the default: the adapter's log line says busy_poll 200 us; a session
#     through the TOE reads byte-exact over NBD (nbdcopy), twice at once;
#   - then, idle (the session logged in, no I/O) for 3 s, the firmware thread (toe-fw) uses
#     under a tenth of a CPU: the poll adapts to long gaps and stops spinning;
#   - serve with --toe-busy-poll 0: busy_poll 0 us, the same bytes read back;
#   - serve with --busy-poll 200 and --storage-threads 1: a session on the host stack and one
#     through the TOE read byte-exact; idle for 3 s, the storage thread (toegw-sto0) and the
#     firmware together use under a tenth of a CPU;
#   - `toegw perf --stack toe --toe-busy-poll 0` and with 200, and `toegw perf --stack host
#     --busy-poll 200`, complete reads.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy
h_need_toe

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

SIZE=$((32 * 1048576))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:busypoll
h_lun_file 1 1 "$SIZE" 512
h_random "$(h_lun_path 1 1)" "$SIZE"

# --- the flag ------------------------------------------------------------------------------

for flag in toe-busy-poll busy-poll; do
    for bad in 10001 -1 fast; do
        h_run "$TOEGW" serve --"$flag" "$bad" --state-dir "$H_TMP/bad"
        h_check "$H_TEST.serve_refuses_${flag}_$bad" "serve --$flag $bad: $(h_last)" test "$H_RC" = 2
        h_check "$H_TEST.serve_refusal_says_range_${flag}_$bad" "the refusal does not say the range: $(h_last)" grep -q "from 0 to 10000" "$H_ERR"
        h_run "$TOEGW" perf "iscsi://192.0.2.1:3260/${H_IQN[1]}/1" --"$flag" "$bad" -t 1
        h_check "$H_TEST.perf_refuses_${flag}_$bad" "perf --$flag $bad: $(h_last)" test "$H_RC" = 2
    done
done

# thread_ticks NAME - CPU ticks of serve's thread NAME ("none": no such thread)
thread_ticks() { h_thread_ticks "$SERVE_PID" "$1"; }
fw_ticks() { thread_ticks toe-fw; }

# read_both TAG [VOLTAG...] - nbdcopy reads of the volumes at once (t1 twice by default),
# each compared with the LUN
read_both() {
    local tag=$1 rc=0 p i=0 v pids=()
    shift
    [ $# -gt 0 ] || set -- t1 t1
    for v in "$@"; do
        i=$((i + 1))
        nbdcopy "${URI[$v.1]}" "$H_TMP/read.$tag.$i" 2>"$H_TMP/nbdcopy.$tag.$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    h_check "$H_TEST.$tag.reads_complete" "an nbdcopy failed: $(cat "$H_TMP"/nbdcopy."$tag".*.err | head -c 300)" test "$rc" = 0
    for ((k = 1; k <= i; k++)); do
        h_check "$H_TEST.$tag.read_${k}_byte_exact" "NBD read $k differs from the LUN" cmp -s "$H_TMP/read.$tag.$k" "$(h_lun_path 1 1)"
    done
}

# --- the default ---------------------------------------------------------------------------

nbd_serve --log-level info
h_check "$H_TEST.default_logged" "the adapter's log line does not say busy_poll 200 us: $(grep -m1 'adapter up' "$H_TMP/serve.log")" grep -q "busy_poll 200 us" "$H_TMP/serve.log"
nbd_login t1 1 192.0.2.1 toe
read_both default

sleep 1    # the last reads' gaps are behind the adaptation
t0=$(fw_ticks)
sleep 3
t1=$(fw_ticks)
h_check "$H_TEST.firmware_thread_found" "serve has no toe-fw thread" test "$t0" != none -a "$t1" != none
hz=$(getconf CLK_TCK)
h_log "toe-fw used $((t1 - t0)) ticks of $((3 * hz)) while idle"
h_check "$H_TEST.idle_firmware_sleeps" "the idle firmware used $((t1 - t0)) of $((3 * hz)) CPU ticks in 3 s (at most a tenth expected)" \
    test $((t1 - t0)) -le $((3 * hz / 10))
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null

# --- off -----------------------------------------------------------------------------------

rm -rf "$H_TMP/state"
nbd_serve --log-level info --toe-busy-poll 0
h_check "$H_TEST.off_logged" "the adapter's log line does not say busy_poll 0 us: $(grep -m1 'adapter up' "$H_TMP/serve.log")" grep -q "busy_poll 0 us" "$H_TMP/serve.log"
nbd_login t1 1 192.0.2.1 toe
read_both off
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null

# --- the storage loop's, with the firmware's ------------------------------------------------

rm -rf "$H_TMP/state"
h_target_new 2 iqn.2024-01.org.example.toegw:busypoll2
h_lun_file 2 1 "$SIZE" 512
cp "$(h_lun_path 1 1)" "$(h_lun_path 2 1)"
nbd_serve --busy-poll 200 --storage-threads 1
nbd_login t1 1 127.0.0.1 host
nbd_login t2 2 192.0.2.1 toe
read_both loop t1 t2
sleep 1
l0=$(thread_ticks toegw-sto0)
f0=$(fw_ticks)
sleep 3
l1=$(thread_ticks toegw-sto0)
f1=$(fw_ticks)
h_check "$H_TEST.loop_thread_found" "serve has no toegw-sto0 thread" test "$l0" != none -a "$l1" != none
used=$((l1 - l0 + f1 - f0))
h_log "toegw-sto0 and toe-fw used $used ticks of $((3 * hz)) while idle"
h_check "$H_TEST.idle_loop_sleeps" "the idle storage loop and firmware used $used of $((3 * hz)) CPU ticks in 3 s (at most a tenth expected)" \
    test "$used" -le $((3 * hz / 10))
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null

# --- toegw perf ----------------------------------------------------------------------------

for bp in 0 200; do
    h_run "$TOEGW" perf "iscsi://192.0.2.1:3260/${H_IQN[1]}/1" --stack toe --toe-busy-poll "$bp" -b 8 -m 1 -t 1 --json
    h_check "$H_TEST.perf_$bp" "toegw perf --toe-busy-poll $bp: $(h_last)" h_json '.iops > 0 and .errors == 0 and .stack == "toe"' "$H_OUT"
done
h_run "$TOEGW" perf "iscsi://127.0.0.1:3260/${H_IQN[1]}/1" --stack host --busy-poll 200 -b 8 -m 1 -t 1 --json
h_check "$H_TEST.perf_host_busy_poll" "toegw perf --busy-poll 200: $(h_last)" h_json '.iops > 0 and .errors == 0 and .stack == "host"' "$H_OUT"

h_end
