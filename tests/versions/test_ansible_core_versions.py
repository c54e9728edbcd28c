"""The audit, the recover playbook and dicom.network.echo on every ansible-core that meta/runtime.yml
promises (2.15 to 2.20), through the public interface only: the collection's playbooks, the role's
documented variables, the inventory model, the report files and the exit codes.

Run by ``scripts/test versions``, which builds one venv per ansible-core minor (.venv/core/<X.Y>,
scripts/lib/setup.sh) and passes them in DICOM_NETWORK_CORE_VENVS ("2.15=/path 2.16=/path ...").
Each venv is the controller (its ansible-playbook) and, with a local connection, the source hosts'
Python too. The peers are real and on loopback, started once for every version, so a version's
reports can be compared with the others' after normalising only what legitimately differs (times,
durations, run stamps, temp paths, ansible-core's own wording of an unreachable host).

- every version: one audit of a small network (three sources bound to their own 127.41.0.x, four
  peers, one unreachable source), every report format; the module directly, in check mode too.
- oldest and newest (FULL): a second audit against the first one's baseline, and an audit interrupted
  with SIGINT then reported by dicom.network.recover.
- last: the normalised reports of every version are equal, scenario by scenario.
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from xml.etree import ElementTree

import pytest

from tests.peers import dcmtk
from tests.peers.base import closed_port, free_port, stop_all
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.system.helpers import run_playbook

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

# Keep equal to CORE_VERSIONS in scripts/lib/setup.sh.
VERSIONS = ("2.15", "2.16", "2.17", "2.18", "2.19", "2.20")
# The oldest and the newest get the whole story (baseline, interrupted run, recover).
FULL = (VERSIONS[0], VERSIONS[-1])
FORMATS = ("json", "html", "md", "csv", "junit.xml")
# Bounded everywhere: an audit of this network takes ~10 s; a hung play must not eat the CI budget.
PLAYBOOK_TIMEOUT = 180
TIMEOUTS = ("-e", "echo_audit_connect_timeout=3", "-e", "echo_audit_acse_timeout=5",
            "-e", "echo_audit_dimse_timeout=5")

# version -> scenario -> {"files": normalised reports, ...}; filled by the per-version tests, compared last.
STORE: Dict[str, Dict[str, Dict[str, Any]]] = {}
# version -> what the closing summary table shows (scripts/test prints it from DICOM_NETWORK_VERSIONS_SUMMARY).
SUMMARY: Dict[str, Dict[str, Any]] = {}


def _ci() -> bool:
    value = os.environ.get("CI", "")
    return bool(value) and value.lower() != "false" and value != "0"


def _venvs() -> Dict[str, Path]:
    venvs = {}
    for item in os.environ.get("DICOM_NETWORK_CORE_VENVS", "").split():
        version, path = item.split("=", 1)
        venvs[version] = Path(path)
    return venvs


def venv_of(version: str) -> Path:
    """The venv of ``version``; skips (fails in CI) when scripts/test did not build it."""
    venvs = _venvs()
    if version in venvs:
        return venvs[version]
    if not venvs:
        pytest.skip("DICOM_NETWORK_CORE_VENVS is not set: run ./scripts/test versions")
    wanted = os.environ.get("DICOM_NETWORK_CORE_WANTED", "").split()
    if wanted and version not in wanted:
        pytest.skip("ansible-core %s not asked for (DICOM_NETWORK_CORE_VERSIONS=%s)" % (version, " ".join(wanted)))
    (pytest.fail if _ci() else pytest.skip)("no venv for ansible-core %s (no interpreter for it?)" % version)
    raise AssertionError("unreachable")


def _env(workdir: Path) -> Dict[str, str]:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCAL_TEMP=str(workdir / ".ansible-local"), ANSIBLE_REMOTE_TEMP=str(workdir / ".ansible-remote"))
    # Whatever ansible.cfg or ansible-core settings the caller has must not change one version's run only.
    for name in list(env):
        if name.startswith("ANSIBLE_") and name not in (
                "ANSIBLE_NOCOLOR", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_LOCAL_TEMP",
                "ANSIBLE_REMOTE_TEMP", "ANSIBLE_COLLECTIONS_PATH"):
            del env[name]
    return env


def playbook(version: str, workdir: Path, inventory: Optional[Path], name: str, *extra: str,
             timeout: float = PLAYBOOK_TIMEOUT) -> Tuple[subprocess.CompletedProcess, float]:
    """``ansible-playbook [-i inventory] dicom.network.<name> ...`` with ``version``'s ansible-core; the
    result and its wall time."""
    command = [str(venv_of(version) / "bin" / "ansible-playbook")]
    if inventory is not None:
        command += ["-i", str(inventory)]
    command += ["dicom.network.%s" % name, *extra]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=str(workdir), env=_env(workdir), capture_output=True, text=True,
                               timeout=timeout, check=False)
    return completed, time.monotonic() - started


def failed_tasks(completed: subprocess.CompletedProcess) -> str:
    """The play's failed tasks and errors, to say in one assertion message why there is no report."""
    lines = (completed.stdout + completed.stderr).splitlines()
    keep, task = [], ""
    for line in lines:
        if line.startswith("TASK ["):
            task = line
        elif re.match(r"^(fatal|failed|ERROR|\[ERROR\])", line) or "FAILED!" in line:
            keep.append("%s\n    %s" % (task, line[:600]))
    return "\n".join(keep[-6:]) or "\n".join(lines[-30:])


