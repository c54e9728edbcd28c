"""Scenario 2: unreachable peers.

100 peers of which 20 never answer -- silent listeners (accept, never send), dripping listeners
(send a valid A-ASSOCIATE-AC one byte every 0.5 s) and a blackholed address (iptables DROP inside
a network namespace the benchmark creates; no default route) -- with every timeout at 3 s. The
target: the whole call ends within 1.5 x the timeout.

The blackhole needs the echoing process inside the namespace, so this scenario re-runs itself
there (``ip netns exec <ns> run.py --scenarios 2 --in-netns <addr>``): peers, proxy, engine and
ansible-playbook all live on the namespace's own loopback, and nothing leaves it. Where namespaces
are not permitted it runs on the host's loopback without the blackholed part, and says so.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
from typing import Dict, List, Optional, Tuple

from benchmarks.common import REPO_ROOT, Context, Row, Target, percentile
from benchmarks.fleet import Fleet, module_peers, spread
from benchmarks.scenario1 import run_module
from tests.peers.base import LOOPBACK, closed_port
from tests.peers.netns import NetNamespace, NetnsUnavailable

BLACKHOLE = "10.250.0.1"  # exists only inside our namespace, on its lo, behind iptables DROP


def _sizes(smoke: bool, blackhole: bool) -> Dict[str, int]:
    if smoke:
        return {"total": 10, "silent": 1, "drip": 1, "blackhole": 1 if blackhole else 0,
                "timeout": 1, "parallel": [16], "refused": 10}
    return {"total": 100, "silent": 7 if blackhole else 10, "drip": 7 if blackhole else 10,
            "blackhole": 6 if blackhole else 0, "timeout": 3, "parallel": [16, 32], "refused": 500}


def blackhole_namespace(prefix: str = "dnb") -> NetNamespace:
    """A network namespace of ours with BLACKHOLE on its lo behind an iptables DROP (no default route).

    Raises NetnsUnavailable (and leaves nothing behind) where that cannot be set up."""
    ns = NetNamespace.create(prefix=prefix)
    try:
        ns.add_address(BLACKHOLE + "/32")
        if shutil.which("iptables") is None:
            raise NetnsUnavailable("iptables not installed")
        res = ns.run(["iptables", "-A", "INPUT", "-d", BLACKHOLE, "-p", "tcp", "-j", "DROP"], timeout=10)
        if res.returncode != 0:
            raise NetnsUnavailable("iptables inside the namespace failed: %s" % res.stderr.strip())
    except BaseException:
        ns.delete()
        raise
    return ns


def run(ctx: Context) -> None:
    if ctx.args.in_netns:
        run_inside(ctx, ctx.args.in_netns)
        return
    try:
        ns = blackhole_namespace()
    except NetnsUnavailable as exc:
        ctx.note("scenario 2: blackholed peers skipped, network namespaces not available here (%s)" % exc)
        run_inside(ctx, None)
        return
    try:
        out = ctx.tmp("scenario2-netns-") / "child.json"
        argv = [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--scenarios", "2", "--in-netns", BLACKHOLE,
                "--json", str(out), "--conditions", ctx.args.conditions, "--delay-ms", str(ctx.delay_ms),
                "--workdir", str(out.parent / "work")]
        if ctx.smoke:
            argv.append("--smoke")
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        done = ns.run(argv, timeout=900, env=env)
        for line in done.stdout.splitlines():
            if line.startswith("  note:"):
                continue
            print("   [netns %s] %s" % (ns.name, line), flush=True)
        if not out.exists():
            raise RuntimeError("scenario 2 inside namespace %s produced nothing (rc %d): %s"
                               % (ns.name, done.returncode, (done.stdout + done.stderr)[-3000:]))
        doc = json.loads(out.read_text())
        for row in doc["rows"]:
            ctx.rows.append(Row(**row))
        for target in doc["targets"]:
            target.pop("verdict", None)
            ctx.targets.append(Target(**target))
        for note in doc["notes"]:
            ctx.note(note)
        if doc["errors"]:
            raise RuntimeError("scenario 2 inside the namespace failed:\n%s" % "\n".join(doc["errors"]))
    finally:
        ns.delete()


class Peers:
    """Scenario 2's peers, started once: servers that answer, silent and dripping listeners, and
    the blackholed address (when running inside our namespace)."""

    def __init__(self, ctx: Context, size: Dict[str, int], blackhole: Optional[str]):
        self.size = size
        self.blackhole = blackhole
        self.fleet: Fleet = ctx.fleet
        timeout = size["timeout"]
        hangers = size["silent"] + size["drip"] + size["blackhole"]
        self.good = size["total"] - hangers
        servers = []
        if shutil.which("dcmqrscp") and not ctx.smoke:
            servers.append(self.fleet.start_dcmqrscp(self.good, name="s2-dcmqrscp"))
        servers.append(self.fleet.start_pynetdicom(self.good, name="s2-pynetdicom", ae_prefix="PYS2_"))
        counts = [self.good // len(servers)] * len(servers)
        counts[-1] += self.good - sum(counts)
        self.good_pairs = spread(servers, counts)
        silent = self.fleet.start_hostile("silent", hold_max=timeout * 4 + 10)
        drip = self.fleet.start_hostile("drip", interval=0.5, hold_max=timeout * 4 + 10, max_connections=256)
        self.hanging_pairs = [(silent, "SILENT_%02d" % i) for i in range(size["silent"])] \
            + [(drip, "DRIP_%02d" % i) for i in range(size["drip"])]
        where = "namespace loopback + blackhole %s" % blackhole if blackhole else "host loopback, no blackhole"
        self.description = "%d peers (%d answer; %d silent, %d drip, %d blackholed), timeouts %g s, on %s" % (
            size["total"], self.good, size["silent"], size["drip"], size["blackhole"], timeout, where)

    def orders(self, delay: float) -> Tuple[List[Dict], List[Dict]]:
        """The peers in a fixed shuffled order, and with every peer that never answers first."""
        peers = module_peers(self.good_pairs, self.fleet, delay) \
            + module_peers(self.hanging_pairs, self.fleet, delay, expect="accept")
        for i in range(self.size["blackhole"]):
            # Not proxied: a proxy would accept the connection itself and hide the blackhole.
            peers.append({"name": "blackhole-%02d" % i, "ae_title": "BLACKHOLE_%02d" % i, "host": self.blackhole,
                          "port": 104 + i, "expect": "accept"})
        hanging = {p["name"] for p in peers[self.good:]}
        mixed = list(peers)
        random.Random(2).shuffle(mixed)
        worst = [p for p in peers if p["name"] in hanging] + [p for p in peers if p["name"] not in hanging]
        return mixed, worst


def params_for(timeout: float) -> Dict:
    return {"connect_timeout": timeout, "acse_timeout": timeout, "dimse_timeout": timeout, "fail_on": "never"}


def run_inside(ctx: Context, blackhole: Optional[str]) -> None:
    size = _sizes(ctx.smoke, blackhole is not None)
    timeout = size["timeout"]
    fleet_peers = Peers(ctx, size, blackhole)
    ctx.note("scenario 2: %s" % fleet_peers.description)

    # Once, on loopback, whatever the conditions (the delay proxy would accept the connection itself).
    _refused_peers(ctx, size["refused"], timeout)
    for condition, delay in ctx.conditions():
        mixed, worst = fleet_peers.orders(delay)
        params = params_for(timeout)
        tag = "loopback" if not delay else "proxy"

        orders = [("mixed order", mixed)] + ([] if ctx.smoke else [("unreachable first", worst)])
        for order, plist in orders:
            for parallel in size["parallel"]:
                if order != "mixed order" and parallel != 16:
                    continue
                res = ctx.worker("engine", {"params": dict(params, peers=plist, parallel=parallel)})
                ratio = res["wall_s"] / timeout
                ctx.row(scenario="2 unreachable", condition=condition,
                        what="engine, parallel %d, %s" % (parallel, order), wall_s=res["wall_s"],
                        echoes=len(plist), p50_ms=percentile(res["latencies_ms"], 50),
                        p95_ms=percentile(res["latencies_ms"], 95), cpu_s=res["cpu_s"],
                        notes="%.2f x timeout; %s" % (ratio, _outcomes(res["outcomes"])))
                if order == "mixed order":
                    ctx.target("2 %s" % tag, "engine wall / timeout, parallel %d (%s)" % (parallel, condition),
                               ratio, 1.5, False, "x")

        if ctx.smoke:
            continue  # scenario 1 already checks the ansible-playbook path
        run_, digest, split = run_module(ctx, mixed, params, label="s2")
        engine_ratio = split["engine_s"] / timeout
        ctx.row(scenario="2 unreachable", condition=condition, what="dicom.network.echo via ansible-playbook",
                wall_s=run_.wall_s, echoes=len(mixed), p50_ms=percentile(digest["totals_ms"], 50),
                p95_ms=percentile(digest["totals_ms"], 95),
                notes="engine %.2f s = %.2f x timeout, Ansible overhead %.2f s; %s"
                % (split["engine_s"], engine_ratio, split["ansible_overhead_s"], _outcomes(digest["outcomes"])),
                data=split)
        ctx.target("2 %s" % tag, "module: engine time (summary.duration_ms) / timeout (%s)" % condition,
                   engine_ratio, 1.5, False, "x")
        floor = ctx.ansible_floor_s()
        ctx.target("2 %s" % tag, "module: ansible-playbook wall / timeout (%s)" % condition,
                   run_.wall_s / timeout, 1.5, False, "x",
                   [("any client", (floor + timeout) / timeout, "Ansible floor %.2f s + one timeout" % floor)])


def _refused_peers(ctx: Context, count: int, timeout: float) -> None:
    """Peers whose port refuses the connection (a device switched off behind a host that is up),
    with the engine as it runs and, A/B, on stock pynetdicom, whose abort sleeps 0.1 s every time.
    """
    port = closed_port()
    peers = [{"name": "refused-%03d" % i, "ae_title": "REFUSED_%03d" % i, "host": LOOPBACK, "port": port,
              "expect": "accept"} for i in range(count)]
    params = {"connect_timeout": timeout, "acse_timeout": timeout, "dimse_timeout": timeout, "fail_on": "never",
              "peers": peers, "parallel": 16}
    for what, spec in (("engine", {}), ("A/B: engine on stock pynetdicom (no compat tricks)", {"stock": True})):
        res = ctx.worker("engine", dict(spec, params=params))
        ctx.row(scenario="2 unreachable", condition="loopback",
                what="%s, parallel 16, %d refused peers (closed port)" % (what, count), wall_s=res["wall_s"],
                echoes=count, eps=count / res["wall_s"], p50_ms=percentile(res["latencies_ms"], 50),
                p95_ms=percentile(res["latencies_ms"], 95), cpu_s=res["cpu_s"], notes=_outcomes(res["outcomes"]))


def _outcomes(outcomes: List[str]) -> str:
    counts: Dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join("%s %d" % item for item in sorted(counts.items()))
