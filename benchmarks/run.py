"""Performance benchmarks of dicom.network: run the scenarios, print a results table and
PASS/MISS per target (a miss never fails the run; a broken harness does).

    .venv/bin/python benchmarks/run.py                     # every scenario, full size
    .venv/bin/python benchmarks/run.py --scenarios 1,5 --json out.json
    .venv/bin/python benchmarks/run.py --smoke             # tiny: checks the harness (< 60 s)

Scenarios: 1 many peers, 2 unreachable peers, 3 fleet audit through the echo_audit role,
4 report rendering at scale (+ headless Chromium), 5 per-association cost and module memory.
Each network scenario runs on plain loopback and through the delay proxy (--conditions).
All traffic stays on 127.0.0.0/8 or inside a network namespace the benchmark creates.
See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import Context, Skip, loadavg, machine_info, table, targets_table, to_jsonable  # noqa: E402
from benchmarks.workers import ensure_collection_path  # noqa: E402

SCENARIOS = {
    1: ("many peers", "benchmarks.scenario1"),
    2: ("unreachable peers", "benchmarks.scenario2"),
    3: ("fleet audit (echo_audit role)", "benchmarks.scenario3"),
    4: ("report rendering at scale", "benchmarks.scenario4"),
    5: ("per-association cost and memory", "benchmarks.scenario5"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that the harness works")
    parser.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated scenario numbers")
    parser.add_argument("--json", metavar="OUT", help="write rows, targets and machine info as JSON")
    parser.add_argument("--conditions", default=None,
                        help="network conditions: loopback and/or proxy (default both; --smoke: proxy only, "
                             "which exercises the proxy as well)")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="one-way delay of the proxy (default 5)")
    parser.add_argument("--forks", type=int, default=5, help="Ansible forks in scenario 3 (default 5, as Ansible)")
    parser.add_argument("--workdir", help="keep everything (logs, reports, playbooks) here instead of a tmp dir")
    # Internal: scenario 2 re-runs itself inside a network namespace it created.
    parser.add_argument("--in-netns", metavar="BLACKHOLE_ADDR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.conditions is None:
        args.conditions = "proxy" if args.smoke else "loopback,proxy"
    bad = [c for c in args.conditions.split(",") if c.strip() not in ("loopback", "proxy")]
    if bad or not args.conditions.strip():
        parser.error("--conditions takes loopback and/or proxy, got %r" % args.conditions)
    try:
        args.scenario_list = [int(x) for x in args.scenarios.split(",") if x.strip()]
    except ValueError:
        parser.error("--scenarios takes numbers, e.g. 1,2")
    unknown = [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario(s) %s; known: %s" % (unknown, sorted(SCENARIOS)))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    ensure_collection_path()
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="dicom-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, workdir)
    info = machine_info()
    info["loadavg_before"] = loadavg()
    info["mode"] = "smoke" if args.smoke else "full"
    started = time.monotonic()
    errors = []
    skipped = []
    if not args.in_netns:
        print("dicom.network benchmarks (%s) on %s, %s cores, load average %.2f %.2f %.2f"
              % (info["mode"], info.get("cpu"), info.get("cores"), *info["loadavg_before"]), flush=True)
    try:
        import importlib
        for number in args.scenario_list:
            title, module_name = SCENARIOS[number]
            t0 = time.monotonic()
            load_start = loadavg()
            print("== scenario %d: %s (load average %.2f)" % (number, title, load_start[0]), flush=True)
            try:
                importlib.import_module(module_name).run(ctx)
            except Skip as exc:
                skipped.append("scenario %d skipped: %s" % (number, exc))
                print("   SKIPPED: %s" % exc, flush=True)
            except Exception:  # noqa: BLE001 - report it, run the other scenarios, exit non-zero
                errors.append("scenario %d failed:\n%s" % (number, traceback.format_exc()))
                print("   ERROR:\n%s" % traceback.format_exc(), flush=True)
            load_end = loadavg()
            info.setdefault("loadavg_per_scenario", {})[number] = {"start": load_start, "end": load_end}
            print("   (%.1f s, load average %.2f at the end)" % (time.monotonic() - t0, load_end[0]), flush=True)
    finally:
        ctx.stop()
    info["loadavg_after"] = loadavg()
    info["duration_s"] = round(time.monotonic() - started, 1)

    document = dict(to_jsonable(ctx.rows, ctx.targets), machine=info, notes=ctx.notes + skipped,
                    errors=errors)
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2, default=str))
    if args.in_netns:
        return 1 if errors else 0

    print()
    print(table(ctx.rows))
    print()
    print(targets_table(ctx.targets))
    print()
    for note in ctx.notes + skipped:
        print("note: %s" % note)
    print("machine: %s, %s cores, %s GB, %s, Python %s, pynetdicom %s, ansible-core %s"
          % (info.get("cpu"), info.get("cores"), info.get("memory_gb"), info.get("os"), info.get("python"),
             info["versions"].get("pynetdicom"), info["versions"].get("ansible")))
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f; %.0f s in all"
          % (*info["loadavg_before"], *info["loadavg_after"], info["duration_s"]))
    per = info.get("loadavg_per_scenario", {})
    if per:
        print("1-minute load average at the start/end of each scenario: %s" % ", ".join(
            "%d: %.1f/%.1f" % (k, v["start"][0], v["end"][0]) for k, v in sorted(per.items())))
    if errors:
        print("\n%d scenario(s) failed: the harness is broken, not a target missed" % len(errors))
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
