#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: echo_audit_source
short_description: Echo every peer of one source host of a DICOM echo audit, whatever kind of source it is
version_added: 0.1.0
description:
  - The echo step of the C(dicom.network.echo_audit) role, run for every source host after
    M(dicom.network.echo_audit_plan).
  - A managed host (or the probe named by its C(dicom_echo_via), with C(delegate_to)) echoes its peers with
    M(dicom.network.echo); an archive with C(dicom_echo_api) echoes them from its own AE through its REST API
    with M(dicom.network.orthanc_echo), from the controller (C(delegate_to=localhost)), its modality table
    compared with the registry on the way.
  - Neither fails on what it finds (C(fail_on=never)); the report step judges the whole matrix. The result is
    that module's, plus C(echoed_from), and it is written to the run's journal on the controller as soon as it
    comes back.
author:
  - dicom.network contributors (@dicom-network)
attributes:
  action:
    support: full
    description: The action plugin chooses the module and runs it on the host, the probe or the controller.
  async:
    support: none
    description: Not run as an async job.
  bypass_host_loop:
    support: none
    description: Runs for every source host.
  check_mode:
    support: full
    description: As the module that echoes (both only read).
  diff_mode:
    support: none
    description: Nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The source host, its probe, or the controller for an archive.
options:
  plan:
    description: This host's plan, C(plans[inventory_hostname]) of what M(dicom.network.echo_audit_plan) returns.
    type: dict
    required: true
  options:
    description:
      - The role's echo settings without their C(echo_audit_) prefix; an unset one (null) leaves the module's
        default.
      - V(connect_timeout), V(acse_timeout), V(dimse_timeout), V(parallel), V(count), V(max_pdu), V(tls),
        V(retries), V(retry_delay) and V(debug) go to M(dicom.network.echo), V(api_timeout) to
        M(dicom.network.orthanc_echo) as its O(dicom.network.orthanc_echo#module:timeout).
    type: dict
    default: {}
  journal:
    description: The journal file of this host's results on the controller (under C(run.journal) of the plan step).
    type: str
    required: true
  api_password:
    description: For an archive whose plan says C(has_password), the password of its REST API user
      (C(dicom_echo_api.password)). The plan, the journal and the reports never hold it.
    type: str
seealso:
  - module: dicom.network.echo
  - module: dicom.network.orthanc_echo
  - module: dicom.network.echo_audit_plan
  - module: dicom.network.echo_audit_report
"""

EXAMPLES = r"""
- name: Echo every peer (the role's echo step)
  dicom.network.echo_audit_source:
    plan: "{{ plan.plans[inventory_hostname] }}"
    options:
      connect_timeout: "{{ echo_audit_connect_timeout }}"
      api_timeout: "{{ echo_audit_api_timeout }}"
    journal: "{{ plan.run.journal }}/{{ inventory_hostname | ansible.builtin.hash('sha1') }}.json"
    api_password: "{{ dicom_echo_api.password if plan.plans[inventory_hostname].echo_api.has_password | default(false) else omit }}"
  when: plan.plans[inventory_hostname].echo_peers | length > 0
  delegate_to: "{{ 'localhost' if 'echo_api' in plan.plans[inventory_hostname] else (plan.plans[inventory_hostname].echo_via or inventory_hostname) }}"
"""

RETURN = r"""
echoed_from:
  description: Where the echoes came from - the host, its probe, or C(Orthanc REST at <url>) for an archive.
  returned: always
  type: str
  sample: ct-a1
results:
  description: One result per peer, as M(dicom.network.echo) or M(dicom.network.orthanc_echo) returns them.
  returned: when the module ran
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    plan=dict(type="dict", required=True),
    options=dict(type="dict", default={}),
    journal=dict(type="str", required=True),
    api_password=dict(type="str", no_log=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dicom.network.echo_audit_source runs in its action plugin, as the echo_audit role's echo step")


if __name__ == "__main__":
    main()
