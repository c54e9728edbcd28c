"""Hardening: network faults that only a real network shows, built from network namespaces.

Topology: a "client" namespace runs the echo engine (a Python subprocess, so its sockets live
in that namespace) and a "server" namespace runs pynetdicom SCP processes and iptables rules;
a veth pair joins them (10.251.7.1/30 <-> 10.251.7.2/30). Neither has a default route, so all
traffic stays between the two; 10.252.0.1 has no route at all. Namespaces are deleted after
each test, with everything still running inside.

Each case states the outcome and phase a PACS engineer expects, and that the wall time stays
within the configured timeout plus a margin (nothing hangs; not a speed claim).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.peers.base import ManagedProcess, peer_env
from tests.peers.netns import NetNamespace, NetnsUnavailable

pytestmark = [pytest.mark.peers, pytest.mark.netns]

REPO_ROOT = Path(__file__).resolve().parents[2]
MARGIN_S = 2.5
CLIENT_ADDR, SERVER_ADDR = "10.251.7.1", "10.251.7.2"
NO_ROUTE_ADDR = "10.252.0.1"

# Runs inside a namespace: optional plain listeners, then the engine; one JSON line out.
RUNNER = r"""
import json, socket, sys, time
request = json.load(sys.stdin)
listeners = []
for port in request.pop("listen", []):
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen(16); listeners.append(s)
from tests.system.helpers import echo
started = time.monotonic()
results = echo(request.pop("peers"), **request)
print(json.dumps({"results": results, "wall": time.monotonic() - started}))
"""


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + sys.path))


def _decode(stdout: str, stderr: str) -> Tuple[List[Dict[str, Any]], float]:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stdout.strip(), stderr[-3000:]
    document = json.loads(stdout.strip().splitlines()[-1])
    return document["results"], document["wall"]


def echo_in(ns: NetNamespace, peers: List[Dict[str, Any]], **params) -> Tuple[List[Dict[str, Any]], float]:
    """The engine inside ``ns``; returns the results and the engine's own wall time."""
    completed = ns.run([sys.executable, "-c", RUNNER], input=json.dumps(dict(params, peers=peers)),
                       env=_env(), timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return _decode(completed.stdout, completed.stderr)


class _AsyncEcho:
    """The engine inside a namespace, started now and collected later (bounded)."""

    def __init__(self, ns: NetNamespace, peers: List[Dict[str, Any]], **params):
        request = tempfile.TemporaryFile("w+")
        request.write(json.dumps(dict(params, peers=peers)))
        request.seek(0)
        with request:
            self.proc = subprocess.Popen([shutil.which("ip") or "ip", "netns", "exec", ns.name, sys.executable,
                                          "-c", RUNNER], stdin=request, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=_env())

    def result(self, timeout: float = 120) -> Tuple[List[Dict[str, Any]], float]:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=10)
            raise AssertionError("the engine did not finish within %s s" % timeout)
        assert self.proc.returncode == 0, stderr[-3000:]
        return _decode(stdout, stderr)


