#!/usr/bin/env bash
# Login redirect (RFC 7143 status class 1): a target on 127.0.0.1 redirects its logins to a
# second tgtd on 127.0.0.2 that has the same target name. toegw must follow TargetAddress,
# log in there, and its I/O must land on the second target's backing file.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need_toegw

IQN=iqn.2024-01.org.example.toegw:redirect
h_tgtd_start
h_target_new 1 "$IQN"
h_lun_file 1 1 4M 512

# The second target: its own tgtd, control port and backing file.
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
cport2=$(( H_TGTD_CPORT + 1 ))
tgtd -f -C "$cport2" --iscsi portal=127.0.0.2:3260 >"$H_TMP/tgtd2.log" 2>&1 </dev/null &
h_bg_register $!
for _ in $(seq 100); do
    tgtadm -C "$cport2" --op show --mode target >/dev/null 2>&1 && break
    sleep 0.05
done
lun2=$H_TMP/redirected.img
truncate -s 4M "$lun2"
tgtadm -C "$cport2" --lld iscsi --op new --mode target --tid 1 -T "$IQN" &&
    tgtadm -C "$cport2" --lld iscsi --op bind --mode target --tid 1 -I ALL &&
    tgtadm -C "$cport2" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun2" ||
    { h_fail redirect.setup "cannot set up the second tgtd"; h_end; }

# Without a redirect: the first target answers.
h_random "$H_TMP/a.bin" 65536
h_run "$TOEGW" write "$(h_url 1 1)" --stack host <"$H_TMP/a.bin"
h_expect_ok redirect.before_exit0
h_check redirect.before_lands_on_first "data not on the first target's file" \
    cmp -n 65536 "$H_TMP/a.bin" "$(h_lun_path 1 1)"

# Redirect logins of the first target to the second.
h_target_param 1 RedirectAddress 127.0.0.2
h_target_param 1 RedirectPort 3260
h_target_param 1 RedirectReason Temporary

h_random "$H_TMP/b.bin" 65536
h_run "$TOEGW" write "$(h_url 1 1)" --stack host --log-level info <"$H_TMP/b.bin"
h_expect_ok redirect.write_exit0
h_check redirect.logged "no 'login redirected' line: $(h_last)" \
    grep -q "login redirected to 127.0.0.2:3260" "$H_ERR"
h_check redirect.lands_on_second "data not on the second target's file" \
    cmp -n 65536 "$H_TMP/b.bin" "$lun2"
h_check redirect.first_untouched "the first target's file changed" \
    cmp -n 65536 "$H_TMP/a.bin" "$(h_lun_path 1 1)"

h_run "$TOEGW" read "$(h_url 1 1)" --stack host --length 65536
h_expect_ok redirect.read_exit0
h_check redirect.read_back "read back differs" cmp "$H_OUT" "$H_TMP/b.bin"

tgtadm -C "$cport2" --op delete --mode system --force >/dev/null 2>&1
h_end
