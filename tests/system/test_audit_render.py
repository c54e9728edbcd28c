"""The echo_audit role's plan step, matrix, reports, baseline and verdict through real ansible-playbook runs.

The echo module itself is replaced by synthetic results (test_audit_e2e runs it against real peers): a
test playbook runs the role's plan.yml, writes each host's result into the run's journal from a fixture
file as the echo action would, then report.yml and show.yml. Inventory strings and peer-sent strings
carry HTML, Markdown, CSV-formula and XML-breaking payloads that must come out escaped for each format.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Optional
from xml.etree import ElementTree

import pytest
import yaml

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_host
from tests.unit.plugins.plugin_utils.test_audit_matrix import module_result
from tests.unit.plugins.plugin_utils.test_audit_report import parse_html

pytestmark = [pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = Path(sys.executable).parent
XSS_DESCRIPTION = "<script>alert(1)</script>"
XSS_VERSION = "<img src=x onerror=alert(2)>"
XSS_TITLE = "A<B>&\"C'"  # a valid AE title: printable ASCII without backslash
FORMULA_MESSAGE = "=HYPERLINK(\"http://evil.example\",\"click\")"
XSS_MESSAGE = "<svg onload=alert(3)> peer closed"

REGISTRY: Dict[str, Dict[str, Any]] = {
    "archive": {"ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 104, "site": "Site A", "kind": "archive",
                "description": "Central archive"},
    "mwl": {"ae_title": "RIS_MWL", "host": "192.0.2.20", "port": 107, "site": "Site A", "kind": "ris"},
    "evil": {"ae_title": XSS_TITLE, "host": "192.0.2.66", "port": 104, "site": "<b>Site</b> B", "kind": "printer",
             "description": XSS_DESCRIPTION},
    "ct1": {"ae_title": "CT1", "host": "192.0.2.41", "port": 104, "site": "Site A", "kind": "modality"},
    "mr1": {"ae_title": "MR1", "host": "192.0.2.42", "port": 104, "site": "Site A", "kind": "modality"},
    "ws1": {"ae_title": "WS1", "host": "198.51.100.61", "port": 11112, "site": "<b>Site</b> B",
            "kind": "workstation"},
}
HOSTS: Dict[str, Dict[str, Any]] = {
    "probe-a": {"dicom_local_aes": ["ct1", "mr1"], "dicom_peers": ["mwl"]},
    # archive again: an identical repeat of a group entry is merged, not checked twice.
    "ws-1": {"dicom_local_aes": ["ws1"], "dicom_peers": [{"name": "mwl", "expect": "reject"}, "archive"]},
    "probe-down": {"dicom_local_aes": ["mr1"], "dicom_peers": ["mwl"]},
}
GROUP_VARS = {"dicom_peers_everyone": ["archive", "evil"]}


def write_inventory(path: Path, registry=None, hosts=None, group_vars=None) -> Path:
    inventory = {"all": {"vars": {"dicom_aes": registry or REGISTRY}, "children": {"dicom_sources": {
        "vars": dict(GROUP_VARS if group_vars is None else group_vars),
        "hosts": {name: dict(hostvars, ansible_connection="local", ansible_python_interpreter=sys.executable)
                  for name, hostvars in (hosts or HOSTS).items()}}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def plans(registry=None, hosts=None, group_vars=None) -> Dict[str, Dict[str, Any]]:
    """The plans the role's plan step computes, from the same inventory data."""
    group = GROUP_VARS if group_vars is None else group_vars
    return {name: resolve_host(name, registry or REGISTRY, hostvars["dicom_local_aes"],
                               dict(group, **{k: v for k, v in hostvars.items() if k.startswith("dicom_peers")}))
            for name, hostvars in (hosts or HOSTS).items()}


def fake_echo(the_plans, outcomes: Optional[Dict[str, str]] = None, unreachable=("probe-down",),
              failed_calls=()) -> Dict[str, Any]:
    """What the echo action journals per host (its one call's result); ``outcomes`` maps "CALLING>peer" to an outcome."""
    outcomes = outcomes or {}
    fakes = {}
    for host, the_plan in the_plans.items():
        calls = [call for call in the_plan["calls"] if call["peers"]]
        if not calls:
            continue
        if host in unreachable:
            fakes[host] = {"unreachable": True, "changed": False,
                           "msg": "Failed to connect to the host via ssh: <b>no route</b>"}
            continue
        if any(call["calling"] in failed_calls for call in calls):
            fakes[host] = {"failed": True, "changed": False, "msg": "tls.ca_file: file /etc/x.pem does not exist"}
            continue
        results = []
        for call in calls:
            for spec in call["peers"]:
                outcome = outcomes.get("%s>%s" % (call["calling_ae_title"], spec["name"]))
                if outcome is None:
                    outcome = {"accept": "success", "reject": "rejected", "blocked": "timeout"}[spec["expect"]]
                result = module_result(spec, call["calling_ae_title"], outcome)
                result["peer"]["implementation_version_name"] = XSS_VERSION
                if spec["name"] == "mwl":
                    result["message"] = FORMULA_MESSAGE
                if spec["name"] == "evil":
                    result["message"] = XSS_MESSAGE
                results.append(result)
        fakes[host] = {"changed": False, "results": results, "msg": "done"}
    return fakes


