#!/usr/bin/env python3
"""seeds.py - turns what tests/fuzz/record-seeds captured from real peers into fuzzer seeds.

  seeds.py iscsi MODE TARGET_STREAM INITIATOR_STREAM CORPUS NAME
      the two sides of a recorded iSCSI session (record_session) into seeds for the pdu,
      text, chap and scsi fuzzers (each PDU framed as RFC 7143 lays it out, digests on from
      the first PDU after the login when MODE asked for them)
  seeds.py frames PCAP CORPUS NAME
      Ethernet/IPv4/TCP frames of a capture (pcap, not pcapng) into seeds for the frame
      fuzzer, each behind a virtio-net header, one of them as a GSO super-frame
  seeds.py streams PCAP PORT KIND CORPUS NAME
      what each client sent to PORT (tshark's view of every TCP stream) into seeds for
      KIND: "nbd" (the bytes as they are) or "api" (each HTTP request as fuzz_api reads it)

Seeds are written to CORPUS/<fuzzer>/NAME-<what>. The input formats are described at the
top of each tests/fuzz/fuzz_<name>.c.
"""
import os
import struct
import subprocess
import sys

FUZZ_TOKEN = b"t0k3n-0123456789abcdef0123456789abcdef"  # fuzz_api.c's token
CHAP_ALGS = [5, 6, 7, 8]                                 # fuzz_chap.c's table, in order
SCSI_SEL = 0x8B  # fuzz_scsi: 256 LUNs, 80-byte strings, status CHECK CONDITION


def write(corpus, fuzzer, name, data):
    """A seed, unless the fuzzer already has one with the same bytes."""
    d = os.path.join(corpus, fuzzer)
    os.makedirs(d, exist_ok=True)
    for other in os.listdir(d):
        with open(os.path.join(d, other), "rb") as f:
            if other != name and f.read() == data:
                return
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pdus(stream, hd, dd):
    """Each PDU of one side of a session: (bhs, data segment, raw bytes)."""
    pos, ffp = 0, False
    while pos + 48 <= len(stream):
        h = stream[pos:pos + 48]
        ahs = 4 * h[4]
        dsl = int.from_bytes(h[5:8], "big")
        hlen = 48 + ahs + (4 if hd and ffp else 0)
        seg = dsl + ((4 - dsl % 4) % 4 + (4 if dd and ffp else 0) if dsl else 0)
        raw = stream[pos:pos + hlen + seg]
        yield h, stream[pos + hlen:pos + hlen + dsl], raw, ffp
        op = h[0] & 0x3F
        if op == 0x03 and not ffp and h[1] & 0x80 and h[1] & 3 == 3:
            ffp = True
        elif op == 0x23 and h[36] != 0:
            ffp = False  # refused: the next login starts a new connection
        elif op == 0x23 and h[1] & 0x80 and h[1] & 3 == 3:
            ffp = True
        elif op == 0x03 and ffp and (h[1] >> 2) & 3 == 0:
            ffp = False
        pos += hlen + seg


def kv(seg):
    out = {}
    for pair in seg.split(b"\0"):
        if b"=" in pair:
            k, v = pair.split(b"=", 1)
            out[k.decode(errors="replace")] = v
    return out


def scsi_name(cdb):
    op = cdb[0]
    if op == 0x12:
        return "vpd-%02x" % cdb[2] if cdb[1] & 1 else "inquiry"
    return {0x25: "read-capacity-10", 0x9E: "read-capacity-16", 0xA0: "report-luns",
            0x28: "read", 0x88: "read"}.get(op)


def cmd_iscsi(mode, tgt_path, ini_path, corpus, name):
    mode = int(mode, 0)
    hd, dd = bool(mode & 4), bool(mode & 8)
    tgt = open(tgt_path, "rb").read()[1:]   # the first byte is fuzz_session's mode
    ini = open(ini_path, "rb").read()
    cdbs, data, our_chap_i, nreq = {}, {}, None, 0
    for h, seg, _, ffp in pdus(ini, hd, dd):
        op = h[0] & 0x3F
        if op == 0x01:
            cdbs[h[16:20]] = h[32:48]
        if op == 0x03 and seg:
            nreq += 1
            write(corpus, "text", "%s-login-request-%d" % (name, nreq), seg)
            keys = kv(seg)
            if "CHAP_I" in keys and "CHAP_C" in keys:
                our_chap_i = int(keys["CHAP_I"], 0)
    ffp_pdus = b""
    logins = 0
    for h, seg, raw, ffp in pdus(tgt, hd, dd):
        op = h[0] & 0x3F
        itt = h[16:20]
        if ffp:
            ffp_pdus += raw
        if op == 0x23 and seg:
            logins += 1
            write(corpus, "text", "%s-login-response-%d" % (name, logins), seg)
            keys = kv(seg)
            if "CHAP_C" in keys and "CHAP_A" in keys and int(keys["CHAP_A"]) in CHAP_ALGS:
                write(corpus, "chap", name + "-challenge",
                      bytes([CHAP_ALGS.index(int(keys["CHAP_A"])),
                             int(keys.get("CHAP_I", b"0"), 0) & 0xFF, 7])
                      + keys["CHAP_C"] + b"\0fuzz-secret-12chars")
            if "CHAP_R" in keys and our_chap_i is not None:
                write(corpus, "chap", name + "-target-response",
                      bytes([0, our_chap_i, 5]) + keys["CHAP_R"] + b"\0fuzz-target-secret-1")
        elif op == 0x24 and seg:
            write(corpus, "text", name + "-sendtargets", seg)
        elif op == 0x25:
            off = int.from_bytes(h[40:44], "big")
            buf = data.setdefault(itt, bytearray())
            buf[off:off + len(seg)] = seg
        elif op == 0x21 and h[3] == 0x02 and len(seg) > 2:
            slen = int.from_bytes(seg[0:2], "big")
            what = scsi_name(cdbs.get(itt, b"\0" * 16)) or "command"
            write(corpus, "scsi", "%s-sense-%s" % (name, what),
                  bytes([SCSI_SEL]) + bytes(12) + seg[2:2 + slen])
    for itt, buf in data.items():
        if itt not in cdbs:
            continue
        what = scsi_name(cdbs[itt])
        if what and what != "read":
            write(corpus, "scsi", "%s-%s" % (name, what), bytes([SCSI_SEL]) + bytes(12) + buf)
    if hd or dd:
        if ffp_pdus:
            write(corpus, "pdu", name + "-full-feature", bytes([hd | dd << 1]) + ffp_pdus)
    else:
        write(corpus, "pdu", name, b"\0" + tgt)


