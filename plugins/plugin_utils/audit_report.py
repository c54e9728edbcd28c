# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the echo audit reports show, computed from the JSON report, and format escapers.

Pure functions, free of Ansible.

* :func:`build_view` gives the HTML and Markdown templates (and the console summary) small
  presentation data; the HTML page's matrix comes as ready, escaped markup (readable without
  JavaScript) plus one script-safe JSON text with each cell's details, so no template loops over
  90,000 cells.
* :func:`export` serializes the machine formats in Python, with their own quoting rules: JSON,
  CSV (formula-safe), JUnit XML (escaped as ElementTree does).

Both take a report in either form of :mod:`audit_matrix` (the packed one is what the role passes
between its tasks) and work on its packed cells: the distinct answers (variants) are formatted
once, not 90,000 times. ansible-core 2.19 spends about 10 µs on every value a template reads, so a
template loop over a 300 x 300 matrix would take minutes: per-cell work belongs here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    C_COLUMN,
    C_ROW,
    C_RTT,
    C_STARTED_AT,
    C_TIMINGS,
    C_VARIANT,
    DIFF_KINDS,
    NOT_RUN,
    TIMING_KEYS,
    V_EXPECT,
    V_MESSAGE,
    V_NOT_RUN_REASON,
    V_OK,
    V_OUTCOME,
    V_PHASE,
    V_SOURCE_ADDRESS,
    V_STATUS,
    V_VERSION,
    AuditMatrixError,
    Matrix,
    clean_text,
    is_packed,
    matrix_of,
    new_failures,
    outcome_order,
    rtt_values,
    parse_report,
    paused_gc,
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
# Rows of the HTML matrix per block: a browser lays out and paints only the blocks on screen.
HTML_BLOCK_ROWS = 20
_HTML_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"))


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


def html_escape(value: Any) -> str:
    """Text for HTML content or a quoted attribute, escaped as Jinja2's ``| e`` does."""
    text = "" if value is None else str(value)
    for char, entity in _HTML_ESCAPES:
        if char in text:
            text = text.replace(char, entity)
    return text