PLAYBOOK = """
- name: echo_audit with synthetic echo results
  hosts: dicom_sources
  gather_facts: false
  tasks:
    - name: Plan
      ansible.builtin.include_role:
        name: dicom.network.echo_audit
        tasks_from: plan.yml

    - name: What the echo action journals, with the module's answers replaced by the fixture
      ansible.builtin.copy:
        content: >-
          {{ {'schema': 1, 'host': inventory_hostname, 'echoed_from': inventory_hostname, 'item': none,
              'result': _fake} | to_json }}
        dest: "{{ __echo_audit_plan.run.journal }}/{{ inventory_hostname }}.json"
        mode: "0640"
      vars:
        _fake: "{{ lookup('ansible.builtin.file', fake_results ~ '/' ~ inventory_hostname ~ '.json') | from_json }}"
      delegate_to: localhost
      when: _fake is not none

    - name: Matrix, reports, verdict
      ansible.builtin.include_role:
        name: dicom.network.echo_audit
        tasks_from: "{{ step }}"
      loop: [report.yml, show.yml]
      loop_control:
        loop_var: step
"""


class Run:
    def __init__(self, completed: subprocess.CompletedProcess, report_dir: Path, seconds: float) -> None:
        self.rc = completed.returncode
        self.output = completed.stdout + completed.stderr
        self.report_dir = report_dir
        self.seconds = seconds

    def latest(self, extension: str) -> str:
        return (self.report_dir / ("latest." + extension)).read_text(encoding="utf-8")


def run(tmp_path: Path, fakes: Optional[Dict[str, Any]], extra_vars: Optional[Dict[str, Any]] = None,
        playbook: Optional[str] = None, inventory: Optional[Path] = None, args=(), prefix=()) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake_path = tmp_path / "fake_results"
    fake_path.mkdir(exist_ok=True)
    for host in set(fakes or {}) | set(HOSTS):
        (fake_path / (host + ".json")).write_text(json.dumps((fakes or {}).get(host)))
    if playbook is None:
        playbook_path = tmp_path / "play.yml"
        playbook_path.write_text(PLAYBOOK)
        playbook = str(playbook_path)
    report_dir = tmp_path / "reports"
    variables = {"fake_results": str(fake_path), "echo_audit_report_dir": str(report_dir)}
    variables.update(extra_vars or {})
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_FORCE_COLOR="0")
    command = list(prefix) + [str(ANSIBLE_BIN / "ansible-playbook"), "-i",
                              str(inventory or write_inventory(tmp_path / "inv.yml")), playbook,
                              "-e", json.dumps(variables)] + list(args)
    started = time.monotonic()
    completed = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900,
                               check=False)
    return Run(completed, report_dir, time.monotonic() - started)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Run:
    """One run with failures, an unreachable host and hostile strings; reports kept for several tests."""
    tmp = tmp_path_factory.mktemp("audit")
    fakes = fake_echo(plans(), outcomes={"CT1>archive": "refused", "WS1>evil": "aborted"})
    return run(tmp, fakes, {"echo_audit_fail_on_unexpected": False})


def test_reports_are_written_with_time_stamp_latest_and_mode_0640(first):
    assert first.rc == 0, first.output[-4000:]
    names = sorted(path.name for path in first.report_dir.iterdir())
    for extension in ("json", "html", "md", "csv", "junit.xml"):
        assert "latest." + extension in names
        stamped = [name for name in names if re.match(r"echo-audit-\d{8}T\d{6}Z\." + re.escape(extension) + "$", name)]
        assert len(stamped) == 1, names
        for name in (stamped[0], "latest." + extension):
            assert stat.S_IMODE((first.report_dir / name).stat().st_mode) == 0o640
        assert (first.report_dir / stamped[0]).read_bytes() == (first.report_dir / ("latest." + extension)).read_bytes()
    assert stat.S_IMODE(first.report_dir.stat().st_mode) == 0o750
    assert not [name for name in names if name.startswith(".")], "no temporary file left behind"


