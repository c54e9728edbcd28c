# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_matrix
short_description: Build the DICOM echo audit matrix and its JSON report
version_added: 1.0.0
author:
  - dicom.network contributors
description:
  - Builds the report of the C(dicom.network.echo_audit) role
    from what every source host planned and what its M(dicom.network.echo) calls returned.
  - Rows are calling AEs (one per source host and calling AE), columns are called AEs, both sorted by site, kind and
    AE title. Every planned check becomes exactly one cell.
  - A check that did not run (host unreachable, task failed or skipped, peer missing from the module's answer)
    becomes a cell with outcome V(not_run), C(ok=false) and a message saying why.
  - Every string is cleaned into one printable line (control and bidirectional characters replaced, long text cut);
    the report templates escape it again for their format.
  - With O(baseline), lists the pairs (source host, calling AE title, peer) that broke, were fixed, appeared,
    disappeared, or changed outcome with the same verdict.
options:
  _input:
    description:
      - Source host name to its plan, the result of P(dicom.network.echo_audit_peers#filter).
      - Every planned check becomes one cell.
    type: dict
    required: true
  results:
    description:
      - Source host name to the registered result of its looped M(dicom.network.echo) task (loop items carry
        the plan's call as C(item)). A host missing here, or mapped to V(null), never ran the task.
    type: dict
    default: {}
  journal:
    description:
      - Instead of O(results), the entries the M(dicom.network.echo) action plugin wrote with its O(dicom.network.echo#module:journal)
        option (JSON texts or dictionaries), as read back after a play that stopped early.
    type: list
    elements: raw
  interrupted:
    description:
      - Marks a report rebuilt after an interrupted play; the text says what happened. Source hosts without any
        result become V(not_run) cells with reason C(interrupted), and the report is partial.
    type: string
  limit:
    description:
      - The host limit of the run as text (the role passes C(ansible_limit) and an C(echo_audit_hosts) other than
        C(dicom_sources)), recorded in the report; a limited run is partial (reason C(hosts limited to <limit>)).
    type: string
  setup_failures:
    description:
      - Source host name to the reason its preparation failed (for example the pynetdicom virtualenv), or V(null).
        Those hosts' checks become V(not_run) with reason C(setup_failed) and that text, whatever they registered.
    type: dict
  generated_at:
    description: Time stamp of the report (ISO 8601). Defaults to now, in UTC with seconds, like C(2025-01-31T08:00:00Z).
    type: string
  started_at:
    description: When the audit started (ISO 8601).
    type: string
  title:
    description: Title of the report.
    type: string
    default: DICOM echo audit
  baseline:
    description: A previous JSON report of this filter, parsed or as JSON text, to compare with.
    type: raw
  baseline_source:
    description: Where the baseline came from (a path), shown in the reports.
    type: string
  baseline_scope:
    description:
      - V(all) compares with every pair of the baseline, so pairs of hosts left out of this run are reported as
        disappeared.
      - V(run) compares only pairs of the source hosts in this run and, with O(only_peers), of those peers.
    type: string
    choices: [all, run]
    default: all
  only_peers:
    description: The peer limit of this run (registry names or AE titles), recorded in the report and used by O(baseline_scope=run).
    type: list
    elements: string
  as_json:
    description:
      - Return the report as compact JSON text instead of a dictionary.
      - ansible-core 2.19 reads a variable holding one long string far faster than one holding millions of
        values (a 300 x 300 matrix has about 2 million), so the role keeps its report this way; the other
        echo audit filters accept either form.
    type: bool
    default: false
  from_hostvars:
    description:
      - Read each source host's plan, registered echo result and setup failure from its host variables, named by
        this dictionary's C(plan), C(results) and C(setup_failure) keys; O(_input) then maps each source host to
        its variables (C(hostvars[host])), and O(results) and O(setup_failures) are not used.
      - One look-up of a host's variables instead of one per dictionary, as ansible-core 2.19 computes a host's
        variables anew on every look-up (about 0.8 ms each with 300 hosts).
    type: dict
  packed:
    description:
      - Return the report in its packed form, as the role passes it between its tasks
        (P(dicom.network.echo_matrix_view#filter) and P(dicom.network.echo_matrix_export#filter) read it like the report).
      - The packed form has the report's keys except RV(_value.cells); instead, C(variants) lists each distinct answer
        (expect, outcome, ok, message, phase, status, reject, peer implementation version and class UID, peer max PDU,
        address, source address, transfer syntax, not-run reason) once, and C(packed_cells) holds per cell
        C([row index, column index, variant index, rtt, timings, started_at]), C(rtt) and C(timings) as lists in the
        order of RV(_value.cells) C(rtt_ms) (min, avg, max) and C(timings_ms) (connect, associate, echo, release, total),
        V(false) where a value is missing. C(packing) is V(1).
      - A 300 x 300 matrix is then about 10 MB of JSON instead of 72 MB.
    type: bool
    default: false
  with_summary:
    description:
      - Return a dictionary of C(report), the report as the other options make it, and C(summary), what
        P(dicom.network.echo_matrix_view#filter) gives for its V(summary) view with O(console_limit).
      - The summary is taken from the report while it is still built, so one task gives both. With the report as
        JSON text (O(as_json)), a second task would parse 7 MB again at 300 x 300.
    type: bool
    default: false
  console_limit:
    description: With O(with_summary), at most this many regression lines and failure lines in C(summary.console).
    type: int
    default: 20
"""

EXAMPLES = r"""
---
- name: Build the matrix on the controller
  ansible.builtin.set_fact:
    report: >-
      {{ plans | dicom.network.echo_matrix(results=results,
                                           baseline=lookup('ansible.builtin.file', 'reports/latest.json'),
                                           baseline_source='reports/latest.json') }}
  vars:
    plans: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars) | map(attribute='plan', default=None))) }}"
    results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars) | map(attribute='echo', default=None))) }}"
  run_once: true

