"""limits_clients.py - hostile and greedy API and NBD clients for test_limits.sh (and
test_storage_threads.sh: infohold).

Raw sockets only (the point is to misbehave where a real client library would not). Each
mode prints `key value` lines for the shell test to judge; nothing here decides PASS/FAIL.
Source addresses come from 198.51.100.0/24 and 203.0.113.0/24, which the test makes local
to lo inside its own network namespace.

  slow HOST PORT N INTERVAL SECONDS
      N connections, each from its own address, send "GET /livez HTTP/1.1" and then one
      header line every INTERVAL s, never the blank line, for at most SECONDS. Reports
      how many the server closed, when, and how many got a 408 answer first.
  perclient HOST PORT ADDR N READY GO
      N keep-alive connections from ADDR each get one /livez answered and stay open; then
      one more connection from ADDR sends a request. Reports the statuses, the extra
      one's answer, then writes READY and holds everything until GO exists (<= 20 s).
  nbdidle HOST PORT ADDRS PER SECONDS
      PER connections from each of ADDRS (comma list, or A.B.C.X-Y ranges) that never
      send a byte; reports when the server closed them.
  flood HOST NBD_PORT API_PORT N READY GO
      N connections to each port, each from its own address, nothing sent; writes READY
      once they are made and closes them all when GO exists (<= 60 s).
  noread HOST PORT EXPORT BACKING COUNT SIZE READY GO
      An NBD client (fixed newstyle, NBD_OPT_GO, simple replies) sends COUNT reads of SIZE
      bytes and reads nothing; writes READY; once GO exists it reads every reply and
      compares the data to the file BACKING (the LUN's backing file).
  infohold HOST PORT EXPORT N
      N connections that each ask NBD_OPT_INFO about EXPORT and then stay in the handshake;
      after 0.5 s reports how many the server still holds open ("open K").
"""
import json
import mmap
import os
import resource
import select
import socket
import struct
import sys
import time


def addresses(spec):
    out = []
    for part in spec.split(","):
        if "-" in part.rsplit(".", 1)[1]:
            base, rng = part.rsplit(".", 1)
            lo, hi = rng.split("-")
            out += ["%s.%d" % (base, i) for i in range(int(lo), int(hi) + 1)]
        else:
            out.append(part)
    return out


def pool(n):
    """n distinct source addresses from the two documentation ranges."""
    a = ["198.51.100.%d" % i for i in range(1, 255)] + \
        ["203.0.113.%d" % i for i in range(1, 255)]
    if n > len(a):
        raise SystemExit("at most %d addresses" % len(a))
    return a[:n]


def connect_from(src, host, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_file(path, limit):
    t_end = time.time() + limit
    while not os.path.exists(path) and time.time() < t_end:
        time.sleep(0.05)


def http_get(s, path="/livez", extra=""):
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, extra)).encode())


def read_answer(s, limit=5.0):
    """One HTTP answer (status, headers text, body) or (None, why, b'')."""
    s.settimeout(limit)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return None, "eof", b""
            buf += d
        head, body = buf.split(b"\r\n\r\n", 1)
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v.strip())
        while len(body) < clen:
            d = s.recv(65536)
            if not d:
                break
            body += d
        return int(head.split(b" ")[1]), head.decode("latin-1"), body
    except (socket.timeout, OSError) as e:
        return None, str(e), b""


