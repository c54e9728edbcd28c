"""Scenario 5: what one association costs, against the floor, and the module's peak memory.

Against one server of each kind (pynetdicom SCP, DCMTK dcmqrscp, Orthanc), N times:

* floor 1: a raw TCP loop: connect, half-close, wait for the server to close (no DICOM at all);
* floor 2: ``echoscu --repeat N`` (N echoes inside ONE association: the DIMSE round trip);
* floor 3: a minimal blocking C-ECHO client in Python (benchmarks/workers.py ``raw_echo``: hand-built
  PDUs on one socket in one thread, no polling) -- what one association costs in Python without
  pynetdicom's reactor threads;
* a plain pynetdicom loop (associate / echo / release, one after another);
* the engine with ``parallel: 1`` over N peer entries (one association each): wall and CPU per
  echo, and the same with ``parallel: 16`` (CPU per echo under concurrency);
* the engine with ``count: N`` (N echoes in one association), against floor 2;
* A/B, never headline numbers: the engine at ``parallel`` 1 and 16 on stock pynetdicom
  (``DICOM_NETWORK_STOCK_PYNETDICOM=1``: no speed trick of ``_pynetdicom_compat``, so pynetdicom's
  polling requestor reactor and DUL, and the sleeps of its abort and kill, are back): the floor a
  pynetdicom upgrade that breaks the tricks falls to.

Then the peak memory (VmHWM, via wait4's ru_maxrss) of the real module process that Ansible
runs with 500 peers, against the 150 MB target.
"""
from __future__ import annotations

import shutil
from typing import Dict, List, Optional, Tuple

from benchmarks.ansible_runner import AnsibleRun
from benchmarks.common import Context, percentile
from benchmarks.fleet import Server, module_peers
from benchmarks.scenario1 import FULL_PEERS, SMOKE_PEERS, run_module, servers_for
from benchmarks.fleet import spread


def _per_echo_row(ctx: Context, condition: str, server: Server, what: str, n: int, res: Dict, extra: str = "",
                  latencies: List[float] = None) -> None:
    lat = res.get("latencies_ms") if latencies is None else latencies
    ctx.row(scenario="5 per association", condition=condition, what="%s: %s" % (server.kind, what),
            wall_s=res["wall_s"], echoes=n, eps=n / res["wall_s"], p50_ms=percentile(lat or [], 50),
            p95_ms=percentile(lat or [], 95), cpu_s=res.get("cpu_s"),
            notes="per echo: wall %.2f ms, CPU %s%s" % (
                1000.0 * res["wall_s"] / n,
                "%.2f ms" % (1000.0 * res["cpu_s"] / n) if res.get("cpu_s") is not None else "-", extra))


def module_peak_mb(run_: AnsibleRun) -> Tuple[Optional[float], List[Dict]]:
    """VmHWM in MB of the dicom.network.echo module process of a ``memory=True`` run (None: not
    recorded), and the wrapper's records of that process."""
    modules = [m for m in run_.memory if any("AnsiballZ_echo" in a for a in m["argv"])]
    return (max(m["maxrss_kb"] for m in modules) / 1024.0 if modules else None), modules


