# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The echo audit matrix: per-host echo results in, one report document out.

Pure functions, free of Ansible. The input is what the ``echo_audit`` role gathers for every
source host: the plan resolved by :mod:`audit_inventory` and the registered result of its
``dicom.network.echo`` loop (which may say the host was unreachable or the task failed).
Every planned (source host, calling AE, peer) becomes exactly one cell; a check that did not
run becomes a ``not_run`` cell that says why, so nothing is silently dropped.

The document is the JSON report (``SCHEMA_VERSION``) and the baseline of the next run.
Every string that reaches it is cleaned by :func:`clean_text`: AE titles, descriptions and
whatever a peer sent are untrusted, and the renderers escape them again for their format.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import OUTCOMES

SCHEMA_VERSION = 1
NOT_RUN = "not_run"
OUTCOME_ORDER = OUTCOMES + (NOT_RUN,)
NOT_RUN_REASONS = ("unreachable", "task_failed", "skipped", "no_result", "interrupted", "setup_failed")
BASELINE_SCOPES = ("all", "run")
DIFF_KINDS = ("broke", "fixed", "appeared", "disappeared", "changed")
MAX_TEXT = 500
_RTT_KEYS = ("min", "avg", "max")
_TIMING_KEYS = ("connect", "associate", "echo", "release", "total")


class AuditMatrixError(ValueError):
    """The gathered results or the baseline cannot be turned into a report; says which and why."""


# C0 and C1 controls, bidirectional marks and overrides (a line could read differently from its
# bytes), line and paragraph separators, lone surrogates and non-characters.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def _replace_unsafe(match: Any) -> str:
    return " " if match.group(0) in "\r\n\t" else "\ufffd"


def clean_text(value: Any, limit: int = MAX_TEXT) -> Optional[str]:
    """One printable line from untrusted text: controls become U+FFFD, newlines spaces, long text is cut."""
    if value is None:
        return None
    text = "%s" % (value,)
    # Most text is printable ASCII: two C-level checks instead of a regular expression.
    if not (text.isascii() and text.isprintable()):
        text = _UNSAFE_CHARACTERS.sub(_replace_unsafe, text)
    if len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), 3)


