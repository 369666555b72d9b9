#!/usr/bin/env bash
# SendTargets discovery: `toegw discover PORTAL` lists every target of a tgtd with three
# targets (and its portal), in text and JSON, agrees with libiscsi's iscsi-ls, and fails
# cleanly on a portal where nothing listens.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need iscsi-ls

IQNS=(
    iqn.2024-01.org.example.toegw:disc.alpha
    iqn.2024-01.org.example.toegw:disc.beta
    iqn.2024-01.org.example.toegw:disc.gamma
)

h_tgtd_start
for i in 0 1 2; do
    h_target_new $((i + 1)) "${IQNS[$i]}"
    h_lun_file $((i + 1)) 1 4M 512
done

# Reference: libiscsi sees exactly the three targets (proves the fixture).
h_run iscsi-ls "iscsi://$H_PORTAL"
ref=$(sed -n 's/^Target:\([^ ]*\) .*/\1/p' "$H_OUT" | sort | tr '\n' ' ')
want=$(printf '%s\n' "${IQNS[@]}" | sort | tr '\n' ' ')
h_check discovery.ref_iscsi_ls "iscsi-ls saw '$ref', wanted '$want' ($(h_last))" \
    test "$ref" = "$want"

h_need_toegw

# Text output: every IQN, no other IQN, and the portal.
h_run "$TOEGW" discover "$H_PORTAL" --stack host
if h_expect_ok discovery.text_exit0; then
    got=$(grep -oE 'iqn\.[[:alnum:].:-]+' "$H_OUT" | sort -u | tr '\n' ' ')
    h_check discovery.text_lists_all_iqns "got '$got', wanted '$want'" test "$got" = "$want"
    h_check discovery.text_same_as_iscsi_ls "toegw '$got' vs iscsi-ls '$ref'" \
        test "$got" = "$ref"
    lines=$(grep -cE '^[[:space:]]*iqn\.' "$H_OUT")
    h_check discovery.text_one_iqn_per_line \
        "expected 3 lines starting with an IQN, got $lines: $(h__oneline "$(head -c 300 "$H_OUT")")" \
        test "$lines" -eq 3
    h_check discovery.text_shows_portal "portal $H_PORTAL not in the output" \
        grep -qF "$H_PORTAL" "$H_OUT"
fi

# Default port: PORTAL without :port means 3260.
h_run "$TOEGW" discover "$H_HOST" --stack host
if h_expect_ok discovery.default_port_3260; then
    got=$(grep -oE 'iqn\.[[:alnum:].:-]+' "$H_OUT" | sort -u | tr '\n' ' ')
    h_check discovery.default_port_lists_all "got '$got'" test "$got" = "$want"
fi

# JSON: {"targets":[{"iqn","portals":[...]}]} as in the REST API (a bare array accepted).
if command -v jq >/dev/null 2>&1; then
    h_run "$TOEGW" discover "$H_PORTAL" --stack host --json
    if h_expect_ok discovery.json_exit0; then
        got=$(h_json '(if type == "object" then .targets else . end) | .[].iqn' "$H_OUT" |
            sort | tr '\n' ' ')
        h_check discovery.json_lists_all_iqns \
            "got '$got' from $(h__oneline "$(head -c 300 "$H_OUT")")" test "$got" = "$want"
        h_check discovery.json_portals "each target should list portal $H_PORTAL" \
            h_json "[(if type == \"object\" then .targets else . end) | .[]
                     | .portals | tostring | contains(\"$H_PORTAL\")] | all" "$H_OUT"
    fi
else
    h_skip discovery.json "jq not found"
fi

# Nothing listens on 3261 in this namespace: exit 1, one-line message.
h_run "$TOEGW" discover "$H_HOST:3261" --stack host
h_expect_error discovery.unreachable_portal_fails 1

# Bad usage: no portal.
h_run "$TOEGW" discover
h_expect_error discovery.missing_portal_is_usage_error 2

h_end
