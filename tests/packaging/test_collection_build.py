"""The built collection: what the tarball holds and leaves out, that it installs offline, and that
the demo audit runs from the installed copy alone."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import pytest

from tests.packaging.conftest import REPO_ROOT, VENV_BIN, build_collection, galaxy_metadata, installed_env, \
    run, tar_members

# Local state that must never reach users: directory names anywhere in the tree ...
FORBIDDEN_DIRS = {".git", ".venv", "venv", ".pytest_cache", ".hypothesis", "__pycache__", ".ansible", ".cache",
                  ".tox", ".mypy_cache"}
# ... and paths from the collection root.
FORBIDDEN_PREFIXES = ("tests/output", "demo-output", "reports", "examples/execution-environment/context")
FORBIDDEN_SUFFIXES = (".pyc", ".tar.gz", ".retry")


def forbidden(members):
    """Members of a collection tarball that are caches, local state or build output."""
    found = []
    for name in members:
        path = PurePosixPath(name)
        if (FORBIDDEN_DIRS & set(path.parts) or name.endswith(FORBIDDEN_SUFFIXES)
                or any(name == prefix or name.startswith(prefix + "/") for prefix in FORBIDDEN_PREFIXES)):
            found.append(name)
    return found


def project_files():
    """Files git would put in a commit now: tracked plus new ones that .gitignore does not exclude."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=str(REPO_ROOT),
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sorted(name for name in listed if name and (REPO_ROOT / name).is_file())


def test_the_tarball_holds_every_content_file_and_no_local_state(built_collection):
    members = set(built_collection.members)
    assert not forbidden(members)
    assert {"MANIFEST.json", "FILES.json", "README.md", "requirements.txt", "meta/runtime.yml",
            "meta/execution-environment.yml", "roles/echo_audit/README.md"} <= members
    # Everything users run or copy, as the checkout has it now (new files too), nothing more or less.
    content = ("plugins/", "roles/", "playbooks/", "meta/", "examples/")
    wanted = {name for name in project_files() if name.startswith(content) and not forbidden([name])}
    packed = {name for name in members if name.startswith(content) and not name.endswith("/")
              and not (REPO_ROOT / name).is_dir()}
    assert wanted - packed == set(), "content files missing from the tarball"
    assert packed - wanted == set(), "files in the tarball that are not part of the project"
    manifest = json.loads((built_collection.installed / "MANIFEST.json").read_text())["collection_info"]
    galaxy = galaxy_metadata()
    for key in ("namespace", "name", "version", "tags", "license", "description", "authors"):
        assert manifest[key] == galaxy[key], key


def test_build_ignore_keeps_every_kind_of_local_state_out(tmp_path):
    """A copy of the project with the junk a working checkout accumulates: none of it is packed."""
    source = tmp_path / "checkout"
    for name in project_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    junk = [".venv/bin/python", "venv/pyvenv.cfg", ".pytest_cache/v/cache/nodeids", ".hypothesis/examples/x",
            ".ansible/collections/x", ".cache/wheelhouse/pynetdicom-3.0.4-py3-none-any.whl", ".git/HEAD",
            "tests/output/collections/x", "tests/output/.tmp/x", "demo-output/reports/latest.json",
            "reports/latest.json", "plugins/filter/__pycache__/echo_matrix.cpython-311.pyc",
            "roles/echo_audit/stray.pyc", "dicom-network-0.0.1.tar.gz",
            "examples/execution-environment/dicom-network-0.1.0.tar.gz",
            "examples/execution-environment/context/Containerfile", "playbooks/audit.retry"]
    for name in junk:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("local state\n")
    members = tar_members(build_collection(source, tmp_path / "dist"))
    assert forbidden(members) == []
    assert "playbooks/audit.yml" in members  # the build did pack the content


@pytest.mark.ansible
def test_the_installed_copy_is_the_only_dicom_network_ansible_sees(built_collection):
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "list", "dicom.network", "--format", "json"],
                    env=installed_env(built_collection.collections_path))
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert found == {str(built_collection.collections_path / "ansible_collections"):
                     {"dicom.network": {"version": built_collection.version}}}
    # The same environment without the installed copy finds no audit playbook at all.
    empty = built_collection.collections_path.parent / "empty-collections"
    empty.mkdir(exist_ok=True)
    missing = run([VENV_BIN / "ansible-playbook", "--syntax-check", "-i", "localhost,", "dicom.network.audit"],
                  env=installed_env(empty))
    assert missing.returncode != 0
    assert "dicom.network.audit" in missing.stdout + missing.stderr


@pytest.mark.peers
@pytest.mark.ansible
def test_the_demo_audit_runs_from_the_installed_tarball(built_collection, tmp_path):
    completed = run([sys.executable, REPO_ROOT / "scripts" / "demo.py", "--collections-path",
                     built_collection.collections_path, "--output", tmp_path / "demo"], timeout=600,
                    env=installed_env(built_collection.collections_path))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    assert "Using dicom.network %s installed in %s" % (built_collection.version, built_collection.installed) \
        in completed.stdout
    assert "Traceback" not in output
    report = json.loads((tmp_path / "demo" / "reports" / "latest.json").read_text())
    summary = report["summary"]
    assert summary["total"] == len(report["cells"]) > 0
    # The demo network's deliberate faults, found by the installed copy as by the checkout.
    assert summary["failed"] > 0 and summary["ok"] > 0
    assert {c["outcome"] for c in report["cells"] if c["source_host"] == "us-a1"} == {"not_run"}
    exit_code = re.search(r"ansible-playbook exit code (\d+)", completed.stdout)
    assert exit_code and int(exit_code.group(1)) != 0, completed.stdout[-2000:]
    # ... and it is the role's verdict that fails the play, nothing else.
    lines = completed.stdout.splitlines()
    failures = [index for index, line in enumerate(lines) if "FAILED!" in line]
    assert len(failures) == 1 and "DICOM echo audit: %d checks" % summary["total"] in lines[failures[0] + 2], failures
    # The role that ran is the installed one: ansible names the failing task's file.
    assert str(built_collection.installed / "roles" / "echo_audit" / "tasks") in output
    assert str(REPO_ROOT / "roles") not in output


def test_demo_refuses_a_collections_path_without_the_collection(tmp_path):
    completed = run([sys.executable, REPO_ROOT / "scripts" / "demo.py", "--collections-path", tmp_path,
                     "--output", tmp_path / "demo"], timeout=60)
    assert completed.returncode != 0
    assert "no installed dicom.network" in completed.stderr and "ansible-galaxy collection install" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "demo").exists()  # refused before starting anything