def _numbers(value: Any, keys: Sequence[str]) -> Optional[Dict[str, Optional[float]]]:
    if not isinstance(value, Mapping):
        return None
    numbers = {key: _number(value.get(key)) for key in keys if key in value}
    return numbers or None


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reject(value: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(value, Mapping):
        return None
    return {key: (value[key] if isinstance(value[key], int) and not isinstance(value[key], bool)
                  else clean_text(value[key], 80)) for key in ("result", "source", "reason") if key in value}


def _site(value: Any) -> str:
    return clean_text(value, 80) or ""


def _ae_meta(ae: Mapping[str, Any]) -> Dict[str, Any]:
    port = _int(ae.get("port"))
    return {
        "name": clean_text(ae.get("name"), 120) or "",
        "ae_title": clean_text(ae.get("ae_title"), 64) or "",
        "host": clean_text(ae.get("host"), 255) or "",
        "port": port,
        "site": _site(ae.get("site")),
        "kind": clean_text(ae.get("kind"), 40) or "",
        "description": clean_text(ae.get("description")) or "",
    }


def _row_sort_key(row: Mapping[str, Any]) -> Tuple:
    return (row["site"] == "", row["site"], row["kind"], row["calling_ae_title"], row["source_host"], row["calling"])


def _column_sort_key(column: Mapping[str, Any]) -> Tuple:
    return (column["site"] == "", column["site"], column["kind"], column["ae_title"], column["name"],
            column["host"], column["port"] or 0)


def _items_by_calling(echo: Any) -> Dict[str, Mapping[str, Any]]:
    """The loop items of the registered echo task, keyed by the calling AE they ran for."""
    items: Dict[str, Mapping[str, Any]] = {}
    if not isinstance(echo, Mapping) or not isinstance(echo.get("results"), list):
        return items
    for item in echo["results"]:
        if isinstance(item, Mapping) and isinstance(item.get("item"), Mapping):
            calling = item["item"].get("calling")
            if isinstance(calling, str):
                items[calling] = item
    return items


def _task_message(result: Mapping[str, Any]) -> str:
    message = result.get("msg") or result.get("skip_reason") or result.get("stderr") or ""
    return clean_text(message, 300) or "no message"


def _call_problem(echo: Any, item: Optional[Mapping[str, Any]],
                  missing: Optional[Tuple[str, str]] = None) -> Optional[Tuple[str, str]]:
    """(not_run_reason, message) when the module did not return per-peer results for a call."""
    if item is None:
        if isinstance(echo, Mapping) and echo.get("unreachable"):
            return "unreachable", "host unreachable: %s" % _task_message(echo)
        if isinstance(echo, Mapping) and echo.get("skipped"):
            return "skipped", "echo task skipped: %s" % _task_message(echo)
        if isinstance(echo, Mapping) and echo.get("failed"):
            return "task_failed", "echo task failed: %s" % _task_message(echo)
        return missing or ("no_result", "the echo task did not run for this calling AE (the host left the play earlier)")
    if item.get("unreachable"):
        return "unreachable", "host unreachable: %s" % _task_message(item)
    if isinstance(item.get("results"), list):
        return None
    if item.get("skipped"):
        return "skipped", "echo task skipped: %s" % _task_message(item)
    # The role registers with failed_when: false, which clears "failed" but keeps the message.
    if item.get("failed") or item.get("msg") or item.get("exception"):
        return "task_failed", "echo task failed: %s" % _task_message(item)
    return "no_result", "the echo task returned no results"


def _cell(row: Mapping[str, Any], column: Mapping[str, Any], expect: str, result: Optional[Mapping[str, Any]],
          problem: Optional[Tuple[str, str]]) -> Dict[str, Any]:
    cell: Dict[str, Any] = {
        "row": row["id"],
        "column": column["id"],
        "source_host": row["source_host"],
        "calling_ae_title": row["calling_ae_title"],
        "calling_site": row["site"],
        "peer": column["name"],
        "called_ae_title": column["ae_title"],
        "called_site": column["site"],
        "peer_host": column["host"],
        "peer_port": column["port"],
        "expect": expect,
    }
    if result is None:
        reason, message = problem or ("no_result", "the echo module returned no result for this peer")
        cell.update({"outcome": NOT_RUN, "ok": False, "message": message, "phase": None, "status": None,
                     "reject": None, "rtt_ms": None, "timings_ms": None, "peer_implementation_version": None,
                     "peer_implementation_class_uid": None, "peer_max_pdu": None, "address": None,
                     "source_address": None,
                     "transfer_syntax": None, "started_at": None, "not_run_reason": reason})
        return cell
    peer = result.get("peer") if isinstance(result.get("peer"), Mapping) else {}
    outcome = clean_text(result.get("outcome"), 40) or "unknown"
    cell.update({
        "outcome": outcome,
        "ok": result.get("ok") is True,
        "message": clean_text(result.get("message")) or "",
        "phase": clean_text(result.get("phase"), 20),
        "status": _int(result.get("status")),
        "reject": _reject(result.get("reject")),
        "rtt_ms": _numbers(result.get("rtt_ms"), _RTT_KEYS),
        "timings_ms": _numbers(result.get("timings_ms"), _TIMING_KEYS),
        "peer_implementation_version": clean_text(peer.get("implementation_version_name"), 80),
        "peer_implementation_class_uid": clean_text(peer.get("implementation_class_uid"), 80),
        "peer_max_pdu": _int(peer.get("max_pdu")),
        "address": clean_text(result.get("address"), 80),
        "source_address": clean_text(result.get("source_address"), 80),
        "transfer_syntax": clean_text(result.get("transfer_syntax"), 80),
        "started_at": clean_text(result.get("started_at"), 40),
        "not_run_reason": None,
    })
    return cell


class _Columns:
    """Called AEs seen in any plan or result; one column per distinct (name, AE title, host, port)."""

    def __init__(self) -> None:
        self._by_key: Dict[Tuple[str, str, str, Optional[int]], Dict[str, Any]] = {}
        self._seen: Dict[int, Tuple[Mapping[str, Any], Dict[str, Any]]] = {}

    def get(self, ae: Mapping[str, Any]) -> Dict[str, Any]:
        # A plan describes each peer once for all its calls: clean each description once.
        seen = self._seen.get(id(ae))
        if seen is not None and seen[0] is ae:
            return seen[1]
        meta = _ae_meta(ae)
        key = (meta["name"], meta["ae_title"], meta["host"].lower(), meta["port"])
        if key not in self._by_key:
            meta["inline"] = bool(ae.get("inline"))
            self._by_key[key] = meta
        self._seen[id(ae)] = (ae, self._by_key[key])
        return self._by_key[key]

    def finish(self) -> List[Dict[str, Any]]:
        columns = sorted(self._by_key.values(), key=_column_sort_key)
        names: Dict[str, int] = {}
        for column in columns:
            names[column["name"]] = names.get(column["name"], 0) + 1
        for column in columns:
            # Inline peers on two hosts may share a name while pointing at different AEs.
            unique = names[column["name"]] == 1
            column["id"] = column["name"] if unique else "%s (%s@%s:%s)" % (
                column["name"], column["ae_title"], column["host"], column["port"])
        return columns


def _plan(host: str, plan: Any) -> Mapping[str, Any]:
    if not isinstance(plan, Mapping) or not isinstance(plan.get("calls"), list) \
            or not isinstance(plan.get("aes"), Mapping):
        raise AuditMatrixError("host %s: no peer plan was gathered (the role's preflight must run on every "
                               "source host before the report)" % host)
    return plan


def build_cells(
    plans: Mapping[str, Any], results: Optional[Mapping[str, Any]] = None,
    missing: Optional[Tuple[str, str]] = None, setup_failures: Optional[Mapping[str, Any]] = None,
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Rows, columns and cells, sorted by site, kind and AE title.

    ``plans`` maps each source host to its plan, ``results`` to the registered result of its echo
    loop (missing or ``None`` when the task never ran there). ``missing`` is the (reason, message)
    of hosts without any result, when the caller knows why (an interrupted play). ``setup_failures``
    maps hosts whose preparation failed (no pynetdicom virtualenv) to the reason their echo never ran.
    """
    if not isinstance(plans, Mapping):
        raise AuditMatrixError("plans must be a dictionary of source host: plan, got %s" % type(plans).__name__)
    if results is None:
        results = {}
    if not isinstance(results, Mapping):
        raise AuditMatrixError("results must be a dictionary of source host: registered echo result, got %s"
                               % type(results).__name__)
    rows: List[Dict[str, Any]] = []
    columns = _Columns()
    pending: List[Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]] = []
    for host in sorted(plans, key=str):
        source = clean_text(host, 255) or ""
        plan = _plan(source, plans[host])
        echo = results.get(host)
        failure = clean_text((setup_failures or {}).get(host), 300) if isinstance(setup_failures, Mapping) else None
        if failure:
            echo = None
        items = _items_by_calling(echo)
        aes = plan["aes"]
        for call in plan["calls"]:
            calling = call.get("calling")
            meta = _ae_meta(aes.get(calling) or {"name": calling, "ae_title": call.get("calling_ae_title")})
            row = {"id": "%s/%s" % (source, meta["name"]), "source_host": source, "calling": meta["name"],
                   "calling_ae_title": meta["ae_title"], "site": meta["site"], "kind": meta["kind"],
                   "description": meta["description"], "ae_host": meta["host"], "ae_port": meta["port"]}
            rows.append(row)
            item = items.get(calling)
            # Where the module really ran: the host itself, or the probe it was delegated to.
            echoed_from = clean_text(item.get("echoed_from"), 255) if item is not None else None
            row["echoed_from"] = echoed_from if echoed_from and echoed_from != source else None
            planned = call.get("peers") or []
            if not planned:
                continue
            problem = ("setup_failed", failure) if failure else _call_problem(echo, item, missing)
            answers: Dict[str, Mapping[str, Any]] = {}
            if problem is None:
                for result in item["results"]:
                    if isinstance(result, Mapping) and isinstance(result.get("name"), str):
                        answers.setdefault(result["name"], result)
                if item.get("failed"):
                    # Results came back but the task failed anyway: missing peers say why.
                    problem = ("task_failed", "echo task failed: %s" % _task_message(item))
            for spec in planned:
                # The plan's metadata of the peer, or the module arguments when the plan lacks it.
                ae = aes.get(spec.get("name")) or spec
                extra = {"expect": spec.get("expect") or "accept", "result": answers.pop(spec.get("name"), None),
                         "problem": problem}
                pending.append((row, columns.get(ae), extra))
            for name in sorted(answers):
                # The module answered for a peer nobody planned: show it rather than drop it.
                result = answers[name]
                column = columns.get({"name": name, "ae_title": result.get("ae_title"), "host": result.get("host"),
                                      "port": result.get("port")})
                pending.append((row, column, {"expect": clean_text(result.get("expect"), 20) or "accept",
                                              "result": result, "problem": None}))
    rows.sort(key=_row_sort_key)
    ordered_columns = columns.finish()
    row_order = {row["id"]: index for index, row in enumerate(rows)}
    column_order = {id(column): index for index, column in enumerate(ordered_columns)}
    pending.sort(key=lambda entry: (row_order[entry[0]["id"]], column_order[id(entry[1])]))
    cells = [_cell(row, column, extra["expect"], extra["result"], extra["problem"]) for row, column, extra in pending]
    return rows, ordered_columns, cells


def summarize(cells: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Counts over cells: ``failed`` ran but was not as expected, ``not_run`` never ran; both are not ok."""
    by_outcome: Dict[str, int] = {}
    for cell in cells:
        by_outcome[cell["outcome"]] = by_outcome.get(cell["outcome"], 0) + 1
    ok = sum(1 for cell in cells if cell["ok"])
    not_run = by_outcome.get(NOT_RUN, 0)
    return {
        "total": len(cells),
        "ok": ok,
        "failed": len(cells) - ok - not_run,
        "not_run": not_run,
        "by_outcome": {outcome: by_outcome[outcome] for outcome in outcome_order(by_outcome)},
        "source_hosts": len({cell["source_host"] for cell in cells}),
    }


def outcome_order(outcomes: Iterable[str]) -> List[str]:
    """Known outcomes in their documented order, then any other in alphabetical order."""
    present = set(outcomes)
    known = [outcome for outcome in OUTCOME_ORDER if outcome in present]
    return known + sorted(present - set(OUTCOME_ORDER))


def pair_key(cell: Mapping[str, Any]) -> Tuple[str, str, str]:
    """What identifies a check across runs: who called, as which AE title, which peer."""
    return cell["source_host"], cell["calling_ae_title"], cell["peer"]


def _side(cell: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if cell is None:
        return None
    return {"outcome": cell["outcome"], "ok": cell["ok"], "message": cell.get("message") or ""}


def _in_scope(cell: Mapping[str, Any], hosts: Optional[Iterable[str]], peers: Optional[Iterable[str]]) -> bool:
    if hosts is not None and cell["source_host"] not in hosts:
        return False
    if peers is not None and cell["peer"] not in peers and cell.get("called_ae_title") not in peers:
        return False
    return True


def diff_cells(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    hosts: Optional[Iterable[str]] = None,
    peers: Optional[Iterable[str]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Pairs that broke, were fixed, appeared, disappeared, or changed outcome with the same verdict.

    ``hosts`` / ``peers`` restrict both sides (a verify run limited to a few hosts or peers must
    not report everything else as disappeared). ``diff(a, b)`` mirrors ``diff(b, a)``.
    """
    hosts = set(hosts) if hosts is not None else None
    peers = set(peers) if peers is not None else None
    old = {pair_key(cell): cell for cell in before if _in_scope(cell, hosts, peers)}
    new = {pair_key(cell): cell for cell in after if _in_scope(cell, hosts, peers)}
    diff: Dict[str, List[Dict[str, Any]]] = {kind: [] for kind in DIFF_KINDS}
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if was is None:
            kind = "appeared"
        elif now is None:
            kind = "disappeared"
        elif was["ok"] and not now["ok"]:
            kind = "broke"
        elif now["ok"] and not was["ok"]:
            kind = "fixed"
        elif was["outcome"] != now["outcome"]:
            kind = "changed"
        else:
            continue
        either = now or was
        diff[kind].append({
            "source_host": key[0], "calling_ae_title": key[1], "peer": key[2],
            "called_ae_title": either.get("called_ae_title") or "",
            "before": _side(was), "after": _side(now),
        })
    return diff


def parse_report(baseline: Any, source: str = "baseline") -> Any:
    """A report (a baseline) given as its JSON text, parsed; anything else is returned as it is."""
    if isinstance(baseline, (str, bytes)):
        try:
            baseline = json.loads(baseline)
        except ValueError as error:
            raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (invalid JSON: %s)"
                                   % (source, error))
    return baseline


def baseline_cells(baseline: Any, source: str = "baseline") -> List[Dict[str, Any]]:
    """The cells of a previous JSON report, checked well enough to diff against."""
    if not isinstance(baseline, Mapping):
        raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (expected an object, got %s)"
                               % (source, type(baseline).__name__))
    version = baseline.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AuditMatrixError("%s: not a JSON report of dicom.network.echo_audit (no schema_version)" % source)
    if version > SCHEMA_VERSION:
        raise AuditMatrixError("%s: schema_version %d is newer than this collection understands (%d); "
                               "upgrade dicom.network" % (source, version, SCHEMA_VERSION))
    cells = baseline.get("cells")
    if not isinstance(cells, list):
        raise AuditMatrixError("%s: cells must be a list" % source)
    checked = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise AuditMatrixError("%s: cells[%d] must be an object" % (source, index))
        for key in ("source_host", "calling_ae_title", "peer", "outcome"):
            if not isinstance(cell.get(key), str):
                raise AuditMatrixError("%s: cells[%d].%s must be a string" % (source, index, key))
        if not isinstance(cell.get("ok"), bool):
            raise AuditMatrixError("%s: cells[%d].ok must be true or false" % (source, index))
        checked.append({
            "source_host": cell["source_host"], "calling_ae_title": cell["calling_ae_title"],
            "peer": cell["peer"], "called_ae_title": clean_text(cell.get("called_ae_title"), 64) or "",
            "outcome": cell["outcome"], "ok": cell["ok"], "message": clean_text(cell.get("message")) or "",
        })
    return checked


def results_from_journal(records: Any) -> Dict[str, Dict[str, Any]]:
    """The registered-result shape (host: {"results": [loop items]}) from echo journal entries.

    Each entry is what the dicom.network.echo action plugin wrote for one call (JSON text or a
    dictionary); entries that are not readable are refused by index, never skipped silently.
    """
    if not isinstance(records, (list, tuple)):
        raise AuditMatrixError("journal: expected a list of entries, got %s" % type(records).__name__)
    by_host: Dict[str, Dict[str, Any]] = {}
    for index, record in enumerate(records):
        if isinstance(record, (str, bytes)):
            try:
                record = json.loads(record)
            except ValueError as error:
                raise AuditMatrixError("journal entry %d: invalid JSON (%s)" % (index, error))
        if not isinstance(record, Mapping) or not isinstance(record.get("host"), str) \
                or not isinstance(record.get("result"), Mapping):
            raise AuditMatrixError("journal entry %d: not an entry of the dicom.network.echo journal" % index)
        item = dict(record["result"])
        item["item"] = record.get("item")
        item["echoed_from"] = record.get("echoed_from")
        by_host.setdefault(record["host"], {"results": []})["results"].append(item)
    return by_host


def partial_reasons(summary: Mapping[str, Any], only_peers: Optional[Sequence[str]] = None,
                    limit: Optional[str] = None, interrupted: Optional[str] = None) -> List[str]:
    """Why a report does not cover every planned check of the whole inventory (empty: complete).

    A partial report must never silently become the baseline the next runs are judged against.
    """
    reasons = []
    if interrupted:
        reasons.append("interrupted: %s" % interrupted)
    if limit:
        reasons.append("hosts limited to %s" % limit)
    if only_peers:
        reasons.append("peers limited to %s" % ", ".join(only_peers))
    if summary.get("not_run"):
        reasons.append("%d check(s) did not run" % summary["not_run"])
    return reasons


def build_report(
    plans: Mapping[str, Any],
    results: Optional[Mapping[str, Any]],
    generated_at: str,
    started_at: Optional[str] = None,
    title: Optional[str] = None,
    baseline: Any = None,
    baseline_source: Optional[str] = None,
    baseline_scope: str = "all",
    only_peers: Optional[Sequence[str]] = None,
    limit: Optional[str] = None,
    interrupted: Optional[str] = None,
    setup_failures: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The JSON report: rows, columns, one cell per check, summary, and the diff against a baseline.

    ``baseline_scope`` ``run`` compares only pairs of the source hosts in ``plans`` (and, with
    ``only_peers``, of those peers); ``all`` reports every baseline pair missing now as disappeared.
    ``interrupted`` (a message) marks a report rebuilt from the journal of a play that stopped early:
    hosts without a journal entry become ``not_run`` cells with reason ``interrupted``.
    """
    if baseline_scope not in BASELINE_SCOPES:
        raise AuditMatrixError("baseline_scope must be one of %s, got %r" % (", ".join(BASELINE_SCOPES), baseline_scope))
    interrupted = clean_text(interrupted, 300)
    missing = ("interrupted", "no result: %s" % interrupted) if interrupted else None
    rows, columns, cells = build_cells(plans, results, missing, setup_failures)
    summary = summarize(cells)
    only_peers = sorted(clean_text(token, 120) for token in only_peers) if only_peers else None
    reasons = partial_reasons(summary, only_peers, clean_text(limit, 300), interrupted)
    sites = sorted({row["site"] for row in rows} | {column["site"] for column in columns},
                   key=lambda site: (site == "", site))
    report: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": clean_text(generated_at, 40),
        "started_at": clean_text(started_at, 40),
        "title": clean_text(title, 200) or "DICOM echo audit",
        "scope": {"source_hosts": sorted({row["source_host"] for row in rows}),
                  "only_peers": only_peers, "limit": clean_text(limit, 300) or None},
        "complete": not reasons,
        "partial_reasons": reasons,
        "sites": sites,
        "rows": rows,
        "columns": columns,
        "cells": cells,
        "summary": summary,
        "baseline": None,
    }
    if baseline is not None and baseline != "":
        source = clean_text(baseline_source, 300) or "baseline"
        baseline = parse_report(baseline, source)
        old = baseline_cells(baseline, source)
        hosts = report["scope"]["source_hosts"] if baseline_scope == "run" else None
        peers = list(only_peers) if baseline_scope == "run" and only_peers else None
        diff = diff_cells(old, cells, hosts=hosts, peers=peers)
        report["baseline"] = dict(
            source=source,
            generated_at=clean_text(baseline.get("generated_at"), 40),
            scope=baseline_scope,
            counts={kind: len(diff[kind]) for kind in DIFF_KINDS},
            **diff)
    return report
