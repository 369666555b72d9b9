#!/usr/bin/env bash
#
# test_hostile_serve.sh - toegw serve with one session to a real tgtd and one to a target
# that misbehaves on purpose (lib/hostile_target.py), over both stacks.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 and toegw serve, with a session to
# tgtd (on the TOE when there is one) whose NBD export a background client writes and reads
# back byte for byte all the time (rounds of 1 MiB of new random data). For each case the
# hostile target (0.0.0.0:3261) gets a session of its own, on the host stack (127.0.0.1) and
# then on the TOE (192.0.2.1), and by the case's kind:
#   refuse  the fault is met during login or the LUN probe: POST /api/v1/sessions answers an
#           error whose detail names the fault (within 30 s);
#   fail    POST succeeds; NBD I/O to the hostile volume meets the fault; the session turns
#           `failed` or `recovering` with an error naming the fault (within HOSTILE_POLL s,
#           default 10), and the NBD client never gets wrong data as success;
#   ioerr   POST succeeds; the target fails every write: every NBD write ends in an error;
#   ok      the target stays within the protocol: 32 parallel 1 MiB NBD reads, byte-exact.
# Then DELETE of the hostile session answers 204 within 20 s, the hostile client's requests
# end (with an error) soon after, toegw serve is alive and has no ASan/UBSan report in its
# log, and the tgtd client made progress during the case with no error or mismatch.
# Cases that only end through a timeout start toegw serve with short ones
# (--login-timeout, --nop-interval/--nop-timeout, --command-timeout/--abort-timeout/
# --lun-reset-timeout, --replacement-timeout); without them they fail without running.
#
# Environment: HOSTILE_CASES (regex of case names), HOSTILE_STACKS ("host toe"),
# HOSTILE_POLL, and the harness's TOEGW_BIN, H_KEEP, H_VERBOSE.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl ip
# shellcheck source-path=SCRIPTDIR source=lib/hostile.sh
. "$(dirname "$0")/lib/hostile.sh"
[ -n "$HT_PY" ] || h_skip_all "python3 not found (scripts/install-deps installs it)"
h_need_toe
# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"
PY=$(nbd_python) ||
    h_skip_all "python3 bindings of libnbd (Debian python3-libnbd) not installed"

HPORT=3261
POLL=${HOSTILE_POLL:-10}
STACKS=${HOSTILE_STACKS:-host toe}
MIB=1048576
HBACK=$H_TMP/hostile.backing
h_random "$HBACK" $((16 * MIB))

# name;kind;io;needs;digest;regex - the serve cases (names are the target's cases)
SCASES=(
    "rsp-check-before-dataout;ioerr;write;-;-;-"
    "reject-write-immediate;ioerr;write;-;-;-"
    "reportluns-overlap;refuse;-;-;-;data-in|overlap"
    "datain-repeat;fail;read;-;-;data-in|repeat|order"
    "datain-gap;fail;read;-;-;data-in|gap|order"
    "async-drop;fail;read;-;-;async|drop"
    "async-logout;ok;read;-;-;-"
    "nop-only;fail;read;cmd,repl;-;timed out|timeout"
    "maxcmdsn-frozen;fail;read32;cmd,repl;-;timed out|timeout|window|cmdsn"
    "datain-never-final;fail;read;cmd,repl;-;timed out|timeout"
    "nop-flood;fail;read;cmd,repl;-;timed out|timeout|flood|nop"
    "silent-mid-command;fail;read;nop,repl;-;timed out|timeout|stopped answering"
    "digest-header-corrupt;refuse;-;-;crc32c;header digest mismatch"
    "keys-digest-downgrade;refuse;-;-;crc32c;digest"
    "capacity-2e56;refuse;-;-;-;capacity|too large|overflow"
    "blocksize-3;refuse;-;-;-;block size"
    "reportluns-huge;refuse;-;-;-;report luns.*(length|list|malformed|large|bytes)"
    "limits-64k;ok;read32;-;-;-"
)

