"""End to end: playbooks/audit.yml against the demo hospital (real Orthanc, DCMTK and pynetdicom
peers on loopback, seven source hosts with their own 127.x addresses, one unreachable host),
then every report checked, and the HTML page driven in headless Chromium."""
from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest

from tests.browser import HeadlessPage, chromium_binary
from tests.peers.base import closed_port, stop_all
from tests.peers.demo_network import SOURCES, start_network, write_inventory

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("json", "html", "md", "csv", "junit.xml")


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit-e2e")
    procs, aes = start_network(workdir / "peers")
    try:
        inventory = write_inventory(workdir / "inventory", aes, closed_port())
        report_dir = workdir / "reports"
        completed = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
             str(REPO_ROOT / "playbooks" / "audit.yml"), "-e", "echo_audit_report_dir=%s" % report_dir,
             "-e", "echo_audit_connect_timeout=3", "-e", "echo_audit_acse_timeout=5",
             "-e", "echo_audit_dimse_timeout=5"],
            cwd=str(workdir), capture_output=True, text=True, timeout=600, check=False,
            env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_FORKS="8"))
        report = json.loads((report_dir / "latest.json").read_text()) if (report_dir / "latest.json").exists() \
            else None
        yield SimpleNamespace(completed=completed, report_dir=report_dir, report=report, aes=aes, workdir=workdir)
    finally:
        stop_all(procs)


def _cell(report, source_host, called_ae):
    (cell,) = [c for c in report["cells"] if c["source_host"] == source_host and c["called_ae_title"] == called_ae]
    return cell


def test_the_audit_fails_on_the_demo_faults_and_still_writes_every_report(audit):
    assert audit.report is not None, audit.completed.stdout[-4000:] + audit.completed.stderr[-2000:]
    assert audit.completed.returncode != 0  # the demo network has deliberate faults
    assert "Traceback" not in audit.completed.stdout + audit.completed.stderr
    for extension in FORMATS:
        latest = audit.report_dir / ("latest.%s" % extension)
        stamped = [p for p in audit.report_dir.glob("*.%s" % extension) if not p.name.startswith("latest")]
        assert latest.exists() and stamped, extension
        for path in [latest] + stamped:
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_every_expected_cell_is_there_once_including_the_unreachable_host(audit):
    report = audit.report
    keys = [(c["source_host"], c["calling_ae_title"], c["peer"]) for c in report["cells"]]
    assert len(keys) == len(set(keys))
    assert {c["source_host"] for c in report["cells"]} == set(SOURCES) | {"us-a1", "pacs-a"}
    unreachable = [c for c in report["cells"] if c["source_host"] == "us-a1"]
    assert unreachable and all(c["outcome"] == "not_run" and not c["ok"] for c in unreachable)
    assert "unreachable" in unreachable[0]["message"]
    summary = report["summary"]
    assert summary["total"] == len(report["cells"]) == summary["ok"] + summary["failed"] + summary["not_run"]
    assert report["schema_version"] and report["generated_at"]


@pytest.mark.parametrize("source, called, outcome, ok", [
    ("mr-a1", "PACS_ARCHIVE", "success", True),                # registered on Orthanc from its address
    ("ct-b1", "PACS_ARCHIVE", "rejected", False),              # the new CT is not registered yet
    ("ct-a1", "RIS_MWL", "context_rejected", False),           # worklist without Verification
    ("ct-a1", "DRYVIEW_A", "refused", False),                  # printer switched off
    ("ws-b1", "DRYVIEW_A", "refused", True),                   # segmentation check: blocked is ok
    ("ws-a2", "CT_A1", "rejected", True),                      # the CT refuses reading room 2, as it must
    ("ws-a1", "CT_A1", "success", True),                       # ... and accepts reading room 1
    ("router-b", "QR_B", "success", True),                     # dcmqrscp allowlist, from its address
    ("ct-b1", "PRINTER_B", "success", True),
    ("router-b", "WS_B1", "success", True),
    ("ct-b1", "ROUTER_B", "service_rejected", False),          # the router takes no enhanced CT
    ("ws-b1", "ROUTER_B", "success", True),                    # ... but CT and MR, as the registry needs
])
def test_cells_show_what_each_real_peer_did(audit, source, called, outcome, ok):
    cell = _cell(audit.report, source, called)
    assert (cell["outcome"], cell["ok"]) == (outcome, ok), cell


