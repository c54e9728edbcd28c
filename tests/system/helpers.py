"""Ways the system tests drive dicom.network.echo: in-process through the engine, and for real
through ansible-playbook with the collection on ANSIBLE_COLLECTIONS_PATH."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

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
                 env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``tasks`` in a play through ansible-playbook and return the json callback's document."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "test play", "hosts": hosts, "gather_facts": False,
                                         "tasks": tasks}], sort_keys=False))
    inventory_path = tmp_path / "inventory.ini"
    inventory_path.write_text(inventory or "localhost ansible_connection=local ansible_python_interpreter=%s\n"
                              % sys.executable)
    run_env = dict(os.environ)
    run_env.update({
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
    })
    run_env.update(env or {})
    completed = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(inventory_path), str(playbook)] + (extra_args or []),
        cwd=str(tmp_path), env=run_env, capture_output=True, text=True, timeout=timeout)
    try:
        document = json.loads(completed.stdout[completed.stdout.index("{"):])
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d):\n%s\n%s"
                             % (completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:]))
    document["rc"] = completed.returncode
    document["stderr"] = completed.stderr
    document["stdout_text"] = completed.stdout
    return document


def task_results(document: Dict[str, Any], host: str = "localhost") -> List[Dict[str, Any]]:
    """The per-task results for ``host`` from a json-callback document, in task order."""
    return [task["hosts"][host] for play in document["plays"] for task in play["tasks"] if host in task["hosts"]]
