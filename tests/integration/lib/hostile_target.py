#!/usr/bin/env python3
"""hostile_target.py - a small scripted iSCSI target (RFC 7143) for toegw's tests.

Python 3 standard library only. By default it is a correct target with one disk LUN (LUN 1)
backed by a file: login with operational negotiation, optional CHAP (one-way and mutual:
MD5, SHA-1, SHA-256, SHA3-256), SendTargets, TEST UNIT READY, INQUIRY (standard and VPD
0x00/0x80/0x83/0xB0), READ CAPACITY 10/16, REPORT LUNS, READ/WRITE 10/16 (immediate data,
unsolicited Data-Out, R2T), SYNCHRONIZE CACHE 10/16, NOP, task management, logout, CRC32C
header and data digests. With --case NAME it misbehaves at one point of one phase;
hostile_cases.py lists every case with the toegw command that reaches that point and what
toegw must answer (the tests read it with --list). This file holds the connection: the wire,
login, CHAP, NOP, text, task management, async messages, the flood; hostile_scsi.py the SCSI
commands, hostile_wire.py the byte-level helpers.

    hostile_target.py --listen 0.0.0.0:3261 --backing FILE [--case NAME] [--ready FILE]
                      [--log FILE] [--block-size N]
    hostile_target.py --list

Every connection gets the case's behaviour, so a session that logs in again meets the same
fault. The target never exits by itself; the test stops it.
"""

import argparse
import os
import select
import socket
import struct
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # the test tree stays clean (no __pycache__ next to the tests)
from hostile_cases import CASE_NAMES, CASES, PARAMS
from hostile_scsi import ScsiMixin
from hostile_wire import (ASYNC, CHAP_SECRET, CHAP_USER, DATA_OUT, FLOOD_BYTES, IQN, LOGIN_REQ,
                          LOGIN_RSP, LOGOUT_REQ, LOGOUT_RSP, LUN, M32, NOP_IN, NOP_OUT, REJECT,
                          RSVD, SCSI_CMD, TEXT_REQ, TEXT_RSP, TGT_SECRET, TGT_USER, TMF_REQ,
                          TMF_RSP, WINDOW, Closed, Pdu, chap_decode, chap_hash, digest, get32,
                          kv_bytes, lun_wire, pad4, parse_kv, put16, put32, sense, sn_lt)

# ------------------------------------------------------------------------------- target


class Target:
    def __init__(self, args):
        self.case = args.case
        self.p = dict(PARAMS.get(args.case, {}))
        self.block_size = self.p.get("block_size", args.block_size)
        self.backing = os.open(args.backing, os.O_RDWR)
        self.size = os.fstat(self.backing).st_size
        self.blocks = self.size // self.block_size
        self.lock = threading.Lock()
        self.logf = open(args.log, "a", buffering=1) if args.log else None
        self.nconn = 0

    def log(self, msg):
        if self.logf:
            self.logf.write("%.3f %s\n" % (time.time(), msg))

    def pread(self, off, n):
        data = os.pread(self.backing, n, off) if off < self.size else b""
        return data + bytes(n - len(data))

    def pwrite(self, off, data):
        os.pwrite(self.backing, data, off)


