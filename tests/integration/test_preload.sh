#!/usr/bin/env bash
#
# test_preload.sh - other programs' connections through the broker socket (claims 5, 14, 26):
# unmodified libiscsi programs (iscsi-ls, iscsi-perf, iscsi-inq) and qemu-img (its iscsi
# driver) run with LD_PRELOAD=build/toegw-preload.so against tgtd, and their iSCSI
# connections are made by `toegw serve`'s broker on the TOE and handed to them as
# descriptors.
#
#  - iscsi-ls lists the target through the TOE; the TOE's capture (the API's capture
#    endpoint) shows its login from the TOE's address 192.0.2.2;
#  - iscsi-perf runs through the TOE: tgtd's session shows the initiator at 192.0.2.2, the
#    unified table (GET /api/v1/connections) lists the connection offloaded with owner
#    "PID/iscsi-perf"; killed with SIGKILL, its connection and port are gone within 1 s;
#  - qemu-img convert writes a random image through the TOE, byte-exact in the LUN's file;
#  - a reservation for holder "perfjob": iscsi-perf naming it gets the reservation's port,
#    another holder's request for it is refused (and falls back to the kernel), one for a
#    reservation made for another uid too; killing iscsi-perf frees the reservation in 1 s;
#  - a host-stack descriptor is the kernel's TCP socket; closing it releases it within 1 s;
#  - a TOE descriptor inherited across exec answers as the TCP socket it stands for under
#    the exec'd program's shim, still carries iSCSI, and toegw_describe() names it;
#  - so does one another process passed over SCM_RIGHTS, under the receiver's shim;
#  - bad requests each get an error code and message, a passed descriptor is closed, a
#    client that never reads is dropped, and the broker still serves afterwards;
#  - with the broker socket off, the same commands still work over the kernel.
#
# Self-contained: its own network namespace (harness.sh), tgtd on 0.0.0.0:3260, the TOE's
# TAP with 192.0.2.2 / 192.0.2.1. Prints PASS/FAIL/SKIP lines.

# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need tgtd tgtadm iscsi-ls iscsi-perf iscsi-inq qemu-img curl jq tshark python3
h_need_toegw
h_need_toe

PRELOAD=${TOEGW_PRELOAD:-$REPO/build/toegw-preload.so}
[ -f "$PRELOAD" ] || make -C "$REPO" -s client >/dev/null 2>&1
[ -f "$PRELOAD" ] || { h_skip preload "no $PRELOAD (make client)"; h_end; }
PYC=$H_LIB_DIR/bsock_client.py

HOST_IP=192.0.2.1
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2026-12.org.example.toegw:preload
h_lun_file 1 1 32M 512
IQN=${H_IQN[1]}
LUN=$(h_lun_path 1 1)
URL=iscsi://$HOST_IP/$IQN/1

API=127.0.0.1:18590
SD=$H_TMP/state
SOCK=$H_TMP/broker.sock
mkdir -p "$SD"
export TOEGW_BROKER=$SOCK

serve_pid=
# start_serve [FLAGS...] - toegw serve with the TOE, ready when /readyz says so.
start_serve() {
    "$TOEGW" serve --state-dir "$SD" --api "$API" --nbd 127.0.0.1:18519 \
        --port-range 20300-20319 "$@" 2>>"$H_TMP/serve.log" </dev/null &
    serve_pid=$!
    h_bg_register "$serve_pid"
    for _ in $(seq 100); do
        kill -0 "$serve_pid" 2>/dev/null || break
        if [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$API/readyz")" = 200 ]; then
            TOKEN=$(cat "$SD/api-token")
            return 0
        fi
        sleep 0.1
    done
    h_fail preload.serve "serve did not start: $(h__oneline "$(tail -c 300 "$H_TMP/serve.log")")"
    h_end
}
stop_serve() {
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
}
api() { # api METHOD PATH [BODY] - the body to stdout
    curl -s -m 10 -H "Authorization: Bearer $TOKEN" -X "$1" ${3:+-d "$3"} "http://$API$2"
}
# conn_rows FILTER - the unified table's rows matching the jq FILTER, one JSON per line
conn_rows() {
    api GET /api/v1/connections | jq -c ".[] | select($1)" 2>/dev/null
}
# within_1s CMD... - CMD succeeds within one second (polled every 50 ms); prints the ms.
within_1s() {
    local t0 t
    t0=$(date +%s%N)
    while :; do
        "$@" && break
        t=$((($(date +%s%N) - t0) / 1000000))
        [ "$t" -gt 1000 ] && { echo "$t"; return 1; }
        sleep 0.05
    done
    echo $((($(date +%s%N) - t0) / 1000000))
}

start_serve --broker "$SOCK"

