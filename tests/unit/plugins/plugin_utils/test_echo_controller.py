"""The echo action plugin's controller-side helpers (plugins/plugin_utils/echo_controller.py)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import echo_peers, resolve_hosts
from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import (
    JournalError,
    audit_echo_call,
    journal_record,
    unrunnable_module_message,
    write_journal,
)

PY36_STDERR = ('  File "/root/.ansible/tmp/x/AnsiballZ_echo.py", line 3\n    from __future__ import annotations\n'
               '    ^\nSyntaxError: future feature annotations is not defined\n')


def test_a_python_too_old_for_the_module_is_named():
    result = {"failed": True, "module_stderr": PY36_STDERR, "msg": "Module result deserialization failed"}
    message = unrunnable_module_message(result, "/usr/bin/python3.6")
    assert "/usr/bin/python3.6" in message and "3.8 or newer" in message and "echo_venv" in message


@pytest.mark.parametrize("result", [
    {"failed": False, "module_stderr": PY36_STDERR},
    {"failed": True, "module_stderr": "ModuleNotFoundError: No module named 'pynetdicom'"},
    {"failed": True, "results": [{}], "module_stderr": PY36_STDERR},
    {"failed": True},
])
def test_other_failures_keep_their_own_message(result):
    assert unrunnable_module_message(result, "python3") is None


def test_the_journal_is_written_whole_with_mode_0640(tmp_path):
    path = tmp_path / "entry.json"
    record = journal_record("ct-1", "probe-1", {"calling": "ct1"},
                            {"results": [], "invocation": {"module_args": {}}, "_ansible_no_log": False})
    write_journal(str(path), record)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert json.loads(path.read_text()) == {"schema": 1, "host": "ct-1", "echoed_from": "probe-1",
                                            "item": {"calling": "ct1"}, "result": {"results": []}}
    assert os.listdir(tmp_path) == ["entry.json"]


@pytest.mark.parametrize("path, message", [
    ("relative.json", "not an absolute path"),
    ("/nonexistent-dir-for-test/x.json", "does not exist"),
])
def test_unusable_journal_paths_are_refused(path, message):
    with pytest.raises(JournalError, match=message):
        write_journal(path, {})


def _plans(**sources):
    """Real plans, as the plan step makes them, of a small registry and the given source hosts."""
    aes = {"pacs": {"ae_title": "PACS", "host": "127.0.0.5", "port": 104},
           "ct": {"ae_title": "CT_1", "host": "127.0.0.7", "port": 104},
           "ws": {"ae_title": "WS_1"}}
    plans, errors = resolve_hosts({name: dict(spec, dicom_aes=aes) for name, spec in sources.items()},
                                  inventory_hosts=["ct-1", "probe", "pacs"])
    assert errors == []
    for plan in plans.values():
        plan["echo_peers"] = echo_peers(plan)
    return plans


def test_a_managed_host_echoes_with_the_echo_module_and_unset_options_keep_its_defaults():
    plan = _plans(**{"ct-1": {"dicom_local_aes": ["ct"], "peer_lists": {"dicom_peers": ["pacs"]},
                              "dicom_bind_address": "127.0.0.7"}})["ct-1"]
    options = {"connect_timeout": 3, "acse_timeout": None, "tls": None, "retries": 1, "debug": False,
               "api_timeout": 9, "parallel": ""}
    module, call = audit_echo_call(plan, options, "/run/j/x.json", api_password="not for this one")
    assert module == "dicom.network.echo"
    assert call == {"calling_ae_title": "CT_1", "peers": plan["echo_peers"], "bind_address": "127.0.0.7",
                    "connect_timeout": 3, "retries": 1, "debug": False, "fail_on": "never",
                    "journal": "/run/j/x.json"}
    assert [peer["ae_title"] for peer in call["peers"]] == ["PACS"]


def test_an_archive_echoes_through_its_api_with_its_password_only_when_the_plan_says_it_has_one():
    api = {"type": "orthanc", "url": "https://pacs.example.org:8042/", "username": "audit", "password": "s3cret"}
    plans = _plans(pacs={"dicom_local_aes": ["pacs"], "peer_lists": {"dicom_peers": ["ct"]}, "dicom_echo_api": api},
                   **{"ct-1": {"dicom_local_aes": ["ct"], "peer_lists": {"dicom_peers": ["pacs"]}}})
    assert "s3cret" not in json.dumps(plans)
    module, call = audit_echo_call(plans["pacs"], {"api_timeout": 9, "connect_timeout": 3}, "/j.json", "s3cret")
    assert module == "dicom.network.orthanc_echo"
    assert call["password"] == "s3cret" and call["username"] == "audit" and call["timeout"] == 9
    assert call["url"].startswith("https://pacs.example.org:8042") and call["validate_certs"] is True
    assert call["registry"] == plans["pacs"]["drift"]["registry"] and "connect_timeout" not in call
    assert (call["fail_on"], call["journal"]) == ("never", "/j.json")
    without = dict(plans["pacs"], echo_api=dict(plans["pacs"]["echo_api"], has_password=False))
    assert "password" not in audit_echo_call(without, {}, "/j.json", "s3cret")[1]
