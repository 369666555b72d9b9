#!/usr/bin/env bash
#
# test_timeouts.sh - every timeout against a real tgtd that stops answering: tgtd is
# stopped with SIGSTOP (its sockets stay open, the kernel keeps accepting and buffering,
# nothing answers) and resumed with SIGCONT before or after the timeout under test.
#
# The client commands (no recovery: a timeout ends the command with exit 1 and one line
# naming what timed out):
#   - login timeout: `toegw read` against a stopped tgtd;
#   - command timeout: `toegw perf` when tgtd stops mid-run (ABORT TASK, LUN RESET, drop);
#   - NOP timeout: the same with pings on.
# toegw serve (sessions on the host stack, NBD clients, the REST API):
#   - NOP timeout: an idle session whose target stops is dropped and recovers after SIGCONT,
#     its data intact;
#   - command timeout: writes outstanding when tgtd stops escalate (ABORT TASK, LUN RESET,
#     counted and logged), the connection is dropped, the writes are held and complete
#     byte-exact after SIGCONT within the replacement timeout;
#   - replacement timeout: reads held past it fail (the NBD client gets an error, not a
#     hang), new I/O fails at once, and I/O works again once the session is back;
#   - login timeout: POST /api/v1/sessions against a stopped tgtd answers in time;
#   - DELETE of a session whose target is stopped, with writes in flight, and of a
#     recovering one: 204 in bounded time, nothing left behind (connections, fds);
#   - async event 1 (the scripted target of lib/hostile_target.py asks for a logout at
#     every connection's first READ): logout and login again, I/O held, byte-exact.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy cmp awk
h_need_toegw
# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

MIB=1048576
SIZE=$((16 * MIB))
h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:timeouts.one
h_lun_file 1 1 "$SIZE" 512
h_target_new 2 iqn.2024-01.org.example.toegw:timeouts.two
h_lun_file 2 1 "$SIZE" 512

STOPPED=
tgtd_stop() {
    kill -STOP "$H_TGTD_PID" && STOPPED=1
}
tgtd_cont() {
    kill -CONT "$H_TGTD_PID"
    STOPPED=
}

now() { date +%s.%N; }
# since T0 - seconds since T0, one decimal
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# le A B - A <= B (decimals)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# session_field SID JQ - one field of GET /api/v1/sessions/SID ("-" when absent).
session_field() {
    local code
    code=$(api GET "/api/v1/sessions/$1")
    [ "$code" = 200 ] || { echo "-"; return; }
    jq -r "$2 // \"-\"" "$H_TMP/api.json"
}

