"""Profile the echo engine with py-spy: where each association's wall time and CPU go.

    .venv/bin/python benchmarks/profile_engine.py --server pynetdicom --peers 200 --parallel 1
    .venv/bin/python benchmarks/profile_engine.py --server dcmqrscp --parallel 16 --delay-ms 5

Starts one benchmark server (and the delay proxy with --delay-ms), runs the engine worker
(``benchmarks.workers engine``: ``run_echoes(validate_request(params))``) twice under
``py-spy record -f raw --threads``: once with ``--idle`` (wall time: every thread's stack, sleeping
or not) and once without (CPU). Prints, per thread role, the share of samples, the top leaf
frames, and the sleep/wait sites, and keeps the raw files (flamegraph.pl input) in --out.
Nothing here is part of the benchmark run; it is the tool behind the profiling notes in README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import List, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.fleet import Fleet, module_peers  # noqa: E402
from benchmarks.workers import ensure_collection_path  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def role(thread_name: str, frames: List[str]) -> str:
    text = ";".join(frames)
    if "DULServiceProvider.run_reactor" in text:
        return "pynetdicom DUL thread"
    if "Association.run_reactor" in text or "Association._run_reactor" in text or "(run_reactor)" in thread_name:
        return "pynetdicom Association thread"
    if thread_name.startswith("dicom-echo-"):
        return "engine worker (dicom-echo-N)"
    if thread_name == "MainThread":
        return "main thread (the engine's scheduler and watchdog)"
    return "other: %s" % re.sub(r"\d+", "N", thread_name)


def parse(path: Path):
    """Yield (thread name, frames root->leaf, count) from py-spy's raw (collapsed) output."""
    for line in path.read_text().splitlines():
        stack, _sep, count = line.rpartition(" ")
        parts = stack.split(";")
        head = parts[0]
        name = head.split(": ", 1)[1] if ": " in head else "?"
        yield name, parts[1:], int(count)


def short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "ansible_collections/dicom/network/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return "%s (%s:%s)" % (match.group("func"), file, match.group("line") or "?")