def mode_slow(host, port, n, interval, seconds):
    raise_nofile()
    conns = []
    t0 = time.time()
    for i, src in enumerate(pool(n)):
        s = connect_from(src, host, port)
        s.sendall(b"GET /livez HTTP/1.1\r\n")
        conns.append({"s": s, "t": time.time(), "closed": None, "got": b"", "i": i})
    print("connected %d in %.2fs" % (len(conns), time.time() - t0), flush=True)
    last_send = time.time()
    line = 0
    while time.time() - t0 < seconds and any(c["closed"] is None for c in conns):
        now = time.time()
        if now - last_send >= interval:
            line += 1
            for c in conns:
                if c["closed"] is None:
                    try:
                        c["s"].sendall(b"X-Slow-%d: y\r\n" % line)
                    except OSError:
                        pass
            last_send = now
        live = [c for c in conns if c["closed"] is None]
        r, _, _ = select.select([c["s"] for c in live], [], [], 0.2)
        for c in live:
            if c["s"] in r:
                try:
                    d = c["s"].recv(4096)
                except OSError:
                    d = b""
                if d:
                    c["got"] += d
                else:
                    c["closed"] = time.time() - c["t"]
    closed = [c["closed"] for c in conns if c["closed"] is not None]
    print("closed %d" % len(closed))
    print("close_min %.2f" % (min(closed) if closed else -1))
    print("close_max %.2f" % (max(closed) if closed else -1))
    print("answered_408 %d" % sum(1 for c in conns if c["got"].startswith(b"HTTP/1.1 408")))
    print("header_lines_sent %d" % line)
    for c in conns:
        c["s"].close()


def mode_perclient(host, port, addr, n, ready, go):
    raise_nofile()
    held, codes = [], []
    for _ in range(n):
        s = connect_from(addr, host, port)
        http_get(s)
        st, _, _ = read_answer(s)
        codes.append(st)
        held.append(s)
    print("held_ok %d" % sum(1 for c in codes if c == 200))
    extra = connect_from(addr, host, port)
    http_get(extra)
    st, head, body = read_answer(extra)
    print("extra_status %s" % st)
    try:
        print("extra_detail %s" % json.loads(body)["detail"])
        print("extra_ctype %s" % ("problem+json" if "application/problem+json" in head
                                  else "other"))
    except (ValueError, KeyError):
        print("extra_detail none (%r)" % (head[:80],))
    # the connections that were let in still work
    again = 0
    for s in held[:4]:
        http_get(s)
        st, _, _ = read_answer(s)
        again += st == 200
    print("held_still_served %d" % again)
    sys.stdout.flush()
    open(ready, "w").close()
    wait_file(go, 20)
    for s in held + [extra]:
        s.close()


def mode_nbdidle(host, port, spec, per, seconds):
    raise_nofile()
    conns = []
    refused = 0
    for src in addresses(spec):
        for _ in range(per):
            try:
                s = connect_from(src, host, port)
            except OSError:
                refused += 1
                continue
            conns.append({"s": s, "t": time.time(), "closed": None, "bytes": 0})
    t0 = time.time()
    while time.time() - t0 < seconds and any(c["closed"] is None for c in conns):
        live = [c for c in conns if c["closed"] is None]
        r, _, _ = select.select([c["s"] for c in live], [], [], 0.2)
        for c in live:
            if c["s"] in r:
                try:
                    d = c["s"].recv(4096)
                except OSError:
                    d = b""
                if d:
                    c["bytes"] += len(d)
                else:
                    c["closed"] = time.time() - c["t"]
    times = sorted(c["closed"] for c in conns if c["closed"] is not None)
    print("connected %d" % len(conns))
    print("connect_failed %d" % refused)
    print("open_at_end %d" % sum(1 for c in conns if c["closed"] is None))
    print("closed_within_1s %d" % sum(1 for t in times if t < 1.0))
    print("closed_before_8s %d" % sum(1 for t in times if t < 8.0))
    print("closed_later %d" % sum(1 for t in times if t >= 1.0))
    later = [t for t in times if t >= 1.0]
    print("later_min %.2f" % (min(later) if later else -1))
    print("later_max %.2f" % (max(later) if later else -1))
    for c in conns:
        c["s"].close()


