#!/usr/bin/env bash
# The initiator's identity: targets grant LUNs by initiator name, so every appliance logs
# in with a name of its own. A tgtd target bound to one initiator name (its ACL) lets in
# `--initiator-name` of that name and refuses any other with a clear error, for the client
# commands (flag and TOEGW_INITIATOR_NAME) and for serve (flag, and "initiator_name" in
# POST /api/v1/sessions). serve's default name is made once per state directory and kept in
# STATE_DIR/initiator-name: the same after a restart, different for another state dir, and
# shown by GET /api/v1/info. Host stack only: the name is the same whatever the stack.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm
h_need_toegw
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

GOOD=iqn.2026-11.org.example.host:allowed
OTHER=iqn.2026-11.org.example.host:someone-else
h_tgtd_start
h_tgtadm --op new --mode target --tid 1 -T iqn.2024-01.org.example.toegw:acl ||
    { h_fail identity.setup "cannot create the target"; h_end; }
h_tgtadm --op bind --mode target --tid 1 --initiator-name "$GOOD" ||
    { h_fail identity.setup "cannot bind the target to $GOOD"; h_end; }
H_IQN[1]=iqn.2024-01.org.example.toegw:acl
h_lun_file 1 1 8M 512
URL=$(h_url 1 1)

# --- client commands --------------------------------------------------------------------------

h_run "$TOEGW" luns "$URL" --stack host --initiator-name "$GOOD"
h_check identity.cli_flag_allowed "$(h_last)" test "$H_RC" -eq 0
TOEGW_INITIATOR_NAME=$GOOD h_run "$TOEGW" luns "$URL" --stack host
h_check identity.cli_env_allowed "$(h_last)" test "$H_RC" -eq 0
TOEGW_STATE_DIR=$H_TMP/none h_run "$TOEGW" luns "$URL" --stack host --initiator-name "$OTHER"
h_expect_error identity.cli_other_refused 1
h_check identity.cli_refusal_names_the_initiator "$(h_last)" grep -qF "refused: target not found (status 0x0203); initiator name $OTHER: is it in the target's access list?" "$H_ERR"
TOEGW_STATE_DIR=$H_TMP/none h_run "$TOEGW" luns "$URL" --stack host
h_expect_error identity.cli_builtin_refused 1
h_run "$TOEGW" luns "$URL" --stack host --initiator-name 'not a name'
h_expect_error identity.cli_bad_name_usage 2
# a client command on an appliance's host logs in as that appliance
mkdir -p "$H_TMP/appl"
echo "InitiatorName=$GOOD" >"$H_TMP/appl/initiator-name"
TOEGW_STATE_DIR=$H_TMP/appl h_run "$TOEGW" luns "$URL" --stack host
h_check identity.cli_state_dir_name "$(h_last)" test "$H_RC" -eq 0

# --- serve -------------------------------------------------------------------------------------

NBD_ADDR=127.0.0.1:10809
API=http://127.0.0.1:8080
body() { # [INITIATOR] - a session request for target 1 on the host stack
    jq -nc --arg t "${H_IQN[1]}" --arg i "${1:-}" \
        '{portal: "127.0.0.1", target: $t, stack: "host"} + (if $i == "" then {} else {initiator_name: $i} end)'
}
stop_serve() {
    kill -TERM "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID" 2>/dev/null
}

nbd_serve --no-toe
code=$(api GET /api/v1/info)
NAME1=$(jq -r '.initiator_name' "$H_TMP/api.json")
h_check identity.info "GET /api/v1/info answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 200 && jq -e '.version and .libraries.jansson and (.uptime_s >= 0) and .toe.mode' '$H_TMP/api.json' >/dev/null"
h_check identity.default_name_generated "name '$NAME1', file: $(cat "$H_TMP/state/initiator-name" 2>/dev/null)" \
    sh -c "echo '$NAME1' | grep -Eq '^iqn\.2026-11\.io\.toegw:[0-9a-f]{12}$' && test \"\$(cat '$H_TMP/state/initiator-name')\" = '$NAME1'"
code=$(api POST /api/v1/sessions "$(body)")
h_check identity.serve_default_refused "POST without initiator_name answered $code (expected 502): $(head -c 300 "$H_TMP/api.json")" \
    test "$code" = 502
code=$(api POST /api/v1/sessions "$(body "$GOOD")")
h_check identity.serve_request_name_allowed "POST with initiator_name answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.initiator_name == \"$GOOD\"' '$H_TMP/api.json' >/dev/null"
code=$(api POST /api/v1/sessions "$(body 'bad name')")
h_check identity.serve_request_bad_name_422 "answered $code" test "$code" = 422
stop_serve

nbd_serve --no-toe
api GET /api/v1/info >/dev/null
h_check identity.default_name_survives_restart "after a restart: $(jq -r .initiator_name "$H_TMP/api.json"), before: $NAME1" \
    test "$(jq -r .initiator_name "$H_TMP/api.json")" = "$NAME1"
code=$(api GET /api/v1/sessions)
h_check identity.session_restored_with_its_name "$(head -c 300 "$H_TMP/api.json")" \
    sh -c "jq -e 'length == 1 and .[0].initiator_name == \"$GOOD\"' '$H_TMP/api.json' >/dev/null"
stop_serve

mv "$H_TMP/state" "$H_TMP/state1"
nbd_serve --no-toe
api GET /api/v1/info >/dev/null
NAME2=$(jq -r .initiator_name "$H_TMP/api.json")
h_check identity.other_state_dir_other_name "both state dirs have $NAME2" \
    sh -c "test -n '$NAME2' && test '$NAME2' != '$NAME1'"
stop_serve

nbd_serve --no-toe --initiator-name "$GOOD"
code=$(api POST /api/v1/sessions "$(body)")
h_check identity.serve_flag_allowed "POST answered $code: $(head -c 300 "$H_TMP/api.json")" \
    test "$code" = 201
stop_serve

h_run "$TOEGW" serve --state-dir "$H_TMP/state3" --no-toe --initiator-name 'not a name'
h_expect_error identity.serve_bad_name_usage 2

h_end