def _source_line(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match or not match.group("line"):
        return ""
    path = match.group("file")
    # py-spy shortens paths: "echo_engine.py", "pynetdicom/association.py".
    candidates = [Path(path), REPO_ROOT / "plugins" / "module_utils" / path]
    try:
        import pynetdicom
        candidates.append(Path(pynetdicom.__file__).parent.parent / path)
    except ImportError:
        pass
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return ""
    try:
        with open(found) as handle:
            return handle.read().splitlines()[int(match.group("line")) - 1].strip()[:60]
    except (OSError, IndexError):
        return ""


def _is_blocking(frame: str) -> bool:
    name = frame.split(" (")[0]
    return name in ("sleep", "select", "Condition.wait", "poll", "recv", "accept", "connect") or \
        name.endswith(".wait")


def _nearest(frames: List[str], markers: Tuple[str, ...]) -> int:
    for index in range(len(frames) - 1, -1, -1):
        if any(m in frames[index] for m in markers):
            return index
    return -1


def summarize(path: Path, wall_s: float, n: int, top: int = 12) -> str:
    """Sample shares: per thread role; the worker threads' time by engine call site and by the
    pynetdicom frame under it (this is the per-association wall time); the hottest frames."""
    by_role: Counter = Counter()
    worker_sites: Counter = Counter()
    worker_detail: Counter = Counter()
    self_frames: Counter = Counter()
    areas: Counter = Counter()
    total = 0
    for name, frames, count in parse(path):
        if not frames:
            continue
        r = role(name, frames)
        by_role[r] += count
        total += count
        leaf = frames[-1]
        state = "blocked" if _is_blocking(leaf) else "running"
        self_frames["%s [%s]" % (short(leaf), r.split(" (")[0])] += count
        text = ";".join(frames)
        if "echo_engine.py" in leaf or "_pynetdicom_compat.py" in leaf or "_on_pdu_recv" in text or \
                "_on_fsm_transition" in text or "HookedSocket" in text:
            areas["engine instrumentation and bookkeeping"] += count
        elif "events.py" in text and "trigger" in text:
            areas["pynetdicom event dispatch (evt.trigger)"] += count
        elif "logging" in text:
            areas["logging"] += count
        elif "pdu" in leaf or "pdu_items" in leaf or "pdu_primitives" in leaf or "dsutils" in text:
            areas["PDU/DIMSE encode and decode"] += count
        elif state == "blocked":
            areas["blocked (sleep, wait, select)"] += count
        else:
            areas["other running Python"] += count
        if r.startswith("engine worker"):
            i = _nearest(frames, ("echo_engine.py",))
            site = "%s  `%s`" % (short(frames[i]), _source_line(frames[i])) if i >= 0 else short(frames[0])
            worker_sites[site] += count
            j = _nearest(frames, ("pynetdicom/",))
            below = short(frames[j]) if j > i else "-"
            worker_detail["%s | %s | %s %s" % (site.split("  ")[0], below, state, short(leaf).split(" (")[0])] += count
    lines = ["%s: %d samples; engine wall %.2f s for %d association(s) = %.2f ms each"
             % (path.name, total, wall_s, n, 1000.0 * wall_s / max(n, 1))]
    lines.append("  threads:")
    for r, count in by_role.most_common():
        lines.append("    %5.1f%%  %s" % (100.0 * count / max(total, 1), r))
    workers = sum(c for r, c in by_role.items() if r.startswith("engine worker"))
    if workers:
        lines.append("  engine worker threads by engine call site (share of the workers' samples):")
        for site, c in worker_sites.most_common(top):
            lines.append("    %5.1f%%  %s" % (100.0 * c / workers, site))
        lines.append("  ... and by the pynetdicom frame under it, blocked/running leaf:")
        for site, c in worker_detail.most_common(top + 4):
            lines.append("    %5.1f%%  %s" % (100.0 * c / workers, site))
    lines.append("  where the samples are (all threads):")
    for area, c in areas.most_common():
        lines.append("    %5.1f%%  %s" % (100.0 * c / max(total, 1), area))
    lines.append("  hottest leaf frames (all threads):")
    for frame, c in self_frames.most_common(top):
        lines.append("    %5.1f%%  %s" % (100.0 * c / max(total, 1), frame))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--server", choices=("pynetdicom", "dcmqrscp", "orthanc"), default="pynetdicom")
    parser.add_argument("--peers", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--stock", action="store_true",
                        help="A/B: engine on stock pynetdicom (no compat tricks): DICOM_NETWORK_STOCK_PYNETDICOM=1")
    parser.add_argument("--out", default=None, help="directory for the raw profiles (default: a tmp dir)")
    args = parser.parse_args(argv)
    ensure_collection_path()
    out = Path(args.out or tempfile.mkdtemp(prefix="engine-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(out / "fleet")
    try:
        if args.server == "pynetdicom":
            server = fleet.start_pynetdicom(args.peers)
        elif args.server == "dcmqrscp":
            server = fleet.start_dcmqrscp(args.peers)
        else:
            server = fleet.start_orthanc(args.peers)
        peers = module_peers([(server, title) for title in server.ae_titles[:args.peers]], fleet, args.delay_ms)
        spec = {"params": {"peers": peers, "parallel": args.parallel, "count": args.count, "fail_on": "never",
                           "connect_timeout": 5, "acse_timeout": 10, "dimse_timeout": 10},
                "stock": args.stock}
        (out / "in.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        for label, extra in (("wall", ["--idle"]), ("cpu", [])):
            raw = out / ("%s.txt" % label)
            result = out / ("%s-result.json" % label)
            # --nonblocking: do not pause the process per sample (pausing stretched each
            # association by ~80 % at 500 Hz).
            cmd = [str(PY_SPY), "record", "-f", "raw", "--threads", "--nonblocking", "-r", str(args.rate),
                   "-o", str(raw)] + extra + \
                  ["--", sys.executable, "-m", "benchmarks.workers", "engine", str(out / "in.json"), str(result)]
            done = subprocess.run(cmd, cwd=str(REPO_ROOT), env=env, capture_output=True, text=True, timeout=900,
                                  check=False)
            if done.returncode != 0 or not result.exists():
                print(done.stdout[-2000:], done.stderr[-2000:])
                return 1
            res = json.loads(result.read_text())
            bad = [o for o in res["outcomes"] if o != "success"]
            print("== %s profile (%s, %d peers, parallel %d, count %d, delay %g ms%s): wall %.2f s, CPU %.2f s, "
                  "%.2f ms CPU per association%s"
                  % (label, args.server, len(peers), args.parallel, args.count, args.delay_ms,
                     ", stock pynetdicom (no compat tricks)" if args.stock else "",
                     res["wall_s"], res["cpu_s"], 1000.0 * res["cpu_s"] / len(peers),
                     "; %d not success" % len(bad) if bad else ""))
            medians = {k: sorted(x for x in v if x is not None) for k, v in res["phase_ms"].items()}
            print("   median phase ms: %s" % ", ".join("%s %.2f" % (k, v[len(v) // 2]) for k, v in medians.items() if v))
            print(summarize(raw, res["wall_s"], len(peers)))
        print("raw profiles in %s (flamegraph.pl input)" % out)
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
