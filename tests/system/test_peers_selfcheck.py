"""Self-check of the real DICOM test peers (tests/peers/): each peer must do what its
docstring claims, measured with DCMTK ``echoscu`` (3.6.7) and, where echoscu cannot see the
difference, with raw sockets or pynetdicom.

echoscu facts these tests pin down (all with ``-to 3 -ta 3 -td 3``):

* exit 0 although the echo FAILED: non-success C-ECHO status (0xC000, 0x0122, 0xB000 ->
  "Received Echo Response (Unknown Status: 0x...)"), and an A-ABORT after the association
  was accepted ("Echo Failed: ... Peer aborted Association (or never connected)") -- from
  pynetdicom's abort-on-echo and from Orthanc for a caller with "AllowEcho": false.
  Our module must be stricter than echoscu.
* exit 1: association rejected ("Association Rejected" + "Result:/Source:" + "Reason:"
  lines), no acceptable presentation context, connection refused ("TCP Initialization
  Error: Connection refused"), any failure before the association is established
  (close/RST/A-ABORT/garbage/HTTP/huge PDU/TLS failures), ACSE timeout on a silent or
  dripping peer ("DUL network read timeout" after ~3 s: DCMTK's ACSE timeout is a real
  deadline, unlike pynetdicom's).
* exit 70: DIMSE timeout waiting for the C-ECHO-RSP ("DIMSE No data available").
* echoscu cannot tell A-ABORT source/reason, FIN from RST, or user vs provider abort: all
  are "Peer aborted Association (or never connected)"; raw-socket checks cover those.
* echoscu 3.6.7 has no IPv6 ("Illegal service parameter: ::1:PORT") and no option to
  choose the source address; pynetdicom (``bind_address``) covers those cases.
* echoscu does not check the server certificate's host name (tls-wronghost: Success).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.base import Peer, group_members
from tests.peers.hostile import a_associate_ac, parse_rq
from tests.system.helpers import echo, peer_entry

pytestmark = pytest.mark.peers

ECHOSCU = shutil.which("echoscu")
needs_echoscu = pytest.mark.skipif(ECHOSCU is None, reason="DCMTK echoscu not installed")
TIMEOUT_ARGS = ["-to", "3", "-ta", "3", "-td", "3"]


@dataclass
class EchoResult:
    rc: int
    out: str
    seconds: float

    def has(self, *needles: str) -> bool:
        return all(n in self.out for n in needles)


def echoscu(peer: Peer, aet: str = "ECHOSCU", aec: str | None = None, extra=(),
            host: str | None = None, timeout: float = 20.0, debug: bool = False) -> EchoResult:
    assert ECHOSCU
    host = host or peer.host
    assert host.startswith("127.") or host == "::1", host
    argv = [ECHOSCU, "-d" if debug else "-v", *TIMEOUT_ARGS, *extra, "-aet", aet,
            "-aec", aec or peer.ae_title or "ANY-SCP", host, str(peer.port)]
    env = dict(os.environ, TCP_NODELAY="1")
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False,
                         stdin=subprocess.DEVNULL)
    return EchoResult(res.returncode, res.stdout + res.stderr, time.monotonic() - t0)


def assert_success(r: EchoResult) -> None:
    assert r.rc == 0 and r.has("Received Echo Response (Success)"), r.out


def assert_rejected(r: EchoResult, result: str, source: str, reason: str) -> None:
    assert r.rc == 1, r.out
    assert r.has("Association Rejected", "Result: %s" % result, "Source: %s" % source,
                 "Reason: %s" % reason), r.out


def pyn_echo(peer: Peer, aet: str, aec: str | None = None, bind: str | None = None,
             host: str | None = None, timeout: float = 15):
    """pynetdicom SCU (3.0.4 in the venv) for what echoscu cannot do (IPv6, bind address).
    Returns ("success", status) / ("rejected", (result, source, reason)) / ("other", ...).
    ``timeout``: 3 s ran out once for Orthanc's rejection on a loaded machine (an abort instead)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    ae = AE(ae_title=aet)
    ae.add_requested_context(Verification)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    kwargs = {"ae_title": aec or peer.ae_title or "ANY-SCP"}
    if bind:
        kwargs["bind_address"] = (bind, 0)
    assoc = ae.associate(host or peer.host, peer.port, **kwargs)
    try:
        if assoc.is_rejected:
            p = assoc.acceptor.primitive
            return "rejected", (p.result, p.result_source, p.diagnostic)
        if assoc.is_established:
            ds = assoc.send_c_echo()
            status = ds.Status if "Status" in ds else None
            return ("success" if status == 0 else "other"), status
        return "other", ("aborted" if assoc.is_aborted else "failed")
    finally:
        if assoc.is_established:
            assoc.release()


