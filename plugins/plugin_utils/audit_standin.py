# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The go-live check of a new device: who must call it (from the plans), and both sides' view of each
call (the caller's echo result against what the device's stand-in, dicom.network.listen, saw).

Pure functions, free of Ansible. :func:`standin_plan` runs in the plan step, :func:`standin_section`
in the report step; the section is plain data that every report format presents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import EXPECTATIONS
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    C_COLUMN,
    C_ROW,
    C_VARIANT,
    NOT_RUN,
    V_EXPECT,
    V_MESSAGE,
    V_OK,
    V_OUTCOME,
    V_SOURCE_ADDRESS,
    Matrix,
    clean_text,
)


def standin_plan(plans: Mapping[str, Mapping[str, Any]], device: str) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    """The device (a registry name) and the calling AE titles that must reach it, by expectation:
    ``({name, ae_title, host, port, accept, reject, blocked}, errors)``.

    The device's ``services`` and ``discover`` are taken off its routes in ``plans``: the stand-in answers
    Verification only, so every caller would be ``service_rejected``; the device's services are checked
    once it is live.
    """
    meta: Optional[Mapping[str, Any]] = None
    expected: Dict[str, Dict[str, List[str]]] = {expect: {} for expect in EXPECTATIONS}
    for host in sorted(plans):
        plan = plans[host]
        meta = meta or plan["aes"].get(device)
        for call in plan["calls"]:
            for peer in call["peers"]:
                if peer.get("name") == device:
                    peer.pop("services", None)
                    peer.pop("discover", None)
                    expected[peer.get("expect") or "accept"].setdefault(call["calling_ae_title"], []).append(host)
    if meta is None or not any(expected.values()):
        return None, ["echo_audit_standin_device: no source host in this play lists %s among its peers (dicom_peers): "
                      "nobody would call the stand-in" % device]
    errors = []
    for title in sorted(set(expected["accept"]) & (set(expected["reject"]) | set(expected["blocked"]))):
        refused = [(expect, hosts) for expect, hosts in ((expect, expected[expect].get(title)) for expect in ("reject", "blocked"))
                   if hosts]
        errors.append("echo_audit_standin_device: calling AE title %s is to reach %s from %s (expect accept) and to be "
                      "refused from %s: one stand-in cannot both accept and refuse one calling AE title"
                      % (title, device, ", ".join(expected["accept"][title]),
                         ", ".join("%s (expect %s)" % (", ".join(hosts), expect) for expect, hosts in refused)))
    standin = {"name": device, "ae_title": meta["ae_title"], "host": meta["host"], "port": meta["port"]}
    standin.update({expect: sorted(expected[expect]) for expect in EXPECTATIONS})
    return standin, errors


def _text(value: Any, limit: int = 300) -> str:
    return clean_text(value, limit) or ""


def _record(raw: Any) -> Optional[Dict[str, Any]]:
    """One connection the stand-in saw, every text cleaned (callers choose their AE titles)."""
    if not isinstance(raw, Mapping):
        return None
    port = raw.get("source_port")
    return {"started_at": _text(raw.get("started_at"), 40), "source_address": _text(raw.get("source_address"), 80),
            "source_port": port if isinstance(port, int) and not isinstance(port, bool) else None,
            "calling_ae_title": clean_text(raw.get("calling_ae_title"), 64),
            "called_ae_title": clean_text(raw.get("called_ae_title"), 64), "outcome": _text(raw.get("outcome"), 40),
            "message": _text(raw.get("message"))}


def _seen_text(records: List[Dict[str, Any]]) -> str:
    if not records:
        return "nothing"
    return "; ".join("%s from %s" % (record["outcome"], record["source_address"]) for record in records)