# --- iscsi-ls through the TOE, seen on the TOE's wire -------------------------------------------
api POST /api/v1/capture >/dev/null
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 iscsi-ls -s "iscsi://$HOST_IP/"
if [ "$H_RC" -eq 0 ] && grep -q "Target:$IQN" "$H_OUT" && grep -q 'Lun:1 .*DIRECT_ACCESS' "$H_OUT" &&
    grep -q 'on the toe stack (offloaded), local 192.0.2.2:203' "$H_ERR"; then
    h_pass preload.iscsi_ls_through_toe
else
    h_fail preload.iscsi_ls_through_toe "$(h_last); out: $(h__oneline "$(head -c 200 "$H_OUT")")"
fi
api GET /api/v1/capture.pcap >"$H_TMP/ls.pcap"
api DELETE /api/v1/capture >/dev/null
logins=$(tshark -r "$H_TMP/ls.pcap" -Y 'iscsi.opcode == 0x03 && ip.src == 192.0.2.2' \
    -T fields -e tcp.srcport 2>/dev/null | sort -u | tr '\n' ' ')
if [ -n "$logins" ]; then
    h_pass preload.toe_capture_shows_login
    h_log "login requests from 192.0.2.2, ports $logins"
else
    h_fail preload.toe_capture_shows_login "no login request from 192.0.2.2 in the TOE's capture"
fi

# --- iscsi-perf: tgtd's view, the unified table, a kill -----------------------------------------
LD_PRELOAD=$PRELOAD TOEGW_DEBUG=1 iscsi-perf -t 20 -b 8 -m 8 "$URL" >"$H_TMP/perf.out" \
    2>"$H_TMP/perf.err" &
perf_pid=$!
h_bg_register "$perf_pid"
sleep 1.5
nexus=$(h_tgtadm --op show --mode target | grep -c 'IP Address: 192.0.2.2')
row=$(conn_rows ".owner == \"$perf_pid/iscsi-perf\" and .stack == \"toe\"")
if [ "$nexus" -ge 1 ]; then
    h_pass preload.tgtd_sees_toe_address
else
    h_fail preload.tgtd_sees_toe_address "tgtd has no session from 192.0.2.2: $(h__oneline \
        "$(h_tgtadm --op show --mode target | grep 'IP Address')")"
fi
if [ "$(jq -r '.stack + " " + .offload_state + " " + .remote + " " + .state' <<<"$row")" = \
    "toe offloaded $HOST_IP:3260 ESTABLISHED" ]; then
    h_pass preload.table_lists_program_connection
    h_log "row: $row"
else
    h_fail preload.table_lists_program_connection "no offloaded row owned by $perf_pid/iscsi-perf: ${row:-none}"
fi
port=$(jq -r '.local | sub(".*:"; "")' <<<"$row" 2>/dev/null)
kill -KILL "$perf_pid"
gone() { [ -z "$(conn_rows ".owner == \"$perf_pid/iscsi-perf\"")" ] &&
    ! conn_rows '.stack == "toe"' | grep -q "\"192.0.2.2:$port\".*ESTABLISHED"; }
if ms=$(within_1s gone); then
    h_pass preload.kill_releases_within_1s
    h_log "connection of the killed iscsi-perf gone after $ms ms"
else
    h_fail preload.kill_releases_within_1s "still listed after $ms ms"
fi

# --- qemu-img convert: byte-exact through the TOE -----------------------------------------------
h_random "$H_TMP/img1" $((16 << 20))
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 qemu-img convert -n -f raw -O raw "$H_TMP/img1" "$URL"
if [ "$H_RC" -eq 0 ] && grep -q 'on the toe stack (offloaded)' "$H_ERR" &&
    h_cmp_region "$H_TMP/img1" 0 "$LUN" 0 $((16 << 20)); then
    h_pass preload.qemu_img_byte_exact_through_toe
else
    h_fail preload.qemu_img_byte_exact_through_toe "$(h_last)"
fi
h_run env LD_PRELOAD="$PRELOAD" iscsi-inq "$URL"
if [ "$H_RC" -eq 0 ] && grep -qi 'Vendor' "$H_OUT"; then
    h_pass preload.iscsi_inq
else
    h_fail preload.iscsi_inq "$(h_last)"
fi

# --- reservations for programs ------------------------------------------------------------------
res=$(api POST /api/v1/reservations '{"holder":"perfjob","stack":"toe"}')
rid=$(jq -r .id <<<"$res")
rport=$(jq -r .port <<<"$res")
TOEGW_RESERVATION=$rid TOEGW_HOLDER=perfjob LD_PRELOAD=$PRELOAD \
    iscsi-perf -t 20 -b 8 -m 4 "$URL" >"$H_TMP/perf2.out" 2>&1 &
