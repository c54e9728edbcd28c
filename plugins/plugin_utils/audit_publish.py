# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publishing the echo audit reports: the run history, keep-last-N pruning, the index page's data, the e-mail.

Pure functions, free of Ansible. The ``echo_audit`` role copies each run's reports to
``<dir>/runs/<stamp>/`` on a publish host and keeps ``<dir>/history.json``, which this module reads,
merges the new run into and prunes; the role then deletes exactly the run directories
:func:`plan_publish` returns, so what may be deleted is decided here, where it is unit-tested.

history.json is read from a host other people can write to: it is untrusted. It is checked
completely before anything is written (a file that is not a history of this role stops the
publishing), its strings are cleaned, and links are rebuilt from the checked stamp and format
names, never taken from the file.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import cells_of, clean_text, parse_report
from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import run_label
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import EXTENSIONS

HISTORY_SCHEMA_VERSION = 1
HISTORY_KIND = "dicom.network.echo_audit publish history"
# generated_at without "-" and ":", as report.yml names the timestamped reports: sorts like time.
# \Z, not $: "$" also matches before a final newline, and a stamp becomes a path to delete.
STAMP = re.compile(r"\A[0-9]{8}T[0-9]{6}Z\Z")
# Report format -> file extension; the role writes report.<extension> into each run directory.
FORMATS = EXTENSIONS
_MODE = re.compile(r"\A0?[0-7]{3}\Z")
_BASE_URL = re.compile(r"\Ahttps?://[^\s\"'<>\\]+\Z")
_COUNTS = ("total", "ok", "failed", "not_run")
_MAX_TITLE = 200
_MAX_REASONS = 10

# The trend chart: a fixed viewBox, so the page lays it out without any script.
# Per-pair round-trip sparklines on the index: kept for audits of at most this many pairs (bigger ones
# have the prom report's series for their monitoring).
TREND_PAIRS = 100
SPARK_WIDTH, SPARK_HEIGHT = 160, 28
CHART_WIDTH = 640
CHART_HEIGHT = 180
_CHART_LEFT, _CHART_RIGHT, _CHART_TOP, _CHART_BOTTOM = 48, 16, 12, 30


class AuditPublishError(ValueError):
    """A publishing setting, the history on the publish host, or the report is not usable; says which and why."""


def stamp_of(generated_at: Any) -> str:
    """The run's stamp, the name of its directory: report.yml's file name stamp (generated_at without - and :)."""
    stamp = re.sub(r"[-:]", "", "%s" % (generated_at,))
    if not STAMP.match(stamp):
        raise AuditPublishError("the report's generated_at %r is not a UTC time like 2025-01-31T08:00:00Z"
                                % (clean_text(generated_at, 60),))
    return stamp


def pass_rate(ok: int, total: int) -> Optional[float]:
    """Per cent of the checks that were as expected, one decimal; None when the run had no check."""
    if total <= 0:
        return None
    return round(100.0 * ok / total, 1)


def rate_text(rate: Optional[float]) -> str:
    return "\u2013" if rate is None else "%.1f %%" % rate


def check_settings(directory: Any, keep: Any, dir_mode: Any = "0750", file_mode: Any = "0640",
                   base_url: Any = "") -> Dict[str, Any]:
    """The publishing settings, checked and normalized; errors name the role variable."""
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise AuditPublishError("echo_audit_publish_dir must be an absolute path on the publish host, got %r"
                                % (clean_text(directory, 200),))
    normalized = posixpath.normpath(directory)
    if normalized == "/" or ".." in directory.split("/"):
        raise AuditPublishError("echo_audit_publish_dir must be a directory below / without '..', got %r"
                                % (clean_text(directory, 200),))
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise AuditPublishError("echo_audit_publish_keep must be a whole number >= 0 (0 keeps every run), got %r"
                                % (keep,))
    for name, mode in (("echo_audit_publish_dir_mode", dir_mode), ("echo_audit_publish_file_mode", file_mode)):
        if not isinstance(mode, str) or not _MODE.match(mode):
            raise AuditPublishError("%s must be an octal mode in quotes like \"0640\", got %r" % (name, mode))
    base_url = base_url or ""
    if base_url and (not isinstance(base_url, str) or not _BASE_URL.match(base_url)):
        raise AuditPublishError("echo_audit_publish_base_url must be empty or an http(s) URL without spaces or "
                                "quotes, got %r" % (clean_text(base_url, 200),))
    return {"directory": normalized, "keep": keep, "dir_mode": dir_mode, "file_mode": file_mode,
            "base_url": base_url.rstrip("/")}


