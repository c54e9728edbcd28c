"""Measurements that run in a fresh child process, so that the harness's own threads (hostile
servers, pipe readers) and imports never share a GIL or a heap with what is measured.

    python -m benchmarks.workers <kind> IN.json OUT.json

Kinds (IN is a JSON object; OUT gets ``wall_s``, ``cpu_s`` (user+system of this process and its children),
``maxrss_kb`` (VmHWM), ``import_s`` and the per-echo data):

``engine``          ``{"params": <dicom.network.echo params>, "stock": false, "collections_root": null}``:
                    ``run_echoes(validate_request(params))`` exactly as the module does.
                    ``stock`` (A/B only, never in the headline numbers) sets
                    ``DICOM_NETWORK_STOCK_PYNETDICOM=1`` before the engine is imported: every
                    speed trick of ``_pynetdicom_compat`` off.
                    ``collections_root`` (benchmarks/ab.py): import the collection from this
                    ``ansible_collections`` root (another commit's export) instead of the checkout.
                    OUT also gets ``engine_file``: the engine that actually ran.
``pynetdicom-loop`` ``{"peers": [...], "timeout": s, "calling_ae_title": ...}``: one plain AE,
                    ``associate`` / ``send_c_echo`` / ``release`` per peer, one after another.
``echoscu-loop``    ``{"peers": [...], "timeout": s}``: one ``echoscu`` process per peer,
                    ``TCP_NODELAY=1``.
``echoscu-repeat``  ``{"peer": {...}, "repeat": N}``: ``echoscu --repeat N`` (N echoes, one
                    association), timed as a whole.
``tcp-loop``        ``{"host", "port", "n"}``: connect, half-close, wait for the server's close:
                    the transport floor of any association.
``raw-loop``        ``{"peers": [...]}``: a minimal blocking C-ECHO client (hand-built PDUs, one
                    thread, no polling), one association per peer: the floor of a Python client.
"""
from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
from tests.collection_path import ensure_collection_path  # noqa: E402


