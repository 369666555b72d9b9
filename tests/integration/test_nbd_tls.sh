#!/usr/bin/env bash
#
# test_nbd_tls.sh - NBD over TLS and per-volume access (docs/security.md) with real clients.
#
# In a private network namespace: tgtd with one target of three 64 MiB LUNs, toegw serve with
# a "stack":"host" session to it through 127.0.0.1. Keys made here: two PSK identities
# (psktool: alice, bob), a wrong key for alice, a CA with a server certificate and a client
# certificate (certtool: CN carol). Checks:
#   - start-up refuses (exit 2, naming the file and line, never a key) a malformed PSK file,
#     a missing one, a certificate directory without a key, --tls-verify-peer without a CA;
#   - --nbd-tls require, PSK and certificates: the API's export URIs are nbds://; nbdinfo and
#     nbdcopy with tls-psk-file (32 MiB written and read back, byte-exact against tgtd's
#     backing file); qemu-img convert to and from the export with tls-creds-psk and with
#     tls-creds-x509, qemu-io writing and verifying a pattern; a 32 MiB reply to a client
#     that reads it slowly through a small receive buffer (python's ssl); nbdinfo with the client certificate; a plaintext client is refused
#     (NBD_REP_ERR_TLS_REQD on the wire, NBD_OPT_EXPORT_NAME hung up on); a wrong PSK is
#     refused; every refusal named in the log;
#   - PATCH /api/v1/volumes/{id}: bad input answered 422/400/404; an allow list admits only
#     the identities in it (PSK identity or certificate CN) and refuses the others with
#     NBD_REP_ERR_POLICY, logging identity and volume; read_only: NBD_FLAG_READ_ONLY,
#     nbdcopy's write refused, a write with libnbd's strict mode off gets EPERM from the
#     server, reads still served, the backing file unchanged;
#   - the access survives a restart (state file);
#   - --nbd-tls on with --tls-verify-peer: plaintext still served, a TLS client without a
#     certificate refused, one with it admitted, a plaintext client refused by an allow list;
#   - --nbd-tls require alone: STATE_DIR/tls/'s self-signed certificate, trusted by a client
#     that takes it as its CA (nbdcopy, byte-exact), refused by one trusting another CA;
#   - no key in the daemon's log or the API's answers; toegw stays up.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdinfo nbdcopy cmp psktool certtool
h_need_toegw

# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

MIB=1048576
SIZE=$((64 * MIB))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:nbd-tls
h_lun_file 1 1 "$SIZE" 4096
h_lun_file 1 2 "$SIZE" 4096
h_lun_file 1 3 "$SIZE" 512

# --- keys ------------------------------------------------------------------------------------

K=$H_TMP/keys
mkdir -p "$K/server" "$K/carol" "$K/nocert" "$K/noca" "$K/qpsk" "$K/wrong"
psktool -u alice -p "$K/psk.keys" >/dev/null 2>&1 &&
    psktool -u bob -p "$K/psk.keys" >/dev/null 2>&1 &&
    psktool -u alice -p "$K/wrong/keys.psk" >/dev/null 2>&1 ||
    h_skip_all "psktool could not make keys"
grep '^alice:' "$K/psk.keys" >"$K/qpsk/keys.psk"     # qemu's tls-creds-psk dir
ALICE_KEY=$(sed -n 's/^alice://p' "$K/psk.keys")
BOB_KEY=$(sed -n 's/^bob://p' "$K/psk.keys")

certs() {
    cd "$K" || return 1
    printf 'cn = toegw test ca\nca\ncert_signing_key\nexpiration_days = 2\n' >ca.info
    printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' >server.info
    printf 'cn = carol\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n' >client.info
    certtool --generate-privkey --outfile ca-key.pem &&
        certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info \
            --outfile ca-cert.pem &&
        certtool --generate-privkey --outfile server/server-key.pem &&
        certtool --generate-certificate --load-privkey server/server-key.pem \
            --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
            --template server.info --outfile server/server-cert.pem &&
        certtool --generate-privkey --outfile carol/client-key.pem &&
        certtool --generate-certificate --load-privkey carol/client-key.pem \
            --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
            --template client.info --outfile carol/client-cert.pem &&
        cp ca-cert.pem server/ && cp ca-cert.pem carol/ && cp ca-cert.pem nocert/ &&
        cp server/server-cert.pem server/server-key.pem noca/
}
(certs) >"$H_TMP/certtool.log" 2>&1 ||
    h_skip_all "certtool could not make the certificates: $(tail -c 200 "$H_TMP/certtool.log")"