# ------------------------------------------------------------------ pynetdicom
@pytest.fixture(params=["pynetdicom3", "pynetdicom2"])
def pyn_peers(request):
    name = "pynetdicom_peers" if request.param == "pynetdicom3" else "pynetdicom2_peers"
    return request.getfixturevalue(name)


@needs_echoscu
def test_pynetdicom_accept(pyn_peers):
    p = pyn_peers["accept"]
    before = p.connection_count()
    assert_success(echoscu(p))
    assert_success(echoscu(p, aet="WHOEVER", aec="ANY_TITLE"))
    assert p.connection_count() == before + 2


@needs_echoscu
def test_pynetdicom_reject_called(pyn_peers):
    p = pyn_peers["reject-called"]
    assert_success(echoscu(p))
    assert_rejected(echoscu(p, aec="WRONG_AE"), "Rejected Permanent", "Service User",
                    "Called AE Title Not Recognized")


@needs_echoscu
def test_pynetdicom_reject_calling(pyn_peers):
    p = pyn_peers["reject-calling"]
    assert p.extra["allowed_calling"] == ["KNOWN_SCU"]
    assert_success(echoscu(p, aet="KNOWN_SCU"))
    assert_rejected(echoscu(p, aet="UNKNOWN_SCU"), "Rejected Permanent", "Service User",
                    "Calling AE Title Not Recognized")


@needs_echoscu
def test_pynetdicom_no_verification_context(pyn_peers):
    r = echoscu(pyn_peers["no-verification"], debug=True)
    assert r.rc == 1 and r.has("No Acceptable Presentation Contexts"), r.out
    assert "Context ID:        1 (Abstract Syntax Not Supported)" in r.out, r.out


@needs_echoscu
@pytest.mark.parametrize("key,shown", [("status-failure", "0xc000"), ("status-0122", "0x122"),
                                       ("status-warning", "0xb000")])
def test_pynetdicom_status_echoscu_exits_zero(pyn_peers, key, shown):
    r = echoscu(pyn_peers[key])
    assert r.rc == 0, r.out  # echoscu does not fail on a non-success status
    assert r.has("Received Echo Response (Unknown Status: %s)" % shown), r.out


@needs_echoscu
def test_pynetdicom_abort_on_echo_echoscu_exits_zero(pyn_peers):
    r = echoscu(pyn_peers["abort-on-echo"])
    assert r.rc == 0, r.out  # echoscu exits 0 after "Echo Failed"
    assert r.has("Association Accepted", "Echo Failed", "Peer aborted Association"), r.out
    assert "Received Echo Response" not in r.out


def test_pynetdicom_status_via_pynetdicom(pynetdicom_peers):
    assert pyn_echo(pynetdicom_peers["status-failure"], "ECHOSCU") == ("other", 0xC000)
    assert pyn_echo(pynetdicom_peers["status-0122"], "ECHOSCU") == ("other", 0x0122)
    assert pyn_echo(pynetdicom_peers["reject-called"], "ECHOSCU", aec="NOPE") == \
        ("rejected", (1, 1, 7))
    assert pyn_echo(pynetdicom_peers["reject-calling"], "NOPE") == ("rejected", (1, 1, 3))


