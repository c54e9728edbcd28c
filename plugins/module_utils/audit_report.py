# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the echo audit reports show, computed from the JSON report, and format escapers.

Pure functions, free of Ansible.

* :func:`build_view` gives the HTML and Markdown templates (and the console summary) small
  presentation data; the HTML page's per-cell data is one script-safe JSON text, which its own
  script turns into the matrix, so no template loops over 90,000 cells.
* :func:`export` serializes the machine formats in Python, with their own quoting rules: JSON,
  CSV (formula-safe), JUnit XML (ElementTree).

ansible-core 2.19 spends about 10 µs on every value a template reads, so a template loop over a
300 x 300 matrix would take minutes: per-cell work belongs here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence
from xml.etree import ElementTree

from ansible_collections.dicom.network.plugins.module_utils.audit_matrix import (
    DIFF_KINDS,
    NOT_RUN,
    AuditMatrixError,
    outcome_order,
    parse_report,
)

# One symbol per outcome, so a cell reads without colour; every symbol is in common system fonts
# (DejaVu, Segoe UI Symbol, Arial Unicode).
SYMBOLS = {
    "success": "\u2713",           # check mark
    "rejected": "\u2298",          # circled division slash
    "context_rejected": "\u25D0",  # circle with left half black
    "status_failure": "!",
    "aborted": "\u21AF",           # downwards zigzag arrow
    "timeout": "\u25F7",           # circle with upper right quadrant (a clock)
    "refused": "\u2297",           # circled times
    "unreachable": "\u219B",       # rightwards arrow with stroke
    # Plain letters: circled ones are missing from the fonts of many hospital workstations.
    "dns_error": "D",
    "tls_error": "T",
    "protocol_error": "P",
    NOT_RUN: "\u25CB",             # white circle
}
UNKNOWN_SYMBOL = "?"
LABELS = {
    "success": "success (echo answered)",
    "rejected": "association rejected",
    "context_rejected": "Verification context rejected",
    "status_failure": "echo answered with a failure status",
    "aborted": "association aborted",
    "timeout": "timed out",
    "refused": "connection refused",
    "unreachable": "host or network unreachable",
    "dns_error": "name resolution failed",
    "tls_error": "TLS handshake failed",
    "protocol_error": "DICOM protocol error",
    NOT_RUN: "not run (host unreachable or task failed)",
}
CSV_HEADER = (
    "source_host", "calling_ae_title", "calling_site", "peer", "called_ae_title", "called_site", "peer_host",
    "peer_port", "expect", "outcome", "ok", "message", "phase", "status", "rtt_min_ms", "rtt_avg_ms",
    "rtt_max_ms", "peer_implementation_version", "started_at", "not_run_reason", "source_address", "echoed_from",
)
_EXPECTS = ("accept", "reject", "blocked")
_PHASES = ("resolve", "connect", "tls", "associate", "echo", "release")
# Characters a spreadsheet reads as the start of a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
# Characters with inline meaning in CommonMark/GFM; block syntax never starts mid-line in our reports.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def markdown_escape(value: Any) -> str:
    """Text that Markdown (and the HTML it allows) shows literally, on one line, safe in a table cell."""
    if value is None:
        return ""
    text = str(value).replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def csv_field(value: Any) -> str:
    """A CSV field a spreadsheet shows as text, never evaluates (leading formula characters get a quote)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def csv_row(values: Sequence[Any]) -> str:
    """One CSV record (RFC 4180 quoting, no line terminator) with every field made formula-safe."""
    buffer = io.StringIO()
    # The writer quotes fields containing its line terminator, so it must be a real one: cut it after.
    csv.writer(buffer, lineterminator="\r\n").writerow([csv_field(value) for value in values])
    return buffer.getvalue()[:-2]


def json_script(value: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda match: _SCRIPT_ESCAPES[match.group(0)], text)


def symbol(outcome: str) -> str:
    return SYMBOLS.get(outcome, UNKNOWN_SYMBOL)


def _rtt_text(rtt: Optional[Mapping[str, Any]]) -> str:
    if not rtt or rtt.get("avg") is None:
        return ""
    return "%s / %s / %s ms" % tuple("%g" % rtt[key] if rtt.get(key) is not None else "?"
                                     for key in ("min", "avg", "max"))


def _pair_line(pair: Mapping[str, Any]) -> str:
    def side(value):
        return "%s%s" % (value["outcome"], "" if value["ok"] else " (not ok)") if value else "absent"
    return "%s as %s -> %s (%s): %s => %s" % (
        pair["source_host"], pair["calling_ae_title"], pair["called_ae_title"], pair["peer"],
        side(pair["before"]), side(pair["after"]))


def _cell_line(cell: Mapping[str, Any]) -> str:
    return "%s as %s -> %s (%s): %s, expected %s: %s" % (
        cell["source_host"], cell["calling_ae_title"], cell["called_ae_title"], cell["peer"],
        cell["outcome"], cell["expect"], cell["message"])


def _index(values: Sequence[str]) -> Dict[str, int]:
    return {value: index for index, value in enumerate(values)}


class _Strings:
    """A string table: the HTML's embedded data repeats messages and version names a lot."""

    def __init__(self) -> None:
        self.values: List[str] = []
        self._index: Dict[str, int] = {}

    def __call__(self, value: Optional[str]) -> int:
        if value is None:
            return -1
        if value not in self._index:
            self._index[value] = len(self.values)
            self.values.append(value)
        return self._index[value]