def run(ctx: Context) -> None:
    n = 10 if ctx.smoke else 200
    servers, _counts = servers_for(ctx, SMOKE_PEERS if ctx.smoke else FULL_PEERS)
    by_kind: Dict[str, Server] = {}
    for server in servers:
        by_kind.setdefault(server.kind, server)
    if ctx.smoke:
        by_kind = {"pynetdicom": by_kind["pynetdicom"]}
    for condition, delay in ctx.conditions():
        for kind, server in sorted(by_kind.items()):
            peers = module_peers([(server, server.ae_titles[i % len(server.ae_titles)]) for i in range(n)],
                                 ctx.fleet, delay)
            # Same AE title repeated is fine for the servers; names stay unique.
            for i, peer in enumerate(peers):
                peer["name"] = "%s-%d" % (peer["name"], i)
            first = peers[0]
            res = ctx.worker("tcp-loop", {"host": first["host"], "port": first["port"], "n": n})
            _per_echo_row(ctx, condition, server, "floor: TCP connect, FIN, server closes", n, res)
            res = ctx.worker("raw-loop", {"peers": peers})
            _per_echo_row(ctx, condition, server, "floor: minimal blocking C-ECHO client in Python", n, res,
                          extra="; %s" % ", ".join(sorted(set(res["outcomes"]))))
            if shutil.which("echoscu"):
                res = ctx.worker("echoscu-repeat", {"peer": first, "repeat": n})
                _per_echo_row(ctx, condition, server, "floor: echoscu --repeat %d (one association)" % n, n, res,
                              extra="; rc %d; includes one process start and one association" % res["rc"])
            res = ctx.worker("pynetdicom-loop", {"peers": peers, "timeout": 5})
            _per_echo_row(ctx, condition, server, "pynetdicom loop (association per echo)", n, res)
            params = {"connect_timeout": 5, "acse_timeout": 10, "dimse_timeout": 10, "fail_on": "never"}
            for parallel in (1, 16):
                res = ctx.worker("engine", {"params": dict(params, peers=peers, parallel=parallel)})
                phases = {k: percentile(v, 50) for k, v in res["phase_ms"].items()}
                _per_echo_row(ctx, condition, server, "engine, parallel %d (association per echo)" % parallel, n,
                              res, extra="; median phases ms: %s" % ", ".join(
                                  "%s %.2f" % (k, v) for k, v in phases.items() if v is not None))
            res = ctx.worker("engine", {"params": dict(params, peers=peers[:1], count=n, parallel=1)})
            rtt = res["rtt_avg_ms"][0]
            _per_echo_row(ctx, condition, server, "engine, count %d (one association)" % n, n, res,
                          extra="; C-ECHO round trip avg %s ms; %s; phases ms: %s" % (
                              "%.2f" % rtt if rtt is not None else "-", res["outcomes"][0],
                              ", ".join("%s %s" % (k, v[0]) for k, v in res["phase_ms"].items())),
                          latencies=[])
            if ctx.smoke:
                continue
            for parallel in (1, 16):
                res = ctx.worker("engine", {"params": dict(params, peers=peers, parallel=parallel), "stock": True})
                phases = {k: percentile(v, 50) for k, v in res["phase_ms"].items()}
                _per_echo_row(ctx, condition, server,
                              "A/B: engine on stock pynetdicom (no compat tricks), parallel %d" % parallel,
                              n, res, extra="; median phases ms: %s" % ", ".join(
                                  "%s %.2f" % (k, v) for k, v in phases.items() if v is not None))

    # Peak memory of the module process under Ansible, 500 peers (loopback); in smoke mode
    # scenario 1's module run already recorded it.
    if ctx.smoke and "memory_run" in ctx.shared:
        run_, split, n_mem = ctx.shared["memory_run"]
    else:
        n_mem = SMOKE_PEERS if ctx.smoke else FULL_PEERS
        servers, counts = servers_for(ctx, n_mem)
        peers = module_peers(spread(servers, counts), ctx.fleet, 0)
        run_, _digest, split = run_module(ctx, peers, {"connect_timeout": 5, "acse_timeout": 10,
                                                       "dimse_timeout": 10, "fail_on": "never"},
                                          memory=True, label="memory")
    peak_mb, modules = module_peak_mb(run_)
    ctx.row(scenario="5 memory", condition="-", what="dicom.network.echo module process, %d peers" % n_mem,
            wall_s=run_.wall_s, echoes=n_mem, cpu_s=modules[0]["cpu_s"] if modules else None,
            notes="VmHWM %s (wait4 ru_maxrss of the AnsiballZ process); engine %.2f s" % (
                "%.1f MB" % peak_mb if peak_mb is not None else "not recorded", split["engine_s"]))
    ctx.target("5", "module process peak memory (VmHWM), %d peers" % n_mem, peak_mb, 150.0, False, " MB")
