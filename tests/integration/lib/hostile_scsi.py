"""hostile_scsi.py - the SCSI side of hostile_target.py's connections: status, Data-In,
INQUIRY and VPD pages, READ CAPACITY, REPORT LUNS, READ, WRITE with R2T, each with the
misbehaviour of the cases that act there. A mixin of Conn (hostile_target.py), whose wire
methods (hdr, send, param, take_first_tx, log) it uses."""

import struct
import time

from hostile_wire import (DATA_IN, DATAIN_PDU, LUN, M32, R2T, RSVD, SCSI_RSP, Closed, get16,
                          get32, lun_of, lun_wire, put32, sense)


class ScsiMixin:
    # --- status ----------------------------------------------------------------------------

    def status(self, itt, status=0, snd=b"", residual=0, under=True, itt_wire=None):
        h = self.hdr(SCSI_RSP, 0x80, itt if itt_wire is None else itt_wire)
        h[3] = status
        if residual:
            h[1] |= 0x02 if under else 0x04
            put32(h, 44, residual)
        data = struct.pack(">H", len(snd)) + snd if snd else b""
        if self.case == "rsp-sense-long" and snd:
            data = struct.pack(">H", 1024) + snd
        self.send(h, data, sn="adv", corrupt_hd=self.take_first_tx())

    def check(self, itt, key, asc, ascq=0):
        self.status(itt, 0x02, sense(key, asc, ascq))

    def take_first_tx(self):
        first, self.first_tx = self.first_tx, False
        return first and self.case == "digest-header-corrupt"

    # --- commands --------------------------------------------------------------------------

    def command(self, pdu):
        h, itt = pdu.h, pdu.itt
        cdb = bytes(h[32:48])
        lun = lun_of(h[8:16])
        edtl = get32(h, 20)
        op = cdb[0]
        c = self.case
        if op in (0x28, 0x88, 0x2A, 0x8A) and lun == LUN:
            if c == "nop-only":
                self.held[itt] = pdu
                return
            if c == "nop-flood":
                self.flood()
                raise Closed("flood over")
            if c == "maxcmdsn-frozen" and self.frozen_max is None:
                self.frozen_max = self.max_cmdsn()
                self.log("MaxCmdSN frozen at %u" % self.frozen_max)
        if op in (0x2A, 0x8A):
            self.write_cmd(pdu, cdb, lun, edtl)
            return
        if op == 0xA0:
            self.report_luns(itt, cdb)
            return
        if op == 0x12:
            self.inquiry(itt, lun, cdb)
            return
        if lun != LUN:
            self.check(itt, 0x05, 0x25)
            return
        if op == 0x00:
            if c == "rsp-unknown-itt":
                self.status(itt, itt_wire=itt ^ 0x00FF0000)
            else:
                self.status(itt)
        elif op == 0x25:
            self.read_capacity10(itt)
        elif op == 0x9E and cdb[1] & 0x1F == 0x10:
            self.read_capacity16(itt, cdb)
        elif op in (0x28, 0x88):
            self.read_cmd(pdu, cdb, edtl)
        elif op in (0x35, 0x91):
            self.status(itt)
        else:
            self.check(itt, 0x05, 0x20)

    def data_in(self, itt, data, edtl, status=0, plan=None, lun=LUN):
        """Send `data` as Data-In PDUs ending with status (S bit). `plan` overrides the
        PDUs: [(offset, payload, datasn, flags)]."""
        size = min(self.param("MaxRecvDataSegmentLength", 8192), DATAIN_PDU)
        burst = self.param("MaxBurstLength", 262144)
        if plan is None:
            plan = []
            for sn, off in enumerate(range(0, len(data), size)):
                end = min(off + size, len(data))
                f = 0x80 if end % burst == 0 else 0
                plan.append((off, data[off:end], sn, f))
            if not plan:
                plan = [(0, b"", 0, 0)]
            off, payload, sn, f = plan[-1]
            plan[-1] = (off, payload, sn, 0x81)
        for off, payload, sn, f in plan:
            h = self.hdr(DATA_IN, f, itt, lun)
            put32(h, 20, RSVD)
            put32(h, 36, sn)
            put32(h, 40, off)
            if f & 0x01:
                h[3] = status
                if len(data) < edtl:
                    h[1] |= 0x02
                    put32(h, 44, edtl - len(data))
                elif len(data) > edtl:
                    h[1] |= 0x04
                    put32(h, 44, len(data) - edtl)
            corrupt_dd = self.first_data and self.case == "digest-data-corrupt"
            self.first_data = False
            self.send(h, payload, sn="adv" if f & 0x01 else None,
                      corrupt_hd=self.take_first_tx(), corrupt_dd=corrupt_dd)

    def overlapped(self, image, pieces, alloc):
        """Data-In plan of `pieces` (offset, length) slices of image, each cut into PDUs the
        initiator accepts, the last with status."""
        plan = []
        for o, n in pieces:
            for off in range(o, o + n, DATAIN_PDU):
                end = min(off + DATAIN_PDU, o + n)
                plan.append((off, image[off:end], len(plan), 0))
        o, b, i, _ = plan[-1]
        plan[-1] = (o, b, i, 0x81)
        return plan

    def inquiry(self, itt, lun, cdb):
        alloc = get16(cdb, 3)
        c = self.case
        if not cdb[1] & 1:
            d = bytearray(96)
            d[0] = 0x00 if lun == LUN else 0x7F
            d[2], d[3], d[4] = 6, 2, 91
            d[8:36] = b"HOSTILE SCRIPTED TARGET 0001"
            self.data_in(itt, bytes(d[:alloc]), alloc)
            return
        page = cdb[2]
        if lun != LUN:
            self.check(itt, 0x05, 0x25)
            return
        if page == 0x00:
            d = bytes([0, 0, 0, 4, 0x00, 0x80, 0x83, 0xB0])
            if c == "vpd00-overlap":
                img = bytes([0, 0, 0xFF, 0xFF, 0x00]) + bytes(alloc)
                self.data_in(itt, img[:alloc], alloc, plan=self.overlapped(
                    img, [(0, 250), (2, 250), (5, 250)], alloc))
                return
            if c == "vpd-length-lie":
                d = bytes([0, 0, 0xFF, 0xFC, 0x00, 0x80, 0x83, 0xB0])
                self.data_in(itt, d, len(d))  # no residual: claims the page is complete
                return
        elif page == 0x80:
            sn = b"HOSTILE0001"
            d = bytes([0, 0x80, 0, len(sn)]) + sn
        elif page == 0x83:
            naa = bytes.fromhex("6001405f4f5354494c450000000001")
            desig = bytes([0x01, 0x03, 0, len(naa) + 1]) + b"\x60" + naa[1:] + b"\x01"
            d = bytes([0, 0x83]) + struct.pack(">H", len(desig)) + desig
            if c == "vpd83-overlap":
                first = bytes([0x02, 0x01, 0, 247]) + b"HOSTILE " * 31
                img = bytes([0, 0x83, 0xFF, 0xFF]) + first[:251] + bytes(alloc)
                self.data_in(itt, img[:alloc], alloc, plan=self.overlapped(
                    img, [(0, 250), (3, 250), (5, 250)], alloc))
                return
            if c == "vpd-length-lie":
                d = bytes([0, 0x83, 0x02, 0x00]) + desig + bytes(40 - 4 - len(desig))
                self.data_in(itt, d, len(d))
                return
        elif page == 0xB0:
            d = bytearray(64)
            d[1], d[3] = 0xB0, 0x3C
            mt = self.p.get("max_transfer", -128 * 1024)
            if mt < 0:
                mt = -mt // self.block_size  # a byte count
            put32(d, 8, mt)
            put32(d, 12, min(mt, 64) if mt else 64)
            d = bytes(d)
        else:
            self.check(itt, 0x05, 0x24)
            return
        self.data_in(itt, d[:alloc], alloc)

    def report_luns(self, itt, cdb):
        alloc = get32(cdb, 6)
        c = self.case
        d = struct.pack(">II", 8, 0) + lun_wire(LUN)
        if c == "reportluns-huge":
            d = struct.pack(">II", 0xFFFFFFF8, 0) + lun_wire(LUN)
        elif c == "reportluns-overlap" and alloc >= 64:
            # the list is always 4 x what was asked for: an initiator that asks again with
            # a bigger buffer meets the same overlap at every size
            img = struct.pack(">II", min(4 * alloc, 0xFFFFFFF8) & ~7, 0) + lun_wire(LUN)
            img += bytes(alloc)
            third = alloc // 2
            self.data_in(itt, img[:alloc], alloc, plan=self.overlapped(
                img, [(0, third), (third // 2, third), (alloc - third, third)], alloc))
            return
        self.data_in(itt, d[:alloc], alloc)

    def read_capacity10(self, itt):
        c = self.case
        last, bs = min(self.blocks - 1, M32), self.block_size
        if c == "capacity-2e56":
            last = M32
        elif c == "blocksize-3":
            bs = 3
        elif c == "blocksize-0":
            bs = 0
        self.data_in(itt, struct.pack(">II", last, bs), 8)

    def read_capacity16(self, itt, cdb):
        c = self.case
        alloc = get32(cdb, 10)
        last, bs = self.blocks - 1, self.block_size
        if c == "capacity-2e56":
            last = 1 << 56
        elif c == "blocksize-3":
            bs = 3
        elif c == "blocksize-0":
            bs = 0
        d = struct.pack(">QI", last, bs) + bytes(20)
        self.data_in(itt, d[:alloc], alloc)

    def read_cmd(self, pdu, cdb, edtl):
        itt = pdu.itt
        c = self.case
        if cdb[0] == 0x28:
            lba, n = get32(cdb, 2), get16(cdb, 7)
        else:
            lba, n = struct.unpack_from(">Q", cdb, 2)[0], get32(cdb, 10)
        if lba + n > self.blocks:
            self.check(itt, 0x05, 0x21)
            return
        self.reads += 1
        if c == "no-answer-abort-ok":
            self.held[itt] = pdu
            return
        if self.reads == 1 and c.startswith("async-"):
            if self.async_event(c):
                return
        data = self.t.pread(lba * self.block_size, n * self.block_size)
        if c == "rsp-sense-long":
            self.check(itt, 0x03, 0x11)
            return
        if c == "silent-mid-command":
            h = self.hdr(DATA_IN, 0, itt, LUN)
            put32(h, 20, RSVD)
            h[5:8] = (16384).to_bytes(3, "big")
            self.s.sendall(bytes(h) + data[:8192])
            self.hold()
            raise Closed("silent")
        q = len(data) // 4
        parts = [(i * q, data[i * q:(i + 1) * q]) for i in range(4)]
        plan = None
        if c == "datain-overlap":
            h2 = q // 2
            pieces = [(0, q), (h2, q), (q, q), (2 * q, q), (3 * q, q)]
            plan = [(o, data[o:o + n], i, 0) for i, (o, n) in enumerate(pieces)]
        elif c == "datain-repeat":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate([parts[0], parts[1], parts[1],
                                                             parts[3]])]
        elif c == "datain-gap":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate([parts[0], parts[2], parts[3]])]
        elif c == "datain-out-of-order":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate([parts[1], parts[0], parts[2],
                                                             parts[3]])]
        elif c == "datain-beyond":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate(parts[:3])]
            plan.append((3 * q, parts[3][1] + bytes(512), 3, 0))
        elif c == "datain-datasn":
            plan = [(o, b, (5 if i == 1 else i), 0) for i, (o, b) in enumerate(parts)]
        elif c == "datain-short-no-residual":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate(parts[:2])]
        elif c == "datain-unknown-itt":
            self.data_in(itt ^ 0x00FF0000, data, edtl)
            return
        elif c == "datain-never-final":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate(parts)]
            self.data_in(itt, data, edtl, plan=plan)
            return
        elif c == "datain-status-no-final":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate(parts)]
            o, b, i, _ = plan[-1]
            plan[-1] = (o, b, i, 0x01)
            self.data_in(itt, data, edtl, plan=plan)
            return
        elif c == "datain-residual-lie":
            plan = [(o, b, i, 0) for i, (o, b) in enumerate(parts)]
            for o, b, i, f in plan[:-1]:
                self.data_in_one(itt, o, b, i, f)
            o, b, i, _ = plan[-1]
            self.data_in_one(itt, o, b, i, 0x83, residual=edtl // 2)
            return
        if plan is not None:
            o, b, i, _ = plan[-1]
            plan[-1] = (o, b, i, 0x81)
        self.data_in(itt, data, edtl, plan=plan)

    def data_in_one(self, itt, off, payload, sn, flags, residual=0):
        h = self.hdr(DATA_IN, flags, itt, LUN)
        put32(h, 20, RSVD)
        put32(h, 36, sn)
        put32(h, 40, off)
        put32(h, 44, residual)
        self.send(h, payload, sn="adv" if flags & 0x01 else None)

    # --- writes ----------------------------------------------------------------------------

    def write_cmd(self, pdu, cdb, lun, edtl):
        itt = pdu.itt
        c = self.case
        if c in ("rsp-check-before-dataout", "reject-write-immediate"):
            # Ask for the rest of the data (more than any socket buffer holds), then answer
            # at once and read slowly: the initiator's Data-Out stays queued behind it.
            rest = min(self.param("FirstBurstLength", 65536), edtl)
            if rest < edtl:
                h = self.hdr(R2T, 0x80, itt, LUN)
                put32(h, 20, self.ttt_next)
                put32(h, 40, rest)
                put32(h, 44, min(self.param("MaxBurstLength", 262144), edtl - rest))
                self.ttt_next += 1
                self.send(h, sn="cur")
            if c == "reject-write-immediate":
                self.reject(pdu, 0x09)
            else:
                self.check(itt, 0x03, 0x0C)
            self.log("write 0x%08x answered before its data" % itt)
            if self.pause_until == 0:
                self.pause_until = time.monotonic() + 1.0
            return
        if cdb[0] == 0x2A:
            lba, n = get32(cdb, 2), get16(cdb, 7)
        else:
            lba, n = struct.unpack_from(">Q", cdb, 2)[0], get32(cdb, 10)
        if lba + n > self.blocks or n * self.block_size != edtl:
            self.check(itt, 0x05, 0x21 if lba + n > self.blocks else 0x24)
            return
        w = dict(lba=lba, buf=bytearray(edtl), got=len(pdu.data), edtl=edtl, r2tsn=0,
                 ttt=None, want=0, unsol=not pdu.flags & 0x80)
        w["buf"][:len(pdu.data)] = pdu.data
        self.writes[itt] = w
        if not w["unsol"]:
            self.next_r2t(itt, w)

    def data_out(self, pdu):
        w = self.writes.get(pdu.itt)
        if not w:
            return  # a task already answered: drop its data
        off = get32(pdu.h, 40)
        w["buf"][off:off + len(pdu.data)] = pdu.data
        w["got"] = max(w["got"], off + len(pdu.data))
        if pdu.flags & 0x80:
            if pdu.ttt == RSVD:
                w["unsol"] = False
            if w["ttt"] is not None and pdu.ttt == w["ttt"]:
                w["outstanding"] = w.get("outstanding", 1) - 1
                if w.get("outstanding", 0) > 0:
                    return
            self.next_r2t(pdu.itt, w)

    def next_r2t(self, itt, w):
        if w["got"] >= w["edtl"]:
            self.t.pwrite(w["lba"] * self.t.block_size, bytes(w["buf"]))
            del self.writes[itt]
            self.status(itt)
            return
        burst = self.param("MaxBurstLength", 262144)
        off = w["got"]
        pieces = [(off, min(burst, w["edtl"] - off))]
        if self.case == "r2t-beyond":
            pieces = [(w["edtl"] - 4096, 65536)]
        elif self.case == "r2t-too-many" and w["edtl"] - off >= 1024:
            # two at once, each within MaxBurstLength: only MaxOutstandingR2T is broken
            rem = w["edtl"] - off
            first = min(burst, rem // 2 - rem // 2 % 512) if rem <= burst else burst
            pieces = [(off, first), (off + first, min(burst, rem - first))]
        w["ttt"] = self.ttt_next
        w["outstanding"] = len(pieces)
        self.ttt_next += 1
        for o, n in pieces:
            h = self.hdr(R2T, 0x80, itt, LUN)
            put32(h, 20, w["ttt"])
            put32(h, 36, w["r2tsn"])
            put32(h, 40, o)
            put32(h, 44, n)
            w["r2tsn"] += 1
            self.send(h, sn="cur")
