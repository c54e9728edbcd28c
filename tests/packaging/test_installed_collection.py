"""The collection installed from its tarball alone, as a hospital gets it: ansible-doc shows every
plugin and role it holds, and ``ansible-playbook dicom.network.audit`` checks a real DCMTK storescp on
loopback. Every command runs from an empty directory with only the installed copy on the collections
path (``installed_env``), so nothing of the checkout can stand in for a file the tarball lacks."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from tests.packaging.conftest import REPO_ROOT, VENV_BIN, installed_env, run
from tests.peers.dcmtk import missing_binaries, start_storescp

# plugins/<directory> -> the ansible-doc type of its plugins ...
DOC_TYPES = {"modules": "module", "filter": "filter", "test": "test", "lookup": "lookup", "callback": "callback",
             "connection": "connection", "inventory": "inventory", "become": "become", "cache": "cache",
             "vars": "vars", "strategy": "strategy", "shell": "shell", "cliconf": "cliconf", "httpapi": "httpapi",
             "netconf": "netconf"}
# ... and the directories that hold no plugin of their own: action plugins back the modules of the same
# name (documented there), the rest is code the plugins import.
NO_DOCS = {"action", "module_utils", "plugin_utils", "doc_fragments"}
# What ansible-doc prints when something is wrong with a plugin's documentation or its loading.
TROUBLE = re.compile(r"\[(WARNING|DEPRECATION WARNING|ERROR)\]|Traceback")

SOURCE_ADDRESS = "127.0.24.1"
REPORT_FILES = ("latest.json", "latest.html", "latest.md", "latest.csv", "latest.junit.xml", "latest.prom")


def ansible_doc(built_collection, cwd: Path, *args: str):
    """ansible-doc of the installed copy; fails the test on a non-zero exit, a warning or a traceback."""
    completed = run([VENV_BIN / "ansible-doc", *args], cwd=str(cwd), timeout=120,
                    env=installed_env(built_collection.collections_path))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, (args, output[-3000:])
    assert not TROUBLE.search(output) and not completed.stderr.strip(), (args, output[-3000:])
    return completed.stdout


def installed_plugins(installed: Path) -> Dict[str, List[str]]:
    """ansible-doc type -> the FQCNs of the installed copy's plugins of that type, from its files."""
    found: Dict[str, List[str]] = {}
    for directory in sorted(path for path in (installed / "plugins").iterdir() if path.is_dir()):
        if directory.name in NO_DOCS:
            continue
        assert directory.name in DOC_TYPES, "plugins/%s: a plugin type this test does not know" % directory.name
        names = sorted("dicom.network.%s" % path.stem for path in directory.glob("*.py")
                       if not path.name.startswith("_"))
        if names:
            found[DOC_TYPES[directory.name]] = names
    return found


@pytest.mark.ansible
def test_ansible_doc_shows_every_plugin_of_the_installed_copy(built_collection, tmp_path):
    plugins = installed_plugins(built_collection.installed)
    assert {"module", "filter"} <= set(plugins), plugins
    assert "dicom.network.echo" in plugins["module"]
    for doc_type, names in plugins.items():
        listed = json.loads(ansible_doc(built_collection, tmp_path, "-t", doc_type, "-l", "dicom.network", "--json"))
        assert sorted(listed) == names, doc_type
        for name in names:
            text = ansible_doc(built_collection, tmp_path, "-t", doc_type, name)
            path = built_collection.installed / "plugins"
            assert text.startswith("> %s %s (%s/" % (doc_type.upper(), name, path)), text[:300]


