"""Scenario 4's in-process part, run in a fresh interpreter: the report task's work without Ansible.

It reads the copy of the journal scenario 4 took before the report task ran (the plan action's
plan.json, the synthetic echo records and the run's options) and times, with the collection's own
``plugin_utils``: first what the report action does (``audit_run.read_journal`` and ``report_run``:
matrix, every format, files, verdict), then, again, the matrix alone (``build_run_report``) and
each format alone (``audit_report.render_reports``) -- where the report task's time goes.

    python -m benchmarks.render_worker IN.json OUT.json      IN: {"journal": DIR, "dir": DIR}
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List

from benchmarks.workers import REPO_ROOT, ensure_collection_path

TEMPLATES = str(REPO_ROOT / "roles" / "echo_audit" / "templates")


def main(argv: List[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out_dir = Path(spec["dir"])
    ensure_collection_path()
    result: Dict[str, Any] = {"available": False}
    try:
        from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import paused_gc
        from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import render_reports
        from ansible_collections.dicom.network.plugins.plugin_utils.audit_run import (
            build_run_report, read_journal, report_run)
        journal = Path(spec["journal"])
        options = json.loads(Path(str(journal) + ".options.json").read_text())
        options["report_dir"] = str(out_dir / "inprocess-reports")
        Path(options["report_dir"]).mkdir(mode=0o750)
        # First, cold as in the action (imports aside): read the journal and do what the action does.
        t0 = time.monotonic()
        document, entries = read_journal(str(journal))
        outcome = report_run(document, entries, options, TEMPLATES)
        result["report_run_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        with paused_gc():  # as report_run builds it
            report = build_run_report(document, entries, options, "2025-01-01T00:00:00Z")
        result["matrix_s"] = time.monotonic() - t0
        result["formats_s"] = {}
        for fmt in ["html"] + [f for f in options["report_formats"] if f != "html"]:
            t0 = time.monotonic()
            text = render_reports(report, [fmt], TEMPLATES, markdown_max_columns=options["markdown_max_columns"],
                                  failures_limit=options["report_max_failures"])[fmt]
            result["formats_s"][fmt] = time.monotonic() - t0
            if fmt == "html":
                result["html_bytes"] = len(text.encode("utf-8"))
        result.update(available=True, cells=outcome["summary"]["total"], formats=options["report_formats"])
    except Exception as exc:  # noqa: BLE001 - a breakdown only: say why and let the Ansible path count
        result["reason"] = "%s: %s" % (type(exc).__name__, str(exc)[:300])
        result["traceback"] = traceback.format_exc()[-2000:]
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
