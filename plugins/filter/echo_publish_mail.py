# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_publish_mail
short_description: Check the e-mail settings of the echo audit and compose the run's message
version_added: 0.1.0
author:
  - dicom.network contributors
description:
  - Used by the C(dicom.network.echo_audit) role to mail the Markdown summary of a run with C(community.general.mail).
  - Fails, naming the role variable, when the settings would only fail at send time, or leak the password there.
    There must be a recipient and a sender address, and a password needs O(secure) V(always) or V(starttls)
    (with V(try) the module sends it in plain text to a server that offers no TLS).
  - With V(null) as input (the settings check), also fails when the C(community.general) collection, which has the
    C(community.general.mail) module, is not installed for this controller. The role calls it so before any echo, so
    a missing collection is reported early; composing a message does not need the collection.
  - With a report as input, returns the subject and the body. The body is a summary line, the time, the links, then
    the Markdown report.
options:
  _input:
    description:
      - A JSON report of the C(dicom.network.echo_audit) role (dictionary or JSON text, or the
        RV(dicom.network.echo_audit_report#module:head) of M(dicom.network.echo_audit_report)), or V(null) to check
        the settings only.
    type: raw
    required: true
  to:
    description: Recipients (the role's C(echo_audit_mail_to)).
    type: list
    elements: string
    required: true
  sender:
    description: Sender address (C(echo_audit_mail_from)).
    type: string
    required: true
  secure:
    description: The C(secure) option of C(community.general.mail).
    type: string
    choices: [always, never, starttls, try]
    default: try
  password_set:
    description: Whether a password is configured. Pass a boolean, never the password itself.
    type: bool
    default: false
  subject:
    description: Subject; empty builds one from the title and the counts.
    type: string
    default: ""
  markdown:
    description: The Markdown report, the main part of the body.
    type: string
    default: ""
  links:
    description: Lines placed before the report, such as where the reports were published.
    type: list
    elements: string
    default: []
"""

EXAMPLES = r"""
---
- name: Compose the e-mail
  ansible.builtin.set_fact:
    message: >-
      {{ report | dicom.network.echo_publish_mail(to=['pacs-team@example.org'], sender='audit@example.org',
                                                   markdown=lookup('ansible.builtin.template', 'report.md.j2'),
                                                   links=['Index: https://pacs-reports.example.org/echo/index.html']) }}
"""

RETURN = r"""
_value:
  description: The message; empty when the input is V(null).
  type: dict
  contains:
    subject:
      description: One line; O(subject), or the title, the verdict (C(all ok) or C(NOT OK)), the counts and the pass rate.
      sample: "DICOM echo audit: NOT OK, 2 of 3 checks ok (66.7 %), 1 failed, 0 not run"
      type: string
    body:
      description: Summary line, time, links, then the Markdown report.
      type: string
"""

from typing import Any, Callable, Dict, Optional, Sequence

from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import module_loader

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import AuditMatrixError
from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import (
    AuditPublishError,
    check_mail,
    mail_message,
)

MAIL_MODULE = "community.general.mail"


def echo_publish_mail(report: Any, to: Sequence[str], sender: str, secure: str = "try", password_set: bool = False,
                      subject: Optional[str] = "", markdown: Optional[str] = "",
                      links: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Filter glue: refuse unusable settings and a missing community.general, then compose the message."""
    try:
        check_mail(to, sender, secure, bool(password_set))
    except AuditPublishError as error:
        raise AnsibleFilterError("dicom.network.echo_publish_mail: %s" % error) from None
    if report is None:
        # The role's check before any echo; composing a message needs no mail module.
        # The plugin loader knows every place a collection can come from (collections paths, the playbook's
        # collections/ directory, the ansible package's site-packages), which a path check would miss.
        if not module_loader.find_plugin_with_context(MAIL_MODULE).resolved:
            raise AnsibleFilterError(
                "dicom.network.echo_publish_mail: echo_audit_mail_enabled is true but the module %s is not installed "
                "on this controller: install the community.general collection (ansible-galaxy collection install "
                "community.general, or add it to the execution environment), or set echo_audit_mail_enabled=false"
                % MAIL_MODULE)
        return {}
    try:
        return mail_message(report, subject, markdown, links)
    except (AuditPublishError, AuditMatrixError) as error:
        raise AnsibleFilterError("dicom.network.echo_publish_mail: %s" % error) from None


class FilterModule:
    """DICOM echo audit e-mail filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_publish_mail": echo_publish_mail}
