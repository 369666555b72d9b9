# shellcheck shell=bash
#
# hostile.sh - the scripted hostile iSCSI target (lib/hostile_target.py) for the
# test_hostile_*.sh tests: sourced after lib/harness.sh and h_begin.
#
#   ht_cases                 the target's cases, one tab-separated line each:
#                            name command needs auth query expect description
#   ht_start CASE PORT FILE  the target for CASE on 0.0.0.0:PORT serving FILE (LUN 1);
#                            sets HT_PID and HT_LOG
#   ht_stop                  stops it
#   ht_target_error          prints the target's own error (a bug of the test), if any
#   ht_flags NEEDS           the toegw timeout flags a case needs (login, nop, cmd)
#   ht_supports CMD FLAG...  toegw CMD takes these flags
#   ht_sanitizer FILE        the first line of an ASan/UBSan/LSan report in FILE, if any
#
# Environment: HOSTILE_CASES (an extended regex: run only the cases whose name matches),
# HOSTILE_STACKS (default "host toe").

HT_TARGET=$H_LIB_DIR/hostile_target.py
HT_PY=
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1; then
        HT_PY=$(command -v "$p")
        break
    fi
done
HT_PID=
HT_LOG=
HT_SEQ=0
# shellcheck disable=SC2034 # used by the tests that source this file
HT_IQN=iqn.2024-01.org.example.toegw:hostile
# The CHAP credentials the target's CHAP cases expect (test-only values, never printed).
# shellcheck disable=SC2034
{
    HT_CHAP_USER=hostile-initiator
    HT_CHAP_SECRET=initiator-secret-4821
    HT_TGT_USER=hostile-target
    HT_TGT_SECRET=target-secret-9173
}

ht_cases() {
    "$HT_PY" "$HT_TARGET" --list | {
        if [ -n "${HOSTILE_CASES:-}" ]; then
            grep -E "^(${HOSTILE_CASES})"$'\t'
        else
            cat
        fi
    }
}

ht_start() {
    h__require_netns
    HT_SEQ=$((HT_SEQ + 1))
    HT_LOG=$H_TMP/hostile.$HT_SEQ.$1.log
    local ready=$H_TMP/hostile.$HT_SEQ.ready
    "$HT_PY" "$HT_TARGET" --listen "0.0.0.0:$2" --backing "$3" --case "$1" --ready "$ready" \
        --log "$HT_LOG" >>"$HT_LOG.out" 2>&1 </dev/null &
    HT_PID=$!
    h_bg_register "$HT_PID"
    for _ in $(seq 100); do
        [ -e "$ready" ] && return 0
        kill -0 "$HT_PID" 2>/dev/null || break
        sleep 0.05
    done
    h_fail "$H_TEST.target.$1" \
        "the hostile target did not start: $(h__oneline "$(tail -c 300 "$HT_LOG.out")")"
    return 1
}

ht_stop() {
    [ -n "$HT_PID" ] && h__kill_pid "$HT_PID"
    HT_PID=
}

ht_target_error() {
    {
        grep -h 'target error' "$HT_LOG" 2>/dev/null
        grep -h 'Traceback' "$HT_LOG.out" 2>/dev/null
    } | head -n 1 | cut -c1-300
}

# Short timeouts: every case that needs one ends within seconds.
ht_flags() {
    local n out=()
    for n in ${1//,/ }; do
        case $n in
            login) out+=(--login-timeout 2) ;;
            nop) out+=(--nop-interval 1 --nop-timeout 1) ;;
            cmd) out+=(--command-timeout 2 --abort-timeout 1 --lun-reset-timeout 1) ;;
            -) ;;
        esac
    done
    [ "${#out[@]}" -eq 0 ] || printf '%s\n' "${out[@]}"
}

# getopt handles options in order: an unknown flag fails before --help exits 0.
ht_supports() {
    local cmd=$1
    shift
    "$TOEGW" "$cmd" "$@" --help >/dev/null 2>&1 </dev/null
}

ht_sanitizer() {
    local re='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|UndefinedBehaviorSanitizer'
    grep -a -m 1 -E "$re|SUMMARY: (Address|Leak|Undefined)" "$1" 2>/dev/null | cut -c1-200
}