def test_pynetdicom_ipv6(pynetdicom_peers):
    p = pynetdicom_peers.get("accept-ipv6")
    if p is None:
        pytest.skip("::1 not available")
    assert p.host == "::1"
    assert pyn_echo(p, "ECHOSCU") == ("success", 0)
    if ECHOSCU:
        r = echoscu(p)  # documents the echoscu limitation
        assert r.rc == 1 and r.has("Illegal service parameter"), r.out


@needs_echoscu
def test_pynetdicom_many_parallel_associations(pynetdicom_peers):
    """maximum_associations (64) and the backlog (128) are raised: 24 concurrent callers."""
    p = pynetdicom_peers["accept"]
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda _: echoscu(p), range(24)))
    bad = [r.out for r in results if r.rc != 0 or not r.has("(Success)")]
    assert not bad, bad[:2]


# ------------------------------------------------------------------ timing peers
@needs_echoscu
def test_timeouts_bound_echoscu(pynetdicom_peers, hostile_peers):
    """slow (pynetdicom), silent and drip (hostile) in parallel: each ends after ~3 s."""
    jobs = {"slow": pynetdicom_peers["slow"], "silent": hostile_peers["silent"],
            "drip": hostile_peers["drip"]}
    with ThreadPoolExecutor(3) as pool:
        futs = {k: pool.submit(echoscu, p) for k, p in jobs.items()}
        res = {k: f.result() for k, f in futs.items()}
    slow, silent, drip = res["slow"], res["silent"], res["drip"]
    assert slow.rc == 70 and slow.has("Association Accepted", "DIMSE No data available"), slow.out
    assert silent.rc == 1 and silent.has("DUL network read timeout"), silent.out
    assert drip.rc == 1 and drip.has("DUL network read timeout"), drip.out
    for r in res.values():
        assert 1.5 < r.seconds < 8, (r.seconds, r.out)  # DCMTK counts whole seconds


# ------------------------------------------------------------------ DCMTK
@needs_echoscu
def test_dcmtk_storescp_any_called_ae(dcmtk_peers):
    p = dcmtk_peers["storescp"]
    assert_success(echoscu(p))
    assert_success(echoscu(p, aet="ANYONE", aec="WHATEVER_AE"))


@needs_echoscu
def test_dcmtk_storescp_refuse(dcmtk_peers):
    assert_rejected(echoscu(dcmtk_peers["storescp-refuse"]), "Rejected Permanent",
                    "Service User", "No Reason")


@needs_echoscu
def test_dcmtk_dcmqrscp_access(dcmtk_peers):
    p = dcmtk_peers["dcmqrscp"]
    for aet in p.extra["allowed_calling"]:
        assert_success(echoscu(p, aet=aet))
    # unknown caller -> reason 7, never 3
    assert_rejected(echoscu(p, aet="UNKNOWN_SCU"), "Rejected Permanent", "Service User",
                    "Called AE Title Not Recognized")
    assert_rejected(echoscu(p, aet="KNOWN_SCU", aec="WRONG_AE"), "Rejected Permanent",
                    "Service User", "Called AE Title Not Recognized")
    # registered at 127.0.0.2, calling from 127.0.0.1
    assert_rejected(echoscu(p, aet="OTHER_HOST_SCU"), "Rejected Permanent", "Service User",
                    "Called AE Title Not Recognized")
    assert_success(echoscu(p, aet="UNKNOWN_SCU", aec=p.extra["open_ae_title"]))


