#!/usr/bin/env bash
#
# test_api.sh - the REST API of `toegw serve` (docs/api.md) with curl, against tgtd,
# in a private network namespace: every endpoint with its success and error paths, a
# session created over REST that reads and writes through the volume data endpoint
# (checked against tgtd's backing file byte for byte, over the TOE and over the host
# stack), the TOE's link and wire faults, capture, metrics, health, the dashboard page,
# `toegw netstat`, then SIGTERM (every session logged out, exit 0 within 10 s) and a
# restart on the same --state-dir that restores the sessions and the reservations with the
# same ids; then six clients reading GET /api/v1/connections at once (every answer whole).
# No response body and no log line (text and json formats) may contain a CHAP secret that
# was sent; the state and token files are 0600.
#
# If the daemon dies (a crash), the check after that section fails (api.alive_after_*) and
# it is started again on the same state dir, so the later sections still report.
#
# tgtd listens on 0.0.0.0:3260: reached at 192.0.2.1 (the TAP's host side) the session goes
# over the TOE; reached at 127.0.0.1 with "stack":"host" it goes over the kernel's stack.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm perl
h_need_toe
[ -c /dev/net/tun ] || h_skip_all "no /dev/net/tun (the TOE needs a TAP device)"

API=127.0.0.1:18480
NBD=127.0.0.1:18409
SD=$H_TMP/state
RESP=$H_TMP/resp
mkdir -p "$RESP"

OPEN=iqn.2024-01.org.example.toegw:api.open
MUTUAL=iqn.2024-01.org.example.toegw:api.mutual
ONEWAY=iqn.2024-01.org.example.toegw:api.oneway
ONEWAY2=iqn.2024-01.org.example.toegw:api.oneway2
RESV=iqn.2024-01.org.example.toegw:api.resv
MISSING=iqn.2024-01.org.example.toegw:api.missing
CU=apiuser
CS=ApiChapSecret7xQ
TU=apitarget
TS=ApiMutualSecret9Z
WRONG=ApiWrongSecret42W
DS=ApiDiscoverySecret5K
SECRETS=("$CS" "$TS" "$WRONG" "$DS")

H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 "$OPEN"
h_lun_file 1 1 16M 512
h_target_new 2 "$MUTUAL"
h_lun_file 2 1 8M 4096
h_chap_in 2 "$CU" "$CS"
h_chap_out 2 "$TU" "$TS"
h_target_param 2 HeaderDigest CRC32C
h_target_param 2 DataDigest CRC32C
h_target_new 3 "$ONEWAY"
h_lun_file 3 1 4M 512
h_tgtadm --op bind --mode account --tid 3 --user "$CU" ||
    { h_fail api.setup "cannot bind CHAP account to target 3"; h_end; }
h_target_new 4 "$ONEWAY2"
h_lun_file 4 1 4M 512
h_tgtadm --op bind --mode account --tid 4 --user "$CU" ||
    { h_fail api.setup "cannot bind CHAP account to target 4"; h_end; }
h_target_new 5 "$RESV"
h_lun_file 5 1 4M 512
LUN1=$(h_lun_path 1 1)
LUN2=$(h_lun_path 2 1)

# --- helpers -------------------------------------------------------------------------------

TOKEN=
R_N=0
R_CODE=
R_BODY=
R_HDR=
# every answer, a line each (method, target, status, body file, header file), for the check
# of the answers against the OpenAPI document at the end
OA_LOG=$RESP/openapi.log

# rec METHOD TARGET - log the last answer to OA_LOG.
rec() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$R_CODE" "$R_BODY" "$R_HDR" >>"$OA_LOG"
}

# req METHOD PATH [CURL ARGS...] - one authenticated request; status in R_CODE, body in
# file R_BODY, headers in file R_HDR (every body is kept for the leak scan at the end).
req() {
    local m=$1 p=$2
    shift 2
    R_N=$((R_N + 1))
    R_BODY=$RESP/$R_N.body
    R_HDR=$RESP/$R_N.hdr
    R_CODE=$(curl -s -m 40 -X "$m" -o "$R_BODY" -D "$R_HDR" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" "$@" "http://$API$p")
    rec "$m" "$p"
}

# noauth METHOD PATH [CURL ARGS...] - the same without the token.
noauth() {
    local m=$1 p=$2
    shift 2
    R_N=$((R_N + 1))
    R_BODY=$RESP/$R_N.body
    R_HDR=$RESP/$R_N.hdr
    R_CODE=$(curl -s -m 40 -X "$m" -o "$R_BODY" -D "$R_HDR" -w '%{http_code}' "$@" \
        "http://$API$p")
    rec "$m" "$p"
}

# jqf ARGS... - jq -e, quiet: true when the filter holds.
jqf() {
    jq -e "$@" >/dev/null 2>&1
}

# jb FILTER - jq -e FILTER on the last body.
jb() {
    jq -e "$1" "$R_BODY" >/dev/null 2>&1
}

# hdr NAME - a header of the last answer (value only, no CR).
hdr() {
    sed -n "s/^$1: *//Ip" "$R_HDR" | tr -d '\r' | tail -n 1
}

# id_201 FILTER - FILTER (raw) of the last body when the answer was 201, else empty.
id_201() {
    [ "$R_CODE" = 201 ] && jq -r "$1" "$R_BODY"
}

# What the last answer was, for FAIL messages.
got() {
    printf 'HTTP %s, body: %s' "$R_CODE" "$(head -c 300 "$R_BODY" 2>/dev/null)"
}

# problem_is STATUS [TITLE] - the last answer is an RFC 9457 problem with this status.
problem_is() {
    [ "$R_CODE" = "$1" ] || return 1
    case "$(hdr Content-Type)" in application/problem+json*) ;; *) return 1 ;; esac
    jq -e --argjson s "$1" --arg t "${2:-}" '
        (.type | type) == "string" and (.title | type) == "string" and
        (.detail | type) == "string" and .status == $s and ($t == "" or .title == $t)' \
        "$R_BODY" >/dev/null 2>&1
}