# ------------------------------------------------------------------------------------------------ peers
@pytest.fixture(scope="module")
def network(tmp_path_factory, hostile_factory):
    """Real peers on loopback, started once for every version (so every version sees the same ports)."""
    workdir = tmp_path_factory.mktemp("versions-peers")
    procs = []
    try:
        specs = {
            "archive": ({"behaviour": "accept", "ae_title": "ARCHIVE"}, ""),
            # Only SRC_A may call the CT: SRC_B must be rejected (calling AE title not recognised).
            "ct": ({"behaviour": "reject-calling", "ae_title": "CT_SCAN", "allowed_calling": ["SRC_A"]}, ""),
            # The printer switched back on for the second run (same AE title, another port).
            "printer_on": ({"behaviour": "accept", "ae_title": "PRINTER"}, ""),
        }
        proc, scps = start_pynetdicom_peers(workdir / "pynetdicom", specs, prefix="versions")
        procs.append(proc)
        proc, store = dcmtk.start_storescp(workdir, ae_title="WS_STORE", name="versions-storescp")
        procs.append(proc)
        silent = hostile_factory("silent")
        aes = {
            "archive": {"ae_title": "ARCHIVE", "host": "127.0.0.1", "port": scps["archive"].port,
                        "site": "Main", "kind": "archive", "description": "Archive <b>accepts</b> everyone"},
            "ct": {"ae_title": "CT_SCAN", "host": "127.0.0.1", "port": scps["ct"].port, "site": "Main",
                   "kind": "modality", "description": "CT: only SRC_A may call"},
            "ws_store": {"ae_title": "WS_STORE", "host": "127.0.0.1", "port": store.port, "site": "Annex",
                         "kind": "workstation", "description": "DCMTK storescp"},
            "printer": {"ae_title": "PRINTER", "host": "127.0.0.1", "port": closed_port(), "site": "Annex",
                        "kind": "printer", "description": "Printer, switched off"},
        }
        for index, letter in enumerate("ABCD"):
            aes["src_%s" % letter.lower()] = {"ae_title": "SRC_%s" % letter, "host": "127.41.0.%d" % (11 + index),
                                              "port": 104, "site": "Main", "kind": "workstation"}
        yield {"aes": aes, "printer_on_port": scps["printer_on"].port, "unreachable_port": closed_port(),
               "silent": silent}
    finally:
        stop_all(procs)


def write_inventory(directory: Path, version: str, aes: Dict[str, Any], sources: Dict[str, Any]) -> Path:
    """The documented inventory model: dicom_aes in group_vars/all, the sources in dicom_sources, each
    local source running the module with the version's own Python."""
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "all" / "dicom_aes.json").write_text(json.dumps({"dicom_aes": aes}, indent=1))
    python = str(venv_of(version) / "bin" / "python")
    hosts = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": python},
                     "children": {"dicom_sources": {"hosts": sources}}}}
    (directory / "hosts.json").write_text(json.dumps(hosts, indent=1))
    return directory / "hosts.json"


def first_sources(unreachable_port: int) -> Dict[str, Any]:
    return {
        "src-a": {"dicom_bind_address": "127.41.0.11", "dicom_local_aes": ["src_a"],
                  # printer: switched off and expected to answer, the check that fails the audit.
                  "dicom_peers": ["archive", "ct", "ws_store", "printer"]},
        "src-b": {"dicom_bind_address": "127.41.0.12", "dicom_local_aes": ["src_b"],
                  "dicom_peers": ["archive", {"name": "ct", "expect": "reject"},
                                  {"name": "printer", "expect": "blocked"}]},
        "src-c": {"dicom_bind_address": "127.41.0.13", "dicom_local_aes": ["src_c"],
                  "dicom_peers": ["archive", "ws_store"]},
        # A cart that is switched off: SSH to a closed port on loopback, refused at once.
        "offline": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": unreachable_port,
                    "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes",
                    "dicom_local_aes": ["src_d"], "dicom_peers": ["archive"]},
    }