class Conn(ScsiMixin):
    """One connection: login, then the full feature phase, on its own thread."""

    def __init__(self, tgt, sock, n):
        self.t, self.s, self.n, self.case = tgt, sock, n, tgt.case
        self.p = tgt.p
        self.blocks, self.block_size = tgt.blocks, tgt.block_size
        self.rbuf = bytearray()
        self.hd = self.dd = False
        self.statsn = 0x10000
        self.exp_cmdsn = 1
        self.closed_window = self.case == "maxcmdsn-closed"
        self.frozen_max = None    # maxcmdsn-frozen: the MaxCmdSN last advertised
        self.neg = {}
        self.writes = {}          # ITT -> write state
        self.held = {}            # ITT -> commands never answered (no-answer cases)
        self.ttt_next = 0x100
        self.reads = 0
        self.first_tx = True      # the first full-feature PDU (digest cases)
        self.first_data = True
        self.pause_until = 0.0
        self.next_ping = 0.0

    def log(self, msg):
        self.t.log("conn %d: %s" % (self.n, msg))

    # --- wire ------------------------------------------------------------------------------

    def max_cmdsn(self):
        if self.closed_window:
            return (self.exp_cmdsn - 1) & M32
        if self.frozen_max is not None:
            return self.frozen_max
        return (self.exp_cmdsn + self.p.get("window", WINDOW) - 1) & M32

    def recv_exact(self, n):
        throttle = self.p.get("throttle") and self.pause_until > 0
        while len(self.rbuf) < n:
            now = time.monotonic()
            if now < self.pause_until:
                time.sleep(min(0.05, self.pause_until - now))
                self.tick()
                continue
            r, _, _ = select.select([self.s], [], [], 0.2)
            if not r:
                self.tick()
                continue
            chunk = self.s.recv(8192 if throttle else max(1 << 18, n - len(self.rbuf)))
            if not chunk:
                raise Closed()
            self.rbuf += chunk
            if throttle:
                time.sleep(0.004)  # about 2 MB/s: the initiator's Data-Out backs up
        out = bytes(self.rbuf[:n])
        del self.rbuf[:n]
        return out

    def recv_pdu(self):
        h = bytearray(self.recv_exact(48))
        if h[4]:
            h += self.recv_exact(4 * h[4])
        if self.hd and self.recv_exact(4) != digest(h):
            raise Closed("header digest mismatch in a pdu from the initiator")
        dsl = int.from_bytes(h[5:8], "big")
        data = b""
        if dsl:
            raw = self.recv_exact(dsl + pad4(dsl))
            if self.dd and self.recv_exact(4) != digest(raw):
                raise Closed("data digest mismatch in a pdu from the initiator")
            data = raw[:dsl]
        return Pdu(h, data)

    def hdr(self, op, flags=0x80, itt=RSVD, lun=None):
        h = bytearray(48)
        h[0], h[1] = op, flags
        put32(h, 16, itt)
        if lun is not None:
            h[8:16] = lun_wire(lun)
        return h

    def send(self, h, data=b"", sn=None, dsl=None, corrupt_hd=False, corrupt_dd=False):
        """sn: 'adv' (StatSN, then advance it), 'cur' (StatSN, not advanced) or None."""
        if sn:
            put32(h, 24, self.statsn)
            if sn == "adv":
                self.statsn = (self.statsn + 1) & M32
        put32(h, 28, self.exp_cmdsn)
        put32(h, 32, self.max_cmdsn())
        n = len(data) if dsl is None else dsl
        h[5:8] = n.to_bytes(3, "big")
        out = bytearray(h)
        if self.hd:
            d = bytearray(digest(h))
            if corrupt_hd:
                d[0] ^= 0x5A
            out += d
        if data:
            body = bytes(data) + bytes(pad4(len(data)))
            out += body
            if self.dd:
                d = bytearray(digest(body))
                if corrupt_dd:
                    d[1] ^= 0xA5
                out += d
        self.s.sendall(out)

    def hold(self, read=True):
        """Say nothing more: read and drop (or, with read=False, not even read) until the
        initiator closes."""
        self.log("silent (reading: %s)" % read)
        if read:
            while True:
                r, _, _ = select.select([self.s], [], [], 1.0)
                if r and not self.s.recv(1 << 16):
                    return
        p = select.poll()
        p.register(self.s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        while not p.poll(1000):
            pass

    def tick(self):
        """Between reads: the target's own traffic (pings of nop-only)."""
        if self.case == "nop-only" and self.neg and time.monotonic() >= self.next_ping:
            self.next_ping = time.monotonic() + 1.0
            h = self.hdr(NOP_IN, itt=RSVD)
            put32(h, 20, 0x7000 + self.n)
            self.send(h, sn="cur")

    # --- login -----------------------------------------------------------------------------

    def login_rsp(self, req, text=b"", transit=False, csg=0, nsg=0, status=(0, 0), tsih=0,
                  cont=False, dsl=None, version=0):
        h = self.hdr(LOGIN_RSP, (0x80 if transit else 0) | (0x40 if cont else 0) |
                     (csg << 2) | (nsg if transit else 0), req.itt)
        h[3] = version
        h[8:14] = req.h[8:14]
        put16(h, 14, tsih)
        h[36], h[37] = status
        self.send(h, text, sn="adv", dsl=dsl)

    def login(self):
        """The login phase. True when the full feature phase begins."""
        c = self.case
        chap = None
        rounds = 0
        downgrade = 0
        while True:
            req = self.recv_pdu()
            if req.op != LOGIN_REQ:
                self.log("opcode 0x%02x during login" % req.op)
                return False
            rounds += 1
            self.exp_cmdsn = req.cmdsn
            kv = parse_kv(req.data)
            keys = dict(kv)
            transit = bool(req.flags & 0x80)
            csg, nsg = (req.flags >> 2) & 3, req.flags & 3
            if rounds == 1:
                self.discovery = keys.get("SessionType") == "Discovery"
                if c == "silent-mid-login":
                    self.s.sendall(bytes([LOGIN_RSP, 0x81, 0, 0]) + bytes(16))
                    self.hold()
                    return False
                if c == "login-junk":
                    self.s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n" + b" " * 16)
                    self.hold()
                    return False
                if c == "login-wrong-opcode":
                    self.send(self.hdr(NOP_IN, itt=req.itt), sn="adv")
                    self.hold()
                    return False
                if c == "login-huge-dsl":
                    self.login_rsp(req, dsl=0xFFFFFF)
                    self.s.sendall(bytes(1024))
                    self.hold()
                    return False
                if c == "login-bad-status":
                    self.login_rsp(req, status=(0x07, 0x42))
                    return False
                if c == "login-version":
                    self.login_rsp(req, kv_bytes([("AuthMethod", "None")]), True, 0, 1,
                                   version=5)
                    self.hold()
                    return False
                if c == "login-continue-endless":
                    for _ in range(1000):
                        self.login_rsp(req, b"TargetAlias=" + b"a" * 8180 + b"\0", cont=True)
                        req = self.recv_pdu()
                    self.hold()
                    return False
                if not self.discovery and keys.get("TargetName") != IQN:
                    self.login_rsp(req, status=(0x02, 0x03))
                    return False
            if csg == 0:
                if "AuthMethod" in keys:
                    methods = keys["AuthMethod"].split(",")
                    if "CHAP" in methods and ("None" not in methods or
                                             self.p.get("chap")):
                        chap = "method"
                        self.login_rsp(req, kv_bytes([("AuthMethod", "CHAP"),
                                                      ("TargetPortalGroupTag", "1")]),
                                       False, 0, 0)
                        continue
                    self.login_rsp(req, kv_bytes([("AuthMethod", "None"),
                                                  ("TargetPortalGroupTag", "1")]),
                                   transit, 0, nsg)
                    continue
                if chap == "method" and "CHAP_A" in keys:
                    chap = self.chap_challenge(req, keys)
                    if not chap:
                        self.hold()
                        return False
                    continue
                if isinstance(chap, tuple) and "CHAP_R" in keys:
                    if not self.chap_verify(req, keys, chap, transit, nsg):
                        return False
                    chap = "done"
                    continue
                self.login_rsp(req, b"", transit, 0, nsg)
                continue
            # operational stage
            answers = self.negotiate(kv)
            text = kv_bytes(answers)
            done = transit and nsg == 3
            if c == "keys-malformed":
                text = b"HeaderDigest\0" + text
            elif c == "keys-repeated":
                text += b"MaxBurstLength=131072\0"
            elif c == "login-never-transit":
                done = False
            elif c == "keys-digest-downgrade":
                downgrade += 1
                if downgrade == 1:
                    done = False
                elif downgrade == 2:
                    text, done = b"HeaderDigest=None\0", False
                else:
                    text = b""  # the initiator's reply is not echoed back as an offer
            if not done:
                self.login_rsp(req, text, False, 1, 0)
                continue
            tsih = 0 if c == "login-no-tsih" else 0x4242
            self.login_rsp(req, text, True, 1, 3, tsih=tsih)
            if c == "login-no-tsih":
                self.hold()
                return False
            self.hd = self.neg.get("HeaderDigest") == "CRC32C"
            self.dd = self.neg.get("DataDigest") == "CRC32C"
            self.log("logged in: %s" % self.neg)
            return True

    def negotiate(self, offers):
        """Answer the initiator's offers (RFC 7143 §13 result functions)."""
        p = self.p
        ours = dict(MaxBurstLength=p.get("MaxBurstLength", 262144),
                    FirstBurstLength=p.get("FirstBurstLength", 65536),
                    MaxOutstandingR2T=1, DefaultTime2Retain=0, ErrorRecoveryLevel=0,
                    MaxConnections=1, DefaultTime2Wait=2,
                    InitialR2T=p.get("InitialR2T", True), ImmediateData=True,
                    DataPDUInOrder=True, DataSequenceInOrder=True)
        mins = ("MaxBurstLength", "FirstBurstLength", "MaxOutstandingR2T",
                "DefaultTime2Retain", "ErrorRecoveryLevel", "MaxConnections")
        out = []
        for k, v in offers:
            if k in ("HeaderDigest", "DataDigest"):
                pick = v.split(",")[0]
                if pick not in ("None", "CRC32C"):
                    pick = "None"
                self.neg[k] = pick
                if k == "HeaderDigest" and self.case == "keys-digest-reject":
                    self.neg[k] = "CRC32C"  # insists on digests whatever it answered
                    pick = "Reject"
                out.append((k, pick))
            elif k == "MaxRecvDataSegmentLength":
                self.neg[k] = int(v, 0)
                mrdsl = p.get("MaxRecvDataSegmentLength", 65536)
                if self.case == "keys-mrdsl-huge":
                    mrdsl = 1 << 24
                elif self.case == "keys-mrdsl-tiny":
                    mrdsl = 511
                out.append((k, str(mrdsl)))
            elif k in mins or k == "DefaultTime2Wait":
                o = int(v, 0)
                r = min(o, ours[k]) if k in mins else max(o, ours[k])
                if k == "MaxBurstLength" and self.case == "keys-burst-above-offer":
                    r = min(o * 2, (1 << 24) - 1)
                self.neg[k] = r
                out.append((k, str(r)))
            elif k in ("InitialR2T", "DataPDUInOrder", "DataSequenceInOrder"):
                r = v == "Yes" or ours[k]
                self.neg[k] = r
                out.append((k, "Yes" if r else "No"))
            elif k == "ImmediateData":
                r = v == "Yes" and ours[k]
                self.neg[k] = r
                out.append((k, "Yes" if r else "No"))
            else:
                out.append((k, "NotUnderstood"))
        return out

    def param(self, k, default):
        return self.neg.get(k, default)

    # --- CHAP ----------------------------------------------------------------------------

    def chap_challenge(self, req, keys):
        algs = [int(a) for a in keys["CHAP_A"].split(",") if a.strip().isdigit()]
        alg = next((a for a in algs if a in (5, 6, 7, 8)), None)
        if alg is None:
            self.login_rsp(req, status=(0x02, 0x01))
            return None
        ident = 0x35
        chal = os.urandom(32)
        out = [("CHAP_A", str(alg)), ("CHAP_I", str(ident)), ("CHAP_C", "0x" + chal.hex())]
        if self.case == "chap-bad-algorithm":
            out[0] = ("CHAP_A", "99")
        elif self.case == "chap-short-challenge":
            chal = b"\x01"
            out[2] = ("CHAP_C", "0x01")
        elif self.case == "chap-huge-challenge":
            chal = os.urandom(1100)
            out[2] = ("CHAP_C", "0x" + chal.hex())
        elif self.case == "chap-bad-id":
            out[1] = ("CHAP_I", "300")
        self.login_rsp(req, kv_bytes(out), False, 0, 0)
        return (alg, ident, chal)

    def chap_verify(self, req, keys, chap, transit, nsg):
        alg, ident, chal = chap
        try:
            got = chap_decode(keys.get("CHAP_R", ""))
        except ValueError:
            got = b""
        if keys.get("CHAP_N") != CHAP_USER or got != chap_hash(alg, ident, CHAP_SECRET, chal):
            self.log("initiator failed CHAP")
            self.login_rsp(req, status=(0x02, 0x01))
            return False
        out = []
        if "CHAP_C" in keys and self.case != "chap-mutual-missing":
            r = bytearray(chap_hash(alg, int(keys["CHAP_I"], 0), TGT_SECRET,
                                    chap_decode(keys["CHAP_C"])))
            if self.case == "chap-mutual-wrong":
                r[0] ^= 0x01
            out = [("CHAP_N", TGT_USER), ("CHAP_R", "0x" + bytes(r).hex())]
        self.login_rsp(req, kv_bytes(out), transit, 0, nsg)
        return True

    # --- full feature phase --------------------------------------------------------------

    def run(self):
        try:
            if self.case == "silent-accept":
                self.hold()
                return
            if not self.login():
                return
            if self.case == "silent-after-login":
                self.hold()
                return
            while True:
                pdu = self.recv_pdu()
                if not pdu.immediate and pdu.op in (SCSI_CMD, TEXT_REQ, TMF_REQ, LOGOUT_REQ):
                    if self.closed_window and sn_lt(self.max_cmdsn(), pdu.cmdsn):
                        self.log("cmdsn %u outside the window: dropped" % pdu.cmdsn)
                        continue
                    if pdu.cmdsn == self.exp_cmdsn:
                        self.exp_cmdsn = (self.exp_cmdsn + 1) & M32
                if not self.dispatch(pdu):
                    return
        except (Closed, OSError) as e:
            self.log("closed: %s" % (e or "by the initiator"))
        except Exception:  # a bug of the target: the test reports it, never as toegw's fault
            self.log("target error: " + traceback.format_exc().replace("\n", " | "))
        finally:
            try:
                self.s.close()
            except OSError:
                pass

    def dispatch(self, pdu):
        op = pdu.op
        if op == NOP_OUT:
            if pdu.itt != RSVD:
                h = self.hdr(NOP_IN, itt=pdu.itt)
                h[8:16] = pdu.h[8:16]
                put32(h, 20, RSVD)
                self.send(h, pdu.data, sn="adv")
        elif op == SCSI_CMD:
            self.command(pdu)
        elif op == DATA_OUT:
            self.data_out(pdu)
        elif op == TEXT_REQ:
            self.text(pdu)
        elif op == TMF_REQ:
            self.tmf(pdu)
        elif op == LOGOUT_REQ:
            h = self.hdr(LOGOUT_RSP, itt=pdu.itt)
            self.send(h, sn="adv")
            self.log("logged out")
            return False
        else:
            self.reject(pdu, 0x05)
        return True

    def reject(self, pdu, reason):
        h = self.hdr(REJECT)
        h[2] = reason
        self.send(h, bytes(pdu.h[:48]), sn="adv")

    def text(self, pdu):
        keys = dict(parse_kv(pdu.data))
        h = self.hdr(TEXT_RSP, 0x80, pdu.itt)
        put32(h, 20, RSVD)
        if self.case == "text-endless":
            h[1] = 0x40
            put32(h, 20, 0x1234)
            self.send(h, b"TargetAlias=" + b"b" * 8180 if pdu.ttt == RSVD else b"c" * 8192,
                      sn="adv")
            return
        if "SendTargets" not in keys and pdu.ttt == RSVD:
            self.send(h, sn="adv")
            return
        addr, port = self.s.getsockname()[:2]
        text = kv_bytes([("TargetName", IQN), ("TargetAddress", "%s:%d,1" % (addr, port))])
        if self.case == "text-malformed":
            text = b"TargetName\0" + text
        self.send(h, text, sn="adv")

    def tmf(self, pdu):
        fn = pdu.flags & 0x7F
        if self.case in ("nop-only", "maxcmdsn-closed", "maxcmdsn-frozen",
                         "datain-never-final"):
            self.log("tmf function %d ignored" % fn)
            return
        if fn == 1:
            self.held.pop(get32(pdu.h, 20), None)
        elif fn == 5:
            self.held.clear()
        h = self.hdr(TMF_RSP, itt=pdu.itt)
        h[2] = 0
        self.send(h, sn="adv")

    def async_event(self, c):
        """An async message at the first READ. True when the READ is not to be answered."""
        event, data, p1, p2, p3 = {
            "async-logout": (1, b"", 0, 0, 1),
            "async-drop": (2, b"", 0, 0, 0),
            "async-drop-all": (3, b"", 0, 0, 0),
            "async-vendor-ignored": (255, b"hostile vendor data", 0, 0, 0),
            "async-scsi-event-ignored": (0, struct.pack(">H", 18) + sense(0x06, 0x3F, 0x0E),
                                         0, 0, 0),
            "async-vendor-oversize": (255, bytes(300000), 0, 0, 0),
        }[c]
        h = self.hdr(ASYNC, 0x80, RSVD, LUN)
        put32(h, 20, RSVD)
        h[36] = event
        put16(h, 38, p1)
        put16(h, 40, p2)
        put16(h, 42, p3)
        self.send(h, data, sn="adv")
        self.log("async event %d sent" % event)
        if event in (2, 3):
            time.sleep(0.2)
            raise Closed("dropped after async event %d" % event)
        return False

    # --- the NOP-In flood ------------------------------------------------------------------

    def flood(self):
        """NOP-In pings that each ask for an answer, never reading what comes back."""
        sent = 0
        tag = 1
        batch = 512
        t0 = time.monotonic()
        while sent < FLOOD_BYTES:
            out = bytearray()
            for _ in range(batch):
                h = self.hdr(NOP_IN, itt=RSVD)
                put32(h, 20, tag)
                put32(h, 24, self.statsn)
                put32(h, 28, self.exp_cmdsn)
                put32(h, 32, self.max_cmdsn())
                out += h
                tag = tag % 0x7FFFFFFF + 1
            self.s.sendall(out)
            sent += len(out)
        self.log("flooded %d bytes of nop-in in %.1f s" % (sent, time.monotonic() - t0))
        self.hold(read=False)


def serve(args):
    tgt = Target(args)
    host, _, port = args.listen.rpartition(":")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if tgt.p.get("rcvbuf"):
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, tgt.p["rcvbuf"])
    ls.bind((host or "0.0.0.0", int(port)))
    ls.listen(16)
    tgt.log("listening on %s, case %s" % (args.listen, args.case))
    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.ready + ".tmp", args.ready)
    while True:
        s, peer = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with tgt.lock:
            tgt.nconn += 1
            n = tgt.nconn
        tgt.log("conn %d from %s:%d" % (n, peer[0], peer[1]))
        threading.Thread(target=Conn(tgt, s, n).run, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description="a scripted iSCSI target that misbehaves")
    ap.add_argument("--listen", default="127.0.0.1:3261")
    ap.add_argument("--backing")
    ap.add_argument("--case", default="baseline-luns")
    ap.add_argument("--block-size", type=int, default=512)
    ap.add_argument("--ready")
    ap.add_argument("--log")
    ap.add_argument("--list", action="store_true", help="print the cases (tab-separated)")
    args = ap.parse_args()
    if args.list:
        for c in CASES:
            print("\t".join(c))
        return 0
    if args.case not in CASE_NAMES:
        print("hostile_target: unknown case %r" % args.case, file=sys.stderr)
        return 2
    if not args.backing:
        print("hostile_target: --backing FILE is required", file=sys.stderr)
        return 2
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
