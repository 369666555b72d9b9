#!/usr/bin/env bash
#
# test_api_tls.sh - the REST API over HTTPS (docs/security.md), /metrics access and token
# rotation, with real clients (curl, openssl s_client, gnutls-cli, toegw netstat) in a
# private network namespace, `toegw serve --no-toe` with one session to tgtd on the host
# stack:
#  - --api-tls on makes STATE_DIR/tls/server-cert.pem + server-key.pem (0600 in a 0700 dir,
#    self-signed, not a CA, for 127.0.0.1 and localhost, ~10 years) that curl --cacert
#    accepts; without --cacert curl refuses it; plain HTTP on the port gets a plain 400;
#    TLS 1.0/1.1 are refused, 1.2 and 1.3 accepted; GET /api/v1/info and the log carry the
#    certificate's SHA-256 fingerprint, equal to openssl's; a restart reuses the certificate,
#    and one on an address it does not name makes it again, for that address;
#  - toegw netstat reads the API over https (the appliance's own certificate by default),
#    and refuses a certificate its --cacert does not vouch for;
#  - --tls-certificates DIR with a certificate signed by a CA made here is served as is
#    (TOEGW_API_TLS, TOEGW_TLS_CERTIFICATES and TOEGW_METRICS_AUTH set some runs);
#    a malformed certificate, a missing or foreign key exit 2 naming the file;
#  - POST /api/v1/token: the new token once, in the token file (0600); the old one 401 at
#    once, the new one 200, also after a restart; the log names neither;
#  - /metrics public: no target names, portals, IQNs or addresses in it, ids only;
#    --metrics-auth: 401 without the token, and with it the labels name the target;
#  - the header deadline covers the handshake: a client that completes it and sends no
#    request, or sends nothing at all, is closed (without a plain answer) in time;
#  - 301 failed handshakes leave a line a second at most in the log, one of which says how
#    many were held back, and the API goes on serving.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq openssl gnutls-cli tgtd tgtadm python3
h_need_toegw

PORT=18543
API=127.0.0.1:$PORT
NBD=127.0.0.1:18509
SD=$H_TMP/state
CERT=$SD/tls/server-cert.pem
IQN=iqn.2024-01.org.example.toegw:tls.open

H_TGTD_PORTAL=127.0.0.1:3260 h_tgtd_start
h_target_new 1 "$IQN"
h_lun_file 1 1 4M 512

PID=
LOG=
TOKEN=
R_CODE=
R_BODY=$H_TMP/body

# serve_start NAME [FLAG...] - toegw serve --no-toe on $SD; waits until /readyz answers
# over https (checked against $CACERT, the appliance's certificate by default).
serve_start() {
    local name=$1
    shift
    LOG=$H_TMP/serve.$name.log
    "$TOEGW" serve --no-toe --state-dir "$SD" --api "$API" --nbd "$NBD" "$@" \
        >"$LOG" 2>&1 </dev/null &
    PID=$!
    h_bg_register "$PID"
    for _ in $(seq 100); do
        if curl -sf -o /dev/null -m 2 --cacert "${CACERT:-$CERT}" "https://$API/readyz"; then
            TOKEN=$(cat "$SD/api-token")
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    h_fail "api_tls.$name.start" "toegw serve did not answer over https: $(h__oneline "$(tail -c 300 "$LOG")")"
    h_end
}

serve_stop() {
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
}

# req METHOD PATH [CURL ARGS...] - an https request with the token; R_CODE, R_BODY.
req() {
    local m=$1 p=$2
    shift 2
    R_CODE=$(curl -s -m 20 -X "$m" -o "$R_BODY" -w '%{http_code}' --cacert "${CACERT:-$CERT}" \
        -H "Authorization: Bearer $TOKEN" "$@" "https://$API$p")
}

# noauth METHOD PATH [CURL ARGS...] - the same without a token.
noauth() {
    local m=$1 p=$2
    shift 2
    R_CODE=$(curl -s -m 20 -X "$m" -o "$R_BODY" -w '%{http_code}' --cacert "${CACERT:-$CERT}" \
        "$@" "https://$API$p")
}

