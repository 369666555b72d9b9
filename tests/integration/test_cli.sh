#!/usr/bin/env bash
# The command line of the client commands: bad usage exits 2 with a one-line message,
# `--stack toe` fails cleanly and says why when the TOE cannot take the connection (without a
# TOE in the build, or - as here - a portal on the host's loopback, which is not on the TOE's
# wire), `--stack auto` falls back to the host stack, and `toegw version` works.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"

h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:cli
h_lun_file 1 1 8M 512

h_need_toegw

URL=$(h_url 1 1)

# Bad usage: exit 2, one line on stderr.
h_run "$TOEGW" no-such-command
h_expect_error cli.unknown_command 2
h_run "$TOEGW" read
h_expect_error cli.read_without_url 2
h_run "$TOEGW" luns
h_expect_error cli.luns_without_url 2
h_run "$TOEGW" read "http://$H_PORTAL/x/1"
h_expect_error cli.read_not_an_iscsi_url 2
h_run "$TOEGW" read "iscsi://$H_PORTAL/${H_IQN[1]}"
h_expect_error cli.read_url_without_lun 2
h_run "$TOEGW" read "$URL" --offset twelve
h_expect_error cli.read_bad_offset 2
h_run "$TOEGW" read "$URL" --stack sideways
h_expect_error cli.bad_stack_value 2
h_run "$TOEGW" read "$URL" --no-such-option
h_expect_error cli.unknown_option 2

# --stack toe to 127.0.0.1: non-zero, one line, and the message names the TOE.
names_toe() {
    grep -qiE 'toe|offload' "$H_ERR"
}
for cmd in discover luns read write perf; do
    case $cmd in
        discover) args=("$H_PORTAL") ;;
        luns) args=("$(h_target_url 1)") ;;
        perf) args=("$URL" -t 1) ;;
        *) args=("$URL") ;;
    esac
    h_run "$TOEGW" "$cmd" "${args[@]}" --stack toe </dev/null
    if [ "$H_RC" -eq 0 ]; then
        h_fail "cli.${cmd}_stack_toe_fails" "exit 0 with --stack toe; expected a clear error"
    elif ! h_stderr_oneline; then
        h_fail "cli.${cmd}_stack_toe_fails" "expected one line on stderr, got: $(h__oneline "$(head -c 300 "$H_ERR")")"
    elif ! names_toe; then
        h_fail "cli.${cmd}_stack_toe_fails" "the message does not mention the TOE: $(h__oneline "$(cat "$H_ERR")")"
    else
        h_pass "cli.${cmd}_stack_toe_fails"
        h_log "cli.${cmd}_stack_toe_fails: $(cat "$H_ERR")"
    fi
done

# --stack auto (the default) falls back to the host stack.
h_run "$TOEGW" discover "$H_PORTAL" --stack auto
h_expect_ok cli.discover_stack_auto_falls_back
h_run "$TOEGW" discover "$H_PORTAL"
h_expect_ok cli.discover_default_stack

# version.
h_run "$TOEGW" version
if h_expect_ok cli.version; then
    h_check cli.version_names_toegw "output: $(h__oneline "$(head -c 200 "$H_OUT")")" \
        grep -q toegw "$H_OUT"
    for lib in openssl isa-l jansson libmicrohttpd; do
        h_check "cli.version_names_$lib" "output: $(h__oneline "$(cat "$H_OUT")")" \
            grep -qE "^ +$lib +[0-9]" "$H_OUT"
    done
fi

# --help lists every option a command takes, with its default; the parser takes exactly
# those (an option another command takes is refused, not ignored).
declare -A OWN=([discover]="--json" [luns]="--json" [read]="--offset --length"
    [write]="--offset" [perf]="--blocks --max-requests --timeout --write --random --json")
for cmd in discover luns read write perf; do
    h_run "$TOEGW" "$cmd" --help
    help=$H_TMP/help.$cmd
    cp "$H_OUT" "$help"
    h_check "cli.${cmd}_help" "$(h_last)" sh -c "test $H_RC -eq 0 &&
        grep -q -- '--stack auto|toe|host .*(default: auto)' '$H_OUT' &&
        grep -q -- '--command-timeout S .*(default: 30)' '$H_OUT'"
    for flag in ${OWN[$cmd]}; do
        h_check "cli.${cmd}_help_lists_${flag#--}" "$(head -c 300 "$help")" \
            grep -q -- "$flag" "$help"
    done
    for flag in --offset --length --blocks --json; do
        grep -q -- "$flag" "$help" && continue
        h_run "$TOEGW" "$cmd" "$URL" "$flag" 1
        h_check "cli.${cmd}_refuses_${flag#--}" "$(h_last)" \
            sh -c "test $H_RC -eq 2 && grep -q 'unknown or incomplete option \"$flag\"' '$H_ERR'"
    done
done
# bash completion: the commands and each command's flags, from toegw's own --help
if command -v bash >/dev/null; then
    complete_words() { # complete_words WORD... -> what completion offers for the last one
        PATH="$(dirname "$TOEGW"):$PATH" bash -c '. "$0"; COMP_WORDS=("$@");
            COMP_CWORD=$(($# - 1)); _toegw; printf "%s\n" "${COMPREPLY[@]}"' \
            "$REPO/scripts/toegw-completion.bash" "$@"
    }
    h_check cli.completion_commands "offered: $(complete_words toegw lo | tr '\n' ' ')" \
        test "$(complete_words toegw lo | sort | tr '\n' ' ')" = "login logout "
    h_check cli.completion_flags "offered: $(complete_words toegw serve --toe-n | tr '\n' ' ')" \
        test "$(complete_words toegw serve --toe-n | tr '\n' ' ')" = "--toe-nat "
    h_check cli.completion_perf_short "offered: $(complete_words toegw perf --bl | tr '\n' ' ')" \
        test "$(complete_words toegw perf --bl | tr '\n' ' ')" = "--blocks "
fi
# the man page: well-formed, and it names every command toegw has
if command -v groff >/dev/null; then
    h_check cli.man_page_well_formed "$(groff -man -ww -z "$REPO/docs/toegw.8" 2>&1 | head -c 200)" \
        sh -c "test -z \"\$(groff -man -ww -z '$REPO/docs/toegw.8' 2>&1)\""
    missing=
    for c in $("$TOEGW" --help 2>&1 | awk '/^commands:/ {on=1; next} on && /^  [a-z]/ {print $1}'); do
        grep -q "^\.B.* $c\b\|^\.B $c\b\|\b$c\b" "$REPO/docs/toegw.8" || missing="$missing $c"
    done
    h_check cli.man_page_names_every_command "missing:$missing" test -z "$missing"
fi
for bad in "-b 0" "-m 0" "-t 0" "--blocks x"; do
    # shellcheck disable=SC2086 # the option and its value
    h_run "$TOEGW" perf "$URL" $bad
    h_check "cli.perf_${bad// /_}_says_why" "$(h_last)" \
        sh -c "test $H_RC -eq 2 && grep -q 'must be a number from 1' '$H_ERR'"
done

h_end
