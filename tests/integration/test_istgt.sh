#!/usr/bin/env bash
# toegw against a second target implementation, Debian's istgt (tgtd is the first):
#   - discovery (`toegw discover`) lists every target istgt serves, over both stacks;
#   - `toegw luns` lists a target's two LUNs with their sizes;
#   - `toegw write` / `toegw read` round trips are byte-exact against istgt's backing files
#     over --stack host and --stack toe (whole LUN, offsets, an unaligned byte range);
#   - CRC32C header and data digests asked for in the URL, over both stacks, as toegw and
#     istgt each report them;
#   - LUs that insist on digests (istgt's UseDigest Header / Header Data) with a URL that
#     asks for none: toegw offers None,CRC32C, istgt picks CRC32C and I/O works (istgt
#     answers a lone None with Reject and runs digests anyway: the first command used to
#     die 5 s later); the same URL against an LU that leaves it to the initiator still gets
#     None; header_digest=none&data_digest=none against the insisting LU fails the login
#     with a one-line message that names the key;
#   - one-way and mutual CHAP, and every wrong credential, exit 1 with one line that never
#     holds a secret;
#   - `toegw serve`: REST sessions to istgt on each stack (one to the digest-insisting LU
#     without digest flags), NBD copies in and out equal the backing files byte for byte.
#
# istgt runs in the test's private network namespace with its own config dir under $H_TMP
# (lib/istgt.sh), never /etc/istgt, on a port of its own. It binds 0.0.0.0 there: the host
# stack reaches it at 127.0.0.1, the TOE at 192.0.2.1 (the TAP's host side, which exists only
# while toegw runs). The namespace holds nothing else.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need cmp truncate
# istgt binds every address of the namespace: 127.0.0.1 for the host stack, 192.0.2.1 (toe0)
# for the TOE
ISTGT_ADDR=0.0.0.0
# shellcheck source=lib/istgt.sh
. "$(dirname "$0")/lib/istgt.sh"

MIB=1048576
TOE_HOST=192.0.2.1
U1=alice
S1=IstgtSecret1a
U2=bob
S2=IstgtSecret2b
TU=istgt-target
TS=IstgtSecret3c
WRONG=WrongSecret4d
SECRETS=("$S1" "$S2" "$TS" "$WRONG")
MQ="target_user=$TU&target_password=$TS"

istgt_auth_group 1 "$U1" "$S1"
istgt_auth_group 2 "$U2" "$S2" "$TU" "$TS"
istgt_lu 1 disk1 32M --lun1 8M
istgt_lu 2 hdigest 16M --digest Header
istgt_lu 3 digests 16M --digest "Header Data"
istgt_lu 4 chap 16M --chap 1
istgt_lu 5 mutual 16M --chap 2 --mutual
istgt_start

# Reference: libiscsi (offering HeaderDigest=None,CRC32C) reads the LU that insists on
# header digests.
if command -v iscsi-inq >/dev/null 2>&1; then
    h_run iscsi-inq "$(istgt_url 2 0)"
    h_check istgt.ref_libiscsi_header_digest_lu "$(h_last)" test "$H_RC" -eq 0
else
    h_skip istgt.ref_libiscsi "iscsi-inq not found (libiscsi-bin): no reference login"
fi

h_need_toe

HAVE_TOE=1
[ -c /dev/net/tun ] || HAVE_TOE=
STACKS=(host)
if [ -n "$HAVE_TOE" ]; then
    STACKS+=(toe)
else
    h_skip istgt.toe "no /dev/net/tun: the TOE stack is not tested against istgt"
fi

# host STACK - the address istgt is reached at from STACK.
host() {
    if [ "$1" = toe ]; then echo "$TOE_HOST"; else echo 127.0.0.1; fi
}

# logged_in_with HD DD - the last command's log says the session ran these digests.
# shellcheck disable=SC2317 # called through h_check
logged_in_with() {
    grep -q "logged in to .*digests $1/$2," "$H_ERR"
}