got() {
    printf 'HTTP %s, body: %s' "$R_CODE" "$(head -c 300 "$R_BODY" 2>/dev/null)"
}

# openssl_fpr FILE - the certificate's SHA-256 fingerprint as openssl prints it.
openssl_fpr() {
    openssl x509 -noout -fingerprint -sha256 -in "$1" | sed 's/^.*=//'
}

# s_client VERSION-FLAG [ARGS...] - openssl s_client to the API; its output in $H_OUT.
s_client() {
    H_CMD_TIMEOUT=10 h_run openssl s_client -connect "$API" -servername localhost "$@" </dev/null
}

# negotiated VERSION - the last s_client completed a handshake with this TLS version.
negotiated() {
    grep -Eq "^New, $1, Cipher is [A-Z0-9_-]+" "$H_OUT" && ! grep -q "Cipher is (NONE)" "$H_OUT"
}

# --- the first start: a self-signed certificate is made ------------------------------------------

serve_start first --api-tls on
h_check api_tls.cert_made "no $CERT" test -s "$CERT"
h_check api_tls.dir_mode_0700 "$(stat -c %a "$SD/tls")" test "$(stat -c %a "$SD/tls")" = 700
h_check api_tls.cert_mode_0600 "$(stat -c %a "$CERT")" test "$(stat -c %a "$CERT")" = 600
h_check api_tls.key_mode_0600 "$(stat -c %a "$SD/tls/server-key.pem")" \
    test "$(stat -c %a "$SD/tls/server-key.pem")" = 600
h_check api_tls.cert_not_a_ca "basic constraints: $(openssl x509 -noout -ext basicConstraints -in "$CERT" 2>&1 | tr '\n' ' ')" \
    sh -c "openssl x509 -noout -ext basicConstraints -in '$CERT' | grep -q 'CA:FALSE'"
h_check api_tls.cert_names "subject alternative names: $(openssl x509 -noout -ext subjectAltName -in "$CERT" 2>&1 | tr '\n' ' ')" \
    sh -c "openssl x509 -noout -checkip 127.0.0.1 -in '$CERT' | grep -q 'does match' &&
           openssl x509 -noout -checkhost localhost -in '$CERT' | grep -q 'does match' &&
           ! openssl x509 -noout -checkip 192.0.2.1 -in '$CERT' | grep -q 'does match'"
h_check api_tls.cert_valid_years "the certificate expires within 9 years: $(openssl x509 -noout -enddate -in "$CERT")" \
    openssl x509 -noout -checkend $((9 * 365 * 86400)) -in "$CERT"
FPR=$(openssl_fpr "$CERT")

req GET /api/v1/info
h_check api_tls.curl_cacert "curl --cacert: $(got)" test "$R_CODE" = 200
h_check api_tls.info_tls "$(got)" jq -e '.tls.api == true' "$R_BODY"
h_check api_tls.info_fingerprint "info says $(jq -r .tls.fingerprint_sha256 "$R_BODY" 2>/dev/null), openssl says $FPR" \
    test "$(jq -r .tls.fingerprint_sha256 "$R_BODY")" = "$FPR"
h_check api_tls.log_fingerprint "the log does not show the fingerprint" grep -qF "$FPR" "$LOG"

H_CMD_TIMEOUT=10 h_run curl -s -m 5 "https://$API/livez"
h_check api_tls.curl_untrusted_refused "curl without --cacert accepted the certificate: $(h_last)" \
    test "$H_RC" -eq 60
H_CMD_TIMEOUT=10 h_run curl -s -m 5 -o "$R_BODY" -w '%{http_code}' "http://$API/livez"
h_check api_tls.plain_http_refused "plain http on the https port: $(cat "$H_OUT"), $(head -c 200 "$R_BODY")" \
    sh -c "[ \"\$(cat '$H_OUT')\" = 400 ] && jq -e '.type | endswith(\"https-required\")' '$R_BODY' >/dev/null"