def _formats(formats: Any, where: str) -> List[str]:
    if not isinstance(formats, (list, tuple)) or not all(isinstance(f, str) and f in FORMATS for f in formats):
        raise AuditPublishError("%s must be a list of %s" % (where, ", ".join(FORMATS)))
    return sorted(set(formats), key=list(FORMATS).index)


def files_of(stamp: str, formats: Sequence[str]) -> Dict[str, str]:
    """Format -> path of the run's report, relative to the publish directory."""
    return {fmt: "runs/%s/report.%s" % (stamp, FORMATS[fmt]) for fmt in formats}


def run_entry(report: Any, formats: Any) -> Dict[str, Any]:
    """The history entry of a report of the dicom.network.echo_audit role (its dictionary or JSON text)."""
    report = parse_report(report, "report")
    if not isinstance(report, Mapping) or not isinstance(report.get("summary"), Mapping):
        raise AuditPublishError("the report is not a report of the dicom.network.echo_audit role (no summary)")
    summary = report["summary"]
    counts = {}
    for key in _COUNTS:
        value = summary.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AuditPublishError("the report's summary.%s must be a whole number >= 0" % key)
        counts[key] = value
    complete = report.get("complete")
    reasons = report.get("partial_reasons")
    scope = report.get("scope") if isinstance(report.get("scope"), Mapping) else {}
    hosts = scope.get("source_hosts")
    entry = {
        "stamp": stamp_of(report.get("generated_at")),
        "generated_at": clean_text(report.get("generated_at"), 40),
        "started_at": clean_text(report.get("started_at"), 40),
        "title": clean_text(report.get("title"), _MAX_TITLE) or "",
        "formats": _formats(formats, "echo_audit_report_formats"),
        "complete": complete if isinstance(complete, bool) else None,
        "partial_reasons": [clean_text(r, 300) for r in reasons[:_MAX_REASONS]] if isinstance(reasons, list) else [],
        "source_hosts": len(hosts) if isinstance(hosts, list) else None,
        # Which run and part of it (slice, site, or the parts a merged report has): slices and wholes alike.
        "run": run_label(report.get("run")),
    }
    entry.update(counts)
    entry["pass_rate"] = pass_rate(counts["ok"], counts["total"])
    # The report step's head carries its trend (it has no cells); a whole report has what it is made of.
    trend = report.get("trend") if isinstance(report.get("trend"), Mapping) else trend_of(report)
    changes, rtt = trend.get("changes"), trend.get("rtt")
    entry["changes"] = changes if isinstance(changes, int) and not isinstance(changes, bool) and changes >= 0 else None
    entry["rtt"] = {clean_text(key, 300): float(value) for key, value in rtt.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)} \
        if isinstance(rtt, Mapping) and len(rtt) <= TREND_PAIRS else None
    return entry


def trend_of(report: Mapping[str, Any]) -> Dict[str, Any]:
    """What the published index draws of one report: its count of peer changes since the baseline (None
    without a baseline) and each pair's average round trip (None beyond TREND_PAIRS pairs, or without cells)."""
    baseline = report.get("baseline") if isinstance(report.get("baseline"), Mapping) else {}
    counts = baseline.get("counts") if isinstance(baseline.get("counts"), Mapping) else {}
    return {"changes": counts.get("peer_changes"), "rtt": _pair_rtts(report)}


def pair_label(cell: Mapping[str, Any]) -> str:
    return "%s as %s -> %s (%s)" % (cell.get("source_host"), cell.get("calling_ae_title"), cell.get("called_ae_title"),
                                    cell.get("peer"))