# --- start-up refusals -----------------------------------------------------------------------

# serve_refused NAME WANT FLAG... - toegw serve exits 2 before starting, its one-line error
# contains WANT, and no key appears in it.
serve_refused() {
    local name=$1 want=$2
    shift 2
    h_run "$TOEGW" serve --no-toe --state-dir "$H_TMP/refused" --api 127.0.0.1:8081 \
        --nbd 127.0.0.1:10810 "$@"
    h_expect_error "$H_TEST.refuse.$name" 2 "$ALICE_KEY" "$BOB_KEY"
    h_check "$H_TEST.refuse.$name.says_why" "expected \"$want\" in: $(h_last)" \
        grep -qF -- "$want" "$H_ERR"
}
printf '# comment\n\nalice:%s\nbob %s\n' "$ALICE_KEY" "$BOB_KEY" >"$K/bad.keys"
serve_refused psk_malformed "line 4" --nbd-tls require --tls-psk "$K/bad.keys"
printf 'alice:%s\nalice:%s\n' "$ALICE_KEY" "$BOB_KEY" >"$K/dup.keys"
serve_refused psk_duplicate "line 2" --nbd-tls on --tls-psk "$K/dup.keys"
printf 'alice:%sxz\n' "${ALICE_KEY:2}" >"$K/nothex.keys"
serve_refused psk_not_hex "not hex" --nbd-tls on --tls-psk "$K/nothex.keys"
serve_refused psk_missing "$K/none.keys" --nbd-tls on --tls-psk "$K/none.keys"
serve_refused cert_dir_missing "$K/none-dir" --nbd-tls require --tls-certificates "$K/none-dir"
serve_refused cert_dir_no_key "server-cert.pem" --nbd-tls on --tls-certificates "$K/carol"
serve_refused verify_without_ca "needs the CA" --nbd-tls on --tls-certificates "$K/noca" \
    --tls-verify-peer
TOEGW_NBD_TLS=sometimes serve_refused env_mode "TOEGW_NBD_TLS"

# --- --nbd-tls require -----------------------------------------------------------------------

nbd_serve --nbd-tls require --tls-psk "$K/psk.keys" --tls-certificates "$K/server"
nbd_login host 1 127.0.0.1 host || h_end
V1=${VOL[host.1]} V2=${VOL[host.2]} V3=${VOL[host.3]}
B1=$(h_lun_path 1 1) B2=$(h_lun_path 1 2) B3=$(h_lun_path 1 3)
PSK="tls-psk-file=$K/psk.keys"
h_check "$H_TEST.require.export_uri" "the API gives ${URI[host.1]:-nothing}" \
    [ "${URI[host.1]:-}" = "nbds://127.0.0.1:10809/$V1" ]
h_check "$H_TEST.require.log_tls_mode" "no start-up line about nbd tls" \
    grep -qF "nbd tls required: certificate in $K/server, 2 psk identities" "$H_TMP/serve.log"

h_run nbdinfo --json "nbds://alice@127.0.0.1:10809/$V1?$PSK"
h_expect_ok "$H_TEST.require.nbdinfo_psk" &&
    h_check "$H_TEST.require.nbdinfo_psk_size" "nbdinfo: $(head -c 200 "$H_OUT")" \
        jq -e ".exports[0][\"export-size\"] == $SIZE and .exports[0][\"is_read_only\"] == false" "$H_OUT"
h_check "$H_TEST.require.log_identity" "no log line naming alice's tls session" \
    grep -q 'tls up, identity "alice" (psk' "$H_TMP/serve.log"
TLS_PATH=$(grep -o 'path: .*' "$H_TMP/serve.log" | head -1)
printf '# %s\n' "tls ${TLS_PATH:-path: not logged}"

