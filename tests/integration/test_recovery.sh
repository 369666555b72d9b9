#!/usr/bin/env bash
#
# test_recovery.sh - a session that loses its connection recovers, and the volume I/O in
# flight meanwhile is held and completed, not failed.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with two targets, toegw serve with
# two sessions through 192.0.2.1, both placed on the TOE: one with "stack":"auto", one with
# "stack":"toe". While nbdcopy writes 64 MiB of random data to each session's export, the
# TOE's link goes down (PATCH /api/v1/stacks/toe):
#   - auto: the session logs in again at once, the broker placing it on the host stack with
#     the reason "toe link down"; the copy finishes and the backing file equals the data;
#   - toe: no fallback is allowed, so the session stays "recovering" and its copy is held;
#     when the link comes back up the session logs in again over the TOE and the held copy
#     completes, exact.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy cmp
h_need_toe
[ -c /dev/net/tun ] || h_skip_all "no /dev/net/tun: the TOE (and so its link) is not available"

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

MIB=1048576
SIZE=$((64 * MIB))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:recovery.auto
h_lun_file 1 1 "$SIZE" 512
h_target_new 2 iqn.2024-01.org.example.toegw:recovery.toe
h_lun_file 2 1 "$SIZE" 512
nbd_serve

# login TID STACK - a session through the TOE's host side; prints "SID URI".
login() {
    local body code
    body=$(jq -nc --arg t "${H_IQN[$1]}" --arg s "$2" '{portal: "192.0.2.1", target: $t, stack: $s}')
    code=$(api POST /api/v1/sessions "$body")
    [ "$code" = 201 ] || { echo "- -"; return; }
    local sid vol
    sid=$(jq -r '.id' "$H_TMP/api.json")
    vol=$(jq -r '.luns[0].volume' "$H_TMP/api.json")
    api GET "/api/v1/volumes/$vol" >/dev/null
    echo "$sid $(jq -r '.export' "$H_TMP/api.json")"
}

# session_on SID - "STATE STACK RECOVERIES" of a session.
session_on() {
    api GET "/api/v1/sessions/$1" >/dev/null
    jq -r '"\(.state) \(.connection.stack) \(.counters.recoveries)"' "$H_TMP/api.json"
}

read -r sid_a uri_a < <(login 1 auto)
read -r sid_t uri_t < <(login 2 toe)
h_check recovery.login_auto_on_toe "auto session: $(session_on "$sid_a")" \
    test "$(session_on "$sid_a" | cut -d' ' -f2)" = toe
h_check recovery.login_toe "toe session: $(session_on "$sid_t")" \
    test "$(session_on "$sid_t" | cut -d' ' -f2)" = toe

h_random "$H_TMP/a" "$SIZE"
h_random "$H_TMP/t" "$SIZE"
nbdcopy "$H_TMP/a" "$uri_a" >"$H_TMP/copy_a.out" 2>&1 &
copy_a=$!
nbdcopy "$H_TMP/t" "$uri_t" >"$H_TMP/copy_t.out" 2>&1 &
copy_t=$!
h_bg_register "$copy_a"
h_bg_register "$copy_t"
sleep 0.1
code=$(api PATCH /api/v1/stacks/toe '{"link":"down"}')
h_check recovery.link_down "PATCH link down answered $code" test "$code" = 200

# auto: the session logs in again at once, on the host stack, and its copy carries on
wait "$copy_a"
rc=$?
h_check recovery.auto.copy_completes \
    "nbdcopy exit $rc: $(h__oneline "$(tail -c 300 "$H_TMP/copy_a.out")")" test "$rc" -eq 0
h_check recovery.auto.backing_file_exact "the backing file differs from the data written" \
    cmp -s "$H_TMP/a" "$(h_lun_path 1 1)"
read -r state stack recoveries < <(session_on "$sid_a")
h_check recovery.auto.logged_in "state '$state'" test "$state" = logged_in
h_check recovery.auto.failed_over_to_host "on the '$stack' stack" test "$stack" = host
h_check recovery.auto.counted "recoveries '$recoveries'" test "${recoveries:-0}" -ge 1
api GET /api/v1/connections >/dev/null
h_check recovery.auto.placement_reason "no host connection placed for 'toe link down'" \
    jq -e --arg s "$sid_a" 'any(.[]; .owner == $s and .stack == "host" and
                                     .placement == "toe link down")' "$H_TMP/api.json"

# toe: no fallback allowed; the session waits (recovering), its copy is held, not failed
sleep 2
read -r state stack recoveries < <(session_on "$sid_t")
h_check recovery.toe.recovering "state '$state' while the link is down" test "$state" = recovering
h_check recovery.toe.copy_held "the copy ended while the link was down" kill -0 "$copy_t"
code=$(api PATCH /api/v1/stacks/toe '{"link":"up"}')
h_check recovery.link_up "PATCH link up answered $code" test "$code" = 200
wait "$copy_t"
rc=$?
h_check recovery.toe.copy_completes \
    "nbdcopy exit $rc: $(h__oneline "$(tail -c 300 "$H_TMP/copy_t.out")")" test "$rc" -eq 0
h_check recovery.toe.backing_file_exact "the backing file differs from the data written" \
    cmp -s "$H_TMP/t" "$(h_lun_path 2 1)"
read -r state stack recoveries < <(session_on "$sid_t")
h_check recovery.toe.back_on_toe "state '$state' on '$stack'" test "$state/$stack" = logged_in/toe
nbdcopy "$uri_t" "$H_TMP/back" >"$H_TMP/back.out" 2>&1
h_check recovery.toe.read_back "read back differs" cmp -s "$H_TMP/t" "$H_TMP/back"
h_check recovery.serve_alive "toegw serve is gone" serve_alive
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
rc=$?
h_check recovery.sigterm_exit0 "toegw serve exited $rc" test "$rc" -eq 0
h_end
