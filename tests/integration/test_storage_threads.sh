#!/usr/bin/env bash
#
# test_storage_threads.sh - sessions spread over several storage loops (--storage-threads,
# storage/pool.h): each target's session on one loop, the NBD export listening on the first
# and moving each client to its volume's loop, the API reaching every loop.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with four targets of one 32 MiB LUN
# each (random data), toegw serve --storage-threads 3, sessions to targets 1 and 3 through
# the TOE and to 2 and 4 on the host stack (placement: 1, 2, 3 on loops 0, 1, 2; 4 on 0).
# Checks:
#   - /api/v1/info says 3; the process has three threads toegw-sto0..2;
#   - 72 connections from one address that stay in the handshake after moving to loop 1:
#     64 stay (its per-address cap), the others are closed there;
#   - nbdinfo --list shows all four volumes; each reads byte-exact over NBD (nbdcopy), all
#     four at once, and every storage thread did some of the work (its CPU time grew);
#   - an NBD write lands on the LUN and the REST API reads it back, and the other way round;
#   - a second session to a target is refused whichever loop is asked (409);
#   - read-only set through the API on a volume of loop 2 holds over NBD and across a
#     restart (the access every loop keeps is the one saved), and can be lifted again;
#   - a session logged out and in again serves its volume again;
#   - --storage-threads refuses 0, 65 and words; --storage-threads 1 serves as before.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdinfo nbdcopy
h_need_toe

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

SIZE=$((32 * 1048576))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
for t in 1 2 3 4; do
    h_target_new "$t" "iqn.2024-01.org.example.toegw:threads.t$t"
    h_lun_file "$t" 1 "$SIZE" 512
    h_random "$(h_lun_path "$t" 1)" "$SIZE"
done

# --- the flag ------------------------------------------------------------------------------

for bad in 0 65 two; do
    h_run "$TOEGW" serve --storage-threads "$bad" --state-dir "$H_TMP/bad" --no-toe
    h_check "$H_TEST.flag_refuses_$bad" "--storage-threads $bad: $(h_last)" test "$H_RC" = 2
    h_check "$H_TEST.flag_refusal_says_range_$bad" "the refusal does not say the range: $(h_last)" grep -q "from 1 to 64" "$H_ERR"
done

# --- three loops ---------------------------------------------------------------------------

nbd_serve --storage-threads 3
h_check "$H_TEST.info_storage_threads" "/api/v1/info does not say storage_threads 3" \
    test "$(api GET /api/v1/info; jq -r .storage_threads "$H_TMP/api.json")" = 200"3"
threads=$(cat /proc/"$SERVE_PID"/task/*/comm | grep -c '^toegw-sto[0-2]$')
h_check "$H_TEST.three_storage_threads" "$threads storage threads (toegw-sto*), not 3" test "$threads" = 3

nbd_login t1 1 192.0.2.1 toe
nbd_login t2 2 127.0.0.1 host
nbd_login t3 3 192.0.2.1 toe
nbd_login t4 4 127.0.0.1 host

listed=$(nbdinfo --list --json "nbd://$NBD_ADDR" 2>/dev/null | jq '.exports | length')
h_check "$H_TEST.list_shows_every_volume" "nbdinfo --list shows ${listed:-no} exports, not 4" test "$listed" = 4

# 72 connections from one address that each ask NBD_OPT_INFO about t2's volume (loop 1) and
# then stay in the handshake: each moves to loop 1, whose per-address cap (64 by default)
# admits 64 of them; the others are closed there.
moved=$(python3 "$(dirname "$0")/lib/limits_clients.py" infohold "${NBD_ADDR%:*}" \
    "${NBD_ADDR##*:}" "${URI[t2.1]##*/}" 72 | sed -n 's/^open //p')
h_check "$H_TEST.handshake_cap_follows_the_move" "${moved:-no} of 72 handshaking connections from one address that moved to another storage thread stayed open (cap 64)" \
    test "${moved:-0}" = 64
h_check "$H_TEST.serves_after_the_handshake_flood" "toegw no longer answers" serve_alive

# CPU ticks (user + system) of storage thread N
sto_ticks() { h_thread_ticks "$SERVE_PID" "toegw-sto$1"; }
declare -A before=()
for i in 0 1 2; do before[$i]=$(sto_ticks "$i"); done
pids=()
for t in t1 t2 t3 t4; do
    nbdcopy "${URI[$t.1]}" "$H_TMP/read.$t" 2>"$H_TMP/nbdcopy.$t.err" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
h_check "$H_TEST.parallel_reads_complete" "an nbdcopy failed: $(cat "$H_TMP"/nbdcopy.*.err | head -c 300)" test "$rc" = 0
for i in 1 2 3 4; do
    h_check "$H_TEST.read_byte_exact_t$i" "what NBD read of target $i differs from its LUN" cmp -s "$H_TMP/read.t$i" "$(h_lun_path "$i" 1)"
done
for i in 0 1 2; do
    h_check "$H_TEST.thread_${i}_worked" "storage thread $i used no CPU while all four volumes were read" test "$(sto_ticks "$i")" -gt "${before[$i]}"
done