# digests_seen - "hd/dd" from the last command's login line, for messages.
digests_seen() {
    sed -n 's/.*logged in to .*digests \([a-z0-9]*\/[a-z0-9]*\),.*/\1/p' "$H_ERR" | head -n 1
}

# istgt_login_has LINE TEXT - a "Login" line of istgt's after line LINE holds TEXT.
# shellcheck disable=SC2317 # called through h_check
istgt_login_has() {
    istgt_logins_since "$1" | grep -qF "$2"
}

# json_true FILTER FILE - jq's FILTER holds for FILE.
# shellcheck disable=SC2317 # called through h_check
json_true() {
    h_json "$1" "$2" >/dev/null
}

# placed STACK - the last command's connection went where it was told.
# shellcheck disable=SC2317 # called through h_check
placed() {
    grep -qF "connection placed on the $1 stack" "$H_ERR"
}

# same_outside FILE BEFORE OFF LEN - FILE equals BEFORE except in [OFF, OFF+LEN).
# shellcheck disable=SC2317 # called through h_check
same_outside() {
    local size
    size=$(h_size "$2")
    h_cmp_region "$1" 0 "$2" 0 "$3" &&
        h_cmp_region "$1" $(($3 + $4)) "$2" $(($3 + $4)) $((size - $3 - $4))
}

# roundtrip NAME URL STACK BACKING OFF LEN - LEN random bytes written at OFF equal the
# backing file there (the rest of the LUN untouched), and read back identically.
roundtrip() {
    local name=$1 url=$2 st=$3 backing=$4 off=$5 len=$6 data=$H_TMP/$1.data
    h_random "$data" "$len"
    cp -- "$backing" "$H_TMP/before.img"
    h_run "$TOEGW" write "$url" --offset "$off" --stack "$st" --log-level debug <"$data"
    if ! h_expect_ok "$name.write"; then
        return 1
    fi
    h_check "$name.write_on_$st" "placed: $(grep -o 'placed on the [a-z]* stack' "$H_ERR")" \
        placed "$st"
    h_check "$name.write_matches_backing" "istgt's backing file differs from the data" \
        h_cmp_region "$data" 0 "$backing" "$off" "$len"
    h_check "$name.write_changed_only_its_range" "bytes outside the write changed" \
        same_outside "$backing" "$H_TMP/before.img" "$off" "$len"
    h_run "$TOEGW" read "$url" --offset "$off" --length "$len" --stack "$st" --log-level info
    if h_expect_ok "$name.read"; then
        h_check "$name.read_matches" "read $(h_size "$H_OUT") bytes that differ" \
            cmp -s "$data" "$H_OUT"
    fi
}

# --- discovery ---------------------------------------------------------------------------

for st in "${STACKS[@]}"; do
    a=$(host "$st")
    h_run "$TOEGW" discover "$a:$ISTGT_PORT" --stack "$st"
    if h_expect_ok "istgt.$st.discover"; then
        missing=
        for n in 1 2 3 4 5; do
            grep -qx "${ISTGT_IQN[$n]} $a:$ISTGT_PORT,1" "$H_OUT" ||
                missing="$missing ${ISTGT_IQN[$n]}"
        done
        h_check "istgt.$st.discover_lists_every_target" \
            "missing:$missing (got: $(h__oneline "$(cat "$H_OUT")"))" test -z "$missing"
    fi
done

# --- LUNs ---------------------------------------------------------------------------------