def test_dcmtk_dcmqrscp_source_address(dcmtk_peers):
    p = dcmtk_peers["dcmqrscp"]
    assert pyn_echo(p, "OTHER_HOST_SCU", bind="127.0.0.2") == ("success", 0)
    # The refusal is read through the engine: after the engine has run in this process, a plain
    # pynetdicom requestor reported dcmqrscp's A-ASSOCIATE-RJ (sent just before its close) as
    # aborted 8 times in 30, where the engine read the RJ 30 times in 30.
    (refused,) = echo([peer_entry(p, calling_ae_title="KNOWN_SCU", expect="reject")], bind_address="127.0.0.2")
    assert (refused["outcome"], refused["reject"]) == (
        "rejected", {"result": "permanent", "source": "service-user", "reason": "called-ae-title-not-recognized"}), refused


@needs_echoscu
def test_dcmtk_wlmscpfs_called_ae(dcmtk_peers):
    p = dcmtk_peers["wlmscpfs"]
    assert_success(echoscu(p, aet="ANY_CALLER"))
    assert_rejected(echoscu(p, aec="WRONG_AE"), "Rejected Permanent", "Service User",
                    "Called AE Title Not Recognized")


# ------------------------------------------------------------------ Orthanc
@needs_echoscu
def test_orthanc(orthanc_peer):
    p = orthanc_peer
    for aet in p.extra["known_calling"]:
        assert_success(echoscu(p, aet=aet))
    assert_rejected(echoscu(p, aet="UNKNOWN_SCU"), "Rejected Permanent", "Service User",
                    "Calling AE Title Not Recognized")
    assert_rejected(echoscu(p, aet="KNOWN_SCU", aec="WRONG_AE"), "Rejected Permanent",
                    "Service User", "Called AE Title Not Recognized")
    # known caller, wrong source address (echoscu always calls from 127.0.0.1)
    assert_rejected(echoscu(p, aet="OTHER_HOST_SCU"), "Rejected Permanent", "Service User",
                    "Calling AE Title Not Recognized")
    # known but "AllowEcho": false -> accepted, then aborted; echoscu exits 0
    r = echoscu(p, aet="NOECHO_SCU")
    assert r.rc == 0 and r.has("Association Accepted", "Echo Failed",
                               "Peer aborted Association"), r.out
    log = Path(p.extra["log"]).read_text(errors="replace")
    assert 'Forbidding access from AET "OTHER_HOST_SCU"' in log


def test_orthanc_source_address(orthanc_peer):
    p = orthanc_peer
    assert pyn_echo(p, "OTHER_HOST_SCU", bind="127.0.0.2") == ("success", 0)
    assert pyn_echo(p, "KNOWN_SCU", bind="127.0.0.2") == ("rejected", (1, 1, 3))
    assert pyn_echo(p, "KNOWN_SCU", bind="127.0.0.1") == ("success", 0)


@needs_echoscu
def test_orthanc_tls(orthanc_tls_peer, tls_material):
    p, m = orthanc_tls_peer, tls_material
    client = ["+tls", m["client_key"], m["client_cert"], "+cf", m["ca_cert"]]
    assert_success(echoscu(p, aet="KNOWN_SCU", extra=client))
    assert_rejected(echoscu(p, aet="UNKNOWN_SCU", extra=client), "Rejected Permanent",
                    "Service User", "Calling AE Title Not Recognized")
    r = echoscu(p, aet="KNOWN_SCU", extra=["+tla", "+cf", m["ca_cert"]])
    assert r.rc == 1 and r.has("Association Request Failed"), r.out
    r = echoscu(p, aet="KNOWN_SCU")  # plain TCP to a TLS port
    assert r.rc == 1 and r.has("Peer aborted Association"), r.out


