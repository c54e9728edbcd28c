# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's scheduler with a fake clock and no threads: which peers start when, under the two
limits (``parallel`` working, open_limit() open), the deadlines it enforces as the watchdog, and
what it does when no thread can be had. Each transport is one end of a socketpair, so a deadline's
shutdown is seen at the other end. Runs in milliseconds; tests/system/test_echo_pool.py proves the
same against real peers."""
from __future__ import annotations

import socket

import pytest

from ansible_collections.dicom.network.plugins.module_utils import echo_engine
from ansible_collections.dicom.network.plugins.module_utils.echo_services import plan_peers
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import validate_request

T0 = 1000.0


class FakeClock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def sockets():
    pairs = []

    def make():
        pairs.append(socket.socketpair())
        return pairs[-1]
    yield make
    for pair in pairs:
        for end in pair:
            end.close()


def make_runs(count, **params):
    params = dict({"connect_timeout": 3, "acse_timeout": 3, "dimse_timeout": 3, "parallel": 2}, **params)
    peers = [{"name": "p%d" % i, "ae_title": "SCP", "host": "127.0.0.1", "port": 11112} for i in range(count)]
    request = validate_request(dict(params, peers=peers))
    plans = plan_peers(request.peers)
    return [echo_engine._PeerRun(spec, request, None, plans[spec.index]) for spec in request.peers]


class Harness:
    """A scheduler whose ``start`` records the runs it starts, and may be told to fail."""

    def __init__(self, runs, parallel):
        self.clock = FakeClock()
        self.started = []
        self.refuse = False
        self.start_takes = 0.0  # seconds each thread start takes on the fake clock
        self.scheduler = echo_engine._Scheduler(runs, parallel, self.start, self.clock)

    def start(self, run):
        if self.refuse:
            return False
        self.started.append(run.spec.name)
        self.clock.now += self.start_takes
        return True

    def at(self, offset):
        self.clock.now = T0 + offset
        return self.scheduler.tick()

    def stall_each_start(self, runs, phase, steps):
        """Tick every 0.6 s; each run started goes silent in ``phase`` from its start on."""
        for step in range(steps):
            self.at(step * 0.6)
            for run in runs[:len(self.started)]:
                if run.phase_since is None:
                    waiting(run, phase, step * 0.6, timeout=100.0)


def waiting(run, phase, since, timeout=3.0, answered=False, transport=None):
    """Put ``run`` in ``phase`` since ``since`` (seconds after T0), as its thread would."""
    run.phase, run.phase_since, run.phase_timeout = phase, T0 + since, timeout
    run.deadline = T0 + since + timeout
    run.obs.pdus_received = 1 if answered else 0
    run.raw_socket = transport


def done(run):
    with run.lock:
        run.finish()


def test_starts_in_input_order_and_never_more_than_parallel_at_work():
    runs = make_runs(5)
    harness = Harness(runs, parallel=2)
    assert harness.at(0.0) is True
    assert harness.started == ["p0", "p1"]
    harness.at(0.1)
    assert harness.started == ["p0", "p1"]
    done(runs[1])
    harness.at(0.2)
    assert harness.started == ["p0", "p1", "p2"]
    for run in runs[:3]:
        done(run)
    harness.at(0.3)
    assert harness.started == ["p0", "p1", "p2", "p3", "p4"]
    for run in runs[3:]:
        done(run)
    assert harness.at(0.4) is False


def test_slow_thread_starts_yield_to_the_deadlines_after_one_tick(sockets):
    """Hundreds of threads competing for the GIL make each start slow: a tick stops starting after
    the watchdog's tick and says so, so the next tick (with the deadlines) comes right away."""
    runs = make_runs(6)
    ours, _peer = sockets()
    harness = Harness(runs, parallel=6)
    harness.start_takes = 0.015
    harness.at(0.0)
    assert harness.started == ["p0", "p1"] and harness.scheduler.behind
    waiting(runs[0], "associate", -3.0, timeout=3.0, transport=ours)
    harness.scheduler.tick()
    assert runs[0].obs.timed_out_phase == "associate"
    assert harness.started == ["p0", "p1", "p2", "p3"]


