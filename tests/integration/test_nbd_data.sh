#!/usr/bin/env bash
#
# test_nbd_data.sh - data through toegw's NBD export with real clients, over both stacks.
#
# In a private network namespace: tgtd on 0.0.0.0:3260, two targets with one 256 MiB LUN each
# (512-byte blocks through the TOE, 4096-byte blocks through the host stack), toegw serve with
# a "stack":"toe" session through 192.0.2.1 and a "stack":"host" session through 127.0.0.1.
# For each:
#   - nbdcopy writes 256 MiB of random data (the default: several connections, many requests
#     in flight); tgtd's backing file equals it byte for byte; nbdcopy reads it back
#     identically;
#   - fio's nbd engine: 4 jobs (4 connections), each in its own 48 MiB region, random writes
#     of 4 KiB to 8 MiB (past the LUN's 4 MiB transfer limit) with verify=crc32c, then a
#     second run that only reads back and verifies, in random order, over new connections;
#   - qemu-img info sees a raw image of the LUN's size; qemu-img convert writes a raw file
#     with an 8 MiB zero hole (qemu sends write zeroes for it) to the export and converts the
#     export back to a file: both equal the source, and so does the backing file.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdcopy cmp
h_need_toe

# toegw serve and its REST API, shared by every test_nbd_*.sh
# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

# --- setup -----------------------------------------------------------------------------------

MIB=1048576
SIZE=$((256 * MIB))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:nbd-data.toe
h_lun_file 1 1 "$SIZE" 512
h_target_new 2 iqn.2024-01.org.example.toegw:nbd-data.host
h_lun_file 2 1 "$SIZE" 4096

nbd_serve
STACKS=()
if [ -n "$HAVE_TOE" ]; then
    nbd_login toe 1 192.0.2.1 toe && STACKS+=(toe)
else
    h_skip "$H_TEST.toe" "no /dev/net/tun: toegw runs --no-toe, the TOE stack is not tested"
fi
nbd_login host 2 127.0.0.1 host && STACKS+=(host)
[ "${#STACKS[@]}" -gt 0 ] || h_end
declare -A TID=([toe]=1 [host]=2) BS=([toe]=512 [host]=4096)

# shellcheck disable=SC2317 # called through h_check
# fio_did FILE FILTER - FILTER holds for the jobs of fio's JSON report FILE (fio prints
# "connected to NBD server" lines before it).
fio_did() {
    sed -n '/^{/,$p' "$1" | jq -e "[.jobs[] | select(.error == 0)] as \$ok |
        (\$ok | length) == (.jobs | length) and (.jobs | $2)" >/dev/null 2>&1
}

fio_summary() {
    sed -n '/^{/,$p' "$1" | jq -c '[.jobs[] | {error, written: .write.io_bytes,
        read: .read.io_bytes}]' 2>&1 | head -c 300
}

SRC=$H_TMP/src.img
h_random "$SRC" "$SIZE"

