#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: echo_audit_report
short_description: Build the DICOM echo audit matrix and write its reports, once, on the controller
version_added: 0.1.0
description:
  - The report step of the C(dicom.network.echo_audit) role, run once (C(run_once)) after every source host's echo,
    also when every one of them failed or was unreachable.
  - Reads the run's journal (the plans of M(dicom.network.echo_audit_plan) and the results the echo action wrote
    there), builds the matrix (rows are calling AEs, columns called AEs, one cell per planned check; a check that
    could not run is V(not_run) with the reason), compares it with the baseline, and writes the reports in every
    format asked (JSON, HTML, Markdown, CSV, JUnit XML) as C(<prefix>-<UTC stamp>.<extension>) and C(latest.<extension>),
    mode 0640, all or none, each atomically. Then it removes the journal.
  - A run that is partial (limited hosts or peers, checks that did not run) never replaces the baseline unless
    C(baseline_save_partial) says so, nor a C(latest.json) that is the baseline.
  - Returns the summary lines, the counts, the verdict and the paths as data, and publishes them with C(set_stats)
    (key C(echo_audit)) for AWX and ansible-runner. It does not fail on the verdict; the role shows the summary and
    fails there.
  - With O(recover=true), reports every journal that interrupted runs left in O(report_dir) instead, as
    C(<prefix>-<run>-interrupted.<extension>), and removes those journals.
author:
  - dicom.network contributors (@dicom-network)
attributes:
  action:
    support: full
    description: Runs entirely in the action plugin on the controller.
  async:
    support: none
    description: Not run as an async job.
  bypass_host_loop:
    support: none
    description: Use C(run_once).
  check_mode:
    support: full
    description: Builds the reports and says which files would be written; writes nothing.
  diff_mode:
    support: partial
    description: In check mode, the list of files that would be written (not their content).
  platform:
    support: full
    platforms: posix
    description: The controller.
options:
  run:
    description: The C(run) returned by M(dicom.network.echo_audit_plan). Required unless O(recover=true).
    type: dict
  standin:
    description:
      - For the go-live check (C(dicom.network.golive)) - C(plan) (the RV(dicom.network.echo_audit_plan#module:standin)
        of the plan step), C(host) (the stand-in host) and C(result) (what C(ansible.builtin.async_status) returned for
        its M(dicom.network.listen) job). The reports then have a go-live section with both sides' view of each call to
        the device, and any problem found there fails the verdict.
    type: dict
  recover:
    description: Report the journals of interrupted runs in O(report_dir) instead of O(run).
    type: bool
    default: false
  report_dir:
    description: With O(recover=true), the report directory (C(echo_audit_report_dir)).
    type: str
    default: reports
  report_prefix:
    description: With O(recover=true), the file name prefix of the reports.
    type: str
    default: echo-audit
  report_formats:
    description: With O(recover=true), the formats to write (a list, or comma-separated text).
    type: raw
    default: [json, html, md, csv, junit]
  title:
    description: With O(recover=true), the title when a journal records none.
    type: str
    default: DICOM echo audit
  markdown_max_columns:
    description: With O(recover=true), the widest matrix drawn in Markdown.
    type: raw
    default: 30
  report_max_failures:
    description: With O(recover=true), the most failures listed in HTML and Markdown.
    type: raw
    default: 200
  console_max_lines:
    description: With O(recover=true), the most failure lines in RV(lines).
    type: raw
    default: 20
seealso:
  - module: dicom.network.echo_audit_plan
  - module: dicom.network.echo
"""

EXAMPLES = r"""
- name: Build the matrix and write the reports (the role's report step)
  dicom.network.echo_audit_report:
    run: "{{ plan.run }}"
  run_once: true
  register: report

- name: Report the audits that were interrupted before their report
  dicom.network.echo_audit_report:
    recover: true
    report_dir: /srv/dicom-audit
  run_once: true
"""

RETURN = r"""
lines:
  description: The summary for the console; the first line has the counts, the last where the reports are.
  returned: always
  type: list
  elements: str
summary:
  description: C(total), C(ok), C(failed) (ran, not as expected), C(not_run), C(by_outcome), C(source_hosts).
  returned: success, without recover
  type: dict
baseline:
  description: The counts of the comparison with the baseline (C(broke), C(fixed), C(appeared), C(disappeared),
    C(changed), C(new_failures)), or V(null) without a baseline.
  returned: success, without recover
  type: dict
verdict:
  description: C(failed) and its C(reasons), from C(fail_on_unexpected) and C(fail_on_regression).
  returned: success, without recover
  type: dict
complete:
  description: Whether the report covers every planned check and all of them ran.
  returned: success, without recover
  type: bool
partial_reasons:
  description: Why the report is partial.
  returned: success, without recover
  type: list
  elements: str
reports:
  description: Format to the path that holds this run's report afterwards (C(latest.*), or the run's own files when
    C(latest.*) was kept); empty in check mode.
  returned: success, without recover
  type: dict
run_reports:
  description: Format to the path of this run's own report file; empty in check mode.
  returned: success, without recover
  type: dict
would_write:
  description: In check mode, every file a real run would write.
  returned: success, without recover
  type: list
  elements: str
head:
  description: The report's top-level keys other than its rows, columns and cells (what publishing reads).
  returned: success, without recover
  type: dict
recovered:
  description: With O(recover=true), the report files of each interrupted run.
  returned: success, with recover
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    run=dict(type="dict"),
    standin=dict(type="dict"),
    recover=dict(type="bool", default=False),
    report_dir=dict(type="str", default="reports"),
    report_prefix=dict(type="str", default="echo-audit"),
    report_formats=dict(type="raw", default=["json", "html", "md", "csv", "junit"]),
    title=dict(type="str", default="DICOM echo audit"),
    markdown_max_columns=dict(type="raw", default=30),
    report_max_failures=dict(type="raw", default=200),
    console_max_lines=dict(type="raw", default=20),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dicom.network.echo_audit_report runs in its action plugin on the controller")


if __name__ == "__main__":
    main()
