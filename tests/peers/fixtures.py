"""pytest fixtures: real DICOM peers on loopback (loaded via ``pytest_plugins`` in
tests/conftest.py).

Session-scoped (started once, on first use, stopped at session end):

``pynetdicom_peers``   dict behaviour -> Peer: accept, reject-called, reject-calling,
                       no-verification, status-failure (0xC000), status-0122,
                       status-warning (0xB000), abort-on-echo, slow (10 s), and
                       accept-ipv6 (on ::1, when available).  One process, pynetdicom 3.0.4
                       (or ``$DICOM_PEERS_PYTHON``).  ``peer.connection_count()`` works.
``pynetdicom2_peers``  the same set (minus IPv6) under pynetdicom 2.0.2 (``$DICOM_NETWORK_PY39``,
                       which scripts/test sets to its .venv/py39, else ``$DICOM_PEERS_PY39`` or
                       /tmp/py39/bin/python); skipped if that interpreter is missing, failed when
                       ``$DICOM_NETWORK_PY39`` names one that cannot import pynetdicom.
``dcmtk_peers``        dict: storescp, storescp-refuse, dcmqrscp, wlmscpfs.
``orthanc_peer``       Peer; ``peer.extra`` lists known_calling / other_host_calling /
                       noecho_calling and the http_port.
``orthanc_tls_peer``   Orthanc with DICOM TLS (client cert required).
``hostile_peers``      dict behaviour -> Peer (kind "hostile", in-process servers;
                       ``peer.control`` is the HostileServer, ``peer.connection_count()``).
``hostile_factory``    callable(behaviour, **options) -> Peer, for custom codes/timings.
``tls_material``       dict of PEM paths (see tests/peers/tls.py).
``tls_peers``          dict: tls, tls-mutual, tls-expired, tls-untrusted, tls-wronghost
                       (pynetdicom), dcmtk-tls, dcmtk-tls-mutual (storescp +tls).
``closed_port``        Peer on a port with nothing listening (connect -> ECONNREFUSED).
``peer_reaper``        internal: stops all peer processes together at session end.

Function-scoped:

``netns``              a fresh NetNamespace (lo up, no default route, DNS -> 127.0.0.1),
                       deleted afterwards; skipped where ``ip netns add`` is not permitted.

Every fixture skips with a reason when its binary is missing.  All peers listen on
loopback (DCMTK and Orthanc bind 0.0.0.0, they have no bind option); tests must only
connect to 127.0.0.0/8 or ::1.  Logs stay in the session's tmp dir
(``peers_workdir``) for debugging.  Startup/teardown times are printed in the terminal
summary ("dicom test peers").
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import pytest

from . import dcmtk as dcmtk_mod
from . import orthanc as orthanc_mod
from .base import LOOPBACK, ManagedProcess, Peer, closed_port as _closed_port, is_listening, \
    stop_all
from .hostile import BEHAVIOURS as HOSTILE_BEHAVIOURS, HostileServer, stop_many
from .netns import NetNamespace, NetnsUnavailable
from .pynetdicom_peers import PLAIN_PEERS, ipv6_loopback_available, start_pynetdicom_peers, \
    tls_peer_specs
from .tls import make_tls_material

PY39_DEFAULT = "/tmp/py39/bin/python"
TIMINGS: List[tuple] = []  # (fixture, "start"/"stop", seconds)


class _Timer:
    def __init__(self, name: str, what: str):
        self.name, self.what = name, what

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        TIMINGS.append((self.name, self.what, time.monotonic() - self.t0))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TIMINGS:
        return
    tr = terminalreporter
    tr.section("dicom test peers")
    start = sum(t for _name, w, t in TIMINGS if w == "start")
    stop = sum(t for _name, w, t in TIMINGS if w == "stop")
    for name, what, secs in TIMINGS:
        tr.write_line("%-22s %-5s %6.2f s" % (name, what, secs))
    tr.write_line("total session startup %.2f s, teardown %.2f s" % (start, stop))


def _retry(start, attempts: int = 3):
    """Start a peer, retrying with fresh ports: another pytest session may grab a port
    between our free-port check and the server's bind (each attempt is bounded)."""
    for attempt in range(attempts):
        try:
            return start()
        except (RuntimeError, TimeoutError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _pynetdicom_major() -> int:
    """Major version of this interpreter's pynetdicom, from its metadata (no import)."""
    return int(importlib.metadata.version("pynetdicom").split(".")[0])


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip("missing binaries: %s" % ", ".join(missing))


@pytest.fixture(scope="session")
def peers_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("peers")


class _Reaper:
    """Parallel teardown: each process fixture's teardown SIGTERMs its processes at once;
    this session fixture (set up before, so torn down after, all of them) then waits for
    them together (bounded) and SIGKILLs what is left.  Orthanc alone needs 2-3 s to exit,
    so two instances stop in the time of one."""

    def __init__(self):
        self.pending: List[ManagedProcess] = []

    def terminate(self, procs: List[ManagedProcess]) -> None:
        for p in procs:
            p.terminate()
            self.pending.append(p)

    def finish(self) -> None:
        stop_all(self.pending, term_timeout=8.0)
        self.pending = []


@pytest.fixture(scope="session")
def peer_reaper():
    reaper = _Reaper()
    yield reaper
    with _Timer("peer_reaper", "stop"):
        reaper.finish()


# ------------------------------------------------------------------ pynetdicom
@pytest.fixture(scope="session")
def pynetdicom_peers(peers_workdir, peer_reaper) -> Dict[str, Peer]:
    python = os.environ.get("DICOM_PEERS_PYTHON") or sys.executable
    specs = dict(PLAIN_PEERS)
    # pynetdicom 2.0's servers bind IPv4 only: under the Python 3.9 venv (scripts/test compat) there is
    # no IPv6 peer, and test_ipv6_loopback skips.
    if python == sys.executable and ipv6_loopback_available() and _pynetdicom_major() >= 3:
        specs["accept-ipv6"] = ({"behaviour": "accept", "ae_title": "ACCEPT6_SCP",
                                 "host": "::1"},
                                "Verification SCP on [::1] (pynetdicom >= 3): Success")
    with _Timer("pynetdicom_peers", "start"):
        proc, peers = _retry(lambda: start_pynetdicom_peers(peers_workdir / "pynetdicom", specs,
                                                            python=python))
    yield peers
    with _Timer("pynetdicom_peers", "stop"):
        peer_reaper.terminate([proc])


@pytest.fixture(scope="session")
def pynetdicom2_peers(peers_workdir, peer_reaper) -> Dict[str, Peer]:
    # scripts/test exports DICOM_NETWORK_PY39 when it built the Python 3.9 venv: then these peers must run.
    required = os.environ.get("DICOM_NETWORK_PY39")
    python = required or os.environ.get("DICOM_PEERS_PY39") or PY39_DEFAULT
    give_up = pytest.fail if required else pytest.skip
    if not os.access(python, os.X_OK):
        give_up("pynetdicom 2.x interpreter %s not found" % python)
    try:
        res = subprocess.run([python, "-c", "import pynetdicom; print(pynetdicom.__version__)"],
                             check=False,
                             capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        give_up("%s did not import pynetdicom within 30 s" % python)
    if res.returncode != 0:
        give_up("%s cannot import pynetdicom: %s" % (python, res.stderr.strip()[-200:]))
    with _Timer("pynetdicom2_peers", "start"):
        proc, peers = _retry(lambda: start_pynetdicom_peers(
            peers_workdir / "pynetdicom2", dict(PLAIN_PEERS), python=python,
            prefix="pynetdicom2"))
    for p in peers.values():
        p.extra["pynetdicom_version"] = res.stdout.strip()
    yield peers
    with _Timer("pynetdicom2_peers", "stop"):
        peer_reaper.terminate([proc])


# ------------------------------------------------------------------ DCMTK
@pytest.fixture(scope="session")
def dcmtk_peers(peers_workdir, peer_reaper) -> Dict[str, Peer]:
    _require("storescp", "dcmqrscp", "wlmscpfs")
    wd = peers_workdir / "dcmtk"
    procs: List[ManagedProcess] = []
    peers: Dict[str, Peer] = {}
    with _Timer("dcmtk_peers", "start"):
        try:
            for key, start in (
                    ("storescp", lambda: dcmtk_mod.start_storescp(wd)),
                    ("storescp-refuse", lambda: dcmtk_mod.start_storescp(wd, refuse=True)),
                    ("dcmqrscp", lambda: dcmtk_mod.start_dcmqrscp(wd)),
                    ("wlmscpfs", lambda: dcmtk_mod.start_wlmscpfs(wd))):
                proc, peer = _retry(start)
                procs.append(proc)
                peers[key] = peer
        except Exception:
            stop_all(procs)
            raise
    yield peers
    with _Timer("dcmtk_peers", "stop"):
        peer_reaper.terminate(procs)


# ------------------------------------------------------------------ Orthanc
@pytest.fixture(scope="session")
def orthanc_peer(peers_workdir, peer_reaper) -> Peer:
    if orthanc_mod.orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    with _Timer("orthanc_peer", "start"):
        proc, peer = _retry(lambda: orthanc_mod.start_orthanc(peers_workdir / "orthanc-plain"))
    yield peer
    with _Timer("orthanc_peer", "stop"):
        peer_reaper.terminate([proc])


@pytest.fixture(scope="session")
def orthanc_tls_peer(peers_workdir, peer_reaper, tls_material) -> Peer:
    if orthanc_mod.orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    tls = {"cert": tls_material["server_cert"], "key": tls_material["server_key"],
           "ca": tls_material["ca_cert"], "require_client_cert": True}
    with _Timer("orthanc_tls_peer", "start"):
        proc, peer = _retry(lambda: orthanc_mod.start_orthanc(peers_workdir / "orthanc-tls",
                                                              name="orthanc-tls", tls=tls))
    yield peer
    with _Timer("orthanc_tls_peer", "stop"):
        peer_reaper.terminate([proc])


# ------------------------------------------------------------------ hostile
HOSTILE_DEFAULTS = {
    "silent": {"hold_max": 60.0},
    "drip": {"interval": 1.0, "hold_max": 60.0},
    "huge-length": {"hold_max": 30.0},
}


def _hostile_peer(server: HostileServer, name: str) -> Peer:
    return Peer("hostile:%s" % name, server.host, server.port, None, "hostile",
                "hostile server %r (see tests/peers/hostile.py)" % server.behaviour,
                {"behaviour": server.behaviour, "options": dict(server.options)},
                control=server, counter=lambda: server.accepted)


@pytest.fixture(scope="session")
def hostile_peers() -> Dict[str, Peer]:
    servers: List[HostileServer] = []
    peers: Dict[str, Peer] = {}
    with _Timer("hostile_peers", "start"):
        try:
            for b in HOSTILE_BEHAVIOURS:
                s = HostileServer(b, LOOPBACK, **HOSTILE_DEFAULTS.get(b, {})).start()
                servers.append(s)
                peers[b] = _hostile_peer(s, b)
        except Exception:
            stop_many(servers)
            raise
    yield peers
    with _Timer("hostile_peers", "stop"):
        stop_many(servers)


@pytest.fixture(scope="session")
def hostile_factory() -> Callable[..., Peer]:
    """``make(behaviour, host="127.0.0.1", **options) -> Peer``; e.g.
    ``make("reject-raw", result=1, source=1, reason=2)`` or ``make("drip", interval=0.2)``."""
    servers: List[HostileServer] = []

    def make(behaviour: str, host: str = LOOPBACK, **options) -> Peer:
        if not (host.startswith("127.") or host == "::1"):
            raise ValueError("hostile servers listen on loopback only, not %r" % host)
        s = HostileServer(behaviour, host, **options).start()
        servers.append(s)
        return _hostile_peer(s, "%s-%d" % (behaviour, len(servers)))

    yield make
    stop_many(servers)


# ------------------------------------------------------------------ TLS
@pytest.fixture(scope="session")
def tls_material(peers_workdir) -> Dict[str, str]:
    _require("openssl")
    with _Timer("tls_material", "start"):
        return make_tls_material(peers_workdir / "tls")


@pytest.fixture(scope="session")
def tls_peers(peers_workdir, peer_reaper, tls_material) -> Dict[str, Peer]:
    procs: List[ManagedProcess] = []
    with _Timer("tls_peers", "start"):
        proc, peers = _retry(lambda: start_pynetdicom_peers(
            peers_workdir / "pynetdicom-tls", tls_peer_specs(tls_material),
            prefix="pynetdicom-tls"))
        procs.append(proc)
        try:
            if shutil.which("storescp"):
                m = tls_material
                for key, tls in (("dcmtk-tls", {"key": m["server_key"],
                                                "cert": m["server_cert"]}),
                                 ("dcmtk-tls-mutual", {"key": m["server_key"],
                                                       "cert": m["server_cert"],
                                                       "ca": m["ca_cert"]})):
                    p, peer = _retry(lambda tls=tls, key=key: dcmtk_mod.start_storescp(
                        peers_workdir / "dcmtk-tls", tls=tls, name=key))
                    procs.append(p)
                    peers[key] = peer
        except Exception:
            stop_all(procs)
            raise
    yield peers
    with _Timer("tls_peers", "stop"):
        peer_reaper.terminate(procs)


# ------------------------------------------------------------------ misc
@pytest.fixture(scope="session")
def closed_port() -> Peer:
    port = _closed_port(LOOPBACK)
    assert not is_listening(LOOPBACK, port)
    return Peer("closed", LOOPBACK, port, None, "closed",
                "nothing listens: connect() gets ECONNREFUSED at once; echoscu: "
                "'Association Request Failed: 0006:031c TCP Initialization Error: "
                "Connection refused', exit 1")


@pytest.fixture
def netns():
    try:
        NetNamespace.remove_abandoned("dnt")  # those of a test run that was killed
        ns = NetNamespace.create()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield ns
    finally:
        ns.delete()