# ------------------------------------------------------------------------------------------ normalising
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
# A run's stamp, with the -2, -3 of a second run in the same second, or the random tail of a run id.
RUN_STAMP = re.compile(r"\d{8}T\d{6}(?:\.\d+)?Z(?:-[0-9a-f]{6}(?![0-9a-z])|-\d+)?")
# Numbers that are measured, not decided: "12.3 ms", "0.012 s", JUnit's time="0.012000".
MEASURED = re.compile(r"\b\d+\.\d+(?=\s?(?:ms|s)\b)")
# The round-trip times of a JUnit case or a Markdown cell, "rtt: 3.4 / 3.6 / 4.1 ms" (min / avg / max).
RTT_TRIPLE = re.compile(r"\b\d+(?:\.\d+)? / \d+(?:\.\d+)? / \d+(?:\.\d+)?(?=\s?ms\b)")
JUNIT_TIME = re.compile(r'\btime="[0-9.]+"')
# Keys of the JSON report (and CSV columns) whose values are measurements.
MEASURED_KEYS = {"rtt_ms", "timings_ms", "duration_ms", "generated_at", "started_at", "finished_at",
                 "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"}
# The HTML page's data: a JSON document in <script id="data">, whose packed cells end with the round trip.
HTML_DATA = re.compile(r'(<script type="application/json" id="data">)(.*?)(</script>)', re.S)


def _unreachable_messages(report: Any) -> List[str]:
    """The texts ansible-core wrote for unreachable hosts (its wording differs between versions)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("not_run_reason") == "unreachable" and isinstance(node.get("message"), str):
                found.append(node["message"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(report)
    return sorted(set(found), key=len, reverse=True)


def _unreachable_core(message: str) -> str:
    """The part of an unreachable message that is ansible-core's/ssh's text: what follows our prefix
    (e.g. "unreachable: " or "probe X unreachable: ")."""
    match = re.match(r"^(.*?unreachable[^:]*:\s*)(.+)$", message, re.S)
    return match.group(2) if match else message


def normalise_text(text: str, workdir: Path, ansible_texts: List[str]) -> str:
    for raw in ansible_texts:
        core = _unreachable_core(raw)
        # Every escaping the reports use: raw (JSON, CSV), HTML/XML, and Markdown's backslashes.
        for variant in sorted({core, html.escape(core), html.escape(core, quote=False),
                               re.sub(r"([\\`*_{}\[\]()#+.!|<>-])", r"\\\1", core),
                               json.dumps(core)[1:-1]}, key=len, reverse=True):
            text = text.replace(variant, "<ANSIBLE-UNREACHABLE-TEXT>")
    for path in sorted({str(workdir), str(workdir.resolve())}, key=len, reverse=True):
        text = text.replace(path, "<WORKDIR>")
    text = ISO_TIME.sub("<TIME>", text)
    text = RUN_STAMP.sub("<STAMP>", text)
    text = JUNIT_TIME.sub('time="<T>"', text)
    text = RTT_TRIPLE.sub("<RTT>", text)
    return MEASURED.sub("<N>", text)


def normalise_json(node: Any, workdir: Path, ansible_texts: List[str]) -> Any:
    if isinstance(node, dict):
        return {key: ("<MEASURED>" if key in MEASURED_KEYS and value is not None
                      else normalise_json(value, workdir, ansible_texts)) for key, value in node.items()}
    if isinstance(node, list):
        return [normalise_json(value, workdir, ansible_texts) for value in node]
    if isinstance(node, str):
        return normalise_text(node, workdir, ansible_texts)
    return node


def _floats_to_placeholder(node: Any) -> Any:
    if isinstance(node, list):
        return [_floats_to_placeholder(value) for value in node]
    return "<RTT>" if isinstance(node, float) else node


def normalise_html(text: str, workdir: Path, ansible_texts: List[str]) -> str:
    def data(match):
        document = normalise_json(json.loads(match.group(2)), workdir, ansible_texts)
        # Packed cells: [column, detail, round trip]; indices are ints, round trips floats.
        document["cells"] = _floats_to_placeholder(document.get("cells"))
        return match.group(1) + json.dumps(document, sort_keys=True) + match.group(3)
    text, found = HTML_DATA.subn(data, text)
    assert found == 1, "the HTML report has no <script id=data> block: update normalise_html"
    return normalise_text(text, workdir, ansible_texts)


def normalise_csv(text: str, workdir: Path, ansible_texts: List[str]) -> List[Dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{key: "<MEASURED>" if key in MEASURED_KEYS and value else normalise_text(value or "", workdir, ansible_texts)
             for key, value in row.items()} for row in rows]


def normalised_reports(workdir: Path, paths: Dict[str, Path]) -> Dict[str, Any]:
    """format -> normalised content of one run's reports (JSON parsed, the others text)."""
    report = json.loads(paths["json"].read_text())
    texts = _unreachable_messages(report)
    read = {fmt: paths[fmt].read_text(encoding="utf-8") for fmt in FORMATS[1:]}
    return {"json": normalise_json(report, workdir, texts), "html": normalise_html(read["html"], workdir, texts),
            "md": normalise_text(read["md"], workdir, texts), "csv": normalise_csv(read["csv"], workdir, texts),
            "junit.xml": normalise_text(read["junit.xml"], workdir, texts)}


