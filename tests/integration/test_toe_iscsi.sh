#!/usr/bin/env bash
# The iSCSI initiator through the emulated TOE (claims 1, 2, 6, 8): `toegw write` / `read`
# with --stack toe and --stack auto (and the default) move data that equals tgtd's backing
# file byte for byte, on 512- and 4096-byte-block LUNs and with CRC32C digests;
# `auto` really picks the TOE (the broker's debug line says "placed on the toe stack
# (offloaded)"); the --pcap file of the TOE's wire decodes with tshark as iSCSI: the login,
# the SCSI READ/WRITE commands and the logout come from the TOE's own address (192.0.2.2)
# and MAC, which is not the TAP's host-side MAC, in jumbo frames, from the broker's port;
# with the TOE full (--toe-max-conns 0) `auto` moves the same data on the host stack and
# says why, `--stack toe` fails cleanly and touches nothing.
#
# tgtd listens on 0.0.0.0:3260 in the test's namespace; toegw gives the TAP's host side
# 192.0.2.1/24, so the target is reached at 192.0.2.1 through the TOE.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need tshark ip

TOE_IP=192.0.2.2
HOST_IP=192.0.2.1
SIZE=$((32 * 1048576))
MIB8=$((8 * 1048576))

H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:toe-iscsi
h_lun_file 1 1 "$SIZE" 512
h_lun_file 1 2 "$SIZE" 4096
# A target that insists on CRC32C header and data digests.
h_target_new 2 iqn.2024-01.org.example.toegw:toe-iscsi.digests
h_target_param 2 HeaderDigest CRC32C
h_target_param 2 DataDigest CRC32C
h_lun_file 2 1 16M 4096

h_need_toe

# turl LUN [QUERY [TID]] - the LUN at the target's address as seen through the TOE.
turl() {
    printf 'iscsi://%s:3260/%s/%s%s' "$HOST_IP" "${H_IQN[${3:-1}]}" "$1" "${2:+?$2}"
}

# placed STACK REASON - the last command's debug log says where the broker put it.
# shellcheck disable=SC2317 # called through h_check
placed() {
    grep -qF "connection placed on the $1 stack ($2)" "$H_ERR"
}

# wherefrom - "stack (reason)" from the last command's log, for messages.
wherefrom() {
    sed -n 's/.*connection placed on the \(.*\), local port.*/\1/p' "$H_ERR" | head -n 1
}

# region_is FILE BACKING OFF LEN - FILE is exactly LEN bytes, equal to BACKING at OFF.
# shellcheck disable=SC2317 # called through h_check
region_is() {
    [ "$(h_size "$1")" -eq "$4" ] && h_cmp_region "$1" 0 "$2" "$3" "$4"
}

# tsh FILE FILTER FIELD... - one line per matching frame, fields separated by ','.
tsh() {
    local f=$1 y=$2
    shift 2
    local args=() e
    for e in "$@"; do
        args+=(-e "$e")
    done
    tshark -r "$f" -Y "$y" -T fields -E separator=, -E occurrence=f "${args[@]}" \
        2>"$H_TMP/tshark.err"
}

# undecoded FILE SRC - right after tsh found no iSCSI from SRC: what tshark said then, and
# what the capture holds from SRC: frames, frames with TCP payload, the protocols tshark
# made of them, its TCP analysis flags, and the connections' SYN, FIN and RST frames.
undecoded() {
    local frames tcp_data err protos flags ctl
    err=$(h__oneline "$(grep -v 'Running as user' "$H_TMP/tshark.err" | head -c 200)")
    frames=$(count "$1" "ip.src == $2")
    tcp_data=$(count "$1" "ip.src == $2 && tcp.len > 0")
    protos=$(tsh "$1" "ip.src == $2 && tcp.len > 0" frame.protocols | sort | uniq -c |
        sort -rn | head -n 3 | tr -s ' \n' ' ')
    flags=$(tsh "$1" "ip.src == $2 && tcp.analysis.flags" _ws.expert.message | sort |
        uniq -c | sort -rn | head -n 3 | tr -s ' \n' ' ')
    ctl=$(tsh "$1" "tcp.flags.syn == 1 || tcp.flags.fin == 1 || tcp.flags.reset == 1" \
        frame.number ip.src tcp.srcport tcp.flags.str tcp.stream | head -n 6 | tr '\n' ' ')
    echo "$frames frames from $2, $tcp_data with TCP payload; protocols: ${protos:-none};" \
        "TCP analysis: ${flags:-none}; SYN/FIN/RST: ${ctl:-none}; tshark: '${err:-nothing}'"
}

