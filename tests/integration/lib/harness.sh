# shellcheck shell=bash
#
# harness.sh - shared helpers for toegw's integration tests (sourced, never run).
#
# Network isolation
#   Every test runs in a private network namespace it creates itself. h_begin re-executes
#   the calling script under `unshare --net` (guarded by H_NETNS_CHILD=1 and checked
#   afterwards: the namespace inode must differ from the parent's and the namespace must
#   start with only `lo`). Inside, `lo` is brought up and everything - tgtd, toegw, the
#   libiscsi tools, packet captures - talks to 127.0.0.1. Nothing is routed anywhere else:
#   the namespace has no other interface unless a test adds one (h_netns_add_veth, with
#   192.0.2.0/24 documentation addresses only). The namespace disappears when the last
#   process in it exits.
#
# Lifetime
#   h_begin also creates a temp dir on tmpfs ($H_TMP, under /dev/shm) for backing files and
#   logs, and installs an EXIT trap that stops everything the test started, by pid: tgtd
#   (targets deleted with --force, then `--op delete --mode system`, SIGKILL as a last
#   resort), background helpers (packet captures), then removes $H_TMP (kept when
#   H_KEEP=1). SIGTERM/SIGINT/SIGHUP become an exit, so the trap runs on timeouts too.
#
# Reporting
#   h_pass NAME / h_fail NAME MSG / h_skip NAME WHY print exactly `PASS name`,
#   `FAIL name: msg`, `SKIP name: why`. h_end exits 0 when every check passed, 1 when any
#   failed, 77 when nothing ran but skips. A missing tool skips the whole test loudly
#   (h_need); a missing toegw binary skips the toegw checks loudly (h_need_toegw), and a
#   binary built without the TOE skips a test that needs it (h_need_toe).
#
# Usage (a test script):
#   . "$(dirname "$0")/lib/harness.sh"
#   h_begin "$@"
#   h_tgtd_start
#   h_target_new 1 iqn.2024-01.org.example.toegw:disk1
#   h_lun_file 1 1 16M 512
#   h_need_toegw
#   h_run "$TOEGW" luns "$(h_url 1 1)" --stack host
#   ...
#   h_end
#
# Environment: TOEGW_BIN (binary under test, default $REPO/toegw), H_KEEP=1 (keep $H_TMP),
# H_CMD_TIMEOUT (seconds per command run by h_run, default 60), H_TGTD_PORTAL (default
# 127.0.0.1:3260), H_CAPTURE_DRAIN (seconds a capture keeps running after the traffic,
# default 1.5). Run one test alone with `bash tests/integration/test_io.sh`; the runner
# (tests/integration/run) prints only the result lines unless H_VERBOSE=1.

set -u

H_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$H_LIB_DIR/../../.." && pwd)
TOEGW=${TOEGW_BIN:-$REPO/toegw}
H_TEST=$(basename "$0" .sh)
H_TEST=${H_TEST#test_}

H_HOST=127.0.0.1
H_PORT=3260
H_PORTAL=$H_HOST:$H_PORT
H_CMD_TIMEOUT=${H_CMD_TIMEOUT:-60}

H_NPASS=0
H_NFAIL=0
H_NSKIP=0
H_TMP=
H_TGTD_PID=
H_TGTD_CPORT=
H_BG_PIDS=()
H_ON_INIT=()       # h_bench_cpus: the prefix that runs a command on the initiator side's CPUs
H_ON_TARGET=()     # and on the target's
H_SEQ=0
H_OUT=
H_ERR=
H_RC=0
declare -A H_IQN=()

# --- reporting ----------------------------------------------------------------------------

# One line, whatever the message contains.
h__oneline() {
    printf '%s' "$*" | tr '\n\r\t' '   ' | cut -c1-400
}

h_pass() {
    H_NPASS=$((H_NPASS + 1))
    printf 'PASS %s\n' "$1"
}

h_fail() {
    H_NFAIL=$((H_NFAIL + 1))
    printf 'FAIL %s: %s\n' "$1" "$(h__oneline "${2:-failed}")"
}

h_skip() {
    H_NSKIP=$((H_NSKIP + 1))
    printf 'SKIP %s: %s\n' "$1" "$(h__oneline "${2:-skipped}")"
}

# h_check NAME MSG CMD... - PASS NAME when CMD succeeds, else FAIL NAME: MSG.
h_check() {
    local name=$1 msg=$2
    shift 2
    if "$@"; then
        h_pass "$name"
    else
        h_fail "$name" "$msg"
    fi
}

h_log() {
    printf '# %s\n' "$*"
}

# Skip the whole test: one loud SKIP line, exit 77 (the EXIT trap still cleans up).
h_skip_all() {
    h_skip "$H_TEST" "$1"
    H_ENDED=1
    exit 77
}

h_end() {
    H_ENDED=1
    if [ "$H_NFAIL" -gt 0 ]; then
        exit 1
    elif [ "$H_NPASS" -eq 0 ] && [ "$H_NSKIP" -gt 0 ]; then
        exit 77
    elif [ "$H_NPASS" -eq 0 ]; then
        h_fail "$H_TEST" "no checks ran"
        exit 1
    fi
    exit 0
}

# For scripts that report their own way (bench/, scripts/demo): the EXIT trap then cleans up
# without calling the run incomplete.
h_done() {
    H_ENDED=1
}

# --- requirements -------------------------------------------------------------------------

h_need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            h_skip_all "required tool '$t' not found (scripts/install-deps installs it)"
    done
}