def latest_paths(report_dir: Path) -> Dict[str, Path]:
    return {fmt: report_dir / ("latest.%s" % fmt) for fmt in FORMATS}


def record(version: str, scenario: str, **values: Any) -> None:
    STORE.setdefault(version, {}).setdefault(scenario, {}).update(values)


def cells(report: Dict[str, Any]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(c["source_host"], c["called_ae_title"]): c for c in report["cells"]}


def test_normalising_keeps_what_a_version_could_get_wrong(tmp_path):
    """The comparison can fail: normalising hides measurements and ansible-core's unreachable wording,
    not outcomes, messages of ours, peers or ports."""
    unreachable = "unreachable: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 22: refused"
    report = {"generated_at": "2026-12-07T14:48:02Z", "cells": [
        {"outcome": "success", "ok": True, "rtt_ms": 3.1, "timings_ms": {"total": 9.2}, "peer_port": 23839,
         "message": "C-ECHO success (0x0000)", "started_at": "2026-12-07T14:48:02.483+00:00"},
        {"outcome": "not_run", "ok": False, "not_run_reason": "unreachable", "message": unreachable}]}
    other = json.loads(json.dumps(report))
    other["generated_at"], other["cells"][0]["rtt_ms"], other["cells"][0]["timings_ms"]["total"] = "2027-01-01T00:00:00Z", 7.0, 1.0
    other["cells"][1]["message"] = "unreachable: Data could not be sent to remote host \"127.0.0.1\"."

    def norm(document):
        return normalise_json(document, tmp_path, _unreachable_messages(document))
    assert norm(report) == norm(other)
    for key, value in (("outcome", "rejected"), ("peer_port", 23840), ("message", "C-ECHO success (0x0001)")):
        changed = json.loads(json.dumps(report))
        changed["cells"][0][key] = value
        assert norm(changed) != norm(report), key
    changed = json.loads(json.dumps(report))
    changed["cells"][1]["message"] = "not run: " + unreachable[len("unreachable: "):]
    assert norm(changed) != norm(report), "only the text after our 'unreachable:' prefix is ansible-core's"
    header = "source_host,outcome,rtt_avg_ms,message\n"
    measured = normalise_csv(header + "a,success,3.1,ok\n", tmp_path, [])
    assert measured == normalise_csv(header + "a,success,9.9,ok\n", tmp_path, [])
    assert measured != normalise_csv(header + "a,refused,3.1,ok\n", tmp_path, [])
    page = '<p>%s</p><script type="application/json" id="data">{"cells": [[[0, 3], [1, 2, %s]]]}</script>'
    assert normalise_html(page % ("x", "3.044"), tmp_path, []) == normalise_html(page % ("x", "7.5"), tmp_path, [])
    assert normalise_html(page % ("x", "3.044"), tmp_path, []) != normalise_html(page % ("y", "3.044"), tmp_path, [])
    assert normalise_html(page.replace("[1, 2", "[1, 4") % ("x", "3.0"), tmp_path, []) != \
        normalise_html(page % ("x", "3.0"), tmp_path, [])
    junit = '<failure message="x">rtt: 3.377 / 3.377 / 6.1 ms, outcome %s</failure>'
    assert normalise_text(junit % "success", tmp_path, []) == normalise_text(junit.replace("3.377", "6.619") % "success",
                                                                             tmp_path, [])
    assert normalise_text(junit % "success", tmp_path, []) != normalise_text(junit % "refused", tmp_path, [])


