#!/usr/bin/env bash
#
# test_toe_wire.sh - bulk transfers through the emulated TOE's driver interface to and from
# a kernel socket server, verified byte for byte and by CRC-64, on a clean wire at MTU 9000
# and 1500, with copies and without (sent by reference, read in place), then with 1% drop,
# 1% duplication, 1% reordering and 0.1% corruption.
#
# Self-contained: build/toe-tool moves itself into a private network namespace before it
# creates the TAP (192.0.2.2 on the adapter, 192.0.2.1 on the host side); nothing leaves it.
# Prints PASS/FAIL/SKIP lines; exits 0 all passed, 1 any failed, 77 all skipped.

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
# value KEY TEXT: the value of key=value in TEXT
value() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

preflight() {
    if [ "$(id -u)" -ne 0 ]; then
        skip toe_wire "needs root (private network namespace and a TAP device)"
        finish
    fi
    if [ ! -c /dev/net/tun ]; then
        skip toe_wire "no /dev/net/tun"
        finish
    fi
    if [ ! -x "$TOOL" ] && ! make -C "$REPO" -s build/toe-tool >/dev/null 2>&1; then
        skip toe_wire "cannot build $TOOL"
        finish
    fi
}

# bulk NAME ARGS...: a transfer both ways that must arrive exactly.
bulk() {
    local name=$1 out rc
    shift
    out=$(timeout 120 "$TOOL" bulk "$@" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$(value tx_ok "$out")" = 1 ] && [ "$(value rx_ok "$out")" = 1 ] &&
        [ "$(value tx_crc_sent "$out")" = "$(value tx_crc_recv "$out")" ] &&
        [ "$(value rx_crc_sent "$out")" = "$(value rx_crc_recv "$out")" ]; then
        pass "$name"
    else
        fail "$name" "exit $rc: $(printf '%s' "$out" | grep -E 'ok=|toe-tool|result' | tr '\n' ' ')"
    fi
    LAST_OUT=$out
}

preflight
LAST_OUT=

bulk toe_bulk_mtu9000 --mtu 9000 --bytes 256M
bulk toe_bulk_mtu1500 --mtu 1500 --bytes 64M
# Without the consumer's copies: the sender's buffers go by reference (toe_conn_send_ref,
# every one given back once), the receiver looks at the stream where the adapter holds it
# (toe_conn_peek/consume).
bulk toe_bulk_zero_copy_mtu9000 --mtu 9000 --bytes 128M --by-ref --in-place
bulk toe_bulk_zero_copy_faults --mtu 1500 --bytes 8M --faults 0.01,0.01,0.01,0.001 --seed 11 \
    --by-ref --in-place

bulk toe_bulk_faults --mtu 1500 --bytes 16M --faults 0.01,0.01,0.01,0.001 --seed 7
# Every kind of fault must really have happened, in both directions together.
ftx=$(value fault_tx "$LAST_OUT")
frx=$(value fault_rx "$LAST_OUT")
IFS=/ read -r d1 u1 r1 c1 <<<"${ftx:-0/0/0/0}"
IFS=/ read -r d2 u2 r2 c2 <<<"${frx:-0/0/0/0}"
if [ $((d1 + d2)) -gt 0 ] && [ $((u1 + u2)) -gt 0 ] && [ $((r1 + r2)) -gt 0 ] &&
    [ $((c1 + c2)) -gt 0 ]; then
    pass toe_faults_injected
else
    fail toe_faults_injected "fault counters tx=$ftx rx=$frx (drop/dup/reorder/corrupt)"
fi
# Corrupted frames that reached the adapter were caught by its checksum check.
bad=$(value rx_drop_bad "$LAST_OUT")
if [ -n "$bad" ] && [ "$bad" -ge "$c2" ]; then
    pass toe_corrupt_frames_dropped
else
    fail toe_corrupt_frames_dropped "rx_drop_bad=$bad, corrupted toward the adapter: $c2"
fi

finish