# count FILE FILTER - frames matching FILTER.
count() {
    tsh "$1" "$2" frame.number | grep -c .
}

# --- data through the TOE ------------------------------------------------------------------

b1=$(h_lun_path 1 1)
b2=$(h_lun_path 1 2)
d0=$H_TMP/d0
d1=$H_TMP/d1
d2=$H_TMP/d2
h_random "$d0" "$MIB8"
h_random "$d1" "$MIB8"
h_random "$d2" "$MIB8"

h_run "$TOEGW" write "$(turl 1)" --stack toe --log-level debug --pcap "$H_TMP/w.pcap" <"$d0"
if h_expect_ok toe_iscsi.toe.write_8m; then
    h_check toe_iscsi.toe.write_placed_on_toe "placed on: $(wherefrom)" placed toe offloaded
    h_check toe_iscsi.toe.write_matches_backing "the backing file differs" \
        h_cmp_region "$d0" 0 "$b1" 0 "$MIB8"
    h_check toe_iscsi.toe.write_rest_untouched "bytes after the write changed" \
        h_is_zero "$b1" "$MIB8" $((SIZE - MIB8))
fi
WPORT=$(sed -n 's/.*connection placed on the toe stack.*local port \([0-9]*\).*/\1/p' "$H_ERR" |
    head -n 1)

h_run "$TOEGW" read "$(turl 1)" --length "$MIB8" --stack toe --log-level debug \
    --pcap "$H_TMP/r.pcap"
if h_expect_ok toe_iscsi.toe.read_8m; then
    h_check toe_iscsi.toe.read_placed_on_toe "placed on: $(wherefrom)" placed toe offloaded
    h_check toe_iscsi.toe.read_matches "read $(h_size "$H_OUT") bytes that differ" \
        cmp -s "$d0" "$H_OUT"
fi

# A 4096-byte-block LUN at a non-zero, non-power-of-two offset, then the whole LUN.
off=$((3 * 1048576 + 5 * 4096))
h_run "$TOEGW" write "$(turl 2)" --offset "$off" --stack toe <"$d1"
if h_expect_ok toe_iscsi.toe.write_4k_lun_at_offset; then
    h_check toe_iscsi.toe.write_4k_lun_matches_backing "the backing file differs" \
        h_cmp_region "$d1" 0 "$b2" "$off" "$MIB8"
    h_check toe_iscsi.toe.write_4k_lun_before_untouched "bytes before the offset changed" \
        h_is_zero "$b2" 0 "$off"
fi
h_run "$TOEGW" read "$(turl 2)" --stack toe
if h_expect_ok toe_iscsi.toe.read_whole_lun; then
    h_check toe_iscsi.toe.read_whole_lun_matches \
        "read $(h_size "$H_OUT") bytes, wanted the $SIZE bytes of the backing file" \
        cmp -s "$b2" "$H_OUT"
fi

# Header and data digests computed over what crossed the TOE.
dq='header_digest=crc32c&data_digest=crc32c'
h_run "$TOEGW" write "$(turl 1 "$dq" 2)" --offset 4096 --stack toe <"$d1"
if h_expect_ok toe_iscsi.toe.write_with_digests; then
    h_check toe_iscsi.toe.write_with_digests_matches_backing "the backing file differs" \
        h_cmp_region "$d1" 0 "$(h_lun_path 2 1)" 4096 "$MIB8"
fi
h_run "$TOEGW" read "$(turl 1 "$dq" 2)" --offset 4096 --length "$MIB8" --stack toe
if h_expect_ok toe_iscsi.toe.read_with_digests; then
    h_check toe_iscsi.toe.read_with_digests_matches "read $(h_size "$H_OUT") bytes that differ" \
        cmp -s "$d1" "$H_OUT"
fi

# --- auto picks the TOE ----------------------------------------------------------------------

off2=$((8 * 1048576 + 3 * 512))
h_run "$TOEGW" write "$(turl 1)" --offset "$off2" --stack auto --log-level debug <"$d2"
if h_expect_ok toe_iscsi.auto.write_8m; then
    h_check toe_iscsi.auto.write_placed_on_toe "auto placed it on: $(wherefrom)" \
        placed toe offloaded
    h_check toe_iscsi.auto.write_matches_backing "the backing file differs" \
        h_cmp_region "$d2" 0 "$b1" "$off2" "$MIB8"
    h_check toe_iscsi.auto.write_before_untouched "the first write's bytes changed" \
        h_cmp_region "$d0" 0 "$b1" 0 "$MIB8"