def test_a_peer_silent_for_half_a_second_stops_counting_so_the_next_starts():
    runs = make_runs(4)
    harness = Harness(runs, parallel=2)
    harness.at(0.0)
    waiting(runs[0], "associate", 0.0)
    waiting(runs[1], "connect", 0.0)
    harness.at(0.45)
    assert harness.started == ["p0", "p1"]
    harness.at(0.55)
    assert harness.started == ["p0", "p1", "p2", "p3"]


def test_a_peer_that_has_answered_is_slow_not_silent_and_keeps_its_slot():
    runs = make_runs(3)
    harness = Harness(runs, parallel=2)
    harness.at(0.0)
    waiting(runs[0], "echo", 0.0, answered=True)
    waiting(runs[1], "echo", 0.0, answered=True)
    harness.at(2.0)
    assert harness.started == ["p0", "p1"]


def test_silent_peers_never_hold_more_than_four_times_parallel_open():
    runs = make_runs(10)
    harness = Harness(runs, parallel=1)
    harness.stall_each_start(runs, "associate", 10)
    assert harness.started == ["p0", "p1", "p2", "p3"]
    done(runs[0])
    harness.at(6.1)
    assert harness.started[-1] == "p4" and len(harness.started) == 5


def test_hung_name_lookups_hold_no_connection_and_do_not_count_against_the_open_limit():
    runs = make_runs(8)
    harness = Harness(runs, parallel=1)
    harness.stall_each_start(runs, "resolve", 8)
    assert len(harness.started) == 8


def test_a_deadline_shuts_the_transport_down_and_names_the_phase(sockets):
    (run,) = make_runs(1)
    ours, peer = sockets()
    harness = Harness([run], parallel=1)
    harness.at(0.0)
    waiting(run, "associate", 0.0, timeout=3.0, transport=ours)
    harness.at(2.99)
    assert run.obs.timed_out_phase is None
    harness.at(3.01)
    assert (run.obs.timed_out_phase, run.obs.timeout_s) == ("associate", 3.0)
    peer.settimeout(1.0)
    assert peer.recv(10) == b""  # the shutdown reached the wire
    # The run ends when its thread sees the closed transport and finishes.
    assert harness.at(3.05) is True
    done(run)
    assert harness.at(3.1) is False


def test_a_hung_lookup_is_reported_at_its_deadline_without_waiting_for_its_thread():
    runs = make_runs(2, parallel=1)
    harness = Harness(runs, parallel=1)
    harness.at(0.0)
    waiting(runs[0], "resolve", 0.0, timeout=3.0)
    harness.at(3.01)
    assert runs[0].done.is_set()
    assert (runs[0].obs.timed_out_phase, runs[0].timings["total"] is not None) == ("resolve", True)
    assert harness.started == ["p0", "p1"]


def test_a_thread_stuck_past_the_hard_limit_is_given_up():
    (run,) = make_runs(1)
    harness = Harness([run], parallel=1)
    harness.at(0.0)
    waiting(run, "echo", 0.0, timeout=3.0, answered=True)
    run.deadline = None  # stuck where the deadline has already been spent
    limit = echo_engine._hard_limit(run.request, run)
    harness.at(limit - 0.1)
    assert not run.done.is_set()
    assert harness.at(limit + 0.1) is False
    assert run.done.is_set() and run.obs.timed_out_phase == "echo"


def test_a_thread_that_cannot_be_started_is_tried_again_on_the_next_tick():
    runs = make_runs(2)
    harness = Harness(runs, parallel=1)
    harness.at(0.0)
    waiting(runs[0], "associate", 0.0)
    harness.refuse = True
    harness.at(0.6)
    assert harness.started == ["p0"]
    harness.refuse = False
    harness.at(0.62)
    assert harness.started == ["p0", "p1"]


def test_no_thread_at_all_fails_the_call_instead_of_waiting_for_ever():
    harness = Harness(make_runs(2), parallel=1)
    harness.refuse = True
    with pytest.raises(RuntimeError, match="cannot start a thread for peer p0"):
        harness.at(0.0)


def test_a_step_of_a_reported_run_is_refused():
    (run,) = make_runs(1)
    done(run)
    with pytest.raises(OSError, match="reported already; no connect step"):
        run.enter("connect", 3.0)


def test_open_limit():
    assert [echo_engine.open_limit(p) for p in (1, 16, 64, 100, 300)] == [4, 64, 256, 256, 300]
