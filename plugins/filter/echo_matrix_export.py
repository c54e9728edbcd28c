# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_matrix_export
short_description: Serialize an echo audit report as JSON, CSV or JUnit XML
version_added: 1.0.0
author:
  - dicom.network contributors
description:
  - Writes a report of P(dicom.network.echo_matrix#filter) in a machine format, with that format's own quoting
    done by Python's serializers.
  - V(json) is the report itself (C(schema_version) 1), sorted keys, one cell per line, usable as the baseline of a
    later run.
  - V(csv) has one row per cell (RFC 4180 quoting; a text field starting with C(=), C(+), C(-), C(@), C(|), C(%), a tab
    or a line break gets a leading C(') so a spreadsheet shows it instead of evaluating it).
  - V(junit) has one test suite per calling AE and one test case per cell, with a C(failure) when the outcome is not
    as expected and an C(error) when the check did not run, for CI systems. A test case's C(time) is the check's
    total time (C(timings_ms.total)), whether it passed or failed (else its average round trip, else 0).
options:
  _input:
    description:
      - A report of P(dicom.network.echo_matrix#filter), as a dictionary or as JSON text, in its full or its
        packed form (O(dicom.network.echo_matrix#filter:packed)); V(json) writes the full form either way.
    type: raw
    required: true
  format:
    description: The format.
    type: string
    choices: [json, csv, junit]
    required: true
"""

EXAMPLES = r"""
---
- name: Write the CSV report
  ansible.builtin.copy:
    content: "{{ report | dicom.network.echo_matrix_export('csv') }}"
    dest: /var/lib/dicom-audit/latest.csv
    mode: "0640"
"""

RETURN = r"""
_value:
  description: The serialized report.
  type: string
"""

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.dicom.network.plugins.plugin_utils._worker_heap import (
    freeze_inherited_heap,
    outside_inherited_heap,
)

# In an Ansible worker, before the report code below is compiled there (see _worker_heap).
freeze_inherited_heap()

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import AuditMatrixError
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import export
from ansible_collections.dicom.network.plugins.plugin_utils._native import native_data


def echo_matrix_export(report: Any, format: str) -> str:  # pylint: disable=redefined-builtin
    """Filter glue: one machine-readable serialization of the report."""
    try:
        return export(native_data(report), format)
    except AuditMatrixError as error:
        raise AnsibleFilterError("dicom.network.echo_matrix_export: %s" % error) from None
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("dicom.network.echo_matrix_export: the input is not a report of "
                                 "dicom.network.echo_matrix (%s: %s)" % (type(error).__name__, error)) from None


class FilterModule:
    """DICOM echo audit export filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_matrix_export": outside_inherited_heap(echo_matrix_export)}