# --- helpers written out for python3-libnbd ------------------------------------------------

cat >"$H_TMP/verify.py" <<'PY'
"""verify URI LOG STOP - rounds of 1 MiB of new random data written at a random offset of
the first 32 MiB and read back until the file STOP exists; each request bounded by 30 s.
One line per round in LOG: "ok" or "bad WHY"."""
import os
import random
import sys
import time

import nbd

uri, log, stop = sys.argv[1:4]
h = nbd.NBD()
h.connect_uri(uri)
MIB = 1 << 20


def wait(cookie, what):
    deadline = time.time() + 30
    while not h.aio_command_completed(cookie):
        if time.time() > deadline:
            raise TimeoutError("%s took more than 30 s" % what)
        h.poll(100)


with open(log, "a", buffering=1) as f:
    while not os.path.exists(stop):
        off = random.randrange(32) * MIB
        data = os.urandom(MIB)
        try:
            wait(h.aio_pwrite(data, off), "write")
            buf = nbd.Buffer(MIB)
            wait(h.aio_pread(buf, off), "read")
            f.write("ok\n" if buf.to_bytearray() == data else "bad read back differs\n")
            time.sleep(0.02)  # a steady client, not a load generator
        except (nbd.Error, TimeoutError) as e:
            f.write("bad %s\n" % e)
            time.sleep(0.5)
            try:
                h = nbd.NBD()
                h.connect_uri(uri)
            except nbd.Error:
                pass
PY

cat >"$H_TMP/hio.py" <<'PY'
"""hio URI MODE N BACKING SECONDS - N parallel 1 MiB requests (MODE read or write) at
offsets 0, 1, ... MiB of the hostile volume; reads are compared with BACKING. Prints one
line: "result ok=A wrong=B error=C pending=D seconds=S" (pending: not done in SECONDS)."""
import os
import sys
import time

import nbd

uri, mode, n, backing, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], \
    float(sys.argv[5])
MIB = 1 << 20
t0 = time.time()
res = dict(ok=0, wrong=0, error=0, pending=0)
try:
    h = nbd.NBD()
    h.connect_uri(uri)
except nbd.Error as e:
    print("result ok=0 wrong=0 error=%d pending=0 seconds=0 (connect: %s)" % (n, e))
    sys.stdout.flush()
    os._exit(0)
with open(backing, "rb") as f:
    want = [f.read(MIB) for _ in range(n)]
ops = []
for i in range(n):
    try:
        if mode == "read":
            buf = nbd.Buffer(MIB)
            ops.append((i, buf, h.aio_pread(buf, i * MIB)))
        else:
            ops.append((i, None, h.aio_pwrite(os.urandom(MIB), i * MIB)))
    except nbd.Error:
        res["error"] += 1
while ops and time.time() - t0 < secs:
    left = []
    for i, buf, cookie in ops:
        try:
            if not h.aio_command_completed(cookie):
                left.append((i, buf, cookie))
                continue
            if buf is not None and buf.to_bytearray() != want[i]:
                res["wrong"] += 1
            else:
                res["ok"] += 1
        except nbd.Error:
            res["error"] += 1
    ops = left
    if ops:
        try:
            h.poll(100)
        except nbd.Error:
            res["error"] += len(ops)
            ops = []
res["pending"] = len(ops)
print("result ok=%(ok)d wrong=%(wrong)d error=%(error)d pending=%(pending)d" % res +
      " seconds=%.1f" % (time.time() - t0))
sys.stdout.flush()
os._exit(0)
PY

# --- toegw serve, the tgtd session and its client -------------------------------------------

H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:hostile-serve.good
h_lun_file 1 1 64M 512

