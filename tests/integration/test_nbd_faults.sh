#!/usr/bin/env bash
#
# test_nbd_faults.sh - toegw's NBD export when clients and sessions go away, over both stacks.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 and toegw serve with sessions on the
# TOE (through 192.0.2.1) and on the host stack (through 127.0.0.1). Checks:
#   - kill -9 of an nbdcopy in the middle of a 256 MiB write (TOE volume) and of a 4-job fio
#     in the middle of its writes (host-stack volume), while another client copies random
#     data to a third volume and back in a loop: every round of that client verifies, toegw
#     stays up, keeps no connection of the dead clients, and the volumes work afterwards;
#   - logout (DELETE the session) with clients connected: an idle reader, an idle writer and
#     a fio with requests in flight all get errors or a disconnect within seconds, the volume
#     leaves the API and the export list, its name is refused, other volumes go on working,
#     and logging in again brings the export back under the same name;
#   - SIGTERM with a client connected: toegw exits 0 within 10 s, the client sees it.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy nbdinfo cmp ss
h_need_toe

# toegw serve and its REST API, shared by every test_nbd_*.sh
# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

# --- setup -----------------------------------------------------------------------------------

MIB=1048576
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:nbd-faults.toe
h_lun_file 1 1 256M 512
h_target_new 2 iqn.2024-01.org.example.toegw:nbd-faults.host
h_lun_file 2 1 256M 4096
h_lun_file 2 2 64M 512
h_target_new 3 iqn.2024-01.org.example.toegw:nbd-faults.toe-logout
h_lun_file 3 1 16M 512
h_target_new 4 iqn.2024-01.org.example.toegw:nbd-faults.host-logout
h_lun_file 4 1 16M 4096

nbd_serve
LOGOUT=()
if [ -n "$HAVE_TOE" ]; then
    nbd_login toe 1 192.0.2.1 toe
    nbd_login toelo 3 192.0.2.1 toe && LOGOUT+=("toelo 3 192.0.2.1 toe")
else
    h_skip "$H_TEST.toe" "no /dev/net/tun: toegw runs --no-toe, the TOE stack is not tested"
fi
nbd_login host 2 127.0.0.1 host || h_end
nbd_login hostlo 4 127.0.0.1 host && LOGOUT+=("hostlo 4 127.0.0.1 host")

PY=$(nbd_python) || PY=
if [ -n "$PY" ]; then
    cat >"$H_TMP/hold.py" <<'PY'
"""hold URI READY GO [WRITE] - connect, read, say READY, wait for the file GO, then try a
read (or a write with WRITE=1) and print "result ok" or "result error ERRNO MESSAGE" and
"seconds S" (how long that request took to fail or succeed)."""
import os
import sys
import time

import nbd

uri, ready, go = sys.argv[2:5]
write = len(sys.argv) > 5 and sys.argv[5] == "1"
h = nbd.NBD()
h.connect_uri(uri)
h.pread(4096, 0)
with open(ready, "w") as f:
    f.write("ready\n")
deadline = time.time() + 60
while not os.path.exists(go):
    if time.time() > deadline:
        print("result timeout waiting for %s" % go, flush=True)
        sys.exit(1)
    time.sleep(0.05)
t0 = time.time()
try:
    if write:
        h.pwrite(b"\x42" * 4096, 0)
    else:
        h.pread(4096, 0)
    print("result ok", flush=True)
except nbd.Error as e:
    print("result error %s %s" % (e.errnum, e.string), flush=True)
print("seconds %.2f" % (time.time() - t0), flush=True)
PY
else
    h_skip "$H_TEST.libnbd" "python3 bindings of libnbd (nbdsh, Debian python3-libnbd) not installed: idle clients are not tested"
fi

# written_bytes VOLUME - the volume's write_bytes counter (0 when unknown).
written_bytes() {
    local out=$H_TMP/vol.$1.json
    curl -s -m 5 -o "$out" -H "Authorization: Bearer $TOKEN" "$API/api/v1/volumes/$1" &&
        jq -r '.counters.write_bytes // 0' "$out" 2>/dev/null || echo 0
}

