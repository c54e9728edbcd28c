# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many peers and hung name lookups, against real peers on loopback, in this process:

* 80 peers of four kinds: every peer gets its own, correct result, in input order, with no more
  associations at once than ``parallel``.
* ``parallel: 100`` allows 256 open associations while 300 silent peers stall (not 4 x 100).
* A name lookup that hangs (name servers down) is reported at ``connect_timeout`` while its thread
  stays in getaddrinfo(): it holds no socket, so it counts against neither limit and the peers
  after it do not wait for the resolver, and its late failure does not rewrite its report.
"""
from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any, Dict, List

import pytest

from tests.system.helpers import echo, most_at_once, peer_entry, timed

pytestmark = [pytest.mark.peers]

TIMEOUTS = {"connect_timeout": 2, "acse_timeout": 2, "dimse_timeout": 2}


@pytest.fixture
def hung_lookups(monkeypatch):
    """Lookups of names ``hang-*`` block for the seconds set in the returned dict, then fail as glibc's
    do when no name server answers."""
    real_getaddrinfo = socket.getaddrinfo
    setting = {"seconds": 8.0}

    def getaddrinfo(host, *args, **kwargs):
        if str(host).startswith("hang-"):
            time.sleep(setting["seconds"])
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return setting


def _hung(count: int, prefix: str = "hang") -> List[Dict[str, Any]]:
    return [{"name": "hung-%d" % index, "ae_title": "ANY_SCP", "host": "%s-%d.example" % (prefix, index), "port": 104}
            for index in range(count)]


def test_eighty_peers_of_four_kinds_each_get_their_own_result_in_order(pynetdicom_peers, closed_port):
    pattern = [(pynetdicom_peers["accept"], "success"), (pynetdicom_peers["reject-called"], "rejected"),
               (closed_port, "refused"), (pynetdicom_peers["status-failure"], "status_failure")]
    entries = []
    for index in range(80):
        peer, outcome = pattern[index % len(pattern)]
        entry = peer_entry(peer, name="peer-%02d-%s" % (index, outcome))
        if outcome == "rejected":
            entry["ae_title"] = "NOT_STRICT%02d" % index
        entries.append(entry)
    results = echo(entries, parallel=4, **TIMEOUTS)
    assert [r["name"] for r in results] == [e["name"] for e in entries]
    for entry, result in zip(entries, results):
        assert result["outcome"] == entry["name"].split("-", 2)[2], result
        assert result["ae_title"] == entry["ae_title"], result
    # None of these stall, so no more associations at once than configured.
    assert most_at_once(results) <= 4


def test_silent_peers_at_parallel_100_open_no_more_than_256(hostile_factory):
    silent = [hostile_factory("silent", hold_max=10.0, max_connections=200) for _index in range(2)]
    entries = [peer_entry(silent[index % 2], name="silent-%03d" % index) for index in range(300)]
    # 6 s: time to start 256 threads on a loaded 2-core machine (pynetdicom 2.0 ran ~190 in 3 s).
    results = echo(entries, parallel=100, connect_timeout=6, acse_timeout=6, dimse_timeout=6)
    assert all(r["outcome"] == "timeout" for r in results), [(r["outcome"], r["phase"], r["message"]) for r in results
                                                             if r["outcome"] != "timeout"][:3]
    assert 200 < most_at_once(results) <= 256


@pytest.mark.parametrize("hung", [2, 5])
def test_hung_name_lookups_do_not_hold_up_the_other_peers(closed_port, hung_lookups, hung):
    """Five hung lookups at parallel 1 are more than the open limit (4) allows besides."""
    entries = _hung(hung) + [peer_entry(closed_port, name="refused-%d" % index, ae_title="ANY_SCP")
                             for index in range(6)]
    results, wall = timed(echo, entries, parallel=1, connect_timeout=1, acse_timeout=1)
    assert [(r["outcome"], r["phase"]) for r in results] == \
        [("timeout", "resolve")] * hung + [("refused", "connect")] * 6
    assert wall < 5.0, wall


def test_a_lookup_that_ends_after_its_deadline_leaves_the_report_alone(hostile_factory, hung_lookups):
    """Reported as timed out at connect_timeout (1 s), the lookup fails at 1.5 s, while the silent
    peer before it still runs: the failure must not rewrite the report."""
    hung_lookups["seconds"] = 1.5
    silent = hostile_factory("silent", hold_max=30.0)
    entries = [peer_entry(silent, name="silent")] + _hung(1, "hang-late")
    results = echo(entries, parallel=2, connect_timeout=1, acse_timeout=2.5)
    assert [(r["outcome"], r["phase"]) for r in results] == [("timeout", "associate"), ("timeout", "resolve")]
    assert results[1]["address"] is None


def test_lookups_that_hang_stop_counting_before_their_deadline(closed_port, hung_lookups):
    """Four hung lookups at parallel 1: they hold no socket, so the refused peers behind them start
    once the lookups have stalled (0.5 s each), not when the first is reported at connect_timeout (5 s)."""
    entries = _hung(4) + [peer_entry(closed_port, name="refused-%d" % index, ae_title="ANY_SCP")
                          for index in range(3)]
    results = echo(entries, parallel=1, connect_timeout=5, acse_timeout=1)
    starts = [datetime.fromisoformat(r["started_at"]).timestamp() for r in results]
    assert [r["outcome"] for r in results] == ["timeout"] * 4 + ["refused"] * 3
    assert starts[4] - starts[0] < 4.0, starts
