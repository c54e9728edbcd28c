"""Ways the system tests drive dicom.network.echo: in-process through the engine, and for real
through ansible-playbook with the collection on ANSIBLE_COLLECTIONS_PATH."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

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


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    value = fn(*args, **kwargs)
    return value, time.monotonic() - started


def run_playbook(tmp_path: Path, tasks: List[Dict[str, Any]], extra_args: Optional[List[str]] = None,
                 hosts: str = "localhost", inventory: Optional[str] = None, timeout: float = 240,
                 env: Optional[Dict[str, str]] = None, capture: Sequence[str] = ("echo_result",)
                 ) -> Dict[str, Any]:
    """Run ``tasks`` through ansible-playbook; return rc, output and the registered ``capture`` variables.

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
        [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(inventory_path), str(playbook)] + (extra_args or []),
        cwd=str(tmp_path), env=run_env, capture_output=True, text=True, timeout=timeout)
    if not captured.exists():
        raise AssertionError("ansible-playbook captured nothing (rc %d):\n%s\n%s"
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:]))
    document = json.loads(captured.read_text())
    document.update({"rc": completed.returncode, "stderr": completed.stderr, "stdout_text": completed.stdout})
    return document
