# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The echo audit's reports: one report of :mod:`audit_matrix` rendered as JSON, HTML, Markdown,
CSV and JUnit XML, and the console summary.

Pure functions, free of Ansible (jinja2 and markupsafe are ansible-core's own requirements).

* :func:`render_reports` renders the formats asked for. HTML and Markdown are made of *sections*
  (summary, legend, baseline diff, probes, failures, services refused, matrix): each is built by one function of
  ``SECTIONS`` into plain data, and each template (``report.html.j2``, ``report.md.j2`` of the
  role) presents it in one ``{% block %}``: loops and escaping only, autoescape for HTML and
  :func:`markdown_escape` (the templates' ``md_escape`` filter) for Markdown. A new section is one builder
  here and one block per template.
* The machine formats are one document each, written with their format's library: ``json``,
  ``csv`` (every field made formula-safe by :func:`csv_field`), ``xml.sax.saxutils``.
* :func:`build_view` gives the console summary.

Everything works on the packed matrix: a cell's texts come from its row, its column and its
variant (one of the few hundred distinct answers of a 300 x 300 matrix), each escaped or encoded
once; per cell only indexes and numbers are handled.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import namedtuple
from collections.abc import Mapping
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape as xml_escape

import jinja2
from jinja2.utils import htmlsafe_json_dumps

from ansible_collections.dicom.network.plugins.plugin_utils.audit_archive import API_TYPES, api_label, difference_text
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    C_COLUMN,
    C_ROW,
    C_RTT,
    C_STARTED_AT,
    C_TIMINGS,
    C_VARIANT,
    DIFF_KINDS,
    NOT_RUN,
    RTT_KEYS,
    S_ACCEPTED,
    S_REQUIRED,
    S_RESULT,
    S_SOP_CLASS,
    S_TRANSFER_SYNTAX,
    S_UID,
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
    parse_report,
    paused_gc,
    refused,
    rtt_values,
    unpack_numbers,
    variant_attempts,
    variant_certificate,
    variant_services,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import run_label
from ansible_collections.dicom.network.plugins.plugin_utils.audit_metrics import render_metrics
from ansible_collections.dicom.network.plugins.plugin_utils.audit_standin import standin_lines
from ansible_collections.dicom.network.plugins.plugin_utils.audit_tls import expiry_line

# One symbol per outcome, so a cell reads without colour; every symbol is in common system fonts
# (DejaVu, Segoe UI Symbol, Arial Unicode).
SYMBOLS = {
    "success": "\u2713",           # check mark
    "rejected": "\u2298",          # circled division slash
    "context_rejected": "\u25D0",  # circle with left half black
    "service_rejected": "\u25D1",  # circle with right half black: echo answered, a required service refused
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
    "service_rejected": "echo answered, but a required service was refused",
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
    "services_refused", "services", "tls_days_left", "attempts", "changes",
)
# A service's result where it was never negotiated (the association did not get that far).
NOT_NEGOTIATED = "not-negotiated"
# Discovered services named in a cell's details; the JSON report has them all.
MAX_DISCOVERED_NAMES = 20
# Every format, with the extension of its files (the report step writes them, publishing copies them).
EXTENSIONS = {"json": "json", "html": "html", "md": "md", "csv": "csv", "junit": "junit.xml", "prom": "prom"}
FORMATS = tuple(EXTENSIONS)
# The formats a template of the role presents; the others are written here.
TEMPLATES = {"html": "report.html.j2", "md": "report.md.j2"}
_EXPECTS = ("accept", "reject", "blocked")
_PHASES = ("resolve", "connect", "tls", "associate", "echo", "release")
# Characters a spreadsheet reads as the start of a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
# Characters with inline meaning in CommonMark/GFM; block syntax never starts mid-line in our reports.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
# Rows of the HTML matrix per block: a browser lays out and paints only the blocks on screen.
HTML_BLOCK_ROWS = 20
# Characters XML 1.0 forbids even as references; a hand-edited report may hold them (built ones cannot).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# What ElementTree escapes in an attribute besides & < > (what the JUnit report always wrote).
_XML_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
_DEFAULT_TITLE = "DICOM echo audit"


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


def symbol(outcome: str) -> str:
    return SYMBOLS.get(outcome, UNKNOWN_SYMBOL)


def view_limit(name: str, value: Any) -> int:
    """A count limit as an int; a digit string (what ``-e`` gives) is accepted.

    A negative limit would slice from the end of a list and silently drop its last entries.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AuditMatrixError("%s must be a whole number >= 0, got %r" % (name, clean_text(value, 60)))
    return value


_REPORT_KEYS = ("schema_version", "rows", "columns", "summary")
_PACKED_KEYS = ("packing", "variants", "packed_cells")


def load_report(report: Any) -> Mapping[str, Any]:
    """A report of :func:`audit_matrix.build_report` or :func:`audit_matrix.build_packed`, given as itself or
    as its JSON text."""
    if isinstance(report, (str, bytes)):
        report = parse_report(report, "report")
    if not isinstance(report, Mapping) or any(key not in report for key in _REPORT_KEYS) \
            or ("cells" not in report and "packed_cells" not in report):
        raise AuditMatrixError("not a report of the dicom.network.echo_audit role (it needs %s)"
                               % ", ".join(_REPORT_KEYS[:3] + ("cells",) + _REPORT_KEYS[3:]))
    return report


# ---------------------------------------------------------------------------------------------- the report


class _Report:
    """A report, its packed matrix and what several sections and formats need from it, computed once."""

    def __init__(self, report: Mapping[str, Any], failures_limit: int = 200, markdown_max_columns: int = 30,
                 html: bool = False) -> None:
        self.report = report
        self.failures_limit, self.markdown_max_columns, self.html = failures_limit, markdown_max_columns, html
        try:
            self.matrix: Matrix = matrix_of(report)
        except (KeyError, IndexError) as error:
            raise AuditMatrixError("not a report of the dicom.network.echo_audit role (a cell names no row or column: %s)"
                                   % error) from None
        self.rows, self.columns, self.variants = self.matrix.rows, self.matrix.columns, self.matrix.variants
        bad = {index for index, variant in enumerate(self.variants) if not variant[V_OK]}
        self.failures = [packed for packed in self.matrix.cells if packed[C_VARIANT] in bad]
        self.title = report.get("title") or _DEFAULT_TITLE
        self.sites = list(report["sites"])
        self.site_index = {site: index for index, site in enumerate(self.sites)}
        self.site_names = [site or "(no site)" for site in self.sites]
        counts = report["summary"]["by_outcome"]
        self.legend = [{"outcome": outcome, "symbol": symbol(outcome), "label": LABELS.get(outcome, outcome),
                        "css": "o%d" % index, "index": index, "count": counts.get(outcome, 0)}
                       for index, outcome in enumerate(outcome_order(list(counts) + list(SYMBOLS)))]
        self.outcome_index = {entry["outcome"]: entry["index"] for entry in self.legend}
        # Per variant: its services, and the required ones it refused (a few hundred variants, not 90,000 cells).
        self.services = [variant_services(variant) for variant in self.variants]
        self.refused = [[service for service in services if service[S_REQUIRED] and refused(service)]
                        for services in self.services]

    def failure(self, packed: Sequence[Any]) -> Dict[str, Any]:
        row, column, variant = self.rows[packed[C_ROW]], self.columns[packed[C_COLUMN]], self.variants[packed[C_VARIANT]]
        return {"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"], "peer": column["name"],
                "called_ae_title": column["ae_title"], "outcome": variant[V_OUTCOME], "expect": variant[V_EXPECT],
                "message": variant[V_MESSAGE]}


# ---------------------------------------------------------------------------------------------- services


def _service_result(service: Sequence[Any]) -> str:
    return service[S_RESULT] or NOT_NEGOTIATED


def _services_detail(services: Sequence[Sequence[Any]]) -> Optional[str]:
    """A cell's services as its details show them: each required one, then what discovery found."""
    if not services:
        return None
    lines = ["services:"]
    for service in services:
        if service[S_REQUIRED]:
            state = "ok" if service[S_ACCEPTED] else "REFUSED" if refused(service) else "-"
            lines.append("  %s %s: %s%s" % (state, service[S_SOP_CLASS], _service_result(service),
                                            " (%s)" % service[S_TRANSFER_SYNTAX] if service[S_TRANSFER_SYNTAX] else ""))
    discovered = [service for service in services if not service[S_REQUIRED]]
    if discovered:
        accepted = [service[S_SOP_CLASS] for service in discovered if service[S_ACCEPTED]]
        names = ", ".join(accepted[:MAX_DISCOVERED_NAMES]) + (
            ", and %d more" % (len(accepted) - MAX_DISCOVERED_NAMES) if len(accepted) > MAX_DISCOVERED_NAMES else "")
        lines.append("  discovered: %d of %d accepted%s" % (len(accepted), len(discovered), ": " + names if names else ""))
    return "\n".join(lines)


def _services_csv(services: Sequence[Sequence[Any]]) -> List[str]:
    """The CSV's ``services_refused`` (required services refused) and ``services`` (each as name=result)."""
    return [";".join(service[S_SOP_CLASS] for service in services if service[S_REQUIRED] and refused(service)),
            ";".join("%s=%s%s" % (service[S_SOP_CLASS], _service_result(service),
                                  "" if service[S_REQUIRED] else " (discovered)") for service in services)]


# ---------------------------------------------------------------------------------------------- sections


def _summary_section(ctx: _Report) -> Dict[str, Any]:
    report = ctx.report
    label = run_label(report.get("run"), name_parts=True)
    return {
        "title": ctx.title,
        "generated_at": report.get("generated_at"),
        "started_at": report.get("started_at"),
        "only_peers": (report.get("scope") or {}).get("only_peers"),
        "partial_reasons": list(report.get("partial_reasons") or []),
        "counts": report["summary"],
        "source_hosts_text": _source_hosts_text(report),
        "run_text": "Run %s" % label if label else None,
        "baseline_counts": _baseline_counts(report["baseline"]) if report.get("baseline") else None,
    }


def _source_hosts_text(report: Mapping[str, Any]) -> str:
    """How many source hosts the report covers: every host of the run has a row, checks or not."""
    in_scope = len((report.get("scope") or {}).get("source_hosts") or [])
    with_checks = report["summary"].get("source_hosts", 0)
    hosts = max(in_scope, with_checks)
    text = "%d source host(s)" % hosts
    return text if hosts == with_checks else "%s, %d of them with no check" % (text, hosts - with_checks)


def _legend_section(ctx: _Report) -> List[Dict[str, Any]]:
    """Every outcome with its symbol, label, CSS class and count (zero for those no cell has)."""
    return ctx.legend


def _baseline_counts(baseline: Mapping[str, Any]) -> Dict[str, int]:
    """The baseline's counts with ``new_failures``, computed from its lists for a report written before it existed."""
    counts = dict(baseline["counts"])
    if "new_failures" not in counts:
        counts["new_failures"] = new_failures(baseline)
    return counts


def _counts_text(counts: Mapping[str, int]) -> str:
    return "%s; %d new failure(s)%s" % (", ".join("%d %s" % (counts[kind], kind) for kind in DIFF_KINDS),
                                        counts["new_failures"],
                                        "; %d peer change(s)" % counts["peer_changes"] if counts.get("peer_changes") else "")


def _other_audit(report: Mapping[str, Any]) -> str:
    """A note when the baseline is a report of an audit with another title (a wrong path, most likely)."""
    theirs = (report.get("baseline") or {}).get("title")
    ours = report.get("title") or _DEFAULT_TITLE
    if not theirs or theirs == ours:
        return ""
    return "; note: the baseline is a report of another audit, titled '%s'" % theirs


def _side_text(side: Optional[Mapping[str, Any]], other: Optional[Mapping[str, Any]]) -> str:
    if not side:
        return "absent"
    notes = []
    # The expectation only where it differs from the other side's: "rejected => rejected (not ok)" alone
    # would not say that the inventory, not the network, changed. A side of an older report may lack it.
    if other and side.get("expect") and other.get("expect") and side["expect"] != other["expect"]:
        notes.append("expect %s" % side["expect"])
    if not side["ok"]:
        notes.append("not ok")
    return "%s%s" % (side["outcome"], " (%s)" % ", ".join(notes) if notes else "")


def _pair(pair: Mapping[str, Any]) -> Dict[str, str]:
    """A baseline pair as texts; the formats put their own arrows between them (Markdown would escape ours)."""
    before, after = pair["before"], pair["after"]
    # The services that changed, said after the outcome (the outcome may be the same on both sides).
    changes = "; ".join(["%s: %s" % (label, ", ".join(pair[key])) for key, label in (
        ("services_broke", "refused now"), ("services_fixed", "accepted now")) if pair.get(key)]
        + list(pair.get("changes") or ()))
    return {"source_host": pair["source_host"], "calling_ae_title": pair["calling_ae_title"],
            "called_ae_title": pair["called_ae_title"], "peer": pair["peer"],
            "before": _side_text(before, after),
            "after": _side_text(after, before) + (" [%s]" % changes if changes else "")}


def _pair_line(pair: Mapping[str, Any]) -> str:
    return "%(source_host)s as %(calling_ae_title)s -> %(called_ae_title)s (%(peer)s): %(before)s => %(after)s" \
        % _pair(pair)


def _baseline_section(ctx: _Report) -> Optional[Dict[str, Any]]:
    baseline, limit = ctx.report.get("baseline"), ctx.failures_limit
    if not baseline:
        return None
    counts = _baseline_counts(baseline)
    return {"source": baseline["source"], "generated_at": baseline.get("generated_at") or "undated",
            "scope": baseline["scope"], "counts": counts,
            "counts_text": _counts_text(counts) + _other_audit(ctx.report), "kinds": [
                {"kind": kind, "heading": "%s (%d)" % (kind.capitalize(), counts[kind]), "open": kind == "broke",
                 "pairs": [_pair(pair) for pair in baseline[kind][:limit]], "hidden": max(0, counts[kind] - limit)}
                for kind in DIFF_KINDS if counts[kind]]}


def _standin_section(ctx: _Report) -> Optional[Dict[str, Any]]:
    """A go-live check's view of both sides of each call to the new device (audit_standin.standin_section)."""
    return ctx.report.get("standin")


def _probes_section(ctx: _Report) -> List[Dict[str, Any]]:
    """Rows echoed by a probe on their source's behalf, with the source addresses their checks used."""
    delegated = {index for index, row in enumerate(ctx.rows) if row.get("echoed_from")}
    addresses: Dict[int, set] = {index: set() for index in delegated}
    if delegated:
        for packed in ctx.matrix.cells:
            if packed[C_ROW] in delegated:
                address = ctx.variants[packed[C_VARIANT]][V_SOURCE_ADDRESS]
                if address:
                    addresses[packed[C_ROW]].add(address)
    return [{"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"],
             "echoed_from": row["echoed_from"], "source_addresses": ", ".join(sorted(addresses[index]))}
            for index, row in enumerate(ctx.rows) if index in delegated]


def _failures_section(ctx: _Report) -> Dict[str, Any]:
    """The cells that are not ok (the first ``failures_limit``), in the words of the summary's counts."""
    summary, total, limit = ctx.report["summary"], len(ctx.failures), ctx.failures_limit
    count = summary["failed"] + summary["not_run"]
    heading = "Not ok (%d): %d not as expected, %d not run" % (count, summary["failed"], summary["not_run"]) \
        if count else "Not ok (0)"
    return {"heading": heading, "total": total, "open": 0 < total <= 50,
            "cells": [ctx.failure(packed) for packed in ctx.failures[:limit]], "hidden": max(0, total - limit)}


def _services_section(ctx: _Report) -> Dict[str, Any]:
    """Every required service a peer refused, one line per cell and service (the first ``failures_limit``).

    A refused required service makes its cell not ok, so only the cells that are not ok are read.
    """
    lines: List[Dict[str, Any]] = []
    total = 0
    for packed in ctx.failures:
        services = ctx.refused[packed[C_VARIANT]]
        if not services:
            continue
        total += len(services)
        if len(lines) < ctx.failures_limit:
            row, column = ctx.rows[packed[C_ROW]], ctx.columns[packed[C_COLUMN]]
            lines.extend({"source_host": row["source_host"], "calling_ae_title": row["calling_ae_title"],
                          "called_ae_title": column["ae_title"], "peer": column["name"],
                          "service": service[S_SOP_CLASS], "uid": service[S_UID] or "",
                          "result": _service_result(service)} for service in services)
    lines = lines[:ctx.failures_limit]
    return {"heading": "Services refused (%d)" % total, "total": total, "lines": lines,
            "hidden": total - len(lines)}


# A matrix cell as the formats show it: the CSS classes of its outcome (and "x" when not ok), its symbol,
# and whether it is ok (Markdown marks the cells that are not).
MatrixCell = namedtuple("MatrixCell", "css symbol ok")


def _column_labels(columns: Sequence[Mapping[str, Any]]) -> List[str]:
    titles: Dict[str, int] = {}
    for column in columns:
        titles[column["ae_title"]] = titles.get(column["ae_title"], 0) + 1
    # One AE title on two ports (or hosts) needs the registry name to tell the columns apart.
    return [column["ae_title"] if titles[column["ae_title"]] == 1 else "%s (%s)" % (column["ae_title"], column["id"])
            for column in columns]


def _lines(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def _matrix_section(ctx: _Report) -> Dict[str, Any]:
    """The matrix by site: groups of rows of one calling site, in blocks of at most HTML_BLOCK_ROWS rows (the
    page lays out only the blocks on screen), each row with one :class:`MatrixCell` or None per column.

    Also what the page's filters act on (each column's site and whether it has a problem, the sites of each
    axis) and, for HTML, every cell's details as one script-safe JSON text that the page's script reads
    on the first hover or click: the cells' markup stays small.
    """
    rows, columns, site_index, site_names = ctx.rows, ctx.columns, ctx.site_index, ctx.site_names
    failing_rows = {packed[C_ROW] for packed in ctx.failures}
    failing_columns = {packed[C_COLUMN] for packed in ctx.failures}
    labels = _column_labels(columns)
    column_views = []
    for index, (label, column) in enumerate(zip(labels, columns)):
        site = site_index[column["site"]]
        column_views.append({
            "label": label, "site": site, "failing": index in failing_columns,
            "site_start": index == 0 or site_index[columns[index - 1]["site"]] != site,
            "title": _lines("%s (%s) %s:%s" % (label, column["name"], column["host"], column["port"]),
                            "site: %s, kind: %s" % (site_names[site], column["kind"] or "-"), column["description"])})
    # Every cell of one variant shows the same: one shared MatrixCell per variant.
    by_variant = [MatrixCell("o%d%s" % (ctx.outcome_index[variant[V_OUTCOME]], "" if variant[V_OK] else " x"),
                             symbol(variant[V_OUTCOME]), variant[V_OK]) for variant in ctx.variants]
    cells: List[List[Optional[MatrixCell]]] = [[None] * len(columns) for row in rows]
    for packed in ctx.matrix.cells:
        cells[packed[C_ROW]][packed[C_COLUMN]] = by_variant[packed[C_VARIANT]]
    groups: List[Dict[str, Any]] = []
    for index, row in enumerate(rows):
        site = site_index[row["site"]]
        if not groups or groups[-1]["site"] != site:
            groups.append({"site": site, "label": site_names[site], "blocks": []})
        blocks = groups[-1]["blocks"]
        if not blocks or len(blocks[-1]["rows"]) >= HTML_BLOCK_ROWS:
            blocks.append({"rows": [], "all_ok": True})
        ok = index not in failing_rows
        blocks[-1]["all_ok"] = blocks[-1]["all_ok"] and ok
        via = api_label(row.get("echoed_from"))
        blocks[-1]["rows"].append({
            "index": index, "site": site, "ok": ok, "ae_title": row["calling_ae_title"],
            "source_host": row["source_host"] + (" via %s" % via if via else ""), "cells": cells[index],
            "title": _lines("%s on %s" % (row["calling_ae_title"], row["source_host"]),
                            "site: %s, kind: %s" % (site_names[site], row["kind"] or "-"), row["description"])})
    # The row headers' width, in characters of the page's font (the title attribute has the full text).
    longest = max([len(row["calling_ae_title"]) + 1 + 0.85 * len(row["source_host"]) for row in rows] or [10])
    return {
        "columns": column_views, "groups": groups, "row_header_ch": int(min(48, max(12, longest + 3))),
        "sites": site_names, "row_sites": _axis_sites(ctx, rows), "column_sites": _axis_sites(ctx, columns),
        "fits_markdown": 0 < len(columns) <= ctx.markdown_max_columns,
        "markdown_max_columns": ctx.markdown_max_columns,
        "data_json": _html_data(ctx, labels, sorted(failing_rows), sorted(failing_columns)) if ctx.html else None,
    }


def _axis_sites(ctx: _Report, axis: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """What a site filter offers: the sites of its own axis."""
    used = {entry["site"] for entry in axis}
    return [{"index": index, "name": ctx.site_names[index]} for index, site in enumerate(ctx.sites) if site in used]


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


def _html_data(ctx: _Report, labels: Sequence[str], failing_rows: List[int], failing_columns: List[int]) -> str:
    """Each cell's details for the page's script: rows, columns and, per row, compact cell arrays.

    A cell is ``[column, details]``, or ``[column, details, rtt]`` with a round trip: one number when
    min, avg and max are the same (one echo), else ``[min, avg, max]``. ``details`` indexes
    ``details``, whose entries are ``[outcome, ok, expect, message, implementation version, status,
    phase, not-run reason, services]`` (texts: indexes into ``strings``), one per distinct answer: the
    page has 90,000 cells but a few hundred answers.
    """
    strings = _Strings()
    details = [[ctx.outcome_index[variant[V_OUTCOME]], 1 if variant[V_OK] else 0,
                _EXPECTS.index(variant[V_EXPECT]) if variant[V_EXPECT] in _EXPECTS else -1,
                strings(variant[V_MESSAGE]), strings(variant[V_VERSION]), variant[V_STATUS],
                _PHASES.index(variant[V_PHASE]) if variant[V_PHASE] in _PHASES else -1,
                strings(variant[V_NOT_RUN_REASON]), strings(_services_detail(services))]
               for variant, services in zip(ctx.variants, ctx.services)]
    by_row: List[List[List[Any]]] = [[] for row in ctx.rows]
    for packed in ctx.matrix.cells:
        rtt = packed[C_RTT]
        if rtt is None:
            by_row[packed[C_ROW]].append([packed[C_COLUMN], packed[C_VARIANT]])
        else:
            by_row[packed[C_ROW]].append([packed[C_COLUMN], packed[C_VARIANT],
                                          rtt if isinstance(rtt, (int, float)) else rtt_values(rtt)])
    site_index = ctx.site_index
    return htmlsafe_json_dumps({
        "outcomes": [entry["outcome"] for entry in ctx.legend],
        "symbols": [entry["symbol"] for entry in ctx.legend],
        "expects": list(_EXPECTS),
        "phases": list(_PHASES),
        "sites": ctx.site_names,
        "rows": [[row["calling_ae_title"], row["source_host"], site_index[row["site"]], row["kind"],
                  row["description"]] for row in ctx.rows],
        "columns": [[label, column["name"], "%s:%s" % (column["host"], column["port"]), site_index[column["site"]],
                     column["kind"], column["description"]] for label, column in zip(labels, ctx.columns)],
        "failing_rows": failing_rows,
        "failing_columns": failing_columns,
        "strings": strings.values,
        "details": details,
        "cells": by_row,
    }, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


# The sections of the HTML and Markdown reports, in the order they are built; each template has a block
# of the same name.
def _certificates_section(ctx: _Report) -> Optional[Dict[str, Any]]:
    """The TLS certificates that expired or expire within the warning days (audit_tls), soonest first;
    None when the run saw none of those."""
    section = ctx.report.get("certificates")
    if not section:
        return None
    shown = [entry for entry in section["certificates"] if entry["state"] in ("expired", "fail", "warn")]
    if not shown:
        return None
    return {"warn_days": section["warn_days"], "fail_days": section["fail_days"], "total": len(shown),
            "lines": [dict(entry, when=("expired %d day(s) ago" % -entry["days_left"]) if entry["state"] == "expired"
                           else "%d day(s) left" % entry["days_left"]) for entry in shown[:ctx.failures_limit]],
            "hidden": max(0, len(shown) - ctx.failures_limit)}


def _archives_section(ctx: _Report) -> Optional[Dict[str, Any]]:
    """The "Archive configuration" section (audit_archive.archive_section): each archive echoed through its REST
    API, its modality table against the registry; None when the run has no such archive."""
    section = ctx.report.get("archive_configuration")
    if not section:
        return None
    archives = []
    for entry in section["archives"]:
        state = ("not read: %s" % entry["error"]) if entry["error"] else (
            "in sync with the registry" if entry["in_sync"] else "%d difference(s)" % len(entry["differences"]))
        archives.append(dict(entry, state=state, lines=[dict(difference, text=difference_text(difference))
                                                        for difference in entry["differences"][:ctx.failures_limit]],
                             hidden=max(0, len(entry["differences"]) - ctx.failures_limit)))
    return {"archives": archives, "drifted": section["drifted"]}


SECTIONS: Tuple[Tuple[str, Callable[[_Report], Any]], ...] = (
    ("summary", _summary_section),
    ("standin", _standin_section),
    ("legend", _legend_section),
    ("baseline", _baseline_section),
    ("probes", _probes_section),
    ("failures", _failures_section),
    ("services", _services_section),
    ("certificates", _certificates_section),
    ("archives", _archives_section),
    ("matrix", _matrix_section),
)


def _environment(templates_dir: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    environment.filters["md_escape"] = markdown_escape
    return environment


# ---------------------------------------------------------------------------------------------- the console


def _console(ctx: _Report, limit: int) -> List[str]:
    report = ctx.report
    summary, baseline = report["summary"], report.get("baseline")
    lines = ["%s: %d checks, %d ok, %d failed, %d not run%s" % (
        ctx.title, summary["total"], summary["ok"], summary["failed"], summary["not_run"],
        " (%s)" % ", ".join("%s %d" % item for item in summary["by_outcome"].items()) if summary["total"] else "")]
    regressions = baseline["broke"] if baseline else []
    if baseline:
        lines.append("against baseline %s (%s): %s%s" % (
            baseline["source"], baseline.get("generated_at") or "undated", _counts_text(_baseline_counts(baseline)),
            _other_audit(report)))
    if report.get("partial_reasons"):
        lines.append("PARTIAL report: %s" % "; ".join(report["partial_reasons"]))
    lines.extend(standin_lines(report.get("standin"), limit))
    lines.extend("REGRESSION %s" % _pair_line(pair) for pair in regressions[:limit])
    changed = [pair for kind in ("fixed", "changed") for pair in (baseline or {}).get(kind, ()) if pair.get("changes")]
    lines.extend("CHANGED %s" % _pair_line(pair) for pair in changed[:limit])
    certificates = (report.get("certificates") or {}).get("certificates") or []
    expiring = [entry for entry in certificates if entry["state"] in ("expired", "fail", "warn")]
    lines.extend("TLS %s %s" % ("EXPIRED" if entry["state"] == "expired" else "EXPIRES", expiry_line(entry))
                 for entry in expiring[:limit])
    drift = [(entry["source_host"], difference) for entry in (report.get("archive_configuration") or {}).get("archives", ())
             for difference in entry["differences"]]
    lines.extend("CONFIG DRIFT %s: %s" % (host, difference_text(difference)) for host, difference in drift[:limit])
    # Checks that did not run for one reason (a host unreachable, pynetdicom missing) are one line per
    # source and calling AE, not one per peer.
    shown: List[List[Any]] = []
    not_run: Dict[Tuple[str, str, str], List[Any]] = {}
    for packed in ctx.failures:
        cell = ctx.failure(packed)
        if cell["outcome"] == NOT_RUN:
            key = (cell["source_host"], cell["calling_ae_title"], cell["message"])
            if key not in not_run:
                not_run[key] = [cell, []]
                shown.append(not_run[key])
            not_run[key][1].append(cell["called_ae_title"])
        else:
            shown.append([cell, None])
    for cell, peers in shown[:limit]:
        if peers is None:
            lines.append("NOT OK %s as %s -> %s (%s): %s, expected %s: %s" % (
                cell["source_host"], cell["calling_ae_title"], cell["called_ae_title"], cell["peer"],
                cell["outcome"], cell["expect"], cell["message"]))
        else:
            named = ", ".join(peers[:5]) + (", ..." if len(peers) > 5 else "")
            lines.append("NOT RUN %s as %s -> %s: %s" % (
                cell["source_host"], cell["calling_ae_title"],
                peers[0] if len(peers) == 1 else "%d peers (%s)" % (len(peers), named), cell["message"]))
    hidden = max(0, len(shown) - limit) + max(0, len(regressions) - limit) + max(0, len(changed) - limit) \
        + max(0, len(expiring) - limit) + max(0, len(drift) - limit)
    if hidden:
        lines.append("... %d more line(s) in the reports" % hidden)
    return lines


def build_view(report: Any, view: str = "summary", console_limit: Any = 20) -> Dict[str, Any]:
    """The console summary of a report: its summary section (``summary`` holds the counts) and ``console``,
    the lines to show (at most ``console_limit`` regressions and ``console_limit`` cells that are not ok)."""
    if view != "summary":
        raise AuditMatrixError("view must be summary, got %r" % (view,))
    limit = view_limit("console_limit", console_limit)
    with paused_gc():
        ctx = _Report(load_report(report))
        section = _summary_section(ctx)
        return {"title": section["title"], "generated_at": section["generated_at"],
                "started_at": section["started_at"], "only_peers": section["only_peers"],
                "partial_reasons": section["partial_reasons"], "summary": section["counts"],
                "source_hosts_text": section["source_hosts_text"], "baseline_counts": section["baseline_counts"],
                "console": _console(ctx, limit)}


# ---------------------------------------------------------------------------------------------- JSON


_JSON_CELL_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                      check_circular=False)
# Where each key of a cell (audit_matrix.Matrix.cell) comes from: its row, its column, the cell itself
# (_OWN_KEYS); every other key from its variant. tests/unit compares the JSON of both report forms.
_CELL_KEYS_FROM = {"row": "r", "source_host": "r", "calling_ae_title": "r", "calling_site": "r",
                   "column": "c", "peer": "c", "called_ae_title": "c", "called_site": "c", "peer_host": "c",
                   "peer_port": "c", "rtt_ms": "x", "timings_ms": "x", "started_at": "x"}


def _json_text(ctx: _Report) -> str:
    """The report with one cell per line: greppable and diffable, half the size of indenting every cell."""
    report = ctx.report
    head = {key: value for key, value in report.items() if key != "cells" and key not in _PACKED_KEYS}
    text = json.dumps(head, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    lines = list(map(_JSON_CELL_ENCODER.encode, report["cells"]) if not is_packed(report) else _json_cells(ctx.matrix))
    if not lines:
        return "%s,\n \"cells\": []\n}\n" % text[:-2]
    # One join makes the whole text: each copy of it costs 0.05 s at 300 x 300 (77 MB).
    lines[0] = "%s,\n \"cells\": [\n  %s" % (text[:-2], lines[0])
    lines[-1] += "\n ]\n}\n"
    return ",\n  ".join(lines)


def _json_cells(matrix: Matrix) -> Iterable[str]:
    """Each packed cell as the JSON of its dictionary (Matrix.cell, keys sorted), without building it.

    A cell's JSON is its variant's keys and values, encoded once per variant into a format string, with
    the encoded keys of its row, its column and its own numbers put in: at 300 x 300 about 0.5 s instead of
    the 1.5 s of building and encoding 90,000 dictionaries (same bytes; tests/unit compares them).
    """
    if not matrix.cells:
        return []
    keys = sorted(matrix.cell(matrix.cells[0]))
    # Runs of consecutive keys of one source; the variant's runs are text in its format, the others "%s".
    runs: List[Tuple[str, List[str]]] = []
    for key in keys:
        source = _CELL_KEYS_FROM.get(key, "v")
        if source == "x" or not runs or runs[-1][0] != source:
            runs.append((source, [key]))
        else:
            runs[-1][1].append(key)

    def encoded(run: Sequence[str], values: Mapping[str, Any]) -> str:
        return ",".join('"%s":%s' % (key, _JSON_CELL_ENCODER.encode(values[key])) for key in run)

    # A placeholder's value is taken from row parts + column parts + the cell's own parts (_OWN_KEYS order).
    row_runs = [run for source, run in runs if source == "r"]
    column_runs = [run for source, run in runs if source == "c"]
    placeholders = {"r": iter(range(len(row_runs))), "c": iter(range(len(row_runs), len(row_runs) + len(column_runs)))}
    pick = itemgetter(*[next(placeholders[source]) if source in placeholders
                        else len(row_runs) + len(column_runs) + _OWN_KEYS.index(run[0])
                        for source, run in runs if source != "v"])
    row_parts = [tuple(encoded(run, matrix.cell([row, 0, 0, None, None, None])) for run in row_runs)
                 for row in range(len(matrix.rows))]
    column_parts = [tuple(encoded(run, matrix.cell([0, column, 0, None, None, None])) for run in column_runs)
                    for column in range(len(matrix.columns))]
    formats = []
    for variant in range(len(matrix.variants)):
        values = matrix.cell([0, 0, variant, None, None, None])
        formats.append("{%s}" % ",".join(
            encoded(run, values).replace("%", "%%") if source == "v" else '"%s":%%s' % run[0] if source == "x"
            else "%s" for source, run in runs))
    rtt, timings, started = _json_numbers(RTT_KEYS), _json_numbers(TIMING_KEYS), _json_memo()
    return (formats[packed[C_VARIANT]] % pick(row_parts[packed[C_ROW]] + column_parts[packed[C_COLUMN]] + (
        rtt(packed[C_RTT]), timings(packed[C_TIMINGS]), started(packed[C_STARTED_AT]))) for packed in matrix.cells)


# A cell's own keys, in the order _json_cells puts their values after its row's and column's.
_OWN_KEYS = ("rtt_ms", "timings_ms", "started_at")


def _json_numbers(keys: Sequence[str]) -> Callable[[Any], str]:
    """The JSON of a packed rtt or timings as Matrix.cell unpacks it."""
    ordered = sorted(keys)
    template = "{%s}" % ",".join('"%s":%%r' % key for key in ordered)
    pick = itemgetter(*[keys.index(key) for key in ordered])
    memo: Dict[float, str] = {}

    def encode(packed: Any) -> str:
        if packed.__class__ is float:  # one echo: min, avg and max are one (non-zero) number
            text = memo.get(packed)
            if text is None:
                text = memo[packed] = _JSON_CELL_ENCODER.encode(unpack_numbers(packed, keys))
            return text
        # Every key there, each a number (a finite one: the matrix keeps no other): repr is how json writes it.
        # A zero is taken for False here, and written the slow way.
        if packed.__class__ is list and False not in packed and None not in packed:
            return template % pick(packed)
        return _JSON_CELL_ENCODER.encode(unpack_numbers(packed, keys))
    return encode


def _json_memo() -> Callable[[Any], str]:
    """The JSON of a text, encoded once per distinct text (every cell of a run starts within seconds)."""
    memo: Dict[str, str] = {}

    def encode(value: Any) -> str:
        if value.__class__ is not str:
            return _JSON_CELL_ENCODER.encode(value)
        text = memo.get(value)
        if text is None:
            text = memo[value] = _JSON_CELL_ENCODER.encode(value)
        return text
    return encode


# ---------------------------------------------------------------------------------------------- CSV


def _csv_fields(values: Sequence[Any]) -> str:
    """Formula-safe fields as the csv module writes them in a record, without the record's line end.

    Records are joined from these parts (a row's, a column's, a variant's), each written once: the csv
    module's quoting of a field does not depend on the fields around it.
    """
    fields = [csv_field(value) for value in values]
    if fields == [""]:
        return ""  # the writer would write one empty field as "", to tell the record from an empty line
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()[:-2]


def _csv_text(ctx: _Report) -> str:
    """One record per cell, with the columns of CSV_HEADER."""
    rows = [(_csv_fields([row[key] for key in ("source_host", "calling_ae_title", "site")]),
             _csv_fields([row.get("echoed_from") or None])) for row in ctx.rows]
    columns = [_csv_fields([column[key] for key in ("name", "ae_title", "site", "host", "port")])
               for column in ctx.columns]
    variants = [(_csv_fields([variant[key] for key in (V_EXPECT, V_OUTCOME, V_OK, V_MESSAGE, V_PHASE, V_STATUS)]),
                 _csv_fields([variant[V_VERSION]]), _csv_fields([variant[V_NOT_RUN_REASON], variant[V_SOURCE_ADDRESS]]),
                 _csv_fields(_services_csv(services) + [
                     (variant_certificate(variant) or {}).get("days_left"), variant_attempts(variant)]))
                for variant, services in zip(ctx.variants, ctx.services)]
    # What changed on the peer's side since the baseline (audit_matrix.peer_changes), by pair.
    changes = {(pair["source_host"], pair["calling_ae_title"], pair["peer"]): _csv_fields(["; ".join(pair["changes"])])
               for kind in DIFF_KINDS for pair in (ctx.report.get("baseline") or {}).get(kind, ()) if pair.get("changes")}
    rtts: Dict[Any, str] = {}
    started: Dict[Any, str] = {}
    lines = [_csv_fields(CSV_HEADER)]
    append = lines.append
    for packed in ctx.matrix.cells:
        row, probe = rows[packed[C_ROW]]
        first, version, last, services = variants[packed[C_VARIANT]]
        rtt = packed[C_RTT]
        # One echo per check (the default): rtt is one float, and the same value comes back often.
        rtt_text = rtts.get(rtt) if rtt.__class__ is float else None
        if rtt_text is None:
            rtt_text = _csv_fields(rtt_values(rtt))
            if rtt.__class__ is float:
                rtts[rtt] = rtt_text
        started_at = packed[C_STARTED_AT]
        started_text = started.get(started_at) if started_at.__class__ is str else None
        if started_text is None:
            started_text = _csv_fields([started_at])
            if started_at.__class__ is str:
                started[started_at] = started_text
        change = changes.get((ctx.rows[packed[C_ROW]]["source_host"], ctx.rows[packed[C_ROW]]["calling_ae_title"],
                              ctx.columns[packed[C_COLUMN]]["name"]), "") if changes else ""
        append("%s,%s,%s,%s,%s,%s,%s,%s,%s,%s" % (row, columns[packed[C_COLUMN]], first, rtt_text, version, started_text,
                                                  last, probe, services, change))
    lines.extend(_csv_drift_records(ctx))
    lines.append("")
    return "\r\n".join(lines)


def _csv_drift_records(ctx: _Report) -> List[str]:
    """The "Archive configuration" section as CSV records after the cells: outcome ``config_drift``, the archive's
    host and AE title as the row, the registry AE (or the unknown modality) as the peer, the difference as the
    message and the field in the phase column; expect and ok say that it is not a check."""
    records = []
    for entry in (ctx.report.get("archive_configuration") or {}).get("archives", ()):
        for difference in entry["differences"]:
            values: Dict[str, Any] = dict.fromkeys(CSV_HEADER)
            values.update(source_host=entry["source_host"], calling_ae_title=entry["ae_title"],
                          peer=difference["name"] or difference["modality"], outcome="config_drift", ok=False,
                          message=difference_text(difference), phase=difference["kind"],
                          echoed_from="%s at %s" % (API_TYPES.get(entry["type"], entry["type"]), entry["url"]))
            records.append(_csv_fields([values[key] for key in CSV_HEADER]))
    return records


# ---------------------------------------------------------------------------------------------- JUnit


def _xml_text(value: Any) -> str:
    """Character data: escaped, and the characters XML cannot hold at all replaced."""
    return xml_escape(_XML_INVALID.sub("\ufffd", "%s" % (value,)))


def _xml_attribute(value: Any) -> str:
    """An attribute value for double quotes, escaped as ElementTree escapes it."""
    return xml_escape(_XML_INVALID.sub("\ufffd", "%s" % (value,)), _XML_ATTRIBUTE_ENTITIES)


def _xml_tag(name: str, attributes: Sequence[Tuple[str, Any]]) -> str:
    """A start tag without its closing bracket (the caller adds ``>`` or `` />``)."""
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


def _rtt_text(rtt: Sequence[Any]) -> str:
    return "%s / %s / %s ms" % tuple("%g" % value if value is not None else "?" for value in rtt)


def _junit_services(ctx: _Report) -> List[Tuple[List[Sequence[Any]], int, int]]:
    """Per variant: its required services (one test case each), how many were refused (failures) and how
    many never negotiated (skipped: the cell's own case says why)."""
    counts = []
    for services, refusals in zip(ctx.services, ctx.refused):
        required = [service for service in services if service[S_REQUIRED]]
        counts.append((required, len(refusals), sum(1 for service in required if service[S_RESULT] is None)))
    return counts


def _junit_service_cases(case: str, name: str, required: Sequence[Sequence[Any]], column: Mapping[str, Any],
                         variant: Sequence[Any]) -> List[str]:
    """The test cases of a cell's required services: failure when refused, skipped when never negotiated."""
    out = []
    for service in required:
        out.append(case % (_xml_attribute("%s provides %s" % (name, service[S_SOP_CLASS])), 0.0))
        if service[S_ACCEPTED]:
            out.append(" />")
        elif service[S_RESULT] is None:
            out.append(">\n   %s />\n  </testcase>" % _xml_tag("skipped", (
                ("message", "not negotiated: %s: %s" % (variant[V_OUTCOME], variant[V_MESSAGE])),)))
        else:
            text = "\n".join(line for line in (
                "service: %s" % service[S_SOP_CLASS], "uid: %s" % service[S_UID] if service[S_UID] else "",
                "result: %s" % service[S_RESULT], "peer: %s:%s" % (column["host"], column["port"])) if line)
            out.append(">\n   %s>%s</failure>\n  </testcase>" % (_xml_tag("failure", (
                ("type", "service_refused"), ("message", "%s refused: %s" % (service[S_SOP_CLASS], service[S_RESULT])))),
                _xml_text(text)))
    return out


def _junit_text(ctx: _Report) -> str:
    """One test suite per calling AE, one test case per cell: failure when not as expected, error when not run;
    then one test case per required service of the cell: failure when refused, skipped when never negotiated.

    Written as ElementTree writes the same tree indented with one space (what it always was), in a fraction
    of its time: a failure element depends on the cell's variant and column, a case name on its row and
    column, and every text is escaped once.
    """
    report, rows, columns, variants = ctx.report, ctx.rows, ctx.columns, ctx.variants
    summary = report["summary"]
    stamp = report.get("generated_at") or ""
    by_row: List[List[Sequence[Any]]] = [[] for row in rows]
    uses = [0] * len(variants)
    for packed in ctx.matrix.cells:
        by_row[packed[C_ROW]].append(packed)
        uses[packed[C_VARIANT]] += 1
    services = _junit_services(ctx)
    # Test cases, failures and skipped cases of the services, over all cells.
    extra = [sum(uses[index] * len(entry[0]) for index, entry in enumerate(services)),
             sum(uses[index] * entry[1] for index, entry in enumerate(services)),
             sum(uses[index] * entry[2] for index, entry in enumerate(services))]
    standin = report.get("standin")
    standin_cases = (len(standin["callers"]) or 1, standin["counts"]["problems"]) if standin else (0, 0)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', _xml_tag("testsuites", (
        ("name", ctx.title), ("tests", summary["total"] + standin_cases[0] + extra[0]),
        ("failures", summary["failed"] + standin_cases[1] + extra[1]),
        ("errors", summary["not_run"]), ("timestamp", stamp)) + ((("skipped", extra[2]),) if extra[2] else ()))]
    if not rows:
        out.append(" />\n")
        return "".join(out)
    out.append(">")
    # A case's name is its row's, its column's and its expectation's part, each escaped once (escaping goes by
    # character): 0.1 s less per 90,000 cells.
    called = [_xml_attribute(" -> %s (%s)" % (column["ae_title"], column["name"])) for column in columns]
    expects = [_xml_attribute(" expect %s" % variant[V_EXPECT]) for variant in variants]
    for index, row in enumerate(rows):
        row_cells = by_row[index]
        seconds = [_case_seconds(packed) for packed in row_cells]
        failures = sum(1 for packed in row_cells if not variants[packed[C_VARIANT]][V_OK]
                       and variants[packed[C_VARIANT]][V_OUTCOME] != NOT_RUN)
        errors = sum(1 for packed in row_cells if variants[packed[C_VARIANT]][V_OUTCOME] == NOT_RUN)
        row_services = [services[packed[C_VARIANT]] for packed in row_cells]
        out.append("\n ")
        out.append(_xml_tag("testsuite", (
            ("name", "%s as %s" % (row["source_host"], row["calling_ae_title"])), ("hostname", row["source_host"]),
            ("tests", len(row_cells) + sum(len(entry[0]) for entry in row_services)),
            ("failures", failures + sum(entry[1] for entry in row_services)), ("errors", errors),
            ("skipped", sum(entry[2] for entry in row_services)),
            ("time", "%.6f" % sum(seconds)), ("timestamp", stamp))))
        if not row_cells:
            out.append(" />")
            continue
        out.append(">")
        case = '\n  <testcase classname="%s" name="%%s" time="%%.6f"' % _xml_attribute(
            "dicom.echo.%s.%s" % (row["source_host"], row["calling_ae_title"])).replace("%", "%%")
        calling = _xml_attribute(row["calling_ae_title"])
        for packed, time_s in zip(row_cells, seconds):
            column, variant = columns[packed[C_COLUMN]], variants[packed[C_VARIANT]]
            out.append(case % (calling + called[packed[C_COLUMN]] + expects[packed[C_VARIANT]], time_s))
            required = services[packed[C_VARIANT]][0]
            name = "%s -> %s (%s)" % (row["calling_ae_title"], column["ae_title"], column["name"]) if required else ""
            if variant[V_OK]:
                out.append(" />")
                if required:
                    out.extend(_junit_service_cases(case, name, required, column, variant))
                continue
            outcome, expect, message = variant[V_OUTCOME], variant[V_EXPECT], variant[V_MESSAGE]
            rtt = rtt_values(packed[C_RTT]) if packed[C_RTT] else None
            text = "\n".join(line for line in (
                "outcome: %s" % outcome, "expect: %s" % expect, "message: %s" % message,
                "phase: %s" % variant[V_PHASE] if variant[V_PHASE] else "",
                "status: 0x%04X" % variant[V_STATUS] if variant[V_STATUS] is not None else "",
                "rtt: %s" % _rtt_text(rtt) if rtt else "",
                "peer implementation: %s" % variant[V_VERSION] if variant[V_VERSION] else "",
                "peer: %s:%s" % (column["host"], column["port"]),
            ) if line)
            element = "error" if outcome == NOT_RUN else "failure"
            out.append(">\n   %s>%s</%s>\n  </testcase>" % (
                _xml_tag(element, (("type", outcome), ("message", "%s, expected %s: %s" % (outcome, expect, message)))),
                _xml_text(text), element))
            if required:
                out.extend(_junit_service_cases(case, name, required, column, variant))
        out.append("\n </testsuite>")
    out.extend(_junit_standin(standin))
    out.extend(_junit_changes(report.get("baseline")))
    out.append("\n</testsuites>\n")
    return "".join(out)


def _junit_changes(baseline: Optional[Mapping[str, Any]]) -> List[str]:
    """What changed on the peer side since the baseline, as one more test suite: a passing case per pair with the
    changes as its output (a change is news, not a failure: echo_audit_fail_on_change fails the play instead)."""
    pairs = [pair for kind in DIFF_KINDS for pair in (baseline or {}).get(kind, ()) if pair.get("changes")]
    if not pairs:
        return []
    out = ["\n ", _xml_tag("testsuite", (("name", "changes since the baseline"), ("tests", len(pairs)),
                                         ("failures", 0), ("errors", 0), ("skipped", "0"))), ">"]
    for pair in pairs:
        out.append('\n  %s>\n   <system-out>%s</system-out>\n  </testcase>' % (
            _xml_tag("testcase", (("classname", "dicom.echo.changes"), ("name", "%s as %s -> %s (%s)" % (
                pair["source_host"], pair["calling_ae_title"], pair["called_ae_title"], pair["peer"])))),
            _xml_text("; ".join(pair["changes"]))))
    out.append("\n </testsuite>")
    return out


def _junit_standin(section: Optional[Mapping[str, Any]]) -> List[str]:
    """The go-live check as one more test suite: a case per call to the device, failed when the two sides disagree."""
    if not section:
        return []
    device = section["device"]
    out = ["\n ", _xml_tag("testsuite", (
        ("name", "go-live %s (%s), stand-in on %s" % (device["name"], device["ae_title"], section["standin_host"])),
        ("tests", len(section["callers"]) or 1), ("failures", section["counts"]["problems"]), ("errors", 0),
        ("skipped", "0"))), ">"]
    cases = [("%s as %s -> %s expect %s" % (caller["source_host"], caller["calling_ae_title"], device["ae_title"],
                                            caller["expect"]), caller["ok"], caller["finding"])
             for caller in section["callers"]] or [("stand-in", not section["problems"], "; ".join(section["problems"]))]
    for name, ok, finding in cases:
        out.append('\n  %s' % _xml_tag("testcase", (("classname", "dicom.golive.%s" % device["name"]), ("name", name))))
        if ok:
            out.append(" />")
        else:
            out.append(">\n   %s>%s</failure>\n  </testcase>" % (
                _xml_tag("failure", (("type", "go-live"), ("message", finding))), _xml_text(finding)))
    out.append("\n </testsuite>")
    return out


# ---------------------------------------------------------------------------------------------- entry point


_WRITERS: Dict[str, Callable[[_Report], str]] = {"json": _json_text, "csv": _csv_text, "junit": _junit_text,
                                                 "prom": lambda ctx: render_metrics(ctx.report)}


def render_reports(
    report: Any,
    formats: Sequence[str],
    templates_dir: str,
    *,
    markdown_max_columns: Any = 30,
    failures_limit: Any = 200,
) -> Dict[str, str]:
    """Every format of ``formats`` (of FORMATS) of a report, as format: text.

    ``report`` is a report of :func:`audit_matrix.build_packed` or :func:`audit_matrix.build_report`
    (or its JSON text); ``templates_dir`` holds the role's ``report.html.j2`` and ``report.md.j2``.
    The HTML and Markdown reports list at most ``failures_limit`` cells that are not ok (and baseline
    pairs of each kind); Markdown shows the matrix only up to ``markdown_max_columns`` columns.
    Raises AuditMatrixError for a bad report or argument, jinja2's errors for a broken template.
    """
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown or isinstance(formats, str):
        raise AuditMatrixError("formats must be a list of %s, got %r" % (", ".join(FORMATS), formats))
    max_columns = view_limit("markdown_max_columns", markdown_max_columns)
    limit = view_limit("failures_limit", failures_limit)
    with paused_gc():
        ctx = _Report(load_report(report), limit, max_columns, html="html" in formats)
        sections: Optional[Dict[str, Any]] = None
        environment: Optional[jinja2.Environment] = None
        texts = {}
        for fmt in formats:
            if fmt not in TEMPLATES:
                texts[fmt] = _WRITERS[fmt](ctx)
                continue
            if sections is None or environment is None:
                sections = {name: build(ctx) for name, build in SECTIONS}
                environment = _environment(templates_dir)
            texts[fmt] = environment.get_template(TEMPLATES[fmt]).render(sections)
        return texts