# ------------------------------------------------------------------------------- every version: audit
@pytest.mark.parametrize("version", VERSIONS)
def test_audit(version, network, tmp_path_factory):
    """One audit, every format: the expected outcomes, the unreachable host's cells not_run, exit code 2."""
    venv_of(version)
    workdir = tmp_path_factory.mktemp("audit-%s" % version)
    inventory = write_inventory(workdir / "inventory", version, network["aes"],
                                first_sources(network["unreachable_port"]))
    report_dir = workdir / "reports"
    completed, wall = playbook(
        version, workdir, inventory, "audit", "-e", "echo_audit_report_dir=%s" % report_dir,
        "-e", '{"echo_audit_report_formats": ["json", "html", "md", "csv", "junit"]}',
        # Saved although partial (the offline host's checks did not run): the FULL versions' second run compares with it.
        "-e", "echo_audit_baseline_save=true", "-e", "echo_audit_baseline_save_partial=true", *TIMEOUTS)
    SUMMARY.setdefault(version, {}).update(audit_s=round(wall, 1), audit_rc=completed.returncode)
    record(version, "audit", workdir=workdir, report_dir=report_dir, inventory=inventory)
    paths = latest_paths(report_dir)
    missing = [fmt for fmt, path in paths.items() if not path.exists()]
    SUMMARY[version]["reports"] = "missing" if missing else "written"
    assert not missing, "ansible-core %s wrote no %s report (exit %d); failed:\n%s" % (
        version, ", ".join(missing), completed.returncode, failed_tasks(completed))
    assert "Traceback" not in completed.stdout + completed.stderr
    # The play fails on the check that is not as expected (the printer is off), and the offline source host is
    # unreachable: 4 from 2.17 on. ansible-core 2.15 and 2.16 do not template ignore_unreachable per host, so
    # there every unreachable host counts as ignored (the first host's rule for all) and the code is 2.
    assert completed.returncode == unreachable_rc(version), failed_tasks(completed)
    assert "fatal: [offline]: UNREACHABLE!" in completed.stdout

    report = json.loads(paths["json"].read_text())
    by_pair = cells(report)
    expected = {
        ("src-a", "ARCHIVE"): ("success", True), ("src-a", "CT_SCAN"): ("success", True),
        ("src-a", "WS_STORE"): ("success", True), ("src-a", "PRINTER"): ("refused", False),
        ("src-b", "ARCHIVE"): ("success", True), ("src-b", "CT_SCAN"): ("rejected", True),
        ("src-b", "PRINTER"): ("refused", True),
        ("src-c", "ARCHIVE"): ("success", True), ("src-c", "WS_STORE"): ("success", True),
        ("offline", "ARCHIVE"): ("not_run", False),
    }
    assert {pair: (c["outcome"], c["ok"]) for pair, c in by_pair.items()} == expected
    offline = by_pair[("offline", "ARCHIVE")]
    assert offline["not_run_reason"] == "unreachable" and "unreachable" in offline["message"], offline
    assert "calling-ae-title-not-recognized" in by_pair[("src-b", "CT_SCAN")]["message"]
    assert by_pair[("src-a", "ARCHIVE")]["source_address"] == "127.41.0.11"
    assert by_pair[("src-c", "WS_STORE")]["source_address"] == "127.41.0.13"
    assert report["summary"]["total"] == 10 and report["summary"]["not_run"] == 1
    assert report["complete"] is False
    # Every format says the same: one CSV row and one JUnit case per cell, the failures as failures.
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert len(rows) == 10
    cases = ElementTree.parse(paths["junit.xml"]).getroot().findall(".//testcase")
    assert len(cases) == 10
    assert sum(1 for case in cases if case.find("failure") is not None or case.find("error") is not None) == 2
    assert "PRINTER" in paths["md"].read_text() and "PRINTER" in paths["html"].read_text()
    stamped = list(report_dir.glob("echo-audit-*.json"))
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == report
    assert (report_dir / "baseline.json").exists(), "echo_audit_baseline_save_partial=true saves the baseline"
    record(version, "audit", files=normalised_reports(workdir, paths))


# --------------------------------------------------------------------------- every version: the module
def module_tasks(aes: Dict[str, Any]) -> List[Dict[str, Any]]:
    peer = {name: {"name": name, "ae_title": aes[name]["ae_title"], "host": aes[name]["host"],
                   "port": aes[name]["port"]} for name in ("archive", "ct", "ws_store", "printer")}
    args = {"calling_ae_title": "SRC_A", "bind_address": "127.41.0.31", "connect_timeout": 3, "acse_timeout": 5,
            "dimse_timeout": 5,
            "peers": [peer["archive"], peer["ct"], peer["ws_store"], dict(peer["printer"], expect="blocked"),
                      dict(peer["ct"], name="ct-as-other", calling_ae_title="OTHER", expect="reject")]}
    failing = {"calling_ae_title": "SRC_A", "connect_timeout": 3, "peers": [peer["archive"], peer["printer"]]}
    return [
        {"name": "echo", "dicom.network.echo": args, "register": "echo_result"},
        {"name": "echo in check mode", "dicom.network.echo": args, "check_mode": True, "register": "echo_check"},
        {"name": "echo a peer that is off", "dicom.network.echo": failing, "register": "echo_failing",
         "ignore_errors": True},
    ]


