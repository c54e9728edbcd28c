"""A/B of the echo_audit role (issue 18) against an earlier commit: one run, one machine, the same peers.

    .venv/bin/python benchmarks/ab_audit.py --before aef9bf1                  # full size, 3 rounds
    .venv/bin/python benchmarks/ab_audit.py --before aef9bf1 --repeat 1 --json ab-audit.json
    .venv/bin/python benchmarks/ab_audit.py --before HEAD --smoke             # tiny: checks the harness

Variants:

``before``  the collection at ``--before``, exported with ``git archive | tar -x`` into a temporary
            ``ansible_collections/dicom/network`` (benchmarks/ab.py's ``export_commit``: the work tree
            and the git state are never touched);
``after``   this checkout, as it is on disk (uncommitted changes under plugins/, roles/ or playbooks/
            are named in the header).

Measurements (issue 18's thresholds in brackets):

* scenario 3: ``playbooks/audit.yml`` of each variant, 50 local source hosts (each bound to its own
  127.0.1.x) x 40 peers on the shared loopback servers, every report format, forks 5: the wall
  [after <= 0.8 x before] and its split by the role's task files (benchmarks/scenario3.py
  ``phase_split``): plan (before: preflight.yml), echo, report (after: the report task; before:
  collect.yml, report.yml, write_reports.yml) and summary (after: show.yml; before: verdict.yml);
* scenario 4: the report step at 300 x 300 (90,000 cells, synthetic results, five formats), each
  variant measured by its own ``benchmarks/run.py --scenarios 4`` in its own tree (PYTHONPATH and
  cwd set to it): after, the ``dicom.network.echo_audit_report`` task [< 3 s]; before, collect.yml +
  report.yml as that commit's scenario 4 times them. When the before commit's scenario 4 cannot run,
  its cells stay empty and a note says why.

The variants alternate: each round runs scenario 3 before, after, then scenario 4 before, after. The
table gives the median and, with more than one round, min-max; the ratio is of the medians. All
traffic stays on 127.0.0.0/8. A missed threshold never fails the run; a broken harness does (exit 1).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.ab import _cell, _verdict, checkout_state, export_commit, publish  # noqa: E402
from benchmarks.common import Context, fmt, loadavg, machine_info  # noqa: E402
from benchmarks.fleet import spread  # noqa: E402
from benchmarks.scenario1 import servers_for  # noqa: E402
from benchmarks.scenario3 import fleet_peers, run_audit  # noqa: E402
from tests.collection_path import ensure_collection_path  # noqa: E402

VARIANTS = ("before", "after")
FORKS = 5


@dataclass
class Variant:
    name: str
    root: Path  # the ansible_collections root dicom.network is loaded from

    @property
    def tree(self) -> Path:
        """The collection's own tree (its benchmarks/ too)."""
        return self.root / "ansible_collections" / "dicom" / "network"


@dataclass
class Measure:
    key: str
    label: str
    unit: str
    # ("ratio", x): after <= x * before; ("below", x): after < x; None: shown, not judged.
    check: Optional[Tuple[str, float]] = None


def measures(s3: Tuple[int, int], n4: int) -> List[Measure]:
    hosts, peers = s3
    return [
        Measure("s3_wall", "3: audit wall, %d hosts x %d peers, forks %d, loopback" % (hosts, peers, FORKS), "s",
                ("ratio", 0.8)),
        Measure("s3_plan", "3: plan task (before: preflight.yml)", "s"),
        Measure("s3_echo", "3: echo task (echo.yml)", "s"),
        Measure("s3_report", "3: report task (before: collect.yml + report.yml + write_reports.yml)", "s"),
        Measure("s3_show", "3: summary (show.yml; before: verdict.yml)", "s"),
        Measure("s3_rest", "3: the rest (ansible-playbook start-up, includes, play end)", "s"),
        Measure("s4_report", "4: report step, %dx%d, %d formats (after: the report task; before: collect.yml + "
                "report.yml)" % (n4, n4, 5 if n4 >= 300 else 2), "s", ("below", 3.0)),
        Measure("s4_playbook", "4: scenario 4's whole playbook (plan or preflight, synthetic results, report)", "s"),
        Measure("s4_html_mb", "4: HTML report size", "MB"),
        Measure("s4_interactive", "4: HTML page time until interactive, headless Chromium", "s"),
    ]


