#!/usr/bin/env bash
# Data integrity of `toegw write` / `toegw read` on 512- and 4096-byte-block LUNs: 8 MiB of
# random data at offset 0 and at a non-zero offset equal the tgtd backing file byte for byte
# (LUN byte 0 = file byte 0) and read back identically; the whole LUN reads back as the file;
# ranges past the end and misaligned offsets fail cleanly without touching the LUN.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"

SIZE=$((32 * 1048576))
MIB8=$((8 * 1048576))

h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:io
h_lun_file 1 1 "$SIZE" 512
h_lun_file 1 2 "$SIZE" 4096

h_need_toegw

# region_is FILE BACKING OFF LEN - FILE is exactly LEN bytes, equal to BACKING at OFF.
# shellcheck disable=SC2317 # called through h_check
region_is() {
    [ "$(h_size "$1")" -eq "$4" ] && h_cmp_region "$1" 0 "$2" "$3" "$4"
}

# partial_write_exact DATA BACKING OFF BEFORE - the 1000 bytes of DATA are at OFF and the
# rest of that block still holds what BEFORE (the earlier write at offset 0) put there.
# shellcheck disable=SC2317 # called through h_check
partial_write_exact() {
    h_cmp_region "$1" 0 "$2" "$3" 1000 &&
        h_cmp_region "$4" $(($3 + 1000)) "$2" $(($3 + 1000)) 12
}

