"""The merge of sliced runs (issue 25): 3 slice reports of 100 source hosts x 40 peers each, synthetic results,
merged into the fleet's report. Target: under 5 s for the merge as the merge playbook's report step does it.

    .venv/bin/python -m benchmarks.merge [--hosts 300] [--peers 40] [--slices 3] [--playbook] [--json out.json]

Rows: the slices' JSON reports read and merged in memory (``audit_merge.read_reports`` + ``merge_reports``);
the whole report step of a merge (``audit_run.merge_run``: read, merge, every format written, verdict); and with
``--playbook`` the playbook ``dicom.network.merge`` (ansible-playbook start-up included). The merged report is
checked against the report of one play over all hosts (times and the run section aside): a benchmark of a
wrong merge would be worthless.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from benchmarks.common import Row, Target, table, targets_table, to_jsonable
from benchmarks.synthetic import audit_reports
from benchmarks.workers import REPO_ROOT, ensure_collection_path

TEMPLATES = str(REPO_ROOT / "roles" / "echo_audit" / "templates")
TARGET_S = 5.0


def _normalised(report: Any) -> Dict[str, Any]:
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import unpack_report
    full = unpack_report(report)
    for key in ("generated_at", "started_at", "run"):
        full.pop(key, None)
    return full


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=300, help="source hosts in all (default 300)")
    parser.add_argument("--peers", type=int, default=40, help="peers per source host (default 40)")
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--playbook", action="store_true", help="also time ansible-playbook dicom.network.merge")
    parser.add_argument("--json", help="write the rows and targets here")
    args = parser.parse_args(argv)
    collections = ensure_collection_path()
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import merge_reports, read_reports
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import render_reports
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_run import check_options, merge_run

    reports = audit_reports(args.hosts, args.peers, args.slices, run_id="bench-merge")
    rows: List[Row] = []
    size = "%d x %d hosts x %d peers" % (args.slices, args.hosts // args.slices, args.peers)
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as workdir:
        paths = []
        for number, report in enumerate(reports["slices"], start=1):
            path = Path(workdir) / ("slice-%d.json" % number)
            # What a slice's report step writes: the JSON format of its report.
            path.write_text(render_reports(report, ["json"], TEMPLATES)["json"])
            paths.append(str(path))
        cells = sum(len(report["packed_cells"]) for report in reports["slices"])

        started = time.monotonic()
        merged = merge_reports(read_reports(paths), "2025-01-01T00:00:00Z")
        in_memory = time.monotonic() - started
        if _normalised(merged) != _normalised(reports["whole"]):
            print("the merged report differs from the single play's report", file=sys.stderr)
            return 1
        rows.append(Row("merge", "in process", "read %d slice JSON reports + merge (%s)" % (args.slices, size),
                        wall_s=in_memory, notes="%d cells, equal to one play's report" % cells))

        options, errors = check_options({"report_dir": os.path.join(workdir, "fleet"), "report_prefix": "echo-audit",
                                         "report_formats": ["json", "html", "md", "csv", "junit"]})
        assert not errors, errors
        os.makedirs(options["report_dir"], mode=0o750)
        started = time.monotonic()
        outcome = merge_run(paths, options, TEMPLATES)
        step = time.monotonic() - started
        rows.append(Row("merge", "in process", "report step of a merge: read, merge, 5 formats written, verdict",
                        wall_s=step, notes="audit_run.merge_run"))
        wall = None
        if args.playbook:
            command = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO_ROOT / "playbooks" / "merge.yml"),
                       "-e", "echo_audit_report_dir=%s" % os.path.join(workdir, "playbook"),
                       "-e", json.dumps({"echo_audit_merge_reports": paths, "echo_audit_fail_on_unexpected": False})]
            started = time.monotonic()
            completed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False,
                                       env=dict(os.environ, ANSIBLE_NOCOLOR="1",
                                                ANSIBLE_COLLECTIONS_PATH=str(collections)))
            wall = time.monotonic() - started
            if completed.returncode != 0:
                print(completed.stdout[-3000:], completed.stderr[-2000:], file=sys.stderr)
                return 1
            rows.append(Row("merge", "ansible-playbook", "ansible-playbook dicom.network.merge (start-up included)",
                            wall_s=wall, notes="local, no inventory"))
    targets = [Target("merge", "report step of a merge, %s" % size, "%.2f s" % step, "< %.0f s" % TARGET_S,
                      step < TARGET_S)]
    if wall is not None:
        targets.append(Target("merge-playbook", "ansible-playbook dicom.network.merge, %s" % size, "%.2f s" % wall,
                              "< %.0f s" % TARGET_S, wall < TARGET_S))
    print(table(rows))
    print()
    print(targets_table(targets))
    print()
    # The merged report's summary, without its not-ok lines (synthetic failures, one per line).
    print("\n".join(line for line in outcome["lines"] if not line.startswith(("NOT OK", "NOT RUN", "... "))))
    if args.json:
        Path(args.json).write_text(json.dumps(to_jsonable(rows, targets), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