VIEWS = ("summary", "html", "md")
EXPORTS = ("json", "csv", "junit")
_REPORT_KEYS = ("schema_version", "rows", "columns", "cells", "summary")


def load_report(report: Any) -> Mapping[str, Any]:
    """A report of :func:`audit_matrix.build_report`, given as itself or as its JSON text."""
    report = parse_report(report, "report")
    if not isinstance(report, Mapping) or any(key not in report for key in _REPORT_KEYS):
        raise AuditMatrixError("not a report of dicom.network.echo_matrix (it needs %s)" % ", ".join(_REPORT_KEYS))
    return report


def _legend(report: Mapping[str, Any]) -> List[Dict[str, Any]]:
    counts = report["summary"]["by_outcome"]
    outcomes = outcome_order(list(counts) + list(SYMBOLS))
    return [{"outcome": outcome, "symbol": symbol(outcome), "label": LABELS.get(outcome, outcome),
             "css": "o%d" % index, "index": index, "count": counts.get(outcome, 0)}
            for index, outcome in enumerate(outcomes)]


def _console(report: Mapping[str, Any], limit: int) -> List[str]:
    summary, baseline = report["summary"], report.get("baseline")
    lines = ["%s: %d checks, %d ok, %d failed, %d not run%s" % (
        report.get("title") or "DICOM echo audit", summary["total"], summary["ok"], summary["failed"],
        summary["not_run"],
        " (%s)" % ", ".join("%s %d" % item for item in summary["by_outcome"].items()) if summary["total"] else "")]
    regressions = baseline["broke"] if baseline else []
    if baseline:
        lines.append("against baseline %s (%s): %s" % (
            baseline["source"], baseline.get("generated_at") or "undated",
            ", ".join("%d %s" % (baseline["counts"][kind], kind) for kind in DIFF_KINDS)))
    if report.get("partial_reasons"):
        lines.append("PARTIAL report: %s" % "; ".join(report["partial_reasons"]))
    lines.extend("REGRESSION %s" % _pair_line(pair) for pair in regressions[:limit])
    failures = [cell for cell in report["cells"] if not cell["ok"]]
    lines.extend("NOT OK %s" % _cell_line(cell) for cell in failures[:limit])
    hidden = max(0, len(failures) - limit) + max(0, len(regressions) - limit)
    if hidden:
        lines.append("... %d more line(s) in the reports" % hidden)
    return lines


def _baseline_view(report: Mapping[str, Any], limit: int) -> Optional[Dict[str, Any]]:
    baseline = report.get("baseline")
    if not baseline:
        return None
    return {"source": baseline["source"], "generated_at": baseline.get("generated_at"), "scope": baseline["scope"],
            "counts": baseline["counts"], "kinds": [
                {"kind": kind, "count": baseline["counts"][kind],
                 "lines": [_pair_line(pair) for pair in baseline[kind][:limit]],
                 "hidden": max(0, baseline["counts"][kind] - limit)}
                for kind in DIFF_KINDS if baseline["counts"][kind]]}


def _column_labels(columns: Sequence[Mapping[str, Any]]) -> List[str]:
    titles: Dict[str, int] = {}
    for column in columns:
        titles[column["ae_title"]] = titles.get(column["ae_title"], 0) + 1
    # One AE title on two ports (or hosts) needs the registry name to tell the columns apart.
    return [column["ae_title"] if titles[column["ae_title"]] == 1 else "%s (%s)" % (column["ae_title"], column["id"])
            for column in columns]


