"""The audit over an inventory with one managed source (dicom.network.echo on the host) and one archive echoed
through its REST API (an Orthanc with authentication, dicom_echo_api): both in one matrix, the archive's rows
"via Orthanc REST", the "Archive configuration" section in every format, echo_audit_fail_on_config_drift, and
the API password (injected as AWX's custom credential type does, examples/awx-project/credential-types/) nowhere:
not in the plan file, the journal, a report or the -vvv output."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Tuple

import pytest
import yaml

from tests.peers import dcmtk as dcmtk_mod
from tests.peers.base import LOOPBACK, closed_port, stop_all
from tests.peers.orthanc import orthanc_binary, start_orthanc
from tests.peers.pynetdicom_peers import start_pynetdicom_peers

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
USER = "audit-reader"
PASSWORD = "Api-pw-9f2c1e77"
ARCHIVE_AE = "PACS_ARCHIVE"


def _credential_injection() -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The Orthanc API credential type of examples/awx-project, and the values of a credential of it."""
    spec = yaml.safe_load((REPO_ROOT / "examples" / "awx-project" / "credential-types" / "orthanc-api.yml").read_text())
    values = {"url": None, "username": USER, "password": PASSWORD}
    return spec, values


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    if orthanc_binary() is None:
        pytest.skip("Orthanc binary not found")
    workdir = tmp_path_factory.mktemp("audit-archive")
    procs = []
    try:
        scp_proc, scps = start_pynetdicom_peers(workdir / "scps", {
            "ws": ({"behaviour": "reject-calling", "ae_title": "WS_A1", "allowed_calling": [ARCHIVE_AE, "CT_A1"]},
                   "a workstation that accepts the archive and the CT"),
        }, prefix="audit-archive-scps")
        procs.append(scp_proc)
        store_proc, store = dcmtk_mod.start_storescp(workdir / "dcmtk", ae_title="PRINT_SCP")
        procs.append(store_proc)
        wrong_port = closed_port()
        # The archive's modality table: the printer right, the workstation with a wrong port (the deliberate
        # mistake), and an old modality the registry no longer knows.
        modalities = {
            "printer": {"AET": "PRINT_SCP", "Host": LOOPBACK, "Port": store.port},
            "ws-a1": {"AET": "WS_A1", "Host": LOOPBACK, "Port": wrong_port},
            "old-ct": {"AET": "CT_OLD", "Host": "127.0.0.77", "Port": 104},
        }
        orthanc_proc, orthanc = start_orthanc(
            workdir, "archive", ae_title=ARCHIVE_AE, known_calling={"CT_A1": LOOPBACK}, extra_modalities=modalities,
            extra_config={"AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}})
        procs.append(orthanc_proc)
        yield SimpleNamespace(workdir=workdir, ws=scps["ws"], store=store, orthanc=orthanc, wrong_port=wrong_port,
                              url="http://127.0.0.1:%d" % orthanc.extra["http_port"])
    finally:
        stop_all(procs)


def _write_inventory(network, directory: Path) -> Path:
    aes = {
        "pacs_archive": {"ae_title": ARCHIVE_AE, "host": LOOPBACK, "port": network.orthanc.port, "site": "Site A",
                         "kind": "archive"},
        "ct_a1": {"ae_title": "CT_A1", "site": "Site A", "kind": "modality"},
        "ws_a1": {"ae_title": "WS_A1", "host": LOOPBACK, "port": network.ws.port, "site": "Site A",
                  "kind": "workstation"},
        "printer": {"ae_title": "PRINT_SCP", "host": LOOPBACK, "port": network.store.port, "site": "Site A",
                    "kind": "printer"},
    }
    hosts = {"all": {"children": {"dicom_sources": {"hosts": {
        "ct-a1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                  "dicom_local_aes": ["ct_a1"], "dicom_peers": ["pacs_archive", "ws_a1"]},
        # An appliance: nothing may connect to it (its SSH port is closed); its echoes go through its API.
        "pacs": {"ansible_host": LOOPBACK, "ansible_port": closed_port(), "ansible_connection": "ssh",
                 "dicom_local_aes": ["pacs_archive"], "dicom_peers": ["ws_a1", "printer"],
                 "dicom_echo_api": {"type": "orthanc", "url": "{{ orthanc_api_url }}",
                                    "username": "{{ orthanc_api_username }}",
                                    "password": "{{ orthanc_api_password }}"}},
    }}}}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (directory / "group_vars").mkdir(exist_ok=True)
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"dicom_aes": aes}))
    return directory


def _extravars(network, directory: Path) -> Path:
    """What AWX writes for a credential of the example type: its injector's extra_vars, templated."""
    spec, values = _credential_injection()
    values["url"] = network.url
    injected = {}
    for name, template in spec["injectors"]["extra_vars"].items():
        field = template.strip("{} ").strip()
        injected[name] = values[field]
    path = directory / "extravars.yml"
    path.write_text(yaml.safe_dump(injected))
    return path