fi
h_run "$TOEGW" read "$(turl 1)" --offset "$off2" --length "$MIB8" --log-level debug
if h_expect_ok toe_iscsi.auto.read_8m_default_stack; then
    h_check toe_iscsi.auto.read_default_is_toe "the default stack placed it on: $(wherefrom)" \
        placed toe offloaded
    h_check toe_iscsi.auto.read_matches "read $(h_size "$H_OUT") bytes that differ" \
        cmp -s "$d2" "$H_OUT"
fi

# --- TOE full: auto falls back to the host stack, toe refuses -------------------------------

h_run "$TOEGW" read "$(turl 1)" --length "$MIB8" --stack auto --toe-max-conns 0 \
    --log-level debug
if h_expect_ok toe_iscsi.full.auto_read; then
    h_check toe_iscsi.full.auto_placed_on_host_toe_full "placed on: $(wherefrom)" \
        placed host "toe full"
    h_check toe_iscsi.full.auto_read_matches "read $(h_size "$H_OUT") bytes that differ" \
        cmp -s "$d0" "$H_OUT"
fi
sum=$(md5sum <"$b1")
h_run "$TOEGW" write "$(turl 1)" --stack toe --toe-max-conns 0 <"$d1"
h_expect_error toe_iscsi.full.toe_write_fails 1
h_check toe_iscsi.full.toe_error_says_why "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q -- '--toe-max-conns' "$H_ERR"
h_check toe_iscsi.full.toe_write_touched_nothing "the backing file changed" \
    test "$(md5sum <"$b1")" = "$sum"

# --- the TOE's wire, as tshark decodes it --------------------------------------------------

# The TAP's host-side MAC and the TOE's MAC (as the host's ARP table learnt it) while a TOE
# session runs, and that session's capture.
"$TOEGW" perf "$(turl 1)" -t 2 -b 1 -m 1 --stack toe --pcap "$H_TMP/p.pcap" \
    >"$H_TMP/perf.out" 2>"$H_TMP/perf.err" </dev/null &
