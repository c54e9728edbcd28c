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

Behaviours added for the hardening suite (tests/system/test_hardening_peers.py states, per
case, what a strict SCU should conclude):

``tls-server-hello`` reads the RQ, answers with the bytes of a TLS 1.2 ServerHello record
                 (``16 03 03 ...``), then holds: a TLS endpoint behind a plain DICOM port.
``tls-client-hello`` sends a TLS ClientHello record (``16 03 01 ...``) at once, then holds.
``truncated-ac`` reads the RQ, sends an A-ASSOCIATE-AC whose header announces the full
                 length but only half of the body, then closes.
``ac-no-context`` reads the RQ, sends an otherwise valid A-ASSOCIATE-AC without any
                 presentation context item (0x21), then holds.
``ac-wrong-context-id`` same, but the one context item answers a context ID that was never
                 proposed (the RQ's highest ID + 2).
``release-rq``   reads the RQ and answers with A-RELEASE-RQ instead of AC/RJ, then holds.
``dicom-ok``     control: a correct hand-written SCP (valid AC echoing the RQ's context IDs,
                 C-ECHO-RSP with the right message ID / SOP class / status 0, A-RELEASE-RP).
``echo-wrong-msgid`` like dicom-ok, but the C-ECHO-RSP's MessageIDBeingRespondedTo is the
                 request's MessageID + 1.
``echo-wrong-sop`` like dicom-ok, but the C-ECHO-RSP's AffectedSOPClassUID is CT Image
                 Storage.
``echo-wrong-command`` like dicom-ok, but answers with a C-STORE-RSP (CommandField 0x8001).
``echo-silent``  valid AC, then reads C-ECHO-RQs and never answers them.
``echo-huge-length`` valid AC, then answers the C-ECHO-RQ with a P-DATA-TF header whose
                 length is 0xFFFFFFF0, and holds.
``release-silent`` answers C-ECHO correctly, never answers the A-RELEASE-RQ (holds).
``echo-then-abort`` answers the first C-ECHO correctly, then sends A-ABORT at once (so a
                 ``count`` > 1 sees the abort between its echoes).
``echo-then-release-rq`` answers the first C-ECHO correctly, then sends its own A-RELEASE-RQ
                 and holds.
``echo-then-close`` answers the first C-ECHO correctly, then closes the connection.

The DICOM-speaking behaviours keep the C-ECHO-RQs they read in ``server.echo_requests``
(dicts with ``msg_id``, ``sop_class``, ``context_id``) and the PDU types they received
after the RQ in ``server.pdu_types``.

``HostileServer(behaviour, host="127.0.0.1", port=None, **options)``; ``start()``, ``stop()``.
Options: ``hold_max`` (s), ``interval`` (drip), ``delay`` (reset: wait this long before the
RST, so it lands after the client's connect() returned), ``source``/``reason``/``result`` (abort,
reject-raw), ``payload`` (garbage bytes), ``max_connections`` (concurrent; extra ones are
closed at once but still counted).  DICOM-speaking behaviours also take ``results`` (abstract
syntax UID -> presentation context result code in the AC, see :func:`a_associate_ac`) and
``reject_from`` (from this connection number on, 1-based since start or ``reset_counts()``,
answer A-ASSOCIATE-RJ with ``result``/``source``/``reason`` instead of an AC).
``peak_connections``: the most connections served at once.
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import Any, Dict, List, Optional

# Answer the RQ with a valid A-ASSOCIATE-AC and then speak DIMSE (see _serve_dicom).
DICOM_BEHAVIOURS = ("dicom-ok", "echo-wrong-msgid", "echo-wrong-sop", "echo-wrong-command",
                    "echo-silent", "echo-huge-length", "release-silent", "echo-then-abort",
                    "echo-then-release-rq", "echo-then-close")
BEHAVIOURS = ("silent", "close", "reset", "garbage", "http", "abort", "abort-provider",
              "reject-raw", "drip", "huge-length", "tls-server-hello", "tls-client-hello",
              "truncated-ac", "ac-no-context", "ac-wrong-context-id",
              "release-rq") + DICOM_BEHAVIOURS

VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_LE = b"1.2.840.10008.1.2"
APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPL_UID = b"1.2.826.0.1.3680043.9.7433.1.1"  # private test root, arbitrary
CT_IMAGE_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
A_RELEASE_RQ = bytes.fromhex("05000000000400000000")
A_RELEASE_RP = bytes.fromhex("06000000000400000000")
C_ECHO_RSP = 0x8030
C_STORE_RSP = 0x8001
# TLS records as a TLS 1.2 peer would send them first (fixed "random" bytes).
# Record header (type 0x16 handshake, version, length), handshake header, version 3.3.
TLS_SERVER_HELLO = (bytes.fromhex("160303002a020000260303") + bytes(range(32))
                    + bytes.fromhex("00c02f00"))
TLS_CLIENT_HELLO = (bytes.fromhex("160301002d010000290303") + bytes(range(32))
                    + bytes.fromhex("000002c02f0100"))
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
    """Parse an A-ASSOCIATE-RQ enough for tests: AE titles, presentation contexts and the
    implementation class UID and version name of its user information."""
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
        elif itype == 0x50:
            j = 0
            while j + 4 <= len(body):
                stype, slen = body[j], struct.unpack(">H", body[j + 2:j + 4])[0]
                value = body[j + 4:j + 4 + slen].rstrip(b"\x00").decode("ascii", "replace")
                if stype == 0x52:
                    info["implementation_class_uid"] = value
                elif stype == 0x55:
                    info["implementation_version_name"] = value
                j += 4 + slen
        i += 4 + ilen
    return info


def _item(itype: int, value: bytes) -> bytes:
    return bytes([itype, 0]) + struct.pack(">H", len(value)) + value


def a_associate_ac(rq: bytes, contexts: str = "echo",
                   results: Optional[Dict[str, int]] = None) -> bytes:
    """A valid A-ASSOCIATE-AC for ``rq``: every context accepted with its first transfer
    syntax (implicit VR LE if the RQ cannot be parsed).

    ``contexts="none"`` leaves out every presentation context item; ``"wrong-id"`` answers
    one context ID that the RQ never proposed.  ``results``: abstract syntax UID -> the result
    code to answer its context with (1 user-rejection, 2 no-reason: answers no pynetdicom SCP
    can give; the transfer syntax item then still carries the first one proposed)."""
    info = parse_rq(rq)
    if info.get("valid"):
        called, calling = rq[10:26], rq[26:42]
        answered = [(c["id"], (c["transfer"] or ["1.2.840.10008.1.2"])[0].encode(),
                     (results or {}).get(c["abstract"], 0))
                    for c in info["contexts"]] or [(1, IMPLICIT_LE, 0)]
    else:
        called, calling = b"ANY-SCP".ljust(16), b"ECHOSCU".ljust(16)
        answered = [(1, IMPLICIT_LE, 0)]
    if contexts == "none":
        answered = []
    elif contexts == "wrong-id":
        answered = [((max(i for i, _ts, _r in answered) + 2) & 0xFF, answered[0][1], 0)]
    body = struct.pack(">H", 1) + b"\x00\x00" + called + calling + b"\x00" * 32
    body += _item(0x10, APP_CONTEXT)
    for ctx_id, ts, result in answered:
        body += _item(0x21, bytes([ctx_id, 0, result & 0xFF, 0]) + _item(0x40, ts))
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, IMPL_UID)
    body += _item(0x50, user)
    return bytes([0x02, 0x00]) + struct.pack(">I", len(body)) + body


