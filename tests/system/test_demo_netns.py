"""scripts/demo.py opens no port beyond loopback: as root it runs its peers and the audit in a network
namespace of its own, deletes it however the demo ends, and says plainly when it cannot make one.

Each test starts the real demo (Orthanc, DCMTK, pynetdicom peers, ansible-playbook) and looks at it
while the audit runs: ansible-playbook prints ``PLAY [...]`` once every peer listens and the inventory
(with every port) is written, and the audit then takes several seconds. Who listens where
is read from /proc: ``/proc/<pid>/net/tcp`` is the table of that process's network namespace, and a
listening socket belongs to the demo when one of the demo's processes holds its inode. No packet is sent.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

from tests.peers.netns import NetNamespace, NetnsUnavailable

pytestmark = [pytest.mark.peers, pytest.mark.ansible, pytest.mark.netns]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "scripts" / "demo.py"
IN_NAMESPACE = re.compile(r"^Starting the demo hospital network in network namespace (dicom-demo-\S+) "
                          r"\(loopback only, no route out\)\.\.\.$", re.M)
ON_HOST = ("Starting the demo hospital network on this machine's loopback (DCMTK and Orthanc listen on all its "
           "interfaces while it runs)...")
CANNOT = re.compile(r"^demo: cannot create a network namespace \('ip netns add' not permitted here: [^\n]+\); "
                    r"the demo peers listen on all interfaces of this machine \(DCMTK and Orthanc cannot bind to "
                    r"one address\) while the demo runs$")
# ansible-playbook's first line: the peers are up, the inventory (with every port) is written, and the audit
# runs for several more seconds.
AUDIT_STARTED = "PLAY ["
# Root without CAP_SYS_ADMIN, as in an unprivileged container: `ip netns add` is refused by the kernel.
WITHOUT_SYS_ADMIN = ["setpriv", "--inh-caps=-all", "--bounding-set=-sys_admin", "--"]


@pytest.fixture(scope="module")
def namespaces() -> None:
    """The demo's namespace needs what any namespace needs here: skip, with why, where there is none."""
    try:
        NetNamespace.create("dnt").delete()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))


class Demo:
    """scripts/demo.py in a session of its own (so a Ctrl-C can be sent to its process group, as a terminal
    does), its stdout and stderr read line by line as they come."""

    def __init__(self, output: Path, *args: str, prefix: List[str] = ()):
        self.output = output
        self.proc = subprocess.Popen(list(prefix) + [sys.executable, str(DEMO), "--output", str(output)] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: List[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def text(self) -> str:
        return "\n".join(self.stdout) + "\n--- stderr ---\n" + "\n".join(self.stderr)

    def wait_for_audit(self, timeout: float = 60) -> None:
        """Until the peers are up and ansible-playbook has started its play (bounded)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(line.startswith(AUDIT_STARTED) for line in self.stdout):
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, "the audit never started:\n" + self.text()[-4000:]
                self._changed.wait(min(left, 1.0))

    def finish(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the demo did not end within %s s:\n%s" % (timeout, self.text()[-4000:]))
        for reader in self._readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def namespace(self) -> str:
        found = IN_NAMESPACE.search("\n".join(self.stdout))
        assert found, self.text()[-4000:]
        return found.group(1)

    def processes(self) -> Set[int]:
        """The demo's processes now: every descendant of the demo (the peers are started in sessions of
        their own, so the process group would miss them)."""
        children: Dict[int, List[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _read("/proc/%s/stat" % entry)
                if stat:
                    children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(entry))
        found, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        return found

    def ports(self) -> Set[int]:
        """Every port the demo's inventory says something listens on (the switched-off printer, the offline
        cart and the archive's wrong port for reading room 1 are closed on purpose), and the archive's REST API."""
        inventory = self.output / "inventory"
        aes = json.loads((inventory / "group_vars" / "all" / "dicom_aes.yml").read_text())["dicom_aes"]
        api = json.loads((inventory / "host_vars" / "pacs-a" / "credentials.yml").read_text())["orthanc_api_url"]
        return {ae["port"] for name, ae in aes.items() if name not in ("printer_a", "us_a1")} | \
            {int(api.rsplit(":", 1)[1])}


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def listening(pid: str = "self") -> Dict[str, int]:
    """{socket inode: port} of the TCP sockets listening in the network namespace of process ``pid``."""
    found = {}
    for table in ("tcp", "tcp6"):
        for line in (_read("/proc/%s/net/%s" % (pid, table)) or "").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def socket_inodes(pids: Set[int]) -> Set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    return inodes


def alive(pids: Set[int], timeout: float = 5.0) -> Set[int]:
    """Which of ``pids`` still run after up to ``timeout`` s (killed grandchildren linger a moment as zombies)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for pid in pids if (_read("/proc/%d/stat" % pid) or ") Z").rsplit(")", 1)[1].split()[0]
                not in ("Z", "X")}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def ip(*args: str) -> str:
    completed = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=10, check=False)
    return completed.stdout + completed.stderr