perf_pid=$!
h_bg_register "$perf_pid"
TAP_MAC=
TOE_MAC_ARP=
for _ in $(seq 60); do
    TAP_MAC=$(ip -o link show toe0 2>/dev/null | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    TOE_MAC_ARP=$(ip neigh show "$TOE_IP" dev toe0 2>/dev/null |
        sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')
    [ -n "$TAP_MAC" ] && [ -n "$TOE_MAC_ARP" ] && break
    sleep 0.05
done
wait "$perf_pid"
perf_rc=$?
h_log "TAP host side $TAP_MAC, TOE (ARP) $TOE_MAC_ARP," \
    "perf: $(h__oneline "$(tail -n 1 "$H_TMP/perf.out")")"
if [ "$perf_rc" -ne 0 ] || [ -z "$TAP_MAC" ] || [ -z "$TOE_MAC_ARP" ]; then
    why=$(h__oneline "$(head -c 300 "$H_TMP/perf.err")")
    h_fail toe_iscsi.pcap.macs_seen \
        "perf exit $perf_rc, TAP MAC '$TAP_MAC', TOE MAC '$TOE_MAC_ARP': $why"
else
    h_pass toe_iscsi.pcap.macs_seen
    h_check toe_iscsi.pcap.toe_mac_differs_from_tap "both are $TAP_MAC" \
        test "$TAP_MAC" != "$TOE_MAC_ARP"
    # The session's segments in each direction (its TCP port is iSCSI's, 3260); whether they
    # decode as iSCSI is checked on the write and read sessions' captures below.
    toe_srcs=$(tsh "$H_TMP/p.pcap" "tcp.dstport == 3260 && tcp.len > 0 && ip.src == $TOE_IP" \
        eth.src | sort -u | tr '\n' ' ')
    host_srcs=$(tsh "$H_TMP/p.pcap" "tcp.srcport == 3260 && tcp.len > 0 && ip.src == $HOST_IP" \
        eth.src | sort -u | tr '\n' ' ')
    h_check toe_iscsi.pcap.toe_frames_carry_the_toe_mac \
        "eth.src of iSCSI segments from $TOE_IP: '$toe_srcs', the TOE's MAC is $TOE_MAC_ARP" \
        test "$toe_srcs" = "$TOE_MAC_ARP "
    h_check toe_iscsi.pcap.target_frames_carry_the_tap_mac \
        "eth.src of iSCSI segments from $HOST_IP: '$host_srcs', the TAP's MAC is $TAP_MAC" \
        test "$host_srcs" = "$TAP_MAC "
    # tshark has, now and then, not decoded the target's side of this long capture as iSCSI
    # (its segments all there): say what it made of them, for the next look
    if [ -z "$(tsh "$H_TMP/p.pcap" "iscsi && ip.src == $HOST_IP" frame.number | head -n 1)" ]
    then
        h_log "tshark decoded none of $HOST_IP's segments as iSCSI:" \
            "$(undecoded "$H_TMP/p.pcap" "$HOST_IP")"
    fi
fi

# The write and read sessions' captures: everything iSCSI is between the TOE and the target.
for cap in w r; do
    f=$H_TMP/$cap.pcap
    if [ ! -s "$f" ]; then
        h_fail "toe_iscsi.pcap.$cap.exists" "no capture at $f"
        continue
    fi
    n_all=$(count "$f" iscsi)
    h_check "toe_iscsi.pcap.$cap.decodes_as_iscsi" "tshark -Y iscsi found no frames" \
        test "$n_all" -gt 0
    others=$(count "$f" "iscsi && !(ip.addr == $TOE_IP && ip.addr == $HOST_IP)")
    h_check "toe_iscsi.pcap.$cap.only_toe_and_target" \
        "$others iSCSI frames between other addresses" test "$others" -eq 0
    login=$(tsh "$f" "iscsi.opcode == 0x03" ip.src tcp.srcport | sort -u | tr '\n' ' ')
    h_check "toe_iscsi.pcap.$cap.login_from_the_toe" "login requests from: '$login'" \
        grep -qE "^$TOE_IP,20[0-9]{3} \$" <<<"$login"
    h_check "toe_iscsi.pcap.$cap.login_answered" "no login response from $HOST_IP" \
        test "$(count "$f" "iscsi.opcode == 0x23 && ip.src == $HOST_IP")" -gt 0
    cmd_srcs=$(tsh "$f" "iscsi.opcode == 0x01" ip.src eth.src | sort -u | tr '\n' ' ')
    toe_mac=$(tsh "$f" "ip.src == $TOE_IP" eth.src | sort -u | tr '\n' ' ')
    tap_mac=$(tsh "$f" "ip.src == $HOST_IP" eth.src | sort -u | tr '\n' ' ')
    h_check "toe_iscsi.pcap.$cap.one_toe_mac" "frames from $TOE_IP carry '$toe_mac'" \
        grep -qE '^([0-9a-f]{2}:){5}[0-9a-f]{2} $' <<<"$toe_mac"
    h_check "toe_iscsi.pcap.$cap.toe_mac_is_not_the_host_side" "both sides use '$toe_mac'" \
        test "$toe_mac" != "$tap_mac"
    h_check "toe_iscsi.pcap.$cap.scsi_commands_from_the_toe" \
        "SCSI command frames from: '$cmd_srcs' (TOE MAC $toe_mac)" \
        test "$cmd_srcs" = "$TOE_IP,$toe_mac"
    if [ "$cap" = w ]; then
        sbc="scsi_sbc.opcode == 0x2a || scsi_sbc.opcode == 0x8a"
        what=WRITE
    else
        sbc="scsi_sbc.opcode == 0x28 || scsi_sbc.opcode == 0x88"
        what=READ
    fi
    h_check "toe_iscsi.pcap.$cap.scsi_${what,,}_from_the_toe" \
        "$(count "$f" "($sbc) && ip.src == $TOE_IP") SCSI $what commands from $TOE_IP" \
        test "$(count "$f" "($sbc) && iscsi.opcode == 0x01 && ip.src == $TOE_IP")" -gt 0
    h_check "toe_iscsi.pcap.$cap.logout_from_the_toe" "no logout request from $TOE_IP" \
        test "$(count "$f" "iscsi.opcode == 0x06 && ip.src == $TOE_IP")" -gt 0
    h_check "toe_iscsi.pcap.$cap.jumbo_frames" "no frame larger than 1514 bytes on the wire" \
        test "$(count "$f" "frame.len > 1514")" -gt 0
done
if [ -n "$WPORT" ] && [ -s "$H_TMP/w.pcap" ]; then
    wire=$(tsh "$H_TMP/w.pcap" "ip.src == $TOE_IP && tcp" tcp.srcport | sort -u | tr '\n' ' ')
    h_check toe_iscsi.pcap.w.port_is_the_brokers \
        "the log says local port $WPORT, the capture's TOE ports are '$wire'" \
        test "$wire" = "$WPORT "
fi

h_end
