#!/usr/bin/env bash
# The offload broker seen from outside (claims 3, 4, 5, 8): one port space shared with the
# host's applications, placement with its reasons, clear refusals.
#  - A host process holding a port of --port-range (bound, or listening): the TOE (and the
#    host stack) never use it, the connection takes the next one; with every port of the
#    range held, a one-line "no free local port" error.
#  - While the broker holds a port for a TOE connection (a `toegw perf` run), a host
#    process's bind() to it fails with EADDRINUSE, and so does another broker's; once the
#    connection is released the port is free again.
#  - Placement: auto takes the TOE; --toe-max-conns 0 makes auto fall back to the host stack
#    with the reason "toe full" and --stack toe fail (exit 1, one line); --no-toe: auto on the
#    host ("no toe"), --stack toe refused; a destination the TOE cannot reach (127.0.0.1):
#    auto on the host ("unreachable via toe"), --stack toe fails; --stack host on the host
#    ("host requested").
#  - One table: with `toegw serve` running a session over the TOE, `toegw netstat --json`
#    lists that connection (offloaded, owned by the session, from the broker's range) and a
#    kernel connection of another process (python3); host tools (ss) see no socket of the
#    TOE's; deleting the session frees its port for host applications.
# The TOE's link going down is covered by tests/unit/test_broker.c.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need python3 tshark ip

TOE_IP=192.0.2.2
HOST_IP=192.0.2.1

H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:broker
h_lun_file 1 1 16M 512
h_lun_null 1 2

h_need_toe

TURL=iscsi://$HOST_IP:3260/${H_IQN[1]}
LURL=iscsi://127.0.0.1:3260/${H_IQN[1]}

# placed STACK REASON - the last command's debug log says where the broker put it.
# shellcheck disable=SC2317 # called through h_check
placed() {
    grep -qF "connection placed on the $1 stack ($2)" "$H_ERR"
}

wherefrom() {
    sed -n 's/.*connection placed on the \(.*\)$/\1/p' "$H_ERR" | head -n 1
}

# local_port - the local port the broker gave the last command's connection.
local_port() {
    sed -n 's/.*connection placed on the .* local port \([0-9]*\).*/\1/p' "$H_ERR" | head -n 1
}

# A host application: binds (MODE bind), listens (listen) or binds with SO_REUSEADDR and
# listens (reuse-listen) on 0.0.0.0:PORT for each PORT, says "HOLDING", then waits.
cat >"$H_TMP/hold.py" <<'EOF'
import socket, sys, time
mode, socks = sys.argv[1], []
for p in sys.argv[2:]:
    s = socket.socket()
    if mode == "reuse-listen":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    if mode.endswith("listen"):
        s.listen()
    socks.append(s)
print("HOLDING", flush=True)
time.sleep(600)
EOF

# bind(2) of ADDR:PORT by a host application, then listen(2) with MODE listen, or with
# SO_REUSEADDR set first with MODE reuse-listen: prints "ok" or the errno name.
cat >"$H_TMP/trybind.py" <<'EOF'
import errno, socket, sys
mode = sys.argv[3] if len(sys.argv) > 3 else "bind"
s = socket.socket()
try:
    if mode == "reuse-listen":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    if mode.endswith("listen"):
        s.listen()
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF

HOLD_PID=
# hold MODE PORT... - start a holder; 0 once it holds the ports.
HOLD_N=0
hold() {
    local out=$H_TMP/hold.$((HOLD_N += 1)).out
    python3 "$H_TMP/hold.py" "$@" >"$out" 2>&1 </dev/null &
    HOLD_PID=$!
    h_bg_register "$HOLD_PID"
    for _ in $(seq 100); do
        grep -qx HOLDING "$out" 2>/dev/null && return 0
        kill -0 "$HOLD_PID" 2>/dev/null || break
        sleep 0.05
    done
    h_log "holder did not start: $(h__oneline "$(cat "$out" 2>/dev/null)")"
    return 1
}

unhold() {
    [ -n "$HOLD_PID" ] || return 0
    kill "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null
    HOLD_PID=
}

# --- a host application holds a port of the range ------------------------------------------

