#!/usr/bin/env bash
# A target the TOE cannot reach: tgtd on a second host (its own network namespace, joined
# to the appliance's by a veth pair on 198.51.100.0/24), while the TOE's wire is its private
# TAP (192.0.2.0/24), which the appliance's host does not forward. A TOE connect there gets
# no answer; after --toe-connect-timeout (3000 ms) the broker knows the destination as
# toe_unreachable: `--stack auto` lands on the host stack within 5 s, with that placement
# reason on the connection and the session; `--stack toe` fails within 5 s with a message
# that names the portal and says why (CLI exit 1, REST 504).
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm
h_need_toe
[ -c /dev/net/tun ] || h_skip_all "no /dev/net/tun: the TOE needs a TAP device"
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

h_san_host 198.51.100.2/24 198.51.100.1/24
H_TGTD_ON_SAN=1 H_TGTD_PORTAL=198.51.100.1:3260 h_tgtd_start
H_PORTAL=198.51.100.1:3260
h_target_new 1 iqn.2024-01.org.example.toegw:far1
h_lun_file 1 1 16M 512
h_target_new 2 iqn.2024-01.org.example.toegw:far2
h_lun_file 2 1 16M 512

ms() { date +%s%3N; }

# --- client commands: each brings up its own TOE ---------------------------------------------------

t0=$(ms)
h_run "$TOEGW" luns "$(h_target_url 1)" --stack auto
el=$(($(ms) - t0))
h_check unreachable.cli_auto_falls_back "$(h_last) after ${el} ms" test "$H_RC" -eq 0
h_check unreachable.cli_auto_within_5s "took ${el} ms" test "$el" -lt 5000

t0=$(ms)
h_run "$TOEGW" luns "$(h_target_url 1)" --stack toe
el=$(($(ms) - t0))
h_expect_error unreachable.cli_toe_fails 1
h_check unreachable.cli_toe_says_why "$(h_last)" \
    grep -q "198.51.100.1:3260.*no answer from there within its connect timeout" "$H_ERR"
h_check unreachable.cli_toe_within_5s "took ${el} ms" test "$el" -lt 5000

# --- serve ---------------------------------------------------------------------------------------

nbd_serve
t0=$(ms)
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "198.51.100.1", target: $t, stack: "auto"}')")
el=$(($(ms) - t0))
h_check unreachable.serve_auto_201 "answered $code after ${el} ms: $(head -c 300 "$H_TMP/api.json")" \
    test "$code" = 201
h_check unreachable.serve_auto_within_5s "took ${el} ms" test "$el" -lt 5000
h_check unreachable.serve_auto_on_host "$(jq -c .connection "$H_TMP/api.json")" \
    jq -e '.connection.stack == "host" and .connection.placement_reason == "toe_unreachable"' \
    "$H_TMP/api.json"
api GET /api/v1/connections >/dev/null
h_check unreachable.connection_placement_reason "$(jq -c '[.[] | select(.remote == "198.51.100.1:3260")]' "$H_TMP/api.json")" \
    jq -e '[.[] | select(.remote == "198.51.100.1:3260" and .state == "ESTABLISHED")] |
           length == 1 and .[0].stack == "host" and .[0].placement_reason == "toe_unreachable"' "$H_TMP/api.json"

t0=$(ms)
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[2]}" \
    '{portal: "198.51.100.1", target: $t, stack: "toe"}')")
el=$(($(ms) - t0))
h_check unreachable.serve_toe_504 "answered $code after ${el} ms: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 504 && jq -e '.detail | test(\"198.51.100.1:3260\") and test(\"no answer\")' '$H_TMP/api.json' >/dev/null"
h_check unreachable.serve_toe_within_5s "took ${el} ms" test "$el" -lt 5000

h_end
