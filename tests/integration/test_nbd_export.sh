#!/usr/bin/env bash
#
# test_nbd_export.sh - toegw's NBD export (docs/nbd.md) seen by real clients:
# nbdinfo, qemu-nbd --list, libnbd (what nbdsh runs) and the protocol byte by byte.
#
# In a private network namespace: tgtd on 0.0.0.0:3260 with two targets, toegw serve with one
# session per target: "stack":"toe" through 192.0.2.1 (the host side of the TOE's TAP) and
# "stack":"host" through 127.0.0.1. Each target has a 512- and a 4096-byte-block LUN, one of
# them thin (tgtd thin_provisioning=1). Checks:
#   - nbdinfo --json of every export: size, block sizes (minimum = the LUN's, preferred 4096,
#     maximum 32 MiB), can_flush/can_fua/can_zero/can_multi_conn, can_trim only when thin;
#   - nbdinfo --list and qemu-nbd --list show every volume; unknown and empty export names are
#     refused cleanly;
#   - per export, with structured replies and with simple replies, libnbd with strict mode
#     off: data round trips (up to the 32 MiB maximum), misaligned requests EINVAL, past the
#     end EINVAL (reads, trims) or ENOSPC (writes, zeroes), over the maximum EINVAL, flags
#     (FUA everywhere, NO_HOLE, DF, FAST_ZERO), write zeroes, trim, 200 pipelined writes;
#   - the handshake over a plain socket: NBD_OPT_EXPORT_NAME with and without the 124 zero
#     bytes, options (INFO, GO, LIST, ABORT, unknown, too big), unknown commands and flags,
#     refused writes answered only after their payload, NBD_CMD_DISC, protocol violations;
#   - the Linux nbd-client, where it and /dev/nbd0 exist (skipped loudly otherwise).
# toegw must stay up throughout.
# shellcheck source-path=SCRIPTDIR source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq curl nbdinfo
h_need_toe

# toegw serve and its REST API, shared by every test_nbd_*.sh
# shellcheck source-path=SCRIPTDIR source=lib/nbd.sh
. "$(dirname "$0")/lib/nbd.sh"

# --- setup -----------------------------------------------------------------------------------

SIZE=$((64 * 1048576))
H_TGTD_PORTAL=0.0.0.0:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:nbd-export.toe
h_lun_file 1 1 "$SIZE" 512
h_lun_file 1 2 "$SIZE" 4096 thin_provisioning=1
h_target_new 2 iqn.2024-01.org.example.toegw:nbd-export.host
h_lun_file 2 1 "$SIZE" 4096
h_lun_file 2 2 "$SIZE" 512 thin_provisioning=1

nbd_serve
STACKS=()
if [ -n "$HAVE_TOE" ]; then
    nbd_login toe 1 192.0.2.1 toe && STACKS+=(toe)
else
    h_skip "$H_TEST.toe" "no /dev/net/tun: toegw runs --no-toe, the TOE stack is not tested"
fi
nbd_login host 2 127.0.0.1 host && STACKS+=(host)
[ "${#STACKS[@]}" -gt 0 ] || h_end

# the LUNs of each target: "LUN BLOCKSIZE THIN" (read through namerefs)
# shellcheck disable=SC2034
LUNS_toe=("1 512 0" "2 4096 1")
# shellcheck disable=SC2034
LUNS_host=("1 4096 0" "2 512 1")

PY=$(nbd_python) || PY=
if [ -n "$PY" ]; then
    cat >"$H_TMP/nbdcheck.py" <<'PY'
"""Protocol checks of one toegw NBD export, with libnbd (what nbdsh runs).

proto URI TAG THIN  requests in and out of range, aligned or not, with every flag, with
                    structured replies and with simple replies, strict mode off so each
                    request reaches the server; plus a few with libnbd's strict mode on.
raw TAG HOST PORT NAME SIZE BS
                    the handshake byte by byte over a plain socket: NBD_OPT_EXPORT_NAME
                    (what the Linux nbd-client and old clients use) with and without
                    NBD_FLAG_C_NO_ZEROES, unknown exports, options, commands and flags.
Prints one line per check: "ok NAME" or "bad NAME: why".
"""
import errno
import os
import socket
import struct
import sys

MIB = 1048576


def out(ok, name, why=""):
    print(("ok " if ok else "bad ") + name + ((": " + why) if (why and not ok) else ""),
          flush=True)