def _playbook(directory: Path, inventory: Path, playbook: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)] + list(extra),
        cwd=str(directory), capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0"))


@pytest.fixture(scope="module")
def audit(network):
    directory = network.workdir / "run"
    inventory = _write_inventory(network, directory / "inventory")
    extravars = _extravars(network, directory)
    reports = directory / "reports"
    completed = _playbook(directory, inventory, REPO_ROOT / "playbooks" / "audit.yml", "-e", "@%s" % extravars,
                          "-e", "echo_audit_report_dir=%s" % reports, "-e", "echo_audit_fail_on_config_drift=true",
                          "-e", "echo_audit_api_timeout=2", "-e", "echo_audit_connect_timeout=2", "-vvv")
    report = json.loads((reports / "latest.json").read_text()) if (reports / "latest.json").exists() else None
    return SimpleNamespace(completed=completed, reports=reports, report=report, directory=directory,
                           inventory=inventory, extravars=extravars)


def _cells(report, host):
    return {cell["called_ae_title"]: cell for cell in report["cells"] if cell["source_host"] == host}


def test_one_matrix_with_the_managed_source_and_the_archive(audit, network):
    output = audit.completed.stdout + audit.completed.stderr
    assert audit.report is not None, output[-5000:]
    assert "Traceback" not in output
    assert audit.completed.returncode == 2, output[-3000:]  # the workstation's wrong port, and the drift
    ct, pacs = _cells(audit.report, "ct-a1"), _cells(audit.report, "pacs")
    assert {k: (c["outcome"], c["ok"]) for k, c in ct.items()} == {
        ARCHIVE_AE: ("success", True), "WS_A1": ("success", True)}
    assert {k: (c["outcome"], c["ok"], c["calling_ae_title"]) for k, c in pacs.items()} == {
        "WS_A1": ("refused", False, ARCHIVE_AE), "PRINT_SCP": ("success", True, ARCHIVE_AE)}
    assert "echoed by Orthanc at %s as AE %s through modality 'ws-a1'" % (network.url, ARCHIVE_AE) \
        in pacs["WS_A1"]["message"]
    assert pacs["WS_A1"]["message"].endswith("port %d (inventory %d)" % (network.wrong_port, network.ws.port))
    rows = {row["source_host"]: row for row in audit.report["rows"]}
    assert rows["pacs"]["echoed_from"] == "Orthanc REST at %s" % network.url
    assert rows["ct-a1"]["echoed_from"] is None
    html, markdown = (audit.reports / "latest.html").read_text(), (audit.reports / "latest.md").read_text()
    assert "pacs via Orthanc REST</small>" in html
    assert "| PACS\\_ARCHIVE (pacs via Orthanc REST) |" in markdown


def test_the_archive_configuration_section_in_every_format(audit, network):
    section = audit.report["archive_configuration"]
    (archive,) = section["archives"]
    assert (archive["source_host"], archive["url"], archive["ae_title"], archive["in_sync"]) == (
        "pacs", network.url, ARCHIVE_AE, False)
    assert [(d["kind"], d["name"], d["modality"], d["field"], d["registry"], d["archive"])
            for d in archive["differences"]] == [
        ("unknown", None, "old-ct", None, None, "CT_OLD@127.0.0.77:104"),
        ("mismatch", "ws_a1", "ws-a1", "port", str(network.ws.port), str(network.wrong_port))]
    markdown = (audit.reports / "latest.md").read_text()
    assert "## Archive configuration" in markdown
    assert "- **pacs** (%s, AE PACS\\_ARCHIVE, version 1.10.1): 2 difference(s)" % network.url in markdown
    assert "| pacs | mismatch | ws\\_a1 | ws-a1 | port | %d | %d |" % (network.ws.port, network.wrong_port) in markdown
    html = (audit.reports / "latest.html").read_text()
    assert "<summary>Archive configuration</summary>" in html and "<td>old-ct</td>" in html
    records = list(csv.DictReader(io.StringIO((audit.reports / "latest.csv").read_text())))
    drift = [r for r in records if r["outcome"] == "config_drift"]
    assert [(r["source_host"], r["calling_ae_title"], r["peer"], r["phase"], r["ok"]) for r in drift] == [
        ("pacs", ARCHIVE_AE, "old-ct", "unknown", "false"), ("pacs", ARCHIVE_AE, "ws_a1", "mismatch", "false")]
    assert drift[1]["message"] == ("ws_a1: port is %d in the archive's modality ws-a1, %d in the registry"
                                   % (network.wrong_port, network.ws.port))
    assert len(records) == len(audit.report["cells"]) + 2
    stdout = audit.completed.stdout
    assert "CONFIG DRIFT pacs: modality old-ct (CT_OLD@127.0.0.77:104) is not in the registry" in stdout
    assert "1 archive(s) whose modality table differs from the registry: pacs (2 difference(s))" in stdout


