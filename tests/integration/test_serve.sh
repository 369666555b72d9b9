#!/usr/bin/env bash
#
# test_serve.sh - `toegw serve` flags and their TOEGW_* environment variables
# (docs/serve.md): bad flags and bad values exit 2 with one clear line naming the culprit; the
# environment configures the daemon (TOEGW_API, TOEGW_STATE_DIR, TOEGW_NO_TOE, ...) and a
# flag overrides its variable; --no-toe runs on the host stack only (the TOE answers 409 or
# 503); the --toe-* flags and --port-range shape the TOE and the broker; a Unix socket API;
# an API address another process holds exits 1; SIGTERM exits 0.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm perl
h_need_toegw

OPEN=iqn.2024-01.org.example.toegw:serve.open
OPEN2=iqn.2024-01.org.example.toegw:serve.open2
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 "$OPEN"
h_lun_file 1 1 8M 512
h_target_new 2 "$OPEN2"
h_lun_file 2 1 8M 512

# --- bad usage: exit 2, one line on stderr that names what is wrong -----------------------------

# usage_error NAME NEEDLE CMD... - CMD exits 2 with a one-line message containing NEEDLE.
usage_error() {
    local name=$1 needle=$2
    shift 2
    H_CMD_TIMEOUT=5 h_run "$@"
    if [ "$H_RC" -ne 2 ]; then
        h_fail "$name" "expected exit status 2, got $(h_last)"
    elif ! h_stderr_oneline; then
        h_fail "$name" "expected one line on stderr, got $(grep -c '' "$H_ERR")"
    elif ! grep -qF -- "$needle" "$H_ERR"; then
        h_fail "$name" "the message does not name '$needle': $(h__oneline "$(cat "$H_ERR")")"
    else
        h_pass "$name"
        h_log "$name: $(cat "$H_ERR")"
    fi
}

BADSD=$H_TMP/never
S=(--state-dir "$BADSD" --api 127.0.0.1:18690 --nbd 127.0.0.1:18691)
usage_error serve.bad_flag --bogus "$TOEGW" serve --bogus "${S[@]}"
usage_error serve.missing_value --api "$TOEGW" serve "${S[@]}" --api
usage_error serve.bad_api --api "$TOEGW" serve "${S[@]}" --api nonsense
usage_error serve.bad_nbd --nbd "$TOEGW" serve "${S[@]}" --nbd 127.0.0.1:99999
usage_error serve.bad_log_format --log-format "$TOEGW" serve "${S[@]}" --log-format xml
usage_error serve.bad_log_level --log-level "$TOEGW" serve "${S[@]}" --log-level loud
usage_error serve.bad_toe_mtu --toe-mtu "$TOEGW" serve "${S[@]}" --toe-mtu abc
usage_error serve.bad_toe_max_conns --toe-max-conns "$TOEGW" serve "${S[@]}" --toe-max-conns -1
usage_error serve.bad_toe_addr --toe-addr "$TOEGW" serve "${S[@]}" --toe-addr 300.1.2.3/24
usage_error serve.bad_port_range --port-range "$TOEGW" serve "${S[@]}" --port-range 5000-4000
usage_error serve.extra_argument extra "$TOEGW" serve "${S[@]}" extra
usage_error serve.env_bad_log_format TOEGW_LOG_FORMAT \
    env TOEGW_LOG_FORMAT=xml "$TOEGW" serve "${S[@]}"
usage_error serve.env_bad_no_toe TOEGW_NO_TOE env TOEGW_NO_TOE=maybe "$TOEGW" serve "${S[@]}"
usage_error serve.bad_api_tls --api-tls "$TOEGW" serve "${S[@]}" --api-tls yes
usage_error serve.env_bad_api_tls TOEGW_API_TLS env TOEGW_API_TLS=1 "$TOEGW" serve "${S[@]}"
usage_error serve.env_bad_metrics_auth TOEGW_METRICS_AUTH \
    env TOEGW_METRICS_AUTH=maybe "$TOEGW" serve "${S[@]}"
usage_error serve.env_bad_api TOEGW_API \
    env TOEGW_API=nonsense TOEGW_STATE_DIR="$BADSD" "$TOEGW" serve
usage_error serve.env_bad_port_range TOEGW_PORT_RANGE \
    env TOEGW_PORT_RANGE=x-y "$TOEGW" serve "${S[@]}"
# protected mode: beyond loopback only with TLS, or with TLS turned off in so many words
usage_error serve.protected_api "--api-tls on" "$TOEGW" serve --state-dir "$BADSD" \
    --api 0.0.0.0:18690 --nbd 127.0.0.1:18691
usage_error serve.protected_nbd "--nbd-tls require" "$TOEGW" serve --state-dir "$BADSD" \
    --api 127.0.0.1:18690 --nbd 0.0.0.0:18691