def test_the_archive_echoes_through_its_rest_api_and_its_table_has_the_wrong_port(audit):
    """The reverse direction: the archive reaches reading room 2 and the modalities, not reading room 1, whose port
    it has wrong, although reading room 1 echoes the archive fine; the drift section says why."""
    cells = {c["called_ae_title"]: c for c in audit.report["cells"] if c["source_host"] == "pacs-a"}
    assert {title: (c["outcome"], c["ok"]) for title, c in cells.items()} == {
        "WS_A1": ("refused", False), "WS_A2": ("success", True), "CT_A1": ("success", True), "MR_A1": ("success", True)}
    assert _cell(audit.report, "ws-a1", "PACS_ARCHIVE")["outcome"] == "success"
    assert "through modality 'ws-a1'; Orthanc's entry differs from the inventory: port" in cells["WS_A1"]["message"]
    (archive,) = audit.report["archive_configuration"]["archives"]
    assert [(d["kind"], d["name"], d["field"]) for d in archive["differences"]] == [("mismatch", "ws_a1", "port")]
    assert "CONFIG DRIFT pacs-a: ws_a1: port is" in audit.completed.stdout
    assert "| PACS\\_ARCHIVE (pacs-a via Orthanc REST) |" in (audit.report_dir / "latest.md").read_text()
    password = (audit.workdir / "inventory" / "host_vars" / "pacs-a" / "credentials.yml").read_text()
    password = json.loads(password)["orthanc_api_password"]
    assert password not in audit.completed.stdout + audit.completed.stderr
    for path in audit.report_dir.iterdir():
        assert password not in path.read_text(errors="replace"), path


def test_the_archive_checks_the_source_address(audit):
    cell = _cell(audit.report, "ct-b1", "PACS_ARCHIVE")
    assert "calling-ae-title-not-recognized" in cell["message"]


def test_services_required_refused_and_discovered(audit):
    refused = _cell(audit.report, "ct-b1", "ROUTER_B")
    assert [(s["sop_class"], s["required"], s["accepted"], s["result"]) for s in refused["services"]] == [
        ("CTImageStorage", True, True, "acceptance"),
        ("EnhancedCTImageStorage", True, False, "abstract-syntax-not-supported")]
    assert [s["sop_class"] for s in _cell(audit.report, "ws-b1", "ROUTER_B")["services"]] == [
        "CTImageStorage", "MRImageStorage"]
    discovered = _cell(audit.report, "router-b", "QR_B")["services"]
    assert discovered and not any(s["required"] for s in discovered)
    assert {"CTImageStorage", "EnhancedCTImageStorage"} <= {s["sop_class"] for s in discovered if s["accepted"]}
    markdown = (audit.report_dir / "latest.md").read_text()
    assert "## Services refused (1)" in markdown
    assert "| CT\\_B1 | ct-b1 | ROUTER\\_B | router\\_b | EnhancedCTImageStorage | abstract-syntax-not-supported |" \
        in markdown
    assert "NOT OK ct-b1 as CT_B1 -> ROUTER_B (router_b): service_rejected" in audit.completed.stdout