# serve_flags GROUP - the short timeouts of one group.
serve_flags() {
    case $1 in
        login) echo --login-timeout 2 ;;
        nop) echo --nop-interval 1 --nop-timeout 1 ;;
        cmd) echo --command-timeout 2 --abort-timeout 1 --lun-reset-timeout 1 ;;
        repl) echo --replacement-timeout 8 ;;
    esac
}
declare -A HAVE=()
SFLAGS=()
for g in login nop cmd repl; do
    read -r -a f <<<"$(serve_flags "$g")"
    if ht_supports serve "${f[@]}"; then
        HAVE[$g]=1
        SFLAGS+=("${f[@]}")
    fi
done
taken="${!HAVE[*]}"
h_log "serve timeout flags taken: ${taken:-none}"

VSTOP=$H_TMP/verify.stop
VLOG=$H_TMP/verify.log
VPID=
GOOD_STACK=host
GOOD_PORTAL=127.0.0.1

# start_all - toegw serve (fresh state), the tgtd session, its client.
start_all() {
    rm -rf "$H_TMP/state"
    nbd_serve "${SFLAGS[@]}"
    if [ -n "$HAVE_TOE" ]; then
        GOOD_STACK=toe
        GOOD_PORTAL=192.0.2.1
    else
        STACKS=${STACKS//toe/}
    fi
    H_IQN[1]=iqn.2024-01.org.example.toegw:hostile-serve.good
    nbd_login good 1 "$GOOD_PORTAL" "$GOOD_STACK" || h_end
    rm -f "$VSTOP"
    "$PY" "$H_TMP/verify.py" "${URI[good.1]}" "$VLOG" "$VSTOP" \
        >>"$H_TMP/verify.out" 2>&1 </dev/null &
    VPID=$!
    h_bg_register "$VPID"
}

stop_all() {
    touch "$VSTOP"
    [ -n "$VPID" ] && h__kill_pid "$VPID"
    VPID=
    [ -n "$SERVE_PID" ] && h__kill_pid "$SERVE_PID"
    SERVE_PID=
}

vcount() {
    grep -c "^$1" "$VLOG" 2>/dev/null || true
}

san_count() {
    grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$H_TMP/serve.log" \
        2>/dev/null || true
}

start_all
[ -n "$HAVE_TOE" ] || h_skip "$H_TEST.toe" "no /dev/net/tun: the TOE stack is not tested"

# session_field ID FILTER - a field of GET /api/v1/sessions/ID ("" when there is no answer).
session_field() {
    [ "$(api GET "/api/v1/sessions/$1")" = 200 ] || return 0
    jq -r "$2 // \"\"" "$H_TMP/api.json" 2>/dev/null
}

# run_scase NAME KIND IO NEEDS DIGEST REGEX STACK - one case; prints the problems found (its
# log lines go to stderr). Touches $DIRTY when toegw serve must be restarted afterwards.
DIRTY=$H_TMP/dirty
run_scase() {
    local name=$1 kind=$2 io=$3 needs=$4 dig=$5 re=$6 stack=$7
    local portal=127.0.0.1:$HPORT body code sid='' vol uri hio_pid='' hout st err t0 n g
    [ "$stack" = toe ] && portal=192.0.2.1:$HPORT
    for g in ${needs//,/ }; do
        if [ "$g" != - ] && [ -z "${HAVE[$g]:-}" ]; then
            echo "toegw serve does not take $(serve_flags "$g") (needed to bound this case)"
            return
        fi
    done
    body=$(jq -nc --arg p "$portal" --arg t "$HT_IQN" --arg s "$stack" --arg d "$dig" \
        '{portal: $p, target: $t, stack: $s} + (if $d == "-" then {} else {header_digest: $d} end)')
    t0=$(date +%s)
    rm -f "$H_TMP/api.json"
    code=$(api POST /api/v1/sessions "$body")
    err=$(jq -r '.detail // empty' "$H_TMP/api.json" 2>/dev/null)
    if [ "$code" = 201 ]; then
        sid=$(jq -r '.id' "$H_TMP/api.json")
        vol=$(jq -r '.luns[0].volume // empty' "$H_TMP/api.json")
    fi
    if [ "$kind" = refuse ]; then
        if [ "$code" = 201 ]; then
            echo "POST /sessions logged in (state $(session_field "$sid" .state)), wanted a" \
                "refusal naming the fault"
        elif [ "$code" = 000 ]; then
            echo "POST /sessions got no answer (curl gives up after 30 s)"
            touch "$DIRTY"  # the half-made session would hold the target
        elif ! grep -qiE -- "$re" <<<"$err"; then
            echo "POST /sessions answered $code: \"$err\", which does not match /$re/"
        fi
    elif [ "$code" != 201 ] || [ -z "$vol" ]; then
        echo "POST /sessions answered $code: \"$err\" (the fault is past the login)"
        [ "$code" = 000 ] && touch "$DIRTY"
    else
        [ "$(api GET "/api/v1/volumes/$vol")" = 200 ] && uri=$(jq -r '.export' "$H_TMP/api.json")
        hout=$H_TMP/hio.$name.$stack.out
        case $io in
            read) n=1 ;;
            write) n=8 ;;
            read32) n=16 ;; # the hostile LUN holds 16 MiB
        esac
        "$PY" "$H_TMP/hio.py" "$uri" "${io%32}" "$n" "$HBACK" $((POLL + 25)) \
            >"$hout" 2>&1 </dev/null &
        hio_pid=$!
        h_bg_register "$hio_pid"
        if [ "$kind" = fail ]; then
            local deadline=$(($(date +%s) + POLL)) serr=
            st=
            while [ "$(date +%s)" -lt "$deadline" ]; do
                if [ "$(api GET "/api/v1/sessions/$sid")" = 200 ]; then
                    st=$(jq -r '.state // ""' "$H_TMP/api.json" 2>/dev/null)
                    serr=$(jq -r '.error // ""' "$H_TMP/api.json" 2>/dev/null)
                fi
                case $st in
                    failed | recovering) grep -qiE -- "$re" <<<"$serr" && break ;;
                esac
                sleep 0.1
            done
            h_log "$name.$stack: session $st: $serr" >&2
            case $st in
                failed | recovering)
                    grep -qiE -- "$re" <<<"$serr" ||
                        echo "the session is $st with error \"$serr\", not matching /$re/" ;;
                *) echo "the session is still '$st' (error \"$serr\") after ${POLL}s" ;;
            esac
        else
            for _ in $(seq $((POLL + 10))); do
                kill -0 "$hio_pid" 2>/dev/null || break
                sleep 1
            done
        fi
    fi
    if [ -n "$sid" ]; then
        local d0 dcode dms
        d0=$(date +%s%N)
        dcode=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' -X DELETE \
            -H "Authorization: Bearer $TOKEN" "$API/api/v1/sessions/$sid" 2>/dev/null)
        dms=$((($(date +%s%N) - d0) / 1000000))
        h_log "$name.$stack: DELETE $dcode in ${dms} ms" >&2
        if [ "$dcode" != 204 ]; then
            echo "DELETE of the session answered ${dcode:-nothing} after ${dms} ms, wanted 204"
            touch "$DIRTY"
        elif [ "$dms" -ge 20000 ]; then
            echo "DELETE of the session took ${dms} ms"
        fi
    fi
    if [ -n "$hio_pid" ]; then
        for _ in $(seq 100); do
            kill -0 "$hio_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$hio_pid" 2>/dev/null; then
            echo "the hostile volume's NBD client still waits 10 s after the end of its session"
            h__kill_pid "$hio_pid"
        fi
        local r
        r=$(grep '^result' "$hout" | head -n 1)
        h_log "$name.$stack: $r" >&2
        case $kind in
            ok) grep -q "ok=$n wrong=0 error=0 pending=0" <<<"$r" ||
                echo "NBD reads of a correct target: ${r:-no result}" ;;
            ioerr) grep -qE "ok=0 wrong=0 error=$n pending=0" <<<"$r" ||
                echo "NBD writes that the target failed: ${r:-no result} (wanted error=$n)" ;;
            fail) grep -q 'wrong=0' <<<"$r" ||
                echo "NBD read returned wrong data as success: ${r:-no result}" ;;
        esac
    fi
    h_log "$name.$stack: POST $code ${err:+($err) }, case took $(($(date +%s) - t0))s" >&2
}