def json_script(value: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
    return re.sub("[<>&\u2028\u2029]", lambda match: _SCRIPT_ESCAPES[match.group(0)], text)


def symbol(outcome: str) -> str:
    return SYMBOLS.get(outcome, UNKNOWN_SYMBOL)


def _rtt_text(rtt: Optional[Mapping[str, Any]]) -> str:
    if not rtt or rtt.get("avg") is None:
        return ""
    return "%s / %s / %s ms" % tuple("%g" % rtt[key] if rtt.get(key) is not None else "?"
                                     for key in ("min", "avg", "max"))


def _plain_text(value: Any) -> str:
    return "%s" % (value,)


def _side_text(side: Optional[Mapping[str, Any]], other: Optional[Mapping[str, Any]],
               escape: Callable[[Any], str]) -> str:
    if not side:
        return "absent"
    notes = []
    # The expectation only where it differs from the other side's: "rejected => rejected (not ok)" alone
    # would not say that the inventory, not the network, changed. A side of an older report may lack it.
    if other and side.get("expect") and other.get("expect") and side["expect"] != other["expect"]:
        notes.append("expect %s" % escape(side["expect"]))
    if not side["ok"]:
        notes.append("not ok")
    return "%s%s" % (escape(side["outcome"]), " (%s)" % ", ".join(notes) if notes else "")


def _pair_line(pair: Mapping[str, Any], escape: Callable[[Any], str] = _plain_text) -> str:
    """One baseline pair as a line; ``escape`` is applied to every text from the report, never to our own
    arrows and words (so a Markdown line shows ``->``, not ``-&gt;``)."""
    before, after = pair["before"], pair["after"]
    return "%s as %s -> %s (%s): %s => %s" % (
        escape(pair["source_host"]), escape(pair["calling_ae_title"]), escape(pair["called_ae_title"]),
        escape(pair["peer"]), _side_text(before, after, escape), _side_text(after, before, escape))


def _baseline_counts(baseline: Mapping[str, Any]) -> Dict[str, int]:
    """The baseline's counts with ``new_failures``, computed from its lists for a report written before it existed."""
    counts = dict(baseline["counts"])
    if "new_failures" not in counts:
        counts["new_failures"] = new_failures(baseline)
    return counts


def _counts_text(counts: Mapping[str, int]) -> str:
    return "%s; %d new failure(s)" % (", ".join("%d %s" % (counts[kind], kind) for kind in DIFF_KINDS),
                                      counts["new_failures"])


def _not_ok_heading(summary: Mapping[str, Any]) -> str:
    """The heading of the list of cells that are not ok, in the words of the summary's counts."""
    total = summary["failed"] + summary["not_run"]
    if not total:
        return "Not ok (0)"
    return "Not ok (%d): %d not as expected, %d not run" % (total, summary["failed"], summary["not_run"])


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
_REPORT_KEYS = ("schema_version", "rows", "columns", "summary")
_PACKED_KEYS = ("packing", "variants", "packed_cells")
# The last report parsed from JSON text: the role renders every format of one report in one
# process, and parsing it again for each would cost more than rendering some formats.
_PARSED: List[Any] = [None, None]


def load_report(report: Any) -> Mapping[str, Any]:
    """A report of :func:`audit_matrix.build_report` or :func:`audit_matrix.build_packed`, given as itself or
    as its JSON text. Treat it as read-only: the parse of a JSON text is kept for the next call."""
    if isinstance(report, (str, bytes)):
        text = report
        if _PARSED[0] is not None and (text is _PARSED[0] or text == _PARSED[0]):
            return _PARSED[1]
        report = parse_report(text, "report")
        _PARSED[0], _PARSED[1] = None, None
        if isinstance(report, Mapping):
            _PARSED[0], _PARSED[1] = text, report
    if not isinstance(report, Mapping) or any(key not in report for key in _REPORT_KEYS) \
            or ("cells" not in report and "packed_cells" not in report):
        raise AuditMatrixError("not a report of dicom.network.echo_matrix (it needs %s)"
                               % ", ".join(_REPORT_KEYS[:3] + ("cells",) + _REPORT_KEYS[3:]))
    return report


class _Cells:
    """A report's packed matrix with what several views need from it, computed once."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = report
        try:
            self.matrix: Matrix = matrix_of(report)
        except (KeyError, IndexError) as error:
            raise AuditMatrixError("not a report of dicom.network.echo_matrix (a cell names no row or column: %s)"
                                   % error) from None
        self.rows, self.columns, self.variants = self.matrix.rows, self.matrix.columns, self.matrix.variants
        bad = {index for index, variant in enumerate(self.variants) if not variant[V_OK]}
        self.failures = [packed for packed in self.matrix.cells if packed[C_VARIANT] in bad]

    def failure(self, packed: Sequence[Any]) -> Dict[str, Any]:
        row, column, variant = self.rows[packed[C_ROW]], self.columns[packed[C_COLUMN]], self.variants[packed[C_VARIANT]]
        return {"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"], "peer": column["name"],
                "called_ae_title": column["ae_title"], "outcome": variant[V_OUTCOME], "expect": variant[V_EXPECT],
                "message": variant[V_MESSAGE]}


def _legend(report: Mapping[str, Any]) -> List[Dict[str, Any]]:
    counts = report["summary"]["by_outcome"]
    outcomes = outcome_order(list(counts) + list(SYMBOLS))
    return [{"outcome": outcome, "symbol": symbol(outcome), "label": LABELS.get(outcome, outcome),
             "css": "o%d" % index, "index": index, "count": counts.get(outcome, 0)}
            for index, outcome in enumerate(outcomes)]


def _console(report: Mapping[str, Any], cells: _Cells, limit: int) -> List[str]:
    summary, baseline = report["summary"], report.get("baseline")
    lines = ["%s: %d checks, %d ok, %d failed, %d not run%s" % (
        report.get("title") or "DICOM echo audit", summary["total"], summary["ok"], summary["failed"],
        summary["not_run"],
        " (%s)" % ", ".join("%s %d" % item for item in summary["by_outcome"].items()) if summary["total"] else "")]
    regressions = baseline["broke"] if baseline else []
    if baseline:
        lines.append("against baseline %s (%s): %s%s" % (
            baseline["source"], baseline.get("generated_at") or "undated", _counts_text(_baseline_counts(baseline)),
            _other_audit(report)))
    if report.get("partial_reasons"):
        lines.append("PARTIAL report: %s" % "; ".join(report["partial_reasons"]))
    lines.extend("REGRESSION %s" % _pair_line(pair) for pair in regressions[:limit])
    for packed in cells.failures[:limit]:
        cell = cells.failure(packed)
        lines.append("NOT OK %s as %s -> %s (%s): %s, expected %s: %s" % (
            cell["source_host"], cell["calling_ae_title"], cell["called_ae_title"], cell["peer"],
            cell["outcome"], cell["expect"], cell["message"]))
    hidden = max(0, len(cells.failures) - limit) + max(0, len(regressions) - limit)
    if hidden:
        lines.append("... %d more line(s) in the reports" % hidden)
    return lines


def _other_audit(report: Mapping[str, Any]) -> str:
    """A note when the baseline is a report of an audit with another title (a wrong path, most likely)."""
    theirs = (report.get("baseline") or {}).get("title")
    ours = report.get("title") or "DICOM echo audit"
    if not theirs or theirs == ours:
        return ""
    return "; note: the baseline is a report of another audit, titled '%s'" % theirs


def _baseline_view(report: Mapping[str, Any], limit: int, view: str) -> Optional[Dict[str, Any]]:
    """The baseline section; for ``md`` its lines are Markdown already (texts escaped, our arrows not)."""
    baseline = report.get("baseline")
    if not baseline:
        return None
    escape = markdown_escape if view == "md" else _plain_text
    counts = _baseline_counts(baseline)
    return {"source": baseline["source"], "generated_at": baseline.get("generated_at"), "scope": baseline["scope"],
            "counts": counts, "counts_text": _counts_text(counts) + _other_audit(report), "kinds": [
                {"kind": kind, "count": counts[kind],
                 "lines": [_pair_line(pair, escape) for pair in baseline[kind][:limit]],
                 "hidden": max(0, counts[kind] - limit)}
                for kind in DIFF_KINDS if counts[kind]]}


def _column_labels(columns: Sequence[Mapping[str, Any]]) -> List[str]:
    titles: Dict[str, int] = {}
    for column in columns:
        titles[column["ae_title"]] = titles.get(column["ae_title"], 0) + 1
    # One AE title on two ports (or hosts) needs the registry name to tell the columns apart.
    return [column["ae_title"] if titles[column["ae_title"]] == 1 else "%s (%s)" % (column["ae_title"], column["id"])
            for column in columns]


def _failing(cells: _Cells) -> Tuple[List[int], List[int]]:
    return (sorted({packed[C_ROW] for packed in cells.failures}),
            sorted({packed[C_COLUMN] for packed in cells.failures}))


def _html_data(report: Mapping[str, Any], cells: _Cells, legend: Sequence[Mapping[str, Any]]) -> str:
    """Each cell's details for the page's script: rows, columns and, per row, compact cell arrays.

    A cell is ``[column, details]``, or ``[column, details, rtt]`` with a round trip: one number when
    min, avg and max are the same (one echo), else ``[min, avg, max]``. ``details`` indexes
    ``details``, whose entries are ``[outcome, ok, expect, message, implementation version, status,
    phase, not-run reason]`` (texts: indexes into ``strings``), one per distinct answer: the page
    has 90,000 cells but a few hundred answers.
    """
    rows, columns = cells.rows, cells.columns
    outcome_index = {entry["outcome"]: entry["index"] for entry in legend}
    sites = list(report["sites"])
    site_index = _index(sites)
    strings = _Strings()
    details = [[outcome_index[variant[V_OUTCOME]], 1 if variant[V_OK] else 0,
                _EXPECTS.index(variant[V_EXPECT]) if variant[V_EXPECT] in _EXPECTS else -1,
                strings(variant[V_MESSAGE]), strings(variant[V_VERSION]), variant[V_STATUS],
                _PHASES.index(variant[V_PHASE]) if variant[V_PHASE] in _PHASES else -1,
                strings(variant[V_NOT_RUN_REASON])] for variant in cells.variants]
    by_row: List[List[List[Any]]] = [[] for row in rows]
    for packed in cells.matrix.cells:
        rtt = packed[C_RTT]
        if rtt is None:
            by_row[packed[C_ROW]].append([packed[C_COLUMN], packed[C_VARIANT]])
        else:
            by_row[packed[C_ROW]].append([packed[C_COLUMN], packed[C_VARIANT],
                                          rtt if isinstance(rtt, (int, float)) else rtt_values(rtt)])
    failing_rows, failing_columns = _failing(cells)
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
        "failing_rows": failing_rows,
        "failing_columns": failing_columns,
        "strings": strings.values,
        "details": details,
        "cells": by_row,
    })


def _lines(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def _attribute(text: str) -> str:
    """An attribute value: escaped, line breaks as references so the markup keeps one line per row."""
    return html_escape(text).replace("\n", "&#10;")


def _colgroup(columns: Sequence[Mapping[str, Any]], site_index: Mapping[str, int], failing: set) -> str:
    """One <col> per called AE with its site and whether it has a problem: the filters collapse columns
    through these (CSS visibility: collapse) instead of touching every cell."""
    cols = ['<colgroup><col class="h">']
    for index, column in enumerate(columns):
        cols.append('<col class="s%d%s">' % (site_index[column["site"]], " f" if index in failing else ""))
    cols.append("</colgroup>")
    return "".join(cols)


def _html_matrix(report: Mapping[str, Any], cells: _Cells, legend: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The matrix as markup: a header table, then blocks of HTML_BLOCK_ROWS rows, each its own table.

    The page is readable without JavaScript. A block is a <div> the stylesheet marks
    ``content-visibility: auto``, so a browser lays out and paints only the blocks on screen (the
    property does nothing on table parts); the tables have fixed column widths so they line up.
    Every text is escaped here: the template inserts this markup as it is.
    """
    rows, columns = cells.rows, cells.columns
    sites = list(report["sites"])
    site_index = _index(sites)
    site_names = [site or "(no site)" for site in sites]
    symbols = {entry["outcome"]: entry["symbol"] for entry in legend}
    outcome_index = {entry["outcome"]: entry["index"] for entry in legend}
    failing_rows, failing_columns = (set(indexes) for indexes in _failing(cells))
    colgroup = _colgroup(columns, site_index, failing_columns)
    labels = _column_labels(columns)
    head = ['<table class="mh">', colgroup, '<thead><tr><th class="corner">calling \u2193 &nbsp; called \u2192</th>']
    for index, (label, column) in enumerate(zip(labels, columns)):
        site = site_index[column["site"]]
        first = index == 0 or site_index[columns[index - 1]["site"]] != site
        title = _lines("%s (%s) %s:%s" % (label, column["name"], column["host"], column["port"]),
                       "site: %s, kind: %s" % (site_names[site], column["kind"] or "-"), column["description"])
        head.append('<th class="s%d%s" title="%s"><span>%s</span></th>'
                    % (site, " b" if first else "", _attribute(title), html_escape(label)))
    head.append("</tr></thead></table>")
    # A cell's markup depends only on its variant: <td class="o3 x">symbol (the end tag is optional).
    variant_td = []
    for variant in cells.variants:
        outcome = variant[V_OUTCOME]
        variant_td.append('<td class="o%d%s">%s' % (outcome_index[outcome], "" if variant[V_OK] else " x",
                                                    html_escape(symbols[outcome])))
    width = len(columns)
    by_row: List[List[str]] = [["<td>"] * width for row in rows]
    for packed in cells.matrix.cells:
        by_row[packed[C_ROW]][packed[C_COLUMN]] = variant_td[packed[C_VARIANT]]
    blocks = []
    block: List[str] = []
    block_rows: List[int] = []

    def close() -> None:
        if block_rows:
            row_site = rows[block_rows[0]]["site"]
            all_ok = not any(index in failing_rows for index in block_rows)
            blocks.append('<div class="mc s%d%s" style="--k:%d"><table>%s<tbody>%s</tbody></table></div>'
                          % (site_index[row_site], " a" if all_ok else "", len(block_rows), colgroup, "".join(block)))
        del block[:], block_rows[:]

    for index, row in enumerate(rows):
        site = site_index[row["site"]]
        if index == 0 or rows[index - 1]["site"] != row["site"]:
            close()
            blocks.append('<div class="g s%d"><span>%s</span></div>' % (site, html_escape(site_names[site])))
        elif len(block_rows) >= HTML_BLOCK_ROWS:
            close()
        title = _lines("%s on %s" % (row["calling_ae_title"], row["source_host"]),
                       "site: %s, kind: %s" % (site_names[site], row["kind"] or "-"), row["description"])
        block.append('<tr class="s%d%s" data-r="%d"><th title="%s">%s <small>%s</small></th>%s</tr>'
                     % (site, "" if index in failing_rows else " a", index, _attribute(title),
                        html_escape(row["calling_ae_title"]), html_escape(row["source_host"]), "".join(by_row[index])))
        block_rows.append(index)
    close()
    # The row headers' width, in characters of the page's font (the title attribute has the full text).
    longest = max([len(row["calling_ae_title"]) + 1 + 0.85 * len(row["source_host"]) for row in rows] or [10])
    return {"html": "".join(head + blocks), "row_header_ch": int(min(48, max(12, longest + 3))),
            "columns": width}


def _markdown_matrix(cells: _Cells, max_columns: int) -> Optional[Dict[str, Any]]:
    rows, columns = cells.rows, cells.columns
    if not columns or len(columns) > max_columns:
        return None
    symbols: List[List[str]] = [[""] * len(columns) for row in rows]
    variant_symbols = [symbol(variant[V_OUTCOME]) for variant in cells.variants]
    for packed in cells.matrix.cells:
        symbols[packed[C_ROW]][packed[C_COLUMN]] = variant_symbols[packed[C_VARIANT]]
    groups: List[Dict[str, Any]] = []
    for index, row in enumerate(rows):
        if not groups or groups[-1]["site"] != row["site"]:
            groups.append({"site": row["site"], "label": row["site"] or "(no site)", "rows": []})
        groups[-1]["rows"].append({"ae_title": row["calling_ae_title"], "source_host": row["source_host"],
                                   "cells": symbols[index]})
    return {"columns": _column_labels(columns), "groups": groups}


def _probes(cells: _Cells) -> List[Dict[str, Any]]:
    """Rows echoed by a probe on their source's behalf, with the source addresses their checks used."""
    delegated = {index for index, row in enumerate(cells.rows) if row.get("echoed_from")}
    addresses: Dict[int, set] = {index: set() for index in delegated}
    if delegated:
        for packed in cells.matrix.cells:
            if packed[C_ROW] in delegated:
                address = cells.variants[packed[C_VARIANT]][V_SOURCE_ADDRESS]
                if address:
                    addresses[packed[C_ROW]].add(address)
    return [{"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"],
             "echoed_from": row["echoed_from"], "source_addresses": sorted(addresses[index])}
            for index, row in enumerate(cells.rows) if index in delegated]