h_have_toegw() {
    [ -x "$TOEGW" ]
}

# Ends the test (after whatever checks already ran) when the binary under test is missing.
h_need_toegw() {
    if ! h_have_toegw; then
        h_skip "$H_TEST.toegw" "toegw binary not found at '$TOEGW' (run make, or set TOEGW_BIN)"
        h_end
    fi
}

# True when the binary under test has the TOE (`toegw version` says "not built in" when it
# was built with `make TOE_MK=`).
h_toe_built() {
    ! "$TOEGW" version 2>/dev/null | grep -qE '^ +toe +not built in'
}

# Ends the whole test with one loud SKIP when the binary under test has no TOE.
h_need_toe() {
    h_need_toegw
    h_toe_built ||
        h_skip_all "$TOEGW is built without the toe (make TOE_MK=); this test needs it"
}

# --- namespace and lifetime -----------------------------------------------------------------

h_begin() {
    if [ "${H_NETNS_CHILD:-}" != 1 ]; then
        local self
        self=$(readlink -f "$0")
        command -v unshare >/dev/null 2>&1 ||
            { printf 'SKIP %s: unshare not found (util-linux)\n' "$H_TEST"; exit 77; }
        command -v ip >/dev/null 2>&1 ||
            { printf 'SKIP %s: ip not found (iproute2)\n' "$H_TEST"; exit 77; }
        if ! unshare --net true 2>/dev/null; then
            printf 'SKIP %s: cannot create a network namespace (needs root/CAP_SYS_ADMIN)\n' \
                "$H_TEST"
            exit 77
        fi
        H_PARENT_NETNS=$(readlink /proc/self/ns/net)
        export H_PARENT_NETNS H_NETNS_CHILD=1
        exec unshare --net -- bash "$self" "$@"
    fi

    # From here on: inside the private namespace. Refuse to run anywhere else.
    if [ "$(readlink /proc/self/ns/net)" = "${H_PARENT_NETNS:-}" ]; then
        printf 'FAIL %s: not inside a private network namespace, refusing to run\n' "$H_TEST"
        exit 1
    fi
    local links
    links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
    if [ "$links" != "lo " ]; then
        printf 'FAIL %s: the new network namespace is not empty (%s), refusing to run\n' \
            "$H_TEST" "$links"
        exit 1
    fi
    ip link set lo up || { printf 'FAIL %s: cannot bring lo up\n' "$H_TEST"; exit 1; }

    H_TMP=$(mktemp -d /dev/shm/toegw-it.XXXXXX) ||
        { printf 'FAIL %s: cannot create a temp dir on /dev/shm\n' "$H_TEST"; exit 1; }
    H_ENDED=
    trap h__cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    trap 'exit 129' HUP
}

# Optional: a veth pair inside the namespace with documentation addresses (192.0.2.0/24).
# h_netns_add_veth NAME ADDR/PREFIX PEER PEER_ADDR/PREFIX
h_netns_add_veth() {
    h__require_netns
    case "$2$4" in
        *192.0.2.*192.0.2.*) ;;
        *) h_fail "$H_TEST.veth" "only 192.0.2.0/24 addresses may be used"; return 1 ;;
    esac
    ip link add "$1" type veth peer name "$3" &&
        ip addr add "$2" dev "$1" && ip addr add "$4" dev "$3" &&
        ip link set "$1" up && ip link set "$3" up
}

