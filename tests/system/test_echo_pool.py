# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's pool and its handling of associations that end between requests, against real
peers on loopback: the test's own hostile socket servers and a pynetdicom SCP.

* Peers that never answer stop counting against ``parallel`` once their phase has waited
  0.5 s, so healthy peers queued behind them start at once and a handful of silent peers cost
  about one timeout, not one per ``parallel`` of them.
* That growth is bounded: never more than 4 x ``parallel`` associations open.
* It lasts only as long as the stall: once the silent peers have timed out, no more than
  ``parallel`` associations work at a time again; and a peer that has answered is slow, not
  silent, so a server slow to answer C-ECHO never gets more than ``parallel``.
* Nothing reaches a peer once it has been reported, and a thread that cannot be started does not
  stop the deadlines.
* A peer that aborts, closes or asks for release between two C-ECHOs (``count`` > 1) is noticed
  at once, although pynetdicom's reactor is paused while send_c_echo() waits.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime

import pynetdicom
import pytest

from ansible_collections.dicom.network.plugins.module_utils import echo_engine
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.system.helpers import echo, most_at_once, peer_entry, timed

pytestmark = [pytest.mark.peers]

TIMEOUT_S = 2.0
TIMEOUTS = {"connect_timeout": TIMEOUT_S, "acse_timeout": TIMEOUT_S, "dimse_timeout": TIMEOUT_S}
MARGIN_S = 2.5


def _started(result) -> datetime:
    return datetime.fromisoformat(result["started_at"])


def test_healthy_peers_do_not_wait_behind_silent_ones(hostile_factory, pynetdicom_peers):
    """parallel 2, six silent peers queued first, then six healthy ones. A fixed pool would run
    the silent peers in three waves of one timeout each before any healthy peer starts."""
    silent = hostile_factory("silent", hold_max=30.0)
    good = pynetdicom_peers["accept"]
    entries = [peer_entry(silent, name="silent-%d" % i) for i in range(6)]
    entries += [peer_entry(good, name="good-%d" % i) for i in range(6)]
    results, wall = timed(echo, entries, parallel=2, **TIMEOUTS)
    by_name = {r["name"]: r for r in results}
    assert [r["name"] for r in results] == [e["name"] for e in entries]
    silent_results = [by_name["silent-%d" % i] for i in range(6)]
    good_results = [by_name["good-%d" % i] for i in range(6)]
    assert all(r["outcome"] == "timeout" and r["phase"] == "associate" for r in silent_results), silent_results
    assert all(r["outcome"] == "success" for r in good_results), good_results
    # Every healthy peer started before the first silent peer's timeout was up.
    first_timeout = min(_started(r) for r in silent_results).timestamp() + TIMEOUT_S
    assert all(_started(r).timestamp() < first_timeout for r in good_results), \
        [(r["name"], r["started_at"]) for r in good_results]
    # Six silent peers at parallel 2 cost one timeout (plus the 0.5 s steps of growth), not three.
    assert wall < TIMEOUT_S + MARGIN_S, wall
    assert silent.control.peak_connections >= 3


def test_pool_growth_is_bounded_by_four_times_parallel(hostile_factory):
    """parallel 1 and ten silent peers: the pool grows past 1, but never past 4 associations."""
    silent = hostile_factory("silent", hold_max=30.0)
    entries = [peer_entry(silent, name="silent-%d" % i) for i in range(10)]
    results = echo(entries, parallel=1, **TIMEOUTS)
    assert all(r["outcome"] == "timeout" for r in results), results
    # Counted from each association's own start and duration: the server counts a connection until
    # its handler thread has seen the close, which lags on a loaded machine (it once counted 5).
    assert 2 <= most_at_once(results) <= 4, [(r["started_at"], r["timings_ms"]["total"]) for r in results]


@pytest.fixture(scope="module")
def slow_peers(peers_workdir, peer_reaper):
    """pynetdicom SCPs that answer each C-ECHO late: ``paced`` after 0.1 s (echoes that overlap, yet
    stay well under the 0.5 s after which a wait counts as stalled), ``sluggish`` after 0.7 s."""
    proc, peers = start_pynetdicom_peers(peers_workdir / "slow", {
        "paced": ({"behaviour": "slow", "delay": 0.1, "ae_title": "PACED_SCP"}, "C-ECHO-RSP after 0.1 s"),
        "sluggish": ({"behaviour": "slow", "delay": 0.7, "ae_title": "SLUGGISH_SCP"}, "C-ECHO-RSP after 0.7 s")})
    yield peers
    peer_reaper.terminate([proc])