SRC=$H_TMP/src.img
h_random "$SRC" $((32 * MIB))
h_run nbdcopy "$SRC" "nbds://alice@127.0.0.1:10809/$V1?$PSK"
if h_expect_ok "$H_TEST.require.nbdcopy_write_psk"; then
    h_check "$H_TEST.require.nbdcopy_write_backing_equal" "tgtd's backing file differs" \
        h_cmp_region "$SRC" 0 "$B1" 0 $((32 * MIB))
fi
h_run nbdcopy "nbds://bob@127.0.0.1:10809/$V1?$PSK" "$H_TMP/back.img"
if h_expect_ok "$H_TEST.require.nbdcopy_read_psk"; then
    h_check "$H_TEST.require.nbdcopy_read_equal" "what nbdcopy read differs from the backing file" \
        cmp -s "$B1" "$H_TMP/back.img"
fi

# a whole 32 MiB reply (the maximum block size) to a client that reads it slowly through a
# small receive buffer: the socket is full again and again, and the reply's last records must
# still leave once it drains (python's ssl module with carol's certificate, the handshake and
# the request by hand)
PY=$(nbd_python) || PY=
if [ -n "$PY" ]; then
    h_run "$PY" - 127.0.0.1 10809 "$V1" "$K/carol" "$B1" <<'PY'
import socket, ssl, struct, sys, time
host, port, export, cdir, backing = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5]
MAX = 32 << 20


def recvn(s, n):
    b = bytearray()
    while len(b) < n:
        c = s.recv(min(n - len(b), 65536))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return bytes(b)


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
    while True:
        _, _, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
        recvn(s, rlen)
        if rtype != 3:  # NBD_REP_INFO comes before the final reply
            return rtype


raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
raw.settimeout(30)
raw.connect((host, port))
recvn(raw, 18)
raw.sendall(struct.pack(">I", 1))
assert option(raw, 5) == 1, "starttls refused"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cdir + "/ca-cert.pem")
ctx.load_cert_chain(cdir + "/client-cert.pem", cdir + "/client-key.pem")
s = ctx.wrap_socket(raw, server_hostname="localhost")
assert option(s, 7, struct.pack(">I", len(export)) + export + b"\0\0") == 1, "go refused"
with open(backing, "rb") as f:
    want = f.read(MAX)
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 7, 0, MAX))
magic, err, handle = struct.unpack(">IIQ", recvn(s, 16))
got = bytearray()
while len(got) < MAX:
    c = s.recv(min(MAX - len(got), 65536))
    if not c:
        break
    got += c
    time.sleep(0.001)
print("ok slow_max_block_read" if (err == 0 and bytes(got) == want) else
      "bad slow_max_block_read: error %d, %d of %d bytes, equal %s" %
      (err, len(got), MAX, bytes(got) == want[:len(got)]))
PY
    h_check "$H_TEST.require.slow_reader_max_block" "$(h__oneline "$(cat "$H_OUT")") $(h_last)" \
        grep -q '^ok slow_max_block_read' "$H_OUT"
fi

