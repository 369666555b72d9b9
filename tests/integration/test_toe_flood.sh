#!/usr/bin/env bash
#
# test_toe_flood.sh - a TOE connection keeps receiving while its peer does not read.
#
# `toe-tool flood`: a kernel socket on the TAP's host side sends 64 MiB without pause and
# never reads; the consumer reads everything and answers every byte (as the iSCSI initiator
# answers a flood of NOP-Ins with NOP-Outs), so its writes back up and return -EAGAIN from
# the first few MiB on. The same consumer runs over the host stack against the same peer,
# in the same run. Two scenarios:
#   - paced: the peer sleeps 8 ms per 256 KiB, so the flood lasts ~2 s - long enough for
#     the TOE's zero-window probing of the peer to start. Before the fix, the probe left
#     every later ACK and window update of the TOE one sequence number beyond the peer's
#     closed window; the peer dropped them all, saw none of its data acknowledged and
#     retransmitted with backoff until the run gave up (the host stack finished in 2 s).
#   - pause: the consumer stops reading for 1 s after the first 16 MiB: the TOE's receive
#     ring fills, its window closes (backpressure, nothing lost), and must reopen.
# Each must deliver the whole stream intact within 20 s on both stacks, the TOE in about
# the host's time. With tshark, the TOE side is captured and checked: every segment without
# data from the TOE lies within the window the peer last advertised, the peer retransmits
# at most twice, the probes really happened, and (pause) the window closed and reopened.
#
# Self-contained: build/toe-tool runs in its own private network namespace (TAP with
# 192.0.2.2 / 192.0.2.1). Prints PASS/FAIL/SKIP; exits 0, 1, or 77 when all skipped.

set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TOOL=${TOE_TOOL:-$REPO/build/toe-tool}
NPASS=0
NFAIL=0
NSKIP=0

pass() { NPASS=$((NPASS + 1)); echo "PASS $1"; }
fail() { NFAIL=$((NFAIL + 1)); echo "FAIL $1: $2"; }
skip() { NSKIP=$((NSKIP + 1)); echo "SKIP $1: $2"; }
finish() {
    if [ "$NFAIL" -gt 0 ]; then exit 1; fi
    if [ "$NPASS" -eq 0 ] && [ "$NSKIP" -gt 0 ]; then exit 77; fi
    exit 0
}
value() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

if [ "$(id -u)" -ne 0 ]; then
    skip toe_flood "needs root (private network namespace and a TAP device)"
    finish
fi
if [ ! -c /dev/net/tun ]; then
    skip toe_flood "no /dev/net/tun"
    finish
fi
if [ ! -x "$TOOL" ] && ! make -C "$REPO" -s build/toe-tool >/dev/null 2>&1; then
    skip toe_flood "cannot build $TOOL"
    finish
fi
HAVE_TSHARK=1
command -v tshark >/dev/null || HAVE_TSHARK=

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# wire FILE - one line of figures from the capture of the TOE's connection (port 5003):
#   outside=N   segments without data from the TOE (not SYN/RST) whose sequence number lies
#               beyond the peer's last acknowledgment plus its last advertised window
#   acks=N      segments without data from the TOE
#   probes=N    the TOE's window probes (one byte while the peer's window is zero)
#   retrans=N   the peer's retransmissions
#   zero_s=S    the longest time the TOE's window stayed zero before it reopened (1 MiB or
#               more advertised, and the peer sent data again after that)
wire() {
    tshark -r "$1" -Y 'tcp.port == 5003' -T fields -E separator=, -e frame.time_relative \
        -e ip.src -e tcp.seq -e tcp.ack -e tcp.len -e tcp.window_size -e tcp.flags.syn \
        -e tcp.flags.reset -e tcp.analysis.retransmission 2>/dev/null |
        awk -F, '
        function on(f) { return f == "1" || f == "True" }
        {
            t = $1; src = $2; seq = $3; ack = $4; len = $5; win = $6
            ctl = on($7) || on($8)
            if (src == "192.0.2.1") {
                peer_ack = ack; peer_win = win; have_peer = 1
                if ($9 != "") retrans++
                if (len > 0 && pending) {
                    if (reopened_at - zero_from > zero_s) zero_s = reopened_at - zero_from
                    pending = 0
                }
                next
            }
            if (len == 0 && !ctl) {
                acks++
                if (have_peer && seq > peer_ack + peer_win) outside++
            }
            if (len == 1 && have_peer && peer_win == 0) probes++
            if (ctl) next
            if (win == 0) {
                if (!closed) { zero_from = t; closed = 1 }
                pending = 0
            } else if (closed && win >= 1048576) {
                closed = 0; pending = 1; reopened_at = t
            }
        }
        END {
            printf "outside=%d acks=%d probes=%d retrans=%d zero_s=%.3f\n",
                outside, acks, probes, retrans, zero_s
        }'
}