# --- protocol versions --------------------------------------------------------------------------

s_client -tls1_1 -cipher 'DEFAULT@SECLEVEL=0'
h_check api_tls.tls11_refused "openssl s_client -tls1_1 got through: $(grep -m1 '^New,' "$H_OUT")" \
    sh -c "[ $H_RC -ne 0 ] && ! grep -Eq '^New, TLSv1(\\.1)?, Cipher is [A-Z]' '$H_OUT'"
s_client -tls1 -cipher 'DEFAULT@SECLEVEL=0'
h_check api_tls.tls10_refused "openssl s_client -tls1 got through: $(grep -m1 '^New,' "$H_OUT")" \
    sh -c "[ $H_RC -ne 0 ] && ! grep -Eq '^New, TLSv1, Cipher is [A-Z]' '$H_OUT'"
H_CMD_TIMEOUT=10 h_run gnutls-cli --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.1' \
    --x509cafile "$CERT" -p "$PORT" 127.0.0.1 </dev/null
h_check api_tls.gnutls_tls11_refused "gnutls-cli with tls 1.1 only: $(h_last)" \
    sh -c "[ $H_RC -ne 0 ] && ! grep -q 'Handshake was completed' '$H_OUT'"
s_client -tls1_2 -CAfile "$CERT" -verify_return_error
h_check api_tls.tls12_accepted "openssl s_client -tls1_2: $(h_last); $(grep -m1 '^New,' "$H_OUT")" negotiated TLSv1.2
s_client -tls1_3 -CAfile "$CERT" -verify_return_error
h_check api_tls.tls13_accepted "openssl s_client -tls1_3: $(h_last); $(grep -m1 '^New,' "$H_OUT")" negotiated TLSv1.3
H_CMD_TIMEOUT=10 h_run gnutls-cli --x509cafile "$CERT" -p "$PORT" 127.0.0.1 </dev/null
h_check api_tls.gnutls_trusts "gnutls-cli: $(h_last)" \
    sh -c "grep -q 'The certificate is trusted' '$H_OUT' && grep -q 'Handshake was completed' '$H_OUT'"

# --- failed handshakes come at a peer's rate; the log keeps to one line a second ------------------

# bad_handshakes N - N connections, each sending one TLS record the server cannot take (a
# ServerHello where a ClientHello belongs), each waiting for the server to close it.
bad_handshakes() {
    python3 - "$PORT" "$1" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
PY
}
http_lines() { grep -c ' api: http: ' "$LOG"; }
before=$(http_lines)
t0=$(date +%s)
bad_handshakes 300
sleep 1.2 # the next line is due; it says how many were held back
bad_handshakes 1
secs=$(($(date +%s) - t0))
sleep 0.3
lines=$(($(http_lines) - before))
h_check api_tls.bad_handshakes_logged "300 failed handshakes left no line in the log" \
    test "$lines" -ge 1
h_check api_tls.bad_handshakes_rate_limited "$lines log lines for 301 failed handshakes in $secs s" \
    test "$lines" -le $((secs + 2))
h_check api_tls.bad_handshakes_counted "no line says how many were held back: $(grep ' api: http: ' "$LOG" | tail -n 2 | tr '\n' ' ')" \
    grep -Eq ' api: http: .*\(and [0-9]+ more http server messages since the last such line\)' "$LOG"
req GET /api/v1/info
h_check api_tls.serves_after_bad_handshakes "GET /api/v1/info after them: $(got)" test "$R_CODE" = 200

# --- a session, /metrics public: ids only --------------------------------------------------------

req POST /api/v1/sessions -H 'Content-Type: application/json' \
    -d "{\"portal\":\"127.0.0.1\",\"target\":\"$IQN\",\"stack\":\"host\"}"
SID=$(jq -r '.id // empty' "$R_BODY" 2>/dev/null)
h_check api_tls.session_over_https "POST /api/v1/sessions: $(got)" test "$R_CODE" = 201 -a -n "$SID"