if command -v qemu-img >/dev/null 2>&1; then
    QSRC=$H_TMP/q.img
    h_random "$QSRC" $((16 * MIB))
    QPSK=(--object "tls-creds-psk,id=tls0,endpoint=client,dir=$K/qpsk,username=alice")
    QX509=(--object "tls-creds-x509,id=tls0,endpoint=client,dir=$K/carol")
    qnbd() { printf 'driver=nbd,host=127.0.0.1,port=10809,export=%s,tls-creds=tls0' "$1"; }
    h_run qemu-img convert -n "${QPSK[@]}" -f raw --target-image-opts "$QSRC" "$(qnbd "$V1")"
    if h_expect_ok "$H_TEST.require.qemu_img_write_psk"; then
        h_check "$H_TEST.require.qemu_img_write_psk_backing" "the backing file differs" \
            h_cmp_region "$QSRC" 0 "$B1" 0 $((16 * MIB))
    fi
    h_run qemu-img convert "${QX509[@]}" --image-opts "$(qnbd "$V1")" -O raw "$H_TMP/qback.img"
    if h_expect_ok "$H_TEST.require.qemu_img_read_x509"; then
        h_check "$H_TEST.require.qemu_img_read_x509_equal" "what qemu-img read differs" \
            cmp -s "$B1" "$H_TMP/qback.img"
    fi
    h_random "$QSRC" $((8 * MIB))
    h_run qemu-img convert -n "${QX509[@]}" -f raw --target-image-opts "$QSRC" "$(qnbd "$V1")"
    if h_expect_ok "$H_TEST.require.qemu_img_write_x509"; then
        h_check "$H_TEST.require.qemu_img_write_x509_backing" "the backing file differs" \
            h_cmp_region "$QSRC" 0 "$B1" 0 $((8 * MIB))
    fi
    if command -v qemu-io >/dev/null 2>&1; then
        head -c 65536 /dev/zero | tr '\0' '\245' >"$H_TMP/a5.bin"
        h_run qemu-io "${QX509[@]}" --image-opts "$(qnbd "$V1")" -c 'write -P 0xa5 1M 64k' \
            -c 'read -P 0xa5 1M 64k'
        if h_expect_ok "$H_TEST.require.qemu_io_x509"; then
            h_check "$H_TEST.require.qemu_io_verified" "qemu-io: $(h__oneline "$(head -c 300 "$H_OUT")")" \
                bash -c "! grep -q 'Pattern verification failed' '$H_OUT'"
            h_check "$H_TEST.require.qemu_io_backing" "the backing file at 1 MiB is not qemu-io's pattern" \
                h_cmp_region "$H_TMP/a5.bin" 0 "$B1" "$MIB" 65536
        fi
    fi
    h_check "$H_TEST.require.log_cn" "no log line naming carol's certificate" \
        grep -q 'tls up, identity "carol" (x509' "$H_TMP/serve.log"
    rm -f "$H_TMP/qback.img"
else
    h_skip "$H_TEST.require.qemu_img" "qemu-img not installed (qemu-utils)"
fi

h_run nbdinfo --size "nbds://127.0.0.1:10809/$V1?tls-certificates=$K/carol"
h_expect_ok "$H_TEST.require.nbdinfo_x509"

# refused: plaintext, a wrong key
h_run nbdinfo --size "nbd://127.0.0.1:10809/$V1"
h_check "$H_TEST.require.plaintext_refused" "a plaintext nbdinfo got an answer: $(h_last)" \
    [ "$H_RC" -ne 0 ]
h_check "$H_TEST.require.plaintext_logged" "no log line about the plaintext client" \
    grep -q 'without tls, which this server requires' "$H_TMP/serve.log"
sleep 1.1 # refusals of one kind log once a second
h_run nbdinfo --size "nbds://alice@127.0.0.1:10809/$V1?tls-psk-file=$K/wrong/keys.psk"
h_check "$H_TEST.require.wrong_psk_refused" "nbdinfo with a wrong key got an answer: $(h_last)" \
    [ "$H_RC" -ne 0 ]
h_check "$H_TEST.require.wrong_psk_logged" "no log line naming the refused identity" \
    grep -q 'refusing tls client .* (psk identity "alice")' "$H_TMP/serve.log"

cat >"$H_TMP/raw.py" <<'PY'
"""The plaintext handshake against --nbd-tls require: option replies on the wire."""
import socket
import struct
import sys

host, port, export = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()


def out(ok, name, why=""):
    print(("ok " if ok else "bad ") + name + ((": " + why) if (why and not ok) else ""))


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def connect():
    s = socket.create_connection((host, port), timeout=10)
    recvn(s, 18)
    s.sendall(struct.pack(">I", 3))
    return s


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
    magic, ropt, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
    return rtype, recvn(s, rlen)


TLS_REQD = 0x80000005
s = connect()
for name, opt, data in (("go", 7, struct.pack(">I", len(export)) + export + b"\0\0"),
                        ("info", 6, struct.pack(">I", len(export)) + export + b"\0\0"),
                        ("list", 3, b""), ("structured_reply", 8, b"")):
    t, msg = option(s, opt, data)
    out(t == TLS_REQD, "raw.tls_reqd_" + name, "reply type %#x (%r)" % (t, msg[:80]))