perf_pid=$!
h_bg_register "$perf_pid"
sleep 1.5
row=$(conn_rows ".owner == \"$perf_pid/iscsi-perf\" and .stack == \"toe\"")
if [ "$(jq -r '.local + " " + .stack' <<<"$row")" = "192.0.2.2:$rport toe" ] &&
    [ "$(api GET "/api/v1/reservations/$rid" | jq -r .in_use)" = true ]; then
    h_pass preload.reservation_port_used
else
    h_fail preload.reservation_port_used "reservation $rid port $rport; row: ${row:-none}"
fi
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 TOEGW_RESERVATION="$rid" TOEGW_HOLDER=other \
    iscsi-ls -s "iscsi://$HOST_IP/"
if grep -q "reservation $rid is held by \"perfjob\", not \"other\"; the kernel connects instead" "$H_ERR" &&
    grep -q "Target:$IQN" "$H_OUT"; then
    h_pass preload.other_holder_refused
else
    h_fail preload.other_holder_refused "$(h_last)"
fi
res2=$(api POST /api/v1/reservations '{"holder":"uidjob","uid":4242}')
rid2=$(jq -r .id <<<"$res2")
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 TOEGW_RESERVATION="$rid2" TOEGW_HOLDER=uidjob \
    iscsi-ls -s "iscsi://$HOST_IP/"
if grep -q "reservation $rid2 is for uid 4242, not uid $(id -u)" "$H_ERR" &&
    [ "$(jq -r .uid <<<"$res2")" = 4242 ]; then
    h_pass preload.other_uid_refused
else
    h_fail preload.other_uid_refused "$(h_last)"
fi
kill -KILL "$perf_pid"
free_again() { [ "$(api GET "/api/v1/reservations/$rid" | jq -r .in_use)" = false ]; }
if ms=$(within_1s free_again); then
    h_pass preload.kill_returns_reservation_within_1s
    h_log "reservation $rid free again after $ms ms"
else
    h_fail preload.kill_returns_reservation_within_1s "still in use after $ms ms"
fi

# --- a host-stack descriptor --------------------------------------------------------------------
exec 7> >(exec python3 "$PYC" "$SOCK" connect "$HOST_IP" 3260 2 >"$H_TMP/py.out" 2>&1)
py_pid=$!
for _ in $(seq 50); do grep -q '^family' "$H_TMP/py.out" && break; sleep 0.1; done
if grep -q 'on_stack=host placement=host requested fds=1' "$H_TMP/py.out" &&
    grep -q "family=AF_INET peer=('$HOST_IP', 3260)" "$H_TMP/py.out" &&
    [ -n "$(conn_rows ".owner == \"$py_pid/python3\" and .stack == \"host\"")" ]; then
    h_pass preload.host_descriptor_is_kernel_socket
else
    h_fail preload.host_descriptor_is_kernel_socket "$(h__oneline "$(cat "$H_TMP/py.out")")"
