"""The echo_venv role run by ansible-playbook, offline from a wheelhouse, on real interpreters.

Two local-connection hosts use pyenv's Python 3.9 and 3.12 (neither has pynetdicom of its own),
with the virtualenvs under tmp_path. pip may use nothing but the wheelhouse: its configuration
files are switched off (/etc/pip.conf here points at local mirrors), HOME is empty (no cache,
no user config), PIP_NO_CACHE_DIR is set and PIP_INDEX_URL points at a closed loopback port,
so any index lookup fails the install.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

from tests.system.helpers import REPO_ROOT, peer_entry

pytestmark = [pytest.mark.ansible]

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
WHEELHOUSE = os.environ.get("DICOM_NETWORK_WHEELHOUSE", "")
DEFAULTS = yaml.safe_load((REPO_ROOT / "roles" / "echo_venv" / "defaults" / "main.yml").read_text())
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def pyenv_python(*minors: str) -> Optional[Path]:
    """The newest pyenv CPython of the first of ``minors`` that is installed, e.g. ("3.12", "3.11")."""
    for minor in minors:
        found = sorted(PYENV_VERSIONS.glob("%s.*/bin/python%s" % (minor, minor)),
                       key=lambda p: [int(x) for x in p.parents[1].name.split(".") if x.isdigit()])
        if found:
            return found[-1]
    return None


PY39 = pyenv_python("3.9")
PY_NEW = pyenv_python("3.12", "3.11", "3.13")
PY_OLD = [p for p in (pyenv_python("3.7"), pyenv_python("3.6")) if p]


def need_wheelhouse() -> Path:
    if not WHEELHOUSE or not Path(WHEELHOUSE).is_dir():
        pytest.skip("DICOM_NETWORK_WHEELHOUSE is not set or missing: run the tests through ./scripts/test, "
                    "whose setup fills .cache/wheelhouse")
    return Path(WHEELHOUSE)


def need(*pythons: Optional[Path]) -> None:
    if not all(pythons):
        pytest.skip("needs pyenv Pythons 3.9 and 3.11+ under %s" % PYENV_VERSIONS)


def offline_env(tmp_path: Path) -> Dict[str, str]:
    """The environment of ansible-playbook, and so (local connection) of every pip it starts."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update({
        "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"), "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
    })
    return env


def run(tmp_path: Path, plays: List[Dict[str, Any]], hosts: Dict[str, Dict[str, Any]], *args: str,
        env: Optional[Dict[str, str]] = None, group_vars: Optional[Dict[str, Any]] = None,
        name: str = "play") -> subprocess.CompletedProcess:
    playbook = tmp_path / ("%s.yml" % name)
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    inventory = tmp_path / ("%s-inventory.yml" % name)
    inventory.write_text(yaml.safe_dump({"all": {"children": {"sources": {"hosts": hosts, "vars": group_vars or {}}}}}))
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)] + list(args),
                          cwd=str(tmp_path), env=env or offline_env(tmp_path), capture_output=True, text=True,
                          timeout=300, check=False)


def recap(completed: subprocess.CompletedProcess) -> Dict[str, Dict[str, int]]:
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
            for m in RECAP.finditer(completed.stdout)}


def output(completed: subprocess.CompletedProcess) -> str:
    return "rc %d\n%s\n%s" % (completed.returncode, completed.stdout[-6000:], completed.stderr[-3000:])


def host(python: Path, venv: Path) -> Dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": str(python), "echo_venv_path": str(venv)}


def capture_task(directory: Path, expression: str) -> Dict[str, Any]:
    """Writes ``expression`` per host to <directory>/<host>.json (test plumbing: never a change)."""
    directory.mkdir(parents=True, exist_ok=True)
    return {"name": "Capture", "ansible.builtin.copy": {
        "content": "{{ %s | to_json }}" % expression, "dest": "%s/{{ inventory_hostname }}.json" % directory,
        "mode": "0600"}, "delegate_to": "localhost", "changed_when": False, "check_mode": False}


def captured(directory: Path) -> Dict[str, Any]:
    return {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}