# ------------------------------------------------------------------ DIMSE helpers
def _element(group: int, element: int, value: bytes) -> bytes:
    """One implicit VR little endian data element (command sets are always implicit LE)."""
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", group, element, len(value)) + value


def c_echo_rsp(msg_id: int, status: int = 0x0000, sop_class: bytes = VERIFICATION,
               command_field: int = C_ECHO_RSP) -> bytes:
    """The command set of a C-ECHO-RSP (PS3.7 9.3.5.2), with every field settable."""
    elements = (_element(0x0000, 0x0002, sop_class)
                + _element(0x0000, 0x0100, struct.pack("<H", command_field))
                + _element(0x0000, 0x0120, struct.pack("<H", msg_id & 0xFFFF))
                + _element(0x0000, 0x0800, struct.pack("<H", 0x0101))
                + _element(0x0000, 0x0900, struct.pack("<H", status)))
    return _element(0x0000, 0x0000, struct.pack("<I", len(elements))) + elements


def p_data_tf(context_id: int, command: bytes) -> bytes:
    """A P-DATA-TF with one PDV: a complete command fragment (control header 0x03)."""
    pdv = struct.pack(">I", len(command) + 2) + bytes([context_id & 0xFF, 0x03]) + command
    return b"\x04\x00" + struct.pack(">I", len(pdv)) + pdv