noauth GET /metrics
cp "$R_BODY" "$H_TMP/metrics.public"
h_check api_tls.metrics_public "GET /metrics without a token: $(got)" test "$R_CODE" = 200
h_check api_tls.metrics_public_session_by_id "no toegw_session_info for $SID" \
    grep -q "^toegw_session_info{session=\"$SID\"" "$H_TMP/metrics.public"
h_check api_tls.metrics_public_no_names "a name or address in the public /metrics: $(grep -m1 -E 'iqn\.|target=|portal=|addr=|127\.0\.0\.1' "$H_TMP/metrics.public")" \
    sh -c "! grep -qE 'iqn\\.|target=|portal=|addr=|mac=|127\\.0\\.0\\.1|$IQN' '$H_TMP/metrics.public'"

# promtool_check NAME FILE - `promtool check metrics` accepts FILE (a loud skip without it).
promtool_check() {
    if ! command -v promtool >/dev/null 2>&1; then
        h_skip "api_tls.$1" "no promtool (Debian's prometheus package)"
        return
    fi
    h_run promtool check metrics <"$2"
    h_check "api_tls.$1" "promtool check metrics: $(h__oneline "$(head -c 300 "$H_OUT" "$H_ERR")")" \
        test "$H_RC" -eq 0
}
promtool_check metrics_public_promtool "$H_TMP/metrics.public"

# --- toegw netstat over https -------------------------------------------------------------------

h_run "$TOEGW" netstat --api "https://$API" --state-dir "$SD" --json
h_check api_tls.netstat_https "$(h_last)" \
    sh -c "[ $H_RC -eq 0 ] && jq -e 'map(.stack) | index(\"host\") != null' '$H_OUT' >/dev/null"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$H_TMP/other-key.pem" -out "$H_TMP/other.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
h_run "$TOEGW" netstat --api "https://$API" --state-dir "$SD" --cacert "$H_TMP/other.pem"
h_expect_error api_tls.netstat_untrusted 1 "$TOKEN"
h_check api_tls.netstat_untrusted_says_why "$(head -c 200 "$H_ERR")" grep -q "not trusted" "$H_ERR"

# --- token rotation -----------------------------------------------------------------------------

OLD=$TOKEN
noauth POST /api/v1/token
h_check api_tls.rotate_needs_token "POST /api/v1/token without a token: $(got)" test "$R_CODE" = 401
req GET /api/v1/token
h_check api_tls.token_never_read "GET /api/v1/token: $(got)" test "$R_CODE" = 405
req POST /api/v1/token
NEW=$(jq -r '.token // empty' "$R_BODY" 2>/dev/null)
h_check api_tls.rotate "POST /api/v1/token: HTTP $R_CODE" test "$R_CODE" = 200 -a -n "$NEW" -a "$NEW" != "$OLD"
h_check api_tls.rotate_file "the token file does not hold the new token" \
    test "$(cat "$SD/api-token")" = "$NEW"
h_check api_tls.rotate_file_mode "$(stat -c %a "$SD/api-token")" test "$(stat -c %a "$SD/api-token")" = 600
req GET /api/v1/info
h_check api_tls.old_token_401 "the old token after the rotation: $(got)" test "$R_CODE" = 401
TOKEN=$NEW
req GET /api/v1/info
h_check api_tls.new_token_200 "the new token: $(got)" test "$R_CODE" = 200
h_check api_tls.rotation_logged "no rotation line in the log" grep -q "api token rotated" "$LOG"
h_check api_tls.log_has_no_token "a token appears in the log" \
    sh -c "! grep -qF -e '$OLD' -e '$NEW' '$LOG'"

# --- restart: the same certificate, the rotated token, --metrics-auth ---------------------------

serve_stop
TOEGW_METRICS_AUTH=1 serve_start metrics --api-tls on --api-header-timeout 2
h_check api_tls.cert_reused "the fingerprint changed over a restart: $(openssl_fpr "$CERT") != $FPR" \
    test "$(openssl_fpr "$CERT")" = "$FPR"
