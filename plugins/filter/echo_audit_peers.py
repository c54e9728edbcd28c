# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: echo_audit_peers
short_description: Resolve a source host's DICOM peers from the AE registry
version_added: 1.0.0
author:
  - dicom.network contributors
description:
  - Turns the inventory model of the C(dicom.network.echo_audit) role
    into the plan of one source host, one M(dicom.network.echo) call per calling AE.
  - The input is the AE registry C(dicom_aes), a dictionary of registry name to an AE with the keys C(ae_title),
    C(host), C(port) and optionally C(site), C(kind), C(description), C(tls).
  - A peer entry is a registry name, a reference with the keys C(name), C(expect), C(local_aes), or an inline peer
    with the keys of a registry entry plus C(name), C(expect), C(local_aes).
  - All peer lists are merged, the C(dicom_peers_*) ones in name order first and C(dicom_peers) last, so
    group variables can declare a list once for a whole group and host variables extend it.
  - Identical repeats of a peer are merged and an AE never checks itself. Unknown registry names, two entries for
    one AE title on one host and port, an inline peer that is a registry entry (refer to it by its registry name),
    a peer listed twice with different settings, and malformed entries fail
    with an error naming the host and the entry.
options:
  _input:
    description: The AE registry, usually the C(dicom_aes) variable.
    type: dict
    required: true
  host:
    description: The source host the plan is for (C(inventory_hostname)); every error names it.
    type: string
    required: true
  local_aes:
    description: The registry names this host speaks as (C(dicom_local_aes)), one echo call each.
    type: list
    elements: string
    required: true
  peer_lists:
    description:
      - The peer list variables of the host, a dictionary of variable name to list, for example built with the
        P(ansible.builtin.varnames#lookup) and P(ansible.builtin.vars#lookup) lookups.
      - Only C(dicom_peers) and C(dicom_peers_*) names are accepted.
    type: dict
    default: {}
  bind_address:
    description: Local address the echoes leave from (C(dicom_bind_address)).
    type: string
  only:
    description:
      - Keep only the peers whose registry name or AE title is listed (the verify playbook's peer limit).
    type: list
    elements: string
  echo_options:
    description:
      - The host's echo options to check as M(dicom.network.echo) would, before any echo, a dictionary of
        C(connect_timeout), C(acse_timeout), C(dimse_timeout), C(parallel), C(count), C(max_pdu) to a value
        (V(null) keeps the module's default). An error names the role variable, for example
        C(echo_audit_connect_timeout).
    type: dict
  tls:
    description:
      - The module-level O(dicom.network.echo#module:tls) the role passes (C(echo_audit_tls)). Each planned peer's
        C(tls) is merged with it and checked as the module would, without reading any file; TLS settings for a
        peer that stays plain text (no C(enabled) anywhere) are refused, naming the peer.
    type: dict
"""

EXAMPLES = r"""
---
- name: Resolve the peers of this source host
  ansible.builtin.set_fact:
    plan: >-
      {{ dicom_aes | dicom.network.echo_audit_peers(
           host=inventory_hostname,
           local_aes=dicom_local_aes,
           peer_lists=dict(names | zip(query('ansible.builtin.vars', *names))),
           bind_address=dicom_bind_address | default(none),
           echo_options={'connect_timeout': 3, 'parallel': 16}) }}
  vars:
    names: "{{ query('ansible.builtin.varnames', '^dicom_peers(_.+)?$') }}"

- name: One echo call per calling AE, from the host's own source address
  dicom.network.echo:
    calling_ae_title: "{{ item.calling_ae_title }}"
    bind_address: "{{ plan.bind_address if plan.bind_address else omit }}"
    peers: "{{ item.peers }}"
  loop: "{{ plan.calls }}"
"""

RETURN = r"""
_value:
  description: The plan of the host.
  type: dict
  contains:
    host:
      description: The source host.
      type: string
    bind_address:
      description: The local address to bind to, or V(null).
      type: string
    calls:
      description: One entry per calling AE, in C(local_aes) order.
      type: list
      elements: dict
      contains:
        calling:
          description: Registry name of the calling AE.
          type: string
        calling_ae_title:
          description: The calling AE title.
          type: string
        peers:
          description: The O(dicom.network.echo#module:peers) argument (name, ae_title, host, port, expect, tls).
          type: list
          elements: dict
    aes:
      description: Registry name to metadata (ae_title, host, port, site, kind, description, inline) of every AE in
        the plan, for the matrix rows and columns. TLS settings are left out.
      type: dict
    checks:
      description: Number of planned echoes.
      type: int
    only_matched:
      description: The O(only) entries that selected at least one peer of this host.
      type: list
      elements: string
"""

from typing import Any, Callable, Dict, Optional, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import (
    AuditInventoryError,
    check_echo_options,
    check_peer_tls,
    resolve_host,
)
from ansible_collections.dicom.network.plugins.plugin_utils._native import native_data


def echo_audit_peers(registry: Any, host: str, local_aes: Any, peer_lists: Any = None, bind_address: Any = None,
                     only: Optional[Sequence[str]] = None, echo_options: Any = None, tls: Any = None) -> Dict[str, Any]:
    """Filter glue: resolve one host's plan, turning inventory mistakes into AnsibleFilterError."""
    try:
        if echo_options is not None:
            check_echo_options(echo_options, host)
        plan = resolve_host(host, registry, local_aes, peer_lists or {}, bind_address=bind_address, only=only)
        check_peer_tls(plan, native_data(tls))
        return plan
    except AuditInventoryError as error:
        raise AnsibleFilterError("dicom.network.echo_audit_peers: %s" % error) from None


class FilterModule:
    """DICOM echo audit inventory filter."""

    def filters(self) -> Dict[str, Callable]:
        return {"echo_audit_peers": echo_audit_peers}