# expect_problem NAME STATUS [TITLE]
expect_problem() {
    h_check "$1" "expected a $2 problem${3:+ \"$3\"}, got $(got)" problem_is "$2" "${3:-}"
}

# expect_code NAME CODE [JQ FILTER]
expect_code() {
    if [ "$R_CODE" != "$2" ]; then
        h_fail "$1" "expected HTTP $2, got $(got)"
    elif [ -n "${3:-}" ] && ! jb "$3"; then
        h_fail "$1" "HTTP $2 but the body fails '$3': $(head -c 300 "$R_BODY")"
    else
        h_pass "$1"
    fi
}

SERVE_PID=
SERVE_LOG=

# The toegw serve we started is running (a dead, unreaped child still answers kill -0).
serve_alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$SERVE_PID/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# serve_start LOG [FLAGS...] - toegw serve on $SD; waits until /readyz is 200.
serve_start() {
    SERVE_LOG=$1
    shift
    "$TOEGW" serve --state-dir "$SD" --api "$API" --nbd "$NBD" "$@" 2>"$SERVE_LOG" \
        </dev/null &
    SERVE_PID=$!
    h_bg_register "$SERVE_PID"
    for _ in $(seq 300); do
        serve_alive || break
        if [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$API/readyz")" = 200 ]; then
            TOKEN=$(cat "$SD/api-token")
            return 0
        fi
        sleep 0.1
    done
    h_fail api.serve_start "toegw serve did not become ready: $(h__oneline "$(tail -c 400 "$SERVE_LOG")")"
    h_end
}

STOP_RC=
STOP_MS=

# serve_stop - SIGTERM; STOP_RC is the exit status, STOP_MS how long it took.
serve_stop() {
    local t0 t1
    t0=$(date +%s%N)
    kill -TERM "$SERVE_PID"
    for _ in $(seq 200); do
        serve_alive || break
        sleep 0.1
    done
    serve_alive && kill -KILL "$SERVE_PID"
    wait "$SERVE_PID"
    STOP_RC=$?
    t1=$(date +%s%N)
    STOP_MS=$(((t1 - t0) / 1000000))
}

# ensure_alive NAME - FAIL NAME when toegw serve has died (a crash), then start it again on
# the same state dir so that the checks after it still run.
SERVE_N=0
ensure_alive() {
    local rc
    if serve_alive; then
        h_pass "$1"
        return 0
    fi
    wait "$SERVE_PID"
    rc=$?
    h_fail "$1" "toegw serve died (exit status $rc); its last log lines: $(h__oneline "$(grep -v ' debug ' "$SERVE_LOG" | tail -n 2)")"
    SERVE_N=$((SERVE_N + 1))
    serve_start "$H_TMP/serve-restarted$SERVE_N.log" --log-level debug
}

# The I_T nexuses (logged-in sessions) tgtd has, over all targets.
nexus_count() {
    h_tgtadm --op show --mode target | grep -c 'I_T nexus: [0-9]'
}

# --- start ---------------------------------------------------------------------------------

serve_start "$H_TMP/serve1.log" --log-level debug

# --- health, page, auth ----------------------------------------------------------------------

noauth GET /livez
expect_code api.livez 200 '.status == "ok"'
noauth GET /readyz
expect_code api.readyz 200 '.status == "ready"'
noauth GET /
if [ "$R_CODE" = 200 ] && [[ "$(hdr Content-Type)" == text/html* ]] &&
    grep -qi '<html' "$R_BODY"; then
    h_pass api.dashboard_page
else
    h_fail api.dashboard_page "GET / : HTTP $R_CODE, type '$(hdr Content-Type)'"
fi

noauth GET /api/v1/stacks
expect_problem api.no_token_401 401
h_check api.no_token_www_authenticate "no WWW-Authenticate: Bearer on a 401" \
    grep -qi '^WWW-Authenticate: Bearer' "$R_HDR"
noauth GET /api/v1/sessions -H "Authorization: Bearer x$TOKEN"
expect_problem api.wrong_token_401 401
noauth POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\"}"
expect_problem api.no_token_post_401 401
noauth GET /api/v1/nosuchthing
expect_problem api.unknown_path_no_token_401 401
req GET /api/v1/nosuchthing
expect_problem api.unknown_path_404 404
req DELETE /api/v1/stacks
expect_problem api.wrong_method_405 405
h_check api.wrong_method_allow "405 without an Allow header" test -n "$(hdr Allow)"

# the OpenAPI document: behind the token, served as api/openapi.json has it
noauth GET /api/v1/openapi.json
expect_problem api.openapi_no_token_401 401
req GET /api/v1/openapi.json
expect_code api.openapi_served 200 '.openapi == "3.1.0"'
h_check api.openapi_json_type "Content-Type $(hdr Content-Type)" test "$(hdr Content-Type)" = application/json
h_check api.openapi_as_compiled "the served document differs from api/openapi.json" \
    cmp -s "$R_BODY" "$REPO/api/openapi.json"
