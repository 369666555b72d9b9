#!/usr/bin/env bash
# The commands that drive a running appliance through its REST API, as an operator uses
# them: `toegw login` (open and CHAP targets, a refused one), `sessions`, `volumes`,
# `reservations`, `logout` by target name and by id; their --json output parsed with jq;
# their tables; the token read from the state dir; a CHAP secret read from a file and
# never printed; a clear error for an appliance that is not there.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need curl jq tgtd tgtadm
h_need_toe
# shellcheck source=lib/nbd.sh
. "$H_LIB_DIR/nbd.sh"

H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:remote.open
h_lun_file 1 1 16M 512
h_target_new 2 iqn.2024-01.org.example.toegw:remote.chap
h_lun_file 2 1 8M 512
SECRET=remote-cli-secret-0123
h_chap_in 2 remoteuser "$SECRET"
nbd_serve
export TOEGW_STATE_DIR=$H_TMP/state TOEGW_API=127.0.0.1:8080

h_run "$TOEGW" login 192.0.2.1 "${H_IQN[1]}" --stack toe --json
h_check remote.login_json "$(h_last)" sh -c "test $H_RC -eq 0 &&
    jq -e '.state == \"logged_in\" and .stack == \"toe\" and (.luns | length) == 1' '$H_OUT' >/dev/null"
S1=$(jq -r .id "$H_OUT")
printf '%s\n' "$SECRET" >"$H_TMP/chap.secret"
h_run "$TOEGW" login 127.0.0.1 "${H_IQN[2]}" --stack host --chap-user remoteuser \
    --chap-secret-file "$H_TMP/chap.secret"
h_check remote.login_chap_table "$(h_last)" sh -c "test $H_RC -eq 0 &&
    grep -q 'logged in: session s-.* on the host stack' '$H_OUT' && grep -q '8 MiB' '$H_OUT'"
h_check remote.chap_secret_never_printed "the secret appears in the output or the log" \
    sh -c "! grep -qF '$SECRET' '$H_OUT' '$H_ERR' '$H_TMP/serve.log'"
printf 'wrong-secret-here\n' >"$H_TMP/bad.secret"
h_run "$TOEGW" login 127.0.0.1 "${H_IQN[2]}" --chap-user remoteuser \
    --chap-secret-file "$H_TMP/bad.secret"
h_check remote.login_refused_says_why "$(h_last)" sh -c "test $H_RC -eq 1 &&
    h_stderr() { grep -q 'the api answered 4' '$H_ERR'; }; h_stderr"
h_run "$TOEGW" login 127.0.0.1 "${H_IQN[2]}" --chap-user remoteuser
h_check remote.chap_user_needs_secret_file "$(h_last)" sh -c "test $H_RC -eq 1 &&
    grep -q 'go together' '$H_ERR'"

h_run "$TOEGW" sessions --json
h_check remote.sessions_json "$(h_last)" sh -c "test $H_RC -eq 0 &&
    jq -e 'length == 2 and (map(.state) | unique) == [\"logged_in\"]' '$H_OUT' >/dev/null"
h_run "$TOEGW" sessions
h_check remote.sessions_table "$(h_last): $(head -c 300 "$H_OUT")" sh -c "test $H_RC -eq 0 &&
    head -1 '$H_OUT' | grep -q '^ID *STATE *STACK *PLACEMENT' &&
    grep -q '^$S1 *logged_in *toe *offloaded' '$H_OUT' && test \$(wc -l <'$H_OUT') -eq 3"
h_run "$TOEGW" volumes --json
h_check remote.volumes_json "$(h_last)" sh -c "test $H_RC -eq 0 &&
    jq -e 'length == 2 and all(.[]; .export | startswith(\"nbd://\"))' '$H_OUT' >/dev/null"
h_run "$TOEGW" volumes
h_check remote.volumes_table_binary_units "$(head -c 300 "$H_OUT")" sh -c "test $H_RC -eq 0 &&
    grep -q '16 MiB' '$H_OUT' && grep -q '8 MiB' '$H_OUT'"

code=$(api POST /api/v1/reservations '{"holder":"backup","port":20010,"stack":"toe"}')
h_run "$TOEGW" reservations
h_check remote.reservations_table "created $code; $(head -c 300 "$H_OUT")" sh -c "test $H_RC -eq 0 &&
    grep -q '20010 *toe *no *backup' '$H_OUT'"
h_run "$TOEGW" reservations --json
h_check remote.reservations_json "$(h_last)" \
    sh -c "jq -e 'length == 1 and .[0].holder == \"backup\"' '$H_OUT' >/dev/null"

h_run "$TOEGW" logout "${H_IQN[2]}"
h_check remote.logout_by_target "$(h_last)" sh -c "test $H_RC -eq 0 && grep -q 'logged out' '$H_OUT'"
h_run "$TOEGW" logout "$S1" --json
h_check remote.logout_by_id "$(h_last)" test "$H_RC" -eq 0
h_run "$TOEGW" logout "$S1"
h_check remote.logout_unknown_says_so "$(h_last)" sh -c "test $H_RC -eq 1 &&
    grep -q 'no session is $S1' '$H_ERR'"
h_run "$TOEGW" sessions --json
h_check remote.no_sessions_left "$(head -c 200 "$H_OUT")" jq -e 'length == 0' "$H_OUT"

h_run "$TOEGW" sessions --api 127.0.0.1:8099
h_check remote.no_appliance_says_so "$(h_last)" sh -c "test $H_RC -eq 1 && h_stderr_oneline() {
    test \$(grep -c '' '$H_ERR') -eq 1; }; h_stderr_oneline && grep -qi 'connect\\|refused' '$H_ERR'"
h_run "$TOEGW" sessions --api-token-file "$H_TMP/nowhere"
h_check remote.no_token_says_so "$(h_last)" sh -c "test $H_RC -eq 1 && grep -q 'api token' '$H_ERR'"
h_run "$TOEGW" sessions --chap-user x
h_check remote.sessions_refuses_login_flags "$(h_last)" test "$H_RC" -eq 2
h_run "$TOEGW" sessions --help
h_check remote.help_lists_defaults "$(h_last)" sh -c "test $H_RC -eq 0 &&
    grep -q -- '--api \\[https://\\]ADDR .*(default: TOEGW_API' '$H_OUT'"
h_end
