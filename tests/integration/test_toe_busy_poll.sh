#!/usr/bin/env bash
#
# test_toe_busy_poll.sh - the TOE firmware's adaptive busy-poll (--toe-busy-poll, default
# 200 µs; toe_emu/fw.c): it speeds up the data path and costs nothing when idle.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with one 32 MiB LUN of random data.
# Checks:
#   - --toe-busy-poll refuses 10001, -1 and words, and says the range, for serve and perf;
#   - serve with the default: the adapter's log line says busy_poll 200 us; a session
#     through the TOE reads byte-exact over NBD (nbdcopy), twice at once;
#   - then, idle (the session logged in, no I/O) for 3 s, the firmware thread (toe-fw) uses
#     under a tenth of a CPU: the poll adapts to long gaps and stops spinning;
#   - serve with --toe-busy-poll 0: busy_poll 0 us, the same bytes read back;
#   - `toegw perf --stack toe --toe-busy-poll 0` and with 200 both complete reads.
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

for bad in 10001 -1 fast; do
    h_run "$TOEGW" serve --toe-busy-poll "$bad" --state-dir "$H_TMP/bad"
    h_check "$H_TEST.serve_refuses_$bad" "serve --toe-busy-poll $bad: $(h_last)" test "$H_RC" = 2
    h_check "$H_TEST.serve_refusal_says_range_$bad" "the refusal does not say the range: $(h_last)" grep -q "from 0 to 10000" "$H_ERR"
    h_run "$TOEGW" perf "iscsi://192.0.2.1:3260/${H_IQN[1]}/1" --toe-busy-poll "$bad" -t 1
    h_check "$H_TEST.perf_refuses_$bad" "perf --toe-busy-poll $bad: $(h_last)" test "$H_RC" = 2
done

# CPU ticks (user + system) of the firmware thread of serve
fw_ticks() {
    local f
    for f in /proc/"$SERVE_PID"/task/*; do
        if [ "$(cat "$f/comm" 2>/dev/null)" = toe-fw ]; then
            awk '{ print $14 + $15 }' "$f/stat"
            return
        fi
    done
    echo none
}

# read_both TAG - two nbdcopy reads of the volume at once, each compared with the LUN
read_both() {
    local rc=0 p pids=()
    for i in 1 2; do
        nbdcopy "${URI[t1.1]}" "$H_TMP/read.$1.$i" 2>"$H_TMP/nbdcopy.$1.$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    h_check "$H_TEST.$1.reads_complete" "an nbdcopy failed: $(cat "$H_TMP"/nbdcopy."$1".*.err | head -c 300)" test "$rc" = 0
    for i in 1 2; do
        h_check "$H_TEST.$1.read_${i}_byte_exact" "NBD read $i differs from the LUN" cmp -s "$H_TMP/read.$1.$i" "$(h_lun_path 1 1)"
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

# --- toegw perf ----------------------------------------------------------------------------

for bp in 0 200; do
    h_run "$TOEGW" perf "iscsi://192.0.2.1:3260/${H_IQN[1]}/1" --stack toe --toe-busy-poll "$bp" -b 8 -m 1 -t 1 --json
    h_check "$H_TEST.perf_$bp" "toegw perf --toe-busy-poll $bp: $(h_last)" h_json '.iops > 0 and .errors == 0 and .stack == "toe"' "$H_OUT"
done

h_end
