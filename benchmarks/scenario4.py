"""Scenario 4: report rendering at scale -- a 300 x 300 matrix (90,000 checks).

Through ansible-playbook, along the role's own data path: 300 local source hosts run the role's
plan.yml (the ``dicom.network.echo_audit_plan`` action: options, every host's 300 peers, the
journal with its plan.json); then, standing in for echo.yml, one command writes each host's
synthetic echo result into that journal in the echo action's own format
(``python -m benchmarks.synthetic``, with the collection's ``journal_record``); then the role's
report.yml runs as in a real audit (the ``dicom.network.echo_audit_report`` action: the matrix,
every report format, the files). The report task's wall (start to its result) is the measurement;
HTML size; then the page in headless Chromium (benchmarks/chromium_cdp.py): time until
interactive, and a click and a filter once it is.

The same journal (copied before the report task removes it) also goes through the collection's
``plugin_utils`` in a plain Python process (benchmarks/render_worker.py): the matrix, each format
and the whole report step without Ansible, to show what the task adds. Skipped, with the reason,
while the role or its action plugins are not there.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional

from benchmarks.ansible_runner import AnsibleRun, run_playbook
from benchmarks.chromium_cdp import CHROMIUM, measure_page
from benchmarks.common import REPO_ROOT, Context
from benchmarks.scenario3 import require_role
from benchmarks.synthetic import audit_inventory

FORMATS = ["json", "html", "md", "csv", "junit"]
REPORT_ACTION = "dicom.network.echo_audit_report"
PLAN_ACTION = "dicom.network.echo_audit_plan"
SYNTHETIC_TASK = "bench synthetic echo journal (stands in for echo.yml)"


def play(report_dir: str, formats: List[str], journal_copy: str) -> List[Dict[str, Any]]:
    role = {"name": "dicom.network.echo_audit"}
    return [{"name": "echo_audit report rendering benchmark", "hosts": "dicom_sources", "gather_facts": False,
             "vars": {"echo_audit_report_dir": report_dir, "echo_audit_report_formats": formats,
                      "echo_audit_fail_on_unexpected": False},
             "tasks": [
                 # Imported like main.yml imports plan.yml: the role's own task, its defaults, run_once.
                 {"name": "bench plan", "ansible.builtin.import_role": dict(role, tasks_from="plan.yml")},
                 {"name": SYNTHETIC_TASK, "run_once": True, "delegate_to": "localhost", "changed_when": False,
                  "ansible.builtin.command": {
                      "argv": [sys.executable, "-m", "benchmarks.synthetic", "{{ __echo_audit_plan.run.journal }}",
                               journal_copy, "{{ __echo_audit_plan.run.options | to_json }}"],
                      "chdir": str(REPO_ROOT)},
                  "environment": {"PYTHONPATH": str(REPO_ROOT)}},
                 {"name": "bench report", "ansible.builtin.import_role": dict(role, tasks_from="report.yml")},
             ]}]


def task_seconds(run_: AnsibleRun, action: Optional[str] = None, name: Optional[str] = None) -> float:
    """Start of the task to its last host result (0.0 when it did not run)."""
    return sum(t["end"] - t["start"] for t in run_.tasks()
               if (action is not None and t["action"] == action) or (name is not None and t["name"] == name))


def report_step(ctx: Context, n: int, formats: List[str], label: str = "scenario4") -> Dict[str, Any]:
    """One playbook run: plan, synthetic journal, report. Returns the run, its task times and the paths."""
    wd = ctx.tmp("%s-" % label)
    report_dir = wd / "reports"
    journal_copy = wd / "journal-copy"
    run_ = run_playbook(wd / "ansible", play(str(report_dir), formats, str(journal_copy)), audit_inventory(n, n),
                        forks=min(20, n), timeout=3600)
    if run_.rc != 0:
        raise RuntimeError("report playbook rc %d:\n%s" % (run_.rc, run_.output[-4000:]))
    html_files = sorted(report_dir.glob("latest.html"))
    if not html_files:
        raise RuntimeError("the role wrote no latest.html in %s" % report_dir)
    leftover = sorted(p.name for p in report_dir.glob(".journal-*"))
    if leftover:
        raise RuntimeError("the report task left its journal in %s: %s" % (report_dir, ", ".join(leftover)))
    return {"run": run_, "wd": wd, "journal_copy": journal_copy, "html": html_files[0],
            "report_s": task_seconds(run_, action=REPORT_ACTION), "plan_s": task_seconds(run_, action=PLAN_ACTION),
            "synthetic_s": task_seconds(run_, name=SYNTHETIC_TASK),
            "sizes": {p.name[len("latest."):]: p.stat().st_size for p in report_dir.glob("latest.*")}}


def run(ctx: Context) -> None:
    require_role()
    n = 10 if ctx.smoke else 300
    formats = ["json", "html"] if ctx.smoke else FORMATS
    label = "4 report %dx%d" % (n, n)
    step = report_step(ctx, n, formats)
    run_, html = step["run"], step["html"]
    html_bytes = html.stat().st_size
    ctx.row(scenario=label, condition="-", what="ansible-playbook: the role's report task (%s), %d formats, "
            "%d hosts" % (REPORT_ACTION, len(formats), n), wall_s=step["report_s"], echoes=n * n,
            notes="matrix, %d formats and files in one task; playbook %.1f s in all (plan task %.1f s, synthetic "
                  "journal %.1f s); reports %s"
            % (len(formats), run_.wall_s, step["plan_s"], step["synthetic_s"],
               ", ".join("%s %.2f MB" % (k, v / 1e6) for k, v in sorted(step["sizes"].items()))),
            data={"report_task_s": step["report_s"], "plan_task_s": step["plan_s"],
                  "synthetic_s": step["synthetic_s"], "playbook_s": run_.wall_s, "sizes": step["sizes"]})

    res = ctx.worker_module("benchmarks.render_worker", {"journal": str(step["journal_copy"]),
                                                         "dir": str(step["wd"])}, timeout=1800)
    if res.get("available"):
        ctx.row(scenario=label, condition="-", what="plain Python: the report action's work without Ansible "
                "(audit_run.read_journal + report_run)", wall_s=res["report_run_s"], echoes=res["cells"],
                notes="then each part alone: matrix %.2f s, %s; the report task took %.2f s more"
                % (res["matrix_s"], ", ".join("%s %.2f s" % item for item in res["formats_s"].items()),
                   step["report_s"] - res["report_run_s"]), data=res)
    else:
        ctx.note("scenario 4: the plain-Python breakdown is unavailable (%s)" % res.get("reason"))

    ctx.target("4", "report task through Ansible: matrix + %d formats + files (%dx%d)" % (len(formats), n, n),
               step["report_s"], 3.0, False, " s")
    ctx.target("4", "HTML size (%dx%d)" % (n, n), html_bytes / 1e6, 8.0, False, " MB")

    if not os.access(CHROMIUM, os.X_OK):
        ctx.note("scenario 4: %s not found, no time-until-interactive" % CHROMIUM)
        ctx.target("4", "time until interactive in headless Chromium", None, 2.0, False, " s")
        return
    page = measure_page(html, timeout=300, log=step["wd"] / "chromium.log")
    ctx.row(scenario=label, condition="-", what="headless Chromium: time until interactive",
            wall_s=page["interactive"] / 1000.0,
            notes="DOM interactive %.2f s, DOMContentLoaded %.2f s, load %.2f s, %d long task(s) %.2f s, script "
                  "ready %s; then click %.0f ms (detail shown: %s), problem filter %.0f ms; %d cells"
            % (page["dom_interactive"] / 1000.0, page["dcl_end"] / 1000.0, page["load_end"] / 1000.0,
               page["long_tasks"], page["long_task_ms"] / 1000.0, page["script_ready"], page["click_ms"],
               page["click_shows_detail"], page["filter_ms"] or 0.0, page["cells"]),
            data=page)
    ctx.target("4", "time until interactive in headless Chromium (%dx%d)" % (n, n), page["interactive"] / 1000.0,
               2.0, False, " s")
