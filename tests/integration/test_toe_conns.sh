#!/usr/bin/env bash
#
# test_toe_conns.sh - the emulated TOE's resources: many connections at once up to
# --toe-max-conns and the clear error past it (-EMFILE, "the adapter is full"); the slots
# come back after close; link down fails every live connection within a second with
# -ENETDOWN, refuses new ones, and link up makes them work again; buffers sent by reference
# come back when their connection fails.
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
    skip toe_conns "needs root (private network namespace and a TAP device)"
    finish
fi
if [ ! -c /dev/net/tun ]; then
    skip toe_conns "no /dev/net/tun"
    finish
fi
if [ ! -x "$TOOL" ] && ! make -C "$REPO" -s build/toe-tool >/dev/null 2>&1; then
    skip toe_conns "cannot build $TOOL"
    finish
fi

out=$(timeout 120 "$TOOL" conns --max 256 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && printf '%s' "$out" | grep -q '^established=256 of 256' &&
    printf '%s' "$out" | grep -q '^echoed=256 of 256'; then
    pass toe_conns_up_to_limit
else
    fail toe_conns_up_to_limit \
        "exit $rc: $(printf '%s' "$out" | grep -E 'established|echoed|toe-tool' | tr '\n' ' ')"
fi
if [ "$(value past_limit_rc "$out")" = -24 ] && printf '%s' "$out" | grep -q 'adapter is full'; then
    pass toe_conns_limit_error
else
    fail toe_conns_limit_error "$(printf '%s' "$out" | grep past_limit)"
fi
if [ "$(value conns_after_close "$out")" = 0 ] && [ "$(value reconnect_rc "$out")" = 0 ]; then
    pass toe_conns_slots_released
else
    fail toe_conns_slots_released "conns_after_close=$(value conns_after_close "$out")" \
        "reconnect_rc=$(value reconnect_rc "$out")"
fi

out=$(timeout 120 "$TOOL" linkdown --conns 8 2>&1)
rc=$?
line=$(printf '%s\n' "$out" | grep '^link_down_failed=')
secs=$(value seconds "$line")
if [ "$(value enetdown "$line")" = 8 ] && awk -v s="${secs:-9}" 'BEGIN { exit !(s < 1.0) }'; then
    pass toe_link_down_fails_conns
else
    fail toe_link_down_fails_conns "$line"
fi
if [ "$(value connect_while_down_rc "$out")" = -100 ]; then
    pass toe_link_down_refuses_connect
else
    fail toe_link_down_refuses_connect "$(printf '%s' "$out" | grep connect_while_down)"
fi
if [ "$rc" -eq 0 ] && [ "$(value after_up_ok "$out")" = 1 ]; then
    pass toe_link_up_works_again
else
    fail toe_link_up_works_again \
        "exit $rc: $(printf '%s' "$out" | grep -E 'after_up|toe-tool' | tr '\n' ' ')"
fi

# The same with buffers sent by reference and nothing acknowledged for the last 0.1 s: the
# failed connections give every outstanding buffer back before their owner closes them.
out=$(timeout 120 "$TOOL" linkdown --conns 8 --by-ref 2>&1)
rc=$?
line=$(printf '%s\n' "$out" | grep '^refs=')
refs=$(value refs "$line")
if [ "$rc" -eq 0 ] && [ "${refs:-0}" -gt 0 ] && [ "$(value refs_done "$line")" = "$refs" ]; then
    pass toe_link_down_gives_buffers_back
else
    fail toe_link_down_gives_buffers_back \
        "exit $rc: ${line:-no refs line} $(printf '%s' "$out" | grep -E 'toe-tool|result')"
fi

finish