# ------------------------------------------------------------------ TLS peers
@needs_echoscu
def test_tls_peers(tls_peers, tls_material):
    m = tls_material
    anon = ["+tla", "+cf", m["ca_cert"]]
    client = ["+tls", m["client_key"], m["client_cert"], "+cf", m["ca_cert"]]
    enc = ["+tls", m["client_key_encrypted"], m["client_cert"], "+pw",
           m["client_key_password"], "+cf", m["ca_cert"]]
    untrusted_client = ["+tls", m["untrusted_client_key"], m["untrusted_client_cert"],
                        "+cf", m["ca_cert"]]
    for key in ("tls", "dcmtk-tls"):
        p = tls_peers[key]
        assert_success(echoscu(p, extra=anon))
        assert_success(echoscu(p, extra=client))
        r = echoscu(p)  # no TLS
        assert r.rc == 1 and r.has("Peer aborted Association"), r.out
        r = echoscu(p, extra=["+tla", "+cf", m["unknown_ca_cert"]])
        assert r.rc == 1 and r.has("certificate verify failed"), r.out
    for key in ("tls-mutual", "dcmtk-tls-mutual"):
        p = tls_peers[key]
        assert_success(echoscu(p, extra=client))
        assert_success(echoscu(p, extra=enc))
        for args in (anon, untrusted_client):
            r = echoscu(p, extra=args)
            assert r.rc == 1 and r.has("Association Request Failed"), (key, r.out)
    for key in ("tls-expired", "tls-untrusted"):
        r = echoscu(tls_peers[key], extra=anon)
        assert r.rc == 1 and r.has("TLS error: certificate verify failed"), r.out
    # echoscu does not verify the host name
    assert_success(echoscu(tls_peers["tls-wronghost"], extra=anon))


def test_tls_pynetdicom_handshake_does_not_block_accept(tls_peers, tls_material):
    """A silent TCP client on the TLS port must not freeze the server (pynetdicom itself
    handshakes on the accept thread; our server class does it per connection)."""
    import ssl
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    p = tls_peers["tls"]
    with socket.create_connection(p.address, timeout=3):
        ctx = ssl.create_default_context(cafile=tls_material["ca_cert"])
        ae = AE("ECHOSCU")
        ae.add_requested_context(Verification)
        ae.connection_timeout = ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 3
        t0 = time.monotonic()
        assoc = ae.associate(p.host, p.port, ae_title=p.ae_title, tls_args=(ctx, "localhost"))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        assert time.monotonic() - t0 < 2


