#!/usr/bin/env bash
# LUN listing: `toegw luns URL` on a target with three LUNs (512- and 4096-byte blocks,
# custom and default INQUIRY strings) prints each LUN's number, exact size in bytes, block
# size and vendor/product, in text and JSON, as libiscsi reports them.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need iscsi-ls iscsi-readcapacity16

IQN=iqn.2024-01.org.example.toegw:luns
# lun size block vendor product
LUNS=(
    "1 16777216 512 TOEGWTST DISK512"
    "2 25165824 4096 TOEGWTST DISK4K"
    "3 10487296 512 IET VIRTUAL-DISK"
)

h_tgtd_start
h_target_new 1 "$IQN"
h_lun_file 1 1 16777216 512 vendor_id=TOEGWTST,product_id=DISK512
h_lun_file 1 2 25165824 4096 vendor_id=TOEGWTST,product_id=DISK4K
h_lun_file 1 3 10487296 512

# Reference: libiscsi reads the same capacities and block sizes (proves the fixture).
for l in "${LUNS[@]}"; do
    read -r n size bs _ <<<"$l"
    h_run iscsi-readcapacity16 "$(h_url 1 "$n")"
    got_bs=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' "$H_OUT")
    got_size=$(sed -n 's/^Total size:\([0-9]*\).*/\1/p' "$H_OUT")
    h_check "luns.ref_readcapacity_lun$n" \
        "iscsi-readcapacity16: size '$got_size' block '$got_bs', wanted $size $bs" \
        test "$got_size:$got_bs" = "$size:$bs"
done

h_need_toegw

# Words of one line, for token-wise matching ("Lun:1 Size:16777216 512-byte" ->
# "Lun 1 Size 16777216 512 byte").
words() {
    tr -c '[:alnum:]\n' ' ' | tr -s ' '
}

# The line describing LUN $1: the first output line whose words include the LUN number
# followed later by its exact size in bytes. Prints the line as toegw wrote it.
lun_line() {
    local n=$1 size=$2 line
    while IFS= read -r line; do
        if grep -qE "(^| )$n( .*)? $size( |$)" <<<"$(words <<<"$line")"; then
            printf '%s\n' "$line"
            return
        fi
    done <"$H_OUT"
}

# shellcheck disable=SC2317 # called through h_check
contains_both() {
    grep -qF -- "$2" <<<"$1" && grep -qF -- "$3" <<<"$1"
}

for url in "$(h_target_url 1)" "$(h_url 1 1)"; do
    h_run "$TOEGW" luns "$url" --stack host
    [ "$H_RC" -eq 0 ] && break
done
h_log "luns URL form used: $url"
if h_expect_ok luns.text_exit0 "toegw luns $(h_target_url 1) and $(h_url 1 1)"; then
    for l in "${LUNS[@]}"; do
        read -r n size bs vendor product <<<"$l"
        line=$(lun_line "$n" "$size")
        if [ -z "$line" ]; then
            h_fail "luns.text_lun${n}_size" "no line with LUN $n and size $size bytes in: $(h__oneline "$(cat "$H_OUT")")"
            continue
        fi
        h_pass "luns.text_lun${n}_size"
        h_check "luns.text_lun${n}_block_size" "block size $bs not on line '$line'" \
            grep -qE "(^| )$bs( |$)" <<<"$(words <<<"$line")"
        h_check "luns.text_lun${n}_vendor_product" "'$vendor'/'$product' not on line '$line'" \
            contains_both "$line" "$vendor" "$product"
    done
fi

# JSON: the fields of the REST volume object (lun, size_bytes, block_size, vendor, product);
# a bare array or an object with a "luns" array.
if command -v jq >/dev/null 2>&1; then
    h_run "$TOEGW" luns "$url" --stack host --json
    if h_expect_ok luns.json_exit0; then
        sel='(if type == "object" then (.luns // .volumes) else . end) | .[]'
        for l in "${LUNS[@]}"; do
            read -r n size bs vendor product <<<"$l"
            obj=$(h_json "[$sel | select(.lun == $n)] | first" "$H_OUT")
            if [ -z "$obj" ] || [ "$obj" = null ]; then
                h_fail "luns.json_lun$n" "no object with \"lun\": $n in $(h__oneline "$(head -c 400 "$H_OUT")")"
                continue
            fi
            got=$(jq -r '"\(.size_bytes) \(.block_size) \(.vendor|tostring|gsub("^ +| +$";"")) \(.product|tostring|gsub("^ +| +$";""))"' <<<"$obj")
            h_check "luns.json_lun$n" "got '$got', wanted '$size $bs $vendor $product'" \
                test "$got" = "$size $bs $vendor $product"
        done
    fi
else
    h_skip luns.json "jq not found"
fi

# A target that does not exist: clean failure.
h_run "$TOEGW" luns "iscsi://$H_PORTAL/iqn.2024-01.org.example.toegw:nosuch/1" --stack host
h_expect_error luns.unknown_target_fails 1

h_end