# Keys the module returns (ansible-core adds others, e.g. invocation, which it words its own way).
MODULE_KEYS = ("changed", "failed", "msg", "results", "summary", "echoed_from")


@pytest.mark.parametrize("version", VERSIONS)
def test_echo_module(version, network, tmp_path_factory):
    """dicom.network.echo called directly: never changed (check mode included), not-as-expected fails."""
    venv = venv_of(version)
    workdir = tmp_path_factory.mktemp("module-%s" % version)
    started = time.monotonic()
    result = run_playbook(workdir, module_tasks(network["aes"]), ansible_bin=venv / "bin",
                          inventory="localhost ansible_connection=local ansible_python_interpreter=%s\n"
                          % (venv / "bin" / "python"), env=_env(workdir), timeout=PLAYBOOK_TIMEOUT,
                          capture=("echo_result", "echo_check", "echo_failing"))
    module_s = round(time.monotonic() - started, 1)
    SUMMARY.setdefault(version, {})["module_s"] = "%.1fs (failed)" % module_s
    assert result["rc"] == 0, result["stdout_text"][-3000:]
    normal, check, failing = result["echo_result"], result["echo_check"], result["echo_failing"]
    for registered in (normal, check, failing):
        assert registered and registered["changed"] is False, registered
    outcomes = [(r["name"], r["outcome"], r["ok"]) for r in normal["results"]]
    assert outcomes == [("archive", "success", True), ("ct", "success", True), ("ws_store", "success", True),
                        ("printer", "refused", True), ("ct-as-other", "rejected", True)]
    # From the bind address (the refused connection has no source address to show).
    assert {r["source_address"] for r in normal["results"] if r["outcome"] != "refused"} == {"127.41.0.31"}
    assert [(r["name"], r["outcome"]) for r in check["results"]] == [(n, o) for n, o, _ok in outcomes]
    assert failing["failed"] is True and failing["summary"]["failed"] == 1, failing
    trimmed = {name: {key: value[key] for key in MODULE_KEYS if key in value}
               for name, value in (("echo", normal), ("check", check), ("failing", failing))}
    record(version, "module", files={"json": normalise_json(trimmed, workdir, [])})
    SUMMARY[version]["module_s"] = module_s


# --------------------------------------------------------------- oldest and newest: baseline and recover
@pytest.mark.parametrize("version", FULL)
def test_second_run_diffs_against_the_baseline(version, network):
    """The printer is back on (src-a fixed, src-b's "blocked" broke), src-c gets the CT (appeared, and
    rejected) and loses the workstation (disappeared)."""
    venv_of(version)
    first = STORE.get(version, {}).get("audit", {})
    if "files" not in first:
        pytest.fail("the first audit on ansible-core %s wrote no reports to compare with (see test_audit)" % version)
    workdir, report_dir = first["workdir"], first["report_dir"]
    aes = dict(network["aes"], printer=dict(network["aes"]["printer"], port=network["printer_on_port"]))
    sources = first_sources(network["unreachable_port"])
    sources["src-c"] = dict(sources["src-c"], dicom_peers=["archive", "ct"])
    inventory = write_inventory(workdir / "inventory-2", version, aes, sources)
    baseline = report_dir / "baseline.json"
    # Round trips are measured: on a loaded machine one can triple between the two runs, and the report then
    # says so (an RTT drift) on one ansible-core and not on another. This test is about the diff of outcomes,
    # so the baseline forgets its round trips (a baseline without them shows no RTT change).
    document = json.loads(baseline.read_text())
    for cell in document["cells"]:
        cell["rtt_ms"] = None
    baseline.write_text(json.dumps(document))
    saved = baseline.read_bytes()
    time.sleep(1.1)  # a run stamp of its own (the stamps have whole seconds)
    completed, wall = playbook(version, workdir, inventory, "audit", "-e", "echo_audit_report_dir=%s" % report_dir,
                               "-e", "echo_audit_baseline=%s" % baseline, *TIMEOUTS)
    SUMMARY[version]["baseline_s"] = "%.1fs (failed)" % wall
    paths = latest_paths(report_dir)
    report = json.loads(paths["json"].read_text())
    assert report["generated_at"] != json.loads(saved)["generated_at"], failed_tasks(completed)
    assert completed.returncode == unreachable_rc(version), failed_tasks(completed)
    assert baseline.read_bytes() == saved, "echo_audit_baseline_save is off: the baseline stays"
    counts = report["baseline"]["counts"]
    assert {kind: counts[kind] for kind in ("broke", "fixed", "appeared", "disappeared")} == \
        {"broke": 1, "fixed": 1, "appeared": 1, "disappeared": 1}, report["baseline"]
    assert counts["new_failures"] == 2
    by_pair = cells(report)
    assert (by_pair[("src-a", "PRINTER")]["outcome"], by_pair[("src-a", "PRINTER")]["ok"]) == ("success", True)
    assert (by_pair[("src-b", "PRINTER")]["outcome"], by_pair[("src-b", "PRINTER")]["ok"]) == ("success", False)
    assert by_pair[("src-c", "CT_SCAN")]["outcome"] == "rejected"
    assert "Broke" in paths["md"].read_text() and "Broke" in paths["html"].read_text()
    assert len(list(report_dir.glob("echo-audit-*.json"))) == 2
    record(version, "baseline", files=normalised_reports(workdir, paths))
    SUMMARY[version]["baseline_s"] = round(wall, 1)


