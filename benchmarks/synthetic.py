"""Synthetic dicom.network.echo results for report benchmarks, written where the role's echo task
writes them: one journal file per source host in the journal the plan action started, in the echo
action's own format (its ``journal_record``), derived from the plan in that journal's plan.json --
so the report task reads what a real audit leaves, without 90,000 real associations.

    python -m benchmarks.synthetic JOURNAL_DIR [COPY_DIR OPTIONS_JSON]   # scenario 4's stand-in for echo.yml
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import zlib
from typing import Any, Dict, Mapping, Optional

from tests.collection_path import ensure_collection_path

OUTCOMES = [("success", 0.92), ("rejected", 0.03), ("timeout", 0.02), ("refused", 0.01), ("aborted", 0.01),
            ("status_failure", 0.005), ("tls_error", 0.005)]
_PHASE = {"success": "release", "rejected": "associate", "timeout": "associate", "refused": "connect",
          "aborted": "echo", "status_failure": "echo", "tls_error": "tls"}
_MEETS = {"accept": ("success",), "reject": ("rejected", "aborted", "context_rejected", "status_failure"),
          "blocked": ("refused", "unreachable")}


def _outcome(rnd: random.Random) -> str:
    x = rnd.random()
    for outcome, share in OUTCOMES:
        if x < share:
            return outcome
        x -= share
    return "success"


def module_result(spec: Mapping[str, Any], calling: str, rnd: random.Random) -> Dict[str, Any]:
    outcome = _outcome(rnd)
    success = outcome == "success"
    rtt = round(rnd.uniform(0.4, 12.0), 3)
    expect = spec.get("expect", "accept")
    return {
        "name": spec["name"], "ae_title": spec["ae_title"], "host": spec["host"], "port": spec.get("port", 104),
        "address": spec["host"], "calling_ae_title": calling, "expect": expect, "outcome": outcome,
        "ok": outcome in _MEETS.get(expect, ()), "phase": _PHASE[outcome],
        "message": "C-ECHO success" if success else "%s during %s (synthetic)" % (outcome, _PHASE[outcome]),
        "status": 0 if success else (0xC000 if outcome == "status_failure" else None),
        "reject": {"result": 1, "source": 1, "diagnostic": 3} if outcome == "rejected" else None,
        "rtt_ms": {"min": rtt, "avg": rtt, "max": rtt} if success else None,
        "timings_ms": {"connect": 0.4, "associate": 2.1, "echo": rtt, "release": 1.2, "total": round(rtt + 4, 3)},
        "peer": {"implementation_class_uid": "1.2.276.0.7230010.3.0.3.6.7",
                 "implementation_version_name": "OFFIS_DCMTK_367", "max_pdu": 16384} if success else None,
        "transfer_syntax": "1.2.840.10008.1.2" if success else None, "tls": False,
        "started_at": "2025-01-01T00:00:00.000+00:00",
    }


def echo_result(plan: Mapping[str, Any], host: str) -> Dict[str, Any]:
    """What the role's one dicom.network.echo call returns on ``host`` for its plan: every peer of every
    calling AE (``echo_peers`` as the plan action builds them), with seeded synthetic outcomes."""
    rnd = random.Random(zlib.crc32(str(host).encode()))
    results = [module_result(spec, call["calling_ae_title"], rnd)
               for call in plan.get("calls") or [] for spec in call.get("peers") or []]
    ok = sum(1 for r in results if r["ok"])
    by_outcome: Dict[str, int] = {}
    for r in results:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
    return {"changed": False, "failed": False,
            "msg": "%d of %d peer(s) not as expected (synthetic)" % (len(results) - ok, len(results)),
            "results": results,
            "summary": {"total": len(results), "ok": ok, "failed": len(results) - ok,
                        "by_outcome": dict(sorted(by_outcome.items())), "duration_ms": 1000.0}}


def write_journal(journal: str, copy_to: Optional[str] = None, options: Optional[str] = None) -> Dict[str, Any]:
    """Stand in for the echo task: one journal file per planned host in ``journal`` (the directory the
    plan action started), written with the echo action's own ``journal_record`` and ``write_journal``
    under the name the role gives it (sha1 of the host). ``copy_to``: also copy the whole journal
    there, plan.json included, with ``options`` (the run's options as JSON text) in <copy_to>.options.json, for the
    plain-Python path (the report task removes the journal)."""
    ensure_collection_path()
    from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import (
        journal_record, write_journal as write_record)
    with open(os.path.join(journal, "plan.json"), encoding="utf-8") as stream:
        plans = json.load(stream)["plans"]
    cells = 0
    for host in sorted(plans):
        record = journal_record(host, host, None, echo_result(plans[host], host))
        cells += len(record["result"]["results"])
        write_record(os.path.join(journal, "%s.json" % hashlib.sha1(host.encode("utf-8")).hexdigest()), record)
    if copy_to:
        shutil.copytree(journal, copy_to)
        # Beside the copy, not in it: every other .json file there is read as an echo record.
        with open(copy_to + ".options.json", "w", encoding="utf-8") as stream:
            stream.write(options or "{}")
    return {"hosts": len(plans), "cells": cells}


def audit_inventory(n_rows: int, n_columns: int) -> Dict[str, Any]:
    """An inventory (YAML-able dict, local connection) of ``n_rows`` source hosts that each check
    ``n_columns`` peers, for the role's plan task. Addresses are documentation ranges: nothing is
    ever contacted (the echo results are synthetic)."""
    sites = ["Site North", "Site South", "Site East"]
    registry: Dict[str, Dict[str, Any]] = {}
    for c in range(n_columns):
        registry["peer%03d" % c] = {"ae_title": "PEER_%03d" % c, "host": "192.0.2.%d" % (c % 250 + 1),
                                    "port": 104 + c // 250, "site": sites[c % 3],
                                    "kind": ("archive", "modality", "printer")[c % 3],
                                    "description": "Peer %d <b>&amp;</b> \"quoted\"" % c}
    hosts = {}
    for r in range(n_rows):
        name = "source-%03d.example.org" % r
        registry["src%03d" % r] = {"ae_title": "SRC_%03d" % r, "host": "198.51.100.%d" % (r % 250 + 1),
                                   "port": 11112 + r // 250, "site": sites[r % 3], "kind": "workstation"}
        hosts[name] = {"dicom_local_aes": ["src%03d" % r], "ansible_connection": "local",
                       "ansible_python_interpreter": sys.executable}
    return {"all": {"vars": {"dicom_aes": registry}, "children": {"dicom_sources": {
        "vars": {"dicom_peers_all": ["peer%03d" % c for c in range(n_columns)]}, "hosts": hosts}}}}


def audit_reports(n_rows: int, n_columns: int, slices: int, run_id: str = "bench-run",
                  generated_at: str = "2025-01-01T00:00:00Z") -> Dict[str, Any]:
    """The packed report of one play over ``audit_inventory(n_rows, n_columns)`` with synthetic results
    (``whole``), and the reports of the same audit run as ``slices`` plays of every ``slices``-th host
    (``slices``: AWX job slicing's split), each with its run section, as the report step builds them."""
    ensure_collection_path()
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_hosts
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import build_packed
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import registry_digests
    inventory = audit_inventory(n_rows, n_columns)["all"]
    registry = inventory["vars"]["dicom_aes"]
    group = inventory["children"]["dicom_sources"]
    inputs = {host: {"dicom_aes": registry, "dicom_local_aes": variables["dicom_local_aes"],
                     "peer_lists": {"dicom_peers_all": group["vars"]["dicom_peers_all"]}}
              for host, variables in group["hosts"].items()}
    plans, errors = resolve_hosts(inputs)
    if errors:
        raise ValueError(errors)
    results = {host: {"results": [dict(echo_result(plan, host), item=None, echoed_from=None)]}
               for host, plan in plans.items()}
    digests = registry_digests([registry])

    def report(hosts, identity):
        built = build_packed({host: plans[host] for host in hosts}, {host: results[host] for host in hosts},
                             generated_at, started_at=generated_at, title="Synthetic audit")
        built["run"] = dict(identity, registry=digests)
        return built

    names = sorted(plans)
    identity = {"id": run_id, "slice": None, "slices": None, "site": None, "job": None}
    return {"whole": report(names, identity),
            "slices": [report(names[number::slices], dict(identity, slice=number + 1, slices=slices))
                       for number in range(slices)]}


if __name__ == "__main__":
    print(json.dumps(write_journal(*sys.argv[1:4])))
