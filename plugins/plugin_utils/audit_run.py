# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One echo audit run on the controller, from its options to its report files and verdict.

Free of Ansible imports. The ``dicom.network.echo_audit_plan`` action checks the options and the
inventory and starts the run's journal; the echo action writes each host's results into that
journal as they come back; ``dicom.network.echo_audit_report`` reads the journal, builds the
matrix, writes every report and says the verdict. ``recover`` reads the journal of a play that
stopped before its report; ``merge_run`` merges the reports of one run's slices or sites
(:mod:`audit_merge`) and writes them like one run's.

The journal is ``<report dir>/.journal-<stamp>-<random>/`` holding ``plan.json`` (the run and
every host's plan, without secrets) and one JSON file per echo call. Without
``echo_audit_journal``, and in check mode, it lives in a temporary directory instead, so that a
run never leaves anything in the report directory it did not ask for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.plugin_utils.audit_archive import archive_section, drift_problems
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    AuditMatrixError,
    baseline_cells,
    build_packed,
    matrix_of,
    parse_report,
    paused_gc,
    results_from_journal,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import (
    AuditMergeError,
    merge_reports,
    read_reports,
    select_run,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import EXTENSIONS, build_view, render_reports
from ansible_collections.dicom.network.plugins.plugin_utils.audit_standin import standin_section
from ansible_collections.dicom.network.plugins.plugin_utils.audit_tls import certificate_section, expiry_problems
from ansible_collections.dicom.network.plugins.plugin_utils.controller_files import (
    ControllerFileError,
    FileSpec,
    apply_plans,
    atomic_write,
    plan_file,
)
from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import without_secrets

FORMAT_EXTENSIONS = EXTENSIONS
# Their defaults, the role's, for callers that do not give them (recover).
COUNT_OPTIONS = {"markdown_max_columns": 30, "report_max_failures": 200, "console_max_lines": 20, "publish_keep": 30,
                 "report_keep": 0}
BASELINE_SCOPES = ("all", "run")
REPORT_MODE = 0o640
JOURNAL_MODE = 0o750
PLAN_FILE = "plan.json"
JOURNAL_PREFIX = ".journal-"
RUN_SCHEMA = 1
_OCTAL_MODE = re.compile(r"0?[0-7]{3}")


class AuditRunError(ValueError):
    """A problem of the run's options or files, said in the words of the role's variables."""


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_of(moment: str) -> str:
    """20261207T143000Z of 2026-12-07T14:30:00Z: the name part of a run."""
    return moment.replace("-", "").replace(":", "")


def string_list(value: Any, name: str, errors: List[str]) -> List[str]:
    """A list of strings from a list or, as ``-e name=a,b`` gives it, comma-separated text."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    errors.append("%s must be a list of names (or a comma-separated string), got %r" % (name, value))
    return []


def _whole_number(value: Any, name: str, errors: List[str]) -> int:
    # -e gives text: digits in text count as a number. A negative limit would drop the last lines.
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        errors.append("%s must be a whole number >= 0, got %s" % (name, value))
        return 0
    number = int(value)
    if number < 0:
        errors.append("%s must be a whole number >= 0, got %s" % (name, value))
    return number


def _flag(value: Any, name: str, errors: List[str]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    errors.append("%s must be true or false, got %r" % (name, value))
    return False


def _absolute(path: str, cwd: Optional[str] = None) -> str:
    path = os.path.expanduser(path)
    return os.path.realpath(os.path.join(cwd or os.getcwd(), path))


def _octal_mode(mode: Any, name: str, errors: List[str]) -> int:
    example = "0750" if name.endswith("dir_mode") else "0640"
    if isinstance(mode, int) and not isinstance(mode, bool):
        mode = "%04o" % mode if mode < 0o1000 else str(mode)
    if not isinstance(mode, str) or not _OCTAL_MODE.fullmatch(mode):
        errors.append('%s must be an octal mode in quotes like "%s", got %s' % (name, example, mode))
        mode = example
    return int(mode, 8)


def check_options(raw: Mapping[str, Any], cwd: Optional[str] = None) -> Tuple[Dict[str, Any], List[str]]:
    """The role's report options, normalised, and every problem with them (each names its variable)."""
    errors: List[str] = []
    options: Dict[str, Any] = {}
    formats = string_list(raw.get("report_formats"), "echo_audit_report_formats", errors)
    unknown = [fmt for fmt in formats if fmt not in FORMAT_EXTENSIONS]
    if unknown:
        errors.append("echo_audit_report_formats: %s is not a report format (choose from %s)"
                      % (", ".join(unknown), ", ".join(FORMAT_EXTENSIONS)))
    elif not formats:
        errors.append("echo_audit_report_formats is empty: name at least one of %s" % ", ".join(FORMAT_EXTENSIONS))
    options["report_formats"] = [fmt for fmt in FORMAT_EXTENSIONS if fmt in formats]
    for name, default in COUNT_OPTIONS.items():
        value = raw.get(name)
        options[name] = _whole_number(default if value is None else value, "echo_audit_" + name, errors)
    options["report_dir_mode"] = _octal_mode(raw.get("report_dir_mode", "0750"), "echo_audit_report_dir_mode", errors)
    options["metrics_mode"] = _octal_mode(raw.get("metrics_mode", "0640"), "echo_audit_metrics_mode", errors)
    for name, default in (("tls_expiry_warn_days", 30), ("tls_expiry_fail_days", 7)):
        value = raw.get(name, default)
        # Empty (or null) switches the warning or the failure off.
        options[name] = None if value is None or value == "" else _whole_number(value, "echo_audit_" + name, errors)
    prefix = raw.get("report_prefix")
    if not isinstance(prefix, str) or not prefix or "/" in prefix or prefix.startswith("."):
        errors.append("echo_audit_report_prefix must be a file name part such as echo-audit, got %r" % (prefix,))
    options["report_prefix"] = prefix
    options["title"] = str(raw.get("title") or "DICOM echo audit")
    scope = raw.get("baseline_scope", "all")
    if scope not in BASELINE_SCOPES:
        errors.append("echo_audit_baseline_scope must be all or run, got %r" % (scope,))
    options["baseline_scope"] = scope
    for name in ("baseline_save", "baseline_save_partial", "journal", "fail_on_unexpected", "fail_on_regression",
                 "fail_on_change", "fail_on_config_drift"):
        options[name] = _flag(raw.get(name, False), "echo_audit_" + name, errors)
    report_dir = raw.get("report_dir")
    if not isinstance(report_dir, str) or not report_dir.strip():
        errors.append("echo_audit_report_dir must be a directory path, got %r" % (report_dir,))
        report_dir = "reports"
    options["report_dir"] = _absolute(report_dir, cwd)
    baseline = raw.get("baseline") or ""
    if not isinstance(baseline, str):
        errors.append("echo_audit_baseline must be a path (or empty), got %r" % (baseline,))
        baseline = ""
    options["baseline"] = _absolute(baseline, cwd) if baseline else ""
    options["baseline_save_path"] = options["baseline"] or os.path.join(options["report_dir"], "baseline.json")
    options["only_peers"] = string_list(raw.get("only_peers"), "echo_audit_only_peers", errors)
    options["limit"] = raw.get("limit") or None
    return options, errors


def read_baseline(options: Mapping[str, Any]) -> Tuple[Any, List[str]]:
    """The baseline report, parsed (None when there is none yet), and what is wrong with it."""
    path = options["baseline"]
    if not path:
        return None, []
    if not os.path.exists(path):
        if options["baseline_save"]:
            # The first run that is asked to save a baseline creates it.
            return None, []
        return None, ["echo_audit_baseline: %s does not exist" % path]
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        return None, ["echo_audit_baseline: %s cannot be read (%s)" % (path, getattr(error, "strerror", None) or error)]
    fix = ("point echo_audit_baseline at a JSON report such as latest.json, or remove the file%s"
           % (" so that this run saves the first baseline" if options["baseline_save"] else ""))
    if not text.strip():
        return None, ["echo_audit_baseline: %s is empty, not a report of dicom.network.echo_audit (a copy that "
                      "failed, or a full disk?): %s" % (path, fix)]
    try:
        report = parse_report(text, path)
        baseline_cells(report, path)
    except AuditMatrixError as error:
        return None, ["echo_audit_baseline: %s; %s" % (error, fix)]
    return report, []


def report_paths(options: Mapping[str, Any], name: str) -> Dict[str, str]:
    return {fmt: os.path.join(options["report_dir"], "%s.%s" % (name, FORMAT_EXTENSIONS[fmt]))
            for fmt in options["report_formats"]}


def check_report_dir(options: Mapping[str, Any], check_mode: bool) -> List[str]:
    """Create the report directory (not in check mode); refuse anything but files where reports go."""
    directory = options["report_dir"]
    if os.path.exists(directory) and not os.path.isdir(directory):
        return ["echo_audit_report_dir: %s exists and is not a directory" % directory]
    if not os.path.isdir(directory):
        if check_mode:
            return []
        try:
            os.makedirs(directory, mode=options["report_dir_mode"])
            os.chmod(directory, options["report_dir_mode"])
        except OSError as error:
            return ["echo_audit_report_dir: cannot create %s (%s)" % (directory, error.strerror or error)]
    elif not os.access(directory, os.W_OK | os.X_OK):
        return ["echo_audit_report_dir: %s is not writable by this user" % directory]
    paths = list(report_paths(options, "latest").values())
    if options["baseline_save"]:
        paths.append(options["baseline_save_path"])
    in_the_way = [path for path in paths if os.path.lexists(path) and not os.path.isfile(path)]
    if in_the_way:
        return ["%s: not a regular file, where this run writes a report (latest.* or the baseline). Move it away, or "
                "choose another echo_audit_report_dir." % ", ".join(in_the_way)]
    return []


def interrupted_journals(report_dir: str, planned_only: bool = False) -> List[str]:
    """Journal directories of earlier runs that never wrote their reports, oldest first.

    ``planned_only`` leaves out those without a plan: their audit stopped before it echoed anything.
    """
    try:
        names = sorted(os.listdir(report_dir))
    except OSError:
        return []
    paths = [os.path.join(report_dir, name) for name in names
             if name.startswith(JOURNAL_PREFIX) and os.path.isdir(os.path.join(report_dir, name))]
    return [path for path in paths if not planned_only or os.path.isfile(os.path.join(path, PLAN_FILE))]


def start_journal(options: Mapping[str, Any], run: Mapping[str, Any], plans: Mapping[str, Any],
                  check_mode: bool) -> str:
    """Create this run's journal with its plan file; returns its directory."""
    keep = options["journal"] and not check_mode
    if keep:
        directory = tempfile.mkdtemp(prefix="%s%s-" % (JOURNAL_PREFIX, stamp_of(run["started_at"])),
                                     dir=options["report_dir"])
    else:
        directory = tempfile.mkdtemp(prefix="dicom-network-audit-")
    os.chmod(directory, JOURNAL_MODE)
    plans = without_secrets(plans)
    # Every plan repeats the registry entries of its host's peers, 18 of the 27 MB of a 300 x 300 plan that the
    # report step reads again: each distinct entry is written once, in "aes", and a plan's "aes" gives its index
    # there (10.6 MB, read in 0.2 s less).
    shared: Dict[Any, int] = {}
    for plan in plans.values():
        if isinstance(plan, dict) and isinstance(plan.get("aes"), dict):
            plan["aes"] = {name: _shared_index(shared, entry) for name, entry in plan["aes"].items()}
    document = {"schema": RUN_SCHEMA, "started_at": run["started_at"], "title": options["title"],
                "only_peers": options["only_peers"], "limit": options["limit"], "kept": keep,
                "identity": run.get("identity"), "plans": plans, "aes": [dict(key[0]) for key in shared]}
    try:
        atomic_write(os.path.join(directory, PLAN_FILE), json.dumps(document, default=str).encode("utf-8"),
                     REPORT_MODE, sync=False)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def _shared_index(shared: Dict[Any, int], entry: Any) -> Any:
    """The index of a plan's AE entry in plan.json's "aes" (the entry itself when it cannot be a key)."""
    try:
        # With the types: True and 1 are equal keys but not the same entry.
        return shared.setdefault((tuple(entry.items()), tuple(map(type, entry.values()))), len(shared))
    except (AttributeError, TypeError):
        return entry


def read_journal(directory: str) -> Tuple[Dict[str, Any], List[Any]]:
    """A journal's plan document and its echo records, in the order they were written."""
    try:
        with open(os.path.join(directory, PLAN_FILE), encoding="utf-8") as stream, paused_gc():
            document = json.load(stream)
    except FileNotFoundError:
        raise AuditRunError("%s has no %s: that audit stopped before its plan was written, so it echoed nothing; "
                            "remove the directory once no audit is running" % (directory, PLAN_FILE)) from None
    except (OSError, ValueError) as error:
        raise AuditRunError("%s/%s cannot be read: %s" % (directory, PLAN_FILE, error)) from None
    try:
        shared = document.get("aes") or []
        for plan in document["plans"].values():
            # A plan's AEs by index into the document's (start_journal); inline in a journal of an earlier version.
            if isinstance(plan, dict) and isinstance(plan.get("aes"), dict):
                plan["aes"] = {name: shared[entry] if isinstance(entry, int) else entry
                               for name, entry in plan["aes"].items()}
    except (AttributeError, IndexError, KeyError, TypeError):
        raise AuditRunError("%s/%s is not the plan of a dicom.network audit" % (directory, PLAN_FILE)) from None
    entries = []
    names = [name for name in os.listdir(directory) if name.endswith(".json") and name != PLAN_FILE]
    for name in sorted(names, key=lambda name: os.stat(os.path.join(directory, name)).st_mtime_ns):
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as stream:
                entries.append(stream.read())
        except OSError as error:
            raise AuditRunError("%s/%s cannot be read: %s" % (directory, name, error)) from None
    return document, entries


def prune_runs(options: Mapping[str, Any], current: str, check_mode: bool = False) -> List[str]:
    """The report files of the runs beyond ``report_keep`` (the newest runs, ``current`` always among them),
    deleted (only listed in check mode), oldest first. Only ``<prefix>-<stamp>[-<n>].<extension>`` files of a
    report format are runs: latest.*, the baseline and anything else in the directory stay."""
    keep = options.get("report_keep") or 0
    directory = options["report_dir"]
    if keep <= 0 or not os.path.isdir(directory):
        return []
    extensions = "|".join(re.escape(ext) for ext in sorted(set(FORMAT_EXTENSIONS.values()), key=len, reverse=True))
    pattern = re.compile(r"^(%s-(\d{8}T\d{6}Z)(?:-(\d+))?)\.(?:%s)$" % (re.escape(options["report_prefix"]), extensions))
    runs: Dict[str, List[str]] = {}
    order: Dict[str, Tuple[str, int]] = {}
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if match:
            runs.setdefault(match.group(1), []).append(entry)
            order[match.group(1)] = (match.group(2), int(match.group(3) or 1))
    older = sorted((run for run in runs if run != current), key=order.__getitem__, reverse=True)[keep - 1:]
    protected = {options["baseline"], options["baseline_save_path"]}
    deleted = []
    for run in sorted(older, key=order.__getitem__):
        for entry in sorted(runs[run]):
            path = os.path.join(directory, entry)
            if path in protected:
                continue
            if not check_mode:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            deleted.append(path)
    return deleted


def _free_name(options: Mapping[str, Any], stamp: str) -> str:
    """<prefix>-<stamp>, or -2, -3... when another run of the same second took it."""
    taken = set(os.listdir(options["report_dir"])) if os.path.isdir(options["report_dir"]) else set()
    base = "%s-%s" % (options["report_prefix"], stamp)
    for suffix in [""] + ["-%d" % number for number in range(2, 1000)]:
        name = base + suffix
        if not any(entry.startswith(name + ".") for entry in taken):
            return name
    return "%s-%d" % (base, os.getpid())


def build_run_report(document: Mapping[str, Any], entries: Sequence[Any], options: Mapping[str, Any],
                     generated_at: str, baseline: Any = None,
                     setup_failures: Optional[Mapping[str, Any]] = None,
                     interrupted: Optional[str] = None, standin: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The packed report of a journal (see audit_matrix.build_packed), with the go-live section when
    ``standin`` is given (see audit_standin.standin_section)."""
    try:
        results = results_from_journal(list(entries))
        report = build_packed(
            document["plans"], results, generated_at,
            started_at=document.get("started_at"), title=document.get("title") or options["title"],
            baseline=baseline, baseline_source=options.get("baseline") or None,
            baseline_scope=options["baseline_scope"], only_peers=document.get("only_peers") or None,
            limit=document.get("limit"), interrupted=interrupted, setup_failures=setup_failures)
    except AuditMatrixError as error:
        raise AuditRunError(str(error)) from None
    if isinstance(document.get("identity"), Mapping):
        # Which run, slice and site this is: what merging and the published history go by.
        report["run"] = dict(document["identity"])
    if standin:
        report["standin"] = standin_section(matrix_of(report), standin)
    archives = archive_section(document["plans"], results)
    if archives is not None:
        report["archive_configuration"] = archives
    return report


def verdict(view: Mapping[str, Any], options: Mapping[str, Any],
            standin: Optional[Mapping[str, Any]] = None,
            certificates: Optional[Dict[str, Any]] = None,
            archives: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    summary = view["summary"]
    counts = view.get("baseline_counts")
    reasons = []
    if options["fail_on_unexpected"] and summary["ok"] < summary["total"]:
        reasons.append("%d of %d check(s) not ok" % (summary["total"] - summary["ok"], summary["total"]))
    new_failures = (counts.get("new_failures", counts.get("broke", 0)) if counts else 0) or 0
    if options["fail_on_regression"] and new_failures > 0:
        reasons.append("%d new failure(s) since the baseline (%d pair(s) broke)" % (new_failures, counts.get("broke", 0)))
    if options.get("fail_on_change") and counts and counts.get("peer_changes"):
        reasons.append("%d pair(s) whose peer changed since the baseline" % counts["peer_changes"])
    expiring = expiry_problems(certificates)
    if expiring:
        reasons.append("%d TLS certificate(s) expired or expiring within %s day(s)" % (
            len(expiring), certificates["fail_days"]))
    drifted = drift_problems(archives)
    if options.get("fail_on_config_drift") and drifted:
        reasons.append("%d archive(s) whose modality table differs from the registry: %s"
                       % (len(drifted), ", ".join(drifted)))
    if standin and standin["problems"]:
        reasons.append("%d go-live problem(s) with %s" % (len(standin["problems"]), standin["device"]["name"]))
    return {"failed": bool(reasons), "reasons": reasons}


def write_run_reports(report: Mapping[str, Any], options: Mapping[str, Any], templates_dir: str, name: str,
                      latest: bool, baseline_path: Optional[str], check_mode: bool) -> Dict[str, Any]:
    """Render every format and write ``name``.*, ``latest.*`` and the baseline, all or nothing."""
    texts = render_reports(report, options["report_formats"], templates_dir,
                           markdown_max_columns=options["markdown_max_columns"],
                           failures_limit=options["report_max_failures"])
    run_files = report_paths(options, name)
    specs = []
    for fmt, path in run_files.items():
        data = texts[fmt].encode("utf-8")
        specs.append(FileSpec(path, data, exclusive=True))
        if latest:
            specs.append(FileSpec(report_paths(options, "latest")[fmt], data))
        if fmt == "json" and baseline_path:
            specs.append(FileSpec(baseline_path, data))
    try:
        plans = [plan_file(spec, options.get("metrics_mode", REPORT_MODE) if spec.dest.endswith(".prom") else REPORT_MODE,
                           check_mode=check_mode) for spec in specs]
        if not check_mode:
            apply_plans(plans)
    except ControllerFileError as error:
        raise AuditRunError(str(error)) from None
    return {"run_reports": run_files, "written": [plan.dest for plan in plans],
            "changed": any(plan.changed for plan in plans)}


def report_run(document: Mapping[str, Any], entries: Sequence[Any], options: Mapping[str, Any], templates_dir: str,
               check_mode: bool = False, setup_failures: Optional[Mapping[str, Any]] = None,
               interrupted: Optional[str] = None, name: Optional[str] = None,
               standin: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Build, write and judge one run's reports; what the report action returns, without Ansible's keys."""
    generated_at = utc_now()
    baseline, problems = (None, []) if interrupted else read_baseline(options)
    if problems:
        raise AuditRunError(problems[0])
    # The journal's results and the reports are hundreds of thousands of objects without cycles: without the
    # collector's passes over them the step takes 0.2 s less at 300 x 300.
    with paused_gc():
        report = build_run_report(document, entries, options, generated_at, baseline, setup_failures, interrupted,
                                  standin)
        return conclude_run(report, options, templates_dir, generated_at, baseline, check_mode, interrupted, name)


def merge_run(patterns: Any, options: Mapping[str, Any], templates_dir: str, check_mode: bool = False,
              run_id: Optional[str] = None, slices: Any = None, sites: Optional[Sequence[str]] = None,
              hosts: Optional[Sequence[str]] = None, cwd: Optional[str] = None) -> Dict[str, Any]:
    """Merge the reports of one run's slices or sites (paths or globs), then write and judge the merged reports
    as :func:`report_run` does one run's."""
    generated_at = utc_now()
    baseline, problems = read_baseline(options)
    if problems:
        raise AuditRunError(problems[0])
    try:
        reports, notes = select_run(read_reports(patterns, cwd), run_id)
        report = merge_reports(reports, generated_at, planned_slices=slices,
                               planned_sites=sites, planned_hosts=hosts, baseline=baseline,
                               baseline_source=options.get("baseline") or None, baseline_scope=options["baseline_scope"])
    except AuditMergeError as error:
        raise AuditRunError("the reports cannot be merged: %s" % error) from None
    merged = report["run"]
    notes = ["merged %d report(s) of run %s: %s" % (len(merged["parts"]), merged["id"],
                                                    ", ".join(part["label"] for part in merged["parts"]))] \
        + notes + merged["notes"]
    return conclude_run(report, options, templates_dir, generated_at, baseline, check_mode, notes=notes)


def conclude_run(report: Dict[str, Any], options: Mapping[str, Any], templates_dir: str, generated_at: str,
                 baseline: Any, check_mode: bool = False, interrupted: Optional[str] = None,
                 name: Optional[str] = None, notes: Sequence[str] = ()) -> Dict[str, Any]:
    """Write and judge a built report (of one run, or merged): the console lines, baseline and latest.* rules."""
    # The TLS certificates the checks saw, rated against this run's expiry days (a merged run's too).
    report["certificates"] = certificate_section(matrix_of(report), options.get("tls_expiry_warn_days", 30),
                                                 options.get("tls_expiry_fail_days", 7))
    view = build_view(report, "summary", console_limit=options["console_max_lines"])
    partial = list(report["partial_reasons"])
    name = name or _free_name(options, stamp_of(generated_at))
    # A partial run never replaces a baseline that is latest.json itself, nor the baseline it is asked to save.
    latest_path = report_paths(options, "latest").get("json")
    protected = bool(partial) and not options["baseline_save_partial"] and options["baseline"] == latest_path
    latest = not interrupted and not protected
    notes = list(notes)
    baseline_path = None
    if options["baseline_save"] and not interrupted:
        if "json" not in options["report_formats"]:
            notes.append("Baseline not saved: echo_audit_report_formats has no json.")
        elif partial and not options["baseline_save_partial"]:
            notes.append("Baseline %s kept as it was: this run is partial (%s). Set echo_audit_baseline_save_partial=true "
                         "to save a partial run." % (options["baseline_save_path"], "; ".join(partial)))
        else:
            baseline_path = options["baseline_save_path"]
            if baseline is None:
                notes.append("No baseline yet at %s: this run is saved as the baseline for the next runs." % baseline_path)
    if protected:
        notes.append("latest.* kept as it was: it is the baseline (%s) and this run is partial (%s). Set "
                     "echo_audit_baseline_save_partial=true to overwrite it anyway." % (options["baseline"], "; ".join(partial)))
    written = write_run_reports(report, options, templates_dir, name, latest, baseline_path, check_mode)
    try:
        pruned = prune_runs(options, name, check_mode)
    except OSError as error:
        pruned = []
        notes.append("Older runs not deleted (echo_audit_report_keep): %s" % error)
    if pruned:
        notes.append("%s %d report file(s) of older runs, beyond echo_audit_report_keep=%d."
                     % ("Would delete" if check_mode else "Deleted", len(pruned), options["report_keep"]))
    shown = report_paths(options, "latest" if latest else name)
    extensions = ",".join(FORMAT_EXTENSIONS[fmt] for fmt in options["report_formats"])
    where = "%s/%s.{%s}" % (options["report_dir"], "latest" if latest else name, extensions)
    lines = list(view["console"]) + notes
    lines.append("reports (check mode, not written): %s" % where if check_mode else "reports: %s" % where)
    if len(lines) == 2 and not notes:
        # All as expected: one line says it and where the reports are.
        lines = ["%s; %s" % tuple(lines)]
    judged = verdict(view, options, report.get("standin"), report.get("certificates"), report.get("archive_configuration"))
    if judged["failed"]:
        lines.append("failed because %s" % " and ".join(judged["reasons"]))
    return {
        "changed": written["changed"] or bool(pruned),
        "lines": lines,
        "title": view.get("title") or report["title"],
        "generated_at": generated_at,
        "summary": view["summary"],
        "baseline": view.get("baseline_counts"),
        "complete": not partial,
        "partial_reasons": partial,
        "verdict": judged,
        "reports": {} if check_mode else shown,
        "run_reports": {} if check_mode else written["run_reports"],
        "would_write": written["written"] if check_mode else [],
        "pruned": pruned,
        "name": name,
        "formats": list(options["report_formats"]),
        # The run's identity without the registry digests (thousands of entries in a large inventory).
        "run": {key: value for key, value in (report.get("run") or {}).items() if key not in ("registry", "notes")},
        "report": report,
    }