t, _ = option(s, 5, b"x")
out(t == 0x80000003, "raw.starttls_with_data_invalid", "reply type %#x" % t)
t, _ = option(s, 2)
out(t == 1, "raw.abort_acked", "reply type %#x" % t)
s.close()
s = connect()
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(export)) + export)
try:
    got = s.recv(100)
    out(got == b"", "raw.export_name_hung_up", "the server answered %d bytes" % len(got))
except (ConnectionResetError, socket.timeout) as e:
    out(isinstance(e, ConnectionResetError), "raw.export_name_hung_up", str(e))
PY
if [ -n "$PY" ]; then
    py_checks_file() {
        local line l
        h_run "$PY" "$@"
        while IFS= read -r line; do
            case $line in
                "ok "*) h_pass "$H_TEST.require.${line#ok }" ;;
                "bad "*) l=${line#bad }; h_fail "$H_TEST.require.${l%%: *}" "${l#*: }" ;;
            esac
        done <"$H_OUT"
        [ "$H_RC" -eq 0 ] || h_fail "$H_TEST.require.raw" "the script failed: $(h_last)"
    }
    py_checks_file "$H_TMP/raw.py" 127.0.0.1 10809 "$V1"
else
    h_skip "$H_TEST.require.raw" "python3 not found"
fi

# --- PATCH /api/v1/volumes/{id} ----------------------------------------------------------------

patch_is() {
    local want=$1 got
    got=$(api PATCH "/api/v1/volumes/$2" "$3")
    [ "$got" = "$want" ]
}
h_check "$H_TEST.patch.bad_json_400" "a body that is not json: $(head -c 200 "$H_TMP/api.json")" \
    patch_is 400 "$V2" '{"allow": ['
h_check "$H_TEST.patch.empty_422" "an empty patch" patch_is 422 "$V2" '{}'
h_check "$H_TEST.patch.unknown_field_422" "an unknown field" patch_is 422 "$V2" '{"readonly": true}'
h_check "$H_TEST.patch.read_only_type_422" "read_only not a boolean" patch_is 422 "$V2" '{"read_only": "yes"}'
h_check "$H_TEST.patch.allow_type_422" "allow not a list" patch_is 422 "$V2" '{"allow": "bob"}'
h_check "$H_TEST.patch.allow_control_422" "an identity with a newline" patch_is 422 "$V2" '{"allow": ["a\nb"]}'
h_check "$H_TEST.patch.allow_dup_422" "an identity twice" patch_is 422 "$V2" '{"allow": ["bob", "bob"]}'
h_check "$H_TEST.patch.unknown_volume_404" "an unknown volume" patch_is 404 v-0000000000000000 '{"read_only": true}'
h_check "$H_TEST.patch.no_token_401" "a patch without the token" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH --data-raw '{"read_only":true}' "$API/api/v1/volumes/$V2")" = 401 ]

h_check "$H_TEST.patch.allow_bob" "PATCH allow [bob]: $(head -c 200 "$H_TMP/api.json")" \
    patch_is 200 "$V2" '{"allow": ["bob", "carol"]}'
h_check "$H_TEST.patch.allow_shown" "the answer: $(head -c 300 "$H_TMP/api.json")" \
    jq -e '.allow == ["bob", "carol"] and .read_only == false' "$H_TMP/api.json"
h_run nbdinfo --size "nbds://alice@127.0.0.1:10809/$V2?$PSK"
h_check "$H_TEST.allow.alice_refused" "alice was not refused: $(h_last)" [ "$H_RC" -ne 0 ]
h_check "$H_TEST.allow.alice_refused_logged" "no log line naming alice and the volume" \
    grep -q "refusing .* (identity \"alice\") volume $V2: not in its allow list" "$H_TMP/serve.log"
h_run nbdinfo --size "nbds://bob@127.0.0.1:10809/$V2?$PSK"
h_expect_ok "$H_TEST.allow.bob_admitted" && h_check "$H_TEST.allow.bob_size" "size $(cat "$H_OUT")" \
    [ "$(cat "$H_OUT")" = "$SIZE" ]
