#!/usr/bin/env bash
# Login and authentication: no auth, one-way CHAP, mutual CHAP (target_user /
# target_password), and every way of getting it wrong - which must exit 1 with a one-line
# message that never contains a secret.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need iscsi-inq

OPEN=iqn.2024-01.org.example.toegw:chap.open
ONEWAY=iqn.2024-01.org.example.toegw:chap.oneway
MUTUAL=iqn.2024-01.org.example.toegw:chap.mutual

U1=alice
S1=Chap1SecretAlice
U2=bob
S2=Chap2SecretBob12
TU=tgt3
TS=MutualSecretT3x9
WRONG=WrongSecretZ7q4
SECRETS=("$S1" "$S2" "$TS" "$WRONG")

h_tgtd_start
h_target_new 1 "$OPEN"
h_lun_file 1 1 8M 512
h_target_new 2 "$ONEWAY"
h_lun_file 2 1 8M 512
h_chap_in 2 "$U1" "$S1"
h_target_new 3 "$MUTUAL"
h_lun_file 3 1 8M 4096
h_chap_in 3 "$U2" "$S2"
h_chap_out 3 "$TU" "$TS"

MQ="target_user=$TU&target_password=$TS"

# Reference: libiscsi logs in with the right credentials and not with wrong ones.
h_run iscsi-inq "$(h_url 2 1 '' "$U1%$S1")"
h_check chap.ref_oneway_ok "$(h_last)" test "$H_RC" -eq 0
h_run iscsi-inq "$(h_url 2 1 '' "$U1%$WRONG")"
h_check chap.ref_oneway_wrong_refused "iscsi-inq logged in with a wrong secret" \
    test "$H_RC" -ne 0
h_run iscsi-inq "$(h_url 3 1 "$MQ" "$U2%$S2")"
h_check chap.ref_mutual_ok "$(h_last)" test "$H_RC" -eq 0

h_need_toegw

# luns_ok NAME URL - `toegw luns` logs in and lists LUN 1, leaking no secret.
luns_ok() {
    h_run "$TOEGW" luns "$2" --stack host
    if [ "$H_RC" -ne 0 ]; then
        h_fail "$1" "$(h_last)"
    elif ! h_no_leak "${SECRETS[@]}"; then
        h_fail "$1" "a secret appears in the output of a successful login"
    else
        h_pass "$1"
    fi
}

# roundtrip NAME URL BACKING - 256 KiB of random data written at 1 MiB, equal in the
# backing file and read back identically.
roundtrip() {
    local name=$1 url=$2 backing=$3 data=$H_TMP/$1.data off=1048576 len=262144
    h_random "$data" "$len"
    h_run "$TOEGW" write "$url" --offset "$off" --stack host <"$data"
    if [ "$H_RC" -ne 0 ]; then
        h_fail "$name" "write: $(h_last)"
        return
    fi
    if ! h_cmp_region "$data" 0 "$backing" "$off" "$len"; then
        h_fail "$name" "the backing file differs from the data written"
        return
    fi
    h_run "$TOEGW" read "$url" --offset "$off" --length "$len" --stack host
    if [ "$H_RC" -ne 0 ]; then
        h_fail "$name" "read: $(h_last)"
    elif ! cmp -s "$data" "$H_OUT"; then
        h_fail "$name" "read back $(h_size "$H_OUT") bytes that differ from the data written"
    else
        h_pass "$name"
    fi
}

# No authentication.
luns_ok chap.none_login "$(h_target_url 1)"
roundtrip chap.none_roundtrip "$(h_url 1 1)" "$(h_lun_path 1 1)"

# One-way CHAP.
luns_ok chap.oneway_login "$(h_target_url 2 '' "$U1%$S1")"
roundtrip chap.oneway_roundtrip "$(h_url 2 1 '' "$U1%$S1")" "$(h_lun_path 2 1)"

h_run "$TOEGW" luns "$(h_target_url 2)" --stack host
h_expect_error chap.oneway_no_credentials_refused 1 "${SECRETS[@]}"

h_run "$TOEGW" luns "$(h_target_url 2 '' "$U1%$WRONG")" --stack host
h_expect_error chap.oneway_wrong_secret_refused 1 "${SECRETS[@]}"

h_run "$TOEGW" read "$(h_url 2 1 '' "$U1%$WRONG")" --length 4096 --stack host
h_expect_error chap.oneway_wrong_secret_read_refused 1 "${SECRETS[@]}"
h_check chap.oneway_wrong_secret_no_data "data on stdout after a refused login" \
    test ! -s "$H_OUT"

h_run "$TOEGW" luns "$(h_target_url 2 '' "mallory%$S1")" --stack host
h_expect_error chap.oneway_wrong_user_refused 1 "${SECRETS[@]}"

# Mutual CHAP.
luns_ok chap.mutual_login "$(h_target_url 3 "$MQ" "$U2%$S2")"
roundtrip chap.mutual_roundtrip "$(h_url 3 1 "$MQ" "$U2%$S2")" "$(h_lun_path 3 1)"

h_run "$TOEGW" luns "$(h_target_url 3 "target_user=$TU&target_password=$WRONG" "$U2%$S2")" \
    --stack host
h_expect_error chap.mutual_wrong_target_secret_refused 1 "${SECRETS[@]}"

h_run "$TOEGW" luns "$(h_target_url 3 "target_user=impostor&target_password=$TS" "$U2%$S2")" \
    --stack host
h_expect_error chap.mutual_wrong_target_name_refused 1 "${SECRETS[@]}"

h_run "$TOEGW" luns "$(h_target_url 3 "$MQ" "$U2%$WRONG")" --stack host
h_expect_error chap.mutual_wrong_initiator_secret_refused 1 "${SECRETS[@]}"

# Errors that are not about authentication must not echo the URL's secrets either.
h_run "$TOEGW" luns "iscsi://$U1%$S1@$H_HOST:3261/$ONEWAY" --stack host
h_expect_error chap.unreachable_portal_no_leak 1 "${SECRETS[@]}"
h_run "$TOEGW" read "iscsi://$U1%$S1@$H_PORTAL/$ONEWAY" --stack host
h_expect_error chap.url_without_lun_no_leak 2 "${SECRETS[@]}"
h_run "$TOEGW" read "iscsi://$U1%$S1@$H_PORTAL/$ONEWAY/1?target_user=$TU&target_password=$TS&bogus_key=1" \
    --length 512 --stack host
if [ "$H_RC" -eq 0 ]; then
    h_check chap.unknown_url_key_no_leak "a secret appears in the output" h_no_leak "${SECRETS[@]}"
else
    h_expect_error chap.unknown_url_key_no_leak "1 2" "${SECRETS[@]}"
fi
h_run "$TOEGW" read "$(h_url 2 9 '' "$U1%$S1")" --length 512 --stack host
h_expect_error chap.missing_lun_no_leak 1 "${SECRETS[@]}"

h_end