for lun in 1 2; do
    bs=$((lun == 1 ? 512 : 4096))
    p=io.bs$bs
    url=$(h_url 1 "$lun")
    backing=$(h_lun_path 1 "$lun")
    d0=$H_TMP/d0.$lun
    d1=$H_TMP/d1.$lun
    h_random "$d0" "$MIB8"
    h_random "$d1" "$MIB8"
    # A non-zero offset, block aligned but not on a power-of-two boundary.
    off=$((3 * 1048576 + 5 * bs))

    # 8 MiB at offset 0.
    h_run "$TOEGW" write "$url" --stack host <"$d0"
    if h_expect_ok "$p.write_8m_at_0"; then
        h_check "$p.write_8m_at_0_matches_backing" "backing file differs" \
            h_cmp_region "$d0" 0 "$backing" 0 "$MIB8"
        h_check "$p.write_8m_at_0_rest_untouched" "bytes after the write changed" \
            h_is_zero "$backing" "$MIB8" $((SIZE - MIB8))
    fi
    h_run "$TOEGW" read "$url" --offset 0 --length "$MIB8" --stack host
    if h_expect_ok "$p.read_8m_at_0"; then
        h_check "$p.read_8m_at_0_matches" "read $(h_size "$H_OUT") bytes that differ" \
            cmp -s "$d0" "$H_OUT"
    fi

    # 8 MiB at a non-zero offset (overlapping the first write).
    h_run "$TOEGW" write "$url" --offset "$off" --stack host <"$d1"
    if h_expect_ok "$p.write_8m_at_$off"; then
        h_check "$p.write_8m_at_${off}_matches_backing" "backing file differs" \
            h_cmp_region "$d1" 0 "$backing" "$off" "$MIB8"
        h_check "$p.write_8m_at_${off}_before_untouched" "bytes before the offset changed" \
            h_cmp_region "$d0" 0 "$backing" 0 "$off"
        h_check "$p.write_8m_at_${off}_after_untouched" "bytes after the range changed" \
            h_is_zero "$backing" $((off + MIB8)) $((SIZE - off - MIB8))
    fi
    h_run "$TOEGW" read "$url" --offset "$off" --length "$MIB8" --stack host
    if h_expect_ok "$p.read_8m_at_$off"; then
        h_check "$p.read_8m_at_${off}_matches" "read $(h_size "$H_OUT") bytes that differ" \
            cmp -s "$d1" "$H_OUT"
    fi

    # A single block just before the end.
    h_random "$H_TMP/blk" "$bs"
    h_run "$TOEGW" write "$url" --offset $((SIZE - bs)) --stack host <"$H_TMP/blk"
    if h_expect_ok "$p.write_last_block"; then
        h_check "$p.write_last_block_matches" "backing file differs" \
            h_cmp_region "$H_TMP/blk" 0 "$backing" $((SIZE - bs)) "$bs"
    fi

    # The whole LUN: no --offset, no --length.
    h_run "$TOEGW" read "$url" --stack host
    if h_expect_ok "$p.read_whole_lun"; then
        h_check "$p.read_whole_lun_matches" \
            "read $(h_size "$H_OUT") bytes, wanted the $SIZE bytes of the backing file" \
            cmp -s "$backing" "$H_OUT"
    fi

    # --offset only: from there to the end.
    h_run "$TOEGW" read "$url" --offset $((SIZE - 4 * bs)) --stack host
    if h_expect_ok "$p.read_offset_to_end"; then
        h_check "$p.read_offset_to_end_matches" "read $(h_size "$H_OUT") bytes" \
            h_cmp_region "$H_OUT" 0 "$backing" $((SIZE - 4 * bs)) $((4 * bs))
    fi

    sum=$(md5sum <"$backing")

    # Past the end of the LUN.
    h_run "$TOEGW" read "$url" --offset "$SIZE" --length "$bs" --stack host
    h_expect_error "$p.read_at_end_fails" 1
    h_run "$TOEGW" read "$url" --offset $((SIZE - bs)) --length $((2 * bs)) --stack host
    h_expect_error "$p.read_across_end_fails" 1
    h_check "$p.read_across_end_no_partial_output" "$(h_size "$H_OUT") bytes on stdout" \
        test ! -s "$H_OUT"
    h_random "$H_TMP/two" $((2 * bs))
    h_run "$TOEGW" write "$url" --offset $((SIZE - bs)) --stack host <"$H_TMP/two"
    h_expect_error "$p.write_across_end_fails" 1
    h_run "$TOEGW" write "$url" --offset "$SIZE" --stack host <"$H_TMP/blk"
    h_expect_error "$p.write_at_end_fails" 1
    h_run "$TOEGW" write "$url" --offset $((SIZE * 4)) --stack host <"$H_TMP/blk"
    h_expect_error "$p.write_far_past_end_fails" 1

    # Misaligned offsets: an error (operation failed or bad usage), nothing written.
    h_run "$TOEGW" write "$url" --offset $((bs / 2 + 4)) --stack host <"$H_TMP/blk"
    h_expect_error "$p.write_misaligned_offset_fails" "1 2"

    # A misaligned read: either refused cleanly, or exactly the bytes asked for (the
    # initiator may widen the read to whole blocks and trim it).
    h_run "$TOEGW" read "$url" --offset $((bs + 100)) --length "$bs" --stack host
    if [ "$H_RC" -eq 0 ]; then
        h_check "$p.read_misaligned_offset_exact" \
            "got $(h_size "$H_OUT") bytes that differ from the backing file at $((bs + 100))" \
            region_is "$H_OUT" "$backing" $((bs + 100)) "$bs"
    else
        h_expect_error "$p.read_misaligned_offset_refused" "1 2"
    fi

    h_check "$p.failed_ops_left_lun_untouched" "the backing file changed" \
        test "$(md5sum <"$backing")" = "$sum"

    # A write whose length is not a multiple of the block size: either refused cleanly with
    # the LUN untouched, or exactly those bytes written (read-modify-write).
    h_random "$H_TMP/odd" 1000
    h_run "$TOEGW" write "$url" --offset $((4 * bs)) --stack host <"$H_TMP/odd"
    if [ "$H_RC" -eq 0 ]; then
        h_check "$p.write_partial_block_exact" "the 1000 bytes are not exactly in place" \
            partial_write_exact "$H_TMP/odd" "$backing" $((4 * bs)) "$d0"
    else
        h_expect_error "$p.write_partial_block_refused" "1 2"
        h_check "$p.write_partial_block_refused_untouched" "the backing file changed" \
            test "$(md5sum <"$backing")" = "$sum"
    fi
done

# Empty stdin: nothing to write; success, or a clean one-line error.
h_run "$TOEGW" write "$(h_url 1 1)" --offset 0 --stack host </dev/null
if [ "$H_RC" -eq 0 ]; then
    h_pass io.write_empty_stdin
else
    h_expect_error io.write_empty_stdin 1
fi

h_end
