#!/usr/bin/env bash
#
# test_hostile_cli.sh - toegw's client commands against a target that misbehaves on purpose.
#
# lib/hostile_target.py is a small scripted iSCSI target: correct by default, and with
# --case NAME wrong at one point of one phase (login, text keys, CHAP, SendTargets, Data-In,
# R2T, responses, rejects, NOP, async messages, the CmdSN window, capacity, REPORT LUNS and
# VPD answers, silence, digests). For every case the command that reaches that point
# (`toegw luns`, `read`, `write`, `discover`) runs over both stacks: --stack host to the
# target at 127.0.0.1, and --stack toe, where the command brings up its own TAP and reaches
# the target at the TAP's host side, 192.0.2.1 (the target listens on 0.0.0.0 in the test's
# namespace). A case passes when the command
#   - ends within HOSTILE_TIMEOUT seconds (default 30),
#   - exits 1 with exactly one line on stderr that matches the case's regex (it names what
#     was wrong: "data-in", "offset", "digest", "block size", "reject", "logout", "timed
#     out", ...), or, for the cases where the target stays within the protocol, exits 0,
#   - leaves no ASan/UBSan/LSan report in stderr (run with TOEGW_BIN=build-asan/toegw),
#   - never puts wrong bytes on stdout: what `read` prints is a prefix of the target's data,
#     and all of it when it exits 0; a baseline write lands byte for byte,
#   - never prints a CHAP secret.
# Cases that only end through a timeout pass toegw short ones (--login-timeout,
# --nop-interval/--nop-timeout, --command-timeout/--abort-timeout/--lun-reset-timeout);
# when toegw does not take them the case fails without running (set HOSTILE_NO_FLAGS_RUN=1
# to run it anyway, without them, under the same timeout).
#
# Environment: HOSTILE_CASES (regex of case names), HOSTILE_STACKS ("host toe"),
# HOSTILE_TIMEOUT, HOSTILE_NO_FLAGS_RUN, and the harness's TOEGW_BIN, H_KEEP, H_VERBOSE.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need ip cmp timeout
# shellcheck source-path=SCRIPTDIR source=lib/hostile.sh
. "$(dirname "$0")/lib/hostile.sh"
[ -n "$HT_PY" ] || h_skip_all "python3 not found (scripts/install-deps installs it)"
h_need_toe

PORT=3261
H_CMD_TIMEOUT=${HOSTILE_TIMEOUT:-30}
STACKS=${HOSTILE_STACKS:-host toe}
BACK=$H_TMP/backing
RLEN=$((2 * 1048576))     # what `read` asks for: 16 commands of the target's 128 KiB limit
WIN=$H_TMP/write.in       # what `write` sends: 8 commands of 1 MiB in flight
h_random "$BACK" $((16 * 1048576))
h_random "$WIN" $((8 * 1048576))

if [ ! -c /dev/net/tun ]; then
    h_skip "$H_TEST.toe" "no /dev/net/tun: the TOE stack is not tested"
    STACKS=${STACKS//toe/}
fi

# case_url STACK AUTH QUERY [LUN] - the target's URL as the case reaches it.
case_url() {
    local host=127.0.0.1 user='' q=$3
    [ "$1" = toe ] && host=192.0.2.1
    [ "$3" = - ] && q=
    case $2 in
        chap) user="$HT_CHAP_USER%$HT_CHAP_SECRET@" ;;
        mutual)
            user="$HT_CHAP_USER%$HT_CHAP_SECRET@"
            q="target_user=$HT_TGT_USER&target_password=$HT_TGT_SECRET${q:+&$q}" ;;
    esac
    printf 'iscsi://%s%s:%s/%s%s%s' "$user" "$host" "$PORT" "$HT_IQN" "${4:+/$4}" "${q:+?$q}"
}

# out_is_prefix - what the last command printed is a prefix of the target's data (LUN 1 at
# offset 0); with an argument: exactly that many bytes of it.
out_is_prefix() {
    local n
    n=$(h_size "$H_OUT")
    [ -z "${1:-}" ] || [ "$n" -eq "$1" ] || return 1
    [ "$n" -eq 0 ] || cmp -s -n "$n" "$H_OUT" "$BACK"
}