ncases=0
T0=$(date +%s)
for line in "${SCASES[@]}"; do
    IFS=';' read -r name kind io needs dig re <<<"$line"
    if [ -n "${HOSTILE_CASES:-}" ] && ! grep -qE "^(${HOSTILE_CASES})\$" <<<"$name"; then
        continue
    fi
    ncases=$((ncases + 1))
    ht_start "$name" "$HPORT" "$HBACK" || continue
    for stack in $STACKS; do
        id="$H_TEST.$name.$stack"
        rm -f "$DIRTY"
        c0=$(date +%s)
        s0=$(san_count)
        v_ok=$(vcount ok)
        v_bad=$(vcount bad)
        p=$(run_scase "$name" "$kind" "$io" "$needs" "$dig" "$re" "$stack")
        if ! serve_alive; then
            why=$(ht_sanitizer "$H_TMP/serve.log")
            [ -n "$why" ] || why=$(tail -n 1 "$H_TMP/serve.log" | cut -c1-200)
            p="${p:+$p$'\n'}toegw serve died: $why"
            touch "$DIRTY"
        elif [ "$(san_count)" -gt "$s0" ]; then
            p="${p:+$p$'\n'}sanitizer report in serve's log: $(ht_sanitizer "$H_TMP/serve.log")"
        fi
        # the tgtd session's client keeps verifying rounds (it may take a few seconds to
        # notice a restart)
        for _ in $(seq 100); do
            [ "$(vcount ok)" -gt "$v_ok" ] && break
            sleep 0.1
        done
        [ "$(vcount ok)" -gt "$v_ok" ] ||
            p="${p:+$p$'\n'}the tgtd session's client verified nothing for 10 s after the case"
        [ "$(vcount bad)" -eq "$v_bad" ] ||
            p="${p:+$p$'\n'}the tgtd session's client failed: $(grep '^bad' "$VLOG" | tail -n 1)"
        terr=$(ht_target_error)
        [ -n "$terr" ] && p="${p:+$p$'\n'}the hostile target itself failed: $terr"
        h_log "$id: $(($(date +%s) - c0))s" >&2
        if [ -z "$p" ]; then
            h_pass "$id"
        else
            h_fail "$id" "$(printf '%s' "$p" | paste -sd ';' -)"
        fi
        if [ -e "$DIRTY" ]; then
            # a session that cannot be removed (or a dead serve) must not spoil the next case
            h_log "restarting toegw serve after $id"
            cp "$H_TMP/serve.log" "$H_TMP/serve.log.$name.$stack" 2>/dev/null
            local_t=$(date +%s%N)
            stop_all
            h_log "stopped in $((($(date +%s%N) - local_t) / 1000000)) ms"
            start_all
            h_log "restarted in $((($(date +%s%N) - local_t) / 1000000)) ms"
        fi
    done
    ht_stop
done
[ "$ncases" -gt 0 ] || h_fail "$H_TEST.cases" "no case matches HOSTILE_CASES='${HOSTILE_CASES:-}'"

# the tgtd session's client never read back other bytes than it wrote (its errors, e.g. when
# a case killed toegw serve, are that case's failure)
wrong=$(vcount 'bad read back differs')
h_check "$H_TEST.tgtd_client_byte_exact" "$wrong rounds read back wrong data" test "$wrong" -eq 0
h_log "tgtd client: $(vcount ok) rounds verified;" \
    "$ncases cases over: $STACKS in $(($(date +%s) - T0))s"
stop_all

h_end
