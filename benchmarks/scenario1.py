"""Scenario 1: many peers from one host.

500 peers (called AE titles on a few real servers: Orthanc, DCMTK dcmqrscp, two pynetdicom SCP
processes), echoed four ways: a sequential ``echoscu`` loop (one process per echo), a sequential
plain pynetdicom loop, the echo engine without Ansible (parallel 16 and 64), and
``dicom.network.echo`` through ansible-playbook (one task, all peers). Each under plain loopback
and through the delay proxy. A sequential minimal blocking C-ECHO client (no pynetdicom) is shown
for reference only.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks.ansible_runner import local_inventory, run_playbook
from benchmarks.common import Context, percentile
from benchmarks.fleet import Server, module_peers, spread
from tests.peers import orthanc as orthanc_mod

FULL_PEERS = 500
SMOKE_PEERS = 12
TIMEOUTS = {"connect_timeout": 5, "acse_timeout": 10, "dimse_timeout": 10}


def servers_for(ctx: Context, n_peers: int) -> Tuple[List[Server], List[int]]:
    """Start (once) the servers of the shared fleet and say how many peers each one carries."""
    fleet = ctx.fleet
    servers = ctx.shared.get("servers")
    if servers is None:
        servers = []
        have_orthanc = orthanc_mod.orthanc_binary() is not None and not ctx.smoke
        have_dcmtk = shutil.which("dcmqrscp") is not None
        if not have_orthanc and not ctx.smoke:
            ctx.note("Orthanc not found: its share of the peers goes to the other servers")
        if not have_dcmtk:
            ctx.note("dcmqrscp not found: its share of the peers goes to the pynetdicom SCPs")
        size = max(n_peers, SMOKE_PEERS if ctx.smoke else FULL_PEERS)
        if have_orthanc:
            servers.append(fleet.start_orthanc(size))
        if have_dcmtk:
            servers.append(fleet.start_dcmqrscp(size))
        servers.append(fleet.start_pynetdicom(size, name="pynetdicom1", ae_prefix="PYA_"))
        if not ctx.smoke:
            servers.append(fleet.start_pynetdicom(size, name="pynetdicom2", ae_prefix="PYB_"))
        ctx.shared["servers"] = servers
    weights = {"orthanc": 3, "dcmqrscp": 3, "pynetdicom": 2}
    total_weight = sum(weights[s.kind] for s in servers)
    counts = [n_peers * weights[s.kind] // total_weight for s in servers]
    counts[-1] += n_peers - sum(counts)
    return servers, counts


def _stats(latencies) -> Dict[str, Optional[float]]:
    return {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _not_ok(outcomes) -> str:
    bad = [o for o in outcomes if o != "success"]
    return "" if not bad else "%d not success (%s)" % (len(bad), ", ".join(sorted(set(bad))))


def module_play(peers, params: Dict) -> List[Dict]:
    return [{"name": "dicom.network.echo benchmark", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "echo every peer", "dicom.network.echo": dict(params, peers="{{ bench_peers }}")}]}]


def run_module(ctx: Context, peers, params: Dict, memory: bool = False, label: str = "module",
               collections_root: Optional[Path] = None, env: Optional[Dict[str, str]] = None):
    """dicom.network.echo through ansible-playbook; returns (AnsibleRun, digest, split dict).

    ``collections_root`` and ``env`` (benchmarks/ab.py): which dicom.network to run, and with what
    environment (the module process inherits it: local connection)."""
    wd = ctx.tmp("ansible-%s-" % label)
    inventory = local_inventory({"localhost": {}})
    run = run_playbook(wd, module_play(peers, params), inventory, extra_vars={"bench_peers": peers}, forks=1,
                       memory=memory, timeout=900, collections_root=collections_root, env=env)
    digests = run.echo_digests()
    if run.rc != 0 or not digests:
        raise RuntimeError("ansible-playbook rc %d, %d echo result(s):\n%s" % (run.rc, len(digests), run.output[-3000:]))
    digest = digests[0]
    tasks = run.tasks()
    echo_task = next(t for t in tasks if t["action"].endswith("echo"))
    engine_s = digest["summary"]["duration_ms"] / 1000.0
    split = {
        "startup_s": echo_task["start"] - run.started,
        "task_s": echo_task["end"] - echo_task["start"],
        "engine_s": engine_s,
        "exit_s": run.started + run.wall_s - echo_task["end"],
    }
    split["module_overhead_s"] = split["task_s"] - engine_s
    split["ansible_overhead_s"] = run.wall_s - engine_s
    return run, digest, split


def run(ctx: Context) -> None:
    n = SMOKE_PEERS if ctx.smoke else FULL_PEERS
    servers, counts = servers_for(ctx, n)
    pairs = spread(servers, counts)
    placement = ", ".join("%s:%d x%d" % (s.kind, s.port, c) for s, c in zip(servers, counts))
    ctx.note("scenario 1: %d peers on %s" % (n, placement))
    for condition, delay in ctx.conditions():
        peers = module_peers(pairs, ctx.fleet, delay)
        params = dict(TIMEOUTS, fail_on="never")
        walls: Dict[str, float] = {}

        if shutil.which("echoscu"):
            res, peers_cpu = ctx.peers_cpu(ctx.worker, "echoscu-loop", {"peers": peers, "timeout": 5})
            st = _stats(res["latencies_ms"])
            walls["echoscu"] = res["wall_s"]
            ctx.row(scenario="1 many peers", condition=condition, what="echoscu loop (process per echo)",
                    wall_s=res["wall_s"], echoes=n, eps=n / res["wall_s"], p50_ms=st["p50"], p95_ms=st["p95"],
                    cpu_s=res["cpu_s"], notes=_join(peers_cpu, _not_ok(res["outcomes"])))
        else:
            ctx.note("echoscu not found: no sequential echoscu baseline")

        res, peers_cpu = ctx.peers_cpu(ctx.worker, "pynetdicom-loop", {"peers": peers, "timeout": 5})
        st = _stats(res["latencies_ms"])
        walls["pynetdicom"] = res["wall_s"]
        ctx.row(scenario="1 many peers", condition=condition, what="pynetdicom loop (sequential)",
                wall_s=res["wall_s"], echoes=n, eps=n / res["wall_s"], p50_ms=st["p50"], p95_ms=st["p95"],
                cpu_s=res["cpu_s"], notes=_join(peers_cpu, _not_ok(res["outcomes"])))

        res, peers_cpu = ctx.peers_cpu(ctx.worker, "raw-loop", {"peers": peers})
        st = _stats(res["latencies_ms"])
        ctx.row(scenario="1 many peers", condition=condition,
                what="reference: minimal blocking C-ECHO client, sequential",
                wall_s=res["wall_s"], echoes=n, eps=n / res["wall_s"], p50_ms=st["p50"], p95_ms=st["p95"],
                cpu_s=res["cpu_s"], notes=_join("not a product: no checks beyond PDU types (workers.raw_echo)",
                                                peers_cpu, _not_ok(res["outcomes"])))
        # What the servers (and the proxy) alone need for these echoes, whoever the client is.
        peers_cpu_any = ctx.last_peers_cpu_s

        for parallel in ([16] if ctx.smoke else [16, 64]):
            res, peers_cpu = ctx.peers_cpu(ctx.worker, "engine",
                                           {"params": dict(params, peers=peers, parallel=parallel)})
            st = _stats(res["latencies_ms"])
            if parallel == 16:
                walls["engine"] = res["wall_s"]
                engine_cpu = (res["cpu_s"], ctx.last_peers_cpu_s)
            ctx.row(scenario="1 many peers", condition=condition,
                    what="engine in-process, parallel %d%s" % (parallel, " (default)" if parallel == 16 else ""),
                    wall_s=res["wall_s"], echoes=n, eps=n / res["wall_s"], p50_ms=st["p50"], p95_ms=st["p95"],
                    cpu_s=res["cpu_s"], notes=_join("peak RSS %.0f MB" % (res["maxrss_kb"] / 1024.0), peers_cpu,
                                                    _not_ok(res["outcomes"])))

        # Smoke: this run also records the module's peak memory (one ansible-playbook run less).
        (run_, digest, split), peers_cpu = ctx.peers_cpu(run_module, ctx, peers, params, memory=ctx.smoke)
        if ctx.smoke:
            ctx.shared["memory_run"] = (run_, split, n)
        st = _stats(digest["totals_ms"])
        walls["module"] = run_.wall_s
        ctx.row(scenario="1 many peers", condition=condition, what="dicom.network.echo via ansible-playbook",
                wall_s=run_.wall_s, echoes=n, eps=n / run_.wall_s, p50_ms=st["p50"], p95_ms=st["p95"],
                notes=_join("engine %.2f s + Ansible overhead %.2f s (startup %.2f, module process %.2f, exit %.2f)"
                            % (split["engine_s"], split["ansible_overhead_s"], split["startup_s"],
                               split["module_overhead_s"], split["exit_s"]), peers_cpu, _not_ok(digest["outcomes"])),
                data=split)

        tag = "loopback" if not delay else "proxy"
        engine_floors = _engine_floors(peers_cpu_any, *engine_cpu)
        floor = ctx.ansible_floor_s()
        module_floors = [(who, floor + seconds, "Ansible floor %.2f s + %s" % (floor, why))
                         for who, seconds, why in engine_floors]

        def bounds(base: str, floors) -> List[Tuple[str, float, str]]:
            return [(who, walls[base] / seconds, why) for who, seconds, why in floors]

        for base in ("echoscu", "pynetdicom"):
            if base not in walls:
                continue
            ctx.target("1a %s" % tag, "module speed-up over sequential %s loop (%s)" % (base, condition),
                       walls[base] / walls["module"], 2.0, True, "x", bounds(base, module_floors))
            ctx.target("1a %s" % tag, "engine speed-up over sequential %s loop (%s)" % (base, condition),
                       walls[base] / walls["engine"], 4.0, True, "x", bounds(base, engine_floors))
        if "echoscu" in walls:
            ctx.target("1b %s" % tag, "module speed-up over echoscu loop (%s)" % condition,
                       walls["echoscu"] / walls["module"], 10.0, True, "x", bounds("echoscu", module_floors))


def _engine_floors(peers_cpu_any: Optional[float], engine_cpu_s: float,
                   peers_cpu_engine: Optional[float]) -> List[Tuple[str, float, str]]:
    """Lower bounds of the echo time on this machine's cores: (for which client, seconds, why).

    Any client: the servers (and the proxy) must spend their CPU for these echoes, on the same cores.
    With pynetdicom: its CPU per association as this run's engine spent it, on top of the peers'."""
    cores = os.cpu_count() or 1
    floors = []
    if peers_cpu_any:
        floors.append(("any client", peers_cpu_any / cores, "peers' CPU %.2f s / %d cores" % (peers_cpu_any, cores)))
    if peers_cpu_engine:
        floors.append(("pynetdicom", (engine_cpu_s + peers_cpu_engine) / cores,
                       "engine CPU %.2f s + peers' %.2f s, / %d cores" % (engine_cpu_s, peers_cpu_engine, cores)))
    return floors
