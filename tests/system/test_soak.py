"""Soak: many echoes in one call, and many calls in one process, leave nothing behind.

1. 2,000 C-ECHOs in one engine call (40 associations x count 50, 16 at a time) against real
   SCPs: four pynetdicom SCPs in their own process, plus DCMTK storescp when installed.
2. 50 consecutive engine runs in one process, each with healthy, rejecting, refusing, hostile
   and (every tenth run) silent peers.
3. 600 peers that turn us away by TCP close or RST, in one call: descriptors must come back
   as each association ends, not when the garbage collector runs.

Afterwards, file descriptors, threads and resident memory (VmRSS from /proc/self/status) must
be back where they were after a warm-up, within a small tolerance. These are bounds on leaks,
not speed claims; the whole file stays well under a minute.
"""
from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.system.helpers import (echo, engine_threads, idle_engine_threads, peer_entry, process_resources,
                                  settle_engine_threads, sockets_to, timed)

pytestmark = pytest.mark.peers

RSS_TOLERANCE_KB = 20 * 1024
FD_TOLERANCE = 2
ECHO_COUNT, ASSOCIATIONS = 50, 40


@pytest.fixture(scope="module")
def soak_scps(tmp_path_factory, peer_reaper, request):
    """Four pynetdicom SCPs of our own (their connection counts are ours alone), plus storescp."""
    specs = {"soak-%d" % i: ({"behaviour": "accept", "ae_title": "SOAK_SCP_%d" % i}, "soak SCP") for i in range(4)}
    specs["soak-reject"] = ({"behaviour": "reject-called", "ae_title": "SOAK_STRICT"}, "wrong called AE: RJ 1/1/7")
    proc, peers = start_pynetdicom_peers(tmp_path_factory.mktemp("soak"), specs, prefix="soak")
    try:
        peers["storescp"] = request.getfixturevalue("dcmtk_peers")["storescp"]
    except pytest.skip.Exception:
        pass
    yield peers
    peer_reaper.terminate([proc])


def _settled_resources(threads_before):
    """Resources once the engine's threads are gone and unreachable objects are collected:
    what is left then is a real leak. (What waits for the collector is measured separately,
    in test_peers_that_close_at_once_do_not_pile_up_descriptors.)"""
    settle_engine_threads(threads_before, 15)
    gc.collect()
    return process_resources()


@pytest.fixture(scope="module")
def big_call(soak_scps):
    """One call with 2,000 echoes, with the process's resources before and after."""
    scps = [p for name, p in sorted(soak_scps.items()) if name != "soak-reject"]
    ports = {p.port for p in scps}
    echo([peer_entry(p, name="warm-%s" % p.name) for p in scps], count=2)  # imports, pools, caches
    threads_before = idle_engine_threads()
    before = _settled_resources(threads_before)
    sockets_before = sockets_to(ports)
    counted = [p for p in scps if p.counter is not None]  # storescp cannot count
    connections_before = {p.name: p.connection_count() for p in counted}
    entries = [peer_entry(scps[i % len(scps)], name="soak-%02d" % i) for i in range(ASSOCIATIONS)]
    # Generous timeouts: this is about leaks, and on a loaded 2-core CI machine one answer among
    # 2,000 has taken more than 2 s. The wall bound below still catches a hang.
    results, wall = timed(echo, entries, count=ECHO_COUNT, parallel=16, connect_timeout=5, acse_timeout=5,
                          dimse_timeout=5)
    after = _settled_resources(threads_before)
    return {"results": results, "wall": wall, "before": before, "after": after, "scps": scps,
            "threads_before": threads_before, "threads_after": engine_threads(),
            "sockets_left": sockets_to(ports) - sockets_before,
            "connections": sum(p.connection_count() - connections_before[p.name] for p in counted),
            "counted_entries": sum(1 for i in range(ASSOCIATIONS) if scps[i % len(scps)].counter is not None)}


def test_2000_echoes_in_one_call_leave_no_fd_thread_socket_or_memory_behind(big_call):
    before, after = big_call["before"], big_call["after"]
    assert len(big_call["results"]) == ASSOCIATIONS
    assert big_call["connections"] == big_call["counted_entries"]  # one association per entry, no retries
    assert big_call["sockets_left"] <= 0
    assert big_call["threads_after"] == big_call["threads_before"]
    assert after["fds"] <= before["fds"] + FD_TOLERANCE, (before, after)
    assert after["rss_kb"] - before["rss_kb"] < RSS_TOLERANCE_KB, (before, after)
    # 40 associations, 16 at a time, each bounded: ~3 waves; a lost answer costs one DIMSE
    # timeout per wave at most. A hang would blow this by minutes.
    assert big_call["wall"] < 3 * (5 + 5 + 5) + 2.5


