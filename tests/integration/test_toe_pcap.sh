#!/usr/bin/env bash
#
# test_toe_pcap.sh - the emulated TOE's wire capture: a transfer both ways is captured to a
# pcap file (streamed, then from the in-memory ring), tshark decodes it, its frame count is
# the adapter's frame counters, and every TCP checksum in it is right.
#
# Self-contained: build/toe-tool runs in its own private network namespace. Prints
# PASS/FAIL/SKIP; exits 0, 1, or 77 when all skipped.

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
    skip toe_pcap "needs root (private network namespace and a TAP device)"
    finish
fi
if ! command -v tshark >/dev/null; then
    skip toe_pcap "tshark is not installed"
    finish
fi
if [ ! -c /dev/net/tun ]; then
    skip toe_pcap "no /dev/net/tun"
    finish
fi
if [ ! -x "$TOOL" ] && ! make -C "$REPO" -s build/toe-tool >/dev/null 2>&1; then
    skip toe_pcap "cannot build $TOOL"
    finish
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

capture() {
    local name=$1 file=$TMP/$1.pcap out rc frames wire tcp good
    shift
    out=$(timeout 120 "$TOOL" pcap --out "$file" --bytes 8M "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] || [ ! -s "$file" ]; then
        fail "$name" "exit $rc: $(printf '%s' "$out" | grep -E 'ok=|toe-tool' | tr '\n' ' ')"
        return
    fi
    if ! frames=$(tshark -r "$file" 2>/dev/null | wc -l) || [ "$frames" -eq 0 ]; then
        fail "$name" "tshark cannot read $file"
        return
    fi
    wire=$(value wire_frames "$out")
    if [ "$frames" = "$wire" ] && [ "$frames" = "$(value capture_frames "$out")" ]; then
        pass "${name}_frame_count"
    else
        fail "${name}_frame_count" "tshark saw $frames frames, the counters say $wire"
    fi
    tcp=$(tshark -r "$file" -Y tcp 2>/dev/null | wc -l)
    good=$(tshark -r "$file" -o tcp.check_checksum:TRUE -Y 'tcp.checksum.status == 1' \
        2>/dev/null | wc -l)
    if [ "$tcp" -gt 1000 ] && [ "$tcp" = "$good" ]; then
        pass "${name}_decodes"
    else
        fail "${name}_decodes" "$tcp TCP frames, $good with a good checksum"
    fi
}

capture toe_pcap_file
capture toe_pcap_ring --ring

finish