# A second host, the "SAN": a network namespace of its own (held by a process of this test)
# joined to the test's namespace by a veth pair, san0 here and san1 there, with
# documentation addresses only. Nothing routes between them unless a test says so.
# h_san_host LOCAL_ADDR/PREFIX SAN_ADDR/PREFIX - sets H_SAN_PID; h_san CMD... runs CMD there.
h_san_host() {
    h__require_netns
    h_need unshare nsenter ip
    local a
    for a in "$1" "$2"; do
        case "$a" in
            192.0.2.*/* | 198.51.100.*/* | 203.0.113.*/*) ;;
            *) h_fail "$H_TEST.san" "only documentation addresses may be used, not $a"; h_end ;;
        esac
    done
    unshare --net sleep 100000 </dev/null >/dev/null 2>&1 &
    H_SAN_PID=$!
    h_bg_register "$H_SAN_PID"
    for _ in $(seq 100); do
        [ "$(readlink "/proc/$H_SAN_PID/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] &&
            [ -n "$(readlink "/proc/$H_SAN_PID/ns/net" 2>/dev/null)" ] && break
        sleep 0.02
    done
    if ! { ip link add san0 type veth peer name san1 &&
        ip link set san1 netns "$H_SAN_PID" &&
        ip addr add "$1" dev san0 && ip link set san0 up &&
        h_san ip link set lo up && h_san ip addr add "$2" dev san1 &&
        h_san ip link set san1 up; }; then
        h_fail "$H_TEST.san" "cannot set up the SAN host's namespace and veth pair"
        h_end
    fi
}

h_san() {
    nsenter -t "$H_SAN_PID" -n "$@"
}

# Everything that listens or captures calls this first: never outside the test's namespace.
h__require_netns() {
    if [ "${H_NETNS_CHILD:-}" != 1 ] || [ -z "$H_TMP" ] ||
        [ "$(readlink /proc/self/ns/net)" = "${H_PARENT_NETNS:-}" ]; then
        printf 'FAIL %s: %s called outside the private network namespace (call h_begin first)\n' \
            "$H_TEST" "${FUNCNAME[1]}"
        exit 1
    fi
}

h_bg_register() {
    H_BG_PIDS+=("$1")
}

h__kill_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

h__cleanup() {
    local rc=$? pid
    trap - EXIT TERM INT HUP
    if [ -z "${H_ENDED:-}" ]; then
        if [ "$rc" -gt 128 ]; then
            printf 'FAIL %s: interrupted by signal %s before it finished\n' "$H_TEST" \
                "$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
        else
            printf 'FAIL %s: test aborted with status %s before it finished\n' "$H_TEST" "$rc"
        fi
        H_NFAIL=$((H_NFAIL + 1))
        rc=1
    fi
    [ -n "$H_RUN_PID" ] && h__kill_pid "$H_RUN_PID"
    for pid in "${H_BG_PIDS[@]}"; do
        h__kill_pid "$pid"
    done
    h_tgtd_stop
    if [ -n "$H_TMP" ] && [ -d "$H_TMP" ]; then
        if [ "${H_KEEP:-}" = 1 ]; then
            printf '# kept %s\n' "$H_TMP"
        else
            rm -rf -- "$H_TMP"
        fi
    fi
    exit "$rc"
}

# --- running commands ------------------------------------------------------------------------

# h_run CMD... - runs CMD under a timeout; stdout in file $H_OUT, stderr in $H_ERR, status in
# $H_RC. stdin is the caller's (redirect the call: h_run "$TOEGW" write URL <file).
# CMD runs as a background job that the shell waits for: `wait` returns as soon as a signal
# arrives (a foreground command would delay the trap until it ends), and the EXIT trap then
# stops the job; `timeout` gives CMD a process group of its own, so a timeout ends CMD's
# children as well. `<&0` keeps the caller's stdin (a background job would get /dev/null).
H_RUN_PID=
h_run() {
    H_SEQ=$((H_SEQ + 1))
    H_OUT=$H_TMP/cmd$H_SEQ.out
    H_ERR=$H_TMP/cmd$H_SEQ.err
    timeout -k 5 "$H_CMD_TIMEOUT" "$@" <&0 >"$H_OUT" 2>"$H_ERR" &
    H_RUN_PID=$!
    wait "$H_RUN_PID"
    H_RC=$?
    H_RUN_PID=
    if [ "$H_RC" -eq 124 ] || [ "$H_RC" -eq 137 ]; then
        printf '# timed out after %ss: %s\n' "$H_CMD_TIMEOUT" "$(h__oneline "$*")"
    fi
    return 0
}

# A short description of the last h_run result, for FAIL messages.
h_last() {
    local err
    err=$(head -c 300 "$H_ERR" 2>/dev/null)
    printf 'exit %s, stderr: %s' "$H_RC" "$(h__oneline "${err:-<empty>}")"
}

# True when the last command's stderr is exactly one non-empty line.
h_stderr_oneline() {
    [ -s "$H_ERR" ] && [ "$(grep -c '' "$H_ERR")" -eq 1 ]
}

# True when none of the given strings occurs in the last command's stdout or stderr.
h_no_leak() {
    local s
    for s in "$@"; do
        if grep -qF -- "$s" "$H_OUT" "$H_ERR"; then
            return 1
        fi
    done
    return 0
}

# h_expect_error NAME RCS [SECRET...] - the last command failed cleanly: its exit status is
# one of RCS ("1" or "1 2"), stderr is one line, and no SECRET appears in stdout/stderr.
h_expect_error() {
    local name=$1 rcs=$2 ok=0 r
    shift 2
    for r in $rcs; do
        [ "$H_RC" -eq "$r" ] && ok=1
    done
    if [ "$ok" -ne 1 ]; then
        h_fail "$name" "expected exit status in {$rcs}, got $(h_last)"
    elif ! h_stderr_oneline; then
        h_fail "$name" "expected a one-line error message on stderr, got $(grep -c '' "$H_ERR") lines: $(h__oneline "$(head -c 300 "$H_ERR")")"
    elif ! h_no_leak "$@"; then
        h_fail "$name" "a secret appears in the output (stderr: $(h__oneline "$(head -c 200 "$H_ERR" | sed 's/[[:alnum:]]/x/g')"))"
    else
        h_pass "$name"
        h_log "$name: $(head -c 200 "$H_ERR")"
    fi
}

# h_expect_ok NAME [MSG] - the last command exited 0.
h_expect_ok() {
    if [ "$H_RC" -eq 0 ]; then
        h_pass "$1"
        return 0
    fi
    h_fail "$1" "${2:+$2: }$(h_last)"
    return 1
}

# --- data helpers ------------------------------------------------------------------------------

# h_random FILE BYTES - BYTES of /dev/urandom into FILE.
h_random() {
    head -c "$2" /dev/urandom >"$1"
}

# h_cmp_region A OFF_A B OFF_B LEN - byte-for-byte equality of two file ranges.
h_cmp_region() {
    cmp -s -n "$5" -i "$2:$4" -- "$1" "$3"
}

# h_is_zero FILE OFF LEN - the range is all zero bytes.
h_is_zero() {
    cmp -s -n "$3" -i "$2:0" -- "$1" /dev/zero
}

h_size() {
    stat -c %s -- "$1"
}

# h_broker_latency BIN N - bench/broker-latency (BIN, built by `make bench-tools` when it is
# missing and BIN is the default) for N cycles per stack; prints its JSON object, or
# {"error": "..."} saying why there is none.
h_broker_latency() {
    local bin=$1 j
    if [ ! -x "$bin" ] && [ "$bin" = "$REPO/build/bench/broker-latency" ]; then
        make -s -C "$REPO" bench-tools >"$H_TMP/bench-tools.log" 2>&1 ||
            h_log "make bench-tools failed: $(h__oneline "$(tail -c 300 "$H_TMP/bench-tools.log")")"
    fi
    if [ ! -x "$bin" ]; then
        jq -nc --arg b "$bin" '{error: ("no " + $b + " (make bench-tools)")}'
        return
    fi
    j=$("$bin" -n "$2" 2>"$H_TMP/lat.err" | tail -n 1)
    if jq -e 'type == "object"' >/dev/null 2>&1 <<<"$j"; then
        echo "$j"
    else
        jq -nc --arg e "$(h__oneline "$(head -c 200 "$H_TMP/lat.err")")" \
            '{error: ("broker-latency failed: " + $e)}'
    fi
}

# h_proc_ticks PID - the CPU ticks (user + system, all threads; CLK_TCK a second) PID has
# used so far; 0 when it is gone.
h_proc_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# h_thread_ticks PID NAME - CPU ticks (user + system) of PID's thread NAME; "none" if it
# has no such thread.
h_thread_ticks() {
    local f
    for f in /proc/"$1"/task/*; do
        if [ "$(cat "$f/comm" 2>/dev/null)" = "$2" ]; then
            awk '{ print $14 + $15 }' "$f/stat"
            return
        fi
    done
    echo none
}

# h_machine_json [--arg NAME VALUE]... - the machine a benchmark ran on, as one JSON object:
# cores, kernel, cpu, loadavg_start, date, revision, tcp_congestion_control (h_bench_tcp_cc),
# cpu_placement (h_bench_cpus); extra --arg NAME VALUE pairs are added as fields of their own.
h_machine_json() {
    jq -nc --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
        --arg cpu "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)" \
        --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg date "$(date -u +%FT%TZ)" \
        --arg rev "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" \
        --arg cc "$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)" \
        --arg pl "${H_CPU_PLACEMENT:-none}" \
        "$@" '{cores: $cores, kernel: $kernel, cpu: $cpu, loadavg_start: $load, date: $date,
               revision: $rev, tcp_congestion_control: $cc, cpu_placement: $pl} +
              ($ARGS.named | del(.cores, .kernel, .cpu, .load, .date, .rev, .cc, .pl))'
}

# h_bench_tcp_cc - a benchmark's namespace uses BENCH_TCP_CC as its TCP congestion control:
# default cubic (the kernel's own default), "host" keeps the one the namespace took from the
# host. A host that sets bbr paces every kernel socket, loopback included, to its estimate of
# the path: on the 2-core machine of docs/performance.md kernel loopback then moved 2.8 GB/s
# instead of 7.9, and tgtd's Data-In a third slower, whoever read it. Fails when the kernel
# has no such algorithm.
h_bench_tcp_cc() {
    local cc=${BENCH_TCP_CC:-cubic}
    [ "$cc" = host ] && return 0
    if ! { echo "$cc" >/proc/sys/net/ipv4/tcp_congestion_control; } 2>/dev/null; then
        echo "the kernel has no TCP congestion control \"$cc\" (BENCH_TCP_CC; it offers:" \
            "$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null))" >&2
        return 1
    fi
}

# h_bench_cpus - BENCH_CPUS places a benchmark's programs as two hosts would be placed:
# "split" (the default with 2 CPUs or more): the target (tgtd, h_tgtd_start) on the upper
# half of the CPUs this shell may use, the initiator side (every contender started with
# "${H_ON_INIT[@]}" in front: iscsi-perf, qemu-img, qemu-nbd, toegw with all its threads,
# the TOE's firmware among them) on the lower half; "none": anywhere, as the scheduler
# places them. Left to the scheduler on a small machine, a target and an initiator that
# share every CPU land on them differently from run to run, and a request's hand-offs
# (target to TOE firmware to storage loop) cross CPUs in some runs and not in others.
# Sets H_ON_INIT and H_ON_TARGET (command prefixes, empty: not pinned) and H_CPU_PLACEMENT
# (h_machine_json records it).
h_bench_cpus() {
    local mode=${BENCH_CPUS:-split} list part parts=() a b cpus=() half init target
    H_ON_INIT=() H_ON_TARGET=() H_CPU_PLACEMENT=none
    case $mode in
        none) return 0 ;;
        split) ;;
        *) echo "BENCH_CPUS must be split or none, not \"$mode\"" >&2
           return 1 ;;
    esac
    h_need taskset
    list=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
    IFS=, read -ra parts <<<"$list"
    for part in "${parts[@]}"; do
        a=${part%-*} b=${part#*-}
        while [ "$a" -le "$b" ]; do cpus+=("$a"); a=$((a + 1)); done
    done
    if [ "${#cpus[@]}" -lt 2 ]; then
        echo "BENCH_CPUS=split needs 2 CPUs, this shell may use ${#cpus[@]}: not pinned" >&2
        return 0
    fi
    half=$((${#cpus[@]} / 2))
    init=$(IFS=,; echo "${cpus[*]:0:$half}")
    target=$(IFS=,; echo "${cpus[*]:$half}")
    # shellcheck disable=SC2034 # H_ON_INIT: used by the scripts in bench/
    H_ON_INIT=(taskset -c "$init") H_ON_TARGET=(taskset -c "$target")
    H_CPU_PLACEMENT="initiator on CPUs $init, target on CPUs $target"
}

# h_bench_setup - what every benchmark sets after h_begin: its namespace's TCP congestion
# control (h_bench_tcp_cc) and where its programs run (h_bench_cpus). Fails with either.
h_bench_setup() {
    h_bench_tcp_cc && h_bench_cpus
}

# h_json FILTER FILE - jq -e FILTER on FILE (raw output); fails when jq is missing.
h_json() {
    command -v jq >/dev/null 2>&1 || return 3
    jq -er "$1" <"$2" 2>/dev/null
}

# h_openapi_check PREFIX DOC LOG - PREFIX.openapi_lint: DOC (the API's OpenAPI document as
# served) is a valid OpenAPI 3.1 document whose schemas compile; PREFIX.openapi_responses:
# every answer in LOG (lines of method, target, status, body file, header file, separated
# by tabs) is one DOC describes. Both run tests/e2e/openapi-check.js, which needs node and
# the npm packages of package.json (npm ci): without them both FAIL.
h_openapi_check() {
    local prefix=$1 doc=$2 log=$3 rc out=$H_TMP/openapi-check.$1
    if ! command -v node >/dev/null 2>&1 || [ ! -d "$REPO/node_modules/ajv" ] ||
        [ ! -d "$REPO/node_modules/@apidevtools/swagger-parser" ]; then
        h_fail "$prefix.openapi_lint" "node or the npm packages are missing (npm ci in $REPO)"
        h_fail "$prefix.openapi_responses" "node or the npm packages are missing (npm ci in $REPO)"
        return
    fi
    rc=0
    node "$REPO/tests/e2e/openapi-check.js" lint "$doc" >"$out.lint" 2>&1 || rc=$?
    h_check "$prefix.openapi_lint" "$(grep -m 3 -v '^openapi-check' "$out.lint")" test "$rc" -eq 0
    rc=0
    node "$REPO/tests/e2e/openapi-check.js" responses "$doc" "$log" >"$out.responses" 2>&1 ||
        rc=$?
    h_log "$(tail -n 1 "$out.responses")"
    h_check "$prefix.openapi_responses" "$(grep -m 3 -v '^openapi-check' "$out.responses")" \
        test "$rc" -eq 0
}

# --- tgtd ---------------------------------------------------------------------------------------

h_tgtadm() {
    timeout -k 2 20 tgtadm -C "$H_TGTD_CPORT" --lld iscsi "$@"
}

h__listening() {
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# h_tgtd_start - tgtd in the namespace, listening on $H_TGTD_PORTAL (default $H_PORTAL,
# 127.0.0.1:3260), on its own control port (retried when another tgtd holds that port).
# H_TGTD_ON_SAN=1: tgtd runs on the SAN host (h_san_host) instead.
h_tgtd_start() {
    h__require_netns
    h_need tgtd tgtadm ss timeout
    local portal=${H_TGTD_PORTAL:-$H_PORTAL} try ns=()
    [ "${H_TGTD_ON_SAN:-}" = 1 ] && ns=(nsenter -t "$H_SAN_PID" -n)
    ns+=("${H_ON_TARGET[@]}")
    for try in 1 2 3 4 5 6 7 8; do
        H_TGTD_CPORT=$(( (($$ * 31 + try * 7919 + RANDOM) % 12000) + 20000 ))
        "${ns[@]}" tgtd -f -C "$H_TGTD_CPORT" --iscsi "portal=$portal" \
            >"$H_TMP/tgtd.log" 2>&1 </dev/null &
        H_TGTD_PID=$!
        for _ in $(seq 100); do
            kill -0 "$H_TGTD_PID" 2>/dev/null || break
            if "${ns[@]}" bash -c "[ -n \"\$(ss -Hltn 'sport = :${portal##*:}' 2>/dev/null)\" ]" &&
                tgtadm -C "$H_TGTD_CPORT" --op show --mode target >/dev/null 2>&1; then
                h_log "tgtd pid $H_TGTD_PID control port $H_TGTD_CPORT portal $portal"
                return 0
            fi
            sleep 0.05
        done
        h__kill_pid "$H_TGTD_PID"
        H_TGTD_PID=
    done
    h_fail "$H_TEST.tgtd" "tgtd did not start: $(h__oneline "$(tail -c 300 "$H_TMP/tgtd.log")")"
    h_end
}

h_tgtd_stop() {
    [ -n "$H_TGTD_PID" ] || return 0
    local tid
    if kill -0 "$H_TGTD_PID" 2>/dev/null; then
        for tid in $(timeout 5 tgtadm -C "$H_TGTD_CPORT" --lld iscsi --op show --mode target \
                2>/dev/null | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
            timeout 5 tgtadm -C "$H_TGTD_CPORT" --lld iscsi --op delete --mode target \
                --tid "$tid" --force >/dev/null 2>&1
        done
        timeout 5 tgtadm -C "$H_TGTD_CPORT" --op delete --mode system >/dev/null 2>&1
        for _ in $(seq 30); do
            kill -0 "$H_TGTD_PID" 2>/dev/null || break
            sleep 0.05
        done
    fi
    h__kill_pid "$H_TGTD_PID"
    H_TGTD_PID=
    # Our tgtd held the lock on this control port, so its socket files are ours to remove.
    rm -f "/var/run/tgtd/socket.$H_TGTD_CPORT" "/var/run/tgtd/socket.$H_TGTD_CPORT.lock"
}

# h_target_new TID IQN - a target that accepts every initiator.
h_target_new() {
    if ! { h_tgtadm --op new --mode target --tid "$1" -T "$2" &&
        h_tgtadm --op bind --mode target --tid "$1" -I ALL; }; then
        h_fail "$H_TEST.setup" "cannot create target $1 ($2)"
        h_end
    fi
    H_IQN[$1]=$2
}

# h_target_param TID NAME VALUE - a login key of the target (InitialR2T, ImmediateData,
# FirstBurstLength, MaxBurstLength, MaxRecvDataSegmentLength, HeaderDigest, DataDigest...).
h_target_param() {
    h_tgtadm --op update --mode target --tid "$1" -n "$2" -v "$3" ||
        { h_fail "$H_TEST.setup" "cannot set $2=$3 on target $1"; h_end; }
}

h_lun_path() {
    printf '%s/t%s-lun%s.img' "$H_TMP" "$1" "$2"
}

# h_lun_file TID LUN SIZE [BLOCKSIZE [PARAMS]] - a LUN backed by a sparse file on tmpfs
# (LUN byte 0 = file byte 0). PARAMS e.g. vendor_id=TOEGW,product_id=DISK4K.
h_lun_file() {
    local path bs=${4:-512}
    path=$(h_lun_path "$1" "$2")
    if ! { truncate -s "$3" "$path" &&
        h_tgtadm --op new --mode logicalunit --tid "$1" --lun "$2" -b "$path" \
            --blocksize "$bs"; }; then
        h_fail "$H_TEST.setup" "cannot create LUN $2 on target $1"
        h_end
    fi
    if [ -n "${5:-}" ]; then
        h_tgtadm --op update --mode logicalunit --tid "$1" --lun "$2" --params "$5" ||
            { h_fail "$H_TEST.setup" "cannot set params on LUN $2 of target $1"; h_end; }
    fi
}

# h_lun_null TID LUN - a LUN with tgtd's null backing store (no data kept; for benchmarks).
h_lun_null() {
    h_tgtadm --op new --mode logicalunit --tid "$1" --lun "$2" -b "null$1-$2" --bstype null ||
        { h_fail "$H_TEST.setup" "cannot create null LUN $2 on target $1"; h_end; }
}

# h_chap_in TID USER SECRET - one-way CHAP: the initiator must authenticate as USER.
h_chap_in() {
    if ! { h_tgtadm --op new --mode account --user "$2" --password "$3" >/dev/null &&
        h_tgtadm --op bind --mode account --tid "$1" --user "$2"; }; then
        h_fail "$H_TEST.setup" "cannot bind CHAP account to target $1"
        h_end
    fi
}

# h_chap_out TID USER SECRET - mutual CHAP: the target authenticates itself as USER.
h_chap_out() {
    if ! { h_tgtadm --op new --mode account --user "$2" --password "$3" >/dev/null &&
        h_tgtadm --op bind --mode account --tid "$1" --user "$2" --outgoing; }; then
        h_fail "$H_TEST.setup" "cannot bind outgoing CHAP account to target $1"
        h_end
    fi
}

# h_url TID LUN [QUERY [USERINFO]] - iscsi://[USERINFO@]127.0.0.1:3260/IQN/LUN[?QUERY]
h_url() {
    local q=${3:-} u=${4:-}
    printf 'iscsi://%s%s/%s/%s%s' "${u:+$u@}" "$H_PORTAL" "${H_IQN[$1]}" "$2" "${q:+?$q}"
}

# h_target_url TID [QUERY [USERINFO]] - the target without a LUN, for `toegw luns`.
h_target_url() {
    local q=${2:-} u=${3:-}
    printf 'iscsi://%s%s/%s%s' "${u:+$u@}" "$H_PORTAL" "${H_IQN[$1]}" "${q:+?$q}"
}

# --- packet capture (inside the namespace, on lo) -------------------------------------------------

H_CAP_PID=

# h_capture_start FILE - capture the iSCSI port on lo into FILE (pcapng).
h_capture_start() {
    h__require_netns
    dumpcap -q -i lo -f "tcp port $H_PORT" -B 64 -w "$1" >"$1.log" 2>&1 </dev/null &
    H_CAP_PID=$!
    h_bg_register "$H_CAP_PID"
    for _ in $(seq 100); do
        grep -q 'Capturing on' "$1.log" 2>/dev/null && { sleep 0.2; return 0; }
        kill -0 "$H_CAP_PID" 2>/dev/null || break
        sleep 0.05
    done
    h_log "dumpcap did not start: $(h__oneline "$(cat "$1.log")")"
    return 1
}

# dumpcap reads the kernel's packet ring in blocks that are handed over only when full or
# after a timeout; stopping it sooner loses the tail of the capture (measured: the last
# ~100 KB of a 4 MiB write with a 0.2 s wait). Hence the wait before stopping it.
h_capture_stop() {
    [ -n "$H_CAP_PID" ] || return 0
    sleep "${H_CAPTURE_DRAIN:-1.5}"
    h__kill_pid "$H_CAP_PID"
    H_CAP_PID=
}

# h_capture_complete FILE - the capture lost nothing: dumpcap counted no drops and tshark
# sees no TCP segment missing. A busy machine can overflow the capture ring even on lo; a
# test should then repeat the traffic rather than judge it from a partial capture.
h_capture_complete() {
    local stats lost
    # "Packets received/dropped on interface 'Loopback: lo': 1479/0 (pcap:0/dumpcap:0/...)"
    stats=$(sed -n 's/.*received\/dropped on interface.*: \([0-9]*\)\/\([0-9]*\) (.*/\2/p' \
        "$1.log" 2>/dev/null | head -n 1)
    if [ "${stats:-x}" != 0 ]; then
        h_log "capture $1: dumpcap dropped '${stats:-?}' packets"
        return 1
    fi
    lost=$(tshark -r "$1" -Y 'tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment' \
        -T fields -e frame.number 2>/dev/null | head -n 1)
    if [ -n "$lost" ]; then
        h_log "capture $1: TCP segments missing before frame $lost"
        return 1
    fi
    return 0
}