def test_2000_echoes_in_one_call_are_all_answered(big_call):
    results = big_call["results"]
    failures = ["%s: %s" % (r["name"], r["message"]) for r in results if r["outcome"] != "success"]
    assert not failures, failures[:5]
    assert all(r["message"].startswith("%d C-ECHO requests answered" % ECHO_COUNT) for r in results)
    assert all(r["rtt_ms"] and r["rtt_ms"]["min"] <= r["rtt_ms"]["max"] for r in results)


def test_50_consecutive_runs_in_one_process_stay_flat(soak_scps, hostile_factory, closed_port):
    scps = [p for name, p in sorted(soak_scps.items()) if name.startswith("soak-") and name != "soak-reject"]
    hostile = {b: hostile_factory(b, hold_max=10.0)
               for b in ("close", "garbage", "dicom-ok", "silent", "echo-silent")}
    entries = [peer_entry(p, name="good-%d" % i) for i, p in enumerate(scps)] + [
        peer_entry(soak_scps["soak-reject"], name="strict", ae_title="NOT_THERE", expect="reject"),
        peer_entry(closed_port, name="closed", expect="blocked"),
        peer_entry(hostile["close"], name="close", expect="reject"),
        peer_entry(hostile["garbage"], name="garbage", expect="reject"),
        peer_entry(hostile["dicom-ok"], name="hand-written"),
    ]
    slow_entries = [peer_entry(hostile["silent"], name="silent", expect="reject"),
                    peer_entry(hostile["echo-silent"], name="echo-silent", expect="reject")]
    expected = {"good-%d" % i: "success" for i in range(len(scps))}
    expected.update({"strict": "rejected", "closed": "refused", "close": "aborted", "garbage": "protocol_error",
                     "hand-written": "success", "silent": "timeout", "echo-silent": "timeout"})
    ports = {p.port for p in scps} | {p.port for p in hostile.values()} | {soak_scps["soak-reject"].port}
    threads_before = idle_engine_threads()
    samples = []
    started = time.monotonic()
    for run in range(50):
        peers = entries + (slow_entries if run % 10 == 0 else [])
        results, wall = timed(echo, peers, connect_timeout=2, acse_timeout=2, dimse_timeout=2)
        observed = {r["name"]: r["outcome"] for r in results}
        assert observed == {name: expected[name] for name in observed}, (run, [r["message"] for r in results])
        assert wall < 2 + 2.5, (run, wall)
        samples.append(_settled_resources(threads_before))
    warm = samples[4]  # after warm-up: imports, pools, allocator arenas
    last = samples[-1]
    assert engine_threads() == threads_before
    assert sockets_to(ports) == 0
    assert max(s["fds"] for s in samples[5:]) <= warm["fds"] + FD_TOLERANCE, samples
    assert last["rss_kb"] - warm["rss_kb"] < RSS_TOLERANCE_KB, (warm, last)
    assert time.monotonic() - started < 50 * (2 + 2.5)


def test_peers_that_close_at_once_do_not_pile_up_descriptors(hostile_factory):
    """Bare TCP close and RST are how many real sites turn strangers away (primer), so a big
    audit meets them by the hundred. Each association must give its descriptor back when it
    ends, not when the garbage collector runs: at most a few per concurrent association."""
    peers = [hostile_factory("close", hold_max=10.0), hostile_factory("reset", delay=0.05)]
    entries = [peer_entry(peers[i % 2], name="turned-away-%03d" % i, expect="reject") for i in range(600)]
    gc.collect()
    baseline = len(os.listdir("/proc/self/fd"))
    peak, stop = [baseline], threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))

    sampler = threading.Thread(target=sample, name="fd-sampler", daemon=True)
    sampler.start()
    try:
        results, wall = timed(echo, entries, parallel=32, connect_timeout=2, acse_timeout=2)
    finally:
        stop.set()
        sampler.join(5)
    assert all(r["outcome"] == "aborted" and r["ok"] for r in results), {r["message"] for r in results}
    assert wall < 600 / 32 * 2 + 2.5  # bounded: every entry ends at once
    # At most 4 x 32 associations open (the pool grows past `parallel` while steps stall, as they
    # do on a loaded machine), each with its client end, the hostile server's end and the DUL's
    # wake-up socketpair: bounded by the pool, far below the 2,400 a leak of 600 entries would hold.
    assert peak[0] - baseline < 4 * 4 * 32, (baseline, peak[0])
