#!/usr/bin/env bash
# Header and data digests (CRC32C): with header_digest=crc32c and/or data_digest=crc32c in
# the URL, the login negotiates them (checked in a capture of the login response) and
# write/read round trips through immediate data, Data-Out and Data-In PDUs stay correct
# (tgtd checks every digest it receives and drops the connection on a bad one).
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"

h_tgtd_start
# tid  iqn suffix  HeaderDigest DataDigest  URL query  block size
CASES=(
    "1 digest.header CRC32C None header_digest=crc32c 512"
    "2 digest.data None CRC32C data_digest=crc32c 512"
    "3 digest.both CRC32C CRC32C header_digest=crc32c&data_digest=crc32c 4096"
)
for c in "${CASES[@]}"; do
    read -r tid sfx hd dd _ bs <<<"$c"
    h_target_new "$tid" "iqn.2024-01.org.example.toegw:$sfx"
    h_target_param "$tid" HeaderDigest "$hd"
    h_target_param "$tid" DataDigest "$dd"
    h_lun_file "$tid" 1 16M "$bs"
done

h_need_toegw

have_tshark=1
if ! command -v dumpcap >/dev/null 2>&1 || ! command -v tshark >/dev/null 2>&1 ||
    ! command -v jq >/dev/null 2>&1; then
    have_tshark=0
    h_skip digests.negotiation "tshark/dumpcap/jq not found: negotiated keys not checked"
fi

for c in "${CASES[@]}"; do
    read -r tid sfx hd dd query bs <<<"$c"
    name=digests.${sfx#digest.}
    url=$(h_url "$tid" 1 "$query")
    backing=$(h_lun_path "$tid" 1)
    data=$H_TMP/$tid.data
    off=524288
    len=$((1048576 + 8192))
    h_random "$data" "$len"

    pcap=$H_TMP/login$tid.pcapng
    [ "$have_tshark" = 1 ] && h_capture_start "$pcap"
    h_run "$TOEGW" write "$url" --offset "$off" --stack host <"$data"
    [ "$have_tshark" = 1 ] && h_capture_stop
    if h_expect_ok "$name.write"; then
        h_check "$name.write_matches_backing" "backing file differs from the data written" \
            h_cmp_region "$data" 0 "$backing" "$off" "$len"
    fi

    if [ "$have_tshark" = 1 ]; then
        keys=$(h_login_keys "$pcap")
        for k in "HeaderDigest=$hd" "DataDigest=$dd"; do
            h_check "$name.negotiated_${k%%=*}" \
                "login response lacks $k (target answered: $(h__oneline "$(grep -E 'Digest' <<<"$keys")"))" \
                grep -qx "$k" <<<"$keys"
        done
    fi

    h_run "$TOEGW" read "$url" --offset "$off" --length "$len" --stack host
    if h_expect_ok "$name.read"; then
        h_check "$name.read_matches" "read back $(h_size "$H_OUT") bytes that differ" \
            cmp -s "$data" "$H_OUT"
    fi
done

# A digest the target refuses: tid 3 insists on CRC32C, the URL asks for none. Either the
# login fails cleanly or toegw agrees to CRC32C; a hang or a garbled transfer is a failure.
h_run "$TOEGW" read "$(h_url 3 1 'header_digest=none&data_digest=none')" --length 4096 \
    --stack host
if [ "$H_RC" -eq 0 ]; then
    h_check digests.refused_none_or_clean "read returned different data" \
        h_cmp_region "$H_OUT" 0 "$(h_lun_path 3 1)" 0 4096
else
    h_expect_error digests.refused_none_or_clean 1
fi

h_end
