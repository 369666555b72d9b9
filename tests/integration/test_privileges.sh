#!/usr/bin/env bash
# Least privilege: `toegw serve --user nobody`, started as root, sets up the TOE's TAP and its
# NAT rule, then runs as uid 65534 with CAP_NET_ADMIN alone (effective, permitted, bounding
# and ambient), no_new_privs set, and the state dir handed to that user (0700, files 0600).
# It still does all of its work: a session over the TOE, a byte-exact read of its volume
# over NBD, the TOE's link down and up, and at SIGTERM the NAT rule goes (nft, run by the
# unprivileged process, keeps CAP_NET_ADMIN). A user that does not exist, or uid 0, is a
# clear error.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm nft nbdcopy cmp getent
h_need_toe
[ -c /dev/net/tun ] || h_skip_all "no /dev/net/tun: the TOE needs a TAP device"
getent passwd nobody >/dev/null || h_skip_all "no user 'nobody' on this machine"
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

# the unprivileged user must reach the state dir below $H_TMP
chmod 0755 "$H_TMP"
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:priv1
LUN=$(h_lun_path 1 1)
h_random "$LUN" $((16 * 1024 * 1024))
h_lun_file 1 1 16M 512

# status FIELD - that line of the serving process's /proc status, value only
status() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVE_PID/status"; }

nbd_serve --user nobody --toe-nat
nobody_uid=$(getent passwd nobody | cut -d: -f3)
h_check priv.uid_is_nobody "Uid: $(status Uid)" test "$(status Uid)" = "$nobody_uid"
h_check priv.capeff_net_admin_alone "CapEff: $(status CapEff)" \
    test "$(status CapEff)" = 0000000000001000
h_check priv.capprm_net_admin_alone "CapPrm: $(status CapPrm)" \
    test "$(status CapPrm)" = 0000000000001000
h_check priv.capbnd_net_admin_alone "CapBnd: $(status CapBnd)" \
    test "$(status CapBnd)" = 0000000000001000
h_check priv.no_new_privs "NoNewPrivs: $(status NoNewPrivs)" test "$(status NoNewPrivs)" = 1
h_log "serving process: Uid $(status Uid) CapEff $(status CapEff) CapBnd $(status CapBnd)"
h_check priv.state_dir_owned "$(stat -c '%U %a' "$H_TMP/state")" \
    test "$(stat -c '%u %a' "$H_TMP/state")" = "$nobody_uid 700"
h_check priv.token_file_owned "$(stat -c '%U %a' "$H_TMP/state/api-token")" \
    test "$(stat -c '%u %a' "$H_TMP/state/api-token")" = "$nobody_uid 600"

code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "192.0.2.1", target: $t, stack: "toe"}')")
h_check priv.session_on_toe "answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.connection.stack == \"toe\"' '$H_TMP/api.json' >/dev/null"
VOLID=$(jq -r '.luns[0].volume' "$H_TMP/api.json")
SID=$(jq -r .id "$H_TMP/api.json")
h_run nbdcopy "nbd://127.0.0.1:10809/$VOLID" "$H_TMP/copy.raw"
h_check priv.nbd_read_byte_exact "$(h_last)" \
    sh -c "test $H_RC -eq 0 && cmp -s '$LUN' '$H_TMP/copy.raw'"
code=$(api PATCH /api/v1/stacks/toe '{"link":"down"}')
h_check priv.toe_link_down "answered $code: $(head -c 200 "$H_TMP/api.json")" test "$code" = 200
code=$(api PATCH /api/v1/stacks/toe '{"link":"up"}')
h_check priv.toe_link_up "answered $code: $(head -c 200 "$H_TMP/api.json")" test "$code" = 200
api DELETE "/api/v1/sessions/$SID" >/dev/null
h_check priv.state_saved_by_nobody "$(ls -ln "$H_TMP/state" | tr '\n' ' ')" \
    sh -c "test -z \"\$(find '$H_TMP/state' ! -uid $nobody_uid)\""
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
rc=$?
h_check priv.clean_exit "exit $rc" test "$rc" -eq 0
h_check priv.nat_rule_removed_unprivileged "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    sh -c "! nft list tables | grep -q toegw_toe0"

h_run "$TOEGW" serve --state-dir "$H_TMP/state2" --api 127.0.0.1:8081 --nbd 127.0.0.1:10810 \
    --user no-such-user-here
h_check priv.unknown_user_refused "$(h_last)" \
    sh -c "test $H_RC -ne 0 && grep -q 'no such user' '$H_ERR'"
h_run "$TOEGW" serve --state-dir "$H_TMP/state2" --api 127.0.0.1:8081 --nbd 127.0.0.1:10810 \
    --user root
h_check priv.root_user_refused "$(h_last)" \
    sh -c "test $H_RC -ne 0 && grep -q 'uid 0' '$H_ERR'"
h_end
