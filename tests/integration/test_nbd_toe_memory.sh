#!/usr/bin/env bash
#
# test_nbd_toe_memory.sh - an idle TOE connection gives its rings' pages back (docs/toe.md,
# "Memory").
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with four targets of one 32 MiB LUN,
# toegw serve with a "stack":"toe" session to each through 192.0.2.1. Each TOE connection has
# a 2 MiB send ring and a 2 MiB receive ring, mapped lazily; traffic that wraps around a
# ring leaves all of it resident.
#   - nbdcopy writes 32 MiB of random data to each export; within 20 s of idling (the
#     firmware looks every 2 s, the sessions' NOP-Outs every 5 s) each of the four
#     connections gives its send ring's pages back (toegw's debug line says so);
#   - nbdcopy reads each export back: it equals what was written; within 20 s of idling
#     again each gives its receive ring's pages back;
#   - then a second, different 32 MiB to each export (into rings whose pages were given
#     back) reads back equal to it, as does tgtd's backing file;
#   - a program's TOE connection from the broker socket that sends 1 MiB and then only
#     waits gives its send ring's pages back as well (no write of its own follows).
# toegw's anonymous RSS before and after each idle time is logged: the rings' pages are part
# of what it gives back, with the memory the allocator returns when idle.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy cmp
h_need_toe

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

MIB=1048576
SIZE=$((32 * MIB))
N=4
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
for t in $(seq "$N"); do
    h_target_new "$t" "iqn.2024-01.org.example.toegw:toe-memory.$t"
    h_lun_file "$t" 1 "$SIZE" 512
done
nbd_serve --log-level debug
for t in $(seq "$N"); do
    nbd_login "t$t" "$t" 192.0.2.1 toe || h_end
done

rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$SERVE_PID/status"; }

given_back() { grep -c "idle $1 ring's pages given back" "$H_TMP/serve.log"; }

# wait_up_to S CMD... - runs CMD once a second until it succeeds or S seconds have passed;
# the seconds waited are left in $waited.
wait_up_to() {
    local limit=$1
    shift
    waited=0
    until "$@" || [ "$waited" -ge "$limit" ]; do
        sleep 1
        waited=$((waited + 1))
    done
}

# idle_trim WHAT - waits up to 20 s for each connection to give its WHAT ("send" or
# "receive") ring's pages back once more than before; checks that they did.
idle_trim() {
    local what=$1 before now waited rss0
    before=$(given_back "$what")
    rss0=$(rss_anon)
    all_given_back() { now=$(given_back "$what"); [ $((now - before)) -ge "$N" ]; }
    wait_up_to 20 all_given_back
    h_log "$what rings: $((now - before)) given back in $waited s idle; anonymous RSS $((rss0 / 1024)) -> $(($(rss_anon) / 1024)) MiB"
    h_check "$H_TEST.${what}_pages_given_back" "$((now - before)) of $N idle connections gave their $what ring's pages back in $waited s" \
        test $((now - before)) -ge "$N"
}

# write_all PATTERN - writes $H_TMP/data.PATTERN.T to export T, for each T.
write_all() {
    local t ok=1
    for t in $(seq "$N"); do
        h_random "$H_TMP/data.$1.$t" "$SIZE"
        nbdcopy "$H_TMP/data.$1.$t" "${URI[t$t.1]}" 2>>"$H_TMP/nbdcopy.err" || ok=
    done
    h_check "$H_TEST.write_$1" "nbdcopy to the exports: $(h__oneline "$(tail -c 300 "$H_TMP/nbdcopy.err")")" \
        test -n "$ok"
}

# read_all PATTERN - reads export T into $H_TMP/back.T; checks it equals data.PATTERN.T.
read_all() {
    local t bad=
    for t in $(seq "$N"); do
        rm -f "$H_TMP/back.$t"
        nbdcopy "${URI[t$t.1]}" "$H_TMP/back.$t" 2>>"$H_TMP/nbdcopy.err"
        cmp -s "$H_TMP/data.$1.$t" "$H_TMP/back.$t" || bad="$bad $t"
    done
    h_check "$H_TEST.read_$1" "exports that read back different:$bad" test -z "$bad"
}

write_all a
idle_trim send
read_all a
idle_trim receive
write_all b
read_all b
bad=
for t in $(seq "$N"); do
    cmp -s "$H_TMP/data.b.$t" "$(h_lun_path "$t" 1)" || bad="$bad $t"
done
h_check "$H_TEST.backing_files" "backing files that differ from what was written:$bad" test -z "$bad"

# A program's TOE connection (through the broker socket) that sends 1 MiB and then only
# waits: no write follows that could give the send ring back, so the firmware's flag wakes
# the connection's reader (the broker's pump) to do it.
python3 -c '
import socket, sys
l = socket.create_server(("192.0.2.1", 3261))
print("listening", flush=True)
while True:
    c, _ = l.accept()
    while c.recv(65536):
        pass
' >"$H_TMP/sink.out" 2>&1 &
h_bg_register $!
for _ in $(seq 50); do grep -q listening "$H_TMP/sink.out" && break; sleep 0.1; done
exec 8> >(exec python3 "$H_LIB_DIR/bsock_client.py" "$H_TMP/state/broker.sock" connect \
    192.0.2.1 3261 1 $MIB >"$H_TMP/prog.out" 2>&1)
h_bg_register $!
for _ in $(seq 100); do grep -q '^family=' "$H_TMP/prog.out" && break; sleep 0.1; done
port=$(sed -n 's/.* local=192\.0\.2\.2:\([0-9]*\) on_stack=toe .*/\1/p' "$H_TMP/prog.out")
gave() { grep -q "connection from port $port: idle send ring's pages given back" "$H_TMP/serve.log"; }
waited=0
[ -n "$port" ] && wait_up_to 20 gave
h_log "a program's connection from port ${port:-none}: $(h__oneline "$(cat "$H_TMP/prog.out")"); waited $waited s"
sent_and_gave() { [ -n "$port" ] && gave && grep -q "sent=$MIB" "$H_TMP/prog.out"; }
h_check "$H_TEST.program_that_stops_writing_gives_send_pages_back" \
    "no \"given back\" line for the program's TOE connection from port ${port:-none} in $waited s" \
    sent_and_gave
exec 8>&-

h_end
