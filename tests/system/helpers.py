"""Ways the system tests drive the modules: dicom.network.echo in-process through the engine, and for real
through ansible-playbook with the collection on ANSIBLE_COLLECTIONS_PATH."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ansible_collections.dicom.network.plugins.module_utils.echo_engine import run_echoes
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import validate_request

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = Path(sys.executable).parent


def peer_entry(peer, **overrides) -> Dict[str, Any]:
    """A module ``peers`` entry for a running test peer."""
    entry = {"name": peer.name, "ae_title": peer.ae_title or "ANY_SCP", "host": peer.host, "port": peer.port}
    entry.update(overrides)
    return entry


def echo(peers: List[Dict[str, Any]], **params) -> List[Dict[str, Any]]:
    """Run the echo engine in this process, exactly as the module does after validation."""
    params.setdefault("connect_timeout", 3)
    params.setdefault("acse_timeout", 3)
    params.setdefault("dimse_timeout", 3)
    return run_echoes(validate_request(dict(params, peers=peers)))


def echo_one(peer, **params) -> Dict[str, Any]:
    overrides = {k: params.pop(k) for k in ("ae_title", "calling_ae_title", "expect", "tls", "name")
                 if k in params}
    (result,) = echo([peer_entry(peer, **overrides)], **params)
    return result


def most_at_once(results: List[Dict[str, Any]]) -> int:
    """The most associations whose [start, start + total] overlap, from the results themselves;
    started_at has whole milliseconds, so one that ended within 2 ms of another's start does not count
    as overlapping it."""
    spans = []
    for result in results:
        start = datetime.fromisoformat(result["started_at"]).timestamp()
        spans.append((start, start + result["timings_ms"]["total"] / 1000.0))
    return max(sum(1 for start, end in spans if start <= other < end - 0.002) for other, _end in spans)


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    value = fn(*args, **kwargs)
    return value, time.monotonic() - started


def _connected_tcp_endpoints():
    """(local port, remote port) of every connected TCP socket this process has open."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            dup = os.dup(int(fd))
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        try:
            if sock.type == socket.SOCK_STREAM:
                yield sock.getsockname()[1], sock.getpeername()[1]
        except (OSError, IndexError, TypeError):
            pass
        finally:
            sock.close()


def client_sockets(server_ports) -> int:
    """Open TCP sockets of this process that are not the in-process test servers' own ends."""
    return sum(1 for local, _remote in _connected_tcp_endpoints() if local not in server_ports)


def settle_threads(baseline: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()


def sockets_to(ports) -> int:
    """TCP sockets of this process connected to one of ``ports`` (our client ends towards the
    peers under test; in-process servers' own ends have those ports locally, not remotely)."""
    ports = set(ports)
    return sum(1 for local, remote in _connected_tcp_endpoints() if remote in ports and local not in ports)


def engine_threads() -> List[str]:
    """Names of live threads that are not the in-process hostile servers' own."""
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("hostile-"))


def _is_echo_thread(name: str) -> bool:
    """The engine's workers and watchdog, and pynetdicom's association and DUL threads."""
    return name.startswith(("dicom-echo", "RequestorThread")) or "run_reactor" in name


def idle_engine_threads(timeout: float = 5.0) -> List[str]:
    """Wait (bounded) until no echo thread of an earlier call is alive; return the thread
    names then, as a baseline that holds no leftovers of a previous call."""
    deadline = time.monotonic() + timeout
    current = engine_threads()
    while any(_is_echo_thread(name) for name in current) and time.monotonic() < deadline:
        time.sleep(0.05)
        current = engine_threads()
    return current


def settle_engine_threads(baseline: List[str], timeout: float = 5.0) -> List[str]:
    """Wait (bounded) until no engine or pynetdicom thread beyond ``baseline`` is left."""
    deadline = time.monotonic() + timeout
    current = engine_threads()
    while len(current) > len(baseline) and time.monotonic() < deadline:
        time.sleep(0.05)
        current = engine_threads()
    return current


def process_resources() -> Dict[str, int]:
    """Open file descriptors, threads and resident memory (kB) of this process, from /proc."""
    rss_kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(), "rss_kb": rss_kb}


def module_process(module: str = "echo") -> Tuple[List[str], Dict[str, str]]:
    """The command and environment that run plugins/modules/<module>.py as Ansible runs a module: a fresh
    Python process reading its arguments (``{"ANSIBLE_MODULE_ARGS": ...}``) on stdin, printing one JSON document."""
    collections = REPO_ROOT / "tests" / "output" / "collections"
    path = collections / "ansible_collections" / "dicom" / "network" / "plugins" / "modules" / ("%s.py" % module)
    return [sys.executable, str(path)], dict(os.environ, PYTHONPATH=os.pathsep.join([str(collections)] + sys.path))


def run_module(args: Dict[str, Any], timeout: float = 120, module: str = "echo") -> subprocess.CompletedProcess:
    """Run a module of the collection (see :func:`module_process`). Stdout/stderr are returned raw, so a
    stray print or traceback is visible (ansible-playbook would hide stderr on success)."""
    argv, env = module_process(module)
    return subprocess.run(argv, input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def run_playbook(tmp_path: Path, tasks: List[Dict[str, Any]], extra_args: Optional[List[str]] = None,
                 hosts: str = "localhost", inventory: Optional[str] = None, timeout: float = 240,
                 env: Optional[Dict[str, str]] = None, capture: Sequence[str] = ("echo_result",),
                 ansible_bin: Optional[Path] = None) -> Dict[str, Any]:
    """Run ``tasks`` through ansible-playbook; return rc, output and the registered ``capture`` variables.

    ``ansible_bin``: the bin directory of another ansible-core (tests/versions), else this venv's.

    The registered values are written to a file by an ``always`` section, so they are there even
    when a task fails (the json stdout callback lives outside ansible-core since 2.19).
    """
    captured = tmp_path / "captured.json"
    dump = "{{ {%s} | to_json }}" % ", ".join("'%s': (%s | default(None))" % (name, name) for name in capture)
    play = {"name": "test play", "hosts": hosts, "gather_facts": False, "tasks": [{
        "name": "tasks under test", "block": tasks,
        "always": [{"name": "capture registered results", "ansible.builtin.copy": {
            "content": dump, "dest": str(captured), "mode": "0600"}, "delegate_to": "localhost",
            "check_mode": False}]}]}
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    inventory_path = tmp_path / "inventory.ini"
    inventory_path.write_text(inventory or "localhost ansible_connection=local ansible_python_interpreter=%s\n"
                              % sys.executable)
    run_env = dict(os.environ)
    run_env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
    })
    run_env.update(env or {})
    if captured.exists():
        captured.unlink()
    completed = subprocess.run(
        [str((ansible_bin or ANSIBLE_BIN) / "ansible-playbook"), "-i", str(inventory_path), str(playbook)] + (extra_args or []),
        cwd=str(tmp_path), env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    if not captured.exists():
        raise AssertionError("ansible-playbook captured nothing (rc %d):\n%s\n%s"
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:]))
    document = json.loads(captured.read_text())
    document.update({"rc": completed.returncode, "stderr": completed.stderr, "stdout_text": completed.stdout})
    return document