# wait_written VOLUME BYTES PID - wait (at most 10 s) until the volume has taken BYTES more
# bytes of writes while PID still runs.
wait_written() {
    local start
    start=$(written_bytes "$1")
    for _ in $(seq 200); do
        kill -0 "$3" 2>/dev/null || return 1
        [ $(($(written_bytes "$1") - start)) -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# roundtrip NAME URI MIB - nbdcopy MIB MiB of new random data to URI and back; equal.
roundtrip() {
    local d=$H_TMP/rt.in out=$H_TMP/rt.out
    h_random "$d" $(($3 * MIB))
    h_run nbdcopy "$d" "$2"
    h_expect_ok "$1.write" || return 1
    h_run nbdcopy --no-extents "$2" "$out"
    rm -f "$out.part"
    h_expect_ok "$1.read" || return 1
    h_check "$1.equal" "what was read back differs" h_cmp_region "$d" 0 "$out" 0 $(($3 * MIB))
    rm -f "$out"
}

# shellcheck disable=SC2317 # called through h_check
# jq_ok ARG... - jq -e, quietly: true when the filter holds.
jq_ok() {
    jq -e "$@" >/dev/null 2>&1
}

# server_conns STATE - how many of toegw's NBD sockets are in STATE (established, close-wait).
server_conns() {
    ss -Htn state "$1" "( sport = :${NBD_ADDR##*:} )" | grep -c .
}

# --- kill -9 of clients in the middle of large writes -----------------------------------------

h_random "$H_TMP/big.img" $((256 * MIB))  # what the nbdcopy to be killed writes

# The other client: rounds of 32 MiB of new random data to the volume and back.
VLOG=$H_TMP/verifier.log
VSTOP=$H_TMP/verifier.stop
VURI=${URI[host.2]}
verifier() {
    local n=0 src=$H_TMP/ver.src out=$H_TMP/ver.out
    while [ ! -e "$VSTOP" ] && [ "$n" -lt 300 ]; do
        n=$((n + 1))
        head -c $((32 * MIB)) /dev/urandom >"$src"
        if ! timeout 60 nbdcopy "$src" "$VURI" 2>>"$VLOG.err"; then
            echo "bad $n: the write failed" >>"$VLOG"
        elif ! timeout 60 nbdcopy "$VURI" "$out" 2>>"$VLOG.err"; then
            echo "bad $n: the read failed" >>"$VLOG"
        elif ! cmp -s -n $((32 * MIB)) "$src" "$out"; then
            echo "bad $n: the data read back differs" >>"$VLOG"
        else
            echo "ok $n" >>"$VLOG"
        fi
    done
}
: >"$VLOG"
verifier </dev/null >/dev/null 2>&1 &
VPID=$!
h_bg_register "$VPID"
for _ in $(seq 200); do
    [ -s "$VLOG" ] && break
    sleep 0.05
done

# kill_mid_write NAME VOLUME MIN_BYTES CMD... - starts CMD (a writer), SIGKILLs it once the
# volume has taken MIN_BYTES of its writes; PASS when it was still running then.
kill_mid_write() {
    local name=$1 vol=$2 min=$3 pid rc
    shift 3
    "$@" </dev/null >"$H_TMP/$name.out" 2>&1 &
    pid=$!
    h_bg_register "$pid"
    if wait_written "$vol" "$min" "$pid"; then
        kill -KILL "$pid"
        { wait "$pid"; } 2>/dev/null  # no "Killed" notice from bash
        rc=$?
        if [ "$rc" -eq 137 ]; then
            h_pass "$H_TEST.$name.killed_mid_write"
        else
            h_fail "$H_TEST.$name.killed_mid_write" "the writer ended with status $rc before the kill"
        fi
    else
        wait "$pid"
        h_fail "$H_TEST.$name.killed_mid_write" "the writer did not get $min bytes written (status $?): $(h__oneline "$(tail -c 200 "$H_TMP/$name.out")")"
    fi
}

if [ -n "${VOL[toe.1]:-}" ]; then
    kill_mid_write kill_nbdcopy_toe "${VOL[toe.1]}" $((32 * MIB)) \
        nbdcopy "$H_TMP/big.img" "${URI[toe.1]}"
fi
if command -v fio >/dev/null 2>&1; then
    kill_mid_write kill_fio_host "${VOL[host.1]}" $((32 * MIB)) \
        fio --name=killed --thread --ioengine=nbd --uri="${URI[host.1]}" --rw=write --bs=1m \
        --iodepth=32 --numjobs=4 --size=64M --offset_increment=64M --time_based --runtime=30
else
    h_skip "$H_TEST.kill_fio_host" "fio not installed"
    kill_mid_write kill_nbdcopy_host "${VOL[host.1]}" $((32 * MIB)) \
        nbdcopy "$H_TMP/big.img" "${URI[host.1]}"
fi
rm -f "$H_TMP/big.img"
h_check "$H_TEST.alive_after_kills" "toegw died or stopped answering" serve_alive

# the other client goes on: one more full round after the kills, then stop it
k=$(grep -c . "$VLOG")
for _ in $(seq 300); do
    [ "$(grep -c . "$VLOG")" -gt "$k" ] && break
    kill -0 "$VPID" 2>/dev/null || break
    sleep 0.05
done
touch "$VSTOP"
wait "$VPID"
n_ok=$(grep -c '^ok' "$VLOG")
n_bad=$(grep -c '^bad' "$VLOG")
if [ "$n_bad" -eq 0 ] && [ "$n_ok" -gt "$k" ] && [ "$k" -ge 1 ]; then
    h_pass "$H_TEST.other_client_verified_throughout"
    h_log "the other client verified $n_ok rounds of 32 MiB, $k of them before the last kill"
else
    h_fail "$H_TEST.other_client_verified_throughout" "$n_ok rounds verified ($k before the kills ended), $n_bad failed: $(h__oneline "$(grep '^bad' "$VLOG" | head -n 3) $(tail -c 200 "$VLOG.err")")"
fi

# nothing of the dead clients is left on toegw's side
sleep 0.5
cw=$(server_conns close-wait)
est=$(server_conns established)
if [ "$cw" -eq 0 ] && [ "$est" -eq 0 ]; then
    h_pass "$H_TEST.dead_clients_closed"
else
    h_fail "$H_TEST.dead_clients_closed" "toegw still holds $est established and $cw close-wait NBD sockets with no client left"
fi

# the volumes the dead clients wrote to work
[ -n "${URI[toe.1]:-}" ] && roundtrip "$H_TEST.after_kill.toe" "${URI[toe.1]}" 32
roundtrip "$H_TEST.after_kill.host" "${URI[host.1]}" 32

# --- logout with clients connected ---------------------------------------------------------------

for l in "${LOGOUT[@]}"; do
    read -r tag tid portal stack <<<"$l"
    vol=${VOL[$tag.1]}
    uri=${URI[$tag.1]}
    t=logout.$stack
    holders=()
    if [ -n "$PY" ]; then
        for mode in read write; do
            rm -f "$H_TMP/$t.$mode.ready" "$H_TMP/$t.$mode.go"
            timeout 90 "$PY" "$H_TMP/hold.py" hold "$uri" "$H_TMP/$t.$mode.ready" \
                "$H_TMP/$t.$mode.go" "$([ "$mode" = write ] && echo 1 || echo 0)" \
                >"$H_TMP/$t.$mode.out" 2>&1 </dev/null &
            h_bg_register $!
            holders+=("$mode:$!")
        done
        for h in "${holders[@]}"; do
            for _ in $(seq 100); do
                [ -e "$H_TMP/$t.${h%%:*}.ready" ] && break
                sleep 0.05
            done
        done
    fi
    fpid=
    if command -v fio >/dev/null 2>&1; then
        fio --name=logout --thread --ioengine=nbd --uri="$uri" --rw=randwrite --bs=64k \
            --iodepth=16 --numjobs=2 --size=8M --offset_increment=8M --time_based \
            --runtime=60 </dev/null >"$H_TMP/$t.fio.out" 2>&1 &
        fpid=$!
        h_bg_register "$fpid"
        wait_written "$vol" $((4 * MIB)) "$fpid" ||
            h_log "$t: fio did not get going: $(h__oneline "$(tail -c 200 "$H_TMP/$t.fio.out")")"
    fi

    t0=$(date +%s%N)
    code=$(api DELETE "/api/v1/sessions/${SID[$tag]}")
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$code" = 204 ]; then
        h_pass "$H_TEST.$t.delete_session"
        h_log "$t: DELETE took $ms ms with clients connected"
    else
        h_fail "$H_TEST.$t.delete_session" "DELETE answered $code after $ms ms: $(h__oneline "$(head -c 200 "$H_TMP/api.json")")"
    fi

    for h in "${holders[@]}"; do
        mode=${h%%:*}
        pid=${h#*:}
        touch "$H_TMP/$t.$mode.go"
        for _ in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            h_fail "$H_TEST.$t.idle_$mode.fails" "the client's $mode still hangs 15 s after the logout"
        elif grep -q '^result error' "$H_TMP/$t.$mode.out"; then
            h_pass "$H_TEST.$t.idle_$mode.fails"
            h_log "$t idle $mode: $(h__oneline "$(cat "$H_TMP/$t.$mode.out")")"
        else
            h_fail "$H_TEST.$t.idle_$mode.fails" "after the logout: $(h__oneline "$(head -c 300 "$H_TMP/$t.$mode.out")")"
        fi
    done
    if [ -n "$fpid" ]; then
        for _ in $(seq 300); do
            kill -0 "$fpid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$fpid" 2>/dev/null; then
            h_fail "$H_TEST.$t.busy_fio_fails" "fio with requests in flight still runs 15 s after the logout (its requests hang)"
            kill -KILL "$fpid" 2>/dev/null
            { wait "$fpid"; } 2>/dev/null
        else
            wait "$fpid"
            rc=$?
            if [ "$rc" -ne 0 ]; then
                h_pass "$H_TEST.$t.busy_fio_fails"
            else
                h_fail "$H_TEST.$t.busy_fio_fails" "fio succeeded although the session was logged out under it"
            fi
        fi
    fi

    h_check "$H_TEST.$t.alive" "toegw died or stopped answering" serve_alive
    code=$(api GET "/api/v1/volumes/$vol")
    h_check "$H_TEST.$t.volume_gone_from_api" "GET /api/v1/volumes/$vol answered $code" \
        [ "$code" = 404 ]
    h_run nbdinfo --list --json "nbd://$NBD_ADDR"
    # shellcheck disable=SC2016 # $v is jq's
    h_check "$H_TEST.$t.volume_gone_from_list" "nbdinfo --list: $(h_last) $(h__oneline "$(jq -c '[.exports[]["export-name"]]' "$H_OUT" 2>&1)")" \
        jq_ok --arg v "$vol" '[.exports[]["export-name"]] | index($v) == null' "$H_OUT"
    h_run nbdinfo "$uri"
    h_check "$H_TEST.$t.export_refused" "nbdinfo of the logged-out volume: $(h_last)" \
        [ "$H_RC" -ne 0 ]
    sleep 0.3
    h_check "$H_TEST.$t.no_sockets_left" \
        "toegw holds $(server_conns established) established, $(server_conns close-wait) close-wait NBD sockets" \
        [ "$(server_conns established)" -eq 0 ] && [ "$(server_conns close-wait)" -eq 0 ]
    roundtrip "$H_TEST.$t.others_go_on" "$VURI" 8

    # logging in again brings the same export back
    if nbd_login "$tag" "$tid" "$portal" "$stack"; then
        h_check "$H_TEST.$t.same_volume_id" "the volume came back as '${VOL[$tag.1]}', not '$vol'" \
            [ "${VOL[$tag.1]}" = "$vol" ]
        roundtrip "$H_TEST.$t.export_back" "${URI[$tag.1]}" 8
    fi
done

# --- SIGTERM with a client connected --------------------------------------------------------------

if [ -n "$PY" ]; then
    rm -f "$H_TMP/term.ready" "$H_TMP/term.go"
    timeout 90 "$PY" "$H_TMP/hold.py" hold "$VURI" "$H_TMP/term.ready" "$H_TMP/term.go" \
        >"$H_TMP/term.out" 2>&1 </dev/null &
    tpid=$!
    h_bg_register "$tpid"
    for _ in $(seq 100); do
        [ -e "$H_TMP/term.ready" ] && break
        sleep 0.05
    done
fi
t0=$(date +%s%N)
kill -TERM "$SERVE_PID"
for _ in $(seq 150); do
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$SERVE_PID" 2>/dev/null; then
    h_fail "$H_TEST.sigterm_exit" "toegw still runs 15 s after SIGTERM with an NBD client connected"
else
    wait "$SERVE_PID"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    h_check "$H_TEST.sigterm_exit" "toegw exited with status $rc after $ms ms" \
        [ "$rc" -eq 0 ] && [ "$ms" -le 10000 ]
fi
if [ -n "$PY" ]; then
    touch "$H_TMP/term.go"
    wait "$tpid"
    h_check "$H_TEST.sigterm_client_sees_it" "the connected client: $(h__oneline "$(head -c 300 "$H_TMP/term.out")")" \
        grep -q '^result error' "$H_TMP/term.out"
fi

h_end