# flood NAME ARGS... - run the flood; sets OUT and RC.
flood() {
    local name=$1
    shift
    OUT=$(timeout 120 "$TOOL" flood --bytes 64M --limit 20 "$@" 2>&1)
    RC=$?
    local t h
    t=$(printf '%s\n' "$OUT" | grep '^toe_bytes=')
    h=$(printf '%s\n' "$OUT" | grep '^host_bytes=')
    if [ "$(value host_ok "$h")" = 1 ]; then
        pass "${name}_host"
    else
        fail "${name}_host" "the host stack did not take the flood: ${h:-$OUT}"
    fi
    if [ "$RC" -eq 0 ] && [ "$(value toe_ok "$t")" = 1 ]; then
        pass "${name}_toe"
    else
        fail "${name}_toe" "exit $RC: ${t:-$(printf '%s' "$OUT" | tail -n 3 | tr '\n' ' ')}"
    fi
    local ts hs
    ts=$(value toe_seconds "$t")
    hs=$(value host_seconds "$h")
    echo "# $name: toe ${ts:-?} s, host ${hs:-?} s"
    if [ -n "$ts" ] && [ -n "$hs" ] && [ "$(value toe_ok "$t")" = 1 ] &&
        awk -v t="$ts" -v h="$hs" 'BEGIN { exit !(t <= 2 * h + 2) }'; then
        pass "${name}_toe_like_host"
    else
        fail "${name}_toe_like_host" "toe ${ts:-?} s, host ${hs:-?} s (at most 2 x host + 2 s)"
    fi
}

# wire_checks NAME FILE - the capture's figures, as checks.
wire_checks() {
    local name=$1 w
    if [ -z "$HAVE_TSHARK" ]; then
        skip "${name}_wire" "tshark is not installed: the capture is not checked"
        return 1
    fi
    if [ ! -s "$2" ]; then
        fail "${name}_wire" "no capture in $2"
        return 1
    fi
    w=$(wire "$2")
    W=$w
    echo "# $name wire: $w"
    if [ "$(value outside "$w")" = 0 ] && [ "$(value acks "$w")" -gt 100 ]; then
        pass "${name}_acks_in_peer_window"
    else
        fail "${name}_acks_in_peer_window" "$w"
    fi
    if [ "$(value probes "$w")" -ge 1 ]; then
        pass "${name}_probed_peer_window"
    else
        fail "${name}_probed_peer_window" "no zero-window probe from the TOE: $w"
    fi
    if [ "$(value retrans "$w")" -le 2 ]; then
        pass "${name}_no_peer_retransmissions"
    else
        fail "${name}_no_peer_retransmissions" "$w"
    fi
}

CAP=()
[ -n "$HAVE_TSHARK" ] && CAP=(--out "$TMP/paced.pcap")
flood toe_flood_paced --pace-ms 8 "${CAP[@]}"
wire_checks toe_flood_paced "$TMP/paced.pcap"

CAP=()
[ -n "$HAVE_TSHARK" ] && CAP=(--out "$TMP/pause.pcap")
flood toe_flood_pause --pause-ms 1000 "${CAP[@]}"
if wire_checks toe_flood_pause "$TMP/pause.pcap"; then
    # The consumer stopped reading for 1 s: the window stayed shut about that long.
    if awk -v z="$(value zero_s "$W")" 'BEGIN { exit !(z >= 0.5) }'; then
        pass toe_flood_pause_window_reopens
    else
        fail toe_flood_pause_window_reopens "no zero window of 0.5 s or more that reopened: $W"
    fi
fi

finish