- name: The same, reading every host's variables once, packed and as JSON text, as the role keeps it
  ansible.builtin.set_fact:
    report: >-
      {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)))
         | dicom.network.echo_matrix(from_hostvars={'plan': 'plan', 'results': 'echo', 'setup_failure': 'venv_error'},
                                     as_json=true, packed=true) }}
  run_once: true

- name: The report and its summary from one task
  ansible.builtin.set_fact:
    audit: >-
      {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)))
         | dicom.network.echo_matrix(from_hostvars={'plan': 'plan', 'results': 'echo', 'setup_failure': 'venv_error'},
                                     as_json=true, packed=true, with_summary=true, console_limit=10) }}
  run_once: true

- name: Show the summary lines
  ansible.builtin.debug:
    msg: "{{ audit.summary.console }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - The JSON report (schema_version 1), as a dictionary or, with O(as_json), as JSON text; with O(packed), in its
      packed form.
    - With O(with_summary), a dictionary of C(report) (the report as just described) and C(summary) (the V(summary)
      view of P(dicom.network.echo_matrix_view#filter)).
  type: dict
  contains:
    schema_version:
      description: Version of this document's layout; a baseline newer than the collection is refused.
      type: int
      sample: 1
    generated_at:
      description: O(generated_at).
      type: string
    started_at:
      description: O(started_at).
      type: string
    title:
      description: O(title).
      type: string
    scope:
      description: C(source_hosts) in this report, C(only_peers) and C(limit).
      type: dict
    complete:
      description:
        - V(true) when the report covers every planned check of the whole inventory and all of them ran. A partial
          report is never saved as the baseline unless the role is told to.
      type: bool
    partial_reasons:
      description: Why the report is partial (interrupted, host or peer limit, checks that did not run); empty when complete.
      type: list
      elements: string
    sites:
      description: Every site of a row or column, sorted, the empty string (no site) last.
      type: list
      elements: string
    rows:
      description:
        - Calling AEs (id, source_host, calling, calling_ae_title, site, kind, description, ae_host, ae_port, echoed_from).
        - C(echoed_from) names the probe host that ran the echo on this source's behalf (C(delegate_to)), else V(null).
      type: list
      elements: dict
    columns:
      description: Called AEs (id, name, ae_title, host, port, site, kind, description, inline).
      type: list
      elements: dict
    cells:
      description:
        - One per (source host, calling AE, peer), in row then column order.
        - Keys C(row), C(column), C(source_host), C(calling_ae_title), C(calling_site), C(peer), C(called_ae_title),
          C(called_site), C(peer_host), C(peer_port), C(expect), C(outcome), C(ok), C(message), C(phase), C(status),
          C(reject), C(rtt_ms), C(timings_ms), C(peer_implementation_version), C(peer_implementation_class_uid),
          C(peer_max_pdu), C(address), C(source_address), C(transfer_syntax), C(started_at), C(not_run_reason).
      type: list
      elements: dict
    summary:
      description: C(total), C(ok), C(failed) (ran, not as expected), C(not_run), C(by_outcome), C(source_hosts).
      type: dict
    baseline:
      description:
        - V(null) without O(baseline); otherwise C(source), C(generated_at), C(title) (the baseline report's title;
          the console and the reports point out a title other than this run's), C(scope), C(counts) and the lists
          C(broke), C(fixed), C(appeared), C(disappeared), C(changed) of pairs with their C(before) and C(after)
          (each V(null) when the pair is absent on that side, else its C(outcome), C(ok), C(expect) and C(message)).
        - C(counts) has the length of each list and C(new_failures), the pairs that broke plus the pairs that appeared
          and are not ok (a check that did not run is not ok), which is what a "no new failures" gate counts.
      type: dict
"""

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ansible.errors import AnsibleFilterError

from ansible_collections.dicom.network.plugins.plugin_utils._worker_heap import (
    freeze_inherited_heap,
    outside_inherited_heap,
)

# In an Ansible worker, before the report code below is compiled there (see _worker_heap).
freeze_inherited_heap()

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    AuditMatrixError,
    build_packed,
    results_from_journal,
    unpack_report,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import build_view, view_limit
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import type_name
from ansible_collections.dicom.network.plugins.plugin_utils._native import native_data, stored_value


_HOSTVARS_KEYS = ("plan", "results", "setup_failure")


def _from_hostvars(variables: Any, names: Any) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """Plans, results and setup failures from each host's variables (hostvars[host]), each read once."""
    if not isinstance(names, Mapping) or sorted(names) != sorted(_HOSTVARS_KEYS) \
            or not all(isinstance(name, str) for name in names.values()):
        raise AuditMatrixError("from_hostvars must name the variables %s, got %r" % (", ".join(_HOSTVARS_KEYS), names))
    variables = stored_value(variables)
    if not isinstance(variables, Mapping):
        raise AuditMatrixError("with from_hostvars, the input must be a dictionary of source host: its variables, "
                               "got %s" % type_name(variables))
    plans: Dict[str, Any] = {}
    results: Dict[str, Any] = {}
    failures: Dict[str, Any] = {}
    for host, host_variables in variables.items():
        if not isinstance(host_variables, Mapping):
            raise AuditMatrixError("host %s: its variables must be a dictionary, got %s"
                                   % (host, type_name(host_variables)))
        plans[host] = host_variables.get(names["plan"])
        results[host] = host_variables.get(names["results"])
        failures[host] = host_variables.get(names["setup_failure"])
    return plans, results, failures


def echo_matrix(plans: Any, results: Any = None, generated_at: Optional[str] = None, started_at: Optional[str] = None,
                title: Optional[str] = None, baseline: Any = None, baseline_source: Optional[str] = None,
                baseline_scope: str = "all", only_peers: Optional[Sequence[str]] = None,
                as_json: bool = False, journal: Optional[Sequence[Any]] = None, interrupted: Optional[str] = None,
                limit: Optional[str] = None, setup_failures: Any = None, packed: bool = False,
                from_hostvars: Optional[Mapping[str, str]] = None, with_summary: bool = False,
                console_limit: int = 20) -> Any:
    """Filter glue: build the report, turning bad input into AnsibleFilterError."""
    if generated_at is None:
        # The role's form (and what echo_publish_history reads): UTC with Z, whole seconds.
        generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        console_limit = view_limit("console_limit", console_limit)
        if from_hostvars is not None:
            plans, results, setup_failures = _from_hostvars(plans, native_data(from_hostvars))
        if journal is not None:
            results = results_from_journal(native_data(journal))
        report = build_packed(plans, results, str(generated_at), started_at=started_at,
                              title=title, baseline=stored_value(baseline) or None, baseline_source=baseline_source,
                              baseline_scope=baseline_scope, only_peers=native_data(only_peers),
                              limit=limit or None, interrupted=interrupted or None,
                              setup_failures=setup_failures, plain=stored_value)
        summary = build_view(report, "summary", console_limit=console_limit) if with_summary else None
    except AuditMatrixError as error:
        raise AnsibleFilterError("dicom.network.echo_matrix: %s" % error) from None
    if not packed:
        report = unpack_report(report)
    if as_json:
        # check_circular: the report is a tree built here; the check doubles the time of 72 MB of JSON.
        report = json.dumps(report, ensure_ascii=False, separators=(",", ":"), check_circular=False)
    return {"report": report, "summary": summary} if with_summary else report


class FilterModule:
    """DICOM echo audit matrix filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_matrix": outside_inherited_heap(echo_matrix)}