h_run nbdinfo --size "nbds://127.0.0.1:10809/$V2?tls-certificates=$K/carol"
h_expect_ok "$H_TEST.allow.carol_cn_admitted"
h_check "$H_TEST.patch.allow_carol_only" "PATCH allow [carol]" patch_is 200 "$V2" '{"allow": ["carol"]}'
h_run nbdinfo --size "nbds://bob@127.0.0.1:10809/$V2?$PSK"
h_check "$H_TEST.allow.bob_refused_after_patch" "bob was not refused: $(h_last)" [ "$H_RC" -ne 0 ]
h_run nbdinfo --size "nbds://alice@127.0.0.1:10809/$V1?$PSK"
h_expect_ok "$H_TEST.allow.other_volume_unaffected"

h_check "$H_TEST.patch.read_only" "PATCH read_only: $(head -c 200 "$H_TMP/api.json")" \
    patch_is 200 "$V3" '{"read_only": true}'
h_check "$H_TEST.patch.read_only_shown" "the answer: $(head -c 300 "$H_TMP/api.json")" \
    jq -e '.read_only == true and .allow == []' "$H_TMP/api.json"
cp "$B3" "$H_TMP/b3.before"
h_run nbdinfo --json "nbds://alice@127.0.0.1:10809/$V3?$PSK"
h_expect_ok "$H_TEST.read_only.nbdinfo" &&
    h_check "$H_TEST.read_only.flag" "nbdinfo: $(head -c 300 "$H_OUT")" \
        jq -e '.exports[0].is_read_only == true and .exports[0].can_trim == false' "$H_OUT"
h_run nbdcopy "$SRC" "nbds://alice@127.0.0.1:10809/$V3?$PSK"
h_check "$H_TEST.read_only.nbdcopy_write_refused" "nbdcopy wrote to a read-only volume" [ "$H_RC" -ne 0 ]
h_run nbdcopy "nbds://alice@127.0.0.1:10809/$V3?$PSK" "$H_TMP/b3.read"
h_expect_ok "$H_TEST.read_only.nbdcopy_read" &&
    h_check "$H_TEST.read_only.read_equal" "the read differs from the backing file" \
        cmp -s "$B3" "$H_TMP/b3.read"
if [ -n "$PY" ]; then
    h_run "$PY" - "nbds://alice@127.0.0.1:10809/$V3?$PSK" <<'PY'
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)  # the write reaches the server
h.set_uri_allow_local_file(True)  # tls-psk-file
h.connect_uri(sys.argv[1])
for name, fn in (("write", lambda: h.pwrite(b"\x5a" * 4096, 0)),
                 ("zero", lambda: h.zero(4096, 0))):
    try:
        fn()
        print("bad %s: the server took it" % name)
    except nbd.Error as e:
        print(("ok " if e.errnum == errno.EPERM else "bad ") + name +
              ("" if e.errnum == errno.EPERM else ": errno %s" % e.errnum))
h.shutdown()
PY
    h_check "$H_TEST.read_only.server_eperm" "libnbd without strict mode: $(h__oneline "$(cat "$H_OUT")") $(h_last)" \
        [ "$(grep -c '^ok ' "$H_OUT")" = 2 ]
fi
h_check "$H_TEST.read_only.backing_unchanged" "the read-only volume's backing file changed" \
    cmp -s "$B3" "$H_TMP/b3.before"
h_check "$H_TEST.read_only.rest_write_409" "PUT data on a read-only volume" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
        --data-binary @<(head -c 4096 /dev/zero) "$API/api/v1/volumes/$V3/data?offset=0")" = 409 ]

# --- restart: the access is in the state file ------------------------------------------------

stop_serve() {
    kill -TERM "$SERVE_PID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
}
h_check "$H_TEST.state.no_key" "a psk key is in the state file" \
    bash -c "! grep -qF -e '$ALICE_KEY' -e '$BOB_KEY' '$H_TMP/state/state.json'"
stop_serve
cp "$H_TMP/serve.log" "$H_TMP/serve1.log"
h_check "$H_TEST.log.no_key" "a psk key is in the daemon's log" \
    bash -c "! grep -qF -e '$ALICE_KEY' -e '$BOB_KEY' '$H_TMP/serve1.log'"

