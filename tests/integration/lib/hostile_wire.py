"""hostile_wire.py - constants and byte-level helpers of hostile_target.py: CRC32C,
big-endian fields, text keys, CHAP hashes, sense data."""

import base64
import hashlib
import struct

IQN = "iqn.2024-01.org.example.toegw:hostile"
LUN = 1
# CHAP credentials of the cases that authenticate (test-only values).
CHAP_USER, CHAP_SECRET = "hostile-initiator", "initiator-secret-4821"
TGT_USER, TGT_SECRET = "hostile-target", "target-secret-9173"

RSVD = 0xFFFFFFFF
M32 = 0xFFFFFFFF
WINDOW = 32                 # commands the CmdSN window admits
DATAIN_PDU = 32 * 1024      # Data-In segment size (bounded by the initiator's MRDSL too)
FLOOD_BYTES = 32 << 20      # NOP-In flood: bounded so a broken initiator cannot eat the machine

# Opcodes
NOP_OUT, SCSI_CMD, TMF_REQ, LOGIN_REQ, TEXT_REQ, DATA_OUT, LOGOUT_REQ = 0, 1, 2, 3, 4, 5, 6
NOP_IN, SCSI_RSP, TMF_RSP, LOGIN_RSP, TEXT_RSP, DATA_IN, LOGOUT_RSP = (
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26)
R2T, ASYNC, REJECT = 0x31, 0x32, 0x3F


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC = _crc_table()


def crc32c(data):
    c = M32
    t = _CRC
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ M32


def digest(data):
    return struct.pack("<I", crc32c(data))


def pad4(n):
    return (4 - n % 4) % 4


def get16(b, o):
    return struct.unpack_from(">H", b, o)[0]


def get32(b, o):
    return struct.unpack_from(">I", b, o)[0]


def put16(b, o, v):
    struct.pack_into(">H", b, o, v & 0xFFFF)


def put32(b, o, v):
    struct.pack_into(">I", b, o, v & M32)


def sn_lt(a, b):
    return a != b and ((b - a) & M32) < 0x80000000


def lun_wire(lun):
    return struct.pack(">Q", lun << 48)


def lun_of(wire):
    return (get16(wire, 0) & 0x3FFF)


def parse_kv(data):
    """Key=value pairs of a text segment, in order (lenient: the initiator is not on trial)."""
    out = []
    for item in bytes(data).split(b"\0"):
        if not item:
            continue
        k, _, v = item.decode("utf-8", "replace").partition("=")
        out.append((k, v))
    return out


def kv_bytes(pairs):
    return b"".join(("%s=%s" % kv).encode() + b"\0" for kv in pairs)


def chap_hash(alg, ident, secret, challenge):
    name = {5: "md5", 6: "sha1", 7: "sha256", 8: "sha3_256"}[alg]
    return hashlib.new(name, bytes([ident]) + secret.encode() + challenge).digest()


def chap_decode(v):
    if v[:2] in ("0x", "0X"):
        h = v[2:]
        return bytes.fromhex(("0" + h) if len(h) % 2 else h)
    if v[:2] in ("0b", "0B"):
        return base64.b64decode(v[2:])
    raise ValueError("not a binary value")


def sense(key, asc, ascq=0):
    s = bytearray(18)
    s[0], s[2], s[7], s[12], s[13] = 0x70, key, 10, asc, ascq
    return bytes(s)


class Closed(Exception):
    pass


class Pdu:
    def __init__(self, hdr, data):
        self.h, self.data = hdr, data

    op = property(lambda self: self.h[0] & 0x3F)
    immediate = property(lambda self: bool(self.h[0] & 0x40))
    flags = property(lambda self: self.h[1])
    itt = property(lambda self: get32(self.h, 16))
    ttt = property(lambda self: get32(self.h, 20))
    cmdsn = property(lambda self: get32(self.h, 24))
