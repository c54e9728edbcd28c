"""ansible-playbook dicom.network.golive: a stand-in answers as a new device while the source hosts echo it,
and the reports show both sides of each call. Real callers (the echo module on each source host, from its
own 127.x address), a real stand-in (dicom.network.listen), an unreachable source host, and callers nobody
planned (a port check, an unknown AE title)."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from pynetdicom import AE

from tests.peers.base import LOOPBACK, closed_port, free_port, is_listening
from tests.system.test_audit_partial_runs import audit_command, run, write_inventory
from tests.system.test_listen import no_listener_left

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
               "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}


def _network(tmp_path: Path, port: int, offline: bool) -> Path:
    aes = {"newct": {"ae_title": "NEWCT", "host": LOOPBACK, "port": port, "kind": "modality"},
           "ws1": {"ae_title": "WS1"}, "ws2": {"ae_title": "WS2"}, "oldws": {"ae_title": "OLDWS"},
           "offline": {"ae_title": "OFFLINE_WS"}, "archive": {"ae_title": "ARCHIVE", "host": LOOPBACK, "port": closed_port()}}
    sources = {
        "ws1": {"dicom_bind_address": "127.0.0.2", "dicom_local_aes": ["ws1"], "dicom_peers": ["newct", "archive"]},
        "ws2": {"dicom_bind_address": "127.0.0.3", "dicom_local_aes": ["ws2"], "dicom_peers": ["newct"]},
        "oldws": {"dicom_bind_address": "127.0.0.4", "dicom_local_aes": ["oldws"],
                  "dicom_peers": [{"name": "newct", "expect": "reject"}]},
    }
    if offline:
        sources["offline"] = dict(UNREACHABLE, ansible_port=closed_port(), dicom_local_aes=["offline"],
                                  dicom_peers=["newct"])
    return write_inventory(tmp_path / ("inventory-offline" if offline else "inventory"), aes, sources,
                           others={"staging": {}})


def _strangers(port: int, seen: List[str]) -> threading.Thread:
    """Once the stand-in listens: a port check, then an echo as an AE title nobody planned."""
    def call() -> None:
        deadline = time.monotonic() + 60
        while not is_listening(LOOPBACK, port) and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection((LOOPBACK, port), timeout=5):
            pass
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context("1.2.840.10008.1.1")
        ae.acse_timeout = ae.connection_timeout = 5
        assoc = ae.associate(LOOPBACK, port, ae_title="NEWCT", bind_address=("127.0.0.9", 0))
        seen.append("rejected" if assoc.is_rejected else "other")
        if assoc.is_established:
            assoc.release()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def _golive(tmp_path: Path, inventory: Path, report_dir: Path):
    return run(audit_command(inventory, report_dir, "-e", "echo_audit_standin_device=newct",
                             "-e", "echo_audit_standin_host=staging", "-e", "echo_audit_standin_duration=60",
                             "-e", "echo_audit_connect_timeout=3", playbook="golive.yml"), tmp_path)


def test_golive_shows_both_sides_of_every_call(tmp_path):
    port = free_port()
    report_dir = tmp_path / "reports"
    strangers: List[str] = []
    thread = _strangers(port, strangers)
    started = time.monotonic()
    completed = _golive(tmp_path, _network(tmp_path, port, offline=True), report_dir)
    wall = time.monotonic() - started
    thread.join(10)
    assert completed.returncode in (2, 4), completed.stdout[-4000:]  # 4: ansible-core counts the unreachable host
    assert wall < 50, "the stand-in waited out its duration instead of its stop file"
    assert not is_listening(LOOPBACK, port), "the stand-in left its port bound"
    assert no_listener_left() == []
    assert strangers == ["rejected"]

    report: Dict[str, Any] = json.loads((report_dir / "latest.json").read_text())
    assert report["title"] == "Go-live check of newct"
    assert {(cell["source_host"], cell["peer"]) for cell in report["cells"]} == {
        ("ws1", "newct"), ("ws2", "newct"), ("oldws", "newct"), ("offline", "newct")}, "only the device's column"
    standin = report["standin"]
    assert standin["device"] == {"name": "newct", "ae_title": "NEWCT", "host": LOOPBACK, "port": port}
    assert standin["listener"]["stopped_because"] == "stop file"
    callers = {caller["source_host"]: caller for caller in standin["callers"]}
    assert (callers["ws1"]["ok"], callers["ws1"]["sent_from"], callers["ws1"]["seen"]) == (True, "127.0.0.2",
                                                                                           "echoed from 127.0.0.2")
    assert callers["ws1"]["finding"] == "echoed by the stand-in, as expected"
    assert callers["ws2"]["ok"] is True
    assert (callers["oldws"]["ok"], callers["oldws"]["caller_outcome"], callers["oldws"]["seen"]) == (
        True, "rejected", "rejected from 127.0.0.4")
    assert callers["offline"]["ok"] is False
    assert callers["offline"]["finding"].startswith("the caller's echo did not run: host unreachable")
    others = sorted((other["calling_ae_title"] or "-", other["outcome"]) for other in standin["others"])
    assert others == [("-", "no_association"), ("STRANGER", "rejected")]
    assert standin["counts"] == {"callers": 4, "ok": 3, "problems": 1, "others": 2}

    console = completed.stdout
    assert "GO-LIVE newct (NEWCT at 127.0.0.1:%d, stand-in on staging): 4 caller(s), 3 as expected on both sides, " \
           "1 problem(s), 2 other connection(s)" % port in console
    assert "GO-LIVE PROBLEM offline as OFFLINE_WS: the caller's echo did not run: host unreachable" in console
    assert "1 go-live problem(s) with newct" in console
    markdown = (report_dir / "latest.md").read_text()
    assert "## Go-live: newct (NEWCT at 127.0.0.1:%d)" % port in markdown
    assert "| ws1 | WS1 | accept | success | 127.0.0.2 | echoed from 127.0.0.2 | ok: echoed by the stand-in, as expected |" \
        in markdown
    assert "STRANGER" in markdown
    assert 'id="standin"' in (report_dir / "latest.html").read_text()
    junit = (report_dir / "latest.junit.xml").read_text()
    assert 'name="go-live newct (NEWCT), stand-in on staging" tests="4" failures="1"' in junit
    assert list(report_dir.glob("golive-newct-*.json")), "the run's own files are named after the device"


def test_a_passing_golive_exits_0_and_stops_when_every_caller_was_seen(tmp_path):
    port = free_port()
    report_dir = tmp_path / "reports"
    started = time.monotonic()
    completed = _golive(tmp_path, _network(tmp_path, port, offline=False), report_dir)
    wall = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-4000:]
    standin = json.loads((report_dir / "latest.json").read_text())["standin"]
    assert standin["counts"] == {"callers": 3, "ok": 3, "problems": 0, "others": 0}
    # Both end it: the last expected caller, or the stop file right after the echo step.
    assert standin["listener"]["stopped_because"] in ("every expected caller was seen", "stop file")
    # Whichever ended it, the play goes on at once: no wait for the stand-in sits out its 30 s timeout.
    assert wall < 30, wall
    assert not is_listening(LOOPBACK, port)
    assert no_listener_left() == []


@pytest.mark.parametrize("extra, message", [
    (["-e", "echo_audit_standin_device=newtc", "-e", "echo_audit_standin_host=staging"],
     "echo_audit_only_peers: newtc is not a peer (registry name or AE title) of any host in this play (did you mean newct?)"),
    (["-e", "echo_audit_standin_device=newct"],
     "echo_audit_standin_host is empty: name the inventory host that stands in for the device"),
    (["-e", "echo_audit_standin_device=newct", "-e", "echo_audit_standin_host=stagin"],
     "echo_audit_standin_host stagin is not in the inventory"),
])
def test_golive_mistakes_are_said_before_anything_starts(tmp_path, extra, message):
    port = free_port()
    completed = run(audit_command(_network(tmp_path, port, offline=False), tmp_path / "reports", *extra,
                                  playbook="golive.yml"), tmp_path)
    assert completed.returncode == 2
    assert message in completed.stdout, completed.stdout[-3000:]
    assert "Start the stand-in" not in completed.stdout