def assert_gone(name: str, processes: Set[int]) -> None:
    assert name not in ip("netns", "list").split()
    assert not Path("/run/netns", name).exists()
    assert not Path("/etc/netns", name).exists()
    assert alive(processes) == set(), "processes of the demo left running"


def listening_in_namespace(demo: Demo) -> Set[int]:
    """While the audit runs: the demo listens only inside its namespace, and nothing of it in the host's.
    Returns the demo's processes."""
    name = demo.namespace()
    processes = demo.processes()
    inside = {int(pid) for pid in ip("netns", "pids", name).split()}
    assert processes - {demo.proc.pid} <= inside, "demo processes outside its namespace"
    assert demo.proc.pid not in inside  # only the namespace's owner stays out, to delete it at the end
    ours = socket_inodes(processes)
    in_namespace = {port for inode, port in listening(str(min(inside))).items() if inode in ours}
    assert demo.ports() <= in_namespace, "the peers do not listen in the namespace"
    on_host = {port for inode, port in listening().items() if inode in ours}
    assert on_host == set(), "demo ports listening in the host's network namespace"
    # Loopback only, no route out.
    assert ip("-n", name, "-o", "link", "show").split()[1] == "lo:"
    assert len(ip("-n", name, "-o", "link", "show").splitlines()) == 1
    assert ip("-n", name, "route", "show", "default").strip() == ""
    return processes


def test_the_demo_runs_in_a_namespace_of_its_own_and_deletes_it(namespaces, tmp_path):
    demo = Demo(tmp_path / "demo")
    try:
        demo.wait_for_audit()
        processes = listening_in_namespace(demo)
        code = demo.finish()
    finally:
        demo.kill()
    assert code == 0, demo.text()[-4000:]
    assert [line for line in demo.stderr if line.startswith("demo:")] == [], demo.text()[-4000:]
    assert re.search(r"^ansible-playbook exit code [1-9]\d*: ", "\n".join(demo.stdout), re.M), demo.text()[-4000:]
    # The reports are on this machine's file system, not in a namespace's.
    assert json.loads((tmp_path / "demo" / "reports" / "latest.json").read_text())["summary"]["failed"] > 0
    assert_gone(demo.namespace(), processes)


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_a_stopped_demo_stops_its_peers_and_deletes_its_namespace(namespaces, tmp_path, stop):
    demo = Demo(tmp_path / "demo")
    try:
        demo.wait_for_audit()
        processes = listening_in_namespace(demo)
        if stop == "ctrl-c":  # what a terminal does: SIGINT to every process of the foreground group
            os.killpg(demo.proc.pid, signal.SIGINT)
        else:  # kill, systemd, a CI timeout: SIGTERM to the demo alone
            demo.proc.send_signal(signal.SIGTERM)
        code = demo.finish(timeout=60)
    finally:
        demo.kill()
    signum = signal.SIGINT if stop == "ctrl-c" else signal.SIGTERM
    assert code == 128 + signum, demo.text()[-4000:]
    assert "demo: stopped by %s" % signum.name in demo.stderr, demo.text()[-4000:]
    # The demo unwound cleanly. (ansible-playbook may print a traceback of its own: a Ctrl-C that lands while
    # it forks a worker is reported by that worker.)
    assert '%s", line' % DEMO not in demo.text(), demo.text()[-4000:]
    assert demo.stdout[-1].startswith("Demo network stopped ("), demo.text()[-4000:]
    assert_gone(demo.namespace(), processes)


