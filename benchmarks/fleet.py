"""Benchmark peers: a few real DICOM servers answering many called AE titles, and the delay proxy.

Built from the test peers in tests/peers (process hygiene, free ports, readiness, hostile
servers); only the server configurations differ, because a benchmark needs servers that accept
hundreds of called AE titles and many simultaneous associations:

* Orthanc with ``DicomCheckCalledAet: false`` and ``DicomAlwaysAllowEcho: true`` (any called AE,
  any caller, any source address) and ``DicomThreadsCount`` raised from 4.
* DCMTK ``dcmqrscp`` in its default fork mode (``--single-process`` crashes after the first
  release) with one AETable entry per called AE title and ``MaxAssociations`` raised.
* pynetdicom SCP processes (tests/peers/pynetdicom_scp.py, behaviour ``accept``: any called AE)
  with ``maximum_associations`` raised; that script already raises the listen backlog to 128.
  They run through benchmarks/pynetdicom_scp_default.py, which keeps pynetdicom's default DUL
  polling (the test peers poll 10x faster, which costs the CPU the client needs here).

Every DCMTK/Orthanc child gets ``TCP_NODELAY=1`` (else ~40 ms per echo, Nagle). Everything
listens on loopback (or inside the network namespace the caller runs in) and is stopped by
:meth:`Fleet.stop`, which the harness calls in a ``finally``.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from tests.peers import orthanc as orthanc_mod
from tests.peers.base import LOOPBACK, ManagedProcess, free_port, group_members, peer_env, stop_all, \
    wait_listening
from tests.peers.hostile import HostileServer, stop_many

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    """One listening DICOM server and the called AE titles it answers."""

    kind: str
    host: str
    port: int
    ae_titles: List[str]
    notes: str = ""
    extra: Dict = field(default_factory=dict)


@dataclass
class Route:
    """Where a peer is reached: the server itself, or the delay proxy in front of it."""

    host: str
    port: int


class Fleet:
    """Starts servers on demand and stops them all (bounded) in :meth:`stop`."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: List[ManagedProcess] = []
        self.hostile: List[HostileServer] = []
        self.servers: List[Server] = []
        self.proxies: Dict[float, Tuple[ManagedProcess, Dict[Tuple[str, int], Route]]] = {}

    # ------------------------------------------------------------------ servers
    def start_orthanc(self, n_ae: int, threads: int = 32, name: str = "orthanc") -> Server:
        exe = orthanc_mod.orthanc_binary()
        if exe is None:
            raise FileNotFoundError("Orthanc binary not found")
        wd = self.workdir / name
        storage = wd / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        dicom_port, http_port = free_port(), free_port()
        config = {
            "Name": "dicom-network-bench-%s" % name, "StorageDirectory": str(storage),
            "IndexDirectory": str(storage), "Plugins": [], "HttpServerEnabled": True,
            "HttpPort": http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomServerEnabled": True, "DicomAet": "ORTHANC", "DicomPort": dicom_port,
            "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True,
            "DicomCheckModalityHost": False, "DicomModalities": {}, "DicomScpTimeout": 30,
            "DicomThreadsCount": threads, "SaveJobs": False, "ConcurrentJobs": 1,
        }
        (wd / "config.json").write_text(json.dumps(config, indent=2))
        proc = ManagedProcess(name, [exe, "--logfile=%s" % (wd / "orthanc.log"), str(wd / "config.json")],
                              wd / "orthanc.stdout", env=peer_env(), cwd=wd)
        self.procs.append(proc)
        wait_listening(LOOPBACK, dicom_port, 20.0, proc=proc)
        server = Server("orthanc", LOOPBACK, dicom_port, ["ORTH_%03d" % i for i in range(n_ae)],
                        "Orthanc 1.10.1, any called AE, DicomThreadsCount %d" % threads)
        self.servers.append(server)
        return server

    def start_dcmqrscp(self, n_ae: int, max_associations: int = 256, name: str = "dcmqrscp") -> Server:
        wd = self.workdir / name
        db = wd / "db"
        db.mkdir(parents=True, exist_ok=True)
        port = free_port()
        titles = ["QR_%03d" % i for i in range(n_ae)]
        lines = []
        for title in titles:
            (db / title).mkdir(exist_ok=True)
            lines.append("%s %s RW (10, 64mb) ANY" % (title, db / title))
        (wd / "dcmqrscp.cfg").write_text(
            "NetworkTCPPort  = %d\nMaxPDUSize      = 16384\nMaxAssociations = %d\n\n"
            "HostTable BEGIN\nHostTable END\n\nVendorTable BEGIN\nVendorTable END\n\n"
            "AETable BEGIN\n%s\nAETable END\n" % (port, max_associations, "\n".join(lines)))
        # Default fork mode: --single-process crashes after the first release.
        proc = ManagedProcess(name, ["dcmqrscp", "-dhl", "-c", str(wd / "dcmqrscp.cfg"), str(port)],
                              wd / "dcmqrscp.log", env=peer_env(), cwd=wd)
        self.procs.append(proc)
        wait_listening(LOOPBACK, port, 10.0, proc=proc)
        server = Server("dcmqrscp", LOOPBACK, port, titles,
                        "DCMTK 3.6.7 dcmqrscp, fork mode, MaxAssociations %d" % max_associations)
        self.servers.append(server)
        return server

    def start_pynetdicom(self, n_ae: int, max_associations: int = 256, name: str = "pynetdicom",
                         ae_prefix: str = "PYN_", behaviour: str = "accept", **options) -> Server:
        """A pynetdicom SCP process (tests/peers/pynetdicom_scp.py, run through
        benchmarks/pynetdicom_scp_default.py so that it polls like a production pynetdicom server)."""
        wd = self.workdir / name
        wd.mkdir(parents=True, exist_ok=True)
        port = free_port()
        spec = dict({"name": name, "behaviour": behaviour, "ae_title": "BENCH_SCP", "port": port,
                     "max_associations": max_associations}, **options)
        (wd / "peers.json").write_text(json.dumps({"host": LOOPBACK, "peers": [spec]}))
        proc = ManagedProcess(name, [sys.executable, "-m", "benchmarks.pynetdicom_scp_default", "--config",
                                     str(wd / "peers.json"), "--watch-stdin"],
                              wd / "scp.log", cwd=REPO_ROOT, stdin_pipe=True, stdout_pipe=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
        self.procs.append(proc)
        proc.wait_for_line("READY", 30.0)
        server = Server("pynetdicom", LOOPBACK, port, ["%s%03d" % (ae_prefix, i) for i in range(n_ae)],
                        "pynetdicom SCP (%s), maximum_associations %d, backlog 128, default DUL polling"
                        % (behaviour, max_associations))
        self.servers.append(server)
        return server

    def start_hostile(self, behaviour: str, **options) -> Server:
        server = HostileServer(behaviour, LOOPBACK, **options).start()
        self.hostile.append(server)
        entry = Server("hostile-%s" % behaviour, server.host, server.port, ["HOSTILE"],
                       "tests/peers/hostile.py %s %s" % (behaviour, options))
        self.servers.append(entry)
        return entry

    def closed_port(self) -> Server:
        entry = Server("closed", LOOPBACK, free_port(), ["CLOSED"], "nothing listens (ECONNREFUSED)")
        self.servers.append(entry)
        return entry

    # ------------------------------------------------------------------ proxy
    def proxy(self, delay_ms: float, servers: Sequence[Server]) -> Dict[Tuple[str, int], Route]:
        """One delay proxy process with a route per server (started once per delay)."""
        key = float(delay_ms)
        wanted = {(s.host, s.port) for s in servers}
        if key in self.proxies and wanted <= set(self.proxies[key][1]):
            return self.proxies[key][1]
        routes: Dict[Tuple[str, int], Route] = {}
        if key in self.proxies:
            # A server was added since: one new proxy process for the old routes (same ports, so
            # peer lists built before stay valid) and the new ones.
            old, routes = self.proxies.pop(key)
            old.stop(term_timeout=3.0)
            self.procs.remove(old)
        argv = [sys.executable, "-m", "benchmarks.delay_proxy", "--delay-ms", str(delay_ms), "--watch-stdin"]
        for host, port in sorted(wanted | set(routes)):
            if (host, port) not in routes:
                routes[(host, port)] = Route(host, free_port(host))
            listen = routes[(host, port)].port
            argv += ["--route", "%s:%d=%s:%d" % (host, listen, host, port)]
        proc = ManagedProcess("delay-proxy-%gms" % delay_ms, argv, self.workdir / ("proxy-%gms.log" % delay_ms),
                              cwd=REPO_ROOT, stdin_pipe=True, stdout_pipe=True)
        self.procs.append(proc)
        proc.wait_for_line("READY", 15.0)
        self.proxies[key] = (proc, routes)
        return routes

    # ------------------------------------------------------------------ peers
    def route(self, server: Server, delay_ms: float) -> Route:
        if not delay_ms:
            return Route(server.host, server.port)
        return self.proxy(delay_ms, [server])[(server.host, server.port)]

    def cpu_s(self) -> Dict[str, float]:
        """CPU seconds used so far by the server processes and by the delay proxies (user + system,
        including reaped children such as dcmqrscp's per-association forks and live ones)."""
        tick = float(os.sysconf("SC_CLK_TCK"))
        proxies = {id(proc) for proc, _routes in self.proxies.values()}
        out = {"servers": 0.0, "proxy": 0.0}
        for proc in self.procs:
            total = 0.0
            for pid in group_members(proc.pgid) or [proc.pid]:
                try:
                    with open("/proc/%d/stat" % pid) as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # utime stime cutime cstime are fields 14-17 of /proc/PID/stat
                total += sum(int(x) for x in fields[11:15]) / tick
            out["proxy" if id(proc) in proxies else "servers"] += total
        return out

    def stop(self) -> None:
        stop_many(self.hostile)
        self.hostile = []
        stop_all(self.procs, term_timeout=8.0)
        self.procs = []
        self.proxies = {}


def spread(servers: Sequence[Server], counts: Sequence[int]) -> List[Tuple[Server, str]]:
    """(server, called AE title) pairs, ``counts[i]`` from ``servers[i]``, interleaved round robin so
    that a concurrent run keeps every server busy at once (as a real fleet would)."""
    queues = [[(server, title) for title in server.ae_titles[:count]] for server, count in zip(servers, counts)]
    out: List[Tuple[Server, str]] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def module_peers(pairs: Sequence[Tuple[Server, str]], fleet: Fleet, delay_ms: float,
                 expect: str = "accept") -> List[Dict]:
    """``peers`` entries for dicom.network.echo (unique names: kind, port and AE title)."""
    if delay_ms:
        unique = {id(server): server for server, _title in pairs}
        fleet.proxy(delay_ms, list(unique.values()))
    peers = []
    for server, title in pairs:
        route = fleet.route(server, delay_ms)
        peers.append({"name": "%s-%d-%s" % (server.kind, server.port, title), "ae_title": title,
                      "host": route.host, "port": route.port, "expect": expect})
    return peers
