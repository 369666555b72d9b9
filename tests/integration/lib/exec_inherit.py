#!/usr/bin/env python3
"""exec_inherit.py - a TOE connection's descriptor across exec (test_preload.sh).

  exec_inherit.py connect HOST PORT LIBTOEGW

Run with LD_PRELOAD=toegw-preload.so. It connects to HOST:PORT (the shim asks the broker),
prints what the socket says, then execs itself twice with the descriptor kept open:

  inherited FD LIBTOEGW   still under the shim: what the inherited socket says, and an iSCSI
                          login request through it answered by the target (the data path
                          still works);
  describe FD             without the shim: what the kernel says (an AF_UNIX socket) and
                          what libtoegw's toegw_describe() says, and the name `ss -x` shows.

  exec_inherit.py pass HOST PORT

Run with LD_PRELOAD=toegw-preload.so. It connects to HOST:PORT, prints what the socket
says, starts a child (under the same shim) with one end of a Unix socketpair, sends it the
descriptor over SCM_RIGHTS and closes its own copy:

  received                what the received socket says in the child, and an iSCSI login
                          request through it answered by the target.

Each stage prints one line "STAGE key=value ..."; the test compares them.
"""
import ctypes
import os
import socket
import struct
import subprocess
import sys

from hostile_wire import LOGIN_REQ, LOGIN_RSP, Pdu, kv_bytes, pad4, put32


def face(s):
    return "family=%s local=%s:%d peer=%s:%d" % (
        (s.family.name,) + s.getsockname() + s.getpeername())


def report(stage, s):
    """One line: what the socket says, and whether the connection still carries iSCSI."""
    print(stage, face(s), "login_answered=%s" % login_answered(s), flush=True)


def login_answered(s):
    """A discovery login request (security stage, no authentication); the target's reply
    must be a Login Response."""
    data = kv_bytes([("InitiatorName", "iqn.2026-12.org.example:exec"),
                     ("SessionType", "Discovery"), ("AuthMethod", "None")])
    hdr = bytearray(48)
    hdr[0] = 0x40 | LOGIN_REQ                 # immediate
    hdr[1] = 0x81                             # transit, security stage -> operational
    hdr[5:8] = len(data).to_bytes(3, "big")
    hdr[8:14] = b"\x40\x00\x01\x37\x00\x00"   # ISID
    put32(hdr, 16, 1)                         # ITT
    s.sendall(bytes(hdr) + data + b"\0" * pad4(len(data)))
    got = b""
    s.settimeout(5)
    while len(got) < 48:
        chunk = s.recv(48 - len(got))
        if not chunk:
            break
        got += chunk
    return len(got) == 48 and Pdu(got, b"").op == LOGIN_RSP


class ConnInfo(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("local", ctypes.c_uint8 * 16),
                ("remote", ctypes.c_uint8 * 16), ("stack", ctypes.c_char * 8),
                ("placement", ctypes.c_char * 64), ("reservation", ctypes.c_uint64)]


def sin(raw):
    port, addr = struct.unpack(">H4s", bytes(raw[2:8]))
    return "%s:%d" % (socket.inet_ntoa(addr), port)


def main():
    mode = sys.argv[1]
    if mode == "connect":
        host, port, lib = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        s = socket.create_connection((host, port), timeout=10)
        print("parent", face(s), flush=True)
        os.set_inheritable(s.fileno(), True)
        os.execv(sys.executable, [sys.executable, __file__, "inherited", str(s.fileno()), lib])
    elif mode == "inherited":
        fd, lib = int(sys.argv[2]), sys.argv[3]
        s = socket.socket(fileno=fd)   # kept open: the exec below passes it on
        report("inherited", s)
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        os.set_inheritable(fd, True)
        os.execve(sys.executable, [sys.executable, __file__, "describe", str(fd), lib], env)
    elif mode == "pass":
        host, port = sys.argv[2], int(sys.argv[3])
        s = socket.create_connection((host, port), timeout=10)
        print("parent", face(s), flush=True)
        mine, theirs = socket.socketpair()
        child = subprocess.Popen([sys.executable, __file__, "received", str(theirs.fileno())],
                                 pass_fds=[theirs.fileno()])
        theirs.close()
        socket.send_fds(mine, [b"c"], [s.fileno()])
        s.close()
        return child.wait(timeout=30)
    elif mode == "received":
        via = socket.socket(fileno=int(sys.argv[2]))
        _, fds, _, _ = socket.recv_fds(via, 16, 1)
        report("received", socket.socket(fileno=fds[0]))
    elif mode == "describe":
        fd, lib = int(sys.argv[2]), sys.argv[3]
        s = socket.socket(fileno=fd)
        info = ConnInfo()
        rc = ctypes.CDLL(lib).toegw_describe(fd, ctypes.byref(info))
        names = [w for w in subprocess.run(["ss", "-xaH"], capture_output=True,
                                           text=True).stdout.split() if "toegw-conn/" in w]
        print("describe family=%s rc=%d id=%d local=%s remote=%s stack=%s ss=%s" % (
            s.family.name, rc, info.id, sin(info.local), sin(info.remote),
            info.stack.decode(), ",".join(names) or "-"), flush=True)
        notone = socket.socket()
        print("notone rc=%d" % ctypes.CDLL(lib).toegw_describe(notone.fileno(), None),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
