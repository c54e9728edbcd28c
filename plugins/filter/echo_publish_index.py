# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_publish_index
short_description: What the index page of published echo audit runs shows
version_added: 0.1.0
author:
  - dicom.network contributors
description:
  - Derives from a publish history (RV(dicom.network.echo_publish_history#filter:_value.history)) what the
    C(index.html) of the C(dicom.network.echo_audit) role's publish directory shows, so that its template only lays it
    out and escapes it.
  - The runs newest first, each with its counts, pass rate, complete or partial flag and one link per report format.
    Links are relative (C(runs/<stamp>/report.<extension>)) and built from checked stamps and format names only.
  - The pass-rate trend as coordinates for an inline SVG chart (no script, no external asset), oldest run on the left;
    a run without checks has no point.
options:
  _input:
    description: A publish history, as a dictionary or as JSON text.
    type: raw
    required: true
  title:
    description: Heading of the page.
    type: string
    default: DICOM echo audit
"""

EXAMPLES = r"""
---
- name: Write the index page
  ansible.builtin.template:
    src: index.html.j2  # uses: {% set v = plan.history | dicom.network.echo_publish_index(title='Site A') %}
    dest: /srv/echo-audit/index.html
    mode: "0640"
"""

RETURN = r"""
_value:
  description: Presentation data of the index page.
  type: dict
  contains:
    title:
      description: O(title), cleaned.
      type: string
    updated_at:
      description: C(generated_at) of the newest run, or V(null).
      type: string
    runs:
      description:
        - The runs newest first, with the history fields plus C(rate_text) (for example C(87.5 %)), C(links)
          (C(format), C(href)) and C(main) (the HTML report, or the first report without HTML).
      type: list
      elements: dict
    count:
      description: Number of runs.
      type: int
    latest:
      description: The newest run, or V(null).
      type: dict
    average_text:
      description: Mean pass rate of the runs with checks.
      type: string
    chart:
      description:
        - C(width), C(height), the plot box C(left), C(right), C(top), C(bottom), C(label_y), C(points) (C(x), C(y),
          C(ok), C(label)), C(polyline) (the points as an SVG C(points) attribute), C(ticks) (C(y), C(label)) and
          C(x_labels) (C(x), C(anchor), C(label)).
      type: dict
"""

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import AuditPublishError, index_view


def echo_publish_index(history: Any, title: str = "DICOM echo audit") -> Dict[str, Any]:
    """Filter glue: presentation data for index.html."""
    try:
        return index_view(history, title)
    except AuditPublishError as error:
        raise AnsibleFilterError("dicom.network.echo_publish_index: the input is not a publish history: %s"
                                 % error) from None


class FilterModule:
    """DICOM echo audit publish index filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_publish_index": echo_publish_index}
