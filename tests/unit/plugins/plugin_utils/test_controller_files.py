"""Files written on the controller (plugins/plugin_utils/controller_files.py): what a write would change
and the atomic write, on real files in tmp_path."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.controller_files import (
    ControllerFileError,
    FileSpec,
    apply_plans,
    atomic_write,
    plan_file,
)
from tests.locked_dir import read_only_directory


def _spec(path: Path, text: str = "new\n") -> FileSpec:
    return FileSpec(str(path), text.encode("utf-8"))


def test_a_new_file_is_created_with_exactly_its_mode_whatever_the_umask(tmp_path):
    dest = tmp_path / "latest.html"
    plan = plan_file(_spec(dest), 0o640)
    assert (plan.status, plan.changed) == ("created", True)
    previous = os.umask(0o077)
    try:
        apply_plans([plan])
    finally:
        os.umask(previous)
    assert dest.read_text() == "new\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["latest.html"]


def test_same_content_and_mode_is_unchanged_and_not_rewritten(tmp_path):
    dest = tmp_path / "latest.json"
    apply_plans([plan_file(_spec(dest), 0o640)])
    inode = dest.stat().st_ino
    plan = plan_file(_spec(dest), 0o640)
    assert (plan.status, plan.changed) == ("unchanged", False)
    apply_plans([plan])
    assert dest.stat().st_ino == inode


@pytest.mark.parametrize("before", ["old\n", "new!\n", "nev\n"])  # another size, and the same size
def test_other_content_is_updated_by_a_new_file_renamed_over_the_old_one(tmp_path, before):
    dest = tmp_path / "latest.csv"
    dest.write_text(before)
    dest.chmod(0o640)
    with open(dest) as reader:  # a reader of the old file keeps the old file whole
        plan = plan_file(_spec(dest), 0o640)
        assert (plan.status, plan.changed) == ("updated", True)
        apply_plans([plan])
        assert reader.read() == before
    assert dest.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["latest.csv"]


def test_only_the_mode_is_fixed_when_only_the_mode_differs(tmp_path):
    dest = tmp_path / "latest.md"
    dest.write_text("new\n")
    dest.chmod(0o644)
    inode = dest.stat().st_ino
    plan = plan_file(_spec(dest), 0o640)
    assert (plan.status, plan.changed, plan.content_changed) == ("mode_changed", True, False)
    apply_plans([plan])
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640 and dest.stat().st_ino == inode


def test_a_symlink_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    dest = tmp_path / "latest.txt"
    dest.symlink_to(target)
    plan = plan_file(_spec(dest), 0o640)
    assert plan.status == "updated"
    apply_plans([plan])
    assert not dest.is_symlink() and dest.read_text() == "new\n" and target.read_text() == "keep\n"


def test_a_missing_directory_is_refused_naming_the_file_except_in_check_mode(tmp_path):
    dest = tmp_path / "missing" / "latest.json"
    with pytest.raises(ControllerFileError, match="^%s: the directory %s does not exist" % (dest, dest.parent)):
        plan_file(_spec(dest), 0o640)
    plan = plan_file(_spec(dest), 0o640, check_mode=True)
    assert (plan.status, plan.changed, plan.directory_missing) == ("created", True, True)


def test_a_destination_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "latest.json").mkdir()
    with pytest.raises(ControllerFileError, match="^%s is a directory, not a file" % (tmp_path / "latest.json")):
        plan_file(_spec(tmp_path / "latest.json"), 0o640)


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "reports").write_text("")
    dest = tmp_path / "reports" / "latest.json"
    with pytest.raises(ControllerFileError, match="^%s: %s is not a directory" % (dest, dest.parent)):
        plan_file(_spec(dest), 0o640)


def test_a_destination_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "latest.json")
    with pytest.raises(ControllerFileError, match="latest.json exists and is not a regular file"):
        plan_file(_spec(tmp_path / "latest.json"), 0o640)


def test_a_directory_that_is_not_writable_is_refused_before_anything_is_written(tmp_path):
    with read_only_directory(tmp_path / "locked") as locked:
        dest = locked / "latest.json"
        with pytest.raises(ControllerFileError, match="^%s: the directory %s is not writable" % (dest, locked)):
            plan_file(_spec(dest), 0o640)
        # The writer itself fails too, and leaves nothing behind.
        with pytest.raises(PermissionError):
            atomic_write(str(dest), b"x", 0o640)
        assert os.listdir(locked) == []


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_whole(tmp_path):
    # os.replace cannot put a file over a non-empty directory: the write fails after the
    # temporary file was written, at the last step.
    dest = tmp_path / "latest.json"
    dest.mkdir()
    (dest / "inside").write_text("keep")
    with pytest.raises(OSError):
        atomic_write(str(dest), b"data", 0o640)
    assert sorted(os.listdir(tmp_path)) == ["latest.json"]
    assert (dest / "inside").read_text() == "keep"


def test_apply_plan_names_the_file_when_the_write_fails(tmp_path):
    dest = tmp_path / "latest.json"
    plan = plan_file(_spec(dest), 0o640)
    dest.mkdir()
    (dest / "inside").write_text("keep")  # appeared between the check and the write
    with pytest.raises(ControllerFileError, match="^%s: cannot write it" % dest):
        apply_plans([plan])
    assert sorted(os.listdir(tmp_path)) == ["latest.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_an_existing_file_keeps_its_owner_and_group(tmp_path):
    dest = tmp_path / "latest.html"
    dest.write_text("old\n")
    os.chown(dest, 65534, 65534)
    atomic_write(str(dest), b"new\n", 0o640)
    assert (dest.stat().st_uid, dest.stat().st_gid) == (65534, 65534)


# ------------------------------------------------------------------ exclusive: a run's own file
def _exclusive_spec(path: Path, text: str = "this run\n") -> FileSpec:
    return FileSpec(str(path), text.encode("utf-8"), exclusive=True)


def test_an_exclusive_file_is_created_and_then_unchanged(tmp_path):
    target = tmp_path / "echo-audit-20261126T154931Z.json"
    plan = plan_file(_exclusive_spec(target), 0o640)
    apply_plans([plan])
    assert target.read_text() == "this run\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    again = plan_file(_exclusive_spec(target), 0o640)
    assert again.status == "unchanged"
    assert sorted(os.listdir(tmp_path)) == [target.name]


@pytest.mark.parametrize("other", ["file", "symlink"])
def test_an_exclusive_file_that_exists_with_other_content_is_refused_and_kept(tmp_path, other):
    target = tmp_path / "echo-audit-20261126T154931Z.json"
    if other == "file":
        target.write_text("another run\n")
    else:
        (tmp_path / "elsewhere").write_text("another run\n")
        target.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ControllerFileError, match="already exists with other content .* it is never replaced"):
        plan_file(_exclusive_spec(target), 0o640)
    assert target.read_text() == "another run\n"


def test_an_exclusive_file_written_by_another_run_after_the_plan_is_kept(tmp_path):
    """Two audits that named their reports in the same second: the second writer fails, the first keeps its file."""
    target = tmp_path / "echo-audit-20261126T154931Z.json"
    plan = plan_file(_exclusive_spec(target), 0o640)
    target.write_text("the other run got there first\n")
    with pytest.raises(ControllerFileError, match="already exists with other content"):
        apply_plans([plan])
    assert target.read_text() == "the other run got there first\n"
    assert sorted(os.listdir(tmp_path)) == [target.name], "no temporary file is left"


def test_an_exclusive_file_on_a_file_system_without_hard_links_is_still_created_once(tmp_path, monkeypatch):
    def no_links(_source, _target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "echo-audit-20261126T154931Z.json"
    apply_plans([plan_file(_exclusive_spec(target), 0o640)])
    assert target.read_text() == "this run\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    target.unlink()
    plan = plan_file(_exclusive_spec(target, "this run\n"), 0o640)
    target.write_text("the other run\n")
    with pytest.raises(ControllerFileError, match="already exists with other content"):
        apply_plans([plan])
    assert target.read_text() == "the other run\n" and sorted(os.listdir(tmp_path)) == [target.name]


def test_an_exclusive_write_interrupted_without_hard_links_leaves_nothing_in_the_way(tmp_path, monkeypatch):
    """A Ctrl-C between reserving the name and moving the file in left an empty file that the rewrite
    then took for another run's report."""
    def no_links(_source, _target):
        raise OSError(errno.EPERM, "Operation not permitted")

    def interrupted(_source, _target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "echo-audit-20261126T154931Z.json"
    plan = plan_file(_exclusive_spec(target), 0o640)
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            apply_plans([plan])
    assert os.listdir(tmp_path) == []
    apply_plans([plan_file(_exclusive_spec(target), 0o640)])
    assert target.read_text() == "this run\n"


def test_a_full_disk_changes_none_of_the_files_of_one_call(tmp_path, monkeypatch):
    """latest.* must be the previous run's set or this run's, never a mix: every new content is written before
    any file is replaced, so the third file's ENOSPC leaves all three as they were."""
    paths = [tmp_path / name for name in ("latest.json", "latest.html", "latest.csv")]
    for path in paths:
        path.write_text("previous run\n")
    plans = [plan_file(_spec(path, "this run\n"), 0o640) for path in paths]
    real_fdopen = os.fdopen
    opened = []

    def filling_up(handle, *args, **kwargs):
        opened.append(handle)
        if len(opened) == 3:
            os.close(handle)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(handle, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", filling_up)
    done = []
    with pytest.raises(ControllerFileError, match="latest.csv: cannot write it .No space left on device.; no file was changed"):
        apply_plans(plans, done)
    assert done == []
    assert [path.read_text() for path in paths] == ["previous run\n"] * 3
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in paths), "no temporary file is left"
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    apply_plans(plans, done)
    assert [path.read_text() for path in paths] == ["this run\n"] * 3 and done == plans


def test_files_of_one_content_object_share_one_written_file(tmp_path):
    """A report and its latest.* copy: the data is written (and flushed) once, the second name is a hard link."""
    data = b"report\n"
    (tmp_path / "latest.json").write_bytes(b"previous run\n")
    plans = [plan_file(FileSpec(str(tmp_path / "run.json"), data, exclusive=True), 0o640),
             plan_file(FileSpec(str(tmp_path / "latest.json"), data), 0o640),
             plan_file(FileSpec(str(tmp_path / "other.json"), bytes(bytearray(data))), 0o640)]
    apply_plans(plans)
    run, latest, other = (os.stat(tmp_path / name) for name in ("run.json", "latest.json", "other.json"))
    assert (run.st_ino, run.st_nlink) == (latest.st_ino, 2) and other.st_ino != run.st_ino
    assert (tmp_path / "latest.json").read_bytes() == data and stat.S_IMODE(latest.st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["latest.json", "other.json", "run.json"]  # no temporary file left