def test_the_next_demo_deletes_the_namespace_of_a_demo_killed_with_sigkill(namespaces, tmp_path):
    killed = Demo(tmp_path / "killed")
    try:
        killed.wait_for_audit()
        name = killed.namespace()
        # SIGKILL to every process of the demo (kill -9, the OOM killer): no cleanup of its own runs.
        for pid in killed.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed.proc.wait(10)
    finally:
        killed.kill()
    deadline = time.monotonic() + 10
    while ip("netns", "pids", name).split() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert name in ip("netns", "list").split(), "the killed demo's namespace is expected to stay behind"
    # A namespace whose creator lives is not the next demo's to delete, whatever its name.
    alive = "dicom-demo-%d-99" % os.getpid()
    subprocess.run(["ip", "netns", "add", alive], check=True)
    try:
        demo = Demo(tmp_path / "next")
        try:
            code = demo.finish()
        finally:
            demo.kill()
        assert code == 0, demo.text()[-4000:]
        assert "demo: deleted network namespace %s, left behind by a demo that was killed" % name in demo.stderr, \
            demo.text()[-4000:]
        namespaces_now = ip("netns", "list").split()
        assert name not in namespaces_now and alive in namespaces_now
        assert not (Path("/etc/netns") / name).exists()
    finally:
        subprocess.run(["ip", "netns", "delete", alive], check=False)


@pytest.mark.parametrize("how", ["without CAP_SYS_ADMIN", "--no-netns"])
def test_without_a_namespace_the_demo_says_so_and_runs_on_this_machine(namespaces, tmp_path, how):
    if how == "--no-netns":
        demo = Demo(tmp_path / "demo", "--no-netns")
    else:
        if shutil.which("setpriv") is None:
            pytest.skip("no setpriv (util-linux) to run the demo without CAP_SYS_ADMIN")
        demo = Demo(tmp_path / "demo", prefix=WITHOUT_SYS_ADMIN)
    try:
        demo.wait_for_audit()
        processes = demo.processes()
        ours = socket_inodes(processes)
        # What the namespace spares users: the peers' ports in the host's network namespace.
        assert demo.ports() <= {port for inode, port in listening().items() if inode in ours}
        demo.proc.send_signal(signal.SIGTERM)
        code = demo.finish(timeout=60)
    finally:
        demo.kill()
    assert ON_HOST in demo.stdout, demo.text()[-4000:]
    assert not IN_NAMESPACE.search("\n".join(demo.stdout))
    # ansible-playbook, stopped as by a Ctrl-C, says "User interrupted execution": only the demo's lines count.
    said = [line for line in demo.stderr if line.startswith("demo:") and line != "demo: stopped by SIGTERM"]
    if how == "--no-netns":
        assert said == [], demo.text()[-4000:]
    else:  # one line, before anything else the demo says
        assert len(said) == 1 and CANNOT.match(said[0]) and demo.stderr[0] == said[0], demo.text()[-4000:]
    assert code == 128 + signal.SIGTERM, demo.text()[-4000:]
    assert alive(processes) == set(), "processes of the demo left running"


def test_the_inner_demo_refuses_to_run_outside_its_namespace(tmp_path):
    completed = subprocess.run([sys.executable, str(DEMO), "--output", str(tmp_path / "demo"),
                                "--in-netns", "dicom-demo-none"], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 2
    assert "--in-netns dicom-demo-none: this process is not in that network namespace" in completed.stderr
    assert not (tmp_path / "demo").exists()