def imports_pynetdicom(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import pynetdicom"], capture_output=True, check=False).returncode == 0


# ------------------------------------------------------------------ install, echo, idempotence
class Installed:
    def __init__(self, tmp_path: Path, plays, hosts, group_vars, first: subprocess.CompletedProcess):
        self.tmp_path, self.plays, self.hosts, self.group_vars, self.first = tmp_path, plays, hosts, group_vars, first

    def again(self, *args: str, name: str) -> subprocess.CompletedProcess:
        return run(self.tmp_path, self.plays, self.hosts, *args, group_vars=self.group_vars, name=name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, pynetdicom_peers) -> Installed:
    """The role then dicom.network.echo in one play, on a 3.9 and a 3.12 host, offline; run once."""
    wheelhouse = need_wheelhouse()
    need(PY39, PY_NEW)
    # Without this the echo's success would prove nothing about the virtualenv.
    assert not imports_pynetdicom(PY39) and not imports_pynetdicom(PY_NEW)
    tmp_path = tmp_path_factory.mktemp("echo_venv")
    # Negative control: in this environment pip reaches no index, cache or mirror at all.
    blocked = subprocess.run([sys.executable, "-m", "pip", "download", "--retries", "0", "--no-deps", "--dest",
                              str(tmp_path / "control"), "pydicom"], env=offline_env(tmp_path),
                             capture_output=True, text=True, timeout=120, check=False)
    assert blocked.returncode != 0 and "pydicom" in blocked.stderr + blocked.stdout, blocked
    out = tmp_path / "captured"
    peer = peer_entry(pynetdicom_peers["accept"], name="archive")
    plays = [{
        "name": "Install pynetdicom, then echo from the same play",
        "hosts": "sources", "gather_facts": False,
        "roles": [{"role": "dicom.network.echo_venv"}],
        "tasks": [
            {"name": "Echo", "dicom.network.echo": {
                "calling_ae_title": "VENV_TEST", "peers": [peer], "debug": True,
                "connect_timeout": 5, "acse_timeout": 5, "dimse_timeout": 5}, "register": "echo_result"},
            capture_task(out, "{'interpreter': ansible_python_interpreter, 'echo_venv_python': echo_venv_python, "
                              "'installed': echo_venv_installed, 'echo': echo_result}"),
        ]}]
    hosts = {"py39": host(PY39, tmp_path / "venv-py39"), "pynew": host(PY_NEW, tmp_path / "venv-pynew")}
    group_vars = {"echo_venv_wheelhouse": str(wheelhouse)}
    first = run(tmp_path, plays, hosts, group_vars=group_vars, name="first")
    return Installed(tmp_path, plays, hosts, group_vars, first)


@pytest.mark.peers
def test_offline_install_picks_pynetdicom_by_python_and_the_echo_runs_in_the_venv(installed):
    first = installed.first
    assert first.returncode == 0, output(first)
    assert all(counts["changed"] > 0 and counts["failed"] == 0 for counts in recap(first).values()), output(first)
    facts = captured(installed.tmp_path / "captured")
    assert sorted(facts) == ["py39", "pynew"]
    new_minor = "%s.%s" % tuple(PY_NEW.parents[1].name.split(".")[:2])
    for name, minor, pynetdicom, pydicom in (("py39", "3.9", "2.0.", "2.4."), ("pynew", new_minor, "3.", "3.")):
        venv = installed.tmp_path / ("venv-" + name)
        python = str(venv / "bin" / "python")
        got = facts[name]
        assert got["echo_venv_python"] == python
        # Set by the role, not by this play: the echo task below ran with it.
        assert got["interpreter"] == python
        assert got["installed"]["python"].startswith(minor + ".")
        assert got["installed"]["pynetdicom"].startswith(pynetdicom), got["installed"]
        assert got["installed"]["pydicom"].startswith(pydicom), got["installed"]
        (result,) = got["echo"]["results"]
        assert (result["outcome"], result["ok"]) == ("success", True), result
        # The engine's debug log names the pynetdicom it ran on: the venv's one. The A-ASSOCIATE-RQ
        # announces the collection's own implementation version name.
        assert result["debug"][0] == "dicom.network echo on pynetdicom " + got["installed"]["pynetdicom"], result
        ours = [line for line in result["debug"] if "Our Implementation Version Name" in line]
        assert ours and ours[0].split()[-1] == "DICOMNET_0_1", ours
        # The offline source: the wheelhouse sits in the venv and pip sees only it.
        assert sorted(p.name for p in (venv / "wheelhouse").glob("*.whl")) == \
            sorted(p.name for p in Path(WHEELHOUSE).glob("*.whl"))
        assert subprocess.run([python, "-c", "import pynetdicom"], check=False).returncode == 0


@pytest.mark.peers
def test_second_run_and_check_mode_change_nothing(installed):
    assert installed.first.returncode == 0, output(installed.first)
    for args, name in (((), "second"), (("--check",), "check")):
        completed = installed.again(*args, name=name)
        assert completed.returncode == 0, output(completed)
        counts = recap(completed)
        assert sorted(counts) == ["py39", "pynew"], output(completed)
        assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), (name, output(completed))
        # The echo ran again in the venv (check mode too: the module is read-only).
        for got in captured(installed.tmp_path / "captured").values():
            assert got["interpreter"] == got["echo_venv_python"]
            assert got["echo"]["results"][0]["outcome"] == "success"