h_check api_tls.token_survives_restart "the token file changed over a restart" \
    test "$TOKEN" = "$NEW"
req GET /api/v1/info
h_check api_tls.restart_info "$(got)" \
    sh -c "[ '$R_CODE' = 200 ] && [ \"\$(jq -r .tls.fingerprint_sha256 '$R_BODY')\" = '$FPR' ]"
noauth GET /metrics
h_check api_tls.metrics_auth_401 "GET /metrics without a token under --metrics-auth: $(got)" \
    test "$R_CODE" = 401
for _ in $(seq 50); do
    req GET /metrics
    grep -q "^toegw_session_info{.*target=" "$R_BODY" && break
    sleep 0.2
done
h_check api_tls.metrics_auth_200_names "GET /metrics with the token: HTTP $R_CODE, $(grep -m1 toegw_session_info "$R_BODY")" \
    sh -c "[ '$R_CODE' = 200 ] && grep -qF 'target=\"$IQN\"' '$R_BODY'"
cp "$R_BODY" "$H_TMP/metrics.auth"
promtool_check metrics_auth_promtool "$H_TMP/metrics.auth"

# idle CAFILE HANDSHAKE - connects, does the TLS handshake when HANDSHAKE is 1, then waits
# for the server: prints what it got and after how long.
idle() {
    python3 - "$@" <<'PY'
import socket, ssl, sys, time
t0 = time.time()
s = socket.create_connection(("127.0.0.1", 18543))
if sys.argv[2] == "1":
    s = ssl.create_default_context(cafile=sys.argv[1]).wrap_socket(s, server_hostname="127.0.0.1")
s.settimeout(8)
try:
    got = s.recv(100)
except Exception as e:
    got = repr(e).encode()
print("%d %.1f" % (len(got), time.time() - t0))
PY
}
read -r n secs < <(idle "$CERT" 1)
h_check api_tls.deadline_after_handshake "a handshaken idle connection got ${n:-?} bytes after ${secs:-?} s" \
    awk -v n="${n:-9}" -v s="${secs:-99}" 'BEGIN { exit !(n == 0 && s >= 1.5 && s < 4) }'
read -r n secs < <(idle "$CERT" 0)
h_check api_tls.deadline_silent_closed "a silent connection got ${n:-?} bytes after ${secs:-?} s" \
    awk -v n="${n:-9}" -v s="${secs:-99}" 'BEGIN { exit !(n == 0 && s >= 1.5 && s < 4) }'

# --- --tls-certificates: the operator's own certificate -----------------------------------------

serve_stop
UD=$H_TMP/certs
mkdir -p "$UD"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout "$H_TMP/ca-key.pem" \
    -out "$H_TMP/ca.pem" -subj "/CN=toegw test ca" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$UD/server-key.pem" \
    -out "$H_TMP/server.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$H_TMP/ext"
openssl x509 -req -in "$H_TMP/server.csr" -CA "$H_TMP/ca.pem" -CAkey "$H_TMP/ca-key.pem" \
    -CAcreateserial -days 30 -extfile "$H_TMP/ext" -out "$UD/server-cert.pem" 2>/dev/null
chmod 600 "$UD/server-key.pem"
# (by the environment this time: TOEGW_API_TLS, TOEGW_TLS_CERTIFICATES)
CACERT=$H_TMP/ca.pem TOEGW_API_TLS=on TOEGW_TLS_CERTIFICATES=$UD serve_start own
CACERT=$H_TMP/ca.pem req GET /api/v1/info
h_check api_tls.own_cert_served "curl --cacert ca.pem: $(got)" \
    sh -c "[ '$R_CODE' = 200 ] && [ \"\$(jq -r .tls.fingerprint_sha256 '$R_BODY')\" = '$(openssl_fpr "$UD/server-cert.pem")' ]"
H_CMD_TIMEOUT=10 h_run gnutls-cli --x509cafile "$H_TMP/ca.pem" -p "$PORT" 127.0.0.1 </dev/null
h_check api_tls.own_cert_gnutls "gnutls-cli with the test ca: $(h_last)" \
    grep -q 'The certificate is trusted' "$H_OUT"
