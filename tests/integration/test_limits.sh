#!/usr/bin/env bash
#
# test_limits.sh - what hostile or greedy API and NBD clients can cost `toegw serve`.
#
# In a private network namespace: tgtd with one 256 MiB LUN (random data), toegw serve with
# a host-stack session to it. 198.51.100.0/24 and 203.0.113.0/24 are made local to lo, so
# that many "clients" (source addresses) can connect. The misbehaving clients are raw
# sockets (lib/limits_clients.py); the well-behaved ones are curl and nbdinfo. Checks:
#   - slow headers: 140 connections, each from its own address, send one header line every
#     3 s and never finish; /livez polled from 127.0.0.1 meanwhile answers 200 within 2 s
#     every time, and every slow connection gets a 408 and is closed by the header deadline
#     (10 s), whatever it keeps sending;
#   - per-client limit: 32 kept-alive connections from one address are served, the 33rd
#     gets 429 problem+json naming the limit, other addresses are served meanwhile;
#   - NBD connections that never handshake: from one address, 16 stay (and are closed by
#     the 10 s handshake deadline), the others are closed at once; from 300 addresses,
#     the oldest make room beyond 256; nbdinfo is served throughout;
#   - a client that pipelines 96 reads of 8 MiB and reads no reply: toegw's RSS grows by
#     far less than the 768 MiB asked for, then the client reads every reply, correct;
#   - the flags that set these limits refuse bad values with one line naming the flag;
#   - fd exhaustion: toegw under `ulimit -n 128`, 150 connections from 150 addresses to each
#     of the NBD and API ports: CPU stays low while accept fails, the log has a few lines,
#     and once the connections close nbdinfo and /livez are served again.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdinfo python3 ss
h_need_toegw

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

CLIENTS=$H_LIB_DIR/limits_clients.py
MIB=1048576
if ! { ip route add local 198.51.100.0/24 dev lo &&
    ip route add local 203.0.113.0/24 dev lo; }; then
    h_fail "$H_TEST.setup" "cannot make the documentation ranges local to lo"
    h_end
fi

# the limits are flags; a bad value is one line naming the flag and its range
h_run "$TOEGW" serve --state-dir "$H_TMP/nostate" --api-header-timeout 0
h_expect_error "$H_TEST.flag_bad_header_timeout" 2
h_check "$H_TEST.flag_names_range" "stderr: $(head -c 200 "$H_ERR")" \
    grep -q -- '--api-header-timeout must be a number from 1 to 600 (seconds)' "$H_ERR"
TOEGW_NBD_CLIENT_BUFFER_MIB=lots h_run "$TOEGW" serve --state-dir "$H_TMP/nostate"
h_check "$H_TEST.flag_env_names_variable" "exit $H_RC, stderr: $(head -c 200 "$H_ERR")" \
    grep -q 'TOEGW_NBD_CLIENT_BUFFER_MIB must be a number from 1 to 4096 (MiB)' "$H_ERR"

h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:limits
LUN=$(h_lun_path 1 1)
h_random "$LUN" $((256 * MIB))
h_lun_file 1 1 256M 512

# the per-address handshake cap at 16 (the default is 64) keeps the idle-connection checks
# below small
nbd_serve --no-toe --nbd-max-handshakes-per-client 16
nbd_login host 1 127.0.0.1 host || h_end
EXPORT=${URI[host.1]}
VOLID=${VOL[host.1]}