# ------------------------------------------------------------------ scenario 4 in the variant's own tree
def scenario4_report_step(document: Dict[str, Any]) -> Dict[str, float]:
    """The report step's numbers from a ``run.py --scenarios 4 --json`` document of either layout."""
    if document.get("errors"):
        raise RuntimeError("its scenario 4 failed: %s" % str(document["errors"][0])[-1500:])
    out: Dict[str, float] = {}
    for row in document.get("rows", []):
        data = row.get("data") or {}
        if "report_task_s" in data:  # after issue 18: the echo_audit_report task
            out.update(s4_report=data["report_task_s"], s4_playbook=data["playbook_s"],
                       s4_html_mb=data["sizes"]["html"] / 1e6)
        elif "collect.yml" in (data.get("phases_s") or {}):  # before: collect.yml (matrix) + report.yml (5 formats)
            phases = data["phases_s"]
            out.update(s4_report=phases["collect.yml"] + phases.get("report.yml", 0.0), s4_playbook=row["wall_s"])
        elif "interactive" in data:
            out["s4_interactive"] = data["interactive"] / 1000.0
    for row in document.get("rows", []):
        notes = row.get("notes") or ""
        if "s4_html_mb" not in out and "ansible-playbook" in (row.get("what") or "") and "HTML " in notes:
            out["s4_html_mb"] = float(notes.rsplit("HTML ", 1)[1].split()[0])
    if "s4_report" not in out:
        raise RuntimeError("its scenario 4 gave no report step time (%s)" % ("; ".join(
            str(note) for note in document.get("notes", [])[-3:]) or "no note"))
    return out