# Each case has ports of its own: a host-stack connection leaves its port in TIME_WAIT.
lo=20000
for mode in bind listen reuse-listen; do
    p=broker.host_$mode
    hi=$((lo + 1))
    if ! hold "$mode" "$lo"; then
        h_fail "$p.setup" "cannot hold port $lo on the host"
        continue
    fi
    for stack in toe auto host; do
        # (the host stack has no TAP: it reaches tgtd on 127.0.0.1)
        url=$TURL
        [ "$stack" = host ] && url=$LURL
        h_run "$TOEGW" luns "$url" --stack "$stack" --port-range "$lo-$hi" \
            --log-level debug --pcap "$H_TMP/$mode.$stack.pcap"
        h_expect_ok "$p.$stack.luns" || continue
        h_check "$p.$stack.skips_the_held_port" \
            "the connection used local port '$(local_port)' ($lo is the host's)" \
            test "$(local_port)" = "$hi"
        want=toe
        [ "$stack" = host ] && want=host
        h_check "$p.$stack.placed_on_$want" "placed on: $(wherefrom)" \
            grep -qF "connection placed on the $want stack" "$H_ERR"
        if [ "$want" = toe ]; then
            # On the wire: the login left the TOE's address from port $hi.
            login=$(tshark -r "$H_TMP/$mode.$stack.pcap" -Y 'iscsi.opcode == 0x03' -T fields \
                -E separator=: -e ip.src -e tcp.srcport 2>/dev/null | sort -u | tr '\n' ' ')
            h_check "$p.$stack.wire_shows_port_$hi" "login requests from '$login'" \
                test "$login" = "$TOE_IP:$hi "
        fi
    done
    unhold
    lo=$((lo + 10))
done

# Every port of the range held by host applications: a clear refusal, on either stack.
if hold bind 20030 20031; then
    for stack in toe auto; do
        h_run "$TOEGW" luns "$TURL" --stack "$stack" --port-range 20030-20031
        h_expect_error "broker.range_held.$stack.fails" 1
        h_check "broker.range_held.$stack.says_no_free_port" \
            "stderr: $(h__oneline "$(cat "$H_ERR")")" grep -q "no free local port" "$H_ERR"
    done
    unhold
else
    h_fail broker.range_held.setup "cannot hold ports 20030-20031 on the host"
fi

# --- the broker holds a port: host applications cannot take it -----------------------------

PORT=20100
"$TOEGW" perf "iscsi://$HOST_IP:3260/${H_IQN[1]}/2" -t 10 -b 8 -m 8 --stack toe \
    --port-range "$PORT-$PORT" --log-level debug >"$H_TMP/perf.out" 2>"$H_TMP/perf.err" \
    </dev/null &
perf_pid=$!
h_bg_register "$perf_pid"
up=0
for _ in $(seq 100); do
    if grep -q "connection placed on the toe stack (offloaded), local port $PORT" \
        "$H_TMP/perf.err"; then
        up=1
        break
    fi
    kill -0 "$perf_pid" 2>/dev/null || break
    sleep 0.05
done
if [ "$up" -ne 1 ]; then
    why=$(h__oneline "$(head -c 300 "$H_TMP/perf.err")")
    h_fail broker.held.toe_connection_up \
        "toegw perf did not report a TOE connection on port $PORT: $why"
