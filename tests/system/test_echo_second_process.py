# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From 64 peers on a host with two or more CPUs, the engine shares the peers with a forked copy of
its process (pynetdicom is CPU-bound in one interpreter). Against real peers on loopback: every
peer still gets its own, correct result in input order, `parallel` still bounds the associations
open at once, and the peers of a copy that dies or hangs are echoed by the original process.

The engine runs in a fresh interpreter (second_process_probe.py), as in the module process: it
never forks a process that has other threads, and this test process has some.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.system.helpers import peer_entry, run_playbook

pytestmark = [pytest.mark.peers]

PROBE = Path(__file__).with_name("second_process_probe.py")
TIMEOUTS = {"connect_timeout": 2, "acse_timeout": 2, "dimse_timeout": 2}
PEER_COUNT = 80

needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                    reason="the engine forks only on a host with two or more CPUs")


def _probe(params: Dict[str, Any], copy: str = "normal", other_thread: bool = False) -> Dict[str, Any]:
    done = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=120, check=False,
                          input=json.dumps({"params": params, "copy": copy, "other_thread": other_thread}))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def mixed_peers(pynetdicom_peers, closed_port) -> List[Dict[str, Any]]:
    """80 peers in a repeating pattern of four answers, each with its expected outcome."""
    pattern = [(pynetdicom_peers["accept"], "success"), (pynetdicom_peers["reject-called"], "rejected"),
               (closed_port, "refused"), (pynetdicom_peers["status-failure"], "status_failure")]
    entries = []
    for index in range(PEER_COUNT):
        peer, outcome = pattern[index % len(pattern)]
        entry = peer_entry(peer, name="peer-%02d-%s" % (index, outcome))
        if outcome == "rejected":
            entry["ae_title"] = "NOT_STRICT%02d" % index
        entries.append(entry)
    return entries


def _check_every_result(entries: List[Dict[str, Any]], results: List[Dict[str, Any]]) -> None:
    assert [r["name"] for r in results] == [e["name"] for e in entries]
    for entry, result in zip(entries, results):
        assert result["outcome"] == entry["name"].split("-", 2)[2], result
        assert result["ae_title"] == entry["ae_title"], result


def _most_at_once(results: List[Dict[str, Any]]) -> int:
    spans = []
    for result in results:
        start = datetime.fromisoformat(result["started_at"]).timestamp()
        spans.append((start, start + result["timings_ms"]["total"] / 1000.0))
    return max(sum(1 for start, end in spans if start <= other < end - 0.002) for other, _end in spans)


@needs_two_cpus
def test_many_peers_are_shared_with_a_second_process(mixed_peers):
    report = _probe(dict(TIMEOUTS, peers=mixed_peers, parallel=4))
    assert report["forks"] == 1
    assert report["children_left"] == 0
    _check_every_result(mixed_peers, report["results"])
    # parallel 4 is split 2 + 2: no more associations at once than configured (none of these stall).
    assert _most_at_once(report["results"]) <= 4


@needs_two_cpus
def test_both_processes_together_open_no_more_than_the_documented_limit(hostile_factory):
    """parallel 100 allows 256 open associations while peers stall (not 4 x 100): the two processes
    share those 256, instead of each allowing min(4 x 50, 256) = 200 for its 150 silent peers."""
    silent = [hostile_factory("silent", hold_max=10.0, max_connections=200) for _index in range(2)]
    entries = [peer_entry(silent[index % 2], name="silent-%03d" % index) for index in range(300)]
    report = _probe({"peers": entries, "parallel": 100, "connect_timeout": 3, "acse_timeout": 3})
    assert report["forks"] == 1
    assert all(r["outcome"] == "timeout" for r in report["results"]), report["results"][0]
    assert 200 < _most_at_once(report["results"]) <= 256


def test_fewer_peers_or_other_threads_stay_in_one_process(mixed_peers):
    few = _probe(dict(TIMEOUTS, peers=mixed_peers[:63]))
    threaded = _probe(dict(TIMEOUTS, peers=mixed_peers), other_thread=True)
    low_parallel = _probe(dict(TIMEOUTS, peers=mixed_peers, parallel=3))
    assert (few["forks"], threaded["forks"], low_parallel["forks"]) == (0, 0, 0)
    _check_every_result(mixed_peers[:63], few["results"])
    _check_every_result(mixed_peers, threaded["results"])
    _check_every_result(mixed_peers, low_parallel["results"])


@needs_two_cpus
@pytest.mark.parametrize("copy", ["dies-at-once", "dies-after-3", "hangs"])
def test_peers_of_a_failed_copy_are_echoed_by_the_original(mixed_peers, copy):
    report = _probe(dict(TIMEOUTS, peers=mixed_peers), copy=copy)
    assert report["forks"] == 1
    assert report["children_left"] == 0
    _check_every_result(mixed_peers, report["results"])
    if copy == "hangs":
        # Killed 2 s (the shortened stall limit) after it was made, then its 40 peers echoed here.
        assert report["wall_s"] < 2.0 + 15.0, report["wall_s"]


# Loaded by every Python process of the play (PYTHONPATH): records which program calls fork().
FORK_RECORDER = """
import os, sys
_fork = os.fork
def _recording_fork():
    with open(os.environ["FORK_LOG"], "a") as log:
        log.write(os.path.basename(sys.argv[0] if sys.argv else "?") + "\\n")
    return _fork()
os.fork = _recording_fork
"""


@needs_two_cpus
def test_the_module_under_ansible_forks_and_returns_every_peer_once(tmp_path, mixed_peers):
    """Through AnsiballZ: the module process forks, and the copy neither prints (the module's one
    JSON document) nor removes the module's files on its way out."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FORK_RECORDER)
    fork_log = tmp_path / "forks.log"
    outcome = run_playbook(tmp_path, [{
        "name": "echo 80 peers", "dicom.network.echo": dict(
            TIMEOUTS, calling_ae_title="SECOND_PROC", fail_on="never", parallel=8,
            peers=mixed_peers),
        "register": "echo_result"}], env={
            "FORK_LOG": str(fork_log),
            "PYTHONPATH": os.pathsep.join([str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(
                os.pathsep) if p])})
    assert outcome["rc"] == 0, outcome["stdout_text"][-3000:]
    registered = outcome["echo_result"]
    _check_every_result(mixed_peers, registered["results"])
    assert registered["summary"]["total"] == PEER_COUNT
    assert registered["changed"] is False
    # AnsiballZ runs the module with its own path as argv[0]; the other lines are the controller's.
    assert fork_log.read_text().splitlines().count("echo.py") == 1, fork_log.read_text()