def test_json_report_has_every_cell_and_not_run_rows(first):
    report = json.loads(first.latest("json"))
    assert report["schema_version"] == 1
    for key in ("generated_at", "rows", "columns", "cells", "summary"):
        assert key in report
    # probe-a: CT1 and MR1 x (archive, evil, mwl); ws-1: WS1 x (archive, evil, mwl expected reject);
    # probe-down: MR1 x 3, unreachable.
    assert report["summary"]["total"] == 12
    assert report["summary"]["not_run"] == 3 and report["summary"]["failed"] == 2
    down = [c for c in report["cells"] if c["source_host"] == "probe-down"]
    assert {c["outcome"] for c in down} == {"not_run"}
    assert down[0]["message"] == "host unreachable: Failed to connect to the host via ssh: <b>no route</b>"
    ws_archive = [c for c in report["cells"] if c["source_host"] == "ws-1" and c["peer"] == "archive"]
    assert len(ws_archive) == 1, "one cell per (host, calling AE, peer) even when listed twice"
    for cell in report["cells"]:
        for key in ("source_host", "calling_ae_title", "peer", "called_ae_title", "outcome", "ok", "expect",
                    "message", "rtt_ms"):
            assert key in cell


def chromium_dom(path: Path) -> Optional[str]:
    """The page's DOM after its script ran, from headless Chromium; None when there is no Chromium."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        return None
    completed = subprocess.run(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--user-data-dir=%s" % (path.parent / ".chromium"), "--virtual-time-budget=20000", "--dump-dom",
         path.as_uri()], capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def assert_no_injected_markup(html: str):
    parser = parse_html(html)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"type": "application/json", "id": "data"}, {}], "only the page's own two scripts"
    assert not [tag for tag, attrs in parser.tags if tag in ("img", "svg", "i", "b") or
                any(name.startswith("on") for name in attrs)]
    return parser


def test_html_escapes_everything_and_embeds_data_safely(first):
    html = first.latest("html")
    parser = assert_no_injected_markup(html)
    for raw in (XSS_DESCRIPTION, XSS_VERSION, XSS_MESSAGE, XSS_TITLE):
        assert raw not in html
    assert "A&lt;B&gt;&amp;&#34;C&#39;" in html and "&lt;svg onload=alert(3)&gt; peer closed" in html
    text = "".join(parser.text)
    assert XSS_TITLE in text and XSS_MESSAGE in text, "shown literally once the entities are decoded"
    data = json.loads(parser.script_data["data"])
    assert XSS_VERSION in data["strings"] and XSS_DESCRIPTION in [column[5] for column in data["columns"]]
    assert "<" not in parser.script_data["data"]
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "no external asset"
    # Only the page's own script may run: the CSP names it by its hash, so injected markup could not.
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    (script_src,) = [part.split()[1:] for part in policy.split(";") if part.split()[0] == "script-src"]
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert script_src == ["'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
                          for text in scripts], "update the hash in report.html.j2 after changing its script"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "no inline handler: the CSP would block it"


def test_html_matrix_built_by_the_page_in_a_browser(first):
    dom = chromium_dom(first.report_dir / "latest.html")
    if dom is None:
        pytest.skip("no Chromium to run the page's script")
    parser = assert_no_injected_markup(dom)
    cells = [attrs for tag, attrs in parser.tags if tag == "td" and (attrs.get("class") or "").startswith("o")]
    assert len(cells) == 12
    assert sum(1 for attrs in cells if attrs["class"].endswith(" x")) == 5
    header_titles = [attrs.get("title", "") for tag, attrs in parser.tags if tag == "th"]
    assert any(XSS_DESCRIPTION in title for title in header_titles), "description in a title attribute, as text"
    text = "".join(parser.text)
    assert XSS_TITLE in text and "<b>Site</b> B" in text
    assert re.search(r'data-build-ms="\d+"', dom)


def test_markdown_escapes_and_puts_failures_first(first):
    markdown = first.latest("md")
    assert "<script>" not in markdown and "<img" not in markdown and "<b>" not in markdown
    assert "A&lt;B&gt;&amp;\"C'" in markdown
    assert markdown.index("## Not ok (") < markdown.index("## Matrix")
    assert "## Summary" in markdown and "| 12 | 7 | 2 | 3 |" in markdown
    assert "&lt;svg onload=alert(3)&gt; peer closed" in markdown and "&lt;b&gt;Site&lt;/b&gt; B" in markdown
    assert markdown.index("## Legend") < markdown.index("## Matrix")
    table = markdown[markdown.index("## Matrix"):]
    assert "probe-down" in table and table.count("\u25CB") == 3
    assert "|\n\n|" not in table, "a blank line would end the Markdown table"


def test_junit_is_valid_xml_with_one_testcase_per_cell(first):
    root = ElementTree.fromstring(first.latest("junit.xml").encode("utf-8"))
    cases = root.findall(".//testcase")
    assert len(cases) == 12
    assert len(root.findall(".//testcase/failure")) == 2 and len(root.findall(".//testcase/error")) == 3
    assert any(XSS_MESSAGE in (failure.get("message") or "") for failure in root.iter("failure"))
    names = [case.get("name") for case in cases]
    assert any(XSS_TITLE in name for name in names), "attribute round-trips the hostile AE title"
    details = " ".join(element.text or "" for element in root.iter())
    assert "<b>no route</b>" in details


def test_csv_has_one_row_per_cell_and_no_formula(first):
    rows = list(csv.DictReader(io.StringIO(first.latest("csv"), newline="")))
    assert len(rows) == 12
    mwl = [row for row in rows if row["peer"] == "mwl" and row["outcome"] != "not_run"]
    assert mwl and all(row["message"] == "'" + FORMULA_MESSAGE for row in mwl)
    assert any(row["peer_implementation_version"] == XSS_VERSION for row in rows)
    assert all(not value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values() if value)


def test_console_summary(first):
    assert "DICOM echo audit: 12 checks, 7 ok, 2 failed, 3 not run" in first.output
    assert "NOT OK probe-a as CT1 -> PACS_ARCHIVE (archive): refused, expected accept" in first.output
    assert "Traceback" not in first.output


def test_verdict_fails_on_unexpected_and_on_regression(first, tmp_path):
    failing = run(tmp_path / "fail", fake_echo(plans(), outcomes={"CT1>archive": "refused"}))
    assert failing.rc == 2
    assert "DICOM echo audit: 12 checks, 8 ok, 1 failed, 3 not run" in failing.output
    assert (failing.report_dir / "latest.json").exists(), "reports are written before the verdict"

    baseline = str(first.report_dir / "latest.json")
    # Now MR1 -> archive is refused (broke); CT1 -> archive and WS1 -> evil answer again (fixed).
    fakes = fake_echo(plans(), outcomes={"MR1>archive": "refused"})
    regress = run(tmp_path / "regress", fakes, {"echo_audit_baseline": baseline,
                                                "echo_audit_fail_on_unexpected": False,
                                                "echo_audit_fail_on_regression": True})
    assert regress.rc == 2, regress.output[-3000:]
    assert "failed because 1 new failure(s) since the baseline (1 pair(s) broke)" in regress.output
    assert "REGRESSION probe-a as MR1 -> PACS_ARCHIVE (archive): success => refused (not ok)" in regress.output
    report = json.loads(regress.latest("json"))
    assert report["baseline"]["counts"] == {"broke": 1, "fixed": 2, "appeared": 0, "disappeared": 0, "changed": 0,
                                            "new_failures": 1, "peer_changes": 0}
    assert "probe-a as MR1 -&gt; PACS_ARCHIVE (archive): success =&gt; refused (not ok)" in regress.latest("html")
    assert "- probe-a as MR1 -> PACS\\_ARCHIVE (archive): success => refused (not ok)\n" in regress.latest("md")

    tolerated = run(tmp_path / "tolerated", fake_echo(plans(), outcomes={"CT1>archive": "refused"}),
                    {"echo_audit_baseline": baseline, "echo_audit_fail_on_unexpected": False,
                     "echo_audit_fail_on_regression": True})
    assert tolerated.rc == 0, "known failures do not fail a change window that only guards regressions"

    # A pair the baseline never had, failing now, is as new a failure as one that broke.
    grown = dict(HOSTS, **{"probe-a": dict(HOSTS["probe-a"], dicom_peers=["mwl", "ws1"])})
    appeared = run(tmp_path / "appeared", fake_echo(plans(hosts=grown), outcomes={"CT1>ws1": "refused"}),
                   {"echo_audit_baseline": baseline, "echo_audit_fail_on_unexpected": False,
                    "echo_audit_fail_on_regression": True},
                   inventory=write_inventory(tmp_path / "grown.yml", hosts=grown))
    assert appeared.rc == 2, appeared.output[-3000:]
    assert "failed because 1 new failure(s) since the baseline (0 pair(s) broke)" in appeared.output
    counts = json.loads(appeared.latest("json"))["baseline"]["counts"]
    assert (counts["broke"], counts["appeared"], counts["new_failures"]) == (0, 2, 1)


@pytest.mark.parametrize("prefix, taken_suffixes, own_suffix", [
    ("echo-audit", [""], "-2"),
    # A dot in the prefix once hid every taken name (the run then failed on the other run's files), and the
    # tenth run of a second got a random suffix.
    ("site.a", [""] + ["-%d" % n for n in range(2, 11)], "-11"),
])
def test_a_run_in_the_same_second_as_another_keeps_both_runs_reports(tmp_path, prefix, taken_suffixes, own_suffix):
    """Other audits wrote their reports into this directory in the same second: this run names its own with the
    next suffix and writes no file of theirs (one of the two runs used to be lost without a word)."""
    report_dir = tmp_path / "reports"
    report_dir.mkdir(parents=True)
    now = datetime.now(timezone.utc)
    # Every second the run could name itself after, taken by "other runs".
    taken = {}
    for offset in range(-5, 600):
        stamp = (now + timedelta(seconds=offset)).strftime("%Y%m%dT%H%M%SZ")
        for suffix in taken_suffixes:
            for extension in ("json", "html"):
                path = report_dir / ("%s-%s%s.%s" % (prefix, stamp, suffix, extension))
                path.write_text("another run %s%s\n" % (stamp, suffix))
                taken[path] = path.read_text()
    done = run(tmp_path, fake_echo(plans()), {"echo_audit_fail_on_unexpected": False,
                                              "echo_audit_report_prefix": prefix,
                                              "echo_audit_report_formats": ["json", "html"]})
    assert done.rc == 0, done.output[-3000:]
    assert all(path.read_text() == text for path, text in taken.items())
    (own,) = report_dir.glob("%s-*%s.json" % (prefix, own_suffix))
    assert json.loads(own.read_text())["summary"]["total"] > 0
    assert own.with_suffix(".html").exists()
    assert json.loads(done.latest("json")) == json.loads(own.read_text())


# In a mount namespace of its own: a small tmpfs as the report directory, one complete audit, then the file
# system filled to $3 kB free, the same audit again, and a copy of the directory to $2 (the tmpfs goes with it).
_TWO_RUNS_ON_A_SMALL_DISK = """
set -u
mount -t tmpfs -o size=2m tmpfs "$1" || exit 90
shift; copy="$1"; shift; left="$1"; shift
"$@" > "$copy.first.log" 2>&1 || exit 91
free=$(df -k --output=avail "$REPORTS" | tail -n 1 | tr -d ' ')
dd if=/dev/zero of="$REPORTS/filler" bs=1k count=$((free - left)) 2>/dev/null
"$@"; rc=$?
cp -a "$REPORTS/." "$copy"
exit $rc
"""


def test_a_full_disk_leaves_latest_as_the_previous_runs_set(tmp_path):
    """The reports were written one format at a time: a full disk half way left latest.json and latest.md new
    and the rest from the run before. Now no latest.* file changes unless every new file could be written."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare or subprocess.run(
            [unshare, "--mount", "--propagation", "private", "true"], capture_output=True, check=False).returncode:
        pytest.skip("needs root and unshare --mount to give ansible-playbook a small file system of its own")
    reports, copy = tmp_path / "reports", tmp_path / "after"
    reports.mkdir()
    script = tmp_path / "two-runs.sh"
    script.write_text(_TWO_RUNS_ON_A_SMALL_DISK)
    done = run(tmp_path, fake_echo(plans()), {"echo_audit_fail_on_unexpected": False},
               prefix=["env", "REPORTS=%s" % reports, unshare, "--mount", "--propagation", "private",
                       "sh", str(script), str(reports), str(copy), "20"])
    first_log = tmp_path / "after.first.log"
    assert done.rc == 2, done.output[-3000:] + (first_log.read_text()[-3000:] if first_log.exists() else "")
    assert "No space left on device" in done.output and "no file was changed" in done.output, done.output[-3000:]
    first_run = sorted(path for path in copy.glob("echo-audit-*.*") if path.is_file())
    assert len(first_run) == 6, sorted(os.listdir(copy))
    for stamped in first_run:
        extension = stamped.name.split(".", 1)[1]
        assert (copy / ("latest." + extension)).read_bytes() == stamped.read_bytes(), extension