def mode_flood(host, nbd_port, api_port, n, ready, go):
    raise_nofile()
    socks = []
    made = {"nbd": 0, "api": 0}
    for port, kind in ((nbd_port, "nbd"), (api_port, "api")):
        for src in pool(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((src, 0))
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            socks.append((s, kind))
    # connects beyond the listen backlog stay in SYN_SENT: give them a moment
    t_end = time.time() + 3
    pending = list(socks)
    while pending and time.time() < t_end:
        _, w, _ = select.select([], [s for s, _ in pending], [], 0.2)
        rest = []
        for s, kind in pending:
            if s in w:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    made[kind] += 1
            else:
                rest.append((s, kind))
        pending = rest
    print("made_nbd %d" % made["nbd"])
    print("made_api %d" % made["api"])
    print("unfinished %d" % len(pending))
    sys.stdout.flush()
    open(ready, "w").close()
    wait_file(go, 60)
    for s, _ in socks:
        s.close()


def recv_exact(s, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = s.recv_into(view[got:], n - got)
        if not k:
            raise EOFError("server closed after %d of %d bytes" % (got, n))
        got += k
    return bytes(buf)


def nbd_go(s, name, opt=7):
    """The greeting, then NBD_OPT_GO (or opt, e.g. 6: NBD_OPT_INFO) for export name, up to
    its NBD_REP_ACK; returns the export's size. EOFError when the server closes."""
    hello = recv_exact(s, 18)
    if hello[:16] != b"NBDMAGICIHAVEOPT":
        raise SystemExit("bad greeting %r" % hello)
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    nm = name.encode()
    data = struct.pack(">I", len(nm)) + nm + struct.pack(">H", 0)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", opt, len(data)) + data)
    size = None
    while True:
        magic, _, typ, ln = struct.unpack(">QIII", recv_exact(s, 20))
        body = recv_exact(s, ln)
        if typ == 3 and struct.unpack(">H", body[:2])[0] == 0:
            size = struct.unpack(">Q", body[2:10])[0]
        if typ == 1:
            return size
        if typ & 0x80000000:
            raise SystemExit("NBD option %d refused: %r" % (opt, body))


def mode_infohold(host, port, export, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        try:
            nbd_go(s, export, opt=6)
            socks.append(s)
        except EOFError:
            s.close()
    time.sleep(0.5)
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
    print("open %d" % alive)


def mode_noread(host, port, export, backing, count, size, ready, go):
    # a small receive buffer: what toegw has to hold is what the kernel does not
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.connect((host, port))
    vsize = nbd_go(s, export)
    offs = [(i * size) % vsize for i in range(count)]
    for i, off in enumerate(offs):
        s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, off, size))
    print("sent %d reads of %d bytes (%d MiB)" % (count, size, count * size >> 20),
          flush=True)
    open(ready, "w").close()
    wait_file(go, 120)
    f = open(backing, "rb")
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    seen, bad = set(), 0
    for _ in range(count):
        magic, err, handle = struct.unpack(">IIQ", recv_exact(s, 16))
        if magic != 0x67446698 or err != 0 or handle >= count or handle in seen:
            print("bad_reply magic %x error %d handle %d" % (magic, err, handle))
            bad += 1
            break
        seen.add(handle)
        data = recv_exact(s, size)
        if data != m[offs[handle]:offs[handle] + size]:
            bad += 1
    print("replies %d" % len(seen))
    print("mismatched %d" % bad)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))  # NBD_CMD_DISC
    s.close()


def main():
    a = sys.argv[1:]
    mode = a[0]
    if mode == "slow":
        mode_slow(a[1], int(a[2]), int(a[3]), float(a[4]), float(a[5]))
    elif mode == "perclient":
        mode_perclient(a[1], int(a[2]), a[3], int(a[4]), a[5], a[6])
    elif mode == "nbdidle":
        mode_nbdidle(a[1], int(a[2]), a[3], int(a[4]), float(a[5]))
    elif mode == "flood":
        mode_flood(a[1], int(a[2]), int(a[3]), int(a[4]), a[5], a[6])
    elif mode == "infohold":
        mode_infohold(a[1], int(a[2]), a[3], int(a[4]))
    elif mode == "noread":
        mode_noread(a[1], int(a[2]), a[3], a[4], int(a[5]), int(a[6]), a[7], a[8])
    else:
        raise SystemExit("unknown mode %s" % mode)


if __name__ == "__main__":
    main()
