#!/usr/bin/env bash
# --toe-uplink: the TOE as a station on a real Ethernet segment, as an iSCSI HBA. A second
# host (a network namespace joined by a veth pair, 198.51.100.0/24) runs tgtd; the TOE is a
# macvtap on this side's end of the pair with its own MAC and 198.51.100.3. The target sees
# the TOE's address as the initiator and the TOE's MAC (not the uplink's) in its neighbour
# table; a 256 MiB nbdcopy of the volume is byte-exact; the macvtap is gone after SIGTERM,
# and after a SIGKILL the next start replaces the one left behind.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm nbdcopy cmp
h_need_toe
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

h_san_host 198.51.100.2/24 198.51.100.1/24
H_TGTD_ON_SAN=1 H_TGTD_PORTAL=198.51.100.1:3260 h_tgtd_start
H_PORTAL=198.51.100.1:3260
h_target_new 1 iqn.2024-01.org.example.toegw:up1
LUN=$(h_lun_path 1 1)
h_random "$LUN" $((256 * 1024 * 1024))
h_lun_file 1 1 256M 512
TOE_MAC=02:00:c6:33:64:03   # the TOE's default: 02:00 and its address, 198.51.100.3
# (ip, not /sys/class/net: sysfs shows the namespace that mounted it, not this one)
mac_of() { ip -br link show "$1" 2>/dev/null | awk '{print $3}'; }
UPLINK_MAC=$(mac_of san0)

UP=(--toe-uplink san0 --toe-addr 198.51.100.3/24)
nbd_serve "${UP[@]}"
h_check uplink.macvtap_up "$(ip -d link show toe0 2>&1 | tr '\n' ' ' | head -c 300)" \
    sh -c "ip -d link show toe0 | grep -q 'macvtap mode bridge' && test '$(mac_of toe0)' = $TOE_MAC"
api GET /api/v1/info >/dev/null
h_check uplink.info "$(jq -c .toe "$H_TMP/api.json")" \
    jq -e '.toe.mode == "macvtap" and .toe.uplink == "san0"' "$H_TMP/api.json"
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "198.51.100.1", target: $t, stack: "toe"}')")
h_check uplink.session_on_toe "answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.connection.stack == \"toe\" and (.connection.local | startswith(\"198.51.100.3:\"))' '$H_TMP/api.json' >/dev/null"
VOLID=$(jq -r '.luns[0].volume' "$H_TMP/api.json")
SID=$(jq -r '.id' "$H_TMP/api.json")
h_check uplink.target_sees_the_toe_address "$(h_tgtadm --op show --mode conn --tid 1 2>&1 | tr '\n' ' ' | head -c 300)" \
    sh -c "timeout 10 tgtadm -C $H_TGTD_CPORT --lld iscsi --op show --mode conn --tid 1 | grep -q 'IP Address: 198.51.100.3'"
h_check uplink.target_sees_the_toe_mac "neighbours of the target: $(h_san ip neigh show 2>&1 | tr '\n' ' ')" \
    sh -c "h() { nsenter -t $H_SAN_PID -n ip neigh show 198.51.100.3; }; test -n '$UPLINK_MAC' && h | grep -q 'lladdr $TOE_MAC' && ! h | grep -q '$UPLINK_MAC'"
h_run nbdcopy "nbd://127.0.0.1:10809/$VOLID" "$H_TMP/copy.raw"
h_check uplink.nbdcopy_256m_byte_exact "$(h_last)" \
    sh -c "test $H_RC -eq 0 && cmp -s '$LUN' '$H_TMP/copy.raw'"
rm -f "$H_TMP/copy.raw"
api DELETE "/api/v1/sessions/$SID" >/dev/null
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
h_check uplink.macvtap_gone_after_sigterm "$(ip link show toe0 2>&1 | head -c 200)" \
    sh -c "! ip link show toe0 >/dev/null 2>&1"

nbd_serve "${UP[@]}"
kill -KILL "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
h_check uplink.macvtap_left_after_sigkill "no toe0" ip link show toe0
nbd_serve "${UP[@]}"
h_check uplink.restart_replaces_it "$(grep -i macvtap "$H_TMP/serve.log" | head -c 300)" \
    grep -q "removed the macvtap 'toe0' a previous toegw left behind" "$H_TMP/serve.log"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
h_check uplink.macvtap_gone_at_end "$(ip link show toe0 2>&1 | head -c 200)" \
    sh -c "! ip link show toe0 >/dev/null 2>&1"

h_end