# wait_state SID STATE SECONDS - poll until the session is in STATE.
wait_state() {
    local end
    end=$(awk -v t="$3" -v n="$(now)" 'BEGIN { printf "%f", n + t }')
    while le "$(now)" "$end"; do
        [ "$(session_field "$1" .state)" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

# serve_fds - open descriptors of toegw serve.
serve_fds() {
    find "/proc/$SERVE_PID/fd" -mindepth 1 2>/dev/null | wc -l
}

# ---------------------------------------------------------------- client commands

# login timeout: tgtd takes the connection (the kernel does) and never answers the login
tgtd_stop
t0=$(now)
h_run "$TOEGW" read "$(h_url 1 1)" --stack host --length 512 --login-timeout 2
took=$(since "$t0")
tgtd_cont
h_expect_error timeouts.cli.login_timeout 1
h_check timeouts.cli.login_timeout_named "stderr: $(head -c 200 "$H_ERR")" \
    grep -q 'login to .* timed out after 2000 ms' "$H_ERR"
h_check timeouts.cli.login_timeout_bounded "took ${took}s for a 2 s login timeout" \
    le "$took" 6

# cli_perf_stopped NAME FLAGS... - `toegw perf` runs, tgtd stops 1.5 s in; the command
# must end with exit 1 and one line. Sets $took (seconds from the stop) and $perr.
cli_perf_stopped() {
    local name=$1 pid rc
    shift
    timeout -k 5 60 "$TOEGW" perf "$(h_url 1 1)" --stack host -t 40 -m 8 "$@" \
        >"$H_TMP/$name.out" 2>"$H_TMP/$name.err" </dev/null &
    pid=$!
    sleep 1.5
    tgtd_stop
    t0=$(now)
    wait "$pid"
    rc=$?
    took=$(since "$t0")
    tgtd_cont
    perr=$(head -c 400 "$H_TMP/$name.err")
    h_check "timeouts.cli.$name.exit1" "exit $rc, stderr: $perr" test "$rc" -eq 1
    h_check "timeouts.cli.$name.one_line" "stderr: $perr" \
        test "$(grep -c '' "$H_TMP/$name.err")" -eq 1
}

# command timeout: 1 s, then ABORT TASK (1 s), LUN RESET (1 s), the connection dropped
cli_perf_stopped command --nop-interval 0 --command-timeout 1 --abort-timeout 1 \
    --lun-reset-timeout 1
h_check timeouts.cli.command.named "stderr: $perr" \
    grep -q 'timed out after 1000 ms; abort task got no answer within 1000 ms, lun reset got no answer within 1000 ms' \
    "$H_TMP/command.err"
h_check timeouts.cli.command.bounded "took ${took}s after the stop (1 + 1 + 1 s)" le "$took" 7

# NOP timeout: a ping after 1 s of silence, unanswered for 1 s
cli_perf_stopped nop --nop-interval 1 --nop-timeout 1 --command-timeout 60
h_check timeouts.cli.nop.named "stderr: $perr" grep -q 'nop-out timed out after 1000 ms' \
    "$H_TMP/nop.err"
h_check timeouts.cli.nop.bounded "took ${took}s after the stop (1 + 1 s)" le "$took" 6

# a bad value is a usage error naming the flag
h_run "$TOEGW" read "$(h_url 1 1)" --command-timeout 0
h_expect_error timeouts.cli.bad_value 2
h_check timeouts.cli.bad_value_named "stderr: $(head -c 200 "$H_ERR")" \
    grep -q -- '--command-timeout must be seconds' "$H_ERR"

# ---------------------------------------------------------------- serve: NOP timeout

nbd_serve --nop-interval 1 --nop-timeout 1 --command-timeout 60 --login-timeout 2 \
    --replacement-timeout 30
h_log "serve pid $SERVE_PID (nop 1 s / 1 s)"
nbd_login nop 1 "$H_PORTAL" host || h_end
sid=${SID[nop]}
uri=${URI[nop.1]}
h_random "$H_TMP/nop.data" "$SIZE"
nbdcopy "$H_TMP/nop.data" "$uri" >"$H_TMP/nop.copy" 2>&1
h_check timeouts.serve.nop.seeded "nbdcopy: $(h__oneline "$(tail -c 200 "$H_TMP/nop.copy")")" \
    cmp -s "$H_TMP/nop.data" "$(h_lun_path 1 1)"
tgtd_stop
t0=$(now)
h_check timeouts.serve.nop.recovering "state $(session_field "$sid" .state)" \
    wait_state "$sid" recovering 8
took=$(since "$t0")
h_check timeouts.serve.nop.bounded "recovering ${took}s after the stop (1 + 1 s)" le "$took" 6
h_check timeouts.serve.nop.logged "no nop timeout in the log" \
    grep -q "session lost its connection; recovering session=$sid .* err=\"target stopped answering: nop-out timed out" \
    "$H_TMP/serve.log"
n=$(session_field "$sid" .counters.nop_timeouts)
h_check timeouts.serve.nop.counted "nop_timeouts $n" test "$n" -ge 1
tgtd_cont
h_check timeouts.serve.nop.recovers "state $(session_field "$sid" .state)" \
    wait_state "$sid" logged_in 20
nbdcopy "$uri" "$H_TMP/nop.back" >"$H_TMP/nop.back.log" 2>&1
h_check timeouts.serve.nop.data_intact "read back differs" cmp -s "$H_TMP/nop.data" \
    "$H_TMP/nop.back"
code=$(api DELETE "/api/v1/sessions/$sid")
h_check timeouts.serve.nop.delete "DELETE answered $code" test "$code" = 204
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
rm -f "$H_TMP/state/state.json"

# ---------------------------------------------------------------- serve: escalation

# the environment sets two of them, as TOEGW_* variables
TOEGW_NOP_INTERVAL=0 TOEGW_COMMAND_TIMEOUT=1 nbd_serve --abort-timeout 1 \
    --lun-reset-timeout 1 --login-timeout 2 --logout-timeout 2 --replacement-timeout 10
h_log "serve pid $SERVE_PID (no pings; command, abort, lun reset 1 s; replacement 10 s)"
fds0=$(serve_fds)

# login timeout over the API
tgtd_stop
t0=$(now)
body=$(jq -nc --arg p "$H_PORTAL" --arg t "${H_IQN[2]}" '{portal: $p, target: $t, stack: "host"}')
code=$(api POST /api/v1/sessions "$body")
took=$(since "$t0")
tgtd_cont
h_check timeouts.serve.login_timeout "POST answered $code: $(head -c 200 "$H_TMP/api.json")" \
    test "$code" = 504
h_check timeouts.serve.login_timeout_named "$(head -c 200 "$H_TMP/api.json")" \
    grep -q 'timed out after 2000 ms' "$H_TMP/api.json"
h_check timeouts.serve.login_timeout_bounded "answered after ${took}s" le "$took" 6

nbd_login cmd 1 "$H_PORTAL" host || h_end
sid=${SID[cmd]}
uri=${URI[cmd.1]}

# writes outstanding when tgtd stops; SIGCONT after the drop, before the replacement timeout
h_random "$H_TMP/cmd.data" "$SIZE"
tgtd_stop
t0=$(now)
timeout -k 5 90 nbdcopy "$H_TMP/cmd.data" "$uri" >"$H_TMP/cmd.copy" 2>&1 &
copy=$!
h_check timeouts.serve.cmd.recovering "state $(session_field "$sid" .state)" \
    wait_state "$sid" recovering 10
took=$(since "$t0")
h_check timeouts.serve.cmd.escalation_bounded "dropped ${took}s after the stop (1 + 1 + 1 s)" \
    le "$took" 7
h_check timeouts.serve.cmd.abort_logged "no abort task in the log" \
    grep -q 'timed out after 1000 ms; sending abort task' "$H_TMP/serve.log"
h_check timeouts.serve.cmd.lun_reset_logged "no lun reset in the log" \
    grep -q 'abort task got no answer within 1000 ms; sending lun reset' "$H_TMP/serve.log"
h_check timeouts.serve.cmd.held "the copy ended while the session was recovering" \
    kill -0 "$copy"
sleep 1
tgtd_cont
wait "$copy"
rc=$?
h_check timeouts.serve.cmd.copy_completes \
    "nbdcopy exit $rc: $(h__oneline "$(tail -c 300 "$H_TMP/cmd.copy")")" test "$rc" -eq 0
h_check timeouts.serve.cmd.byte_exact "the backing file differs from the data written" \
    cmp -s "$H_TMP/cmd.data" "$(h_lun_path 1 1)"
h_check timeouts.serve.cmd.logged_in "state $(session_field "$sid" .state)" \
    wait_state "$sid" logged_in 10
aborts=$(session_field "$sid" .counters.aborts)
resets=$(session_field "$sid" .counters.lun_resets)
ctos=$(session_field "$sid" .counters.command_timeouts)
h_check timeouts.serve.cmd.counted "aborts $aborts lun_resets $resets command_timeouts $ctos" \
    test "$aborts" -ge 1 -a "$resets" -ge 1 -a "$ctos" -ge 1
curl -s -m 5 "$API/metrics" -H "Authorization: Bearer $TOKEN" >"$H_TMP/metrics" 2>/dev/null
h_check timeouts.serve.cmd.metrics "no lun reset counter in /metrics" \
    grep -q "^toegw_session_lun_resets_total{.*} [1-9]" "$H_TMP/metrics"

# reads held past the replacement timeout fail; new reads fail at once; then all is back
tgtd_stop
t0=$(now)
timeout -k 5 90 nbdcopy "$uri" "$H_TMP/repl.back" >"$H_TMP/repl.copy" 2>&1 &
copy=$!
wait_state "$sid" recovering 10
wait "$copy"
rc=$?
took=$(since "$t0")
h_check timeouts.serve.repl.held_io_fails \
    "nbdcopy exit $rc after ${took}s: $(h__oneline "$(tail -c 300 "$H_TMP/repl.copy")")" \
    test "$rc" -ne 0 -a "$rc" -ne 124 -a "$rc" -ne 137
h_check timeouts.serve.repl.not_before "nbdcopy ended ${took}s after the stop, before the 3 + 10 s" \
    le 11 "$took"
h_check timeouts.serve.repl.bounded "nbdcopy ended ${took}s after the stop (3 + 10 s)" \
    le "$took" 20
h_check timeouts.serve.repl.logged "no replacement timeout in the log" \
    grep -q "session not back within the replacement timeout (10000 ms).* session=$sid" \
    "$H_TMP/serve.log"
t1=$(now)
timeout -k 5 30 nbdcopy "$uri" "$H_TMP/repl.fast" >"$H_TMP/repl.fast.log" 2>&1
rc=$?
took=$(since "$t1")
h_check timeouts.serve.repl.fails_fast "new i/o: nbdcopy exit $rc after ${took}s" \
    test "$rc" -ne 0 -a "$rc" -ne 124
h_check timeouts.serve.repl.fails_fast_bounded "new i/o took ${took}s to fail" le "$took" 3
tgtd_cont
h_check timeouts.serve.repl.back "state $(session_field "$sid" .state)" \
    wait_state "$sid" logged_in 20
nbdcopy "$uri" "$H_TMP/repl.after" >"$H_TMP/repl.after.log" 2>&1
h_check timeouts.serve.repl.io_works_again "read back differs from the data" \
    cmp -s "$H_TMP/cmd.data" "$H_TMP/repl.after"

# DELETE with the target stopped and writes in flight: the logout timeout bounds it
tgtd_stop
timeout -k 5 60 nbdcopy "$H_TMP/cmd.data" "$uri" >"$H_TMP/del.copy" 2>&1 &
copy=$!
sleep 0.5
t0=$(now)
code=$(api DELETE "/api/v1/sessions/$sid")
took=$(since "$t0")
h_check timeouts.serve.delete.stopped_target "DELETE answered $code: $(head -c 200 "$H_TMP/api.json")" \
    test "$code" = 204
h_check timeouts.serve.delete.bounded "DELETE took ${took}s (logout timeout 2 s)" le "$took" 5
wait "$copy"
rc=$?
h_check timeouts.serve.delete.io_fails "nbdcopy exit $rc: $(h__oneline "$(tail -c 200 "$H_TMP/del.copy")")" \
    test "$rc" -ne 0 -a "$rc" -ne 124 -a "$rc" -ne 137
code=$(api GET "/api/v1/sessions/$sid")
h_check timeouts.serve.delete.gone "GET answered $code" test "$code" = 404
tgtd_cont

# DELETE of a recovering session with reads held: at once
nbd_login del 2 "$H_PORTAL" host || h_end
sid=${SID[del]}
tgtd_stop
timeout -k 5 60 nbdcopy "${URI[del.1]}" "$H_TMP/del2.back" >"$H_TMP/del2.copy" 2>&1 &
copy=$!
h_check timeouts.serve.delete.recovering_first "state $(session_field "$sid" .state)" \
    wait_state "$sid" recovering 10
t0=$(now)
code=$(api DELETE "/api/v1/sessions/$sid")
took=$(since "$t0")
h_check timeouts.serve.delete.recovering "DELETE answered $code" test "$code" = 204
h_check timeouts.serve.delete.recovering_bounded "DELETE took ${took}s" le "$took" 2
wait "$copy"
rc=$?
h_check timeouts.serve.delete.held_io_fails "nbdcopy exit $rc" \
    test "$rc" -ne 0 -a "$rc" -ne 124 -a "$rc" -ne 137
tgtd_cont

# nothing left behind: no connection owned by the sessions, descriptors back to the start
api GET /api/v1/connections >/dev/null
h_check timeouts.serve.delete.no_connections "connections still owned by deleted sessions" \
    jq -e --arg a "${SID[cmd]}" --arg b "${SID[del]}" \
    'all(.[]; .owner != $a and .owner != $b)' "$H_TMP/api.json" >/dev/null
fds=$(serve_fds)
for _ in $(seq 25); do
    [ "$fds" -le "$fds0" ] && break
    sleep 0.2
    fds=$(serve_fds)
done
h_check timeouts.serve.delete.no_fd_leak "serve has $fds descriptors, $fds0 before the sessions" \
    test "$fds" -le "$fds0"
# async event 1: the scripted target asks for a logout at the first READ of every
# connection; the session logs out and in again (recovering, then logged_in) with the I/O
# held meanwhile, never ESHUTDOWN: a whole read of the export is byte-exact
# shellcheck source-path=SCRIPTDIR source=lib/hostile.sh
. "$(dirname "$0")/lib/hostile.sh"
if [ -z "$HT_PY" ]; then
    h_skip timeouts.serve.async_logout "python3 not found (scripts/install-deps installs it)"
elif ht_start async-logout 3261 "$H_TMP/cmd.data"; then
    body=$(jq -nc --arg t "$HT_IQN" '{portal: "127.0.0.1:3261", target: $t, stack: "host"}')
    code=$(api POST /api/v1/sessions "$body")
    h_check timeouts.serve.async_logout.login "POST answered $code: $(head -c 200 "$H_TMP/api.json")" \
        test "$code" = 201
    sid=$(jq -r '.id' "$H_TMP/api.json")
    vol=$(jq -r '.luns[0].volume' "$H_TMP/api.json")
    api GET "/api/v1/volumes/$vol" >/dev/null
    huri=$(jq -r '.export' "$H_TMP/api.json")
    timeout -k 5 60 nbdcopy "$huri" "$H_TMP/async.back" >"$H_TMP/async.copy" 2>&1
    rc=$?
    h_check timeouts.serve.async_logout.io_held \
        "nbdcopy exit $rc: $(h__oneline "$(tail -c 300 "$H_TMP/async.copy")")" test "$rc" -eq 0
    h_check timeouts.serve.async_logout.byte_exact "read back differs from the target's data" \
        cmp -s "$H_TMP/cmd.data" "$H_TMP/async.back"
    h_check timeouts.serve.async_logout.logged "no logout request in the log" \
        grep -q "session lost its connection; recovering session=$sid .* err=\"the target requested a logout (async event 1)\"" \
        "$H_TMP/serve.log"
    h_check timeouts.serve.async_logout.logged_in_again "state $(session_field "$sid" .state)" \
        wait_state "$sid" logged_in 10
    n=$(session_field "$sid" .counters.recoveries)
    h_check timeouts.serve.async_logout.recovered "recoveries $n" test "$n" -ge 1
    code=$(api DELETE "/api/v1/sessions/$sid")
    h_check timeouts.serve.async_logout.delete "DELETE answered $code" test "$code" = 204
    ht_stop
fi
h_check timeouts.serve.alive "toegw serve is gone" serve_alive
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
rc=$?
h_check timeouts.serve.sigterm_exit0 "toegw serve exited $rc" test "$rc" -eq 0
[ -n "$STOPPED" ] && tgtd_cont
h_end
