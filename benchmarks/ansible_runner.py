"""Run ansible-playbook for the benchmarks, with wall-clock task time stamps (callback
``bench_timer``) and, optionally, the peak memory of every module process.

Peak memory: the inventory's ``ansible_python_interpreter`` is pointed at a small wrapper that
runs the real interpreter as its child and records ``wait4()``'s ``ru_maxrss`` (the child's
VmHWM) with the AnsiballZ file name. The wrapper costs one extra Python start per module, so it is
only used in memory runs, never in timing runs.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from benchmarks.workers import REPO_ROOT
from tests.collection_path import ensure_collection_path

ANSIBLE_BIN = Path(sys.executable).parent
CALLBACK_DIR = Path(__file__).resolve().parent / "callback_plugins"

_RSS_WRAPPER = '''#!%(python)s -S
# Written by benchmarks/ansible_runner.py: run the real interpreter, record its peak RSS.
import json, os, subprocess, sys
child = subprocess.Popen([%(python)r] + sys.argv[1:])
_pid, status, usage = os.wait4(child.pid, 0)
with open(%(out)r, "a") as handle:
    handle.write(json.dumps({"argv": sys.argv[1:], "maxrss_kb": usage.ru_maxrss,
                             "cpu_s": usage.ru_utime + usage.ru_stime}) + "\\n")
sys.exit(os.waitstatus_to_exitcode(status))
'''


@dataclass
class AnsibleRun:
    rc: int
    wall_s: float
    started: float
    timer: Dict[str, Any]
    output: str
    memory: List[Dict[str, Any]] = field(default_factory=list)

    def tasks(self) -> List[Dict[str, Any]]:
        """Tasks with ``start`` and ``end`` (the last host result), in play order."""
        ends: Dict[int, float] = {}
        for result in self.timer.get("results", []):
            ends[result["task"]] = max(ends.get(result["task"], 0.0), result["end"])
        out = []
        for index, task in enumerate(self.timer.get("tasks", [])):
            if task.get("start") is None:
                continue
            out.append(dict(task, index=index, end=ends.get(index, task["start"])))
        return out

    def echo_digests(self) -> List[Dict[str, Any]]:
        """Every dicom.network.echo result the callback saw (one per host and loop item)."""
        return [digest for result in self.timer.get("results", []) for digest in result.get("echo", [])]


def rss_wrapper(workdir: Path) -> Path:
    path = Path(workdir) / "rss-python"
    out = Path(workdir) / "rss.jsonl"
    path.write_text(_RSS_WRAPPER % {"python": sys.executable, "out": str(out)})
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_playbook(workdir: Path, plays: Any, inventory: Dict[str, Any], extra_vars: Optional[Dict] = None,
                 forks: int = 5, timeout: float = 600.0, playbook_path: Optional[Path] = None,
                 memory: bool = False, env: Optional[Dict[str, str]] = None,
                 collections_root: Optional[Path] = None) -> AnsibleRun:
    """Run ``plays`` (a list of plays) or ``playbook_path`` against ``inventory`` (a YAML-able dict).

    ``collections_root``: the ``ansible_collections`` root to load dicom.network from (benchmarks/ab.py
    passes another commit's export); default the checkout, through tests/output/collections."""
    only_root = collections_root is not None
    if collections_root is None:
        collections_root = ensure_collection_path()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if playbook_path is None:
        playbook_path = workdir / "play.yml"
        playbook_path.write_text(yaml.safe_dump(plays, sort_keys=False))
    inventory_path = workdir / "inventory.yml"
    rss_out = workdir / "rss.jsonl"
    if memory:
        wrapper = rss_wrapper(workdir)
        if rss_out.exists():
            rss_out.unlink()
        for group in _host_groups(inventory):
            for hostvars in group.values():
                hostvars["ansible_python_interpreter"] = str(wrapper)
    inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    argv = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(inventory_path), str(playbook_path),
            "-f", str(forks)]
    if extra_vars:
        vars_path = workdir / "extra-vars.json"
        vars_path.write_text(json.dumps(extra_vars))
        argv += ["-e", "@%s" % vars_path]
    timer_out = workdir / "timer.json"
    if timer_out.exists():
        timer_out.unlink()
    run_env = dict(os.environ)
    run_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "BENCH_TIMER_OUT": str(timer_out),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-remote"),
        "ANSIBLE_CONFIG": str(_empty_config(workdir)),
        "PYTHONPATH": str(REPO_ROOT),
    })
    if only_root:
        # An A/B run must not find another dicom.network on sys.path.
        run_env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "0"
    run_env.update(env or {})
    started = time.time()
    t0 = time.monotonic()
    completed = subprocess.run(argv, cwd=str(workdir), env=run_env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - t0
    timer = json.loads(timer_out.read_text()) if timer_out.exists() else {}
    mem = []
    if memory and rss_out.exists():
        mem = [json.loads(line) for line in rss_out.read_text().splitlines() if line.strip()]
    return AnsibleRun(completed.returncode, wall, started, timer, completed.stdout + completed.stderr, mem)


def _host_groups(inventory: Dict[str, Any]):
    """Every ``hosts:`` mapping of a YAML inventory dict."""
    stack = [inventory]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key == "hosts" and isinstance(value, dict):
                for name in list(value):
                    if value[name] is None:
                        value[name] = {}
                yield value
            elif isinstance(value, dict):
                stack.append(value)


def local_inventory(hosts: Dict[str, Dict[str, Any]], group: str = "bench", group_vars: Optional[Dict] = None,
                    all_vars: Optional[Dict] = None) -> Dict[str, Any]:
    """A YAML inventory of local-connection hosts running this interpreter."""
    return {"all": {"vars": dict(all_vars or {}), "children": {group: {
        "vars": dict(group_vars or {}),
        "hosts": {name: dict(hostvars, ansible_connection="local", ansible_python_interpreter=sys.executable)
                  for name, hostvars in hosts.items()}}}}}


def _empty_config(workdir: Path) -> Path:
    """An empty ansible.cfg, so that no configuration of the machine or the user leaks in."""
    path = workdir / "ansible.cfg"
    if not path.exists():
        path.write_text("[defaults]\n")
    return path


def ansible_floor(workdir: Path, runs: int = 3) -> Dict[str, float]:
    """What any one-task module call costs here: ansible-playbook running only ``ansible.builtin.ping``
    on a local-connection host (no DICOM, no pynetdicom import), the fastest of ``runs``.

    The targets' "best possible" bounds add it to what the peers themselves need: no module, however
    fast its own work, finishes a playbook sooner than this on this machine."""
    play = [{"name": "Ansible floor", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]}]
    walls = []
    for index in range(runs):
        run = run_playbook(Path(workdir) / ("floor-%d" % index), play, local_inventory({"localhost": {}}), forks=1,
                           timeout=120)
        if run.rc != 0:
            raise RuntimeError("ansible-playbook with one ping task failed (rc %d):\n%s" % (run.rc, run.output[-2000:]))
        walls.append(run.wall_s)
    return {"min_s": min(walls), "max_s": max(walls), "runs": len(walls)}