def _pair_rtts(report: Mapping[str, Any]) -> Optional[Dict[str, float]]:
    """Each pair's average round trip in ms (pairs without one left out); None beyond TREND_PAIRS pairs."""
    if report.get("summary", {}).get("total", 0) > TREND_PAIRS or ("cells" not in report and "packed_cells" not in report):
        return None
    rtts = {}
    for cell in cells_of(report):
        average = (cell.get("rtt_ms") or {}).get("avg")
        if isinstance(average, (int, float)) and not isinstance(average, bool):
            rtts[clean_text(pair_label(cell), 300)] = round(float(average), 3)
    return rtts


def _text(entry: Mapping[str, Any], key: str, where: str, limit: int, optional: bool = False) -> Optional[str]:
    value = entry.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise AuditPublishError("%s.%s must be a string" % (where, key))
    return clean_text(value, limit)


def _checked_entry(entry: Any, where: str) -> Dict[str, Any]:
    """A history entry read from the publish host, checked and rebuilt from the checked fields only."""
    if not isinstance(entry, Mapping):
        raise AuditPublishError("%s must be an object" % where)
    stamp = entry.get("stamp")
    # The stamp becomes a path that may be deleted: nothing but the exact pattern is accepted.
    if not isinstance(stamp, str) or not STAMP.match(stamp):
        raise AuditPublishError("%s.stamp must be a run stamp like 20250131T080000Z, got %r"
                                % (where, clean_text(stamp, 60)))
    checked: Dict[str, Any] = {
        "stamp": stamp,
        "generated_at": _text(entry, "generated_at", where, 40),
        "started_at": _text(entry, "started_at", where, 40, optional=True),
        "title": _text(entry, "title", where, _MAX_TITLE),
        "formats": _formats(entry.get("formats"), "%s.formats" % where),
        # Histories written before reports had a run section have none.
        "run": _text(entry, "run", where, 300, optional=True),
    }
    for key in _COUNTS:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AuditPublishError("%s.%s must be a whole number >= 0" % (where, key))
        checked[key] = value
    if checked["ok"] + checked["failed"] + checked["not_run"] != checked["total"]:
        raise AuditPublishError("%s: ok + failed + not_run must equal total" % where)
    complete = entry.get("complete")
    if complete is not None and not isinstance(complete, bool):
        raise AuditPublishError("%s.complete must be true, false or null" % where)
    checked["complete"] = complete
    reasons = entry.get("partial_reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise AuditPublishError("%s.partial_reasons must be a list of strings" % where)
    checked["partial_reasons"] = [clean_text(r, 300) for r in reasons[:_MAX_REASONS]]
    hosts = entry.get("source_hosts")
    if hosts is not None and (isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 0):
        raise AuditPublishError("%s.source_hosts must be a whole number or null" % where)
    checked["source_hosts"] = hosts
    changes = entry.get("changes")
    if changes is not None and (isinstance(changes, bool) or not isinstance(changes, int) or changes < 0):
        raise AuditPublishError("%s.changes must be a whole number or null" % where)
    checked["changes"] = changes
    rtt = entry.get("rtt")
    if rtt is not None and (not isinstance(rtt, Mapping) or len(rtt) > TREND_PAIRS or not all(
            isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            for key, value in rtt.items())):
        raise AuditPublishError("%s.rtt must be null or an object of at most %d pairs' round trips in ms"
                                % (where, TREND_PAIRS))
    checked["rtt"] = {clean_text(key, 300): float(value) for key, value in rtt.items()} if rtt is not None else None
    # Derived, so never trusted from the file.
    checked["pass_rate"] = pass_rate(checked["ok"], checked["total"])
    return checked


def load_history(text: Any) -> List[Dict[str, Any]]:
    """The runs of a history.json (its text; None or "" when there is none yet), checked, newest first."""
    if text is None or (isinstance(text, (str, bytes)) and not text.strip()):
        return []
    if isinstance(text, (str, bytes)):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise AuditPublishError("not valid JSON (%s)" % error)
    else:
        document = text
    if not isinstance(document, Mapping) or document.get("kind") != HISTORY_KIND:
        raise AuditPublishError("not a publish history of dicom.network.echo_audit (it needs \"kind\": \"%s\")"
                                % HISTORY_KIND)
    version = document.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AuditPublishError("schema_version must be a whole number >= 1")
    if version > HISTORY_SCHEMA_VERSION:
        raise AuditPublishError("schema_version %d is newer than this collection writes (%d): upgrade dicom.network "
                                "rather than let an older version rewrite it" % (version, HISTORY_SCHEMA_VERSION))
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise AuditPublishError("runs must be a list")
    checked = [_checked_entry(entry, "runs[%d]" % index) for index, entry in enumerate(runs)]
    seen = set()
    for index, entry in enumerate(checked):
        if entry["stamp"] in seen:
            raise AuditPublishError("runs[%d].stamp %s is listed twice" % (index, entry["stamp"]))
        seen.add(entry["stamp"])
    return sort_runs(checked)


def sort_runs(runs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Newest first (stamps sort like the times they stand for)."""
    return sorted((dict(run) for run in runs), key=lambda run: run["stamp"], reverse=True)


def merge_run(runs: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The history with the new run added; a run with the same stamp (same second) is replaced by it."""
    return sort_runs([run for run in runs if run["stamp"] != new["stamp"]] + [dict(new)])


def prune(runs: Sequence[Mapping[str, Any]], keep: int, new_stamp: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(runs kept, newest first; stamps to delete): the new run and the newest others, ``keep`` in all.

    ``keep`` 0 keeps everything. The new run is always kept, even when a clock put older runs'
    stamps after it; then it takes the place of the oldest of the newest ``keep``.
    """
    ordered = sort_runs(runs)
    if keep <= 0 or len(ordered) <= keep:
        return ordered, []
    others = [run for run in ordered if run["stamp"] != new_stamp]
    kept_stamps = {run["stamp"] for run in others[:keep - 1]} | {new_stamp}
    kept = [run for run in ordered if run["stamp"] in kept_stamps]
    deleted = [run["stamp"] for run in ordered if run["stamp"] not in kept_stamps]
    return kept, deleted


def history_document(runs: Sequence[Mapping[str, Any]], updated_at: Optional[str]) -> Dict[str, Any]:
    stored = []
    for run in sort_runs(runs):
        entry = {key: value for key, value in run.items() if key != "files"}
        entry["path"] = "runs/%s/" % run["stamp"]
        entry["files"] = files_of(run["stamp"], run["formats"])
        stored.append(entry)
    return {"kind": HISTORY_KIND, "schema_version": HISTORY_SCHEMA_VERSION, "updated_at": updated_at, "runs": stored}


def history_text(document: Mapping[str, Any]) -> str:
    """history.json as written: sorted keys, one run per block, readable in a pager."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _main_file(stamp: str, formats: Sequence[str]) -> str:
    files = files_of(stamp, formats)
    return files.get("html") or files[formats[0]]


def plan_publish(history: Any, report: Any, formats: Any, directory: Any, keep: Any, dir_mode: Any = "0750",
                 file_mode: Any = "0640", base_url: Any = "", host: Any = None) -> Dict[str, Any]:
    """Everything the role writes and deletes on the publish host for one run.

    ``history`` is the text of the host's history.json (None when it has none); ``host`` names the
    publish host in errors. Raises :class:`AuditPublishError` before anything is decided when a
    setting, the history or the report is unusable.
    """
    settings = check_settings(directory, keep, dir_mode, file_mode, base_url)
    try:
        runs = load_history(history)
    except AuditPublishError as error:
        where = clean_text(host, 200) or "the publish host"
        raise AuditPublishError(
            "%s:%s/history.json: %s. Nothing was written or deleted on %s. Repair the file or move it aside (a new "
            "history then starts; run directories it does not list are never deleted)"
            % (where, settings["directory"], error, where))
    new = run_entry(report, formats)
    if not new["formats"]:
        raise AuditPublishError("echo_audit_report_formats is empty: there is nothing to publish")
    kept, deleted = prune(merge_run(runs, new), settings["keep"], new["stamp"])
    document = history_document(kept, new["generated_at"])
    base, root = settings["base_url"], settings["directory"]
    main = _main_file(new["stamp"], new["formats"])
    return {
        "stamp": new["stamp"],
        "run": document["runs"][[run["stamp"] for run in kept].index(new["stamp"])],
        "history": document,
        "history_json": history_text(document),
        "kept": [run["stamp"] for run in kept],
        "pruned": deleted,
        "settings": settings,
        "paths": {"directory": root, "history": root + "/history.json", "index": root + "/index.html",
                  "run_directory": "%s/runs/%s" % (root, new["stamp"]), "run": "%s/%s" % (root, main)},
        "urls": {"index": base + "/index.html", "run": "%s/%s" % (base, main)} if base else None,
    }


def _ticks() -> List[Dict[str, Any]]:
    height = CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    return [{"y": "%.1f" % (_CHART_TOP + (100 - rate) * height / 100.0), "label": "%d %%" % rate}
            for rate in (0, 25, 50, 75, 100)]


def chart(runs: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The pass-rate trend for an inline SVG: oldest run on the left; a run without checks has no point."""
    chronological = sorted(runs, key=lambda run: run["stamp"])
    width = CHART_WIDTH - _CHART_LEFT - _CHART_RIGHT
    height = CHART_HEIGHT - _CHART_TOP - _CHART_BOTTOM
    step = width / (len(chronological) - 1) if len(chronological) > 1 else 0.0
    points = []
    for position, run in enumerate(chronological):
        rate = pass_rate(run["ok"], run["total"])
        if rate is None:
            continue
        x = _CHART_LEFT + (position * step if len(chronological) > 1 else width / 2.0)
        y = _CHART_TOP + (100.0 - rate) * height / 100.0
        points.append({"x": "%.1f" % x, "y": "%.1f" % y, "ok": rate >= 100.0,
                       "label": "%s: %s (%d of %d ok)" % (run["generated_at"], rate_text(rate), run["ok"], run["total"])})
    labels = []
    if chronological:
        labels.append({"x": str(_CHART_LEFT), "anchor": "start", "label": chronological[0]["generated_at"][:10]})
        if len(chronological) > 1:
            labels.append({"x": str(CHART_WIDTH - _CHART_RIGHT), "anchor": "end",
                           "label": chronological[-1]["generated_at"][:10]})
    return {
        "width": CHART_WIDTH, "height": CHART_HEIGHT,
        "left": _CHART_LEFT, "right": CHART_WIDTH - _CHART_RIGHT,
        "top": _CHART_TOP, "bottom": CHART_HEIGHT - _CHART_BOTTOM,
        "label_y": CHART_HEIGHT - 10,
        "points": points,
        "polyline": " ".join("%s,%s" % (point["x"], point["y"]) for point in points),
        "ticks": _ticks(),
        "x_labels": labels,
    }


def sparklines(runs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Each pair's round trip over the kept runs (oldest on the left), as an inline SVG polyline per pair,
    scaled to the pair's own highest round trip; a run without the pair leaves a gap. Pairs by label."""
    chronological = sorted(runs, key=lambda run: run["stamp"])
    pairs = sorted({pair for run in chronological for pair in (run.get("rtt") or {})})
    step = (SPARK_WIDTH - 4) / (len(chronological) - 1) if len(chronological) > 1 else 0.0
    lines = []
    for pair in pairs:
        values = [(run.get("rtt") or {}).get(pair) for run in chronological]
        highest = max(value for value in values if value is not None) or 1.0
        segments: List[List[str]] = [[]]
        for position, value in enumerate(values):
            if value is None:
                segments.append([])
                continue
            x = 2 + (position * step if len(chronological) > 1 else (SPARK_WIDTH - 4) / 2.0)
            y = SPARK_HEIGHT - 2 - value / highest * (SPARK_HEIGHT - 4)
            segments[-1].append("%.1f,%.1f" % (x, y))
        known = [value for value in values if value is not None]
        lines.append({"pair": pair, "polylines": [" ".join(points) for points in segments if points],
                      "latest": "%.1f ms" % values[-1] if values[-1] is not None else "-",
                      "range": "%.1f-%.1f ms" % (min(known), max(known)),
                      "width": SPARK_WIDTH, "height": SPARK_HEIGHT})
    return lines


def index_view(history: Any, title: Any = None) -> Dict[str, Any]:
    """What index.html shows: the runs newest first with their links, totals, and the trend chart.

    Strings are cleaned here and escaped by the template; links are built from checked stamps and
    format names only, so a history.json edited by someone else cannot smuggle a link in.
    """
    runs = load_history(history)
    rows = []
    for run in runs:
        files = files_of(run["stamp"], run["formats"])
        rows.append(dict(run, rate_text=rate_text(run["pass_rate"]),
                         links=[{"format": fmt, "href": files[fmt]} for fmt in run["formats"]],
                         main=_main_file(run["stamp"], run["formats"])))
    rated = [run["pass_rate"] for run in runs if run["pass_rate"] is not None]
    return {
        "title": clean_text(title, _MAX_TITLE) or "DICOM echo audit",
        "updated_at": runs[0]["generated_at"] if runs else None,
        "runs": rows,
        "count": len(rows),
        "latest": rows[0] if rows else None,
        "average_text": rate_text(round(sum(rated) / len(rated), 1) if rated else None),
        "chart": chart(runs),
        "sparklines": sparklines(runs),
        "trend_pairs": TREND_PAIRS,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def mail_message(report: Any, subject: Any = "", markdown: Any = "", links: Optional[Sequence[Any]] = None
                 ) -> Dict[str, str]:
    """Subject and body of the run's e-mail: a summary line, the links, then the Markdown report."""
    entry_report = parse_report(report, "report")
    if not isinstance(entry_report, Mapping) or not isinstance(entry_report.get("summary"), Mapping):
        raise AuditPublishError("the report is not a report of the dicom.network.echo_audit role (no summary)")
    summary = entry_report["summary"]
    counts = {key: summary.get(key) for key in _COUNTS}
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in counts.values()):
        raise AuditPublishError("the report's summary has no counts")
    title = clean_text(entry_report.get("title"), _MAX_TITLE) or "DICOM echo audit"
    verdict = "all ok" if counts["ok"] == counts["total"] else "NOT OK"
    line = "%s: %s, %d of %d checks ok (%s), %d failed, %d not run" % (
        title, verdict, counts["ok"], counts["total"], rate_text(pass_rate(counts["ok"], counts["total"])),
        counts["failed"], counts["not_run"])
    if entry_report.get("complete") is False:
        line += ", partial"
    # A header is one line: the cleaned title has no controls left, and a given subject may.
    chosen = _one_line(clean_text(subject, 300) or "") if subject else ""
    lines = [line, "Generated %s" % (clean_text(entry_report.get("generated_at"), 40) or "")]
    lines.extend(_one_line(clean_text(link, 500) or "") for link in (links or []) if link)
    body = "\n".join(lines) + "\n\n" + ("%s" % (markdown or "")).rstrip("\n") + "\n"
    return {"subject": chosen or line, "body": body}


def check_mail(to: Any, sender: Any, secure: Any, password_set: Any) -> None:
    """Mail settings that would fail or leak only at send time, refused before anything is published."""
    if not isinstance(to, (list, tuple)) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise AuditPublishError("echo_audit_mail_to must list at least one e-mail address")
    if not isinstance(sender, str) or "@" not in sender:
        raise AuditPublishError("echo_audit_mail_from must be an e-mail address, got %r" % (clean_text(sender, 200),))
    if secure not in ("always", "never", "starttls", "try"):
        raise AuditPublishError("echo_audit_mail_secure must be always, never, starttls or try, got %r"
                                % (clean_text(secure, 40),))
    # community.general.mail falls back to plain text with "try" when the server offers no TLS,
    # and would send the password readable on the wire.
    if password_set and secure not in ("always", "starttls"):
        raise AuditPublishError("echo_audit_mail_password is set, so echo_audit_mail_secure must be always or "
                                "starttls (with %s the password could travel unencrypted)" % secure)