def test_check_mode_on_a_new_path_reports_changes_and_writes_nothing(tmp_path):
    wheelhouse = need_wheelhouse()
    need(PY_NEW)
    out = tmp_path / "captured"
    plays = [{"name": "Check mode", "hosts": "sources", "gather_facts": False,
              "roles": [{"role": "dicom.network.echo_venv"}],
              "tasks": [capture_task(out, "{'interpreter': ansible_python_interpreter, "
                                          "'installed': echo_venv_installed}")]}]
    completed = run(tmp_path, plays, {"pynew": host(PY_NEW, tmp_path / "new" / "venv")}, "--check",
                    group_vars={"echo_venv_wheelhouse": str(wheelhouse)})
    assert completed.returncode == 0, output(completed)
    assert recap(completed)["pynew"]["changed"] > 0, output(completed)
    assert not (tmp_path / "new").exists()
    # No virtualenv yet: the host keeps its interpreter.
    assert captured(out) == {"pynew": {"interpreter": str(PY_NEW), "installed": {}}}


ROLE_ONLY = [{"name": "Role only", "hosts": "sources", "gather_facts": False,
              "roles": [{"role": "dicom.network.echo_venv"}]}]


def simple_index(root: Path, wheelhouse: Path) -> str:
    """A PEP 503 index on disk holding the wheelhouse's wheels; returns its file:// URL."""
    for wheel in wheelhouse.glob("*.whl"):
        project = root / str(parse_wheel_filename(wheel.name)[0])
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).symlink_to(wheel)
    for project in root.iterdir():
        links = "".join('<a href="%s">%s</a>' % (w.name, w.name) for w in sorted(project.glob("*.whl")))
        (project / "index.html").write_text("<html><body>%s</body></html>" % links)
    return root.as_uri()