def run_scenario4(variant: Variant, smoke: bool, workdir: Path, timeout: float) -> Dict[str, float]:
    """``python -m benchmarks.run --scenarios 4`` inside the variant's tree, bounded; its report step."""
    out = workdir / "scenario4.json"
    argv = [sys.executable, "-m", "benchmarks.run", "--scenarios", "4", "--json", str(out),
            "--workdir", str(workdir / "work")] + (["--smoke"] if smoke else [])
    env = dict(os.environ, PYTHONPATH=str(variant.tree))
    with open(workdir / "scenario4.log", "w") as log:
        child = subprocess.Popen(argv, cwd=str(variant.tree), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = child.wait(timeout=timeout)
        except BaseException:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
            raise
    if not out.exists():
        raise RuntimeError("its benchmarks/run.py --scenarios 4 exited %s without a JSON document: %s"
                           % (rc, (workdir / "scenario4.log").read_text()[-1500:]))
    # Its work directory holds 300 x 300 reports and a journal copy: only the numbers are kept.
    shutil.rmtree(workdir / "work", ignore_errors=True)
    return scenario4_report_step(json.loads(out.read_text()))


# ------------------------------------------------------------------ measuring
class Bench:
    """The peers (started once), the variants and every sample taken."""

    def __init__(self, ctx: Context, variants: List[Variant]):
        self.ctx = ctx
        self.variants = variants
        self.s3 = (2, 3) if ctx.smoke else (50, 40)
        self.n4 = 10 if ctx.smoke else 300
        self.measures = measures(self.s3, self.n4)
        self.samples: Dict[str, Dict[str, List[float]]] = {
            v.name: {m.key: [] for m in self.measures} for v in variants}
        self.s4_unmeasured: Dict[str, str] = {}
        self.unexpected: List[str] = []
        servers, counts = servers_for(ctx, self.s3[1])
        ctx.note("scenario 3: %d peers on %s" % (self.s3[1], ", ".join(
            "%s:%d x%d" % (s.kind, s.port, c) for s, c in zip(servers, counts))))
        self.peers = fleet_peers(ctx, spread(servers, counts), 0.0)

    def _add(self, variant: Variant, values: Dict[str, float]) -> None:
        for key, value in values.items():
            self.samples[variant.name][key].append(value)

    def scenario3(self, variant: Variant) -> float:
        hosts, peers = self.s3
        res = run_audit(self.ctx, self.peers, hosts, min(FORKS, hosts), label="s3-%s" % variant.name,
                        collections_root=variant.root)
        ours = variant.tree.resolve()
        paths = {(t.get("path") or "").split(":")[0] for t in res["run"].tasks() if "/roles/echo_audit/" in
                 (t.get("path") or "")}
        foreign = sorted(p for p in paths if ours not in Path(p).resolve().parents)
        if not paths or foreign:
            raise RuntimeError("%s: the echo_audit role ran from %s, not from %s" % (
                variant.name, ", ".join(foreign[:3]) or "nowhere", ours))
        checks = res["checks"] or {}
        if checks.get("total") != hosts * peers or checks.get("ok") != hosts * peers:
            self.unexpected.append("%s: scenario 3 reported %s, expected %d checks all ok" % (
                variant.name, checks or "no latest.json", hosts * peers))
        phases = res["phases_s"]
        values = {"s3_wall": res["wall_s"], "s3_plan": phases["plan"], "s3_echo": phases["echo"],
                  "s3_report": phases["report"], "s3_show": phases["show"]}
        values["s3_rest"] = res["wall_s"] - sum(phases[k] for k in ("plan", "echo", "report", "show"))
        self._add(variant, values)
        return res["wall_s"]

    def scenario4(self, variant: Variant, timeout: float) -> Optional[float]:
        if variant.name in self.s4_unmeasured:
            return None
        try:
            values = run_scenario4(variant, self.ctx.smoke, self.ctx.tmp("s4-%s-" % variant.name), timeout)
        except Exception as exc:  # noqa: BLE001 - the before commit's own harness: say why, measure after
            if variant.name != "before":
                raise
            self.s4_unmeasured[variant.name] = str(exc)[-600:]
            self.ctx.note("scenario 4 of before not measured: %s" % self.s4_unmeasured[variant.name])
            return None
        self._add(variant, values)
        return values["s4_report"]

    def run(self, repeat: int) -> List[Dict[str, Any]]:
        loads = []
        s4_timeout = 300.0 if self.ctx.smoke else 1800.0
        for index in range(repeat):
            load = loadavg()
            loads.append({"round": index + 1, "start": load})
            print("round %d/%d (load average %.2f %.2f %.2f)" % ((index + 1, repeat) + tuple(load)), flush=True)
            shown = ["%s %s s" % (v.name, fmt(self.scenario3(v))) for v in self.variants]
            print("  3 audit wall   %s" % ", ".join(shown), flush=True)
            shown = []
            for variant in self.variants:
                value = self.scenario4(variant, s4_timeout)
                shown.append("%s %s" % (variant.name, "-" if value is None else fmt(value) + " s"))
            print("  4 report step  %s" % ", ".join(shown), flush=True)
            loads[-1]["end"] = loadavg()
        return loads


# ------------------------------------------------------------------ table
def summarize(bench: Bench) -> List[Dict[str, Any]]:
    rows = []
    for m in bench.measures:
        med = {v: (statistics.median(bench.samples[v][m.key]) if bench.samples[v][m.key] else None) for v in VARIANTS}
        ratio = med["after"] / med["before"] if med["after"] is not None and med["before"] else None
        if m.check is None:
            threshold = "-"
        elif m.check[0] == "ratio":
            threshold = "<= %gx before" % m.check[1]
        else:
            threshold = "< %g %s" % (m.check[1], m.unit)
        rows.append({"key": m.key, "measurement": "%s (%s)" % (m.label, m.unit), "unit": m.unit,
                     "samples": {v: bench.samples[v][m.key] for v in VARIANTS}, "median": med, "ratio": ratio,
                     "threshold": threshold, "verdict": _verdict(m.check, med["after"], med["before"])})
    return rows


TABLE_HEADER = ["measurement", "before", "after", "after/before", "threshold (issue 18)", "verdict"]


def table(rows: List[Dict[str, Any]], before_label: str) -> str:
    """The A/B as one Markdown table (printed, and pasted into benchmarks/README.md)."""
    header = list(TABLE_HEADER)
    header[1] = "before `%s`" % before_label
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join([
            row["measurement"], _cell(row["samples"]["before"]), _cell(row["samples"]["after"]),
            "-" if row["ratio"] is None else "%.2fx" % row["ratio"], row["threshold"], row["verdict"]]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ driver
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--before", required=True, help="the commit to compare against (e.g. aef9bf1)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; --smoke: 1)")
    parser.add_argument("--json", metavar="OUT", help="write samples, table rows and machine info as JSON")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (2 hosts x 3 peers, 10x10): only checks that the harness works")
    parser.add_argument("--workdir", help="keep everything (logs, playbooks, reports, the export) here")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat takes 1 to 20")
    # What Context and the scenario helpers read: loopback only, Ansible's default forks.
    args.conditions = "loopback"
    args.delay_ms = 5.0
    args.forks = FORKS
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="dicom-ab-audit-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    info["loadavg_before"] = loadavg()
    info["mode"] = "smoke" if args.smoke else "full"
    started = time.monotonic()
    errors: List[str] = []
    rows: List[Dict[str, Any]] = []
    loads: List[Dict[str, Any]] = []
    bench: Optional[Bench] = None
    commit = ""
    after_state = ""
    ctx = Context(args, workdir)
    try:
        try:
            commit, before_root = export_commit(REPO_ROOT, args.before, workdir / "before")
            after_state = checkout_state(REPO_ROOT, ("plugins", "roles", "playbooks"))
            print("dicom.network echo_audit A/B (%s, %d round(s)): before = %s, after = this checkout (%s); host "
                  "loopback, %s, %s cores, load average %.2f %.2f %.2f"
                  % ((info["mode"], args.repeat, commit[:12], after_state, info.get("cpu"), info.get("cores"))
                     + tuple(info["loadavg_before"])), flush=True)
            variants = [Variant("before", before_root), Variant("after", ensure_collection_path())]
            bench = Bench(ctx, variants)
            loads = bench.run(args.repeat)
            rows = summarize(bench)
        except Exception:  # noqa: BLE001 - report it, exit non-zero
            errors.append(traceback.format_exc())
            print("ERROR:\n%s" % errors[-1], flush=True)
        finally:
            ctx.stop()
        info["loadavg_after"] = loadavg()
        info["duration_s"] = round(time.monotonic() - started, 1)
        for text in (bench.unexpected if bench is not None else []):
            ctx.note("unexpected outcomes: %s" % text)
        text = table(rows, commit[:7]) if rows else ""
        document = {"before": {"rev": args.before, "commit": commit}, "after": after_state, "repeat": args.repeat,
                    "where": "host loopback (127.0.0.0/8)", "rows": rows, "table": text, "loadavg_per_round": loads,
                    "scenario4_unmeasured": bench.s4_unmeasured if bench is not None else {},
                    "machine": info, "notes": ctx.notes, "errors": errors}
        publish(document, args.json)
        if errors:
            print("\nthe A/B failed: the harness is broken, not a threshold missed")
        return 1 if errors else 0
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