def _usage() -> Dict[str, float]:
    """CPU of this process and of its finished children (a client that starts processes pays for them)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": ru.ru_utime + ru.ru_stime + children.ru_utime + children.ru_stime,
            "maxrss_kb": max(ru.ru_maxrss, children.ru_maxrss)}


def _env_nodelay() -> Dict[str, str]:
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    env.setdefault("LC_ALL", "C")
    return env


def engine(spec: Dict[str, Any]) -> Dict[str, Any]:
    if spec.get("stock"):
        # A/B only: _pynetdicom_compat reads this once, when it is imported (this is a fresh interpreter).
        os.environ["DICOM_NETWORK_STOCK_PYNETDICOM"] = "1"
    t0 = time.monotonic()
    if spec.get("collections_root"):
        # Only this root: two ansible_collections roots on sys.path would merge into one namespace.
        sys.path.insert(0, str(spec["collections_root"]))
    else:
        ensure_collection_path()
    from ansible_collections.dicom.network.plugins.module_utils import echo_engine
    from ansible_collections.dicom.network.plugins.module_utils.echo_engine import run_echoes
    from ansible_collections.dicom.network.plugins.module_utils.echo_validation import validate_request
    import_s = time.monotonic() - t0
    before = _usage()
    started = time.monotonic()
    results = run_echoes(validate_request(spec["params"]))
    wall = time.monotonic() - started
    after = _usage()
    return {
        "import_s": import_s, "wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"],
        "maxrss_kb": after["maxrss_kb"], "engine_file": echo_engine.__file__,
        "latencies_ms": [(r["timings_ms"] or {}).get("total") for r in results],
        "phase_ms": {key: [(r["timings_ms"] or {}).get(key) for r in results]
                     for key in ("connect", "associate", "echo", "release")},
        "outcomes": [r["outcome"] if r["outcome"] == "success" else "%s@%s" % (r["outcome"], r["phase"])
                     for r in results],
        "ok": [r["ok"] for r in results],
        "rtt_avg_ms": [(r["rtt_ms"] or {}).get("avg") for r in results],
    }


def pynetdicom_loop(spec: Dict[str, Any]) -> Dict[str, Any]:
    t0 = time.monotonic()
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    import_s = time.monotonic() - t0
    timeout = float(spec.get("timeout", 5))
    ae = AE(ae_title=spec.get("calling_ae_title", "ECHOSCU"))
    ae.add_requested_context(Verification)
    ae.connection_timeout = timeout
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    latencies: List[float] = []
    outcomes: List[str] = []
    before = _usage()
    started = time.monotonic()
    for peer in spec["peers"]:
        t = time.monotonic()
        outcome = "failed"
        assoc = ae.associate(peer["host"], peer["port"], ae_title=peer["ae_title"])
        if assoc.is_established:
            status = assoc.send_c_echo()
            if status is not None and "Status" in status and status.Status == 0:
                outcome = "success"
            assoc.release()
        latencies.append((time.monotonic() - t) * 1000.0)
        outcomes.append(outcome)
    wall = time.monotonic() - started
    after = _usage()
    return {"import_s": import_s, "wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"],
            "maxrss_kb": after["maxrss_kb"], "latencies_ms": latencies, "outcomes": outcomes,
            "ok": [o == "success" for o in outcomes]}


def _echoscu(peer: Dict[str, Any], timeout: float, extra: List[str]) -> subprocess.CompletedProcess:
    t = str(int(max(1, round(timeout))))
    argv = ["echoscu", "-aet", peer.get("calling_ae_title", "ECHOSCU"), "-aec", peer["ae_title"],
            "-to", t, "-ta", t, "-td", t] + extra + [peer["host"], str(peer["port"])]
    return subprocess.run(argv, env=_env_nodelay(), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout * 4 + 10, check=False)


def echoscu_loop(spec: Dict[str, Any]) -> Dict[str, Any]:
    timeout = float(spec.get("timeout", 5))
    latencies: List[float] = []
    outcomes: List[str] = []
    started = time.monotonic()
    for peer in spec["peers"]:
        t = time.monotonic()
        done = _echoscu(peer, timeout, [])
        latencies.append((time.monotonic() - t) * 1000.0)
        # echoscu exits 0 even after an abort; an aborted echo prints to stderr.
        text = (done.stdout + done.stderr).decode(errors="replace")
        outcomes.append("success" if done.returncode == 0 and "Abort" not in text else "failed")
    wall = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"import_s": 0.0, "wall_s": wall, "cpu_s": children.ru_utime + children.ru_stime,
            "maxrss_kb": children.ru_maxrss, "latencies_ms": latencies, "outcomes": outcomes,
            "ok": [o == "success" for o in outcomes]}


def echoscu_repeat(spec: Dict[str, Any]) -> Dict[str, Any]:
    repeat = int(spec["repeat"])
    t = time.monotonic()
    done = _echoscu(spec["peer"], float(spec.get("timeout", 5)), ["--repeat", str(repeat)])
    wall = time.monotonic() - t
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": children.ru_utime + children.ru_stime, "rc": done.returncode,
            "repeat": repeat, "maxrss_kb": children.ru_maxrss}


def tcp_loop(spec: Dict[str, Any]) -> Dict[str, Any]:
    host, port, n = spec["host"], int(spec["port"]), int(spec["n"])
    latencies: List[float] = []
    before = _usage()
    started = time.monotonic()
    for _attempt in range(n):
        t = time.monotonic()
        with socket.create_connection((host, port), timeout=5) as sock:
            # Half-close and wait for the server's close: one full round trip to the server process
            # (through the delay proxy, to the real server), and no pile-up in its listen backlog.
            sock.shutdown(socket.SHUT_WR)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass
        latencies.append((time.monotonic() - t) * 1000.0)
    wall = time.monotonic() - started
    after = _usage()
    return {"wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"], "latencies_ms": latencies}


# ---------------------------------------------------------------- minimal C-ECHO client
_VERIFICATION = b"1.2.840.10008.1.1"
_IMPLICIT_LE = b"1.2.840.10008.1.2"
_APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
_IMPL_UID = b"1.2.826.0.1.3680043.9.7433.1.2"  # private test root, as tests/peers/hostile.py


def _item(kind: int, value: bytes) -> bytes:
    return bytes([kind, 0]) + len(value).to_bytes(2, "big") + value


def _uid(value: bytes) -> bytes:
    return value + (b"\0" if len(value) % 2 else b"")


def _element(group: int, element: int, value: bytes) -> bytes:
    return group.to_bytes(2, "little") + element.to_bytes(2, "little") + len(value).to_bytes(4, "little") + value


def _echo_rq_pdu(message_id: int) -> bytes:
    body = (_element(0, 0x0002, _uid(_VERIFICATION)) + _element(0, 0x0100, (0x0030).to_bytes(2, "little"))
            + _element(0, 0x0110, message_id.to_bytes(2, "little"))
            + _element(0, 0x0800, (0x0101).to_bytes(2, "little")))
    command = _element(0, 0x0000, len(body).to_bytes(4, "little")) + body
    pdv = bytes([1, 0x03]) + command  # context 1, command + last fragment
    item = len(pdv).to_bytes(4, "big") + pdv
    return b"\x04\x00" + len(item).to_bytes(4, "big") + item


def _associate_rq_pdu(called: str, calling: str) -> bytes:
    ctx = bytes([1, 0, 0, 0]) + _item(0x30, _VERIFICATION) + _item(0x40, _IMPLICIT_LE)
    user = _item(0x51, (16384).to_bytes(4, "big")) + _item(0x52, _IMPL_UID)
    body = (b"\x00\x01\x00\x00" + called.encode().ljust(16) + calling.encode().ljust(16) + b"\0" * 32
            + _item(0x10, _APP_CONTEXT) + _item(0x20, ctx) + _item(0x50, user))
    return b"\x01\x00" + len(body).to_bytes(4, "big") + body


def _read_pdu(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 6:
        chunk = sock.recv(6 - len(header))
        if not chunk:
            raise ConnectionError("peer closed")
        header += chunk
    length = int.from_bytes(header[2:6], "big")
    body = bytearray()
    while len(body) < length:
        chunk = sock.recv(min(65536, length - len(body)))
        if not chunk:
            raise ConnectionError("peer closed")
        body += chunk
    return header + bytes(body)


def _echo_status(pdu: bytes) -> int:
    """Status (0000,0900) of a C-ECHO-RSP in one P-DATA-TF (implicit VR little endian command)."""
    data = pdu[6 + 6:]  # PDV length (4), context id, control header
    offset = 0
    while offset + 8 <= len(data):
        group = int.from_bytes(data[offset:offset + 2], "little")
        element = int.from_bytes(data[offset + 2:offset + 4], "little")
        length = int.from_bytes(data[offset + 4:offset + 8], "little")
        if (group, element) == (0, 0x0900):
            return int.from_bytes(data[offset + 8:offset + 8 + length], "little")
        offset += 8 + length
    return -1


def raw_echo(host: str, port: int, called: str, calling: str = "ECHOSCU", timeout: float = 5.0) -> str:
    """One association, one C-ECHO, one release, on a blocking socket in this thread: what a
    C-ECHO costs without pynetdicom's reactor threads and polling loops (a floor, not a client:
    no negotiation checks beyond the PDU types)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_associate_rq_pdu(called, calling))
        if _read_pdu(sock)[0] != 0x02:
            return "rejected"
        sock.sendall(_echo_rq_pdu(1))
        rsp = _read_pdu(sock)
        status = _echo_status(rsp) if rsp[0] == 0x04 else -1
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        if _read_pdu(sock)[0] != 0x06:
            return "release-failed"
        return "success" if status == 0 else "status-%d" % status


def raw_loop(spec: Dict[str, Any]) -> Dict[str, Any]:
    latencies: List[float] = []
    outcomes: List[str] = []
    before = _usage()
    started = time.monotonic()
    for peer in spec["peers"]:
        t = time.monotonic()
        try:
            outcomes.append(raw_echo(peer["host"], peer["port"], peer["ae_title"]))
        except OSError as exc:
            outcomes.append("error: %s" % exc)
        latencies.append((time.monotonic() - t) * 1000.0)
    wall = time.monotonic() - started
    after = _usage()
    return {"wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"], "latencies_ms": latencies,
            "outcomes": outcomes, "ok": [o == "success" for o in outcomes]}


KINDS = {"raw-loop": raw_loop, "engine": engine, "pynetdicom-loop": pynetdicom_loop, "echoscu-loop": echoscu_loop,
         "echoscu-repeat": echoscu_repeat, "tcp-loop": tcp_loop}


def main(argv: List[str]) -> int:
    kind, in_path, out_path = argv
    spec = json.loads(Path(in_path).read_text())
    result = KINDS[kind](spec)
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
