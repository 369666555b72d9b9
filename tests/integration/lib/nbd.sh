# tests/integration/lib/nbd.sh - toegw serve and its REST API for the NBD tests: sourced by
# every test_nbd_*.sh after lib/harness.sh and h_begin.

API=http://127.0.0.1:8080
NBD_ADDR=127.0.0.1:10809
SERVE_PID=
TOKEN=
HAVE_TOE=1
declare -A SID=() VOL=() URI=()

# shellcheck disable=SC2317 # not every test needs it
# nbd_python - a python3 with libnbd's bindings (what nbdsh runs), if there is one.
nbd_python() {
    local p
    for p in python3 /usr/bin/python3; do
        if "$p" -c 'import nbd' 2>/dev/null; then
            command -v "$p"
            return 0
        fi
    done
    return 1
}

# nbd_serve [FLAG...] - toegw serve in the namespace: API on 127.0.0.1:8080, NBD on
# $NBD_ADDR, the TOE on toe0 (192.0.2.2, host side 192.0.2.1; --no-toe without
# /dev/net/tun). Waits for /readyz; $TOKEN is the API token.
nbd_serve() {
    if [ ! -c /dev/net/tun ]; then
        HAVE_TOE=
        set -- --no-toe "$@"
    fi
    mkdir -p "$H_TMP/state"
    "$TOEGW" serve --state-dir "$H_TMP/state" --api 127.0.0.1:8080 --nbd "$NBD_ADDR" "$@" \
        >"$H_TMP/serve.log" 2>&1 </dev/null &
    SERVE_PID=$!
    h_bg_register "$SERVE_PID"
    for _ in $(seq 100); do
        if [ -s "$H_TMP/state/api-token" ] && curl -sf -o /dev/null -m 2 "$API/readyz"; then
            TOKEN=$(cat "$H_TMP/state/api-token")
            return 0
        fi
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.1
    done
    h_fail "$H_TEST.serve" "toegw serve did not become ready: $(h__oneline "$(tail -c 300 "$H_TMP/serve.log")")"
    h_end
}

# api METHOD PATH [BODY] - prints the HTTP status (000: no answer); the body of the
# answer is in $H_TMP/api.json.
api() {
    local args=(-sS -m 30 -o "$H_TMP/api.json" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $TOKEN")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-raw "$3")
    curl "${args[@]}" "$API$2" 2>>"$H_TMP/curl.err" || true
}

# nbd_login TAG TID PORTAL STACK - a session to target TID through PORTAL on STACK. Sets
# SID[TAG], and for each LUN of it VOL[TAG.LUN] (the volume id) and URI[TAG.LUN] (the
# export the API gives for it). Fails the check TEST.login.TAG otherwise.
nbd_login() {
    local tag=$1 body code lun vol stack luns=$H_TMP/login.$1.json
    body=$(jq -nc --arg p "$3" --arg t "${H_IQN[$2]}" --arg s "$4" \
        '{portal: $p, target: $t, stack: $s}')
    code=$(api POST /api/v1/sessions "$body")
    if [ "$code" != 201 ]; then
        h_fail "$H_TEST.login.$tag" "POST /api/v1/sessions answered $code: $(h__oneline "$(head -c 300 "$H_TMP/api.json")")"
        return 1
    fi
    cp "$H_TMP/api.json" "$luns"
    stack=$(jq -r '.connection.stack' "$luns")
    if [ "$stack" != "$4" ]; then
        h_fail "$H_TEST.login.$tag" "the session runs on the '$stack' stack, not '$4'"
        return 1
    fi
    # shellcheck disable=SC2034 # SID and VOL: not every test uses them
    SID[$tag]=$(jq -r '.id' "$luns")
    while read -r lun vol; do
        # shellcheck disable=SC2034
        VOL[$tag.$lun]=$vol
        [ "$(api GET "/api/v1/volumes/$vol")" = 200 ] &&
            URI[$tag.$lun]=$(jq -r '.export' "$H_TMP/api.json")
    done < <(jq -r '.luns[] | "\(.lun) \(.volume)"' "$luns")
    h_pass "$H_TEST.login.$tag"
}

# shellcheck disable=SC2317 # called through h_check
# serve_alive - toegw still runs and answers /livez.
serve_alive() {
    kill -0 "$SERVE_PID" 2>/dev/null &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$API/livez")" = 200 ]
}

# shellcheck disable=SC2317 # not every test needs it
# py_checks NAME ARG... - runs the libnbd checks script; each "ok X" line it prints is
# PASS TEST.X, each "bad X: why" is FAIL TEST.X: why.
py_checks() {
    local name=$1 line l
    shift
    h_run "$PY" "$H_TMP/nbdcheck.py" "$@"
    while IFS= read -r line; do
        case $line in
            "ok "*) h_pass "$H_TEST.${line#ok }" ;;
            "bad "*)
                l=${line#bad }
                if [ "${l#*: }" != "$l" ]; then
                    h_fail "$H_TEST.${l%%: *}" "${l#*: }"
                else
                    h_fail "$H_TEST.$l" "failed"
                fi ;;
        esac
    done <"$H_OUT"
    [ "$H_RC" -eq 0 ] || h_fail "$H_TEST.$name" "the checks script failed: $(h_last)"
}