h_check api_tls.own_cert_state_dir_untouched "the state dir's certificate changed" \
    test "$(openssl_fpr "$CERT")" = "$FPR"
serve_stop

# --- bad certificate directories: exit 2, one line naming the file ------------------------------

# bad_dir NAME NEEDLE DIR - serve with --tls-certificates DIR exits 2 naming NEEDLE.
bad_dir() {
    H_CMD_TIMEOUT=10 h_run "$TOEGW" serve --no-toe --state-dir "$SD" --api "$API" \
        --nbd "$NBD" --api-tls on --tls-certificates "$3"
    if [ "$H_RC" -ne 2 ] || ! h_stderr_oneline || ! grep -qF -- "$2" "$H_ERR"; then
        h_fail "api_tls.$1" "expected exit 2 and one line naming $2, got $(h_last)"
    else
        h_pass "api_tls.$1"
        h_log "$1: $(cat "$H_ERR")"
    fi
}
mkdir -p "$H_TMP/bad1" "$H_TMP/bad2" "$H_TMP/bad3" "$H_TMP/bad4"
printf -- '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n' \
    >"$H_TMP/bad1/server-cert.pem"
cp "$UD/server-key.pem" "$H_TMP/bad1/"
bad_dir bad_cert_malformed "$H_TMP/bad1/server-cert.pem" "$H_TMP/bad1"
cp "$UD/server-cert.pem" "$H_TMP/bad2/"
bad_dir bad_key_missing "$H_TMP/bad2/server-key.pem" "$H_TMP/bad2"
cp "$UD/server-cert.pem" "$H_TMP/bad3/"
cp "$H_TMP/other-key.pem" "$H_TMP/bad3/server-key.pem"
bad_dir bad_key_foreign "$H_TMP/bad3/server-key.pem" "$H_TMP/bad3"
cp "$UD/server-cert.pem" "$H_TMP/bad4/"
echo garbage >"$H_TMP/bad4/server-key.pem"
bad_dir bad_key_malformed "$H_TMP/bad4/server-key.pem" "$H_TMP/bad4"
H_CMD_TIMEOUT=10 h_run "$TOEGW" serve --no-toe --state-dir "$SD" --api "$API" --api-tls maybe
h_check api_tls.bad_flag "--api-tls maybe: $(h_last)" \
    sh -c "[ $H_RC -eq 2 ] && grep -q -- '--api-tls must be on or off' '$H_ERR'"

# --- the API moves to another address: the certificate toegw made is made again for it ---------

ip addr add 192.0.2.10/32 dev lo
API=192.0.2.10:$PORT
serve_start moved --api-tls on
h_check api_tls.moved_cert_names_address "the certificate does not name 192.0.2.10: $(openssl x509 -noout -ext subjectAltName -in "$CERT" 2>&1 | tr '\n' ' ')" \
    sh -c "openssl x509 -noout -checkip 192.0.2.10 -in '$CERT' | grep -q 'does match'"
MOVED_FPR=$(openssl_fpr "$CERT")
h_check api_tls.moved_cert_new "the fingerprint did not change" test "$MOVED_FPR" != "$FPR"
h_check api_tls.moved_logged "no line says it was made again: $(grep -m1 'tls certificate' "$LOG")" \
    grep -q "made the self-signed tls certificate in $SD/tls again, for 192.0.2.10" "$LOG"
req GET /api/v1/info
h_check api_tls.moved_info "curl --cacert to https://$API: $(got)" \
    sh -c "[ '$R_CODE' = 200 ] && [ \"\$(jq -r .tls.fingerprint_sha256 '$R_BODY')\" = '$MOVED_FPR' ]"
serve_stop
serve_start moved_again --api-tls on
h_check api_tls.moved_cert_kept "the fingerprint changed over a restart on the same address" \
    test "$(openssl_fpr "$CERT")" = "$MOVED_FPR"
serve_stop

h_end
