#!/usr/bin/env bash
# The dashboard in a real browser: Debian's Chromium driven by playwright-core
# (tests/e2e/dashboard.js) against a `toegw serve --api-tls on` with one session over the
# TOE to tgtd, made here, and a second target that the page discovers and logs in to. The
# page is loaded over https with the appliance's self-signed certificate
# (STATE_DIR/tls/server-cert.pem) trusted by its key, and refused by a browser without it.
# The page takes the token from /#token=...; the server logs every request's path (debug),
# and the token must be in none of them. Screenshots at 1400 and 800 px are left in the
# test's temp dir (H_KEEP=1 keeps it).
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need_toe
h_need node curl
[ -x /usr/bin/chromium ] || h_skip_all "no /usr/bin/chromium (Debian's chromium package)"
[ -d "$REPO/node_modules/playwright-core" ] ||
    h_skip_all "playwright-core is not installed (npm ci in $REPO)"

IQN=iqn.2024-01.org.example.toegw:dash
IQN2=iqn.2024-01.org.example.toegw:dash2
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 "$IQN"
h_lun_file 1 1 8M 512
h_target_new 2 "$IQN2"
h_lun_file 2 1 8M 512

state=$H_TMP/state
cert=$state/tls/server-cert.pem
"$TOEGW" serve --state-dir "$state" --api 127.0.0.1:18080 --nbd 127.0.0.1:20809 \
    --api-tls on --log-level debug >"$H_TMP/serve.log" 2>&1 &
h_bg_register $!
for _ in $(seq 100); do
    curl -sf --cacert "$cert" https://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
    sleep 0.1
done
token=$(cat "$state/api-token")
sid=$(curl -s --cacert "$cert" -H "Authorization: Bearer $token" \
    -X POST https://127.0.0.1:18080/api/v1/sessions \
    -d "{\"portal\":\"192.0.2.1\",\"target\":\"$IQN\",\"stack\":\"toe\"}" |
    sed -n 's/.*"id":"\(s-[0-9a-f]*\)".*/\1/p')
h_check dashboard.session_created "no session id from POST /api/v1/sessions" test -n "$sid"

H_CMD_TIMEOUT=240 h_run node "$REPO/tests/e2e/dashboard.js" https://127.0.0.1:18080/ \
    "$token" "$H_TMP" "$sid" "$cert" 192.0.2.1 "$IQN2"
while read -r verdict name rest; do
    case $verdict in
    ok) h_pass "dashboard.$name" ;;
    not) h_fail "dashboard.${rest%%:*}" "${rest#*: }" ;;
    esac
done <"$H_OUT"
h_check dashboard.browser_exit0 "the browser run failed: $(h_last)" test "$H_RC" -eq 0
h_check dashboard.screenshots "no screenshots" \
    test -s "$H_TMP/dashboard-1400.png" -a -s "$H_TMP/dashboard-800.png"
# the server logged the page's requests (so the next check can fail), never with the token
h_check dashboard.requests_logged "serve.log has no GET /api/v1/history line" \
    grep -q "GET /api/v1/history 200" "$H_TMP/serve.log"
h_check dashboard.token_not_logged "the token is in serve.log" \
    sh -c '! grep -qF -- "$1" "$2"' sh "$token" "$H_TMP/serve.log"
h_end
