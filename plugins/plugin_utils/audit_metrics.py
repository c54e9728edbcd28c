# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The echo audit as metrics: the report's numbers in the Prometheus text format (``latest.prom``).

Pure functions, free of Ansible. The text is OpenMetrics-compatible (it ends with ``# EOF``) and is
also valid Prometheus text exposition (0.0.4), so the same file serves node_exporter's textfile
collector and the body of a Pushgateway push. Metric and label names are stable and documented in the
role README; label values (AE titles, host and peer names) are untrusted and escaped.

Per check (cell) series are written up to ``cell_limit`` cells; beyond it, per calling AE aggregates
instead, so that a 300 x 300 fleet does not give a Prometheus 90,000 series per metric.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import OUTCOME_ORDER, cells_of

PREFIX = "dicom_echo_audit_"
CELL_LIMIT = 5000
CELL_LABELS = ("source_host", "calling_ae_title", "peer", "called_ae_title")


def label_value(value: Any) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    text = "" if value is None else "%s" % (value,)
    return text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(pairs: Iterable[Tuple[str, Any]]) -> str:
    return "{%s}" % ",".join('%s="%s"' % (name, label_value(value)) for name, value in pairs)


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value)) if math.isfinite(float(value)) else "NaN"


def _epoch(stamp: Optional[str]) -> Optional[float]:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Family:
    def __init__(self, name: str, help_text: str):
        self.name, self.help, self.samples = PREFIX + name, help_text, []  # type: ignore[var-annotated]

    def add(self, labels: Sequence[Tuple[str, Any]], value: Any) -> None:
        self.samples.append("%s%s %s" % (self.name, _labels(labels) if labels else "", _number(value)))

    def lines(self) -> List[str]:
        return ["# HELP %s %s" % (self.name, self.help), "# TYPE %s gauge" % self.name] + self.samples


def render_metrics(report: Mapping[str, Any], cell_limit: int = CELL_LIMIT) -> str:
    """The metrics of one audit report (either form of audit_matrix)."""
    summary = report.get("summary") or {}
    families: Dict[str, _Family] = {}

    def family(name: str, help_text: str) -> _Family:
        if name not in families:
            families[name] = _Family(name, help_text)
        return families[name]

    checks = family("checks", "Checks of the last audit run by state: ok (as expected), failed, not_run.")
    for state in ("ok", "failed", "not_run"):
        checks.add([("state", state)], int(summary.get(state) or 0))
    by_outcome = summary.get("by_outcome") or {}
    outcomes = family("checks_by_outcome", "Checks of the last audit run by outcome.")
    for outcome in OUTCOME_ORDER:
        outcomes.add([("outcome", outcome)], int(by_outcome.get(outcome) or 0))
    family("source_hosts", "Source hosts in the last audit run.").add([], int(summary.get("source_hosts") or 0))
    family("complete", "1 when the last run covered every planned check of the inventory, else 0.").add(
        [], bool(report.get("complete")))
    generated, started = _epoch(report.get("generated_at")), _epoch(report.get("started_at"))
    if generated is not None:
        family("last_run_timestamp_seconds", "When the last audit run's report was written (Unix time).").add(
            [], generated)
        if started is not None:
            family("last_run_duration_seconds", "Wall time of the last audit run, from its start to its report.").add(
                [], round(generated - started, 3))

    cells = list(cells_of(report))
    if len(cells) <= cell_limit:
        _cell_series(cells, family)
    else:
        _calling_ae_series(cells, family)
    body = [line for item in families.values() for line in item.lines()]
    return "\n".join(body + ["# EOF"]) + "\n"


def _cell_series(cells: List[Mapping[str, Any]], family) -> None:
    ok = family("check_ok", "1 when the check's outcome met its expectation, else 0 (not run: 0).")
    outcome = family("check_outcome", "1 for the outcome the check had (label outcome).")
    rtt = family("check_rtt_seconds", "Average C-ECHO round trip of the check.")
    days = family("check_tls_days_left", "Whole days until the peer's TLS certificate expires (negative: expired).")
    for cell in cells:
        labels = [(name, cell.get(name)) for name in CELL_LABELS]
        ok.add(labels, bool(cell.get("ok")))
        outcome.add(labels + [("outcome", cell.get("outcome"))], 1)
        average = (cell.get("rtt_ms") or {}).get("avg")
        if isinstance(average, (int, float)) and not isinstance(average, bool):
            rtt.add(labels, round(average / 1000.0, 6))
        left = (cell.get("tls_certificate") or {}).get("days_left")
        if isinstance(left, int) and not isinstance(left, bool):
            days.add(labels, left)


def _calling_ae_series(cells: List[Mapping[str, Any]], family) -> None:
    checks = family("calling_ae_checks", "Checks per calling AE (more checks than the per-check series limit) by state.")
    worst = family("calling_ae_rtt_seconds_max", "Slowest average C-ECHO round trip of a calling AE's checks.")
    soonest = family("calling_ae_tls_days_left_min", "Fewest days left of a TLS certificate a calling AE's checks saw.")
    groups: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for cell in cells:
        group = groups.setdefault((cell.get("source_host"), cell.get("calling_ae_title")),
                                  {"ok": 0, "failed": 0, "not_run": 0, "rtt": None, "days": None})
        state = "not_run" if cell.get("outcome") == "not_run" else ("ok" if cell.get("ok") else "failed")
        group[state] += 1
        average = (cell.get("rtt_ms") or {}).get("avg")
        if isinstance(average, (int, float)) and not isinstance(average, bool):
            group["rtt"] = average if group["rtt"] is None else max(group["rtt"], average)
        left = (cell.get("tls_certificate") or {}).get("days_left")
        if isinstance(left, int) and not isinstance(left, bool):
            group["days"] = left if group["days"] is None else min(group["days"], left)
    for (source_host, calling), group in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        labels = [("source_host", source_host), ("calling_ae_title", calling)]
        for state in ("ok", "failed", "not_run"):
            checks.add(labels + [("state", state)], group[state])
        if group["rtt"] is not None:
            worst.add(labels, round(group["rtt"] / 1000.0, 6))
        if group["days"] is not None:
            soonest.add(labels, group["days"])