@pytest.fixture
def paced_peer(slow_peers):
    return slow_peers["paced"]


def test_extra_workers_end_with_the_stall_they_replaced(hostile_factory, paced_peer):
    """parallel 2, two silent peers queued first, then 50 peers that answer in 0.1 s each. While the
    silent ones wait, the pool grows to 4; when they time out, the two workers started in their
    place must end, or 4 associations would work on the answering server at once (a server whose
    limit `parallel` was lowered for would reject the surplus)."""
    silent = hostile_factory("silent", hold_max=30.0)
    entries = [peer_entry(silent, name="silent-%d" % i) for i in range(2)]
    entries += [peer_entry(paced_peer, name="paced-%d" % i) for i in range(50)]
    results = echo(entries, parallel=2, **TIMEOUTS)
    paced = [r for r in results if r["name"].startswith("paced-")]
    assert all(r["outcome"] == "success" for r in paced), paced
    silent_end = max(_started(r).timestamp() + r["timings_ms"]["total"] / 1000.0
                     for r in results if r["name"].startswith("silent-"))
    # The answering peers are still being echoed when the last silent one has timed out, so the
    # count below covers the time after the stall.
    assert max(_started(r).timestamp() for r in paced) > silent_end, [r["started_at"] for r in paced]
    assert most_at_once(paced) <= 2, [(r["started_at"], r["timings_ms"]["total"]) for r in paced]


def test_a_server_slow_to_answer_echoes_gets_no_more_than_parallel(slow_peers):
    """Eight peers on a server that answers each C-ECHO after 0.7 s, parallel 2: every echo waits
    longer than the 0.5 s after which a silent peer is replaced, but this peer has answered the
    A-ASSOCIATE, so it is slow, not silent, and no extra association is started beside it."""
    entries = [peer_entry(slow_peers["sluggish"], name="sluggish-%d" % i) for i in range(8)]
    results = echo(entries, parallel=2, **TIMEOUTS)
    assert all(r["outcome"] == "success" for r in results), results
    assert most_at_once(results) <= 2, [(r["started_at"], r["timings_ms"]["total"]) for r in results]


def test_a_peer_reported_during_its_lookup_gets_no_traffic(hostile_factory, monkeypatch):
    """A name lookup that returns just as its deadline passes: the peer is reported as a lookup
    timeout, so nothing may connect to it afterwards, with no deadline left to end that."""
    silent = hostile_factory("silent", hold_max=30.0)
    silent.control.reset_counts()
    real_associate_and_echo = echo_engine._associate_and_echo

    def after_the_lookup_deadline(run, *args, **kwargs):
        # Between the lookup's end and the TCP connect: the watchdog reports the lookup as timed out.
        run.done.wait(5.0)
        real_associate_and_echo(run, *args, **kwargs)

    real_result = echo_engine._result

    def reported_a_little_later(run):
        time.sleep(0.3)  # the worker goes on meanwhile; the report must still be the lookup timeout
        return real_result(run)

    monkeypatch.setattr(echo_engine, "_associate_and_echo", after_the_lookup_deadline)
    monkeypatch.setattr(echo_engine, "_result", reported_a_little_later)
    (result,) = echo([peer_entry(silent, name="late-lookup")], connect_timeout=0.5, acse_timeout=2, dimse_timeout=2)
    assert (result["outcome"], result["phase"]) == ("timeout", "resolve"), result
    time.sleep(0.5)
    assert silent.control.accepted == 0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("dicom-echo-") and t.is_alive()]


def _thread_starts_failing(monkeypatch, fails) -> list:
    """Make Thread.start raise as with a pids limit for the threads whose name ``fails(name,
    worker_starts)`` picks; returns the names of the worker starts asked for, failed ones included."""
    real_start = threading.Thread.start
    worker_starts = []

    def start(thread):
        if thread.name.startswith("dicom-echo-") and thread.name[len("dicom-echo-"):].isdigit():
            worker_starts.append(thread.name)
        if fails(thread.name, worker_starts):
            raise RuntimeError("can't start new thread")
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return worker_starts


