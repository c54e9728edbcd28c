"""Shared plumbing of the benchmark harness: result rows, targets, statistics, child workers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]


class Skip(Exception):
    """A scenario (or part of one) cannot run here; the message says why."""


@dataclass
class Row:
    scenario: str
    condition: str
    what: str
    wall_s: Optional[float] = None
    echoes: Optional[int] = None
    eps: Optional[float] = None
    p50_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    cpu_s: Optional[float] = None
    notes: str = ""
    data: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    key: str
    description: str
    measured: str
    threshold: str
    passed: Optional[bool]  # None: not measured here (skipped)
    # The best value any implementation could reach on this machine in this run, with why ("" when no
    # bound applies): a MISS whose bound misses the threshold too is out of reach here, not a defect.
    best_possible: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


def percentile(values: Iterable[Optional[float]], pct: float) -> Optional[float]:
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    rank = (len(data) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def loadavg() -> Tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


class Context:
    """What every scenario gets: options, a work directory, the shared fleet, rows and targets."""

    def __init__(self, args, workdir: Path):
        self.args = args
        self.smoke: bool = bool(args.smoke)
        self.workdir = workdir
        self.rows: List[Row] = []
        self.targets: List[Target] = []
        self.notes: List[str] = []
        self._fleet = None
        self.shared: Dict[str, Any] = {}  # servers started once and used by several scenarios
        self.delay_ms: float = args.delay_ms
        # Servers' plus proxy CPU seconds during the last peers_cpu() call (None: not measured).
        self.last_peers_cpu_s: Optional[float] = None
        self.ansible_floor: Optional[Dict[str, float]] = None  # measured on first use

    def conditions(self) -> List[Tuple[str, float]]:
        out = []
        for name in self.args.conditions.split(","):
            name = name.strip()
            if name == "loopback":
                out.append(("loopback", 0.0))
            elif name == "proxy":
                out.append(("proxy %g ms" % self.delay_ms, self.delay_ms))
        return out

    @property
    def fleet(self):
        if self._fleet is None:
            from benchmarks.fleet import Fleet
            self._fleet = Fleet(self.workdir / "fleet")
        return self._fleet

    def stop(self) -> None:
        if self._fleet is not None:
            self._fleet.stop()
            self._fleet = None
        self.shared = {}

    def row(self, **kwargs) -> Row:
        row = Row(**kwargs)
        self.rows.append(row)
        return row

    def target(self, key: str, description: str, measured: Optional[float], threshold: float,
               higher_is_better: bool, unit: str = "", bounds: Sequence[Tuple[str, float, str]] = ()) -> Target:
        """Record a target; ``bounds``: (for which client, the best value it could reach on this machine, why)."""
        def reaches(value: float) -> bool:
            return value >= threshold if higher_is_better else value < threshold

        best = "; ".join("%s: %.3g%s (%s)%s" % (who, value, unit, why, "" if reaches(value) else ", out of reach")
                         for who, value, why in bounds)
        if measured is None:
            target = Target(key, description, "-", "%s %g%s" % (">=" if higher_is_better else "<", threshold, unit),
                            None, best)
        else:
            target = Target(key, description, "%.3g%s" % (measured, unit),
                            "%s %g%s" % (">=" if higher_is_better else "<", threshold, unit), reaches(measured), best)
        self.targets.append(target)
        return target

    def peers_cpu(self, fn, *args, **kwargs):
        """Run ``fn`` and return (its result, "peers CPU ..." text): the CPU the servers and the
        delay proxy spent meanwhile -- on this machine they share the cores with the client."""
        before = self._fleet.cpu_s() if self._fleet is not None else None
        self.last_peers_cpu_s = None
        result = fn(*args, **kwargs)
        if before is None or self._fleet is None:
            return result, ""
        after = self._fleet.cpu_s()
        self.last_peers_cpu_s = (after["servers"] - before["servers"]) + (after["proxy"] - before["proxy"])
        text = "peers CPU %.1f s" % (after["servers"] - before["servers"])
        if after["proxy"] - before["proxy"] > 0.05:
            text += ", proxy CPU %.1f s" % (after["proxy"] - before["proxy"])
        return result, text

    def ansible_floor_s(self) -> float:
        """ansible-playbook with one ping task, fastest of 3, measured once per run (and shown as a row)."""
        if self.ansible_floor is None:
            from benchmarks.ansible_runner import ansible_floor
            floor = self.ansible_floor = ansible_floor(self.tmp("ansible-floor-"), runs=1 if self.smoke else 3)
            self.row(scenario="floor", condition="-", what="ansible-playbook with one ansible.builtin.ping task "
                     "(local connection), fastest of %d" % floor["runs"], wall_s=floor["min_s"],
                     notes="slowest %.2f s; what any module call costs here before doing anything" % floor["max_s"],
                     data=floor)
        return self.ansible_floor["min_s"]

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("  note: %s" % text, flush=True)

    def tmp(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=str(self.workdir)))

    def worker(self, kind: str, spec: Dict[str, Any], timeout: float = 900.0) -> Dict[str, Any]:
        """Run ``benchmarks.workers <kind>`` in a fresh interpreter and return its JSON answer."""
        return self._child(["benchmarks.workers", kind], kind, spec, timeout)

    def worker_module(self, module: str, spec: Dict[str, Any], timeout: float = 900.0) -> Dict[str, Any]:
        """Run ``python -m <module> IN OUT`` in a fresh interpreter and return its JSON answer."""
        return self._child([module], module.rsplit(".", 1)[-1], spec, timeout)

    def _child(self, module_argv: List[str], label: str, spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
        wd = self.tmp("worker-%s-" % label)
        (wd / "in.json").write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        done = subprocess.run([sys.executable, "-m"] + module_argv + [str(wd / "in.json"), str(wd / "out.json")],
                              cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or not (wd / "out.json").exists():
            raise RuntimeError("%s failed (rc %s): %s" % (" ".join(module_argv), done.returncode, done.stderr[-2000:]))
        return json.loads((wd / "out.json").read_text())


def to_jsonable(rows: Sequence[Row], targets: Sequence[Target]) -> Dict[str, Any]:
    return {"rows": [asdict(r) for r in rows],
            "targets": [dict(asdict(t), verdict=t.verdict) for t in targets]}


def fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return "%.0f" % value
    return ("%%.%df" % digits) % value


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (printed, and pasted into benchmarks/README.md)."""
    header = ["scenario", "condition", "measurement", "wall s", "echoes", "echo/s", "p50 ms", "p95 ms",
              "CPU s", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r.scenario, r.condition, r.what, fmt(r.wall_s), "-" if r.echoes is None else str(r.echoes),
            fmt(r.eps, 0), fmt(r.p50_ms, 1), fmt(r.p95_ms, 1), fmt(r.cpu_s), r.notes.replace("|", "/")]) + " |")
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    header = ["target", "what", "measured", "threshold", "verdict", "best possible on this machine"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    for t in targets:
        lines.append("| " + " | ".join([t.key, t.description, t.measured, t.threshold, t.verdict,
                                        t.best_possible or "-"]) + " |")
    return "\n".join(lines)


def machine_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": sys.version.split()[0]}
    try:
        info["kernel"] = os.uname().release
        info["host"] = os.uname().nodename
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu"] = "%s x %d" % (models[0], len(models)) if models else "?"
    except OSError:
        info["cpu"] = "?"
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as handle:
            total = next(line for line in handle if line.startswith("MemTotal"))
        info["memory_gb"] = round(int(total.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    try:
        with open("/etc/os-release") as handle:
            pretty = [line.split("=", 1)[1].strip().strip('"') for line in handle if line.startswith("PRETTY_NAME")]
        info["os"] = pretty[0] if pretty else "?"
    except OSError:
        pass
    versions = {}
    for module in ("pynetdicom", "pydicom", "ansible"):
        try:
            mod = __import__(module + ".release" if module == "ansible" else module, fromlist=["x"])
            versions[module] = getattr(mod, "__version__", "?")
        except Exception:  # noqa: BLE001 - informational only
            versions[module] = "missing"
    info["versions"] = versions
    return info
