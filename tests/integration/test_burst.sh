#!/usr/bin/env bash
# The write paths of iSCSI: immediate data, unsolicited Data-Out (InitialR2T=No) and R2T-
# solicited Data-Out, forced by the target's login keys. Each write (4 KiB, 64 KiB =
# FirstBurstLength, and 4 MiB + 12 KiB, far past MaxBurstLength) must land in the backing file
# byte for byte, and a capture of the session must show the path the negotiated keys call for,
# with every data segment within the target's MaxRecvDataSegmentLength and no unsolicited data
# beyond FirstBurstLength.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"

K4=4096
K64=65536
BIG=$((4 * 1048576 + 12288))

# tid name InitialR2T ImmediateData FirstBurstLength MaxBurstLength MaxRecvDataSegmentLength
CASES=(
    "1 default Yes Yes 65536 262144 8192"
    "2 noimm Yes No 65536 262144 8192"
    "3 unsol No Yes 65536 262144 8192"
    "4 unsol-noimm No No 65536 262144 8192"
    "5 smallburst Yes Yes 8192 16384 4096"
)

h_tgtd_start
for c in "${CASES[@]}"; do
    read -r tid name ir2t imm fbl mbl mrdsl <<<"$c"
    h_target_new "$tid" "iqn.2024-01.org.example.toegw:burst.$name"
    h_target_param "$tid" InitialR2T "$ir2t"
    h_target_param "$tid" ImmediateData "$imm"
    h_target_param "$tid" FirstBurstLength "$fbl"
    h_target_param "$tid" MaxBurstLength "$mbl"
    h_target_param "$tid" MaxRecvDataSegmentLength "$mrdsl"
    h_lun_file "$tid" 1 16M 512
done
h_target_new 9 iqn.2024-01.org.example.toegw:burst.reference
h_lun_file 9 1 8M 512

have_cap=1
for t in dumpcap tshark jq; do
    if ! command -v "$t" >/dev/null 2>&1; then
        have_cap=0
        h_skip burst.paths "$t not found: only data integrity is checked, not the PDU paths"
        break
    fi
done

# Reference: libiscsi (qemu-io) writing 4 MiB to a default target shows 16 R2Ts of
# MaxBurstLength each - proves the capture and its analysis.
if [ "$have_cap" = 1 ] && command -v qemu-io >/dev/null 2>&1; then
    # a busy machine can overflow the capture ring: write again (at most 3 times)
    refcomplete=0
    for attempt in 1 2 3; do
        h_capture_start "$H_TMP/ref.pcapng"
        h_run qemu-io -f raw -c "write -P 0x5a 0 4M" "$(h_url 9 1)"
        h_capture_stop
        if h_capture_complete "$H_TMP/ref.pcapng"; then
            refcomplete=1
            break
        fi
        h_log "reference capture incomplete (attempt $attempt)"
    done
    if [ "$refcomplete" = 1 ]; then
        h_pdus "$H_TMP/ref.pcapng" >"$H_TMP/ref.pdus"
        st=$(h_write_stats "$H_TMP/ref.pdus")
        h_check burst.ref_libiscsi_capture "qemu-io: $(h_last); stats: $st" \
            test "$H_RC-$(h_stat total "$st")-$(h_stat r2t "$st")" = "0-4194304-16"
    else
        h_skip burst.ref_libiscsi_capture "the capture lost packets in 3 attempts"
    fi
fi

h_need_toegw

# expect NAME STATS EXPR MSG - EXPR is an arithmetic test over the h_write_stats keys.
expect() {
    local name=$1 st=$2 expr=$3 msg=$4 k v
    # shellcheck disable=SC2034 # read through $expr
    local cmds total imm unsol sol r2t maxseg maxunsol logout
    for k in cmds total imm unsol sol r2t maxseg maxunsol logout; do
        v=$(h_stat "$k" "$st")
        printf -v "$k" '%s' "${v:-0}"
    done
    # shellcheck disable=SC2004 # expand the rules, then evaluate them
    if (( $expr )); then
        h_pass "$name"
    else
        h_fail "$name" "$msg ($st)"
    fi
}