def unreachable_rc(version: str) -> int:
    """ansible-playbook's exit code for an audit with a failing check and an unreachable source host."""
    return 2 if version in ("2.15", "2.16") else 4


@pytest.mark.parametrize("version", FULL)
def test_recover_reports_an_interrupted_audit(version, network, tmp_path_factory):
    """An audit stopped by SIGINT (Ctrl-C) once its journal holds the plan and the fast host's results;
    dicom.network.recover then reports every planned check, those without a result as not_run."""
    venv = venv_of(version)
    workdir = tmp_path_factory.mktemp("recover-%s" % version)
    silent = network["silent"]
    aes = dict(network["aes"], silent={"ae_title": "SILENT", "host": silent.host, "port": silent.port})
    sources = {"fast": {"dicom_bind_address": "127.41.0.21", "dicom_local_aes": ["src_a"],
                        "dicom_peers": ["archive", "ws_store"]},
               "hangs": {"dicom_bind_address": "127.41.0.22", "dicom_local_aes": ["src_b"],
                         "dicom_peers": ["silent", "archive"]}}
    inventory = write_inventory(workdir / "inventory", version, aes, sources)
    report_dir = workdir / "reports"
    command = [str(venv / "bin" / "ansible-playbook"), "-i", str(inventory), "dicom.network.audit", "-f", "2",
               "-e", "echo_audit_report_dir=%s" % report_dir, "-e", "echo_audit_acse_timeout=120",
               "-e", "echo_audit_connect_timeout=3"]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=str(workdir), env=_env(workdir), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        entries: List[Path] = []
        while time.monotonic() < deadline and process.poll() is None:
            if list(report_dir.glob(".journal-*/plan.json")):
                entries = [p for p in report_dir.glob(".journal-*/*.json") if p.name != "plan.json"]
                if entries:
                    break
            time.sleep(0.2)
        assert entries, "no journal with plan.json and the fast host's results within 90 s (exit %s)" % process.poll()
        # What Ctrl-C in a terminal does: SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
    assert process.returncode != 0, output[-2000:]
    assert not (report_dir / "latest.json").exists()
    (journal,) = [p.parent for p in report_dir.glob(".journal-*/plan.json")]

    recovered, _wall = playbook(version, workdir, None, "recover", "-e", "echo_audit_report_dir=%s" % report_dir)
    recover_s = round(time.monotonic() - started, 1)
    SUMMARY.setdefault(version, {})["recover_s"] = "%.1fs (failed)" % recover_s
    assert recovered.returncode == 0, failed_tasks(recovered)
    assert not journal.exists(), "recover removes the journal once its reports are written"
    stem = "echo-audit-%s-interrupted" % journal.name[len(".journal-"):]
    paths = {fmt: report_dir / ("%s.%s" % (stem, fmt)) for fmt in FORMATS}
    missing = [fmt for fmt, path in paths.items() if not path.exists()]
    assert not missing, "recover wrote no %s; output:\n%s" % (missing, failed_tasks(recovered))
    report = json.loads(paths["json"].read_text())
    got = {pair: (c["outcome"], c.get("not_run_reason")) for pair, c in cells(report).items()}
    assert got == {("fast", "ARCHIVE"): ("success", None), ("fast", "WS_STORE"): ("success", None),
                   ("hangs", "SILENT"): ("not_run", "interrupted"), ("hangs", "ARCHIVE"): ("not_run", "interrupted")}
    assert report["complete"] is False and report["partial_reasons"][0].startswith("interrupted")
    record(version, "recover", files=normalised_reports(workdir, paths))
    SUMMARY.setdefault(version, {})["recover_s"] = recover_s