def test_only_peers_from_the_command_line_is_comma_separated_text(tmp_path):
    only = ["archive", "mwl"]
    the_plans = {name: resolve_host(name, REGISTRY, hostvars["dicom_local_aes"],
                                    dict(GROUP_VARS, **{k: v for k, v in hostvars.items() if k.startswith("dicom_peers")}),
                                    only=only)
                 for name, hostvars in HOSTS.items()}
    result = run(tmp_path, fake_echo(the_plans), {"echo_audit_only_peers": "archive,mwl",
                                                  "echo_audit_fail_on_unexpected": False})
    assert result.rc == 0, result.output[-3000:]
    report = json.loads(result.latest("json"))
    assert {cell["peer"] for cell in report["cells"]} == {"archive", "mwl"}


def test_preflight_errors_stop_before_any_echo_and_name_host_and_entry(tmp_path):
    hosts = dict(HOSTS, **{"ws-1": {"dicom_local_aes": ["ws1"], "dicom_peers": ["archiv", "mwll"]}})
    inventory = write_inventory(tmp_path / "bad.yml", hosts=hosts)
    bad = run(tmp_path, {}, inventory=inventory)
    assert bad.rc != 0
    # Every mistake once (ansible-core repeats a failed task's msg: it only counts them).
    assert "the audit stops before any echo: 2 mistakes, listed in errors" in bad.output, bad.output[-3000:]
    for mistake in ("host ws-1: dicom_peers[0] (archiv): unknown AE 'archiv', not in dicom_aes (did you mean archive?)",
                    "host ws-1: dicom_peers[1] (mwll): unknown AE 'mwll', not in dicom_aes (did you mean mwl?)"):
        assert bad.output.count(mistake) == 1, bad.output[-3000:]
    assert "Traceback" not in bad.output
    assert "Matrix, reports, verdict" not in bad.output, "any_errors_fatal stops every host"
    assert not (tmp_path / "reports").exists()

    typo = run(tmp_path / "typo", {}, {"echo_audit_only_peers": ["archive", "printr"]})
    assert typo.rc != 0 and "echo_audit_only_peers: printr is not a peer" in typo.output
    # As `-e echo_audit_only_peers=archive,printr` gives it: names, not letters.
    typo_text = run(tmp_path / "typo-text", {}, {"echo_audit_only_peers": "archive, printr"})
    assert typo_text.rc != 0 and "echo_audit_only_peers: printr is not a peer" in typo_text.output

    # Echo options as the module checks them, before any echo (else every cell becomes not_run and
    # replaces latest.*); as -e gives them too (text).
    for name, value, fragment in [("echo_audit_connect_timeout", 0, "must be a positive number of seconds"),
                                  ("echo_audit_parallel", "0", "must be between 1 and 256, got 0"),
                                  ("echo_audit_max_pdu", 100, "must be 0 (unlimited) or at least 4096")]:
        wrong_option = run(tmp_path / name, {}, {name: value})
        assert wrong_option.rc != 0 and ": %s: %s" % (name, fragment) in wrong_option.output, \
            wrong_option.output[-2000:]
        assert "Traceback" not in wrong_option.output
        assert not (tmp_path / name / "reports").exists()
    # Report settings: a negative limit would drop the last failures from the reports.
    for name, value, message in [("echo_audit_report_max_failures", "-1", "must be a whole number >= 0, got -1"),
                                 ("echo_audit_report_dir_mode", "abc",
                                  'must be an octal mode in quotes like "0750", got abc')]:
        wrong_setting = run(tmp_path / name, {}, {name: value})
        assert wrong_setting.rc != 0 and "%s %s" % (name, message) in wrong_setting.output, \
            wrong_setting.output[-2000:]
        assert not (tmp_path / name / "reports").exists()

    # A registry entry with TLS settings but TLS off would fail each of its hosts' calls: stopped here.
    half_tls = dict(REGISTRY, archive=dict(REGISTRY["archive"], tls={"ca_file": "/etc/dicom/ca.pem"}))
    tls_off = run(tmp_path / "tls-off", {}, inventory=write_inventory(tmp_path / "tls-off.yml", registry=half_tls))
    assert tls_off.rc != 0 and "dicom_aes.archive.tls sets ca_file but TLS is off" in tls_off.output, \
        tls_off.output[-2000:]
    assert not (tmp_path / "tls-off" / "reports").exists()

    # One matrix of every host of the play: a serial batch would see only some of them.
    serial = tmp_path / "serial"
    serial.mkdir()
    (serial / "serial.yml").write_text(PLAYBOOK.replace("  gather_facts: false\n", "  gather_facts: false\n  serial: 2\n", 1))
    batched = run(serial, {}, playbook=str(serial / "serial.yml"))
    assert batched.rc != 0 and "run it without serial" in batched.output, batched.output[-2000:]
    assert "HostVarsVars" not in batched.output and not (serial / "reports").exists()

    missing = run(tmp_path / "missing", {}, {"echo_audit_baseline": str(tmp_path / "nope.json")})
    assert missing.rc != 0 and "nope.json does not exist" in missing.output

    (tmp_path / "notreport.json").write_text('{"hello": 1}')
    wrong = run(tmp_path / "wrong", {}, {"echo_audit_baseline": str(tmp_path / "notreport.json")})
    assert wrong.rc != 0 and "not a JSON report of dicom.network.echo_audit (no schema_version)" in wrong.output
    # A directory named latest.html stopped the run after the formats before it: latest.* half new, half old.
    (tmp_path / "in-the-way" / "reports" / "latest.html").mkdir(parents=True)
    (tmp_path / "in-the-way" / "reports" / "latest.json").write_text("{}")
    in_the_way = run(tmp_path / "in-the-way", {})
    assert in_the_way.rc != 0 and "%s: not a regular file, where this run writes a report" % (
        tmp_path / "in-the-way" / "reports" / "latest.html") in in_the_way.output, in_the_way.output[-2000:]
    assert (tmp_path / "in-the-way" / "reports" / "latest.json").read_text() == "{}"
    assert not list((tmp_path / "in-the-way" / "reports").glob("echo-audit-*"))
    # An empty baseline (a failed copy) read as "no baseline" and let the regression gate pass.
    (tmp_path / "empty.json").write_text(" \n")
    empty = run(tmp_path / "empty", {}, {"echo_audit_baseline": str(tmp_path / "empty.json"),
                                         "echo_audit_fail_on_regression": True})
    assert empty.rc != 0 and "empty.json is empty, not a report of dicom.network.echo_audit" in empty.output, \
        empty.output[-2000:]
    assert not (tmp_path / "empty" / "reports").exists()
    assert "Traceback" not in typo.output + missing.output + wrong.output + empty.output + in_the_way.output


