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
    format asked (JSON, HTML, Markdown, CSV, JUnit XML, Prometheus text) as C(<prefix>-<UTC stamp>.<extension>) and
    C(latest.<extension>), mode 0640 (the Prometheus file C(metrics_mode)), all or none, each atomically. Then it removes
    the journal.
  - A run that is partial (limited hosts or peers, checks that did not run) never replaces the baseline unless
    C(baseline_save_partial) says so, nor a C(latest.json) that is the baseline.
  - Returns the summary lines, the counts, the verdict and the paths as data, and publishes them with C(set_stats)
    (key C(echo_audit)) for AWX and ansible-runner. It does not fail on the verdict; the role shows the summary and
    fails there.
  - With O(recover=true), reports every journal that interrupted runs left in O(report_dir) instead, as
    C(<prefix>-<run>-interrupted.<extension>), and removes those journals.
  - With O(merge), merges the JSON reports of one audit run's slices (AWX job slicing, C(--limit) slices) or sites
    (one controller per site) into the report one play over all their source hosts would have written - the same
    matrix, summary, baseline diff and formats - and writes and judges it like a run's own. It refuses reports
    built from different registries (naming the C(dicom_aes) entries that differ), a slice or site given twice,
    and a source host in two reports with different results; the merged report is partial, naming them, when a
    planned slice, site or source host has no report.
  - Every report has a C(run) section (C(id), C(slice), C(slices), C(site), C(job), C(registry)); a merged one
    also C(parts) (each merged report), C(missing) and C(notes).
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
    description: The C(run) returned by M(dicom.network.echo_audit_plan). Required unless O(recover=true) or O(merge).
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
  merge:
    description:
      - The JSON reports to merge instead of O(run) - paths or glob patterns (relative to the directory
        C(ansible-playbook) was started from), for example each slice's C(<prefix>-<stamp>.json) or its
        C(latest.json). A glob that matches nothing, a file named twice and a file that is not a report fail.
      - Reports of other runs among them are left aside (and named); see O(merge_run_id).
    type: list
    elements: str
  merge_run_id:
    description: With O(merge), the run to merge (the C(run.id) of its reports); empty - the run that started last
      among the reports given.
    type: str
    default: ""
  merge_slices:
    description: With O(merge), how many slices the run was planned with; empty - what the reports say (their
      C(run.slices)). A planned slice without a report makes the merged report partial, naming it.
    type: raw
  merge_sites:
    description: With O(merge), the sites that must each have a report (a list, or comma-separated text); a missing
      one makes the merged report partial, naming it.
    type: raw
  merge_hosts:
    description: With O(merge), the source hosts the merged report must cover (the role gives the inventory's); the
      merged report is partial, naming them, when any is in no report.
    type: raw
  report_dir:
    description: With O(recover=true) or O(merge), the report directory (C(echo_audit_report_dir)).
    type: str
    default: reports
  report_dir_mode:
    description: With O(merge), the mode of the report directory when it is created.
    type: raw
    default: "0750"
  report_prefix:
    description: With O(recover=true) or O(merge), the file name prefix of the reports.
    type: str
    default: echo-audit
  report_keep:
    description: With O(merge), the runs whose timestamped reports stay in O(report_dir) (C(echo_audit_report_keep); 0 keeps every run).
    type: raw
    default: 0
  report_formats:
    description: With O(recover=true) or O(merge), the formats to write (a list, or comma-separated text).
    type: raw
    default: [json, html, md, csv, junit, prom]
  title:
    description: With O(recover=true), the title when a journal records none. A merged report has its reports' title.
    type: str
    default: DICOM echo audit
  baseline:
    description: With O(merge), a previous JSON report to compare the merged report with (C(echo_audit_baseline)).
    type: str
    default: ""
  baseline_scope:
    description: With O(merge), C(all) or C(run) (C(echo_audit_baseline_scope)).
    type: str
    default: all
  baseline_save:
    description: With O(merge), save the merged JSON report as the baseline (C(echo_audit_baseline_save)).
    type: raw
    default: false
  baseline_save_partial:
    description: With O(merge), save it even when it is partial (C(echo_audit_baseline_save_partial)).
    type: raw
    default: false
  fail_on_unexpected:
    description: With O(merge), the verdict fails when a check is not as expected (C(echo_audit_fail_on_unexpected)).
    type: raw
    default: true
  fail_on_regression:
    description: With O(merge), the verdict fails on new failures since the baseline
      (C(echo_audit_fail_on_regression)).
    type: raw
    default: false
  fail_on_change:
    description: With O(merge), the verdict fails when a peer changed since the baseline (C(echo_audit_fail_on_change)).
    type: raw
    default: false
  fail_on_config_drift:
    description: With O(merge), the verdict fails when an archive's modality table differs from the registry
      (C(echo_audit_fail_on_config_drift)).
    type: raw
    default: false
  tls_expiry_warn_days:
    description: With O(merge), TLS certificates expiring within this many days are listed (C(echo_audit_tls_expiry_warn_days)).
    type: raw
    default: 30
  tls_expiry_fail_days:
    description: With O(merge), TLS certificates expired or expiring within this many days fail the verdict
      (C(echo_audit_tls_expiry_fail_days)).
    type: raw
    default: 7
  metrics_mode:
    description: With O(merge), the mode of the C(prom) report (C(echo_audit_metrics_mode)).
    type: raw
    default: "0640"
  markdown_max_columns:
    description: With O(recover=true) or O(merge), the widest matrix drawn in Markdown.
    type: raw
    default: 30
  report_max_failures:
    description: With O(recover=true) or O(merge), the most failures listed in HTML and Markdown.
    type: raw
    default: 200
  console_max_lines:
    description: With O(recover=true) or O(merge), the most failure lines in RV(lines).
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

- name: Merge the reports of the three slices of one run into the fleet's report
  dicom.network.echo_audit_report:
    merge:
      - /srv/dicom-audit/slice-*/echo-audit-*.json
    merge_slices: 3
    report_dir: /srv/dicom-audit/fleet
  run_once: true
  register: fleet

- name: Merge the reports the site controllers published, requiring every site
  dicom.network.echo_audit_report:
    merge: [/srv/incoming/site-a.json, /srv/incoming/site-b.json, /srv/incoming/site-c.json]
    merge_run_id: nightly-2026-12-07
    merge_sites: [site-a, site-b, site-c]
    baseline: /srv/dicom-audit/fleet/baseline.json
  run_once: true

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
  description: C(failed) and its C(reasons), from C(fail_on_unexpected), C(fail_on_regression), C(fail_on_change),
    C(fail_on_config_drift), the TLS certificates within C(tls_expiry_fail_days) and a go-live check's problems.
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
pruned:
  description: The report files of older runs deleted after this run's were written, beyond C(echo_audit_report_keep)
    (in check mode, those a real run would delete).
  returned: success, without recover
  type: list
  elements: str
would_write:
  description: In check mode, every file a real run would write.
  returned: success, without recover
  type: list
  elements: str
run:
  description: The report's run (C(id), C(slice), C(slices), C(site), C(job); merged - C(parts), C(missing)), without
    the registry digests.
  returned: success, without recover
  type: dict
  sample: {"id": "awx-workflow-4711", "slice": null, "slices": 3, "site": null, "job": null, "missing": ["slice 2 of 3"],
           "parts": [{"label": "slice 1 of 3", "source": "/srv/dicom-audit/slice-1/echo-audit-20261207T020000Z.json"}]}
formats:
  description: The formats written.
  returned: success, without recover
  type: list
  elements: str
head:
  description: The report's top-level keys other than its rows, columns and cells (what publishing reads), and
    C(trend) - the count of peer changes since the baseline and each pair's average round trip (for at most 100
    pairs), which the published index draws.
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
    merge=dict(type="list", elements="str"),
    merge_run_id=dict(type="str", default=""),
    merge_slices=dict(type="raw"),
    merge_sites=dict(type="raw"),
    merge_hosts=dict(type="raw"),
    report_dir=dict(type="str", default="reports"),
    report_dir_mode=dict(type="raw", default="0750"),
    report_prefix=dict(type="str", default="echo-audit"),
    report_keep=dict(type="raw", default=0),
    report_formats=dict(type="raw", default=["json", "html", "md", "csv", "junit", "prom"]),
    title=dict(type="str", default="DICOM echo audit"),
    baseline=dict(type="str", default=""),
    baseline_scope=dict(type="str", default="all"),
    baseline_save=dict(type="raw", default=False),
    baseline_save_partial=dict(type="raw", default=False),
    fail_on_unexpected=dict(type="raw", default=True),
    fail_on_regression=dict(type="raw", default=False),
    fail_on_change=dict(type="raw", default=False),
    fail_on_config_drift=dict(type="raw", default=False),
    tls_expiry_warn_days=dict(type="raw", default=30),
    tls_expiry_fail_days=dict(type="raw", default=7),
    metrics_mode=dict(type="raw", default="0640"),
    markdown_max_columns=dict(type="raw", default=30),
    report_max_failures=dict(type="raw", default=200),
    console_max_lines=dict(type="raw", default=20),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dicom.network.echo_audit_report runs in its action plugin on the controller")


if __name__ == "__main__":
    main()