# h_pdus FILE - one line per iSCSI PDU in a capture, "-" for an absent field:
#   iport dir opcode dsl bufferoffset desired edtl itt ttt
# iport = the initiator's TCP port (one per connection), dir = i (initiator to target) or
# t (target to initiator), dsl = DataSegmentLength, desired = an R2T's Desired Data Transfer
# Length, edtl = a SCSI command's Expected Data Transfer Length, itt/ttt = initiator/target
# transfer tags. Opcodes: 0x01 SCSI command, 0x05 Data-Out, 0x21 SCSI response, 0x25
# Data-In, 0x31 R2T, 0x03/0x23 login request/response, 0x06/0x26 logout.
h_pdus() {
    tshark -r "$1" -Y iscsi -T json --no-duplicate-keys 2>/dev/null | jq -r --arg tp "$H_PORT" '
        .[]._source.layers as $l
        | ($l.tcp | if type == "array" then .[0] else . end) as $tcp
        | (if $tcp["tcp.srcport"] == $tp then [$tcp["tcp.dstport"], "t"]
           else [$tcp["tcp.srcport"], "i"] end) as $c
        | $l.iscsi | (if type == "array" then .[] else . end)
        | $c + [.["iscsi.opcode"], (.["iscsi.datasegmentlength"] // "-"),
           (.["iscsi.bufferOffset"] // "-"), (.["iscsi.desireddatalength"] // "-"),
           (.["iscsi.scsicommand.expecteddatatransferlength"] // "-"),
           (.["iscsi.initiatortasktag"] // "-"), (.["iscsi.targettransfertag"] // "-")]
        | map(tostring) | join(" ")'
}

# h_write_sessions PDUS_FILE - the initiator ports of the connections that wrote data, in
# the order they first appear.
h_write_sessions() {
    awk '$2 == "i" && (($3 == "0x01" && $4 > 0) || $3 == "0x05") && !seen[$1]++ { print $1 }' \
        "$1"
}

# h_write_stats PDUS_FILE [IPORT] - the write path seen in h_pdus output (of one connection
# when IPORT is given), one line of key=value:
#   cmds      SCSI write commands (tasks that carried data-out or got an R2T)
#   total     data bytes the initiator sent (immediate + Data-Out)
#   imm       immediate data bytes (in SCSI command PDUs)
#   unsol     unsolicited Data-Out bytes (TTT 0xffffffff)
#   sol       solicited Data-Out bytes (answering an R2T)
#   r2t       R2T PDUs from the target
#   maxseg    largest data segment the initiator sent
#   maxunsol  largest immediate + unsolicited amount of one command
#   logout    logout responses seen (1 when the capture holds the whole session)
h_write_stats() {
    awk -v port="${2:-}" '
        function seg(n) { if (n + 0 > maxseg) maxseg = n + 0 }
        port != "" && $1 != port { next }
        $2 == "i" && $3 == "0x01" && $4 > 0 { w[$8] = 1; imm[$8] += $4; imm_t += $4; seg($4) }
        $2 == "i" && $3 == "0x05" {
            w[$8] = 1; seg($4)
            if ($9 == "0xffffffff") { unsol[$8] += $4; unsol_t += $4 } else sol_t += $4
        }
        $2 == "t" && $3 == "0x31" { w[$8] = 1; r2t++ }
        $2 == "t" && $3 == "0x26" { logout++ }
        END {
            for (t in w) { cmds++; u = imm[t] + unsol[t]; if (u > maxunsol) maxunsol = u }
            printf "cmds=%d total=%d imm=%d unsol=%d sol=%d r2t=%d maxseg=%d maxunsol=%d logout=%d\n",
                cmds, imm_t + unsol_t + sol_t, imm_t, unsol_t, sol_t, r2t, maxseg, maxunsol,
                logout
        }' "$1"
}

# h_stat KEY STATS_LINE - one value out of h_write_stats output.
h_stat() {
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# h_login_keys FILE - the text keys of the login responses (from the target).
h_login_keys() {
    tshark -r "$1" -Y "iscsi.opcode == 0x23 && tcp.srcport == $H_PORT" -T fields \
        -e iscsi.keyvalue 2>/dev/null | tr ',' '\n'
}