def ename(n):
    return errno.errorcode.get(n, str(n)) if n else "no errno"


# ---------------------------------------------------------------- libnbd

def proto(uri, tag, thin):
    import nbd

    def expect(name, want, fn):
        try:
            fn()
        except nbd.Error as e:
            out(e.errnum == want, name, "expected %s, got %s (%s)" %
                (ename(want), ename(e.errnum), e.string))
            return
        out(False, name, "expected %s, the request succeeded" % ename(want))

    def ok(name, fn):
        try:
            r = fn()
        except nbd.Error as e:
            out(False, name, "failed: %s" % e.string)
            return None
        out(True, name)
        return r

    # strict mode on: libnbd itself refuses what the advertised limits rule out
    h = nbd.NBD()
    h.connect_uri(uri)
    bs = h.get_block_size(nbd.SIZE_MINIMUM)
    size = h.get_size()
    expect(tag + ".strict.misaligned_read", errno.EINVAL, lambda: h.pread(bs, 1))
    expect(tag + ".strict.read_past_end", errno.EINVAL, lambda: h.pread(bs, size))
    h.shutdown()

    for structured in (True, False):
        t = "%s.%s" % (tag, "structured" if structured else "simple")
        def connect():
            c = nbd.NBD()
            c.set_request_structured_replies(structured)
            c.set_strict_mode(0)  # every request below reaches the server
            c.connect_uri(uri)
            return c

        def survives(name):
            """The connection is still usable; if not, say so and reconnect."""
            nonlocal h
            try:
                h.pread(bs, 0)
                out(True, name)
            except nbd.Error as e:
                out(False, name, "the connection is gone: %s" % e.string)
                h = connect()

        try:
            h = connect()
        except nbd.Error as e:
            out(False, t + ".connect", e.string)
            continue
        out(h.get_structured_replies_negotiated() == structured, t + ".negotiated",
            "structured replies negotiated: %s" % h.get_structured_replies_negotiated())
        size = h.get_size()
        bs = h.get_block_size(nbd.SIZE_MINIMUM)
        mx = h.get_block_size(nbd.SIZE_MAXIMUM)

        # a request of exactly the maximum block size, both ways
        big = os.urandom(mx)
        ok(t + ".write_max_block", lambda: h.pwrite(big, 0))
        r = ok(t + ".read_max_block", lambda: h.pread(mx, 0))
        out(r == big, t + ".max_block_roundtrip", "read back differs")

        # ordinary data, with FUA, then the last block of the export
        d1 = os.urandom(MIB)
        ok(t + ".write_fua", lambda: h.pwrite(d1, mx, nbd.CMD_FLAG_FUA))
        ok(t + ".flush", lambda: h.flush())
        out(ok(t + ".read", lambda: h.pread(MIB, mx)) == d1, t + ".roundtrip",
            "read back differs")
        last = os.urandom(bs)
        ok(t + ".write_last_block", lambda: h.pwrite(last, size - bs))
        out(ok(t + ".read_last_block", lambda: h.pread(bs, size - bs)) == last,
            t + ".last_block_roundtrip", "read back differs")

        # misaligned to the minimum block size: EINVAL
        expect(t + ".read_misaligned_offset", errno.EINVAL, lambda: h.pread(bs, 1))
        expect(t + ".read_misaligned_length", errno.EINVAL, lambda: h.pread(bs + 1, 0))
        if bs > 512:
            expect(t + ".read_512_aligned_only", errno.EINVAL, lambda: h.pread(512, 512))
        expect(t + ".write_misaligned_offset", errno.EINVAL,
               lambda: h.pwrite(b"\xa5" * bs, 1))
        expect(t + ".write_misaligned_length", errno.EINVAL,
               lambda: h.pwrite(b"\xa5" * (bs + 1), mx))
        expect(t + ".zero_misaligned", errno.EINVAL, lambda: h.zero(bs, bs // 2))

        # out of range: EINVAL for reads and trims, ENOSPC for writes and zeroes
        expect(t + ".read_at_end", errno.EINVAL, lambda: h.pread(bs, size))
        expect(t + ".read_across_end", errno.EINVAL, lambda: h.pread(2 * bs, size - bs))
        expect(t + ".read_offset_wraps", errno.EINVAL, lambda: h.pread(2 * bs, 2**64 - bs))
        expect(t + ".write_at_end", errno.ENOSPC, lambda: h.pwrite(b"\x5a" * bs, size))
        expect(t + ".write_across_end", errno.ENOSPC,
               lambda: h.pwrite(b"\x5a" * (2 * bs), size - bs))
        expect(t + ".write_offset_wraps", errno.ENOSPC,
               lambda: h.pwrite(b"\x5a" * (2 * bs), 2**64 - bs))
        expect(t + ".zero_across_end", errno.ENOSPC, lambda: h.zero(2 * bs, size - bs))
        if thin:
            expect(t + ".trim_across_end", errno.EINVAL, lambda: h.trim(2 * bs, size - bs))
        survives(t + ".alive_after_range_errors")
        # a refused write with a large payload (8 MiB across the end): the reply must not
        # overtake the payload (libnbd, like most clients, takes a command as in flight
        # only once it has sent all of it, and drops a connection that answers earlier)
        expect(t + ".large_write_across_end", errno.ENOSPC,
               lambda: h.pwrite(b"\x5a" * (8 * MIB), size - 4 * MIB))
        survives(t + ".alive_after_large_refused_write")
        out(ok(t + ".read_last_block_again", lambda: h.pread(bs, size - bs)) == last,
            t + ".refused_write_left_last_block", "a refused write changed the last block")

        # larger than the advertised maximum block size: EINVAL (the spec's SHOULD, and it
        # SHOULD NOT be EOVERFLOW without NBD_CMD_FLAG_DF); the refused write's payload
        # is skipped and the connection stays in step
        expect(t + ".read_over_max", errno.EINVAL, lambda: h.pread(mx + bs, 0))
        expect(t + ".write_over_max", errno.EINVAL,
               lambda: h.pwrite(b"\x77" * (mx + bs), 0))
        survives(t + ".alive_after_over_max")
        out(ok(t + ".read_after_over_max", lambda: h.pread(MIB, mx)) == d1,
            t + ".in_step_after_refused_write", "data differs after a refused write")
        r = ok(t + ".read_start_after_over_max", lambda: h.pread(bs, 0))
        out(r == big[:bs], t + ".refused_write_left_data", "a refused write changed data")

        # flags: FUA is valid on every command once advertised (spec: MUST accept);
        # NO_HOLE only for WRITE_ZEROES; DF and FAST_ZERO were not advertised
        ok(t + ".read_with_fua", lambda: h.pread(bs, 0, nbd.CMD_FLAG_FUA))
        ok(t + ".flush_with_fua", lambda: h.flush(nbd.CMD_FLAG_FUA))
        expect(t + ".write_with_no_hole", errno.EINVAL,
               lambda: h.pwrite(b"\x11" * bs, 0, nbd.CMD_FLAG_NO_HOLE))
        expect(t + ".read_with_df", errno.EINVAL, lambda: h.pread(bs, 0, nbd.CMD_FLAG_DF))
        expect(t + ".zero_fast_unadvertised", errno.EINVAL,
               lambda: h.zero(bs, 0, nbd.CMD_FLAG_FAST_ZERO))

        # write zeroes, with and without NO_HOLE (and FUA)
        zoff = mx + 2 * MIB
        h.pwrite(os.urandom(256 * 1024), zoff)
        ok(t + ".zero", lambda: h.zero(128 * 1024, zoff))
        ok(t + ".zero_no_hole_fua",
           lambda: h.zero(128 * 1024, zoff + 128 * 1024,
                          nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA))
        out(h.pread(256 * 1024, zoff) == bytes(256 * 1024), t + ".zeroed",
            "write zeroes left data")

        # trim: only where advertised (thin LUNs); elsewhere EINVAL
        if thin:
            ok(t + ".trim", lambda: h.trim(MIB, mx + 4 * MIB))
        else:
            expect(t + ".trim_unadvertised", errno.EINVAL, lambda: h.trim(MIB, mx + 4 * MIB))

        # many requests in flight at once (past the server's per-client cap), refused
        # writes among them whose payloads must be skipped without losing step
        n, chunk, base = 200, 64 * 1024, mx + 8 * MIB
        datas, cookies = {}, []
        for i in range(n):
            if i % 7 == 3:
                cookies.append((i, h.aio_pwrite(b"\xee" * chunk, base + i * chunk + 1), False))
            else:
                datas[i] = os.urandom(chunk)
                cookies.append((i, h.aio_pwrite(datas[i], base + i * chunk), True))
        while h.aio_in_flight() > 0:
            h.poll(-1)
        bad = []
        for i, c, valid in cookies:
            try:
                h.aio_command_completed(c)
                if not valid:
                    bad.append("%d succeeded" % i)
            except nbd.Error as e:
                if valid or e.errnum != errno.EINVAL:
                    bad.append("%d: %s" % (i, e.string))
        out(not bad, t + ".pipelined_writes", "; ".join(bad[:3]))
        back = h.pread(n * chunk, base)
        diff = [i for i in datas if back[i * chunk:(i + 1) * chunk] != datas[i]]
        out(not diff, t + ".pipelined_data", "chunks %s differ" % diff[:5])
        h.shutdown()


# ---------------------------------------------------------------- raw protocol

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x0003E889045565A9


class Raw:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("server closed the connection after %d of %d bytes" %
                               (len(b), n))
            b += c
        return b

    def closed(self):
        """True when the server hangs up (EOF or reset) within the timeout."""
        try:
            self.s.settimeout(5)
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def hello(self, cflags):
        m, o, f = struct.unpack(">QQH", self.recv(18))
        if m != NBDMAGIC or o != IHAVEOPT:
            raise ValueError("bad greeting")
        self.s.sendall(struct.pack(">I", cflags))
        return f

    def opt(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def opt_reply(self):
        m, opt, typ, ln = struct.unpack(">QIII", self.recv(20))
        if m != REPMAGIC:
            raise ValueError("bad option reply magic %x" % m)
        return opt, typ, self.recv(ln)

    def cmd(self, typ, handle, off, ln, flags=0, data=b""):
        self.s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, handle, off, ln) + data)

    def simple(self, nread=0):
        m, err, handle = struct.unpack(">IIQ", self.recv(16))
        if m != 0x67446698:
            raise ValueError("not a simple reply (magic %x)" % m)
        return err, handle, (self.recv(nread) if not err and nread else b"")


def raw(tag, host, port, name, size, bs):
    port, size, bs = int(port), int(size), int(bs)
    name_b = name.encode()

    def out(ok, cname, why=""):  # every raw check's name starts with TAG
        globals()["out"](ok, tag + "." + cname, why)

    def check(cname, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any failure is this group's
            out(False, cname, "%s: %s" % (type(e).__name__, e))

    # EXPORT_NAME without NO_ZEROES: size, flags and 124 zero bytes; simple replies
    def export_name_zeroes():
        r = Raw(host, port)
        f = r.hello(1)
        out(f & 3 == 3, "handshake_flags", "flags %#x" % f)
        r.opt(1, name_b)
        sz, tf = struct.unpack(">QH", r.recv(10))
        out(sz == size, "export_name.size", "%d != %d" % (sz, size))
        out(tf & 1 and tf & 4 and tf & 8 and tf & 0x40, "export_name.flags",
            "flags %#x" % tf)
        out(r.recv(124) == bytes(124), "export_name.zeroes", "not 124 zero bytes")
        r.cmd(0, 0x1111, 0, bs)
        err, hd, data = r.simple(bs)
        out(err == 0 and hd == 0x1111 and len(data) == bs, "export_name.read",
            "error %d handle %#x" % (err, hd))
        # an unknown command: EINVAL, and the connection goes on
        r.cmd(99, 0x2222, 0, bs)
        err, hd, _ = r.simple()
        out(err == errno.EINVAL and hd == 0x2222, "unknown_command",
            "error %d handle %#x" % (err, hd))
        # an unknown flag on a read: EINVAL
        r.cmd(0, 0x3333, 0, bs, flags=0x80)
        err, hd, _ = r.simple()
        out(err == errno.EINVAL and hd == 0x3333, "unknown_flag", "error %d" % err)
        # a misaligned write: EINVAL, its payload skipped, the next request in step
        r.cmd(1, 0x4444, 1, 3 * bs, data=b"\xcc" * (3 * bs))
        err, hd, _ = r.simple()
        out(err == errno.EINVAL and hd == 0x4444, "misaligned_write", "error %d" % err)
        r.cmd(0, 0x5555, 0, bs)
        err, hd, data = r.simple(bs)
        out(err == 0 and hd == 0x5555 and b"\xcc" * 16 not in data,
            "in_step_after_refused_write", "error %d handle %#x" % (err, hd))
        # a refused write (past the end): the reply comes after the whole payload, never
        # before it (a client may take the command as in flight only once it is sent)
        r.cmd(1, 0x4545, size, MIB)
        r.s.settimeout(1.0)
        try:
            early = r.s.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            early = b""
        r.s.settimeout(10)
        r.s.sendall(b"\x5a" * MIB)
        err, hd, _ = r.simple()
        out(not early and err == errno.ENOSPC and hd == 0x4545,
            "refused_write_reply_after_payload",
            "the server replied (error %d) before the write's payload was sent" % err
            if early else "error %d" % err)
        # a flush with an offset or length: EINVAL
        r.cmd(3, 0x6666, 0, bs)
        err, hd, _ = r.simple()
        out(err == errno.EINVAL and hd == 0x6666, "flush_with_length", "error %d" % err)
        # NBD_CMD_DISC: the server closes after the requests before it
        r.cmd(2, 0x7777, 0, 0)
        out(r.closed(), "disc_closes", "the server did not close after NBD_CMD_DISC")
    check("export_name", export_name_zeroes)

    # EXPORT_NAME with NO_ZEROES: no padding, the first reply follows the flags directly
    def export_name_no_zeroes():
        r = Raw(host, port)
        r.hello(3)
        r.opt(1, name_b)
        sz, _ = struct.unpack(">QH", r.recv(10))
        r.cmd(0, 0xABCD, 0, bs)
        err, hd, _ = r.simple(bs)
        out(sz == size and err == 0 and hd == 0xABCD, "no_zeroes",
            "size %d error %d handle %#x" % (sz, err, hd))
        r.s.close()
    check("no_zeroes", export_name_no_zeroes)

    # EXPORT_NAME of an unknown export: the server must hang up (no error reply exists)
    def export_name_unknown():
        r = Raw(host, port)
        r.hello(1)
        r.opt(1, b"v-0000000000000000")
        out(r.closed(), "export_name_unknown_hangs_up", "the server did not hang up")
    check("export_name_unknown", export_name_unknown)

    # options: unknown, INFO (stays in negotiation), GO of an unknown name, LIST, ABORT
    def options():
        r = Raw(host, port)
        r.hello(3)
        r.opt(200)
        opt, typ, _ = r.opt_reply()
        out(opt == 200 and typ == 0x80000001, "opt_unknown_unsup", "reply %#x" % typ)
        info = struct.pack(">I", len(name_b)) + name_b + struct.pack(">HHH", 2, 1, 3)
        r.opt(6, info)
        got = {}
        while True:
            opt, typ, data = r.opt_reply()
            if typ != 3:
                break
            got[struct.unpack(">H", data[:2])[0]] = data[2:]
        out(typ == 1 and 0 in got and struct.unpack(">Q", got[0][:8])[0] == size,
            "opt_info_export", "reply %#x, infos %s" % (typ, sorted(got)))
        out(3 in got and struct.unpack(">III", got[3]) == (bs, max(bs, 4096), 32 * MIB),
            "opt_info_block_size", "block size info %r" % got.get(3))
        out(got.get(1) == name_b, "opt_info_name", "name info %r" % got.get(1))
        bogus = b"v-ffffffffffffffff"
        r.opt(7, struct.pack(">I", len(bogus)) + bogus + struct.pack(">H", 0))
        opt, typ, msg = r.opt_reply()
        out(opt == 7 and typ == 0x80000006, "opt_go_unknown",
            "reply %#x %r" % (typ, msg))
        r.opt(7, b"\x00" * 5000)
        opt, typ, _ = r.opt_reply()
        out(opt == 7 and typ == 0x80000009, "opt_too_big", "reply %#x" % typ)
        r.opt(3)
        names = []
        while True:
            opt, typ, data = r.opt_reply()
            if typ != 2:
                break
            ln = struct.unpack(">I", data[:4])[0]
            names.append(data[4:4 + ln])
        out(typ == 1 and name_b in names, "opt_list", "reply %#x, %r" % (typ, names))
        r.opt(7, struct.pack(">I", len(name_b)) + name_b + struct.pack(">H", 0))
        while True:
            opt, typ, data = r.opt_reply()
            if typ != 3:
                break
        out(typ == 1, "opt_go_after_info", "reply %#x" % typ)
        r.cmd(0, 1, 0, bs)
        err, _, _ = r.simple(bs)
        out(err == 0, "opt_go_read", "error %d" % err)
        r.s.close()
    check("options", options)

    def abort():
        r = Raw(host, port)
        r.hello(3)
        r.opt(2)
        opt, typ, _ = r.opt_reply()
        out(opt == 2 and typ == 1 and r.closed(), "opt_abort", "reply %#x" % typ)
    check("abort", abort)

    # protocol violations: the server hangs up
    def bad_client_flags():
        r = Raw(host, port)
        r.hello(0x40)
        out(r.closed(), "unknown_client_flag_hangs_up", "the server did not hang up")
    check("bad_client_flags", bad_client_flags)

    def bad_magic():
        r = Raw(host, port)
        r.hello(3)
        r.opt(1, name_b)
        r.recv(10)
        r.s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, 0, 1, 0, bs))
        out(r.closed(), "bad_request_magic_hangs_up", "the server did not hang up")
    check("bad_magic", bad_magic)


