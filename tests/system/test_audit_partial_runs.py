"""Partial audits through ansible-playbook: a play interrupted half way, limited and failing runs against
the baseline, and sources echoed by a probe host (delegate_to), all against real peers on loopback."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.peers import dcmtk
from tests.peers.base import closed_port, stop_all
from tests.peers.pynetdicom_peers import KNOWN_CALLING

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
ENV = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_RETRY_FILES_ENABLED="0")


def write_inventory(directory: Path, aes: Dict[str, Dict[str, Any]], sources: Dict[str, Dict[str, Any]],
                    others: Optional[Dict[str, Dict[str, Any]]] = None) -> Path:
    """A documented-model inventory: the registry in group_vars/all, each source's vars inline."""
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "all" / "dicom_aes.json").write_text(json.dumps({"dicom_aes": aes}))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"all": {"vars": local, "hosts": others or {}, "children": {"dicom_sources": {"hosts": sources}}}}
    (directory / "hosts.json").write_text(json.dumps(hosts))
    return directory / "hosts.json"


def audit_command(inventory: Path, report_dir: Path, *extra: str, playbook: str = "audit.yml") -> List[str]:
    return [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(REPO_ROOT / "playbooks" / playbook),
            "-e", "echo_audit_report_dir=%s" % report_dir, *extra]