OA_DOC=$R_BODY
# HEAD: curl -I reads no body (the headers would be its output): the body file stays empty
R_N=$((R_N + 1))
R_BODY=$RESP/$R_N.body
R_HDR=$RESP/$R_N.hdr
R_CODE=$(curl -s -m 40 -I -o /dev/null -D "$R_HDR" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" "http://$API/api/v1/openapi.json")
: >"$R_BODY"
rec HEAD /api/v1/openapi.json
h_check api.openapi_head "HEAD: HTTP $R_CODE, Content-Length '$(hdr Content-Length)'" \
    test "$R_CODE" = 200 -a "$(hdr Content-Length)" = "$(wc -c <"$REPO/api/openapi.json")"

# --- stacks ------------------------------------------------------------------------------------

req GET /api/v1/info
expect_code api.info 200 '.toe.mode == "tap" and .tls.api == false and .tls.fingerprint_sha256 == null
    and (.initiator_name | startswith("iqn."))'
req GET /api/v1/stacks/host
expect_code api.stack_host 200 '.name == "host" and .state == "up" and (.counters | has("in_segs"))'

req GET /api/v1/stacks
expect_code api.stacks 200 'length == 2 and .[0].name == "host" and .[1].name == "toe"
    and .[1].state == "up" and .[1].addr == "192.0.2.2" and .[1].mtu == 9000
    and .[1].max_conns == 1024 and (.[1].mac | test("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"))
    and (.[0].counters | type) == "object" and (.[1].counters | type) == "object"'
req GET /api/v1/stacks/toe
expect_code api.stack_toe 200 '.name == "toe" and .state == "up"'
req PATCH /api/v1/stacks/toe -d '{"link":"down"}'
expect_code api.toe_link_down 200 '.state == "down"'
req GET /api/v1/stacks
expect_code api.toe_link_down_listed 200 '.[1].state == "down"'
# With the TOE's link down, a session that insists on the TOE cannot reach its portal.
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\",\"stack\":\"toe\"}"
expect_problem api.session_toe_link_down_504 504
req PATCH /api/v1/stacks/toe -d '{"link":"up"}'
expect_code api.toe_link_up 200 '.state == "up"'
req PATCH /api/v1/stacks/toe -d '{"faults":{"drop":0.01,"dup":0.02,"reorder":0.03,"corrupt":0.04,"seed":42}}'
expect_code api.toe_faults_set 200 '.faults.drop == 0.01 and .faults.dup == 0.02 and
    .faults.reorder == 0.03 and .faults.corrupt == 0.04 and .faults.seed == 42'
req PATCH /api/v1/stacks/toe -d '{"faults":{"drop":0.5}}'
expect_code api.toe_faults_patch_keeps_others 200 '.faults.drop == 0.5 and .faults.dup == 0.02'
req PATCH /api/v1/stacks/toe -d '{"faults":{"drop":0,"dup":0,"reorder":0,"corrupt":0}}'
expect_code api.toe_faults_cleared 200 '.faults.drop == 0 and .faults.dup == 0 and
    .faults.reorder == 0 and .faults.corrupt == 0'
req PATCH /api/v1/stacks/toe -d '{"faults":{"drop":1.5}}'
expect_problem api.toe_faults_out_of_range_422 422
req PATCH /api/v1/stacks/toe -d '{"link":"sideways"}'
expect_problem api.toe_link_bad_422 422
req PATCH /api/v1/stacks/host -d '{"link":"down"}'
expect_problem api.patch_host_405 405

ensure_alive api.alive_after_stacks

# --- reservations --------------------------------------------------------------------------------

req GET /api/v1/reservations
expect_code api.reservations_empty 200 '. == []'
req POST /api/v1/reservations -d '{"holder":"backup","port":20500,"stack":"toe"}'
expect_code api.reservation_create 201 '.id == "1" and .port == 20500 and .stack == "toe" and
    .holder == "backup" and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T.*Z$"))'
RID1=$(jq -r .id "$R_BODY")
h_check api.reservation_location "Location '$(hdr Location)'" \
    test "$(hdr Location)" = "/api/v1/reservations/$RID1"
req POST /api/v1/reservations -d '{"holder":"any"}'
expect_code api.reservation_any_port 201 '.port >= 20000 and .port <= 20999 and .stack == "auto"'
RID2=$(jq -r .id "$R_BODY")
RPORT2=$(jq -r .port "$R_BODY")
req POST /api/v1/reservations -d '{"holder":"thief","port":20500}'
expect_problem api.reservation_taken_409 409
# A port a host process holds (bound, listening, on all addresses) is taken on both stacks.
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => 20600, Listen => 1,
                                  Proto => "tcp") or die "bind: $!";
    print "ready\n"; $| = 1; sleep 120' >"$H_TMP/holder.out" 2>&1 &
HOLDER=$!
h_bg_register "$HOLDER"
for _ in $(seq 50); do grep -q ready "$H_TMP/holder.out" && break; sleep 0.1; done
req POST /api/v1/reservations -d '{"holder":"thief","port":20600}'
expect_problem api.reservation_host_port_taken_409 409
req POST /api/v1/reservations -d '{"holder":"thief","port":20600,"stack":"toe"}'
expect_problem api.reservation_host_port_taken_toe_409 409
h__kill_pid "$HOLDER"
req POST /api/v1/reservations -d '{"holder":"x","port":30000}'
expect_problem api.reservation_out_of_range_422 422
req POST /api/v1/reservations -d '{"port":20501}'
expect_problem api.reservation_no_holder_422 422
req GET /api/v1/reservations
expect_code api.reservations_list 200 "length == 2 and (map(.id) | sort) == ([\"$RID1\",\"$RID2\"] | sort)"
req GET "/api/v1/reservations/$RID1"
expect_code api.reservation_get 200 ".id == \"$RID1\" and .port == 20500"
req POST /api/v1/reservations -d '{"holder":"temp","port":20510}'
RID3=$(jq -r .id "$R_BODY")
req DELETE "/api/v1/reservations/$RID3"
expect_code api.reservation_delete 204
req DELETE "/api/v1/reservations/$RID3"
expect_problem api.reservation_delete_again_404 404
req GET /api/v1/reservations/999
expect_problem api.reservation_unknown_404 404
req POST /api/v1/reservations -d '{"holder":"again","port":20510}'
expect_code api.reservation_port_back_in_pool 201 '.port == 20510'
req DELETE "/api/v1/reservations/$(jq -r .id "$R_BODY")"

ensure_alive api.alive_after_reservations

# --- discovery ------------------------------------------------------------------------------------

# An unreachable portal that does not answer at all (no ARP reply on the TOE's wire): the
# login times out (~10 s), so it runs in the background meanwhile and is checked later.
curl -s -m 60 -o "$RESP/slow.body" -D "$RESP/slow.hdr" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" -X POST "http://$API/api/v1/discovery" \
    -d '{"portal":"192.0.2.77"}' >"$RESP/slow.code" 2>/dev/null &
SLOW=$!
h_bg_register "$SLOW"

