"""Scenario 4: report rendering at scale -- a 300 x 300 matrix (90,000 checks).

Through ansible-playbook, along the role's own data path: 300 local source hosts run the role's
preflight.yml (which resolves each host's 300 peers), a benchmark-only filter
(benchmarks/filter_plugins/bench_fake_echo.py) stands in for the echo loop and registers synthetic
module results under the role's own register name, then the role's collect.yml (the matrix) and
report.yml (every report format) run as in a real audit. Render time = collect.yml + the HTML
template; HTML size; then the page in headless Chromium (benchmarks/chromium_cdp.py): time until
interactive, and a click and a filter once it is.

The same data also goes through the filters and the HTML template in a plain Python process
(benchmarks/render_worker.py), to show what Ansible adds. Skipped, with the reason, while the
role or its filters are not there yet.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

import yaml

from benchmarks.ansible_runner import run_playbook
from benchmarks.chromium_cdp import CHROMIUM, measure_page
from benchmarks.common import REPO_ROOT, Context, Skip
from benchmarks.scenario3 import _phase, require_role
from benchmarks.synthetic import audit_inventory

ROLE = REPO_ROOT / "roles" / "echo_audit"
FORMATS = ["json", "html", "md", "csv", "junit"]
FILTER_DIR = Path(__file__).resolve().parent / "filter_plugins"


def echo_register_name() -> str:
    """The variable the role registers its echo loop under (read from tasks/echo.yml)."""
    try:
        tasks = yaml.safe_load((ROLE / "tasks" / "echo.yml").read_text()) or []
    except (OSError, yaml.YAMLError):
        tasks = []
    for task in tasks:
        if isinstance(task, dict) and ("dicom.network.echo" in task or "echo" in task) and task.get("register"):
            return str(task["register"])
    raise Skip("cannot find the register name of the echo task in roles/echo_audit/tasks/echo.yml")


HTML_ALONE = "bench HTML report alone"


def play(register: str, report_dir: str, formats: List[str]) -> List[Dict]:
    role = {"name": "dicom.network.echo_audit"}
    # Play variables, not extra variables: the last step narrows the formats to HTML for itself.
    return [{"name": "echo_audit report rendering benchmark", "hosts": "dicom_sources", "gather_facts": False,
             "vars": {"echo_audit_report_dir": report_dir, "echo_audit_report_formats": formats},
             "tasks": [
                 {"name": "bench preflight", "ansible.builtin.include_role": dict(role, tasks_from="preflight.yml")},
                 {"name": "bench synthetic echo results (stands in for echo.yml)",
                  "ansible.builtin.set_fact": {register: "{{ _echo_audit_plan | bench_fake_echo(inventory_hostname) }}"}},
                 {"name": "bench collect", "ansible.builtin.include_role": dict(role, tasks_from="collect.yml")},
                 {"name": "bench report", "ansible.builtin.include_role": dict(role, tasks_from="report.yml")},
                 # The role writes every format in one task; the render target wants the HTML template's share.
                 {"name": HTML_ALONE, "ansible.builtin.include_role": dict(role, tasks_from="write_reports.yml"),
                  "vars": {"echo_audit_report_formats": ["html"], "_echo_audit_write_name": "bench-html-alone",
                           "_echo_audit_write_latest": False, "_echo_audit_write_baseline": ""}},
             ]}]


def run(ctx: Context) -> None:
    require_role()
    for name in ("preflight.yml", "collect.yml", "report.yml", "echo.yml"):
        if not (ROLE / "tasks" / name).exists():
            raise Skip("roles/echo_audit/tasks/%s is not there yet" % name)
    register = echo_register_name()
    n = 10 if ctx.smoke else 300
    formats = ["json", "html"] if ctx.smoke else FORMATS
    wd = ctx.tmp("scenario4-")
    label = "4 report %dx%d" % (n, n)

    res = ctx.worker_module("benchmarks.render_worker", {"rows": n, "columns": n, "dir": str(wd)}, timeout=1800)
    if res.get("available"):
        ctx.row(scenario=label, condition="-", what="plain Python: echo_matrix filter + render_reports (HTML)",
                wall_s=res["matrix_s"] + res["html_s"], echoes=res["cells"],
                notes="matrix %.2f s, HTML page (sections + template) %.2f s; HTML %.2f MB"
                % (res["matrix_s"], res["html_s"], res["html_bytes"] / 1e6), data=res)
    else:
        ctx.note("scenario 4: the plain-Python breakdown is unavailable (%s)" % res.get("reason"))

    report_dir = wd / "reports"
    run_ = run_playbook(wd / "ansible", play(register, str(report_dir), formats), audit_inventory(n, n),
                        forks=min(20, n), timeout=3600, env={"ANSIBLE_FILTER_PLUGINS": str(FILTER_DIR)})
    if run_.rc != 0:
        raise RuntimeError("report playbook rc %d:\n%s" % (run_.rc, run_.output[-4000:]))
    tasks = run_.tasks()
    spans: Dict[str, List[float]] = {}
    for task in tasks:
        phase = _phase(task) if _phase(task) != "other" else task["name"]
        span = spans.setdefault(phase, [task["start"], task["end"]])
        span[0], span[1] = min(span[0], task["start"]), max(span[1], task["end"])
    seconds = {k: v[1] - v[0] for k, v in spans.items()}
    per_format: Dict[str, float] = {}
    # The last report writer is the HTML-only step; the role's own writes every format at once.
    writers = [t for t in tasks if t["action"].endswith("report_files")]
    if writers:
        per_format["html"] = writers[-1]["end"] - writers[-1]["start"]
    collect_s = seconds.get("collect.yml", 0.0)
    report_s = seconds.get("report.yml", 0.0)
    html_files = sorted(report_dir.glob("latest.html")) or sorted(report_dir.glob("*.html"))
    if not html_files:
        raise RuntimeError("the role wrote no HTML report in %s" % report_dir)
    html = html_files[0]
    html_bytes = html.stat().st_size
    render_s = collect_s + per_format.get("html", 0.0)
    ctx.row(scenario=label, condition="-", what="ansible-playbook: role preflight, collect.yml, report.yml "
            "(%d formats), %d hosts" % (len(formats), n), wall_s=run_.wall_s, echoes=n * n,
            notes="render %.2f s = matrix (collect.yml) %.2f s + HTML template and file %.2f s (the role's report "
                  "writer with the HTML format alone); report.yml %.2f s (%d formats in one task); preflight %.1f s, "
                  "synthetic results %.1f s; HTML %.2f MB"
            % (render_s, collect_s, per_format.get("html", 0.0), report_s, len(formats),
               seconds.get("preflight.yml", 0.0),
               seconds.get("bench synthetic echo results (stands in for echo.yml)", 0.0), html_bytes / 1e6),
            data={"phases_s": seconds, "per_format_s": per_format})
    ctx.target("4", "render time through Ansible: matrix + HTML (%dx%d)" % (n, n), render_s, 3.0, False, " s")
    ctx.target("4", "everything collect.yml + report.yml do, %d formats (%dx%d)" % (len(formats), n, n),
               collect_s + report_s, 3.0, False, " s")
    ctx.target("4", "HTML size (%dx%d)" % (n, n), html_bytes / 1e6, 8.0, False, " MB")

    if not os.access(CHROMIUM, os.X_OK):
        ctx.note("scenario 4: %s not found, no time-until-interactive" % CHROMIUM)
        ctx.target("4", "time until interactive in headless Chromium", None, 2.0, False, " s")
        return
    page = measure_page(html, timeout=300, log=wd / "chromium.log")
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