def run(command: List[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=str(cwd), env=ENV, capture_output=True, text=True, timeout=timeout,
                          check=False)


def cells_by_host(report: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    by_host: Dict[str, List[Dict[str, Any]]] = {}
    for cell in report["cells"]:
        by_host.setdefault(cell["source_host"], []).append(cell)
    return by_host


def test_an_interrupted_play_is_reported_with_every_cell_by_the_recover_playbook(
        tmp_path, pynetdicom_peers, hostile_factory):
    """Three hosts finish, three hang on a silent peer; Ctrl-C stops the play before its report. The
    recover playbook then writes reports with all six hosts' cells: results where the journal has them,
    not_run "interrupted" where it has not."""
    accept = pynetdicom_peers["accept"]
    silent = hostile_factory("silent")
    aes = {"fast": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "silent": {"ae_title": "SILENT", "host": silent.host, "port": silent.port},
           "src": {"ae_title": "SRC_AE", "host": "127.0.0.1", "port": 104}}
    sources = {}
    for index in range(6):
        sources["fast-%d" % index if index < 3 else "hangs-%d" % index] = {
            "dicom_local_aes": ["src"], "dicom_peers": ["fast" if index < 3 else "silent"]}
    inventory = write_inventory(tmp_path / "inventory", aes, sources)
    report_dir = tmp_path / "reports"
    command = audit_command(inventory, report_dir, "-e", "echo_audit_acse_timeout=120", "-f", "6")
    process = subprocess.Popen(command, cwd=str(tmp_path), env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        entries: List[Path] = []
        while time.monotonic() < deadline and process.poll() is None:
            entries = [p for p in report_dir.glob(".journal-*/*.json") if p.name != "plan.json"]
            if len(entries) >= 3:
                break
            time.sleep(0.2)
        assert len(entries) == 3, "the fast hosts never reached the journal"
        # What Ctrl-C in a terminal does: SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode != 0
    assert not (report_dir / "latest.json").exists(), "the interrupted play cannot have written its report"
    (journal,) = [path.parent for path in report_dir.glob(".journal-*/plan.json")]
    assert stat.S_IMODE((journal / "plan.json").stat().st_mode) == 0o640

    # A controller stopped between creating a journal and writing its plan left an empty one: nothing to report.
    unplanned = report_dir / ".journal-20261125T000000Z-0000"
    unplanned.mkdir()

    # The next audit leaves the journal alone and says how to recover it; the empty one is not a run.
    again = run(audit_command(inventory, report_dir, "--limit", "fast-0"), tmp_path)
    assert "1 interrupted audit run(s) left a journal" in again.stdout + again.stderr
    assert unplanned.name not in again.stdout
    assert journal.exists()

    # recover names the empty one and keeps it.
    recovered = run(audit_command(inventory, report_dir, playbook="recover.yml"), tmp_path)
    assert recovered.returncode == 0, recovered.stdout[-3000:]
    assert not journal.exists(), "the journal is removed once its reports are written"
    assert unplanned.is_dir() and "%s has no plan.json" % unplanned in recovered.stdout
    stem = "echo-audit-%s-interrupted" % journal.name[len(".journal-"):]
    for extension in ("json", "html", "md", "csv", "junit.xml"):
        path = report_dir / ("%s.%s" % (stem, extension))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    report = json.loads((report_dir / ("%s.json" % stem)).read_text())
    by_host = cells_by_host(report)
    assert sorted(by_host) == sorted(sources)
    for host, cells in by_host.items():
        (cell,) = cells
        if host.startswith("fast"):
            assert cell["outcome"] == "success", cell
        else:
            assert (cell["outcome"], cell["not_run_reason"]) == ("not_run", "interrupted"), cell
    assert report["complete"] is False and report["partial_reasons"][0].startswith("interrupted")
    assert report["partial_reasons"][0].endswith("was stopped before its report was written"), report["partial_reasons"]
    assert "Partial report" in (report_dir / ("%s.md" % stem)).read_text()
    assert stem in recovered.stdout
    # latest.* belongs to complete runs: the limited run wrote it, the recovered one did not touch it.
    assert json.loads((report_dir / "latest.json").read_text())["scope"]["limit"] == "fast-0"

    nothing = run(audit_command(inventory, report_dir, playbook="recover.yml"), tmp_path)
    assert nothing.returncode == 0 and "nothing to recover" in nothing.stdout


def test_a_partial_run_never_overwrites_the_baseline_unless_asked(tmp_path, pynetdicom_peers):
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "src": {"ae_title": "SRC_AE", "host": "127.0.0.1", "port": 104}}
    sources = {"ws-1": {"dicom_local_aes": ["src"], "dicom_peers": ["archive"]},
               "ws-2": {"dicom_local_aes": ["src"], "dicom_peers": ["archive"]}}
    inventory = write_inventory(tmp_path / "inventory", aes, sources)
    report_dir = tmp_path / "reports"
    baseline = report_dir / "baseline.json"

    # The documented bootstrap (an AWX schedule): the baseline to compare with does not exist yet.
    first = run(audit_command(inventory, report_dir, "-e", "echo_audit_baseline_save=true",
                              "-e", "echo_audit_baseline=%s" % baseline), tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "No baseline yet at %s: this run is saved as the baseline" % baseline.resolve() in first.stdout
    saved = baseline.read_bytes()
    assert json.loads(saved)["complete"] is True
    assert stat.S_IMODE(baseline.stat().st_mode) == 0o640

    limited = run(audit_command(inventory, report_dir, "--limit", "ws-1", "-e", "echo_audit_baseline_save=true",
                                "-e", "echo_audit_baseline=%s" % baseline), tmp_path)
    assert limited.returncode == 0, limited.stdout[-3000:]
    assert baseline.read_bytes() == saved
    assert "kept as it was: this run is partial (hosts limited to ws-1)" in limited.stdout
    assert json.loads((report_dir / "latest.json").read_text())["partial_reasons"] == ["hosts limited to ws-1"]
    # The playbooks' echo_audit_hosts narrows a run as --limit does (verify.yml's documented command).
    verify = run(audit_command(inventory, report_dir, "-e", "echo_audit_hosts=ws-2", "-e", "echo_audit_baseline_save=true",
                               "-e", "echo_audit_baseline=%s" % baseline, playbook="verify.yml"), tmp_path)
    assert verify.returncode == 0, verify.stdout[-3000:]
    assert baseline.read_bytes() == saved
    assert "kept as it was: this run is partial (hosts limited to ws-2)" in verify.stdout, verify.stdout[-3000:]

    # The documented trap: latest.json as the baseline, and a run where one host cannot be reached.
    latest = report_dir / "latest.json"
    complete = run(audit_command(inventory, report_dir), tmp_path)
    assert complete.returncode == 0
    latest_before = latest.read_bytes()
    broken = dict(sources)
    broken["ws-2"] = dict(sources["ws-2"], ansible_connection="ssh", ansible_host="127.0.0.1",
                          ansible_port=closed_port(), ansible_ssh_common_args="-o ConnectTimeout=3 -o BatchMode=yes")
    broken_inventory = write_inventory(tmp_path / "inventory-broken", aes, broken)
    failing = run(audit_command(broken_inventory, report_dir, "-e", "echo_audit_baseline=%s" % latest), tmp_path)
    assert failing.returncode != 0
    assert latest.read_bytes() == latest_before
    assert "latest.* kept as it was: it is the baseline" in failing.stdout
    newest = sorted(report_dir.glob("echo-audit-*.json"))[-1]
    report = json.loads(newest.read_text())
    assert report["partial_reasons"] == ["1 check(s) did not run"]
    assert report["baseline"]["counts"]["broke"] == 1
    # The console points at this run's files, not at latest.*, which still holds the baseline run.
    assert "reports: %s/%s.{json,html,md,csv,junit.xml,prom}" % (report_dir.resolve(), newest.stem) in failing.stdout
    assert "/latest.{" not in failing.stdout

    forced = run(audit_command(broken_inventory, report_dir, "-e", "echo_audit_baseline=%s" % latest,
                               "-e", "echo_audit_baseline_save=true", "-e", "echo_audit_baseline_save_partial=true"),
                 tmp_path)
    assert forced.returncode != 0
    assert json.loads(latest.read_text())["partial_reasons"] == ["1 check(s) did not run"]


def test_a_source_that_cannot_run_python_is_echoed_by_its_probe(tmp_path):
    """An appliance (unreachable over SSH) is echoed by a probe host with delegate_to, from the address
    the peer has on file for it; the row says which probe did it and from which address."""
    procs = []
    try:
        proc, archive = dcmtk.start_dcmqrscp(tmp_path / "peers", qr_ae="QR_P", callers={"CT_APPL": "127.30.0.7"})
        procs.append(proc)
        aes = {"qr": {"ae_title": "QR_P", "host": "127.0.0.1", "port": archive.port},
               "ct_appl": {"ae_title": "CT_APPL", "host": "127.30.0.7", "port": 104, "kind": "modality"}}
        unreachable = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": closed_port(),
                       "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}
        sources = {
            "ct-appliance": dict(unreachable, dicom_echo_via="probe-1", dicom_bind_address="127.30.0.7",
                                 dicom_local_aes=["ct_appl"], dicom_peers=["qr"]),
            # The same AE title from the probe's other address: the archive must refuse it.
            "ct-wrong-address": dict(unreachable, dicom_echo_via="probe-1", dicom_bind_address="127.30.0.8",
                                     dicom_local_aes=["ct_appl"],
                                     dicom_peers=[{"name": "qr", "expect": "reject"}]),
        }
        inventory = write_inventory(tmp_path / "inventory", aes, sources, others={"probe-1": {}})
        report_dir = tmp_path / "reports"
        completed = run(audit_command(inventory, report_dir), tmp_path)
        assert completed.returncode == 0, completed.stdout[-3000:]
        report = json.loads((report_dir / "latest.json").read_text())
        rows = {row["source_host"]: row for row in report["rows"]}
        assert rows["ct-appliance"]["echoed_from"] == "probe-1"
        assert rows["ct-wrong-address"]["echoed_from"] == "probe-1"
        (good,) = cells_by_host(report)["ct-appliance"]
        (refused,) = cells_by_host(report)["ct-wrong-address"]
        assert (good["outcome"], good["source_address"]) == ("success", "127.30.0.7")
        assert (refused["outcome"], refused["source_address"], refused["ok"]) == ("rejected", "127.30.0.8", True)
        markdown = (report_dir / "latest.md").read_text()
        assert "## Echoed by probes" in markdown
        assert 'id="probes"' in (report_dir / "latest.html").read_text()
        csv_header = (report_dir / "latest.csv").read_text().splitlines()[0]
        assert ",source_address,echoed_from," in csv_header

        # The probe itself is down: its name, not the appliance's, is what the engineer must chase.
        dead = write_inventory(tmp_path / "inventory-dead-probe", aes,
                               {"ct-appliance": dict(sources["ct-appliance"], dicom_echo_via="probe-down")},
                               others={"probe-down": unreachable})
        dead_dir = tmp_path / "reports-dead-probe"
        dead_run = run(audit_command(dead, dead_dir), tmp_path)
        assert dead_run.returncode != 0, "a check that did not run is not ok"
        dead_report = json.loads((dead_dir / "latest.json").read_text())
        (not_run,) = cells_by_host(dead_report)["ct-appliance"]
        assert not_run["not_run_reason"] == "unreachable", not_run
        assert not_run["message"].startswith("probe probe-down unreachable: "), not_run["message"]
        assert {row["source_host"]: row for row in dead_report["rows"]}["ct-appliance"]["echoed_from"] == "probe-down"

        bad = write_inventory(tmp_path / "inventory-bad", aes,
                              {"ct-appliance": dict(sources["ct-appliance"], dicom_echo_via="no-such-probe")})
        refused_run = run(audit_command(bad, report_dir), tmp_path)
        assert refused_run.returncode != 0
        assert "host ct-appliance: dicom_echo_via: no-such-probe is not a host of the inventory" in refused_run.stdout
        assert "Echo every peer" not in refused_run.stdout, "the bad inventory must stop the play before any echo"
    finally:
        stop_all(procs)


def test_a_host_with_two_calling_aes_one_of_them_calling_only_echoes_each_peer_as_both(tmp_path, pynetdicom_peers):
    """One module call per host: each peer once per calling AE, told apart by its calling AE title. The
    workstation's second AE only calls, so its registry entry has no host and port and it is never a column."""
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "ws": {"ae_title": "WS_MAIN", "host": "127.0.0.1", "port": closed_port()},
           "scu": {"ae_title": "WS_SCU_ONLY"}}
    inventory = write_inventory(tmp_path / "inventory", aes,
                                {"ws-1": {"dicom_local_aes": ["ws", "scu"], "dicom_peers": ["archive"]}})
    report_dir = tmp_path / "reports"
    completed = run(audit_command(inventory, report_dir, "-e", "echo_audit_report_formats=json,csv"), tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:]
    report = json.loads((report_dir / "latest.json").read_text())
    assert sorted((cell["calling_ae_title"], cell["called_ae_title"], cell["outcome"]) for cell in report["cells"]) == [
        ("WS_MAIN", accept.ae_title, "success"), ("WS_SCU_ONLY", accept.ae_title, "success")]
    assert [column["name"] for column in report["columns"]] == ["archive"]
    assert sorted(os.listdir(report_dir)) == sorted(
        [name for name in os.listdir(report_dir) if name.endswith((".json", ".csv"))])


def test_one_host_expects_the_archive_to_accept_one_calling_ae_and_refuse_another(tmp_path, pynetdicom_peers):
    """The archive accepts only KNOWN_SCU: from one host, KNOWN_SCU must be accepted and STRANGER refused,
    each by its own dicom_peers entry (local_aes). Both cells are ok; swapped expectations make both not ok."""
    strict = pynetdicom_peers["reject-calling"]
    aes = {"archive": {"ae_title": strict.ae_title, "host": strict.host, "port": strict.port},
           "known": {"ae_title": KNOWN_CALLING}, "stranger": {"ae_title": "STRANGER"}}
    for swapped in (False, True):
        entries = [{"name": "archive", "local_aes": ["known"], "expect": "reject" if swapped else "accept"},
                   {"name": "archive", "local_aes": ["stranger"], "expect": "accept" if swapped else "reject"}]
        inventory = write_inventory(tmp_path / ("inventory-%s" % swapped), aes,
                                    {"ws-1": {"dicom_local_aes": ["known", "stranger"], "dicom_peers": entries}})
        report_dir = tmp_path / ("reports-%s" % swapped)
        completed = run(audit_command(inventory, report_dir, "-e", "echo_audit_report_formats=json,md"), tmp_path)
        assert completed.returncode == (2 if swapped else 0), completed.stdout[-3000:]
        report = json.loads((report_dir / "latest.json").read_text())
        assert sorted((cell["calling_ae_title"], cell["expect"], cell["outcome"], cell["ok"])
                      for cell in report["cells"]) == [
            (KNOWN_CALLING, "reject" if swapped else "accept", "success", not swapped),
            ("STRANGER", "accept" if swapped else "reject", "rejected", not swapped)]
        assert [column["name"] for column in report["columns"]] == ["archive"]
        markdown = (report_dir / "latest.md").read_text()
        matrix = markdown[markdown.index("## Matrix"):]
        assert ("**\u2713!**" in matrix) is swapped and ("**\u2298!**" in matrix) is swapped


def test_report_keep_leaves_the_newest_runs_and_latest_in_the_report_directory(tmp_path, pynetdicom_peers):
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port}, "ws": {"ae_title": "WS"}}
    inventory = write_inventory(tmp_path / "inventory", aes, {"ws-1": {"dicom_local_aes": ["ws"], "dicom_peers": ["archive"]}})
    report_dir = tmp_path / "reports"
    for _run in range(3):
        completed = run(audit_command(inventory, report_dir, "-e", "echo_audit_report_formats=json,csv",
                                      "-e", "echo_audit_report_keep=2", "-e", "echo_audit_baseline_save=true"), tmp_path)
        assert completed.returncode == 0, completed.stdout[-3000:]
    left = sorted(os.listdir(report_dir))
    runs = sorted({name.split(".", 1)[0] for name in left if name.startswith("echo-audit-")})
    assert len(runs) == 2, left
    assert {"latest.json", "latest.csv", "baseline.json"} <= set(left)
    assert "Deleted 2 report file(s) of older runs, beyond echo_audit_report_keep=2." in completed.stdout


