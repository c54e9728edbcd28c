# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_matrix_view
short_description: What the echo audit HTML and Markdown reports, and the console summary, show
version_added: 1.0.0
author:
  - dicom.network contributors
description:
  - Derives from a report of P(dicom.network.echo_matrix#filter) what the report templates of the
    C(dicom.network.echo_audit) role show, so the templates only lay it out and escape it.
  - V(summary) gives the counts and short console lines, V(md) adds the legend (one symbol per outcome), the
    baseline lists, the failures first and the matrix when it is narrow enough, V(html) the same plus the
    whole matrix as escaped markup (readable without JavaScript) and each cell's details as one script-safe
    JSON text for the page's own script.
  - No template loops over the cells of a large matrix, which would cost minutes with ansible-core 2.19.
options:
  _input:
    description:
      - A report of P(dicom.network.echo_matrix#filter), as a dictionary or as JSON text, in its full or its
        packed form (O(dicom.network.echo_matrix#filter:packed)).
    type: raw
    required: true
  view:
    description: What to prepare.
    type: string
    choices: [summary, html, md]
    default: html
  markdown_max_columns:
    description: V(md) includes the matrix only up to this many columns.
    type: int
    default: 30
  failures_limit:
    description: At most this many failures, and pairs per baseline list, in V(html) and V(md).
    type: int
    default: 200
  console_limit:
    description: At most this many failures and regressions in RV(_value.console).
    type: int
    default: 20
"""

EXAMPLES = r"""
---
- name: Print the summary of a report
  ansible.builtin.debug:
    msg: "{{ (report | dicom.network.echo_matrix_view('summary')).console }}"

- name: Render the HTML page
  ansible.builtin.template:
    src: report.html.j2  # uses: {% set v = report | dicom.network.echo_matrix_view('html') %}
    dest: /var/lib/dicom-audit/latest.html
    mode: "0640"
"""

RETURN = r"""
_value:
  description: Presentation data; the keys after RV(_value.console) are not in V(summary).
  type: dict
  contains:
    title:
      description: Report title.
      type: string
    generated_at:
      description: Time stamp of the report.
      type: string
    started_at:
      description: When the audit started.
      type: string
    only_peers:
      description: The peer limit of the run, or V(null).
      type: list
      elements: string
    summary:
      description: The report's summary (total, ok, failed, not_run, by_outcome, source_hosts).
      type: dict
    baseline_counts:
      description:
        - Counts per baseline list (broke, fixed, appeared, disappeared, changed) and C(new_failures) (pairs that broke
          plus pairs that appeared and are not ok), or V(null).
      type: dict
    console:
      description: Summary line, baseline line, regressions and failures, at most O(console_limit) of each.
      type: list
      elements: string
    legend:
      description: Per outcome C(outcome), C(symbol), C(label), C(css), C(index), C(count).
      type: list
      elements: dict
    sites:
      description: Site names of rows and columns, C((no site)) last.
      type: list
      elements: string
    baseline:
      description:
        - V(null), or C(source), C(generated_at), C(scope), C(counts) (as RV(_value.baseline_counts)), C(counts_text)
          (one line) and C(kinds) (non-empty lists with C(kind), C(count), C(lines), C(hidden)).
        - A line names the pair and its outcome before and after, with the expectation of each side when the
          inventory changed it. For V(md) the lines are Markdown already (every text from the report escaped), for
          V(html) plain text to escape.
      type: dict
    failures:
      description: Cells that are not ok, in matrix order, at most O(failures_limit).
      type: list
      elements: dict
    failures_total:
      description: Number of cells that are not ok.
      type: int
    failures_heading:
      description: Heading of the failures, with how many ran not as expected and how many did not run.
      type: string
      sample: "Not ok (6): 4 not as expected, 2 not run"
    failures_hidden:
      description: Failures left out of RV(_value.failures).
      type: int
    data_json:
      description: V(html) only. Each cell's details (rows, columns, per row compact cells, the distinct answers
        and a string table) as JSON in which C(<), C(>) and C(&) are escaped, ready to sit in a
        C(<script type="application/json">) element.
      type: string
    matrix:
      description:
        - V(html) gives C(html), the matrix as markup in which every text is escaped (a header table, then blocks
          of rows that a browser lays out only when on screen), C(row_header_ch), the width of the row headers in
          characters, and C(columns), the number of columns.
        - V(md) gives C(columns) (labels) and C(groups) of rows per site with one symbol per column, or V(null)
          when there are more than O(markdown_max_columns) columns.
      type: dict
    columns_total:
      description: V(md) only. Number of columns of the matrix.
      type: int
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
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import build_view
from ansible_collections.dicom.network.plugins.plugin_utils._native import native_data


def echo_matrix_view(report: Any, view: str = "html", markdown_max_columns: int = 30, failures_limit: int = 200,
                     console_limit: int = 20) -> Dict[str, Any]:
    """Filter glue: presentation data for one report template."""
    try:
        return build_view(native_data(report), view, markdown_max_columns=markdown_max_columns,
                          failures_limit=failures_limit, console_limit=console_limit)
    except AuditMatrixError as error:
        raise AnsibleFilterError("dicom.network.echo_matrix_view: %s" % error) from None
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError("dicom.network.echo_matrix_view: the input is not a report of "
                                 "dicom.network.echo_matrix (%s: %s)" % (type(error).__name__, error)) from None


class FilterModule:
    """DICOM echo audit presentation filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_matrix_view": outside_inherited_heap(echo_matrix_view)}
