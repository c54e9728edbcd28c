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
    C(dicom_peers_*), C(dicom_bind_address), C(dicom_echo_via), C(dicom_echo_api)), resolves each source host's
    peers, and checks the role's report options, the baseline and the report directory.
  - Every problem is collected and the task fails once with all of them, each naming the variable and the host or
    registry entry it belongs to (a mistake in C(dicom_aes) is said once, not once per host).
  - Starts the run's journal on the controller (C(<report_dir>/.journal-<run>/), or a temporary directory in check
    mode or with O(journal=false)). C(plan.json) holds every host's plan without secrets, and the echo action writes
    each host's results beside it (one file per host) as they come back, so that an interrupted run can still be reported.
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
  report_dir:
    description: C(echo_audit_report_dir), the directory on the controller for the reports; created when missing.
    type: str
    required: true
  report_dir_mode:
    description: C(echo_audit_report_dir_mode), the mode of a report directory this step creates, a quoted octal mode such as V("0750").
    type: raw
    default: "0750"
  report_prefix:
    description: C(echo_audit_report_prefix), the file name prefix of the reports.
    type: str
    default: echo-audit
  report_keep:
    description: C(echo_audit_report_keep), the runs whose reports the report step keeps in the report directory.
    type: raw
    default: 0
  report_formats:
    description: C(echo_audit_report_formats), the report formats, a list or comma-separated text of V(json), V(html), V(md), V(csv), V(junit) and V(prom).
    type: raw
    required: true
  title:
    description: C(echo_audit_title), the title of the reports.
    type: str
    default: DICOM echo audit
  baseline:
    description: C(echo_audit_baseline), a JSON report of an earlier run to compare with; empty for none.
    type: str
    default: ""
  baseline_scope:
    description: C(echo_audit_baseline_scope), V(all) or V(run), which pairs of the baseline are compared.
    type: str
    default: all
    choices: [all, run]
  baseline_save:
    description: C(echo_audit_baseline_save), save this run's JSON report as the baseline.
    type: raw
    default: false
  baseline_save_partial:
    description: C(echo_audit_baseline_save_partial), save it even when the run is partial.
    type: raw
    default: false
  journal:
    description: C(echo_audit_journal), keep the journal in the report directory, so that an interrupted run can be recovered.
    type: raw
    default: true
  only_peers:
    description: C(echo_audit_only_peers), check only these peers (registry names or AE titles), a list or comma-separated text.
    type: raw
  limit:
    description: What narrows the run to fewer source hosts than a full audit (C(--limit), C(echo_audit_hosts)); the run is then partial.
    type: str
  markdown_max_columns:
    description: C(echo_audit_markdown_max_columns), the widest matrix drawn in the Markdown report.
    type: raw
    default: 30
  report_max_failures:
    description: C(echo_audit_report_max_failures), the most failures listed in the HTML and Markdown reports.
    type: raw
    default: 200
  console_max_lines:
    description: C(echo_audit_console_max_lines), the most failure lines in the summary.
    type: raw
    default: 20
  publish_keep:
    description: C(echo_audit_publish_keep), the runs kept on the publish host, checked here before any echo.
    type: raw
    default: 30
  fail_on_unexpected:
    description: C(echo_audit_fail_on_unexpected), the verdict fails when a check is not as expected.
    type: raw
    default: true
  fail_on_regression:
    description: C(echo_audit_fail_on_regression), the verdict fails on new failures since the baseline.
    type: raw
    default: false
  fail_on_change:
    description: C(echo_audit_fail_on_change), the verdict fails when a peer changed since the baseline (its
      implementation, max PDU, TLS certificate or round trip).
    type: raw
    default: false
  tls_expiry_warn_days:
    description: C(echo_audit_tls_expiry_warn_days), a TLS certificate expiring within this many days is listed and warned about; empty for no warning.
    type: raw
    default: 30
  tls_expiry_fail_days:
    description: C(echo_audit_tls_expiry_fail_days), a TLS certificate expired or expiring within this many days fails the verdict; empty never fails.
    type: raw
    default: 7
  metrics_mode:
    description: C(echo_audit_metrics_mode), the file mode of the C(prom) report (for node_exporter's textfile collector).
    type: raw
    default: "0640"
  retries:
    description: C(echo_audit_retries), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:retries), before any echo.
    type: raw
  retry_delay:
    description: C(echo_audit_retry_delay), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:retry_delay), before any echo.
    type: raw
  fail_on_config_drift:
    description: C(echo_audit_fail_on_config_drift), the verdict fails when an archive's modality table differs from the registry.
    type: raw
    default: false
  connect_timeout:
    description: C(echo_audit_connect_timeout), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:connect_timeout), before any echo.
    type: raw
  acse_timeout:
    description: C(echo_audit_acse_timeout), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:acse_timeout), before any echo.
    type: raw
  dimse_timeout:
    description: C(echo_audit_dimse_timeout), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:dimse_timeout), before any echo.
    type: raw
  parallel:
    description: C(echo_audit_parallel), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:parallel), before any echo.
    type: raw
  count:
    description: C(echo_audit_count), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:count), before any echo.
    type: raw
  max_pdu:
    description: C(echo_audit_max_pdu), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:max_pdu), before any echo.
    type: raw
  tls:
    description: C(echo_audit_tls), checked here as M(dicom.network.echo) checks its O(dicom.network.echo#module:tls), before any echo.
    type: raw
  standin:
    description:
      - For the go-live check (C(dicom.network.golive)) - C(device), the registry name of the new device
        (C(echo_audit_standin_device)), and C(host), the inventory host that stands in for it with
        M(dicom.network.listen) (C(echo_audit_standin_host)). Left out for an audit.
      - The result then has RV(standin). The step fails when either is missing, when the host is not in the
        inventory, when no source host lists the device among its peers, or when one calling AE title is to be
        accepted by the device from one host and refused from another.
    type: dict
  run_id:
    description:
      - The audit run this play belongs to (C(echo_audit_run_id)); every slice or site of one audit gives the same.
      - Empty - the AWX workflow job (C(awx-workflow-<awx_workflow_job_id>), which the slices of a sliced job share),
        else the AWX job (C(awx-job-<awx_job_id>)), else the start time with a random tail.
    type: str
    default: ""
  slice:
    description: This play's slice number of the run, from 1 (C(echo_audit_slice)). AWX does not tell a slice its
      number, so under AWX job slicing leave it empty; each slice is then told apart by its AWX job.
    type: raw
  slices:
    description: How many slices the run has (C(echo_audit_slices)); under AWX, the job template's slice count.
    type: raw
  site:
    description: The site (or controller) that runs this play (C(echo_audit_site)), for runs merged per site.
    type: str
    default: ""
  awx:
    description: C(job_id) and C(workflow_job_id), what AWX sets as C(awx_job_id) and C(awx_workflow_job_id).
    type: dict
  unmatched_hosts_pattern:
    description:
      - Set by the collection's playbooks when their host pattern (C(echo_audit_hosts), default C(dicom_sources))
        matches no host of the inventory; the step then fails with a message that names the pattern, instead of
        an audit of nothing that would exit 0.
    type: str
    default: ""
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
    C(echo_via) and C(echo_peers) (the peers of every call, each with the calling AE title it is echoed as); for an
    archive echoed through its REST API also C(echo_api) (C(dicom_echo_api) without the password, with
    C(has_password)) and C(drift) (the C(registry) its modality table is compared with, and the C(required) AEs).
  returned: success
  type: dict
run:
  description: The run for M(dicom.network.echo_audit_report), C(journal), C(started_at), C(check_mode), the
    checked C(options) and C(identity) (C(id), C(slice), C(slices), C(site), C(job) and C(registry), a digest of
    each C(dicom_aes) entry), which becomes the report's C(run).
  returned: success
  type: dict
standin:
  description:
    - With O(standin), the device (C(name), C(ae_title), C(host), C(port)) and the calling AE titles that must
      call it, by expectation (C(accept), C(reject), C(blocked)).
  returned: success, with standin
  type: dict
  sample: {"name": "newct", "ae_title": "NEWCT", "host": "10.20.30.40", "port": 104, "accept": ["PACS"],
           "reject": ["OLDWS"], "blocked": []}
errors:
  description: Every problem found, one line each, when there are several (one alone is in C(msg)).
  returned: failure, with more than one problem
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


ARGUMENT_SPEC = dict(
    report_dir=dict(type="str", required=True),
    report_dir_mode=dict(type="raw", default="0750"),
    report_prefix=dict(type="str", default="echo-audit"),
    report_keep=dict(type="raw", default=0),
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
    publish_keep=dict(type="raw", default=30),
    fail_on_unexpected=dict(type="raw", default=True),
    fail_on_regression=dict(type="raw", default=False),
    fail_on_change=dict(type="raw", default=False),
    tls_expiry_warn_days=dict(type="raw", default=30),
    tls_expiry_fail_days=dict(type="raw", default=7),
    metrics_mode=dict(type="raw", default="0640"),
    retries=dict(type="raw"),
    retry_delay=dict(type="raw"),
    fail_on_config_drift=dict(type="raw", default=False),
    connect_timeout=dict(type="raw"),
    acse_timeout=dict(type="raw"),
    dimse_timeout=dict(type="raw"),
    parallel=dict(type="raw"),
    count=dict(type="raw"),
    max_pdu=dict(type="raw"),
    tls=dict(type="raw"),
    run_id=dict(type="str", default=""),
    slice=dict(type="raw"),
    slices=dict(type="raw"),
    site=dict(type="str", default=""),
    awx=dict(type="dict"),
    unmatched_hosts_pattern=dict(type="str", default=""),
    standin=dict(type="dict"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dicom.network.echo_audit_plan runs in its action plugin on the controller")


if __name__ == "__main__":
    main()
