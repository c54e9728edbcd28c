"""dicom.network.echo run by ansible-playbook itself, as users run it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.tls import CLIENT_KEY_PASSWORD
from tests.system.helpers import peer_entry, run_playbook

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

PY39 = os.environ.get("DICOM_NETWORK_PY39") or os.environ.get("DICOM_PEERS_PY39") or "/tmp/py39/bin/python"


def _echo_task(args, **extra):
    task = {"name": "echo", "dicom.network.echo": args, "register": "echo_result"}
    task.update(extra)
    return task


def test_playbook_run_reports_every_outcome_and_never_changed(tmp_path, pynetdicom_peers, closed_port):
    args = {
        "calling_ae_title": "CT_EAST_1",
        "peers": [
            peer_entry(pynetdicom_peers["accept"], name="archive"),
            peer_entry(pynetdicom_peers["reject-calling"], name="strict", expect="reject"),
            peer_entry(closed_port, name="lab-segment", expect="blocked"),
        ],
        "connect_timeout": 3, "acse_timeout": 3, "dimse_timeout": 3,
    }
    document = run_playbook(tmp_path, [_echo_task(args)])
    result = document["echo_result"]
    assert document["rc"] == 0, document["stdout_text"][-3000:]
    assert result["changed"] is False
    assert [(r["name"], r["outcome"], r["ok"]) for r in result["results"]] == [
        ("archive", "success", True), ("strict", "rejected", True), ("lab-segment", "refused", True)]
    assert result["summary"]["total"] == 3 and result["summary"]["failed"] == 0
    assert result["msg"] == "all 3 peer(s) answered as expected"


def test_unexpected_outcome_fails_the_task_and_names_the_peer(tmp_path, pynetdicom_peers, closed_port):
    peers = [peer_entry(pynetdicom_peers["accept"], name="archive"),
             peer_entry(closed_port, name="printer")]
    document = run_playbook(tmp_path, [_echo_task({"peers": peers, "connect_timeout": 2})])
    result = document["echo_result"]
    assert document["rc"] != 0
    assert result["failed"] is True
    assert "printer (refused during connect, expected accept)" in result["msg"]
    assert "archive" not in result["msg"]
    assert len(result["results"]) == 2  # the failing task still returns every peer's result
    never = run_playbook(tmp_path, [_echo_task({"peers": peers, "connect_timeout": 2, "fail_on": "never"})])
    assert never["rc"] == 0 and never["echo_result"]["summary"]["failed"] == 1


def test_check_mode_still_echoes(tmp_path, pynetdicom_peers):
    peer = pynetdicom_peers["accept"]
    document = run_playbook(tmp_path, [_echo_task({"host": peer.host, "port": peer.port,
                                                   "called_ae_title": peer.ae_title})], ["--check"])
    result = document["echo_result"]
    assert document["rc"] == 0
    assert result["results"][0]["outcome"] == "success" and result["changed"] is False


def test_bad_input_fails_cleanly_before_any_traffic(tmp_path, hostile_peers):
    listener = hostile_peers["silent"]
    before = listener.connection_count()
    peers = [peer_entry(listener, name="ok"), peer_entry(listener, name="bad", ae_title="WAY_TOO_LONG_AE_TITLE")]
    document = run_playbook(tmp_path, [_echo_task({"peers": peers})])
    result = document["echo_result"]
    assert result["failed"] is True
    assert result["msg"] == ("invalid input: peers[1] (bad).ae_title must be at most 16 characters, got 21 "
                             "(got 'WAY_TOO_LONG_AE_TITLE')")
    assert "Traceback" not in document["stdout_text"] + document["stderr"]
    assert listener.connection_count() == before


def test_missing_pynetdicom_gives_the_standard_message(tmp_path, pynetdicom_peers):
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    peer = pynetdicom_peers["accept"]
    document = run_playbook(
        tmp_path, [_echo_task({"host": peer.host, "port": peer.port, "called_ae_title": peer.ae_title})],
        inventory="localhost ansible_connection=local ansible_python_interpreter=%s\n" % (bare / "bin" / "python"))
    result = document["echo_result"]
    assert result["failed"] is True
    assert result["msg"].startswith("pynetdicom is not installed for this host's Python (")
    assert "echo_audit_install_venv: true" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_python39_target_with_pynetdicom_2(tmp_path, pynetdicom_peers):
    if not os.access(PY39, os.X_OK):
        pytest.skip("no Python 3.9 target interpreter with pynetdicom 2.0 at %s" % PY39)
    peer = pynetdicom_peers["accept"]
    strict = pynetdicom_peers["reject-called"]
    args = {"peers": [peer_entry(peer), peer_entry(strict, ae_title="NOPE", name="nope", expect="reject")]}
    document = run_playbook(tmp_path, [_echo_task(args)],
                            inventory="localhost ansible_connection=local ansible_python_interpreter=%s\n" % PY39)
    result = document["echo_result"]
    assert document["rc"] == 0, document["stdout_text"][-3000:]
    assert [r["outcome"] for r in result["results"]] == ["success", "rejected"]


def test_key_password_never_appears_even_with_vvv(tmp_path, tls_peers, tls_material):
    peer = tls_peers["tls-mutual"]
    tls = {"enabled": True, "ca_file": tls_material["ca_cert"], "cert_file": tls_material["client_cert"],
           "key_file": tls_material["client_key_encrypted"], "key_password": CLIENT_KEY_PASSWORD}
    document = run_playbook(tmp_path, [_echo_task({"peers": [peer_entry(peer)], "tls": tls, "debug": True})],
                            ["-vvv"])
    result = document["echo_result"]
    assert result["results"][0]["outcome"] == "success", result["results"][0]["message"]
    everything = document["stdout_text"] + document["stderr"]
    assert CLIENT_KEY_PASSWORD not in everything
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in everything or "********" in everything


def test_ansible_doc_documents_every_option():
    completed = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "dicom.network.echo"],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    for option in ("calling_ae_title", "peers", "connect_timeout", "acse_timeout", "dimse_timeout", "parallel",
                   "count", "bind_address", "max_pdu", "tls", "debug", "fail_on", "EXAMPLES", "RETURN VALUES"):
        assert option in completed.stdout


def test_per_peer_tls_overrides_only_the_keys_it_names(tmp_path, tls_peers, tls_material, pynetdicom_peers):
    args = {
        "tls": {"enabled": True, "ca_file": tls_material["ca_cert"]},
        "peers": [
            peer_entry(tls_peers["tls"], name="inherits"),
            peer_entry(tls_peers["tls-untrusted"], name="unverified", tls={"verify": False}),
            peer_entry(pynetdicom_peers["accept"], name="plain", tls={"enabled": False}),
            peer_entry(tls_peers["tls-untrusted"], name="untrusted", expect="reject"),
            # A CA file missing on this host fails only the peer that names it, before any connection.
            peer_entry(tls_peers["tls"], name="no-ca-here", tls={"ca_file": "/nonexistent/dicom-ca.pem"}),
        ],
        "fail_on": "never",
    }
    document = run_playbook(tmp_path, [_echo_task(args)])
    outcomes = {r["name"]: (r["outcome"], r["tls"]) for r in document["echo_result"]["results"]}
    assert outcomes == {"inherits": ("success", True), "unverified": ("success", True),
                        "plain": ("success", False), "untrusted": ("tls_error", True),
                        "no-ca-here": ("tls_error", True)}
    missing = document["echo_result"]["results"][4]
    assert missing["message"].endswith(
        "no connection made to %s:%s: peers[4] (no-ca-here).tls.ca_file: file /nonexistent/dicom-ca.pem "
        "does not exist" % (tls_peers["tls"].host, tls_peers["tls"].port)), missing["message"]
    assert missing["timings_ms"]["connect"] is None and missing["source_address"] is None
