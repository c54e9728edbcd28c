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
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.system.helpers import most_at_once, peer_entry, run_playbook

pytestmark = [pytest.mark.peers]

PROBE = Path(__file__).with_name("second_process_probe.py")
TIMEOUTS = {"connect_timeout": 2, "acse_timeout": 2, "dimse_timeout": 2}
PEER_COUNT = 80

needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                    reason="the engine forks only on a host with two or more CPUs")


def _probe(params: Dict[str, Any], **options) -> Dict[str, Any]:
    done = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=120, check=False,
                          input=json.dumps(dict(options, params=params)))
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


@needs_two_cpus
def test_many_peers_are_shared_with_a_second_process(mixed_peers):
    report = _probe(dict(TIMEOUTS, peers=mixed_peers, parallel=4))
    assert report["forks"] == 1
    assert report["children_left"] == 0
    assert report["thread_errors"] == []
    _check_every_result(mixed_peers, report["results"])
    # parallel 4 is split 2 + 2: no more associations at once than configured (none of these stall).
    assert most_at_once(report["results"]) <= 4


@needs_two_cpus
def test_both_processes_together_open_no_more_than_the_documented_limit(hostile_factory):
    """parallel 100 allows 256 open associations while peers stall (not 4 x 100): the two processes
    share those 256, instead of each allowing min(4 x 50, 256) = 200 for its 150 silent peers."""
    silent = [hostile_factory("silent", hold_max=10.0, max_connections=200) for _index in range(2)]
    entries = [peer_entry(silent[index % 2], name="silent-%03d" % index) for index in range(300)]
    report = _probe({"peers": entries, "parallel": 100, "connect_timeout": 3, "acse_timeout": 3})
    assert report["forks"] == 1
    assert all(r["outcome"] == "timeout" for r in report["results"]), report["results"][0]
    assert 200 < most_at_once(report["results"]) <= 256


@needs_two_cpus
def test_both_processes_take_the_next_peer_whenever_they_have_room(pynetdicom_peers, hostile_factory):
    """Every other peer silent: with a fixed half each, one process would get all the silent peers.
    Both take from one queue instead, so the copy also echoes answering peers."""
    silent = hostile_factory("silent", hold_max=10.0, max_connections=200)
    entries = [peer_entry(silent if index % 2 else pynetdicom_peers["accept"], name="peer-%03d" % index)
               for index in range(128)]
    report = _probe({"peers": entries, "parallel": 4, "connect_timeout": 1, "acse_timeout": 1})
    assert report["forks"] == 1
    assert [r["outcome"] for r in report["results"]] == ["success", "timeout"] * 64
    delivered = set(report["copy_delivered"])
    assert delivered & set(range(0, 128, 2)) and delivered & set(range(1, 128, 2)), sorted(delivered)


@needs_two_cpus
def test_a_copy_that_keeps_delivering_is_never_killed(hostile_factory):
    """The copy sends each result as it is done: 80 silent peers at parallel 4 take several timeouts
    in all, longer than a stall limit of 2.5 s, but never 2.5 s without a result. Killed, the copy's
    peers would be echoed twice (the servers would count more than 80 connections)."""
    silent = [hostile_factory("silent", hold_max=10.0, max_connections=100) for _index in range(2)]
    entries = [peer_entry(silent[index % 2], name="silent-%02d" % index) for index in range(80)]
    report = _probe({"peers": entries, "parallel": 4, "connect_timeout": 1, "acse_timeout": 1},
                    stall_limit=2.5)
    assert report["forks"] == 1
    assert all(r["outcome"] == "timeout" for r in report["results"])
    assert report["wall_s"] > 2.5 + 1.0, "the copy's share must take longer than the stall limit"
    assert report["kills"] == 0
    assert len(report["copy_delivered"]) > 10
    # One result at a time, as each is done: the copy's results arrive over its whole share.
    assert max(report["arrivals_s"]) - min(report["arrivals_s"]) > 2.0, report["arrivals_s"]
    assert silent[0].control.accepted + silent[1].control.accepted == 80


@needs_two_cpus
def test_an_interrupt_while_waiting_for_the_copy_ends_the_copy(hostile_factory):
    silent = hostile_factory("silent", hold_max=10.0, max_connections=100)
    entries = [peer_entry(silent, name="silent-%02d" % index) for index in range(64)]
    report = _probe({"peers": entries, "parallel": 4, "connect_timeout": 2, "acse_timeout": 2},
                    interrupt_collect=True)
    assert report["interrupted"] is True
    assert report["children_left"] == 0


@needs_two_cpus
def test_an_interrupt_in_the_originals_own_share_leaves_its_workers_a_usable_queue(hostile_factory):
    """KeyboardInterrupt at the original's first own result, while its other workers wait on silent
    peers: they go back to the shared queue after their 1 s timeout. Had the interrupt closed it, they
    would read a closed descriptor (or whatever file got its number next)."""
    silent = hostile_factory("silent", hold_max=30.0)
    entries = [peer_entry(silent, name="silent-%02d" % index) for index in range(PEER_COUNT)]
    report = _probe({"peers": entries, "connect_timeout": 1, "acse_timeout": 1, "dimse_timeout": 1},
                    interrupt_own_share=True, linger_s=2.5)
    assert report["forks"] == 1
    assert report["interrupted"] is True
    assert report["thread_errors"] == []
    assert report["children_left"] == 0


