"""Scenario 3: a fleet audit through the whole echo_audit role (playbooks/audit.yml).

50 source hosts (local connection, each bound to its own 127.0.1.x source address through
``dicom_bind_address``) x 40 peers on the shared servers, every report format. The wall time is
split by the role's task files (``phase_split``): the plan task (plan.yml: options, inventory,
journal), the echo task (echo.yml, with the engine time the module reports), the report task
(report.yml: matrix, five formats, files) and the summary (show.yml). Skipped, with the reason,
while the role or its action plugins are not there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks.ansible_runner import AnsibleRun, run_playbook
from benchmarks.common import REPO_ROOT, Context, Skip, percentile
from benchmarks.fleet import spread
from benchmarks.scenario1 import servers_for
from tests.collection_path import ensure_collection_path

ROLE = REPO_ROOT / "roles" / "echo_audit"
PLAYBOOK = REPO_ROOT / "playbooks" / "audit.yml"
NEEDED = [ROLE / "tasks" / "main.yml", ROLE / "tasks" / "plan.yml", ROLE / "tasks" / "echo.yml",
          ROLE / "tasks" / "report.yml", PLAYBOOK, REPO_ROOT / "plugins" / "action" / "echo_audit_plan.py",
          REPO_ROOT / "plugins" / "action" / "echo_audit_report.py"]
# The role's task files by phase. The second names are the layout before issue 18 (aef9bf1: a
# preflight of asserts, the matrix in collect.yml, templates in report.yml/write_reports.yml, the
# verdict in verdict.yml), so that benchmarks/ab_audit.py splits both sides the same way.
PHASES = {"plan": ("plan.yml", "preflight.yml"), "echo": ("echo.yml",),
          "report": ("report.yml", "collect.yml", "write_reports.yml"), "show": ("show.yml", "verdict.yml")}
_PHASE_OF = {name: phase for phase, names in PHASES.items() for name in names}


def require_role() -> None:
    missing = [str(p.relative_to(REPO_ROOT)) for p in NEEDED if not p.exists()]
    if missing:
        raise Skip("the echo_audit role is not there (missing %s)" % ", ".join(missing))


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


def task_file(task: Dict[str, Any]) -> str:
    """The name of the role task file a timed task comes from ("other" for the playbook's own)."""
    path = (task.get("path") or "").split(":")[0]
    return Path(path).name if "/roles/echo_audit/tasks/" in path else "other"


def phase_split(run_: AnsibleRun) -> Dict[str, Any]:
    """Seconds per phase (first task start to last host result of the phase's task files) and per file."""
    spans: Dict[str, List[float]] = {}
    files: Dict[str, List[float]] = {}
    for task in run_.tasks():
        name = task_file(task)
        for key, table in ((_PHASE_OF.get(name, "other"), spans), (name, files)):
            span = table.setdefault(key, [task["start"], task["end"]])
            span[0] = min(span[0], task["start"])
            span[1] = max(span[1], task["end"])
    seconds = {phase: round(span[1] - span[0], 3) for phase, span in spans.items()}
    for phase in PHASES:
        seconds.setdefault(phase, 0.0)
    return {"phases_s": seconds, "files_s": {name: round(s[1] - s[0], 3) for name, s in files.items()}}


def fleet_peers(ctx: Context, pairs, delay: float) -> List[Dict[str, Any]]:
    """The audit's peers on the shared servers (through the delay proxy's routes when ``delay``)."""
    peers = []
    for server, title in pairs:
        route = ctx.fleet.route(server, delay)
        peers.append({"name": "%s_%s" % (server.kind, title.lower()), "ae_title": title, "host": route.host,
                      "port": route.port, "site": "Site %s" % server.kind, "kind": "archive",
                      "server": "%s:%d" % (server.kind, server.port)})
    return peers


def run_audit(ctx: Context, peers: List[Dict[str, Any]], n_hosts: int, forks: int, label: str = "scenario3",
              collections_root: Optional[Path] = None) -> Dict[str, Any]:
    """One ``playbooks/audit.yml`` run of the collection under ``collections_root`` (default this checkout):
    the run, its phase split, the engine times and the reports' sizes. Raises when the playbook fails."""
    wd = ctx.tmp("%s-" % label)
    report_dir = wd / "reports"
    extra_vars = {"echo_audit_report_dir": str(report_dir), "echo_audit_fail_on_unexpected": False}
    if ctx.smoke:
        extra_vars["echo_audit_report_formats"] = ["json", "html"]
    # The playbook of the collection measured: before issue 18 it is another commit's.
    root = collections_root if collections_root is not None else ensure_collection_path()
    playbook = root / "ansible_collections" / "dicom" / "network" / "playbooks" / "audit.yml"
    run_, peers_cpu = ctx.peers_cpu(run_playbook, wd, None, fleet_inventory(n_hosts, peers), playbook_path=playbook,
                                    forks=forks, extra_vars=extra_vars, timeout=1200,
                                    collections_root=collections_root)
    if run_.rc != 0:
        raise RuntimeError("audit playbook rc %d:\n%s" % (run_.rc, run_.output[-4000:]))
    split = phase_split(run_)
    digests = run_.echo_digests()
    engine = [d["summary"]["duration_ms"] / 1000.0 for d in digests]
    sizes = {p.name[len("latest."):]: p.stat().st_size for p in report_dir.glob("latest.*")}
    try:
        summary = json.loads((report_dir / "latest.json").read_text())["summary"]
        checks = {"total": summary["total"], "ok": summary["ok"]}
    except (OSError, ValueError, KeyError):
        checks = None
    return dict(split, run=run_, peers_cpu=peers_cpu, engine_s=engine, checks=checks, sizes=sizes,
                latencies_ms=[t for d in digests for t in d["totals_ms"]],
                outcomes=[o for d in digests for o in d["outcomes"]], wall_s=run_.wall_s)


def run(ctx: Context) -> None:
    require_role()
    n_hosts, n_peers = (2, 3) if ctx.smoke else (50, 40)
    forks = min(ctx.args.forks, n_hosts)
    servers, counts = servers_for(ctx, n_peers)
    pairs = spread(servers, counts)
    for condition, delay in ctx.conditions():
        if delay:
            ctx.fleet.proxy(delay, [s for s, _t in pairs])
        res = run_audit(ctx, fleet_peers(ctx, pairs, delay), n_hosts, forks)
        seconds, engine, wall = res["phases_s"], res["engine_s"], res["wall_s"]
        report = seconds["report"] + seconds["show"]
        overhead = wall - sum(engine) / forks - report
        checks = ("%d checks, %d ok" % (res["checks"]["total"], res["checks"]["ok"]) if res["checks"]
                  else "no latest.json")
        ctx.row(scenario="3 fleet audit", condition=condition,
                what="echo_audit role, %d hosts x %d peers, forks %d" % (n_hosts, n_peers, forks),
                wall_s=wall, echoes=len(res["outcomes"]), eps=len(res["outcomes"]) / wall,
                p50_ms=percentile(res["latencies_ms"], 50), p95_ms=percentile(res["latencies_ms"], 95),
                notes="%s; plan task %.1f s, echo task %.1f s (engine sum %.1f s, max %.2f s per host), report task "
                      "%.1f s (matrix, %d formats, files), summary %.1f s; Ansible overhead %.1f s; reports %s; %s"
                % (checks, seconds["plan"], seconds["echo"], sum(engine), max(engine) if engine else 0.0,
                   seconds["report"], len(res["sizes"]), seconds["show"], overhead,
                   ", ".join("%s %.0f kB" % (k, v / 1024.0) for k, v in sorted(res["sizes"].items())),
                   res["peers_cpu"]),
                data={"phases_s": seconds, "files_s": res["files_s"], "engine_s": engine,
                      "ansible_overhead_s": overhead, "report_s": report, "sizes": res["sizes"]})
        tag = "loopback" if not delay else "proxy"
        ctx.target("3 %s" % tag, "audit wall, %d x %d (%s)" % (n_hosts, n_peers, condition), wall, 90.0,
                   False, " s")
        ctx.target("3 %s" % tag, "report task + summary share of the audit wall (%s)" % condition,
                   100.0 * report / wall, 10.0, False, "%")