def _html_data(report: Mapping[str, Any], legend: Sequence[Mapping[str, Any]]) -> str:
    """The matrix for the page's script: rows, columns and, per row, compact cell arrays.

    A cell is ``[column, outcome, ok, expect, message, implementation version, status, phase,
    not-run reason, rtt min, rtt avg, rtt max]``; texts are indexes into ``strings``.
    """
    rows, columns = report["rows"], report["columns"]
    outcome_index = {entry["outcome"]: entry["index"] for entry in legend}
    sites = list(report["sites"])
    site_index = _index(sites)
    row_index = _index([row["id"] for row in rows])
    column_index = _index([column["id"] for column in columns])
    strings = _Strings()
    cells: List[List[List[Any]]] = [[] for row in rows]
    failing_rows, failing_columns = set(), set()
    for cell in report["cells"]:
        row, column = row_index[cell["row"]], column_index[cell["column"]]
        if not cell["ok"]:
            failing_rows.add(row)
            failing_columns.add(column)
        rtt = cell["rtt_ms"] or {}
        cells[row].append([
            column, outcome_index[cell["outcome"]], 1 if cell["ok"] else 0,
            _EXPECTS.index(cell["expect"]) if cell["expect"] in _EXPECTS else -1,
            strings(cell["message"]), strings(cell["peer_implementation_version"]), cell["status"],
            _PHASES.index(cell["phase"]) if cell["phase"] in _PHASES else -1, strings(cell["not_run_reason"]),
            rtt.get("min"), rtt.get("avg"), rtt.get("max"),
        ])
    return json_script({
        "outcomes": [entry["outcome"] for entry in legend],
        "symbols": [entry["symbol"] for entry in legend],
        "expects": list(_EXPECTS),
        "phases": list(_PHASES),
        "sites": [site or "(no site)" for site in sites],
        "rows": [[row["calling_ae_title"], row["source_host"], site_index[row["site"]], row["kind"],
                  row["description"]] for row in rows],
        "columns": [[label, column["name"], "%s:%s" % (column["host"], column["port"]), site_index[column["site"]],
                     column["kind"], column["description"]] for label, column in zip(_column_labels(columns), columns)],
        "failing_rows": sorted(failing_rows),
        "failing_columns": sorted(failing_columns),
        "strings": strings.values,
        "cells": cells,
    })


def _markdown_matrix(report: Mapping[str, Any], max_columns: int) -> Optional[Dict[str, Any]]:
    rows, columns = report["rows"], report["columns"]
    if not columns or len(columns) > max_columns:
        return None
    column_index = _index([column["id"] for column in columns])
    symbols: Dict[str, List[str]] = {row["id"]: [""] * len(columns) for row in rows}
    for cell in report["cells"]:
        symbols[cell["row"]][column_index[cell["column"]]] = symbol(cell["outcome"])
    groups: List[Dict[str, Any]] = []
    for row in rows:
        if not groups or groups[-1]["site"] != row["site"]:
            groups.append({"site": row["site"], "label": row["site"] or "(no site)", "rows": []})
        groups[-1]["rows"].append({"ae_title": row["calling_ae_title"], "source_host": row["source_host"],
                                   "cells": symbols[row["id"]]})
    return {"columns": _column_labels(columns), "groups": groups}


def build_view(
    report: Any,
    view: str = "html",
    markdown_max_columns: int = 30,
    failures_limit: int = 200,
    console_limit: int = 20,
) -> Dict[str, Any]:
    """What the ``html`` or ``md`` template, or the console (``summary``), shows of a report."""
    if view not in VIEWS:
        raise AuditMatrixError("view must be one of %s, got %r" % (", ".join(VIEWS), view))
    report = load_report(report)
    summary = report["summary"]
    data: Dict[str, Any] = {
        "title": report.get("title") or "DICOM echo audit",
        "generated_at": report.get("generated_at"),
        "started_at": report.get("started_at"),
        "only_peers": (report.get("scope") or {}).get("only_peers"),
        "partial_reasons": list(report.get("partial_reasons") or []),
        "summary": summary,
        "baseline_counts": report["baseline"]["counts"] if report.get("baseline") else None,
        "console": _console(report, console_limit),
    }
    if view == "summary":
        return data
    legend = _legend(report)
    failures = [cell for cell in report["cells"] if not cell["ok"]]
    data.update({
        "legend": legend,
        "sites": [site or "(no site)" for site in report["sites"]],
        "baseline": _baseline_view(report, failures_limit),
        "failures": [{key: cell[key] for key in ("source_host", "calling_ae_title", "peer", "called_ae_title",
                                                 "outcome", "expect", "message")} for cell in failures[:failures_limit]],
        "failures_total": len(failures),
        "probes": [{"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"],
                    "echoed_from": row["echoed_from"],
                    "source_addresses": sorted({cell["source_address"] for cell in report["cells"]
                                                if cell["row"] == row["id"] and cell.get("source_address")})}
                   for row in report["rows"] if row.get("echoed_from")],
        "failures_hidden": max(0, len(failures) - failures_limit),
    })
    if view == "html":
        data["data_json"] = _html_data(report, legend)
    else:
        data["matrix"] = _markdown_matrix(report, markdown_max_columns)
        data["columns_total"] = len(report["columns"])
    return data