fi
exec 7>&-
py_gone() { [ -z "$(conn_rows ".owner == \"$py_pid/python3\"")" ]; }
if ms=$(within_1s py_gone); then
    h_pass preload.host_close_releases_within_1s
    h_log "host descriptor released $ms ms after close"
else
    h_fail preload.host_close_releases_within_1s "still listed after $ms ms"
fi

# --- a TOE descriptor across exec ----------------------------------------------------------------
# The program's end of the socketpair is bound to an abstract name that says which connection
# it is; the shim of an exec'd program fills its table from it, and libtoegw's
# toegw_describe() reads it without the shim.
# parent_conn - from the last h_run of exec_inherit.py: face (what the parent's socket
# said), lport (its local port on the TOE) and cid (the connection's id, from the shim's
# debug line).
parent_conn() {
    face=$(grep '^parent ' "$H_OUT" | sed 's/^parent //')
    lport=$(sed -n 's/.*local=192\.0\.2\.2:\([0-9]*\) .*/\1/p' <<<"$face")
    cid=$(sed -n 's/.*fd [0-9]*: connection \([0-9]*\) to .* on the toe stack.*/\1/p' "$H_ERR" |
        head -1)
}

h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 python3 "$H_LIB_DIR/exec_inherit.py" connect \
    "$HOST_IP" 3260 "$REPO/build/libtoegw.so"
parent_conn
inh=$(grep '^inherited ' "$H_OUT")
desc=$(grep '^describe ' "$H_OUT")
if [ -n "$lport" ] && [ "$face" = "family=AF_INET local=192.0.2.2:$lport peer=$HOST_IP:3260" ] &&
    [ "$inh" = "inherited $face login_answered=True" ] &&
    grep -q "connection $cid inherited, local 192.0.2.2:$lport" "$H_ERR"; then
    h_pass preload.toe_descriptor_answers_after_exec
    h_log "$inh"
else
    h_fail preload.toe_descriptor_answers_after_exec "$(h_last); $(h__oneline "$(cat "$H_OUT")")"
fi
want="describe family=AF_UNIX rc=0 id=$cid local=192.0.2.2:$lport remote=$HOST_IP:3260 stack=toe"
if [ -n "$cid" ] && [ "${desc% ss=*}" = "$want" ] &&
    grep -q "ss=.*@toegw-conn/$serve_pid/$cid/192.0.2.2:$lport/$HOST_IP:3260" <<<"$desc" &&
    grep -q '^notone rc=-2$' "$H_OUT"; then
    h_pass preload.toegw_describe_names_the_connection
    h_log "$desc"
else
    h_fail preload.toegw_describe_names_the_connection "want \"$want\"; $(h__oneline "$(cat "$H_OUT")")"
fi

# --- a TOE descriptor passed to another process ------------------------------------------------
# A child under the shim receives the descriptor over SCM_RIGHTS (recvmsg) after the parent
# closed its copy: the shim adds it to its table by its name, so it answers as the TCP
# socket it stands for, and the connection still carries iSCSI.
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 python3 "$H_LIB_DIR/exec_inherit.py" pass \
    "$HOST_IP" 3260
parent_conn
got=$(grep '^received ' "$H_OUT")
if [ "$H_RC" -eq 0 ] && [ -n "$lport" ] && [ -n "$cid" ] &&
    [ "$face" = "family=AF_INET local=192.0.2.2:$lport peer=$HOST_IP:3260" ] &&
    [ "$got" = "received $face login_answered=True" ] &&
    grep -q "connection $cid received, local 192.0.2.2:$lport" "$H_ERR"; then
    h_pass preload.toe_descriptor_answers_when_received
    h_log "$got"
else
    h_fail preload.toe_descriptor_answers_when_received "$(h_last); $(h__oneline "$(cat "$H_OUT" "$H_ERR" | tail -c 600)")"
fi

# --- bad input ----------------------------------------------------------------------------------
h_run python3 "$PYC" "$SOCK" badinput
want="short:71 magic:71 version:93 bodylen:71 cutfield:71 overrun:71 unknowntag:71 twice:71
badlen:71 noport:22 badstack:22 holderonly:22 control:71 type:22 release:2 noreservation:2
oversized:90 passedfd:22"
bad=
for w in $want; do
    grep -q "^${w%%:*} error code=${w##*:} ." "$H_OUT" || bad="$bad ${w%%:*}"
done
if [ "$H_RC" -eq 0 ] && [ -z "$bad" ] && grep -q 'pipe-closed-by-broker True' "$H_OUT"; then
    h_pass preload.bad_requests_get_codes
else
    h_fail preload.bad_requests_get_codes "wrong or missing:$bad; $(h_last); $(h__oneline "$(head -c 400 "$H_OUT")")"
fi
h_run python3 "$PYC" "$SOCK" flood
flood_rc=$H_RC
flood_out=$(cat "$H_OUT")
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 iscsi-ls -s "iscsi://$HOST_IP/"
if [ "$flood_rc" -eq 0 ] && kill -0 "$serve_pid" 2>/dev/null && grep -q 'on the toe stack' "$H_ERR" &&
    grep -q 'does not read its replies' "$H_TMP/serve.log"; then
    h_pass preload.slow_client_dropped_broker_serves
else
    h_fail preload.slow_client_dropped_broker_serves "flood: $flood_out; ls: $(h_last)"
fi

# --- the broker socket off: the kernel's connect ------------------------------------------------
stop_serve
start_serve --broker off
h_run env LD_PRELOAD="$PRELOAD" TOEGW_DEBUG=1 iscsi-ls -s "iscsi://$HOST_IP/"
if [ "$H_RC" -eq 0 ] && grep -q "Target:$IQN" "$H_OUT" && grep -q "no broker at $SOCK" "$H_ERR"; then
    h_pass preload.no_broker_kernel_fallback
else
    h_fail preload.no_broker_kernel_fallback "$(h_last)"
fi
h_random "$H_TMP/img2" $((8 << 20))
h_run env LD_PRELOAD="$PRELOAD" qemu-img convert -n -f raw -O raw "$H_TMP/img2" "$URL"
if [ "$H_RC" -eq 0 ] && h_cmp_region "$H_TMP/img2" 0 "$LUN" 0 $((8 << 20)); then
    h_pass preload.no_broker_qemu_img_exact
else
    h_fail preload.no_broker_qemu_img_exact "$(h_last)"
fi
h_run env LD_PRELOAD="$PRELOAD" iscsi-perf -t 1 -b 8 -m 4 "$URL"
if [ "$H_RC" -eq 0 ] && grep -q 'iops average' "$H_OUT"; then
    h_pass preload.no_broker_iscsi_perf
else
    h_fail preload.no_broker_iscsi_perf "$(h_last)"
fi
stop_serve
h_end