def test_example_inventory_resolves_for_every_source_host(tmp_path):
    playbook = tmp_path / "plans.yml"
    playbook.write_text("""
- hosts: dicom_sources
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: dicom.network.echo_audit
        tasks_from: plan.yml
    - ansible.builtin.copy:
        content: "{{ __echo_audit_plan.plans | to_json }}"
        dest: "{{ plans_out }}"
        mode: "0600"
      run_once: true
      delegate_to: localhost
""")
    out = tmp_path / "plans.json"
    result = run(tmp_path, {}, {"plans_out": str(out), "ansible_connection": "local"}, playbook=str(playbook),
                 inventory=REPO_ROOT / "inventory.example")
    assert result.rc == 0, result.output[-3000:]
    resolved = json.loads(out.read_text())
    assert sorted(resolved) == ["ct-b2.example.org", "pacs-a.example.org", "probe-mod-a.example.org",
                                "probe-mod-b.example.org", "router-b.example.org", "ws-a1.example.org",
                                "ws-a2.example.org", "ws-b1.example.org"]

    def peers(host, calling):
        (call,) = [c for c in resolved[host]["calls"] if c["calling"] == calling]
        return {p["name"]: p["expect"] for p in call["peers"]}

    assert peers("probe-mod-a.example.org", "ct_a1") == {"pacs_archive": "accept", "ris_mwl": "accept",
                                                         "printer_a": "accept"}
    assert peers("probe-mod-b.example.org", "cr_b1") == {"pacs_archive": "accept", "ris_mwl": "accept",
                                                         "router_b": "accept"}
    assert peers("probe-mod-b.example.org", "us_b1")["printer_b"] == "accept"
    assert peers("ws-b1.example.org", "ws_b1") == {"router_b": "accept", "pacs_archive": "blocked", "ris_mwl": "reject"}
    # The archive's services go with every route that must be accepted, not with the blocked one.
    archive = {host: [p for c in plan["calls"] for p in c["peers"] if p["name"] == "pacs_archive"][0]
               for host, plan in resolved.items() if host in ("probe-mod-a.example.org", "ws-b1.example.org")}
    assert archive["probe-mod-a.example.org"]["services"] == ["CTImageStorage", "MRImageStorage",
                                                              "StudyRootQueryRetrieveInformationModelFind"]
    assert "services" not in archive["ws-b1.example.org"]
    assert resolved["probe-mod-a.example.org"]["bind_address"] == "192.0.2.40"
    # The Windows CT is echoed by its probe, from the address registered for it.
    assert resolved["ct-b2.example.org"]["bind_address"] == "198.51.100.43"
    assert "pacs_archive" in peers("ct-b2.example.org", "ct_b2")
    assert peers("router-b.example.org", "router_b")["pacs_archive_tls"] == "accept"
    tls_peer = [p for p in resolved["router-b.example.org"]["calls"][0]["peers"] if p["name"] == "pacs_archive_tls"]
    assert tls_peer[0]["tls"]["enabled"] is True
    addresses = {p["host"] for plan in resolved.values() for call in plan["calls"] for p in call["peers"]}
    assert all(re.match(r"^(192\.0\.2|198\.51\.100|203\.0\.113)\.", address) for address in addresses)


