"""Required services through the whole audit (playbooks/audit.yml) against real peers on loopback: a DCMTK
storescp that takes every storage class, then in its place a pynetdicom archive that takes CT but not
Enhanced CT. The second run is judged against the first as its baseline: the refused service is a
regression named in every view. Bad service input stops the play before any echo."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.peers import dcmtk
from tests.peers.base import stop_all
from tests.peers.demo_network import CT_IMAGE_STORAGE, LITTLE_ENDIAN
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.system.test_audit_partial_runs import audit_command, run, write_inventory

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

CT, ENHANCED_CT = "CTImageStorage", "EnhancedCTImageStorage"


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit-services")
    procs = []
    try:
        proc, storescp = dcmtk.start_storescp(workdir, ae_title="ARCHIVE")
        procs.append(proc)
        proc, scps = start_pynetdicom_peers(workdir / "pynetdicom", {
            "ct_only": ({"behaviour": "accept", "ae_title": "ARCHIVE",
                         "contexts": [[CT_IMAGE_STORAGE, LITTLE_ENDIAN]]}, "")}, prefix="services")
        procs.append(proc)
        yield {"storescp": storescp, "ct_only": scps["ct_only"]}
    finally:
        stop_all(procs)


def _inventory(directory: Path, archive, ct_services=None):
    """One source whose archive must take CT and Enhanced CT (the registry's), unless its route says otherwise."""
    aes = {"archive": {"ae_title": "ARCHIVE", "host": archive.host, "port": archive.port,
                       "services": [CT, {"sop_class": ENHANCED_CT, "transfer_syntaxes": ["ExplicitVRLittleEndian"]}]},
           "ct1": {"ae_title": "CT1"}}
    peers = ["archive"] if ct_services is None else [{"name": "archive", "services": ct_services}]
    return write_inventory(directory, aes, {"ct-1": {"dicom_local_aes": ["ct1"], "dicom_peers": peers}})


def test_a_refused_service_fails_its_cell_and_is_a_regression_against_the_baseline(tmp_path, archives):
    report_dir = tmp_path / "reports"
    baseline = report_dir / "baseline.json"
    first = run(audit_command(_inventory(tmp_path / "before", archives["storescp"]), report_dir,
                              "-e", "echo_audit_baseline=%s" % baseline, "-e", "echo_audit_baseline_save=true"),
                tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    (cell,) = json.loads(baseline.read_text())["cells"]
    assert cell["outcome"] == "success"
    assert [(s["sop_class"], s["required"], s["accepted"]) for s in cell["services"]] == [
        (CT, True, True), (ENHANCED_CT, True, True)]
    assert cell["services"][1]["transfer_syntax"] == "1.2.840.10008.1.2.1"

    # The archive is replaced by one that takes no Enhanced CT.
    second = run(audit_command(_inventory(tmp_path / "after", archives["ct_only"]), report_dir,
                               "-e", "echo_audit_baseline=%s" % baseline), tmp_path)
    assert second.returncode == 2, second.stdout[-3000:]
    assert "Traceback" not in second.stdout + second.stderr
    output = second.stdout
    assert "REGRESSION ct-1 as CT1 -> ARCHIVE (archive): success => service_rejected (not ok)" in output
    assert "NOT OK ct-1 as CT1 -> ARCHIVE (archive): service_rejected, expected accept: C-ECHO success, but 1 of 2 " \
        "required service(s) refused: EnhancedCTImageStorage (abstract-syntax-not-supported)" in output
    report = json.loads((report_dir / "latest.json").read_text())
    (cell,) = report["cells"]
    assert (cell["outcome"], cell["ok"]) == ("service_rejected", False)
    assert [(s["sop_class"], s["accepted"], s["result"]) for s in cell["services"]] == [
        (CT, True, "acceptance"), (ENHANCED_CT, False, "abstract-syntax-not-supported")]
    (broke,) = report["baseline"]["broke"]
    assert broke["services_broke"] == [ENHANCED_CT]

    with open(report_dir / "latest.csv", newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["services_refused"] == ENHANCED_CT
    assert row["services"] == "%s=acceptance;%s=abstract-syntax-not-supported" % (CT, ENHANCED_CT)
    suites = ElementTree.parse(report_dir / "latest.junit.xml").getroot()
    cases = {case.get("name"): case for case in suites.iter("testcase")}
    assert cases["CT1 -> ARCHIVE (archive) provides %s" % CT].find("failure") is None
    assert cases["CT1 -> ARCHIVE (archive) provides %s" % ENHANCED_CT].find("failure").get("type") == "service_refused"
    markdown = (report_dir / "latest.md").read_text()
    assert "| CT1 | ct-1 | ARCHIVE | archive | EnhancedCTImageStorage | abstract-syntax-not-supported |" in markdown
    assert "\\[refused now: EnhancedCTImageStorage; implementation class UID " in markdown
    html = (report_dir / "latest.html").read_text()
    assert "Services refused (1)" in html and "<td title=\"1.2.840.10008.5.1.4.1.1.2.1\">EnhancedCTImageStorage</td>" in html

    # The route asks only for CT: the same archive passes.
    narrowed = run(audit_command(_inventory(tmp_path / "narrowed", archives["ct_only"], [CT]), report_dir), tmp_path)
    assert narrowed.returncode == 0, narrowed.stdout[-3000:]


@pytest.mark.parametrize("services, message", [
    (["1.2.840.10008.5.1.4.1.1.02"], "host ct-1: dicom_peers[0] (archive): services[0] is not a valid UID"),
    ([{"sop_class": CT, "transfer_syntaxes": ["1.2.840.10008.1.2", "1.2.840.10008.1.2"]}],
     "host ct-1: dicom_peers[0] (archive): services[0].transfer_syntaxes[1] names 1.2.840.10008.1.2 twice"),
])
def test_bad_services_stop_the_play_before_any_echo(tmp_path, archives, services, message):
    report_dir = tmp_path / "reports"
    completed = run(audit_command(_inventory(tmp_path / "inventory", archives["ct_only"], services), report_dir),
                    tmp_path)
    assert completed.returncode != 0
    assert message in completed.stdout, completed.stdout[-3000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert not report_dir.exists() or not list(report_dir.glob("*.json")), "no echo, no report"


def test_an_unknown_keyword_is_refused_by_the_module_on_the_host_and_its_cells_say_so(tmp_path, archives):
    report_dir = tmp_path / "reports"
    completed = run(audit_command(_inventory(tmp_path / "inventory", archives["ct_only"], ["CTImageStorag"]),
                                  report_dir), tmp_path)
    assert completed.returncode != 0 and "Traceback" not in completed.stdout + completed.stderr
    (cell,) = json.loads((report_dir / "latest.json").read_text())["cells"]
    assert (cell["outcome"], cell["not_run_reason"]) == ("not_run", "task_failed")
    assert "CTImageStorag" in cell["message"], cell["message"]