# Peak memory of every command (GNU time), for the cases that flood toegw.
TIMECMD=()
if [ -x /usr/bin/time ]; then
    TIMECMD=(/usr/bin/time -f %M -o "$H_TMP/rss")
else
    h_skip "$H_TEST.memory" "GNU time (/usr/bin/time) not found: peak memory is not checked"
fi
MEM_SLACK_KB=32768          # a flood may cost toegw this much more than a baseline read
declare -A BASE_RSS=()

# rss_kb - the last command's peak RSS in KiB (empty when unknown).
rss_kb() {
    grep -E '^[0-9]+$' "$H_TMP/rss" 2>/dev/null | tail -n 1
}

# run_cmd STACK CMD AUTH QUERY FLAGS... - one toegw command of a case; sets H_OUT/H_ERR/H_RC.
run_cmd() {
    local stack=$1 cmd=$2 auth=$3 query=$4 host=127.0.0.1
    shift 4
    [ "$stack" = toe ] && host=192.0.2.1
    rm -f "$H_TMP/rss"
    local run=(h_run "${TIMECMD[@]}" "$TOEGW")
    case $cmd in
        luns) "${run[@]}" luns "$(case_url "$stack" "$auth" "$query")" --stack "$stack" "$@" \
            </dev/null ;;
        read) "${run[@]}" read "$(case_url "$stack" "$auth" "$query" 1)" --length "$RLEN" \
            --stack "$stack" "$@" </dev/null ;;
        write) "${run[@]}" write "$(case_url "$stack" "$auth" "$query" 1)" --stack "$stack" \
            "$@" <"$WIN" ;;
        discover) "${run[@]}" discover "$host:$PORT" --stack "$stack" "$@" </dev/null ;;
    esac
}

# problems CMD EXPECT - why the last command's outcome is wrong (nothing when it is right).
problems() {
    local cmd=$1 expect=$2 san
    if [ "$H_RC" -eq 124 ] || [ "$H_RC" -eq 137 ]; then
        echo "did not end within ${H_CMD_TIMEOUT}s (hang)"
        return
    fi
    [ "$H_RC" -gt 128 ] && echo "killed by SIG$(kill -l $((H_RC - 128)) 2>/dev/null)"
    san=$(ht_sanitizer "$H_ERR")
    [ -n "$san" ] && echo "sanitizer report: $san"
    h_no_leak "$HT_CHAP_SECRET" "$HT_TGT_SECRET" || echo "a chap secret appears in the output"
    if [ "$cmd" = read ] && ! out_is_prefix; then
        echo "wrong bytes on stdout ($(h_size "$H_OUT") bytes printed, not the target's data)"
    fi
    if [ "$expect" = ok ]; then
        [ "$H_RC" -eq 0 ] || echo "exit $H_RC, wanted 0"
        case $cmd in
            read) [ "$H_RC" -ne 0 ] || out_is_prefix "$RLEN" ||
                echo "exit 0 with $(h_size "$H_OUT") bytes, wanted the $RLEN asked for" ;;
            luns) grep -q '^lun 1 ' "$H_OUT" || echo "lun 1 not listed" ;;
            discover) grep -qF "$HT_IQN" "$H_OUT" || echo "the target is not listed" ;;
        esac
        return
    fi
    [ "$H_RC" -eq 1 ] || echo "exit $H_RC, wanted 1"
    if ! h_stderr_oneline; then
        echo "stderr has $(grep -c '' "$H_ERR") lines, wanted one"
        # still say whether the first line names the fault: what the fix has to keep
        head -n 1 "$H_ERR" | grep -qiE -- "$expect" ||
            echo "its first line does not match /$expect/"
    elif ! grep -qiE -- "$expect" "$H_ERR"; then
        echo "the error does not match /$expect/"
    fi
}

