"""dicom.network.report_files run by ansible-playbook: real files in tmp_path, written on the controller
by the action plugin (no module process), atomically, with changed/unchanged, check mode, diff and errors
that name the file."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from tests.system.helpers import ANSIBLE_BIN, run_playbook
from tests.locked_dir import read_only_directory

pytestmark = [pytest.mark.ansible]


def _write(name: str, files: List[Dict[str, Any]], **extra: Any) -> Dict[str, Any]:
    task = {"name": name, "dicom.network.report_files": {"files": files}, "register": name}
    task["dicom.network.report_files"].update(extra.pop("args", {}))
    task.update(extra)
    return task


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_written_then_unchanged_then_only_their_mode_changes(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    stamped, latest, page = reports / "audit-1.json", reports / "latest.json", reports / "audit-1.html"
    files = [{"dest": [str(stamped), str(latest)], "content": '{"ok": 1}\n'},
             {"dest": str(page), "content": "<p>Scanner é</p>"}]
    # Remote files kept: a module process would leave its AnsiballZ file behind.
    document = run_playbook(tmp_path, [_write("first", files), _write("second", files),
                                       _write("third", files, args={"mode": "0600"})],
                            capture=("first", "second", "third"), env={"ANSIBLE_KEEP_REMOTE_FILES": "1"})
    assert document["rc"] == 0, document["stdout_text"][-3000:]

    first = document["first"]
    assert first["changed"] is True
    assert [(f["dest"], f["status"], f["mode"]) for f in first["files"]] == [
        (str(stamped), "created", "0640"), (str(latest), "created", "0640"), (str(page), "created", "0640")]
    assert first["files"][0]["size"] == len(b'{"ok": 1}\n')
    assert [f["status"] for f in document["second"]["files"]] == ["unchanged"] * 3
    assert document["second"]["changed"] is False
    assert [f["status"] for f in document["third"]["files"]] == ["mode_changed"] * 3
    assert document["third"]["changed"] is True

    assert stamped.read_bytes() == latest.read_bytes() == b'{"ok": 1}\n'
    assert page.read_bytes() == "<p>Scanner é</p>".encode("utf-8")  # exactly the content: no newline added
    assert all(_mode(path) == 0o600 for path in (stamped, latest, page))
    assert sorted(os.listdir(reports)) == ["audit-1.html", "audit-1.json", "latest.json"]  # no temporary file
    # Written by the action plugin in the worker: only the capturing copy task ran modules (stat, copy).
    modules = {path.name for path in (tmp_path / "ansible-remote").glob("**/AnsiballZ_*")}
    assert "AnsiballZ_copy.py" in modules and not [name for name in modules if "report_files" in name]


def test_check_mode_reports_what_would_change_writes_nothing_and_diffs(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest.md").write_text("# Audit\nold line\n")
    (reports / "latest.md").chmod(0o644)
    (reports / "latest.csv").write_text("same\n")
    (reports / "latest.csv").chmod(0o640)
    missing = tmp_path / "not-created-yet"
    files = [{"dest": str(reports / "latest.md"), "content": "# Audit\nnew line\n"},
             {"dest": str(reports / "latest.csv"), "content": "same\n"},
             {"dest": str(reports / "latest.json"), "content": "{}\n"},
             {"dest": str(missing / "latest.html"), "content": "<p></p>\n"}]
    document = run_playbook(tmp_path, [_write("planned", files)], extra_args=["--check", "--diff"],
                            capture=("planned",))
    assert document["rc"] == 0, document["stdout_text"][-3000:]
    planned = document["planned"]
    assert planned["changed"] is True
    assert [f["status"] for f in planned["files"]] == ["updated", "unchanged", "created", "created"]

    assert (reports / "latest.md").read_text() == "# Audit\nold line\n" and _mode(reports / "latest.md") == 0o644
    assert sorted(os.listdir(reports)) == ["latest.csv", "latest.md"] and not missing.exists()

    out = document["stdout_text"] + document["stderr"]
    assert "-old line" in out and "+new line" in out
    assert '"mode": "0644"' in out and '"mode": "0640"' in out
    assert "before: %s (absent)" % (reports / "latest.json") in out
    assert "check mode: the directory %s does not exist yet" % missing in out


def test_bad_arguments_and_unusable_destinations_fail_naming_them_and_write_nothing(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "a-directory.json").mkdir()
    ok_file = {"dest": str(good / "ok.txt"), "content": "x"}
    nowhere = tmp_path / "nowhere"
    with read_only_directory(tmp_path / "locked") as locked:
        cases = {
            "missing_dir": ([ok_file, {"dest": str(nowhere / "r.json"), "content": "x"}], {},
                            "%s: the directory %s does not exist" % (nowhere / "r.json", nowhere)),
            "not_writable": ([ok_file, {"dest": str(locked / "r.json"), "content": "x"}], {},
                             "%s: the directory %s is not writable" % (locked / "r.json", locked)),
            "dest_is_dir": ([ok_file, {"dest": str(good / "a-directory.json"), "content": "x"}], {},
                            "%s is a directory, not a file" % (good / "a-directory.json")),
            "bad_mode": ([ok_file], {"mode": "u=rw,g=r"}, "mode: 'u=rw,g=r' is not a quoted octal mode"),
            "number_mode": ([ok_file], {"mode": 416}, "mode: 416 is not a quoted octal mode"),
            "not_text": ([ok_file, {"dest": str(good / "r.json"), "content": {"ok": 1}}], {},
                         "files[1] (%s): content is a dict, not a string" % (good / "r.json")),
            "relative": ([{"dest": "reports/r.json", "content": "x"}], {},
                         "files[0].dest: 'reports/r.json' is not an absolute path on the controller"),
        }
        tasks = [_write(name, files, args=args, ignore_errors=True) for name, (files, args, _msg) in cases.items()]
        document = run_playbook(tmp_path, tasks, capture=tuple(cases))
        assert sorted(os.listdir(locked)) == []
    for name, (_files, _args, message) in cases.items():
        result = document[name]
        assert result["failed"] is True and message in result["msg"], (name, result)
    assert "Traceback" not in document["stdout_text"] + document["stderr"]
    # Every destination is checked before the first file is written.
    assert sorted(os.listdir(good)) == ["a-directory.json"]


def test_a_write_that_fails_half_way_changes_no_file_and_leaves_no_temporary_file(tmp_path):
    """A 64 kB file system (private to this ansible-playbook, in its own mount namespace) fills up while
    the second file is written: the first keeps its previous content (a set such as latest.* never mixes
    two runs), the second is not there, nor any temporary file."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare or subprocess.run(
            [unshare, "--mount", "--propagation", "private", "true"], capture_output=True, check=False).returncode:
        pytest.skip("needs root and unshare --mount to give ansible-playbook a small file system of its own")
    small = tmp_path / "small"
    small.mkdir()
    files = [{"dest": str(small / "latest.md"), "content": "fits\n"},
             {"dest": str(small / "latest.json"), "content": "x" * 200_000}]
    play = [{"name": "full disk", "hosts": "localhost", "gather_facts": False, "tasks": [
        _write("previous", [{"dest": str(small / "latest.md"), "content": "previous run\n"}]),
        _write("written", files, ignore_errors=True),
        {"name": "list the directory", "ansible.builtin.find": {"paths": str(small), "hidden": True},
         "register": "listing"},
        {"name": "read the first file", "ansible.builtin.slurp": {"src": str(small / "latest.md")}, "register": "first"},
        {"name": "keep the results", "ansible.builtin.copy": {
            "content": "{{ {'written': written, 'listing': listing.files | map(attribute='path') | list,"
                       " 'first': first.content | b64decode} | to_json }}",
            "dest": str(tmp_path / "captured.json"), "mode": "0600"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "inventory.ini").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n"
                                            % (ANSIBLE_BIN / "python"))
    completed = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs -o size=64k tmpfs "$1" && shift && exec "$@"', "sh", str(small),
         str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml")],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local")))
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    captured = json.loads((tmp_path / "captured.json").read_text())
    written = captured["written"]
    assert written["failed"] is True
    assert written["msg"] == "%s: cannot write it (No space left on device); no file was changed" % (
        small / "latest.json")
    assert written["files"] == [] and written["changed"] is False
    assert captured["listing"] == [str(small / "latest.md")]
    assert captured["first"] == "previous run\n"