usage_error serve.protected_env "--nbd-tls off" \
    env TOEGW_NBD='*:18691' "$TOEGW" serve --state-dir "$BADSD" --api 127.0.0.1:18690
# told so: it starts, and says at every start what it exposes
H_CMD_TIMEOUT=3 h_run "$TOEGW" serve --no-toe --state-dir "$H_TMP/exposed" \
    --api 0.0.0.0:18692 --api-tls off --nbd 0.0.0.0:18693 --nbd-tls off
h_check serve.protected_off_warns "$(grep -c 'warn  serve' "$H_ERR") warnings: $(h_last)" \
    sh -c "grep -q 'warn  serve: the api on 0.0.0.0:18692 speaks plain HTTP' '$H_ERR' &&
        grep -q 'warn  serve: the nbd export on 0.0.0.0:18693 is in clear' '$H_ERR' &&
        grep -q 'toegw serving' '$H_ERR'"
h_check serve.usage_errors_touch_nothing "a failed start created the state dir $BADSD" \
    test ! -e "$BADSD"
H_CMD_TIMEOUT=5 h_run "$TOEGW" serve --help
h_check serve.help "$(h_last)" \
    sh -c "[ $H_RC -eq 0 ] && grep -q -- '--state-dir' '$H_OUT' && grep -q TOEGW_ '$H_OUT' &&
        grep -q -- '--nbd ADDR .*(default: 127.0.0.1:10809)' '$H_OUT' &&
        grep -q -- '--replacement-timeout S .*(default: 120)' '$H_OUT'"
# every flag --help lists is one serve takes, and every one docs/serve.md's table has
cp "$H_OUT" "$H_TMP/serve-help"
missing=
for f in $(grep -o '^ *--[a-z-]*' "$H_TMP/serve-help" | tr -d ' '); do
    grep -q -- "\`$f" "$REPO/docs/serve.md" || missing="$missing $f"
done
h_check serve.help_flags_documented "not in docs/serve.md:$missing" test -z "$missing"

# --- helpers for a running daemon -------------------------------------------------------------------

PID=
LOG=
API=
TOKEN=
R_CODE=
R_BODY=$H_TMP/body
R_N=0

