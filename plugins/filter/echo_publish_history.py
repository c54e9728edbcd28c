# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_publish_history
short_description: Merge an echo audit run into the publish history and decide which old runs to delete
version_added: 0.1.0
author:
  - dicom.network contributors
description:
  - Plans one publication of the C(dicom.network.echo_audit) role's reports on a publish host, where each run has a
    directory C(runs/<stamp>/) (the stamp is the report's C(generated_at) without C(-) and C(:), for example
    C(20250131T080000Z)) and C(history.json) lists the runs.
  - Checks the whole C(history.json) before anything is decided. A file that is not valid JSON, is not a history of
    this role, has a newer C(schema_version), or has an entry with a wrong field is refused with a message naming the
    field, so the role stops before it writes or deletes anything on the publish host.
  - Adds the new run (a run with the same stamp is replaced), sorts the runs newest first and keeps O(keep) of them. The
    new run is always kept; the others are returned in RV(_value.pruned), for deletion.
  - Only stamps that match the pattern C(^[0-9]{8}T[0-9]{6}Z$) are ever returned for deletion, and only stamps of runs
    the history listed, so the role never deletes a directory it did not publish.
  - The pass rate of a run is C(ok / total) in per cent (V(null) for a run without checks); a run that did not run
    every planned check keeps the report's C(complete) flag and C(partial_reasons).
options:
  _input:
    description:
      - The text of the publish host's C(history.json), or V(null) or an empty string when there is none yet.
    type: raw
    required: true
  report:
    description:
      - The run's JSON report, as a dictionary or as JSON text, or the RV(dicom.network.echo_audit_report#module:head)
        of M(dicom.network.echo_audit_report).
    type: raw
    required: true
  formats:
    description: The report formats this run wrote (the role's C(echo_audit_report_formats)).
    type: list
    elements: string
    required: true
  directory:
    description: The publish directory on the publish host, an absolute path.
    type: string
    required: true
  keep:
    description: How many runs to keep, the new one included; V(0) keeps every run.
    type: int
    default: 30
  dir_mode:
    description: Mode of the directories, checked to be an octal mode such as V("0750").
    type: string
    default: "0750"
  file_mode:
    description: Mode of the files, checked to be an octal mode such as V("0640").
    type: string
    default: "0640"
  base_url:
    description: URL under which the publish directory is served, only used to build the links in RV(_value.urls).
    type: string
    default: ""
  host:
    description: Name of the publish host, for the error messages.
    type: string
"""

EXAMPLES = r"""
---
- name: Plan the publication
  ansible.builtin.set_fact:
    plan: >-
      {{ (history.content | ansible.builtin.b64decode if history.content is defined else none)
         | dicom.network.echo_publish_history(report=report, formats=['json', 'html'],
                                              directory='/srv/echo-audit', keep=30) }}

- name: Delete the runs that are no longer kept
  ansible.builtin.file:
    path: "/srv/echo-audit/runs/{{ item }}"
    state: absent
  loop: "{{ plan.pruned }}"
"""

RETURN = r"""
_value:
  description: What to write and to delete on the publish host.
  type: dict
  contains:
    stamp:
      description: The new run's stamp, the name of its directory under C(runs/).
      type: string
      sample: 20250131T080000Z
    run:
      description:
        - The new run's history entry, with C(stamp), C(generated_at), C(started_at), C(title), C(total), C(ok),
          C(failed), C(not_run), C(pass_rate), C(complete), C(partial_reasons), C(source_hosts), C(formats),
          C(path) and C(files) (format to path relative to the publish directory).
      type: dict
    history:
      description: The new C(history.json) document (C(kind), C(schema_version), C(updated_at), C(runs) newest first).
      type: dict
    history_json:
      description: RV(_value.history) as the text to write.
      type: string
    kept:
      description: Stamps of the runs kept, newest first.
      type: list
      elements: string
    pruned:
      description: Stamps of the runs to delete (their directories C(runs/<stamp>)).
      type: list
      elements: string
    settings:
      description: The checked settings (C(directory) normalized, C(keep), C(dir_mode), C(file_mode), C(base_url)).
      type: dict
    paths:
      description: Absolute paths on the publish host of C(directory), C(history), C(index), C(run_directory) and
        C(run) (the run's HTML report, or its first report without HTML).
      type: dict
    urls:
      description: C(index) and C(run) under O(base_url), or V(null) without O(base_url).
      type: dict
"""

from typing import Any, Callable, Dict, Optional, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import AuditMatrixError
from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import AuditPublishError, plan_publish


def echo_publish_history(history: Any, report: Any, formats: Sequence[str], directory: str, keep: int = 30,
                         dir_mode: str = "0750", file_mode: str = "0640", base_url: Optional[str] = "",
                         host: Optional[str] = None) -> Dict[str, Any]:
    """Filter glue: the publication plan, bad input as AnsibleFilterError."""
    try:
        return plan_publish(history, report, formats, directory,
                            keep, dir_mode, file_mode, base_url,
                            host)
    except (AuditPublishError, AuditMatrixError) as error:
        raise AnsibleFilterError("dicom.network.echo_publish_history: %s" % error) from None


class FilterModule:
    """DICOM echo audit publish history filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_publish_history": echo_publish_history}