def test_the_password_is_nowhere_in_the_output_the_reports_or_the_journal(audit, network):
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in audit.completed.stdout  # -vvv showed the module's arguments
    assert PASSWORD not in audit.completed.stdout + audit.completed.stderr
    for path in audit.reports.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path
    # The journal (plan.json and each host's entry) as an interrupted run leaves it: plan and echo, no report.
    play = audit.directory / "plan-and-echo.yml"
    play.write_text(yaml.safe_dump([{
        "name": "plan and echo only", "hosts": "dicom_sources", "gather_facts": False,
        "tasks": [{"name": step,
                   "ansible.builtin.include_role": {"name": "dicom.network.echo_audit", "tasks_from": step + ".yml"}}
                  for step in ("plan", "echo")]}]))
    journal_reports = audit.directory / "journal-reports"
    completed = _playbook(audit.directory, audit.inventory, play, "-e", "@%s" % audit.extravars,
                          "-e", "echo_audit_report_dir=%s" % journal_reports, "-vvv")
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    assert PASSWORD not in completed.stdout + completed.stderr
    (journal,) = journal_reports.glob(".journal-*")
    files = sorted(path.name for path in journal.iterdir())
    assert "plan.json" in files and len(files) == 3  # the plan and one entry per source host
    plan = json.loads((journal / "plan.json").read_text())
    assert plan["plans"]["pacs"]["echo_api"] == {
        "type": "orthanc", "label": "Orthanc REST", "url": network.url, "username": USER, "has_password": True,
        "validate_certs": True, "ca_path": None}
    for path in journal.iterdir():
        assert PASSWORD not in path.read_text(), path


def test_a_bad_echo_api_stops_the_audit_before_any_echo(audit, network):
    inventory = audit.directory / "bad-inventory"
    hosts = yaml.safe_load((audit.inventory / "hosts.yml").read_text())
    pacs = hosts["all"]["children"]["dicom_sources"]["hosts"]["pacs"]
    pacs["dicom_echo_api"] = {"type": "dcm4chee", "url": "http://u:%s@pacs:8080" % PASSWORD}
    pacs["dicom_bind_address"] = "127.0.0.5"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "group_vars").mkdir()
    (inventory / "group_vars" / "all.yml").write_text((audit.inventory / "group_vars" / "all.yml").read_text())
    completed = _playbook(audit.directory, inventory, REPO_ROOT / "playbooks" / "audit.yml",
                          "-e", "echo_audit_report_dir=%s" % (audit.directory / "bad-reports"))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2 and "Traceback" not in output
    assert ("host pacs: dicom_echo_api: type must be one of orthanc (the archives whose REST API can echo), got "
            "'dcm4chee'") in output
    pacs["dicom_echo_api"] = {"type": "orthanc", "url": "http://u:%s@pacs:8080" % PASSWORD}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    completed = _playbook(audit.directory, inventory, REPO_ROOT / "playbooks" / "audit.yml",
                          "-e", "echo_audit_report_dir=%s" % (audit.directory / "bad-reports"))
    output = completed.stdout + completed.stderr
    assert ("host pacs: dicom_echo_api: url must not carry credentials (user:password@host): give them as username "
            "and password, which are never logged (got http://pacs:8080)") in output
    assert "host pacs: dicom_echo_api: and dicom_bind_address exclude each other" in output
    assert PASSWORD not in output


def test_refused_credentials_make_the_archives_cells_not_run_with_the_reason(audit, network):
    wrong = audit.directory / "wrong-credentials.yml"
    injected = yaml.safe_load(audit.extravars.read_text())
    injected["orthanc_api_password"] = PASSWORD + "-expired"
    wrong.write_text(yaml.safe_dump(injected))
    reports = audit.directory / "wrong-reports"
    completed = _playbook(audit.directory, audit.inventory, REPO_ROOT / "playbooks" / "audit.yml", "-e", "@%s" % wrong,
                          "-e", "echo_audit_report_dir=%s" % reports)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2 and "Traceback" not in output, output[-3000:]
    report = json.loads((reports / "latest.json").read_text())
    pacs = _cells(report, "pacs")
    assert {(c["outcome"], c["not_run_reason"]) for c in pacs.values()} == {("not_run", "task_failed")}
    assert all(c["message"].endswith("the Orthanc REST API at %s refused the credentials (HTTP 401 on GET /system): "
                                     "check username and password" % network.url) for c in pacs.values())
    assert {c["outcome"] for c in _cells(report, "ct-a1").values()} == {"success"}
    (archive,) = report["archive_configuration"]["archives"]
    assert archive["error"].endswith("refused the credentials (HTTP 401 on GET /system): check username and password")
    assert PASSWORD not in output and injected["orthanc_api_password"] not in output