if __name__ == "__main__":
    if sys.argv[1] == "proto":
        proto(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    elif sys.argv[1] == "raw":
        raw(*sys.argv[2:8])
    else:
        sys.exit("usage")
PY
else
    h_skip "$H_TEST.libnbd" "python3 bindings of libnbd (nbdsh, Debian python3-libnbd) not installed: the request-level checks do not run"
fi

# --- nbdinfo: size, block sizes and flags of every export -----------------------------------

# info_diff FILE SIZE BS THIN - what in nbdinfo --json output FILE differs from the export we
# expect ("" when nothing).
info_diff() {
    jq -r --argjson size "$2" --argjson bs "$3" --argjson thin "$4" '
        .exports[0] as $e | [
        (if $e["export-size"] != $size then "size \($e["export-size"]) not \($size)" else empty end),
        (if $e.block_size_minimum != $bs then "minimum block \($e.block_size_minimum) not \($bs)" else empty end),
        (if $e.block_size_preferred != 4096 then "preferred block \($e.block_size_preferred) not 4096" else empty end),
        (if $e.block_size_maximum != 33554432 then "maximum block \($e.block_size_maximum) not 33554432" else empty end),
        (["can_flush", "can_fua", "can_zero", "can_multi_conn"][] as $f
            | if $e[$f] != true then "\($f) \($e[$f])" else empty end),
        (if $e.can_trim != ($thin == 1) then "can_trim \($e.can_trim) on a \(if $thin == 1 then "thin" else "thick" end) LUN" else empty end),
        (if $e.is_read_only != false then "is_read_only \($e.is_read_only)" else empty end)
        ] | join(", ")' "$1" 2>&1
}

for st in "${STACKS[@]}"; do
    declare -n luns="LUNS_$st"
    for l in "${luns[@]}"; do
        read -r lun bs thin <<<"$l"
        t=$st.bs$bs
        vol=${VOL[$st.$lun]:-}
        uri=${URI[$st.$lun]:-}
        if [ "$uri" = "nbd://$NBD_ADDR/$vol" ]; then
            h_pass "$H_TEST.$t.api_export_uri"
        else
            h_fail "$H_TEST.$t.api_export_uri" "GET /api/v1/volumes/$vol gives export '$uri'"
            continue
        fi
        h_run nbdinfo --json "$uri"
        if h_expect_ok "$H_TEST.$t.nbdinfo"; then
            d=$(info_diff "$H_OUT" "$SIZE" "$bs" "$thin")
            if [ -z "$d" ]; then
                h_pass "$H_TEST.$t.nbdinfo_flags_and_sizes"
            else
                h_fail "$H_TEST.$t.nbdinfo_flags_and_sizes" "$d"
            fi
        fi
    done
    unset -n luns
done

# --- listing and names ------------------------------------------------------------------------

api GET /api/v1/volumes >/dev/null
jq -r '.[].id' "$H_TMP/api.json" | sort >"$H_TMP/ids.api"
h_run nbdinfo --list --json "nbd://$NBD_ADDR"
if h_expect_ok "$H_TEST.list"; then
    jq -r '.exports[]["export-name"]' "$H_OUT" | sort >"$H_TMP/ids.nbd"
    h_check "$H_TEST.list_every_volume" \
        "NBD_OPT_LIST gives [$(tr '\n' ' ' <"$H_TMP/ids.nbd")], the API [$(tr '\n' ' ' <"$H_TMP/ids.api")]" \
        cmp -s "$H_TMP/ids.api" "$H_TMP/ids.nbd"
fi
if command -v qemu-nbd >/dev/null 2>&1; then
    h_run qemu-nbd --list -b 127.0.0.1 -p "${NBD_ADDR##*:}"
    if h_expect_ok "$H_TEST.qemu_nbd_list"; then
        sed -n "s/^ *export: '\(.*\)'$/\1/p" "$H_OUT" | sort >"$H_TMP/ids.qemu"
        h_check "$H_TEST.qemu_nbd_list_every_volume" \
            "qemu-nbd --list gives [$(tr '\n' ' ' <"$H_TMP/ids.qemu")]" \
            cmp -s "$H_TMP/ids.api" "$H_TMP/ids.qemu"
    fi
else
    h_skip "$H_TEST.qemu_nbd_list" "qemu-nbd not installed (qemu-utils)"
fi

h_run nbdinfo "nbd://$NBD_ADDR/v-0000000000000000"
if [ "$H_RC" -ne 0 ] && grep -qi 'no such file\|unknown\|not found' "$H_ERR"; then
    h_pass "$H_TEST.unknown_export_refused"
else
    h_fail "$H_TEST.unknown_export_refused" "nbdinfo of an unknown export: $(h_last)"
fi
h_run nbdinfo "nbd://$NBD_ADDR/"
if [ "$H_RC" -ne 0 ] && grep -qi 'default export' "$H_ERR"; then
    h_pass "$H_TEST.empty_export_name_refused"
else
    h_fail "$H_TEST.empty_export_name_refused" \
        "nbdinfo of the default export with $(grep -c . "$H_TMP/ids.api") volumes: $(h_last)"
fi
h_check "$H_TEST.alive_after_listing" "toegw died or stopped answering" serve_alive

# --- requests, errors and flags, through libnbd; the protocol byte by byte ------------------

if [ -n "$PY" ]; then
    for st in "${STACKS[@]}"; do
        declare -n luns="LUNS_$st"
        for l in "${luns[@]}"; do
            read -r lun bs thin <<<"$l"
            [ -n "${URI[$st.$lun]:-}" ] || continue
            py_checks "$st.bs$bs.libnbd" proto "${URI[$st.$lun]}" "$st.bs$bs" "$thin"
        done
        unset -n luns
    done
    st=${STACKS[-1]}
    declare -n luns="LUNS_$st"
    read -r lun bs _ <<<"${luns[0]}"
    unset -n luns
    py_checks "$st.raw" raw "$st.bs$bs.raw" 127.0.0.1 "${NBD_ADDR##*:}" "${VOL[$st.$lun]}" \
        "$SIZE" "$bs"
    h_check "$H_TEST.alive_after_requests" "toegw died or stopped answering" serve_alive
fi

# --- FUA and flush reach the target -----------------------------------------------------------
# With NBD_CMD_FLAG_FUA the server must not reply before the data is on non-volatile storage;
# tgtd's file LUNs have a write cache (WCE=1), so toegw must send WRITE with FUA=1 or a
# SYNCHRONIZE CACHE before it replies. Seen on the wire: one request at a time (simple
# replies, so tshark's NBD dissector follows), iSCSI and NBD captured together on lo.

fua_expect() { # HANDLE WHAT - what request HANDLE was and what it must have sent
    case $1 in
        1) echo "write+fua: a WRITE with FUA=1 or a SYNCHRONIZE CACHE" ;;
        2) echo "write_zeroes+fua: a WRITE with FUA=1 or a SYNCHRONIZE CACHE after its zeroing" ;;
        3) echo "trim+fua: a SYNCHRONIZE CACHE after its UNMAP" ;;
        4) echo "flush: a SYNCHRONIZE CACHE" ;;
    esac
}