# kv KEY FILE - the value of a "key value" line of limits_clients.py's output.
kv() {
    sed -n "s/^$1 //p" "$2" | head -n 1
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# cpu_ticks PID - user + system time of the process, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Poll /livez from 127.0.0.1 every 0.5 s until the file $1.stop exists; one line per poll
# in $1: "HTTP_CODE SECONDS".
livez_poller() {
    while [ ! -e "$1.stop" ]; do
        curl -s -o /dev/null -m 5 -w '%{http_code} %{time_total}\n' "$API/livez" >>"$1"
        sleep 0.5
    done
}

# nbdinfo_ok - a well-behaved NBD client is served (size of the export).
: >"$H_TMP/nbdinfo.out"
# shellcheck disable=SC2317 # called through h_check
nbdinfo_ok() {
    timeout 10 nbdinfo --size "$EXPORT" >"$H_TMP/nbdinfo.out" 2>&1 &&
        [ "$(cat "$H_TMP/nbdinfo.out")" = $((256 * MIB)) ]
}

# --- API: 140 connections trickling header lines --------------------------------------------------

LIVE=$H_TMP/livez.slow
livez_poller "$LIVE" &
h_bg_register $!
POLLER=$!
SLOW=$H_TMP/slow.out
h_run python3 "$CLIENTS" slow 127.0.0.1 8080 140 3 25
cp "$H_OUT" "$SLOW"
touch "$LIVE.stop"
wait "$POLLER" 2>/dev/null
h_log "slow clients: $(tr '\n' ' ' <"$SLOW")"
npoll=$(grep -c . "$LIVE")
nbad=$(awk '$1 != 200 || $2 > 2.0' "$LIVE" | grep -c .)
h_log "/livez during the slow clients: $npoll polls, max $(sort -k2 -g "$LIVE" | tail -n 1)"
h_check "$H_TEST.api_slow_headers_livez" "$nbad of $npoll /livez polls failed or took over 2 s: $(awk '$1 != 200 || $2 > 2.0' "$LIVE" | head -n 3 | tr '\n' ' ')" \
    test "$npoll" -ge 10 -a "$nbad" -eq 0
h_check "$H_TEST.api_slow_headers_closed" "$(kv closed "$SLOW") of 140 slow connections were closed, the last after $(kv close_max "$SLOW") s (deadline 10 s)" \
    test "$(kv closed "$SLOW")" = 140 -a "$(kv close_max "$SLOW" | cut -d. -f1)" -lt 13 -a \
    "$(kv close_min "$SLOW" | cut -d. -f1)" -ge 9
h_check "$H_TEST.api_slow_headers_408" "$(kv answered_408 "$SLOW") of 140 slow connections got a 408 answer" \
    test "$(kv answered_408 "$SLOW")" = 140
h_check "$H_TEST.api_alive_after_slow" "toegw does not answer /livez" serve_alive

# --- API: per-client connection limit ------------------------------------------------------------

PC=$H_TMP/perclient
rm -f "$PC.ready" "$PC.go"
python3 "$CLIENTS" perclient 127.0.0.1 8080 198.51.100.200 32 "$PC.ready" "$PC.go" \
    >"$PC.out" 2>&1 &
h_bg_register $!
PCPID=$!
for _ in $(seq 200); do [ -e "$PC.ready" ] && break; sleep 0.05; done
other=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$API/livez")
other2=$(curl -s -o /dev/null -m 5 -w '%{http_code}' --interface 198.51.100.201 "$API/livez")
touch "$PC.go"
wait "$PCPID"
h_log "per-client: $(tr '\n' ' ' <"$PC.out")"
h_check "$H_TEST.api_per_client_32_served" "$(kv held_ok "$PC.out") of 32 connections from one address were served: $(head -c 300 "$PC.out")" \
    test "$(kv held_ok "$PC.out")" = 32
h_check "$H_TEST.api_per_client_33rd_429" "the 33rd connection got '$(kv extra_status "$PC.out")' ($(kv extra_detail "$PC.out"))" \
    test "$(kv extra_status "$PC.out")" = 429 -a "$(kv extra_ctype "$PC.out")" = problem+json
h_check "$H_TEST.api_per_client_says_why" "the 429 says '$(kv extra_detail "$PC.out")'" \
    grep -q '^extra_detail too many connections from 198.51.100.200 (at most 32 at once)$' \
    "$PC.out"
h_check "$H_TEST.api_per_client_held_still_served" "$(kv held_still_served "$PC.out") of 4 kept-alive connections answered again" \
    test "$(kv held_still_served "$PC.out")" = 4
h_check "$H_TEST.api_per_client_others_served" "127.0.0.1 got $other, 198.51.100.201 got $other2 while one address was at its limit" \
    test "$other" = 200 -a "$other2" = 200

# --- NBD: connections that never handshake -------------------------------------------------------

NI=$H_TMP/nbdidle
python3 "$CLIENTS" nbdidle 127.0.0.1 10809 198.51.100.50 40 16 >"$NI.one" 2>&1 &
h_bg_register $!
NIPID=$!
sleep 2
h_check "$H_TEST.nbd_idle_one_address_served" "nbdinfo failed while 40 idle connections from one address were open: $(head -c 200 "$H_TMP/nbdinfo.out")" \
    nbdinfo_ok
wait "$NIPID"
h_log "nbd idle, one address: $(tr '\n' ' ' <"$NI.one")"
h_check "$H_TEST.nbd_idle_per_client_cap" "of 40 connections from one address, $(kv closed_within_1s "$NI.one") were closed at once (expected 24), $(kv open_at_end "$NI.one") stayed open" \
    test "$(kv connected "$NI.one")" = 40 -a "$(kv closed_within_1s "$NI.one")" = 24
h_check "$H_TEST.nbd_idle_deadline" "the 16 admitted idle connections closed between $(kv later_min "$NI.one") and $(kv later_max "$NI.one") s ($(kv closed_later "$NI.one") of them; deadline 10 s)" \
    test "$(kv closed_later "$NI.one")" = 16 -a "$(kv later_min "$NI.one" | cut -d. -f1)" -ge 9 -a \
    "$(kv later_max "$NI.one" | cut -d. -f1)" -lt 13

python3 "$CLIENTS" nbdidle 127.0.0.1 10809 198.51.100.1-254,203.0.113.1-46 1 14 \
    >"$NI.many" 2>&1 &
h_bg_register $!
NIPID=$!
sleep 3
h_check "$H_TEST.nbd_idle_many_addresses_served" "nbdinfo failed while 300 idle connections from 300 addresses were open: $(head -c 200 "$H_TMP/nbdinfo.out")" \
    nbdinfo_ok
wait "$NIPID"
h_log "nbd idle, 300 addresses: $(tr '\n' ' ' <"$NI.many")"
h_check "$H_TEST.nbd_idle_global_cap" "of 300 idle connections $(kv closed_before_8s "$NI.many") were closed before the deadline, $(kv open_at_end "$NI.many") never (at most 256 may wait)" \
    test "$(kv closed_before_8s "$NI.many")" -ge 44 -a "$(kv open_at_end "$NI.many")" = 0
h_check "$H_TEST.nbd_alive_after_idle" "toegw does not answer /livez" serve_alive

# --- NBD: a client that does not read its replies --------------------------------------------------

NR=$H_TMP/noread
rm -f "$NR.ready" "$NR.go"
rss0=$(rss_kib "$SERVE_PID")
python3 "$CLIENTS" noread 127.0.0.1 10809 "$VOLID" "$LUN" 96 $((8 * MIB)) "$NR.ready" \
    "$NR.go" >"$NR.out" 2>&1 &
h_bg_register $!
NRPID=$!
for _ in $(seq 200); do [ -e "$NR.ready" ] && break; sleep 0.05; done
rssmax=$rss0
for _ in $(seq 30); do
    r=$(rss_kib "$SERVE_PID")
    [ "$r" -gt "$rssmax" ] && rssmax=$r
    sleep 0.1
done
h_check "$H_TEST.nbd_noread_others_served" "nbdinfo failed while a client held its replies" nbdinfo_ok
touch "$NR.go"
wait "$NRPID"
growth=$(( (rssmax - rss0) / 1024 ))
h_log "no-read client: RSS $((rss0 / 1024)) MiB before, at most $((rssmax / 1024)) MiB while 768 MiB of reads were unread (+$growth MiB); $(tr '\n' ' ' <"$NR.out")"
h_check "$H_TEST.nbd_noread_rss_bounded" "toegw's RSS grew by $growth MiB for 96 unread 8 MiB replies (buffer limit 64 MiB)" \
    test "$growth" -lt 160
h_check "$H_TEST.nbd_noread_data_correct" "$(head -c 300 "$NR.out")" \
    test "$(kv replies "$NR.out")" = 96 -a "$(kv mismatched "$NR.out")" = 0

# --- fd exhaustion ---------------------------------------------------------------------------------

kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
STOP_RC=$?
cp "$H_TMP/serve.log" "$H_TMP/serve1.log"
h_check "$H_TEST.stops_cleanly_after_abuse" "toegw exited $STOP_RC on SIGTERM after the slow, idle and non-reading clients: $(tail -n 2 "$H_TMP/serve1.log" | tr '\n' '|')" \
    test "$STOP_RC" -eq 0
REAL_TOEGW=$TOEGW
cat >"$H_TMP/lowfd" <<EOF
#!/bin/sh
ulimit -n 128
exec "$REAL_TOEGW" "\$@"
EOF
chmod +x "$H_TMP/lowfd"
TOEGW=$H_TMP/lowfd nbd_serve --no-toe
TOEGW=$REAL_TOEGW
for _ in $(seq 100); do nbdinfo_ok && break; sleep 0.1; done   # the session is restored
h_check "$H_TEST.fd_served_before" "nbdinfo failed on the restarted toegw (ulimit -n 128)" nbdinfo_ok
FL=$H_TMP/flood
rm -f "$FL.ready" "$FL.go"
lines0=$(grep -c . "$H_TMP/serve.log")
python3 "$CLIENTS" flood 127.0.0.1 10809 8080 150 "$FL.ready" "$FL.go" >"$FL.out" 2>&1 &
h_bg_register $!
FLPID=$!
for _ in $(seq 200); do [ -e "$FL.ready" ] && break; sleep 0.05; done
sleep 0.5
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks "$SERVE_PID")
sleep 3
t1=$(cpu_ticks "$SERVE_PID")
lines1=$(grep -c . "$H_TMP/serve.log")
fds=$(find "/proc/$SERVE_PID/fd" -mindepth 1 2>/dev/null | grep -c .)
cpu_pct=$(( (t1 - t0) * 100 / (3 * hz) ))
h_log "fd flood: $(tr '\n' ' ' <"$FL.out"); toegw holds $fds fds (limit 128), CPU ${cpu_pct}% over 3 s, $((lines1 - lines0)) log lines: $(tail -n +$((lines0 + 1)) "$H_TMP/serve.log" | cut -c1-160 | head -n 8 | tr '\n' '|')"
h_check "$H_TEST.fd_limit_reached" "toegw holds $fds descriptors, the flood did not reach the limit of 128" \
    test "$fds" -ge 120
h_check "$H_TEST.fd_limit_cpu_low" "toegw used ${cpu_pct}% CPU over 3 s at the descriptor limit" \
    test "$cpu_pct" -lt 15
h_check "$H_TEST.fd_limit_log_quiet" "$((lines1 - lines0)) log lines while at the descriptor limit" \
    test $((lines1 - lines0)) -le 20
h_check "$H_TEST.fd_limit_said_so" "no log line says that accept ran out of descriptors" \
    grep -q 'cannot accept connections: Too many open files' "$H_TMP/serve.log"
touch "$FL.go"
wait "$FLPID"
ok=
for _ in $(seq 50); do
    if nbdinfo_ok && [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$API/livez")" = 200 ]; then
        ok=1
        break
    fi
    sleep 0.2
done
h_check "$H_TEST.fd_limit_service_resumes" "nbdinfo or /livez still fail after the flood closed: $(tail -n 3 "$H_TMP/serve.log" | tr '\n' '|')" \
    test -n "$ok"
h_check "$H_TEST.fd_limit_log_resumed" "no log line says accepting started again" \
    grep -q 'accepting connections again after' "$H_TMP/serve.log"

h_end