def parse_command(pdu: bytes) -> Dict[str, Any]:
    """Context ID and the command elements (as int or text) of a P-DATA-TF's command PDVs."""
    info: Dict[str, Any] = {"context_id": None, "elements": {}}
    command = b""
    i = 6
    while i + 6 <= len(pdu):
        length = struct.unpack(">I", pdu[i:i + 4])[0]
        info["context_id"] = pdu[i + 4]
        if pdu[i + 5] & 0x01:
            command += pdu[i + 6:i + 4 + length]
        i += 4 + max(length, 2)
    j = 0
    while j + 8 <= len(command):
        group, element, length = struct.unpack("<HHI", command[j:j + 8])
        value = command[j + 8:j + 8 + length]
        if length in (2, 4) and element not in (0x0002, 0x0003):
            info["elements"][element] = int.from_bytes(value, "little")
        else:
            info["elements"][element] = value.rstrip(b"\x00").decode("ascii", "replace")
        j += 8 + length
    return info


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
        # Most connections served at the same time: what a client's pool really opened.
        self.peak_connections = 0
        self.requests: List[Dict[str, Any]] = []
        self.echo_requests: List[Dict[str, Any]] = []
        self.pdu_types: List[int] = []
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
            self.echo_requests.clear()
            self.pdu_types.clear()

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
                    self.peak_connections = max(self.peak_connections, len(self._threads) + 1)
            if too_many:
                self._close(conn)
                continue
            t = threading.Thread(target=self._serve, args=(conn, self.accepted), daemon=True,
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

    def _read_pdu(self, conn: socket.socket, timeout: float = 5.0, record: bool = True) -> bytes:
        """Read one PDU (6-byte header + length, capped at 1 MiB), bounded in time.
        ``record``: keep it in ``requests`` (the A-ASSOCIATE-RQ), else in ``pdu_types``."""
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
        if buf and record:
            info = parse_rq(buf)
            with self._lock:
                self.requests.append(info)
                del self.requests[:-50]
        elif buf:
            with self._lock:
                self.pdu_types.append(buf[0])
                del self.pdu_types[:-200]
        return buf

    def _serve(self, conn: socket.socket, number: int = 0) -> None:
        b = self.behaviour
        o = self.options
        try:
            if b == "close":
                return
            if b == "reset":
                if float(o.get("delay", 0.0)) > 0:
                    # Reset once our RQ is in: a deterministic reset during the association,
                    # instead of racing the client's connect() (see the docstring).
                    self._stop.wait(float(o["delay"]))
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
            if b == "tls-client-hello":
                conn.sendall(TLS_CLIENT_HELLO)
                self._hold(conn, min(self.hold_max, 60.0))
                return
            rq = self._read_pdu(conn)
            reject_from = o.get("reject_from")
            if b in DICOM_BEHAVIOURS and reject_from and number >= int(reject_from):
                conn.sendall(a_associate_rj(int(o.get("result", 2)), int(o.get("source", 3)),
                                            int(o.get("reason", 2))))
                self._hold(conn, 5.0)
            elif b in DICOM_BEHAVIOURS:
                self._serve_dicom(conn, rq)
            elif b == "tls-server-hello":
                conn.sendall(TLS_SERVER_HELLO)
                self._hold(conn, min(self.hold_max, 60.0))
            elif b == "truncated-ac":
                ac = a_associate_ac(rq)
                conn.sendall(ac[:len(ac) // 2])
            elif b in ("ac-no-context", "ac-wrong-context-id"):
                conn.sendall(a_associate_ac(rq, "none" if b == "ac-no-context" else "wrong-id"))
                self._hold(conn, min(self.hold_max, 60.0))
            elif b == "release-rq":
                conn.sendall(A_RELEASE_RQ)
                self._hold(conn, min(self.hold_max, 60.0))
            elif b in ("abort", "abort-provider"):
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

    def _serve_dicom(self, conn: socket.socket, rq: bytes) -> None:
        """Valid A-ASSOCIATE-AC, then answer P-DATA-TF / A-RELEASE-RQ as the behaviour says.
        Bounded by ``hold_max`` and by a PDU count."""
        b = self.behaviour
        deadline = time.monotonic() + self.hold_max
        conn.sendall(a_associate_ac(rq, results=self.options.get("results")))
        for _pdu in range(5000):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return
            pdu = self._read_pdu(conn, timeout=remaining, record=False)
            if len(pdu) < 6:
                return  # the client closed (or stop())
            if pdu[0] == 0x04:
                command = parse_command(pdu)
                fields = command["elements"]
                msg_id = int(fields.get(0x0110, 0) or 0)
                with self._lock:
                    self.echo_requests.append({"msg_id": msg_id, "sop_class": fields.get(0x0002),
                                               "context_id": command["context_id"]})
                    del self.echo_requests[:-2000]
                if b == "echo-silent":
                    continue
                if b == "echo-huge-length":
                    conn.sendall(b"\x04\x00" + struct.pack(">I", 0xFFFFFFF0) + b"\x00\x00\x00\x10")
                    self._hold(conn, max(0.0, deadline - time.monotonic()))
                    return
                rsp = c_echo_rsp(
                    msg_id + 1 if b == "echo-wrong-msgid" else msg_id,
                    sop_class=CT_IMAGE_STORAGE if b == "echo-wrong-sop" else VERIFICATION,
                    command_field=C_STORE_RSP if b == "echo-wrong-command" else C_ECHO_RSP)
                conn.sendall(p_data_tf(command["context_id"] or 1, rsp))
                if b == "echo-then-abort":
                    conn.sendall(a_abort(0, 0))
                    self._hold(conn, min(2.0, max(0.0, deadline - time.monotonic())))
                    return
                if b == "echo-then-close":
                    return
                if b == "echo-then-release-rq":
                    conn.sendall(A_RELEASE_RQ)
                    self._hold(conn, max(0.0, deadline - time.monotonic()))
                    return
            elif pdu[0] == 0x05:
                if b == "release-silent":
                    self._hold(conn, max(0.0, deadline - time.monotonic()))
                    return
                conn.sendall(A_RELEASE_RP)
                self._hold(conn, min(2.0, max(0.0, deadline - time.monotonic())))
                return
            else:
                return  # A-ABORT or anything else ends the association


def stop_many(servers: List[HostileServer], timeout: float = 3.0) -> None:
    """Stop several servers in parallel (each join is bounded)."""
    for s in servers:
        s.request_stop()
    for s in servers:
        s.stop(timeout)