if [ -z "$PY" ] || [ -z "${URI[host.2]:-}" ]; then
    h_skip "$H_TEST.fua_on_the_wire" "needs libnbd's python bindings and the host-stack thin LUN"
elif ! command -v dumpcap >/dev/null 2>&1 || ! command -v tshark >/dev/null 2>&1; then
    h_skip "$H_TEST.fua_on_the_wire" "dumpcap/tshark not installed"
else
    cap=$H_TMP/fua.pcapng
    dumpcap -q -i lo -f "tcp port $H_PORT or tcp port ${NBD_ADDR##*:}" -B 64 -w "$cap" \
        >"$cap.log" 2>&1 </dev/null &
    cpid=$!
    h_bg_register "$cpid"
    for _ in $(seq 100); do
        grep -q 'Capturing on' "$cap.log" 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.2
    h_run "$PY" -c '
import nbd, os, sys
h = nbd.NBD()
h.set_request_structured_replies(False)
h.connect_uri(sys.argv[1])
h.pwrite(os.urandom(65536), 0, nbd.CMD_FLAG_FUA)               # handle 1
h.zero(2 * 1048576, 1048576, nbd.CMD_FLAG_FUA)                 # handle 2
h.trim(1048576, 8 * 1048576, nbd.CMD_FLAG_FUA)                 # handle 3
h.flush()                                                      # handle 4
h.shutdown()' "${URI[host.2]}"
    h_expect_ok "$H_TEST.fua_requests"
    sleep "${H_CAPTURE_DRAIN:-1.5}"
    h__kill_pid "$cpid"
    # per NBD reply (handle), the SCSI commands sent since the previous reply:
    # "HANDLE op:fua op:fua ..." (SYNCHRONIZE CACHE is 0x35/0x91, WRITE 0x2a/0x8a)
    tshark -r "$cap" -Y "nbd || (iscsi.opcode == 0x01)" -T fields -E "separator=;" \
        -e tcp.srcport -e nbd.handle -e iscsi.opcode -e scsi_sbc.opcode -e scsi_sbc.fua \
        2>/dev/null | awk -F";" -v nbd="${NBD_ADDR##*:}" '
        $1 == nbd && $2 != "" { h = $2; sub(/^0x0*/, "", h); print h cmds; cmds = ""; next }
        $1 != nbd && $4 != "" {
            n = split($4, op, ","); split($5, fua, ",")
            for (i = 1; i <= n; i++) cmds = cmds " " op[i] ":" (fua[i] == "" ? 0 : fua[i])
        }' >"$H_TMP/fua.seen"
    for hd in 1 2 3 4; do
        line=$(grep "^$hd " "$H_TMP/fua.seen" || grep "^$hd\$" "$H_TMP/fua.seen")
        what=$(fua_expect "$hd")
        name=$H_TEST.fua_on_the_wire.${what%%:*}
        if [ -z "$line" ]; then
            h_fail "$name" "no NBD reply to request $hd in the capture"
        elif grep -qE ' 0x(35|91):' <<<"$line" ||
            { [ "$hd" -le 2 ] && grep -qE ' 0x(2a|8a):1' <<<"$line"; }; then
            h_pass "$name"
        else
            h_fail "$name" "toegw replied after sending only [${line#* }]; expected ${what#*: }"
        fi
    done