serve_alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$PID/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# start API TOKENFILE LOG CMD... - runs CMD (a toegw serve) in the background and waits for
# /readyz on API (host:port, or unix:/path).
start() {
    local tokfile=$2 cur=()
    API=$1
    LOG=$3
    shift 3
    "$@" 2>"$LOG" </dev/null &
    PID=$!
    h_bg_register "$PID"
    [[ $API == unix:* ]] && cur=(--unix-socket "${API#unix:}")
    for _ in $(seq 200); do
        serve_alive || break
        if [ "$(curl -s -m 2 "${cur[@]}" -o /dev/null -w '%{http_code}' \
            "http://$(api_host)/readyz")" = 200 ]; then
            TOKEN=$(cat "$tokfile")
            return 0
        fi
        sleep 0.05
    done
    h_fail "serve.start" "toegw serve did not become ready on $API: $(h__oneline "$(tail -c 300 "$LOG")")"
    return 1
}

api_host() {
    if [[ $API == unix:* ]]; then echo toegw; else echo "$API"; fi
}

req() {
    local m=$1 p=$2 cur=()
    shift 2
    R_N=$((R_N + 1))
    R_BODY=$H_TMP/resp$R_N
    [[ $API == unix:* ]] && cur=(--unix-socket "${API#unix:}")
    R_CODE=$(curl -s -m 30 "${cur[@]}" -X "$m" -o "$R_BODY" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" "$@" "http://$(api_host)$p")
}

# shellcheck disable=SC2317 # called through h_check
jqf() {
    jq -e "$@" >/dev/null 2>&1
}

got() {
    printf 'HTTP %s, body: %s' "$R_CODE" "$(head -c 300 "$R_BODY" 2>/dev/null)"
}

expect_code() {
    if [ "$R_CODE" != "$2" ]; then
        h_fail "$1" "expected HTTP $2, got $(got)"
    elif [ -n "${3:-}" ] && ! jq -e "$3" "$R_BODY" >/dev/null 2>&1; then
        h_fail "$1" "HTTP $2 but the body fails '$3': $(head -c 300 "$R_BODY")"
    else
        h_pass "$1"
    fi
}

# stop NAME - SIGTERM, exit 0 within 10 s.
stop() {
    local t0 rc ms
    t0=$(date +%s%N)
    kill -TERM "$PID"
    for _ in $(seq 150); do
        serve_alive || break
        sleep 0.1
    done
    serve_alive && kill -KILL "$PID"
    wait "$PID"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    h_check "$1" "exit status $rc after SIGTERM, ${ms} ms" test "$rc" -eq 0 -a "$ms" -lt 10000
}

# --- the environment configures the daemon; --no-toe through TOEGW_NO_TOE -----------------------------

ESD=$H_TMP/env-state
ETOK=$H_TMP/tokens/api-token
mkdir -m 700 "$H_TMP/tokens"
if start 127.0.0.1:18601 "$ETOK" "$H_TMP/env.log" \
    env TOEGW_API=127.0.0.1:18601 TOEGW_STATE_DIR="$ESD" TOEGW_NO_TOE=1 \
    TOEGW_NBD=127.0.0.1:18602 TOEGW_API_TOKEN_FILE="$ETOK" TOEGW_LOG_FORMAT=json \
    TOEGW_LOG_LEVEL=debug TOEGW_PORT_RANGE=22000-22099 "$TOEGW" serve; then
    h_pass serve.env_api
    h_check serve.env_token_file "token file $ETOK: mode $(stat -c %a "$ETOK" 2>/dev/null)" \
        test "$(stat -c %a "$ETOK" 2>/dev/null)" = 600 -a -s "$ETOK"
    h_check serve.env_state_dir "TOEGW_STATE_DIR $ESD not created" test -d "$ESD"
    h_check serve.env_token_not_in_state_dir "a token was written to the state dir too" \
        test ! -e "$ESD/api-token"
    req GET /api/v1/stacks
    expect_code serve.no_toe_stacks 200 '.[0].name == "host" and .[1].name == "toe" and
        .[1].state == "absent"'
    req PATCH /api/v1/stacks/toe -d '{"link":"down"}'
    expect_code serve.no_toe_patch_409 409
    req POST /api/v1/capture
    expect_code serve.no_toe_capture_409 409
    req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1\",\"target\":\"$OPEN\",\"stack\":\"toe\"}"
    expect_code serve.no_toe_session_toe_503 503
    req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1\",\"target\":\"$OPEN\"}"
    expect_code serve.no_toe_session_auto_host 201 '.stack == "host" and
        .connection.offload_state == "host" and
        (.connection.local | split(":")[1] | tonumber) >= 22000 and
        (.connection.local | split(":")[1] | tonumber) <= 22099'
    VOL=$(jq -r '.luns[0].volume // empty' "$R_BODY")
    req GET "/api/v1/volumes/$VOL"
    expect_code serve.env_nbd_export 200 ".export == \"nbd://127.0.0.1:18602/$VOL\""
    if command -v nbdinfo >/dev/null 2>&1 && [ -n "$VOL" ]; then
        h_run nbdinfo --size "nbd://127.0.0.1:18602/$VOL"
        h_check serve.env_nbd_listens "$(h_last); stdout $(head -c 40 "$H_OUT")" \
            test "$H_RC" -eq 0 -a "$(head -n 1 "$H_OUT")" = 8388608
    else
        h_skip serve.env_nbd_listens "nbdinfo not installed or no volume"
    fi
    req POST /api/v1/reservations -d '{"holder":"r"}'
    expect_code serve.env_port_range 201 '.port >= 22000 and .port <= 22099'
    stop serve.env_sigterm
    h_check serve.env_json_log "a log line is not a JSON object with ts/level/msg" \
        jqf -s 'length > 0 and all(.[]; type == "object" and has("ts") and has("level")
            and has("msg"))' "$H_TMP/env.log"
    h_check serve.env_log_level_debug "TOEGW_LOG_LEVEL=debug logged no debug line" \
        jqf -s 'any(.[]; .level == "debug")' "$H_TMP/env.log"
    h_check serve.env_no_tap "--no-toe created a TAP device" \
        test -z "$(ip -o link show | grep -v ': lo:')"
fi

# --- flags override their variables; --no-toe as a flag; a Unix socket API -------------------------------

FSD=$H_TMP/flag-state
SOCK=$H_TMP/api.sock
if start "unix:$SOCK" "$FSD/api-token" "$H_TMP/flag.log" \
    env TOEGW_API=127.0.0.1:18611 TOEGW_LOG_FORMAT=json TOEGW_NO_TOE=0 \
    "$TOEGW" serve --api "unix:$SOCK" --state-dir "$FSD" --nbd 127.0.0.1:18612 --no-toe \
    --log-format text; then
    h_pass serve.flag_overrides_env_api
    h_check serve.env_api_not_used "something listens on TOEGW_API's port although --api was given" \
        test -z "$(ss -Hltn 'sport = :18611')"
    h_check serve.token_default_path "token not in --state-dir: mode $(stat -c %a "$FSD/api-token" 2>/dev/null)" \
        test "$(stat -c %a "$FSD/api-token" 2>/dev/null)" = 600
    req GET /api/v1/stacks
    expect_code serve.unix_socket_api 200 '.[1].state == "absent"'
    tok=$TOKEN
    TOKEN=wrong
    req GET /api/v1/stacks
    TOKEN=$tok
    expect_code serve.unix_socket_auth 401
    h_check serve.flag_log_format_text "--log-format text did not override TOEGW_LOG_FORMAT=json" \
        sh -c "! grep -q '^{' '$H_TMP/flag.log' && grep -q 'serving' '$H_TMP/flag.log'"
    # one appliance per state dir: a second serve on it exits 1 and names the first's pid
    H_CMD_TIMEOUT=10 h_run "$TOEGW" serve --state-dir "$FSD" --api 127.0.0.1:18613 \
        --nbd 127.0.0.1:18614 --no-toe
    h_check serve.state_dir_taken "$(h_last) (expected exit 1 naming pid $PID)" \
        sh -c "test $H_RC -eq 1 && test \$(wc -l <'$H_ERR') -eq 1 &&
               grep -qF 'state dir \"$FSD\" is in use by another toegw serve (pid $PID)' '$H_ERR'"
    h_check serve.state_dir_taken_nothing_started "the second serve listened on its api port" \
        test -z "$(ss -Hltn 'sport = :18613')"
    stop serve.flag_sigterm
fi

# --- the --toe-* flags and --port-range ----------------------------------------------------------------

if ! h_toe_built; then
    h_skip serve.toe_flags "$TOEGW is built without the toe (make TOE_MK=)"
elif [ -c /dev/net/tun ]; then
    TSD=$H_TMP/toe-state
    if start 127.0.0.1:18621 "$TSD/api-token" "$H_TMP/toe.log" \
        "$TOEGW" serve --api 127.0.0.1:18621 --nbd 127.0.0.1:18622 --state-dir "$TSD" \
        --toe-ifname toetest --toe-addr 192.0.2.10/24 --toe-host-addr 192.0.2.9/24 \
        --toe-mtu 1500 --toe-max-conns 0 --port-range 21000-21009; then
        req GET /api/v1/stacks/toe
        expect_code serve.toe_flags 200 '.state == "up" and .addr == "192.0.2.10" and
            .prefix == 24 and .host_addr == "192.0.2.9" and .mtu == 1500 and
            .max_conns == 0 and .ifname == "toetest"'
        h_check serve.toe_tap "no TAP 'toetest' with MTU 1500 and 192.0.2.9/24: $(h__oneline "$(ip -o addr show 2>/dev/null)")" \
            sh -c "ip -o link show toetest | grep -q 'mtu 1500' &&
                   ip -o -4 addr show dev toetest | grep -q '192.0.2.9/24'"
        # --toe-max-conns 0: the TOE is up but takes no connection; auto falls back.
        req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.9\",\"target\":\"$OPEN\",\"stack\":\"toe\"}"
        expect_code serve.toe_full_503 503
        req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.9\",\"target\":\"$OPEN\"}"
        expect_code serve.toe_full_auto_falls_back 201 '.stack == "host" and
            (.connection.local | split(":")[1] | tonumber) >= 21000 and
            (.connection.local | split(":")[1] | tonumber) <= 21009'
        req POST /api/v1/reservations -d '{"holder":"r"}'
        expect_code serve.port_range_reservation 201 '.port >= 21000 and .port <= 21009'
        req POST /api/v1/reservations -d '{"holder":"r","port":20500}'
        expect_code serve.port_outside_range_422 422
        stop serve.toe_sigterm
        h_check serve.toe_tap_removed "the TAP 'toetest' outlived toegw" \
            sh -c '! ip link show toetest >/dev/null 2>&1'
    fi
else
    h_skip serve.toe_flags "no /dev/net/tun"
fi

# --- an API address another process holds: exit 1, one line --------------------------------------------

perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 18631, Listen => 1,
                                  Proto => "tcp", ReuseAddr => 1) or die "bind: $!";
    print "ready\n"; $| = 1; sleep 60' >"$H_TMP/holder.out" 2>&1 &
HOLDER=$!
h_bg_register "$HOLDER"
for _ in $(seq 50); do grep -q ready "$H_TMP/holder.out" && break; sleep 0.1; done
H_CMD_TIMEOUT=15 h_run "$TOEGW" serve --no-toe --api 127.0.0.1:18631 --nbd 127.0.0.1:18632 \
    --state-dir "$H_TMP/busy-state"
if [ "$H_RC" -eq 1 ] && grep -q '18631' "$H_ERR"; then
    h_pass serve.api_address_in_use
    h_log "serve.api_address_in_use: $(grep -v ' info ' "$H_ERR" | tail -n 1)"
else
    h_fail serve.api_address_in_use "expected exit 1 naming 127.0.0.1:18631, got $(h_last)"
fi
h__kill_pid "$HOLDER"

h_end