h_run "$TOEGW" luns "$(istgt_target_url 1)" --stack host
# shellcheck disable=SC2016 # awk programs
if h_expect_ok istgt.luns; then
    h_check istgt.luns_lun0_32m "got: $(h__oneline "$(cat "$H_OUT")")" \
        awk -v want=$((32 * MIB)) '$1 == "lun" && $2 == 0 && $3 == want { f = 1 } END { exit !f }' \
        "$H_OUT"
    h_check istgt.luns_lun1_8m "got: $(h__oneline "$(cat "$H_OUT")")" \
        awk -v want=$((8 * MIB)) '$1 == "lun" && $2 == 1 && $3 == want { f = 1 } END { exit !f }' \
        "$H_OUT"
    h_check istgt.luns_two "got: $(h__oneline "$(cat "$H_OUT")")" \
        test "$(grep -c '^lun ' "$H_OUT")" -eq 2
fi

# --- byte-exact I/O over both stacks ----------------------------------------------------------

b0=$(istgt_lun_path 1 0)
b1=$(istgt_lun_path 1 1)
for st in "${STACKS[@]}"; do
    a=$(host "$st")
    if [ "$st" = host ]; then off=$((3 * MIB + 7 * 512)); else off=$((16 * MIB + 4096)); fi
    roundtrip "istgt.$st.io_8m" "$(istgt_url 1 0 '' '' "$a")" "$st" "$b0" "$off" $((8 * MIB))
    # the whole 8 MiB LUN 1, written and read back entire
    roundtrip "istgt.$st.io_whole_lun1" "$(istgt_url 1 1 '' '' "$a")" "$st" "$b1" 0 $((8 * MIB))
    # a byte range that starts and ends inside blocks
    h_run "$TOEGW" read "$(istgt_url 1 0 '' '' "$a")" --offset $((off + 1000)) --length 5000 \
        --stack "$st"
    if h_expect_ok "istgt.$st.read_unaligned"; then
        h_check "istgt.$st.read_unaligned_matches" "read $(h_size "$H_OUT") bytes that differ" \
            h_cmp_region "$H_OUT" 0 "$b0" $((off + 1000)) 5000
    fi
done

# --- digests asked for in the URL -------------------------------------------------------------

dq='header_digest=crc32c&data_digest=crc32c'
for st in "${STACKS[@]}"; do
    a=$(host "$st")
    lines=$(istgt_log_lines)
    roundtrip "istgt.$st.crc32c_both" "$(istgt_url 3 0 "$dq" '' "$a")" "$st" \
        "$(istgt_lun_path 3 0)" $((2 * MIB)) $((4 * MIB))
    h_check "istgt.$st.crc32c_both_toegw_says_on" "toegw ran digests $(digests_seen)" \
        logged_in_with crc32c crc32c
    h_check "istgt.$st.crc32c_both_istgt_says_on" \
        "istgt: $(h__oneline "$(istgt_logins_since "$lines" | tail -n 1)")" \
        istgt_login_has "$lines" 'HeaderDigest=on, DataDigest=on'
done
roundtrip istgt.host.crc32c_header_on_auto_lu \
    "$(istgt_url 1 0 header_digest=crc32c)" host "$b0" $((24 * MIB)) $((2 * MIB))
h_check istgt.host.crc32c_header_on_auto_lu_digests "toegw ran digests $(digests_seen)" \
    logged_in_with crc32c none

# --- LUs that insist on digests, URL without digest flags ---------------------------------------

for st in "${STACKS[@]}"; do
    a=$(host "$st")
    h_run "$TOEGW" luns "$(istgt_target_url 3 '' '' "$a")" --stack "$st" --log-level info
    if h_expect_ok "istgt.$st.insisting_lu_luns"; then
        h_check "istgt.$st.insisting_lu_luns_lists_lun0" "got: $(h__oneline "$(cat "$H_OUT")")" \
            grep -q '^lun 0 ' "$H_OUT"
        h_check "istgt.$st.insisting_lu_took_crc32c" "toegw ran digests $(digests_seen)" \
            logged_in_with crc32c crc32c
    fi
    roundtrip "istgt.$st.insisting_lu_io" "$(istgt_url 3 0 '' '' "$a")" "$st" \
        "$(istgt_lun_path 3 0)" $((8 * MIB)) $((4 * MIB))
    h_check "istgt.$st.insisting_lu_io_digests" "toegw ran digests $(digests_seen)" \
        logged_in_with crc32c crc32c
