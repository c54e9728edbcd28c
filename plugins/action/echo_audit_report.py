# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of dicom.network.echo_audit_report: the audit's report step, once, on the controller."""

from __future__ import annotations

import os
import shutil

from ansible.plugins.action import ActionBase
from jinja2 import TemplateError

from ansible_collections.dicom.network.plugins.modules.echo_audit_report import ARGUMENT_SPEC
from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import trend_of
from ansible_collections.dicom.network.plugins.plugin_utils.audit_run import (
    AuditRunError,
    check_options,
    check_report_dir,
    interrupted_journals,
    merge_run,
    read_journal,
    report_run,
    string_list,
)

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "roles", "echo_audit", "templates")
SETUP_FAILURE = "_echo_audit_setup_failure"
# What set_stats publishes of the result, for AWX and ansible-runner.
STATS_KEYS = ("title", "generated_at", "run", "summary", "baseline", "lines", "complete", "partial_reasons", "verdict",
              "reports", "run_reports")
_HEAD_KEYS = ("schema_version", "generated_at", "started_at", "title", "run", "scope", "complete", "partial_reasons",
              "summary")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            if args["recover"]:
                result.update(self._recover(args))
            elif args["merge"] is not None:
                result.update(self._merge(args))
            else:
                result.update(self._report(args, task_vars))
        except AuditRunError as error:
            result.update(failed=True, changed=False, msg=str(error))
        except (OSError, TemplateError) as error:
            # A report directory that vanished or a template that a user broke: said in one line, not a traceback.
            result.update(failed=True, changed=False, msg="the reports could not be written: %s: %s"
                          % (type(error).__name__, getattr(error, "strerror", None) or error))
        return result

    def _report(self, args, task_vars):
        run = args["run"]
        if not isinstance(run, dict) or not run.get("journal"):
            raise AuditRunError("run: the result of dicom.network.echo_audit_plan is needed (its run key)")
        journal = run["journal"]
        document, entries = read_journal(journal)
        hostvars = task_vars["hostvars"]
        failures = {}
        for host in document["plans"]:
            variables = hostvars[host] if host in hostvars else {}
            if SETUP_FAILURE in variables:
                failures[host] = str(variables[SETUP_FAILURE])
        check_mode = bool(self._task.check_mode)
        try:
            outcome = report_run(document, entries, run["options"], TEMPLATES, check_mode=check_mode,
                                 setup_failures=failures, standin=args["standin"])
        except AuditRunError as error:
            raise AuditRunError("%s (the echo results stay in %s%s)" % (
                error, journal, ": report them with the playbook dicom.network.recover" if document.get("kept") else ""))
        # Every result is in the reports now; a journal left here would be reported again by recover.
        shutil.rmtree(journal, ignore_errors=True)
        return self._result(outcome, check_mode)

    def _merge(self, args):
        options, errors = check_options(args)
        errors.extend(check_report_dir(options, bool(self._task.check_mode)) if not errors else [])
        sites = string_list(args["merge_sites"], "echo_audit_merge_sites", errors)
        hosts = string_list(args["merge_hosts"], "echo_audit_merge_hosts", errors)
        if errors:
            raise AuditRunError(" | ".join(errors))
        check_mode = bool(self._task.check_mode)
        outcome = merge_run(args["merge"], options, TEMPLATES, check_mode=check_mode, run_id=args["merge_run_id"] or None,
                            slices=args["merge_slices"], sites=sites, hosts=hosts)
        return self._result(outcome, check_mode)

    def _recover(self, args):
        options, errors = check_options(dict(args, baseline="", baseline_save=False))
        if errors:
            raise AuditRunError(" | ".join(errors))
        journals = interrupted_journals(options["report_dir"], planned_only=True)
        lines, reports, changed = [], [], False
        for journal in interrupted_journals(options["report_dir"]):
            if journal not in journals:
                lines.append("%s has no plan.json: that audit stopped before it echoed anything, so there is nothing to "
                             "report. Remove the directory once no audit is running." % journal)
        if not journals:
            lines.append("No interrupted audit run (.journal-* with a plan.json) in %s: nothing to recover."
                         % options["report_dir"])
        for journal in journals:
            document, entries = read_journal(journal)
            name = "%s-%s-interrupted" % (options["report_prefix"], os.path.basename(journal)[len(".journal-"):])
            outcome = report_run(document, entries, options, TEMPLATES, check_mode=bool(self._task.check_mode),
                                 interrupted="the audit started at %s was stopped before its report was written"
                                 % document.get("started_at", "?"), name=name)
            if not self._task.check_mode:
                shutil.rmtree(journal, ignore_errors=True)
            lines.extend(outcome["lines"])
            reports.append(outcome["run_reports"])
            changed = changed or outcome["changed"]
        return {"changed": changed, "lines": lines, "recovered": reports}

    def _result(self, outcome, check_mode):
        result = {key: value for key, value in outcome.items() if key != "report"}
        report = outcome["report"]
        result["head"] = {key: report.get(key) for key in _HEAD_KEYS}
        result["head"]["run"] = outcome["run"]
        result["head"]["trend"] = trend_of(report)
        result["ansible_stats"] = {"data": {"echo_audit": {key: outcome[key] for key in STATS_KEYS}},
                                   "per_host": False, "aggregate": False}
        if self._task.diff and check_mode:
            result["diff"] = {"prepared": "would write %d report file(s):\n%s\n" % (
                len(outcome["would_write"]), "\n".join(outcome["would_write"]))}
            if outcome["pruned"]:
                result["diff"]["prepared"] += "would delete %d report file(s) of older runs (echo_audit_report_keep):\n%s\n" % (
                    len(outcome["pruned"]), "\n".join(outcome["pruned"]))
        return result
