"""What checking services costs on top of an echo (issue 20): the engine's wall time per association for a
plain echo, an echo with 5 required services, and `discover: storage` (about 170 SOP classes, two
associations per peer), against Orthanc, DCMTK dcmqrscp and a pynetdicom SCP, on loopback and through the
5 ms delay proxy. Associations run one at a time (parallel 1), so the time is the association's own.

    .venv/bin/python benchmarks/services.py                # 60 associations per row, 3 rounds (~2-3 min)
    .venv/bin/python benchmarks/services.py --smoke        # 4 per row, 1 round: checks the harness
    .venv/bin/python benchmarks/services.py --json out.json

Prints the rows and the two targets: 5 services at most 1.2x a plain echo, discovery at most 1.5x a plain
echo per association it needs. Exit 1 only when the harness breaks, never for a missed target.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Row, Target, machine_info, table, targets_table, to_jsonable  # noqa: E402
from benchmarks.fleet import Fleet  # noqa: E402

from tests.collection_path import ensure_collection_path  # noqa: E402

ensure_collection_path()

from ansible_collections.dicom.network.plugins.module_utils.echo_engine import run_echoes  # noqa: E402
from ansible_collections.dicom.network.plugins.module_utils.echo_services import associations  # noqa: E402
from ansible_collections.dicom.network.plugins.module_utils.echo_services import resolve_services  # noqa: E402
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import validate_request  # noqa: E402

FIVE_SERVICES = ["CTImageStorage", "MRImageStorage", "EnhancedCTImageStorage", "SecondaryCaptureImageStorage",
                 "DigitalXRayImageStorageForPresentation"]
KINDS = {"plain": {}, "5 services": {"services": FIVE_SERVICES}, "discover storage": {"discover": "storage"}}


def _per_association_ms(host: str, port: int, ae_title: str, n: int, options: Dict) -> float:
    peers = [dict({"name": "p%d" % i, "ae_title": ae_title, "host": host, "port": port}, **options) for i in range(n)]
    request = validate_request({"calling_ae_title": "BENCH", "peers": peers, "parallel": 1})
    started = time.perf_counter()
    results = run_echoes(request)
    wall = time.perf_counter() - started
    outcomes = {r["outcome"] for r in results}
    if not outcomes <= {"success", "service_rejected"}:
        raise RuntimeError("%s:%d %s: unexpected outcomes %s (%s)" % (
            host, port, options, outcomes, results[0]["message"]))
    per_peer = len(associations(resolve_services(request.peers[0].services, request.peers[0].discover)))
    return wall * 1000.0 / (n * per_peer)


def _pynetdicom_loop_ms(host: str, port: int, ae_title: str, n: int, discover: bool) -> float:
    """pynetdicom's own requestor, one association at a time: the floor of what the protocol library
    and the server take (with ``discover``: the same two associations of Verification and 127 contexts)."""
    from pynetdicom import AE, build_context
    from pynetdicom.sop_class import Verification

    contexts = [[build_context(Verification)]]
    if discover:
        services = resolve_services((), "storage")
        contexts = [[build_context(Verification)] + [build_context(s.uid, list(s.transfer_syntaxes)) for s in part]
                    for part in associations(services)]
    ae = AE(ae_title="BENCH")
    started = time.perf_counter()
    for _association in range(n):
        for number, proposal in enumerate(contexts):
            assoc = ae.associate(host, port, contexts=proposal, ae_title=ae_title)
            if not assoc.is_established:
                raise RuntimeError("pynetdicom could not associate with %s:%d" % (host, port))
            if number == 0:
                assoc.send_c_echo()
            assoc.release()
    return (time.perf_counter() - started) * 1000.0 / (n * len(contexts))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--conditions", default="loopback,proxy", help="loopback, proxy or both")
    args = parser.parse_args(argv)
    n, rounds = (4, 1) if args.smoke else (60, 3)
    rows: List[Row] = []
    ratios: Dict[str, List[float]] = {"5 services": [], "discover storage": []}
    floors: List[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-services-") as workdir:
        fleet = Fleet(Path(workdir))
        try:
            servers = [fleet.start_orthanc(1, threads=4), fleet.start_dcmqrscp(1), fleet.start_pynetdicom(1)]
            conditions = [("loopback", 0.0), ("proxy %g ms" % args.delay_ms, args.delay_ms)]
            for condition, delay in [c for c in conditions if c[0].split()[0] in args.conditions.split(",")]:
                for server in servers:
                    route = fleet.route(server, delay)
                    samples: Dict[str, List[float]] = {kind: [] for kind in KINDS}
                    for _round in range(rounds):  # the kinds alternate, so that load drifts hit each alike
                        for kind, options in KINDS.items():
                            samples[kind].append(_per_association_ms(route.host, route.port, server.ae_titles[0],
                                                                     n, options))
                    reference = {kind: [] for kind in ("plain", "discover storage")}
                    for _round in range(rounds):
                        for kind in reference:
                            reference[kind].append(_pynetdicom_loop_ms(
                                route.host, route.port, server.ae_titles[0], n, kind != "plain"))
                    floor = statistics.median(reference["discover storage"]) / statistics.median(reference["plain"])
                    floors.append(floor)
                    rows.append(Row("services", condition, "%s: pynetdicom loop, discover storage" % server.kind,
                                    p50_ms=statistics.median(reference["discover storage"]), echoes=n * rounds,
                                    notes="%.2fx its plain echo (%.1f ms) per association: pynetdicom and the "
                                          "server alone" % (floor, statistics.median(reference["plain"]))))
                    plain = statistics.median(samples["plain"])
                    for kind in KINDS:
                        value = statistics.median(samples[kind])
                        ratio = value / plain
                        if kind in ratios:
                            ratios[kind].append(ratio)
                        rows.append(Row("services", condition, "%s: %s" % (server.kind, kind),
                                        p50_ms=value, echoes=n * rounds,
                                        notes="%.2fx plain per association (median of %d rounds)" % (ratio, rounds)))
        finally:
            fleet.stop()
    targets = [
        Target("20a", "5 required services vs a plain echo", "worst %.2fx" % max(ratios["5 services"]), "<= 1.2x",
               max(ratios["5 services"]) <= 1.2),
        Target("20b", "discover storage vs a plain echo, per association", "worst %.2fx"
               % max(ratios["discover storage"]), "<= 1.5x", max(ratios["discover storage"]) <= 1.5,
               "worst %.2fx: pynetdicom's own requestor, same proposals, same servers" % max(floors)),
    ]
    print(table(rows))
    print()
    print(targets_table(targets))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(to_jsonable(rows, targets), machine=machine_info()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
