#!/usr/bin/env python3
"""bsock_client.py - a client of toegw's broker socket that speaks the protocol byte by byte
(docs/broker.md), for tests: good requests and every kind of bad one.

    bsock_client.py SOCK connect HOST PORT [STACK [SEND]]
                                                     CONNECT (STACK: 0 auto, 1 toe, 2 host);
                                                     prints the reply, then holds the
                                                     descriptor: sends SEND zero bytes
                                                     through it, prints getpeername, waits
                                                     for stdin to close
    bsock_client.py SOCK badinput                    one bad request of each kind; prints
                                                     "CASE code=N message" per reply
    bsock_client.py SOCK flood                       requests without reading any reply
"""
import os
import socket
import struct
import sys
import time

MAGIC = 0x5447


def fields(items):
    return b"".join(bytes([t, len(v)]) + v for t, v in items)


def msg(typ, seq, body, version=1, magic=MAGIC, blen=None):
    return struct.pack(">HBBHH", magic, version, typ, seq,
                       len(body) if blen is None else blen) + body


def parse(b):
    _, _, typ, seq, _ = struct.unpack(">HBBHH", b[:8])
    off, f = 8, {}
    while off + 2 <= len(b):
        t, n = b[off], b[off + 1]
        f[t] = b[off + 2:off + 2 + n]
        off += 2 + n
    return typ, seq, f


def conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(15)
    s.connect(path)
    return s


def describe(data, fds):
    typ, seq, f = parse(data)
    if typ == 0xFF:
        return "error code=%d %s" % (struct.unpack(">I", f.get(11, b"\0\0\0\0"))[0],
                                     f.get(12, b"").decode())
    return "type=0x%x seq=%d conn=%d local=%s:%d on_stack=%s placement=%s fds=%d" % (
        typ, seq, struct.unpack(">Q", f[6])[0], socket.inet_ntoa(f[7]),
        struct.unpack(">H", f[8])[0], "toe" if f[9] == b"\x01" else "host",
        f[10].decode(), len(fds))


def connect_cmd(path, host, port, stack, send=0):
    s = conn(path)
    items = [(1, socket.inet_aton(host)), (2, struct.pack(">H", port))]
    if stack is not None:
        items.append((3, bytes([stack])))
    s.send(msg(1, 7, fields(items)))
    data, fds, _, _ = socket.recv_fds(s, 2048, 4)
    print(describe(data, fds), flush=True)
    if not fds:
        return 1
    c = socket.socket(fileno=fds[0])
    if send:
        c.sendall(bytes(send))
    print("family=%s peer=%s sent=%d" % (c.family.name, c.getpeername(), send), flush=True)
    sys.stdin.read()
    c.close()
    return 0


def badinput(path):
    good = fields([(1, socket.inet_aton("192.0.2.1")), (2, struct.pack(">H", 3260))])
    cases = [
        ("short", b"\x54\x47\x01"),
        ("magic", msg(1, 1, good, magic=0x1234)),
        ("version", msg(1, 2, good, version=2)),
        ("bodylen", msg(1, 3, good, blen=len(good) + 5)),
        ("cutfield", msg(1, 4, good + b"\x05")),
        ("overrun", msg(1, 5, good + b"\x05\x30abc")),
        ("unknowntag", msg(1, 6, good + b"\x40\x01x")),
        ("twice", msg(1, 7, good + fields([(2, struct.pack(">H", 80))]))),
        ("badlen", msg(1, 8, fields([(1, b"\xc0\x00\x02"), (2, struct.pack(">H", 3260))]))),
        ("noport", msg(1, 9, fields([(1, socket.inet_aton("192.0.2.1"))]))),
        ("badstack", msg(1, 10, good + fields([(3, b"\x07")]))),
        ("holderonly", msg(1, 11, good + fields([(5, b"someone")]))),
        ("control", msg(1, 12, good + fields([(4, struct.pack(">Q", 1)), (5, b"a\x01b")]))),
        ("type", msg(9, 13, good)),
        ("release", msg(2, 14, fields([(6, struct.pack(">Q", 999999))]))),
        ("noreservation", msg(1, 15, good + fields([(4, struct.pack(">Q", 424242))]))),
        ("oversized", msg(1, 16, good + b"\x90\xff" + b"x" * 255) * 8),
    ]
    s = conn(path)
    for name, data in cases:
        s.send(data)
        reply, fds, _, _ = socket.recv_fds(s, 2048, 4)
        print(name, describe(reply, fds), flush=True)
    # a descriptor passed to the broker is closed by it, not kept
    r, w = os.pipe()
    socket.send_fds(s, [msg(1, 17, b"")], [w])
    os.close(w)
    reply, fds, _, _ = socket.recv_fds(s, 2048, 4)
    print("passedfd", describe(reply, fds), flush=True)
    s.settimeout(5)
    print("pipe-closed-by-broker", os.read(r, 1) == b"", flush=True)
    return 0


def flood(path):
    """Send requests and never read a reply, for up to 5 s: the broker's replies pile up
    until it cannot send one at once, and it drops this client (the send then fails)."""
    s = conn(path)
    s.setblocking(False)
    sent = 0
    body = fields([(6, struct.pack(">Q", 999999))])
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            s.send(msg(2, sent & 0xFFFF, body))
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError) as e:
            print("dropped after %d requests: %s" % (sent, type(e).__name__), flush=True)
            return 0
    print("not dropped after %d requests" % sent, flush=True)
    return 1


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    if cmd == "connect":
        stack = int(sys.argv[5]) if len(sys.argv) > 5 else None
        send = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        return connect_cmd(path, sys.argv[3], int(sys.argv[4]), stack, send)
    if cmd == "badinput":
        return badinput(path)
    if cmd == "flood":
        return flood(path)
    return 2


if __name__ == "__main__":
    sys.exit(main())
