# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The identity of an audit run, and one report merged from the reports of its slices or sites.

Free of Ansible imports. Every report says which run it belongs to (``run``: ``id``, ``slice`` of
``slices``, ``site``, the AWX ``job``, and ``registry``: a digest of each ``dicom_aes`` entry it was
built from). AWX job slicing runs one play per slice of the inventory, and sites behind their own
firewalls run their own controllers: each writes a report of its own source hosts.
:func:`merge_reports` builds the report one play over all of them would have written, with the
builders of :mod:`audit_matrix` (the same matrix, summary, scope and baseline diff), and refuses what
cannot be one audit: reports built from different registries, a slice or site given twice, a source
host in two reports with different results.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.audit_archive import merge_archive_sections
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    C_COLUMN,
    C_ROW,
    C_VARIANT,
    V_EXPECT,
    V_NOT_RUN_REASON,
    V_OK,
    V_OUTCOME,
    AuditMatrixError,
    clean_text,
    combine,
    is_packed,
    matrix_of,
    packed_report,
    parse_report,
)
from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import without_secrets

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,119}")
_SHOWN = 10
# partial_reasons of a part that the merge does not recompute (audit_matrix.partial_reasons words it).
_INTERRUPTED = "interrupted: "


class AuditMergeError(ValueError):
    """Reports that cannot be merged into one, or identity options that are wrong; says which and why."""


def registry_digests(registries: Sequence[Any]) -> Dict[str, str]:
    """A short digest of each ``dicom_aes`` entry (secrets masked first), the first registry's entry winning.

    ``registries`` are the ``dicom_aes`` of the play's hosts; two reports whose digests differ were built
    from different registries.
    """
    digests: Dict[str, str] = {}
    for registry in registries:
        if not isinstance(registry, Mapping):
            continue
        for name in sorted(registry, key=str):
            if str(name) not in digests:
                text = json.dumps(without_secrets(registry[name]), sort_keys=True, default=str)
                digests[str(name)] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return digests


def _whole(value: Any, name: str, errors: List[str], low: int = 1) -> Optional[int]:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        errors.append("%s must be a whole number >= %d, got %r" % (name, low, value))
        return None
    if int(value) < low:
        errors.append("%s must be a whole number >= %d, got %r" % (name, low, value))
        return None
    return int(value)


def _awx_id(value: Any) -> Optional[str]:
    return str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).isdigit() else None


def run_identity(run_id: Any, slice_number: Any, slices: Any, site: Any, awx: Optional[Mapping[str, Any]],
                 started_at: str, registry: Mapping[str, str]) -> Tuple[Dict[str, Any], List[str]]:
    """The ``run`` section of a report, and what is wrong with the options (each names its variable).

    The id is ``echo_audit_run_id``, else the AWX workflow job (the slices of a sliced job share it), else
    the AWX job, else the start time with a random tail. AWX does not tell a slice its number, so under AWX
    a slice is told apart by its job (``job``) unless ``echo_audit_slice`` is given.
    """
    errors: List[str] = []
    awx = awx if isinstance(awx, Mapping) else {}
    job, workflow = _awx_id(awx.get("job_id")), _awx_id(awx.get("workflow_job_id"))
    text = str(run_id).strip() if run_id is not None else ""
    if text and not _RUN_ID.fullmatch(text):
        errors.append("echo_audit_run_id must be 1 to 120 letters, digits and . _ : @ + - (starting with a letter "
                      "or digit), got %r" % (clean_text(text, 130),))
    if not text:
        text = ("awx-workflow-%s" % workflow if workflow else "awx-job-%s" % job if job else
                "%s-%s" % (started_at.replace("-", "").replace(":", ""), secrets.token_hex(3)))
    number = _whole(slice_number, "echo_audit_slice", errors)
    count = _whole(slices, "echo_audit_slices", errors)
    if number is not None and count is not None and number > count:
        errors.append("echo_audit_slice %d is beyond echo_audit_slices %d" % (number, count))
    site_text = clean_text(site, 80) if site not in (None, "") else None
    identity = {"id": text, "slice": number, "slices": count, "site": site_text,
                "job": "awx-job-%s" % job if job else None, "registry": dict(registry)}
    return identity, errors


def part_label(run: Mapping[str, Any]) -> str:
    """How a report's part of the run is named: site, slice, AWX job, or the whole run."""
    parts = []
    if run.get("site"):
        parts.append("site %s" % run["site"])
    if run.get("slice"):
        parts.append("slice %s of %s" % (run["slice"], run.get("slices") or "?"))
    elif run.get("job") and not run.get("parts"):
        parts.append("AWX %s" % run["job"])
    return ", ".join(parts) or ("merged run %s" % run.get("id") if run.get("parts") else "run %s" % run.get("id"))


