# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: md_escape
short_description: Escape untrusted text for Markdown
version_added: 1.0.0
author:
  - dicom.network contributors
description:
  - Makes text show literally in Markdown, on one line and inside a table cell.
  # A block scalar: in a plain one, the " #" below would start a YAML comment and cut the sentence.
  - >-
    C(&), C(<) and C(>) become HTML entities, so HTML a peer or an inventory sent is shown, never rendered;
    inline Markdown characters (C(\ ` * _ [ ] | ~ #)) are backslash-escaped; line breaks become spaces.
options:
  _input:
    description: The text; V(null) gives an empty string.
    type: raw
    required: true
"""

EXAMPLES = r"""
---
- name: A Markdown table row
  ansible.builtin.debug:
    msg: "| {{ cell.called_ae_title | dicom.network.md_escape }} | {{ cell.message | dicom.network.md_escape }} |"
"""

RETURN = r"""
_value:
  description: The escaped text.
  type: string
"""

from typing import Callable, Dict

from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import markdown_escape


class FilterModule:
    """Markdown escaping filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"md_escape": markdown_escape}