# an NBD write read back through the API, an API write read back over NBD (volume of loop 2)
h_random "$H_TMP/w1" 65536
h_run nbdcopy "$H_TMP/w1" "${URI[t3.1]}"
h_check "$H_TEST.nbd_write_ok" "nbdcopy to the volume: $(h_last)" test "$H_RC" = 0
curl -sS -m 30 -o "$H_TMP/back" -H "Authorization: Bearer $TOKEN" \
    "$API/api/v1/volumes/${VOL[t3.1]}/data?offset=0&length=65536"
h_check "$H_TEST.api_reads_nbd_write" "the API reads back other bytes than NBD wrote" cmp -s "$H_TMP/back" "$H_TMP/w1"
h_random "$H_TMP/w2" 4096
code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' -X PUT \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$H_TMP/w2" "$API/api/v1/volumes/${VOL[t3.1]}/data?offset=1048576")
h_check "$H_TEST.api_write_ok" "PUT .../data answered $code" test "$code" = 200 -o "$code" = 204
nbdcopy "${URI[t3.1]}" "$H_TMP/after" 2>/dev/null
h_check "$H_TEST.nbd_reads_api_write" "NBD reads back other bytes than the API wrote" h_cmp_region "$H_TMP/after" 1048576 "$H_TMP/w2" 0 4096

# one session per target, whichever loop holds it
body=$(jq -nc --arg t "${H_IQN[2]}" '{portal: "127.0.0.1", target: $t, stack: "host"}')
h_check "$H_TEST.second_session_refused" "a second session to target 2 was not refused with 409" test "$(api POST /api/v1/sessions "$body")" = 409

# read-only on a volume of loop 2, over NBD and across a restart
h_check "$H_TEST.patch_read_only" "PATCH read_only: $(head -c 200 "$H_TMP/api.json")" \
    test "$(api PATCH "/api/v1/volumes/${VOL[t3.1]}" '{"read_only":true}')" = 200
h_run nbdcopy "$H_TMP/w1" "${URI[t3.1]}"
h_check "$H_TEST.read_only_refuses_nbd_write" "an NBD write to a read-only volume succeeded" test "$H_RC" != 0
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
h_check "$H_TEST.sigterm_exit_0" "toegw did not exit 0 on SIGTERM" test $? = 0
nbd_serve --storage-threads 3
for _ in $(seq 100); do
    [ "$(api GET "/api/v1/volumes/${VOL[t3.1]}")" = 200 ] && break
    sleep 0.1
done
h_check "$H_TEST.read_only_survives_restart" "after a restart the volume is not read-only: $(head -c 200 "$H_TMP/api.json")" \
    test "$(jq -r .read_only "$H_TMP/api.json")" = true
h_run nbdcopy "$H_TMP/w1" "${URI[t3.1]}"
h_check "$H_TEST.read_only_refuses_after_restart" "after a restart an NBD write to the read-only volume succeeded" test "$H_RC" != 0
h_check "$H_TEST.patch_writable" "PATCH read_only false: $(head -c 200 "$H_TMP/api.json")" \
    test "$(api PATCH "/api/v1/volumes/${VOL[t3.1]}" '{"read_only":false}')" = 200
h_run nbdcopy "$H_TMP/w1" "${URI[t3.1]}"
h_check "$H_TEST.writable_again" "the volume made writable again refuses writes: $(h_last)" test "$H_RC" = 0

# out and in again
sid=$(api GET /api/v1/sessions >/dev/null; jq -r --arg t "${H_IQN[3]}" \
    '.[] | select(.target == $t) | .id' "$H_TMP/api.json")
h_check "$H_TEST.logout" "DELETE the session of target 3 failed" test "$(api DELETE "/api/v1/sessions/$sid")" = 204
h_run nbdinfo "${URI[t3.1]}"
h_check "$H_TEST.gone_volume_refused" "the volume of a logged-out session is still served" test "$H_RC" != 0
nbd_login t3b 3 192.0.2.1 toe
nbdcopy "${URI[t3.1]}" "$H_TMP/again" 2>/dev/null
h_check "$H_TEST.volume_back_after_login" "after logging in again the volume does not hold what was written" h_cmp_region "$H_TMP/again" 0 "$H_TMP/w1" 0 65536
h_check "$H_TEST.alive" "toegw died or stopped answering" serve_alive
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
h_check "$H_TEST.sigterm_exit_0_again" "toegw did not exit 0 on SIGTERM" test $? = 0

# --- one loop ------------------------------------------------------------------------------

rm -rf "$H_TMP/state"
nbd_serve --storage-threads 1
nbd_login one 1 192.0.2.1 toe
nbd_login two 2 127.0.0.1 host
nbdcopy "${URI[two.1]}" "$H_TMP/one" 2>/dev/null
h_check "$H_TEST.one_thread_reads" "with one storage thread NBD reads differ from the LUN" cmp -s "$H_TMP/one" "$(h_lun_path 2 1)"
h_check "$H_TEST.one_thread_count" "--storage-threads 1 does not run exactly one storage thread" \
    test "$(cat /proc/"$SERVE_PID"/task/*/comm | grep -c '^toegw-sto')" = 1
h_end