@needs_two_cpus
def test_a_killed_module_process_leaves_no_copy_behind(tmp_path, hostile_factory):
    """What Ansible sees when it kills a module (a task timeout, a cancelled AWX job): the module's
    stdout closes at once, and the copy ends with it instead of echoing on for its share."""
    silent = hostile_factory("silent", hold_max=30.0, max_connections=100)
    entries = [peer_entry(silent, name="silent-%02d" % index) for index in range(64)]
    pid_file = tmp_path / "copy.pid"
    probe = subprocess.Popen([sys.executable, str(PROBE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    probe.stdin.write(json.dumps({"params": {"peers": entries, "parallel": 4, "connect_timeout": 10,
                                             "acse_timeout": 10}, "pid_file": str(pid_file)}).encode())
    probe.stdin.close()
    probe.stdin = None  # sent: communicate() only reads from now on
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and probe.poll() is None, probe.stderr.read()[-2000:]
            time.sleep(0.05)
        copy_pid = int(pid_file.read_text())
        time.sleep(0.5)
        probe.kill()
        probe.communicate(timeout=5)  # would wait for the copy if it held the probe's stdout
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    deadline = time.monotonic() + 5
    while _running(copy_pid):
        assert time.monotonic() < deadline, "the copy %d outlived the killed module process" % copy_pid
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("hung", [2, 5])
def test_hung_name_lookups_do_not_hold_up_the_other_peers(closed_port, hung):
    """A lookup that hangs (name servers down) is reported at connect_timeout, but its thread stays
    in getaddrinfo(): it is replaced like a stalled association, so the peers after it do not wait
    for the resolver (8 s here). Five of them at parallel 1 are more than the open limit (4) allows
    besides: a thread in a lookup holds no socket, so it does not count against that limit."""
    entries = [{"name": "hung-%d" % index, "ae_title": "ANY_SCP", "host": "hang-%d.example" % index, "port": 104}
               for index in range(hung)]
    entries += [peer_entry(closed_port, name="refused-%d" % index, ae_title="ANY_SCP") for index in range(6)]
    report = _probe({"peers": entries, "parallel": 1, "connect_timeout": 1, "acse_timeout": 1},
                    hung_lookup_s=8)
    assert [(r["outcome"], r["phase"]) for r in report["results"]] == \
        [("timeout", "resolve")] * hung + [("refused", "connect")] * 6
    assert report["wall_s"] < 5.0, report["wall_s"]


def test_a_lookup_that_ends_after_its_deadline_leaves_the_report_alone(hostile_factory):
    """A name lookup reported as timed out at connect_timeout (1 s) fails at 1.5 s; its result is
    only built at 2.5 s, after the silent peer before it. The failure must not rewrite the report."""
    silent = hostile_factory("silent", hold_max=30.0)
    entries = [peer_entry(silent, name="silent"),
               {"name": "hung", "ae_title": "ANY_SCP", "host": "hang-late.example", "port": 104}]
    report = _probe({"peers": entries, "parallel": 2, "connect_timeout": 1, "acse_timeout": 2.5},
                    hung_lookup_s=1.5)
    assert [(r["outcome"], r["phase"]) for r in report["results"]] == [("timeout", "associate"), ("timeout", "resolve")]
    assert report["results"][1]["address"] is None


def test_lookups_that_hang_stop_counting_before_their_deadline(closed_port):
    """Four hung lookups at parallel 1 fill the open limit (4) by 1.5 s. They hold no socket, so the
    refused peers behind them start at the next step of the pool's growth (2 s), not when the first
    lookup is reported at connect_timeout (5 s)."""
    entries = [{"name": "hung-%d" % index, "ae_title": "ANY_SCP", "host": "hang-%d.example" % index, "port": 104}
               for index in range(4)]
    entries += [peer_entry(closed_port, name="refused-%d" % index, ae_title="ANY_SCP") for index in range(3)]
    report = _probe({"peers": entries, "parallel": 1, "connect_timeout": 5, "acse_timeout": 1}, hung_lookup_s=8)
    starts = [datetime.fromisoformat(r["started_at"]).timestamp() for r in report["results"]]
    assert [r["outcome"] for r in report["results"]] == ["timeout"] * 4 + ["refused"] * 3
    assert starts[4] - starts[0] < 4.0, starts


def test_fewer_peers_or_other_threads_stay_in_one_process(mixed_peers):
    few = _probe(dict(TIMEOUTS, peers=mixed_peers[:63]))
    threaded = _probe(dict(TIMEOUTS, peers=mixed_peers), other_thread=True)
    low_parallel = _probe(dict(TIMEOUTS, peers=mixed_peers, parallel=3))
    assert (few["forks"], threaded["forks"], low_parallel["forks"]) == (0, 0, 0)
    _check_every_result(mixed_peers[:63], few["results"])
    _check_every_result(mixed_peers, threaded["results"])
    _check_every_result(mixed_peers, low_parallel["results"])


@needs_two_cpus
def test_no_copy_when_a_pipe_would_take_a_standard_descriptor(mixed_peers):
    """A process started with stdin closed gets fd 0 for the engine's first pipe; the copy points
    fds 0-2 at /dev/null, which would replace that pipe. The engine stays in one process instead."""
    report = _probe(dict(TIMEOUTS, peers=mixed_peers), close_stdin=True)
    assert report["forks"] == 0
    assert report["thread_errors"] == []
    _check_every_result(mixed_peers, report["results"])


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
