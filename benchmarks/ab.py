"""A/B of the echo engine against an earlier commit: one run, one machine, the same peers.

    .venv/bin/python benchmarks/ab.py --before c18b7b6                   # full size, 3 rounds
    .venv/bin/python benchmarks/ab.py --before c18b7b6 --repeat 5 --json ab.json
    .venv/bin/python benchmarks/ab.py --before HEAD --smoke              # tiny: checks the harness

Variants, each against the same peers (started once):

``before``       the collection at ``--before``, exported with ``git archive | tar -x`` into a
                 temporary ``ansible_collections/dicom/network`` (read-only: the work tree and the
                 git state are never touched);
``after``        this checkout, as it is on disk (uncommitted changes included: the header says so);
``after-stock``  this checkout with ``DICOM_NETWORK_STOCK_PYNETDICOM=1``: every speed trick of
                 ``_pynetdicom_compat`` off, the floor a pynetdicom upgrade can fall to.

Measurements (issue 19's thresholds in brackets):

* scenario 1's 500 peers through ``ansible-playbook`` (one ``dicom.network.echo`` task, local
  connection), on loopback [after <= 1.25 x before] and through the 5 ms delay proxy
  [after <= 1.10 x before]; the engine's own time inside the module is shown beside them;
* scenario 2's 100 peers of which 20 never answer, timeouts 3 s: the engine in a fresh
  interpreter (``benchmarks.workers engine``), parallel 16, mixed order, and the module's engine
  time (``summary.duration_ms``) through ansible-playbook [both < 1.3 x the timeout];
* the module process's peak memory (VmHWM, as scenario 5 measures it) with 500 peers [< 80 MB].
  An engine that forks (``before`` from 64 peers) is charged the larger of the two processes.

The variants alternate: for each round and each measurement, before, after, after-stock. The
table gives the median and, with more than one round, min-max; the ratios are of the medians.
Everything runs inside a network namespace the script creates (scenario 2's: its own loopback,
a blackholed address, no default route), so scenario 2's 20 peers are 7 silent, 7 dripping and 6
blackholed as in run.py; where namespaces are not available (or with --no-netns) it runs on the
host's loopback with 10 silent and 10 dripping peers, and says so. A missed threshold never fails
the run; a broken harness does (exit 1).
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
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import Context, fmt, loadavg, machine_info  # noqa: E402
from benchmarks.fleet import module_peers, spread  # noqa: E402
from benchmarks.scenario1 import FULL_PEERS, SMOKE_PEERS, TIMEOUTS, run_module, servers_for  # noqa: E402
from benchmarks.scenario2 import BLACKHOLE, Peers, _sizes, blackhole_namespace, params_for  # noqa: E402
from benchmarks.scenario5 import module_peak_mb  # noqa: E402
from tests.collection_path import ensure_collection_path  # noqa: E402
from tests.peers.netns import NetnsUnavailable  # noqa: E402

STOCK_ENV = "DICOM_NETWORK_STOCK_PYNETDICOM"
VARIANTS = ("before", "after", "after-stock")
S2_PARALLEL = 16


@dataclass
class Variant:
    name: str
    root: Path  # the ansible_collections root dicom.network is loaded from
    stock: bool = False

    def env(self) -> Dict[str, str]:
        return {STOCK_ENV: "1"} if self.stock else {}

    def is_ours(self, path: str, relative: str) -> bool:
        """Whether ``path`` is ``relative`` (a file of the collection) under this variant's root."""
        return Path(path).resolve() == (self.root / "ansible_collections" / "dicom" / "network" / relative).resolve()


@dataclass
class Measure:
    key: str
    label: str
    unit: str
    # ("ratio", x): after <= x * before; ("below", x): after < x; None: shown, not judged.
    check: Optional[Tuple[str, float]] = None


def measures(n1: int, s2: Dict[str, int], delay_ms: float) -> List[Measure]:
    """The table's rows, in order, labelled with this run's sizes."""
    s2_what = "%d peers, %d never answer, timeouts %g s" % (
        s2["total"], s2["silent"] + s2["drip"] + s2["blackhole"], s2["timeout"])
    return [
        Measure("s1_loopback", "1: %d peers, ansible-playbook wall, loopback" % n1, "s", ("ratio", 1.25)),
        Measure("s1_loopback_engine", "1: %d peers, engine time in the module, loopback" % n1, "s"),
        Measure("s1_proxy", "1: %d peers, ansible-playbook wall, proxy %g ms" % (n1, delay_ms), "s", ("ratio", 1.10)),
        Measure("s1_proxy_engine", "1: %d peers, engine time in the module, proxy %g ms" % (n1, delay_ms), "s"),
        Measure("s2_engine", "2: %s: engine wall, parallel %d, mixed order" % (s2_what, S2_PARALLEL), "s"),
        Measure("s2_engine_ratio", "2: engine wall / timeout", "x", ("below", 1.3)),
        Measure("s2_module_ratio", "2: module's engine time (summary.duration_ms) / timeout", "x", ("below", 1.3)),
        Measure("memory_mb", "5: module process peak memory (VmHWM), %d peers" % n1, "MB", ("below", 80.0)),
    ]