class Lan:
    """Two namespaces joined by a veth pair, with SCP processes in the server one."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.client = NetNamespace.create("dnh")
        try:
            self.server = NetNamespace.create("dnh")
        except Exception:
            self.client.delete()
            raise
        self.client.veth_to(self.server, CLIENT_ADDR + "/30", SERVER_ADDR + "/30")
        self.stats = workdir / "stats"

    def start_scp(self, name: str, port: int, behaviour: str = "accept", log_level: str = "WARNING",
                  **spec) -> ManagedProcess:
        """A pynetdicom SCP process (tests/peers/pynetdicom_scp.py) on SERVER_ADDR:port; at
        log level INFO its log shows each request it received (see wait_for_log)."""
        config = self.workdir / ("%s.json" % name)
        config.write_text(json.dumps({"host": SERVER_ADDR, "stats_dir": str(self.stats), "peers": [
            dict(spec, name=name, behaviour=behaviour, port=port, ae_title="NS_SCP")]}))
        proc = self.server.popen(name, [sys.executable, "-m", "tests.peers.pynetdicom_scp", "--config",
                                        str(config), "--watch-stdin", "--log-level", log_level], self.workdir / ("%s.log" % name),
                                 env=peer_env({"PYTHONPATH": str(REPO_ROOT)}), stdout_pipe=True, stdin_pipe=True)
        proc.wait_for_line("READY", 30)
        return proc

    def connections(self, name: str) -> int:
        try:
            return int((self.stats / ("%s.count" % name)).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def wait_for_log(self, name: str, text: str, timeout: float = 15.0) -> None:
        """Wait (bounded) until the SCP ``name`` logged ``text``."""
        log = self.workdir / ("%s.log" % name)
        deadline = time.monotonic() + timeout
        while text not in (log.read_text(errors="replace") if log.exists() else ""):
            assert time.monotonic() < deadline, "%s never logged %r" % (name, text)
            time.sleep(0.02)

    def iptables(self, ns: NetNamespace, *rule: str) -> None:
        completed = ns.run(["iptables"] + list(rule), timeout=10)
        assert completed.returncode == 0, completed.stderr

    def delete(self) -> None:
        self.server.delete()
        self.client.delete()


@pytest.fixture
def lan(tmp_path):
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    try:
        topology = Lan(tmp_path)
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield topology
    finally:
        topology.delete()


def _entry(name: str, port: int, host: str = SERVER_ADDR, **extra) -> Dict[str, Any]:
    return dict({"name": name, "ae_title": "NS_SCP", "host": host, "port": port}, **extra)


def test_firewall_and_routing_faults_next_to_a_healthy_peer(lan):
    """One call, every way a firewall or a router can say no, next to a healthy SCP.

    What a PACS engineer expects, per rule on the server side:
    - DROP (blackhole): nothing ever answers the SYN -> timeout in connect; satisfies blocked.
    - REJECT icmp-host-unreachable / icmp-admin-prohibited / icmp-net-unreachable: the router
      says no -> unreachable in connect; satisfies blocked.
    - REJECT tcp-reset, icmp-port-unreachable, and a port with no listener: the kernel's
      "connection refused" -> refused in connect; satisfies blocked.
    - no route at all on the client side: unreachable at once.
    None of them proves anything about the AE configuration, so expect: reject is never met.
    """
    lan.start_scp("good", 11112)
    server = lan.server
    for port, target in ((2001, ["DROP"]), (2002, ["REJECT", "--reject-with", "icmp-host-unreachable"]),
                         (2003, ["REJECT", "--reject-with", "tcp-reset"]),
                         (2004, ["REJECT", "--reject-with", "icmp-net-unreachable"]),
                         (2005, ["REJECT", "--reject-with", "icmp-port-unreachable"]),
                         (2006, ["REJECT", "--reject-with", "icmp-admin-prohibited"])):
        lan.iptables(server, "-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", *target)
    expected = {
        "good": ("success", "release", True),
        "blackholed": ("timeout", "connect", True),
        "host-unreachable": ("unreachable", "connect", True),
        "tcp-reset": ("refused", "connect", True),
        "net-unreachable": ("unreachable", "connect", True),
        "port-unreachable": ("refused", "connect", True),
        "admin-prohibited": ("unreachable", "connect", True),
        "no-listener": ("refused", "connect", True),
        "no-route": ("unreachable", "connect", True),
        "blackholed-reject": ("timeout", "connect", False),
        "tcp-reset-reject": ("refused", "connect", False),
    }
    peers = [_entry("good", 11112), _entry("blackholed", 2001, expect="blocked"),
             _entry("host-unreachable", 2002, expect="blocked"), _entry("tcp-reset", 2003, expect="blocked"),
             _entry("net-unreachable", 2004, expect="blocked"), _entry("port-unreachable", 2005, expect="blocked"),
             _entry("admin-prohibited", 2006, expect="blocked"), _entry("no-listener", 2999, expect="blocked"),
             _entry("no-route", 104, host=NO_ROUTE_ADDR, expect="blocked"),
             _entry("blackholed-reject", 2001, expect="reject"), _entry("tcp-reset-reject", 2003, expect="reject")]
    results, wall = echo_in(lan.client, peers, connect_timeout=2, acse_timeout=3, dimse_timeout=3)
    observed = {r["name"]: (r["outcome"], r["phase"], r["ok"]) for r in results}
    assert observed == expected, {r["name"]: r["message"] for r in results}
    # All in parallel: the blackhole costs one connect timeout, the rest return at once.
    assert wall < 2 + MARGIN_S
    assert lan.connections("good") == 1
    by_name = {r["name"]: r for r in results}
    assert "timed out after 2 s" in by_name["blackholed"]["message"]
    assert "No route to host" in by_name["host-unreachable"]["message"]


def test_reset_of_the_handshake_ack_is_a_refusal_by_a_reachable_peer(netns):
    """A listener whose handshake ACK is answered with RST (an IPS or load balancer that
    resets once the handshake is done; also a server resetting right after accept, when the
    RST wins the race with connect() -- ~5-45 % of runs on loopback here). Inside one
    namespace on lo this is deterministic: connect() itself raises ECONNRESET.

    The SYN was answered by a listener, so a TCP path exists: it is not "unreachable", and
    it must not satisfy expect: blocked. It is the same refusal as a reset after the RQ
    (aborted in the association phase), whichever side of connect() the RST lands on.
    """
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    completed = netns.run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "4000", "--tcp-flags",
                           "SYN,ACK,RST,FIN", "ACK", "-j", "REJECT", "--reject-with", "tcp-reset"], timeout=10)
    assert completed.returncode == 0, completed.stderr
    peers = [_entry("reset-%d" % i, 4000, host="127.0.0.1", expect="blocked") for i in range(3)]
    results, wall = echo_in(netns, peers, listen=[4000], connect_timeout=2, acse_timeout=2)
    assert wall < 2 + MARGIN_S
    assert [(r["outcome"], r["phase"], r["ok"]) for r in results] == [("aborted", "associate", False)] * 3, \
        [r["message"] for r in results]


def test_peer_killed_during_the_echo_is_aborted_in_the_echo_phase(lan):
    """kill -9 of the SCP while it sits on our C-ECHO-RQ: the kernel closes its socket, so the
    association ends without an answer -> aborted in the echo phase, at once, not after the
    DIMSE timeout; the healthy peer in the same call is unaffected."""
    lan.start_scp("good", 11112)
    slow = lan.start_scp("slow", 11113, behaviour="slow", log_level="INFO", delay=60)
    job = _AsyncEcho(lan.client, [_entry("slow", 11113), _entry("good", 11112)],
                     connect_timeout=3, acse_timeout=3, dimse_timeout=10)
    try:
        lan.wait_for_log("slow", "Received Echo Request")  # its handler now sleeps 60 s
        os.kill(slow.pid, signal.SIGKILL)
    finally:
        results, wall = job.result()
    killed, good = results
    assert good["outcome"] == "success"
    assert (killed["outcome"], killed["phase"]) == ("aborted", "echo"), killed["message"]
    assert killed["timings_ms"]["associate"] is not None  # it did get past the association
    assert wall < 10 + MARGIN_S


def test_peer_host_vanishing_during_the_echo_times_out_in_the_echo_phase(lan):
    """The SCP's host drops off the network while our C-ECHO-RQ is in its hands (cable
    pulled, host frozen): no FIN, no RST, and its answer (due after 1.5 s, well inside the
    3 s DIMSE timeout) never arrives. The echo phase must end at the DIMSE timeout as a
    timeout, and closing the dead connection must not wait for the peer."""
    lan.start_scp("slow", 11113, behaviour="slow", log_level="INFO", delay=1.5)
    job = _AsyncEcho(lan.client, [_entry("slow", 11113)], connect_timeout=3, acse_timeout=3, dimse_timeout=3)
    try:
        lan.wait_for_log("slow", "Received Echo Request")
        lan.iptables(lan.client, "-A", "INPUT", "-s", SERVER_ADDR, "-j", "DROP")
        lan.iptables(lan.client, "-A", "OUTPUT", "-d", SERVER_ADDR, "-j", "DROP")
    finally:
        (result,), wall = job.result()
    assert (result["outcome"], result["phase"]) == ("timeout", "echo"), result["message"]
    assert "within 3 s" in result["message"]
    assert wall < 3 + MARGIN_S


def test_peer_restarted_between_two_runs(lan):
    """Run 1 against a live SCP, the SCP crashes (kill -9), a run while it is down, the SCP
    comes back on the same port, run 2. Every run must tell the truth about that moment:
    success, refused (nothing listens: satisfies blocked, not accept), success again -- no
    state carried over from one run to the next."""
    first = lan.start_scp("restarted", 11114)
    peer = [_entry("restarted", 11114)]
    (run1,), _wall = echo_in(lan.client, peer, connect_timeout=2)
    os.kill(first.pid, signal.SIGKILL)
    first.stop(term_timeout=1.0)
    (down,), wall = echo_in(lan.client, peer, connect_timeout=2)
    lan.start_scp("restarted", 11114)
    (run2,), _wall = echo_in(lan.client, peer, connect_timeout=2)
    assert (run1["outcome"], run1["phase"]) == ("success", "release"), run1["message"]
    assert (down["outcome"], down["phase"], down["ok"]) == ("refused", "connect", False), down["message"]
    assert wall < 2 + MARGIN_S
    assert (run2["outcome"], run2["phase"]) == ("success", "release"), run2["message"]
    assert lan.connections("restarted") == 1  # the new process counted only run 2
