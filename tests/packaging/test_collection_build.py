"""The built collection: what the tarball holds and leaves out, that it installs offline, and that
the demo audit runs from the installed copy alone."""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tarfile
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


# What an installed collection holds, and nothing more: every tarball member matches one of these
# (a * stays inside one path segment, ** spans any number of them). What is left out on purpose, through
# galaxy.yml build_ignore: tests/ (the test suites, the hostile-peer servers), docs/development.md and
# docs/hardening.md (how the project is built and tested), changelogs/fragments, benchmarks/, scripts/,
# the dev requirement and constraint files, .ci/ and the linters' settings.
ALLOWED = (
    "MANIFEST.json", "FILES.json",  # written by ansible-galaxy
    "README.md", "LICENSE", "CHANGELOG.rst", "requirements.txt",
    "changelogs/changelog.yaml", "changelogs/config.yaml",
    "meta/runtime.yml", "meta/execution-environment.yml",
    "plugins/*/*.py",
    "roles/*/README.md", "roles/*/defaults/*.yml", "roles/*/meta/*.yml", "roles/*/tasks/*.yml",
    "roles/*/vars/*.yml", "roles/*/handlers/*.yml", "roles/*/templates/*.j2",
    "playbooks/*.yml",
    "examples/**/*.yml", "examples/**/*.json", "examples/**/*.md",
    "inventory.example/README.md", "inventory.example/**/*.yml",
    # the docsite (antsibull-docs): links, extra docs and their pages
    "docs/docsite/*.yml", "docs/docsite/rst/*.rst",
)
# Members that must be there whatever else changes.
REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.rst", "requirements.txt",
            "meta/runtime.yml", "meta/execution-environment.yml", "changelogs/changelog.yaml", "changelogs/config.yaml",
            "playbooks/audit.yml", "roles/echo_audit/README.md", "roles/echo_venv/README.md",
            "roles/echo_audit/meta/argument_specs.yml", "plugins/modules/echo.py")
GENERATED = {"MANIFEST.json", "FILES.json"}


def _segments_match(parts, pattern, prefix=False):
    """fnmatch per path segment; ``**`` is any number of segments. With ``prefix``: could a path
    matching ``pattern`` lie under ``parts`` (which is then a directory)?"""
    if not parts:
        return prefix or all(p == "**" for p in pattern)
    if not pattern:
        return False
    if pattern[0] == "**":
        return _segments_match(parts, pattern[1:], prefix) or _segments_match(parts[1:], pattern, prefix)
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _segments_match(parts[1:], pattern[1:], prefix)


def allowed(name, patterns, directory=False):
    parts = PurePosixPath(name).parts
    return any(_segments_match(parts, PurePosixPath(pattern).parts, prefix=directory) for pattern in patterns)


def not_allowed(files, directories=()):
    """Files matched by no ALLOWED pattern, and directories in which no allowed file could be."""
    return ([name for name in files if not allowed(name, ALLOWED)]
            + [name for name in directories if not allowed(name, ALLOWED, directory=True)])


def tar_entries(tarball):
    """The regular files and the directories of a tarball (anything else is neither)."""
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    return ([m.name for m in members if m.isfile()], [m.name.rstrip("/") for m in members if m.isdir()],
            [m.name for m in members if not m.isfile() and not m.isdir()])


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


def test_the_tarball_holds_the_allowlist_exactly(built_collection):
    members = built_collection.members
    files, directories, others = tar_entries(built_collection.tarball)
    assert not forbidden(members)
    assert others == [], "links or special files in the tarball"
    assert not_allowed(files, directories) == [], "in the tarball but not in ALLOWED (allow it, or build_ignore it)"
    assert [name for name in REQUIRED if name not in files] == [], "required files missing from the tarball"
    # Every allowlisted file of the checkout, as it is now (new files too), is packed, and nothing else is.
    packed = set(files) - GENERATED
    wanted = {name for name in project_files() if allowed(name, ALLOWED) and not forbidden([name])}
    assert sorted(wanted - packed) == [], "allowlisted checkout files missing from the tarball"
    assert sorted(packed - wanted) == [], "files in the tarball that are not part of the project"
    manifest = json.loads((built_collection.installed / "MANIFEST.json").read_text())["collection_info"]
    galaxy = galaxy_metadata()
    for key in ("namespace", "name", "version", "tags", "license", "description", "authors"):
        assert manifest[key] == galaxy[key], key


def test_the_licence_is_the_full_gpl_3_text_galaxy_yml_names():
    assert galaxy_metadata()["license"] == ["GPL-3.0-or-later"]
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007")
    assert "END OF TERMS AND CONDITIONS" in text and "How to Apply These Terms to Your New Programs" in text


@pytest.mark.parametrize("name, directory, ok", [
    ("plugins/modules/echo.py", False, True), ("plugins", True, True), ("docs", True, True),
    ("docs/docsite/rst", True, True), ("docs/docsite/rst/inventory.rst", False, True),
    ("examples/awx-project/collections/requirements.yml", False, True),
    ("inventory.example/group_vars/all/dicom_aes.yml", False, True),
    ("tests", True, False), ("tests/peers/hostile.py", False, False), ("docs/development.md", False, False),
    ("plugins/modules/echo.py.orig", False, False), ("plugins/modules/sub/echo.py", False, False),
    ("plugins/modules", False, False), ("roles/x/files/a.sh", False, False), ("roles/x/files", True, False),
    ("changelogs/fragments/a.yml", False, False), ("changelogs/fragments", True, False),
    ("scripts/demo", False, False), ("requirements-dev.txt", False, False),
])
def test_the_allowlist_matches_by_path_segment(name, directory, ok):
    """A pattern's * stays in its path segment, ** spans any number of them; a directory is allowed
    when an allowed file could be in it."""
    files, directories = ([], [name]) if directory else ([name], [])
    assert (not_allowed(files, directories) == []) is ok


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
            "examples/execution-environment/context/Containerfile", "playbooks/audit.retry",
            "changelogs/.plugin-cache.yaml"]
    for name in junk:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("local state\n")
    tarball = build_collection(source, tmp_path / "dist")
    members = tar_members(tarball)
    assert forbidden(members) == []
    assert not_allowed(*tar_entries(tarball)[:2]) == []
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