for st in "${STACKS[@]}"; do
    t=$st.bs${BS[$st]}
    uri=${URI[$st.1]:-}
    backing=$(h_lun_path "${TID[$st]}" 1)
    if [ -z "$uri" ]; then
        h_fail "$H_TEST.$t.export" "no export URI for the volume of LUN 1"
        continue
    fi

    # --- nbdcopy, 256 MiB each way
    h_run nbdcopy "$SRC" "$uri"
    if h_expect_ok "$H_TEST.$t.nbdcopy_write_256m"; then
        h_check "$H_TEST.$t.nbdcopy_write_backing_equal" \
            "tgtd's backing file differs from the 256 MiB nbdcopy wrote ($(cmp "$SRC" "$backing" 2>&1 | head -c 120))" \
            cmp -s "$SRC" "$backing"
    fi
    h_run nbdcopy "$uri" "$H_TMP/readback.img"
    if h_expect_ok "$H_TEST.$t.nbdcopy_read_256m"; then
        h_check "$H_TEST.$t.nbdcopy_read_equal" \
            "what nbdcopy read back differs ($(cmp "$SRC" "$H_TMP/readback.img" 2>&1 | head -c 120))" \
            cmp -s "$SRC" "$H_TMP/readback.img"
    fi
    rm -f "$H_TMP/readback.img"

    # --- fio, several jobs, each its own region
    if command -v fio >/dev/null 2>&1; then
        fio_args=(--ioengine=nbd --uri="$uri" --rw=randwrite --numjobs=4 --size=48M
            --offset_increment=48M --bssplit=4k/40:64k/30:1m/20:8m/10 --iodepth=16
            --verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting
            --output-format=json)
        h_run fio --name="nbd-$st" "${fio_args[@]}" --do_verify=1
        if h_expect_ok "$H_TEST.$t.fio_randwrite_verify"; then
            h_check "$H_TEST.$t.fio_wrote_and_verified" "fio's report: $(fio_summary "$H_OUT")" \
                fio_did "$H_OUT" 'all(.write.io_bytes == 201326592 and .read.io_bytes == 201326592)'
        fi
        h_run fio --name="nbd-$st" "${fio_args[@]}" --verify_only=1
        if h_expect_ok "$H_TEST.$t.fio_verify_only_reread" \
            "a second run reading back what the first wrote, over new connections"; then
            h_check "$H_TEST.$t.fio_reread_verified" "fio's report: $(fio_summary "$H_OUT")" \
                fio_did "$H_OUT" 'all(.read.io_bytes == 201326592)'
        fi
        # the verification is real: a corrupted megabyte in the backing file is found
        printf 'corrupted by the test%.0s' $(seq 50000) | head -c "$MIB" |
            dd of="$backing" bs=1M seek=100 count=1 conv=notrunc status=none
        h_run fio --name="nbd-$st" "${fio_args[@]}" --verify_only=1
        h_check "$H_TEST.$t.fio_verify_finds_corruption" \
            "fio --verify_only did not notice 1 MiB corrupted behind its back ($(h_last))" \
            [ "$H_RC" -ne 0 ]
    else
        h_skip "$H_TEST.$t.fio" "fio not installed"
    fi

    # --- qemu-img
    if command -v qemu-img >/dev/null 2>&1; then
        h_run qemu-img info --output=json "$uri"
        if h_expect_ok "$H_TEST.$t.qemu_img_info"; then
            h_check "$H_TEST.$t.qemu_img_info_size" "qemu-img info: $(h__oneline "$(head -c 300 "$H_OUT")")" \
                jq -e "(.[\"virtual-size\"] == $SIZE) and (.format == \"raw\")" "$H_OUT" >/dev/null
        fi
        q=$H_TMP/q.img
        { head -c $((28 * MIB)) "$SRC"; head -c $((8 * MIB)) /dev/zero
            tail -c $((28 * MIB)) "$SRC"; } >"$q"
        h_run qemu-img convert -n -f raw -O raw "$q" "$uri"
        if h_expect_ok "$H_TEST.$t.qemu_img_convert_to_nbd"; then
            h_check "$H_TEST.$t.qemu_img_convert_backing_equal" \
                "the backing file's first 64 MiB differ from the converted file (the zero hole: $(h_is_zero "$backing" $((28 * MIB)) $((8 * MIB)) && echo zero || echo not zero))" \
                h_cmp_region "$q" 0 "$backing" 0 $((64 * MIB))
        fi
        h_run qemu-img convert -f raw -O raw "$uri" "$H_TMP/qback.img"
        if h_expect_ok "$H_TEST.$t.qemu_img_convert_from_nbd"; then
            h_check "$H_TEST.$t.qemu_img_convert_roundtrip" \
                "the export converted back to a file differs from what was written" \
                h_cmp_region "$q" 0 "$H_TMP/qback.img" 0 $((64 * MIB))
            h_check "$H_TEST.$t.qemu_img_convert_rest" \
                "past 64 MiB the converted file differs from the backing file" \
                h_cmp_region "$backing" $((64 * MIB)) "$H_TMP/qback.img" $((64 * MIB)) $((SIZE - 64 * MIB))
        fi
        rm -f "$H_TMP/qback.img"
    else
        h_skip "$H_TEST.$t.qemu_img" "qemu-img not installed (qemu-utils)"
    fi
done

h_check "$H_TEST.alive_at_end" "toegw died or stopped answering" serve_alive
h_end
