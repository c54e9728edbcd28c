#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: echo_audit_plan
short_description: Check a DICOM echo audit's inventory and options, and plan every source host's echoes
version_added: 0.1.0
description:
  - The first step of the C(dicom.network.echo_audit) role, run once (C(run_once)) on the controller before any
    association is attempted.
  - Reads the variables of every host of the play (C(dicom_aes), C(dicom_local_aes), C(dicom_peers),
    C(dicom_peers_*), C(dicom_bind_address), C(dicom_echo_via)), resolves each source host's peers, and checks the
    role's report options, the baseline and the report directory.
  - Every problem is collected and the task fails once with all of them, each naming the variable and the host or
    registry entry it belongs to (a mistake in C(dicom_aes) is said once, not once per host).
  - Starts the run's journal on the controller (C(<report_dir>/.journal-<run>/), or a temporary directory in check
    mode or with O(journal=false)): C(plan.json) holds every host's plan without secrets, and the echo action adds
    each host's results to it as they come back, so that an interrupted run can still be reported.
  - The options are the role's variables without their C(echo_audit_) prefix; see the role's documentation
    (C(ansible-doc -t role dicom.network.echo_audit)) for each one.
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
    description: Use C(run_once); every host's plan is in the one result.
  check_mode:
    support: full
    description: Checks and plans as usual; the report directory is not created and the journal is temporary.
  diff_mode:
    support: none
    description: Nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The controller.
options:
  report_dir: {description: echo_audit_report_dir, type: str, required: true}
  report_dir_mode: {description: echo_audit_report_dir_mode, type: raw, default: "0750"}
  report_prefix: {description: echo_audit_report_prefix, type: str, default: echo-audit}
  report_formats: {description: echo_audit_report_formats (a list, or comma-separated text), type: raw, required: true}
  title: {description: echo_audit_title, type: str, default: DICOM echo audit}
  baseline: {description: echo_audit_baseline, type: str, default: ""}
  baseline_scope: {description: echo_audit_baseline_scope, type: str, choices: [all, run], default: all}
  baseline_save: {description: echo_audit_baseline_save, type: raw, default: false}
  baseline_save_partial: {description: echo_audit_baseline_save_partial, type: raw, default: false}
  journal: {description: echo_audit_journal, type: raw, default: true}
  only_peers: {description: echo_audit_only_peers (a list, or comma-separated text), type: raw}
  limit: {description: What narrows the run to fewer source hosts (C(--limit), C(echo_audit_hosts)); the run is then partial., type: str}
  markdown_max_columns: {description: echo_audit_markdown_max_columns, type: raw, default: 30}
  report_max_failures: {description: echo_audit_report_max_failures, type: raw, default: 200}
  console_max_lines: {description: echo_audit_console_max_lines, type: raw, default: 20}
  fail_on_unexpected: {description: echo_audit_fail_on_unexpected, type: raw, default: true}
  fail_on_regression: {description: echo_audit_fail_on_regression, type: raw, default: false}
  connect_timeout: {description: echo_audit_connect_timeout, type: raw}
  acse_timeout: {description: echo_audit_acse_timeout, type: raw}
  dimse_timeout: {description: echo_audit_dimse_timeout, type: raw}
  parallel: {description: echo_audit_parallel, type: raw}
  count: {description: echo_audit_count, type: raw}
  max_pdu: {description: echo_audit_max_pdu, type: raw}
  tls: {description: echo_audit_tls, type: raw}
seealso:
  - module: dicom.network.echo
  - module: dicom.network.echo_audit_report
"""

EXAMPLES = r"""
- name: Plan the audit (the role's first task)
  dicom.network.echo_audit_plan:
    report_dir: reports
    report_formats: [json, html]
  run_once: true
  register: plan
"""

RETURN = r"""
plans:
  description: Each source host's plan; C(calls) (one per calling AE, with its peers), C(aes), C(bind_address),
    C(echo_via) and C(echo_peers) (the peers of every call, each with the calling AE title it is echoed as).
  returned: success
  type: dict
run:
  description: The run for M(dicom.network.echo_audit_report), C(journal), C(started_at), C(check_mode) and the
    checked C(options).
  returned: success
  type: dict
errors:
  description: Every problem found, one line each.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


ARGUMENT_SPEC = dict(
    report_dir=dict(type="str", required=True),
    report_dir_mode=dict(type="raw", default="0750"),
    report_prefix=dict(type="str", default="echo-audit"),
    report_formats=dict(type="raw", required=True),
    title=dict(type="str", default="DICOM echo audit"),
    baseline=dict(type="str", default=""),
    baseline_scope=dict(type="str", choices=["all", "run"], default="all"),
    baseline_save=dict(type="raw", default=False),
    baseline_save_partial=dict(type="raw", default=False),
    journal=dict(type="raw", default=True),
    only_peers=dict(type="raw"),
    limit=dict(type="str"),
    markdown_max_columns=dict(type="raw", default=30),
    report_max_failures=dict(type="raw", default=200),
    console_max_lines=dict(type="raw", default=20),
    fail_on_unexpected=dict(type="raw", default=True),
    fail_on_regression=dict(type="raw", default=False),
    connect_timeout=dict(type="raw"),
    acse_timeout=dict(type="raw"),
    dimse_timeout=dict(type="raw"),
    parallel=dict(type="raw"),
    count=dict(type="raw"),
    max_pdu=dict(type="raw"),
    tls=dict(type="raw"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dicom.network.echo_audit_plan runs in its action plugin on the controller")


if __name__ == "__main__":
    main()