def test_tls_material(tls_material):
    m = tls_material
    openssl = shutil.which("openssl")

    def verify(cert, ca):
        return subprocess.run([openssl, "verify", "-CAfile", ca, cert], capture_output=True, check=False,
                              text=True, timeout=10)
    assert verify(m["server_cert"], m["ca_cert"]).returncode == 0
    assert verify(m["client_cert"], m["ca_cert"]).returncode == 0
    assert "expired" in verify(m["expired_cert"], m["ca_cert"]).stdout + \
        verify(m["expired_cert"], m["ca_cert"]).stderr
    assert verify(m["untrusted_cert"], m["ca_cert"]).returncode != 0
    assert verify(m["untrusted_cert"], m["unknown_ca_cert"]).returncode == 0
    san = subprocess.run([openssl, "x509", "-in", m["server_cert"], "-noout", "-ext",
                          "subjectAltName"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san
    assert "ENCRYPTED" in Path(m["client_key_encrypted"]).read_text()
    ok = subprocess.run([openssl, "pkey", "-in", m["client_key_encrypted"], "-passin",
                         "pass:" + m["client_key_password"], "-noout"], timeout=10, check=False)
    assert ok.returncode == 0


# ------------------------------------------------------------------ hostile
def _raw_rq(called: bytes = b"HOSTILE", calling: bytes = b"RAWSCU") -> bytes:
    """A minimal, valid A-ASSOCIATE-RQ (Verification, implicit VR LE)."""
    def item(t, v):
        return bytes([t, 0]) + struct.pack(">H", len(v)) + v
    pc = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1")
              + item(0x40, b"1.2.840.10008.1.2"))
    body = (struct.pack(">H", 1) + b"\0\0" + called.ljust(16) + calling.ljust(16) + b"\0" * 32
            + item(0x10, b"1.2.840.10008.3.1.1.1") + pc
            + item(0x50, item(0x51, struct.pack(">I", 16384))))
    return b"\x01\x00" + struct.pack(">I", len(body)) + body


def _raw_exchange(peer: Peer, send: bytes = b"", want: int = 10, timeout: float = 3.0):
    """Connect, send, read up to ``want`` bytes (bounded).  Returns (bytes, error-or-None).
    An RST can already be pending when connect() completes, so connect errors count too."""
    data, err = b"", None
    try:
        s = socket.create_connection(peer.address, timeout=timeout)
    except OSError as exc:
        return data, exc
    with s:
        s.settimeout(timeout)
        try:
            if send:
                s.sendall(send)
            while len(data) < want:
                chunk = s.recv(want - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            err = exc
    return data, err


@needs_echoscu
@pytest.mark.parametrize("behaviour,needles", [
    ("close", ["Peer aborted Association"]),
    ("reset", ["Association Request Failed"]),
    ("garbage", ["Unrecognized PDU type: ff"]),
    ("http", ["Unrecognized PDU type: 48"]),
    ("abort", ["Peer aborted Association"]),
    ("abort-provider", ["Peer aborted Association"]),
    ("reject-raw", ["Association Rejected", "Result: Rejected Transient",
                    "Source: Service Provider (Presentation Related)",
                    "Reason: Local Limit Exceeded"]),
    ("huge-length", ["A-ASSOCIATE PDU too large"]),
])
def test_hostile_echoscu(hostile_peers, behaviour, needles):
    p = hostile_peers[behaviour]
    before = p.connection_count()
    r = echoscu(p)
    assert r.rc == 1 and r.has(*needles), r.out
    assert r.seconds < 5, r.seconds  # immediate failures (generous bound for loaded CI)
    assert p.connection_count() == before + 1


def test_hostile_raw_bytes(hostile_peers):
    rq = _raw_rq()
    assert _raw_exchange(hostile_peers["abort"], rq) == (bytes.fromhex("07000000000400000000"),
                                                         None)
    assert _raw_exchange(hostile_peers["abort-provider"], rq)[0] == \
        bytes.fromhex("07000000000400000202")
    assert _raw_exchange(hostile_peers["reject-raw"], rq)[0] == \
        bytes.fromhex("03000000000400020302")
    data, _err = _raw_exchange(hostile_peers["huge-length"], rq, want=6)
    assert data == b"\x02\x00\xff\xff\xff\xf0"
    data, err = _raw_exchange(hostile_peers["close"])
    assert data == b"" and err is None
    data, err = _raw_exchange(hostile_peers["reset"])
    assert data == b"" and isinstance(err, ConnectionResetError), err
    data, _err = _raw_exchange(hostile_peers["http"], b"GET / HTTP/1.1\r\n\r\n", want=12)
    assert data == b"HTTP/1.1 400"
    data, _err = _raw_exchange(hostile_peers["garbage"], want=2)
    assert data == b"\xff\xfe"
    info = hostile_peers["reject-raw"].control.requests[-1]
    assert (info["called"], info["calling"]) == ("HOSTILE", "RAWSCU")


def test_hostile_factory_and_drip_is_valid(hostile_factory):
    """A fast drip delivers a valid A-ASSOCIATE-AC (pynetdicom associates), and custom
    reject codes work."""
    fast = hostile_factory("drip", interval=0.001)
    # AC accepted; the server never answers the C-ECHO-RQ -> DIMSE timeout -> no status
    assert pyn_echo(fast, "ECHOSCU", aec="DRIPPER", timeout=1) == ("other", None)
    assert fast.control.requests[-1]["called"] == "DRIPPER"
    assert parse_rq(_raw_rq())["contexts"][0]["abstract"] == "1.2.840.10008.1.1"
    assert a_associate_ac(_raw_rq())[0] == 0x02
    rj = hostile_factory("reject-raw", result=1, source=1, reason=3)
    # A generous ACSE timeout: on a starved 2-core machine 3 s once ran out before the RJ was read.
    assert pyn_echo(rj, "X", timeout=15) == ("rejected", (1, 1, 3))
    with pytest.raises(ValueError):
        hostile_factory("silent", host="10.0.0.1")


@needs_echoscu
def test_closed_port(closed_port):
    before = time.monotonic()
    r = echoscu(closed_port)
    assert r.rc == 1 and r.has("TCP Initialization Error: Connection refused"), r.out
    assert time.monotonic() - before < 2


# ------------------------------------------------------------------ netns
@pytest.mark.netns
def test_netns(netns):
    name = netns.name
    assert (Path("/etc/netns") / name / "resolv.conf").read_text().count("127.0.0.1") == 1
    routes = netns.run(["ip", "route", "show", "default"], timeout=10)
    assert routes.returncode == 0 and routes.stdout.strip() == ""
    probe = netns.run([
        "python3", "-c",
        "import socket\n"
        "try:\n socket.getaddrinfo('no-such-host.invalid', 104); print('dns-ok')\n"
        "except socket.gaierror as e: print('dns-fail', e.errno)\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n s.connect(('10.250.0.9', 104)); print('conn-ok')\n"
        "except OSError as e: print('conn-fail', e.errno)\n"], timeout=20)
    assert "dns-fail" in probe.stdout, probe.stdout + probe.stderr
    assert "conn-fail 101" in probe.stdout, probe.stdout  # ENETUNREACH, no route
    netns.add_address("10.250.0.1/32")
    netns.firewall(4000, "drop")
    netns.firewall(4001, "reject")
    probe = netns.run([
        "python3", "-c",
        "import socket, time\n"
        "for port in (4000, 4001):\n"
        " s = socket.socket(); s.settimeout(1); t = time.time()\n"
        " try:\n  s.connect(('10.250.0.1', port)); print(port, 'ok')\n"
        " except OSError as e: print(port, type(e).__name__, round(time.time() - t, 1))\n"],
        timeout=20)
    assert "4000 TimeoutError" in probe.stdout, probe.stdout + probe.stderr
    assert "4001 ConnectionRefusedError" in probe.stdout, probe.stdout
    netns.delete()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10,
                            check=False)
    assert name not in listed.stdout
    assert not (Path("/etc/netns") / name).exists()


# ------------------------------------------------------------------ hygiene
def _group_alive(pgid: int) -> bool:
    """Live (non-zombie) members left in the process group?"""
    members = group_members(pgid)
    assert members is not None, "/proc not readable"
    return bool(members)


@needs_echoscu
def test_process_groups_are_reaped(tmp_path):
    """Start, use and stop a forking DCMTK server and a pynetdicom process: nothing of
    their process groups survives stop()."""
    from tests.peers.dcmtk import start_dcmqrscp
    from tests.peers.pynetdicom_peers import PLAIN_PEERS, start_pynetdicom_peers
    proc, peer = start_dcmqrscp(tmp_path)
    assert_success(echoscu(peer, aet="KNOWN_SCU"))
    proc.stop()
    assert not _group_alive(proc.pgid)
    proc2, peers = start_pynetdicom_peers(tmp_path / "pn", {"slow": PLAIN_PEERS["slow"]})
    # leave an association hanging in the slow handler, then stop
    r = subprocess.Popen([ECHOSCU, "-td", "30", "-aec", "SLOW_SCP", "127.0.0.1",
                          str(peers["slow"].port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        proc2.stop()
        assert time.monotonic() - t0 < 5
        assert not _group_alive(proc2.pgid)
        assert r.wait(10) is not None
    finally:
        if r.poll() is None:
            r.send_signal(signal.SIGKILL)
            r.wait(5)