req POST /api/v1/discovery -d '{"portal":"192.0.2.1"}'
expect_code api.discovery_toe 200 "(.targets | map(.iqn) | index(\"$OPEN\") != null) and
    (.targets | map(.iqn) | index(\"$MUTUAL\") != null) and
    (.targets[0].portals | length) >= 1"
req POST /api/v1/discovery -d '{"portal":"127.0.0.1:3260","stack":"host"}'
expect_code api.discovery_host 200 "(.targets | map(.iqn) | index(\"$OPEN\") != null)"
req POST /api/v1/discovery -d "{\"portal\":\"192.0.2.1\",\"chap\":{\"user\":\"disc\",\"secret\":\"$DS\"}}"
if [ "$R_CODE" = 200 ] || problem_is 502 "login failed"; then
    h_pass api.discovery_chap_answered
else
    h_fail api.discovery_chap_answered "expected 200 or 502 login failed, got $(got)"
fi
req POST /api/v1/discovery -d '{"portal":"127.0.0.1:3299","stack":"host"}'
expect_problem api.discovery_refused_504 504
req POST /api/v1/discovery -d '{"stack":"host"}'
expect_problem api.discovery_no_portal_422 422

ensure_alive api.alive_after_discovery

# --- sessions -------------------------------------------------------------------------------------

req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\"}"
expect_code api.session_create_toe 201 ".target == \"$OPEN\" and .state == \"logged_in\" and
    .stack == \"toe\" and .connection.offload_state == \"offloaded\" and
    (.luns | length) == 1 and .luns[0].lun == 1 and .luns[0].size_bytes == 16777216 and
    (.negotiated | type) == \"object\" and (.counters | type) == \"object\""
# the LUN probe's expected CHECK CONDITIONs (UNIT ATTENTION at login) are not errors
expect_code api.session_fresh_no_errors 201 ".counters.errors == 0 and .counters.commands > 0"
S1=$(id_201 .id)
V1=$(id_201 '.luns[0].volume')
h_check api.session_location "Location '$(hdr Location)'" \
    test "$(hdr Location)" = "/api/v1/sessions/$S1"
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\"}"
expect_problem api.session_same_target_409 409

# Login failures over the host stack (those over the TOE come later, in their own section).
HOSTP='"portal":"127.0.0.1","stack":"host"'
req POST /api/v1/sessions -d "{$HOSTP,\"target\":\"$MUTUAL\",
    \"chap\":{\"user\":\"$CU\",\"secret\":\"$WRONG\",\"target_user\":\"$TU\",\"target_secret\":\"$TS\"}}"
expect_problem api.session_wrong_chap_502 502 "login failed"
req POST /api/v1/sessions -d "{$HOSTP,\"target\":\"$MUTUAL\"}"
expect_problem api.session_no_chap_502 502 "login failed"
req POST /api/v1/sessions -d "{$HOSTP,\"target\":\"$MUTUAL\",
    \"chap\":{\"user\":\"$CU\",\"secret\":\"$CS\",\"target_user\":\"$TU\",\"target_secret\":\"$WRONG\"}}"
expect_problem api.session_wrong_target_secret_502 502 "login failed"
req POST /api/v1/sessions -d "{$HOSTP,\"target\":\"$MISSING\"}"
expect_problem api.session_unknown_target_502 502 "login failed"
req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1:3299\",\"target\":\"$MISSING\",\"stack\":\"host\"}"
expect_problem api.session_portal_refused_504 504
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\"}"
expect_problem api.session_no_target_422 422
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\",\"bogus\":1}"
expect_problem api.session_unknown_field_422 422
req POST /api/v1/sessions -d '{"portal":'
if problem_is 400 || problem_is 422; then h_pass api.session_bad_json_4xx
else h_fail api.session_bad_json_4xx "expected 400/422, got $(got)"; fi
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\",\"reservation\":\"777\"}"
expect_problem api.session_unknown_reservation_409 409

# Mutual CHAP and digests over the host stack.
req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1\",\"target\":\"$MUTUAL\",\"stack\":\"host\",
    \"header_digest\":\"crc32c\",\"data_digest\":true,
    \"chap\":{\"user\":\"$CU\",\"secret\":\"$CS\",\"target_user\":\"$TU\",\"target_secret\":\"$TS\"}}"
expect_code api.session_create_host_chap 201 ".state == \"logged_in\" and .stack == \"host\" and
    .negotiated.header_digest == \"crc32c\" and .negotiated.data_digest == \"crc32c\" and
    (.luns[0].block_size == 4096)"
S2=$(id_201 .id)
V2=$(id_201 '.luns[0].volume')

# A session on a reservation (the one made above, holder "any"): its connection uses the
# reserved port, and the reservation cannot be deleted while the session holds it.
req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1\",\"target\":\"$RESV\",\"stack\":\"host\",
    \"reservation\":\"$RID2\"}"
expect_code api.session_on_reservation 201 ".reservation == \"$RID2\" or .reservation == $RID2"
S3=
if [ "$R_CODE" = 201 ]; then
    S3=$(jq -r .id "$R_BODY")
    h_check api.session_uses_reserved_port "local port is not $RPORT2: $(jq -c .connection "$R_BODY")" \
        jqf ".connection.local | endswith(\":$RPORT2\")" "$R_BODY"
    req DELETE "/api/v1/reservations/$RID2"
    expect_problem api.reservation_in_use_409 409
fi

req GET /api/v1/sessions
want=$(printf '%s\n' "$S1" "$S2" "$S3" | grep . | jq -R . | jq -sc sort)
expect_code api.sessions_list 200 "(map(.id) | sort) == $want"
req GET "/api/v1/sessions/$S1"
expect_code api.session_get 200 ".id == \"$S1\" and .portal == \"192.0.2.1\" and
    .state == \"logged_in\" and .luns[0].volume == \"$V1\""
req GET /api/v1/sessions/s-000000000000
expect_problem api.session_unknown_404 404
req DELETE /api/v1/sessions/s-000000000000
expect_problem api.session_delete_unknown_404 404
ensure_alive api.alive_after_session_errors

# --- volumes --------------------------------------------------------------------------------------

req GET /api/v1/volumes
expect_code api.volumes_list 200 "(map(.id) | index(\"$V1\") != null) and (map(.id) | index(\"$V2\") != null)"
req GET "/api/v1/volumes/$V1"
expect_code api.volume_get 200 ".id == \"$V1\" and .session == \"$S1\" and .lun == 1 and
    .size_bytes == 16777216 and .block_size == 512 and .vendor == \"IET\" and
    (.product | type) == \"string\" and has(\"wwn\") and
    .export == \"nbd://$NBD/$V1\""
req GET /api/v1/volumes/v-0000000000000000
expect_problem api.volume_unknown_404 404
# list filters: the rows whose member equals the value; an unknown parameter is a 400
req GET "/api/v1/volumes?session=$S1"
expect_code api.volumes_filter_session 200 "length >= 1 and all(.[]; .session == \"$S1\")"
req GET "/api/v1/volumes?session=s-000000000000"
expect_code api.volumes_filter_none 200 "length == 0"
req GET "/api/v1/sessions?stack=toe"
expect_code api.sessions_filter_stack 200 "length >= 1 and all(.[]; .stack == \"toe\")"
req GET "/api/v1/sessions?state=logged_in&stack=host"
expect_code api.sessions_filter_two 200 "all(.[]; .stack == \"host\" and .state == \"logged_in\")"
req GET "/api/v1/sessions?stack=tape"
expect_problem api.sessions_filter_bad_stack_400 400
req GET "/api/v1/volumes?sesion=$S1"
expect_problem api.volumes_unknown_query_400 400
req GET "/api/v1/volumes?session=$S1&session=$S1"
expect_problem api.volumes_query_twice_400 400
req GET "/api/v1/stacks?x=1"
expect_problem api.stacks_no_query_400 400
req GET "/api/v1/sessions?state=%3Cx%3E"
expect_problem api.query_percent_400 400

# --- volume data, checked against tgtd's backing files ------------------------------------------------

# data_roundtrip NAME VOL BACKING OFF LEN - PUT random bytes, compare the backing file, GET
# them back; then bytes written into the backing file directly are what GET returns.
data_roundtrip() {
    local name=$1 vol=$2 backing=$3 off=$4 len=$5 data=$H_TMP/$1.data
    h_random "$data" "$len"
    req PUT "/api/v1/volumes/$vol/data?offset=$off" --data-binary "@$data" \
        -H 'Content-Type: application/octet-stream'
    if [ "$R_CODE" != 204 ]; then
        h_fail "$name" "PUT: $(got)"
        return
    fi
    if ! h_cmp_region "$data" 0 "$backing" "$off" "$len"; then
        h_fail "$name" "the backing file differs from the $len bytes PUT at $off"
        return
    fi
    req GET "/api/v1/volumes/$vol/data?offset=$off&length=$len"
    if [ "$R_CODE" != 200 ] || ! cmp -s "$data" "$R_BODY"; then
        h_fail "$name" "GET after PUT: HTTP $R_CODE, $(h_size "$R_BODY") bytes, differ"
        return
    fi
    h_random "$data.direct" "$len"
    dd if="$data.direct" of="$backing" bs=4096 seek=$((off / 4096)) conv=notrunc \
        status=none
    req GET "/api/v1/volumes/$vol/data?offset=$off&length=$len"
    if [ "$R_CODE" != 200 ] || ! cmp -s "$data.direct" "$R_BODY"; then
        h_fail "$name" "GET of bytes written into the backing file: HTTP $R_CODE, differ"
        return
    fi
    h_pass "$name"
}

data_roundtrip api.data_toe_256k "$V1" "$LUN1" 1048576 262144
data_roundtrip api.data_toe_1m "$V1" "$LUN1" 4194304 1048576
data_roundtrip api.data_toe_4k_at_end "$V1" "$LUN1" $((16777216 - 4096)) 4096
data_roundtrip api.data_host_chap_256k "$V2" "$LUN2" 2097152 262144
# Wire faults on the TOE: the data still arrives intact (TCP repairs it), and the faults are
# counted.
req PATCH /api/v1/stacks/toe -d '{"faults":{"drop":0.02,"dup":0.05,"reorder":0.05,"seed":7}}'
expect_code api.toe_faults_on 200 '.faults.drop == 0.02'
data_roundtrip api.data_toe_with_faults "$V1" "$LUN1" 6291456 524288
req GET /api/v1/stacks/toe
expect_code api.toe_faults_counted 200 '(.wire.tx.fault_dup + .wire.rx.fault_dup) > 0 and
    (.wire.tx.fault_reorder + .wire.rx.fault_reorder) > 0'
req PATCH /api/v1/stacks/toe -d '{"faults":null}'
expect_code api.toe_faults_null_clears 200 '.faults.drop == 0 and .faults.dup == 0 and
    .faults.reorder == 0 and .faults.corrupt == 0'
req GET "/api/v1/volumes/$V1/data?offset=0&length=4096"
h_check api.data_octet_stream "type '$(hdr Content-Type)'" \
    test "$(hdr Content-Type)" = application/octet-stream
req GET "/api/v1/volumes/$V1/data?offset=16777216&length=512"
expect_problem api.data_past_end_416 416
h_check api.data_past_end_content_range "Content-Range '$(hdr Content-Range)'" \
    test "$(hdr Content-Range)" = "bytes */16777216"
req GET "/api/v1/volumes/$V1/data?offset=0&length=2097152"
expect_problem api.data_length_over_1m_422 422
req GET "/api/v1/volumes/$V2/data?offset=512&length=4096"
expect_problem api.data_misaligned_422 422
req GET "/api/v1/volumes/v-0000000000000000/data?offset=0&length=512"
expect_problem api.data_unknown_volume_404 404
head -c $((1048576 + 4096)) /dev/zero >"$H_TMP/big.data"
req PUT "/api/v1/volumes/$V1/data?offset=0" --data-binary "@$H_TMP/big.data"
expect_problem api.data_body_over_1m_413 413

ensure_alive api.alive_after_data

# --- connections, netstat, metrics ------------------------------------------------------------------

req GET /api/v1/connections
expect_code api.connections 200 "(map(select(.stack == \"toe\" and .offload_state == \"offloaded\"
    and .owner == \"$S1\" and .remote == \"192.0.2.1:3260\" and .state == \"ESTABLISHED\"
    and .bytes_in > 0 and .bytes_out > 0)) | length) == 1 and
    (map(select(.stack == \"host\" and .offload_state == \"host\" and .owner == \"$S2\" and
    .remote == \"127.0.0.1:3260\" and .state == \"ESTABLISHED\")) | length) == 1 and
    all(.[]; has(\"id\") and has(\"local\") and has(\"remote\") and has(\"state\"))"
req GET "/api/v1/connections?stack=toe"
expect_code api.connections_filter_stack 200 "length >= 1 and all(.[]; .stack == \"toe\")"
req GET "/api/v1/connections?stack=host&state=ESTABLISHED&owner=$S2"
expect_code api.connections_filter_three 200 "length == 1 and .[0].owner == \"$S2\""

h_run "$TOEGW" netstat --api "$API" --state-dir "$SD"
if [ "$H_RC" -eq 0 ] && head -n 1 "$H_OUT" | grep -q 'Stack' &&
    grep -Eq '^ESTABLISHED +toe +offloaded +192\.0\.2\.2:[0-9]+ +192\.0\.2\.1:3260' "$H_OUT" &&
    grep -Eq "^ESTABLISHED +host +host +127\.0\.0\.1:[0-9]+ +127\.0\.0\.1:3260 .* $S2\$" "$H_OUT"; then
    h_pass api.netstat_table
else
    h_fail api.netstat_table "$(h_last); stdout: $(h__oneline "$(head -c 300 "$H_OUT")")"
fi
h_run "$TOEGW" netstat --api "$API" --api-token-file "$SD/api-token" --json
h_check api.netstat_json "$(h_last)" jqf 'map(.stack) | index("toe") != null' "$H_OUT"

noauth GET /metrics
MET=$R_BODY
metric() { # metric NAME LABELS -> value
    awk -v k="$1{$2}" '$1 == k { print $2 }' "$MET"
}
if [ "$R_CODE" = 200 ] && [ -n "$(metric toegw_tcp_active_opens_total 'stack="host"')" ] &&
    [ -n "$(metric toegw_tcp_active_opens_total 'stack="toe"')" ] &&
    [ -n "$(metric toegw_tcp_curr_estab 'stack="toe"')" ] &&
    [ -n "$(metric toegw_tcp_curr_estab 'stack="host"')" ]; then
    h_pass api.metrics_both_stacks
else
    h_fail api.metrics_both_stacks "HTTP $R_CODE; toegw_tcp_*{stack=host|toe} missing"
fi
h_check api.metrics_prefix "a metric line without the toegw_ or process_ prefix" \
    test -z "$(grep -v '^#' "$MET" | grep -v '^toegw_' | grep -v '^process_' | grep -v '^$')"
h_check api.metrics_promtool "$(promtool check metrics <"$MET" 2>&1 | head -c 300)" \
    sh -c "promtool check metrics <'$MET'"
h_check api.metrics_build_info "$(grep '^toegw_build_info' "$MET")" \
    grep -qE '^toegw_build_info\{version="[^"]+",openssl="[^"]+".*\} 1$' "$MET"
h_check api.metrics_process "$(grep -c '^process_' "$MET") process_ samples" sh -c "
    grep -qE '^process_cpu_seconds_total [0-9.]+$' '$MET' &&
    grep -qE '^process_resident_memory_bytes [1-9][0-9]*$' '$MET' &&
    grep -qE '^process_open_fds [1-9][0-9]*$' '$MET' &&
    grep -qE '^process_start_time_seconds [1-9][0-9.]*$' '$MET'"
h_check api.metrics_session_state_set "$(grep "^toegw_session_state{session=\"$S1\"" "$MET" | tr '\n' ' ')" \
    test "$(metric toegw_session_state "session=\"$S1\",state=\"logged_in\"")" = 1 -a \
    "$(metric toegw_session_state "session=\"$S1\",state=\"recovering\"")" = 0
h_check api.metrics_session_info_stable_labels "$(grep '^toegw_session_info' "$MET" | head -2)" \
    sh -c "! grep '^toegw_session_info' '$MET' | grep -q 'state='"
cnt=$(metric toegw_session_command_duration_seconds_count "session=\"$S1\"")
inf=$(metric toegw_session_command_duration_seconds_bucket "session=\"$S1\",le=\"+Inf\"")
h_check api.metrics_command_histogram "count '$cnt', +Inf bucket '$inf'" \
    sh -c "test '${cnt:-0}' -gt 0 && test '$cnt' = '$inf'"
vc=$(metric toegw_volume_request_duration_seconds_count "volume=\"$V1\"")
vinf=$(metric toegw_volume_request_duration_seconds_bucket "volume=\"$V1\",le=\"+Inf\"")
h_check api.metrics_volume_histogram "count '$vc', +Inf bucket '$vinf'" \
    sh -c "test '${vc:-0}' -gt 0 && test '$vc' = '$vinf'"
rb=$(metric toegw_volume_read_bytes_total "volume=\"$V1\"")
wb=$(metric toegw_volume_write_bytes_total "volume=\"$V1\"")
h_check api.metrics_volume_counters "toegw_volume_{read,write}_bytes_total{volume=\"$V1\"} = '$rb' '$wb'" \
    test "${rb:-0}" -gt 0 -a "${wb:-0}" -ge $((262144 + 1048576 + 4096))
h_check api.metrics_ready "toegw_ready is not 1" \
    test "$(awk '$1 == "toegw_ready" { print $2 }' "$MET")" = 1

# --- capture of the TOE wire ------------------------------------------------------------------------

req GET /api/v1/capture.pcap
expect_problem api.capture_none_404 404
req POST /api/v1/capture
expect_code api.capture_start 201 '.running == true'
req GET "/api/v1/volumes/$V1/data?offset=0&length=65536"
req GET /api/v1/capture.pcap
PCAP=$H_TMP/toe.pcap
cp "$R_BODY" "$PCAP"
if [ "$R_CODE" = 200 ] && command -v tshark >/dev/null 2>&1; then
    n=$(tshark -r "$PCAP" -Y 'tcp.port == 3260' 2>/dev/null | wc -l)
    h_check api.capture_download "HTTP 200 but tshark reads $n frames to/from port 3260" \
        test "$n" -gt 0
elif [ "$R_CODE" = 200 ]; then
    h_skip api.capture_download "tshark not installed"
else
    h_fail api.capture_download "$(got)"
fi
req GET /api/v1/capture
expect_code api.capture_status 200 '.running == true and .frames > 0'
req DELETE /api/v1/capture
expect_code api.capture_stop 204
req DELETE /api/v1/capture
expect_problem api.capture_stop_again_404 404

ensure_alive api.alive_after_capture

# --- login failures over the TOE ---------------------------------------------------------------------

# bg_session NAME BODY - POST /api/v1/sessions in the background (logins that time out take
# 10 s; these run side by side); bg_collect NAME makes it the last answer.
declare -A BG=()
declare -a CC=()
bg_session() {
    curl -s -m 60 -o "$RESP/$1.body" -D "$RESP/$1.hdr" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" -X POST "http://$API/api/v1/sessions" -d "$2" \
        >"$RESP/$1.code" 2>/dev/null &
    BG[$1]=$!
    h_bg_register "${BG[$1]}"
}
bg_collect() {
    wait "${BG[$1]}"
    R_BODY=$RESP/$1.body
    R_HDR=$RESP/$1.hdr
    R_CODE=$(cat "$RESP/$1.code")
    rec POST /api/v1/sessions
}

bg_session toe_chap_ok "{\"portal\":\"192.0.2.1\",\"target\":\"$ONEWAY\",\"stack\":\"toe\",
    \"chap\":{\"user\":\"$CU\",\"secret\":\"$CS\"}}"
bg_session toe_wrong_chap "{\"portal\":\"192.0.2.1\",\"target\":\"$ONEWAY2\",\"stack\":\"toe\",
    \"chap\":{\"user\":\"$CU\",\"secret\":\"$WRONG\"}}"
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$MISSING\"}"
expect_problem api.session_unknown_target_toe_502 502 "login failed"
bg_collect toe_chap_ok
expect_code api.session_chap_toe 201 '.state == "logged_in" and .stack == "toe"'
[ "$R_CODE" = 201 ] && req DELETE "/api/v1/sessions/$(jq -r .id "$R_BODY")"
bg_collect toe_wrong_chap
expect_problem api.session_wrong_chap_toe_502 502 "login failed"
ensure_alive api.alive_after_toe_login_failures

# --- the slow unreachable portal ---------------------------------------------------------------------

wait "$SLOW"
R_BODY=$RESP/slow.body
R_HDR=$RESP/slow.hdr
R_CODE=$(cat "$RESP/slow.code")
rec POST /api/v1/discovery
expect_problem api.discovery_unreachable_504 504
noauth GET /livez
expect_code api.livez_still 200

# --- session delete, then stop and restart ---------------------------------------------------------------

req POST /api/v1/sessions -d "{\"portal\":\"127.0.0.1\",\"target\":\"$OPEN\",\"stack\":\"host\"}"
expect_problem api.session_target_taken_409 409
req DELETE "/api/v1/sessions/$S1"
expect_code api.session_delete 204
req GET /api/v1/volumes
expect_code api.session_delete_drops_volume 200 "map(.id) | index(\"$V1\") == null"
req GET /api/v1/sessions
n=$(jq length "$R_BODY" 2>/dev/null)
h_check api.session_delete_logs_out "tgtd has $(nexus_count) nexus(es), toegw $n session(s)" \
    test "$(nexus_count)" -eq "${n:--1}"
req POST /api/v1/sessions -d "{\"portal\":\"192.0.2.1\",\"target\":\"$OPEN\"}"
expect_code api.session_recreate 201 ".luns[0].volume == \"$V1\""
S1=$(jq -r .id "$R_BODY")

h_check api.token_file_0600 "mode $(stat -c %a "$SD/api-token")" \
    test "$(stat -c %a "$SD/api-token")" = 600
sleep 1 # the state file is written by the main thread within 0.5 s of a change
STATE=$(find "$SD" -maxdepth 1 -type f ! -name api-token | head -n 1)
h_check api.state_file_0600 "state file '$STATE' mode $(stat -c %a "$STATE" 2>/dev/null)" \
    test -n "$STATE" -a "$(stat -c %a "$STATE" 2>/dev/null)" = 600

req GET /api/v1/reservations
RES_BEFORE=$(jq -c 'map({id, port, stack, holder}) | sort_by(.id)' "$R_BODY")
req GET /api/v1/sessions
SES_BEFORE=$(jq -c 'map({id, target, portal, vols: [.luns[].volume]}) | sort_by(.id)' "$R_BODY")
NSES=$(jq length "$R_BODY" 2>/dev/null)
NSES=${NSES:-0}
VOLS_BEFORE=$(jq -c '[.[].luns[].volume] | sort' "$R_BODY" 2>/dev/null)
VOLS_BEFORE=${VOLS_BEFORE:-[]}
h_check api.sessions_before_stop "sessions: $SES_BEFORE" \
    jqf "all(.[]; .state == \"logged_in\") and (map(.id) | index(\"$S1\") != null)
        and (map(.id) | index(\"$S2\") != null)" "$R_BODY"

serve_stop
h_check api.sigterm_exit_0 "exit status $STOP_RC" test "$STOP_RC" -eq 0
h_check api.sigterm_within_10s "took ${STOP_MS} ms" test "$STOP_MS" -lt 10000
h_check api.sigterm_logs_out "tgtd still shows $(nexus_count) I_T nexus(es) after SIGTERM" \
    test "$(nexus_count)" -eq 0
h_check api.sigterm_no_connections "tgtd still has connections on 3260" \
    test -z "$(ss -Htn state established '( sport = :3260 )')"

# Restart with the JSON log format: sessions and reservations come back with their ids.
serve_start "$H_TMP/serve2.log" --log-format json --log-level debug
for _ in $(seq 100); do
    req GET /api/v1/sessions
    [ "$(jq '[.[] | select(.state == "logged_in")] | length' "$R_BODY" 2>/dev/null)" = "$NSES" ] &&
        break
    sleep 0.1
done
SES_AFTER=$(jq -c 'map({id, target, portal, vols: [.luns[].volume]}) | sort_by(.id)' "$R_BODY")
h_check api.restart_restores_sessions "before $SES_BEFORE, after $SES_AFTER" \
    test "$SES_AFTER" = "$SES_BEFORE"
h_check api.restart_sessions_logged_in "states: $(jq -c 'map(.state)' "$R_BODY")" \
    jqf "length == $NSES and all(.[]; .state == \"logged_in\")" "$R_BODY"
req GET /api/v1/reservations
RES_AFTER=$(jq -c 'map({id, port, stack, holder}) | sort_by(.id)' "$R_BODY")
h_check api.restart_restores_reservations "before $RES_BEFORE, after $RES_AFTER" \
    test "$RES_AFTER" = "$RES_BEFORE"
req GET /api/v1/volumes
h_check api.restart_same_volume_ids "volumes: $(jq -c 'map(.id)' "$R_BODY")" \
    jqf "(map(.id) | sort) == $VOLS_BEFORE" "$R_BODY"
h_check api.restart_nexus "tgtd shows $(nexus_count) nexus(es) after the restart, expected $NSES" \
    test "$(nexus_count)" -eq "$NSES"
data_roundtrip api.restart_data_toe "$V1" "$LUN1" 8388608 131072
data_roundtrip api.restart_data_host_chap "$V2" "$LUN2" 4194304 131072
req POST /api/v1/reservations -d '{"holder":"thief","port":20500}'
expect_problem api.restart_reservation_still_held_409 409
req POST /api/v1/reservations -d '{"holder":"after"}'
expect_code api.restart_new_reservation_id 201 ".id != \"$RID1\" and .id != \"$RID2\""

serve_stop
h_check api.sigterm2_exit_0 "exit status $STOP_RC" test "$STOP_RC" -eq 0
h_check api.sigterm2_within_10s "took ${STOP_MS} ms" test "$STOP_MS" -lt 10000
h_check api.sigterm2_logs_out "tgtd still shows $(nexus_count) I_T nexus(es)" \
    test "$(nexus_count)" -eq 0

# --- concurrent GET /api/v1/connections ----------------------------------------------------------------

# Six clients read the table at once, 25 times each: every answer is the whole table (the
# API's own listening socket and the TOE session's connection are in it), the daemon
# survives it and still stops within 10 s.
serve_start "$H_TMP/serve3.log"
for _ in $(seq 100); do
    req GET /api/v1/sessions
    jqf 'any(.[]; .state == "logged_in" and .stack == "toe")' "$R_BODY" && break
    sleep 0.1
done
for k in 1 2 3 4 5 6; do
    args=()
    for i in $(seq 25); do
        args+=(-o "$RESP/cc.$k.$i" "http://$API/api/v1/connections")
    done
    curl -s -m 10 -H "Authorization: Bearer $TOKEN" -w '%{http_code}\n' "${args[@]}" \
        >"$RESP/cc.$k.codes" 2>/dev/null &
    h_bg_register "$!"
    CC[k]=$!
done
for k in 1 2 3 4 5 6; do wait "${CC[k]}"; done
ncodes=$(cat "$RESP"/cc.*.codes | grep -c '^200$')
partial=0
for f in "$RESP"/cc.*.[0-9]*; do
    jqf "any(.[]; .local == \"$API\" and .state == \"LISTEN\") and
         any(.[]; .stack == \"toe\" and .state == \"ESTABLISHED\")" "$f" ||
        partial=$((partial + 1))
done
h_check api.connections_concurrent_200 "$ncodes of 150 concurrent requests answered 200" \
    test "$ncodes" -eq 150
h_check api.connections_concurrent_complete "$partial of 150 concurrent answers lack the API's LISTEN row or the TOE connection" \
    test "$partial" -eq 0
h_check api.alive_after_concurrent_connections "toegw serve died: $(h__oneline "$(tail -n 1 "$SERVE_LOG")")" \
    serve_alive
if serve_alive; then
    serve_stop
    h_check api.sigterm3_exit_0_within_10s "exit status $STOP_RC after ${STOP_MS} ms" \
        test "$STOP_RC" -eq 0 -a "$STOP_MS" -lt 10000
fi

# --- every answer against the OpenAPI document ----------------------------------------------------

# The served document is a valid OpenAPI 3.1 document whose schemas compile, and every
# answer logged above (status, Content-Type, headers, JSON body) is one it describes.
h_openapi_check api "$OA_DOC" "$OA_LOG"

# --- logs and secrets ---------------------------------------------------------------------------------

h_check api.log_json_lines "a line of the json log is not a JSON object: $(h__oneline "$(grep -v '^{' "$H_TMP/serve2.log" | head -n 2)")" \
    jqf -s 'length > 0 and all(.[]; type == "object")' "$H_TMP/serve2.log"
h_check api.log_json_fields "no session line with session, target and portal members: $(grep -m1 'session is up' "$H_TMP/serve2.log")" \
    jqf -s "any(.[]; .msg == \"session is up with 1 volume(s)\" and .session == \"$S1\" and
        (.target | startswith(\"iqn.\")) and (.portal | type) == \"string\")" "$H_TMP/serve2.log"
h_check api.log_text_has_requests "the text log has no 'api: POST /api/v1/sessions 201' line" \
    grep -q 'api: POST /api/v1/sessions 201' "$H_TMP/serve1.log"
h_check api.log_reads_not_at_info "GET lines at info: $(grep -c 'info  api: GET' "$H_TMP/serve1.log")" \
    sh -c "! grep -q 'info  api: GET' '$H_TMP/serve1.log'"
leaks=
for s in "${SECRETS[@]}"; do
    f=$(grep -rlF -- "$s" "$RESP" "$H_TMP"/serve*.log 2>/dev/null |
        head -n 3 | tr '\n' ' ')
    [ -n "$f" ] && leaks="$leaks ${#s}-char secret in: $f;"
done
h_check api.no_secret_in_responses_or_logs "$leaks" test -z "$leaks"
h_check api.no_token_in_logs "the api token appears in a log" \
    sh -c "! grep -qF -- '$TOKEN' '$H_TMP'/serve*.log"

h_end