def test_csv_junit_and_markdown_agree_with_the_json(audit):
    cells = audit.report["cells"]
    with open(audit.report_dir / "latest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # One per cell, then one per difference of the archive's modality table.
    drift = [row for row in rows if row["outcome"] == "config_drift"]
    assert len(rows) == len(cells) + len(drift) and len(drift) == 1
    suite = ElementTree.parse(audit.report_dir / "latest.junit.xml").getroot()
    testcases = suite.findall(".//testcase")
    # One per cell, and one per service a route requires.
    required = [s for c in cells for s in c["services"] if s["required"]]
    assert len(testcases) == len(cells) + len(required)
    not_ok = sum(1 for c in cells if not c["ok"]) + sum(1 for s in required if not s["accepted"])
    assert sum(1 for case in testcases if case.find("failure") is not None or case.find("error") is not None) == not_ok
    markdown = (audit.report_dir / "latest.md").read_text()
    assert markdown.index("## Not ok (") < markdown.index("RIS\\_MWL") < markdown.index("## Matrix")
    assert "<script>" not in markdown
    matrix = markdown[markdown.index("## Matrix"):]
    table_lines = [line for line in matrix.splitlines()[3:] if line.strip()]
    start = matrix.splitlines().index(table_lines[0])
    block = matrix.splitlines()[start:start + len(table_lines)]
    assert block == table_lines, "a blank line inside the matrix table would end the Markdown table"


def _open_report(page: HeadlessPage, path: Path) -> None:
    page.open(path)
    page.evaluate("new Promise(function (done) { requestAnimationFrame(function () { setTimeout(done, 0); }); })")


VISIBLE_ROWS = """Array.prototype.slice.call(document.querySelectorAll('#m tbody tr[data-r]'))
  .filter(function (tr) { return getComputedStyle(tr).display !== 'none'; })
  .map(function (tr) { return tr.querySelector('th').firstChild.textContent.trim(); })"""


def test_html_renders_filters_work_and_injected_markup_stays_text(audit):
    if chromium_binary() is None:
        pytest.skip("Chromium is not installed")
    with HeadlessPage() as page:
        page.add_init_script("window.alert = function () { window.__alerted = true; };")
        _open_report(page, audit.report_dir / "latest.html")
        rows = page.evaluate(VISIBLE_ROWS)
        calling = {c["calling_ae_title"] for c in audit.report["cells"]}
        assert set(rows) == calling
        cells = page.evaluate("document.querySelectorAll('#m tbody td[class^=o]').length")
        assert cells == len(audit.report["cells"])
        # The description with <script> is text in a title attribute, never a script that ran.
        assert page.evaluate("window.__alerted === true") is False
        titles = page.evaluate("Array.prototype.map.call(document.querySelectorAll('#m th'), "
                               "function (th) { return th.title; }).join('\\n')")
        assert "<script>alert('demo: descriptions are escaped')</script>" in titles
        # Filter by calling site: only site B rows remain.
        site_b = page.evaluate("(function () { var s = document.getElementById('fr');"
                               " for (var i = 0; i < s.options.length; i++) {"
                               "  if (s.options[i].text.indexOf('Site B') === 0) { s.value = s.options[i].value; }}"
                               " s.dispatchEvent(new Event('change')); return s.value; })()")
        assert site_b != ""
        rows_b = page.evaluate(VISIBLE_ROWS)
        assert rows_b and set(rows_b) <= {"CT_B1", "WS_B1", "ROUTER_B"}
        # Only rows with a problem: every visible row has at least one failing cell.
        page.evaluate("(function () { var s = document.getElementById('fr'); s.value = '';"
                      " s.dispatchEvent(new Event('change'));"
                      " var p = document.getElementById('fp'); p.checked = true;"
                      " p.dispatchEvent(new Event('change')); })()")
        problem_rows = set(page.evaluate(VISIBLE_ROWS))
        failing = {c["calling_ae_title"] for c in audit.report["cells"] if not c["ok"]}
        assert problem_rows == failing
        # A click on a cell shows its detail.
        detail = page.evaluate("(function () { var td = document.querySelector('#m tbody td.x');"
                               " td.click(); var d = document.getElementById('detail');"
                               " return d.hidden ? null : d.textContent; })()")
        assert detail and "NOT OK" in detail


OLD_PYTHON = "/root/.pyenv/versions/3.6.15/bin/python"


def test_source_hosts_that_cannot_run_the_module_keep_their_rows(audit):
    """A host without pynetdicom and a host whose Python is too old for ansible-core still get their
    cells, marked not_run with the reason, next to a host that works."""
    workdir = audit.workdir / "faulty-sources"
    bare = workdir / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    hosts = {"ct-a1": {"ansible_python_interpreter": sys.executable, "dicom_bind_address": "127.20.1.11",
                       "dicom_local_aes": ["ct_a1"], "dicom_peers": ["pacs_archive"]},
             "no-pynetdicom": {"ansible_python_interpreter": str(bare / "bin" / "python"),
                               "dicom_local_aes": ["mr_a1"], "dicom_peers": ["pacs_archive"]}}
    if os.access(OLD_PYTHON, os.X_OK):
        hosts["old-python"] = {"ansible_python_interpreter": OLD_PYTHON, "dicom_local_aes": ["ws_a1"],
                               "dicom_peers": ["pacs_archive"]}
    (workdir / "group_vars" / "all").mkdir(parents=True)
    (workdir / "group_vars" / "all" / "dicom_aes.json").write_text(json.dumps({"dicom_aes": audit.aes}))
    (workdir / "hosts.json").write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "local"},
        "children": {"dicom_sources": {"hosts": hosts}}}}))
    report_dir = workdir / "reports"
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(workdir / "hosts.json"),
         str(REPO_ROOT / "playbooks" / "audit.yml"), "-e", "echo_audit_report_dir=%s" % report_dir],
        cwd=str(workdir), capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    report = json.loads((report_dir / "latest.json").read_text())
    by_host = {c["source_host"]: c for c in report["cells"]}
    assert set(by_host) == set(hosts), completed.stdout[-3000:]
    assert by_host["ct-a1"]["outcome"] == "success"
    assert by_host["no-pynetdicom"]["outcome"] == "not_run"
    assert "pynetdicom" in by_host["no-pynetdicom"]["message"]
    if "old-python" in by_host:
        assert by_host["old-python"]["outcome"] == "not_run"
        # Named by the echo action plugin, not ansible-core's "Module result deserialization failed".
        assert "is too old to run ansible-core modules" in by_host["old-python"]["message"]
        assert OLD_PYTHON in by_host["old-python"]["message"]
    assert completed.returncode != 0
    assert "Traceback" not in by_host["no-pynetdicom"]["message"]
