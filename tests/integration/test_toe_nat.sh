#!/usr/bin/env bash
# --toe-nat: the TOE behind its private TAP reaches a target on a second host (a network
# namespace joined by a veth pair on 198.51.100.0/24) through the appliance's host, which
# forwards the TAP's subnet and masquerades it: one nft table "toegw_toe0", removed on
# SIGTERM, and after a SIGKILL removed by the next start; IPv4 forwarding, off before, is
# off again afterwards. The session is on the TOE; tgtd sees the host's address; a read of
# the volume over NBD is byte-exact.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm nft nbdcopy cmp
h_need_toe
[ -c /dev/net/tun ] || h_skip_all "no /dev/net/tun: the TOE needs a TAP device"
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

h_san_host 198.51.100.2/24 198.51.100.1/24
H_TGTD_ON_SAN=1 H_TGTD_PORTAL=198.51.100.1:3260 h_tgtd_start
H_PORTAL=198.51.100.1:3260
h_target_new 1 iqn.2024-01.org.example.toegw:nat1
LUN=$(h_lun_path 1 1)
h_random "$LUN" $((32 * 1024 * 1024))
h_lun_file 1 1 32M 512

table_count() { nft list tables 2>/dev/null | grep -c 'toegw_toe0' || true; }
forward() { cat /proc/sys/net/ipv4/ip_forward; }
echo 0 >/proc/sys/net/ipv4/ip_forward

nbd_serve --toe-nat
h_check nat.table_while_running "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    test "$(table_count)" = 1
h_check nat.one_masquerade_rule "$(nft list table ip toegw_toe0 2>&1 | tr '\n' ' ')" \
    test "$(nft list table ip toegw_toe0 | grep -c masquerade)" = 1
h_check nat.forwarding_on "ip_forward is $(forward)" test "$(forward)" = 1
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "198.51.100.1", target: $t, stack: "toe"}')")
h_check nat.session_on_toe "answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.connection.stack == \"toe\" and .connection.local == \"192.0.2.2:\" + (.connection.local | split(\":\")[1])' '$H_TMP/api.json' >/dev/null"
VOLID=$(jq -r '.luns[0].volume' "$H_TMP/api.json")
h_check nat.target_sees_the_host "tgtd's sessions: $(h_tgtadm --op show --mode conn --tid 1 2>&1 | tr '\n' ' ' | head -c 300)" \
    sh -c "h() { timeout 10 tgtadm -C $H_TGTD_CPORT --lld iscsi --op show --mode conn --tid 1; }; h | grep -q 'IP Address: 198.51.100.2'"
h_run nbdcopy "nbd://127.0.0.1:10809/$VOLID" "$H_TMP/copy.raw"
h_check nat.nbd_read_byte_exact "$(h_last)" \
    sh -c "test $H_RC -eq 0 && cmp -s '$LUN' '$H_TMP/copy.raw'"
api DELETE "/api/v1/sessions/$(jq -r .id "$H_TMP/api.json" 2>/dev/null)" >/dev/null
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
h_check nat.table_gone_after_sigterm "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    test "$(table_count)" = 0
h_check nat.forwarding_off_after_sigterm "ip_forward is $(forward)" test "$(forward)" = 0

nbd_serve --toe-nat
kill -KILL "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
ip link del toe0 2>/dev/null
h_check nat.table_left_after_sigkill "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    test "$(table_count)" = 1
nbd_serve --toe-nat
h_check nat.restart_one_table "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    sh -c "test $(table_count) = 1 && test \$(nft list table ip toegw_toe0 | grep -c masquerade) = 1"
h_check nat.restart_removed_the_stale_one "$(grep -i 'previous toegw' "$H_TMP/serve.log" | head -c 200)" \
    grep -q 'left behind' "$H_TMP/serve.log"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
h_check nat.table_gone_after_restart_and_sigterm "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    test "$(table_count)" = 0
h_check nat.forwarding_off_at_end "ip_forward is $(forward)" test "$(forward)" = 0

h_end