# memory_problem STACK - the last command took far more memory than a baseline read.
memory_problem() {
    local rss base=${BASE_RSS[$1]:-}
    rss=$(rss_kb)
    [ -n "$rss" ] && [ -n "$base" ] || return 0
    h_log "peak memory ${rss} KiB, baseline read ${base} KiB" >&2
    [ "$rss" -le $((base + MEM_SLACK_KB)) ] ||
        echo "peak memory $((rss / 1024)) MiB, $(((rss - base) / 1024)) MiB above a baseline read"
}

# verdict NAME PROBLEMS - one PASS or FAIL line for a case on a stack.
verdict() {
    local name=$1 p=$2 err
    err=$(h__oneline "$(head -c 240 "$H_ERR")")
    if [ -z "$p" ]; then
        h_pass "$name"
        h_log "$name: exit $H_RC: ${err:-<no stderr>}"
    else
        h_fail "$name" "$(printf '%s' "$p" | paste -sd ';' -): exit $H_RC, stderr: ${err:-<empty>}"
    fi
}

run_case() {
    local name=$1 cmd=$2 needs=$3 auth=$4 query=$5 expect=$6 stack=$7 flags=() p terr sub
    local id="$H_TEST.$name.$stack" mark
    mark=$(grep -c '' "$HT_LOG" 2>/dev/null)
    mapfile -t flags < <(ht_flags "$needs")
    sub=$cmd
    [ "$cmd" = roundtrip ] && sub='write'
    if [ "${#flags[@]}" -gt 0 ] && ! ht_supports "$sub" "${flags[@]}"; then
        if [ "${HOSTILE_NO_FLAGS_RUN:-}" != 1 ]; then
            h_fail "$id" "toegw $sub does not take ${flags[*]} (needed to bound this case)"
            return
        fi
        flags=()
    fi
    if [ "$cmd" = roundtrip ]; then
        local before
        before=$(md5sum <"$BACK")
        run_cmd "$stack" write "$auth" "$query" "${flags[@]}"
        p=$(problems write ok)
        if [ -z "$p" ] && ! h_cmp_region "$WIN" 0 "$BACK" 0 "$(h_size "$WIN")"; then
            p="the write exited 0 but the target's data differs from what was written"
        fi
        if [ -z "$p" ]; then
            run_cmd "$stack" read "$auth" "$query" "${flags[@]}"
            p=$(problems read ok)
            BASE_RSS[$stack]=$(rss_kb)
        fi
        [ -n "$p" ] || [ "$(md5sum <"$BACK")" != "$before" ] || p="nothing was written"
        h_random "$WIN" $((8 * 1048576))  # the next round trip writes new data
    else
        run_cmd "$stack" "$cmd" "$auth" "$query" "${flags[@]}"
        p=$(problems "$cmd" "$expect")
        case ,$needs, in
            *,mem,*) p="${p:+$p$'\n'}$(memory_problem "$stack")" ;;
        esac
    fi
    # a baseline with digests proves nothing unless they were on
    if [ "$expect" = ok ] && [ -z "$p" ]; then
        case $query in *header_digest=crc32c*)
            tail -n "+$((mark + 1))" "$HT_LOG" | grep -q "'HeaderDigest': 'CRC32C'" ||
                p="header digests were not on" ;;
        esac
        case $query in *data_digest=crc32c*)
            tail -n "+$((mark + 1))" "$HT_LOG" | grep -q "'DataDigest': 'CRC32C'" ||
                p="data digests were not on" ;;
        esac
    fi
    terr=$(ht_target_error)
    [ -n "$terr" ] && p="${p:+$p$'\n'}the hostile target itself failed: $terr"
    verdict "$id" "$p"
}

ncases=0
t0=$(date +%s)
while IFS=$'\t' read -r -u 3 name cmd needs auth query expect _desc; do
    ncases=$((ncases + 1))
    ht_start "$name" "$PORT" "$BACK" || continue
    for stack in $STACKS; do
        run_case "$name" "$cmd" "$needs" "$auth" "$query" "$expect" "$stack"
    done
    ht_stop
done 3< <(ht_cases)
[ "$ncases" -gt 0 ] || h_fail "$H_TEST.cases" "no case matches HOSTILE_CASES='${HOSTILE_CASES:-}'"
h_log "$ncases cases over: $STACKS in $(($(date +%s) - t0))s"

h_end