else
    h_pass broker.held.toe_connection_up
    for a in 0.0.0.0 127.0.0.1 "$HOST_IP"; do
        r=$(python3 "$H_TMP/trybind.py" "$a" "$PORT")
        h_check "broker.held.host_bind_${a}_eaddrinuse" \
            "bind($a:$PORT) by a host process while the TOE uses it: $r" test "$r" = EADDRINUSE
    done
    r=$(python3 "$H_TMP/trybind.py" 0.0.0.0 "$PORT" listen)
    h_check broker.held.host_listen_eaddrinuse \
        "bind+listen(0.0.0.0:$PORT) by a host process while the TOE uses it: $r" \
        test "$r" = EADDRINUSE
    # Servers usually set SO_REUSEADDR first; they must be kept out as well.
    r=$(python3 "$H_TMP/trybind.py" 0.0.0.0 "$PORT" reuse-listen)
    h_check broker.held.host_reuseaddr_listen_eaddrinuse \
        "a host server with SO_REUSEADDR bound and listened on $PORT while the TOE uses it: $r" \
        test "$r" = EADDRINUSE
    # Another broker (a second toegw, host stack only) must not take it either. (Its
    # destination has no listener, so if it does take the port it leaves no TIME_WAIT.)
    h_run "$TOEGW" luns "iscsi://127.0.0.1:9/${H_IQN[1]}" --stack host --no-toe \
        --port-range "$PORT-$PORT"
    h_check broker.held.second_broker_refused \
        "a second broker took port $PORT too: $(h_last)" \
        grep -q "no free local port" "$H_ERR"
    # Host tools do not see the TOE's end of the connection: only the target's kernel socket.
    h_check broker.held.no_kernel_socket_on_the_toe_address \
        "ss lists a kernel socket bound to $TOE_IP:$PORT" \
        test -z "$(ss -Htn "src $TOE_IP:$PORT" 2>/dev/null)"
fi
wait "$perf_pid"
perf_rc=$?
h_log "perf: $(h__oneline "$(tail -n 1 "$H_TMP/perf.out")")"
why=$(h__oneline "$(tail -c 300 "$H_TMP/perf.err")")
h_check broker.held.perf_ok "toegw perf exited $perf_rc: $why" test "$perf_rc" -eq 0
h_check broker.held.released_by_the_broker "the log has no release of port $PORT" \
    grep -q "released, port $PORT back to the pool" "$H_TMP/perf.err"
r=$(python3 "$H_TMP/trybind.py" 0.0.0.0 "$PORT")
h_check broker.held.port_free_after_release "bind(0.0.0.0:$PORT) after the run: $r" \
    test "$r" = ok

# --- placement and its reasons -------------------------------------------------------------

h_run "$TOEGW" luns "$TURL" --log-level debug
h_expect_ok broker.place.default_luns &&
    h_check broker.place.default_is_toe "placed on: $(wherefrom)" placed toe offloaded

h_run "$TOEGW" luns "$TURL" --stack auto --toe-max-conns 0 --log-level debug
h_expect_ok broker.place.full_auto_luns &&
    h_check broker.place.full_auto_on_host "placed on: $(wherefrom)" placed host "toe full"
h_run "$TOEGW" luns "$TURL" --stack toe --toe-max-conns 0
h_expect_error broker.place.full_toe_fails 1
h_check broker.place.full_toe_says_why "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q "connection limit" "$H_ERR"

h_run "$TOEGW" luns "$LURL" --stack auto --no-toe --log-level debug
h_expect_ok broker.place.no_toe_auto_luns &&
    h_check broker.place.no_toe_auto_on_host "placed on: $(wherefrom)" placed host "no toe"
h_run "$TOEGW" luns "$LURL" --stack toe --no-toe
h_expect_error broker.place.no_toe_toe_fails "1 2"

h_run "$TOEGW" luns "$LURL" --stack auto --log-level debug
h_expect_ok broker.place.loopback_auto_luns &&
    h_check broker.place.loopback_auto_on_host "placed on: $(wherefrom)" \
        placed host "unreachable via toe"
h_run "$TOEGW" luns "$LURL" --stack toe
h_expect_error broker.place.loopback_toe_fails 1
h_check broker.place.loopback_toe_says_why "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q "not reachable" "$H_ERR"

h_run "$TOEGW" luns "$LURL" --stack host --log-level debug
h_expect_ok broker.place.host_luns &&
    h_check broker.place.host_asked "placed on: $(wherefrom)" placed host "host requested"

# --- one table: `toegw serve` + `toegw netstat` ----------------------------------------------