@pytest.mark.parametrize("quiet", [False, True])
def test_a_passing_audit_of_two_hosts_is_short_and_ends_with_the_summary(tmp_path, pynetdicom_peers, quiet):
    """The default callback, no ansible.cfg: about 30 lines, the summary last before the recap, also with
    display_ok_hosts and display_skipped_hosts off; only the report step is changed."""
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "ws_1": {"ae_title": "WS_1", "host": "127.0.0.1", "port": closed_port()},
           "ws_2": {"ae_title": "WS_2", "host": "127.0.0.1", "port": closed_port()}}
    sources = {"ws-1": {"dicom_local_aes": ["ws_1"], "dicom_peers": ["archive"]},
               "ws-2": {"dicom_local_aes": ["ws_2"], "dicom_peers": ["archive"]}}
    inventory = write_inventory(tmp_path / "inventory", aes, sources)
    env = dict(ENV, ANSIBLE_DISPLAY_OK_HOSTS="0", ANSIBLE_DISPLAY_SKIPPED_HOSTS="0") if quiet else ENV
    completed = subprocess.run(audit_command(inventory, tmp_path / "reports"), cwd=str(tmp_path), env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    lines = completed.stdout.splitlines()
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert len(lines) <= 30, completed.stdout
    recap = lines.index(next(line for line in lines if line.startswith("PLAY RECAP")))
    assert lines[recap - 5].startswith("TASK [dicom.network.echo_audit : Show the result]"), completed.stdout
    assert lines[recap - 3].strip().startswith('"msg": "DICOM echo audit: 2 checks, 2 ok, 0 failed, 0 not run')
    assert "reports: %s/latest.{json,html,md,csv,junit.xml,prom}" % (tmp_path / "reports") in lines[recap - 3]
    changed = {line.split()[0]: line for line in lines[recap + 1:] if "changed=" in line}
    assert "changed=2" in changed["ws-1"] and "changed=0" in changed["ws-2"], lines[recap:]


def test_the_report_is_written_when_no_source_host_can_be_reached(tmp_path, pynetdicom_peers):
    """Every source host unreachable: the first stays in the play (ignored) to write a report whose every cell
    is not_run; the others are counted as unreachable."""
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "ws_1": {"ae_title": "WS_1"}, "ws_2": {"ae_title": "WS_2"}}
    down = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": closed_port(),
            "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}
    sources = {"ws-1": dict(down, dicom_local_aes=["ws_1"], dicom_peers=["archive"]),
               "ws-2": dict(down, dicom_local_aes=["ws_2"], dicom_peers=["archive"])}
    report_dir = tmp_path / "reports"
    completed = run(audit_command(write_inventory(tmp_path / "inventory", aes, sources), report_dir), tmp_path)
    assert completed.returncode == 4, completed.stdout[-3000:]
    assert "fatal: [ws-1]: UNREACHABLE!" in completed.stdout and "fatal: [ws-2]: UNREACHABLE!" in completed.stdout
    report = json.loads((report_dir / "latest.json").read_text())
    assert sorted((cell["source_host"], cell["outcome"], cell["not_run_reason"]) for cell in report["cells"]) == [
        ("ws-1", "not_run", "unreachable"), ("ws-2", "not_run", "unreachable")]
    assert "DICOM echo audit: 2 checks, 0 ok, 0 failed, 2 not run" in completed.stdout
    assert not list(report_dir.glob(".journal-*")), "the journal is removed once its reports are written"