def run_label(run: Any, name_parts: bool = False) -> Optional[str]:
    """A report's run in a few words: its id and part (slice, site), or how many reports it merges (and which)."""
    if not isinstance(run, Mapping) or not isinstance(run.get("id"), str):
        return None
    parts = run.get("parts")
    if isinstance(parts, list):
        text = "%s, merged from %d report(s)" % (run["id"], len(parts))
        if name_parts:
            text += ": " + ", ".join(str(part.get("label")) for part in parts if isinstance(part, Mapping))
    else:
        label = part_label(run)
        text = run["id"] if label.startswith("run ") else "%s, %s" % (run["id"], label)
    return clean_text(text, 1000 if name_parts else 300)


def _part_key(run: Mapping[str, Any]) -> Tuple[Any, ...]:
    return (run.get("id"), run.get("site"), run.get("slice"), None if run.get("slice") else run.get("job"))


def _names(names: Sequence[str]) -> str:
    names = list(names)
    return ", ".join(names[:_SHOWN]) + (" and %d more" % (len(names) - _SHOWN) if len(names) > _SHOWN else "")


def _checked(source: str, report: Any) -> Dict[str, Any]:
    """The report's run section, checked; refuses what is not a report of this collection's audit."""
    if not isinstance(report, Mapping) or not isinstance(report.get("schema_version"), int) \
            or not isinstance(report.get("rows"), list) or not isinstance(report.get("columns"), list) \
            or not (isinstance(report.get("cells"), list) or is_packed(report)):
        raise AuditMergeError("%s: not a JSON report of dicom.network.echo_audit (no schema_version, rows, columns "
                              "and cells)" % source)
    if report.get("standin"):
        raise AuditMergeError("%s: a go-live check's report (dicom.network.golive); only audits are merged" % source)
    run = report.get("run")
    if not isinstance(run, Mapping) or not isinstance(run.get("id"), str) or not isinstance(run.get("registry"), Mapping):
        raise AuditMergeError("%s: the report does not say which audit run it belongs to (written before reports had a "
                              "run section): run that slice or site again with this version of dicom.network, then "
                              "merge" % source)
    # A report file is untrusted text: what reaches a message, a label or the merged report is cleaned here.
    number = {key: run.get(key) if isinstance(run.get(key), int) and not isinstance(run.get(key), bool) else None
              for key in ("slice", "slices")}
    return dict(run, id=clean_text(run["id"], 120), site=clean_text(run.get("site"), 80) or None,
                job=clean_text(run.get("job"), 40) or None,
                registry={clean_text(name, 120): clean_text(digest, 64) for name, digest in run["registry"].items()},
                **number)


def _registry_difference(first: Mapping[str, str], other: Mapping[str, str]) -> List[str]:
    names = sorted(set(first) | set(other))
    return ["%s %s" % (name, "differs" if name in first and name in other else
                       "only in the first" if name in first else "only in this one")
            for name in names if first.get(name) != other.get(name)]


def _results_of(matrix: Any, rows: Sequence[int]) -> Dict[Tuple[str, str], Tuple[Any, ...]]:
    """(calling AE, peer) -> what the check gave, for the given rows: what two reports of one host must agree on."""
    wanted = set(rows)
    results = {}
    for packed in matrix.cells:
        if packed[C_ROW] in wanted:
            row, column, variant = matrix.rows[packed[C_ROW]], matrix.columns[packed[C_COLUMN]], \
                matrix.variants[packed[C_VARIANT]]
            results[(row["calling"], column["name"])] = (variant[V_OUTCOME], variant[V_OK], variant[V_EXPECT],
                                                         variant[V_NOT_RUN_REASON])
    return results


def _without_rows(matrix: Any, drop: Sequence[int]) -> Any:
    """The matrix without the rows of hosts another report already has (their results are equal)."""
    dropped = set(drop)
    kept = [index for index in range(len(matrix.rows)) if index not in dropped]
    new_index = {old: new for new, old in enumerate(kept)}
    cells = [[new_index[packed[C_ROW]]] + list(packed[1:]) for packed in matrix.cells if packed[C_ROW] in new_index]
    return type(matrix)([matrix.rows[index] for index in kept], matrix.columns, matrix.variants, cells)