def _json_text(report: Mapping[str, Any]) -> str:
    """The report with one cell per line: greppable and diffable, half the size of indenting every cell."""
    head = {key: value for key, value in report.items() if key != "cells"}
    text = json.dumps(head, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    cells = ",\n".join("  " + json.dumps(cell, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                         allow_nan=False) for cell in report["cells"])
    return "%s,\n \"cells\": [\n%s\n ]\n}\n" % (text[:-2], cells) if cells else "%s,\n \"cells\": []\n}\n" % text[:-2]


def _probes(report: Mapping[str, Any]) -> Dict[str, str]:
    """Row id: the probe host that echoed on that source's behalf, for delegated rows only."""
    return {row["id"]: row["echoed_from"] for row in report["rows"] if row.get("echoed_from")}


def _csv_text(report: Mapping[str, Any]) -> str:
    probes = _probes(report)
    lines = [csv_row(CSV_HEADER)]
    for cell in report["cells"]:
        rtt = cell["rtt_ms"] or {}
        lines.append(csv_row([
            cell["source_host"], cell["calling_ae_title"], cell["calling_site"], cell["peer"], cell["called_ae_title"],
            cell["called_site"], cell["peer_host"], cell["peer_port"], cell["expect"], cell["outcome"], cell["ok"],
            cell["message"], cell["phase"], cell["status"], rtt.get("min"), rtt.get("avg"), rtt.get("max"),
            cell["peer_implementation_version"], cell["started_at"], cell["not_run_reason"], cell.get("source_address"),
            probes.get(cell["row"])]))
    return "\r\n".join(lines) + "\r\n"


def _junit_text(report: Mapping[str, Any]) -> str:
    """One test suite per calling AE, one test case per cell: failure when not as expected, error when not run."""
    summary = report["summary"]
    stamp = report.get("generated_at") or ""
    root = ElementTree.Element("testsuites", {
        "name": report.get("title") or "DICOM echo audit", "tests": str(summary["total"]),
        "failures": str(summary["failed"]), "errors": str(summary["not_run"]), "timestamp": stamp})
    by_row: Dict[str, List[Mapping[str, Any]]] = {}
    for cell in report["cells"]:
        by_row.setdefault(cell["row"], []).append(cell)
    for row in report["rows"]:
        cells = by_row.get(row["id"], [])
        seconds = [((cell["rtt_ms"] or {}).get("avg") or 0) / 1000.0 for cell in cells]
        suite = ElementTree.SubElement(root, "testsuite", {
            "name": "%s as %s" % (row["source_host"], row["calling_ae_title"]), "hostname": row["source_host"],
            "tests": str(len(cells)), "failures": str(sum(1 for c in cells if not c["ok"] and c["outcome"] != NOT_RUN)),
            "errors": str(sum(1 for c in cells if c["outcome"] == NOT_RUN)), "skipped": "0",
            "time": "%.6f" % sum(seconds), "timestamp": stamp})
        for cell, time_s in zip(cells, seconds):
            case = ElementTree.SubElement(suite, "testcase", {
                "classname": "dicom.echo.%s.%s" % (row["source_host"], row["calling_ae_title"]),
                "name": "%s -> %s (%s) expect %s" % (row["calling_ae_title"], cell["called_ae_title"], cell["peer"],
                                                     cell["expect"]),
                "time": "%.6f" % time_s})
            if cell["ok"]:
                continue
            problem = ElementTree.SubElement(case, "error" if cell["outcome"] == NOT_RUN else "failure", {
                "type": cell["outcome"], "message": "%s, expected %s: %s" % (cell["outcome"], cell["expect"],
                                                                             cell["message"])})
            problem.text = "\n".join(line for line in (
                "outcome: %s" % cell["outcome"], "expect: %s" % cell["expect"], "message: %s" % cell["message"],
                "phase: %s" % cell["phase"] if cell["phase"] else "",
                "status: 0x%04X" % cell["status"] if cell["status"] is not None else "",
                "rtt: %s" % _rtt_text(cell["rtt_ms"]) if cell["rtt_ms"] else "",
                "peer implementation: %s" % cell["peer_implementation_version"]
                if cell["peer_implementation_version"] else "",
                "peer: %s:%s" % (cell["peer_host"], cell["peer_port"]),
            ) if line)
    ElementTree.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def export(report: Any, fmt: str) -> str:
    """The report as ``json`` (one cell per line), ``csv`` (one row per cell) or ``junit`` XML text."""
    if fmt not in EXPORTS:
        raise AuditMatrixError("format must be one of %s, got %r" % (", ".join(EXPORTS), fmt))
    report = load_report(report)
    return {"json": _json_text, "csv": _csv_text, "junit": _junit_text}[fmt](report)