def test_a_worker_that_cannot_be_started_does_not_stop_the_deadlines(hostile_factory, closed_port, monkeypatch):
    """Starting the worker that replaces a stalled one fails once (as with a pids limit): the
    watchdog, which starts it, must go on ending the stalled association at its timeout."""
    drip = hostile_factory("drip", interval=0.5, hold_max=30.0)
    # The second worker (each start, failed or not, gets the next number).
    worker_starts = _thread_starts_failing(monkeypatch, lambda name, _starts: name == "dicom-echo-2")
    entries = [peer_entry(drip, name="drip")] + [peer_entry(closed_port, name="refused-%d" % i) for i in range(3)]
    done = {}
    # In a thread of its own: without the watchdog the dripping peer would hold the call for as long
    # as it drips, and the test is to fail, not hang.
    call = threading.Thread(target=lambda: done.update(zip(("results", "wall"), timed(
        echo, entries, parallel=1, connect_timeout=1, acse_timeout=1, dimse_timeout=1))), daemon=True)
    call.start()
    call.join(1 + MARGIN_S + 5)
    assert not call.is_alive(), "still echoing: the watchdog no longer enforces the deadlines"
    results, wall = done["results"], done["wall"]
    assert len(worker_starts) >= 3
    assert [(r["outcome"], r["phase"]) for r in results] == \
        [("timeout", "associate")] + [("refused", "connect")] * 3, results
    assert wall < 1 + MARGIN_S, wall


def test_when_no_thread_can_be_started_the_call_fails_before_any_traffic(hostile_factory, monkeypatch):
    """The calling thread is the watchdog: when not one association thread can be started (a pids
    limit), the call fails at once instead of waiting for threads that never come, nothing reaches
    the peers, and pynetdicom's logging is as it was."""
    silent = hostile_factory("silent", hold_max=30.0)
    silent.control.reset_counts()
    worker_starts = _thread_starts_failing(monkeypatch, lambda name, _starts: name.startswith("dicom-echo-"))
    config = pynetdicom._config
    level = config.LOG_HANDLER_LEVEL
    with pytest.raises(RuntimeError, match="cannot start a thread for peer silent-0"):
        echo([peer_entry(silent, name="silent-%d" % i) for i in range(3)], parallel=2, **TIMEOUTS)
    time.sleep(0.3)
    assert worker_starts == ["dicom-echo-1"]
    assert silent.control.accepted == 0
    assert config.LOG_HANDLER_LEVEL == level


def test_after_an_interrupt_no_more_peers_are_started(hostile_factory, monkeypatch):
    """KeyboardInterrupt while the calling thread waits for the associations: those in flight finish
    their peer and no other starts (with the watchdog gone, nothing would bound them)."""
    answering = hostile_factory("dicom-ok")
    answering.control.reset_counts()
    real_tick = echo_engine._Scheduler.tick
    ticks = []

    def interrupted(scheduler):
        ticks.append(1)
        if len(ticks) == 3:
            raise KeyboardInterrupt("test: Ctrl-C while the associations run")
        return real_tick(scheduler)

    monkeypatch.setattr(echo_engine._Scheduler, "tick", interrupted)
    with pytest.raises(KeyboardInterrupt):
        echo([peer_entry(answering, name="ok-%02d" % i) for i in range(40)], parallel=1, **TIMEOUTS)
    time.sleep(1.0)
    assert answering.control.accepted <= 3, answering.control.accepted


@pytest.mark.parametrize("behaviour, outcome, fragment", [
    # A-ABORT right after the first C-ECHO-RSP: the second C-ECHO finds the association gone.
    ("echo-then-abort", "aborted", "a-abort"),
    # TCP closed right after the first C-ECHO-RSP.
    ("echo-then-close", "aborted", "closed"),
    # The peer asks to release while we still have echoes to send: not what an SCP may do.
    ("echo-then-release-rq", "protocol_error", "a-release-rq"),
])
def test_association_ending_between_echoes_is_noticed_at_once(hostile_factory, behaviour, outcome, fragment):
    peer = hostile_factory(behaviour, hold_max=30.0)
    (result,), wall = timed(echo, [peer_entry(peer, name=behaviour)], count=3, **TIMEOUTS)
    assert result["outcome"] == outcome, result
    assert result["phase"] == "echo", result
    assert fragment in result["message"].lower(), result["message"]
    # The first echo was answered before the association ended.
    assert result["rtt_ms"] is not None, result
    # Noticed from the peer's PDU or close, never by waiting for a timeout.
    assert wall < TIMEOUT_S, wall