def select_run(reports: Sequence[Tuple[str, Mapping[str, Any]]], run_id: Optional[str] = None
               ) -> Tuple[List[Tuple[str, Mapping[str, Any]]], List[str]]:
    """The reports of one run (``run_id``, or the run that started last) and a note on those left aside."""
    runs = [(source, report, _checked(source, report)) for source, report in reports]
    if not runs:
        raise AuditMergeError("no report to merge: echo_audit_merge_reports matched no file")
    ids = sorted({run["id"] for _source, _report, run in runs})
    if run_id:
        chosen = run_id
        if chosen not in ids:
            raise AuditMergeError("no report of run %s among the %d report(s) given (their runs: %s); set "
                                  "echo_audit_merge_run_id to one of them, or leave it empty for the newest"
                                  % (chosen, len(runs), _names(ids)))
    else:
        started = {}
        for _source, report, run in runs:
            moment = str(report.get("started_at") or report.get("generated_at") or "")
            started[run["id"]] = max(started.get(run["id"], ""), moment)
        chosen = max(ids, key=lambda name: (started[name], name))
    kept = [(source, report) for source, report, run in runs if run["id"] == chosen]
    notes = []
    if len(kept) < len(runs):
        notes.append("merged the %d report(s) of run %s; %d report(s) of other runs (%s) left aside" % (
            len(kept), chosen, len(runs) - len(kept), _names([name for name in ids if name != chosen])))
    return kept, notes


def merge_reports(
    reports: Sequence[Tuple[str, Mapping[str, Any]]],
    generated_at: str,
    title: Optional[str] = None,
    planned_slices: Any = None,
    planned_sites: Optional[Sequence[str]] = None,
    planned_hosts: Optional[Sequence[str]] = None,
    baseline: Any = None,
    baseline_source: Optional[str] = None,
    baseline_scope: str = "all",
) -> Dict[str, Any]:
    """One packed report of the reports (source name, parsed report) of one run's slices or sites.

    The matrix, summary, scope and baseline diff are what one play over every source host would have
    given. The report is partial, naming them, when a planned slice (``planned_slices``, else the
    ``slices`` the reports say), a planned site or a planned source host is in no report, besides the
    reasons a single run has (checks that did not run, a part that was interrupted).
    """
    errors: List[str] = []
    count = _whole(planned_slices, "echo_audit_merge_slices", errors)
    if errors:
        raise AuditMergeError(errors[0])
    parts = []
    for source, report in reports:
        run = _checked(source, report)
        try:
            matrix = matrix_of(report)
        except (KeyError, IndexError, TypeError, AuditMatrixError) as error:
            raise AuditMergeError("%s: not a readable report of dicom.network.echo_audit (%s)" % (source, error)) from None
        parts.append((source, report, run, matrix))
    if not parts:
        raise AuditMergeError("no report to merge")
    first_source, first_report, first_run, _matrix = parts[0]
    seen: Dict[Tuple[Any, ...], str] = {}
    for source, report, run, _matrix in parts:
        difference = _registry_difference(first_run["registry"], run["registry"])
        if difference:
            raise AuditMergeError("%s and %s were built from different registries (dicom_aes): %s; run every slice "
                                  "and site with the same inventory registry" % (first_source, source,
                                                                                 _names(difference)))
        peers, first_peers = ((item.get("scope") or {}).get("only_peers") or [] for item in (report, first_report))
        if sorted(peers) != sorted(first_peers):
            raise AuditMergeError("%s checks the peers %s, %s %s: merge runs of the same echo_audit_only_peers" % (
                source, _names(peers) or "(all)", first_source, _names(first_peers) or "(all)"))
        key = _part_key(run)
        if key in seen:
            raise AuditMergeError("%s is listed twice: %s and %s" % (part_label(run), seen[key], source))
        seen[key] = source
    # A source host in two reports: the same results are one host; different results cannot be one matrix.
    owner: Dict[str, Tuple[str, Any, List[int]]] = {}
    matrices = []
    notes: List[str] = []
    for source, _report, _run, matrix in parts:
        rows_by_host: Dict[str, List[int]] = {}
        for index, row in enumerate(matrix.rows):
            rows_by_host.setdefault(row["source_host"], []).append(index)
        drop: List[int] = []
        for host, rows in sorted(rows_by_host.items()):
            if host not in owner:
                owner[host] = (source, matrix, rows)
                continue
            other_source, other, other_rows = owner[host]
            mine, theirs = _results_of(matrix, rows), _results_of(other, other_rows)
            if mine != theirs:
                pair = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))[0]
                raise AuditMergeError(
                    "source host %s is in %s and %s with different results (as %s -> %s: %s in one, %s in the other): "
                    "each source host must be in one slice or site only" % (
                        host, other_source, source, pair[0], pair[1],
                        (theirs.get(pair) or ("no check",))[0], (mine.get(pair) or ("no check",))[0]))
            drop.extend(rows)
            notes.append("source host %s is in %s and %s with the same results: counted once"
                         % (host, other_source, source))
        matrices.append(_without_rows(matrix, drop) if drop else matrix)

    runs = [run for _source, _report, run, _matrix in parts]
    # The slices of a part that is itself a merged report (a site that sliced its own audit) are its own.
    sliced = [run for run in runs if not run.get("parts")]
    count = count or max([run.get("slices") or 0 for run in sliced] or [0]) or None
    missing = []
    if count:
        present = {run.get("slice") for run in sliced if run.get("slice")}
        if present:
            missing.extend("slice %d of %d" % (number, count) for number in range(1, count + 1) if number not in present)
        else:
            # Under AWX a slice does not know its number: count the distinct slices (AWX jobs) instead.
            reported = len({_part_key(run) for run in sliced})
            if reported < count:
                missing.append("%d of %d slice(s)" % (count - reported, count))
    sites = [str(site) for site in (planned_sites or [])]
    missing.extend("site %s" % site for site in sites if site not in {run.get("site") for run in runs})
    reasons = []
    if missing:
        reasons.append("no report from %s" % _names(missing))
    covered = {row["source_host"] for matrix in matrices for row in matrix.rows}
    absent = sorted(str(host) for host in (planned_hosts or []) if str(host) not in covered)
    if absent:
        reasons.append("%d planned source host(s) in no report: %s" % (len(absent), _names(absent)))
    for source, report, run, _matrix in parts:
        reasons.extend("%s: %s" % (part_label(run), reason) for reason in report.get("partial_reasons") or []
                       if isinstance(reason, str) and reason.startswith(_INTERRUPTED))
        inner = [clean_text(item, 120) for item in run.get("missing") or [] if isinstance(item, str)]
        if run.get("parts") and inner:
            # What a merged part lacked stays lacking in the merge of merges.
            reasons.append("%s: no report from %s" % (part_label(run), _names(inner)))

    started = sorted(str(report["started_at"]) for _source, report, _run, _matrix in parts if report.get("started_at"))
    try:
        merged = packed_report(combine(matrices), generated_at, started_at=started[0] if started else None,
                               title=title or first_report.get("title"), baseline=baseline,
                               baseline_source=baseline_source, baseline_scope=baseline_scope,
                               only_peers=(first_report.get("scope") or {}).get("only_peers"))
    except AuditMatrixError as error:
        raise AuditMergeError(str(error)) from None
    archives = merge_archive_sections([report.get("archive_configuration") for _source, report, _run, _matrix in parts])
    if archives is not None:
        merged["archive_configuration"] = archives
    merged["partial_reasons"] = reasons + merged["partial_reasons"]
    merged["complete"] = not merged["partial_reasons"]
    site_names = {run.get("site") for run in runs}
    merged["run"] = {
        "id": first_run["id"], "slice": None, "slices": count,
        "site": site_names.pop() if len(site_names) == 1 else None, "job": None,
        "registry": dict(first_run["registry"]),
        "parts": [{"source": clean_text(source, 300), "label": part_label(run), "id": run.get("id"),
                   "slice": run.get("slice"), "slices": run.get("slices"), "site": run.get("site"),
                   "job": run.get("job"), "started_at": clean_text(report.get("started_at"), 40),
                   "generated_at": clean_text(report.get("generated_at"), 40),
                   "source_hosts": len((report.get("scope") or {}).get("source_hosts") or [])}
                  for source, report, run, _matrix in parts],
        "missing": missing + ["source host %s" % host for host in absent],
        "notes": notes,
    }
    return merged