done
roundtrip istgt.host.header_lu_io "$(istgt_url 2 0)" host "$(istgt_lun_path 2 0)" \
    $((1 * MIB)) $((4 * MIB))
h_check istgt.host.header_lu_took_header_crc32c "toegw ran digests $(digests_seen)" \
    grep -q 'logged in to .*digests crc32c/' "$H_ERR"
# An LU that leaves the choice to the initiator: None comes first in our offer.
h_run "$TOEGW" luns "$(istgt_target_url 1)" --stack host --log-level info
h_check istgt.host.auto_lu_stays_without_digests "toegw ran digests $(digests_seen), $(h_last)" \
    logged_in_with none none
# Digests refused in the URL against an LU that insists: a clean login failure.
h_run "$TOEGW" luns "$(istgt_target_url 3 'header_digest=none&data_digest=none')" --stack host
h_expect_error istgt.host.insisting_lu_refused_none_fails 1
h_check istgt.host.insisting_lu_refused_none_names_the_key \
    "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q 'Digest=Reject' "$H_ERR"

# --- CHAP -------------------------------------------------------------------------------------

# luns_ok NAME URL STACK - `toegw luns` logs in and lists LUN 0, leaking no secret.
luns_ok() {
    h_run "$TOEGW" luns "$2" --stack "$3"
    if [ "$H_RC" -ne 0 ]; then
        h_fail "$1" "$(h_last)"
    elif ! grep -q '^lun 0 ' "$H_OUT"; then
        h_fail "$1" "no lun 0 in: $(h__oneline "$(cat "$H_OUT")")"
    elif ! h_no_leak "${SECRETS[@]}"; then
        h_fail "$1" "a secret appears in the output of a successful login"
    else
        h_pass "$1"
    fi
}

for st in "${STACKS[@]}"; do
    a=$(host "$st")
    if [ "$st" = toe ]; then off=$((4 * MIB)); else off=0; fi
    luns_ok "istgt.$st.chap_oneway_login" "$(istgt_target_url 4 '' "$U1%$S1" "$a")" "$st"
    roundtrip "istgt.$st.chap_oneway_io" "$(istgt_url 4 0 '' "$U1%$S1" "$a")" "$st" \
        "$(istgt_lun_path 4 0)" "$off" $((2 * MIB))
    luns_ok "istgt.$st.chap_mutual_login" "$(istgt_target_url 5 "$MQ" "$U2%$S2" "$a")" "$st"
    roundtrip "istgt.$st.chap_mutual_io" "$(istgt_url 5 0 "$MQ" "$U2%$S2" "$a")" "$st" \
        "$(istgt_lun_path 5 0)" "$off" $((2 * MIB))
done

h_run "$TOEGW" luns "$(istgt_target_url 4)" --stack host
h_expect_error istgt.chap_oneway_no_credentials_refused 1 "${SECRETS[@]}"
h_run "$TOEGW" luns "$(istgt_target_url 4 '' "$U1%$WRONG")" --stack host
h_expect_error istgt.chap_oneway_wrong_secret_refused 1 "${SECRETS[@]}"
h_check istgt.chap_oneway_wrong_secret_says_why "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q 'authentication failed' "$H_ERR"
h_run "$TOEGW" read "$(istgt_url 4 0 '' "$U1%$WRONG")" --length 4096 --stack host
h_expect_error istgt.chap_oneway_wrong_secret_read_refused 1 "${SECRETS[@]}"
h_check istgt.chap_oneway_wrong_secret_no_data "data on stdout after a refused login" \
    test ! -s "$H_OUT"
h_run "$TOEGW" luns "$(istgt_target_url 4 '' "mallory%$S1")" --stack host
h_expect_error istgt.chap_oneway_wrong_user_refused 1 "${SECRETS[@]}"
h_run "$TOEGW" luns "$(istgt_target_url 5 "target_user=$TU&target_password=$WRONG" "$U2%$S2")" \
    --stack host
