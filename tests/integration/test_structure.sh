#!/usr/bin/env bash
# The module rules of the source tree (scripts/check-structure; docs/architecture.md): file
# and function sizes, the one-way dependencies between modules, private headers kept
# private, the broker reaching the TOE only through its ops table, no weak symbols. Each
# rule is one check; a failure names the files and lines that break it.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"

h_need python3
out=$(python3 "$REPO/scripts/check-structure")
while IFS= read -r line; do
    case "$line" in
        "PASS "*) h_pass "structure.${line#PASS }" ;;
        "FAIL "*)
            rule=${line#FAIL }
            h_fail "structure.${rule%%:*}" "${rule#*: }"
            ;;
    esac
done <<<"$out"
h_end