# A session over the TOE and a kernel TCP connection of another process (python3, connected
# to itself) are listed together; host tools see only the kernel one.
if command -v curl >/dev/null 2>&1 && command -v jq >/dev/null 2>&1; then
    API=127.0.0.1:18580
    SD=$H_TMP/state
    mkdir -p "$SD"
    "$TOEGW" serve --state-dir "$SD" --api "$API" --nbd 127.0.0.1:18509 \
        --port-range 20200-20209 2>"$H_TMP/serve.log" </dev/null &
    serve_pid=$!
    h_bg_register "$serve_pid"
    ready=0
    for _ in $(seq 100); do
        kill -0 "$serve_pid" 2>/dev/null || break
        if [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$API/readyz")" = 200 ]; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ "$ready" -ne 1 ]; then
        h_fail broker.table.serve_ready "$(h__oneline "$(tail -c 300 "$H_TMP/serve.log")")"
    else
        TOKEN=$(cat "$SD/api-token")
        auth=(-H "Authorization: Bearer $TOKEN")
        code=$(curl -s -m 30 -o "$H_TMP/sess.json" -w '%{http_code}' "${auth[@]}" \
            -X POST -d "{\"portal\":\"$HOST_IP\",\"target\":\"${H_IQN[1]}\"}" \
            "http://$API/api/v1/sessions")
        sid=$(jq -r '.id // empty' "$H_TMP/sess.json" 2>/dev/null)
        python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
print(c.getsockname()[1], flush=True)
time.sleep(600)' >"$H_TMP/py.port" 2>&1 </dev/null &
        py_pid=$!
        h_bg_register "$py_pid"
        for _ in $(seq 100); do
            [ -s "$H_TMP/py.port" ] && break
            sleep 0.05
        done
        pyport=$(head -n 1 "$H_TMP/py.port")
        if [ "$code" != 201 ] || [ -z "$sid" ]; then
            h_fail broker.table.session_over_toe \
                "POST /api/v1/sessions: $code $(h__oneline "$(head -c 300 "$H_TMP/sess.json")")"
        else
            h_pass broker.table.session_over_toe
            h_run "$TOEGW" netstat --api "$API" --api-token-file "$SD/api-token" --json
            h_expect_ok broker.table.netstat_json
            h_log "netstat: $(jq -c --arg l "127.0.0.1:$pyport" \
                'map(select(.stack == "toe" or .local == $l))' "$H_OUT" 2>/dev/null |
                head -c 600)"
            # shellcheck disable=SC2016 # jq variables
            h_check broker.table.lists_the_toe_connection \
                "no offloaded row of session $sid from 192.0.2.2:20200-20209 to $HOST_IP:3260" \
                jq -e --arg s "$sid" --arg r "$HOST_IP:3260" 'map(select(.stack == "toe" and
                    .offload_state == "offloaded" and .owner == $s and .remote == $r and
                    .state == "ESTABLISHED" and (.local | test("^192\\.0\\.2\\.2:2020[0-9]$"))))
                    | length == 1' "$H_OUT"
            # shellcheck disable=SC2016 # jq variables
            h_check broker.table.lists_another_process_socket \
                "no host row of python3's connection from 127.0.0.1:$pyport" \
                jq -e --arg l "127.0.0.1:$pyport" --arg o "$py_pid/" 'map(select(.stack == "host"
                    and .offload_state == "host" and .local == $l and .state == "ESTABLISHED"
                    and (.owner | startswith($o)))) | length == 1' "$H_OUT"
            tport=$(jq -r 'map(select(.stack == "toe" and .state == "ESTABLISHED"))[0].local
                | split(":")[1]' "$H_OUT" 2>/dev/null)
            h_check broker.table.host_tools_do_not_see_the_toe_end \
                "ss lists a kernel socket on $TOE_IP:$tport" \
                test -z "$(ss -Htn "src $TOE_IP" 2>/dev/null)"
            r=$(python3 "$H_TMP/trybind.py" 0.0.0.0 "${tport:-0}")
            h_check broker.table.session_port_held "bind(0.0.0.0:$tport) during the session: $r" \
                test "$r" = EADDRINUSE
            code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "${auth[@]}" -X DELETE \
                "http://$API/api/v1/sessions/$sid")
            h_check broker.table.session_deleted "DELETE: $code" test "$code" = 204
            r=$(python3 "$H_TMP/trybind.py" 0.0.0.0 "${tport:-0}")
            h_check broker.table.session_port_released "bind(0.0.0.0:$tport) after DELETE: $r" \
                test "$r" = ok
        fi
        kill "$py_pid" 2>/dev/null
    fi
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
else
    h_skip broker.table "curl or jq not found: the unified table is checked by the unit tests only"
fi

h_end