def read_reports(patterns: Any, cwd: Optional[str] = None) -> List[Tuple[str, Any]]:
    """(path, parsed report) of every file the paths or glob patterns name, in the order given (each glob sorted)."""
    if isinstance(patterns, str):
        patterns = [part.strip() for part in patterns.split(",") if part.strip()]
    if not isinstance(patterns, (list, tuple)) or not patterns \
            or not all(isinstance(pattern, str) and pattern.strip() for pattern in patterns):
        raise AuditMergeError("echo_audit_merge_reports must list the JSON reports to merge (paths or glob patterns), "
                              "got %r" % (patterns,))
    found: List[Tuple[str, Any]] = []
    real: Dict[str, str] = {}
    for pattern in patterns:
        pattern = os.path.join(cwd or os.getcwd(), os.path.expanduser(pattern.strip()))
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not paths:
            raise AuditMergeError("echo_audit_merge_reports: %s matches no file" % pattern)
        for path in paths:
            if not os.path.isfile(path):
                raise AuditMergeError("echo_audit_merge_reports: %s %s" % (
                    path, "is not a file" if os.path.exists(path) else "does not exist"))
            key = os.path.realpath(path)
            if key in real:
                raise AuditMergeError("%s is listed twice (as %s and %s)" % (key, real[key], path))
            real[key] = path
            try:
                with open(path, encoding="utf-8") as stream:
                    text = stream.read()
            except (OSError, UnicodeDecodeError) as error:
                raise AuditMergeError("%s cannot be read (%s)" % (path, getattr(error, "strerror", None) or error)) \
                    from None
            try:
                found.append((path, parse_report(text, path)))
            except AuditMatrixError as error:
                raise AuditMergeError(str(error)) from None
    return found