@pytest.mark.parametrize("playbook", ["dicom.network.audit", "dicom.network.verify",
                                      str(REPO_ROOT / "playbooks" / "audit.yml"),
                                      str(REPO_ROOT / "playbooks" / "verify.yml")])
def test_playbooks_load_by_name_and_from_the_checkout(tmp_path, playbook):
    # A peer limit that matches nothing stops the play in the preflight, before any echo: this loads
    # the playbook, the role and the example inventory for every host without touching the network.
    result = run(tmp_path, {}, {"echo_audit_only_peers": ["no_such_peer"], "ansible_connection": "local"},
                 playbook=playbook, inventory=REPO_ROOT / "inventory.example")
    assert result.rc == 2, result.output[-3000:]
    assert "echo_audit_only_peers: no_such_peer is not a peer (registry name or AE title) of any host" in result.output
    assert "Echo every peer" not in result.output


def _big(tmp_path: Path, hosts: int, aes_per_host: int, peers: int):
    registry = {"peer%03d" % i: {"ae_title": "PEER_%03d" % i, "host": "192.0.2.%d" % (i % 250 + 1),
                                 "port": 10000 + i, "site": "Site %s" % "ABCDE"[i % 5], "kind": "archive",
                                 "description": "peer %d <i>untrusted</i>" % i} for i in range(peers)}
    hostvars = {}
    for h in range(hosts):
        local = []
        for a in range(aes_per_host):
            name = "src%02d_%02d" % (h, a)
            registry[name] = {"ae_title": "SRC_%02d_%02d" % (h, a), "host": "198.51.100.%d" % (h + 1),
                              "port": 104 + a, "site": "Site %s" % "ABCDE"[h % 5], "kind": "modality"}
            local.append(name)
        hostvars["src%02d" % h] = {"dicom_local_aes": local}
    group_vars = {"dicom_peers_all": sorted(name for name in registry if name.startswith("peer"))}
    the_plans = plans(registry, hostvars, group_vars)
    outcomes = {}
    for h in range(hosts):
        for a in range(aes_per_host):
            for i in range(0, peers, 7):
                outcomes["SRC_%02d_%02d>peer%03d" % (h, a, i)] = ["refused", "timeout", "rejected", "aborted"][i % 4]
    fakes = fake_echo(the_plans, outcomes, unreachable=("src03",))
    inventory = write_inventory(tmp_path / "big.yml", registry, hostvars, group_vars)
    return inventory, fakes


