"""Hostile / broken "DICOM" servers owned by the tests: threaded socket servers inside the
pytest process, one port each, every wait bounded, every socket closed at ``stop()``.

Each server counts the TCP connections it accepted (``server.accepted``; the fixtures
expose it as ``peer.connection_count()``) and keeps the last A-ASSOCIATE-RQs it read
(``server.requests``: dicts with ``called``, ``calling``, ``length``, ``contexts``), so a
test can assert "no connection happened" or "we sent called AE X".

Behaviours and what DCMTK ``echoscu -to 3 -ta 3 -td 3`` does against them (measured,
DCMTK 3.6.7; asserted in tests/system/test_peers_selfcheck.py):

``silent``       accepts, reads and discards, never sends (held <= ``hold_max`` s, default 120).
                 echoscu: after ~2-3 s (-ta 3; DCMTK counts whole seconds) "Association
                 Request Failed: 0006:031a DUL network read timeout", exit 1.
``close``        closes at once (FIN).  echoscu: "Peer aborted Association (or never
                 connected)", exit 1.
``reset``        closes with SO_LINGER 0 (RST).  echoscu: exit 1, "Association Request
                 Failed: 0006:0317 Peer aborted Association (or never connected)" -- the
                 same text as for ``close``; a raw client sees ECONNRESET (sometimes
                 already from connect()).
``garbage``      sends 256 fixed pseudo-random bytes starting 0xFF 0xFE (no valid PDU type),
                 then holds.  echoscu: exit 1, "Association Request Failed: 0006:0321
                 Unrecognized PDU type: ff".
``http``         reads what comes (<= 2 s), answers ``HTTP/1.1 400 Bad Request``, closes.
                 echoscu: exit 1, "Unrecognized PDU type: 48" ('H').
``abort``        reads the A-ASSOCIATE-RQ, sends A-ABORT ``07 00 00000004 00 00 <source> <reason>``
                 (default source 0 service-user, reason 0).  echoscu: exit 1, "Peer
                 aborted Association (or never connected)" -- echoscu never shows the
                 A-ABORT source/reason.
``abort-provider`` same with source 2 (service-provider), reason 2 (unexpected PDU).
``reject-raw``   reads the RQ, sends A-ASSOCIATE-RJ ``03 00 00000004 00 <result> <source>
                 <reason>``; default result 2 (transient), source 3 (service-provider,
                 presentation), reason 2 (local-limit-exceeded) -- codes a pynetdicom SCP
                 cannot produce on demand.  echoscu: exit 1, "Association Rejected",
                 "Result: Rejected Transient, Source: Service Provider (Presentation)",
                 "Reason: Local Limit Exceeded".
``drip``         reads the RQ, then sends a *valid* A-ASSOCIATE-AC built from the RQ one byte
                 every ``interval`` s (default 1 s; bounded by ``hold_max``).  echoscu
                 ``-ta 3`` gives up after ~3 s ("DUL network read timeout", exit 1): DCMTK's
                 ACSE timeout is a deadline.  pynetdicom's is not: ``associate()`` with all
                 timeouts at 3 s stays busy until the server gives up (``hold_max``).
``huge-length``  reads the RQ, sends a PDU header type 0x02 with length 0xFFFFFFF0 and a few
                 bytes, then holds silently.  echoscu: exit 1 at once, "A-ASSOCIATE PDU too
                 large: 4294967280 bytes, refusing."

``HostileServer(behaviour, host="127.0.0.1", port=None, **options)``; ``start()``, ``stop()``.
Options: ``hold_max`` (s), ``interval`` (drip), ``source``/``reason``/``result`` (abort,
reject-raw), ``payload`` (garbage bytes), ``max_connections`` (concurrent; extra ones are
closed at once but still counted).
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import Any, Dict, List, Optional

BEHAVIOURS = ("silent", "close", "reset", "garbage", "http", "abort", "abort-provider",
              "reject-raw", "drip", "huge-length")

VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_LE = b"1.2.840.10008.1.2"
APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPL_UID = b"1.2.826.0.1.3680043.9.7433.1.1"  # private test root, arbitrary
_HTTP_400 = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
             b"Connection: close\r\n\r\nBad Request\n")


def _garbage() -> bytes:
    rnd = random.Random(0xD1C0)
    return b"\xff\xfe" + bytes(rnd.randrange(256) for _i in range(254))


# ------------------------------------------------------------------ PDU helpers
def a_abort(source: int = 0, reason: int = 0) -> bytes:
    return bytes([0x07, 0x00, 0, 0, 0, 4, 0, 0, source & 0xFF, reason & 0xFF])


def a_associate_rj(result: int = 2, source: int = 3, reason: int = 2) -> bytes:
    return bytes([0x03, 0x00, 0, 0, 0, 4, 0, result & 0xFF, source & 0xFF, reason & 0xFF])


def parse_rq(pdu: bytes) -> Dict[str, Any]:
    """Parse an A-ASSOCIATE-RQ enough for tests: AE titles and presentation contexts."""
    info: Dict[str, Any] = {"length": len(pdu), "called": None, "calling": None,
                            "contexts": []}
    if len(pdu) < 74 or pdu[0] != 0x01:
        info["valid"] = False
        return info
    info["valid"] = True
    info["called"] = pdu[10:26].decode("ascii", "replace").strip()
    info["calling"] = pdu[26:42].decode("ascii", "replace").strip()
    i = 74
    while i + 4 <= len(pdu):
        itype = pdu[i]
        ilen = struct.unpack(">H", pdu[i + 2:i + 4])[0]
        body = pdu[i + 4:i + 4 + ilen]
        if itype == 0x20 and len(body) >= 4:
            ctx = {"id": body[0], "abstract": None, "transfer": []}
            j = 4
            while j + 4 <= len(body):
                stype = body[j]
                slen = struct.unpack(">H", body[j + 2:j + 4])[0]
                val = body[j + 4:j + 4 + slen].rstrip(b"\x00").decode("ascii", "replace")
                if stype == 0x30:
                    ctx["abstract"] = val
                elif stype == 0x40:
                    ctx["transfer"].append(val)
                j += 4 + slen
            info["contexts"].append(ctx)
        i += 4 + ilen
    return info


def _item(itype: int, value: bytes) -> bytes:
    return bytes([itype, 0]) + struct.pack(">H", len(value)) + value


def a_associate_ac(rq: bytes) -> bytes:
    """A valid A-ASSOCIATE-AC for ``rq``: every context accepted with its first transfer
    syntax (implicit VR LE if the RQ cannot be parsed)."""
    info = parse_rq(rq)
    if info.get("valid"):
        called, calling = rq[10:26], rq[26:42]
        contexts = [(c["id"], (c["transfer"] or ["1.2.840.10008.1.2"])[0].encode())
                    for c in info["contexts"]] or [(1, IMPLICIT_LE)]
    else:
        called, calling = b"ANY-SCP".ljust(16), b"ECHOSCU".ljust(16)
        contexts = [(1, IMPLICIT_LE)]
    body = struct.pack(">H", 1) + b"\x00\x00" + called + calling + b"\x00" * 32
    body += _item(0x10, APP_CONTEXT)
    for ctx_id, ts in contexts:
        body += _item(0x21, bytes([ctx_id, 0, 0, 0]) + _item(0x40, ts))
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, IMPL_UID)
    body += _item(0x50, user)
    return bytes([0x02, 0x00]) + struct.pack(">I", len(body)) + body


# ------------------------------------------------------------------ the server
class HostileServer:
    def __init__(self, behaviour: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 **options: Any):
        if behaviour not in BEHAVIOURS:
            raise ValueError("unknown hostile behaviour %r" % behaviour)
        self.behaviour = behaviour
        self.host = host
        self.port = port or 0
        self.options = options
        self.hold_max = float(options.get("hold_max", 120.0))
        self.max_connections = int(options.get("max_connections", 64))
        self.accepted = 0
        self.requests: List[Dict[str, Any]] = []
        self.errors: List[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._listener: Optional[socket.socket] = None
        self._acceptor: Optional[threading.Thread] = None

    # -- lifecycle
    def start(self) -> "HostileServer":
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.05)
        self.port = s.getsockname()[1]
        self._listener = s
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="hostile-%s-%d" % (self.behaviour, self.port))
        self._acceptor.start()
        return self

    def request_stop(self) -> None:
        """Signal stop without waiting (see stop_many)."""
        self._stop.set()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            self._close(c)
        deadline = time.monotonic() + timeout
        for t in [self._acceptor] + list(self._threads):
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))

    def reset_counts(self) -> None:
        with self._lock:
            self.accepted = 0
            self.requests.clear()

    # -- internals
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self.accepted += 1
                self._threads = [t for t in self._threads if t.is_alive()]
                too_many = len(self._threads) >= self.max_connections
                if not too_many:
                    self._conns.append(conn)
            if too_many:
                self._close(conn)
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name="hostile-%s-conn" % self.behaviour)
            with self._lock:
                self._threads.append(t)
            t.start()

    @staticmethod
    def _close(conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass

    def _hold(self, conn: socket.socket, seconds: float) -> None:
        """Read and discard until the peer closes, ``seconds`` pass, or stop()."""
        deadline = time.monotonic() + seconds
        conn.settimeout(0.2)
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _read_pdu(self, conn: socket.socket, timeout: float = 5.0) -> bytes:
        """Read one PDU (6-byte header + length, capped at 1 MiB), bounded in time."""
        deadline = time.monotonic() + timeout
        buf = b""
        need = 6
        conn.settimeout(0.2)
        while len(buf) < need and not self._stop.is_set() and time.monotonic() < deadline:
            try:
                chunk = conn.recv(need - len(buf))
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if len(buf) >= 6 and need == 6:
                need = 6 + min(struct.unpack(">I", buf[2:6])[0], 1 << 20)
        if buf:
            info = parse_rq(buf)
            with self._lock:
                self.requests.append(info)
                del self.requests[:-50]
        return buf

    def _serve(self, conn: socket.socket) -> None:
        b = self.behaviour
        o = self.options
        try:
            if b == "close":
                return
            if b == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            if b == "silent":
                self._hold(conn, self.hold_max)
                return
            if b == "garbage":
                conn.sendall(o.get("payload") or _garbage())
                self._hold(conn, min(self.hold_max, 30.0))
                return
            if b == "http":
                conn.settimeout(2.0)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                conn.sendall(_HTTP_400)
                return
            rq = self._read_pdu(conn)
            if b in ("abort", "abort-provider"):
                default = (0, 0) if b == "abort" else (2, 2)
                conn.sendall(a_abort(int(o.get("source", default[0])),
                                     int(o.get("reason", default[1]))))
                self._hold(conn, 5.0)
            elif b == "reject-raw":
                conn.sendall(a_associate_rj(int(o.get("result", 2)), int(o.get("source", 3)),
                                            int(o.get("reason", 2))))
                self._hold(conn, 5.0)
            elif b == "drip":
                interval = float(o.get("interval", 1.0))
                deadline = time.monotonic() + self.hold_max
                for byte in a_associate_ac(rq):
                    if self._stop.wait(interval) or time.monotonic() > deadline:
                        return
                    conn.sendall(bytes([byte]))
                self._hold(conn, max(0.0, deadline - time.monotonic()))
            elif b == "huge-length":
                conn.sendall(b"\x02\x00" + struct.pack(">I", 0xFFFFFFF0) + b"\x00\x01\x00\x00")
                self._hold(conn, min(self.hold_max, 60.0))
        except OSError as exc:
            with self._lock:
                self.errors.append(repr(exc))
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self._close(conn)


def stop_many(servers: List[HostileServer], timeout: float = 3.0) -> None:
    """Stop several servers in parallel (each join is bounded)."""
    for s in servers:
        s.request_stop()
    for s in servers:
        s.stop(timeout)
