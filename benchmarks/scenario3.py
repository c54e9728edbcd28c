"""Scenario 3: a fleet audit through the whole echo_audit role (playbooks/audit.yml).

50 source hosts (local connection, each bound to its own 127.0.1.x source address through
``dicom_bind_address``) x 40 peers on the shared servers, every report format. The wall time is
split by the role's task files: preflight, echo (with the engine time the module reports), the
report rendering (collect.yml: the matrix; report.yml: view, templates, copies, stats) and the
verdict. Skipped, with the reason, while the role or its filters are not there yet.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from benchmarks.ansible_runner import run_playbook
from benchmarks.common import REPO_ROOT, Context, Skip, percentile
from benchmarks.fleet import spread
from benchmarks.scenario1 import servers_for

ROLE = REPO_ROOT / "roles" / "echo_audit"
PLAYBOOK = REPO_ROOT / "playbooks" / "audit.yml"
NEEDED = [ROLE / "tasks" / "main.yml", PLAYBOOK, REPO_ROOT / "plugins" / "filter" / "echo_audit_peers.py",
          REPO_ROOT / "plugins" / "filter" / "echo_matrix.py", REPO_ROOT / "plugins" / "filter" / "echo_matrix_view.py"]
PHASE_FILES = ("preflight.yml", "echo.yml", "collect.yml", "report.yml", "verdict.yml")


def require_role() -> None:
    missing = [str(p.relative_to(REPO_ROOT)) for p in NEEDED if not p.exists()]
    if missing:
        raise Skip("the echo_audit role is not there yet (missing %s)" % ", ".join(missing))


def fleet_inventory(n_hosts: int, peers: List[Dict], forks_note: str = "") -> Dict:
    registry: Dict[str, Dict] = {}
    for peer in peers:
        registry[peer["name"]] = {"ae_title": peer["ae_title"], "host": peer["host"], "port": peer["port"],
                                  "site": peer["site"], "kind": peer["kind"],
                                  "description": "benchmark peer on %s" % peer["server"]}
    hosts = {}
    for i in range(1, n_hosts + 1):
        name = "src%02d" % i
        registry["ae_%s" % name] = {"ae_title": "SRC_%02d" % i, "host": "127.0.1.%d" % i, "port": 11112,
                                    "site": "Sources", "kind": "workstation"}
        hosts[name] = {"dicom_local_aes": ["ae_%s" % name], "dicom_bind_address": "127.0.1.%d" % i}
    import sys
    return {"all": {"vars": {"dicom_aes": registry}, "children": {"dicom_sources": {
        "vars": {"dicom_peers_bench": [p["name"] for p in peers]},
        "hosts": {name: dict(hv, ansible_connection="local", ansible_python_interpreter=sys.executable)
                  for name, hv in hosts.items()}}}}}


def _phase(task: Dict) -> str:
    path = (task.get("path") or "").split(":")[0]
    base = Path(path).name
    return base if base in PHASE_FILES else "other"


def run(ctx: Context) -> None:
    require_role()
    n_hosts, n_peers = (2, 3) if ctx.smoke else (50, 40)
    forks = min(ctx.args.forks, n_hosts)
    servers, counts = servers_for(ctx, n_peers)
    pairs = spread(servers, counts)
    for condition, delay in ctx.conditions():
        if delay:
            ctx.fleet.proxy(delay, [s for s, _t in pairs])
        peers = []
        for server, title in pairs:
            route = ctx.fleet.route(server, delay)
            peers.append({"name": "%s_%s" % (server.kind, title.lower()), "ae_title": title, "host": route.host,
                          "port": route.port, "site": "Site %s" % server.kind, "kind": "archive",
                          "server": "%s:%d" % (server.kind, server.port)})
        wd = ctx.tmp("scenario3-")
        report_dir = wd / "reports"
        extra_vars = {"echo_audit_report_dir": str(report_dir), "echo_audit_fail_on_unexpected": False}
        if ctx.smoke:
            extra_vars["echo_audit_report_formats"] = ["json", "html"]
        run_, peers_cpu = ctx.peers_cpu(run_playbook, wd, None, fleet_inventory(n_hosts, peers),
                                        playbook_path=PLAYBOOK, forks=forks, extra_vars=extra_vars, timeout=1200)
        if run_.rc != 0:
            raise RuntimeError("audit playbook rc %d:\n%s" % (run_.rc, run_.output[-4000:]))
        spans: Dict[str, List[float]] = {}
        for task in run_.tasks():
            span = spans.setdefault(_phase(task), [task["start"], task["end"]])
            span[0] = min(span[0], task["start"])
            span[1] = max(span[1], task["end"])
        seconds = {phase: span[1] - span[0] for phase, span in spans.items()}
        digests = run_.echo_digests()
        engine = [d["summary"]["duration_ms"] / 1000.0 for d in digests]
        latencies = [t for d in digests for t in d["totals_ms"]]
        outcomes = [o for d in digests for o in d["outcomes"]]
        render = seconds.get("collect.yml", 0.0) + seconds.get("report.yml", 0.0)
        engine_share = sum(engine) / forks
        overhead = run_.wall_s - engine_share - render
        sizes = {p.suffix or p.name: p.stat().st_size for p in report_dir.glob("latest.*")}
        try:
            summary = json.loads((report_dir / "latest.json").read_text())["summary"]
            checks = "%d checks, %d ok" % (summary["total"], summary["ok"])
        except (OSError, ValueError, KeyError):
            checks = "no latest.json"
        ctx.row(scenario="3 fleet audit", condition=condition,
                what="echo_audit role, %d hosts x %d peers, forks %d" % (n_hosts, n_peers, forks),
                wall_s=run_.wall_s, echoes=len(outcomes), eps=len(outcomes) / run_.wall_s,
                p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
                notes="%s; preflight %.1f s, echo tasks %.1f s (engine sum %.1f s, max %.2f s per host), "
                      "rendering %.1f s (matrix %.1f, reports %.1f), verdict %.1f s; Ansible overhead %.1f s; "
                      "reports %s; %s"
                % (checks, seconds.get("preflight.yml", 0.0), seconds.get("echo.yml", 0.0), sum(engine),
                   max(engine) if engine else 0.0, render, seconds.get("collect.yml", 0.0),
                   seconds.get("report.yml", 0.0), seconds.get("verdict.yml", 0.0), overhead,
                   ", ".join("%s %.0f kB" % (k.lstrip("."), v / 1024.0) for k, v in sorted(sizes.items())),
                   peers_cpu),
                data={"phases_s": seconds, "engine_s": engine, "ansible_overhead_s": overhead, "render_s": render})
        tag = "loopback" if not delay else "proxy"
        ctx.target("3 %s" % tag, "audit wall, %d x %d (%s)" % (n_hosts, n_peers, condition), run_.wall_s, 90.0,
                   False, " s")
        ctx.target("3 %s" % tag, "report rendering share of the audit wall (%s)" % condition,
                   100.0 * render / run_.wall_s, 10.0, False, "%")