# ------------------------------------------------------------------ git (read-only)
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "--no-optional-locks", "-C", str(repo)] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError("git %s failed: %s" % (" ".join(args), done.stderr.strip()))
    return done.stdout.strip()


def export_commit(repo: Path, rev: str, dest: Path) -> Tuple[str, Path]:
    """``git archive <rev> | tar -x`` into ``dest/ansible_collections/dicom/network``; returns
    (the full commit id, the collections root ``dest``)."""
    commit = _git(repo, "rev-parse", "--verify", "%s^{commit}" % rev)
    target = dest / "ansible_collections" / "dicom" / "network"
    target.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", commit], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        untar = subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, capture_output=True,
                               timeout=300, check=False)
    finally:
        archive.stdout.close()
        archive_rc = archive.wait(timeout=60)
    if archive_rc != 0 or untar.returncode != 0:
        raise RuntimeError("git archive %s | tar -x failed (%s, %s): %s %s" % (
            commit, archive_rc, untar.returncode, archive.stderr.read().decode(errors="replace"),
            untar.stderr.decode(errors="replace")))
    archive.stderr.close()
    if not (target / "plugins" / "modules" / "echo.py").is_file():
        raise RuntimeError("commit %s has no plugins/modules/echo.py" % commit)
    return commit, dest


def checkout_state(repo: Path, paths: Tuple[str, ...] = ("plugins",)) -> str:
    """HEAD, and whether what the benchmark measures (``paths``) has uncommitted changes."""
    head = _git(repo, "rev-parse", "--short", "HEAD")
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", *paths)
    return "HEAD %s%s" % (head, ", with uncommitted changes under %s" % ", ".join(p + "/" for p in paths)
                          if changed else "")


def module_file(root: Path, workdir: Path) -> str:
    """Where ansible-playbook finds dicom.network.echo with this collections root (ansible-doc)."""
    config = workdir / "ansible-doc.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="0",
               ANSIBLE_CONFIG=str(config), ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-local"))
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "module", "dicom.network.echo",
                           "--json"], cwd=str(workdir), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError("ansible-doc dicom.network.echo under %s failed: %s" % (root, done.stderr[-2000:]))
    return json.loads(done.stdout)["dicom.network.echo"]["doc"]["filename"]