def view_limit(name: str, value: Any) -> int:
    """A count limit of a view as an int; a digit string (what ``-e`` gives) is accepted.

    A negative limit would slice from the end of a list and silently drop its last entries.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AuditMatrixError("%s must be a whole number >= 0, got %r" % (name, clean_text(value, 60)))
    return value


def build_view(
    report: Any,
    view: str = "html",
    markdown_max_columns: Any = 30,
    failures_limit: Any = 200,
    console_limit: Any = 20,
) -> Dict[str, Any]:
    """What the ``html`` or ``md`` template, or the console (``summary``), shows of a report."""
    if view not in VIEWS:
        raise AuditMatrixError("view must be one of %s, got %r" % (", ".join(VIEWS), view))
    limits = [view_limit(name, value) for name, value in (
        ("markdown_max_columns", markdown_max_columns), ("failures_limit", failures_limit),
        ("console_limit", console_limit))]
    with paused_gc():
        return _build_view(load_report(report), view, *limits)


def _build_view(report: Mapping[str, Any], view: str, markdown_max_columns: int, failures_limit: int,
                console_limit: int) -> Dict[str, Any]:
    cells = _Cells(report)
    summary = report["summary"]
    data: Dict[str, Any] = {
        "title": report.get("title") or "DICOM echo audit",
        "generated_at": report.get("generated_at"),
        "started_at": report.get("started_at"),
        "only_peers": (report.get("scope") or {}).get("only_peers"),
        "partial_reasons": list(report.get("partial_reasons") or []),
        "summary": summary,
        "source_hosts_text": _source_hosts_text(report),
        "baseline_counts": _baseline_counts(report["baseline"]) if report.get("baseline") else None,
        "console": _console(report, cells, console_limit),
    }
    if view == "summary":
        return data
    legend = _legend(report)
    data.update({
        "legend": legend,
        "sites": [site or "(no site)" for site in report["sites"]],
        # What each site filter offers: the sites of its own axis, as (index in sites, name).
        "row_sites": _axis_sites(report, "rows"),
        "column_sites": _axis_sites(report, "columns"),
        "baseline": _baseline_view(report, failures_limit, view),
        "failures": [cells.failure(packed) for packed in cells.failures[:failures_limit]],
        "failures_total": len(cells.failures),
        "failures_heading": _not_ok_heading(summary),
        "probes": _probes(cells),
        "failures_hidden": max(0, len(cells.failures) - failures_limit),
    })
    if view == "html":
        data["data_json"] = _html_data(report, cells, legend)
        data["matrix"] = _html_matrix(report, cells, legend)
    else:
        data["matrix"] = _markdown_matrix(cells, markdown_max_columns)
        data["columns_total"] = len(report["columns"])
    return data


def _axis_sites(report: Mapping[str, Any], axis: str) -> List[List[Any]]:
    used = {entry["site"] for entry in report[axis]}
    return [[index, site or "(no site)"] for index, site in enumerate(report["sites"]) if site in used]


def _source_hosts_text(report: Mapping[str, Any]) -> str:
    """How many source hosts the report covers: every host of the run has a row, checks or not."""
    in_scope = len((report.get("scope") or {}).get("source_hosts") or [])
    with_checks = report["summary"].get("source_hosts", 0)
    hosts = max(in_scope, with_checks)
    text = "%d source host(s)" % hosts
    return text if hosts == with_checks else "%s, %d of them with no check" % (text, hosts - with_checks)


def _json_text(report: Mapping[str, Any]) -> str:
    """The report with one cell per line: greppable and diffable, half the size of indenting every cell."""
    head = {key: value for key, value in report.items() if key != "cells" and key not in _PACKED_KEYS}
    text = json.dumps(head, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    # One encoder for every cell: json.dumps with options builds a new one per call.
    encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                              check_circular=False).encode
    source = matrix_of(report).dicts() if is_packed(report) else report["cells"]
    cells = ",\n".join("  " + encode(cell) for cell in source)
    return "%s,\n \"cells\": [\n%s\n ]\n}\n" % (text[:-2], cells) if cells else "%s,\n \"cells\": []\n}\n" % text[:-2]


def _csv_text(report: Mapping[str, Any]) -> str:
    cells = _Cells(report)
    buffer = io.StringIO()
    # One writer for every record, as csv_row would write each; the parts of a record that come from
    # its row, column or variant are made formula-safe once.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_field(value) for value in CSV_HEADER])
    rows = [[csv_field(row[key]) for key in ("source_host", "calling_ae_title", "site")] for row in cells.rows]
    probes = [csv_field(row.get("echoed_from") or None) for row in cells.rows]
    columns = [[csv_field(column[key]) for key in ("name", "ae_title", "site", "host", "port")]
               for column in cells.columns]
    variants = [([csv_field(variant[key]) for key in (V_EXPECT, V_OUTCOME, V_OK, V_MESSAGE, V_PHASE, V_STATUS)],
                 csv_field(variant[V_VERSION]),
                 [csv_field(variant[V_NOT_RUN_REASON]), csv_field(variant[V_SOURCE_ADDRESS])])
                for variant in cells.variants]
    writerow = writer.writerow
    for packed in cells.matrix.cells:
        row = packed[C_ROW]
        first, version, last = variants[packed[C_VARIANT]]
        writerow(rows[row] + columns[packed[C_COLUMN]] + first + [csv_field(value) for value in rtt_values(packed[C_RTT])]
                 + [version, csv_field(packed[C_STARTED_AT])] + last + [probes[row]])
    return buffer.getvalue()


def _xml_text(text: str) -> str:
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if char in text:
            text = text.replace(char, entity)
    return text


def _xml_attribute(text: str) -> str:
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\r", "&#13;"),
                         ("\n", "&#10;"), ("\t", "&#09;")):
        if char in text:
            text = text.replace(char, entity)
    return text


def _xml_tag(name: str, attributes: Sequence[Tuple[str, str]]) -> str:
    return "<%s%s" % (name, "".join(' %s="%s"' % (key, _xml_attribute(value)) for key, value in attributes))


_TOTAL = TIMING_KEYS.index("total")


def _case_seconds(packed: Sequence[Any]) -> float:
    """A test case's time in seconds: the check's total time (``timings_ms.total``), whether it passed or
    failed; the average echo round trip where a cell has no total, else 0 (a check that did not run)."""
    timings = packed[C_TIMINGS]
    total = timings[_TOTAL] if timings else None
    if total is None or total is False:
        total = rtt_values(packed[C_RTT])[1]
    return (total or 0) / 1000.0


def _junit_text(report: Mapping[str, Any]) -> str:
    """One test suite per calling AE, one test case per cell: failure when not as expected, error when not run.

    Written as ElementTree writes the same tree indented with one space (what it did before),
    in a fraction of its time: tests/unit compares both on hostile text.
    """
    cells = _Cells(report)
    summary = report["summary"]
    stamp = report.get("generated_at") or ""
    by_row: List[List[Sequence[Any]]] = [[] for row in cells.rows]
    for packed in cells.matrix.cells:
        by_row[packed[C_ROW]].append(packed)
    # The failure or error element of each variant, and its case name's tail, are the same for every cell.
    problems: List[Optional[str]] = []
    for variant in cells.variants:
        if variant[V_OK]:
            problems.append(None)
            continue
        outcome, expect, message = variant[V_OUTCOME], variant[V_EXPECT], variant[V_MESSAGE]
        problems.append((outcome, expect, message))
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', _xml_tag("testsuites", (
        ("name", report.get("title") or "DICOM echo audit"), ("tests", str(summary["total"])),
        ("failures", str(summary["failed"])), ("errors", str(summary["not_run"])), ("timestamp", stamp)))]
    if not cells.rows:
        out.append(" />\n")
        return "".join(out)
    out.append(">")
    for index, row in enumerate(cells.rows):
        row_cells = by_row[index]
        seconds = [_case_seconds(packed) for packed in row_cells]
        failures = sum(1 for packed in row_cells if not cells.variants[packed[C_VARIANT]][V_OK]
                       and cells.variants[packed[C_VARIANT]][V_OUTCOME] != NOT_RUN)
        errors = sum(1 for packed in row_cells if cells.variants[packed[C_VARIANT]][V_OUTCOME] == NOT_RUN)
        out.append("\n ")
        out.append(_xml_tag("testsuite", (
            ("name", "%s as %s" % (row["source_host"], row["calling_ae_title"])), ("hostname", row["source_host"]),
            ("tests", str(len(row_cells))), ("failures", str(failures)), ("errors", str(errors)), ("skipped", "0"),
            ("time", "%.6f" % sum(seconds)), ("timestamp", stamp))))
        if not row_cells:
            out.append(" />")
            continue
        out.append(">")
        classname = _xml_attribute("dicom.echo.%s.%s" % (row["source_host"], row["calling_ae_title"]))
        for packed, time_s in zip(row_cells, seconds):
            column, variant = cells.columns[packed[C_COLUMN]], cells.variants[packed[C_VARIANT]]
            out.append('\n  <testcase classname="%s" name="%s" time="%.6f"' % (
                classname, _xml_attribute("%s -> %s (%s) expect %s" % (
                    row["calling_ae_title"], column["ae_title"], column["name"], variant[V_EXPECT])), time_s))
            problem = problems[packed[C_VARIANT]]
            if problem is None:
                out.append(" />")
                continue
            outcome, expect, message = problem
            rtt = rtt_values(packed[C_RTT]) if packed[C_RTT] else None
            text = "\n".join(line for line in (
                "outcome: %s" % outcome, "expect: %s" % expect, "message: %s" % message,
                "phase: %s" % variant[V_PHASE] if variant[V_PHASE] else "",
                "status: 0x%04X" % variant[V_STATUS] if variant[V_STATUS] is not None else "",
                "rtt: %s" % _rtt_text(dict(zip(("min", "avg", "max"), rtt))) if rtt else "",
                "peer implementation: %s" % variant[V_VERSION] if variant[V_VERSION] else "",
                "peer: %s:%s" % (column["host"], column["port"]),
            ) if line)
            out.append(">\n   %s>%s</%s>\n  </testcase>" % (
                _xml_tag("error" if outcome == NOT_RUN else "failure", (
                    ("type", outcome), ("message", "%s, expected %s: %s" % (outcome, expect, message)))),
                _xml_text(text), "error" if outcome == NOT_RUN else "failure"))
        out.append("\n </testsuite>")
    out.append("\n</testsuites>\n")
    return "".join(out)


def export(report: Any, fmt: str) -> str:
    """The report as ``json`` (one cell per line), ``csv`` (one row per cell) or ``junit`` XML text."""
    if fmt not in EXPORTS:
        raise AuditMatrixError("format must be one of %s, got %r" % (", ".join(EXPORTS), fmt))
    with paused_gc():
        return {"json": _json_text, "csv": _csv_text, "junit": _junit_text}[fmt](load_report(report))


def render_reports(report: Any, formats: Sequence[str], templates_dir: str, markdown_max_columns: int = 30,
                   failures_limit: int = 200) -> Dict[str, str]:
    """Every format's text (temporary: through the role's current templates)."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir), keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["dicom.network.echo_matrix_view"] = lambda value, view, **options: build_view(value, view, **options)
    env.filters["dicom.network.md_escape"] = markdown_escape
    context = {"_echo_audit_collected": {"report": report}, "echo_audit_markdown_max_columns": markdown_max_columns,
               "echo_audit_report_max_failures": failures_limit}
    texts = {}
    for fmt in formats:
        if fmt in ("html", "md"):
            texts[fmt] = env.get_template("report.%s.j2" % fmt).render(context)
        else:
            texts[fmt] = export(report, fmt)
    return texts