@pytest.mark.parametrize("version", FULL)
def test_golive(version, network, tmp_path_factory):
    """The go-live check: a stand-in (dicom.network.listen, async) for a new device, src-a expected to be
    accepted and src-b turned away; src-a's host stands in."""
    venv_of(version)
    workdir = tmp_path_factory.mktemp("golive-%s" % version)
    port = free_port()
    aes = dict(network["aes"], newct={"ae_title": "NEWCT", "host": "127.0.0.1", "port": port, "kind": "modality"})
    sources = {"src-a": {"dicom_bind_address": "127.41.0.31", "dicom_local_aes": ["src_a"], "dicom_peers": ["newct"]},
               "src-b": {"dicom_bind_address": "127.41.0.32", "dicom_local_aes": ["src_b"],
                         "dicom_peers": [{"name": "newct", "expect": "reject"}]}}
    inventory = write_inventory(workdir / "inventory", version, aes, sources)
    completed, wall = playbook(version, workdir, inventory, "golive", "-e", "echo_audit_standin_device=newct",
                               "-e", "echo_audit_standin_host=src-a", "-e", "echo_audit_report_dir=%s" % (workdir / "r"),
                               *TIMEOUTS)
    SUMMARY.setdefault(version, {})["golive_s"] = "%.1fs (failed)" % wall
    assert completed.returncode == 0, failed_tasks(completed)
    standin = json.loads((workdir / "r" / "latest.json").read_text())["standin"]
    assert [(caller["source_host"], caller["ok"], caller["seen"]) for caller in standin["callers"]] == [
        ("src-a", True, "echoed from 127.41.0.31"), ("src-b", True, "rejected from 127.41.0.32")]
    assert standin["others"] == []
    SUMMARY[version]["golive_s"] = round(wall, 1)


# --------------------------------------------------------------------------------- last: all the same
def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if type(a) is not type(b):
        return "%s: %r != %r" % (where or "/", a, b)
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return "%s/%s: only in %s" % (where, key, "the first" if key in a else "the second")
            found = _first_difference(a[key], b[key], "%s/%s" % (where, key))
            if found:
                return found
        return ""
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: %d items != %d" % (where, len(a), len(b))
        for index, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, "%s[%d]" % (where, index))
            if found:
                return found
        return ""
    if isinstance(a, str) and a != b:
        line_a, line_b = a.splitlines(), b.splitlines()
        for number, (x, y) in enumerate(zip(line_a, line_b), 1):
            if x != y:
                return "%s line %d:\n      %s\n   != %s" % (where, number, x[:400], y[:400])
        return "%s: %d lines != %d" % (where, len(line_a), len(line_b))
    return "" if a == b else "%s: %r != %r" % (where, a, b)


@pytest.mark.parametrize("scenario, versions",
                         [("audit", VERSIONS), ("module", VERSIONS), ("baseline", FULL), ("recover", FULL)])
def test_reports_are_the_same_on_every_version(scenario, versions):
    """Each scenario's normalised reports are equal on every version that ran it; a version whose run
    wrote no reports fails here too (it cannot be compared)."""
    ran = [v for v in versions if v in _venvs()]
    if len(ran) < 2:
        pytest.skip("fewer than two ansible-core versions ran %s" % scenario)
    have = {v: STORE[v][scenario]["files"] for v in ran if "files" in STORE.get(v, {}).get(scenario, {})}
    without = [v for v in ran if v not in have]
    problems = []
    if without:
        problems.append("no %s reports from ansible-core %s (their own test says why)" % (scenario, ", ".join(without)))
    if have:
        reference = max(have)  # the newest is what the collection is developed on
        for version in sorted(have):
            difference = _first_difference(have[reference], have[version])
            equal = not difference
            if scenario == "audit":
                SUMMARY[version]["equal"] = "yes" if equal else "NO"
                SUMMARY[version]["reference"] = reference
            if not equal:
                problems.append("%s on ansible-core %s differs from %s: %s" % (scenario, version, reference, difference))
    if scenario == "audit":
        for version in without:
            SUMMARY.setdefault(version, {})["equal"] = "no reports"
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module", autouse=True)
def _write_summary():
    """The table scripts/test prints after the stage: per version, the audit's wall time and result."""
    yield
    target = os.environ.get("DICOM_NETWORK_VERSIONS_SUMMARY")
    if target:
        summary = {version: dict(SUMMARY[version], ansible_core=_core_version(version))
                   for version in VERSIONS if version in SUMMARY}
        Path(target).write_text(json.dumps(summary, indent=1, sort_keys=True))


def _core_version(version: str) -> str:
    venv = _venvs().get(version)
    if venv is None:
        return "?"
    found = list((venv / "lib").glob("python3.*/site-packages/ansible_core-*.dist-info"))
    return found[0].name[len("ansible_core-"):-len(".dist-info")] if found else "?"