# ------------------------------------------------------------------ measuring
class Bench:
    """The peers (started once), the variants, and every sample taken."""

    def __init__(self, ctx: Context, variants: List[Variant], blackhole: Optional[str]):
        self.ctx = ctx
        self.variants = variants
        smoke = ctx.smoke
        self.n1 = SMOKE_PEERS if smoke else FULL_PEERS
        self.s2 = _sizes(smoke, blackhole is not None)
        self.measures = measures(self.n1, self.s2, ctx.delay_ms)
        self.samples: Dict[str, Dict[str, List[float]]] = {
            v.name: {m.key: [] for m in self.measures} for v in variants}
        self.outcomes: Dict[str, List[str]] = {v.name: [] for v in variants}
        servers, counts = servers_for(ctx, self.n1)
        pairs = spread(servers, counts)
        ctx.note("scenario 1: %d peers on %s" % (self.n1, ", ".join(
            "%s:%d x%d" % (s.kind, s.port, c) for s, c in zip(servers, counts))))
        self.s1_loopback = module_peers(pairs, ctx.fleet, 0)
        self.s1_proxy = module_peers(pairs, ctx.fleet, ctx.delay_ms)
        s2_peers = Peers(ctx, self.s2, blackhole)
        ctx.note("scenario 2: %s" % s2_peers.description)
        self.s2_mixed, _worst = s2_peers.orders(0)
        self.s2_good = s2_peers.good
        self.s1_params = dict(TIMEOUTS, fail_on="never")
        self.s2_params = params_for(self.s2["timeout"])

    def steps(self) -> List[Tuple[str, Callable[[Variant], Dict[str, float]]]]:
        return [("1 loopback", self._s1_loopback), ("1 proxy", self._s1_proxy), ("2 engine", self._s2_engine),
                ("2 module", self._s2_module), ("5 memory", self._memory)]

    def _module(self, variant: Variant, peers, params, label: str, expect_ok: int, memory: bool = False):
        run_, digest, split = run_module(self.ctx, peers, params, memory=memory, label="%s-%s" % (label, variant.name),
                                         collections_root=variant.root, env=variant.env())
        self._check_outcomes(variant, label, digest["outcomes"], expect_ok)
        return run_, split

    def _check_outcomes(self, variant: Variant, label: str, outcomes: List[str], expected_ok: int) -> None:
        """Keep a note when a run echoed fewer peers than it should: its time is not comparable."""
        ok = sum(1 for o in outcomes if o == "success")
        if ok != expected_ok:
            counts: Dict[str, int] = {}
            for outcome in outcomes:
                counts[outcome] = counts.get(outcome, 0) + 1
            self.outcomes[variant.name].append("%s: %d success, expected %d (%s)" % (
                label, ok, expected_ok, ", ".join("%s %d" % item for item in sorted(counts.items()))))

    def _s1_loopback(self, variant: Variant) -> Dict[str, float]:
        run_, split = self._module(variant, self.s1_loopback, self.s1_params, "1-loopback", self.n1)
        return {"s1_loopback": run_.wall_s, "s1_loopback_engine": split["engine_s"]}

    def _s1_proxy(self, variant: Variant) -> Dict[str, float]:
        run_, split = self._module(variant, self.s1_proxy, self.s1_params, "1-proxy", self.n1)
        return {"s1_proxy": run_.wall_s, "s1_proxy_engine": split["engine_s"]}

    def _s2_engine(self, variant: Variant) -> Dict[str, float]:
        res = self.ctx.worker("engine", {"params": dict(self.s2_params, peers=self.s2_mixed, parallel=S2_PARALLEL),
                                         "stock": variant.stock, "collections_root": str(variant.root)})
        if not variant.is_ours(res["engine_file"], "plugins/module_utils/echo_engine.py"):
            raise RuntimeError("%s: the engine came from %s, not from %s" % (variant.name, res["engine_file"],
                                                                             variant.root))
        self._check_outcomes(variant, "2-engine", res["outcomes"], self.s2_good)
        return {"s2_engine": res["wall_s"], "s2_engine_ratio": res["wall_s"] / self.s2["timeout"]}

    def _s2_module(self, variant: Variant) -> Dict[str, float]:
        _run, split = self._module(variant, self.s2_mixed, dict(self.s2_params, parallel=S2_PARALLEL), "2-module",
                                   self.s2_good)
        return {"s2_module_ratio": split["engine_s"] / self.s2["timeout"]}

    def _memory(self, variant: Variant) -> Dict[str, float]:
        run_, _split = self._module(variant, self.s1_loopback, self.s1_params, "5-memory", self.n1, memory=True)
        peak_mb, _records = module_peak_mb(run_)
        if peak_mb is None:
            raise RuntimeError("%s: the module's peak memory was not recorded" % variant.name)
        return {"memory_mb": peak_mb}

    def run(self, repeat: int) -> List[Dict[str, Any]]:
        """Every round: every step, the variants one after another. Returns the load per round."""
        loads = []
        for index in range(repeat):
            load = loadavg()
            loads.append({"round": index + 1, "start": load})
            print("round %d/%d (load average %.2f %.2f %.2f)" % ((index + 1, repeat) + tuple(load)), flush=True)
            for label, step in self.steps():
                shown = []
                for variant in self.variants:
                    values = step(variant)
                    for key, value in values.items():
                        self.samples[variant.name][key].append(value)
                    first = next(iter(values.values()))
                    shown.append("%s %s" % (variant.name, fmt(first)))
                print("  %-10s %s" % (label, ", ".join(shown)), flush=True)
            loads[-1]["end"] = loadavg()
        return loads


