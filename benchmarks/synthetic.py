"""Synthetic dicom.network.echo results for report benchmarks, shaped exactly like the role's
registered result of its looped echo task (one item per calling AE, each with the module's
``results`` and ``summary``), derived from the plan the role's preflight computed -- so the
benchmark follows the role's own data path without 90,000 real associations."""
from __future__ import annotations

import random
import zlib
from typing import Any, Dict, List, Mapping

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


def registered_echo(plan: Mapping[str, Any], host: str) -> Dict[str, Any]:
    """What ``register:`` holds after the role's echo loop ran on ``host`` with ``plan``."""
    rnd = random.Random(zlib.crc32(str(host).encode()))
    items: List[Dict[str, Any]] = []
    for call in plan.get("calls") or []:
        if not call.get("peers"):
            continue
        results = [module_result(spec, call["calling_ae_title"], rnd) for spec in call["peers"]]
        ok = sum(1 for r in results if r["ok"])
        by_outcome: Dict[str, int] = {}
        for r in results:
            by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
        items.append({"item": call, "ansible_loop_var": "item", "changed": False, "failed": False,
                      "msg": "%d of %d peer(s) not as expected (synthetic)" % (len(results) - ok, len(results)),
                      "results": results,
                      "summary": {"total": len(results), "ok": ok, "failed": len(results) - ok,
                                  "by_outcome": dict(sorted(by_outcome.items())), "duration_ms": 1000.0}})
    return {"changed": False, "msg": "All items completed", "results": items, "skipped": False}


def audit_inventory(n_rows: int, n_columns: int) -> Dict[str, Any]:
    """An inventory (YAML-able dict, local connection) of ``n_rows`` source hosts that each check
    ``n_columns`` peers, for the role's preflight. Addresses are documentation ranges: nothing is
    ever contacted (the echo results are synthetic)."""
    import sys
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