def _judge(expect: str, caller_ok: bool, caller_outcome: str, caller_message: str, sent_from: str,
           records: List[Dict[str, Any]]) -> Tuple[bool, str]:
    """(as expected on both sides, what to tell) for one caller."""
    echoed = [record for record in records if record["outcome"] == "echoed"]
    rejected = [record for record in records if record["outcome"] == "rejected"]
    if caller_outcome == NOT_RUN:
        return False, "the caller's echo did not run: %s" % caller_message
    if expect == "blocked":
        if records:
            return False, "reached the stand-in although it should be blocked: %s" % _seen_text(records)
        return caller_ok, "blocked before the stand-in, as expected" if caller_ok else \
            "never reached the stand-in, but not as a blocked path: %s" % caller_message
    wanted = echoed if expect == "accept" else rejected
    if caller_ok and wanted:
        addresses = sorted({record["source_address"] for record in wanted})
        if sent_from and sent_from not in addresses:
            return True, ("the stand-in saw it from %s, the caller sent it from %s: NAT or another route on the way "
                          "(the device must be configured for %s)" % (", ".join(addresses), sent_from, ", ".join(addresses)))
        return True, "%s by the stand-in, as expected" % ("echoed" if expect == "accept" else "turned away")
    if caller_ok:
        return False, ("the caller's echo was %s, but the stand-in saw %s: the registry's address or port leads "
                       "somewhere else (another device, an old entry?)"
                       % ("answered" if expect == "accept" else "turned away", _seen_text(records)))
    if records:
        return False, "%s; the stand-in saw %s" % (caller_message, "; ".join(record["message"] for record in records))
    return False, ("never reached the stand-in: %s (a firewall or route on the way, or the device's address is not "
                   "on the stand-in host)" % caller_message)


def standin_section(matrix: Matrix, standin: Mapping[str, Any]) -> Dict[str, Any]:
    """Both sides of each planned call to the device, the stand-in's other connections, and the problems.

    ``standin``: ``{"plan": standin_plan's device, "host": the stand-in host, "result": what
    ``async_status`` returned for the listener}``.
    """
    plan, result = standin.get("plan") or {}, standin.get("result")
    device = {key: clean_text(plan.get(key), 255) for key in ("name", "ae_title", "host")}
    device["port"] = plan.get("port") if isinstance(plan.get("port"), int) else None
    error = None
    if not isinstance(result, Mapping) or not isinstance(result.get("associations"), list):
        message = result.get("msg") if isinstance(result, Mapping) else None
        error = "the stand-in did not run on %s: %s" % (
            _text(standin.get("host"), 255), _text(message) or "it returned no connections")
        records: List[Dict[str, Any]] = []
    else:
        records = [record for record in map(_record, result["associations"]) if record is not None]
    column = next((index for index, entry in enumerate(matrix.columns) if entry["name"] == device["name"]), None)
    callers, matched = [], set()
    for packed in matrix.cells:
        if packed[C_COLUMN] != column:
            continue
        row, variant = matrix.rows[packed[C_ROW]], matrix.variants[packed[C_VARIANT]]
        title, sent_from = row["calling_ae_title"], variant[V_SOURCE_ADDRESS] or ""
        own = [index for index, record in enumerate(records) if record["calling_ae_title"] == title]
        matched.update(own)
        mine = [records[index] for index in own]
        if error:
            ok, finding = False, error
        else:
            ok, finding = _judge(variant[V_EXPECT], variant[V_OK], variant[V_OUTCOME], variant[V_MESSAGE], sent_from, mine)
        callers.append({"source_host": row["source_host"], "calling_ae_title": title, "expect": variant[V_EXPECT],
                        "caller_outcome": variant[V_OUTCOME], "caller_ok": variant[V_OK], "sent_from": sent_from,
                        "seen": _seen_text(mine), "ok": ok, "finding": finding})
    others = [record for index, record in enumerate(records) if index not in matched]
    problems = ["%s as %s: %s" % (caller["source_host"], caller["calling_ae_title"], caller["finding"])
                for caller in callers if not caller["ok"]]
    if error and not callers:
        problems.append(error)
    listener = result.get("listener") if isinstance(result, Mapping) and isinstance(result.get("listener"), Mapping) else {}
    return {
        "device": device,
        "standin_host": _text(standin.get("host"), 255),
        "listener": {key: clean_text(listener.get(key), 80) for key in ("started_at", "ended_at", "stopped_because")},
        "error": error,
        "callers": callers,
        "others": others,
        "counts": {"callers": len(callers), "ok": sum(1 for caller in callers if caller["ok"]),
                   "problems": len(problems), "others": len(others)},
        "problems": problems,
    }


def standin_lines(section: Optional[Mapping[str, Any]], limit: int) -> List[str]:
    """The console's go-live lines: the counts, then each problem (at most ``limit``)."""
    if not section:
        return []
    counts, device = section["counts"], section["device"]
    lines = ["GO-LIVE %s (%s at %s:%s, stand-in on %s): %d caller(s), %d as expected on both sides, %d problem(s), "
             "%d other connection(s)" % (device["name"], device["ae_title"], device["host"], device["port"],
                                         section["standin_host"], counts["callers"], counts["ok"], counts["problems"],
                                         counts["others"])]
    lines.extend("GO-LIVE PROBLEM %s" % problem for problem in section["problems"][:limit])
    return lines