@pytest.mark.ansible
def test_ansible_doc_shows_every_role_and_entry_point_of_the_installed_copy(built_collection, tmp_path):
    roles = {path.parent.parent.name: yaml.safe_load(path.read_text())["argument_specs"]
             for path in (built_collection.installed / "roles").glob("*/meta/argument_specs.yml")}
    assert sorted(path.name for path in (built_collection.installed / "roles").iterdir()) == sorted(roles)
    assert {"echo_audit", "echo_venv"} <= set(roles)
    listed = json.loads(ansible_doc(built_collection, tmp_path, "-t", "role", "-l", "dicom.network", "--json"))
    assert {name: sorted(summary["entry_points"]) for name, summary in listed.items()} == \
        {"dicom.network.%s" % role: sorted(specs) for role, specs in roles.items()}
    for role, specs in roles.items():
        text = ansible_doc(built_collection, tmp_path, "-t", "role", "dicom.network.%s" % role)
        assert text.startswith("> ROLE: *dicom.network.%s* (%s)" % (role, built_collection.installed)), text[:300]
        for entry_point, spec in specs.items():
            assert "ENTRY POINT: *%s* - %s" % (entry_point, spec["short_description"]) in text, (role, entry_point)


def write_inventory(directory: Path, peer) -> Path:
    """One local source host on its own loopback address that must reach the storescp, in the documented
    model: the AE registry, the host's own AEs, its peers."""
    (directory / "group_vars" / "all").mkdir(parents=True)
    (directory / "host_vars").mkdir()
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        # The source runs the module with this Python (which has pynetdicom), as a target would.
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {"dicom_sources": {"hosts": {"ws-1": None}}}}}))
    (directory / "group_vars" / "all" / "dicom_aes.yml").write_text(yaml.safe_dump({"dicom_aes": {
        "archive": {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port, "site": "Site A",
                    "kind": "archive"},
        "ws_1": {"ae_title": "WS_1", "site": "Site A", "kind": "workstation"}}}))
    (directory / "host_vars" / "ws-1.yml").write_text(yaml.safe_dump({
        "dicom_local_aes": ["ws_1"], "dicom_bind_address": SOURCE_ADDRESS, "dicom_peers": ["archive"]}))
    return directory


@pytest.mark.peers
@pytest.mark.ansible
def test_the_audit_playbook_runs_from_the_installed_tarball_alone(built_collection, tmp_path):
    missing = missing_binaries(("storescp",))
    if missing:
        pytest.skip("DCMTK is not installed (%s; ./scripts/test installs it)" % ", ".join(missing))
    proc, peer = start_storescp(tmp_path / "peers", ae_title="ARCHIVE_SCP")
    try:
        inventory = write_inventory(tmp_path / "inventory", peer)
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        reports = tmp_path / "reports"
        completed = run([VENV_BIN / "ansible-playbook", "-i", inventory, "dicom.network.audit",
                         "-e", "echo_audit_report_dir=%s" % reports], cwd=str(cwd), timeout=300,
                        env=installed_env(built_collection.collections_path))
    finally:
        proc.stop()
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    assert "Traceback" not in output and "[WARNING]" not in output, output[-4000:]
    # The role that ran is the installed one (ansible names the task files it includes), never the checkout's.
    assert str(built_collection.installed / "roles" / "echo_audit" / "tasks") in completed.stdout
    assert str(REPO_ROOT) not in output
    assert "DICOM echo audit: 1 checks, 1 ok" in completed.stdout, completed.stdout[-3000:]
    assert [name for name in REPORT_FILES if not (reports / name).is_file()] == []
    report = json.loads((reports / "latest.json").read_text())
    (cell,) = report["cells"]
    assert (cell["source_host"], cell["calling_ae_title"], cell["called_ae_title"], cell["outcome"], cell["ok"]) == \
        ("ws-1", "WS_1", "ARCHIVE_SCP", "success", True), cell
    # The echo went from the source's own address to the real DCMTK server.
    assert (cell["source_address"], cell["peer_port"]) == (SOURCE_ADDRESS, peer.port), cell
    assert cell["peer_implementation_version"].startswith("OFFIS_DCMTK"), cell
    assert report["summary"]["total"] == report["summary"]["ok"] == 1
    assert not list(cwd.iterdir())  # the audit wrote only where it was told to