# ------------------------------------------------------------------ table
def _cell(values: List[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return fmt(median)
    return "%s (%s-%s)" % (fmt(median), fmt(min(values)), fmt(max(values)))


def publish(document: Dict[str, Any], json_path: Optional[str]) -> None:
    """Write an A/B document as JSON (when asked) and print its table, notes, machine and load averages."""
    if json_path:
        Path(json_path).write_text(json.dumps(document, indent=2, default=str))
    info, loads = document["machine"], document["loadavg_per_round"]
    print()
    if document["table"]:
        print(document["table"])
        print()
    for note in document["notes"]:
        print("note: %s" % note)
    print("machine: %s, %s cores, %s GB, %s, Python %s, pynetdicom %s, ansible-core %s"
          % (info.get("cpu"), info.get("cores"), info.get("memory_gb"), info.get("os"), info.get("python"),
             info["versions"].get("pynetdicom"), info["versions"].get("ansible")))
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f; per round (1 min, start/end): %s; %.0f s in all"
          % (tuple(info["loadavg_before"]) + tuple(info["loadavg_after"]) + (", ".join(
              "%.1f/%.1f" % (load["start"][0], load.get("end", load["start"])[0]) for load in loads) or "-",
              info["duration_s"])))


def _verdict(check: Optional[Tuple[str, float]], value: Optional[float], before: Optional[float]) -> str:
    if check is None or value is None:
        return "-"
    kind, limit = check
    if kind == "ratio":
        if not before:
            return "-"
        return "PASS" if value / before <= limit else "MISS"
    return "PASS" if value < limit else "MISS"


def summarize(bench: Bench) -> List[Dict[str, Any]]:
    """Per measurement: every sample, the medians, their ratios to ``before`` and the verdicts."""
    rows = []
    for m in bench.measures:
        med = {v: (statistics.median(bench.samples[v][m.key]) if bench.samples[v][m.key] else None)
               for v in VARIANTS}
        ratio = {v: (med[v] / med["before"] if med[v] is not None and med["before"] else None)
                 for v in ("after", "after-stock")}
        if m.check is None:
            threshold = "-"
        elif m.check[0] == "ratio":
            threshold = "<= %gx before" % m.check[1]
        else:
            threshold = "< %g%s" % (m.check[1], "x" if m.unit == "x" else " " + m.unit)
        rows.append({
            "key": m.key, "measurement": "%s (%s)" % (m.label, m.unit), "unit": m.unit,
            "samples": {v: bench.samples[v][m.key] for v in VARIANTS}, "median": med, "ratio": ratio,
            "threshold": threshold,
            "verdict": {v: _verdict(m.check, med[v], med["before"]) for v in ("after", "after-stock")},
        })
    return rows


TABLE_HEADER = ["measurement", "before", "after", "after-stock", "after/before", "stock/before",
                "threshold (issue 19)", "after", "after-stock (floor)"]


def table(rows: List[Dict[str, Any]], bench: Bench, before_label: str) -> str:
    """The A/B as one Markdown table (printed, and pasted into benchmarks/README.md)."""
    header = list(TABLE_HEADER)
    header[1] = "before `%s`" % before_label
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join([
            row["measurement"], _cell(bench.samples["before"][row["key"]]), _cell(bench.samples["after"][row["key"]]),
            _cell(bench.samples["after-stock"][row["key"]]),
            "-" if row["ratio"]["after"] is None else "%.2fx" % row["ratio"]["after"],
            "-" if row["ratio"]["after-stock"] is None else "%.2fx" % row["ratio"]["after-stock"],
            row["threshold"], row["verdict"]["after"], row["verdict"]["after-stock"]]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ driver
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--before", required=True, help="the commit to compare against (e.g. c18b7b6)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3; --smoke: 1)")
    parser.add_argument("--json", metavar="OUT", help="write samples, table rows and machine info as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that the harness works")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="one-way delay of the proxy (default 5)")
    parser.add_argument("--no-netns", action="store_true",
                        help="run on the host's loopback (scenario 2 then has no blackholed peers)")
    parser.add_argument("--workdir", help="keep everything (logs, playbooks, the export) here instead of a tmp dir")
    # Internal: the run inside the namespace gets the export and the commit from its parent.
    parser.add_argument("--in-netns", metavar="BLACKHOLE_ADDR", help=argparse.SUPPRESS)
    parser.add_argument("--before-tree", help=argparse.SUPPRESS)
    parser.add_argument("--before-commit", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 3
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat takes 1 to 50")
    # What Context and the scenario helpers read.
    args.conditions = "loopback,proxy"
    return args


def child_bound_s(args) -> float:
    """The longest the measuring process may take: generous, but finite."""
    return 600.0 + args.repeat * (300.0 if args.smoke else 1200.0)


def main(argv=None) -> int:
    """Export ``--before``, then measure inside a namespace of ours (or on the host's loopback)."""
    args = parse_args(argv)
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="dicom-ab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    if os.environ.pop(STOCK_ENV, None) is not None:
        notes.append("%s was set in the environment: removed, only after-stock sets it" % STOCK_ENV)
    try:
        if args.in_netns:
            return measure(args, workdir, Path(args.before_tree), args.before_commit, args.in_netns, notes)
        commit, before_root = export_commit(REPO_ROOT, args.before, workdir / "before")
        if args.no_netns:
            notes.append("--no-netns: on the host's loopback, scenario 2 without blackholed peers")
            return measure(args, workdir, before_root, commit, None, notes)
        try:
            ns = blackhole_namespace(prefix="dnab")
        except NetnsUnavailable as exc:
            notes.append("network namespaces not available (%s): on the host's loopback, scenario 2 without "
                         "blackholed peers" % exc)
            return measure(args, workdir, before_root, commit, None, notes)
        try:
            return _in_namespace(args, ns.name, workdir, before_root, commit, notes)
        finally:
            ns.delete()
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _in_namespace(args, ns_name: str, workdir: Path, before_root: Path, commit: str, notes: List[str]) -> int:
    """Run this script again inside namespace ``ns_name`` (its output streams through), bounded."""
    argv = [shutil.which("ip") or "ip", "netns", "exec", ns_name, sys.executable, str(Path(__file__).resolve()),
            "--before", args.before, "--repeat", str(args.repeat), "--delay-ms", str(args.delay_ms),
            "--workdir", str(workdir / "netns"), "--in-netns", BLACKHOLE, "--before-tree", str(before_root),
            "--before-commit", commit]
    if args.smoke:
        argv.append("--smoke")
    if args.json:
        argv += ["--json", str(Path(args.json).resolve())]
    for note in notes:
        print("note: %s" % note, flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen(argv, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return child.wait(timeout=child_bound_s(args))
    except BaseException:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        raise


def measure(args, workdir: Path, before_root: Path, commit: str, blackhole: Optional[str],
            notes: List[str]) -> int:
    """Start the peers, take every sample, print the table (and write the JSON); 1 if the harness broke."""
    after_root = ensure_collection_path()
    variants = [Variant("before", before_root), Variant("after", after_root), Variant("after-stock", after_root, True)]
    info = machine_info()
    info["loadavg_before"] = loadavg()
    info["mode"] = "smoke" if args.smoke else "full"
    after_state = checkout_state(REPO_ROOT)
    print("dicom.network A/B (%s, %d round(s)): before = %s, after = this checkout (%s); %s on %s, %s cores, "
          "load average %.2f %.2f %.2f" % ((info["mode"], args.repeat, commit[:12], after_state,
                                            "inside network namespace" if blackhole else "host loopback",
                                            info.get("cpu"), info.get("cores")) + tuple(info["loadavg_before"])),
          flush=True)
    ctx = Context(args, workdir)
    for note in notes:
        ctx.note(note)
    started = time.monotonic()
    errors: List[str] = []
    rows: List[Dict[str, Any]] = []
    loads: List[Dict[str, Any]] = []
    bench = None
    try:
        for variant in variants:
            path = module_file(variant.root, ctx.tmp("ansible-doc-%s-" % variant.name))
            if not variant.is_ours(path, "plugins/modules/echo.py"):
                raise RuntimeError("%s: ansible-playbook would run %s, not the module under %s"
                                   % (variant.name, path, variant.root))
        bench = Bench(ctx, variants, blackhole)
        loads = bench.run(args.repeat)
        rows = summarize(bench)
    except Exception:  # noqa: BLE001 - report it, exit non-zero
        errors.append(traceback.format_exc())
        print("ERROR:\n%s" % errors[-1], flush=True)
    finally:
        ctx.stop()
    info["loadavg_after"] = loadavg()
    info["duration_s"] = round(time.monotonic() - started, 1)
    for variant, found in (bench.outcomes.items() if bench is not None else []):
        for text in found:
            ctx.note("%s, unexpected outcomes: %s" % (variant, text))
    text = table(rows, bench, commit[:7]) if bench is not None and rows else ""
    document = {"before": {"rev": args.before, "commit": commit}, "after": after_state, "repeat": args.repeat,
                "where": "network namespace, blackhole %s" % blackhole if blackhole else "host loopback",
                "rows": rows, "table": text, "loadavg_per_round": loads, "machine": info, "notes": ctx.notes,
                "errors": errors}
    publish(document, args.json)
    if errors:
        print("\nthe A/B failed: the harness is broken, not a threshold missed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