for c in "${CASES[@]}"; do
    read -r tid name ir2t imm fbl mbl mrdsl <<<"$c"
    url=$(h_url "$tid" 1)
    backing=$(h_lun_path "$tid" 1)
    off=0
    for size in "$K4" "$K64" "$BIG"; do
        p=burst.$name.$size
        data=$H_TMP/$tid.$size.data
        h_random "$data" "$size"
        pcap=$H_TMP/$tid.$size.pcapng
        # The same write again (at most 3 times) when the capture lost packets.
        for attempt in 1 2 3; do
            [ "$have_cap" = 1 ] && h_capture_start "$pcap"
            h_run "$TOEGW" write "$url" --offset "$off" --stack host <"$data"
            [ "$have_cap" = 1 ] || break
            h_capture_stop
            complete=0
            if h_capture_complete "$pcap"; then
                complete=1
                break
            fi
            [ "$H_RC" -eq 0 ] || break
            h_log "$p: capture incomplete (attempt $attempt), writing again"
        done
        if ! h_expect_ok "$p.write"; then
            off=$((off + 1048576))
            continue
        fi
        h_check "$p.matches_backing" "backing file differs from the data written" \
            h_cmp_region "$data" 0 "$backing" "$off" "$size"
        off=$((off + 1048576))
        [ "$have_cap" = 1 ] || continue
        if [ "$complete" != 1 ]; then
            h_skip "$p.paths" "the capture lost packets in 3 attempts; PDU paths not checked"
            continue
        fi

        h_pdus "$pcap" >"$pcap.pdus"
        st=$(h_write_stats "$pcap.pdus")
        h_log "$p: $st"
        # Limits the negotiated keys impose, whatever path toegw picks.
        rules="total == $size && maxseg <= $mrdsl && maxunsol <= $fbl"
        why="want all $size bytes on the wire, segments <= MaxRecvDataSegmentLength $mrdsl"
        why+=", immediate+unsolicited per command <= FirstBurstLength $fbl"
        if [ "$ir2t" = Yes ]; then
            rules+=" && unsol == 0"
            why+=", no unsolicited Data-Out (InitialR2T=Yes)"
        fi
        if [ "$imm" = No ]; then
            rules+=" && imm == 0"
            why+=", no immediate data (ImmediateData=No)"
        fi
        expect "$p.within_negotiated_limits" "$st" "$rules" "$why"
        expect "$p.session_logged_out" "$st" "logout >= 1" \
            "no Logout Response in the capture (no logout, or the capture is incomplete)"

        # The path itself.
        case "$name:$size" in
            "default:$K4" | "smallburst:$K4" | "unsol:$K4")
                expect "$p.uses_immediate_data" "$st" "imm == $size && r2t == 0" \
                    "expected all $size bytes as immediate data and no R2T" ;;
            default:* | smallburst:*)
                expect "$p.uses_immediate_data_then_r2t" "$st" "imm > 0 && r2t >= 1" \
                    "expected immediate data then R2T-solicited Data-Out" ;;
            noimm:*)
                expect "$p.uses_r2t" "$st" "r2t >= 1 && sol == $size" \
                    "expected every byte solicited by R2T" ;;
            "unsol:$K64")
                expect "$p.uses_immediate_and_unsolicited" "$st" \
                    "imm > 0 && unsol > 0 && r2t == 0" \
                    "expected immediate data plus unsolicited Data-Out, no R2T" ;;
            "unsol-noimm:$K4" | "unsol-noimm:$K64")
                expect "$p.uses_unsolicited_dataout" "$st" "unsol == $size && r2t == 0" \
                    "expected all $size bytes as unsolicited Data-Out, no R2T" ;;
            "unsol:$BIG" | "unsol-noimm:$BIG")
                expect "$p.uses_unsolicited_then_r2t" "$st" "unsol > 0 && r2t >= 1" \
                    "expected unsolicited Data-Out then R2T-solicited Data-Out" ;;
        esac
    done
done

h_end