fi

# --- the Linux kernel client -----------------------------------------------------------------

if ! command -v nbd-client >/dev/null 2>&1; then
    h_skip "$H_TEST.nbd_client" "nbd-client not installed: the Linux kernel client is not tested"
elif [ ! -b /dev/nbd0 ]; then
    h_skip "$H_TEST.nbd_client" "no /dev/nbd0 (the nbd kernel module is not loaded): the Linux kernel client is not tested"
else
    st=${STACKS[-1]}
    vol=${VOL[$st.1]}
    backing=$(h_lun_path "$([ "$st" = toe ] && echo 1 || echo 2)" 1)
    h_random "$H_TMP/kern.in" 1048576
    h_run nbd-client -N "$vol" 127.0.0.1 "${NBD_ADDR##*:}" /dev/nbd0
    if h_expect_ok "$H_TEST.nbd_client.connect"; then
        h_run dd if="$H_TMP/kern.in" of=/dev/nbd0 bs=1M count=1 oflag=direct conv=fsync
        h_expect_ok "$H_TEST.nbd_client.write"
        h_run dd if=/dev/nbd0 of="$H_TMP/kern.out" bs=1M count=1 iflag=direct
        h_expect_ok "$H_TEST.nbd_client.read"
        h_check "$H_TEST.nbd_client.data" "what the kernel client wrote and read back differs" \
            cmp -s "$H_TMP/kern.in" "$H_TMP/kern.out"
        h_check "$H_TEST.nbd_client.backing" "the backing file differs" \
            h_cmp_region "$H_TMP/kern.in" 0 "$backing" 0 1048576
        h_run nbd-client -d /dev/nbd0
        h_expect_ok "$H_TEST.nbd_client.disconnect"
    fi
fi

h_check "$H_TEST.alive_at_end" "toegw died or stopped answering" serve_alive
h_end
