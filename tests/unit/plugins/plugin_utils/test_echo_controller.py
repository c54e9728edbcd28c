"""The echo action plugin's controller-side helpers (plugins/plugin_utils/echo_controller.py)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import (
    JournalError,
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