def pcap_frames(path):
    raw = open(path, "rb").read()
    magic = struct.unpack("<I", raw[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    pos = 24
    while pos + 16 <= len(raw):
        _, _, incl, _ = struct.unpack(end + "IIII", raw[pos:pos + 16])
        yield raw[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def vnet(flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_off=0):
    return struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, csum_start, csum_off)


def cmd_frames(pcap, corpus, name):
    picked, biggest = {}, None
    for f in pcap_frames(pcap):
        if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        ihl = (f[14] & 15) * 4
        th = 14 + ihl
        flags = f[th + 13]
        doff = (f[th + 12] >> 4) * 4
        plen = len(f) - th - doff
        kind = {0x02: "syn", 0x12: "syn-ack", 0x11: "fin-ack", 0x10: "ack"}.get(flags)
        if plen > 0:
            kind = "data"
            if biggest is None or len(f) > len(biggest[0]):
                biggest = (f, th, th + doff)
        if kind and (kind not in picked or (kind == "ack" and plen == 0 and th + doff > 54)):
            picked[kind] = f
    for kind, f in picked.items():
        write(corpus, "frame", "%s-%s" % (name, kind), vnet() + f)
    if biggest:
        f, l4, payload = biggest
        write(corpus, "frame", name + "-gso-super-frame",
              vnet(1, 1, payload, 1448, l4, 16) + f)


def tshark_streams(pcap, port):
    out = subprocess.run(
        ["tshark", "-r", pcap, "-Y", "tcp.dstport==%d && tcp.len>0" % port, "-T", "fields",
         "-e", "tcp.stream", "-e", "tcp.payload"],
        check=True, capture_output=True, text=True).stdout
    streams = {}
    for line in out.splitlines():
        if "\t" not in line:
            continue
        s, hexdata = line.split("\t", 1)
        streams.setdefault(int(s), bytearray()).extend(bytes.fromhex(hexdata.replace(":", "")))
    return [streams[k] for k in sorted(streams)]


def http_requests(buf):
    pos = 0
    while True:
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return
        head = bytes(buf[pos:end]).split(b"\r\n")
        hdrs = {}
        for line in head[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get(b"content-length", b"0"))
        yield head[0], hdrs, bytes(buf[end + 4:end + 4 + n])
        pos = end + 4 + n


def api_name(method, target):
    path = target.split(b"?")[0].decode(errors="replace").strip("/")
    parts = []
    for p in path.split("/"):
        if p in ("api", "v1"):
            continue
        parts.append("id" if p[:2] in ("s-", "v-") or p.isdigit() else p)
    return "-".join([method.decode().lower()] + (parts or ["page"]))


def cmd_streams(pcap, port, kind, corpus, name):
    seen = {}
    for i, s in enumerate(tshark_streams(pcap, int(port))):
        if kind == "nbd":
            write(corpus, "nbd", "%s-%d" % (name, i), bytes(s))
            continue
        for line, hdrs, body in http_requests(s):
            method, target = line.split(b" ")[0:2]
            auth = hdrs.get(b"authorization", b"")
            if auth:
                auth = b"Bearer " + FUZZ_TOKEN
            seed = (method + b" " + target + b"\n" + hdrs.get(b"content-type", b"") + b"\n"
                    + auth + b"\n" + body)
            n = api_name(method, target)
            seen[n] = seen.get(n, 0) + 1
            write(corpus, "api", "%s-%s%s" % (name, n, "" if seen[n] == 1 else
                                             "-%d" % seen[n]), seed)


def main(argv):
    cmds = {"iscsi": (cmd_iscsi, 5), "frames": (cmd_frames, 3), "streams": (cmd_streams, 5)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.stderr.write(__doc__)
        return 2
    cmds[argv[1]][0](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