def test_index_mode_recreates_a_venv_of_another_python(tmp_path):
    """echo_venv_index_url instead of a wheelhouse (a local index: no downloads in tests), on a path
    that holds a Python 3.9 virtualenv while the host's Python is newer: re-created, pynetdicom 3.
    With echo_venv_set_interpreter false the host keeps its interpreter."""
    wheelhouse = need_wheelhouse()
    need(PY39, PY_NEW)
    venv = tmp_path / "venv"
    subprocess.run([str(PY39), "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "left-by-the-old-venv").write_text("")
    out = tmp_path / "captured"
    plays = [dict(ROLE_ONLY[0], tasks=[capture_task(out, "{'interpreter': ansible_python_interpreter, "
                                                         "'python': echo_venv_python, "
                                                         "'installed': echo_venv_installed}")])]
    completed = run(tmp_path, plays, {"h": host(PY_NEW, venv)},
                    group_vars={"echo_venv_index_url": simple_index(tmp_path / "simple", wheelhouse),
                                # As -e echo_venv_set_interpreter=false gives it: text.
                                "echo_venv_set_interpreter": "false"})
    assert completed.returncode == 0, output(completed)
    assert recap(completed)["h"]["changed"] > 0, output(completed)
    got = captured(out)["h"]
    assert got["interpreter"] == str(PY_NEW)
    assert got["python"] == str(venv / "bin" / "python")
    assert got["installed"]["pynetdicom"].startswith("3."), got
    assert got["installed"]["python"].split(".")[:2] == PY_NEW.parents[1].name.split(".")[:2]
    assert not (venv / "left-by-the-old-venv").exists()
    assert not (venv / "wheelhouse").exists()


# ------------------------------------------------------------------ clear failures
def assert_failed_cleanly(completed: subprocess.CompletedProcess, hosts) -> str:
    assert completed.returncode != 0, output(completed)
    assert "Traceback" not in completed.stdout + completed.stderr, output(completed)
    counts = recap(completed)
    assert all(counts[name]["failed"] == 1 for name in hosts), output(completed)
    return completed.stdout


def test_a_too_old_python_fails_clearly_naming_host_and_version(tmp_path):
    wheelhouse = need_wheelhouse()
    if not PY_OLD:
        pytest.skip("needs a pyenv Python 3.7 or 3.6")
    hosts = {"old%d" % i: host(python, tmp_path / ("venv-%d" % i)) for i, python in enumerate(PY_OLD)}
    completed = run(tmp_path, ROLE_ONLY, hosts, group_vars={"echo_venv_wheelhouse": str(wheelhouse)})
    stdout = assert_failed_cleanly(completed, hosts)
    for i, python in enumerate(PY_OLD):
        version = python.parents[1].name
        assert re.search(r"old%d: \S*%s is Python %s, too old: pynetdicom needs Python 3\.8 or newer"
                         % (i, re.escape(python.name), re.escape(version)), stdout), output(completed)
        assert not (tmp_path / ("venv-%d" % i)).exists()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_wheelhouse_without_wheels_fails_naming_the_variable_and_path(tmp_path, make):
    need(PY_NEW)
    wheelhouse = tmp_path / "carried" / "wheelhouse"
    if make == "empty":
        wheelhouse.mkdir(parents=True)
    hosts = {"pynew": host(PY_NEW, tmp_path / "venv")}
    completed = run(tmp_path, ROLE_ONLY, hosts, group_vars={"echo_venv_wheelhouse": str(wheelhouse)})
    stdout = assert_failed_cleanly(completed, hosts)
    expected = "is not a directory on the controller" if make == "missing" else "holds no wheel"
    assert "echo_venv_wheelhouse: %s %s" % (wheelhouse, expected) in stdout, output(completed)
    assert not (tmp_path / "venv").exists()


def test_a_python_without_ensurepip_names_the_debian_package(tmp_path):
    """Debian's python3.X without python3.X-venv has no ensurepip module; a wrapper hides it the same way."""
    need(PY_NEW)
    hidden = tmp_path / "hidden" / "ensurepip"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test, as on Debian without python3-venv')\n")
    wrapper = tmp_path / "python3"
    wrapper.write_text("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n" % (hidden.parent, PY_NEW))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    hosts = {"debian": dict(host(PY_NEW, tmp_path / "venv"), echo_venv_base_python=str(wrapper))}
    completed = run(tmp_path, ROLE_ONLY, hosts)
    stdout = assert_failed_cleanly(completed, hosts)
    minor = "%s.%s" % tuple(PY_NEW.parents[1].name.split(".")[:2])
    assert "its ensurepip module is missing" in stdout, output(completed)
    assert "install the package python%s-venv" % minor in stdout, output(completed)
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("packages", ["pynetdicom>=3.0,<4", [], ["pynetdicom", " "]])
def test_a_requirement_set_that_is_not_a_list_of_requirements_fails_naming_the_variable(tmp_path, packages):
    """-e echo_venv_packages_python310=pynetdicom passes the argument spec (text may become a list) and used to
    end in a template error when pip's argv was built; the role now says what the variable must be."""
    need(PY_NEW)
    hosts = {"new": dict(host(PY_NEW, tmp_path / "venv"), echo_venv_packages_python310=packages)}
    completed = run(tmp_path, ROLE_ONLY, hosts)
    stdout = assert_failed_cleanly(completed, hosts)
    assert "echo_venv_packages_python310 must be a non-empty list of pip requirements" in stdout, output(completed)
    assert "got %s" % json.dumps(packages) in stdout, output(completed)
    assert not (tmp_path / "venv").exists()


# ------------------------------------------------------------------ the wheelhouse
def test_the_setup_wheelhouse_satisfies_the_role_defaults():
    """scripts/lib/setup.sh repeats the role's requirement sets; this catches one changing alone."""
    wheels = [parse_wheel_filename(p.name) for p in need_wheelhouse().glob("*.whl")]
    for key in ("echo_venv_packages_python38", "echo_venv_packages_python310"):
        for spec in map(Requirement, DEFAULTS[key]):
            assert any(wheel[0] == spec.name and spec.specifier.contains(wheel[1]) for wheel in wheels), \
                (key, str(spec), wheels)


def test_wheelhouse_playbook_downloads_pure_python_wheels_for_both_pythons(tmp_path):
    """playbooks/wheelhouse.yml, fed from the setup's wheelhouse instead of PyPI (no downloads in tests)."""
    source = need_wheelhouse()
    env = offline_env(tmp_path)
    env.update({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(source)})
    dest = tmp_path / "usb" / "wheelhouse"
    command = [str(ANSIBLE_PLAYBOOK), str(REPO_ROOT / "playbooks" / "wheelhouse.yml"),
               "-e", "echo_venv_wheelhouse=%s" % dest]
    runs = [subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
                           check=False) for _attempt in range(2)]
    for completed, changes in zip(runs, (True, False)):
        assert completed.returncode == 0, output(completed)
        assert (recap(completed)["localhost"]["changed"] > 0) is changes, output(completed)
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(p.name for p in source.glob("*.whl"))
    assert all(name.endswith("-py3-none-any.whl") for name in names)
    versions = {(str(n), str(v)) for n, v, _b, _t in map(parse_wheel_filename, names)}
    assert {n for n, _v in versions} == {"pynetdicom", "pydicom"}
    assert any(n == "pynetdicom" and v.startswith("2.0.") for n, v in versions)
    assert any(n == "pynetdicom" and v.startswith("3.") for n, v in versions)


@pytest.mark.parametrize("extra, expected", [
    (["-e", "echo_venv_wheelhouse_python=/nonexistent/python"],
     'cannot run "/nonexistent/python -m pip" (exit 2: no such program, or not executable). '
     "Set echo_venv_wheelhouse_python to a Python with pip"),
    (["-e", "echo_venv_wheelhouse_python=/bin/false"], 'cannot run "/bin/false -m pip" (exit 1'),
    (["-e", "echo_venv_packages_python38=pynetdicom"],
     'echo_venv_packages_python38 must be a non-empty list of pip requirements (text such as'),
])
def test_wheelhouse_playbook_bad_input_fails_before_downloading_naming_it(tmp_path, extra, expected):
    dest = tmp_path / "usb" / "wheelhouse"
    command = [str(ANSIBLE_PLAYBOOK), str(REPO_ROOT / "playbooks" / "wheelhouse.yml"),
               "-e", "echo_venv_wheelhouse=%s" % dest] + extra
    completed = subprocess.run(command, cwd=str(tmp_path), env=offline_env(tmp_path), capture_output=True, text=True,
                               timeout=300, check=False)
    assert completed.returncode == 2, output(completed)
    assert "Traceback" not in completed.stdout + completed.stderr, output(completed)
    assert expected in completed.stdout, output(completed)
    assert not dest.exists()


def test_wheelhouse_playbook_in_check_mode_says_it_downloaded_nothing(tmp_path):
    dest = tmp_path / "usb" / "wheelhouse"
    command = [str(ANSIBLE_PLAYBOOK), str(REPO_ROOT / "playbooks" / "wheelhouse.yml"),
               "-e", "echo_venv_wheelhouse=%s" % dest, "--check"]
    completed = subprocess.run(command, cwd=str(tmp_path), env=offline_env(tmp_path), capture_output=True, text=True,
                               timeout=300, check=False)
    assert completed.returncode == 0, output(completed)
    assert "Check mode: nothing downloaded; %s would receive the wheels of pynetdicom>=2.0,<2.1" % dest \
        in completed.stdout, output(completed)
    assert "(it holds no wheel now)" in completed.stdout, output(completed)
    assert not dest.exists()


# ------------------------------------------------------------------ through the audit role
@pytest.mark.peers
def test_the_audit_installs_the_venv_first_and_a_host_where_that_fails_keeps_its_rows(tmp_path, pynetdicom_peers):
    """dicom.network.audit with echo_audit_install_venv: the 3.9 host gets its venv offline and echoes;
    the host whose Python is too old stays in every report, not_run with the venv's reason."""
    wheelhouse = need_wheelhouse()
    py39 = pyenv_python("3.9")
    need(py39, PY_OLD[0] if PY_OLD else None)
    accept = pynetdicom_peers["accept"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port},
           "src": {"ae_title": "SRC_AE", "host": "127.0.0.1", "port": 104}}
    sources = {"ws-py39": host(py39, tmp_path / "venv-39"), "ws-old": host(PY_OLD[0], tmp_path / "venv-old")}
    for values in sources.values():
        values.update({"dicom_local_aes": ["src"], "dicom_peers": ["archive"]})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"dicom_aes": aes}, "children": {
        "dicom_sources": {"hosts": sources}}}}))
    report_dir = tmp_path / "reports"
    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(REPO_ROOT / "playbooks" / "audit.yml"),
         "-e", "echo_audit_report_dir=%s" % report_dir, "-e", "echo_audit_install_venv=true",
         "-e", "echo_venv_wheelhouse=%s" % wheelhouse],
        cwd=str(tmp_path), env=offline_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert (report_dir / "latest.json").exists(), output(completed)
    report = json.loads((report_dir / "latest.json").read_text())
    by_host = {cell["source_host"]: cell for cell in report["cells"]}
    assert sorted(by_host) == ["ws-old", "ws-py39"]
    assert by_host["ws-py39"]["outcome"] == "success", by_host["ws-py39"]
    old = by_host["ws-old"]
    assert (old["outcome"], old["not_run_reason"]) == ("not_run", "setup_failed"), old
    assert "too old" in old["message"] and "Traceback" not in old["message"]
    assert completed.returncode != 0, "a check that did not run is not as expected"