def test_html_at_300_by_300_stays_small_and_complete(tmp_path):
    """30 hosts x 10 calling AEs x 300 peers = 90,000 cells through the real role tasks."""
    inventory, fakes = _big(tmp_path, hosts=30, aes_per_host=10, peers=300)
    result = run(tmp_path, fakes, {"echo_audit_fail_on_unexpected": False}, inventory=inventory, args=["-f", "10"])
    assert result.rc == 0, result.output[-3000:]
    html_path = result.report_dir / "latest.html"
    size = html_path.stat().st_size
    html = html_path.read_text(encoding="utf-8")
    assert size < 8 * 1024 * 1024, size
    data = json.loads(html[html.index('id="data">') + 10:html.index("</script>")])
    assert len(data["rows"]) == 300 and len(data["columns"]) == 300
    assert sum(len(row) for row in data["cells"]) == 90000
    build_ms = None
    dom = chromium_dom(html_path)
    if dom is not None:
        assert dom.count("<td class=\"o") == 90000
        build_ms = int(re.search(r'data-build-ms="(\d+)"', dom).group(1))
    report = json.loads(result.latest("json"))
    assert report["summary"]["total"] == 90000 and report["summary"]["not_run"] == 3000
    sizes = {path.name: path.stat().st_size for path in result.report_dir.iterdir() if path.name.startswith("latest")}
    print("\n300x300: ansible-playbook %.1f s, report sizes %s, matrix built by the page in %s ms (headless Chromium)"
          % (result.seconds, sizes, build_ms))


@pytest.mark.parametrize("playbook", ["dicom.network.audit", "dicom.network.verify"])
def test_a_host_pattern_that_matches_no_host_fails_naming_it(tmp_path, playbook):
    """An audit of nothing used to exit 0: an AWX schedule went green while auditing no host."""
    result = run(tmp_path, {}, {"echo_audit_hosts": "dicom_nowhere"}, playbook=playbook,
                 inventory=write_inventory(tmp_path / "inv.yml"))
    assert result.rc == 2, result.output[-3000:]
    assert "no host of the inventory matches echo_audit_hosts=dicom_nowhere: put the source hosts in the group " \
           "dicom_sources, or set echo_audit_hosts to their group or pattern" in result.output
    assert "Echo every peer" not in result.output and not (tmp_path / "reports").exists()