h_expect_error istgt.chap_mutual_wrong_target_secret_refused 1 "${SECRETS[@]}"
h_check istgt.chap_mutual_wrong_target_secret_says_why "stderr: $(h__oneline "$(cat "$H_ERR")")" \
    grep -q 'mutual chap failed' "$H_ERR"
h_run "$TOEGW" luns "$(istgt_target_url 5 "target_user=impostor&target_password=$TS" "$U2%$S2")" \
    --stack host
h_expect_error istgt.chap_mutual_wrong_target_name_refused 1 "${SECRETS[@]}"
h_run "$TOEGW" luns "$(istgt_target_url 5 "$MQ" "$U2%$WRONG")" --stack host
h_expect_error istgt.chap_mutual_wrong_initiator_secret_refused 1 "${SECRETS[@]}"

# --- toegw serve: REST sessions to istgt, NBD I/O ---------------------------------------------

if ! command -v nbdcopy >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1 ||
    ! command -v curl >/dev/null 2>&1; then
    h_skip istgt.serve "nbdcopy, jq or curl not found: toegw serve is not tested against istgt"
else
    # shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
    . "$(dirname "$0")/lib/nbd.sh"
    nbd_serve
    # nbd_login finds targets in H_IQN by key.
    H_IQN["i1"]=${ISTGT_IQN[1]}
    H_IQN["i3"]=${ISTGT_IQN[3]}
    declare -A SERVE_LU=([host]=3 [toe]=1)
    SERVE_STACKS=(host)
    [ -n "$HAVE_TOE" ] && SERVE_STACKS+=(toe)
    for st in "${SERVE_STACKS[@]}"; do
        n=${SERVE_LU[$st]}
        if ! nbd_login "$st" "i$n" "$(host "$st"):$ISTGT_PORT" "$st"; then
            continue
        fi
        if [ "$n" = 3 ]; then
            code=$(api GET "/api/v1/sessions/${SID[$st]}")
            h_check "istgt.serve.$st.insisting_lu_session_digests" \
                "GET session answered $code: $(jq -c .negotiated "$H_TMP/api.json" 2>&1)" \
                json_true '.negotiated | .header_digest == "crc32c" and .data_digest == "crc32c"' \
                "$H_TMP/api.json"
        fi
        uri=${URI[$st.0]:-}
        if [ -z "$uri" ]; then
            h_fail "istgt.serve.$st.export" "no export URI for LUN 0 of ${ISTGT_IQN[$n]}"
            continue
        fi
        backing=$(istgt_lun_path "$n" 0)
        src=$H_TMP/serve-$st.img
        h_random "$src" "$(h_size "$backing")"
        h_run nbdcopy "$src" "$uri"
        if h_expect_ok "istgt.serve.$st.nbdcopy_write"; then
            h_check "istgt.serve.$st.nbdcopy_write_backing_equal" \
                "istgt's backing file differs ($(cmp "$src" "$backing" 2>&1 | head -c 120))" \
                cmp -s "$src" "$backing"
        fi
        h_run nbdcopy "$uri" "$H_TMP/serve-$st.back"
        if h_expect_ok "istgt.serve.$st.nbdcopy_read"; then
            h_check "istgt.serve.$st.nbdcopy_read_equal" \
                "nbdcopy read $(cmp "$src" "$H_TMP/serve-$st.back" 2>&1 | head -c 120)" \
                cmp -s "$src" "$H_TMP/serve-$st.back"
        fi
    done
    h_check istgt.serve.alive "toegw serve died or stopped answering /livez" serve_alive
fi

h_check istgt.target_alive "istgt exited: $(h__oneline "$(tail -c 300 "$ISTGT_DIR/istgt.log")")" \
    istgt_alive
h_end