# --- --nbd-tls on with --tls-verify-peer -----------------------------------------------------

nbd_serve --nbd-tls on --tls-certificates "$K/server" --tls-verify-peer
for _ in $(seq 100); do
    [ "$(api GET "/api/v1/volumes/$V3")" = 200 ] && break
    sleep 0.2
done
h_check "$H_TEST.state.read_only_restored" "after a restart: $(head -c 300 "$H_TMP/api.json")" \
    jq -e '.read_only == true' "$H_TMP/api.json"
[ "$(api GET "/api/v1/volumes/$V2")" = 200 ]
h_check "$H_TEST.state.allow_restored" "after a restart: $(head -c 300 "$H_TMP/api.json")" \
    jq -e '.allow == ["carol"] and (.export | startswith("nbds://"))' "$H_TMP/api.json"
h_run nbdcopy "nbd://127.0.0.1:10809/$V1" "$H_TMP/plain.img"
h_expect_ok "$H_TEST.on.plaintext_served" &&
    h_check "$H_TEST.on.plaintext_equal" "the plaintext read differs" cmp -s "$B1" "$H_TMP/plain.img"
h_run nbdinfo --size "nbds://127.0.0.1:10809/$V1?tls-certificates=$K/nocert"
h_check "$H_TEST.on.no_client_cert_refused" "a client without a certificate got an answer: $(h_last)" \
    [ "$H_RC" -ne 0 ]
h_check "$H_TEST.on.no_client_cert_logged" "no log line about the refused client" \
    grep -q 'refusing tls client .*: tls handshake failed' "$H_TMP/serve.log"
h_run nbdinfo --size "nbds://127.0.0.1:10809/$V2?tls-certificates=$K/carol"
h_expect_ok "$H_TEST.on.carol_admitted"
h_run nbdinfo --size "nbd://127.0.0.1:10809/$V2"
h_check "$H_TEST.on.plaintext_refused_by_allow" "a plaintext client used an allow-listed volume" \
    [ "$H_RC" -ne 0 ]
h_check "$H_TEST.on.plaintext_refused_logged" "no log line about it" \
    grep -q "refusing .* (identity none, no tls) volume $V2" "$H_TMP/serve.log"

stop_serve
cp "$H_TMP/serve.log" "$H_TMP/serve2.log"

# --- --nbd-tls require alone: the state dir's self-signed certificate ------------------------

nbd_serve --nbd-tls require
mkdir -p "$K/selfsigned"
for _ in $(seq 100); do
    [ "$(api GET "/api/v1/volumes/$V1")" = 200 ] && break
    sleep 0.2
done
if [ -s "$H_TMP/state/tls/server-cert.pem" ]; then
    h_pass "$H_TEST.default.cert_made"
    cp "$H_TMP/state/tls/server-cert.pem" "$K/selfsigned/ca-cert.pem"
    h_run nbdcopy "nbds://127.0.0.1:10809/$V1?tls-certificates=$K/selfsigned" "$H_TMP/ss.img"
    h_expect_ok "$H_TEST.default.nbdcopy_read" &&
        h_check "$H_TEST.default.read_equal" "the read differs" cmp -s "$B1" "$H_TMP/ss.img"
    h_run nbdinfo --size "nbds://127.0.0.1:10809/$V1?tls-certificates=$K/carol"
    h_check "$H_TEST.default.other_ca_refused" "a client trusting another CA got an answer" \
        [ "$H_RC" -ne 0 ]
else
    h_fail "$H_TEST.default.cert_made" "no STATE_DIR/tls/server-cert.pem: $(h__oneline "$(tail -c 300 "$H_TMP/serve.log")")"
fi
h_run nbdinfo --size "nbds://alice@127.0.0.1:10809/$V1?$PSK"
h_check "$H_TEST.default.psk_not_offered" "a psk client got an answer without --tls-psk" \
    [ "$H_RC" -ne 0 ]

h_check "$H_TEST.alive_at_end" "toegw died or stopped answering" serve_alive
h_end
